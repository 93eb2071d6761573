"""The seeded generators against independent truth: noise levels, geometry, rates, prevalence."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from latentode import datasets
from latentode.errors import LatentODEError

REPO = Path(__file__).resolve().parents[1]

# The clinical specification, written down independently of the generator's tables.
VITALS = ("HR", "SysABP", "DiasABP", "MAP", "Urine")  # about hourly
LABS = (
    "pH", "PaO2", "PaCO2", "SaO2", "Lactate", "Na", "K", "HCO3", "BUN", "Creatinine",
    "Glucose", "Mg", "HCT", "WBC", "Platelets", "ALP", "ALT", "AST", "Bilirubin", "Albumin",
    "TroponinT", "Cholesterol",
)  # fmt: skip  # every 6 to 24 hours
PHYSIONET_NAMES = (
    "HR", "SysABP", "DiasABP", "MAP", "RespRate", "Temp", "SaO2", "GCS", "Urine", "FiO2",
    "Glucose", "BUN", "Creatinine", "HCT", "Platelets", "WBC", "K", "Na", "HCO3", "Mg",
    "Lactate", "pH", "PaO2", "PaCO2", "Albumin", "ALP", "ALT", "AST", "Bilirubin",
    "TroponinT", "Cholesterol", "NIDiasABP", "NISysABP", "NIMAP",
)  # fmt: skip
PLAUSIBLE = {"HR": (30, 220), "Temp": (32, 42), "pH": (6.8, 7.8), "SaO2": (50, 100),
             "GCS": (3, 15), "FiO2": (0.21, 1.0), "Na": (100, 180), "K": (1.5, 9)}  # fmt: skip


def _pooled_residuals(ds) -> np.ndarray:
    return np.concatenate([(s.values - ds.truth[s.id]["values"]).ravel() for s in ds])


def _same(a, b) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x.times, y.times)
        and np.array_equal(x.values, y.values, equal_nan=True)
        and (x.static is None) == (y.static is None)
        and (x.static is None or np.array_equal(x.static, y.static, equal_nan=True))
        and x.label == y.label
        for x, y in zip(a, b)
    )


# ---- spiral --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spirals():
    return datasets.spiral(n_series=300, n_points=100, n_observed=40, noise_std=0.1, seed=0)


def test_spiral_layout(spirals):
    assert len(spirals) == 300
    assert spirals.channels == ("x", "y")
    assert (spirals.id_name, spirals.time_name, spirals.time_unit) == ("series_id", "time", "s")
    for s in spirals:
        truth = spirals.truth[s.id]
        assert s.values.shape == (40, 2) and s.mask.all()
        assert truth["dense_times"].shape == (100,) and truth["dense_values"].shape == (100, 2)
        assert truth["values"].shape == (40, 2)
        assert np.all(np.diff(s.times) > 0) and 0 <= s.times[0] and s.times[-1] <= 6.0
        assert np.isin(s.times, truth["dense_times"]).all()  # a subset of the fine grid


def test_spiral_times_are_irregular_with_random_offsets(spirals):
    gaps = [np.unique(np.round(np.diff(s.times), 9)).size for s in spirals]
    assert min(gaps) > 1  # no series is regularly sampled
    firsts = {float(s.times[0]) for s in spirals}
    assert len(firsts) > 5
    starts = np.array([spirals.truth[i]["start_angle"] for i in spirals.ids])
    assert starts.std() > 2.0  # random start along the spiral (uniform on [0, 4π): sd 3.6)


def test_spiral_noise_matches_noise_std(spirals):
    res = _pooled_residuals(spirals)  # 24,000 draws: sd of the sd estimate is ~0.0005
    assert abs(res.mean()) < 0.005
    assert res.std() == pytest.approx(0.1, rel=0.03)


def test_spiral_geometry_and_both_directions(spirals):
    directions = []
    for i in spirals.ids:
        truth = spirals.truth[i]
        x, y = truth["dense_values"].T
        t = truth["dense_times"]
        angle = np.unwrap(np.arctan2(y, x))
        radius = np.hypot(x, y)
        # Archimedean: radius linear in time, angle turning at a constant ±1 rad per unit
        rate = np.diff(angle) / np.diff(t)
        assert np.allclose(np.abs(rate), 1.0, atol=1e-6)
        assert np.allclose(np.diff(radius) / np.diff(t), np.diff(radius)[0] / np.diff(t)[0])
        assert np.all(np.diff(radius) > 0)  # winding outward
        assert np.sign(rate[0]) == truth["direction"]
        directions.append(truth["direction"])
    share_ccw = np.mean(np.array(directions) == 1)
    assert 0.35 < share_ccw < 0.65  # binomial(300, 0.5): sd 0.029


def test_spiral_seed():
    a = datasets.spiral(n_series=20, seed=3)
    assert _same(a, datasets.spiral(n_series=20, seed=3))
    assert not _same(a, datasets.spiral(n_series=20, seed=4))


def test_spiral_rejects_bad_sizes():
    with pytest.raises(LatentODEError, match="n_observed"):
        datasets.spiral(n_points=10, n_observed=11)
    with pytest.raises(LatentODEError, match="noise_std"):
        datasets.spiral(noise_std=-1.0)


# ---- periodic ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def waves():
    return datasets.periodic(n_series=300, n_points=60, noise_std=0.2, seed=1)


def test_periodic_layout_and_irregular_times(waves):
    assert waves.channels == ("value",) and waves.time_unit == "s"
    for s in waves:
        assert s.values.shape == (60, 1)
        assert np.all(np.diff(s.times) > 0) and s.times[0] >= 0 and s.times[-1] <= 5.0
        assert np.diff(s.times).std() > 0.01  # irregular
    assert len({float(s.times[0]) for s in waves}) == len(waves)  # each on its own clock


def test_periodic_noise_matches_noise_std(waves):
    res = _pooled_residuals(waves)  # 18,000 draws
    assert abs(res.mean()) < 0.01
    assert res.std() == pytest.approx(0.2, rel=0.03)


def test_periodic_truth_is_a_random_sinusoid(waves):
    freqs = []
    for s in waves:
        truth = waves.truth[s.id]
        # the dense truth, interpolated, matches the truth at the observed times
        dense = np.interp(s.times, truth["dense_times"], truth["dense_values"][:, 0])
        assert np.abs(dense - truth["values"][:, 0]).max() < 0.05
        # the dense truth oscillates between offset ± amplitude
        lo, hi = truth["dense_values"].min(), truth["dense_values"].max()
        assert hi <= truth["offset"] + truth["amplitude"] + 1e-12
        assert lo >= truth["offset"] - truth["amplitude"] - 1e-12
        freqs.append(truth["frequency"])
    assert np.ptp(freqs) > 0.5  # frequencies vary across series


def test_periodic_seed():
    a = datasets.periodic(n_series=10, seed=0)
    assert _same(a, datasets.periodic(n_series=10, seed=0))
    assert not _same(a, datasets.periodic(n_series=10, seed=1))


# ---- clinical ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def icu():
    return datasets.clinical(n_patients=1000, seed=7)


def _counts(ds) -> np.ndarray:
    return np.stack([s.mask.sum(axis=0) for s in ds])  # [N, C]


def test_clinical_layout(icu):
    assert len(icu.channels) >= 30
    assert set(PHYSIONET_NAMES) <= set(icu.channels)
    assert icu.static_names == ("Age", "Gender", "Height", "ICUType", "Weight")
    assert icu.label_name == "In-hospital_death"
    assert icu.time_unit == "h"
    static = np.stack([s.static for s in icu])
    assert np.nanmin(static[:, 0]) >= 16 and np.nanmax(static[:, 0]) <= 90
    assert set(np.unique(static[:, 1])) == {0.0, 1.0}
    assert set(np.unique(static[:, 3])) == {1.0, 2.0, 3.0, 4.0}
    truth = icu.truth[icu.ids[0]]
    n_grid = truth["dense_times"].shape[0]
    assert truth["latent"].shape[0] == n_grid
    assert truth["intensity"].shape == (n_grid, len(icu.channels))
    assert truth["values"].shape == icu[0].values.shape


def test_clinical_times_are_minutes_within_48_hours(icu):
    times = np.concatenate([s.times for s in icu])
    minutes = times * 60
    assert np.allclose(minutes, np.round(minutes), rtol=0, atol=1e-9)
    assert times.min() >= 0 and times.max() <= 48
    assert all(np.all(np.diff(s.times) > 0) for s in icu)


def test_clinical_sampling_rates_match_the_specification(icu):
    rate = _counts(icu).sum(axis=0) / (48.0 * len(icu))  # measurements per hour
    by_name = dict(zip(icu.channels, rate))
    for name in VITALS:
        assert 0.6 <= by_name[name] <= 1.5, (name, by_name[name])
    for name in LABS:
        assert 1 / 24 <= by_name[name] <= 1 / 6, (name, by_name[name])
    assert by_name["HR"] > 8 * by_name["BUN"]  # very different rates


def test_clinical_missingness_on_an_hourly_grid(icu):
    observed = 0
    for s in icu:
        rows, cols = np.nonzero(s.mask)
        grid = np.zeros((48, len(icu.channels)), dtype=bool)
        grid[np.minimum(np.floor(s.times[rows]).astype(int), 47), cols] = True
        observed += grid.sum()
    missing = 1.0 - observed / (48 * len(icu.channels) * len(icu))
    assert missing > 0.8


def test_clinical_counts_follow_the_true_intensity(icu):
    counts = _counts(icu)  # [N, C]
    expected = np.stack(
        [
            np.trapezoid(icu.truth[i]["intensity"], icu.truth[i]["dense_times"], axis=0)
            for i in icu.ids
        ]
    )  # [N, C]: expected number of measurements
    total, total_expected = counts.sum(axis=0), expected.sum(axis=0)
    # Poisson totals of >= 2,000 events: within 6 % (several standard deviations)
    assert np.all(np.abs(total / total_expected - 1) < 0.06)


def test_clinical_sampling_is_informative(icu):
    severity = np.array([icu.truth[i]["latent"][:, 0].mean() for i in icu.ids])
    vitals = _counts(icu)[:, icu.channels.index("HR")]
    assert np.corrcoef(severity, vitals)[0, 1] > 0.3
    # within patients too: more measurements in hours when severity is high
    high = low = high_hours = low_hours = 0
    for s in icu:
        truth = icu.truth[s.id]
        hourly = np.interp(np.arange(48) + 0.5, truth["dense_times"], truth["latent"][:, 0])
        seen = np.bincount(np.floor(s.times[s.mask.any(axis=1)]).astype(int), minlength=48)[:48]
        above = hourly > np.median(hourly)
        high, high_hours = high + seen[above].sum(), high_hours + above.sum()
        low, low_hours = low + seen[~above].sum(), low_hours + (~above).sum()
    assert high / high_hours > 1.05 * low / low_hours


def test_clinical_label_prevalence_and_mortality_risk(icu):
    labels = np.array([s.label for s in icu])
    risk = np.array([icu.truth[i]["mortality_probability"] for i in icu.ids])
    assert set(np.unique(labels)) == {0.0, 1.0}
    assert abs(labels.mean() - 0.14) < 0.035  # binomial(1000, 0.14): sd 0.011
    assert abs(risk.mean() - 0.14) < 0.03
    assert risk[labels == 1].mean() > 1.5 * risk[labels == 0].mean()


def test_clinical_values_are_plausible_and_near_truth(icu):
    values = np.concatenate([s.values for s in icu])  # [R, C]
    clean = np.concatenate([icu.truth[i]["values"] for i in icu.ids])
    for name, (low, high) in PLAUSIBLE.items():
        v = values[:, icu.channels.index(name)]
        v = v[~np.isnan(v)]
        assert v.size and v.min() >= low and v.max() <= high, name
    hr = icu.channels.index("HR")
    seen = ~np.isnan(values[:, hr])
    residual = values[seen, hr] - clean[seen, hr]
    assert abs(residual.mean()) < 0.5 and 4.0 < residual.std() < 6.0  # noise sd 5 bpm


def test_clinical_seed():
    a = datasets.clinical(n_patients=200, seed=0)
    assert _same(a, datasets.clinical(n_patients=200, seed=0))
    assert not _same(a, datasets.clinical(n_patients=200, seed=1))


# ---- the public namespace and the sample files ----------------------------------------
def test_public_namespace():
    assert sorted(datasets.__all__) == ["clinical", "periodic", "read_physionet2012", "spiral"]
    assert datasets.__doc__


def test_sample_files_regenerate_byte_for_byte(tmp_path):
    spec = importlib.util.spec_from_file_location("make_samples", REPO / "data" / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.make_samples(tmp_path)
    assert {p.name for p in written} == {"spiral.csv", "clinical_long.csv"}
    for path in written:
        assert path.read_bytes() == (REPO / "data" / path.name).read_bytes(), path.name
    assert (REPO / "data" / "spiral.csv").stat().st_size < 300_000
    assert (REPO / "data" / "clinical_long.csv").stat().st_size < 1_000_000
