"""``ZooModel``: the one mechanism behind every zoo model.

A zoo model is a package ``grukit/zoo/models/<dir>/`` holding

* ``recipe.py`` -- one subclass of :class:`ZooModel` that fills in the
  model-specific hooks (data, search space, model, metrics, serving, predict),
* ``hparams.json`` -- the default hyperparameters (``"defaults"``) and the
  overrides of a quick CPU run (``"quick"``),
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

        def load_data(self, data_dir=None, **options):
            return ...                          # any object: the dataset, vocabulary, ...

        def data_files(self, data):
            return [...]                        # files whose sha256 goes into metadata.json

        def search_space(self, hp, hparams, quick=False):
            return {"variant": hp.Choice("variant", ["gru", "mgu2", "mingru"]),
                    "units": hp.Choice("units", [32, 64] if quick else [64, 128, 256])}

        def build(self, hparams, data):         # -> a built, compiled keras.Model
            ...

        def dataset(self, data, hparams, split, training=False):
            ...                                 # split: "train", "validation" or "test";
                                                # what model.fit/predict accept (a PyDataset, ...)

        def evaluate(self, model, data, hparams, split="test"):
            return {"accuracy": ...}            # every example counted

        def serving(self, model, preset):       # the SavedModel's signature (runs under TF)
            return fn, [keras.InputSpec((None,), "string")]

        def serving_sample(self, preset):       # a sample batch to verify the export with
            return np.array([b"a great film", b"dull"])

        def predict(self, model, inputs, preset=None, **options):
            ...                                 # what a user has in, what a user wants out

``hparams`` is a plain dict: ``hparams.json``'s defaults, then its ``"quick"``
overrides with ``--quick``, then the search's values, then the command line's
``--set key=value`` / ``--variant`` (see :meth:`ZooModel.hparams`). The keys
every recipe gets: ``variant``, ``units``, ``learning_rate``, ``batch_size``,
``epochs``, ``patience``; a recipe adds its own.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

from grukit.zoo import presets as _presets

__all__ = ["ZooModel", "TrainResult", "TUNERS", "parse_value", "set_seed"]

log = logging.getLogger(__name__)

TUNERS = ("random", "bayesian", "hyperband")
SPLITS = ("train", "validation", "test")
COMMON_HPARAMS = ("variant", "units", "learning_rate", "batch_size", "epochs", "patience")


def parse_value(text):
    """A ``--set`` value: JSON when it parses (numbers, booleans, lists), else the string.

    Example:
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
        >>> set_seed(0)
    """
    import keras

    with _presets.tensorflow_optional():
        keras.utils.set_random_seed(seed)


def text_batch(inputs, model, noun):
    """``(single, items)``: ``inputs`` is one text (``str`` or ``bytes``; ``single`` true,
    ``items`` a one-element list) or an ordered 1-D sequence of them (``items`` a list).

    Raises:
        ValueError: an unordered collection, a multi-dimensional array or a non-iterable,
            naming ``model`` and what was expected (``noun``: "review", "prompt").

    Example:
        >>> text_batch("a fine film", "imdb-sentiment", "review")
        (True, ['a fine film'])
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
        >>> result = ett.train(ett.hparams(quick=True), data, "runs/ett", quick=True)
        >>> result.metrics["test"]["mse"], result.preset
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

    Hooks (override):
        :meth:`load_data`, :meth:`data_files`, :meth:`search_space`,
        :meth:`build`, :meth:`dataset`, :meth:`evaluate`,
        :meth:`preprocessing`, :meth:`assets`, :meth:`validate_hparams`,
        :meth:`serving`, :meth:`serving_sample`, :meth:`predict`,
        :meth:`export_endpoints`, :meth:`export_extras`, :meth:`verify_export`,
        :meth:`add_arguments`, :meth:`options_from_args`, :meth:`run_predict`.

    Example:
        >>> ett = grukit.zoo.get("ett-forecasting")
        >>> hp = ett.hparams(quick=True, overrides={"variant": "mgu2"})
        >>> data = ett.load_data(data_dir="data")
        >>> result = ett.train(hp, data, out="runs/ett", quick=True)
        >>> result.metrics["test"]
    """

    name = ""
    description = ""
    objective = "val_loss"
    direction = "min"

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
            >>> {"variant": hp.Choice("variant", ["gru", "mgu2"]), "units": hp.Choice("units", [64, 128])}
        """
        raise NotImplementedError

    def validate_hparams(self, hparams):
        """Raise ``ValueError`` naming the bad value and what was expected. The default
        checks the common keys; recipes call ``super().validate_hparams(hparams)``."""
        from grukit.variants import get_variant

        get_variant(hparams["variant"])  # ValueError listing the variants
        for key in ("units", "batch_size", "epochs"):
            value = hparams.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{self.name}: hyperparameter {key!r} must be a positive "
                                 f"integer; got {value!r}.")
        if not (isinstance(hparams.get("patience"), int) and hparams["patience"] >= 0):
            raise ValueError(f"{self.name}: 'patience' must be a non-negative integer; "
                             f"got {hparams.get('patience')!r}.")
        lr = hparams.get("learning_rate")
        if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0):
            raise ValueError(f"{self.name}: 'learning_rate' must be a positive number; got {lr!r}.")

    def build(self, hparams, data):
        """A built and compiled ``keras.Model`` for ``hparams`` (its classes registered
        for Keras serialization, so that presets can rebuild it)."""
        raise NotImplementedError

    def dataset(self, data, hparams, split, training=False):
        """The examples of ``split`` (``"train"``, ``"validation"`` or ``"test"``) in a
        form ``model.fit`` / ``model.predict`` accept (a ``keras.utils.PyDataset``,
        arrays, ...). ``training=True``: shuffled, for ``fit``. Quick runs subset
        the data here, driven by hyperparameters of the ``"quick"`` overrides."""
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

    def run_predict(self, model, args, load_data):
        """``grukit zoo predict``: read inputs as ``args`` say, print the predictions.

        ``load_data()`` loads the data set on demand (for examples taken from it)."""
        raise NotImplementedError(f"{self.name} has no predict command yet.")

    def describe(self, data):
        """One line describing a model trained on ``data``, for the preset's metadata
        (default :attr:`description`; a recipe that trains on user files names the file's
        data set here, so a preset does not claim the data it was not trained on)."""
        return self.description

    # ====================================================== hyperparameters
    def profiles(self):
        """Names of the hyperparameter profiles in ``hparams.json``: ``"quick"`` and those
        under ``"profiles"`` (e.g. ETT's ``"cpu"``, which trained its committed preset)."""
        spec = self._hparams_spec()
        names = ["quick"] if "quick" in spec else []
        return names + [n for n in spec.get("profiles", {}) if n not in names]

    def _hparams_spec(self):
        path = self.directory / "hparams.json"
        if not path.is_file():
            raise FileNotFoundError(f"{self.name}: no hyperparameter file {str(path)!r}.")
        with open(path) as f:
            return json.load(f)

    def default_hparams(self, quick=False, profile=None):
        """``hparams.json``'s ``"defaults"``, updated with a profile's overrides:
        ``"quick"`` when ``quick``, else ``profile`` (a key of ``"profiles"``, or ``"quick"``).

        Raises:
            ValueError: an unknown profile (listing the known ones).
        """
        spec = self._hparams_spec()
        hparams = dict(spec["defaults"])
        name = "quick" if quick else profile
        if name:
            overrides = spec.get("profiles", {}).get(name)
            if overrides is None and name == "quick":
                overrides = spec.get("quick")
            if overrides is None:
                raise ValueError(f"{self.name}: unknown hyperparameter profile {name!r}. "
                                 f"Expected one of: {', '.join(self.profiles()) or '(none)'}.")
            hparams.update(overrides)
        return hparams

    def hparams(self, quick=False, overrides=None, base=None, profile=None):
        """The validated hyperparameters of a run.

        Args:
            quick: apply ``hparams.json``'s ``"quick"`` overrides.
            overrides: ``{key: value}`` (``--set``, ``--variant``, recipe options);
                every key must be a known hyperparameter.
            base: start from this dict (e.g. a search's best) instead of the defaults.
            profile: apply a named profile of ``hparams.json`` instead (``--profile``).

        Raises:
            ValueError: an unknown key, profile or a bad value, naming what was expected.

        Example:
            >>> ett.hparams(quick=True, overrides={"variant": "mgu2"})["units"]
            32
        """
        if base is not None:  # keras-tuner's own entries ("tuner/epochs", ...) are not ours
            hparams = {k: v for k, v in base.items() if not k.startswith("tuner/")}
        else:
            hparams = self.default_hparams(quick, profile)
        known = set(self._hparams_spec()["defaults"])
        for key, value in (overrides or {}).items():
            if key not in known:
                raise ValueError(f"{self.name}: unknown hyperparameter {key!r}. Known: "
                                 f"{', '.join(sorted(known))}.")
            hparams[key] = value
        unknown = sorted(set(hparams) - known)
        if unknown:
            raise ValueError(f"{self.name}: unknown hyperparameters {unknown}. Known: "
                             f"{', '.join(sorted(known))}.")
        self.validate_hparams(hparams)
        return hparams

    def extra_callbacks(self, hparams):
        """Callbacks a recipe adds to every fit (e.g. a learning-rate schedule). Default: none."""
        return []

    # ============================================== the shared machinery
    def train(self, hparams, data, out, **options):
        """Train and write a preset: :func:`grukit.zoo.training.train` for this recipe."""
        from grukit.zoo.training import train

        return train(self, hparams, data, out, **options)

    def hypermodel(self, data, hparams, quick=False, seed=0):
        """The search's ``keras_tuner.HyperModel``: :func:`grukit.zoo.tuning.hypermodel`."""
        from grukit.zoo.tuning import hypermodel

        return hypermodel(self, data, hparams, quick=quick, seed=seed)

    def tune(self, hparams, data, out, **options):
        """A resumable keras-tuner search: :func:`grukit.zoo.tuning.tune` for this recipe."""
        from grukit.zoo.tuning import tune

        return tune(self, hparams, data, out, **options)

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
            >>> metrics, meta = ett.evaluate_preset(split="test", data_dir="data")
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
        log.info(f"evaluate: measuring on the {split} split")
        start = time.time()
        metrics = self.evaluate(model, data, metadata["hparams"], split)
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


