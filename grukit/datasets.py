"""The zoo's data sets: IMDB reviews, Tiny Shakespeare and ETT, offline first.

Every loader looks for its data in this order and uses the first hit:

1. an explicit argument: ``path=`` (a file, or for IMDB also an extracted
   ``aclImdb/`` folder; it must exist) or ``data_dir=`` (a folder laid out
   like the shared data folder, ``imdb/``, ``tinyshakespeare/``, ``ett/``,
   or one that holds the file directly);
2. the environment variable ``GRUKIT_DATA_DIR`` (same layout);
3. for ETT only, the Keras download cache (``~/.keras/datasets/ETT/`` or
   ``$KERAS_HOME/datasets/ETT/``), where an earlier download put it;
4. when ``download=True`` (the default), the normal online path:
   tensorflow-datasets ``imdb_reviews`` / ``tiny_shakespeare`` (these need
   TensorFlow and tensorflow-datasets, imported only then), or
   ``keras.utils.get_file`` for the ETT CSV from the ETDataset GitHub
   repository. With ``download=False``, data that tensorflow-datasets has
   already prepared (``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``) is still
   used.

When nothing is found a :class:`FileNotFoundError` lists every place that was
tried and what to do about it. TensorFlow is never imported by the offline
paths, so this module works on the JAX and PyTorch backends without it.

Example::

    $ export GRUKIT_DATA_DIR=~/grukit-data      # holds imdb/ tinyshakespeare/ ett/

    >>> from grukit import datasets
    >>> texts, labels = datasets.load_imdb("train")
    >>> len(texts), len(labels)
    (20000, 20000)
    >>> len(datasets.load_tiny_shakespeare("train"))
    1003854
    >>> ett = datasets.load_ett()                            # ETTh1
    >>> x, y = ett.windows("test", lookback=336, horizon=96)
    >>> x.shape, y.shape
    ((2785, 336, 7), (2785, 96, 7))
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import functools
import glob
import gzip
import hashlib
import os
import re
import tarfile
import zlib

import numpy as np

import keras

__all__ = [
    "DATA_DIR_ENV",
    "ETT_COLUMNS",
    "ETTData",
    "WindowDataset",
    "Batches",
    "clear_cache",
    "load_ett",
    "load_imdb",
    "load_tiny_shakespeare",
]

#: Environment variable naming the local data folder (``imdb/``, ``tinyshakespeare/``, ``ett/``).
DATA_DIR_ENV = "GRUKIT_DATA_DIR"

#: The seven ETT series, in the order of ``ETTData.values``' last axis (``OT`` is the target).
ETT_COLUMNS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")

_IMDB_ARCHIVE = "aclImdb_v1.tar.gz"
_IMDB_SPLITS = ("train", "validation", "train_full", "test")
_SHAKESPEARE_FILE = "input.txt"
_SHAKESPEARE_SPLITS = ("train", "validation", "all")
_ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/{name}.csv"
_ETT_NAMES = ("ETTh1", "ETTh2", "ETTm1", "ETTm2")
_ETT_SPLITS = {"train": "train", "val": "val", "validation": "val", "test": "test"}


# ------------------------------------------------------------------ location
def _roots(data_dir):
    """(label, folder) pairs to search: the data_dir argument, then $GRUKIT_DATA_DIR."""
    if data_dir is not None:
        # An explicit folder is the only one searched: a mistyped one must not silently
        # fall back to $GRUKIT_DATA_DIR (or to a download).
        folder = os.path.expanduser(os.fspath(data_dir))
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"data folder {folder!r} does not exist or is not a folder (given as "
                f"data_dir= / --data-dir). Expected a folder holding imdb/, tinyshakespeare/ "
                f"and/or ett/.")
        return [("data_dir argument / --data-dir", folder)]
    roots = []
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        roots.append((f"${DATA_DIR_ENV}", os.path.expanduser(env)))
    return roots


def _candidates(data_dir, subdir, names):
    """Every (label, path) to try, in order: <root>/<subdir>/<name>, then <root>/<name>."""
    out = []
    for label, root in _roots(data_dir):
        for name in names:
            out.append((label, os.path.join(root, subdir, name)))
        for name in names:
            out.append((label, os.path.join(root, name)))
    return out


def _not_found(what, looked, download, online, layout, download_error=None):
    lines = [f"{what} not found. Looked in:"]
    for label, place in looked:
        lines.append(f"  - {place}  ({label})")
    if not os.environ.get(DATA_DIR_ENV):
        lines.append(f"  - ${DATA_DIR_ENV}: not set")
    if download_error is not None:
        lines.append(f"  - {online}: failed: {type(download_error).__name__}: {download_error}")
    elif not download:
        lines.append(f"  - {online}: not tried (download=False)")
    needs = "internet" + ("" if "keras" in online else ", tensorflow and tensorflow-datasets")
    lines.append(
        f"To fix it: set {DATA_DIR_ENV} to a folder holding {layout}, or name that folder "
        f"(command line: --data-dir DIR; Python: data_dir=DIR), or download it (command "
        f"line: leave out --data-dir; Python: download=True; needs {needs}).")
    return FileNotFoundError("\n".join(lines))


def _explicit_path(path, what):
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what}: path={path!r} does not exist (explicit path= "
                                f"arguments are not searched further; pass data_dir= or set "
                                f"{DATA_DIR_ENV} to search)")
    return path


def _import_tfds():
    """tensorflow_datasets, imported only for the online path (it imports TensorFlow)."""
    import tensorflow_datasets as tfds  # noqa: WPS433 (lazy on purpose)

    return tfds


def _tfds_prepared(name, config=None):
    """Whether tensorflow-datasets already prepared `name` (checked without importing TF)."""
    root = os.path.expanduser(os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")
    parts = [root, name] + ([config] if config else []) + ["*", "dataset_info.json"]
    return bool(glob.glob(os.path.join(*parts)))


def _tfds_load(name, split, download, **kwargs):
    """tfds.load(...) as NumPy: per split, a dict (or tuple) of whole-split arrays.

    Batches of 4096 concatenated, not ``batch_size=-1``: that relies on the split's
    recorded size (absent from mocked/partial metadata, where it crashes TensorFlow).
    """
    tfds = _import_tfds()
    single = isinstance(split, str)
    out = []
    for ds in ([tfds.load(name, split=split, download=download, **kwargs)] if single
               else tfds.load(name, split=list(split), download=download, **kwargs)):
        batches = list(tfds.as_numpy(ds.batch(4096)))
        if not batches:
            raise ValueError(f"tensorflow-datasets {name}: split {split!r} is empty")
        if isinstance(batches[0], dict):
            out.append({k: np.concatenate([b[k] for b in batches]) for k in batches[0]})
        else:
            out.append(tuple(np.concatenate(parts) for parts in zip(*batches)))
    return out[0] if single else out


# ---------------------------------------------------------------------- IMDB
_IMDB_MEMBER = re.compile(r"^(?:.*/)?(train|test)/(neg|pos)/(\d+)_(\d+)\.txt$")


class _ImdbParts:
    """Parsed reviews: per official split, texts sorted by (label, id) and int labels."""

    def __init__(self, records, source):
        self.source = source
        self.split = {}
        for split in ("train", "test"):
            rows = sorted(r for r in records if r[0] == split)
            if not rows:
                raise ValueError(f"{source}: no reviews found under aclImdb/{split}/{{neg,pos}}/ "
                                 f"(expected files named <id>_<rating>.txt); is this the IMDB "
                                 f"archive aclImdb_v1.tar.gz?")
            texts = tuple(r[4] for r in rows)
            labels = np.array([r[1] for r in rows], dtype=np.int64)
            self.split[split] = (texts, labels)


def _record(name, data):
    m = _IMDB_MEMBER.match(name)
    if not m:
        return None
    split, label, rid, rating = m.groups()
    text = data.decode("utf-8", errors="replace")
    return (split, int(label == "pos"), int(rid), int(rating), text)


def _open_gz_or_tar(path):
    """A file object of the uncompressed tar stream (gzip when it starts with the gzip magic)."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb")


