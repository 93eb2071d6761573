#!/usr/bin/env bash
# Set up .venv with the dev extras (first run only) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=dev bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
