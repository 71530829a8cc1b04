"""A cuDNN-style backward through time on PyTorch (CPU): does it beat autograd over the loop?

On the PyTorch backend ``grukit.layers.RNN`` runs the recurrent half of the step in a
Python loop and autograd differentiates it op by op. The known alternative is cuDNN's: one
``torch.autograd.Function`` for the whole recurrence whose

* forward runs the loop without autograd, keeping per step the state, the gates and the
  candidate;
* backward computes per step only the data gradient -- the gate nonlinearities'
  derivatives and one matmul with the recurrent kernel transposed, ``dh_in = dPre_h U^T``
  (two for a candidate reset before its matmul) -- with every factor that does not depend
  on the incoming gradient computed for all steps at once, time-major, before the loop;
* and after the loop the weight gradients of the whole sequence in one GEMM each,
  ``dU = H_in^T dPre_h`` over every step and batch row.

:func:`torch_scan` is that, written once over the cell family's shared step
(``GatedRNNCell._step_weights``: which blocks see ``x``, ``h`` and a bias is data), for
every variant, with masking, the initial state, ``go_backwards``, recurrent dropout, weight
drop and zoneout; its derivatives in closed form need ``activation`` tanh, relu, sigmoid
or linear, ``recurrent_activation`` sigmoid or tanh, no ``norm``, float32 or float64. Its
forward writes the states, gates, candidates and recurrent projections into preallocated
time-major buffers. Two backward forms:

* ``time-major``: every factor that does not depend on the incoming gradient (mask,
  zoneout, gate and activation derivatives) computed for all steps at once before the
  loop, which then does four to eight ops per step;
* ``per step`` (:func:`torch_scan_per_step`): the factors computed inside each step on
  ``[batch, units]`` tensors that stay in cache, with ATen's fused activation-backward
  kernels writing straight into the gradient buffers (no stacking after the loop).

Run from the repository root, pinned to one core::

    KERAS_BACKEND=torch OMP_NUM_THREADS=1 taskset -c 0 python experiments/bptt_torch.py

It first checks, in float64 for every variant (both ``reset_after`` settings where the
variant has a reset gate) and four option sets (plain; mask, go_backwards, last output and
recurrent dropout; mask, zero_output_for_mask, zoneout and weight drop; mask, recurrent
dropout and zoneout), that the outputs and the gradients with respect to the projected
inputs, the initial state and the recurrent weights of both forms equal autograd's over
the layer's own loop (``grukit._loop.scan``), and prints the largest difference. Then, per
variant, one training step's forward and backward of the input projection and the
recurrence (batch 64, T 100, 32 features, 128 units, float32; ``reset_after`` as the
variant's default), autograd over the loop against the two forms, the median of 7 in one
process, alternating. Compare the milliseconds within one run only. ``--profile [VARIANT]`` (default mgu2)
prints instead ``torch.profiler``'s per-op table of one training step of each of the three.

What it found (this machine, one core; ``--profile``): autograd's bookkeeping is not what
a step costs on a CPU. Under autograd over the loop, MGU2's step spends a third or more of
its time in the GEMMs (``mm``, ``addmm``) and most of the rest in the elementwise kernels
themselves (``tanh`` alone 30-40 us per step). In three runs the time-major form ran at 0.51-0.89x
autograd: its passes over ``[T, batch, units]`` arrays (multiplying and concatenating 3-10
MB) are bound by memory. The per-step form, whose profile has no such pass left, ran at
0.79-1.23x, above 1 in all three runs for MGU1 alone (1.02-1.17x): within this machine's
noise of autograd. The layer therefore keeps autograd on PyTorch.
"""

from __future__ import annotations

import time

import keras

_ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")
_RECURRENT_ACTIVATIONS = ("sigmoid", "tanh")


def _name(fn):
    for name in _ACTIVATIONS:
        if fn is getattr(keras.activations, name):
            return name
    return None


def supports(cell, xs):
    """Whether :func:`torch_scan` computes ``cell``'s step over ``xs`` (see the module)."""
    spec = cell.spec
    bias_only_gates = not any(t in spec.gate_terms for t in "xh")
    return (keras.backend.backend() == "torch" and cell.norm is None
            and not (bias_only_gates and not cell.use_bias)
            and _name(cell.activation) in _ACTIVATIONS
            and _name(cell.recurrent_activation) in _RECURRENT_ACTIVATIONS
            and str(xs.dtype).split(".")[-1] in ("float32", "float64"))


