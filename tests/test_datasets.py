"""grukit.datasets: split sizes, where the loaders look, and how they fail.

Real data come from $GRUKIT_DATA_DIR (tests/run.sh points it at ../shared/data);
tests that need a real file skip with a message when it is absent. Nothing here
downloads: the online paths run against tfds.testing.mock_data or a fake
keras.utils.get_file. Tests that do not depend on the backend and cost seconds
(the full IMDB parse, TensorFlow/tfds imports)
run once, in the TensorFlow pass.
"""
import io
import math
import os
import tarfile

import numpy as np
import pytest

import keras

from grukit import datasets
from conftest import BACKEND, DATA_DIR, every_pass, one_pass, require_data

#: tests without a pass of their own run once, in this pass (conftest.py)
ONE_PASS = one_pass("torch", "jax", "tensorflow", why="data loaders, on one backend")

IMDB_TAR = os.path.join(DATA_DIR, "imdb", "aclImdb_v1.tar.gz")
SHAKESPEARE_TXT = os.path.join(DATA_DIR, "tinyshakespeare", "input.txt")
ETTH1_CSV = os.path.join(DATA_DIR, "ett", "ETTh1.csv")
COLS = list(datasets.ETT_COLUMNS)


def _need(path):
    return require_data(path)


def _tf_pass_only():
    if BACKEND != "tensorflow":
        pytest.skip("backend-independent and slow; runs once, in the TF pass")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No GRUKIT_DATA_DIR, no prepared tfds data, an empty Keras cache: only what a test sets."""
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds_empty"))
    monkeypatch.setattr(datasets, "_keras_home", lambda: str(tmp_path / "keras_home_empty"))
    return tmp_path


# -------------------------------------------------------------- fake data
def _review(split, label, rid, n_words=40):
    rng = np.random.default_rng([("train", "test").index(split), ("neg", "pos").index(label), rid])
    words = " ".join(rng.choice(["good", "bad", "plot", "actor", "film", "dull", "great", "the",
                                 "a", "scene", "ending", "music"], n_words))
    return f"{split} {label} {rid}: {words}.<br /><br />The end.".encode()


def _fake_imdb_tree(root, n=6, extra=None):
    """root/aclImdb/{train,test}/{neg,pos}/<id>_<rating>.txt, n reviews each, plus noise files."""
    base = os.path.join(root, "aclImdb")
    files = {}
    for split in ("train", "test"):
        for label in ("neg", "pos"):
            for rid in range(n):
                rating = 2 if label == "neg" else 9
                files[f"{split}/{label}/{rid}_{rating}.txt"] = _review(split, label, rid)
    files["train/neg/1_2.txt"] = b"  \xff\xfe not UTF-8, padded  \n"
    files["README"] = b"readme"
    files["imdb.vocab"] = b"the\nand\n"
    files["train/unsup/0_0.txt"] = b"unlabelled, ignored"
    files["train/urls_pos.txt"] = b"http://example.invalid\n"
    files.update(extra or {})
    for rel, data in files.items():
        path = os.path.join(base, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return base


def _tar_gz(src_dir, out):
    with tarfile.open(out, "w:gz") as tar:
        tar.add(src_dir, arcname="aclImdb")
    return out


def _ett_csv(path, rows=14400, minutes=60, columns=None, seed=0, offset=0.0, edit=None):
    """An ETT-format CSV with random data (column order `columns`, default the standard one)."""
    columns = columns or ["date", *COLS]
    rng = np.random.default_rng(seed)
    vals = rng.normal(size=(rows, 7)) * np.arange(1, 8) + np.arange(7) * 10 + offset
    dates = np.datetime64("2016-07-01T00:00:00") + np.arange(rows) * np.timedelta64(minutes, "m")
    table = {"date": np.char.replace(dates.astype(str), "T", " ").tolist()}
    table.update({c: [repr(v) for v in vals[:, i].tolist()] for i, c in enumerate(COLS)})
    cells = [table.get(c, ["0"] * rows) for c in columns]
    lines = [",".join(columns)] + [",".join(row) for row in zip(*cells)]
    if edit:
        edit(lines)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path, vals


@pytest.fixture(scope="module")
def ett_fake(tmp_path_factory):
    path, vals = _ett_csv(tmp_path_factory.mktemp("ett") / "ETTh1.csv")
    return datasets.load_ett(path=path), vals


# ------------------------------------------------------------------ IMDB
def test_imdb_real_official_splits():
    _tf_pass_only()
    _need(IMDB_TAR)
    datasets.clear_cache()
    full, y_full = datasets.load_imdb("train_full", path=IMDB_TAR)
    test, y_test = datasets.load_imdb("test", path=IMDB_TAR)
    assert len(full) == len(test) == 25000
    assert y_full.dtype == np.int64 and set(np.unique(y_full)) == {0, 1}
    assert (y_full == 1).sum() == (y_full == 0).sum() == 12500
    assert (y_test == 1).sum() == (y_test == 0).sum() == 12500
    assert datasets._read_imdb_archive.cache_info().hits >= 1, "test split re-read the archive"
    assert all(isinstance(t, str) for t in full[:100])
    assert any("<br />" in t for t in full[:200]), "raw text must keep the HTML"

    train, y_train = datasets.load_imdb("train", path=IMDB_TAR)
    val, y_val = datasets.load_imdb("validation", path=IMDB_TAR)
    assert (len(train), len(val)) == (20000, 5000)
    assert (y_val == 1).sum() == (y_val == 0).sum() == 2500
    assert sorted(train + val) == sorted(full)  # disjoint parts of the official train split
    assert datasets.load_imdb("validation", path=IMDB_TAR)[0] == val  # deterministic
    assert datasets.load_imdb("validation", path=IMDB_TAR, seed=1)[0] != val

    few, y_few = datasets.load_imdb("test", path=IMDB_TAR, limit=101)
    assert len(few) == 101 and y_few.sum() == 50
    assert set(few) <= set(test)


def test_imdb_real_truncated_archive(tmp_path):
    _tf_pass_only()
    data = open(_need(IMDB_TAR), "rb").read(3_000_000)
    cut = tmp_path / "aclImdb_v1.tar.gz"
    cut.write_bytes(data)
    with pytest.raises(ValueError, match=r"aclImdb_v1\.tar\.gz.*truncated or corrupt.*[Dd]ownload"):
        datasets.load_imdb("test", path=cut)


def test_imdb_extracted_dir_and_archive_agree(tmp_path, isolated):
    base = _fake_imdb_tree(tmp_path / "src", extra={"train/neg/10_1.txt": b"id ten"})
    texts, labels = datasets.load_imdb("train_full", path=base)
    assert len(texts) == 13 and labels.tolist() == [0] * 7 + [1] * 6
    # negatives then positives, each by the numeric id of <id>_<rating>.txt; raw text kept
    assert [t[:11] for t in texts[:7]] == ["train neg 0", "  \ufffd\ufffd not UT", "train neg 2",
                                           "train neg 3", "train neg 4", "train neg 5", "id ten"]
    assert texts[1] == "  \ufffd\ufffd not UTF-8, padded  \n"  # undecodable bytes replaced
    assert texts[7].startswith("train pos 0: ") and "<br /><br />" in texts[0]
    # the parent of aclImdb/ works too, and so does a data_dir laid out as imdb/aclImdb/
    assert datasets.load_imdb("train_full", path=tmp_path / "src")[0] == texts
    os.makedirs(tmp_path / "root")
    os.rename(tmp_path / "src", tmp_path / "root" / "imdb")
    assert datasets.load_imdb("train_full", data_dir=tmp_path / "root")[0] == texts

    archive = _tar_gz(tmp_path / "root" / "imdb" / "aclImdb", tmp_path / "a.tar.gz")
    for split in ("train", "validation", "train_full", "test"):
        from_dir = datasets.load_imdb(split, path=tmp_path / "root" / "imdb")
        from_tar = datasets.load_imdb(split, path=archive)
        assert from_dir[0] == from_tar[0] and (from_dir[1] == from_tar[1]).all(), split


def test_imdb_validation_carve_and_limit(tmp_path, isolated):
    base = _fake_imdb_tree(tmp_path, n=25)
    full, y_full = datasets.load_imdb("train_full", path=base)
    train, y_train = datasets.load_imdb("train", path=base)
    val, y_val = datasets.load_imdb("validation", path=base)
    assert (len(train), len(val)) == (40, 10) and y_val.sum() == 5  # 20% of each label
    assert sorted(train + val) == sorted(full) and not set(train) & set(val)
    assert [t for t in full if t in set(train)] == train  # keeps the file order
    val3 = datasets.load_imdb("validation", path=base, validation_fraction=0.3)[0]
    assert len(val3) == 16  # round(0.3 * 25) per label
    assert datasets.load_imdb("validation", path=base, seed=5)[0] != val

    few, y_few = datasets.load_imdb("train", path=base, limit=7)
    assert len(few) == 7 and y_few.tolist().count(1) == 3 and set(few) <= set(train)
    assert datasets.load_imdb("train", path=base, limit=7)[0] == few
    assert len(datasets.load_imdb("test", path=base, limit=1000)[0]) == 50  # all there is

    # membership depends on the reviews only, not on their order or outer whitespace
    # (tensorflow-datasets orders reviews its own way and strips them)
    order = np.random.default_rng(0).permutation(len(full))
    shuffled = [full[i].strip() for i in order]
    v2, _ = datasets._select_imdb(shuffled, y_full[order], "validation", None, 0.2, 0)
    assert sorted(v2) == sorted(t.strip() for t in val)

    with pytest.raises(ValueError, match="unknown split"):
        datasets.load_imdb("dev", path=base)
    with pytest.raises(ValueError, match="validation_fraction"):
        datasets.load_imdb("train", path=base, validation_fraction=1.0)
    with pytest.raises(ValueError, match="limit"):
        datasets.load_imdb("train", path=base, limit=0)


def test_imdb_archive_is_cached_per_path_and_mtime(tmp_path, isolated):
    archive = _tar_gz(_fake_imdb_tree(tmp_path / "src"), tmp_path / "a.tar.gz")
    datasets.clear_cache()
    datasets.load_imdb("train", path=archive)
    datasets.load_imdb("test", path=archive)
    info = datasets._read_imdb_archive.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    os.utime(archive, ns=(0, 0))  # a replaced file is read again
    datasets.load_imdb("test", path=archive)
    assert datasets._read_imdb_archive.cache_info().misses == 2
    datasets.clear_cache()


@pytest.mark.parametrize("keep", [0.05, 0.5, 0.9, -4, -1])
def test_imdb_truncated_archive_is_a_clear_error(tmp_path, isolated, keep):
    extra = {f"test/pos/{100 + i}_8.txt": os.urandom(3000).hex().encode() for i in range(10)}
    archive = _tar_gz(_fake_imdb_tree(tmp_path / "src", extra=extra), tmp_path / "full.tar.gz")
    data = archive.read_bytes()
    cut = tmp_path / "aclImdb_v1.tar.gz"
    cut.write_bytes(data[:int(len(data) * keep)] if keep > 0 else data[:keep])
    with pytest.raises(ValueError, match=r"aclImdb_v1\.tar\.gz: the IMDB archive is truncated or "
                                         r"corrupt.*Download it again"):
        datasets.load_imdb("train", path=cut)


def test_imdb_not_an_archive(tmp_path, isolated):
    junk = tmp_path / "aclImdb_v1.tar.gz"
    junk.write_bytes(b"\x1f\x8b" + b"not really gzip" * 100)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        datasets.load_imdb(path=junk)
    empty_tar = tmp_path / "empty.tar"
    with tarfile.open(empty_tar, "w") as tar:
        info = tarfile.TarInfo("aclImdb/README")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ValueError, match="no reviews found"):
        datasets.load_imdb(path=empty_tar)


# ------------------------------------------------------ Tiny Shakespeare
def test_tiny_shakespeare_real_split():
    path = _need(SHAKESPEARE_TXT)
    train = datasets.load_tiny_shakespeare("train", path=path)
    val = datasets.load_tiny_shakespeare("validation", path=path)
    text = datasets.load_tiny_shakespeare("all", path=path)
    assert (len(train), len(val), len(text)) == (1003854, 111540, 1115394)
    assert len(train) == int(0.9 * len(text)) and train + val == text
    assert train.startswith("First Citizen:") and len(set(text)) == 65
    with pytest.raises(ValueError, match="unknown split"):
        datasets.load_tiny_shakespeare("test", path=path)


# ---------------------------------------------------------- resolution
def _shakespeare_dirs(tmp_path):
    for which in ("arg", "env"):
        d = tmp_path / which / "tinyshakespeare"
        d.mkdir(parents=True)
        (d / "input.txt").write_text(f"from {which}\n" * 10)
    return tmp_path / "arg", tmp_path / "env"


def test_resolution_order_shakespeare(tmp_path, isolated, monkeypatch):
    arg, env = _shakespeare_dirs(tmp_path)
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(env))
    load = datasets.load_tiny_shakespeare
    assert load("all", download=False).startswith("from env")
    assert load("all", data_dir=arg, download=False).startswith("from arg")
    assert load("all", path=env / "tinyshakespeare" / "input.txt", data_dir=arg).startswith("from env")
    # a data_dir holding the file directly works too
    assert load("all", data_dir=arg / "tinyshakespeare").startswith("from arg")
    # an explicit data_dir is the only folder searched: a missing (mistyped) one is an error
    # naming it, and one without the file does not fall back to the env var
    with pytest.raises(FileNotFoundError, match=r"data folder .*nothing.* does not exist"):
        load("all", data_dir=tmp_path / "nothing", download=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as err:
        load("all", data_dir=tmp_path / "empty", download=False)
    assert str(tmp_path / "empty") in str(err.value) and str(env) not in str(err.value)


def test_resolution_order_imdb_and_ett(tmp_path, isolated, monkeypatch):
    for which in ("arg", "env"):
        _fake_imdb_tree(tmp_path / which / "imdb", n=3,
                        extra={"test/pos/0_9.txt": f"from {which}".encode()})
        os.makedirs(tmp_path / which / "ett")
        _ett_csv(tmp_path / which / "ett" / "ETTh1.csv", offset=1000.0 * (which == "env"))
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(tmp_path / "env"))
    assert "from env" in datasets.load_imdb("test", download=False)[0]
    assert "from arg" in datasets.load_imdb("test", data_dir=tmp_path / "arg", download=False)[0]
    assert datasets.load_ett(download=False).mean[0] > 500
    assert datasets.load_ett(data_dir=tmp_path / "arg", download=False).mean[0] < 500
    ett = datasets.load_ett(path=tmp_path / "env" / "ett" / "ETTh1.csv", data_dir=tmp_path / "arg")
    assert ett.mean[0] > 500 and ett.name == "ETTh1"


@pytest.mark.parametrize("loader", ["imdb", "tiny_shakespeare", "ett"])
def test_missing_data_lists_every_place(tmp_path, isolated, monkeypatch, loader):
    load = getattr(datasets, f"load_{loader}")
    (tmp_path / "arg_dir").mkdir()
    with pytest.raises(FileNotFoundError) as err:
        load(data_dir=tmp_path / "arg_dir", download=False)
    msg = str(err.value)
    assert str(tmp_path / "arg_dir") in msg and "data_dir argument / --data-dir" in msg
    assert "$GRUKIT_DATA_DIR: not set" in msg and "download=False" in msg
    # the hint speaks to both kinds of user: the command line and Python
    assert "set GRUKIT_DATA_DIR" in msg and "--data-dir DIR" in msg and "data_dir=DIR" in msg
    assert "download=True" in msg and "leave out --data-dir" in msg

    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(tmp_path / "env_dir"))
    with pytest.raises(FileNotFoundError) as err:
        load(download=False)
    msg = str(err.value)
    assert str(tmp_path / "env_dir") in msg and str(tmp_path / "arg_dir") not in msg
    if loader == "ett":
        assert "keras_home_empty" in msg  # the Keras download cache was looked at as well

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(path=tmp_path / "no_such_file")


@pytest.mark.parametrize("loader", ["imdb", "tiny_shakespeare"])
def test_failed_tfds_download_is_a_file_not_found_error(isolated, monkeypatch, loader):
    def offline(*args, **kwargs):
        raise ConnectionError("no internet here")

    monkeypatch.setattr(datasets, "_tfds_load", offline)
    with pytest.raises(FileNotFoundError, match=r"(?s)tensorflow-datasets.*failed: "
                                                r"ConnectionError: no internet here"):
        getattr(datasets, f"load_{loader}")(download=True)


def test_ett_download_path_uses_keras_get_file(tmp_path, isolated, monkeypatch):
    src, _ = _ett_csv(tmp_path / "served.csv")
    calls = []

    def fake_get_file(fname, origin, cache_subdir, **kwargs):
        calls.append((fname, origin, cache_subdir))
        return str(src)

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    ett = datasets.load_ett(name="ETTh2")
    assert calls == [("ETTh2.csv", "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/"
                                   "ETT-small/ETTh2.csv", os.path.join("datasets", "ETT"))]
    assert ett.name == "ETTh2" and ett.freq == "h"

    def failing(*args, **kwargs):
        raise Exception("URL fetch failure")

    monkeypatch.setattr(keras.utils, "get_file", failing)
    with pytest.raises(FileNotFoundError, match="failed: Exception: URL fetch failure"):
        datasets.load_ett(name="ETTm1")
    with pytest.raises(FileNotFoundError, match="only .* can be downloaded"):
        datasets.load_ett(name="MyData")


# ------------------------------------------------------ tfds (mocked)
@pytest.fixture
def tfds_mock(isolated, monkeypatch):
    _tf_pass_only()
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(isolated / "empty_data_dir"))  # nothing local
    return tfds


def test_tfds_imdb_reviews_mocked(tfds_mock, tmp_path):
    import tensorflow as tf

    # tfds's own random mock: bytes come back decoded, labels as ints
    with tfds_mock.testing.mock_data(num_examples=8):
        texts, labels = datasets.load_imdb("train_full")
    assert len(texts) == 8 and all(isinstance(t, str) and t for t in texts)
    assert labels.dtype == np.int64 and set(labels.tolist()) <= {0, 1}

    # controlled data: the fake tree's reviews, reordered and stripped as tfds does
    base = _fake_imdb_tree(tmp_path / "src", n=10)
    local = {s: datasets.load_imdb(s, path=base) for s in ("train_full", "test")}

    def as_dataset(self, split, **kwargs):
        texts, labels = local["test" if str(split) == "test" else "train_full"]
        order = np.arange(len(texts))[::-1]
        return tf.data.Dataset.from_tensor_slices(
            {"text": [texts[i].strip().encode() for i in order], "label": labels[order]})

    with tfds_mock.testing.mock_data(as_dataset_fn=as_dataset):
        online = {s: datasets.load_imdb(s) for s in ("train", "validation", "train_full", "test")}
    for split, (texts, labels) in online.items():
        want_t, want_y = datasets.load_imdb(split, path=base)
        assert sorted(zip(texts, labels.tolist())) == sorted(
            zip((t.strip() for t in want_t), want_y.tolist())), split
    assert len(online["test"][0]) == 20 and online["validation"][1].sum() == 2


def test_tfds_tiny_shakespeare_mocked(tfds_mock, tmp_path):
    import tensorflow as tf

    text = "".join(np.random.default_rng(0).choice(list("abc \nXYZ:"), 1003).tolist())
    i = int(len(text) * 0.9)  # tfds's own 90/5/5 split of input.txt
    j = i + int((len(text) - i) * 0.5)
    parts = {"train": text[:i], "validation": text[i:j], "test": text[j:]}
    seen = []

    def as_dataset(self, split, **kwargs):
        seen.append(str(split))
        return tf.data.Dataset.from_tensor_slices({"text": [parts[str(split)]]})

    with tfds_mock.testing.mock_data(as_dataset_fn=as_dataset):
        online = {s: datasets.load_tiny_shakespeare(s) for s in ("train", "validation", "all")}
    assert seen[:3] == ["train", "validation", "test"]
    assert online["all"] == text
    (tmp_path / "input.txt").write_text(text)
    for split, got in online.items():
        assert got == datasets.load_tiny_shakespeare(split, path=tmp_path / "input.txt"), split
    assert len(online["train"]) == 902 and len(online["validation"]) == 101

    with tfds_mock.testing.mock_data(num_examples=1):  # tfds's random mock
        assert isinstance(datasets.load_tiny_shakespeare("all"), str)


# ------------------------------------------------------------------- ETT
def test_ett_real_split_and_windows():
    ett = datasets.load_ett(path=_need(ETTH1_CSV))
    assert ett.name == "ETTh1" and ett.freq == "h" and ett.columns == tuple(COLS)
    assert ett.values.shape == (17420, 7) and ett.values.dtype == np.float32
    assert ett.dates[0] == "2016-07-01 00:00:00" and len(ett.dates) == 17420
    assert ett.borders == {"train": (0, 8640), "val": (8640, 11520), "test": (11520, 14400)}
    raw = np.loadtxt(ETTH1_CSV, delimiter=",", skiprows=1, usecols=range(1, 8))
    np.testing.assert_allclose(ett.values, raw, rtol=1e-6)
    np.testing.assert_allclose(ett.mean, raw[:8640].mean(0), rtol=1e-6)
    np.testing.assert_allclose(ett.std, raw[:8640].std(0), rtol=1e-6)  # train rows only, ddof 0
    assert not np.allclose(ett.mean, raw[:14400].mean(0), rtol=1e-3)

    for lookback in (96, 336, 720):
        for horizon in (96, 192, 336, 720):
            assert ett.num_windows("train", lookback, horizon) == 8640 - lookback - horizon + 1
            assert ett.num_windows("val", lookback, horizon) == 2880 - horizon + 1
            assert ett.num_windows("test", lookback, horizon) == 2880 - horizon + 1
    x, y = ett.windows("test", 336, 96)
    assert x.shape == (2785, 336, 7) and y.shape == (2785, 96, 7) and x.dtype == np.float32
    scaled = ett.scale(raw)
    np.testing.assert_allclose(x[0], scaled[11520 - 336:11520], atol=1e-5)  # reaches into val
    np.testing.assert_allclose(y[0], scaled[11520:11520 + 96], atol=1e-5)
    np.testing.assert_allclose(y[-1, -1], scaled[14399], atol=1e-5)
    x, y = ett.windows("train", 96, 24, scaled=False)
    np.testing.assert_allclose(x[0], raw[:96], rtol=1e-6)
    np.testing.assert_allclose(y[-1, -1], raw[8639], rtol=1e-6)


def test_ett_scale_inverse_and_split(ett_fake):
    ett, vals = ett_fake
    np.testing.assert_allclose(ett.mean, vals[:8640].mean(0), rtol=1e-5)
    np.testing.assert_allclose(ett.inverse(ett.scale(ett.values)), ett.values, rtol=1e-5, atol=1e-4)
    train = ett.split("train")
    np.testing.assert_allclose(train.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(train.std(0), 1, atol=1e-4)
    assert ett.split("val").shape == ett.split("validation").shape == (2880, 7)
    np.testing.assert_allclose(ett.split("test", scaled=False), ett.values[11520:14400])
    with pytest.raises(ValueError, match="unknown split"):
        ett.split("dev")
    with pytest.raises(ValueError, match="lookback"):
        ett.windows("val", 0, 4)
    with pytest.raises(ValueError, match="before row 0"):
        ett.windows("val", 9000, 4)
    with pytest.raises(ValueError, match="too short"):
        ett.windows("train", 8000, 700)


def test_window_dataset_keeps_last_partial_batch(ett_fake):
    ett, _ = ett_fake
    ds = datasets.WindowDataset(ett, "test", lookback=48, horizon=24, batch_size=100)
    n = 2880 - 24 + 1
    assert ds.num_windows == n and len(ds) == math.ceil(n / 100) == 29
    x_last, y_last = ds[len(ds) - 1]
    assert x_last.shape == (n % 100, 48, 7) and y_last.shape == (n % 100, 24, 7)
    x, y = ett.windows("test", 48, 24)
    np.testing.assert_array_equal(np.concatenate([ds[i][0] for i in range(len(ds))]), x)
    np.testing.assert_array_equal(np.concatenate([ds[i][1] for i in range(len(ds))]), y)
    with pytest.raises(IndexError):
        ds[len(ds)]

    sh = datasets.WindowDataset(ett, "test", 48, 24, batch_size=1000, shuffle=True, seed=3)
    first = np.concatenate([sh[i][1] for i in range(len(sh))])
    assert not np.array_equal(first, y)
    assert sorted(map(bytes, first)) == sorted(map(bytes, y))  # a permutation of all windows
    sh.on_epoch_end()
    assert not np.array_equal(np.concatenate([sh[i][1] for i in range(len(sh))]), first)
    again = datasets.WindowDataset(ett, "test", 48, 24, batch_size=1000, shuffle=True, seed=3)
    np.testing.assert_array_equal(np.concatenate([again[i][1] for i in range(len(again))]), first)


@every_pass
def test_window_dataset_fits_on_this_backend(ett_fake):
    ett, _ = ett_fake
    train = datasets.WindowDataset(ett, "train", 24, 8, batch_size=1024, shuffle=True)
    val = datasets.WindowDataset(ett, "val", 24, 8, batch_size=1000)
    model = keras.Sequential([keras.Input((24, 7)), keras.layers.Flatten(),
                              keras.layers.Dense(8 * 7), keras.layers.Reshape((8, 7))])
    model.compile("adam", "mse")
    hist = model.fit(train, validation_data=val, epochs=2, verbose=0)
    assert np.isfinite(hist.history["val_loss"]).all()
    assert model.predict(val, verbose=0).shape == (val.num_windows, 8, 7)


def test_ett_any_column_order_and_other_names(tmp_path, isolated):
    cols = ["OT", "date", "LULL", "HUFL", "HULL", "MUFL", "MULL", "LUFL"]
    path, vals = _ett_csv(tmp_path / "ETTh2.csv", columns=cols, seed=4)
    ett = datasets.load_ett(path=path)
    assert ett.name == "ETTh2" and ett.columns == tuple(COLS)
    np.testing.assert_allclose(ett.values, vals, rtol=1e-6)
    path, _ = _ett_csv(tmp_path / "ETTm1.csv", rows=57600, minutes=15)
    ett = datasets.load_ett(path=path)
    assert ett.freq == "15min"
    assert ett.borders == {"train": (0, 34560), "val": (34560, 46080), "test": (46080, 57600)}
    assert ett.num_windows("test", 96, 96) == 11520 - 96 + 1
    # a name that says nothing: the frequency comes from the dates
    path, _ = _ett_csv(tmp_path / "station.csv", rows=14400)
    assert datasets.load_ett(path=path).freq == "h"


def test_ett_bad_csvs_are_clear_errors(tmp_path, isolated):
    wrong = ["date", "HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "oil_temp"]
    path, _ = _ett_csv(tmp_path / "ETTh1.csv", rows=20, columns=wrong)
    with pytest.raises(ValueError, match=r"expected columns \['date', 'HUFL'.*'OT'\].*found "
                                         r"\['date'.*'oil_temp'\].*missing \['OT'\]"):
        datasets.load_ett(path=path)

    def put_nan(lines):
        lines[11] = lines[11].replace(lines[11].split(",")[3], "nan")
        lines[101] = lines[101].replace(lines[101].split(",")[7], "inf")

    path, _ = _ett_csv(tmp_path / "nan.csv", rows=200, edit=put_nan)
    with pytest.raises(ValueError, match=r"NaN or infinite values at CSV lines \[12, 102\]"):
        datasets.load_ett(path=path)

    def put_text(lines):
        lines[5] = lines[5].replace(lines[5].split(",")[2], "n/a")

    path, _ = _ett_csv(tmp_path / "text.csv", rows=200, edit=put_text)
    with pytest.raises(ValueError, match=r"non-numeric values at CSV lines \[6\]"):
        datasets.load_ett(path=path)

    path, _ = _ett_csv(tmp_path / "ETTh1_short.csv", rows=14399)
    with pytest.raises(ValueError, match=r"14399 data rows, too few.*at least 14400"):
        datasets.load_ett(path=path)

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty file"):
        datasets.load_ett(path=empty)


# ----------------------------------------------------- without TensorFlow
# The loaders reading the local files offline with TensorFlow and tensorflow-datasets not
# installed: tests/test_packaging.py (the installed wheel's process).


# ------------------------------------------------------------ batches
def test_batches_plans_are_reproducible_and_redrawn_per_epoch():
    x, y = np.arange(10)[:, None] * 1.0, np.arange(10)
    ds = datasets.Batches.of_arrays((x, y), batch_size=4, shuffle=True, seed=3)
    assert len(ds) == 3 and [len(ds[i][1]) for i in range(3)] == [4, 4, 2]
    first = np.concatenate([ds[i][1] for i in range(3)])
    assert sorted(first) == list(range(10))  # every example once an epoch
    np.testing.assert_array_equal(first, np.random.default_rng([3, 0]).permutation(10))
    ds.on_epoch_end()
    second = np.concatenate([ds[i][1] for i in range(3)])
    np.testing.assert_array_equal(second, np.random.default_rng([3, 1]).permutation(10))
    np.testing.assert_array_equal(ds[-1][1], ds[2][1])
    with pytest.raises(IndexError, match="out of range"):
        ds[3]
    ordered = datasets.Batches.of_arrays((x, y), batch_size=4)
    ordered.on_epoch_end()  # no shuffle: always in order
    np.testing.assert_array_equal(np.concatenate([ordered[i][1] for i in range(3)]), y)
    # data parallel over 3 devices: batches cut to multiples of 3, a batch of 2 left out
    split = ds.divisible(3)
    assert [len(split[i][1]) for i in range(len(split))] == [3, 3]
    assert len(ds) == 3  # the original is unchanged
    with pytest.raises(ValueError, match="same length"):
        datasets.Batches.of_arrays((x, y[:3]), batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        datasets.Batches.of_arrays((x, y), batch_size=0)


def test_batches_with_a_plan_sample_with_replacement():
    ids = np.arange(100)
    ds = datasets.Batches(lambda i: ids[i], size=100, batch_size=8, shuffle=True, seed=1,
                          plan=lambda rng: list(rng.integers(0, 100, (5, 8))))
    assert len(ds) == 5
    np.testing.assert_array_equal(ds[0], np.random.default_rng([1, 0]).integers(0, 100, (5, 8))[0])
