"""The char-lm zoo model: vocabulary and sampling, quick training and preset round trip,
step-by-step generation (equal to the full-sequence logits, deterministic per seed, constant
work per character), the carried-state evaluation, bad inputs, the CLI and (TensorFlow pass
only) the generating SavedModel, verified in a fresh process.

Needs Tiny Shakespeare ($GRUKIT_DATA_DIR/tinyshakespeare/input.txt); skipped without it.
One tiny model is trained per backend on a slice of the text (seconds).
"""
import json
import math
import os

import numpy as np
import pytest
import keras

import grukit.zoo as zoo
from grukit.zoo.base import set_seed
from grukit.zoo.models.char_lm.generation import MAX_LENGTH, generate, sample, uniform
from grukit.zoo.models.char_lm.model import CharLM, _runner, stream_loss
from grukit.zoo.models.char_lm.preprocessing import build_vocabulary, decode, encode
from conftest import BACKEND, DATA_DIR, require_data, one_pass

#: tests without a pass of their own run once, in this pass (conftest.py)
ONE_PASS = one_pass("torch", "jax", "tensorflow", why="zoo behaviour, on one backend")

TEXT = os.path.join(DATA_DIR, "tinyshakespeare", "input.txt")
needs_data = pytest.mark.needs_data(TEXT)

TINY = {"variant": "mgu", "units": 16, "depth": 2, "embedding_dim": 8, "seq_len": 32,
        "batch_size": 16, "epochs": 1, "steps_per_epoch": 6, "max_train_chars": 20000,
        "max_val_chars": 3000, "max_eval_chars": 3000, "eval_window": 64, "learning_rate": 0.01}
VOCAB = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@pytest.fixture(scope="module")
def lm():
    return zoo.get("char-lm")


@pytest.fixture(scope="module")
def data(lm):
    require_data(TEXT)
    return lm.load_data(data_dir=DATA_DIR)


@pytest.fixture(scope="module")
def trained(lm, data, tmp_path_factory):
    hp = lm.hparams(quick=True, overrides=TINY)
    out = tmp_path_factory.mktemp("char_lm_run")
    # training and generation need no TensorFlow on JAX and PyTorch: conftest's
    # _tensorflow_stays_out fails the test otherwise
    result = lm.train(hp, data, out, quick=True, verbose=0, command="test")
    lm.predict(result.model, "ROMEO:", length=5)
    return result, hp


def small_model(variant="gru", depth=2, units=12, vocabulary=VOCAB):
    set_seed(7)
    model = CharLM(vocabulary, embedding_dim=8, units=units, depth=depth, variant=variant)
    model.build((None, None))
    return model


# ------------------------------------------------------------ vocabulary, sampling
def test_vocabulary_and_encoding():
    assert build_vocabulary("abba\n") == "\nab"
    ids = encode("ROMEO:\n", VOCAB)
    assert ids.dtype == np.int32 and decode(ids, VOCAB) == "ROMEO:\n"
    assert list(encode("aXb", "ab", unknown="skip")) == [0, 1]
    with pytest.raises(ValueError, match=r"outside the model's 2-character vocabulary: 'X'"):
        encode("aXb", "ab")
    with pytest.raises(ValueError, match="unknown must be one of"):
        encode("ab", "ab", unknown="replace")
    # characters beyond the vocabulary's largest code point, astral ones too
    assert list(encode("a\u00e9\U0001F600b", "ab", unknown="skip")) == [0, 1]


@needs_data
def test_data_splits_and_vocabulary(data):
    assert len(data.text["train"]) == 1_003_854 and len(data.text["validation"]) == 111_540
    assert data.vocabulary == VOCAB and len(data.vocabulary) == 65
    assert len(data.ids("validation")) == 111_540 and len(data.ids("validation", 100)) == 100
    assert np.array_equal(data.ids("test"), data.ids("validation"))


@needs_data
def test_the_training_windows_follow_data_seed_plus_the_run_seed(lm, data):
    hp = lm.hparams(quick=True, overrides=TINY)

    def first(data_seed, seed):
        return lm.dataset(data, dict(hp, data_seed=data_seed), "train", training=True,
                          seed=seed)[0][0]

    assert np.array_equal(first(0, 0), lm.dataset(data, hp, "train", training=True)[0][0])
    assert not np.array_equal(first(0, 0), first(0, 1))
    assert np.array_equal(first(0, 1), first(1, 0))  # the windows' seed is the sum


