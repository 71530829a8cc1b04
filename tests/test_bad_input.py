"""Wrong arguments and inputs fail early, with a message that names the argument
and says what was expected.

Calls of layers and cells run in every pass (per-variant cases: see
``conftest.pass_variants``); the checks of constructor arguments, which run no backend
op, run once (``conftest.once``)."""
import re

import numpy as np
import pytest

import keras

import grukit
from conftest import once, pass_variants

VARIANTS = [v.name for v in grukit.variants()]
B, T, F, U = 2, 5, 3, 4

LAYERS = {
    "keras.layers.RNN": lambda v, **kw: keras.layers.RNN(grukit.get_cell(v, U), **kw),
    "grukit.layers.RNN": lambda v, **kw: grukit.layers.RNN(grukit.get_cell(v, U), **kw),
    "grukit.layers.GRU": lambda v, **kw: grukit.layers.GRU(U, variant=v, **kw),
}


def _x(*shape):
    return np.random.default_rng(0).standard_normal(shape).astype("float32")


def _state(*shape):
    return np.zeros(shape, "float32")


# ------------------------------------------------------------- input rank
@pytest.mark.parametrize("shape", [(B, F), (B, T, F, 2)], ids=["2d", "4d"])
@pytest.mark.parametrize("layer", [
    "keras.layers.RNN", "grukit.layers.RNN", "grukit.layers.GRU"])
@pytest.mark.parametrize("variant", ["gru", "mgu2", "mingru"])
def test_sequence_input_of_wrong_rank(variant, layer, shape):
    rnn = LAYERS[layer](variant)
    expected = r"(?s)rank 3 \(batch, time, features\)"
    if layer != "keras.layers.RNN":  # (keras.layers.RNN only shows the cell a step's shape)
        expected += ".*" + re.escape(str(shape))
    with pytest.raises(ValueError, match=expected):
        rnn(_x(*shape))


@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_cell_called_on_a_sequence(variant):
    cell = grukit.get_cell(variant, U)
    with pytest.raises(ValueError, match=r"expected ndim=2, found ndim=3"):
        cell(_x(B, T, F), [_state(B, U)])
    cell(_x(B, F), [_state(B, U)])  # built now: still rejected
    with pytest.raises(ValueError, match=r"expected ndim=2, found ndim=3"):
        cell(_x(B, T, F), [_state(B, U)])


def test_gate_activations_needs_a_sequence():
    with pytest.raises(ValueError, match=r"`inputs` must have rank 3 \(batch, time, features\)"):
        grukit.gate_activations(grukit.MGUCell(U), _x(B, F))


def test_gate_activations_rejects_other_layers():
    bidi = keras.layers.Bidirectional(keras.layers.RNN(grukit.MGUCell(U)))
    with pytest.raises(TypeError, match=r"gate_activations takes a grukit cell.*"
                                        r"got Bidirectional.*forward_layer"):
        grukit.gate_activations(bidi, _x(B, T, F))
    with pytest.raises(TypeError, match=r"layer holding one; got RNN"):  # holding a GRUCell
        grukit.gate_activations(keras.layers.RNN(keras.layers.GRUCell(U)), _x(B, T, F))


# ---------------------------------------------------- feature size change
@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_feature_size_changes_between_calls(variant, layer):
    rnn = LAYERS[layer](variant)
    rnn(_x(B, T, F))
    with pytest.raises(ValueError, match=r"(axis -1 of input shape to have value 3"
                                         r"|built for 3 input features)"):
        rnn(_x(B, T, F + 3))


def test_cell_feature_size_changes_between_calls():
    cell = grukit.MGU1Cell(U)
    cell(_x(B, F), [_state(B, U)])
    with pytest.raises(ValueError, match=r"axis -1 of input shape to have value 3"):
        cell(_x(B, F + 1), [_state(B, U)])


def test_gate_activations_feature_size():
    cell = grukit.GRU2Cell(U)
    grukit.gate_activations(cell, _x(B, T, F))
    with pytest.raises(ValueError, match=r"`inputs` has 6 features; the cell was built for 3"):
        grukit.gate_activations(cell, _x(B, T, 6))


# ----------------------------------------------------------- initial state
@pytest.mark.parametrize("shape", [(B, U + 1), (B, 1), (B, U, 1), (U,)],
                         ids=["units", "one_unit", "rank3", "rank1"])
@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("variant", ["gru", "gru3", "mgu", "ligru", "mingru"])
def test_initial_state_of_wrong_shape(variant, layer, shape):
    rnn = LAYERS[layer](variant)
    with pytest.raises(ValueError, match=r"(?s)`initial_state`.*shape \(batch, 4\)"):
        rnn(_x(B, T, F), initial_state=[_state(*shape)])


