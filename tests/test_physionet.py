"""read_physionet2012 on small files written in the challenge's exact format."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from latentode.data.physionet import CHANNELS
from latentode.datasets import clinical, read_physionet2012
from latentode.errors import LatentODEError

HEADER = "Time,Parameter,Value"
OUTCOMES = (
    "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n"
    "132539,6,1,5,-1,0\n"
    "132540,16,8,8,-1,0\n"
    "132541,21,11,19,7,1\n"
)
# Three stays as PhysioNet writes them (descriptors first at 00:00, -1 = missing).
RECORDS = {
    "132539": """00:00,RecordID,132539
00:00,Age,54
00:00,Gender,0
00:00,Height,-1
00:00,ICUType,4
00:00,Weight,-1
00:07,GCS,15
00:07,HR,73
00:07,NIDiasABP,65
00:07,NIMAP,92.33
00:07,NISysABP,147
00:07,Temp,35.1
00:37,HR,77
00:37,HR,79
01:37,HR,-1
01:37,Temp,35.6
47:59,Urine,110
""",
    "132540": """00:00,RecordID,132540
00:00,Age,76
00:00,Gender,1
00:00,Height,175.3
00:00,ICUType,2
00:00,Weight,76
00:31,Weight,76.5
00:31,MAP,85
03:10,BUN,12
03:10,pH,7.45
26:05,Weight,77.25
""",
    "132541": """00:00,RecordID,132541
