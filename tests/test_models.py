"""Networks and their training module, checked against truths computed independently.

- masked and padded entries change neither the loss nor a single gradient;
- a batch gives every series what it gets alone (per-series time, no union grid);
- the Poisson term equals log λ at the events minus a separate trapezoid integral of λ;
- checkpoints load without unpickling code; a NaN loss stops training with a located error;
- the estimator configures gradient clipping and the per-epoch learning-rate decay.
"""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pytest
import torch
import torchdiffeq
from lightning.pytorch.callbacks import Callback

import latentode as lo
from latentode.data.batching import Batch, collate
from latentode.data.datamodule import MIN_EPOCH_EXAMPLES, SeriesDataModule
from latentode.data.dataset import SeriesDataset, make_series
from latentode.data.scaling import Scaler
from latentode.errors import LatentODEError
from latentode.models import build_network
from latentode.models.training import NonFiniteLossError, TrainingModule

DT = torch.float64
C = 2
TIGHT = {"method": "dopri5", "rtol": 1e-10, "atol": 1e-10}  # decoder solves for exact checks
SCALER = Scaler(mean=(0.3, -0.2), std=(1.5, 0.7), time_scale=2.0)


def _series(sid: int, times, rng: np.random.Generator, p_obs: float = 0.7):
    """A series on ``times`` with random values, each channel observed with prob. ``p_obs``."""
    values = rng.normal(size=(len(times), C))
    mask = rng.random((len(times), C)) < p_obs
    mask[np.arange(len(times)), rng.integers(0, C, len(times))] = True  # >= 1 per time
    return make_series(sid, times, values, mask)


def _pairs() -> tuple[list, list]:
    """Three series on different grids and lengths; targets include times before the context."""
    rng = np.random.default_rng(7)
    grids = [
        np.array([0.0, 0.13, 0.4, 0.55, 0.9, 1.3, 1.7]),
        np.array([0.2, 0.25, 1.1, 1.9]),
        np.array([0.05, 0.3, 0.31, 0.8, 1.2, 1.25, 1.6, 1.95, 2.0]),
    ]
    targets = [_series(i, g, rng) for i, g in enumerate(grids)]
    keep = [np.array([1, 2, 4]), np.array([0, 2]), np.array([2, 3, 5, 6, 7])]
    contexts = [t.take(k) for t, k in zip(targets, keep)]
    return contexts, targets


def _batch(contexts, targets) -> Batch:
    return collate(contexts, SCALER, targets, dtype=DT)


def _latent_net(encoder: str = "odernn", poisson: bool = False, **extra) -> torch.nn.Module:
    config = {
        "n_channels": C,
        "latent_dim": 3,
        "encoder": encoder,
        "encoder_hidden": 5,
        "hidden": 8,
        "depth": 1,
        "n_samples": 2,
        "poisson": poisson,
        "solver": TIGHT,
        "n_grid": 400,
        **extra,
    }
    torch.manual_seed(0)
    return build_network("latent_ode", config).double()


def _autoregressive_net(cell: str = "odernn") -> torch.nn.Module:
    torch.manual_seed(0)
    config = {"n_channels": C, "cell": cell, "hidden_dim": 5, "hidden": 8, "depth": 1}
    return build_network("autoregressive", config).double()


def _loss_and_grads(net: torch.nn.Module, batch: Batch) -> tuple[dict, dict]:
    net.zero_grad(set_to_none=True)
    torch.manual_seed(123)  # the same z0 noise every call
    out = net.training_loss(batch, kl_weight=0.7)
    out["loss"].backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in out.items()}, grads


def _poison(batch: Batch, fill: float) -> Batch:
    """``batch`` with ``fill`` in every unobserved value slot and every padded context time.

    Padded *target* times stay as collate pins them (the series' last time): the
    decoder's read-out grid spans the batch's target times.
    """
    out = Batch(**batch.__dict__)
    for values, mask in (("values", "mask"), ("target_values", "target_mask")):
        v = getattr(batch, values).clone()
        v[getattr(batch, mask) == 0] = fill
        setattr(out, values, v)
    times = batch.times.clone()
    pad = torch.arange(times.shape[1]) >= batch.lengths.unsqueeze(-1)  # [B, T]
    times[pad] = fill
    out.times = times
    return out


NETS = {
    "latent_odernn": lambda: _latent_net("odernn"),
    "latent_rnn": lambda: _latent_net("rnn"),
    "latent_poisson": lambda: _latent_net("odernn", poisson=True),
    "autoregressive_odernn": lambda: _autoregressive_net("odernn"),
    "autoregressive_gru_dt": lambda: _autoregressive_net("gru_dt"),
}


