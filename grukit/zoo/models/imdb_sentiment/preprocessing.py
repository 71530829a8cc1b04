"""Review text to token ids: the tokenizer inside the model and the preset.

The tokenizer has two implementations with the same results: pure Python
(:meth:`ReviewTokenizer.encode`, used for training, evaluation and
:meth:`ImdbSentiment.predict` on every backend, so the preset needs no
TensorFlow) and TensorFlow string ops (:meth:`ReviewTokenizer.tf_encode`, used
only by the exported SavedModel, whose ``serve`` signature takes raw strings).
"""

from __future__ import annotations

import re

import keras
import numpy as np


TOKENIZER = "grukit-imdb-tokenizer/1"
TRUNCATE = ("pre", "post", "both")
PAD, OOV = "", "[UNK]"

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
        >>> from grukit.zoo.models.imdb_sentiment.preprocessing import tokenize
        >>> tokenize("Don't miss it!<br /><br />A GREAT film, Amélie-like.")
        ['dont', 'miss', 'it', '!', 'a', 'great', 'film', 'amélie', 'like']
    """
    text = to_text(text).translate(_LOWER)
    text = _BR.sub(" ", text).replace("'", "")
    text = _SEPARATORS.sub(" ", _MARKS.sub(r" \1 ", text))
    return [t for t in text.split(" ") if t]


_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s|<br */?>|$)|<br */?>")
_LEADING = re.compile(r"^(?:\s|<br */?>)+")
_WORD = re.compile(r"[^\W_]")
#: Words whose full stop does not end a sentence (besides single capitals: initials).
_ABBREVIATIONS = frozenset("mr mrs ms dr st jr sr vs etc prof mt no vol".split())
_LAST_WORD = re.compile(r"([^\W\d_]+)$")


def first_sentence(text):
    """The first sentence of a review: the text up to the first run of ``.``, ``!`` or
    ``?`` (with closing quotes or brackets) that is followed by whitespace, a ``<br />``
    tag or the end, or up to the first ``<br />`` tag, whichever comes first, once it holds
    a word character; the whole review (stripped) when there is no such end.

    A plain rule, not a sentence parser: a single full stop after an initial or a common
    abbreviation (``"J. Smith"``, ``"Mr. Smith"``, ``"vs."``) does not end a sentence, nor
    does a decimal point (``"3.5/10"``); other abbreviations do. Leading whitespace and
    ``<br />`` tags are dropped. ``bytes`` are decoded as by :func:`to_text`.

    Example:
        >>> from grukit.zoo.models.imdb_sentiment.preprocessing import first_sentence
        >>> first_sentence("<br />What a film!! I rated it 9.5/10. Go.")
        'What a film!!'
        >>> first_sentence("... Well. Not bad")
        '... Well.'
        >>> first_sentence("Loved it<br /><br />The end")
        'Loved it'
        >>> first_sentence("no full stop at all ")
        'no full stop at all'
        >>> first_sentence("Mr. Smith and J. Doe star. Skip it.")
        'Mr. Smith and J. Doe star.'
    """
    text = _LEADING.sub("", to_text(text))
    for match in _SENTENCE_END.finditer(text):
        if match.group() == ".":
            word = _LAST_WORD.search(text, 0, match.start())
            if word and (len(word.group()) == 1 and word.group().isupper()
                         or word.group().lower() in _ABBREVIATIONS):
                continue
        if _WORD.search(text, 0, match.start()):
            end = match.start() if match.group().startswith("<") else match.end()
            return text[:end].rstrip()
    return text.rstrip()


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
        >>> from grukit.zoo.models.imdb_sentiment.preprocessing import ReviewTokenizer
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
