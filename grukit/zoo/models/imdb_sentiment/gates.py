"""What the recurrent member's update gate does over a review (plots need matplotlib: ``pip install grukit[plot]``)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

import grukit

from .preprocessing import tokenize, truncate_tokens


# ------------------------------------------------------------------ gate inspection
def gate_profile(model, text):
    """Update-gate activity of the first recurrent layer over the tokens of ``text``.

    Returns ``(tokens, {direction: z [tokens, units]})``: ``z`` is the update gate
    (the fraction of the previous state kept, :func:`grukit.gate_activations`); a
    token with low ``z`` overwrote the memory. Tokens are the ones the model reads
    (after truncation); out-of-vocabulary tokens are shown as ``[token]``.
    """
    tok = model.tokenizer
    words = truncate_tokens(tokenize(text), tok.sequence_length, tok.truncate)
    ids = tok.encode([text])
    n = len(words)
    if n == 0:
        raise ValueError("imdb-sentiment: the review has no tokens; nothing to plot.")
    shown = [w if tok._index.get(w) else f"[{w}]" for w in words]
    x = keras.ops.convert_to_numpy(model.embedding(ids[:, :n]))
    layer = model.rnns[0]
    directions = ({"forward": layer.forward_layer, "backward": layer.backward_layer}
                  if model.bidirectional else {"forward": layer})
    out = {}
    for name, rnn in directions.items():
        gates = grukit.gate_activations(rnn, x)
        out[name] = np.asarray(gates["z"][0])
    return shown, out


def plot_gates(model, text, path, max_tokens=120):
    """Plot :func:`gate_profile` of ``text`` into ``path`` (PNG): for each direction, the
    mean update gate per token (high: memory kept, low: overwritten) and the units'
    gates as a heat map, with the model's probability in the title."""
    from grukit.zoo.cli import require

    matplotlib = require("matplotlib", "plot", "plot_gates()")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    words, gates = gate_profile(model, text)
    words = words[:max_tokens]
    prob = float(model.predict_texts([text])[0])
    rows = len(gates)
    width = max(8.0, 0.17 * len(words) + 2)
    fig, axes = plt.subplots(2 * rows, 1, figsize=(width, 3.2 * rows + 1.2),
                             gridspec_kw={"height_ratios": [1, 1.6] * rows})
    x = np.arange(len(words))
    for r, (name, z) in enumerate(gates.items()):
        z = z[:len(words)]
        ax = axes[2 * r]
        mean = z.mean(axis=1)
        ax.bar(x, 1 - mean, color=plt.cm.viridis(1 - mean))
        ax.set_xlim(-0.5, len(words) - 0.5)
        ax.set_ylim(0, 1)
        ax.set_ylabel("1 - mean z")
        ax.set_title(f"{name} direction: how much each token overwrote the memory "
                     f"(1 - update gate, mean over {z.shape[1]} units)", fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(words, rotation=90, fontsize=7)
        ax = axes[2 * r + 1]
        ax.imshow(z.T, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_ylabel("unit")
        ax.set_title(f"{name} update gate z per unit (yellow: keep, dark: overwrite)",
                     fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(words, rotation=90, fontsize=7)
    fig.suptitle(f"imdb-sentiment ({model.variant}, {model.units} units"
                 f"{', bidirectional' if model.bidirectional else ''}): P(positive) = {prob:.3f}",
                 fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
