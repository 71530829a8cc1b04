"""Integration of every grukit variant with Keras's recurrent machinery.

Each test runs one variant through ``keras.layers.RNN(cell)`` (the reference)
and ``grukit.layers.RNN(cell)`` (the fast layer) with the same weights, checks
the Keras feature under test on both, and checks that the two agree to 1e-5.
Every variant runs in one pass of a run; the other passes run a sample of them that
has every kind of gate (``conftest.pass_variants``): what these tests exercise is
shared by all variants, whose own equations tests/test_cells_reference.py checks
in every pass.

Runtime: on JAX, every eager ``lax.scan`` call is traced and compiled anew
(~0.2 s each), which would make this file take minutes. The eager tests
therefore run under ``jax.disable_jit()`` (same values, op by op); the compiled
path is covered by ``test_fit_and_predict_compiled``, which trains and predicts
through ``jax.jit`` (``tf.function`` on TensorFlow).
"""
import contextlib
import json

import numpy as np
import pytest

import keras

import grukit
from conftest import BACKEND, pass_variants, to_np

VARIANTS = [v.name for v in grukit.variants()]
MGU = [v for v in VARIANTS if v.startswith("mgu")]
B, T, F, U = 3, 6, 5, 4
ATOL = 1e-5
VOCAB = 12
_COMPILED_TESTS = {"test_fit_and_predict_compiled"}


@pytest.fixture(autouse=True)
def _eager_jax_without_recompiling(request):
    if BACKEND == "jax" and request.function.__name__ not in _COMPILED_TESTS:
        import jax

        with jax.disable_jit():
            yield
    else:
        yield


# ----------------------------------------------------------------- helpers
def _rng(seed=0):
    return np.random.default_rng(seed)


def _x(batch=B, steps=T, seed=0):
    return _rng(seed).standard_normal((batch, steps, F)).astype("float32")


# Tests overwrite every weight with _randomize; constant initializers keep
# building cheap (an orthogonal initializer is a QR decomposition, compiled per
# shape on JAX).
FAST_INIT = dict(kernel_initializer="zeros", recurrent_initializer="zeros")


def _cell(variant, units=U, **kw):
    kw.setdefault("seed", 17)
    kw = {**FAST_INIT, **kw}
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


def _twins(variant, cell_kw=None, seed=1, **layer_kw):
    """keras.layers.RNN and grukit.layers.RNN around equal cells with equal weights."""
    cell_kw = cell_kw or {}
    ref = keras.layers.RNN(_cell(variant, **cell_kw), **layer_kw)
    fast = grukit.layers.RNN(_cell(variant, **cell_kw), **layer_kw)
    ref.build((B, T, F))
    fast.build((B, T, F))
    _randomize(ref, seed)
    fast.set_weights(ref.get_weights())
    return ref, fast


def _copy(layer, src, shape=(B, T, F)):
    layer.build(shape)
    layer.set_weights(src.get_weights())
    return layer


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
    return keras.Model(inp, layer(emb))


# ----------------------------------------------------------------- masking
LENGTHS = [T, 4, 2]


@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_embedding_mask_padding_equals_unpadded(variant):
    models = {}
    for name, cls in (("keras", keras.layers.RNN), ("grukit", grukit.layers.RNN)):
        models[name] = _embedding_model(cls(_cell(variant), return_sequences=True,
                                            return_state=True))
    _randomize(models["keras"], seed=2)
    models["grukit"].set_weights(models["keras"].get_weights())
    # padding id 0 embeds to a non-zero vector, so ignoring the mask would show
    assert np.abs(to_np(models["keras"].layers[1].embeddings)[0]).min() > 1e-3

    _, raw = _tokens(LENGTHS)
    unpadded = {i: models["keras"](raw[i][None, :].astype("int32"))
                for i, n in enumerate(LENGTHS) if n < T}
    for pre in (False, True):
        tokens, _ = _tokens(LENGTHS, pre=pre)
        outs = {k: m(tokens) for k, m in models.items()}
        for k, (seq, h) in outs.items():
            assert tuple(seq.shape) == (B, T, U) and tuple(h.shape) == (B, U)
            for i, (useq, uh) in unpadded.items():
                n = LENGTHS[i]
                valid = slice(T - n, T) if pre else slice(0, n)
                _close(to_np(seq)[i, valid], to_np(useq)[0],
                       msg=f"{k} pre={pre} row {i}: output sequence")
                _close(to_np(h)[i], to_np(uh)[0], msg=f"{k} pre={pre} row {i}: final state")
        for a, b in zip(outs["keras"], outs["grukit"]):
            _close(a, b, msg=f"keras vs grukit, pre={pre}")