@functools.lru_cache(maxsize=2)
def _read_imdb_archive(path, mtime_ns, size):  # mtime/size: cache key only
    records = []
    raw = _open_gz_or_tar(path)
    try:
        with raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            for member in tar:
                if not member.isfile() or not _IMDB_MEMBER.match(member.name):
                    continue
                records.append(_record(member.name, tar.extractfile(member).read()))
            # tarfile stops at the end-of-archive marker, and it also stops silently at a
            # header cut short; reading the gzip stream to its end checks its length and CRC.
            while raw.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise ValueError(
            f"{path}: the IMDB archive is truncated or corrupt ({type(e).__name__}: {e}); "
            f"{len(records)} reviews were readable. Download it again (e.g. delete it and call "
            f"load_imdb(download=True), or fetch aclImdb_v1.tar.gz from "
            f"https://ai.stanford.edu/~amaas/data/sentiment/) or restore it from the shared "
            f"data folder.") from None
    return _ImdbParts(records, path)


def _imdb_dir_root(path):
    """The folder holding train/ and test/ for an extracted aclImdb/ folder or its parent."""
    for root in (path, os.path.join(path, "aclImdb")):
        if os.path.isdir(os.path.join(root, "train")) and os.path.isdir(os.path.join(root, "test")):
            return root
    return None


@functools.lru_cache(maxsize=2)
def _read_imdb_dir(root, stamp):  # stamp: cache key only
    records = []
    for split in ("train", "test"):
        for label in ("neg", "pos"):
            folder = os.path.join(root, split, label)
            if not os.path.isdir(folder):
                continue
            for entry in os.scandir(folder):
                name = f"{split}/{label}/{entry.name}"
                if entry.is_file() and _IMDB_MEMBER.match(name):
                    with open(entry.path, "rb") as f:
                        records.append(_record(name, f.read()))
    return _ImdbParts(records, root)


def _read_imdb(path):
    if os.path.isdir(path):
        root = _imdb_dir_root(path)
        if root is None:
            raise ValueError(f"{path}: not an extracted IMDB folder (expected aclImdb/ with "
                             f"train/ and test/ inside, each with neg/ and pos/)")
        stamp = tuple(os.stat(os.path.join(root, s, l)).st_mtime_ns
                      if os.path.isdir(os.path.join(root, s, l)) else 0
                      for s in ("train", "test") for l in ("neg", "pos"))
        return _read_imdb_dir(os.path.realpath(root), stamp)
    st = os.stat(path)
    return _read_imdb_archive(os.path.realpath(path), st.st_mtime_ns, st.st_size)


