"""Write notebooks/spiral.ipynb and notebooks/clinical.ipynb from the cells below.

The notebooks are generated (without outputs) from this file so that their text and
code are easy to review and edit. To refresh the committed outputs, build, then run
them in full mode (no ``LATENTODE_FAST``), saving outputs in place::

    .venv/bin/python notebooks/build_notebooks.py            # sources only
    .venv/bin/python notebooks/build_notebooks.py --execute  # sources + full-mode outputs

``tests/test_notebooks.py`` runs both in fast mode (``LATENTODE_FAST=1``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = '''\
import os
import time
import warnings
import logging

import numpy as np
import pandas as pd
import torch
import matplotlib as mpl
import matplotlib.pyplot as plt

import latentode as lo
import lightning  # imported here so that its log level can be set below

FAST = os.environ.get("LATENTODE_FAST", "") not in ("", "0")  # the test suite's quick run
torch.set_num_threads(1)  # one thread is fastest for these small models on a shared CPU
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no banner per fit
warnings.filterwarnings("ignore", message=".*(deprecated|does not have many workers).*")
plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3})


def titled(fig, title):
    """Give a lo.plotting figure a title, moving its legend (if any) below the panels."""
    if fig.legends:
        old = fig.legends[0]
        handles, labels = old.legend_handles, [t.get_text() for t in old.texts]
        old.remove()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6),
                   fontsize=8, frameon=False)
    fig.suptitle(title)
    return fig
'''

# ---------------------------------------------------------------------------------------
# spiral.ipynb
# ---------------------------------------------------------------------------------------
SPIRAL = [
    (
        "md",
        """\
# Latent ODEs on irregularly sampled spirals

This notebook fits a latent ODE (Rubanova, Chen & Duvenaud, 2019) to 2-D spirals observed
at random, uneven times, then uses it to fill gaps, forecast with uncertainty, and look
inside its latent space. It ends with the knob that only continuous-time models have:
the solver tolerance, traded for speed at prediction time.

Set `LATENTODE_FAST=1` to run everything on a tiny problem in a few seconds (that is what
the test suite does); the outputs below come from the full run.""",
    ),
    (
        "md",
        """\
## From a ResNet to an ODE

A residual block updates a hidden state by `h ← h + f(h)`. Write the update with a step
size, `h_{k+1} = h_k + Δt · f(h_k)`, and it is one **Euler step** of the ordinary
differential equation `dh/dt = f(h)`. A stack of `N` blocks sharing `f` is `N` Euler steps.
Let `N → ∞` and the network has no layers left: `f` is a *vector field*, and an ODE
solver carries the state from any time to any other time.

Below, `f(h) = A h` is a fixed field whose flow spirals inwards. Over one turn, a "ResNet"
of 8 blocks even spirals the wrong way (outwards); 16 and 64 blocks get closer to the exact
flow. An adaptive solver (Runge–Kutta 4(5), as used by the latent ODE) picks its own step
sizes to meet a tolerance, and is far more accurate for a similar number of evaluations
of `f`.""",
    ),
    ("code", SETUP),
    (
        "code",
        '''\
from scipy.integrate import solve_ivp

A = np.array([[-0.3, -1.0], [1.0, -0.3]])  # f(h) = A h: a spiral turning inwards
h0, T = np.array([2.0, 0.0]), 2 * np.pi  # one turn


def resnet(h, n_blocks):
    """n_blocks residual blocks h <- h + dt * f(h), i.e. Euler steps of dh/dt = f(h)."""
    dt, path = T / n_blocks, [h]
    for _ in range(n_blocks):
        h = h + dt * (A @ h)
        path.append(h)
    return np.array(path)


exact = solve_ivp(lambda t, h: A @ h, (0, T), h0, rtol=1e-10, atol=1e-12, dense_output=True)
adaptive = solve_ivp(lambda t, h: A @ h, (0, T), h0, method="RK45", rtol=1e-3, atol=1e-4)
end = exact.y[:, -1]

fig, ax = plt.subplots(figsize=(5.5, 5))
path = exact.sol(np.linspace(0, T, 400))
ax.plot(*path, "k--", lw=1.2, label="exact flow of dh/dt = f(h)")
for n in (8, 16, 64):
    p = resnet(h0, n)
    err = np.linalg.norm(p[-1] - end)
    ax.plot(*p.T, "o-", ms=3, lw=1, label=f"ResNet, {n} blocks: end error {err:.2f}")
err = np.linalg.norm(adaptive.y[:, -1] - end)
ax.plot(*adaptive.y, "k*", ms=9,
        label=f"adaptive RK45 (rtol 1e-3): {len(adaptive.t) - 1} steps, {adaptive.nfev} f-evals, "
              f"error {err:.4f}")
ax.set(xlabel="h[0]", ylabel="h[1]", title="Residual blocks are Euler steps of an ODE")
ax.set_aspect("equal")
ax.legend(fontsize=7.5, loc="lower left")
plt.show()''',
    ),
    (
        "md",
        """\
## The data: spirals observed at irregular times

`lo.datasets.spiral` draws spirals that wind outward, half of them clockwise and half
counter-clockwise, each from a random starting angle. Every series gets its own random
subset of 20 time points out of 100 on `[0, 6]`, with Gaussian noise (std 0.1) on x and
y. The model must read the direction and the phase off those few noisy points.""",
    ),
    (
        "code",
        """\
