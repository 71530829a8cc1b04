"""keras-hub-style tasks over the committed presets: raw input in, the user's answer out,
and save_to_preset / from_preset round trips of a fine-tuned model."""
import json

import numpy as np
import pytest

import grukit.zoo as zoo
from conftest import one_pass

HORIZONS = (96, 192, 336, 720)

# The tasks are backend-independent glue over the recipes, whose presets are checked on
# every backend elsewhere: one pass is enough.
pytestmark = one_pass("torch", "jax", "tensorflow", why="the tasks on one backend")


def test_sentiment_classifier_takes_raw_text():
    clf = zoo.SentimentClassifier.from_preset("imdb-sentiment")
    p = clf.predict(["An overlong, joyless film. The worst two hours I have spent in a "
                     "cinema; awful acting and a boring plot.",
                     "One of the best films of the year: moving, funny and superbly acted."])
    assert p.shape == (2,) and p.dtype == np.float32
    assert p[0] < 0.2 and p[1] > 0.8
    assert isinstance(clf.predict("a fine film"), float)
    np.testing.assert_array_equal(p, zoo.get("imdb-sentiment").predict(
        zoo.load("imdb-sentiment"), ["An overlong, joyless film. The worst two hours I have "
                                     "spent in a cinema; awful acting and a boring plot.",
                                     "One of the best films of the year: moving, funny and "
                                     "superbly acted."]))


def test_char_lm_generates_from_a_prompt():
    lm = zoo.CharLM.from_preset("char-lm")
    a = lm.generate("ROMEO:", length=40, temperature=0.8, top_k=10, seed=3)
    assert len(a) == 40 and set(a) <= set(lm.model.vocabulary)
    assert lm.generate("ROMEO:", length=40, temperature=0.8, top_k=10, seed=3) == a
    assert lm.generate("ROMEO:", length=40, temperature=0.8, top_k=10, seed=4) != a
    with pytest.raises(ValueError, match="outside the model's"):
        lm.generate("ROMEO€", length=5)


def test_forecaster_works_in_the_data_files_units():
    window = np.stack([np.linspace(5, 9, 720) + c for c in range(7)], axis=1)
    for h in HORIZONS:
        fc = zoo.Forecaster.from_preset("ett-forecasting", horizon=h)
        assert (fc.horizon, fc.lookback) == (h, fc.model.lookback)
        y = fc.predict(window[-fc.lookback:])
        assert y.shape == (h, 7) and np.isfinite(y).all()
        # the standardisation is inside: the forecast is near the window's level, in its units
        assert abs(float(y[:, 0].mean()) - float(window[-1, 0])) < 5.0, h
    with pytest.raises(ValueError, match="last 720 rows"):
        fc.predict(window[:100])


def test_task_refuses_another_models_preset():
    with pytest.raises(ValueError, match="is the 'imdb-sentiment' task; got the zoo model"):
        zoo.SentimentClassifier.from_preset("char-lm")
    ett = zoo.get("ett-forecasting").preset_for(96)
    with pytest.raises(ValueError, match="ett-forecasting"):
        zoo.SentimentClassifier.from_preset(ett)


def test_fine_tuned_model_round_trips_through_save_to_preset(tmp_path):
    fc = zoo.Forecaster.from_preset("ett-forecasting")  # horizon 96
    window = np.stack([np.sin(np.arange(720) / 24.0) * 3 + 10 + c for c in range(7)], 1)
    before = fc.predict(window)
    # "fine-tune": move every weight a little (what fit would do), then save and reload
    rng = np.random.default_rng(0)
    fc.model.set_weights([w + 0.01 * rng.standard_normal(w.shape).astype(w.dtype)
                          for w in fc.model.get_weights()])
    tuned = fc.predict(window)
    assert np.abs(tuned - before).max() > 1e-3
    path = fc.save_to_preset(tmp_path / "tuned")
    again = zoo.Forecaster.from_preset(path)
    np.testing.assert_allclose(again.predict(window), tuned, rtol=1e-6, atol=1e-6)
    meta = json.loads((tmp_path / "tuned" / "metadata.json").read_text())
    # the source's measured figures are not claimed for the new weights
    assert meta["metrics"] == {} and meta["derived_from"]["metrics"]["test"]["mse"] > 0
    assert meta["preprocessing"] == fc.preset.metadata["preprocessing"]
    # the CLI reads it like any preset
    from grukit.__main__ import main

    csv = tmp_path / "window.csv"
    np.savetxt(csv, window, delimiter=",", header=",".join(meta["preprocessing"]["columns"]),
               comments="")
    assert main(["zoo", "predict", "ett-forecasting", "--preset", str(path), "--input",
                 str(csv)]) == 0


def test_fine_tuned_classifier_keeps_its_vocabulary(tmp_path):
    clf = zoo.SentimentClassifier.from_preset("imdb-sentiment")
    path = clf.save_to_preset(tmp_path / "clf")
    assert (path / "assets" / "vocabulary.txt").read_text() == \
        (zoo.get("imdb-sentiment").preset_dir() / "assets" / "vocabulary.txt").read_text()
    texts = ["a fine film", "dull and joyless"]
    np.testing.assert_allclose(zoo.SentimentClassifier.from_preset(path).predict(texts),
                               clf.predict(texts), rtol=1e-6)
