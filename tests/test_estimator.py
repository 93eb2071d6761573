"""The estimators' public surface (``lo.LatentODE``, ``lo.ODERNN``), checked through its contract.

- scikit-learn conventions: ``__init__`` stores parameters only; get/set_params, clone, repr;
- ``fit`` takes a dataset or a DataFrame, fits the scaler on the training series only
  (checked against a hand-computed nanmean / nanstd) and returns ``self``;
- ``predict``, ``sample``, ``encode``, ``intensity``, ``predict_proba`` and ``evaluate``: their
  columns, rows, units and seeding; ``evaluate``'s metrics against an independent computation;
- numeric and datetime (naive and tz-aware) time columns come back as the user gave them;
- ``save``/``load``: one safetensors file with a JSON header; identical predictions after a
  round trip; every corrupt, foreign or malicious file is refused with a ``LatentODEError``
  and nothing in it runs;
- bad calls raise ``LatentODEError`` with a message that names the problem.

Every model is tiny and trained for one or two epochs, once per module.
"""

from __future__ import annotations

import copy
import json
import logging
import struct
import warnings
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from sklearn.base import clone
from sklearn.model_selection import train_test_split

import latentode as lo
from latentode.data.dataset import SeriesDataset, make_series
from latentode.data.scaling import Scaler
from latentode.errors import LatentODEError

TINY = {"latent_dim": 3, "hidden": 16, "encoder_hidden": 8, "batch_size": 8}
TINY_RNN = {"hidden_dim": 8, "hidden": 16, "batch_size": 8}
FIT = {"progress_bar": False}
CHANNELS = ["a", "b"]


