"""Training a recipe's model: resumable, best-epoch checkpointed, early-stopped, and
written as a preset with its metadata (see :func:`train`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import warnings
from pathlib import Path

from grukit.zoo import presets as _presets
from grukit.zoo.base import (TrainResult, _atomic_write_json, _order_seed,
                             _training_dataset, set_seed)

__all__ = ["train"]

log = logging.getLogger(__name__)


def train(recipe, hparams, data, out, epochs=None, seed=0, data_parallel=None, quick=False,
          verbose=1, command=None, profile=None, overwrite=False, shuffle_seed=None):
    """Train, evaluate and write a preset; resumes an interrupted run in ``out``.

    With ``hparams["refit"]`` true (recipes whose :meth:`dataset` knows the
    ``"train_full"`` split: training + validation), the model is trained on both for
    exactly ``epochs`` epochs (no early stopping) and the last epoch is kept: the
    final fit after the configuration and the epoch count were chosen on validation.
    Its validation metrics are then not held out (the metadata says so).

    ``out`` receives ``backup/`` (``keras.callbacks.BackupAndRestore``: the
    latest epoch's weights, optimizer state and epoch), ``checkpoints/best.weights.h5``
    (the best epoch on the validation objective), ``train_state.json`` (best value,
    early-stopping counter, time spent), ``train_log.csv`` and finally ``preset/``
    (``backup/`` is deleted when training ends).
    Re-running the same command after an interruption (even ``kill -9``)
    resumes from the last completed epoch. A run that finished (``out/preset``
    exists) is not trained again: that raises ``FileExistsError`` unless
    ``overwrite``, which discards the finished run and trains from scratch.

    Args:
        hparams: from :meth:`hparams`.
        data: from :meth:`load_data`.
        out: the run directory.
        epochs: overrides ``hparams["epochs"]``.
        seed: the run's random seed: ``keras.utils.set_random_seed`` (initial weights,
            dropout) and, unless ``shuffle_seed`` is given, the training order
            (:meth:`dataset`'s ``seed``).
        shuffle_seed: ``None`` (default): the training order follows ``seed``; an integer
            >= 0: the order's own seed, the same whatever ``seed`` (to vary the
            initialisation alone). A resumed run must use the seeds it started with
            (``ValueError`` otherwise); the metadata records both.
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

    Example:
        >>> import grukit.zoo
        >>> from grukit.zoo.training import train
        >>> ett = grukit.zoo.get("ett-forecasting")
        >>> data = ett.load_data()                     # ETTh1 from $GRUKIT_DATA_DIR
        >>> tiny = {"epochs": 1, "units": 8, "lookback": 48, "horizon": 24, "batch_size": 1024}
        >>> hp = ett.hparams(quick=True, overrides=tiny)
        >>> result = train(ett, hp, data, "runs/ett", quick=True, verbose=0)
        >>> result.preset.as_posix(), result.metrics["test"]["windows"]
        ('runs/ett/preset', 2857)
        >>> sorted(p.name for p in result.preset.parent.iterdir())
        ['checkpoints', 'preset', 'train_log.csv', 'train_state.json']
        >>> train(ett, hp, data, "runs/ett", quick=True)       # finished: overwrite=True retrains
        Traceback (most recent call last):
        FileExistsError: 'runs/ett' holds a finished run (its preset is 'runs/ett/preset'); ...
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
    recipe.validate_hparams(hparams)
    order_seed = _order_seed(seed, shuffle_seed)
    devices, distribution = _data_parallel(data_parallel)
    set_seed(seed)
    scope = distribution.scope() if distribution is not None else _nullcontext()
    with scope:
        model = recipe.build(hparams, data)
        if not model.built:
            raise RuntimeError(f"{recipe.name}: build() must return a built model.")
        refit = bool(hparams.get("refit"))
        state = _TrainState(out, recipe.objective, recipe.direction,
                            0 if refit else hparams["patience"], hparams, seed, order_seed)
        resumed_from = _backup_epoch(out / "backup")
        if resumed_from:
            log.info(f"Resuming from epoch {resumed_from} (backup in {out / 'backup'})")
        if devices:
            log.info(f"Data parallel over {len(devices)} devices: {', '.join(devices)}")
        callbacks = [keras.callbacks.BackupAndRestore(str(out / "backup"),
                                                      double_checkpoint=True),
                     state,
                     keras.callbacks.CSVLogger(str(out / "train_log.csv"), append=True),
                     *recipe.extra_callbacks(hparams)]
        train_data = _training_dataset(recipe, data, hparams,
                                       "train_full" if refit else "train", order_seed)
        val_data = recipe.dataset(data, hparams, "validation")
        if devices:  # every batch must split evenly over the devices
            train_data = _divisible(train_data, len(devices), hparams["batch_size"])
            val_data = _divisible(val_data, len(devices), hparams["batch_size"])
        model.fit(train_data, validation_data=val_data, epochs=epochs, callbacks=callbacks,
                  verbose=verbose)
        if state.best is not None and state.best_path.is_file() and not refit:
            model.load_weights(str(state.best_path))
        if devices:
            log.info(f"Variables replicated on {_variable_devices(model)} devices")
            weights = model.get_weights()
    if devices:
        # evaluate and save a plain single-device copy (any batch size, any backend)
        model = recipe.build(hparams, data)
        model.set_weights(weights)
    metrics = {"validation": recipe.evaluate(model, data, hparams, "validation"),
               "test": recipe.evaluate(model, data, hparams, "test")}
    metadata = _metadata(recipe, hparams, data, metrics, state, seed, quick, command, devices,
                              profile)
    preset = _presets.save_preset(model, out / "preset", metadata,
                                  assets=recipe.assets(data, hparams))
    log.info(f"Preset written to {preset}")
    for split, values in metrics.items():
        log.info(f"{split:>10}: " + "  ".join(
            f"{k}={v}" if isinstance(v, int) else f"{k}={v:.4f}" for k, v in values.items()))
    model.zoo_preset = _presets.Preset(preset, metadata)
    return TrainResult(model, metrics, preset, metadata, resumed_from)