def _derivative(name, y):
    """d activation / d pre-activation, from the activation's output ``y``."""
    if name == "tanh":
        return 1.0 - y * y
    if name == "sigmoid":
        return y * (1.0 - y)
    if name == "linear":
        return 1.0
    return (y > 0).to(y.dtype)  # relu


def torch_scan(cell, xs, h0, mask=None, go_backwards=False, return_sequences=True,
               zero_output_for_mask=False, recurrent_mask=None, kernel_mask=None, zone=None,
               per_step=False):
    """``cell``'s recurrence over the projected sequence ``xs``, differentiated by hand.

    Args:
        cell: a :class:`grukit.GatedRNNCell` for which :func:`supports` holds.
        xs: ``[batch, time, k_x*units]``, ``cell.project_inputs`` of the sequence.
        h0: ``[batch, units]``.
        mask: optional boolean ``[batch, time]``; a masked step keeps the state.
        go_backwards, return_sequences, zero_output_for_mask: as in ``keras.layers.RNN``.
        recurrent_mask: optional ``[batch, units]`` recurrent dropout mask (``h`` is
            multiplied by it where it enters the step).
        kernel_mask: optional weight-drop mask of ``recurrent_kernel``'s shape.
        zone: optional ``[batch, time, units]`` zoneout keep mask (training); without it,
            a cell with ``zoneout`` uses the expectation ``d = zoneout``.

    Returns:
        ``(last_output, outputs, [last_state])`` as ``keras.src.backend.rnn`` does.
    """
    import torch

    if not supports(cell, xs):
        raise ValueError(f"torch_scan does not cover this cell or input ({cell.spec.name}, "
                         f"activation {cell.activation}, norm {cell.norm}, {xs.dtype}).")
    w = cell._step_weights(kernel_mask)
    n, k = w.units, w.k
    weights = [w.u_fused, w.bias_fused, w.u_cand,
               None if w.gate_const is None else torch.cat(list(w.gate_const))]
    weights = [None if t is None else keras.ops.convert_to_tensor(t) for t in weights]
    if go_backwards:
        xs = torch.flip(xs, [1])
        mask = None if mask is None else torch.flip(torch.as_tensor(mask), [1])
        zone = None if zone is None else torch.flip(zone, [1])
    m = None if mask is None else torch.as_tensor(mask, dtype=torch.bool)
    if zone is not None:
        zone = zone.to(xs.dtype)
    plan = (n, k, w.gx, w.gh, w.cand_h, w.fuse_cand, cell.spec.gates, _name(cell.activation),
            _name(cell.recurrent_activation), cell.zoneout)
    states = _function(per_step).apply(plan, xs, h0, m, recurrent_mask, zone, *weights)  # [batch, time, n]
    outputs = states
    if m is not None:
        # Keras's masked output: the previous output (zeros before the first valid step),
        # or zeros with zero_output_for_mask; the state is carried, so that is the state.
        keep = m if zero_output_for_mask else torch.cumsum(m.to(torch.int32), 1) > 0
        outputs = states * keep[..., None].to(states.dtype)
    last = outputs[:, -1]
    return last, (outputs if return_sequences else last[:, None]), [states[:, -1]]


def _weight_gradients(ctx, h_in, d_hu, r, d_c, d_gates):
    """The recurrent weights' gradients of the whole sequence, one GEMM each, from the
    time-major ``[T, batch, .]`` inputs of the matmuls (``h_in``; ``r * h_in`` for a
    candidate reset before its own) and their outputs' gradients (``d_hu``, ``d_c``), and
    the gates' pre-activation gradients ``d_gates`` (for the constant gate biases)."""
    n, k = ctx.plan[:2]
    need = ctx.needs_input_grad  # plan, xs, h0, m, rmask, zone, u, b, u_cand, g_const
    u_cand, g_const = ctx.saved_tensors[5], ctx.saved_tensors[6]
    d_u = d_b = d_uc = d_gc = None
    if d_hu is not None and (need[6] or need[7]):
        flat = d_hu.reshape(-1, d_hu.shape[-1])
        if need[6]:  # one GEMM over every step and row
            d_u = h_in.reshape(-1, n).t() @ flat
        if need[7] and ctx.has_bias:
            d_b = flat.sum(0)
    if u_cand is not None and need[8]:
        d_uc = (r * h_in).reshape(-1, n).t() @ d_c.reshape(-1, n)
    if g_const is not None and need[9]:
        d_gc = d_gates.reshape(-1, k * n).sum(0)
    return d_u, d_b, d_uc, d_gc


