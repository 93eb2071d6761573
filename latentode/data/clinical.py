"""ICU-style synthetic patients shaped like PhysioNet 2012, with a known latent state.

A patient's physiology is a 4-dimensional latent path ``z(t)`` over the first 48 hours
in the unit: overall *severity* and three organ systems (circulation, respiration,
kidney). Severity is an Ornstein–Uhlenbeck process pulled towards a patient-specific
mean that drifts linearly (deterioration or recovery); each organ dimension is pulled
towards a patient-specific multiple of severity. Every channel is a noisy function of
``z``, measured at times of an inhomogeneous Poisson process whose intensity rises with
severity (sicker patients are measured more often), so *when* something is measured
carries information, as in real ICU data. In-hospital death is Bernoulli with a
logistic probability of the severity at 48 h.

All the equations are in :func:`clinical`; the channel table is :data:`CHANNELS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from latentode.data.dataset import SeriesDataset, make_series
from latentode.data.time_axis import TimeAxis
from latentode.errors import LatentODEError

HOURS = 48.0
MINUTES_PER_HOUR = 60
_STAY_MINUTES = 48 * MINUTES_PER_HOUR
LATENT_NAMES = ("severity", "circulation", "respiration", "kidney")
STATIC_NAMES = ("Age", "Gender", "Height", "ICUType", "Weight")
LABEL_NAME = "In-hospital_death"


@dataclass(frozen=True)
class MeasurementGroup:
    """Channels measured together (a vital-signs check, a blood panel) at one Poisson process.

    Intensity per hour: ``λ_g(t) = rate · exp(gamma · severity(t))``.
    """

    name: str
    rate: float  # events per hour at severity 0
    gamma: float  # log-intensity increase per unit of severity


@dataclass(frozen=True)
class Channel:
    """One measured quantity: ``η = level + loadings·z + noise·ε``; value = η, or exp(η) if log.

    Values are clipped to ``[low, high]`` and rounded to ``decimals`` like charted data.
    At each event of its group the channel is measured with probability ``share``.
    """

    name: str
    unit: str
    group: str
    level: float
    loadings: tuple[float, float, float, float]  # on (severity, circulation, respiration, kidney)
    noise: float
    log: bool
    low: float
    high: float
    decimals: int
    share: float = 1.0


GROUPS: tuple[MeasurementGroup, ...] = (
    MeasurementGroup("vitals", 1.0, 0.3),  # hourly bedside monitor charting
    MeasurementGroup("urine", 0.8, 0.2),
    MeasurementGroup("cuff", 0.2, 0.2),  # non-invasive blood pressure
    MeasurementGroup("nursing", 0.25, 0.3),  # temperature, neuro and ventilator checks
    MeasurementGroup("blood_gas", 1 / 11, 0.6),
    MeasurementGroup("lactate", 1 / 15, 0.7),
    MeasurementGroup("chemistry", 1 / 15, 0.4),
    MeasurementGroup("blood_count", 1 / 16, 0.4),
    MeasurementGroup("liver", 1 / 17, 0.3),
    MeasurementGroup("troponin", 1 / 19, 0.4),
    MeasurementGroup("lipids", 1 / 21, 0.0),
)

_LN = np.log
CHANNELS: tuple[Channel, ...] = (
    # name, unit, group, level, loadings (sev, circ, resp, kidney), noise, log, low, high, dec
    Channel("HR", "bpm", "vitals", 88.0, (4.0, 8.0, 3.0, 0.0), 5.0, False, 30, 220, 0),
    Channel("RespRate", "bpm", "vitals", 19.0, (1.5, 0.0, 3.5, 0.0), 2.0, False, 4, 60, 0, 0.35),
    Channel("SysABP", "mmHg", "vitals", 120.0, (-4.0, -15.0, 0, 0), 6.0, False, 40, 240, 0, 0.85),
    Channel("DiasABP", "mmHg", "vitals", 60.0, (-2.0, -8.0, 0, 0), 4.0, False, 15, 140, 0, 0.85),
    Channel("MAP", "mmHg", "vitals", 80.0, (-3.0, -10.0, 0, 0), 4.0, False, 25, 180, 0, 0.8),
    Channel("NISysABP", "mmHg", "cuff", 118.0, (-4.0, -14.0, 0, 0), 8.0, False, 40, 240, 0),
    Channel("NIDiasABP", "mmHg", "cuff", 60.0, (-2.0, -7.0, 0, 0), 6.0, False, 15, 140, 0),
    Channel("NIMAP", "mmHg", "cuff", 78.0, (-3.0, -9.0, 0, 0), 6.0, False, 25, 180, 2, 0.9),
    Channel("Urine", "mL", "urine", _LN(100), (-0.15, -0.3, 0, -0.5), 0.5, True, 0, 2000, 0),
    Channel("Temp", "°C", "nursing", 37.0, (0.3, 0.2, 0.1, 0.0), 0.3, False, 32, 42, 1),
    Channel("GCS", "", "nursing", 11.0, (-1.5, -0.5, -0.5, 0.0), 1.0, False, 3, 15, 0, 0.9),
    Channel("FiO2", "", "nursing", 0.45, (0.03, 0.0, 0.1, 0.0), 0.05, False, 0.21, 1, 2, 0.7),
    Channel("pH", "", "blood_gas", 7.39, (-0.02, -0.02, -0.02, -0.015), 0.03, False, 6.8, 7.8, 2),
    Channel("PaO2", "mmHg", "blood_gas", _LN(130), (-0.05, 0, -0.2, 0), 0.2, True, 30, 500, 0),
    Channel("PaCO2", "mmHg", "blood_gas", 40.0, (0.0, 0.0, 4.0, 0.0), 4.0, False, 15, 100, 0),
    Channel("SaO2", "%", "blood_gas", 97.0, (-0.5, 0.0, -2.0, 0.0), 1.0, False, 60, 100, 0, 0.8),
    Channel("Lactate", "mmol/L", "lactate", _LN(1.8), (0.25, 0.3, 0, 0), 0.25, True, 0.3, 30, 1),
    Channel("Na", "mEq/L", "chemistry", 139.0, (0.0, 0.0, 0.0, 1.0), 2.5, False, 110, 170, 0),
    Channel("K", "mEq/L", "chemistry", 4.1, (0.0, 0.0, 0.0, 0.35), 0.35, False, 2, 8, 1),
    Channel("HCO3", "mmol/L", "chemistry", 24.0, (-1.0, -1.0, 0.0, -2.0), 2.0, False, 5, 50, 0),
    Channel("BUN", "mg/dL", "chemistry", _LN(25), (0.1, 0.0, 0.0, 0.4), 0.12, True, 2, 200, 0),
    Channel(
        "Creatinine", "mg/dL", "chemistry", _LN(1.2), (0.05, 0, 0, 0.45), 0.1, True, 0.1, 15, 1
    ),
    Channel("Glucose", "mg/dL", "chemistry", _LN(135), (0.08, 0, 0, 0), 0.2, True, 30, 800, 0),
    Channel("Mg", "mmol/L", "chemistry", 2.0, (0.0, 0.0, 0.0, 0.1), 0.2, False, 0.5, 5, 1, 0.85),
    Channel("HCT", "%", "blood_count", 30.0, (-1.5, -1.0, 0.0, 0.0), 1.5, False, 10, 60, 1),
    Channel("WBC", "cells/nL", "blood_count", _LN(11), (0.2, 0, 0, 0), 0.15, True, 0.1, 100, 1),
    Channel(
        "Platelets", "cells/nL", "blood_count", _LN(200), (-0.2, 0, 0, 0), 0.1, True, 5, 1000, 0
    ),
    Channel("ALP", "IU/L", "liver", _LN(90), (0.1, 0.0, 0.0, 0.0), 0.15, True, 10, 2000, 0, 0.9),
    Channel("ALT", "IU/L", "liver", _LN(40), (0.3, 0.2, 0.0, 0.0), 0.3, True, 3, 5000, 0),
    Channel("AST", "IU/L", "liver", _LN(50), (0.3, 0.25, 0.0, 0.0), 0.3, True, 4, 8000, 0),
    Channel("Bilirubin", "mg/dL", "liver", _LN(0.9), (0.3, 0, 0, 0), 0.2, True, 0.1, 40, 1),
    Channel("Albumin", "g/dL", "liver", 2.9, (-0.25, 0.0, 0.0, 0.0), 0.2, False, 1, 5.5, 1, 0.85),
    Channel("TroponinT", "μg/L", "troponin", _LN(0.1), (0.4, 0.4, 0, 0.2), 0.4, True, 0.01, 25, 2),
    Channel("Cholesterol", "mg/dL", "lipids", _LN(155), (-0.05, 0, 0, 0), 0.1, True, 50, 400, 0),
)

# Latent dynamics (rates per hour; every latent dimension has unit-order spread across patients).
_SEVERITY_REVERSION = 1 / 8  # θ of the severity OU process
_ORGAN_REVERSION = 1 / 6  # θ of the organ OU processes
_LATENT_SPREAD = 0.35  # stationary standard deviation of each OU process around its mean
_ORGAN_COUPLING = np.array([0.6, 0.5, 0.7])  # organ mean = coupling · severity + susceptibility
_ICU_SEVERITY = np.array([0.0, -0.5, 0.25, 0.0])  # Coronary, Cardiac Surgery, Medical, Surgical
_ICU_SHARES = np.array([0.15, 0.21, 0.36, 0.28])
# Mortality: P(death) = sigmoid(intercept + slope · severity(48 h)); intercept set for ~14 %.
MORTALITY_INTERCEPT = -2.52
MORTALITY_SLOPE = 1.4


def clinical(
    n_patients: int = 200,
    seed: int = 0,
    grid_step: float = 0.5,
) -> SeriesDataset:
    """Synthetic ICU stays like PhysioNet 2012: 34 channels, informative sampling, a label.

    Each patient covers 48 hours (unit ``"h"``); measurement times are recorded to the
    minute (multiples of 1/60 h in ``[0, 48)``, unique per patient, several channels per
    time stamp). Model, per patient (rates per hour, ``t`` in hours):

    - latent ``z = (s, c, r, k)``: severity ``s`` follows
      ``ds = (m(t) - s)/8 dt + σ dW`` with ``m(t) = baseline + trend·t/48``, the baseline
      depending on age and ICU type; each organ dimension ``x`` follows
      ``dx = (ρ·s + u - x)/6 dt + σ dW`` with a patient susceptibility ``u``. The path is
      simulated exactly on a grid of step ``grid_step`` and is piecewise linear between.
    - channel ``ch`` in measurement group ``g`` (see :data:`GROUPS`, :data:`CHANNELS`):
      measured with intensity ``λ_ch(t) = share_ch · rate_g · exp(gamma_g · s(t))``, the
      group's events drawn by thinning a homogeneous process; value
      ``η = level + loadings·z(t) + noise·ε`` (``exp(η)`` for skewed labs), clipped to a
      physiological range and rounded as charted. Vitals (HR, ABP, Urine) come about
      hourly, nursing checks (cuff BP, Temp, GCS, FiO2) every 3–5 h, labs every 6–24 h.
    - ``P(In-hospital_death) = sigmoid(-2.52 + 1.4·s(48))`` (about 14 % of patients).
    - static ``Age`` (years), ``Gender`` (1 male, 0 female), ``Height`` (cm, NaN for
      about 30 % of patients, as often in PhysioNet), ``ICUType`` (1 coronary care,
      2 cardiac surgery recovery, 3 medical, 4 surgical), ``Weight`` (kg, at admission).

    Args:
        n_patients: number of patients.
        seed: seed of ``numpy.random.default_rng``.
        grid_step: step of the ground-truth grid, in hours (must divide 48 evenly).

    Returns:
        A :class:`SeriesDataset` with ids ``0 .. n_patients-1`` (columns ``"id"`` and
        ``"time"``, unit ``"h"``), the 34 channels of :data:`CHANNELS` in that order,
        ``static_names`` ``("Age", "Gender", "Height", "ICUType", "Weight")`` and label
        ``"In-hospital_death"`` (0/1). ``truth`` maps each id to (G = 48/grid_step + 1
        grid points, T the patient's time stamps, C = 34 channels, D = 4)::

            "dense_times":  float64 [G]     the grid, hours
            "latent":       float64 [G, D]  z on the grid (severity, circulation, ...)
            "intensity":    float64 [G, C]  λ_ch on the grid, measurements per hour
            "dense_values": float64 [G, C]  noiseless channel values on the grid
            "values":       float64 [T, C]  noiseless values of every channel at the
                                            patient's time stamps (before clipping/rounding)
            "mortality_probability": float  P(In-hospital_death)

        and the dataset-level entries ``"channels"`` (tuple [C]), ``"units"`` (dict
        channel → unit), ``"groups"`` (tuple [C] of group names), ``"base_rates"``
        (float64 [C], ``share·rate``: λ per hour at severity 0), ``"gamma"`` (float64 [C]),
        ``"latent_names"`` (tuple [D]) and ``"grid_step"`` (hours).

    Raises:
        LatentODEError: if ``n_patients < 1`` or ``grid_step`` does not divide 48 hours.
    """
    n_steps = HOURS / grid_step if grid_step > 0 else 0.0
    if n_patients < 1 or n_steps < 1 or abs(n_steps - round(n_steps)) > 1e-9:
        raise LatentODEError(
            f"clinical needs n_patients >= 1 and a grid_step that divides 48 h; got "
            f"n_patients={n_patients}, grid_step={grid_step}."
        )
    rng = np.random.default_rng(seed)
    static = _static_descriptors(rng, n_patients)  # [N, 5]
    grid = np.linspace(0.0, HOURS, round(n_steps) + 1)  # [G]
    latent = _latent_paths(rng, static, grid)  # [N, G, D]
    severity = latent[:, :, 0]  # [N, G]

    group_index = {g.name: i for i, g in enumerate(GROUPS)}
    ch_group = np.array([group_index[c.group] for c in CHANNELS])  # [C]
    ch_share = np.array([c.share for c in CHANNELS])  # [C]
    group_rate = np.array([g.rate for g in GROUPS])  # [Gr]
    group_gamma = np.array([g.gamma for g in GROUPS])  # [Gr]
    base_rates = ch_share * group_rate[ch_group]  # [C]
    gamma = group_gamma[ch_group]  # [C]

    p_idx, minute, ch = _measurement_times(rng, severity, grid, group_rate, group_gamma, ch_group)
    # every (patient, minute) with a measurement is one time stamp of that patient
    stamp_key, row_of = np.unique(p_idx * _STAY_MINUTES + minute, return_inverse=True)
    row_patient = stamp_key // _STAY_MINUTES  # [R], sorted
    row_time = (stamp_key % _STAY_MINUTES) / MINUTES_PER_HOUR  # [R] hours
    row_latent = _interpolate(latent, grid, row_patient, row_time)  # [R, D]
    row_clean = _channel_means(row_latent)  # [R, C]
    values = np.full(row_clean.shape, np.nan)  # [R, C]
    values[row_of, ch] = _observe(rng, row_latent[row_of], ch)

    final = severity[:, -1]
    p_death = 1.0 / (1.0 + np.exp(-(MORTALITY_INTERCEPT + MORTALITY_SLOPE * final)))  # [N]
    death = (rng.random(n_patients) < p_death).astype(np.float64)
    intensity = base_rates * np.exp(gamma * severity[:, :, None])  # [N, G, C]
    dense_values = _channel_means(latent)  # [N, G, C]

    bounds = np.searchsorted(row_patient, np.arange(n_patients + 1))
    series, truth = [], {}
    for i in range(n_patients):
        rows = slice(bounds[i], bounds[i + 1])
        series.append(
            make_series(i, row_time[rows], values[rows], static=static[i], label=death[i])
        )
        truth[i] = {
            "dense_times": grid,
            "latent": latent[i],
            "intensity": intensity[i],
            "dense_values": dense_values[i],
            "values": row_clean[rows],
            "mortality_probability": float(p_death[i]),
        }
    truth.update(
        channels=tuple(c.name for c in CHANNELS),
        units={c.name: c.unit for c in CHANNELS},
        groups=tuple(c.group for c in CHANNELS),
        base_rates=base_rates,
        gamma=gamma,
        latent_names=LATENT_NAMES,
        grid_step=float(grid_step),
    )
    return SeriesDataset(
        series,
        channels=[c.name for c in CHANNELS],
        time_axis=TimeAxis(unit="h"),
        static_names=STATIC_NAMES,
        label_name=LABEL_NAME,
        id_name="id",
        time_name="time",
        truth=truth,
    )


def _static_descriptors(rng: np.random.Generator, n: int) -> np.ndarray:
    """Age, Gender, Height, ICUType, Weight [N, 5], PhysioNet-like marginals."""
    age = np.round(np.clip(rng.normal(64.0, 17.0, n), 16, 90))
    male = (rng.random(n) < 0.56).astype(np.float64)
    height = np.round(np.where(male == 1, rng.normal(176, 8, n), rng.normal(163, 7, n)), 1)
    height[rng.random(n) < 0.3] = np.nan
    bmi = np.exp(rng.normal(np.log(27.5), 0.2, n))
    weight = np.round(bmi * (np.nan_to_num(height, nan=170.0) / 100) ** 2, 1)
    icu = 1.0 + rng.choice(4, size=n, p=_ICU_SHARES)
    return np.stack([age, male, height, icu, weight], axis=1)


def _latent_paths(rng: np.random.Generator, static: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Exact OU simulation of z = (severity, organs) on ``grid`` [G] for each patient: [N, G, 4]."""
    n = static.shape[0]
    age, icu = static[:, 0], static[:, 3].astype(int) - 1
    baseline = 0.3 * (age - 64.0) / 17.0 + _ICU_SEVERITY[icu] + rng.normal(0.0, 0.75, n)  # [N]
    trend = rng.normal(0.0, 0.8, n)  # [N] change of the severity mean over 48 h
    susceptibility = rng.normal(0.0, 0.6, (n, 3))  # [N, 3]
    step = grid[1] - grid[0]
    keep = np.exp(-step * np.array([_SEVERITY_REVERSION, *[_ORGAN_REVERSION] * 3]))  # [4]
    shock_sd = _LATENT_SPREAD * np.sqrt(1.0 - keep**2)  # [4]
    shocks = rng.standard_normal((len(grid), n, 4))  # [G, N, 4]

    z = np.empty((len(grid), n, 4))  # [G, N, 4]
    z[0, :, 0] = baseline + _LATENT_SPREAD * shocks[0, :, 0]
    z[0, :, 1:] = _ORGAN_COUPLING * z[0, :, :1] + susceptibility + _LATENT_SPREAD * shocks[0, :, 1:]
    for k in range(len(grid) - 1):
        target = np.empty((n, 4))
        target[:, 0] = baseline + trend * (grid[k] + step / 2) / HOURS
        target[:, 1:] = _ORGAN_COUPLING * z[k, :, :1] + susceptibility
        z[k + 1] = target + (z[k] - target) * keep + shock_sd * shocks[k + 1]
    return z.transpose(1, 0, 2)


def _interpolate(
    path: np.ndarray, grid: np.ndarray, patient: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Piecewise-linear ``path`` [N, G, D] at times ``t`` [M] of rows ``patient`` [M] → [M, D]."""
    step = grid[1] - grid[0]
    pos = np.clip(t / step, 0.0, len(grid) - 1.0)
    left = np.minimum(pos.astype(np.int64), len(grid) - 2)
    frac = (pos - left)[:, None]
    return path[patient, left] * (1.0 - frac) + path[patient, left + 1] * frac


def _channel_means(latent: np.ndarray) -> np.ndarray:
    """Noiseless channel values [..., C] from latent states [..., D] (exp for log channels)."""
    level = np.array([c.level for c in CHANNELS])  # [C]
    loadings = np.array([c.loadings for c in CHANNELS])  # [C, D]
    is_log = np.array([c.log for c in CHANNELS])  # [C]
    eta = level + latent @ loadings.T  # [..., C]
    return np.where(is_log, np.exp(np.where(is_log, eta, 0.0)), eta)


def _observe(rng: np.random.Generator, latent: np.ndarray, ch: np.ndarray) -> np.ndarray:
    """Noisy, clipped, rounded values of channels ``ch`` [M] at latent states [M, D]: [M]."""
    level = np.array([c.level for c in CHANNELS])[ch]
    loadings = np.array([c.loadings for c in CHANNELS])[ch]  # [M, D]
    noise = np.array([c.noise for c in CHANNELS])[ch]
    is_log = np.array([c.log for c in CHANNELS])[ch]
    eta = level + np.einsum("md,md->m", loadings, latent) + noise * rng.standard_normal(len(ch))
    value = np.where(is_log, np.exp(np.where(is_log, eta, 0.0)), eta)
    low = np.array([c.low for c in CHANNELS], dtype=np.float64)[ch]
    high = np.array([c.high for c in CHANNELS], dtype=np.float64)[ch]
    scale = 10.0 ** np.array([c.decimals for c in CHANNELS], dtype=np.float64)[ch]
    return np.round(np.clip(value, low, high) * scale) / scale


def _measurement_times(
    rng: np.random.Generator,
    severity: np.ndarray,
    grid: np.ndarray,
    group_rate: np.ndarray,
    group_gamma: np.ndarray,
    ch_group: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw every measurement: (patient [M], minute [M], channel [M]), sorted by patient.

    Group events come from thinning a homogeneous process at each patient's peak
    intensity; times are floored to the minute (events of one group in the same minute
    merge); at each event the group's channels with ``share`` above one uniform draw are measured.
    """
    n, n_groups = severity.shape[0], len(group_rate)
    peak = group_rate * np.exp(group_gamma * severity.max(axis=1)[:, None])  # [N, Gr]
    counts = rng.poisson(peak * HOURS).ravel()  # [N * Gr]
    patient = np.repeat(np.repeat(np.arange(n), n_groups), counts)  # [E]
    group = np.repeat(np.tile(np.arange(n_groups), n), counts)  # [E]
    t = rng.uniform(0.0, HOURS, counts.sum())  # [E]
    s_t = _interpolate(severity[:, :, None], grid, patient, t)[:, 0]  # [E]
    smax = severity.max(axis=1)[patient]
    accept = rng.random(len(t)) < np.exp(group_gamma[group] * (s_t - smax))
    minute = np.floor(t[accept] * MINUTES_PER_HOUR).astype(np.int64)
    event = np.unique((patient[accept] * n_groups + group[accept]) * _STAY_MINUTES + minute)
    ev_patient = event // (n_groups * _STAY_MINUTES)  # [E'] sorted by patient
    ev_group = (event // _STAY_MINUTES) % n_groups
    ev_minute = event % _STAY_MINUTES

    # expand each event to its group's channels, then keep each with the channel's share
    members = np.argsort(ch_group, kind="stable")  # [C] channels ordered by group
    size = np.bincount(ch_group, minlength=n_groups)  # [Gr]
    first = np.cumsum(size) - size  # [Gr] position of each group's first member
    per_event = size[ev_group]  # [E']
    e_idx = np.repeat(np.arange(len(event)), per_event)  # [K]
    within = np.arange(per_event.sum()) - np.repeat(np.cumsum(per_event) - per_event, per_event)
    ch = members[first[ev_group[e_idx]] + within]  # [K]
    # one uniform per event: a channel with a smaller share is only measured along with
    # those of larger share (MAP with systolic/diastolic pressure), as charted
    share = np.array([c.share for c in CHANNELS])  # [C]
    keep = rng.random(len(event))[e_idx] < share[ch]
    return ev_patient[e_idx[keep]], ev_minute[e_idx[keep]], ch[keep]
