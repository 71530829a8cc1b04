"""The cell options (norm, zoneout, recurrent_weight_dropout) against the NumPy references.

Every variant with every option: forward passes of ``grukit.layers.RNN`` and
(in inference) ``keras.layers.RNN`` against ``tests/reference.py`` (written
from Ba et al. 2016, Zhang & Sennrich 2019, Krueger et al. 2017 and Merity et
al. 2018), float64 gradients against central differences of the reference,
the random masks (rates, what they are shared over, reproducibility), masks /
go_backwards / stateful, ``.keras`` round trips and bad arguments. Runs under
every backend (KERAS_BACKEND=tensorflow|jax|torch): every variant in one pass of a run,
a sample of them with every kind of gate in the others (``conftest.pass_variants``; the
options' code is shared by all variants).

The random masks are recorded (forward checks, eager) or fixed (gradient
checks, traced) by wrapping the cell's ``zoneout_mask`` and
``recurrent_kernel_mask``, the only places the masks come from.
"""

from __future__ import annotations

import numpy as np
import pytest
import keras
from keras import ops

import grukit
import reference as R
from conftest import pass_variants, to_np
from test_cells_reference import (
    Checker, _gradient_check, built, make_cell, rand_data, random_weights,
)

VARIANTS = [v.name for v in grukit.variants()]
RECURRENT = [v for v in VARIANTS if grukit.get_variant(v).blocks_with("h")]  # all but minGRU
NORMS = ("layer", "rms")


def _ref(variant, cell, w, x, **kw):
    return R.forward(variant, w, x, reset_after=cell.reset_after, norm=cell.norm,
                     epsilon=cell.norm_epsilon, **kw)


def _record_masks(cell):
    """Wrap the cell's mask methods; returns the list of (kind, mask) they produced."""
    drawn = []
    for kind in ("zoneout_mask", "recurrent_kernel_mask"):
        orig = getattr(cell, kind)

        def spy(*args, _orig=orig, _kind=kind):
            out = _orig(*args)
            drawn.append((_kind, to_np(out)))
            return out

        setattr(cell, kind, spy)
    return drawn


def _fix_masks(zone=None, kernel=None):
    """``prepare(cell)`` for the gradient check: the cell's masks are these constants."""
    def prepare(cell):
        if zone is not None:
            cell.zoneout_mask = lambda seqs: ops.convert_to_tensor(zone, cell.compute_dtype)
        if kernel is not None:
            cell.recurrent_kernel_mask = lambda: ops.convert_to_tensor(kernel, cell.compute_dtype)
    return prepare


# --------------------------------------------------------------------------
# 1. norm: forward vs the reference, both layers, both projections


# each variant with its default reset_after, and the GRU in both forms: every code
# path of the normalised step (fused or separate candidate matmul) at one compilation each
NORM_CONFIGS = pass_variants([(v, grukit.get_variant(v).reset_after_default) for v in VARIANTS]
                             + [("gru", False)])


@pytest.mark.parametrize("variant,reset_after", NORM_CONFIGS,
                         ids=[f"{v}-ra{int(ra)}" for v, ra in NORM_CONFIGS])
def test_norm_forward_matches_reference(variant, reset_after):
    rng = np.random.default_rng(20)
    x, h0 = rand_data(rng)
    chk = Checker("float32")
    for norm in NORMS:
        cells = [make_cell(variant, 4, reset_after, norm=norm) for _ in range(2)]
        layers = {"keras.RNN": built(keras.layers.RNN(cells[0], return_sequences=True), x),
                  "grukit.RNN": built(grukit.layers.RNN(cells[1], return_sequences=True), x)}
        w = random_weights(cells[0], rng)
        cells[1].set_weights(cells[0].get_weights())
        ref = _ref(variant, cells[0], w, x, h0=h0)["h"]
        # the normalisation matters: the same weights without it give something else
        plain = [a for a, v in zip(w, cells[0].weights) if "norm_" not in v.name]
        assert np.max(np.abs(ref - R.forward(variant, plain, x, h0=h0,
                                             reset_after=reset_after)["h"])) > 1e-2
        for name, layer in layers.items():
            chk.close(to_np(layer(x, initial_state=h0)), ref, f"{name}-{norm}[{variant}]")
        if variant in ("gru", "mgu2", "ligru"):  # projection inside the loop: same values
            step = built(grukit.layers.RNN(make_cell(variant, 4, reset_after, norm=norm),
                                           return_sequences=True, projection="step"), x)
            step.set_weights(cells[0].get_weights())
            chk.close(to_np(step(x, initial_state=h0)), ref, f"step-{norm}[{variant}]")


