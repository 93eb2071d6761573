"""Why the latent ODE still misses issue 13's targets where it does: figures, not guesses.

Three diagnostics, each printing a table:

    python benchmarks/misses.py interp --set remifentanil --seeds 0,1,2   # ~2 min
    python benchmarks/misses.py coverage                                  # seconds
    python benchmarks/misses.py mortality --seeds 0                       # ~5 min a seed
    python benchmarks/misses.py mortality --seeds 0 --param latent_dim=20 # any LatentODE parameter

``interp`` refits ``LatentODE()`` exactly as ``accuracy.py`` does (same splits, contexts
and seeds, so the same model and errors) and splits the interpolation error: by where
the scored point lies (before the series' first context point, between context points,
after the last) and by series; next to it, the latent path alone (no residual process)
and the path plus *linearly* interpolated context residuals (what an OU residual with a
long correlation time tends to), each as a share of linear interpolation's error.

``coverage`` reads the results files and pools each set's held-out points over seeds:
covered / scored, with a 95% Wilson interval, so that a coverage figure from a few
dozen points is read with its uncertainty.

``mortality`` fits ``LatentODE(classify=True)`` as ``mortality.py`` does, then asks how
much of what decides death in the generator -- its severity at 48 h -- each feature set
holds: the R² of a ridge regression of the true severity on the model's latent state at
the last observation (plus statics) and on the logistic regression's summary features,
fitted on the training stays and scored on the test stays.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import accuracy as acc
import numpy as np
import pandas as pd
from harness import parse_set_params

HERE = Path(__file__).resolve().parent
FOLDERS = (
    "real",
    "more_real",
    "check_real",
    "held_real",
    "held_real2",
    "held_real3",
    "held_real4",
    "held_real5",
    "few_long",
)
DATA_DIRS = tuple(HERE / "data" / d for d in FOLDERS)


# ---------------------------------------------------------------- interpolation


def _set_path(name: str) -> dict[str, Path]:
    """``{name: its CSV}`` from the first of the real-data folders that holds it."""
    for folder in DATA_DIRS:
        if (folder / f"{name}.csv").exists():
            return {name: folder / f"{name}.csv"}
    raise SystemExit(f"no data set {name!r} in {[str(d) for d in DATA_DIRS]}")


def _position(context: pd.DataFrame, scored: pd.DataFrame) -> np.ndarray:
    """[len(scored)] 'before', 'between' or 'after' the series' context points."""
    first = context.groupby(acc.ID)[acc.TIME].min()
    last = context.groupby(acc.ID)[acc.TIME].max()
    t = scored[acc.TIME].to_numpy(dtype=float)
    lo_t = scored[acc.ID].map(first).to_numpy(dtype=float)
    hi_t = scored[acc.ID].map(last).to_numpy(dtype=float)
    return np.where(t < lo_t, "before", np.where(t > hi_t, "after", "between"))


def _path_plus_linear_residuals(model, context, scored, channels, seed) -> tuple[np.ndarray, ...]:
    """(path at the scored rows, path + the context residuals interpolated linearly)."""
    fitted = model.residual_
    model.residual_ = None  # the latent path's own predictive mean
    try:
        path_q = acc.model_predict(model, context, scored, channels, seed)[0]
        path_c = acc.model_predict(model, context, context, channels, seed)[0]
    finally:
        model.residual_ = fitted
    residual = context[channels].to_numpy(dtype=float) - path_c
    residual_frame = context[[acc.ID, acc.TIME]].assign(
        **{c: residual[:, j] for j, c in enumerate(channels)}
    )
    bridged = path_q + acc.baseline_predict(
        "linear", residual_frame, scored, channels, np.zeros(len(channels))
    )
    return path_q, bridged


def interp_diagnosis(name: str, seeds: Sequence[int], params: dict) -> list[dict]:
    """Per seed and fold, the scaled squared errors of each scored point, by method."""
    df, channels = acc.load_set(name, False, _set_path(name))
    ids = list(pd.unique(df[acc.ID]))
    rows = []
    for seed in seeds:
        for k, (train_ids, test_ids) in enumerate(acc.folds(ids, seed)):
            train, test = df[df[acc.ID].isin(train_ids)], df[df[acc.ID].isin(test_ids)]
            context, scored, _ = acc.make_task(test, "interp", np.random.default_rng([seed, k, 0]))
            _, var = acc.channel_stats(train, channels)
            model = acc.fit_model("latentode", train, seed, params, None)[0]
            truth = scored[channels].to_numpy(dtype=float)
            preds = {
                "latentode": acc.model_predict(model, context, scored, channels, seed)[0],
                "linear": acc.baseline_predict(
                    "linear", context, scored, channels, np.zeros(len(channels))
                ),
            }
            preds["path"], preds["path+linear residuals"] = _path_plus_linear_residuals(
                model, context, scored, channels, seed
            )
            where = _position(context, scored)
            for method, pred in preds.items():
                err = np.nansum((pred - truth) ** 2 / var[None, :], axis=1)  # [N]
                for sid, pos, e in zip(scored[acc.ID], where, err):
                    rows.append(
                        {
                            "seed": seed,
                            "fold": k,
                            "series": sid,
                            "where": pos,
                            "method": method,
                            "sq": e,
                        }
                    )
            print(f"  {name} seed {seed} fold {k}: {len(scored)} points scored", file=sys.stderr)
    return rows


