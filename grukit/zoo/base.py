"""``ZooModel``: the one mechanism behind every zoo model.

A zoo model is a package ``grukit/zoo/models/<dir>/`` holding

* ``recipe.py`` -- one subclass of :class:`ZooModel` that fills in the
  model-specific hooks (data, search space, model, metrics, serving, predict),
* ``config.py`` -- the hyperparameters: one frozen dataclass (:class:`ZooConfig`),
* ``hparams.json`` -- named profiles of hyperparameters (``"defaults"``, the
  overrides of a quick CPU run ``"quick"``, the committed presets' ...),
* ``README.md`` -- the model card, with a table of measured metrics,
* ``preset/`` -- the committed trained model (:mod:`grukit.zoo.presets`),
* the model's own modules (``model.py``, ``preprocessing.py``, ``data.py``, ...).

Everything else is shared and lives here: the keras-tuner ``HyperModel`` built
from the hooks, training (resumable with ``BackupAndRestore``, best-epoch
checkpoint, early stopping, progress bars, seeds, data parallel on JAX),
tuning (random search, Bayesian optimisation, Hyperband; resumable;
distributable through keras-tuner's ``KERASTUNER_*`` variables), evaluation
of a preset, atomic SavedModel export and preset writing with metadata.

Writing a recipe (``grukit/zoo/models/<dir>/recipe.py``, beside the model's
``model.py``, ``preprocessing.py`` and ``data.py``)::

    import keras, grukit
    from grukit.zoo import ZooModel

    class ImdbSentiment(ZooModel):
        name = "imdb-sentiment"                 # the zoo name, directory imdb_sentiment
        description = "IMDB review sentiment, embedding + bidirectional grukit layer"
        objective = "val_loss"                  # what the search and the checkpoint select on
        direction = "min"
        config_class = ImdbConfig               # config.py: the hyperparameters' dataclass

        def load_data(self, data_dir=None, **options):
            return ...                          # any object: the dataset, vocabulary, ...

        def data_files(self, data):
            return [...]                        # files whose sha256 goes into metadata.json

        def search_space(self, hp, hparams, quick=False):
            return {"variant": hp.Choice("variant", ["gru", "mgu2", "mingru"]),
                    "units": hp.Choice("units", [32, 64] if quick else [64, 128, 256])}

        def build(self, hparams, data):         # -> a built, compiled keras.Model
            ...

        def dataset(self, data, hparams, split, training=False, seed=0):
            ...                                 # split: "train", "validation" or "test";
                                                # what model.fit/predict accept (a PyDataset, ...);
                                                # training: shuffled by the run's seed

        def evaluate(self, model, data, hparams, split="test"):
            return {"accuracy": ...}            # every example counted

        def serving(self, model, preset):       # the SavedModel's signature (runs under TF)
            return fn, [keras.InputSpec((None,), "string")]

        def serving_sample(self, preset):       # a sample batch to verify the export with
            return np.array([b"a great film", b"dull"])

        def predict(self, model, inputs, preset=None, **options):
            ...                                 # what a user has in, what a user wants out

Hyperparameters: each model has one frozen dataclass, a subclass of
:class:`ZooConfig` in ``grukit/zoo/models/<dir>/config.py`` (its fields, types,
defaults and every check), named by the recipe's ``config_class``.
``hparams.json`` holds named profiles of overrides of those defaults
(``"defaults"``, ``"quick"``, the committed presets'). The engine passes plain
dicts (keras-tuner, ``metadata.json``, ``--set``), and every dict that reaches
the hooks is the ``to_dict()`` of a validated config: the config's defaults,
then ``hparams.json``'s ``"defaults"`` profile, then the named profile
(``"quick"`` with ``--quick``), then the search's values, then the command
line's ``--set key=value`` / ``--variant`` (see :meth:`ZooModel.hparams`).
The fields every config has: ``variant``, ``units``, ``learning_rate``,
``batch_size``, ``epochs``, ``patience`` (checked once, by :class:`ZooConfig`);
a config adds its own.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path

from grukit.variants import VARIANTS, get_variant
from grukit.zoo import presets as _presets

__all__ = ["ZooModel", "ZooConfig", "Rule", "TrainResult", "TUNERS", "parse_value", "set_seed"]

log = logging.getLogger(__name__)

TUNERS = ("random", "bayesian", "hyperband")
SPLITS = ("train", "validation", "test")
def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


class Rule:
    """What one hyperparameter's value must be: a test and the words for it.

    A :class:`ZooConfig` names one rule per field; a value that fails its rule
    raises ``ValueError("<model>: hyperparameter '<key>' must be <expected>; got <value>.")``.
    No value is converted: ``True`` is not an integer, ``1`` is a number, NaN and
    infinities are not numbers.

    Args:
        ok: ``ok(value) -> bool``.
        expected: what a valid value is, in words (``"a positive integer"``).

    Example:
        >>> from grukit.zoo.base import Rule
        >>> rule = Rule.integer(0).explain("0 = every review")
        >>> rule.check("imdb-sentiment", "train_limit", 2000)       # fine: nothing happens
        >>> rule.check("imdb-sentiment", "train_limit", -1)
        Traceback (most recent call last):
        ValueError: imdb-sentiment: hyperparameter 'train_limit' must be a non-negative integer (0 = every review); got -1.
    """

    def __init__(self, ok, expected):
        self.ok = ok
        self.expected = expected

    def __repr__(self):
        return f"Rule({self.expected!r})"

    def explain(self, note):
        """The same rule with ``note`` (what the value means) added to its words."""
        return Rule(self.ok, f"{self.expected} ({note})")

    def check(self, model, key, value):
        """Raise ``ValueError`` naming ``model``, ``key``, ``value`` and what was expected."""
        if not self.ok(value):
            raise ValueError(f"{model}: hyperparameter {key!r} must be {self.expected}; "
                             f"got {value!r}.")

    @staticmethod
    def integer(low):
        """An ``int`` (not a ``bool``) ``>= low``."""
        words = {0: "a non-negative integer", 1: "a positive integer"}
        return Rule(lambda v: _is_int(v) and v >= low,
                    words.get(low, f"an integer >= {low}"))

    @staticmethod
    def number(low=0.0, high=None, low_open=False, high_open=False):
        """A finite ``int`` or ``float`` (not a ``bool``) in the interval from ``low`` to
        ``high`` (``None``: unbounded), each end open or closed."""
        def ok(v):
            return (_is_number(v) and (v > low if low_open else v >= low)
                    and (high is None or (v < high if high_open else v <= high)))

        if high is None and low == 0:
            words = "a positive number" if low_open else "a non-negative number"
        elif high is None:
            words = f"a number {'>' if low_open else '>='} {low:g}"
        else:
            words = (f"a number in {'(' if low_open else '['}{low:g}, {high:g}"
                     f"{')' if high_open else ']'}")
        return Rule(ok, words)

    @staticmethod
    def one_of(*choices):
        """One of ``choices`` (of the same type: ``1`` is not ``True``)."""
        return Rule(lambda v: any(type(v) is type(c) and v == c for c in choices),
                    f"one of {', '.join(map(repr, choices))}")


def _is_variant(value):
    try:
        get_variant(value)
    except (TypeError, ValueError):
        return False
    return True


Rule.BOOLEAN = Rule(lambda v: isinstance(v, bool), "true or false")
Rule.FRACTION = Rule.number(0, 1, high_open=True)  # a dropout rate

#: The fields every model's config has, and their rules (checked by :class:`ZooConfig`).
COMMON_RULES = {
    "variant": Rule(_is_variant, f"a grukit variant name ({', '.join(VARIANTS)})"),
    "units": Rule.integer(1),
    "learning_rate": Rule.number(0, low_open=True),
    "batch_size": Rule.integer(1),
    "epochs": Rule.integer(1),
    "patience": Rule.integer(0).explain("epochs without improvement before stopping; "
                                        "0: never stop early"),
}
COMMON_HPARAMS = tuple(COMMON_RULES)


class ZooConfig:
    """Base of every zoo model's hyperparameters: one frozen dataclass per model.

    A model's ``config.py`` declares ``@dataclasses.dataclass(frozen=True) class
    XConfig(ZooConfig)`` with one typed field per hyperparameter (its default is
    the model's default), and sets the class attributes below. Construction
    validates: every field against its :class:`Rule` (the common fields'
    rules are here, checked once for every model), then the config's
    :meth:`check` (relations between fields). Nothing is converted, so
    ``XConfig.from_dict(d).to_dict() == d`` for a complete, valid ``d``.

    Class attributes (set by the subclass, not fields):
        model: the zoo name, in error messages.
        RULES: ``{field: Rule}`` for every field that is not a common one
            (``variant``, ``units``, ``learning_rate``, ``batch_size``, ``epochs``,
            ``patience``, checked by the base).
        RECORDED_BEFORE: ``{field: value}``: for a field added after some runs were
            recorded, the value those runs had where it differs from the field's
            default (e.g. ``refit: False`` before refits existed).
            :meth:`from_record` fills a recorded configuration's missing fields
            with these, then with the defaults, so an old preset is evaluated
            exactly as it was trained.

    Example:
        >>> from grukit.zoo.models.ett_forecasting.config import EttConfig
        >>> cfg = EttConfig.from_dict({"variant": "mgu2", "units": 128})
        >>> cfg.units, cfg.to_dict()["variant"]
        (128, 'mgu2')
        >>> EttConfig.from_dict({"colour": 3})
        Traceback (most recent call last):
        ValueError: ett-forecasting: unknown hyperparameter 'colour'. Known: batch_size, ...
    """

    model = ""
    RULES = {}
    RECORDED_BEFORE = {}

    def __post_init__(self):
        names = self.field_names()
        own = [k for k in names if k not in COMMON_RULES]
        if set(COMMON_RULES) - set(names) or set(own) != set(self.RULES):
            raise TypeError(f"{type(self).__name__}: a config has the fields "
                            f"{', '.join(COMMON_HPARAMS)} (checked by ZooConfig) and RULES "
                            f"names a rule for each of its other fields, exactly; fields "
                            f"{names}, RULES {sorted(self.RULES)}.")
        for key in names:
            rule = COMMON_RULES[key] if key in COMMON_RULES else self.RULES[key]
            rule.check(self.model, key, getattr(self, key))
        self.check()

    def check(self):
        """Checks that involve several fields; raise ``ValueError`` naming the fields, the
        values and what was expected. Runs after every field passed its rule. Default: none."""

    @classmethod
    def field_names(cls):
        """The hyperparameters' names, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values):
        """The validated config of ``values`` (``{field: value}``); missing fields take
        their defaults.

        Raises:
            ValueError: an unknown key (naming the known ones) or a bad value (naming the
                key, the value and what was expected).
        """
        if not isinstance(values, dict):
            raise ValueError(f"{cls.model}: hyperparameters must be a dict of "
                             f"{{name: value}}; got {type(values).__name__}.")
        known = cls.field_names()
        unknown = sorted(k for k in values if k not in known)
        if unknown:
            raise ValueError(f"{cls.model}: unknown hyperparameter"
                             f"{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(map(repr, unknown))}. Known: {', '.join(sorted(known))}.")
        return cls(**values)

    @classmethod
    def from_record(cls, values):
        """:meth:`from_dict` for a configuration recorded by an earlier run (a preset's
        ``metadata.json`` ``hparams``, a search's ``best_hparams.json``): a field it lacks
        takes its :attr:`RECORDED_BEFORE` value if it has one, else its default."""
        if not isinstance(values, dict):
            return cls.from_dict(values)  # the error
        return cls.from_dict({**cls.RECORDED_BEFORE, **values})

    def to_dict(self):
        """The plain ``{field: value}`` dict (what ``metadata.json`` and the hooks see)."""
        return {key: getattr(self, key) for key in self.field_names()}


def parse_value(text):
    """A ``--set`` value: JSON when it parses (numbers, booleans, lists), else the string.

    Example:
        >>> from grukit.zoo.base import parse_value
        >>> parse_value("0.5"), parse_value("true"), parse_value("mgu2")
        (0.5, True, 'mgu2')
    """
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return text


def set_seed(seed):
    """``keras.utils.set_random_seed(seed)``, without importing TensorFlow on JAX and PyTorch
    (see :func:`grukit.zoo.presets.tensorflow_optional`).

    Example:
        >>> import numpy as np
        >>> from grukit.zoo.base import set_seed
        >>> set_seed(0)
        >>> first = np.random.rand()
        >>> set_seed(0)
        >>> np.random.rand() == first
        True
    """
    import keras

    with _presets.tensorflow_optional():
        keras.utils.set_random_seed(seed)


def _order_seed(seed, shuffle_seed):
    """The training order's seed: ``shuffle_seed``, or the run's ``seed`` where it is None.

    Raises:
        ValueError: ``shuffle_seed`` is neither None nor an integer >= 0.
    """
    if shuffle_seed is None:
        return seed
    if isinstance(shuffle_seed, bool) or not isinstance(shuffle_seed, int) or shuffle_seed < 0:
        raise ValueError(f"shuffle_seed must be None (the order follows the run's seed) or an "
                         f"integer >= 0; got {shuffle_seed!r}.")
    return shuffle_seed


def _training_dataset(recipe, data, hparams, split, seed):
    """``recipe.dataset(data, hparams, split, training=True, seed=seed)``: the shuffled
    examples ``fit`` trains on, in the order of the run's ``seed``.

    Raises:
        TypeError: the recipe's :meth:`ZooModel.dataset` takes no ``seed`` (a recipe
            written against the older contract): its training order could not follow
            the run's seed, so the run stops rather than ignore it.
    """
    import inspect

    params = inspect.signature(recipe.dataset).parameters
    if "seed" not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise TypeError(
            f"{recipe.name}: {type(recipe).__name__}.dataset() takes no `seed`; it must "
            f"accept dataset(data, hparams, split, training=False, seed=0) and draw the "
            f"training order from `seed` (the run's seed).")
    return recipe.dataset(data, hparams, split, training=True, seed=seed)


def text_batch(inputs, model, noun):
    """``(single, items)``: ``inputs`` is one text (``str`` or ``bytes``; ``single`` true,
    ``items`` a one-element list) or an ordered 1-D sequence of them (``items`` a list).

    Raises:
        ValueError: an unordered collection, a multi-dimensional array or a non-iterable,
            naming ``model`` and what was expected (``noun``: "review", "prompt").

    Example:
        >>> from grukit.zoo.base import text_batch
        >>> text_batch("a fine film", "imdb-sentiment", "review")
        (True, ['a fine film'])
        >>> text_batch(("a fine film", "dull"), "imdb-sentiment", "review")
        (False, ['a fine film', 'dull'])
        >>> text_batch({"a fine film"}, "imdb-sentiment", "review")
        Traceback (most recent call last):
        ValueError: imdb-sentiment: expected a review (str) or a 1-D sequence of reviews;
        got a set (unordered).
    """
    import numpy as np

    if isinstance(inputs, (str, bytes, bytearray, np.str_, np.bytes_)):
        return True, [inputs]
    expected = f"expected a {noun} (str) or a 1-D sequence of {noun}s"
    if isinstance(inputs, (dict, set, frozenset)):
        raise ValueError(f"{model}: {expected}; got a {type(inputs).__name__} (unordered).")
    if isinstance(inputs, np.ndarray) and inputs.ndim != 1:
        raise ValueError(f"{model}: {expected}; got an array of shape {inputs.shape}.")
    try:
        return False, list(inputs)
    except TypeError:
        raise ValueError(f"{model}: {expected}; got {type(inputs).__name__} "
                         f"{inputs!r:.60}.") from None


def _atomic_write_json(path, obj):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


class TrainResult:
    """What :meth:`ZooModel.train` returns.

    Attributes:
        model: the trained Keras model (best epoch's weights).
        metrics: ``{"validation": {...}, "test": {...}}``.
        preset: path of the preset written.
        metadata: the preset's metadata dict.
        resumed_from: the epoch training resumed from (0 for a fresh run).

    Example:
        >>> import grukit.zoo
        >>> ett = grukit.zoo.get("ett-forecasting")
        >>> tiny = {"epochs": 1, "units": 8, "lookback": 48, "horizon": 24, "batch_size": 1024}
        >>> hp = ett.hparams(quick=True, overrides=tiny)
        >>> result = ett.train(hp, ett.load_data(), "runs/ett", verbose=0)
        >>> result.preset.as_posix(), result.resumed_from, sorted(result.metrics["test"])
        ('runs/ett/preset', 0, ['mae', 'mse', 'windows'])
        >>> result.model.zoo_preset.metadata == result.metadata
        True
    """

    def __init__(self, model, metrics, preset, metadata, resumed_from):
        self.model = model
        self.metrics = metrics
        self.preset = preset
        self.metadata = metadata
        self.resumed_from = resumed_from

    def __repr__(self):
        return f"TrainResult(preset={str(self.preset)!r}, metrics={self.metrics})"


class ZooModel:
    """Base class of a zoo model's recipe: model-specific hooks + the shared machinery.

    Subclass it in ``grukit/zoo/models/<dir>/recipe.py`` and override the hooks (the
    methods that raise ``NotImplementedError`` plus any optional ones); do
    not override the shared methods (:meth:`train`, :meth:`tune`,
    :meth:`hypermodel`, :meth:`evaluate_preset`, :meth:`export`,
    :meth:`load`), and register the class in :data:`grukit.zoo.CATALOGUE`.
    :func:`grukit.zoo.get` returns an instance; :attr:`directory` is its
    package's directory.

    Class attributes:
        name: the zoo name (``"ett-forecasting"``); the package is the name
            with ``-`` replaced by ``_``.
        description: one line for ``grukit zoo list``.
        objective: the validation metric that the search, the best-epoch
            checkpoint and early stopping select on (a key of the Keras logs,
            ``"val_loss"`` by default).
        direction: ``"min"`` or ``"max"``.
        config_class: the model's hyperparameters, a frozen :class:`ZooConfig`
            dataclass (``config.py``); :meth:`hparams` builds it from
            ``hparams.json``'s profiles and overrides and returns its ``to_dict()``.

    Hooks (override):
        :meth:`load_data`, :meth:`data_files`, :meth:`search_space`,
        :meth:`build`, :meth:`dataset`, :meth:`evaluate`,
        :meth:`preprocessing`, :meth:`assets`,
        :meth:`serving`, :meth:`serving_sample`, :meth:`predict`,
        :meth:`export_endpoints`, :meth:`export_extras`, :meth:`verify_export`,
        :meth:`add_arguments`, :meth:`options_from_args`, :meth:`run_predict`.

    Example:
        >>> import grukit.zoo
        >>> from grukit.zoo import ZooModel
        >>> ett = grukit.zoo.get("ett-forecasting")
        >>> isinstance(ett, ZooModel), ett.objective, ett.direction
        (True, 'val_loss', 'min')
        >>> ett.profiles()
        ['quick', 'cpu', 'preset-h96', 'preset-h192', 'preset-h336', 'preset-h720']
        >>> hp = ett.hparams(quick=True, overrides={"variant": "mgu2"})
        >>> hp["variant"], hp["units"], hp["epochs"]
        ('mgu2', 32, 3)
        >>> model = ett.build(hp, ett.load_data())      # what ett.train(hp, data, out) trains
        >>> model.lookback, model.horizon
        (96, 96)
    """

    name = ""
    description = ""
    objective = "val_loss"
    direction = "min"
    config_class = None

    @property
    def directory(self):
        """The recipe's package directory (``hparams.json``, the model card, ``preset*/``)."""
        return Path(sys.modules[type(self).__module__].__file__).resolve().parent

    # ================================================================ hooks
    def load_data(self, data_dir=None, **options):
        """Load the model's data set; returns any object the other hooks understand.

        Args:
            data_dir: the local data directory (``--data-dir``, else
                ``$GRUKIT_DATA_DIR``, else the loader's default/download).
            **options: model-specific options from :meth:`options_from_args`
                (e.g. ETT's ``path`` of a CSV file).

        Raises:
            FileNotFoundError / ValueError: with a message naming what is missing.
        """
        raise NotImplementedError

    def data_files(self, data):
        """Files that the data came from; their SHA-256 goes into the preset's metadata."""
        return []

    def search_space(self, hp, hparams, quick=False):
        """Declare the keras-tuner hyperparameters and return their values as a dict.

        Must include ``variant`` (a grukit variant) and ``units``. ``hparams``
        holds the current defaults (for ranges that depend on them); with
        ``quick`` the space should be small and cheap.

        Example:
            >>> import keras_tuner
            >>> import grukit.zoo
            >>> ett = grukit.zoo.get("ett-forecasting")
            >>> hp = keras_tuner.HyperParameters()
            >>> values = ett.search_space(hp, ett.hparams(quick=True), quick=True)
            >>> values["variant"], values["units"]           # each choice's first value
            ('gru', 16)
            >>> sorted(hp.values) == sorted(values)
            True
        """
        raise NotImplementedError

    def validate_hparams(self, hparams):
        """``config_class.from_dict(hparams).to_dict()``: the validated hyperparameters,
        missing keys at their defaults.

        Raises:
            ValueError: an unknown key or a bad value, naming the key, the value and
                what was expected (the checks live in :attr:`config_class`).
        """
        return self.config().from_dict(hparams).to_dict()

    def build(self, hparams, data):
        """A built and compiled ``keras.Model`` for ``hparams`` (its classes registered
        for Keras serialization, so that presets can rebuild it)."""
        raise NotImplementedError

    def dataset(self, data, hparams, split, training=False, seed=0):
        """The examples of ``split`` (``"train"``, ``"validation"`` or ``"test"``) in a
        form ``model.fit`` / ``model.predict`` accept (a ``keras.utils.PyDataset``,
        arrays, ...). ``training=True``: shuffled, for ``fit``, in an order drawn from
        ``seed``: the run's seed (``train``'s and ``tune``'s ``seed``, the command's
        ``--seed``) unless the run fixes the order with ``shuffle_seed`` (``--shuffle-seed``).
        So runs with different seeds see the examples in different orders, and a resumed
        run sees the order the uninterrupted one would have. Quick runs subset the data
        here, driven by hyperparameters of the ``"quick"`` overrides."""
        raise NotImplementedError

    def evaluate(self, model, data, hparams, split="test"):
        """Metrics of ``model`` on ``split`` as ``{name: float}``, every example counted.
        Default: ``model.evaluate`` on :meth:`dataset`."""
        logs = model.evaluate(self.dataset(data, hparams, split), verbose=0, return_dict=True)
        return {k: float(v) for k, v in logs.items()}

    def preprocessing(self, data, hparams):
        """JSON-serialisable preprocessing state that predict/serving need (e.g. means and
        standard deviations); stored in ``metadata.json`` under ``"preprocessing"``."""
        return {}

    def assets(self, data, hparams):
        """Extra preset files ``{name: str | bytes | path}`` (e.g. a vocabulary)."""
        return {}

    def serving(self, model, preset):
        """The SavedModel's serving function and input signature, as ``(fn, [keras.InputSpec])``.

        Runs under the TensorFlow backend; ``fn`` takes what a user has (e.g.
        windows in original units) and returns what a user wants."""
        raise NotImplementedError

    def serving_sample(self, preset):
        """A small NumPy batch for the signature; the export is verified on it."""
        raise NotImplementedError

    def predict(self, model, inputs, preset=None, **options):
        """Predictions for user inputs (NumPy), the Python API behind ``grukit zoo predict``.

        Must validate ``inputs`` and raise ``ValueError`` naming what was wrong.
        ``preset`` defaults to ``model.zoo_preset`` (set by :func:`grukit.zoo.load`).
        The export is verified against this method's outputs."""
        raise NotImplementedError

    def add_arguments(self, parser, command):
        """Add model-specific command-line options for ``command`` (``train``, ``tune``,
        ``evaluate``, ``export``, ``predict``) to the argparse ``parser``."""

    def options_from_args(self, args, command):
        """``(data_options, hparam_overrides)`` from the parsed model-specific options:
        keyword arguments for :meth:`load_data` and hyperparameter overrides."""
        return {}, {}

    def run_predict(self, model, args, load_data, out, err):
        """The body of ``grukit zoo predict``: read inputs as ``args`` say and write the
        predictions to the text stream ``out`` (notes, such as files written, to ``err``);
        the command line passes its stdout and stderr. Returns the exit status.

        ``load_data()`` loads the data set on demand (for examples taken from it)."""
        raise NotImplementedError(f"{self.name} has no predict command yet.")

    def describe(self, data):
        """One line describing a model trained on ``data``, for the preset's metadata
        (default :attr:`description`; a recipe that trains on user files names the file's
        data set here, so a preset does not claim the data it was not trained on)."""
        return self.description

    # ====================================================== hyperparameters
    def config(self):
        """The recipe's :attr:`config_class` (a :class:`ZooConfig` subclass)."""
        cls = self.config_class
        if not (isinstance(cls, type) and issubclass(cls, ZooConfig)):
            raise TypeError(f"{type(self).__name__}.config_class must be a ZooConfig "
                            f"dataclass (the model's config.py); got {cls!r}.")
        return cls

    def profiles(self):
        """Names of the hyperparameter profiles of ``hparams.json`` other than
        ``"defaults"`` (e.g. ``"quick"``, ETT's ``"cpu"`` and ``"preset-h336"``), in file order."""
        return [name for name in self._hparams_spec()["profiles"] if name != "defaults"]

    def _hparams_spec(self):
        path = self.directory / "hparams.json"
        if not path.is_file():
            raise FileNotFoundError(f"{self.name}: no hyperparameter file {str(path)!r}.")
        with open(path) as f:
            spec = json.load(f)
        profiles = spec.get("profiles") if isinstance(spec, dict) else None
        if (not isinstance(profiles, dict) or not isinstance(profiles.get("defaults"), dict)
                or not all(isinstance(p, dict) for p in profiles.values())
                or set(spec) - {"description", "profiles"}):
            raise ValueError(f"{path}: expected {{\"description\": ..., \"profiles\": "
                             f"{{\"defaults\": {{...}}, NAME: {{key: value}}, ...}}}} (each "
                             f"profile overrides {self.config().__name__}'s defaults).")
        return spec

    def profile_overrides(self, quick=False, profile=None):
        """``hparams.json``'s ``"defaults"`` profile updated with the ``"quick"`` profile
        (when ``quick``) or with ``profile``: overrides of :attr:`config_class`'s defaults,
        not validated.

        Raises:
            ValueError: an unknown profile (listing the known ones).
        """
        profiles = self._hparams_spec()["profiles"]
        overrides = dict(profiles["defaults"])
        name = "quick" if quick else profile
        if name:
            if name not in profiles:
                raise ValueError(f"{self.name}: unknown hyperparameter profile {name!r}. "
                                 f"Expected one of: {', '.join(self.profiles()) or '(none)'}.")
            overrides.update(profiles[name])
        return overrides

    def default_hparams(self, quick=False, profile=None):
        """The validated hyperparameters of a profile: :attr:`config_class`'s defaults
        updated with :meth:`profile_overrides` (``"quick"`` when ``quick``, else
        ``profile``: a name of :meth:`profiles`, or ``"defaults"``).

        Raises:
            ValueError: an unknown profile (listing the known ones), or a profile with
                an unknown key or a bad value.
        """
        return self.hparams(quick=quick, profile=profile)

    def hparams(self, quick=False, overrides=None, base=None, profile=None):
        """The validated hyperparameters of a run: the ``to_dict()`` of the
        :attr:`config_class` built from a profile (or ``base``), then ``overrides``.

        Args:
            quick: apply ``hparams.json``'s ``"quick"`` profile.
            overrides: ``{key: value}`` (``--set``, ``--variant``, recipe options);
                every key must be a field of :attr:`config_class`.
            base: start from this dict (e.g. a search's best) instead of a profile;
                keys it lacks take :meth:`ZooConfig.from_record`'s values.
            profile: apply a named profile of ``hparams.json`` instead (``--profile``).

        Raises:
            ValueError: an unknown key, profile or a bad value, naming what was expected.

        Example:
            >>> import grukit.zoo
            >>> ett = grukit.zoo.get("ett-forecasting")
            >>> ett.hparams(quick=True, overrides={"variant": "mgu2"})["units"]
            32
            >>> ett.hparams(profile="preset-h336")["horizon"]
            336
            >>> ett.hparams(overrides={"colour": "red"})
            Traceback (most recent call last):
            ValueError: ett-forecasting: unknown hyperparameter 'colour'. Known: batch_size, ...
        """
        cls = self.config()
        if base is not None:  # keras-tuner's own entries ("tuner/epochs", ...) are not ours
            values = {k: v for k, v in base.items() if not k.startswith("tuner/")}
            return cls.from_record({**values, **(overrides or {})}).to_dict()
        values = self.profile_overrides(quick, profile)
        try:  # a profile's own bad key or value is named as the profile's
            cls.from_dict(values)
        except ValueError as e:
            raise ValueError(f"{e} (hparams.json, profile "
                             f"{'quick' if quick else profile or 'defaults'!r})") from None
        return cls.from_dict({**values, **(overrides or {})}).to_dict()

    def extra_callbacks(self, hparams):
        """Callbacks a recipe adds to every fit (e.g. a learning-rate schedule). Default: none."""
        return []

    # ============================================== the shared machinery
    def train(self, hparams, data, out, **options):
        """Train and write a preset: :func:`grukit.zoo.training.train` for this recipe, on
        the validated ``hparams`` (:meth:`validate_hparams`)."""
        from grukit.zoo.training import train

        return train(self, self.validate_hparams(hparams), data, out, **options)

    def hypermodel(self, data, hparams, quick=False, seed=0, shuffle_seed=None):
        """The search's ``keras_tuner.HyperModel``: :func:`grukit.zoo.tuning.hypermodel`, on
        the validated ``hparams`` (:meth:`validate_hparams`)."""
        from grukit.zoo.tuning import hypermodel

        return hypermodel(self, data, self.validate_hparams(hparams), quick=quick, seed=seed,
                          shuffle_seed=shuffle_seed)

    def tune(self, hparams, data, out, **options):
        """A resumable keras-tuner search: :func:`grukit.zoo.tuning.tune` for this recipe, on
        the validated ``hparams`` (:meth:`validate_hparams`)."""
        from grukit.zoo.tuning import tune

        return tune(self, self.validate_hparams(hparams), data, out, **options)

    def export(self, out, preset=None, **options):
        """An atomic, verified SavedModel export: :func:`grukit.zoo.export.export`."""
        from grukit.zoo.export import export

        return export(self, out, preset=preset, **options)

    # ========================================================== presets
    def preset_dir(self):
        """The committed preset of this model: ``preset/`` in its package directory."""
        return Path(self.directory) / "preset"

    def load(self, preset=None):
        """The trained Keras model of ``preset`` (default: the committed one), any backend.

        ``preset`` may also be a training run directory holding ``preset/``.
        The model carries ``model.zoo_preset`` (path + metadata).

        Raises:
            FileNotFoundError: no preset there (with the command that trains one).
        """
        path = self.resolve_preset(preset)
        metadata = _presets.read_metadata(path)
        if metadata.get("model") not in (None, self.name):
            raise ValueError(f"{str(path)!r} is a preset of {metadata.get('model')!r}, "
                             f"not of {self.name!r}.")
        return _presets.load_preset(path)

    def resolve_preset(self, preset=None):
        """The preset directory for ``preset`` (a path, a run directory, or ``None``)."""
        path = Path(preset) if preset is not None else self.preset_dir()
        if not _presets.is_preset(path) and _presets.is_preset(path / "preset"):
            path = path / "preset"
        if not _presets.is_preset(path):
            if preset is None:
                raise FileNotFoundError(
                    f"{self.name} has no committed preset yet ({str(path)!r}). Train one: "
                    f"grukit zoo train {self.name} --out DIR, then pass preset=DIR/preset.")
            _presets.read_metadata(path)  # raises, naming the missing files
        return path

    def evaluate_preset(self, preset=None, data=None, split="test", data_dir=None,
                        **data_options):
        """Metrics of a preset on ``split`` (``"test"`` or ``"validation"``).

        Loads the data when ``data`` is None, and warns when its checksum
        differs from the one recorded in the preset's metadata.

        Returns:
            ``(metrics, metadata)``.

        Example:
            >>> import grukit.zoo
            >>> ett = grukit.zoo.get("ett-forecasting")
            >>> data = ett.load_data()                     # ETTh1 from $GRUKIT_DATA_DIR
            >>> tiny = {"epochs": 1, "units": 8, "lookback": 48, "horizon": 24, "batch_size": 1024}
            >>> _ = ett.train(ett.hparams(quick=True, overrides=tiny), data, "runs/ett",
            ...               verbose=0)
            >>> metrics, meta = ett.evaluate_preset("runs/ett", data=data)  # a preset or a run folder
            >>> metrics["windows"], abs(metrics["mse"] - meta["metrics"]["test"]["mse"]) < 1e-6
            (2857, True)
        """
        if split not in ("test", "validation"):
            raise ValueError(f"split must be 'test' or 'validation'; got {split!r}.")
        model = self.load(preset)
        metadata = model.zoo_preset.metadata
        log.info(f"evaluate: preset {model.zoo_preset.path}")
        if data is None:
            log.info("evaluate: loading the data")
            data = self.load_data(data_dir=data_dir, **data_options)
        recorded = {f["name"]: f["sha256"] for f in metadata.get("data", {}).get("files", [])}
        for path in self.data_files(data):
            path = Path(path)
            if path.name in recorded and recorded[path.name] != _presets.sha256_file(path):
                warnings.warn(f"{path} differs from the data the preset was measured on "
                              f"(sha256 {recorded[path.name][:12]}...)", stacklevel=2)
        # keys added after the preset was trained take the values it was trained with
        hparams = self.config().from_record(metadata["hparams"]).to_dict()
        log.info(f"evaluate: measuring on the {split} split")
        start = time.time()
        metrics = self.evaluate(model, data, hparams, split)
        log.info(f"evaluate: done in {time.time() - start:.1f} s")
        return metrics, metadata

    # ============================================================= export
    def export_endpoints(self, model, preset):
        """The SavedModel's signatures: a list of ``(name, tf_function, input_signature)``.

        The default is one ``serve`` endpoint from :meth:`serving`. A recipe that
        serves several functions (the char LM's ``generate`` and ``step``)
        overrides this; :meth:`export` stays the one atomic, verified writer.
        """
        fn, signature = self.serving(model, preset)
        return [("serve", fn, signature)]

    def export_extras(self, model, extra_dir):
        """Write extra files into the export's ``assets.extra/`` (default: nothing)."""

    def verify_export(self, model, path, verbose=True):
        """Check the SavedModel at ``path`` in a fresh process against the Keras model.

        The default loads it with ``tf.saved_model.load`` in a Python process
        that does not import grukit, runs ``serve`` on :meth:`serving_sample`
        and compares with :meth:`predict` (rtol 1e-4). Raises ``RuntimeError``
        on disagreement; :meth:`export` then removes the partial export.
        """
        import numpy as np

        preset_info = model.zoo_preset
        sample = self.serving_sample(preset_info)
        expected = np.asarray(self.predict(model, sample, preset=preset_info))
        from grukit.zoo.export import verify_saved_model

        served = verify_saved_model(path, sample)
        tol = 1e-4 * max(1.0, float(np.abs(expected).max()))
        if served.shape != expected.shape or not np.allclose(served, expected, rtol=1e-4,
                                                             atol=tol):
            err = (np.abs(served - expected).max() if served.shape == expected.shape
                   else f"shape {served.shape} vs {expected.shape}")
            raise RuntimeError(f"exported SavedModel disagrees with the Keras model "
                               f"on the sample batch (max difference {err}).")
        log.info(f"verified: SavedModel loaded without grukit matches the Keras model "
                 f"on a batch {tuple(sample.shape)} (max |diff| "
                 f"{float(np.abs(served - expected).max()):.2e})")


