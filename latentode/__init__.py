"""latentode: latent ODE models for irregularly-sampled multivariate time series.

The public API: :class:`LatentODE` and :class:`ODERNN` (estimators), :func:`load`
(a saved model of either kind), :func:`read_csv`,
:func:`iter_csv` (a file in chunks of series, bounded memory) and :func:`from_dataframe`
(data in), :mod:`latentode.datasets` (synthetic data and the PhysioNet 2012 reader),
:mod:`latentode.plotting` and :mod:`latentode.distributed` (prediction on Dask; the
optional ``latentode[dask]`` extra). Torch and Lightning are imported on first use of an
estimator, so reading data stays quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from latentode.data.dataset import Series, SeriesDataset
from latentode.data.io import from_dataframe, read_csv
from latentode.errors import LatentODEError

__version__ = "0.1.0"

_LAZY = {
    "LatentODE": ("latentode.estimator", "LatentODE"),
    "ODERNN": ("latentode.estimator", "ODERNN"),
    "datasets": ("latentode.datasets", None),
    "plotting": ("latentode.plotting", None),
    "distributed": ("latentode.distributed", None),
    "iter_csv": ("latentode.data.streaming", "iter_csv"),
    "load": ("latentode.estimator", "load"),
    "NotFittedError": ("latentode.estimator", "NotFittedError"),
}

if TYPE_CHECKING:
    from latentode import datasets, distributed, plotting
    from latentode.data.streaming import iter_csv
    from latentode.estimator import ODERNN, LatentODE, NotFittedError, load


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        return mod if attr is None else getattr(mod, attr)
    raise AttributeError(f"module 'latentode' has no attribute {name!r}")


__all__ = [
    "ODERNN",
    "LatentODE",
    "LatentODEError",
    "NotFittedError",
    "Series",
    "SeriesDataset",
    "__version__",
    "datasets",
    "distributed",
    "from_dataframe",
    "iter_csv",
    "load",
    "plotting",
    "read_csv",
]
