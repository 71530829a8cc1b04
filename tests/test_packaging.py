"""The installed package: a wheel built from the source tree holds the zoo's presets and,
installed away from the checkout with TensorFlow and tensorflow-datasets unimportable (as if
not installed), loads every preset and answers, reads the local data offline, and runs
``grukit demo``.

The three checks share one Python process (the ``installed`` fixture, PyTorch backend:
nothing to compile): the presets first, without data; then, when the data is present, the
loaders; then the demo. Each test reads its part of that process's report.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import grukit
from conftest import DATA_DIR, REPO, once, require_data

pytestmark = once  # builds and installs a wheel, used in a subprocess

VARIANT_NAMES = [v.name for v in grukit.variants()]
DATA_FILES = [os.path.join(DATA_DIR, *p) for p in (("imdb", "aclImdb_v1.tar.gz"),
                                                   ("tinyshakespeare", "input.txt"),
                                                   ("ett", "ETTh1.csv"))]

# argv[1]: the data directory, or "" to leave the loaders out.
INSTALLED = textwrap.dedent('''
    import contextlib, importlib.abc, importlib.machinery, io, json, os, sys

    class NotInstalled(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        """Makes tensorflow and tensorflow_datasets unimportable, as if not installed, and
        records each attempt to import them (``tried``)."""
        tried = []
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "tensorflow_datasets"):
                self.tried.append(name)
                return importlib.machinery.ModuleSpec(name, self)
        def create_module(self, spec):
            raise ModuleNotFoundError(f"No module named {spec.name!r}", name=spec.name)
        def exec_module(self, module):
            pass

    blocker = NotInstalled()
    sys.meta_path.insert(0, blocker)
    try:
        import tensorflow
    except ImportError:
        pass
    else:
        raise AssertionError("the blocker did not block tensorflow")
    data_dir = sys.argv[1]
    os.environ.pop("GRUKIT_DATA_DIR", None)  # no data: the presets alone

    import numpy as np
    import grukit, grukit.zoo as zoo
    out = {"grukit": grukit.__file__}
    clf = zoo.SentimentClassifier.from_preset("imdb-sentiment")
    out["imdb-sentiment"] = clf.predict(["a moving, funny and superbly acted film",
                                         "an overlong, joyless film"]).tolist()
    out["char-lm"] = zoo.CharLM.from_preset("char-lm").generate("ROMEO:", 30, seed=1)
    ett = zoo.get("ett-forecasting")
    out["horizons"] = ett.committed_horizons()
    for h in out["horizons"]:
        fc = zoo.Forecaster.from_preset("ett-forecasting", horizon=h)
        pre = fc.preset.metadata["preprocessing"]
        window = np.tile(np.asarray(pre["mean"], "float32"), (fc.lookback, 1))
        out[f"ett-h{h}"] = list(fc.predict(window).shape)

    if data_dir:  # the loaders, offline, from $GRUKIT_DATA_DIR
        os.environ["GRUKIT_DATA_DIR"] = data_dir
        import keras
        from grukit import datasets

        texts, labels = datasets.load_imdb("test", download=False)
        text = datasets.load_tiny_shakespeare("validation", download=False)
        data = datasets.load_ett(download=False)
        ds = datasets.WindowDataset(data, "test", 24, 8, batch_size=512)
        model = keras.Sequential([keras.Input((24, 7)), keras.layers.Flatten(),
                                  keras.layers.Dense(8 * 7), keras.layers.Reshape((8, 7))])
        model.compile("adam", "mse")
        model.fit(ds, epochs=1, verbose=0)
        out["loaders"] = {"backend": keras.backend.backend(), "imdb test": len(texts),
                          "imdb positive": int(labels.sum()), "shakespeare validation": len(text),
                          "ett rows": int(data.values.shape[0]), "ett test batches": len(ds),
                          "loss": float(model.evaluate(ds, verbose=0))}

    from grukit.__main__ import main  # what `grukit demo` / `python -m grukit demo` run
    del blocker.tried[:]
    with contextlib.redirect_stdout(io.StringIO()) as demo:
        out["demo exit"] = main(["demo"])
    out["demo"] = demo.getvalue()
    out["demo tried to import"] = blocker.tried
    print("RESULT " + json.dumps(out))
''')


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The report of the one process that uses the wheel installed away from the checkout."""
    tmp = tmp_path_factory.mktemp("installed")
    src = tmp / "src"  # a clean copy: no stale build/ or egg-info of the checkout
    shutil.copytree(os.path.join(REPO, "grukit"), src / "grukit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO, name), src / name)
    wheels, site, away = tmp / "wheels", tmp / "site", tmp / "elsewhere"
    away.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(src)], check=True, capture_output=True, timeout=900)
    wheel, = wheels.glob("grukit-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=900)
    data_dir = DATA_DIR if all(os.path.isfile(p) for p in DATA_FILES) else ""
    env = dict(os.environ, PYTHONPATH=str(site), KERAS_BACKEND="torch", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", INSTALLED, data_dir], cwd=away, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, proc.stdout[-3000:]
    return {"site": str(site), **json.loads(line[-1][len("RESULT "):])}


def test_wheel_installed_outside_the_checkout_serves_every_preset(installed):
    assert installed["grukit"].startswith(installed["site"]), installed["grukit"]  # the wheel
    assert installed["horizons"] == [96, 192, 336, 720]
    for h in installed["horizons"]:
        assert installed[f"ett-h{h}"] == [h, 7]
    positive, negative = installed["imdb-sentiment"]
    assert positive > 0.5 > negative
    assert len(installed["char-lm"]) == 30


def test_offline_loaders_work_without_tensorflow(installed):
    for path in DATA_FILES:
        require_data(path)
    loaders = installed["loaders"]
    assert loaders.pop("loss") > 0
    assert loaders == {"backend": "torch", "imdb test": 25000, "imdb positive": 12500,
                       "shakespeare validation": 111540, "ett rows": 17420,
                       "ett test batches": 6}


def test_cli_demo_prints_every_variant(installed):
    assert installed["demo exit"] == 0
    # not even an attempt: with TensorFlow installed, the demo would load it (seconds) for
    # nothing on this backend (keras.utils.set_random_seed does)
    assert installed["demo tried to import"] == [], installed["demo tried to import"]
    stdout = installed["demo"]
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in VARIANT_NAMES:
            rows[parts[0]] = parts
    assert sorted(rows) == sorted(VARIANT_NAMES), stdout
    for name, parts in rows.items():
        params, formula, mean, std, diff = parts[1:6]
        assert int(params) == int(formula) > 0, f"{name}: params {params} != formula {formula}"
        assert np.isfinite(float(mean)) and float(std) > 0, parts
        assert float(diff) < 1e-5, f"{name}: keras.layers.RNN vs grukit.layers.RNN differ by {diff}"
    assert re.search(r"backend torch", stdout), stdout
    # the zoo's three models answer from the shipped presets
    p = [float(m) for m in re.findall(r"imdb-sentiment   P\(positive\) = ([0-9.]+)", stdout)]
    assert len(p) == 2 and p[0] > 0.5 > p[1], stdout
    assert re.search(r"char-lm          ROMEO:\n                 \S", stdout), stdout
    ot = re.search(r"ett-forecasting  OT over the next 96 h.*\(min ([-0-9.]+), max ([-0-9.]+)\)",
                   stdout)
    assert ot and float(ot.group(1)) <= float(ot.group(2)), stdout
