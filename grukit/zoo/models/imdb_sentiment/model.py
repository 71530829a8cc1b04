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
"""

from __future__ import annotations

import math

import keras
from keras import ops
import numpy as np

import grukit

from .preprocessing import ReviewTokenizer


POOLING = ("max", "mean", "maxmean")
NGRAM_WEIGHTING = ("mean", "nb")


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
        >>> from grukit.zoo.models.imdb_sentiment.model import SentimentModel
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
        prediction (chosen on validation, ``experiments/imdb_sentiment/blend_scan.py``)."""
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
        >>> from grukit.zoo.models.imdb_sentiment.model import nb_ratios
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
