"""IMDB reviews as text and ids, and length-bucketed training batches."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .model import _bucket_length
from .preprocessing import ReviewTokenizer, build_vocabulary, tokenize


def review_batches(ids, labels, batch_size, shuffle, seed=0, bucket=64, pool=50):
    """Token-id batches for ``fit`` (:class:`grukit.datasets.Batches`): shuffled, grouped
    by length (less padding), each batch cut to its longest review rounded up to
    ``bucket`` steps.

    The plan of an epoch: a permutation of the reviews, sorted by length inside chunks of
    ``pool`` batches, cut into batches, and the batches shuffled; without ``shuffle`` the
    reviews in order of length.
    """
    from grukit.datasets import Batches

    labels = labels.astype(np.float32)
    lengths = (ids != 0).sum(axis=1)
    n, bs = len(ids), batch_size

    def time_steps(idx):
        return _bucket_length(lengths[idx], ids.shape[1], bucket)

    def order(rng):
        if rng is None:
            by_length = np.argsort(lengths, kind="stable")
            return [by_length[i:i + bs] for i in range(0, n, bs)]
        perm = rng.permutation(n)
        chunk = bs * pool  # sort by length inside chunks: batches of similar lengths
        parts = []
        for i in range(0, n, chunk):
            part = perm[i:i + chunk]
            parts.append(part[np.argsort(lengths[part], kind="stable")])
        perm = np.concatenate(parts)
        batches = [perm[i:i + bs] for i in range(0, n, bs)]
        return [batches[j] for j in rng.permutation(len(batches))]

    def plan(rng):
        batches = order(rng)
        # Keras (TensorFlow backend) fixes the tf.data signature from the first two batches:
        # give them different lengths when the data has more than one, so that the time
        # dimension is left unknown (None) rather than fixed to the first batch's.
        if len(batches) > 2:
            first = time_steps(batches[0])
            if time_steps(batches[1]) == first:
                for j in range(2, len(batches)):
                    if time_steps(batches[j]) != first:
                        batches[1], batches[j] = batches[j], batches[1]
                        break
        return batches

    def fetch(idx):
        return ids[idx, :time_steps(idx)], labels[idx]

    return Batches(fetch, n, batch_size, shuffle=shuffle, seed=seed, plan=plan)


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
        key = _vocabulary_key(hparams)
        if key not in self._vocab:
            self._vocab[key] = build_vocabulary(self.counts(key[1], key[2]), key[0])
        return self._vocab[key]

    def encoded(self, split, hparams):
        """``(ids int32 [n, sequence_length], labels)`` of ``split`` for ``hparams``."""
        limit = _split_limit(split, hparams)
        vocab = self.vocabulary(hparams)
        key = (split, limit, hparams["vocab_size"], hparams["train_limit"],
               hparams["refit"], hparams["sequence_length"], hparams["truncate"])
        if key not in self._encoded:
            texts, labels = self.texts(split, limit)
            tok = ReviewTokenizer(vocab, hparams["sequence_length"], hparams["truncate"])
            self._encoded[key] = (tok.encode(texts), np.asarray(labels, np.int64))
        return self._encoded[key]

    def encoded_for(self, tokenizer, split, hparams):
        """``(ids int32 [n, sequence_length], labels)`` of ``split`` read with ``tokenizer``
        (a trained model's own :class:`ReviewTokenizer`, whose vocabulary came from the
        reviews it was trained on, not from this data).

        The encoding :meth:`encoded` shares between trials is reused when it was made with
        the same vocabulary, length and truncation (a model just trained on this data);
        otherwise the reviews are encoded with ``tokenizer`` (a preset measured on other
        or fewer reviews than it was trained on: no vocabulary is rebuilt from them).
        """
        if (self._vocab.get(_vocabulary_key(hparams)) == tokenizer.vocabulary
                and tokenizer.sequence_length == hparams["sequence_length"]
                and tokenizer.truncate == hparams["truncate"]):
            return self.encoded(split, hparams)
        texts, labels = self.texts(split, _split_limit(split, hparams))
        return tokenizer.encode(texts), np.asarray(labels, np.int64)


def _vocabulary_key(hparams):
    """``(vocab_size, train_limit, the split it is counted on)``."""
    return (hparams["vocab_size"], hparams["train_limit"],
            "train_full" if hparams["refit"] else "train")


def _split_limit(split, hparams):
    """The reviews of ``split`` that ``hparams`` use (0: all)."""
    return hparams[{"train": "train_limit", "train_full": "train_limit",
                    "validation": "val_limit", "test": "test_limit"}[split]]


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
