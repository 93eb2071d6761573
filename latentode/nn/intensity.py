"""Poisson-process head: when observations happen, as an intensity λ(z(t)) per channel.

Channel c is observed at the events of an inhomogeneous Poisson process with rate
``λ_c(t) = softplus(g_c(z(t)))``. Its log-likelihood on a window needs ``log λ`` at
the observed times and the integral ``Λ_c = ∫ λ_c dt`` over the window; the integral
is carried as extra state of the same ODE solve (:class:`AugmentedDynamics`), so it
costs no separate quadrature and is read out with the same per-series read-out as z.

Why softplus and not exp: softplus grows linearly, so Λ cannot overflow when the
latent state drifts during training, and λ > 0 always. ``log λ`` is computed stably
(for very negative pre-activations it equals the pre-activation).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from latentode.nn.readout import solve_at_times
from latentode.nn.solve import DEFAULT_SOLVER, NFECounter, SolverConfig, nfe_counter
from latentode.nn.vector_fields import mlp

__all__ = ["AugmentedDynamics", "PoissonIntensity", "intensity_at_times", "log_softplus"]

VectorField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# below this pre-activation softplus(a) = exp(a) to float precision, so log softplus(a) = a
_LINEAR_BELOW = -20.0


def log_softplus(a: torch.Tensor) -> torch.Tensor:
    """``log(softplus(a))`` without underflow to -inf for very negative ``a``."""
    safe = a.clamp(min=_LINEAR_BELOW)
    return torch.where(a < _LINEAR_BELOW, a, torch.log(F.softplus(safe)))


class PoissonIntensity(nn.Module):
    """Per-channel intensity ``λ(z) = softplus(MLP(z))`` of the observation process.

    Args:
        latent_dim: L.
        n_channels: C, one intensity per channel.
        hidden: width of the single hidden layer.
        activation: hidden activation name (see ``vector_fields.ACTIVATIONS``).

    ``log_intensity(z [..., L]) -> [..., C]``; ``forward(z)`` returns λ itself.
    """

    def __init__(
        self, latent_dim: int, n_channels: int, hidden: int = 32, activation: str = "tanh"
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.n_channels = n_channels
        self.net = mlp(latent_dim, n_channels, hidden, 1, activation)

    def log_intensity(self, z: torch.Tensor) -> torch.Tensor:
        """log λ(z): [..., L] → [..., C]."""
        return log_softplus(self.net(z))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """λ(z) > 0: [..., L] → [..., C]."""
        return F.softplus(self.net(z))


class AugmentedDynamics(nn.Module):
    """The latent ODE with the intensity's running integral as extra state.

    State ``[z, Λ]`` [..., L + C] with ``dz/dt = f(t, z)`` and ``dΛ_c/dt = λ_c(z)``.
    Start from :meth:`initial_state` (Λ(0) = 0); after :func:`solve_at_times`,
    :meth:`split` gives z and Λ at each query time. Λ(b) - Λ(a) is the integral of λ
    over [a, b], negative times included (Λ < 0 before time 0).

    ``nfe`` is the latent field's counter when it has one, so augmented solves count
    as evaluations of the latent field.
    """

    def __init__(self, latent_field: nn.Module, intensity: PoissonIntensity) -> None:
        super().__init__()
        self.latent_field = latent_field
        self.intensity = intensity
        self.latent_dim = intensity.latent_dim
        self.nfe = nfe_counter(latent_field) or NFECounter()

    def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        z = state[..., : self.latent_dim]  # [..., L]
        return torch.cat([self.latent_field(t, z), self.intensity(z)], dim=-1)  # [..., L + C]

    def initial_state(self, z0: torch.Tensor) -> torch.Tensor:
        """[..., L] → [..., L + C] with Λ = 0."""
        zeros = z0.new_zeros(*z0.shape[:-1], self.intensity.n_channels)
        return torch.cat([z0, zeros], dim=-1)

    def split(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[..., L + C] → (z [..., L], Λ [..., C])."""
        return state[..., : self.latent_dim], state[..., self.latent_dim :]


def intensity_at_times(
    latent_field: VectorField,
    intensity: PoissonIntensity,
    z0: torch.Tensor,
    times: torch.Tensor,
    solver: SolverConfig = DEFAULT_SOLVER,
    n_grid: int = 64,
) -> torch.Tensor:
    """λ at arbitrary times (e.g. a dense grid for plotting).

    Args:
        z0: [..., B, L] initial latent states at each series' time 0.
        times: [B, T'] each series' times.

    Returns:
        [..., B, T', C] intensity per channel.
    """
    z = solve_at_times(latent_field, z0, times, solver, n_grid)  # [..., B, T', L]
    return intensity(z)  # [..., B, T', C]
