"""Eager calls of a grukit layer on JAX, with and without the reuse of compiled loops.

``grukit._loop._jax_eager_scan`` compiles the recurrent loop of an eager JAX call once per
step program and reuses it across calls and layer instances (the weights are arguments).
This times a call of fresh layers of one configuration, each built first, with that reuse
and without it (``_jax_eager_scan`` replaced by a function that declines, which is the
plain ``lax.scan`` path: one compile per call). Run from the repository root::

    KERAS_BACKEND=jax python experiments/jax_eager_loop.py
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

import grukit  # noqa: E402
from grukit import _loop  # noqa: E402

LAYERS, BATCH, STEPS, FEATURES, UNITS, VARIANT = 6, 8, 50, 16, 32, "mgu2"


def median_call_seconds(x):
    """Median time of one eager call over fresh, built layers (the first is left out)."""
    times = []
    for _ in range(LAYERS):
        layer = grukit.layers.GRU(UNITS, variant=VARIANT, return_sequences=True)
        layer(x)  # builds it (and, with the reuse, compiles the loop once)
        start = time.perf_counter()
        np.asarray(layer(x))
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def main():
    import keras

    if keras.backend.backend() != "jax":
        raise SystemExit("run with KERAS_BACKEND=jax")
    x = np.random.default_rng(0).random((BATCH, STEPS, FEATURES)).astype("float32")
    with_reuse = median_call_seconds(x)
    original = _loop._jax_eager_scan
    _loop._jax_eager_scan = lambda *args: None
    try:
        without = median_call_seconds(x)
    finally:
        _loop._jax_eager_scan = original
    print(f"grukit.layers.GRU({UNITS}, variant={VARIANT!r}) on ({BATCH}, {STEPS}, {FEATURES}), "
          f"eager, median of {LAYERS - 1} fresh layers: {without:.4f} s a call without the reuse, "
          f"{with_reuse:.4f} s with it ({without / with_reuse:.0f}x)")


if __name__ == "__main__":
    main()
