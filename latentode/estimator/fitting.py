"""``fit`` as a short pipeline: prepare the data, build the network, run Lightning.

:func:`fit_state` returns the :class:`~latentode.estimator.model_file.FittedState`
that the estimator then shows as its attributes. The data layer prepares everything
(:class:`~latentode.data.datamodule.SeriesDataModule`: validation split and scalers);
this module only connects the stages.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from latentode.data.columns import ColumnSpec
from latentode.data.dataset import SeriesDataset
from latentode.data.io import as_dataset
from latentode.data.scaling import ORIGINS
from latentode.data.schema import DataSchema
from latentode.data.tasks import TaskConfig, hidden_part
from latentode.errors import LatentODEError, warn_user
from latentode.estimator.evaluation import (
    HeldOutPrediction,
    interval_scale,
    predict_held_out,
    usable_pairs,
)
from latentode.estimator.model_file import FittedState
from latentode.estimator.queries import is_int, is_real
from latentode.estimator.summaries import check_channel_names
from latentode.estimator.training_run import RunSettings, resume_point, run_training
from latentode.models import ResidualProcess, fit_residual


def fit_state(
    estimator,
    train,
    val,
    settings: RunSettings,
    log_dir: str | Path | None,
    resume: bool,
    columns: ColumnSpec,
) -> FittedState:
    """Train ``estimator``'s network on ``train`` (and ``val``) and return what it learned.

    The estimator supplies its parameters (``seed``, ``batch_size``, ``val_frac``,
    ``train_task``, ``lr``...) and ``_network_config(data)``; it is left unchanged
    except that interval calibration predicts through it.
    """
    import lightning as L

    from latentode.data.datamodule import SeriesDataModule
    from latentode.models.training import OptimConfig, TrainingModule

    seed = estimator.seed
    if not (is_int(seed) and seed >= 0):
        raise LatentODEError(f"seed must be a non-negative integer, got {seed!r}.")
    if resume and log_dir is None:
        raise LatentODEError(
            "resume=True continues the run in log_dir=; pass the log_dir of the run "
            "(the folder that holds its checkpoints/)."
        )
    # 1. prepare the data: validated datasets, then the split and the scalers
    train = as_dataset(train, "train", columns)
    _check_trainable(train)
    check_channel_names(train.channels)
    schema = DataSchema.of(train)
    if val is not None:
        val = as_dataset(val, "val", columns)
        schema.check_channels(val, "val")
    warmup = getattr(estimator, "horizon_warmup", 0.0)  # ODERNN: none
    origin = getattr(estimator, "origin", "context")  # ODERNN: its own first time
    if origin not in ORIGINS:
        raise LatentODEError(f"origin must be one of {ORIGINS}, got {origin!r}.")
    horizon_epochs = horizon_schedule(warmup, settings.max_epochs)
    decay = settings.ema_decay
    if not (is_real(decay) and 0 <= decay < 1):
        raise LatentODEError(
            f"ema_decay must be a number in [0, 1) (0: no weight averaging), got {decay!r}."
        )
    datamodule = SeriesDataModule(
        train,
        val=val,
        batch_size=estimator.batch_size,
        task=TaskConfig(task=estimator.train_task),
        seed=seed,
        val_frac=estimator.val_frac,
        log_scale=estimator.log_scale,
        horizon_epochs=horizon_epochs,
        shared_origin=origin == "shared",
    )
    datamodule.setup("fit")
    # 2. build the network (and the module that trains it)
    train = datamodule.train_data
    config = estimator._network_config(train)
    optim = OptimConfig(
        lr=estimator.lr,
        lr_decay=estimator.lr_decay,
        kl_warmup_epochs=estimator.kl_warmup_epochs,
        horizon_epochs=horizon_epochs,
        ema_decay=settings.ema_decay,
    )
    hparams = {
        "kind": estimator._kind,
        "config": config,
        "optim": optim.to_dict(),
        "seed": seed,
        "data": _fingerprint(train, datamodule.val_data),
    }
    log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="latentode-"))
    resume_from = resume_point(log_dir, resume, hparams)
    L.seed_everything(seed, verbose=False)
    module = TrainingModule(**hparams)
    # 3. run Lightning
    outcome = run_training(module, datamodule, log_dir, settings, resume_from)
    state = FittedState(
        kind=estimator._kind,
        config=config,
        network=module.net.cpu().eval(),
        scaler=datamodule.scaler,
        static_scaler=datamodule.static_scaler,
        schema=schema,
        interval_scale=(1.0,) * len(schema.channels),
        history=outcome.history,
        log_dir=str(log_dir),
        best_checkpoint=outcome.best_checkpoint,
        interrupted=outcome.interrupted,
    )
    state = replace(state, residual=_fit_residual(estimator, state, datamodule))
    within, beyond = _calibrate(estimator, state, datamodule)
    return replace(state, interval_scale=within, forecast_interval_scale=beyond)


def _fit_residual(estimator, state: FittedState, datamodule) -> ResidualProcess | None:
    """The residual process of the trained network (``residual=True`` estimators only),
    fitted by the predictive likelihood of training-task contexts of the validation
    series (of the training series without validation data): see
    :mod:`latentode.models.residual_fit`.
    """
    if not getattr(estimator, "residual", False):
        return None
    gen = torch.Generator().manual_seed(estimator.seed)
    zero = torch.as_tensor(datamodule.level_zero())
    return fit_residual(
        state.network, datamodule.residual_dataloader(), generator=gen, level_zero=zero
    )


#: fewer validation series than this, and the training series join the calibration
MIN_CALIBRATION_SERIES = 20


def _calibrate(
    estimator, state: FittedState, datamodule
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel factors that make the central 90% interval cover 90% of held-out
    values, within the context window (interpolation) and beyond it (forecasting): the
    held-out values are the points that seeded training-task contexts (random subsets
    and cuts) leave out of the validation series, pooled with the training series' when
    there are fewer than :data:`MIN_CALIBRATION_SERIES` validation series. 1.0 for a
    channel with fewer than 20 such values, or without validation series.

    Training fits the noise level on single posterior samples and without the residual
    process, so raw intervals can be too wide or too narrow, and differently so near
    the data and away from it. Series differ more than the points of one series do: the
    3-8 validation series of a small set gave factors far from what new series needed
    (oxboys, chickweight and bodyweight forecasts covered 73-80%). The training series
    (3 draws each; the validation series get up to 20) are not held out from the
    network, but on those sets their errors were no smaller than the validation
    series', and pooled the coverage came to 84-89% (``benchmarks/accuracy.py``). With
    22 validation series (quinidine) the pooled factor was too wide (97%). Without
    validation series (fewer than 10 training series) the training series alone,
    which the network has nearly learnt by heart, gave too narrow intervals (orange
    forecasts, 4 training trees: 75%), so the raw intervals stay.
    """
    ones = state.interval_scale
    val = datamodule.val_data
    if val is None:
        return ones, ones
    # predict with the uncalibrated intervals, unbounded: a quantile raised to a channel's
    # bound of 0 is not the one the factor will stretch (Scaler.bound applies after it)
    estimator._adopt(replace(state, scaler=replace(state.scaler, nonnegative=None)))
    pairs = datamodule.task_pairs()
    if len(val) < MIN_CALIBRATION_SERIES:
        pairs += datamodule.task_pairs(training=True)
    parts = []
    for k, (contexts, whole) in enumerate(pairs):
        hidden = whole.with_series([hidden_part(s, c) for s, c in zip(whole, contexts)])
        context, target = usable_pairs(contexts, hidden)
        if len(context):
            parts.append(
                predict_held_out(estimator, context, target, n_samples=50, seed=estimator.seed + k)
            )
    if not parts:
        return ones, ones
    held_out = HeldOutPrediction.concat(parts)
    log = state.scaler.log_mask
    return (
        tuple(interval_scale(held_out.rows(~held_out.outside), log)),
        tuple(interval_scale(held_out.rows(held_out.outside), log)),
    )


