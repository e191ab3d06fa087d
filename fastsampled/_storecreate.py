"""Creating a ``ShardedMatrix`` store (private): ``ShardedMatrix.create`` and ``like``'s
arguments checked, the directory made (or the store there replaced, under its lock), every
shard file written with its identity header, its blocks reserved and its rows initialised in
parallel by ``_store_kernels.init_rows``, and ``meta.json`` written last, so that a creation
cut short leaves no valid store (docs/storage.md#what-is-on-disk).
"""
import json
import logging
import os
import pathlib
import uuid

import numpy as np

from ._journal import check_durability
from ._layout import check_strategy, is_store, layout_sizes
from ._params import ParamRows, row_view
from ._progress import Progress
from ._rng import normalize_seed
from ._store_kernels import INIT_CONSTANT, INIT_NORMAL, INIT_UNIFORM, INIT_ZEROS, init_rows
from ._storefile import (FORMAT, VERSION, check_group, check_replaceable, fsync_file, lock,
                         npy_header, remove_store_files, reserve, shard_file_name, unlock,
                         write_meta)
from ._validate import FLOAT_DTYPES, as_bool, as_int, as_real

__all__ = ["INITS", "CHUNK_BYTES", "chunk_rows", "store_dtype", "check_extra", "layout_of",
           "create_store"]

INITS = ("zeros", "uniform", "normal", "constant")
CHUNK_BYTES = 2 << 20  # rows per parallel task: about 2 MiB, so each task streams its own pages
PROGRESS_MIN_BYTES = 1 << 30    # stores this large report their initialisation's progress
PROGRESS_BLOCK_BYTES = 256 << 20  # rows initialised per kernel call between two reports
logger = logging.getLogger("fastsampled.sharding")


