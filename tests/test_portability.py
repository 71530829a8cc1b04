"""Portability: models move between backends and into TF SavedModels; imports stay light.

These tests spawn Python subprocesses for the other backends, so each runs once per
run: those that save or export a model in this process in the TensorFlow pass
(``tf_only``), the others, all in subprocesses, in the lightest pass (``once``).
"""
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import keras

from conftest import BACKEND, REPO, once

tf_only = pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="saves or exports a model under TensorFlow in this process: the TF pass")

VARIANT_NAMES = ["gru", "gru1", "gru2", "gru3", "mgu", "mgu1", "mgu2", "mgu3", "ligru", "mingru"]

# Model builder shared by this process and the subprocesses (exec'd in both).
BUILD = textwrap.dedent('''
    import numpy as np
    import keras
    import grukit

    T, F, U = 6, 5, 3
    VARIANTS = [v.name for v in grukit.variants()]


    def build_model(steps=T):
        """Every variant as keras.layers.RNN(cell) and as grukit.layers.GRU, behind
        a Masking layer, plus a Bidirectional grukit layer and stacked cells."""
        inp = keras.Input((steps, F), name="x")
        seq = keras.layers.Masking(0.0)(inp)
        outs = []
        for v in VARIANTS:
            outs.append(keras.layers.RNN(grukit.get_cell(v, U), return_sequences=True,
                                         name=f"keras_rnn_{v}")(seq))
            outs.append(grukit.layers.GRU(U, variant=v, return_sequences=True,
                                          name=f"grukit_gru_{v}")(seq))
        outs.append(keras.layers.Bidirectional(
            grukit.layers.RNN(grukit.MGU2Cell(U), return_sequences=True), name="bidi")(seq))
        outs.append(grukit.layers.RNN([grukit.GRU1Cell(U), grukit.LiGRUCell(U)],
                                      return_sequences=True, name="stacked")(seq))
        return keras.Model(inp, keras.layers.Concatenate()(outs))


    def randomize(model, seed=0):
        rng = np.random.default_rng(seed)
        for w in model.weights:
            shape = tuple(w.shape)
            if w.path.endswith("moving_variance"):
                val = rng.uniform(0.5, 1.5, shape)
            else:
                val = rng.normal(0.0, 0.6, shape)
            w.assign(val.astype("float32"))


    def inputs(steps=T, seed=1):
        x = np.random.default_rng(seed).standard_normal((4, steps, F)).astype("float32")
        x[1, -2:] = 0.0  # masked by the Masking layer
        x[2, :1] = 0.0
        return x
''')

LOAD_AND_RUN = BUILD + textwrap.dedent('''
    import sys
    model = keras.models.load_model(sys.argv[1])
    y = keras.ops.convert_to_numpy(model(np.load(sys.argv[2])))
    np.save(sys.argv[3], y)
    print("backend:", keras.backend.backend())
''')

BUILD_AND_SAVE = BUILD + textwrap.dedent('''
    import sys
    keras.utils.set_random_seed(0)
    model = build_model()
    randomize(model)
    x = inputs()
    model.save(sys.argv[1])
    np.save(sys.argv[2], x)
    np.save(sys.argv[3], keras.ops.convert_to_numpy(model(x)))
    print("backend:", keras.backend.backend())
''')


def _run(args, backend, cwd=REPO, timeout=900):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"KERAS_BACKEND={backend} {args[:2]} failed (rc {proc.returncode}):\n"
        f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-8000:]}")
    return proc.stdout


def _namespace():
    ns = {}
    exec(BUILD, ns)
    return ns


def test_builder_covers_every_variant():
    import grukit

    assert _namespace()["VARIANTS"] == [v.name for v in grukit.variants()] == VARIANT_NAMES


