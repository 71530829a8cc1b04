"""The ett-forecasting zoo model: the SegRNN-style model, a tiny training with its preset
round trip, the committed presets (their metadata, their full test sets), predict and its
errors, the CLI's predict/evaluate, and a resumable local search. Each test runs in one pass
of tests/run.sh (the zoo's behaviour does not depend on the backend beyond what the cell
suite and tests/test_presets_reproduce.py check in every pass).

Needs $GRUKIT_DATA_DIR/ett/ETTh1.csv for the tests that train or score; the model and
the committed preset's predict tests run without data.
"""
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

import keras

import grukit.zoo as zoo
from grukit.__main__ import main
from grukit.zoo.models.ett_forecasting.model import SegRNN
from grukit.zoo.models.ett_forecasting.preprocessing import read_window_csv
from grukit.zoo.presets import read_metadata
from conftest import BACKEND, DATA_DIR, REPO, one_pass, to_np, require_data

#: tests without a pass of their own run once, in this pass (conftest.py)
ONE_PASS = one_pass("torch", "jax", "tensorflow", why="zoo behaviour, on one backend")

ETT_CSV = os.path.join(DATA_DIR, "ett", "ETTh1.csv")
HORIZONS = (96, 192, 336, 720)  # one committed preset each: preset/ (96), preset_h<H>/
needs_data = pytest.mark.needs_data(ETT_CSV)
#: The pass that evaluates each committed preset on its full test set (the default preset's
#: on its validation set too), once per run: TensorFlow's, where they evaluate fastest on a
#: CPU (then JAX's, with XLA's optimisations, then PyTorch's: compare the time `grukit zoo
#: evaluate ett-forecasting --horizon H` logs under each KERAS_BACKEND), but for one horizon
#: in the JAX pass, which has less else to run. Each backend's outputs of every preset, on a
#: subset: tests/test_presets_reproduce.py.
FULL_SETS_PASS = {h: one_pass(*(("jax", "tensorflow") if h == 336 else ("tensorflow", "jax")),
                              "torch", why=f"the full evaluation sets, horizon {h}")
                  for h in HORIZONS}


@pytest.fixture(scope="module")
def ett():
    return zoo.get("ett-forecasting")


@pytest.fixture(scope="module")
def data(ett):
    require_data(ETT_CSV)
    return ett.load_data(data_dir=DATA_DIR)


@pytest.fixture(scope="module")
def committed():
    return zoo.load("ett-forecasting")


# -------------------------------------------------------------------- model
@pytest.mark.parametrize("variant, norm", [("gru", "last"), ("mgu2", "mean"), ("mingru", "revin"),
                                           ("ligru", "last")])
def test_segrnn_shapes_and_reversible_normalisation(variant, norm):
    model = SegRNN(48, 36, 3, segment=12, units=8, variant=variant, norm=norm)
    x = np.random.default_rng(0).standard_normal((2, 48, 3)).astype("float32")
    y = to_np(model(x))
    assert y.shape == (2, 36, 3) and np.isfinite(y).all()
    # instance normalisation makes the forecast shift with the window (and scale, RevIN)
    np.testing.assert_allclose(to_np(model(x + 5.0)), y + 5.0, atol=2e-4)
    if norm == "revin":
        np.testing.assert_allclose(to_np(model(3.0 * x)), 3.0 * y, atol=5e-4, rtol=1e-4)
    config = model.get_config()
    clone = SegRNN.from_config(config)
    clone.build((None, 48, 3))
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(to_np(clone(x)), y, atol=1e-6)


