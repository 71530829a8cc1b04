"""Gated recurrent cells: one mechanism, every GRU-family variant.

A cell's step is split in two so that layers can run it fast:

* :meth:`GatedRNNCell.project_inputs` -- everything that depends on the input
  alone (``x W`` plus input-side biases, or Li-GRU's batch normalisation). It
  works on a single step ``[batch, features]`` or a whole sequence
  ``[batch, time, features]``, so :class:`grukit.layers.RNN` computes it for all
  time steps in one matmul, outside the recurrent loop.
* :meth:`GatedRNNCell.recurrent_step` -- the part that needs ``h_{t-1}``.

``call(inputs, states, training)`` is just the two in sequence, which is what
``keras.layers.RNN`` runs.
"""

from __future__ import annotations

import operator
import types

import keras
from keras import ops

from grukit.variants import Variant, get_variant

__all__ = [
    "GatedRNNCell",
    "GRUCell", "GRU1Cell", "GRU2Cell", "GRU3Cell",
    "MGUCell", "MGU1Cell", "MGU2Cell", "MGU3Cell",
    "LiGRUCell", "MinGRUCell",
    "get_cell", "CELLS",
]


NORMS = (None, "layer", "rms")


def _check_rate(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a float in [0, 1), got {value!r}.")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), got {value}.")
    return float(value)


def _check_units(units):
    try:
        if isinstance(units, bool):
            raise TypeError
        units = operator.index(units)
    except TypeError:
        raise TypeError(f"`units` must be a positive int, got {units!r}.") from None
    if units <= 0:
        raise ValueError(f"`units` must be a positive int, got {units}.")
    return units


def _activation(name, value):
    try:
        return keras.activations.get(value)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"Unknown `{name}` {value!r}: expected a Keras activation name "
            f"(e.g. 'tanh', 'relu', 'linear') or a callable. ({e})"
        ) from None