@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_mask_with_initial_state_matches_keras(variant):
    """Explicit mask (rows masked at the start or the end), non-zero initial state."""
    x = _x()
    mask = np.array([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], bool)
    h0 = _rng(5).standard_normal((B, U)).astype("float32")
    for go_backwards in (False, True):
        ref, fast = _twins(variant, return_sequences=True, return_state=True,
                           go_backwards=go_backwards)
        (seq_r, h_r), (seq_f, h_f) = (layer(x, mask=mask, initial_state=[h0])
                                      for layer in (ref, fast))
        _close(h_f, h_r, msg=f"final state, go_backwards={go_backwards}")
        expected = to_np(seq_r).copy()
        if BACKEND == "jax":
            # Keras's JAX loop outputs the initial state at masked steps before
            # the first valid one (in processing order); its TF and torch
            # loops, and grukit on every backend, output zeros there.
            processed = mask[:, ::-1] if go_backwards else mask
            expected[np.cumsum(processed, axis=1) == 0] = 0.0
        _close(seq_f, expected, msg=f"output sequence, go_backwards={go_backwards}")


# ------------------------------------------------- return_sequences / state
@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_return_sequences_and_state(variant):
    x = _x()
    h0 = _rng(4).standard_normal((B, U)).astype("float32")
    ref, fast = _twins(variant, return_sequences=True, return_state=True)
    results = {}
    for name, layer in (("keras", ref), ("grukit", fast)):
        out = layer(x)
        assert isinstance(out, (list, tuple)) and len(out) == 2
        seq, h = out
        assert tuple(seq.shape) == (B, T, U)
        assert tuple(h.shape) == (B, U)
        _close(to_np(seq)[:, -1], h, msg=name)
        last = _copy(type(layer)(_cell(variant)), ref)  # return_sequences=False
        y = last(x)
        assert tuple(y.shape) == (B, U)
        _close(y, h, msg=name)
        seq0, h0_out = layer(x, initial_state=[h0])
        _differ(seq0, seq, msg=f"{name}: initial_state ignored")
        _close(to_np(seq0)[:, -1], h0_out, msg=name)
        results[name] = (seq, h, seq0, h0_out)
    for a, b in zip(results["keras"], results["grukit"]):
        _close(a, b)


# ---------------------------------------------------------------- backwards
@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_go_backwards(variant):
    x = _x()
    ref, fast = _twins(variant, return_sequences=True, go_backwards=True)
    fwd = _copy(keras.layers.RNN(_cell(variant), return_sequences=True), ref)
    expected = to_np(fwd(np.ascontiguousarray(x[:, ::-1])))  # in processing order
    _close(ref(x), expected, msg="keras go_backwards")
    _close(fast(x), expected, msg="grukit go_backwards")
    # Post-padding mask: the backward pass starts at each row's last valid step.
    mask = np.array([[1] * n + [0] * (T - n) for n in LENGTHS], bool)
    a, b = ref(x, mask=mask), fast(x, mask=mask)
    _close(a, b, msg="masked go_backwards: keras vs grukit")
    # ... which is a forward pass over the reversed valid steps (pre-padded)
    rev = np.zeros_like(x)
    for i, n in enumerate(LENGTHS):
        rev[i, T - n:] = x[i, :n][::-1]
    fwd_rev = to_np(fwd(rev, mask=mask[:, ::-1].copy()))
    _close(to_np(a)[:, -1], fwd_rev[:, -1], msg="masked go_backwards: last output")


