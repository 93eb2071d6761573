"""Streaming prediction: ``lo.iter_csv``, ``predict_stream`` and ``latentode predict`` in chunks.

- ``iter_csv`` chunks concatenate to exactly what ``read_csv`` gives (wide, long, datetimes,
  statics, labels), whatever the chunk and read-block sizes, and raise ``read_csv``'s
  own messages with the file's line numbers; non-contiguous series are an error;
- ``predict_stream`` yields, per chunk, what ``predict`` gives for that chunk (same seed);
- the CLI streams into a temporary file: its output equals the non-streamed prediction,
  and an error or Ctrl-C mid-stream leaves the target untouched and no temporary file;
- peak RSS of predicting N and 10 N series from the CLI does not grow with N.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import fit_tiny_spiral

import latentode as lo
from latentode import cli
from latentode.errors import LatentODEError

TINY = {"latent_dim": 2, "hidden": 8, "encoder_hidden": 8, "batch_size": 16}
N_SAMPLES = 5


# ---- data ------------------------------------------------------------------------------------
def _frame(n_series: int = 23, seed: int = 0) -> pd.DataFrame:
    """Wide frame sorted by id: 1-6 rows per series, a sparse channel, a static and a label."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n_series):
        n = int(rng.integers(1, 7))
        t = np.sort(rng.choice(40, n, replace=False)) / 4
        b = np.where(rng.random(n) < 0.5, np.nan, rng.normal(size=n))
        parts.append(
            pd.DataFrame(
                {
                    "sid": f"s{i:03d}",
                    "t": t,
                    "a": rng.normal(size=n),
                    "b": b,
                    "age": float(rng.integers(20, 90)),
                    "y": float(i % 2),
                }
            )
        )
    df = pd.concat(parts, ignore_index=True)
    df.loc[0, "b"] = 1.5  # every channel observed at least once
    return df


def _write(df: pd.DataFrame, path) -> str:
    df.to_csv(path, index=False)
    return str(path)


def _chunks(path, **kwargs) -> list:
    return list(lo.iter_csv(path, **kwargs))


def _concat(chunks) -> pd.DataFrame:
    return pd.concat([c.to_dataframe() for c in chunks], ignore_index=True)


KW = {"id_col": "sid", "time_col": "t"}


# ---- iter_csv --------------------------------------------------------------------------------
@pytest.mark.parametrize(("per_chunk", "rows_per_read"), [(1, 1), (4, 3), (5, 7), (7, 1000)])
@pytest.mark.parametrize("layout", ["wide", "long", "datetime"])
def test_iter_csv_chunks_concatenate_to_read_csv(tmp_path, layout, per_chunk, rows_per_read):
    df = _frame()
    kwargs = {**KW, "static_cols": ["age"], "label_col": "y"}
    if layout == "datetime":
        df["t"] = pd.Timestamp("2024-03-01") + pd.to_timedelta(df["t"], unit="h")
    if layout == "long":
        wide = lo.from_dataframe(df, **kwargs)
        df = wide.to_dataframe("long")
        kwargs["format"] = "long"
    path = _write(df, tmp_path / "data.csv")
    whole = lo.read_csv(path, **kwargs)
    # small read blocks put block boundaries inside series' rows
    chunks = _chunks(path, series_per_chunk=per_chunk, rows_per_read=rows_per_read, **kwargs)
    assert [len(c) for c in chunks[:-1]] == [per_chunk] * (len(chunks) - 1)
    assert 1 <= len(chunks[-1]) <= per_chunk
    pd.testing.assert_frame_equal(_concat(chunks), whole.to_dataframe())
    for c in chunks:
        assert c.channels == whole.channels and c.static_names == whole.static_names
        assert c.label_name == whole.label_name and c.time_unit == whole.time_unit
    assert [s.id for c in chunks for s in c] == whole.ids