def test_norm_weights_param_counts_and_defaults():
    for variant in VARIANTS:
        spec = grukit.get_variant(variant)
        plain = make_cell(variant, 5)
        plain.build((None, 3))
        names = [v.name for v in plain.trainable_weights]
        assert not any("norm_" in n for n in names)
        for norm in NORMS:
            cell = make_cell(variant, 5, norm=norm)
            cell.build((None, 3))
            # after the variant's trainable weights (Li-GRU's moving statistics stay last)
            assert ([v.name for v in cell.non_trainable_weights]
                    == [v.name for v in plain.non_trainable_weights])
            new = [v.name for v in cell.trainable_weights][len(names):]
            sides = ([] if spec.input_norm else ["input"]) + (["recurrent"] if spec.blocks_with("h") else [])
            parts = ["gamma", "beta"] if norm == "layer" else ["gamma"]
            assert new == [f"{s}_norm_{p}" for s in sides for p in parts], (variant, new)
            assert [v.name for v in cell.trainable_weights][:len(names)] == names
            assert cell.count_params() == spec.param_count(
                3, 5, reset_after=cell.reset_after, norm=norm)["total"]
            # by hand: k_x and k_h blocks of 5 units each, gain (+ bias)
            kx = 0 if spec.input_norm else len(spec.blocks_with("x"))
            extra = len(parts) * 5 * (kx + len(spec.blocks_with("h")))
            assert cell.count_params() == plain.count_params() + extra


# --------------------------------------------------------------------------
# 2. zoneout and weight drop: forward vs the reference with the drawn masks


@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_zoneout_and_weight_drop_forward(variant):
    rng = np.random.default_rng(21)
    x, h0 = rand_data(rng)
    chk = Checker("float32")
    p_zone, p_drop = 0.4, (0.3 if variant in RECURRENT else 0.0)
    opts = dict(zoneout=p_zone, recurrent_weight_dropout=p_drop, seed=5)
    cell = make_cell(variant, 4, **opts)
    kw = {"parallel": True} if variant == "mingru" else {}
    layer = built(grukit.layers.RNN(cell, return_sequences=True, **kw), x)
    w = random_weights(cell, rng)
    drawn = _record_masks(cell)
    y = to_np(layer(x, initial_state=h0, training=True))
    masks = dict(drawn)
    assert set(masks) == ({"zoneout_mask", "recurrent_kernel_mask"} if p_drop else {"zoneout_mask"})
    zone = masks["zoneout_mask"]
    assert zone.shape == x.shape[:2] + (4,) and set(np.unique(zone)) == {0.0, 1.0}
    kernel = masks.get("recurrent_kernel_mask")
    if kernel is not None:
        assert kernel.shape == tuple(cell.recurrent_kernel.shape)
        np.testing.assert_allclose(np.unique(kernel), [0.0, 1.0 / (1.0 - p_drop)], rtol=1e-6)
    ref = _ref(variant, cell, w, x, h0=h0, zoneout=zone, kernel_mask=kernel, training=True)["h"]
    chk.close(y, ref, f"train-zoneout-weightdrop[{variant}]")
    w = [np.asarray(a, np.float64) for a in cell.get_weights()]  # Li-GRU: moving statistics
    # the masks matter: without them (expectation, full kernel) the result differs
    ref_inf = _ref(variant, cell, w, x, h0=h0, zoneout=p_zone)["h"]
    assert np.max(np.abs(ref - ref_inf)) > 1e-2
    # inference: zoneout's expectation, the whole kernel; keras.layers.RNN agrees
    chk.close(to_np(layer(x, initial_state=h0)), ref_inf, f"infer[{variant}]")
    twin = built(keras.layers.RNN(make_cell(variant, 4, **opts), return_sequences=True), x)
    twin.set_weights(cell.get_weights())
    chk.close(to_np(twin(x, initial_state=h0)), ref_inf, f"keras.RNN-infer[{variant}]")
    with pytest.raises(ValueError, match="grukit.layers.RNN"):
        twin(x, initial_state=h0, training=True)
    if variant == "mingru":  # the sequential loop too
        seq = built(grukit.layers.RNN(make_cell(variant, 4, **opts), return_sequences=True,
                                      parallel=False), x)
        seq.set_weights(cell.get_weights())
        drawn = _record_masks(seq.cell)
        y = to_np(seq(x, initial_state=h0, training=True))
        ref = _ref(variant, cell, w, x, h0=h0, zoneout=dict(drawn)["zoneout_mask"])["h"]
        chk.close(y, ref, "mingru-sequential-zoneout")


