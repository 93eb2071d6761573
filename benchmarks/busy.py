"""Speed on a busy machine: the clinical training step and ``predict``, idle and next to a
CPU-bound competing process, with the thread policy and with torch's default threads.

Standalone (also a section of ``run.py``: ``python benchmarks/run.py --only busy``)::

    python benchmarks/busy.py --quick     # a few minutes on 2 CPU cores
    python benchmarks/busy.py             # full sizes: predict at its default 32 samples

What is timed, each idle and busy (one Python process spinning in a loop,
:data:`COMPETITOR`, started by the benchmark before the block and killed after it), each
with the estimator's thread policy (``threads=None``: 1 intra-op thread; a large
``predict`` takes 2 where it finds an idle core, and the table says what it ran) and with
torch's default thread count (``threads=`` that count, as measured in a fresh
interpreter without ``OMP_NUM_THREADS``):

- one training step of the clinical data at the 2019 paper's size (``training.SETUPS
  ["clinical"]``: B 50, 20 latents, 3 x 50 networks, 3 samples, minute-resolution
  times) through the public API, ``LatentODE(...).fit``, timed from Lightning's
  ``on_train_batch_start`` to ``on_train_batch_end`` (forward, backward, clip, Adam); the
  first batch of each fit is a warm-up and is not counted;
- ``predict`` of 1,000 spirals x 100 query times (``prediction.predict_timing``) on a
  model fitted briefly (``prediction.fit_briefly``).

The figures are medians; a busy/idle ratio near 1 means the speed survives a busy
machine (the issue's bound is 2).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import prediction
import torch
import training
from harness import fit_quietly, median, table
from lightning.pytorch.callbacks import Callback

import latentode as lo
from latentode.data.dataset import SeriesDataset
from latentode.estimator.threads import POLICY_THREADS

#: the competing process: one core's worth of pure Python spinning, until it is killed or
#: its parent is gone (a benchmark stopped by a signal cannot leave it spinning)
COMPETITOR = [
    sys.executable,
    "-c",
    "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n"
    "    for _ in range(100_000): pass",
]
SETTLE_SECONDS = 0.5  # for the competitor to reach the CPU before timing starts
SIZES = {
    "quick": {"train_steps": 3, "predict_samples": 10, "predict_repeats": 3, "fit_epochs": 2},
    "full": {"train_steps": 5, "predict_samples": 32, "predict_repeats": 5, "fit_epochs": 5},
}
CONDITIONS = ("idle", "busy")


def torch_default_threads() -> int:
    """torch's intra-op thread count in a fresh interpreter without OMP/MKL_NUM_THREADS."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


@contextmanager
def load(condition: str) -> Iterator[None]:
    """The block runs idle, or (``"busy"``) next to a CPU-bound process killed afterwards."""
    if condition == "idle":
        yield
        return
    proc = subprocess.Popen(COMPETITOR)
    try:
        time.sleep(SETTLE_SECONDS)
        yield
    finally:
        proc.kill()
        proc.wait()