N_SERIES, EPOCHS = (40, 2) if FAST else (300, 200)
data = lo.datasets.spiral(n_series=N_SERIES, n_observed=20, noise_std=0.1, seed=0)
train, test = data.split(test_size=0.2, seed=0)
print(data)
print(f"{len(train)} training series, {len(test)} test series")
data.to_dataframe().head()""",
    ),
    (
        "code",
        """\
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.3), width_ratios=(1, 1.3))
for i, s in enumerate(list(data)[:6]):
    truth = data.truth[s.id]
    color = "C0" if truth["direction"] > 0 else "C3"
    ax0.plot(*truth["dense_values"].T, "--", color=color, lw=0.8, alpha=0.7)
    ax0.scatter(*s.values.T, color=color, s=12)
ax0.plot([], [], "C0", label="counter-clockwise")
ax0.plot([], [], "C3", label="clockwise")
ax0.set(xlabel="x", ylabel="y", title="6 spirals: noisy observations, true path dashed")
ax0.set_aspect("equal")
ax0.legend(fontsize=8)

for i, s in enumerate(list(data)[:25]):
    ax1.plot(s.times, np.full(len(s), i), "|", color="k", ms=7)
gaps = np.concatenate([np.diff(s.times) for s in data])
ax1.set(xlabel="time", ylabel="series", title="Observation times of 25 series")
inset = ax1.inset_axes([0.68, 0.08, 0.3, 0.35])
inset.hist(gaps, bins=30, color="0.4")
inset.set_title("gap between points", fontsize=8)
inset.tick_params(labelsize=7)
plt.show()
print(f"gaps between consecutive observations: median {np.median(gaps):.2f}, "
      f"max {gaps.max():.2f} (time units)")""",
    ),
    (
        "md",
        """\
No two series share a time grid, and gaps vary by an order of magnitude. A discrete-time
RNN would need the data binned onto a grid (with most bins empty); a latent ODE takes the
times as they are.

## Fit a latent ODE

The ODE-RNN encoder reads each series backwards and outputs a Gaussian posterior over the
initial latent state `z0` (8 dimensions); a neural ODE carries `z0` forward, and a linear
decoder maps `z(t)` to `(x, y)`. Training maximises an importance-weighted ELBO, with
part of each training series hidden (a random subset of points, or everything after a
random cut) so that the model learns to predict points it did not see. 20 % of the
training series are held out for early stopping.""",
    ),
    (
        "code",
        """\
t0 = time.perf_counter()
model = lo.LatentODE(latent_dim=8, encoder="odernn", seed=0)
model.fit(train, max_epochs=EPOCHS, progress_bar=False)
fit_seconds = time.perf_counter() - t0
print(f"trained {len(model.history_)} epochs in {fit_seconds:.0f} s")
fig = lo.plotting.plot_training(model)
titled(fig, "Latent ODE training on spirals")""",
    ),
    (
        "md",
        """\
## Interpolation: fill in hidden points

For every test spiral, half of its 20 points are hidden; the model sees the other half
and predicts the hidden ones. The baseline connects the visible points with straight
lines (`np.interp`, per channel).""",
    ),
    (
        "code",
        """\
context, hidden = test.subsample(0.5, seed=0)


def values_at(pred, channels=("x", "y")):
    return pred[list(channels)].to_numpy()


def linear_interpolation(context, target):
    return np.concatenate([
        np.stack([np.interp(t.times, c.times, c.values[:, j]) for j in range(2)], axis=1)
        for c, t in zip(context, target)
    ])


y_hidden = np.concatenate([s.values for s in hidden])
interp_lode = model.score(test, task="interp", frac=0.5, seed=0)
mse_linear = float(np.mean((linear_interpolation(context, hidden) - y_hidden) ** 2))
print(f"interpolation MSE: latent ODE {interp_lode['mse']:.3f}, linear {mse_linear:.3f} "
      f"(noise floor {0.1**2:.2f}); 90% band covers {interp_lode['coverage_90']:.0%}")""",
    ),
    (
        "code",
        """\
fig = lo.plotting.plot_predictions(model, context, hidden, series=3, seed=0)
titled(fig, "Interpolation of 3 test spirals from half of their points")""",
    ),
    (
        "md",
        """\
With half of each test spiral hidden, the latent ODE's interpolation MSE is **0.055**,
against **0.362** for linear interpolation: between 6 and 7 times lower, though still
about five times the observation noise alone (variance 0.01). Its 90 % predictive band
holds 89 % of the hidden points, close to the nominal 90 %. In the figure the mean (blue)
stays on the noiseless spiral (dashed) even across long gaps, where straight lines would
cut corners.

## Extrapolation: forecast the second half

Now the model sees each test spiral up to the middle of its observed span and forecasts
the rest. Same `predict` call: times after the context are forecasts. The naive baseline
repeats the last observed value.""",
    ),
    (
        "code",
        """\
past, future = test.split_time(frac=0.5)
extrap_lode = model.score(test, task="extrap", frac=0.5)
y_future = np.concatenate([s.values for s in future])
last_value = np.concatenate([np.repeat(p.values[-1:], len(f), 0) for p, f in zip(past, future)])
mse_last = float(np.mean((last_value - y_future) ** 2))
print(f"forecast MSE: latent ODE {extrap_lode['mse']:.3f}, last value {mse_last:.2f}; "
      f"90% band covers {extrap_lode['coverage_90']:.0%}")
