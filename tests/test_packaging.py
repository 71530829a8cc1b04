"""The installed package: a wheel built from the source tree holds the zoo's presets,
and, installed away from the checkout, loads every one of them and answers."""
import json
import os
import shutil
import subprocess
import sys
import textwrap


from conftest import REPO, once

pytestmark = once  # builds and installs a wheel, used in subprocesses

USE = textwrap.dedent('''
    import json, sys
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
    out["tensorflow imported"] = "tensorflow" in sys.modules
    print("RESULT " + json.dumps(out))
''')


def test_wheel_installed_outside_the_checkout_serves_every_preset(tmp_path):
    src = tmp_path / "src"  # a clean copy: no stale build/ or egg-info of the checkout
    shutil.copytree(os.path.join(REPO, "grukit"), src / "grukit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO, name), src / name)
    wheels, site, away = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    away.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(src)], check=True, capture_output=True, timeout=900)
    wheel, = wheels.glob("grukit-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=900)
    # PyTorch: nothing to compile (JAX compiles each model: seconds apiece); loading every
    # preset on every backend is tests/test_presets_reproduce.py's
    env = dict(os.environ, PYTHONPATH=str(site), KERAS_BACKEND="torch", TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("GRUKIT_DATA_DIR", None)  # no data: the presets alone
    proc = subprocess.run([sys.executable, "-c", USE], cwd=away, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    out = json.loads(line[-1][len("RESULT "):])
    assert out["grukit"].startswith(str(site)), out["grukit"]  # the installed copy
    assert out["horizons"] == [96, 192, 336, 720]
    for h in out["horizons"]:
        assert out[f"ett-h{h}"] == [h, 7]
    positive, negative = out["imdb-sentiment"]
    assert positive > 0.5 > negative
    assert len(out["char-lm"]) == 30
    assert out["tensorflow imported"] is False  # the presets load and answer without it
