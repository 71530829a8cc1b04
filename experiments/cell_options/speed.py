"""Speed cost of each cell option, measured interleaved in one process.

``grukit bench --impls grukit grukit_layer grukit_rms grukit_zoneout
grukit_weight_drop`` times each configuration in its own process, one after
the other; on a machine shared with other work the load changes between them
and their ratios mislead. Here the five ``grukit.layers.RNN`` models (GRU, the
bench's shape: batch 64, 32 features, 128 units, T=100, Adam on MSE) are
built in one process and timed in rounds, one block of training steps each
per round, so that every configuration sees the same load; the figure is the
median over rounds of each configuration's steps/s divided by the plain
GRU's in the same round.

    KERAS_BACKEND=jax python experiments/cell_options/speed.py --rounds 7
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

OPTIONS = {"none": {}, "norm='layer'": {"norm": "layer"}, "norm='rms'": {"norm": "rms"},
           "zoneout=0.1": {"zoneout": 0.1}, "recurrent_weight_dropout=0.25":
           {"recurrent_weight_dropout": 0.25}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", default="gru")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=5, help="training steps per block")
    args = p.parse_args(argv)
    import keras
    import grukit

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 100, 32)).astype("float32")
    y = rng.standard_normal((64, 1)).astype("float32")
    models = {}
    for name, opts in OPTIONS.items():
        keras.utils.set_random_seed(0)
        inp = keras.Input((100, 32), batch_size=64)
        layer = grukit.layers.RNN(grukit.get_cell(args.variant, 128, **opts))
        model = keras.Model(inp, keras.layers.Dense(1)(layer(inp)))
        model.compile(optimizer="adam", loss="mse")
        for _ in range(2):  # compile and warm up
            model.train_on_batch(x, y)
        models[name] = model
    ratios = {name: [] for name in OPTIONS}
    for _ in range(args.rounds):
        rates = {}
        for name, model in models.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(x, y)
            rates[name] = args.steps / (time.perf_counter() - t0)
        for name in OPTIONS:
            ratios[name].append(rates[name] / rates["none"])
    print(f"{keras.backend.backend()}, {args.variant}: training speed relative to no option "
          f"(median of {args.rounds} interleaved rounds; min-max)")
    for name, r in ratios.items():
        print(f"  {name:32} {statistics.median(r):.2f}  ({min(r):.2f}-{max(r):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
