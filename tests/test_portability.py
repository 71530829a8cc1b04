"""Portability: models move between backends and into TF SavedModels; imports stay light.

These tests spawn Python subprocesses for the other backends, so each runs once per
run. The round trips between backends run together in the TensorFlow pass (the ``moved``
fixture: one process per other backend, and one that serves the SavedModels); the other
checks, in subprocesses of their own, in the lightest pass (``once``). (`grukit demo` runs
from the installed wheel: tests/test_packaging.py.)
"""
import json
import os
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


    # keras.layers.RNN(cell) for a variant of each family and each kind of state: the
    # cells' classes and configs are checked for every variant in tests/test_integration.py
    # (saved and loaded in one process); their weights move between backends here in the
    # grukit.layers.GRU of every variant, which holds the same cell.
    KERAS_RNN_VARIANTS = ("gru", "mgu2", "ligru", "mingru")


    def build_model(steps=T, keras_rnn=True):
        """Every variant as grukit.layers.GRU and (``keras_rnn``) those of
        KERAS_RNN_VARIANTS as keras.layers.RNN(cell), behind a Masking layer, plus a
        Bidirectional grukit layer and stacked cells."""
        inp = keras.Input((steps, F), name="x")
        seq = keras.layers.Masking(0.0)(inp)
        outs = []
        for v in VARIANTS:
            if keras_rnn and v in KERAS_RNN_VARIANTS:
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

# One process per backend does everything that backend's checks need, in this order:
# `import grukit` (must import no Keras, TensorFlow or tf-datasets), then Keras; a
# grukit.layers.GRU and gate_activations, then grukit.zoo and the committed
# ett-forecasting preset (must not import TensorFlow or keras-tuner either);
# then, if asked, builds, runs and saves its own model; then loads the .keras files it is
# given and runs them (with predict: on JAX one compiled program, where eager calls compile
# the 16 recurrent layers one by one, several times slower). (Keras's Bidirectional layer
# imports TensorFlow: hence the order.)
OTHER_BACKEND = textwrap.dedent("""
    import json, sys

    HEAVY = ("keras", "tensorflow", "tensorflow_datasets", "keras_tuner")
    job = json.loads(sys.argv[1])
    import grukit
    result = {"after_import": sorted(m for m in HEAVY if m in sys.modules)}
""") + BUILD + textwrap.dedent("""
    result["backend"] = keras.backend.backend()
    x = inputs()
    # one variant: the variants share the layer's and gate_activations' code (and the
    # model below builds every one of them, after this check)
    layer = grukit.layers.GRU(U, variant="gru1", return_sequences=True)
    layer(x)
    grukit.gate_activations(layer, x)
    result["after_use"] = sorted(m for m in HEAVY[1:] if m in sys.modules)
    import grukit.zoo
    grukit.zoo.get("ett-forecasting")
    grukit.zoo.load("ett-forecasting")  # the committed preset
    result["after_zoo"] = sorted(m for m in HEAVY[1:] if m in sys.modules)
    if job.get("save"):
        model_path, x_path, y_path = job["save"]
        keras.utils.set_random_seed(0)
        model = build_model()
        randomize(model)
        np.save(x_path, x)
        np.save(y_path, model.predict(x, verbose=0))
        model.save(model_path)
    for model_path, x_path, y_path in job["load"]:
        model = keras.models.load_model(model_path)  # registered by `import grukit` alone
        np.save(y_path, model.predict(np.load(x_path), verbose=0))
    print("RESULT", json.dumps(result))
""")

# Serves a SavedModel with TensorFlow alone. Arguments: the export directory, then
# triples of (endpoint, inputs .npy, outputs .npy).
SERVE = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf

    export_dir, *jobs = sys.argv[1:]
    served = tf.saved_model.load(export_dir)
    for endpoint, xpath, ypath in zip(jobs[::3], jobs[1::3], jobs[2::3]):
        np.save(ypath, getattr(served, endpoint)(tf.constant(np.load(xpath))).numpy())
    assert "grukit" not in sys.modules, "loading the SavedModel imported grukit"
    print("grukit imported:", "grukit" in sys.modules)
