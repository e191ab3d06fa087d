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
    with ``nneg`` negatives; the gradient is added unscaled to each of those rows. A word's
    rows serve every centre within ``window`` of it, so the kernel reads them once, when the
    word enters the window, and writes them once, when it leaves: each position in the
    window keeps the sum of its rows as they stand and the gradients they are owed, and
    after each centre every position's sum moves by the gradient times the rows it shares
    with the context words (:func:`_overlap`, run only when the words' signatures say they
    may share one; neighbours share n-grams, and a word may list a row twice). That is the
    arithmetic of writing every row after every centre, rounded in another order; other
    threads see a word's updates when it leaves the window (within ``window`` centres)
    rather than after each centre.

Both wait on memory much of the time: the rows are picked at random from matrices larger
than the caches (the output rows of the negatives, the rows of rarer words and their
n-grams). Nothing a centre draws depends on the rows, so the kernel draws the next centre's
window and negatives before training the current one and prefetches the rows they name: the
rows of the next word to enter the input one centre ahead, the output rows one prediction
ahead (:mod:`._prefetch`).

Blocks, learning rates, subsampling and the counter-based random streams are word2vec's
(``_w2v_kernels``): one stream per ``(seed, epoch, block)``, so one thread and a seed give
bit-identical results; several threads update the shared matrices without locks (Hogwild).
"""
import math

import numpy as np
from numba import njit, prange

from ._alias_kernels import alias_pick
from ._jitcache import guard_caches
from ._prefetch import prefetch_row, prefetch_span
from ._rng import GAMMA, PRANGE_ONLY, bits, mix64, stream_key
from ._w2v_kernels import reduced_window, subsample

_FM = {"reassoc", "contract", "nsz", "arcp", "afn"}
_ONE = np.uint64(1)
_TWO = np.uint64(2)
_CLAMP = 50.0
_REDRAWS = 8     # tries to draw a negative different from the word predicted
# A word's signature: _SIGL filters of _SIGW 64-bit words (512 bits), each with one bit set per
# distinct row, picked by its own multiplicative hash. Two words share a row only if every
# filter shares a bit; with one filter, most pairs of neighbours that pass share no row.
_SIGW = 8
_SIGL = 3
_SIGMUL = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9],
                   np.uint64)


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
@njit(cache=True)
def first_seen(keys, rows, distinct):
    """Number the distinct values of ``keys`` (int64, >= 0) in order of first occurrence:
    ``rows[i]`` gets the number of ``keys[i]``, ``distinct[:m]`` the values in that order;
    returns ``m``. An open-addressing table sized to ``keys``, not to their range."""
    cap = 16
    while cap < 2 * keys.size:
        cap *= 2
    mask = np.uint64(cap - 1)
    slot_key = np.full(cap, -1, np.int64)
    slot_row = np.empty(cap, np.int64)
    m = 0
    for i in range(keys.size):
        k = keys[i]
        j = np.int64(((np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(20)) & mask)
        while slot_key[j] >= 0 and slot_key[j] != k:
            j = np.int64((np.uint64(j) + np.uint64(1)) & mask)
        if slot_key[j] < 0:
            slot_key[j] = k
            slot_row[j] = m
            distinct[m] = k
            m += 1
        rows[i] = slot_row[j]
    return m


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
    e = math.exp(-z)
    sig = 1.0 / (1.0 + e)
    if label:
        return np.float32(alpha * (1.0 - sig)), sig
    # 1 - sigmoid(z) as e * sigmoid(z): the subtraction rounds to 0 once z passes ~37
    return np.float32(-alpha * sig), e * sig


@njit(cache=True)
def _draw(buf, n, i, sg, window, nneg, table, nf, key, ctr, tg, cnt, span, slot):
    """The random draws of centre ``i``, in the stream's order: its window, then for each
    word predicted (every context word for skip-gram, the centre for CBOW) its negatives.
    Writes the window to ``span[slot]`` and the words each prediction trains (the word
    predicted, then its negatives) to ``tg[slot, k, :cnt[slot, k]]``; returns the counter.
    Nothing drawn depends on the rows, so a centre's draws can be made before the centre
    ahead of it trains, and the rows they name fetched meanwhile."""
    b = reduced_window(bits(key, ctr), window)
    ctr += _ONE
    lo = max(0, i - b)
    hi = min(n, i + b + 1)
    span[slot, 0] = lo
    span[slot, 1] = hi
    if hi - lo < 2:
        return ctr
    a, z = (lo, hi) if sg else (i, i + 1)
    k = 0
    for j in range(a, z):
        if sg and j == i:
            continue
        t = buf[j]
        tg[slot, k, 0] = t
        m = 1
        for _ in range(nneg):
            c, ctr = _negative(table, nf, key, ctr, t)
            if c >= 0:
                tg[slot, k, m] = c
                m += 1
        cnt[slot, k] = m
        k += 1
    return ctr


@njit(cache=True)
def _prefetch_targets(syn1, tg, cnt, span, slot, k):
    """Hint that the output rows of prediction ``k`` drawn into ``slot`` (the word predicted
    and its negatives) are about to be used; nothing if the centre drawn there has no
    context."""
    if span[slot, 1] - span[slot, 0] < 2:
        return
    for o in range(cnt[slot, k]):
        prefetch_row(syn1, tg[slot, k, o])


@njit(cache=True)
def _prefetch_rows(inp, indices, a, b):
    """Hint that the rows ``indices[a:b]`` of ``inp`` are about to be used."""
    for q in range(a, b):
        prefetch_row(inp, indices[q])


@njit(cache=True)
def _prefetch_word(inp, indices, indptr, uptr, urows, ucount, sig, w):
    """Hint that word ``w`` is about to enter the CBOW window: its rows, and its signature
    and distinct rows for the overlaps."""
    _prefetch_rows(inp, indices, indptr[w], indptr[w + 1])
    prefetch_row(sig, w)
    prefetch_span(urows, uptr[w], uptr[w + 1])
    prefetch_span(ucount, uptr[w], uptr[w + 1])


@njit(cache=True, inline="always")
def _predict(h, syn1, tg, cnt, slot, k, alpha, acc, prod, loss, score):
    """Prediction ``k`` of a centre: its word (label 1) and negatives (label 0) from the
    input ``h``; each output row updated, ``acc`` += the gradient of ``h``. Returns the
    running product of probabilities and the loss. ``score``: room for ``cnt`` scores."""
    c = cnt[slot, k]
    distinct = True
    for o in range(1, c):
        for o2 in range(o):
            distinct &= tg[slot, k, o] != tg[slot, k, o2]
    if distinct:
        # no row trained twice, so no score depends on an update before it: the scores
        # first, free of the updates' latency, then the updates (the same arithmetic)
        for o in range(c):
            score[o] = _dot_row(h, syn1, tg[slot, k, o])
    for o in range(c):
        out_w = tg[slot, k, o]
        f = score[o] if distinct else _dot_row(h, syn1, out_w)
        g, pr = _logistic(f, o == 0, alpha)
        prod *= pr
        _update_row(h, syn1, out_w, g, acc)
        if prod < 1e-150:   # per factor: each is >= sigmoid(-50)
            loss -= math.log(prod)
            prod = 1.0
    return prod, loss


@njit(cache=True, fastmath=_FM)
def _sg_block(inp, syn1, indptr, indices, corpus, sent_off, s0, s1, keep, table, key,
              alpha, window, nneg, buf, h, gacc, gc, tg, cnt, span, score):
    """Skip-gram on sentences ``s0 .. s1-1``; return ``(loss, effective_words, examples)``."""
    dim = h.size
    nf = np.float64(table.size)
    ctr = np.uint64(0)
    loss = 0.0
    prod = 1.0
    eff = 0
    npairs = 0
    for s in range(s0, s1):
        n, ctr = subsample(corpus, sent_off[s], sent_off[s + 1], keep, key, ctr, buf)
        eff += n
        if n == 0:
            continue
        ctr = _draw(buf, n, 0, True, window, nneg, table, nf, key, ctr, tg, cnt, span, 0)
        _prefetch_targets(syn1, tg, cnt, span, 0, 0)
        for i in range(n):
            cur = i & 1
            nxt = 1 - cur
            if i + 1 < n:     # the next centre's draws, and its rows on their way
                ctr = _draw(buf, n, i + 1, True, window, nneg, table, nf, key, ctr, tg, cnt,
                            span, nxt)
                v = buf[i + 1]
                _prefetch_rows(inp, indices, indptr[v], indptr[v + 1])
            lo = span[cur, 0]
            hi = span[cur, 1]
            if hi - lo < 2:
                continue
            w = buf[i]
            a = indptr[w]
            z = indptr[w + 1]
            for k in range(dim):
                h[k] = 0.0
                gacc[k] = 0.0
            _sum_rows(inp, indices, a, z, h)
            inv = np.float32(1.0) / np.float32(z - a)
            for k in range(dim):
                h[k] *= inv
            for k in range(hi - lo - 1):
                # the output rows of the next prediction on their way, one prediction
                # ahead: asking for a whole centre's (some 30 rows) at once was slower
                if k + 1 < hi - lo - 1:
                    _prefetch_targets(syn1, tg, cnt, span, cur, k + 1)
                elif i + 1 < n:
                    _prefetch_targets(syn1, tg, cnt, span, nxt, 0)
                gc[:] = 0.0
                prod, loss = _predict(h, syn1, tg, cnt, cur, k, alpha, gc, prod, loss, score)
                # fastText and gensim update the centre word's rows after each context
                # word. Adding gc to each of its rows moves their mean by gc: the next
                # context word sees that mean, and the rows get the sum once, below.
                _add_twice(gc, h, gacc)
            npairs += hi - lo - 1
            _add_to_rows(inp, indices, a, z, gacc)
    loss -= math.log(prod)
    return loss, eff, npairs


@njit(cache=True)
def _overlap(urows, ucount, a0, a1, b0, b1):
    """Rows two words share, with multiplicity: the sum over rows r of (times the first
    word has r) * (times the second has r), from their sorted distinct rows
    ``urows[a0:a1]``, ``urows[b0:b1]`` and counts ``ucount`` (a merge without branches on
    the data: such branches are unpredictable)."""
    o = 0
    i = a0
    j = b0
    while i < a1 and j < b1:
        x = urows[i]
        y = urows[j]
        o += np.int64(x == y) * ucount[i] * ucount[j]
        i += np.int64(x <= y)
        j += np.int64(y <= x)
    return o


@njit(cache=True, fastmath=_FM)
def _axpy_row(dst, i, f, src, j):
    """dst[i] += f * src[j]."""
    for k in range(dst.shape[1]):
        dst[i, k] += f * src[j, k]


@njit(cache=True, fastmath=_FM)
def _add_row(dst, i, g):
    """dst[i] += g."""
    for k in range(g.size):
        dst[i, k] += g[k]


@njit(cache=True, fastmath=_FM)
def _scaled_add_row(dst, i, f, g):
    """dst[i] += f * g."""
    for k in range(g.size):
        dst[i, k] += f * g[k]


@njit(cache=True, fastmath=_FM)
def _enter(inp, indptr, indices, uptr, urows, ucount, sig, buf, q, nslot, rsum, pend, ov, nrows,
           ssig):
    """Position ``q`` of the sentence enters the window: its slot gets the sum of its
    word's rows (as the earlier positions' pending gradients leave them) and its overlaps
    with the positions before it still in the window."""
    w = buf[q]
    sq = q % nslot
    a0 = indptr[w]
    a1 = indptr[w + 1]
    nrows[sq] = a1 - a0
    for k in range(rsum.shape[1]):
        rsum[sq, k] = 0.0
        pend[sq, k] = 0.0
    _sum_rows(inp, indices, a0, a1, rsum[sq])
    u0 = uptr[w]
    u1 = uptr[w + 1]
    own = 0
    for u in range(u0, u1):
        own += ucount[u] * ucount[u]
    ov[sq, sq] = own
    for k in range(_SIGL * _SIGW):
        ssig[sq, k] = sig[w, k]
    for p in range(max(0, q - nslot + 1), q):
        sp = p % nslot
        v = buf[p]
        if v == w:
            o = own
        else:
            # two words share a row only if each filter of their signatures shares a bit
            any_bit = _ONE
            for f in range(_SIGL):
                any_bit = np.uint64(0)
                for k in range(f * _SIGW, (f + 1) * _SIGW):
                    any_bit |= ssig[sq, k] & ssig[sp, k]
                if any_bit == 0:
                    break
            o = 0 if any_bit == 0 else _overlap(urows, ucount, u0, u1, uptr[v], uptr[v + 1])
        ov[sq, sp] = o
        ov[sp, sq] = o
        if o != 0:
            _axpy_row(rsum, sq, np.float32(o), pend, sp)


@njit(cache=True, fastmath=_FM)
def _cbow_block(inp, syn1, indptr, indices, uptr, urows, ucount, sig, ssig, corpus,
                sent_off, s0, s1, keep, table, key, alpha, window, nneg, buf, h, gacc, rsum,
                pend, ov, nrows, tg, cnt, span, score):
    """CBOW on sentences ``s0 .. s1-1``; return ``(loss, effective_words, examples)``.

    Each position of the sentence within ``window`` of the centre holds a slot: ``rsum``,
    the sum of its word's rows as they stand with every gradient so far, and ``pend``, the
    gradients the rows are still owed. A centre's input is the sum of its context slots'
    ``rsum`` over their row count; its gradient ``g`` goes to the context slots' ``pend``,
    and every slot in the window moves by ``g`` times the rows it shares with the context
    (``ov``). A position's rows are read when it enters the window and written, with what
    they are owed, when it leaves: the arithmetic of writing every row after every centre,
    summed in another order."""
    dim = h.size
    nslot = 2 * window + 1
    nf = np.float64(table.size)
    ctr = np.uint64(0)
    loss = 0.0
    prod = 1.0
    eff = 0
    npairs = 0
    for s in range(s0, s1):
        n, ctr = subsample(corpus, sent_off[s], sent_off[s + 1], keep, key, ctr, buf)
        eff += n
        if n == 0:
            continue
        for q in range(min(n, window + 2)):
            _prefetch_word(inp, indices, indptr, uptr, urows, ucount, sig, buf[q])
        for q in range(min(n, window + 1)):
            _enter(inp, indptr, indices, uptr, urows, ucount, sig, buf, q, nslot, rsum, pend,
                   ov, nrows, ssig)
        ctr = _draw(buf, n, 0, False, window, nneg, table, nf, key, ctr, tg, cnt, span, 0)
        for i in range(n):
            cur = i & 1
            if i + 1 < n:     # the next centre's draws, and rows on their way
                nxt = 1 - cur
                ctr = _draw(buf, n, i + 1, False, window, nneg, table, nf, key, ctr, tg, cnt,
                            span, nxt)
                _prefetch_targets(syn1, tg, cnt, span, nxt, 0)
                q = i + window + 2        # enters after the next centre
                if q < n:
                    _prefetch_word(inp, indices, indptr, uptr, urows, ucount, sig, buf[q])
            lo = span[cur, 0]
            hi = span[cur, 1]
            if hi - lo > 1:
                tot = 0
                for k in range(dim):
                    h[k] = 0.0
                    gacc[k] = 0.0
                for p in range(lo, hi):
                    if p != i:
                        sp = p % nslot
                        for k in range(dim):
                            h[k] += rsum[sp, k]
                        tot += nrows[sp]
                inv = np.float32(1.0) / np.float32(tot)
                for k in range(dim):
                    h[k] *= inv
                prod, loss = _predict(h, syn1, tg, cnt, cur, 0, alpha, gacc, prod, loss, score)
                npairs += 1
                for p in range(lo, hi):
                    if p != i:
                        _add_row(pend, p % nslot, gacc)
                for q in range(max(0, i - window), min(n, i + window + 1)):
                    sq = q % nslot
                    c = 0
                    for p in range(lo, hi):
                        if p != i:
                            c += ov[sq, p % nslot]
                    if c != 0:
                        _scaled_add_row(rsum, sq, np.float32(c), gacc)
            p = i - window
            if p >= 0:        # no later centre reaches it
                w = buf[p]
                _add_to_rows(inp, indices, indptr[w], indptr[w + 1], pend[p % nslot])
            q = i + window + 1
            if q < n:
                _enter(inp, indptr, indices, uptr, urows, ucount, sig, buf, q, nslot, rsum, pend,
                   ov, nrows, ssig)
        for p in range(max(0, n - window), n):
            w = buf[p]
            _add_to_rows(inp, indices, indptr[w], indptr[w + 1], pend[p % nslot])
    loss -= math.log(prod)
    return loss, eff, npairs


@njit(cache=True)
def distinct_rows(indptr, indices):
    """Each word's distinct rows, sorted, and how many times the word lists each, as CSR
    ``(uptr, urows, ucount)``, and each word's signature ``sig``: ``_SIGL`` filters of
    ``_SIGW`` words of 64 bits, each with a bit set for each distinct row, picked by the
    filter's own hash of the row. Two words share a row only if every filter of theirs
    shares a bit. For the overlaps of the CBOW kernel."""
    n = indptr.size - 1
    srt = indices.copy()
    uptr = np.zeros(n + 1, np.int64)
    for i in range(n):
        a = indptr[i]
        b = indptr[i + 1]
        srt[a:b].sort()
        d = 0
        for q in range(a, b):
            if q == a or srt[q] != srt[q - 1]:
                d += 1
        uptr[i + 1] = uptr[i] + d
    urows = np.empty(uptr[n], np.int64)
    ucount = np.zeros(uptr[n], np.int64)
    sig = np.zeros((n, _SIGL * _SIGW), np.uint64)
    for i in range(n):
        u = uptr[i] - 1
        for q in range(indptr[i], indptr[i + 1]):
            if q == indptr[i] or srt[q] != srt[q - 1]:
                u += 1
                urows[u] = srt[q]
                for f in range(_SIGL):
                    z = (np.uint64(srt[q]) * _SIGMUL[f]) >> np.uint64(64 - 9)
                    sig[i, f * _SIGW + (z >> np.uint64(6))] |= _ONE << (z & np.uint64(63))
            ucount[u] += 1
    return uptr, urows, ucount, sig


@njit(parallel=PRANGE_ONLY, cache=True)
def train_blocks(inp, syn1, indptr, indices, distinct, corpus, sent_off, block_sent,
                 first_block, alphas, keep, table, seed, stream_base, window, nneg, sg,
                 loss_out, eff_out, pairs_out):
    """Train ``alphas.size`` consecutive blocks in parallel (layout of the arguments as
    ``_w2v_kernels.train_blocks``; ``inp`` / ``indptr`` / ``indices`` as the module
    docstring says; ``distinct`` = ``distinct_rows(indptr, indices)``, used by CBOW only).
    Writes each block's loss, kept words and training examples."""
    nb = alphas.size
    dim = inp.shape[1]
    nslot = 2 * window + 1
    for i in prange(nb):
        b = first_block + i
        s0 = block_sent[i]
        s1 = block_sent[i + 1]
        longest = 0
        for s in range(s0, s1):
            longest = max(longest, sent_off[s + 1] - sent_off[s])
        buf = np.empty(max(longest, 1), np.int64)
        h = np.empty(dim, np.float32)
        gacc = np.empty(dim, np.float32)
        tg = np.empty((2, 2 * window, nneg + 1), np.int64)
        cnt = np.empty((2, 2 * window), np.int64)
        span = np.empty((2, 2), np.int64)
        score = np.empty(nneg + 1, np.float32)
        key = stream_key(seed, stream_base + np.uint64(b))
        alpha = np.float32(alphas[i])
        if sg:
            gc = np.empty(dim, np.float32)
            loss, eff, npairs = _sg_block(inp, syn1, indptr, indices, corpus, sent_off, s0,
                                          s1, keep, table, key, alpha, window, nneg, buf, h,
                                          gacc, gc, tg, cnt, span, score)
        else:
            rsum = np.empty((nslot, dim), np.float32)
            pend = np.empty((nslot, dim), np.float32)
            ov = np.zeros((nslot, nslot), np.int64)
            nrows = np.zeros(nslot, np.int64)
            uptr, urows, ucount, sig = distinct
            ssig = np.empty((nslot, _SIGL * _SIGW), np.uint64)
            loss, eff, npairs = _cbow_block(inp, syn1, indptr, indices, uptr, urows, ucount,
                                            sig, ssig, corpus, sent_off, s0, s1, keep, table, key,
                                            alpha, window, nneg, buf, h, gacc, rsum, pend,
                                            ov, nrows, tg, cnt, span, score)
        loss_out[i] = loss
        eff_out[i] = eff
        pairs_out[i] = npairs


guard_caches(globals())     # cache saves take a lock: _jitcache.py
