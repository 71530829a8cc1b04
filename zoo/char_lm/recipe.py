"""Character language model on Tiny Shakespeare: characters in, next-character distribution out.

The model (:class:`CharLM`), for a batch of character ids ``[batch, time]``:

1. ``Embedding(vocabulary, embedding_dim)``;
2. ``depth`` stacked grukit recurrent layers (``variant``, ``units``), each
   returning its sequence and its final state, with ``Dropout`` after each;
3. ``Dense(vocabulary)``: the logits of the next character at every position.

Vocabulary: the sorted distinct characters of the training text (65 for Tiny
Shakespeare: newline, space, ``!$&',-.3:;?``, ``A-Z``, ``a-z``); id ``i`` is
character ``vocabulary[i]``. It is part of the model's config (``config.json``)
and is also written to ``assets/vocabulary.json``. No id is reserved: a
character outside the vocabulary in a *prompt* is an error by default
(``unknown="error"``: ``ValueError`` naming the characters) or is dropped
(``unknown="skip"``); the exported SavedModel always drops them.

Training: random windows of ``seq_len`` characters of the first 90% of the text
(``grukit.datasets.load_tiny_shakespeare("train")``, 1,003,854 characters),
targets shifted by one, sparse categorical cross-entropy from logits, Adam with
a cosine decay of the learning rate over all steps, gradient clipping. An
"epoch" is ``steps_per_epoch`` batches (the checkpoint/early-stopping unit).
Keras's ``val_loss`` during training (the search's objective) is the mean loss
over non-overlapping ``seq_len`` windows of the validation text, each from a
zero state.

Evaluation (:meth:`CharLanguageModel.evaluate`, the model card's figure): the
whole validation split (the last 10%, 111,540 characters) read as
``eval_streams`` contiguous streams (default 1: the text in order) in windows
of ``eval_window`` characters with the recurrent state carried from window to
window, so each character is predicted from everything before it in the split.
Every character but the first (which has no context) is a target: 111,539
targets. ``loss`` is the mean cross-entropy in nats per character, ``bpc`` the
same in bits (``loss / ln 2``). The data set has no separate test split;
``split="test"`` is the same validation text (documented in the model card).

Generation (:func:`generate`, :meth:`CharLanguageModel.predict`, ``grukit zoo
predict char-lm``) runs the cells one step at a time with an explicit state
(:meth:`CharLM.step`): the prompt is read character by character, then every
new character costs one step -- the prefix is never re-run. Sampling: logits /
temperature, optionally the ``top_k`` largest kept, softmax, then inverse-CDF
sampling with a uniform number that is a hash of ``(seed, position)``
(:func:`uniform`). The same hash and arithmetic are in the SavedModel, so a
seed gives the same text in Python (every backend) and in the export, up to
floating-point rounding of the logits (a draw within ~1e-6 of a boundary).

Example::

    >>> lm = grukit.zoo.get("char-lm")
    >>> model = grukit.zoo.load("char-lm")
    >>> lm.predict(model, "ROMEO:", length=200, temperature=0.8, seed=1)
    "\\nWhat, ..."
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

import keras
from keras import ops

import grukit
from grukit.variants import get_variant
from grukit.zoo import ZooModel

MAX_LENGTH = 100_000            # the most characters one call generates
UNKNOWN = ("error", "skip")     # policies for prompt characters outside the vocabulary
START = "\n"                    # what an empty prompt is read as (if in the vocabulary)
SEARCH_VARIANTS = ["gru", "mgu", "mgu2", "ligru", "mingru"]
_M32 = 0xFFFFFFFF


# ====================================================================== model
@keras.saving.register_keras_serializable(package="grukit_zoo")
class CharLM(keras.Model):
    """Embedding -> ``depth`` grukit layers (+ dropout) -> ``Dense(len(vocabulary))``.

    Args:
        vocabulary: the characters, a ``str``; id ``i`` is ``vocabulary[i]``.
        embedding_dim: embedding width.
        units: state size of every recurrent layer.
        depth: number of stacked recurrent layers.
        variant: grukit variant (``grukit.variants()``).
        dropout: dropout after each recurrent layer (training only).

    Call: ``ids int [batch, time]`` -> logits ``[batch, time, vocabulary]`` (from a
    zero state). :meth:`sequence` also takes and returns the state; :meth:`step`
    advances one character.

    Example:
        >>> m = CharLM("\\n abc", units=16, depth=2, variant="mgu")
        >>> m(np.zeros((2, 7), "int32")).shape
        (2, 7, 5)
    """

    def __init__(self, vocabulary, embedding_dim=64, units=384, depth=2, variant="gru",
                 dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(vocabulary, str) or len(vocabulary) < 2 \
                or len(set(vocabulary)) != len(vocabulary):
            raise ValueError(f"CharLM: vocabulary must be a string of at least 2 distinct "
                             f"characters; got {vocabulary!r:.80}.")
        for key, value in (("embedding_dim", embedding_dim), ("units", units), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"CharLM: {key} must be a positive integer; got {value!r}.")
        self.vocabulary = vocabulary
        self.embedding_dim, self.units, self.depth = embedding_dim, units, depth
        self.variant = get_variant(variant).name
        self.dropout_rate = float(dropout)
        self.embedding = keras.layers.Embedding(len(vocabulary), embedding_dim, name="embedding")
        self.rnns = [grukit.layers.GRU(units, variant=self.variant, return_sequences=True,
                                       return_state=True, name=f"rnn_{i}")
                     for i in range(depth)]
        self.drops = [keras.layers.Dropout(dropout, name=f"dropout_{i}") for i in range(depth)]
        self.head = keras.layers.Dense(len(vocabulary), name="logits")

    @property
    def vocabulary_size(self):
        return len(self.vocabulary)

    @property
    def state_size(self):
        """Size of the concatenated state of all layers, ``depth * units``."""
        return self.depth * self.units

    def build(self, input_shape=None):
        self.embedding.build((None, None))
        width = self.embedding_dim
        for rnn in self.rnns:
            rnn.build((None, None, width))
            width = self.units
        self.head.build((None, None, self.units))
        self.built = True

    def initial_state(self, batch_size=1):
        """The zero state ``float32 [batch_size, depth * units]`` (NumPy)."""
        return np.zeros((batch_size, self.state_size), "float32")

    def _split(self, state):
        u = self.units
        return [state[:, i * u:(i + 1) * u] for i in range(self.depth)]

    def sequence(self, ids, state=None, training=False):
        """``(logits [batch, time, V], final state [batch, depth*units])`` for ``ids``,
        starting from ``state`` (``None``: zeros)."""
        x = self.embedding(ids)
        states = [None] * self.depth if state is None else self._split(state)
        finals = []
        for rnn, drop, s in zip(self.rnns, self.drops, states):
            x, h = rnn(x, initial_state=None if s is None else [s], training=training)
            finals.append(h)
            x = drop(x, training=training)
        return self.head(x), ops.concatenate(finals, axis=-1)

    def call(self, ids, training=False):
        return self.sequence(ids, None, training=training)[0]

    def step(self, ids, state):
        """One character: ``ids int [batch]``, ``state [batch, depth*units]`` ->
        ``(logits [batch, V], state)``. The cells are called directly (inference mode:
        no dropout, Li-GRU's moving statistics), exactly as the layers' loop calls them."""
        x = self.embedding(ids)
        new = []
        for rnn, s in zip(self.rnns, self._split(state)):
            x, _ = rnn.cell(x, [s], training=False)
            new.append(x)
        return self.head(x), ops.concatenate(new, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.vocabulary_size)

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary,
                "embedding_dim": self.embedding_dim, "units": self.units, "depth": self.depth,
                "variant": self.variant, "dropout": self.dropout_rate}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _Runner(keras.Model):
    """A compiled view of :meth:`CharLM.step` or :meth:`CharLM.sequence`, run with
    ``predict_on_batch`` (jit on JAX, ``tf.function`` on TensorFlow, eager on PyTorch).
    Shares the language model's variables; never saved."""

    def __init__(self, lm, method):
        super().__init__(name=f"char_lm_{method}")
        self.lm, self.method = lm, method

    def call(self, inputs):
        ids, state = inputs
        if self.method == "step":
            logits, state = self.lm.step(ids, state)
        else:
            logits, state = self.lm.sequence(ids, state, training=False)
        return {"logits": logits, "state": state}


def _runner(model, method):
    cache = model.__dict__.setdefault("_char_lm_runners", {})
    if method not in cache:
        cache[method] = _Runner(model, method)
    runner = cache[method]

    def run(ids, state):
        out = runner.predict_on_batch([ids, state])
        return np.asarray(out["logits"]), np.asarray(out["state"], dtype="float32")

    return run


# ================================================================ vocabulary
def build_vocabulary(text):
    """The sorted distinct characters of ``text``.

    Example:
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
        >>> encode("aXb", "ab", unknown="skip")
        array([0, 1], dtype=int32)
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


# ================================================================== sampling
def _mul32(x, c):
    """``(x * c) mod 2**32`` for ``x < 2**32`` and a constant ``c < 2**32``, with products
    below 2**49 (the same expression runs on int64 tensors in the SavedModel)."""
    return ((x * (c & 0xFFFF)) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _M32


def uniform(seed, position):
    """The uniform number in ``[0, 1)`` that draws the character at ``position`` (0 = the
    first generated one) for ``seed``: a 32-bit integer hash (``lowbias32``) of the two.

    Example:
        >>> uniform(1, 0) == uniform(1, 0) != uniform(2, 0)
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


class _RandomWindows(keras.utils.PyDataset):
    """``steps`` batches of ``batch`` random windows ``(x [batch, L], y [batch, L])`` per
    epoch, ``y`` shifted by one; the offsets of epoch ``e`` come from ``seed`` and ``e``."""

    def __init__(self, ids, seq_len, batch, steps, seed=0):
        super().__init__()
        if len(ids) < seq_len + 2:
            raise ValueError(f"char-lm: {len(ids)} training characters are too few for "
                             f"windows of {seq_len}.")
        self.ids, self.seq_len, self.batch, self.steps, self.seed = ids, seq_len, batch, steps, seed
        self.epoch = 0
        self._offsets = self._draw()

    def _draw(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        return rng.integers(0, len(self.ids) - self.seq_len - 1, (self.steps, self.batch))

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        idx = self._offsets[index][:, None] + np.arange(self.seq_len + 1)
        w = self.ids[idx]
        return w[:, :-1], w[:, 1:]

    def on_epoch_end(self):
        self.epoch += 1
        self._offsets = self._draw()


class _StridedWindows(keras.utils.PyDataset):
    """Non-overlapping windows of ``seq_len`` (validation loss during training)."""

    def __init__(self, ids, seq_len, batch):
        super().__init__()
        n = (len(ids) - 1) // seq_len
        if n < 1:
            raise ValueError(f"char-lm: {len(ids)} validation characters are too few for "
                             f"windows of {seq_len}.")
        self.x = ids[:n * seq_len].reshape(n, seq_len)
        self.y = ids[1:n * seq_len + 1].reshape(n, seq_len)
        self.batch = batch

    def __len__(self):
        return math.ceil(len(self.x) / self.batch)

    def __getitem__(self, index):
        s = slice(index * self.batch, (index + 1) * self.batch)
        return self.x[s], self.y[s]


def stream_loss(model, ids, streams=1, window=256):
    """Mean cross-entropy (nats) of predicting ``ids[1:]`` from the text before each one,
    the text read as ``streams`` contiguous pieces in windows of ``window`` characters
    with the state carried across windows. Returns ``(loss, characters)``."""
    x, y = ids[:-1], ids[1:]
    n = len(x)
    if n < 1:
        raise ValueError("char-lm: need at least 2 characters to evaluate.")
    per = math.ceil(n / streams / window) * window
    pad = streams * per - n
    X = np.concatenate([x, np.zeros(pad, np.int32)]).reshape(streams, per)
    Y = np.concatenate([y, np.zeros(pad, np.int32)]).reshape(streams, per)
    W = np.concatenate([np.ones(n), np.zeros(pad)]).reshape(streams, per)
    run = _runner(model, "sequence")
    state = model.initial_state(streams)
    total = 0.0
    for i in range(0, per, window):
        logits, state = run(X[:, i:i + window], state)
        z = np.asarray(logits, np.float64)
        zmax = z.max(-1, keepdims=True)
        lse = np.log(np.exp(z - zmax).sum(-1)) + zmax[..., 0]
        picked = np.take_along_axis(z, Y[:, i:i + window, None], -1)[..., 0]
        total += float(((lse - picked) * W[:, i:i + window]).sum())
    return total / n, n


# ==================================================================== recipe
class CharLanguageModel(ZooModel):
    """The ``char-lm`` recipe: Tiny Shakespeare character language model on grukit layers.

    Data: :func:`grukit.datasets.load_tiny_shakespeare` (``train``: first 90%,
    ``validation``: last 10%; ``test`` = validation). Hyperparameters:
    ``zoo/char_lm/hparams.json``. ``max_train_chars`` (training windows),
    ``max_val_chars`` (Keras's ``val_loss`` during training and search) and
    ``max_eval_chars`` (the reported evaluation) cut the splits (0 = all).

    Example:
        >>> lm = grukit.zoo.get("char-lm")
        >>> data = lm.load_data(data_dir="/work/shared/data")
        >>> result = lm.train(lm.hparams(quick=True), data, "runs/char-lm", quick=True)
        >>> lm.predict(result.model, "ROMEO:", length=100, temperature=0.8, seed=1)
    """

    name = "char-lm"
    description = "Tiny Shakespeare character language model: embedding -> grukit layers -> next char"
    objective = "val_loss"
    direction = "min"

    # ------------------------------------------------------------- data
    def load_data(self, data_dir=None, path=None, **options):
        """:class:`CharData` from ``path`` (an ``input.txt``) or ``data_dir`` /
        ``$GRUKIT_DATA_DIR`` (``tinyshakespeare/input.txt``) / tensorflow-datasets."""
        if options:
            raise TypeError(f"char-lm: unknown data options {sorted(options)}; expected path.")
        return CharData(data_dir=data_dir, path=path)

    def data_files(self, data):
        return [data.source] if data.source is not None and data.source.is_file() else []

    def preprocessing(self, data, hparams):
        return {"vocabulary": data.vocabulary, "vocabulary_asset": "vocabulary.json",
                "unknown": "prompt characters outside the vocabulary: error (default) or "
                           "skipped (unknown='skip'); the SavedModel skips them",
                "empty_prompt": "read as a single newline",
                "splits": {"train": len(data.text["train"]),
                           "validation": len(data.text["validation"])},
                "evaluation": {"streams": hparams["eval_streams"],
                               "window": hparams["eval_window"], "state": "carried"}}

    def assets(self, data, hparams):
        return {"vocabulary.json": json.dumps({"vocabulary": data.vocabulary,
                                               "ids": "id i is vocabulary[i]"}) + "\n"}

    def dataset(self, data, hparams, split, training=False):
        L, batch = hparams["seq_len"], hparams["batch_size"]
        if split == "train":
            ids = data.ids("train", hparams.get("max_train_chars", 0))
            if training:
                return _RandomWindows(ids, L, batch, hparams["steps_per_epoch"],
                                      seed=hparams.get("data_seed", 0))
            return _StridedWindows(ids, L, batch)
        return _StridedWindows(data.ids(split, hparams.get("max_val_chars", 0)), L,
                               max(batch, 128))

    # ------------------------------------------------------ hyperparameters
    def search_space(self, hp, hparams, quick=False):
        """Variant (gru, mgu, mgu2, ligru, mingru), width, depth, dropout, window length and
        learning rate."""
        if quick:
            return {
                "variant": hp.Choice("variant", ["gru", "mgu", "ligru", "mingru"]),
                "units": hp.Choice("units", [16, 32]),
                "depth": hp.Choice("depth", [1, 2]),
                "dropout": hp.Choice("dropout", [0.0, 0.1]),
                "seq_len": hp.Choice("seq_len", [32, 64]),
                "learning_rate": hp.Float("learning_rate", 2e-3, 1e-2, sampling="log"),
            }
        return {
            "variant": hp.Choice("variant", SEARCH_VARIANTS),
            "units": hp.Choice("units", [256, 384, 512]),
            "depth": hp.Choice("depth", [2, 3]),
            "dropout": hp.Choice("dropout", [0.0, 0.1, 0.2]),
            "seq_len": hp.Choice("seq_len", [128, 192, 256]),
            "learning_rate": hp.Float("learning_rate", 1e-3, 5e-3, sampling="log"),
        }

    def validate_hparams(self, hparams):
        super().validate_hparams(hparams)
        for key in ("depth", "embedding_dim", "seq_len", "steps_per_epoch", "eval_streams",
                    "eval_window"):
            value = hparams.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"char-lm: {key} must be a positive integer; got {value!r}.")
        for key in ("max_train_chars", "max_val_chars", "max_eval_chars", "data_seed"):
            value = hparams.get(key, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"char-lm: {key} must be a non-negative integer (0 = all); "
                                 f"got {value!r}.")
        for key in ("dropout",):
            value = hparams.get(key, 0.0)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and 0 <= value < 1):
                raise ValueError(f"char-lm: {key} must be in [0, 1); got {value!r}.")
        value = hparams.get("min_lr_ratio", 1.0)
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1):
            raise ValueError(f"char-lm: min_lr_ratio must be in [0, 1] (1: constant rate); "
                             f"got {value!r}.")
        clip = hparams.get("clipnorm", 0)
        if not (isinstance(clip, (int, float)) and not isinstance(clip, bool) and clip >= 0):
            raise ValueError(f"char-lm: clipnorm must be >= 0 (0: none); got {clip!r}.")

    # ------------------------------------------------------------ model
    def build(self, hparams, data):
        model = CharLM(data.vocabulary, embedding_dim=hparams["embedding_dim"],
                       units=hparams["units"], depth=hparams["depth"],
                       variant=hparams["variant"], dropout=hparams["dropout"], name="char_lm")
        model.build((None, hparams["seq_len"]))
        lr = hparams["learning_rate"]
        ratio = hparams.get("min_lr_ratio", 1.0)
        if ratio < 1:
            lr = keras.optimizers.schedules.CosineDecay(
                lr, decay_steps=hparams["epochs"] * hparams["steps_per_epoch"], alpha=ratio)
        optimizer = keras.optimizers.Adam(lr, clipnorm=hparams.get("clipnorm") or None)
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    def evaluate(self, model, data, hparams, split="test"):
        """Nats and bits per character over the whole split with the state carried (see the
        module docstring); ``split="test"`` is the validation text."""
        ids = data.ids(split, hparams.get("max_eval_chars", 0))
        loss, n = stream_loss(model, ids, hparams["eval_streams"], hparams["eval_window"])
        return {"loss": loss, "bpc": loss / math.log(2), "characters": n}

    # ---------------------------------------------------------- serving
    def serving(self, model, preset):
        """The SavedModel's generation function: ``generate(prompt tf.string [], length
        int32 [], temperature float32 [], top_k int32 [], seed int64 []) -> tf.string []``
        (the new text). See :meth:`export` for the ``step`` signature."""
        import tensorflow as tf

        return _tf_generate(model), [
            tf.TensorSpec([], tf.string, name="prompt"),
            tf.TensorSpec([], tf.int32, name="length"),
            tf.TensorSpec([], tf.float32, name="temperature"),
            tf.TensorSpec([], tf.int32, name="top_k"),
            tf.TensorSpec([], tf.int64, name="seed")]

    def serving_sample(self, preset):
        """Generation requests ``(prompt, length, temperature, top_k, seed)`` the export is
        verified on, against :meth:`predict`."""
        return [("ROMEO:", 120, 0.8, 0, 1), ("ROMEO:", 60, 0.0, 0, 0),
                ("", 40, 1.0, 5, 7), ("Zebra \u00e9t\u00e9 ~ caf\u00e9", 40, 0.5, 0, 3)]

    def predict(self, model, inputs, preset=None, length=500, temperature=1.0, top_k=0, seed=0,
                unknown="error"):
        """Generate text after a prompt (or after each of several prompts).

        Args:
            model: a loaded preset (``grukit.zoo.load("char-lm")``) or a :class:`CharLM`.
            inputs: a prompt ``str`` (UTF-8 ``bytes`` accepted), or a list of them.
            preset: unused (the vocabulary is part of the model).
            length, temperature, top_k, seed, unknown: see :func:`generate`.

        Returns:
            The generated text (without the prompt); a list of them for a list of prompts.

        Raises:
            ValueError: see :func:`generate`.

        Example:
            >>> lm.predict(model, "ROMEO:", length=100, temperature=0.8, seed=1)
        """
        if isinstance(inputs, (str, bytes, bytearray, np.str_, np.bytes_)):
            return generate(model, inputs, length, temperature, top_k, seed, unknown)
        if isinstance(inputs, np.ndarray) and inputs.ndim != 1:
            raise ValueError(f"char-lm: expected a prompt or a 1-D list of prompts; got an "
                             f"array of shape {inputs.shape}.")
        try:
            prompts = list(inputs)
        except TypeError:
            raise ValueError(f"char-lm: expected a prompt (str) or a list of prompts; got "
                             f"{type(inputs).__name__}.") from None
        return [generate(model, p, length, temperature, top_k, seed, unknown) for p in prompts]

    # ----------------------------------------------------------- export
    def export_endpoints(self, model, preset):
        """Two signatures (``tf.saved_model.load(out)``), written and verified by the
        shared :meth:`ZooModel.export`:

        * ``generate(prompt, length, temperature, top_k, seed) -> text`` (all scalars:
          ``tf.string``, ``int32``, ``float32``, ``int32``, ``int64``); the same
          text as :meth:`predict` for the same arguments; prompt characters outside the
          vocabulary are dropped, an empty prompt is read as a newline; a negative or
          too large length, a negative/non-finite temperature or a negative top_k
          fail with ``InvalidArgumentError`` naming the argument.
        * ``step(ids int32 [batch], state float32 [batch, depth*units]) ->
          {"logits": [batch, V], "state": [batch, depth*units]}``: one character;
          start from zeros (see the model card for the loop).
        """
        import tensorflow as tf

        fn, signature = self.serving(model, preset)
        step_signature = [tf.TensorSpec([None], tf.int32, name="ids"),
                          tf.TensorSpec([None, model.state_size], tf.float32, name="state")]
        return [("generate", fn, signature), ("step", _tf_step(model), step_signature)]

    def export_extras(self, model, extra_dir):
        """``assets.extra/vocabulary.json``: the vocabulary and state size a loop needs."""
        (extra_dir / "vocabulary.json").write_text(json.dumps(
            {"vocabulary": model.vocabulary, "state_size": model.state_size,
             "start": START, "ids": "id i is vocabulary[i]"}) + "\n")

    def verify_export(self, model, path, verbose=True):
        """Every :meth:`serving_sample` request through ``generate`` in a fresh process
        without grukit must give :meth:`predict`'s text exactly, and ``step`` must match
        :meth:`CharLM.step` (1e-4)."""
        requests = self.serving_sample(model.zoo_preset)
        expected = [generate(model, p, n, t, k, s, unknown="skip") for p, n, t, k, s in requests]
        rng = np.random.default_rng(0)
        ids = rng.integers(0, model.vocabulary_size, 3).astype("int32")
        state = (rng.standard_normal((3, model.state_size)) * 0.5).astype("float32")
        logits, new_state = _runner(model, "step")(ids, state)
        served = _run_fresh(path, requests, ids, state)
        for (p, n, t, k, s), want, got in zip(requests, expected, served["texts"]):
            if want != got:
                raise RuntimeError(
                    f"exported SavedModel generates other text than predict() for prompt "
                    f"{p!r}, length {n}, temperature {t}, top_k {k}, seed {s}:\n"
                    f"  predict: {want!r}\n  export:  {got!r}")
        err = max(float(np.abs(served["logits"] - logits).max()),
                  float(np.abs(served["state"] - new_state).max()))
        if not err <= 1e-4 * max(1.0, float(np.abs(logits).max())):
            raise RuntimeError(f"exported step signature disagrees with CharLM.step (max "
                               f"difference {err}).")
        if verbose:
            print(f"verified: SavedModel loaded without grukit generates the same text as "
                  f"predict() for {len(requests)} requests; step max |diff| {err:.2e}",
                  flush=True)

    # -------------------------------------------------------------- CLI
    def add_arguments(self, parser, command):
        if command in ("train", "tune", "evaluate"):
            parser.add_argument("--data", metavar="FILE",
                                help="the Tiny Shakespeare input.txt (default: "
                                     "tinyshakespeare/input.txt under --data-dir / "
                                     "$GRUKIT_DATA_DIR, else tensorflow-datasets)")
        if command == "predict":
            parser.add_argument("--prompt", default="", metavar="TEXT",
                                help="text to continue (default: empty, read as a newline)")
            parser.add_argument("--prompt-file", metavar="FILE",
                                help="read the prompt from FILE ('-': standard input)")
            parser.add_argument("--length", type=int, default=500, metavar="N",
                                help=f"characters to generate (0..{MAX_LENGTH}; default 500)")
            parser.add_argument("--temperature", type=float, default=0.8, metavar="T",
                                help="sampling temperature >= 0 (0: greedy; default 0.8)")
            parser.add_argument("--top-k", type=int, default=0, metavar="K",
                                help="sample among the K most likely characters (0: all)")
            parser.add_argument("--seed", type=int, default=0, metavar="S",
                                help="random seed >= 0 (same seed, same text; default 0)")
            parser.add_argument("--unknown", choices=UNKNOWN, default="error",
                                help="prompt characters outside the vocabulary: error "
                                     "(default) or skip them")
            parser.add_argument("--no-prompt", action="store_true",
                                help="print only the generated text, not the prompt before it")

    def options_from_args(self, args, command):
        return ({"path": args.data} if getattr(args, "data", None) else {}), {}

    def run_predict(self, model, args, load_data):
        prompt = args.prompt
        if args.prompt_file:
            if args.prompt_file == "-":
                raw = sys.stdin.buffer.read()
            else:
                with open(args.prompt_file, "rb") as f:
                    raw = f.read()
            prompt = raw.decode("utf-8", errors="replace")
        timings = {}
        text = generate(model, prompt, args.length, args.temperature, args.top_k, args.seed,
                        args.unknown, timings=timings)
        sys.stdout.write(("" if args.no_prompt else prompt) + text + "\n")
        sys.stdout.flush()
        rate = timings.get("chars_per_s")
        print(f"[char-lm] {args.length} characters in {timings['generate_s']:.2f} s"
              f"{f' ({rate:,.0f} characters/s)' if rate else ''} after a {len(prompt)}-character "
              f"prompt ({timings['prompt_s']:.2f} s); backend {keras.backend.backend()}, "
              f"temperature {args.temperature}, top-k {args.top_k}, seed {args.seed}",
              file=sys.stderr)
        return 0


