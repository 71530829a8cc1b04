"""Recurrent layers that run grukit cells fast.

:class:`RNN` is ``keras.layers.RNN`` with one change: for a grukit cell it
computes the input half of every step (``x W`` + biases, Li-GRU's batch
normalisation) for the whole sequence in one matmul before the loop, and runs
only the recurrent half per step on the backend's native loop. For minGRU,
whose step is linear in the state, it can replace the loop by a parallel scan.
Everything else (masking, ``return_sequences``, ``return_state``,
``go_backwards``, ``stateful``, ``Bidirectional``, dropout) is Keras's own.
"""

from __future__ import annotations

import keras
from keras import ops
from keras.src import backend as _backend  # backend.rnn: the loop keras.layers.RNN uses

from grukit.cells import GatedRNNCell, get_cell

__all__ = ["RNN", "GRU"]


@keras.saving.register_keras_serializable(package="grukit")
class RNN(keras.layers.RNN):
    """``keras.layers.RNN`` that hoists a grukit cell's input projection out of the loop.

    Same arguments and call arguments as ``keras.layers.RNN``, plus:

    Args:
        cell: a :class:`grukit.GatedRNNCell` (any variant). Other cells, and
            lists of cells, run exactly as in ``keras.layers.RNN``.
        parallel: ``"auto"`` (default), ``True`` or ``False``. Run the
            recurrence as a parallel scan ``h_t = a_t * h_{t-1} + b_t``
            (``keras.ops.associative_scan``). Only variants whose blocks never
            see ``h`` (minGRU) allow it; ``"auto"`` uses it for them.

    With the same weights, outputs equal ``keras.layers.RNN(cell)`` (for
    Li-GRU in inference; in training this layer normalises with the
    statistics of the batch, over batch and time, as the paper does).

    Example:
        >>> layer = grukit.layers.RNN(grukit.MGU2Cell(64), return_sequences=True)
        >>> layer(np.zeros((8, 100, 16))).shape
        (8, 100, 64)
    """

    def __init__(self, cell, parallel="auto", **kwargs):
        super().__init__(cell, **kwargs)
        if parallel not in ("auto", True, False):
            raise ValueError(f"`parallel` must be 'auto', True or False, got {parallel!r}.")
        fast = isinstance(cell, GatedRNNCell)
        if parallel is True and not (fast and cell.spec.parallel):
            name = cell.spec.name if fast else type(cell).__name__
            raise ValueError(
                f"`parallel=True` needs a cell whose step is linear in the state "
                f"(minGRU); {name!r} is not."
            )
        self.parallel = parallel
        self._parallel = fast and cell.spec.parallel and parallel is not False and not self.unroll

    def build(self, sequences_shape, initial_state_shape=None):
        if len(sequences_shape) != 3:
            raise ValueError(
                f"{type(self).__name__} expects inputs of rank 3 (batch, time, "
                f"features); got shape {tuple(sequences_shape)}."
            )
        super().build(sequences_shape, initial_state_shape)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        if not isinstance(cell, GatedRNNCell):
            return super().inner_loop(sequences, initial_state, mask, training)
        if training and cell.dropout > 0:
            dp = cell.get_dropout_mask(sequences[:, 0, :])
            sequences = sequences * ops.expand_dims(dp, 1)
        rec_mask = None
        if training and cell.recurrent_dropout > 0:
            rec_mask = cell.get_recurrent_dropout_mask(initial_state[0])
        projected = cell.project_inputs(sequences, training=training, mask=mask)
        if self._parallel:
            return self._parallel_scan(projected, initial_state[0], mask)

        def step(p_t, states):
            h, _ = cell.recurrent_step(p_t, states[0], rec_mask)
            return h, [h]

        if projected is None:  # no block sees x: feed a dummy zero-width sequence
            projected = sequences[:, :, :0]
        return _backend.rnn(
            step,
            projected,
            list(initial_state),
            go_backwards=self.go_backwards,
            mask=mask,
            unroll=self.unroll,
            input_length=sequences.shape[1],
            zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=self.return_sequences,
        )

    def _parallel_scan(self, projected, h0, mask):
        """h_t = a_t h_{t-1} + b_t for all t at once (minGRU)."""
        cell = self.cell
        n = cell.units
        z = cell.recurrent_activation(projected[..., :n])
        hh = cell.activation(projected[..., n:])
        a, b = z, (1.0 - z) * hh
        if mask is not None:  # masked steps keep the state: a = 1, b = 0
            m = ops.expand_dims(ops.cast(mask, a.dtype), -1)
            a = a * m + (1.0 - m)
            b = b * m
        if self.go_backwards:
            a, b = ops.flip(a, axis=1), ops.flip(b, axis=1)
            if mask is not None:
                mask = ops.flip(mask, axis=1)
        # Fold the initial state into the first step.
        b = ops.concatenate([a[:, :1] * ops.expand_dims(h0, 1) + b[:, :1], b[:, 1:]], axis=1)

        def combine(left, right):
            a1, b1 = left
            a2, b2 = right
            return a1 * a2, a2 * b1 + b2

        _, h = ops.associative_scan(combine, (a, b), axis=1)
        last = h[:, -1]
        outputs = h
        if mask is not None and self.zero_output_for_mask:
            outputs = h * ops.expand_dims(ops.cast(mask, h.dtype), -1)
        if not self.return_sequences:
            outputs = ops.expand_dims(last, 1)
        return last, outputs, [last]

    def get_config(self):
        return {**super().get_config(), "parallel": self.parallel}


@keras.saving.register_keras_serializable(package="grukit")
class GRU(RNN):
    """A recurrent layer of any grukit variant, built from its arguments.

    ``grukit.layers.GRU(64, variant="mgu2", dropout=0.1)`` is
    ``grukit.layers.RNN(grukit.get_cell("mgu2", 64, dropout=0.1))``.

    Args:
        units: positive int.
        variant: variant name (``grukit.variants()``), default ``"gru"``.
        return_sequences, return_state, go_backwards, stateful, unroll,
        zero_output_for_mask, parallel: as in :class:`RNN`.
        **kwargs: cell arguments (see :class:`grukit.GatedRNNCell`) and layer
            arguments (``name``, ``dtype``, ...).

    Example:
        >>> layer = grukit.layers.GRU(32, variant="mingru", return_sequences=True)
        >>> layer(np.zeros((2, 4096, 8))).shape
        (2, 4096, 32)
    """

    _LAYER_ARGS = ("return_sequences", "return_state", "go_backwards", "stateful",
                   "unroll", "zero_output_for_mask", "parallel", "name", "dtype",
                   "trainable", "activity_regularizer", "input_shape", "batch_input_shape")

    def __init__(self, units, variant="gru", **kwargs):
        layer_kwargs = {k: kwargs.pop(k) for k in self._LAYER_ARGS if k in kwargs}
        cell_kwargs = dict(kwargs)
        if "dtype" in layer_kwargs:
            cell_kwargs["dtype"] = layer_kwargs["dtype"]
        cell = get_cell(variant, units, name=f"{variant}_cell", **cell_kwargs)
        super().__init__(cell, **layer_kwargs)
        self._cell_kwargs = kwargs

    @property
    def units(self):
        return self.cell.units

    @property
    def variant(self):
        return self.cell.spec.name

    def get_config(self):
        config = super().get_config()
        cell_config = config.pop("cell")["config"]
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        return {**config, **cell_config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
