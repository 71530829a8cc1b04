"""Integration of every grukit variant with Keras's recurrent machinery.

Each test runs one variant through ``keras.layers.RNN(cell)`` (the reference)
and ``grukit.layers.RNN(cell)`` (the fast layer) with the same weights, checks
the Keras feature under test on both, and checks that the two agree to 1e-5.
"""
import contextlib

import numpy as np
import pytest

import keras

import grukit
from conftest import BACKEND, to_np

VARIANTS = [v.name for v in grukit.variants()]
MGU = [v for v in VARIANTS if v.startswith("mgu")]
B, T, F, U = 3, 6, 5, 4
ATOL = 1e-5
VOCAB = 12


# ----------------------------------------------------------------- helpers
def _rng(seed=0):
    return np.random.default_rng(seed)


def _x(batch=B, steps=T, seed=0, dtype="float32"):
    return _rng(seed).standard_normal((batch, steps, F)).astype(dtype)


def _cell(variant, units=U, **kw):
    kw.setdefault("seed", 17)
    return grukit.get_cell(variant, units, **kw)


def _randomize(obj, seed=1):
    """Non-trivial values for every weight (Li-GRU's moving statistics included)."""
    rng = _rng(seed)
    for w in obj.weights:
        shape = tuple(w.shape)
        if w.path.endswith("moving_variance"):
            val = rng.uniform(0.5, 1.5, shape)
        else:
            val = rng.normal(0.0, 0.6, shape)
        w.assign(val.astype(keras.backend.standardize_dtype(w.dtype)))


def _twins(variant, x, cell_kw=None, seed=1, **layer_kw):
    """keras.layers.RNN and grukit.layers.RNN around equal cells with equal weights."""
    cell_kw = cell_kw or {}
    ref = keras.layers.RNN(_cell(variant, **cell_kw), **layer_kw)
    fast = grukit.layers.RNN(_cell(variant, **cell_kw), **layer_kw)
    ref(x)
    fast(x)
    _randomize(ref, seed)
    fast.set_weights(ref.get_weights())
    if layer_kw.get("stateful"):
        ref.reset_state()
        fast.reset_state()
    return ref, fast


def _close(a, b, atol=ATOL, rtol=0.0, msg=""):
    np.testing.assert_allclose(to_np(a), to_np(b), atol=atol, rtol=rtol, err_msg=msg)


def _differ(a, b, min_diff=1e-3, msg=""):
    d = np.max(np.abs(to_np(a) - to_np(b)))
    assert d > min_diff, f"expected different outputs, max |diff| = {d}. {msg}"


def _tokens(lengths, steps=T, seed=3, pre=False):
    """Int sequences with ids in 1..VOCAB-1, zero padded to `steps`."""
    rng = _rng(seed)
    rows, raw = [], []
    for n in lengths:
        seq = rng.integers(1, VOCAB, size=n)
        raw.append(seq)
        pad = np.zeros(steps - n, dtype="int64")
        rows.append(np.concatenate([pad, seq] if pre else [seq, pad]))
    return np.stack(rows).astype("int32"), raw


def _embedding_model(layer):
    inp = keras.Input((None,), dtype="int32")
    emb = keras.layers.Embedding(VOCAB, F, mask_zero=True)(inp)
    out = layer(emb)
    return keras.Model(inp, out)