def test_uniform_and_sample():
    us = [uniform(s, t) for s in range(5) for t in range(200)]
    assert all(0 <= u < 1 for u in us) and len(set(us)) > 990
    assert uniform(3, 17) == uniform(3, 17) and abs(np.mean(us) - 0.5) < 0.03
    logits = np.array([0.0, 2.0, 1.0, 2.0])
    assert sample(logits, 0, 0, 0.99) == 1                    # greedy: first of ties
    assert sample(logits, 1.0, 1, 0.99) == 3                  # top-k keeps ties
    assert sample(np.array([0.0, 2.0, 1.0, 1.5]), 1.0, 1, 0.99) == 1   # top-1: greedy
    assert sample(logits, 1.0, 0, 0.0) == 0
    assert sample(logits, 1.0, 2, 0.0) == 1                   # top-2 masks 0 and 2
    assert sample(logits, 1.0, 99, 0.999999) == 3             # top_k > V: all
    rng = np.random.default_rng(0)
    draws = [sample(np.log([0.2, 0.5, 0.3]), 1.0, 0, u) for u in rng.random(4000)]
    assert np.allclose(np.bincount(draws, minlength=3) / 4000, [0.2, 0.5, 0.3], atol=0.03)


# --------------------------------------------------------------- model and steps
@pytest.mark.parametrize("variant", ["gru", "mgu", "ligru", "mingru"])
def test_step_by_step_equals_full_sequence(variant):
    model = small_model(variant)
    ids = encode("ROMEO:\nWhat light through yonder window breaks?", VOCAB)
    full = keras.ops.convert_to_numpy(model(ids[None]))[0]
    run = _runner(model, "step")
    state, steps = model.initial_state(1), []
    for i in ids:
        logits, state = run(np.array([i], np.int32), state)
        steps.append(logits[0])
    np.testing.assert_allclose(np.stack(steps), full, atol=1e-5, rtol=1e-5)
    # the carried state equals the layers' final states, and sequence() resumes from it
    fwd_logits, fwd_state = _runner(model, "sequence")(ids[None, :20], model.initial_state(1))
    rest, _ = _runner(model, "sequence")(ids[None, 20:], fwd_state)
    np.testing.assert_allclose(np.concatenate([fwd_logits, rest], 1)[0], full, atol=1e-5)


def test_stream_loss_equals_one_long_window():
    """The carried-state evaluation counts every character once and equals reading the
    whole text in one window."""
    model = small_model("gru")
    ids = np.random.default_rng(1).integers(0, 65, 301).astype(np.int32)
    loss, n = stream_loss(model, ids, streams=1, window=64)
    logits = keras.ops.convert_to_numpy(model(ids[None, :-1]))[0].astype(np.float64)
    lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    ref = np.mean(lse - logits[np.arange(300), ids[1:]])
    assert n == 300 and abs(loss - ref) < 1e-5
    loss3, n3 = stream_loss(model, ids, streams=3, window=16)
    assert n3 == 300 and abs(loss3 - ref) < 0.05


def test_generation_is_stepwise_and_deterministic(monkeypatch):
    model = small_model("mgu")
    a = generate(model, "ROMEO:", 60, temperature=0.8, seed=1)
    assert len(a) == 60 and set(a) <= set(VOCAB)
    assert generate(model, "ROMEO:", 60, temperature=0.8, seed=1) == a
    assert generate(model, "ROMEO:", 60, temperature=0.8, seed=2) != a
    assert generate(model, "ROMEO:", 25, temperature=0.8, seed=1) == a[:25]
    greedy = generate(model, "ROMEO:", 30, temperature=0)
    assert greedy == generate(model, "ROMEO:", 30, temperature=0, seed=9)
    assert greedy == generate(model, "ROMEO:", 30, temperature=0.7, top_k=1, seed=3)
    # constant work per character: one single-character step per prompt character and
    # per generated character after the first; the prefix is never re-run
    calls = []
    real = _runner

    def counting(m, method):
        run = real(m, method)

        def wrapped(ids, state):
            calls.append(np.shape(ids))
            return run(ids, state)
        return wrapped

    monkeypatch.setattr("grukit.zoo.models.char_lm.generation._runner", counting)
    generate(model, "ROMEO:", 40, temperature=1.0, seed=4)
    assert calls == [(1,)] * (6 + 40 - 1)


