"""Read a CSV file a block of series at a time, in memory that does not grow with the file.

:func:`iter_csv` parses the file with pandas in row blocks and yields
:class:`~latentode.data.dataset.SeriesDataset` chunks of ``series_per_chunk`` complete
series each. Every chunk goes through the validation of :func:`latentode.read_csv`
(the same rules and messages, with line numbers of the file itself); what needs the
whole file (a channel never observed, labels for ids that never appear) is checked
when the file ends. A series' rows must be contiguous in the file: an id that comes
back after its block ended is an error, never a silently split series. To tell, the
reader keeps a 64-bit hash of every finished series' id: 8 bytes per series, the only
memory that grows with the file (0.8 MB for 100,000 series).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from latentode.data.build import build_dataset
from latentode.data.columns import ColumnSpec
from latentode.data.dataset import SeriesDataset
from latentode.data.io import _check_path, _csv_errors, _csv_options, _label_table
from latentode.data.parse import Source, as_python
from latentode.errors import LatentODEError, warn_user

#: rows pandas parses at a time (memory ~ this many rows + one chunk's rows)
ROWS_PER_READ = 20_000


@dataclass(frozen=True)
class _FileBlock(Source):
    """Rows of a file that start at data row ``first_row`` (0 = the line after the header)."""

    first_row: int = 0

    def row(self, pos: int) -> str:
        return f"line {self.first_row + pos + 2} of {self.name}"


def iter_csv(
    path: str | Path,
    series_per_chunk: int = 1000,
    columns: ColumnSpec | None = None,
    *,
    sep: str = ",",
    rows_per_read: int = ROWS_PER_READ,
    **column_args,
) -> Iterator[SeriesDataset]:
    """Read a CSV file as :class:`SeriesDataset` chunks of complete series, in bounded memory.

    Takes the arguments of :func:`latentode.read_csv` and applies the same validation
    and error messages to every chunk (line numbers refer to the file). Memory holds
    about ``rows_per_read`` parsed rows plus one chunk, whatever the file's length.

    Args:
        path: the CSV file (``.csv`` or compressed ``.csv.gz``).
        series_per_chunk: series per yielded dataset (the last one may hold fewer).
        columns, column_args: the column arguments (``id_col=``, ...), as in
            :func:`latentode.read_csv`.
        sep: the field delimiter.
        rows_per_read: rows pandas parses at a time.

    Yields:
        A :class:`SeriesDataset` per chunk: the next ``series_per_chunk`` series in file
        order, sorted by id within the chunk (as ``read_csv`` sorts them). For a file
        sorted by id the chunks concatenate to exactly what ``read_csv`` returns.

    Raises:
        LatentODEError: as ``read_csv`` does, and when a series' rows are not
            contiguous (sort the file by id, or use ``read_csv``). Checks that need the
            whole file (a channel with no observed value anywhere, no series left after
            ``drop_empty``) raise after the last chunk. In long format without
            ``channels=``, every chunk must have the same variables.
    """
    if isinstance(series_per_chunk, bool) or not isinstance(series_per_chunk, (int, np.integer)):
        raise LatentODEError(f"series_per_chunk must be a whole number, got {series_per_chunk!r}.")
    if series_per_chunk < 1 or rows_per_read < 1:
        raise LatentODEError(
            f"series_per_chunk and rows_per_read must be at least 1, got {series_per_chunk} "
            f"and {rows_per_read}."
        )
    spec = ColumnSpec.of(columns, **column_args)
    path = _check_path(path)
    label_table = _label_table(spec)
    with _csv_errors(path):
        reader = pd.read_csv(path, chunksize=rows_per_read, **_csv_options(spec, sep))
    return _Chunks(path, reader, int(series_per_chunk), spec, label_table).run()


class _Chunks:
    """The state of one pass over a file: buffered rows, finished ids, what chunks agree on."""

    def __init__(self, path: Path, reader, per_chunk: int, spec: ColumnSpec, labels) -> None:
        self.path, self.reader, self.per_chunk, self.spec = path, reader, per_chunk, spec
        self.id_col = spec.id_col
        self.buf: pd.DataFrame | None = None  # rows read but not yet in a chunk
        self.buf_row = 0  # data row of buf's first row
        self.starts: list[int] = []  # data rows where the buffered series start
        self.last_key: str | None = None  # id text of the last row read
        self.finished = np.zeros(0, dtype=np.uint64)  # sorted hashes of ended series' ids
        self.first: SeriesDataset | None = None  # the first chunk, for consistency checks
        self.observed: np.ndarray | None = None  # [C] observed values per channel
        self.n_series = 0
        self.labels = labels
        if labels is not None:
            self.label_pos = {str(as_python(i)): k for k, i in enumerate(labels.index)}
            self.label_used = np.zeros(len(labels), dtype=bool)

    def run(self) -> Iterator[SeriesDataset]:
        empty: pd.DataFrame | None = None
        try:
            while True:
                with _csv_errors(self.path):
                    block = next(self.reader, None)
                if block is None:
                    break
                if self.id_col not in block.columns:
                    self._chunk(block, 0)  # raises: the id column is missing
                if len(block) == 0:
                    empty = block
                    continue
                self._add(block)
                while len(self.starts) > self.per_chunk:
                    yield from self._emit(self.starts[self.per_chunk])
        finally:
            self.reader.close()
        if self.buf is not None and len(self.buf):
            yield from self._emit(self.buf_row + len(self.buf))
        if self.first is None and empty is not None:
            self._chunk(empty, 0)  # raises: a header but no data rows
        self._finish()

    def _add(self, block: pd.DataFrame) -> None:
        """Buffer a block of rows; check that every series' rows are contiguous."""
        row0 = self.buf_row + (0 if self.buf is None else len(self.buf))
        text = block[self.id_col].astype(object).str.strip()
        # a missing id continues the current series; build_dataset reports it with its line
        keys = text.where(text != "").ffill().fillna(self.last_key or "").to_numpy(dtype=object)
        new = np.empty(len(keys), dtype=bool)
        new[0] = keys[0] != self.last_key
        np.not_equal(keys[1:], keys[:-1], out=new[1:])
        pos = np.flatnonzero(new)  # [R] rows that start a series
        hashes = pd.util.hash_array(keys[pos])  # [R]
        if len(pos) and self.last_key is not None:  # the series before pos[0] ended
            self._finished(pd.util.hash_array(np.array([self.last_key], dtype=object)))
        at = np.minimum(np.searchsorted(self.finished, hashes), max(len(self.finished) - 1, 0))
        again = (self.finished[at] == hashes) if len(self.finished) else np.zeros(len(pos), bool)
        again |= pd.Series(hashes).duplicated().to_numpy()
        if again.any():
            i = int(np.flatnonzero(again)[0])
            raise LatentODEError(
                f"line {row0 + pos[i] + 2} of {self.path.name}: series {keys[pos[i]]!r} appears "
                "again after its rows ended; iter_csv and streaming prediction need each "
                "series' rows together. Sort the file by id, or read it whole with read_csv."
            )
        if len(pos) > 1:
            self._finished(hashes[:-1])
        self.last_key = keys[-1]
        self.starts.extend((row0 + pos).tolist())
        self.buf = block if self.buf is None or not len(self.buf) else pd.concat([self.buf, block])

    def _finished(self, hashes: np.ndarray) -> None:
        new = np.sort(hashes)
        self.finished = np.insert(self.finished, np.searchsorted(self.finished, new), new)

    def _emit(self, stop: int) -> Iterator[SeriesDataset]:
        """Build the buffered rows before data row ``stop`` into a chunk (if any series)."""
        n = stop - self.buf_row
        rows, self.buf = self.buf.iloc[:n], self.buf.iloc[n:]
        first_row, self.buf_row = self.buf_row, stop
        self.starts = [s for s in self.starts if s >= stop]
        ds = self._chunk(rows, first_row)
        if len(ds):
            yield ds

    def _chunk(self, rows: pd.DataFrame, first_row: int) -> SeriesDataset:
        """Validate and build one chunk; check it agrees with the chunks before it."""
        rows = rows.reset_index(drop=True)
        where = f"lines {first_row + 2}-{first_row + len(rows) + 1} of {self.path.name}"
        labels = None
        if self.labels is not None and self.id_col in rows.columns:
            ids = rows[self.id_col].astype(object).str.strip().unique() if len(rows) else []
            found = [self.label_pos[i] for i in ids if i in self.label_pos]
            self.label_used[found] = True
            labels = self.labels.iloc[np.sort(found)]
        src = _FileBlock(self.path.name, rows.index, first_row)
        ds = build_dataset(rows, src, self.spec, labels, ids_from_text=True, whole_file=False)
        if not len(ds):
            return ds
        if self.first is None:
            self.first = ds
            self.observed = np.zeros(len(ds.channels), dtype=np.int64)
        first = self.first
        if ds.channels != first.channels:
            new = [c for c in ds.channels if c not in first.channels]
            if new:
                raise LatentODEError(
                    f"{where}: variable(s) {new} are not among the first chunk's "
                    f"{list(first.channels)}; pass channels= with every variable so that "
                    "all chunks have the same channels, or read the file whole with read_csv."
                )
            ds = _with_channels(ds, first.channels)  # variables this chunk never observed
        if ds.time_axis.is_datetime != first.time_axis.is_datetime:
            kinds = ("numbers", "datetimes")
            raise LatentODEError(
                f"{where}: the times are {kinds[ds.time_axis.is_datetime]} but earlier rows' "
                f"are {kinds[first.time_axis.is_datetime]}; use the same kind in every row."
            )
        ds = self._same_id_kind(ds, where)
        for s in ds:
            self.observed += np.count_nonzero(s.mask, axis=0)
        self.n_series += len(ds)
        return ds

    def _same_id_kind(self, ds: SeriesDataset, where: str) -> SeriesDataset:
        """Integer ids as text when the first chunk's ids were text (read_csv's rule)."""
        first_int = isinstance(self.first[0].id, int)
        this_int = isinstance(ds[0].id, int)
        if this_int and not first_int:
            return ds.with_series([replace(s, id=str(s.id)) for s in ds])
        if first_int and not this_int:
            warn_user(
                f"{where}: ids such as {ds[0].id!r} are text but earlier ids were whole "
                "numbers and were read as integers; read_csv would read every id as text.",
            )
        return ds

    def _finish(self) -> None:
        """The checks that need the whole file."""
        name = self.path.name
        if self.n_series == 0:
            raise LatentODEError(f"{name}: no series left with an observed value.")
        empty = [c for c, n in zip(self.first.channels, self.observed) if n == 0]
        if empty:
            raise LatentODEError(
                f"{name}: channel(s) with no observed value: {empty}. Choose channels with "
                "channels= (iter_csv cannot drop a channel after the chunks before it; "
                "read_csv with drop_empty=True can)."
            )
        if self.labels is not None and not self.label_used.all():
            unused = np.flatnonzero(~self.label_used)
            warn_user(
                f"{len(unused)} label(s) belong to ids not in the data and were not used "
                f"(e.g. {self.labels.index[unused[0]]!r}).",
            )


def _with_channels(ds: SeriesDataset, channels: tuple[str, ...]) -> SeriesDataset:
    """``ds`` on ``channels`` (a superset of its own, in that order): the others unobserved."""
    cols = [channels.index(c) for c in ds.channels]
    series = []
    for s in ds:
        values = np.full((len(s), len(channels)), np.nan)  # [T, C]
        mask = np.zeros((len(s), len(channels)), dtype=bool)
        values[:, cols], mask[:, cols] = s.values, s.mask
        series.append(replace(s, values=values, mask=mask))
    meta = ds._meta
    return SeriesDataset(
        series,
        channels,
        ds.time_axis,
        ds.static_names,
        ds.label_name,
        ds.id_name,
        ds.time_name,
        variable_name=meta.variable_name,
        value_name=meta.value_name,
    )
