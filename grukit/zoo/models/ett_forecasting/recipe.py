"""The ``ett-forecasting`` recipe: data, hyperparameters, search space, training hooks,
serving and the command line, over the SegRNN-style model of :mod:`.model`.

Example::

    >>> import grukit.zoo
    >>> from grukit.datasets import load_ett
    >>> ett = grukit.zoo.get("ett-forecasting")
    >>> model = grukit.zoo.load("ett-forecasting")
    >>> window = load_ett().values[-model.lookback:]   # [lookback, 7] in the CSV's units
    >>> ett.predict(model, window).shape               # -> [horizon, 7] in the CSV's units
    (96, 7)
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import keras
import numpy as np

from grukit.zoo import ZooModel
from grukit.zoo.cli import require

from .config import EttConfig
from .model import STANDARD_HORIZONS, SegRNN
from .plots import plot_forecast
from .preprocessing import read_window_csv


DEFAULT_HORIZON = 96  # the horizon of preset/ (grukit.zoo.load's default)


class EttForecasting(ZooModel):
    """The ``ett-forecasting`` recipe: SegRNN-style multivariate forecaster on ETT data.

    Data: :func:`grukit.datasets.load_ett` (ETTh1 by default, any ETT-format CSV with
    ``--data``), standard 12/4/4-month split, train-split standardisation.
    Hyperparameters: :class:`EttConfig`, profiles in
    ``grukit/zoo/models/ett_forecasting/hparams.json``; ``--horizon`` sets ``horizon``.

    Example:
        >>> import grukit.zoo
        >>> ett = grukit.zoo.get("ett-forecasting")
        >>> data = ett.load_data()                # ETTh1 from $GRUKIT_DATA_DIR
        >>> data.name, data.values.shape
        ('ETTh1', (17420, 7))
        >>> hp = ett.hparams(quick=True)          # ett.train(hp, data, out) trains on:
        >>> x, y = ett.dataset(data, hp, "train", training=True)[0]
        >>> x.shape, y.shape                      # [batch, lookback, 7], [batch, horizon, 7]
        ((64, 96, 7), (64, 96, 7))
        >>> ett.committed_horizons()
        [96, 192, 336, 720]
    """

    name = "ett-forecasting"
    description = "ETT multivariate forecasting (ETTh1, 7 series), SegRNN-style on a grukit layer"
    objective = "val_loss"
    direction = "min"
    config_class = EttConfig

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

    def describe(self, data):
        return (f"ETT-format multivariate forecasting ({data.name}, {len(data.columns)} series), "
                f"SegRNN-style on a grukit layer")

    def data_files(self, data):
        return [data.source] if data.source else []

    def preprocessing(self, data, hparams):
        return {"data_name": data.name, "columns": list(data.columns),
                "mean": [float(v) for v in data.mean], "std": [float(v) for v in data.std],
                "lookback": hparams["lookback"], "horizon": hparams["horizon"]}

    def dataset(self, data, hparams, split, training=False, seed=0):
        from grukit.datasets import Batches, WindowDataset

        L, H, batch = hparams["lookback"], hparams["horizon"], hparams["batch_size"]
        limit = {"train": hparams["max_train_windows"],
                 "validation": hparams["max_val_windows"]}.get(split, 0)
        name = "val" if split == "validation" else split
        if limit and limit < data.num_windows(name, L, H):
            x, y = data.windows(name, L, H)
            # evenly spaced windows over the whole split: the subset sees every season
            idx = np.linspace(0, len(x) - 1, limit).round().astype(int)
            return Batches.of_arrays((x[idx], y[idx]), batch, shuffle=training, seed=seed)
        return WindowDataset(data, name, L, H, batch_size=batch, shuffle=training, seed=seed)

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

    def extra_callbacks(self, hparams):
        """SegRNN's 'type3' schedule: the base rate for ``lr_decay_start`` epochs, then
        times ``lr_decay`` per epoch (``lr_decay`` 1 = constant)."""
        decay, start = hparams["lr_decay"], hparams["lr_decay_start"]
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
            >>> import grukit.zoo
            >>> ett = grukit.zoo.get("ett-forecasting")
            >>> model = ett.load(horizon=336)          # the package's preset_h336/
            >>> model.horizon, model.zoo_preset.path.name
            (336, 'preset_h336')
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
            >>> import grukit.zoo
            >>> from grukit.datasets import load_ett
            >>> ett = grukit.zoo.get("ett-forecasting")
            >>> model = grukit.zoo.load("ett-forecasting")
            >>> values = load_ett().values
            >>> ett.predict(model, values[-720:]).shape
            (96, 7)
            >>> ett.predict(model, values[-100:])
            Traceback (most recent call last):
            ValueError: ett-forecasting: this model forecasts from the last 720 rows (its
            lookback); got 100 rows.
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
        if getattr(args, "plot", None):  # fail before any output, not after it
            require("matplotlib", "plot", "--plot")
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
        if command == "train" and not (args.profile or args.hparams or args.quick):
            # The model in the card: the committed preset's configuration for this horizon.
            profile = f"preset-h{overrides.get('horizon', DEFAULT_HORIZON)}"
            if profile in self.profiles():
                args.profile = profile
        return data, overrides

    def run_predict(self, model, args, load_data, out, err):
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
              f"{preset.metadata['model']} preset {preset.path}:", file=out)
        print("step," + ",".join(columns), file=out)
        for i, row in enumerate(forecast):
            print(f"{i + 1}," + ",".join(f"{v:.4f}" for v in row), file=out)
        if truth is not None:
            std = np.asarray(pre["std"])
            err = (forecast - truth) / std
            print(f"standardised MSE {np.mean(err ** 2):.4f}, MAE {np.mean(np.abs(err)):.4f} "
                  f"against the data", file=out)
        if args.output:
            with open(args.output, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["step", *columns])
                for i, row in enumerate(forecast):
                    writer.writerow([i + 1, *[f"{v:.6g}" for v in row]])
            print(f"written to {args.output}", file=err)
        if getattr(args, "plot", None):
            plot_forecast(args.plot, window, forecast, truth, columns,
                          title=f"{source}: OT, lookback {model.lookback}, "
                                f"horizon {model.horizon}")
            print(f"plot written to {args.plot}", file=err)
        return 0


