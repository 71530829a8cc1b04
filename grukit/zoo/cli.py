"""``grukit zoo {list,train,tune,evaluate,export,predict}``: the zoo's command line.

Examples::

    $ grukit zoo list
    $ grukit zoo train ett-forecasting --quick --out runs/ett          # preset in runs/ett/preset
    $ grukit --backend jax zoo train ett-forecasting --horizon 192 --variant mgu2 --set units=256
    $ grukit zoo tune ett-forecasting --tuner bayesian --max-trials 20 --out runs/ett-tune
    $ grukit zoo tune ett-forecasting --max-trials 40 --time-limit 3600 --out runs/ett-tune
    $ grukit zoo tune ett-forecasting --max-trials 40 --report --compare variant --out runs/ett-tune
    $ grukit zoo evaluate ett-forecasting --preset runs/ett --split test
    $ grukit zoo export ett-forecasting --out exports/ett              # TF SavedModel
    $ grukit zoo predict ett-forecasting --index 0                     # or --input window.csv

Options that belong to one model (ETT's ``--horizon``, ``--data``, ``--input``)
come after its name; ``grukit zoo train NAME --help`` lists them. Bad input
(unknown model, variant or hyperparameter, a bad ``--horizon``, missing data)
ends with ``grukit zoo ...: error: <what was wrong and what was expected>`` and
exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

COMMANDS = ("train", "tune", "evaluate", "export", "predict")
HELP = {
    "train": "train a zoo model and write a preset (resumes an interrupted run in --out)",
    "tune": "search hyperparameters with keras-tuner (resumable; distributable)",
    "evaluate": "measure a preset on the test (or validation) split",
    "export": "export a preset as a TensorFlow SavedModel serving raw inputs (atomic, verified)",
    "predict": "predict with a preset (model-specific inputs; see NAME --help)",
}


def add_parser(sub, models=True):
    """Add ``zoo`` and its commands to the ``grukit`` command's subparsers ``sub``.

    Every model's options are declared here, under ``grukit zoo COMMAND NAME`` (so
    ``grukit zoo train ett-forecasting --help`` lists them and the command line is parsed
    once). That imports the recipes, and with them Keras: with ``models=False`` only the
    commands are declared (enough for ``grukit --help``, which then imports no backend).

    Example:
        >>> import argparse
        >>> from grukit.zoo.cli import add_parser
        >>> parser = argparse.ArgumentParser(prog="grukit")
        >>> zoo = add_parser(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["zoo", "train", "ett-forecasting", "--quick"])
        >>> args.zoo_command, args.name, args.quick
        ('train', 'ett-forecasting', True)
    """
    zoo = sub.add_parser("zoo", help="the model zoo: list, train, tune, evaluate, export, predict",
                         description=__doc__.split("\n\n")[0])
    if not models:
        return zoo
    import grukit.zoo as zoo_models

    recipes = [zoo_models.get(name) for name in zoo_models.CATALOGUE]
    actions = zoo.add_subparsers(dest="zoo_command", required=True, metavar="COMMAND")
    p = actions.add_parser("list", help="list the zoo's models and their status")
    p.set_defaults(func=_list)
    for command in COMMANDS:
        p = actions.add_parser(command, help=HELP[command], description=HELP[command],
                               epilog=f"Options of a model: grukit zoo {command} NAME --help.")
        names = p.add_subparsers(dest="name", required=True, metavar="NAME",
                                 title="models (grukit zoo list)")
        for recipe in recipes:
            m = names.add_parser(recipe.name, help=recipe.description, allow_abbrev=False,
                                 aliases=[recipe.name.replace("-", "_")],
                                 description=f"{HELP[command]}: {recipe.description}")
            common_options(m, command)
            recipe.add_arguments(m, command)
            m.set_defaults(func=_dispatch, zoo_command=command, name=recipe.name)
    return zoo


def common_options(p, command):
    """Add the options every zoo model accepts for ``command`` to ``p``.

    Example:
        >>> import argparse
        >>> from grukit.zoo.cli import common_options
        >>> parser = argparse.ArgumentParser()
        >>> common_options(parser, "train")
        >>> args = parser.parse_args(["--quick", "--epochs", "2", "--set", "units=64"])
        >>> args.quick, args.epochs, args.set_
        (True, 2, ['units=64'])
    """
    if command in ("train", "tune", "evaluate", "predict"):
        p.add_argument("--data-dir", metavar="DIR",
                       help="local data directory (default: $GRUKIT_DATA_DIR, then the "
                            "loader's cache/download)")
    if command in ("train", "tune"):
        p.add_argument("--quick", action="store_true", default=None,
                       help="a CPU run of seconds to minutes on a data subset (tests, demos)")
        p.add_argument("--profile", metavar="NAME",
                       help="a hyperparameter profile of hparams.json (e.g. ETT's 'preset-h336', "
                            "the committed horizon-336 preset's); --quick is --profile quick")
        p.add_argument("--epochs", type=int, metavar="N", help="epochs (default: the profile's)")
        p.add_argument("--variant", metavar="V", help="grukit variant (gru, mgu2, mingru, ...)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="set_",
                       help="override a hyperparameter, a field of the model's config "
                            "(config.py; repeatable)")
        p.add_argument("--seed", type=int,
                       help="random seed: initial weights, dropout and (without "
                            "--shuffle-seed) the training order (default 0)")
        p.add_argument("--shuffle-seed", type=int, metavar="S",
                       help="the training order's own seed, whatever --seed (default: "
                            "--seed's)")
    if command == "train":
        p.add_argument("--out", metavar="DIR", help="run directory (default runs/NAME); the "
                       "preset goes to DIR/preset")
        p.add_argument("--hparams", metavar="JSON", help="start from these hyperparameters "
                       "(e.g. a search's best_hparams.json)")
        p.add_argument("--overwrite", action="store_true",
                       help="retrain from scratch when DIR holds a finished run (an "
                            "interrupted run always resumes)")
        p.add_argument("--data-parallel", action=argparse.BooleanOptionalAction, default=None,
                       help="data parallel over all devices (JAX; default: on when JAX sees "
                            "more than one device)")
    if command == "tune":
        p.add_argument("--out", metavar="DIR", help="search directory (default runs/NAME-tune); "
                       "re-running the same command resumes the search")
        p.add_argument("--tuner", choices=("random", "bayesian", "hyperband"),
                       help="search algorithm (default random)")
        p.add_argument("--max-trials", type=int, metavar="N", help="trials (default 10)")
        p.add_argument("--time-limit", type=float, metavar="SECONDS",
                       help="start no trial after this many seconds (running trials finish; "
                            "re-running the command resumes towards --max-trials)")
        p.add_argument("--worker-timeout", type=float, metavar="SECONDS",
                       help="distributed search (chief): a worker silent this long is taken "
                            "for lost and its trial goes back to the queue (default: "
                            "$GRUKIT_WORKER_TIMEOUT, else 120)")
        p.add_argument("--compare", metavar="HPARAM",
                       help="after the search, score the best trial of each value of this "
                            "searched hyperparameter (e.g. variant) on validation and test "
                            "with its own checkpoint: OUT/compare_HPARAM.csv/.md/.json")
        p.add_argument("--report", action="store_true", default=None,
                       help="run no trial: write the tables (and --compare) from the search "
                            "state in --out as it is (e.g. after the search was stopped)")
    if command in ("evaluate", "export", "predict"):
        p.add_argument("--preset", metavar="DIR",
                       help="a preset (or a train --out directory); default: the committed one")
    if command == "evaluate":
        p.add_argument("--split", choices=("test", "validation"), help="default test")
    if command == "export":
        p.add_argument("--out", metavar="DIR", help="SavedModel directory (required)")
        p.add_argument("--no-verify", action="store_true", default=None,
                       help="skip loading the export in a fresh process to check it")


DEFAULTS = {"quick": False, "seed": 0, "shuffle_seed": None, "tuner": "random", "max_trials": 10,
            "time_limit": None, "split": "test", "no_verify": False, "set_": None}


class _Fail(Exception):
    pass


class MissingDependency(ImportError):
    """An optional package a command needs is not installed; the message names the
    ``pip install`` that fixes it (see :func:`require`)."""


def require_installed(module, extra, what):
    """Raise :class:`MissingDependency` (naming ``pip install 'grukit[extra]'``) unless
    ``module`` is installed; does not import it.

    Example:
        >>> from grukit.zoo.cli import require_installed
        >>> require_installed("json", "zoo", "grukit zoo tune")         # installed: nothing happens
        >>> require_installed("no_such_module", "zoo", "grukit zoo tune")
        Traceback (most recent call last):
        grukit.zoo.cli.MissingDependency: grukit zoo tune needs no_such_module, which is not
        installed: pip install 'grukit[zoo]' (or pip install no-such-module).
    """
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependency(
            f"{what} needs {module}, which is not installed: pip install 'grukit[{extra}]' "
            f"(or pip install {module.replace('_', '-')}).")


def require(module, extra, what):
    """Import ``module`` or raise :class:`MissingDependency` naming ``pip install
    'grukit[extra]'``.

    Example:
        >>> from grukit.zoo.cli import require
        >>> require("json.decoder", "zoo", "--json").__name__
        'json.decoder'
        >>> require("no_such_module.pyplot", "plot", "--plot")
        Traceback (most recent call last):
        grukit.zoo.cli.MissingDependency: --plot needs no_such_module, which is not installed:
        pip install 'grukit[plot]' (or pip install no_such_module).
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise MissingDependency(
            f"{what} needs {top}, which is not installed: pip install 'grukit[{extra}]' "
            f"(or pip install {top}).") from None


