"""Files are the user's data: saves replace a file atomically, and loaders refuse damaged or
inconsistent files with a clear error before any array they read reaches a kernel.

* Every save (``KeyedVectors.save``, ``save_word2vec_format`` plain and compressed,
  ``Word2Vec.save``) writes a temporary file and renames it: a disk that fills up midway
  leaves the previous file byte for byte, and no temporary file behind.
* ``Word2Vec.load`` and ``KeyedVectors.load`` check the JSON header's fields and every array's
  shape, dtype, layout and values against the model before using it, and read an array's
  ``.npy`` header and declared size before decompressing it.
* ``load_word2vec_format`` checks the header's size against the file before allocating, and
  refuses keys the format cannot hold.
* The loader fuzz test feeds each loader truncated, corrupted, reshaped, re-typed and
  re-laid-out files: each one loads into a consistent model or raises ``ValueError`` /
  ``TypeError`` (``StoreError`` included), nothing else.
"""
import builtins
import bz2
import errno
import gzip
import io
import json
import os
import struct
import zipfile

import numpy as np
import pytest
from conftest import forbid_kernels

import fastsampled as fs
from fastsampled import _alias_kernels, _w2v_kernels
from fastsampled.cli import main
from fastsampled.keyedvectors import KeyedVectors
from fastsampled.sharding import StoreError
from fastsampled.word2vec import Word2Vec

COMPRESSIONS = ["", ".gz", ".bz2", ".xz"]


# ---------------------------------------------------------------------------- helpers

def _kv(n=20, dim=8, seed=0, counts=True):
    rng = np.random.default_rng(seed)
    return KeyedVectors(rng.standard_normal((n, dim)).astype(np.float32),
                        [f"w{i}" for i in range(n)],
                        counts=np.arange(n, 0, -1) * 3 if counts else None)


def _w2v(n=12, dim=6, seed=0):
    """A Word2Vec model in the state ``build_vocab`` and training leave (set by hand, so
    that making one runs no kernel)."""
    rng = np.random.default_rng(seed)
    model = Word2Vec(vector_size=dim, min_count=1, window=2, workers=1, progress=False,
                     seed=seed)
    model.index_to_key = [f"t{i}" for i in range(n)]
    model.key_to_index = {w: i for i, w in enumerate(model.index_to_key)}
    model.counts = np.arange(n, 0, -1, dtype=np.int64) * 5
    model.syn0 = rng.uniform(-0.1, 0.1, (n, dim)).astype(np.float32)
    model.syn1neg = rng.uniform(-0.1, 0.1, (n, dim)).astype(np.float32)
    model.corpus_total_words = int(model.counts.sum())
    model.running_training_loss = 12.5
    model.epoch_losses = [20.0, 12.5]
    return model


def _members(path):
    with np.load(path, allow_pickle=False) as z:
        return {name: z[name] for name in z.files}


def _json_member(arrays, name):
    return json.loads(arrays[name].tobytes().decode("utf-8"))


def _blob(obj):
    return np.frombuffer(json.dumps(obj).encode("utf-8"), np.uint8)


def _rewrite(path, arrays):
    """Write ``arrays`` (name -> array; None drops the member) as an .npz at ``path``."""
    with open(path, "wb") as f:
        np.savez(f, **{k: v for k, v in arrays.items() if v is not None})


@pytest.fixture
def no_kernels(monkeypatch):
    """Make the kernels a load or a training run would call fail the test."""
    forbid_kernels(monkeypatch, {_alias_kernels.__name__, _w2v_kernels.__name__},
                   "before the file was refused")


# ---------------------------------------------------------------------------- atomic saves

class _DiskFile:
    """A binary file on a disk with ``budget[0]`` bytes left: a write beyond that writes what
    fits and raises ``OSError(ENOSPC)``."""

    def __init__(self, f, budget):
        self._f = f
        self._budget = budget

    def write(self, data):
        view = memoryview(data).cast("B")
        if view.nbytes > self._budget[0]:
            self._f.write(view[:self._budget[0]])
            self._budget[0] = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self._budget[0] -= view.nbytes
        return self._f.write(view)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.fixture
