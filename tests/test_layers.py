"""grukit.layers specifics: projection placement, fused GRU, parallel scan, fallbacks."""
import numpy as np
import pytest
import keras

import grukit
from grukit.layers import linear_scan

from conftest import BACKEND, pass_variants, to_np

VARIANTS = [v.name for v in grukit.variants()]


def _pair(variant, **kw):
    """Two layers with identical weights, built on a (2, 7, 3) input."""
    a = grukit.layers.GRU(5, variant=variant, return_sequences=True, **kw.pop("a", {}), **kw)
    b = grukit.layers.GRU(5, variant=variant, return_sequences=True, **kw.pop("b", {}), **kw)
    x = np.random.default_rng(0).standard_normal((2, 7, 3)).astype("float32")
    a(x), b(x)
    b.set_weights(a.get_weights())
    return a, b, x


@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_projection_step_equals_sequence(variant):
    a = grukit.layers.GRU(5, variant=variant, return_sequences=True, projection="step", parallel=False)
    b = grukit.layers.GRU(5, variant=variant, return_sequences=True, projection="sequence", parallel=False)
    x = np.random.default_rng(0).standard_normal((2, 7, 3)).astype("float32")
    a(x), b(x)
    b.set_weights(a.get_weights())
    mask = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]], bool)
    np.testing.assert_allclose(to_np(a(x, mask=mask)), to_np(b(x, mask=mask)), atol=1e-6)


@pytest.mark.skipif(BACKEND != "jax", reason="JAX's eager loop")
def test_jax_eager_calls_reuse_one_compiled_loop():
    """Called eagerly on JAX, a layer's loop is compiled once per step program: a second
    layer of the same variant and shapes, with other weights, runs the same compiled loop
    (the weights are its arguments, not constants), and both give what a jitted call gives."""
    import jax

    from grukit import _loop

    x = np.random.default_rng(3).standard_normal((2, 6, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 0], [1] * 6], bool)
    layers = [grukit.layers.GRU(4, variant="mgu2", return_sequences=True,
                                recurrent_initializer="glorot_uniform") for _ in range(2)]
    for kw in ({}, {"mask": mask}):
        outs, loops = [], []
        for layer in layers:
            outs.append(to_np(layer(x, **kw)))
            loops.append(next(reversed(_loop._EAGER_SCANS.values())))  # the one just used
            jitted = jax.jit(lambda tv, ntv, xx: layer.stateless_call(tv, ntv, xx, **kw)[0])
            expected = jitted([v.value for v in layer.trainable_variables],
                              [v.value for v in layer.non_trainable_variables], x)
            np.testing.assert_allclose(outs[-1], to_np(expected), atol=1e-6, err_msg=str(kw))
        assert loops[0] is loops[1], f"the second layer compiled its own loop ({kw})"
        assert np.max(np.abs(outs[0] - outs[1])) > 1e-3  # other weights, other outputs
    with jax.disable_jit():  # op by op, as asked: no compiled loop
        programs = set(_loop._EAGER_SCANS)
        grukit.layers.GRU(4, variant="gru3", return_sequences=True)(x[:, :5])
        assert set(_loop._EAGER_SCANS) <= programs


def test_fused_gru_path_and_loop_each_equal_keras_gru():
    # use_cudnn="auto" takes the backend's fused kernel where one exists (on the
    # torch backend: torch.nn.GRU's ATen kernel, on CPU too); use_cudnn=False never.
    # Each is compared with keras.layers.GRU (an independent implementation), forwards
    # and backwards in time, so that neither path is only checked against itself.
    x = np.random.default_rng(1).standard_normal((3, 9, 4)).astype("float32")
    weights = None
    for kw in ({}, {"go_backwards": True}):
        ref = keras.layers.GRU(6, return_sequences=True, **kw)
        ref(x)
        if weights is None:
            rng = np.random.default_rng(2)
            weights = [rng.standard_normal(w.shape).astype("float32") * 0.3
                       for w in ref.get_weights()]
        ref.set_weights(weights)
        expected = to_np(ref(x))
        for use_cudnn in ("auto", False):
            layer = grukit.layers.GRU(6, return_sequences=True, use_cudnn=use_cudnn, **kw)
            layer(x)
            layer.set_weights(weights)
            np.testing.assert_allclose(to_np(layer(x)), expected, atol=1e-5,
                                       err_msg=f"use_cudnn={use_cudnn!r} {kw}")


def test_fused_gru_gradients_match_loop():
    if BACKEND != "torch":
        pytest.skip("the CPU fused kernel exists on the torch backend only")
    import torch

    x = torch.randn(2, 6, 3)
    fused = grukit.layers.GRU(4)
    loop = grukit.layers.GRU(4, use_cudnn=False)
    fused(x), loop(x)
    loop.set_weights(fused.get_weights())
    grads = []
    for layer in (fused, loop):
        out = layer(x).sum()
        grads.append([g.numpy() for g in torch.autograd.grad(out, [w.value for w in layer.trainable_weights])])
    for g1, g2 in zip(*grads):
        np.testing.assert_allclose(g1, g2, atol=1e-5)


def test_use_cudnn_true_errors_clearly():
    with pytest.raises(ValueError, match="use_cudnn=True.*'gru'"):
        grukit.layers.RNN(grukit.MGUCell(4), use_cudnn=True)
    layer = grukit.layers.GRU(4, use_cudnn=True, reset_after=False)
    with pytest.raises(ValueError, match="use_cudnn=True"):
        layer(np.zeros((1, 3, 2), "float32"))


