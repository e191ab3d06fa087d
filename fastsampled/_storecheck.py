"""Re-checking an open ``ShardedMatrix`` (private): ``ShardedMatrix.verify`` and
``checksums``. The files are checked again as at open (``_storefile.read_store``) and against
the open object's layout; the content is scanned for non-finite values or compared with the
checksums recorded at a checkpoint (docs/storage.md#what-is-checked-at-open).
"""
import numpy as np

from ._errors import StoreError
from ._journal import checksum_bytes
from ._params import row_view
from ._store_kernels import first_nonfinite_row
from ._storecreate import chunk_rows
from ._storefile import read_store, shard_file_name
from ._validate import as_bool

__all__ = ["shard_checksums", "verify_store"]


def shard_checksums(store):
    """``store.checksums()``: a 64-bit checksum of each shard's content, in hexadecimal."""
    out = []
    with store.scan():
        for s in store.shards:
            raw = np.asarray(s).reshape(-1).view(np.uint8)
            out.append(f"{checksum_bytes(raw):016x}")
    return out


def verify_store(store, values, checksums):
    """``store.verify(values, checksums)`` on an open store."""
    meta, _ = read_store(store.path)
    for key in ("num_rows", "dim", "dtype", "num_shards", "partition_strategy"):
        mine = store.dtype.name if key == "dtype" else getattr(store, key)
        if meta[key] != mine:
            raise StoreError(f"{store.path}: {key} is {meta[key]!r} on disk but {mine!r} in "
                             "this open store (replaced while open?)")
    if as_bool(checksums, "checksums"):
        want = meta.get("checksums")
        if want is None:
            raise ValueError(f"{store.path}: no checksums were recorded at its last "
                             "checkpoint (checkpoint(checksums=True) records them)")
        for p, (got, exp) in enumerate(zip(store.checksums(), want)):
            if got != exp:
                raise StoreError(f"{store.path / shard_file_name(p)}: content checksum "
                                 f"{got} differs from {exp} recorded at step "
                                 f"{meta['step']}")
    if not as_bool(values, "values"):
        return
    with store.scan():
        _scan_nonfinite(store)


def _scan_nonfinite(store):
    for p, s in enumerate(store.shards):
        if not s.shape[0]:
            continue
        chunk = chunk_rows(1 if store.dim is None else store.dim, store.dtype)
        bad = int(first_nonfinite_row(row_view(s), chunk))
        if bad >= 0:
            raise StoreError(
                f"{store.path / shard_file_name(p)}: row {bad} (global id "
                f"{_global_id(store, p, bad)}) holds a non-finite value: "
                f"{np.asarray(s[bad]).tolist()}")


def _global_id(store, p, row):
    if store.num_shards > 1 and store.partition_strategy == "mod":
        return row * store.num_shards + p
    return sum(store.shard_sizes[:p]) + row
