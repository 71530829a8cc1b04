"""The GRU family as data.

Every grukit cell runs the same mechanism (:class:`grukit.cells.GatedRNNCell`);
a variant only says *which terms each block sees*:

* ``x`` -- the input projection ``x_t W``,
* ``h`` -- the recurrent projection ``h_{t-1} U``,
* ``b`` -- a bias.

The blocks are the gates (``z`` and ``r`` for the GRU family, a single forget
gate ``f`` for the MGU family, ``z`` alone for Li-GRU and minGRU) followed by
the candidate ``h``.  Whether the candidate's recurrent term is reset-gated,
the candidate activation and the input normalisation are data too.

One update convention is used throughout, Keras's (Cho et al. 2014)::

    h_t = z_t * h_{t-1} + (1 - z_t) * h~_t

``z`` is the fraction of the old state that is *kept*.  Papers that write
``(1 - z)`` on ``h_{t-1}`` (Chung et al. 2014, Dey & Salem 2017, Feng et al.
2024) call that fraction ``1 - z``; each :class:`Variant` says how its paper's
gate maps onto ``z`` (field ``mapping``).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

__all__ = ["Variant", "VARIANTS", "variants", "get_variant", "CellOption", "CELL_OPTIONS",
           "cell_options"]


@dataclasses.dataclass(frozen=True)
class Variant:
    """Description of one member of the GRU family.

    Attributes:
        name: registry name, e.g. ``"mgu2"``.
        title: human-readable name.
        paper: citation (authors, year, arXiv id).
        gates: names of the gate blocks, in weight-column order. ``("z", "r")``
            (update and reset), ``("f",)`` (MGU forget gate: reset ``r = f``
            and update ``z = 1 - f``) or ``("z",)`` (update only, no reset).
        terms: for every block (the gates, then ``"h"`` for the candidate) the
            terms it sees, a string over ``"x"``, ``"h"``, ``"b"``.
        activation: default candidate activation.
        input_norm: whether the input projections are batch-normalised
            (Li-GRU); the normalisation replaces the input-side bias.
        reset_after_default: default of ``reset_after`` (ignored by variants
            without a reset gate).
        parallel: whether the recurrence is linear in ``h`` (no ``h`` term in
            any block), so that a layer can evaluate it with a parallel scan.
        equations: the equations in grukit's convention (plain text).
        mapping: how the paper's equations map onto grukit's convention.
    """

    name: str
    title: str
    paper: str
    gates: Tuple[str, ...]
    terms: Dict[str, str]
    activation: str = "tanh"
    input_norm: bool = False
    reset_after_default: bool = False
    equations: str = ""
    mapping: str = ""

    def __post_init__(self):
        if set(self.terms) != set(self.blocks):
            raise ValueError(f"{self.name}: terms must name the blocks {self.blocks}")
        if len({self.terms[g] for g in self.gates}) != 1:
            raise ValueError(f"{self.name}: all gates must see the same terms")
        if "x" not in self.terms["h"]:
            raise ValueError(f"{self.name}: the candidate must see the input")

    # --- derived structure -------------------------------------------------
    @property
    def gate_terms(self) -> str:
        """The terms every gate sees (the gates of a variant share them)."""
        return self.terms[self.gates[0]]

    @property
    def blocks(self) -> Tuple[str, ...]:
        """Gate blocks followed by the candidate block ``"h"``."""
        return self.gates + ("h",)

    @property
    def has_reset(self) -> bool:
        """True if the candidate's recurrent term is gated (by ``r`` or ``f``)."""
        return self.gates != ("z",)

    @property
    def parallel(self) -> bool:
        return not any("h" in t for t in self.terms.values())

    def blocks_with(self, term: str) -> Tuple[str, ...]:
        """Blocks that see ``term`` ("x", "h" or "b"), in column order."""
        return tuple(b for b in self.blocks if term in self.terms[b])

    def param_count(self, input_dim: int, units: int, use_bias: bool = True,
                    reset_after: bool | None = None, norm: str | None = None) -> Dict[str, int]:
        """Number of weights, by the documented formula.

        With ``m = input_dim``, ``n = units``, ``k_x``, ``k_h``, ``k_b`` the
        number of blocks that see the input, the state and a bias::

            trainable     = k_x*m*n + k_h*n*n + k_b*n*(2 if reset_after else 1)
                            (+ 2*k_x*n for Li-GRU's BN scale and offset)
                            (+ c*(k_x + k_h)*n for norm, c = 2 for "layer" (gain
                               and bias), 1 for "rms" (gain); Li-GRU: c*k_h*n)
            non_trainable = 2*k_x*n for Li-GRU's moving mean and variance, else 0

        Returns a dict with ``trainable``, ``non_trainable`` and ``total``.
        """
        if reset_after is None:
            reset_after = self.reset_after_default
        reset_after = reset_after and self.has_reset
        m, n = input_dim, units
        kx, kh = len(self.blocks_with("x")), len(self.blocks_with("h"))
        kb = len(self.blocks_with("b")) if use_bias else 0
        trainable = kx * m * n + kh * n * n + kb * n * (2 if reset_after else 1)
        non_trainable = 0
        if self.input_norm:
            trainable += 2 * kx * n
            non_trainable += 2 * kx * n
        if norm is not None:
            per_block = {"layer": 2, "rms": 1}[norm]
            trainable += per_block * ((0 if self.input_norm else kx) + kh) * n
        return {"trainable": trainable, "non_trainable": non_trainable,
                "total": trainable + non_trainable}

    @property
    def param_formula(self) -> str:
        """The parameter-count formula as text (m inputs, n units)."""
        kx, kh = len(self.blocks_with("x")), len(self.blocks_with("h"))
        kb = len(self.blocks_with("b"))
        parts = []
        def coef(k):
            return "" if k == 1 else str(k)

        if kx:
            parts.append(f"{coef(kx)}mn")
        if kh:
            parts.append(f"{coef(kh)}n²")
        if kb:
            parts.append(f"{coef(kb)}n" + (" (x2 if reset_after)" if self.has_reset else ""))
        if self.input_norm:
            parts.append(f"{2 * kx}n BN scale/offset (+{2 * kx}n moving stats)")
        return " + ".join(parts)


