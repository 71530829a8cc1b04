"""The zoo's shared machinery (grukit.zoo): registry, hyperparameters, presets, CLI, and,
as subprocesses in one pass (``once``: the PyTorch pass when the run has it), resuming a
killed training and data parallel on JAX; the SavedModel export and its atomicity in the
TensorFlow pass. A distributed search of real processes: tests/test_zoo_tuning.py.

The model under test is ett-forecasting (the first zoo model), trained tiny with
--quick on slices of the real ETTh1 data ($GRUKIT_DATA_DIR/ett/ETTh1.csv; the tests
that need it fail without it under tests/run.sh, else are skipped).
"""
import csv
import json
import re
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import keras

import grukit.zoo as zoo
from grukit.__main__ import main
from grukit.zoo import presets
from conftest import BACKEND, DATA_DIR, REPO, once, one_pass

#: tests without a pass of their own run once, in this pass (conftest.py)
ONE_PASS = one_pass("torch", "jax", "tensorflow", why="zoo behaviour, on one backend")

ETT_CSV = os.path.join(DATA_DIR, "ett", "ETTh1.csv")
needs_data = pytest.mark.needs_data(ETT_CSV)
#: tests that export a SavedModel in this process need TensorFlow's pass
tf_only = pytest.mark.skipif(BACKEND != "tensorflow",
                             reason="exports a SavedModel in this process: the TF pass")

# A tiny, seconds-long ETT run for the subprocess tests.
TINY = ["--quick", "--set", "units=8", "--set", "max_train_windows=128",
        "--set", "max_val_windows=64"]


_JAX_CACHE = {}


@pytest.fixture(scope="module", autouse=True)
def _jax_compilation_cache(tmp_path_factory):
    """One persistent XLA compilation cache for this module's JAX subprocesses: the
    resumed run and the workers' repeated trials reuse compiled programs (half the CPU)."""
    _JAX_CACHE["dir"] = str(tmp_path_factory.mktemp("jax_cache"))
    yield
    _JAX_CACHE.clear()


