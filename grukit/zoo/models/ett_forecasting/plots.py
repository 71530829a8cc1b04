"""Forecast plots (needs matplotlib: ``pip install grukit[plot]``)."""

from __future__ import annotations

import numpy as np


def plot_forecast(path, window, forecast, truth=None, columns=None, column="OT", history=None,
                  title=None):
    """Plot one column of a forecast (and the truth) after the window's end, as a PNG.

    Args:
        path: the PNG to write.
        window: ``[lookback, channels]``; its last ``history`` rows are drawn
            (default: as many as the forecast).
        forecast, truth: ``[horizon, channels]`` (``truth`` optional).
        columns: the channel names; ``column`` is drawn (default OT).

    Example:
        >>> import numpy as np
        >>> from grukit.zoo.models.ett_forecasting.plots import plot_forecast
        >>> columns = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
        >>> window, forecast = np.zeros((96, 7)), np.ones((24, 7))   # [lookback, 7], [horizon, 7]
        >>> plot_forecast("ot.png", window, forecast, columns=columns, title="OT")
        >>> open("ot.png", "rb").read(4)
        b'\\x89PNG'
    """
    from grukit.zoo.cli import require

    matplotlib = require("matplotlib", "plot", "plot_forecast()")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = list(columns).index(column) if columns is not None else -1
    history = history or len(forecast)
    past = np.asarray(window)[-history:, c]
    steps = np.arange(len(forecast)) + 1
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=100)
    ax.plot(np.arange(-len(past) + 1, 1), past, color="0.45", lw=1.2, label="input window")
    if truth is not None:
        ax.plot(steps, np.asarray(truth)[:, c], color="black", lw=1.2, label="true")
    ax.plot(steps, np.asarray(forecast)[:, c], color="tab:red", lw=1.6, label="forecast")
    ax.axvline(0.5, color="0.7", lw=0.8, ls="--")
    ax.set_xlabel("hours after the window's end")
    ax.set_ylabel(column)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(loc="best", fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