_GRU_CONVENTION = (
    "The paper writes h_t = (1 - z_t) h_{t-1} + z_t h~_t (Chung et al. 2014). "
    "grukit's z is the paper's 1 - z: z_paper = 1 - z = sigmoid(-(same "
    "pre-activation)), so the paper's gate weights are the negatives of "
    "grukit's; reset gate and candidate are identical."
)

_MGU_CONVENTION = (
    "The paper writes h_t = (1 - f_t) h_{t-1} + f_t h~_t with the same f_t "
    "resetting the candidate. grukit computes f_t exactly as the paper (same "
    "weights) and uses it as reset r = f and update z = 1 - f."
)


def _pre(gate: str, terms: str) -> str:
    return " + ".join({"x": f"x W_{gate}", "h": f"h_{{t-1}} U_{gate}",
                       "b": f"b_{gate}"}[t] for t in terms)


def _gru_equations(gate_terms: str) -> str:
    return (
        f"z = sigmoid({_pre('z', gate_terms)}); "
        f"r = sigmoid({_pre('r', gate_terms)}); "
        "h~ = tanh(x W_h + (r * h_{t-1}) U_h + b_h); "
        "h = z * h_{t-1} + (1 - z) * h~"
    )


def _mgu_equations(gate_terms: str) -> str:
    return (
        f"f = sigmoid({_pre('f', gate_terms)}); "
        "h~ = tanh(x W_h + (f * h_{t-1}) U_h + b_h); "
        "h = (1 - f) * h_{t-1} + f * h~"
    )


_DEY = "Dey & Salem 2017, Gate-variants of GRU neural networks (arXiv 1701.05923)"
_HECK = ("Heck & Salem 2017, Simplified minimal gated unit variations for "
         "recurrent neural networks (arXiv 1701.03452)")


def _gru_family() -> list:
    out = [Variant(
        name="gru", title="GRU", reset_after_default=True,
        paper="Cho et al. 2014 (arXiv 1406.1078); Keras/cuDNN reset_after form",
        gates=("z", "r"), terms={"z": "xhb", "r": "xhb", "h": "xhb"},
        equations=_gru_equations("xhb") + "  [reset_after=True: h~ = tanh(x W_h + b_h + r * (h_{t-1} U_h + b'_h))]",
        mapping="Identical to keras.layers.GRUCell (same weight layout).",
    )]
    for k, gate_terms in ((1, "hb"), (2, "h"), (3, "b")):
        out.append(Variant(
            name=f"gru{k}", title=f"GRU{k}", paper=_DEY,
            gates=("z", "r"), terms={"z": gate_terms, "r": gate_terms, "h": "xhb"},
            equations=_gru_equations(gate_terms), mapping=_GRU_CONVENTION,
        ))
    return out


def _mgu_family() -> list:
    out = []
    for k, gate_terms in (("", "xhb"), ("1", "hb"), ("2", "h"), ("3", "b")):
        out.append(Variant(
            name=f"mgu{k}", title=f"MGU{k}",
            paper=("Zhou et al. 2016, Minimal gated unit for recurrent neural "
                   "networks (arXiv 1603.09420)") if not k else _HECK,
            gates=("f",), terms={"f": gate_terms, "h": "xhb"},
            equations=_mgu_equations(gate_terms), mapping=_MGU_CONVENTION,
        ))
    return out


