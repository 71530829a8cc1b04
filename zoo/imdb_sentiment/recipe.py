"""IMDB sentiment: raw review text in, probability of a positive review out.

The model (:class:`SentimentModel`), for a batch of raw review strings:

1. tokenisation (:class:`ReviewTokenizer`, inside the model and the preset): the
   review is decoded as UTF-8 (invalid bytes become U+FFFD), ASCII letters are
   lowercased, ``<br />`` tags and apostrophes are removed (``don't`` ->
   ``dont``), ``!`` and ``?`` become tokens of their own, every other ASCII
   character that is not a letter or digit separates tokens, and non-ASCII
   characters belong to words (``amélie``). Tokens are looked up in a
   vocabulary built from the training reviews (id 0 padding, 1 out of
   vocabulary) and the sequence is cut to ``sequence_length`` tokens
   (``truncate``: ``"pre"`` keeps the end of a long review, ``"post"`` its
   beginning, ``"both"`` its first half and its last half), then padded;
2. ``Embedding`` + ``SpatialDropout1D``;
3. ``depth`` grukit recurrent layers (``variant``, ``units``), bidirectional or
   not, over the valid (unpadded) tokens;
4. pooling over the valid steps: ``"max"``, ``"mean"`` or both (``"maxmean"``);
5. ``Dropout``, then ``Dense(1)``: the recurrent logit;
6. optionally (``ngram_buckets > 0``) a bag of hashed token n-grams beside it: bigram
   ``(a, b)`` -> bucket ``(a V + b) mod (B - 1) + 1`` (with ``ngram_unigrams`` the
   tokens too), weighted by ``ngram_weighting``:

   - ``"nb"`` (the preset): a second member, an NBSVM-style linear model (Wang &
     Manning 2012) over the *set* of the review's buckets, each weighted by its
     naive-Bayes log-count ratio over the training reviews, L2-normalised
     (:meth:`SentimentModel.ngram_logit`). The model's logit is
     ``recurrent_weight * z_rnn + z_ngram``; the two members train on their own
     losses (:meth:`SentimentModel.compute_loss`), so each is a classifier alone;
   - ``"mean"``: ``Embedding(B, ngram_dim)`` averaged over the review's bigrams,
     times ``ngram_scale``, concatenated to the pooled features before ``Dense(1)``
     (trained jointly);

   ``ngram_scale`` multiplies the branch's output: under Adam, a scale ``s`` makes
   it learn about ``s`` times faster than the same weights unscaled (without it the
   branch barely moves in the few epochs the recurrent part needs);
7. the sigmoid: the probability of a positive review. A review with no tokens at all
   (empty, whitespace, punctuation only) gets exactly 0.5, "no evidence", on every path.

The tokenizer has two implementations with the same results: pure Python
(:meth:`ReviewTokenizer.encode`, used for training, evaluation and
:meth:`ImdbSentiment.predict` on every backend, so the preset needs no
TensorFlow) and TensorFlow string ops (:meth:`ReviewTokenizer.tf_encode`, used
only by the exported SavedModel, whose ``serve`` signature takes raw strings).

Data: :func:`grukit.datasets.load_imdb`, the 25,000 training reviews split
20,000 train / 5,000 validation (selection), the 25,000 test reviews for the
final figure only. No unlabelled reviews, no pretrained embeddings. With
``refit`` the chosen configuration is trained once more on all 25,000 training
reviews for the chosen number of epochs (vocabulary counted over them too).

Example::

    >>> imdb = grukit.zoo.get("imdb-sentiment")
    >>> model = grukit.zoo.load("imdb-sentiment")
    >>> imdb.predict(model, ["an overlong, joyless film", "a little gem"])
    array([5.9922837e-05, 9.9923384e-01], dtype=float32)
"""

from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path

import numpy as np

import keras
from keras import ops

import grukit
from grukit.zoo import ZooModel

TOKENIZER = "grukit-imdb-tokenizer/1"
TRUNCATE = ("pre", "post", "both")
POOLING = ("max", "mean", "maxmean")
NGRAM_WEIGHTING = ("mean", "nb")
PAD, OOV = "", "[UNK]"
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

# ---------------------------------------------------------------- tokenizer rules
# The same rules twice: Python ``re`` here, RE2 (TensorFlow) in ReviewTokenizer.tf_encode.
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_BR = re.compile(r"<br */?>")
_MARKS = re.compile(r"([!?])")
_SEPARATORS = re.compile("[^a-z0-9!?\u0080-\U0010ffff]+")
_TF_BR = r"<br */?>"
_TF_MARKS, _TF_MARKS_REWRITE = r"([!?])", r" \1 "
_TF_SEPARATORS = r"[^a-z0-9!?\x{80}-\x{10FFFF}]+"


def to_text(value, index=None):
    """A review as ``str``: ``str`` as is, ``bytes`` decoded as UTF-8 with invalid bytes
    replaced by U+FFFD (as the SavedModel does). Anything else raises ``ValueError``."""
    if isinstance(value, (bytes, bytearray, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (str, np.str_)):
        return str(value)
    where = "" if index is None else f" #{index}"
    raise ValueError(f"imdb-sentiment: review{where} must be a string (str or UTF-8 bytes); "
                     f"got {type(value).__name__} {value!r:.60}.")


def tokenize(text):
    """The tokens of one review (see the module docstring), pure Python.

    Example:
        >>> tokenize("Don't miss it!<br /><br />A GREAT film, Amélie-like.")
        ['dont', 'miss', 'it', '!', 'a', 'great', 'film', 'amélie', 'like']
    """
    text = to_text(text).translate(_LOWER)
    text = _BR.sub(" ", text).replace("'", "")
    text = _SEPARATORS.sub(" ", _MARKS.sub(r" \1 ", text))
    return [t for t in text.split(" ") if t]


def truncate_tokens(seq, length, mode):
    """``seq`` cut to at most ``length`` items: ``"pre"`` keeps the end, ``"post"`` the
    beginning, ``"both"`` the first ``length // 2`` and the last ``length - length // 2``."""
    if len(seq) <= length:
        return seq
    if mode == "pre":
        return seq[len(seq) - length:]
    if mode == "post":
        return seq[:length]
    head = length // 2
    return seq[:head] + seq[len(seq) - (length - head):]


def build_vocabulary(counts, size):
    """``[PAD, OOV, most frequent tokens...]`` of ``size`` entries at most (ties by token)."""
    if size < 3:
        raise ValueError(f"imdb-sentiment: vocab_size must be at least 3; got {size}.")
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: size - 2]
    return [PAD, OOV] + [t for t, _ in ranked]