_FUNCTIONS = {}


def _function(per_step=False):
    """The ``torch.autograd.Function``, defined on first use (torch is imported lazily)."""
    if per_step in _FUNCTIONS:
        return _FUNCTIONS[per_step]
    import torch

    class Scan(torch.autograd.Function):
        @staticmethod
        def forward(ctx, plan, xs, h0, m, rmask, zone, u_fused, b_fused, u_cand, g_const):
            n, k, gx, gh, cand_h, fuse_cand, gates, act, rec_act, zoneout = plan
            f_act = (lambda c: c) if act == "linear" else getattr(torch, act)
            f_rec = getattr(torch, rec_act)
            mgu = "f" in gates
            reset = mgu or k == 2
            steps, batch = xs.shape[1], xs.shape[0]
            const = None
            if g_const is not None and not (gx or gh):  # gates from a bias alone
                const = f_rec(g_const).expand(batch, k * n)
            # time-major buffers the steps write into: S[t] is the state before step t
            new = dict(dtype=xs.dtype, device=xs.device)
            S = torch.empty(steps + 1, batch, n, **new)
            S[0] = h0
            G = torch.empty(steps, batch, k * n, **new) if const is None else None
            C = torch.empty(steps, batch, n, **new)
            HU = None if u_fused is None else torch.empty(steps, batch, u_fused.shape[1], **new)
            for t in range(steps):
                px, h = xs[:, t], S[t]
                h_in = h if rmask is None else h * rmask
                hu = None
                if u_fused is not None:
                    hu = torch.matmul(h_in, u_fused, out=HU[t]) if b_fused is None else \
                        torch.addmm(b_fused, h_in, u_fused, out=HU[t])
                if const is not None:
                    g = const
                else:
                    a = px[:, : k * n] if gx else hu[:, : k * n]
                    if gx and gh:
                        a = a + hu[:, : k * n]
                    g = f_rec(a if g_const is None else a + g_const, out=G[t])
                r = g[:, (k - 1) * n:] if reset else None  # the reset gate (MGU: f)
                c = px[:, -n:]
                if fuse_cand:
                    hu_c = hu[:, -n:]
                    c = c + hu_c if r is None else torch.addcmul(c, r, hu_c)
                elif cand_h:
                    c = torch.addmm(c, r * h_in, u_cand)
                cand = C[t].copy_(c) if act == "linear" else (
                    torch.clamp(c, min=0, out=C[t]) if act == "relu" else f_act(c, out=C[t]))
                last = not zoneout and m is None
                out = {"out": S[t + 1]} if last else {}
                h_new = torch.lerp(h, cand, g, **out) if mgu else \
                    torch.lerp(cand, h, g[:, :n], **out)
                if zoneout:
                    out = {} if m is not None else {"out": S[t + 1]}
                    h_new = torch.lerp(h_new, h, zoneout if zone is None else zone[:, t], **out)
                if m is not None:
                    torch.where(m[:, t, None], h_new, h, out=S[t + 1])
            states = S[1:].transpose(0, 1)
            ctx.plan = plan
            ctx.has_bias = b_fused is not None
            if const is not None:
                G = const.expand(steps, batch, k * n)
            ctx.save_for_backward(h0, m, rmask, zone, u_fused, u_cand, g_const, S, G, C, HU)
            return states

        @staticmethod
        def backward(ctx, d_states):
            if per_step:
                return _per_step_backward(ctx, d_states)
            n, k, gx, gh, cand_h, fuse_cand, gates, act, rec_act, zoneout = ctx.plan
            h0, m, rmask, zone, u_fused, u_cand, g_const, S, g, cand, HU = ctx.saved_tensors
            hu_c = None if HU is None else HU[..., -n:]
            mgu = "f" in gates
            reset = mgu or k == 2
            steps, batch = S.shape[0] - 1, S.shape[1]
            states = S[1:].transpose(0, 1)
            # --- every step's local derivatives at once, time-major [T, batch, units]
            h_prev = S[:-1]
            h_in = h_prev if rmask is None else h_prev * rmask
            mt = None if m is None else m.transpose(0, 1)[..., None].to(states.dtype)
            d = 0.0
            if zoneout:
                d = zoneout if zone is None else zone.transpose(0, 1)
            s = 1.0 - d if mt is None else mt * (1.0 - d)  # dh'' per dh
            keep = d if mt is None else (1.0 - mt) + mt * d  # dh_prev per dh, directly
            upd = g if mgu else g[..., :n]  # f, or z
            dg = _derivative(rec_act, g)
            b_c = s * (upd if mgu else 1.0 - upd) * _derivative(act, cand)  # d_c per dh
            if mgu:
                z_eff = keep + s * (1.0 - upd)
                a_upd = s * (cand - h_prev)  # df (before f's derivative) per dh
            else:
                z_eff = keep + s * upd
                a_upd = s * (h_prev - cand) * dg[..., :n]  # dz_pre per dh
            r = g[..., (k - 1) * n:] if reset else None
            if fuse_cand:
                f_c = b_c if r is None else b_c * r  # d(hu_c) per dh
                if mgu:
                    f_gates = (a_upd + b_c * hu_c) * dg
                elif k == 2:
                    f_gates = torch.cat([a_upd, b_c * hu_c * dg[..., n:]], -1)
                else:
                    f_gates = a_upd
            else:
                f_gates = a_upd * dg if mgu else a_upd  # the reset part comes from d_rh
            # --- the loop: only what the next step's gradient needs
            ds = d_states.transpose(0, 1)
            dh = torch.zeros_like(h0)
            dhs = [None] * steps
            d_rhs = [None] * steps
            u_t = None if u_fused is None else u_fused.t()
            uc_t = None if u_cand is None else u_cand.t()
            if fuse_cand or not cand_h:
                nh = (k if gh else 0) + (1 if fuse_cand else 0)
                f_h = None
                if u_fused is not None:
                    f_h = torch.cat(([f_gates] if gh else []) + ([f_c] if fuse_cand else []), -1)
                    f_h = f_h.reshape(steps, batch, nh, n)
                for t in range(steps - 1, -1, -1):
                    dh = dh + ds[t]
                    dhs[t] = dh
                    nxt = dh * z_eff[t] if torch.is_tensor(z_eff) else dh * z_eff
                    if f_h is not None:
                        d_hu = (dh[:, None, :] * f_h[t]).reshape(batch, nh * n)
                        back = torch.matmul(d_hu, u_t)
                        nxt = nxt + back if rmask is None else torch.addcmul(nxt, back, rmask)
                    dh = nxt
            else:  # the candidate's h term reset before its own matmul
                e_r = h_in * dg[..., (k - 1) * n:]  # d(r_pre) per d(rh)
                r_in = r if rmask is None else r * rmask
                if gh and k == 2:
                    buf = torch.empty(batch, 2 * n, dtype=dh.dtype, device=dh.device)
                for t in range(steps - 1, -1, -1):
                    dh = dh + ds[t]
                    dhs[t] = dh
                    d_rh = torch.matmul(dh * b_c[t], uc_t)
                    d_rhs[t] = d_rh
                    nxt = torch.addcmul(dh * z_eff[t], d_rh, r_in[t])
                    if gh:
                        if k == 2:
                            torch.mul(dh, f_gates[t], out=buf[:, :n])
                            torch.mul(d_rh, e_r[t], out=buf[:, n:])
                            d_g = buf
                        else:
                            d_g = torch.addcmul(dh * f_gates[t], d_rh, e_r[t])
                        back = torch.matmul(d_g, u_t)
                        nxt = nxt + back if rmask is None else torch.addcmul(nxt, back, rmask)
                    dh = nxt
            # --- after the loop: the pre-activation gradients of every step and block
            dhs = torch.stack(dhs)  # [T, batch, n]
            d_c = dhs * b_c
            if fuse_cand or not cand_h:
                d_gates = dhs.unsqueeze(-2) * f_gates.reshape(steps, batch, -1, n)
                d_gates = d_gates.reshape(steps, batch, -1)
            else:
                d_rhs = torch.stack(d_rhs)
                if k == 2:
                    d_gates = torch.cat([dhs * f_gates, d_rhs * e_r], -1)
                else:
                    d_gates = dhs * f_gates + d_rhs * e_r
            d_px = torch.cat([d_gates, d_c], -1) if gx else d_c
            d_hu = None
            if u_fused is not None:
                parts = ([d_gates] if gh else []) + ([dhs * f_c] if fuse_cand else [])
                d_hu = torch.cat(parts, -1) if len(parts) > 1 else parts[0]
            d_u, d_b, d_uc, d_gc = _weight_gradients(ctx, h_in, d_hu, r, d_c, d_gates)
            return None, d_px.transpose(0, 1), dh, None, None, None, d_u, d_b, d_uc, d_gc

    _FUNCTIONS[per_step] = Scan
    return Scan


