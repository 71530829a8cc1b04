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
* ``baselines`` -- grukit against what a user would otherwise run: ``grukit gru``
  (``grukit.layers.RNN(GRUCell)``) as the baseline, ``keras.layers.GRU``,
  ``torch.nn.GRU`` in plain PyTorch when PyTorch is installed (on any Keras backend:
  ``grukit.bench.torch_gru_steps``), and for every variant ``grukit <v>`` and
  ``keras.layers.RNN(<v>)`` (Keras's loop over the same cell). Also prints each pair's
  ratio (grukit over the alternative), the median over rounds of the ratio within a
  round.

``--out FILE`` also writes the figures as JSON, with every round's steps/s
(``benchmarks/cpu/forms/`` and ``benchmarks/cpu/baselines/`` hold this machine's, one
file per backend)::

    KERAS_BACKEND=jax python experiments/cell_options/speed.py --rounds 7
    KERAS_BACKEND=torch OMP_NUM_THREADS=1 taskset -c 0 python experiments/cell_options/speed.py \\
        --set forms --rounds 15 --steps 10 --out benchmarks/cpu/forms/torch.json
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
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
    """``[(label, layer, variant, cell arguments)]`` of a ``--set``, the baseline first;
    ``layer`` is ``"grukit"`` (``grukit.layers.RNN``), ``"keras_rnn"``
    (``keras.layers.RNN``), ``"keras_gru"`` (``keras.layers.GRU``) or ``"torch_gru"``."""
    import grukit

    if which == "options":
        return [(name, "grukit", variant, opts) for name, opts in OPTIONS.items()]
    if which == "forms":
        out = [("gru", "grukit", "gru", {})]
        for v in FORM_VARIANTS:
            out += [(v, "grukit", v, {}), (f"{v} reset_after=True", "grukit", v,
                                           {"reset_after": True})]
        return out
    if which == "baselines":
        out = [("grukit gru", "grukit", "gru", {}), ("keras.layers.GRU", "keras_gru", "gru", {})]
        if importlib.util.find_spec("torch") is not None:
            out.append(("torch.nn.GRU", "torch_gru", "gru", {}))
        for v in (spec.name for spec in grukit.variants()):
            if v != "gru":
                out.append((f"grukit {v}", "grukit", v, {}))
            out.append((f"keras.layers.RNN({v})", "keras_rnn", v, {}))
        return out
    raise ValueError(f"unknown set {which!r}: expected 'options', 'forms' or 'baselines'")


def pairs(which, labels):
    """``[(grukit's label, the alternative's label)]`` whose ratio ``baselines`` reports."""
    if which != "baselines":
        return []
    out = [("grukit gru", other) for other in ("keras.layers.GRU", "torch.nn.GRU")
           if other in labels]
    keras_rnn = "keras.layers.RNN("
    out += [(f"grukit {label[len(keras_rnn):-1]}", label) for label in labels
            if label.startswith(keras_rnn)]
    return out


def train_step(layer, variant, opts, x, y):
    """One training step of the benchmark's model (``grukit.bench.keras_model``, or
    ``grukit.bench.torch_gru_steps``) with ``layer``, compiled and warmed up."""
    import keras
    from grukit.bench import keras_model, torch_gru_steps

    if layer == "torch_gru":
        train, _ = torch_gru_steps(*x.shape, 128)
    else:
        keras.utils.set_random_seed(0)
        model = keras_model(layer, variant, *x.shape, 128, **opts)

        def train():
            model.train_on_batch(x, y)
    for _ in range(2):  # compile and warm up
        train()
    return train


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", dest="which", choices=("options", "forms", "baselines"),
                   default="options")
    p.add_argument("--variant", default="gru", help="the variant of --set options")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=5, help="training steps per block")
    p.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    import keras

    configs = configurations(args.which, args.variant)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 100, 32)).astype("float32")
    y = rng.standard_normal((64, 1)).astype("float32")
    steps = {label: train_step(layer, variant, opts, x, y)
             for label, layer, variant, opts in configs}
    rates = {label: [] for label in steps}
    for _ in range(args.rounds):
        for label, train in steps.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                train()
            rates[label].append(args.steps / (time.perf_counter() - t0))

    def summary(a, b):  # a's speed over b's, round by round
        r = [ra / rb for ra, rb in zip(rates[a], rates[b])]
        return {"median": statistics.median(r), "min": min(r), "max": max(r), "all": r}

    baseline = configs[0][0]
    ratios = {label: summary(label, baseline) for label in steps}
    print(f"{keras.backend.backend()}: training speed relative to {baseline} "
          f"(median of {args.rounds} interleaved rounds of {args.steps} steps; min-max)")
    for label, r in ratios.items():
        print(f"  {label:32} {r['median']:.2f}  ({r['min']:.2f}-{r['max']:.2f})")
    pair_ratios = {f"{a} / {b}": summary(a, b) for a, b in pairs(args.which, list(steps))}
    if pair_ratios:
        print("grukit over the alternative (median of the rounds' ratios; min-max)")
        for name, r in pair_ratios.items():
            print(f"  {name:48} {r['median']:.2f}  ({r['min']:.2f}-{r['max']:.2f})")
    if args.out:
        report = {"date": datetime.datetime.now().isoformat(timespec="minutes"),
                  "backend": keras.backend.backend(), "set": args.which, "baseline": baseline,
                  "rounds": args.rounds, "steps": args.steps,
                  "command": "python experiments/cell_options/speed.py " + " ".join(
                      sys.argv[1:] if argv is None else argv),
                  "steps_per_second": rates, "ratios": ratios, "pairs": pair_ratios}
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
