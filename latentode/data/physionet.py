"""Read the PhysioNet/CinC Challenge 2012 raw files (``set-a`` folders or archives).

Each ICU stay is a ``<RecordID>.txt`` file in long format::

    Time,Parameter,Value
    00:00,RecordID,132539
    00:00,Age,54
    ...
    00:07,HR,73

``Time`` is ``HH:MM`` since ICU admission; the six general descriptors (RecordID, Age,
Gender, Height, ICUType, Weight) come first at ``00:00``; ``-1`` means missing. Outcomes
live in a separate ``Outcomes-a.txt`` table. Nothing is ever downloaded: the user
points at files obtained from PhysioNet.
"""

from __future__ import annotations

import fnmatch
import io
import re
import tarfile
import warnings
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from latentode.data.dataset import SeriesDataset, make_series
from latentode.data.time_axis import TimeAxis
from latentode.errors import LatentODEError

#: The general descriptors at the top of every record, in file order.
DESCRIPTORS = ("RecordID", "Age", "Gender", "Height", "ICUType", "Weight")
STATIC_NAMES = ("Age", "Gender", "Height", "ICUType", "Weight")
LABEL_NAME = "In-hospital_death"
#: Channel name of the time-varying weight; the admission weight is the static "Weight"
#: (one name for both would collide in every table with static columns).
WEIGHT_CHANNEL = "Weight_t"
#: The challenge's 37 time-series variables, in the order of its documentation.
CHANNELS = (
    "Albumin", "ALP", "ALT", "AST", "Bilirubin", "BUN", "Cholesterol", "Creatinine",
    "DiasABP", "FiO2", "GCS", "Glucose", "HCO3", "HCT", "HR", "K", "Lactate", "Mg", "MAP",
    "MechVent", "Na", "NIDiasABP", "NIMAP", "NISysABP", "PaCO2", "PaO2", "pH", "Platelets",
    "RespRate", "SaO2", "SysABP", "Temp", "TroponinI", "TroponinT", "Urine", "WBC",
    WEIGHT_CHANNEL,
)  # fmt: skip
MISSING = -1.0
_HEADER = "Time,Parameter,Value"
_RECORD_FILE = re.compile(r"^\d+\.txt$")
_RECORD_ID = re.compile(r"(\d+)\.txt$")
_OUTCOMES_FILE = "Outcomes*.txt"
_TIME = re.compile(r"^\s*(\d+):([0-5]\d)\s*$")


def read_physionet2012(
    path: str | Path,
    outcomes: str | Path | None = None,
    channels: Sequence[str] | None = None,
) -> SeriesDataset:
    """Read a PhysioNet 2012 ``set-a``-style folder or its ``.tar.gz`` into a dataset.

    Patient files are the regular files named ``<digits>.txt`` (in the folder itself, or
    anywhere inside the archive, read straight from it: nothing is extracted; members
    that are links, devices, absolute paths or contain ``..`` are skipped). Times become
    hours since admission (float, minute resolution). A value of -1 is missing: such
    measurements are left out, such descriptors become NaN. Several values of one
    parameter in the same minute are averaged. The first ``Weight`` at ``00:00`` is the
    admission descriptor (static ``Weight``); every later one is the time-varying
    channel ``"Weight_t"``.

    Args:
        path: a folder of ``<RecordID>.txt`` files, or a tar archive (``.tar.gz``) of one.
        outcomes: an ``Outcomes-a.txt``-style table (``RecordID,...,In-hospital_death``).
            If None, every ``Outcomes*.txt`` inside the archive, in the folder, or next
            to the folder or archive is used; with none, series have no label.
        channels: parameters to keep, in this order (``"Weight_t"`` for the weight
            series). None keeps the 37 channels of :data:`CHANNELS` (all of them, even
            when never measured, so that sets a, b and c line up) followed by any other
            parameter found in the files, sorted.

    Returns:
        A :class:`SeriesDataset`, one series per record ordered by RecordID, with ids the
        RecordIDs (``id_name="RecordID"``, ``time_name="Time"``, unit ``"h"``),
        ``static_names`` ``("Age", "Gender", "Height", "ICUType", "Weight")`` and, when
        outcomes were found, label ``"In-hospital_death"`` (None for records without one).

    Raises:
        LatentODEError: if ``path`` or ``outcomes`` does not exist or is neither a folder
            nor a tar archive; there are no patient files; a file's header is not
            ``Time,Parameter,Value``; a line has other than three fields, an unreadable
            time or value (file and line named); two files hold the same RecordID; an
            outcomes table lacks ``RecordID`` or ``In-hospital_death``; or a requested
            channel is unknown.
    """
    path = Path(path)
    if not path.exists():
        raise LatentODEError(
            f"{path}: no such file or folder; pass the PhysioNet 2012 'set-a' folder or "
            "its .tar.gz archive."
        )
    if path.is_dir():
        records = [(str(p), p.read_bytes()) for p in sorted(path.iterdir()) if _is_record(p)]
        inside: list[tuple[str, bytes]] = []
        near = [path, path.parent]
    elif tarfile.is_tarfile(path):
        records, inside = _read_archive(path)
        near = [path.parent]
    else:
        raise LatentODEError(
            f"{path}: not a folder or a tar archive; pass the PhysioNet 2012 'set-a' folder "
            "or its .tar.gz archive."
        )
    if not records:
        raise LatentODEError(
            f"{path}: no patient files (<RecordID>.txt) found; is this a PhysioNet 2012 "
            "'set-a'-style folder or archive?"
        )
    if outcomes is None:
        found = inside + _outcome_files(*near)
    else:
        outcomes = Path(outcomes)
        if not outcomes.is_file():
            raise LatentODEError(f"{outcomes}: outcomes file not found.")
        found = [(str(outcomes), outcomes.read_bytes())]
    labels = _read_outcomes(found) if found else None

    rows = _parse_records(records)
    ids, static = _descriptors(rows, records)
    measured = rows[~rows["descriptor"] & (rows["value"] != MISSING)]
    names = _channel_names(channels, measured["parameter"].unique())
    return _assemble(measured, names, ids, static, labels)


