"""LightningDataModule: the validation split, the scalers, the examples and loaders of a fit."""

from __future__ import annotations

import logging
import math

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset, Sampler

from latentode.data.batching import Batch, collate
from latentode.data.dataset import SeriesDataset
from latentode.data.scaling import LogScale, Scaler, StaticScaler
from latentode.data.tasks import TaskConfig, horizon, make_example, within_horizon

log = logging.getLogger(__name__)


#: fewest training examples per epoch: with fewer series, each series gives several
#: examples (different contexts) per epoch: 2 optimiser steps at the estimators' batch of 16
MIN_EPOCH_EXAMPLES = 32


def example_series(
    epoch: int, i: int | np.ndarray, n_examples: int, n_series: int
) -> int | np.ndarray:
    """The series of example(s) ``i`` (an index, or [k] indices) of an epoch of
    ``n_examples``: ``(epoch * n_examples + i) % n_series``."""
    return (epoch * n_examples + np.asarray(i)) % n_series


class _TrainingExamples(Dataset):
    """Example i of epoch e → (context, target) of series ``(e * L + i) % n``, drawn
    afresh from a (seed, epoch, i) stream; an epoch holds ``L = max(n, min_examples)``
    examples. Epochs walk through the series cyclically, so that over epochs every
    series is visited equally often (L = n: example i is series i).

    Counting the budget in epochs of the data alone gave small sets few optimiser steps
    (5 series at batch 16: one step per epoch, 100 in a default fit). Revisiting small
    sets within an epoch, with new contexts, gives them at least ``min_examples`` per
    epoch, while the epoch-based schedules (learning-rate decay, KL warm-up, patience)
    keep their meaning; sets of ``min_examples`` series or more are unchanged.

    With ``horizon_epochs`` the targets of epoch e are the series' points within
    :func:`~latentode.data.tasks.horizon` of its span from the context's first time.
    """

    def __init__(
        self,
        data: SeriesDataset,
        task: TaskConfig,
        seed: int,
        min_examples: int = 0,
        horizon_epochs: int = 0,
    ):
        self.data, self.task, self.seed, self.epoch = data, task, seed, 0
        self.min_examples, self.horizon_epochs = min_examples, horizon_epochs

    def __len__(self) -> int:
        return max(len(self.data), self.min_examples) if len(self.data) else 0

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        series = self.data[int(example_series(self.epoch, i, len(self), len(self.data)))]
        context = make_example(series, self.task, rng)
        share = horizon(self.epoch, self.horizon_epochs)
        return context, within_horizon(series, context, share)


#: length bucketing: series are sorted by length within pools of this many batches
BUCKET_POOL_BATCHES = 16
#: ... by log length plus uniform noise of this half-width (±10%), so that series of
#: similar length meet in different batches from epoch to epoch
BUCKET_JITTER = 0.1


class EpochShuffle(Sampler[int]):
    """A random order of ``n`` indices that depends only on ``(seed, epoch)``.

    Lightning calls ``set_epoch`` at every epoch start, so a run resumed from a
    checkpoint sees the same order in every epoch as an uninterrupted run (a
    ``DataLoader(shuffle=True)`` generator would restart from its first epoch's order).

    With ``lengths`` (time stamps per series, [n_series]; example i of an epoch is
    series :func:`example_series`) the order is length-bucketed: each
    consecutive chunk of ``batch_size`` indices (one batch) holds series of similar
    length. A batch costs as many sequential encoder steps as its longest series, so
    this cuts the steps per epoch (by ~35% on the clinical generator) without changing
    what an epoch contains; but batches of alike series make noisier gradients (see
    ``SeriesDataModule(bucket_by_length=)``). Each epoch draws a random permutation,
    cuts it into pools of :data:`BUCKET_POOL_BATCHES` batches, sorts each pool by
    jittered length, splits it into batches, and shuffles the batches' order; a short
    last batch stays last.
    """

    def __init__(self, n: int, seed: int, lengths: np.ndarray | None = None, batch_size: int = 1):
        self.n, self.seed, self.epoch = n, seed, 0
        self.lengths = None if lengths is None else np.asarray(lengths, dtype=float)
        self.batch_size = batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch, 0x5EED])
        order = rng.permutation(self.n)
        if self.lengths is None or self.n <= self.batch_size:
            return iter(order.tolist())
        # lengths [n_series]: example i is series example_series(epoch, i, n, n_series)
        series = example_series(self.epoch, np.arange(self.n), self.n, len(self.lengths))
        lengths = self.lengths[series]
        return iter(_length_buckets(order, lengths, self.batch_size, rng).tolist())


