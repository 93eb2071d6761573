"""The ODE-RNN pass to its final state as one autograd node, with a hand-written backward.

:class:`~latentode.nn.encoders.ODERNN` steps a batch through T observation positions;
at each, the hidden state flows through ``n`` Euler steps of ``dh/ds = gap · f(h)``
(``f`` a tanh MLP) and a GRU cell reads the observation. Written with ordinary torch
ops, every one of the ~T·(10·n + 15) small operations becomes an autograd node, and on
a CPU the step is bound by that per-op overhead, not by arithmetic (50 x 50 matrices).

This module computes exactly the same function, ``final [B, H]``, as one
``torch.autograd.Function``:

- forward: the GRU's input projection for all positions in one matrix product; each
  Euler step as ``addmm``/``tanh_``/``addcmul`` writing into preallocated buffers;
- backward: reverse-mode through the recursion by hand (the Jacobian-vector products
  of tanh, sigmoid and the GRU gates), storing each layer's output gradient; then every
  weight gradient as ONE matrix product over all positions and Euler steps.

Only the final state gets a gradient (what the encoder uses); ``before``/``after``
states and the other configurations (time-dependent fields, other activations or
methods, the adjoint) stay on the generic path. Tested against the generic path's
values and gradients in float64 (``tests/test_fused_odernn.py``).
"""

from __future__ import annotations

import math

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
    if inputs.shape[0] == 0:  # no position to read: the zero state, which no weight moves
        return inputs.new_zeros(inputs.shape[1], cell.hidden_size)
    field.nfe.forward += n_euler * gaps.shape[0]
    scales = (gaps * (1.0 / n_euler)).unsqueeze(-1)  # [T, B, 1] Euler step in real time
    linears = [m for m in field.net if isinstance(m, nn.Linear)]
    params = [p for lin in linears for p in (lin.weight, lin.bias)]
    params += [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    if torch.is_grad_enabled() and any(p.requires_grad for p in params):
        return _FusedODERNN.apply(scales, inputs, update, n_euler, *params)
    return _run(scales, inputs, update, n_euler, params, keep=False)[0]


class _FusedODERNN(torch.autograd.Function):
    """``(scales [T,B,1], inputs [T,B,I], update [T,B,1] bool, n_euler, *params) → h [B, H]``.

    ``params``: (W, b) of each field layer, then the GRU's w_ih, w_hh, b_ih, b_hh.
    Euler step: h ← h + scale · f(h); f = W_d·a_d + b_d with a_{j+1} = tanh(W_j·a_j + b_j),
    a_0 = h. GRU (torch's gate order r, z, n): r, z = σ(gi + gh), n = tanh(gi_n + r·gh_n),
    h' = n + z·(h − n), kept where ``update`` is 1.
    """

    @staticmethod
    def forward(ctx, scales, inputs, update, n_euler, *params):
        h, buffers = _run(scales, inputs, update, n_euler, params, keep=True)
        ctx.n_euler, ctx.n_layers = n_euler, (len(params) - 4) // 2
        ctx.save_for_backward(scales, inputs, update, *buffers, *params)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h):
        n_euler, n_layers = ctx.n_euler, ctx.n_layers
        saved = ctx.saved_tensors
        scales, inputs, update, h_read, gates_rz, gates_n, gh_n = saved[:7]  # see _run
        acts = saved[7 : 7 + n_layers]
        params = saved[7 + n_layers :]
        weights = params[0 : 2 * n_layers : 2]
        w_hh = params[2 * n_layers + 1]
        n_steps, n_batch, _ = inputs.shape
        hidden = w_hh.shape[1]
        evals = n_steps * n_euler
        # gradient at each field layer's output (pre-activation for hidden layers), per eval
        like = {"dtype": grad_h.dtype, "device": grad_h.device}
        grad_out = [torch.empty(evals, n_batch, w.shape[0], **like) for w in weights]
        grad_gi = torch.empty(n_steps, n_batch, 3 * hidden, **like)
        grad_gh = torch.empty(n_steps, n_batch, 3 * hidden, **like)
        update = update.to(grad_h.dtype)
        g = grad_h.clone()
        one = grad_h.new_ones(())
        acts_e = [a.unbind(0) for a in acts]  # views per evaluation: no indexing in the loop
        grad_e = [b.unbind(0) for b in grad_out]
        e = evals
        for k in range(n_steps - 1, -1, -1):
            # GRU: h_out = h + u·(n + z·(h − n) − h)
            u = update[k]
            r, z = gates_rz[k, :, :hidden], gates_rz[k, :, hidden:]
            n, h = gates_n[k], h_read[k]
            g_new = g * u
            g_n = g_new - g_new * z  # ∂/∂n: 1 − z
            d_rz, d_n = grad_gi[k, :, : 2 * hidden], grad_gi[k, :, 2 * hidden :]
            torch.mul(g_n, torch.addcmul(one, n, n, value=-1), out=d_n)  # through tanh
            d_r, d_z = d_rz[:, :hidden], d_rz[:, hidden:]
            torch.mul(d_n * gh_n[k], r - r * r, out=d_r)  # through σ
            torch.mul(g_new * (h - n), z - z * z, out=d_z)
            grad_gh[k, :, : 2 * hidden].copy_(d_rz)
            torch.mul(d_n, r, out=grad_gh[k, :, 2 * hidden :])
            g = torch.addmm(g - g_new + g_new * z, grad_gh[k], w_hh)  # [B, H]
            # Euler steps, last first: h_out = h + scale · f(h)
            scale = scales[k]
            for _ in range(n_euler):
                e -= 1
                grad = grad_e[-1][e]
                torch.mul(g, scale, out=grad)
                for j in range(n_layers - 1, 0, -1):
                    back = torch.mm(grad, weights[j])
                    grad = grad_e[j - 1][e]
                    torch.mul(
                        back, torch.addcmul(one, acts_e[j][e], acts_e[j][e], value=-1), out=grad
                    )
                g = torch.addmm(g, grad, weights[0])
        grads: list[torch.Tensor | None] = [None, None, None, None]
        for j in range(n_layers):
            out = grad_out[j].reshape(evals * n_batch, -1)
            grads.append(out.t() @ acts[j].reshape(evals * n_batch, -1))  # weight
            grads.append(out.sum(0))  # bias
        flat_gi = grad_gi.reshape(n_steps * n_batch, -1)
        flat_gh = grad_gh.reshape(n_steps * n_batch, -1)
        grads.append(flat_gi.t() @ inputs.reshape(n_steps * n_batch, -1))  # w_ih
        grads.append(flat_gh.t() @ h_read.reshape(n_steps * n_batch, -1))  # w_hh
        grads.append(flat_gi.sum(0))  # b_ih
        grads.append(flat_gh.sum(0))  # b_hh
        return tuple(grads)