def test_iter_csv_labels_table_and_integer_ids(tmp_path):
    df = _frame(9).drop(columns="y")
    df["sid"] = df["sid"].str[1:].astype(int) + 7  # plain integers, read as ints
    path = _write(df, tmp_path / "data.csv")
    labels = pd.DataFrame({"sid": [7, 9, 15, 99], "died": [1.0, 0.0, 1.0, 0.0]})
    kwargs = {**KW, "labels": labels}
    with pytest.warns(UserWarning, match="1 label"):
        whole = lo.read_csv(path, **kwargs)
    with pytest.warns(UserWarning, match=r"1 label.*\b99\b"):  # once, at the end
        chunks = _chunks(path, series_per_chunk=2, rows_per_read=5, **kwargs)
    pd.testing.assert_frame_equal(_concat(chunks), whole.to_dataframe())
    assert all(isinstance(s.id, int) for c in chunks for s in c)


def test_non_contiguous_series_is_an_error(tmp_path):
    df = _frame(6)
    again = df[df["sid"] == "s001"].iloc[:1].assign(t=99.0)
    at_end = pd.concat([df, again], ignore_index=True)  # s001 again on the last line
    n0 = int((df["sid"] == "s000").sum())
    # s000's rows, one s001 row, s000 again
    soon = pd.concat([df.iloc[:n0], again, df.iloc[:1].assign(t=77.0), df.iloc[n0:]])
    for frame, line, sid in [(at_end, len(df) + 2, "s001"), (soon, n0 + 3, "s000")]:
        path = _write(frame, tmp_path / "data.csv")
        for per_chunk, rows_per_read in [(1, 1), (2, 3), (100, 100)]:
            with pytest.raises(LatentODEError) as err:
                _chunks(path, series_per_chunk=per_chunk, rows_per_read=rows_per_read, **KW)
            message = str(err.value)
            assert f"line {line} of data.csv: series {sid!r} appears again" in message
            assert "Sort the file by id" in message and "read_csv" in message
        lo.read_csv(path, **KW)  # read whole, the file is fine


def _break(df: pd.DataFrame, case: str) -> pd.DataFrame:
    df = df.copy()
    row = 57  # deep in the file: several chunks and read blocks before it
    if case == "text value":
        df["a"] = df["a"].astype(object)
        df.loc[row, "a"] = "oops"
    elif case == "bad time":
        df["t"] = df["t"].astype(object)
        df.loc[row, "t"] = "soon"
    elif case == "missing id":
        df.loc[row, "sid"] = np.nan
    elif case == "static varies":
        df.loc[row, "age"] = -1.0
    elif case == "duplicate":
        df = pd.concat([df.iloc[: row + 1], df.iloc[[row]].assign(a=9.0), df.iloc[row + 1 :]])
    elif case == "infinite":
        df.loc[row, "a"] = np.inf
    return df


@pytest.mark.parametrize(
    "case", ["text value", "bad time", "missing id", "static varies", "duplicate", "infinite"]
)
def test_errors_are_read_csvs_with_the_files_line_numbers(tmp_path, case):
    path = _write(_break(_frame(40), case), tmp_path / "data.csv")
    kwargs = {**KW, "static_cols": ["age"], "label_col": "y"}
    with pytest.raises(LatentODEError) as whole:
        lo.read_csv(path, **kwargs)
    assert "line " in str(whole.value) or case == "static varies"
    with pytest.raises(LatentODEError) as streamed:
        _chunks(path, series_per_chunk=3, rows_per_read=10, **kwargs)
    assert str(streamed.value) == str(whole.value)


@pytest.mark.parametrize(
    ("text", "kwargs"),
    [
        ("", {}),
        ("sid,t,a\n", {}),
        ("sid,t,a\ns0,1,2\n", {"id_col": "nope"}),
        ("sid;t;a\ns0;1;2\n", {}),
        ("sid,t,a\ns0,1,2\ns0,2,3,4\n", {}),
        ("sid,t,a,b\ns0,1,2,\ns1,2,3,\n", {}),
        ("sid,t,a\ns0,1,2\n", {"format": "tall"}),
    ],
)
def test_file_level_errors_match_read_csv(tmp_path, text, kwargs):
    path = tmp_path / "f.csv"
    path.write_text(text)
    kwargs = {**KW, **kwargs}
    with pytest.raises(LatentODEError) as whole:
        lo.read_csv(path, **kwargs)
    with pytest.raises(LatentODEError) as streamed:
        _chunks(path, series_per_chunk=1, rows_per_read=1, **kwargs)
    if "channel(s) with no observed value" in str(whole.value):  # found at the end
        assert "channel(s) with no observed value: ['b']" in str(streamed.value)
    else:
        assert str(streamed.value) == str(whole.value)