def _is_record(p: Path) -> bool:
    return p.is_file() and not p.is_symlink() and bool(_RECORD_FILE.match(p.name))


def _outcome_files(*folders: Path) -> list[tuple[str, bytes]]:
    """Every ``Outcomes*.txt`` regular file in these folders, as (name, bytes)."""
    paths = sorted({p for d in folders for p in d.glob(_OUTCOMES_FILE) if p.is_file()})
    return [(str(p), p.read_bytes()) for p in paths]


def _read_archive(path: Path) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """(patient files, outcome files) of a tar archive, each as (name, bytes), in name order."""
    records, outcomes = [], []
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if not member.isreg() or not parts or parts[0] == "/" or ".." in parts:
                    continue
                is_record = bool(_RECORD_FILE.match(parts[-1]))
                if is_record or fnmatch.fnmatchcase(parts[-1], _OUTCOMES_FILE):
                    data = tar.extractfile(member).read()
                    target = records if is_record else outcomes
                    target.append((f"{path}:{member.name}", data))
    except (tarfile.TarError, OSError, EOFError) as err:
        raise LatentODEError(f"{path}: cannot read the archive ({err}).") from None
    return sorted(records), sorted(outcomes)


def _text(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LatentODEError(f"{name}: not a UTF-8 text file.") from None


def _parse_records(records: list[tuple[str, bytes]]) -> pd.DataFrame:
    """Every line of every record: file index, line number, parameter, minute, value, descriptor.

    All files go through pandas' C parser in one pass (``HH:MM`` read as two fields);
    the first bad line, in file order, is reported with its file and line number.
    """
    bodies, n_lines = [], []
    for name, data in records:
        text = _text(name, data)
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        header, _, body = text.partition("\n")
        if header.replace(" ", "") != _HEADER:
            raise LatentODEError(
                f"{name}: the first line must be the header {_HEADER!r} of a PhysioNet 2012 "
                f"record, found {header[:60]!r}."
            )
        body += "\n" if body and not body.endswith("\n") else ""
        bodies.append(body)
        n_lines.append(body.count("\n"))
    n_lines = np.asarray(n_lines, dtype=np.int64)
    file_of = np.repeat(np.arange(len(records)), n_lines)  # [L]
    line_of = np.arange(n_lines.sum()) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines) + 2
    table = _read_lines("".join(bodies).replace(":", ","), len(file_of))
    if table is None:  # a line with too many fields: find it the slow way
        _raise_first_bad_line(records)
    hour = pd.to_numeric(table["hour"], errors="coerce").to_numpy(dtype=np.float64)
    minute = pd.to_numeric(table["minute"], errors="coerce").to_numpy(dtype=np.float64)
    value = pd.to_numeric(table["value"], errors="coerce").to_numpy(dtype=np.float64)
    parameter = table["parameter"].str.strip()
    ok = (
        (hour >= 0)
        & (hour == np.floor(hour))
        & (minute >= 0)
        & (minute < 60)
        & (minute == np.floor(minute))
        & np.isfinite(value)
        & parameter.notna().to_numpy()
        & table["extra"].isna().to_numpy()
    )
    maybe_blank = np.flatnonzero(~ok & table.iloc[:, 1:].isna().all(axis=1).to_numpy())
    blank = np.zeros(len(ok), dtype=bool)
    blank[maybe_blank] = table["hour"].iloc[maybe_blank].fillna("").astype(str).str.strip() == ""
    bad = np.flatnonzero(~ok & ~blank)
    if bad.size:
        name, data = records[file_of[bad[0]]]
        _raise_bad_line(name, _text(name, data), int(line_of[bad[0]]))
    rows = pd.DataFrame(
        {
            "file": file_of[ok],
            "line": line_of[ok],
            "parameter": parameter[ok].to_numpy(),
            "minute": (hour[ok] * 60 + minute[ok]).astype(np.int64),
            "value": value[ok],
        }
    )
    # descriptors: the first line of each, and for Weight only the first one at 00:00
    is_desc = rows["parameter"].isin(DESCRIPTORS) & (
        (rows["parameter"] != "Weight") | (rows["minute"] == 0)
    )
    first = ~rows[is_desc].duplicated(["file", "parameter"])
    rows["descriptor"] = False
    rows.loc[first.index[first.to_numpy()], "descriptor"] = True
    extra = is_desc & ~rows["descriptor"] & (rows["parameter"] != "Weight")
    return rows[~extra]


