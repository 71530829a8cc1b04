"""The tutorials in notebooks/ run top to bottom (quick mode, fixed seeds).

Each notebook is executed with nbclient in a fresh kernel, in a temporary working
directory, once per test run: only in the JAX pass of ``tests/run.sh`` (JAX is the
fastest backend here), with ``KERAS_BACKEND=jax`` and ``GRUKIT_NOTEBOOK_QUICK=1`` in
the kernel's environment.

The kernel is this interpreter: the test writes a kernelspec (``argv`` =
``sys.executable -m ipykernel_launcher``) into a temporary directory and puts that
directory first on ``JUPYTER_PATH``, so neither a user-level ``python3`` kernelspec
nor the ``PATH`` can send the notebooks to another Python.
"""
import json
import os
import sys
import time

import pytest
import keras

from conftest import DATA_DIR, REPO, require_data

NOTEBOOK_DIR = os.path.join(REPO, "notebooks")
NOTEBOOKS = [
    # (file, the data file it reads under the data directory, or None)
    ("01_gates_from_scratch.ipynb", None),
    ("02_variant_family.ipynb", None),
    ("03_imdb_sentiment.ipynb", "imdb/aclImdb_v1.tar.gz"),
    ("04_char_lm.ipynb", "tinyshakespeare/input.txt"),
    ("05_forecasting.ipynb", "ett/ETTh1.csv"),
    ("06_tuning.ipynb", "ett/ETTh1.csv"),
]
TIMEOUT_S = 900  # per cell: a hang guard only (a slow machine must not fail the test)
KERNEL = "grukit-test-python"


def test_notebooks_are_stripped():
    """Outputs are not committed; every notebook has the QUICK switch."""
    import nbformat

    for name, _ in NOTEBOOKS:
        nb = nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, \
                    f"{name}: outputs are committed; strip them"
        assert any('os.environ.get("GRUKIT_NOTEBOOK_QUICK", "1") == "1"' in c.source
                   for c in nb.cells if c.cell_type == "code"), f"{name}: no QUICK switch"


def test_every_notebook_is_run_and_linked():
    """A notebook added to notebooks/ is executed here and linked from both READMEs."""
    on_disk = sorted(f for f in os.listdir(NOTEBOOK_DIR) if f.endswith(".ipynb"))
    assert on_disk == sorted(n for n, _ in NOTEBOOKS)
    for readme in (os.path.join(REPO, "README.md"), os.path.join(NOTEBOOK_DIR, "README.md")):
        text = open(readme, encoding="utf-8").read()
        missing = [n for n in on_disk if n not in text]
        assert not missing, f"{readme} does not link {missing}"


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "grukit tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    # the kernel inherits this process's environment
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setenv("GRUKIT_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("GRUKIT_DATA_DIR", os.path.abspath(DATA_DIR))
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' temporary directories
    workdir = tmp_path / "work"
    workdir.mkdir()
    return workdir


@pytest.mark.parametrize("name,needs_data", NOTEBOOKS, ids=[n for n, _ in NOTEBOOKS])
def test_notebook_runs(name, needs_data, kernel_env):
    if keras.backend.backend() != "jax":
        pytest.skip("notebooks run once, in the JAX pass")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    if needs_data:
        require_data(os.path.join(DATA_DIR, needs_data))

    nb = nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name=KERNEL, timeout=TIMEOUT_S,
        resources={"metadata": {"path": str(kernel_env)}})
    start = time.time()
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    elapsed = time.time() - start
    print(f"{name}: {elapsed:.1f}s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                 for o in c.outputs)
    assert images >= 1, f"{name}: expected its plots, got {images} images"
