"""Candidate-sampler kernels (private): draws, probabilities, unique rejection, counts.

Every draw kernel has the shape ``draw(params..., key, start, out)`` and fills ``out`` with
draws ``start, start+1, ...`` of the stream ``key``; draw ``i`` is a pure function of
``(key, i)``, so chunking and thread count never change a result.
"""
import numpy as np
from numba import njit, prange

from ._alias_kernels import alias_pick
from ._jitcache import guard_caches
from ._rng import PRANGE_ONLY, bits, mix64, pair, uniform01

_NEG1 = np.int64(-1)

# Ranges up to this size draw uniformly from one double (relative error of a class's
# probability <= range_max / 2**53 <= 2**-21); wider ones use all 64 bits, without bias.
WIDE_UNIFORM = 2**32
_LOW32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_U0 = np.uint64(0)
_RETRIES = np.uint64(64)
_RETRY_SALT = np.uint64(0x8CB92BA72F3D8DD7)


@njit(cache=True, inline="always")
def _mul128(a, b):
    """The 128-bit product of two uint64 as ``(high, low)`` words."""
    a_lo = a & _LOW32
    a_hi = a >> _S32
    b_lo = b & _LOW32
    b_hi = b >> _S32
    t = a_lo * b_lo
    u = a_hi * b_lo + (t >> _S32)
    w = a_lo * b_hi + (u & _LOW32)
    return a_hi * b_hi + (u >> _S32) + (w >> _S32), a * b


@njit(cache=True, inline="always")
def _uniform_wide(range_max, key, counter):
    """Exactly uniform draw from ``[0, range_max)`` (any int64 range) for draw ``counter``.

    Lemire's multiply-and-reject on 64 random bits. A rejection (probability below
    range_max / 2**64 < 1/2) takes the next word of a side stream of ``key`` reserved for this
    draw, so the result stays a pure function of ``(key, counter)``; after 64 rejections in a
    row (probability < 2**-64) the last value is kept.
    """
    r = np.uint64(range_max)
    hi, lo = _mul128(bits(key, counter), r)
    if lo < r:
        threshold = (_U0 - r) % r            # 2**64 mod range_max
        side = mix64(key ^ _RETRY_SALT)
        t = _U0
        while lo < threshold and t < _RETRIES:
            hi, lo = _mul128(bits(side, counter * _RETRIES + t), r)
            t += np.uint64(1)
    return np.int64(hi)


@njit(cache=True, inline="always")
def _uniform_one(range_max, key, counter):
    """Draw ``counter`` of the uniform sampler's stream ``key``."""
    if range_max > WIDE_UNIFORM:
        return _uniform_wide(range_max, key, counter)
    v = np.int64(uniform01(bits(key, counter)) * np.float64(range_max))
    return min(v, range_max - 1)


@njit(parallel=PRANGE_ONLY, cache=True)
def uniform_draw(range_max, key, start, out):
    for i in prange(out.size):
        out[i] = _uniform_one(range_max, key, start + np.uint64(i))


@njit(parallel=PRANGE_ONLY, cache=True)
def log_uniform_draw(range_max, key, start, out):
    """TensorFlow's log-uniform (Zipfian) draw: floor(exp(u * ln(range_max + 1))) - 1."""
    log_range = np.log1p(np.float64(range_max))
    for i in prange(out.size):
        u = uniform01(bits(key, start + np.uint64(i)))
        v = np.int64(np.floor(np.exp(u * log_range))) - 1
        out[i] = v % range_max


@njit(parallel=PRANGE_ONLY, cache=True)
def log_uniform_prob(ids, range_max, out):
    """P(v) = ln((v+2)/(v+1)) / ln(range_max+1), in double, rounded to float32."""
    inv = 1.0 / np.log1p(np.float64(range_max))
    for i in prange(ids.size):
        v = np.float64(ids[i])
        out[i] = np.float32(np.log((v + 2.0) / (v + 1.0)) * inv)


@njit(parallel=PRANGE_ONLY, cache=True)
def gather_prob(weights, total, ids, out):
    """P(v) = weights[v] / total in float32 (fixed unigram)."""
    for i in prange(ids.size):
        out[i] = np.float32(weights[ids[i]]) / total


@njit(cache=True)
def sequential_sum_f32(w):
    """float32 running total in index order, as TensorFlow's unigram sampler sums."""
    total = np.float32(0.0)
    for i in range(w.size):
        total += w[i]
    return total


# --- learned unigram: a Fenwick tree over integer counts (O(log V) draw and update) ---