fig = lo.plotting.plot_predictions(model, past, future, series=3, seed=0)
titled(fig, "Forecast of 3 test spirals from the first half of their span")""",
    ),
    (
        "md",
        """\
From the first half alone, the forecast of the second half has MSE **0.067**, against
**11.8** for repeating the last value, and its 90 % band holds 91 % of the future points.
The model has learned the dynamics (which way, how fast, how the radius grows), not just
a smooth curve through the points.

## Baselines: ODE-RNN and GRU-Δt

The ODE-RNN (`lo.ODERNN()`) is the paper's autoregressive model: it reads a series
forwards, lets its hidden state evolve by a neural ODE between observations, and decodes
a prediction at any time from the state it has at that time. GRU-Δt
(`lo.ODERNN(cell="gru_dt")`) is a GRU whose state stays put between observations; its
decoder is told the time elapsed since the last one instead. Both get
the same training data and epochs as the latent ODE and are scored on the same hidden
points.""",
    ),
    (
        "code",
        """\
baselines = {}
for name, est in [("ODE-RNN", lo.ODERNN(seed=0)), ("GRU-Δt", lo.ODERNN(cell="gru_dt", seed=0))]:
    t0 = time.perf_counter()
    est.fit(train, max_epochs=EPOCHS, progress_bar=False)
    baselines[name] = {
        "interp": est.score(test, task="interp", frac=0.5, seed=0),
        "extrap": est.score(test, task="extrap", frac=0.5),
        "seconds": time.perf_counter() - t0,
    }

rows = [("latent ODE", interp_lode, extrap_lode)]
rows += [(name, b["interp"], b["extrap"]) for name, b in baselines.items()]
table = pd.DataFrame(
    {
        "interp MSE": [r[1]["mse"] for r in rows] + [mse_linear, np.nan],
        "interp 90% coverage": [r[1]["coverage_90"] for r in rows] + [np.nan, np.nan],
        "forecast MSE": [r[2]["mse"] for r in rows] + [np.nan, mse_last],
        "forecast 90% coverage": [r[2]["coverage_90"] for r in rows] + [np.nan, np.nan],
    },
    index=[r[0] for r in rows] + ["linear interpolation", "last value"],
)
table.round(3)""",
    ),
    (
        "code",
        """\
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for ax, col in zip(axes, ["interp MSE", "forecast MSE"]):
    vals = table[col].dropna()
    ax.barh(vals.index, vals.to_numpy(), color=["C0"] + ["0.6"] * (len(vals) - 1))
    ax.set_xscale("log")
    ax.set(title=f"{col} (test spirals)", xlabel="MSE, log scale (lower is better)")
    ax.axvline(0.1**2, color="k", ls=":", lw=1)
    ax.text(0.1**2, len(vals) - 0.5, " noise floor", fontsize=8, va="bottom")
    for i, v in enumerate(vals.to_numpy()):
        ax.text(v, i, f" {v:.3g}", va="center", fontsize=8)
    ax.invert_yaxis()
plt.tight_layout()
plt.show()""",
    ),
    (
        "md",
        """\
- **Interpolation**: the latent ODE (0.055) is 6 times better than the ODE-RNN (0.338),
  which does only slightly better than linear interpolation (0.362); GRU-Δt is worse
  (1.16). The
  autoregressive models predict a hidden point only from the points *before* it, while
  the latent ODE's encoder reads the whole series (backwards) and fits one trajectory
  through all visible points.
- **Forecasting**: the ODE-RNN is better than the latent ODE here (MSE 0.042 against
  0.067), and both are far ahead of GRU-Δt (7.62), whose hidden state does not move
  between observations and so cannot carry the rotation forward, and of the last value
  (11.8). Their 90 % bands hold 93 % and 91 % of the future points.

## Inside the latent space

`z0` is a whole trajectory in disguise: solving the ODE from it gives `z(t)` at every
time. Projected on its first two principal components, the posterior-mean latent path of
each test spiral is drawn below, coloured by the true turning direction (which the model
never saw as a label).""",
    ),
    (
        "code",
        """\
fig = lo.plotting.plot_latent(model, test, series=20 if not FAST else 8,
                              color_by="direction", seed=0)
fig.axes[0].set_title("Latent paths z(t) of test spirals (colour: true direction)")
fig""",
    ),
    (
        "code",
        """\
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

z0 = model.encode(test)  # posterior q(z0 | series): mean and std per latent dimension
z_mean = z0[[c for c in z0.columns if not c.endswith("_std")]].drop(columns=test.id_name)
direction = np.array([test.truth[i]["direction"] for i in z0[test.id_name]])
for name, clf in [("logistic regression", LogisticRegression(max_iter=1000)),
                  ("5-nearest neighbours", KNeighborsClassifier(5))]:
    acc = cross_val_score(clf, z_mean, direction, cv=4 if FAST else 5).mean()
    print(f"turning direction from the posterior mean of z0, {name}: "
          f"{acc:.0%} cross-validated accuracy")""",
    ),
    (
        "md",
        """\
Every latent path turns around the origin, and the two directions separate in space:
counter-clockwise spirals (red, +1) circle an inner region, clockwise ones (blue, -1)
mostly an outer ring. That separation is not linear (a ring around a disc), so a logistic
regression on the posterior mean of `z0` finds the direction only 70 % of the time, while
5-nearest neighbours on the same 8 numbers find it 95 % of the time (5-fold
cross-validation over the 60 test series).

