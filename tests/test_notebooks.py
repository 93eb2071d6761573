"""The example notebooks run top to bottom (in their fast mode) without a cell error, and
the committed ``.ipynb`` files hold exactly the cells of their Jupytext scripts.

The source of each notebook is ``notebooks/<name>.py`` (Jupytext percent format); the
run test executes the notebook read from that script, and the sync test checks that the
committed ``notebooks/<name>.ipynb`` has the same cells (kind, source, metadata), all
executed, so the outputs shown on GitHub belong to the code that is tested.

Each notebook is executed with nbclient in a kernel that runs *this* Python (a temporary
kernelspec pointing at ``sys.executable``, so a fresh CI clone needs no installed
kernel), with ``LATENTODE_FAST=1`` (small data, two epochs) and the Agg backend, in a
temporary working directory (and TMPDIR) so that nothing is written into the repository
or left behind.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
jupytext = pytest.importorskip("jupytext")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ["spiral", "clinical"]
KERNEL = "latentode-test"


def _cells(nb) -> list[tuple[str, str, dict]]:
    return [(c.cell_type, c.source, dict(c.metadata)) for c in nb.cells]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_matches_its_script(name) -> None:
    script = jupytext.read(NOTEBOOKS / f"{name}.py")
    committed = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert committed.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    # equal cell lists, not just code: a markdown edit must reach the .ipynb too
    assert _cells(committed) == _cells(script), (
        f"notebooks/{name}.ipynb is out of sync with notebooks/{name}.py: run "
        f"`.venv/bin/python notebooks/execute.py {name}` (or `jupytext --sync`)"
    )
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code), "not every code cell was run"


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


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_in_fast_mode(name, kernel_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    monkeypatch.setenv("LATENTODE_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("LATENTODE_PHYSIONET", raising=False)
    nb = jupytext.read(NOTEBOOKS / f"{name}.py")  # the source; the sync test covers .ipynb
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
