"""The tutorials in notebooks/: their stored outputs, and a run of each in quick mode.

The notebooks are committed with the outputs of a full run (``GRUKIT_NOTEBOOK_QUICK=0``),
made by ``python notebooks/execute.py --full --write [NAMES]``. That run records in the
notebook's metadata the sha256 of its code cells; ``test_stored_outputs`` checks that the
record matches the cells as committed (a cell edited since fails, naming the command that
regenerates its outputs) and that the outputs are complete and clean.

``test_notebook_runs`` executes each notebook top to bottom in quick mode with the same
script (nbclient, a fresh kernel on this interpreter, fixed seeds, a temporary working
directory), in memory: nothing is written back. Each runs once per test run, its kernel
under the backend of the pass that runs it: 04 and 05 in the JAX pass of ``tests/run.sh``,
the others in the PyTorch pass, when the run has them (the two lightest passes; the stored
outputs are JAX's, so the quick runs also check that the tutorials run under PyTorch).

The kernel is this interpreter: ``notebooks/execute.py`` writes a kernelspec (``argv`` =
``sys.executable -m ipykernel_launcher``) into a temporary directory and starts the kernel
from it, so neither a user-level ``python3`` kernelspec nor the ``PATH`` can send the
notebooks to another Python.
"""
import copy
import importlib.util
import os

import pytest

from conftest import BACKEND, DATA_DIR, REPO, once, one_pass, require_data

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
QUICK_SWITCH = 'os.environ.get("GRUKIT_NOTEBOOK_QUICK", "1") == "1"'


