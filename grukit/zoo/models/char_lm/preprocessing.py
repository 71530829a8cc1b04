"""Characters to ids and back, over the model's vocabulary.

Vocabulary: the sorted distinct characters of the training text (65 for Tiny
Shakespeare: newline, space, ``!$&',-.3:;?``, ``A-Z``, ``a-z``); id ``i`` is
character ``vocabulary[i]``. It is part of the model's config (``config.json``)
and is also written to ``assets/vocabulary.json``. No id is reserved: a
character outside the vocabulary in a *prompt* is an error by default
(``unknown="error"``: ``ValueError`` naming the characters) or is dropped
(``unknown="skip"``); the exported SavedModel always drops them.
"""

from __future__ import annotations

import numpy as np


UNKNOWN = ("error", "skip")     # policies for prompt characters outside the vocabulary


START = "\n"                    # what an empty prompt is read as (if in the vocabulary)


# ================================================================ vocabulary
def build_vocabulary(text):
    """The sorted distinct characters of ``text``.

    Example:
        >>> from grukit.zoo.models.char_lm.preprocessing import build_vocabulary
        >>> build_vocabulary("abba\\n")
        '\\nab'
    """
    return "".join(sorted(set(text)))


def _codepoints(text):
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype="<u4")


def encode(text, vocabulary, unknown="error"):
    """Character ids of ``text`` (``int32 [len]``).

    Args:
        unknown: ``"error"`` (``ValueError`` listing the characters outside the
            vocabulary) or ``"skip"`` (they are dropped).

    Example:
        >>> from grukit.zoo.models.char_lm.preprocessing import encode
        >>> encode("aXb", "ab", unknown="skip")
        array([0, 1], dtype=int32)
        >>> encode("aXb", "ab")
        Traceback (most recent call last):
        ValueError: char-lm: the prompt holds 1 character(s) outside the model's 2-character
        vocabulary: 'X' (first at position 1). ...
    """
    if unknown not in UNKNOWN:
        raise ValueError(f"char-lm: unknown must be one of {UNKNOWN}; got {unknown!r}.")
    vocab = _codepoints(vocabulary).astype(np.int64)
    lut = np.full(int(vocab.max()) + 1, -1, np.int32)
    lut[vocab] = np.arange(len(vocab), dtype=np.int32)
    cps = _codepoints(text).astype(np.int64)
    ids = np.where(cps < len(lut), lut[np.minimum(cps, len(lut) - 1)], -1).astype(np.int32)
    bad = ids < 0
    if bad.any():
        if unknown == "error":
            chars = sorted(set(text[i] for i in np.flatnonzero(bad)))
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"char-lm: the prompt holds {int(bad.sum())} character(s) outside the model's "
                f"{len(vocabulary)}-character vocabulary: {''.join(chars)!r} (first at position "
                f"{first}). The vocabulary is {vocabulary!r}. Remove them, or pass "
                f"unknown='skip' (--unknown skip) to drop them.")
        ids = ids[~bad]
    return ids


def decode(ids, vocabulary):
    """The text of character ids."""
    return "".join(vocabulary[int(i)] for i in ids)


def prompt_ids(model, prompt, unknown="error"):
    """The ids the model reads for ``prompt``: :func:`encode`, and for an empty prompt (or one
    whose characters were all skipped) the id of :data:`START` (a newline), i.e. the text is
    generated as if it followed a line break."""
    if isinstance(prompt, (bytes, bytearray, np.bytes_)):
        prompt = bytes(prompt).decode("utf-8", errors="replace")
    if not isinstance(prompt, (str, np.str_)):
        raise ValueError(f"char-lm: the prompt must be a string; got {type(prompt).__name__}.")
    ids = encode(str(prompt), model.vocabulary, unknown)
    if len(ids) == 0:
        ids = np.array([_start_id(model.vocabulary)], np.int32)
    return ids


def _start_id(vocabulary):
    return vocabulary.index(START) if START in vocabulary else 0
