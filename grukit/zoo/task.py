"""Tasks: a trained zoo model that takes what a user has, keras-hub style.

A task holds a zoo model's Keras model (:attr:`Task.model`, the "backbone" a user can
fine-tune with ``fit``) together with its preset's preprocessing, and answers in the
user's terms: :class:`SentimentClassifier` takes reviews and gives P(positive),
:class:`CharLM` continues a prompt, :class:`Forecaster` forecasts from a window in the
data file's units, in those units (each class's example shows it; :mod:`grukit.zoo`'s
shows all three).

``from_preset`` takes a zoo name (the committed preset) or a preset directory (for
example one written by ``grukit zoo train`` or by :meth:`Task.save_to_preset`);
``save_to_preset`` writes the task's current weights (after fine-tuning, say) as a preset
that ``from_preset`` and ``grukit zoo evaluate/export/predict --preset`` read back.
"""

from __future__ import annotations

import datetime
from pathlib import Path

__all__ = ["Task", "SentimentClassifier", "CharLM", "Forecaster"]


class Task:
    """Base of the zoo's tasks: a loaded preset and the recipe that knows its inputs.

    Subclasses name their zoo model (:attr:`zoo_name`) and add the user-facing methods
    (``predict``, ``generate``).

    Attributes:
        model: the Keras model (``keras.Model``): fine-tune it with ``fit``.
        preset: the :class:`grukit.zoo.Preset` it came from (path and metadata).

    Example:
        >>> import grukit.zoo
        >>> clf = grukit.zoo.SentimentClassifier.from_preset("imdb-sentiment")
        >>> clf.model.count_params() == clf.preset.metadata["parameter_count"]
        True
        >>> clf.recipe is grukit.zoo.get("imdb-sentiment")
        True
    """

    zoo_name = None

    def __init__(self, model):
        preset = getattr(model, "zoo_preset", None)
        if preset is None or preset.metadata.get("model") != self.zoo_name:
            raise ValueError(
                f"{type(self).__name__} wraps a loaded {self.zoo_name!r} preset; got a "
                f"{type(model).__name__} of "
                f"{None if preset is None else preset.metadata.get('model')!r}. Use "
                f"{type(self).__name__}.from_preset(...).")
        self.model, self.preset = model, preset

    @property
    def recipe(self):
        import grukit.zoo

        return grukit.zoo.get(self.zoo_name)

    @classmethod
    def from_preset(cls, preset=None, **options):
        """The task of a preset: ``preset`` is the zoo name (or ``None``) for the committed
        preset, or a preset directory (or a ``grukit zoo train --out`` directory).

        Raises:
            ValueError: a preset of another zoo model, or an unknown name.
            FileNotFoundError: no preset at that path.

        Example:
            >>> import grukit.zoo
            >>> from grukit.zoo import SentimentClassifier
            >>> clf = SentimentClassifier.from_preset("imdb-sentiment")   # the committed one
            >>> clf.preset.path == grukit.zoo.get("imdb-sentiment").preset_dir()
            True
            >>> SentimentClassifier.from_preset(clf.preset.path)           # a preset directory
            SentimentClassifier.from_preset('...preset')
            >>> SentimentClassifier.from_preset("char-lm")
            Traceback (most recent call last):
            ValueError: SentimentClassifier is the 'imdb-sentiment' task; got the zoo model 'char-lm'.
        """
        import grukit.zoo

        if preset is not None and not isinstance(preset, (str, Path)):
            raise TypeError(f"preset must be a zoo name or a directory; got {preset!r}.")
        name = str(preset) if preset is not None else cls.zoo_name
        if name in grukit.zoo.CATALOGUE or name.replace("_", "-") in grukit.zoo.CATALOGUE:
            if name.replace("_", "-") != cls.zoo_name:
                raise ValueError(f"{cls.__name__} is the {cls.zoo_name!r} task; "
                                 f"got the zoo model {name!r}.")
            preset = None
        return cls(grukit.zoo.get(cls.zoo_name).load(preset, **options))

    def save_to_preset(self, path):
        """Write the task's model, as it is now, as a preset directory ``path`` (atomic;
        an existing preset there is replaced). The metadata is the source preset's, with
        its measured ``metrics`` moved under ``derived_from`` (they describe the source
        weights, not these) and the source named there.

        Example:
            >>> import numpy as np
            >>> from grukit.zoo import SentimentClassifier
            >>> clf = SentimentClassifier.from_preset("imdb-sentiment")  # fine-tune clf.model, then
            >>> path = clf.save_to_preset("runs/my-imdb")
            >>> mine = SentimentClassifier.from_preset("runs/my-imdb")
            >>> all(np.array_equal(a, b) for a, b in zip(mine.model.get_weights(),
            ...                                          clf.model.get_weights()))
            True
            >>> mine.preset.metadata["metrics"], sorted(mine.preset.metadata["derived_from"])
            ({}, ['date', 'metrics', 'preset'])
        """
        from grukit.zoo import presets

        metadata = dict(self.preset.metadata)
        metadata["derived_from"] = {
            "preset": str(self.preset.path), "metrics": metadata.get("metrics", {}),
            "date": datetime.datetime.now().isoformat(timespec="seconds")}
        metadata["metrics"] = {}
        for key in ("parameter_count", "date_saved", "keras_version"):
            metadata.pop(key, None)
        assets_dir = Path(self.preset.path) / presets.ASSETS_DIR
        assets = ({p.name: p for p in sorted(assets_dir.iterdir()) if p.is_file()}
                  if assets_dir.is_dir() else None)
        path = presets.save_preset(self.model, path, metadata, assets=assets)
        self.preset = presets.Preset(Path(path), metadata)
        self.model.zoo_preset = self.preset
        return path

    def __repr__(self):
        return f"{type(self).__name__}.from_preset({str(self.preset.path)!r})"