def _load_execute():
    spec = importlib.util.spec_from_file_location(
        "grukit_notebooks_execute", os.path.join(NOTEBOOK_DIR, "execute.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


execute = _load_execute()


def _machine_paths():
    """Paths of this machine that no stored output may contain."""
    import tempfile

    return [REPO, os.path.abspath(DATA_DIR), os.path.expanduser("~"), tempfile.gettempdir()]


#: The most a notebook with its stored outputs may weigh: they stay readable, and small.
MAX_KIB = 400


@once
@pytest.mark.parametrize("name", [n for n, _ in NOTEBOOKS])
def test_stored_outputs(name):
    """Outputs of a full run of the committed code: every code cell run in order, the code
    unchanged since (recorded hash), images where it plots, no error, warning or machine
    path, and a small file."""
    import nbformat

    path = os.path.join(NOTEBOOK_DIR, name)
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert any(QUICK_SWITCH in cell.source for cell in code), f"{name}: no QUICK switch"
    regenerate = execute.REGENERATE.format(name=name)
    run = nb.metadata.get("grukit", {})
    assert run.get("mode") == "full", \
        f"{name}: no stored outputs of a full run (metadata {run}); run: {regenerate}"
    assert run.get("source_sha256") == execute.source_sha256(nb), \
        (f"{name}: its code cells changed since the stored outputs were made; "
         f"regenerate them (a full run, slow on a CPU): {regenerate}")
    assert run.get("backend") == "jax" and run.get("keras") and run.get("grukit"), run
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), \
        f"{name}: the stored outputs are not one run top to bottom; run: {regenerate}"
    assert not [cell for cell in nb.cells if "execution" in cell.get("metadata", {})], \
        f"{name}: per-cell execution timestamps are stored; run: {regenerate}"
    found = execute.problems(nb, extra_paths=_machine_paths(), stderr=False)
    assert found == [], f"{name}:\n" + "\n".join(found)
    wall = run.get("wall_seconds")
    assert isinstance(wall, int) and wall > 0, f"{name}: no recorded run time; run: {regenerate}"
    with open(os.path.join(NOTEBOOK_DIR, "README.md"), encoding="utf-8") as f:
        assert f"| `{name}` | {wall:,} s |" in f.read(), \
            f"notebooks/README.md does not give {name}'s recorded full run, {wall:,} s"
    kib = os.path.getsize(path) / 1024
    assert kib <= MAX_KIB, f"{name} weighs {kib:.0f} KiB with its outputs (at most {MAX_KIB})"


def test_problems_and_hash_catch_what_they_should():
    """notebooks/execute.py's checks of outputs fail where they should (no kernel)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    plot = new_code_cell("plt.plot([1, 2])\nplt.show()", execution_count=1, outputs=[
        new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})])
    quiet = new_code_cell("def f(x):\n    return x\n\ny = f(1)", execution_count=2)
    said = new_code_cell("print(y)", execution_count=3,
                         outputs=[new_output("stream", name="stdout", text="1\n")])
    nb = new_notebook(cells=[new_markdown_cell("# title"), plot, quiet, said])
    assert execute.problems(nb) == []
    digest = execute.source_sha256(nb)
    edited = copy.deepcopy(nb)
    edited.cells[0].source = "# another title"  # prose: the outputs still hold
    assert execute.source_sha256(edited) == digest
    edited.cells[3].source = "print(y + 1)"
    assert execute.source_sha256(edited) != digest

    def broken(change):
        other = copy.deepcopy(nb)
        change(other.cells)
        return execute.problems(other, extra_paths=["/data/of/this/machine"], stderr=False)

    assert broken(lambda c: c[1].outputs.clear())  # a plot without its image
    assert broken(lambda c: c[3].outputs.clear())  # a print without output
    assert broken(lambda c: c[3].outputs.append(
        new_output("stream", name="stdout", text="saved to /tmp/tmpab12/x\n")))
    assert broken(lambda c: c[3].outputs.append(
        new_output("stream", name="stdout", text="read /data/of/this/machine/a.csv\n")))
    assert broken(lambda c: c[3].outputs.append(
        new_output("stream", name="stderr", text="UserWarning: ...\n")))
    assert broken(lambda c: c[3].outputs.append(
        new_output("error", ename="ValueError", evalue="bad", traceback=[])))
    assert execute.shows_output("%config X.y = 1\nx = 1\nx")
    assert not execute.shows_output("%config X.y = 1\nx = 1\nx;")
    nbformat.validate(nb)


@once
def test_execute_names_a_bad_backend_and_stores_only_the_jax_runs(capsys):
    """notebooks/execute.py runs a kernel under the backend asked for, one of three, but
    writes only a run under the backend of the stored outputs (no kernel is started)."""
    with pytest.raises(ValueError, match="backend must be one of jax, torch, tensorflow; "
                                         "got 'mxnet'"):
        execute.execute("01_gates_from_scratch.ipynb", backend="mxnet")
    with pytest.raises(SystemExit) as e:
        execute.main(["--full", "--write", "--backend", "torch", "01"])
    assert e.value.code == 2
    assert "--write needs --backend jax" in capsys.readouterr().err
    assert execute.versions("torch")["backend"] == "torch" and execute.versions("torch")["torch"]


def test_every_notebook_is_run_and_linked():
    """A notebook added to notebooks/ is executed here and linked from both READMEs."""
    on_disk = sorted(f for f in os.listdir(NOTEBOOK_DIR) if f.endswith(".ipynb"))
    assert on_disk == sorted(n for n, _ in NOTEBOOKS) == execute.notebooks()
    for readme in (os.path.join(REPO, "README.md"), os.path.join(NOTEBOOK_DIR, "README.md")):
        text = open(readme, encoding="utf-8").read()
        missing = [n for n in on_disk if n not in text]
        assert not missing, f"{readme} does not link {missing}"


#: The pass each notebook's quick run goes to, whose backend its kernel runs: the two
#: lightest passes, JAX and PyTorch, each with some notebooks (in quick mode PyTorch's
#: kernels are the cheaper: no program to compile; `python notebooks/execute.py --backend
#: torch` and `--backend jax` give each notebook's time).
_IN_THE_JAX_PASS = ("04", "05")
_KERNEL_PASS = {
    name: one_pass(*(("jax", "torch") if name[:2] in _IN_THE_JAX_PASS else ("torch", "jax")),
                   "tensorflow", why="each notebook's quick run")
    for name, _ in NOTEBOOKS}
#: The kernels' backend: this pass's, or JAX's (that of the stored outputs) in a TensorFlow
#: pass (a run without JAX and PyTorch).
KERNEL_BACKEND = BACKEND if BACKEND in ("jax", "torch") else execute.BACKEND


@pytest.mark.parametrize("name,needs_data", [
    pytest.param(name, data, marks=_KERNEL_PASS[name], id=name) for name, data in NOTEBOOKS])
def test_notebook_runs(name, needs_data):
    """Quick mode, top to bottom, in a fresh kernel; the committed file is not touched."""
    pytest.importorskip(KERNEL_BACKEND)
    pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    if needs_data:
        require_data(os.path.join(DATA_DIR, needs_data))

    path = os.path.join(NOTEBOOK_DIR, name)
    with open(path, "rb") as f:
        committed = f.read()
    # raises CellExecutionError, naming the cell, on any error
    run = execute.execute(name, quick=True, timeout=TIMEOUT_S, data_dir=DATA_DIR,
                          backend=KERNEL_BACKEND)
    cpu = "" if run.cpu_seconds is None else f", kernel CPU {run.cpu_seconds:.1f}s"
    print(f"{name}: {run.seconds:.1f}s{cpu}, KERAS_BACKEND={KERNEL_BACKEND}")
    assert run.nb.metadata["grukit"]["mode"] == "quick"
    assert run.nb.metadata["grukit"]["backend"] == KERNEL_BACKEND
    first = next(cell for cell in run.nb.cells if cell.cell_type == "code")
    shown = "".join(o.get("text", "") for o in first.outputs if o.output_type == "stream")
    assert shown.startswith(f"backend: {KERNEL_BACKEND} |"), shown  # the kernel's own word
    assert run.problems == [], f"{name}:\n" + "\n".join(run.problems)
    with open(path, "rb") as f:
        assert f.read() == committed, f"{name} was written to"
