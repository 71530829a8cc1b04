"""The grukit model zoo: trained GRU-family models, their recipes, search, presets and export.

Each model is a directory of the repository's ``zoo/`` (``ett_forecasting``,
``imdb_sentiment``, ``char_lm``) with a recipe (a :class:`ZooModel` subclass
in ``recipe.py``), default hyperparameters (``hparams.json``), a model card
(``README.md``) and a committed preset (``preset/``). The zoo directory is
found in this order: ``$GRUKIT_ZOO_DIR``; ``zoo/`` next to the ``grukit``
package in a source checkout (``pip install -e .``); the copy a regular
``pip install`` places in ``grukit/zoo_models``.

Example::

    import grukit.zoo

    for entry in grukit.zoo.list():
        print(entry.name, entry.status, entry.description)
    model = grukit.zoo.load("ett-forecasting")            # a Keras model, any backend
    ett = grukit.zoo.get("ett-forecasting")               # its recipe
    forecast = ett.predict(model, window)                  # window [lookback, 7], original units

Importing this package imports neither TensorFlow nor keras-tuner.
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib.util
import os
import sys
from pathlib import Path

from grukit.zoo.base import TUNERS, TrainResult, ZooModel
from grukit.zoo.presets import Preset, load_preset, read_metadata, save_preset

__all__ = ["list", "get", "load", "from_preset", "zoo_dir", "ZooEntry", "ZooModel",
           "TrainResult", "Preset", "save_preset", "load_preset", "read_metadata", "TUNERS",
           "CATALOGUE"]

# The zoo's models: name -> (directory, description used until its recipe exists).
CATALOGUE = {
    "imdb-sentiment": ("imdb_sentiment", "IMDB movie-review sentiment (issue #5)"),
    "char-lm": ("char_lm", "Tiny Shakespeare character language model (issue #6)"),
    "ett-forecasting": ("ett_forecasting", "ETTh1 multivariate forecasting, SegRNN-style"),
}


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One row of :func:`list`.

    Attributes:
        name: the zoo name (``"ett-forecasting"``).
        description: one line.
        status: ``"ready"`` (recipe and committed preset), ``"recipe"`` (recipe,
            no preset yet), ``"planned"`` (no recipe yet) or ``"broken: <error>"``
            (the recipe fails to import).
        directory: ``pathlib.Path`` of the model's directory.

    Example:
        >>> [e.name for e in grukit.zoo.list() if e.status == "ready"]
        ['ett-forecasting']
    """

    name: str
    description: str
    status: str
    directory: Path


def zoo_dir():
    """The directory holding the zoo's model directories (see the module docstring).

    Raises:
        FileNotFoundError: ``$GRUKIT_ZOO_DIR`` names no directory, or no zoo is found.

    Example:
        >>> grukit.zoo.zoo_dir()
        PosixPath('/work/main/zoo')
    """
    env = os.environ.get("GRUKIT_ZOO_DIR")
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"GRUKIT_ZOO_DIR={env!r} is not a directory.")
        return path
    package = Path(__file__).resolve().parents[1]  # .../grukit
    checkout = package.parent / "zoo"
    if (package.parent / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    installed = package / "zoo_models"
    if installed.is_dir():
        return installed
    raise FileNotFoundError(
        "No zoo directory found: set GRUKIT_ZOO_DIR to the repository's zoo/ directory.")


def _canonical(name):
    if not isinstance(name, str):
        raise TypeError(f"A zoo model name must be a string; got {name!r}.")
    key = name.strip().lower().replace("_", "-")
    names = _all_names()
    if key not in names:
        raise ValueError(f"Unknown zoo model {name!r}. Expected one of: {', '.join(names)}.")
    return key


def _all_names():
    names = builtins.list(CATALOGUE)
    try:
        root = zoo_dir()
    except FileNotFoundError:
        return names
    for child in sorted(root.iterdir()):
        if (child / "recipe.py").is_file():
            name = child.name.replace("_", "-")
            if name not in names:
                names.append(name)
    return names


def _directory(name):
    dirname = CATALOGUE[name][0] if name in CATALOGUE else name.replace("-", "_")
    return zoo_dir() / dirname


_RECIPES = {}


def get(name):
    """The recipe (a :class:`ZooModel` instance) of the zoo model ``name``.

    Names: ``"ett-forecasting"``, ``"imdb-sentiment"``, ``"char-lm"`` (``_`` works
    for ``-``). The recipe is imported from ``zoo/<dir>/recipe.py``.

    Raises:
        ValueError: unknown name (listing the known ones).
        FileNotFoundError: the model's recipe is not written yet.

    Example:
        >>> ett = grukit.zoo.get("ett-forecasting")
        >>> ett.default_hparams()["variant"]
        'gru'
    """
    key = _canonical(name)
    directory = _directory(key)
    path = directory / "recipe.py"
    cached = _RECIPES.get(key)
    if cached is not None and cached[0] == path:
        return cached[1]
    if not path.is_file():
        raise FileNotFoundError(
            f"The zoo model {key!r} has no recipe yet (expected {str(path)!r}).")
    module_name = f"_grukit_zoo_{directory.name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    classes = [obj for obj in vars(module).values()
               if isinstance(obj, type) and issubclass(obj, ZooModel) and obj is not ZooModel
               and obj.__module__ == module_name]
    if len(classes) != 1:
        raise TypeError(f"{str(path)!r} must define exactly one ZooModel subclass; "
                        f"found {[c.__name__ for c in classes]}.")
    recipe = classes[0]()
    if recipe.name != key:
        raise TypeError(f"{str(path)!r}: {classes[0].__name__}.name is {recipe.name!r}, "
                        f"expected {key!r}.")
    recipe.directory = directory
    _RECIPES[key] = (path, recipe)
    return recipe


