"""Tiny Shakespeare as ids, and the training and validation batches."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .preprocessing import build_vocabulary, encode


# ====================================================================== data
class CharData:
    """Tiny Shakespeare as text and ids: ``train`` (first 90%), ``validation`` (last 10%).

    Attributes:
        vocabulary: sorted distinct characters of the training text.
        source: the ``input.txt`` read (``None`` when it came from tensorflow-datasets).
    """

    def __init__(self, data_dir=None, path=None):
        from grukit.datasets import load_tiny_shakespeare

        self.text = {"train": load_tiny_shakespeare("train", data_dir=data_dir, path=path),
                     "validation": load_tiny_shakespeare("validation", data_dir=data_dir,
                                                         path=path)}
        self.vocabulary = build_vocabulary(self.text["train"])
        self.source = _shakespeare_source(data_dir, path)
        self._ids = {}

    def ids(self, split, limit=0):
        """``int32`` ids of ``split`` (``"test"`` is the validation text), the first ``limit``
        characters (0: all). Validation characters outside the vocabulary raise."""
        split = "validation" if split == "test" else split
        if split not in self._ids:
            self._ids[split] = encode(self.text[split], self.vocabulary, "error")
        ids = self._ids[split]
        return ids[:limit] if limit else ids


def _shakespeare_source(data_dir, path):
    if path is not None:
        return Path(path)
    roots = [r for r in (data_dir, os.environ.get("GRUKIT_DATA_DIR")) if r]
    for root in roots:
        for rel in ("tinyshakespeare/input.txt", "input.txt"):
            candidate = Path(os.path.expanduser(os.fspath(root))) / rel
            if candidate.is_file():
                return candidate
    return None


def random_windows(ids, seq_len, batch, steps, seed=0):
    """``steps`` batches of ``batch`` random windows ``(x [batch, L], y [batch, L])`` per
    epoch, ``y`` shifted by one; the offsets of epoch ``e`` come from ``seed`` and ``e``
    (:class:`grukit.datasets.Batches`)."""
    from grukit.datasets import Batches

    if len(ids) < seq_len + 2:
        raise ValueError(f"char-lm: {len(ids)} training characters are too few for "
                         f"windows of {seq_len}.")
    span = np.arange(seq_len + 1)

    def fetch(offsets):
        w = ids[offsets[:, None] + span]
        return w[:, :-1], w[:, 1:]

    def plan(rng):  # offsets drawn with replacement: `steps` batches an epoch
        return list(rng.integers(0, len(ids) - seq_len - 1, (steps, batch)))

    return Batches(fetch, len(ids) - seq_len - 1, batch, shuffle=True, seed=seed, plan=plan)


def strided_windows(ids, seq_len, batch):
    """Non-overlapping windows of ``seq_len`` in order (validation loss during training)."""
    from grukit.datasets import Batches

    n = (len(ids) - 1) // seq_len
    if n < 1:
        raise ValueError(f"char-lm: {len(ids)} validation characters are too few for "
                         f"windows of {seq_len}.")
    x = ids[:n * seq_len].reshape(n, seq_len)
    y = ids[1:n * seq_len + 1].reshape(n, seq_len)
    return Batches.of_arrays((x, y), batch)
