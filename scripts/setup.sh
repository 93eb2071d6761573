#!/usr/bin/env bash
# Create .venv in the repository (once) and install latentode into it.
#   TORCH_SPEC   the torch requirement to install first (default torch==2.13.0, the CPU
#                build on a CPU-only machine whose pip finds the local CPU wheel). On a
#                GPU machine set it to the CUDA build you want, e.g. TORCH_SPEC=torch.
#   EXTRAS       extras to install (default: none; the test script uses "dev").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
EXTRAS=${EXTRAS:-}
target="."
[ -n "$EXTRAS" ] && target=".[$EXTRAS]"
stamp=".venv/.latentode-installed"
want="$(cat pyproject.toml; echo "$TORCH_SPEC $EXTRAS")"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[setup] installing $TORCH_SPEC and latentode$([ -n "$EXTRAS" ] && echo "[$EXTRAS]") into .venv (a few minutes the first time)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    # torch first and pinned in the same command, so no dependency can pull another build
    .venv/bin/python -m pip install --quiet "$TORCH_SPEC" -e "$target"
    printf '%s' "$want" > "$stamp"
fi