class SentimentClassifier(Task):
    """``imdb-sentiment`` as a task: raw reviews in, P(positive review) out.

    Example:
        >>> from grukit.zoo import SentimentClassifier
        >>> clf = SentimentClassifier.from_preset("imdb-sentiment")
        >>> p = clf.predict(["an overlong, joyless film", "a little gem"])
        >>> p.shape, p.dtype, bool(p[0] < 0.5 < p[1])
        ((2,), dtype('float32'), True)
    """

    zoo_name = "imdb-sentiment"

    def predict(self, texts, batch_size=128):
        """P(positive) of one review (a ``float``) or of a sequence of reviews
        (``float32 [n]``); see :meth:`ImdbSentiment.predict` for the accepted inputs.

        Example:
            >>> from grukit.zoo import SentimentClassifier
            >>> clf = SentimentClassifier.from_preset("imdb-sentiment")
            >>> clf.predict("a joyless film") < 0.5
            True
        """
        return self.recipe.predict(self.model, texts, self.preset, batch_size=batch_size)


class CharLM(Task):
    """``char-lm`` as a task: a prompt in, generated text out, O(1) work per character.

    Example:
        >>> from grukit.zoo import CharLM
        >>> lm = CharLM.from_preset("char-lm")
        >>> text = lm.generate("ROMEO:", length=10, temperature=0.8, seed=1)
        >>> len(text), text == lm.generate("ROMEO:", length=10, temperature=0.8, seed=1)
        (10, True)
    """

    zoo_name = "char-lm"

    def generate(self, prompt, length=500, temperature=1.0, top_k=0, seed=0, unknown="error"):
        """The ``length`` characters sampled after ``prompt`` (a ``str``, or a list of them
        for a list of results): logits / ``temperature`` (0: greedy), the ``top_k`` most
        likely kept (0: all), a seeded portable sampler (the same text for the same
        ``seed`` on every backend and in the SavedModel); ``unknown`` is what to do with
        prompt characters outside the vocabulary (``"error"`` or ``"skip"``).

        Example:
            >>> from grukit.zoo import CharLM
            >>> lm = CharLM.from_preset("char-lm")
            >>> lm.generate("ROMEO:", 10, temperature=0) == lm.generate("ROMEO:", 10, 0, seed=9)
            True
            >>> [len(text) for text in lm.generate(["ROMEO:", "JULIET:"], 10)]
            [10, 10]
        """
        return self.recipe.predict(self.model, prompt, self.preset, length=length,
                                   temperature=temperature, top_k=top_k, seed=seed,
                                   unknown=unknown)


class Forecaster(Task):
    """``ett-forecasting`` as a task: windows in the data file's units in, forecasts in
    the same units out (the standardisation of the training data is inside).

    ``from_preset("ett-forecasting", horizon=H)`` picks the committed preset for ``H``
    (96, 192, 336 or 720).

    Example:
        >>> from grukit.datasets import load_ett
        >>> from grukit.zoo import Forecaster
        >>> fc = Forecaster.from_preset("ett-forecasting", horizon=192)
        >>> fc.lookback, fc.horizon
        (720, 192)
        >>> window = load_ett().values[-fc.lookback:]      # [720, 7], the CSV's units
        >>> fc.predict(window).shape
        (192, 7)
    """

    zoo_name = "ett-forecasting"

    @property
    def lookback(self):
        return self.model.lookback

    @property
    def horizon(self):
        return self.model.horizon

    def predict(self, windows, batch_size=256):
        """Forecast ``[horizon, channels]`` from a window ``[lookback, channels]`` (or a
        batch of them), both in the data file's units; see
        :meth:`EttForecasting.predict` for the checks.

        Example:
            >>> import numpy as np
            >>> from grukit.datasets import load_ett
            >>> from grukit.zoo import Forecaster
            >>> fc = Forecaster.from_preset("ett-forecasting")    # horizon 96
            >>> values = load_ett().values
            >>> fc.predict(values[-fc.lookback:]).shape
            (96, 7)
            >>> fc.predict(np.stack([values[:720], values[-720:]])).shape
            (2, 96, 7)
        """
        return self.recipe.predict(self.model, windows, self.preset, batch_size=batch_size)
