"""``latentode demo``: fit a latent ODE on synthetic series, compare its interpolation
and forecasts with two simple baselines, and write figures.

:class:`DemoSettings` holds every choice the demo makes (data size, training length,
the model); tune :data:`DEMOS` here.
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentode.cli.fit import train
from latentode.cli.flags import PREDICT_SAMPLES, positive_int
from latentode.cli.tables import fmt, table

if TYPE_CHECKING:
    import numpy as np

    from latentode.data.dataset import SeriesDataset
    from latentode.estimator import SeriesEstimator


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
    n_samples: int = PREDICT_SAMPLES  # posterior samples per prediction
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


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``demo`` and its flags to the subcommands ``sub``."""
    demo = sub.add_parser(
        "demo",
        help="train on synthetic data and compare with baselines",
        description="Generate synthetic series, fit a latent ODE, compare interpolation and "
        "forecasts with simple baselines and write a figure.",
    )
    demo.add_argument("dataset", nargs="?", choices=sorted(DEMOS), default="spiral")
    demo.add_argument("--out", default="latentode-demo", metavar="DIR", help="output folder")
    demo.add_argument("--epochs", type=positive_int, help="override the number of epochs")
    demo.add_argument("--quick", action="store_true", help="tiny data and 2 epochs (smoke test)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-progress-bar", action="store_true", help="hide the progress bar")
    demo.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    """Generate, split, fit, score the two tasks against the baselines, draw, report."""
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
    train_set, test = data.split(test_size=settings.test_size, seed=args.seed)
    print(
        f"demo {args.dataset}: {len(train_set)} training and {len(test)} test series, "
        f"{len(data.channels)} channels, up to {settings.epochs} epochs"
    )
    model = lo.LatentODE(**{**dict(settings.params), "seed": args.seed})
    for previous in ("checkpoints", "logs"):  # the demo's own earlier run: start afresh
        shutil.rmtree(out / previous, ignore_errors=True)
    fit_seconds = train(model, train_set, out, not args.no_progress_bar, max_epochs=settings.epochs)
    model.save(out / "model.safetensors")

    tasks = {
        "interpolation": test.subsample(settings.interp_frac, seed=args.seed),
        "forecast": test.split_time(frac=settings.forecast_frac),
    }
    rows = []
    for name, (context, target) in tasks.items():
        scores = _scores(model, context, target, settings, args.seed)
        rows.append([name, *(fmt(scores[k]) for k in ("model", "linear", "last", "coverage"))])
    unit = "per-channel std units" if settings.standardise else "original units"
    print(
        f"\nmean squared error on the held-out points of {len(test)} test series ({unit}; "
        f"lower is better), and the latent ODE's 90% interval coverage:"
    )
    header = ["task", "latent ODE", "linear interp", "last value", "90% coverage"]
    print(table(header, rows))
    auc = _auc(model, test, args.seed)
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


def _demo_data(name: str, n_series: int, seed: int) -> SeriesDataset:
    from latentode import datasets

    if name == "spiral":
        return datasets.spiral(n_series=n_series, seed=seed)
    return datasets.clinical(n_patients=n_series, seed=seed)


def _scores(
    model: SeriesEstimator,
    context: SeriesDataset,
    target: SeriesDataset,
    settings: DemoSettings,
    seed: int,
) -> dict[str, float]:
    """MSE of the latent ODE and two baselines on the target points, and the model's
    90% interval coverage."""
    import numpy as np

    from latentode.estimator.evaluation import predict_held_out, usable_pairs

    context, target = usable_pairs(context, target)
    held_out = predict_held_out(model, context, target, settings.n_samples, seed)
    y, obs = held_out.truth, held_out.observed  # [N, C]
    linear, last = _baselines(context, target, np.asarray(model.scaler_.mean))
    scale = np.asarray(model.scaler_.std) if settings.standardise else np.ones(y.shape[1])

    def mse(guess: np.ndarray) -> float:
        return float(np.mean((((guess - y) / scale)[obs]) ** 2))

    inside = (y >= held_out.lower) & (y <= held_out.upper)
    return {
        "model": mse(held_out.mean),
        "linear": mse(linear),
        "last": mse(last),
        "coverage": float(np.mean(inside[obs])),
    }


def _baselines(
    context: SeriesDataset, target: SeriesDataset, fill: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per series and channel, on the observed context points: linear interpolation
    (constant beyond the ends) and the last value observed at or before each time (the
    first value before the first observation). ``fill`` [C] where a channel is unseen.
    Both [N, C], N the target points of all series in order."""
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


def _auc(model: SeriesEstimator, test: SeriesDataset, seed: int) -> float | None:
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
