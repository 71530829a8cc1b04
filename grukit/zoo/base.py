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

import csv
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

from grukit.zoo import presets as _presets

__all__ = ["ZooModel", "TrainResult", "TUNERS", "parse_value", "set_seed", "verify_saved_model"]

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

    # ======================================================== keras-tuner
    def hypermodel(self, data, hparams, quick=False, seed=0):
        """A ``keras_tuner.HyperModel`` over :meth:`search_space`.

        ``build(hp)`` merges the sampled values into ``hparams`` and calls
        :meth:`build`; ``fit(hp, model, ...)`` trains on the training split and
        validates on the validation split (never the test split), with early
        stopping, and returns the best epoch's metrics plus ``time_s``.

        Example:
            >>> hm = ett.hypermodel(data, ett.hparams(quick=True), quick=True)
            >>> tuner = keras_tuner.RandomSearch(hm, objective="val_loss", max_trials=3)
        """
        import keras
        import keras_tuner

        recipe = self

        class _ZooHyperModel(keras_tuner.HyperModel):
            def __init__(self):
                super().__init__(name=recipe.name)

            def trial_hparams(self, hp):
                values = recipe.search_space(hp, dict(hparams), quick)
                merged = dict(hparams)
                merged.update(values)
                # values fixed outside search_space (--set) are hp.Fixed entries
                for key, value in hp.values.items():
                    if key in merged:
                        merged[key] = value
                recipe.validate_hparams(merged)
                return merged

            def build(self, hp):
                set_seed(seed)
                return recipe.build(self.trial_hparams(hp), data)

            def fit(self, hp, model, *args, callbacks=None, epochs=None, **kwargs):
                merged = self.trial_hparams(hp)
                callbacks = list(callbacks or [])
                if merged.get("patience"):
                    callbacks.append(keras.callbacks.EarlyStopping(
                        monitor=recipe.objective, mode=recipe.direction,
                        patience=merged["patience"]))
                callbacks += recipe.extra_callbacks(merged)
                start = time.time()
                history = model.fit(
                    recipe.dataset(data, merged, "train", training=True),
                    validation_data=recipe.dataset(data, merged, "validation"),
                    epochs=epochs or merged["epochs"], callbacks=callbacks,
                    verbose=kwargs.pop("verbose", 1), **kwargs)
                elapsed = time.time() - start
                values = history.history.get(recipe.objective)
                if not values:
                    raise RuntimeError(f"{recipe.name}: training logged no {recipe.objective!r}.")
                finite = [v if math.isfinite(v) else math.inf * (1 if recipe.direction == "min"
                                                                 else -1) for v in values]
                best = (min if recipe.direction == "min" else max)(
                    range(len(finite)), key=finite.__getitem__)
                metrics = {k: float(v[best]) for k, v in history.history.items()
                           if len(v) == len(values)}
                metrics["time_s"] = float(elapsed)
                metrics["params"] = float(model.count_params())
                print(f"[{os.environ.get('KERASTUNER_TUNER_ID', 'tuner0')}] trial done: "
                      f"{recipe.objective}={metrics[recipe.objective]:.5f} "
                      f"({elapsed:.1f}s) {json.dumps(hp.values, sort_keys=True)}", flush=True)
                return metrics

        return _ZooHyperModel()

    def extra_callbacks(self, hparams):
        """Callbacks a recipe adds to every fit (e.g. a learning-rate schedule). Default: none."""
        return []

    def tune(self, hparams, data, out, tuner="random", max_trials=10, epochs=None, seed=0,
             quick=False, fixed=None, verbose=1, time_limit=None, compare=None,
             report_only=False):
        """Search the hyperparameters; resumable and distributable.

        The search state lives in ``OUT/tune/<tuner>[-quick]`` (keras-tuner,
        ``overwrite=False``): re-running the same command resumes it. Selection is on
        the validation split; the test split is not touched. Under keras-tuner's
        distribution variables (``KERASTUNER_TUNER_ID=chief|tuner0|tuner1...``,
        ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``) the chief serves the
        oracle until the search is done, the workers run trials.

        Args:
            hparams: base hyperparameters (:meth:`hparams`); the search overrides its keys.
            data: from :meth:`load_data`.
            out: output directory.
            tuner: ``"random"``, ``"bayesian"`` or ``"hyperband"``.
            max_trials: number of trials (Hyperband: a cap on them).
            epochs: epochs per trial (Hyperband: ``max_epochs``); default ``hparams["epochs"]``.
            fixed: ``{key: value}`` held fixed during the search (``--set``).
            time_limit: seconds; no new trial starts after this much time in this call
                (running trials finish, and so does a trial that keras-tuner retries after
                an interruption; the search then ends as if ``max_trials`` had been
                reached, and re-running resumes it towards ``max_trials``). In a distributed
                search the chief's limit counts. ``None``: no limit.
            compare: a searched hyperparameter (e.g. ``"variant"``): after the search, the
                best completed trial of each of its values is scored with :meth:`evaluate`
                on the validation and test splits, using that trial's own model (the
                checkpoint keras-tuner kept of its best epoch, nothing retrained), and
                written to ``OUT/compare_<name>.csv`` / ``.md`` / ``.json``. Selection stays
                on the validation objective; the test column is a report.
            report_only: run no trial: write the tables (and ``compare``) from the search
                state as it is, e.g. after a search was stopped. Trials that were running
                when it stopped are listed with status ``RUNNING`` and no score.

        Returns:
            The trial rows (list of dicts, best first) on the chief or a single
            process, written to ``OUT/trials.csv``, ``OUT/trials.md`` and the best
            trial's hyperparameters to ``OUT/best_hparams.json``; ``[]`` on a worker.

        Example:
            >>> rows = ett.tune(ett.hparams(quick=True), data, "runs/ett-tune", max_trials=4, quick=True)
        """
        import keras_tuner
        from keras_tuner.src.distribute import utils as dist_utils

        if tuner not in TUNERS:
            raise ValueError(f"Unknown tuner {tuner!r}. Expected one of: {', '.join(TUNERS)}.")
        if not isinstance(max_trials, int) or max_trials < 1:
            raise ValueError(f"max_trials must be a positive integer; got {max_trials!r}.")
        if time_limit is not None and not (isinstance(time_limit, (int, float))
                                           and not isinstance(time_limit, bool)
                                           and time_limit > 0):
            raise ValueError(f"time_limit must be a positive number of seconds or None; "
                             f"got {time_limit!r}.")
        if (fixed or {}).get("refit"):
            raise ValueError("refit trains on the validation split too: it is for the final "
                             "training (zoo train), not for a search that selects on it.")
        if hparams.get("refit"):  # e.g. defaults that describe a refit preset: trials never are
            hparams = dict(hparams, refit=False)
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        epochs = epochs or hparams["epochs"]
        hp = keras_tuner.HyperParameters()
        for key, value in (fixed or {}).items():
            hp.Fixed(key, value)
        objective = keras_tuner.Objective(self.objective, direction=self.direction)
        common = dict(hypermodel=self.hypermodel(data, hparams, quick, seed),
                      objective=objective, seed=seed, hyperparameters=hp,
                      tune_new_entries=True, directory=str(out / "tune"),
                      project_name=f"{tuner}{'-quick' if quick else ''}", overwrite=False)
        classes = {"random": keras_tuner.RandomSearch,
                   "bayesian": keras_tuner.BayesianOptimization,
                   "hyperband": keras_tuner.Hyperband}
        if tuner == "bayesian":
            try:
                import scipy  # noqa: F401
                import sklearn  # noqa: F401
            except ImportError:
                raise ValueError("--tuner bayesian needs scipy and scikit-learn: "
                                 "pip install 'keras-tuner[bayesian]'.") from None
        cls = _fast_chief(classes[tuner])
        if tuner == "hyperband":
            search = cls(max_epochs=max(2, epochs), factor=3, **common)
            search.oracle.max_trials = max_trials
        else:
            search = cls(max_trials=max_trials, **common)
        role = os.environ.get("KERASTUNER_TUNER_ID", "tuner0")
        if time_limit is not None and not (dist_utils.has_chief_oracle()
                                           and not dist_utils.is_chief_oracle()):
            _stop_starting_after(search.oracle, time.time() + time_limit)
        if dist_utils.is_chief_oracle():
            print(f"[chief] serving the {tuner} oracle on {os.environ['KERASTUNER_ORACLE_IP']}:"
                  f"{os.environ['KERASTUNER_ORACLE_PORT']} for {max_trials} trials", flush=True)
        if report_only:
            if dist_utils.has_chief_oracle():
                raise ValueError("report_only reads the search state directly: run it without "
                                 "the KERASTUNER_* distribution variables.")
            if not search.oracle.trials:
                raise ValueError(f"report_only: no search state in {out / 'tune'} for this "
                                 f"tuner ({tuner}{'-quick' if quick else ''}); nothing to report.")
        else:
            search.search(epochs=epochs, verbose=verbose)
        if dist_utils.has_chief_oracle() and not dist_utils.is_chief_oracle():
            print(f"[{role}] no more trials; worker done", flush=True)
            return []
        rows = self._trial_rows(search.oracle)
        self._write_trials(rows, out)
        best = [r for r in rows if r["status"] == "COMPLETED"]
        if best:
            best_hparams = dict(hparams)
            best_hparams.update({k: v for k, v in best[0]["hparams"].items()
                                 if not k.startswith("tuner/")})  # Hyperband's bookkeeping
            # the epochs the trials trained (--epochs, or Hyperband's budget of that trial),
            # not the profile's: `zoo train --hparams` then trains what the search measured
            best_hparams["epochs"] = int(best[0]["hparams"].get("tuner/epochs", epochs))
            _atomic_write_json(out / "best_hparams.json", best_hparams)
        if compare:
            self._compare(search, rows, compare, data, hparams, out)
        return rows

    def _compare(self, search, rows, key, data, hparams, out):
        done = [r for r in rows if r["status"] == "COMPLETED" and key in r["hparams"]]
        if not done:
            raise ValueError(f"--compare {key}: no completed trial has a {key!r} value "
                             f"(searched: {', '.join(sorted(rows[0]['hparams'])) if rows else '-'}).")
        best = {}
        for r in done:  # rows are sorted best first
            best.setdefault(r["hparams"][key], r)
        table = []
        for value, r in best.items():
            trial = search.oracle.get_trial(r["trial"])
            merged = dict(hparams)
            merged.update({k: v for k, v in r["hparams"].items() if not k.startswith("tuner/")})
            with warnings.catch_warnings():  # the checkpoint's optimizer state is not needed
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                model = search.load_model(trial)
            scores = {split: self.evaluate(model, data, merged, split)
                      for split in ("validation", "test")}
            table.append({key: value, "trial": r["trial"], "params": int(model.count_params()),
                          self.objective: r[self.objective], "scores": scores,
                          "hparams": r["hparams"]})
            print(f"[compare] {key}={value} trial {r['trial']}: " + "  ".join(
                f"{split} " + " ".join(f"{m}={v:.5g}" for m, v in sc.items()
                                       if isinstance(v, float))
                for split, sc in scores.items()), flush=True)
        metrics = [m for m, v in table[0]["scores"]["test"].items() if isinstance(v, float)]
        header = [key, "trial", "params", self.objective,
                  *[f"{split}_{m}" for split in ("validation", "test") for m in metrics]]
        lines = [[str(t[key]), t["trial"], str(t["params"]), f"{t[self.objective]:.5f}",
                  *[f"{t['scores'][split][m]:.5f}" for split in ("validation", "test")
                    for m in metrics]] for t in table]
        _write_table(out / f"compare_{key}", header, lines)
        _atomic_write_json(out / f"compare_{key}.json", table)
        return table

    def _trial_rows(self, oracle):
        rows = []
        for trial in oracle.trials.values():
            metrics = trial.metrics
            score = trial.score
            extra = {key: (float(metrics.get_last_value(key)) if metrics.exists(key) else None)
                     for key in ("params", "time_s")}
            rows.append({"trial": trial.trial_id, "status": str(trial.status),
                         "hparams": dict(trial.hyperparameters.values),
                         self.objective: None if score is None else float(score), **extra})
        sign = 1 if self.direction == "min" else -1
        rows.sort(key=lambda r: (r[self.objective] is None,
                                 sign * (r[self.objective] or 0.0), r["trial"]))
        return rows

    def _write_trials(self, rows, out):
        first = [k for k in ("variant", "units") if any(k in r["hparams"] for r in rows)]
        keys = first + sorted({k for r in rows for k in r["hparams"]
                               if k not in first and not k.startswith("tuner/")})
        header = ["trial", "status", *keys, "params", self.objective, "time_s"]

        def cell(value, fmt):
            if value is None:
                return ""
            if isinstance(value, float):
                return format(value, fmt)
            return str(value)

        table = [[r["trial"], r["status"], *[cell(r["hparams"].get(k), ".4g") for k in keys],
                  cell(None if r["params"] is None else int(r["params"]), ""),
                  cell(r[self.objective], ".5f"), cell(r["time_s"], ".1f")] for r in rows]
        _write_table(out / "trials", header, table)

    # ============================================================ training
    def train(self, hparams, data, out, epochs=None, seed=0, data_parallel=None, quick=False,
              verbose=1, command=None, profile=None, overwrite=False):
        """Train, evaluate and write a preset; resumes an interrupted run in ``out``.

        With ``hparams["refit"]`` true (recipes whose :meth:`dataset` knows the
        ``"train_full"`` split: training + validation), the model is trained on both for
        exactly ``epochs`` epochs (no early stopping) and the last epoch is kept: the
        final fit after the configuration and the epoch count were chosen on validation.
        Its validation metrics are then not held out (the metadata says so).

        ``out`` receives ``backup/`` (``keras.callbacks.BackupAndRestore``: the
        latest epoch's weights, optimizer state and epoch), ``checkpoints/best.weights.h5``
        (the best epoch on the validation objective), ``train_state.json`` (best value,
        early-stopping counter, time spent), ``train_log.csv`` and finally ``preset/``.
        Re-running the same command after an interruption (even ``kill -9``)
        resumes from the last completed epoch. A run that finished (``out/preset``
        exists) is not trained again: that raises ``FileExistsError`` unless
        ``overwrite``, which discards the finished run and trains from scratch.

        Args:
            hparams: from :meth:`hparams`.
            data: from :meth:`load_data`.
            out: the run directory.
            epochs: overrides ``hparams["epochs"]``.
            seed: ``keras.utils.set_random_seed`` seed.
            data_parallel: ``None`` (default): data parallel on JAX when more than one
                device is visible; ``True``: require it (JAX only); ``False``: never.
            quick: recorded in the metadata (a quick preset is labelled as such).
            profile: the ``hparams.json`` profile used, recorded in the metadata.
            verbose: Keras ``fit`` verbosity (1: progress bars).
            command: the command line recorded in the metadata.
            overwrite: retrain from scratch over a finished run in ``out``.

        Returns:
            :class:`TrainResult`.

        Raises:
            FileExistsError: ``out`` holds a finished run and ``overwrite`` is false.
        """
        import keras

        out = Path(out)
        if (out / "preset").exists():
            if not overwrite:
                raise FileExistsError(
                    f"{str(out)!r} holds a finished run (its preset is {str(out / 'preset')!r}); "
                    f"nothing to resume. Retrain from scratch with --overwrite (Python: "
                    f"overwrite=True), or choose another --out.")
            for name in ("preset", "backup", "checkpoints"):
                shutil.rmtree(out / name, ignore_errors=True)
            for name in ("train_state.json", "train_log.csv"):
                (out / name).unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        epochs = int(epochs or hparams["epochs"])
        if epochs < 1:
            raise ValueError(f"epochs must be a positive integer; got {epochs!r}.")
        hparams = dict(hparams, epochs=epochs)
        self.validate_hparams(hparams)
        devices, distribution = _data_parallel(data_parallel)
        set_seed(seed)
        scope = distribution.scope() if distribution is not None else _nullcontext()
        with scope:
            model = self.build(hparams, data)
            if not model.built:
                raise RuntimeError(f"{self.name}: build() must return a built model.")
            refit = bool(hparams.get("refit"))
            state = _TrainState(out, self.objective, self.direction,
                                0 if refit else hparams["patience"], hparams)
            resumed_from = _backup_epoch(out / "backup")
            if resumed_from:
                print(f"Resuming from epoch {resumed_from} (backup in {out / 'backup'})", flush=True)
            if devices:
                print(f"Data parallel over {len(devices)} devices: {', '.join(devices)}", flush=True)
            callbacks = [keras.callbacks.BackupAndRestore(str(out / "backup"),
                                                          double_checkpoint=True),
                         state,
                         keras.callbacks.CSVLogger(str(out / "train_log.csv"), append=True),
                         *self.extra_callbacks(hparams)]
            train_data = self.dataset(data, hparams, "train_full" if refit else "train",
                                      training=True)
            val_data = self.dataset(data, hparams, "validation")
            if devices:  # every batch must split evenly over the devices
                train_data = _divisible(train_data, len(devices), hparams["batch_size"])
                val_data = _divisible(val_data, len(devices), hparams["batch_size"])
            model.fit(train_data, validation_data=val_data, epochs=epochs, callbacks=callbacks,
                      verbose=verbose)
            if state.best is not None and state.best_path.is_file() and not refit:
                model.load_weights(str(state.best_path))
            if devices:
                print(f"Variables replicated on {_variable_devices(model)} devices", flush=True)
                weights = model.get_weights()
        if devices:
            # evaluate and save a plain single-device copy (any batch size, any backend)
            model = self.build(hparams, data)
            model.set_weights(weights)
        metrics = {"validation": self.evaluate(model, data, hparams, "validation"),
                   "test": self.evaluate(model, data, hparams, "test")}
        metadata = self._metadata(hparams, data, metrics, state, seed, quick, command, devices,
                                  profile)
        preset = _presets.save_preset(model, out / "preset", metadata,
                                      assets=self.assets(data, hparams))
        print(f"Preset written to {preset}")
        for split, values in metrics.items():
            print(f"{split:>10}: " + "  ".join(
                f"{k}={v}" if isinstance(v, int) else f"{k}={v:.4f}" for k, v in values.items()))
        model.zoo_preset = _presets.Preset(preset, metadata)
        return TrainResult(model, metrics, preset, metadata, resumed_from)

    def _metadata(self, hparams, data, metrics, state, seed, quick, command, devices,
                  profile=None):
        files = []
        for path in self.data_files(data):
            path = Path(path)
            files.append({"name": path.name, "sha256": _presets.sha256_file(path),
                          "bytes": path.stat().st_size})
        return {
            "format": _presets.PRESET_FORMAT,
            "model": self.name,
            "description": self.describe(data),
            "quick": bool(quick),
            "profile": "quick" if quick else (profile or "defaults"),
            "hparams": hparams,
            "metrics": metrics,
            "objective": {"name": self.objective, "direction": self.direction,
                          "best": state.best, "best_epoch": state.best_epoch},
            "preprocessing": self.preprocessing(data, hparams),
            "data": {"files": files},
            "refit": ({"train_split": "train_full", "kept_epoch": state.epochs_done,
                       "note": "trained on the training and validation splits together: the "
                               "validation metrics are not held out"}
                      if hparams.get("refit") else None),
            "training": {"time_s": round(state.time_s, 2), "epochs_run": state.epochs_done,
                         "seed": seed, "command": command or "",
                         "runs": state.runs, "data_parallel_devices": devices or None},
            "hardware": _presets.hardware_info(),
            "versions": _presets.versions_info(),
        }

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
        if data is None:
            data = self.load_data(data_dir=data_dir, **data_options)
        recorded = {f["name"]: f["sha256"] for f in metadata.get("data", {}).get("files", [])}
        for path in self.data_files(data):
            path = Path(path)
            if path.name in recorded and recorded[path.name] != _presets.sha256_file(path):
                print(f"warning: {path} differs from the data the preset was measured on "
                      f"(sha256 {recorded[path.name][:12]}...)", file=sys.stderr)
        return self.evaluate(model, data, metadata["hparams"], split), metadata

    # ============================================================= export
    def export(self, out, preset=None, verify=True, verbose=True):
        """Export a preset as a TensorFlow SavedModel serving what users have, atomically.

        The SavedModel's ``serve`` signature is :meth:`serving`'s. The export is
        written to a temporary sibling of ``out``, loaded with
        ``tf.saved_model.load`` in a fresh Python process that does not import
        grukit, compared with :meth:`predict` on :meth:`serving_sample`, and only
        then renamed to ``out`` (replacing a previous export). On any failure no
        partial ``out`` is left and a previous ``out`` is untouched. Under another
        backend the export runs in a subprocess with ``KERAS_BACKEND=tensorflow``
        (a preset trained on JAX or PyTorch exports the same way).

        The preset's ``metadata.json`` is copied to ``out/assets.extra/``.

        Returns:
            ``pathlib.Path`` of the export.

        Example:
            >>> ett.export("exports/ett")        # then tf.saved_model.load("exports/ett").serve(x)
        """
        import keras

        out = Path(out)
        preset_path = self.resolve_preset(preset)
        _presets.check_replaceable(out, _is_saved_model)
        if keras.backend.backend() != "tensorflow":
            cmd = [sys.executable, "-m", "grukit", "zoo", "export", self.name,
                   "--preset", str(preset_path), "--out", str(out)]
            if not verify:
                cmd.append("--no-verify")
            env = dict(os.environ, KERAS_BACKEND="tensorflow")
            if verbose:
                print(f"export runs under the TensorFlow backend: {shlex.join(cmd)}", flush=True)
            proc = subprocess.run(cmd, env=env, capture_output=not verbose, text=True)
            if proc.returncode != 0:
                detail = "" if verbose else f":\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}"
                raise RuntimeError(f"export of {self.name} under TensorFlow failed "
                                   f"(exit {proc.returncode}){detail}")
            return out

        model = self.load(preset_path)
        preset_info = model.zoo_preset
        tmp = _presets.temp_sibling(out, "export")
        try:
            # Endpoints first: a recipe's serving() may attach resources (IMDB's
            # lookup table) to the model, which track() must then see.
            endpoints = self.export_endpoints(model, preset_info)
            archive = keras.export.ExportArchive()
            archive.track(model)
            for name, fn, signature in endpoints:
                archive.add_endpoint(name=name, fn=fn, input_signature=list(signature))
            archive.write_out(str(tmp), verbose=False)
            (tmp / "assets.extra").mkdir(exist_ok=True)
            shutil.copyfile(preset_path / _presets.METADATA_FILE,
                            tmp / "assets.extra" / "metadata.json")
            self.export_extras(model, tmp / "assets.extra")
            if verify:
                self.verify_export(model, tmp, verbose=verbose)
            _presets.replace_dir(tmp, out, _is_saved_model)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if verbose:
            print(f"SavedModel written to {out}")
        return out

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
        served = verify_saved_model(path, sample)
        tol = 1e-4 * max(1.0, float(np.abs(expected).max()))
        if served.shape != expected.shape or not np.allclose(served, expected, rtol=1e-4,
                                                             atol=tol):
            err = (np.abs(served - expected).max() if served.shape == expected.shape
                   else f"shape {served.shape} vs {expected.shape}")
            raise RuntimeError(f"exported SavedModel disagrees with the Keras model "
                               f"on the sample batch (max difference {err}).")
        if verbose:
            print(f"verified: SavedModel loaded without grukit matches the Keras model "
                  f"on a batch {tuple(sample.shape)} (max |diff| "
                  f"{float(np.abs(served - expected).max()):.2e})", flush=True)