#: What each command needs beyond Keras and a backend: (module, extra).
NEEDS = {"tune": [("keras_tuner", "zoo")], "export": [("tensorflow", "zoo")]}


def _dispatch(opts):
    import grukit.zoo as zoo
    from grukit.zoo.tuning import SearchIncomplete

    command, recipe = opts.zoo_command, zoo.get(opts.name)
    prog = f"grukit zoo {command} {recipe.name}"
    for key, value in DEFAULTS.items():
        if getattr(opts, key, None) is None and hasattr(opts, key):
            setattr(opts, key, value)
    try:
        for module, extra in NEEDS.get(command, []):
            require_installed(module, extra, f"grukit zoo {command}")
        return {"train": _train, "tune": _tune, "evaluate": _evaluate, "export": _export,
                "predict": _predict}[command](recipe, opts, command)
    except (ValueError, FileNotFoundError, FileExistsError, MissingDependency, _Fail) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except SearchIncomplete as e:  # not the user's error: the workers were lost
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1


def _overrides(recipe, opts, command):
    if getattr(opts, "profile", None) == "quick":
        opts.quick, opts.profile = True, None
    if getattr(opts, "quick", False) and getattr(opts, "profile", None):
        raise ValueError(f"--quick and --profile {opts.profile} exclude each other.")
    data_options, overrides = recipe.options_from_args(opts, command)
    for item in opts.set_ or []:
        if "=" not in item:
            raise ValueError(f"--set takes KEY=VALUE; got {item!r}.")
        from grukit.zoo.base import parse_value

        key, value = item.split("=", 1)
        overrides[key.strip()] = parse_value(value.strip())
    if getattr(opts, "variant", None):
        from grukit.variants import get_variant

        overrides["variant"] = get_variant(opts.variant).name
    return data_options, overrides


