"""Alias-method kernels (private): O(V) build, O(1) parallel draws.

The table is one uint64 per class: the high 32 bits hold the acceptance threshold of the
column (probability * 2**32, saturated at 2**32 - 1), the low 32 bits the alias. A draw reads
one 8-byte entry, so it costs one cache miss, which is what bounds draws over 10^7+ classes.
A saturated column always has itself as alias, so saturation never changes the distribution;
a zero-weight class has threshold 0 and is never returned.
"""
import numpy as np
from numba import njit, prange

from ._jitcache import guard_caches
from ._rng import PRANGE_ONLY, pair, uniform01

_BLOCK = 1 << 16  # fixed block size: sums do not depend on the number of threads
_S32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_FULL = np.uint64(0xFFFFFFFF)
_TWO32 = 4294967296.0


@njit(parallel=PRANGE_ONLY, cache=True)
def weights_summary(w):
    """Validate and sum a weight vector in one parallel pass.

    Returns ``(total, n_positive, first_negative, first_nonfinite)``; the indices are -1 when
    there is none. ``total`` is summed in float64 over fixed blocks, so it is the same for any
    thread count.
    """
    n = w.size
    nb = (n + _BLOCK - 1) // _BLOCK
    sums = np.zeros(nb, np.float64)
    npos = np.zeros(nb, np.int64)
    neg = np.full(nb, -1, np.int64)
    bad = np.full(nb, -1, np.int64)
    for b in prange(nb):
        lo = b * _BLOCK
        hi = min(n, lo + _BLOCK)
        s = 0.0
        c = 0
        for i in range(lo, hi):
            v = np.float64(w[i])
            if not np.isfinite(v):
                if bad[b] < 0:
                    bad[b] = i
            elif v < 0.0:
                if neg[b] < 0:
                    neg[b] = i
            elif v > 0.0:
                s += v
                c += 1
        sums[b] = s
        npos[b] = c
    total = 0.0
    count = 0
    first_neg = -1
    first_bad = -1
    for b in range(nb):
        total += sums[b]
        count += npos[b]
        if first_neg < 0 and neg[b] >= 0:
            first_neg = neg[b]
        if first_bad < 0 and bad[b] >= 0:
            first_bad = bad[b]
    return total, count, first_neg, first_bad


@njit(parallel=PRANGE_ONLY, cache=True)
def build_alias(w, total, p, table):
    """Build the packed alias table of ``w`` into ``table`` (uint64, same length).

    ``w`` is non-negative and finite with sum ``total`` > 0; ``p`` is float64 scratch of the
    same length. Vose's method as a stack-free sweep: one scanner walks forward over small
    columns (scaled weight < 1), another over large ones; a large column that drops below 1
    behind the small scanner is filled at once. Scaling and initialisation run in parallel,
    the sweep is one sequential pass over memory. The caller allocates ``table`` and ``p``
    with numpy, which asks the kernel for huge pages: that halves the TLB misses of draws.
    """
    n = w.size
    scale = n / total
    for i in prange(n):
        p[i] = np.float64(w[i]) * scale
        table[i] = (_FULL << _S32) | np.uint64(i)

    s = 0
    while s < n and p[s] >= 1.0:
        s += 1
    big = 0
    while big < n and p[big] < 1.0:
        big += 1
    last_big = big
    cur = s
    while cur < n and big < n:
        pc = p[cur]
        thr = pc * _TWO32
        t = np.uint64(0)
        if thr >= 4294967295.0:
            t = _FULL
        elif pc > 0.0:
            t = np.uint64(max(1.0, np.floor(thr + 0.5)))
        table[cur] = (t << _S32) | np.uint64(big)
        last_big = big
        p[big] = (p[big] + pc) - 1.0
        if p[big] < 1.0:
            old = big
            big += 1
            while big < n and p[big] < 1.0:
                big += 1
            if old < s:
                cur = old  # the small scanner is past it: fill it now
                continue
        s += 1
        while s < n and p[s] >= 1.0:
            s += 1
        cur = s
    # Columns never filled keep (full, self). Large leftovers are exact up to rounding. Small
    # leftovers (the large columns ran out first) have scaled weight 1 up to float error too,
    # but a zero-weight one must still never be drawn: send it to a positive class.
    if big >= n:
        while cur < n:
            if w[cur] == 0:
                table[cur] = np.uint64(last_big)
            # cur is either the scanner's position or a back-filled column behind it (then
            # the scanner's position is already filled): either way the scanner moves on.
            s += 1
            while s < n and p[s] >= 1.0:
                s += 1
            cur = s


@njit(cache=True, inline="always")
def alias_pick(table, nf, r1, r2):
    """One draw from the packed table given two random words."""
    n = table.size
    j = np.int64(uniform01(r1) * nf)
    if j >= n:
        j = n - 1
    e = table[j]
    if (r2 >> _S32) < (e >> _S32):
        return j
    return np.int64(e & _LOW32)


_CHUNK = 256


@njit(parallel=PRANGE_ONLY, cache=True)
def alias_draw(table, key, start, out):
    """Fill ``out`` with draws ``start .. start+len(out)-1`` of stream ``key``.

    Two passes per chunk of 256 draws: first all column indices (pure arithmetic), then all
    table reads. The second loop is only loads, so the CPU keeps many cache misses in flight,
    which one fused loop over large tables does not (docs/performance.md#alias-draws).
    """
    n = table.size
    nf = np.float64(n)
    nch = (out.size + _CHUNK - 1) // _CHUNK
    for c in prange(nch):
        lo = c * _CHUNK
        hi = min(out.size, lo + _CHUNK)
        cols = np.empty(_CHUNK, np.int64)
        coin = np.empty(_CHUNK, np.uint64)
        for i in range(lo, hi):
            r1, r2 = pair(key, start + i)
            j = np.int64(uniform01(r1) * nf)
            cols[i - lo] = min(j, n - 1)
            coin[i - lo] = r2 >> _S32
        for i in range(lo, hi):
            j = cols[i - lo]
            e = table[j]
            if coin[i - lo] < (e >> _S32):
                out[i] = j
            else:
                out[i] = np.int64(e & _LOW32)


@njit(parallel=PRANGE_ONLY, cache=True)
def alias_column_probs(table, ids, out):
    """Probability of each id implied by the table (O(V) per call; used by tests)."""
    n = table.size
    mass = np.zeros(n, np.float64)
    for j in range(n):
        e = table[j]
        acc = np.float64(e >> _S32) / _TWO32
        if (e >> _S32) == _FULL:
            acc = 1.0
        mass[j] += acc
        mass[np.int64(e & _LOW32)] += 1.0 - acc
    for i in prange(ids.size):
        out[i] = mass[ids[i]] / n


guard_caches(globals())     # cache saves take a lock: _jitcache.py
