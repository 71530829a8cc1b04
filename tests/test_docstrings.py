"""Every public docstring example of the grukit package runs, and shows what it prints.

``test_docstring_examples`` runs the ``>>>`` examples of the public docstrings of every
grukit module (private modules and names, ``_x``, are left out) with the standard
:mod:`doctest` (``ELLIPSIS``, ``NORMALIZE_WHITESPACE``), one test per module. Each
docstring runs in a fresh namespace (an example imports what it uses), in a fresh
temporary working directory, after ``set_seed(0)`` (``grukit.zoo.base``:
``keras.utils.set_random_seed`` without importing TensorFlow on JAX and PyTorch). The cheap,
backend-generic modules (:data:`EVERY_BACKEND`) run in every backend's pass, the others
(the zoo, the data loaders) in the :data:`DOCTEST_BACKEND` pass only. Examples read data
through ``$GRUKIT_DATA_DIR`` (:data:`NEEDS_DATA`: missing data fails under tests/run.sh,
else skips, see ``conftest.require_data``); nothing is downloaded.

``test_example_sections_are_doctests`` keeps examples executable. The rule: an
``Example:`` / ``Examples:`` section of a docstring (the header line and the lines
indented under it) holds only

* doctest examples: ``>>>`` / ``...`` lines and their expected output (which ends at a
  blank line, as in :mod:`doctest`);
* shell commands: lines starting with ``$ `` (and the lines continuing one that ends
  with ``\\``), such as ``$ grukit zoo train ett-forecasting --quick``;
* comment lines starting with ``#``.

Any other line (Python code without ``>>>``, prose, text after the header's colon) fails
the check: prose goes before the section, a comment after ``#``.
"""
import ast
import doctest
import importlib
import io
import logging
import os
import re

import keras
import pytest

from conftest import BACKEND, DATA_DIR, PASSES, REPO, require_data
from grukit.zoo.base import set_seed

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
#: The backend-generic, cheap modules: their examples run in every backend's pass.
EVERY_BACKEND = ("grukit.cells", "grukit.layers", "grukit.variants", "grukit.inspect")
#: The pass that runs every other module's examples (they load presets, train tiny models):
#: on PyTorch they take about half their TensorFlow time and a third or less of their JAX
#: time (both compile every new model's functions). They pass on all three; when the run
#: leaves PyTorch out, the first of JAX, TensorFlow that it includes.
DOCTEST_BACKEND = next((b for b in ("torch", "jax", "tensorflow") if b in PASSES), BACKEND)

IMDB = os.path.join(DATA_DIR, "imdb", "aclImdb_v1.tar.gz")
SHAKESPEARE = os.path.join(DATA_DIR, "tinyshakespeare", "input.txt")
ETT = os.path.join(DATA_DIR, "ett", "ETTh1.csv")
#: Modules whose examples read data files (through ``$GRUKIT_DATA_DIR``).
NEEDS_DATA = {
    "grukit.datasets": (IMDB, SHAKESPEARE, ETT),
    "grukit.zoo": (ETT,),
    "grukit.zoo.base": (ETT,),
    "grukit.zoo.task": (ETT,),
    "grukit.zoo.training": (ETT,),
    "grukit.zoo.tuning": (ETT,),
    "grukit.zoo.models.char_lm.recipe": (SHAKESPEARE,),
    "grukit.zoo.models.ett_forecasting.recipe": (ETT,),
    "grukit.zoo.models.imdb_sentiment.recipe": (IMDB,),
}
#: Modules whose examples need an optional package (its pip extra).
NEEDS_PACKAGE = {"grukit.zoo.models.ett_forecasting.plots": ("matplotlib", "grukit[plot]")}


def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_files():
    """``{module name: file}`` of every grukit module, private ones included (no imports)."""
    root = os.path.join(REPO, "grukit")
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for file in sorted(files):
            if file.endswith(".py"):
                path = os.path.join(folder, file)
                parts = os.path.relpath(path, REPO)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts.pop()
                found[".".join(parts)] = path
    return found


MODULE_FILES = _module_files()
MODULES = [m for m in MODULE_FILES if not any(_private(p) for p in m.split("."))]


