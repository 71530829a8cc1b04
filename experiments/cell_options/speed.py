"""Training speed of cell configurations relative to a baseline, measured interleaved in
one process.

``grukit bench`` times each configuration in its own process, one after the other; on a
machine shared with other work the load changes between them and their ratios mislead.
Here every model (the bench's shape: batch 64, 32 features, 128 units, T=100,
``Input -> grukit.layers.RNN (last state) -> Dense(1)``, Adam on MSE) is built in one
process and timed in rounds, one block of training steps each per round, so that every
configuration sees the same load; the figure is the median over rounds of each
configuration's steps/s divided by the baseline's in the same round (with the min-max).

Two sets of configurations (``--set``):

* ``options`` (default) -- ``--variant`` (default ``gru``) with no option, then with each
  cell option (``norm="layer"``, ``norm="rms"``, ``zoneout=0.1``,
  ``recurrent_weight_dropout=0.25``); the baseline is no option.
* ``forms`` -- the GRU (``reset_after=True``, its Keras/cuDNN default) as the baseline,
  then every variant with a reset gate whose default is its paper's reset-before form
  (GRU1-3, MGU, MGU1-3), each in that form and with ``reset_after=True``. With
  ``reset_after=True`` the gate scales ``h U_h + b'_h``, so the candidate's recurrent
  matmul joins the gates' in one matmul per step (not the papers' equations; whether it
  is faster depends on the backend).

``--out FILE`` also writes the figures as JSON (``benchmarks/cpu/forms/`` holds this
machine's, one file per backend)::

    KERAS_BACKEND=jax python experiments/cell_options/speed.py --rounds 7
    KERAS_BACKEND=torch OMP_NUM_THREADS=1 taskset -c 0 python experiments/cell_options/speed.py \\
        --set forms --rounds 15 --steps 10 --out benchmarks/cpu/forms/torch.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time

import numpy as np

OPTIONS = {"none": {}, "norm='layer'": {"norm": "layer"}, "norm='rms'": {"norm": "rms"},
           "zoneout=0.1": {"zoneout": 0.1}, "recurrent_weight_dropout=0.25":
           {"recurrent_weight_dropout": 0.25}}
FORM_VARIANTS = ("gru1", "gru2", "gru3", "mgu", "mgu1", "mgu2", "mgu3")


def configurations(which, variant="gru"):
    """``[(label, variant, cell arguments)]`` of a ``--set``, the baseline first."""
    if which == "options":
        return [(name, variant, opts) for name, opts in OPTIONS.items()]
    if which == "forms":
        out = [("gru", "gru", {})]
        for v in FORM_VARIANTS:
            out += [(v, v, {}), (f"{v} reset_after=True", v, {"reset_after": True})]
        return out
    raise ValueError(f"unknown set {which!r}: expected 'options' or 'forms'")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", dest="which", choices=("options", "forms"), default="options")
    p.add_argument("--variant", default="gru", help="the variant of --set options")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=5, help="training steps per block")
    p.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    import keras
    import grukit

    configs = configurations(args.which, args.variant)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 100, 32)).astype("float32")
    y = rng.standard_normal((64, 1)).astype("float32")
    models = {}
    for label, variant, opts in configs:
        keras.utils.set_random_seed(0)
        inp = keras.Input((100, 32), batch_size=64)
        layer = grukit.layers.RNN(grukit.get_cell(variant, 128, **opts))
        model = keras.Model(inp, keras.layers.Dense(1)(layer(inp)))
        model.compile(optimizer="adam", loss="mse")
        for _ in range(2):  # compile and warm up
            model.train_on_batch(x, y)
        models[label] = model
    baseline = configs[0][0]
    ratios = {label: [] for label in models}
    for _ in range(args.rounds):
        rates = {}
        for label, model in models.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(x, y)
            rates[label] = args.steps / (time.perf_counter() - t0)
        for label in models:
            ratios[label].append(rates[label] / rates[baseline])
    title = (f"{keras.backend.backend()}: training speed relative to {baseline} "
             f"(median of {args.rounds} interleaved rounds of {args.steps} steps; min-max)")
    print(title)
    for label, r in ratios.items():
        print(f"  {label:32} {statistics.median(r):.2f}  ({min(r):.2f}-{max(r):.2f})")
    if args.out:
        report = {"date": datetime.datetime.now().isoformat(timespec="minutes"),
                  "backend": keras.backend.backend(), "set": args.which, "baseline": baseline,
                  "rounds": args.rounds, "steps": args.steps,
                  "command": "python experiments/cell_options/speed.py " + " ".join(
                      sys.argv[1:] if argv is None else argv),
                  "ratios": {label: {"median": statistics.median(r), "min": min(r),
                                     "max": max(r), "all": r} for label, r in ratios.items()}}
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
