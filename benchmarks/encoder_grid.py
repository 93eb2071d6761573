"""What does per-series time buy? The ODE-RNN encoder against the 2019 union-grid pass.

Builds clinical-style batches -- B series of 40 observations each at minute resolution
over 48 h (times are multiples of 1/60 h), C = 37 channels with about 10% observed per
time point -- and times one forward + backward pass of ``ODERNNEncoder`` (latent 20,
GRU state 40, ODE MLP of 3 hidden layers x 50 units, the default encoder solver: Euler,
four steps per gap) in two ways with the same weights:

- per-series (latentode as shipped): each series steps through its own observations
  only; sequential steps = the longest series' own length (40).
- union grid (Rubanova et al. 2019's code, rebuilt below in :class:`UnionGridEncoder`):
  every series is stepped at every time stamp of the batch's union; between union
  times the whole batch is solved with the same solver on the real gap, and the GRU
  updates only the series observed at that union time (masked elsewhere).

The union pass keeps each series still outside its own window [first, last
observation] so that both compute the same posterior (the 2019 code let every series
drift over the whole union; that costs the same). Before timing, both paths are
checked to agree on a small batch with a fine solver.

    python benchmarks/encoder_grid.py            # B = 16, 64, 256 (about a minute or two)
    python benchmarks/encoder_grid.py --quick    # B = 16, 64, fewer repeats
    python benchmarks/encoder_grid.py --device cuda

Prints a table (median seconds of interleaved repeats) and writes it to
``benchmarks/results/encoder_grid.json``. The target is a ratio of at least 20x at B = 64.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from latentode.data.batching import Batch, collate
from latentode.data.dataset import Series, make_series
from latentode.data.scaling import Scaler
from latentode.nn.encoders import DEFAULT_ENCODER_SOLVER, ODERNNEncoder
from latentode.nn.solve import SolverConfig, advance

HOURS = 48.0
MINUTES = int(HOURS * 60)
N_OBS = 40
N_CHANNELS = 37
P_OBSERVED = 0.1
# Rubanova et al.'s PhysioNet settings: latents 20, rec-dims 40, rec-layers 3, units 50
SIZES = {"latent_dim": 20, "hidden_dim": 40, "ode_hidden": 50, "ode_depth": 3}
RESULTS = Path(__file__).parent / "results" / "encoder_grid.json"


# ---- data ---------------------------------------------------------------------------
def clinical_series(n_series: int, n_obs: int = N_OBS, seed: int = 0) -> list[Series]:
    """``n_series`` stays of ``n_obs`` distinct minute stamps in [0, 48 h), ~10% channels each."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_series):
        minutes = np.sort(rng.choice(MINUTES, size=n_obs, replace=False))
        mask = rng.random((n_obs, N_CHANNELS)) < P_OBSERVED
        mask[np.arange(n_obs), rng.integers(0, N_CHANNELS, n_obs)] = True  # >= 1 per stamp
        values = rng.normal(size=(n_obs, N_CHANNELS))
        out.append(make_series(i, minutes / 60.0, values, mask))
    return out


def per_series_batch(series: list[Series], dtype: torch.dtype) -> Batch:
    """latentode's own batch: each series on its own clock, model time = hours / 48."""
    scaler = Scaler((0.0,) * N_CHANNELS, (1.0,) * N_CHANNELS, time_scale=HOURS)
    return collate(series, scaler, dtype=dtype)