# ---- data --------------------------------------------------------------------------------
def _frame(n_series: int, seed: int, first_id: int = 0, n_points: int = 8) -> pd.DataFrame:
    """Wide frame (sid, t, a, b): ``a`` ~ 500 + 1000·sin (always observed), ``b`` ~ 0.01·cos
    (30 % missing), on unique irregular times in [0, 4)."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n_series):
        t = np.sort(rng.choice(np.arange(40) / 10, size=n_points, replace=False))
        phase = rng.uniform(0, 2 * np.pi)
        b = 0.01 * np.cos(t + phase)
        b[rng.random(n_points) < 0.3] = np.nan
        a = 500 + 1000 * np.sin(t + phase)
        parts.append(pd.DataFrame({"sid": f"s{first_id + i:02d}", "t": t, "a": a, "b": b}))
    return pd.concat(parts, ignore_index=True)


def _labelled(n_series: int, seed: int) -> pd.DataFrame:
    df = _frame(n_series, seed)
    codes = df["sid"].str[1:].astype(int)
    df["y"] = (codes % 2).astype(float)
    return df


def _dataset(df: pd.DataFrame, **kwargs) -> SeriesDataset:
    return lo.from_dataframe(df, id_col="sid", time_col="t", **kwargs)


def _observed(df: pd.DataFrame, channels=CHANNELS) -> np.ndarray:
    return np.concatenate([df[c].to_numpy(dtype=float) for c in channels])


# ---- fitted models, each trained once --------------------------------------------------------
@pytest.fixture(scope="module")
def data():
    return {"train": _frame(10, seed=0), "val": _frame(3, seed=1, first_id=50)}


def _fit_main(data, log_dir, **params):
    torch.set_num_threads(1)
    model = lo.LatentODE(**TINY, **params)
    out = model.fit(
        data["train"],
        val=data["val"],
        max_epochs=2,
        log_dir=log_dir,
        id_col="sid",
        time_col="t",
        **FIT,
    )
    assert out is model
    return model


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    """The main model: fitted from DataFrames with column kwargs and an explicit val."""
    return _fit_main(data, tmp_path_factory.mktemp("main"))


@pytest.fixture(scope="module")
def plain(data, tmp_path_factory):
    """The main model without the residual process (the paper's i.i.d. noise): its
    predictive std is never below the observation noise, even next to a context point."""
    return _fit_main(data, tmp_path_factory.mktemp("plain"), residual=False)


@pytest.fixture(scope="module")
def poisson(tmp_path_factory):
    """A Poisson + label model, fitted from a SeriesDataset."""
    torch.set_num_threads(1)
    train = _dataset(_labelled(8, seed=2), label_col="y")
    model = lo.LatentODE(**TINY, poisson=True)
    out = model.fit(train, max_epochs=2, log_dir=tmp_path_factory.mktemp("poisson"), **FIT)
    assert out is model
    return model, train


@pytest.fixture(scope="module")
def odernn(data, tmp_path_factory):
    torch.set_num_threads(1)
    model = lo.ODERNN(cell="odernn", **TINY_RNN)
    return model.fit(
        _dataset(data["train"]),
        val=_dataset(data["val"]),
        max_epochs=2,
        log_dir=tmp_path_factory.mktemp("odernn"),
        **FIT,
    )


@pytest.fixture(scope="module")
def saved(fitted, odernn, poisson, tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    return {
        "latent": fitted.save(folder / "latent.safetensors"),
        "odernn": odernn.save(folder / "odernn.safetensors"),
        "poisson": poisson[0].save(folder / "poisson.safetensors"),
    }


# ---- scikit-learn conventions --------------------------------------------------------------
@pytest.mark.parametrize("cls", [lo.LatentODE, lo.ODERNN])
def test_init_stores_parameters_only(cls) -> None:
    model = cls(seed=7, lr=0.05)
    params = model.get_params()
    assert vars(model) == params
    assert params["seed"] == 7 and params["lr"] == 0.05
    assert not [k for k in vars(model) if k.endswith("_")]


def test_init_does_not_validate_or_build() -> None:
    # sklearn style: a bad value is only noticed by fit
    model = lo.LatentODE(encoder="nope", latent_dim=-1)
    assert model.encoder == "nope" and model.latent_dim == -1


@pytest.mark.parametrize("cls", [lo.LatentODE, lo.ODERNN])
def test_get_set_params_and_clone_round_trip(cls) -> None:
    model = cls()
    assert model.set_params(seed=3, batch_size=4) is model
    assert model.get_params()["seed"] == 3 and model.batch_size == 4
    twin = clone(model)
    assert twin is not model and type(twin) is cls
    assert twin.get_params() == model.get_params()
    again = cls(**model.get_params())
    assert again.get_params() == model.get_params()


def test_set_params_with_a_bad_name_errors() -> None:
    with pytest.raises(ValueError, match="not_a_param"):
        lo.LatentODE().set_params(not_a_param=1)


def test_repr_shows_changed_parameters() -> None:
    assert repr(lo.LatentODE()) == "LatentODE()"
    text = repr(lo.LatentODE(latent_dim=5, poisson=True))
    assert text.startswith("LatentODE(") and "latent_dim=5" in text and "poisson=True" in text
    assert "cell='gru_dt'" in repr(lo.ODERNN(cell="gru_dt"))


def test_clone_of_a_fitted_model_is_unfitted(fitted) -> None:
    twin = clone(fitted)
    assert twin.get_params() == fitted.get_params()
    assert not hasattr(twin, "network_") and not hasattr(twin, "scaler_")


# ---- fit ---------------------------------------------------------------------------------
def test_fit_sets_learned_attributes(fitted) -> None:
    assert fitted.channels_ == CHANNELS
    assert fitted.n_features_in_ == 2
    assert fitted.id_name_ == "sid" and fitted.time_name_ == "t"
    hist = fitted.history_
    assert len(hist) == 2  # one row per epoch
    assert hist["epoch"].tolist() == [0, 1]
    assert {"train_loss", "val_mse"} <= set(hist.columns)
    assert np.isfinite(hist["train_loss"]).all()


def test_scaler_is_fitted_on_the_training_series_only(fitted, data) -> None:
    train = data["train"]
    mean = [np.nanmean(train[c]) for c in CHANNELS]
    std = [np.nanstd(train[c]) for c in CHANNELS]  # population std, as StandardScaler
    np.testing.assert_allclose(fitted.scaler_.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(fitted.scaler_.std, std, rtol=1e-12)
    span = train.groupby("sid")["t"].agg(lambda t: t.max() - t.min()).max()
    assert fitted.scaler_.time_scale == pytest.approx(span)
    assert fitted.scaler_.time_origin == train["t"].min()  # origin="shared", the default
    # the validation series' values would have moved the mean
    both = pd.concat([train, data["val"]])
    assert not np.isclose(fitted.scaler_.mean[0], np.nanmean(both["a"]))


def test_fit_on_fewer_than_three_series_warns_that_there_is_no_population(tmp_path) -> None:
    """Two series warn, pointing at the caller's line; three do not."""
    torch.set_num_threads(1)
    ds = _dataset(_frame(3, seed=1))
    with pytest.warns(UserWarning, match="train has 2 series: the latent path") as caught:
        lo.LatentODE(**TINY).fit(ds[[0, 1]], max_epochs=1, log_dir=tmp_path / "two", **FIT)
    ours = [w for w in caught if "train has" in str(w.message)]
    assert [Path(w.filename).name for w in ours] == ["test_estimator.py"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lo.LatentODE(**TINY).fit(ds, max_epochs=1, log_dir=tmp_path / "three", **FIT)
    assert not [w for w in caught if "train has" in str(w.message)]


def test_fit_without_val_holds_out_and_says_so(caplog, tmp_path) -> None:
    """Also: GRU-Δt fits, predicts and scores."""
    torch.set_num_threads(1)
    caplog.set_level(logging.INFO, logger="latentode")
    df = _frame(12, seed=4)
    ds = _dataset(df)
    model = lo.ODERNN(cell="gru_dt", **TINY_RNN, val_frac=0.25, seed=5)
    assert model.fit(ds, max_epochs=1, log_dir=tmp_path, **FIT) is model
    out = caplog.text
    assert "holding out 3 of 12 training series" in out and "val=" in out
    # truth: the same seeded split by series, done here with scikit-learn directly
    train_idx, _ = train_test_split(np.arange(12), test_size=0.25, random_state=5)
    train_ids = [ds.ids[i] for i in train_idx]
    part = df[df["sid"].isin(train_ids)]
    np.testing.assert_allclose(model.scaler_.mean, [np.nanmean(part[c]) for c in CHANNELS])
    np.testing.assert_allclose(model.scaler_.std, [np.nanstd(part[c]) for c in CHANNELS])
    assert len(model.history_) == 1

    pred = model.predict(ds, times=[0.5, 5.0])
    assert len(pred) == 24 and np.isfinite(pred[["a", "a_std", "b", "b_std"]]).all().all()
    assert (pred[["a_std", "b_std"]] > 0).all().all()
    scores = model.evaluate(ds, task="extrap")
    assert np.isfinite(scores["mse"]) and scores["n_values"] > 0


# ---- predict -----------------------------------------------------------------------------
def test_predict_columns_rows_and_units(plain, data) -> None:
    ctx = data["val"]
    times = [-1.0, 0.55, 2.0, 7.5]  # before, between and after the observed window
    pred = plain.predict(ctx, times=times)
    assert list(pred.columns) == ["sid", "t", "a", "a_std", "b", "b_std"]
    ids = sorted(ctx["sid"].unique())
    assert len(pred) == len(ids) * len(times)
    assert sorted(zip(pred["sid"], pred["t"])) == sorted((i, t) for i in ids for t in times)
    values = pred[["a", "a_std", "b", "b_std"]].to_numpy()
    assert np.isfinite(values).all()
    assert (pred[["a_std", "b_std"]] > 0).all().all()
    # original units: "a" lives around 500 with a spread of ~1000, "b" is ~1e-2
    assert (np.abs(pred["a"] - 500) < 3000).all() and (pred["a_std"] > 10).all()
    assert (np.abs(pred["b"]) < 0.1).all() and (pred["b_std"] < 0.1).all()


def test_predict_works_in_original_units(fitted, data) -> None:
    """Values k·x + c with a scaler fitted to them, and times k_t·t + c_t, give the same
    predictions in the new units: predict undoes the scaling the network saw."""
    k, c, k_t, c_t = 1000.0, 500.0, 60.0, 100.0
    ctx, times = data["val"], np.array([-1.0, 0.7, 2.2, 6.0])
    pred = fitted.predict(ctx, times=times, seed=6, quantiles=(0.05, 0.95))
    moved = copy.deepcopy(fitted)
    sc = fitted.scaler_
    moved.scaler_ = Scaler(
        mean=tuple(k * m + c for m in sc.mean),
        std=tuple(k * s for s in sc.std),
        time_scale=k_t * sc.time_scale,
        time_origin=k_t * sc.time_origin + c_t,
    )
    new_ctx = ctx.assign(t=k_t * ctx["t"] + c_t, a=k * ctx["a"] + c, b=k * ctx["b"] + c)
    new = moved.predict(new_ctx, times=k_t * times + c_t, seed=6, quantiles=(0.05, 0.95))
    np.testing.assert_allclose(new["t"], k_t * pred["t"] + c_t)
    for ch in CHANNELS:
        for col in (ch, f"{ch}_q5", f"{ch}_q95"):
            np.testing.assert_allclose(new[col], k * pred[col] + c, rtol=1e-4, atol=1e-4 * k)
        np.testing.assert_allclose(new[f"{ch}_std"], k * pred[f"{ch}_std"], rtol=1e-4)


def test_predict_quantile_columns_are_ordered(fitted, data) -> None:
    pred = fitted.predict(data["val"], times=[0.0, 1.0, 5.0], quantiles=(0.05, 0.95), seed=1)
    assert list(pred.columns) == [
        "sid", "t", "a", "a_std", "a_q5", "a_q95", "b", "b_std", "b_q5", "b_q95",
    ]  # fmt: skip
    for c in CHANNELS:
        assert (pred[f"{c}_q5"] <= pred[c]).all() and (pred[c] <= pred[f"{c}_q95"]).all()
        assert (pred[f"{c}_q5"] < pred[f"{c}_q95"]).all()
    other = fitted.predict(data["val"], times=[1.0], quantiles=[0.25, 0.5, 0.975])
    assert {"a_q25", "a_q50", "a_q97_5"} <= set(other.columns)


def test_predict_times_as_dict_dataframe_and_none(fitted, data) -> None:
    ctx = data["val"]
    ids = sorted(ctx["sid"].unique())
    by_dict = fitted.predict(ctx, times={ids[0]: [0.1, 3.3], ids[2]: np.array([9.0])}, seed=2)
    assert sorted(zip(by_dict["sid"], by_dict["t"])) == [
        (ids[0], 0.1),
        (ids[0], 3.3),
        (ids[2], 9.0),
    ]
    frame = pd.DataFrame({"sid": [ids[2], ids[0], ids[0]], "t": [9.0, 3.3, 0.1]})
    by_frame = fitted.predict(ctx, times=frame, seed=2)
    key = ["sid", "t"]
    pd.testing.assert_frame_equal(
        by_frame.sort_values(key).reset_index(drop=True),
        by_dict.sort_values(key).reset_index(drop=True),
    )
    own = fitted.predict(ctx)  # times=None: the context's own times
    assert sorted(zip(own["sid"], own["t"])) == sorted(zip(ctx["sid"], ctx["t"]))


def test_predict_accepts_a_dataset_like_the_dataframe(fitted, data) -> None:
    a = fitted.predict(data["val"], times=[0.3, 1.7], seed=4)
    b = fitted.predict(_dataset(data["val"]), times=[0.3, 1.7], seed=4)
    pd.testing.assert_frame_equal(a, b)


def test_predict_is_seeded(fitted, data) -> None:
    ctx, times = data["val"], [0.5, 2.5, 6.0]
    first = fitted.predict(ctx, times=times, seed=11, n_samples=20)
    pd.testing.assert_frame_equal(first, fitted.predict(ctx, times=times, seed=11, n_samples=20))
    other = fitted.predict(ctx, times=times, seed=12, n_samples=20)
    assert not np.allclose(first["a"], other["a"])
    default = fitted.predict(ctx, times=times, n_samples=20)  # the estimator's own seed
    pd.testing.assert_frame_equal(default, fitted.predict(ctx, times, 20, seed=fitted.seed))


def test_a_backcast_under_the_shared_origin_does_not_depend_on_the_other_query_times(
    fitted, data
) -> None:
    """A context that misses a series' first points has its clock origin at the data's
    start (before them), whatever else is asked: the origin depends on the context only."""
    val = data["val"]
    series = val[val["sid"] == val["sid"].iloc[0]]
    ctx = series.iloc[3:]  # the series without its first three points
    start = fitted.scaler_.time_origin
    assert start < ctx["t"].min() <= start + fitted.scaler_.time_scale
    before = (start + ctx["t"].min()) / 2  # between the data's start and the context
    alone = fitted.predict(ctx, times=[before], seed=5, n_samples=16)
    # with a query before the data's start too: an origin that followed the queries moves
    among = fitted.predict(ctx, times=[start - 0.5, before, 9.0], seed=5, n_samples=16)
    assert among["t"].iloc[1] == before
    for ch in CHANNELS:  # the same up to the adaptive solver's tolerance (other step sizes)
        np.testing.assert_allclose(among[ch].iloc[1], alone[ch].iloc[0], rtol=1e-3, atol=1e-5)


def test_predict_reports_nfe_and_takes_solver_overrides(fitted, data) -> None:
    ctx, times = data["val"], [0.0, 2.0, 8.0]
    base = fitted.predict(ctx, times=times)
    nfe = base.attrs["nfe"]
    assert isinstance(nfe, int) and nfe > 0
    loose = fitted.predict(ctx, times=times, rtol=1e-1, atol=1e-1)
    assert 0 < loose.attrs["nfe"] <= nfe
    assert np.isfinite(loose[["a", "b"]]).all().all()
    fixed = fitted.predict(ctx, times=times, solver="rk4")
    assert fixed.attrs["nfe"] > 0 and np.isfinite(fixed[["a", "b"]]).all().all()
    # the override is for that call only
    pd.testing.assert_frame_equal(base, fitted.predict(ctx, times=times))


def test_predict_rejects_unknown_solver_overrides(fitted, data) -> None:
    with pytest.raises(LatentODEError, match="not_an_option"):
        fitted.predict(data["val"], times=[1.0], not_an_option=3)
    with pytest.raises(LatentODEError, match="nope"):
        fitted.predict(data["val"], times=[1.0], solver="nope")


# ---- sample, encode -------------------------------------------------------------------------
def test_sample_rows_and_agreement_with_predict(fitted, data) -> None:
    ctx, times = data["val"], [0.5, 4.5]
    draws = fitted.sample(ctx, times=times, n_samples=5, seed=3)
    assert list(draws.columns) == ["sid", "t", "sample", "a", "b"]
    n_ids = ctx["sid"].nunique()
    assert len(draws) == n_ids * len(times) * 5
    assert sorted(draws["sample"].unique()) == list(range(5))
    assert draws.attrs["nfe"] > 0
    # predict draws z0 in antithetic pairs and sample independently: with one sample
    # they agree; with 5, predict's last two z0 draws mirror its first two
    one = fitted.sample(ctx, times=times, n_samples=1, seed=3).drop(columns="sample")
    pred = fitted.predict(ctx, times=times, n_samples=1, seed=3).sort_values(["sid", "t"])
    # (float32 draws: summing before or after unscaling differs in the last bits)
    np.testing.assert_allclose(one[CHANNELS].to_numpy(), pred[CHANNELS].to_numpy(), rtol=1e-6)
    for antithetic in (True, False):
        _, got = fitted._draw(ctx, times, 5, 3, antithetic=antithetic)
        z0 = torch.cat([out["z0"] for _, out in got.chunks], dim=1)  # [5, N, L]
        paired = torch.allclose(z0[0] + z0[3], z0[1] + z0[4], atol=1e-6)
        assert paired == antithetic
    # sample's draws are a stream: 3 samples are the first 3 of 5 (up to the shared solve)
    first = fitted.sample(ctx, times=times, n_samples=3, seed=3)
    np.testing.assert_allclose(first[CHANNELS], draws[draws["sample"] < 3][CHANNELS], rtol=1e-2)
    noisy = fitted.sample(ctx, times=times, n_samples=5, seed=3, with_noise=True)
    assert not np.allclose(noisy["a"], draws["a"])
    pd.testing.assert_frame_equal(draws, fitted.sample(ctx, times=times, n_samples=5, seed=3))


def test_encode_latent_ode(fitted, data) -> None:
    z = fitted.encode(data["val"])
    latent = [f"z0_{k}" for k in range(3)]
    assert list(z.columns) == ["sid", *latent, *[f"{c}_std" for c in latent]]
    assert z["sid"].tolist() == sorted(data["val"]["sid"].unique())
    assert (z[[f"{c}_std" for c in latent]] > 0).all().all()
    # each series encoded alone gives its row of the batch (no sampling: q's mean and std)
    for sid, rows in data["val"].groupby("sid"):
        alone = fitted.encode(rows).drop(columns="sid").to_numpy()[0]
        row = z.loc[z["sid"] == sid].drop(columns="sid").to_numpy()[0]
        np.testing.assert_allclose(alone, row, rtol=1e-5, atol=1e-6)


def test_encode_odernn(odernn, data) -> None:
    z = odernn.encode(data["val"])
    assert z.shape == (3, 1 + 2 * TINY_RNN["hidden_dim"])
    stds = z[[c for c in z.columns if c.endswith("_std")]].to_numpy()
    assert (stds == 0).all()  # a deterministic state, not a posterior
    # each series encoded alone gives its row of the batch: padding and batching leave
    # no trace in the posterior
    for sid, rows in data["val"].groupby("sid"):
        alone = odernn.encode(rows)
        assert alone["sid"].tolist() == [sid]
        np.testing.assert_allclose(
            alone.drop(columns="sid").to_numpy()[0],
            z.loc[z["sid"] == sid].drop(columns="sid").to_numpy()[0],
            rtol=1e-5,
            atol=1e-6,
        )


# ---- intensity and predict_proba ----------------------------------------------------------
def test_intensity_of_a_poisson_model(poisson) -> None:
    model, train = poisson
    rates = model.intensity(train, times=[0.0, 1.5, 3.0, 6.0], seed=1)
    assert list(rates.columns) == ["sid", "t", *CHANNELS]
    assert len(rates) == len(train) * 4
    lam = rates[CHANNELS].to_numpy()
    assert np.isfinite(lam).all() and (lam > 0).all()
    pd.testing.assert_frame_equal(rates, model.intensity(train, times=[0.0, 1.5, 3.0, 6.0], seed=1))


def test_intensity_needs_a_poisson_model(fitted, odernn, data) -> None:
    for model in (fitted, odernn):
        with pytest.raises(LatentODEError, match="poisson=True"):
            model.intensity(data["val"], times=[1.0])


def test_predict_proba(poisson) -> None:
    model, train = poisson
    assert model.label_name_ == "y"
    proba = model.predict_proba(train, seed=0)
    assert list(proba.columns) == ["sid", "p"]
    assert proba["sid"].tolist() == train.ids
    assert proba["p"].between(0, 1).all()
    pd.testing.assert_frame_equal(proba, model.predict_proba(train, seed=0))
    scores = model.evaluate(train, task="interp", n_samples=5)
    assert 0.0 <= scores["roc_auc"] <= 1.0


def test_predict_proba_needs_labels(fitted, odernn, data) -> None:
    for model in (fitted, odernn):
        with pytest.raises(LatentODEError, match="label"):
            model.predict_proba(data["val"])


def test_poisson_model_predicts_from_a_dataframe_with_its_label_column(poisson) -> None:
    model, _ = poisson
    ctx = _labelled(3, seed=9)
    pred = model.predict(ctx, times=[1.0])
    assert list(pred.columns) == ["sid", "t", "a", "a_std", "b", "b_std"] and len(pred) == 3


# ---- score -------------------------------------------------------------------------------
SCORE_KEYS = {"mse", "mae", "nll", "coverage_90", "n_values", "nfe"}


def _metrics(pred: pd.DataFrame, target: pd.DataFrame) -> dict[str, float]:
    """Metrics computed by hand from predictions and the hidden values (wide frames)."""
    merged = target.merge(pred, on=["sid", "t"], how="left", suffixes=("_true", ""))
    assert len(merged) == len(target)
    y = _observed(merged, [f"{c}_true" for c in CHANNELS])
    m, s = _observed(merged), _observed(merged, [f"{c}_std" for c in CHANNELS])
    lo_q = _observed(merged, [f"{c}_q5" for c in CHANNELS])
    hi_q = _observed(merged, [f"{c}_q95" for c in CHANNELS])
    obs = ~np.isnan(y)
    y, m, s, lo_q, hi_q = y[obs], m[obs], s[obs], lo_q[obs], hi_q[obs]
    return {
        "mse": float(np.mean((y - m) ** 2)),
        "mae": float(np.mean(np.abs(y - m))),
        "nll": float(np.mean(np.log(np.sqrt(2 * np.pi) * s) + 0.5 * ((y - m) / s) ** 2)),
        "coverage_90": float(np.mean((lo_q <= y) & (y <= hi_q))),
        "n_values": int(obs.sum()),
    }


def test_score_interp_against_an_independent_computation(fitted, data) -> None:
    ds = _dataset(data["val"])
    scores = fitted.evaluate(ds, task="interp", frac=0.5, n_samples=20, seed=3)
    assert set(scores) == SCORE_KEYS
    context, target = ds.subsample(0.5, seed=3)
    times = {s.id: s.times for s in target}
    pred = fitted.predict(context, times, n_samples=20, quantiles=(0.05, 0.95), seed=3)
    truth = _metrics(pred, target.to_dataframe())
    assert truth["n_values"] == scores["n_values"] == target.n_observed
    for key in ("mse", "mae", "nll", "coverage_90"):
        assert scores[key] == pytest.approx(truth[key], rel=1e-9), key
    assert scores["nfe"] == pred.attrs["nfe"]


def test_score_extrap_against_a_cut_made_by_hand(fitted, data) -> None:
    df = data["val"]
    scores = fitted.evaluate(df, task="extrap", frac=0.5, n_samples=10, seed=1)
    assert set(scores) == SCORE_KEYS
    span = df.groupby("sid")["t"].transform(lambda t: t.min() + 0.5 * (t.max() - t.min()))
    context, target = df[df["t"] < span], df[df["t"] >= span]
    pred = fitted.predict(
        context, target[["sid", "t"]], n_samples=10, quantiles=(0.05, 0.95), seed=1
    )
    truth = _metrics(pred, target)
    assert truth["n_values"] == scores["n_values"]
    for key in ("mse", "mae", "nll", "coverage_90"):
        assert scores[key] == pytest.approx(truth[key], rel=1e-9), key


def test_score_rejects_an_unknown_task(fitted, data) -> None:
    with pytest.raises(LatentODEError, match="task"):
        fitted.evaluate(data["val"], task="forecast")


# ---- ODE-RNN -------------------------------------------------------------------------------
def test_an_unknown_origin_is_refused(data) -> None:
    with pytest.raises(LatentODEError, match="origin must be one of"):
        lo.LatentODE(**TINY, origin="first").fit(data["train"], id_col="sid", time_col="t")


def test_odernn_fit_predict_score(odernn, data) -> None:
    assert odernn.scaler_.time_origin is None  # each series' clock starts at its context
    assert odernn.channels_ == CHANNELS and len(odernn.history_) == 2
    ctx = data["val"]
    pred = odernn.predict(ctx, times=[-0.5, 1.0, 6.0], quantiles=(0.05, 0.95))
    assert list(pred.columns[:6]) == ["sid", "t", "a", "a_std", "a_q5", "a_q95"]
    assert len(pred) == 9 and np.isfinite(pred.drop(columns="sid")).all().all()
    assert (pred[["a_std", "b_std"]] > 0).all().all()
    # one Gaussian per row: its quantiles are mean ± 1.645 std (std column as calibrated)
    z95 = NormalDist().inv_cdf(0.95)
    for c in CHANNELS:
        np.testing.assert_allclose(pred[f"{c}_q95"] - pred[c], z95 * pred[f"{c}_std"], rtol=1e-4)
        np.testing.assert_allclose(pred[c] - pred[f"{c}_q5"], z95 * pred[f"{c}_std"], rtol=1e-4)
    # one deterministic path: the seed does not matter for the mean and std
    a = odernn.predict(ctx, times=[1.0], seed=1)
    pd.testing.assert_frame_equal(a, odernn.predict(ctx, times=[1.0], seed=2))
    assert a.attrs["nfe"] > 0
    for task in ("interp", "extrap"):
        scores = odernn.evaluate(ctx, task=task, n_samples=5)
        assert set(scores) == SCORE_KEYS and np.isfinite(scores["mse"])


def test_odernn_takes_solver_overrides(odernn, data) -> None:
    base = odernn.predict(data["val"], times=[1.0, 3.0])
    finer = odernn.predict(data["val"], times=[1.0, 3.0], step_size=0.05)
    assert finer.attrs["nfe"] > base.attrs["nfe"]
    adaptive = odernn.predict(data["val"], times=[1.0, 3.0], solver="dopri5", rtol=1e-2)
    assert np.isfinite(adaptive[CHANNELS]).all().all()


# ---- datetimes ------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=[None, "Europe/Berlin"], ids=["naive", "tz"])
def dated(request, tmp_path_factory):
    torch.set_num_threads(1)
    tz = request.param
    df = _frame(6, seed=8)
    start = pd.Timestamp("2024-03-30 20:00", tz=tz)  # spans the DST change in Berlin
    df["t"] = start + pd.to_timedelta(df["t"] * 10, unit="h")  # whole hours
    model = lo.LatentODE(**TINY).fit(
        df,
        max_epochs=1,
        log_dir=tmp_path_factory.mktemp("dated"),
        id_col="sid",
        time_col="t",
        time_unit="h",
        **FIT,
    )
    return model, df, tz


def test_datetime_predictions_come_back_at_the_requested_datetimes(dated) -> None:
    model, df, tz = dated
    times = pd.DatetimeIndex(
        ["2024-03-30 18:00", "2024-03-31 01:30", "2024-03-31 09:15:07", "2024-04-02 00:00"]
    ).tz_localize(tz)  # finer than the hourly training data
    pred = model.predict(df, times=times)
    assert isinstance(pred["t"].dtype, pd.DatetimeTZDtype) == (tz is not None)
    if tz is not None:
        assert str(pred["t"].dt.tz) == tz
    got = pd.DatetimeIndex(pred[pred["sid"] == "s00"]["t"])
    assert got.as_unit("ns").equals(times.as_unit("ns"))  # same instants (any resolution)
    assert np.isfinite(pred[CHANNELS]).all().all()
    draws = model.sample(df, times=times, n_samples=2)
    got = pd.DatetimeIndex(draws[(draws["sid"] == "s00") & (draws["sample"] == 0)]["t"])
    assert got.as_unit("ns").equals(times.as_unit("ns"))


def test_datetime_times_as_a_dataframe_and_as_naive_local_times(dated) -> None:
    model, df, tz = dated
    wall = pd.DatetimeIndex(["2024-03-31 04:45", "2024-03-30 23:00:30"])
    req = pd.DataFrame({"sid": ["s01", "s01"], "t": wall.tz_localize(tz)})
    pred = model.predict(df, times=req, seed=2)
    assert pred["sid"].tolist() == ["s01", "s01"]
    assert sorted(pred["t"]) == sorted(req["t"])
    # naive datetimes are read in the training data's time zone
    naive = model.predict(df, times={"s01": wall}, seed=2)
    pd.testing.assert_frame_equal(naive, pred)


def test_datetime_predictions_at_the_contexts_own_times(dated) -> None:
    model, df, _ = dated
    own = model.predict(df)
    expect = df[["sid", "t"]].sort_values(["sid", "t"]).reset_index(drop=True)
    expect["t"] = expect["t"].dt.as_unit("ns")
    pd.testing.assert_frame_equal(own[["sid", "t"]], expect)


def test_datetime_model_rejects_numeric_times(dated) -> None:
    model, df, _ = dated
    with pytest.raises(LatentODEError, match="datetime"):
        model.predict(df, times=[1.0, 2.0])
    numeric = df.assign(t=np.tile(np.arange(8.0), 6))
    with pytest.raises(LatentODEError, match="datetimes"):
        model.predict(numeric, times=[1.0])


def test_datetime_model_survives_save_and_load(dated, tmp_path) -> None:
    model, df, tz = dated
    times = pd.DatetimeIndex(["2024-03-31 03:00", "2024-04-01 12:00"]).tz_localize(tz)
    loaded = lo.LatentODE.load(model.save(tmp_path / "dated.safetensors"))
    assert loaded.time_axis_ == model.time_axis_
    pd.testing.assert_frame_equal(
        model.predict(df, times=times, seed=1), loaded.predict(df, times=times, seed=1)
    )


# ---- save and load --------------------------------------------------------------------------
def _header(path) -> dict:
    """The JSON header, read from the raw bytes as the safetensors format lays them out."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n])


def test_save_writes_safetensors_with_a_json_header(fitted, saved) -> None:
    path = saved["latent"]
    assert path.suffix == ".safetensors"
    raw_header = _header(path)
    header = json.loads(raw_header["__metadata__"]["latentode"])
    assert header["format"] == "latentode-model" and header["format_version"] == 1
    assert header["library_version"] == lo.__version__
    assert header["estimator"] == "LatentODE"
    assert header["params"] == fitted.get_params()
    assert header["channels"] == CHANNELS
    assert header["scaler"]["mean"] == list(fitted.scaler_.mean)
    assert header["scaler"]["std"] == list(fitted.scaler_.std)
    assert header["time_axis"]["unit"] == "h"
    tensors = {k for k in raw_header if k != "__metadata__"}
    assert tensors == set(fitted.network_.state_dict())
    with safe_open(str(path), framework="pt") as f:
        assert json.loads(f.metadata()["latentode"]) == header


@pytest.mark.parametrize("which", ["latent", "odernn", "poisson"])
def test_save_load_gives_identical_predictions(which, fitted, odernn, poisson, saved, data):
    model = {"latent": fitted, "odernn": odernn, "poisson": poisson[0]}[which]
    cls = type(model)
    loaded = cls.load(saved[which])
    assert type(loaded) is cls
    assert loaded.get_params() == model.get_params()
    assert loaded.channels_ == model.channels_ and loaded.scaler_ == model.scaler_
    ctx, times = data["val"], [-0.5, 1.2, 5.0]
    pd.testing.assert_frame_equal(
        model.predict(ctx, times=times, seed=5, quantiles=(0.05, 0.95)),
        loaded.predict(ctx, times=times, seed=5, quantiles=(0.05, 0.95)),
    )
    if which == "poisson":
        train = poisson[1]
        pd.testing.assert_frame_equal(
            model.intensity(train, times=times), loaded.intensity(train, times=times)
        )
        pd.testing.assert_frame_equal(model.predict_proba(train), loaded.predict_proba(train))


def test_load_of_the_other_estimator_errors_clearly(saved) -> None:
    with pytest.raises(LatentODEError, match=r"ODERNN.*ODERNN\.load"):
        lo.LatentODE.load(saved["odernn"])
    with pytest.raises(LatentODEError, match=r"LatentODE.*LatentODE\.load"):
        lo.ODERNN.load(saved["latent"])


def _rewrite(src, dst, header=None, tensors=None) -> None:
    """Copy a model file, editing its header dict and/or its tensors on the way."""
    state = load_file(str(src))
    with safe_open(str(src), framework="pt") as f:
        head = json.loads(f.metadata()["latentode"])
    if tensors is not None:
        state = tensors(state)
    if header is not None:
        head = header(head)
    save_file(state, str(dst), metadata={"latentode": json.dumps(head)})


def _drop_first(state: dict) -> dict:
    return dict(list(state.items())[1:])


def _reshape_first(state: dict) -> dict:
    key = next(iter(state))
    return {**state, key: torch.zeros(7, 7)}


BROKEN_HEADERS = {
    "other format_version": (lambda h: {**h, "format_version": 99}, "version 99"),
    "other format": (lambda h: {**h, "format": "something-else"}, "something-else"),
    "unknown parameter": (lambda h: {**h, "params": {**h["params"], "bogus": 1}}, "does not"),
    "no channels": (lambda h: {k: v for k, v in h.items() if k != "channels"}, "channels"),
    "no scaler": (lambda h: {k: v for k, v in h.items() if k != "scaler"}, "scaler"),
    "scaler log not true/false": (
        lambda h: {**h, "scaler": {**h["scaler"], "log": ["yes", 0]}},
        "scaler log must be a list of true/false",
    ),
    "scaler log for another channel count": (
        lambda h: {**h, "scaler": {**h["scaler"], "log": [True]}},
        "log has 1 entries for 2 channels",
    ),
    "scaler nonnegative not true/false": (
        lambda h: {**h, "scaler": {**h["scaler"], "nonnegative": [1, 0]}},
        "scaler nonnegative must be a list of true/false",
    ),
    "scaler nonnegative for another channel count": (
        lambda h: {**h, "scaler": {**h["scaler"], "nonnegative": [True, False, True]}},
        "nonnegative has 3 entries for 2 channels",
    ),
    "scaler time_origin not a number": (
        lambda h: {**h, "scaler": {**h["scaler"], "time_origin": "soon"}},
        "scaler time_origin must be a number",
    ),
    "not a dict": (lambda h: [1, 2, 3], "header"),
    "residual for another channel count": (
        lambda h: {**h, "residual": {k: v[:1] for k, v in h["residual"].items()}},
        "residual has 1 entries for 2 channels",
    ),
    "unknown residual kernel": (
        lambda h: {**h, "residual": {**h["residual"], "kernel": ["rbf", "ou"]}},
        "unknown residual kernel",
    ),
    "negative residual lengthscale": (
        lambda h: {**h, "residual": {**h["residual"], "lengthscale": [-1.0, 1.0]}},
        "positive",
    ),
    "negative residual level slope": (
        lambda h: {**h, "residual": {**h["residual"], "level_slope": [-1.0, 0.0]}},
        "level slopes must be finite and >= 0",
    ),
    "residual level slope without its origin": (
        lambda h: {
            **h,
            "residual": {k: v for k, v in h["residual"].items() if k != "level_zero"},
        },
        "level_slope and level_zero come together",
    ),
    "forecast scale for another channel count": (
        lambda h: {**h, "forecast_interval_scale": [1.0, 1.0, 1.0]},
        "forecast_interval_scale has 3 entries",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_HEADERS))
def test_load_refuses_a_broken_header(case, saved, tmp_path) -> None:
    edit, message = BROKEN_HEADERS[case]
    path = tmp_path / "broken.safetensors"
    _rewrite(saved["latent"], path, header=edit)
    with pytest.raises(LatentODEError, match=message) as info:
        lo.LatentODE.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "edit",
    [_drop_first, _reshape_first, lambda s: {**s, "extra": torch.ones(2)}],
    ids=["missing", "reshaped", "extra"],
)
def test_load_refuses_tensors_that_do_not_match(edit, saved, tmp_path) -> None:
    path = tmp_path / "mismatch.safetensors"
    _rewrite(saved["latent"], path, tensors=edit)
    with pytest.raises(LatentODEError, match="does not match"):
        lo.LatentODE.load(path)


def test_load_refuses_missing_truncated_and_foreign_files(saved, tmp_path) -> None:
    with pytest.raises(LatentODEError, match="not found"):
        lo.LatentODE.load(tmp_path / "nowhere.safetensors")

    raw = saved["latent"].read_bytes()
    for n in (0, 5, 100, len(raw) // 2, len(raw) - 1):
        cut = tmp_path / f"cut{n}.safetensors"
        cut.write_bytes(raw[:n])
        with pytest.raises(LatentODEError, match="truncated or corrupt"):
            lo.LatentODE.load(cut)

    noise = tmp_path / "noise.safetensors"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(LatentODEError, match="not a readable"):
        lo.LatentODE.load(noise)

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.ones(3)}, str(plain))
    with pytest.raises(LatentODEError, match="no latentode header"):
        lo.LatentODE.load(plain)

    other_meta = tmp_path / "other.safetensors"
    save_file({"w": torch.ones(3)}, str(other_meta), metadata={"latentode": "{not json"})
    with pytest.raises(LatentODEError, match="no latentode header"):
        lo.LatentODE.load(other_meta)

    with pytest.raises(LatentODEError, match="not a readable"):
        lo.LatentODE.load(tmp_path)  # a folder


def test_load_never_unpickles(write_crafted, tmp_path) -> None:
    path = tmp_path / "model.safetensors"
    marker = write_crafted(path)
    with pytest.raises(LatentODEError):
        lo.LatentODE.load(path)
    assert not marker.exists()


def test_save_needs_a_fitted_model(tmp_path) -> None:
    with pytest.raises(LatentODEError, match="not fitted"):
        lo.LatentODE().save(tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_save_creates_folders_and_leaves_no_temporary_file(fitted, tmp_path) -> None:
    path = fitted.save(tmp_path / "deep" / "er" / "m.safetensors")
    assert path.exists()
    assert [p.name for p in path.parent.iterdir()] == ["m.safetensors"]


# ---- bad calls ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [lo.LatentODE, lo.ODERNN])
@pytest.mark.parametrize(
    "call",
    [
        lambda m, df: m.predict(df),
        lambda m, df: m.sample(df),
        lambda m, df: m.encode(df),
        lambda m, df: m.score(df),
        lambda m, df: m.intensity(df),
        lambda m, df: m.predict_proba(df),
    ],
    ids=["predict", "sample", "encode", "score", "intensity", "predict_proba"],
)
def test_use_before_fit_names_the_class(cls, call, data) -> None:
    with pytest.raises(LatentODEError, match=rf"this {cls.__name__} is not fitted yet.*fit"):
        call(cls(), data["val"])


def test_context_with_other_channels(fitted, data) -> None:
    with pytest.raises(LatentODEError, match=r"missing channel column\(s\) \['b'\]"):
        fitted.predict(data["val"].drop(columns="b"))
    renamed = _dataset(data["val"].rename(columns={"b": "c"}))
    with pytest.raises(LatentODEError, match=r"channels \['a', 'c'\].*\['a', 'b'\]"):
        fitted.predict(renamed)


def test_context_dataframe_missing_id_or_time_column(fitted, data) -> None:
    with pytest.raises(LatentODEError, match="sid"):
        fitted.predict(data["val"].drop(columns="sid"))
    with pytest.raises(LatentODEError, match="'t'"):
        fitted.predict(data["val"].drop(columns="t"))
    with pytest.raises(LatentODEError, match="DataFrame"):
        fitted.predict(data["val"].to_numpy())


def test_times_naming_unknown_ids(fitted, data) -> None:
    with pytest.raises(LatentODEError, match="nobody"):
        fitted.predict(data["val"], times={"nobody": [1.0]})
    with pytest.raises(LatentODEError, match="nobody"):
        fitted.predict(data["val"], times=pd.DataFrame({"sid": ["nobody"], "t": [1.0]}))
    with pytest.raises(LatentODEError, match="columns"):
        fitted.predict(data["val"], times=pd.DataFrame({"id": ["s50"], "time": [1.0]}))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_times_must_be_finite(bad, fitted, data) -> None:
    with pytest.raises(LatentODEError, match="missing or infinite"):
        fitted.predict(data["val"], times=[0.5, bad])
    with pytest.raises(LatentODEError, match="missing or infinite"):
        fitted.predict(data["val"], times={"s50": [bad]})


def test_times_that_are_not_numbers(fitted, data) -> None:
    with pytest.raises(LatentODEError, match="number"):
        fitted.predict(data["val"], times=["soon"])
    with pytest.raises(LatentODEError, match="numbers"):
        fitted.predict(data["val"], times=pd.to_datetime(["2024-01-01"]))


@pytest.mark.parametrize("q", [0.0, 1.0, 1.5, -0.1])
def test_quantiles_must_lie_in_the_open_unit_interval(q, fitted, data) -> None:
    with pytest.raises(LatentODEError, match="quantiles"):
        fitted.predict(data["val"], times=[1.0], quantiles=(q,))


@pytest.mark.parametrize("n", [0, -3])
def test_n_samples_must_be_positive(n, fitted, data) -> None:
    with pytest.raises(LatentODEError, match="n_samples"):
        fitted.predict(data["val"], times=[1.0], n_samples=n)
    with pytest.raises(LatentODEError, match="n_samples"):
        fitted.sample(data["val"], times=[1.0], n_samples=n)


def test_context_series_without_observations(fitted, data) -> None:
    ok = _dataset(data["val"])
    nothing = make_series("empty", np.zeros(0), np.zeros((0, 2)))
    unobserved = make_series("blank", [0.5, 1.0], np.full((2, 2), np.nan))
    for bad in (nothing, unobserved):
        ds = ok.with_series([*ok, bad])
        with pytest.raises(LatentODEError, match=repr(bad.id)):
            fitted.predict(ds, times=[1.0])


def test_fit_with_only_one_point_series(tmp_path) -> None:
    df = pd.DataFrame({"sid": ["x", "y", "z"], "t": [0.0, 1.0, 2.0], "a": [1.0, 2.0, 3.0]})
    with pytest.raises(LatentODEError, match="fewer than 2 time points"):
        lo.LatentODE(**TINY).fit(df, id_col="sid", time_col="t", log_dir=tmp_path, **FIT)


def test_fit_with_classify_but_no_labels(data, tmp_path) -> None:
    with pytest.raises(LatentODEError, match=r"classify=True.*no labels"):
        lo.LatentODE(**TINY, classify=True).fit(
            data["train"], id_col="sid", time_col="t", log_dir=tmp_path, **FIT
        )


def test_fit_with_unknown_encoder_or_cell(data, tmp_path) -> None:
    ds = _dataset(data["train"])
    with pytest.raises(LatentODEError, match=r"encoder='lstm'.*odernn"):
        lo.LatentODE(**TINY, encoder="lstm").fit(ds, log_dir=tmp_path, **FIT)
    with pytest.raises(LatentODEError, match=r"cell='lstm'.*gru_dt"):
        lo.ODERNN(cell="lstm").fit(ds, log_dir=tmp_path, **FIT)


def test_fit_with_bad_inputs(data, tmp_path) -> None:
    with pytest.raises(LatentODEError, match="SeriesDataset or a pandas DataFrame"):
        lo.LatentODE(**TINY).fit(data["train"].to_numpy(), log_dir=tmp_path, **FIT)
    with pytest.raises(LatentODEError, match=r"val has channels \['a'\]"):
        lo.LatentODE(**TINY).fit(
            data["train"],
            val=data["val"].drop(columns="b"),
            id_col="sid",
            time_col="t",
            log_dir=tmp_path,
            **FIT,
        )
    with pytest.raises(LatentODEError, match="sid"):
        lo.LatentODE(**TINY).fit(data["train"], log_dir=tmp_path, **FIT)  # id_col= forgotten


# ---- scikit-learn model selection, lo.load, latent() and the fitted state -------------------
def test_score_is_the_negative_mse_of_evaluate(fitted, data) -> None:
    ds = _dataset(data["val"])
    metrics = fitted.evaluate(ds, task="interp", frac=0.5, n_samples=10, seed=2)
    score = fitted.score(ds, task="interp", frac=0.5, n_samples=10, seed=2)
    assert isinstance(score, float) and score == -metrics["mse"] < 0
    assert fitted.score(ds, None, n_samples=10, seed=2) == score  # sklearn passes y=None


def test_not_fitted_error_is_scikit_learns() -> None:
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError
    from sklearn.utils.validation import check_is_fitted

    with pytest.raises(SklearnNotFittedError) as info:
        lo.LatentODE().predict(_frame(2, seed=0))
    assert isinstance(info.value, lo.NotFittedError) and isinstance(info.value, LatentODEError)
    with pytest.raises(SklearnNotFittedError):
        check_is_fitted(lo.ODERNN())


def test_a_dataset_is_indexed_by_series_like_an_array() -> None:
    """What scikit-learn's CV splitters need: len() and integer/boolean index arrays."""
    from sklearn.utils import _safe_indexing
    from sklearn.utils.validation import _num_samples

    ds = _dataset(_frame(6, seed=0))
    assert _num_samples(ds) == 6
    part = _safe_indexing(ds, np.array([4, 0, 2]))
    assert isinstance(part, SeriesDataset) and part.ids == ["s04", "s00", "s02"]
    assert part.channels == ds.channels and part.time_axis == ds.time_axis
    mask = np.array([True, False] * 3)
    assert _safe_indexing(ds, mask).ids == ["s00", "s02", "s04"]


def test_grid_search_cv_selects_and_refits(tmp_path) -> None:
    from sklearn.model_selection import GridSearchCV, KFold

    torch.set_num_threads(1)
    ds = _dataset(_frame(8, seed=3))
    params = {**TINY, "val_frac": 0.0, "seed": 1}
    search = GridSearchCV(lo.LatentODE(**params), {"latent_dim": [2, 4]}, cv=2)
    assert search.fit(ds, max_epochs=1, progress_bar=False) is search
    assert search.best_params_["latent_dim"] in (2, 4)
    assert search.best_estimator_.latent_dim == search.best_params_["latent_dim"]
    assert len(search.best_estimator_.history_) == 1  # max_epochs reached every fit
    # each split's score is the model's own score on the held-out series: redo one by hand
    train_idx, test_idx = next(KFold(2).split(np.arange(len(ds))))
    model = lo.LatentODE(**{**params, "latent_dim": 2})
    model.fit(ds[train_idx], max_epochs=1, progress_bar=False, log_dir=tmp_path)
    split0 = search.cv_results_["split0_test_score"][search.cv_results_["param_latent_dim"] == 2]
    assert split0[0] == pytest.approx(model.score(ds[test_idx]), rel=1e-6)


def test_lo_load_reads_either_kind(fitted, odernn, saved, data) -> None:
    for key, model in (("latent", fitted), ("odernn", odernn)):
        loaded = lo.load(saved[key])
        assert type(loaded) is type(model)
        pd.testing.assert_frame_equal(
            model.predict(data["val"], seed=4), loaded.predict(data["val"], seed=4)
        )


def _fitted_attributes(model) -> dict:
    return {k: v for k, v in vars(model).items() if k.endswith("_") and not k.startswith("_")}


@pytest.mark.parametrize("which", ["latent", "odernn", "poisson"])
def test_load_restores_every_fitted_attribute(which, fitted, odernn, poisson, saved) -> None:
    model = {"latent": fitted, "odernn": odernn, "poisson": poisson[0]}[which]
    before, after = _fitted_attributes(model), _fitted_attributes(lo.load(saved[which]))
    assert set(after) == set(before)
    assert {"history_", "network_", "scaler_", "channels_", "interval_scale_"} <= set(before)
    for name, value in before.items():
        if name == "network_":
            state = after[name].state_dict()
            assert set(state) == set(value.state_dict())
            for key, tensor in value.state_dict().items():
                assert torch.equal(state[key], tensor), key
        elif name == "history_":
            assert len(value) == 2
            pd.testing.assert_frame_equal(after[name], value)
        else:
            assert after[name] == value, name


def test_latent_matches_the_networks_own_paths(fitted, data) -> None:
    """latent() against z(t) computed here from the network's pieces: encode the context,
    draw each series' z0 from its own stream of the same seed (4 draws ε, then -ε of the
    first 3: antithetic pairs), solve to the query times, average over the draws."""
    from latentode.data.batching import collate
    from latentode.estimator.seeding import stream_seed

    ctx = _dataset(data["val"])
    times = np.array([-0.5, 0.3, 1.7, 4.5])
    frame = fitted.latent(ctx, times=times, n_samples=7, seed=11)
    assert list(frame.columns) == ["sid", "t", "z0", "z1", "z2", "z0_std", "z1_std", "z2_std"]
    assert len(frame) == len(ctx) * len(times)
    targets = [make_series(s.id, times, np.full((len(times), 2), np.nan)) for s in ctx]
    batch = collate(list(ctx), fitted.scaler_, targets)
    net = fitted.network_
    gens = [torch.Generator().manual_seed(stream_seed(11, "z0", s.id)) for s in ctx]
    with torch.no_grad():
        mean, std = net.encode(batch)
        eps = torch.stack([torch.randn((4, mean.shape[1]), generator=g) for g in gens], 1)
        z0 = mean + std * torch.cat([eps, -eps[:3]])  # [S, B, L]
        z, _ = net.latent_paths(z0, batch.target_times)  # [S, B, T, L]
    want_mean = z.mean(0).reshape(-1, 3).numpy()
    want_std = z.std(0, unbiased=False).reshape(-1, 3).numpy()
    np.testing.assert_allclose(frame[["z0", "z1", "z2"]], want_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(frame[["z0_std", "z1_std", "z2_std"]], want_std, atol=1e-5)
    np.testing.assert_allclose(frame["t"], np.tile(times, len(ctx)))


def test_latent_needs_a_latent_state(odernn, data) -> None:
    with pytest.raises(LatentODEError, match="latent state"):
        odernn.latent(data["val"])


@pytest.mark.parametrize("name", ["a_std", "a_q5", "a_q97_5"])
def test_fit_refuses_a_channel_named_like_another_channels_output(name) -> None:
    df = _frame(4, seed=0).rename(columns={"b": name})
    with pytest.raises(LatentODEError, match=rf"channel '{name}'.*channel 'a'.*rename"):
        lo.LatentODE(**TINY).fit(df, max_epochs=1, id_col="sid", time_col="t", **FIT)


def test_fit_refuses_a_channel_that_cannot_be_scaled(tmp_path) -> None:
    df = _frame(4, seed=0)
    df.loc[3, "b"] = 1e300  # its square overflows float64
    with pytest.raises(LatentODEError, match=r"channel 'b' cannot be scaled.*1e\+300"):
        lo.LatentODE(**TINY).fit(
            df, max_epochs=1, log_dir=tmp_path, id_col="sid", time_col="t", **FIT
        )
    assert not (tmp_path / "checkpoints").exists()  # refused before any training


def test_files_written_before_a_parameter_existed_load_with_what_it_meant(saved, tmp_path):
    """A file without ``residual``/``label_*`` was fitted without a residual process and
    with the z0 MLP head at label weight 1: get_params of the loaded model says so, and
    the model predicts as the file's network does (the network comes from its config)."""
    from latentode.estimator.estimators import PARAMS_BEFORE_THEY_EXISTED

    old_keys = PARAMS_BEFORE_THEY_EXISTED["LatentODE"]
    old = tmp_path / "old.safetensors"
    _rewrite(
        saved["latent"],
        old,
        header=lambda h: {
            **h,
            "params": {k: v for k, v in h["params"].items() if k not in old_keys},
        },
    )
    params = lo.LatentODE.load(old).get_params()
    assert {k: params[k] for k in old_keys} == {
        "residual": False,
        "label_weight": 1.0,
        "label_readout": "z0",
        "label_hidden": None,
    }
    current = lo.LatentODE.load(saved["latent"]).get_params()
    assert {k: current[k] for k in old_keys} == {
        k: lo.LatentODE().get_params()[k] for k in old_keys
    }