def full_disk(monkeypatch):
    """``arm(directory, room)``: from then on, binary files opened for writing in
    ``directory`` (by ``open``, ``os.fdopen`` or the compression modules) hold at most
    ``room`` bytes altogether."""
    def arm(directory, room):
        directory = os.fspath(directory)
        budget = [room]
        real_open, real_fdopen = builtins.open, os.fdopen

        def fake_open(file, mode="r", *args, **kwargs):
            f = real_open(file, mode, *args, **kwargs)
            if isinstance(file, (str, os.PathLike)) and "w" in mode and "b" in mode \
                    and os.fspath(file).startswith(directory):
                return _DiskFile(f, budget)
            return f

        def fake_fdopen(fd, mode="r", *args, **kwargs):
            f = real_fdopen(fd, mode, *args, **kwargs)
            if "w" in mode and "b" in mode:
                return _DiskFile(f, budget)
            return f

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(bz2, "_builtin_open", fake_open)
        monkeypatch.setattr(os, "fdopen", fake_fdopen)
    return arm


def _w2v_format(binary):
    def write(obj, path):
        obj.save_word2vec_format(path, binary=binary)

    def read(path):
        return KeyedVectors.load_word2vec_format(path, binary=binary).vectors
    return write, read


def _kv_save(obj, path):
    obj.save(path)


def _w2v_save(obj, path):
    obj.save(path)


WRITERS = [pytest.param(_kv, "model.kv", _kv_save, lambda p: KeyedVectors.load(p).vectors,
                        id="KeyedVectors.save")]
WRITERS += [pytest.param(_kv, f"vectors{suffix}", *_w2v_format(binary),
                         id=f"save_word2vec_format-{'binary' if binary else 'text'}{suffix}")
            for binary in (False, True) for suffix in COMPRESSIONS]
WRITERS += [pytest.param(_w2v, "model", _w2v_save, lambda p: _members(p)["syn0"],
                         id="Word2Vec.save")]


@pytest.mark.parametrize("make, name, write, read", WRITERS)
def test_a_full_disk_leaves_the_previous_file_intact(tmp_path, full_disk, make, name, write,
                                                     read):
    path = tmp_path / name
    write(make(seed=0), path)
    before = path.read_bytes()
    full_disk(tmp_path, room=300)
    with pytest.raises(OSError) as info:
        write(make(seed=1), path)
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [name]


@pytest.mark.parametrize("make, name, write, read", WRITERS)
def test_a_save_replaces_the_file_and_leaves_nothing_else(tmp_path, make, name, write, read):
    path = tmp_path / name
    write(make(seed=0), path)
    write(make(seed=1), path)
    assert sorted(os.listdir(tmp_path)) == [name]   # no suffix added, no temporary file
    expected = make(seed=1)
    np.testing.assert_array_equal(read(path), expected.syn0 if make is _w2v
                                  else expected.vectors)


def test_gzip_output_names_the_file_as_gzip_open_does(tmp_path):
    path = tmp_path / "vectors.txt.gz"
    _kv().save_word2vec_format(path)
    raw = path.read_bytes()
    assert raw[3] & 0x08                                   # FNAME flag set
    name = raw[10:raw.index(b"\0", 10)]
    assert name == b"vectors.txt"                          # not the temporary file's name
    with gzip.open(path, "rb") as f:
        assert f.read().startswith(b"20 8\n")


# ---------------------------------------------------------------------------- Word2Vec.load

def _w2v_file(tmp_path):
    path = tmp_path / "model.w2v"
    _w2v().save(path)
    return path, _members(path)


def _set_meta(field, value, params=False):
    def change(arrays):
        meta = _json_member(arrays, "meta")
        fields = meta["params"] if params else meta
        if value is _DROP:
            del fields[field]
        else:
            fields[field] = value
        arrays["meta"] = _blob(meta)
    return change


def _set_array(name, fn):
    def change(arrays):
        arrays[name] = fn(arrays[name])
    return change


_DROP = object()


def _with_nan(a):
    a = a.copy()
    a[3, 2] = np.nan
    return a


def _with_inf(a):
    a = a.copy()
    a[1, 0] = -np.inf
    return a


def _with_value(index, value):
    def fn(a):
        a = a.copy()
        a[index] = value
        return a
    return fn


