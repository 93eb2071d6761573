"""The LightningModule that trains any latentode network: steps, logging, optimiser, NaN guard.

Networks are plain ``nn.Module``s (see :data:`latentode.models.NETWORKS`) with
``training_loss(batch, kl_weight) -> dict`` and ``predict_mean(batch)``; this module
only holds the training mechanics. Its hyper-parameters are plain types, so
Lightning checkpoints load with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import lightning as L
import numpy as np
import torch

from latentode.data.batching import Batch
from latentode.errors import LatentODEError
from latentode.nn.likelihoods import masked_mse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OptimConfig:
    """Adam with exponential learning-rate decay per epoch, and the warm-up schedules.

    Attributes:
        lr: learning rate.
        weight_decay: Adam's L2 penalty.
        lr_decay: the learning rate is multiplied by this after every epoch.
        kl_warmup_epochs: the KL weight rises linearly to 1 over this many epochs.
        horizon_epochs: the training targets' horizon widens by 1/horizon_epochs of each
            series' span an epoch (0: the whole series from the start); the data module
            applies it (:func:`latentode.data.tasks.horizon`), and it is kept here with
            the other schedules so that a resumed run must match it.
        ema_decay: the decay of the weights' moving average (0: off); fit's run applies
            it (a Lightning callback), and it is kept here so that a resumed run must
            match it.
    """

    lr: float = 1e-2
    weight_decay: float = 0.0
    lr_decay: float = 0.99
    kl_warmup_epochs: int = 10
    horizon_epochs: int = 0
    ema_decay: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


#: optimiser steps in a row with a NaN or infinite gradient before training stops (a
#: single one, from a rare context that overflows the backward pass, is skipped)
MAX_SKIPPED_STEPS = 3


class NonFiniteLossError(LatentODEError):
    """The training loss or its gradient became NaN or infinite."""


class InterruptWatch(L.Callback):
    """Notes a Ctrl-C (KeyboardInterrupt) during training, and the epoch it came in."""

    def __init__(self):
        self.interrupted, self.epoch = False, 0

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.interrupted, self.epoch = True, trainer.current_epoch


def step_seed(seed: int, epoch: int, batch: int) -> int:
    """A torch seed that depends only on ``(seed, epoch, batch)`` (63 bits)."""
    state = np.random.SeedSequence([seed, epoch, batch]).generate_state(1, np.uint64)
    return int(state[0] >> 1)


class TrainingModule(L.LightningModule):
    """Trains the network ``NETWORKS[kind](config)``; ``config``/``optim`` are plain dicts.

    ``seed`` reseeds torch's random numbers before every training batch from ``(seed,
    epoch, batch)``, so a batch's samples do not depend on what ran before it: a run
    resumed from an epoch's checkpoint continues exactly as the uninterrupted run would.
    ``data`` is a fingerprint of the training data, kept in checkpoints so that a resume
    on other data can be refused.
    """

    def __init__(
        self,
        kind: str,
        config: dict,
        optim: dict | None = None,
        seed: int = 0,
        data: str = "",
    ):
        super().__init__()
        from latentode.models import build_network

        self.save_hyperparameters()
        self.net = build_network(kind, config)
        self.optim = OptimConfig(**(optim or {}))
        self.seed = seed
        self.skipped_in_a_row = 0  # optimiser steps skipped for a non-finite gradient

    @property
    def kl_weight(self) -> float:
        warm = self.optim.kl_warmup_epochs
        return 1.0 if warm <= 0 else min(1.0, (self.current_epoch + 1) / (warm + 1))

    def on_train_epoch_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "set_epoch"):
            dm.set_epoch(self.current_epoch)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip a step whose gradient is NaN or infinite (no weight moves: every gradient
        is dropped, so the optimiser leaves all parameters as they are) with a warning;
        :data:`MAX_SKIPPED_STEPS` such steps in a row stop training with an error."""
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if not grads or torch.isfinite(torch.stack([g.abs().max() for g in grads])).all():
            self.skipped_in_a_row = 0
            return
        bad = [
            n
            for n, p in self.named_parameters()
            if p.grad is not None and not torch.isfinite(p.grad).all()
        ]
        self.skipped_in_a_row += 1
        where = f"epoch {self.current_epoch}, step {self.global_step} (in {', '.join(bad[:3])})"
        if self.skipped_in_a_row >= MAX_SKIPPED_STEPS:
            raise NonFiniteLossError(
                f"the gradient became NaN or infinite in {self.skipped_in_a_row} steps in a "
                f"row, the last at {where}; training stopped before the weights were "
                f"updated. Likely causes: a learning rate too high (try "
                f"lr={self.optim.lr / 10:g}), a solver tolerance too loose, or data with "
                "extreme values."
            )
        log.warning(
            "latentode: the gradient became NaN or infinite at %s; this step is skipped "
            "(the weights stay as they were).",
            where,
        )
        for p in self.parameters():
            p.grad = None

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        torch.manual_seed(step_seed(self.seed, self.current_epoch, batch_idx))

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        out = self.net.training_loss(batch, self.kl_weight)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the training loss became {loss.item()} at epoch {self.current_epoch}, batch "
                f"{batch_idx}; training stopped before using it. Likely causes: a learning rate "
                f"too high (try lr={self.optim.lr / 10:g}), a solver tolerance too loose, or "
                "data with extreme values."
            )
        for name, value in out.items():
            self.log(
                f"train_{name}", value.detach(), prog_bar=name == "loss", batch_size=len(batch)
            )
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        out = self.net.training_loss(batch, 1.0)
        mse = masked_mse(self.net.predict_mean(batch), batch.target_values, batch.target_mask)
        self.log("val_loss", out["loss"], prog_bar=True, batch_size=len(batch), sync_dist=True)
        self.log("val_mse", mse, prog_bar=True, batch_size=len(batch), sync_dist=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(
            self.parameters(), lr=self.optim.lr, weight_decay=self.optim.weight_decay
        )
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=self.optim.lr_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
