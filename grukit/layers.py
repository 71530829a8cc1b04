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

import functools

import keras
from keras import ops
from keras.src import backend as _backend  # backend.rnn: the loop keras.layers.RNN uses

from grukit import _loop
from grukit.cells import GatedRNNCell, get_cell

__all__ = ["RNN", "GRU", "linear_scan"]


def _on_accelerator():
    """Whether the backend's default device is a GPU/TPU (decides ``parallel="auto"``)."""
    name = keras.backend.backend()
    try:
        if name == "jax":
            import jax
            return jax.default_backend() != "cpu"
        if name == "torch":
            import torch
            return torch.cuda.is_available()
        if name == "tensorflow":
            import tensorflow as tf
            return bool(tf.config.list_logical_devices("GPU"))
    except Exception:  # no device information: stay sequential
        return False
    return False


@functools.lru_cache(maxsize=None)
def _jax_linear_scan():
    """``linear_scan`` on JAX, jitted once: called eagerly, the scan would otherwise
    compile each of its ~10 log T ops separately for every new shape."""
    import jax

    def combine(left, right):
        return left[0] * right[0], right[0] * left[1] + right[1]

    @jax.jit
    def scan(a, b):
        return jax.lax.associative_scan(combine, (a, b), axis=1)[1]

    return scan


def linear_scan(a, b):
    """All states of ``h_t = a_t * h_{t-1} + b_t`` (``h_{-1} = 0``) along axis 1, in parallel.

    ``a`` and ``b`` are ``[batch, time, units]`` with a static ``time``. On
    JAX this is ``jax.lax.associative_scan`` (work-efficient); elsewhere a
    recursive doubling (Hillis & Steele): ``ceil(log2 T)`` vectorised passes
    of the associative combination ``(a1, b1) . (a2, b2) = (a1 a2, a2 b1 + b2)``.
    Only products of the ``a`` (in [0, 1] for gates) are formed -- no logs,
    no division -- so it is stable for any length.

    Example:
        >>> import keras
        >>> from grukit.layers import linear_scan
        >>> a, b = keras.ops.full((1, 3, 1), 0.5), keras.ops.ones((1, 3, 1))
        >>> keras.ops.convert_to_numpy(linear_scan(a, b))[0, :, 0].tolist()
        [1.0, 1.5, 1.75]
    """
    a, b = ops.convert_to_tensor(a), ops.convert_to_tensor(b)  # NumPy inputs too, on torch
    if keras.backend.backend() == "jax":
        return _jax_linear_scan()(a, b)
    steps, k = a.shape[1], 1
    while k < steps:
        pad = [[0, 0], [k, 0], [0, 0]]
        b = a * ops.pad(b[:, :-k], pad) + b
        a = a * ops.pad(a[:, :-k], pad, constant_values=1.0)
        k *= 2
    return b