def _command(opts):
    argv = opts.argv if opts.argv is not None else sys.argv[1:]
    return "grukit " + shlex.join(argv)


def _header(recipe, what):
    import keras

    print(f"{what} {recipe.name} on Keras {keras.__version__}, backend {keras.backend.backend()}",
          flush=True)


def _check_seeds(opts):
    """Bad seeds are named before any data is read."""
    for flag, value in (("--seed", opts.seed), ("--shuffle-seed", opts.shuffle_seed)):
        if value is not None and value < 0:
            raise ValueError(f"{flag} must be an integer >= 0; got {value}.")


def _train(recipe, opts, command):
    _check_seeds(opts)
    data_options, overrides = _overrides(recipe, opts, command)
    base = None
    if opts.hparams:
        with open(opts.hparams) as f:
            base = json.load(f)
    hparams = recipe.hparams(quick=opts.quick, overrides=overrides, base=base,
                             profile=opts.profile)
    if opts.epochs is not None and opts.epochs < 1:
        raise ValueError(f"--epochs must be a positive integer; got {opts.epochs}.")
    data = recipe.load_data(data_dir=opts.data_dir, **data_options)
    out = opts.out or os.path.join("runs", recipe.name)
    _header(recipe, "Training")
    print("hyperparameters: " + json.dumps(dict(hparams, epochs=opts.epochs or hparams["epochs"]),
                                           sort_keys=True), flush=True)
    recipe.train(hparams, data, out, epochs=opts.epochs, seed=opts.seed,
                 shuffle_seed=opts.shuffle_seed, data_parallel=opts.data_parallel,
                 quick=opts.quick, command=_command(opts),
                 profile=opts.profile, overwrite=opts.overwrite)
    return 0


