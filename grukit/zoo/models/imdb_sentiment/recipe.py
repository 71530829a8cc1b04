"""The ``imdb-sentiment`` recipe: data, hyperparameters, search spaces, training hooks,
serving and the command line, over the model of :mod:`.model`.

Data: :func:`grukit.datasets.load_imdb`, the 25,000 training reviews split
20,000 train / 5,000 validation (selection), the 25,000 test reviews for the
final figure only. No unlabelled reviews, no pretrained embeddings. With
``refit`` the chosen configuration is trained once more on all 25,000 training
reviews for the chosen number of epochs (vocabulary counted over them too).

Example::

    >>> import grukit.zoo
    >>> imdb = grukit.zoo.get("imdb-sentiment")
    >>> model = grukit.zoo.load("imdb-sentiment")
    >>> p = imdb.predict(model, ["an overlong, joyless film", "a little gem"])
    >>> p.round(3)                               # P(positive) of each review
    array([0.   , 0.999], dtype=float32)
"""

from __future__ import annotations

import sys

import keras
import numpy as np

from grukit.zoo import ZooModel
from grukit.zoo.base import text_batch
from grukit.zoo.cli import require

from .config import ImdbConfig
from .data import ImdbData, review_batches
from .gates import plot_gates
from .model import POOLING, SentimentModel, nb_ratios, predict_ids
from .preprocessing import TOKENIZER, to_text


SEARCH_VARIANTS = ["gru", "gru2", "mgu", "mgu2", "ligru", "mingru"]
#: What ``grukit zoo tune imdb-sentiment`` varies, per ``hparams["search_space"]``: a list is
#: a choice, ``(low, high, step)`` a float grid, ``(low, high, "log")`` a log-uniform float,
#: ``"bidirectional"`` a boolean (default true). "narrow" is the model card's Search 1,
#: "wide" (the default) its Search 2: larger layers, embeddings and sequences.
SEARCH_SPACES = {
    "quick": {
        "variant": ["gru", "mgu2", "mingru"], "units": [8, 16], "depth": [1],
        "bidirectional": True, "pooling": list(POOLING), "dropout": (0.1, 0.5, 0.2),
        "vocab_size": [1000, 2000], "sequence_length": [64, 128],
        "learning_rate": (2e-3, 8e-3, "log"),
    },
    "narrow": {
        "variant": SEARCH_VARIANTS, "units": [32, 64, 96], "depth": [1, 2],
        "bidirectional": True, "pooling": list(POOLING), "dropout": (0.1, 0.5, 0.1),
        "vocab_size": [8000, 12000, 16000], "sequence_length": [256, 400, 512],
        "learning_rate": (1e-3, 4e-3, "log"),
    },
    "wide": {
        "variant": SEARCH_VARIANTS, "units": [64, 128, 192], "depth": [1, 2],
        "bidirectional": True, "pooling": list(POOLING), "embedding_dim": [64, 128],
        "dropout": (0.2, 0.6, 0.1), "spatial_dropout": (0.1, 0.4, 0.1),
        "vocab_size": [8000, 12000, 16000], "sequence_length": [512, 768, 1024],
        "learning_rate": (5e-4, 3e-3, "log"),
    },
}



