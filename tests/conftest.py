"""Shared test helpers. The backend is chosen by KERAS_BACKEND before keras is imported."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
#: The tests compile thousands of tiny JAX programs, in this process (the JAX pass) and in
#: the JAX processes that tests start (notebook kernels, the zoo's commands, other-backend
#: checks): XLA's optimisation passes cost more than they save on them (the values are the
#: same: tolerances are unchanged). JAX reads the variable when it is imported (below, by
#: Keras); subprocesses inherit it. GRUKIT_TEST_JAX_FAST_COMPILE=0 keeps the passes. The
#: few long evaluations, whose programs run longer than they compile, are marked
#: ``xla_optimized`` (the fixture below turns the passes back on for them).
if os.environ.get("GRUKIT_TEST_JAX_FAST_COMPILE", "1") == "1":
    os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import sys

import numpy as np
import pytest
import keras

BACKEND = keras.backend.backend()


class _TensorFlowIfImported:
    """Keras's ``tf`` LazyModule as ``keras.src.saving.serialization_lib`` uses it, but
    ``available`` only once TensorFlow is imported.

    That module asks ``tf.available and isinstance(obj, tf.TensorShape)`` (and ``tf.DType``,
    ``tf.TypeSpec``) for every object it serialises, and ``tf.available`` imports TensorFlow:
    ``keras.layers.Bidirectional`` serialises its layer when it is built. No object can be
    a TensorFlow type before TensorFlow is imported, so the answers are unchanged; the JAX
    and PyTorch passes then run without TensorFlow, as a user without it would, and
    :func:`_tensorflow_stays_out` can check that grukit never loads it there.
    """

    def __init__(self, lazy):
        self._lazy = lazy

    @property
    def available(self):
        return "tensorflow" in sys.modules and self._lazy.available

    def __getattr__(self, name):
        return getattr(self._lazy, name)


if BACKEND != "tensorflow":
    try:
        from keras.src.saving import serialization_lib as _serialization_lib

        _serialization_lib.tf = _TensorFlowIfImported(_serialization_lib.tf)
    except (ImportError, AttributeError):  # Keras's internals moved: the tests that build a
        pass  # Bidirectional layer fail in _tensorflow_stays_out, naming themselves

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("GRUKIT_DATA_DIR", os.path.join(REPO, "..", "shared", "data"))
#: ``tests/run.sh`` (what CI runs) sets ``GRUKIT_TEST_DATA=required``: a test whose data file
#: is absent then fails, naming the file. Without it (``GRUKIT_TEST_DATA=skip-missing``, or a
#: plain ``pytest``) such tests are skipped, for users without the data.
DATA_REQUIRED = os.environ.get("GRUKIT_TEST_DATA", "") == "required"
#: The passes of this run: ``tests/run.sh`` runs the suite once per backend in
#: ``GRUKIT_TEST_BACKENDS`` and exports it; a plain ``pytest`` is one pass, this backend's.
PASSES = os.environ.get("GRUKIT_TEST_BACKENDS", "").split() or [BACKEND]


def one_pass(*preference, why):
    """A ``skipif`` marker that runs a test in one pass of the run only: under the first
    backend of ``preference`` that the run includes (this backend if it includes none).

    For tests whose result does not depend on the backend of the pytest process (they
    spawn processes with their own backend, or read files), and for zoo tests that need
    one backend's run, not three.
    """
    chosen = next((b for b in preference if b in PASSES), BACKEND)
    return pytest.mark.skipif(BACKEND != chosen, reason=f"{why}: runs once, in the {chosen} pass")


#: Backend-independent tests go to the lightest pass (PyTorch), when the run has it.
once = one_pass("torch", "jax", "tensorflow", why="backend-independent")
#: The pass that runs every variant through the per-variant tests of Keras's recurrent
#: machinery and of the cell options (the lightest pass the run includes).
EVERY_VARIANT_PASS = next((b for b in ("torch", "jax", "tensorflow") if b in PASSES), BACKEND)
#: The variants with code of their own, run in every pass: the standard GRU (x, h and bias;
#: a reset gate; the backends' fused kernels), Li-GRU (batch-normalised inputs and their
#: moving statistics, relu, no bias) and minGRU (no h in any block: a parallel scan).
OWN_CODE_VARIANTS = ("gru", "ligru", "mingru")
#: The other kinds of gate input, one in each of the other passes, so that a run covers
#: both on a compiled backend: GRU3 (gates from the bias alone) under JAX, MGU2 (one gate,
#: from h alone) under TensorFlow (the first of the two that the run includes takes GRU3).
_OTHER_PASSES = [b for b in ("jax", "tensorflow", "torch")
                 if b in PASSES and b != EVERY_VARIANT_PASS]
_GATE_KINDS = dict(zip(_OTHER_PASSES, ("gru3", "mgu2")))
#: The variants that the per-variant tests run in a pass other than EVERY_VARIANT_PASS.
VARIANT_SAMPLE = OWN_CODE_VARIANTS + ((_GATE_KINDS[BACKEND],) if BACKEND in _GATE_KINDS else
                                      ("gru3", "mgu2"))


def pass_variants(variants):
    """The variants a per-variant test runs in this pass: all of ``variants`` in
    :data:`EVERY_VARIANT_PASS`, the ones in :data:`VARIANT_SAMPLE` in the other passes.

    For tests of what every variant shares -- the loop, masking, states, Bidirectional,
    serialisation, the options' code -- where a variant differs only in which terms its
    gates see (data in its spec, not code). Each variant's own equations are checked
    against the NumPy reference in every pass (tests/test_cells_reference.py)."""
    variants = list(variants)
    if BACKEND == EVERY_VARIANT_PASS:
        return variants
    return [v for v in variants if (v[0] if isinstance(v, tuple) else v) in VARIANT_SAMPLE]


#: Opts a test out of its module's ``ONE_PASS`` default: it runs in every pass.
every_pass = pytest.mark.skipif(False, reason="runs in every pass")


def pytest_collection_modifyitems(config, items):
    """A module may set ``ONE_PASS`` (a :func:`one_pass` marker): its tests that choose no
    pass themselves (no ``skipif`` of their own) run in that pass only. The zoo's modules
    do: their behaviour does not depend on the backend beyond what the cell suite and the
    presets' per-backend checks (tests/test_presets_reproduce.py) cover."""
    for item in items:
        default = getattr(item.module, "ONE_PASS", None)
        if default is not None and not any(m.name == "skipif" for m in item.iter_markers()):
            item.add_marker(default)


