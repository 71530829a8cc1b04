"""The SavedModel's TensorFlow graph: one step, whole-prompt generation, and its check."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys
import textwrap

import numpy as np

from .generation import _M32, MAX_LENGTH
from .preprocessing import _codepoints, _start_id


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