W2V_BAD = [
    ("syn0 shortened", _set_array("syn0", lambda a: a[:-1]), "syn0"),
    ("syn1neg shortened", _set_array("syn1neg", lambda a: a[:-1]), "syn1neg"),
    ("counts shortened", _set_array("counts", lambda a: a[:-1]), "counts"),
    ("syn0 narrower", _set_array("syn0", lambda a: a[:, :-1]), "syn0"),
    ("syn1neg wider", _set_array("syn1neg", lambda a: np.hstack([a, a[:, :1]])), "syn1neg"),
    ("syn0 float64", _set_array("syn0", lambda a: a.astype(np.float64)), "syn0"),
    ("syn0 int32", _set_array("syn0", lambda a: a.astype(np.int32)), "syn0"),
    ("syn1neg float16", _set_array("syn1neg", lambda a: a.astype(np.float16)), "syn1neg"),
    ("syn0 1-D", _set_array("syn0", np.ravel), "syn0"),
    ("syn0 3-D", _set_array("syn0", lambda a: a[None]), "syn0"),
    ("syn0 Fortran order", _set_array("syn0", np.asfortranarray), "syn0"),
    ("syn0 NaN", _set_array("syn0", _with_nan), "syn0"),
    ("syn1neg -inf", _set_array("syn1neg", _with_inf), "syn1neg"),
    ("counts negative", _set_array("counts", _with_value(4, -3)), "counts"),
    ("counts zero", _set_array("counts", _with_value(0, 0)), "counts"),
    ("counts float", _set_array("counts", lambda a: a.astype(np.float64)), "counts"),
    ("counts int32", _set_array("counts", lambda a: a.astype(np.int32)), "counts"),
    ("counts 2-D", _set_array("counts", lambda a: a[:, None]), "counts"),
    ("syn1neg missing", _set_array("syn1neg", lambda a: None), "syn1neg"),
    ("meta a list", lambda arrays: arrays.update(meta=_blob([1, 2])), "meta"),
    ("meta not JSON", lambda arrays: arrays.update(meta=np.frombuffer(b"{nope", np.uint8)),
     "meta"),
    ("meta not UTF-8", lambda arrays: arrays.update(meta=np.frombuffer(b"\xff\xfe", np.uint8)),
     "meta"),
    ("meta float", _set_array("meta", lambda a: a.astype(np.float32)), "meta"),
    ("format", _set_meta("format", "something else"), "format"),
    ("index_to_key missing", _set_meta("index_to_key", _DROP), "index_to_key"),
    ("index_to_key a string", _set_meta("index_to_key", "t0 t1"), "index_to_key"),
    ("index_to_key not str", _set_meta("index_to_key", list(range(12))), "index_to_key"),
    ("index_to_key repeated", _set_meta("index_to_key", ["t0"] * 12), "index_to_key"),
    ("index_to_key longer", _set_meta("index_to_key", [f"t{i}" for i in range(13)]), "syn0"),
    ("index_to_key empty", _set_meta("index_to_key", []), "index_to_key"),
    ("params missing", _set_meta("params", _DROP), "params"),
    ("params a list", _set_meta("params", [1]), "params"),
    ("params unknown", _set_meta("hs", 1, params=True), "hs"),
    ("vector_size mismatch", _set_meta("vector_size", 7, params=True), "syn0"),
    ("vector_size a string", _set_meta("vector_size", "6", params=True), "vector_size"),
    ("vector_size a float", _set_meta("vector_size", 6.0, params=True), "vector_size"),
    ("window zero", _set_meta("window", 0, params=True), "window"),
    ("negative huge", _set_meta("negative", 10**30, params=True), "negative"),
    ("sg a list", _set_meta("sg", [1], params=True), "sg"),
    ("loss unknown", _set_meta("loss", "hinge", params=True), "loss"),
    ("loss a list", _set_meta("loss", ["nce"], params=True), "loss"),
    ("alpha a string", _set_meta("alpha", "0.1", params=True), "alpha"),
    ("alpha NaN", _set_meta("alpha", float("nan"), params=True), "alpha"),
    ("sample negative", _set_meta("sample", -1.0, params=True), "sample"),
    ("progress a string", _set_meta("progress", "yes", params=True), "progress"),
    ("seed missing", _set_meta("seed", _DROP), "seed"),
    ("seed negative", _set_meta("seed", -1), "seed"),
    ("seed a float", _set_meta("seed", 1.5), "seed"),
    ("seed too big", _set_meta("seed", 2**64), "seed"),
    ("corpus_total_words negative", _set_meta("corpus_total_words", -5), "corpus_total_words"),
    ("running_training_loss a string", _set_meta("running_training_loss", "x"),
     "running_training_loss"),
    ("epoch_losses a string", _set_meta("epoch_losses", "abc"), "epoch_losses"),
    ("epoch_losses of strings", _set_meta("epoch_losses", ["a"]), "epoch_losses"),
]


