"""The accuracy benchmark's own baselines, splits and metric, against hand-computed values."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# load benchmarks/accuracy.py by path: putting benchmarks/ on sys.path would let its
# modules (run, memory, training...) shadow other imports for the rest of the session.
# Its two helper modules are loaded first, under the names it imports them by.
_BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str, as_name: str):
    spec = importlib.util.spec_from_file_location(as_name, _BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[as_name] = module
    spec.loader.exec_module(module)
    return module


for _helper in ("accuracy_baselines", "accuracy_report"):
    if _helper not in sys.modules:
        _load(_helper, _helper)
baselines = sys.modules["accuracy_baselines"]
acc = _load("accuracy", "benchmarks_accuracy")

# series "a": x seen at t = 1, 3 only, y never; series "b": y seen at t = 0, 1, 2, 4
CONTEXT = pd.DataFrame(
    {
        "series_id": ["a", "a", "b", "b", "b", "b"],
        "time": [1.0, 3.0, 0.0, 1.0, 2.0, 4.0],
        "x": [2.0, 6.0, np.nan, np.nan, np.nan, np.nan],
        "y": [np.nan, np.nan, 0.0, 1.0, 4.0, 5.0],
    }
)
SCORED = pd.DataFrame(
    {
        "series_id": ["a", "a", "a", "b", "b"],
        "time": [0.0, 2.0, 4.0, 3.0, 6.0],
        "x": [1.0, 5.0, 8.0, np.nan, np.nan],
        "y": [np.nan, 1.0, np.nan, 4.5, 6.0],
    }
)
TRAIN_MEAN = np.array([10.0, 20.0])


def test_linear_is_flat_beyond_the_ends_and_channels_without_context_get_the_mean():
    pred = acc.baseline_predict("linear", CONTEXT, SCORED, ["x", "y"], TRAIN_MEAN)
    # a.x: 2 before t=1, (2+6)/2 at t=2, 6 after t=3; a.y: no context -> mean 20;
    # b.x: no context -> mean 10; b.y: 4 + (5-4)*(3-2)/(4-2) = 4.5 at t=3, 5 after t=4
    expected = [[2, 20], [4, 20], [6, 20], [10, 4.5], [10, 5]]
    np.testing.assert_allclose(pred, expected)


def test_locf_carries_the_last_value_and_uses_the_first_before_the_start():
    pred = acc.baseline_predict("locf", CONTEXT, SCORED, ["x", "y"], TRAIN_MEAN)
    np.testing.assert_allclose(pred, [[2, 20], [2, 20], [6, 20], [10, 4], [10, 5]])
    np.testing.assert_allclose(
        baselines.locf_predict(np.array([5.0]), np.array([7.0]), [0, 5, 9]), 7
    )


def test_mean_baseline_is_the_training_mean_everywhere():
    pred = acc.baseline_predict("mean", CONTEXT, SCORED, ["x", "y"], TRAIN_MEAN)
    np.testing.assert_allclose(pred, np.tile(TRAIN_MEAN, (5, 1)))


def test_pchip_passes_through_the_points_is_monotone_between_them_and_flat_outside():
    t, v = np.array([0.0, 1.0, 2.0, 4.0]), np.array([0.0, 1.0, 4.0, 5.0])
    np.testing.assert_allclose(baselines.pchip_predict(t, v, t), v, atol=1e-12)
    dense = np.linspace(0, 4, 401)
    assert np.all(np.diff(baselines.pchip_predict(t, v, dense)) >= -1e-12)
    inside = baselines.pchip_predict(t, v, np.array([3.0]))[0]
    assert 4.0 < inside < 5.0 and inside != 4.5  # a cubic, not the chord
    np.testing.assert_allclose(baselines.pchip_predict(t, v, np.array([-3.0, 9.0])), [0.0, 5.0])
    # two points: the straight line; one point: a constant
    np.testing.assert_allclose(
        baselines.pchip_predict(t[:2], v[:2], np.array([0.25, 7])), [0.25, 1]
    )
    np.testing.assert_allclose(baselines.pchip_predict(t[:1], v[:1], np.array([3.0])), [0.0])


def test_scaled_mse_divides_each_channel_by_its_training_variance_over_observed_values():
    pred = np.array([[2.0, 0.0], [4.0, 3.0]])
    truth = np.array([[1.0, np.nan], [5.0, 1.0]])
    # observed: (2-1)^2/4, (4-5)^2/4, (3-1)^2/1 -> (0.25 + 0.25 + 4) / 3
    assert acc.scaled_mse(pred, truth, np.array([4.0, 1.0])) == pytest.approx(4.5 / 3)
    sums = acc.error_sums(pred, truth, np.array([4.0, 1.0]), pred - 0.5, pred + 0.5)
    assert acc.finish(sums) == pytest.approx({"mse": 1.5, "mae": 4 / 3, "coverage": 0.0})


@pytest.mark.parametrize("n_series, n_splits", [(6, 5), (12, 5), (40, 1)])
def test_small_sets_rotate_the_test_fold_so_every_series_is_tested_once(n_series, n_splits):
    ids = [f"s{i}" for i in range(n_series)]
    splits = acc.folds(ids, seed=3)
    assert len(splits) == n_splits
    tested = [s for _, test in splits for s in test]
    for train, test in splits:
        assert sorted(train + test) == sorted(ids)
    if n_splits == 1:
        assert len(tested) == 8
    else:
        assert sorted(tested) == sorted(ids)


def test_tasks_hide_half_or_the_last_40_percent_and_skip_single_points():
    test = pd.DataFrame({"series_id": [1] * 5 + [2], "time": [0.0, 1, 2, 3, 10, 0], "x": [1.0] * 6})
    ctx, scored, skipped = acc.make_task(test, "forecast", np.random.default_rng(0))
    assert skipped == 1 and ctx["time"].tolist() == [0, 1, 2, 3] and scored["time"].tolist() == [10]
    ctx, scored, skipped = acc.make_task(test, "interp", np.random.default_rng(0))
    assert (len(ctx), len(scored), skipped) == (2, 3, 1)
    assert sorted(ctx["time"].tolist() + scored["time"].tolist()) == [0, 1, 2, 3, 10]


def test_merge_joins_runs_of_other_methods_and_refuses_overlaps():
    """Two runs (one per method) on the same sets and seeds merge into one whose
    summary holds both methods' means over seeds; a method in both runs is refused."""

    def run(method: str, mse: list[float]) -> dict:
        records = [
            {"set": "s", "task": "interp", "method": method, "seed": k, "mse": m, "mae": m,
             "coverage": None, "n_series": 3, "fit_s": 1.0, "skipped": 0}
            for k, m in enumerate(mse)
        ]  # fmt: skip
        return {"sets": ["s"], "seeds": [0, 1], "protocol": {"a": 1}, "quick": False,
                "methods": [method], "records": records, "wall_s": 2.0}  # fmt: skip

    merged = acc.merge_results([run("latentode", [1.0, 3.0]), run("linear", [4.0, 4.0])])
    assert merged["methods"] == ["latentode", "linear"] and merged["wall_s"] == 4.0
    means = {(r["method"]): r["mse"] for r in merged["summary"]}
    assert means == {"latentode": 2.0, "linear": 4.0}
    ours = next(r for r in merged["summary"] if r["method"] == "latentode")
    assert ours["ratio"] == pytest.approx((1 / 4 + 3 / 4) / 2)  # paired with linear by seed
    with pytest.raises(SystemExit, match="appears in two runs"):
        acc.merge_results([run("linear", [1.0, 1.0]), run("linear", [2.0, 2.0])])
    other = {**run("linear", [1.0, 1.0]), "seeds": [0]}
    with pytest.raises(SystemExit, match="differ in seeds"):
        acc.merge_results([run("latentode", [1.0, 1.0]), other])


