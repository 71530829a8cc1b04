"""The imdb-sentiment zoo model: tokenizer, quick training, preset round trip, predict,
bad inputs, gate plot, CLI and (TensorFlow pass only) the raw-string SavedModel.

Needs the IMDB archive ($GRUKIT_DATA_DIR/imdb/aclImdb_v1.tar.gz); skipped without it.
One tiny model is trained per backend on a few hundred reviews (seconds).
"""
import json
import os

import numpy as np
import pytest
import keras

import grukit.zoo as zoo
from grukit.zoo.models.imdb_sentiment.data import review_batches
from grukit.zoo.models.imdb_sentiment.gates import gate_profile, plot_gates
from grukit.zoo.models.imdb_sentiment.model import SentimentModel, nb_ratios, ngram_bucket_ids, predict_ids
from grukit.zoo.models.imdb_sentiment.preprocessing import (ReviewTokenizer, first_sentence,
                                                             tokenize, truncate_tokens)
from grukit.zoo.models.imdb_sentiment.config import SEARCH_SPACE_NAMES
from grukit.zoo.models.imdb_sentiment.recipe import SEARCH_SPACES
from conftest import BACKEND, DATA_DIR, require_data, one_pass

#: tests without a pass of their own run once, in this pass (conftest.py)
ONE_PASS = one_pass("torch", "jax", "tensorflow", why="zoo behaviour, on one backend")

ARCHIVE = os.path.join(DATA_DIR, "imdb", "aclImdb_v1.tar.gz")
needs_data = pytest.mark.needs_data(ARCHIVE)

TINY = {"train_limit": 600, "val_limit": 200, "test_limit": 200, "vocab_size": 1500,
        "sequence_length": 64, "units": 8, "embedding_dim": 8, "epochs": 1,
        "variant": "mgu2", "batch_size": 64}


@pytest.fixture(scope="module")
def imdb():
    return zoo.get("imdb-sentiment")


@pytest.fixture(scope="module")
def trained(imdb, tmp_path_factory):
    require_data(ARCHIVE)
    data = imdb.load_data(data_dir=DATA_DIR)
    hp = imdb.hparams(quick=True, overrides=TINY)
    out = tmp_path_factory.mktemp("imdb_run")
    result = imdb.train(hp, data, out, quick=True, verbose=0, command="test")
    return result, data, hp


# ------------------------------------------------------------------ tokenizer
def test_tokenize_rules():
    tok = tokenize
    assert tok("Don't miss it!<br /><br />A GREAT film, Amélie-like.") == \
        ["dont", "miss", "it", "!", "a", "great", "film", "amélie", "like"]
    assert tok("") == [] and tok("  \t\n ") == [] and tok("... --- ,,,") == []
    assert tok("Why?!") == ["why", "?", "!"]
    assert tok("3.5/10<BR/>ok<br>fine") == ["3", "5", "10", "ok", "fine"]
    assert tok(b"bad \xff byte") == ["bad", "\ufffd", "byte"]


def test_first_sentence():
    cases = {
        "<br /><br />  A gem. Watch it!": "A gem.",
        "Wow!!! Just wow.": "Wow!!!",
        'He said "Awful!" Then left.': 'He said "Awful!"',
        "(It is great.) Really": "(It is great.)",
        "Rated 3.5/10. Skip": "Rated 3.5/10.",
        "Dr. No and Mr. T. Smith vs. J. Bond. Fun": "Dr. No and Mr. T. Smith vs. J. Bond.",
        "I liked it<br />but not the end.": "I liked it",
        "... ?! Fine. Done": "... ?! Fine.",
        "why?is this not split": "why?is this not split",
        "No end at all   ": "No end at all",
        "": "", " <br /> ": "", b"Bad \xff bytes. More": "Bad \ufffd bytes.",
    }
    assert {text: first_sentence(text) for text in cases} == cases
    with pytest.raises(ValueError, match="must be a string"):
        first_sentence(None)


