"""Memory the kernels use: large arrays on transparent huge pages (private).

A training step reads and writes ~10^3 rows at random places of a weight matrix (and of its
optimizer slots). With 4 KiB pages every such row costs a TLB miss and a page-table walk that
itself misses the caches once the matrix is a few GB; with 2 MiB pages the TLB covers it, and
a gather of random rows runs several times faster (docs/performance.md#huge-pages).
Linux's default THP mode here is "madvise", so ordinary numpy allocations do not get huge
pages; arrays made by :func:`empty` and :func:`full` ask for them (``MADV_HUGEPAGE``) when
they are large. Elsewhere (no THP, non-Linux) they are ordinary arrays.
"""
import mmap

import numpy as np

from ._store_kernels import touch_pages

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
    """:func:`empty` filled with ``fill``.

    A fresh mapping is already zero; for ``fill == 0`` its pages are only faulted in (one
    write a page, in parallel), so that a training step does not pay for them later: left
    lazy, a large optimizer slot faults its 2 MiB pages in during the first few hundred steps
    of a head, and those steps run many times slower, most of all on virtual machines where
    first touching guest memory is slow (docs/performance.md#huge-pages). The
    memory is resident from the start, as any other framework's optimizer state is.
    """
    arr, zeroed = _alloc(shape, dtype)
    if fill != 0 or not zeroed:
        arr.fill(fill)
    else:
        touch_pages(arr.reshape(-1).view(np.uint8), mmap.PAGESIZE)
    return arr


def available_memory():
    """Bytes the kernel reports as available for new allocations without swapping.

    Used by :meth:`SampledSoftmaxHead.warm` to size what it makes resident, and by the
    benchmarks in ``bench/`` to skip sizes that would not fit.

    Returns
    -------
    int
        ``MemAvailable`` of ``/proc/meminfo`` in bytes; 0 where it is unknown (not Linux,
        or an old kernel).
    """
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
