"""Training throughput and time to quality: latentode's per-series path against the 2019 union grid.

Both paths train the same :class:`~latentode.models.LatentODENet` (same size, same
initial weights, Adam, gradient-norm clip 1, KL warm-up) on the same (context, target)
examples drawn as latentode's data module draws them; only the batch layout and the
computation differ:

- ``ours``: latentode's ``collate`` (each series on its own clock) and
  ``LatentODENet.training_loss`` (per-series ODE-RNN encoder, one decoder solve read
  out by Hermite interpolation, vectorised masked likelihood);
- ``union``: :mod:`union_reference` (the batch's union of stamps, encoder stepped
  through it, decoder solved at every union time, Python-loop likelihood).

A timed batch is forward + backward + optimiser step (collation is done beforehand,
as a data loader would). Function evaluations are counted with forward hooks on the
decoder's and the encoder's vector fields, so both paths are counted the same way.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from harness import median, quiet_stderr, timed
from union_reference import UnionGridPath, union_collate

from latentode.data.batching import collate
from latentode.data.dataset import Series, SeriesDataset
from latentode.data.scaling import Scaler
from latentode.data.tasks import TaskConfig, make_example
from latentode.datasets import clinical, periodic, spiral
from latentode.models import build_network
from latentode.models.training import OptimConfig
from latentode.nn.likelihoods import masked_mse

TASK = TaskConfig()  # the estimator's default: "mixed" interpolation / extrapolation
OPTIM = OptimConfig()  # Adam lr 1e-2, decay 0.99 per epoch, KL warm-up over 10 epochs
GRAD_CLIP = 1.0  # the estimator's default gradient_clip


@dataclass(frozen=True)
class Setup:
    """A data set and the model trained on it.

    ``epoch_series`` is the training-set size that "seconds per epoch" refers to.
    """

    make: Callable[[int, int], SeriesDataset]  # (n_series, seed) -> data
    batch_size: int
    epoch_series: int
    config: dict = field(default_factory=dict)
    note: str = ""


# Rubanova et al.'s PhysioNet settings: batch 50, 20 latents, 3-layer 50-unit ODE nets,
# GRU 50 units (our encoder's hidden state; the paper's separate 40 "rec-dims" has no
# counterpart here), 3 samples per series (IWAE); PhysioNet set A has 4,000 stays.
CLINICAL_CONFIG = {"latent_dim": 20, "encoder_hidden": 50, "hidden": 50, "depth": 3, "n_samples": 3}
SETUPS: dict[str, Setup] = {
    "spiral": Setup(
        lambda n, seed: spiral(n, seed=seed), 16, 300, note="LatentODE defaults, 40 obs/series"
    ),
    "periodic": Setup(
        lambda n, seed: periodic(n, seed=seed), 16, 500, note="LatentODE defaults, 100 obs/series"
    ),
    "clinical": Setup(
        lambda n, seed: clinical(n, seed=seed),
        50,
        4000,
        CLINICAL_CONFIG,
        note="2019 PhysioNet settings, minute-resolution times",
    ),
}


# ---- data -----------------------------------------------------------------------------
Pairs = list[tuple[Series, Series]]


def epoch_batches(data: SeriesDataset, batch_size: int, epoch: int, seed: int = 0) -> list[Pairs]:
    """One epoch of (context, target) pairs in shuffled batches, drawn like the data module."""
    order = np.random.default_rng([seed, epoch]).permutation(len(data))
    pairs = []
    for i in order:
        series = data[int(i)]
        rng = np.random.default_rng([seed, epoch, int(i)])
        pairs.append((make_example(series, TASK, rng), series))
    return [pairs[k : k + batch_size] for k in range(0, len(pairs), batch_size)]


def validation_batches(val: SeriesDataset, batch_size: int, seed: int = 0) -> list[Pairs]:
    """Interpolation: half of each validation series' points are the context, half the targets."""
    context, target = val.subsample(0.5, seed=seed)
    pairs = list(zip(context, target))
    return [pairs[k : k + batch_size] for k in range(0, len(pairs), batch_size)]


