"""Ablation of grukit's cell options on two small tasks, with one budget per task.

Every configuration trains the same model (same size, same steps, same batches,
same seeds) and differs only in one cell option:

* ``none`` -- the plain GRU;
* ``layer`` -- ``norm="layer"`` (Ba et al. 2016);
* ``rms`` -- ``norm="rms"`` (Zhang & Sennrich 2019);
* ``zoneout`` -- ``zoneout=ZONEOUT`` (Krueger et al. 2017);
* ``weight_drop`` -- ``recurrent_weight_dropout=WEIGHT_DROP`` (Merity et al. 2018).

Tasks:

* ``char_lm`` -- Tiny Shakespeare, the standard split (first 90% train, last
  10% validation). ``Embedding(vocab, 32) -> grukit.layers.GRU(UNITS) ->
  Dense(vocab)``, next-character cross-entropy on random windows of
  ``SEQ`` characters; reported: validation nats/char over every non-overlapping
  window of the validation text (each window starts from a zero state).
* ``ett`` -- ETTh1 forecasting (standard 12/4/4-month split, train-split
  scaling), lookback 96, horizon 24, all 7 series: ``grukit.layers.GRU(64)``
  over the lookback, ``Dense(24 * 7)`` from its last state; reported:
  validation MSE over every validation window.

Nothing of the zoo is used. Results go to ``--out`` (JSON and a Markdown
table). Run from the repository root::

    python experiments/cell_options/ablation.py --data-dir DATA --out experiments/cell_options
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

CONFIGS = {
    "none": {},
    "layer": {"norm": "layer"},
    "rms": {"norm": "rms"},
    "zoneout": {"zoneout": 0.1},
    "weight_drop": {"recurrent_weight_dropout": 0.25},
}


def _char_lm_data(data_dir):
    from grukit import datasets

    train = datasets.load_tiny_shakespeare("train", data_dir=data_dir, download=False)
    val = datasets.load_tiny_shakespeare("validation", data_dir=data_dir, download=False)
    chars = sorted(set(train) | set(val))
    index = {c: i for i, c in enumerate(chars)}
    enc = lambda s: np.array([index[c] for c in s], dtype="int32")
    return enc(train), enc(val), len(chars)


def run_char_lm(opts, data, args, seed):
    import keras
    import grukit

    train, val, vocab = data
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    seq = args.seq
    model = keras.Sequential([
        keras.Input((seq,), dtype="int32"),
        keras.layers.Embedding(vocab, 32),
        grukit.layers.GRU(args.units, return_sequences=True, seed=seed, **opts),
        keras.layers.Dense(vocab),
    ])
    model.compile(keras.optimizers.Adam(args.lr, clipnorm=1.0),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    t0 = time.time()
    for _ in range(args.steps):
        starts = rng.integers(0, len(train) - seq - 1, size=args.batch)
        x = np.stack([train[s:s + seq] for s in starts])
        y = np.stack([train[s + 1:s + seq + 1] for s in starts])
        loss = model.train_on_batch(x, y)
    train_s = time.time() - t0
    n = (len(val) - 1) // seq
    xv = val[:n * seq].reshape(n, seq)
    yv = val[1:n * seq + 1].reshape(n, seq)
    val_loss = model.evaluate(xv, yv, batch_size=256, verbose=0)
    return {"val": float(val_loss), "train_loss_last": float(loss), "train_s": round(train_s, 1),
            "val_windows": int(n)}


def _ett_data(data_dir):
    from grukit import datasets

    ett = datasets.load_ett(data_dir=data_dir, download=False)
    return ett.windows("train", 96, 24), ett.windows("val", 96, 24)


def run_ett(opts, data, args, seed):
    import keras
    import grukit

    (xt, yt), (xv, yv) = data
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = keras.Sequential([
        keras.Input(xt.shape[1:]),
        grukit.layers.GRU(64, seed=seed, **opts),
        keras.layers.Dense(yt.shape[1] * yt.shape[2]),
        keras.layers.Reshape(yt.shape[1:]),
    ])
    model.compile(keras.optimizers.Adam(1e-3, clipnorm=1.0), "mse")
    t0 = time.time()
    for _ in range(args.ett_steps):
        i = rng.integers(0, len(xt), size=args.batch)
        loss = model.train_on_batch(xt[i], yt[i])
    train_s = time.time() - t0
    val = model.evaluate(xv, yv, batch_size=512, verbose=0)
    return {"val": float(val), "train_loss_last": float(loss), "train_s": round(train_s, 1),
            "val_windows": int(len(xv))}


TASKS = {"char_lm": (_char_lm_data, run_char_lm, "validation nats/char"),
         "ett": (_ett_data, run_ett, "validation MSE (scaled)")}


def markdown(report):
    lines = []
    for task, rows in report["results"].items():
        metric = TASKS[task][2]
        lines += [f"**{task}** ({metric}, mean over seeds {report['seeds']}; lower is better)", "",
                  f"| option | {metric} | per seed | train s/run |", "|---|---|---|---|"]
        for name, runs in rows.items():
            vals = [r["val"] for r in runs]
            opts = ", ".join(f"{k}={v!r}" for k, v in CONFIGS[name].items()) or "defaults"
            lines.append(f"| `{name}` ({opts}) | {statistics.mean(vals):.4f} | "
                         + ", ".join(f"{v:.4f}" for v in vals)
                         + f" | {statistics.mean(r['train_s'] for r in runs):.0f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=os.environ.get("GRUKIT_DATA_DIR"))
    p.add_argument("--out", default="experiments/cell_options")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--steps", type=int, default=500, help="char LM training steps")
    p.add_argument("--ett-steps", type=int, default=400, help="ETT training steps")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=100)
    p.add_argument("--units", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    args = p.parse_args(argv)

    import keras

    report = {"command": "python experiments/cell_options/ablation.py " + " ".join(
                  sys.argv[1:] if argv is None else argv),
              "backend": keras.backend.backend(), "keras": keras.__version__,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "seeds": args.seeds, "configs": {k: CONFIGS[k] for k in args.configs},
              "budget": {"char_lm_steps": args.steps, "ett_steps": args.ett_steps,
                         "batch": args.batch, "seq": args.seq, "units": args.units},
              "results": {}}
    t_all = time.time()
    for task in args.tasks:
        load, fn, _ = TASKS[task]
        data = load(args.data_dir)
        report["results"][task] = {}
        for name in args.configs:
            runs = []
            for seed in args.seeds:
                r = fn(CONFIGS[name], data, args, seed)
                runs.append(r)
                print(f"{task:8} {name:12} seed {seed}: val {r['val']:.4f} "
                      f"(train loss {r['train_loss_last']:.4f}, {r['train_s']} s)", flush=True)
            report["results"][task][name] = runs
    report["total_s"] = round(time.time() - t_all, 1)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    table = markdown(report)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(f"Command: `{report['command']}` ({report['backend']} backend, "
                f"{report['machine']}; {report['total_s']:.0f} s in all)\n\n{table}")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
