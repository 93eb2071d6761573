"""The training objective is what it says it is.

- On a linear-Gaussian model, where log p(x) is known in closed form, the
  importance-weighted bound is below log p(x) for every K, rises towards it as K grows,
  is the ELBO at K = 1 and is exact (zero variance) when q is the true posterior; the
  2019 formula (closed-form KL outside the log-mean-exp) overshoots log p(x).
- A tiny latent ODE's whole training loss (Gaussian, Poisson and label terms, the bound,
  the normalisation) is recomputed by hand from the network's pieces.
- The KL warm-up schedule (and that training steps get it, validation weight 1) and
  the classifier head, against hand values.
"""

from __future__ import annotations

import itertools
import math

import lightning as L
import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

import latentode as lo
from latentode.data.batching import collate
from latentode.data.datamodule import SeriesDataModule
from latentode.data.dataset import make_series
from latentode.data.scaling import Scaler
from latentode.models import build_network
from latentode.models.training import TrainingModule
from latentode.nn.likelihoods import elbo, iwae_bound, kl_normal

DT = torch.float64

# ---- a linear-Gaussian model: z ~ N(0, I_L), x | z ~ N(W z + b, s² I_D) ---------------
# W has orthogonal columns, so the exact posterior is a diagonal Gaussian (as q is).
W = torch.tensor([[1.2, 0.4], [0.6, -0.8], [0.0, 0.0]], dtype=DT)  # [D, L]
BIAS = torch.tensor([0.3, -0.5, 1.0], dtype=DT)  # [D]
NOISE = 0.5
X = torch.tensor([1.1, 0.2, 0.7], dtype=DT)  # [D] the one observation
N_REPEATS = 2000  # Monte Carlo repeats, laid out as the batch dimension B
KS = (1, 2, 5, 50)


def _log_px_exact() -> float:
    """log p(x) = log N(x; b, W Wᵀ + s² I)."""
    cov = W @ W.T + NOISE**2 * torch.eye(3, dtype=DT)
    return float(MultivariateNormal(BIAS, cov).log_prob(X))


def _posterior() -> tuple[torch.Tensor, torch.Tensor]:
    """Exact posterior mean [L] and std [L]: precision I + WᵀW/s² (diagonal here)."""
    precision = torch.eye(2, dtype=DT) + W.T @ W / NOISE**2
    assert torch.count_nonzero(precision - torch.diag(precision.diagonal())) == 0
    cov = torch.linalg.inv(precision)
    return cov @ W.T @ (X - BIAS) / NOISE**2, cov.diagonal().sqrt()


def _imperfect_q() -> tuple[torch.Tensor, torch.Tensor]:
    """The posterior's mean shifted by half a std, its std inflated by 1.5."""
    mean, std = _posterior()
    return mean + 0.5 * std, 1.5 * std


def _draw(n_samples: int, mean_q: torch.Tensor, std_q: torch.Tensor, seed: int):
    """K samples for each of N_REPEATS repeats, shaped as training_loss uses them.

    Returns z0 [K, R, L], log p(x|z_k) [K, R], mean_q and std_q as [R, L].
    """
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(n_samples, N_REPEATS, 2, generator=gen, dtype=DT)
    z0 = mean_q + std_q * eps  # [K, R, L]
    log_px = Normal(z0 @ W.T + BIAS, NOISE).log_prob(X).sum(-1)  # [K, R]
    return z0, log_px, mean_q.expand(N_REPEATS, -1), std_q.expand(N_REPEATS, -1)


def _mean_and_se(values: torch.Tensor) -> tuple[float, float]:
    return float(values.mean()), float(values.std() / math.sqrt(len(values)))


def _bounds_by_k(mean_q: torch.Tensor, std_q: torch.Tensor) -> dict[int, tuple[float, float]]:
    out = {}
    for k in KS:
        z0, log_px, mq, sq = _draw(k, mean_q, std_q, seed=k)
        out[k] = _mean_and_se(iwae_bound(log_px, z0, mq, sq))
    return out