# ----------------------------------------------------------------- masking
@pytest.mark.parametrize("variant", VARIANTS)
def test_embedding_mask_padding_equals_unpadded(variant):
    models = {}
    for name, cls in (("keras", keras.layers.RNN), ("grukit", grukit.layers.RNN)):
        layer = cls(_cell(variant), return_sequences=True, return_state=True)
        models[name] = _embedding_model(layer)
    _randomize(models["keras"], seed=2)
    models["grukit"].set_weights(models["keras"].get_weights())

    lengths = [T, 4, 2]
    for pre in (False, True):
        tokens, raw = _tokens(lengths, pre=pre)
        outs = {k: m(tokens) for k, m in models.items()}
        for k, m in models.items():
            seq, h = outs[k]
            assert tuple(seq.shape) == (B, T, U) and tuple(h.shape) == (B, U)
            for i, (n, row) in enumerate(zip(lengths, raw)):
                useq, uh = m(row[None, :].astype("int32"))
                valid = slice(T - n, T) if pre else slice(0, n)
                _close(to_np(seq)[i, valid], to_np(useq)[0],
                       msg=f"{k} pre={pre} row {i}: sequence")
                _close(to_np(h)[i], to_np(uh)[0], msg=f"{k} pre={pre} row {i}: state")
        for a, b in zip(outs["keras"], outs["grukit"]):
            _close(a, b, msg=f"keras vs grukit, pre={pre}")
    # The padding matters: the same tokens without a mask give another result.
    tokens, _ = _tokens(lengths)
    unmasked = keras.layers.RNN(_cell(variant))
    embedded = to_np(models["keras"].layers[1](tokens)).astype("float32")  # no mask
    unmasked(embedded)
    unmasked.set_weights(models["keras"].layers[2].get_weights())
    _differ(to_np(unmasked(embedded))[1], to_np(outs["keras"][1])[1])


_SCAN_BUG = (
    "grukit bug: grukit.layers.RNN's parallel scan (minGRU) outputs the initial "
    "state at masked steps before the first valid step; keras.layers.RNN (TF, "
    "torch backends) outputs zeros there"
)
_MASK_H0_PARAMS = [
    pytest.param(v, marks=[pytest.mark.xfail(strict=True, reason=_SCAN_BUG)]
                 if v == "mingru" and BACKEND != "jax" else [])
    for v in VARIANTS
]


@pytest.mark.parametrize("variant", _MASK_H0_PARAMS)
@pytest.mark.parametrize("go_backwards", [False, True], ids=["fwd", "bwd"])
def test_mask_with_initial_state_matches_keras(variant, go_backwards):
    """Explicit mask (some rows masked at the start) with a non-zero initial state."""
    x = _x()
    mask = np.array([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], bool)
    h0 = _rng(5).standard_normal((B, U)).astype("float32")
    ref, fast = _twins(variant, x, return_sequences=True, return_state=True,
                       go_backwards=go_backwards)
    a, b = ref(x, mask=mask, initial_state=[h0]), fast(x, mask=mask, initial_state=[h0])
    _close(a[1], b[1], msg="final state")
    _close(a[0], b[0], msg="output sequence")


# ------------------------------------------------- return_sequences / state
@pytest.mark.parametrize("variant", VARIANTS)
def test_return_sequences_and_state(variant):
    x = _x()
    h0 = _rng(4).standard_normal((B, U)).astype("float32")
    ref, fast = _twins(variant, x, return_sequences=True, return_state=True)
    last_ref, last_fast = _twins(variant, x)
    last_ref.set_weights(ref.get_weights())
    last_fast.set_weights(ref.get_weights())
    results = {}
    for name, layer, last in (("keras", ref, last_ref), ("grukit", fast, last_fast)):
        out = layer(x)
        assert isinstance(out, (list, tuple)) and len(out) == 2
        seq, h = out
        assert tuple(seq.shape) == (B, T, U)
        assert tuple(h.shape) == (B, U)
        _close(to_np(seq)[:, -1], h, msg=name)
        y = last(x)
        assert tuple(y.shape) == (B, U)
        _close(y, h, msg=name)
        seq0, h0_out = layer(x, initial_state=[h0])
        _differ(seq0, seq, msg=f"{name}: initial_state ignored")
        results[name] = (seq, h, seq0, h0_out)
    for a, b in zip(results["keras"], results["grukit"]):
        _close(a, b)


