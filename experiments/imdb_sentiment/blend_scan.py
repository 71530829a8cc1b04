"""Choose ``recurrent_weight`` of a two-member ("nb") imdb-sentiment model on validation.

The model's output is ``sigmoid(recurrent_weight * z_rnn + z_ngram)`` (see
``SentimentModel.member_probabilities``). Its two members train on their own losses, so the
weight does not change training: one trained model is scored once per split and every
weight is tried on the stored member logits. Prints one JSON line per split: each member's
accuracy alone, accuracy and log loss for each weight, and the best weight (highest
accuracy, then lowest log loss).

    python experiments/imdb_sentiment/blend_scan.py RUN_DIR_OR_PRESET [--split validation]
        [--weights 0.25 0.5 0.75 1 1.5 2] [--data-dir DIR]

Select with ``--split validation`` (the default: the reviews carved from the training set,
not trained on unless the preset is a refit, which the script refuses); ``--split test``
is for the final report of an already chosen weight. The model card's figures come from
this script on ``results/nb-members/`` runs.
"""
import argparse
import json
import math
from pathlib import Path

import numpy as np


def scan(p, labels, weights):
    """``p``: ``[n, 3]`` member probabilities (model, recurrent, n-gram); -> a dict of
    accuracies and log losses per weight, and the members' accuracies."""
    eps = 1e-7
    logit = lambda q: np.log(np.clip(q, eps, 1 - eps)) - np.log(np.clip(1 - q, eps, 1 - eps))
    z_rnn, z_ngram = logit(p[:, 1].astype(np.float64)), logit(p[:, 2].astype(np.float64))
    y = np.asarray(labels) == 1
    rows = []
    for w in weights:
        z = w * z_rnn + z_ngram
        loss = float(np.mean(np.logaddexp(0.0, -z) * y + np.logaddexp(0.0, z) * ~y))
        rows.append({"recurrent_weight": w, "accuracy": float(np.mean((z > 0) == y)),
                     "loss": loss})
    best = max(rows, key=lambda r: (r["accuracy"], -r["loss"]))
    return {"examples": int(len(y)),
            "recurrent_member_accuracy": float(np.mean((z_rnn > 0) == y)),
            "ngram_member_accuracy": float(np.mean((z_ngram > 0) == y)),
            "weights": rows, "best_weight": best["recurrent_weight"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("preset", help="a run directory (its preset/) or a preset directory")
    parser.add_argument("--split", choices=["validation", "test"], nargs="+",
                        default=["validation"], help="splits to score (default: validation)")
    parser.add_argument("--weights", type=float, nargs="+",
                        default=[0.25, 0.5, 0.75, 1.0, 1.5, 2.0],
                        help="recurrent weights tried (default: 0.25 0.5 0.75 1 1.5 2)")
    parser.add_argument("--data-dir", help="holds imdb/aclImdb_v1.tar.gz (default: "
                        "$GRUKIT_DATA_DIR, then tensorflow-datasets)")
    args = parser.parse_args(argv)
    if any(not (math.isfinite(w) and w > 0) for w in args.weights):
        parser.error(f"--weights must be positive numbers; got {args.weights}")
    import grukit.zoo
    from grukit.zoo.models.imdb_sentiment.model import predict_ids

    imdb = grukit.zoo.get("imdb-sentiment")
    path = Path(args.preset)
    if (path / "preset" / "config.json").is_file():
        path = path / "preset"
    model = grukit.zoo.load("imdb-sentiment", preset=path)
    if not model.two_members:
        parser.error(f"{path}: not a two-member model (ngram_weighting 'nb' with "
                     f"ngram_buckets > 0); there is no weight to choose")
    hparams = model.zoo_preset.metadata["hparams"]
    if hparams.get("refit") and "validation" in args.split:
        parser.error(f"{path} is a refit: it was trained on the validation reviews, which "
                     f"cannot choose its weight; scan the run that chose its configuration")
    data = imdb.load_data(data_dir=args.data_dir)
    for split in args.split:
        ids, labels = data.encoded(split, hparams)
        p = predict_ids(model, ids, batch_size=256, bucket=hparams.get("bucket", 64),
                               members=True)
        result = {"preset": str(path), "split": split,
                  "trained_recurrent_weight": model.recurrent_weight,
                  **scan(p, labels, args.weights)}
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
