"""Command line: ``grukit {demo,variants,bench,zoo}`` (also ``python -m grukit``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _demo(args):
    import numpy as np
    import keras

    import grukit
    from grukit.zoo.base import set_seed

    set_seed(args.seed)  # keras.utils.set_random_seed, without importing TensorFlow on JAX/torch
    x = np.random.default_rng(args.seed).standard_normal(
        (args.batch, args.steps, args.features)).astype("float32")
    print(f"grukit {grukit.__version__} on Keras {keras.__version__}, "
          f"backend {keras.backend.backend()}: a batch {x.shape} through every variant "
          f"({args.units} units), keras.layers.RNN(cell) vs grukit.layers.RNN\n")
    header = f"{'variant':8} {'params':>7} {'formula':>7}  {'mean h_T':>9} {'std h_T':>8} {'|RNN-fast|':>10}  paper"
    print(header)
    print("-" * len(header))
    for v in grukit.variants():
        cell = grukit.get_cell(v.name, args.units)
        ref = keras.layers.RNN(cell)
        y = keras.ops.convert_to_numpy(ref(x))
        fast = grukit.layers.GRU(args.units, variant=v.name)
        fast(x)
        fast.set_weights(ref.get_weights())
        diff = np.abs(keras.ops.convert_to_numpy(fast(x)) - y).max()
        formula = v.param_count(args.features, args.units)["total"]
        print(f"{v.name:8} {cell.count_params():>7} {formula:>7}  {y.mean():>9.4f} "
              f"{y.std():>8.4f} {diff:>10.2e}  {v.paper.split(',')[0].split(';')[0]}")
    if not args.no_zoo:
        _demo_zoo()
    return 0


DEMO_REVIEWS = ("A moving, funny and superbly acted film: one of the best of the year.",
                "An overlong, joyless film with wooden acting and a plot that goes nowhere.")


def _demo_zoo():
    """The three zoo models answering from their shipped presets (no data, no network)."""
    import numpy as np

    import grukit.zoo as zoo

    print("\nThe zoo's trained models, from the presets shipped with grukit:\n")
    clf = zoo.SentimentClassifier.from_preset("imdb-sentiment")
    for review, p in zip(DEMO_REVIEWS, clf.predict(list(DEMO_REVIEWS))):
        print(f"imdb-sentiment   P(positive) = {p:.3f}  {review!r}")
    lm = zoo.CharLM.from_preset("char-lm")
    text = lm.generate("ROMEO:", length=160, temperature=0.7, seed=1)
    lines = [ln for ln in ("ROMEO:" + text).splitlines() if ln.strip()][:4]
    print("char-lm          " + "\n                 ".join(lines))
    fc = zoo.Forecaster.from_preset("ett-forecasting", horizon=96)
    pre = fc.preset.metadata["preprocessing"]
    mean, std = np.asarray(pre["mean"]), np.asarray(pre["std"])
    hours = np.arange(fc.lookback)[:, None]
    # a made-up window with a daily cycle around the training data's mean, in its units
    window = mean + std * (0.5 * np.sin(2 * np.pi * hours / 24) + 0.001 * hours)
    ot = fc.predict(window.astype("float32"))[:, pre["columns"].index("OT")]
    print(f"ett-forecasting  OT over the next {fc.horizon} h, from a synthetic "
          f"{fc.lookback}-hour window: {' '.join(f'{v:.1f}' for v in ot[:12:2])} ... "
          f"(min {ot.min():.1f}, max {ot.max():.1f})")


def variants_markdown() -> str:
    """The README's variant table (kept in sync by a test)."""
    import grukit

    rows = ["| variant | cell | paper | equations (h = z*h_prev + (1-z)*h~) | parameters (m inputs, n units) |",
            "|---|---|---|---|---|"]
    for v in grukit.variants():
        eq = v.equations.replace("*", "\\*").replace("|", "\\|").replace("; ", "<br>")
        rows.append(f"| `{v.name}` | `{grukit.CELLS[v.name].__name__}` | {v.paper} | {eq} | {v.param_formula} |")
    return "\n".join(rows) + "\n"


def options_markdown() -> str:
    """The README's table of the cell options (kept in sync by a test)."""
    import grukit

    rows = ["| option (every variant) | what | paper | equations |", "|---|---|---|---|"]
    for o in grukit.cell_options():
        eq = o.equations.replace("*", "\\*").replace("|", "\\|").replace("; ", "<br>")
        rows.append(f"| `{o.argument}` | {o.title} | {o.paper} | {eq} |")
    return "\n".join(rows) + "\n"


