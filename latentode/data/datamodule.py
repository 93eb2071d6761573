"""LightningDataModule: training examples, validation pairs and loaders for one fit."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

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
        gen = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self._train,
            batch_size=self.batch_size,
            shuffle=True,
            collate_fn=self._collate,
            generator=gen,
        )

    def val_dataloader(self) -> DataLoader | list:
        if self._val is None:
            return []
        return DataLoader(self._val, batch_size=self.batch_size, collate_fn=self._collate)