# ---------------------------------------------------------------- backwards
@pytest.mark.parametrize("variant", VARIANTS)
def test_go_backwards(variant):
    x = _x()
    ref, fast = _twins(variant, x, return_sequences=True, go_backwards=True)
    fwd = keras.layers.RNN(_cell(variant), return_sequences=True)
    fwd(x)
    fwd.set_weights(ref.get_weights())
    expected = fwd(np.ascontiguousarray(x[:, ::-1]))  # outputs in processing order
    _differ(expected, fwd(x), msg="x and reversed x give the same outputs")
    _close(ref(x), expected, msg="keras go_backwards")
    _close(fast(x), expected, msg="grukit go_backwards")
    # with a mask (post-padding): the last output only sees the valid steps, reversed
    mask = np.array([[1] * T, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], bool)
    a, b = ref(x, mask=mask), fast(x, mask=mask)
    _close(a, b, msg="masked go_backwards: keras vs grukit")
    for i, n in enumerate((T, 4, 2)):
        row = np.ascontiguousarray(x[i:i + 1, :n][:, ::-1])
        _close(to_np(a)[i, -1], to_np(fwd(row))[0, -1], msg=f"row {i}")


# ----------------------------------------------------------------- stateful
@pytest.mark.parametrize("variant", VARIANTS)
def test_stateful_continues_and_resets(variant):
    x1, x2 = _x(seed=1), _x(seed=2)
    ref, fast = _twins(variant, x1, stateful=True)
    whole = keras.layers.RNN(_cell(variant))
    whole(x1)
    whole.set_weights(ref.get_weights())
    expected_1 = whole(x1)
    expected_2 = whole(np.concatenate([x1, x2], axis=1))
    results = {}
    for name, layer in (("keras", ref, ), ("grukit", fast)):
        y1 = layer(x1)
        _close(y1, expected_1, msg=f"{name}: first call starts from zero")
        _close(layer.states[0].value, y1, msg=f"{name}: state variable")
        y2 = layer(x2)
        _close(y2, expected_2, msg=f"{name}: second call continues the state")
        _differ(y2, whole(x2), msg=f"{name}: second call restarted from zero")
        layer.reset_state()
        assert np.all(to_np(layer.states[0].value) == 0)
        y3 = layer(x1)
        _close(y3, expected_1, msg=f"{name}: after reset_state")
        results[name] = (y1, y2, y3)
    for a, b in zip(results["keras"], results["grukit"]):
        _close(a, b)


# ------------------------------------------------------------ bidirectional
@pytest.mark.parametrize("variant", VARIANTS)
def test_bidirectional(variant):
    x = _x()
    layers = {
        "keras": keras.layers.RNN(_cell(variant), return_sequences=True),
        "grukit": grukit.layers.RNN(_cell(variant), return_sequences=True),
        "GRU": grukit.layers.GRU(U, variant=variant, return_sequences=True),
    }
    bidis = {k: keras.layers.Bidirectional(l) for k, l in layers.items()}
    for b in bidis.values():
        b(x)
    _randomize(bidis["keras"], seed=6)
    for k in ("grukit", "GRU"):
        bidis[k].set_weights(bidis["keras"].get_weights())
    assert isinstance(bidis["grukit"].backward_layer, grukit.layers.RNN)
    assert isinstance(bidis["GRU"].backward_layer, grukit.layers.GRU)
    assert bidis["GRU"].backward_layer.variant == variant

    # the two halves are a forward and a backward pass of the two cells
    bi = bidis["keras"]
    fwd = keras.layers.RNN(_cell(variant), return_sequences=True)
    bwd = keras.layers.RNN(_cell(variant), return_sequences=True, go_backwards=True)
    fwd(x)
    bwd(x)
    fwd.set_weights(bi.forward_layer.get_weights())
    bwd.set_weights(bi.backward_layer.get_weights())
    expected = np.concatenate([to_np(fwd(x)), to_np(bwd(x))[:, ::-1]], axis=-1)
    for k, b in bidis.items():
        y = b(x)
        assert tuple(y.shape) == (B, T, 2 * U)
        _close(y, expected, msg=k)

    # with an Embedding mask: padded rows equal the unpadded rows
    tokens, raw = _tokens([T, 4, 2])
    emb = keras.layers.Embedding(VOCAB, F, mask_zero=True)
    emb(tokens)
    outs = {}
    for k, b in bidis.items():
        inp = keras.Input((None,), dtype="int32")
        model = keras.Model(inp, b(emb(inp)))
        y = to_np(model(tokens))
        outs[k] = y
        for i, (n, row) in enumerate(zip((T, 4, 2), raw)):
            u = to_np(model(row[None, :].astype("int32")))[0]
            _close(y[i, :n], u, msg=f"{k} row {i}")
            assert np.all(y[i, n:] == 0), "masked steps must be zero in a Bidirectional output"
    _close(outs["keras"], outs["grukit"])
    _close(outs["keras"], outs["GRU"])


