"""fs.ShardedMatrix: a matrix / vector kept as memory-mapped .npy shards on disk.

Round trips for every init, strategy and row shape (uneven shards, empty shards), values that
depend only on (seed, id, column), gather / locate / assign against a dense copy and
``sharding.shard_ids``, read-only mode, every ``StoreError`` of ``open`` on hand-corrupted
stores, the writer lock (same process and another process), atomic checkpoints, stores as
loss weights / biases, and a writer killed with SIGKILL that leaves a store which reopens and
verifies.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastsampled as fs
from fastsampled import _storecreate, _storefile, sharding
from fastsampled.sharding import ShardedMatrix, StoreError, StoreLockedError, shard_ids

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.kernel  # create / gather / assign / verify run numba kernels

INITS = [("zeros", {}), ("uniform", {"scale": 0.5}), ("normal", {"std": 2.0}),
         ("constant", {"fill": -1.25})]


def _dense_by_map(store):
    """Dense (num_rows, ...) copy built through shard_ids, independent of to_numpy."""
    shard, row = shard_ids(np.arange(store.num_rows), store.shard_sizes, store.partition_strategy)
    return np.stack([np.asarray(store.shards[p][r]) for p, r in zip(shard, row)])


def _child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


# ------------------------------------------------------------------------------ round trips

@pytest.mark.parametrize("init,kw", INITS)
@pytest.mark.parametrize("strategy", ["mod", "div"])
@pytest.mark.parametrize("dim", [5, None])
def test_create_open_round_trip(tmp_path, init, kw, strategy, dim):
    path = tmp_path / "W"
    with ShardedMatrix.create(path, 13, dim, num_shards=3, partition_strategy=strategy,
                              init=init, seed=11, **kw) as W:
        assert W.mode == "r+" and not W.closed and W.step == 0 and W.extra == {}
        assert W.shard_sizes == [5, 4, 4] == [s.shape[0] for s in W.shards]
        assert W.shape == ((13,) if dim is None else (13, dim)) and len(W) == 13
        assert W.dtype == np.float32 and W.nbytes == 13 * (dim or 1) * 4
        assert all(isinstance(s, np.memmap) and s.ndim == (1 if dim is None else 2)
                   for s in W.shards)
        dense = W.to_numpy()
        np.testing.assert_array_equal(dense, _dense_by_map(W))
    assert W.closed and W.shards == []
    assert sorted(os.listdir(path)) == [".lock", "meta.json", "shard-00000.npy",
                                        "shard-00001.npy", "shard-00002.npy"]
    meta = json.loads((path / "meta.json").read_text())
    assert {k: meta[k] for k in ("format", "version", "num_rows", "dim", "dtype",
                                 "num_shards", "partition_strategy", "shard_rows", "step",
                                 "extra", "epoch", "group", "checksums")} == {
        "format": "fastsampled.ShardedMatrix", "version": 2, "num_rows": 13, "dim": dim,
        "dtype": "float32", "num_shards": 3, "partition_strategy": strategy,
        "shard_rows": [5, 4, 4], "step": 0, "extra": {}, "epoch": 0, "group": None,
        "checksums": None}
    assert meta["shard_bytes"] == [os.path.getsize(path / f"shard-0000{p}.npy")
                                   for p in range(3)]
    if init == "zeros":
        assert (dense == 0).all()
    elif init == "constant":
        assert (dense == np.float32(-1.25)).all()
    elif init == "uniform":
        assert (np.abs(dense) <= 0.5).all() and np.unique(dense).size == dense.size
    else:
        assert np.isfinite(dense).all() and np.unique(dense).size == dense.size
    with ShardedMatrix.open(path) as R:
        assert R.mode == "r" and R.partition_strategy == strategy and R.dim == dim
        np.testing.assert_array_equal(R.to_numpy(), dense)
        for p in range(3):  # plain .npy files
            a = np.load(path / f"shard-{p:05d}.npy", mmap_mode="r")
            assert a.shape == R.shards[p].shape and a.dtype == np.float32
            np.testing.assert_array_equal(a, R.shards[p])
        R.verify(values=True)


@pytest.mark.parametrize("dtype", ["float32", "float64", np.float64])
def test_dtypes(tmp_path, dtype):
    with ShardedMatrix.create(tmp_path / "W", 7, 3, dtype=dtype, init="normal", seed=1) as W:
        assert W.dtype == np.dtype(dtype)
        assert W.gather([1, 2]).dtype == np.dtype(dtype)
    with ShardedMatrix.open(tmp_path / "W") as R:
        assert R.dtype == np.dtype(dtype) and R.shards[0].dtype == np.dtype(dtype)


@pytest.mark.parametrize("init,kw", INITS[1:3])
@pytest.mark.parametrize("dim", [None, 1, 4, 7])
def test_values_do_not_depend_on_layout_chunks_or_threads(tmp_path, monkeypatch, init, kw, dim):
    import numba
    ref = ShardedMatrix.create(tmp_path / "ref", 23, dim, init=init, seed=5, **kw)
    expected = ref.to_numpy()
    ref.close()
    monkeypatch.setattr(_storecreate, "CHUNK_BYTES", 40)  # many small prange chunks
    threads = numba.get_num_threads()
    k = 0
    for P in (2, 3, 5, 23, 30):
        for strategy in ("mod", "div"):
            numba.set_num_threads(1 if k % 2 else threads)
            try:
                with ShardedMatrix.create(tmp_path / f"s{k}", 23, dim, num_shards=P,
                                          partition_strategy=strategy, init=init, seed=5,
                                          **kw) as W:
                    np.testing.assert_array_equal(W.to_numpy(), expected)
            finally:
                numba.set_num_threads(threads)
            k += 1
    with ShardedMatrix.create(tmp_path / "other", 23, dim, init=init, seed=6, **kw) as W:
        assert not np.array_equal(W.to_numpy(), expected)
    if dim is not None and dim > 1:  # a wider matrix keeps the first columns
        with ShardedMatrix.create(tmp_path / "wide", 23, dim + 1, init=init, seed=5, **kw) as W:
            np.testing.assert_array_equal(W.to_numpy()[:, :dim], expected)


def test_init_distributions(tmp_path):
    with ShardedMatrix.create(tmp_path / "u", 2000, 8, num_shards=3, init="uniform",
                              scale=0.1, seed=2, dtype="float64") as U:
        u = U.to_numpy()
    assert u.min() >= -0.1 and u.max() < 0.1
    assert abs(u.mean()) < 0.003 and abs(u.std() - 0.1 / np.sqrt(3)) < 0.002
    with ShardedMatrix.create(tmp_path / "n", 2000, 8, num_shards=3, partition_strategy="mod",
                              init="normal", std=0.5, seed=2, dtype="float64") as N:
        n = N.to_numpy()
    assert abs(n.mean()) < 0.015 and abs(n.std() - 0.5) < 0.015
    assert abs(np.mean(np.abs(n) < 0.5) - 0.6827) < 0.015
    # columns and rows are uncorrelated
    assert abs(np.corrcoef(n[:, 0], n[:, 1])[0, 1]) < 0.06
    assert abs(np.corrcoef(n[:-1, 3], n[1:, 3])[0, 1]) < 0.06
    with ShardedMatrix.create(tmp_path / "d", 50, 3, init="normal", seed=2) as D:
        np.testing.assert_allclose(D.to_numpy(), ShardedMatrix.create(
            tmp_path / "d2", 50, 3, init="normal", seed=2, std=1.0).to_numpy() * 0.05,
            rtol=1e-6)  # std defaults to scale


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_fewer_rows_than_shards(tmp_path, strategy):
    with ShardedMatrix.create(tmp_path / "W", 2, 3, num_shards=4, partition_strategy=strategy,
                              init="uniform", seed=3) as W:
        assert W.shard_sizes == [1, 1, 0, 0]
        dense = W.to_numpy()
        np.testing.assert_array_equal(W.gather([1, 0, 1]), dense[[1, 0, 1]])
        W.assign([1], np.ones((1, 3)))
        W.checkpoint(step=2)
    with ShardedMatrix.open(tmp_path / "W", "r+") as R:
        assert np.load(tmp_path / "W" / "shard-00003.npy", mmap_mode="r").shape == (0, 3)
        assert R.step == 2 and (R.to_numpy()[1] == 1).all()
        R.verify(values=True)


# ------------------------------------------------------------------------------ rows

@pytest.mark.parametrize("strategy", ["mod", "div"])
@pytest.mark.parametrize("dim", [4, None])
@pytest.mark.parametrize("P", [1, 3, 4])
def test_gather_locate_assign(tmp_path, strategy, dim, P):
    rng = np.random.default_rng(P)
    W = ShardedMatrix.create(tmp_path / "W", 23, dim, num_shards=P, partition_strategy=strategy,
                             init="uniform", seed=1)
    dense = W.to_numpy()
    ids = rng.integers(0, 23, size=40)  # duplicates on purpose
    np.testing.assert_array_equal(W.gather(ids), dense[ids])
    ids2 = ids.reshape(5, 8).astype(np.int32)
    np.testing.assert_array_equal(W.gather(ids2), dense[ids2])
    out = np.empty(ids.shape + W.shape[1:], np.float64)
    assert W.gather(ids, out=out) is out
    np.testing.assert_array_equal(out, dense[ids].astype(np.float64))
    assert W.gather([]).shape == (0,) + W.shape[1:]
    for a, b in zip(W.locate(ids2), shard_ids(ids2, W.shard_sizes, strategy)):
        assert a.dtype == np.int64
        np.testing.assert_array_equal(a, b)
    shard, row = W.locate(ids)
    np.testing.assert_array_equal([W.shards[p][r] for p, r in zip(shard, row)], dense[ids])

    new_ids = rng.permutation(23)[:9]
    vals = rng.normal(size=(9,) + W.shape[1:])  # float64 into a float32 store
    W.assign(new_ids, vals)
    dense[new_ids] = vals.astype(np.float32)
    np.testing.assert_array_equal(W.to_numpy(), dense)
    np.testing.assert_array_equal(_dense_by_map(W), dense)
    W.assign([], np.zeros((0,) + W.shape[1:], np.float32))
    W.checkpoint()
    W.close()
    with ShardedMatrix.open(tmp_path / "W") as R:  # the writes are in the files
        np.testing.assert_array_equal(R.to_numpy(), dense)
        np.testing.assert_array_equal(np.concatenate(
            [np.load(tmp_path / "W" / f"shard-{p:05d}.npy").reshape(-1) for p in range(P)]),
            np.concatenate([np.asarray(s).reshape(-1) for s in R.shards]))


def test_row_argument_errors(tmp_path):
    W = ShardedMatrix.create(tmp_path / "W", 10, 3, num_shards=2, init="uniform")
    before = W.to_numpy()
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 10\).*found 10"):
        W.gather([1, 10])
    with pytest.raises(ValueError, match="found -1"):
        W.gather([-1])
    with pytest.raises(TypeError, match="ids must hold integers"):
        W.gather([1.0])
    with pytest.raises(ValueError, match=r"out must have shape \(2, 3\)"):
        W.gather([1, 2], out=np.empty((2, 4), np.float32))
    with pytest.raises(TypeError, match="out must be float32 or float64"):
        W.gather([1, 2], out=np.empty((2, 3), np.int32))
    with pytest.raises(ValueError, match="C-contiguous"):
        W.gather([1, 2], out=np.empty((3, 2), np.float32).T)
    with pytest.raises(ValueError, match="ids must lie"):
        W.locate([11])
    with pytest.raises(ValueError, match="distinct; 3 appears"):
        W.assign([3, 1, 3], np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"values must have shape \(2, 3\)"):
        W.assign([3, 1], np.zeros((2, 2)))
    with pytest.raises(TypeError, match="values must be float32 or float64"):
        W.assign([3, 1], np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="ids must be 1-D"):
        W.assign([[3, 1]], np.zeros((2, 3)))
    with pytest.raises(ValueError, match="ids must lie"):
        W.assign([10], np.zeros((1, 3)))
    with pytest.raises(ValueError, match="must be finite"):
        W.assign([0, 1], np.array([[0, 0, 0], [0, np.nan, 0]]))
    with pytest.raises(ValueError, match=r"must be finite.*inf"):  # overflows float32
        W.assign([0, 1], np.array([[0, 0, 0], [0, 1e39, 0]]))
    np.testing.assert_array_equal(W.to_numpy(), before)  # nothing was written
    W.close()
    for call in (lambda: W.gather([0]), lambda: W.to_numpy(), lambda: W.verify(),
                 lambda: W.flush(), lambda: W.checkpoint(), lambda: W.locate([0])):
        with pytest.raises(ValueError, match="closed"):
            call()
    W.close()  # twice is fine
    assert "closed" in repr(W)


def test_read_only_mode(tmp_path):
    ShardedMatrix.create(tmp_path / "W", 10, 3, init="uniform").close()
    with ShardedMatrix.open(tmp_path / "W", "r") as R:
        with pytest.raises(ValueError, match="mode 'r\\+'"):
            R.assign([0], np.zeros((1, 3)))
        with pytest.raises(ValueError, match="mode 'r\\+'"):
            R.checkpoint(step=3)
        assert not R.shards[0].flags.writeable
        R.flush()  # nothing to write: a no-op
        assert R.step == 0
    assert json.loads((tmp_path / "W" / "meta.json").read_text())["step"] == 0
    with pytest.raises(ValueError, match="mode must be 'r' or 'r\\+'"):
        ShardedMatrix.open(tmp_path / "W", "w")
    with ShardedMatrix(tmp_path / "W") as R:  # the constructor opens too
        assert R.mode == "r"


# ------------------------------------------------------------------------------ create / like

def test_create_argument_errors(tmp_path):
    p = tmp_path / "W"
    bad = [
        (dict(num_rows=0), ValueError, "num_rows must be >= 1"),
        (dict(num_rows=3.0), TypeError, "num_rows must be an integer"),
        (dict(dim=0), ValueError, "dim must be >= 1"),
        (dict(num_shards=0), ValueError, "num_shards must be >= 1"),
        (dict(partition_strategy="foo"), ValueError, "partition_strategy"),
        (dict(dtype="int32"), TypeError, "dtype must be float32 or float64"),
        (dict(dtype="float16"), TypeError, "dtype must be float32 or float64"),
        (dict(init="ones"), ValueError, "init must be one of"),
        (dict(init="constant"), ValueError, "needs a fill"),
        (dict(init="uniform", fill=1.0), ValueError, "fill is only used"),
        (dict(init="uniform", scale=-1.0), ValueError, "scale must be >= 0"),
        (dict(init="normal", std=float("nan")), ValueError, "std must be finite"),
        (dict(init="constant", fill="1"), TypeError, "fill must be a real number"),
        (dict(seed=1.5), TypeError, "seed"),
        (dict(extra=[1]), TypeError, "extra must be a dict"),
        (dict(extra={"a": float("inf")}), ValueError, "JSON"),
        (dict(extra={"a": object()}), ValueError, "JSON"),
    ]
    for kw, exc, msg in bad:
        args = dict(num_rows=5, dim=2)
        args.update(kw)
        with pytest.raises(exc, match=msg):
            ShardedMatrix.create(p, args.pop("num_rows"), args.pop("dim"), **args)
        assert not p.exists()  # validated before touching the disk
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a directory"):
        ShardedMatrix.create(tmp_path / "file", 5, 2)


def test_overwrite(tmp_path):
    p = tmp_path / "W"
    p.mkdir()
    (p / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        ShardedMatrix.create(p, 5, 2)
    # not a store: refused even with overwrite=True, and nothing is deleted
    with pytest.raises(FileExistsError, match="not a ShardedMatrix store"):
        ShardedMatrix.create(p, 5, 2, overwrite=True)
    assert sorted(os.listdir(p)) == ["notes.txt"]
    os.unlink(p / "notes.txt")
    W = ShardedMatrix.create(p, 5, 2, num_shards=3, overwrite=True, extra={"a": 1})
    with pytest.raises(StoreLockedError):  # never overwrite a store another writer holds
        ShardedMatrix.create(p, 4, 2, overwrite=True)
    assert W.verify() is None and W.to_numpy().shape == (5, 2)
    W.assign([1], np.ones((1, 2), np.float32))   # leaves a journal
    W.close()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ShardedMatrix.create(p, 4, 2)
    with ShardedMatrix.create(p, 4, None, num_shards=2, overwrite=True, init="constant",
                              fill=2) as W:
        assert W.shape == (4,) and W.num_shards == 2 and W.extra == {}
    assert sorted(os.listdir(p)) == [".lock", "meta.json", "shard-00000.npy",
                                     "shard-00001.npy"]
    with ShardedMatrix.open(p) as R:
        np.testing.assert_array_equal(R.to_numpy(), [2, 2, 2, 2])
    # a store with a foreign file in its directory is not replaced either
    (p / "thesis.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not part of a store"):
        ShardedMatrix.create(p, 4, 2, overwrite=True)
    assert (p / "thesis.txt").read_text() == "keep me" and (p / "meta.json").exists()


def test_like(tmp_path):
    W = ShardedMatrix.create(tmp_path / "W", 11, 3, num_shards=4, partition_strategy="mod",
                             dtype="float64", init="uniform")
    for name, kw, value in [("z", {}, 0.0), ("c", {"fill": 0.1}, 0.1),
                            ("c2", {"init": "constant", "fill": 0.5}, 0.5)]:
        with ShardedMatrix.like(W, tmp_path / name, **kw) as S:
            assert (S.num_rows, S.dim, S.num_shards, S.partition_strategy, S.dtype,
                    S.shard_sizes) == (11, 3, 4, "mod", np.float64, W.shard_sizes)
            assert (S.to_numpy() == value).all()
    with ShardedMatrix.like(W, tmp_path / "u", "uniform", seed=3) as S:
        with ShardedMatrix.create(tmp_path / "u2", 11, 3, dtype="float64", init="uniform",
                                  seed=3) as S2:
            np.testing.assert_array_equal(S.to_numpy(), S2.to_numpy())
    b = np.zeros(9, np.float32)
    with ShardedMatrix.like(b, tmp_path / "b") as S:
        assert (S.shape, S.num_shards, S.dtype) == ((9,), 1, np.float32)
    shards = [np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((2, 2))]
    with ShardedMatrix.like(shards, tmp_path / "l", partition_strategy="div") as S:
        assert S.shard_sizes == [3, 3, 2] and S.shape == (8, 2) and S.dtype == np.float64
    with pytest.raises(ValueError, match="partition_strategy is required"):
        ShardedMatrix.like(shards, tmp_path / "l2")
    with pytest.raises(ValueError, match="layout"):
        ShardedMatrix.like(shards[::-1], tmp_path / "l3", partition_strategy="div")
    with pytest.raises(TypeError, match="float32 or float64"):
        ShardedMatrix.like(np.zeros(3, np.int32), tmp_path / "l4")
    with pytest.raises(ValueError, match="disagrees"):
        ShardedMatrix.like(W, tmp_path / "l5", partition_strategy="div")
    W.close()


# ------------------------------------------------------------------------------ StoreError

def _meta_edit(**changes):
    def corrupt(path):
        meta = json.loads((path / "meta.json").read_text())
        for k, v in changes.items():
            if v is KeyError:
                del meta[k]
            else:
                meta[k] = v
        meta["digest"] = _storefile.digest(meta)   # a consistent edit: the deeper checks
        (path / "meta.json").write_text(json.dumps(meta))
    return corrupt


def _meta_edit_raw(**changes):
    def corrupt(path):
        meta = json.loads((path / "meta.json").read_text())
        meta.update(changes)
        (path / "meta.json").write_text(json.dumps(meta))
    return corrupt


def _swap(a, b):
    tmp = a.with_suffix(".swap")
    os.rename(a, tmp)
    os.rename(b, a)
    os.rename(tmp, b)


def _symlink_shard(path):
    # another valid .npy of the right shape and size, linked in place of shard 2
    other = path.parent / "other.npy"
    shutil.copy(path / "shard-00002.npy", other)
    os.unlink(path / "shard-00002.npy")
    os.symlink(other, path / "shard-00002.npy")


def _foreign_shard(path):
    # shard 2 of another store with the same layout, copied in
    ShardedMatrix.create(path.parent / "twin", 13, 3, num_shards=3).close()
    shutil.copy(path.parent / "twin" / "shard-00002.npy", path / "shard-00002.npy")


def _write(name, data):
    def corrupt(path):
        (path / name).write_bytes(data)
    return corrupt


def _save_shard(arr):
    def corrupt(path):
        with open(path / "shard-00001.npy", "wb") as f:
            np.save(f, arr)
    return corrupt


def _truncate(path):
    fn = path / "shard-00001.npy"
    os.truncate(fn, os.path.getsize(fn) - 4)


def _pad(path):
    with open(path / "shard-00002.npy", "ab") as f:
        f.write(b"\0" * 8)


CORRUPTIONS = [
    ("missing meta", lambda p: os.unlink(p / "meta.json"), "missing meta.json"),
    ("no directory", lambda p: [os.unlink(f) for f in p.iterdir()] and os.rmdir(p),
     "no such directory"),
    ("bad json", _write("meta.json", b'{"format": '), "not valid JSON"),
    ("not utf8", _write("meta.json", b"\xff\xfe"), "not valid JSON"),
    ("json list", _write("meta.json", b"[1, 2]"), "must hold a JSON object"),
    ("format", _meta_edit(format="numpy"), "format is 'numpy'"),
    ("version", _meta_edit(version=3), "unsupported version 3"),
    ("hand edit", _meta_edit_raw(partition_strategy="mod"), "digest does not match"),
    ("epoch", _meta_edit(epoch=-1), "epoch must be an int >= 0"),
    ("uuid", _meta_edit(uuid="xyz"), "uuid must be 32 hexadecimal"),
    ("shard_bytes", _meta_edit(shard_bytes=[1, 2]), "shard_bytes must be a list of 3"),
    ("checksums", _meta_edit(checksums=["00"] * 3), "checksums must be null or a list"),
    ("group", _meta_edit(group="/abs/head.json"), "group must be a relative path"),
    ("swapped shards", lambda p: _swap(p / "shard-00001.npy", p / "shard-00002.npy"),
     "shard-00001.npy: is shard 2 of 3 of store"),
    ("symlinked shard", lambda p: _symlink_shard(p), "is a symbolic link"),
    ("foreign shard", lambda p: _foreign_shard(p), "of store"),
    ("missing key", _meta_edit(step=KeyError), r"missing keys \['step'\]"),
    ("num_rows", _meta_edit(num_rows="13"), "num_rows must be an int"),
    ("dim", _meta_edit(dim=0), "dim must be an int >= 1 or null"),
    ("dtype", _meta_edit(dtype="int32"), "dtype must be"),
    ("strategy", _meta_edit(partition_strategy="range"), "partition_strategy must be"),
    ("step", _meta_edit(step=-1), "step must be an int >= 0"),
    ("extra", _meta_edit(extra=[]), "extra must be a JSON object"),
    ("rows type", _meta_edit(shard_rows=[5, 4, "4"]), "shard_rows must be a list"),
    ("rows len", _meta_edit(shard_rows=[5, 4, 4, 0]), "shard_rows has 4 entries but "
     "num_shards is 3"),
    ("rows layout", _meta_edit(shard_rows=[4, 5, 4]), r"not the 'div' layout of 13 rows"),
    ("num_rows layout", _meta_edit(num_rows=14), r"not the 'div' layout of 14 rows"),
    ("num_shards", _meta_edit(num_shards=2), "shard_rows has 3 entries"),
    ("missing shard", lambda p: os.unlink(p / "shard-00001.npy"),
     "shard-00001.npy: missing shard file"),
    ("truncated", _truncate, "truncated"),
    ("padded", _pad, "padded"),
    ("wrong dtype", _save_shard(np.zeros((4, 3), np.float64)), "dtype float64"),
    ("wrong shape", _save_shard(np.zeros((5, 3), np.float32)), r"shape \(5, 3\)"),
    ("vector shard", _save_shard(np.zeros(12, np.float32)), r"shape \(12,\)"),
    ("fortran", _save_shard(np.asfortranarray(np.zeros((4, 3), np.float32))),
     "fortran_order True"),
    ("not npy", _write("shard-00000.npy", b"hello world" * 20), "not a readable .npy"),
    ("empty file", _write("shard-00000.npy", b""), "not a readable .npy"),
]


@pytest.mark.parametrize("name,corrupt,msg", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_open_refuses_corrupt_store(tmp_path, name, corrupt, msg):
    path = tmp_path / "W"
    ShardedMatrix.create(path, 13, 3, num_shards=3, init="uniform").close()
    corrupt(path)
    for mode in ("r", "r+"):
        with pytest.raises(StoreError, match=msg) as info:
            ShardedMatrix.open(path, mode)
        assert isinstance(info.value, ValueError)
    if path.exists():  # a failed "r+" open released its lock
        sharding.unlock_directory(sharding.lock_directory(path))


def test_verify_on_open_store(tmp_path):
    path = tmp_path / "W"
    W = ShardedMatrix.create(path, 13, 3, num_shards=3, partition_strategy="mod",
                             init="uniform")
    W.verify()
    W.verify(values=True)
    W.shards[2][3, 1] = np.inf  # global id 3 * 3 + 2
    W.verify()  # structure is fine
    with pytest.raises(StoreError, match=r"shard-00002.npy: row 3 \(global id 11\).*inf"):
        W.verify(values=True)
    W.shards[2][3, 1] = 0.0
    W.shards[0][0, 0] = np.nan
    W.shards[1][2, 2] = np.nan
    with pytest.raises(StoreError, match=r"shard-00000.npy: row 0 \(global id 0\)"):
        W.verify(values=True)
    W.shards[0][0, 0] = 0.0
    with pytest.raises(StoreError, match=r"shard-00001.npy: row 2 \(global id 7\)"):
        W.verify(values=True)
    _pad(path)
    with pytest.raises(StoreError, match="padded"):
        W.verify()
    W.close()
    with ShardedMatrix.create(tmp_path / "V", 9, None, num_shards=2, init="uniform") as V:
        V.shards[1][1] = -np.inf  # div: shard 1 starts at id 5
        with pytest.raises(StoreError, match=r"row 1 \(global id 6\)"):
            V.verify(values=True)
    # the store was replaced by another of another shape behind an open reader
    R = ShardedMatrix.open(tmp_path / "V")
    ShardedMatrix.create(tmp_path / "V", 9, None, num_shards=3, overwrite=True).close()
    with pytest.raises(StoreError, match="num_shards is 3 on disk but 2"):
        R.verify()
    R.close()


# ------------------------------------------------------------------------------ lock

def test_lock_in_one_process(tmp_path):
    path = tmp_path / "W"
    W = ShardedMatrix.create(path, 6, 2, init="uniform")
    with pytest.raises(StoreLockedError, match=re.escape(str(path))) as info:
        ShardedMatrix.open(path, "r+")
    assert isinstance(info.value, RuntimeError)
    with ShardedMatrix.open(path, "r") as R:  # readers take no lock
        np.testing.assert_array_equal(R.to_numpy(), W.to_numpy())
    W.close()
    with ShardedMatrix.open(path, "r+") as W2:
        with pytest.raises(StoreLockedError):
            ShardedMatrix.open(path, "r+")
    with ShardedMatrix.open(path, "r+"):  # released by __exit__
        pass
    W3 = ShardedMatrix.open(path, "r+")
    del W3  # garbage collection closes the lock file too
    ShardedMatrix.open(path, "r+").close()


_HOLD_LOCK = """
import sys
import fastsampled as fs
W = fs.ShardedMatrix.open(sys.argv[1], "r+")
print("locked", flush=True)
sys.stdin.readline()
W.close()
print("closed", flush=True)
sys.stdin.readline()
"""


def test_lock_held_by_another_process(tmp_path):
    path = tmp_path / "W"
    ShardedMatrix.create(path, 6, 2).close()
    child = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(path)], env=_child_env(),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError, match="another"):
            ShardedMatrix.open(path, "r+")
        with pytest.raises(StoreLockedError):
            ShardedMatrix.create(path, 6, 2, overwrite=True)
        ShardedMatrix.open(path, "r").close()
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "closed"  # close() released it
        ShardedMatrix.open(path, "r+").close()
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# ------------------------------------------------------------------------------ checkpoint

def test_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "W"
    W = ShardedMatrix.create(path, 8, 2, num_shards=2, extra={"lr": 0.1})
    assert W.extra == {"lr": 0.1}
    R = ShardedMatrix.open(path)
    W.assign([3], np.ones((1, 2)))
    assert (R.gather([3]) == 1).all()  # one page cache: readers see writes at once
    W.flush()
    W.checkpoint(step=5, extra={"lr": 0.05, "note": "x"})
    assert W.step == 5 and W.extra == {"lr": 0.05, "note": "x"}
    assert R.step == 0  # an open reader keeps the step it opened
    meta = json.loads((path / "meta.json").read_text())
    assert meta["step"] == 5 and meta["extra"] == {"lr": 0.05, "note": "x"}
    assert not (path / "meta.json.tmp").exists()
    W.checkpoint()  # keeps step and extra
    assert json.loads((path / "meta.json").read_text())["step"] == 5
    W.checkpoint(step=np.int64(6), extra={1: [1, 2]})
    assert W.extra == {"1": [1, 2]}  # as JSON reads it back
    with pytest.raises(ValueError, match="step must be >= 0"):
        W.checkpoint(step=-1)
    with pytest.raises(TypeError, match="step must be an integer"):
        W.checkpoint(step=1.5)
    with pytest.raises(ValueError, match="JSON"):
        W.checkpoint(step=7, extra={"x": float("nan")})
    assert W.step == 6 and json.loads((path / "meta.json").read_text())["step"] == 6

    # a failure before the rename leaves the old meta.json, complete
    def broken_replace(src, dst):
        raise OSError("disk on fire")
    monkeypatch.setattr(sharding.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        W.checkpoint(step=9)
    monkeypatch.undo()
    assert W.step == 6
    assert json.loads((path / "meta.json").read_text())["step"] == 6
    W.close()
    R.close()
    with ShardedMatrix.open(path) as R:  # meta.json.tmp left over does not matter
        assert R.step == 6 and R.extra == {"1": [1, 2]}
        assert (R.gather([3]) == 1).all()
    W = ShardedMatrix.open(path, "r+")
    W.checkpoint(step=10)
    assert not (path / "meta.json.tmp").exists()
    W.close()


# ------------------------------------------------------------------------------ losses

@pytest.mark.parametrize("strategy", ["mod", "div"])
@pytest.mark.parametrize("P", [1, 3])
def test_store_as_loss_weights(tmp_path, strategy, P):
    rng = np.random.default_rng(P)
    C, D, B, S = 23, 6, 5, 7
    W = ShardedMatrix.create(tmp_path / "W", C, D, num_shards=P, partition_strategy=strategy,
                             init="normal", std=0.3, seed=4)
    b = ShardedMatrix.create(tmp_path / "b", C, None, num_shards=P, partition_strategy=strategy,
                             init="uniform", scale=0.2, seed=4)
    x = rng.normal(size=(B, D)).astype(np.float32)
    labels = rng.integers(0, C, size=(B, 1))
    sv = fs.log_uniform_candidate_sampler(labels, 1, S, True, C, seed=3)
    # the other strategy must be ignored: the store knows its own
    other = "div" if strategy == "mod" else "mod"
    loss, g = fs.sampled_softmax_loss_and_grads(W, b, labels, x, S, C, sampled_values=sv,
                                                partition_strategy=other)
    loss_d, g_d = fs.sampled_softmax_loss_and_grads(W.to_numpy(), b.to_numpy(), labels, x, S,
                                                    C, sampled_values=sv)
    np.testing.assert_allclose(loss, loss_d, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(g.ids, g_d.ids)
    for a, e in [(g.inputs, g_d.inputs), (g.weights, g_d.weights), (g.biases, g_d.biases)]:
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
    W.close()
    b.close()
    with ShardedMatrix.open(tmp_path / "W") as RW, ShardedMatrix.open(tmp_path / "b") as Rb:
        np.testing.assert_allclose(fs.nce_loss(RW, Rb, labels, x, S, C, sampled_values=sv),
                                   fs.nce_loss(RW.to_numpy(), Rb.to_numpy(), labels, x, S, C,
                                               sampled_values=sv), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ SIGKILL

_WRITER = """
import sys, time
import numpy as np
import fastsampled as fs
W = fs.ShardedMatrix.create(sys.argv[1], 60, 4, num_shards=3, partition_strategy="mod",
                            init="uniform", seed=0)