@njit(cache=True)
def fenwick_build(counts, tree):
    n = counts.size
    for i in range(n):
        tree[i] = counts[i]
    for i in range(n):
        j = i | (i + 1)
        if j < n:
            tree[j] += tree[i]


@njit(cache=True)
def fenwick_add(tree, counts, ids):
    n = tree.size
    for t in range(ids.size):
        i = ids[t]
        counts[i] += 1
        while i < n:
            tree[i] += 1
            i = i | (i + 1)


@njit(cache=True, inline="always")
def _fenwick_find(tree, top, target):
    """Smallest index whose prefix sum exceeds ``target`` (0 <= target < total)."""
    n = tree.size
    pos = -1
    step = top
    while step > 0:
        nxt = pos + step
        if nxt < n and tree[nxt] <= target:
            pos = nxt
            target -= tree[nxt]
        step >>= 1
    return pos + 1


@njit(parallel=PRANGE_ONLY, cache=True)
def fenwick_draw(tree, total, key, start, out):
    n = tree.size
    top = 1
    while top * 2 <= n:
        top *= 2
    tf = np.float64(total)
    for i in prange(out.size):
        target = np.int64(uniform01(bits(key, start + np.uint64(i))) * tf)
        if target >= total:
            target = total - 1
        out[i] = _fenwick_find(tree, top, target)


@njit(parallel=PRANGE_ONLY, cache=True)
def count_prob(counts, total, ids, out):
    """P(v) = float32(count[v]) / float32(total) (learned unigram)."""
    tf = np.float32(total)
    for i in prange(ids.size):
        out[i] = np.float32(counts[ids[i]]) / tf


# --- unique sampling and expected counts ---

@njit(cache=True)
def new_set(n):
    """An empty open-addressing set for up to ``n`` values (load factor <= 1/2)."""
    cap = 16
    while cap < 2 * n:
        cap *= 2
    return np.full(cap, -1, np.int64)


@njit(cache=True, inline="always")
def set_insert(keys, v):
    """Insert ``v >= 0`` into the open-addressing set ``keys`` (power-of-two size, empty =
    -1); True if it was not there yet."""
    mask = np.int64(keys.size - 1)
    h = np.int64(mix64(np.uint64(v))) & mask
    while True:
        k = keys[h]
        if k == _NEG1:
            keys[h] = v
            return True
        if k == v:
            return False
        h = (h + 1) & mask


@njit(cache=True)
def take_unique(draws, keys, out, count):
    """Append first-seen values of ``draws`` to ``out`` until it is full.

    ``keys`` is an open-addressing set (power-of-two size, empty = -1) carried between chunks.
    Returns ``(count, consumed)``: the new number of distinct values and how many draws were
    read (all of them unless ``out`` filled up).
    """
    target = out.size
    for i in range(draws.size):
        v = draws[i]
        if set_insert(keys, v):
            out[count] = v
            count += 1
        if count == target:
            return count, i + 1
    return count, draws.size


@njit(cache=True)
def last_positions(values, sampled, out):
    """``out[t]`` = the last position of ``values[t]`` in ``sampled``, or -1 if absent.

    Any int64 value may occur on either side (-1 included): a slot of the open-addressing
    table is marked empty by its position (-1), never by a key value, so no key is reserved.
    """
    cap = 16
    while cap < 2 * sampled.size:
        cap *= 2
    mask = np.int64(cap - 1)
    keys = np.empty(cap, np.int64)
    pos = np.full(cap, -1, np.int64)
    for k in range(sampled.size):
        v = sampled[k]
        h = np.int64(mix64(np.uint64(v)) & np.uint64(mask))
        while pos[h] >= 0 and keys[h] != v:
            h = (h + 1) & mask
        keys[h] = v
        pos[h] = k                  # later duplicates overwrite: the last occurrence wins
    for t in range(values.size):
        v = values[t]
        h = np.int64(mix64(np.uint64(v)) & np.uint64(mask))
        found = _NEG1
        while pos[h] >= 0:
            if keys[h] == v:
                found = pos[h]
                break
            h = (h + 1) & mask
        out[t] = found


@njit(parallel=PRANGE_ONLY, cache=True)
def expected_counts(p, num_tries, num_sampled, out):
    """TensorFlow's expected count, in float32.

    ``p * num_sampled`` when every draw was kept (num_tries == num_sampled), otherwise the
    probability of appearing at least once in ``num_tries`` draws,
    ``-expm1(num_tries * log1p(-p))``.
    """
    if num_tries == num_sampled:
        s = np.float32(num_sampled)
        for i in prange(p.size):
            out[i] = p[i] * s
    else:
        t = np.float32(num_tries)
        for i in prange(p.size):
            out[i] = -np.expm1(t * np.log1p(-p[i]))


