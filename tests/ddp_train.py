"""Fit a tiny LatentODE with 2-process DDP on CPU; each rank saves its weights.

Run as a script (``python tests/ddp_train.py OUT``), never imported by pytest:
Lightning's DDP launcher starts rank 1 by re-running this command line, so the
training must live in a script of its own. Writes ``OUT/rank{r}_init.pt`` (weights
when training starts, after DDP's broadcast), ``OUT/rank{r}.pt`` (when it ends) and
``OUT/rank{r}_ids.json`` (the series ids of every training batch the rank saw).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

import latentode as lo


class SaveWeights(Callback):
    """Saves ``pl_module.net``'s state_dict per rank at train start and end, and the ids seen."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.seen: list[list] = []

    def _save(self, trainer, pl_module, suffix: str) -> None:
        state = {k: v.detach().cpu().clone() for k, v in pl_module.net.state_dict().items()}
        torch.save(state, self.out / f"rank{trainer.global_rank}{suffix}.pt")

    def on_train_start(self, trainer, pl_module) -> None:
        self._save(trainer, pl_module, "_init")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append([int(i) for i in batch.ids])

    def on_train_end(self, trainer, pl_module) -> None:
        self._save(trainer, pl_module, "")
        (self.out / f"rank{trainer.global_rank}_ids.json").write_text(json.dumps(self.seen))


def main(out: Path) -> None:
    torch.set_num_threads(1)  # two ranks share the machine's cores
    # 36 training series: one example each per epoch (at least MIN_EPOCH_EXAMPLES = 32),
    # so the two ranks' shares of an epoch are disjoint sets of series
    train = lo.datasets.spiral(n_series=48, n_points=12, n_observed=8, seed=0)
    model = lo.LatentODE(
        latent_dim=2,
        encoder_hidden=4,
        hidden=8,
        depth=1,
        n_samples=1,
        solver="euler",
        step_size=0.25,
        batch_size=4,
        val_frac=0.25,
        seed=0,
    )
    model.fit(
        train,
        max_epochs=2,
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        log_dir=out / "logs",  # the same folder on both ranks (not a per-process temp dir)
        progress_bar=False,
        callbacks=[SaveWeights(out)],
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
