"""Run the notebooks from their Jupytext scripts and save the outputs in the paired .ipynb.

Each ``notebooks/<name>.py`` (percent format) is the source; this reads it, runs it top
to bottom in a kernel of this Python, in a temporary working directory, and writes
``notebooks/<name>.ipynb`` with the outputs (no execution timestamps, cell ids by
position, so that a re-run changes only what the outputs change)::

    .venv/bin/python notebooks/execute.py                   # both, full mode
    .venv/bin/python notebooks/execute.py spiral --fast     # one, LATENTODE_FAST=1

To update the .ipynb from an edited .py without running it (outputs of unchanged cells
kept), use ``.venv/bin/jupytext --sync notebooks/spiral.py notebooks/clinical.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import jupytext
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
NAMES = ("spiral", "clinical")


def execute(name: str, fast: bool = False, timeout: int = 3600) -> float:
    """Run ``notebooks/<name>.py`` and write ``notebooks/<name>.ipynb``; returns seconds."""
    nb = jupytext.read(HERE / f"{name}.py")
    for i, cell in enumerate(nb.cells):  # stable ids (jupytext draws random ones): small diffs
        cell.id = f"cell-{i:02d}"
    saved = dict(os.environ)
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    os.environ.pop("LATENTODE_FAST", None)
    if fast:
        os.environ["LATENTODE_FAST"] = "1"
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as cwd:
            client = NotebookClient(
                nb,
                timeout=timeout,
                kernel_name="python3",  # ipykernel's native kernel: this Python
                record_timing=False,
                resources={"metadata": {"path": cwd}},
            )
            client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    jupytext.write(nb, HERE / f"{name}.ipynb")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(NAMES), help=f"any of {NAMES}")
    parser.add_argument("--fast", action="store_true", help="LATENTODE_FAST=1: a smoke run")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(NAMES))
    if unknown:
        parser.error(f"no notebook named {unknown}; choose from {NAMES}")
    for name in args.names:
        seconds = execute(name, fast=args.fast)
        mode = "fast" if args.fast else "full"
        print(f"executed notebooks/{name}.ipynb in {mode} mode in {seconds:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