00:00,Age,44
00:00,Gender,0
00:00,Height,-1
00:00,ICUType,3
00:00,Weight,56.7
""",
}
STATIC = {
    132539: [54, 0, np.nan, 4, np.nan],
    132540: [76, 1, 175.3, 2, 76],
    132541: [44, 0, np.nan, 3, 56.7],
}
# (RecordID, channel) -> {hours: value}: every measurement written above, by hand
EXPECTED = {
    (132539, "GCS"): {7 / 60: 15},
    (132539, "HR"): {7 / 60: 73, 37 / 60: 78},  # two values in one minute are averaged
    (132539, "NIDiasABP"): {7 / 60: 65},
    (132539, "NIMAP"): {7 / 60: 92.33},
    (132539, "NISysABP"): {7 / 60: 147},
    (132539, "Temp"): {7 / 60: 35.1, 97 / 60: 35.6},  # HR -1 at 01:37 is missing
    (132539, "Urine"): {47 + 59 / 60: 110},
    (132540, "Weight_t"): {31 / 60: 76.5, 26 + 5 / 60: 77.25},
    (132540, "MAP"): {31 / 60: 85},
    (132540, "BUN"): {190 / 60: 12},
    (132540, "pH"): {190 / 60: 7.45},
}
TIMES = {
    132539: [7 / 60, 37 / 60, 97 / 60, 47 + 59 / 60],
    132540: [31 / 60, 190 / 60, 26 + 5 / 60],
    132541: [],
}


def write_set(folder: Path, records: dict[str, str] = RECORDS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for rid, body in records.items():
        (folder / f"{rid}.txt").write_text(f"{HEADER}\n{body}")
    return folder


def write_archive(path: Path, records: dict[str, str] = RECORDS, extra=()) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(_dir_member("set-a"))
        for rid, body in records.items():
            _add(tar, f"set-a/{rid}.txt", f"{HEADER}\n{body}")
        for name, text in extra:
            _add(tar, name, text)
    return path


def _dir_member(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


def _add(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def check_content(ds) -> None:
    """Every value written in RECORDS, and nothing else, is in ``ds``."""
    assert ds.ids == [132539, 132540, 132541]
    assert ds.static_names == ("Age", "Gender", "Height", "ICUType", "Weight")
    assert (ds.id_name, ds.time_name, ds.time_unit) == ("RecordID", "Time", "h")
    assert list(ds.channels) == list(CHANNELS)
    for s in ds:
        np.testing.assert_allclose(s.times, TIMES[s.id], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(s.static, STATIC[s.id])
        expected = np.full((len(s.times), len(ds.channels)), np.nan)
        for (rid, channel), points in EXPECTED.items():
            if rid == s.id:
                for t, v in points.items():
                    expected[np.argmin(np.abs(s.times - t)), ds.channels.index(channel)] = v
        np.testing.assert_allclose(s.values, expected, rtol=1e-12)
        assert np.array_equal(s.mask, ~np.isnan(expected))


def test_folder_every_value(tmp_path):
    folder = write_set(tmp_path / "set-a")
    (tmp_path / "Outcomes-a.txt").write_text(OUTCOMES)  # found next to the folder
    ds = read_physionet2012(folder)
    check_content(ds)
    assert ds.label_name == "In-hospital_death"
    assert [s.label for s in ds] == [0.0, 0.0, 1.0]


def test_archive_matches_folder(tmp_path):
    archive = write_archive(tmp_path / "set-a.tar.gz", extra=[("Outcomes-a.txt", OUTCOMES)])
    ds = read_physionet2012(archive)  # outcomes found inside the archive
    check_content(ds)
    assert [s.label for s in ds] == [0.0, 0.0, 1.0]


def test_archive_skips_unsafe_and_non_record_members(tmp_path):
    evil = f"{HEADER}\n00:00,RecordID,666\n00:10,HR,80\n"
    link = tarfile.TarInfo("set-a/777.txt")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    archive = tmp_path / "set-a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for rid, body in RECORDS.items():
            _add(tar, f"set-a/{rid}.txt", f"{HEADER}\n{body}")
        _add(tar, "../666.txt", evil)
        _add(tar, "/abs/665.txt", evil)
        _add(tar, "set-a/README.txt", "not a record")
        tar.addfile(link)
    ds = read_physionet2012(archive)
    check_content(ds)
    assert ds.label_name is None  # no outcomes anywhere


def test_outcomes_given_explicitly(tmp_path):
    folder = write_set(tmp_path / "set-a")
    table = tmp_path / "elsewhere" / "my_outcomes.csv"
    table.parent.mkdir()
    table.write_text(OUTCOMES.replace("132541,21,11,19,7,1", "132541,21,11,19,7,-1"))
    ds = read_physionet2012(folder, outcomes=table)
    assert [s.label for s in ds] == [0.0, 0.0, None]  # -1 is missing


def test_channel_selection_and_unknown_parameters(tmp_path):
    records = dict(RECORDS, **{"132542": "00:00,RecordID,132542\n00:05,NewLab,3.5\n"})
    folder = write_set(tmp_path / "set-a", records)
    ds = read_physionet2012(folder)
    assert ds.channels[-1] == "NewLab" and ds.channels[:-1] == CHANNELS
    assert ds.loc[132542].values[0, -1] == 3.5
    assert np.isnan(ds.loc[132542].static).all()
    picked = read_physionet2012(folder, channels=["HR", "Weight_t"])
    assert picked.channels == ("HR", "Weight_t")
    # only time stamps with a kept channel remain
    np.testing.assert_allclose(picked.loc[132539].times, [7 / 60, 37 / 60])
    np.testing.assert_allclose(picked.loc[132539].values, [[73, np.nan], [78, np.nan]])
    np.testing.assert_allclose(picked.loc[132540].values, [[np.nan, 76.5], [np.nan, 77.25]])
    with pytest.raises(LatentODEError, match="Weight_t"):
        read_physionet2012(folder, channels=["Weight"])
    with pytest.raises(LatentODEError, match="unknown channel"):
        read_physionet2012(folder, channels=["HeartRate"])


def test_round_trip_of_a_synthetic_set(tmp_path):
    """Write generated stays in the challenge format; reading them gives every value back."""
    ds = clinical(n_patients=25, seed=11)
    folder = tmp_path / "set-a"
    folder.mkdir()
    rows = ["RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"]
    for s in ds:
        rid = 140000 + s.id
        lines = [HEADER, f"00:00,RecordID,{rid}"]
        for name, v in zip(ds.static_names, s.static):
            lines.append(f"00:00,{name},{-1 if np.isnan(v) else v:g}")
        for t, row in zip(s.times, s.values):
            m = round(t * 60)
            lines += [
                f"{m // 60:02d}:{m % 60:02d},{c},{float(v)!r}"
                for c, v in zip(ds.channels, row)
                if v == v
            ]
        (folder / f"{rid}.txt").write_text("\n".join(lines) + "\n")
        rows.append(f"{rid},0,0,0,-1,{int(s.label)}")
    (tmp_path / "Outcomes-a.txt").write_text("\n".join(rows) + "\n")
    back = read_physionet2012(folder)
    columns = [back.channels.index(c) for c in ds.channels]
    for s in ds:
        r = back.loc[140000 + s.id]
        assert np.array_equal(r.times, s.times)
        assert np.array_equal(r.values[:, columns], s.values, equal_nan=True)
        assert np.array_equal(r.static, s.static, equal_nan=True) and r.label == s.label


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0x:07,HR,73", r"132540\.txt, line 9: cannot read the time"),
        ("00:75,HR,73", r"132540\.txt, line 9: cannot read the time"),
        ("00:07,HR,seventy", r"132540\.txt, line 9: cannot read the value"),
        ("00:07,HR", r"132540\.txt, line 9: expected three fields"),
        ("00:07,HR,73,1,2", r"132540\.txt, line 9: expected three fields"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    body = RECORDS["132540"].replace("00:31,MAP,85", line)
    folder = write_set(tmp_path / "set-a", dict(RECORDS, **{"132540": body}))
    with pytest.raises(LatentODEError, match=message):
        read_physionet2012(folder)


def test_bad_header_names_the_file(tmp_path):
    folder = write_set(tmp_path / "set-a")
    (folder / "132540.txt").write_text("time;parameter;value\n00:00,RecordID,132540\n")
    with pytest.raises(LatentODEError, match=r"132540\.txt: the first line must be the header"):
        read_physionet2012(folder)
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, "set-a/132539.txt", "Time,Param,Value\n")
    with pytest.raises(LatentODEError, match=r"a\.tar\.gz:set-a/132539\.txt: the first line"):
        read_physionet2012(archive)


def test_missing_empty_and_wrong_inputs(tmp_path):
    with pytest.raises(LatentODEError, match="no such file or folder"):
        read_physionet2012(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LatentODEError, match="no patient files"):
        read_physionet2012(tmp_path / "empty")
    archive = tmp_path / "empty.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, "set-a/notes.txt", "hello")
    with pytest.raises(LatentODEError, match="no patient files"):
        read_physionet2012(archive)
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(LatentODEError, match="not a folder or a tar archive"):
        read_physionet2012(tmp_path / "data.csv")
    folder = write_set(tmp_path / "set-a")
    with pytest.raises(LatentODEError, match="outcomes file not found"):
        read_physionet2012(folder, outcomes=tmp_path / "Outcomes-x.txt")
    (tmp_path / "bad_outcomes.txt").write_text("RecordID,Death\n132539,0\n")
    with pytest.raises(LatentODEError, match="lacks column"):
        read_physionet2012(folder, outcomes=tmp_path / "bad_outcomes.txt")


def test_duplicate_record_ids_are_refused(tmp_path):
    folder = write_set(tmp_path / "set-a")
    (folder / "999.txt").write_text(f"{HEADER}\n00:00,RecordID,132539\n")
    with pytest.raises(LatentODEError, match="RecordID 132539 appears in two files"):
        read_physionet2012(folder)
