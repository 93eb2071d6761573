"""The latent ODE (Rubanova, Chen & Duvenaud 2019) as a VAE LightningModule.

q(z0 | context) from an RNN or ODE-RNN encoder read in reverse time; z(t) from one
solve of the latent ODE, read out at every target time of every series; a linear
decoder to observation space with Gaussian noise; optionally a Poisson intensity
λ(z(t)) for the observation times and a classifier on z0 or on z at the series'
last time. Trained on the
importance-weighted bound (K samples; K = 1 is the ELBO) with KL warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from latentode.data.batching import Batch
from latentode.errors import LatentODEError
from latentode.nn.encoders import ENCODERS
from latentode.nn.intensity import AugmentedDynamics, PoissonIntensity
from latentode.nn.likelihoods import (
    bernoulli_log_likelihood,
    elbo,
    gaussian_log_likelihood,
    iwae_bound,
    kl_normal,
    poisson_log_likelihood,
)
from latentode.nn.readout import solve_at_times
from latentode.nn.residual_kriging import (
    condition_residual,
    outlying_rows,
    within_context_range,
)
from latentode.nn.residual_process import ResidualProcess
from latentode.nn.solve import SolverConfig
from latentode.nn.vector_fields import MLPVectorField

MIN_NOISE_STD = 1e-3
#: How z evolves between times: a neural ODE, or a GRU stepping through each series'
#: own query times with the gap as input (with encoder="rnn": the paper's RNN-VAE).
LATENT_DYNAMICS = ("ode", "rnn")
#: The latent features of the label head (see ``LatentODEConfig.label_readout``).
LABEL_READOUTS = ("z0", "last", "both")


@dataclass(frozen=True)
class LatentODEConfig:
    """Sizes and settings of a latent ODE (plain types; saved with the model).

    Attributes:
        n_channels: C, observed channels.
        latent_dim: L, size of z.
        encoder: ``"odernn"`` or ``"rnn"``.
        encoder_hidden: hidden size of the encoder's GRU state.
        hidden: width of the ODE vector fields' MLPs (latent and encoder).
        depth: hidden layers of those MLPs.
        n_samples: K, posterior samples per series in the importance-weighted bound.
        noise_std: initial observation noise std (scaled units); learned per channel
            when ``learn_noise``.
        poisson: model observation times with a Poisson intensity head.
        n_static: S, static covariates (used by the classifier).
        classify: predict a per-series binary label from the latent state (and statics).
        label_weight: weight of the label's log-likelihood per series.
        classifier_hidden: the classifier on its features (see ``label_readout``) and
            the statics: 0, logistic regression (one linear layer); k > 0, an MLP with
            one tanh layer of k units; None, such an MLP ``hidden`` units wide (what
            model files without this field hold).
        label_readout: the latent features the classifier reads: ``"z0"`` (the state at
            the series' clock origin; what model files without this field hold),
            ``"last"`` (z at the end of the series' window, carried there from z0 by the
            latent dynamics) or ``"both"`` (``[z0, z_last]``). The window's end is the
            last target time in training (targets are the whole series) and the last
            context time at prediction.
        solver: the latent ODE's solver settings (``SolverConfig`` fields).
        encoder_solver: the ODE-RNN encoder's solver settings.
        n_grid: points of the read-out grid over the batch's time span.
    """

    n_channels: int
    latent_dim: int = 8
    encoder: str = "odernn"
    encoder_hidden: int = 32
    hidden: int = 64
    depth: int = 2
    n_samples: int = 3
    noise_std: float = 0.1
    learn_noise: bool = True
    poisson: bool = False
    n_static: int = 0
    classify: bool = False
    label_weight: float = 1.0
    classifier_hidden: int | None = None
    label_readout: str = "z0"
    solver: dict = field(default_factory=lambda: SolverConfig().to_dict())
    encoder_solver: dict = field(
        default_factory=lambda: SolverConfig(method="euler", step_size=0.5).to_dict()
    )
    n_grid: int = 64
    dynamics: str = "ode"

    def __post_init__(self):
        if self.dynamics not in LATENT_DYNAMICS:
            raise LatentODEError(
                f"dynamics={self.dynamics!r} is unknown; use one of {LATENT_DYNAMICS}."
            )
        if self.dynamics == "rnn" and self.poisson:
            raise LatentODEError(
                "the Poisson head needs ODE dynamics (its integral is part of the solve); "
                "use dynamics='ode' or poisson=False."
            )
        if self.encoder not in ENCODERS:
            raise LatentODEError(
                f"encoder={self.encoder!r} is unknown; use one of {sorted(ENCODERS)}."
            )
        for name in ("n_channels", "latent_dim", "encoder_hidden", "hidden", "n_samples"):
            if int(getattr(self, name)) < 1:
                raise LatentODEError(f"{name} must be a positive integer.")
        if self.classifier_hidden is not None and int(self.classifier_hidden) < 0:
            raise LatentODEError(
                f"classifier_hidden must be an integer >= 0 (0: logistic regression), "
                f"got {self.classifier_hidden!r}."
            )
        if self.label_readout not in LABEL_READOUTS:
            raise LatentODEError(
                f"label_readout={self.label_readout!r} is unknown; use one of {LABEL_READOUTS}."
            )
        if not math.isfinite(self.label_weight) or self.label_weight < 0:
            raise LatentODEError(
                f"label_weight must be a finite number >= 0, got {self.label_weight!r}."
            )

    def to_dict(self) -> dict:
        return asdict(self)


class LatentODENet(nn.Module):
    """Latent ODE VAE network (plain ``nn.Module``); ``config`` as in :class:`LatentODEConfig`."""

    def __init__(self, config: dict):
        super().__init__()
        cfg = LatentODEConfig(**config)
        self.cfg = cfg
        c, latent = cfg.n_channels, cfg.latent_dim
        enc_cls = ENCODERS[cfg.encoder]
        if cfg.encoder == "odernn":
            self.encoder = enc_cls(
                input_dim=c,
                latent_dim=latent,
                hidden_dim=cfg.encoder_hidden,
                ode_hidden=cfg.hidden,
                ode_depth=cfg.depth,
                solver=SolverConfig.from_dict(cfg.encoder_solver),
            )
        else:
            self.encoder = enc_cls(input_dim=c, latent_dim=latent, hidden_dim=cfg.encoder_hidden)
        if cfg.dynamics == "ode":
            self.dynamics = MLPVectorField(latent, hidden=cfg.hidden, depth=cfg.depth)
        else:
            self.dynamics = None
            self.rnn_dynamics = nn.GRUCell(1, latent)
        self.decoder = nn.Linear(latent, c)
        self.log_noise = nn.Parameter(
            torch.full((c,), math.log(cfg.noise_std)), requires_grad=cfg.learn_noise
        )
        self.intensity = PoissonIntensity(latent, c, cfg.hidden) if cfg.poisson else None
        n_feats = latent * (2 if cfg.label_readout == "both" else 1) + cfg.n_static
        self.classifier = _classifier(n_feats, cfg) if cfg.classify else None
        self.solver = SolverConfig.from_dict(cfg.solver)

    @property
    def noise_std(self) -> torch.Tensor:
        """Observation noise std per channel [C] (scaled units)."""
        return self.log_noise.exp().clamp_min(MIN_NOISE_STD)

    # ---- the generative path --------------------------------------------------------
    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior q(z0 | context): mean [B, L], std [B, L]."""
        return self.encoder(batch.times, batch.values, batch.mask, batch.lengths)

    def latent_paths(
        self,
        z0: torch.Tensor,
        times: torch.Tensor,
        solver: SolverConfig | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """z0 [S, B, L] → z at ``times`` [B, T'] as [S, B, T', L], and the intensity's
        integral Λ [S, B, T', C] from time 0 (None without the Poisson head)."""
        solver = solver or self.solver
        if self.dynamics is None:
            return self._rnn_paths(z0, times), None
        if self.intensity is None:
            return solve_at_times(self.dynamics, z0, times, solver, self.cfg.n_grid), None
        aug = AugmentedDynamics(self.dynamics, self.intensity)
        start = torch.cat([z0, z0.new_zeros(*z0.shape[:-1], self.cfg.n_channels)], dim=-1)
        path = solve_at_times(aug, start, times, solver, self.cfg.n_grid)
        latent = self.cfg.latent_dim
        return path[..., :latent], path[..., latent:]

    def _rnn_paths(self, z0: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """RNN-VAE decoder: a GRU steps z through each series' own sorted query times.

        z0 [S, B, L], times [B, T'] (ascending within a series, padding repeats the
        last time) → [S, B, T', L]. The input at each step is the gap since the last.
        """
        n_s, n_b, n_l = z0.shape
        z = z0.reshape(n_s * n_b, n_l)  # [S*B, L]
        gaps = torch.diff(times, dim=1, prepend=torch.zeros_like(times[:, :1]))  # [B, T']
        gaps = gaps.unsqueeze(0).expand(n_s, -1, -1).reshape(n_s * n_b, -1)  # [S*B, T']
        path = []
        for k in range(times.shape[1]):
            z = self.rnn_dynamics(gaps[:, k : k + 1], z)
            path.append(z)
        return torch.stack(path, dim=1).view(n_s, n_b, -1, n_l)

    def sample_z0(
        self,
        mean: torch.Tensor,
        std: torch.Tensor,
        n: int,
        generator: torch.Generator | Sequence[torch.Generator] | None,
        antithetic: bool = False,
    ) -> torch.Tensor:
        """n reparameterised samples [n, B, L] of q(z0) (mean and std [B, L]).

        ``generator``: one generator for the whole batch, or one per series (B of them;
        series ``b``'s draws then come from ``generator[b]`` alone, whatever else is in
        the batch). Draws are made on the generator's device and moved to ``mean``'s.

        ``antithetic``: the first ``ceil(n/2)`` standard normal draws ε are followed by
        their negatives −ε (``n`` in all). Each sample is still a draw of q, but averages
        over them lose the part of their Monte Carlo error that is odd in ε (all of it
        where the prediction is linear in z0).
        """
        k = (n + 1) // 2 if antithetic else n
        if generator is None or isinstance(generator, torch.Generator):
            where = mean.device if generator is None else generator.device
            eps = torch.randn((k, *mean.shape), generator=generator, device=where, dtype=mean.dtype)
        else:
            if len(generator) != mean.shape[0]:
                raise LatentODEError(
                    f"sample_z0 got {len(generator)} generators for a batch of {mean.shape[0]} "
                    "series; pass one per series or a single one."
                )
            per_series = [
                torch.randn((k, mean.shape[-1]), generator=g, device=g.device, dtype=mean.dtype)
                for g in generator
            ]
            eps = torch.stack(per_series, dim=1) if per_series else mean.new_zeros(k, *mean.shape)
        if antithetic:
            eps = torch.cat([eps, -eps[: n - k]])
        return mean + std * eps.to(mean.device)

    # ---- objective ------------------------------------------------------------------
    def training_loss(self, batch: Batch, kl_weight: float = 1.0) -> dict[str, torch.Tensor]:
        """Negative bound on log p(x) per observed target value, plus the label loss.

        With K = ``n_samples`` z0 samples the bound is :func:`iwae_bound` (K > 1) or the
        :func:`elbo` with the closed-form KL (K = 1: the same expectation, and no Monte
        Carlo noise in the KL's gradient); ``kl_weight`` scales the prior-to-posterior
        term. log p(x|z) sums the Gaussian log-likelihood
        of the observed target values and, with the Poisson head, the log-likelihood of
        the observation times. The label loss is the Bernoulli NLL averaged over samples
        and over series with a known label, times ``label_weight``.

        Returns:
            ``loss`` (scalar, minimise it), ``kl`` (mean closed-form KL per series), and
            ``poisson_ll`` / ``label_nll`` when those heads are on.
        """
        mean, std = self.encode(batch)  # [B, L]
        z0 = self.sample_z0(mean, std, self.cfg.n_samples, None)  # [S, B, L]
        z, cum_intensity = self.latent_paths(z0, batch.target_times)  # [S, B, T', L]
        pred = rowwise(self.decoder, z)  # [S, B, T', C]
        mask = batch.target_mask
        log_px = gaussian_log_likelihood(pred, batch.target_values, mask, self.noise_std)
        out: dict[str, torch.Tensor] = {}
        n_obs = mask.sum().clamp_min(1.0)
        if self.intensity is not None:
            log_lam = rowwise(self.intensity.log_intensity, z)  # [S, B, T', C]
            integral = _window_integral(cum_intensity, batch.target_lengths)  # [S, B, C]
            log_pt = poisson_log_likelihood(log_lam, mask, integral)  # [S, B]
            log_px = log_px + log_pt
            out["poisson_ll"] = log_pt.mean(0).sum() / n_obs
        kl = kl_normal(mean, std)  # [B]
        if self.cfg.n_samples == 1:
            bound = elbo(log_px, kl, kl_weight)  # [B]
        else:
            bound = iwae_bound(log_px, z0, mean, std, kl_weight)  # [B]
        loss = -bound.sum() / n_obs
        if self.classifier is not None and batch.labels is not None:
            z_last = last_state(z, batch.target_lengths)  # [S, B, L]: the series' end
            logits = self.label_logits(z0, batch, z_last)  # [S, B]
            ll = bernoulli_log_likelihood(logits, batch.labels)  # [S, B]
            known = (~torch.isnan(batch.labels)).sum().clamp_min(1)
            label_nll = -ll.mean(0).sum() / known
            loss = loss + self.cfg.label_weight * label_nll
            out["label_nll"] = label_nll
        out["loss"] = loss
        out["kl"] = kl.mean()
        return out

    def label_logits(
        self, z0: torch.Tensor, batch: Batch, z_last: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Classifier logits [S, B] from z0 samples [S, B, L], the latent state at the
        end of each series' window ``z_last`` [S, B, L] (needed unless
        ``label_readout="z0"``) and the static covariates."""
        readout = self.cfg.label_readout
        if readout != "z0" and z_last is None:
            raise LatentODEError(f"label_readout={readout!r} needs z_last, the state at t_last.")
        parts = {"z0": [z0], "last": [z_last], "both": [z0, z_last]}[readout]
        if self.cfg.n_static:
            parts.append(batch.static.unsqueeze(0).expand(z0.shape[0], -1, -1))  # [S, B, S_c]
        return self.classifier(torch.cat(parts, dim=-1)).squeeze(-1)

    def _label_logits_at_context_end(
        self, z0: torch.Tensor, batch: Batch, z: torch.Tensor, solver: SolverConfig | None
    ) -> torch.Tensor:
        """Logits [S, B] with the window's end at each series' last context time; ``z``
        [S, B, T', L] at the targets is reused when every target ends there."""
        if self.cfg.label_readout == "z0":
            return self.label_logits(z0, batch)
        end = batch.times.gather(1, (batch.lengths - 1).clamp_min(0).unsqueeze(1))  # [B, 1]
        target_end = batch.target_times.gather(
            1, (batch.target_lengths - 1).clamp_min(0).unsqueeze(1)
        )
        if torch.equal(end, target_end):
            z_last = last_state(z, batch.target_lengths)
        else:  # the context's own times (the RNN decoder steps through them)
            z_last = last_state(self.latent_paths(z0, batch.times, solver)[0], batch.lengths)
        return self.label_logits(z0, batch, z_last)

    @torch.no_grad()
    def predict_mean(self, batch: Batch) -> torch.Tensor:
        mean, _ = self.encode(batch)
        z, _ = self.latent_paths(mean.unsqueeze(0), batch.target_times)
        return rowwise(self.decoder, z)[0]  # [B, T', C]

    @torch.no_grad()
    def sample(
        self,
        batch: Batch,
        n_samples: int,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        solver: SolverConfig | None = None,
        residual: ResidualProcess | None = None,
        antithetic: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Posterior predictive draws at the batch's target times (``generator``: one, or
        one per series, and ``antithetic`` pairs, as in :meth:`sample_z0`).

        Returns ``mean`` [S, B, T', C] (decoder output per z0 sample), ``noise_std`` [C],
        ``z`` [S, B, T', L], ``z0`` [S, B, L], and ``log_intensity`` [S, B, T', C] with
        a Poisson head. All in scaled units.

        With a ``residual`` process, each sample's path is also decoded at the context
        times, its residuals there are carried to the targets by kriging
        (:func:`~latentode.nn.residual_kriging.condition_residual`, kept within the
        range of those residuals or 3 prior stds:
        :func:`~latentode.nn.residual_kriging.within_context_range`) and added to ``mean``
        (on the residual divided by its level scale at the mean path, and multiplied back
        at the targets: :meth:`~latentode.nn.residual_process.ResidualProcess.level_scale`);
        ``path`` [S, B, T', C] keeps the decoder output alone, and ``noise_std``
        [B, T', C] is the residual's conditional std including its white noise.
        """
        mean, std = self.encode(batch)
        z0 = self.sample_z0(mean, std, n_samples, generator, antithetic)
        n_q = batch.target_times.shape[1]
        if residual is not None and self.dynamics is not None:  # one solve for both
            both, _ = self.latent_paths(z0, torch.cat([batch.target_times, batch.times], 1), solver)
            z, z_context = both[..., :n_q, :], both[..., n_q:, :]
        else:
            z, _ = self.latent_paths(z0, batch.target_times, solver)
        out = {"mean": rowwise(self.decoder, z), "noise_std": self.noise_std, "z": z, "z0": z0}
        if residual is not None:
            if self.dynamics is None:  # the RNN steps through sorted times: a second pass
                z_context, _ = self.latent_paths(z0, batch.times, solver)
            at_context = rowwise(self.decoder, z_context)  # [S, B, T, C]
            params = residual.tensors(at_context)
            scale_context = residual.level_scale(at_context.mean(0))  # [B, T, C]
            scale_target = residual.level_scale(out["mean"].mean(0))  # [B, T', C]
            residuals = (batch.values - at_context) / scale_context
            outlying = outlying_rows(scale_context, batch.mask, scale_target, batch.target_lengths)
            shift, var = condition_residual(
                batch.times, residuals, batch.mask, batch.target_times, params, outlying
            )
            shift = within_context_range(shift, residuals, batch.mask, params[0])
            out["path"] = out["mean"]
            out["mean"] = out["mean"] + scale_target * shift
            out["noise_std"] = scale_target * (var + params[2]).sqrt()  # [B, T', C]
        if self.intensity is not None:
            out["log_intensity"] = rowwise(self.intensity.log_intensity, z)
        if self.classifier is not None:
            out["label_logits"] = self._label_logits_at_context_end(z0, batch, z, solver)
        return out


def _classifier(n_in: int, cfg: LatentODEConfig) -> nn.Module:
    """The label head on ``[latent features, statics]`` [..., n_in] → logits [..., 1]
    (see ``LatentODEConfig.classifier_hidden`` and ``label_readout``)."""
    width = cfg.hidden if cfg.classifier_hidden is None else int(cfg.classifier_hidden)
    if width == 0:
        return nn.Linear(n_in, 1)
    return nn.Sequential(nn.Linear(n_in, width), nn.Tanh(), nn.Linear(width, 1))


def last_state(z: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """z [S, B, T, L] at each series' last real time (index ``lengths - 1``) → [S, B, L]."""
    idx = (lengths - 1).clamp_min(0).to(z.device).view(1, -1, 1, 1)
    idx = idx.expand(z.shape[0], -1, 1, z.shape[-1])
    return z.gather(2, idx).squeeze(2)


def rowwise(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn`` (acting on the last dim only) on ``x`` [..., L] in ``x``'s memory order → [..., C].

    ``solve_at_times`` returns a permuted view; applying ``fn`` to the underlying
    contiguous order and permuting back avoids copying it (same values as ``fn(x)``).
    """
    lead = sorted(range(x.dim() - 1), key=lambda d: -x.stride(d))  # outermost first
    order = [*lead, x.dim() - 1]
    inner = x.permute(order)
    if not inner.is_contiguous():
        return fn(x)
    inverse = [order.index(d) for d in range(x.dim())]
    return fn(inner).permute(inverse)


def _window_integral(cum: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Λ at each series' last target minus Λ at its first: [S, B, T', C] → [S, B, C]."""
    last = (lengths - 1).clamp_min(0)  # [B]
    idx = last.view(1, -1, 1, 1).expand(cum.shape[0], -1, 1, cum.shape[-1])
    end = cum.gather(2, idx).squeeze(2)  # [S, B, C]
    return end - cum[:, :, 0]
