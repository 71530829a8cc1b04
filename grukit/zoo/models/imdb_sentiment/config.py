"""The ``imdb-sentiment`` hyperparameters: :class:`ImdbConfig`."""

from __future__ import annotations

import dataclasses

from grukit.zoo.base import Rule, ZooConfig

from .model import NGRAM_WEIGHTING, POOLING
from .preprocessing import TRUNCATE

SEARCH_SPACE_NAMES = ("narrow", "wide")  # the keys of recipe.SEARCH_SPACES that `zoo tune` may use


@dataclasses.dataclass(frozen=True)
class ImdbConfig(ZooConfig):
    """Hyperparameters of the IMDB sentiment model (:class:`.model.SentimentModel`).

    The defaults are the committed preset's configuration
    (``experiments/imdb_sentiment/README.md`` says how it was chosen);
    ``hparams.json``'s profiles override them (``quick``: a CPU run of a minute or
    two on a few thousand reviews; ``search``: the base of the searches).

    Args:
        variant: the grukit variant of the recurrent layers.
        units: the recurrent layers' width (per direction).
        depth: the number of stacked recurrent layers.
        bidirectional: wrap each recurrent layer in ``Bidirectional``.
        pooling: how the last layer's outputs become one vector: ``"max"``,
            ``"mean"`` or ``"maxmean"`` (masked).
        embedding_dim: the token embedding's width.
        vocab_size: ids kept (0 padding, 1 out of vocabulary, then the most frequent
            training tokens), at least 3.
        sequence_length: tokens per review after truncation and padding.
        truncate: which tokens a longer review keeps: ``"pre"`` (the last),
            ``"post"`` (the first) or ``"both"`` (the first and last halves).
        dropout: dropout rate on the pooled features, in ``[0, 1)``.
        spatial_dropout: rate of dropping whole embedding channels, in ``[0, 1)``.
        recurrent_dropout: the cells' recurrent dropout rate, in ``[0, 1)``.
        ngram_buckets: hash buckets of the bag-of-n-grams branch (0: no branch).
        ngram_dim: the n-gram embeddings' width (1 for ``"nb"``: a linear model).
        ngram_scale: the n-gram branch's output is multiplied by it.
        ngram_l2: L2 penalty on the n-gram embeddings.
        ngram_unigrams: the n-gram branch hashes the tokens too, not only bigrams.
        ngram_weighting: ``"nb"``: the branch is a second member, an NB-weighted linear
            model trained on its own loss whose logit is added to ``recurrent_weight``
            times the recurrent member's; ``"mean"``: bucket embeddings averaged into
            the recurrent features (trained jointly).
        recurrent_weight: the recurrent member's logit is multiplied by it in an
            ``"nb"`` model.
        learning_rate: Adam's learning rate.
        clipnorm: gradient clipping by norm (0: none).
        batch_size: reviews per batch.
        bucket: batches are cut to a multiple of this many tokens (speed only).
        epochs: training epochs (with ``refit``: exactly these, the last kept).
        patience: early stopping after this many epochs without a better
            ``val_accuracy`` (0: never).
        refit: train on train + validation (25,000 reviews) for exactly ``epochs``
            epochs and keep the last (the final fit after selection on validation).
        train_limit: training reviews used (0: all 20,000).
        val_limit: validation reviews used (0: all 5,000).
        test_limit: test reviews used (0: all 25,000).
        search_space: what ``grukit zoo tune`` varies: ``"narrow"`` (the first
            search) or ``"wide"`` (the second; ``recipe.SEARCH_SPACES``).

    Example:
        >>> from grukit.zoo.models.imdb_sentiment.config import ImdbConfig
        >>> cfg = ImdbConfig.from_dict({"variant": "mgu2", "ngram_buckets": 0})
        >>> cfg.variant, cfg.to_dict()["refit"]
        ('mgu2', True)
        >>> ImdbConfig(ngram_weighting="nb", ngram_dim=8)
        Traceback (most recent call last):
        ValueError: imdb-sentiment: ngram_weighting 'nb' is a linear model: ngram_dim must be 1; got 8.
    """

    variant: str = "ligru"  # grukit variant of the recurrent layers
    units: int = 64  # recurrent width per direction
    depth: int = 1  # stacked recurrent layers
    bidirectional: bool = True  # Bidirectional recurrent layers
    pooling: str = "mean"  # max, mean or maxmean over time
    embedding_dim: int = 64  # token embedding width
    vocab_size: int = 12000  # ids: padding, out-of-vocabulary, frequent tokens
    sequence_length: int = 512  # tokens per review
    truncate: str = "both"  # pre, post or both
    dropout: float = 0.5  # dropout on the pooled features
    spatial_dropout: float = 0.2  # dropout of embedding channels
    recurrent_dropout: float = 0.0  # the cells' recurrent dropout
    ngram_buckets: int = 262144  # hashed n-gram buckets (0: no n-gram branch)
    ngram_dim: int = 1  # n-gram embedding width (1 for "nb")
    ngram_scale: float = 10.0  # the n-gram branch's output factor
    ngram_l2: float = 4.167e-05  # L2 penalty on the n-gram embeddings
    ngram_unigrams: bool = True  # hash the tokens too, not only bigrams
    ngram_weighting: str = "nb"  # nb (second member) or mean (joint features)
    recurrent_weight: float = 0.5  # the recurrent member's logit factor ("nb")
    learning_rate: float = 0.0027754826548988983  # Adam's rate
    clipnorm: float = 1.0  # gradient clipping by norm (0: none)
    batch_size: int = 64  # reviews per batch
    bucket: int = 64  # batches cut to a multiple of this many tokens
    epochs: int = 2  # epochs (exactly these with refit)
    patience: int = 2  # early-stopping patience (0: none)
    refit: bool = True  # train on train + validation, keep the last epoch
    train_limit: int = 0  # training reviews (0: all)
    val_limit: int = 0  # validation reviews (0: all)
    test_limit: int = 0  # test reviews (0: all)
    search_space: str = "wide"  # narrow or wide: what `zoo tune` varies

    model = "imdb-sentiment"
    RULES = {
        "depth": Rule.integer(1),
        "bidirectional": Rule.BOOLEAN,
        "pooling": Rule.one_of(*POOLING),
        "embedding_dim": Rule.integer(1),
        "vocab_size": Rule.integer(3).explain("padding, out of vocabulary and at least one "
                                              "token"),
        "sequence_length": Rule.integer(1),
        "truncate": Rule.one_of(*TRUNCATE),
        "dropout": Rule.FRACTION,
        "spatial_dropout": Rule.FRACTION,
        "recurrent_dropout": Rule.FRACTION,
        "ngram_buckets": Rule.integer(0).explain("0: no n-gram branch"),
        "ngram_dim": Rule.integer(1),
        "ngram_scale": Rule.number(0, low_open=True).explain(
            "the n-gram branch's output is multiplied by it"),
        "ngram_l2": Rule.number(0).explain("the L2 penalty on the n-gram embeddings"),
        "ngram_unigrams": Rule.BOOLEAN,
        "ngram_weighting": Rule.one_of(*NGRAM_WEIGHTING),
        "recurrent_weight": Rule.number(0, low_open=True).explain(
            "the recurrent member's logit is multiplied by it in an 'nb' model"),
        "clipnorm": Rule.number(0).explain("0: no clipping"),
        "bucket": Rule.integer(1).explain("batches are cut to a multiple of it"),
        "refit": Rule.BOOLEAN,
        "train_limit": Rule.integer(0).explain("0: every review"),
        "val_limit": Rule.integer(0).explain("0: every review"),
        "test_limit": Rule.integer(0).explain("0: every review"),
        "search_space": Rule.one_of(*SEARCH_SPACE_NAMES),
    }
    # what a configuration without these keys ran with (before the n-gram member, the
    # refit and clipping existed): no n-gram branch, no refit, no clipping. ``refit``
    # decides the vocabulary, so an old preset evaluated with the default would be
    # measured with ids it was not trained on.
    RECORDED_BEFORE = {"ngram_buckets": 0, "ngram_scale": 1.0, "ngram_l2": 0.0,
                       "ngram_unigrams": False, "ngram_weighting": "mean",
                       "recurrent_weight": 1.0, "refit": False, "clipnorm": 0.0}

    def check(self):
        """An ``"nb"`` n-gram member is linear: ``ngram_dim`` must be 1."""
        if self.ngram_weighting == "nb" and self.ngram_dim != 1:
            raise ValueError(f"imdb-sentiment: ngram_weighting 'nb' is a linear model: "
                             f"ngram_dim must be 1; got {self.ngram_dim}.")
