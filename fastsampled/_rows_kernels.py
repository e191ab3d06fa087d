"""Row gather / scatter and TensorFlow's id -> shard map (private kernels).

Parameter rows (weights, biases, optimizer slots) live in one array or in several shards
(docs/architecture.md#parameter-rows); these kernels move the rows a step needs between the
shards and contiguous buffers. Every index is trusted: the callers range-check ids once, at
the public boundary.
"""
import numpy as np
from numba import njit, prange

from ._jitcache import guard_caches
from ._rng import PRANGE_ONLY


@njit(parallel=PRANGE_ONLY, cache=True)
def gather_rows(src, idx, pos, out):
    """``out[pos[t]] = src[idx[t]]`` (cast to out's dtype), in parallel."""
    d = out.shape[1]
    for t in prange(idx.size):
        r = idx[t]
        o = pos[t]
        for c in range(d):
            out[o, c] = src[r, c]


@njit(parallel=PRANGE_ONLY, cache=True)
def scatter_rows(src, pos, idx, out):
    """``out[idx[t]] = src[pos[t]]`` (cast to out's dtype), in parallel; ``idx`` distinct."""
    d = out.shape[1]
    for t in prange(idx.size):
        r = idx[t]
        o = pos[t]
        for c in range(d):
            out[r, c] = src[o, c]


@njit(parallel=PRANGE_ONLY, cache=True)
def gather_vec(src, idx, pos, out):
    """``out[pos[t]] = src[idx[t]]`` of 1-D arrays (cast to out's dtype), in parallel."""
    for t in prange(idx.size):
        out[pos[t]] = src[idx[t]]


@njit(parallel=PRANGE_ONLY, cache=True)
def shard_map(ids, num_shards, is_div, q, r):
    """TensorFlow's id -> (shard, row) map (docs/semantics.md#sharded-weights); ids already
    validated."""
    shard = np.empty(ids.size, np.int64)
    row = np.empty(ids.size, np.int64)
    for t in prange(ids.size):
        i = ids[t]
        if not is_div:
            shard[t] = i % num_shards
            row[t] = i // num_shards
        else:
            if q == 0:
                p = i // (q + 1)
            else:
                p = max(i // (q + 1), (i - r) // q)
            shard[t] = p
            if p < r:
                row[t] = i % (q + 1)
            else:
                row[t] = (i - r) % q
    return shard, row


guard_caches(globals())     # cache saves take a lock: _jitcache.py