# ------------------------------------------------------------- .keras files
@tf_only
def test_keras_file_saved_under_tf_loads_under_jax_and_torch(tmp_path):
    ns = _namespace()
    keras.utils.set_random_seed(0)
    model = ns["build_model"]()
    ns["randomize"](model)
    x = ns["inputs"]()
    expected = keras.ops.convert_to_numpy(model(x))
    assert expected.shape == (4, ns["T"], 2 * 10 * ns["U"] + 2 * ns["U"] + ns["U"])
    path, xpath = tmp_path / "tf.keras", tmp_path / "x.npy"
    model.save(path)
    np.save(xpath, x)
    for backend in ("jax", "torch"):
        out = tmp_path / f"y_{backend}.npy"
        stdout = _run(["-c", LOAD_AND_RUN, str(path), str(xpath), str(out)], backend)
        assert f"backend: {backend}" in stdout
        np.testing.assert_allclose(np.load(out), expected, atol=1e-5, rtol=0,
                                   err_msg=f"TF-saved model loaded under {backend}")


@tf_only
def test_keras_file_saved_under_jax_loads_under_tf_and_torch(tmp_path):
    path, xpath, ypath = tmp_path / "jax.keras", tmp_path / "x.npy", tmp_path / "y_jax.npy"
    stdout = _run(["-c", BUILD_AND_SAVE, str(path), str(xpath), str(ypath)], "jax")
    assert "backend: jax" in stdout
    x, expected = np.load(xpath), np.load(ypath)
    assert np.abs(expected).max() > 0.1  # a non-trivial output to compare

    model = keras.models.load_model(path)  # this process is the TF backend
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), expected, atol=1e-5,
                               rtol=0, err_msg="JAX-saved model loaded under tensorflow")
    out = tmp_path / "y_torch.npy"
    _run(["-c", LOAD_AND_RUN, str(path), str(xpath), str(out)], "torch")
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5, rtol=0,
                               err_msg="JAX-saved model loaded under torch")


# ---------------------------------------------------------- TF SavedModel
SERVE = textwrap.dedent('''
    import sys
    import numpy as np
    import tensorflow as tf

    served = tf.saved_model.load(sys.argv[1])
    for xpath, ypath in zip(sys.argv[2::2], sys.argv[3::2]):
        y = served.serve(tf.constant(np.load(xpath)))
        np.save(ypath, y.numpy())
    assert "grukit" not in sys.modules, "loading the SavedModel imported grukit"
    print("grukit imported:", "grukit" in sys.modules)
''')


@tf_only
@pytest.mark.parametrize("steps", [6, None], ids=["static_length", "dynamic_length"])
def test_tf_saved_model_serves_without_grukit(tmp_path, steps):
    ns = _namespace()
    keras.utils.set_random_seed(0)
    model = ns["build_model"](steps)
    ns["randomize"](model)
    export_dir = tmp_path / "saved_model"
    model.export(str(export_dir), format="tf_saved_model", verbose=False)
    args = ["-c", SERVE, str(export_dir)]
    expected = {}
    for length in ([6] if steps else [6, 9]):
        x = ns["inputs"](length)
        expected[length] = keras.ops.convert_to_numpy(model(x))
        np.save(tmp_path / f"x{length}.npy", x)
        args += [str(tmp_path / f"x{length}.npy"), str(tmp_path / f"y{length}.npy")]
    # run from an empty directory: nothing but the installed packages to import
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    stdout = _run(args, "tensorflow", cwd=workdir)
    assert "grukit imported: False" in stdout
    for length, y in expected.items():
        np.testing.assert_allclose(np.load(tmp_path / f"y{length}.npy"), y, atol=1e-5, rtol=0,
                                   err_msg=f"SavedModel vs Keras model, T={length}")