class ImdbSentiment(ZooModel):
    """The ``imdb-sentiment`` recipe: raw review -> probability of a positive review.

    Data: :func:`grukit.datasets.load_imdb` (``train`` 20,000 / ``validation``
    5,000 carved from the training reviews, ``test`` 25,000, final figure only).
    Hyperparameters: :class:`ImdbConfig`, profiles in
    ``grukit/zoo/models/imdb_sentiment/hparams.json``. ``train_limit``,
    ``val_limit`` and ``test_limit`` (0 = all) subset the splits (quick runs).

    Example:
        >>> import grukit.zoo
        >>> imdb = grukit.zoo.get("imdb-sentiment")
        >>> hp = imdb.hparams(quick=True)         # imdb.train(hp, data, out) trains on:
        >>> hp["train_limit"], hp["val_limit"], hp["vocab_size"], hp["sequence_length"]
        (2000, 500, 2000, 128)
        >>> data = imdb.load_data()               # reviews from $GRUKIT_DATA_DIR
        >>> ids, labels = data.encoded("validation", hp)
        >>> ids.shape, int(labels.sum())          # token ids, balanced labels
        ((500, 128), 250)
    """

    name = "imdb-sentiment"
    description = "IMDB review sentiment: raw text -> tokenizer -> (Bi)GRU-family layers -> P(positive)"
    objective = "val_accuracy"
    direction = "max"
    config_class = ImdbConfig

    # ------------------------------------------------------------- data
    def load_data(self, data_dir=None, path=None, limit=None, **options):
        """:class:`ImdbData`: reviews from ``path`` (``aclImdb_v1.tar.gz`` or ``aclImdb/``) or
        ``data_dir`` / ``$GRUKIT_DATA_DIR`` / tensorflow-datasets. ``limit`` caps every split
        (tests). Reviews are read when first needed."""
        if options:
            raise TypeError(f"imdb-sentiment: unknown data options {sorted(options)}; "
                            f"expected path, limit.")
        data = ImdbData(data_dir=data_dir, path=path, limit=limit)
        data.texts("validation", 1)  # fail early (FileNotFoundError) when there are no reviews
        return data

    def data_files(self, data):
        return [data.source] if data.source is not None and data.source.is_file() else []

    def preprocessing(self, data, hparams):
        return {"tokenizer": TOKENIZER, "vocabulary_asset": "vocabulary.txt",
                "vocabulary_size": len(data.vocabulary(hparams)),
                "sequence_length": hparams["sequence_length"], "truncate": hparams["truncate"],
                "rules": "UTF-8 (invalid bytes -> U+FFFD); ASCII lowercase; remove '<br />' "
                         "and apostrophes; '!' and '?' are tokens; other ASCII non-alphanumerics "
                         "separate tokens; non-ASCII characters are word characters; ids: 0 "
                         "padding, 1 out of vocabulary, vocabulary.txt line i = id i",
                "splits": {s: len(data.encoded(s, hparams)[1])
                           for s in ("train_full" if hparams["refit"] else "train",
                                     "validation", "test")}}

    def assets(self, data, hparams):
        return {"vocabulary.txt": "\n".join(data.vocabulary(hparams)) + "\n"}

    def dataset(self, data, hparams, split, training=False, seed=0):
        ids, labels = data.encoded(split, hparams)
        return review_batches(ids, labels, hparams["batch_size"], shuffle=training,
                              seed=seed, bucket=hparams["bucket"])

    # ------------------------------------------------------ hyperparameters
    def search_space(self, hp, hparams, quick=False):
        """Variant, units, depth, bidirectionality, pooling, dropout, vocabulary size,
        sequence length and learning rate (``"wide"`` adds embedding width and spatial
        dropout): the ranges of :data:`SEARCH_SPACES` ``[hparams["search_space"]]``, or a
        tiny space when ``quick``."""
        space = SEARCH_SPACES["quick" if quick else hparams["search_space"]]
        values = {}
        for name, choices in space.items():
            if name == "bidirectional":
                values[name] = hp.Boolean(name, default=True)
            elif isinstance(choices, tuple):  # (low, high, step or "log")
                low, high, how = choices
                values[name] = (hp.Float(name, low, high, sampling="log") if how == "log"
                                else hp.Float(name, low, high, step=how))
            else:
                values[name] = hp.Choice(name, choices)
        return values

    # ------------------------------------------------------------ model
    def build(self, hparams, data):
        model = SentimentModel(
            data.vocabulary(hparams), hparams["sequence_length"], hparams["truncate"],
            embedding_dim=hparams["embedding_dim"], variant=hparams["variant"],
            units=hparams["units"], depth=hparams["depth"],
            bidirectional=hparams["bidirectional"], pooling=hparams["pooling"],
            dropout=hparams["dropout"], spatial_dropout=hparams["spatial_dropout"],
            recurrent_dropout=hparams["recurrent_dropout"],
            ngram_buckets=hparams["ngram_buckets"], ngram_dim=hparams["ngram_dim"],
            ngram_scale=hparams["ngram_scale"], ngram_l2=hparams["ngram_l2"],
            ngram_unigrams=hparams["ngram_unigrams"],
            ngram_weighting=hparams["ngram_weighting"],
            recurrent_weight=hparams["recurrent_weight"],
            name="imdb_sentiment")
        model.build((None, hparams["sequence_length"]))
        if model.two_members:
            ids, labels = data.encoded("train_full" if hparams["refit"] else "train",
                                       hparams)
            model.ngram_ratio.assign(nb_ratios(ids, labels, model.tokenizer.vocabulary_size,
                                               model.ngram_buckets, model.ngram_unigrams))
        optimizer = keras.optimizers.Adam(hparams["learning_rate"],
                                          clipnorm=hparams["clipnorm"] or None)
        model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"])
        return model

    def evaluate(self, model, data, hparams, split="test"):
        """Accuracy and log loss over every review of ``split`` (``examples`` counts them);
        for an ``ngram_weighting="nb"`` model also each member's accuracy alone
        (``recurrent_accuracy``, ``ngram_accuracy``).

        The reviews are read with the model's own vocabulary (``model.tokenizer``),
        whatever reviews ``data`` holds: a preset is measured as it serves."""
        ids, labels = data.encoded_for(model.tokenizer, split, hparams)
        members = model.two_members
        p = predict_ids(model, ids, batch_size=max(hparams["batch_size"], 256),
                        bucket=hparams["bucket"], members=members)
        if len(p) != len(labels):
            raise RuntimeError("imdb-sentiment: not every review was evaluated.")
        eps = 1e-7
        q = np.clip(p[:, 0] if members else p, eps, 1 - eps).astype(np.float64)
        loss = -np.mean(labels * np.log(q) + (1 - labels) * np.log(1 - q))
        metrics = {"accuracy": float(np.mean((q > 0.5) == (labels == 1))), "loss": float(loss),
                   "examples": int(len(labels))}
        if members:  # each member alone (an ablation of the other)
            for i, name in ((1, "recurrent_accuracy"), (2, "ngram_accuracy")):
                metrics[name] = float(np.mean((p[:, i] > 0.5) == (labels == 1)))
        return metrics

    # ---------------------------------------------------------- serving
    def serving(self, model, preset):
        """``serve(texts tf.string [batch]) -> float32 [batch]`` P(positive); tokenisation
        inside (TensorFlow string ops), same results as :meth:`predict`."""
        import tensorflow as tf

        tokenizer = model.tokenizer
        tokenizer.tf_table()  # created before the archive tracks the model

        def serve(texts):
            ids = tokenizer.tf_encode(texts)
            return tf.reshape(model(ids, training=False), [-1])

        return serve, [keras.InputSpec(shape=(None,), dtype="string")]

    def serving_sample(self, preset):
        return np.array([
            b"One of the best films I have seen this year. Wonderful acting!",
            b"An overlong, joyless film.<br /><br />I wanted my two hours back...",
            "Am\u00e9lie-like charm, but the plot? Don't bother.".encode(),
            b"great \xff\xfe broken bytes, terrible ending",
            b"",
            b"   \t\n ",
        ])

    def predict(self, model, inputs, preset=None, batch_size=128):
        """P(positive review) for raw reviews.

        Args:
            model: a loaded preset (``grukit.zoo.load("imdb-sentiment")``) or a trained
                :class:`SentimentModel`.
            inputs: one review (``str`` or UTF-8 ``bytes``) or a sequence / NumPy array
                of them. Invalid UTF-8 bytes are replaced by U+FFFD; any length is
                accepted (the model reads ``sequence_length`` tokens, see ``truncate``).
            preset: unused (the tokenizer is part of the model).

        Returns:
            A ``float`` for one review, else ``float32 [n]``. A review with no tokens
            (empty, whitespace or punctuation only) gets 0.5.

        Raises:
            ValueError: a value that is not a string (naming its position and type),
                or a nested/multi-dimensional array.

        Example:
            >>> import grukit.zoo
            >>> imdb = grukit.zoo.get("imdb-sentiment")
            >>> model = grukit.zoo.load("imdb-sentiment")
            >>> imdb.predict(model, "an overlong, joyless film") < 0.5
            True
            >>> imdb.predict(model, {"a set of reviews"})
            Traceback (most recent call last):
            ValueError: imdb-sentiment: expected a review (str) or a 1-D sequence of reviews;
            got a set (unordered).
        """
        if not isinstance(model, SentimentModel):
            raise ValueError(f"imdb-sentiment: predict needs the imdb-sentiment model "
                             f"(grukit.zoo.load('imdb-sentiment')); got {type(model).__name__}.")
        single, items = text_batch(inputs, "imdb-sentiment", "review")
        texts = [to_text(t, None if single else i) for i, t in enumerate(items)]
        p = model.predict_texts(texts, batch_size=batch_size)
        return float(p[0]) if single else p

    # -------------------------------------------------------------- CLI
    def add_arguments(self, parser, command):
        if command in ("train", "tune", "evaluate", "predict"):
            parser.add_argument("--data", metavar="PATH",
                                help="aclImdb_v1.tar.gz or an extracted aclImdb/ folder "
                                     "(default: imdb/ under --data-dir / $GRUKIT_DATA_DIR)")
        if command == "predict":
            parser.add_argument("texts", nargs="*", metavar="REVIEW",
                                help="review text(s) to score")
            parser.add_argument("--file", metavar="FILE",
                                help="score each non-empty line of FILE ('-': standard input)")
            parser.add_argument("--index", type=int, metavar="I",
                                help="score test review I of the data set (and show its label)")
            parser.add_argument("--gates", metavar="PNG",
                                help="also plot the update-gate activity over the tokens of "
                                     "the (first) review into PNG")

    def options_from_args(self, args, command):
        if getattr(args, "gates", None):  # fail before any output, not after it
            require("matplotlib", "plot", "--gates")
        return ({"path": args.data} if getattr(args, "data", None) else {}), {}

    def run_predict(self, model, args, load_data, out, err):
        texts, labels = list(args.texts), None
        if args.file:
            if args.file == "-":
                raw = sys.stdin.buffer.read()
            else:
                with open(args.file, "rb") as f:
                    raw = f.read()
            texts += [line for line in raw.decode("utf-8", errors="replace").splitlines()
                      if line.strip()]
        if args.index is not None:
            data = load_data()
            test, y = data.texts("test")
            if not 0 <= args.index < len(test):
                raise ValueError(f"--index must be in [0, {len(test) - 1}]; got {args.index}.")
            texts.append(test[args.index])
            labels = {len(texts) - 1: int(y[args.index])}
        if not texts:
            raise ValueError("nothing to score: give review text(s), --file FILE or --index I "
                             "(e.g. grukit zoo predict imdb-sentiment \"an overlong, joyless "
                             "film\").")
        probs = self.predict(model, texts)
        for i, (text, p) in enumerate(zip(texts, probs)):
            note = "" if model.tokenizer.ids(text) else "  (no tokens: no evidence)"
            shown = " ".join(text.split())
            shown = shown if len(shown) <= 70 else shown[:67] + "..."
            truth = ""
            if labels and i in labels:
                truth = f"  [label: {'positive' if labels[i] else 'negative'}]"
            verdict = "positive" if p > 0.5 else "negative" if p < 0.5 else "undecided"
            print(f"{p:.4f}  {verdict}  {shown}{note}{truth}", file=out)
        if args.gates:
            path = plot_gates(model, texts[0], args.gates)
            print(f"update-gate plot written to {path}", file=err)
        return 0


