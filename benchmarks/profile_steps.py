"""Profile evidence: where the time of a training step goes, per backend and implementation.

    KERAS_BACKEND=torch python benchmarks/profile_steps.py   # ops per time step
    KERAS_BACKEND=jax   python benchmarks/profile_steps.py   # + minGRU scan timing

1. torch backend: the ATen ops that one time step of the recurrent loop runs, for
   grukit.layers.RNN and keras.layers.RNN(cell), counted with torch.profiler over an
   inference pass (T=100, batch 64, 32 features, 128 units) and divided by T.
2. every backend: minGRU over T=1024 -- the parallel linear scan (ceil(log2 T)
   vectorised passes over [batch, T, units]) against the sequential loop
   (T steps over a [batch, units] state), forward only, median of 5.
"""
import collections
import os
import statistics
import time

import numpy as np
import keras

import grukit

B, F, N = 64, 32, 128


def _timeit(fn, repeats=5):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        keras.ops.convert_to_numpy(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def torch_ops_per_step(T=100):
    import torch
    from torch.profiler import profile, ProfilerActivity

    x = np.random.default_rng(0).standard_normal((B, T, F)).astype("float32")
    print(f"torch: ATen ops per time step (inference, T={T})")
    print(f"{'variant':8} {'layer':22} {'ops/step':>8} {'matmuls/step':>12} {'ms/step':>8}")
    for variant in ("gru", "mgu", "mgu2", "gru2", "mingru"):
        for name, layer in (
                ("grukit.layers.RNN", grukit.layers.RNN(grukit.get_cell(variant, N), use_cudnn=False)),
                ("keras.layers.RNN(cell)", keras.layers.RNN(grukit.get_cell(variant, N)))):
            layer(x)
            with torch.no_grad():
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    layer(x)
                seconds = _timeit(lambda: layer(x))
            counts = collections.Counter(e.name for e in prof.events() if e.name.startswith("aten::"))
            # top-level ATen calls only: count events whose parent is not an aten op
            top = [e for e in prof.events() if e.name.startswith("aten::")
                   and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))]
            mm = sum(1 for e in top if e.name in ("aten::matmul", "aten::mm", "aten::addmm", "aten::linear"))
            print(f"{variant:8} {name:22} {len(top) / T:8.1f} {mm / T:12.2f} {1e3 * seconds / T:8.3f}")


def mingru_scan(T=1024):
    from keras import ops

    rng = np.random.default_rng(0)
    a = ops.convert_to_tensor(rng.uniform(0.5, 1.0, (B, T, N)).astype("float32"))
    b = ops.convert_to_tensor(rng.standard_normal((B, T, N)).astype("float32"))
    x = rng.standard_normal((B, T, F)).astype("float32")
    par = grukit.layers.RNN(grukit.MinGRUCell(N), parallel=True, return_sequences=True)
    seq = grukit.layers.RNN(grukit.MinGRUCell(N), parallel=False, return_sequences=True)
    par(x), seq(x)
    seq.set_weights(par.get_weights())
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        scan = jax.jit(grukit.layers.linear_scan)
        fpar = jax.jit(lambda x: par(x))
        fseq = jax.jit(lambda x: seq(x))
    elif backend == "tensorflow":
        import tensorflow as tf
        scan = tf.function(grukit.layers.linear_scan, jit_compile=True)
        fpar = tf.function(lambda x: par(x), jit_compile=True)
        fseq = tf.function(lambda x: seq(x), jit_compile=True)
    else:
        scan, fpar, fseq = grukit.layers.linear_scan, par, seq
    t_scan = _timeit(lambda: scan(a, b))
    t_par = _timeit(lambda: fpar(x))
    t_seq = _timeit(lambda: fseq(x))
    passes = int(np.ceil(np.log2(T)))
    mb = B * T * N * 4 / 2**20
    print(f"{backend}: minGRU forward, T={T}: parallel layer {1e3 * t_par:.1f} ms "
          f"(of which linear_scan {1e3 * t_scan:.1f} ms: {passes} passes over "
          f"{mb:.0f} MiB arrays), sequential layer {1e3 * t_seq:.1f} ms; "
          f"parallel/sequential time {t_par / t_seq:.2f}")


if __name__ == "__main__":
    if keras.backend.backend() == "torch":
        torch_ops_per_step()
    mingru_scan()