@pytest.mark.parametrize("variant", ["gru", "mgu2", "ligru", "mingru"])
def test_options_with_mask_backwards_and_stateful(variant):
    """Every option at once with a mask, go_backwards, an initial state, then stateful."""
    rng = np.random.default_rng(22)
    x, h0 = rand_data(rng)
    mask = np.ones(x.shape[:2], bool)
    mask[0, 2:4] = mask[2, 5] = False
    chk = Checker("float32")
    opts = dict(norm="layer", zoneout=0.3, seed=3,
                recurrent_weight_dropout=0.2 if variant in RECURRENT else 0.0)
    cell = make_cell(variant, 4, **opts)
    layer = built(grukit.layers.RNN(cell, return_sequences=True, return_state=True,
                                    go_backwards=True), x)
    w = random_weights(cell, rng)
    drawn = _record_masks(cell)
    y, state = layer(x, initial_state=h0, mask=mask, training=True)
    masks = dict(drawn)
    ref = _ref(variant, cell, w, x, h0=h0, mask=mask, go_backwards=True,
               training=True, zoneout=masks["zoneout_mask"],
               kernel_mask=masks.get("recurrent_kernel_mask"))["h"]
    chk.close(to_np(y), ref, f"mask-back-train[{variant}]")
    chk.close(to_np(state), ref[:, -1], f"mask-back-train-state[{variant}]")

    # stateful: the second batch starts from the first's final state
    cell_s = make_cell(variant, 4, **opts)
    stateful = grukit.layers.RNN(cell_s, return_sequences=True, stateful=True)
    stateful.build(x.shape)
    stateful.set_weights(cell.get_weights())
    w_s = [np.asarray(a, np.float64) for a in cell_s.get_weights()]
    y1, y2 = to_np(stateful(x[:, :3])), to_np(stateful(x[:, 3:]))
    ref = _ref(variant, cell_s, w_s, x, zoneout=0.3)["h"]
    chk.close(np.concatenate([y1, y2], axis=1), ref, f"stateful-infer[{variant}]")


def test_masks_are_per_sequence_reproducible_and_at_their_rates():
    x = np.zeros((64, 50, 3), "float32")
    cell = grukit.GRUCell(16, zoneout=0.3, recurrent_weight_dropout=0.4, seed=11)
    built(grukit.layers.RNN(cell), x)
    zone = to_np(cell.zoneout_mask(ops.convert_to_tensor(x)))
    kern = to_np(cell.recurrent_kernel_mask())
    assert zone.shape == (64, 50, 16) and kern.shape == (16, 48)
    assert abs(zone.mean() - 0.3) < 0.01  # 51200 draws: 5 standard deviations
    assert abs((kern == 0).mean() - 0.4) < 0.05  # 768 draws
    # independent over time steps and sequences: not one mask repeated
    assert np.mean(zone[:, 0] != zone[:, 1]) > 0.3 and np.mean(zone[0] != zone[1]) > 0.3
    # every draw is new
    assert np.mean(to_np(cell.zoneout_mask(ops.convert_to_tensor(x))) != zone) > 0.3

    # same seed, same weights, same training outputs; another seed differs
    xr = np.random.default_rng(0).standard_normal((4, 9, 3)).astype("float32")
    outs = []
    for seed in (11, 11, 12):
        c = grukit.GRUCell(8, zoneout=0.3, recurrent_weight_dropout=0.4, seed=seed)
        l = built(grukit.layers.RNN(c), xr)
        l.set_weights([np.full(a.shape, 0.1, "float32") + np.arange(a.size).reshape(a.shape) % 7 * 0.05
                       for a in l.get_weights()])
        outs.append(to_np(l(xr, training=True)))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert np.max(np.abs(outs[0] - outs[2])) > 1e-4


# --------------------------------------------------------------------------
# 3. gradients: float64 autodiff vs central differences of the reference


GRAD_CASES = pass_variants((v, c) for v in VARIANTS for c in ("layer+zoneout", "rms+weight_drop"))


