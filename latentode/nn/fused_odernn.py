"""The ODE-RNN pass to its final state as one autograd node, with a hand-written backward.

:class:`~latentode.nn.encoders.ODERNN` steps a batch through T observation positions;
at each, the hidden state flows through ``n`` Euler steps of ``dh/ds = gap · f(h)``
(``f`` a tanh MLP) and a GRU cell reads the observation. Written with ordinary torch
ops, every one of the ~T·(10·n + 15) small operations becomes an autograd node, and on
a CPU the step is bound by that per-op overhead and by small matrix products.

This module computes exactly the same function, ``final [B, H]``, as one
``torch.autograd.Function``:

- packed rows: a series' state is exactly 0 until its first step that moves it or
  reads an observation (padding read before a series' last observation, in reverse
  time), so the series are sorted by that step and step k works on the prefix of those
  already started, as in a packed sequence. In clinical batches half of the
  [T, B] positions are padding;
- forward: the GRU's input projection for all rows in one matrix product; each layer as
  ``addmm`` + ``sigmoid_`` into preallocated buffers, with ``tanh(x) = 2σ(2x) - 1``
  folded into the weights (torch's CPU ``sigmoid`` is ~4x faster than its ``tanh``);
- backward: reverse-mode through the recursion by hand (the Jacobian-vector products of
  tanh, sigmoid and the GRU gates, their elementwise factors computed for all rows at
  once), storing each layer's output gradient; then every weight gradient as ONE matrix
  product over all rows and Euler steps.

Only the final state gets a gradient (what the encoder uses); ``before``/``after``
states and the other configurations (time-dependent fields, other activations or
methods, the adjoint) stay on the generic path. Tested against the generic path's
values and gradients in float64 (``tests/test_fused_odernn.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from latentode.nn.solve import SolverConfig
from latentode.nn.vector_fields import MLPVectorField, Tanh

__all__ = ["fused_final_state", "supports_fused"]


def supports_fused(field: MLPVectorField, cell: nn.GRUCell, solver: SolverConfig) -> bool:
    """Whether :func:`fused_final_state` computes this pass: an autonomous tanh MLP field,
    a GRU cell with biases, and fixed-step Euler without the adjoint."""
    acts = [m for m in field.net if not isinstance(m, nn.Linear)]
    return (
        not field.time_dependent
        and all(isinstance(m, Tanh) for m in acts)
        and cell.bias
        and solver.method == "euler"
        and solver.step_size is not None
        and not solver.adjoint
    )


@dataclass(frozen=True)
class PackedSteps:
    """A step-major batch packed as in a packed sequence: step k's rows are the first
    ``counts[k]`` series of ``order`` (those started by step k), R = sum(counts) rows.

    scales: [R, 1] Euler step in real time (gap / n_euler); inputs: [R, I] GRU inputs;
    update: [R, 1] bool, True where the row reads an observation; order: [B] series
    sorted by the step they start at; counts: rows per step (Python ints).
    """

    scales: torch.Tensor
    inputs: torch.Tensor
    update: torch.Tensor
    order: torch.Tensor
    counts: tuple[int, ...]


def pack_steps(
    gaps: torch.Tensor, inputs: torch.Tensor, update: torch.Tensor, n_euler: int
) -> PackedSteps:
    """Pack step-major ``gaps`` [T, B], ``inputs`` [T, B, I] and ``update`` [T, B, 1]
    (reading order) into :class:`PackedSteps`. A series starts at its first step with a
    non-zero gap or an update; before it, its state is exactly the zero it started from."""
    n_steps, n_batch = gaps.shape
    live = (gaps != 0) | update.squeeze(-1)  # [T, B]
    never = torch.full((n_batch,), n_steps, device=gaps.device)
    start = torch.where(live.any(0), live.to(torch.uint8).argmax(0), never)  # [B]
    order = torch.sort(start, stable=True).indices  # [B]
    steps = torch.arange(n_steps, device=gaps.device)
    active = start[order].unsqueeze(0) <= steps.unsqueeze(1)  # [T, B] sorted: a prefix per row
    rows = (steps.unsqueeze(1) * n_batch + order.unsqueeze(0))[active]  # [R] into T·B
    counts = tuple(int(c) for c in active.sum(1).tolist())
    return PackedSteps(
        scales=(gaps.reshape(-1)[rows] * (1.0 / n_euler)).unsqueeze(-1),
        inputs=inputs.reshape(n_steps * n_batch, inputs.shape[-1])[rows],
        update=update.reshape(-1)[rows].unsqueeze(-1),
        order=order,
        counts=counts,
    )


def fused_final_state(
    field: MLPVectorField,
    cell: nn.GRUCell,
    solver: SolverConfig,
    gaps: torch.Tensor,
    inputs: torch.Tensor,
    update: torch.Tensor,
) -> torch.Tensor:
    """Final hidden state [B, H] of the ODE-RNN recursion, from a zero state.

    Args (all in reading order, step k = the k-th position read):
        field, cell: the ODE-RNN's vector field and GRU cell (see :func:`supports_fused`).
        solver: Euler with ``step_size`` on the clock s ∈ [0, 1]: n = ceil(1/step_size)
            steps per gap.
        gaps: [T, B] time moved before reading step k (0 for padding).
        inputs: [T, B, I] GRU input at step k.
        update: [T, B, 1] bool, True where step k is read (something observed).

    Without gradients (inference) it keeps no per-step buffers.

    Returns:
        [B, H] the state after the last step; differentiable in the field's and the
        cell's parameters (not in ``gaps`` or ``inputs``, which are data).
    """
    n_euler = max(1, math.ceil(1.0 / solver.step_size - 1e-9))
    if inputs.shape[0] == 0 or inputs.shape[1] == 0:  # no position or no series: zeros,
        return inputs.new_zeros(inputs.shape[1], cell.hidden_size)  # which no weight moves
    field.nfe.forward += n_euler * gaps.shape[0]
    packed = pack_steps(gaps, inputs, update, n_euler)
    linears = [m for m in field.net if isinstance(m, nn.Linear)]
    params = [p for lin in linears for p in (lin.weight, lin.bias)]
    params += [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    if torch.is_grad_enabled() and any(p.requires_grad for p in params):
        return _FusedODERNN.apply(packed, n_euler, *params)
    sorted_state = _run(packed, n_euler, params, keep=False)[0]
    return _unsort(sorted_state, packed.order)


def _unsort(rows: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Rows in ``order`` ([B, ...], row i is series order[i]) → rows in series order."""
    return torch.empty_like(rows).index_copy_(0, order, rows)


