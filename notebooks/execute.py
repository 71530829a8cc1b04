"""Run the tutorials in a fresh kernel and, on request, store their outputs.

The notebooks are committed with the outputs of a *full* run (``GRUKIT_NOTEBOOK_QUICK=0``),
so that they read without being run. This script is how those outputs are made, and how
CI (``tests/test_notebooks.py``) runs the quick versions::

    python notebooks/execute.py                    # all six, quick mode; nothing is written
    python notebooks/execute.py 03 05              # some of them (a number, prefix or file name)
    python notebooks/execute.py --backend torch    # quick mode in PyTorch kernels
    python notebooks/execute.py --full --write     # regenerate every stored output (slow)
    python notebooks/execute.py --full --write 04  # regenerate one notebook

Each notebook is executed with nbclient in a fresh kernel on this interpreter
(``sys.executable -m ipykernel_launcher``, through a kernelspec written to a temporary
folder), with ``KERAS_BACKEND=jax`` (``--backend`` picks another for a run that is not
stored: CI runs the quick versions under the JAX and the PyTorch backends),
``PYTHONHASHSEED=0``, grukit imported from this checkout (``PYTHONPATH``), the data from
``$GRUKIT_DATA_DIR`` (else ``../shared/data``), and a temporary working directory (also
``TMPDIR``) that is removed afterwards.

``--write`` (only with ``--full``) writes the executed notebook back, cleaned: the
timestamps nbclient records in each cell's metadata are dropped, the notebook metadata
keeps its committed ``kernelspec`` and ``language_info``, and ``metadata["grukit"]``
records the run: mode, the sha256 of the code cells' sources (:func:`source_sha256`;
the test compares it with the committed cells), backend and versions, and the run's wall
time in seconds (``wall_seconds``, which notebooks/README.md quotes). A notebook whose
outputs show an error, a machine-local path, a plot without its image or anything on
standard error (:func:`problems`), or that was edited while it ran, is not written (the
executed copy is left in the temporary folder, for reading). C-level output of the kernel
(TensorFlow's and XLA's start-up logs) goes to a log, not into the notebook; on a failure
its end is printed.
"""
from __future__ import annotations

import argparse
import ast
import collections
import copy
import datetime
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from importlib import metadata as _metadata

NOTEBOOK_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(NOTEBOOK_DIR)
#: The backend of the full runs whose outputs are stored in the notebooks.
BACKEND = "jax"
#: The backends a run may choose (``execute(backend=...)``, ``--backend``).
BACKENDS = ("jax", "torch", "tensorflow")
KERNEL = "grukit-notebooks-python"
#: A path of a particular machine: a temporary, work or home folder (tests/test_docs.py
#: applies a similar pattern to every committed file).
MACHINE_PATH = re.compile(r"(?<![\w.])/(tmp|var/folders|work|home|root|Users)/")
REGENERATE = "python notebooks/execute.py --full --write {name}"


def notebooks():
    """The tutorials' file names, in order."""
    return sorted(f for f in os.listdir(NOTEBOOK_DIR) if f.endswith(".ipynb"))


def resolve(names):
    """File names for command-line names: a file name, or its number or prefix (``03``)."""
    if not names:
        return notebooks()
    chosen = []
    for name in names:
        name = os.path.basename(name)
        match = [f for f in notebooks() if f == name or f.startswith(name)]
        if len(match) != 1:
            raise SystemExit(f"error: {name!r} names {len(match)} notebooks of {notebooks()}")
        chosen += match
    return chosen


def source_sha256(nb):
    """The sha256 of a notebook's code: the sources of its code cells, in order."""
    sources = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    return hashlib.sha256(json.dumps(sources).encode("utf-8")).hexdigest()


def versions(backend=BACKEND):
    """The backend and the versions the outputs depend on: Keras's and the backend's as
    installed for this interpreter (whose executable the kernel runs), grukit's of this
    checkout."""
    with open(os.path.join(REPO, "grukit", "__init__.py"), encoding="utf-8") as f:
        grukit_version = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)
    return {"backend": backend, "keras": _metadata.version("keras"),
            backend: _metadata.version(backend), "grukit": grukit_version}


def shows_output(source):
    """Whether a code cell is meant to show something: it calls ``print``, ``display`` or
    ``show`` (``plt.show()``), or its last statement is an expression (whose value Jupyter
    displays). Any other cell (definitions, assignments) is legitimately silent."""
    code = "\n".join(line for line in source.splitlines()
                     if not line.lstrip().startswith(("%", "!")))  # IPython magics
    tree = ast.parse(code)
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not code.rstrip().endswith(";"):
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if called in ("print", "display", "show"):
                return True
    return False


