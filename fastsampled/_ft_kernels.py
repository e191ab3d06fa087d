"""FastText kernels (private): character n-gram hashing and subword training.

Hashing is fastText's (``Dictionary::hash`` and ``computeSubwords`` in its dictionary.cc):
FNV-1a on 32 bits over the UTF-8 bytes of ``"<" + word + ">"``, each byte sign-extended as a
signed char before the XOR; n-grams of ``minn .. maxn`` characters, counted in code points
(continuation bytes ``0x80 .. 0xBF`` never start an n-gram and always stay with the
character before them), every n-gram kept except the one-character n-grams ``"<"`` and
``">"``. The n-gram ``"<word>"`` itself is kept when its length lies in ``minn .. maxn``, as
fastText does. The bucket of an n-gram is ``hash % bucket`` and its row of the input matrix
``nwords + bucket``.

The input matrix ``inp`` holds ``nwords`` rows, one per word, then the ``bucket`` n-gram
rows. Each vocabulary word's rows (its own, then its n-grams' in fastText's
order, duplicates kept) are precomputed as CSR arrays ``indptr`` / ``indices``, so the
training kernel never hashes.

Training (:func:`train_blocks`) follows fastText's models with negative sampling:

skip-gram
    The input of a centre word is the mean of its rows; each context word of the window is
    predicted (label 1) with ``nneg`` negatives of its own (label 0; a draw equal to the word
    predicted is drawn again, as fastText does, up to a few times). As in fastText, each
    context word sees the centre word's rows as updated by the context words before it: the
    gradient of one pair, added unscaled to every row, moves their mean by exactly that
    gradient, so the kernel adds it to the input vector after each pair and writes the rows
    once per window, with the window's sum (the same arithmetic when the word's rows are
    distinct; a row listed twice would move the mean by more).
CBOW
    The input is the mean of all rows of all context words; the centre word is predicted,
    with ``nneg`` negatives; the gradient is added unscaled to each of those rows.

Blocks, learning rates, subsampling and the counter-based random streams are word2vec's
(``_w2v_kernels``): one stream per ``(seed, epoch, block)``, so one thread and a seed give
bit-identical results; several threads update the shared matrices without locks (Hogwild).
"""
import math

import numpy as np
from numba import njit, prange

from ._alias_kernels import alias_pick
from ._rng import GAMMA, PRANGE_ONLY, bits, mix64, stream_key
from ._w2v_kernels import ESCAPE, reduced_window

_FM = {"reassoc", "contract", "nsz", "arcp", "afn"}
_S32 = np.uint64(32)
_ONE = np.uint64(1)
_TWO = np.uint64(2)
_CLAMP = 50.0
_REDRAWS = 8     # tries to draw a negative different from the word predicted


# --------------------------------------------------------------------------- hashing
@njit(cache=True)
def fnv1a32(buf, lo, hi):
    """fastText's hash of the bytes ``buf[lo:hi]`` (uint8): FNV-1a 32-bit with each byte
    sign-extended (``h ^ uint32_t(int8_t(c))``)."""
    h = np.uint64(2166136261)
    for k in range(lo, hi):
        c = np.uint64(np.uint32(np.int32(np.int8(buf[k]))))
        h = ((h ^ c) * np.uint64(16777619)) & np.uint64(0xFFFFFFFF)
    return h


@njit(cache=True)
def subword_ranges(buf, lo, hi, minn, maxn, out_lo, out_hi):
    """The n-grams of the bracketed word ``buf[lo:hi]`` (it includes ``<`` and ``>``), as byte
    ranges written to ``out_lo`` / ``out_hi`` in fastText's order; returns their number.
    ``out_*`` must hold at least ``(hi - lo) * maxn`` entries."""
    m = 0
    for i in range(lo, hi):
        if (buf[i] & 0xC0) == 0x80:
            continue
        j = i
        n = 1
        while j < hi and n <= maxn:
            j += 1
            while j < hi and (buf[j] & 0xC0) == 0x80:
                j += 1
            if n >= minn and not (n == 1 and (i == lo or j == hi)):
                out_lo[m] = i
                out_hi[m] = j
                m += 1
            n += 1
    return m


@njit(cache=True)
def count_subwords(buf, off, minn, maxn, skip, out):
    """Per bracketed word ``buf[off[i]:off[i + 1]]``: its n-grams (0 where ``skip[i]``)."""
    n = off.size - 1
    longest = 0
    for i in range(n):
        longest = max(longest, off[i + 1] - off[i])
    lo = np.empty(max(longest * max(maxn, 1), 1), np.int64)
    hi = np.empty_like(lo)
    for i in range(n):
        out[i] = 0 if skip[i] else subword_ranges(buf, off[i], off[i + 1], minn, maxn, lo, hi)


