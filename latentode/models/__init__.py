"""Networks (plain ``nn.Module``s) chosen by name, and the LightningModule that trains them.

``build_network(kind, config)`` is how every caller makes a network, so a saved model
file or a checkpoint names its network by ``kind`` and plain-typed ``config`` only.
"""

from __future__ import annotations

from torch import nn

from latentode.errors import LatentODEError
from latentode.models.latent_ode import LatentODEConfig, LatentODENet
from latentode.models.odernn import AutoregressiveConfig, AutoregressiveNet

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
    "NETWORKS",
    "AutoregressiveConfig",
    "AutoregressiveNet",
    "LatentODEConfig",
    "LatentODENet",
    "build_network",
]
