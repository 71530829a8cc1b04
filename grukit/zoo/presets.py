"""Presets: a trained zoo model as three files, written atomically.

A preset is a directory in the keras-hub style::

    config.json         keras.saving.serialize_keras_object(model): the architecture
    model.weights.h5    model.save_weights(...): the trained weights
    metadata.json       what was measured and how: metrics, data checksums,
                        hardware, training time, command, versions, date
    assets/             optional extra files (a vocabulary, ...)

It loads on every Keras backend (TensorFlow, JAX, PyTorch), whichever one
trained it. :func:`save_preset` writes into a temporary sibling directory and
renames it into place, so a reader never sees a half-written preset and an
interrupted save leaves any previous preset untouched.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

__all__ = [
    "PRESET_FORMAT", "Preset", "save_preset", "load_preset", "read_metadata",
    "is_preset", "sha256_file", "hardware_info", "versions_info", "replace_dir",
    "check_replaceable", "temp_sibling", "tensorflow_optional",
]

PRESET_FORMAT = "grukit-zoo-preset/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
ASSETS_DIR = "assets"


class Preset:
    """Where a loaded model came from: the preset directory and its metadata.

    :func:`grukit.zoo.load` and :func:`load_preset` attach one to the model as
    ``model.zoo_preset``; recipes read the preprocessing they need from it
    (e.g. the ETT recipe's standardisation).

    Attributes:
        path: the preset directory (``pathlib.Path``).
        metadata: the parsed ``metadata.json`` (a plain dict).

    Example:
        >>> import grukit.zoo
        >>> model = grukit.zoo.load("ett-forecasting")
        >>> model.zoo_preset.path.name, model.zoo_preset.metadata["model"]
        ('preset', 'ett-forecasting')
        >>> round(model.zoo_preset.metadata["metrics"]["test"]["mse"], 3)
        0.356
    """

    def __init__(self, path, metadata):
        self.path = Path(path)
        self.metadata = metadata

    def asset(self, name):
        """Path of an asset file of this preset (``assets/NAME``)."""
        return self.path / ASSETS_DIR / name

    def __repr__(self):
        return f"Preset({str(self.path)!r}, model={self.metadata.get('model')!r})"


@contextlib.contextmanager
def tensorflow_optional():
    """Within this context Keras treats TensorFlow as not installed, unless the backend is
    TensorFlow or TensorFlow is already imported.

    Keras imports TensorFlow (seconds) on every backend in ``set_random_seed`` (to seed
    ``tf.data``) and ``serialize_keras_object`` (to recognise ``tf.TensorShape``); the
    zoo needs neither on JAX and PyTorch. Falls back to doing nothing if Keras's
    internals move.

    Example:
        >>> import keras
        >>> from grukit.zoo.presets import tensorflow_optional
        >>> with tensorflow_optional():
        ...     keras.utils.set_random_seed(0)     # seeds without importing TensorFlow
    """
    import keras

    lazy = None
    if keras.backend.backend() != "tensorflow" and "tensorflow" not in sys.modules:
        try:
            from keras.src.utils import module_utils

            lazy = module_utils.tensorflow
            saved = lazy._available
        except (ImportError, AttributeError):
            lazy = None
    if lazy is None:
        yield
        return
    lazy._available = False
    try:
        yield
    finally:
        lazy._available = saved


def sha256_file(path, chunk=1 << 20):
    """The hex SHA-256 of a file.

    Example:
        >>> from pathlib import Path
        >>> from grukit.zoo.presets import sha256_file
        >>> _ = Path("hello.txt").write_text("hello")
        >>> sha256_file("hello.txt")[:16]
        '2cf24dba5fb0a30e'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def hardware_info():
    """A dict describing this machine: platform, processor, CPU count, GPU name (or None).

    ``platform`` is the operating system and architecture only (``"Linux x86_64"``): no
    kernel build or host names go into a preset's metadata. The GPU name comes from
    ``nvidia-smi`` when it is available; nothing is imported for it, so this is cheap on
    every backend.

    Example:
        >>> from grukit.zoo.presets import hardware_info
        >>> sorted(hardware_info())
        ['cpu_count', 'gpu', 'platform', 'processor']
    """
    processor = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    processor = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            gpu = ", ".join(line.strip() for line in out.stdout.splitlines() if line.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {"platform": f"{platform.system()} {platform.machine()}", "processor": processor,
            "cpu_count": os.cpu_count(), "gpu": gpu}


def versions_info():
    """grukit, Keras, backend (name and version), keras-tuner and Python versions.

    Example:
        >>> import keras
        >>> import grukit
        >>> from grukit.zoo.presets import versions_info
        >>> info = versions_info()
        >>> info["grukit"] == grukit.__version__, info["backend"] == keras.backend.backend()
        (True, True)
    """
    import keras

    import grukit

    backend = keras.backend.backend()
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    backend_version = None
    if module in sys.modules:
        backend_version = getattr(sys.modules[module], "__version__", None)
    info = {"grukit": grukit.__version__, "keras": keras.__version__, "backend": backend,
            "backend_version": backend_version, "python": platform.python_version()}
    if "keras_tuner" in sys.modules:
        info["keras_tuner"] = sys.modules["keras_tuner"].__version__
    return info


def is_preset(path):
    """Whether ``path`` is a directory holding a preset (config, weights and metadata).

    Example:
        >>> import grukit.zoo
        >>> from grukit.zoo.presets import is_preset
        >>> is_preset(grukit.zoo.get("ett-forecasting").preset_dir()), is_preset("nowhere")
        (True, False)
    """
    path = Path(path)
    return all((path / name).is_file() for name in (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE))


def read_metadata(path):
    """The ``metadata.json`` of the preset in ``path`` as a dict (no Keras needed).

    Raises:
        FileNotFoundError: ``path`` is not a preset directory (naming the missing files).

    Example:
        >>> import grukit.zoo
        >>> from grukit.zoo.presets import read_metadata
        >>> metadata = read_metadata(grukit.zoo.get("ett-forecasting").preset_dir())
        >>> metadata["model"], round(metadata["metrics"]["test"]["mse"], 3)
        ('ett-forecasting', 0.356)
        >>> read_metadata("nowhere")
        Traceback (most recent call last):
        FileNotFoundError: 'nowhere' is not a grukit zoo preset: missing config.json, ...
    """
    path = Path(path)
    if not is_preset(path):
        missing = [n for n in (CONFIG_FILE, WEIGHTS_FILE, METADATA_FILE)
                   if not (path / n).is_file()]
        raise FileNotFoundError(
            f"{str(path)!r} is not a grukit zoo preset: missing {', '.join(missing)} "
            f"(a preset directory holds {CONFIG_FILE}, {WEIGHTS_FILE} and {METADATA_FILE}).")
    with open(path / METADATA_FILE) as f:
        return json.load(f)


def replace_dir(tmp, dest, looks_replaceable):
    """Move the finished directory ``tmp`` to ``dest``; an existing ``dest`` is replaced.

    ``dest`` may exist only if it is empty or ``looks_replaceable(dest)`` is
    true (a previous preset/export): an unrelated directory is never
    replaced. The old directory is renamed aside first and restored if the
    final rename fails, then deleted.

    Raises:
        FileExistsError: ``dest`` exists and is a file or an unrelated directory.

    Example:
        >>> from pathlib import Path
        >>> from grukit.zoo.presets import replace_dir, temp_sibling
        >>> tmp = temp_sibling("exports/ett")          # write into tmp, then
        >>> _ = (tmp / "saved_model.pb").write_bytes(b"...")
        >>> replace_dir(tmp, "exports/ett", lambda d: (d / "saved_model.pb").is_file())
        >>> [p.as_posix() for p in Path("exports").rglob("*")]
        ['exports/ett', 'exports/ett/saved_model.pb']
    """
    tmp, dest = Path(tmp), Path(dest)
    check_replaceable(dest, looks_replaceable)
    if dest.is_dir():
        old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(dest, old)
        try:
            os.rename(tmp, dest)
        except BaseException:
            os.rename(old, dest)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, dest)


def check_replaceable(dest, looks_replaceable):
    """Raise ``FileExistsError`` unless ``dest`` is absent, empty or ``looks_replaceable``.

    Example:
        >>> import os
        >>> from grukit.zoo.presets import check_replaceable, is_preset
        >>> check_replaceable("runs/ett/preset", is_preset)     # before doing any work
        >>> os.makedirs("notes")
        >>> open("notes/todo.txt", "w").close()
        >>> check_replaceable("notes", is_preset)
        Traceback (most recent call last):
        FileExistsError: 'notes' exists and is neither empty nor a previous output of this command; ...
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise FileExistsError(f"{str(dest)!r} exists and is not a directory.")
    if dest.is_dir() and any(dest.iterdir()) and not looks_replaceable(dest):
        raise FileExistsError(
            f"{str(dest)!r} exists and is neither empty nor a previous output of this "
            f"command; refusing to replace it. Choose another directory or remove it.")


def temp_sibling(dest, tag="tmp"):
    """A fresh, empty temporary directory next to ``dest`` (same file system, so that
    :func:`replace_dir` can rename it into place).

    Example:
        >>> from grukit.zoo.presets import temp_sibling
        >>> tmp = temp_sibling("runs/ett/preset")     # runs/ett/.preset.tmp-<pid>-<random>
        >>> tmp.parent.as_posix(), tmp.name.startswith(".preset.tmp-"), tmp.is_dir()
        ('runs/ett', True, True)
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def save_preset(model, path, metadata, assets=None):
    """Write ``model`` as a preset directory ``path``, atomically.

    Args:
        model: a built Keras model whose classes are registered for Keras
            serialization (``keras.saving.register_keras_serializable``).
        path: the preset directory. If it exists it must be empty or a
            previous preset; it is replaced as a whole.
        metadata: a JSON-serialisable dict (metrics, data checksums, ...).
            ``format``, ``keras_version``, ``parameter_count`` and
            ``date_saved`` are added when missing.
        assets: optional ``{file name: str | bytes | path of a file}`` written
            into ``assets/``.

    Returns:
        ``pathlib.Path`` of the preset.

    Example:
        >>> import keras
        >>> from grukit.zoo.presets import load_preset, save_preset
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> path = save_preset(model, "runs/demo/preset", {"model": "demo", "metrics": {}})
        >>> sorted(p.name for p in path.iterdir())
        ['config.json', 'metadata.json', 'model.weights.h5']
        >>> load_preset(path).zoo_preset.metadata["parameter_count"]
        8
    """
    import keras

    path = Path(path)
    check_replaceable(path, is_preset)
    metadata = dict(metadata)
    metadata.setdefault("format", PRESET_FORMAT)
    metadata.setdefault("keras_version", keras.__version__)
    metadata.setdefault("parameter_count", int(model.count_params()))
    metadata.setdefault("date_saved", datetime.datetime.now().isoformat(timespec="seconds"))
    tmp = temp_sibling(path)
    try:
        with tensorflow_optional():
            config = keras.saving.serialize_keras_object(model)
        with open(tmp / CONFIG_FILE, "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
            f.write("\n")
        _save_weights_without_optimizer(model, tmp / WEIGHTS_FILE)
        with open(tmp / METADATA_FILE, "w") as f:
            json.dump(metadata, f, indent=2)
            f.write("\n")
        for name, content in (assets or {}).items():
            (tmp / ASSETS_DIR).mkdir(exist_ok=True)
            target = tmp / ASSETS_DIR / name
            if isinstance(content, bytes):
                target.write_bytes(content)
            elif isinstance(content, os.PathLike):
                shutil.copyfile(content, target)
            else:
                target.write_text(content)
        replace_dir(tmp, path, is_preset)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _save_weights_without_optimizer(model, path):
    """``model.save_weights`` without the optimizer's slots (a preset is for inference;
    Adam's moments would triple the file)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        model.save_weights(str(path))
        return
    model.optimizer = None
    try:
        model.save_weights(str(path))
    finally:
        model.optimizer = optimizer


def load_preset(path, compile=False):
    """Rebuild the Keras model of the preset in ``path`` and load its weights.

    The classes named in ``config.json`` must be registered first: for zoo
    presets, :func:`grukit.zoo.from_preset` imports the model's recipe (named
    in ``metadata.json``) and then calls this. Works on every backend.

    Args:
        path: a preset directory.
        compile: also restore the training configuration (optimizer, loss)
            when the config holds one. Default ``False``: an inference model.

    Returns:
        The Keras model, with ``model.zoo_preset`` (:class:`Preset`) attached.

    Example:
        >>> import grukit.zoo                  # registers the zoo models' classes
        >>> from grukit.zoo.presets import load_preset
        >>> model = load_preset(grukit.zoo.get("ett-forecasting").preset_dir())
        >>> type(model).__name__, model.zoo_preset.metadata["model"]
        ('SegRNN', 'ett-forecasting')
    """
    import keras

    path = Path(path)
    metadata = read_metadata(path)
    with open(path / CONFIG_FILE) as f:
        config = json.load(f)
    if not compile and isinstance(config, dict):
        config = dict(config)
        config.pop("compile_config", None)
    with tensorflow_optional():  # keras.layers.Bidirectional serialises its layer (IMDB)
        model = keras.saving.deserialize_keras_object(config)
        if not model.built:
            build_config = config.get("build_config") if isinstance(config, dict) else None
            if build_config:
                model.build_from_config(build_config)
    model.load_weights(str(path / WEIGHTS_FILE))
    model.zoo_preset = Preset(path, metadata)
    return model
