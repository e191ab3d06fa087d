"""Memory the kernels use: large arrays on transparent huge pages, and malloc thresholds
that keep per-step temporaries mapped (private).

A training step reads and writes ~10^3 rows at random places of a weight matrix (and of its
optimizer slots). With 4 KiB pages every such row costs a TLB miss and a page-table walk that
itself misses the caches once the matrix is a few GB; with 2 MiB pages the TLB covers it, and
a gather of random rows runs several times faster (docs/performance.md#huge-pages-and-malloc).
Linux's default THP mode here is "madvise", so ordinary numpy allocations do not get huge
pages; arrays made by :func:`empty` and :func:`full` ask for them (``MADV_HUGEPAGE``) when
they are large. Elsewhere (no THP, non-Linux) they are ordinary arrays.
"""
import ctypes
import mmap
import os
import platform
import sys

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
    """:func:`empty` filled with ``fill``.

    A fresh mapping is already zero; for ``fill == 0`` its pages are only faulted in (one
    write a page, in parallel), so that a training step does not pay for them later: left
    lazy, a large optimizer slot faults its 2 MiB pages in during the first few hundred steps
    of a head, and those steps run many times slower, most of all on virtual machines where
    first touching guest memory is slow (docs/performance.md#huge-pages-and-malloc). The
    memory is resident from the start, as any other framework's optimizer state is.
    """
    arr, zeroed = _alloc(shape, dtype)
    if fill != 0 or not zeroed:
        arr.fill(fill)
    else:
        from ._store_kernels import touch_pages
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


# glibc mallopt parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20     # glibc's largest allowed value (64-bit)
TRIM_THRESHOLD = 256 << 20
_tuned = None


def tune_malloc():
    """Keep a training step's temporaries in the heap between steps (glibc only).

    A step allocates and frees the same few MB of temporaries every call (gathered rows,
    logits, partial sums). glibc's defaults hand chunks over 128 KiB back to the kernel, or
    trim the heap once 2x the last such chunk is free at its top, so the next step faults
    every page in again, a sizeable share of a step's time with a large ``num_sampled``
    (docs/performance.md#huge-pages-and-malloc). With the mmap threshold at 32 MiB and
    the trim threshold at 256 MiB they stay. The cost: up to 256 MiB of freed memory kept by
    the process. Called once on import; left alone when ``FASTSAMPLED_KEEP_MALLOC=1`` or
    when ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` are set (the user's choice
    wins). Returns whether the thresholds were set.
    """
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    if (os.environ.get("FASTSAMPLED_KEEP_MALLOC", "") not in ("", "0")
            or "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ):
        return _tuned
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return _tuned
    try:
        libc = ctypes.CDLL(None)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    except (OSError, AttributeError):
        ok = False
    _tuned = ok
    return _tuned
