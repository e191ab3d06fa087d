"""Kernels of the head's exact full-vocabulary passes: top-k and log-sum-exp (private).

One pass over a shard's rows in chunks of ``C`` classes: ``Z = X @ W_chunk^T + b_chunk`` by
BLAS (single-threaded, one chunk per task), then every score is offered to its example's
top-k heap and folded into its running log-sum-exp. Heaps and running sums are private to a
thread (indexed by ``numba.get_thread_id()``) and merged afterwards, so no (batch, classes)
matrix ever exists and no two threads write the same memory.

Order of results: higher score first, ties broken by the smaller class id, so the top-k is
the same whatever the number of threads or the chunking. Each task runs with subnormals
flushed to zero (``_fpenv``), as TensorFlow's kernels do.
"""
import numba
import numpy as np
from numba import njit, prange

from ._fpenv import ftz_enter, ftz_exit
from ._rng import PRANGE_ONLY
from ._vmath import sum_exp_shifted


@njit(cache=True, inline="always")
def _worse(s1, i1, s2, i2):
    """True when (s1, i1) ranks below (s2, i2): lower score, or equal score and larger id."""
    return s1 < s2 or (s1 == s2 and i1 > i2)


@njit(parallel=PRANGE_ONLY, cache=True)
def scan_shard(x, w, b, num_shards, shard, offset, is_div, chunk, heap_s, heap_i, run_m, run_s,
               want_lse):
    """Offer every class of one shard to the per-thread heaps and running log-sum-exps.

    x : (B, D) inputs; w : (n, D) shard rows; b : (n,) bias rows of the same shard.
    Global id of row r: ``offset + r`` ("div" or a single shard), ``r * num_shards + shard``
    ("mod"). heap_s/heap_i : (threads, B, k) min-heaps; run_m/run_s : (threads, B) float64
    running max and sum of exp(z - max). Arithmetic in x's dtype, sums in float64.
    """
    B = x.shape[0]
    n = w.shape[0]
    k = heap_s.shape[2]
    nchunks = (n + chunk - 1) // chunk
    for c in prange(nchunks):
        fpenv = ftz_enter()
        t = numba.get_thread_id()
        r0 = c * chunk
        r1 = min(n, r0 + chunk)
        z = np.dot(x, w[r0:r1].T)  # (B, r1 - r0)
        nc = r1 - r0
        d = np.empty(nc)
        e = np.empty(nc)
        scratch = np.empty(nc)
        for i in range(B):
            zi = z[i]
            hs = heap_s[t, i]
            hi = heap_i[t, i]
            thr_s = hs[0]
            thr_i = hi[0]
            zmax = -np.inf
            for j in range(nc):
                v = zi[j] + b[r0 + j]
                zi[j] = v
                zmax = max(zmax, v)
            for j in range(nc):
                v = zi[j]
                if v >= thr_s:
                    r = r0 + j
                    gid = offset + r if is_div else r * num_shards + shard
                    if _worse(thr_s, thr_i, v, gid):
                        _sift_down(hs, hi, k, v, gid)
                        thr_s = hs[0]
                        thr_i = hi[0]
            if want_lse:
                m = max(run_m[t, i], np.float64(zmax))
                acc = sum_exp_shifted(zi[:nc], m, d, e, scratch)
                run_s[t, i] = run_s[t, i] * np.exp(run_m[t, i] - m) + acc
                run_m[t, i] = m
        ftz_exit(fpenv)


@njit(cache=True)
def merge_heaps(heap_s, heap_i, out_s, out_i):
    """Merge the threads' heaps into ``out`` (B, k), best first (score desc, id asc)."""
    T, B, k = heap_s.shape
    for i in range(B):
        hs = heap_s[0, i].copy()
        hi = heap_i[0, i].copy()
        for t in range(1, T):
            for j in range(k):
                s = heap_s[t, i, j]
                g = heap_i[t, i, j]
                if _worse(hs[0], hi[0], s, g):
                    _sift_down(hs, hi, k, s, g)
        # heap-sort: pop the worst to the end
        for j in range(k - 1, -1, -1):
            out_s[i, j] = hs[0]
            out_i[i, j] = hi[0]
            # move the last live element to the root and sift it down over j elements
            if j > 0:
                s = hs[j]
                g = hi[j]
                _sift_down(hs, hi, j, s, g)


@njit(cache=True)
def _sift_down(hs, hi, size, s, i):
    pos = 0
    while True:
        c = 2 * pos + 1
        if c >= size:
            break
        if c + 1 < size and _worse(hs[c + 1], hi[c + 1], hs[c], hi[c]):
            c += 1
        if _worse(hs[c], hi[c], s, i):
            hs[pos] = hs[c]
            hi[pos] = hi[c]
            pos = c
        else:
            break
    hs[pos] = s
    hi[pos] = i


@njit(cache=True)
def merge_lse(run_m, run_s, out):
    """``out[i] = log(sum_t run_s[t, i] * exp(run_m[t, i]))`` in float64."""
    T, B = run_m.shape
    for i in range(B):
        m = -np.inf
        for t in range(T):
            m = max(m, run_m[t, i])
        acc = 0.0
        for t in range(T):
            if run_s[t, i] > 0.0:
                acc += run_s[t, i] * np.exp(run_m[t, i] - m)
        out[i] = m + np.log(acc)
