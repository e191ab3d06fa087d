"""Page-cache management of memory-mapped shards (private): access-pattern advice, prefetch
hints, warming a prefix of the rows, and dropping clean pages.

A store larger than RAM is read through the operating system's page cache; these functions
decide how the kernel reads it (``madvise``, ``posix_fadvise``) and never change a row.
``ShardedMatrix.advise`` / ``scan`` / ``prefetch`` / ``warm`` / ``drop_cache`` call them.
"""
import mmap
import os

import numpy as np

from ._layout import split_by_shard
from ._storefile import drop_cached_pages, shard_file_name

MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)   # Linux 5.14+


_WARM_CHUNK = 8 << 20


_WARM_THREADS = 8


def read_concurrently(fd, end):
    """Read bytes ``0 .. end`` of ``fd`` into the page cache with several reads in flight.

    With ``POSIX_FADV_RANDOM`` the kernel reads each request in pieces of its read-ahead
    size, one after the other, so one reader leaves the disk mostly idle
    (docs/performance.md#memory-mapped-stores); eight readers keep the disk busy.
    ``os.preadv`` releases the GIL."""
    import concurrent.futures

    def read(lo):
        buf = bytearray(min(_WARM_CHUNK, end - lo))
        view = memoryview(buf)
        pos = 0
        while pos < len(buf):
            got = os.preadv(fd, [view[pos:]], lo + pos)
            if got <= 0:
                break
            pos += got

    with concurrent.futures.ThreadPoolExecutor(_WARM_THREADS) as pool:
        list(pool.map(read, range(0, end, _WARM_CHUNK)))


def madvise_all(arrays, flag):
    advice = getattr(mmap, flag, None)
    if advice is None:
        return
    for a in arrays:
        m = getattr(a, "_mmap", None)
        if m is not None and len(m):
            try:
                m.madvise(advice)
            except (OSError, ValueError):  # advice is a hint: never fail on it
                pass


def advise(store, pattern):
    """``store.advise(pattern)``: ``madvise`` every shard with the pattern's advice."""
    flag = {"random": "MADV_RANDOM", "sequential": "MADV_SEQUENTIAL",
            "normal": "MADV_NORMAL"}.get(pattern)
    if flag is None:
        raise ValueError(f"pattern must be 'random', 'sequential' or 'normal', got {pattern!r}")
    madvise_all(store.shards, flag)


def prefetch(store, ids):
    """``store.prefetch(ids)``: ``MADV_WILLNEED`` on the runs of pages holding rows ``ids``."""
    advice = getattr(mmap, "MADV_WILLNEED", None)
    if advice is None:
        return
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    width = (1 if store.dim is None else store.dim) * store.dtype.itemsize
    page = mmap.PAGESIZE
    for p, _, rows in split_by_shard(ids, store.shard_sizes, store.partition_strategy):
        shard = store.shards[p]
        m = getattr(shard, "_mmap", None)
        if m is None:
            continue
        start = shard.offset % mmap.ALLOCATIONGRANULARITY   # array start inside the map
        first = (start + rows * width) // page
        last = (start + (rows + 1) * width - 1) // page
        pages = np.unique(np.concatenate([first, last]))
        cut = np.flatnonzero(np.diff(pages) != 1) + 1
        run_lo = pages[np.r_[0, cut]].tolist()
        run_hi = pages[np.r_[cut - 1, pages.size - 1]].tolist()
        for a, b in zip(run_lo, run_hi):
            try:
                m.madvise(advice, a * page, (b - a + 1) * page)
            except (OSError, ValueError):
                return  # a hint: never fail on it


def warm(store, num_rows=None):
    """``store.warm(num_rows)``: read the rows' pages with concurrent reads, then map them."""
    n = store.num_rows if num_rows is None else int(num_rows)
    if not 0 <= n <= store.num_rows:
        raise ValueError(f"num_rows must lie in [0, {store.num_rows}], got {num_rows}")
    width = (1 if store.dim is None else store.dim) * store.dtype.itemsize
    total = 0
    for p, size in enumerate(store.shard_sizes):
        if store.num_shards > 1 and store.partition_strategy == "mod":
            rows = min(size, (n + store.num_shards - 1 - p) // store.num_shards)
        else:
            start = sum(store.shard_sizes[:p])
            rows = min(size, max(0, n - start))
        if rows == 0:
            continue
        shard = store.shards[p]
        end = shard.offset + rows * width          # the .npy header is read too
        fd = os.open(store.path / shard_file_name(p), os.O_RDONLY)
        try:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            read_concurrently(fd, end)
        finally:
            os.close(fd)
        total += rows * width
        m = getattr(shard, "_mmap", None)
        start = shard.offset % mmap.ALLOCATIONGRANULARITY
        if m is not None:
            try:
                m.madvise(MADV_POPULATE_READ, 0, start + rows * width)
            except (OSError, ValueError):
                pass                               # older kernels: faults map them later
    return total


def drop_cache(store):
    """``store.drop_cache()``: drop the shards' clean cached pages."""
    for p in range(store.num_shards):
        fd = os.open(store.path / shard_file_name(p), os.O_RDONLY)
        try:
            drop_cached_pages(fd)
        finally:
            os.close(fd)