def _doctests(module):
    """The module's public docstrings as doctest tests, each with empty globals (an example
    imports what it uses): its classes' and functions' in source order, then the module's
    own (the overview, which uses what they show: IMDB's parsed archive is then cached)."""
    finder = doctest.DocTestFinder(exclude_empty=False)
    tests = [t for t in finder.find(module, module.__name__, globs={})
             if not any(_private(p) for p in t.name[len(module.__name__):].split(".") if p)]
    return sorted(tests, key=lambda t: (t.name == module.__name__, t.lineno or 0, t.name))


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A temporary working directory, the data folder in ``GRUKIT_DATA_DIR``, no downloads,
    and the process's environment and grukit logger as they were afterwards."""
    import grukit.datasets

    def no_download(*args, **kwargs):
        raise RuntimeError("a docstring example tried to download data")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRUKIT_DATA_DIR", DATA_DIR)
    monkeypatch.setattr(keras.utils, "get_file", no_download)
    monkeypatch.setattr(grukit.datasets, "_tfds_load", no_download)
    logger = logging.getLogger("grukit")
    environ, handlers, level = dict(os.environ), list(logger.handlers), logger.level
    yield tmp_path
    os.environ.clear()
    os.environ.update(environ)
    logger.handlers[:], logger.level = handlers, level


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, isolated):
    if name not in EVERY_BACKEND and BACKEND != DOCTEST_BACKEND:
        pytest.skip(f"the zoo's and the data loaders' examples run in the "
                    f"KERAS_BACKEND={DOCTEST_BACKEND} pass only (their outputs do not depend "
                    f"on the backend; those of {', '.join(EVERY_BACKEND)} run in every pass)")
    for path in NEEDS_DATA.get(name, ()):
        require_data(path)
    if name in NEEDS_PACKAGE:
        package, extra = NEEDS_PACKAGE[name]
        pytest.importorskip(package, reason=f"{name}'s examples need {package} "
                                            f"(pip install '{extra}')")
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    for i, test in enumerate(_doctests(module)):
        (isolated / str(i)).mkdir()
        os.chdir(isolated / str(i))  # each docstring in a fresh working directory
        set_seed(0)
        runner.run(test, out=report.write)
    assert runner.failures == 0, (f"{name}: {runner.failures} of {runner.tries} examples "
                                  f"failed\n{report.getvalue()}")


# ------------------------------------------------------------ the form of examples
HEADER = re.compile(r"^(?P<indent>\s*)Examples?:{1,2}(?P<rest>.*)$")


def example_section_problems(doc):
    """The lines of ``doc``'s Example sections that break the rule (module docstring)."""
    problems = []
    lines = doc.expandtabs().splitlines()
    i = 0
    while i < len(lines):
        m = HEADER.match(lines[i])
        i += 1
        if not m:
            continue
        if m["rest"].strip():
            problems.append(lines[i - 1].strip())
        indent = len(m["indent"])
        state = None  # "doctest": in an example's source/output; "shell": a continued command
        while i < len(lines):
            line = lines[i]
            text = line.strip()
            if text and len(line) - len(line.lstrip()) <= indent:
                break  # the section ends at a line indented no deeper than its header
            i += 1
            if not text:
                state = None
            elif text.startswith(">>>"):
                state = "doctest"
            elif state == "shell" or text.startswith("$ "):
                state = "shell" if text.endswith("\\") else None
            elif state == "doctest" or text.startswith("#"):
                pass  # a continuation line, expected output, or a comment
            else:
                problems.append(text)
    return problems


def _docstrings(path):
    """``(qualified name, line, docstring)`` of every docstring in the file at ``path``."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    found = []

    def visit(node, prefix):
        doc = ast.get_docstring(node, clean=True)
        if doc:
            found.append((prefix, getattr(node, "lineno", 1), doc))
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, f"{prefix}.{child.name}")

    visit(tree, "")
    return found


@pytest.mark.parametrize("name", list(MODULE_FILES))
def test_example_sections_are_doctests(name):
    bad = [f"{name}{where or ''} (line {line}): {text!r}"
           for where, line, doc in _docstrings(MODULE_FILES[name])
           for text in example_section_problems(doc)]
    assert bad == [], ("Example sections hold only >>> examples, '$ ' shell commands and "
                       "'#' comments:\n" + "\n".join(bad))


def test_example_section_rule():
    doc = ("Summary.\n\nExample:\n    >>> f(1)\n    2\n    >>> g(\n    ...     3)\n\n"
           "    $ grukit zoo train \\\n        ett-forecasting --quick\n    # a comment\n"
           "Returns:\n    nothing.\n")
    assert example_section_problems(doc) == []
    assert example_section_problems("Example:\n    f(1)\n") == ["f(1)"]
    assert example_section_problems("Example: ``f(1)``.") == ["Example: ``f(1)``."]
    assert example_section_problems("Examples::\n\n    grukit zoo list\n") == ["grukit zoo list"]
    assert example_section_problems("Example:\n    >>> f(1)\n    2\n\n    f(2)\n") == ["f(2)"]


# -------------------------------------------------- the public API shows examples
def test_public_api_shows_examples():
    """The data loaders' and the zoo's public classes and functions each show a ``>>>``
    example (which ``test_docstring_examples`` runs)."""
    import inspect

    import grukit.zoo
    from grukit import datasets
    from grukit.zoo import base, cli, export, presets, training, tuning

    objects = [(f"{m.__name__}.{n}", getattr(m, n)) for m, names in (
        (datasets, datasets.__all__), (grukit.zoo, grukit.zoo.__all__),
        (presets, presets.__all__), (base, base.__all__), (training, training.__all__),
        (tuning, tuning.__all__), (export, export.__all__),
        (cli, ["add_parser", "common_options"])) for n in names]
    objects += [(f"ETTData.{n}", getattr(datasets.ETTData, n))
                for n in ("scale", "inverse", "split", "windows", "num_windows")]
    missing = [name for name, obj in objects
               if (inspect.isclass(obj) or inspect.isfunction(obj))
               and ">>>" not in (obj.__doc__ or "")]
    assert missing == [], missing