class GatedRNNCell(keras.layers.GRUCell):
    """A GRU-family cell whose structure is given by a :class:`~grukit.Variant`.

    All grukit cells are this class with a different ``variant``. A variant
    lists the terms (input ``x W``, state ``h U``, bias ``b``) that each gate
    and the candidate see; the computation is, in grukit's (Keras's) update
    convention::

        g_k  = recurrent_activation(sum of the terms block k sees)   # gates
        z, r = g_z, g_r         (GRU family)
             = 1 - f, f         (MGU family: one forget gate f)
             = g_z, none        (Li-GRU, minGRU: no reset)
        h~   = activation(x W_h + b_h + (r * h_{t-1}) U_h)      # reset_after=False
             = activation(x W_h + b_h + r * (h_{t-1} U_h + b'_h))  # reset_after=True
        h_t  = z * h_{t-1} + (1 - z) * h~

    Weight layout (a strict generalisation of ``keras.layers.GRUCell``):
    ``kernel`` ``(input_dim, k_x * units)`` holds the columns of the blocks
    that see ``x``, in the order gates then candidate (``z|r|h`` for the
    GRU); ``recurrent_kernel`` ``(units, k_h * units)`` likewise for ``h``;
    ``bias`` ``(k_b * units,)``, or ``(2, k_b * units)`` (input row, recurrent
    row) when ``reset_after``. For ``variant="gru"`` the weights are exactly
    ``keras.layers.GRUCell``'s and copy 1:1 both ways.

    Dropout follows Keras (Gal & Ghahramani): one input mask and one recurrent
    mask per sequence, drawn by ``keras.layers.RNN`` before the loop; the
    recurrent mask applies to ``h_{t-1}`` where it enters ``U``, not to the
    ``z * h_{t-1}`` carry.

    Options, off by default and open to every variant (``grukit.cell_options()``
    lists them with their equations and papers):

    * ``norm="layer"`` -- layer normalisation (Ba et al. 2016, arXiv
      1607.06450) of the input projection ``x W`` and of the recurrent
      projection ``h U`` (or ``(r * h) U_h``), each column block (gate or
      candidate) on its own, before the variant's biases and the
      nonlinearities: ``LN(a) = gamma * (a - mean(a)) / sqrt(var(a) + eps) +
      beta`` over the ``units`` entries of the block, a learned gain
      ``gamma`` (ones) and bias ``beta`` (zeros) per side. E.g. the GRU with
      ``reset_after=True`` becomes
      ``z = sigmoid(LN_x(x W_z) + b_z + LN_h(h U_z) + b'_z)`` and
      ``h~ = tanh(LN_x(x W_h) + b_h + r * (LN_h(h U_h) + b'_h))``.
      ``norm="rms"`` -- RMSNorm (Zhang & Sennrich 2019, arXiv 1910.07467) in
      the same places: ``RMS(a) = gamma * a / sqrt(mean(a^2) + eps)``, gain
      only. ``eps`` is ``norm_epsilon``. Li-GRU keeps its batch normalisation
      of ``x W``; there ``norm`` normalises the recurrent projection only.
      New weights, after the variant's: ``input_norm_gamma`` (and
      ``input_norm_beta`` for ``"layer"``), ``(k_x * units,)``, and
      ``recurrent_norm_gamma`` (``recurrent_norm_beta``), ``(k_h * units,)``.
    * ``zoneout=p`` -- zoneout on the state (Krueger et al. 2017, arXiv
      1606.01305): with ``h'_t`` the variant's new state,
      ``h_t = d_t * h_{t-1} + (1 - d_t) * h'_t``, where in training every
      entry of ``d_t`` is an independent Bernoulli(p) draw, for every unit,
      sequence and time step; in inference ``d_t = p`` (the expectation).
    * ``recurrent_weight_dropout=p`` -- DropConnect on the recurrent kernel
      (Merity et al. 2018, arXiv 1708.02182): in training
      ``U -> U * M / (1 - p)`` with ``M`` one Bernoulli(1 - p) mask over the
      entries of ``recurrent_kernel``, drawn once per call and shared by
      every sequence of the batch and every time step; ``U`` unchanged in
      inference.

    The random masks of both regularisers are drawn before the recurrent loop
    with the cell's ``keras.random.SeedGenerator`` (``seed``), so the loop
    stays pure (JAX scan) and a seeded run is reproducible: only
    :class:`grukit.layers.RNN` can do this, and a plain
    ``keras.layers.RNN(cell)`` raises a ``ValueError`` when called in
    training with ``zoneout`` or ``recurrent_weight_dropout`` (in inference it
    computes the same as ``grukit.layers.RNN``). ``norm`` works in both.

    Args:
        units: positive int, dimensionality of the state.
        variant: variant name (see ``grukit.variants()``) or a ``Variant``.
        activation: candidate activation; default is the variant's
            (``tanh``; ``relu`` for Li-GRU; ``linear`` for minGRU).
        recurrent_activation: gate activation, default ``sigmoid``.
        use_bias: whether the blocks that have a bias term get one.
        kernel_initializer, recurrent_initializer, bias_initializer,
        kernel_regularizer, recurrent_regularizer, bias_regularizer,
        kernel_constraint, recurrent_constraint, bias_constraint: as in
            ``keras.layers.GRUCell``.
        dropout: float in [0, 1), fraction of the inputs dropped.
        recurrent_dropout: float in [0, 1), fraction of the state dropped
            (variants whose blocks never see ``h`` must leave it at 0).
        reset_after: apply the reset gate after the recurrent matmul (Keras
            and cuDNN default for the GRU). Default: the variant's
            (``True`` for ``gru``, ``False`` -- the papers' form -- otherwise).
            Only meaningful for variants with a reset gate. For GRU1-3 and the
            MGUs ``True`` is not their papers' equations (the gate scales
            ``h_{t-1} U_h + b'_h`` instead of ``h_{t-1}`` before ``U_h``), but
            the candidate's recurrent matmul then no longer waits for the gate:
            one matmul per step instead of two, faster on some backends (README,
            Performance).
        norm_momentum: momentum of Li-GRU's moving batch statistics.
        norm_epsilon: epsilon of every normalisation (Li-GRU's batch
            normalisation, ``norm``).
        seed: seed for the random masks (dropout, zoneout, weight drop).
        norm: ``None`` (default), ``"layer"`` or ``"rms"`` (see above).
        zoneout: float in [0, 1), probability that a unit keeps its previous
            value at a step in training (see above).
        recurrent_weight_dropout: float in [0, 1), fraction of the recurrent
            kernel's entries dropped in training (variants whose blocks never
            see ``h`` must leave it at 0).

    Call arguments:
        inputs: ``[batch, features]``, one time step.
        states: ``[h_{t-1}]`` (or the tensor itself), ``[batch, units]``.
        training: whether dropout applies (``zoneout`` and
            ``recurrent_weight_dropout`` need :class:`grukit.layers.RNN` in
            training).

    Example:
        >>> import keras
        >>> import numpy as np
        >>> import grukit
        >>> cell = grukit.GatedRNNCell(32, variant="mgu2")
        >>> layer = keras.layers.RNN(cell, return_sequences=True)
        >>> tuple(layer(np.zeros((4, 10, 8))).shape)
        (4, 10, 32)
    """

    variant: Variant = None  # class default, set by the named subclasses

    def __init__(
        self,
        units,
        variant=None,
        activation=None,
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        reset_after=None,
        norm_momentum=0.99,
        norm_epsilon=1e-3,
        seed=None,
        norm=None,
        zoneout=0.0,
        recurrent_weight_dropout=0.0,
        **kwargs,
    ):
        fixed = type(self).variant
        if variant is None and fixed is None:
            raise ValueError(
                "`variant` is required for GatedRNNCell, e.g. "
                "GatedRNNCell(64, variant='mgu2'); see grukit.variants()."
            )
        spec = get_variant(variant if variant is not None else fixed)
        if fixed is not None and spec is not fixed:
            raise ValueError(
                f"{type(self).__name__} is variant {fixed.name!r}; got "
                f"variant={variant!r}. Use grukit.get_cell(name, units) instead."
            )
        units = _check_units(units)
        dropout = _check_rate("dropout", dropout)
        recurrent_dropout = _check_rate("recurrent_dropout", recurrent_dropout)
        if recurrent_dropout and not spec.blocks_with("h"):
            raise ValueError(
                f"`recurrent_dropout` must be 0 for variant {spec.name!r}: "
                f"none of its blocks sees h_(t-1); got {recurrent_dropout}."
            )
        if norm not in NORMS:
            raise ValueError(
                f"`norm` must be one of {', '.join(map(repr, NORMS))}; got {norm!r}.")
        zoneout = _check_rate("zoneout", zoneout)
        recurrent_weight_dropout = _check_rate("recurrent_weight_dropout",
                                               recurrent_weight_dropout)
        if recurrent_weight_dropout and not spec.blocks_with("h"):
            raise ValueError(
                f"`recurrent_weight_dropout` must be 0 for variant {spec.name!r}: it has no "
                f"recurrent kernel; got {recurrent_weight_dropout}."
            )
        if reset_after is None:
            reset_after = spec.reset_after_default
        if not isinstance(reset_after, bool):
            raise TypeError(f"`reset_after` must be a bool, got {reset_after!r}.")
        if reset_after and not spec.has_reset:
            raise ValueError(
                f"`reset_after=True` needs a reset gate; variant {spec.name!r} has none."
            )
        if not use_bias and any(spec.terms[g] == "b" for g in spec.gates):
            raise ValueError(
                f"Variant {spec.name!r} computes its gates from a bias alone; "
                "`use_bias=False` would make them constant 0.5. Use use_bias=True."
            )
        if activation is None:
            activation = spec.activation
        act = _activation("activation", activation)
        rec_act = _activation("recurrent_activation", recurrent_activation)
        kwargs.pop("implementation", None)
        super().__init__(
            units,
            activation=act,
            recurrent_activation=rec_act,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            reset_after=reset_after,
            seed=seed,
            **kwargs,
        )
        # One input mask and one recurrent mask (not Keras's per-gate masks).
        self.dropout_mask_count = None
        self.implementation = 2
        self.spec = spec
        self.norm_momentum = float(norm_momentum)
        self.norm_epsilon = float(norm_epsilon)
        self.norm = norm
        self.zoneout = zoneout
        self.recurrent_weight_dropout = recurrent_weight_dropout
        self._x_blocks = spec.blocks_with("x")
        self._h_blocks = spec.blocks_with("h")
        self._b_blocks = spec.blocks_with("b") if use_bias else ()
        self.input_spec = keras.layers.InputSpec(ndim=2)

    # ------------------------------------------------------------------ build
    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"{type(self).__name__} takes one time step of rank 2 (batch, features); "
                f"got a step of shape {tuple(input_shape)}. Inside keras.layers.RNN or "
                "grukit.layers.RNN this means the layer's input was not of rank 3 (batch, "
                f"time, features): it had rank {len(input_shape) + 1}. To run a sequence "
                "through a bare cell, wrap it in one of those layers."
            )
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"The feature dimension of the input must be known; got {tuple(input_shape)}."
            )
        self.input_dim = int(input_dim)
        n = self.units
        self.input_spec = keras.layers.InputSpec(ndim=2, axes={-1: self.input_dim})
        self.recurrent_kernel = self.bias = None
        self.kernel = self.add_weight(
            shape=(self.input_dim, len(self._x_blocks) * n), name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        if self._h_blocks:
            self.recurrent_kernel = self.add_weight(
                shape=(n, len(self._h_blocks) * n), name="recurrent_kernel",
                initializer=self.recurrent_initializer,
                regularizer=self.recurrent_regularizer,
                constraint=self.recurrent_constraint,
            )
        if self._b_blocks:
            k = len(self._b_blocks) * n
            self.bias = self.add_weight(
                shape=(2, k) if self.reset_after else (k,), name="bias",
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        if self.spec.input_norm:
            k = len(self._x_blocks) * n
            self.gamma = self.add_weight(shape=(k,), name="gamma", initializer="ones")
            self.beta = self.add_weight(shape=(k,), name="beta", initializer="zeros")
            # float32 under a mixed policy, as keras.layers.BatchNormalization keeps them
            self.moving_mean = self.add_weight(
                shape=(k,), name="moving_mean", initializer="zeros", trainable=False,
                autocast=False)
            self.moving_variance = self.add_weight(
                shape=(k,), name="moving_variance", initializer="ones", trainable=False,
                autocast=False)
        # norm: a gain (and for layer norm a bias) per projection it normalises.
        self.input_norm_gamma = self.input_norm_beta = None
        self.recurrent_norm_gamma = self.recurrent_norm_beta = None
        sides = [("input", self._x_blocks)] if self.normalizes_input else []
        if self.norm and self._h_blocks:
            sides.append(("recurrent", self._h_blocks))
        for side, blocks in sides:
            k = len(blocks) * n
            setattr(self, f"{side}_norm_gamma", self.add_weight(
                shape=(k,), name=f"{side}_norm_gamma", initializer="ones"))
            if self.norm == "layer":
                setattr(self, f"{side}_norm_beta", self.add_weight(
                    shape=(k,), name=f"{side}_norm_beta", initializer="zeros"))
        self.built = True

    @property
    def normalizes_input(self):
        """Whether ``norm`` applies to the input projection (not for Li-GRU, whose BN does)."""
        return self.norm is not None and not self.spec.input_norm

    def _plain_step(self, training):
        """Whether a step computes the variant alone (no option changes it), e.g. for fused kernels."""
        return self.norm is None and not self.zoneout and not (
            training and self.recurrent_weight_dropout)

    def _normalize(self, a, gamma, beta):
        """``norm`` of every ``units``-wide column block of ``a``, times ``gamma`` plus ``beta``."""
        n = self.units
        k = a.shape[-1] // n
        dtype = a.dtype
        low = keras.backend.standardize_dtype(dtype) in ("float16", "bfloat16")
        af = ops.cast(a, "float32") if low else a  # statistics in float32 at least
        blocks = ops.reshape(af, (-1, k, n)) if k > 1 else af
        if self.norm == "layer":
            centred = blocks - ops.mean(blocks, axis=-1, keepdims=True)
            scale = ops.rsqrt(ops.mean(ops.square(centred), axis=-1, keepdims=True)
                              + self.norm_epsilon)
        else:  # rms
            centred = blocks
            scale = ops.rsqrt(ops.mean(ops.square(blocks), axis=-1, keepdims=True)
                              + self.norm_epsilon)
        out = ops.cast(centred * scale, dtype) if low else centred * scale
        if k > 1:
            out = ops.reshape(out, ops.shape(a))
        out = out * gamma
        return out if beta is None else out + beta

    def zoneout_mask(self, sequences):
        """Zoneout's keep mask ``d`` for a batch of sequences (training).

        Args:
            sequences: ``[batch, time, features]``, the layer's input.

        Returns:
            ``[batch, time, units]`` of 0/1 in the compute dtype, each entry 1
            (keep the previous value) with probability ``zoneout``, drawn with
            the cell's seed generator; ``d[:, t]`` applies at the step that
            reads input ``t``.
        """
        shape = tuple(ops.shape(sequences)[:2]) + (self.units,)
        u = keras.random.uniform(shape, seed=self.seed_generator)
        return ops.cast(u < self.zoneout, self.compute_dtype)

    def recurrent_kernel_mask(self):
        """DropConnect's mask ``M / (1 - p)`` for the recurrent kernel (training).

        Returns:
            A tensor of ``recurrent_kernel``'s shape: 0 with probability
            ``recurrent_weight_dropout``, else ``1 / (1 - p)``, drawn with the
            cell's seed generator.
        """
        ones = ops.ones(tuple(self.recurrent_kernel.shape), dtype=self.compute_dtype)
        return keras.random.dropout(ones, self.recurrent_weight_dropout,
                                    seed=self.seed_generator)

    # ----------------------------------------------------- the two halves
    def _bias_rows(self):
        """(input-side, recurrent-side) bias vectors over the biased blocks."""
        if self.bias is None:
            return None, None
        if self.reset_after:
            return self.bias[0], self.bias[1]
        return self.bias, None

    def project_inputs(self, inputs, training=False, mask=None):
        """Input half of the step: ``x W`` (normalised with ``norm``) plus input-side biases.

        Args:
            inputs: ``[..., features]`` (one step or a whole sequence).
            training: for Li-GRU, normalise with the statistics of ``inputs``
                (taken over every axis but the last, ``mask``-weighted) and
                update the moving statistics; otherwise use the moving ones.
            mask: optional boolean ``inputs.shape[:-1]``, steps to ignore in
                the batch statistics.

        Returns:
            ``[..., k_x * units]``: the column blocks of the blocks that see
            ``x`` (gates first, candidate last).
        """
        p = ops.matmul(inputs, self.kernel)
        if self.spec.input_norm:
            return self._batch_norm(p, training, mask)
        if self.normalizes_input:
            p = self._normalize(p, self.input_norm_gamma, self.input_norm_beta)
        b_in, _ = self._bias_rows()
        if b_in is None:
            return p
        if "b" in self.spec.gate_terms or "x" not in self.spec.gate_terms:
            # Biased blocks are exactly the x-blocks, or only the candidate is an x-block.
            return p + b_in[-p.shape[-1]:]
        # x-gates without bias (no registered variant): pad the gates' columns.
        gates = ops.zeros((p.shape[-1] - self.units,), dtype=p.dtype)
        return p + ops.concatenate([gates, b_in[-self.units:]], axis=0)

    def _batch_norm(self, p, training, mask):
        if training:
            axes = tuple(range(len(p.shape) - 1))
            # float16/bfloat16 projections: the statistics in float32 (a float16 sum over
            # the batch and time overflows; a bfloat16 one loses the variance)
            low = keras.backend.standardize_dtype(p.dtype) in ("float16", "bfloat16")
            pf = ops.cast(p, "float32") if low else p
            if mask is None:
                mean = ops.mean(pf, axis=axes)
                var = ops.var(pf, axis=axes)
            else:
                w = ops.expand_dims(ops.cast(mask, pf.dtype), -1)
                count = ops.maximum(ops.sum(w, axis=axes), 1.0)
                mean = ops.sum(pf * w, axis=axes) / count
                var = ops.sum(ops.square(pf - mean) * w, axis=axes) / count
            m = self.norm_momentum
            for var_, stat in ((self.moving_mean, mean), (self.moving_variance, var)):
                var_.assign(var_ * m + ops.cast(stat, var_.dtype) * (1 - m))
            mean, var = ops.cast(mean, p.dtype), ops.cast(var, p.dtype)
        else:
            mean, var = (ops.cast(v, p.dtype) for v in (self.moving_mean, self.moving_variance))
        inv = ops.rsqrt(var + self.norm_epsilon) * self.gamma
        return (p - mean) * inv + self.beta

    def _step_weights(self, kernel_mask=None):
        """The recurrent weights of the step, sliced and fused once per call of the layer.

        The step of every variant is ``pre = [x-blocks] + h_in @ u_fused + bias_fused``
        (the gate blocks that see ``h``, then the candidate's when its ``h`` term is not
        reset before the matmul), plus ``gate_const`` for gate biases that no projection
        carries, plus ``(r * h_in) @ u_cand`` for a candidate reset before its matmul
        (``reset_after=False``). This is that split, as data: :meth:`recurrent_fn` builds
        the step from it, and a hand-written backward pass can read it
        (``experiments/bptt_torch.py``).

        Args:
            kernel_mask: optional tensor of ``recurrent_kernel``'s shape multiplied
                into it (weight drop, in training).

        Returns:
            A :class:`types.SimpleNamespace` with ``units``, ``k`` (number of gate
            blocks), ``gx``/``gh`` (the gates see ``x``/``h``), ``cand_h`` (the
            candidate sees ``h``), ``fuse_cand`` (its ``h U`` is in the fused matmul),
            ``u_fused`` and ``bias_fused`` (``[units, n_fused*units]`` and its bias, or
            None), ``n_fused``, ``u_cand`` (or None) and ``gate_const`` (a list of
            ``k`` ``[units]`` tensors, or None).
        """
        n, spec = self.units, self.spec
        k = len(spec.gates)
        gx, gh = "x" in spec.gate_terms, "h" in spec.gate_terms
        b_in, b_rec = self._bias_rows()
        gb = "b" in spec.gate_terms and b_in is not None
        cand_b = "b" in spec.terms["h"] and b_in is not None
        cand_h = "h" in spec.terms["h"]
        rk = self.recurrent_kernel
        if kernel_mask is not None:
            rk = ops.convert_to_tensor(rk) * kernel_mask
        # Gate biases that no projection carries are a constant term.
        gate_const = None
        if gb and not gx:
            gate_const = b_in[: k * n]
        if gb and b_rec is not None and not gh:
            gate_const = b_rec[: k * n] if gate_const is None else gate_const + b_rec[: k * n]
        if gate_const is not None:
            gate_const = ops.split(gate_const, k, axis=-1) if k > 1 else [gate_const]
        # One matmul for every block whose h-term is not reset before U.
        fuse_cand = cand_h and (self.reset_after or not spec.has_reset)
        fused, fused_bias = [], []
        if gh:
            fused.append(rk[:, : k * n])
            if b_rec is not None:
                fused_bias.append(b_rec[: k * n] if gb else ops.zeros((k * n,), b_rec.dtype))
        if fuse_cand:
            fused.append(rk[:, -n:])
            if b_rec is not None:
                fused_bias.append(b_rec[-n:] if cand_b else ops.zeros((n,), b_rec.dtype))
        u_fused = rk if len(fused) == 2 else (fused[0] if fused else None)
        if len(fused_bias) == 2 and gb and cand_b:
            bias_fused = b_rec  # every block's recurrent bias, in column order
        else:
            bias_fused = ops.concatenate(fused_bias, 0) if len(fused_bias) == 2 else (
                fused_bias[0] if fused_bias else None)
        u_cand = rk[:, -n:] if cand_h and not fuse_cand else None
        return types.SimpleNamespace(
            units=n, k=k, gx=gx, gh=gh, cand_h=cand_h, fuse_cand=fuse_cand,
            u_fused=None if u_fused is None else ops.convert_to_tensor(u_fused),
            bias_fused=bias_fused, n_fused=(k if gh else 0) + (1 if fuse_cand else 0),
            u_cand=None if u_cand is None else ops.convert_to_tensor(u_cand),
            gate_const=gate_const)

    def recurrent_fn(self, kernel_mask=None):
        """The state half of the step, with weights sliced once.

        Args:
            kernel_mask: optional tensor of ``recurrent_kernel``'s shape
                multiplied into it (``recurrent_kernel_mask()``: training
                with ``recurrent_weight_dropout``).

        Returns ``step(projected, h_prev, recurrent_mask=None, zoneout_mask=None)
        -> (h, gates)``: ``projected`` is this step's ``project_inputs``
        (``[batch, k_x*units]``), ``zoneout_mask`` this step's ``[batch,
        units]`` slice of ``zoneout_mask()`` (training; with ``zoneout`` and no
        mask the step uses the expectation, ``d = zoneout``), ``gates`` a dict
        of ``[batch, units]`` tensors -- ``z`` always, ``r`` for variants with
        a reset gate, ``f`` for the MGU family. Call it once outside a loop
        and use the returned function inside.

        Every block is split out with one ``ops.split`` and gets its own
        activation: on XLA (TF, JAX) this fuses much better than one sigmoid
        over the concatenated gate columns followed by slicing.
        """
        w = self._step_weights(kernel_mask)
        n, k, spec = w.units, w.k, self.spec
        gx, gh, gate_const, fuse_cand, cand_h = w.gx, w.gh, w.gate_const, w.fuse_cand, w.cand_h
        u_fused, bias_fused, n_fused, u_cand = w.u_fused, w.bias_fused, w.n_fused, w.u_cand
        n_x = (k if gx else 0) + 1
        names = spec.gates
        o = _StepOps(self.activation, self.recurrent_activation)
        # norm of the recurrent projections: the gain (and bias) columns of
        # the fused matmul (all h-blocks, or the gates' when the candidate's
        # matmul is separate) and of the candidate's own matmul.
        hnorm = self.recurrent_norm_gamma is not None
        norm_fused = norm_cand = None
        if hnorm:
            params = [ops.convert_to_tensor(v) if v is not None else None
                      for v in (self.recurrent_norm_gamma, self.recurrent_norm_beta)]
            split_gates = gh and not fuse_cand
            norm_fused = [None if v is None else (v[: k * n] if split_gates else v) for v in params]
            norm_cand = [None if v is None else v[-n:] for v in params]
        zone = self.zoneout

        # Gates that see only a bias (GRU3, MGU3) are constants of the step.
        const_gates = [o.rec_act(c) for c in gate_const] if gate_const and not (gx or gh) else None

        # Gates that see x and h, with a separate candidate matmul: x W + h U
        # in one addmm over the gate columns (not with norm: h U is normalised alone).
        fold_x = gx and gh and not fuse_cand and not hnorm

        def step(projected, h_prev, recurrent_mask=None, zoneout_mask=None):
            h_in = h_prev if recurrent_mask is None else h_prev * recurrent_mask
            px = [projected[:, -n:]] if fold_x else o.blocks(projected, n_x)
            hu = None
            if fold_x:
                base = projected[:, : k * n] if bias_fused is None else projected[:, : k * n] + bias_fused
                pre = o.blocks(o.addmm(base, h_in, u_fused), k)
            else:
                if u_fused is not None:
                    if hnorm:
                        hu = self._normalize(o.matmul(h_in, u_fused), *norm_fused)
                        hu = hu if bias_fused is None else hu + bias_fused
                    else:
                        hu = o.matmul(h_in, u_fused) if bias_fused is None else o.addmm(bias_fused, h_in, u_fused)
                    hu = o.blocks(hu, n_fused)
                pre = []
                for i in range(k):
                    a = px[i] if gx else None
                    if gh:
                        a = hu[i] if a is None else a + hu[i]
                    pre.append(a)
            g = {}
            for i, name in enumerate(names):
                a = pre[i]
                if a is None:  # bias-only gates: activated once, outside the loop
                    g[name] = ops.broadcast_to(const_gates[i], ops.shape(h_prev))
                    continue
                if gate_const is not None:
                    a = a + gate_const[i]
                g[name] = o.rec_act(a)
            r = g.get("r", g.get("f"))
            cand = px[-1]
            if fuse_cand:
                cand = cand + (hu[-1] if r is None else r * hu[-1])
            elif cand_h and hnorm:
                cand = cand + self._normalize(o.matmul(r * h_in, u_cand), *norm_cand)
            elif cand_h:
                cand = o.addmm(cand, r * h_in, u_cand)
            cand = o.act(cand)
            if "f" in g:  # MGU: z = 1 - f, h = (1 - f) * h_prev + f * h~
                f = g["f"]
                h, g = o.lerp(h_prev, cand, f), {"z": 1.0 - f, "r": f, "f": f}
            else:
                h = o.lerp(cand, h_prev, g["z"])
            if zone:  # zoneout: h = d * h_prev + (1 - d) * h'
                h = o.lerp(h, h_prev, zone if zoneout_mask is None else zoneout_mask)
            return h, g

        return step

    def recurrent_step(self, projected, h_prev, recurrent_mask=None, zoneout_mask=None):
        """One state half-step: ``self.recurrent_fn()(projected, h_prev, recurrent_mask, zoneout_mask)``."""
        return self.recurrent_fn()(projected, h_prev, recurrent_mask, zoneout_mask)

    # --------------------------------------------------------------- Keras
    def call(self, inputs, states, training=False):
        if isinstance(states, (list, tuple)) and len(states) != 1:
            raise ValueError(
                f"{type(self).__name__} has one state of shape (batch, {self.units}); got "
                f"{len(states)} states (`initial_state` of the RNN layer)."
            )
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        if len(h_prev.shape) != 2 or (h_prev.shape[-1] is not None and h_prev.shape[-1] != self.units):
            raise ValueError(
                f"{type(self).__name__}: the state (`initial_state` of the RNN layer) must have "
                f"shape (batch, {self.units}); got {tuple(h_prev.shape)}."
            )
        if inputs.shape[0] is not None and h_prev.shape[0] is not None \
                and inputs.shape[0] != h_prev.shape[0]:
            raise ValueError(
                f"{type(self).__name__}: the state (`initial_state` of the RNN layer) must have "
                f"the inputs' batch size {inputs.shape[0]}; got shape {tuple(h_prev.shape)}."
            )
        if training and (self.zoneout or self.recurrent_weight_dropout):
            raise ValueError(
                f"{type(self).__name__} with zoneout={self.zoneout} and "
                f"recurrent_weight_dropout={self.recurrent_weight_dropout} draws its random "
                "masks for the whole sequence before the loop, which keras.layers.RNN cannot "
                "do: train it in grukit.layers.RNN(cell) (or grukit.layers.GRU). In inference "
                "keras.layers.RNN(cell) gives the same values."
            )
        if training and self.dropout > 0:
            inputs = inputs * self.get_dropout_mask(inputs)
        rec_mask = None
        if training and self.recurrent_dropout > 0:
            rec_mask = self.get_recurrent_dropout_mask(h_prev)
        # Inside keras.layers.RNN the step cannot update variables (JAX scan),
        # so Li-GRU's normalisation uses the moving statistics here.
        projected = self.project_inputs(inputs, training=False)
        h, _ = self.recurrent_step(projected, h_prev, rec_mask)
        new_state = [h] if isinstance(states, (list, tuple)) else h
        return h, new_state

    def get_config(self):
        config = super().get_config()
        config.pop("implementation", None)
        config.update({
            "variant": self.spec.name,
            "norm_momentum": self.norm_momentum,
            "norm_epsilon": self.norm_epsilon,
            "norm": self.norm,
            "zoneout": self.zoneout,
            "recurrent_weight_dropout": self.recurrent_weight_dropout,
        })
        return config

    @property
    def gate_names(self):
        """Names of the gate activations reported by ``recurrent_step``."""
        return ("z", "r", "f") if "f" in self.spec.gates else (
            ("z", "r") if self.spec.has_reset else ("z",))


class _StepOps:
    """The handful of primitives a step uses, bound to the fastest form per backend.

    On the torch backend the step runs in a Python loop, where every
    ``keras.ops`` call pays for argument conversion and dtype promotion and
    every elementwise op is a separate kernel; there the step uses torch's
    own fused functions (``addmm``, ``lerp``), about 1.5-2x faster loops.
    Elsewhere the step is traced once and compiled, and ``keras.ops`` is free.
    """

    def __init__(self, activation, recurrent_activation):
        self.act, self.rec_act = activation, recurrent_activation
        if keras.backend.backend() == "torch":
            import torch

            native = {keras.activations.sigmoid: torch.sigmoid, keras.activations.tanh: torch.tanh,
                      keras.activations.relu: torch.relu}
            self.act = native.get(activation, activation)
            self.rec_act = native.get(recurrent_activation, recurrent_activation)
            self.matmul = torch.matmul
            self.split = lambda t, k: torch.chunk(t, k, dim=-1)
            self.addmm = lambda c, a, b: torch.addmm(c, a, b) if a.dim() == 2 else c + a @ b
            self.lerp = torch.lerp
        else:
            self.matmul = ops.matmul
            self.split = lambda t, k: ops.split(t, k, axis=-1)
            self.addmm = lambda c, a, b: c + ops.matmul(a, b)
            self.lerp = lambda a, b, w: w * b + (1.0 - w) * a

    def blocks(self, t, count):
        """``t`` split into ``count`` equal column blocks."""
        return self.split(t, count) if count > 1 else [t]


def _register(cls):
    return keras.saving.register_keras_serializable(package="grukit")(cls)


_register(GatedRNNCell)


@_register
class GRUCell(GatedRNNCell):
    """Standard GRU (Cho et al. 2014, arXiv 1406.1078), weight-compatible with ``keras.layers.GRUCell``.

    ``reset_after=True`` (default, Keras/cuDNN form)::

        z  = sigmoid(x W_z + b_z + h U_z + b'_z)
        r  = sigmoid(x W_r + b_r + h U_r + b'_r)
        h~ = tanh(x W_h + b_h + r * (h U_h + b'_h))
        h' = z * h + (1 - z) * h~

    ``reset_after=False`` (Cho et al.): one bias per block and
    ``h~ = tanh(x W_h + (r * h) U_h + b_h)``.

    Weights are ``keras.layers.GRUCell``'s (kernel columns ``z|r|h``; bias
    ``(2, 3n)`` when ``reset_after``), so ``set_weights(keras_cell.get_weights())``
    works both ways. Parameters: ``3mn + 3n^2 + 3n`` (``6n`` biases when
    ``reset_after``). Takes every :class:`GatedRNNCell` argument but ``variant``.

    Example:
        >>> import keras
        >>> import numpy as np
        >>> import grukit
        >>> layer = keras.layers.RNN(grukit.GRUCell(64))
        >>> tuple(layer(np.zeros((2, 7, 16))).shape)
        (2, 64)
    """

    variant = get_variant("gru")


@_register
class GRU1Cell(GatedRNNCell):
    """GRU1 of Dey & Salem 2017 (arXiv 1701.05923): gates see state and bias.

    ::

        z  = sigmoid(h U_z + b_z)
        r  = sigmoid(h U_r + b_r)
        h~ = tanh(x W_h + (r * h) U_h + b_h)
        h' = z * h + (1 - z) * h~

    The paper writes ``h' = (1 - z_p) h + z_p h~``: its ``z_p`` is grukit's
    ``1 - z``, i.e. its ``(U_z, b_z)`` are grukit's negated. Parameters:
    ``mn + 3n^2 + 3n``.
    """

    variant = get_variant("gru1")


@_register
class GRU2Cell(GatedRNNCell):
    """GRU2 of Dey & Salem 2017 (arXiv 1701.05923): gates see the state only.

    ::

        z  = sigmoid(h U_z)
        r  = sigmoid(h U_r)
        h~ = tanh(x W_h + (r * h) U_h + b_h)
        h' = z * h + (1 - z) * h~

    Paper convention: ``z_p = 1 - z`` (``U_z`` negated). Parameters:
    ``mn + 3n^2 + n``.
    """

    variant = get_variant("gru2")


@_register
class GRU3Cell(GatedRNNCell):
    """GRU3 of Dey & Salem 2017 (arXiv 1701.05923): gates are a bias only.

    ::

        z  = sigmoid(b_z)
        r  = sigmoid(b_r)
        h~ = tanh(x W_h + (r * h) U_h + b_h)
        h' = z * h + (1 - z) * h~

    Paper convention: ``z_p = 1 - z`` (``b_z`` negated). Parameters:
    ``mn + n^2 + 3n``. Requires ``use_bias=True``.
    """

    variant = get_variant("gru3")


@_register
class MGUCell(GatedRNNCell):
    """Minimal gated unit, Zhou et al. 2016 (arXiv 1603.09420).

    One forget gate ``f`` acts as the reset gate and (as ``1 - f``) the
    update gate, exactly as in the paper::

        f  = sigmoid(x W_f + h U_f + b_f)
        h~ = tanh(x W_h + (f * h) U_h + b_h)
        h' = (1 - f) * h + f * h~        # grukit: z = 1 - f, r = f

    Parameters: ``2mn + 2n^2 + 2n``.
    """

    variant = get_variant("mgu")


@_register
class MGU1Cell(GatedRNNCell):
    """MGU1 of Heck & Salem 2017 (arXiv 1701.03452): forget gate sees state and bias.

    ::

        f  = sigmoid(h U_f + b_f)
        h~ = tanh(x W_h + (f * h) U_h + b_h)
        h' = (1 - f) * h + f * h~        # grukit: z = 1 - f, r = f

    Parameters: ``mn + 2n^2 + 2n``.
    """

    variant = get_variant("mgu1")


@_register
class MGU2Cell(GatedRNNCell):
    """MGU2 of Heck & Salem 2017 (arXiv 1701.03452): forget gate sees the state only.

    ::

        f  = sigmoid(h U_f)
        h~ = tanh(x W_h + (f * h) U_h + b_h)
        h' = (1 - f) * h + f * h~        # grukit: z = 1 - f, r = f

    Parameters: ``mn + 2n^2 + n``.
    """

    variant = get_variant("mgu2")


@_register
class MGU3Cell(GatedRNNCell):
    """MGU3 of Heck & Salem 2017 (arXiv 1701.03452): forget gate is a bias only.

    ::

        f  = sigmoid(b_f)
        h~ = tanh(x W_h + (f * h) U_h + b_h)
        h' = (1 - f) * h + f * h~        # grukit: z = 1 - f, r = f

    Parameters: ``mn + n^2 + 2n``. Requires ``use_bias=True``.
    """

    variant = get_variant("mgu3")


@_register
class LiGRUCell(GatedRNNCell):
    """Light GRU, Ravanelli et al. 2018 (arXiv 1803.10225).

    No reset gate, ReLU candidate, batch-normalised input projections::

        z  = sigmoid(BN(x W_z) + h U_z)
        h~ = relu(BN(x W_h) + h U_h)
        h' = z * h + (1 - z) * h~

    BN's offset replaces the biases. The paper normalises the projected
    sequence with statistics over batch *and time*; a scan step must not
    update variables (JAX), so that happens outside the loop, in
    :class:`grukit.layers.RNN`, which also updates the moving statistics.
    Inside ``keras.layers.RNN`` the step always uses the moving statistics
    (training then learns BN's scale and offset only): train Li-GRU with
    ``grukit.layers.RNN``. Parameters: ``2mn + 2n^2 + 4n`` trainable plus
    ``4n`` moving statistics.
    """

    variant = get_variant("ligru")


@_register
class MinGRUCell(GatedRNNCell):
    """minGRU, Feng et al. 2024 (arXiv 2410.01201): gates and candidate see the input only.

    ::

        z  = sigmoid(x W_z + b_z)
        h~ = x W_h + b_h                 # activation="linear" by default
        h' = z * h + (1 - z) * h~

    The paper writes ``h' = (1 - z_p) h + z_p h~``: ``z_p = 1 - z``
    (``W_z, b_z`` negated). The step is linear in ``h``, so
    :class:`grukit.layers.RNN` can evaluate a whole sequence with a parallel
    scan. Parameters: ``2mn + 2n``.
    """

    variant = get_variant("mingru")


CELLS = {cls.variant.name: cls for cls in (
    GRUCell, GRU1Cell, GRU2Cell, GRU3Cell, MGUCell, MGU1Cell, MGU2Cell,
    MGU3Cell, LiGRUCell, MinGRUCell)}


def get_cell(variant, units, **kwargs):
    """Build the cell of variant ``name``.

    Args:
        variant: a variant name from ``grukit.variants()`` (case-insensitive).
        units: positive int.
        **kwargs: any :class:`GatedRNNCell` argument.

    Example:
        >>> import grukit
        >>> cell = grukit.get_cell("mgu2", units=64)
        >>> type(cell).__name__
        'MGU2Cell'
    """
    spec = get_variant(variant)
    return CELLS[spec.name](units, **kwargs)