# =============================================================== TF serving
def _tf_uniform(seed, position):
    import tensorflow as tf

    def mul32(x, c):
        lo = x * tf.constant(c & 0xFFFF, tf.int64)
        hi = tf.bitwise.left_shift(
            tf.bitwise.bitwise_and(x * tf.constant(c >> 16, tf.int64), 0xFFFF), 16)
        return tf.bitwise.bitwise_and(lo + hi, _M32)

    def xorshift(x, k):
        return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, k))

    s = tf.bitwise.bitwise_and(tf.cast(seed, tf.int64), _M32)
    p = tf.bitwise.bitwise_and(tf.cast(position, tf.int64) + 1, _M32)
    x = tf.bitwise.bitwise_xor(mul32(s, 0x9E3779B9), mul32(p, 0x85EBCA6B))
    x = mul32(xorshift(x, 16), 0x7FEB352D)
    x = mul32(xorshift(x, 15), 0x846CA68B)
    x = xorshift(x, 16)
    return tf.cast(tf.bitwise.right_shift(x, 8), tf.float64) * (1.0 / (1 << 24))


def _tf_sample(logits, temperature, top_k, u, vocab_size):
    import tensorflow as tf

    z = tf.cast(logits, tf.float64)
    greedy = tf.argmax(z, output_type=tf.int32)
    t = tf.cast(temperature, tf.float64)
    zt = z / tf.where(t > 0, t, tf.constant(1.0, tf.float64))
    k = tf.where((top_k > 0) & (top_k < vocab_size), top_k, vocab_size)
    kth = tf.math.top_k(zt, k).values[k - 1]
    zt = tf.where(zt >= kth, zt, tf.constant(-np.inf, tf.float64))
    p = tf.exp(zt - tf.reduce_max(zt))
    cdf = tf.cumsum(p)
    idx = tf.reduce_sum(tf.cast(cdf <= u * cdf[-1], tf.int32))
    idx = tf.minimum(idx, vocab_size - 1)
    return tf.where(t > 0, idx, greedy)