def test_generation_bad_inputs():
    model = small_model("gru")
    with pytest.raises(ValueError, match=r"2 character\(s\) outside .*'~é'.*unknown='skip'"):
        generate(model, "ROMEO~é:", 10)
    assert generate(model, "ROMEO~é:", 10, seed=1, unknown="skip") == \
        generate(model, "ROMEO:", 10, seed=1)
    # empty prompt (or only skipped characters): generated as if after a newline
    assert generate(model, "", 20, seed=3) == generate(model, "\n", 20, seed=3)
    assert generate(model, "~~", 20, seed=3, unknown="skip") == \
        generate(model, "\n", 20, seed=3)
    assert generate(model, b"ROMEO:", 10, seed=1) == generate(model, "ROMEO:", 10, seed=1)
    assert generate(model, "ROMEO:", 0) == ""
    for kwargs, message in [
            ({"length": -1}, "length must be >= 0"),
            ({"length": MAX_LENGTH + 1}, "more than the 100,000 characters"),
            ({"length": 2.5}, "length must be an integer"),
            ({"temperature": -0.1}, "temperature must be >= 0"),
            ({"temperature": float("nan")}, "finite number"),
            ({"temperature": float("inf")}, "finite number"),
            ({"temperature": "hot"}, "finite number"),
            ({"top_k": -1}, "top_k must be an integer >= 0"),
            ({"seed": -3}, "seed must be an integer >= 0"),
            ({"unknown": "ignore"}, "unknown must be one of")]:
        with pytest.raises(ValueError, match=message):
            generate(model, "ROMEO:", **{"length": 5, **kwargs})
    with pytest.raises(ValueError, match="prompt must be a string"):
        generate(model, 42, 5)
    with pytest.raises(ValueError, match="expected the char-lm model"):
        generate(keras.Sequential([keras.layers.Dense(2)]), "a", 5)


def test_predict_api(lm):
    model = small_model("gru")
    one = lm.predict(model, "ROMEO:", length=15, temperature=0.5, seed=2)
    assert isinstance(one, str) and len(one) == 15
    many = lm.predict(model, ["ROMEO:", "JULIET:"], length=15, temperature=0.5, seed=2)
    assert many[0] == one and len(many) == 2
    with pytest.raises(ValueError, match=r"1-D sequence of prompts; got an array of shape \(1, 1\)"):
        lm.predict(model, np.array([["a"]]), length=3)
    with pytest.raises(ValueError, match=r"expected a prompt \(str\) or a 1-D sequence of prompts"):
        lm.predict(model, 3, length=3)
    with pytest.raises(ValueError, match=r"got a set \(unordered\)"):
        lm.predict(model, {"ROMEO:"}, length=3)


def test_hparams_validation(lm):
    hp = lm.hparams(quick=True)
    assert hp["units"] == 32 and lm.hparams()["units"] >= 256
    for key, value in [("depth", 0), ("seq_len", -1), ("dropout", 1.0), ("min_lr_ratio", 2),
                       ("max_train_chars", -5), ("eval_window", 0), ("variant", "lstm")]:
        with pytest.raises(ValueError):
            lm.hparams(quick=True, overrides={key: value})
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        lm.hparams(overrides={"layers": 2})


# ------------------------------------------------------------- training, presets
@needs_data
def test_quick_train_and_preset_round_trip(lm, data, trained):
    result, hp = trained
    metrics = result.metrics["validation"]
    assert metrics["characters"] == 2999
    assert math.isclose(metrics["bpc"], metrics["loss"] / math.log(2))
    assert metrics["loss"] < math.log(65)                       # learned something
    assert result.metrics["test"] == metrics                    # no separate test split
    loaded = zoo.load("char-lm", preset=result.preset)
    assert isinstance(loaded, CharLM) and loaded.vocabulary == data.vocabulary
    assert (loaded.variant, loaded.units, loaded.depth) == ("mgu", 16, 2)
    ids = data.ids("validation", 80)[None]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(ids)),
                               keras.ops.convert_to_numpy(result.model(ids)), atol=1e-5)
    vocab = json.loads((result.preset / "assets" / "vocabulary.json").read_text())
    assert vocab["vocabulary"] == data.vocabulary
    meta = loaded.zoo_preset.metadata
    assert meta["preprocessing"]["vocabulary"] == data.vocabulary
    assert meta["data"]["files"][0]["name"] == "input.txt"
    again, _ = lm.evaluate_preset(result.preset, data=data, split="validation")
    assert abs(again["loss"] - metrics["loss"]) < 1e-5
    text = lm.predict(loaded, "ROMEO:", length=50, temperature=0.8, seed=1)
    assert text == lm.predict(result.model, "ROMEO:", length=50, temperature=0.8, seed=1)