def require_data(path):
    """``path`` if that data file exists; else fail (data required) or skip the test."""
    if os.path.isfile(path):
        return path
    message = (f"data file {path} is absent: set GRUKIT_DATA_DIR to the folder holding "
               f"imdb/, tinyshakespeare/ and ett/")
    if DATA_REQUIRED:
        pytest.fail(f"{message} (GRUKIT_TEST_DATA=required, as tests/run.sh sets; "
                    f"GRUKIT_TEST_DATA=skip-missing skips these tests instead)", pytrace=False)
    pytest.skip(message)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "needs_data(path): the test reads that data file (missing: fails under "
                   "tests/run.sh, else skips)")
    config.addinivalue_line(
        "markers", "imports_tensorflow: the test may load TensorFlow in the JAX and PyTorch "
                   "passes (by design, e.g. a SavedModel export)")
    config.addinivalue_line(
        "markers", "xla_optimized: in the JAX pass, XLA optimises this test's programs "
                   "(a long evaluation, whose run costs more than its compile)")


@pytest.fixture(autouse=True)
def _xla_optimized(request):
    """The ``xla_optimized`` marker: XLA's optimisation passes on for the test, whatever
    ``JAX_DISABLE_MOST_OPTIMIZATIONS`` says (the full ETT test set at one horizon under JAX:
    14.8 s -> 9.5 s; the char LM's full validation text: 13.6 s -> 5.8 s)."""
    if BACKEND != "jax" or request.node.get_closest_marker("xla_optimized") is None:
        yield
        return
    import jax

    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", False)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", before)


#: Whether TensorFlow is in this process (set once a test has loaded it).
_TENSORFLOW = {"loaded": "tensorflow" in sys.modules}


@pytest.fixture(autouse=True)
def _tensorflow_stays_out(request):
    """In the JAX and PyTorch passes, the test during which TensorFlow is first loaded into
    the process (its setup, module fixtures included, call or teardown) fails, unless it is
    marked ``imports_tensorflow``.

    grukit's cells, layers and zoo need no TensorFlow on those backends (the zoo imports it
    for a SavedModel export and for a tensorflow-datasets download only); this keeps it so,
    in every test of those passes. (Keras's own imports of it while serialising are left
    out: see :class:`_TensorFlowIfImported`.)"""
    yield
    if BACKEND == "tensorflow" or _TENSORFLOW["loaded"] or "tensorflow" not in sys.modules:
        return
    _TENSORFLOW["loaded"] = True
    if request.node.get_closest_marker("imports_tensorflow") is None:
        pytest.fail(f"TensorFlow was loaded during this test under KERAS_BACKEND={BACKEND}: "
                    f"grukit must not need it on this backend (mark the test "
                    f"`imports_tensorflow` where it does by design)", pytrace=False)


def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs_data"):
        for path in mark.args:
            require_data(path)


def to_np(x):
    """Backend tensor -> float64 NumPy array (works for torch tensors that require grad)."""
    return np.asarray(keras.ops.convert_to_numpy(x), dtype="float64")


@pytest.fixture(autouse=True)
def _seed_and_policy():
    """Every test starts from seed 1234 and restores the dtype policy it found.

    Seeds with the zoo's ``set_seed``: ``keras.utils.set_random_seed`` imports TensorFlow on
    every backend (to seed ``tf.data``), which the JAX and PyTorch passes keep out (see
    :func:`_tensorflow_stays_out`)."""
    from grukit.zoo.base import set_seed

    set_seed(1234)
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


@pytest.fixture(autouse=True)
def _grukit_log_restored():
    """Every test leaves grukit's logger as it found it: a test that runs the ``grukit``
    command in-process (``main([...])``) adds its stdout handler, which would otherwise
    print into the later tests' output (doctests that expect none fail then)."""
    import logging

    logger = logging.getLogger("grukit")
    handlers, level = logger.handlers[:], logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.fixture
def cli_log():
    """grukit's INFO log shown on stdout as the ``grukit`` command shows it, for tests that
    call the library in-process and read what a command-line user would see (capsys).
    Undone after the test by :func:`_grukit_log_restored`."""
    from grukit.__main__ import _show_progress

    _show_progress()  # one stdout handler, as in the command (not a second one)
