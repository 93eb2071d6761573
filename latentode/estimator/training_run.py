"""One training run with Lightning: the Trainer, its callbacks, resume and Ctrl-C.

:func:`run_training` trains a :class:`~latentode.models.training.TrainingModule` on a
:class:`~latentode.data.datamodule.SeriesDataModule`, writing logs and atomic
checkpoints (``checkpoints/best.ckpt`` and ``last.ckpt``) to ``log_dir``. It refuses
to overwrite a run unless resuming, resumes from the last complete epoch, turns Ctrl-C
into a clean stop with the best weights so far, and reports through ``logging``.
"""

from __future__ import annotations

import logging
import signal
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from latentode.errors import LatentODEError
from latentode.models.checkpoints import (
    BEST,
    LAST,
    AtomicCheckpointIO,
    check_resumable,
    read_checkpoint,
)
from latentode.models.history import read_history, set_aside
from latentode.models.training import InterruptWatch, NonFiniteLossError

log = logging.getLogger(__name__)

__all__ = ["TrainingOutcome", "read_history", "resume_point", "run_training"]


@dataclass(frozen=True)
class RunSettings:
    """How to train: Lightning's settings plus fit's own callbacks' settings.

    Attributes:
        max_epochs, accelerator, devices, progress_bar: as ``fit`` takes them.
        gradient_clip: gradient-norm clip value (None: off).
        patience: epochs without validation improvement before early stopping (0: off).
        ema_decay: the decay of the weights' moving average (0: off; see ``LatentODE``).
        trainer_kwargs: other ``lightning.Trainer`` arguments (``callbacks=`` are added
            to fit's own).
    """

    max_epochs: int
    accelerator: str
    devices: int | str
    progress_bar: bool
    gradient_clip: float | None
    patience: int
    trainer_kwargs: dict
    ema_decay: float = 0.0


@dataclass(frozen=True)
class TrainingOutcome:
    """What a run leaves: the best checkpoint (None if none), history, whether stopped."""

    best_checkpoint: str | None
    history: pd.DataFrame
    interrupted: bool


def resume_point(log_dir: Path, resume: bool, hparams: dict) -> str | None:
    """The checkpoint a run resumes from (None: start afresh); refuses to overwrite a run.

    Raises:
        LatentODEError: ``log_dir`` holds a run and ``resume`` is False, or its run was
            made with other data or parameters.
    """
    folder = log_dir / "checkpoints"
    last = folder / LAST
    if not resume:
        if last.exists() or (folder / BEST).exists():
            raise LatentODEError(
                f"log_dir {log_dir} already holds a training run ({folder}); pass "
                "resume=True (CLI: --resume) to continue it, or choose another log_dir "
                "(CLI: --out) to start a new one."
            )
        return None
    if not last.exists():
        log.warning("latentode: no checkpoint to resume in %s; training from the start.", folder)
        return None
    check_resumable(read_checkpoint(last), last, hparams)
    return str(last)


def run_training(
    module, datamodule, log_dir: Path, settings: RunSettings, resume_from: str | None
) -> TrainingOutcome:
    """Train ``module`` in place (ending with its best weights) and return the outcome.

    Raises:
        NonFiniteLossError: the loss or a gradient became NaN or infinite (the message
            says where the last good checkpoints are).
        KeyboardInterrupt: Ctrl-C before any checkpoint was written.
    """
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, EMAWeightAveraging, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    if resume_from is not None:
        set_aside(log_dir / "logs")  # Lightning's CSV logger would delete it
    has_val = datamodule.val_data is not None
    monitor = "val_mse" if has_val else "train_loss"
    checkpoint = ModelCheckpoint(
        dirpath=log_dir / "checkpoints",
        filename="best",
        monitor=monitor,
        mode="min",
        save_last=True,
    )
    kwargs = dict(settings.trainer_kwargs)
    user_callbacks = kwargs.pop("callbacks", None) or []
    if not isinstance(user_callbacks, (list, tuple)):
        user_callbacks = [user_callbacks]
    watch = InterruptWatch()
    callbacks = [checkpoint, watch, *user_callbacks]  # the user's run alongside fit's own
    if settings.ema_decay > 0:
        # validation, early stopping and the checkpoints (so the best weights) use the
        # average; a checkpoint also keeps the current weights, for resuming
        callbacks.insert(0, EMAWeightAveraging(decay=settings.ema_decay))
    if has_val and settings.patience:
        callbacks.append(EarlyStopping(monitor=monitor, patience=settings.patience, mode="min"))
    trainer_args = {
        "max_epochs": settings.max_epochs,
        "accelerator": settings.accelerator,
        "devices": settings.devices,
        "gradient_clip_val": settings.gradient_clip,
        "callbacks": callbacks,
        # flushed every step, so a killed run's history survives for its resume
        "logger": CSVLogger(str(log_dir), name="logs", version="", flush_logs_every_n_steps=1),
        "enable_progress_bar": settings.progress_bar,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 1,
        "default_root_dir": str(log_dir),
        "plugins": [AtomicCheckpointIO()],
    }
    if not has_val:
        trainer_args["limit_val_batches"] = 0
    trainer_args.update(kwargs)
    previous_sigint = signal.getsignal(signal.SIGINT)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*Checkpoint directory.*exists.*")
        warnings.filterwarnings("ignore", ".*Experiment logs directory.*")  # set aside
        warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
        trainer = L.Trainer(**trainer_args)
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        except SystemExit:  # Lightning's answer to Ctrl-C: graceful shutdown, then exit
            if not watch.interrupted:
                raise
            signal.signal(signal.SIGINT, previous_sigint)  # Lightning left it ignored
        except NonFiniteLossError as err:
            kept = log_dir / "checkpoints"
            raise NonFiniteLossError(
                f"{err} The checkpoints of the last good epoch are in {kept}."
            ) from None
    best = checkpoint.best_model_path
    if watch.interrupted:
        _report_interrupt(log_dir, watch.epoch, best)
    if best and Path(best).exists():
        module.load_state_dict(read_checkpoint(Path(best))["state_dict"])
    return TrainingOutcome(best or None, read_history(log_dir / "logs"), watch.interrupted)


def _report_interrupt(log_dir: Path, epoch: int, best: str) -> None:
    """Say where an interrupted run's checkpoints are, or re-raise if none was written."""
    last = log_dir / "checkpoints" / LAST
    if not last.exists():
        log.warning(
            "latentode: training interrupted in epoch %d, before any checkpoint was "
            "written; nothing to keep.",
            epoch,
        )
        raise KeyboardInterrupt
    log.warning(
        "latentode: training interrupted in epoch %d; the checkpoints of the last complete "
        "epoch are kept: %s (best: %s). The model now holds the best weights so far. To "
        "continue: fit(..., log_dir=%r, resume=True), or on the command line the same "
        "`latentode fit` with --resume.",
        epoch,
        last,
        best or last,
        str(log_dir),
    )