@pytest.mark.parametrize("change, field", [pytest.param(c, f, id=i) for i, c, f in W2V_BAD])
def test_word2vec_load_refuses_inconsistent_files(tmp_path, no_kernels, change, field):
    path, arrays = _w2v_file(tmp_path)
    change(arrays)
    _rewrite(path, arrays)
    with pytest.raises(StoreError) as info:
        Word2Vec.load(path)
    message = str(info.value)
    assert str(path) in message and field in message


def test_word2vec_load_refuses_other_files(tmp_path):
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not an npz file at all")
    with pytest.raises(StoreError, match="bad.model"):
        Word2Vec.load(bad)
    npy = tmp_path / "plain.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(StoreError, match="plain.npy"):
        Word2Vec.load(npy)
    with pytest.raises(FileNotFoundError):
        Word2Vec.load(tmp_path / "missing")


@pytest.mark.kernel
def test_word2vec_load_accepts_what_save_wrote(tmp_path):
    model = _w2v()
    path = tmp_path / "model"
    model.save(path)
    back = Word2Vec.load(path)
    assert back.index_to_key == model.index_to_key
    np.testing.assert_array_equal(back.syn0, model.syn0)
    np.testing.assert_array_equal(back.counts, model.counts)
    assert back.epoch_losses == model.epoch_losses
    assert back._seed64 == model._seed64
    # byte-swapped arrays hold the same values
    arrays = _members(path)
    arrays["syn0"] = arrays["syn0"].astype(">f4")
    arrays["counts"] = arrays["counts"].astype(">i8")
    _rewrite(path, arrays)
    back = Word2Vec.load(path)
    np.testing.assert_array_equal(back.syn0, model.syn0)
    assert back.syn0.dtype == np.float32 and back.syn0.dtype.isnative
    back.train(sentences=[model.index_to_key * 3], epochs=1)


@pytest.mark.kernel
def test_word2vec_train_checks_the_arrays_it_hands_the_kernel():
    model = Word2Vec([["a", "b", "c", "a"]] * 20, min_count=1, vector_size=4, epochs=1,
                     workers=1, progress=False)
    good = model.syn0
    for name, value in [("syn0", good[:-1]), ("syn0", good[:, :-1]),
                        ("syn0", good.astype(np.float64)), ("syn0", np.asfortranarray(
                            np.vstack([good, good])[::2])), ("syn1neg", model.syn1neg[:-1]),
                        ("syn1neg", None), ("counts", model.counts[:-1])]:
        saved = getattr(model, name)
        setattr(model, name, value)
        try:
            with pytest.raises((ValueError, TypeError), match=name):
                model.train()
        finally:
            setattr(model, name, saved)
    model.index_to_key = model.index_to_key + ["extra"]
    with pytest.raises(ValueError, match="index_to_key"):
        model.train()


# ---------------------------------------------------------------------------- KeyedVectors.load

def _kv_file(tmp_path, counts=True):
    path = tmp_path / "model.kv"
    _kv(counts=counts).save(path)
    return path, _members(path)


def _set_kv_meta(field, value):
    def change(arrays):
        meta = _json_member(arrays, "meta_json")
        if value is _DROP:
            del meta[field]
        else:
            meta[field] = value
        arrays["meta_json"] = _blob(meta)
    return change


KV_BAD = [
    ("meta a list", lambda arrays: arrays.update(meta_json=_blob(["a"])), "meta_json"),
    ("meta a number", lambda arrays: arrays.update(meta_json=_blob(3)), "meta_json"),
    ("meta not JSON", lambda arrays: arrays.update(meta_json=np.frombuffer(b"[", np.uint8)),
     "meta_json"),
    ("meta 2-D", _set_array("meta_json", lambda a: a[None]), "meta_json"),
    ("meta int64", _set_array("meta_json", lambda a: a.astype(np.int64)), "meta_json"),
    ("meta missing", _set_array("meta_json", lambda a: None), "meta_json"),
    ("format", _set_kv_meta("format", "x"), "format"),
    ("format missing", _set_kv_meta("format", _DROP), "format"),
    ("version a string", _set_kv_meta("version", "1"), "version"),
    ("version newer", _set_kv_meta("version", 99), "version"),
    ("index_to_key missing", _set_kv_meta("index_to_key", _DROP), "index_to_key"),
    ("index_to_key a string", _set_kv_meta("index_to_key", "w0"), "index_to_key"),
    ("index_to_key a dict", _set_kv_meta("index_to_key", {"w0": 0}), "index_to_key"),
    ("index_to_key not str", _set_kv_meta("index_to_key", list(range(20))), "index_to_key"),
    ("index_to_key repeated", _set_kv_meta("index_to_key", ["w"] * 20), "index_to_key"),
    ("index_to_key shorter", _set_kv_meta("index_to_key", ["w"]), "vectors"),
    ("vector_size mismatch", _set_kv_meta("vector_size", 9), "vectors"),
    ("vector_size a string", _set_kv_meta("vector_size", "8"), "vector_size"),
    ("vectors shortened", _set_array("vectors", lambda a: a[:-1]), "vectors"),
    ("vectors missing", _set_array("vectors", lambda a: None), "vectors"),
    ("vectors float64", _set_array("vectors", lambda a: a.astype(np.float64)), "vectors"),
    ("vectors int8", _set_array("vectors", lambda a: a.astype(np.int8)), "vectors"),
    ("vectors 1-D", _set_array("vectors", np.ravel), "vectors"),
    ("vectors Fortran order", _set_array("vectors", np.asfortranarray), "vectors"),
    ("counts shortened", _set_array("counts", lambda a: a[:-1]), "counts"),
    ("counts negative", _set_array("counts", _with_value(2, -1)), "counts"),
    ("counts float", _set_array("counts", lambda a: a.astype(np.float32)), "counts"),
    ("counts 2-D", _set_array("counts", lambda a: a[:, None]), "counts"),
]


