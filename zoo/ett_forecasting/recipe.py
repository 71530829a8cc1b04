"""ETT forecasting: a SegRNN-style forecaster on a grukit recurrent layer.

The model (Lin et al. 2023, "SegRNN: Segment Recurrent Neural Network for
Long-Term Time Series Forecasting", arXiv 2308.11200), for a window
``x [batch, lookback, channels]`` of standardised values:

1. instance normalisation, reversed at the end (``norm``): subtract the
   window's last value per channel (``"last"``, SegRNN's default), its mean
   (``"mean"``), or its mean and divide by its std (``"revin"``, RevIN
   without affine parameters);
2. channel independence: the channels are folded into the batch;
3. the lookback is cut into ``lookback / segment`` segments of length
   ``segment``, each embedded by ``Dense(units, relu)``;
4. a grukit recurrent layer (``variant``, ``units``) runs over the segments;
5. parallel multi-step decoding: for each of the ``horizon / segment``
   output segments, a learned positional embedding (position embedding and
   channel embedding, ``units/2`` each, concatenated) is the input of one
   more recurrent step of the *same* layer, started from the encoder's final
   state -- all output segments at once, as a batch of length-1 sequences;
6. dropout, ``Dense(segment)``, the output segments concatenated, then
   de-normalised.

Loss MSE (or MAE) on standardised values; test metrics are MSE and MAE on
standardised values over every test window (Informer/DLinear convention,
:meth:`grukit.datasets.ETTData.windows`).

Example::

    >>> ett = grukit.zoo.get("ett-forecasting")
    >>> model = grukit.zoo.load("ett-forecasting")
    >>> ett.predict(model, window)        # window [lookback, 7] in the CSV's units -> [horizon, 7]
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np

import keras
from keras import ops

import grukit
from grukit.zoo import ZooModel

NORMS = ("last", "mean", "revin")
LOSSES = ("mse", "mae")
STANDARD_HORIZONS = (96, 192, 336, 720)
DEFAULT_HORIZON = 96  # the horizon of preset/ (grukit.zoo.load's default)


@keras.saving.register_keras_serializable(package="grukit_zoo")
class SegRNN(keras.Model):
    """SegRNN with a grukit recurrent layer (see the module docstring).

    Args:
        lookback: input window length, a multiple of ``segment``.
        horizon: forecast length, a multiple of ``segment``.
        channels: number of series (7 for ETT).
        segment: segment length ``w``.
        units: state and embedding size ``d``.
        variant: grukit variant of the recurrent layer.
        dropout: dropout before the output projection.
        norm: ``"last"``, ``"mean"`` or ``"revin"``.

    Call: ``x [batch, lookback, channels]`` -> ``[batch, horizon, channels]``.

    Example:
        >>> m = SegRNN(96, 96, 7, segment=24, units=64, variant="mgu2")
        >>> m(np.zeros((2, 96, 7), "float32")).shape
        (2, 96, 7)
    """

    def __init__(self, lookback, horizon, channels, segment=24, units=512, variant="gru",
                 dropout=0.1, norm="last", **kwargs):
        super().__init__(**kwargs)
        check_shape_hparams(lookback, horizon, segment, units)
        if norm not in NORMS:
            raise ValueError(f"SegRNN: norm must be one of {NORMS}; got {norm!r}.")
        if not (isinstance(channels, int) and channels >= 1):
            raise ValueError(f"SegRNN: channels must be a positive integer; got {channels!r}.")
        self.lookback, self.horizon, self.channels = lookback, horizon, channels
        self.segment, self.units, self.variant = segment, units, variant
        self.dropout_rate, self.norm = float(dropout), norm
        self.in_segments, self.out_segments = lookback // segment, horizon // segment
        self.embedding = keras.layers.Dense(units, activation="relu", name="segment_embedding")
        self.rnn = grukit.layers.GRU(units, variant=variant, name="rnn")
        self.position_embedding = self.add_weight(
            shape=(self.out_segments, units // 2), name="position_embedding",
            initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.channel_embedding = self.add_weight(
            shape=(channels, units - units // 2), name="channel_embedding",
            initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.dropout = keras.layers.Dropout(dropout)
        self.head = keras.layers.Dense(segment, name="segment_output")

    def build(self, input_shape=None):
        d = self.units
        self.embedding.build((None, self.in_segments, self.segment))
        self.rnn.build((None, self.in_segments, d))
        self.head.build((None, d))
        self.built = True

    def _normalise(self, x):
        if self.norm == "last":
            loc = ops.stop_gradient(x[:, -1:, :])
            return x - loc, loc, None
        loc = ops.mean(x, axis=1, keepdims=True)
        if self.norm == "mean":
            return x - loc, loc, None
        scale = ops.sqrt(ops.var(x, axis=1, keepdims=True) + 1e-5)
        return (x - loc) / scale, loc, scale

    def call(self, x, training=False):
        c, n, m, w, d = self.channels, self.in_segments, self.out_segments, self.segment, self.units
        x, loc, scale = self._normalise(x)
        # channel independence: [b, L, c] -> [b, c, L] -> [b*c, n, w]
        segments = ops.reshape(ops.transpose(x, (0, 2, 1)), (-1, n, w))
        h = self.rnn(self.embedding(segments), training=training)          # [b*c, d]
        # parallel multi-step decoding: one step per (sample, channel, output segment)
        pos = ops.broadcast_to(ops.expand_dims(self.position_embedding, 0), (c, m, d // 2))
        chan = ops.broadcast_to(ops.expand_dims(self.channel_embedding, 1), (c, m, d - d // 2))
        queries = ops.reshape(ops.concatenate([pos, chan], axis=-1), (1, c * m, d))
        queries = queries + ops.zeros_like(x[:, :1, :1])                    # [b, c*m, d]
        queries = ops.reshape(queries, (-1, 1, d))                         # [b*c*m, 1, d]
        h0 = ops.reshape(ops.expand_dims(h, 1) + ops.zeros((1, m, 1), h.dtype), (-1, d))
        hy = self.rnn(queries, initial_state=h0, training=training)        # [b*c*m, d]
        y = self.head(self.dropout(hy, training=training))                 # [b*c*m, w]
        y = ops.transpose(ops.reshape(y, (-1, c, m * w)), (0, 2, 1))       # [b, horizon, c]
        if scale is not None:
            y = y * scale
        return y + loc

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.horizon, self.channels)

    def get_config(self):
        return {**super().get_config(), "lookback": self.lookback, "horizon": self.horizon,
                "channels": self.channels, "segment": self.segment, "units": self.units,
                "variant": self.variant, "dropout": self.dropout_rate, "norm": self.norm}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def check_shape_hparams(lookback, horizon, segment, units):
    """Raise ``ValueError`` unless lookback and horizon are positive multiples of segment."""
    for key, value in (("segment", segment), ("units", units), ("lookback", lookback),
                       ("horizon", horizon)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"ett-forecasting: {key} must be a positive integer; got {value!r}.")
    if units < 2:
        raise ValueError(f"ett-forecasting: units must be at least 2; got {units}.")
    if horizon % segment:
        raise ValueError(
            f"ett-forecasting: horizon {horizon} is not a multiple of the segment length "
            f"{segment}. Expected a positive multiple of {segment} (the standard horizons are "
            f"{', '.join(map(str, STANDARD_HORIZONS))}).")
    if lookback % segment:
        raise ValueError(f"ett-forecasting: lookback {lookback} is not a multiple of the "
                         f"segment length {segment}.")


class _Windows(keras.utils.PyDataset):
    """A fixed subset of a split's windows (quick runs), as a shuffling PyDataset."""

    def __init__(self, x, y, batch_size, shuffle, seed=0):
        super().__init__()
        self.x, self.y, self.batch_size, self.shuffle, self.seed = x, y, batch_size, shuffle, seed
        self._epoch = 0
        self._order = self._draw()

    def _draw(self):
        n = len(self.x)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, self._epoch]).permutation(n)

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        idx = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        return self.x[idx], self.y[idx]

    def on_epoch_end(self):
        self._epoch += 1
        self._order = self._draw()


