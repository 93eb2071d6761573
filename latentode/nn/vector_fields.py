"""Neural vector fields ``dz/dt = f(t, z)`` and the small MLPs they are made of."""

from __future__ import annotations

import torch
from torch import nn

from latentode.errors import LatentODEError
from latentode.nn.solve import NFECounter

__all__ = ["ACTIVATIONS", "MLPVectorField", "Tanh", "activation", "mlp"]

#: from this many elements on, CPU tanh goes through the sigmoid form (measured crossover:
#: ~5,000 without gradients, ~12,000 with the backward pass)
FAST_TANH_MIN_ELEMENTS = 16384


class _SigmoidTanh(torch.autograd.Function):
    """tanh(x) = 2·sigmoid(2x) − 1, with tanh's own backward g·(1 − y²)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = torch.sigmoid(2 * x).mul_(2).sub_(1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


class Tanh(nn.Module):
    """``torch.tanh``, computed as ``2·sigmoid(2x) − 1`` for large CPU tensors.

    Same function (float32 values differ by at most ~2e-7); on CPU torch's sigmoid kernel
    is several times faster than its tanh (1,000 x 100 predictions: ~40% less time), so
    big batches take that route; small tensors and GPUs use ``torch.tanh``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and x.numel() >= FAST_TANH_MIN_ELEMENTS:
            return _SigmoidTanh.apply(x)
        return torch.tanh(x)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
}


def activation(name: str) -> nn.Module:
    """A fresh activation module by name; unknown names raise LatentODEError listing valid ones."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise LatentODEError(
            f"Unknown activation {name!r}. Valid activations: {', '.join(sorted(ACTIVATIONS))}."
        ) from None


def mlp(
    in_dim: int, out_dim: int, hidden: int, depth: int, activation_name: str = "tanh"
) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` with the named activation, then a linear output.

    ``depth=0`` is a single linear map. Maps [..., in_dim] → [..., out_dim].
    """
    if depth < 0 or hidden < 1:
        raise LatentODEError(f"An MLP needs depth >= 0 and hidden >= 1, got {depth=}, {hidden=}.")
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), activation(activation_name)]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class MLPVectorField(nn.Module):
    """An autonomous (or time-dependent) MLP vector field ``dz/dt = f(z)`` (or ``f(t, z)``).

    Args:
        dim: state size L.
        hidden: width of the hidden layers.
        depth: number of hidden layers (0: a linear field).
        activation: name in :data:`ACTIVATIONS`.
        time_dependent: feed ``t`` to the MLP as an extra input.

    Attributes:
        nfe: :class:`~latentode.nn.solve.NFECounter` that every solve of this field
            increments; reset it before measuring.

    ``forward(t, z)``: ``z`` [..., L] with any leading dims; ``t`` a scalar (float or
    tensor) or a tensor broadcastable to ``z.shape[:-1]`` (only read when
    ``time_dependent``). Returns dz/dt [..., L].
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 64,
        depth: int = 2,
        activation: str = "tanh",
        time_dependent: bool = False,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.time_dependent = time_dependent
        self.net = mlp(dim + int(time_dependent), dim, hidden, depth, activation)
        self.nfe = NFECounter()

    def forward(self, t: torch.Tensor | float, z: torch.Tensor) -> torch.Tensor:
        if self.time_dependent:
            t = torch.as_tensor(t, dtype=z.dtype, device=z.device)
            t_col = t.reshape(*t.shape, 1).expand(*z.shape[:-1], 1)  # [..., 1]
            z = torch.cat([z, t_col], dim=-1)  # [..., L + 1]
        return self.net(z)  # [..., L]