def clear_cache():
    """Forget the in-process cache of parsed IMDB archives/folders (about 70 MB each).

    :func:`load_imdb` parses an archive once per process (keyed on its real path,
    modification time and size) so that loading ``"train"`` then ``"test"`` reads
    the 28 MB archive once. Call this to free that memory.

    Example::

        >>> from grukit.datasets import clear_cache, load_imdb
        >>> clear_cache()
        >>> texts, labels = load_imdb("test")      # parses the archive (seconds)
        >>> texts, labels = load_imdb("train")     # reuses it (milliseconds)
    """
    _read_imdb_archive.cache_clear()
    _read_imdb_dir.cache_clear()


def _rank_keys(texts, seed):
    """A seeded pseudo-random key per review computed from its (stripped) text.

    Membership of the validation part and of ``limit`` subsets depends only on
    the reviews, not on their order, so the archive, an extracted folder and
    tensorflow-datasets (which orders differently and strips whitespace) agree.
    """
    salt = str(int(seed)).encode() + b"\0"
    return np.array([int.from_bytes(hashlib.blake2b(salt + t.strip().encode("utf-8", "replace"),
                                                    digest_size=8).digest(), "little")
                     for t in texts], dtype=np.uint64)


def _lowest_per_label(keys, labels, candidates, counts):
    """Indices (ascending) of the `counts[c]` lowest-key reviews of each label c among `candidates`."""
    chosen = []
    for c, k in counts.items():
        idx = candidates[labels[candidates] == c]
        order = idx[np.lexsort((idx, keys[idx]))]
        chosen.append(order[:k])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def _select_imdb(texts, labels, split, limit, validation_fraction, seed):
    """Carve `split` out of an official split and apply `limit`; returns (list[str], labels)."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(texts)
    idx = np.arange(n)
    keys = None
    if split in ("train", "validation"):
        keys = _rank_keys(texts, seed)
        counts = {c: int(round(validation_fraction * int((labels == c).sum()))) for c in (0, 1)}
        val = _lowest_per_label(keys, labels, idx, counts)
        if split == "validation":
            idx = val
        else:
            mask = np.ones(n, bool)
            mask[val] = False
            idx = idx[mask]
    if limit is not None and limit < len(idx):
        if keys is None:
            keys = _rank_keys(texts, seed)
        idx = _lowest_per_label(keys, labels, idx, {1: limit // 2, 0: limit - limit // 2})
    return [texts[i] for i in idx], labels[idx].copy()


def load_imdb(split="train", data_dir=None, path=None, download=True, limit=None,
              validation_fraction=0.2, seed=0):
    """IMDB movie reviews (Maas et al., 2011): raw review texts and 0/1 sentiment labels.

    Returns ``(texts, labels)``: ``texts`` a ``list`` of ``str`` (the raw review,
    decoded as UTF-8 with ``errors="replace"``, HTML such as ``<br />`` kept:
    cleaning belongs to the model), ``labels`` a NumPy ``int64`` array, 0 = negative,
    1 = positive. Splits, with the official archive (25,000 + 25,000 reviews, half
    positive each):

    ======================  ========  ====================================================
    ``split``               reviews   what
    ======================  ========  ====================================================
    ``"train"``             20,000    official train minus ``"validation"``
    ``"validation"``        5,000     ``validation_fraction`` of each label of the
                                      official train set (2,500 neg + 2,500 pos)
    ``"train_full"``        25,000    the whole official train set (for a final refit)
    ``"test"``              25,000    the official test set (report only; never select on it)
    ======================  ========  ====================================================

    ``"validation"`` is chosen per label by a ``seed``-ed hash of each review's text,
    so it is deterministic, exactly balanced, disjoint from ``"train"``, and the same
    whichever source the reviews come from. Offline, reviews are ordered negatives
    first, then positives, each by the numeric id in the file name ``<id>_<rating>.txt``
    (shuffle before training; ``model.fit(validation_split=...)`` would take one class).
    ``limit=n`` returns a deterministic subset of ``n`` reviews, ``n - n//2`` negative
    and ``n//2`` positive (fewer if the split has fewer), in the same order.

    Where it looks (see the module docstring): ``path`` (``aclImdb_v1.tar.gz`` or an
    extracted ``aclImdb/`` folder), ``data_dir`` then ``$GRUKIT_DATA_DIR`` (each as
    ``imdb/aclImdb_v1.tar.gz``, ``imdb/aclImdb/``, ``aclImdb_v1.tar.gz`` or ``aclImdb/``),
    then tensorflow-datasets ``imdb_reviews/plain_text`` (downloads when
    ``download=True``; note that tfds strips leading/trailing whitespace from each
    review and orders reviews its own way). The archive is streamed with
    :mod:`tarfile` (never extracted) and parsed once per process (see
    :func:`clear_cache`): all 50,000 reviews take a few seconds, later calls
    milliseconds.

    Raises:
        FileNotFoundError: nothing found (lists the places tried).
        ValueError: an unknown split, a bad ``limit``/``validation_fraction``, or a
            truncated/corrupt archive (download it again).

    Example::

        >>> import os
        >>> from grukit.datasets import load_imdb
        >>> texts, labels = load_imdb("train", data_dir=os.environ["GRUKIT_DATA_DIR"])
        >>> len(texts), labels[:3], labels.dtype
        (20000, array([0, 0, 0]), dtype('int64'))
        >>> x_val, y_val = load_imdb("validation")      # data_dir: $GRUKIT_DATA_DIR
        >>> len(x_val), int(y_val.sum()), set(x_val) & set(texts)
        (5000, 2500, set())
        >>> few, y = load_imdb("test", limit=100)    # 50 neg + 50 pos, for quick runs
        >>> len(few), int(y.sum())
        (100, 50)
    """
    if split not in _IMDB_SPLITS:
        raise ValueError(f"load_imdb: unknown split {split!r}; expected one of {_IMDB_SPLITS}")
    if not 0.0 < float(validation_fraction) < 1.0:
        raise ValueError(f"load_imdb: validation_fraction must be in (0, 1), got "
                         f"{validation_fraction!r}")
    if limit is not None and (int(limit) != limit or limit < 1):
        raise ValueError(f"load_imdb: limit must be a positive int or None, got {limit!r}")
    official = "test" if split == "test" else "train"

    if path is not None:
        source = _read_imdb(_explicit_path(path, "load_imdb"))
    else:
        looked = _candidates(data_dir, "imdb", (_IMDB_ARCHIVE, "aclImdb"))
        found = next((p for _, p in looked if os.path.exists(p)), None)
        source = _read_imdb(found) if found is not None else None
        if source is None:
            online = "tensorflow-datasets imdb_reviews"
            if not download and not _tfds_prepared("imdb_reviews", "plain_text"):
                raise _not_found("IMDB reviews", looked, download, online,
                                 "imdb/aclImdb_v1.tar.gz (or an extracted imdb/aclImdb/)")
            try:
                texts, labels = _tfds_load("imdb_reviews/plain_text", official, download,
                                           as_supervised=True)
            except Exception as e:  # no tfds/TF, no network, ...
                raise _not_found("IMDB reviews", looked, download, online,
                                 "imdb/aclImdb_v1.tar.gz (or an extracted imdb/aclImdb/)",
                                 download_error=e) from e
            texts = [t.decode("utf-8", errors="replace") if isinstance(t, bytes) else str(t)
                     for t in texts]
            return _select_imdb(texts, labels, split, limit, validation_fraction, seed)
    texts, labels = source.split[official]
    return _select_imdb(texts, labels, split, limit, validation_fraction, seed)


# ---------------------------------------------------------- Tiny Shakespeare
def _split_shakespeare(text, split):
    i = int(0.9 * len(text))
    return {"train": text[:i], "validation": text[i:], "all": text}[split]


def load_tiny_shakespeare(split="train", data_dir=None, path=None, download=True):
    """Tiny Shakespeare (karpathy/char-rnn ``input.txt``) as one ``str``.

    The standard character-level split: ``"train"`` is the first
    ``int(0.9 * len(text))`` characters, ``"validation"`` the rest, ``"all"`` the
    whole text. For the usual 1,115,394-character file that is 1,003,854 / 111,540
    characters (65 distinct characters). Read as UTF-8 with newlines kept as in the
    file.

    Where it looks: ``path`` (the ``input.txt``), ``data_dir`` then
    ``$GRUKIT_DATA_DIR`` (as ``tinyshakespeare/input.txt`` or ``input.txt``), then
    tensorflow-datasets ``tiny_shakespeare`` (downloads when ``download=True``).
    tfds splits the text 90/5/5 into its own train/validation/test; this function
    concatenates tfds's train + validation + test, in that order, which gives back
    the whole file, and then applies the 90/10 split above, so both sources give
    identical strings.

    Raises:
        FileNotFoundError: nothing found (lists the places tried).
        ValueError: an unknown split or an empty file.

    Example::

        >>> import os
        >>> from grukit.datasets import load_tiny_shakespeare
        >>> text = load_tiny_shakespeare("train", data_dir=os.environ["GRUKIT_DATA_DIR"])
        >>> len(text), text[:14]
        (1003854, 'First Citizen:')
        >>> len(load_tiny_shakespeare("validation"))
        111540
    """
    if split not in _SHAKESPEARE_SPLITS:
        raise ValueError(f"load_tiny_shakespeare: unknown split {split!r}; expected one of "
                         f"{_SHAKESPEARE_SPLITS}")
    if path is not None:
        found = _explicit_path(path, "load_tiny_shakespeare")
    else:
        looked = _candidates(data_dir, "tinyshakespeare", (_SHAKESPEARE_FILE,))
        found = next((p for _, p in looked if os.path.isfile(p)), None)
    if found is not None:
        with open(found, encoding="utf-8", errors="replace", newline="") as f:
            text = f.read()
        if not text:
            raise ValueError(f"{found}: empty file; expected the Tiny Shakespeare text")
        return _split_shakespeare(text, split)

    online = "tensorflow-datasets tiny_shakespeare"
    layout = "tinyshakespeare/input.txt"
    if not download and not _tfds_prepared("tiny_shakespeare"):
        raise _not_found("Tiny Shakespeare", looked, download, online, layout)
    try:
        parts = _tfds_load("tiny_shakespeare", ["train", "validation", "test"], download)
    except Exception as e:
        raise _not_found("Tiny Shakespeare", looked, download, online, layout,
                         download_error=e) from e
    text = "".join(t.decode("utf-8", errors="replace") if isinstance(t, bytes) else str(t)
                   for part in parts for t in part["text"])
    return _split_shakespeare(text, split)


# ----------------------------------------------------------------------- ETT
@dataclasses.dataclass(eq=False)
class ETTData:
    """An ETT (Electricity Transformer Temperature) table with its standard split and scaler.

    Attributes:
        name: e.g. ``"ETTh1"``.
        values: ``float32 [rows, 7]``, raw (unscaled), columns in :data:`ETT_COLUMNS`
            order (``HUFL, HULL, MUFL, MULL, LUFL, LULL, OT``; ``OT``, the target, last).
        columns: ``ETT_COLUMNS``.
        dates: ``[rows]`` array of ``str`` (``"2016-07-01 00:00:00"``).
        freq: ``"h"`` (ETTh*) or ``"15min"`` (ETTm*).
        borders: ``{"train": (0, 8640), "val": (8640, 11520), "test": (11520, 14400)}``
            for hourly data (12/4/4 months of 30 days), times 4 for 15-minute data;
            half-open row ranges. Rows after the test border (ETTh1 has 17,420) are unused,
            as in the Informer/Autoformer/DLinear code.
        mean, std: ``float32 [7]``, fit on the training rows only (``std`` with ddof=0,
            like scikit-learn's ``StandardScaler``).
        source: where the CSV was read from.

    Example::

        >>> from grukit.datasets import load_ett
        >>> ett = load_ett()
        >>> ett.values.shape, ett.freq, ett.borders["test"]
        ((17420, 7), 'h', (11520, 14400))
        >>> x, y = ett.windows("test", lookback=336, horizon=96)
        >>> x.shape, y.shape
        ((2785, 336, 7), (2785, 96, 7))
        >>> naive = x[:, -1:]                    # a baseline: the last row, repeated
        >>> round(float(((naive - y) ** 2).mean()), 3)     # MSE on the scaled data, as papers
        1.294
    """

    name: str
    values: np.ndarray
    columns: tuple
    dates: np.ndarray
    freq: str
    borders: dict
    mean: np.ndarray
    std: np.ndarray
    source: str = ""

    def scale(self, x):
        """``(x - mean) / std`` (float32), for any array whose last axis is the 7 columns.

        Example:
            >>> from grukit.datasets import load_ett
            >>> ett = load_ett()
            >>> x = ett.scale(ett.values[:10])
            >>> x.shape, x.dtype
            ((10, 7), dtype('float32'))
        """
        return ((np.asarray(x, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def inverse(self, x):
        """``x * std + mean`` (float32): undoes :meth:`scale`; last axis = the 7 columns.

        ``ett.inverse(model.predict(x))`` gives forecasts in the CSV's units. For the target
        alone: ``y_ot * ett.std[-1] + ett.mean[-1]``.

        Example:
            >>> import numpy as np
            >>> from grukit.datasets import load_ett
            >>> ett = load_ett()
            >>> rows = ett.values[:10]
            >>> np.allclose(ett.inverse(ett.scale(rows)), rows, atol=1e-3)
            True
        """
        return (np.asarray(x, dtype=np.float32) * self.std + self.mean).astype(np.float32)

    def _split_name(self, split):
        if split not in _ETT_SPLITS:
            raise ValueError(f"ETTData: unknown split {split!r}; expected one of "
                             f"{tuple(_ETT_SPLITS)}")
        return _ETT_SPLITS[split]

    def split(self, name, scaled=True):
        """The rows of one split, ``float32 [b2 - b1, 7]`` (scaled by default).

        ``name`` is ``"train"``, ``"val"`` (or ``"validation"``) or ``"test"``; the rows
        are ``values[b1:b2]`` for ``(b1, b2) = borders[name]``: 8640 / 2880 / 2880 rows
        for hourly data.

        Example:
            >>> import numpy as np
            >>> from grukit.datasets import load_ett
            >>> ett = load_ett()
            >>> ett.split("train").shape, ett.split("test", scaled=False).shape
            ((8640, 7), (2880, 7))
            >>> np.allclose(ett.split("train").mean(axis=0), 0, atol=1e-4)  # ~0 per column
            True
        """
        b1, b2 = self.borders[self._split_name(name)]
        rows = self.values[b1:b2]
        return self.scale(rows) if scaled else rows.copy()

    def num_windows(self, split, lookback, horizon):
        """How many windows :meth:`windows` returns: ``(b2 - b1) - horizon + 1`` for
        ``"val"``/``"test"``, ``b2 - lookback - horizon + 1`` for ``"train"`` (b1 = 0).

        Example:
            >>> from grukit.datasets import load_ett
            >>> ett = load_ett()
            >>> ett.num_windows("test", 336, 96), ett.num_windows("train", 336, 96)
            (2785, 8209)
        """
        start, stop = self._segment_bounds(split, lookback, horizon)
        return stop - start - lookback - horizon + 1

    def _segment_bounds(self, split, lookback, horizon):
        for arg, value in (("lookback", lookback), ("horizon", horizon)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"ETTData.windows: {arg} must be a positive int, got {value!r}")
        b1, b2 = self.borders[self._split_name(split)]
        start = b1 - lookback if b1 > 0 else 0
        if start < 0:
            raise ValueError(f"ETTData.windows: lookback {lookback} reaches before row 0 for "
                             f"split {split!r} (starts at row {b1})")
        if b2 - start - lookback - horizon + 1 < 1:
            raise ValueError(f"ETTData.windows: split {split!r} (rows {b1}-{b2 - 1}) is too short "
                             f"for lookback {lookback} + horizon {horizon}")
        return start, b2

    def _segment(self, split, lookback, horizon, scaled):
        start, stop = self._segment_bounds(split, lookback, horizon)
        seg = self.values[start:stop]
        seg = self.scale(seg) if scaled else np.array(seg, dtype=np.float32)
        return seg, stop - start - lookback - horizon + 1

    def windows(self, split, lookback, horizon, scaled=True):
        """All forecasting windows of a split: ``(X [n, lookback, 7], Y [n, horizon, 7])``.

        The Informer/Autoformer/DLinear convention (``Dataset_ETT_hour``): for a split
        with borders ``[b1, b2)``, window ``i`` is ``X = rows[s + i : s + i + lookback]``,
        ``Y = rows[s + i + lookback : s + i + lookback + horizon]`` with
        ``s = b1 - lookback`` for val/test (the lookback reaches back into the previous
        split, so every row in ``[b1, b2)`` is forecast) and ``s = 0`` for train; so
        ``n = (b2 - b1) - horizon + 1`` for val/test (2785 for hourly test, horizon 96)
        and ``n = b2 - lookback - horizon + 1`` for train. ``Y`` holds all 7 columns
        (multivariate setting); ``Y[..., -1]`` is ``OT``. Scaled with the train-split
        mean/std unless ``scaled=False``. float32, contiguous. For large lookbacks
        prefer :class:`WindowDataset`, which builds batches on demand.

        Example::

            >>> from grukit.datasets import load_ett
            >>> x, y = load_ett().windows("val", lookback=96, horizon=24)
            >>> x.shape, y.shape
            ((2857, 96, 7), (2857, 24, 7))
        """
        seg, n = self._segment(split, lookback, horizon, scaled)
        w = np.lib.stride_tricks.sliding_window_view(seg, lookback + horizon, axis=0)[:n]
        w = np.moveaxis(w, -1, 1)  # [n, lookback + horizon, 7]
        return np.ascontiguousarray(w[:, :lookback]), np.ascontiguousarray(w[:, lookback:])


def _ett_freq(name, dates):
    if name.startswith("ETTh"):
        return "h"
    if name.startswith("ETTm"):
        return "15min"
    try:
        t0, t1 = (datetime.datetime.fromisoformat(d) for d in dates[:2])
    except (ValueError, TypeError):
        raise ValueError(f"{name}: cannot infer the frequency: the name is not ETTh*/ETTm* and the "
                         f"first dates {list(dates[:2])} are not ISO dates") from None
    minutes = (t1 - t0).total_seconds() / 60
    if minutes == 60:
        return "h"
    if minutes > 0 and minutes == int(minutes) and 60 % minutes == 0:
        return f"{int(minutes)}min"
    raise ValueError(f"{name}: unsupported sampling interval {t1 - t0} (first two dates); the "
                     f"standard ETT split needs hourly or sub-hourly data dividing an hour")


def _ett_borders(freq):
    per_hour = 1 if freq == "h" else 60 // int(freq[:-3])
    month = 30 * 24 * per_hour
    return {"train": (0, 12 * month), "val": (12 * month, 16 * month),
            "test": (16 * month, 20 * month)}


def _keras_home():
    """Where ``keras.utils.get_file`` caches downloads: ``$KERAS_HOME`` or ``~/.keras``."""
    try:
        from keras.src.backend.config import keras_home  # what get_file uses

        return keras_home()
    except Exception:  # private API moved: same rule, recomputed
        return os.environ.get("KERAS_HOME") or os.path.expanduser(os.path.join("~", ".keras"))


def _read_ett_csv(path, name):
    import csv

    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty file; expected an ETT CSV with columns date,"
                         f"{','.join(ETT_COLUMNS)}")
    header = [h.strip() for h in rows[0]]
    expected = ["date", *ETT_COLUMNS]
    if sorted(header) != sorted(expected) or len(set(header)) != len(header):
        missing = [c for c in expected if c not in header]
        extra = [c for c in header if c not in expected]
        raise ValueError(f"{path}: not an ETT CSV: expected columns {expected} (any order), found "
                         f"{header} (missing {missing}, unexpected {extra})")
    body = [r for r in rows[1:] if r]  # tolerate blank lines
    short = [i + 2 for i, r in enumerate(rows[1:]) if r and len(r) != len(header)]
    if short:
        raise ValueError(f"{path}: rows with {'/'.join(str(len(rows[i - 1])) for i in short[:3])} "
                         f"fields instead of {len(header)} at CSV lines {short[:10]}")
    order = [header.index(c) for c in ETT_COLUMNS]
    di = header.index("date")
    line_of = [i + 2 for i, r in enumerate(rows[1:]) if r]  # CSV line (header = line 1)
    cells = [[r[j] for j in order] for r in body]
    bad = []
    try:
        values = np.array(cells, dtype=np.float64).reshape(len(cells), len(order))
    except ValueError:  # slow path: Python's float(), and find the offending rows
        values = np.zeros((len(cells), len(order)))
        for i, row in enumerate(cells):
            try:
                values[i] = [float(c) for c in row]
            except ValueError:
                bad.append(line_of[i])
    if bad:
        raise ValueError(f"{path}: non-numeric values at CSV lines {bad[:10]}"
                         f"{' ...' if len(bad) > 10 else ''} ({len(bad)} rows)")
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        lines = [line_of[i] for i in np.flatnonzero(~finite)]
        raise ValueError(f"{path}: NaN or infinite values at CSV lines {lines[:10]}"
                         f"{' ...' if len(lines) > 10 else ''} ({len(lines)} rows); ETT files have "
                         f"none: fix or re-download the file")
    dates = np.array([r[di].strip() for r in body], dtype=str)
    return values, dates


def load_ett(path=None, name=None, data_dir=None, download=True):
    """An ETT table (ETTh1 by default) with its standard 12/4/4-month split: :class:`ETTData`.

    ``values`` is ``float32 [rows, 7]`` in the column order ``HUFL, HULL, MUFL, MULL,
    LUFL, LULL, OT`` (any column order in the CSV is accepted); ``borders`` are train
    rows 0-8639, val 8640-11519, test 11520-14399 for hourly sets (ETTh1/ETTh2),
    times 4 for 15-minute sets (ETTm1/ETTm2); ``mean``/``std`` are fit on the train rows
    only. ``freq`` comes from the name (``ETTh*`` -> ``"h"``, ``ETTm*`` -> ``"15min"``)
    or else from the first two dates. See :meth:`ETTData.windows` for the forecasting
    windows and :class:`WindowDataset` for a Keras ``PyDataset``.

    ``name`` (default ``"ETTh1"``; with ``path`` given, the file's stem) picks the file
    ``<name>.csv``. Where it looks: ``path``, then ``data_dir`` and
    ``$GRUKIT_DATA_DIR`` (as ``ett/<name>.csv`` or ``<name>.csv``), then the Keras cache
    (``~/.keras/datasets/ETT/<name>.csv``), then, with ``download=True``,
    ``keras.utils.get_file`` from
    ``https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/<name>.csv``
    (into that cache).

    Raises:
        FileNotFoundError: nothing found (lists the places tried).
        ValueError: wrong/missing columns (names the expected and found ones),
            non-numeric/NaN/inf values (with CSV line numbers), or fewer rows than the
            split needs (14,400 hourly / 57,600 15-minute).

    Example::

        >>> import os
        >>> import shutil
        >>> from grukit.datasets import load_ett
        >>> ett = load_ett(data_dir=os.environ["GRUKIT_DATA_DIR"])    # its ett/ETTh1.csv
        >>> ett.name, ett.values.shape, ett.split("train").shape
        ('ETTh1', (17420, 7), (8640, 7))
        >>> _ = shutil.copy(ett.source, "station.csv")
        >>> other = load_ett(path="station.csv")                    # any ETT-format CSV
        >>> other.name, other.freq
        ('station', 'h')
    """
    if path is not None:
        found = _explicit_path(path, "load_ett")
        if name is None:
            name = os.path.splitext(os.path.basename(found))[0]
    else:
        name = "ETTh1" if name is None else str(name)
        if not name or os.sep in name or "/" in name:
            raise ValueError(f"load_ett: name must be a data set name such as 'ETTh1', got "
                             f"{name!r}; pass a file as path=")
        fname = f"{name}.csv"
        looked = _candidates(data_dir, "ett", (fname,))
        cached = os.path.join(_keras_home(), "datasets", "ETT", fname)
        looked.append(("Keras download cache", cached))
        found = next((p for _, p in looked if os.path.isfile(p)), None)
        if found is None:
            online = f"keras.utils.get_file({_ETT_URL.format(name=name)})"
            if not download:
                raise _not_found(f"ETT data set {name}", looked, download, online, f"ett/{fname}")
            if name not in _ETT_NAMES:
                raise _not_found(f"ETT data set {name}", looked, download, online, f"ett/{fname}",
                                 download_error=ValueError(f"only {_ETT_NAMES} can be downloaded"))
            try:
                found = keras.utils.get_file(fname=fname, origin=_ETT_URL.format(name=name),
                                             cache_subdir=os.path.join("datasets", "ETT"))
            except Exception as e:
                raise _not_found(f"ETT data set {name}", looked, download, online,
                                 f"ett/{fname}", download_error=e) from e
    values, dates = _read_ett_csv(found, name)
    freq = _ett_freq(name, dates)
    borders = _ett_borders(freq)
    need = borders["test"][1]
    if len(values) < need:
        raise ValueError(f"{found}: {len(values)} data rows, too few for the standard ETT split "
                         f"(freq {freq!r}: train/val/test end at rows "
                         f"{[b[1] for b in borders.values()]}, so at least {need} rows are needed)")
    train = values[slice(*borders["train"])]
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    if not (std > 0).all():
        flat = [ETT_COLUMNS[i] for i in np.flatnonzero(~(std > 0))]
        raise ValueError(f"{found}: columns {flat} are constant over the training rows; cannot "
                         f"standardise them")
    return ETTData(name=name, values=values.astype(np.float32), columns=ETT_COLUMNS, dates=dates,
                   freq=freq, borders=borders, mean=mean.astype(np.float32),
                   std=std.astype(np.float32), source=found)


class Batches(keras.utils.PyDataset):
    """Batches of examples fetched by index, in a plan redrawn every epoch: the one batch
    loader behind :class:`WindowDataset` and the zoo's models.

    The plan (which examples form which batch) of epoch ``e`` is drawn from
    ``numpy.random.default_rng([seed, e])`` when ``shuffle``, so a run is reproducible and a
    resumed run sees the batches the uninterrupted one would have; without ``shuffle``
    the examples come in order. NumPy only: works on every Keras backend, without
    TensorFlow.

    Args:
        fetch: ``fetch(indices) -> batch`` (an array or a tuple of arrays) for the
            examples ``indices`` (an ``int`` array).
        size: the number of examples.
        batch_size: examples per batch (the last batch of the default plan may be smaller).
        shuffle: draw a random plan every epoch.
        seed: the plans' seed.
        plan: optional ``plan(rng) -> list of index arrays``, ``rng`` the epoch's
            ``numpy.random.Generator`` (``None`` without ``shuffle``). Default:
            consecutive ``batch_size`` slices of ``rng.permutation(size)`` (of
            ``arange(size)`` without ``shuffle``).
        multiple_of: cut every batch to a multiple of this many examples, leaving out
            batches smaller than it (data parallel over that many devices).
        **kwargs: ``PyDataset``'s (``workers``, ``use_multiprocessing``,
            ``max_queue_size``).

    Example::

        >>> import numpy as np
        >>> from grukit.datasets import Batches
        >>> x, y = np.arange(10.0)[:, None], np.arange(10.0)
        >>> ds = Batches(lambda i: (x[i], y[i]), size=10, batch_size=4, shuffle=True, seed=0)
        >>> len(ds), ds[2][0].shape              # 4 + 4 + 2 examples
        (3, (2, 1))
    """

    def __init__(self, fetch, size, batch_size, shuffle=False, seed=0, plan=None,
                 multiple_of=1, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("batch_size", batch_size), ("multiple_of", multiple_of)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, "
                                 f"got {value!r}")
        self.fetch, self.size, self.batch_size = fetch, int(size), int(batch_size)
        self.shuffle, self.seed, self.multiple_of = bool(shuffle), seed, int(multiple_of)
        self._plan_fn = plan
        self._epoch = 0
        self._batches = self._draw()

    def _draw(self):
        rng = np.random.default_rng([int(self.seed), self._epoch]) if self.shuffle else None
        if self._plan_fn is not None:
            batches = self._plan_fn(rng)
        else:
            order = np.arange(self.size) if rng is None else rng.permutation(self.size)
            batches = [order[i:i + self.batch_size] for i in range(0, self.size, self.batch_size)]
        m = self.multiple_of
        if m > 1:
            batches = [b[:len(b) // m * m] for b in batches if len(b) >= m]
        return batches

    @classmethod
    def of_arrays(cls, arrays, batch_size, shuffle=False, seed=0, **kwargs):
        """Batches of the rows of ``arrays`` (a tuple of arrays of equal length), each
        batch the tuple of their rows.

        Example::

            >>> import numpy as np
            >>> from grukit.datasets import Batches
            >>> x, y = np.zeros((100, 5)), np.arange(100)
            >>> ds = Batches.of_arrays((x, y), batch_size=32, shuffle=True)
            >>> [len(ds[i][1]) for i in range(len(ds))]
            [32, 32, 32, 4]
        """
        arrays = tuple(arrays)
        if len({len(a) for a in arrays}) != 1:
            raise ValueError(f"Batches.of_arrays: the arrays must have the same length; got "
                             f"{[len(a) for a in arrays]}")
        return cls(lambda i: tuple(a[i] for a in arrays), len(arrays[0]), batch_size,
                   shuffle=shuffle, seed=seed, **kwargs)

    def divisible(self, devices):
        """This loader with every batch cut to a multiple of ``devices`` (at most
        ``devices - 1`` examples of a batch are left out), as
        ``keras.distribution.DataParallel`` needs; the same plans otherwise."""
        other = copy.copy(self)
        other.multiple_of = int(devices)
        other._batches = other._draw()
        return other

    def __len__(self):
        return len(self._batches)

    def __getitem__(self, index):
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"{type(self).__name__}: batch {index} out of range ({n} batches)")
        return self.fetch(self._batches[index])

    def on_epoch_end(self):
        """Draws the next epoch's plan (``shuffle=True`` only)."""
        if self.shuffle:
            self._epoch += 1
            self._batches = self._draw()


class WindowDataset(Batches):
    """ETT forecasting windows as a ``keras.utils.PyDataset`` for ``fit``/``evaluate``/``predict``.

    Yields ``(X, Y)`` batches, ``X`` ``float32 [b, lookback, 7]`` and ``Y``
    ``float32 [b, horizon, 7]``, the same windows as :meth:`ETTData.windows` (see there
    for the convention), built on demand from the split's rows. ``len(ds)`` is
    ``ceil(num_windows / batch_size)``: the last, smaller batch is kept, so ``evaluate``
    sees every window. With ``shuffle=True`` the window order is a permutation drawn
    from ``seed`` and the epoch number, redrawn after every epoch (:class:`Batches`);
    otherwise windows come in time order. Extra keyword arguments (``workers``,
    ``use_multiprocessing``, ``max_queue_size``) go to ``PyDataset``. Train with
    ``model.fit(train, validation_data=val)``.

    Example::

        >>> from grukit.datasets import WindowDataset, load_ett
        >>> ett = load_ett()
        >>> train = WindowDataset(ett, "train", lookback=96, horizon=24, batch_size=64, shuffle=True)
        >>> val = WindowDataset(ett, "val", 96, 24, 64)
        >>> len(val), val.num_windows            # 2857 windows -> 44 full batches + 1 of 41
        (45, 2857)
        >>> x, y = train[0]
        >>> x.shape, y.shape
        ((64, 96, 7), (64, 24, 7))
    """

    def __init__(self, data, split, lookback, horizon, batch_size=32, shuffle=False, seed=0,
                 scaled=True, **kwargs):
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"WindowDataset: batch_size must be a positive int, got {batch_size!r}")
        self.data, self.split = data, split
        self.lookback, self.horizon = int(lookback), int(horizon)
        self._rows, self.num_windows = data._segment(split, self.lookback, self.horizon, scaled)
        self._offsets = np.arange(self.lookback + self.horizon)
        super().__init__(self._windows, self.num_windows, batch_size, shuffle=shuffle,
                         seed=seed, **kwargs)

    def _windows(self, starts):
        w = self._rows[starts[:, None] + self._offsets]  # [b, lookback + horizon, 7]
        return w[:, :self.lookback], w[:, self.lookback:]
