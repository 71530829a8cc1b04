"""TensorFlow on a CPU: training with and without XLA (``model.compile(jit_compile=...)``).

Keras resolves ``jit_compile="auto"`` (the default of ``Model.compile``) to False on the
TensorFlow backend when the machine has no GPU, so ``fit`` and ``train_on_batch`` run the
TensorFlow graph executor there. This times, in one process, interleaved in rounds, the
``grukit bench`` model (a recurrent layer of 128 units on batch 64, T 100, 32 features, a
``Dense(1)`` head, Adam on MSE; one ``train_on_batch``) for ``grukit.layers.RNN(GRUCell)``
and ``keras.layers.GRU``, compiled with ``jit_compile`` "auto", True and False, and prints
each one's milliseconds (best of the rounds) and the GRU layer's matmul GFLOP/s
(``grukit.bench.train_flops``). Run pinned to one core, from the repository root::

    OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \\
        taskset -c 0 python experiments/tf_jit_compile.py

Compare the milliseconds within one run only.
"""

from __future__ import annotations

import os
import time

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

B, T, F, N = 64, 100, 32, 128


def main(rounds=5, calls=10):
    import keras

    import grukit
    from grukit.bench import train_flops

    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, F)).astype("float32")
    y = rng.standard_normal((B, 1)).astype("float32")
    models = {}
    for jit in ("auto", True, False):
        for name in ("grukit.layers.RNN(GRUCell)", "keras.layers.GRU"):
            keras.utils.set_random_seed(0)
            layer = keras.layers.GRU(N) if name == "keras.layers.GRU" else \
                grukit.layers.RNN(grukit.GRUCell(N))
            inp = keras.Input((T, F), batch_size=B)
            model = keras.Model(inp, keras.layers.Dense(1)(layer(inp)))
            model.compile(optimizer="adam", loss="mse", jit_compile=jit)
            for _ in range(3):  # trace and compile
                model.train_on_batch(x, y)
            models[name, jit, model.jit_compile] = model
    times = {key: [] for key in models}
    for _ in range(rounds):
        for key, model in models.items():
            start = time.perf_counter()
            for _ in range(calls):
                model.train_on_batch(x, y)
            times[key].append((time.perf_counter() - start) / calls)
    flops = train_flops("gru", B, T, F, N)
    print(f"keras {keras.__version__}, TensorFlow backend; batch {B}, T {T}, features {F}, "
          f"units {N}; best of {rounds} rounds of {calls} train_on_batch calls")
    for (name, jit, resolved), values in times.items():
        best = min(values)
        print(f"  {name:28s} jit_compile={jit!s:5s} (model.jit_compile={resolved!s:5s}) "
              f"{best * 1e3:6.1f} ms  {flops / best / 1e9:5.1f} GFLOP/s")


if __name__ == "__main__":
    main()
