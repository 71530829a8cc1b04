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

import numpy as np
import pytest
import keras

BACKEND = keras.backend.backend()
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
#: Variants with every kind of gate input between them: the standard GRU (x, h and bias;
#: a reset gate), GRU3 (gates from the bias alone), MGU2 (one gate, from h alone), Li-GRU
#: (batch-normalised inputs, relu, no bias) and minGRU (no h in any block: a parallel scan).
VARIANT_SAMPLE = ("gru", "gru3", "mgu2", "ligru", "mingru")
#: The pass that runs every variant through the per-variant tests of Keras's recurrent
#: machinery and of the cell options (the lightest pass the run includes).
EVERY_VARIANT_PASS = next((b for b in ("torch", "jax", "tensorflow") if b in PASSES), BACKEND)


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


def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs_data"):
        for path in mark.args:
            require_data(path)


def to_np(x):
    """Backend tensor -> float64 NumPy array (works for torch tensors that require grad)."""
    return np.asarray(keras.ops.convert_to_numpy(x), dtype="float64")


@pytest.fixture(autouse=True)
def _seed_and_policy():
    keras.utils.set_random_seed(1234)
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


@pytest.fixture
def cli_log():
    """grukit's INFO log shown on stdout as the ``grukit`` command shows it, for tests that
    call the library in-process and read what a command-line user would see (capsys)."""
    import logging

    from grukit.__main__ import _show_progress

    logger = logging.getLogger("grukit")
    handlers, level = logger.handlers[:], logger.level
    _show_progress()  # one stdout handler, as in the command (not a second one)
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
