"""``predict --times``: a comma list, a ``start:stop:step`` range or an id,time CSV file,
turned into what ``predict_stream`` takes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from latentode.data.columns import ColumnSpec
    from latentode.data.dataset import SeriesDataset

#: the most times a ``start:stop:step`` range may ask for
MAX_RANGE_TIMES = 1_000_000


def parse_times(
    spec: str | None, is_datetime: bool, columns: ColumnSpec
) -> np.ndarray | TimesFile | None:
    """``--times`` → what ``predict_stream`` takes: None, one array [T] for all series,
    or a :class:`TimesFile` that gives each chunk of series its times.

    ``is_datetime``: the model's times are datetimes (a comma list is then passed on as
    text for the model to parse). ``columns`` names a times file's id and time columns.

    Raises:
        LatentODEError: a range with ``step <= 0``, ``stop < start`` or over
            :data:`MAX_RANGE_TIMES` times; an item that is not a number; an unreadable
            times file.
    """
    import numpy as np

    from latentode.errors import LatentODEError

    if spec is None:
        return None
    path = Path(spec)
    if path.suffix.lower() in (".csv", ".gz") or path.exists():
        return _times_from_csv(path, columns.id_col, columns.time_col)
    parts = spec.split(":")
    if len(parts) == 3 and all(_is_number(p) for p in parts):
        start, stop, step = (float(p) for p in parts)
        if step <= 0 or stop < start:
            raise LatentODEError(
                f"--times {spec}: start:stop:step needs step > 0 and stop >= start."
            )
        count = int(np.floor((stop - start) / step + 1e-9)) + 1
        if count > MAX_RANGE_TIMES:
            raise LatentODEError(f"--times {spec} asks for {count} times; use a larger step.")
        return start + step * np.arange(count)
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if is_datetime:
        return np.asarray(items, dtype=object)  # the model parses datetimes
    bad = [s for s in items if not _is_number(s)]
    if bad or not items:
        raise LatentODEError(
            f"--times {spec!r}: cannot read {bad[0]!r} as a time; use a comma list (0,0.5,1.5), "
            "start:stop:step (0:10:0.5) or a CSV file with id,time columns."
            if bad
            else f"--times {spec!r} lists no time."
        )
    return np.asarray([float(s) for s in items])


@dataclass
class TimesFile:
    """An id,time file's query times by id text, handed out to each chunk of series."""

    path: Path
    by_text: dict[str, np.ndarray]  # id text → times [T] (the user's numbers or datetime text)

    def __call__(self, chunk: SeriesDataset) -> dict:
        """The times of ``chunk``'s series, keyed by their ids (as the chunk has them)."""
        return {i: self.by_text.pop(str(i)) for i in chunk.ids if str(i) in self.by_text}

    def check_all_used(self) -> None:
        """Raise if the file names ids that no chunk held."""
        from latentode.errors import LatentODEError

        if self.by_text:
            raise LatentODEError(
                f"times file {self.path} has ids not in the context: {list(self.by_text)[:5]}."
            )


def _times_from_csv(path: Path, id_col: str, time_col: str) -> TimesFile:
    import pandas as pd

    from latentode.errors import LatentODEError

    if not path.is_file():
        raise LatentODEError(f"times file not found: {path}.")
    try:
        frame = pd.read_csv(path, dtype={id_col: str}, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise LatentODEError(f"{path} could not be read as CSV ({err}).") from None
    missing = [c for c in (id_col, time_col) if c not in frame.columns]
    if missing:
        raise LatentODEError(
            f"times file {path} has no column(s) {missing}; it needs {id_col!r} and "
            f"{time_col!r} (its columns are {list(frame.columns)})."
        )
    missing = frame[id_col].isna().to_numpy()
    if missing.any():
        line = int(missing.argmax()) + 2
        raise LatentODEError(f"times file {path}: line {line} has no id in column {id_col!r}.")
    groups = frame.groupby(id_col, sort=False)[time_col]
    return TimesFile(path, {str(k): g.to_numpy() for k, g in groups})


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