def list():  # noqa: A001 -- the zoo's public API is grukit.zoo.list()
    """The zoo's models as :class:`ZooEntry` rows (name, description, status, directory).

    All catalogued models are listed, with a status: ``"ready"`` (a trained
    preset is committed), ``"recipe"`` (the recipe exists, no preset yet),
    ``"planned"`` (not written yet) or ``"broken: ..."``. A directory of the
    zoo with a ``recipe.py`` that is not in the catalogue is listed too.

    Example:
        >>> [(e.name, e.status) for e in grukit.zoo.list()]
        [('imdb-sentiment', 'planned'), ('char-lm', 'planned'), ('ett-forecasting', 'ready')]
    """
    from grukit.zoo.presets import is_preset

    entries = []
    for name in _all_names():
        directory = _directory(name)
        description = CATALOGUE.get(name, ("", ""))[1]
        if not (directory / "recipe.py").is_file():
            entries.append(ZooEntry(name, description, "planned", directory))
            continue
        try:
            recipe = get(name)
        except Exception as e:  # a recipe being written: list it, do not fail
            entries.append(ZooEntry(name, description, f"broken: {type(e).__name__}: {e}",
                                    directory))
            continue
        status = "ready" if is_preset(directory / "preset") else "recipe"
        entries.append(ZooEntry(name, recipe.description or description, status, directory))
    return entries


def load(name, preset=None):
    """The trained Keras model of zoo model ``name``, on the current backend.

    Args:
        name: a zoo name (``"ett-forecasting"``, ...).
        preset: ``None`` for the committed preset, or a preset directory (or a
            training run directory holding ``preset/``).

    Returns:
        A ``keras.Model`` with ``model.zoo_preset`` (:class:`Preset`: path and metadata).

    Raises:
        ValueError: unknown name. FileNotFoundError: no recipe, or no preset there.

    Example:
        >>> model = grukit.zoo.load("ett-forecasting")
        >>> model.zoo_preset.metadata["metrics"]["test"]
    """
    return get(name).load(preset)


def from_preset(path):
    """Load any zoo preset directory; the model's recipe is named in its ``metadata.json``.

    Example:
        >>> model = grukit.zoo.from_preset("runs/ett/preset")
    """
    path = Path(path)
    if not (path / "metadata.json").is_file() and (path / "preset" / "metadata.json").is_file():
        path = path / "preset"
    metadata = read_metadata(path)
    name = metadata.get("model")
    if not name:
        raise ValueError(f"{str(path)!r}: metadata.json names no zoo model ('model' key).")
    return get(name).load(path)
