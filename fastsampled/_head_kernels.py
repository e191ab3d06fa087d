"""Kernels of the head's exact full-vocabulary passes: top-k and log-sum-exp (private).

One pass over a shard's rows in chunks of ``C`` classes, one chunk per task: the scores
``Z = X @ W_chunk^T + b_chunk`` are computed by this module's own register-tiled product
(:func:`_tile`; no BLAS is called, so none runs inside the parallel region), then every
score is offered to its example's top-k heap and folded into its running log-sum-exp. Heaps,
running sums and score buffers are private to a thread (indexed by ``numba.get_thread_id()``)
and merged afterwards, so no (batch, classes) matrix ever exists and no two threads write the
same memory.

Every score ``x_i . w_j`` is computed by the same instructions wherever example ``i`` sits in
its block and class ``j`` in its chunk (the inputs are padded to whole tiles), so a score
does not depend on the batch, the chunking or the shard layout. Order of results: higher
score first, ties broken by the smaller class id, so the top-k is the same whatever the
number of threads or the chunking. Each task runs with subnormals flushed to zero
(``_fpenv``), as TensorFlow's kernels do.
"""
import numba
import numpy as np
from numba import njit, prange

from ._fpenv import ftz_enter, ftz_exit
from ._jitcache import guard_caches
from ._rng import PRANGE_ONLY
from ._vmath import sum_exp_shifted

MR = 4    # examples per register tile of the score product
NR = 4    # classes per register tile
IB = 32   # examples per sub-block: their rows stay in L1 while tiles of classes pass over
          # them (docs/performance.md#the-exact-scan)


@njit(cache=True, inline="always")
def _worse(s1, i1, s2, i2):
    """True when (s1, i1) ranks below (s2, i2): lower score, or equal score and larger id."""
    return s1 < s2 or (s1 == s2 and i1 > i2)


@njit(cache=True, fastmath={"reassoc", "contract"})
def _tile(x, i, w0, w1, w2, w3, c0, c1, c2, c3, z, j, zero):
    """``z[i:i+4, j:j+4] = x[i:i+4] . (w0, w1, w2, w3) + (c0, c1, c2, c3)``: 16 dot products
    over the rows' length, each vectorised along it (``reassoc`` lets the reductions be split
    into lanes), every row loaded once for four products; then the biases ``c`` are added."""
    x0 = x[i]
    x1 = x[i + 1]
    x2 = x[i + 2]
    x3 = x[i + 3]
    a00 = a01 = a02 = a03 = zero
    a10 = a11 = a12 = a13 = zero
    a20 = a21 = a22 = a23 = zero
    a30 = a31 = a32 = a33 = zero
    for d in range(x.shape[1]):
        v0 = w0[d]
        v1 = w1[d]
        v2 = w2[d]
        v3 = w3[d]
        u = x0[d]
        a00 += u * v0
        a01 += u * v1
        a02 += u * v2
        a03 += u * v3
        u = x1[d]
        a10 += u * v0
        a11 += u * v1
        a12 += u * v2
        a13 += u * v3
        u = x2[d]
        a20 += u * v0
        a21 += u * v1
        a22 += u * v2
        a23 += u * v3
        u = x3[d]
        a30 += u * v0
        a31 += u * v1
        a32 += u * v2
        a33 += u * v3
    z[i, j] = a00 + c0
    z[i, j + 1] = a01 + c1
    z[i, j + 2] = a02 + c2
    z[i, j + 3] = a03 + c3
    z[i + 1, j] = a10 + c0
    z[i + 1, j + 1] = a11 + c1
    z[i + 1, j + 2] = a12 + c2
    z[i + 1, j + 3] = a13 + c3
    z[i + 2, j] = a20 + c0
    z[i + 2, j + 1] = a21 + c1
    z[i + 2, j + 2] = a22 + c2
    z[i + 2, j + 3] = a23 + c3
    z[i + 3, j] = a30 + c0
    z[i + 3, j + 1] = a31 + c1
    z[i + 3, j + 2] = a32 + c2
    z[i + 3, j + 3] = a33 + c3


@njit(cache=True)
def _scores(x, w, b, r0, r1, z, wpad, zero):
    """``z[:, :r1 - r0] = x @ w[r0:r1].T + b[r0:r1]`` by tiles. ``x`` has a multiple of
    ``MR`` rows; ``z`` has room for a multiple of ``NR`` columns; ``wpad`` (NR, D) takes the
    last partial tile of classes, padded with zero rows."""
    nbp = x.shape[0]
    nc = r1 - r0
    nfull = nc - nc % NR
    bpad = np.zeros(NR, z.dtype)
    if nfull < nc:
        for q in range(NR):
            if nfull + q < nc:
                wpad[q] = w[r0 + nfull + q]
                bpad[q] = b[r0 + nfull + q]
            else:
                wpad[q] = zero
    for i0 in range(0, nbp, IB):
        i1 = min(nbp, i0 + IB)
        for j in range(0, nfull, NR):
            w0 = w[r0 + j]
            w1 = w[r0 + j + 1]
            w2 = w[r0 + j + 2]
            w3 = w[r0 + j + 3]
            c0 = b[r0 + j]
            c1 = b[r0 + j + 1]
            c2 = b[r0 + j + 2]
            c3 = b[r0 + j + 3]
            for i in range(i0, i1, MR):
                _tile(x, i, w0, w1, w2, w3, c0, c1, c2, c3, z, j, zero)
        if nfull < nc:
            for i in range(i0, i1, MR):
                _tile(x, i, wpad[0], wpad[1], wpad[2], wpad[3], bpad[0], bpad[1], bpad[2],
                      bpad[3], z, nfull, zero)


@njit(parallel=PRANGE_ONLY, cache=True)
def scan_shard(x, B, w, b, num_shards, shard, offset, is_div, chunk, zbuf, wpad, zero, heap_s,
               heap_i, run_m, run_s, want_lse):
    """Offer every class of one shard to the per-thread heaps and running log-sum-exps.

    x : (Bp, D) inputs, zero rows after the first ``B`` up to a multiple of ``MR``;
    w : (n, D) shard rows; b : (n,) bias rows of the same shard. Global id of row r:
    ``offset + r`` ("div" or a single shard), ``r * num_shards + shard`` ("mod").
    zbuf : (threads, Bp, chunk) and wpad : (threads, NR, D) scratch in x's dtype, ``chunk``
    a multiple of ``NR``; zero : 0 in x's dtype. heap_s/heap_i : (threads, B, k) min-heaps;
    run_m/run_s : (threads, B) float64 running max and sum of exp(z - max). Arithmetic in
    x's dtype, sums in float64.
    """
    n = w.shape[0]
    k = heap_s.shape[2]
    nchunks = (n + chunk - 1) // chunk
    for c in prange(nchunks):
        fpenv = ftz_enter()
        t = numba.get_thread_id()
        r0 = c * chunk
        r1 = min(n, r0 + chunk)
        z = zbuf[t]
        _scores(x, w, b, r0, r1, z, wpad[t], zero)
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
                zmax = -np.inf
                for j in range(nc):
                    zmax = max(zmax, zi[j])
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


guard_caches(globals())     # cache saves take a lock: _jitcache.py