# ----------------------------------------------------------------- imports
IMPORT_CHECK = textwrap.dedent('''
    import sys
    import grukit
    after_import = sorted(m for m in ("tensorflow", "tensorflow_datasets", "keras_tuner")
                          if m in sys.modules)
    import numpy as np
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype("float32")
    for v in grukit.variants():
        layer = grukit.layers.GRU(4, variant=v.name, return_sequences=True)
        y = layer(x)
        g = grukit.gate_activations(layer, x)
    after_use = sorted(m for m in ("tensorflow", "tensorflow_datasets", "keras_tuner")
                       if m in sys.modules)
    import json
    print("RESULT", json.dumps({"backend": __import__("keras").backend.backend(),
                                "after_import": after_import, "after_use": after_use}))
''')


@once
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_import_grukit_does_not_import_tensorflow(backend):
    stdout = _run(["-c", IMPORT_CHECK], backend)
    line = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, stdout
    result = json.loads(line[-1][len("RESULT "):])
    assert result["backend"] == backend
    assert result["after_import"] == [], f"import grukit imported {result['after_import']}"
    assert result["after_use"] == [], f"using grukit's layers imported {result['after_use']}"


# -------------------------------------------------------------------- CLI
@once
def test_cli_demo_prints_every_variant():
    stdout = _run(["-m", "grukit", "demo"], "tensorflow")
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in VARIANT_NAMES:
            rows[parts[0]] = parts
    assert sorted(rows) == sorted(VARIANT_NAMES), stdout
    for name, parts in rows.items():
        params, formula, mean, std, diff = parts[1:6]
        assert int(params) == int(formula) > 0, f"{name}: params {params} != formula {formula}"
        assert np.isfinite(float(mean)) and float(std) > 0, line
        assert float(diff) < 1e-5, f"{name}: keras.layers.RNN vs grukit.layers.RNN differ by {diff}"
    assert re.search(r"backend tensorflow", stdout), stdout
    # the zoo's three models answer from the shipped presets
    p = [float(m) for m in re.findall(r"imdb-sentiment   P\(positive\) = ([0-9.]+)", stdout)]
    assert len(p) == 2 and p[0] > 0.5 > p[1], stdout
    assert re.search(r"char-lm          ROMEO:\n                 \S", stdout), stdout
    ot = re.search(r"ett-forecasting  OT over the next 96 h.*\(min ([-0-9.]+), max ([-0-9.]+)\)",
                   stdout)
    assert ot and float(ot.group(1)) <= float(ot.group(2)), stdout


# ---------------------------------------------------------- light import
LIGHT = textwrap.dedent('''
    import sys, json
    order = sys.argv[1]
    if order == "help":
        import grukit.__main__ as cli
        try:
            cli.main(["--help"])
        except SystemExit:
            pass
        print("RESULT", json.dumps(sorted(m for m in ("keras", "tensorflow", "jax", "torch")
                                          if m in sys.modules)))
        raise SystemExit
    if order == "grukit-first":
        import grukit
        heavy = "keras" in sys.modules
        import keras
    else:
        import keras
        import grukit
        heavy = False
    model = keras.saving.load_model(sys.argv[2])  # grukit's classes are registered
    print("RESULT", json.dumps({"heavy": heavy, "layer": type(model.layers[-1]).__name__}))
''')


@once
def test_import_is_light_and_keras_files_load_in_either_order(tmp_path):
    """`import grukit` imports no Keras or backend (so `grukit --help` answers at once);
    grukit's layers are registered as soon as Keras is imported, in either import order."""
    stdout = _run(["-c", LIGHT, "help"], "tensorflow")
    line = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    assert line and json.loads(line[-1][len("RESULT "):]) == [], stdout
    import grukit

    path = tmp_path / "m.keras"
    model = keras.Sequential([keras.Input((5, 3)), grukit.layers.GRU(4, variant="mgu2")])
    model.save(path)
    for order in ("grukit-first", "keras-first"):
        stdout = _run(["-c", LIGHT, order, str(path)], "jax")
        line = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
        assert line, stdout
        assert json.loads(line[-1][len("RESULT "):]) == {"heavy": False, "layer": "GRU"}, order