def _tf_step(model):
    def step(ids, state):
        logits, new = model.step(ids, state)
        return {"logits": logits, "state": new}

    return step


def _tf_generate(model):
    """The SavedModel's ``generate``: the same reading, stepping and sampling as
    :func:`generate`, in TensorFlow ops (string decoding, ``tf.while_loop``)."""
    import tensorflow as tf

    vocab = _codepoints(model.vocabulary).astype(np.int64)
    lut = np.full(int(vocab.max()) + 1, -1, np.int32)
    lut[vocab] = np.arange(len(vocab), dtype=np.int32)
    lut_t = tf.constant(lut)
    vocab_t = tf.constant(vocab.astype(np.int32))
    V, S = model.vocabulary_size, model.state_size
    start = _start_id(model.vocabulary)

    def fn(prompt, length, temperature, top_k, seed):
        checks = [
            tf.debugging.assert_greater_equal(length, 0, message="char-lm: length must be >= 0"),
            tf.debugging.assert_less_equal(length, MAX_LENGTH,
                                           message=f"char-lm: length must be <= {MAX_LENGTH}"),
            tf.debugging.assert_greater_equal(temperature, 0.0,
                                              message="char-lm: temperature must be a finite "
                                                      "number >= 0 (0: greedy)"),
            tf.debugging.assert_all_finite(temperature, "char-lm: temperature must be a finite "
                                                        "number >= 0 (0: greedy)"),
            tf.debugging.assert_greater_equal(top_k, 0,
                                              message="char-lm: top_k must be >= 0 (0: all)"),
            tf.debugging.assert_greater_equal(seed, tf.constant(0, tf.int64),
                                              message="char-lm: seed must be >= 0"),
        ]
        with tf.control_dependencies(checks):  # every use of the arguments waits for the checks
            cps = tf.strings.unicode_decode(prompt, "UTF-8", errors="replace")
            length, temperature = tf.identity(length), tf.identity(temperature)
            top_k, seed = tf.identity(top_k), tf.identity(seed)
        known = cps < lut.shape[0]
        ids = tf.where(known, tf.gather(lut_t, tf.minimum(cps, lut.shape[0] - 1)), -1)
        ids = tf.boolean_mask(ids, ids >= 0)
        ids = tf.cond(tf.size(ids) > 0, lambda: ids, lambda: tf.constant([start], tf.int32))
        n = tf.size(ids)

        def read(i, state, logits):
            logits, state = model.step(tf.reshape(ids[i], [1]), state)
            return i + 1, state, logits

        _, state, logits = tf.while_loop(
            lambda i, *_: i < n, read,
            (tf.constant(0), tf.zeros([1, S]), tf.zeros([1, V])),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([1, S]),
                              tf.TensorShape([1, V])))

        def write(t, state, logits, out):
            u = _tf_uniform(seed, t)
            nxt = _tf_sample(logits[0], temperature, top_k, u, V)
            out = out.write(t, nxt)
            logits, state = tf.cond(
                t + 1 < length, lambda: model.step(tf.reshape(nxt, [1]), state),
                lambda: (logits, state))
            return t + 1, state, logits, out

        _, _, _, out = tf.while_loop(
            lambda t, *_: t < length, write,
            (tf.constant(0), state, logits, tf.TensorArray(tf.int32, size=length)),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([1, S]), tf.TensorShape([1, V]),
                              tf.TensorShape(None)))
        chars = tf.gather(vocab_t, out.stack())
        return tf.strings.unicode_encode(chars, "UTF-8")

    return fn


