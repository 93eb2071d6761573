"""Spirals with more turns: the validation MSE per epoch with and without the horizon warm-up.

A latent ODE fitted to a whole long series at once can settle on the wrong frequency:
on spirals of 1.5 turns ``LatentODE()`` sat near the training mean. This fits
``LatentODE(horizon_warmup=w)`` on ``spiral(n_series=300, t_max=T, seed=s)`` for each
span ``T`` (radians: 2π is one turn), share ``w`` and seed ``s`` for ``--epochs``
epochs, and prints the validation MSE (scaled units; the training mean scores about 1)
at a few epochs and at its best.

    python benchmarks/horizon.py                       # 1 and 1.5 turns, seeds 0-2 (~17 min)
    python benchmarks/horizon.py --turns 1.5 --seeds 0 # one pair of fits (~3 min)

Writes ``benchmarks/results/horizon.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from harness import fit_quietly

import latentode as lo

RESULTS = Path(__file__).resolve().parent / "results"
SHOWN_EPOCHS = (10, 25, 50, 100)


def fit_one(turns: float, warmup: float, seed: int, epochs: int) -> dict:
    data = lo.datasets.spiral(n_series=300, t_max=2 * math.pi * turns, seed=seed)
    start = time.perf_counter()
    model = fit_quietly(lo.LatentODE(horizon_warmup=warmup, seed=seed), data, max_epochs=epochs)
    val = [float(v) for v in model.history_["val_mse"]]
    return {"turns": turns, "horizon_warmup": warmup, "seed": seed, "val_mse": val,
            "fit_s": time.perf_counter() - start}  # fmt: skip


def table(runs: list[dict]) -> str:
    shown = [e for e in SHOWN_EPOCHS if any(len(r["val_mse"]) >= e for r in runs)]
    head = "| turns | horizon_warmup | seed | " + " | ".join(f"epoch {e}" for e in shown)
    lines = [head + " | best |", "|---" * (4 + len(shown)) + "|"]
    for r in runs:
        val = r["val_mse"]
        cells = [f"{val[e - 1]:.3f}" if len(val) >= e else "" for e in shown]
        lines.append(
            f"| {r['turns']:g} | {r['horizon_warmup']:g} | {r['seed']} | "
            + " | ".join(cells) + f" | {min(val):.3f} |"
        )  # fmt: skip
    for turns in sorted({r["turns"] for r in runs}):
        for warmup in sorted({r["horizon_warmup"] for r in runs}):
            best = [min(r["val_mse"]) for r in runs
                    if r["turns"] == turns and r["horizon_warmup"] == warmup]  # fmt: skip
            lines.append(
                f"\n{turns:g} turns, horizon_warmup={warmup:g}: best validation MSE, median "
                f"over seeds {np.median(best):.3f} (range {min(best):.3f}-{max(best):.3f})"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", default="1,1.5", help="comma list of spiral lengths in turns")
    parser.add_argument("--warmups", default="0,0.3", help="comma list of horizon_warmup")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--json", type=Path, default=RESULTS / "horizon.json")
    args = parser.parse_args(argv)
    runs = []
    for turns in map(float, args.turns.split(",")):
        for seed in map(int, args.seeds.split(",")):
            for warmup in map(float, args.warmups.split(",")):
                runs.append(fit_one(turns, warmup, seed, args.epochs))
                print(f"  {turns:g} turns, warmup {warmup:g}, seed {seed}: "
                      f"best {min(runs[-1]['val_mse']):.3f}", flush=True)  # fmt: skip
    print(table(runs))
    args.json.write_text(json.dumps({"epochs": args.epochs, "runs": runs}, indent=1))
    print(f"results in {args.json}")


if __name__ == "__main__":
    main()