def _variants(args):
    import grukit

    if args.markdown:
        print(options_markdown() if args.options else variants_markdown(), end="")
        return 0
    if not args.options:
        for v in grukit.variants():
            print(f"{v.name:7} {v.title:7} {v.param_formula}\n        {v.equations}\n        {v.paper}\n")
        print("Options of every variant (off by default):\n")
    for o in grukit.cell_options():
        print(f"{o.argument}  {o.title}\n        {o.equations}\n        {o.paper}\n")
    return 0


#: The backends ``--backend`` takes; each is also the module to import and the pip extra.
BACKENDS = ("tensorflow", "jax", "torch")


def _leading(argv):
    """``(backend, command)``: the value of a top-level ``--backend`` and the command word
    (``demo``, ``zoo``, ...) of ``argv``, either ``None`` when absent."""
    backend, expect_value = None, False
    for token in argv:
        if expect_value:
            backend, expect_value = token, False
        elif token == "--backend":
            expect_value = True
        elif token.startswith("--backend="):
            backend = token.split("=", 1)[1]
        elif not token.startswith("-"):
            return backend, token
    return backend, None


class _Stdout(logging.Handler):
    """The command line's view of the library's log: INFO lines on the current stdout."""

    def emit(self, record):
        try:
            print(self.format(record), file=sys.stdout, flush=True)
        except Exception:  # pragma: no cover  (a closed stdout)
            self.handleError(record)


def _show_progress():
    """Send grukit's INFO log to stdout: the library logs, only the command prints."""
    logger = logging.getLogger("grukit")
    if not any(isinstance(h, _Stdout) for h in logger.handlers):
        logger.addHandler(_Stdout())
    logger.setLevel(logging.INFO)


def main(argv=None):
    """The ``grukit`` command. Returns the exit status (2 for a user error).

    Example:
        >>> from grukit.__main__ import main
        >>> main(["variants", "--options"])
        norm="layer"  ...
        0
    """
    import importlib.util

    in_process, argv = argv is not None, list(sys.argv[1:] if argv is None else argv)
    backend, command = _leading(argv)
    if backend in BACKENDS:
        if importlib.util.find_spec(backend) is None:
            print(f"grukit: error: --backend {backend} needs {backend}, which is not installed: "
                  f"pip install 'grukit[{backend}]' (or pip install {backend}).",
                  file=sys.stderr)
            return 2
        if "keras" in sys.modules and _loaded_backend() != backend:
            # Keras was imported (by the caller) with another backend: start again.
            if in_process:
                print("grukit: error: --backend must be set before keras is imported",
                      file=sys.stderr)
                return 2
            env = dict(os.environ, KERAS_BACKEND=backend)
            sys.stdout.flush()
            sys.stderr.flush()
            os.execve(sys.executable, [sys.executable, "-m", "grukit", *argv], env)
        os.environ["KERAS_BACKEND"] = backend

    parser = argparse.ArgumentParser(prog="grukit", description=__doc__)
    parser.add_argument("--backend", choices=BACKENDS,
                        help="Keras backend (default: $KERAS_BACKEND or tensorflow)")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="build every variant, run a batch, print a table")
    demo.add_argument("--units", type=int, default=16)
    demo.add_argument("--batch", type=int, default=4)
    demo.add_argument("--steps", type=int, default=20)
    demo.add_argument("--features", type=int, default=8)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-zoo", action="store_true",
                      help="only the cells, not the zoo's trained models")
    demo.set_defaults(func=_demo)

    var = sub.add_parser("variants", help="list the variants (equations, parameter formulas) "
                         "and the options every variant takes")
    var.add_argument("--markdown", action="store_true", help="print the README table")
    var.add_argument("--options", action="store_true",
                     help="only the cell options (norm, zoneout, recurrent_weight_dropout)")
    var.set_defaults(func=_variants)

    from grukit import bench
    from grukit.zoo import cli as zoo_cli

    bench.add_parser(sub)
    # The zoo's models declare their options up front; that imports them (and Keras), so
    # only when the command is `zoo`.
    zoo_cli.add_parser(sub, models=command == "zoo")

    args = parser.parse_args(argv)
    args.argv = argv
    _show_progress()
    try:
        return args.func(args)
    except zoo_cli.MissingDependency as e:
        print(f"grukit {args.command}: error: {e}", file=sys.stderr)
        return 2


def _loaded_backend():
    import keras

    return keras.backend.backend()


if __name__ == "__main__":
    sys.exit(main())
