"""``latentode.distributed.predict`` on a local dask cluster of two worker processes.

- 20,000 short series through the cluster give what ``model.predict`` gives on the whole
  pandas frame with the same seed (draws are seeded per series; a fixed-step solver makes
  the shared solve of a batch matter only at rounding level), and each worker's peak
  memory during the run stays well under what the whole frame's prediction needs in one
  process;
- every form of ``times`` (None, one array, dict, pandas and dask DataFrames), quantile
  columns, other column names and empty partitions; errors before and during compute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import fit_tiny_spiral

import latentode as lo
from latentode.errors import LatentODEError

dask = pytest.importorskip("dask", reason="dask is not installed: pip install latentode[dask]")
dd = pytest.importorskip(
    "dask.dataframe", reason="dask is not installed: pip install latentode[dask]"
)
distributed = pytest.importorskip("distributed", reason="pip install latentode[dask]")
from latentode import distributed as lo_dask  # noqa: E402  (after the skip)

pytestmark = pytest.mark.slow
TINY = {"latent_dim": 2, "hidden": 8, "encoder_hidden": 8, "batch_size": 16, "seed": 0}
FIXED = {"solver": "rk4", "step_size": 0.02}  # the shared solve of a batch barely matters
KEY = ["series_id", "time"]
STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _frame(n_series: int, seed: int = 0) -> pd.DataFrame:
    """Wide rows: 3-5 points per series at random times in [0, 2]; y missing 30% of the time."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(3, 6, n_series)
    ids = np.repeat(np.arange(n_series) * 7 + 3, counts)  # ids need not be 0..N-1
    t = rng.uniform(0, 2, counts.sum())
    order = np.lexsort((t, ids))
    x = rng.normal(size=len(ids))
    y = np.where(rng.random(len(ids)) < 0.3, np.nan, rng.normal(size=len(ids)))
    return pd.DataFrame({"series_id": ids, "time": t, "x": x, "y": y}).iloc[order]


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEY).reset_index(drop=True)


def _assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The same (id, time) rows, and values equal up to the solver's rounding."""
    got, expected = _sorted(got), _sorted(expected)
    pd.testing.assert_frame_equal(got[KEY], expected[KEY], check_dtype=False)  # str: pyarrow
    scale = np.abs(expected[["x", "y"]].to_numpy()).max()
    np.testing.assert_allclose(got.drop(columns=KEY), expected.drop(columns=KEY), atol=1e-5 * scale)


def _kib(field: str) -> int:
    """A ``/proc/self/status`` field (VmRSS, VmHWM) of this process, in KiB."""
    line = next(s for s in STATUS.read_text().splitlines() if s.startswith(field + ":"))
    return int(line.split()[1])


def _worker_kib(client, field: str) -> list[int]:
    """The field of each worker process (read there: Path.read_text runs on the worker)."""
    texts = client.run(STATUS.read_text).values()
    return [
        int(next(s for s in text.splitlines() if s.startswith(field + ":")).split()[1])
        for text in texts
    ]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return fit_tiny_spiral(TINY, tmp_path_factory.mktemp("logs"))


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit="2GiB",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


_WHOLE_FRAME = """
import json, sys
from pathlib import Path
import pandas as pd
import latentode as lo
folder = Path(sys.argv[1])
kwargs = json.loads((folder / "kwargs.json").read_text())
model = lo.load(folder / "model.safetensors")
frame = pd.read_parquet(folder / "frame.parquet")
status, clear_refs = Path("/proc/self/status"), Path("/proc/self/clear_refs")
def kib(field):
    line = next(s for s in status.read_text().splitlines() if s.startswith(field + ":"))
    return int(line.split()[1])
clear_refs.write_text("5")  # VmHWM := VmRSS
before = kib("VmRSS")
model.predict(frame, **kwargs).to_parquet(folder / "expected.parquet")
(folder / "kib.txt").write_text(str(kib("VmHWM") - before))
"""


def _whole_frame_in_a_process(model, frame, kwargs, folder) -> subprocess.Popen:
    """Start ``model.predict`` of the whole frame in a fresh process, which writes the
    prediction and its peak memory above its start (model and data loaded, KiB)."""
    model.save(folder / "model.safetensors")
    frame.to_parquet(folder / "frame.parquet")
    (folder / "kwargs.json").write_text(json.dumps(kwargs))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _WHOLE_FRAME, str(folder)], env=env)


