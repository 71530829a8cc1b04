"""ETT forecasting: a SegRNN-style forecaster on a grukit recurrent layer.

The model (Lin et al. 2023, "SegRNN: Segment Recurrent Neural Network for
Long-Term Time Series Forecasting", arXiv 2308.11200), for a window
``x [batch, lookback, channels]`` of standardised values:

1. instance normalisation, reversed at the end (``norm``): subtract the
   window's last value per channel (``"last"``, SegRNN's default), its mean
   (``"mean"``), or its mean and divide by its std (``"revin"``, RevIN
   without affine parameters);
2. channel independence: the channels are folded into the batch;
3. the lookback is cut into ``lookback / segment`` segments of length
   ``segment``, each embedded by ``Dense(units, relu)``;
4. a grukit recurrent layer (``variant``, ``units``) runs over the segments;
5. parallel multi-step decoding: for each of the ``horizon / segment``
   output segments, a learned positional embedding (position embedding and
   channel embedding, ``units/2`` each, concatenated) is the input of one
   more recurrent step of the *same* layer, started from the encoder's final
   state -- all output segments at once, as a batch of length-1 sequences;
6. dropout, ``Dense(segment)``, the output segments concatenated, then
   de-normalised.

Loss MSE (or MAE) on standardised values; test metrics are MSE and MAE on
standardised values over every test window (Informer/DLinear convention,
:meth:`grukit.datasets.ETTData.windows`).
"""

from __future__ import annotations

import keras
from keras import ops

import grukit


STANDARD_HORIZONS = (96, 192, 336, 720)
NORMS = ("last", "mean", "revin")


@keras.saving.register_keras_serializable(package="grukit_zoo")
class SegRNN(keras.Model):
    """SegRNN with a grukit recurrent layer (see the module docstring).

    Args:
        lookback: input window length, a multiple of ``segment``.
        horizon: forecast length, a multiple of ``segment``.
        channels: number of series (7 for ETT).
        segment: segment length ``w``.
        units: state and embedding size ``d``.
        variant: grukit variant of the recurrent layer.
        dropout: dropout before the output projection.
        norm: ``"last"``, ``"mean"`` or ``"revin"``.

    Call: ``x [batch, lookback, channels]`` -> ``[batch, horizon, channels]``.

    Example:
        >>> import numpy as np
        >>> from grukit.zoo.models.ett_forecasting.model import SegRNN
        >>> m = SegRNN(96, 96, 7, segment=24, units=64, variant="mgu2")
        >>> tuple(m(np.zeros((2, 96, 7), "float32")).shape)
        (2, 96, 7)
    """

    def __init__(self, lookback, horizon, channels, segment=24, units=512, variant="gru",
                 dropout=0.1, norm="last", **kwargs):
        super().__init__(**kwargs)
        check_shape_hparams(lookback, horizon, segment, units)
        if norm not in NORMS:
            raise ValueError(f"SegRNN: norm must be one of {NORMS}; got {norm!r}.")
        if not (isinstance(channels, int) and channels >= 1):
            raise ValueError(f"SegRNN: channels must be a positive integer; got {channels!r}.")
        self.lookback, self.horizon, self.channels = lookback, horizon, channels
        self.segment, self.units, self.variant = segment, units, variant
        self.dropout_rate, self.norm = float(dropout), norm
        self.in_segments, self.out_segments = lookback // segment, horizon // segment
        self.embedding = keras.layers.Dense(units, activation="relu", name="segment_embedding")
        self.rnn = grukit.layers.GRU(units, variant=variant, name="rnn")
        self.position_embedding = self.add_weight(
            shape=(self.out_segments, units // 2), name="position_embedding",
            initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.channel_embedding = self.add_weight(
            shape=(channels, units - units // 2), name="channel_embedding",
            initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.dropout = keras.layers.Dropout(dropout)
        self.head = keras.layers.Dense(segment, name="segment_output")

    def build(self, input_shape=None):
        d = self.units
        self.embedding.build((None, self.in_segments, self.segment))
        self.rnn.build((None, self.in_segments, d))
        self.head.build((None, d))
        self.built = True

    def _normalise(self, x):
        if self.norm == "last":
            loc = ops.stop_gradient(x[:, -1:, :])
            return x - loc, loc, None
        loc = ops.mean(x, axis=1, keepdims=True)
        if self.norm == "mean":
            return x - loc, loc, None
        scale = ops.sqrt(ops.var(x, axis=1, keepdims=True) + 1e-5)
        return (x - loc) / scale, loc, scale

    def call(self, x, training=False):
        c, n, m, w, d = self.channels, self.in_segments, self.out_segments, self.segment, self.units
        x, loc, scale = self._normalise(x)
        # channel independence: [b, L, c] -> [b, c, L] -> [b*c, n, w]
        segments = ops.reshape(ops.transpose(x, (0, 2, 1)), (-1, n, w))
        h = self.rnn(self.embedding(segments), training=training)          # [b*c, d]
        # parallel multi-step decoding: one step per (sample, channel, output segment)
        pos = ops.broadcast_to(ops.expand_dims(self.position_embedding, 0), (c, m, d // 2))
        chan = ops.broadcast_to(ops.expand_dims(self.channel_embedding, 1), (c, m, d - d // 2))
        queries = ops.reshape(ops.concatenate([pos, chan], axis=-1), (1, c * m, d))
        queries = queries + ops.zeros_like(x[:, :1, :1])                    # [b, c*m, d]
        queries = ops.reshape(queries, (-1, 1, d))                         # [b*c*m, 1, d]
        h0 = ops.reshape(ops.expand_dims(h, 1) + ops.zeros((1, m, 1), h.dtype), (-1, d))
        hy = self.rnn(queries, initial_state=h0, training=training)        # [b*c*m, d]
        y = self.head(self.dropout(hy, training=training))                 # [b*c*m, w]
        y = ops.transpose(ops.reshape(y, (-1, c, m * w)), (0, 2, 1))       # [b, horizon, c]
        if scale is not None:
            y = y * scale
        return y + loc

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.horizon, self.channels)

    def get_config(self):
        return {**super().get_config(), "lookback": self.lookback, "horizon": self.horizon,
                "channels": self.channels, "segment": self.segment, "units": self.units,
                "variant": self.variant, "dropout": self.dropout_rate, "norm": self.norm}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def check_shape_hparams(lookback, horizon, segment, units):
    """Raise ``ValueError`` unless lookback and horizon are positive multiples of segment."""
    for key, value in (("segment", segment), ("units", units), ("lookback", lookback),
                       ("horizon", horizon)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"ett-forecasting: {key} must be a positive integer; got {value!r}.")
    if units < 2:
        raise ValueError(f"ett-forecasting: units must be at least 2; got {units}.")
    if horizon % segment:
        raise ValueError(
            f"ett-forecasting: horizon {horizon} is not a multiple of the segment length "
            f"{segment}. Expected a positive multiple of {segment} (the standard horizons are "
            f"{', '.join(map(str, STANDARD_HORIZONS))}).")
    if lookback % segment:
        raise ValueError(f"ett-forecasting: lookback {lookback} is not a multiple of the "
                         f"segment length {segment}.")
