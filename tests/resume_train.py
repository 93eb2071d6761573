"""Fit a tiny LatentODE in its own process, to be killed, interrupted and resumed by tests.

Run as a script (``python tests/resume_train.py LOG_DIR OUT [options]``), never imported
by pytest: the tests SIGKILL it or send it SIGINT mid-epoch, so it must be a process of
its own. Writes ``OUT/model.safetensors`` and ``OUT/pred.csv`` when fit returns, and
``OUT/fit.json`` (epochs trained, whether it was interrupted).

Options:
    --resume             fit(..., resume=True)
    --pause-at E:B       at the start of epoch E's batch B, write ``OUT/paused`` and sleep
                         (the test kills the process there)
    --interrupt-at E:B   at the start of epoch E's batch B, send this process SIGINT (Ctrl-C)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path

import numpy as np
from lightning.pytorch.callbacks import Callback

import latentode as lo

EPOCHS = 4


class At(Callback):
    """Calls ``action`` at the start of training batch ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch: int, batch: int, action) -> None:
        self.epoch, self.batch, self.action = epoch, batch, action

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            self.action()


def _point(text: str) -> tuple[int, int]:
    epoch, batch = text.split(":")
    return int(epoch), int(batch)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("log_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--pause-at", type=_point)
    parser.add_argument("--interrupt-at", type=_point)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    callbacks = []
    if args.pause_at:

        def pause() -> None:
            (args.out / "paused").write_text(str(os.getpid()))
            time.sleep(600)

        callbacks.append(At(*args.pause_at, pause))
    if args.interrupt_at:
        callbacks.append(At(*args.interrupt_at, lambda: os.kill(os.getpid(), signal.SIGINT)))

    train = lo.datasets.spiral(n_series=40, n_points=12, n_observed=8, seed=0)
    model = lo.LatentODE(
        latent_dim=2,
        encoder_hidden=4,
        hidden=8,
        depth=1,
        n_samples=2,
        batch_size=8,
        val_frac=0.2,
        patience=0,
        seed=3,
    )
    model.fit(
        train,
        max_epochs=EPOCHS,
        accelerator="cpu",
        devices=1,
        log_dir=args.log_dir,
        progress_bar=False,
        resume=args.resume,
        callbacks=callbacks,
    )
    model.save(args.out / "model.safetensors")
    context, _ = train.subsample(0.5, seed=1)
    model.predict(context, np.linspace(0.0, 6.0, 7), n_samples=5).to_csv(
        args.out / "pred.csv", index=False
    )
    (args.out / "fit.json").write_text(
        json.dumps({"epochs": len(model.history_), "interrupted": model.interrupted_})
    )


if __name__ == "__main__":
    main()