def chunk_rows(width, dtype):
    """Rows per parallel task of the store kernels (initialisation, the non-finite scan):
    about :data:`CHUNK_BYTES` of rows of ``width`` values of ``dtype``, at least one."""
    return max(1, CHUNK_BYTES // (width * dtype.itemsize))


def store_dtype(dtype):
    """``dtype`` as float32 or float64 in native byte order, else ``TypeError``."""
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from e
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt.newbyteorder("=")


def check_extra(extra):
    """A JSON-serialisable dict, returned as it will read back from ``meta.json``."""
    if extra is None:
        return {}
    if not isinstance(extra, dict):
        raise TypeError(f"extra must be a dict (a JSON object), got {type(extra).__name__}")
    try:
        return json.loads(json.dumps(extra, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"extra must be JSON-serialisable (finite numbers): {e}") from e


def layout_of(other, partition_strategy):
    """(num_rows, dim, num_shards, strategy, dtype) of a store, an array or a shard list."""
    if is_store(other) and partition_strategy is not None and other.num_shards > 1 \
            and partition_strategy != other.partition_strategy:
        raise ValueError(f"partition_strategy {partition_strategy!r} disagrees with the "
                         f"store's own {other.partition_strategy!r}")
    if partition_strategy is not None:
        check_strategy(partition_strategy)
    rows = ParamRows(other, "other", partition_strategy=partition_strategy)
    strategy = rows.strategy if len(rows.sizes) > 1 or is_store(other) else (
        "div" if partition_strategy is None else partition_strategy)
    return rows.num_rows, rows.dim, len(rows.sizes), strategy, rows.dtype


def create_store(path, num_rows, dim, *, num_shards, partition_strategy, dtype, init, scale,
                 std, seed, fill, overwrite, extra, durability, group, opened):
    """``ShardedMatrix.create``: check the arguments, write the store's files, open it.

    Parameters
    ----------
    path, num_rows, dim, num_shards, partition_strategy, dtype, init, scale, std, seed, fill
        As given to ``ShardedMatrix.create``, checked here in that order.
    overwrite, extra, durability, group
        As given to ``ShardedMatrix.create``, checked here in that order.
    opened : callable
        ``opened(path, lock_fd, durability)`` opens the new store ``"r+"`` under the writer's
        lock ``lock_fd`` and returns it; the lock is released if it raises.

    Returns
    -------
    ShardedMatrix
        What ``opened`` returned.
    """
    path = pathlib.Path(os.fspath(path))
    num_rows = as_int(num_rows, "num_rows", 1)
    if dim is not None:
        dim = as_int(dim, "dim", 1)
    num_shards = as_int(num_shards, "num_shards", 1)
    check_strategy(partition_strategy)
    dtype = store_dtype(dtype)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    scale = as_real(scale, "scale", 0.0)
    std = scale if std is None else as_real(std, "std", 0.0)
    if init == "constant":
        if fill is None:
            raise ValueError("init='constant' needs a fill value")
        fill = as_real(fill, "fill")
    elif fill is not None:
        raise ValueError(f"fill is only used with init='constant', not init={init!r}")
    key = normalize_seed(seed)
    overwrite = as_bool(overwrite, "overwrite")
    extra = check_extra(extra)

    durability = check_durability(durability)
    if group is not None:
        group = check_group(group)

    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{path} is not empty; pass overwrite=True to replace a "
                                  "store there")
        check_replaceable(path)
    path.mkdir(parents=True, exist_ok=True)
    lock_fd = lock(path)
    try:
        if overwrite:
            check_replaceable(path)      # again, under the lock
            remove_store_files(path)
        sizes = layout_sizes(num_rows, num_shards, partition_strategy)
        kind = {"zeros": INIT_ZEROS, "uniform": INIT_UNIFORM,
                "normal": INIT_NORMAL, "constant": INIT_CONSTANT}[init]
        a = {"zeros": 0.0, "uniform": scale, "normal": std, "constant": fill}[init]
        width = 1 if dim is None else dim
        chunk = chunk_rows(width, dtype)
        ident = uuid.uuid4().hex
        progress = None
        if kind != INIT_ZEROS and num_rows * width * dtype.itemsize >= PROGRESS_MIN_BYTES:
            progress = Progress(num_rows, f"initialising {path}", unit="row", logger=logger)
        offset = 0
        shard_bytes = []
        for p, n in enumerate(sizes):
            fn = path / shard_file_name(p)
            shape = (n,) if dim is None else (n, dim)
            header = npy_header(dtype, shape, ident, p, num_shards)
            size = len(header) + n * width * dtype.itemsize
            with open(fn, "wb") as f:
                f.write(header)
                f.truncate(size)
            reserve(fn)  # real blocks now: a full disk fails here, not as SIGBUS later
            if kind != INIT_ZEROS and n:
                mm = np.memmap(fn, dtype=dtype, mode="r+", offset=len(header), shape=shape)
                if num_shards > 1 and partition_strategy == "mod":
                    stride, first = num_shards, p  # shard p holds ids p, p + P, ...
                else:
                    stride, first = 1, offset
                rows = row_view(mm)
                block = max(chunk, PROGRESS_BLOCK_BYTES // (width * dtype.itemsize))
                for r0 in range(0, n, block):   # row i of the block is id first + i * stride
                    init_rows(rows[r0:r0 + block], stride, first + r0 * stride, kind, a, key,
                              chunk)
                    if progress is not None:
                        progress.update(min(block, n - r0))
                mm.flush()
                del mm
            fsync_file(fn, drop_cache=True)  # see ShardedMatrix.drop_cache
            shard_bytes.append(size)
            offset += n
        meta = {"format": FORMAT, "version": VERSION, "num_rows": num_rows, "dim": dim,
                "dtype": dtype.name, "num_shards": num_shards,
                "partition_strategy": partition_strategy, "shard_rows": sizes, "step": 0,
                "extra": extra, "epoch": 0, "uuid": ident, "group": group,
                "shard_bytes": shard_bytes, "checksums": None}
        if progress is not None:
            progress.close()
        write_meta(path, meta)
        return opened(path, lock_fd, durability)
    except BaseException:
        unlock(lock_fd)
        raise