def torch_scan_per_step(cell, xs, h0, mask=None, go_backwards=False, return_sequences=True,
                        zero_output_for_mask=False, recurrent_mask=None, kernel_mask=None,
                        zone=None):
    """:func:`torch_scan` with a backward that computes every factor inside its step (on
    ``[batch, units]`` tensors that stay in cache) with ATen's fused activation backward
    kernels, instead of precomputing them over the whole sequence."""
    return torch_scan(cell, xs, h0, mask, go_backwards, return_sequences, zero_output_for_mask,
                      recurrent_mask, kernel_mask, zone, per_step=True)


def _act_backward_into(name, grad, y, out):
    """``grad * activation'(pre)``, from the activation's output ``y``, written into ``out``
    by ATen's fused activation-backward kernels."""
    import torch

    aten = torch.ops.aten
    if name == "tanh":
        return aten.tanh_backward.grad_input(grad, y, grad_input=out)
    if name == "sigmoid":
        return aten.sigmoid_backward.grad_input(grad, y, grad_input=out)
    if name == "linear":
        return out.copy_(grad)
    return aten.threshold_backward.grad_input(grad, y, 0, grad_input=out)


def _per_step_backward(ctx, d_states):
    import torch

    n, k, gx, gh, cand_h, fuse_cand, gates, act, rec_act, zoneout = ctx.plan
    h0, m, rmask, zone, u_fused, u_cand, g_const, S, G, C, HU = ctx.saved_tensors
    mgu = "f" in gates
    reset = mgu or k == 2
    steps, batch = S.shape[0] - 1, S.shape[1]
    new = dict(dtype=S.dtype, device=S.device)
    # written by the steps, time-major: the projected inputs' gradient (x-blocks: the gates'
    # pre-activations when they see x, then the candidate's) and the recurrent matmul's
    kx = k + 1 if gx else 1
    d_px = torch.empty(steps, batch, kx * n, **new)
    nh = 0 if u_fused is None else u_fused.shape[1] // n
    d_hu = None if not nh else torch.empty(steps, batch, nh * n, **new)
    d_a_own = None if (gx or gh) else torch.empty(steps, batch, k * n, **new)
    mf = None if m is None else m[..., None].to(S.dtype)
    u_t = None if u_fused is None else u_fused.t()
    uc_t = None if u_cand is None else u_cand.t()
    dh = torch.zeros_like(h0)
    for t in range(steps - 1, -1, -1):
        dh = dh + d_states[:, t]
        if mf is not None:
            d_new = dh * mf[:, t]
            keep = dh - d_new
        else:
            d_new, keep = dh, None
        if zoneout:
            zk = d_new * (zoneout if zone is None else zone[:, t])
            keep = zk if keep is None else keep + zk
            d_new = d_new - zk
        g_t, cand_t, hp = G[t], C[t], S[t]
        if mgu:
            d_upd = d_new * (cand_t - hp)
            d_cand = d_new * g_t
        else:
            d_upd = d_new * (hp - cand_t)
            d_cand = torch.addcmul(d_new, d_new, g_t[:, :n], value=-1.0)
        direct = d_new - d_cand  # d_new * z (MGU: * (1 - f))
        keep = direct if keep is None else keep + direct
        d_c = _act_backward_into(act, d_cand, cand_t, d_px[t, :, -n:])
        r = g_t[:, (k - 1) * n:] if reset else None
        d_r = None
        if fuse_cand:
            d_huc = d_hu[t, :, -n:]
            if r is None:
                d_huc.copy_(d_c)
            else:
                torch.mul(d_c, r, out=d_huc)
                d_r = d_c * HU[t, :, -n:]
        elif cand_h:
            d_rh = torch.matmul(d_c, uc_t)
            h_in = hp if rmask is None else hp * rmask
            d_r = d_rh * h_in
            back_c = d_rh * r
            keep = keep + (back_c if rmask is None else back_c * rmask)
        if mgu:
            d_gpost = d_upd if d_r is None else d_upd + d_r
        elif k == 2:
            d_gpost = torch.cat([d_upd, d_r], 1)
        else:
            d_gpost = d_upd
        target = d_hu[t, :, : k * n] if gh else (d_px[t, :, : k * n] if gx else d_a_own[t])
        d_a = _act_backward_into(rec_act, d_gpost, g_t, target)
        if gh and gx:
            d_px[t, :, : k * n].copy_(d_a)
        if d_hu is not None:
            if rmask is None:
                dh = torch.addmm(keep, d_hu[t], u_t)
            else:
                dh = torch.addcmul(keep, torch.matmul(d_hu[t], u_t), rmask)
        else:
            dh = keep
    h_in = S[:-1] if rmask is None else S[:-1] * rmask
    r_all = G[..., (k - 1) * n:] if reset else None
    d_a_all = d_hu[..., : k * n] if gh else (d_px[..., : k * n] if gx else d_a_own)
    d_u, d_b, d_uc, d_gc = _weight_gradients(ctx, h_in, d_hu, r_all, d_px[..., -n:], d_a_all)
    return None, d_px.transpose(0, 1), dh, None, None, None, d_u, d_b, d_uc, d_gc