def test_bad_arguments(tmp_path):
    with pytest.raises(LatentODEError, match="file not found"):
        lo.iter_csv(tmp_path / "none.csv")
    path = _write(_frame(3), tmp_path / "d.csv")
    with pytest.raises(LatentODEError, match="series_per_chunk"):
        lo.iter_csv(path, series_per_chunk=0)


def test_a_channel_empty_in_one_chunk_is_kept(tmp_path):
    df = _frame(12)
    df.loc[df["sid"] > "s003", "b"] = np.nan  # b only in the first chunk
    path = _write(df, tmp_path / "d.csv")
    chunks = _chunks(path, series_per_chunk=4, **KW)
    assert all(c.channels == ("a", "b", "age", "y") for c in chunks)
    pd.testing.assert_frame_equal(_concat(chunks), lo.read_csv(path, **KW).to_dataframe())


def test_long_format_chunks_may_lack_variables_but_not_add_them(tmp_path):
    long = lo.from_dataframe(_frame(6)[["sid", "t", "a", "b"]], **KW).to_dataframe("long")
    lacks = long[~((long["sid"] == "s005") & (long["variable"] == "b"))]
    path = _write(lacks, tmp_path / "long.csv")
    chunks = _chunks(path, series_per_chunk=1, format="long", **KW)
    whole = lo.read_csv(path, format="long", **KW)
    assert chunks[-1].channels == whole.channels == ("a", "b")
    pd.testing.assert_frame_equal(_concat(chunks), whole.to_dataframe())
    adds = long[~((long["sid"] == "s000") & (long["variable"] == "b"))]
    path = _write(adds, tmp_path / "long.csv")
    with pytest.raises(LatentODEError, match=r"variable\(s\) \['b'\] are not among.*channels="):
        _chunks(path, series_per_chunk=1, format="long", **KW)
    chunks = _chunks(path, series_per_chunk=1, format="long", channels=["a", "b"], **KW)
    whole = lo.read_csv(path, format="long", channels=["a", "b"], **KW)
    pd.testing.assert_frame_equal(_concat(chunks), whole.to_dataframe())


def test_import_stays_light():
    code = "import sys, latentode as lo; lo.iter_csv; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- predict_stream --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return fit_tiny_spiral(TINY, tmp_path_factory.mktemp("logs"))


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    return str(model.save(tmp_path_factory.mktemp("model") / "model.safetensors"))


@pytest.fixture(scope="module")
def spiral_csv(tmp_path_factory):
    frame = lo.datasets.spiral(25, seed=1).to_dataframe()
    frame = frame[frame.groupby("series_id").cumcount() < 6]  # short series: quick
    return _write(frame, tmp_path_factory.mktemp("data") / "spiral.csv")


def _predict_chunks(model, path, per_chunk, times=None, seed=3, **kwargs) -> pd.DataFrame:
    """What predict_stream promises: predict on each chunk, every chunk with ``seed``."""
    chunks = lo.iter_csv(path, id_col="series_id", series_per_chunk=per_chunk)
    parts = []
    for c in chunks:
        mine = times if not isinstance(times, dict) else {i: times[i] for i in c.ids if i in times}
        parts.append(model.predict(c, mine, n_samples=N_SAMPLES, seed=seed, **kwargs))
    return pd.concat(parts, ignore_index=True)


def test_predict_stream_is_predict_per_chunk(model, spiral_csv):
    chunks = lo.iter_csv(spiral_csv, id_col="series_id", series_per_chunk=7)
    frames = list(model.predict_stream(chunks, n_samples=N_SAMPLES, seed=3, quantiles=(0.1,)))
    assert len(frames) == 4 and all(f.attrs["nfe"] is not None for f in frames)
    expected = _predict_chunks(model, spiral_csv, 7, quantiles=(0.1,))
    pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), expected)
    # one chunk: exactly predict on the whole data set
    whole = lo.read_csv(spiral_csv, id_col="series_id")
    one = list(model.predict_stream(whole, n_samples=N_SAMPLES, seed=3, series_per_chunk=100))
    pd.testing.assert_frame_equal(one[0], model.predict(whole, n_samples=N_SAMPLES, seed=3))
    # a dataset is cut into chunks; the same seed repeats the run
    again = model.predict_stream(whole, n_samples=N_SAMPLES, seed=3, series_per_chunk=7)
    pd.testing.assert_frame_equal(
        pd.concat(list(again), ignore_index=True), _predict_chunks(model, spiral_csv, 7)
    )


