"""The thread policy: ``fit`` and the query methods run with 1 torch intra-op thread by
default, with ``threads=k`` when the estimator says so, and give the caller's count back
afterwards (also after an exception); a bad ``threads`` is refused by name. Under the
policy a large query runs its network passes with a thread per idle core (the load
readings replaced by fixed ones here).

The counts are recorded inside the work itself: a Lightning callback at every training
batch, and the network's ``sample``/``encode`` wrapped to note the count at each call.
The caller runs with 3 threads, a count neither the policy (1) nor the override (2)
would set, so a count that leaked or was never set shows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

import latentode as lo
from latentode.errors import LatentODEError
from latentode.estimator import threads
from latentode.estimator.threads import POLICY_THREADS, thread_count

CALLER = 3  # the caller's count during each test
TINY = {"latent_dim": 2, "hidden": 8, "encoder_hidden": 4, "depth": 1, "batch_size": 4}
FIT = {"max_epochs": 1, "accelerator": "cpu", "devices": 1, "progress_bar": False}


class ThreadsAtBatch(Callback):
    """Records ``torch.get_num_threads()`` at the start of every training batch."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append(torch.get_num_threads())


@pytest.fixture
def caller():
    """The test runs with CALLER threads; the count before it is restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(CALLER)
    yield CALLER
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return lo.datasets.spiral(n_series=12, n_points=10, n_observed=8, seed=0)


def _fit(data, log_dir, **params) -> tuple[lo.LatentODE, list[int]]:
    record = ThreadsAtBatch()
    model = lo.LatentODE(**TINY, residual=False, **params)
    model.fit(data, log_dir=log_dir, callbacks=[record], **FIT)
    return model, record.seen


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    """A tiny model fitted under the policy, and the counts its training batches saw."""
    before = torch.get_num_threads()
    torch.set_num_threads(CALLER)
    try:
        model, seen = _fit(data, tmp_path_factory.mktemp("policy"))
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    return model, seen, after


# ---- fit ---------------------------------------------------------------------------------
def test_fit_trains_with_one_thread_by_default_and_restores_the_callers(fitted) -> None:
    model, seen, after = fitted
    assert model.threads is None
    assert len(seen) == 8  # 9 training series: 32 examples per epoch, in batches of 4
    assert seen == [POLICY_THREADS] * len(seen) and POLICY_THREADS == 1
    assert after == CALLER


def test_fit_trains_with_the_threads_asked_for(data, tmp_path, caller) -> None:
    model, seen = _fit(data, tmp_path, threads=2)
    assert seen == [2] * 8
    assert torch.get_num_threads() == caller
    assert model.get_params()["threads"] == 2


def test_fit_restores_the_callers_count_after_an_error(data, tmp_path, caller) -> None:
    class Boom(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            assert torch.get_num_threads() == 2
            raise RuntimeError("boom")

    model = lo.LatentODE(**TINY, residual=False, threads=2)
    with pytest.raises(RuntimeError, match="boom"):
        model.fit(data, log_dir=tmp_path, callbacks=[Boom()], **FIT)
    assert torch.get_num_threads() == caller


# ---- the query methods -------------------------------------------------------------------
QUERIES = {
    "predict": lambda m, ctx, t: m.predict(ctx, t, n_samples=2),
    "sample": lambda m, ctx, t: m.sample(ctx, t, n_samples=2),
    "latent": lambda m, ctx, t: m.latent(ctx, t, n_samples=2),
    "evaluate": lambda m, ctx, t: m.evaluate(ctx, n_samples=2),
    "score": lambda m, ctx, t: m.score(ctx, n_samples=2),
    "predict_stream": lambda m, ctx, t: list(
        m.predict_stream(ctx, t, n_samples=2, series_per_chunk=2)
    ),
}


def _recording(monkeypatch, network, method: str, fail: bool = False) -> list[int]:
    """Wrap ``network.<method>`` to record the thread count at each call (or to raise)."""
    seen: list[int] = []
    original = getattr(network, method)

    def wrapped(*args, **kwargs):
        seen.append(torch.get_num_threads())
        if fail:
            raise RuntimeError("boom")
        return original(*args, **kwargs)

    monkeypatch.setattr(network, method, wrapped)
    return seen


@pytest.mark.parametrize("threads", [None, 2])
@pytest.mark.parametrize("query", sorted(QUERIES))
def test_queries_run_with_the_policy_and_restore_the_callers_count(
    fitted, data, monkeypatch, caller, query, threads
) -> None:
    model = fitted[0]
    monkeypatch.setattr(model, "threads", threads)
    seen = _recording(monkeypatch, model.network_, "sample")
    QUERIES[query](model, data[:4], np.linspace(0.0, 2.0, 5))
    expected = POLICY_THREADS if threads is None else threads
    assert seen and seen == [expected] * len(seen)
    assert torch.get_num_threads() == caller


@pytest.mark.parametrize("threads", [None, 2])
def test_encode_runs_with_the_policy(fitted, data, monkeypatch, caller, threads) -> None:
    model = fitted[0]
    monkeypatch.setattr(model, "threads", threads)
    seen = _recording(monkeypatch, model.network_, "encode")
    model.encode(data[:4])
    assert seen == [POLICY_THREADS if threads is None else threads]
    assert torch.get_num_threads() == caller


def test_predict_restores_the_callers_count_after_an_error(
    fitted, data, monkeypatch, caller
) -> None:
    model = fitted[0]
    seen = _recording(monkeypatch, model.network_, "sample", fail=True)
    with pytest.raises(RuntimeError, match="boom"):
        model.predict(data[:4], n_samples=2)
    assert seen == [POLICY_THREADS]
    assert torch.get_num_threads() == caller


def test_predict_stream_leaves_the_callers_count_between_chunks(fitted, data, caller) -> None:
    chunks = fitted[0].predict_stream(data[:4], n_samples=2, series_per_chunk=2)
    for _ in chunks:
        assert torch.get_num_threads() == caller  # the consumer's code runs with its own count


# ---- bad values, and the parameter itself ------------------------------------------------
@pytest.mark.parametrize("bad", [0, -1, 1.5, 2.0, True, "2"])
def test_a_bad_threads_is_refused_by_name(fitted, data, tmp_path, caller, bad) -> None:
    with pytest.raises(LatentODEError, match="threads must be a whole number >= 1"):
        lo.LatentODE(**TINY, threads=bad).fit(data, log_dir=tmp_path, **FIT)
    assert not (tmp_path / "checkpoints").exists()  # refused before any training
    model = fitted[0]
    model.threads = bad
    try:
        with pytest.raises(LatentODEError, match=r"threads .*got"):
            model.predict(data[:2], n_samples=2)
    finally:
        model.threads = None
    assert torch.get_num_threads() == caller


def test_thread_count_accepts_numpy_ints_and_restores(caller) -> None:
    with thread_count(np.int64(2)) as n:
        assert n == 2 and torch.get_num_threads() == 2
        with thread_count(None) as inner:
            assert inner == torch.get_num_threads() == POLICY_THREADS
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == caller


def test_threads_round_trips_through_the_model_file(fitted, tmp_path) -> None:
    model = fitted[0]
    model.set_params(threads=2)
    try:
        path = model.save(tmp_path / "m.safetensors")
    finally:
        model.set_params(threads=None)
    assert lo.load(path).threads == 2
    assert lo.ODERNN(threads=4).get_params()["threads"] == 4


# ---- large queries on idle cores ---------------------------------------------------------
@pytest.mark.parametrize(
    ("others", "cpus", "ceiling", "expected"),
    [
        (0.0, 2, 2, 2),  # an idle 2-core machine: both cores
        (0.2, 2, 2, 2),  # a core busy a fifth of the time still counts as free
        (0.3, 2, 2, 1),  # ... busier than FREE_SHARE allows does not
        (1.0, 2, 2, 1),  # one CPU-bound competitor: keep the policy's thread
        (3.0, 2, 2, 1),  # an oversubscribed machine: never below 1
        (0.0, 16, 2, 2),  # many idle cores: at most the ceiling
        (2.0, 16, 4, 4),
        (0.0, 1, 2, 1),  # one CPU
    ],
)
def test_threads_for_load_gives_one_thread_per_free_core(others, cpus, ceiling, expected) -> None:
    assert threads.threads_for_load(others, cpus, ceiling) == expected


@pytest.fixture
def two_idle_cpus(monkeypatch):
    """Two usable CPUs, no OMP_NUM_THREADS; returns the calls' record of load readings."""
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    readings: list[float] = []

    def idle() -> float:
        readings.append(0.0)
        return 0.0

    monkeypatch.setattr(threads, "runnable_others", idle)
    return readings


