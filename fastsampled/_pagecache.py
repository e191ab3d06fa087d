"""Page-cache management of memory-mapped shards (private): access-pattern advice, prefetch
hints, warming a prefix of the rows, and dropping clean pages.

A store larger than RAM is read through the operating system's page cache; these functions
decide how the kernel reads it (``madvise``, ``posix_fadvise``) and never change a row.
:class:`PageCacheMethods`, the mixin that gives ``ShardedMatrix`` its methods ``advise`` /
``scan`` / ``prefetch`` / ``warm`` / ``drop_cache``, calls them.
"""
import contextlib
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


class PageCacheMethods:
    """The page-cache part of :class:`~fastsampled.sharding.ShardedMatrix` (a mixin): the
    methods ``advise``, ``scan``, ``prefetch``, ``warm`` and ``drop_cache``, which call this
    module's functions.

    It relies on the store's attributes ``path``, ``mode``, ``closed``, ``num_rows``,
    ``dim``, ``dtype``, ``num_shards``, ``partition_strategy``, ``shard_sizes`` and
    ``shards``, and on its ``_check_open()``; it keeps the current advice in ``_advice``.
    """

    def advise(self, pattern):
        """Tell the kernel how the shards will be read: ``"random"``, ``"sequential"`` or
        ``"normal"`` (``madvise``; a no-op where unsupported).

        Stores open with ``"random"``: a training step touches a few thousand scattered rows,
        and the kernel's default read-around would fetch megabytes of neighbours for each page
        fault, far more than the step needs (docs/performance.md#memory-mapped-stores).
        Full scans (``predict``, ``evaluate``, ``verify(values=True)``) switch to
        ``"sequential"`` and back; :meth:`scan` does it for a ``with`` block.

        Parameters
        ----------
        pattern : {"random", "sequential", "normal"}
            The expected access pattern of every shard.
        """
        advise(self, pattern)
        self._advice = pattern

    @contextlib.contextmanager
    def scan(self):
        """``with store.scan(): ...`` reads the shards sequentially, then restores the advice
        (and, for a writable store, drops the clean pages the scan read: see
        :meth:`drop_cache`)."""
        before = getattr(self, "_advice", "random")
        self.advise("sequential")
        try:
            yield self
        finally:
            if not self.closed:
                self.advise(before)
                if self.mode == "r+":
                    self.drop_cache()

    def prefetch(self, ids):
        """Start reading the pages that hold rows ``ids`` (``madvise(MADV_WILLNEED)``), so
        that their page faults overlap instead of waiting for the disk one by one.

        For stores larger than RAM: a training step's rows that are not cached otherwise fault
        in serially, one disk latency each, hundreds of them a step with Zipf-distributed
        labels (docs/performance.md#memory-mapped-stores). Costs a few microseconds per run
        of adjacent pages when they are cached already. ``ids`` must be valid row ids (not
        checked again here).

        Parameters
        ----------
        ids : array_like of int
            Global row ids in ``[0, num_rows)``, any shape; duplicates are fine.
        """
        self._check_open()
        prefetch(self, ids)

    def warm(self, num_rows=None):
        """Bring rows ``0 .. num_rows - 1`` into the page cache and map them, so that training
        on a store larger than RAM starts with its most frequent rows resident.

        Ids sorted by decreasing frequency (what the log-uniform sampler assumes) put the rows
        a step touches most at the start of the id range; under either strategy they are a
        prefix of every shard. The prefix is read with large sequential reads through a file
        descriptor advised ``POSIX_FADV_RANDOM``, which keeps the page cache in 4 KiB pages
        (sequential read-ahead would build large folios, whose writeback turns every row
        update into a write of the whole folio; see :meth:`drop_cache`); then the
        process's page tables are filled (``MADV_POPULATE_READ``, Linux 5.14+), so the first
        steps take no page fault on those rows.

        Parameters
        ----------
        num_rows : int, optional
            Rows to warm (default all). Rows beyond RAM are pointless: the kernel evicts the
            oldest pages first.

        Returns
        -------
        int
            Bytes read.
        """
        self._check_open()
        return warm(self, num_rows)

    def drop_cache(self):
        """Drop the shards' clean pages from the kernel's page cache (dirty pages stay).

        Why: recent kernels keep file pages that were written or read ahead sequentially in
        large folios (up to megabytes). Training then dirties a few bytes of such a folio
        per row and the whole folio is written back, so a small row update costs a large
        write and a step's writeback takes far longer than the step
        (docs/performance.md#memory-mapped-stores). Pages faulted
        in afterwards under ``advise("random")`` are single 4 KB pages. :meth:`create` drops
        the pages it wrote; full scans of a writable store drop what they read.
        """
        self._check_open()
        drop_cache(self)