@njit(cache=True)
def fill_subword_rows(buf, off, minn, maxn, skip, bucket, nwords, first, indptr, indices):
    """CSR rows of each bracketed word ``i``: ``first[i]`` (its own row, or -1 for none),
    then ``nwords + hash % bucket`` of each n-gram (none where ``skip[i]``)."""
    n = off.size - 1
    longest = 0
    for i in range(n):
        longest = max(longest, off[i + 1] - off[i])
    lo = np.empty(max(longest * max(maxn, 1), 1), np.int64)
    hi = np.empty_like(lo)
    ub = np.uint64(bucket) if bucket > 0 else np.uint64(1)
    for i in range(n):
        p = indptr[i]
        if first[i] >= 0:
            indices[p] = first[i]
            p += 1
        if not skip[i]:
            m = subword_ranges(buf, off[i], off[i + 1], minn, maxn, lo, hi)
            for k in range(m):
                indices[p] = nwords + np.int64(fnv1a32(buf, lo[k], hi[k]) % ub)
                p += 1


# --------------------------------------------------------------------------- rows
@njit(parallel=PRANGE_ONLY, cache=True, fastmath=_FM)
def compose_vectors(inp, indptr, indices, out):
    """``out[i]`` = mean of the rows ``indices[indptr[i]:indptr[i + 1]]`` of ``inp`` (float32
    sums in that order, then times ``float32(1 / count)``, as fastText); zero when there are
    none."""
    dim = out.shape[1]
    for i in prange(out.shape[0]):
        acc = out[i]
        for k in range(dim):
            acc[k] = 0.0
        a = indptr[i]
        b = indptr[i + 1]
        for p in range(a, b):
            x = inp[indices[p]]
            for k in range(dim):
                acc[k] += x[k]
        if b > a:
            s = np.float32(1.0 / (b - a))
            for k in range(dim):
                acc[k] *= s


@njit(parallel=PRANGE_ONLY, cache=True)
def init_uniform(out, seed, row0):
    """Rows ``row0 ..`` of the input matrix, uniform in ``[-1/dim, 1/dim)``: a pure function
    of ``(seed, global row, column)``, so a matrix split over arrays gets the same values."""
    n, dim = out.shape
    key = stream_key(seed, np.uint64(0xF7E47))
    scale = 1.0 / dim
    for i in prange(n):
        base = key + np.uint64(row0 + i) * np.uint64(dim) * GAMMA
        for k in range(dim):
            z = mix64(base + np.uint64(k) * GAMMA)
            u = np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)
            out[i, k] = np.float32((2.0 * u - 1.0) * scale)


# --------------------------------------------------------------------------- training
# Small row loops kept out of line: LLVM vectorises them here, not inside the big block loop.
@njit(cache=True, fastmath=_FM)
def _sum_rows(inp, indices, a, b, h):
    """h += the rows ``indices[a:b]`` of ``inp``."""
    dim = h.size
    for q in range(a, b):
        r = indices[q]
        for k in range(dim):
            h[k] += inp[r, k]


@njit(cache=True, fastmath=_FM)
def _add_to_rows(inp, indices, a, b, g):
    """The rows ``indices[a:b]`` of ``inp`` += g."""
    dim = g.size
    for q in range(a, b):
        r = indices[q]
        for k in range(dim):
            inp[r, k] += g[k]


@njit(cache=True, fastmath=_FM)
def _add_twice(g, a, b):
    """a += g; b += g."""
    for k in range(g.size):
        a[k] += g[k]
        b[k] += g[k]


@njit(cache=True, fastmath=_FM)
def _dot_row(h, syn1, t):
    f = np.float32(0.0)
    for k in range(h.size):
        f += h[k] * syn1[t, k]
    return f


@njit(cache=True, fastmath=_FM)
def _update_row(h, syn1, t, g, gacc):
    """gacc += g * syn1[t]; syn1[t] += g * h (from the row before its update)."""
    for k in range(h.size):
        y = syn1[t, k]
        gacc[k] += g * y
        syn1[t, k] = y + g * h[k]


@njit(cache=True, inline="always")
def _negative(table, nf, key, ctr, positive):
    """A draw different from ``positive`` (up to ``_REDRAWS`` tries; -1 if all equal it) and
    the next counter."""
    for _ in range(_REDRAWS):
        c = alias_pick(table, nf, bits(key, ctr), bits(key, ctr + _ONE))
        ctr += _TWO
        if c != positive:
            return c, ctr
    return -1, ctr


@njit(cache=True, inline="always")
def _logistic(f, label, alpha):
    """(gradient scale ``alpha * (label - sigmoid(f))``, probability of the label)."""
    z = min(max(np.float64(f), -_CLAMP), _CLAMP)
    sig = 1.0 / (1.0 + math.exp(-z))
    if label:
        return np.float32(alpha * (1.0 - sig)), sig
    return np.float32(-alpha * sig), 1.0 - sig


