"""``grukit bench``: training and inference throughput, every variant x backend x implementation.

Each configuration runs in its own process (a fresh backend, nothing shared),
warm-up steps are excluded, and the figure is the median over ``--repeats``
timed blocks of ``--steps-per-repeat`` steps. Ratios are computed between
configurations of the same run only. Results go to ``OUT/results.json``,
``OUT/results.md`` and ``OUT/results.png``.

Implementations:

* ``keras_rnn``  -- ``keras.layers.RNN(grukit cell)``: the plain-cell baseline.
* ``grukit``     -- ``grukit.layers.RNN(cell)`` with its defaults (minGRU:
  sequential on CPU, parallel scan on an accelerator).
* ``grukit_par`` -- minGRU only: ``grukit.layers.RNN(cell, parallel=True)``.
* ``keras_gru``  -- ``keras.layers.GRU`` (variant ``gru`` only).
* ``torch_gru``  -- ``torch.nn.GRU`` in plain PyTorch (variant ``gru`` only;
  reported under backend ``torch-native``), the outside reference.
* ``grukit_layer``, ``grukit_rms``, ``grukit_zoneout``, ``grukit_weight_drop``
  -- ``grukit`` with one cell option (``norm="layer"``, ``norm="rms"``,
  ``zoneout=0.1``, ``recurrent_weight_dropout=0.25``; not in the default
  ``--impls``): the speed cost of each option, as the ratio to ``grukit``.
* ``grukit_reset_after`` -- ``grukit`` with ``reset_after=True`` for the
  variants whose default is the papers' reset-before form (GRU1-3, the MGUs;
  not in the default ``--impls``). The gate then scales ``h U_h + b'_h``, so
  the candidate's recurrent matmul joins the gates' in one matmul per step:
  not the papers' equations, reported as ratios to ``grukit`` of the same
  variant and to ``grukit`` ``gru``.

The model is ``Input(T, features) -> recurrent layer (last state) -> Dense(1)``
trained with Adam on MSE; a training step is one ``train_on_batch``, an
inference step one ``predict_on_batch`` (compiled functions on every backend).

The machine's own limit is measured in the same run, in its own process under
the same environment (pinning, thread count) as the configurations
(:func:`machine_limit`):

* ``recurrent`` -- a dependent chain of the recurrent step's matmul and its
  tanh, ``y <- tanh(h @ U); h <- sum of y's k_h column blocks`` (every column
  is used, so no compiler can drop any), with ``h`` ``(batch, units)`` and ``U``
  ``(units, k_h * units)``, for every ``k_h`` in the plan (3 for the GRU);
* ``sgemm`` -- one large float32 matmul (``--sgemm-size``, default 2048).

Each is timed with every installed library (NumPy, PyTorch, JAX under
``jit``; the best of 5 blocks of at least ``--limit-min-time`` seconds) and
the best rate is the limit. Each training configuration's rate is
converted to matmul GFLOP/s with :func:`train_flops` and reported as a
fraction of the recurrent limit of its own ``k_h`` and of the sgemm limit, so
a fraction means the same on any machine.

Example::

    $ grukit bench --variants gru mgu mingru --backends jax torch --steps 100 --out runs/bench
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ALL_BACKENDS = ("tensorflow", "jax", "torch")
ALL_IMPLS = ("keras_rnn", "grukit", "grukit_par", "keras_gru", "torch_gru")
# grukit.layers.RNN with one cell option each (grukit.cell_options()), or with
# reset_after=True where the variant's default is the papers' reset-before form.
OPTION_IMPLS = {"grukit_layer": {"norm": "layer"}, "grukit_rms": {"norm": "rms"},
                "grukit_zoneout": {"zoneout": 0.1},
                "grukit_weight_drop": {"recurrent_weight_dropout": 0.25},
                "grukit_reset_after": {"reset_after": True}}


def add_parser(sub):
    p = sub.add_parser("bench", help="benchmark variants x backends x implementations",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", nargs="+", default=None, help="default: all")
    p.add_argument("--backends", nargs="+", default=list(ALL_BACKENDS), choices=ALL_BACKENDS)
    p.add_argument("--impls", nargs="+", default=list(ALL_IMPLS),
                   choices=ALL_IMPLS + tuple(OPTION_IMPLS))
    p.add_argument("--steps", nargs="+", type=int, default=[100, 1000],
                   help="sequence lengths T (default 100 1000)")
    p.add_argument("--mingru-steps", nargs="*", type=int, default=[1024, 4096],
                   help="extra lengths for minGRU and the gru reference (default 1024 4096)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--units", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps-per-repeat", type=int, default=0,
                   help="steps per timed block (default: about 1 s of work)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--timeout", type=int, default=900, help="seconds per configuration")
    p.add_argument("--modes", nargs="+", default=["train", "infer"], choices=["train", "infer"])
    p.add_argument("--out", default="benchmarks/latest")
    p.add_argument("--machine", default=None, help="machine description for the report")
    p.add_argument("--sgemm-size", type=int, default=2048,
                   help="side of the square float32 matmul of the sgemm limit (default 2048)")
    p.add_argument("--limit-min-time", type=float, default=0.3,
                   help="seconds per timed block of the machine's limit, the best of 5 blocks "
                        "counting (default 0.3)")
    p.add_argument("--no-limit", dest="limit", action="store_false",
                   help="do not measure the machine's limit (no fractions in the report)")
    p.set_defaults(func=run)
    return p


# ----------------------------------------------------------------- planning
def plan(args):
    """The list of configurations to measure (dicts)."""
    from grukit.variants import get_variant, variants

    names = [get_variant(n).name for n in args.variants] if args.variants else [
        v.name for v in variants()]
    configs = []
    for variant in names:
        lengths = list(args.steps)
        if variant in ("mingru", "gru"):
            lengths += [t for t in args.mingru_steps if t not in lengths]
        for T in lengths:
            long_run = T not in args.steps  # the extra lengths: minGRU story only
            for impl in args.impls:
                if impl in ("keras_gru", "torch_gru") and variant != "gru":
                    continue
                if impl == "grukit_par" and variant != "mingru":
                    continue
                if impl == "grukit_weight_drop" and not get_variant(variant).blocks_with("h"):
                    continue  # no recurrent kernel (minGRU)
                if impl == "grukit_reset_after" and (not get_variant(variant).has_reset
                                                     or get_variant(variant).reset_after_default):
                    continue  # no reset gate, or already the variant's default (GRU)
                if long_run and impl not in ("grukit", "grukit_par"):
                    continue
                backends = ["torch-native"] if impl == "torch_gru" else args.backends
                if impl == "torch_gru" and "torch" not in args.backends:
                    continue
                for backend in backends:
                    configs.append(dict(variant=variant, impl=impl, backend=backend, T=T,
                                        batch=args.batch, features=args.features,
                                        units=args.units))
    return configs


# ------------------------------------------------------------------- FLOPs
def matmul_blocks(variant):
    """``(k_x, k_h)``: column blocks of the input and recurrent kernels (3 and 3 for the GRU)."""
    from grukit.variants import get_variant

    spec = get_variant(variant)
    return len(spec.blocks_with("x")), len(spec.blocks_with("h"))


def train_flops(variant, batch, T, features, units):
    """Matmul FLOPs of one training step of the recurrent layer (forward + backward).

    With ``B = batch``, ``m = features``, ``n = units`` and ``k_x``, ``k_h``
    the variant's input and recurrent column blocks (:func:`matmul_blocks`)::

        forward   x W : 2 B T m (k_x n)     h U  : 2 B T n (k_h n)
        backward  dW  : 2 B T m (k_x n)     dU   : 2 B T n (k_h n)
                                            dh   : 2 B T (k_h n) n
        total = 2 B T n (2 k_x m + 3 k_h n)

    Only what training needs is counted: no gradient for the model's input
    ``x``, nothing for elementwise gate arithmetic, Li-GRU's normalisation or
    the ``Dense(1)`` head. For the GRU at batch 64, T 100, 32 features and 128
    units that is 2.20 GFLOP per step.
    """
    kx, kh = matmul_blocks(variant)
    return 2 * batch * T * units * (2 * kx * features + 3 * kh * units)


# ------------------------------------------------------------------ worker
def _time_steps(fn, warmup, repeats, per_repeat):
    for _ in range(warmup):
        fn()
    if per_repeat <= 0:  # calibrate to ~1 s per block
        t0 = time.perf_counter()
        fn()
        per_repeat = max(1, min(50, int(1.0 / max(time.perf_counter() - t0, 1e-4))))
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(per_repeat):
            fn()
        rates.append(per_repeat / (time.perf_counter() - t0))
    return statistics.median(rates), rates


def keras_model(impl, variant, batch, T, features, units, **cell_options):
    """The benchmark's model, ``Input((T, features), batch_size=batch) -> recurrent layer
    (last state) -> Dense(1)``, compiled with Adam on MSE.

    ``impl`` is a Keras implementation of the module docstring (``keras_gru``,
    ``keras_rnn``, ``grukit``, ``grukit_par`` or one of :data:`OPTION_IMPLS`);
    ``cell_options`` go to ``grukit.get_cell`` after the implementation's own.
    """
    import keras

    import grukit

    options = {**OPTION_IMPLS.get(impl, {}), **cell_options}
    if impl == "keras_gru":
        layer = keras.layers.GRU(units)
    elif impl == "keras_rnn":
        layer = keras.layers.RNN(grukit.get_cell(variant, units, **options))
    else:
        layer = grukit.layers.RNN(grukit.get_cell(variant, units, **options),
                                  parallel=True if impl == "grukit_par" else "auto")
    inp = keras.Input((T, features), batch_size=batch)
    model = keras.Model(inp, keras.layers.Dense(1)(layer(inp)))
    model.compile(optimizer="adam", loss="mse")
    return model


def _worker_keras(cfg, modes, warmup, repeats, per_repeat):
    import numpy as np
    import keras

    from grukit.zoo.presets import tensorflow_optional

    with tensorflow_optional():  # no TensorFlow import (seconds) on JAX and PyTorch
        keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((cfg["batch"], cfg["T"], cfg["features"])).astype("float32")
    y = rng.standard_normal((cfg["batch"], 1)).astype("float32")
    model = keras_model(cfg["impl"], cfg["variant"], cfg["batch"], cfg["T"], cfg["features"],
                        cfg["units"])
    out = {}
    if "train" in modes:
        out["train"] = _time_steps(lambda: model.train_on_batch(x, y), warmup, repeats, per_repeat)
    if "infer" in modes:
        out["infer"] = _time_steps(lambda: model.predict_on_batch(x), warmup, repeats, per_repeat)
    return out


def torch_gru_steps(batch, T, features, units):
    """``(train, infer)``: one step each of the outside reference, ``torch.nn.GRU`` ->
    ``Linear(units, 1)`` trained with Adam on MSE in plain PyTorch (no Keras), on seeded
    random data of the benchmark's shape."""
    import torch

    torch.manual_seed(0)
    x = torch.randn(batch, T, features)
    y = torch.randn(batch, 1)
    rnn = torch.nn.GRU(features, units, batch_first=True)
    head = torch.nn.Linear(units, 1)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)

    def train():
        opt.zero_grad()
        _, h = rnn(x)
        loss = torch.nn.functional.mse_loss(head(h[-1]), y)
        loss.backward()
        opt.step()

    def infer():
        with torch.no_grad():
            _, h = rnn(x)
            head(h[-1])

    return train, infer