class EttForecasting(ZooModel):
    """The ``ett-forecasting`` recipe: SegRNN-style multivariate forecaster on ETT data.

    Data: :func:`grukit.datasets.load_ett` (ETTh1 by default, any ETT-format CSV with
    ``--data``), standard 12/4/4-month split, train-split standardisation.
    Hyperparameters: ``zoo/ett_forecasting/hparams.json``; ``--horizon`` sets
    ``horizon``.

    Example:
        >>> ett = grukit.zoo.get("ett-forecasting")
        >>> data = ett.load_data(data_dir="/work/shared/data")
        >>> result = ett.train(ett.hparams(quick=True), data, "runs/ett", quick=True)
        >>> ett.predict(result.model, data.values[-96:])      # [96, 7] forecast, CSV units
    """

    name = "ett-forecasting"
    description = "ETT multivariate forecasting (ETTh1, 7 series), SegRNN-style on a grukit layer"
    objective = "val_loss"
    direction = "min"

    # ------------------------------------------------------------- data
    def load_data(self, data_dir=None, path=None, name=None, **options):
        """:class:`grukit.datasets.ETTData` from ``path`` (a CSV), or ``name`` (default ETTh1)
        under ``data_dir`` / ``$GRUKIT_DATA_DIR`` / the Keras cache / a download. An
        explicit ``data_dir`` means local data: nothing is downloaded then."""
        from grukit.datasets import load_ett

        if options:
            raise TypeError(f"ett-forecasting: unknown data options {sorted(options)}; "
                            f"expected path, name.")
        return load_ett(path=path, name=name, data_dir=data_dir, download=data_dir is None)

    def data_files(self, data):
        return [data.source] if data.source else []

    def preprocessing(self, data, hparams):
        return {"data_name": data.name, "columns": list(data.columns),
                "mean": [float(v) for v in data.mean], "std": [float(v) for v in data.std],
                "lookback": hparams["lookback"], "horizon": hparams["horizon"]}

    def dataset(self, data, hparams, split, training=False):
        from grukit.datasets import WindowDataset

        L, H, batch = hparams["lookback"], hparams["horizon"], hparams["batch_size"]
        limit = {"train": hparams.get("max_train_windows", 0),
                 "validation": hparams.get("max_val_windows", 0)}.get(split, 0)
        name = "val" if split == "validation" else split
        if limit and limit < data.num_windows(name, L, H):
            x, y = data.windows(name, L, H)
            # evenly spaced windows over the whole split: the subset sees every season
            idx = np.linspace(0, len(x) - 1, limit).round().astype(int)
            return _Windows(x[idx], y[idx], batch, shuffle=training)
        return WindowDataset(data, name, L, H, batch_size=batch, shuffle=training)

    # ------------------------------------------------------ hyperparameters
    def search_space(self, hp, hparams, quick=False):
        """Variant, units (128-512), segment length, dropout, learning rate and lookback
        (336 or 720; segments of 24 or 48 divide both and every standard horizon)."""
        if quick:
            return {
                "variant": hp.Choice("variant", ["gru", "gru2", "mgu", "mgu2", "ligru", "mingru"]),
                "units": hp.Choice("units", [16, 32]),
                "segment": hp.Choice("segment", [24, 48]),
                "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1),
                "learning_rate": hp.Float("learning_rate", 1e-3, 1e-2, sampling="log"),
                "lookback": hp.Choice("lookback", [96]),
            }
        return {
            "variant": hp.Choice("variant", ["gru", "mgu", "mgu2", "mingru", "ligru"]),
            "units": hp.Choice("units", [128, 256, 512]),
            "segment": hp.Choice("segment", [24, 48]),
            "dropout": hp.Float("dropout", 0.0, 0.3, step=0.1),
            "learning_rate": hp.Float("learning_rate", 3e-4, 3e-3, sampling="log"),
            "lookback": hp.Choice("lookback", [336, 720]),
        }

    def validate_hparams(self, hparams):
        super().validate_hparams(hparams)
        check_shape_hparams(hparams["lookback"], hparams["horizon"], hparams["segment"],
                            hparams["units"])
        if hparams["norm"] not in NORMS:
            raise ValueError(f"ett-forecasting: norm must be one of {NORMS}; got {hparams['norm']!r}.")
        if hparams["loss"] not in LOSSES:
            raise ValueError(f"ett-forecasting: loss must be one of {LOSSES}; got {hparams['loss']!r}.")
        if not 0 <= hparams["dropout"] < 1:
            raise ValueError(f"ett-forecasting: dropout must be in [0, 1); got {hparams['dropout']!r}.")

    def extra_callbacks(self, hparams):
        """SegRNN's 'type3' schedule: the base rate for ``lr_decay_start`` epochs, then
        times ``lr_decay`` per epoch (``lr_decay`` 1 = constant)."""
        decay, start = hparams.get("lr_decay", 1.0), hparams.get("lr_decay_start", 0)
        if decay == 1.0:
            return []
        base = hparams["learning_rate"]
        return [keras.callbacks.LearningRateScheduler(
            lambda epoch, lr: base * decay ** max(0, epoch - start))]

    # ------------------------------------------------------------ model
    def build(self, hparams, data):
        model = SegRNN(hparams["lookback"], hparams["horizon"], len(data.columns),
                       segment=hparams["segment"], units=hparams["units"],
                       variant=hparams["variant"], dropout=hparams["dropout"],
                       norm=hparams["norm"], name="segrnn")
        model.build((None, hparams["lookback"], len(data.columns)))
        model.compile(optimizer=keras.optimizers.Adam(hparams["learning_rate"]),
                      loss=hparams["loss"], metrics=["mae"] if hparams["loss"] == "mse" else ["mse"])
        return model

    def evaluate(self, model, data, hparams, split="test"):
        """MSE and MAE on standardised values over every window of ``split``."""
        from grukit.datasets import WindowDataset

        name = "val" if split == "validation" else split
        ds = WindowDataset(data, name, hparams["lookback"], hparams["horizon"],
                           batch_size=max(hparams["batch_size"], 256))
        se = ae = 0.0
        count = 0
        for i in range(len(ds)):
            x, y = ds[i]
            pred = np.asarray(model.predict_on_batch(x), np.float64)
            err = pred - y
            se += float(np.square(err).sum())
            ae += float(np.abs(err).sum())
            count += err.size
        if count != ds.num_windows * hparams["horizon"] * len(data.columns):
            raise RuntimeError("ett-forecasting: not every window was evaluated.")
        return {"mse": se / count, "mae": ae / count, "windows": ds.num_windows}

    # ---------------------------------------------------------- presets
    def preset_for(self, horizon):
        """The committed preset directory for ``horizon``: ``preset/`` (96, the default of
        :func:`grukit.zoo.load`) or ``preset_h<horizon>/`` (192, 336, 720).

        Raises:
            ValueError: no committed preset for that horizon (naming those that exist).
        """
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"ett-forecasting: horizon must be a positive integer "
                             f"(96, 192, 336, 720); got {horizon!r}.")
        from grukit.zoo.presets import is_preset

        directory = Path(self.directory)
        path = self.preset_dir() if horizon == DEFAULT_HORIZON else directory / f"preset_h{horizon}"
        if not is_preset(path):
            have = self.committed_horizons()
            raise ValueError(f"ett-forecasting: no committed preset for horizon {horizon}; "
                             f"committed horizons: {', '.join(map(str, have)) or 'none'}. "
                             f"Train one: grukit zoo train ett-forecasting --horizon {horizon} "
                             f"--out DIR, then pass --preset DIR.")
        return path

    def committed_horizons(self):
        """The horizons with a committed preset, ascending."""
        from grukit.zoo.presets import is_preset

        directory = Path(self.directory)
        have = [DEFAULT_HORIZON] if is_preset(self.preset_dir()) else []
        for path in directory.glob("preset_h*"):
            tail = path.name[len("preset_h"):]
            if tail.isdigit() and int(tail) != DEFAULT_HORIZON and is_preset(path):
                have.append(int(tail))
        return sorted(have)

    def load(self, preset=None, horizon=None):
        """The trained model of ``preset``, or of the committed preset for ``horizon``
        (default: horizon 96). With both, the preset must have that horizon.

        Example:
            >>> model = ett.load(horizon=336)          # zoo/ett_forecasting/preset_h336
        """
        if preset is None and horizon is not None:
            preset = self.preset_for(horizon)
        model = super().load(preset)
        if horizon is not None and model.horizon != horizon:
            raise ValueError(f"ett-forecasting: the preset {str(model.zoo_preset.path)!r} "
                             f"forecasts {model.horizon} steps, not --horizon {horizon}.")
        return model

    def evaluate_preset(self, preset=None, data=None, split="test", data_dir=None,
                        horizon=None, **data_options):
        """:meth:`ZooModel.evaluate_preset`, with ``horizon`` picking the committed preset."""
        if preset is None and horizon is not None:
            preset = self.preset_for(horizon)
        return super().evaluate_preset(preset, data=data, split=split, data_dir=data_dir,
                                       **data_options)

    # ---------------------------------------------------------- serving
    def _scaler(self, model, preset):
        preset = preset if preset is not None else getattr(model, "zoo_preset", None)
        if preset is None:
            raise ValueError("ett-forecasting: predict needs the preset's standardisation; load "
                             "the model with grukit.zoo.load(...) or pass preset=.")
        pre = preset.metadata["preprocessing"]
        return (np.asarray(pre["mean"], np.float32), np.asarray(pre["std"], np.float32),
                pre["columns"])

    def serving(self, model, preset):
        """``serve(window [batch, lookback, 7] float32, CSV units) -> [batch, horizon, 7]``,
        CSV units: the standardisation is inside. A window with the wrong lookback or
        channel count does not match the signature (TensorFlow raises); NaN/inf values
        raise ``InvalidArgumentError`` naming the problem."""
        mean, std, _ = self._scaler(model, preset)

        def serve(window):
            import tensorflow as tf  # serving runs under the TensorFlow backend

            # the signature fixes [batch, lookback, channels]; reject NaN/inf with a message
            window = tf.debugging.check_numerics(
                window, "ett-forecasting: the window holds NaN or infinite values; every value "
                        "must be finite")
            y = model((window - mean) / std, training=False)
            return y * std + mean

        return serve, [keras.InputSpec(shape=(None, model.lookback, model.channels),
                                       dtype="float32")]

    def serving_sample(self, preset):
        pre = preset.metadata["preprocessing"]
        mean, std = np.asarray(pre["mean"], np.float32), np.asarray(pre["std"], np.float32)
        rng = np.random.default_rng(0)
        steps = rng.standard_normal((3, pre["lookback"], len(mean))).cumsum(axis=1) * 0.2
        return (mean + std * steps).astype(np.float32)

    def predict(self, model, inputs, preset=None, batch_size=256):
        """Forecast from windows in the CSV's units.

        Args:
            model: a loaded preset (``grukit.zoo.load("ett-forecasting")``).
            inputs: ``[lookback, 7]`` or ``[batch, lookback, 7]`` numbers in the data
                file's units, columns HUFL, HULL, MUFL, MULL, LUFL, LULL, OT.
            preset: the :class:`grukit.zoo.Preset` (default ``model.zoo_preset``).

        Returns:
            ``float32 [horizon, 7]`` (or ``[batch, horizon, 7]``), the CSV's units.

        Raises:
            ValueError: wrong rank, lookback length or channel count, non-numeric,
                NaN or infinite values -- naming what was expected.

        Example:
            >>> ett.predict(model, data.values[-720:]).shape
            (96, 7)
        """
        mean, std, columns = self._scaler(model, preset)
        try:
            x = np.asarray(inputs, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise ValueError(f"ett-forecasting: the window must be numbers, shape "
                             f"[{model.lookback}, {model.channels}]; {e}") from None
        single = x.ndim == 2
        if single:
            x = x[None]
        if x.ndim != 3:
            raise ValueError(f"ett-forecasting: expected a window [lookback={model.lookback}, "
                             f"channels={model.channels}] or a batch [batch, {model.lookback}, "
                             f"{model.channels}]; got shape {np.shape(inputs)}.")
        if x.shape[1] != model.lookback:
            raise ValueError(f"ett-forecasting: this model forecasts from the last "
                             f"{model.lookback} rows (its lookback); got {x.shape[1]} rows.")
        if x.shape[2] != model.channels:
            raise ValueError(f"ett-forecasting: expected {model.channels} columns "
                             f"({', '.join(columns)}); got {x.shape[2]}.")
        bad = ~np.isfinite(x)
        if bad.any():
            b, row, col = np.argwhere(bad)[0]
            raise ValueError(f"ett-forecasting: the window holds {int(bad.sum())} NaN/infinite "
                             f"value(s), first at row {row}, column {columns[col]}"
                             f"{'' if single else f' of window {b}'}; every value must be finite.")
        y = model.predict((x - mean) / std, batch_size=batch_size, verbose=0)
        y = (np.asarray(y, np.float32) * std + mean).astype(np.float32)
        return y[0] if single else y

    # -------------------------------------------------------------- CLI
    def add_arguments(self, parser, command):
        if command in ("train", "tune", "evaluate", "predict"):
            parser.add_argument("--data", metavar="FILE",
                                help="an ETT-format CSV (date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT); "
                                     "default: ETTh1 from --data-dir / $GRUKIT_DATA_DIR")
        if command in ("train", "tune"):
            parser.add_argument("--horizon", type=int, metavar="H",
                                help="forecast length (96, 192, 336 or 720; any multiple of the "
                                     "segment length)")
        if command in ("evaluate", "export", "predict"):
            recipe = self

            class HorizonPreset(argparse.Action):
                """--horizon H: the committed preset for H (unless --preset names one)."""

                def __call__(self, parser, namespace, value, option_string=None):
                    try:
                        if getattr(namespace, "preset", None) is None:
                            namespace.preset = str(recipe.preset_for(value))
                        else:
                            recipe.check_preset_horizon(namespace.preset, value)
                    except (ValueError, FileNotFoundError) as e:
                        raise argparse.ArgumentError(self, str(e)) from None
                    setattr(namespace, self.dest, value)

            parser.add_argument("--horizon", type=int, metavar="H", action=HorizonPreset,
                                help=f"use the committed preset for this forecast length "
                                     f"({', '.join(map(str, STANDARD_HORIZONS))}; default "
                                     f"{DEFAULT_HORIZON})")
        if command == "predict":
            group = parser.add_mutually_exclusive_group(required=True)
            group.add_argument("--input", metavar="CSV",
                               help="a CSV window in the data's units: at least `lookback` rows, "
                                    "columns HUFL..OT (a header and a date column are optional); "
                                    "its last `lookback` rows are used")
            group.add_argument("--index", type=int, metavar="I",
                               help="forecast test window I of the data set (and score it)")
            parser.add_argument("--output", metavar="CSV", help="also write the forecast here")
            parser.add_argument("--plot", metavar="PNG",
                                help="also plot OT: the window's end, the forecast and (with "
                                     "--index) the truth, as a PNG (needs matplotlib)")

    def check_preset_horizon(self, preset, horizon):
        """Raise ``ValueError`` unless ``preset`` (a path or run directory) has ``horizon``."""
        from grukit.zoo.presets import read_metadata

        path = self.resolve_preset(preset)
        have = read_metadata(path)["hparams"]["horizon"]
        if have != horizon:
            raise ValueError(f"the preset {str(path)!r} forecasts {have} steps, not "
                             f"--horizon {horizon}.")

    def options_from_args(self, args, command):
        data = {"path": args.data} if getattr(args, "data", None) else {}
        overrides = {}
        if command in ("evaluate", "export", "predict"):
            if getattr(args, "horizon", None) is not None and args.preset is not None:
                self.check_preset_horizon(args.preset, args.horizon)  # --preset after --horizon
            return data, overrides
        if getattr(args, "horizon", None) is not None:
            if args.horizon < 1:
                raise ValueError(f"--horizon must be a positive integer (96, 192, 336, 720); "
                                 f"got {args.horizon}.")
            overrides["horizon"] = args.horizon
        return data, overrides

    def run_predict(self, model, args, load_data):
        preset = model.zoo_preset
        pre = preset.metadata["preprocessing"]
        columns = pre["columns"]
        truth = None
        if args.input:
            window = read_window_csv(args.input, columns)
            if len(window) < model.lookback:
                raise ValueError(f"{args.input}: {len(window)} rows; this model needs the last "
                                 f"{model.lookback} rows (its lookback).")
            window = window[-model.lookback:]
            source = f"{args.input} (last {model.lookback} rows)"
        else:
            data = load_data()
            x, y = data.windows("test", model.lookback, model.horizon, scaled=False)
            if not 0 <= args.index < len(x):
                raise ValueError(f"--index must be in [0, {len(x) - 1}] (test windows for lookback "
                                 f"{model.lookback}, horizon {model.horizon}); got {args.index}.")
            window, truth = x[args.index], y[args.index]
            source = f"test window {args.index} of {data.name}"
        forecast = self.predict(model, window, preset)
        print(f"Forecast of {model.horizon} steps from {source}, "
              f"{preset.metadata['model']} preset {preset.path}:")
        print("step," + ",".join(columns))
        for i, row in enumerate(forecast):
            print(f"{i + 1}," + ",".join(f"{v:.4f}" for v in row))
        if truth is not None:
            mean, std = np.asarray(pre["mean"]), np.asarray(pre["std"])
            err = (forecast - truth) / std
            print(f"standardised MSE {np.mean(err ** 2):.4f}, MAE {np.mean(np.abs(err)):.4f} "
                  f"against the data")
        if args.output:
            with open(args.output, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["step", *columns])
                for i, row in enumerate(forecast):
                    writer.writerow([i + 1, *[f"{v:.6g}" for v in row]])
            print(f"written to {args.output}", file=sys.stderr)
        if getattr(args, "plot", None):
            plot_forecast(args.plot, window, forecast, truth, columns,
                          title=f"{source}: OT, lookback {model.lookback}, "
                                f"horizon {model.horizon}")
            print(f"plot written to {args.plot}", file=sys.stderr)
        return 0


def read_window_csv(path, columns):
    """Rows of a CSV window as ``float32 [rows, len(columns)]``.

    With a header, the named ``columns`` are taken (in that order, others such as
    ``date`` ignored); without one, every row must hold exactly ``len(columns)``
    numbers, or one more with a leading date.

    Raises:
        ValueError: missing columns, non-numeric values (with the line number).
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"{path}: empty; expected a CSV window with columns {', '.join(columns)}.")

    def numeric(cell):
        try:
            float(cell)
            return True
        except ValueError:
            return False

    header = [c.strip() for c in rows[0]]
    if not all(numeric(c) for c in header[-len(columns):]):
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{path}: the header lacks columns {missing}; expected "
                             f"{', '.join(columns)} (a date column is optional).")
        take, body, first = [header.index(c) for c in columns], rows[1:], 2
    else:
        width = len(rows[0])
        if width not in (len(columns), len(columns) + 1):
            raise ValueError(f"{path}: {width} fields per row; expected {len(columns)} numbers "
                             f"({', '.join(columns)}), optionally after a date.")
        take, body, first = list(range(width - len(columns), width)), rows, 1
    values = np.empty((len(body), len(columns)), np.float32)
    for i, row in enumerate(body):
        try:
            values[i] = [float(row[j]) for j in take]
        except (ValueError, IndexError):
            raise ValueError(f"{path}: line {i + first}: expected {len(columns)} numbers "
                             f"({', '.join(columns)}); got {row}.") from None
    return values


def plot_forecast(path, window, forecast, truth=None, columns=None, column="OT", history=None,
                  title=None):
    """Plot one column of a forecast (and the truth) after the window's end, as a PNG.

    Args:
        path: the PNG to write.
        window: ``[lookback, channels]``; its last ``history`` rows are drawn
            (default: as many as the forecast).
        forecast, truth: ``[horizon, channels]`` (``truth`` optional).
        columns: the channel names; ``column`` is drawn (default OT).

    Example:
        >>> plot_forecast("ot.png", x[0], ett.predict(model, x[0]), y[0], data.columns)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = list(columns).index(column) if columns is not None else -1
    history = history or len(forecast)
    past = np.asarray(window)[-history:, c]
    steps = np.arange(len(forecast)) + 1
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=100)
    ax.plot(np.arange(-len(past) + 1, 1), past, color="0.45", lw=1.2, label="input window")
    if truth is not None:
        ax.plot(steps, np.asarray(truth)[:, c], color="black", lw=1.2, label="true")
    ax.plot(steps, np.asarray(forecast)[:, c], color="tab:red", lw=1.6, label="forecast")
    ax.axvline(0.5, color="0.7", lw=0.8, ls="--")
    ax.set_xlabel("hours after the window's end")
    ax.set_ylabel(column)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(loc="best", fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