class _FusedODERNN(torch.autograd.Function):
    """``(packed, n_euler, *params) → h [B, H]``.

    ``params``: (W, b) of each field layer, then the GRU's w_ih, w_hh, b_ih, b_hh.
    Euler step: h ← h + scale · f(h); f = W_d·a_d + b_d with a_{j+1} = tanh(W_j·a_j + b_j),
    a_0 = h. GRU (torch's gate order r, z, n): r, z = σ(gi + gh), n = tanh(gi_n + r·gh_n),
    h' = n + z·(h − n), kept where ``update`` is 1.
    """

    @staticmethod
    def forward(ctx, packed: PackedSteps, n_euler: int, *params):
        h, buffers = _run(packed, n_euler, params, keep=True)
        ctx.packed, ctx.n_euler, ctx.n_layers = packed, n_euler, (len(params) - 4) // 2
        ctx.save_for_backward(*buffers, *params)
        return _unsort(h, packed.order)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h):
        packed, n_euler, n_layers = ctx.packed, ctx.n_euler, ctx.n_layers
        saved = ctx.saved_tensors
        states, h_read, gates_rz, gates_n, gh_n = saved[:5]  # see _run
        sigmas = saved[5 : 5 + n_layers - 1]  # σ(2·pre-activation) of each hidden layer
        params = saved[5 + n_layers - 1 :]
        weights = params[0 : 2 * n_layers : 2]
        w_hh = params[2 * n_layers + 1]
        hidden = w_hh.shape[1]
        counts = packed.counts
        evals = [n for n in counts for _ in range(n_euler)]  # rows per evaluation
        like = {"dtype": grad_h.dtype, "device": grad_h.device}
        # the elementwise factors of the chain rule, for all rows at once
        acts = [2 * s - 1 for s in sigmas]  # tanh outputs of the hidden layers
        d_acts = [4 * s * (1 - s) for s in sigmas]  # tanh' = 1 - tanh² = 4σ(1 - σ)
        update = packed.update.to(grad_h.dtype)
        r, z = gates_rz[:, :hidden], gates_rz[:, hidden:]
        on_n = update * (1 - z) * (1 - gates_n * gates_n)  # ∂h'/∂(n's pre-activation)
        on_z = update * (z - z * z) * (h_read - gates_n)  # ∂h'/∂(z's pre-activation)
        on_r = (r - r * r) * gh_n  # ∂(n's pre-activation)/∂(r's pre-activation)
        keep = 1 - update * (1 - z)  # ∂h'/∂h directly
        # gradients at each field layer's output (pre-activation of hidden layers)
        grad_out = [torch.empty(sum(evals), w.shape[0], **like) for w in weights]
        grad_gh = torch.empty(sum(counts), 3 * hidden, **like)  # ∂/∂(W_hh·h + b_hh)
        grad_gi_n = torch.empty(sum(counts), hidden, **like)  # ∂/∂(n's input projection)
        e_views = [buf.split(evals) for buf in grad_out]
        d_views = [d.split(evals) for d in d_acts]
        step_views = [
            t.split(counts) for t in (grad_gh, grad_gi_n, on_n, on_z, on_r, keep, r, packed.scales)
        ]
        g = grad_h.index_select(0, packed.order)  # [B, H] sorted like the rows
        e = len(evals)
        for k in range(len(counts) - 1, -1, -1):
            n = counts[k]
            if n == 0:
                e -= n_euler
                continue
            gh, gi_n, a_n, a_z, a_r, kept, r_k, scale = (v[k] for v in step_views)
            g = g[:n]  # rows not yet started at step k held the constant zero state
            # GRU: h' = h + u·(n + z·(h − n) − h); r and z see gi and gh alike
            d_n = torch.mul(g, a_n, out=gi_n)
            torch.mul(d_n, a_r, out=gh[:, :hidden])
            torch.mul(g, a_z, out=gh[:, hidden : 2 * hidden])
            torch.mul(d_n, r_k, out=gh[:, 2 * hidden :])
            g = torch.addmm(g * kept, gh, w_hh)  # [n, H]
            # Euler steps, last first: h_out = h + scale · f(h)
            for _ in range(n_euler):
                e -= 1
                grad = torch.mul(g, scale, out=e_views[-1][e])
                for j in range(n_layers - 1, 0, -1):
                    grad = torch.mul(grad @ weights[j], d_views[j - 1][e], out=e_views[j - 1][e])
                g = torch.addmm(g, grad, weights[0])
        inputs = [states, *acts]  # each layer's input, per evaluation row
        grads: list[torch.Tensor | None] = [None, None]
        for j in range(n_layers):
            grads.append(grad_out[j].t() @ inputs[j])  # weight
            grads.append(grad_out[j].sum(0))  # bias
        grad_gi = torch.cat([grad_gh[:, : 2 * hidden], grad_gi_n], dim=1)  # [R, 3H]
        grads.append(grad_gi.t() @ packed.inputs)  # w_ih
        grads.append(grad_gh.t() @ h_read)  # w_hh
        grads.append(grad_gi.sum(0))  # b_ih
        grads.append(grad_gh.sum(0))  # b_hh
        return tuple(grads)