def test_iwae_bound_is_below_log_px_and_rises_with_k() -> None:
    log_px = _log_px_exact()
    bounds = _bounds_by_k(*_imperfect_q())
    for k in KS:
        mean, se = bounds[k]
        assert mean <= log_px + 4 * se, (k, mean, se, log_px)
    for small, large in itertools.pairwise(KS):  # strictly rising, well beyond the noise
        (m0, s0), (m1, s1) = bounds[small], bounds[large]
        assert m1 - m0 > 4 * math.hypot(s0, s1), (small, large, m0, m1)
    # K = 50 closes most of the gap K = 1 leaves
    assert log_px - bounds[50][0] < 0.1 * (log_px - bounds[1][0])


def test_one_sample_bound_is_the_elbo_in_expectation() -> None:
    mean_q, std_q = _imperfect_q()
    z0, log_px, mq, sq = _draw(1, mean_q, std_q, seed=11)
    # E_q log p(x|z) in closed form: the residual's mean plus the trace of its covariance
    residual = X - BIAS - W @ mean_q
    expected_log_lik = (
        -0.5 * 3 * math.log(2 * math.pi * NOISE**2)
        - 0.5 * float(residual @ residual + (W.square() @ std_q.square()).sum()) / NOISE**2
    )
    kl = float(kl_normal(mean_q, std_q))
    analytic_elbo = expected_log_lik - kl
    # log p(x) − ELBO = KL(q ‖ exact posterior): ties the three closed forms together
    post_mean, post_std = _posterior()
    gap = float(kl_divergence(Normal(mean_q, std_q), Normal(post_mean, post_std)).sum())
    assert analytic_elbo == pytest.approx(_log_px_exact() - gap, abs=1e-12)
    assert gap > 0.3  # q is far enough from the posterior for the checks to mean something
    mean, se = _mean_and_se(iwae_bound(log_px, z0, mq, sq))
    assert abs(mean - analytic_elbo) < 4 * se, (mean, se, analytic_elbo)
    # the closed-form-KL ELBO (what training_loss uses at K = 1): the same expectation
    mean_e, se_e = _mean_and_se(elbo(log_px, kl_normal(mq, sq)))  # over [R]
    assert abs(mean_e - analytic_elbo) < 4 * se_e, (mean_e, se_e, analytic_elbo)


def test_bound_is_exact_for_every_draw_when_q_is_the_posterior() -> None:
    log_px = _log_px_exact()
    mean_q, std_q = _posterior()
    for k in KS:
        z0, log_lik, mq, sq = _draw(k, mean_q, std_q, seed=100 + k)
        bound = iwae_bound(log_lik, z0, mq, sq)  # [R]
        assert float((bound - log_px).abs().max()) < 1e-10, k


def test_the_2019_formula_overshoots_log_px() -> None:
    """logsumexp_k log p(x|z_k) − log K − KL: not a lower bound for K > 1 (regression guard)."""
    log_px = _log_px_exact()
    mean_q, std_q = _imperfect_q()
    kl = kl_normal(mean_q, std_q)
    z0, log_lik, mq, sq = _draw(50, mean_q, std_q, seed=50)
    old = torch.logsumexp(log_lik, dim=0) - math.log(50) - kl  # [R]
    mean, se = _mean_and_se(old)
    assert mean > log_px + 4 * se, (mean, se, log_px)
    new_mean, _ = _mean_and_se(iwae_bound(log_lik, z0, mq, sq))
    assert new_mean < mean


# ---- a tiny latent ODE's training loss, by hand --------------------------------------
SCALER = Scaler(mean=(0.3, -0.2), std=(1.5, 0.7), time_scale=2.0)
LABEL_WEIGHT = 0.7


def _tiny_net(n_samples: int) -> torch.nn.Module:
    config = {
        "n_channels": 2,
        "latent_dim": 3,
        "encoder": "odernn",
        "encoder_hidden": 4,
        "hidden": 6,
        "depth": 1,
        "n_samples": n_samples,
        "poisson": True,
        "n_static": 2,
        "classify": True,
        "label_weight": LABEL_WEIGHT,
        "solver": {"method": "rk4", "step_size": 0.05},
        "n_grid": 40,
    }
    torch.manual_seed(0)
    net = build_network("latent_ode", config).double()
    with torch.no_grad():  # distinct noise per channel
        net.log_noise.copy_(torch.tensor([math.log(0.3), math.log(0.8)], dtype=DT))
    return net