def _metadata(recipe, hparams, data, metrics, state, seed, quick, command, devices,
              profile=None):
    files = []
    for path in recipe.data_files(data):
        path = Path(path)
        files.append({"name": path.name, "sha256": _presets.sha256_file(path),
                      "bytes": path.stat().st_size})
    return {
        "format": _presets.PRESET_FORMAT,
        "model": recipe.name,
        "description": recipe.describe(data),
        "quick": bool(quick),
        "profile": "quick" if quick else (profile or "defaults"),
        "hparams": hparams,
        "metrics": metrics,
        "objective": {"name": recipe.objective, "direction": recipe.direction,
                      "best": state.best, "best_epoch": state.best_epoch},
        "preprocessing": recipe.preprocessing(data, hparams),
        "data": {"files": files},
        "refit": ({"train_split": "train_full", "kept_epoch": state.epochs_done,
                   "note": "trained on the training and validation splits together: the "
                           "validation metrics are not held out"}
                  if hparams.get("refit") else None),
        "training": {"time_s": round(state.time_s, 2), "epochs_run": state.epochs_done,
                     "seed": seed, "shuffle_seed": state.shuffle_seed,
                     "command": command or "",
                     "runs": state.runs, "data_parallel_devices": devices or None},
        "hardware": _presets.hardware_info(),
        "versions": _presets.versions_info(),
    }


# ====================================================================== helpers
class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


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
            warnings.warn(f"--data-parallel: only one device ({devices[0]}); training on it",
                          stacklevel=2)
        return None, None
    return list(devices), keras.distribution.DataParallel(devices=devices)


def _divisible(dataset, devices, batch_size):
    """``dataset`` (a :class:`grukit.datasets.Batches` or an ``(x, y)`` tuple of arrays)
    with every batch cut to a multiple of ``devices`` (at most ``devices - 1`` examples of
    a batch are left out), as ``keras.distribution.DataParallel`` requires."""
    from grukit.datasets import Batches

    if isinstance(dataset, (tuple, list)):
        dataset = Batches.of_arrays(dataset, batch_size)
    if not isinstance(dataset, Batches):
        raise TypeError(f"data parallel training needs a grukit.datasets.Batches or (x, y) "
                        f"arrays from dataset(); got {type(dataset).__name__}.")
    return dataset.divisible(devices)


def _variable_devices(model):
    """How many devices the model's first variable lives on (JAX)."""
    value = model.weights[0].value
    sharding = getattr(value, "sharding", None)
    return len(sharding.device_set) if sharding is not None else 1


def _train_state_class():
    import keras

    class TrainState(keras.callbacks.Callback):
        """Best-epoch checkpoint, early stopping and time spent, all persisted in ``out``
        so that a resumed run (BackupAndRestore) continues them."""

        def __init__(self, out, monitor, direction, patience, hparams, seed=0, shuffle_seed=0):
            super().__init__()
            self.out = Path(out)
            self.monitor, self.direction, self.patience = monitor, direction, patience
            self.best_path = self.out / "checkpoints" / "best.weights.h5"
            self.state_path = self.out / "train_state.json"
            self.best, self.best_epoch, self.wait = None, None, 0
            self.epochs_done, self.time_s, self.runs = 0, 0.0, 0
            self.hparams, self.seed, self.shuffle_seed = hparams, seed, shuffle_seed
            # an interrupted run (a backup exists) is continued; otherwise start afresh
            if self.state_path.is_file() and _backup_epoch(self.out / "backup") > 0:
                state = json.loads(self.state_path.read_text())
                if state.get("hparams") not in (None, json.loads(json.dumps(hparams))):
                    raise ValueError(
                        f"{self.out} holds an interrupted run with other hyperparameters; "
                        f"re-run its command to finish it, or use another --out (or delete "
                        f"{self.out}) to start afresh.")
                # (states written before the seeds were kept resume with any)
                was = (state.get("seed", seed), state.get("shuffle_seed", shuffle_seed))
                if was != (seed, shuffle_seed):
                    raise ValueError(
                        f"{self.out} holds an interrupted run with seed {was[0]} and training "
                        f"order seed {was[1]}, not {seed} and {shuffle_seed}: its remaining "
                        f"epochs would continue another run. Re-run its command (--seed "
                        f"{was[0]} --shuffle-seed {was[1]}) to finish it, or use another --out "
                        f"(or delete {self.out}) to start afresh.")
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
                log.info(f"Early stopping: no {self.monitor} improvement for {self.wait} "
                         f"epochs (best {self.best:.5f} at epoch {self.best_epoch + 1})")
                self.model.stop_training = True

        def _save(self):
            _atomic_write_json(self.state_path, {
                "best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "epochs_done": self.epochs_done, "time_s": self.time_s, "runs": self.runs,
                "hparams": self.hparams, "seed": self.seed, "shuffle_seed": self.shuffle_seed})

    return TrainState


def _TrainState(*args, **kwargs):
    return _train_state_class()(*args, **kwargs)