@pytest.mark.parametrize("batch", [1, B + 1])
@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("variant", ["gru", "mgu3", "mingru"])
def test_initial_state_of_wrong_batch_size(variant, layer, batch):
    rnn = LAYERS[layer](variant)
    with pytest.raises(ValueError, match=r"(?s)`initial_state`.*batch"):
        rnn(_x(B, T, F), initial_state=[_state(batch, U)])


@pytest.mark.parametrize("layer", list(LAYERS))
def test_two_initial_states_for_a_one_state_cell(layer):
    rnn = LAYERS[layer]("mgu")
    with pytest.raises(ValueError, match=r"(?s)(one state|one tensor).*\(batch, 4\)"):
        rnn(_x(B, T, F), initial_state=[_state(B, U), _state(B, U)])


@pytest.mark.parametrize("variant", pass_variants(VARIANTS))
def test_cell_called_with_a_state_of_wrong_shape(variant):
    cell = grukit.get_cell(variant, U)
    with pytest.raises(ValueError, match=r"(?s)state.*must have shape \(batch, 4\); got \(2, 5\)"):
        cell(_x(B, F), [_state(B, U + 1)])


def test_gate_activations_initial_state_shape():
    with pytest.raises(ValueError, match=r"`initial_state` must have shape \(2, 4\); got \(2, 5\)"):
        grukit.gate_activations(grukit.MGUCell(U), _x(B, T, F), initial_state=_state(B, U + 1))


# ---------------------------------------------------------------- variant
@pytest.mark.parametrize("make", [
    lambda: grukit.get_cell("mgu9", 4),
    lambda: grukit.layers.GRU(4, variant="nope"),
    lambda: grukit.GatedRNNCell(4, variant="nope"),
    lambda: grukit.get_variant("gru4"),
], ids=["get_cell", "layers.GRU", "GatedRNNCell", "get_variant"])
@once
def test_unknown_variant_name(make):
    with pytest.raises(ValueError, match=r"Unknown variant '(mgu9|nope|gru4)'\. Expected one of: "
                                         + ", ".join(VARIANTS)):
        make()


@pytest.mark.parametrize("bad", [3, None, ["mgu"]], ids=["int", "None", "list"])
@once
def test_variant_of_wrong_type(bad):
    with pytest.raises(TypeError, match=r"`variant` must be a variant name \(str\)"):
        grukit.layers.GRU(4, variant=bad)
    with pytest.raises(TypeError, match=r"`variant` must be a variant name \(str\)"):
        grukit.get_cell(bad, 4)


@once
def test_variant_is_required_for_the_generic_cell():
    with pytest.raises(ValueError, match=r"`variant` is required for GatedRNNCell"):
        grukit.GatedRNNCell(4)


@pytest.mark.parametrize("cls,variant", [
    (grukit.MGUCell, "gru"), (grukit.GRUCell, "mgu2"), (grukit.MinGRUCell, "ligru"),
    (grukit.LiGRUCell, grukit.get_variant("mingru"))])
@once
def test_named_cell_with_a_conflicting_variant(cls, variant):
    name = cls.variant.name
    with pytest.raises(ValueError, match=rf"{cls.__name__} is variant '{name}'; got variant="):
        cls(4, variant=variant)
    assert cls(4, variant=name).spec.name == name  # the matching name is fine


# ------------------------------------------------------------------ units
@pytest.mark.parametrize("units", [0, -3])
@once
def test_units_not_positive(units):
    for make in (grukit.MGUCell, lambda u: grukit.layers.GRU(u, variant="gru2"),
                 lambda u: grukit.GatedRNNCell(u, variant="ligru")):
        with pytest.raises(ValueError, match=rf"`units` must be a positive int, got {units}"):
            make(units)


@pytest.mark.parametrize("units", [4.0, 2.5, "4", None, True], ids=repr)
@once
def test_units_not_an_int(units):
    for make in (grukit.GRU1Cell, lambda u: grukit.layers.GRU(u, variant="mingru")):
        with pytest.raises(TypeError, match=r"`units` must be a positive int, got "
                                            + re.escape(repr(units))):
            make(units)


@once
def test_numpy_int_units_are_fine():
    assert grukit.MGUCell(np.int64(4)).units == 4


# ---------------------------------------------------------------- dropout
@pytest.mark.parametrize("name", ["dropout", "recurrent_dropout"])
@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5])
@once
def test_dropout_outside_unit_interval(name, rate):
    for make in (lambda **kw: grukit.GRUCell(4, **kw),
                 lambda **kw: grukit.layers.GRU(4, variant="mgu1", **kw)):
        with pytest.raises(ValueError, match=rf"`{name}` must be in \[0, 1\), got {rate}"):
            make(**{name: rate})