def union_batch(series: list[Series], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The 2019 layout: values and mask [B, U, C] on the union of all stamps (model time).

    ``first``/``last`` [B] are each series' first and last union index.
    """
    union = np.unique(np.concatenate([s.times for s in series]))  # [U] hours
    n_b, n_u = len(series), len(union)
    values = np.zeros((n_b, n_u, N_CHANNELS))
    mask = np.zeros((n_b, n_u, N_CHANNELS))
    first, last = np.zeros(n_b, dtype=np.int64), np.zeros(n_b, dtype=np.int64)
    for b, s in enumerate(series):
        idx = np.searchsorted(union, s.times)
        values[b, idx] = np.where(s.mask, np.nan_to_num(s.values), 0.0)
        mask[b, idx] = s.mask
        first[b], last[b] = idx[0], idx[-1]
    return {
        "times": torch.as_tensor(union / HOURS, dtype=dtype),
        "values": torch.as_tensor(values, dtype=dtype),
        "mask": torch.as_tensor(mask, dtype=dtype),
        "first": torch.as_tensor(first),
        "last": torch.as_tensor(last),
    }


# ---- the union-grid reference -------------------------------------------------------
class _RealGap:
    """``dh/ds = gap · f(h)`` on s ∈ [0, 1]: the real gap, whole batch, ``solver``'s steps."""

    __slots__ = ("field", "gap")

    def __init__(self, field: torch.nn.Module, gap: float) -> None:
        self.field, self.gap = field, gap

    def __call__(self, s, h: torch.Tensor) -> torch.Tensor:
        return self.gap * self.field(s, h)


class UnionGridEncoder:
    """The 2019 ODE-RNN encoder pass on the batch's union of stamps, sharing ``encoder``'s weights.

    Reverse time over the union: at each union time, one batched solve of every series
    over the real gap to the previous union time (a series outside its own window is
    held still), then a GRU update where that series has an observation.
    """

    def __init__(self, encoder: ODERNNEncoder, solver: SolverConfig | None = None) -> None:
        self.odernn, self.head = encoder.odernn, encoder.head
        self.solver = solver or encoder.odernn.solver

    def __call__(self, ub: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        values, mask = ub["values"], ub["mask"]  # [B, U, C]
        n_b, n_u, _ = values.shape
        observed = mask > 0
        inputs = torch.cat([torch.where(observed, values, 0.0), mask], dim=-1)  # [B, U, 2C]
        inputs = inputs.transpose(0, 1).contiguous()  # [U, B, 2C]
        update = observed.any(-1).t().unsqueeze(-1).contiguous()  # [U, B, 1]
        pos = torch.arange(n_u, device=values.device).unsqueeze(-1)  # [U, 1]
        # moving[k]: the series' window covers the gap from union time k+1 back to k
        moving = ((pos >= ub["first"]) & (pos < ub["last"])).unsqueeze(-1)  # [U, B, 1]
        times = ub["times"].tolist()
        h = values.new_zeros(n_b, self.odernn.hidden_dim)  # [B, H]
        for k in range(n_u - 1, -1, -1):
            if k < n_u - 1:
                gap = _RealGap(self.odernn.field, times[k] - times[k + 1])
                h = torch.where(moving[k], advance(gap, h, 0.0, 1.0, self.solver), h)
            h = torch.where(update[k], self.odernn.cell(inputs[k], h), h)  # [B, H]
        return self.head(h)  # [B, L] each


# ---- timing -------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_backward(encoder: ODERNNEncoder, run: Callable[[], tuple]) -> None:
    encoder.zero_grad(set_to_none=True)
    mean, std = run()
    (mean.sum() + std.sum()).backward()


def timed(fn: Callable[[], None], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def build_encoder(device: torch.device, dtype: torch.dtype, solver: SolverConfig) -> ODERNNEncoder:
    torch.manual_seed(0)
    encoder = ODERNNEncoder(N_CHANNELS, solver=solver, **SIZES)
    return encoder.to(device=device, dtype=dtype)


def check_agreement(device: torch.device) -> dict[str, float]:
    """Max |difference| of the two paths' posteriors on a small float64 batch.

    With a fine solver (RK4, 32 steps per gap) the two must agree: a series with no
    observation at a union time just flows through it. With the timed solver (Euler,
    four steps per gap) they differ by discretisation only (reported, not asserted).
    """
    series = clinical_series(8, n_obs=12, seed=1)
    pb = per_series_batch(series, torch.float64).to(device)
    ub = {k: v.to(device) for k, v in union_batch(series, torch.float64).items()}
    out = {}
    for name, solver in (
        ("fine", SolverConfig("rk4", step_size=1 / 32)),
        ("timed", DEFAULT_ENCODER_SOLVER),
    ):
        encoder = build_encoder(device, torch.float64, solver)
        with torch.no_grad():
            ours = encoder(pb.times, pb.values, pb.mask, pb.lengths)
            ref = UnionGridEncoder(encoder)(ub)
        out[name] = max(float((a - b).abs().max()) for a, b in zip(ours, ref))
    if not out["fine"] < 1e-8:
        raise SystemExit(f"the two paths disagree: max |diff| = {out['fine']:.3g} (fine solver)")
    return out


def bench(
    n_series: int, repeats: int, device: torch.device, dtype: torch.dtype
) -> dict[str, float]:
    series = clinical_series(n_series, seed=n_series)
    pb = per_series_batch(series, dtype).to(device)
    ub = {k: v.to(device) for k, v in union_batch(series, dtype).items()}
    encoder = build_encoder(device, dtype, DEFAULT_ENCODER_SOLVER)
    union = UnionGridEncoder(encoder)
    paths = {
        "per_series": lambda: forward_backward(
            encoder, lambda: encoder(pb.times, pb.values, pb.mask, pb.lengths)
        ),
        "union": lambda: forward_backward(encoder, lambda: union(ub)),
    }
    paths["per_series"]()  # warm-up (the union path's code ran in the agreement check)
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    for r in range(repeats):
        order = list(paths) if r % 2 == 0 else list(paths)[::-1]  # interleaved
        for name in order:
            seconds[name].append(timed(paths[name], device))
    per, uni = (statistics.median(seconds[k]) for k in ("per_series", "union"))
    return {
        "B": n_series,
        "union_length": int(ub["times"].shape[0]),
        "per_series_length": int(pb.lengths.max()),
        "seconds_per_series": per,
        "seconds_union": uni,
        "ratio": uni / per,
        "repeats": repeats,
    }


def profile_per_series(n_series: int, device: torch.device, dtype: torch.dtype) -> str:
    """cProfile of the per-series forward + backward: where its time goes (top 15 by tottime)."""
    series = clinical_series(n_series, seed=n_series)
    pb = per_series_batch(series, dtype).to(device)
    encoder = build_encoder(device, dtype, DEFAULT_ENCODER_SOLVER)
    run = lambda: encoder(pb.times, pb.values, pb.mask, pb.lengths)  # noqa: E731
    forward_backward(encoder, run)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(5):
        forward_backward(encoder, run)
    _sync(device)
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(15)
    return text.getvalue()


def machine_info(device: torch.device, dtype: torch.dtype) -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark (``argv`` as on the command line); returns what it writes to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="B = 16, 64 and 3 repeats")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: the ops are small, and on a shared 2-core "
        "machine a second thread only adds synchronisation)",
    )
    parser.add_argument("--profile", action="store_true", help="profile the per-series path")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but CUDA is not available here.")
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.set_num_threads(args.threads)
    sizes = args.batch_sizes or ([16, 64] if args.quick else [16, 64, 256])
    repeats = args.repeats or (3 if args.quick else 7)

    info = machine_info(device, dtype)
    for key, value in info.items():
        print(f"{key:>14}: {value}")
    sizes_text = ", ".join(f"{k}={v}" for k, v in SIZES.items())
    solver = DEFAULT_ENCODER_SOLVER
    print(
        f"{'encoder':>14}: ODERNNEncoder(C={N_CHANNELS}, {sizes_text}), "
        f"solver {solver.method} with step {solver.step_size} of each gap"
    )
    agreement = check_agreement(device)
    print(
        f"{'agreement':>14}: max |posterior diff| {agreement['fine']:.2e} (RK4, 32 steps/gap), "
        f"{agreement['timed']:.2e} (Euler, 4 steps/gap: discretisation)"
    )
    print()
    header = (
        f"{'B':>5} {'union len':>10} {'series len':>11} {'s per-series':>13} "
        f"{'s union':>9} {'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for n in sizes:
        row = bench(n, repeats, device, dtype)
        rows.append(row)
        print(
            f"{row['B']:>5} {row['union_length']:>10} {row['per_series_length']:>11} "
            f"{row['seconds_per_series']:>13.4f} {row['seconds_union']:>9.3f} {row['ratio']:>6.1f}x"
        )
    at_64 = next((r["ratio"] for r in rows if r["B"] == 64), None)
    profile = None
    if args.profile or (at_64 is not None and at_64 < 20):
        print("\nper-series path, B = 64 (cProfile, 5 forward + backward passes):")
        profile = profile_per_series(64, device, dtype)
        print(profile)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": info,
        "mode": "quick" if args.quick else "full",
        "config": {
            "n_obs": N_OBS,
            "n_channels": N_CHANNELS,
            "p_observed": P_OBSERVED,
            "hours": HOURS,
            "resolution_minutes": 1,
            **SIZES,
            "solver": DEFAULT_ENCODER_SOLVER.to_dict(),
        },
        "agreement_max_abs_diff": agreement,
        "rows": rows,
        "target": "ratio >= 20 at B = 64",
        "profile": profile,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
