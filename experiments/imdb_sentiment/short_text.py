"""imdb-sentiment on short text: each review's first sentence, scored by a preset.

The shipped model and, for a two-member ("nb") model, each member alone, on the first
sentence of every review of a split (``first_sentence`` in
``grukit/zoo/models/imdb_sentiment/preprocessing.py``), read with the preset's own
vocabulary; the whole reviews' figures beside them, from the same run. A review whose
first sentence holds no token scores 0.5 ("no evidence") and counts as wrong. Writes a
JSON file; the model card quotes it.

    python experiments/imdb_sentiment/short_text.py [--preset DIR] [--split test]
        [--data-dir DIR] [--out experiments/imdb_sentiment/results/short-text/preset.json]

The committed ``results/short-text/preset.json`` is this command on the committed preset,
``--split test`` (the final report; nothing is chosen on it): about 20 s of prediction on
2 CPU cores, after reading the archive.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "short-text" / "preset.json"


def accuracies(p, labels):
    """``p``: ``[n]`` or ``[n, 3]`` probabilities -> accuracy of each column."""
    p = np.asarray(p).reshape(len(labels), -1)
    right = (p > 0.5) == (np.asarray(labels) == 1)[:, None]
    return [float(v) for v in right.mean(axis=0)]


def measure(model, texts, labels, batch_size=256):
    """Accuracies on ``texts`` (whole) and on their first sentences, and the sentences'
    token counts."""
    from grukit.zoo.models.imdb_sentiment.model import predict_ids
    from grukit.zoo.models.imdb_sentiment.preprocessing import first_sentence

    members = model.two_members
    names = ["model", "recurrent", "ngram"] if members else ["model"]
    out = {}
    for kind, batch in (("whole", texts), ("first_sentence", [first_sentence(t) for t in texts])):
        ids = model.tokenizer.encode(batch)
        p = predict_ids(model, ids, batch_size=batch_size, members=members)
        out[kind] = dict(zip(names, accuracies(p, labels)))
        if kind == "first_sentence":
            tokens = (ids != 0).sum(axis=1)
            out[kind]["tokens_median"] = float(np.median(tokens))
            out[kind]["tokens_mean"] = float(tokens.mean())
            out[kind]["no_tokens"] = int((tokens == 0).sum())
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", help="a preset or run folder (default: the committed one)")
    parser.add_argument("--split", default="test", choices=("validation", "test"))
    parser.add_argument("--data-dir", help="holds imdb/aclImdb_v1.tar.gz (default: "
                        "$GRUKIT_DATA_DIR, then tensorflow-datasets)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON file written")
    args = parser.parse_args(argv)
    import keras

    import grukit.zoo as zoo
    from grukit.datasets import load_imdb

    imdb = zoo.get("imdb-sentiment")
    model = imdb.load(args.preset)
    texts, labels = load_imdb(args.split, data_dir=args.data_dir)
    start = time.time()
    result = measure(model, list(texts), np.asarray(labels))
    report = {"preset": str(model.zoo_preset.path.relative_to(Path.cwd()))
              if model.zoo_preset.path.is_relative_to(Path.cwd()) else model.zoo_preset.path.name,
              "split": args.split, "reviews": int(len(labels)),
              "backend": keras.backend.backend(), "seconds": round(time.time() - start, 1),
              **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
