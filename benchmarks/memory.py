"""Peak memory of one training step as the integration horizon grows: adjoint against backprop.

One step = solve ``dz/dt = f(z)`` (an MLP vector field) from a batch of z0 over the
horizon with a fixed-step RK4 solver, so the number of steps is exactly horizon /
step size, decode the state at a few output times, take a squared-error loss,
backpropagate and take an Adam step. With direct backpropagation every step's
activations are kept for the backward pass, so memory grows with the number of steps;
with ``adjoint=True`` (``odeint_adjoint`` through ``SolverConfig``) the backward pass
solves an adjoint ODE instead and memory should stay flat.

Each configuration runs in a fresh subprocess (``python benchmarks/memory.py --child
...``), after a one-step warm-up that creates the optimiser state. On CPU the peak is
the resident-set growth of the step: the process's RSS high-water mark after it
(VmHWM on Linux) minus its RSS just before it. Two things make that exact on Linux:
the high-water mark is reset just before the step (``echo 5 > /proc/self/clear_refs``),
so an earlier peak (importing torch) cannot hide the step's; and
``MALLOC_MMAP_THRESHOLD_=65536`` gives every tensor above 64 KiB its own mapping,
returned when freed, so the RSS follows live tensors rather than memory the heap kept.
Where the reset is not possible the figure is flagged invalid unless the step raised
the lifetime peak. On CUDA it is ``torch.cuda.max_memory_allocated`` during the step
minus the memory allocated before.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

STEP_SIZE = 0.02  # fixed RK4 step: horizon h takes h / STEP_SIZE steps
SIZES = {"batch": 256, "latent": 64, "hidden": 256, "depth": 2, "outputs": 5}


def _rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; else the lifetime peak)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return _maxrss_bytes()


def _reset_peak() -> bool:
    """Reset this process's RSS high-water mark (Linux >= 4.0); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _maxrss_bytes() -> int:
    """This process's RSS high-water mark: VmHWM (Linux), else ``ru_maxrss``.

    VmHWM is preferred: ``ru_maxrss`` also keeps the peak of the process that exec'd
    this one (here the parent benchmark), which can hide the step's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def one_config(n_steps: int, adjoint: bool, device: str, threads: int) -> dict:
    """Measure one step at ``n_steps`` solver steps in this process (call it in a fresh one)."""
    from latentode.nn.solve import SolverConfig, solve
    from latentode.nn.vector_fields import MLPVectorField

    torch.set_num_threads(threads)
    dev = torch.device(device)
    torch.manual_seed(0)
    field = MLPVectorField(SIZES["latent"], SIZES["hidden"], SIZES["depth"]).to(dev)
    decoder = torch.nn.Linear(SIZES["latent"], 8).to(dev)
    params = [*field.parameters(), *decoder.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    z0 = torch.randn(SIZES["batch"], SIZES["latent"], device=dev)
    target = torch.randn(SIZES["outputs"], SIZES["batch"], 8, device=dev)

    def step(steps: int) -> None:
        solver = SolverConfig("rk4", step_size=STEP_SIZE, max_steps=None, adjoint=adjoint)
        t = torch.linspace(0.0, steps * STEP_SIZE, SIZES["outputs"], device=dev)
        opt.zero_grad(set_to_none=True)
        z = solve(field, z0, t, solver)  # [outputs, B, L]
        loss = (decoder(z) - target).square().mean()
        loss.backward()
        opt.step()

    step(SIZES["outputs"])  # warm-up: optimiser state, autograd engine, kernels
    gc.collect()
    field.nfe.reset()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
    reset = _reset_peak()
    before_rss, before_peak = _rss_bytes(), _maxrss_bytes()
    start = time.perf_counter()
    step(n_steps)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - start
    if dev.type == "cuda":
        peak, valid, method = torch.cuda.max_memory_allocated(dev) - before, True, "cuda"
    else:
        after_peak = _maxrss_bytes()
        valid = reset or after_peak > before_peak
        peak, method = after_peak - before_rss, "rss, peak reset" if reset else "rss"
    return {
        "steps": n_steps,
        "adjoint": adjoint,
        "peak_mib": peak / 2**20,
        "valid": valid,
        "method": method,
        "seconds": seconds,
        "nfe_forward": field.nfe.forward,
        "nfe_backward": field.nfe.backward,
    }


def measure(
    horizons: list[int], base_steps: int, device: str, threads: int, repeats: int = 1
) -> dict:
    """Every (mode, horizon) in its own subprocess, interleaved; median peak over ``repeats``."""
    rows = []
    for adjoint in (True, False):
        for mult in horizons:
            rows.append(
                {"adjoint": adjoint, "horizon": mult, "steps": mult * base_steps, "runs": []}
            )
    # every allocation above 64 KiB gets its own mapping, returned to the OS when freed,
    # so the RSS follows live tensors rather than the heap's high-water mark
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "MALLOC_MMAP_THRESHOLD_": "65536"}
    for _ in range(repeats):
        for row in rows:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                f"--steps={row['steps']}",
                f"--adjoint={int(row['adjoint'])}",
                f"--device={device}",
                f"--threads={threads}",
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            row["runs"].append(json.loads(done.stdout.strip().splitlines()[-1]))
    for row in rows:
        peaks = sorted(r["peak_mib"] for r in row["runs"])
        row["peak_mib"] = peaks[len(peaks) // 2]
        row["seconds"] = sorted(r["seconds"] for r in row["runs"])[len(peaks) // 2]
        row["valid"] = all(r["valid"] for r in row["runs"])
        row["nfe_forward"] = row["runs"][0]["nfe_forward"]
        row["nfe_backward"] = row["runs"][0]["nfe_backward"]
        row["method"] = row["runs"][0]["method"]

    def ratio(adjoint: bool) -> float:
        peak = {r["horizon"]: r["peak_mib"] for r in rows if r["adjoint"] == adjoint}
        return peak[max(horizons)] / peak[min(horizons)]

    return {
        "sizes": SIZES,
        "solver": {"method": "rk4", "step_size": STEP_SIZE},
        "base_steps": base_steps,
        "repeats": repeats,
        "rows": rows,
        "adjoint_memory_ratio": ratio(True),
        "backprop_memory_ratio": ratio(False),
    }


def _child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--adjoint", type=int, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    print(json.dumps(one_config(args.steps, bool(args.adjoint), args.device, args.threads)))


if __name__ == "__main__":
    _child(sys.argv[1:])