def _env(backend="jax", **extra):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               GRUKIT_DATA_DIR=DATA_DIR, PYTHONUNBUFFERED="1")
    env.pop("XLA_FLAGS", None)
    if "dir" in _JAX_CACHE:
        env.update(JAX_COMPILATION_CACHE_DIR=_JAX_CACHE["dir"],
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    env.update(extra)
    return env


def _grukit(args, backend="jax", timeout=900, **env):
    proc = subprocess.run([sys.executable, "-m", "grukit", *args], env=_env(backend, **env),
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (f"grukit {' '.join(args)} failed ({proc.returncode}):\n"
                                  f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc.stdout


# ------------------------------------------------------------------ registry
def test_list_names_all_models_with_status():
    entries = {e.name: e for e in zoo.list()}
    assert {"imdb-sentiment", "char-lm", "ett-forecasting"} <= set(entries)
    ett = entries["ett-forecasting"]
    assert ett.status == "ready" and "SegRNN" in ett.description
    assert ett.directory == zoo.zoo_dir() / "ett_forecasting" == zoo.get("ett-forecasting").directory
    assert all(e.status == "ready" for e in entries.values()), entries


def test_get_unknown_and_aliases():
    assert zoo.get("ett_forecasting") is zoo.get("ETT-Forecasting") is zoo.get("ett-forecasting")
    with pytest.raises(ValueError, match=r"Unknown zoo model 'nope'.*ett-forecasting"):
        zoo.get("nope")
    with pytest.raises(ValueError, match="Unknown zoo model"):
        zoo.load("imdb")


def test_models_are_packages_with_their_data():
    """Each zoo model is an ordinary subpackage (imported by name, not from a path), and
    its hyperparameters, model card and committed presets sit inside it."""
    import importlib

    for entry in zoo.list():
        recipe = zoo.get(entry.name)
        package = importlib.import_module(f"grukit.zoo.models.{entry.directory.name}")
        assert type(recipe).__module__ == f"{package.__name__}.recipe"
        assert recipe.directory == Path(package.__file__).parent == entry.directory
        for name in ("hparams.json", "README.md", "preset/config.json",
                     "preset/model.weights.h5", "preset/metadata.json"):
            assert (entry.directory / name).is_file(), (entry.name, name)
    assert not hasattr(zoo, "_directory")  # no path-based lookup left


# ----------------------------------------------------------- hyperparameters
def test_hparams_defaults_profiles_and_overrides():
    ett = zoo.get("ett-forecasting")
    full, quick, cpu = ett.hparams(), ett.hparams(quick=True), ett.hparams(profile="cpu")
    assert (full["lookback"], full["units"], full["segment"]) == (720, 512, 24)  # SegRNN's
    assert quick["lookback"] == 96 and quick["max_train_windows"] > 0
    assert cpu["units"] == 128 and cpu["max_train_windows"] == 0
    assert ett.profiles() == ["quick", "cpu", "preset-h96", "preset-h192", "preset-h336",
                              "preset-h720"]
    # `zoo train --horizon H` trains the committed preset's configuration for H, unless a
    # profile, a hyperparameter file or --quick is named
    from types import SimpleNamespace

    for given, expected in ((dict(horizon=336), "preset-h336"), (dict(horizon=None), "preset-h96"),
                            (dict(horizon=336, profile="cpu"), "cpu"),
                            (dict(horizon=336, hparams="best.json"), None),
                            (dict(horizon=336, quick=True), None)):
        args = SimpleNamespace(**{"data": None, "profile": None, "hparams": None,
                                  "quick": False, **given})
        _, overrides = ett.options_from_args(args, "train")
        assert args.profile == expected, given
        if given["horizon"]:
            assert overrides["horizon"] == 336
    preset = ett.hparams(profile="preset-h336", overrides={"horizon": 336})
    assert preset == zoo.load("ett-forecasting", ett.preset_for(336)).zoo_preset.metadata["hparams"]
    hp = ett.hparams(quick=True, overrides={"variant": "mingru", "horizon": 192})
    assert (hp["variant"], hp["horizon"]) == ("mingru", 192)


@pytest.mark.parametrize("overrides, match", [
    ({"variant": "lstm"},
     r"ett-forecasting: hyperparameter 'variant' must be a grukit variant name \(gru, gru1.*"
     r"got 'lstm'\."),
    ({"horizon": 100}, r"horizon 100 is not a multiple of the segment length 24.*96, 192"),
    ({"horizon": 0}, r"hyperparameter 'horizon' must be a positive integer; got 0\."),
    ({"lookback": 100}, r"lookback 100 is not a multiple"),
    ({"units": -3}, r"'units' must be a positive integer; got -3\."),
    ({"units": True}, r"'units' must be a positive integer; got True\."),
    ({"patience": -1}, r"'patience' must be a non-negative integer \(.*0: never.*got -1\."),
    ({"norm": "z"}, r"'norm' must be one of 'last', 'mean', 'revin'; got 'z'\."),
    ({"dropout": 1.0}, r"'dropout' must be a number in \[0, 1\); got 1\.0\."),
    ({"learning_rate": "fast"}, r"'learning_rate' must be a positive number; got 'fast'\."),
    ({"learning_rate": float("nan")}, r"'learning_rate' must be a positive number; got nan\."),
    ({"colour": 3}, r"unknown hyperparameter 'colour'. Known: batch_size, dropout, epochs"),
    ({"colour": 3, "size": 1}, r"unknown hyperparameters 'colour', 'size'. Known: batch_size"),
])
def test_hparams_bad_values_are_named(overrides, match):
    with pytest.raises(ValueError, match=match):
        zoo.get("ett-forecasting").hparams(quick=True, overrides=overrides)


def test_unknown_profile():
    with pytest.raises(ValueError, match=r"unknown hyperparameter profile 'gpu'.*quick, cpu"):
        zoo.get("ett-forecasting").hparams(profile="gpu")


# ------------------------------------------------------------------ typed configs
ZOO_MODELS = ("ett-forecasting", "char-lm", "imdb-sentiment")


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_config_is_one_frozen_typed_documented_dataclass(name):
    import dataclasses

    from grukit.zoo.base import COMMON_HPARAMS, ZooConfig

    recipe = zoo.get(name)
    cls = recipe.config_class
    assert issubclass(cls, ZooConfig) and dataclasses.is_dataclass(cls)
    assert cls.__module__ == f"grukit.zoo.models.{name.replace('-', '_')}.config"
    config = cls()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.units = 1
    names = cls.field_names()
    assert set(COMMON_HPARAMS) <= set(names)
    assert all(f.type in ("int", "float", "str", "bool") for f in dataclasses.fields(cls))
    # the docstring lists every field, Args-style, and shows an example
    args, example = cls.__doc__.split("Args:")[1].split("Example:")
    for key in names:
        assert re.search(rf"^ +{key}: \S", args, re.M), (name, key)
    assert f"{cls.__name__}.from_dict(" in example
    # the plain dict round-trips; missing keys take the defaults; unknown keys are named
    assert list(config.to_dict()) == names
    assert cls.from_dict(config.to_dict()) == config
    assert recipe.validate_hparams({"units": 7}) == dict(config.to_dict(), units=7)
    assert recipe.hparams() == cls.from_dict(recipe.profile_overrides()).to_dict()
    with pytest.raises(ValueError, match=rf"^{name}: unknown hyperparameter 'colour'\. Known: "
                                         rf"{', '.join(sorted(names))}\.$"):
        cls.from_dict({"colour": 1})
    with pytest.raises(ValueError, match=rf"{name}: hyperparameters must be a dict"):
        cls.from_dict([("units", 7)])


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_profiles_hold_the_committed_presets_configurations(name):
    recipe = zoo.get(name)
    spec = json.loads((recipe.directory / "hparams.json").read_text())
    assert set(spec) == {"description", "profiles"} and "defaults" in spec["profiles"]
    assert recipe.profiles() == [p for p in spec["profiles"] if p != "defaults"]
    assert "quick" in recipe.profiles()
    profiles = {p: recipe.hparams(profile=p) for p in ["defaults", *recipe.profiles()]}
    assert profiles["quick"] == recipe.hparams(quick=True) != profiles["defaults"]
    metadata = sorted(recipe.directory.glob("preset*/metadata.json"))
    assert metadata
    for path in metadata:
        recorded = json.loads(path.read_text())["hparams"]
        assert recorded in profiles.values(), path
        assert recipe.config_class.from_record(recorded).to_dict() == recorded, path


def test_hparams_json_layout_and_bad_profiles_are_named(tmp_path, monkeypatch):
    ett = zoo.get("ett-forecasting")
    monkeypatch.setattr(type(ett), "directory", property(lambda self: tmp_path))
    path = tmp_path / "hparams.json"
    path.write_text(json.dumps({"defaults": {"units": 8}, "quick": {}}))  # the old layout
    with pytest.raises(ValueError, match=r'hparams.json: expected \{"description": \.\.\., '
                                         r'"profiles": \{"defaults"'):
        ett.hparams()
    path.write_text(json.dumps({"description": "", "profiles": {
        "defaults": {"epochs": 2}, "quick": {"segment": 5}, "odd": {"colour": 1}}}))
    assert ett.profiles() == ["quick", "odd"]
    assert ett.hparams()["epochs"] == 2 and ett.hparams(profile="defaults")["epochs"] == 2
    with pytest.raises(ValueError, match=r"horizon 96 is not a multiple of the segment length 5"
                                         r".*\(hparams.json, profile 'quick'\)"):
        ett.hparams(quick=True)
    with pytest.raises(ValueError, match=r"unknown hyperparameter 'colour'.*profile 'odd'"):
        ett.hparams(profile="odd")


def test_an_old_preset_lacking_newer_keys_is_evaluated_as_it_was_trained(tmp_path,
                                                                         monkeypatch):
    """A key missing from a preset's metadata takes the config's default, or -- where the
    default changed what a run does -- the value runs had before the key existed."""
    import shutil
    from types import SimpleNamespace

    ett = zoo.get("ett-forecasting")
    old = tmp_path / "preset"
    shutil.copytree(ett.preset_dir(), old)
    meta = json.loads((old / "metadata.json").read_text())
    recorded = dict(meta["hparams"])
    assert (recorded["max_val_windows"], recorded["lr_decay"], recorded["lr_decay_start"]) \
        == (0, 0.9, 3)
    for key in ("max_val_windows", "lr_decay", "lr_decay_start"):
        del meta["hparams"][key]
    (old / "metadata.json").write_text(json.dumps(meta))
    seen = []
    monkeypatch.setattr(ett, "evaluate", lambda model, data, hparams, split: (
        seen.append((hparams, split)) or {"mse": 1.0}))
    metrics, _ = ett.evaluate_preset(old, data=SimpleNamespace(source=None), split="validation")
    assert metrics == {"mse": 1.0}
    # max_val_windows: its default (0); the decay: a constant rate, as before it existed
    assert seen == [(dict(recorded, max_val_windows=0, lr_decay=1.0, lr_decay_start=0),
                     "validation")]


def test_recorded_configurations_in_experiments_stay_readable_and_equal():
    """experiments/ metadata written before the n-gram member, refit and recurrent_weight
    existed: every recorded value is kept, the missing ones are what those runs had."""
    files = sorted(Path(REPO, "experiments").rglob("*metadata.json"))
    assert len(files) >= 3
    for path in files:
        meta = json.loads(path.read_text())
        config = zoo.get(meta["model"]).config_class.from_record(meta["hparams"])
        assert {k: v for k, v in config.to_dict().items() if k in meta["hparams"]} \
            == meta["hparams"], path
    old = json.loads(Path(REPO, "experiments/imdb_sentiment/results/bigrams-scaled/"
                                "narrow-ligru-s300.metadata.json").read_text())["hparams"]
    assert "refit" not in old and "ngram_weighting" not in old
    config = zoo.get("imdb-sentiment").config_class.from_record(old)
    # not the defaults (refit true would evaluate with the train+validation vocabulary)
    assert (config.refit, config.ngram_weighting, config.recurrent_weight) == (False, "mean", 1.0)
    assert zoo.get("imdb-sentiment").hparams()["refit"] is True


# ------------------------------------------------------------------ presets
def _tiny_model():
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    return model


def test_preset_round_trip_is_atomic_and_lean(tmp_path):
    model = _tiny_model()
    model.fit(np.ones((4, 5, 3)), np.ones((4, 5, 2)), verbose=0)  # optimizer has state
    path = presets.save_preset(model, tmp_path / "p", {"model": None, "metrics": {"x": 1.0}},
                               assets={"vocab.txt": "a\nb\n"})
    assert sorted(os.listdir(path)) == ["assets", "config.json", "metadata.json",
                                        "model.weights.h5"]
    meta = presets.read_metadata(path)
    assert meta["format"] == presets.PRESET_FORMAT and meta["parameter_count"] == 8
    assert (path / "assets" / "vocab.txt").read_text() == "a\nb\n"
    import h5py

    with h5py.File(path / "model.weights.h5") as f:
        assert "optimizer" not in f, "a preset holds no optimizer state"
    loaded = presets.load_preset(path)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)),
                               keras.ops.convert_to_numpy(model(x)), atol=1e-6)
    assert loaded.zoo_preset.metadata["metrics"] == {"x": 1.0}
    # replacing a preset leaves no temporary siblings; an unrelated directory is refused
    presets.save_preset(model, path, {"metrics": {"x": 2.0}})
    assert presets.read_metadata(path)["metrics"] == {"x": 2.0}
    assert sorted(os.listdir(tmp_path)) == ["p"]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="refusing to replace"):
        presets.save_preset(model, tmp_path / "notes", {})
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


