"""The ``ett-forecasting`` hyperparameters: :class:`EttConfig`."""

from __future__ import annotations

import dataclasses

from grukit.zoo.base import Rule, ZooConfig

from .model import NORMS, check_shape_hparams

LOSSES = ("mse", "mae")


@dataclasses.dataclass(frozen=True)
class EttConfig(ZooConfig):
    """Hyperparameters of the SegRNN-style ETT forecaster (:class:`.model.SegRNN`).

    The defaults follow SegRNN's ETTh1 script (Lin et al. 2023, "SegRNN: Segment
    Recurrent Neural Network for Long-Term Time Series Forecasting",
    ``lss-1138/SegRNN`` ``scripts/SegRNN/etth1.sh``: lookback 720, segment 24,
    d 512, dropout 0.1, lr 3e-4 with the "type3" decay, batch 64, 30 epochs,
    patience 5, subtract-last normalisation, MSE loss). ``hparams.json``'s
    profiles override them (``quick``, ``cpu``, ``preset-h<H>``).

    Args:
        variant: the grukit variant of the recurrent layer.
        units: the layer's width ``d`` (segment embedding and state), at least 2.
        segment: segment length ``w``; ``lookback`` and ``horizon`` are multiples of it.
        lookback: input window length ``L`` (time steps).
        horizon: forecast length ``H`` (time steps).
        dropout: dropout rate on the decoder's recurrent outputs, in ``[0, 1)``.
        norm: input normalisation (``"last"``: subtract the window's last value,
            ``"mean"``, ``"revin"``; :data:`.model.NORMS`).
        loss: training loss, ``"mse"`` or ``"mae"`` (the other is a metric).
        learning_rate: Adam's base learning rate.
        lr_decay: SegRNN's "type3" schedule: after ``lr_decay_start`` epochs the rate is
            multiplied by this per epoch (1: constant).
        lr_decay_start: epochs at the base rate before the decay starts.
        batch_size: windows per training batch.
        epochs: maximum training epochs.
        patience: early stopping after this many epochs without a better
            ``val_loss`` (0: never).
        max_train_windows: evenly spaced training windows used (0: every window).
        max_val_windows: evenly spaced validation windows for ``val_loss`` during
            training (0: every window; evaluation always uses every window).

    Example:
        >>> from grukit.zoo.models.ett_forecasting.config import EttConfig
        >>> cfg = EttConfig.from_dict({"horizon": 336, "variant": "mgu2"})
        >>> cfg.lookback, cfg.to_dict()["horizon"]
        (720, 336)
        >>> EttConfig(horizon=100)
        Traceback (most recent call last):
        ValueError: ett-forecasting: horizon 100 is not a multiple of the segment length 24. ...
    """

    variant: str = "gru"  # grukit variant of the recurrent layer
    units: int = 512  # width d of the segment embedding and the state
    segment: int = 24  # segment length w
    lookback: int = 720  # input window L, a multiple of segment
    horizon: int = 96  # forecast length H, a multiple of segment
    dropout: float = 0.1  # dropout rate on the decoder's outputs
    norm: str = "last"  # input normalisation: last, mean or revin
    loss: str = "mse"  # training loss: mse or mae
    learning_rate: float = 0.0003  # Adam's base rate
    lr_decay: float = 0.9  # per-epoch factor after lr_decay_start epochs (1: constant)
    lr_decay_start: int = 3  # epochs at the base rate
    batch_size: int = 64  # windows per batch
    epochs: int = 30  # maximum epochs
    patience: int = 5  # early-stopping patience (0: none)
    max_train_windows: int = 0  # training windows used, evenly spaced (0: all)
    max_val_windows: int = 0  # validation windows for val_loss, evenly spaced (0: all)

    model = "ett-forecasting"
    RULES = {
        "segment": Rule.integer(1),
        "lookback": Rule.integer(1),
        "horizon": Rule.integer(1),
        "dropout": Rule.FRACTION,
        "norm": Rule.one_of(*NORMS),
        "loss": Rule.one_of(*LOSSES),
        "lr_decay": Rule.number(0, 1, low_open=True).explain("1: a constant rate"),
        "lr_decay_start": Rule.integer(0),
        "max_train_windows": Rule.integer(0).explain("0: every window"),
        "max_val_windows": Rule.integer(0).explain("0: every window"),
    }
    # before the "type3" schedule existed the rate was constant
    RECORDED_BEFORE = {"lr_decay": 1.0, "lr_decay_start": 0}

    def check(self):
        """``lookback`` and ``horizon`` are multiples of ``segment``; ``units >= 2``."""
        check_shape_hparams(self.lookback, self.horizon, self.segment, self.units)
