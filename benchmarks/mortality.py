"""In-hospital mortality: the latent ODE's label head against logistic regression (issue 13.4).

Data, per seed ``s`` (training and test stays are independent draws of the generator):

- ``clinical``: ``lo.datasets.clinical`` stays (48 h, 34 channels, 5 static covariates,
  label ``In-hospital_death``), training stays from data seed ``1000 + s``, test stays
  from ``2000 + s``;
- ``physionet``: the same two draws written as PhysioNet/CinC 2012 challenge files (one
  ``<RecordID>.txt`` per stay in ``set-a/`` and ``set-b/``, each with its
  ``Outcomes-*.txt``) in a temporary folder and read back with
  ``lo.datasets.read_physionet2012`` (``channels=`` the generator's 34 of the challenge's
  37, since fit refuses a channel never measured), ``HH:MM`` times.

Methods, all trained on the training stays and scored on the test stays:

- ``latentode``: ``LatentODE(classify=True, seed=s, residual=False)`` with its defaults
  otherwise, ``fit(train, max_epochs=...)`` (early stopping as fit does it), then
  ``predict_proba(test)``. The default head is a logistic regression on z at each stay's
  last observation (z0 carried there by the latent ODE) and the statics, with
  ``label_weight=0.1`` (``--set label_readout=z0 --set label_hidden=None --set
  label_weight=1.0``: the head before, an MLP on z0). ``residual=False`` because the
  residual process does not enter ``predict_proba`` and fitting it costs time;
- ``logistic``: scikit-learn ``LogisticRegressionCV`` (C from 10 values in 1e-4 .. 10 by
  5-fold cross-validated ROC AUC) after median imputation and standardisation, one
  ``Pipeline``, on summary features of each stay: per channel its mean, min, max, last
  value and number of measurements, the static covariates, and ``ICUType`` one-hot;
- ``oracle``: the generator's own death probability ``truth[id]["mortality_probability"]``.

Metrics: test ROC AUC (mean and standard error over seeds; with one seed, the standard
error of a stratified bootstrap of the test stays), the latent ODE's AUC minus the
logistic regression's (paired by seed, or by bootstrap resample), fit seconds, epochs.

    python benchmarks/mortality.py --quick     # 1 seed, 400/1,000 stays, 12 epochs (~1.5 min)
    python benchmarks/mortality.py             # 3 seeds, 1,000/2,000 stays, 20 epochs
    python benchmarks/mortality.py --seeds 0,1,2 --epochs 30   # results/mortality.json (20 min)
    python benchmarks/mortality.py --sources physionet --seeds 0,1 --epochs 20 --n-train 1000
    python benchmarks/mortality.py --quick --set label_weight=1.0   # any LatentODE parameter

Results: ``benchmarks/results/mortality.json`` (``mortality_quick.json`` with ``--quick``)
or ``--json``. Torch uses one thread (the machine's 2 cores are shared; fits are timed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from harness import parse_set_params

import latentode as lo

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SOURCES = ("clinical", "physionet")
METHODS = ("latentode", "logistic", "oracle")
# (training stays, test stays, max_epochs, seeds) per mode
SIZES = {"quick": (400, 1000, 12, (0,)), "full": (1000, 2000, 20, (0, 1, 2))}
TRAIN_SEED, TEST_SEED = 1000, 2000  # data seeds: offset + run seed
N_BOOTSTRAP = 1000
RECORD_BASE = {"a": 100000, "b": 300000}  # RecordID = base + generator id


# ---------------------------------------------------------------- data


def write_physionet(ds: lo.SeriesDataset, folder: Path, letter: str) -> Path:
    """Write ``ds`` (a clinical draw) as challenge files: ``folder/set-<letter>/<id>.txt``
    and ``folder/Outcomes-<letter>.txt``; returns the set's folder."""
    records = folder / f"set-{letter}"
    records.mkdir(parents=True)
    outcomes = ["RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"]
    for s in ds:
        rid = RECORD_BASE[letter] + int(s.id)
        lines = ["Time,Parameter,Value", f"00:00,RecordID,{rid}"]
        for name, v in zip(ds.static_names, s.static):
            lines.append(f"00:00,{name},{-1 if np.isnan(v) else v:g}")
        for t, row in zip(s.times, s.values):
            minute = round(t * 60)
            stamp = f"{minute // 60:02d}:{minute % 60:02d}"
            lines += [f"{stamp},{c},{v:g}" for c, v in zip(ds.channels, row) if v == v]
        (records / f"{rid}.txt").write_text("\n".join(lines) + "\n")
        outcomes.append(f"{rid},-1,-1,-1,-1,{int(s.label)}")
    (folder / f"Outcomes-{letter}.txt").write_text("\n".join(outcomes) + "\n")
    return records