def horizon_schedule(warmup: float, max_epochs: int) -> int:
    """``horizon_epochs`` of the data module for a share ``warmup`` of ``max_epochs``
    (0: off), at least 1 when on; refuses a share outside [0, 1]."""
    if not (is_real(warmup) and 0 <= warmup <= 1):
        raise LatentODEError(f"horizon_warmup must be a number in [0, 1], got {warmup!r}.")
    return max(1, round(warmup * max_epochs)) if warmup > 0 else 0


#: with fewer training series than this, ``fit`` warns: no population to learn from
FEW_SERIES = 3


def _check_trainable(data: SeriesDataset) -> None:
    if len(data) == 0:
        raise LatentODEError("train has no series.")
    if all(len(s) < 2 for s in data):
        raise LatentODEError(
            "every train series has fewer than 2 time points; a latent ODE needs series "
            "with several observations to learn dynamics."
        )
    if len(data) < FEW_SERIES:
        warn_user(
            f"train has {len(data)} series: the latent path is learnt from "
            f"{'it' if len(data) == 1 else 'them'} alone, and another series gets "
            f"{'its' if len(data) == 1 else 'their'} curve, moved only by the residual "
            "process. With so few series, per-series linear interpolation or the last "
            "value may predict as well; more series give the model a population to learn.",
        )


def _fingerprint(train: SeriesDataset, val: SeriesDataset | None) -> str:
    """A SHA-256 of the training and validation series (ids, times, values, statics, labels)."""
    digest = hashlib.sha256()
    for part in (train, val if val is not None else []):
        digest.update(b"|part|")
        for s in part:
            digest.update(repr(s.id).encode())
            for array in (s.times, s.values, s.static, s.label):
                if array is not None:
                    digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return digest.hexdigest()