# ----------------------------------------------------------------- stateful
@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_stateful_continues_and_resets(variant):
    x1, x2 = _x(seed=1), _x(seed=2)
    ref, fast = _twins(variant, stateful=True)
    whole = _copy(keras.layers.RNN(_cell(variant)), ref)
    expected_1 = to_np(whole(x1))
    expected_2 = to_np(whole(np.concatenate([x1, x2], axis=1)))
    _differ(expected_2, whole(x2), msg="test needs a sequence whose start matters")
    results = {}
    for name, layer in (("keras", ref), ("grukit", fast)):
        assert np.all(to_np(layer.states[0].value) == 0)
        y1 = layer(x1)
        _close(y1, expected_1, msg=f"{name}: first call starts from zero")
        _close(layer.states[0].value, y1, msg=f"{name}: state variable")
        y2 = layer(x2)
        _close(y2, expected_2, msg=f"{name}: second call continues the state")
        layer.reset_state()
        assert np.all(to_np(layer.states[0].value) == 0)
        y3 = layer(x1)
        _close(y3, expected_1, msg=f"{name}: after reset_state")
        results[name] = (y1, y2, y3)
    for a, b in zip(results["keras"], results["grukit"]):
        _close(a, b)


# ------------------------------------------------------------ bidirectional
@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_bidirectional(variant):
    x = _x()
    bidis = {
        "keras": keras.layers.Bidirectional(
            keras.layers.RNN(_cell(variant), return_sequences=True)),
        "grukit": keras.layers.Bidirectional(
            grukit.layers.RNN(_cell(variant), return_sequences=True)),
        "GRU": keras.layers.Bidirectional(
            grukit.layers.GRU(U, variant=variant, return_sequences=True, **FAST_INIT)),
    }
    for b in bidis.values():
        b.build((B, T, F))
    _randomize(bidis["keras"], seed=6)
    for k in ("grukit", "GRU"):
        bidis[k].set_weights(bidis["keras"].get_weights())
    assert type(bidis["grukit"].backward_layer) is grukit.layers.RNN
    assert type(bidis["GRU"].backward_layer) is grukit.layers.GRU
    assert bidis["GRU"].backward_layer.variant == variant
    for b in bidis.values():
        assert b.backward_layer.go_backwards and not b.forward_layer.go_backwards

    # the two halves are a forward and a backward pass of the two cells
    bi = bidis["keras"]
    fwd = _copy(keras.layers.RNN(_cell(variant), return_sequences=True), bi.forward_layer)
    bwd = _copy(keras.layers.RNN(_cell(variant), return_sequences=True), bi.backward_layer)
    expected = np.concatenate([to_np(fwd(x)), to_np(bwd(np.ascontiguousarray(x[:, ::-1])))[:, ::-1]],
                              axis=-1)
    y = bi(x)
    assert tuple(y.shape) == (B, T, 2 * U)
    _close(y, expected, msg="keras Bidirectional")

    # with an Embedding mask: all three agree, padded steps are zero
    tokens, _ = _tokens(LENGTHS)
    emb = keras.layers.Embedding(VOCAB, F, mask_zero=True)
    outs = {}
    for k, b in bidis.items():
        inp = keras.Input((None,), dtype="int32")
        model = keras.Model(inp, b(emb(inp)))
        outs[k] = to_np(model(tokens))
        for i, n in enumerate(LENGTHS):
            assert np.all(outs[k][i, n:] == 0), f"{k}: masked steps must be zero"
            assert np.all(np.abs(outs[k][i, :n]).max(axis=-1) > 0), k
    _close(outs["grukit"], outs["keras"], msg="grukit.layers.RNN")
    _close(outs["GRU"], outs["keras"], msg="grukit.layers.GRU")


