"""The ``char-lm`` hyperparameters: :class:`CharLMConfig`."""

from __future__ import annotations

import dataclasses

from grukit.zoo.base import Rule, ZooConfig


@dataclasses.dataclass(frozen=True)
class CharLMConfig(ZooConfig):
    """Hyperparameters of the Tiny Shakespeare character language model (:class:`.model.CharLM`).

    The defaults are the committed preset's configuration (the search that chose
    it: ``experiments/char_lm/README.md``); ``hparams.json``'s ``quick`` profile
    overrides them for a CPU run of a minute or less on a slice of the text.

    Args:
        variant: the grukit variant of every recurrent layer.
        units: the recurrent layers' width.
        depth: the number of stacked recurrent layers.
        embedding_dim: the character embedding's width.
        dropout: dropout rate after each recurrent layer, in ``[0, 1)``.
        seq_len: training window length (characters); the targets are shifted by one.
        learning_rate: Adam's initial learning rate.
        min_lr_ratio: a cosine decay over ``epochs * steps_per_epoch`` steps ends at
            ``learning_rate * min_lr_ratio``, in ``[0, 1]`` (1: a constant rate).
        clipnorm: gradient clipping by norm (0: none).
        batch_size: windows per batch.
        epochs: maximum training epochs.
        steps_per_epoch: batches of random windows per epoch (the checkpoint and
            early-stopping unit).
        patience: early stopping after this many epochs without a better
            ``val_loss`` (0: never).
        max_train_chars: the training windows come from the first this many
            characters of the training split (0: all of it).
        max_val_chars: Keras's ``val_loss`` during training and the search reads the
            first this many validation characters (0: all of them).
        data_seed: the random training windows' seed is this plus the run's seed.
        eval_streams: the evaluation reads the validation text as this many
            contiguous streams, the state carried.
        eval_window: the evaluation's window length (characters); the state is
            carried from window to window.
        max_eval_chars: the reported evaluation reads the first this many
            characters of the split (0: all of them).

    Example:
        >>> from grukit.zoo.models.char_lm.config import CharLMConfig
        >>> cfg = CharLMConfig.from_dict({"units": 384, "depth": 3})
        >>> cfg.units, cfg.depth, cfg.to_dict()["seq_len"]
        (384, 3, 128)
        >>> CharLMConfig(min_lr_ratio=2)
        Traceback (most recent call last):
        ValueError: char-lm: hyperparameter 'min_lr_ratio' must be a number in [0, 1] (1: a constant rate); got 2.
    """

    variant: str = "gru"  # grukit variant of every recurrent layer
    units: int = 256  # recurrent width
    depth: int = 2  # stacked recurrent layers
    embedding_dim: int = 64  # character embedding width
    dropout: float = 0.0  # dropout after each recurrent layer
    seq_len: int = 128  # training window (characters)
    learning_rate: float = 0.003  # Adam's initial rate
    min_lr_ratio: float = 0.1  # cosine decay's final rate / initial rate (1: constant)
    clipnorm: float = 1.0  # gradient clipping by norm (0: none)
    batch_size: int = 32  # windows per batch
    epochs: int = 16  # maximum epochs
    steps_per_epoch: int = 200  # batches per epoch
    patience: int = 0  # early-stopping patience (0: none)
    max_train_chars: int = 0  # training characters used (0: all)
    max_val_chars: int = 30000  # validation characters for val_loss (0: all)
    data_seed: int = 0  # plus the run's seed: the seed of the random training windows
    eval_streams: int = 1  # evaluation streams, state carried
    eval_window: int = 256  # evaluation window (characters)
    max_eval_chars: int = 0  # characters of the reported evaluation (0: all)

    model = "char-lm"
    RULES = {
        "depth": Rule.integer(1),
        "embedding_dim": Rule.integer(1),
        "dropout": Rule.FRACTION,
        "seq_len": Rule.integer(1),
        "min_lr_ratio": Rule.number(0, 1).explain("1: a constant rate"),
        "clipnorm": Rule.number(0).explain("0: no clipping"),
        "steps_per_epoch": Rule.integer(1),
        "max_train_chars": Rule.integer(0).explain("0: all"),
        "max_val_chars": Rule.integer(0).explain("0: all"),
        "data_seed": Rule.integer(0),
        "eval_streams": Rule.integer(1),
        "eval_window": Rule.integer(1),
        "max_eval_chars": Rule.integer(0).explain("0: all"),
    }
    # what a configuration without these keys ran with (the recipe's fallbacks before
    # every dict was complete): a constant rate, no clipping, the whole validation split
    RECORDED_BEFORE = {"min_lr_ratio": 1.0, "clipnorm": 0.0, "max_val_chars": 0}
