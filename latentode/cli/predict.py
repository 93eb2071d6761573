"""``latentode predict``: stream a context file through a fitted model into one CSV.

The context is read ``--series-per-chunk`` series at a time; each chunk's prediction is
appended to a temporary file next to ``--out``, which replaces ``--out`` only when
every chunk succeeded (:func:`atomic_csv`). Memory does not grow with the file.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from latentode.cli.flags import (
    add_column_args,
    add_sampling_args,
    columns,
    floats,
    horizon,
    positive_int,
    sampling,
)
from latentode.cli.times import TimesFile, parse_times

if TYPE_CHECKING:
    import pandas as pd

    from latentode.data.dataset import SeriesDataset


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``predict`` and its flags to the subcommands ``sub``."""
    predict = sub.add_parser(
        "predict",
        help="interpolate or forecast with a fitted model",
        description="Predict mean, std and quantiles at chosen times given observed context. "
        "Streams: reads the context --series-per-chunk series at a time and writes PRED.csv "
        "only when every chunk succeeded (memory does not grow with the number of series).",
    )
    predict.add_argument("model", metavar="MODEL", help="model file written by fit")
    predict.add_argument("context", metavar="CONTEXT.csv", help="observed points")
    predict.add_argument(
        "--times",
        metavar="SPEC",
        help="where to predict: a comma list (0,0.5,1.5), start:stop:step (0:10:0.5, stop "
        "included) or a CSV file of id,time rows; default: the context's own times",
    )
    predict.add_argument("--out", required=True, metavar="PRED.csv", help="output CSV")
    predict.add_argument("--quantiles", type=floats, default=(0.05, 0.95), help="default 0.05,0.95")
    predict.add_argument(
        "--horizon",
        type=horizon,
        default=10.0,
        help="farthest a time may lie from a series' observations, in training spans (the "
        "longest training series); default 10, 'none' for no limit",
    )
    predict.add_argument(
        "--series-per-chunk",
        type=positive_int,
        default=1000,
        help="series read and predicted at a time: memory does not grow with the file; a "
        "series' rows must be contiguous (default 1000)",
    )
    add_sampling_args(predict)
    add_column_args(predict, defaults=False)
    predict.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    """Stream: read the context in chunks of series, predict and append each to the output."""
    import latentode as lo

    model = lo.load(args.model)
    spec = columns(args, model)
    times = parse_times(args.times, model.time_axis_.is_datetime, spec)
    chunks = lo.iter_csv(args.context, args.series_per_chunk, spec, sep=args.sep)
    n_series = n_rows = 0

    def counted(chunks: Iterator[SeriesDataset]) -> Iterator[SeriesDataset]:
        nonlocal n_series
        for chunk in chunks:
            n_series += len(chunk)
            yield chunk

    preds = model.predict_stream(
        counted(chunks),
        times,
        quantiles=args.quantiles or None,
        horizon=args.horizon,
        **sampling(args),
    )
    with atomic_csv(args.out) as (path, write):
        for pred in preds:
            write(pred)
            n_rows += len(pred)
        if isinstance(times, TimesFile):
            times.check_all_used()
    print(f"wrote {n_rows} rows for {n_series} series to {path}")
    return 0


@contextmanager
def atomic_csv(path: str | os.PathLike) -> Iterator[tuple[Path, Callable[[pd.DataFrame], None]]]:
    """Write DataFrames one after another to ``path`` as one CSV, atomically.

    Yields (path, write): each ``write(frame)`` appends to a temporary file in
    ``path``'s folder (the header once); leaving the block moves it onto ``path`` with
    ``os.replace``. On any error or Ctrl-C the temporary file is removed and ``path``
    is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", newline="") as handle:
            first = True

            def write(frame: pd.DataFrame) -> None:
                nonlocal first
                frame.to_csv(handle, index=False, header=first)
                first = False

            yield path, write
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
