"""Large in-RAM arrays on transparent huge pages (private).

A training step reads and writes ~10^3 rows at random places of a weight matrix (and of its
optimizer slots). With 4 KiB pages every such row costs a TLB miss and a page-table walk that
itself misses the caches once the matrix is a few GB; with 2 MiB pages the TLB covers it.
Seen on the reference machine: 1088 random rows of a 10^7 x 128 float32 matrix gathered in
159 us on 4 KiB pages, 63 us on huge pages. Linux's default THP mode here is "madvise", so
ordinary numpy allocations do not get huge pages; arrays made by :func:`empty` and
:func:`full` ask for them (``MADV_HUGEPAGE``) when they are large. Elsewhere (no THP,
non-Linux) they are ordinary arrays.
"""
import mmap

import numpy as np

HUGE_MIN_BYTES = 32 << 20   # smaller arrays: plain np.empty (a partly used 2 MiB page wastes RAM)


def _alloc(shape, dtype):
    """``(array, zeroed)``: the array, and whether its memory is known to be zero."""
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in (shape if isinstance(shape, tuple) else (shape,)))
    count = int(np.prod(shape, dtype=np.int64))
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if count * dtype.itemsize < HUGE_MIN_BYTES or advice is None:
        return np.empty(shape, dtype), False
    buf = mmap.mmap(-1, count * dtype.itemsize, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        buf.madvise(advice)
    except OSError:            # THP compiled out or disabled: ordinary pages
        pass
    return np.frombuffer(buf, dtype, count).reshape(shape), True


def empty(shape, dtype):
    """Uninitialised C-contiguous array; from a huge-page-advised anonymous mapping when it
    holds at least ``HUGE_MIN_BYTES`` (the mapping lives as long as the array)."""
    return _alloc(shape, dtype)[0]


def full(shape, fill, dtype):
    """:func:`empty` filled with ``fill`` (a fresh mapping is already zero: no pass for 0)."""
    arr, zeroed = _alloc(shape, dtype)
    if fill != 0 or not zeroed:
        arr.fill(fill)
    return arr