@pytest.mark.parametrize("change, field", [pytest.param(c, f, id=i) for i, c, f in KV_BAD])
def test_keyedvectors_load_refuses_inconsistent_files(tmp_path, change, field):
    path, arrays = _kv_file(tmp_path)
    change(arrays)
    _rewrite(path, arrays)
    with pytest.raises(StoreError) as info:
        KeyedVectors.load(path)
    message = str(info.value)
    assert str(path) in message and field in message


def test_keyedvectors_load_reads_files_without_vector_size(tmp_path):
    path, arrays = _kv_file(tmp_path)
    meta = _json_member(arrays, "meta_json")
    assert meta["vector_size"] == 8
    del meta["vector_size"]                     # as written before the field existed
    arrays["meta_json"] = _blob(meta)
    _rewrite(path, arrays)
    np.testing.assert_array_equal(KeyedVectors.load(path).vectors, _kv().vectors)


def _zip_bomb(path, keys, shape, declared_bytes):
    """An .npz whose ``vectors`` member inflates a few MB into ``declared_bytes`` of zeros."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": shape})
    meta = {"format": "fastsampled.KeyedVectors", "version": 1, "index_to_key": keys}
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("meta_json.npy", _npy_bytes(_blob(meta)))
        with zf.open("vectors.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            for _ in range(declared_bytes // len(chunk)):
                f.write(chunk)


def _npy_bytes(arr):
    out = io.BytesIO()
    np.save(out, arr)
    return out.getvalue()


def test_keyedvectors_load_refuses_an_npz_that_expands_hugely(tmp_path, monkeypatch):
    path = tmp_path / "bomb.kv"
    _zip_bomb(path, ["a", "b"], (2, 1 << 25), 1 << 28)    # 256 MiB of zeros
    assert path.stat().st_size < (1 << 24)
    inflated = [0]
    real_read = zipfile.ZipExtFile.read

    def counting_read(self, n=-1):
        data = real_read(self, n)
        inflated[0] += len(data)
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting_read)
    with pytest.raises(StoreError) as info:
        KeyedVectors.load(path)
    assert str(path) in str(info.value) and "vectors" in str(info.value)
    assert inflated[0] < (1 << 20)                      # refused before decompressing


def test_keyedvectors_load_checks_the_declared_size_of_a_member(tmp_path):
    # a stored member whose .npy header announces more data than the member holds
    path = tmp_path / "short.kv"
    meta = {"format": "fastsampled.KeyedVectors", "version": 1, "index_to_key": ["a", "b"]}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (2, 1000)})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("meta_json.npy", _npy_bytes(_blob(meta)))
        zf.writestr("vectors.npy", header.getvalue() + bytes(16))
    with pytest.raises(StoreError, match=r"short\.kv.*vectors"):
        KeyedVectors.load(path)


# ---------------------------------------------------------------------------- word2vec format

@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("suffix", COMPRESSIONS)
def test_word2vec_format_header_larger_than_the_file(tmp_path, binary, suffix):
    path = tmp_path / f"huge{suffix}"
    body = b"a " + (struct.pack("<3f", 1, 2, 3) if binary else b"1 2 3\n")
    with _write_compressed(path) as f:
        f.write(b"999999999999 3\n" + body)
    with pytest.raises(ValueError) as info:
        KeyedVectors.load_word2vec_format(path, binary=binary)
    message = str(info.value)
    assert str(path) in message
    if not suffix:
        assert "the header declares 999999999999 x 3 but the file has only" in message
    with _write_compressed(path) as f:
        f.write(b"1 999999999999\n" + body)
    with pytest.raises(ValueError, match="999999999999"):
        KeyedVectors.load_word2vec_format(path, binary=binary)


def _write_compressed(path):
    """A binary file object writing ``path``, compressed by its suffix as the loaders expect."""
    from fastsampled._kvformats import open_compressed
    return open_compressed(path, "wb")


def test_word2vec_format_header_of_300_columns(tmp_path):
    path = tmp_path / "v.bin"
    path.write_bytes(b"999999999999 300\n" + b"a " + bytes(1200))
    with pytest.raises(ValueError, match=r"the header declares 999999999999 x 300 but the file "
                                         r"has only 1219 bytes"):
        KeyedVectors.load_word2vec_format(path, binary=True)


def test_word2vec_format_headerless_file_too_small_for_its_first_line(tmp_path):
    # the first line has 10^6 values; the 500 000 short lines after it cannot hold as many
    path = tmp_path / "glove.txt"
    path.write_bytes(b"a" + b" 0" * 10**6 + b"\n" + b"b\n" * 500_000)
    with pytest.raises(ValueError, match=r"glove\.txt.*bytes"):
        KeyedVectors.load_word2vec_format(path, no_header=True)


def test_word2vec_format_compressed_file_grows_its_arrays(tmp_path):
    # 1 MiB holds 256 rows of 1024 float32: 700 rows make the array grow twice
    kv = _kv(700, 1024, counts=False)
    path = tmp_path / "v.gz"
    kv.save_word2vec_format(path, binary=True)
    back = KeyedVectors.load_word2vec_format(path, binary=True)
    np.testing.assert_array_equal(back.vectors, kv.vectors)
    assert back.vectors.flags.c_contiguous and back.index_to_key == kv.index_to_key
    # a repeated key (kept once): one row fewer than the header announces
    plain = tmp_path / "v.bin"
    kv.save_word2vec_format(plain, binary=True)
    with _write_compressed(path) as f:
        f.write(plain.read_bytes().replace(b"w699 ", b"w0 ", 1))
    back = KeyedVectors.load_word2vec_format(path, binary=True)
    assert back.vectors.shape == (699, 1024) and back.vectors.flags.c_contiguous
    np.testing.assert_array_equal(back.vectors, kv.vectors[:699])


@pytest.mark.parametrize("content, binary, match", [
    (b"2 2\na " + struct.pack("<2f", 1, 2) + b"\n " + struct.pack("<2f", 3, 4), True,
     r"record 2 .*empty key"),
    (b"1 2\n " + struct.pack("<2f", 1, 2), True, r"record 1 .*empty key"),
    (b"2 2\na " + struct.pack("<2f", 1, 2) + b"\nb\nc " + struct.pack("<2f", 3, 4), True,
     r"record 2 .*newline"),
    (b"2 2\na 1 2\n 3 4\n", False, r"line 3: .*empty key"),
])
def test_word2vec_format_refuses_keys_it_cannot_store(tmp_path, content, binary, match):
    path = tmp_path / "bad.vec"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        KeyedVectors.load_word2vec_format(path, binary=binary)
    assert str(path) in str(info.value)


def test_word2vec_format_empty_key_after_decoding(tmp_path):
    path = tmp_path / "bad.vec"
    path.write_bytes(b"1 1\n\xff " + struct.pack("<f", 1))
    with pytest.raises(ValueError, match="record 1 .*empty key"):
        KeyedVectors.load_word2vec_format(path, binary=True, unicode_errors="ignore")


# ---------------------------------------------------------------------------- command line

def test_word2vec_train_checks_its_outputs_before_training(tmp_path, capsys, monkeypatch):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a b c\n")

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the output paths")

    monkeypatch.setattr(fs, "Word2Vec", no_training)
    missing = tmp_path / "nonexistent" / "dir"
    for extra in (["-o", str(missing / "x.bin")],
                  ["-o", str(tmp_path / "v.bin"), "--save-model", str(missing / "m")],
                  ["-o", str(tmp_path)]):
        with pytest.raises(SystemExit) as info:
            main(["word2vec", "train", str(corpus)] + extra)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert (str(missing) in err) or (str(tmp_path) in err and "directory" in err)


# ---------------------------------------------------------------------------- loader fuzz test

def _variants(arr):
    """Reshaped, shortened, re-typed, re-laid-out and re-valued versions of an array."""
    out = {"shortened": arr[:-1], "empty": arr[:0], "extended": np.concatenate([arr, arr[:1]]),
           "flat": arr.ravel(), "3-D": arr[None], "scalar": np.array(arr.ravel()[0])}
    if arr.ndim == 2:
        out["transposed"] = np.ascontiguousarray(arr.T)
        out["Fortran"] = np.asfortranarray(arr)
        out["column"] = arr[:, :1].copy()
    for dtype in (np.float64, np.float32, np.float16, np.int64, np.int32, np.uint8, np.bool_,
                  np.complex64, ">f4", ">i8"):
        out[f"as {np.dtype(dtype).str}"] = arr.astype(dtype)
    if arr.dtype.kind == "f":
        for value in (np.nan, np.inf):
            changed = arr.copy()
            changed.flat[arr.size // 2] = value
            out[f"with {value}"] = changed
    elif arr.dtype.kind in "iu" and arr.dtype != np.uint8:
        for value in (-1, 0, np.iinfo(np.int64).max):
            changed = arr.copy()
            changed.flat[arr.size // 2] = value
            out[f"with {value}"] = changed
    return out


def _damaged(raw):
    """Truncated copies and copies with one byte changed, over the whole file."""
    n = len(raw)
    cuts = sorted({0, 1, 4, 10, 30, 64, 100, n // 4, n // 3, n // 2, n - 100, n - 22, n - 1})
    for cut in cuts:
        if 0 <= cut < n:
            yield f"cut at {cut}", raw[:cut]
    for pos in range(0, n, max(1, n // 40)):
        for xor in (0x01, 0x80):
            yield f"byte {pos} ^ {xor:#x}", raw[:pos] + bytes([raw[pos] ^ xor]) + raw[pos + 1:]


def _check_kv(kv):
    n = len(kv.index_to_key)
    assert isinstance(kv.vectors, np.ndarray) and kv.vectors.dtype == np.float32
    assert kv.vectors.flags.c_contiguous and kv.vectors.ndim == 2
    assert kv.vectors.shape[0] == n and kv.vectors.shape[1] >= 1
    assert all(type(k) is str and k for k in kv.index_to_key)
    assert len(set(kv.index_to_key)) == n == len(kv.key_to_index)
    if kv.counts is not None:
        assert kv.counts.dtype == np.int64 and kv.counts.shape == (n,)
        assert (kv.counts >= 0).all()
    KeyedVectors(kv.vectors, kv.index_to_key, kv.counts)
    if n:
        with np.errstate(invalid="ignore"):   # a loaded vector may hold inf or NaN
            kv.most_similar(kv.index_to_key[0], topn=2)


def _check_w2v(model):
    model._check_state()
    n = len(model.index_to_key)
    for arr in (model.syn0, model.syn1neg):
        assert arr.dtype == np.float32 and arr.flags.c_contiguous
        assert arr.shape == (n, model.vector_size)
        assert np.isfinite(arr).all()
    assert model.counts.dtype == np.int64 and model.counts.shape == (n,)
    assert (model.counts >= 1).all()
    assert model._alias.table.size == n == model._keep_thr.size == model._logq.size
    model.train(sentences=[model.index_to_key[:4] * 2], epochs=1)
    _check_kv(model.wv)


def _expect_clean(load, path, check, what):
    try:
        result = load(path)
    except (ValueError, TypeError):
        return 0
    except Exception as exc:  # noqa: BLE001 -- the point of the test
        raise AssertionError(f"{what}: {type(exc).__name__}: {exc}") from exc
    check(result)
    return 1


def _fuzz_npz(tmp_path, original, load, check):
    raw = original.read_bytes()
    path = tmp_path / "case"
    loaded = 0
    for what, data in _damaged(raw):
        path.write_bytes(data)
        loaded += _expect_clean(load, path, check, what)
    arrays = _members(original)
    for name, arr in arrays.items():
        for what, variant in list(_variants(arr).items()) + [("missing", None)]:
            _rewrite(path, dict(arrays, **{name: variant}))
            loaded += _expect_clean(load, path, check, f"{name} {what}")
    _rewrite(path, dict(arrays, extra=np.zeros(3)))
    assert _expect_clean(load, path, check, "extra member") == 1
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:   # the same, compressed
        for name, arr in arrays.items():
            zf.writestr(f"{name}.npy", _npy_bytes(arr))
    assert _expect_clean(load, path, check, "deflated members") == 1
    return loaded


def test_fuzz_keyedvectors_load(tmp_path):
    original = tmp_path / "model.kv"
    _kv(12, 5).save(original)
    _fuzz_npz(tmp_path, original, KeyedVectors.load, _check_kv)


@pytest.mark.kernel
def test_fuzz_word2vec_load(tmp_path):
    original = tmp_path / "model"
    _w2v(n=9, dim=5).save(original)
    _fuzz_npz(tmp_path, original, Word2Vec.load, _check_w2v)


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_fuzz_load_word2vec_format(tmp_path, binary, suffix):
    kv = _kv(10, 4, counts=False)
    original = tmp_path / f"vectors{suffix}"
    kv.save_word2vec_format(original, binary=binary)
    path = tmp_path / f"case{suffix}"
    plain = tmp_path / "plain"
    kv.save_word2vec_format(plain, binary=binary)
    raw = plain.read_bytes()

    def load(p):
        return KeyedVectors.load_word2vec_format(p, binary=binary)

    def load_limited(p):
        return KeyedVectors.load_word2vec_format(p, binary=binary, limit=3)

    cases = list(_damaged(raw))
    cases += [(f"header {h!r}", h + raw[raw.index(b"\n") + 1:]) for h in (
        b"10 5\n", b"10 3\n", b"11 4\n", b"9 4\n", b"0 4\n", b"10 0\n", b"-1 4\n", b"10 -4\n",
        b"99999999999 4\n", b"10 99999999999\n", b"10\n", b"10 4 4\n", b"a b\n", b"\n",
        b"10 4" + b" " * 5000 + b"\n")]
    for what, data in cases:
        with _write_compressed(path) as f:
            f.write(data)
        _expect_clean(load, path, _check_kv, what)
        _expect_clean(load_limited, path, _check_kv, what + " (limit 3)")
    if not binary:
        for what, data in cases[:20]:
            with _write_compressed(path) as f:
                f.write(data[data.index(b"\n") + 1:] if b"\n" in data else data)
            _expect_clean(lambda p: KeyedVectors.load_word2vec_format(p, no_header=True),
                          path, _check_kv, what + " (no header)")


# ------------------------------------------------------------------ text or binary

@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2"])
def test_word2vec_files_are_read_in_their_own_format(tmp_path, suffix):
    """The format is read from the file: either file loads without ``binary``, and a flag
    that names the other format is refused instead of misreading the file."""
    rng = np.random.default_rng(0)
    kv = KeyedVectors(rng.normal(size=(30, 8)).astype(np.float32),
                      [f"w{i}" for i in range(30)])
    for binary in (True, False):
        path = tmp_path / f"v{int(binary)}{suffix}"
        kv.save_word2vec_format(path, binary=binary)
        back = KeyedVectors.load_word2vec_format(path)
        assert back.index_to_key == kv.index_to_key
        np.testing.assert_allclose(back.vectors, kv.vectors, rtol=1e-6)
        np.testing.assert_allclose(KeyedVectors.load_word2vec_format(path, binary=binary)
                                   .vectors, back.vectors)
        other = "text" if binary else "binary"
        with pytest.raises(ValueError, match=f"a word2vec {'binary' if binary else 'text'} "
                                             f"file, but it was read as {other}"):
            KeyedVectors.load_word2vec_format(path, binary=not binary)


def test_format_detection_on_many_small_files():
    """Realistic vectors of every small dimension are told apart in both formats."""
    import io as _io
    from fastsampled._kvformats import detect_binary
    rng = np.random.default_rng(1)
    for dim in range(1, 17):
        for _ in range(20):
            v = (rng.normal(size=(3, dim)) * rng.choice([1e-3, 0.1, 1, 10])).astype(np.float32)
            key = "".join(rng.choice(list("abcxyz\u00e9"), size=rng.integers(1, 8)))
            binary = b"".join(f"{key}{i} ".encode() + v[i].tobytes() for i in range(3))
            text = "".join(f"{key}{i} " + " ".join(f"{x:.6f}" for x in v[i]) + "\n"
                           for i in range(3)).encode()
            assert detect_binary(_io.BytesIO(binary), dim) is True, (dim, v[0])
            assert detect_binary(_io.BytesIO(text), dim) is False, (dim, v[0])