def _sigmoid_space(params, hidden: int) -> tuple[list, list, tuple]:
    """The field's layers and the GRU's weights rewritten for ``tanh(x) = 2σ(2x) − 1``.

    Hidden layer j keeps ``s_j = σ(2·pre_j)`` instead of ``a_j = tanh(pre_j) = 2 s_j − 1``,
    so its successor's pre-activation ``W a + b`` is ``2W s + (b − W·1)``, and layers
    feeding a sigmoid are doubled. Returns (transposed weights, biases) per field layer
    and the GRU's (w_ih^T, w_hh^T, b_ih, b_hh) with the n gate's rows doubled.
    """
    n_layers = (len(params) - 4) // 2
    weights_t, biases = [], []
    for j in range(n_layers):
        w, b = params[2 * j], params[2 * j + 1]
        out_scale = 2.0 if j < n_layers - 1 else 1.0  # into a sigmoid, or the field's output
        if j > 0:  # the input is s = (a + 1) / 2
            w, b = 2.0 * w, b - w.sum(1)
        weights_t.append((out_scale * w).t())
        biases.append(out_scale * b)
    w_ih, w_hh, b_ih, b_hh = params[2 * n_layers :]
    double_n = torch.ones(3 * hidden, 1, dtype=w_ih.dtype, device=w_ih.device)
    double_n[2 * hidden :] = 2.0
    doubled = (w_ih * double_n).t(), (w_hh * double_n).t()
    return weights_t, biases, (*doubled, b_ih * double_n[:, 0], b_hh * double_n[:, 0])