def _tune(recipe, opts, command):
    _check_seeds(opts)
    data_options, overrides = _overrides(recipe, opts, command)
    fixed = {k: v for k, v in overrides.items() if k != "horizon"}
    hparams = recipe.hparams(quick=opts.quick, overrides=overrides, profile=opts.profile)
    if opts.max_trials < 1:
        raise ValueError(f"--max-trials must be a positive integer; got {opts.max_trials}.")
    if opts.time_limit is not None and not opts.time_limit > 0:
        raise ValueError(f"--time-limit must be a positive number of seconds; "
                         f"got {opts.time_limit}.")
    if opts.epochs is not None and opts.epochs < 1:
        raise ValueError(f"--epochs must be a positive integer; got {opts.epochs}.")
    if opts.worker_timeout is not None:
        from grukit.zoo import _tuner_internals

        if not _tuner_internals.MIN_WORKER_TIMEOUT <= opts.worker_timeout < float("inf"):
            raise ValueError(f"--worker-timeout must be a finite number of seconds >= "
                             f"{_tuner_internals.MIN_WORKER_TIMEOUT:g}; got {opts.worker_timeout}.")
    data = recipe.load_data(data_dir=opts.data_dir, **data_options)
    out = opts.out or os.path.join("runs", f"{recipe.name}-tune")
    _header(recipe, f"Tuning ({opts.tuner}, {opts.max_trials} trials)")
    rows = recipe.tune(hparams, data, out, tuner=opts.tuner, max_trials=opts.max_trials,
                       epochs=opts.epochs, seed=opts.seed, shuffle_seed=opts.shuffle_seed,
                       quick=opts.quick, fixed=fixed,
                       time_limit=opts.time_limit, compare=opts.compare,
                       report_only=bool(opts.report), worker_timeout=opts.worker_timeout)
    if rows:
        print()
        print((open(os.path.join(out, "trials.md")).read()).rstrip())
        print(f"\n{len(rows)} trials; table in {os.path.join(out, 'trials.csv')} and trials.md, "
              f"best hyperparameters in {os.path.join(out, 'best_hparams.json')} "
              f"(grukit zoo train {recipe.name} --hparams {os.path.join(out, 'best_hparams.json')})")
    return 0


def _evaluate(recipe, opts, command):
    data_options, _ = recipe.options_from_args(opts, command)
    _header(recipe, f"Evaluating ({opts.split})")
    metrics, metadata = recipe.evaluate_preset(opts.preset, split=opts.split,
                                               data_dir=opts.data_dir, **data_options)
    recorded = metadata.get("metrics", {}).get(opts.split, {})
    width = max([10] + [len(key) for key in metrics])
    print(f"{'metric':>{width}} {'measured':>12} {'in preset':>12}")
    for key, value in metrics.items():
        ref = recorded.get(key)
        print(f"{key:>{width}} {value:>12.6g} {'' if ref is None else format(ref, '.6g'):>12}")
    return 0


def _export(recipe, opts, command):
    if not opts.out:
        raise ValueError("--out DIR is required: where to write the SavedModel.")
    recipe.options_from_args(opts, command)  # checks model options (ETT: --horizon vs --preset)
    recipe.export(opts.out, preset=opts.preset, verify=not opts.no_verify)
    return 0


def _predict(recipe, opts, command):
    data_options, _ = recipe.options_from_args(opts, command)
    model = recipe.load(opts.preset)
    return recipe.run_predict(model, opts,
                              lambda: recipe.load_data(data_dir=opts.data_dir, **data_options),
                              sys.stdout, sys.stderr)


def _list(args):
    import grukit.zoo as zoo

    entries = zoo.list()
    width = max(len(e.name) for e in entries)
    print(f"{'model':{width}}  {'status':8}  description")
    for e in entries:
        print(f"{e.name:{width}}  {e.status:8}  {e.description}")
    return 0