class StepTimer(Callback):
    """Wall seconds of every training batch: forward, backward, clip and optimiser step."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def clinical_steps(data: SeriesDataset, val: SeriesDataset, threads: int | None) -> list[float]:
    """Seconds of each training step of ``LatentODE(2019 clinical size, threads=threads).fit``
    over ``data`` (one epoch, CPU), the warm-up batch left out."""
    setup = training.SETUPS["clinical"]
    model = lo.LatentODE(
        **setup.config, batch_size=setup.batch_size, residual=False, threads=threads, seed=0
    )
    timer = StepTimer()
    fit_quietly(model, data, val=val, max_epochs=1, callbacks=[timer])
    return timer.seconds[1:]


def measure(sizes: dict, seed: int = 0) -> dict:
    """Time the training step and predict, idle and busy, policy and default threads.

    Returns ``rows`` (one per task and thread setting: idle and busy medians, their
    ratio, every run), ``figures`` and ``default_threads``.
    """
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    default = torch_default_threads()
    settings = {"policy": None, f"torch default ({default})": default}
    setup = training.SETUPS["clinical"]
    n_steps = sizes["train_steps"]
    print(f"  clinical data: {setup.batch_size * (n_steps + 1)} stays ...", flush=True)
    data = setup.make(setup.batch_size * (n_steps + 1), seed)
    val = setup.make(4, seed + 1)
    print(f"  fitting the predict model for {sizes['fit_epochs']} epochs ...", flush=True)
    model, _ = prediction.fit_briefly(sizes["fit_epochs"], seed)
    runs: dict[tuple[str, str, str], list[float]] = {}
    used: dict[tuple[str, str, str], list[int]] = {}  # predict's attrs["threads"] per run
    for condition in CONDITIONS:
        with load(condition):
            for label, threads in settings.items():
                print(f"  {condition}, {label}: training steps ...", flush=True)
                runs["train step", label, condition] = clinical_steps(data, val, threads)
                print(f"  {condition}, {label}: predict ...", flush=True)
                (row,) = prediction.predict_timing(
                    model, [sizes["predict_samples"]], [threads], sizes["predict_repeats"]
                )
                runs["predict", label, condition] = row["runs"]
                used["predict", label, condition] = row["threads_used"]
    rows = []
    for task in ("train step", "predict"):
        for label in settings:
            idle, busy = (median(runs[task, label, c]) for c in CONDITIONS)
            if task == "train step" and settings[label] is None:
                label_used = f"{label} ({POLICY_THREADS})"
            elif task == "predict" and settings[label] is None:
                ran = ["/".join(map(str, sorted(set(used[task, label, c])))) for c in CONDITIONS]
                label_used = f"{label} (ran {ran[0]} idle, {ran[1]} busy)"
            else:
                label_used = label
            rows.append(
                {
                    "task": task,
                    "threads": label_used,
                    "policy": settings[label] is None,
                    "idle": idle,
                    "busy": busy,
                    "ratio": busy / idle,
                    "idle_runs": runs[task, label, "idle"],
                    "busy_runs": runs[task, label, "busy"],
                }
            )
    by = {(r["task"], r["policy"]): r for r in rows}
    figures = {
        "busy_over_idle_train_step": by["train step", True]["ratio"],
        "busy_over_idle_predict": by["predict", True]["ratio"],
        "busy_over_idle_train_step_default_threads": by["train step", False]["ratio"],
        "busy_over_idle_predict_default_threads": by["predict", False]["ratio"],
    }
    return {"rows": rows, "figures": figures, "default_threads": default, "sizes": sizes}


def render(result: dict) -> str:
    """The side-by-side table of :func:`measure`'s result, with what was timed."""
    sizes = result["sizes"]
    text = table(
        result["rows"],
        [
            ("task", "task", ""),
            ("threads", "threads", ""),
            ("idle", "idle s", ".3f"),
            ("busy", "busy s", ".3f"),
            ("ratio", "busy / idle", ".2f"),
        ],
    )
    steps, repeats = sizes["train_steps"], sizes["predict_repeats"]
    text += (
        f"\ntrain step: clinical, 2019 size (B 50, 20 latents, 3 x 50 networks, 3 samples), "
        f"LatentODE.fit on CPU, median of {steps} steps after a warm-up step; predict: "
        f"{prediction.N_SERIES} spirals x {prediction.N_TIMES} times, "
        f"{sizes['predict_samples']} samples, median of {repeats} runs. busy: one "
        "Python process spinning in a loop beside it (started and killed by the "
        f"benchmark); {os.cpu_count()} CPU cores; load average before the run "
        f"{result.get('load_before', '?')}, after {result.get('load_after', '?')}. Bound: "
        "busy / idle <= 2 with the policy."
    )
    return text


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` prints them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def run(sizes: dict) -> dict:
    """:func:`measure` with the machine's load average before and after."""
    before = load_average()
    result = measure(sizes)
    result.update(load_before=before, load_after=load_average())
    return result


def main(argv: list[str] | None = None) -> dict:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 predict samples, 3 repeats")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # what the rest runs with; the estimator sets its own
    result = run(SIZES["quick" if args.quick else "full"])
    print(render(result))
    for key, value in result["figures"].items():
        print(f"{key:>45}: {value:.3g}")
    return result


if __name__ == "__main__":
    main()