@needs_data
@one_pass("jax", "torch", "tensorflow", why="one evaluation is enough")
def test_evaluate_on_another_text_uses_the_models_vocabulary(tmp_path, capsys, monkeypatch):
    """`zoo evaluate char-lm --data FILE` scores FILE with the preset's vocabulary (not one
    built from FILE, which mis-reads every id), drops characters outside it and says how
    many there were."""
    from grukit.__main__ import main

    with open(TEXT, encoding="utf-8") as f:
        text = f.read()[-20000:]
    cut = int(len(text) * 0.9)  # the file's own validation split: its last 10%
    other = text[:cut + 200] + "é#" + text[cut + 200:cut + 500] + "€" + text[cut + 500:]
    path = tmp_path / "other.txt"
    path.write_text(other, encoding="utf-8")
    monkeypatch.setenv("GRUKIT_DATA_DIR", DATA_DIR)
    assert main(["zoo", "evaluate", "char-lm", "--data", str(path), "--split",
                 "validation"]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()
            if line.split()[:1] and line.split()[0] in ("loss", "characters",
                                                        "unknown_characters")}
    assert int(float(rows["unknown_characters"][0])) == 3
    # Shakespeare read by the Shakespeare model: near the card's 1.49, far from a
    # mis-mapped vocabulary's ~9
    assert float(rows["loss"][0]) < 2.0, rows


@needs_data
def test_cli_predict_and_errors(trained, capsys, cli_log):
    # the command in this process (`python -m grukit` itself: tests/test_zoo.py's processes)
    from grukit.__main__ import main

    result, _ = trained
    argv = ["zoo", "predict", "char-lm", "--preset", str(result.preset), "--prompt", "ROMEO:",
            "--length", "40", "--temperature", "0.8", "--top-k", "0", "--seed", "1"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    expected = "ROMEO:" + zoo.get("char-lm").predict(result.model, "ROMEO:", length=40,
                                                     temperature=0.8, seed=1)
    assert out == expected + "\n"
    assert "characters/s" in err
    assert main(argv[:-8] + ["--prompt", "ROMEO~", "--temperature", "-1"]) == 2
    assert "error: char-lm: temperature must be >= 0" in capsys.readouterr().err


# ----------------------------------------------------------------------- export
@needs_data
@pytest.mark.skipif(BACKEND != "tensorflow", reason="SavedModel export: TensorFlow pass only")
def test_export_generates_like_predict(lm, trained, tmp_path):
    import tensorflow as tf

    result, _ = trained
    out = lm.export(tmp_path / "export", preset=result.preset, verbose=False)
    assert (out / "saved_model.pb").is_file()
    vocab = json.loads((out / "assets.extra" / "vocabulary.json").read_text())
    assert vocab["state_size"] == 32 and len(vocab["vocabulary"]) == 65
    served = tf.saved_model.load(str(out))

    def gen(prompt, length, temperature=0.8, top_k=0, seed=1):
        return served.generate(tf.constant(prompt), tf.constant(length, tf.int32),
                               tf.constant(temperature, tf.float32),
                               tf.constant(top_k, tf.int32),
                               tf.constant(seed, tf.int64)).numpy().decode()

    want = lm.predict(result.model, "ROMEO:", length=30, temperature=0.8, seed=1)
    assert gen("ROMEO:", 30) == want
    assert gen("RO~MEO:\u00e9", 30) == want                     # unknown characters dropped
    assert gen("", 10) == lm.predict(result.model, "\n", length=10, temperature=0.8, seed=1)
    assert gen("ROMEO:", 0) == ""
    for args, message in [(("ROMEO:", -1), "length must be >= 0"),
                          (("ROMEO:", 200_000), "length must be <="),
                          (("ROMEO:", 5, -1.0), "temperature must be a finite number >= 0"),
                          (("ROMEO:", 5, float("nan")), "temperature must be a finite number"),
                          (("ROMEO:", 5, float("inf")), "temperature must be a finite number"),
                          (("ROMEO:", 5, 1.0, -2), "top_k must be >= 0")]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            gen(*args)
    # the documented step loop
    state = np.zeros((1, vocab["state_size"]), np.float32)
    for ch in "ROMEO:":
        step = served.step(tf.constant([vocab["vocabulary"].index(ch)], tf.int32),
                           tf.constant(state))
        state = step["state"].numpy()
    ref = keras.ops.convert_to_numpy(
        result.model(np.array([[vocab["vocabulary"].index(c) for c in "ROMEO:"]])))[0, -1]
    np.testing.assert_allclose(step["logits"].numpy()[0], ref, atol=1e-5)
    # (an export over a previous one, and a failed one: the recipe-independent writer's
    # tests in tests/test_zoo.py)
