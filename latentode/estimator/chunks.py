"""Streaming prediction's input: context chunks, each with the query times of its series.

:meth:`~latentode.estimator.base.SeriesEstimator.predict_stream` takes an iterable of
context chunks (or one dataset it cuts into chunks) and one ``times=`` for all of them.
:func:`query_chunks` conforms each chunk to the fitted model's schema and hands out the
part of ``times`` that concerns that chunk's series, so that ``predict`` sees one chunk
and its own queries at a time; ids of ``times`` that no chunk held raise at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from latentode.data.dataset import SeriesDataset
from latentode.data.schema import DataSchema
from latentode.errors import LatentODEError
from latentode.estimator.queries import check_times_frame


def query_chunks(
    schema: DataSchema, contexts, times, series_per_chunk: int
) -> Iterator[tuple[SeriesDataset, object]]:
    """(conformed chunk, its query times) per context chunk, in order.

    Args:
        schema: the fitted model's data schema (columns, channels, time axis).
        contexts: an iterable of chunks (datasets or DataFrames), or one dataset or
            DataFrame, cut into chunks of ``series_per_chunk`` series.
        times: as ``predict_stream`` takes it: None, one array for every series, a
            dict ``{id: array}`` or a DataFrame of (id, time) rows (matched to each
            chunk's ids), or a function ``times(chunk)`` → that chunk's times.
        series_per_chunk: series per chunk when ``contexts`` is one dataset or frame.

    Raises:
        LatentODEError: for a bad ``series_per_chunk`` or ``contexts``, and, once every
            chunk is out, for ids of ``times`` that no chunk held.
    """
    if isinstance(series_per_chunk, bool) or not (
        isinstance(series_per_chunk, (int, np.integer)) and series_per_chunk >= 1
    ):
        raise LatentODEError(
            f"series_per_chunk must be a whole number >= 1, got {series_per_chunk!r}."
        )
    if isinstance(contexts, (SeriesDataset, pd.DataFrame)):
        whole = schema.conform(contexts)
        contexts = (
            whole[start : start + series_per_chunk]
            for start in range(0, len(whole), series_per_chunk)
        )
    elif not isinstance(contexts, Iterable):
        raise LatentODEError(
            "contexts must be a SeriesDataset, a DataFrame or an iterable of them (e.g. "
            f"latentode.iter_csv(path)), got {type(contexts).__name__}."
        )
    by_id = rows_of = None
    if isinstance(times, pd.DataFrame):
        check_times_frame(times, schema.id_name, schema.time_name)
        rows_of = times.groupby(schema.id_name, sort=False).indices  # id → row positions
    elif isinstance(times, Mapping):
        by_id = times
    per_chunk = times if by_id is None and rows_of is None and callable(times) else None
    unmatched = set(by_id if by_id is not None else rows_of or ())
    for k, chunk in enumerate(contexts):
        ds = schema.conform(chunk, f"context chunk {k}")
        chunk_times = times if per_chunk is None else per_chunk(ds)
        if by_id is not None:
            chunk_times = {i: by_id[i] for i in ds.ids if i in by_id}
            unmatched.difference_update(chunk_times)
        elif rows_of is not None:  # this chunk's rows of the frame, in its order
            found = [i for i in ds.ids if i in rows_of]
            unmatched.difference_update(found)
            rows = np.sort(np.concatenate([rows_of[i] for i in found] or [[]])).astype(int)
            chunk_times = times.iloc[rows]
        yield ds, chunk_times
    if unmatched:
        shown = sorted((k.item() if isinstance(k, np.generic) else k for k in unmatched), key=repr)
        raise LatentODEError(
            f"times has ids that no context chunk holds: {shown[:5]}; predict only the "
            "series in the context, or check the ids' type (text '7' is not the number 7)."
        )