def make_data(source: str, n_train: int, n_test: int, seed: int):
    """(train, test, oracle death probability of each test stay [n_test])."""
    train = lo.datasets.clinical(n_patients=n_train, seed=TRAIN_SEED + seed)
    test = lo.datasets.clinical(n_patients=n_test, seed=TEST_SEED + seed)
    oracle = np.array([test.truth[i]["mortality_probability"] for i in test.ids])
    if source == "physionet":
        with tempfile.TemporaryDirectory() as tmp:
            # the generator's 34 channels: the challenge's other three are never measured
            # here, and fit refuses a channel without any observation
            channels = list(train.channels)
            read = lo.datasets.read_physionet2012
            train = read(write_physionet(train, Path(tmp), "a"), channels=channels)
            test = read(write_physionet(test, Path(tmp), "b"), channels=channels)
        oracle_of = dict(zip(RECORD_BASE["b"] + np.arange(n_test), oracle))
        oracle = np.array([oracle_of[i] for i in test.ids])
    return train, test, oracle


def labels(ds: lo.SeriesDataset) -> np.ndarray:
    return np.array([s.label for s in ds], dtype=float)


def summary_features(ds: lo.SeriesDataset) -> np.ndarray:
    """[N, 5C + S + 4]: per channel mean, min, max, last value, count; statics; ICUType
    one-hot (NaN where a channel was never measured)."""
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels: NaN features
        for s in ds:
            v = s.values  # [T, C], NaN = not observed
            seen = ~np.isnan(v)
            last_row = np.where(seen.any(0), len(v) - 1 - np.argmax(seen[::-1], axis=0), 0)
            last = np.where(seen.any(0), v[last_row, np.arange(v.shape[1])], np.nan)
            stats = [np.nanmean(v, 0), np.nanmin(v, 0), np.nanmax(v, 0), last, seen.sum(0)]
            rows.append(np.concatenate([*stats, s.static]))
    feats = np.array(rows)
    if "ICUType" in ds.static_names:
        icu = np.array([s.static[ds.static_names.index("ICUType")] for s in ds])
        feats = np.column_stack([feats, *[icu == k for k in (1, 2, 3, 4)]])
    return feats.astype(float)


# ---------------------------------------------------------------- methods


def fit_label_model(train, seed: int, epochs: int, params: dict) -> tuple[lo.LatentODE, float]:
    """``LatentODE(classify=True)`` without the residual process (``params`` override),
    fitted on ``train`` quietly: (model, fit seconds)."""
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    model = lo.LatentODE(**{"classify": True, "seed": seed, "residual": False, **params})
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        model.fit(train, max_epochs=epochs, progress_bar=False, log_dir=Path(tmp) / "run")
        seconds = time.perf_counter() - start
    return model, seconds