# ------------------------------------------------------------------ stacked
@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_stacked_cells(variant):
    second = VARIANTS[(VARIANTS.index(variant) + 1) % len(VARIANTS)]
    x = _x()
    u2 = U + 1
    kw = dict(return_sequences=True, return_state=True)
    ref = keras.layers.RNN([_cell(variant), _cell(second, u2)], **kw)
    fast = grukit.layers.RNN([_cell(variant), _cell(second, u2)], **kw)
    ref.build((B, T, F))
    fast.build((B, T, F))
    _randomize(ref, seed=7)
    fast.set_weights(ref.get_weights())
    # the same two cells as two grukit layers, one after the other
    l1 = grukit.layers.RNN(_cell(variant), return_sequences=True)
    l2 = grukit.layers.RNN(_cell(second, u2), return_sequences=True)
    l1.build((B, T, F))
    l2.build((B, T, U))
    w = ref.get_weights()
    n1 = len(l1.get_weights())
    l1.set_weights(w[:n1])
    l2.set_weights(w[n1:])
    h1 = to_np(l1(x))
    expected = to_np(l2(h1))
    outs = {}
    for name, layer in (("keras", ref), ("grukit", fast)):
        seq, s1, s2 = layer(x)
        # each cell's state comes back as its list of states, [h]
        s1, s2 = (s[0] if isinstance(s, (list, tuple)) else s for s in (s1, s2))
        assert tuple(seq.shape) == (B, T, u2)
        assert tuple(s1.shape) == (B, U) and tuple(s2.shape) == (B, u2)
        _close(seq, expected, msg=name)
        _close(s1, h1[:, -1], msg=name)
        _close(s2, expected[:, -1], msg=name)
        outs[name] = (seq, s1, s2)
    for a, b in zip(outs["keras"], outs["grukit"]):
        _close(a, b)


# ------------------------------------------------------------------ dropout
def _dropout_kw(variant):
    return dict(dropout=0.3, recurrent_dropout=0.0 if variant == "mingru" else 0.3, seed=5)


@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_dropout_training_vs_inference(variant):
    x = _x()
    ref, fast = _twins(variant, cell_kw=_dropout_kw(variant), return_sequences=True)
    plain = _copy(keras.layers.RNN(_cell(variant), return_sequences=True), ref)
    expected = to_np(plain(x))
    outs = {}
    for name, layer in (("keras", ref), ("grukit", fast)):
        # inference: deterministic, and the same as the cell without dropout
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
    # (Not for Li-GRU: in training grukit.layers.RNN normalises with the batch
    # statistics, keras.layers.RNN with the moving ones -- documented.)
    if variant != "ligru":
        for a, b in zip(outs["keras"], outs["grukit"]):
            _close(a, b, msg="training outputs, keras vs grukit")


@pytest.mark.parametrize("variant", pass_variants(v for v in VARIANTS if v != "mingru"))
def test_recurrent_dropout_alone_acts_in_training(variant):
    x = _x()
    ref, fast = _twins(variant, cell_kw=dict(recurrent_dropout=0.5, seed=9),
                       return_sequences=True)
    outs = {}
    for name, layer in (("keras", ref), ("grukit", fast)):
        plain = _copy(type(layer)(_cell(variant), return_sequences=True), layer)
        expected = to_np(plain(x, training=True))  # same layer without dropout
        tr = to_np(layer(x, training=True))
        # the first step sees h_0 = 0, so recurrent dropout cannot change it
        _close(tr[:, 0], expected[:, 0], msg=name)
        _differ(tr, expected, msg=f"{name}: recurrent_dropout had no effect")
        outs[name] = tr
    if variant != "ligru":
        _close(outs["keras"], outs["grukit"])