def test_encode_truncation_and_padding():
    vocab = ["", "[UNK]"] + [f"w{i}" for i in range(10)]
    text = " ".join(f"w{i}" for i in range(10))
    ids = {m: ReviewTokenizer(vocab, 4, m).encode([text, "w3 zz", ""])
           for m in ("pre", "post", "both")}
    assert ids["pre"][0].tolist() == [8, 9, 10, 11]
    assert ids["post"][0].tolist() == [2, 3, 4, 5]
    assert ids["both"][0].tolist() == [2, 3, 10, 11]
    for m in ids:
        assert ids[m][1].tolist() == [5, 1, 0, 0]  # known, out of vocabulary, padding
        assert ids[m][2].tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="padding"):
        ReviewTokenizer(["a", "b"], 4)
    with pytest.raises(ValueError, match="truncate"):
        ReviewTokenizer(vocab, 4, "middle")


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow string ops: TF pass only")
def test_tf_tokenizer_matches_python():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    vocab = ["", "[UNK]", "a", "great", "film", "!", "?", "dont", "amélie", "\ufffd", "b"]
    alphabet = list("aAbB gGreatfilm!?'.,<>/-_\t\n0123") + ["é", "É", "\u00a0", "\u3000", "<br />",
                                                          "\x00", "dont", "Amélie"]
    texts = ["".join(rng.choice(alphabet, rng.integers(0, 40))) for _ in range(200)]
    raw = [t.encode("utf-8") for t in texts] + [b"great \xff\xfe film", b"\xc3", b"a\xe2\x82"]
    for mode in ("pre", "post", "both"):
        tok = ReviewTokenizer(vocab, 7, mode)
        np.testing.assert_array_equal(tok.tf_encode(tf.constant(raw)).numpy(), tok.encode(raw))


def _reviews_of_two_lengths():
    """140 reviews of ids (padded to 128): 70 shorter than 64 tokens, 70 longer."""
    rng = np.random.default_rng(0)
    lengths = np.concatenate([rng.integers(1, 64, 70), rng.integers(65, 128, 70)])
    ids = np.zeros((140, 128), np.int32)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(1, 50, n)
    return ids, (lengths > 64).astype(np.int64)


def test_length_buckets():
    """Batches are cut to their longest review (multiples of 64 steps)."""
    ids, labels = _reviews_of_two_lengths()
    for shuffle in (True, False):
        batches = review_batches(ids, labels, 35, shuffle=shuffle)
        steps = [batches[i][0].shape[1] for i in range(len(batches))]
        assert set(steps) <= {64, 128} and steps[0] != steps[1]
        assert sum(batches[i][0].shape[0] for i in range(len(batches))) == 140


@pytest.mark.skipif(BACKEND != "tensorflow", reason="the tf.data signature: TF pass only")
def test_length_buckets_fit_under_tensorflow():
    """On TF, fit must accept the varying time dimension of the length buckets (Keras takes
    the tf.data signature from the first two batches); JAX and torch take any shape."""
    ids, labels = _reviews_of_two_lengths()
    vocab = ["", "[UNK]"] + [f"w{i}" for i in range(48)]
    model = SentimentModel(vocab, 128, units=4, embedding_dim=4, variant="mgu",
                                         ngram_buckets=64, ngram_dim=2)
    model.build((None, 128))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(review_batches(ids, labels, 35, shuffle=True), epochs=1,
                        verbose=0)
    assert np.isfinite(history.history["loss"][0])
    p = predict_ids(model, ids, batch_size=70)
    # batched by length, cut to the bucket, put back in input order: the same probabilities
    # as the whole padded matrix in one call (padding is masked)
    whole = np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(ids))).reshape(-1)
    np.testing.assert_allclose(p, whole, atol=1e-5)


def test_bigram_branch_hashes_bigrams_and_optional_unigrams():
    vocab = ["", "[UNK]"] + [f"w{i}" for i in range(20)]
    v, b = len(vocab), 64
    ids = np.array([[2, 3, 4, 0, 0], [5, 0, 0, 0, 0], [0, 0, 0, 0, 0]], "int32")
    for unigrams in (False, True):
        model = SentimentModel(vocab, 16, units=4, embedding_dim=4, variant="gru",
                                             ngram_buckets=b, ngram_scale=3.0,
                                             ngram_unigrams=unigrams)
        model.build((None, 16))
        w = np.asarray(keras.ops.convert_to_numpy(model.ngram_embedding.embeddings))[:, 0]
        codes = [2 * v + 3, 3 * v + 4] + ([2 * v, 3 * v, 4 * v] if unigrams else [])
        got = np.asarray(keras.ops.convert_to_numpy(model.bigram_features(ids)))[:, 0]
        np.testing.assert_allclose(got[0], w[[c % (b - 1) + 1 for c in codes]].mean(), rtol=1e-5)
        # one token: no bigram (0 features) or its unigram; no tokens: 0
        np.testing.assert_allclose(got[1], w[(5 * v) % (b - 1) + 1] if unigrams else 0.0,
                                   rtol=1e-5, atol=1e-7)
        assert got[2] == 0.0
        again = SentimentModel.from_config(model.get_config())
        assert again.ngram_unigrams is unigrams and again.ngram_scale == 3.0


