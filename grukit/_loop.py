"""The recurrent loop, on each backend's fastest native construct.

``scan(step, xs, h0, ...)`` runs ``h_t = step(x_t, h_{t-1})`` over axis 1 of
``xs`` with Keras's masking and direction semantics (the same contract as
``keras.src.backend.rnn`` for a cell whose output is its state):

* a masked step carries the state; its output is the previous output, or zeros
  with ``zero_output_for_mask``;
* ``go_backwards`` processes the sequence from the end and returns the outputs
  in processing order.

Backends: JAX -- ``jax.lax.scan`` (called eagerly: one compiled loop per distinct
step program, reused across calls and layers, see :func:`_jax_eager_scan`); PyTorch --
a plain Python loop over ``unbind`` (Keras's generic torch loop spends an extra probe
step and list conversions per call); TensorFlow -- Keras's ``tf.while_loop``.
"""

from __future__ import annotations

import collections

import keras
from keras.src import backend as _backend

__all__ = ["scan"]


def scan(step, xs, h0, mask=None, go_backwards=False, return_sequences=True,
         zero_output_for_mask=False, unroll=False):
    """Returns ``(last_output, outputs, [last_state])`` like ``backend.rnn``.

    ``outputs`` is ``[batch, time, units]``, or ``[batch, 1, units]`` (the last
    output) when ``return_sequences`` is False.
    """
    name = keras.backend.backend()
    if name == "jax" and not unroll:
        return _jax_scan(step, xs, h0, mask, go_backwards, return_sequences, zero_output_for_mask)
    if name == "torch":
        return _torch_loop(step, xs, h0, mask, go_backwards, return_sequences, zero_output_for_mask)

    def keras_step(x_t, states):
        h = step(x_t, states[0])
        return h, [h]

    return _backend.rnn(keras_step, xs, [h0], go_backwards=go_backwards, mask=mask,
                        unroll=unroll, input_length=xs.shape[1],
                        zero_output_for_mask=zero_output_for_mask,
                        return_all_outputs=return_sequences)


def _jax_scan(step, xs, h0, mask, go_backwards, return_sequences, zero_output_for_mask):
    flags = (go_backwards, return_sequences, zero_output_for_mask)
    compiled = _jax_eager_scan(step, xs, h0, mask, flags)
    if compiled is not None:
        return compiled
    return _jax_scan_body(step, xs, h0, mask, *flags)


def _jax_scan_body(step, xs, h0, mask, go_backwards, return_sequences, zero_output_for_mask):
    import jax
    import jax.numpy as jnp

    xs_t = jnp.swapaxes(xs, 0, 1)
    ms_t = None if mask is None else jnp.swapaxes(jnp.asarray(mask, bool), 0, 1)
    if go_backwards:
        xs_t = jnp.flip(xs_t, 0)
        ms_t = None if ms_t is None else jnp.flip(ms_t, 0)

    if ms_t is None:
        def body(h, x_t):
            h = step(x_t, h)
            return h, (h if return_sequences else None)

        h_last, ys = jax.lax.scan(body, h0, xs_t)
        last = h_last
    else:
        def body(carry, inp):
            h, out = carry
            x_t, m_t = inp
            m_t = m_t[:, None]
            h = jnp.where(m_t, step(x_t, h), h)
            out = jnp.where(m_t, h, jnp.zeros_like(h) if zero_output_for_mask else out)
            return (h, out), (out if return_sequences else None)

        (h_last, last), ys = jax.lax.scan(body, (h0, jnp.zeros_like(h0)), (xs_t, ms_t))
    outputs = jnp.swapaxes(ys, 0, 1) if return_sequences else last[:, None]
    return last, outputs, [h_last]


#: Compiled eager loops, keyed by the step's program (its jaxpr, printed) and the flags.
_EAGER_SCANS = collections.OrderedDict()
_EAGER_SCANS_MAX = 256


