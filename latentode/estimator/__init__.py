"""The front door: scikit-learn style estimators with pandas in and out.

``LatentODE(...)`` stores parameters; ``fit`` prepares the data (validation split and
scalers fitted on the training series only), trains with Lightning and returns
``self``; ``predict`` interpolates and forecasts with uncertainty in the user's own
units; ``save`` and :func:`load` use one safetensors file with a JSON header (no pickle).

Modules, one job each:

- ``estimators``: :class:`LatentODE`, :class:`ODERNN` (parameters) and :func:`load`;
- ``base``: the shared public methods, each a thin call of a pipeline below;
- ``fitting``: fit as prepare data → build network → run Lightning;
- ``training_run``: the Trainer, its callbacks, resume and Ctrl-C;
- ``queries``: the forms of ``times=`` and the ``horizon`` check;
- ``prediction``: context → query targets → batches → network samples;
- ``summaries``: samples → DataFrames in the user's units;
- ``evaluation``: hide points, predict, compare (evaluate, score, calibration, demo);
- ``model_file``: :class:`FittedState`, saved and loaded whole.
"""

from latentode.estimator.base import SeriesEstimator
from latentode.estimator.estimators import ESTIMATORS, ODERNN, LatentODE, load
from latentode.estimator.model_file import FittedState, NotFittedError
from latentode.estimator.training_run import read_history

__all__ = [
    "ESTIMATORS",
    "ODERNN",
    "FittedState",
    "LatentODE",
    "NotFittedError",
    "SeriesEstimator",
    "load",
    "read_history",
]