@njit(cache=True, fastmath=_FM)
def _train_block(inp, syn1, indptr, indices, corpus, sent_off, s0, s1, keep, table, key,
                 alpha, window, nneg, sg, buf, ctx, h, gacc, gc):
    """Train on sentences ``s0 .. s1-1``; return ``(loss, effective_words, examples)``."""
    dim = h.size
    nf = np.float64(table.size)
    ctr = np.uint64(0)
    loss = 0.0
    prod = 1.0
    eff = 0
    npairs = 0
    for s in range(s0, s1):
        n = 0
        p = sent_off[s]
        end = sent_off[s + 1]
        while p < end:
            w = np.int64(corpus[p])
            p += 1
            if w == ESCAPE:
                w = (np.int64(corpus[p]) << 16) | np.int64(corpus[p + 1])
                p += 2
            r = bits(key, ctr)
            ctr += _ONE
            if (r >> _S32) < keep[w]:
                buf[n] = w
                n += 1
        eff += n
        for i in range(n):
            w = buf[i]
            b = reduced_window(bits(key, ctr), window)
            ctr += _ONE
            lo = max(0, i - b)
            hi = min(n, i + b + 1)
            nctx = 0
            for j in range(lo, hi):
                if j != i:
                    ctx[nctx] = buf[j]
                    nctx += 1
            if nctx == 0:
                continue
            for k in range(dim):
                h[k] = 0.0
                gacc[k] = 0.0
            # the input rows: the centre word's (skip-gram) or the context words' (CBOW)
            if sg:
                nsrc = 1
                ctx[nctx] = w
            else:
                nsrc = nctx
            first = nctx if sg else 0
            tot = 0
            for c in range(first, first + nsrc):
                t = ctx[c]
                _sum_rows(inp, indices, indptr[t], indptr[t + 1], h)
                tot += indptr[t + 1] - indptr[t]
            inv = np.float32(1.0) / np.float32(tot)
            for k in range(dim):
                h[k] *= inv
            # the words predicted: every context word (skip-gram) or the centre word (CBOW)
            npredicted = nctx if sg else 1
            acc = gc if sg else gacc
            for c in range(npredicted):
                t = ctx[c] if sg else w
                if sg:
                    gc[:] = 0.0
                for o in range(nneg + 1):
                    if o == 0:
                        out_w = t
                    else:
                        out_w, ctr = _negative(table, nf, key, ctr, t)
                        if out_w < 0:
                            continue
                    g, pr = _logistic(_dot_row(h, syn1, out_w), o == 0, alpha)
                    prod *= pr
                    _update_row(h, syn1, out_w, g, acc)
                    if prod < 1e-150:   # per factor: each is >= sigmoid(-50)
                        loss -= math.log(prod)
                        prod = 1.0
                if sg:
                    # fastText and gensim update the centre word's rows after each context
                    # word. Adding gc to each of its rows moves their mean by gc: the next
                    # context word sees that mean, and the rows get the sum once, below.
                    _add_twice(gc, h, gacc)
            npairs += npredicted
            for c in range(first, first + nsrc):
                t = ctx[c]
                _add_to_rows(inp, indices, indptr[t], indptr[t + 1], gacc)
    loss -= math.log(prod)
    return loss, eff, npairs


@njit(parallel=PRANGE_ONLY, cache=True)
def train_blocks(inp, syn1, indptr, indices, corpus, sent_off, block_sent,
                 first_block, alphas, keep, table, seed, stream_base, window, nneg, sg,
                 loss_out, eff_out, pairs_out):
    """Train ``alphas.size`` consecutive blocks in parallel (layout of the arguments as
    ``_w2v_kernels.train_blocks``; ``inp`` / ``indptr`` / ``indices`` as the module
    docstring says). Writes each block's loss, kept words and training examples."""
    nb = alphas.size
    dim = inp.shape[1]
    for i in prange(nb):
        b = first_block + i
        s0 = block_sent[i]
        s1 = block_sent[i + 1]
        longest = 0
        for s in range(s0, s1):
            longest = max(longest, sent_off[s + 1] - sent_off[s])
        buf = np.empty(max(longest, 1), np.int64)
        ctx = np.empty(2 * window + 1, np.int64)
        h = np.empty(dim, np.float32)
        gacc = np.empty(dim, np.float32)
        gc = np.empty(dim, np.float32)
        key = stream_key(seed, stream_base + np.uint64(b))
        loss, eff, npairs = _train_block(inp, syn1, indptr, indices, corpus,
                                         sent_off, s0, s1, keep, table, key,
                                         np.float32(alphas[i]), window, nneg, sg, buf, ctx,
                                         h, gacc, gc)
        loss_out[i] = loss
        eff_out[i] = eff
        pairs_out[i] = npairs
