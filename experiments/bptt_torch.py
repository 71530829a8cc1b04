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
(``GatedRNNCell._step_weights``: which blocks see ``x``, ``h`` and a bias is
data), for every variant, with masking, the initial state, ``go_backwards``, recurrent
dropout, weight drop and zoneout; its derivatives in closed form need ``activation`` tanh,
relu, sigmoid or linear, ``recurrent_activation`` sigmoid or tanh, no ``norm``, float32 or
float64.

Run from the repository root, pinned to one core::

    KERAS_BACKEND=torch OMP_NUM_THREADS=1 taskset -c 0 python experiments/bptt_torch.py

It first checks, in float64 for every variant (both ``reset_after`` settings where the
variant has a reset gate) and four option sets (plain; mask, go_backwards, last output and
recurrent dropout; mask, zero_output_for_mask, zoneout and weight drop; mask, recurrent
dropout and zoneout), that the outputs and the gradients with respect to the projected
inputs, the initial state and the recurrent weights equal autograd's over the layer's own
loop (``grukit._loop.scan``), and prints the largest difference. Then, per variant, one
training step's forward and backward of the input projection and the recurrence (batch
64, T 100, 32 features, 128 units, float32; ``reset_after`` as the variant's default),
autograd over the loop against :func:`torch_scan`, the median of 7 in one process,
alternating. Compare the milliseconds within one run only.
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
               zero_output_for_mask=False, recurrent_mask=None, kernel_mask=None, zone=None):
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
    states = _Scan.apply(plan, xs, h0, m, recurrent_mask, zone, *weights)  # [batch, time, n]
    outputs = states
    if m is not None:
        # Keras's masked output: the previous output (zeros before the first valid step),
        # or zeros with zero_output_for_mask; the state is carried, so that is the state.
        keep = m if zero_output_for_mask else torch.cumsum(m.to(torch.int32), 1) > 0
        outputs = states * keep[..., None].to(states.dtype)
    last = outputs[:, -1]
    return last, (outputs if return_sequences else last[:, None]), [states[:, -1]]


class _Scan:
    """The recurrence as one autograd node (see the module docstring)."""

    @staticmethod
    def apply(*args):
        return _function().apply(*args)


_FUNCTION = []


