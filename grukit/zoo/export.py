"""Atomic TensorFlow SavedModel export of a preset, verified in a fresh process (see
:func:`export`).
"""

from __future__ import annotations

import logging
import os
import shutil
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

from grukit.zoo import presets as _presets

__all__ = ["export", "verify_saved_model"]

log = logging.getLogger(__name__)

_VERIFY = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    served = tf.saved_model.load(sys.argv[1])
    x = np.load(sys.argv[2], allow_pickle=False)
    y = served.serve(tf.constant(x))
    np.save(sys.argv[3], np.asarray(y))
    if "grukit" in sys.modules:
        raise SystemExit("loading the SavedModel imported grukit")
    print("served", x.shape, "->", np.asarray(y).shape)
""")


def export(recipe, out, preset=None, verify=True, verbose=True):
    """Export a preset as a TensorFlow SavedModel serving what users have, atomically.

    The SavedModel's ``serve`` signature is :meth:`serving`'s. The export is
    written to a temporary sibling of ``out``, loaded with
    ``tf.saved_model.load`` in a fresh Python process that does not import
    grukit, compared with :meth:`predict` on :meth:`serving_sample`, and only
    then renamed to ``out`` (replacing a previous export). On any failure no
    partial ``out`` is left and a previous ``out`` is untouched. Under another
    backend the export runs in a subprocess with ``KERAS_BACKEND=tensorflow``
    (a preset trained on JAX or PyTorch exports the same way).

    The preset's ``metadata.json`` is copied to ``out/assets.extra/``.

    Returns:
        ``pathlib.Path`` of the export.

    Example:
        >>> import os
        >>> import grukit.zoo
        >>> ett = grukit.zoo.get("ett-forecasting")
        >>> path = ett.export("exports/ett")  # doctest: +SKIP
        >>> os.makedirs("docs")                # not an export: never replaced
        >>> open("docs/notes.md", "w").close()
        >>> ett.export("docs")
        Traceback (most recent call last):
        FileExistsError: 'docs' exists and is neither empty nor a previous output of this command; ...
    """
    import keras

    out = Path(out)
    preset_path = recipe.resolve_preset(preset)
    _presets.check_replaceable(out, _is_saved_model)
    if keras.backend.backend() != "tensorflow":
        cmd = [sys.executable, "-m", "grukit", "zoo", "export", recipe.name,
               "--preset", str(preset_path), "--out", str(out)]
        if not verify:
            cmd.append("--no-verify")
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        if verbose:
            log.info(f"export runs under the TensorFlow backend: {shlex.join(cmd)}")
        proc = subprocess.run(cmd, env=env, capture_output=not verbose, text=True)
        if proc.returncode != 0:
            detail = "" if verbose else f":\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}"
            raise RuntimeError(f"export of {recipe.name} under TensorFlow failed "
                               f"(exit {proc.returncode}){detail}")
        return out

    log.info(f"export: loading the preset {preset_path}")
    model = recipe.load(preset_path)
    preset_info = model.zoo_preset
    tmp = _presets.temp_sibling(out, "export")
    try:
        # Endpoints first: a recipe's serving() may attach resources (IMDB's
        # lookup table) to the model, which track() must then see.
        endpoints = recipe.export_endpoints(model, preset_info)
        archive = keras.export.ExportArchive()
        archive.track(model)
        for name, fn, signature in endpoints:
            archive.add_endpoint(name=name, fn=fn, input_signature=list(signature))
        log.info(f"export: writing the SavedModel ({', '.join(e[0] for e in endpoints)})")
        archive.write_out(str(tmp), verbose=False)
        (tmp / "assets.extra").mkdir(exist_ok=True)
        shutil.copyfile(preset_path / _presets.METADATA_FILE,
                        tmp / "assets.extra" / "metadata.json")
        recipe.export_extras(model, tmp / "assets.extra")
        if verify:
            log.info("export: verifying it in a fresh process that does not import grukit")
            recipe.verify_export(model, tmp, verbose=verbose)
        _presets.replace_dir(tmp, out, _is_saved_model)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(f"SavedModel written to {out}")
    return out


def _is_saved_model(path):
    return (Path(path) / "saved_model.pb").is_file()


def verify_saved_model(path, sample, timeout=600):
    """Load the SavedModel at ``path`` in a fresh Python process that does not import
    grukit, call its ``serve`` signature on ``sample`` and return the outputs (NumPy).

    Raises:
        RuntimeError: loading or serving failed, or it imported grukit.

    Example:
        >>> import numpy as np
        >>> from grukit.zoo.export import verify_saved_model
        >>> windows = np.zeros((2, 720, 7), "float32")    # for ``ett.export("exports/ett")``
        >>> verify_saved_model("exports/ett", windows).shape  # doctest: +SKIP
        (2, 96, 7)
    """
    import tempfile

    import numpy as np

    with tempfile.TemporaryDirectory() as workdir:
        xpath, ypath = Path(workdir) / "x.npy", Path(workdir) / "y.npy"
        np.save(xpath, sample, allow_pickle=False)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
        proc = subprocess.run([sys.executable, "-c", _VERIFY, str(Path(path).resolve()),
                               str(xpath), str(ypath)], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"the exported SavedModel failed to load/serve in a fresh "
                               f"process (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        return np.load(ypath)