@pytest.mark.skipif(not CLEAR_REFS.exists(), reason="reads peak memory from Linux's /proc")
def test_twenty_thousand_series_match_predict_with_bounded_worker_memory(model, client, tmp_path):
    frame = _frame(20_000)
    times = np.linspace(0.0, 2.5, 50)  # 1,000,000 predicted rows: memory that shows
    kwargs = {"times": times.tolist(), "n_samples": 5, "seed": 4, **FIXED}
    start = time.perf_counter()
    whole = _whole_frame_in_a_process(model, frame, kwargs, tmp_path)
    # meanwhile, warm the workers up (imports, the model's first load and first solve)
    lo_dask.predict(model, dd.from_pandas(frame[:200], npartitions=2), **kwargs).compute()
    assert whole.wait(timeout=300) == 0
    in_process_s = time.perf_counter() - start
    expected = pd.read_parquet(tmp_path / "expected.parquet")
    whole_kib = int((tmp_path / "kib.txt").read_text())

    client.run(CLEAR_REFS.write_text, "5")
    workers_before = _worker_kib(client, "VmRSS")
    ddf = dd.from_pandas(frame.sample(frac=1.0, random_state=0), npartitions=16)  # mixed up
    start = time.perf_counter()
    result = lo_dask.predict(model, ddf, **kwargs)
    # gathered partition by partition as each finishes, so a worker does not keep its
    # finished partitions (``compute()`` would concatenate them all on one worker, and
    # on a busy machine one worker may finish most of them before any is gathered)
    parts = [f.result() for f in distributed.as_completed(client.compute(result.to_delayed()))]
    got = pd.concat(parts, ignore_index=True)
    cluster_s = time.perf_counter() - start
    worker_kib = [hwm - rss for hwm, rss in zip(_worker_kib(client, "VmHWM"), workers_before)]

    assert len(got) == len(frame["series_id"].unique()) * len(times) == len(expected)
    _assert_same(got, expected)
    # One process holds every series' draws until it summarises them (312 MiB when this
    # was written); a worker holds one chunk of 1,000 series' draws at a time plus its
    # finished partitions until they are gathered (about 60 MiB each).
    print(
        f"20,000 series x 50 times: {in_process_s:.1f} s in one process (with its start and "
        "the workers' warm-up beside it), "
        f"{cluster_s:.1f} s on the cluster; peak memory above the start: "
        f"{whole_kib / 1024:.0f} MiB in one process, "
        f"{[round(k / 1024) for k in worker_kib]} MiB per worker"
    )
    assert max(worker_kib) < 0.5 * whole_kib


@pytest.fixture(scope="module")
def small():
    return _frame(12, seed=1)


def test_every_form_of_times_and_empty_partitions(model, client, small):
    ids = small["series_id"].unique()
    rows = pd.DataFrame({"series_id": np.repeat(ids[::3], 2), "time": [0.25, 3.0] * 4})
    forms = {
        "none": None,
        "array": np.array([0.0, 1.5, 2.5]),
        "series": pd.Series([0.5, 2.0]),  # one array for all, not a frame to align
        "dict": {i: rows.loc[rows["series_id"] == i, "time"].to_numpy() for i in ids[::3]},
        "pandas": rows,
        "dask": dd.from_pandas(rows, npartitions=3),
    }
    kwargs = {"n_samples": 6, "seed": 1, "quantiles": (0.1, 0.9), **FIXED}
    ddf = dd.from_pandas(small, npartitions=24)
    sizes = ddf.shuffle(on="series_id", npartitions=24).map_partitions(len).compute()
    assert (sizes == 0).sum() >= 6  # 12 series in 24 partitions: many are empty
    results = {name: lo_dask.predict(model, ddf, t, **kwargs) for name, t in forms.items()}
    computed = dict(zip(results, dask.compute(*results.values())))  # one pass for all
    for name, times in forms.items():
        expected = model.predict(small, rows if name == "dask" else times, **kwargs)
        assert list(results[name].columns) == list(expected.columns), name
        assert dict(results[name].dtypes) == dict(computed[name].dtypes), name
        _assert_same(computed[name], expected)


def test_other_column_names_and_string_ids(model, client, small):
    renamed = small.rename(columns={"series_id": "patient", "time": "hours"})
    renamed["patient"] = "p" + renamed["patient"].astype(str)
    ddf = dd.from_pandas(renamed, npartitions=5)
    got = lo_dask.predict(model, ddf, id_col="patient", time_col="hours", n_samples=4, **FIXED)
    assert list(got.columns[:2]) == ["patient", "hours"]
    got = got.compute().rename(columns={"patient": "series_id", "hours": "time"})
    ids = "p" + small["series_id"].astype(str)
    _assert_same(got, model.predict(small.assign(series_id=ids), n_samples=4, **FIXED))


def test_bad_input_is_refused(model, client, small):
    ddf = dd.from_pandas(small, npartitions=2)
    with pytest.raises(LatentODEError, match="dask DataFrame"):
        lo_dask.predict(model, small)
    with pytest.raises(LatentODEError, match=r"no column\(s\) \['t'\]"):
        lo_dask.predict(model, ddf, time_col="t")
    with pytest.raises(lo.NotFittedError):
        lo_dask.predict(lo.LatentODE(), ddf)
    with pytest.raises(LatentODEError, match="series_per_chunk"):
        lo_dask.predict(model, ddf, series_per_chunk=0)
    unknown = pd.DataFrame({"series_id": [3, 123456], "time": [1.0, 1.0]})
    with pytest.raises(LatentODEError, match="123456"):
        lo_dask.predict(model, ddf, unknown, n_samples=2).compute()