def problems(nb, extra_paths=(), stderr=True):
    """What is wrong with a notebook's outputs, as a list of strings (empty: nothing).

    An error output or a traceback; a machine-local path (:data:`MACHINE_PATH`, or any of
    ``extra_paths``: a temporary folder, the checkout, the data directory, the home
    folder); a cell that shows something (:func:`shows_output`) but has no output; a cell
    that shows a figure (``plt.show()``) without a PNG image; with ``stderr=False``, any
    output on standard error (warnings: the stored outputs have none).
    """
    found = []
    extra_paths = [p for p in extra_paths if p and len(p.strip(os.sep)) > 1]
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        where = f"cell {index} ({cell.source.strip().splitlines()[0][:50]!r})" \
            if cell.source.strip() else f"cell {index}"
        outputs = cell.get("outputs", [])
        for output in outputs:
            if output.output_type == "error":
                found.append(f"{where}: {output.ename}: {output.evalue}")
                continue
            if output.output_type == "stream" and output.name == "stderr" and not stderr:
                found.append(f"{where}: writes to standard error: {output.text.strip()[:300]!r}")
            texts = [output.get("text", "")] + [
                value for key, value in output.get("data", {}).items()
                if key.startswith("text/") and isinstance(value, str)]
            for text in texts:
                if "Traceback (most recent call last)" in text:
                    found.append(f"{where}: a traceback in its output")
                hit = MACHINE_PATH.search(text) or next(
                    (p for p in extra_paths if p in text), None)
                if hit:
                    shown = hit.group(0) if hasattr(hit, "group") else hit
                    found.append(f"{where}: a machine-local path in its output ({shown!r})")
        if not outputs and shows_output(cell.source):
            found.append(f"{where}: shows something when it runs, but has no output")
        if "plt.show()" in cell.source and not any(
                "image/png" in o.get("data", {}) for o in outputs):
            found.append(f"{where}: shows a figure but its output has no PNG image")
    return found


