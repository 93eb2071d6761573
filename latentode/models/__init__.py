"""Networks (plain ``nn.Module``s) chosen by name, and the LightningModule that trains them.

``build_network(kind, config)`` is how every caller makes a network, so a saved model
file or a checkpoint names its network by ``kind`` and plain-typed ``config`` only.
The solver settings the networks take (``SolverConfig``, ``ADAPTIVE_METHODS``) and
their function-evaluation counter (``nfe_counter``) are re-exported for the estimator, as
are the residual process (``ResidualProcess``) and its fit after training (``fit_residual``).
"""

from __future__ import annotations

from torch import nn

from latentode.errors import LatentODEError
from latentode.models.latent_ode import LatentODEConfig, LatentODENet
from latentode.models.odernn import AutoregressiveConfig, AutoregressiveNet
from latentode.models.residual_fit import fit_residual
from latentode.nn.residual_process import ResidualProcess
from latentode.nn.solve import ADAPTIVE_METHODS, SolverConfig, nfe_counter

NETWORKS: dict[str, type[nn.Module]] = {
    "latent_ode": LatentODENet,
    "autoregressive": AutoregressiveNet,
}


def build_network(kind: str, config: dict) -> nn.Module:
    """A fresh network of ``kind`` built from ``config`` (plain types)."""
    if kind not in NETWORKS:
        raise LatentODEError(f"unknown network kind {kind!r}; known kinds: {sorted(NETWORKS)}.")
    return NETWORKS[kind](config)


__all__ = [
    "ADAPTIVE_METHODS",
    "NETWORKS",
    "AutoregressiveConfig",
    "AutoregressiveNet",
    "LatentODEConfig",
    "LatentODENet",
    "ResidualProcess",
    "SolverConfig",
    "build_network",
    "fit_residual",
    "nfe_counter",
]