_VERIFY = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    served = tf.saved_model.load(sys.argv[1])
    with open(sys.argv[2]) as f:
        requests = json.load(f)
    texts = []
    for prompt, length, temperature, top_k, seed in requests:
        y = served.generate(tf.constant(prompt), tf.constant(length, tf.int32),
                            tf.constant(temperature, tf.float32), tf.constant(top_k, tf.int32),
                            tf.constant(seed, tf.int64))
        texts.append(y.numpy().decode("utf-8"))
    x = np.load(sys.argv[3])
    out = served.step(tf.constant(x["ids"]), tf.constant(x["state"]))
    np.savez(sys.argv[4], logits=out["logits"].numpy(), state=out["state"].numpy())
    with open(sys.argv[5], "w") as f:
        json.dump(texts, f)
    if "grukit" in sys.modules:
        raise SystemExit("loading the SavedModel imported grukit")
""")


def _run_fresh(path, requests, ids, state, timeout=600):
    """Run the SavedModel's two signatures in a fresh Python that does not import grukit."""
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        (work / "requests.json").write_text(json.dumps(requests))
        np.savez(work / "x.npz", ids=ids, state=state)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
        proc = subprocess.run(
            [sys.executable, "-c", _VERIFY, str(Path(path).resolve()), str(work / "requests.json"),
             str(work / "x.npz"), str(work / "y.npz"), str(work / "texts.json")],
            cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"the exported SavedModel failed to load/serve in a fresh "
                               f"process (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        y = np.load(work / "y.npz")
        return {"texts": json.loads((work / "texts.json").read_text()),
                "logits": y["logits"], "state": y["state"]}