def test_nb_branch_is_a_normalised_linear_model_over_distinct_ngrams():
    vocab = ["", "[UNK]"] + [f"w{i}" for i in range(20)]
    v, b = len(vocab), 97  # no two of the n-grams below share a bucket
    # review 0 repeats the bigram (2, 3): presence, not counts
    ids = np.array([[2, 3, 2, 3, 4, 0], [5, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], "int32")
    labels = np.array([1, 0, 1])
    for unigrams in (False, True):
        model = SentimentModel(vocab, 16, units=4, embedding_dim=4, variant="gru",
                                             ngram_buckets=b, ngram_scale=3.0,
                                             ngram_unigrams=unigrams, ngram_weighting="nb")
        model.build((None, 16))
        buckets = ngram_bucket_ids(ids, v, b, unigrams)
        codes = [2 * v + 3, 3 * v + 2, 3 * v + 4] + ([2 * v, 3 * v, 4 * v] if unigrams else [])
        assert sorted(buckets[0]) == sorted({c % (b - 1) + 1 for c in codes})
        assert list(buckets[1]) == ([(5 * v) % (b - 1) + 1] if unigrams else [])
        r = nb_ratios(ids, labels, v, b, unigrams)
        assert r.shape == (b,) and r[0] == 0.0
        # positive-only buckets get the positive ratio, unseen ones the class-balance term
        unseen = np.setdiff1d(np.arange(1, b), np.concatenate(buckets))
        np.testing.assert_allclose(r[unseen], r[unseen[0]])
        assert np.all(r[buckets[0]] > r[unseen[0]])
        rng = np.random.default_rng(0)
        w = rng.normal(size=(b, 1)).astype("float32")
        model.ngram_embedding.embeddings.assign(w)
        model.ngram_ratio.assign(r)
        got = np.asarray(keras.ops.convert_to_numpy(model.ngram_logit(ids)))[:, 0]
        for row, z in zip(buckets, got):
            x = r[row] / max(np.sqrt(np.sum(r[row] ** 2)), 1e-6)
            np.testing.assert_allclose(z, 3.0 * np.sum(x * w[row, 0]), rtol=1e-5, atol=1e-6)
        assert got[2] == 0.0
        again = SentimentModel.from_config(model.get_config())
        assert again.ngram_weighting == "nb"
    with pytest.raises(ValueError, match="ngram_weighting"):
        SentimentModel(vocab, 16, ngram_buckets=b, ngram_weighting="tfidf")
    with pytest.raises(ValueError, match="ngram_dim must be 1"):
        SentimentModel(vocab, 16, ngram_buckets=b, ngram_dim=2,
                                     ngram_weighting="nb")


def test_nb_model_members_train_on_their_own_losses():
    vocab = ["", "[UNK]"] + [f"w{i}" for i in range(20)]
    ids = np.array([[2, 3, 4, 0], [5, 6, 0, 0], [0, 0, 0, 0]], "int32")
    y = np.array([1.0, 0.0, 1.0], "float32")
    model = SentimentModel(vocab, 16, units=4, embedding_dim=4, variant="gru",
                                         dropout=0.0, spatial_dropout=0.0, ngram_buckets=97,
                                         ngram_weighting="nb")
    model.build((None, 16))
    model.ngram_ratio.assign(np.linspace(-1, 1, 97).astype("float32"))
    model.ngram_embedding.embeddings.assign(np.full((97, 1), 0.5, "float32"))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    members = np.asarray(keras.ops.convert_to_numpy(model(ids, training=True)))
    served = np.asarray(keras.ops.convert_to_numpy(model(ids)))
    assert members.shape == (3, 3) and served.shape == (3, 1)
    np.testing.assert_allclose(served[:, 0], members[:, 0], rtol=1e-5)
    logit = lambda p: np.log(p) - np.log1p(-p)
    np.testing.assert_allclose(logit(members[:2, 0]), logit(members[:2, 1]) + logit(members[:2, 2]),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(members[2], [0.5, 0.5, 0.5])  # no tokens: no evidence
    bce = lambda p: -(y * np.log(p) + (1 - y) * np.log1p(-p))
    loss = float(keras.ops.convert_to_numpy(model.compute_loss(ids, y, members)))
    assert loss == pytest.approx(np.mean([bce(members[:, 1]), bce(members[:, 2])]), rel=1e-4)
    # not the blend's loss
    assert abs(loss - float(np.mean(bce(members[:, 0])))) > 1e-3
    # evaluation (training=False): the blend's loss
    assert float(keras.ops.convert_to_numpy(model.compute_loss(ids, y, served, training=False))) \
        == pytest.approx(float(np.mean(bce(served[:, 0]))), rel=1e-4)
    np.testing.assert_allclose(predict_ids(model, ids, members=True), members,
                               rtol=1e-5)


# ------------------------------------------------------------ hyperparameters
def test_hparams_and_search_space(imdb):
    import keras_tuner

    defaults = imdb.hparams()
    assert defaults["variant"] in ("gru", "gru2", "mgu", "mgu2", "ligru", "mingru")
    for bad in ({"truncate": "middle"}, {"pooling": "sum"}, {"vocab_size": 2},
                {"dropout": 1.5}, {"train_limit": -1}, {"bidirectional": "yes"},
                {"variant": "lstm"}, {"ngram_scale": 0}, {"ngram_scale": float("nan")},
                {"refit": "yes"}, {"bucket": 0}, {"search_space": "huge"},
                {"ngram_l2": -1.0}, {"ngram_unigrams": 1}, {"ngram_weighting": "tfidf"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            imdb.hparams(overrides=bad)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        imdb.hparams(overrides={"vocabulary": 5})
    hp = keras_tuner.HyperParameters()
    values = imdb.search_space(hp, defaults)
    assert {"variant", "units", "depth", "bidirectional", "pooling", "dropout", "vocab_size",
            "sequence_length", "learning_rate"} <= set(values)
    assert {"gru", "gru2", "mgu", "mgu2", "ligru", "mingru"} <= set(hp._hps["variant"][0].values)
    # quick space: valid hyperparameters
    imdb.validate_hparams(dict(imdb.hparams(quick=True),
                               **imdb.search_space(keras_tuner.HyperParameters(), defaults,
                                                   quick=True)))
    # every space's draws are valid hyperparameters; "wide" widens "narrow"
    spaces = SEARCH_SPACES
    for name in ("narrow", "wide"):
        hp = keras_tuner.HyperParameters()
        values = imdb.search_space(hp, dict(defaults, search_space=name))
        assert set(values) == set(spaces[name])
        imdb.validate_hparams(dict(defaults, **values))
    assert set(spaces) - {"quick"} == set(SEARCH_SPACE_NAMES)  # what the config accepts
    assert set(spaces["narrow"]) < set(spaces["wide"])
    assert max(spaces["wide"]["units"]) > max(spaces["narrow"]["units"])
    assert max(spaces["wide"]["sequence_length"]) > max(spaces["narrow"]["sequence_length"])


# ------------------------------------------------------- training and presets
@needs_data
def test_quick_train_writes_preset(trained, imdb):
    result, data, hp = trained
    preset = result.preset
    for name in ("config.json", "model.weights.h5", "metadata.json", "assets/vocabulary.txt"):
        assert (preset / name).is_file(), name
    meta = json.loads((preset / "metadata.json").read_text())
    assert meta["model"] == "imdb-sentiment" and meta["quick"] is True
    assert meta["metrics"]["test"]["examples"] == 200
    assert meta["metrics"]["validation"]["examples"] == 200
    # the recorded figures are the saved model's, measured again on the same reviews
    again = imdb.evaluate(imdb.load(str(preset)), data, hp, "test")
    assert again["accuracy"] == pytest.approx(meta["metrics"]["test"]["accuracy"], abs=1e-9)
    assert again["loss"] == pytest.approx(meta["metrics"]["test"]["loss"], rel=1e-5)
    assert meta["preprocessing"]["splits"] == {"train": 600, "validation": 200, "test": 200}
    vocab = (preset / "assets" / "vocabulary.txt").read_text().split("\n")[:-1]
    assert vocab == result.model.tokenizer.vocabulary and len(vocab) == 1500
    # train and validation are disjoint, and test is the official test set
    train, _ = data.texts("train", 600)
    val, _ = data.texts("validation", 200)
    assert not set(train) & set(val)


@needs_data
def test_the_training_order_follows_the_run_seed(trained, imdb):
    """``dataset(..., seed=)`` orders the training batches (the engine passes the run's
    seed: tests/test_zoo.py); seed 0, the default, is the committed preset's order."""
    _, data, hp = trained

    def labels(seed=None):
        options = {} if seed is None else {"seed": seed}
        batches = imdb.dataset(data, hp, "train", training=True, **options)
        return np.concatenate([batches[i][1] for i in range(len(batches))])

    zero = labels(0)
    assert np.array_equal(zero, labels()) and np.array_equal(zero, labels(0))
    assert not np.array_equal(zero, labels(1))
    assert np.array_equal(np.sort(zero), np.sort(labels(1)))  # the same reviews, reordered


@needs_data
def test_refit_trains_on_train_and_validation_and_keeps_the_last_epoch(trained, imdb, tmp_path,
                                                                       monkeypatch):
    _, data, hp = trained
    hp = dict(hp, refit=True, epochs=2, ngram_buckets=64, ngram_scale=30.0,
              ngram_weighting="nb", ngram_unigrams=True)
    with pytest.raises(ValueError, match="refit"):
        imdb.tune(hp, data, tmp_path / "search", max_trials=1, quick=True, fixed={"refit": True})
    last = {}

    class LastEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            last["weights"] = [np.array(w) for w in self.model.get_weights()]
            last["val_accuracy"] = logs["val_accuracy"]

    monkeypatch.setattr(imdb, "extra_callbacks", lambda hparams: [LastEpoch()])
    result = imdb.train(hp, data, tmp_path / "refit", quick=True, verbose=0, command="test")
    meta = result.metadata
    assert meta["refit"]["train_split"] == "train_full" and meta["refit"]["kept_epoch"] == 2
    assert meta["preprocessing"]["splits"]["train_full"] == 600
    # the vocabulary is counted over the reviews trained on (train + validation)
    assert result.model.tokenizer.vocabulary == data.vocabulary(hp)
    full, _ = data.texts("train_full", 600)
    assert set(data.texts("validation", 200)[0]) & set(full)
    # the last epoch's weights are kept, whatever the (no longer held-out) validation said
    for kept, seen in zip(result.model.get_weights(), last["weights"]):
        np.testing.assert_array_equal(np.asarray(kept), seen)
    model = zoo.load("imdb-sentiment", preset=result.preset)
    assert model.ngram_scale == 30.0 and model.get_config()["ngram_scale"] == 30.0
    # the "nb" members: ratios counted over the reviews trained on, kept by the preset,
    # each member's accuracy reported beside the model's
    ids, labels = data.encoded("train_full", hp)
    ratios = nb_ratios(ids, labels, len(data.vocabulary(hp)),
                                                          64, unigrams=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.ngram_ratio), ratios, rtol=1e-6)
    assert np.any(ratios != 0)
    for split in ("validation", "test"):
        assert {"recurrent_accuracy", "ngram_accuracy"} <= set(meta["metrics"][split])


@needs_data
def test_preset_round_trip_and_evaluate(trained, imdb):
    result, data, hp = trained
    texts = ["A wonderful, moving film with a superb cast.", "Dull, overlong and joyless."]
    expected = imdb.predict(result.model, texts)
    model = zoo.load("imdb-sentiment", preset=result.preset)
    np.testing.assert_allclose(imdb.predict(model, texts), expected, rtol=1e-5, atol=1e-6)
    assert model.zoo_preset.metadata["hparams"]["variant"] == "mgu2"
    metrics, meta = imdb.evaluate_preset(result.preset, data=data, split="test")
    assert metrics["examples"] == 200
    assert metrics["accuracy"] == pytest.approx(meta["metrics"]["test"]["accuracy"], abs=1e-9)
    assert metrics["loss"] == pytest.approx(meta["metrics"]["test"]["loss"], rel=1e-4)


@needs_data
def test_evaluate_reads_reviews_with_the_presets_own_vocabulary(trained, imdb):
    """A preset measured on data other than it was trained on (here: the same test reviews,
    but a training split cut to 300 reviews, whose vocabulary differs) reads them with its
    own vocabulary, as it serves them, and no vocabulary is built from that data."""
    result, _, hp = trained
    other = imdb.load_data(data_dir=DATA_DIR, limit=300)
    metrics, meta = imdb.evaluate_preset(result.preset, data=other, split="test")
    assert other._vocab == {}  # nothing was rebuilt from the other reviews
    texts, labels = other.texts("test", hp["test_limit"])
    p = imdb.predict(zoo.load("imdb-sentiment", preset=result.preset), texts)
    assert metrics["examples"] == len(labels) == 200
    assert metrics["accuracy"] == np.mean((p > 0.5) == (np.asarray(labels) == 1))
    assert metrics["accuracy"] == pytest.approx(meta["metrics"]["test"]["accuracy"], abs=1e-9)
    assert metrics["loss"] == pytest.approx(meta["metrics"]["test"]["loss"], rel=1e-4)


@needs_data
def test_predict_raw_strings(trained, imdb):
    model = trained[0].model
    texts = ["a great film", "an awful film", "ok"]
    p = imdb.predict(model, texts)
    assert p.shape == (3,) and p.dtype == np.float32 and np.all((p >= 0) & (p <= 1))
    single = imdb.predict(model, "a great film")
    assert isinstance(single, float) and single == pytest.approx(float(p[0]), abs=1e-6)
    np.testing.assert_allclose(imdb.predict(model, np.array(texts)), p, atol=1e-6)
    np.testing.assert_allclose(imdb.predict(model, np.array([t.encode() for t in texts])), p,
                               atol=1e-6)
    np.testing.assert_allclose(imdb.predict(model, tuple(texts)), p, atol=1e-6)
    assert imdb.predict(model, []).shape == (0,)
    # batching by length keeps the input order
    many = texts * 50 + ["great " * n for n in range(1, 40)]
    np.testing.assert_allclose(imdb.predict(model, many, batch_size=7)[:3], p, atol=1e-5)


@needs_data
def test_bad_inputs(trained, imdb):
    model = trained[0].model
    # empty, whitespace or punctuation only: no tokens, exactly 0.5 ("no evidence")
    assert imdb.predict(model, "") == 0.5
    assert imdb.predict(model, " \t\n  ") == 0.5
    assert imdb.predict(model, "... --- ...") == 0.5
    np.testing.assert_array_equal(imdb.predict(model, ["", "  "]), [0.5, 0.5])
    # non-UTF-8 bytes: replaced by U+FFFD, as the SavedModel does
    raw = b"what a \xff\xfe terrible \xc3 film"
    p = imdb.predict(model, raw)
    assert np.isfinite(p)
    assert p == pytest.approx(imdb.predict(model, raw.decode("utf-8", "replace")), abs=1e-6)
    # a 1 MB review: read as its first and last sequence_length/2 tokens (truncate "both")
    big = "a truly great film " * 53000 + "but the ending is awful"
    assert len(big.encode()) >= 1_000_000
    p_big = imdb.predict(model, big)
    tok = model.tokenizer
    kept = truncate_tokens(tokenize(big), tok.sequence_length,
                                         tok.truncate)
    assert p_big == pytest.approx(imdb.predict(model, " ".join(kept)), abs=1e-6)
    # not a string: ValueError naming the position and the type
    for bad, match in ((None, "NoneType"), (3, "int"), (3.5, "float"),
                       (["fine", 7], "#1 must be a string"), ([b"ok", None], "#1"),
                       (np.array([["a", "b"]]), "shape"), ({"text": "x"}, "dict")):
        with pytest.raises(ValueError, match=match):
            imdb.predict(model, bad)
    with pytest.raises(ValueError, match="imdb-sentiment model"):
        imdb.predict(keras.Sequential([keras.layers.Dense(1)]), "text")


@needs_data
def test_gate_plot(trained, tmp_path):
    pytest.importorskip("matplotlib")
    model = trained[0].model
    words, gates = gate_profile(model, "A wonderful film, never dull! Zyxwv.")
    vocabulary = set(model.tokenizer.vocabulary)  # words outside it are shown in brackets
    assert words == [w if w in vocabulary else f"[{w}]"
                     for w in ["a", "wonderful", "film", "never", "dull", "!", "zyxwv"]]
    assert words[-1] == "[zyxwv]"
    assert set(gates) == {"forward"} | ({"backward"} if model.bidirectional else set())
    for z in gates.values():
        assert z.shape == (7, model.units) and np.all((z >= 0) & (z <= 1))
    # step t of the forward direction has read tokens 0..t only: the profile of the first
    # three words is the first three rows (the rows are aligned with the words)
    first, prefix = gate_profile(model, "A wonderful film")
    assert first == words[:3]
    np.testing.assert_allclose(prefix["forward"], gates["forward"][:3], atol=1e-5)
    path = plot_gates(model, "A wonderful film, never dull!", tmp_path / "g.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no tokens"):
        gate_profile(model, "   ")


@needs_data
@pytest.mark.skipif(BACKEND != "torch", reason="one CLI run is enough (PyTorch pass)")
def test_cli_predict(trained, capsys, cli_log):
    # the command in this process (`python -m grukit` itself: tests/test_zoo.py's processes)
    from grukit.__main__ import main

    preset = str(trained[0].preset)
    assert main(["zoo", "predict", "imdb-sentiment", "--preset", preset,
                 "an overlong, joyless film", ""]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    p = float(lines[0].split()[0])
    from grukit.zoo import SentimentClassifier  # the command prints what the task predicts

    expected = SentimentClassifier.from_preset(preset).predict(["an overlong, joyless film"])[0]
    assert abs(p - expected) <= 6e-5 and "an overlong, joyless film" in lines[0]
    assert lines[1].startswith("0.5000") and "no tokens" in lines[1]
    assert main(["zoo", "predict", "imdb-sentiment", "--preset", preset]) == 2
    assert "nothing to score" in capsys.readouterr().err


# ------------------------------------------------------------------ export
@needs_data
@pytest.mark.skipif(BACKEND != "tensorflow", reason="the SavedModel export runs in the TF pass")
def test_export_raw_string_signature(trained, imdb, tmp_path):
    import tensorflow as tf

    result = trained[0]
    out = imdb.export(tmp_path / "export", preset=result.preset, verbose=False)  # fresh-process check
    served = tf.saved_model.load(str(out))
    model = zoo.load("imdb-sentiment", preset=result.preset)
    texts = ["A wonderful, moving film.", "Dull.<br />Joyless!", "", "   ",
             "great " * 5000 + "awful"]
    y = served.serve(tf.constant(texts)).numpy()
    assert y.shape == (5,) and y.dtype == np.float32
    np.testing.assert_allclose(y, imdb.predict(model, texts), rtol=1e-5, atol=1e-6)
    assert y[2] == 0.5 and y[3] == 0.5
    bad = served.serve(tf.constant([b"bad \xff\xfe bytes"])).numpy()
    np.testing.assert_allclose(bad, imdb.predict(model, [b"bad \xff\xfe bytes"]), atol=1e-6)
    assert (out / "assets.extra" / "metadata.json").is_file()


# ------------------------------------------------------------ committed preset
def test_committed_preset_loads_and_predicts(imdb):
    model = zoo.load("imdb-sentiment")
    meta = model.zoo_preset.metadata
    assert meta["quick"] is False and meta["metrics"]["test"]["examples"] == 25000
    size = os.path.getsize(imdb.preset_dir() / "model.weights.h5")
    assert size < 6_000_000
    p = imdb.predict(model, ["One of the best films of the year: moving, funny and superbly "
                             "acted. A must see!",
                             "An overlong, joyless film. The worst two hours I have spent in a "
                             "cinema; awful acting and a boring plot."])
    assert p[0] > 0.8 and p[1] < 0.2
