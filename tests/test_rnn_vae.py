"""The RNN-VAE baseline: latent ODE machinery with a GRU stepping z through the query times."""

import numpy as np
import pytest
import torch

import latentode as lo
from latentode.data.batching import collate
from latentode.data.dataset import SeriesDataset, make_series
from latentode.data.scaling import Scaler
from latentode.errors import LatentODEError
from latentode.models import build_network
from latentode.models.latent_ode import LatentODEConfig


def small_data(n=12, seed=0) -> SeriesDataset:
    rng = np.random.default_rng(seed)
    series = []
    for i in range(n):
        t = np.sort(rng.uniform(0, 5, rng.integers(4, 9)))
        series.append(make_series(i, t, np.stack([np.sin(t), np.cos(t)], 1)))
    return SeriesDataset(series, ["a", "b"])


def test_rnn_path_steps_through_each_series_own_gaps():
    torch.manual_seed(0)
    cfg = LatentODEConfig(n_channels=2, latent_dim=3, dynamics="rnn", encoder="rnn").to_dict()
    net = build_network("latent_ode", cfg).double()
    data = small_data(3)
    batch = collate(list(data), Scaler.fit(data), dtype=torch.float64)
    z0 = torch.randn(2, 3, 3, dtype=torch.float64)
    path = net.latent_paths(z0, batch.target_times)[0]  # [S, B, T', L]
    for b in range(3):
        z, prev = z0[:, b], 0.0
        for k in range(int(batch.target_lengths[b])):
            t = float(batch.target_times[b, k])
            gap = torch.full((2, 1), t - prev, dtype=torch.float64)
            z, prev = net.rnn_dynamics(gap, z), t
            torch.testing.assert_close(path[:, b, k], z, rtol=0, atol=1e-12)


def test_rnn_vae_fits_and_predicts(tmp_path):
    data = small_data()
    model = lo.LatentODE(latent_dim=3, hidden=16, encoder_hidden=8, encoder="rnn", dynamics="rnn")
    model.fit(data, max_epochs=2, progress_bar=False, log_dir=tmp_path)
    pred = model.predict(data, times=[0.5, 6.0], n_samples=5)
    assert len(pred) == 2 * len(data)
    assert np.isfinite(pred[["a", "b", "a_std", "b_std"]].to_numpy()).all()
    assert pred.attrs["nfe"] is None  # no ODE solve to count


def test_rnn_dynamics_cannot_carry_a_poisson_head():
    with pytest.raises(LatentODEError, match="Poisson head needs ODE dynamics"):
        LatentODEConfig(n_channels=2, dynamics="rnn", poisson=True)