def _worker_torch(cfg, modes, warmup, repeats, per_repeat):
    train, infer = torch_gru_steps(cfg["batch"], cfg["T"], cfg["features"], cfg["units"])
    out = {}
    if "train" in modes:
        out["train"] = _time_steps(train, warmup, repeats, per_repeat)
    if "infer" in modes:
        out["infer"] = _time_steps(infer, warmup, repeats, per_repeat)
    return out


def _best_rate(fn, flops, min_time):
    """Best GFLOP/s of ``fn`` (``flops`` each) over blocks of at least ``min_time`` s."""
    fn()
    reps, best = 1, 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        dt = time.perf_counter() - t0
        best = max(best, reps * flops / dt / 1e9)
        if dt < min_time:
            reps = max(reps * 2, int(reps * min_time / max(dt, 1e-6)))
    return best


def _limit_kernels(lib, batch, units, kh, size, chain):
    """``(chain_fn, sgemm_fn)`` for one library, or None if it is not installed."""
    import numpy as np

    rng = np.random.default_rng(0)
    h0 = rng.standard_normal((batch, units)).astype("float32")
    u = (rng.standard_normal((units, kh * units)) / np.sqrt(units)).astype("float32")
    a = rng.standard_normal((size, size)).astype("float32")
    if lib == "numpy":
        def chain_fn():
            h = h0
            for _ in range(chain):
                y = np.tanh(h @ u)
                h = y.reshape(batch, kh, units).sum(1)
            return h
        return chain_fn, lambda: a @ a
    if lib == "torch":
        import torch
        th, tu, ta = torch.from_numpy(h0), torch.from_numpy(u), torch.from_numpy(a)

        def chain_fn():
            h = th
            with torch.no_grad():
                for _ in range(chain):
                    y = torch.tanh(h @ tu)
                    h = y.reshape(batch, kh, units).sum(1)
            return h
        return chain_fn, lambda: torch.mm(ta, ta)
    if lib == "jax":
        import jax
        import jax.numpy as jnp
        jh, ju, ja = jnp.asarray(h0), jnp.asarray(u), jnp.asarray(a)

        def body(_, hh):
            y = jnp.tanh(hh @ ju)
            return y.reshape(batch, kh, units).sum(1)
        run_chain = jax.jit(lambda h: jax.lax.fori_loop(0, chain, body, h))
        mm = jax.jit(lambda x: x @ x)
        return (lambda: run_chain(jh).block_until_ready(),
                lambda: mm(ja).block_until_ready())
    raise ValueError(lib)