@pytest.mark.parametrize("name", ["dropout", "recurrent_dropout"])
@pytest.mark.parametrize("rate", ["0.1", None, True], ids=repr)
@once
def test_dropout_not_a_number(name, rate):
    with pytest.raises(TypeError, match=rf"`{name}` must be a float in \[0, 1\), got "
                                        + re.escape(repr(rate))):
        grukit.MGU3Cell(4, **{name: rate})


@once
def test_recurrent_dropout_on_mingru():
    for make in (lambda: grukit.MinGRUCell(4, recurrent_dropout=0.2),
                 lambda: grukit.layers.GRU(4, variant="mingru", recurrent_dropout=0.2)):
        with pytest.raises(ValueError, match=r"`recurrent_dropout` must be 0 for variant 'mingru'"):
            make()
    assert grukit.MinGRUCell(4, dropout=0.2).dropout == 0.2  # input dropout is fine


# ------------------------------------------------------------- activation
@pytest.mark.parametrize("name", ["activation", "recurrent_activation"])
@pytest.mark.parametrize("value", ["nope", 3], ids=repr)
@once
def test_unknown_activation(name, value):
    for make in (lambda **kw: grukit.MGU2Cell(4, **kw),
                 lambda **kw: grukit.layers.GRU(4, variant="gru1", **kw)):
        with pytest.raises(ValueError, match=rf"Unknown `{name}` {re.escape(repr(value))}: "
                                             r"expected a Keras activation name"):
            make(**{name: value})


# ------------------------------------------------------ structural options
@pytest.mark.parametrize("variant", ["gru3", "mgu3"])
@once
def test_use_bias_false_with_bias_only_gates(variant):
    for make in (lambda: grukit.get_cell(variant, 4, use_bias=False),
                 lambda: grukit.layers.GRU(4, variant=variant, use_bias=False)):
        with pytest.raises(ValueError, match=rf"Variant '{variant}' computes its gates from a "
                                             r"bias alone; `use_bias=False`.*use_bias=True"):
            make()


@pytest.mark.parametrize("variant", ["ligru", "mingru"])
@once
def test_reset_after_without_a_reset_gate(variant):
    for make in (lambda: grukit.get_cell(variant, 4, reset_after=True),
                 lambda: grukit.layers.GRU(4, variant=variant, reset_after=True)):
        with pytest.raises(ValueError, match=rf"`reset_after=True` needs a reset gate; "
                                             rf"variant '{variant}' has none"):
            make()
    assert grukit.get_cell(variant, 4, reset_after=False).reset_after is False


@once
def test_reset_after_not_a_bool():
    with pytest.raises(TypeError, match=r"`reset_after` must be a bool, got 1"):
        grukit.GRUCell(4, reset_after=1)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "mingru"])
@once
def test_parallel_true_needs_mingru(variant):
    for make in (lambda: grukit.layers.RNN(grukit.get_cell(variant, 4), parallel=True),
                 lambda: grukit.layers.GRU(4, variant=variant, parallel=True)):
        with pytest.raises(ValueError, match=rf"`parallel=True` needs a cell whose step is "
                                             rf"linear in the state \(minGRU\); '{variant}' is not"):
            make()


@once
def test_parallel_true_with_other_cells():
    with pytest.raises(ValueError, match=r"`parallel=True` needs.*'GRUCell' is not"):
        grukit.layers.RNN(keras.layers.GRUCell(4), parallel=True)
    assert grukit.layers.RNN(grukit.MinGRUCell(4), parallel=True).parallel is True


@pytest.mark.parametrize("value", ["yes", "True", None], ids=repr)
@once
def test_parallel_not_a_choice(value):
    with pytest.raises(ValueError, match=r"`parallel` must be 'auto', True or False, got "
                                         + re.escape(repr(value))):
        grukit.layers.RNN(grukit.MinGRUCell(4), parallel=value)


@once
def test_use_cudnn_and_projection_options():
    with pytest.raises(ValueError, match=r"`use_cudnn=True` needs the standard 'gru' variant"):
        grukit.layers.GRU(4, variant="mgu", use_cudnn=True)
    with pytest.raises(ValueError, match=r"`use_cudnn` must be 'auto', True or False, got 'yes'"):
        grukit.layers.GRU(4, use_cudnn="yes")
    with pytest.raises(ValueError, match=r"`projection` must be 'auto', 'sequence' or 'step', "
                                         r"got 'bad'"):
        grukit.layers.GRU(4, projection="bad")


@once
def test_unknown_keyword_argument():
    with pytest.raises(ValueError, match=r"Unrecognized keyword arguments passed to MGUCell: "
                                         r"\{'foo': 1\}"):
        grukit.layers.GRU(4, variant="mgu", foo=1)