def test_compare_pairs_common_seeds_borrows_the_baselines_and_reports_the_change():
    """A one-seed screen of the latent ODE alone against a two-seed run with baselines:
    only seed 0 is compared, the screen borrows the run's linear records, and the
    geometric mean of the ratio's change is after / before on that seed."""

    def rec(method: str, seed: int, mse: float) -> dict:
        return {"set": "s", "task": "interp", "method": method, "seed": seed, "mse": mse,
                "mae": mse, "coverage": 0.9, "fit_s": 1.0, "skipped": 0, "error": None}  # fmt: skip

    run = {
        "seeds": [0, 1],
        "records": [rec("latentode", 0, 2.0), rec("linear", 0, 4.0),
                    rec("latentode", 1, 9.0), rec("linear", 1, 1.0)],
    }  # fmt: skip
    screen = {"seeds": [0], "records": [rec("latentode", 0, 1.0)]}
    paired = acc.paired_records(run, screen)
    assert sorted((r["method"], r["seed"]) for r in paired["before"]) == [
        ("latentode", 0),
        ("linear", 0),
    ]
    assert sorted((r["method"], r["mse"]) for r in paired["after"]) == [
        ("latentode", 1.0),
        ("linear", 4.0),
    ]
    table = acc.comparison_table(run, screen)
    assert "| interp | s | 0.50 | 0.25 | 0.90 | 0.90 |" in table  # 2/4 and 1/4
    assert "interp 0.500 (1 sets)" in table
    with pytest.raises(SystemExit, match="share no seed"):
        acc.paired_records(run, {"seeds": [5], "records": []})
    # a run of seeds 0 and 1 stopped after seed 0: that seed alone, as for the screen
    stopped = {"seeds": [0, 1], "records": [rec("latentode", 0, 1.0)]}
    assert acc.paired_records(run, stopped) == paired
    assert "interp 0.500 (1 sets)" in acc.comparison_table(run, stopped)


def test_staggered_starts_move_whole_series_and_leave_the_baselines_errors_alone():
    df, _ = acc.load_set("theoph")
    moved = acc.stagger_starts(df, 10.0)
    shift = (moved["time"] - df["time"]).groupby(df["series_id"])
    assert (shift.max() - shift.min()).abs().max() < 1e-9  # one offset per series
    span = df.groupby("series_id")["time"].agg(lambda t: t.max() - t.min()).max()
    offsets = shift.first()
    assert offsets.min() >= 0 and offsets.max() <= 10 * span and offsets.nunique() == len(offsets)
    opts = {"quick": False, "params": {}}
    plain = acc.run_set("theoph", ["linear", "locf"], 0, opts)
    staggered = acc.run_set("theoph", ["linear", "locf"], 0, {**opts, "stagger": 10.0})
    for a, b in zip(plain, staggered):
        assert (a["task"], a["method"], a["n_scored"]) == (b["task"], b["method"], b["n_scored"])
        assert b["mse"] == pytest.approx(a["mse"], rel=1e-9)
