"""The grukit model zoo: trained GRU-family models, their recipes, search, presets and export.

Each model is a subpackage of :mod:`grukit.zoo.models` (``ett_forecasting``,
``imdb_sentiment``, ``char_lm``) made of small modules -- ``model`` (the Keras
model), ``preprocessing``, ``data``, ``recipe`` (a :class:`ZooModel` subclass:
hyperparameters, search space, training and serving hooks, command line) and,
where the model needs them, ``generation``, ``serving``, ``plots`` -- plus
package data: the hyperparameter profiles (``hparams.json``), the model card
(``README.md``) and the committed presets (``preset*/``). They are ordinary
modules: ``from grukit.zoo.models.ett_forecasting.model import SegRNN``.

Example::

    >>> import grukit.zoo
    >>> from grukit.datasets import load_ett
    >>> for entry in grukit.zoo.list():
    ...     print(entry.name, entry.status)
    imdb-sentiment ready
    char-lm ready
    ett-forecasting ready
    >>> model = grukit.zoo.load("ett-forecasting")     # a Keras model, any backend
    >>> ett = grukit.zoo.get("ett-forecasting")        # its recipe
    >>> window = load_ett().values[-model.lookback:]   # [lookback, 7], the CSV's units
    >>> ett.predict(model, window).shape               # the next 96 hours, the CSV's units
    (96, 7)

    >>> # keras-hub-style tasks: the user's raw input in, the answer out
    >>> clf = grukit.zoo.SentimentClassifier.from_preset("imdb-sentiment")
    >>> clf.predict(["a joyless film", "a little gem"]).shape     # P(positive) of each
    (2,)
    >>> lm = grukit.zoo.CharLM.from_preset("char-lm")
    >>> len(lm.generate("ROMEO:", 10, temperature=0.8, seed=1))
    10
    >>> fc = grukit.zoo.Forecaster.from_preset("ett-forecasting", horizon=336)
    >>> fc.predict(window).shape
    (336, 7)

Importing this package imports neither TensorFlow nor keras-tuner.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

from grukit.zoo.base import TUNERS, TrainResult, ZooModel
from grukit.zoo.presets import Preset, load_preset, read_metadata, save_preset
from grukit.zoo.task import CharLM, Forecaster, SentimentClassifier, Task

__all__ = ["list", "get", "load", "from_preset", "zoo_dir", "ZooEntry", "ZooModel",
           "TrainResult", "Preset", "save_preset", "load_preset", "read_metadata", "TUNERS",
           "CATALOGUE", "Task", "SentimentClassifier", "CharLM", "Forecaster"]

# The zoo's models: name -> "module:RecipeClass".
CATALOGUE = {
    "imdb-sentiment": "grukit.zoo.models.imdb_sentiment.recipe:ImdbSentiment",
    "char-lm": "grukit.zoo.models.char_lm.recipe:CharLanguageModel",
    "ett-forecasting": "grukit.zoo.models.ett_forecasting.recipe:EttForecasting",
}


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One row of :func:`list`.

    Attributes:
        name: the zoo name (``"ett-forecasting"``).
        description: one line.
        status: ``"ready"`` (recipe and committed preset), ``"recipe"`` (no
            committed preset) or ``"broken: <error>"`` (the recipe fails to import).
        directory: ``pathlib.Path`` of the model's package directory.

    Example:
        >>> import grukit.zoo
        >>> sorted(e.name for e in grukit.zoo.list() if e.status == "ready")
        ['char-lm', 'ett-forecasting', 'imdb-sentiment']
    """

    name: str
    description: str
    status: str
    directory: Path


def zoo_dir():
    """The directory of :mod:`grukit.zoo.models`, which holds one package per model.

    Example:
        >>> import grukit.zoo
        >>> (grukit.zoo.zoo_dir() / "ett_forecasting" / "hparams.json").is_file()
        True
    """
    return Path(__file__).resolve().parent / "models"


def _canonical(name):
    if not isinstance(name, str):
        raise TypeError(f"A zoo model name must be a string; got {name!r}.")
    key = name.strip().lower().replace("_", "-")
    if key not in CATALOGUE:
        raise ValueError(f"Unknown zoo model {name!r}. Expected one of: {', '.join(CATALOGUE)}.")
    return key


_RECIPES = {}


def get(name):
    """The recipe (a :class:`ZooModel` instance) of the zoo model ``name``.

    Names: ``"ett-forecasting"``, ``"imdb-sentiment"``, ``"char-lm"`` (``_`` works
    for ``-``). The recipe class is imported from its package
    (``grukit.zoo.models.<name>.recipe``); one instance per name is kept.

    Raises:
        ValueError: unknown name (listing the known ones).

    Example:
        >>> import grukit.zoo
        >>> ett = grukit.zoo.get("ett-forecasting")
        >>> ett.default_hparams()["variant"]
        'gru'
        >>> grukit.zoo.get("ett_forecasting") is ett
        True
        >>> grukit.zoo.get("weather")
        Traceback (most recent call last):
        ValueError: Unknown zoo model 'weather'. Expected one of: imdb-sentiment, char-lm, ett-forecasting.
    """
    key = _canonical(name)
    recipe = _RECIPES.get(key)
    if recipe is None:
        module, cls = CATALOGUE[key].split(":")
        recipe = _RECIPES[key] = getattr(importlib.import_module(module), cls)()
    return recipe


def list():  # noqa: A001 -- the zoo's public API is grukit.zoo.list()
    """The zoo's models as :class:`ZooEntry` rows (name, description, status, directory).

    Status: ``"ready"`` (a trained preset is committed), ``"recipe"`` (no
    committed preset) or ``"broken: ..."`` (the recipe fails to import).

    Example:
        >>> import grukit.zoo
        >>> [(e.name, e.status) for e in grukit.zoo.list()]
        [('imdb-sentiment', 'ready'), ('char-lm', 'ready'), ('ett-forecasting', 'ready')]
    """
    from grukit.zoo.presets import is_preset

    entries = []
    for name, target in CATALOGUE.items():
        directory = zoo_dir() / target.split(":")[0].split(".")[-2]
        try:
            recipe = get(name)
        except Exception as e:  # list a broken recipe, do not fail
            entries.append(ZooEntry(name, "", f"broken: {type(e).__name__}: {e}", directory))
            continue
        status = "ready" if is_preset(recipe.preset_dir()) else "recipe"
        entries.append(ZooEntry(name, recipe.description, status, recipe.directory))
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
        >>> import grukit.zoo
        >>> model = grukit.zoo.load("ett-forecasting")
        >>> type(model).__name__, model.lookback, model.horizon
        ('SegRNN', 720, 96)
        >>> round(model.zoo_preset.metadata["metrics"]["test"]["mse"], 3)
        0.356
    """
    return get(name).load(preset)


def from_preset(path):
    """Load any zoo preset directory; the model's recipe is named in its ``metadata.json``.

    Example:
        >>> import grukit.zoo
        >>> path = grukit.zoo.get("imdb-sentiment").preset_dir()  # or a ``zoo train --out`` run's
        >>> model = grukit.zoo.from_preset(path)
        >>> model.zoo_preset.metadata["model"], type(model).__name__
        ('imdb-sentiment', 'SentimentModel')
    """
    path = Path(path)
    if not (path / "metadata.json").is_file() and (path / "preset" / "metadata.json").is_file():
        path = path / "preset"
    metadata = read_metadata(path)
    name = metadata.get("model")
    if not name:
        raise ValueError(f"{str(path)!r}: metadata.json names no zoo model ('model' key).")
    return get(name).load(path)