def machine_limit(batch, units, khs, size=2048, chain=100, min_time=0.3,
                  libraries=("numpy", "torch", "jax")):
    """The machine's matmul limit in GFLOP/s, measured now, in this process.

    Args:
        batch, units: the recurrent step's shape.
        khs: recurrent column-block counts to measure (``U`` is ``(units, k_h*units)``).
        size: side of the square float32 ``sgemm``.
        chain: dependent steps per timed call of the recurrent chain.
        min_time: seconds per timed block (the best of 5 blocks counts).
        libraries: the libraries to try; those not installed are skipped.

    Returns:
        ``{"recurrent": {str(k_h): GFLOP/s}, "sgemm": GFLOP/s, "by_library":
        {lib: {...}}}``: the best rate over the libraries, per measure, and
        every library's own. The recurrent chain counts ``2 batch units
        (k_h units)`` FLOPs per step, the sgemm ``2 size^3``.
    """
    by_lib = {}
    for lib in libraries:
        try:
            kernels = {kh: _limit_kernels(lib, batch, units, kh, size, chain) for kh in khs}
        except ImportError:
            continue
        sgemm = next(iter(kernels.values()))[1]
        by_lib[lib] = {
            "recurrent": {str(kh): _best_rate(k[0], chain * 2 * batch * units * kh * units, min_time)
                          for kh, k in kernels.items()},
            "sgemm": _best_rate(sgemm, 2 * size ** 3, min_time),
        }
    if not by_lib:
        raise RuntimeError("no library to measure the machine's limit with (numpy, torch, jax)")
    return {
        "recurrent": {str(kh): max(v["recurrent"][str(kh)] for v in by_lib.values()) for kh in khs},
        "sgemm": max(v["sgemm"] for v in by_lib.values()),
        "by_library": by_lib,
    }