VARIANTS: Dict[str, Variant] = {v.name: v for v in _gru_family() + _mgu_family() + [
    Variant(
        name="ligru", title="Li-GRU", activation="relu", input_norm=True,
        paper=("Ravanelli et al. 2018, Light gated recurrent units for speech "
               "recognition (arXiv 1803.10225)"),
        gates=("z",), terms={"z": "xh", "h": "xh"},
        equations=("z = sigmoid(BN(x W_z) + h_{t-1} U_z); "
                   "h~ = relu(BN(x W_h) + h_{t-1} U_h); "
                   "h = z * h_{t-1} + (1 - z) * h~"),
        mapping=("Same convention as the paper. BN statistics are taken over "
                 "batch and time of the projected sequence, outside the "
                 "recurrent loop (grukit.layers.RNN); inside keras.layers.RNN "
                 "the cell uses the moving statistics."),
    ),
    Variant(
        name="mingru", title="minGRU", activation="linear",
        paper="Feng et al. 2024, Were RNNs all we needed? (arXiv 2410.01201)",
        gates=("z",), terms={"z": "xb", "h": "xb"},
        equations=("z = sigmoid(x W_z + b_z); h~ = x W_h + b_h; "
                   "h = z * h_{t-1} + (1 - z) * h~"),
        mapping=("The paper writes h_t = (1 - z_t) h_{t-1} + z_t h~_t with "
                 "z_t = sigmoid(Linear(x_t)); grukit's z is the paper's 1 - z "
                 "(W_z, b_z negated). The recurrence is linear in h, so "
                 "grukit.layers.RNN can run it as a parallel scan."),
    ),
]}


@dataclasses.dataclass(frozen=True)
class CellOption:
    """An option every variant's cell takes (off by default).

    Attributes:
        argument: the cell argument and a typical value, e.g. ``'norm="layer"'``.
        title: human-readable name.
        paper: citation (authors, year, arXiv id).
        equations: what it computes, in grukit's convention (plain text).
    """

    argument: str
    title: str
    paper: str
    equations: str


CELL_OPTIONS: Tuple[CellOption, ...] = (
    CellOption(
        argument='norm="layer"', title="Layer normalisation",
        paper="Ba et al. 2016, Layer normalization (arXiv 1607.06450)",
        equations=("LN(a) = gamma * (a - mean(a)) / sqrt(var(a) + eps) + beta over the n "
                   "units of one block; applied to every block's x W and h U (or "
                   "(r * h) U_h) before the biases and nonlinearities, e.g. "
                   "z = sigmoid(LN_x(x W_z) + LN_h(h_{t-1} U_z) + b_z); Li-GRU: h U only "
                   "(x W keeps its BN)"),
    ),
    CellOption(
        argument='norm="rms"', title="RMSNorm",
        paper="Zhang & Sennrich 2019, Root mean square layer normalization (arXiv 1910.07467)",
        equations=("RMS(a) = gamma * a / sqrt(mean(a^2) + eps) over the n units of one "
                   "block, in the places of norm=\"layer\"; gain only"),
    ),
    CellOption(
        argument="zoneout=p", title="Zoneout",
        paper=("Krueger et al. 2017, Zoneout: regularizing RNNs by randomly preserving "
               "hidden activations (arXiv 1606.01305)"),
        equations=("h_t = d_t * h_{t-1} + (1 - d_t) * h'_t with h'_t the variant's new "
                   "state; training: d_t ~ Bernoulli(p) per unit, sequence and step; "
                   "inference: d_t = p"),
    ),
    CellOption(
        argument="recurrent_weight_dropout=p", title="Weight-dropped recurrent kernel",
        paper=("Merity et al. 2018, Regularizing and optimizing LSTM language models "
               "(arXiv 1708.02182)"),
        equations=("training: U -> U * M / (1 - p), M ~ Bernoulli(1 - p) per entry, one "
                   "mask per call shared by the batch and every step; inference: U"),
    ),
)


def cell_options() -> list:
    """The options every cell takes (``norm``, ``zoneout``, ``recurrent_weight_dropout``).

    Returns:
        A list of :class:`CellOption` (argument, paper, equations); see
        :class:`grukit.GatedRNNCell` for the full contract.

    Example:
        >>> import grukit
        >>> [o.argument for o in grukit.cell_options()][:2]
        ['norm="layer"', 'norm="rms"']
    """
    return list(CELL_OPTIONS)


def variants() -> list:
    """All registered variants, in a stable order.

    Returns:
        A list of :class:`Variant` (name, paper, equations, parameter-count
        formula via ``param_formula`` / ``param_count``).

    Example:
        >>> import grukit
        >>> [v.name for v in grukit.variants()][:4]
        ['gru', 'gru1', 'gru2', 'gru3']
    """
    return list(VARIANTS.values())


def get_variant(name) -> Variant:
    """Look a variant up by name (case-insensitive); a Variant passes through."""
    if isinstance(name, Variant):
        return name
    if not isinstance(name, str):
        raise TypeError(
            f"`variant` must be a variant name (str), got {type(name).__name__}: {name!r}."
        )
    key = name.lower().replace("-", "").replace("_", "")
    if key not in VARIANTS:
        raise ValueError(
            f"Unknown variant {name!r}. Expected one of: {', '.join(VARIANTS)}."
        )
    return VARIANTS[key]
