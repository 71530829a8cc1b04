"""Character language model on Tiny Shakespeare: characters in, next-character distribution out.

The model (:class:`CharLM`), for a batch of character ids ``[batch, time]``:

1. ``Embedding(vocabulary, embedding_dim)``;
2. ``depth`` stacked grukit recurrent layers (``variant``, ``units``), each
   returning its sequence and its final state, with ``Dropout`` after each;
3. ``Dense(vocabulary)``: the logits of the next character at every position.

Evaluation (:meth:`CharLanguageModel.evaluate`, the model card's figure): the
whole validation split (the last 10%, 111,540 characters) read as
``eval_streams`` contiguous streams (default 1: the text in order) in windows
of ``eval_window`` characters with the recurrent state carried from window to
window, so each character is predicted from everything before it in the split.
Every character but the first (which has no context) is a target: 111,539
targets. ``loss`` is the mean cross-entropy in nats per character, ``bpc`` the
same in bits (``loss / ln 2``). The data set has no separate test split;
``split="test"`` is the same validation text (documented in the model card).
"""

from __future__ import annotations

import math

import keras
from keras import ops
import numpy as np

import grukit
from grukit.variants import get_variant


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
        >>> import numpy as np
        >>> from grukit.zoo.models.char_lm.model import CharLM
        >>> m = CharLM("\\n abc", units=16, depth=2, variant="mgu")
        >>> tuple(m(np.zeros((2, 7), "int32")).shape)
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