def test_predict_stream_times_per_chunk(model, spiral_csv):
    times = pd.DataFrame({"series_id": [3, 3, 20], "time": [0.5, 9.0, 1.0]})
    chunks = lo.iter_csv(spiral_csv, id_col="series_id", series_per_chunk=7)
    got = pd.concat(
        list(model.predict_stream(chunks, times, n_samples=N_SAMPLES, seed=3)), ignore_index=True
    )
    assert got["series_id"].tolist() == [3, 3, 20]
    as_dict = {3: [0.5, 9.0], 20: [1.0]}
    pd.testing.assert_frame_equal(got, _predict_chunks(model, spiral_csv, 7, as_dict))
    shared = np.array([0.0, 2.5])
    chunks = lo.iter_csv(spiral_csv, id_col="series_id", series_per_chunk=7)
    got = pd.concat(list(model.predict_stream(chunks, shared, n_samples=N_SAMPLES, seed=3)))
    assert len(got) == 25 * 2
    chunks = lo.iter_csv(spiral_csv, id_col="series_id", series_per_chunk=7)
    stream = model.predict_stream(chunks, {3: [1.0], "3": [1.0], 77: [1.0]}, n_samples=2)
    with pytest.raises(LatentODEError, match=r"no context chunk holds: \['3', 77\]"):
        list(stream)
    chunks = lo.iter_csv(spiral_csv, id_col="series_id", series_per_chunk=7)
    stream = model.predict_stream(chunks, times.assign(series_id=[3, 99, 20]), n_samples=2)
    with pytest.raises(LatentODEError, match=r"no context chunk holds: \[99\]"):
        list(stream)


def test_predict_stream_bad_arguments(model):
    with pytest.raises(LatentODEError, match="series_per_chunk"):
        next(model.predict_stream(lo.datasets.spiral(3), series_per_chunk=0))
    with pytest.raises(LatentODEError, match="iterable"):
        next(model.predict_stream(42))


# ---- CLI ---------------------------------------------------------------------------------------
def _cli_predict(model_file, data, out, *extra) -> int:
    argv = ["predict", model_file, str(data), "--out", str(out), "--n-samples", str(N_SAMPLES)]
    return cli.main([*argv, "--seed", "3", "--id-col", "series_id", *map(str, extra)])


