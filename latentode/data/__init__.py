"""The data layer: series container, CSV/DataFrame I/O, scaling, tasks, batching, generators.

Modules: ``dataset`` (the container), ``io`` (``read_csv``/``from_dataframe``),
``time_axis`` (numbers or datetimes ↔ float times), ``scaling``, ``tasks`` (training
contexts), ``batching`` (padded tensors; imports torch), ``datamodule`` (Lightning),
and the generators ``spiral``, ``periodic``, ``clinical``, ``physionet``. This package
imports neither torch nor Lightning, so reading data stays quick.
"""

from latentode.data.dataset import Series, SeriesDataset, make_series
from latentode.data.scaling import Scaler
from latentode.data.time_axis import TimeAxis

__all__ = ["Scaler", "Series", "SeriesDataset", "TimeAxis", "make_series"]