rng = np.random.default_rng(0)
it = 0
while True:
    ids = rng.choice(60, 6, replace=False)
    W.assign(ids, rng.normal(size=(6, 4)).astype(np.float32))
    it += 1
    if it % 3 == 0:
        W.checkpoint(step=it)
        print("ckpt", it, flush=True)
    time.sleep(0.002)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_leaves_a_valid_store(tmp_path):
    path = tmp_path / "W"
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], env=_child_env(),
                             stdout=subprocess.PIPE, text=True)
    steps = []
    try:
        deadline = time.monotonic() + 120
        while len(steps) < 3 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            steps.append(int(line.split()[1]))
        assert len(steps) == 3, f"writer stopped early (rc {child.poll()})"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with ShardedMatrix.open(path, "r+") as W:  # the lock died with the writer
        W.verify(values=True)
        assert W.step >= steps[-1] and W.step % 3 == 0
        got = W.to_numpy()
    # Replay the writer: the rows hold every write up to some iteration n >= the recorded
    # step, plus possibly part of iteration n + 1 (the kill may land inside an assign).
    with ShardedMatrix.create(tmp_path / "replay", 60, 4, init="uniform", seed=0) as R:
        state = R.to_numpy()
    rng = np.random.default_rng(0)
    for n in range(1, 100000):
        prev = state.copy()
        ids = rng.choice(60, 6, replace=False)
        state[ids] = rng.normal(size=(6, 4)).astype(np.float32)
        if n > W.step and ((got == prev) | (got == state)).all():
            break
    else:
        pytest.fail("the killed store's rows match no replayed iteration after its step")