def _read_lines(text: str, n_lines: int) -> pd.DataFrame | None:
    """``hour,minute,parameter,value`` lines → a table of rows, or None if a line has 6+ fields."""
    names = ["hour", "minute", "parameter", "value", "extra"]
    if not text:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in names})
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            table = pd.read_csv(
                io.StringIO(text),
                header=None,
                names=names,
                index_col=False,
                dtype={"parameter": str},
                skip_blank_lines=False,
                skipinitialspace=True,
            )
        except (pd.errors.ParserError, pd.errors.ParserWarning):
            return None
    return table if len(table) == n_lines else None


def _line_problem(line: str) -> str | None:
    """What is wrong with one ``Time,Parameter,Value`` line, or None if it reads."""
    if not line.strip():
        return None
    fields = line.split(",")
    if len(fields) != 3:
        return "expected three fields 'Time,Parameter,Value'"
    if not _TIME.match(fields[0]):
        return "cannot read the time (expected HH:MM since admission)"
    try:
        if np.isfinite(float(fields[2])):
            return None
    except ValueError:
        pass
    return "cannot read the value as a number"


def _raise_bad_line(name: str, text: str, line: int) -> None:
    content = text.splitlines()[line - 1]
    problem = _line_problem(content) or "cannot read this line"
    raise LatentODEError(f"{name}, line {line}: {problem}: {content!r}.")


def _raise_first_bad_line(records: list[tuple[str, bytes]]) -> None:
    for name, data in records:
        lines = _text(name, data).splitlines()
        for i, content in enumerate(lines[1:], start=2):
            if _line_problem(content):
                _raise_bad_line(name, "\n".join(lines), i)
    raise LatentODEError("cannot read the PhysioNet 2012 records; check their format.")


def _descriptors(
    rows: pd.DataFrame, records: list[tuple[str, bytes]]
) -> tuple[np.ndarray, np.ndarray]:
    """Record ids [F] (int64) and static descriptors [F, 5] (NaN where missing)."""
    desc = rows[rows["descriptor"]].pivot(index="file", columns="parameter", values="value")
    desc = desc.reindex(index=range(len(records)), columns=list(DESCRIPTORS))
    desc = desc.mask(desc == MISSING)
    stems = [int(_RECORD_ID.search(name).group(1)) for name, _ in records]
    ids = desc["RecordID"].fillna(pd.Series(stems, dtype=np.float64)).to_numpy()
    ids = ids.astype(np.int64)
    order = np.argsort(ids, kind="stable")
    dup = np.flatnonzero(np.diff(ids[order]) == 0)
    if dup.size:
        a, b = order[dup[0]], order[dup[0] + 1]
        raise LatentODEError(
            f"RecordID {ids[a]} appears in two files: {records[a][0]} and {records[b][0]}; "
            "read one set at a time."
        )
    return ids, desc[list(STATIC_NAMES)].to_numpy(dtype=np.float64)