# ----------------------------------------------------------------- the experiment
def _autograd_scan(cell, xs, h0, mask=None, go_backwards=False, return_sequences=True,
                   zero_output_for_mask=False, recurrent_mask=None, kernel_mask=None, zone=None):
    """What ``grukit.layers.RNN`` runs on PyTorch: autograd over its Python loop."""
    from keras import ops

    from grukit import _loop
    from grukit.layers import _zoned_step

    step = _zoned_step(cell.recurrent_fn(kernel_mask), None, recurrent_mask, zone is not None,
                       cell.units)
    if zone is not None:
        xs = ops.concatenate([xs, ops.cast(zone, xs.dtype)], axis=-1)
    return _loop.scan(step, xs, h0, mask=mask, go_backwards=go_backwards,
                      return_sequences=return_sequences,
                      zero_output_for_mask=zero_output_for_mask)


OPTION_SETS = [  # mask, go_backwards, return_sequences, zero_output, dropout, zoneout, drop
    (False, False, True, False, 0.0, 0.0, 0.0),
    (True, True, False, False, 0.3, 0.0, 0.0),
    (True, False, True, True, 0.0, 0.3, 0.3),
    (True, False, True, False, 0.2, 0.2, 0.0),
]


def check_gradients():
    """The largest difference, over every variant and option set, between the two."""
    import numpy as np
    import torch

    import grukit

    worst, cases = 0.0, 0
    for spec in grukit.variants():
        for reset_after in ((False, True) if spec.has_reset else (None,)):
            for masked, back, seqs, zero, drop, zone_rate, wdrop in OPTION_SETS:
                kw = {} if reset_after is None else {"reset_after": reset_after}
                if not spec.parallel:  # minGRU: no h to drop
                    kw.update(recurrent_dropout=drop, recurrent_weight_dropout=wdrop)
                cell = grukit.get_cell(spec.name, 5, zoneout=zone_rate, dtype="float64", **kw)
                cell.build((3, 4))
                rng = np.random.default_rng(cases)
                for w in cell.weights:
                    w.assign(rng.normal(0.0, 0.5, tuple(w.shape)))
                xs = torch.tensor(rng.standard_normal((3, 7, cell.kernel.shape[1])),
                                  requires_grad=True)
                h0 = torch.tensor(rng.standard_normal((3, 5)), requires_grad=True)
                mask = None
                if masked:
                    mask = torch.ones(3, 7, dtype=torch.bool)
                    mask[1, -2:], mask[2, :2], mask[0, 3] = False, False, False
                rmask = None if not drop else torch.tensor(
                    (rng.uniform(size=(3, 5)) > drop) / (1 - drop))
                kmask = None if not (wdrop and cell.recurrent_kernel is not None) else torch.tensor(
                    (rng.uniform(size=tuple(cell.recurrent_kernel.shape)) > wdrop) / (1 - wdrop))
                zone = None if not zone_rate else torch.tensor(
                    (rng.uniform(size=(3, 7, 5)) < zone_rate).astype("float64"))
                weights = [w.value for w in cell.trainable_weights]
                results = []
                for scan in (_autograd_scan, torch_scan, torch_scan_per_step):
                    last, out, _ = scan(cell, xs, h0, mask, back, seqs, zero, rmask, kmask, zone)
                    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype)
                            .reshape(out.shape)).sum() + (out ** 2).sum() + (last ** 3).sum()
                    grads = torch.autograd.grad(loss, [xs, h0] + weights, allow_unused=True)
                    results.append([out] + [g for g in grads if g is not None])
                for other in results[1:]:
                    for a, b in zip(results[0], other):
                        worst = max(worst, float((a - b).detach().abs().max()))
                cases += 1
    return cases, worst