def _jax_eager_scan(step, xs, h0, mask, flags):
    """The loop as one compiled program that is reused across calls, or None under a trace.

    Called eagerly (concrete arrays, no ``jit``/``grad`` around it), ``lax.scan`` traces
    ``step`` -- a new closure over the layer's weights on every call -- and XLA compiles it
    again each time (~0.1 s on CPU, more than the loop itself for short sequences). Here
    ``step`` is traced once per call to a jaxpr whose closed-over arrays (weights, dropout
    masks) become arguments, and the loop over that jaxpr is compiled once per distinct
    program: every later call with the same variant, options and shapes -- whatever the
    weights, on any layer instance -- runs the compiled loop. Under a trace (an outer
    ``jit``, ``grad`` or ``vmap``) the caller's trace compiles the loop; None is returned.
    """
    import jax
    from jax.extend import core as jex_core

    tracer = jax.core.Tracer
    if any(isinstance(a, tracer) for a in (xs, h0, mask)) or not isinstance(xs, jax.Array) \
            or jax.config.jax_disable_jit:
        return None
    x_t = jax.ShapeDtypeStruct(xs.shape[:1] + xs.shape[2:], xs.dtype,
                               weak_type=getattr(xs, "weak_type", False))
    h_t = jax.ShapeDtypeStruct(h0.shape, h0.dtype, weak_type=getattr(h0, "weak_type", False))
    try:
        closed = jax.make_jaxpr(step)(x_t, h_t)
    except Exception:  # a step that only runs eagerly: leave it to lax.scan
        return None
    consts = list(closed.consts)
    if any(isinstance(c, tracer) for c in consts):
        return None
    jaxpr = closed.jaxpr
    key = (str(jaxpr), flags, mask is None)
    run = _EAGER_SCANS.get(key)
    if run is None:
        def loop(consts, xs, h0, mask):
            step_fn = jex_core.jaxpr_as_fun(jex_core.ClosedJaxpr(jaxpr, consts))
            return _jax_scan_body(lambda x_t, h: step_fn(x_t, h)[0], xs, h0, mask, *flags)

        run = _EAGER_SCANS[key] = jax.jit(loop)
        if len(_EAGER_SCANS) > _EAGER_SCANS_MAX:
            _EAGER_SCANS.popitem(last=False)
    else:
        _EAGER_SCANS.move_to_end(key)
    return run(consts, xs, h0, mask)


def _torch_loop(step, xs, h0, mask, go_backwards, return_sequences, zero_output_for_mask):
    import torch

    steps = list(torch.unbind(xs, 1))
    masks = None if mask is None else list(torch.unbind(torch.as_tensor(mask, dtype=torch.bool)[..., None], 1))
    if go_backwards:
        steps.reverse()
        masks = None if masks is None else masks[::-1]
    h, out, outputs = h0, torch.zeros_like(h0), []
    for t, x_t in enumerate(steps):
        h_new = step(x_t, h)
        if masks is None:
            h = out = h_new
        else:
            m_t = masks[t]
            h = torch.where(m_t, h_new, h)
            out = torch.where(m_t, h, torch.zeros_like(h) if zero_output_for_mask else out)
        if return_sequences:
            outputs.append(out)
    seq = torch.stack(outputs, 1) if return_sequences else out[:, None]
    return out, seq, [h]


def torch_gru(sequences, h0, kernel, recurrent_kernel, bias, go_backwards, return_sequences):
    """The standard GRU (reset_after, tanh/sigmoid) through ``torch._VF.gru``.

    That is the ATen kernel behind ``torch.nn.GRU`` (cuDNN on CUDA, a fused
    loop on CPU). Keras's weights map onto PyTorch's by reordering the gate
    blocks from ``z|r|h`` to ``r|z|n`` and transposing.
    """
    import torch

    def reorder(w):  # (rows, 3n) z|r|h -> (3n, rows) r|z|n
        z, r, h = torch.chunk(w, 3, dim=-1)
        return torch.cat([r, z, h], dim=-1).transpose(-1, -2) if w.dim() == 2 else torch.cat([r, z, h])

    params = [reorder(kernel), reorder(recurrent_kernel)]
    if bias is not None:
        params += [reorder(bias[0]), reorder(bias[1])]
    x = torch.flip(sequences, [1]) if go_backwards else sequences
    outputs, h_n = torch._VF.gru(x, h0.unsqueeze(0).contiguous(), params, bias is not None,
                                 1, 0.0, torch.is_grad_enabled(), False, True)
    last = h_n[0]
    return last, (outputs if return_sequences else last[:, None]), [last]