# ====================================================================== helpers
class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _is_saved_model(path):
    return (Path(path) / "saved_model.pb").is_file()


_VERIFY = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    served = tf.saved_model.load(sys.argv[1])
    x = np.load(sys.argv[2], allow_pickle=False)
    y = served.serve(tf.constant(x))
    np.save(sys.argv[3], np.asarray(y))
    if "grukit" in sys.modules:
        raise SystemExit("loading the SavedModel imported grukit")
    print("served", x.shape, "->", np.asarray(y).shape)
""")


def verify_saved_model(path, sample, timeout=600):
    """Load the SavedModel at ``path`` in a fresh Python process that does not import
    grukit, call its ``serve`` signature on ``sample`` and return the outputs (NumPy).

    Raises:
        RuntimeError: loading or serving failed, or it imported grukit.

    Example:
        >>> verify_saved_model("exports/ett", windows).shape       # windows [b, 720, 7]
        (b, 96, 7)
    """
    import tempfile

    import numpy as np

    with tempfile.TemporaryDirectory() as workdir:
        xpath, ypath = Path(workdir) / "x.npy", Path(workdir) / "y.npy"
        np.save(xpath, sample, allow_pickle=False)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
        proc = subprocess.run([sys.executable, "-c", _VERIFY, str(Path(path).resolve()),
                               str(xpath), str(ypath)], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"the exported SavedModel failed to load/serve in a fresh "
                               f"process (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        return np.load(ypath)


def _backup_epoch(backup_dir):
    """The epoch a BackupAndRestore directory will resume from (0 if none)."""
    for name in ("training_metadata.json", "training_metadata.json.bkp"):
        path = Path(backup_dir) / name
        if path.is_file():
            try:
                return int(json.loads(path.read_text())["epoch"])
            except (ValueError, KeyError):
                continue
    return 0


def _data_parallel(requested):
    """``(device names, DataParallel)`` or ``(None, None)``; see :meth:`ZooModel.train`."""
    import keras

    if requested is False:
        return None, None
    backend = keras.backend.backend()
    if backend != "jax":
        if requested:
            raise ValueError(f"--data-parallel needs the JAX backend (keras.distribution); "
                             f"the backend is {backend!r}. Run with --backend jax.")
        return None, None
    devices = keras.distribution.list_devices()
    if len(devices) < 2:
        if requested:
            print(f"--data-parallel: only one device ({devices[0]}); training on it",
                  file=sys.stderr)
        return None, None
    return list(devices), keras.distribution.DataParallel(devices=devices)


def _divisible(dataset, devices, batch_size):
    """``dataset`` (a PyDataset or an ``(x, y)`` tuple of arrays) with every batch cut to a
    multiple of ``devices`` (at most ``devices - 1`` examples of a batch are left out), as
    ``keras.distribution.DataParallel`` requires."""
    import keras

    class Divisible(keras.utils.PyDataset):
        def __init__(self, inner, get, length):
            super().__init__()
            self.inner, self.get, self.length = inner, get, length

        def __len__(self):
            return self.length

        def __getitem__(self, index):
            batch = self.get(index)
            n = len(batch[0]) // devices * devices
            return tuple(part[:n] for part in batch)

        def on_epoch_end(self):
            if hasattr(self.inner, "on_epoch_end"):
                self.inner.on_epoch_end()

    if isinstance(dataset, (tuple, list)):
        arrays = tuple(dataset)
        count = len(arrays[0])

        def get(index):
            return tuple(a[index * batch_size:(index + 1) * batch_size] for a in arrays)

        length = math.ceil(count / batch_size)
    elif isinstance(dataset, keras.utils.PyDataset):
        get, length = dataset.__getitem__, len(dataset)
    else:
        raise TypeError(f"data parallel training needs a keras.utils.PyDataset or (x, y) "
                        f"arrays from dataset(); got {type(dataset).__name__}.")
    while length and len(get(length - 1)[0]) < devices:
        length -= 1  # a last batch smaller than the device count is left out
    return Divisible(dataset, get, length)


def _variable_devices(model):
    """How many devices the model's first variable lives on (JAX)."""
    value = model.weights[0].value
    sharding = getattr(value, "sharding", None)
    return len(sharding.device_set) if sharding is not None else 1


