"""Kernels behind ``ShardedMatrix`` (private): parallel initialisation, row scatter and the
non-finite scan.

Initial values are a pure function of ``(seed, global id, column)``: row ``g`` draws from its
own counter stream ``stream_key(seed, g)``, column ``c`` uses counter ``c`` (uniform) or the
Box-Muller pair ``c // 2`` (normal). Which shard, chunk or thread writes a row therefore
changes nothing, so one seed gives one logical matrix for every shard layout, partition
strategy and ``NUMBA_NUM_THREADS``.

Nothing here validates: the public layer (``sharding.py``) checks every argument first.
"""
import numpy as np
from numba import njit, prange

from ._jitcache import guard_caches
from ._rng import PRANGE_ONLY, bits, pair, stream_key, uniform01

INIT_ZEROS = 0
INIT_UNIFORM = 1
INIT_NORMAL = 2
INIT_CONSTANT = 3

_TWO_PI = 2.0 * np.pi


@njit(cache=True, inline="always")
def _normal_pair(key, k):
    """Two independent N(0, 1) draws (Box-Muller) from pair ``k`` of stream ``key``."""
    w1, w2 = pair(key, k)
    u1 = 1.0 - uniform01(w1)  # (0, 1]: log is finite
    u2 = uniform01(w2)
    rad = np.sqrt(-2.0 * np.log(u1))
    theta = _TWO_PI * u2
    return rad * np.cos(theta), rad * np.sin(theta)


@njit(parallel=PRANGE_ONLY, cache=True)
def init_rows(out, stride, offset, kind, a, seed, chunk_rows):
    """Fill ``out`` (n, d) in place; row ``i`` is global id ``i * stride + offset``.

    ``kind``: INIT_UNIFORM (U(-a, a)), INIT_NORMAL (N(0, a)), INIT_CONSTANT (a) or
    INIT_ZEROS. ``seed`` is a uint64. Work is split into chunks of ``chunk_rows`` rows (one
    prange task each, a few MiB, so each task streams through its own part of the file).
    """
    n = out.shape[0]
    d = out.shape[1]
    num_chunks = (n + chunk_rows - 1) // chunk_rows
    for ch in prange(num_chunks):
        start = ch * chunk_rows
        stop = min(n, start + chunk_rows)
        for i in range(start, stop):
            if kind == INIT_CONSTANT or kind == INIT_ZEROS:
                v = a if kind == INIT_CONSTANT else 0.0
                for c in range(d):
                    out[i, c] = v
                continue
            key = stream_key(seed, np.uint64(i * stride + offset))
            if kind == INIT_UNIFORM:
                for c in range(d):
                    out[i, c] = a * (2.0 * uniform01(bits(key, np.uint64(c))) - 1.0)
            else:
                for c in range(0, d, 2):
                    z0, z1 = _normal_pair(key, c // 2)
                    out[i, c] = a * z0
                    if c + 1 < d:
                        out[i, c + 1] = a * z1


@njit(parallel=PRANGE_ONLY, cache=True)
def first_nonfinite_row(a, chunk_rows):
    """Index of the first row of ``a`` (n, d) holding a NaN or an infinity, or -1.

    Each chunk of ``chunk_rows`` rows records its own first bad row; the smallest wins, so
    the answer does not depend on the thread count.
    """
    n = a.shape[0]
    d = a.shape[1]
    num_chunks = (n + chunk_rows - 1) // chunk_rows
    first = np.full(num_chunks, -1, np.int64)
    for ch in prange(num_chunks):
        start = ch * chunk_rows
        stop = min(n, start + chunk_rows)
        for i in range(start, stop):
            bad = False
            for c in range(d):
                if not np.isfinite(a[i, c]):
                    bad = True
                    break
            if bad:
                first[ch] = i
                break
    for ch in range(num_chunks):
        if first[ch] >= 0:
            return first[ch]
    return -1


@njit(parallel=PRANGE_ONLY, cache=True)
def touch_pages(buf, page):
    """Write 0 to one byte of every ``page`` bytes of ``buf`` (uint8, known to be zero), in
    parallel: faults a fresh mapping in now instead of during the training steps."""
    n = (buf.size + page - 1) // page
    for i in prange(n):
        buf[i * page] = 0


@njit(cache=True)
def take_unsaved(ids, saved, out):
    """Copy to ``out`` the ids of ``ids`` whose bit in ``saved`` (uint8 bitmap) is clear and
    set that bit; return how many were copied. Repeated ids are taken once."""
    n = 0
    for i in range(ids.shape[0]):
        g = ids[i]
        byte = g >> 3
        bit = np.uint8(1 << (g & 7))
        if saved[byte] & bit == 0:
            saved[byte] |= bit
            out[n] = g
            n += 1
    return n


_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def _mix(h):
    h ^= h >> np.uint64(30)
    h *= _M2
    h ^= h >> np.uint64(27)
    h *= _M3
    h ^= h >> np.uint64(31)
    return h


@njit(cache=True)
def checksum64(words, tail):
    """A 64-bit checksum of ``words`` (uint64) followed by ``tail`` (uint8, < 8 bytes).

    Four independent multiply-xor lanes (so the loop is not one long dependency chain),
    folded with a splitmix finaliser. Detects torn or altered journal blocks; not
    cryptographic.
    """
    n = words.shape[0]
    h0 = _M1 ^ np.uint64(n)
    h1 = _M2 ^ np.uint64(tail.shape[0])
    h2 = _M3
    h3 = _M1 ^ _M2
    i = 0
    while i + 4 <= n:
        h0 = (h0 ^ words[i]) * _M2
        h1 = (h1 ^ words[i + 1]) * _M3
        h2 = (h2 ^ words[i + 2]) * _M2
        h3 = (h3 ^ words[i + 3]) * _M3
        i += 4
    while i < n:
        h0 = (h0 ^ words[i]) * _M3
        i += 1
    for j in range(tail.shape[0]):
        h1 = (h1 ^ np.uint64(tail[j])) * _M2
    return _mix(h0 ^ _mix(h1 ^ _mix(h2 ^ _mix(h3))))


guard_caches(globals())     # cache saves take a lock: _jitcache.py
