"""A cuDNN-style backward through time on JAX (CPU): what it costs to keep the residuals.

The backward pass through time as cuDNN computes it: per step only the data gradient
(``dh U^T``), and the weight gradients of the whole sequence from one large GEMM after the
loop (``H^T dGates``). That needs the per-step gate gradients (and the gates themselves)
stacked over time. This measures, for the standard GRU (``reset_after``,
batch 64, T 100, 32 features, 128 units, float32), in one process:

* ``train``: one ``value_and_grad`` of a sum-of-squares loss, jitted, for
  - ``autodiff, projection per step``: JAX differentiates ``lax.scan`` over the inputs,
    ``x_t W`` inside the step (what ``grukit.layers.RNN`` does on JAX);
  - ``autodiff, projection per sequence``: ``x W`` before the loop, scan over it;
  - ``custom_vjp``: the forward stacks ``h_{t-1}, z, r, h~, (h U)_h``; the backward loop
    computes the gates' gradients and ``dh`` by hand, stacks the gates' gradients, and
    ``dW``, ``dU``, the biases' gradients come from one contraction each after the loop;
  - ``custom_vjp, loop-carried buffers``: the same, with the stacked arrays preallocated
    and written in place (``fori_loop`` carrying them, ``dynamic_update_index_in_dim``)
    instead of ``scan``'s stacked outputs;
* ``parts``: the forward loop without and with the stacked residuals, the custom
  backward's loop without its stacked outputs (``dh`` only) and whole, and the
  loop-carried version's forward and backward.

The gradients of the four versions are checked against each other first. Run pinned to
one core, from the repository root::

    OMP_NUM_THREADS=1 taskset -c 0 python experiments/bptt_jax_residuals.py

Milliseconds are the best of 5 blocks of 20 calls; compare them within one run only.
"""

from __future__ import annotations

import time

import numpy as np

B, T, F, N = 64, 100, 32, 128


def problem():
    """The inputs, ``W``, ``U``, the biases (``reset_after``: two rows) and the targets,
    float32 NumPy arrays (also used by ``experiments/bptt_tf.py``)."""
    rng = np.random.default_rng(0)
    shapes = [((B, T, F), 1.0), ((F, 3 * N), 0.1), ((N, 3 * N), 0.1), ((2, 3 * N), 0.1),
              ((B, 1), 1.0)]
    return [(rng.standard_normal(shape) * scale).astype(np.float32) for shape, scale in shapes]


def best_ms(call, sync, blocks=5, calls=10):
    """Milliseconds per call of ``call()``: the best of ``blocks`` blocks of ``calls`` calls,
    after one call (compilation); ``sync(result)`` waits for the last result."""
    sync(call())
    best = float("inf")
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(calls):
            out = call()
        sync(out)
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3


def report(title, times, width):
    """Prints each training step's milliseconds, steps/s and GEMM GFLOP/s."""
    flops = 2 * B * T * N * (2 * 3 * F + 3 * 3 * N)  # grukit.bench.train_flops("gru", ...)
    print(title)
    for name, t in times.items():
        print(f"  {name:{width}s} {t:6.1f} ms  {1e3 / t:5.1f} steps/s  "
              f"{flops / t / 1e6:5.1f} GFLOP/s")