def _function():
    """The ``torch.autograd.Function``, defined on first use (torch is imported lazily)."""
    if _FUNCTION:
        return _FUNCTION[0]
    import torch

    class Scan(torch.autograd.Function):
        @staticmethod
        def forward(ctx, plan, xs, h0, m, rmask, zone, u_fused, b_fused, u_cand, g_const):
            n, k, gx, gh, cand_h, fuse_cand, gates, act, rec_act, zoneout = plan
            f_act = (lambda c: c) if act == "linear" else getattr(torch, act)
            f_rec = getattr(torch, rec_act)
            mgu = "f" in gates
            reset = mgu or k == 2
            px_all = torch.unbind(xs, 1)
            const = None
            if g_const is not None and not (gx or gh):  # gates from a bias alone
                const = f_rec(g_const).expand(h0.shape[0], k * n)
            h = h0
            g_s, cand_s, hu_c_s, states = [], [], [], []
            for t, px in enumerate(px_all):
                h_in = h if rmask is None else h * rmask
                hu = None
                if u_fused is not None:
                    hu = torch.matmul(h_in, u_fused) if b_fused is None else \
                        torch.addmm(b_fused, h_in, u_fused)
                if const is not None:
                    g = const
                else:
                    a = px[:, : k * n] if gx else hu[:, : k * n]
                    if gx and gh:
                        a = a + hu[:, : k * n]
                    g = f_rec(a if g_const is None else a + g_const)
                r = g[:, (k - 1) * n:] if reset else None  # the reset gate (MGU: f)
                c = px[:, -n:]
                if fuse_cand:
                    hu_c = hu[:, -n:]
                    c = c + hu_c if r is None else torch.addcmul(c, r, hu_c)
                    hu_c_s.append(hu_c)
                elif cand_h:
                    c = torch.addmm(c, r * h_in, u_cand)
                cand = f_act(c)
                h_new = torch.lerp(h, cand, g) if mgu else torch.lerp(cand, h, g[:, :n])
                if zoneout:
                    h_new = torch.lerp(h_new, h, zoneout if zone is None else zone[:, t])
                if m is not None:
                    h_new = torch.where(m[:, t, None], h_new, h)
                g_s.append(g)
                cand_s.append(cand)
                states.append(h_new)
                h = h_new
            states = torch.stack(states, 1)
            ctx.plan = plan
            ctx.has_bias = b_fused is not None
            ctx.save_for_backward(h0, m, rmask, zone, u_fused, u_cand, g_const, states,
                                  torch.stack(g_s), torch.stack(cand_s),
                                  torch.stack(hu_c_s) if hu_c_s else None)
            return states

        @staticmethod
        def backward(ctx, d_states):
            n, k, gx, gh, cand_h, fuse_cand, gates, act, rec_act, zoneout = ctx.plan
            h0, m, rmask, zone, u_fused, u_cand, g_const, states, g, cand, hu_c = \
                ctx.saved_tensors
            mgu = "f" in gates
            reset = mgu or k == 2
            steps, batch = states.shape[1], states.shape[0]
            # --- every step's local derivatives at once, time-major [T, batch, units]
            h_prev = torch.cat([h0[None], states.transpose(0, 1)[:-1]], 0)
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
            need = ctx.needs_input_grad  # plan, xs, h0, m, rmask, zone, u, b, u_cand, g_const
            d_u = d_b = d_uc = d_gc = None
            if u_fused is not None and (need[6] or need[7]):
                parts = ([d_gates] if gh else []) + ([dhs * f_c] if fuse_cand else [])
                d_hu = torch.cat(parts, -1) if len(parts) > 1 else parts[0]
                d_hu = d_hu.reshape(steps * batch, -1)
                if need[6]:  # one GEMM over every step and row
                    d_u = h_in.reshape(-1, n).t() @ d_hu
                if need[7] and ctx.has_bias:
                    d_b = d_hu.sum(0)
            if u_cand is not None and need[8]:
                d_uc = (r * h_in).reshape(-1, n).t() @ d_c.reshape(-1, n)
            if g_const is not None and need[9]:
                d_gc = d_gates.reshape(-1, k * n).sum(0)
            return None, d_px.transpose(0, 1), dh, None, None, None, d_u, d_b, d_uc, d_gc

    _FUNCTION.append(Scan)
    return Scan


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
                for scan in (torch_scan, _autograd_scan):
                    last, out, _ = scan(cell, xs, h0, mask, back, seqs, zero, rmask, kmask, zone)
                    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype)
                            .reshape(out.shape)).sum() + (out ** 2).sum() + (last ** 3).sum()
                    grads = torch.autograd.grad(loss, [xs, h0] + weights, allow_unused=True)
                    results.append([out] + [g for g in grads if g is not None])
                for a, b in zip(*results):
                    worst = max(worst, float((a - b).detach().abs().max()))
                cases += 1
    return cases, worst


def time_training(variant, repeats=7):
    """Milliseconds of one forward and backward, autograd over the loop vs torch_scan."""
    import numpy as np
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
        loss = ((out - target) ** 2).mean()
        torch.autograd.grad(loss, weights)

    times = {torch_scan: [], _autograd_scan: []}
    for scan in times:
        run(scan)  # warm-up
    for _ in range(repeats):
        for scan in times:
            start = time.perf_counter()
            run(scan)
            times[scan].append(time.perf_counter() - start)
    return 1e3 * float(np.median(times[_autograd_scan])), 1e3 * float(np.median(times[torch_scan]))


def main():
    import grukit

    if keras.backend.backend() != "torch":
        raise SystemExit("run with KERAS_BACKEND=torch")
    cases, worst = check_gradients()
    print(f"gradient check: {cases} cases (float64), largest difference {worst:.2e}")
    print(f"{'variant':8s} {'autograd ms':>12s} {'torch_scan ms':>14s} {'speed-up':>9s}")
    for spec in grukit.variants():
        auto, custom = time_training(spec.name)
        print(f"{spec.name:8s} {auto:12.1f} {custom:14.1f} {auto / custom:8.2f}x", flush=True)


if __name__ == "__main__":
    main()