# ---- the two paths --------------------------------------------------------------------
class CallCounter:
    """Counts calls of a module (a forward hook): its function evaluations."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        module.register_forward_hook(self._hook)

    def _hook(self, *_) -> None:
        self.calls += 1


class SolverCount:
    """Evaluations a field's own ``NFECounter`` records (the fused ODE-RNN pass evaluates
    the field inside one autograd node, where forward hooks do not fire)."""

    def __init__(self, field: torch.nn.Module) -> None:
        self.counter, self.start = field.nfe, field.nfe.forward

    @property
    def calls(self) -> int:
        return self.counter.forward - self.start


class TrainingPath:
    """A network, its optimiser and how one path collates, scores and evaluates a batch."""

    def __init__(
        self, name: str, net: torch.nn.Module, scaler: Scaler, device: torch.device
    ) -> None:
        self.name, self.net, self.scaler, self.device = name, net, scaler, device
        self.opt = torch.optim.Adam(net.parameters(), lr=OPTIM.lr)
        self.sched = torch.optim.lr_scheduler.ExponentialLR(self.opt, gamma=OPTIM.lr_decay)
        self.decoder_nfe = CallCounter(net.dynamics)
        field = net.encoder.odernn.field
        self.encoder_nfe = CallCounter(field) if name == "union" else SolverCount(field)
        self.union = UnionGridPath(net) if name == "union" else None

    def collate(self, pairs: Pairs):
        context, target = (list(x) for x in zip(*pairs))
        if self.union is not None:
            return union_collate(context, target, self.scaler).to(self.device)
        return collate(context, self.scaler, target).to(self.device)

    def loss(self, batch, kl_weight: float) -> torch.Tensor:
        if self.union is not None:
            return self.union.training_loss(batch, kl_weight)
        return self.net.training_loss(batch, kl_weight)["loss"]

    def step(self, batch, kl_weight: float = 1.0) -> float:
        """One training step: forward, backward, gradient clip, Adam step. Returns the loss."""
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(batch, kl_weight)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), GRAD_CLIP)
        self.opt.step()
        return float(loss.detach())

    @torch.no_grad()
    def val_mse(self, batches: list) -> float:
        """Interpolation MSE (scaled units) of the posterior-mean prediction over ``batches``."""
        sse, count = 0.0, 0.0
        for batch in batches:
            if self.union is not None:
                s, n = self.union.mse(batch)
            else:
                n = batch.target_mask.sum()
                s = masked_mse(self.net.predict_mean(batch), batch.target_values, batch.target_mask)
                s = s * n
            sse, count = sse + float(s), count + float(n)
        return sse / max(count, 1.0)


def make_paths(
    setup: Setup, data: SeriesDataset, device: torch.device, seed: int = 0
) -> tuple[Scaler, TrainingPath, TrainingPath]:
    """The scaler and the two paths, with identical initial weights."""
    scaler = Scaler.fit(data)
    torch.manual_seed(seed)
    net = build_network("latent_ode", {"n_channels": len(data.channels), **setup.config})
    net = net.to(device)
    ours = TrainingPath("ours", net, scaler, device)
    union = TrainingPath("union", copy.deepcopy(net), scaler, device)
    return scaler, ours, union


def kl_weight(epoch: int) -> float:
    """The training module's KL warm-up."""
    warm = OPTIM.kl_warmup_epochs
    return 1.0 if warm <= 0 else min(1.0, (epoch + 1) / (warm + 1))