@pytest.mark.parametrize("variant,case", GRAD_CASES, ids=[f"{v}-{c}" for v, c in GRAD_CASES])
def test_gradients_finite_differences(variant, case):
    """Every variant x option, in training (fixed masks), float64.

    ``rms+weight_drop`` for minGRU (no recurrent kernel) is RMSNorm alone;
    reset_after is the variant's default (``True`` for ``gru``).
    """
    rng = np.random.default_rng(23)
    B, T, n = 2, 5, 4
    reset_after = grukit.get_variant(variant).reset_after_default
    norm = case.split("+")[0]
    cell_kw, ref_kw = {"norm": norm}, {"norm": norm}
    zone = kernel = None
    if case.endswith("zoneout"):
        zone = (rng.uniform(size=(B, T, n)) < 0.4).astype("float64")
        cell_kw["zoneout"], ref_kw["zoneout"] = 0.4, zone
    elif variant in RECURRENT:
        k_h = len(grukit.get_variant(variant).blocks_with("h"))
        kernel = (rng.uniform(size=(n, k_h * n)) >= 0.3) / 0.7
        cell_kw["recurrent_weight_dropout"], ref_kw["kernel_mask"] = 0.3, kernel
    _gradient_check(variant, reset_after, training=True, rng=rng, cell_kw=cell_kw,
                    ref_kw=ref_kw, prepare=_fix_masks(zone, kernel))


# --------------------------------------------------------------------------
# 4. serialisation, training in a model, bad arguments


def test_keras_round_trip_and_config(tmp_path):
    inp = keras.Input((6, 5))
    h = grukit.layers.GRU(4, variant="mgu1", norm="layer", zoneout=0.2, return_sequences=True,
                          recurrent_weight_dropout=0.1, name="a")(inp)
    h = grukit.layers.RNN(grukit.LiGRUCell(4, norm="rms"), return_sequences=True, name="b")(h)
    h = keras.layers.RNN(grukit.MinGRUCell(3, norm="layer", zoneout=0.5), name="c")(h)
    model = keras.Model(inp, h)
    rng = np.random.default_rng(24)
    for v in model.weights:
        val = rng.uniform(0.5, 1.5, v.shape) if "variance" in v.name else rng.normal(0, 0.5, v.shape)
        v.assign(val.astype("float32"))
    x = rng.standard_normal((2, 6, 5)).astype("float32")
    path = str(tmp_path / "options.keras")
    model.save(path)
    clone = keras.models.load_model(path)
    np.testing.assert_array_equal(to_np(clone(x)), to_np(model(x)))
    cell = clone.get_layer("a").cell
    assert (cell.norm, cell.zoneout, cell.recurrent_weight_dropout) == ("layer", 0.2, 0.1)
    assert clone.get_layer("b").cell.norm == "rms" and clone.get_layer("c").cell.zoneout == 0.5
    config = grukit.GRUCell(4).get_config()
    assert (config["norm"], config["zoneout"], config["recurrent_weight_dropout"]) == (None, 0.0, 0.0)
    # a config written before the options existed loads with them off
    old = {k: v for k, v in config.items() if k not in ("norm", "zoneout", "recurrent_weight_dropout")}
    assert grukit.GRUCell.from_config(old).get_config() == config


def test_fit_with_every_option_unknown_length():
    """Compiled training (jit / tf.function / torch) with an unknown sequence length."""
    inp = keras.Input((None, 3))
    h = grukit.layers.GRU(6, variant="gru1", norm="layer", zoneout=0.2,
                          recurrent_weight_dropout=0.2, return_sequences=True, seed=1)(inp)
    out = keras.layers.Dense(1)(grukit.layers.GRU(4, variant="mingru", norm="rms", zoneout=0.1,
                                                  parallel=True, seed=2)(h))
    model = keras.Model(inp, out)
    model.compile("adam", "mse")
    x = np.random.default_rng(25).standard_normal((8, 7, 3)).astype("float32")
    y = np.ones((8, 1), "float32")
    before = [to_np(v) for v in model.trainable_weights]
    hist = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert np.all(np.isfinite(hist.history["loss"]))
    after = [to_np(v) for v in model.trainable_weights]
    assert all(np.any(a != b) for a, b in zip(before, after))  # every weight is trained
    assert np.all(np.isfinite(to_np(model.predict(x, verbose=0))))


def test_bad_option_arguments():
    with pytest.raises(ValueError, match="`norm` must be one of None, 'layer', 'rms'; got 'batch'"):
        grukit.GRUCell(4, norm="batch")
    with pytest.raises(ValueError, match=r"`zoneout` must be in \[0, 1\), got 1.0"):
        grukit.MGUCell(4, zoneout=1.0)
    with pytest.raises(TypeError, match="`recurrent_weight_dropout` must be a float"):
        grukit.GRUCell(4, recurrent_weight_dropout="0.5")
    with pytest.raises(ValueError, match="`recurrent_weight_dropout` must be 0 for variant 'mingru'"):
        grukit.MinGRUCell(4, recurrent_weight_dropout=0.1)

