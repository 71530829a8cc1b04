"""Command line: ``grukit {demo,variants,bench,zoo}`` (also ``python -m grukit``)."""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _demo(args):
    import numpy as np
    import keras

    import grukit

    keras.utils.set_random_seed(args.seed)
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
    return 0


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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="grukit", description=__doc__)
    parser.add_argument("--backend", choices=["tensorflow", "jax", "torch"],
                        help="Keras backend (default: $KERAS_BACKEND or tensorflow)")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="build every variant, run a batch, print a table")
    demo.add_argument("--units", type=int, default=16)
    demo.add_argument("--batch", type=int, default=4)
    demo.add_argument("--steps", type=int, default=20)
    demo.add_argument("--features", type=int, default=8)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)

    var = sub.add_parser("variants", help="list the variants (equations, parameter formulas) "
                         "and the options every variant takes")
    var.add_argument("--markdown", action="store_true", help="print the README table")
    var.add_argument("--options", action="store_true",
                     help="only the cell options (norm, zoneout, recurrent_weight_dropout)")
    var.set_defaults(func=_variants)

    try:
        from grukit import bench
    except ImportError:  # pragma: no cover
        bench = None
    if bench is not None:
        bench.add_parser(sub)

    from grukit.zoo import cli as zoo_cli
    zoo_cli.add_parser(sub)

    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.backend:
        if "keras" in sys.modules and _loaded_backend() != args.backend:
            # `import grukit` (which runs before this) imports keras with the backend of
            # $KERAS_BACKEND; start again with the requested one.
            if argv is not None:
                parser.error("--backend must be set before keras is imported")
            env = dict(os.environ, KERAS_BACKEND=args.backend)
            sys.stdout.flush()
            sys.stderr.flush()
            os.execve(sys.executable, [sys.executable, "-m", "grukit", *args.argv], env)
        os.environ["KERAS_BACKEND"] = args.backend
    return args.func(args)


def _loaded_backend():
    import keras

    return keras.backend.backend()


if __name__ == "__main__":
    sys.exit(main())