def _length_buckets(
    order: np.ndarray, lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> np.ndarray:
    """``order`` [n] rearranged so that each ``batch_size`` chunk has similar lengths."""
    pool = BUCKET_POOL_BATCHES * batch_size
    batches: list[np.ndarray] = []
    for start in range(0, len(order), pool):
        members = order[start : start + pool]
        key = np.log(np.maximum(lengths[members], 1.0))
        key = key + rng.uniform(-BUCKET_JITTER, BUCKET_JITTER, len(members))
        members = members[np.argsort(key, kind="stable")]
        batches += [members[k : k + batch_size] for k in range(0, len(members), batch_size)]
    short = [b for b in batches if len(b) < batch_size]  # at most one: the last pool's
    full = [b for b in batches if len(b) == batch_size]
    full = [full[i] for i in rng.permutation(len(full))]
    return np.concatenate(full + short)


class _Pairs(Dataset):
    def __init__(self, context: SeriesDataset, target: SeriesDataset):
        self.context, self.target = context, target

    def __len__(self) -> int:
        return len(self.context)

    def __getitem__(self, i: int):
        return self.context[i], self.target[i]


#: held-out (context, series) pairs to aim for after training, and the draws' bounds
HELD_OUT_PAIRS, MIN_DRAWS, MAX_DRAWS = 60, 3, 20


def held_out_draws(n_series: int) -> int:
    """Context draws per validation series for the residual fit and the interval
    calibration: enough for about :data:`HELD_OUT_PAIRS` pairs, within [3, 20] (3 for
    60 series or more; 20 for 3 series or fewer)."""
    if n_series <= 0:
        return MIN_DRAWS
    return int(np.clip(math.ceil(HELD_OUT_PAIRS / n_series), MIN_DRAWS, MAX_DRAWS))


class SeriesDataModule(L.LightningDataModule):
    """The data of one fit: the validation split, both scalers and the loaders.

    ``setup("fit")`` (Lightning calls it; call it yourself to see the prepared data
    before training) holds out a seeded ``val_frac`` share of the training series when
    no ``val`` is given (at least 10 series), drops validation series with fewer than 2
    time points, and fits the value scaler and the static scaler on the training series
    only. Training examples follow ``task`` (new context points every epoch);
    validation hides half of each validation series' points (seeded) and scores the
    model on them.

    Args:
        train: the training series.
        scaler, static_scaler: fixed scalers to use instead of fitting them.
        val: validation series, or None.
        batch_size: series per batch.
        task: how training contexts hide points.
        seed: seeds the split, the training contexts and the validation pairs.
        val_frac: share of ``train`` held out for validation when ``val`` is None.
        bucket_by_length: batch series of similar length together (see
            :class:`EpochShuffle`): ~35% fewer encoder steps per epoch on the clinical
            generator, but it slowed learning there (validation MSE 0.431 against 0.387
            after 8 epochs of 800 stays, ``benchmarks/bucketing.py``), so it is off by
            default.
        min_epoch_examples: fewest training examples per epoch; a smaller training set
            gives each series several examples (new contexts) per epoch.
        log_scale: which channels the fitted value scaler models on the log scale
            (:func:`~latentode.data.scaling.choose_log_channels`); unused with ``scaler``.
        horizon_epochs: training targets start within :data:`~latentode.data.tasks.HORIZON_START`
            of each series' span from its context's first time and widen by
            ``1 / horizon_epochs`` of the span an epoch (0: whole series from the start).
        shared_origin: the fitted scaler keeps the training series' earliest time as
            the shared clock origin (:meth:`~latentode.data.scaling.Scaler.series_origin`);
            unused with ``scaler``.
    """

    def __init__(
        self,
        train: SeriesDataset,
        scaler: Scaler | None = None,
        val: SeriesDataset | None = None,
        batch_size: int = 50,
        task: TaskConfig | None = None,
        static_scaler: StaticScaler | None = None,
        seed: int = 0,
        val_frac: float = 0.0,
        bucket_by_length: bool = False,
        min_epoch_examples: int = MIN_EPOCH_EXAMPLES,
        log_scale: LogScale = False,
        horizon_epochs: int = 0,
        shared_origin: bool = False,
    ):
        super().__init__()
        self.train_data, self.val_data = train, val
        self.scaler, self.static_scaler = scaler, static_scaler
        self.batch_size, self.seed, self.val_frac = batch_size, seed, val_frac
        self.bucket_by_length = bucket_by_length
        self.min_epoch_examples = min_epoch_examples
        self.log_scale = log_scale
        self.horizon_epochs = horizon_epochs
        self.shared_origin = shared_origin
        self.task = task or TaskConfig()
        self.val_context: SeriesDataset | None = None  # what the model sees of each val series
        self.val_target: SeriesDataset | None = None  # the points it is scored on
        self._ready = False

    def setup(self, stage: str | None = None) -> None:
        """Split, fit the scalers and build the examples (once; later calls do nothing)."""
        if self._ready or stage not in ("fit", None):
            return
        train, val = self.train_data, self.val_data
        if val is not None:
            val = val[[i for i, s in enumerate(val) if len(s) >= 2]]
        elif self.val_frac and len(train) >= 10:
            train, val = train.split(test_size=self.val_frac, seed=self.seed)
            log.info(
                "latentode: holding out %d of %d training series (val_frac=%s, seed=%s) for "
                "early stopping; pass val= to choose them yourself.",
                len(val),
                len(train) + len(val),
                self.val_frac,
                self.seed,
            )
        self.train_data = train
        self.val_data = val if val is not None and len(val) else None
        if self.scaler is None:
            self.scaler = Scaler.fit(train, self.log_scale, self.shared_origin)
        if self.static_scaler is None:
            self.static_scaler = StaticScaler.fit(train)
        self._train = _TrainingExamples(
            train, self.task, self.seed, self.min_epoch_examples, self.horizon_epochs
        )
        self._val = None
        if self.val_data is not None:
            self.val_context, self.val_target = self.val_data.subsample(0.5, seed=self.seed)
            self._val = _Pairs(self.val_context, self.val_target)
        self._ready = True

    def set_epoch(self, epoch: int) -> None:
        """Draw new training contexts for ``epoch`` (called by the model at epoch start)."""
        self.setup("fit")
        self._train.epoch = epoch

    def _collate(self, pairs) -> Batch:
        context, target = zip(*pairs)
        return collate(list(context), self.scaler, list(target), self.static_scaler)

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        lengths = np.array([len(s) for s in self.train_data]) if self.bucket_by_length else None
        return DataLoader(
            self._train,
            batch_size=self.batch_size,
            sampler=EpochShuffle(len(self._train), self.seed, lengths, self.batch_size),
            collate_fn=self._collate,
        )

    def val_dataloader(self) -> DataLoader | list:
        self.setup("fit")
        if self._val is None:
            return []
        return DataLoader(self._val, batch_size=self.batch_size, collate_fn=self._collate)

    def task_pairs(
        self, draws: int | None = None, training: bool = False
    ) -> list[tuple[SeriesDataset, SeriesDataset]]:
        """Per draw, (contexts, whole series): a seeded training-task context of every
        held-out series with at least 2 points. Held out means the validation series, or
        the training series when there is no validation data (``val_data`` is None);
        ``training=True`` takes the training series in any case.

        Used after training to fit the residual process and calibrate the intervals on
        the kinds of context the model is used with (random subsets and cuts). ``draws``
        defaults to :func:`held_out_draws` of the number of validation series (few
        series get more draws, so that the fit and the calibration see many contexts),
        and to :data:`MIN_DRAWS` for the training series: more draws of series the
        model was trained on made the fit worse (indometh and cefamandole forecasts,
        in ``benchmarks/accuracy.py``).
        """
        self.setup("fit")
        held_out = self.val_data is not None and not training
        series = self.val_data if held_out else self.train_data
        series = series[[i for i, s in enumerate(series) if len(s) >= 2]]
        if draws is None:
            draws = held_out_draws(len(series)) if held_out else MIN_DRAWS
        pairs = []
        for k in range(draws):
            rng = np.random.default_rng([self.seed, k, 0x5E51D])
            contexts = series.with_series([make_example(s, self.task, rng) for s in series])
            pairs.append((contexts, series))
        return pairs

    def level_zero(self) -> np.ndarray:
        """[C] the scaled value of an original 0 for each channel whose training values
        are all >= 0 (the scaler's :attr:`~latentode.data.scaling.Scaler.nonnegative`: a
        concentration, a weight, a count, whose residuals may grow with its level), NaN
        for a channel with a negative value and for a log-scale channel (the log scale
        already makes its deviations proportional)."""
        self.setup("fit")
        zero = -np.asarray(self.scaler.mean) / np.asarray(self.scaler.std)
        eligible = self.scaler.nonnegative_mask & ~self.scaler.log_mask
        return np.where(eligible, zero, np.nan)

    def residual_dataloader(self, draws: int | None = None) -> DataLoader:
        """Batches of the :meth:`task_pairs` (targets: the whole series, so a batch's
        residuals cover both what its context saw and what it hid, as at prediction)."""
        pairs = [p for contexts, whole in self.task_pairs(draws) for p in zip(contexts, whole)]
        return DataLoader(pairs, batch_size=max(self.batch_size, 64), collate_fn=self._collate)
