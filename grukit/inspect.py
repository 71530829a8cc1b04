"""Looking inside the gates."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from grukit import _loop
from grukit.cells import GatedRNNCell

__all__ = ["gate_activations"]


def _find_cell(obj):
    if isinstance(obj, GatedRNNCell):
        return obj, False
    if isinstance(obj, keras.layers.RNN) and isinstance(obj.cell, GatedRNNCell):
        return obj.cell, bool(obj.go_backwards)
    raise TypeError(
        "gate_activations takes a grukit cell or a keras.layers.RNN / "
        f"grukit.layers.RNN layer holding one; got {type(obj).__name__}. For a "
        "Bidirectional layer pass .forward_layer or .backward_layer."
    )


def _numpy(value, dtype=None):
    """``value`` (a NumPy array, a nested list, or a backend tensor -- one that tracks
    gradients, such as a layer's output under PyTorch, included) as a NumPy array."""
    if ops.is_tensor(value):
        value = ops.convert_to_numpy(value)
    return np.asarray(value, dtype=dtype)


def gate_activations(layer_or_cell, inputs, initial_state=None, mask=None):
    """Gate activations at every time step of a sequence (inference mode).

    Args:
        layer_or_cell: a grukit cell, or a ``keras.layers.RNN`` /
            ``grukit.layers.RNN`` whose cell is a grukit cell. The cell must be
            built (or is built from ``inputs``).
        inputs: ``[batch, time, features]``: a NumPy array, or a backend
            tensor (a layer's output, one that tracks gradients included).
        initial_state: optional ``[batch, units]`` initial state (zeros by
            default), an array or a tensor.
        mask: optional boolean ``[batch, time]``; at masked steps the state is
            carried and the gates reported as NaN.

    Returns:
        A dict of NumPy arrays ``[batch, time, units]`` in input time order:
        ``"z"`` (update gate: fraction of the previous state kept), ``"r"``
        (reset gate) where the variant has one, ``"f"`` for the MGU family
        (``f = r = 1 - z``), and ``"h"``, the states.

    Example:
        >>> import numpy as np
        >>> import grukit
        >>> cell = grukit.MGUCell(8)
        >>> x = np.random.default_rng(0).random((2, 20, 3))
        >>> g = grukit.gate_activations(cell, x)
        >>> sorted(g), g["f"].shape
        (['f', 'h', 'r', 'z'], (2, 20, 8))
    """
    cell, backwards = _find_cell(layer_or_cell)
    x = ops.convert_to_tensor(_numpy(inputs), dtype=cell.compute_dtype)
    if len(x.shape) != 3:
        raise ValueError(
            f"`inputs` must have rank 3 (batch, time, features); got shape {tuple(x.shape)}."
        )
    if not cell.built:
        cell.build((x.shape[0], x.shape[2]))
    if cell.input_dim != x.shape[2]:
        raise ValueError(
            f"`inputs` has {x.shape[2]} features; the cell was built for {cell.input_dim}."
        )
    batch, steps = x.shape[0], x.shape[1]
    if initial_state is None:
        h0 = ops.zeros((batch, cell.units), dtype=cell.compute_dtype)
    else:
        h0 = ops.convert_to_tensor(_numpy(initial_state), dtype=cell.compute_dtype)
        if tuple(h0.shape) != (batch, cell.units):
            raise ValueError(
                f"`initial_state` must have shape {(batch, cell.units)}; got {tuple(h0.shape)}."
            )
    mask = None if mask is None else _numpy(mask, dtype=bool)
    if backwards:  # run the layer's direction as a forward pass over the reversed input
        x = ops.flip(x, axis=1)
        mask = None if mask is None else mask[:, ::-1]
    m = None if mask is None else ops.convert_to_tensor(mask)
    recurrent = cell.recurrent_fn()
    projected = cell.project_inputs(x, training=False)
    _, states, _ = _loop.scan(lambda p_t, h: recurrent(p_t, h)[0], projected, h0, mask=m)
    # The gates depend only on (projected_t, h_{t-1}): one batched pass over all steps.
    h_prev = ops.concatenate([ops.expand_dims(h0, 1), states[:, :-1]], axis=1)
    flat = lambda t: ops.reshape(t, (batch * steps, t.shape[-1]))
    _, gates = recurrent(flat(projected), flat(h_prev))
    names = cell.gate_names
    result = {k: np.asarray(ops.convert_to_numpy(gates[k]), dtype="float64").reshape(batch, steps, -1)
              for k in names}
    result["h"] = np.asarray(ops.convert_to_numpy(states), dtype="float64")
    if backwards:
        result = {k: v[:, ::-1] for k, v in result.items()}
        mask = None if mask is None else mask[:, ::-1]
    if mask is not None:
        hidden = ~np.asarray(mask, dtype=bool)
        for k in names:
            result[k][hidden] = np.nan
    return result