""")


def _start(args, backend, cwd=REPO):
    """A Python process running ``args`` under ``KERAS_BACKEND=backend``; :func:`_finish`
    waits for it."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, *args], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.what = f"KERAS_BACKEND={backend} {args[:2]}"
    return proc


def _finish(proc, timeout=900):
    """The standard output of a process of :func:`_start`, which must succeed (a hang
    guard: ``timeout`` seconds)."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail(f"{proc.what} still running after {timeout} s:\n{stderr[-8000:]}")
    assert proc.returncode == 0, (
        f"{proc.what} failed (rc {proc.returncode}):\n"
        f"--- stdout\n{stdout[-4000:]}\n--- stderr\n{stderr[-8000:]}")
    return stdout


def _run(args, backend, cwd=REPO, timeout=900):
    return _finish(_start(args, backend, cwd), timeout)


def _namespace():
    ns = {}
    exec(BUILD, ns)
    return ns


def test_builder_covers_every_variant():
    import grukit

    assert _namespace()["VARIANTS"] == [v.name for v in grukit.variants()] == VARIANT_NAMES


def _result(stdout):
    line = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, stdout
    return json.loads(line[-1][len("RESULT "):])


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    """The cross-backend round trips, run once: three processes, not one per check.

    This (TensorFlow) process builds the model of every variant, saves it as a .keras file,
    and exports its grukit layers as one SavedModel with an endpoint for a static and one
    for a dynamic sequence length. A JAX process loads the TF file and saves its own; a
    PyTorch process loads both files; a TensorFlow process without grukit serves the
    SavedModel's endpoints; this process, which imported Keras before grukit, loads the JAX
    file. Returns the expected and the obtained outputs, and what the JAX and PyTorch
    processes imported."""
    tmp = tmp_path_factory.mktemp("moved")
    ns = _namespace()
    layers = len(ns["VARIANTS"]) + len(ns["KERAS_RNN_VARIANTS"])
    out = {"shape": (4, ns["T"], layers * ns["U"] + 2 * ns["U"] + ns["U"])}
    keras.utils.set_random_seed(0)
    model = ns["build_model"]()
    ns["randomize"](model)
    x = ns["inputs"]()
    out["tf_expected"] = keras.ops.convert_to_numpy(model(x))
    model.save(tmp / "tf.keras")
    np.save(tmp / "x.npy", x)
    # One SavedModel, two endpoints: `serve` takes any sequence length, `serve_static`
    # the model's T (traced with a static length, as model.export of a fixed-length model).
    # grukit's layers only: keras.layers.RNN(cell) runs the cells in Keras's own loop.
    exported = ns["build_model"](None, keras_rnn=False)
    ns["randomize"](exported)
    archive = keras.export.ExportArchive()
    archive.track(exported)
    for endpoint, steps in (("serve", None), ("serve_static", ns["T"])):
        archive.add_endpoint(endpoint, exported.call, input_signature=[
            keras.InputSpec(shape=(None, steps, ns["F"]), dtype="float32")])
    export_dir = tmp / "saved_model"
    archive.write_out(str(export_dir), verbose=False)
    serve, out["served_expected"] = [str(export_dir)], {}
    for endpoint, length in (("serve_static", 6), ("serve", 6), ("serve", 9)):
        xl = ns["inputs"](length)
        out["served_expected"][endpoint, length] = keras.ops.convert_to_numpy(exported(xl))
        np.save(tmp / f"x{length}.npy", xl)
        serve += [endpoint, str(tmp / f"x{length}.npy"),
                  str(tmp / f"served_{endpoint}_{length}.npy")]
    tf_file = [str(tmp / "tf.keras"), str(tmp / "x.npy")]
    jax_file = [str(tmp / "jax.keras"), str(tmp / "x_jax.npy")]
    # the SavedModel is served while the JAX and PyTorch processes run (from an empty
    # directory: nothing but the installed packages to import)
    (tmp / "cwd").mkdir()
    serving = _start(["-c", SERVE] + serve, "tensorflow", cwd=tmp / "cwd")
    try:
        out["imports"] = {
            "jax": _result(_run(["-c", OTHER_BACKEND, json.dumps({
                "load": [tf_file + [str(tmp / "tf_on_jax.npy")]],
                "save": jax_file + [str(tmp / "jax_expected.npy")]})], "jax")),
            "torch": _result(_run(["-c", OTHER_BACKEND, json.dumps({
                "load": [tf_file + [str(tmp / "tf_on_torch.npy")],
                         jax_file + [str(tmp / "jax_on_torch.npy")]]})], "torch")),
        }
    except BaseException:  # a process above failed: the test fails with its error
        serving.kill()
        serving.communicate()
        raise
    out["serve_stdout"] = _finish(serving)
    out["served"] = {key: np.load(tmp / f"served_{key[0]}_{key[1]}.npy")
                     for key in out["served_expected"]}
    out["jax_expected"] = np.load(tmp / "jax_expected.npy")
    out["jax_on_tf"] = keras.ops.convert_to_numpy(
        keras.models.load_model(tmp / "jax.keras")(np.load(tmp / "x_jax.npy")))
    for name in ("tf_on_jax", "tf_on_torch", "jax_on_torch"):
        out[name] = np.load(tmp / f"{name}.npy")
    return out


# ------------------------------------------------------------- .keras files
@tf_only
def test_keras_file_saved_under_tf_loads_under_jax_and_torch(moved):
    expected = moved["tf_expected"]
    assert expected.shape == moved["shape"]
    for backend in ("jax", "torch"):
        assert moved["imports"][backend]["backend"] == backend
        np.testing.assert_allclose(moved[f"tf_on_{backend}"], expected, atol=1e-5, rtol=0,
                                   err_msg=f"TF-saved model loaded under {backend}")


@tf_only
def test_keras_file_saved_under_jax_loads_under_tf_and_torch(moved):
    expected = moved["jax_expected"]
    assert expected.shape == moved["shape"]
    assert np.abs(expected).max() > 0.1  # a non-trivial output to compare
    np.testing.assert_allclose(moved["jax_on_tf"], expected, atol=1e-5, rtol=0,
                               err_msg="JAX-saved model loaded under tensorflow")
    np.testing.assert_allclose(moved["jax_on_torch"], expected, atol=1e-5, rtol=0,
                               err_msg="JAX-saved model loaded under torch")


# ---------------------------------------------------------- TF SavedModel
@tf_only
@pytest.mark.parametrize("endpoint", ["serve_static", "serve"])
def test_tf_saved_model_serves_without_grukit(moved, endpoint):
    assert "grukit imported: False" in moved["serve_stdout"]
    lengths = sorted(length for (n, length) in moved["served_expected"] if n == endpoint)
    assert lengths == ([6] if endpoint == "serve_static" else [6, 9])
    for length in lengths:
        np.testing.assert_allclose(moved["served"][endpoint, length],
                                   moved["served_expected"][endpoint, length], atol=1e-5,
                                   rtol=0, err_msg=f"SavedModel {endpoint} vs Keras, T={length}")


# ----------------------------------------------------------------- imports
@tf_only  # reads what the processes of `moved` imported
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_grukit_and_its_zoo_do_not_import_tensorflow(moved, backend):
    result = moved["imports"][backend]
    assert result["backend"] == backend
    assert result["after_import"] == [], f"import grukit imported {result['after_import']}"
    assert result["after_use"] == [], f"using grukit's layers imported {result['after_use']}"
    assert result["after_zoo"] == [], \
        f"loading a zoo model (ett-forecasting) imported {result['after_zoo']}"


# -------------------------------------------------------------------- CLI
# `grukit demo`: tests/test_packaging.py (run from the installed wheel).


# ---------------------------------------------------------- light import
HELP = textwrap.dedent("""
    import json, sys
    import grukit.__main__ as cli
    try:
        cli.main(["--help"])
    except SystemExit:
        pass
    print("RESULT", json.dumps(sorted(m for m in ("keras", "tensorflow", "jax", "torch")
                                      if m in sys.modules)))
""")


@once
def test_grukit_help_imports_no_keras_or_backend():
    """`grukit --help` answers at once: the command's parser imports no Keras or backend.
    (That `import grukit` imports no Keras and that grukit's layers are registered as soon
    as Keras is imported, in either order, `moved` checks: its JAX and PyTorch processes
    import grukit first, the TF pytest process Keras first.)"""
    assert _result(_run(["-c", HELP], "tensorflow")) == []
