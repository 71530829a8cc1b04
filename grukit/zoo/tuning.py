"""Hyperparameter search over a recipe with keras-tuner (random, Bayesian, Hyperband).

:func:`hypermodel` turns a recipe's :meth:`~grukit.zoo.ZooModel.search_space` and hooks
into a ``keras_tuner.HyperModel``; :func:`tune` runs a resumable search in ``OUT/tune``
(distributable through keras-tuner's ``KERASTUNER_*`` variables), writes the trial table
(``trials.csv`` / ``trials.md``) and the best trial's ``best_hparams.json``, and can compare
the best trial of each value of one hyperparameter. The few keras-tuner internals this
needs are isolated in :mod:`grukit.zoo._tuner_internals`.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
import warnings
from pathlib import Path

from grukit.zoo import _tuner_internals as _internals
from grukit.zoo.base import (TUNERS, _atomic_write_json, _order_seed, _training_dataset,
                             set_seed)

__all__ = ["SearchIncomplete", "hypermodel", "tune"]

log = logging.getLogger(__name__)


class SearchIncomplete(RuntimeError):
    """A distributed search stopped with trials left: every worker was lost.

    The message says how many trials are left and how to resume (start the chief and
    workers again with the same ``--out``); the trial tables written so far are complete.
    ``grukit zoo tune`` reports it as ``error: ...`` and exits with status 1.

    Example:
        >>> from grukit.zoo.tuning import SearchIncomplete
        >>> issubclass(SearchIncomplete, RuntimeError)  # code catching RuntimeError still does
        True
    """


def hypermodel(recipe, data, hparams, quick=False, seed=0, shuffle_seed=None):
    """A ``keras_tuner.HyperModel`` over :meth:`search_space`.

    ``build(hp)`` merges the sampled values into ``hparams`` and calls
    :meth:`build`; ``fit(hp, model, ...)`` trains on the training split and
    validates on the validation split (never the test split), with early
    stopping, and returns the best epoch's metrics plus ``time_s``. ``seed`` and
    ``shuffle_seed``: as in :func:`tune`.

    Example:
        >>> import keras_tuner
        >>> import grukit.zoo
        >>> ett = grukit.zoo.get("ett-forecasting")
        >>> hm = ett.hypermodel(ett.load_data(), ett.hparams(quick=True), quick=True)
        >>> hp = keras_tuner.HyperParameters()
        >>> model = hm.build(hp)                   # each choice's first value
        >>> hp.values["variant"], model.lookback
        ('gru', 96)
        >>> tuner = keras_tuner.RandomSearch(hm, objective="val_loss", max_trials=3,
        ...                                  directory="runs/search")
    """
    import keras
    import keras_tuner

    order_seed = _order_seed(seed, shuffle_seed)

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
                _training_dataset(recipe, data, merged, "train", order_seed),
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
            log.info(f"[{os.environ.get('KERASTUNER_TUNER_ID', 'tuner0')}] trial done: "
                     f"{recipe.objective}={metrics[recipe.objective]:.5f} "
                     f"({elapsed:.1f}s) {json.dumps(hp.values, sort_keys=True)}")
            return metrics

    return _ZooHyperModel()


def tune(recipe, hparams, data, out, tuner="random", max_trials=10, epochs=None, seed=0,
         quick=False, fixed=None, verbose=1, time_limit=None, compare=None,
         report_only=False, worker_timeout=None, shuffle_seed=None):
    """Search the hyperparameters; resumable and distributable.

    The search state lives in ``OUT/tune/<tuner>[-quick]`` (keras-tuner,
    ``overwrite=False``): re-running the same command resumes it. Selection is on
    the validation split; the test split is not touched. Under keras-tuner's
    distribution variables (``KERASTUNER_TUNER_ID=chief|tuner0|tuner1...``,
    ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``) the chief serves the
    oracle until the search is done, the workers run trials. A worker that stops
    answering for ``worker_timeout`` seconds (killed, its machine gone) is taken for
    lost and its trial runs again on another worker; if no worker is left, the chief
    stops (:class:`SearchIncomplete` saying how to resume, after writing the tables). Resuming
    never runs a finished trial again.

    Args:
        hparams: base hyperparameters (:meth:`hparams`); the search overrides its keys.
        data: from :meth:`load_data`.
        out: output directory.
        tuner: ``"random"``, ``"bayesian"`` or ``"hyperband"``.
        max_trials: number of trials (Hyperband: a cap on them).
        epochs: epochs per trial (Hyperband: ``max_epochs``); default ``hparams["epochs"]``.
        seed: the search's random seed: keras-tuner's sampling, and in every trial
            ``keras.utils.set_random_seed`` before the model is built and, unless
            ``shuffle_seed`` is given, the training order (:meth:`dataset`'s ``seed``).
        shuffle_seed: ``None`` (default) or an integer >= 0, the training order's own seed.
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
            when it stopped are listed with status ``RUNNING`` and no score (``INVALID``,
            with the reason, for the trial of a lost worker, queued to run again).
        worker_timeout: distributed search, chief: seconds without a sign of life from a
            worker (a worker running a trial sends one every 2 s) after which its trial
            goes back to the queue. Default: ``$GRUKIT_WORKER_TIMEOUT``, else 120; at
            least 10.

    Returns:
        The trial rows (list of dicts, best first) on the chief or a single
        process, written to ``OUT/trials.csv``, ``OUT/trials.md`` and the best
        trial's hyperparameters to ``OUT/best_hparams.json``; ``[]`` on a worker.

    Raises:
        SearchIncomplete: (chief) every worker was lost with trials left; the message says
            which and how to resume.

    Example:
        >>> from pathlib import Path
        >>> import grukit.zoo
        >>> ett = grukit.zoo.get("ett-forecasting")
        >>> hp = ett.hparams(quick=True, overrides={"horizon": 48, "batch_size": 512})
        >>> rows = ett.tune(hp, ett.load_data(), "runs/ett-tune", max_trials=1, epochs=1,
        ...                 quick=True, verbose=0)
        >>> len(rows), rows[0]["status"]
        (1, 'COMPLETED')
        >>> sorted(p.name for p in Path("runs/ett-tune").iterdir())
        ['best_hparams.json', 'trials.csv', 'trials.md', 'tune']
    """
    import keras_tuner

    if tuner not in TUNERS:
        raise ValueError(f"Unknown tuner {tuner!r}. Expected one of: {', '.join(TUNERS)}.")
    if not isinstance(max_trials, int) or max_trials < 1:
        raise ValueError(f"max_trials must be a positive integer; got {max_trials!r}.")
    if time_limit is not None and not (isinstance(time_limit, (int, float))
                                       and not isinstance(time_limit, bool)
                                       and time_limit > 0):
        raise ValueError(f"time_limit must be a positive number of seconds or None; "
                         f"got {time_limit!r}.")
    worker_timeout = _worker_timeout(worker_timeout)
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
    objective = keras_tuner.Objective(recipe.objective, direction=recipe.direction)
    common = dict(hypermodel=hypermodel(recipe, data, hparams, quick, seed, shuffle_seed),
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
    cls = _internals.tuner_class(classes[tuner], worker_timeout)
    if tuner == "hyperband":
        search = cls(max_epochs=max(2, epochs), factor=3, **common)
        search.oracle.max_trials = max_trials
    else:
        search = cls(max_trials=max_trials, **common)
    role = os.environ.get("KERASTUNER_TUNER_ID", "tuner0")
    if time_limit is not None and not (_internals.has_chief()
                                       and not _internals.is_chief()):
        _stop_starting_after(search.oracle, time.time() + time_limit)
    if _internals.is_chief():
        log.info(f"[chief] serving the {tuner} oracle on {os.environ['KERASTUNER_ORACLE_IP']}:"
                 f"{os.environ['KERASTUNER_ORACLE_PORT']} for {max_trials} trials")
    if report_only:
        if _internals.has_chief():
            raise ValueError("report_only reads the search state directly: run it without "
                             "the KERASTUNER_* distribution variables.")
        if not search.oracle.trials:
            raise ValueError(f"report_only: no search state in {out / 'tune'} for this "
                             f"tuner ({tuner}{'-quick' if quick else ''}); nothing to report.")
    else:
        search.search(epochs=epochs, verbose=verbose)
    if _internals.has_chief() and not _internals.is_chief():
        log.info(f"[{role}] no more trials; worker done")
        return []
    rows = _trial_rows(recipe, search.oracle)
    _write_trials(recipe, rows, out)
    best = [r for r in rows if r["status"] == "COMPLETED"]
    if best:
        best_hparams = dict(hparams)
        best_hparams.update({k: v for k, v in best[0]["hparams"].items()
                             if not k.startswith("tuner/")})  # Hyperband's bookkeeping
        # the epochs the trials trained (--epochs, or Hyperband's budget of that trial),
        # not the profile's: `zoo train --hparams` then trains what the search measured
        best_hparams["epochs"] = int(best[0]["hparams"].get("tuner/epochs", epochs))
        _atomic_write_json(out / "best_hparams.json", best_hparams)
    if search.unfinished:
        raise SearchIncomplete(search.unfinished)
    if compare:
        _compare(recipe, search, rows, compare, data, hparams, out)
    return rows


def _worker_timeout(value):
    """``value``, else ``$GRUKIT_WORKER_TIMEOUT``, else the default; checked."""
    where = "worker_timeout"
    if value is None and os.environ.get("GRUKIT_WORKER_TIMEOUT"):
        where, value = "GRUKIT_WORKER_TIMEOUT", os.environ["GRUKIT_WORKER_TIMEOUT"]
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"GRUKIT_WORKER_TIMEOUT must be a number of seconds; got "
                             f"{value!r}.") from None
    if value is None:
        return _internals.DEFAULT_WORKER_TIMEOUT
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not value >= _internals.MIN_WORKER_TIMEOUT or math.isinf(value)):
        raise ValueError(f"{where} must be a finite number of seconds >= "
                         f"{_internals.MIN_WORKER_TIMEOUT:g} (five heartbeats of a worker); "
                         f"got {value!r}.")
    return float(value)


def _compare(recipe, search, rows, key, data, hparams, out):
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
        scores = {split: recipe.evaluate(model, data, merged, split)
                  for split in ("validation", "test")}
        table.append({key: value, "trial": r["trial"], "params": int(model.count_params()),
                      recipe.objective: r[recipe.objective], "scores": scores,
                      "hparams": r["hparams"]})
        log.info(f"[compare] {key}={value} trial {r['trial']}: " + "  ".join(
            f"{split} " + " ".join(f"{m}={v:.5g}" for m, v in sc.items()
                                   if isinstance(v, float))
            for split, sc in scores.items()))
    metrics = [m for m, v in table[0]["scores"]["test"].items() if isinstance(v, float)]
    header = [key, "trial", "params", recipe.objective,
              *[f"{split}_{m}" for split in ("validation", "test") for m in metrics]]
    lines = [[str(t[key]), t["trial"], str(t["params"]), f"{t[recipe.objective]:.5f}",
              *[f"{t['scores'][split][m]:.5f}" for split in ("validation", "test")
                for m in metrics]] for t in table]
    _write_table(out / f"compare_{key}", header, lines)
    _atomic_write_json(out / f"compare_{key}.json", table)
    return table


def _trial_rows(recipe, oracle):
    rows = []
    for trial in oracle.trials.values():
        metrics = trial.metrics
        score = trial.score
        extra = {key: (float(metrics.get_last_value(key)) if metrics.exists(key) else None)
                 for key in ("params", "time_s")}
        rows.append({"trial": trial.trial_id, "status": str(trial.status),
                     "hparams": dict(trial.hyperparameters.values),
                     recipe.objective: None if score is None else float(score), **extra})
    sign = 1 if recipe.direction == "min" else -1
    rows.sort(key=lambda r: (r[recipe.objective] is None,
                             sign * (r[recipe.objective] or 0.0), r["trial"]))
    return rows


def _write_trials(recipe, rows, out):
    first = [k for k in ("variant", "units") if any(k in r["hparams"] for r in rows)]
    keys = first + sorted({k for r in rows for k in r["hparams"]
                           if k not in first and not k.startswith("tuner/")})
    header = ["trial", "status", *keys, "params", recipe.objective, "time_s"]

    def cell(value, fmt):
        if value is None:
            return ""
        if isinstance(value, float):
            return format(value, fmt)
        return str(value)

    table = [[r["trial"], r["status"], *[cell(r["hparams"].get(k), ".4g") for k in keys],
              cell(None if r["params"] is None else int(r["params"]), ""),
              cell(r[recipe.objective], ".5f"), cell(r["time_s"], ".1f")] for r in rows]
    _write_table(out / "trials", header, table)


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
                log.info(f"[{tuner_id}] time limit reached: no new trials "
                         f"({len(oracle.trials)} started)")
                oracle.max_trials = limit
        return create(tuner_id)

    oracle.create_trial = create_trial
