"""Figures from latentode.plotting: the right panels and artists, on tiny data and models."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.figure import Figure

import latentode as lo
from latentode import plotting
from latentode.data.dataset import SeriesDataset

N_SERIES, N_POINTS = 12, 10
CHANNELS = ["a", "b"]


def _dataset() -> SeriesDataset:
    """Damped oscillations, irregular times, b missing at every third point; dense truth."""
    rng = np.random.default_rng(0)
    rows, truth = [], {}
    for i in range(N_SERIES):
        phase = rng.uniform(0, 2 * np.pi)
        t = np.sort(rng.choice(np.linspace(0.0, 4.0, 41), N_POINTS, replace=False))
        a, b = np.sin(t + phase), np.cos(t + phase)
        b[::3] = np.nan
        rows.append(pd.DataFrame({"id": i, "time": t, "a": a, "b": b}))
        dense = np.linspace(0.0, 4.0, 41)
        truth[i] = {
            "dense_times": dense,
            "dense_values": np.column_stack([np.sin(dense + phase), np.cos(dense + phase)]),
        }
    ds = lo.from_dataframe(pd.concat(rows, ignore_index=True))
    return SeriesDataset(list(ds), ds.channels, ds.time_axis, truth=truth)


TINY = {"latent_dim": 4, "encoder_hidden": 8, "hidden": 16, "n_samples": 2, "batch_size": 12}


@pytest.fixture(scope="module")
def data() -> SeriesDataset:
    return _dataset()


@pytest.fixture(scope="module")
def model(data):
    """One tiny Poisson model (2 epochs) serves every figure, intensities included."""
    return lo.LatentODE(**TINY, poisson=True).fit(data, max_epochs=2, progress_bar=False)


def _count(ax, kind) -> int:
    return sum(isinstance(c, kind) for c in ax.collections)


def test_predictions_from_a_model_forecast(model, data):
    context, target = data.split_time(frac=0.5)
    fig = plotting.plot_predictions(model, context, target, series=2, n_samples=10, n_points=30)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 * 2
    for ax in fig.axes:
        # band + observed + held-out points; truth, mean and the context-end line
        assert _count(ax, PolyCollection) == 1
        assert _count(ax, PathCollection) == 2
        labels = [ln.get_label() for ln in ax.get_lines()]
        assert labels == ["truth", "mean", "context end"]
        mean = next(ln for ln in ax.get_lines() if ln.get_label() == "mean")
        assert len(mean.get_xdata()) == 30
    legend_labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "90% interval" in legend_labels


def test_predictions_interpolation_has_no_context_end_line(model, data):
    context, target = data.subsample(0.5, seed=1)
    fig = plotting.plot_predictions(
        model, context, target, series=[3], channels=["b"], n_samples=5, show_truth=False
    )
    assert len(fig.axes) == 1
    assert [ln.get_label() for ln in fig.axes[0].get_lines()] == ["mean"]


def _hand_pred(with_quantiles: bool) -> pd.DataFrame:
    t = np.linspace(0.0, 4.0, 9)
    pred = pd.DataFrame({"id": np.repeat([0, 1], 9), "time": np.tile(t, 2)})
    for c in CHANNELS:
        pred[c] = np.tile(np.sin(t), 2)
        pred[f"{c}_std"] = 0.5
        if with_quantiles:
            pred[f"{c}_q5"] = pred[c] - 1.0
            pred[f"{c}_q95"] = pred[c] + 1.0
    return pred


@pytest.mark.parametrize("with_quantiles", [False, True])
def test_predictions_from_a_dataframe(data, with_quantiles):
    pred = _hand_pred(with_quantiles)
    context = data.to_dataframe()
    fig = plotting.plot_predictions(pred, context, series=2)
    assert len(fig.axes) == 2 * len(CHANNELS)
    band = next(c for c in fig.axes[0].collections if isinstance(c, PolyCollection))
    verts = band.get_paths()[0].vertices
    half_width = 1.0  # both the quantiles and ±2 std are 1.0 away from the mean
    assert verts[:, 1].max() == pytest.approx(np.sin(np.linspace(0, 4, 9)).max() + half_width)
    label = "90% interval" if with_quantiles else "±2 std"
    assert label in [t.get_text() for t in fig.legends[0].get_texts()]
    # no target: points observed only; prediction ends at the context's end → no line
    assert all(_count(ax, PathCollection) == 1 for ax in fig.axes)


def test_series_and_sampling(data):
    fig = plotting.plot_series(data, series=3)
    assert len(fig.axes) == 3 * 2
    first = fig.axes[:2]  # series 0: channel a, channel b
    observed = [int(data[0].mask[:, j].sum()) for j in range(2)]
    for ax, n in zip(first, observed):
        obs_line = next(ln for ln in ax.get_lines() if ln.get_label() == "observed")
        assert len(obs_line.get_xdata()) == n

    fig = plotting.plot_sampling(data, series=[0, 5])
    assert len(fig.axes) == 2
    for ax, sid in zip(fig.axes, [0, 5]):
        (ticks,) = ax.collections
        assert len(ticks.get_offsets()) == data.loc[sid].n_observed


def test_latent(model, data):
    fig = plotting.plot_latent(model, data, series=5, n_samples=4, n_points=20)
    (ax,) = fig.axes
    assert len(ax.get_lines()) == 5
    assert len(ax.collections[0].get_offsets()) == 5  # one start dot per series
    assert ax.get_xlabel().startswith("PC1")  # latent_dim 4 > 2: PCA

    colour = {i: float(i) for i in range(N_SERIES)}
    fig = plotting.plot_latent(model, data, series=4, color_by=colour, n_samples=2, n_points=10)
    assert len(fig.axes) == 2  # the plot and its colorbar


def test_intensity_ticks_match_events(model, data):
    t = np.linspace(0.0, 4.0, 5)
    truth = pd.DataFrame({"id": np.repeat([0, 1], 5), "time": np.tile(t, 2), "a": 1.0, "b": 2.0})
    fig = plotting.plot_intensity(model, data, series=2, truth=truth, n_points=25)
    assert len(fig.axes) == 2 * 2
    for ax, (sid, j) in zip(fig.axes, [(0, 0), (0, 1), (1, 0), (1, 1)]):
        labels = [ln.get_label() for ln in ax.get_lines()]
        assert labels == ["true λ", "λ", "observed"]
        ticks = ax.get_lines()[2]
        assert len(ticks.get_xdata()) == int(data.loc[sid].mask[:, j].sum())
        assert len(ax.get_lines()[1].get_xdata()) == 25
        assert np.all(ax.get_lines()[1].get_ydata() > 0)


def test_training_curves(model, tmp_path):
    fig = plotting.plot_training(model)
    assert len(fig.axes) == 2  # loss (train, val) and val mse
    assert [ln.get_label() for ln in fig.axes[0].get_lines()] == ["train_loss", "val_loss"]
    assert len(fig.axes[0].get_lines()[0].get_xdata()) == 2  # two epochs
    from_logs = plotting.plot_training(model.log_dir_)
    assert len(from_logs.axes) == 2
    with pytest.raises(lo.LatentODEError, match="empty"):
        plotting.plot_training(pd.DataFrame())


def test_unknown_series_and_channels_are_named(model, data):
    with pytest.raises(lo.LatentODEError, match="999"):
        plotting.plot_predictions(model, data, series=[999])
    with pytest.raises(lo.LatentODEError, match="'zz'"):
        plotting.plot_series(data, channels=["zz"])