## Solver tolerance: speed against accuracy, at prediction time

The ODE solver is adaptive (Dormand–Prince, `dopri5`): it picks its steps to meet a
relative and absolute tolerance. The model was trained at `rtol=1e-3`, but the tolerance
can be changed per call, `model.predict(..., rtol=..., atol=...)`. A looser tolerance means
fewer evaluations of the vector field (NFE) and a faster prediction; a tighter one costs
more. Fixed-step Euler (the "ResNet" of the first figure) is shown for comparison.
The error is measured two ways: the forecast MSE on the held-out points, and the RMS
distance of the predicted mean from a very tight reference solve (`rtol=1e-7`), which
isolates the solver error (same posterior samples in every call).""",
    ),
    (
        "code",
        """\
grid = {s.id: np.linspace(0.0, 6.0, 100) for s in past}  # dense forecast times
y_times = {f.id: f.times for f in future}


def forecast(**solver):
    t0 = time.perf_counter()
    dense = model.predict(past, grid, n_samples=20, seed=0, **solver)
    seconds = time.perf_counter() - t0
    at_future = model.predict(past, y_times, n_samples=20, seed=0, **solver)
    return dense, at_future, seconds


reference, _, _ = forecast(rtol=1e-7, atol=1e-8)
settings = []
for k in range(1, 6):
    settings.append(("dopri5", f"rtol=1e-{k}", dict(rtol=10.0**-k, atol=10.0 ** -(k + 1))))
# Euler's step_size is in the model's internal time, in which the longest training series
# spans 1 (6 time units here): step_size=1/n is n steps over the window
for n in (8, 16, 32, 64, 128):
    settings.append(("euler", f"{n} steps", dict(solver="euler", step_size=1 / n)))
records = []
for method, setting, solver in settings:
    dense, at_future, seconds = forecast(**solver)
    records.append({
        "solver": method,
        "setting": setting,
        "NFE": dense.attrs["nfe"],
        "seconds": seconds,
        "RMS vs reference": float(np.sqrt(np.mean((values_at(dense) - values_at(reference)) ** 2))),
        "forecast MSE": float(np.mean((values_at(at_future) - y_future) ** 2)),
    })
tolerance = pd.DataFrame(records)
tolerance.round(4)""",
    ),
    (
        "code",
        """\
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for method, marker in [("dopri5", "o-"), ("euler", "s--")]:
    part = tolerance[tolerance["solver"] == method]
    label = "dopri5 (adaptive), varying rtol" if method == "dopri5" else "Euler, varying step"
    axes[0].loglog(part["NFE"], part["RMS vs reference"], marker, label=label)
    axes[1].loglog(part["NFE"], part["forecast MSE"], marker, label=label)
    for _, r in part.iterrows():
        for ax, col in zip(axes, ["RMS vs reference", "forecast MSE"]):
            text, offset = r["setting"], (3, 4)
            if method == "dopri5":  # short labels below the points: "1e-3" for rtol=1e-3
                text, offset = text.removeprefix("rtol="), (-6, -11)
            ax.annotate(text, (r["NFE"], r[col]), fontsize=7, xytext=offset,
                        textcoords="offset points")
axes[0].set(xlabel="function evaluations (NFE)", ylabel="RMS distance from rtol=1e-7 solve",
            title="Solver error against cost")