def _run(packed: PackedSteps, n_euler: int, params, keep: bool):
    """The recursion of :class:`_FusedODERNN` on the packed rows → (h [B, H] sorted like
    ``packed.order``, buffers). With ``keep`` the buffers hold every row's state at each
    evaluation, its σ of each hidden layer and its gates (for the backward); without,
    scratch rows are reused (inference: memory O(B·H))."""
    n_layers = (len(params) - 4) // 2
    hidden = params[2 * n_layers + 1].shape[1]
    counts = packed.counts
    n_batch = packed.order.shape[0]
    weights_t, biases, (w_ih_t, w_hh_t, b_ih, b_hh) = _sigmoid_space(params, hidden)
    widths = [w.shape[1] for w in weights_t[:-1]]  # hidden layer widths
    like = {"dtype": packed.inputs.dtype, "device": packed.inputs.device}
    evals = [n for n in counts for _ in range(n_euler)]
    # the GRU's input projection for every row at once (n gate doubled)
    gi = torch.addmm(b_ih, packed.inputs, w_ih_t)  # [R, 3H]

    def rows(width: int, per_step: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """A buffer for every row (keep) and its views per step or per evaluation; without
        ``keep``, one scratch buffer whose first rows every step reuses."""
        sizes = counts if per_step else evals
        if keep:
            base = torch.empty(sum(sizes), width, **like)
            return base, list(base.split(sizes))
        base = torch.empty(n_batch, width, **like)
        return base, [base[:n] for n in sizes]

    bases, views = zip(
        *(rows(hidden, per_step=False), *(rows(w, per_step=False) for w in widths)),
    )
    states, sigmas = views[0], views[1:]  # layer 0's input (the state) and σ per hidden layer
    step_bases, (h_read, gates_rz, gates_n, gh_rows) = zip(
        *(rows(w, per_step=True) for w in (hidden, 2 * hidden, hidden, 3 * hidden))
    )
    gh_doubled = step_bases[-1]  # W_hh·h + b_hh with the n gate's rows doubled
    step_bases = step_bases[:-1]
    minus_one = torch.full((), -1.0, **like)
    every_update = bool(packed.update.all())
    gi_rows, scales, update = (t.split(counts) for t in (gi, packed.scales, packed.update))
    state = torch.zeros(n_batch, hidden, **like)  # sorted like packed.order
    e = 0
    for k, n in enumerate(counts):
        if n == 0:  # no series has started yet
            e += n_euler
            continue
        scale, h = scales[k], state[:n]
        for i in range(n_euler):
            x = states[e]
            if i == 0:
                x.copy_(h)
            a = x
            for j in range(n_layers - 1):
                a = torch.addmm(biases[j], a, weights_t[j], out=sigmas[j][e]).sigmoid_()
            out = torch.addmm(biases[-1], a, weights_t[-1])
            following = states[e + 1] if i < n_euler - 1 else h_read[k]
            torch.addcmul(x, scale, out, out=following)
            e += 1
        h = h_read[k]
        gh = torch.addmm(b_hh, h, w_hh_t, out=gh_rows[k])  # [n, 3H]
        rz = torch.add(gi_rows[k][:, : 2 * hidden], gh[:, : 2 * hidden], out=gates_rz[k])
        rz.sigmoid_()
        pre_n = gi_rows[k][:, 2 * hidden :]
        new = torch.addcmul(pre_n, rz[:, :hidden], gh[:, 2 * hidden :], out=gates_n[k])
        torch.add(minus_one, new.sigmoid_(), alpha=2, out=new)  # n = tanh(pre) = 2σ(2·pre) − 1
        if every_update:  # h' = n + z·(h − n)
            torch.addcmul(new, rz[:, hidden:], h - new, out=state[:n])
        else:  # kept where nothing is read
            torch.where(update[k], torch.addcmul(new, rz[:, hidden:], h - new), h, out=state[:n])
    if not keep:
        return state, ()
    gh_n = gh_doubled[:, 2 * hidden :].mul_(0.5)  # gh's n part, undoubled
    return state, (bases[0], *step_bases, gh_n, *bases[1:])