# ---- masked and padded entries ------------------------------------------------------
@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("fill", [1e8, math.nan])
def test_masked_and_padded_entries_change_nothing(name: str, fill: float) -> None:
    net = NETS[name]()
    clean = _batch(*_pairs())
    assert (clean.lengths < clean.times.shape[1]).any()  # there is padding
    assert (clean.mask == 0).any() and (clean.target_mask == 0).any()
    out, grads = _loss_and_grads(net, clean)
    out_bad, grads_bad = _loss_and_grads(net, _poison(clean, fill))
    assert torch.isfinite(out["loss"])
    for key in out:
        assert torch.equal(out_bad[key], out[key]), key  # bit for bit
    assert grads.keys() == grads_bad.keys() and len(grads) > 0
    for key in grads:
        assert torch.isfinite(grads[key]).all(), key
        assert torch.equal(grads_bad[key], grads[key]), key


# ---- a batch gives each series what it gets alone -----------------------------------
def _per_series_outputs(net: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        mean, std = net.encode(batch)
        pred = net.predict_mean(batch)  # [B, T', C]
        extra = net.predictive(batch)[1] if hasattr(net, "predictive") else std
    return mean, std, pred, extra


@pytest.mark.parametrize("name", sorted(NETS))
def test_batch_equals_each_series_alone(name: str) -> None:
    net = NETS[name]()
    contexts, targets = _pairs()
    together = _per_series_outputs(net, _batch(contexts, targets))
    for b, (ctx, tgt) in enumerate(zip(contexts, targets)):
        alone = _per_series_outputs(net, _batch([ctx], [tgt]))
        mean, std, pred, extra = alone
        n = len(tgt)
        torch.testing.assert_close(together[0][b], mean[0], rtol=0, atol=1e-12)
        torch.testing.assert_close(together[1][b], std[0], rtol=0, atol=1e-12)
        # the decoder solve's adaptive steps and read-out grid depend on the batch's span
        torch.testing.assert_close(together[2][b, :n], pred[0, :n], rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(together[3][b, :n], extra[0, :n], rtol=1e-9, atol=1e-9)


def test_batch_latent_paths_and_intensity_integrals_are_per_series() -> None:
    """For one fixed z0 per series: z(t) and Λ(t) at its targets, batched vs alone."""
    net = _latent_net("odernn", poisson=True)
    contexts, targets = _pairs()
    batch = _batch(contexts, targets)
    z0 = torch.randn(2, len(batch), 3, generator=torch.Generator().manual_seed(1), dtype=DT)
    with torch.no_grad():
        z, cum = net.latent_paths(z0, batch.target_times)  # [S, B, T', L], [S, B, T', C]
        for b in range(len(batch)):
            alone = _batch([contexts[b]], [targets[b]])
            z_b, cum_b = net.latent_paths(z0[:, b : b + 1], alone.target_times)
            n = len(targets[b])
            # adaptive steps (rtol 1e-10) depend on the batch: agreement to ~1e-9
            torch.testing.assert_close(z[:, b, :n], z_b[:, 0, :n], rtol=1e-8, atol=1e-8)
            torch.testing.assert_close(cum[:, b, :n], cum_b[:, 0, :n], rtol=1e-8, atol=1e-8)


# ---- the Poisson head's training term -----------------------------------------------
def _reference_path(field, z0: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """z at sorted ``times`` [N] from z(0) = z0 [S, L] by direct torchdiffeq solves: [S, N, L]."""
    parts = []
    neg, pos = times[times < 0], times[times > 0]
    opts = {"method": "dopri5", "rtol": 1e-11, "atol": 1e-11}
    if len(neg):
        back = torch.cat([times.new_zeros(1), neg.flip(0)])
        parts.append(torchdiffeq.odeint(field, z0, back, **opts)[1:].flip(0))
    parts.append(z0.unsqueeze(0).expand(int((times == 0).sum()), *z0.shape))
    if len(pos):
        fwd = torch.cat([times.new_zeros(1), pos])
        parts.append(torchdiffeq.odeint(field, z0, fwd, **opts)[1:])
    return torch.cat(parts).transpose(0, 1)  # [S, N, L]


def test_poisson_term_matches_independent_integral(monkeypatch) -> None:
    net = _latent_net("odernn", poisson=True)
    contexts, targets = _pairs()
    batch = _batch(contexts, targets)
    n_s = net.cfg.n_samples
    z0 = 0.8 * torch.randn(n_s, len(batch), 3, generator=torch.Generator().manual_seed(2), dtype=DT)
    monkeypatch.setattr(net, "sample_z0", lambda mean, std, n, generator: z0)
    with torch.no_grad():
        model_term = net.training_loss(batch)["poisson_ll"]
        expected = torch.zeros(n_s, dtype=DT)
        for b in range(len(batch)):
            n = int(batch.target_lengths[b])
            t = batch.target_times[b, :n]  # [n] this series' own model times
            mask = batch.target_mask[b, :n]  # [n, C] events
            log_lam = net.intensity.log_intensity(_reference_path(net.dynamics, z0[:, b], t))
            events = (log_lam * mask).sum(dim=(-2, -1))  # [S]
            grid = torch.linspace(float(t[0]), float(t[-1]), 4001, dtype=DT)
            grid = torch.cat([grid[grid < 0], grid.new_zeros(1), grid[grid > 0]]).unique()
            lam = net.intensity(_reference_path(net.dynamics, z0[:, b], grid))  # [S, G, C]
            integral = torch.trapezoid(lam, grid, dim=1).sum(-1)  # [S]
            expected += events - integral  # [S] summed over series
        expected = expected.mean() / batch.target_mask.sum()  # mean over samples, per value
    assert batch.target_times.min() < 0  # the window starts before the context: both sides
    torch.testing.assert_close(model_term, expected, rtol=1e-8, atol=1e-10)


# ---- the Lightning module ----------------------------------------------------------
def _tiny_data(n_series: int = 8) -> SeriesDataset:
    return lo.datasets.spiral(n_series=n_series, n_points=12, n_observed=6, seed=0)


def _tiny_module(**optim) -> TrainingModule:
    config = {
        "n_channels": 2,
        "latent_dim": 2,
        "encoder_hidden": 4,
        "hidden": 8,
        "depth": 1,
        "n_samples": 1,
        "solver": {"method": "euler", "step_size": 0.25},
    }
    return TrainingModule("latent_ode", config, optim or None)


def _trainer(tmp_path, **kwargs) -> L.Trainer:
    args = {
        "max_epochs": 1,
        "accelerator": "cpu",
        "devices": 1,
        "default_root_dir": str(tmp_path),
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    args.update(kwargs)
    return L.Trainer(**args)


def _plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def test_checkpoint_loads_with_weights_only(tmp_path) -> None:
    module = _tiny_module(lr=1e-3)
    assert _plain(dict(module.hparams))
    data = _tiny_data()
    dm = SeriesDataModule(data, Scaler.fit(data), batch_size=4)
    trainer = _trainer(tmp_path, enable_checkpointing=True)
    trainer.fit(module, datamodule=dm)
    paths = list(tmp_path.rglob("*.ckpt"))
    assert paths, "no checkpoint written"
    ckpt = torch.load(paths[0], weights_only=True)
    assert _plain(ckpt["hyper_parameters"])
    fresh = TrainingModule(**ckpt["hyper_parameters"])
    fresh.load_state_dict(ckpt["state_dict"])
    for key, value in module.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_nan_loss_stops_training_naming_epoch_and_batch(tmp_path, monkeypatch) -> None:
    module = _tiny_module()
    real = module.net.training_loss
    calls = {"n": 0}

    def nan_at_fourth(batch, kl_weight=1.0):
        out = real(batch, kl_weight)
        calls["n"] += 1
        if calls["n"] == 4:  # epoch 1, batch 1 (two batches per epoch)
            out["loss"] = out["loss"] * math.nan
        return out

    monkeypatch.setattr(module.net, "training_loss", nan_at_fourth)
    data = _tiny_data()
    # one example per series (no minimum), so that an epoch is two batches
    dm = SeriesDataModule(data, Scaler.fit(data), batch_size=4, min_epoch_examples=0)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, batch 1") as info:
        _trainer(tmp_path, max_epochs=3, enable_checkpointing=False).fit(module, datamodule=dm)
    assert isinstance(info.value, LatentODEError)
    assert calls["n"] == 4  # nothing ran after the bad batch


class _Probe(Callback):
    """Records the clip setting, each step's clipped gradient norm and the lr per epoch."""

    def __init__(self) -> None:
        self.norms: list[float] = []
        self.lrs: list[float] = []
        self.clip = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.clip = (trainer.gradient_clip_val, trainer.gradient_clip_algorithm)
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

    def on_train_end(self, trainer, pl_module) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_estimator_configures_clipping_and_lr_schedule(tmp_path) -> None:
    probe = _Probe()
    lr, decay, clip, epochs = 0.02, 0.5, 1e-4, 3
    model = lo.LatentODE(
        latent_dim=2,
        encoder_hidden=4,
        hidden=8,
        depth=1,
        n_samples=1,
        solver="euler",
        step_size=0.25,
        lr=lr,
        lr_decay=decay,
        gradient_clip=clip,
        batch_size=4,
        val_frac=0.0,
    )
    model.fit(
        _tiny_data(),
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        log_dir=tmp_path,
        progress_bar=False,
        callbacks=[probe],
    )
    assert probe.clip[0] == clip and probe.clip[1] in (None, "norm")  # None: Lightning's norm
    # 8 series in batches of 4: an epoch of MIN_EPOCH_EXAMPLES (32) examples, 8 batches
    assert len(_tiny_data()) == 8 and MIN_EPOCH_EXAMPLES == 32
    assert len(probe.norms) == 8 * epochs
    # every step's gradient was clipped to the clip value (clip_grad_norm_: max / (norm + 1e-6))
    np.testing.assert_allclose(probe.norms, clip, rtol=1e-2)
    assert probe.lrs[0] == pytest.approx(lr)
    assert probe.lrs[-1] == pytest.approx(lr * decay**epochs, rel=1e-12)
    assert model.best_checkpoint_  # fit's own checkpoint callback survived the merge


# ---- the decoder applied in the read-out's memory order -----------------------------
def test_rowwise_equals_applying_the_module_directly() -> None:
    from latentode.models.latent_ode import rowwise

    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2).double()
    base = torch.randn(4, 5, 6, 3, dtype=DT)
    for x in (base, base.permute(2, 0, 1, 3), base.permute(1, 2, 0, 3), base[:, ::2]):
        got = rowwise(layer, x)
        assert got.shape == (*x.shape[:-1], 2)
        torch.testing.assert_close(got, layer(x.contiguous()), rtol=0, atol=1e-14)


def test_sample_decodes_each_latent_path_point() -> None:
    net = _latent_net("odernn", poisson=True)
    batch = _batch(*_pairs())
    out = net.sample(batch, 4, generator=torch.Generator().manual_seed(0))
    z = out["z"]  # [S, B, T', L]
    assert z.shape == (4, len(batch), batch.target_times.shape[1], 3)
    torch.testing.assert_close(out["mean"], net.decoder(z.contiguous()), rtol=0, atol=1e-14)
    expected = net.intensity.log_intensity(z.contiguous())
    torch.testing.assert_close(out["log_intensity"], expected, rtol=0, atol=1e-14)
    for b in range(len(batch)):  # z against direct solves from each sample's z0
        n = int(batch.target_lengths[b])
        times = batch.target_times[b, :n]
        reference = _reference_path(net.dynamics, out["z0"][:, b], times)  # [S, n, L]
        torch.testing.assert_close(z[:, b, :n], reference, rtol=0, atol=1e-8)


# ---- the GRU-Δt baseline reads each observation's gap ---------------------------------
def test_gru_dt_hidden_states_match_a_hand_loop_with_gaps() -> None:
    """The cell reads [value·mask, mask, Δt] with Δt the time since the previous observation."""
    net = _autoregressive_net("gru_dt")
    contexts, _ = _pairs()
    rng = np.random.default_rng(5)
    gappy = _series(9, np.array([0.1, 0.5, 0.6, 1.4]), rng)
    gappy.mask[2] = False  # a row with nothing observed: skipped, its gap carries over
    gappy.values[2] = np.nan
    series = [contexts[0], contexts[2], gappy]
    batch = _batch(series, series)
    with torch.no_grad():
        states = net.gru_dt(batch.times, batch.values, batch.mask, batch.lengths)
        cell = net.gru_dt.cell
        for b, s in enumerate(series):
            h, prev = torch.zeros(1, 5, dtype=DT), None
            for k, t in enumerate(s.times):
                if s.mask[k].any():
                    gap = 0.0 if prev is None else (t - prev) / SCALER.time_scale
                    m = torch.tensor(s.mask[k], dtype=DT)
                    v = torch.tensor(np.nan_to_num(s.values[k] - SCALER.mean) / SCALER.std)
                    x = torch.cat([v * m, m, torch.tensor([gap], dtype=DT)]).unsqueeze(0)
                    h, prev = cell(x, h), t
                torch.testing.assert_close(states.after[b, k], h[0], rtol=0, atol=1e-6)
            torch.testing.assert_close(states.final[b], h[0], rtol=0, atol=1e-6)
        # the gaps matter: with them zeroed the states differ
        zero = net.gru_dt(torch.zeros_like(batch.times), batch.values, batch.mask, batch.lengths)
        assert (zero.final - states.final).abs().max() > 1e-3