def _fast_chief(tuner_cls):
    """``tuner_cls`` whose chief polls for the end of the search every 0.5 s.

    keras-tuner's chief (``oracle_chief.start_server``) re-checks every 20 s
    whether the workers are done; this is the same loop with a short period,
    so that the chief exits promptly once the last worker has finished."""

    class _Tuner(tuner_cls):
        def search(self, *fit_args, **fit_kwargs):
            from keras_tuner.src.distribute import utils as dist_utils

            if not dist_utils.is_chief_oracle():
                return super().search(*fit_args, **fit_kwargs)
            try:
                from keras_tuner.src.distribute import oracle_chief
            except ImportError:  # pragma: no cover
                return super().search(*fit_args, **fit_kwargs)
            if "verbose" in fit_kwargs:
                self.oracle.verbose = fit_kwargs["verbose"]
            self.save()
            _serve_oracle(self.oracle, oracle_chief)

    _Tuner.__name__ = _Tuner.__qualname__ = f"Zoo{tuner_cls.__name__}"
    return _Tuner


def _write_table(stem, header, rows):
    """``rows`` (lists of strings) under ``header`` as ``STEM.csv`` and ``STEM.md``."""
    with open(f"{stem}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n")


def _stop_starting_after(oracle, deadline):
    """Make ``oracle`` start no trial after ``deadline`` (``time.time()``): from then on it
    answers as if ``max_trials`` were the number of trials it has (at least one)."""
    create = oracle.create_trial

    def create_trial(tuner_id):
        if time.time() >= deadline and tuner_id not in oracle.ongoing_trials:
            limit = max(len(oracle.trials), 1)
            if oracle.max_trials is None or oracle.max_trials > limit:
                print(f"[{tuner_id}] time limit reached: no new trials "
                      f"({len(oracle.trials)} started)", flush=True)
                oracle.max_trials = limit
        return create(tuner_id)

    oracle.create_trial = create_trial