def fit_latentode(train, test, seed: int, epochs: int, params: dict) -> dict:
    """Fit ``LatentODE(classify=True)`` and predict the test stays' death probability."""
    model, seconds = fit_label_model(train, seed, epochs, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = model.predict_proba(test, seed=seed)["p"].to_numpy()
    return dict(p=p, fit_s=seconds, epochs=len(model.history_))


def fit_logistic(train, test, seed: int) -> dict:
    """Logistic regression (C by 5-fold CV of ROC AUC) on summary features."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(
        SimpleImputer(strategy="median"),
        StandardScaler(),
        LogisticRegressionCV(Cs=np.logspace(-4, 1, 10), cv=5, scoring="roc_auc", max_iter=5000),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # never-measured channels are dropped
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn 1.8's API notices
        start = time.perf_counter()
        pipe.fit(summary_features(train), labels(train))
        seconds = time.perf_counter() - start
        p = pipe.predict_proba(summary_features(test))[:, 1]
    return dict(p=p, fit_s=seconds, C=float(pipe[-1].C_[0]))


# ---------------------------------------------------------------- metrics


def auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def bootstrap_se(y: np.ndarray, scores: dict[str, np.ndarray], seed: int) -> dict[str, float]:
    """Standard error of each method's AUC and of latentode - logistic, resampling the
    test stays within each class (so every resample has both)."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    draws: dict[str, list[float]] = {name: [] for name in scores}
    draws["difference"] = []
    for _ in range(N_BOOTSTRAP):
        b = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        for name, p in scores.items():
            draws[name].append(auc(y[b], p[b]))
        if {"latentode", "logistic"} <= scores.keys():
            draws["difference"].append(draws["latentode"][-1] - draws["logistic"][-1])
    return {k: float(np.std(v, ddof=1)) for k, v in draws.items() if v}


def run_one(source: str, seed: int, methods: Sequence[str], opts: dict) -> dict:
    """One (source, seed): every method's test AUC, fit seconds and epochs."""
    train, test, oracle = make_data(source, opts["n_train"], opts["n_test"], seed)
    y = labels(test)
    record = dict(source=source, seed=seed, n_train=len(train), n_test=len(test))
    record.update(deaths_train=int(labels(train).sum()), deaths_test=int(y.sum()))
    scores = {}
    for method in methods:
        if method == "latentode":
            out = fit_latentode(train, test, seed, opts["epochs"], opts["params"])
        elif method == "logistic":
            out = fit_logistic(train, test, seed)
        else:
            out = dict(p=oracle)
        scores[method] = out.pop("p")
        record[method] = dict(auc=auc(y, scores[method]), **out)
    if {"latentode", "logistic"} <= set(methods):
        record["difference"] = record["latentode"]["auc"] - record["logistic"]["auc"]
    record["bootstrap_se"] = bootstrap_se(y, scores, seed)
    return record


# ---------------------------------------------------------------- report


def mean_se(values: Sequence[float]) -> tuple[float, float | None]:
    vals = np.asarray(values, dtype=float)
    se = float(vals.std(ddof=1) / np.sqrt(len(vals))) if len(vals) > 1 else None
    return float(vals.mean()), se


def summarise(records: list[dict], methods: Sequence[str]) -> list[dict]:
    """Per source and method: AUC mean and SE (over seeds; bootstrap with one seed)."""
    rows = []
    for source in dict.fromkeys(r["source"] for r in records):
        rs = [r for r in records if r["source"] == source]
        for name in [*methods, "difference"]:
            if name == "difference" and "difference" not in rs[0]:
                continue
            values = [r[name] if name == "difference" else r[name]["auc"] for r in rs]
            mean, se = mean_se(values)
            se_kind = "seeds"
            if se is None:
                se, se_kind = rs[0]["bootstrap_se"][name], "bootstrap"
            row = dict(source=source, method=name, auc=mean, se=se, se_kind=se_kind)
            if name not in ("difference", "oracle"):
                row["fit_s"] = mean_se([r[name]["fit_s"] for r in rs])[0]
            if name == "latentode":
                row["epochs"] = [r[name]["epochs"] for r in rs]
            rows.append(row)
    return rows


def markdown(summary: list[dict], records: list[dict]) -> str:
    label = {
        "latentode": "latent ODE, label head",
        "logistic": "logistic regression, summary features",
        "oracle": "oracle: generator's death probability",
        "difference": "latent ODE - logistic regression",
    }
    lines = [
        "| data | method | ROC AUC | SE | fit s | epochs |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary:
        rs = [r for r in records if r["source"] == row["source"]]
        data = f"{row['source']} ({rs[0]['n_train']} / {rs[0]['n_test']})"
        fit_s = f"{row['fit_s']:.0f}" if "fit_s" in row else ""
        epochs = ",".join(map(str, row.get("epochs", [])))
        value = f"{row['auc']:{'+' if row['method'] == 'difference' else ''}.3f}"
        lines.append(
            f"| {data} | {label[row['method']]} | {value} | {row['se']:.3f} "
            f"({row['se_kind']}) | {fit_s} | {epochs} |"
        )
    return "\n".join(lines)


def machine() -> dict:
    """Platform, CPU count, versions, torch threads, the command line (no date)."""
    import sklearn
    import torch

    return dict(
        platform=platform.platform(), cpu_count=os.cpu_count(), python=platform.python_version(),
        torch=torch.__version__, torch_threads=torch.get_num_threads(),
        sklearn=sklearn.__version__, latentode=lo.__version__,
        command=shlex.join(["python", *sys.argv]),
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> dict:
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="one seed, small sets, few epochs")
    add("--sources", default=",".join(SOURCES), help=f"comma-separated, from {SOURCES}")
    add("--methods", default=",".join(METHODS), help=f"comma-separated, from {METHODS}")
    add("--seeds", help="comma-separated integers")
    add("--n-train", type=int, help="training stays")
    add("--n-test", type=int, help="test stays")
    add("--epochs", type=int, help="the latent ODE's max_epochs")
    add("--json", type=Path, help="where to write the results")
    add("--set", action="append", default=[], metavar="KEY=VALUE", help="a LatentODE parameter")
    args = parser.parse_args(argv)
    n_train, n_test, epochs, seeds = SIZES["quick" if args.quick else "full"]
    sources, methods = args.sources.split(","), args.methods.split(",")
    if not set(sources) <= set(SOURCES) or not set(methods) <= set(METHODS):
        raise SystemExit(f"choose --sources from {SOURCES} and --methods from {METHODS}")
    opts = dict(
        n_train=args.n_train or n_train,
        n_test=args.n_test or n_test,
        epochs=args.epochs or epochs,
        params=parse_set_params(args.set, "label_weight=100"),
    )
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(seeds)
    try:
        lo.LatentODE(**opts["params"])  # an unknown name fails here, not after the data
    except TypeError as err:
        raise SystemExit(f"--set: {err}; see help(latentode.LatentODE)") from None
    path = args.json or RESULTS_DIR / f"mortality{'_quick' if args.quick else ''}.json"
    print(
        f"mortality: sources {sources} | methods {methods} | seeds {seeds} | "
        f"{opts['n_train']} training / {opts['n_test']} test stays | max_epochs "
        f"{opts['epochs']} | LatentODE params {opts['params'] or 'defaults'}",
        flush=True,
    )
    start, records = time.perf_counter(), []
    for source in sources:
        for seed in seeds:
            t0 = time.perf_counter()
            records.append(run_one(source, seed, methods, opts))
            aucs = ", ".join(f"{m} {records[-1][m]['auc']:.3f}" for m in methods)
            print(f"  {source} seed {seed}: {aucs} ({time.perf_counter() - t0:.0f} s)", flush=True)
    summary = summarise(records, methods)
    table = markdown(summary, records)
    wall = time.perf_counter() - start
    print(f"\n{table}\n\nwall time {wall:.0f} s; results in {path}")
    result = dict(
        machine=machine(), quick=args.quick, sources=sources, methods=methods, seeds=seeds,
        options=opts, data_seeds=dict(train=TRAIN_SEED, test=TEST_SEED), wall_s=wall,
        table=table, summary=summary, records=records,
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=float) + "\n")
    return result


if __name__ == "__main__":
    main()
