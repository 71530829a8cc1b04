"""Independent float64 NumPy reference for every grukit variant.

Written from the papers' equations, in the papers' own conventions
(column vectors: ``W x_t`` with ``W`` of shape ``(units, input_dim)``), and
deliberately *not* from grukit's code path: nothing here imports grukit.

The only grukit-specific knowledge is the documented weight contract, used
by :func:`paper_params` to turn ``cell.get_weights()`` into the paper's
parameters:

* ``kernel`` ``(m, k_x*n)``: column blocks (gates then candidate) for the
  blocks that see ``x``; ``recurrent_kernel`` ``(n, k_h*n)`` likewise for
  ``h``; ``bias`` ``(k_b*n,)`` or, with ``reset_after``, ``(2, k_b*n)`` (row 0
  input side, row 1 recurrent side).
* Li-GRU: no bias; ``gamma, beta, moving_mean, moving_variance`` ``(2n,)``
  (columns ``z|h``) after ``kernel`` and ``recurrent_kernel``.
* minGRU: no ``recurrent_kernel``.
* Cell options (``norm``, ``zoneout``, ``recurrent_weight_dropout``): the
  normalisation weights follow the variant's trainable weights (Li-GRU's
  moving statistics, being non-trainable, stay last): ``input_norm_gamma`` (and ``input_norm_beta`` for layer norm)
  over the kernel's column blocks -- not for Li-GRU, whose BN normalises the
  input -- then ``recurrent_norm_gamma`` (``recurrent_norm_beta``) over the
  recurrent kernel's.
* grukit keeps ``h_t = z h_{t-1} + (1 - z) h~`` for every variant. Dey & Salem
  (GRU, GRU1-3) and Feng et al. (minGRU) write ``h_t = (1 - z_p) h_{t-1} +
  z_p h~`` instead, so their update-gate parameters are grukit's *negated*.
  Zhou et al. / Heck & Salem (MGU family) use the same ``f`` as grukit, and
  Ravanelli et al. (Li-GRU) the same ``z`` as grukit.

Options, from their papers: layer normalisation (Ba et al. 2016, arXiv
1607.06450) ``LN(a) = gamma (a - mu) / sqrt(sigma^2 + eps) + beta`` with ``mu,
sigma^2`` the mean and (biased) variance over the ``n`` summed inputs of one
gate or candidate, applied separately to ``W x`` and to ``U h`` (``U (r h)``)
before the biases; RMSNorm (Zhang & Sennrich 2019, arXiv 1910.07467)
``gamma a / sqrt(mean(a^2) + eps)`` in the same places; zoneout (Krueger et al.
2017, arXiv 1606.01305) ``h_t = d_t h_{t-1} + (1 - d_t) h'_t`` with ``d_t`` a
given 0/1 mask (training) or the rate (inference); DropConnect on the
recurrent weights (Merity et al. 2018, arXiv 1708.02182): ``U`` replaced by
``U * M`` for a given scaled mask ``M``. Layer norm and RMSNorm are odd
functions of ``a``, so where the paper's gate is grukit's negated (``z_p``),
its norm gain is grukit's and its norm bias grukit's negated.

Every forward function returns a dict with ``"h"`` -- the states
``[batch, time, units]`` in *processing* order (reversed when
``go_backwards``, as ``keras.layers.RNN`` returns them) -- and the paper's gate
activations in the same order (``"z_p"``/``"r"`` for the GRU family, ``"f"``
for MGU, ``"z"`` for Li-GRU, ``"z_p"`` for minGRU). At masked steps the
state is carried and the gates are NaN.
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------
# activations


def sigmoid(a):
    a = np.asarray(a, dtype=np.float64)
    out = np.empty_like(a)
    pos = a >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-a[pos]))
    e = np.exp(a[~pos])
    out[~pos] = e / (1.0 + e)
    return out


ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda a: np.maximum(a, 0.0),
    "linear": lambda a: a,
    "sigmoid": sigmoid,
    "softsign": lambda a: a / (1.0 + np.abs(a)),
}

DEFAULT_ACTIVATION = {
    "gru": "tanh", "gru1": "tanh", "gru2": "tanh", "gru3": "tanh",
    "mgu": "tanh", "mgu1": "tanh", "mgu2": "tanh", "mgu3": "tanh",
    "ligru": "relu", "mingru": "linear",
}

# --------------------------------------------------------------------------
# the weight contract: which column blocks each grukit weight holds

GRU_FAMILY = ("gru", "gru1", "gru2", "gru3")
MGU_FAMILY = ("mgu", "mgu1", "mgu2", "mgu3")

LAYOUT = {
    #          kernel  recurrent  bias
    "gru":    ("zrh", "zrh", "zrh"),
    "gru1":   ("h",   "zrh", "zrh"),
    "gru2":   ("h",   "zrh", "h"),
    "gru3":   ("h",   "h",   "zrh"),
    "mgu":    ("fh",  "fh",  "fh"),
    "mgu1":   ("h",   "fh",  "fh"),
    "mgu2":   ("h",   "fh",  "h"),
    "mgu3":   ("h",   "h",   "fh"),
    "ligru":  ("zh",  "zh",  ""),
    "mingru": ("zh",  "",    "zh"),
}


def _blocks(matrix, names, n):
    """Split the last axis of ``matrix`` into ``len(names)`` column blocks of width n."""
    assert matrix.shape[-1] == len(names) * n, (matrix.shape, names, n)
    return {name: matrix[..., i * n:(i + 1) * n] for i, name in enumerate(names)}


def paper_params(variant, weights, use_bias=True, reset_after=False, norm=None):
    """grukit ``get_weights()`` -> the paper's parameters (float64).

    Returns a dict with ``W_*`` ``(n, m)``, ``U_*`` ``(n, n)``, ``b_*`` ``(n,)``
    (``None`` for a term the variant lacks), plus ``b_h_rec`` (the recurrent-side
    candidate bias of the ``reset_after`` form, else ``None``) and, for Li-GRU,
    the BN parameters ``gamma_*, beta_*, mean_*, var_*``.
    """
    kx, kh, kb = LAYOUT[variant]
    ws = [np.asarray(w, dtype=np.float64) for w in weights]
    it = iter(ws)
    kernel = next(it) if kx else None
    recurrent = next(it) if kh else None
    bias = next(it) if (kb and use_bias) else None
    bn = [next(it) for _ in range(2)] if variant == "ligru" else None  # gamma, beta
    sides = {}
    if norm is not None:
        for side, blocks in (("x", "" if variant == "ligru" else kx), ("h", kh)):
            if blocks:
                sides[side] = (blocks, next(it), next(it) if norm == "layer" else None)
    if variant == "ligru":  # Keras lists the non-trainable moving statistics last
        bn += [next(it) for _ in range(2)]
    rest = list(it)
    assert not rest, f"unexpected extra weights for {variant}: {[w.shape for w in rest]}"

    n = (recurrent.shape[0] if recurrent is not None else kernel.shape[1] // len(kx))
    m = kernel.shape[0]
    assert kernel.shape == (m, len(kx) * n)
    if recurrent is not None:
        assert recurrent.shape == (n, len(kh) * n)

    Wk = _blocks(kernel, kx, n)
    Uk = _blocks(recurrent, kh, n) if recurrent is not None else {}
    b_in, b_rec = {}, {}
    if bias is not None:
        if reset_after:
            assert bias.shape == (2, len(kb) * n), bias.shape
            b_in, b_rec = _blocks(bias[0], kb, n), _blocks(bias[1], kb, n)
        else:
            assert bias.shape == (len(kb) * n,), bias.shape
            b_in = _blocks(bias, kb, n)

    def W(g):  # paper: W_g x, W_g of shape (n, m)
        return Wk[g].T.copy() if g in Wk else None

    def U(g):
        return Uk[g].T.copy() if g in Uk else None

    def b_gate(g):  # a gate has a single bias: both rows add up
        if g not in b_in:
            return None
        return b_in[g] + b_rec[g] if g in b_rec else b_in[g].copy()

    P = {"n": n, "m": m}
    if variant in GRU_FAMILY:
        # Dey & Salem: h = (1 - z_p) h_prev + z_p h~, z_p = 1 - z_grukit
        #   => (W_z, U_z, b_z) of the paper are grukit's negated.
        neg = lambda a: None if a is None else -a
        P.update(W_z=neg(W("z")), U_z=neg(U("z")), b_z=neg(b_gate("z")),
                 W_r=W("r"), U_r=U("r"), b_r=b_gate("r"))
    elif variant in MGU_FAMILY:
        P.update(W_f=W("f"), U_f=U("f"), b_f=b_gate("f"))
    elif variant == "ligru":
        gamma, beta, mean, var = (_blocks(a, "zh", n) for a in bn)
        for g in "zh":
            P.update({f"gamma_{g}": gamma[g], f"beta_{g}": beta[g],
                      f"mean_{g}": mean[g], f"var_{g}": var[g]})
        P.update(W_z=W("z"), U_z=U("z"))
    elif variant == "mingru":
        P.update(W_z=-W("z"), b_z=None if "z" not in b_in else -b_in["z"])
    else:
        raise ValueError(variant)
    # candidate: identical in grukit's and the papers' conventions
    P.update(W_h=W("h"), U_h=U("h"), b_h=b_in.get("h"), b_h_rec=b_rec.get("h"))
    # normalisation of the summed inputs: per side ("x": W x, "h": U h) and block
    P["norm"] = norm
    negated = {"gru": "z", "gru1": "z", "gru2": "z", "gru3": "z", "mingru": "z"}.get(variant, "")
    for side, (blocks, gamma, beta) in sides.items():
        g_blocks = _blocks(gamma, blocks, n)
        b_blocks = _blocks(beta, blocks, n) if beta is not None else {}
        for g in blocks:
            b = b_blocks.get(g)
            P[f"norm_{side}_{g}"] = (g_blocks[g], None if b is None else (-b if g in negated else b))
    return P


def normalise(a, kind, gamma, beta, eps):
    """Layer norm (Ba et al.) or RMSNorm (Zhang & Sennrich) of each row of ``a``."""
    if kind == "layer":
        mu = a.mean(axis=-1, keepdims=True)
        out = (a - mu) / np.sqrt(((a - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    elif kind == "rms":
        out = a / np.sqrt((a ** 2).mean(axis=-1, keepdims=True) + eps)
    else:
        raise ValueError(kind)
    out = gamma * out
    return out if beta is None else out + beta


def _nx(P, g, a):
    """The input-side summed input ``a = W_g x``, normalised where the cell normalises it."""
    return _norm(P, "x", g, a)


def _nh(P, g, a):
    """The recurrent-side summed input ``a = U_g h``, normalised where the cell normalises it."""
    return _norm(P, "h", g, a)


def _norm(P, side, g, a):
    key = f"norm_{side}_{g}"
    if a is None or key not in P:
        return a
    gamma, beta = P[key]
    return normalise(a, P["norm"], gamma, beta, P["norm_eps"])


# --------------------------------------------------------------------------
# helpers for the equations


def _lin(W, v):
    """W v for a batch of column vectors v (stored as rows)."""
    return np.einsum("nm,bm->bn", W, v)


def _sum(batch, n, *terms):
    """Sum of the terms that exist (None = absent term), broadcast to (batch, n)."""
    out = np.zeros((batch, n))
    for t in terms:
        if t is not None:
            out = out + t
    return out


def _loop(step, x, h0, mask, go_backwards, gate_names, zoneout=None):
    """Run ``step(x_t, h_prev) -> (h, gates)``; masked steps carry the state.

    ``zoneout``: None, the rate (inference: ``h = p h_prev + (1 - p) h'``) or
    keep masks ``[batch, time, units]`` indexed by input time (training).
    """
    x = np.asarray(x, dtype=np.float64)
    B, T, _ = x.shape
    h = np.asarray(h0, dtype=np.float64).copy()
    order = range(T - 1, -1, -1) if go_backwards else range(T)
    hs, gs = [], {g: [] for g in gate_names}
    for t in order:
        h_new, gates = step(x[:, t], h)
        if zoneout is not None:
            d = zoneout if np.isscalar(zoneout) else np.asarray(zoneout, np.float64)[:, t]
            h_new = d * h + (1.0 - d) * h_new
        if mask is not None:
            keep = ~np.asarray(mask, dtype=bool)[:, t][:, None]
            h_new = np.where(keep, h, h_new)
            gates = {k: np.where(keep, np.nan, v) for k, v in gates.items()}
        h = h_new
        hs.append(h)
        for g in gate_names:
            gs[g].append(gates[g])
    out = {"h": np.stack(hs, axis=1)}
    out.update({g: np.stack(v, axis=1) for g, v in gs.items()})
    return out


def _h0(x, n, h0):
    return np.zeros((np.shape(x)[0], n)) if h0 is None else np.asarray(h0, dtype=np.float64)


# --------------------------------------------------------------------------
# the papers' equations


def gru_family(P, x, h0=None, mask=None, go_backwards=False, activation="tanh",
               reset_after=False, zoneout=None):
    """GRU (Cho / Chung et al.) and GRU1-3 (Dey & Salem 2017), paper form.

    z_p = sigmoid(W_z x + U_z h + b_z)     (absent terms dropped: GRU1-3)
    r   = sigmoid(W_r x + U_r h + b_r)
    h~  = g(W_h x + U_h (r * h) + b_h)                          (reset before U)
        = g(W_h x + b_h + r * (U_h h + b'_h))                   (reset_after)
    h_t = (1 - z_p) * h_{t-1} + z_p * h~
    """
    act = ACTIVATIONS[activation]
    n = P["n"]

    def step(x_t, h):
        B = x_t.shape[0]
        xz = None if P["W_z"] is None else _nx(P, "z", _lin(P["W_z"], x_t))
        hz = None if P["U_z"] is None else _nh(P, "z", _lin(P["U_z"], h))
        xr = None if P["W_r"] is None else _nx(P, "r", _lin(P["W_r"], x_t))
        hr = None if P["U_r"] is None else _nh(P, "r", _lin(P["U_r"], h))
        z_p = sigmoid(_sum(B, n, xz, hz, P["b_z"]))
        r = sigmoid(_sum(B, n, xr, hr, P["b_r"]))
        xh = _nx(P, "h", _lin(P["W_h"], x_t))
        if reset_after:
            a = _sum(B, n, xh, P["b_h"],
                     r * _sum(B, n, _nh(P, "h", _lin(P["U_h"], h)), P["b_h_rec"]))
        else:
            a = _sum(B, n, xh, _nh(P, "h", _lin(P["U_h"], r * h)), P["b_h"])
        h_tilde = act(a)
        return (1.0 - z_p) * h + z_p * h_tilde, {"z_p": z_p, "r": r}

    return _loop(step, x, _h0(x, n, h0), mask, go_backwards, ("z_p", "r"), zoneout)


def mgu_family(P, x, h0=None, mask=None, go_backwards=False, activation="tanh",
               reset_after=False, zoneout=None):
    """MGU (Zhou et al. 2016) and MGU1-3 (Heck & Salem 2017).

    f   = sigmoid(W_f x + U_f h + b_f)     (absent terms dropped: MGU1-3)
    h~  = g(W_h x + U_h (f * h) + b_h)                          (reset before U)
        = g(W_h x + b_h + f * (U_h h + b'_h))                   (reset_after)
    h_t = (1 - f) * h_{t-1} + f * h~
    """
    act = ACTIVATIONS[activation]
    n = P["n"]

    def step(x_t, h):
        B = x_t.shape[0]
        xf = None if P["W_f"] is None else _nx(P, "f", _lin(P["W_f"], x_t))
        hf = None if P["U_f"] is None else _nh(P, "f", _lin(P["U_f"], h))
        f = sigmoid(_sum(B, n, xf, hf, P["b_f"]))
        xh = _nx(P, "h", _lin(P["W_h"], x_t))
        if reset_after:
            a = _sum(B, n, xh, P["b_h"],
                     f * _sum(B, n, _nh(P, "h", _lin(P["U_h"], h)), P["b_h_rec"]))
        else:
            a = _sum(B, n, xh, _nh(P, "h", _lin(P["U_h"], f * h)), P["b_h"])
        h_tilde = act(a)
        return (1.0 - f) * h + f * h_tilde, {"f": f}

    return _loop(step, x, _h0(x, n, h0), mask, go_backwards, ("f",), zoneout)


def ligru(P, x, h0=None, mask=None, go_backwards=False, activation="relu",
          training=False, epsilon=1e-3, momentum=0.99, zoneout=None):
    """Li-GRU (Ravanelli et al. 2018).

    z   = sigmoid(BN(W_z x) + U_z h)
    h~  = relu(BN(W_h x) + U_h h)
    h_t = z * h_{t-1} + (1 - z) * h~
    BN(a) = gamma (a - mu) / sqrt(sigma^2 + eps) + beta, with (mu, sigma^2) the
    moving statistics in inference, and in training the population statistics
    of the projected sequence over batch and time (masked steps excluded).

    The result also holds ``"batch_mean"``/``"batch_var"`` (training) and the
    updated ``"moving_mean"``/``"moving_var"`` (columns z|h, like grukit).
    """
    act = ACTIVATIONS[activation]
    n = P["n"]
    x = np.asarray(x, dtype=np.float64)
    a = {g: np.einsum("nm,btm->btn", P[f"W_{g}"], x) for g in "zh"}
    stats = {}
    if training:
        w = np.ones(x.shape[:2]) if mask is None else np.asarray(mask, dtype=np.float64)
        w = w[..., None]
        mu, var = {}, {}
        for g in "zh":
            cnt = w.sum()
            mu[g] = (a[g] * w).sum(axis=(0, 1)) / cnt
            var[g] = (((a[g] - mu[g]) ** 2) * w).sum(axis=(0, 1)) / cnt
        stats["batch_mean"] = np.concatenate([mu["z"], mu["h"]])
        stats["batch_var"] = np.concatenate([var["z"], var["h"]])
    else:
        mu = {g: P[f"mean_{g}"] for g in "zh"}
        var = {g: P[f"var_{g}"] for g in "zh"}
    bn = {g: P[f"gamma_{g}"] * (a[g] - mu[g]) / np.sqrt(var[g] + epsilon) + P[f"beta_{g}"]
          for g in "zh"}
    old_mean = np.concatenate([P["mean_z"], P["mean_h"]])
    old_var = np.concatenate([P["var_z"], P["var_h"]])
    if training:
        stats["moving_mean"] = momentum * old_mean + (1 - momentum) * stats["batch_mean"]
        stats["moving_var"] = momentum * old_var + (1 - momentum) * stats["batch_var"]
    else:
        stats["moving_mean"], stats["moving_var"] = old_mean, old_var

    # index the normalised projections by time step inside the loop
    bn_seq = np.concatenate([bn["z"], bn["h"]], axis=-1)

    def step(p_t, h):
        z = sigmoid(p_t[:, :n] + _nh(P, "z", _lin(P["U_z"], h)))
        h_tilde = act(p_t[:, n:] + _nh(P, "h", _lin(P["U_h"], h)))
        return z * h + (1.0 - z) * h_tilde, {"z": z}

    out = _loop(step, bn_seq, _h0(x, n, h0), mask, go_backwards, ("z",), zoneout)
    out.update(stats)
    return out


def mingru(P, x, h0=None, mask=None, go_backwards=False, activation="linear", zoneout=None):
    """minGRU (Feng et al. 2024).

    z_p = sigmoid(W_z x + b_z);  h~ = g(W_h x + b_h)  (g = identity by default)
    h_t = (1 - z_p) * h_{t-1} + z_p * h~
    """
    act = ACTIVATIONS[activation]
    n = P["n"]

    def step(x_t, h):
        B = x_t.shape[0]
        z_p = sigmoid(_sum(B, n, _nx(P, "z", _lin(P["W_z"], x_t)), P["b_z"]))
        h_tilde = act(_sum(B, n, _nx(P, "h", _lin(P["W_h"], x_t)), P["b_h"]))
        return (1.0 - z_p) * h + z_p * h_tilde, {"z_p": z_p}

    return _loop(step, x, _h0(x, n, h0), mask, go_backwards, ("z_p",), zoneout)


# --------------------------------------------------------------------------
# one entry point


def forward(variant, weights, x, h0=None, mask=None, go_backwards=False,
            activation=None, use_bias=True, reset_after=False, training=False,
            epsilon=1e-3, momentum=0.99, norm=None, zoneout=None, kernel_mask=None):
    """Reference forward pass of ``variant`` from grukit weights.

    Options: ``norm`` (``"layer"``/``"rms"``, epsilon ``epsilon``),
    ``zoneout`` (see :func:`_loop`), ``kernel_mask`` (DropConnect's scaled
    mask, multiplied into grukit's ``recurrent_kernel``, the second weight).

    Returns the family function's dict, plus ``"gates_grukit"``: the gates
    converted to grukit's names (``z`` = kept fraction, ``r``, ``f``) for
    comparing with ``grukit.gate_activations``.
    """
    activation = activation or DEFAULT_ACTIVATION[variant]
    if kernel_mask is not None:
        assert LAYOUT[variant][1], f"{variant} has no recurrent kernel"
        weights = list(weights)
        weights[1] = np.asarray(weights[1], np.float64) * kernel_mask
    P = paper_params(variant, weights, use_bias=use_bias, reset_after=reset_after, norm=norm)
    P["norm_eps"] = epsilon
    kw = dict(h0=h0, mask=mask, go_backwards=go_backwards, activation=activation,
              zoneout=zoneout)
    if variant in GRU_FAMILY:
        out = gru_family(P, x, reset_after=reset_after, **kw)
        out["gates_grukit"] = {"z": 1.0 - out["z_p"], "r": out["r"]}
    elif variant in MGU_FAMILY:
        out = mgu_family(P, x, reset_after=reset_after, **kw)
        out["gates_grukit"] = {"z": 1.0 - out["f"], "r": out["f"], "f": out["f"]}
    elif variant == "ligru":
        out = ligru(P, x, training=training, epsilon=epsilon, momentum=momentum, **kw)
        out["gates_grukit"] = {"z": out["z"]}
    elif variant == "mingru":
        out = mingru(P, x, **kw)
        out["gates_grukit"] = {"z": 1.0 - out["z_p"]}
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return out


def hand_param_count(variant, m, n, use_bias=True, reset_after=False):
    """Parameter count from the papers' parameter lists (grukit's layout)."""
    b = 2 if reset_after else 1
    counts = {
        # W_z, W_r, W_h; U_z, U_r, U_h; b_z, b_r, b_h
        "gru": 3 * m * n + 3 * n * n + 3 * n * b,
        "gru1": m * n + 3 * n * n + 3 * n * b,      # gates: U, b
        "gru2": m * n + 3 * n * n + n * b,          # gates: U
        "gru3": m * n + n * n + 3 * n * b,          # gates: b
        "mgu": 2 * m * n + 2 * n * n + 2 * n * b,
        "mgu1": m * n + 2 * n * n + 2 * n * b,
        "mgu2": m * n + 2 * n * n + n * b,
        "mgu3": m * n + n * n + 2 * n * b,
        "ligru": 2 * m * n + 2 * n * n + 4 * n + 4 * n,  # + gamma, beta; + moving stats
        "mingru": 2 * m * n + 2 * n,
    }
    total = counts[variant]
    if not use_bias:
        nb = {"gru": 3, "gru1": 3, "gru2": 1, "mgu": 2, "mgu1": 2, "mgu2": 1,
              "ligru": 0, "mingru": 2}[variant]
        total -= nb * n * b
    return total