def _tiny_batch():
    """Three series with different lengths and statics; labels 1, unknown, 0."""
    rng = np.random.default_rng(3)
    grids = [
        np.array([0.0, 0.3, 0.45, 1.1, 1.6]),
        np.array([0.2, 0.9, 1.3]),
        np.array([0.1, 0.15, 0.6, 0.7, 1.2, 1.8, 1.9]),
    ]
    series = []
    for i, (t, label) in enumerate(zip(grids, [1.0, None, 0.0])):
        values = rng.normal(size=(len(t), 2))
        mask = rng.random((len(t), 2)) < 0.7
        mask[np.arange(len(t)), rng.integers(0, 2, len(t))] = True
        static = rng.normal(size=2)
        series.append(make_series(i, t, values, mask, static=static, label=label))
    contexts = [s.take(np.arange(0, len(s), 2)) for s in series]
    return collate(contexts, SCALER, series, dtype=DT)


def _logits_by_hand(net, z0: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
    """Linear → tanh → Linear on [z0, static]: [S, B, L] → [S, B]."""
    first, second = net.classifier[0], net.classifier[2]
    feats = torch.cat([z0, static.expand(z0.shape[0], -1, -1)], dim=-1)  # [S, B, L + S_c]
    hidden = torch.tanh(feats @ first.weight.T + first.bias)
    return (hidden @ second.weight.T + second.bias).squeeze(-1)


def _log_normal(x: torch.Tensor, mean, std) -> float:
    return float(Normal(mean, std).log_prob(x).sum())


@pytest.mark.parametrize("n_samples", [1, 3])
def test_training_loss_by_hand(n_samples: int) -> None:
    net, batch, kl_weight, seed = _tiny_net(n_samples), _tiny_batch(), 0.3, 17
    with torch.no_grad():
        torch.manual_seed(seed)
        out = net.training_loss(batch, kl_weight)
        mean, std = net.encode(batch)  # [B, L]
        torch.manual_seed(seed)
        z0 = mean + std * torch.randn(n_samples, *mean.shape, dtype=DT)  # [K, B, L]
        z, cum = net.latent_paths(z0, batch.target_times)  # [K, B, T', L], [K, B, T', C]
        pred = z @ net.decoder.weight.T + net.decoder.bias  # [K, B, T', C]
        log_lam = torch.log(torch.nn.functional.softplus(net.intensity.net(z)))
        sigma = [0.3, 0.8]
        n_b = len(batch)
        log_px = [[0.0] * n_b for _ in range(n_samples)]
        log_pt = [[0.0] * n_b for _ in range(n_samples)]
        n_obs = 0
        for b in range(n_b):
            n = int(batch.target_lengths[b])
            for k in range(n_samples):
                for i in range(n):
                    for c in range(2):
                        if batch.target_mask[b, i, c] == 0:
                            continue
                        r = float(batch.target_values[b, i, c] - pred[k, b, i, c]) / sigma[c]
                        log_px[k][b] += (
                            -0.5 * r * r - math.log(sigma[c]) - 0.5 * math.log(2 * math.pi)
                        )
                        log_pt[k][b] += float(log_lam[k, b, i, c])
                log_pt[k][b] -= float((cum[k, b, n - 1] - cum[k, b, 0]).sum())
            n_obs += int(batch.target_mask[b, :n].sum())
        bound_sum, kls = 0.0, []
        for b in range(n_b):
            kl = float(kl_divergence(Normal(mean[b], std[b]), Normal(0.0, 1.0)).sum())
            kls.append(kl)
            log_joint = [log_px[k][b] + log_pt[k][b] for k in range(n_samples)]
            if n_samples == 1:  # the ELBO with the closed-form KL
                bound_sum += log_joint[0] - kl_weight * kl
            else:
                weights = [
                    math.exp(
                        log_joint[k]
                        + kl_weight
                        * (_log_normal(z0[k, b], 0.0, 1.0) - _log_normal(z0[k, b], mean[b], std[b]))
                    )
                    for k in range(n_samples)
                ]
                bound_sum += math.log(sum(weights) / n_samples)
        logits = _logits_by_hand(net, z0, batch.static)  # [K, B]
        known = [b for b in range(n_b) if not math.isnan(float(batch.labels[b]))]
        label_ll = 0.0
        for b in known:
            y = float(batch.labels[b])
            for k in range(n_samples):
                p = 1.0 / (1.0 + math.exp(-float(logits[k, b])))
                label_ll += (y * math.log(p) + (1 - y) * math.log(1 - p)) / n_samples
        label_nll = -label_ll / len(known)
    assert n_obs == int(batch.target_mask.sum()) and len(known) == 2
    assert float(out["label_nll"]) == pytest.approx(label_nll, rel=1e-10)
    pois = sum(map(sum, log_pt)) / n_samples / n_obs
    assert float(out["poisson_ll"]) == pytest.approx(pois, rel=1e-10)
    assert float(out["kl"]) == pytest.approx(sum(kls) / n_b, rel=1e-10)
    expected = -bound_sum / n_obs + LABEL_WEIGHT * label_nll
    assert float(out["loss"]) == pytest.approx(expected, rel=1e-10)


def test_classifier_logits_are_the_mlp_on_z0_and_statics() -> None:
    net, batch = _tiny_net(3), _tiny_batch()
    z0 = torch.randn(4, len(batch), 3, generator=torch.Generator().manual_seed(1), dtype=DT)
    with torch.no_grad():
        got = net.label_logits(z0, batch)
        first, second = net.classifier[0], net.classifier[2]
        for s in range(4):
            for b in range(len(batch)):
                feats = torch.cat([z0[s, b], batch.static[b]])  # [L + S_c]
                hidden = torch.tanh(first.weight @ feats + first.bias)
                expected = float(second.weight[0] @ hidden + second.bias[0])
                assert float(got[s, b]) == pytest.approx(expected, rel=1e-12, abs=1e-12)


# ---- KL warm-up ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("warmup", "expected"),
    [(3, [0.25, 0.5, 0.75, 1.0, 1.0]), (1, [0.5, 1.0, 1.0]), (0, [1.0, 1.0])],
)
def test_kl_weight_rises_linearly_to_one(monkeypatch, warmup: int, expected: list) -> None:
    """Epochs 0 .. warmup + 1: weight (epoch + 1) / (warmup + 1), capped at 1."""
    config = {"n_channels": 2, "latent_dim": 2, "encoder_hidden": 4, "hidden": 4, "depth": 1}
    module = TrainingModule("latent_ode", config, {"kl_warmup_epochs": warmup})
    for epoch, weight in enumerate(expected):
        monkeypatch.setattr(TrainingModule, "current_epoch", property(lambda self, e=epoch: e))
        assert module.kl_weight == weight, (warmup, epoch)