def test_cli_streams_what_predict_gives(model, model_file, spiral_csv, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    assert _cli_predict(model_file, spiral_csv, out, "--series-per-chunk", "7") == 0
    assert "wrote 150 rows for 25 series" in capsys.readouterr().out
    expected = _predict_chunks(model, spiral_csv, 7, quantiles=(0.05, 0.95))
    pd.testing.assert_frame_equal(pd.read_csv(out), _roundtrip(expected, tmp_path))
    # in one chunk: the non-streamed prediction
    assert _cli_predict(model_file, spiral_csv, out) == 0
    whole = lo.read_csv(spiral_csv, id_col="series_id")
    expected = model.predict(whole, n_samples=N_SAMPLES, seed=3, quantiles=(0.05, 0.95))
    pd.testing.assert_frame_equal(pd.read_csv(out), _roundtrip(expected, tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expected.csv", "pred.csv"]


def _roundtrip(frame: pd.DataFrame, folder) -> pd.DataFrame:
    frame.to_csv(folder / "expected.csv", index=False)
    return pd.read_csv(folder / "expected.csv")


def test_cli_times_file_is_matched_per_chunk(model, model_file, spiral_csv, tmp_path):
    times = tmp_path / "times.csv"
    pd.DataFrame({"series_id": [20, 3, 3], "time": [1.0, 0.5, 9.0]}).to_csv(times, index=False)
    out = tmp_path / "pred.csv"
    extra = ("--times", times, "--series-per-chunk", "7", "--quantiles", "0.5")
    assert _cli_predict(model_file, spiral_csv, out, *extra) == 0
    expected = _predict_chunks(model, spiral_csv, 7, {3: [0.5, 9.0], 20: [1.0]}, quantiles=[0.5])
    pd.testing.assert_frame_equal(pd.read_csv(out), _roundtrip(expected, tmp_path))
    pd.DataFrame({"series_id": [3, 99], "time": [1.0, 2.0]}).to_csv(times, index=False)
    out.write_text("old\n")
    assert _cli_predict(model_file, spiral_csv, out, *extra) == 2
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expected.csv", "pred.csv", "times.csv"]


@pytest.mark.parametrize("existing", [False, True])
def test_cli_error_mid_stream_leaves_no_file(model_file, spiral_csv, tmp_path, capsys, existing):
    frame = pd.read_csv(spiral_csv)
    frame["x"] = frame["x"].astype(object)
    frame.loc[len(frame) - 3, "x"] = "oops"  # in the last chunk
    bad = _write(frame, tmp_path / "bad.csv")
    out = tmp_path / "out" / "pred.csv"
    if existing:
        out.parent.mkdir()
        out.write_text("old\n")
    assert _cli_predict(model_file, bad, out, "--series-per-chunk", "5") == 2
    err = capsys.readouterr().err
    assert f"line {len(frame) - 1} of bad.csv" in err and "'oops'" in err
    assert out.read_text() == "old\n" if existing else not out.exists()
    assert [p.name for p in out.parent.iterdir()] == (["pred.csv"] if existing else [])


def test_cli_ctrl_c_mid_stream_leaves_no_file(model_file, spiral_csv, tmp_path, monkeypatch):
    calls = []
    predict = lo.LatentODE.predict

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return predict(self, *args, **kwargs)

    monkeypatch.setattr(lo.LatentODE, "predict", interrupted)
    out = tmp_path / "pred.csv"
    assert _cli_predict(model_file, spiral_csv, out, "--series-per-chunk", "5") == 130
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


# ---- bounded memory --------------------------------------------------------------------------
RSS_CHILD = """
import sys
import latentode as lo
from latentode.cli import main


def status(key):
    return next(line for line in open("/proc/self/status") if line.startswith(key)).split()[1]


lo.LatentODE.load(sys.argv[2])  # imports what predicting needs: the baseline
base = status("VmRSS")
code = main(sys.argv[1:])
print("RSS_KB", base, status("VmHWM"), code)
"""


def _many_series_csv(path, n_series: int) -> str:
    """``n_series`` spiral-like series of 3 points each, written without building a frame."""
    rng = np.random.default_rng(0)
    t = np.tile([0.1, 0.4, 0.9], n_series)
    ids = np.repeat(np.arange(n_series), 3)
    xy = rng.normal(size=(len(t), 2)).round(4)
    body = "\n".join(f"{i},{s:g},{x},{y}" for i, s, (x, y) in zip(ids, t, xy))
    path.write_text("series_id,time,x,y\n" + body + "\n")
    return str(path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_cli_peak_memory_does_not_grow_with_the_number_of_series(model_file, tmp_path):
    """``latentode predict`` on 2,000 and on 20,000 series, each in a fresh process: the
    peak RSS above the process's RSS once imports and model are loaded must not grow.

    Measured on 2 CPU cores: streamed 22 MB -> 25 MB (x1.14; total peak 348 -> 351 MB);
    the non-streamed path (read_csv + predict on every series, one to_csv) 31 MB -> 77 MB
    (x2.5; total 357 -> 403 MB), so a bound of x1.5 fails for anything that holds all
    series' data or predictions at once."""
    extra = {}
    for n in (2_000, 20_000):
        data = _many_series_csv(tmp_path / f"d{n}.csv", n)
        argv = ["predict", model_file, data, "--out", tmp_path / f"p{n}.csv"]
        argv += ["--n-samples", "5", "--series-per-chunk", "500"]
        result = subprocess.run(
            [sys.executable, "-c", RSS_CHILD, *map(str, argv)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        base, peak, code = result.stdout.split("RSS_KB")[-1].split()
        assert code == "0", result.stderr
        extra[n] = (int(peak) - int(base)) / 1024
        assert len(pd.read_csv(tmp_path / f"p{n}.csv")) == 3 * n
    assert extra[20_000] / extra[2_000] < 1.5, extra
