"""grukit: the GRU family of gated recurrent cells for Keras 3.

Cells (``keras.layers.GRUCell`` subclasses, usable in ``keras.layers.RNN``)::

    GRUCell, GRU1Cell, GRU2Cell, GRU3Cell      Cho 2014; Dey & Salem 2017
    MGUCell, MGU1Cell, MGU2Cell, MGU3Cell      Zhou 2016; Heck & Salem 2017
    LiGRUCell, MinGRUCell                      Ravanelli 2018; Feng 2024

all instances of one mechanism, :class:`GatedRNNCell`, parameterised by a
:class:`Variant`. Fast layers are in :mod:`grukit.layers`.

TensorFlow is not imported here: grukit runs on the JAX and PyTorch backends
without it.
"""

from grukit.variants import CellOption, Variant, cell_options, get_variant, variants
from grukit.cells import (
    CELLS,
    GatedRNNCell,
    GRUCell,
    GRU1Cell,
    GRU2Cell,
    GRU3Cell,
    MGUCell,
    MGU1Cell,
    MGU2Cell,
    MGU3Cell,
    LiGRUCell,
    MinGRUCell,
    get_cell,
)
from grukit.inspect import gate_activations
from grukit import layers

__version__ = "0.1.0"

__all__ = [
    "Variant", "get_variant", "variants", "CellOption", "cell_options", "CELLS", "GatedRNNCell",
    "GRUCell", "GRU1Cell", "GRU2Cell", "GRU3Cell",
    "MGUCell", "MGU1Cell", "MGU2Cell", "MGU3Cell", "LiGRUCell", "MinGRUCell",
    "get_cell", "gate_activations", "layers", "__version__",
]