def test_training_steps_get_the_epochs_kl_weight_and_validation_gets_one(tmp_path) -> None:
    config = {
        "n_channels": 2,
        "latent_dim": 2,
        "encoder_hidden": 4,
        "hidden": 4,
        "depth": 1,
        "n_samples": 2,
        "solver": {"method": "euler", "step_size": 0.25},
    }
    module = TrainingModule("latent_ode", config, {"kl_warmup_epochs": 2})
    seen: list[tuple[bool, float]] = []
    real = module.net.training_loss

    def recording(batch, kl_weight=1.0):
        seen.append((module.training, kl_weight))
        return real(batch, kl_weight)

    module.net.training_loss = recording
    data = lo.datasets.spiral(n_series=8, n_points=8, n_observed=4, seed=0)
    dm = SeriesDataModule(data, Scaler.fit(data), data, batch_size=4, min_epoch_examples=0)
    trainer = L.Trainer(
        max_epochs=4,
        accelerator="cpu",
        devices=1,
        default_root_dir=str(tmp_path),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=dm)
    train = [w for training, w in seen if training]
    assert train == [1 / 3] * 2 + [2 / 3] * 2 + [1.0] * 4  # two batches per epoch
    assert [w for training, w in seen if not training] == [1.0] * 8


# ---- the estimator's label_weight ------------------------------------------------------
def _labelled_dataset() -> lo.SeriesDataset:
    """The tiny batch's three series as a dataset (labels 1, unknown, 0), plus three more."""
    rng = np.random.default_rng(5)
    series = []
    for i in range(6):
        t = np.sort(rng.choice(np.arange(30) / 10, size=6, replace=False))
        values = rng.normal(size=(6, 2))
        label = None if i == 1 else float(i % 2)
        series.append(make_series(i, t, values, static=rng.normal(size=2), label=label))
    return lo.SeriesDataset(series, channels=["a", "b"], static_names=["s", "u"], label_name="y")


TINY_PARAMS = {"latent_dim": 3, "encoder_hidden": 4, "hidden": 6, "depth": 1, "n_samples": 2}