def test_access_advice_prefetch_and_cache_drop_are_harmless_hints(tmp_path):
    st = fs.ShardedMatrix.create(tmp_path / "s", 1000, 8, num_shards=3,
                                 partition_strategy="mod", init="uniform", seed=3)
    before = st.to_numpy()
    st.prefetch(np.array([0, 1, 2, 500, 999]))
    st.prefetch(np.arange(1000))
    for pattern in ("sequential", "normal", "random"):
        st.advise(pattern)
    with pytest.raises(ValueError, match="pattern"):
        st.advise("backwards")
    with st.scan():
        assert st._advice == "sequential"
    assert st._advice == "random"
    st.assign([5], np.full((1, 8), 2.0, np.float32))
    st.drop_cache()                      # dirty pages stay: the write is not lost
    before[5] = 2.0
    np.testing.assert_array_equal(st.to_numpy(), before)
    st.close()


@pytest.mark.parametrize("strategy,P", [("div", 1), ("div", 3), ("mod", 3)])
def test_warm_reads_the_id_prefix_of_every_shard(tmp_path, strategy, P):
    st = fs.ShardedMatrix.create(tmp_path / "s", 1001, 8, num_shards=P,
                                 partition_strategy=strategy, init="normal", seed=4)
    before = st.to_numpy()
    row_bytes = 8 * 4
    assert st.warm(0) == 0
    # the prefix of ids 0..299 is a prefix of each shard under both strategies
    per_shard = [np.count_nonzero(np.asarray(st.locate(np.arange(300))[0]) == p)
                 for p in range(P)]
    assert st.warm(300) == sum(per_shard) * row_bytes
    assert st.warm() == 1001 * row_bytes
    with pytest.raises(ValueError, match="num_rows"):
        st.warm(1002)
    st.assign([7], np.full((1, 8), 3.0, np.float32))
    before[7] = 3.0
    np.testing.assert_array_equal(st.to_numpy(), before)    # a hint: values untouched
    st.close()
