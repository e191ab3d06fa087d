"""Content fingerprint of large arrays (private), for caching built tables by value."""
import numpy as np
from numba import njit, prange

from ._jitcache import guard_caches
from ._rng import PRANGE_ONLY, mix64

_BLOCK = 1 << 16


@njit(parallel=PRANGE_ONLY, cache=True)
def _fingerprint(data):
    n = data.size
    nb = (n + _BLOCK - 1) // _BLOCK
    parts = np.empty(nb, np.uint64)
    for b in prange(nb):
        h = np.uint64(b) * np.uint64(0x9E3779B97F4A7C15)
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            h = mix64(h ^ np.uint64(data[i]))
        parts[b] = h
    h = np.uint64(n)
    for b in range(nb):
        h = mix64(h ^ parts[b])
    return h


def fingerprint(data):
    """64-bit hash of a uint8 array's bytes (not cryptographic; one parallel pass over them,
    see docs/performance.md#small-loops-and-argument-checks)."""
    u8 = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    pad = (-u8.size) % 8
    if pad:
        u8 = np.concatenate([u8, np.zeros(pad, np.uint8)])
    return int(_fingerprint(u8.view(np.uint64)))


guard_caches(globals())     # cache saves take a lock: _jitcache.py
