"""The example notebooks run top to bottom (in their fast mode) without a cell error.

Each notebook is executed with nbclient in a kernel that runs *this* Python (a
temporary kernelspec pointing at ``sys.executable``, so a fresh CI clone needs no
installed kernel), with ``LATENTODE_FAST=1`` (small data, two epochs) and the Agg
backend, in a temporary working directory (and TMPDIR) so that nothing is written into
the repository or left behind.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = "latentode-test"


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory) -> Path:
    """A JUPYTER_PATH folder with a kernelspec that runs sys.executable in fast mode."""
    root = tmp_path_factory.mktemp("jupyter")
    scratch = tmp_path_factory.mktemp("kernel-tmp")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "latentode test kernel",
                "language": "python",
                # TMPDIR: fit's default log folders go under pytest's tmp, not /tmp
                "env": {"LATENTODE_FAST": "1", "MPLBACKEND": "Agg", "TMPDIR": str(scratch)},
            }
        )
    )
    return root


@pytest.mark.parametrize("name", ["spiral", "clinical"])
def test_notebook_runs_in_fast_mode(name, kernel_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    monkeypatch.setenv("LATENTODE_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("LATENTODE_PHYSIONET", raising=False)
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    probe = "import os, sys; print(sys.executable); print(os.environ.get('LATENTODE_FAST'))"
    nb.cells.insert(0, nbformat.v4.new_code_cell(probe))
    client = nbclient.NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=600,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error

    printed = nb.cells[0].outputs[0]["text"].split()
    assert Path(printed[0]).resolve() == Path(sys.executable).resolve()
    assert printed[1] == "1"  # the notebook really ran in fast mode
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert not list(tmp_path.iterdir()), "the notebook wrote files into its working directory"