@pytest.mark.parametrize("weight", [0.0, 2.5, 100.0])
def test_label_weight_parameter_scales_the_label_term(weight: float) -> None:
    """``LatentODE(label_weight=w)``: loss = (the loss at w = 0) + w · label NLL, where the
    NLL is recomputed by hand from the classifier's logits on the same z0 samples."""
    data = _labelled_dataset()
    batch = collate(list(data), SCALER, None, dtype=DT)
    losses = {}
    for w in (0.0, weight):
        # the paper's head (an MLP on z0), which _logits_by_hand computes
        model = lo.LatentODE(**TINY_PARAMS, label_weight=w, label_readout="z0", label_hidden=None)
        config = model._network_config(data)
        assert config["classify"] and config["label_weight"] == w
        torch.manual_seed(0)  # the same weights for both (label_weight has no parameter)
        net = build_network("latent_ode", config).double()
        with torch.no_grad():
            torch.manual_seed(11)
            losses[w] = net.training_loss(batch)
            mean, std = net.encode(batch)
            torch.manual_seed(11)
            z0 = mean + std * torch.randn(2, *mean.shape, dtype=DT)
            p = torch.sigmoid(_logits_by_hand(net, z0, batch.static))  # [K, B]
    y = [s.label for s in data]
    known = [b for b in range(len(y)) if y[b] is not None]
    nll = -sum(
        y[b] * math.log(p[k, b]) + (1 - y[b]) * math.log(1 - p[k, b]) for b in known for k in (0, 1)
    ) / (2 * len(known))
    assert float(losses[weight]["label_nll"]) == pytest.approx(nll, rel=1e-10)
    expected = float(losses[0.0]["loss"]) + weight * nll
    assert float(losses[weight]["loss"]) == pytest.approx(expected, rel=1e-10)


def test_label_weight_is_saved_with_the_model(tmp_path) -> None:
    model = lo.LatentODE(**TINY_PARAMS, label_weight=3.5, residual=False, batch_size=3)
    model.fit(_labelled_dataset(), max_epochs=1, progress_bar=False, log_dir=tmp_path / "run")
    assert model.network_.cfg.label_weight == 3.5
    model.save(tmp_path / "m.safetensors")
    loaded = lo.load(tmp_path / "m.safetensors")
    assert loaded.get_params()["label_weight"] == 3.5
    assert loaded.network_.cfg.label_weight == 3.5


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf")])
def test_label_weight_must_be_finite_and_not_negative(weight: float) -> None:
    with pytest.raises(lo.LatentODEError, match="label_weight must be a finite number >= 0"):
        lo.LatentODE(**TINY_PARAMS, label_weight=weight)._network_config(_labelled_dataset())


def test_linear_classifier_is_logistic_regression_on_z0_and_statics() -> None:
    """``classifier_hidden=0``: logit = w · [z0, statics] + b; None (files written before
    the field existed) keeps the tanh MLP ``hidden`` wide; k > 0 an MLP k wide."""
    batch = _tiny_batch()
    z0 = torch.randn(4, len(batch), 3, generator=torch.Generator().manual_seed(2), dtype=DT)
    config = {k: v for k, v in _tiny_net(3).cfg.to_dict().items() if k != "classifier_hidden"}
    net = build_network("latent_ode", {**config, "classifier_hidden": 0}).double()
    with torch.no_grad():
        got = net.label_logits(z0, batch)
    weight, bias = net.classifier.weight[0], float(net.classifier.bias[0])
    for s in range(4):
        for b in range(len(batch)):
            feats = [*z0[s, b].tolist(), *batch.static[b].tolist()]  # [L + S_c]
            expected = sum(w * f for w, f in zip(weight.tolist(), feats)) + bias
            assert float(got[s, b]) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    old = build_network("latent_ode", config).classifier  # no classifier_hidden key
    assert [m.out_features for m in old if isinstance(m, torch.nn.Linear)] == [6, 1]
    five = build_network("latent_ode", {**config, "classifier_hidden": 5}).classifier
    assert [m.out_features for m in five if isinstance(m, torch.nn.Linear)] == [5, 1]
    with pytest.raises(lo.LatentODEError, match="classifier_hidden must be an integer >= 0"):
        build_network("latent_ode", {**config, "classifier_hidden": -1})
