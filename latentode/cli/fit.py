"""``latentode fit``: train a latent ODE on a CSV file and write the model and its logs.

Also :func:`train`, the quiet training run that ``demo`` shares.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentode.cli.flags import add_column_args, columns, log_scale, names, positive_int
from latentode.cli.reporting import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from latentode.data.dataset import SeriesDataset
    from latentode.estimator import SeriesEstimator

#: the flags that are LatentODE parameters (same names)
ESTIMATOR_PARAMS = (
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
    "log_scale",
    "horizon_warmup",
    "ema_decay",
    "origin",
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``fit`` and its flags to the subcommands ``sub``."""
    fit = sub.add_parser(
        "fit",
        help="train a latent ODE on a CSV file",
        description="Train a latent ODE on a CSV file; writes OUT/model.safetensors and "
        "training logs in OUT/logs.",
    )
    fit.add_argument("data", metavar="DATA.csv", help="training data (wide or long CSV)")
    add_column_args(fit, defaults=True)
    fit.add_argument("--channels", type=names, help="comma list of channels to use")
    fit.add_argument("--static-cols", type=names, default=(), help="comma list of static columns")
    fit.add_argument("--label-col", help="per-series label column (e.g. mortality 0/1)")
    fit.add_argument(
        "--epochs", type=positive_int, default=100, help="maximum epochs (default 100)"
    )
    model = fit.add_argument_group("model")
    model.add_argument(
        "--latent-dim", type=positive_int, help="size of the latent state (default 8)"
    )
    model.add_argument("--encoder", choices=("odernn", "rnn"), help="encoder (default odernn)")
    model.add_argument("--hidden", type=positive_int, help="width of the ODE vector-field MLPs")
    model.add_argument(
        "--poisson", action="store_true", default=None, help="also model observation times"
    )
    model.add_argument("--solver", help="ODE solver (default dopri5)")
    model.add_argument("--batch-size", type=positive_int, help="series per batch (default 16)")
    model.add_argument("--lr", type=float, help="learning rate (default 0.01)")
    model.add_argument("--val-frac", type=float, help="share of series for early stopping")
    model.add_argument("--patience", type=int, help="epochs without improvement before stopping")
    model.add_argument("--seed", type=int, help="random seed (default 0)")
    model.add_argument(
        "--horizon-warmup",
        type=float,
        metavar="SHARE",
        help="share of the epochs over which training targets widen from near each "
        "context's start to the whole series (default 0: off; e.g. 0.3 for series of many "
        "oscillations)",
    )
    model.add_argument(
        "--ema-decay",
        type=float,
        metavar="D",
        help="keep a moving average of the weights, decaying by D a step (default 0.95; 0: off)",
    )
    model.add_argument(
        "--origin",
        choices=("shared", "context"),  # latentode.data.scaling.ORIGINS, without pandas
        help="where each series' latent clock starts: the training data's earliest time "
        "(shared, the default) or the series' first context time (context)",
    )
    model.add_argument(
        "--log-scale",
        type=log_scale,
        metavar="auto|CHANNELS",
        help="model these channels (comma list) on the log scale, or 'auto': the positive, "
        "strongly right-skewed ones (default: none)",
    )
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
    fit.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    """Read the data, train, save ``OUT/model.safetensors`` and print a summary."""
    import latentode as lo

    data = lo.read_csv(args.data, columns(args), sep=args.sep)
    params = {n: getattr(args, n) for n in ESTIMATOR_PARAMS if getattr(args, n) is not None}
    model = lo.LatentODE(**params)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seconds = train(
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


def _devices(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def train(
    model: SeriesEstimator,
    data: SeriesDataset,
    log_dir: Path,
    progress_bar: bool,
    **fit_kwargs: Any,
) -> float:
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
