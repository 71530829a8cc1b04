"""A cuDNN-style backward through time on TensorFlow (CPU): what it costs against autodiff.

The TensorFlow counterpart of ``experiments/bptt_jax_residuals.py`` and
``experiments/bptt_torch.py``. For the standard GRU (``reset_after``, batch 64, T 100, 32
features, 128 units, float32) it times one training step -- the loss and the gradients of
``W``, ``U`` and the biases, in a ``tf.function`` -- for

* ``autodiff``: TensorFlow differentiates a ``tf.while_loop`` whose step projects
  ``x_t W`` and computes the gates (what ``keras.src.backend.rnn`` builds for a
  ``grukit.layers.RNN`` on TensorFlow);
* ``custom_gradient``: ``tf.custom_gradient`` over the whole loop. The forward loop writes
  ``h_{t-1}, z, r, h~, (h U)_h`` into ``TensorArray``s; the backward loop computes per step
  the gates' gradients and ``dh = dh z + dPre_h U^T`` (one matmul) and writes the gates'
  gradients out; ``dW``, ``dU`` and the biases' gradients come after the loop from one
  contraction each over every step and row;

each compiled with XLA (``jit_compile=True``, what Keras's ``fit`` uses on TensorFlow where
every layer allows it) and without (the TensorFlow graph executor). The two gradients are
checked against each other first. Run pinned to one core, from the repository root::

    OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \\
        taskset -c 0 python experiments/bptt_tf.py

Milliseconds are the best of 5 blocks of 10 calls; compare them within one run only.

What it found (four runs on this machine, one core): the hand-written backward runs at
0.86-0.96x autodiff's speed with XLA and 0.74-0.98x without (autodiff with XLA: 32.9-37.5
ms, 59-67 GFLOP/s). Autodiff's backward loop computes ``U``'s gradient in each
step (a second matmul per step, accumulated); moving it into one GEMM after the loop saves
less than keeping the gates and their gradients for the whole sequence costs.
The minimal loop's training rate is also well above the GRU layer's in ``grukit bench``
(its ``train_on_batch`` adds Keras's step, the loss and Adam), so that is where to look
for TensorFlow's share of the machine's limit.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bptt_jax_residuals import B, F, N, T, best_ms, problem, report  # noqa: E402


def main():
    import tensorflow as tf

    x, w, u, b, y = (tf.constant(a) for a in problem())
    h0 = tf.zeros((B, N), tf.float32)
    xs = tf.transpose(x, [1, 0, 2])  # time-major

    def gates(p, hu, h):
        """z, r, h~, (h U)_h and h_t from the input projection and h U + b (reset_after)."""
        pz, pr, ph = tf.split(p, 3, -1)
        uz, ur, uh = tf.split(hu, 3, -1)
        z, r = tf.sigmoid(pz + uz), tf.sigmoid(pr + ur)
        c = tf.tanh(ph + r * uh)
        return z, r, c, uh, z * h + (1 - z) * c

    def autodiff_loop(w, u, b):
        def body(t, h):
            return t + 1, gates(tf.matmul(xs[t], w) + b[0], tf.matmul(h, u) + b[1], h)[-1]
        return tf.while_loop(lambda t, h: t < T, body, (tf.constant(0), h0),
                             maximum_iterations=T)[1]

    @tf.custom_gradient
    def custom_loop(w, u, b):
        arrays = [tf.TensorArray(tf.float32, size=T) for _ in range(5)]

        def body(t, h, *arrays):
            z, r, c, uh, h_new = gates(tf.matmul(xs[t], w) + b[0], tf.matmul(h, u) + b[1], h)
            return (t + 1, h_new) + tuple(a.write(t, v) for a, v in zip(arrays, (h, z, r, c, uh)))
        _, h, *arrays = tf.while_loop(lambda t, *_: t < T, body, (tf.constant(0), h0, *arrays),
                                      maximum_iterations=T)
        hs, zs, rs, cs, uhs = (a.stack() for a in arrays)

        def grad(dh):
            u_t = tf.transpose(u)
            d_px_a = tf.TensorArray(tf.float32, size=T)
            d_hu_a = tf.TensorArray(tf.float32, size=T)

            def back(i, dh, d_px_a, d_hu_a):
                t = T - 1 - i
                h, z, r, c, uh = hs[t], zs[t], rs[t], cs[t], uhs[t]
                dz = dh * (h - c) * z * (1 - z)
                dc = dh * (1 - z) * (1 - c * c)
                dr = dc * uh * r * (1 - r)
                d_hu = tf.concat([dz, dr, dc * r], -1)
                return (i + 1, dh * z + tf.matmul(d_hu, u_t),
                        d_px_a.write(t, tf.concat([dz, dr, dc], -1)), d_hu_a.write(t, d_hu))
            _, _, d_px_a, d_hu_a = tf.while_loop(lambda i, *_: i < T, back,
                                                 (tf.constant(0), dh, d_px_a, d_hu_a),
                                                 maximum_iterations=T)
            d_px, d_hu = d_px_a.stack(), d_hu_a.stack()
            dw = tf.einsum("tbf,tbk->fk", xs, d_px)  # one GEMM each, after the loop
            du = tf.einsum("tbn,tbk->nk", hs, d_hu)
            db = tf.stack([tf.reduce_sum(d_px, [0, 1]), tf.reduce_sum(d_hu, [0, 1])])
            return dw, du, db
        return h, grad

    def train_step(rnn, jit):
        @tf.function(jit_compile=jit)
        def step(w, u, b):
            with tf.GradientTape() as tape:
                tape.watch([w, u, b])
                loss = tf.reduce_mean((tf.reduce_sum(rnn(w, u, b), -1, keepdims=True) - y) ** 2)
            return loss, tape.gradient(loss, [w, u, b])
        return step

    runs = {f"{name}, {'XLA' if jit else 'graph'}": train_step(fn, jit)
            for jit in (True, False)
            for name, fn in (("autodiff", autodiff_loop), ("custom_gradient", custom_loop))}
    reference = runs["autodiff, XLA"](w, u, b)[1]
    for name, fn in runs.items():
        err = max(float(tf.reduce_max(tf.abs(a - c))) for a, c in zip(reference, fn(w, u, b)[1]))
        assert err < 1e-4, (name, err)

    print(f"tensorflow {tf.__version__}; GRU batch {B}, T {T}, features {F}, units {N}; "
          f"the gradients agree (max abs difference < 1e-4)")
    report("train step (loss and gradients, tf.function):",
           {name: best_ms(lambda: fn(w, u, b), lambda out: float(out[0]))
            for name, fn in runs.items()}, width=28)

if __name__ == "__main__":
    main()
