"""Stored outputs of the committed presets on fixed subsets of their data.

The tests check every committed preset against these on every backend (cheap), and the
full figures of each model card on one backend. When a preset is retrained on purpose,
regenerate the file (TensorFlow backend, the data under ``$GRUKIT_DATA_DIR``)::

    KERAS_BACKEND=tensorflow python tests/preset_outputs.py --write

Subsets (deterministic):

* ``imdb-sentiment``: every 250th test review (100 reviews): P(positive) of each;
* ``char-lm``: the first 2,000 characters of the validation text, read as one stream:
  the mean loss (nats per character);
* ``ett-forecasting``: for each committed horizon, 12 test windows spread evenly over the
  test split: each window's MSE and MAE on standardised values, and the OT column of the
  first window's forecast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

PATH = Path(__file__).resolve().parent / "data" / "preset_outputs.json"
IMDB_STRIDE, CHAR_LM_CHARS, ETT_WINDOWS = 250, 2000, 12


def imdb_subset(data_dir):
    """(texts, labels) of the IMDB subset."""
    from grukit.datasets import load_imdb

    texts, labels = load_imdb("test", data_dir=data_dir, download=False)
    return list(texts[::IMDB_STRIDE]), np.asarray(labels[::IMDB_STRIDE])


def imdb_outputs(data_dir):
    import grukit.zoo as zoo

    texts, labels = imdb_subset(data_dir)
    p = zoo.SentimentClassifier.from_preset("imdb-sentiment").predict(texts)
    return {"probabilities": [float(v) for v in p], "labels": [int(v) for v in labels]}


def char_lm_outputs(data_dir):
    import grukit.zoo as zoo
    from grukit.zoo.models.char_lm.model import stream_loss
    from grukit.zoo.models.char_lm.preprocessing import encode

    lm = zoo.get("char-lm")
    model = lm.load()
    text = lm.load_data(data_dir=data_dir).text["validation"][:CHAR_LM_CHARS]
    loss, n = stream_loss(model, encode(text, model.vocabulary), 1, 256)
    return {"characters": n, "loss": loss}


def ett_subset(data, lookback, horizon):
    """Indices and (x, y) standardised test windows of the ETT subset."""
    x, y = data.windows("test", lookback, horizon)
    idx = np.linspace(0, len(x) - 1, ETT_WINDOWS).round().astype(int)
    return idx, x[idx], y[idx]


def ett_outputs(data_dir):
    import grukit.zoo as zoo

    ett = zoo.get("ett-forecasting")
    data = ett.load_data(data_dir=data_dir)
    out = {}
    for h in ett.committed_horizons():
        model = ett.load(horizon=h)
        idx, x, y = ett_subset(data, model.lookback, h)
        pred = np.asarray(model.predict_on_batch(x), np.float64)
        err = pred - y
        out[str(h)] = {"windows": [int(i) for i in idx],
                       "mse": [float(v) for v in np.mean(err ** 2, axis=(1, 2))],
                       "mae": [float(v) for v in np.mean(np.abs(err), axis=(1, 2))],
                       "first_ot": [float(v) for v in pred[0, :, -1]]}
    return out


def compute(data_dir):
    return {"imdb-sentiment": imdb_outputs(data_dir), "char-lm": char_lm_outputs(data_dir),
            "ett-forecasting": ett_outputs(data_dir)}


def load():
    with open(PATH) as f:
        return json.load(f)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"write {PATH.name}")
    parser.add_argument("--data-dir", default=os.environ.get("GRUKIT_DATA_DIR"))
    args = parser.parse_args(argv)
    import keras

    outputs = {"backend": keras.backend.backend(), **compute(args.data_dir)}
    if args.write:
        PATH.parent.mkdir(exist_ok=True)
        PATH.write_text(json.dumps(outputs, indent=1) + "\n")
        print(f"written to {PATH}")
    else:
        json.dump(outputs, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