# --- one fused call for the common small case: draw (+ reject repeats) + expected counts ---

UNIFORM, LOG_UNIFORM, ALIAS, FENWICK = 0, 1, 2, 3


@njit(cache=True, inline="always")
def _draw_one(kind, range_max, log_range, table, tree, top, total, key, i):
    """Draw ``i`` of stream ``key``: bit-identical to the parallel draw kernels above."""
    if kind == UNIFORM:
        return _uniform_one(range_max, key, np.uint64(i))
    if kind == LOG_UNIFORM:
        u = uniform01(bits(key, np.uint64(i)))
        return (np.int64(np.floor(np.exp(u * log_range))) - 1) % range_max
    if kind == ALIAS:
        r1, r2 = pair(key, i)
        return alias_pick(table, np.float64(table.size), r1, r2)
    target = np.int64(uniform01(bits(key, np.uint64(i))) * np.float64(total))
    if target >= total:
        target = total - 1
    return _fenwick_find(tree, top, target)


@njit(cache=True, inline="always")
def _prob_one(kind, range_max, log_range, weights, wtotal, counts, total, v):
    if kind == UNIFORM:
        return np.float32(1.0 / range_max)
    if kind == LOG_UNIFORM:
        return np.float32(np.log((np.float64(v) + 2.0) / (np.float64(v) + 1.0)) / log_range)
    if kind == ALIAS:
        return np.float32(weights[v]) / wtotal
    return np.float32(counts[v]) / np.float32(total)


_PARALLEL_COUNTS = 512   # expected counts of at least this many values: two threads pay off


@njit(cache=True, inline="always")
def _fused_count(kind, range_max, log_range, weights, wtotal, counts, total, true_flat, cands,
                 num_tries, tec, sec, t):
    """Expected count of value ``t`` of ``concat(true_flat, cands)`` into ``tec`` / ``sec``."""
    nt = true_flat.size
    num_sampled = cands.size
    v = true_flat[t] if t < nt else cands[t - nt]
    p = _prob_one(kind, range_max, log_range, weights, wtotal, counts, total, v)
    if num_tries == num_sampled:
        e = p * np.float32(num_sampled)
    else:
        e = -np.expm1(np.float32(num_tries) * np.log1p(-p))
    if t < nt:
        tec[t] = e
    else:
        sec[t - nt] = e


@njit(parallel=PRANGE_ONLY, cache=True)
def _fused_counts_parallel(kind, range_max, log_range, weights, wtotal, counts, total,
                           true_flat, cands, num_tries, tec, sec):
    for t in prange(true_flat.size + cands.size):
        _fused_count(kind, range_max, log_range, weights, wtotal, counts, total, true_flat,
                     cands, num_tries, tec, sec, t)


@njit(cache=True)
def sample_fused(kind, range_max, table, weights, wtotal, tree, counts, total, key,
                 num_sampled, unique, true_flat):
    """Candidates, expected counts and num_tries in one call (sequential; for small S).

    Returns ``(candidates, true_expected_count (flat), sampled_expected_count, num_tries)``.
    """
    log_range = np.log1p(np.float64(range_max))
    top = 1
    while top * 2 <= tree.size:
        top *= 2
    out = np.empty(num_sampled, np.int64)
    if not unique:
        for i in range(num_sampled):
            out[i] = _draw_one(kind, range_max, log_range, table, tree, top, total, key, i)
        num_tries = num_sampled
    else:
        keys = new_set(num_sampled)
        count = 0
        i = 0
        while count < num_sampled:
            v = _draw_one(kind, range_max, log_range, table, tree, top, total, key, i)
            i += 1
            if set_insert(keys, v):
                out[count] = v
                count += 1
        num_tries = i
    tec = np.empty(true_flat.size, np.float32)
    sec = np.empty(num_sampled, np.float32)
    if true_flat.size + num_sampled >= _PARALLEL_COUNTS:
        _fused_counts_parallel(kind, range_max, log_range, weights, wtotal, counts, total,
                               true_flat, out, num_tries, tec, sec)
    else:
        for t in range(true_flat.size + num_sampled):
            _fused_count(kind, range_max, log_range, weights, wtotal, counts, total,
                         true_flat, out, num_tries, tec, sec, t)
    return out, tec, sec, num_tries


guard_caches(globals())     # cache saves take a lock: _jitcache.py
