"""ett-forecasting: the committed presets' configurations trained with more seeds.

The committed preset of each horizon is seed 0 of its configuration (its
``best_hparams.json``). ``train`` trains the same configuration with other seeds, one run
directory per horizon and seed; ``report`` collects every seed's test (and validation)
metrics from the runs' and the presets' ``metadata.json``, and writes the mean and the
standard deviation per horizon beside the published SegRNN and DLinear figures.

    python experiments/ett_forecasting/seeds.py train --seeds 1 2 [--horizons 96 192 336 720]
        [--runs runs/ett-seeds]
    python experiments/ett_forecasting/seeds.py report [--runs runs/ett-seeds]
        [--out experiments/ett_forecasting/seeds]

``train`` runs, for each horizon and seed, ``grukit --backend jax zoo train
ett-forecasting --hparams experiments/ett_forecasting/search/h<H>/best_hparams.json
--horizon <H> --seed <S> --shuffle-seed 0 --out <runs>/h<H>-seed<S>`` (resumable, like any
run). A seed sets ``keras.utils.set_random_seed``: the weights' initialisation and the
dropout masks; ``--shuffle-seed 0`` keeps the order of the training batches the same for
every seed, the preset's (the runs were made when ``--seed`` did not set the order, and
this reproduces them). The committed
``seeds/results.json`` and ``seeds/results.md`` are ``report`` on seeds 1 and 2 (trained
on this repository's 2-core CPU VM, one core per run, two runs side by side) and the
committed presets (seed 0).
"""
import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HORIZONS = (96, 192, 336, 720)
CARD = REPO / "grukit" / "zoo" / "models" / "ett_forecasting" / "README.md"


def published(card=CARD):
    """The published ETTh1 test figures the model card's headline table quotes:
    ``{"SegRNN" | "DLinear": {"mse" | "mae": {horizon: value}}}`` (SegRNN with lookback 720,
    DLinear with 336), read from the card, so that the two cannot disagree."""
    rows = [[c.strip().strip("*") for c in line.strip().strip("|").split("|")]
            for line in Path(card).read_text(encoding="utf-8").splitlines()
            if line.startswith("| ")]
    header = next(r for r in rows if r[:2] == ["horizon", "MSE (this)"])
    mae_at = header.index("MAE (this)")
    out = {name: {"mse": {}, "mae": {}} for name in ("SegRNN", "DLinear")}
    for row in rows:
        if len(row) == len(header) and row[0] in {str(h) for h in HORIZONS}:
            for name in out:
                out[name]["mse"][int(row[0])] = float(row[header.index(name)])
                out[name]["mae"][int(row[0])] = float(row[header.index(name, mae_at)])
    if any(len(v) != len(HORIZONS) for by in out.values() for v in by.values()):
        raise ValueError(f"{card}: the headline table does not give SegRNN's and DLinear's "
                         f"MSE and MAE at every horizon {HORIZONS}")
    return out


def _train(args):
    for h in args.horizons:
        for seed in args.seeds:
            cmd = [sys.executable, "-m", "grukit", "--backend", "jax", "zoo", "train",
                   "ett-forecasting", "--hparams",
                   f"experiments/ett_forecasting/search/h{h}/best_hparams.json",
                   "--horizon", str(h), "--seed", str(seed), "--shuffle-seed", "0",
                   "--out", str(Path(args.runs) / f"h{h}-seed{seed}")]
            print("$", " ".join(cmd[1:]), flush=True)
            subprocess.run(cmd, cwd=REPO, check=True)
    return 0


