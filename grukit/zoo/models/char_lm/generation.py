"""Sampling text from the model one character at a time, with a seeded, portable sampler.

Generation (:func:`generate`, :meth:`CharLanguageModel.predict`, ``grukit zoo
predict char-lm``) runs the cells one step at a time with an explicit state
(:meth:`CharLM.step`): the prompt is read character by character, then every
new character costs one step -- the prefix is never re-run. Sampling: logits /
temperature, optionally the ``top_k`` largest kept, softmax, then inverse-CDF
sampling with a uniform number that is a hash of ``(seed, position)``
(:func:`uniform`). The same hash and arithmetic are in the SavedModel, so a
seed gives the same text in Python (every backend) and in the export, up to
floating-point rounding of the logits (a draw within ~1e-6 of a boundary).
"""

from __future__ import annotations

import math
import time

import numpy as np

from .model import CharLM, _runner
from .preprocessing import UNKNOWN, decode, prompt_ids


MAX_LENGTH = 100_000            # the most characters one call generates
_M32 = 0xFFFFFFFF


# ================================================================== sampling
def _mul32(x, c):
    """``(x * c) mod 2**32`` for ``x < 2**32`` and a constant ``c < 2**32``, with products
    below 2**49 (the same expression runs on int64 tensors in the SavedModel)."""
    return ((x * (c & 0xFFFF)) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _M32


def uniform(seed, position):
    """The uniform number in ``[0, 1)`` that draws the character at ``position`` (0 = the
    first generated one) for ``seed``: a 32-bit integer hash (``lowbias32``) of the two.

    Example:
        >>> from grukit.zoo.models.char_lm.generation import uniform
        >>> uniform(1, 0) == uniform(1, 0) != uniform(2, 0)
        True
        >>> 0 <= uniform(1, 0) < 1
        True
    """
    x = _mul32(int(seed) & _M32, 0x9E3779B9) ^ _mul32((int(position) + 1) & _M32, 0x85EBCA6B)
    x ^= x >> 16
    x = _mul32(x, 0x7FEB352D)
    x ^= x >> 15
    x = _mul32(x, 0x846CA68B)
    x ^= x >> 16
    return (x >> 8) * (1.0 / (1 << 24))


def sample(logits, temperature, top_k, u):
    """The id drawn from ``logits [V]``: ``temperature`` 0 is greedy (argmax, first of ties);
    else ``softmax(logits / temperature)`` over the ``top_k`` largest (0: all; values tied
    with the k-th largest are kept), inverse CDF at ``u``."""
    z = np.asarray(logits, np.float64)
    if temperature == 0:
        return int(np.argmax(z))
    z = z / np.float64(np.float32(temperature))
    v = len(z)
    k = top_k if 0 < top_k < v else v
    kth = np.sort(z)[v - k]
    z = np.where(z >= kth, z, -np.inf)
    p = np.exp(z - z.max())
    cdf = np.cumsum(p)
    return int(min(np.sum(cdf <= u * cdf[-1]), v - 1))


def check_generation_args(length, temperature, top_k, seed, unknown="error"):
    """Raise ``ValueError`` naming a bad generation argument and what was expected."""
    if not isinstance(length, (int, np.integer)) or isinstance(length, bool):
        raise ValueError(f"char-lm: length must be an integer number of characters; "
                         f"got {length!r}.")
    if length < 0:
        raise ValueError(f"char-lm: length must be >= 0 (0 generates nothing); got {length}.")
    if length > MAX_LENGTH:
        raise ValueError(f"char-lm: length {length} is more than the {MAX_LENGTH:,} characters "
                         f"one call generates; generate in pieces (pass the text so far as the "
                         f"prompt).")
    if not isinstance(temperature, (int, float, np.floating, np.integer)) \
            or isinstance(temperature, bool) or not math.isfinite(temperature):
        raise ValueError(f"char-lm: temperature must be a finite number >= 0 (0: greedy); "
                         f"got {temperature!r}.")
    if temperature < 0:
        raise ValueError(f"char-lm: temperature must be >= 0 (0 picks the most likely "
                         f"character; 1 samples the model's distribution); got {temperature}.")
    if not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or top_k < 0:
        raise ValueError(f"char-lm: top_k must be an integer >= 0 (0: no limit); got {top_k!r}.")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"char-lm: seed must be an integer >= 0; got {seed!r}.")
    if unknown not in UNKNOWN:
        raise ValueError(f"char-lm: unknown must be one of {UNKNOWN}; got {unknown!r}.")


def generate(model, prompt, length=500, temperature=1.0, top_k=0, seed=0, unknown="error",
             timings=None):
    """Generate ``length`` characters after ``prompt``; returns the new text only.

    The prompt is read one character at a time and every new character costs one
    :meth:`CharLM.step` (constant work per character). Deterministic for a seed.

    Args:
        model: a :class:`CharLM` (``grukit.zoo.load("char-lm")``).
        prompt: ``str`` (or UTF-8 ``bytes``); empty: generated as if after a newline.
        length: characters to generate, ``0 <= length <= MAX_LENGTH`` (0: ``""``).
        temperature: ``>= 0``; 0 is greedy.
        top_k: keep the ``top_k`` most likely characters (0: all).
        seed: ``>= 0``.
        unknown: ``"error"`` or ``"skip"`` for prompt characters outside the vocabulary.
        timings: optional dict, receives ``prompt_s``, ``generate_s`` and ``chars_per_s``.

    Raises:
        ValueError: a bad argument or (``unknown="error"``) an unknown prompt character.
    """
    if not isinstance(model, CharLM):
        raise ValueError(f"char-lm: expected the char-lm model (grukit.zoo.load('char-lm')); "
                         f"got {type(model).__name__}.")
    check_generation_args(length, temperature, top_k, seed, unknown)
    ids = prompt_ids(model, prompt, unknown)
    run = _runner(model, "step")
    state = model.initial_state(1)
    start = time.perf_counter()
    for i in ids:
        logits, state = run(np.array([i], np.int32), state)
    mid = time.perf_counter()
    out = []
    for t in range(length):
        nxt = sample(logits[0], temperature, top_k, uniform(seed, t))
        out.append(nxt)
        if t + 1 < length:
            logits, state = run(np.array([nxt], np.int32), state)
    end = time.perf_counter()
    if timings is not None:
        timings.update(prompt_s=mid - start, generate_s=end - mid,
                       chars_per_s=length / (end - mid) if length and end > mid else None)
    return decode(out, model.vocabulary)
