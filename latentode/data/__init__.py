"""The data layer: series container, CSV/DataFrame I/O, scaling, tasks, batching, generators.

Modules: ``dataset`` (the container), ``columns`` (``ColumnSpec``: the column
arguments), ``io`` (``read_csv``/``from_dataframe``; columns parsed by ``parse``, rows
merged by ``merging``), ``streaming`` (``iter_csv``), ``schema`` (what a fitted model
expects of new input), ``time_axis`` (numbers or datetimes ↔ float times), ``scaling``
(values, times and statics, with inverses), ``tasks`` (training contexts), ``batching``
(padded tensors; imports torch), ``datamodule`` (Lightning: the validation split and the
scalers), and the generators ``spiral``, ``periodic``, ``clinical``, ``physionet``. This package
imports neither torch nor Lightning, so reading data stays quick.
"""

from latentode.data.dataset import Series, SeriesDataset, make_series
from latentode.data.scaling import Scaler
from latentode.data.time_axis import TimeAxis

__all__ = ["Scaler", "Series", "SeriesDataset", "TimeAxis", "make_series"]