@keras.saving.register_keras_serializable(package="grukit_zoo")
class ReviewTokenizer(keras.layers.Layer):
    """Raw review text -> ``int32 [batch, sequence_length]`` token ids (0 = padding).

    Holds the vocabulary in its config (no weights), so a preset's ``config.json``
    carries it. :meth:`encode` is pure Python (any backend, no TensorFlow);
    :meth:`tf_encode` is the same with TensorFlow string ops (the SavedModel).

    Args:
        vocabulary: list of tokens; ``vocabulary[0]`` is the padding ``""`` and
            ``vocabulary[1]`` the out-of-vocabulary token ``"[UNK]"``.
        sequence_length: tokens kept per review.
        truncate: ``"pre"``, ``"post"`` or ``"both"`` (see :func:`truncate_tokens`).

    Example:
        >>> tok = ReviewTokenizer(["", "[UNK]", "film", "great"], 4)
        >>> tok.encode(["A great film!", ""])
        array([[1, 3, 2, 1], [0, 0, 0, 0]], dtype=int32)
    """

    def __init__(self, vocabulary, sequence_length, truncate="both", **kwargs):
        super().__init__(**kwargs)
        vocabulary = [str(t) for t in vocabulary]
        if len(vocabulary) < 2 or vocabulary[0] != PAD or vocabulary[1] != OOV:
            raise ValueError("ReviewTokenizer: vocabulary must start with '' (padding) and "
                             "'[UNK]' (out of vocabulary).")
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("ReviewTokenizer: the vocabulary holds duplicate tokens.")
        if not (isinstance(sequence_length, int) and sequence_length >= 1):
            raise ValueError(f"ReviewTokenizer: sequence_length must be a positive integer; "
                             f"got {sequence_length!r}.")
        if truncate not in TRUNCATE:
            raise ValueError(f"ReviewTokenizer: truncate must be one of {TRUNCATE}; "
                             f"got {truncate!r}.")
        self.vocabulary = vocabulary
        self.sequence_length = sequence_length
        self.truncate = truncate
        self._index = {t: i for i, t in enumerate(vocabulary) if i >= 2}
        self._table = None
        self.built = True

    @property
    def vocabulary_size(self):
        return len(self.vocabulary)

    def ids(self, text):
        """Token ids of one review, before truncation."""
        get = self._index.get
        return [get(t, 1) for t in tokenize(text)]

    def encode(self, texts):
        """``int32 [len(texts), sequence_length]`` ids of raw reviews (str or bytes), padded
        with 0 at the end. Pure Python: no TensorFlow needed."""
        out = np.zeros((len(texts), self.sequence_length), np.int32)
        for i, text in enumerate(texts):
            seq = truncate_tokens(self.ids(to_text(text, i)), self.sequence_length, self.truncate)
            out[i, :len(seq)] = seq
        return out

    def tf_table(self):
        """The vocabulary as a ``tf.lookup.StaticHashTable`` (created once, tracked by the layer)."""
        import tensorflow as tf

        if self._table is None:
            keys = tf.constant(self.vocabulary[2:], tf.string)
            values = tf.range(2, len(self.vocabulary), dtype=tf.int64)
            self._table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(keys, values), default_value=1)
        return self._table

    def tf_encode(self, texts):
        """:meth:`encode` with TensorFlow string ops: ``tf.string [batch]`` -> ``int32
        [batch, sequence_length]`` (used by the SavedModel; needs TensorFlow)."""
        import tensorflow as tf

        s = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace",
                                         replacement_char=0xFFFD)
        s = tf.strings.lower(s)  # ASCII only, as str.translate(_LOWER)
        s = tf.strings.regex_replace(s, _TF_BR, " ")
        s = tf.strings.regex_replace(s, "'", "")
        s = tf.strings.regex_replace(s, _TF_MARKS, _TF_MARKS_REWRITE)
        s = tf.strings.regex_replace(s, _TF_SEPARATORS, " ")
        tokens = tf.strings.split(s)  # ragged [batch, (tokens)]; only ASCII spaces remain
        ids = tf.ragged.map_flat_values(self.tf_table().lookup, tokens)
        length = self.sequence_length
        if self.truncate == "pre":
            ids = ids[:, -length:]
        elif self.truncate == "post":
            ids = ids[:, :length]
        else:
            head = length // 2
            ids = tf.concat([ids[:, :head], ids[:, head:][:, -(length - head):]], axis=1)
        return tf.cast(ids.to_tensor(default_value=0, shape=[None, length]), tf.int32)

    def call(self, texts):
        if keras.backend.backend() != "tensorflow":
            raise TypeError("ReviewTokenizer: string tensors exist only on the TensorFlow "
                            "backend; use encode() (NumPy) on the others.")
        return self.tf_encode(texts)

    def get_config(self):
        return {**super().get_config(), "vocabulary": list(self.vocabulary),
                "sequence_length": self.sequence_length, "truncate": self.truncate}


