"""Every committed preset keeps reproducing its model card.

On every backend: each preset against the outputs stored in ``tests/data/
preset_outputs.json`` on a fixed subset of its data (``tests/preset_outputs.py`` writes
them). On one backend each: the full figure of the card (IMDB's 25,000 test reviews,
the char LM's whole validation text; each ETT horizon's full test set is in
``test_zoo_ett.py``)."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

import grukit.zoo as zoo
import preset_outputs
from conftest import BACKEND, DATA_DIR, REPO, require_data, one_pass

IMDB = os.path.join(DATA_DIR, "imdb", "aclImdb_v1.tar.gz")
TEXT = os.path.join(DATA_DIR, "tinyshakespeare", "input.txt")
ETT = os.path.join(DATA_DIR, "ett", "ETTh1.csv")


@pytest.fixture(scope="module")
def stored():
    return preset_outputs.load()


@pytest.mark.needs_data(IMDB)
def test_imdb_preset_on_the_stored_subset(stored):
    expected = stored["imdb-sentiment"]
    got = preset_outputs.imdb_outputs(DATA_DIR)
    assert got["labels"] == expected["labels"]
    np.testing.assert_allclose(got["probabilities"], expected["probabilities"], atol=2e-5)
    p, labels = np.asarray(got["probabilities"]), np.asarray(got["labels"])
    assert np.mean((p > 0.5) == labels) == np.mean(
        (np.asarray(expected["probabilities"]) > 0.5) == labels)


@pytest.mark.needs_data(TEXT)
def test_char_lm_preset_on_the_stored_subset(stored):
    got = preset_outputs.char_lm_outputs(DATA_DIR)
    assert got["characters"] == stored["char-lm"]["characters"]
    assert got["loss"] == pytest.approx(stored["char-lm"]["loss"], rel=1e-5)


@pytest.mark.needs_data(ETT)
def test_ett_presets_on_the_stored_subsets(stored):
    got, expected = preset_outputs.ett_outputs(DATA_DIR), stored["ett-forecasting"]
    assert sorted(got) == sorted(expected) == ["192", "336", "720", "96"]
    for h in expected:
        assert got[h]["windows"] == expected[h]["windows"], h
        np.testing.assert_allclose(got[h]["mse"], expected[h]["mse"], rtol=1e-4, err_msg=h)
        np.testing.assert_allclose(got[h]["mae"], expected[h]["mae"], rtol=1e-4, err_msg=h)
        np.testing.assert_allclose(got[h]["first_ot"], expected[h]["first_ot"], atol=1e-4,
                                   err_msg=h)


@pytest.mark.needs_data(IMDB)
@pytest.mark.skipif(BACKEND != "tensorflow", reason="the full test set once, in the TF pass")
def test_imdb_preset_reproduces_its_test_accuracy():
    imdb = zoo.get("imdb-sentiment")
    metrics, meta = imdb.evaluate_preset(split="test", data_dir=DATA_DIR)
    recorded = meta["metrics"]["test"]
    assert metrics["examples"] == recorded["examples"] == 25000
    # every review counts: the same number right, not approximately the same
    assert round(metrics["accuracy"] * 25000) == round(recorded["accuracy"] * 25000)
    for key in ("recurrent_accuracy", "ngram_accuracy"):
        assert round(metrics[key] * 25000) == round(recorded[key] * 25000), key
    assert metrics["loss"] == pytest.approx(recorded["loss"], rel=1e-4)


@pytest.mark.needs_data(TEXT)
@one_pass("jax", "torch", "tensorflow", why="the whole validation text")
@pytest.mark.xla_optimized
def test_char_lm_preset_reproduces_its_validation_loss():
    require_data(TEXT)
    lm = zoo.get("char-lm")
    metrics, meta = lm.evaluate_preset(split="validation", data_dir=DATA_DIR)
    recorded = meta["metrics"]["validation"]
    assert metrics["characters"] == recorded["characters"] == 111539
    assert metrics["unknown_characters"] == 0
    assert metrics["loss"] == pytest.approx(recorded["loss"], rel=1e-5)


# -------------------------------------------- the cards quote what the presets measured
def _table_row(card, first_cell, column=None):
    """The cells of the markdown table row of ``card`` whose first cell is ``first_cell``
    (emphasis stripped), in the table whose header has ``column`` if given; fails when
    there is not exactly one such row."""
    tables, table = [], []
    for line in card.splitlines() + [""]:
        if line.startswith("|"):
            table.append([c.strip().strip("*").strip()
                          for c in line.strip().strip("|").split("|")])
        elif table:
            tables.append(table)
            table = []
    found = [r for t in tables if column is None or column in t[0] for r in t
             if r[0] == first_cell]
    assert len(found) == 1, f"{len(found)} table rows start with {first_cell!r}"
    return found[0]


def _card(name):
    return (zoo.get(name).preset_dir().parent / "README.md").read_text(encoding="utf-8")


def test_cards_quote_their_presets_measured_metrics():
    """Each card's headline table shows the figures its preset's metadata.json records
    (which the tests above reproduce): a retrained preset with a stale card fails here."""
    meta = zoo.get("imdb-sentiment").load().zoo_preset.metadata["metrics"]["test"]
    card = _card("imdb-sentiment")
    assert _table_row(card, "test accuracy")[1] == (
        f"{meta['accuracy']:.4f}** ({meta['accuracy']:.5g})")
    assert _table_row(card, "test log loss")[1] == f"{meta['loss']:.4f} ({meta['loss']:.6g})"
    members = _table_row(card, "each member alone, test")[1]
    assert (f"{meta['recurrent_accuracy']:.4f} ({meta['recurrent_accuracy']:.5g})" in members
            and f"n-gram member {meta['ngram_accuracy']:.4f} ({meta['ngram_accuracy']:.5g})"
            in members), members

    # short text: experiments/imdb_sentiment/short_text.py's committed output, made with
    # this preset (its whole-review figures are the preset's)
    short = json.loads((Path(REPO) / "experiments" / "imdb_sentiment" / "results" /
                        "short-text" / "preset.json").read_text())
    assert (short["split"], short["reviews"]) == ("test", 25000)
    for name, key in (("model", "accuracy"), ("recurrent", "recurrent_accuracy"),
                      ("ngram", "ngram_accuracy")):
        assert round(short["whole"][name] * 25000) == round(meta[key] * 25000), name
    first = short["first_sentence"]
    cell = _table_row(card, "short text: each test review's first sentence")[1]
    assert cell.startswith(
        f"model {first['model']:.4f} ({first['model']:.5g}), recurrent member alone "
        f"{first['recurrent']:.4f} ({first['recurrent']:.5g}), n-gram member alone "
        f"{first['ngram']:.4f} ({first['ngram']:.5g}); median "
        f"{first['tokens_median']:.0f} tokens"), cell

    meta = zoo.get("char-lm").load().zoo_preset.metadata["metrics"]["validation"]
    row = _table_row(_card("char-lm"), next(
        line.strip("| ").split("|")[0].strip() for line in _card("char-lm").splitlines()
        if line.startswith("| **this preset**")).strip("*"))
    assert row[1:3] == [f"{meta['loss']:.4f}", f"{meta['bpc']:.4f}"], row
    assert f"prints {meta['loss']:.5f} nats, {meta['bpc']:.5f} bits" in row[3], row[3]

    # ETT: each horizon's row, and the three-seed report of
    # experiments/ett_forecasting/seeds.py (committed), whose seed 0 is each committed
    # preset and whose baselines are the card's table's
    ett = zoo.get("ett-forecasting")
    card = _card("ett-forecasting")
    header = _table_row(card, "horizon", column="MSE (this)")
    mse, mae = header.index("MSE (this)"), header.index("MAE (this)")
    baselines = [header.index("DLinear"), header.index("SegRNN"),
                 header.index("DLinear", mae), header.index("SegRNN", mae)]
    seeds = json.loads((Path(REPO) / "experiments" / "ett_forecasting" / "seeds" /
                        "results.json").read_text())
    horizons = ett.committed_horizons()
    for h in horizons:
        meta = ett.load(horizon=h).zoo_preset.metadata["metrics"]["test"]
        row = _table_row(card, str(h), column="MSE (this)")
        assert (row[mse], row[mae]) == (f"{meta['mse']:.3f}", f"{meta['mae']:.3f}"), h
        report = seeds[str(h)]
        assert (report["seeds"]["0"]["test_mse"], report["seeds"]["0"]["test_mae"]) == (
            meta["mse"], meta["mae"]), h
        assert [report[k] for k in ("dlinear_mse", "segrnn_mse", "dlinear_mae", "segrnn_mae")] \
            == [float(row[i]) for i in baselines], h
    sentence = " ".join(card.split())  # the Limitations bullet, wrapped
    mse = " / ".join(f"{seeds[str(h)]['test_mse_mean']:.3f} ± {seeds[str(h)]['test_mse_std']:.3f}"
                     for h in horizons)
    mae = " / ".join(f"{seeds[str(h)]['test_mae_mean']:.3f}" for h in horizons)
    assert (f"the mean test MSE is {mse} at {' / '.join(map(str, horizons))} (MAE {mae})"
            in sentence), "the card's three-seed figures differ from seeds/results.json"
