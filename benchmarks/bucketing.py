"""Length-bucketed training batches against a plain shuffle: validation MSE per epoch.

Bucketing (``SeriesDataModule(bucket_by_length=True)``, see ``EpochShuffle``) cuts the
encoder's sequential steps per epoch, since a batch steps as long as its longest series;
issue 14 asks for a faster step *with equal accuracy per epoch*. This fits
``LatentODE`` at the 2019 clinical size (batch 50, 20 latents, 3 x 50 networks, 3
samples, ``residual=False``, 1 thread) on the clinical generator's stays with each
setting and prints the validation interpolation MSE (scaled units) after every epoch.

    python benchmarks/bucketing.py                      # 800 / 200 stays, 8 epochs, seed 0
    python benchmarks/bucketing.py --seeds 0 1 --pools 4 16

Settings: ``plain`` (the default shuffle) and ``pool<k>``: bucketing within pools of k
batches (the library's ``BUCKET_POOL_BATCHES`` is 16), jitter ``BUCKET_JITTER``.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import torch
from harness import fit_quietly

import latentode as lo
from latentode.data import datamodule

CONFIG = {"latent_dim": 20, "encoder_hidden": 50, "hidden": 50, "depth": 3, "n_samples": 3}


def fit_curve(setting: str, seed: int, n_train: int, n_val: int, epochs: int) -> dict:
    """Validation MSE per epoch and fit seconds of one fit with ``setting``."""
    pool = None if setting == "plain" else int(setting.removeprefix("pool"))
    original_init = datamodule.SeriesDataModule.__init__
    original_pool = datamodule.BUCKET_POOL_BATCHES

    def init(self, *args, **kwargs):  # the estimator builds the data module itself
        original_init(self, *args, **{**kwargs, "bucket_by_length": pool is not None})

    data = lo.datasets.clinical(n_patients=n_train + n_val, seed=seed)
    train, val = data[list(range(n_train))], data[list(range(n_train, n_train + n_val))]
    model = lo.LatentODE(**CONFIG, batch_size=50, residual=False, seed=seed)
    datamodule.SeriesDataModule.__init__ = init
    datamodule.BUCKET_POOL_BATCHES = pool or original_pool
    start = time.perf_counter()
    try:
        fit_quietly(model, train, val=val, max_epochs=epochs)
    finally:
        datamodule.SeriesDataModule.__init__ = original_init
        datamodule.BUCKET_POOL_BATCHES = original_pool
    return {
        "val_mse": [float(v) for v in model.history_["val_mse"]],
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--pools", type=int, nargs="+", default=[16, 4])
    parser.add_argument("--n-train", type=int, default=800)
    parser.add_argument("--n-val", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    settings = ["plain", *(f"pool{k}" for k in args.pools)]
    print(f"{args.n_train} training / {args.n_val} validation clinical stays, 2019 size")
    print("| seed | batches | validation MSE per epoch | fit s |\n|---|---|---|---|")
    for seed in args.seeds:
        for setting in settings:
            out = fit_curve(setting, seed, args.n_train, args.n_val, args.epochs)
            curve = ", ".join(f"{v:.3f}" for v in out["val_mse"])
            print(f"| {seed} | {setting} | {curve} | {out['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
