"""The one wrapper over the ODE solvers: solver settings, solves, step limits and NFE counts.

Nothing else in latentode calls torchdiffeq. Solvers are chosen by name from
torchdiffeq's own registry (``torchdiffeq._impl.odeint.SOLVERS``), so a solver added
there is available here without code changes. The default, ``dopri5`` without the
adjoint, runs in our own loop (:mod:`latentode.nn.dopri5`: the same steps and values,
without torchdiffeq's quadratic backward over the requested times).

Three entry points:

- :func:`solve` integrates ``dy/dt = func(t, y)`` and returns the state at every
  requested time (``odeint``, ``odeint_adjoint`` or :func:`~latentode.nn.dopri5.dopri5_solve`).
- :func:`advance` carries a state from ``t0`` to ``t1`` and returns only the end state;
  for explicit fixed-step Runge-Kutta methods it takes the steps itself (same
  formulas as torchdiffeq, without its per-call overhead), which is what the
  ODE-RNN encoder does once per observation.
- :class:`NFECounter` counts function evaluations. A vector field that carries one as
  its ``nfe`` attribute is counted by every solve; forward and adjoint-backward
  evaluations are counted separately.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint
from torchdiffeq._impl.odeint import SOLVERS
from torchdiffeq._impl.solvers import FixedGridODESolver

from latentode.errors import LatentODEError
from latentode.nn.dopri5 import NonFiniteSolve, StepLimitExceeded, dopri5_solve

__all__ = [
    "ADAPTIVE_METHODS",
    "DEFAULT_SOLVER",
    "DIRECT_STEP_METHODS",
    "FIXED_GRID_METHODS",
    "METHODS",
    "NFECounter",
    "ODESolveError",
    "ODEStepLimitError",
    "SolverConfig",
    "advance",
    "nfe_counter",
    "solve",
]

VectorField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# scipy_solver runs on NumPy (CPU only, no autograd) and takes no step limit: not offered.
_EXCLUDED = {"scipy_solver"}
METHODS: tuple[str, ...] = tuple(sorted(name for name in SOLVERS if name not in _EXCLUDED))
FIXED_GRID_METHODS: frozenset[str] = frozenset(
    name for name in METHODS if issubclass(SOLVERS[name], FixedGridODESolver)
)
ADAPTIVE_METHODS: frozenset[str] = frozenset(METHODS) - FIXED_GRID_METHODS


class ODESolveError(LatentODEError):
    """The ODE solver could not integrate: the state became NaN/inf or the step size underflowed."""


class ODEStepLimitError(ODESolveError):
    """More than ``SolverConfig.max_steps`` steps were needed (see :class:`SolverConfig`)."""


_ADVICE = (
    "Try a looser tolerance (larger rtol/atol), a smaller learning rate or gradient "
    "clipping, and check that values and times are scaled (times of order 1)."
)


@dataclass(frozen=True)
class SolverConfig:
    """How to integrate an ODE; validated when built.

    Args:
        method: a torchdiffeq solver name (see :data:`METHODS`), e.g. ``"dopri5"``
            (adaptive), ``"rk4"`` or ``"euler"`` (fixed grid).
        rtol, atol: relative and absolute error tolerance of adaptive methods.
        step_size: step of fixed-grid methods, in the solve's time unit. ``None``
            means one step between consecutive requested times (torchdiffeq's own
            behaviour): the requested times are the grid. Must be ``None`` for
            adaptive methods, which choose their own steps.
        max_steps: the most steps an adaptive solver may take between two
            consecutive requested times (torchdiffeq's ``max_num_steps``; it counts
            per output interval, rejected steps included); for a fixed-grid method
            with a ``step_size``, the most steps of the whole solve. ``None``: no limit.
        adjoint: backpropagate with the adjoint method (memory independent of the
            number of steps, one extra solve backwards) instead of through the steps.

    Raises:
        LatentODEError: unknown method (the message lists the valid ones), a
            non-positive tolerance, step size or step limit, or a step size given
            to an adaptive method.
    """

    method: str = "dopri5"
    rtol: float = 1e-3
    atol: float = 1e-4
    step_size: float | None = None
    max_steps: int | None = 10_000
    adjoint: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise LatentODEError(
                f"Unknown ODE solver method {self.method!r}. Valid methods: {', '.join(METHODS)}."
            )
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise LatentODEError(
                    f"SolverConfig.{name} must be a positive number, got {value!r}."
                )
        if self.step_size is not None:
            if self.method in ADAPTIVE_METHODS:
                raise LatentODEError(
                    f"SolverConfig.step_size={self.step_size!r} was given for the adaptive method "
                    f"{self.method!r}, which chooses its own steps. Drop step_size, or pick a "
                    f"fixed-grid method: {', '.join(sorted(FIXED_GRID_METHODS))}."
                )
            ok = isinstance(self.step_size, (int, float)) and math.isfinite(self.step_size)
            if not (ok and self.step_size > 0):
                raise LatentODEError(
                    f"SolverConfig.step_size must be a positive number or None, got "
                    f"{self.step_size!r}."
                )
        if self.max_steps is not None and not (
            isinstance(self.max_steps, int) and not isinstance(self.max_steps, bool)
        ):
            raise LatentODEError(
                f"SolverConfig.max_steps must be a positive int or None, got {self.max_steps!r}."
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise LatentODEError(f"SolverConfig.max_steps must be >= 1, got {self.max_steps}.")
        if not isinstance(self.adjoint, bool):
            raise LatentODEError(
                f"SolverConfig.adjoint must be True or False, got {self.adjoint!r}."
            )

    @property
    def adaptive(self) -> bool:
        """Whether the method chooses its own step sizes."""
        return self.method in ADAPTIVE_METHODS

    def to_dict(self) -> dict:
        """Plain JSON-able dict; :meth:`from_dict` inverts it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> SolverConfig:
        """Build from :meth:`to_dict`'s output. Unknown keys raise LatentODEError."""
        valid = {f.name for f in fields(cls)}
        unknown = set(d) - valid
        if unknown:
            raise LatentODEError(
                f"Unknown SolverConfig key(s) {sorted(unknown)}; valid keys: {sorted(valid)}."
            )
        return cls(**d)

    def _options(self) -> dict:
        """torchdiffeq's ``options`` for this method."""
        if self.adaptive:
            return {} if self.max_steps is None else {"max_num_steps": self.max_steps}
        return {} if self.step_size is None else {"step_size": self.step_size}