trained = tolerance[tolerance["setting"] == "rtol=1e-3"].iloc[0]
for ax, col in zip(axes, ["RMS vs reference", "forecast MSE"]):
    ax.plot(trained["NFE"], trained[col], "o", ms=12, mfc="none", mec="k",
            label="training setting (rtol=1e-3)")
    ax.xaxis.set_major_formatter(mpl.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(mpl.ticker.NullFormatter())
axes[1].set(xlabel="function evaluations (NFE)", ylabel="forecast MSE (held-out points)",
            title="Forecast error against cost")
for ax in axes:
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()""",
    ),
    (
        "md",
        """\
At the training setting (`rtol=1e-3`) forecasting the 60 test spirals on a 100-point grid
takes **88** evaluations of the vector field, and the solution is within 0.013 (RMS) of
the reference. Loosening to `rtol=1e-2` saves a fifth of them (**70**) for a forecast MSE of
0.101 instead of 0.066; at `rtol=1e-1` (46) the forecast breaks down (MSE 0.83). Tightening
beyond `1e-3` costs up to 2.7 times more (238 at `1e-5`) and changes the forecast MSE only
in the third decimal (0.068): what error is left is the model's, not the solver's.
Fixed-step Euler needs 128 steps (153 evaluations) to reach a forecast MSE of 0.15, worse
than `dopri5` with 70. Wall-clock time moves less than NFE (about 0.03 s to 0.1 s here),
because encoding and sampling cost the same at every tolerance.

## Summary

| | latent ODE | ODE-RNN | GRU-Δt | naive |
|---|---|---|---|---|
| interpolation MSE (half hidden) | **0.055** | 0.338 | 1.16 | 0.362 (linear) |
| forecast MSE (second half) | 0.067 | **0.042** | 7.62 | 11.8 (last value) |

A latent ODE trained for about two minutes on one CPU thread interpolates irregular,
noisy spirals about 6 times better than straight lines and the autoregressive ODE-RNN,
and forecasts half a turn ahead far better than the naive baselines, though less
accurately than the ODE-RNN (0.067 against 0.042). Its latent space separates the two
kinds of dynamics without being told about them, and the solver tolerance is a knob at
prediction time: `rtol=1e-2` costs a fifth fewer function evaluations than training's
`1e-3` (70 against 88), for a forecast MSE of 0.101 instead of 0.066.""",
    ),
]

# ---------------------------------------------------------------------------------------
# clinical.ipynb
# ---------------------------------------------------------------------------------------
CLINICAL = [
    (
        "md",
        """\
# ICU records: forecasting vitals, modelling when things are measured, predicting mortality

Intensive-care records are the hard case for time-series models: dozens of channels,
each measured on its own irregular schedule, most of them missing most of the time, and
the schedule itself is informative (sicker patients are checked more often). This
notebook fits a latent ODE with an ODE-RNN encoder and a **Poisson-process head** that
models the measurement times, then

1. forecasts each patient's vitals for the second day from the first, with bands;
2. compares the learned measurement intensity λ(t) with the true one;
3. predicts in-hospital death from the latent initial state `z0` and compares it with a
   logistic regression on hand-made summary features.

**Data.** By default the records come from `lo.datasets.clinical`, a synthetic generator
shaped like the PhysioNet/CinC 2012 challenge (48 h stays, 34 channels, minute-resolution
times, 5 static descriptors, an in-hospital death label) whose ground truth (latent
physiology, true intensities, true death probability) is known, so every learned quantity
can be checked. To use the real challenge data instead, point `LATENTODE_PHYSIONET` at a
`set-a` folder or `set-a.tar.gz` you downloaded from PhysioNet; the cells that need the
ground truth are then skipped. Set `LATENTODE_FAST=1` for a quick smoke run.""",
    ),
    ("code", SETUP),
    (
        "code",
        """\
PHYSIONET = os.environ.get("LATENTODE_PHYSIONET")  # a set-a folder or .tar.gz, if you have one
N_PATIENTS, EPOCHS = (40, 2) if FAST else (1000, 40)

if PHYSIONET:
    data = lo.datasets.read_physionet2012(PHYSIONET)
    data = data.with_series([s for s in data if s.label is not None][:N_PATIENTS])
else:
    data = lo.datasets.clinical(n_patients=N_PATIENTS, seed=0)
SYNTHETIC = isinstance(data.truth, dict) and "intensity" in data.truth.get(data.ids[0], {})
ID, TIME = data.id_name, data.time_name
# a patient-level split, stratified on the outcome so that both sets have deaths
from sklearn.model_selection import train_test_split

train_ids, test_ids = train_test_split(
    data.ids, test_size=0.3, random_state=0, stratify=[s.label for s in data])
train, test = data.loc[sorted(train_ids)], data.loc[sorted(test_ids)]
print(data)
print(f"{len(train)} training and {len(test)} test patients; statics: {data.static_names}; "
      f"label: {data.label_name} ({np.mean([s.label for s in data]):.1%} positive)")""",
    ),
    (
        "md",
        """\
## Missingness and sampling rates

Each row of the wide table is one time stamp at which *something* was measured; every
other channel is missing there. The share of time stamps at which a channel is present
ranges from about a third (heart rate) to almost none (cholesterol).""",
    ),
    (
        "code",
        """\
frame = data.to_dataframe()
channels = list(data.channels)
present = frame[channels].notna()
per_patient = present.groupby(frame[ID]).sum()  # measurements per patient and channel
rates = pd.DataFrame({
    "share of time stamps": present.mean(),
    "measurements per patient-day": per_patient.mean() / 2,  # 48 h stays
}).sort_values("share of time stamps", ascending=False)
print(f"{len(frame)} time stamps x {len(channels)} channels: "
      f"{present.to_numpy().mean():.1%} of the cells are observed")

fig, ax = plt.subplots(figsize=(11, 3.6))
ax.bar(rates.index, rates["measurements per patient-day"], color="C0")
ax.set_yscale("log")
ax.set(ylabel="measurements per patient-day (log)",
       title="How often each channel is measured (mean over patients)")
ax.tick_params(axis="x", rotation=90, labelsize=8)
ax2 = ax.twinx()
ax2.plot(rates.index, 100 * rates["share of time stamps"], "k.", ms=6)
ax2.set_ylabel("% of time stamps with this channel (dots)")
ax2.set_ylim(0, 100)
ax2.grid(False)
plt.show()
rates.head(8).round(3)""",
    ),
    (
        "code",
        """\
counts = per_patient.sum(axis=1)
labels = pd.Series({s.id: s.label for s in data})
order = counts.sort_values().index
examples = [order[len(order) // 10], order[-len(order) // 10]]  # 10th and 90th percentile
fig = lo.plotting.plot_sampling(data, series=examples, width=11)
titled(fig, "When each channel was measured: a lightly and a heavily measured patient")""",
    ),
    (
        "code",
        """\
hour = np.floor(frame[TIME].to_numpy()).clip(0, 47)
per_hour = present.sum(axis=1).groupby([frame[ID], hour]).sum().unstack(fill_value=0)
per_hour = per_hour.reindex(columns=range(48), fill_value=0)
died = labels.reindex(per_hour.index).to_numpy() == 1

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.6))
for mask, name, color in [(~died, "survived", "C0"), (died, "died in hospital", "C3")]:
    label = f"{name} (n={mask.sum()})"
    ax0.plot(per_hour.columns, per_hour[mask].mean(), color=color, label=label)
    ax1.hist(counts[per_hour.index[mask]], bins=25, alpha=0.6, color=color, density=True,
             label=label)
ax0.set(xlabel="hour since ICU admission", ylabel="values measured per hour",
        title="Sampling rate over the stay, by outcome")
ax1.set(xlabel="values measured in 48 h", ylabel="density", title="Measurements per patient")
for ax in (ax0, ax1):
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
print(f"median values measured in 48 h: survivors {counts[per_hour.index[~died]].median():.0f}, "
      f"non-survivors {counts[per_hour.index[died]].median():.0f}")""",
    ),
    (
        "md",
        """\
Of the 130,990 time stamps × 34 channels of the 1,000 synthetic stays, 8.2 % of the cells
are observed. Heart rate is charted about 24 times per patient-day, most labs once or
twice. Patients who die are measured more often all through their stay (median 470
values in 48 h against 331 for survivors), and more and more often as it goes on: *when*
something is measured says something about the patient. A model that treats missing
values as noise would throw that away; the Poisson head below models it.

## Fit: ODE-RNN encoder, Poisson head, label from z0

`poisson=True` adds a head `λ(z(t))` per channel whose likelihood (an inhomogeneous
Poisson process over each series' own window) is added to the ELBO: the latent state
has to explain *when* values were measured as well as what they were. Because the data
carry a label, the model also learns `P(death | z0, statics)` (`classify="auto"`).
20 % of the training patients are held out for early stopping.""",
    ),
    (
        "code",
        """\
t0 = time.perf_counter()
model = lo.LatentODE(latent_dim=8, encoder="odernn", poisson=True, batch_size=32, seed=0)
model.fit(train, max_epochs=EPOCHS, progress_bar=False)
print(f"trained {len(model.history_)} epochs in {time.perf_counter() - t0:.0f} s")
fig = lo.plotting.plot_training(model)
titled(fig, "Training curves")""",
    ),
    (
        "md",
        """\
## Forecasting the second day from the first

Each test patient's first 24 h are the context; every value measured after 24 h is to be
predicted. Errors are per channel, as a fraction of that channel's variance in the
training data (1.0 = no better than always predicting the training mean). Baselines:
the last value seen in the first 24 h (carried forward; the training mean when the
channel was never measured), and the training mean.""",
    ),
    (
        "code",
        '''\
past, future = test.split_time(at=24.0)
keep = [i for i, (p, f) in enumerate(zip(past, future)) if p.n_observed and f.n_observed]
past, future = past[keep], future[keep]
pred = model.predict(past, {f.id: f.times for f in future}, n_samples=50,
                     quantiles=(0.05, 0.95), seed=0)

train_values = train.to_dataframe()[channels]
mean, var = train_values.mean().to_numpy(), train_values.var().to_numpy()
y = np.concatenate([f.values for f in future])  # [N, C], NaN = not measured


def last_values(series):
    """Each channel's last observed value (the training mean if never observed)."""
    last = pd.DataFrame(series.values).ffill().to_numpy()[-1]
    return np.where(np.isnan(last), mean, last)


locf = np.concatenate([np.repeat(last_values(p)[None], len(f), 0) for p, f in zip(past, future)])
lode = pred[channels].to_numpy()
inside = (y >= pred[[f"{c}_q5" for c in channels]].to_numpy()) & (
    y <= pred[[f"{c}_q95" for c in channels]].to_numpy())


def nmse(guess):
    """Per-channel MSE over the measured values, divided by the training variance."""
    err = np.where(np.isnan(y), np.nan, (guess - y) ** 2) / var
    with warnings.catch_warnings():  # a channel never measured after 24 h gives NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(err, axis=0)


forecast = pd.DataFrame(
    {
        "latent ODE": nmse(lode),
        "last value": nmse(locf),
        "training mean": nmse(np.broadcast_to(mean, y.shape)),
        "90% coverage": (inside & ~np.isnan(y)).sum(0) / np.maximum((~np.isnan(y)).sum(0), 1),
        "values": (~np.isnan(y)).sum(0),
    },
    index=channels,
)
VITALS = [c for c in ("HR", "MAP", "RespRate", "Temp", "SysABP", "GCS") if c in channels][:4]
overall = {k: float(np.nanmean(np.where(np.isnan(y), np.nan, (g - y) ** 2) / var))
           for k, g in [("latent ODE", lode), ("last value", locf),
                        ("training mean", np.broadcast_to(mean, y.shape))]}
print("normalised MSE over every value after 24 h (all channels): "
      + ", ".join(f"{k} {v:.3f}" for k, v in overall.items()))
print(f"90% band coverage over all values: {np.mean(inside[~np.isnan(y)]):.0%}")
forecast.loc[VITALS].round(3)''',
    ),
    (
        "code",
        """\
grid = np.linspace(0, 48, 97)
shown = [f.id for f in future][:3]
dense = model.predict(past.loc[shown], grid, n_samples=50, quantiles=(0.05, 0.95), seed=0)
fig = lo.plotting.plot_predictions(dense, past.loc[shown], future.loc[shown], channels=VITALS)
titled(fig, "Vitals of 3 test patients: first 24 h seen (black), second day forecast "
             "(red = actual), dashed = noiseless truth")""",
    ),
    (
        "md",
        """\
Over every value measured on the second day of the 300 test patients, the latent ODE's
normalised MSE is **0.52**, against **0.76** for carrying the last value forward and 0.99
for the training mean. For the vitals: HR 0.42 (last value 0.52), MAP 0.41 (0.48), RespRate
0.46 (0.62), Temp 0.51 (0.85). The 90 % bands hold 84 % of all values (81–86 % for the
vitals), a little narrower than they should be. The forecasts are smooth paths that
drift towards each patient's own level; the quick wiggles of the true path (dashed)
come from the random part of the patient's physiology, which no forecast can predict
and which the band has to cover.

## The measurement process: learned intensity against the truth

`model.intensity(context, times)` gives the expected number of measurements per hour of
each channel, λ(t), given a patient's record. The generator's true intensity is known
(`data.truth[id]["intensity"]`, per hour on a half-hour grid), so the two can be
compared. Below, for two test patients and four channels: learned λ (blue), true λ
(dashed), and a tick at each actual measurement.""",
    ),
    (
        "code",
        """\
INTENSITY_CHANNELS = [c for c in ("HR", "NIMAP", "Temp", "Lactate") if c in channels]
fig = lo.plotting.plot_intensity(model, test, series=2, channels=INTENSITY_CHANNELS,
                                 truth=None if SYNTHETIC else False, seed=0)
titled(fig, "Measurement intensity λ(t): learned vs true, ticks = measurements")""",
    ),
    (
        "code",
        """\
if SYNTHETIC:
    t_grid = data.truth[test.ids[0]]["dense_times"]
    lam = model.intensity(test, t_grid, seed=0)
    learned = lam[channels].to_numpy().reshape(len(test), len(t_grid), len(channels))  # [N, G, C]
    true = np.stack([data.truth[i]["intensity"] for i in test.ids])  # [N, G, C]
    # baselines: each channel's average rate over training patients, and the patient's
    # own average rate (its count / 48 h), both constant in time
    population = per_patient.loc[train.ids].mean().to_numpy() / 48.0  # [C]
    own = per_patient.loc[test.ids].to_numpy()[:, None, :] / 48.0  # [N, 1, C]

    def rel_error(guess):
        return float(np.abs(guess - true).sum() / true.sum())

    intensity_error = pd.Series({
        "latent ODE λ(t)": rel_error(learned),
        "constant: training mean rate": rel_error(np.broadcast_to(population, true.shape)),
        "constant: patient's own count / 48 h": rel_error(np.broadcast_to(own, true.shape)),
    }, name="relative L1 error of λ")
    log_corr = np.corrcoef(np.log(learned).ravel(), np.log(true).ravel())[0, 1]
    print(f"correlation of log λ, learned vs true (patients x times x channels): {log_corr:.3f}")

    fig, ax = plt.subplots(figsize=(5.5, 5))
    mean_true, mean_learned = true.mean(1), learned.mean(1)  # [N, C] averaged over the stay
    groups = data.truth["groups"]
    for g in dict.fromkeys(groups):
        cols = [j for j, gg in enumerate(groups) if gg == g]
        ax.scatter(mean_true[:, cols].ravel(), mean_learned[:, cols].ravel(), s=6, alpha=0.5,
                   label=g)
    lims = [mean_true.min() * 0.8, mean_true.max() * 1.2]
    ax.plot(lims, lims, "k--", lw=1, label="y = x")
    ax.set(xscale="log", yscale="log", xlabel="true λ (per hour, averaged over 48 h)",
           ylabel="learned λ", title="Per patient and channel: learned vs true rate")
    ax.legend(fontsize=7, ncols=2, title="measurement group", title_fontsize=7)
    plt.show()
    display(intensity_error.round(3).to_frame())
else:
    print("real data: no true intensity to compare with")""",
    ),
    (
        "md",
        """\
The learned intensity follows the true one closely. Averaged over each stay, the
learned rate of every (patient, channel) pair sits on the diagonal across two orders of
magnitude (from one measurement every few days to two per hour), and log λ correlates at
0.98 with the truth over patients × times × channels (mostly differences between
channels). Over the 48 h of the test patients, the relative L1 error of λ(t) is **0.13**,
a little over half that of a constant rate per channel from the training data (0.24) or
of each patient's own count over 48 h (0.23): the model also gets how a patient's rate differs
from the average and how it changes over the stay. It smooths over the fast ups and
downs of the true rate, as in the two patients above.

## Mortality from z0

`model.predict_proba(test)` encodes each test patient's whole 48 h record into the
posterior over `z0` and averages the classifier's probability over samples. The
baseline is what one would do without any sequence model: a logistic regression
(scikit-learn, trained on the same training patients) on summary features: for each
channel its mean, its last value and its number of measurements, plus the static
descriptors; missing means and last values (channel never measured) are imputed with the
training median, and features are standardised. A logistic regression on the posterior
mean of `z0` (plus statics) shows how much of the outcome the latent state holds.""",
    ),
    (
        "code",
        """\
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def summary_features(ds):
    df = ds.to_dataframe().sort_values([ID, TIME])
    g = df.groupby(ID, sort=False)
    feats = pd.concat([
        g[channels].mean().add_suffix("_mean"),
        g[channels].last().add_suffix("_last"),  # last non-missing value
        g[channels].count().add_suffix("_count"),
        g[list(ds.static_names)].first(),
    ], axis=1)
    return feats.loc[ds.ids]


def statics(ds):
    return ds.to_dataframe().groupby(ID)[list(ds.static_names)].first()


def z0_features(ds):
    z = model.encode(ds).set_index(ID)
    z = z[[c for c in z.columns if not c.endswith("_std")]]  # posterior means
    return pd.concat([z, statics(ds)], axis=1).loc[ds.ids]


def logistic():
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                         LogisticRegression(C=0.1, max_iter=5000))


y_train = np.array([s.label for s in train])
y_test = np.array([s.label for s in test])


def logistic_scores(features):
    fitted = logistic().fit(features(train), y_train)
    return fitted.predict_proba(features(test))[:, 1]


scores = {
    "latent ODE (classifier on z0)": model.predict_proba(test, seed=0)["p"].to_numpy(),
    "logistic regression, summary features": logistic_scores(summary_features),
    "logistic regression, z0 mean + statics": logistic_scores(z0_features),
}
if SYNTHETIC:
    scores["oracle: true death probability"] = np.array(
        [data.truth[i]["mortality_probability"] for i in test.ids])

rng = np.random.default_rng(0)
boot = [rng.integers(0, len(y_test), len(y_test)) for _ in range(1000)]
boot = [b for b in boot if 0 < y_test[b].sum() < len(b)]  # resamples with both outcomes


def auc_row(p):
    if len(np.unique(y_test)) < 2:  # possible only in the tiny fast run
        return {"ROC AUC": np.nan, "95% bootstrap interval": "n/a"}
    ci = np.percentile([roc_auc_score(y_test[b], p[b]) for b in boot], [2.5, 97.5])
    return {"ROC AUC": roc_auc_score(y_test, p),
            "95% bootstrap interval": "{:.3f} – {:.3f}".format(*ci)}


auc = pd.DataFrame({name: auc_row(p) for name, p in scores.items()}).T
print(f"{len(y_test)} test patients, {int(y_test.sum())} deaths")
auc""",
    ),
    (
        "code",
        """\
fig, ax = plt.subplots(figsize=(5.5, 5))
for (name, p), style in zip(scores.items(), ["C0-", "C1-", "C2--", "k:"]):
    fpr, tpr, _ = roc_curve(y_test, p)
    ax.plot(fpr, tpr, style, label=f"{name} (AUC {auc.loc[name, 'ROC AUC']:.3f})")
ax.plot([0, 1], [0, 1], color="0.7", lw=1)
ax.set(xlabel="false positive rate", ylabel="true positive rate",
       title=f"In-hospital death, {len(y_test)} test patients")
ax.legend(fontsize=7.5, loc="lower right")
plt.show()""",
    ),
    (
        "md",
        """\
On 300 test patients (45 deaths), the latent ODE's classifier reaches a ROC AUC of
**0.653**, the logistic regression on summary features **0.693**, a logistic regression on
`z0` 0.610, and the true death probability itself 0.758 (no model beats it on average).
The bootstrap intervals are wide (about ±0.08) and overlap, but both models built on `z0`
come out below the summary features: on this data the latent state does not predict
death better than simple means, last values and counts, which already hold the severity
signal and the informative sampling rate (death here depends on severity at 48 h, which
the last values and the measurement counts track directly). The training curves also
show some overfitting: after about 14 epochs the validation loss rises while the training
loss keeps falling; `fit` keeps the checkpoint with the best validation MSE.

## Summary

| | latent ODE | baseline |
|---|---|---|
| second-day forecast, normalised MSE (all channels) | **0.52** | 0.76 (last value), 0.99 (mean) |
| intensity λ(t), relative L1 error | **0.13** | 0.23 (patient's own rate), 0.24 (mean rate) |
| in-hospital death, ROC AUC | 0.653 | **0.693** (logistic regression); 0.758 true probability |

One model, fitted in a few minutes on one CPU thread to 700 stays at minute resolution
without binning them onto a grid, forecasts the second day (all channels together)
about a third better than carrying values forward, and recovers *when* each channel gets
measured to within 13 %. For mortality, a logistic regression on summary features does
better: a latent ODE pays off here on forecasting and on the measurement process, not
on this label.""",
    ),
]


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [
        new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def execute(path: Path, fast: bool = False, timeout: int = 1800) -> float:
    """Run the notebook at ``path`` top to bottom with this Python and save its outputs."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env_backup = dict(os.environ)
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    if fast:
        os.environ["LATENTODE_FAST"] = "1"
    else:
        os.environ.pop("LATENTODE_FAST", None)
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as cwd:
            client = NotebookClient(
                nb,
                timeout=timeout,
                kernel_name="python3",
                record_timing=False,  # no timestamps in the committed notebooks
                resources={"metadata": {"path": cwd}},
            )
            client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=["spiral", "clinical"])
    parser.add_argument("--execute", action="store_true", help="run in full mode, save outputs")
    args = parser.parse_args()
    notebooks = {"spiral": SPIRAL, "clinical": CLINICAL}
    for name in args.names:
        path = HERE / f"{name}.ipynb"
        nbformat.write(build(notebooks[name]), path)
        print(f"wrote {path}")
        if args.execute:
            seconds = execute(path)
            print(f"executed {path} in {seconds:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