@keras.saving.register_keras_serializable(package="grukit_zoo")
class SentimentModel(keras.Model):
    """Review sentiment on grukit recurrent layers (see the module docstring).

    Call: ``int32 ids [batch, time]`` (from ``model.tokenizer.encode(texts)``; 0 =
    padding, any ``time``) -> ``float32 [batch, 1]`` probability of a positive
    review. On the TensorFlow backend a ``tf.string [batch]`` tensor of raw
    reviews works too. :meth:`predict_texts` takes raw strings on every backend.
    With ``ngram_weighting="nb"`` (two members) a call with ``training=True`` returns
    ``[batch, 3]``: the model's probability and each member's (for :meth:`compute_loss`;
    :meth:`member_probabilities` gives them at inference).

    Args (beyond the module docstring's): ``ngram_buckets`` (0: no n-gram branch),
    ``ngram_dim`` (``"mean"`` only), ``ngram_scale``, ``ngram_l2`` (L2 penalty on the
    stored n-gram weights), ``ngram_unigrams``, ``ngram_weighting`` (``"mean"`` or
    ``"nb"``), ``recurrent_weight`` (``"nb"``: the recurrent member's weight in the sum
    of logits).

    Example:
        >>> m = SentimentModel(["", "[UNK]", "good", "bad"], 16, units=8, embedding_dim=8)
        >>> m.predict_texts(["good", "bad"]).shape
        (2,)
    """

    def __init__(self, vocabulary, sequence_length, truncate="both", embedding_dim=64,
                 variant="gru", units=64, depth=1, bidirectional=True, pooling="maxmean",
                 dropout=0.3, spatial_dropout=0.2, recurrent_dropout=0.0, ngram_buckets=0,
                 ngram_dim=1, ngram_scale=1.0, ngram_l2=0.0, ngram_unigrams=False,
                 ngram_weighting="mean", recurrent_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLING:
            raise ValueError(f"SentimentModel: pooling must be one of {POOLING}; got {pooling!r}.")
        self.tokenizer = ReviewTokenizer(vocabulary, sequence_length, truncate, name="tokenizer")
        self.embedding_dim, self.variant, self.units = embedding_dim, variant, units
        self.depth, self.bidirectional, self.pooling = depth, bool(bidirectional), pooling
        self.dropout_rate, self.spatial_dropout_rate = float(dropout), float(spatial_dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.ngram_buckets, self.ngram_dim = int(ngram_buckets), int(ngram_dim)
        self.ngram_scale, self.ngram_l2 = float(ngram_scale), float(ngram_l2)
        self.ngram_unigrams = bool(ngram_unigrams)
        if ngram_weighting not in NGRAM_WEIGHTING:
            raise ValueError(f"SentimentModel: ngram_weighting must be one of {NGRAM_WEIGHTING}; "
                             f"got {ngram_weighting!r}.")
        self.ngram_weighting = ngram_weighting
        if not (isinstance(recurrent_weight, (int, float)) and math.isfinite(recurrent_weight)
                and recurrent_weight > 0):
            raise ValueError(f"SentimentModel: recurrent_weight must be a positive number; "
                             f"got {recurrent_weight!r}.")
        self.recurrent_weight = float(recurrent_weight)
        if ngram_weighting == "nb" and self.ngram_dim != 1:
            raise ValueError("SentimentModel: ngram_weighting='nb' is a linear model (one "
                             f"weight per bucket): ngram_dim must be 1; got {ngram_dim}.")
        if self.ngram_buckets and (self.ngram_buckets < 2 or len(vocabulary) > 46340):
            raise ValueError("SentimentModel: ngram_buckets must be 0 (off) or at least 2, with "
                             "a vocabulary of at most 46,340 tokens (int32 bigram hashing).")
        self.embedding = keras.layers.Embedding(len(vocabulary), embedding_dim, name="embedding")
        self.ngram_embedding = (keras.layers.Embedding(
            self.ngram_buckets, self.ngram_dim, name="bigram_embedding",
            embeddings_regularizer=keras.regularizers.L2(self.ngram_l2) if self.ngram_l2 else None)
            if self.ngram_buckets else None)
        self.spatial_dropout = keras.layers.SpatialDropout1D(spatial_dropout)
        self.rnns = []
        for i in range(depth):
            rnn = grukit.layers.GRU(units, variant=variant, return_sequences=True,
                                    recurrent_dropout=recurrent_dropout, name=f"rnn_{i}")
            if self.bidirectional:
                rnn = keras.layers.Bidirectional(rnn, name=f"birnn_{i}")
            self.rnns.append(rnn)
        self.dropout = keras.layers.Dropout(dropout)
        self.head = keras.layers.Dense(1, name="head")  # a logit; sigmoid in call

    def build(self, input_shape=None):
        d = self.embedding_dim
        self.embedding.build((None, None))
        for rnn in self.rnns:
            rnn.build((None, None, d))
            d = self.units * (2 if self.bidirectional else 1)
        features = d * (2 if self.pooling == "maxmean" else 1)
        if self.ngram_embedding is not None:
            self.ngram_embedding.build((None, None))
            if self.ngram_weighting == "nb":
                self.ngram_ratio = self.add_weight(
                    shape=(self.ngram_buckets,), initializer="zeros", trainable=False,
                    name="ngram_ratio")
                self.ngram_bias = self.add_weight(shape=(1,), initializer="zeros",
                                                  name="ngram_bias")
            else:
                features += self.ngram_dim
        self.head.build((None, features))
        self.built = True

    @property
    def two_members(self):
        """Whether the model is two members (``ngram_weighting="nb"`` with an n-gram
        branch): :meth:`member_probabilities`, the members' losses in training."""
        return self.ngram_buckets > 0 and self.ngram_weighting == "nb"

    def ngram_buckets_of(self, ids):
        """``int32 [batch, n]`` hashed n-gram buckets of token ids (0: none) and their
        validity mask: bigram ``(a, b)`` -> bucket ``(a * V + b) mod (B - 1) + 1``; with
        ``ngram_unigrams`` also every token ``a``, as the code ``a * V`` (the bigram code of
        ``(a, padding)``, which no real bigram has). :func:`ngram_bucket_ids` is the same
        in NumPy."""
        ids = ops.cast(ids, "int32")
        a, b = ids[:, :-1], ids[:, 1:]
        valid = ops.logical_and(ops.not_equal(a, 0), ops.not_equal(b, 0))
        v = self.tokenizer.vocabulary_size
        codes = a * v + b
        if self.ngram_unigrams:
            codes = ops.concatenate([codes, ids * v], axis=1)
            valid = ops.concatenate([valid, ops.not_equal(ids, 0)], axis=1)
        buckets = ops.mod(codes, self.ngram_buckets - 1) + 1
        return ops.where(valid, buckets, ops.zeros_like(buckets)), valid

    def bigram_features(self, ids):
        """``ngram_weighting="mean"``: the mean embedding of the review's hashed n-grams
        (fastText-style bag of bigrams, :meth:`ngram_buckets_of`)."""
        buckets, valid = self.ngram_buckets_of(ids)
        e = self.ngram_embedding(buckets)
        m = ops.expand_dims(ops.cast(valid, e.dtype), -1)
        return ops.sum(e * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)

    def ngram_logit(self, ids):
        """``ngram_weighting="nb"``: the logit ``[batch, 1]`` of an NB-weighted linear model
        over the set of the review's hashed n-grams (NBSVM-style, Wang & Manning 2012)::

            x_b = r_b / sqrt(sum_{b' in review} r_b'^2)   for each distinct bucket b in the review
            z   = ngram_scale * sum_b x_b w_b + bias

        ``r`` (``ngram_ratio``, not trained) is the naive-Bayes log-count ratio of each
        bucket over the training reviews (:func:`nb_ratios`, set by the recipe before
        training), ``w`` the trained weights (``bigram_embedding``). Presence, not counts:
        a bucket seen twice in a review counts once."""
        buckets, _ = self.ngram_buckets_of(ids)
        s = ops.sort(buckets, axis=1)
        previous = ops.concatenate([ops.zeros_like(s[:, :1]), s[:, :-1]], axis=1)
        first = ops.logical_and(ops.not_equal(s, previous), ops.not_equal(s, 0))
        r = ops.take(self.ngram_ratio, s) * ops.cast(first, self.ngram_ratio.dtype)
        w = ops.squeeze(self.ngram_embedding(s), -1)
        norm = ops.sqrt(ops.sum(r * r, axis=1, keepdims=True))
        z = ops.sum(r * w, axis=1, keepdims=True) / ops.maximum(norm, 1e-6)
        return self.ngram_scale * z + self.ngram_bias

    def features(self, ids, training=False):
        """Pooled recurrent features ``[batch, k]`` and the token mask ``[batch, time]``."""
        mask = ops.not_equal(ids, 0)
        x = self.spatial_dropout(self.embedding(ids), training=training)
        for rnn in self.rnns:
            x = rnn(x, mask=mask, training=training)
        m = ops.expand_dims(ops.cast(mask, x.dtype), -1)
        pooled = []
        if self.pooling in ("max", "maxmean"):
            pooled.append(ops.max(ops.where(m > 0, x, ops.full_like(x, -1e9)), axis=1))
        if self.pooling in ("mean", "maxmean"):
            pooled.append(ops.sum(x * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0))
        h = pooled[0] if len(pooled) == 1 else ops.concatenate(pooled, axis=-1)
        has_tokens = ops.any(mask, axis=1, keepdims=True)
        return ops.where(has_tokens, h, ops.zeros_like(h)), has_tokens

    def call(self, inputs, training=False):
        if getattr(inputs, "dtype", None) is not None and "string" in str(inputs.dtype):
            inputs = self.tokenizer(inputs)
        if self.two_members:
            p = self.member_probabilities(inputs, training=training)
            return p if training else p[:, :1]  # training: the members too, for the loss
        h, has_tokens = self.features(inputs, training=training)
        h = self.dropout(h, training=training)
        if self.ngram_embedding is not None:
            h = ops.concatenate([h, self.ngram_scale * self.bigram_features(inputs)], axis=-1)
        p = ops.sigmoid(self.head(h))
        return ops.where(has_tokens, p, ops.full_like(p, 0.5))  # no tokens: no evidence

    def member_probabilities(self, ids, training=False):
        """``ngram_weighting="nb"``: ``float32 [batch, 3]``, P(positive) of the model, of the
        recurrent member alone and of the n-gram member alone::

            z_rnn = head(dropout(pooled recurrent features))     (the recurrent member's logit)
            z_ngram = ngram_logit(ids)                           (the n-gram member's logit)
            P = sigmoid(recurrent_weight * z_rnn + z_ngram)      (the model's output)

        The members train on their own losses (:meth:`compute_loss`), each a classifier by
        itself, so ``recurrent_weight`` does not change training: it only weighs the two at
        prediction (chosen on validation, ``zoo/imdb_sentiment/blend_scan.py``)."""
        if not self.two_members:
            raise ValueError("SentimentModel: member_probabilities needs ngram_weighting='nb' "
                             "and ngram_buckets > 0 (a model of two members).")
        h, has_tokens = self.features(ids, training=training)
        z_rnn = self.head(self.dropout(h, training=training))
        z_ngram = self.ngram_logit(ids)
        z = self.recurrent_weight * z_rnn + z_ngram
        p = ops.sigmoid(ops.concatenate([z, z_rnn, z_ngram], axis=-1))
        return ops.where(has_tokens, p, ops.full_like(p, 0.5))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss; while an ``"nb"`` model trains (``y_pred [batch, 3]``), the
        mean of its two members' losses, each member scored on its own predictions (as if
        trained alone), not the blend's."""
        if y_pred is not None and y_pred.shape[-1] == 3:
            y = ops.concatenate([ops.reshape(y, (-1, 1))] * 2, axis=0)
            y_pred = ops.concatenate([y_pred[:, 1:2], y_pred[:, 2:3]], axis=0)
            if sample_weight is not None:
                sample_weight = ops.concatenate([ops.reshape(sample_weight, (-1,))] * 2, axis=0)
        return super().compute_loss(x, y, y_pred, sample_weight, training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """The compiled metrics, of the blend (column 0 while an ``"nb"`` model trains)."""
        if y_pred is not None and y_pred.shape[-1] == 3:
            y_pred = y_pred[:, :1]
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def predict_texts(self, texts, batch_size=128):
        """``float32 [len(texts)]`` probabilities for raw reviews, any backend (NumPy)."""
        return predict_ids(self, self.tokenizer.encode(texts), batch_size)

    def get_config(self):
        tok = self.tokenizer
        return {**super().get_config(), "vocabulary": list(tok.vocabulary),
                "sequence_length": tok.sequence_length, "truncate": tok.truncate,
                "embedding_dim": self.embedding_dim, "variant": self.variant,
                "units": self.units, "depth": self.depth, "bidirectional": self.bidirectional,
                "pooling": self.pooling, "dropout": self.dropout_rate,
                "spatial_dropout": self.spatial_dropout_rate,
                "recurrent_dropout": self.recurrent_dropout, "ngram_buckets": self.ngram_buckets,
                "ngram_dim": self.ngram_dim, "ngram_scale": self.ngram_scale,
                "ngram_l2": self.ngram_l2, "ngram_unigrams": self.ngram_unigrams,
                "ngram_weighting": self.ngram_weighting,
                "recurrent_weight": self.recurrent_weight}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _bucket_length(lengths, full, bucket):
    """Batch time length: the longest review rounded up to a multiple of ``bucket``."""
    longest = int(lengths.max()) if len(lengths) else 1
    return min(full, max(bucket, int(math.ceil(longest / bucket)) * bucket))


def ngram_bucket_ids(ids, vocabulary_size, buckets, unigrams=False):
    """The distinct hashed n-gram buckets of each review, NumPy (the same hashing as
    :meth:`SentimentModel.ngram_buckets_of`): a list of ``int64`` arrays, one per row of
    token ids ``[n, T]`` (0 = padding)."""
    out = []
    for row in np.asarray(ids, np.int64):
        row = row[row != 0]
        codes = row[:-1] * vocabulary_size + row[1:]
        if unigrams:
            codes = np.concatenate([codes, row * vocabulary_size])
        out.append(np.unique(codes % (buckets - 1) + 1))
    return out


def nb_ratios(ids, labels, vocabulary_size, buckets, unigrams=False, alpha=1.0):
    """``float32 [buckets]`` naive-Bayes log-count ratios of the hashed n-grams (Wang &
    Manning 2012), from the training reviews' token ids ``[n, T]`` and 0/1 ``labels``::

        p = alpha + (number of positive reviews holding the bucket),  q = the same, negative
        r = log(p / |p|_1) - log(q / |q|_1)

    Bucket 0 (no n-gram) gets 0; so does, up to the class balance, a bucket never seen.

    Example:
        >>> nb_ratios([[2, 3, 0], [2, 4, 0]], [1, 0], 5, 16)[[0, 14, 15]].round(3)
        array([ 0.   ,  0.693, -0.693], dtype=float32)
    """
    labels = np.asarray(labels).reshape(-1)
    counts = np.zeros((2, buckets), np.float64)
    for row, label in zip(ngram_bucket_ids(ids, vocabulary_size, buckets, unigrams), labels):
        counts[int(label == 1), row] += 1
    counts += alpha
    r = np.log(counts[1] / counts[1].sum()) - np.log(counts[0] / counts[0].sum())
    r[0] = 0.0
    return r.astype(np.float32)


def predict_ids(model, ids, batch_size=128, bucket=64, members=False):
    """``float32 [n]`` probabilities for token ids ``[n, T]``, batched by length (the
    padding is cut per batch; results in input order). ``members=True`` (an ``"nb"``
    model): ``float32 [n, 3]``, :meth:`SentimentModel.member_probabilities`."""
    ids = np.asarray(ids, np.int32)
    width = 3 if members else 1
    out = np.empty((len(ids), width), np.float32)
    if members:
        model = _Members(model, name="members")
    lengths = (ids != 0).sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(ids), batch_size):
        idx = order[start:start + batch_size]
        t = _bucket_length(lengths[idx], ids.shape[1], bucket)
        p = model.predict_on_batch(ids[idx, :t])
        out[idx] = np.asarray(keras.ops.convert_to_numpy(p), np.float32).reshape(-1, width)
    return out if members else out[:, 0]


class _Members(keras.Model):
    """:meth:`SentimentModel.member_probabilities` as a model's output (for batched,
    compiled prediction)."""

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    def call(self, ids):
        return self.model.member_probabilities(ids)


class _Batches(keras.utils.PyDataset):
    """Token-id batches for ``fit``: shuffled, grouped by length (less padding), each
    batch cut to its longest review rounded up to ``bucket`` steps."""

    def __init__(self, ids, labels, batch_size, shuffle, seed=0, bucket=64, pool=50):
        super().__init__()
        self.ids, self.labels = ids, labels.astype(np.float32)
        self.lengths = (ids != 0).sum(axis=1)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.bucket, self.pool = bucket, pool
        self._epoch = 0
        self._batches = self._plan()

    def _time_steps(self, idx):
        return _bucket_length(self.lengths[idx], self.ids.shape[1], self.bucket)

    def _plan(self):
        batches = self._order()
        # Keras (TensorFlow backend) fixes the tf.data signature from the first two batches:
        # give them different lengths when the data has more than one, so that the time
        # dimension is left unknown (None) rather than fixed to the first batch's.
        if len(batches) > 2:
            first = self._time_steps(batches[0])
            if self._time_steps(batches[1]) == first:
                for j in range(2, len(batches)):
                    if self._time_steps(batches[j]) != first:
                        batches[1], batches[j] = batches[j], batches[1]
                        break
        return batches

    def _order(self):
        n, bs = len(self.ids), self.batch_size
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            return [order[i:i + bs] for i in range(0, n, bs)]
        rng = np.random.default_rng([self.seed, self._epoch])
        order = rng.permutation(n)
        chunk = bs * self.pool  # sort by length inside chunks: batches of similar lengths
        parts = []
        for i in range(0, n, chunk):
            part = order[i:i + chunk]
            parts.append(part[np.argsort(self.lengths[part], kind="stable")])
        order = np.concatenate(parts)
        batches = [order[i:i + bs] for i in range(0, n, bs)]
        return [batches[j] for j in rng.permutation(len(batches))]

    def __len__(self):
        return len(self._batches)

    def __getitem__(self, index):
        idx = self._batches[index]
        return self.ids[idx, :self._time_steps(idx)], self.labels[idx]

    def on_epoch_end(self):
        if self.shuffle:
            self._epoch += 1
            self._batches = self._plan()


class ImdbData:
    """The IMDB reviews, loaded per split on demand and cached, with the token counts,
    vocabularies and encodings that trials share (see :class:`ImdbSentiment`).

    Attributes:
        source: the archive/folder the reviews came from (``None`` for tfds).
    """

    SPLITS = {"train": "train", "validation": "validation", "train_full": "train_full",
              "test": "test"}

    def __init__(self, data_dir=None, path=None, limit=None):
        self.data_dir, self.path, self.limit = data_dir, path, limit
        self._texts, self._counts, self._vocab, self._encoded = {}, {}, {}, {}
        self.source = _imdb_source(data_dir, path)

    def texts(self, split, limit=0):
        """``(texts, labels)`` of ``split``, ``limit`` (0: all) balanced reviews."""
        from grukit.datasets import load_imdb

        if split not in self.SPLITS:
            raise ValueError(f"imdb-sentiment: unknown split {split!r}; expected train, "
                             f"validation, train_full or test.")
        caps = [c for c in (limit or None, self.limit) if c]
        cap = min(caps) if caps else None
        key = (split, cap)
        if key not in self._texts:
            self._texts[key] = load_imdb(split, data_dir=self.data_dir, path=self.path,
                                         limit=cap)
        return self._texts[key]

    def counts(self, limit=0, split="train"):
        """Token counts over the training reviews (``limit`` of them; ``split="train_full"``:
        training and validation reviews, for a refit)."""
        if (split, limit) not in self._counts:
            from collections import Counter

            counts = Counter()
            for text in self.texts(split, limit)[0]:
                counts.update(tokenize(text))
            self._counts[(split, limit)] = counts
        return self._counts[(split, limit)]

    def vocabulary(self, hparams):
        """The vocabulary of the reviews the model trains on (``"train_full"`` when
        ``hparams["refit"]``)."""
        split = "train_full" if hparams.get("refit") else "train"
        key = (hparams["vocab_size"], hparams.get("train_limit", 0), split)
        if key not in self._vocab:
            self._vocab[key] = build_vocabulary(self.counts(key[1], split), key[0])
        return self._vocab[key]

    def encoded(self, split, hparams):
        """``(ids int32 [n, sequence_length], labels)`` of ``split`` for ``hparams``."""
        limit = hparams.get({"train": "train_limit", "train_full": "train_limit",
                             "validation": "val_limit", "test": "test_limit"}[split], 0)
        vocab = self.vocabulary(hparams)
        key = (split, limit, hparams["vocab_size"], hparams.get("train_limit", 0),
               bool(hparams.get("refit")), hparams["sequence_length"], hparams["truncate"])
        if key not in self._encoded:
            texts, labels = self.texts(split, limit)
            tok = ReviewTokenizer(vocab, hparams["sequence_length"], hparams["truncate"])
            self._encoded[key] = (tok.encode(texts), np.asarray(labels, np.int64))
        return self._encoded[key]


def _imdb_source(data_dir, path):
    """The archive or folder :func:`grukit.datasets.load_imdb` will read, if local."""
    if path is not None:
        return Path(path)
    roots = [r for r in (data_dir, os.environ.get("GRUKIT_DATA_DIR")) if r]
    for root in roots:
        for rel in ("imdb/aclImdb_v1.tar.gz", "imdb/aclImdb", "aclImdb_v1.tar.gz", "aclImdb"):
            candidate = Path(root).expanduser() / rel
            if candidate.exists():
                return candidate
    return None


class ImdbSentiment(ZooModel):
    """The ``imdb-sentiment`` recipe: raw review -> probability of a positive review.

    Data: :func:`grukit.datasets.load_imdb` (``train`` 20,000 / ``validation``
    5,000 carved from the training reviews, ``test`` 25,000, final figure only).
    Hyperparameters: ``zoo/imdb_sentiment/hparams.json``. ``train_limit``,
    ``val_limit`` and ``test_limit`` (0 = all) subset the splits (quick runs).

    Example:
        >>> imdb = grukit.zoo.get("imdb-sentiment")
        >>> data = imdb.load_data(data_dir="/work/shared/data")
        >>> result = imdb.train(imdb.hparams(quick=True), data, "runs/imdb", quick=True)
        >>> imdb.predict(result.model, ["a dull, joyless film"])
    """

    name = "imdb-sentiment"
    description = "IMDB review sentiment: raw text -> tokenizer -> (Bi)GRU-family layers -> P(positive)"
    objective = "val_accuracy"
    direction = "max"

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
                           for s in ("train_full" if hparams.get("refit") else "train",
                                     "validation", "test")}}

    def assets(self, data, hparams):
        return {"vocabulary.txt": "\n".join(data.vocabulary(hparams)) + "\n"}

    def dataset(self, data, hparams, split, training=False):
        ids, labels = data.encoded(split, hparams)
        return _Batches(ids, labels, hparams["batch_size"], shuffle=training,
                        seed=hparams.get("seed", 0), bucket=hparams.get("bucket", 64))

    # ------------------------------------------------------ hyperparameters
    def search_space(self, hp, hparams, quick=False):
        """Variant, units, depth, bidirectionality, pooling, dropout, vocabulary size,
        sequence length and learning rate (``"wide"`` adds embedding width and spatial
        dropout): the ranges of :data:`SEARCH_SPACES` ``[hparams["search_space"]]``, or a
        tiny space when ``quick``."""
        space = SEARCH_SPACES["quick" if quick else hparams.get("search_space", "wide")]
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

    def validate_hparams(self, hparams):
        super().validate_hparams(hparams)
        for key in ("depth", "embedding_dim", "vocab_size", "sequence_length", "ngram_dim"):
            value = hparams.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"imdb-sentiment: {key} must be a positive integer; "
                                 f"got {value!r}.")
        if hparams["vocab_size"] < 3:
            raise ValueError(f"imdb-sentiment: vocab_size must be at least 3; "
                             f"got {hparams['vocab_size']}.")
        for key in ("train_limit", "val_limit", "test_limit", "ngram_buckets"):
            value = hparams.get(key, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"imdb-sentiment: {key} must be a non-negative integer "
                                 f"(0 = every review); got {value!r}.")
        if hparams.get("search_space", "wide") not in ("narrow", "wide"):
            raise ValueError(f"imdb-sentiment: search_space must be 'narrow' or 'wide'; "
                             f"got {hparams['search_space']!r}.")
        for key, default, positive, what in (
                ("ngram_scale", 1.0, True, "the bigram branch's output is multiplied by it"),
                ("ngram_l2", 0.0, False, "the L2 penalty on the bigram embeddings"),
                ("recurrent_weight", 1.0, True, "the recurrent member's logit is multiplied "
                                                "by it in an 'nb' model")):
            value = hparams.get(key, default)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value) and (value > 0 if positive else value >= 0)):
                raise ValueError(f"imdb-sentiment: {key} must be a "
                                 f"{'positive' if positive else 'non-negative'} number ({what}); "
                                 f"got {value!r}.")
        if hparams.get("ngram_weighting", "mean") not in NGRAM_WEIGHTING:
            raise ValueError(f"imdb-sentiment: ngram_weighting must be one of {NGRAM_WEIGHTING}; "
                             f"got {hparams['ngram_weighting']!r}.")
        if hparams.get("ngram_weighting", "mean") == "nb" and hparams.get("ngram_dim", 1) != 1:
            raise ValueError(f"imdb-sentiment: ngram_weighting 'nb' is a linear model: "
                             f"ngram_dim must be 1; got {hparams['ngram_dim']}.")
        bucket = hparams.get("bucket", 64)
        if not isinstance(bucket, int) or isinstance(bucket, bool) or bucket < 1:
            raise ValueError(f"imdb-sentiment: bucket must be a positive integer (batches are "
                             f"cut to a multiple of it); got {bucket!r}.")
        if hparams["truncate"] not in TRUNCATE:
            raise ValueError(f"imdb-sentiment: truncate must be one of {TRUNCATE}; "
                             f"got {hparams['truncate']!r}.")
        if hparams["pooling"] not in POOLING:
            raise ValueError(f"imdb-sentiment: pooling must be one of {POOLING}; "
                             f"got {hparams['pooling']!r}.")
        for key in ("bidirectional", "refit", "ngram_unigrams"):
            if not isinstance(hparams.get(key, False), bool):
                raise ValueError(f"imdb-sentiment: {key} must be true or false; "
                                 f"got {hparams[key]!r}.")
        for key in ("dropout", "spatial_dropout", "recurrent_dropout"):
            value = hparams.get(key, 0.0)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and 0 <= value < 1):
                raise ValueError(f"imdb-sentiment: {key} must be in [0, 1); got {value!r}.")

    # ------------------------------------------------------------ model
    def build(self, hparams, data):
        model = SentimentModel(
            data.vocabulary(hparams), hparams["sequence_length"], hparams["truncate"],
            embedding_dim=hparams["embedding_dim"], variant=hparams["variant"],
            units=hparams["units"], depth=hparams["depth"],
            bidirectional=hparams["bidirectional"], pooling=hparams["pooling"],
            dropout=hparams["dropout"], spatial_dropout=hparams["spatial_dropout"],
            recurrent_dropout=hparams.get("recurrent_dropout", 0.0),
            ngram_buckets=hparams.get("ngram_buckets", 0), ngram_dim=hparams.get("ngram_dim", 1),
            ngram_scale=hparams.get("ngram_scale", 1.0), ngram_l2=hparams.get("ngram_l2", 0.0),
            ngram_unigrams=hparams.get("ngram_unigrams", False),
            ngram_weighting=hparams.get("ngram_weighting", "mean"),
            recurrent_weight=hparams.get("recurrent_weight", 1.0),
            name="imdb_sentiment")
        model.build((None, hparams["sequence_length"]))
        if model.two_members:
            ids, labels = data.encoded("train_full" if hparams.get("refit") else "train",
                                       hparams)
            model.ngram_ratio.assign(nb_ratios(ids, labels, model.tokenizer.vocabulary_size,
                                               model.ngram_buckets, model.ngram_unigrams))
        optimizer = keras.optimizers.Adam(hparams["learning_rate"],
                                          clipnorm=hparams.get("clipnorm") or None)
        model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"])
        return model

    def evaluate(self, model, data, hparams, split="test"):
        """Accuracy and log loss over every review of ``split`` (``examples`` counts them);
        for an ``ngram_weighting="nb"`` model also each member's accuracy alone
        (``recurrent_accuracy``, ``ngram_accuracy``)."""
        ids, labels = data.encoded(split, hparams)
        members = model.two_members
        p = predict_ids(model, ids, batch_size=max(hparams["batch_size"], 256),
                        bucket=hparams.get("bucket", 64), members=members)
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
            >>> imdb.predict(model, "an overlong, joyless film")
            5.9922837e-05
        """
        if not isinstance(model, SentimentModel):
            raise ValueError(f"imdb-sentiment: predict needs the imdb-sentiment model "
                             f"(grukit.zoo.load('imdb-sentiment')); got {type(model).__name__}.")
        single = isinstance(inputs, (str, bytes, bytearray, np.str_, np.bytes_))
        if single:
            texts = [to_text(inputs)]
        else:
            if isinstance(inputs, (dict, set, frozenset)):
                raise ValueError(f"imdb-sentiment: expected a review (str) or a sequence of "
                                 f"reviews; got a {type(inputs).__name__} (unordered).")
            if isinstance(inputs, np.ndarray) and inputs.ndim != 1:
                raise ValueError(f"imdb-sentiment: expected one review or a 1-D batch of "
                                 f"reviews; got an array of shape {inputs.shape}.")
            try:
                items = list(inputs)
            except TypeError:
                raise ValueError(f"imdb-sentiment: expected a review (str) or a sequence of "
                                 f"reviews; got {type(inputs).__name__} {inputs!r:.60}.") from None
            texts = [to_text(t, i) for i, t in enumerate(items)]
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
        return ({"path": args.data} if getattr(args, "data", None) else {}), {}

    def run_predict(self, model, args, load_data):
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
            print(f"{p:.4f}  {verdict}  {shown}{note}{truth}")
        if args.gates:
            path = plot_gates(model, texts[0], args.gates)
            print(f"update-gate plot written to {path}", file=sys.stderr)
        return 0


# ------------------------------------------------------------------ gate inspection
def gate_profile(model, text):
    """Update-gate activity of the first recurrent layer over the tokens of ``text``.

    Returns ``(tokens, {direction: z [tokens, units]})``: ``z`` is the update gate
    (the fraction of the previous state kept, :func:`grukit.gate_activations`); a
    token with low ``z`` overwrote the memory. Tokens are the ones the model reads
    (after truncation); out-of-vocabulary tokens are shown as ``[token]``.
    """
    tok = model.tokenizer
    words = truncate_tokens(tokenize(text), tok.sequence_length, tok.truncate)
    ids = tok.encode([text])
    n = len(words)
    if n == 0:
        raise ValueError("imdb-sentiment: the review has no tokens; nothing to plot.")
    shown = [w if tok._index.get(w) else f"[{w}]" for w in words]
    x = keras.ops.convert_to_numpy(model.embedding(ids[:, :n]))
    layer = model.rnns[0]
    directions = ({"forward": layer.forward_layer, "backward": layer.backward_layer}
                  if model.bidirectional else {"forward": layer})
    out = {}
    for name, rnn in directions.items():
        gates = grukit.gate_activations(rnn, x)
        out[name] = np.asarray(gates["z"][0])
    return shown, out


def plot_gates(model, text, path, max_tokens=120):
    """Plot :func:`gate_profile` of ``text`` into ``path`` (PNG): for each direction, the
    mean update gate per token (high: memory kept, low: overwritten) and the units'
    gates as a heat map, with the model's probability in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    words, gates = gate_profile(model, text)
    words = words[:max_tokens]
    prob = float(model.predict_texts([text])[0])
    rows = len(gates)
    width = max(8.0, 0.17 * len(words) + 2)
    fig, axes = plt.subplots(2 * rows, 1, figsize=(width, 3.2 * rows + 1.2),
                             gridspec_kw={"height_ratios": [1, 1.6] * rows})
    x = np.arange(len(words))
    for r, (name, z) in enumerate(gates.items()):
        z = z[:len(words)]
        ax = axes[2 * r]
        mean = z.mean(axis=1)
        ax.bar(x, 1 - mean, color=plt.cm.viridis(1 - mean))
        ax.set_xlim(-0.5, len(words) - 0.5)
        ax.set_ylim(0, 1)
        ax.set_ylabel("1 - mean z")
        ax.set_title(f"{name} direction: how much each token overwrote the memory "
                     f"(1 - update gate, mean over {z.shape[1]} units)", fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(words, rotation=90, fontsize=7)
        ax = axes[2 * r + 1]
        ax.imshow(z.T, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_ylabel("unit")
        ax.set_title(f"{name} update gate z per unit (yellow: keep, dark: overwrite)",
                     fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(words, rotation=90, fontsize=7)
    fig.suptitle(f"imdb-sentiment ({model.variant}, {model.units} units"
                 f"{', bidirectional' if model.bidirectional else ''}): P(positive) = {prob:.3f}",
                 fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