def _stats(values):
    """Mean and sample standard deviation (n - 1; None for one value)."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) \
        if len(values) > 1 else None
    return mean, std


def collect(runs):
    """``{horizon: {"seeds": {seed: row}, "mse": (mean, std), "mae": (mean, std)}}`` over
    the committed preset (seed 0) and every finished run ``runs/h<H>-seed<S>``."""
    import grukit.zoo as zoo
    from grukit.zoo.presets import read_metadata

    ett = zoo.get("ett-forecasting")
    out = {}
    for h in HORIZONS:
        committed = read_metadata(ett.preset_for(h))
        metas = {committed["training"]["seed"]: committed}
        for run in sorted(Path(runs).glob(f"h{h}-seed*")):
            if not (run / "preset" / "metadata.json").is_file():
                continue  # not finished
            meta = read_metadata(run / "preset")
            if meta["hparams"] != committed["hparams"]:
                raise ValueError(f"{run}: not the committed h{h} preset's configuration")
            seed = meta["training"]["seed"]
            if seed in metas:
                raise ValueError(f"{run}: a second run of seed {seed} for h{h}")
            metas[seed] = meta
        rows = {s: {"test_mse": m["metrics"]["test"]["mse"],
                    "test_mae": m["metrics"]["test"]["mae"],
                    "validation_mse": m["metrics"]["validation"]["mse"],
                    "epochs_run": m["training"]["epochs_run"],
                    "time_s": m["training"]["time_s"]} for s, m in sorted(metas.items())}
        out[h] = {"seeds": rows,
                  "mse": _stats([r["test_mse"] for r in rows.values()]),
                  "mae": _stats([r["test_mae"] for r in rows.values()])}
    return out


def markdown(result):
    baselines = published()
    lines = ["| horizon | seeds | test MSE, mean ± std | per seed | SegRNN | DLinear "
             "| test MAE, mean ± std | per seed | SegRNN | DLinear |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for h, r in result.items():
        seeds = ", ".join(str(s) for s in r["seeds"])
        cells = []
        for key in ("mse", "mae"):
            mean, std = r[key]
            per = " / ".join(f"{row[f'test_{key}']:.3f}" for row in r["seeds"].values())
            spread = "n/a" if std is None else f"{std:.3f}"
            cells += [f"{mean:.3f} ± {spread}", per, f"{baselines['SegRNN'][key][h]:.3f}",
                      f"{baselines['DLinear'][key][h]:.3f}"]
        lines.append(f"| {h} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _report(args):
    result = collect(args.runs)
    baselines = published()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    serial = {str(h): {"seeds": {str(s): row for s, row in r["seeds"].items()},
                       "test_mse_mean": r["mse"][0], "test_mse_std": r["mse"][1],
                       "test_mae_mean": r["mae"][0], "test_mae_std": r["mae"][1],
                       "segrnn_mse": baselines["SegRNN"]["mse"][h],
                       "segrnn_mae": baselines["SegRNN"]["mae"][h],
                       "dlinear_mse": baselines["DLinear"]["mse"][h],
                       "dlinear_mae": baselines["DLinear"]["mae"][h]}
              for h, r in result.items()}
    (out / "results.json").write_text(json.dumps(serial, indent=1) + "\n")
    table = markdown(result)
    (out / "results.md").write_text(
        "# ett-forecasting: the committed configurations over seeds\n\n"
        "`python experiments/ett_forecasting/seeds.py report` (standard deviation with n-1; "
        "seed 0 is the committed preset).\n\n" + table)
    print(table, end="")
    print(f"written to {out / 'results.json'} and {out / 'results.md'}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train the committed configurations with --seeds")
    train.add_argument("--seeds", type=int, nargs="+", required=True)
    train.add_argument("--horizons", type=int, nargs="+", default=list(HORIZONS),
                       choices=HORIZONS)
    report = sub.add_parser("report", help="write the mean and std over the seeds")
    report.add_argument("--out", default=str(REPO / "experiments" / "ett_forecasting" / "seeds"))
    for p in (train, report):
        p.add_argument("--runs", default="runs/ett-seeds", help="the runs' parent directory")
    args = parser.parse_args(argv)
    return _train(args) if args.command == "train" else _report(args)


if __name__ == "__main__":
    raise SystemExit(main())