def test_widen_if_idle_raises_only_large_work_on_free_cores(two_idle_cpus, monkeypatch, caller):
    big, small = threads.WIDEN_MIN_WORK, threads.WIDEN_MIN_WORK - 1
    with thread_count(None):
        assert threads.widen_if_idle(small) == 1 and two_idle_cpus == []  # not even read
        assert threads.widen_if_idle(big, load=lambda: 1.0) == 1  # a competitor
        assert threads.widen_if_idle(big, load=lambda: None) == 1  # no reading
        assert threads.widen_if_idle(big) == 2 and two_idle_cpus == [0.0]
    assert torch.get_num_threads() == caller
    with thread_count(3):  # never lowers a count
        assert threads.widen_if_idle(big) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's cap
    with thread_count(None):
        assert threads.widen_if_idle(big) == 1


def test_a_large_predict_uses_idle_cores_under_the_policy_only(
    fitted, data, monkeypatch, caller, two_idle_cpus
) -> None:
    model = fitted[0]
    monkeypatch.setattr(threads, "WIDEN_MIN_WORK", 40)  # 4 series x 5 times x 2 samples
    seen = _recording(monkeypatch, model.network_, "sample")
    model.predict(data[:4], np.linspace(0.0, 2.0, 5), n_samples=2)
    assert seen == [2] and torch.get_num_threads() == caller
    monkeypatch.setattr(model, "threads", 1)  # an explicit count is kept
    model.predict(data[:4], np.linspace(0.0, 2.0, 5), n_samples=2)
    assert seen == [2, 1] and len(two_idle_cpus) == 1
    monkeypatch.setattr(model, "threads", None)
    monkeypatch.setattr(threads, "runnable_others", lambda: 1.0)  # a busy machine
    model.predict(data[:4], np.linspace(0.0, 2.0, 5), n_samples=2)
    assert seen == [2, 1, 1] and torch.get_num_threads() == caller


def test_runnable_others_reads_procs_running(tmp_path, monkeypatch) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  1 2 3 4\ncpu0 1 2 3 4\nprocs_running 3\nprocs_blocked 0\n")
    monkeypatch.setattr(threads, "_PROC_STAT", stat)
    assert threads.runnable_others(readings=2) == 2.0  # three runnable, one is the caller
    stat.write_text("cpu  1 2 3 4\n")
    assert threads.runnable_others(readings=1) is None
    monkeypatch.setattr(threads, "_PROC_STAT", tmp_path / "missing")
    assert threads.runnable_others(readings=1) is None


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_usable_cpus_follows_a_cgroup_quota(tmp_path, monkeypatch, files, quota) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(threads, "_CGROUP", tmp_path)
    assert threads._cgroup_quota() == quota
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert threads.usable_cpus() == (4 if quota is None else min(4, int(quota)))