# ------------------------------------------------------------------ stacked
@pytest.mark.parametrize("variant", VARIANTS)
def test_stacked_cells(variant):
    second = VARIANTS[(VARIANTS.index(variant) + 1) % len(VARIANTS)]
    x = _x()
    u2 = 3
    ref = keras.layers.RNN([_cell(variant), _cell(second, u2)], return_sequences=True,
                           return_state=True)
    fast = grukit.layers.RNN([_cell(variant), _cell(second, u2)], return_sequences=True,
                             return_state=True)
    ref(x)
    fast(x)
    _randomize(ref, seed=7)
    fast.set_weights(ref.get_weights())
    # the same two cells as two grukit layers, one after the other
    l1 = grukit.layers.RNN(_cell(variant), return_sequences=True)
    l2 = grukit.layers.RNN(_cell(second, u2), return_sequences=True)
    h1 = l1(x)
    l2(h1)
    w = ref.get_weights()
    n1 = len(l1.get_weights())
    l1.set_weights(w[:n1])
    l2.set_weights(w[n1:])
    h1 = l1(x)
    expected = l2(h1)
    for name, layer in (("keras", ref), ("grukit", fast)):
        seq, s1, s2 = layer(x)
        # each cell's state comes back as its list of states, [h]
        s1, s2 = (s[0] if isinstance(s, (list, tuple)) else s for s in (s1, s2))
        assert tuple(seq.shape) == (B, T, u2)
        assert tuple(s1.shape) == (B, U) and tuple(s2.shape) == (B, u2)
        _close(seq, expected, msg=name)
        _close(s1, to_np(h1)[:, -1], msg=name)
        _close(s2, to_np(expected)[:, -1], msg=name)
    for a, b in zip(keras.tree.flatten(ref(x)), keras.tree.flatten(fast(x))):
        _close(a, b)


