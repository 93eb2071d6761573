#!/usr/bin/env bash
# Set up .venv (first run only) and run the spiral demo: train, compare with baselines, plot.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/latentode demo "$@"
