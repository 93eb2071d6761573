"""The clinical training step through the public API: this tree against a baseline commit.

Issue 14 asks for a step at least 2x faster than the step of commit ``BASELINE`` (the
state before the speed work: generic autograd encoder, plain shuffled batches), with
equal accuracy per epoch. Both are measured in one run, side by side:

- the baseline's ``latentode`` package is exported with ``git archive`` into a
  temporary folder (the repository's history is needed: not a shallow clone);
- each fit runs in a fresh subprocess (``--worker``) whose ``PYTHONPATH`` puts one tree
  first, and the two trees alternate, round by round, in opposite orders;
- a fit: ``LatentODE(2019 clinical size: batch 50, 20 latents, 3 x 50 networks, 3
  samples; residual=False, threads=None: the 1-thread policy, seed 0; ema_decay=0 where
  the tree has it).fit(train, val=val, max_epochs=E)`` on the clinical generator's stays
  (minute-resolution times), every training batch timed by a Lightning callback from
  ``on_train_batch_start`` to ``on_train_batch_end`` (forward, backward, clip, Adam; data
  loading excluded); the first batch of each fit is a warm-up and is left out;
- accuracy per epoch: the validation interpolation MSE (scaled units) after each epoch,
  from ``history_``, of the same fits. Weight averaging (``ema_decay``, the default since
  session 14) is off in this tree's fits: the baseline has none, so the same model is
  compared, and in the first epochs the average trails the weights (after 2 epochs of 4
  steps its validation MSE was 0.80, 0.76 against 0.73, 0.58). Its update costs ~0.6 ms
  a step at this size (``torch.optim.swa_utils.AveragedModel``, one thread).

    python benchmarks/step_speed.py --quick       # 2 rounds, 200 stays, 2 epochs (~3 min)
    python benchmarks/step_speed.py               # 3 rounds, 800 stays, 5 epochs

Prints a table and writes ``benchmarks/results/step_speed[_quick].json``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
#: the last commit before the faster step (issue 14): "today's step" of the issue
BASELINE = "8c4e0aa"
CONFIG = {"latent_dim": 20, "encoder_hidden": 50, "hidden": 50, "depth": 3, "n_samples": 3}
BATCH = 50
SIZES = {
    "quick": {"rounds": 2, "n_train": 200, "n_val": 100, "epochs": 2},
    "full": {"rounds": 3, "n_train": 800, "n_val": 200, "epochs": 5},
}


# ---------------------------------------------------------------- one fit (subprocess)


def worker(n_train: int, n_val: int, epochs: int) -> dict:
    """Fit once with the ``latentode`` on ``sys.path`` and return its step seconds and
    validation MSE per epoch."""
    from harness import fit_quietly
    from lightning.pytorch.callbacks import Callback

    import latentode as lo

    class StepTimer(Callback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self._start = 0.0

        def on_train_batch_start(self, *args) -> None:
            self._start = time.perf_counter()

        def on_train_batch_end(self, *args) -> None:
            self.seconds.append(time.perf_counter() - self._start)

    data = lo.datasets.clinical(n_patients=n_train + n_val, seed=0)
    train, val = data[list(range(n_train))], data[list(range(n_train, n_train + n_val))]
    same_model = (
        {"ema_decay": 0.0} if "ema_decay" in inspect.signature(lo.LatentODE).parameters else {}
    )
    model = lo.LatentODE(**CONFIG, batch_size=BATCH, residual=False, seed=0, **same_model)
    timer = StepTimer()
    fit_quietly(model, train, val=val, max_epochs=epochs, callbacks=[timer])
    return {
        "package": str(Path(lo.__file__).parent),
        "step_seconds": timer.seconds[1:],
        "val_mse": [float(v) for v in model.history_["val_mse"]],
    }


def run_tree(tree: Path, sizes: dict) -> dict:
    """One fit in a subprocess whose ``latentode`` comes from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    args += [f"--n-train={sizes['n_train']}", f"--n-val={sizes['n_val']}"]
    args += [f"--epochs={sizes['epochs']}"]
    out = subprocess.run(args, env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if out.returncode != 0:
        raise RuntimeError(f"the fit with {tree} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if Path(result["package"]).resolve() != (tree / "latentode").resolve():
        raise RuntimeError(f"the worker imported {result['package']}, not {tree}/latentode")
    return result


def export_baseline(rev: str, folder: Path) -> Path:
    """``git archive`` of ``rev``'s ``latentode`` package into ``folder``; returns it."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "latentode"],
            capture_output=True,
            check=True,
        ).stdout
    except subprocess.CalledProcessError as err:
        raise SystemExit(
            f"cannot export baseline {rev!r} ({err.stderr.decode().strip()}); this benchmark "
            "needs the repository's history (not a shallow clone) or --baseline REV."
        ) from None
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


# ---------------------------------------------------------------- the comparison


def measure(sizes: dict, baseline: str) -> dict:
    """Alternate fits of the baseline and this tree; medians, ratio and MSE per epoch."""
    fits: dict[str, list[dict]] = {"baseline": [], "current": []}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"baseline": export_baseline(baseline, Path(tmp)), "current": ROOT}
        for r in range(sizes["rounds"]):
            order = ("baseline", "current") if r % 2 == 0 else ("current", "baseline")
            for name in order:
                fits[name].append(run_tree(trees[name], sizes))
                step = float(np.median(fits[name][-1]["step_seconds"]))
                print(f"  round {r}: {name:8s} {step:.3f} s/step", flush=True)
    summary = {}
    for name, runs in fits.items():
        steps = [s for run in runs for s in run["step_seconds"]]
        per_fit = [float(np.median(run["step_seconds"])) for run in runs]
        summary[name] = {
            "median_step_seconds": float(np.median(steps)),
            "per_fit_medians": per_fit,
            "val_mse_per_epoch": runs[0]["val_mse"],
            "steps_timed": len(steps),
        }
    summary["speedup"] = (
        summary["baseline"]["median_step_seconds"] / summary["current"]["median_step_seconds"]
    )
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare with")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n-train", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--n-val", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.n_train, args.n_val, args.epochs)))
        return
    mode = "quick" if args.quick else "full"
    sizes = SIZES[mode]
    print(
        f"clinical training step, batch {BATCH}, 2019 size, 1 thread: this tree against "
        f"{args.baseline} ({mode}: {sizes})",
        flush=True,
    )
    summary = measure(sizes, args.baseline)
    base, cur = summary["baseline"], summary["current"]
    print("\n| tree | s/step (median) | per-fit medians | val MSE per epoch |")
    print("|---|---|---|---|")
    for name, row in (("baseline " + args.baseline, base), ("this tree", cur)):
        fits = ", ".join(f"{s:.3f}" for s in row["per_fit_medians"])
        mse = ", ".join(f"{v:.3f}" for v in row["val_mse_per_epoch"])
        print(f"| {name} | {row['median_step_seconds']:.3f} | {fits} | {mse} |")
    print(f"\nspeedup (baseline / this tree): {summary['speedup']:.2f}x")
    out = args.json or RESULTS / f"step_speed{'_quick' if args.quick else ''}.json"
    record = {
        "command": "python benchmarks/step_speed.py" + (" --quick" if args.quick else ""),
        "baseline": args.baseline,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "sizes": sizes,
        **summary,
    }
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"results in {out}")


if __name__ == "__main__":
    main()