# ---- throughput -----------------------------------------------------------------------
def throughput(
    name: str,
    n_rounds: int,
    ours_per_round: int,
    device: torch.device,
    seed: int = 0,
) -> dict:
    """Seconds per training batch of both paths, interleaved in rounds.

    Each round times ``ours_per_round`` batches of ours and one of the union path (the
    order alternates), and a closing run of ours follows the last round. The first
    batch of each path is left out of its median when it timed more than one.
    """
    setup = SETUPS[name]
    n_union = n_rounds
    n_ours = ours_per_round * (n_rounds + 1)
    data = setup.make(setup.batch_size * max(n_ours, n_union), seed)
    _, ours, union = make_paths(setup, data, device, seed)
    pair_batches = epoch_batches(data, setup.batch_size, epoch=0, seed=seed)
    ours_batches = [ours.collate(p) for p in pair_batches[:n_ours]]
    union_batches = [union.collate(p) for p in pair_batches[:n_union]]

    seconds: dict[str, list[float]] = {"ours": [], "union": []}

    def run_ours(k: int) -> None:
        for _ in range(k):
            batch = ours_batches[len(seconds["ours"])]
            seconds["ours"].append(timed(lambda b=batch: ours.step(b), device)[1])

    def run_union() -> None:
        batch = union_batches[len(seconds["union"])]
        seconds["union"].append(timed(lambda: union.step(batch), device)[1])

    for r in range(n_rounds):
        if r % 2 == 0:
            run_ours(ours_per_round)
            run_union()
        else:
            run_union()
            run_ours(ours_per_round)
    run_ours(ours_per_round)

    def summary(path: TrainingPath, secs: list[float], n: int) -> dict:
        kept = secs[1:] if len(secs) > 1 else secs
        s = median(kept)
        return {
            "seconds_per_batch": s,
            "series_per_second": setup.batch_size / s,
            "seconds_per_epoch": math.ceil(setup.epoch_series / setup.batch_size) * s,
            "decoder_nfe_per_batch": path.decoder_nfe.calls / n,
            "encoder_nfe_per_batch": path.encoder_nfe.calls / n,
            "batches_timed": len(kept),
            "all_seconds": secs,
        }

    first = ours_batches[: len(seconds["ours"])]
    return {
        "data": name,
        "batch_size": setup.batch_size,
        "epoch_series": setup.epoch_series,
        "config": ours.net.cfg.to_dict(),
        "note": setup.note,
        "series_length": float(np.mean([int(b.lengths.max()) for b in first])),
        "target_length": float(np.mean([int(b.target_lengths.max()) for b in first])),
        "union_length": float(np.mean([b.times.shape[0] for b in union_batches])),
        "ours": summary(ours, seconds["ours"], len(seconds["ours"])),
        "union": summary(union, seconds["union"], len(seconds["union"])),
        "speedup": median(seconds["union"][1:] or seconds["union"])
        / median(seconds["ours"][1:] or seconds["ours"]),
    }


# ---- time to quality ------------------------------------------------------------------
@dataclass
class Trajectory:
    """Validation MSE after each epoch and the cumulative training seconds (evaluation excluded)."""

    mse: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    reached_at: int | None = None  # epoch index (0-based) at which mse <= target first

    def as_dict(self) -> dict:
        reached = self.reached_at
        return {
            "epochs": len(self.mse),
            "val_mse": self.mse,
            "train_seconds": self.seconds,
            "reached": reached is not None,
            "epochs_to_target": None if reached is None else reached + 1,
            "seconds_to_target": None if reached is None else self.seconds[reached],
        }


def train_interleaved(
    name: str,
    n_train: int,
    n_val: int,
    target_mse: float | None,
    max_epochs: int,
    max_seconds: float,
    device: torch.device,
    seed: int = 0,
) -> dict:
    """Train both paths epoch by epoch, interleaved, until each reaches ``target_mse`` or a cap.

    A path stops when its validation interpolation MSE (scaled units, after an epoch)
    is at most ``target_mse``, after ``max_epochs`` epochs, or once its training time
    passes ``max_seconds``. ``target_mse=None`` trains both for ``max_epochs`` (the
    same-number-of-epochs comparison). Returns both trajectories and the trained
    ``ours`` path (under ``"_ours"``, not JSON).
    """
    setup = SETUPS[name]
    data = setup.make(n_train + n_val, seed)
    train, val = data[:n_train], data[n_train:]
    _, ours, union = make_paths(setup, train, device, seed)
    val_pairs = validation_batches(val, setup.batch_size, seed)
    val_batches = {p.name: [p.collate(v) for v in val_pairs] for p in (ours, union)}
    runs = {"ours": Trajectory(), "union": Trajectory()}
    active = ["ours", "union"]
    for epoch in range(max_epochs):
        batches = epoch_batches(train, setup.batch_size, epoch, seed)
        order = active if epoch % 2 == 0 else active[::-1]
        for path in (ours if p == "ours" else union for p in order):
            run = runs[path.name]
            collated = [path.collate(b) for b in batches]
            weight = kl_weight(epoch)

            def one_epoch(path=path, collated=collated, weight=weight) -> None:
                for batch in collated:
                    path.step(batch, weight)

            _, secs = timed(one_epoch, device)
            path.sched.step()
            run.seconds.append((run.seconds[-1] if run.seconds else 0.0) + secs)
            run.mse.append(path.val_mse(val_batches[path.name]))
            if target_mse is not None and run.mse[-1] <= target_mse and run.reached_at is None:
                run.reached_at = epoch
        active = [
            p for p in active if runs[p].reached_at is None and runs[p].seconds[-1] < max_seconds
        ]
        if not active:
            break
    out = {
        "data": name,
        "n_train": n_train,
        "n_val": n_val,
        "batch_size": setup.batch_size,
        "target_mse": target_mse,
        "max_epochs": max_epochs,
        "max_seconds": max_seconds,
        "ours": runs["ours"].as_dict(),
        "union": runs["union"].as_dict(),
        "_ours": ours,
        "_val_batches": val_batches["ours"],
    }
    return out