def main():
    import jax
    import jax.numpy as jnp

    x, w, u, b, y = (jnp.asarray(a) for a in problem())
    h0 = jnp.zeros((B, N), jnp.float32)

    def gates(p, hu, h):
        """z, r, h~ and h_t from the input projection p and h U + b (reset_after)."""
        pz, pr, ph = jnp.split(p, 3, -1)
        uz, ur, uh = jnp.split(hu, 3, -1)
        z, r = jax.nn.sigmoid(pz + uz), jax.nn.sigmoid(pr + ur)
        c = jnp.tanh(ph + r * uh)
        return z, r, c, uh, z * h + (1 - z) * c

    def per_step(w, u, b, x):
        def body(h, x_t):
            return gates(x_t @ w + b[0], h @ u + b[1], h)[-1], None
        return jax.lax.scan(body, h0, jnp.swapaxes(x, 0, 1))[0]

    def per_sequence(w, u, b, x):
        def body(h, p_t):
            return gates(p_t, h @ u + b[1], h)[-1], None
        return jax.lax.scan(body, h0, jnp.swapaxes(x @ w + b[0], 0, 1))[0]

    def forward(w, u, b, x, keep=True):
        xs = jnp.swapaxes(x, 0, 1)

        def body(h, x_t):
            z, r, c, uh, h_new = gates(x_t @ w + b[0], h @ u + b[1], h)
            return h_new, ((h, z, r, c, uh) if keep else None)
        h, residuals = jax.lax.scan(body, h0, xs)
        return h, (w, u, xs, residuals)

    def backward(saved, dh, stack=True):
        _, u, xs, (hs, zs, rs, cs, uhs) = saved
        u_t = u.T

        def body(dh, res):
            h, z, r, c, uh = res
            dz = dh * (h - c) * z * (1 - z)
            dc = dh * (1 - z) * (1 - c * c)
            dr = dc * uh * r * (1 - r)
            d_hu = jnp.concatenate([dz, dr, dc * r], -1)
            dh_prev = dh * z + d_hu @ u_t
            return dh_prev, ((jnp.concatenate([dz, dr, dc], -1), d_hu) if stack else None)
        dh0, stacked = jax.lax.scan(body, dh, (hs, zs, rs, cs, uhs), reverse=True)
        if not stack:
            return dh0
        d_px, d_hu = stacked
        dw = jnp.einsum("tbf,tbk->fk", xs, d_px)  # one GEMM each, after the loop
        du = jnp.einsum("tbn,tbk->nk", hs, d_hu)
        db = jnp.stack([d_px.sum((0, 1)), d_hu.sum((0, 1))])
        return dw, du, db, jnp.zeros_like(jnp.swapaxes(xs, 0, 1))

    custom = jax.custom_vjp(lambda w, u, b, x: per_step(w, u, b, x))
    custom.defvjp(forward, backward)

    def forward_carried(w, u, b, x):
        xs = jnp.swapaxes(x, 0, 1)

        def body(t, carry):
            h, res = carry
            z, r, c, uh, h_new = gates(xs[t] @ w + b[0], h @ u + b[1], h)
            res = jax.lax.dynamic_update_index_in_dim(
                res, jnp.concatenate([h, z, r, c, uh], -1), t, 0)
            return h_new, res
        h, res = jax.lax.fori_loop(0, T, body, (h0, jnp.zeros((T, B, 5 * N), x.dtype)))
        return h, (u, xs, res)

    def backward_carried(saved, dh):
        u, xs, res = saved
        u_t = u.T

        def body(i, carry):
            dh, grads = carry
            t = T - 1 - i
            h, z, r, c, uh = jnp.split(res[t], 5, -1)
            dz = dh * (h - c) * z * (1 - z)
            dc = dh * (1 - z) * (1 - c * c)
            dr = dc * uh * r * (1 - r)
            dh_prev = dh * z + jnp.concatenate([dz, dr, dc * r], -1) @ u_t
            grads = jax.lax.dynamic_update_index_in_dim(
                grads, jnp.concatenate([dz, dr, dc, dc * r], -1), t, 0)
            return dh_prev, grads
        _, grads = jax.lax.fori_loop(0, T, body, (dh, jnp.zeros((T, B, 4 * N), dh.dtype)))
        d_px = grads[..., :3 * N]
        d_hu = jnp.concatenate([grads[..., :2 * N], grads[..., 3 * N:]], -1)
        dw = jnp.einsum("tbf,tbk->fk", xs, d_px)
        du = jnp.einsum("tbn,tbk->nk", res[..., :N], d_hu)
        db = jnp.stack([d_px.sum((0, 1)), d_hu.sum((0, 1))])
        return dw, du, db, jnp.zeros_like(jnp.swapaxes(xs, 0, 1))

    carried = jax.custom_vjp(lambda w, u, b, x: per_step(w, u, b, x))
    carried.defvjp(forward_carried, backward_carried)

    def train_step(rnn):
        def loss(params):
            return jnp.mean((rnn(*params, x).sum(-1, keepdims=True) - y) ** 2)
        return jax.jit(jax.value_and_grad(loss))

    runs = {"autodiff, projection per step": train_step(per_step),
            "autodiff, projection per sequence": train_step(per_sequence),
            "custom_vjp (stacked residuals, weight GEMMs after the loop)": train_step(custom),
            "custom_vjp, loop-carried buffers": train_step(carried)}
    reference = runs["autodiff, projection per step"]((w, u, b))[1]
    for name, fn in runs.items():
        err = max(float(jnp.abs(a - c).max()) for a, c in zip(reference, fn((w, u, b))[1]))
        assert err < 1e-5, (name, err)

    def ms(fn, *args):
        return best_ms(lambda: fn(*args), jax.block_until_ready, calls=20)

    print(f"jax {jax.__version__}, {jax.default_backend()}; GRU batch {B}, T {T}, "
          f"features {F}, units {N}; the gradients agree (max abs difference < 1e-5)")
    report("train step (value_and_grad, jitted):",
           {name: ms(fn, (w, u, b)) for name, fn in runs.items()}, width=60)
    h, saved = jax.jit(forward)(w, u, b, x)
    print("parts:")
    for name, fn, args in [
            ("forward loop, nothing stacked", jax.jit(lambda *a: forward(*a, keep=False)[0]),
             (w, u, b, x)),
            ("forward loop, residuals stacked", jax.jit(forward), (w, u, b, x)),
            ("custom backward loop, dh only", jax.jit(lambda s, d: backward(s, d, stack=False)),
             (saved, h)),
            ("custom backward, stacked gates' gradients + GEMMs", jax.jit(backward),
             (saved, h)),
            ("forward loop, loop-carried buffer", jax.jit(forward_carried), (w, u, b, x)),
            ("custom backward, loop-carried buffer + GEMMs", jax.jit(backward_carried),
             jax.jit(forward_carried)(w, u, b, x)[::-1])]:
        print(f"  {name:60s} {ms(fn, *args):6.1f} ms")


if __name__ == "__main__":
    main()