def _cell_seconds(nb):
    """Each code cell's execution time from the timestamps nbclient records."""
    seconds = []
    for index, cell in enumerate(nb.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if cell.cell_type == "code" and start and end:
            parse = datetime.datetime.fromisoformat
            seconds.append((index, (parse(end.replace("Z", "+00:00"))
                                    - parse(start.replace("Z", "+00:00"))).total_seconds()))
    return seconds


def _cpu_seconds(km):
    """The kernel's CPU time so far (its own and its finished children's; Linux), or None."""
    try:
        pid = km.provisioner.process.pid
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except Exception:  # another platform, or no such process
        return None


Run = collections.namedtuple("Run", "nb seconds cpu_seconds cells problems")


def execute(name, quick=True, timeout=900, data_dir=None, backend=BACKEND):
    """Execute ``notebooks/<name>`` top to bottom in a fresh kernel; the file is not touched.

    Args:
        name: the notebook's file name in ``notebooks/``.
        quick: ``GRUKIT_NOTEBOOK_QUICK=1`` (CI) or ``0`` (the full run that is stored).
        timeout: seconds a single cell may run (a hang guard), or ``None``.
        data_dir: the data directory (default ``$GRUKIT_DATA_DIR``, else ``../shared/data``).
        backend: the kernel's ``KERAS_BACKEND``, one of :data:`BACKENDS` (default
            :data:`BACKEND`, that of the stored outputs).

    Returns:
        A :data:`Run`: ``nb``, the executed notebook (cleaned, with ``metadata["grukit"]``);
        ``seconds``, the wall time from the kernel's start to the end of the last cell;
        ``cpu_seconds``, the kernel's CPU time (``None`` where it cannot be read);
        ``cells``, ``[(cell index, seconds), ...]``; ``problems``, :func:`problems` of
        its outputs.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised (the message names it).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}.")
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    path = os.path.join(NOTEBOOK_DIR, name)
    original = nbformat.read(path, as_version=4)
    nb = copy.deepcopy(original)
    if data_dir is None:
        data_dir = os.environ.get("GRUKIT_DATA_DIR") or os.path.join(REPO, "..", "shared", "data")
    data_dir = os.path.abspath(data_dir)
    with tempfile.TemporaryDirectory(prefix="grukit-nb-") as root:
        root = os.path.realpath(root)
        spec_dir = os.path.join(root, "kernels", KERNEL)
        work, tmp = os.path.join(root, "work"), os.path.join(root, "tmp")
        for folder in (spec_dir, work, tmp):
            os.makedirs(folder)
        with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
            # C-level output (TensorFlow's and XLA's start-up logs) goes to the kernel's log,
            # not into the notebook; Python's stdout, stderr and warnings still do
            json.dump({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f",
                                "{connection_file}", "--IPKernelApp.capture_fd_output=False"],
                       "display_name": "grukit notebooks", "language": "python"}, f)
        env = dict(os.environ)
        env.update({
            "KERAS_BACKEND": backend, "GRUKIT_NOTEBOOK_QUICK": "1" if quick else "0",
            "GRUKIT_DATA_DIR": data_dir, "PYTHONHASHSEED": "0", "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.pathsep.join([REPO] + [p for p in env.get("PYTHONPATH", "")
                                                    .split(os.pathsep) if p]),
            "TMPDIR": tmp,
        })
        km = KernelManager(kernel_name=KERNEL,
                           kernel_spec_manager=KernelSpecManager(kernel_dirs=[
                               os.path.join(root, "kernels")]))
        client = NotebookClient(nb, km=km, timeout=timeout, kernel_name=KERNEL,
                                resources={"metadata": {"path": work}})
        start = time.time()
        log_path = os.path.join(root, "kernel.log")
        with open(log_path, "w") as log:
            try:
                client.execute(env=env, cwd=work, stdout=log, stderr=log)
            except BaseException:
                with open(log_path, errors="replace") as f:
                    tail = f.read()[-4000:]
                print(f"{name}: the kernel's log ends:\n{tail}", file=sys.stderr)
                raise
            finally:  # the client leaves running a kernel it did not start
                seconds, cpu_seconds = time.time() - start, _cpu_seconds(km)
                if client.kc is not None:
                    client.kc.stop_channels()
                if km.has_kernel:
                    km.shutdown_kernel()
        found = problems(nb, extra_paths=[root, REPO, data_dir, os.path.expanduser("~")],
                         stderr=quick)
    cells = _cell_seconds(nb)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    for key in ("kernelspec", "language_info"):  # the committed values, not this machine's
        if key in original.metadata:
            nb.metadata[key] = original.metadata[key]
        else:
            nb.metadata.pop(key, None)
    nb.metadata["grukit"] = {"mode": "quick" if quick else "full",
                             "source_sha256": source_sha256(nb), **versions(backend)}
    return Run(nb, seconds, cpu_seconds, cells, found)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Execute the notebooks in a fresh kernel (quick mode by default); "
                    "--full --write stores a full run's outputs in them.")
    parser.add_argument("names", nargs="*", help="notebooks (file name, number or prefix); "
                        "default: all")
    parser.add_argument("--full", action="store_true",
                        help="GRUKIT_NOTEBOOK_QUICK=0: the full run (slow on a CPU)")
    parser.add_argument("--write", action="store_true",
                        help="write the executed notebook back (needs --full)")
    parser.add_argument("--out", metavar="DIR",
                        help="write the executed notebooks to DIR instead (any mode), "
                             "to read the outputs of a quick run")
    parser.add_argument("--backend", choices=BACKENDS, default=BACKEND,
                        help=f"the kernels' KERAS_BACKEND (default {BACKEND}; the stored "
                             f"outputs are {BACKEND}'s: --write needs it)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds a cell may run (default: 900 quick, none full)")
    args = parser.parse_args(argv)
    if args.write and not args.full:
        parser.error("--write stores a full run's outputs: add --full")
    if args.write and args.backend != BACKEND:
        parser.error(f"the stored outputs are a {BACKEND} run's: --write needs "
                     f"--backend {BACKEND}")
    import nbformat

    timeout = args.timeout if args.timeout is not None else (None if args.full else 900)
    status = 0
    for name in resolve(args.names):
        mode = "full" if args.full else "quick"
        print(f"{name}: running ({mode}, {args.backend})", flush=True)
        path = os.path.join(NOTEBOOK_DIR, name)
        with open(path, "rb") as f:
            committed = f.read()
        nb, seconds, cpu_seconds, cells, found = execute(name, quick=not args.full,
                                                         timeout=timeout, backend=args.backend)
        with open(path, "rb") as f:
            if args.write and f.read() != committed:  # edited meanwhile: keep the edits
                found = found + [f"{name} changed while it ran: run it again"]
        slowest = sorted(cells, key=lambda c: -c[1])[:3]
        cpu = "" if cpu_seconds is None else f", kernel CPU {cpu_seconds:.1f} s"
        print(f"{name}: {seconds:.1f} s ({mode}{cpu}); slowest cells: "
              + ", ".join(f"[{i}] {s:.1f} s" for i, s in slowest), flush=True)
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            nbformat.write(nb, os.path.join(args.out, name))
        if found:
            status = 1
            print(f"{name}: not written:\n  " + "\n  ".join(found))
            if args.write and not args.out:  # a long run is not lost: read what went wrong
                rejected = os.path.join(tempfile.gettempdir(), f"rejected-{name}")
                nbformat.write(nb, rejected)
                print(f"{name}: the executed notebook is in {rejected}")
            continue
        if args.write and not args.out:
            nb.metadata["grukit"]["wall_seconds"] = round(seconds)  # the README's table
            nbformat.validate(nb)
            nbformat.write(nb, path)
            print(f"{name}: wrote {os.path.getsize(path) / 1024:.0f} KiB", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