def test_mingru_rejects_recurrent_dropout():
    with pytest.raises(ValueError, match="recurrent_dropout"):
        grukit.get_cell("mingru", U, recurrent_dropout=0.2)
    with pytest.raises(ValueError, match="recurrent_dropout"):
        grukit.layers.GRU(U, variant="mingru", recurrent_dropout=0.2)


def test_fit_and_predict_compiled():
    """This pass's variants (``conftest.pass_variants``), in keras.layers.RNN and in
    grukit.layers.RNN, with dropout, in one model (one compiled training graph, not one
    per layer): trains a few compiled steps, and predicts (compiled) what it computes
    eagerly. (Every variant's compiled forward pass and gradient, on JAX:
    tests/test_cells_reference.py.)"""
    rng = _rng(8)
    x = rng.standard_normal((8, T, F)).astype("float32")
    y = rng.standard_normal((8, 1)).astype("float32")
    inp = keras.Input((T, F))
    rnns = {}
    init = dict(kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal")
    for v in pass_variants(VARIANTS):
        rnns["keras", v] = keras.layers.RNN(_cell(v, **_dropout_kw(v), **init), name=f"keras_{v}")
        rnns["grukit", v] = grukit.layers.RNN(_cell(v, **_dropout_kw(v), **init),
                                              name=f"grukit_{v}")
    h = keras.layers.Concatenate()([rnn(inp) for rnn in rnns.values()])
    model = keras.Model(inp, keras.layers.Dense(1)(h))
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    before = {k: [to_np(w) for w in r.trainable_weights] for k, r in rnns.items()}
    moving = {k: [to_np(w) for w in r.non_trainable_weights] for k, r in rnns.items()}
    hist = model.fit(x, y, batch_size=4, epochs=3, verbose=0, shuffle=False)
    losses = hist.history["loss"]
    assert len(losses) == 3 and np.all(np.isfinite(losses)), losses
    for (kind, v), r in rnns.items():
        for w0, w in zip(before[kind, v], r.trainable_weights):
            assert np.all(np.isfinite(to_np(w))), w.path
            assert not np.allclose(w0, to_np(w)), f"{w.path} did not train"
        if v == "ligru":
            moved = [not np.allclose(a, to_np(b))
                     for a, b in zip(moving[kind, v], r.non_trainable_weights)]
            # grukit.layers.RNN updates the moving statistics; keras.layers.RNN cannot
            assert all(moved) if kind == "grukit" else not any(moved), (kind, moved)
    predicted = model.predict(x, batch_size=4, verbose=0)
    assert np.all(np.isfinite(predicted))
    ctx = contextlib.nullcontext()
    if BACKEND == "jax":  # the eager reference, without compiling twenty scans
        import jax
        ctx = jax.disable_jit()
    with ctx:
        eager = to_np(model(x, training=False))
    _close(predicted, eager, atol=1e-5)


# ------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_mixed_float16(variant):
    x = _x()
    ref32 = keras.layers.RNN(_cell(variant), return_sequences=True)
    ref32.build((B, T, F))
    _randomize(ref32, seed=3)
    expected = to_np(ref32(x))
    keras.config.set_dtype_policy("mixed_float16")
    outs = {}
    for name, layer in (
            ("keras", keras.layers.RNN(_cell(variant), return_sequences=True)),
            ("grukit", grukit.layers.RNN(_cell(variant), return_sequences=True)),
            ("GRU", grukit.layers.GRU(U, variant=variant, return_sequences=True, **FAST_INIT))):
        _copy(layer, ref32)
        assert keras.backend.standardize_dtype(layer.cell.kernel.dtype) == "float32"
        y = layer(x)
        assert keras.backend.standardize_dtype(y.dtype) == "float16", name
        _close(y, expected, atol=1e-2, msg=f"{name}: float16 vs float32")
        outs[name] = to_np(y)
    # keras.layers.RNN and grukit.layers.RNN may round at different points in
    # float16 (one fp16 ulp near 1 is 1e-3): compare at float16 resolution.
    _close(outs["keras"], outs["grukit"], atol=2e-3)
    _close(outs["grukit"], outs["GRU"], atol=ATOL)


@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_float64_policy(variant):
    x32 = _x()
    ref32 = keras.layers.RNN(_cell(variant), return_sequences=True)
    ref32.build((B, T, F))
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
            layer = _copy(cls(_cell(variant), return_sequences=True), ref32)
            assert all(keras.backend.standardize_dtype(w.dtype) == "float64"
                       for w in layer.weights)
            y = layer(x)
            assert keras.backend.standardize_dtype(y.dtype) == "float64", name
            _close(y, expected, atol=1e-5, msg=name)
            outs[name] = to_np(y)
        _close(outs["keras"], outs["grukit"], atol=ATOL)


# ------------------------------------------------------------ serialization
SAVE_KINDS = ["keras_rnn_subclass", "keras_rnn_base", "grukit_rnn", "grukit_gru"]


def _json(config):
    """A config as it comes back from JSON (tuples become lists)."""
    return json.loads(json.dumps(config))


def _layer_of_kind(kind, variant, **kw):
    if kind == "keras_rnn_subclass":
        return keras.layers.RNN(_cell(variant), **kw)
    if kind == "keras_rnn_base":
        return keras.layers.RNN(grukit.GatedRNNCell(U, variant=variant, seed=3, **FAST_INIT), **kw)
    if kind == "grukit_rnn":
        return grukit.layers.RNN(_cell(variant), **kw)
    return grukit.layers.GRU(U, variant=variant, **FAST_INIT, **kw)


@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
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
    assert _json(rec.get_config()) == _json(layer.get_config())
    assert len(model.weights) == len(loaded.weights)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(to_np(a), to_np(b), err_msg=a.path)


def _nondefault_cell_kwargs(variant):
    spec = grukit.get_variant(variant)
    kw = dict(
        units=5,
        activation="softsign",
        recurrent_activation="hard_sigmoid",
        # use_bias=False where the variant allows it (bias-only gates need one)
        use_bias=any(spec.terms[g] == "b" for g in spec.gates),
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


def _check_cell_args(cell, kw, variant, cls):
    ser = keras.saving.serialize_keras_object
    assert type(cell) is cls
    assert cell.spec.name == variant
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


@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_config_round_trip(variant):
    kw = _nondefault_cell_kwargs(variant)
    x = _x()
    for cell in (grukit.get_cell(variant, **kw), grukit.GatedRNNCell(variant=variant, **kw)):
        cls = type(cell)
        _check_cell_args(cell, kw, variant, cls)
        config = cell.get_config()
        assert config["variant"] == variant
        clone = cls.from_config(config)
        _check_cell_args(clone, kw, variant, cls)
        assert clone.get_config() == config
        # through Keras's generic (de)serialisation, as load_model does
        clone2 = keras.saving.deserialize_keras_object(
            _json(keras.saving.serialize_keras_object(cell)))
        _check_cell_args(clone2, kw, variant, cls)
        # the clone computes the same function
        a = keras.layers.RNN(cell)
        a.build((B, T, F))
        _randomize(a)
        b = _copy(keras.layers.RNN(clone), a)
        _close(b(x), a(x))

    # grukit.layers.GRU takes the cell arguments flat
    layer_kw = dict(return_sequences=True, go_backwards=True, unroll=True,
                    zero_output_for_mask=True)
    gru = grukit.layers.GRU(variant=variant, **kw, **layer_kw)
    _check_cell_args(gru.cell, kw, variant, grukit.CELLS[variant])
    assert gru.variant == variant and gru.units == kw["units"]
    config = gru.get_config()
    clone = grukit.layers.GRU.from_config(_json(config))
    _check_cell_args(clone.cell, kw, variant, grukit.CELLS[variant])
    for k, v in layer_kw.items():
        assert getattr(clone, k) == v, k
    assert _json(clone.get_config()) == _json(config)
    # grukit.layers.RNN keeps `parallel`
    rnn = grukit.layers.RNN(grukit.get_cell(variant, **kw), parallel=False, return_state=True)
    clone = grukit.layers.RNN.from_config(_json(rnn.get_config()))
    assert clone.parallel is False and clone.return_state
    _check_cell_args(clone.cell, kw, variant, grukit.CELLS[variant])


# ---------------------------------------------------------- gate inspection
def _expected_gate_keys(variant):
    if variant.startswith("mgu"):
        return {"z", "r", "f", "h"}
    if variant in ("ligru", "mingru"):
        return {"z", "h"}
    return {"z", "r", "h"}


@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_gate_activations(variant):
    steps = T
    x = _x(steps=steps)
    ref, fast = _twins(variant, return_sequences=True)
    expected_h = to_np(ref(x))
    _close(fast(x), expected_h)
    g = grukit.gate_activations(ref, x)
    assert set(g) == _expected_gate_keys(variant)
    for k, v in g.items():
        assert isinstance(v, np.ndarray) and v.shape == (B, steps, U), k
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
    # the same from the bare cell
    g2 = grukit.gate_activations(ref.cell, x)
    assert set(g2) == set(g)
    for k in g:
        np.testing.assert_allclose(g2[k], g[k], atol=ATOL, err_msg=k)

    # an initial state
    h0 = _rng(6).standard_normal((B, U)).astype("float32")
    gi = grukit.gate_activations(fast, x, initial_state=h0)
    np.testing.assert_allclose(gi["h"], to_np(ref(x, initial_state=[h0])), atol=ATOL)
    # backend tensors: layers' outputs (under PyTorch, tensors that track gradients)
    xt = keras.layers.Dense(F, kernel_initializer="identity", bias_initializer="zeros")(x)
    h0t = keras.layers.Dense(U, kernel_initializer="identity", bias_initializer="zeros")(h0)
    gt = grukit.gate_activations(fast, xt, initial_state=h0t)
    assert set(gt) == set(gi)
    for k in gi:
        np.testing.assert_allclose(gt[k], gi[k], atol=1e-6, err_msg=k)

    # go_backwards: reported in input time order
    back = _copy(grukit.layers.RNN(_cell(variant), return_sequences=True, go_backwards=True),
                 ref, (B, steps, F))
    gb = grukit.gate_activations(back, x)
    np.testing.assert_allclose(gb["h"][:, ::-1], to_np(back(x)), atol=ATOL)
    gf = grukit.gate_activations(ref, np.ascontiguousarray(x[:, ::-1]))
    for k in g:
        np.testing.assert_allclose(gb[k], gf[k][:, ::-1], atol=ATOL, err_msg=k)


@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_gate_activations_with_mask(variant):
    """NaN gates at the masked steps, the state carried, h equal to the layer's output."""
    steps = T
    x = _x(steps=steps)
    ref, fast = _twins(variant, return_sequences=True)
    g = grukit.gate_activations(ref, x)
    gates = [k for k in g if k != "h"]
    mask = np.ones((B, steps), bool)
    mask[1, 3:] = False
    mask[2, :2] = False
    gm = grukit.gate_activations(ref, x, mask=mask)
    assert set(gm) == set(g)
    for k in gates:
        assert np.all(np.isnan(gm[k][~mask])), k
        assert np.all(np.isfinite(gm[k][mask])), k
        np.testing.assert_allclose(gm[k][0], g[k][0], atol=ATOL)
    assert np.all(np.isfinite(gm["h"]))
    np.testing.assert_allclose(gm["h"], to_np(fast(x, mask=mask)), atol=ATOL)
    np.testing.assert_allclose(gm["h"], to_np(ref(x, mask=mask)), atol=ATOL)
    np.testing.assert_allclose(gm["h"][1, 3:], np.repeat(gm["h"][1, 2:3], T - 3, axis=0), atol=1e-7)
    np.testing.assert_allclose(gm["h"][2, :2], 0.0)