# ------------------------------------------------------------------ dropout
def _dropout_kw(variant):
    return dict(dropout=0.3, recurrent_dropout=0.0 if variant == "mingru" else 0.3, seed=5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_dropout_training_vs_inference(variant):
    x = _x()
    ref, fast = _twins(variant, x, cell_kw=_dropout_kw(variant), return_sequences=True)
    plain = keras.layers.RNN(_cell(variant), return_sequences=True)
    plain(x)
    plain.set_weights(ref.get_weights())
    expected = plain(x)
    outs = {}
    for name, layer in (("keras", ref), ("grukit", fast)):
        # inference: deterministic and equal to the same cell without dropout
        a, b = layer(x, training=False), layer(x, training=False)
        np.testing.assert_array_equal(to_np(a), to_np(b))
        _close(a, expected, msg=f"{name}: dropout must not act in inference")
        # training: a fresh mask per call
        t1, t2 = layer(x, training=True), layer(x, training=True)
        assert np.all(np.isfinite(to_np(t1)))
        _differ(t1, t2, msg=f"{name}: two training calls gave the same output")
        _differ(t1, expected, msg=f"{name}: dropout had no effect in training")
        outs[name] = (t1, t2)
    # Same seed, same number of draws: the masks, hence the outputs, agree.
    # (Li-GRU is excluded: in training grukit.layers.RNN normalises with batch
    # statistics, keras.layers.RNN with the moving ones -- documented.)
    if variant != "ligru":
        for a, b in zip(outs["keras"], outs["grukit"]):
            _close(a, b, msg="training outputs, keras vs grukit")


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "mingru"])
def test_recurrent_dropout_alone_acts_in_training(variant):
    x = _x()
    kw = dict(recurrent_dropout=0.5, seed=9)
    ref, fast = _twins(variant, x, cell_kw=kw, return_sequences=True)
    outs = {}
    for name, layer in (("keras", ref), ("grukit", fast)):
        plain = type(layer)(_cell(variant), return_sequences=True)  # no dropout
        plain(x)
        plain.set_weights(layer.get_weights())
        expected = plain(x, training=True)
        tr = layer(x, training=True)
        # the first step sees h_0 = 0, so recurrent dropout cannot change it
        _close(to_np(tr)[:, 0], to_np(expected)[:, 0], msg=name)
        _differ(tr, expected, msg=f"{name}: recurrent_dropout had no effect")
        outs[name] = tr
    if variant != "ligru":
        _close(outs["keras"], outs["grukit"])


def test_mingru_rejects_recurrent_dropout():
    with pytest.raises(ValueError, match="recurrent_dropout"):
        grukit.get_cell("mingru", U, recurrent_dropout=0.2)
    with pytest.raises(ValueError, match="recurrent_dropout"):
        grukit.layers.GRU(U, variant="mingru", recurrent_dropout=0.2)


_GRAPH_SCAN_BUG = (
    "grukit bug: on TensorFlow, keras.ops.associative_scan loses the static "
    "shape inside a tf.function, so grukit.layers.RNN's parallel scan (minGRU) "
    "fails in fit/predict: 'Cannot take the length of shape with unknown rank'"
)


def _fit_params():
    for kind in ("keras", "grukit"):
        for v in VARIANTS:
            bug = kind == "grukit" and v == "mingru" and BACKEND == "tensorflow"
            yield pytest.param(v, kind, marks=[pytest.mark.xfail(
                strict=True, raises=ValueError, reason=_GRAPH_SCAN_BUG)] if bug else [])