# ---- where our step's time goes -------------------------------------------------------
def profile_step(name: str, device: torch.device, repeats: int = 3, top: int = 15) -> dict:
    """Phase times of our training step on one batch of ``name``, and its top torch ops.

    The phases re-run ``LatentODENet.training_loss``'s pieces one by one (encoder,
    latent solve + read-out, decoder + likelihood + bound), then backward and the
    optimiser step; medians over ``repeats``; the encoder's own forward + backward is
    timed apart as well. ``ops`` is torch.profiler's table of one
    whole step (forward + backward + step), by self CPU time.
    """
    from torch.profiler import ProfilerActivity, profile

    from latentode.nn.likelihoods import gaussian_log_likelihood, iwae_bound

    setup = SETUPS[name]
    data = setup.make(setup.batch_size, 0)
    _, ours, _ = make_paths(setup, data, device)
    batch = ours.collate(epoch_batches(data, setup.batch_size, 0)[0])
    net = ours.net
    ours.step(batch)  # warm-up
    phases: dict[str, list[float]] = {}

    def phase(key: str, fn):
        out, secs = timed(fn, device)
        phases.setdefault(key, []).append(secs)
        return out

    for _ in range(repeats):
        ours.opt.zero_grad(set_to_none=True)
        mean, std = phase("encoder (ODE-RNN) forward", lambda: net.encode(batch))
        z0 = net.sample_z0(mean, std, net.cfg.n_samples, None)
        z = phase(
            "latent solve + Hermite read-out forward",
            lambda z0=z0: net.latent_paths(z0, batch.target_times)[0],
        )

        def rest(z=z, z0=z0, mean=mean, std=std):
            pred = net.decoder(z)
            log_px = gaussian_log_likelihood(
                pred, batch.target_values, batch.target_mask, net.noise_std
            )
            bound = iwae_bound(log_px, z0, mean, std, 1.0)
            return -bound.sum() / batch.target_mask.sum().clamp_min(1.0)

        loss = phase("decoder + likelihood + bound forward", rest)
        phase("backward (all)", loss.backward)
        phase(
            "clip + Adam step",
            lambda: (
                torch.nn.utils.clip_grad_norm_(net.parameters(), GRAD_CLIP),
                ours.opt.step(),
            ),
        )
    encoder_alone = []
    for _ in range(repeats):

        def encoder_pass() -> None:
            mean, std = net.encode(batch)
            (mean.sum() + std.sum()).backward()

        encoder_alone.append(timed(encoder_pass, device)[1])
    ours.opt.zero_grad(set_to_none=True)
    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        ours.step(batch)
    ops = [
        {
            "op": e.key,
            "calls": e.count,
            "self_seconds": e.self_cpu_time_total / 1e6,
            "total_seconds": e.cpu_time_total / 1e6,
        }
        for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:top]
    ]
    return {
        "data": name,
        "batch_size": setup.batch_size,
        "series_length": int(batch.lengths.max()),
        "target_length": int(batch.target_lengths.max()),
        "phases": [{"phase": k, "seconds": median(v)} for k, v in phases.items()],
        "encoder_forward_backward_seconds": median(encoder_alone),
        "ops": ops,
    }
