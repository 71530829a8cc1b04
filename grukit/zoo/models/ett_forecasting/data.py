"""Batches of forecasting windows for training and evaluation."""

from __future__ import annotations

import math

import keras
import numpy as np


class _Windows(keras.utils.PyDataset):
    """A fixed subset of a split's windows (quick runs), as a shuffling PyDataset."""

    def __init__(self, x, y, batch_size, shuffle, seed=0):
        super().__init__()
        self.x, self.y, self.batch_size, self.shuffle, self.seed = x, y, batch_size, shuffle, seed
        self._epoch = 0
        self._order = self._draw()

    def _draw(self):
        n = len(self.x)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, self._epoch]).permutation(n)

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        idx = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        return self.x[idx], self.y[idx]

    def on_epoch_end(self):
        self._epoch += 1
        self._order = self._draw()
