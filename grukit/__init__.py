"""grukit: the GRU family of gated recurrent cells for Keras 3.

Cells (``keras.layers.GRUCell`` subclasses, usable in ``keras.layers.RNN``)::

    GRUCell, GRU1Cell, GRU2Cell, GRU3Cell      Cho 2014; Dey & Salem 2017
    MGUCell, MGU1Cell, MGU2Cell, MGU3Cell      Zhou 2016; Heck & Salem 2017
    LiGRUCell, MinGRUCell                      Ravanelli 2018; Feng 2024

all instances of one mechanism, :class:`GatedRNNCell`, parameterised by a
:class:`Variant`. Fast layers are in :mod:`grukit.layers`.

Nothing heavy is imported here: Keras (and its backend) on first use of a cell or
layer. grukit runs on the JAX and PyTorch backends without TensorFlow.
"""

import sys

from grukit.variants import CellOption, Variant, cell_options, get_variant, variants

__version__ = "0.1.0"

__all__ = [
    "Variant", "get_variant", "variants", "CellOption", "cell_options", "CELLS", "GatedRNNCell",
    "GRUCell", "GRU1Cell", "GRU2Cell", "GRU3Cell",
    "MGUCell", "MGU1Cell", "MGU2Cell", "MGU3Cell", "LiGRUCell", "MinGRUCell",
    "get_cell", "gate_activations", "layers", "__version__",
]

# Keras (and with it the backend) is imported on first use of a cell, a layer or
# gate_activations, not by `import grukit`: the command line answers --help at once.
_LAZY = {name: "grukit.cells" for name in (
    "CELLS", "GatedRNNCell", "GRUCell", "GRU1Cell", "GRU2Cell", "GRU3Cell", "MGUCell",
    "MGU1Cell", "MGU2Cell", "MGU3Cell", "LiGRUCell", "MinGRUCell", "get_cell")}
_LAZY["gate_activations"] = "grukit.inspect"


def __getattr__(name):
    import importlib

    if name == "layers":
        return importlib.import_module("grukit.layers")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'grukit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _RegisterWithKeras:
    """Import :mod:`grukit.layers` (which registers the cells and layers for ``.keras``
    files) as soon as Keras itself is imported, so that ``keras.saving.load_model``
    finds grukit's classes in either import order, while ``import grukit`` alone stays
    light. A one-shot finder: it steps aside on the first lookup of ``keras``."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader, exec_module = spec.loader, spec.loader.exec_module

        class _Loader:
            def __getattr__(self, attr):
                return getattr(loader, attr)

            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                exec_module(module)
                import grukit.layers  # noqa: F401  (registers the cells and layers)

        spec.loader = _Loader()
        return spec


if "keras" in sys.modules:
    import grukit.layers  # noqa: F401,E402  (registers the cells and layers)
else:
    sys.meta_path.insert(0, _RegisterWithKeras())
