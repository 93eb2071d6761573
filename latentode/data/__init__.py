"""The data layer: series container, CSV/DataFrame I/O, scaling, tasks, batching, generators."""

from latentode.data.batching import Batch, collate
from latentode.data.dataset import Series, SeriesDataset, make_series
from latentode.data.scaling import Scaler
from latentode.data.time_axis import TimeAxis

__all__ = ["Batch", "Scaler", "Series", "SeriesDataset", "TimeAxis", "collate", "make_series"]