@pytest.mark.parametrize("variant,kind", list(_fit_params()))
def test_fit_with_dropout(variant, kind):
    rng = _rng(8)
    x = rng.standard_normal((8, T, F)).astype("float32")
    y = rng.standard_normal((8, 1)).astype("float32")
    cls = {"keras": keras.layers.RNN, "grukit": grukit.layers.RNN}[kind]
    rnn = cls(_cell(variant, **_dropout_kw(variant)))
    model = keras.Sequential([keras.Input((T, F)), rnn, keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    before = [to_np(w) for w in rnn.trainable_weights]
    moving_before = [to_np(w) for w in rnn.non_trainable_weights]
    hist = model.fit(x, y, batch_size=4, epochs=3, verbose=0, shuffle=False)
    losses = hist.history["loss"]
    assert len(losses) == 3 and np.all(np.isfinite(losses)), losses
    for w0, w in zip(before, rnn.trainable_weights):
        assert np.all(np.isfinite(to_np(w))), w.path
        assert not np.allclose(w0, to_np(w)), f"{w.path} did not train"
    assert np.all(np.isfinite(to_np(model(x))))
    if variant == "ligru":
        moved = [not np.allclose(a, to_np(b)) for a, b in zip(moving_before, rnn.non_trainable_weights)]
        # grukit.layers.RNN updates the moving statistics; keras.layers.RNN cannot
        assert all(moved) if kind == "grukit" else not any(moved)


# ------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("variant", VARIANTS)
def test_mixed_float16(variant):
    x = _x()
    ref32 = keras.layers.RNN(_cell(variant), return_sequences=True)
    ref32(x)
    _randomize(ref32, seed=3)
    expected = to_np(ref32(x))
    keras.config.set_dtype_policy("mixed_float16")
    outs = {}
    for name, cls in (("keras", keras.layers.RNN), ("grukit", grukit.layers.RNN),
                      ("GRU", None)):
        layer = (grukit.layers.GRU(U, variant=variant, return_sequences=True) if cls is None
                 else cls(_cell(variant), return_sequences=True))
        layer(x)
        layer.set_weights(ref32.get_weights())
        assert keras.backend.standardize_dtype(layer.cell.kernel.dtype
                                               if layer.cell.kernel is not None
                                               else layer.cell.recurrent_kernel.dtype) == "float32"
        y = layer(x)
        assert keras.backend.standardize_dtype(y.dtype) == "float16", name
        _close(y, expected, atol=1e-2, msg=f"{name}: float16 vs float32")
        outs[name] = to_np(y)
    # keras.layers.RNN and grukit.layers.RNN round at different points in
    # float16: compare at float16 resolution.
    _close(outs["keras"], outs["grukit"], atol=2e-3)
    _close(outs["grukit"], outs["GRU"], atol=ATOL)


@pytest.mark.parametrize("variant", VARIANTS)
def test_float64_policy(variant):
    x32 = _x()
    ref32 = keras.layers.RNN(_cell(variant), return_sequences=True)
    ref32(x32)
    _randomize(ref32, seed=3)
    expected = to_np(ref32(x32))
    ctx = contextlib.nullcontext()
    if BACKEND == "jax":  # JAX truncates float64 to float32 unless x64 is enabled
        import jax
        ctx = jax.enable_x64(True)
    with ctx:
        keras.config.set_dtype_policy("float64")
        x = x32.astype("float64")
        outs = {}
        for name, cls in (("keras", keras.layers.RNN), ("grukit", grukit.layers.RNN)):
            layer = cls(_cell(variant), return_sequences=True)
            layer(x)
            layer.set_weights(ref32.get_weights())
            y = layer(x)
            assert keras.backend.standardize_dtype(y.dtype) == "float64", name
            assert all(keras.backend.standardize_dtype(w.dtype) == "float64"
                       for w in layer.weights)
            _close(y, expected, atol=1e-5, msg=name)
            outs[name] = to_np(y)
        _close(outs["keras"], outs["grukit"], atol=1e-10)


# ------------------------------------------------------------ serialization
SAVE_KINDS = ["keras_rnn_subclass", "keras_rnn_base", "grukit_rnn", "grukit_gru"]


def _layer_of_kind(kind, variant, **kw):
    if kind == "keras_rnn_subclass":
        return keras.layers.RNN(_cell(variant), **kw)
    if kind == "keras_rnn_base":
        return keras.layers.RNN(grukit.GatedRNNCell(U, variant=variant, seed=3), **kw)
    if kind == "grukit_rnn":
        return grukit.layers.RNN(_cell(variant), **kw)
    return grukit.layers.GRU(U, variant=variant, **kw)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", SAVE_KINDS)
def test_save_load_keras_format(variant, kind, tmp_path):
    x = _x()
    inp = keras.Input((T, F))
    layer = _layer_of_kind(kind, variant, return_sequences=True, name="rec")
    model = keras.Model(inp, keras.layers.Dense(2)(layer(inp)))
    _randomize(model, seed=4)
    expected = to_np(model(x))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(to_np(loaded(x)), expected, atol=1e-6, rtol=0)
    rec = loaded.get_layer("rec")
    assert type(rec) is type(layer)
    assert type(rec.cell) is type(layer.cell)
    assert rec.cell.spec.name == variant
    assert rec.get_config() == layer.get_config()
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(to_np(a), to_np(b), err_msg=a.path)


def _nondefault_cell_kwargs(variant):
    spec = grukit.get_variant(variant)
    kw = dict(
        units=5,
        activation="softsign",
        recurrent_activation="hard_sigmoid",
        use_bias=not any(spec.terms[g] == "b" for g in spec.gates),
        kernel_initializer="he_normal",
        recurrent_initializer="glorot_normal",
        bias_initializer="ones",
        kernel_regularizer=keras.regularizers.L2(0.01),
        recurrent_regularizer=keras.regularizers.L1(0.02),
        bias_regularizer=keras.regularizers.L1L2(0.03, 0.04),
        kernel_constraint=keras.constraints.MaxNorm(2.0),
        recurrent_constraint=keras.constraints.UnitNorm(),
        bias_constraint=keras.constraints.NonNeg(),
        dropout=0.25,
        recurrent_dropout=0.0 if variant == "mingru" else 0.15,
        norm_momentum=0.9,
        norm_epsilon=1e-4,
        seed=42,
    )
    if spec.has_reset:
        kw["reset_after"] = not spec.reset_after_default
    return kw


def _check_cell_args(cell, kw, variant):
    ser = keras.saving.serialize_keras_object
    assert cell.spec.name == variant
    assert type(cell) is type(grukit.get_cell(variant, 2))
    assert cell.units == kw["units"]
    assert keras.activations.serialize(cell.activation) == kw["activation"]
    assert keras.activations.serialize(cell.recurrent_activation) == kw["recurrent_activation"]
    assert cell.use_bias == kw["use_bias"]
    for name in ("kernel_initializer", "recurrent_initializer", "bias_initializer",
                 "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
                 "kernel_constraint", "recurrent_constraint", "bias_constraint"):
        got, want = getattr(cell, name), kw[name]
        if isinstance(want, str):
            want = keras.initializers.get(want)
        assert type(got) is type(want), name
        assert ser(got)["config"] == ser(want)["config"], name
    assert cell.dropout == kw["dropout"]
    assert cell.recurrent_dropout == kw["recurrent_dropout"]
    assert cell.norm_momentum == kw["norm_momentum"]
    assert cell.norm_epsilon == kw["norm_epsilon"]
    assert cell.seed == kw["seed"]
    if "reset_after" in kw:
        assert cell.reset_after == kw["reset_after"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_config_round_trip(variant):
    kw = _nondefault_cell_kwargs(variant)
    x = _x()
    for cell in (grukit.get_cell(variant, **kw),
                 grukit.GatedRNNCell(variant=variant, **kw)):
        _check_cell_args(cell, kw, variant)
        config = cell.get_config()
        assert config["variant"] == variant
        clone = type(cell).from_config(config)
        _check_cell_args(clone, kw, variant)
        assert clone.get_config() == config
        # through Keras's generic (de)serialisation, as load_model does
        clone2 = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cell))
        assert type(clone2) is type(cell)
        _check_cell_args(clone2, kw, variant)
        # the clone computes the same function
        a, b = keras.layers.RNN(cell), keras.layers.RNN(clone)
        a(x)
        b(x)
        b.set_weights(a.get_weights())
        _close(a(x), b(x))

    # grukit.layers.GRU takes the cell arguments flat
    layer_kw = dict(return_sequences=True, go_backwards=True, unroll=True)
    gru = grukit.layers.GRU(variant=variant, **kw, **layer_kw)
    _check_cell_args(gru.cell, kw, variant)
    assert gru.variant == variant and gru.units == kw["units"]
    config = gru.get_config()
    clone = grukit.layers.GRU.from_config(config)
    _check_cell_args(clone.cell, kw, variant)
    for k, v in layer_kw.items():
        assert getattr(clone, k) == v, k
    assert clone.get_config() == config
    # grukit.layers.RNN keeps `parallel`
    rnn = grukit.layers.RNN(grukit.get_cell(variant, **kw),
                            parallel=False, return_state=True)
    clone = grukit.layers.RNN.from_config(rnn.get_config())
    assert clone.parallel is False and clone.return_state
    _check_cell_args(clone.cell, kw, variant)


# ---------------------------------------------------------- gate inspection
def _expected_gate_keys(variant):
    if variant.startswith("mgu"):
        return {"z", "r", "f", "h"}
    if variant in ("ligru", "mingru"):
        return {"z", "h"}
    return {"z", "r", "h"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_gate_activations(variant):
    x = _x(steps=7)
    ref, fast = _twins(variant, x, return_sequences=True)
    expected_h = to_np(ref(x))
    _close(fast(x), expected_h)
    g = grukit.gate_activations(ref, x)
    assert set(g) == _expected_gate_keys(variant)
    for k, v in g.items():
        assert isinstance(v, np.ndarray) and v.shape == (B, 7, U), k
        assert np.all(np.isfinite(v)), k
    gates = [k for k in g if k != "h"]
    for k in gates:
        assert np.all((g[k] >= 0) & (g[k] <= 1)), k
    spec = grukit.get_variant(variant)
    if spec.terms[spec.gates[0]] == "b":  # bias-only gates: constant
        for k in gates:
            np.testing.assert_allclose(g[k], np.broadcast_to(g[k][:1, :1], g[k].shape), atol=1e-6)
    else:
        assert g["z"].std(axis=(0, 1)).min() > 1e-4, "z does not vary"
    if variant in MGU:
        np.testing.assert_allclose(g["z"], 1.0 - g["f"], atol=1e-6)
        np.testing.assert_allclose(g["r"], g["f"], atol=1e-6)
    np.testing.assert_allclose(g["h"], expected_h, atol=ATOL)
    # the same from the fast layer and from the bare cell
    for obj in (fast, ref.cell):
        g2 = grukit.gate_activations(obj, x)
        assert set(g2) == set(g)
        for k in g:
            np.testing.assert_allclose(g2[k], g[k], atol=ATOL, err_msg=k)

    # an initial state
    h0 = _rng(6).standard_normal((B, U)).astype("float32")
    gi = grukit.gate_activations(ref, x, initial_state=h0)
    np.testing.assert_allclose(gi["h"], to_np(ref(x, initial_state=[h0])), atol=ATOL)

    # a mask: NaN gates at the masked steps, the state carried
    mask = np.ones((B, 7), bool)
    mask[1, 4:] = False
    mask[2, :2] = False
    gm = grukit.gate_activations(ref, x, mask=mask)
    for k in gates:
        assert np.all(np.isnan(gm[k][~mask])), k
        assert np.all(np.isfinite(gm[k][mask])), k
        np.testing.assert_allclose(gm[k][0], g[k][0], atol=ATOL)
    assert np.all(np.isfinite(gm["h"]))
    np.testing.assert_allclose(gm["h"], to_np(ref(x, mask=mask)), atol=ATOL)
    np.testing.assert_allclose(gm["h"], to_np(fast(x, mask=mask)), atol=ATOL)
    np.testing.assert_allclose(gm["h"][1, 4:], np.repeat(gm["h"][1, 3:4], 3, axis=0), atol=1e-7)

    # go_backwards: reported in input time order
    back = grukit.layers.RNN(_cell(variant), return_sequences=True, go_backwards=True)
    back(x)
    back.set_weights(ref.get_weights())
    gb = grukit.gate_activations(back, x)
    np.testing.assert_allclose(gb["h"][:, ::-1], to_np(back(x)), atol=ATOL)
    gf = grukit.gate_activations(ref, np.ascontiguousarray(x[:, ::-1]))
    for k in g:
        np.testing.assert_allclose(gb[k], gf[k][:, ::-1], atol=ATOL, err_msg=k)