def worker_main(argv):
    """Entry point of one configuration's process: prints one JSON line."""
    spec = json.loads(argv[0])
    cfg, opts = spec["config"], spec["options"]
    if cfg.get("impl") == "limit":
        print("GRUKIT_BENCH " + json.dumps(machine_limit(
            cfg["batch"], cfg["units"], cfg["khs"], size=cfg["size"],
            min_time=cfg.get("min_time", 0.3))))
        return
    fn = _worker_torch if cfg["impl"] == "torch_gru" else _worker_keras
    result = fn(cfg, opts["modes"], opts["warmup"], opts["repeats"], opts["steps_per_repeat"])
    print("GRUKIT_BENCH " + json.dumps({k: {"median": v[0], "all": v[1]} for k, v in result.items()}))


# ------------------------------------------------------------------ driver
def _run_one(cfg, args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    if cfg["backend"] != "torch-native":
        env["KERAS_BACKEND"] = cfg["backend"]
    payload = json.dumps({"config": cfg, "options": {
        "modes": args.modes, "warmup": args.warmup, "repeats": args.repeats,
        "steps_per_repeat": args.steps_per_repeat}})
    t0 = time.time()
    try:
        proc = subprocess.run([sys.executable, "-m", "grukit.bench", payload], env=env,
                              capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("GRUKIT_BENCH "):
            res = json.loads(line[len("GRUKIT_BENCH "):])
            res["wall_s"] = round(time.time() - t0, 1)
            return res
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": " | ".join(tail) or f"exit code {proc.returncode}"}


def _machine(args):
    if args.machine:
        return args.machine
    from grukit.zoo.presets import hardware_info

    hw = hardware_info()
    return f"{hw['processor']}, {hw['cpu_count']} cores, {platform.system()} {platform.release()}"


def _versions():
    """Python's and the libraries' versions, from their package metadata: importing
    TensorFlow, JAX and PyTorch here only to read ``__version__`` takes seconds."""
    from importlib import metadata
    from importlib.util import find_spec

    out = {"python": platform.python_version()}
    for mod in ("keras", "tensorflow", "jax", "torch"):
        try:
            out[mod] = metadata.version(mod)
        except metadata.PackageNotFoundError:
            if find_spec(mod) is None:  # not installed
                continue
            try:  # installed under another distribution name (tensorflow-cpu, ...)
                out[mod] = __import__(mod).__version__
            except Exception:  # not importable
                pass
    return out


def _key(r):
    return (r["variant"], r["T"])


def ratios(results):
    """Derived ratios (same run only), keyed by a readable name."""
    def rate(variant, impl, backend, T, mode):
        for r in results:
            if (r["variant"], r["impl"], r["backend"], r["T"]) == (variant, impl, backend, T) \
                    and mode in r.get("result", {}):
                return r["result"][mode]["median"]
        return None

    out = {}
    lengths = sorted({r["T"] for r in results})
    backends = sorted({r["backend"] for r in results} - {"torch-native"})
    variants_ = sorted({r["variant"] for r in results})
    for T in lengths:
        for mode in ("train", "infer"):
            torch_ref = rate("gru", "torch_gru", "torch-native", T, mode)
            for b in backends:
                g = rate("gru", "grukit", b, T, mode)
                k = rate("gru", "keras_gru", b, T, mode)
                if g and k:
                    out[f"{mode} T={T} {b}: grukit gru / keras.layers.GRU"] = g / k
                if g and torch_ref:
                    out[f"{mode} T={T} {b}: grukit gru / torch.nn.GRU"] = g / torch_ref
                for v in variants_:
                    gv, kv = rate(v, "grukit", b, T, mode), rate(v, "keras_rnn", b, T, mode)
                    if gv and kv:
                        out[f"{mode} T={T} {b}: grukit {v} / keras.layers.RNN(cell)"] = gv / kv
                    if v != "gru" and gv and g:
                        out[f"{mode} T={T} {b}: grukit {v} / grukit gru"] = gv / g
                    for impl, opts in OPTION_IMPLS.items():
                        o = rate(v, impl, b, T, mode)
                        what = ", ".join(f"{k}={val!r}" for k, val in opts.items())
                        if o and gv:
                            out[f"{mode} T={T} {b}: grukit {v} {what} / grukit {v}"] = o / gv
                        if impl == "grukit_reset_after" and o and g:
                            out[f"{mode} T={T} {b}: grukit {v} {what} / grukit gru"] = o / g
                p = rate("mingru", "grukit_par", b, T, mode)
                if p and g:
                    out[f"{mode} T={T} {b}: minGRU parallel scan / grukit gru"] = p / g
                s = rate("mingru", "grukit", b, T, mode)
                if s and p:
                    out[f"{mode} T={T} {b}: minGRU parallel scan / minGRU default"] = p / s
    return out


def fractions(results, limit):
    """Each training configuration's matmul GFLOP/s and its fractions of ``limit``.

    Returns ``{(variant, impl, backend, T): {"gflops", "of_recurrent",
    "of_sgemm"}}`` with ``gflops = train_flops(...) * steps/s / 1e9``,
    ``of_recurrent`` relative to the recurrent chain of the variant's own
    ``k_h`` (absent for minGRU, which has no recurrent matmul) and
    ``of_sgemm`` relative to the large sgemm.
    """
    out = {}
    for r in results:
        res = r.get("result", {})
        if "train" not in res:
            continue
        gflops = train_flops(r["variant"], r["batch"], r["T"], r["features"], r["units"]) \
            * res["train"]["median"] / 1e9
        row = {"gflops": gflops, "of_sgemm": gflops / limit["sgemm"]}
        kh = str(matmul_blocks(r["variant"])[1])
        if kh in limit["recurrent"]:
            row["of_recurrent"] = gflops / limit["recurrent"][kh]
        out[(r["variant"], r["impl"], r["backend"], r["T"])] = row
    return out


def write_report(report, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    lines = [f"# grukit benchmark, {report['date']}", "",
             f"Machine: {report['machine']}  ", f"Versions: {report['versions']}  ",
             f"Shape: batch {report['shape']['batch']}, features {report['shape']['features']}, "
             f"units {report['shape']['units']}; steps/s, median of {report['repeats']} blocks, "
             "warm-up excluded, one process per row.  ", f"Command: `{report['command']}`", "",
             "| variant | T | implementation | backend | train steps/s | infer steps/s |",
             "|---|---|---|---|---|---|"]
    for r in sorted(report["results"], key=lambda r: (r["variant"], r["T"], r["impl"], r["backend"])):
        res = r.get("result", {})
        if "error" in res:
            lines.append(f"| {r['variant']} | {r['T']} | {r['impl']} | {r['backend']} | "
                         f"error: {res['error'][:80]} | |")
            continue
        cells = [f"{res[m]['median']:.2f}" if m in res else "" for m in ("train", "infer")]
        lines.append(f"| {r['variant']} | {r['T']} | {r['impl']} | {r['backend']} | {cells[0]} | {cells[1]} |")
    lines += ["", "## Ratios (same run)", "", "| ratio | value |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in sorted(report["ratios"].items())]
    limit = report.get("limit")
    if limit:
        rec = ", ".join(f"k_h={k}: {v:.1f}" for k, v in sorted(limit["recurrent"].items()))
        lines += ["", "## Training as a fraction of the machine's limit (same run)", "",
                  f"Limit, GFLOP/s (best of {', '.join(sorted(limit['by_library']))}): recurrent "
                  f"chain (batch x units @ units x k_h*units, with tanh) {rec}; sgemm "
                  f"{limit['sgemm']:.1f}. FLOPs per training step: forward and backward matmuls "
                  "of the layer, 2 B T n (2 k_x m + 3 k_h n) (`grukit.bench.train_flops`).", "",
                  "| variant | T | implementation | backend | GFLOP/s | of recurrent limit | of sgemm |",
                  "|---|---|---|---|---|---|---|"]
        for r in sorted(report.get("fractions", []),
                        key=lambda r: (r["variant"], r["T"], r["impl"], r["backend"])):
            rec_f = f"{r['of_recurrent']:.2f}" if "of_recurrent" in r else ""
            lines.append(f"| {r['variant']} | {r['T']} | {r['impl']} | {r['backend']} | "
                         f"{r['gflops']:.1f} | {rec_f} | {r['of_sgemm']:.2f} |")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    try:
        _plot(report, os.path.join(out_dir, "results.png"))
    except ImportError:
        print("matplotlib not installed: no plot written", file=sys.stderr)


def _plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["results"] if "train" in r.get("result", {})]
    lengths = sorted({r["T"] for r in rows})
    fig, axes = plt.subplots(1, len(lengths), figsize=(6 * len(lengths), 0.3 * len(rows) / max(1, len(lengths)) + 2.5),
                             squeeze=False)
    for ax, T in zip(axes[0], lengths):
        sel = sorted([r for r in rows if r["T"] == T], key=lambda r: r["result"]["train"]["median"])
        labels = [f"{r['variant']} {r['impl']} [{r['backend']}]" for r in sel]
        ax.barh(labels, [r["result"]["train"]["median"] for r in sel])
        ax.set_title(f"training steps/s, T={T}")
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _measure_limit(configs, args):
    khs = sorted({matmul_blocks(c["variant"])[1] for c in configs} - {0}) or [3]
    cfg = {"impl": "limit", "backend": "torch-native", "batch": args.batch, "units": args.units,
           "khs": khs, "size": args.sgemm_size, "min_time": args.limit_min_time}
    res = _run_one(cfg, args)
    res.pop("wall_s", None)
    return res


def run(args):
    configs = plan(args)
    print(f"{len(configs)} configurations -> {args.out}", flush=True)
    limit = None
    if args.limit:
        limit = _measure_limit(configs, args)
        if "error" in limit:
            print(f"machine limit: {limit['error']}", flush=True)
            limit = None
        else:
            print("machine limit, GFLOP/s: recurrent " + ", ".join(
                f"k_h={k} {v:.1f}" for k, v in sorted(limit["recurrent"].items()))
                + f"; sgemm {limit['sgemm']:.1f}", flush=True)
    results = []
    for i, cfg in enumerate(configs, 1):
        res = _run_one(cfg, args)
        results.append({**cfg, "result": res})
        shown = "  ".join(f"{m} {res[m]['median']:.2f}/s" for m in ("train", "infer") if m in res)
        print(f"[{i}/{len(configs)}] {cfg['variant']:7} T={cfg['T']:<5} {cfg['impl']:10} "
              f"{cfg['backend']:12} {shown or res.get('error')}", flush=True)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(args), "versions": _versions(),
        "command": "grukit bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else "grukit bench",
        "shape": {"batch": args.batch, "features": args.features, "units": args.units},
        "repeats": args.repeats, "results": results,
    }
    report["ratios"] = ratios(results)
    if limit is not None:
        report["limit"] = limit
        report["fractions"] = [
            {"variant": k[0], "impl": k[1], "backend": k[2], "T": k[3], **v}
            for k, v in fractions(results, limit).items()]
        for f in report["fractions"]:
            if f["T"] in args.steps:
                rec = f"{f['of_recurrent']:.2f}" if "of_recurrent" in f else "-"
                print(f"{f['variant']:7} T={f['T']:<5} {f['impl']:10} {f['backend']:12} "
                      f"{f['gflops']:6.1f} GFLOP/s = {rec} of the recurrent limit, "
                      f"{f['of_sgemm']:.2f} of sgemm", flush=True)
    write_report(report, args.out)
    failed = [r for r in results if "error" in r["result"]]
    print(f"wrote {args.out}/results.{{json,md,png}}; {len(failed)} failed configurations")
    return 1 if failed else 0


if __name__ == "__main__":
    worker_main(sys.argv[1:])