def _serve_oracle(oracle, oracle_chief, period=0.5):
    import grpc
    from concurrent import futures

    from keras_tuner.src import protos

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    if not server.add_insecure_port(address):
        raise RuntimeError(f"the keras-tuner chief cannot listen on {address}")
    server.start()
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            time.sleep(period)
    finally:
        server.stop(grace=1)


def _train_state_class():
    import keras

    class TrainState(keras.callbacks.Callback):
        """Best-epoch checkpoint, early stopping and time spent, all persisted in ``out``
        so that a resumed run (BackupAndRestore) continues them."""

        def __init__(self, out, monitor, direction, patience, hparams):
            super().__init__()
            self.out = Path(out)
            self.monitor, self.direction, self.patience = monitor, direction, patience
            self.best_path = self.out / "checkpoints" / "best.weights.h5"
            self.state_path = self.out / "train_state.json"
            self.best, self.best_epoch, self.wait = None, None, 0
            self.epochs_done, self.time_s, self.runs = 0, 0.0, 0
            self.hparams = hparams
            # an interrupted run (a backup exists) is continued; otherwise start afresh
            if self.state_path.is_file() and _backup_epoch(self.out / "backup") > 0:
                state = json.loads(self.state_path.read_text())
                if state.get("hparams") not in (None, json.loads(json.dumps(hparams))):
                    raise ValueError(
                        f"{self.out} holds an interrupted run with other hyperparameters; "
                        f"re-run its command to finish it, or use another --out (or delete "
                        f"{self.out}) to start afresh.")
                self.best, self.best_epoch = state["best"], state["best_epoch"]
                self.wait, self.epochs_done = state["wait"], state["epochs_done"]
                self.time_s, self.runs = state["time_s"], state["runs"]
            else:
                for stale in (self.state_path, self.best_path, self.out / "train_log.csv"):
                    if stale.is_file():
                        stale.unlink()
            self._start = None

        def on_train_begin(self, logs=None):
            self.runs += 1
            self._start = time.time()

        def _improved(self, value):
            if not math.isfinite(value):
                return False
            if self.best is None:
                return True
            return value < self.best if self.direction == "min" else value > self.best

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(self.monitor)
            if value is None:
                raise RuntimeError(f"training logged no {self.monitor!r}; logs: {sorted(logs or {})}")
            value = float(value)
            if self._improved(value):
                self.best, self.best_epoch, self.wait = value, epoch, 0
                self.best_path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.best_path.with_name(f".tmp-{os.getpid()}.weights.h5")
                self.model.save_weights(str(tmp))
                os.replace(tmp, self.best_path)
            else:
                self.wait += 1
            self.epochs_done = epoch + 1
            now = time.time()
            self.time_s += now - self._start
            self._start = now
            self._save()
            if self.patience and self.wait >= self.patience:
                print(f"\nEarly stopping: no {self.monitor} improvement for {self.wait} "
                      f"epochs (best {self.best:.5f} at epoch {self.best_epoch + 1})", flush=True)
                self.model.stop_training = True

        def _save(self):
            _atomic_write_json(self.state_path, {
                "best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "epochs_done": self.epochs_done, "time_s": self.time_s, "runs": self.runs,
                "hparams": self.hparams})

    return TrainState


def _TrainState(*args, **kwargs):
    return _train_state_class()(*args, **kwargs)