@pytest.mark.parametrize("steps", [1, 2, 5, 64, 1000])
def test_linear_scan_matches_loop(steps):
    rng = np.random.default_rng(steps)
    a = rng.uniform(0, 1, (2, steps, 3)).astype("float32")
    b = rng.standard_normal((2, steps, 3)).astype("float32")
    h, expected = np.zeros((2, 3)), []
    for t in range(steps):
        h = a[:, t] * h + b[:, t]
        expected.append(h)
    got = to_np(linear_scan(keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b)))
    np.testing.assert_allclose(got, np.stack(expected, 1), atol=1e-5)
    # NumPy arrays are accepted as well, on every backend (torch raised a TypeError)
    np.testing.assert_allclose(to_np(linear_scan(a, b)), got, atol=1e-6)


def test_mingru_unknown_length_falls_back_and_trains():
    # An unknown time dimension cannot be scanned in parallel: the layer falls
    # back to the sequential loop, with the same values, inside fit too.
    inp = keras.Input((None, 4))
    layer = grukit.layers.GRU(8, variant="mingru", parallel=True)
    model = keras.Model(inp, keras.layers.Dense(1)(layer(inp)))
    model.compile("adam", "mse")
    x = np.random.default_rng(0).standard_normal((8, 30, 4)).astype("float32")
    hist = model.fit(x, np.ones((8, 1), "float32"), epochs=2, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    seq = grukit.layers.GRU(8, variant="mingru", parallel=False)
    seq(x)
    seq.set_weights(layer.get_weights())
    np.testing.assert_allclose(to_np(model.layers[1](x)), to_np(seq(x)), atol=1e-5)


def test_layer_rejects_bad_options():
    with pytest.raises(ValueError, match="`projection`"):
        grukit.layers.GRU(4, projection="fast")
    with pytest.raises(ValueError, match="`parallel`"):
        grukit.layers.GRU(4, variant="mingru", parallel="yes")
    with pytest.raises(ValueError, match="rank 3"):
        grukit.layers.GRU(4)(np.zeros((2, 3), "float32"))


def test_gru_layer_config_roundtrip():
    layer = grukit.layers.GRU(7, variant="mgu2", dropout=0.25, return_sequences=True,
                              projection="sequence", go_backwards=True, name="enc")
    clone = grukit.layers.GRU.from_config(layer.get_config())
    assert (clone.units, clone.variant, clone.cell.dropout, clone.return_sequences,
            clone.projection, clone.go_backwards, clone.name) == (7, "mgu2", 0.25, True,
                                                                  "sequence", True, "enc")


def test_parallel_auto_follows_the_device(monkeypatch):
    # The parallel scan pays off on accelerators only (benchmarks/cpu): "auto" is
    # parallel exactly when the backend's default device is a GPU/TPU; True always is,
    # False never; variants without the scan form (the GRU) never are.
    from grukit.layers import _on_accelerator

    assert grukit.layers.GRU(4, variant="mingru")._parallel == _on_accelerator()
    assert grukit.layers.GRU(4, variant="mingru", parallel=True)._parallel
    assert not grukit.layers.GRU(4, variant="mingru", parallel=False)._parallel
    assert not grukit.layers.GRU(4, variant="gru", parallel="auto")._parallel
    for on_accelerator in (True, False):  # both answers, whatever this host has
        monkeypatch.setattr(grukit.layers, "_on_accelerator", lambda: on_accelerator)
        assert grukit.layers.GRU(4, variant="mingru")._parallel is on_accelerator


def test_positional_arguments_follow_keras_rnn():
    # grukit.layers.RNN is a drop-in for keras.layers.RNN: the same positional
    # order (cell, return_sequences, return_state, go_backwards, stateful,
    # unroll, zero_output_for_mask); grukit's own options are keyword-only.
    x = np.random.default_rng(3).standard_normal((2, 6, 3)).astype("float32")
    layer = grukit.layers.RNN(grukit.MinGRUCell(4), True)
    assert layer.return_sequences and layer.parallel == "auto"
    assert tuple(layer(x).shape) == (2, 6, 4)
    layer = grukit.layers.RNN(grukit.MGUCell(4), False, True, True, False, False, True)
    ref = keras.layers.RNN(grukit.MGUCell(4), False, True, True, False, False, True)
    out, ref_out = layer(x), ref(x)
    layer.set_weights(ref.get_weights())
    out, ref_out = layer(x), ref(x)
    assert (layer.return_state, layer.go_backwards, layer.zero_output_for_mask) == (True, True, True)
    assert len(out) == 2 and tuple(out[0].shape) == (2, 4)
    for a, b in zip(out, ref_out):
        np.testing.assert_allclose(to_np(a), to_np(b), atol=1e-5)
    with pytest.raises(TypeError):
        grukit.layers.RNN(grukit.MinGRUCell(4), False, False, False, False, False, False, True)


def test_foreign_cell_of_other_rank_runs_on_keras_loop():
    # Keras runs cells with inputs of any rank (ConvLSTMCell on 5-D input); so
    # does grukit.layers.RNN, on Keras's loop. The rank-3 check is for grukit cells.
    from keras.src.layers.rnn.conv_lstm import ConvLSTMCell

    x = np.random.default_rng(4).standard_normal((2, 4, 5, 5, 3)).astype("float32")
    ours = grukit.layers.RNN(ConvLSTMCell(2, 3, 2, padding="same"), return_sequences=True)
    ref = keras.layers.RNN(ConvLSTMCell(2, 3, 2, padding="same"), return_sequences=True)
    ours(x), ref(x)
    ours.set_weights(ref.get_weights())
    got = to_np(ours(x))
    assert got.shape == (2, 4, 5, 5, 3)
    np.testing.assert_allclose(got, to_np(ref(x)), atol=1e-5)
    with pytest.raises(ValueError, match="rank 3"):
        grukit.layers.RNN(grukit.GRUCell(3))(np.zeros((2, 4, 5, 3), "float32"))