def test_failed_save_leaves_previous_preset(tmp_path, monkeypatch):
    model = _tiny_model()
    path = presets.save_preset(model, tmp_path / "p", {"metrics": {"v": 1}})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(presets, "_save_weights_without_optimizer", boom)
    with pytest.raises(OSError, match="disk full"):
        presets.save_preset(model, path, {"metrics": {"v": 2}})
    assert presets.read_metadata(path)["metrics"] == {"v": 1}
    assert sorted(os.listdir(tmp_path)) == ["p"]


def test_missing_preset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a grukit zoo preset: missing config.json"):
        zoo.load("ett-forecasting", tmp_path)
    with pytest.raises(FileNotFoundError):
        zoo.from_preset(tmp_path)


# --------------------------------------------------------------------- CLI
def test_cli_list(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "ett-forecasting" in out and "ready" in out and "char-lm" in out


@pytest.mark.parametrize("argv, match", [
    (["zoo", "train", "ett-forecasting", "--quick", "--variant", "lstm"],
     r"Unknown variant 'lstm'. Expected one of: gru"),
    (["zoo", "train", "ett-forecasting", "--quick", "--horizon", "100"],
     r"horizon 100 is not a multiple of the segment length"),
    (["zoo", "tune", "ett-forecasting", "--quick", "--horizon", "-5"],
     r"--horizon must be a positive integer"),
    (["zoo", "train", "ett-forecasting", "--quick", "--set", "units"], r"--set takes KEY=VALUE"),
    (["zoo", "train", "ett-forecasting", "--quick", "--data-dir", "/nonexistent/data"],
     r"data folder '/nonexistent/data' does not exist"),
    (["zoo", "train", "ett-forecasting", "--quick", "--data", "/nonexistent/ETTh2.csv"],
     r"/nonexistent/ETTh2.csv"),
    (["zoo", "evaluate", "ett-forecasting", "--preset", "/nonexistent/preset"],
     r"not a grukit zoo preset"),
    (["zoo", "export", "ett-forecasting"], r"--out DIR is required"),
    (["zoo", "tune", "ett-forecasting", "--quick", "--max-trials", "0"],
     r"--max-trials must be a positive integer"),
    (["zoo", "tune", "ett-forecasting", "--quick", "--time-limit", "-3"],
     r"--time-limit must be a positive number of seconds"),
    (["zoo", "tune", "ett-forecasting", "--quick", "--worker-timeout", "2"],
     r"--worker-timeout must be a finite number of seconds >= 10"),
    (["zoo", "train", "ett-forecasting", "--quick", "--seed", "-1"],
     r"--seed must be an integer >= 0; got -1"),
    (["zoo", "tune", "ett-forecasting", "--quick", "--shuffle-seed", "-2"],
     r"--shuffle-seed must be an integer >= 0; got -2"),
])
def test_cli_bad_input_is_named(argv, match, capsys, monkeypatch):
    monkeypatch.setenv("GRUKIT_DATA_DIR", "/nonexistent/data")
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("KERAS_HOME", "/nonexistent/keras-home")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err
    import re

    assert re.search(match, err), err


def test_cli_model_options_need_the_name_first(capsys):
    with pytest.raises(SystemExit):
        main(["zoo", "predict", "ett-forecasting"])  # --input or --index is required
    assert "one of the arguments --input --index is required" in capsys.readouterr().err


def test_cli_parses_once_and_lists_each_models_options(capsys):
    """Each model's options are declared up front: `--help` of a model lists them, and an
    unknown model or option is refused by the one parse (exit 2), naming the choices."""
    with pytest.raises(SystemExit) as exit_:
        main(["zoo", "train", "ett-forecasting", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in ("--horizon", "--data", "--overwrite", "--profile", "--set"):
        assert option in out, option
    with pytest.raises(SystemExit) as exit_:
        main(["zoo", "train", "nope", "--quick"])
    assert exit_.value.code == 2
    assert re.search(r"invalid choice: 'nope' \(choose from 'imdb-sentiment'.*'ett-forecasting'",
                     capsys.readouterr().err)
    with pytest.raises(SystemExit) as exit_:  # a predict option is not a train option
        main(["zoo", "train", "ett-forecasting", "--quick", "--index", "3"])
    assert exit_.value.code == 2 and "unrecognized arguments: --index 3" in capsys.readouterr().err


def test_cli_missing_optional_dependency_is_named_before_any_output(capsys, monkeypatch):
    """A backend or matplotlib that is not installed ends as `error: ...` with exit 2 and
    the pip command that fixes it, before the command prints anything."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "jax" else real(name, *a))
    assert main(["--backend", "jax", "variants"]) == 2
    captured = capsys.readouterr()
    assert "error: --backend jax needs jax, which is not installed: pip install " \
           "'grukit[jax]'" in captured.err and captured.out == ""
    monkeypatch.setattr(importlib.util, "find_spec", real)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    assert main(["zoo", "predict", "ett-forecasting", "--index", "0", "--plot", "x.png"]) == 2
    captured = capsys.readouterr()
    assert "error: --plot needs matplotlib, which is not installed: pip install " \
           "'grukit[plot]'" in captured.err
    assert "Forecast" not in captured.out
    assert main(["zoo", "predict", "imdb-sentiment", "a fine film", "--gates", "g.png"]) == 2
    assert "error: --gates needs matplotlib" in capsys.readouterr().err
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "keras_tuner" else real(name, *a))
    assert main(["zoo", "tune", "ett-forecasting", "--quick"]) == 2
    assert "error: grukit zoo tune needs keras_tuner, which is not installed: pip install " \
           "'grukit[zoo]'" in capsys.readouterr().err


# ------------------------------------------------------ TF pass: subprocesses
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_data
def test_cli_trains_and_evaluates_on_another_ett_file(tmp_path, capsys, cli_log):
    # The recipe works for any ETT-format CSV (--data path/to/ETTh2.csv). The
    # other file here is ETTh1 from its row 3000 on, saved as ETTh2.csv (hourly, 14,420
    # rows): its split, statistics and test windows differ from ETTh1's. The command runs
    # in this process (`python -m grukit` itself: the subprocess tests below).
    with open(ETT_CSV) as f:
        lines = f.readlines()
    other = tmp_path / "ETTh2.csv"
    other.write_text(lines[0] + "".join(lines[1 + 3000:]))
    out = tmp_path / "run"
    assert main(["zoo", "train", "ett-forecasting", *TINY, "--epochs", "1", "--data", str(other),
                 "--out", str(out)]) == 0
    meta = presets.read_metadata(out / "preset")
    assert meta["preprocessing"]["data_name"] == "ETTh2"
    assert "ETTh2" in meta["description"] and "ETTh1" not in meta["description"]
    assert [f["name"] for f in meta["data"]["files"]] == ["ETTh2.csv"]
    etth1_mean = np.mean(np.loadtxt(ETT_CSV, delimiter=",", skiprows=1, usecols=7,
                                    max_rows=8640))
    assert abs(meta["preprocessing"]["mean"][-1] - etth1_mean) > 1.0  # OT statistics differ
    capsys.readouterr()
    assert main(["zoo", "evaluate", "ett-forecasting", "--preset", str(out / "preset"),
                 "--data", str(other)]) == 0
    stdout = capsys.readouterr().out
    row = next(line.split() for line in stdout.splitlines() if line.split()[:1] == ["mse"])
    assert float(row[1]) == pytest.approx(meta["metrics"]["test"]["mse"], rel=1e-5), stdout
    assert row[1] == row[2], stdout  # measured == in the preset


@once
@needs_data
def test_training_resumes_after_sigkill(tmp_path):
    out = tmp_path / "run"
    args = ["zoo", "train", "ett-forecasting", *TINY, "--set", "patience=0", "--epochs", "8",
            "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "grukit", *args], env=_env("jax"), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    state, deadline = out / "train_state.json", time.time() + 900
    try:
        while True:  # wait until epoch 2 has finished (backup + state written)
            assert proc.poll() is None, f"training ended before the kill:\n{proc.stdout.read()}"
            assert time.time() < deadline, "no epoch finished in time"
            try:
                if json.loads(state.read_text())["epochs_done"] >= 2:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "preset").exists()
    backed_up = json.loads((out / "backup" / "training_metadata.json").read_text())["epoch"]
    assert 2 <= backed_up < 8
    stdout = _grukit(args)
    assert f"Resuming from epoch {backed_up} " in stdout, stdout[-3000:]
    assert "Epoch 1/8" not in stdout and f"Epoch {backed_up + 1}/8" in stdout
    meta = presets.read_metadata(out / "preset")
    assert meta["training"]["epochs_run"] == 8 and meta["training"]["runs"] == 2
    assert (meta["training"]["seed"], meta["training"]["shuffle_seed"]) == (0, 0)
    with open(out / "train_log.csv") as f:
        epochs = [int(r["epoch"]) for r in csv.DictReader(f)]
    assert epochs[-1] == 7 and epochs.count(backed_up) == 1, epochs
    assert not (out / "backup").exists()  # removed once training completed


class _Recorded(Exception):
    """Stops a run once the engine has asked for the training data."""


def _recording_recipe(calls, takes_seed=True):
    """The ETT recipe, its ``dataset`` recording each call's split, ``training`` and
    ``seed``, stopping the run at the training data; or, without ``takes_seed``, with a
    ``dataset`` of the older contract that takes no ``seed``."""
    from grukit.zoo.models.ett_forecasting.recipe import EttForecasting

    class Recording(EttForecasting):
        if takes_seed:
            def dataset(self, data, hparams, split, training=False, seed=0):
                calls.append((split, training, seed))
                if training:
                    raise _Recorded
                return super().dataset(data, hparams, split, training, seed)
        else:
            def dataset(self, data, hparams, split, training=False):
                calls.append((split, training, None))
                return super().dataset(data, hparams, split, training)

    return Recording()


@needs_data
def test_train_and_search_shuffle_by_the_run_seed(tmp_path):
    """The run's seed reaches the training order (it used to be seed 0 whatever the run's
    seed), unless shuffle_seed fixes the order; a recipe whose dataset() cannot take the
    seed stops the run with a clear error."""
    import keras_tuner

    from grukit.zoo.training import train

    ett = zoo.get("ett-forecasting")
    data = ett.load_data(data_dir=DATA_DIR)
    hp = ett.hparams(quick=True, overrides={"units": 8, "max_train_windows": 128,
                                            "max_val_windows": 64, "epochs": 1})
    calls = []
    with pytest.raises(_Recorded):
        train(_recording_recipe(calls), hp, data, tmp_path / "run", seed=5, verbose=0)
    assert calls == [("train", True, 5)]
    calls.clear()
    with pytest.raises(_Recorded):
        train(_recording_recipe(calls), hp, data, tmp_path / "run", seed=5, shuffle_seed=2,
              verbose=0)
    assert calls == [("train", True, 2)]
    with pytest.raises(ValueError, match=r"shuffle_seed must be None \(the order follows the "
                                         r"run's seed\) or an integer >= 0; got -1"):
        train(_recording_recipe(calls), hp, data, tmp_path / "run", shuffle_seed=-1)
    for seeds, order in (({"seed": 7}, 7), ({"seed": 7, "shuffle_seed": 3}, 3)):
        calls.clear()
        hypermodel = _recording_recipe(calls).hypermodel(data, hp, quick=True, **seeds)
        trial = keras_tuner.HyperParameters()
        with pytest.raises(_Recorded):
            hypermodel.fit(trial, hypermodel.build(trial))
        assert calls[0] == ("train", True, order), calls
    calls.clear()
    with pytest.raises(TypeError, match=r"Recording.dataset\(\) takes no `seed`; it must "
                                        r"accept dataset\(data, hparams, split, training=False, "
                                        r"seed=0\)"):
        train(_recording_recipe(calls, takes_seed=False), hp, data, tmp_path / "old",
              seed=5, verbose=0)
    # the seeds order the batches; 0 is the order every committed preset trained with
    first = [ett.dataset(data, hp, "train", training=True, seed=s)[0][0] for s in (0, 0, 1)]
    assert np.array_equal(first[0], first[1]) and not np.array_equal(first[0], first[2])
    assert np.array_equal(first[0], ett.dataset(data, hp, "train", training=True)[0][0])


def test_an_interrupted_run_resumes_only_with_its_seed(tmp_path):
    from grukit.zoo.training import _TrainState

    hp = {"units": 8}
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "training_metadata.json").write_text('{"epoch": 2}')
    state = {"best": 0.5, "best_epoch": 1, "wait": 0, "epochs_done": 2, "time_s": 3.0,
             "runs": 1, "hparams": hp, "seed": 4, "shuffle_seed": 4}
    (tmp_path / "train_state.json").write_text(json.dumps(state))
    for other in ((0, 0), (4, 1), (1, 4)):
        with pytest.raises(ValueError, match=r"an interrupted run with seed 4 and training "
                                             r"order seed 4, not .*Re-run its command \(--seed "
                                             r"4 --shuffle-seed 4\) to finish it"):
            _TrainState(tmp_path, "val_loss", "min", 3, hp, *other)
    resumed = _TrainState(tmp_path, "val_loss", "min", 3, hp, 4, 4)
    assert (resumed.epochs_done, resumed.best, resumed.seed) == (2, 0.5, 4)
    del state["seed"], state["shuffle_seed"]  # written before the seeds were kept: any
    (tmp_path / "train_state.json").write_text(json.dumps(state))
    assert _TrainState(tmp_path, "val_loss", "min", 3, hp, 9, 2).epochs_done == 2


@once
@needs_data
def test_data_parallel_on_two_jax_cpu_devices(tmp_path):
    out = tmp_path / "dp"
    stdout = _grukit(["zoo", "train", "ett-forecasting", *TINY, "--set", "max_train_windows=131",
                      "--epochs", "1", "--out", str(out)], "jax",
                     XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert "Data parallel over 2 devices: cpu:0, cpu:1" in stdout, stdout
    assert "Variables replicated on 2 devices" in stdout
    meta = presets.read_metadata(out / "preset")
    assert meta["training"]["data_parallel_devices"] == ["cpu:0", "cpu:1"]
    assert meta["metrics"]["test"]["windows"] == 2785 and np.isfinite(meta["metrics"]["test"]["mse"])


@tf_only
def test_export_of_the_jax_trained_preset_serves_without_grukit(tmp_path):
    """The committed preset (trained on JAX) exported under TensorFlow: verified in a
    fresh process that does not import grukit, renamed into place over a previous
    export; the SavedModel serves windows in the data's units."""
    import tensorflow as tf

    ett = zoo.get("ett-forecasting")
    model = zoo.load("ett-forecasting")
    assert model.zoo_preset.metadata["versions"]["backend"] == "jax"
    out = tmp_path / "export"
    out.mkdir()
    tf.saved_model.save(tf.Module(), str(out))  # a previous export, to be replaced
    assert ett.export(out, verbose=False) == out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    meta = json.loads((out / "assets.extra" / "metadata.json").read_text())
    assert meta == model.zoo_preset.metadata
    window = ett.serving_sample(model.zoo_preset)[:2] + 1.0
    loaded = tf.saved_model.load(str(out))
    served = loaded.serve(tf.constant(window)).numpy()
    assert served.shape == (2, model.horizon, 7)
    np.testing.assert_allclose(served, ett.predict(model, window), rtol=1e-4, atol=1e-3)


@one_pass("torch", "jax", why="the delegation to TensorFlow from another backend")
def test_export_on_another_backend_runs_under_tensorflow(tmp_path, monkeypatch, caplog):
    import logging

    from grukit.zoo import export

    calls = []

    class Done:
        returncode = 0

    def fake_run(cmd, env=None, **kwargs):
        calls.append((cmd, env))
        return Done()

    monkeypatch.setattr(export.subprocess, "run", fake_run)
    out = tmp_path / "export"
    with caplog.at_level(logging.INFO, logger="grukit"):
        zoo.get("ett-forecasting").export(out)
    (cmd, env), = calls
    assert env["KERAS_BACKEND"] == "tensorflow"
    assert cmd[1:] == ["-m", "grukit", "zoo", "export", "ett-forecasting", "--preset",
                       str(zoo.get("ett-forecasting").preset_dir()), "--out", str(out)]
    assert "export runs under the TensorFlow backend" in caplog.text  # logged, not printed


@tf_only
def test_failed_export_leaves_no_partial_dir_and_keeps_the_previous(tmp_path, monkeypatch):
    from grukit.zoo import export

    ett = zoo.get("ett-forecasting")
    out = tmp_path / "export"
    out.mkdir()
    (out / "saved_model.pb").write_bytes(b"previous export")

    def wrong(path, sample, timeout=600):
        assert (Path(path) / "saved_model.pb").is_file()
        return np.zeros((len(sample), 1, 1), "float32")

    monkeypatch.setattr(export, "verify_saved_model", wrong)
    with pytest.raises(RuntimeError, match="disagrees with the Keras model"):
        ett.export(out, verbose=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    assert sorted(os.listdir(out)) == ["saved_model.pb"]
    assert (out / "saved_model.pb").read_bytes() == b"previous export"
    # a directory that is not an export is refused before any work
    other = tmp_path / "docs"
    other.mkdir()
    (other / "notes.md").write_text("keep")
    with pytest.raises(FileExistsError, match="refusing to replace"):
        ett.export(other, verbose=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "export"]


# --------------------------------------------------------------------- docs
def test_zoo_model_methods_have_docstrings():
    """Every public method of ZooModel is documented (the public API's examples are run by
    tests/test_docstrings.py)."""
    import inspect

    missing = []
    for name, member in inspect.getmembers(zoo.ZooModel, inspect.isfunction):
        if not name.startswith("_") and not (member.__doc__ or "").strip():
            missing.append(f"ZooModel.{name}")
    assert not missing, missing


def test_only_the_command_modules_print():
    """Library code logs (or writes to a stream it is handed); a bare print() is allowed only
    in the command-line modules and in scripts it runs in subprocesses."""
    import ast

    commands = {"__main__.py", os.path.join("zoo", "cli.py"), "bench.py"}
    root = os.path.join(REPO, "grukit")
    found = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if not name.endswith(".py") or os.path.relpath(path, root) in commands:
                continue
            for node in ast.walk(ast.parse(open(path).read())):
                if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print"
                        and not any(k.arg == "file" for k in node.keywords)):
                    found.append(f"{os.path.relpath(path, REPO)}:{node.lineno}")
    assert found == [], found


@once
def test_missing_data_fails_under_run_sh_and_skips_otherwise(tmp_path):
    """tests/run.sh sets GRUKIT_TEST_DATA=required: a test whose data file is absent fails
    and names the file; with GRUKIT_TEST_DATA=skip-missing it is skipped."""
    import shutil

    shutil.copy(os.path.join(REPO, "tests", "conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_needs.py").write_text(textwrap.dedent('''
        import pytest

        @pytest.mark.needs_data("/nonexistent/ett/ETTh1.csv")
        def test_reads_ett():
            pass
    '''))
    # Both runs in one process (one Keras import): the setting is read when conftest.py is
    # imported, so it is imported afresh for each.
    (tmp_path / "both.py").write_text(textwrap.dedent(f'''
        import os, sys
        import pytest

        for mode in ("required", "skip-missing"):
            os.environ["GRUKIT_TEST_DATA"] = mode
            for name in ("conftest", "test_needs"):
                sys.modules.pop(name, None)
            print("RUN", mode, flush=True)
            code = pytest.main(["-q", "-p", "no:cacheprovider", "-rsf",
                                {str(tmp_path / "test_needs.py")!r}])
            print("EXIT", mode, int(code), flush=True)
    '''))
    proc = subprocess.run([sys.executable, str(tmp_path / "both.py")], cwd=tmp_path,
                          env=_env("jax"), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {}
    for part in proc.stdout.split("RUN ")[1:]:
        mode, out = part.split("\n", 1)
        code = re.search(rf"^EXIT {mode} (\d+)$", out, re.M)
        assert code, proc.stdout
        runs[mode] = (int(code.group(1)), out[:code.start()])
    assert sorted(runs) == ["required", "skip-missing"], proc.stdout
    code, out = runs["required"]
    assert code == 1 and re.search(r"\b1 (failed|error)\b", out), out
    assert "/nonexistent/ett/ETTh1.csv is absent" in out, out
    code, out = runs["skip-missing"]
    assert code == 0 and "1 skipped" in out, out