def _channel_names(channels: Sequence[str] | None, found: np.ndarray) -> list[str]:
    """The dataset's channels: the requested ones, or the canonical 37 plus any others found."""
    found_names = {WEIGHT_CHANNEL if p == "Weight" else str(p) for p in found}
    if channels is None:
        return list(CHANNELS) + sorted(found_names - set(CHANNELS))
    if isinstance(channels, str):
        channels = [channels]
    names = [str(c) for c in channels]
    known = set(CHANNELS) | found_names
    unknown = [c for c in names if c not in known]
    if unknown:
        hint = " (the time-varying weight is 'Weight_t')" if "Weight" in unknown else ""
        raise LatentODEError(
            f"unknown channel(s) {unknown}{hint}; PhysioNet 2012 channels are "
            f"{', '.join(sorted(known))}."
        )
    if len(set(names)) != len(names):
        raise LatentODEError(f"channels lists a name twice: {names}.")
    return names


def _read_outcomes(sources: list[tuple[str, bytes]]) -> dict[int, float | None]:
    """RecordID → In-hospital_death (None where -1 or empty) from every outcomes table."""
    labels: dict[int, float | None] = {}
    for name, data in sources:
        try:
            table = pd.read_csv(io.StringIO(_text(name, data)), skipinitialspace=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise LatentODEError(f"{name}: cannot read the outcomes table ({err}).") from None
        missing = [c for c in ("RecordID", LABEL_NAME) if c not in table.columns]
        if missing:
            raise LatentODEError(
                f"{name}: outcomes table lacks column(s) {missing}; expected the header "
                f"'RecordID,SAPS-I,SOFA,Length_of_stay,Survival,{LABEL_NAME}'."
            )
        ids = pd.to_numeric(table["RecordID"], errors="coerce")
        death = pd.to_numeric(table[LABEL_NAME], errors="coerce")
        if ids.isna().any():
            row = int(np.flatnonzero(ids.isna().to_numpy())[0]) + 2
            raise LatentODEError(f"{name}, line {row}: RecordID is not a number.")
        for rid, value in zip(ids.astype(np.int64), death.mask(death == MISSING)):
            label = None if pd.isna(value) else float(value)
            if labels.get(int(rid), label) != label:
                raise LatentODEError(
                    f"{name}: RecordID {rid} has In-hospital_death {label}, another outcomes "
                    f"table says {labels[int(rid)]}; pass outcomes= explicitly."
                )
            labels[int(rid)] = label
    return labels


def _assemble(
    measured: pd.DataFrame,
    names: list[str],
    ids: np.ndarray,
    static: np.ndarray,
    labels: dict[int, float | None] | None,
) -> SeriesDataset:
    """Average same-minute duplicates and build one series per record, ordered by RecordID."""
    index = {("Weight" if c == WEIGHT_CHANNEL else c): j for j, c in enumerate(names)}
    ch = measured["parameter"].map(index)
    kept = measured[ch.notna().to_numpy()]
    cells = (
        pd.DataFrame(
            {
                "file": kept["file"].to_numpy(),
                "minute": kept["minute"].to_numpy(),
                "channel": ch.dropna().astype(np.int64).to_numpy(),
                "value": kept["value"].to_numpy(),
            }
        )
        .groupby(["file", "minute", "channel"], sort=True)["value"]
        .mean()
        .reset_index()
    )
    stamps = cells[["file", "minute"]].drop_duplicates()  # sorted by file, then minute
    span = int(cells["minute"].max()) + 1 if len(cells) else 1
    stamp_key = stamps["file"].to_numpy() * span + stamps["minute"].to_numpy()  # [R]
    row_of = np.searchsorted(
        stamp_key, cells["file"].to_numpy() * span + cells["minute"].to_numpy()
    )
    values = np.full((len(stamps), len(names)), np.nan)  # [R, C]
    values[row_of, cells["channel"].to_numpy()] = cells["value"].to_numpy()
    times = stamps["minute"].to_numpy() / 60.0  # [R] hours
    bounds = np.searchsorted(stamps["file"].to_numpy(), np.arange(len(ids) + 1))

    series = []
    for k in np.argsort(ids, kind="stable"):
        rows = slice(bounds[k], bounds[k + 1])
        rid = int(ids[k])
        label = None if labels is None else labels.get(rid)
        series.append(make_series(rid, times[rows], values[rows], static=static[k], label=label))
    return SeriesDataset(
        series,
        channels=names,
        time_axis=TimeAxis(unit="h"),
        static_names=STATIC_NAMES,
        label_name=None if labels is None else LABEL_NAME,
        id_name="RecordID",
        time_name="Time",
    )
