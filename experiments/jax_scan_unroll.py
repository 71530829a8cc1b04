"""JAX on a CPU: does unrolling the recurrent ``lax.scan`` speed up training?

``jax.lax.scan(..., unroll=k)`` puts ``k`` steps into each iteration of the compiled
loop: fewer loop iterations, and XLA can fuse across the unrolled steps. This times, in one
process, interleaved in rounds, the ``grukit bench`` model (``grukit.bench.keras_model``:
batch 64, T 100, 32 features, 128 units, ``Dense(1)``, Adam on MSE; one
``train_on_batch``) for the GRU and the MGU with the layer's scan unrolled 1 (what
``grukit.layers.RNN`` does), 2 and 4 times (``jax.lax.scan`` wrapped while each model
is traced), and prints each one's median milliseconds and its speed relative to
``unroll=1`` (median of the rounds' ratios, min-max). Run pinned to one core, from the
repository root::

    OMP_NUM_THREADS=1 XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
        taskset -c 0 python experiments/jax_scan_unroll.py

What it found (one run on this machine, keras 3.15.1, jax 0.10.2; 12 rounds of 10 calls):
no gain. GRU: 1.03x (0.91-1.10) with ``unroll=2`` and 0.97x (0.88-1.02) with 4; MGU:
0.98x (0.85-1.14) and 0.67x (0.58-0.83). So the layer keeps ``unroll=1``.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ["KERAS_BACKEND"] = "jax"

import numpy as np  # noqa: E402

B, T, F, N = 64, 100, 32, 128


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=["gru", "mgu"])
    parser.add_argument("--unroll", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--calls", type=int, default=10, help="train_on_batch calls per round")
    args = parser.parse_args(argv)

    import jax
    import keras

    from grukit import _loop
    from grukit.bench import keras_model

    plain_scan, chosen = jax.lax.scan, {"unroll": 1}

    def scan(f, init, xs=None, length=None, reverse=False, unroll=1, **kwargs):
        return plain_scan(f, init, xs, length=length, reverse=reverse,
                          unroll=chosen["unroll"], **kwargs)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, F)).astype("float32")
    y = rng.standard_normal((B, 1)).astype("float32")
    models = {}
    jax.lax.scan = scan
    try:
        for variant in args.variants:
            for unroll in args.unroll:
                chosen["unroll"] = unroll
                _loop._EAGER_SCANS.clear()
                keras.utils.set_random_seed(0)
                model = keras_model("grukit", variant, B, T, F, N)
                for _ in range(3):  # traces and compiles with this unroll
                    model.train_on_batch(x, y)
                models[variant, unroll] = model
    finally:
        jax.lax.scan = plain_scan
    times = {key: [] for key in models}
    for _ in range(args.rounds):
        for key, model in models.items():
            start = time.perf_counter()
            for _ in range(args.calls):
                model.train_on_batch(x, y)
            times[key].append((time.perf_counter() - start) / args.calls)
    print(f"keras {keras.__version__}, jax {jax.__version__}; batch {B}, T {T}, features {F}, "
          f"units {N}; {args.rounds} rounds of {args.calls} train_on_batch calls")
    for variant in args.variants:
        base = np.array(times[variant, args.unroll[0]])
        for unroll in args.unroll:
            t = np.array(times[variant, unroll])
            r = base / t
            print(f"  {variant:6s} unroll={unroll}: {np.median(t) * 1e3:6.1f} ms, "
                  f"{np.median(r):.2f}x unroll={args.unroll[0]} ({r.min():.2f}-{r.max():.2f})")


if __name__ == "__main__":
    main()
