"""Shared test fixtures."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch


class _PickleTrap:
    """Unpickling this calls ``open(marker, "w")``, which creates the marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(params=["pickle", "torch.save"])
def write_crafted(request, tmp_path) -> Callable[[Path], Path]:
    """``write(path)`` puts at ``path`` a checkpoint-like file (written with pickle or
    ``torch.save``) whose unpickling would create a marker file; it returns the marker,
    which must not exist after the code under test has refused the file."""
    sanity = tmp_path / "sanity"
    pickle.loads(pickle.dumps(_PickleTrap(str(sanity))))
    assert sanity.exists(), "the trap does not work, so the tests using it prove nothing"

    def write(path: Path) -> Path:
        marker = tmp_path / "pwned"
        payload = {"state_dict": _PickleTrap(str(marker)), "hyper_parameters": {}}
        if request.param == "pickle":
            path.write_bytes(pickle.dumps(payload))
        else:
            torch.save(payload, path)
        return marker

    return write


def fit_tiny_spiral(params: dict, log_dir: Path):
    """A LatentODE(**params) fitted for one epoch on 30 spirals, on the CPU, quietly: a
    model whose numbers do not matter, for tests of the prediction machinery."""
    import warnings

    import latentode as lo

    est = lo.LatentODE(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(
            lo.datasets.spiral(30, seed=0),
            max_epochs=1,
            accelerator="cpu",
            devices=1,
            progress_bar=False,
            log_dir=log_dir,
        )
    return est
