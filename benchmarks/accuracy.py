"""Accuracy of the latent ODE against simple baselines, on real and synthetic series (issue 13).

Data: the seven small real sets in ``benchmarks/data/real`` (see its ``SOURCES.md``) and the
``spiral``, ``periodic`` and ``clinical`` generators (data seed 0). Only the time-varying
channels are used; the ``*_static.csv`` covariates (and clinical's statics and label) are
left out, so every method sees the same inputs. Per data set and seed (the seed changes
the split, the context draw and the model seed):

- split by series 80/20; a set of fewer than 30 series is cut into 5 folds that take
  turns as the test set, so every series is scored exactly once;
- tasks on each test series: ``interp``, a random half of its points (at least one) is the
  context, the rest is scored; ``forecast``, the points before 60% of its time span are the
  context, the rest is scored. Series with fewer than 2 points are skipped (counted);
- methods: ``latentode`` (``LatentODE(seed=s)``, defaults, plain ``fit``), ``odernn``,
  ``gru_dt`` (``ODERNN(cell="gru_dt")``), and baselines written here, per series and channel
  from that channel's context points: ``linear`` and ``pchip`` (flat beyond the ends),
  ``locf`` (last value; the first one before it), ``mean`` (training mean, also the fallback
  for a channel with no context point). Beyond the context all but ``mean`` carry the last
  value, so the three agree on ``forecast``;
- metrics pooled over the scored values of all folds: ``mse`` (squared error / the channel's
  training variance), ``mae`` (data units), ``coverage`` of the models' 90% intervals,
  ``fit_s`` (seconds per fit; baselines: their prediction time). Mean ± standard error over
  seeds, and the latent ODE's mse ratio to ``linear`` (interp) and ``locf`` (forecast).

Targets: that ratio < 1, and 90% coverage within 80-97%.

    python benchmarks/accuracy.py              # 3 seeds, fit's default epochs (hours, 2 cores)
    python benchmarks/accuracy.py --quick      # 1 seed, 20 epochs, smaller generators
    python benchmarks/accuracy.py --sets theoph,milk --methods latentode,linear,locf
    python benchmarks/accuracy.py --quick --set latent_dim=4 --set encoder=rnn
    python benchmarks/accuracy.py --seeds 0 --max-epochs 300   # a longer training budget
    python benchmarks/accuracy.py --data-dir my_csvs/ --seeds 0   # every *.csv in a folder
    python benchmarks/accuracy.py --compare before.json after.json  # two runs side by side
    python benchmarks/accuracy.py --data-dir benchmarks/data/real --methods latentode \
        --seeds 0 --set ema_decay=0.98 --json screen.json      # a one-seed screen, then:
    python benchmarks/accuracy.py --compare benchmarks/results/accuracy_real.json screen.json
    python benchmarks/accuracy.py --data-dir benchmarks/data/real --seeds 0 --stagger 10 \
        --methods latentode,linear,locf --json staggered.json  # series that start apart

``--compare`` pairs the seeds both files hold and lends a latent-ODE-only run the other
file's baselines; it ends with the geometric mean over sets of the ratio's change.

``--set KEY=VALUE`` sets a ``LatentODE`` parameter (``ast.literal_eval``, else text). Results:
``benchmarks/results/accuracy.json`` (``accuracy_quick.json`` with ``--quick``) or ``--json``.
Torch uses one thread: the machine's 2 cores are shared with other jobs, and fits are timed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import shlex
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from accuracy_baselines import (
    BASELINES,
    ID,
    TIME,
    baseline_predict,
    channel_stats,
    error_sums,
    finish,
    scaled_mse,
)
from accuracy_report import (
    COVERAGE_TARGET,
    REFERENCE,
    TASKS,
    comparison_table,
    markdown_tables,
    mean_se,
    merge_results,
    paired_records,
    summarise,
)

import latentode as lo

# (the baselines, the metric and the tables live in accuracy_baselines.py and
# accuracy_report.py; their names are this module's too, for misses.py and the tests)
__all__ = [
    "BASELINES", "COVERAGE_TARGET", "ID", "REFERENCE", "TASKS", "TIME", "baseline_predict",
    "channel_stats", "comparison_table", "error_sums", "finish", "fit_model", "folds",
    "load_set", "make_task", "markdown_tables", "mean_se", "merge_results", "model_predict",
    "paired_records", "run_set", "scaled_mse", "stagger_starts", "summarise",
]  # fmt: skip

HERE = Path(__file__).resolve().parent
REAL_DIR = HERE / "data" / "real"
RESULTS_DIR = HERE / "results"
REAL_SETS = ("theoph", "indometh", "quinidine", "oxboys", "chickweight", "milk", "bodyweight")
SYNTHETIC_SETS = ("spiral", "periodic", "clinical")
SMALL_SET = 30  # fewer series than this: rotate the test fold
N_FOLDS = 5
TEST_FRAC = 0.2
FORECAST_AT = 0.6  # forecast context: points before 60% of the series' time span
QUANTILES = (0.05, 0.95)
QUICK_EPOCHS = 20  # quick mode only; the full run uses fit's default max_epochs
# generator sizes (full, quick); the data seed is always 0
GENERATORS = {
    "spiral": ({"n_series": 300}, {"n_series": 100}),
    "periodic": ({"n_series": 300}, {"n_series": 100}),
    "clinical": ({"n_patients": 200}, {"n_patients": 60}),
}


# ---------------------------------------------------------------- data


def csv_sets(folder: Path) -> dict[str, Path]:
    """The wide CSVs (``series_id``, ``time``, channels) in ``folder`` by name, without
    the ``*_static.csv`` covariate files."""
    paths = sorted(p for p in folder.glob("*.csv") if not p.stem.endswith("_static"))
    if not paths:
        raise SystemExit(f"--data-dir {folder}: no *.csv files there")
    return {p.stem: p for p in paths}


def load_set(
    name: str, quick: bool = False, extra: dict[str, Path] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """One data set as a wide frame (``series_id``, ``time``, channels; NaN = not observed).

    ``extra`` maps further set names to wide CSV files (``--data-dir``). Rows are sorted by
    id and time; rows with no observed channel are dropped.
    """
    if extra and name in extra:
        ds = lo.read_csv(extra[name], id_col=ID, time_col=TIME)
    elif name in REAL_SETS:
        ds = lo.read_csv(REAL_DIR / f"{name}.csv", id_col=ID, time_col=TIME)
    elif name in SYNTHETIC_SETS:
        ds = getattr(lo.datasets, name)(**GENERATORS[name][quick], seed=0)
    else:
        raise ValueError(f"unknown data set {name!r}; choose from {REAL_SETS + SYNTHETIC_SETS}")
    channels = list(ds.channels)
    df = ds.to_dataframe().rename(columns={ds.id_name: ID, ds.time_name: TIME})
    df = df[[ID, TIME, *channels]]
    df = df[df[channels].notna().any(axis=1)]
    return df.sort_values([ID, TIME], kind="stable").reset_index(drop=True), channels


def stagger_starts(df: pd.DataFrame, spans: float, seed: int = 0) -> pd.DataFrame:
    """``df`` with each series moved later by a seeded offset drawn uniformly from
    [0, ``spans`` x the set's longest series span]: series that start apart, as in
    calendar time. Times within a series keep their gaps, so the baselines' errors stay."""
    span = df.groupby(ID)[TIME].agg(lambda t: t.max() - t.min()).max()
    ids = pd.unique(df[ID])
    offsets = np.random.default_rng(seed).uniform(0.0, spans, len(ids)) * span
    return df.assign(**{TIME: df[TIME] + df[ID].map(dict(zip(ids, offsets)))})


def folds(ids: Sequence, seed: int) -> list[tuple[list, list]]:
    """(train ids, test ids) pairs: one 80/20 split, or N_FOLDS rotating test folds."""
    order = np.random.default_rng(seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    if len(ids) >= SMALL_SET:
        n_test = round(TEST_FRAC * len(ids))
        return [(shuffled[n_test:], shuffled[:n_test])]
    n_folds = min(N_FOLDS, len(ids))
    tests = [shuffled[k::n_folds] for k in range(n_folds)]  # sizes differ by at most one
    return [([s for s in shuffled if s not in test], test) for test in tests]


def make_task(
    test: pd.DataFrame, task: str, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(context rows, scored rows, number of series skipped) of ``task`` on the test series."""
    context, scored, skipped = [], [], 0
    for _, rows in test.groupby(ID, sort=False):
        n = len(rows)
        if n < 2:
            skipped += 1
            continue
        if task == "interp":
            keep = np.zeros(n, dtype=bool)
            keep[rng.permutation(n)[: max(1, n // 2)]] = True
        elif task == "forecast":
            t = rows[TIME].to_numpy()
            keep = t < t[0] + FORECAST_AT * (t[-1] - t[0])
        else:
            raise ValueError(f"unknown task {task!r}; choose from {TASKS}")
        context.append(rows[keep])
        scored.append(rows[~keep])
    if not context:
        empty = test.iloc[:0]
        return empty, empty, skipped
    return pd.concat(context), pd.concat(scored), skipped


# ---------------------------------------------------------------- models


# name -> a fresh estimator from (seed, LatentODE params): defaults otherwise
MODELS: dict[str, Callable[[int, dict], object]] = {
    "latentode": lambda seed, params: lo.LatentODE(seed=seed, **params),
    "odernn": lambda seed, params: lo.ODERNN(seed=seed),
    "gru_dt": lambda seed, params: lo.ODERNN(cell="gru_dt", seed=seed),
}


@contextlib.contextmanager
def quiet():
    """Silence Lightning's banners, its treespec warning and fit's hold-out message."""
    import lightning  # noqa: F401  (importing it sets its loggers' levels: quiet them after)

    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.filterwarnings("ignore", message=".*treespec.*")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def fit_model(method: str, train: pd.DataFrame, seed: int, params: dict, epochs: int | None):
    """(fitted model, seconds, epochs trained); ``epochs=None``: fit's own default."""
    model = MODELS[method](seed, params)
    data = lo.from_dataframe(train, id_col=ID, time_col=TIME)
    extra = {} if epochs is None else {"max_epochs": epochs}
    with tempfile.TemporaryDirectory() as tmp, quiet():
        start = time.perf_counter()
        model.fit(data, progress_bar=False, log_dir=Path(tmp) / "run", **extra)
        seconds = time.perf_counter() - start
    history = getattr(model, "history_", None)
    return model, seconds, (None if history is None else len(history))


def model_predict(
    model, context: pd.DataFrame, scored: pd.DataFrame, channels: Sequence[str], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, q5, q95), each [len(scored), C], at the scored rows' times."""
    times = {sid: rows[TIME].to_numpy() for sid, rows in scored.groupby(ID, sort=False)}
    with quiet():
        pred = model.predict(context, times=times, quantiles=QUANTILES, seed=seed)
    pred = pred.sort_values([ID, TIME], kind="stable")  # as ``scored`` (from load_set's order)
    same = len(pred) == len(scored) and np.allclose(pred[TIME], scored[TIME], rtol=1e-9)
    if not same or (pred[ID].astype(str).to_numpy() != scored[ID].astype(str).to_numpy()).any():
        raise AssertionError("predict returned other rows than the scored ones")
    take = lambda suffix: pred[[f"{c}{suffix}" for c in channels]].to_numpy(float)  # noqa: E731
    return take(""), take("_q5"), take("_q95")


# ---------------------------------------------------------------- the run


def score_fold(
    method: str, train: pd.DataFrame, tasks: dict, channels: list[str], seed: int, opts: dict
) -> tuple[dict[str, dict], float, int | None]:
    """Error sums per task, fit seconds and epochs trained of one method on one fold.

    ``tasks`` maps each task to its (context, scored) rows; ``opts`` holds ``quick`` and
    the LatentODE ``params``.
    """
    mean, var = channel_stats(train, channels)
    sums, start, seconds, n_epochs, model = {}, time.perf_counter(), 0.0, None, None
    if method in MODELS:
        params = opts["params"] if method == "latentode" else {}
        epochs = opts.get("max_epochs") or (QUICK_EPOCHS if opts["quick"] else None)
        model, seconds, n_epochs = fit_model(method, train, seed, params, epochs)
    for task, (context, scored) in tasks.items():
        truth = scored[channels].to_numpy(dtype=float)
        if model is None:
            pred = baseline_predict(method, context, scored, channels, mean)
            sums[task] = error_sums(pred, truth, var)
        elif len(scored):
            pred, q5, q95 = model_predict(model, context, scored, channels, seed)
            sums[task] = error_sums(pred, truth, var, q5, q95)
    return sums, (seconds if model is not None else time.perf_counter() - start), n_epochs


def run_set(name: str, methods: Sequence[str], seed: int, opts: dict) -> list[dict]:
    """One record per (task, method) for one data set and seed, pooled over its folds."""
    df, channels = load_set(name, opts["quick"], opts.get("extra"))
    if opts.get("stagger"):
        df = stagger_starts(df, opts["stagger"])
    ids = list(pd.unique(df[ID]))
    totals = {(task, m): Counter(sq=0.0, abs=0.0, n=0) for task in TASKS for m in methods}
    fit_s, epochs_run = defaultdict(list), defaultdict(list)
    errors: dict[str, str] = {}
    skipped = Counter()
    splits = folds(ids, seed)
    for k, (train_ids, test_ids) in enumerate(splits):
        train, test = df[df[ID].isin(train_ids)], df[df[ID].isin(test_ids)]
        tasks = {}
        for i, task in enumerate(TASKS):
            context, scored, n_skip = make_task(test, task, np.random.default_rng([seed, k, i]))
            tasks[task] = (context, scored)
            skipped[task] += n_skip
        for method in (m for m in methods if m not in errors):
            try:
                sums, seconds, n_epochs = score_fold(method, train, tasks, channels, seed, opts)
            except Exception as err:  # one failing fit must not sink an hours-long run
                errors[method] = f"{type(err).__name__}: {err}"
                print(f"  {name} seed {seed} {method}: {errors[method]}", file=sys.stderr)
                continue
            for task, task_sums in sums.items():
                totals[task, method].update(task_sums)
            fit_s[method].append(seconds)
            epochs_run[method].append(n_epochs)
    records = []
    for (task, method), sums in totals.items():
        record = {"set": name, "task": task, "method": method, "seed": seed}
        record.update(finish(sums) if method not in errors else dict.fromkeys(["mse", "mae"]))
        record.update(
            n_series=len(ids),
            n_folds=len(splits),
            n_scored=sums["n"],
            skipped=skipped[task],
            fit_s=float(np.mean(fit_s[method])) if fit_s[method] else None,
            epochs=epochs_run[method] if method in MODELS else None,
            error=errors.get(method),
        )
        records.append(record)
    return records


def machine() -> dict:
    """CPU count, versions, torch threads and the command line (no date: compare by content)."""
    import scipy
    import torch

    return dict(
        platform=platform.platform(), cpu_count=os.cpu_count(), python=platform.python_version(),
        torch=torch.__version__, torch_threads=torch.get_num_threads(), numpy=np.__version__,
        scipy=scipy.__version__, latentode=lo.__version__,
        command=shlex.join(["python", *sys.argv]),
    )  # fmt: skip


def pick(text: str | None, known: Sequence[str], what: str) -> list[str]:
    """Comma-separated names, each one of ``known`` (all of them when ``text`` is None)."""
    names = list(known) if text is None else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f"unknown {what} {unknown or text!r}; choose from {','.join(known)}")
    return names


def main(argv: Sequence[str] | None = None) -> dict:
    import torch
    from harness import parse_set_params  # here: tests load this file without benchmarks/

    torch.set_num_threads(1)  # 2 cores shared with other jobs: one thread keeps timings honest
    all_sets, all_methods = REAL_SETS + SYNTHETIC_SETS, (*MODELS, *BASELINES)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="1 seed, few epochs, small generators")
    add("--sets", help=f"comma-separated, from {','.join(all_sets)}")
    add("--methods", help=f"comma-separated, from {','.join(all_methods)}")
    add("--seeds", help="comma-separated integers (default 0,1,2; quick: 0)")
    add("--data-dir", type=Path, help="a folder of further wide CSVs (series_id,time,...)")
    add("--json", type=Path, help="where to write the results")
    add("--set", action="append", default=[], metavar="KEY=VALUE", help="a LatentODE parameter")
    add("--max-epochs", type=int, help="fit's max_epochs for the models (default: fit's own)")
    add("--stagger", type=float, default=0.0, metavar="SPANS",
        help="move each series by a seeded offset of up to SPANS x the longest span")  # fmt: skip
    add("--tables", type=Path, metavar="JSON", help="only print the tables of a results file")
    add("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"), help="two results files")
    add("--merge", type=Path, nargs="+", metavar="JSON", help="runs of other methods or sets")
    args = parser.parse_args(argv)
    if args.merge is not None:  # e.g. the baselines run apart from a model run
        if args.json is None:
            raise SystemExit("--merge needs --json OUT, the file to write")
        result = merge_results([json.loads(p.read_text()) for p in args.merge])
        result["merged_from"] = [str(p) for p in args.merge]
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(markdown_tables(result["summary"], result["methods"], result["sets"]))
        return result
    if args.compare is not None:  # the latent ODE's ratios and coverage side by side
        before, after = (json.loads(p.read_text()) for p in args.compare)
        print(comparison_table(before, after))
        return after
    if args.tables is not None:  # e.g. a run stopped part-way: its whole seeds so far
        result = json.loads(args.tables.read_text())
        print(markdown_tables(summarise(result["records"]), result["methods"], result["sets"]))
        print(f"complete: {result.get('complete', True)}; seeds {result['seeds']}")
        return result
    extra = csv_sets(args.data_dir) if args.data_dir is not None else {}
    if extra:  # their sets are the default; the built-in ones stay reachable by name
        all_sets = (*extra, *(s for s in all_sets if s not in extra))
    sets, methods = (
        pick(args.sets, tuple(extra) if extra and args.sets is None else all_sets, "data set(s)"),
        pick(args.methods, all_methods, "method(s)"),
    )
    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1,2")).split(",")]
    if args.max_epochs is not None and args.max_epochs < 1:
        raise SystemExit("--max-epochs must be >= 1")
    opts = {
        "quick": args.quick,
        "params": parse_set_params(args.set, "latent_dim=4"),
        "extra": extra,
        "max_epochs": args.max_epochs,
        "stagger": args.stagger,
    }
    try:
        lo.LatentODE(**opts["params"])  # an unknown name fails here, not in every fit
    except TypeError as err:
        raise SystemExit(f"--set: {err}; see help(latentode.LatentODE)") from None
    path = args.json or RESULTS_DIR / ("accuracy_quick.json" if args.quick else "accuracy.json")
    epochs = (
        f"max_epochs={args.max_epochs}"
        if args.max_epochs is not None
        else f"max_epochs={QUICK_EPOCHS} (quick)"
        if args.quick
        else "fit's default max_epochs"
    )
    print(f"accuracy: sets {','.join(sets)} | methods {','.join(methods)} | seeds {seeds} | "
          f"models: {epochs} | LatentODE params {opts['params'] or 'defaults'}")  # fmt: skip
    protocol = dict(
        small_set=SMALL_SET, n_folds=N_FOLDS, test_frac=TEST_FRAC, forecast_at=FORECAST_AT,
        quantiles=QUANTILES, generators={k: v[args.quick] for k, v in GENERATORS.items()},
        stagger_spans=args.stagger,
    )  # fmt: skip
    start, records = time.perf_counter(), []

    def write(complete: bool) -> dict:
        """The JSON so far (rewritten after every set and seed, so a long run that is
        stopped keeps what it measured; ``complete`` says whether it finished)."""
        result = dict(
            machine=machine(), quick=args.quick, model_epochs=epochs,
            latentode_params=opts["params"], sets=sets, methods=methods, seeds=seeds,
            protocol=protocol, wall_s=time.perf_counter() - start, complete=complete,
            summary=summarise(records), records=records,
        )  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1, default=str) + "\n")
        return result

    for seed in seeds:  # seed by seed: a stopped run has whole seeds over every set
        for name in sets:
            t0 = time.perf_counter()
            records += run_set(name, methods, seed, opts)
            print(f"  {name} seed {seed}: {time.perf_counter() - t0:.1f} s", flush=True)
            write(complete=False)
    result = write(complete=True)
    print(markdown_tables(result["summary"], methods, sets))
    print(f"\nwall time {result['wall_s']:.0f} s; results in {path}")
    return result


if __name__ == "__main__":
    main()