def test_segrnn_parallel_decoding_matches_one_step_per_segment():
    """Output segment j of channel c is head(one recurrent step from the encoder's final
    state with input [position_j, channel_c]) -- SegRNN's parallel decoding, rebuilt here
    channel by channel from the model's own layers."""
    B, L, H, C, w, d = 3, 24, 18, 2, 6, 10
    m = H // w
    model = SegRNN(L, H, C, segment=w, units=d, variant="mgu", norm="last", dropout=0.3)
    x = np.random.default_rng(1).standard_normal((B, L, C)).astype("float32")
    y = to_np(model(x, training=False))
    last = x[:, -1:, :]
    pos, chan = to_np(model.position_embedding), to_np(model.channel_embedding)
    for c in range(C):
        h = to_np(model.rnn(model.embedding((x - last)[:, :, c].reshape(B, L // w, w))))
        queries = np.stack([np.concatenate([pos[j], chan[c]]) for j in range(m)])  # [m, d]
        q = np.tile(queries, (B, 1))[:, None, :].astype("float32")               # [B*m, 1, d]
        hy = model.rnn(q, initial_state=np.repeat(h, m, axis=0))                  # (b, j) order
        expected = to_np(model.head(hy)).reshape(B, m * w) + last[:, :, c]
        np.testing.assert_allclose(y[:, :, c], expected, atol=1e-5, err_msg=f"channel {c}")


def test_segrnn_bad_arguments():
    with pytest.raises(ValueError, match="horizon 100 is not a multiple of the segment length 24"):
        SegRNN(96, 100, 7, segment=24)
    with pytest.raises(ValueError, match="norm must be one of"):
        SegRNN(96, 96, 7, norm="zscore")
    with pytest.raises(ValueError, match="Unknown variant"):
        SegRNN(96, 96, 7, variant="lstm")


# ---------------------------------------------------------------- training
@needs_data
def test_tiny_training_preset_round_trip(ett, data, tmp_path):
    hp = ett.hparams(quick=True, overrides={"units": 8, "max_train_windows": 96,
                                            "max_val_windows": 64, "variant": "mgu2"})
    result = ett.train(hp, data, tmp_path / "run", epochs=1, quick=True, verbose=0,
                       command="test")
    test = result.metrics["test"]
    assert test["windows"] == data.num_windows("test", 96, 96) == 2785  # every test window
    assert 0 < test["mse"] < 3 and 0 < test["mae"] < 2
    meta = result.metadata
    assert meta["quick"] is True and meta["profile"] == "quick"
    assert meta["data"]["files"][0]["sha256"] == (
        "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066")
    assert meta["versions"]["backend"] == BACKEND and meta["training"]["time_s"] > 0
    assert meta["preprocessing"]["columns"][-1] == "OT"
    assert "(ETTh1, 7 series)" in meta["description"]
    loaded = zoo.from_preset(tmp_path / "run")
    x, y = data.windows("test", 96, 96, scaled=False)
    np.testing.assert_allclose(ett.predict(loaded, x[:5]), ett.predict(result.model, x[:5]),
                               rtol=1e-5, atol=1e-4)
    # a finished run is not silently retrained: it needs overwrite (--overwrite)
    before = (tmp_path / "run" / "preset" / "metadata.json").read_text()
    with pytest.raises(FileExistsError, match="holds a finished run.*--overwrite"):
        ett.train(hp, data, tmp_path / "run", epochs=1, quick=True, verbose=0, command="test")
    assert (tmp_path / "run" / "preset" / "metadata.json").read_text() == before
    again = ett.train(dict(hp, variant="gru"), data, tmp_path / "run", epochs=1, quick=True,
                      verbose=0, command="test", overwrite=True)
    assert again.resumed_from == 0 and again.metadata["training"]["runs"] == 1
    assert zoo.from_preset(tmp_path / "run").zoo_preset.metadata["hparams"]["variant"] == "gru"


# ---------------------------------------------------------- committed preset
def test_committed_preset_metadata(committed):
    meta = committed.zoo_preset.metadata
    assert meta["model"] == "ett-forecasting"
    for key in ("metrics", "data", "hardware", "training", "versions", "hparams"):
        assert meta[key], key
    assert meta["training"]["command"].startswith("grukit ")
    size = sum(p.stat().st_size for p in committed.zoo_preset.path.iterdir())
    assert size < 3_000_000, f"the preset should stay small, it is {size} bytes"
    # the card's table against this metadata: test_presets_reproduce.py


@FULL_SETS_PASS[96]
@needs_data
def test_committed_preset_reproduces_its_test_metrics_and_logs_without_printing(
        ett, data, capsys, caplog):
    """The committed preset's test metrics, measured again from Python. The library prints
    nothing: it logs to the 'grukit' logger, which the command line shows on stdout
    (test_cli_evaluate_horizon_reproduces_the_preset)."""
    import logging

    logger = logging.getLogger("grukit")
    saved = logger.handlers[:], logger.level
    logger.handlers[:] = []  # as in a fresh Python session: nobody has asked for the log
    try:
        with caplog.at_level(logging.INFO, logger="grukit"):
            metrics, meta = ett.evaluate_preset(data=data)
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
    assert capsys.readouterr().out == ""
    assert "evaluate: measuring on the test split" in caplog.text
    assert "evaluate: done in" in caplog.text
    assert meta["hparams"]["horizon"] == 96
    assert metrics["windows"] == meta["metrics"]["test"]["windows"]
    assert metrics["mse"] == pytest.approx(meta["metrics"]["test"]["mse"], rel=2e-4)
    assert metrics["mae"] == pytest.approx(meta["metrics"]["test"]["mae"], rel=2e-4)
    # and the validation metrics the card quotes
    validation, _ = ett.evaluate_preset(data=data, split="validation")
    assert validation["mse"] == pytest.approx(meta["metrics"]["validation"]["mse"], rel=2e-4)


def test_committed_preset_predicts_and_names_bad_windows(ett, committed):
    L, H = committed.lookback, committed.horizon
    window = ett.serving_sample(committed.zoo_preset)[0]
    forecast = ett.predict(committed, window)
    assert forecast.shape == (H, 7) and forecast.dtype == np.float32
    assert np.isfinite(forecast).all()
    batch = ett.predict(committed, np.stack([window, window + 1]))
    assert batch.shape == (2, H, 7)
    np.testing.assert_allclose(batch[0], forecast, rtol=1e-5, atol=1e-4)
    bad = window.copy()
    bad[3, 6] = np.nan
    cases = [(window[:-1], f"last {L} rows .*got {L - 1} rows"),
             (window[:, :6], r"expected 7 columns \(HUFL, .*OT\); got 6"),
             (bad, "NaN/infinite value.*row 3, column OT"),
             (np.full((L, 7), np.inf), "NaN/infinite"),
             (window[None, None], "expected a window"),
             ([["a"] * 7] * L, "must be numbers")]
    for inputs, match in cases:
        with pytest.raises(ValueError, match=match):
            ett.predict(committed, inputs)
    bare = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(committed))
    with pytest.raises(ValueError, match="needs the preset's standardisation"):
        ett.predict(bare, window)


# -------------------------------------------------------- per-horizon presets
@pytest.fixture(scope="module")
def by_horizon(ett):
    return {h: ett.load(horizon=h) for h in HORIZONS}


def test_a_committed_preset_per_horizon(ett, by_horizon):
    assert ett.committed_horizons() == list(HORIZONS)
    assert zoo.load("ett-forecasting").horizon == 96  # preset/ is the default
    for h, model in by_horizon.items():
        meta = model.zoo_preset.metadata
        assert model.horizon == meta["hparams"]["horizon"] == h
        assert meta["preprocessing"]["lookback"] == model.lookback
        assert meta["metrics"]["test"]["windows"] == 2881 - h  # every test window
        assert meta["training"]["command"].startswith("grukit ")
        size = sum(p.stat().st_size for p in model.zoo_preset.path.iterdir())
        # 1.1 MB (96, MGU d=256), 4.3 MB (192, MGU d=512), 3.2 MB (336, MGU2 d=512),
        # 2.3 MB (720, minGRU d=512): float32 weights
        assert size < 7_000_000, f"the h{h} preset should stay small, it is {size} bytes"
    with pytest.raises(ValueError, match="no committed preset for horizon 48; committed "
                                         "horizons: 96, 192, 336, 720"):
        ett.load(horizon=48)
    with pytest.raises(ValueError, match="forecasts 96 steps, not --horizon 192"):
        ett.load(ett.preset_dir(), horizon=192)


def test_presets_use_the_configuration_their_search_chose(ett, by_horizon):
    """Each preset's hyperparameters are its own horizon's search's best trial's
    (experiments/ett_forecasting/search/h<H>/, the model card's rule), that trial is the
    lowest validation MSE in the committed trial table, the training command names the
    search's best_hparams.json, and hparams.json's profile preset-h<H> (what `zoo train
    --horizon H` uses) is that configuration."""
    import csv

    root = Path(REPO) / "experiments" / "ett_forecasting" / "search"
    for name in (f"h{h}" for h in HORIZONS):
        rows = list(csv.DictReader(open(root / name / "trials.csv")))
        done = [r for r in rows if r["status"] == "COMPLETED"]
        assert len(done) >= 20, f"search {name}: {len(done)} completed trials"
        best = min(done, key=lambda r: float(r["val_loss"]))
        chosen = json.loads((root / name / "best_hparams.json").read_text())
        for key in ("variant", "units", "segment", "lookback", "dropout", "learning_rate"):
            assert f"{chosen[key]:.4g}" == best[key] if isinstance(chosen[key], float) \
                else str(chosen[key]) == best[key], (name, key)
    for h in HORIZONS:
        name, meta = f"h{h}", by_horizon[h].zoo_preset.metadata
        chosen = json.loads((root / name / "best_hparams.json").read_text())
        assert meta["hparams"] == {**chosen, "horizon": h}, f"h{h}"
        assert ett.default_hparams(profile=f"preset-h{h}") == meta["hparams"], f"h{h}"
        assert f"search/{name}/best_hparams.json" in meta["training"]["command"], \
            meta["training"]["command"]


@needs_data
@pytest.mark.xla_optimized
@pytest.mark.parametrize("horizon", [pytest.param(h, marks=FULL_SETS_PASS[h])
                                     for h in HORIZONS if h != 96])
def test_cli_evaluate_horizon_reproduces_the_preset(ett, capsys, monkeypatch, horizon):
    """`grukit zoo evaluate --horizon H` reproduces the card's numbers on the full test set,
    for every horizon but 96 (whose preset is the default:
    test_committed_preset_reproduces_its_test_metrics_and_logs_without_printing). The command
    shows the library's log (its progress) on stdout, then its table."""
    monkeypatch.setenv("GRUKIT_DATA_DIR", DATA_DIR)
    assert main(["zoo", "evaluate", "ett-forecasting", "--horizon", str(horizon)]) == 0
    out = capsys.readouterr().out
    assert "evaluate: loading the data" in out and "evaluate: done in" in out, out
    for key in ("mse", "mae", "windows"):
        line = next(line for line in out.splitlines() if line.split()[:1] == [key])
        measured, recorded = map(float, line.split()[1:3])
        assert measured == pytest.approx(recorded, rel=2e-4), key
    # the preset's metadata, read (not the four models `by_horizon` builds: one is used here)
    metadata = read_metadata(ett.preset_for(horizon))
    assert recorded == metadata["metrics"]["test"]["windows"]


def test_cli_horizon_errors(ett, capsys):
    with pytest.raises(SystemExit) as e:
        main(["zoo", "evaluate", "ett-forecasting", "--horizon", "48"])
    assert e.value.code == 2
    assert "no committed preset for horizon 48" in capsys.readouterr().err
    preset = str(ett.preset_dir())
    with pytest.raises(SystemExit):
        main(["zoo", "export", "ett-forecasting", "--preset", preset, "--horizon", "192"])
    assert "forecasts 96 steps, not --horizon 192" in capsys.readouterr().err
    assert main(["zoo", "predict", "ett-forecasting", "--horizon", "192", "--preset", preset,
                 "--index", "0"]) == 2
    assert "forecasts 96 steps, not --horizon 192" in capsys.readouterr().err


def test_horizon_preset_predicts_and_names_bad_windows(ett, by_horizon):
    model = by_horizon[720]
    window = ett.serving_sample(model.zoo_preset)[0]
    assert ett.predict(model, window).shape == (720, 7)
    bad = window.copy()
    bad[10, 0] = np.inf
    for inputs, match in [(bad, "row 10, column HUFL"), (window[1:], "got 719 rows"),
                          (np.concatenate([window, window[:, :1]], axis=1), "got 8")]:
        with pytest.raises(ValueError, match=match):
            ett.predict(model, inputs)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="runs once, in the TF pass")
def test_saved_model_serves_raw_windows_and_rejects_bad_ones(ett, by_horizon, tmp_path):
    import tensorflow as tf

    model = by_horizon[192]
    out = ett.export(tmp_path / "ett192", preset=model.zoo_preset.path, verify=False,
                     verbose=False)
    served = tf.saved_model.load(str(out))
    windows = ett.serving_sample(model.zoo_preset)                   # [3, 720, 7], CSV units
    y = served.serve(tf.constant(windows)).numpy()
    assert y.shape == (3, 192, 7)
    np.testing.assert_allclose(y, ett.predict(model, windows), rtol=1e-4, atol=1e-3)
    for value in (np.nan, np.inf):
        bad = windows.copy()
        bad[1, 5, 6] = value
        with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or infinite values"):
            served.serve(tf.constant(bad))
    for bad, shape in [(windows[:, 1:], r"\(3, 719, 7\)"), (windows[:, :, :6], r"\(3, 720, 6\)")]:
        with pytest.raises(TypeError, match=shape + r".*\(None, 720, 7\)"):
            served.serve(tf.constant(bad))


# ---------------------------------------------------------------- CSV, CLI
def test_read_window_csv(tmp_path):
    cols = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    rows = np.arange(21, dtype="float32").reshape(3, 7)
    with_header = tmp_path / "a.csv"
    with_header.write_text("date,OT,HUFL,HULL,MUFL,MULL,LUFL,LULL\n" + "".join(
        f"2018-01-01 0{i}:00:00,{r[6]},{','.join(map(str, r[:6]))}\n" for i, r in enumerate(rows)))
    np.testing.assert_array_equal(read_window_csv(with_header, cols), rows)
    bare = tmp_path / "b.csv"
    bare.write_text("".join(",".join(map(str, r)) + "\n" for r in rows))
    np.testing.assert_array_equal(read_window_csv(bare, cols), rows)
    missing = tmp_path / "c.csv"
    missing.write_text("date,HUFL\n2018,1\n")
    with pytest.raises(ValueError, match=r"lacks columns \['HULL'"):
        read_window_csv(missing, cols)
    junk = tmp_path / "d.csv"
    junk.write_text("1,2,3,4,5,6,7\n1,2,x,4,5,6,7\n")
    with pytest.raises(ValueError, match="line 2: expected 7 numbers"):
        read_window_csv(junk, cols)


@needs_data
def test_cli_predict_index_and_input(committed, data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GRUKIT_DATA_DIR", DATA_DIR)
    L, H = committed.lookback, committed.horizon
    assert main(["zoo", "predict", "ett-forecasting", "--index", "7"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if re.match(r"^\d+,", line)]
    assert len(rows) == H and out.count("step,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT") == 1
    assert "standardised MSE" in out
    x, _ = data.windows("test", L, H, scaled=False)
    window = tmp_path / "window.csv"
    window.write_text("HUFL,HULL,MUFL,MULL,LUFL,LULL,OT\n" + "".join(
        ",".join(f"{v:.6f}" for v in r) + "\n" for r in np.concatenate([x[6][:5], x[7]])))
    forecast = tmp_path / "forecast.csv"
    assert main(["zoo", "predict", "ett-forecasting", "--input", str(window),
                 "--output", str(forecast)]) == 0
    again = [line for line in capsys.readouterr().out.splitlines() if re.match(r"^\d+,", line)]
    parse = lambda lines: np.array([[float(v) for v in line.split(",")] for line in lines])
    np.testing.assert_allclose(parse(again), parse(rows), atol=2e-3)  # its last L rows: window 7
    assert len(forecast.read_text().splitlines()) == H + 1
    assert main(["zoo", "predict", "ett-forecasting", "--index", "999999"]) == 2
    assert "--index must be in [0, 2784]" in capsys.readouterr().err


# ------------------------------------------------------------------- search
@one_pass("torch", "jax", "tensorflow", why="one search is enough")
@needs_data
def test_local_search_writes_table_and_resumes(ett, data, tmp_path, capsys):
    hp = ett.hparams(quick=True, overrides={"max_train_windows": 64, "max_val_windows": 64})
    fixed = {"units": 8, "max_train_windows": 64, "max_val_windows": 64}
    rows = ett.tune(hp, data, tmp_path, tuner="bayesian", max_trials=1, epochs=1, quick=True,
                    fixed=fixed, verbose=0)
    assert len(rows) == 1 and rows[0]["status"] == "COMPLETED"
    assert rows[0]["hparams"]["units"] == 8 and rows[0]["params"] > 0
    assert (tmp_path / "tune" / "bayesian-quick" / "oracle.json").is_file()
    best = json.loads((tmp_path / "best_hparams.json").read_text())
    assert best["variant"] == rows[0]["hparams"]["variant"] and best["horizon"] == 96
    # the epochs the trial trained (1), not the profile's (hp["epochs"])
    assert best["epochs"] == 1 and hp["epochs"] != 1
    assert "| trial | status | variant | units |" in (tmp_path / "trials.md").read_text()
    capsys.readouterr()
    again = ett.tune(hp, data, tmp_path, tuner="bayesian", max_trials=2, epochs=1, quick=True,
                     fixed=fixed, verbose=0)
    assert "Reloading Tuner" in capsys.readouterr().out
    assert len(again) == 2 and rows[0] in again  # resumed: the first trial kept, one more run
    assert again[0]["val_loss"] <= again[1]["val_loss"]  # best first


@one_pass("torch", "jax", "tensorflow", why="one search is enough")
@needs_data
def test_search_time_limit_report_and_compare(ett, data, tmp_path, capsys, cli_log):
    """--time-limit starts no trial after the deadline (the search resumes later);
    --report runs nothing; --compare scores each variant's best trial's own checkpoint."""
    # every validation window, so that the trials' scores and evaluate()'s are on the same windows
    hp = ett.hparams(quick=True, overrides={"max_train_windows": 64, "max_val_windows": 0})
    fixed = {"units": 8, "max_train_windows": 64, "max_val_windows": 0}
    common = dict(tuner="random", epochs=1, quick=True, fixed=fixed, verbose=0)
    with pytest.raises(ValueError, match="time_limit"):
        ett.tune(hp, data, tmp_path, max_trials=3, time_limit=0, **common)
    with pytest.raises(ValueError, match="no search state"):
        ett.tune(hp, data, tmp_path / "empty", max_trials=3, report_only=True, **common)
    rows = ett.tune(hp, data, tmp_path, max_trials=5, time_limit=1e-6, **common)
    assert len(rows) == 1 and "time limit reached" in capsys.readouterr().out  # one, not five
    rows = ett.tune(hp, data, tmp_path, max_trials=3, **common)  # resumes towards max_trials
    assert len(rows) == 3 and all(r["status"] == "COMPLETED" for r in rows)
    reported = ett.tune(hp, data, tmp_path, max_trials=9, report_only=True, compare="variant",
                        **common)
    assert reported == rows  # nothing ran
    table = json.loads((tmp_path / "compare_variant.json").read_text())
    variants = {r["hparams"]["variant"] for r in rows}
    assert {t["variant"] for t in table} == variants
    for t in table:
        best = next(r for r in rows if r["hparams"]["variant"] == t["variant"])  # best first
        assert t["trial"] == best["trial"] and t["params"] == int(best["params"])
        # the checkpoint is the trial's best epoch: its validation score is the trial's
        assert t["scores"]["validation"]["mse"] == pytest.approx(best["val_loss"], rel=1e-4)
        assert t["scores"]["test"]["windows"] > 0
    md = (tmp_path / "compare_variant.md").read_text()
    assert md.startswith("| variant | trial | params | val_loss | validation_mse")
    with pytest.raises(ValueError, match="--compare nosuch"):
        ett.tune(hp, data, tmp_path, max_trials=3, report_only=True, compare="nosuch", **common)