def _run(scales, inputs, update, n_euler: int, params, keep: bool):
    """The recursion of :class:`_FusedODERNN` → (h [B, H], buffers). With ``keep`` the
    buffers hold every step's gates and every evaluation's layer inputs (for the
    backward); without, one slot each is reused (inference: memory O(B·H))."""
    n_layers = (len(params) - 4) // 2
    weights, biases = params[0 : 2 * n_layers : 2], params[1 : 2 * n_layers : 2]
    w_ih, w_hh, b_ih, b_hh = params[2 * n_layers :]
    n_steps, n_batch, _ = inputs.shape
    hidden = w_hh.shape[1]
    slots = n_steps if keep else 1
    evals = n_steps * n_euler if keep else 1

    def buffer(n: int, width: int) -> torch.Tensor:
        return torch.empty(n, n_batch, width, dtype=inputs.dtype, device=inputs.device)

    # acts[j][e]: input of field layer j at evaluation e (acts[0] = the state h)
    acts = [buffer(evals, w.shape[1]) for w in weights]
    h_read, gates_rz = buffer(slots, hidden), buffer(slots, 2 * hidden)
    gates_n, gh_n = buffer(slots, hidden), buffer(slots, hidden)
    gi = torch.addmm(b_ih, inputs.reshape(-1, inputs.shape[-1]), w_ih.t())
    gi = gi.view(n_steps, n_batch, -1)  # [T, B, 3H] the input projection, all steps at once
    weights_t = [w.t() for w in weights]
    w_hh_t = w_hh.t()
    acts_e = [a.unbind(0) for a in acts]  # views per evaluation: no indexing in the loop
    h = inputs.new_zeros(n_batch, hidden)
    e = 0
    for k in range(n_steps):
        scale, slot = scales[k], k if keep else 0
        for _ in range(n_euler):
            acts_e[0][e].copy_(h)
            for j in range(1, n_layers):
                a = acts_e[j][e]
                torch.addmm(biases[j - 1], acts_e[j - 1][e], weights_t[j - 1], out=a)
                a.tanh_()
            out = torch.addmm(biases[-1], acts_e[-1][e], weights_t[-1])
            h = torch.addcmul(h, scale, out)
            e = e + 1 if keep else 0
        h_read[slot].copy_(h)
        gh = torch.addmm(b_hh, h, w_hh_t)  # [B, 3H]
        rz = gates_rz[slot]
        torch.add(gi[k, :, : 2 * hidden], gh[:, : 2 * hidden], out=rz)
        rz.sigmoid_()
        gh_n[slot].copy_(gh[:, 2 * hidden :])
        n = gates_n[slot]
        torch.addcmul(gi[k, :, 2 * hidden :], rz[:, :hidden], gh_n[slot], out=n)
        n.tanh_()
        new = torch.addcmul(n, rz[:, hidden:], h - n)  # (1 - z)·n + z·h
        h = torch.where(update[k], new, h)
    return h, (h_read, gates_rz, gates_n, gh_n, *acts)