def _training_step(variant):
    """``run(scan)``: one training step's forward and backward of the input projection and
    the recurrence (batch 64, T 100, 32 features, 128 units, float32)."""
    import torch

    import grukit

    B, T, F, U = 64, 100, 32, 128
    torch.manual_seed(0)
    x, target = torch.randn(B, T, F), torch.randn(B, T, U)
    cell = grukit.get_cell(variant, U)
    cell.build((B, F))
    weights = [w.value for w in cell.trainable_weights]
    h0 = torch.zeros(B, U)

    def run(scan):
        xs = cell.project_inputs(x, training=True)
        _, out, _ = scan(cell, xs, h0)
        torch.autograd.grad(((out - target) ** 2).mean(), weights)

    return run


def time_training(variant, repeats=7):
    """Median milliseconds of a training step under each of :data:`SCANS`, alternating."""
    import numpy as np

    run = _training_step(variant)
    times = {scan: [] for scan in SCANS}
    for scan in times:
        run(scan)  # warm-up
    for _ in range(repeats):
        for scan in times:
            start = time.perf_counter()
            run(scan)
            times[scan].append(time.perf_counter() - start)
    return [1e3 * float(np.median(v)) for v in times.values()]


def profile(variant):
    """``torch.profiler``'s table of one training step under each of :data:`SCANS`, per op."""
    from torch.profiler import profile as torch_profile

    run = _training_step(variant)
    for scan in SCANS:
        for _ in range(3):
            run(scan)
        with torch_profile() as prof:
            run(scan)
        print(f"--- {variant}, {scan.__name__}")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


SCANS = (_autograd_scan, torch_scan, torch_scan_per_step)


def main():
    import sys

    import grukit

    if keras.backend.backend() != "torch":
        raise SystemExit("run with KERAS_BACKEND=torch")
    if sys.argv[1:2] == ["--profile"]:
        profile(sys.argv[2] if len(sys.argv) > 2 else "mgu2")
        return
    cases, worst = check_gradients()
    print(f"gradient check: {cases} cases (float64), largest difference {worst:.2e}")
    print(f"{'variant':8s} {'autograd':>9s} {'time-major':>11s} {'per step':>9s}   speed-ups")
    for spec in grukit.variants():
        auto, major, step = time_training(spec.name)
        print(f"{spec.name:8s} {auto:6.1f} ms {major:8.1f} ms {step:6.1f} ms   "
              f"{auto / major:.2f}x {auto / step:.2f}x", flush=True)


if __name__ == "__main__":
    main()
