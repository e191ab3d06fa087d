"""Candidate-sampler kernels (private): draws, probabilities, unique rejection, counts.

Every draw kernel has the shape ``draw(params..., key, start, out)`` and fills ``out`` with
draws ``start, start+1, ...`` of the stream ``key``; draw ``i`` is a pure function of
``(key, i)``, so chunking and thread count never change a result.
"""
import numpy as np
from numba import njit, prange

from ._rng import bits, mix64, pair, uniform01

_NEG1 = np.int64(-1)


@njit(parallel=True, cache=True)
def uniform_draw(range_max, key, start, out):
    rf = np.float64(range_max)
    for i in prange(out.size):
        v = np.int64(uniform01(bits(key, start + np.uint64(i))) * rf)
        out[i] = min(v, range_max - 1)


@njit(parallel=True, cache=True)
def log_uniform_draw(range_max, key, start, out):
    """TensorFlow's log-uniform (Zipfian) draw: floor(exp(u * ln(range_max + 1))) - 1."""
    log_range = np.log1p(np.float64(range_max))
    for i in prange(out.size):
        u = uniform01(bits(key, start + np.uint64(i)))
        v = np.int64(np.floor(np.exp(u * log_range))) - 1
        out[i] = v % range_max


@njit(parallel=True, cache=True)
def log_uniform_prob(ids, range_max, out):
    """P(v) = ln((v+2)/(v+1)) / ln(range_max+1), in double, rounded to float32."""
    inv = 1.0 / np.log1p(np.float64(range_max))
    for i in prange(ids.size):
        v = np.float64(ids[i])
        out[i] = np.float32(np.log((v + 2.0) / (v + 1.0)) * inv)


@njit(cache=True)
def log_uniform_prob_scalar(v, range_max):
    return np.float32(np.log((np.float64(v) + 2.0) / (np.float64(v) + 1.0)) / np.log1p(np.float64(range_max)))


@njit(parallel=True, cache=True)
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


@njit(parallel=True, cache=True)
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


@njit(parallel=True, cache=True)
def count_prob(counts, total, ids, out):
    """P(v) = float32(count[v]) / float32(total) (learned unigram)."""
    tf = np.float32(total)
    for i in prange(ids.size):
        out[i] = np.float32(counts[ids[i]]) / tf


# --- unique sampling and expected counts ---

@njit(cache=True)
def take_unique(draws, keys, out, count):
    """Append first-seen values of ``draws`` to ``out`` until it is full.

    ``keys`` is an open-addressing set (power-of-two size, empty = -1) carried between chunks.
    Returns ``(count, consumed)``: the new number of distinct values and how many draws were
    read (all of them unless ``out`` filled up).
    """
    mask = np.uint64(keys.size - 1)
    target = out.size
    for i in range(draws.size):
        v = draws[i]
        h = np.int64(mix64(np.uint64(v)) & mask)
        while True:
            k = keys[h]
            if k == _NEG1:
                keys[h] = v
                out[count] = v
                count += 1
                break
            if k == v:
                break
            h = (h + 1) & np.int64(mask)
        if count == target:
            return count, i + 1
    return count, draws.size


@njit(parallel=True, cache=True)
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