DEFAULT_SOLVER = SolverConfig()


@dataclass
class NFECounter:
    """Function evaluations of a vector field, as plain Python ints (no device syncs).

    ``forward`` counts evaluations made while solving forward; ``backward`` those
    made by an adjoint backward solve (direct backpropagation evaluates nothing new).
    Reset before the work you want to measure.
    """

    forward: int = 0
    backward: int = 0

    @property
    def total(self) -> int:
        return self.forward + self.backward

    def reset(self) -> None:
        self.forward = 0
        self.backward = 0


def nfe_counter(func: object) -> NFECounter | None:
    """The :class:`NFECounter` a vector field carries as ``func.nfe``, or None."""
    counter = getattr(func, "nfe", None)
    return counter if isinstance(counter, NFECounter) else None


class _Counted:
    """Calls ``func`` and counts the call; after the forward solve, counts as backward."""

    __slots__ = ("backward", "counter", "func")

    def __init__(self, func: VectorField, counter: NFECounter) -> None:
        self.func = func
        self.counter = counter
        self.backward = False

    def __call__(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.backward:
            self.counter.backward += 1
        else:
            self.counter.forward += 1
        return self.func(t, y)


def _translate(error: Exception, config: SolverConfig) -> Exception:
    """A solver's failure (torchdiffeq's assertion, or our dopri5 loop's error) → a
    latentode error that says what to do; any other error is returned as it is."""
    message = str(error)
    if "max_num_steps exceeded" in message:
        return ODEStepLimitError(
            f"The {config.method} solver exceeded max_steps={config.max_steps} steps between "
            f"two output times (rtol={config.rtol}, atol={config.atol}): the dynamics are "
            f"stiff or exploding. {_ADVICE} Or raise SolverConfig.max_steps."
        )
    if "underflow in dt" in message or "non-finite values" in message:
        return ODESolveError(
            f"The {config.method} solver failed: the state became NaN/inf or the step size "
            f"shrank to zero ({message.splitlines()[0][:120]}). Check the inputs for NaN/inf. "
            f"{_ADVICE}"
        )
    return error


def solve(
    func: VectorField,
    y0: torch.Tensor,
    t: torch.Tensor,
    config: SolverConfig = DEFAULT_SOLVER,
    *,
    nfe: NFECounter | None = None,
    adjoint_params: Iterable[torch.Tensor] | None = None,
    norm: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Solve ``dy/dt = func(t, y)``, ``y(t[0]) = y0``, and return ``y`` at every time in ``t``.

    Args:
        func: the vector field, called as ``func(t, y)`` with a scalar tensor ``t``;
            must return a tensor shaped like ``y``. With ``config.adjoint`` it must be
            an ``nn.Module`` unless ``adjoint_params`` is given.
        y0: [*shape] initial state (any shape, e.g. [B, L] or [S, B, L]).
        t: [N] strictly increasing or strictly decreasing times, ``t[0]`` the start.
        config: solver settings.
        nfe: counter to increment; default ``func.nfe`` when it is an :class:`NFECounter`.
        adjoint_params: tensors the adjoint computes gradients for; default
            ``func.parameters()``. Tensors ``func`` closes over that are not listed
            get no gradient under the adjoint.
        norm: how an adaptive method measures the scaled error of a step (a tensor
            shaped like ``y`` → a scalar); default torchdiffeq's RMS over all of ``y``.

    Returns:
        [N, *shape] the state at each time of ``t`` (``out[0]`` is ``y0``).

    Raises:
        ODEStepLimitError: an adaptive solver exceeded ``config.max_steps`` between two
            output times, or a fixed-grid solve would need more than ``max_steps`` steps.
        ODESolveError: the state became NaN/inf (adaptive methods) or the step size
            underflowed. Fixed-grid methods do not check: NaN propagates to the output.
        LatentODEError: ``config.adjoint`` with a ``func`` that is not an ``nn.Module``
            and no ``adjoint_params``.

    Note: under the adjoint, a step limit hit while solving backwards surfaces from
    ``loss.backward()`` as torchdiffeq's ``AssertionError("max_num_steps exceeded")``.
    """
    t = torch.as_tensor(t, device=y0.device)
    if not t.is_floating_point():
        t = t.to(y0.dtype)
    if not config.adaptive and config.step_size is not None and config.max_steps is not None:
        n_steps = math.ceil(abs(float(t[-1] - t[0])) / config.step_size)
        if n_steps > config.max_steps:
            raise ODEStepLimitError(
                f"A {config.method} solve over a span of {abs(float(t[-1] - t[0])):.4g} with "
                f"step_size={config.step_size} needs {n_steps} steps, more than "
                f"max_steps={config.max_steps}. Use a larger step_size or raise max_steps."
            )
    counter = nfe if nfe is not None else nfe_counter(func)
    if config.method == "dopri5" and not config.adjoint:
        return _own_dopri5(func, y0, t, config, counter, norm)
    counted = func if counter is None else _Counted(func, counter)
    kwargs = {
        "rtol": config.rtol,
        "atol": config.atol,
        "method": config.method,
        "options": config._options(),
    }
    if norm is not None and config.adaptive:
        kwargs["options"] = {**kwargs["options"], "norm": norm}
    try:
        if not config.adjoint:
            return odeint(counted, y0, t, **kwargs)
        if adjoint_params is None:
            if not isinstance(func, nn.Module):
                raise LatentODEError(
                    "SolverConfig(adjoint=True) needs the vector field to be a torch.nn.Module "
                    "(or pass adjoint_params=...), so that its parameters get gradients."
                )
            adjoint_params = func.parameters()
        out = odeint_adjoint(counted, y0, t, adjoint_params=tuple(adjoint_params), **kwargs)
        if isinstance(counted, _Counted):
            counted.backward = True  # any later call comes from the adjoint backward solve
        return out
    except AssertionError as error:
        raise _translate(error, config) from error


def _own_dopri5(
    func: VectorField,
    y0: torch.Tensor,
    t: torch.Tensor,
    config: SolverConfig,
    counter: NFECounter | None,
    norm: Callable[[torch.Tensor], torch.Tensor] | None,
) -> torch.Tensor:
    """:func:`~latentode.nn.dopri5.dopri5_solve` with this module's errors and counts."""

    def count() -> None:
        counter.forward += 1

    try:
        return dopri5_solve(
            func,
            y0,
            t,
            config.rtol,
            config.atol,
            config.max_steps,
            norm=norm,
            on_eval=None if counter is None else count,
        )
    except (StepLimitExceeded, NonFiniteSolve) as error:
        raise _translate(error, config) from error


# Explicit Runge-Kutta tableaux (c, a, b), the same formulas as torchdiffeq's fixed-grid
# solvers of the same name (its "rk4" is the 3/8 rule).
_TABLEAUX: dict[str, tuple[tuple[float, ...], tuple[tuple[float, ...], ...], tuple[float, ...]]] = {
    "euler": ((0.0,), ((),), (1.0,)),
    "midpoint": ((0.0, 0.5), ((), (0.5,)), (0.0, 1.0)),
    "heun2": ((0.0, 1.0), ((), (1.0,)), (0.5, 0.5)),
    "heun3": ((0.0, 1 / 3, 2 / 3), ((), (1 / 3,), (0.0, 2 / 3)), (0.25, 0.0, 0.75)),
    "rk4": (
        (0.0, 1 / 3, 2 / 3, 1.0),
        ((), (1 / 3,), (-1 / 3, 1.0), (1.0, -1.0, 1.0)),
        (0.125, 0.375, 0.375, 0.125),
    ),
}
DIRECT_STEP_METHODS: frozenset[str] = frozenset(_TABLEAUX)


def _rk_step(
    func: VectorField, t0: float, dt: float, y0: torch.Tensor, method: str
) -> torch.Tensor:
    """One explicit Runge-Kutta step of size ``dt`` from ``(t0, y0)``."""
    c, a, b = _TABLEAUX[method]
    ks: list[torch.Tensor] = []
    for ci, ai in zip(c, a):
        yi = y0
        for aij, kj in zip(ai, ks):
            if aij != 0.0:
                yi = yi + (dt * aij) * kj
        ks.append(func(t0 + ci * dt, yi))
    out = y0
    for bi, ki in zip(b, ks):
        if bi != 0.0:
            out = out + (dt * bi) * ki
    return out


def advance(
    func: VectorField,
    y0: torch.Tensor,
    t0: float,
    t1: float,
    config: SolverConfig,
    *,
    nfe: NFECounter | None = None,
    adjoint_params: Iterable[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Carry ``y0`` from time ``t0`` to ``t1`` and return ``y(t1)`` (same shape as ``y0``).

    For the explicit fixed-step methods in :data:`DIRECT_STEP_METHODS` (euler, midpoint,
    heun2, heun3, rk4) without adjoint, takes ``n = ceil(|t1 - t0| / step_size)`` equal
    steps itself (one step when ``step_size`` is None), with torchdiffeq's formulas but
    none of its per-call set-up; ``func`` then receives ``t`` as a Python float. Every
    other configuration calls :func:`solve` on ``[t0, t1]``. Counts evaluations like
    :func:`solve`.
    """
    if config.adjoint or config.method not in _TABLEAUX:
        t = torch.tensor([t0, t1], dtype=y0.dtype, device=y0.device)
        return solve(func, y0, t, config, nfe=nfe, adjoint_params=adjoint_params)[-1]
    span = t1 - t0
    n = 1 if config.step_size is None else max(1, math.ceil(abs(span) / config.step_size - 1e-9))
    dt = span / n
    counter = nfe if nfe is not None else nfe_counter(func)
    if counter is not None:
        counter.forward += n * len(_TABLEAUX[config.method][0])
    y = y0
    for i in range(n):
        y = _rk_step(func, t0 + i * dt, dt, y, config.method)
    return y
