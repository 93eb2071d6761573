"""The label head reads the latent state where ``label_readout`` says, in training and at
prediction alike.

- ``label_readout="last"`` with a linear head: the logits are w · [z(t_end), statics] + b
  with z(t_end) from an independent solve of the network's own vector field (torchdiffeq,
  tight tolerances) from each z0 sample to the series' last time: the last *target* time
  in the training loss (here later than the context's), the last *context* time at
  prediction, whichever query times are asked for. The loss's label term is the
  Bernoulli NLL of those logits, by hand.
- ``"both"`` reads [z0, z(t_end)]; ``"z0"`` ignores the path.
- Model files written before the field existed read z0 with the MLP head; the estimator's
  choice survives save/load; an unknown readout is refused by name.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchdiffeq import odeint

import latentode as lo
from latentode.data.batching import collate
from latentode.data.dataset import make_series
from latentode.data.scaling import Scaler
from latentode.models import build_network

DT = torch.float64
SCALER = Scaler(mean=np.zeros(2), std=np.ones(2), time_scale=1.0)
CONFIG = {
    "n_channels": 2,
    "latent_dim": 3,
    "encoder": "odernn",
    "encoder_hidden": 4,
    "hidden": 6,
    "depth": 1,
    "n_samples": 2,
    "n_static": 2,
    "classify": True,
    "label_weight": 1.0,
    "classifier_hidden": 0,
    "solver": {"method": "rk4", "step_size": 0.005},
    "n_grid": 64,
}


def _series() -> list:
    """Three labelled series (labels 1, unknown, 0) of different lengths, with statics."""
    rng = np.random.default_rng(4)
    grids = [[0.0, 0.3, 0.45, 1.1, 1.6], [0.2, 0.9, 1.3], [0.1, 0.15, 0.6, 0.7, 1.2, 1.8, 1.9]]
    out = []
    for i, (t, label) in enumerate(zip(grids, [1.0, None, 0.0])):
        t = np.array(t)
        values = rng.normal(size=(len(t), 2))
        out.append(make_series(i, t, values, static=rng.normal(size=2), label=label))
    return out


def _net(readout: str) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_network("latent_ode", {**CONFIG, "label_readout": readout}).double()
    with torch.no_grad():  # a vector field that moves z visibly over the series' spans
        for p in net.dynamics.parameters():
            p.mul_(3.0)
    return net


def _z_at(net, z0: torch.Tensor, t_end: list[float]) -> torch.Tensor:
    """z0 [S, B, L] carried to each series' own t_end (model clock) → [S, B, L], by an
    independent solve per series."""
    rows = []
    for b, t in enumerate(t_end):
        times = torch.tensor([0.0, t], dtype=DT)
        rows.append(odeint(net.dynamics, z0[:, b], times, rtol=1e-11, atol=1e-12)[-1])
    return torch.stack(rows, dim=1)


def _linear_logits(net, feats: list[torch.Tensor], static: torch.Tensor) -> list[list[float]]:
    """w · [feats..., static] + b per sample and series, with Python sums."""
    w = net.classifier.weight.detach()[0].tolist()
    bias = float(net.classifier.bias.detach()[0])
    n_s, n_b = feats[0].shape[:2]
    out = []
    for s in range(n_s):
        row = []
        for b in range(n_b):
            x = [v for f in feats for v in f[s, b].tolist()] + static[b].tolist()
            row.append(sum(wi * xi for wi, xi in zip(w, x)) + bias)
        out.append(row)
    return out


def test_training_loss_reads_z_at_the_last_target_time() -> None:
    """Contexts drop each series' last point; the label is read at the target's end."""
    series = _series()
    contexts = [s.take(np.arange(len(s)) < len(s) - 1) for s in series]
    batch = collate(contexts, SCALER, series, dtype=DT)
    net = _net("last")
    with torch.no_grad():
        torch.manual_seed(5)
        out = net.training_loss(batch)
        mean, std = net.encode(batch)
        torch.manual_seed(5)
        z0 = mean + std * torch.randn(2, *mean.shape, dtype=DT)  # [K, B, L]
        origin = [s.times[0] for s in contexts]
        t_end = [s.times[-1] - o for s, o in zip(series, origin)]  # the targets' last times
        logits = _linear_logits(net, [_z_at(net, z0, t_end)], batch.static)
    nll, n_known = 0.0, 0
    for b, s in enumerate(series):
        if s.label is None:
            continue
        n_known += 1
        for k in range(2):
            p = 1.0 / (1.0 + math.exp(-logits[k][b]))
            nll -= (s.label * math.log(p) + (1 - s.label) * math.log(1 - p)) / 2
    assert float(out["label_nll"]) == pytest.approx(nll / n_known, rel=1e-6)
    # and not at the context's end, nor at z0: those give other numbers
    t_ctx = [s.times[-1] - o for s, o in zip(contexts, origin)]
    other = _linear_logits(net, [_z_at(net, z0, t_ctx)], batch.static)
    assert abs(other[0][0] - logits[0][0]) > 1e-3


@pytest.mark.parametrize("targets", ["context", "other"])
@pytest.mark.parametrize("readout", ["last", "both", "z0"])
def test_prediction_reads_z_at_the_last_context_time(readout: str, targets: str) -> None:
    """``sample``'s label logits: the window ends at the last context time, whether the
    query times end there (read from the same solve) or elsewhere (a second solve)."""
    series = _series()
    if targets == "context":
        batch = collate(series, SCALER, None, dtype=DT)
    else:  # query times past the context, and fewer of them
        query = [
            make_series(s.id, s.times[-1] + np.array([0.5, 0.8]), np.zeros((2, 2))) for s in series
        ]
        batch = collate(series, SCALER, query, dtype=DT)
    net = _net(readout)
    gens = [torch.Generator().manual_seed(10 + b) for b in range(len(series))]
    with torch.no_grad():
        got = net.sample(batch, 3, generator=gens)["label_logits"]  # [S, B]
        z0 = net.sample_z0(
            *net.encode(batch), 3, [torch.Generator().manual_seed(10 + b) for b in range(3)]
        )
        t_end = [s.times[-1] - s.times[0] for s in series]
        feats = {"last": [_z_at(net, z0, t_end)], "both": [z0, _z_at(net, z0, t_end)], "z0": [z0]}
        expected = _linear_logits(net, feats[readout], batch.static)
    assert got.shape == (3, 3)
    for s in range(3):
        for b in range(3):
            assert float(got[s, b]) == pytest.approx(expected[s][b], rel=1e-6, abs=1e-7)


def test_model_files_without_the_field_read_z0_with_the_mlp_head() -> None:
    """Configs saved before ``label_readout`` and ``classifier_hidden`` existed."""
    old = {k: v for k, v in CONFIG.items() if k != "classifier_hidden"}
    net = build_network("latent_ode", old)
    assert net.cfg.label_readout == "z0"
    assert [m.in_features for m in net.classifier if isinstance(m, torch.nn.Linear)] == [5, 6]
    both = build_network("latent_ode", {**CONFIG, "label_readout": "both"})
    assert both.classifier.in_features == 3 + 3 + 2
    with pytest.raises(lo.LatentODEError, match="label_readout='end' is unknown"):
        build_network("latent_ode", {**CONFIG, "label_readout": "end"})


def test_estimator_readout_and_head_survive_save_and_load(tmp_path) -> None:
    ds = lo.SeriesDataset(
        _series() * 1, channels=["a", "b"], static_names=["s", "u"], label_name="y"
    )
    params = {"latent_dim": 3, "encoder_hidden": 4, "hidden": 6, "depth": 1, "n_samples": 2}
    model = lo.LatentODE(
        **params, label_readout="both", label_hidden=3, residual=False, batch_size=3
    )
    model.fit(ds, max_epochs=1, progress_bar=False, log_dir=tmp_path / "run")
    assert model.network_.cfg.label_readout == "both"
    assert model.network_.cfg.classifier_hidden == 3
    model.save(tmp_path / "m")
    loaded = lo.load(tmp_path / "m")
    assert loaded.get_params()["label_readout"] == "both"
    assert loaded.get_params()["label_hidden"] == 3
    a = model.predict_proba(ds, seed=1)["p"].to_numpy()
    b = loaded.predict_proba(ds, seed=1)["p"].to_numpy()
    np.testing.assert_array_equal(a, b)
