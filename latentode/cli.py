"""The ``latentode`` command line: ``fit``, ``predict``, ``evaluate`` and ``demo``.

Flags become estimator parameters and keyword arguments here; nothing below this
module sees argparse. The module imports only the standard library at the top so that
``latentode <command> --help`` answers at once; pandas, torch and Lightning are
imported inside the commands.

Bad input (a missing or malformed file, an unknown column, a corrupt model file) ends
with exit code 2 and one line ``latentode: error: <message>`` on stderr; Ctrl-C ends
with exit code 130.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


# ---- demo settings (tune here) --------------------------------------------------------------
@dataclass(frozen=True)
class DemoSettings:
    """Everything ``latentode demo`` chooses: data size, training length and the model.

    ``params`` are :class:`~latentode.LatentODE` parameters as (name, value) pairs;
    ``quick_series`` and ``quick_epochs`` replace the sizes under ``--quick``.
    """

    n_series: int
    epochs: int
    params: tuple[tuple[str, Any], ...]
    test_size: float = 0.2
    interp_frac: float = 0.5  # share of each test series' points kept as context
    forecast_frac: float = 0.5  # context = the first half of each test series' span
    n_samples: int = 100  # posterior samples per prediction
    n_plot: int = 4  # test series in the figure
    standardise: bool = False  # report MSE in per-channel standard deviations
    quick_series: int = 24
    quick_epochs: int = 2

    def quick(self) -> DemoSettings:
        return replace(self, n_series=self.quick_series, epochs=self.quick_epochs, n_samples=10)


SPIRAL_DEMO = DemoSettings(
    n_series=300,
    epochs=200,
    params=(("latent_dim", 8), ("encoder", "odernn"), ("lr", 1e-2), ("batch_size", 50)),
)
CLINICAL_DEMO = DemoSettings(
    n_series=120,
    epochs=15,
    params=(("latent_dim", 8), ("poisson", True), ("lr", 1e-2), ("batch_size", 30)),
    standardise=True,
    n_samples=50,
    quick_series=30,
)
DEMOS = {"spiral": SPIRAL_DEMO, "clinical": CLINICAL_DEMO}


# ---- entry point ------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``latentode`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    args = build_parser().parse_args(argv)
    _show_library_messages()
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("latentode: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _show_library_messages() -> None:
    """Print the library's log messages (``latentode`` logger, INFO and up) on stderr."""
    import logging

    logger = logging.getLogger("latentode")
    if not logger.handlers:
        handler = logging.StreamHandler()  # stderr
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _run(args: argparse.Namespace) -> int:
    from latentode.errors import LatentODEError

    try:
        return args.command(args)
    except (LatentODEError, OSError) as err:
        message = _in_cli_words(" ".join(str(err).split()) or type(err).__name__)
        print(f"latentode: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _in_cli_words(message: str) -> str:
    """The library's advice (``id_col=``, ``drop_empty=True``) in flags (``--id-col``)."""
    from latentode.data.columns import ColumnSpec

    for name in (*ColumnSpec.names(), "sep", "horizon"):
        flag = "--" + name.replace("_", "-")
        message = re.sub(rf"\b{name}=True\b", flag, message)
        message = re.sub(rf"\b{name}=(?=['\"\w])", flag + " ", message)
        message = re.sub(rf"\b{name}=", flag, message)
    return message


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (standard library only)."""
    parser = argparse.ArgumentParser(
        prog="latentode",
        description="Latent ODE models for irregularly-sampled multivariate time series.",
    )
    sub = parser.add_subparsers(dest="name", required=True, metavar="COMMAND")

    fit = sub.add_parser(
        "fit",
        help="train a latent ODE on a CSV file",
        description="Train a latent ODE on a CSV file; writes OUT/model.safetensors and "
        "training logs in OUT/logs.",
    )
    fit.add_argument("data", metavar="DATA.csv", help="training data (wide or long CSV)")
    _add_column_args(fit, defaults=True)
    fit.add_argument("--channels", type=_names, help="comma list of channels to use")
    fit.add_argument("--static-cols", type=_names, default=(), help="comma list of static columns")
    fit.add_argument("--label-col", help="per-series label column (e.g. mortality 0/1)")
    fit.add_argument(
        "--epochs", type=_positive_int, default=100, help="maximum epochs (default 100)"
    )
    model = fit.add_argument_group("model")
    model.add_argument(
        "--latent-dim", type=_positive_int, help="size of the latent state (default 8)"
    )
    model.add_argument("--encoder", choices=("odernn", "rnn"), help="encoder (default odernn)")
    model.add_argument("--hidden", type=_positive_int, help="width of the ODE vector-field MLPs")
    model.add_argument(
        "--poisson", action="store_true", default=None, help="also model observation times"
    )
    model.add_argument("--solver", help="ODE solver (default dopri5)")
    model.add_argument("--batch-size", type=_positive_int, help="series per batch (default 16)")
    model.add_argument("--lr", type=float, help="learning rate (default 0.01)")
    model.add_argument("--val-frac", type=float, help="share of series for early stopping")
    model.add_argument("--patience", type=int, help="epochs without improvement before stopping")
    model.add_argument("--seed", type=int, help="random seed (default 0)")
    fit.add_argument("--accelerator", default="auto", help="cpu, gpu, mps or auto (default)")
    fit.add_argument("--devices", default="auto", help="number of devices, or auto (default)")
    fit.add_argument("--no-progress-bar", action="store_true", help="hide the progress bar")
    fit.add_argument("--out", required=True, metavar="DIR", help="output folder")
    fit.add_argument(
        "--resume",
        action="store_true",
        help="continue the training run in --out from its last complete epoch (after a "
        "crash, a kill or Ctrl-C); the same data and options give the same model as an "
        "uninterrupted run",
    )
    fit.set_defaults(command=_cmd_fit)

    predict = sub.add_parser(
        "predict",
        help="interpolate or forecast with a fitted model",
        description="Predict mean, std and quantiles at chosen times given observed context. "
        "Streams: reads the context --series-per-chunk series at a time and writes PRED.csv "
        "only when every chunk succeeded (memory does not grow with the number of series).",
    )
    predict.add_argument("model", metavar="MODEL", help="model file written by fit")
    predict.add_argument("context", metavar="CONTEXT.csv", help="observed points")
    predict.add_argument(
        "--times",
        metavar="SPEC",
        help="where to predict: a comma list (0,0.5,1.5), start:stop:step (0:10:0.5, stop "
        "included) or a CSV file of id,time rows; default: the context's own times",
    )
    predict.add_argument("--out", required=True, metavar="PRED.csv", help="output CSV")
    predict.add_argument(
        "--quantiles", type=_floats, default=(0.05, 0.95), help="default 0.05,0.95"
    )
    predict.add_argument(
        "--horizon",
        type=_horizon,
        default=10.0,
        help="farthest a time may lie from a series' observations, in training spans (the "
        "longest training series); default 10, 'none' for no limit",
    )
    predict.add_argument(
        "--series-per-chunk",
        type=_positive_int,
        default=1000,
        help="series read and predicted at a time: memory does not grow with the file; a "
        "series' rows must be contiguous (default 1000)",
    )
    _add_sampling_args(predict)
    _add_column_args(predict, defaults=False)
    predict.set_defaults(command=_cmd_predict)

    evaluate = sub.add_parser(
        "evaluate",
        help="score a fitted model on held-out points",
        description="Hide part of each series, predict it and print the errors.",
    )
    evaluate.add_argument("model", metavar="MODEL", help="model file written by fit")
    evaluate.add_argument("data", metavar="DATA.csv", help="series to evaluate on")
    evaluate.add_argument("--task", choices=("interp", "extrap"), default="interp")
    evaluate.add_argument(
        "--frac",
        type=float,
        default=0.5,
        help="interp: share of points kept as context; extrap: share of the span (default 0.5)",
    )
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    _add_sampling_args(evaluate)
    _add_column_args(evaluate, defaults=False)
    evaluate.set_defaults(command=_cmd_evaluate)

    demo = sub.add_parser(
        "demo",
        help="train on synthetic data and compare with baselines",
        description="Generate synthetic series, fit a latent ODE, compare interpolation and "
        "forecasts with simple baselines and write a figure.",
    )
    demo.add_argument("dataset", nargs="?", choices=sorted(DEMOS), default="spiral")
    demo.add_argument("--out", default="latentode-demo", metavar="DIR", help="output folder")
    demo.add_argument("--epochs", type=_positive_int, help="override the number of epochs")
    demo.add_argument("--quick", action="store_true", help="tiny data and 2 epochs (smoke test)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-progress-bar", action="store_true", help="hide the progress bar")
    demo.set_defaults(command=_cmd_demo)
    return parser


def _add_column_args(parser: argparse.ArgumentParser, defaults: bool) -> None:
    group = parser.add_argument_group(
        "CSV columns" + ("" if defaults else " (default: the model's)")
    )
    group.add_argument("--id-col", default="id" if defaults else None, help="series id column")
    group.add_argument("--time-col", default="time" if defaults else None, help="time column")
    group.add_argument("--format", choices=("wide", "long"), default="wide")
    group.add_argument("--variable-col", default="variable", help="long format: variable names")
    group.add_argument("--value-col", default="value", help="long format: values")
    group.add_argument(
        "--time-unit", default="h" if defaults else None, help="unit of the times (default h)"
    )
    group.add_argument(
        "--duplicates",
        choices=("error", "mean", "first", "last"),
        default="error",
        help="several values for one (id, time, channel)",
    )
    group.add_argument("--sep", default=",", help="field delimiter (default ,)")
    group.add_argument(
        "--drop-empty", action="store_true", help="drop series/channels with no observed value"
    )


def _add_sampling_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--n-samples", type=_positive_int, default=100, help="posterior samples (100)"
    )
    parser.add_argument("--seed", type=int, help="seed of the samples (default: the model's)")
    parser.add_argument("--rtol", type=float, help="solver relative tolerance for this run")
    parser.add_argument("--atol", type=float, help="solver absolute tolerance for this run")


def _horizon(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or 'none': {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return names


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


# ---- flags → library arguments ---------------------------------------------------------------
def _columns(args: argparse.Namespace, model=None):
    """The :class:`~latentode.data.columns.ColumnSpec` the flags ask for; with a fitted
    model, its columns, channels and time unit unless a flag says otherwise."""
    from latentode.data.columns import ColumnSpec
    from latentode.estimator import FittedState

    common = {
        "format": args.format,
        "variable_col": args.variable_col,
        "value_col": args.value_col,
        "duplicates": args.duplicates,
        "drop_empty": args.drop_empty,
    }
    if model is None:
        return ColumnSpec.of(
            **common,
            id_col=args.id_col,
            time_col=args.time_col,
            time_unit=args.time_unit,
            channels=args.channels or None,
            static_cols=args.static_cols,
            label_col=args.label_col,
        )
    schema = FittedState.of(model).schema
    given = {"id_col": args.id_col, "time_col": args.time_col, "time_unit": args.time_unit}
    given = {k: v for k, v in given.items() if v is not None}
    return schema.columns(**common, **given, channels=schema.channels)


def _estimator_params(args: argparse.Namespace) -> dict:
    """The LatentODE parameters the user set (the estimator's defaults for the rest)."""
    names = (
        "latent_dim",
        "encoder",
        "hidden",
        "poisson",
        "solver",
        "batch_size",
        "lr",
        "val_frac",
        "patience",
        "seed",
    )
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def _solver_override(args: argparse.Namespace) -> dict:
    return {n: getattr(args, n) for n in ("rtol", "atol") if getattr(args, n) is not None}


def _devices(text: str) -> int | str:
    return int(text) if text.isdigit() else text


# ---- commands ---------------------------------------------------------------------------------
def _cmd_fit(args: argparse.Namespace) -> int:
    import latentode as lo

    data = lo.read_csv(args.data, _columns(args), sep=args.sep)
    model = lo.LatentODE(**_estimator_params(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seconds = _train(
        model,
        data,
        out,
        not args.no_progress_bar,
        max_epochs=args.epochs,
        accelerator=args.accelerator,
        devices=_devices(args.devices),
        resume=args.resume,
    )
    if model.interrupted_:
        print(
            f"interrupted: no model written; continue with the same command and --resume "
            f"(checkpoints in {out / 'checkpoints'}).",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    path = model.save(out / "model.safetensors")
    history = model.history_
    print(
        f"fitted {len(data)} series, channels {', '.join(model.channels_)}: "
        f"{len(history)} epochs in {seconds:.1f} s"
    )
    for col in ("train_loss", "val_loss", "val_mse"):
        if col in history.columns and history[col].notna().any():
            epoch = int(history.loc[history[col].idxmin(), "epoch"])
            print(f"  best {col:<10} {history[col].min():.4g} (epoch {epoch})")
    print(f"logs:  {Path(model.log_dir_) / 'logs'}")
    print(f"model: {path}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    """Stream: read the context in chunks of series, predict and append each to the output."""
    import latentode as lo

    model = lo.load(args.model)
    columns = _columns(args, model)
    times = _parse_times(args.times, model.time_axis_.is_datetime, columns)
    chunks = lo.iter_csv(args.context, args.series_per_chunk, columns, sep=args.sep)
    n_series = n_rows = 0

    def counted(chunks):
        nonlocal n_series
        for chunk in chunks:
            n_series += len(chunk)
            yield chunk

    preds = model.predict_stream(
        counted(chunks),
        times,
        n_samples=args.n_samples,
        quantiles=args.quantiles or None,
        seed=args.seed,
        horizon=args.horizon,
        **_solver_override(args),
    )
    with _atomic_csv(args.out) as (path, write):
        for pred in preds:
            write(pred)
            n_rows += len(pred)
        if isinstance(times, _TimesFile):
            times.check_all_used()
    print(f"wrote {n_rows} rows for {n_series} series to {path}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import latentode as lo

    model = lo.load(args.model)
    data = lo.read_csv(args.data, _columns(args, model), sep=args.sep)
    metrics = model.evaluate(
        data,
        task=args.task,
        frac=args.frac,
        n_samples=args.n_samples,
        seed=args.seed,
        **_solver_override(args),
    )
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(f"{args.task} on {len(data)} series of {Path(args.data).name} (frac={args.frac})")
    print(_table(["metric", "value"], [[k, _fmt(v)] for k, v in metrics.items()]))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import latentode as lo
    from latentode import plotting

    settings = DEMOS[args.dataset]
    if args.quick:
        settings = settings.quick()
    if args.epochs is not None:
        settings = replace(settings, epochs=args.epochs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = _demo_data(args.dataset, settings.n_series, args.seed)
    train, test = data.split(test_size=settings.test_size, seed=args.seed)
    print(
        f"demo {args.dataset}: {len(train)} training and {len(test)} test series, "
        f"{len(data.channels)} channels, up to {settings.epochs} epochs"
    )
    model = lo.LatentODE(**{**dict(settings.params), "seed": args.seed})
    for previous in ("checkpoints", "logs"):  # the demo's own earlier run: start afresh
        shutil.rmtree(out / previous, ignore_errors=True)
    fit_seconds = _train(model, train, out, not args.no_progress_bar, max_epochs=settings.epochs)
    model.save(out / "model.safetensors")

    tasks = {
        "interpolation": test.subsample(settings.interp_frac, seed=args.seed),
        "forecast": test.split_time(frac=settings.forecast_frac),
    }
    rows = []
    for name, (context, target) in tasks.items():
        scores = _demo_scores(model, context, target, settings, args.seed)
        rows.append([name, *(_fmt(scores[k]) for k in ("model", "linear", "last", "coverage"))])
    unit = "per-channel std units" if settings.standardise else "original units"
    print(
        f"\nmean squared error on the held-out points of {len(test)} test series ({unit}; "
        f"lower is better), and the latent ODE's 90% interval coverage:"
    )
    header = ["task", "latent ODE", "linear interp", "last value", "90% coverage"]
    print(_table(header, rows))
    auc = _demo_auc(model, test, args.seed)
    if auc is not None:
        print(f"mortality ROC AUC from the latent state (test series): {auc:.3f}")

    plotting.plot_training(model).savefig(out / "training.png", dpi=100)
    context, target = tasks["forecast"]
    if model.poisson:
        intensity = plotting.plot_intensity(model, test, series=2, seed=args.seed)
        intensity.savefig(out / f"{args.dataset}_intensity.png", dpi=100)
    figure = plotting.plot_predictions(
        model,
        context,
        target,
        series=settings.n_plot,
        n_samples=settings.n_samples,
        seed=args.seed,
    )
    png = out / f"{args.dataset}_forecast.png"
    figure.savefig(png, dpi=100)
    print(
        f"done in {time.perf_counter() - start:.0f} s (training {fit_seconds:.0f} s, "
        f"{len(model.history_)} epochs); model and logs in {out}"
    )
    print(f"figure: {png.resolve()}")
    return 0


def _demo_data(name: str, n_series: int, seed: int):
    from latentode import datasets

    if name == "spiral":
        return datasets.spiral(n_series=n_series, seed=seed)
    return datasets.clinical(n_patients=n_series, seed=seed)


def _demo_scores(model, context, target, settings: DemoSettings, seed: int) -> dict:
    """MSE of the latent ODE and two baselines on the target points, and the model's
    90% interval coverage."""
    import numpy as np

    from latentode.estimator.evaluation import predict_held_out, usable_pairs

    context, target = usable_pairs(context, target)
    held_out = predict_held_out(model, context, target, settings.n_samples, seed)
    y, obs = held_out.truth, held_out.observed  # [N, C]
    linear, last = _baselines(context, target, np.asarray(model.scaler_.mean))
    scale = np.asarray(model.scaler_.std) if settings.standardise else np.ones(y.shape[1])

    def mse(guess):
        return float(np.mean((((guess - y) / scale)[obs]) ** 2))

    inside = (y >= held_out.lower) & (y <= held_out.upper)
    return {
        "model": mse(held_out.mean),
        "linear": mse(linear),
        "last": mse(last),
        "coverage": float(np.mean(inside[obs])),
    }


def _baselines(context, target, fill):
    """Per series and channel, on the observed context points: linear interpolation
    (constant beyond the ends) and the last value observed at or before each time (the
    first value before the first observation). ``fill`` [C] where a channel is unseen."""
    import numpy as np

    linear, last = [], []
    for c, t in zip(context, target):
        lin = np.empty((len(t), len(fill)))  # [T, C]
        prev = np.empty((len(t), len(fill)))
        for j in range(len(fill)):
            seen = c.mask[:, j]
            if not seen.any():
                lin[:, j] = prev[:, j] = fill[j]
                continue
            ct, cv = c.times[seen], c.values[seen, j]
            lin[:, j] = np.interp(t.times, ct, cv)
            prev[:, j] = cv[np.clip(np.searchsorted(ct, t.times, side="right") - 1, 0, None)]
        linear.append(lin)
        last.append(prev)
    return np.concatenate(linear), np.concatenate(last)


def _demo_auc(model, test, seed: int) -> float | None:
    """ROC AUC of the model's label probability on the test series, when it has one."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from latentode.errors import LatentODEError

    if not test.has_labels:
        return None
    labelled = test.with_series([s for s in test if s.label is not None])
    y = np.array([s.label for s in labelled])
    if len(np.unique(y)) < 2:
        return None
    try:
        proba = model.predict_proba(labelled, seed=seed)["p"]
    except LatentODEError:  # the model has no label head
        return None
    return float(roc_auc_score(y, proba))


# ---- predict helpers --------------------------------------------------------------------------
def _parse_times(spec: str | None, is_datetime: bool, columns):
    """``--times`` → what ``predict_stream`` takes: None, one array for all series, or a
    :class:`_TimesFile` that gives each chunk of series its times."""
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
        if count > 1_000_000:
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
class _TimesFile:
    """An id,time file's query times by id text, handed out to each chunk of series."""

    path: Path
    by_text: dict  # id text → times [T] (the user's numbers or datetime text)

    def __call__(self, chunk) -> dict:
        """The times of ``chunk``'s series, keyed by their ids (as the chunk has them)."""
        return {i: self.by_text.pop(str(i)) for i in chunk.ids if str(i) in self.by_text}

    def check_all_used(self) -> None:
        """Raise if the file names ids that no chunk held."""
        from latentode.errors import LatentODEError

        if self.by_text:
            raise LatentODEError(
                f"times file {self.path} has ids not in the context: {list(self.by_text)[:5]}."
            )


def _times_from_csv(path: Path, id_col: str, time_col: str) -> _TimesFile:
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
    return _TimesFile(path, {str(k): g.to_numpy() for k, g in groups})


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@contextmanager
def _atomic_csv(path: str | os.PathLike) -> Iterator[tuple[Path, Callable[[Any], None]]]:
    """Write DataFrames one after another to ``path`` as one CSV, atomically.

    Yields (path, write): each ``write(frame)`` appends to a temporary file in
    ``path``'s folder (the header once); leaving the block moves it onto ``path`` with
    ``os.replace``. On any error or Ctrl-C the temporary file is removed and ``path``
    is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", newline="") as handle:
            first = True

            def write(frame) -> None:
                nonlocal first
                frame.to_csv(handle, index=False, header=first)
                first = False

            yield path, write
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# ---- output helpers ---------------------------------------------------------------------------
def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A plain text table: first column left-aligned, the others right-aligned."""
    cells = [header, *rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(header))]
    lines = []
    for r in cells:
        first = r[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join([first, *rest]).rstrip())
    return "\n".join(lines)


def _train(model, data, log_dir: Path, progress_bar: bool, **fit_kwargs) -> float:
    """Fit ``model`` quietly (no Lightning banner lines); returns the seconds it took.

    Ctrl-C is handled by ``fit`` (it returns with ``interrupted_``, or raises
    KeyboardInterrupt when no checkpoint was written yet). A trainer setting Lightning
    rejects (e.g. ``--accelerator gpu`` without a GPU) is reported as bad input.
    """
    import logging

    import lightning  # noqa: F401  (its import sets its loggers' level; quiet them after)
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from latentode.errors import LatentODEError

    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*treespec.*")  # torch vs Lightning
            model.fit(data, log_dir=log_dir, progress_bar=progress_bar, **fit_kwargs)
    except MisconfigurationException as err:
        raise LatentODEError(f"training could not start: {err}") from None
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    return time.perf_counter() - start


if __name__ == "__main__":
    raise SystemExit(main())