def interp_tables(rows: list[dict]) -> str:
    """The per-seed and pooled error shares by position, and the series that add most."""
    frame = pd.DataFrame(rows)
    linear_total = frame[frame.method == "linear"].groupby("seed").sq.sum()
    by_where = frame.pivot_table(
        index=["seed", "where"], columns="method", values="sq", aggfunc="sum"
    )
    share = by_where.div(linear_total, axis=0, level="seed")
    pooled = frame.pivot_table(index="where", columns="method", values="sq", aggfunc="sum")
    pooled = pooled / frame[frame.method == "linear"].sq.sum()
    counts = frame[frame.method == "linear"].groupby("where").size().rename("points")
    caption = (
        "Error by position, as a share of linear interpolation's total error (per seed; "
        "within a seed, a method's column sums to its ratio to linear):"
    )
    out = [caption, share.round(3).to_string(), "", "Pooled over seeds:"]
    out += [pooled.join(counts).round(3).to_string(), ""]
    per_series = frame.pivot_table(
        index=["seed", "series"], columns="method", values="sq", aggfunc="sum"
    )
    gap = (per_series["latentode"] - per_series["linear"]).div(linear_total, axis=0, level="seed")
    worst = gap.sort_values(ascending=False).head(8)
    out += ["Series that add most to the latent ODE's excess over linear (share of "
            "linear's total in that seed):", worst.round(3).to_string()]  # fmt: skip
    return "\n".join(out)


# ---------------------------------------------------------------- coverage


def wilson(covered: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n == 0:
        return math.nan, math.nan
    p = covered / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def coverage_table(paths: Sequence[Path]) -> str:
    """Markdown: per set and task, the latent ODE's covered / scored values pooled over
    the seeds of each results file, with a 95% Wilson interval."""
    lines = ["| set | task | covered / scored (pooled over seeds) | coverage | 95% interval |",
             "|---|---|---|---|---|"]  # fmt: skip
    for path in paths:
        records = json.loads(path.read_text())["records"]
        pooled: dict[tuple[str, str], list[int]] = {}
        for r in records:
            if r["method"] != "latentode" or r.get("coverage") is None:
                continue
            n = int(r["n_scored"])
            tally = pooled.setdefault((r["set"], r["task"]), [0, 0])
            tally[0] += round(r["coverage"] * n)
            tally[1] += n
        for (name, task), (covered, n) in sorted(pooled.items()):
            low, high = wilson(covered, n)
            lines.append(
                f"| {name} | {task} | {covered} / {n} | {covered / n:.3f} | {low:.2f}-{high:.2f} |"
            )
    return "\n".join(lines)


# ---------------------------------------------------------------- mortality


def _ridge_r2(train_x, train_y, test_x, test_y) -> float:
    """Test R² of a ridge regression (penalty by leave-one-out CV; features imputed with
    their training means and standardised) fitted on the training rows."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(SimpleImputer(), StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    pipe.fit(train_x, train_y)
    return float(pipe.score(test_x, test_y))


def _last_state(model, ds) -> np.ndarray:
    """[N, L + S]: the posterior mean of z at each series' last observation, and statics."""
    last = {s.id: [s.times[-1]] for s in ds}
    z = model.latent(ds, times=last, seed=0)
    cols = [c for c in z.columns if c.startswith("z") and not c.endswith("_std")]
    statics = np.array([s.static for s in ds]) if ds.static_names else np.zeros((len(ds), 0))
    return np.column_stack([z[cols].to_numpy(dtype=float), statics])


def mortality_diagnosis(
    seeds: Sequence[int], n_train: int, n_test: int, epochs: int, params: dict
) -> list[dict]:
    """Per seed, the test R² of the generator's severity at 48 h from each feature set."""
    import mortality

    rows = []
    for seed in seeds:
        train, test, _ = mortality.make_data("clinical", n_train, n_test, seed)
        severity = {
            d: np.array([x.truth[i]["latent"][-1, 0] for i in x.ids])
            for d, x in (("train", train), ("test", test))
        }
        model, _ = mortality.fit_label_model(train, seed, epochs, params)
        with acc.quiet():
            z_train, z_test = _last_state(model, train), _last_state(model, test)
        s_train, s_test = mortality.summary_features(train), mortality.summary_features(test)
        both_train, both_test = (
            np.column_stack([z_train, s_train]),
            np.column_stack([z_test, s_test]),
        )
        fits = {
            "z_last + statics": (z_train, z_test),
            "summary features": (s_train, s_test),
            "both": (both_train, both_test),
        }
        rows.append({"seed": seed})
        for label, (x_train, x_test) in fits.items():
            rows[-1][label] = _ridge_r2(x_train, severity["train"], x_test, severity["test"])
        print(f"  mortality seed {seed}: {rows[-1]}", file=sys.stderr)
    return rows


# ---------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("interp", "coverage", "mortality"))
    parser.add_argument("--set", default="remifentanil", help="interp: the data set")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=30, help="mortality: max_epochs")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--results", nargs="*", type=Path, help="coverage: results files")
    parser.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="a LatentODE parameter"
    )
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    params = parse_set_params(args.param, "latent_dim=20")
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)
    if args.what == "interp":
        print(f"{args.set}: interpolation error of LatentODE() by position and series\n")
        print(interp_tables(interp_diagnosis(args.set, seeds, params)))
    elif args.what == "coverage":
        names = [f"accuracy_{folder}.json" for folder in FOLDERS]
        paths = args.results or [
            acc.RESULTS_DIR / n for n in names if (acc.RESULTS_DIR / n).exists()
        ]
        print(coverage_table(paths))
    else:
        rows = mortality_diagnosis(seeds, args.n_train, args.n_test, args.epochs, params)
        print("R² of the generator's severity at 48 h (test stays), ridge on each feature set:")
        print(pd.DataFrame(rows).set_index("seed").round(3).to_string())


if __name__ == "__main__":
    main()
