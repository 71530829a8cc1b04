"""A linear reference for imdb-sentiment: tf-idf unigrams + bigrams, logistic regression.

Same data and protocol as the zoo model: fit on the 20,000 training reviews, choose the
regularisation C on the 5,000 validation reviews, report the 25,000 test reviews once
(for the chosen C). The model card quotes its output. Needs scikit-learn (installed with
keras-tuner[bayesian]). About 3 minutes on 2 CPU cores.

    python experiments/imdb_sentiment/linear_baseline.py [--data-dir DIR] [--c 1 10]
"""
import argparse
import json
import time

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="holds imdb/aclImdb_v1.tar.gz (default: "
                        "$GRUKIT_DATA_DIR, then tensorflow-datasets)")
    parser.add_argument("--c", type=float, nargs="+", default=[1.0, 10.0],
                        help="values of C tried on validation (default: 1 10)")
    args = parser.parse_args(argv)
    if any(not c > 0 for c in args.c):
        parser.error(f"--c values must be positive; got {args.c}")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from grukit.datasets import load_imdb

    split = {s: load_imdb(s, data_dir=args.data_dir) for s in ("train", "validation", "test")}
    start = time.time()
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train = vec.fit_transform(split["train"][0])
    x_val = vec.transform(split["validation"][0])
    rows = []
    for c in args.c:
        clf = LogisticRegression(C=c, max_iter=2000).fit(x_train, split["train"][1])
        rows.append((float(clf.score(x_val, split["validation"][1])), c, clf))
        print(f"C={c:g}: validation accuracy {rows[-1][0]:.4f}", flush=True)
    val, c, clf = max(rows, key=lambda r: (r[0], -r[1]))
    test = float(np.mean(clf.predict(vec.transform(split["test"][0])) == split["test"][1]))
    result = {"model": "tf-idf (1,2)-grams, min_df 2, sublinear tf; logistic regression",
              "features": int(x_train.shape[1]), "C": c, "validation_accuracy": round(val, 4),
              "test_accuracy": round(test, 4), "time_s": round(time.time() - start, 1)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
