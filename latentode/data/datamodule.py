"""LightningDataModule: training examples, validation pairs and loaders for one fit."""

from __future__ import annotations

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset, Sampler

from latentode.data.batching import Batch, collate
from latentode.data.dataset import SeriesDataset
from latentode.data.scaling import Scaler
from latentode.data.tasks import TaskConfig, make_example


class _TrainingExamples(Dataset):
    """Series i → (context, target) drawn afresh each epoch from a (seed, epoch, i) stream."""

    def __init__(self, data: SeriesDataset, task: TaskConfig, seed: int):
        self.data, self.task, self.seed, self.epoch = data, task, seed, 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        series = self.data[i]
        return make_example(series, self.task, rng), series


class EpochShuffle(Sampler[int]):
    """A random order of ``n`` indices that depends only on ``(seed, epoch)``.

    Lightning calls ``set_epoch`` at every epoch start, so a run resumed from a
    checkpoint sees the same order in every epoch as an uninterrupted run (a
    ``DataLoader(shuffle=True)`` generator would restart from its first epoch's order).
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch, 0x5EED]).permutation(self.n)
        return iter(order.tolist())


class _Pairs(Dataset):
    def __init__(self, context: SeriesDataset, target: SeriesDataset):
        self.context, self.target = context, target

    def __len__(self) -> int:
        return len(self.context)

    def __getitem__(self, i: int):
        return self.context[i], self.target[i]


class SeriesDataModule(L.LightningDataModule):
    """Loaders of :class:`~latentode.data.batching.Batch` for training and validation.

    Training examples follow ``task`` (new context points every epoch); validation
    hides half of each validation series' points (seeded) and scores the model on them.
    """

    def __init__(
        self,
        train: SeriesDataset,
        scaler: Scaler,
        val: SeriesDataset | None = None,
        batch_size: int = 50,
        task: TaskConfig | None = None,
        static_scaler: tuple[np.ndarray, np.ndarray] | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.train_data, self.val_data, self.scaler = train, val, scaler
        self.batch_size, self.seed = batch_size, seed
        self.task = task or TaskConfig()
        self.static_scaler = static_scaler
        self._train = _TrainingExamples(train, self.task, seed)
        self._val = None
        if val is not None and len(val):
            context, target = val.subsample(0.5, seed=seed)
            self._val = _Pairs(context, target)

    def set_epoch(self, epoch: int) -> None:
        """Draw new training contexts for ``epoch`` (called by the model at epoch start)."""
        self._train.epoch = epoch

    def _collate(self, pairs) -> Batch:
        context, target = zip(*pairs)
        return collate(list(context), self.scaler, list(target), self.static_scaler)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self._train,
            batch_size=self.batch_size,
            sampler=EpochShuffle(len(self._train), self.seed),
            collate_fn=self._collate,
        )

    def val_dataloader(self) -> DataLoader | list:
        if self._val is None:
            return []
        return DataLoader(self._val, batch_size=self.batch_size, collate_fn=self._collate)