@keras.saving.register_keras_serializable(package="grukit")
class RNN(keras.layers.RNN):
    """``keras.layers.RNN`` that hoists a grukit cell's input projection out of the loop.

    Same arguments, in the same positional order, and call arguments as
    ``keras.layers.RNN`` (``cell, return_sequences, return_state,
    go_backwards, stateful, unroll, zero_output_for_mask``), plus the
    keyword-only options below.

    Args:
        cell: a :class:`grukit.GatedRNNCell` (any variant), whose input must
            have rank 3 ``(batch, time, features)``. Other cells, and lists
            of cells, run exactly as in ``keras.layers.RNN``, with inputs of
            any rank that cell takes (e.g. ``ConvLSTMCell`` on 5-D input).
        return_sequences, return_state, go_backwards, stateful, unroll,
        zero_output_for_mask: as in ``keras.layers.RNN``.
        parallel: ``"auto"`` (default), ``True`` or ``False``. Run the
            recurrence as a parallel scan ``h_t = a_t * h_{t-1} + b_t``
            (:func:`linear_scan`). Only variants whose blocks never see ``h``
            (minGRU) allow it. ``"auto"`` uses it on an accelerator (GPU/TPU)
            only: on CPU the sequential loop is faster at every length
            measured, T=100 to 4096 (``benchmarks/cpu``; README's Performance
            section), since the scan's ``T log T`` memory-bound
            passes do not pay off on a few cores. It needs a static
            sequence length; where the length is unknown (TF with
            ``Input((None, d))``, JAX export with a symbolic length) the layer
            falls back to the sequential loop, with the same values.
        use_cudnn: ``"auto"`` (default), ``True`` or ``False``. For the
            standard ``gru`` variant, whose weights are ``keras.layers.GRU``'s,
            use the backend's fused GRU kernel (cuDNN on TF-GPU and
            torch-CUDA) when its conditions hold, as ``keras.layers.GRU``
            does: tanh/sigmoid activations, ``reset_after=True``, no
            recurrent dropout. On the torch backend this is ``torch.nn.GRU``'s
            own kernel, on CPU too (no mask, float32/float64). ``True``
            raises if no fused kernel can be used.
        projection: ``"auto"`` (default), ``"sequence"`` or ``"step"``. Where
            the input projection ``x W`` runs: once for the whole sequence
            before the loop, or inside the loop. ``"auto"`` picks per backend:
            ``"step"`` on TF and JAX (XLA differentiates a scan over a
            projected sequence slowly: its backward stacks a
            ``(time, batch, k*units)`` gradient), ``"sequence"`` on torch (one
            large matmul instead of one per Python-loop step), and always
            ``"sequence"`` for Li-GRU in training, whose normalisation needs
            the whole sequence, and for a cell with ``norm``, whose input-side
            normalisation then runs once over the projected sequence.

    With the same weights, outputs equal ``keras.layers.RNN(cell)`` (for
    Li-GRU in inference; in training this layer normalises with the
    statistics of the batch, over batch and time, as the paper does).

    Cell options (see :class:`grukit.GatedRNNCell`): with ``norm`` the input
    projection's normalisation runs once over the projected sequence and the
    recurrent one inside the step; in training the zoneout masks
    (``[batch, time, units]``) and the weight-drop mask are drawn here, before
    the loop, with the cell's seed generator (keras.layers.RNN cannot, and
    refuses to train such a cell); minGRU's parallel scan takes zoneout as
    ``a_t = d_t + (1 - d_t) z_t``, ``b_t = (1 - d_t)(1 - z_t) h~_t``. The fused
    GRU kernels compute the plain GRU and are used only without options.

    Example:
        >>> import numpy as np
        >>> import grukit
        >>> layer = grukit.layers.RNN(grukit.MGU2Cell(64), return_sequences=True)
        >>> tuple(layer(np.zeros((8, 100, 16))).shape)
        (8, 100, 64)
    """

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, *,
                 parallel="auto", use_cudnn="auto", projection="auto", **kwargs):
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         zero_output_for_mask=zero_output_for_mask, **kwargs)
        if parallel not in ("auto", True, False):
            raise ValueError(f"`parallel` must be 'auto', True or False, got {parallel!r}.")
        if use_cudnn not in ("auto", True, False):
            raise ValueError(f"`use_cudnn` must be 'auto', True or False, got {use_cudnn!r}.")
        if use_cudnn is True and not (isinstance(cell, GatedRNNCell) and cell.spec.name == "gru"):
            raise ValueError("`use_cudnn=True` needs the standard 'gru' variant.")
        self.use_cudnn = use_cudnn
        if projection not in ("auto", "sequence", "step"):
            raise ValueError(
                f"`projection` must be 'auto', 'sequence' or 'step', got {projection!r}.")
        self.projection = projection
        fast = isinstance(cell, GatedRNNCell)
        if parallel is True and not (fast and cell.spec.parallel):
            name = cell.spec.name if fast else type(cell).__name__
            raise ValueError(
                f"`parallel=True` needs a cell whose step is linear in the state "
                f"(minGRU); {name!r} is not."
            )
        self.parallel = parallel
        use = parallel is True or (parallel == "auto" and _on_accelerator())
        self._parallel = fast and cell.spec.parallel and use and not self.unroll

    def build(self, sequences_shape, initial_state_shape=None):
        # Only grukit cells need rank 3; other cells (e.g. ConvLSTMCell on 5-D
        # input) run on Keras's own loop, which takes any rank.
        if isinstance(self.cell, GatedRNNCell) and len(sequences_shape) != 3:
            raise ValueError(
                f"{type(self).__name__} expects inputs of rank 3 (batch, time, "
                f"features); got shape {tuple(sequences_shape)}."
            )
        super().build(sequences_shape, initial_state_shape)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        cell = self.cell
        if isinstance(cell, GatedRNNCell):
            if len(sequences.shape) != 3:
                raise ValueError(
                    f"{type(self).__name__} expects inputs of rank 3 (batch, time, "
                    f"features); got shape {tuple(sequences.shape)}."
                )
            if sequences.shape[-1] is not None and sequences.shape[-1] != cell.input_dim:
                raise ValueError(
                    f"{type(self).__name__} was built for {cell.input_dim} input features; "
                    f"got inputs of shape {tuple(sequences.shape)}."
                )
            if initial_state is not None:
                states = initial_state if isinstance(initial_state, (list, tuple)) else [initial_state]
                if len(states) != 1 or (states[0].shape[-1] is not None
                                        and tuple(states[0].shape[1:]) != (cell.units,)) \
                        or len(states[0].shape) != 2:
                    raise ValueError(
                        f"`initial_state` must be one tensor of shape (batch, {cell.units}); got "
                        f"{[tuple(s.shape) for s in states]}."
                    )
                batch, state_batch = sequences.shape[0], states[0].shape[0]
                if batch is not None and state_batch is not None and batch != state_batch:
                    raise ValueError(
                        f"`initial_state` must have shape (batch, {cell.units}) with the inputs' "
                        f"batch size {batch}; got {tuple(states[0].shape)}."
                    )
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def _project_per_step(self, training):
        """Whether the input projection runs inside the loop (see ``projection``)."""
        if self.projection != "auto":
            return self.projection == "step"
        # XLA (TF and JAX) differentiates a scan over the projected sequence
        # slowly: its backward stacks a (time, batch, k*units) gradient.
        # Projecting inside the scan is 1.2-3x faster there (benchmarks/).
        # Li-GRU in training needs the whole projected sequence for its
        # statistics; in inference its normalisation is a per-feature affine map.
        return keras.backend.backend() in ("jax", "tensorflow") and not (
            self.cell.spec.input_norm and training) and not self.cell.normalizes_input

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        if not isinstance(cell, GatedRNNCell):
            return super().inner_loop(sequences, initial_state, mask, training)
        h0 = initial_state[0]
        if training and cell.dropout > 0:
            dp = cell.get_dropout_mask(sequences[:, 0, :])
            sequences = sequences * ops.expand_dims(dp, 1)
        if cell.spec.name == "gru" and self.use_cudnn in ("auto", True):
            fused = self._fused_gru(sequences, h0, mask, training)
            if fused is not None:
                return fused
        rec_mask = None
        if training and cell.recurrent_dropout > 0:
            rec_mask = cell.get_recurrent_dropout_mask(h0)
        # Weight drop and zoneout draw their masks here, before the loop.
        kernel_mask = zone = None
        if training and cell.recurrent_weight_dropout:
            kernel_mask = cell.recurrent_kernel_mask()
        if training and cell.zoneout:
            zone = cell.zoneout_mask(sequences)
        recurrent = cell.recurrent_fn(kernel_mask)
        if self._parallel:
            projected = cell.project_inputs(sequences, training=training, mask=mask)
            return self._parallel_scan(projected, h0, mask, zone)
        if self._project_per_step(training) and not (cell.spec.input_norm and training):
            project = cell.project_inputs
            xs = sequences
        else:
            project = None
            xs = cell.project_inputs(sequences, training=training, mask=mask)
        step = _zoned_step(recurrent, project, rec_mask, zone is not None, cell.units)
        if zone is not None:  # each step's zoneout mask travels with its input
            xs = ops.concatenate([xs, ops.cast(zone, xs.dtype)], axis=-1)
        return _loop.scan(step, xs, h0, mask=mask, go_backwards=self.go_backwards,
                          return_sequences=self.return_sequences,
                          zero_output_for_mask=self.zero_output_for_mask, unroll=self.unroll)

    def _fused_gru(self, sequences, h0, mask, training):
        """The backend's fused GRU (cuDNN; torch's ATen kernel), or None where it does not apply."""
        cell = self.cell
        usable = (not (training and cell.recurrent_dropout) and not self.zero_output_for_mask
                  and cell.reset_after and not self.unroll and cell._plain_step(training))
        if usable and keras.backend.backend() == "torch" and mask is None \
                and cell.activation is keras.activations.tanh \
                and cell.recurrent_activation is keras.activations.sigmoid \
                and str(sequences.dtype).split(".")[-1] in ("float32", "float64"):
            return _loop.torch_gru(sequences, h0, cell.kernel.value, cell.recurrent_kernel.value,
                                   None if cell.bias is None else cell.bias.value,
                                   self.go_backwards, self.return_sequences)
        if usable and keras.backend.backend() != "jax":
            # On JAX, backend.gru is a plain lax.scan over the hoisted
            # projection, slower on CPU than grukit's own loop (see above).
            try:
                out = _backend.gru(
                    sequences, h0, mask,
                    kernel=cell.kernel, recurrent_kernel=cell.recurrent_kernel,
                    bias=cell.bias, activation=cell.activation,
                    recurrent_activation=cell.recurrent_activation,
                    return_sequences=self.return_sequences,
                    go_backwards=self.go_backwards, unroll=self.unroll,
                    reset_after=cell.reset_after,
                )
                if _backend.backend() == "tensorflow":
                    self.supports_jit = False  # cuDNN ops are not XLA-compatible
                return out
            except NotImplementedError:
                pass
        if self.use_cudnn is True:
            raise ValueError(
                "use_cudnn=True, but no fused GRU kernel supports this configuration "
                "or device; use use_cudnn='auto' to fall back."
            )
        return None

    def _parallel_scan(self, projected, h0, mask, zone=None):
        """minGRU over the whole sequence at once: h_t = a_t h_{t-1} + b_t.

        Needs a static sequence length (a Python int); with an unknown one
        (TF graphs with ``Input((None, d))``, JAX export with a symbolic
        length) it falls back to the sequential loop, which gives the same
        values.
        """
        cell = self.cell
        n, steps = cell.units, projected.shape[1]
        if not isinstance(steps, int):
            step = _zoned_step(cell.recurrent_fn(), None, None, zone is not None, n)
            if zone is not None:
                projected = ops.concatenate([projected, ops.cast(zone, projected.dtype)], -1)
            return _loop.scan(step, projected, h0, mask=mask,
                              go_backwards=self.go_backwards,
                              return_sequences=self.return_sequences,
                              zero_output_for_mask=self.zero_output_for_mask)
        z = cell.recurrent_activation(projected[..., :n])
        a, b = z, (1.0 - z) * cell.activation(projected[..., n:])
        if cell.zoneout:  # h = d h_prev + (1 - d)(a h_prev + b): still linear in h_prev
            d = cell.zoneout if zone is None else ops.cast(zone, a.dtype)
            a, b = d + (1.0 - d) * a, (1.0 - d) * b
        if mask is not None:  # masked steps keep the state: a = 1, b = 0
            m = ops.expand_dims(ops.cast(mask, a.dtype), -1)
            a, b = a * m + (1.0 - m), b * m
        if self.go_backwards:
            a, b = ops.flip(a, axis=1), ops.flip(b, axis=1)
            mask = None if mask is None else ops.flip(mask, axis=1)
        # Fold the initial state into the first step, then scan.
        b = ops.concatenate([a[:, :1] * ops.expand_dims(h0, 1) + b[:, :1], b[:, 1:]], axis=1)
        h = linear_scan(a, b)
        last = h[:, -1]
        outputs = h
        if mask is not None and self.zero_output_for_mask:
            outputs = h * ops.expand_dims(ops.cast(mask, h.dtype), -1)
            last = outputs[:, -1]
        elif mask is not None:
            # Keras's loop semantics: a masked step repeats the previous *output*,
            # which is zero before the first valid step (the state is h0 there).
            seen = ops.cumsum(ops.cast(mask, h.dtype), axis=1) > 0
            outputs = ops.where(ops.expand_dims(seen, -1), h, ops.zeros_like(h))
            last = outputs[:, -1]
        if not self.return_sequences:
            outputs = ops.expand_dims(last, 1)
        return last, outputs, [h[:, -1]]

    def get_config(self):
        return {**super().get_config(), "parallel": self.parallel, "use_cudnn": self.use_cudnn,
                "projection": self.projection}


def _zoned_step(recurrent, project, rec_mask, zoned, units):
    """``step(x_t, h)`` for ``_loop.scan``: projects ``x_t`` first if ``project`` is given;
    with ``zoned``, the last ``units`` columns of ``x_t`` are the step's zoneout mask."""
    def step(x_t, h):
        zone_t = None
        if zoned:
            x_t, zone_t = x_t[:, :-units], x_t[:, -units:]
        p_t = x_t if project is None else project(x_t)
        return recurrent(p_t, h, rec_mask, zone_t)[0]
    return step


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
        >>> import numpy as np
        >>> import grukit
        >>> layer = grukit.layers.GRU(32, variant="mingru", return_sequences=True)
        >>> tuple(layer(np.zeros((2, 256, 8))).shape)
        (2, 256, 32)
    """

    _LAYER_ARGS = ("return_sequences", "return_state", "go_backwards", "stateful",
                   "unroll", "zero_output_for_mask", "parallel", "use_cudnn", "projection", "name", "dtype",
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
