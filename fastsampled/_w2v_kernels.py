"""Word2vec kernels (private): training, and the tokeniser and encoder of the corpus.

One compiled driver, :func:`train_blocks`, runs a ``prange`` over fixed corpus blocks (about
``batch_words`` words each, cut at sentence boundaries). Every block has its own counter-based
random stream keyed by ``(seed, epoch, block)``, so with one thread a run is bit-reproducible.
With several threads the blocks update the shared float32 matrices without locks (Hogwild, as
word2vec.c and gensim do): this is the one documented exception to the house's no-race rule.

Per centre word the kernel works on the whole window at once (HogBatch, as Intel's pWord2Vec):
the ``1 + k`` output rows (the centre word and the ``k`` candidates drawn once for the window)
are scored against every input row of the window (skip-gram: each context word's vector;
CBOW: their mean) as one small dense product, the error matrix ``G`` is formed, then both
updates are applied from the pre-update values. Compared with word2vec.c's pair-by-pair loop
the candidates are shared by the window's pairs and every pair of the window sees the output
rows as they were before the window; quality is the same (pWord2Vec; our benchmark).

The training objective, ``mode`` of :func:`train_blocks`, is one of three constants:

``LOSS_NEGATIVE_SAMPLING`` (0)
    Negative sampling: label 1 for the centre word, 0 for each negative, logits ``x . w``.
``LOSS_SAMPLED_SOFTMAX`` (1)
    Sampled softmax over the centre word and the candidates, TensorFlow semantics: logits
    ``x . w - log Q`` with ``Q = num_sampled * p(word)`` the expected count of sampling with
    replacement, no biases.
``LOSS_NCE`` (2)
    NCE, TensorFlow semantics: a logistic loss per logit, as in negative sampling, on the
    logits of sampled softmax (``x . w - log Q``).

In every mode a candidate equal to the centre word is dropped (gensim's rule for negatives,
TensorFlow's ``remove_accidental_hits``).

The corpus kernels (:func:`scan_tokens`, :func:`rehash`, :func:`encode_part`,
:func:`decode_stream`, driven by
``fastsampled._corpus``) tokenise text into provisional ids and encode them into the uint16
stream that training reads. ``ESCAPE`` (0xFFFF) is the stream entry that announces a
vocabulary id too large for one entry, followed by its high and low 16 bits. The tokeniser
keeps its position across calls in an int64 array of ``SCAN_STATE_SIZE`` (6) entries, read
and updated in place; its indices:

``SCAN_POS`` (0)
    Next byte of the chunk to read.
``SCAN_UNIQUE`` (1)
    Distinct tokens interned so far (the next provisional id).
``SCAN_ARENA_USED`` (2)
    Bytes of the token arena in use.
``SCAN_OUT`` (3)
    Token ids written to ``out_ids`` for this chunk.
``SCAN_LINES`` (4)
    Line lengths written to ``out_lens`` for this chunk.
``SCAN_LINE_LEN`` (5)
    Tokens of the current line so far (carried over from one chunk to the next).

Numba compiles these module-level integers into the kernels as literals.
"""
import math

import numpy as np
from numba import njit, prange

from ._alias_kernels import alias_pick
from ._jitcache import guard_caches
from ._rng import PRANGE_ONLY, bits, stream_key
from ._vmath import vexp

# fastmath without the NaN/inf assumptions: reassociation lets LLVM vectorise the dot
# products; contraction gives FMAs.
_FM = {"reassoc", "contract", "nsz", "arcp", "afn"}
_S32 = np.uint64(32)
_ONE = np.uint64(1)
_TWO = np.uint64(2)
_CLAMP = 50.0  # |logit| beyond this: sigmoid/softmax saturated in float64 anyway

# Training objectives (``mode`` of train_blocks; see the module docstring).
LOSS_NEGATIVE_SAMPLING = 0
LOSS_SAMPLED_SOFTMAX = 1
LOSS_NCE = 2

ESCAPE = 0xFFFF  # corpus stream escape, see encode_part

# Indices of scan_tokens' state array (see the module docstring).
SCAN_POS = 0
SCAN_UNIQUE = 1
SCAN_ARENA_USED = 2
SCAN_OUT = 3
SCAN_LINES = 4
SCAN_LINE_LEN = 5
SCAN_STATE_SIZE = 6


@njit(cache=True, inline="always")
def reduced_window(r, window):
    """Window size for one centre: uniform in ``1 .. window`` from the 64 random bits ``r``."""
    return np.int64(np.uint64(1) + (r >> _S32) % np.uint64(window))


@njit(cache=True, inline="always")
def subsample(corpus, p, end, keep, key, ctr, buf):
    """The words of ``corpus[p:end]`` (the encoded stream) that subsampling keeps, into
    ``buf``; returns their number and the next counter of the stream ``key``."""
    n = 0
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
    return n, ctr


@njit(cache=True, fastmath=_FM)
def _dot(x, y):
    """float32 dot product of two rows (kept out of line: LLVM vectorises it here, but not
    when it is inlined into the big block loop)."""
    f = np.float32(0.0)
    for k in range(x.size):
        f += x[k] * y[k]
    return f


@njit(cache=True, fastmath=_FM)
def _train_block(syn0, syn1, corpus, sent_off, s0, s1, keep, table, logq, key, alpha,
                 window, nneg, sg, mode, buf, ctxid, outid, olq, G, ein, neu1, zb, eb, sb):
    """Train on sentences ``s0 .. s1-1``; return ``(loss, effective_words, pairs)``."""
    dim = syn0.shape[1]
    nf = np.float64(table.size)
    ctr = np.uint64(0)
    loss = 0.0
    eff = 0
    npairs = 0
    for s in range(s0, s1):
        # Subsample: dropped words are removed before windows are formed.
        n, ctr = subsample(corpus, sent_off[s], sent_off[s + 1], keep, key, ctr, buf)
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
                    ctxid[nctx] = buf[j]
                    nctx += 1
            # Candidates, drawn once for the window.
            outid[0] = w
            nout = 1
            for k in range(nneg):
                r1 = bits(key, ctr)
                r2 = bits(key, ctr + _ONE)
                ctr += _TWO
                c = alias_pick(table, nf, r1, r2)
                if c != w:
                    outid[nout] = c
                    nout += 1
            if nctx == 0:
                continue
            if mode != LOSS_NEGATIVE_SAMPLING:
                for o in range(nout):
                    olq[o] = logq[outid[o]]
            if sg:
                nin = nctx
            else:
                nin = 1
                inv = np.float32(1.0) / np.float32(nctx)
                for k in range(dim):
                    neu1[k] = 0.0
                for a in range(nctx):
                    row = syn0[ctxid[a]]
                    for k in range(dim):
                        neu1[k] += row[k]
                for k in range(dim):
                    neu1[k] *= inv
            npairs += nin
            # Scores and errors: G[a, o] = alpha * (target - prediction).
            for a in range(nin):
                if sg:
                    x = syn0[ctxid[a]]
                else:
                    x = neu1
                for o in range(nout):
                    G[a, o] = _dot(x, syn1[outid[o]])
            prod = 1.0
            if mode == LOSS_SAMPLED_SOFTMAX:
                for a in range(nin):
                    # sampled softmax over [centre] + candidates
                    m = -1e300
                    for o in range(nout):
                        z = np.float64(G[a, o]) - olq[o]
                        if z > m:
                            m = z
                    tot = 0.0
                    for o in range(nout):
                        e = math.exp(np.float64(G[a, o]) - olq[o] - m)
                        ein[a, o] = e  # scratch: unnormalised probabilities
                        tot += e
                    loss += math.log(tot) + m - (np.float64(G[a, 0]) - olq[0])
                    for o in range(nout):
                        pr = ein[a, o] / tot
                        t = 1.0 if o == 0 else 0.0
                        G[a, o] = np.float32(alpha * (t - pr))
            else:
                # Sigmoids of the whole window through one vectorised exp call.
                m = 0
                for a in range(nin):
                    for o in range(nout):
                        z = np.float64(G[a, o])
                        if mode == LOSS_NCE:
                            z -= olq[o]
                        zb[m] = -min(max(z, -_CLAMP), _CLAMP)
                        m += 1
                vexp(zb[:m], eb[:m], sb[:m])
                # The loss needs one log per window, not one per logit: the probabilities
                # of the labels are multiplied (each >= sigmoid(-50) ~ 2e-22) and the log is
                # taken when the product gets small and once at the end of the window.
                m = 0
                for a in range(nin):
                    for o in range(nout):
                        e = eb[m]
                        m += 1
                        sig = 1.0 / (1.0 + e)
                        if o == 0:
                            prod *= sig
                            G[a, o] = np.float32(alpha * (1.0 - sig))
                        else:
                            prod *= e * sig  # 1 - sigmoid(z)
                            G[a, o] = np.float32(-alpha * sig)
                        if prod < 1e-150:   # per factor: 1 + negative of them can underflow
                            loss -= math.log(prod)
                            prod = 1.0
            loss -= math.log(prod)
            # Input-side error from the pre-update output rows.
            for a in range(nin):
                for k in range(dim):
                    ein[a, k] = 0.0
                for o in range(nout):
                    g = G[a, o]
                    y = syn1[outid[o]]
                    for k in range(dim):
                        ein[a, k] += g * y[k]
            # Output rows.
            for o in range(nout):
                y = syn1[outid[o]]
                for a in range(nin):
                    g = G[a, o]
                    if sg:
                        x = syn0[ctxid[a]]
                    else:
                        x = neu1
                    for k in range(dim):
                        y[k] += g * x[k]
            # Input rows (CBOW: the error is added unscaled to every context word).
            if sg:
                for a in range(nin):
                    x = syn0[ctxid[a]]
                    for k in range(dim):
                        x[k] += ein[a, k]
            else:
                for a in range(nctx):
                    x = syn0[ctxid[a]]
                    for k in range(dim):
                        x[k] += ein[0, k]
    return loss, eff, npairs


@njit(parallel=PRANGE_ONLY, cache=True)
def train_blocks(syn0, syn1, corpus, sent_off, block_sent, first_block, alphas, keep, table,
                 logq, seed, stream_base, window, nneg, sg, mode, loss_out, eff_out, pairs_out):
    """Train ``alphas.size`` consecutive blocks in parallel.

    ``mode`` is the objective: ``LOSS_NEGATIVE_SAMPLING``, ``LOSS_SAMPLED_SOFTMAX`` or
    ``LOSS_NCE``; ``nneg`` the candidates drawn per centre word.

    ``corpus`` holds the stream of these blocks' sentences only, ``sent_off`` (int64) their
    offsets in it (one entry more than sentences); block ``i`` is sentences
    ``block_sent[i] .. block_sent[i + 1] - 1`` of that slice and corpus block
    ``first_block + i``: ``alphas[i]`` is its learning rate and ``stream_key(seed,
    stream_base + first_block + i)`` its random stream. Writes each block's summed loss,
    effective (kept) words and (input, centre) pairs to ``loss_out``, ``eff_out``,
    ``pairs_out`` at index ``i``.
    """
    nb = alphas.size
    dim = syn0.shape[1]
    maxw = 2 * window
    for i in prange(nb):
        b = first_block + i
        s0 = block_sent[i]
        s1 = block_sent[i + 1]
        longest = 0
        for s in range(s0, s1):
            longest = max(longest, sent_off[s + 1] - sent_off[s])  # >= words per sentence
        buf = np.empty(max(longest, 1), np.int32)
        ctxid = np.empty(maxw, np.int64)
        outid = np.empty(nneg + 1, np.int64)
        olq = np.zeros(nneg + 1, np.float64)
        G = np.empty((maxw, nneg + 1), np.float32)
        ein = np.empty((maxw, max(dim, nneg + 1)), np.float32)
        neu1 = np.empty(dim, np.float32)
        zb = np.empty(maxw * (nneg + 1), np.float64)
        eb = np.empty(maxw * (nneg + 1), np.float64)
        sb = np.empty(maxw * (nneg + 1), np.float64)
        key = stream_key(seed, stream_base + np.uint64(b))
        loss, eff, npairs = _train_block(syn0, syn1, corpus, sent_off, s0, s1, keep, table,
                                         logq, key, np.float32(alphas[i]), window, nneg, sg,
                                         mode, buf, ctxid, outid, olq, G, ein, neu1, zb,
                                         eb, sb)
        loss_out[i] = loss
        eff_out[i] = eff
        pairs_out[i] = npairs


@njit(cache=True)
def block_table(words, units, batch_words, bsent, bword, bunit):
    """Cut the corpus into blocks of about ``batch_words`` words at sentence boundaries.

    ``words`` / ``units`` give each sentence's words and stream entries. A block starts at
    the first sentence that begins at or after each multiple of ``batch_words`` words (so no
    sentence is split; sentences hold at most 10 000 words). Writes, per block and once more
    for the end, its first sentence, words before it and stream entries before it to
    ``bsent``, ``bword``, ``bunit`` (int64, at least ``min(len(words), total //
    batch_words + 1) + 1`` entries); returns the number of blocks.
    """
    w = 0
    u = 0
    nb = 0
    last = -1
    for s in range(words.size):
        q = w // batch_words
        if q != last:  # a multiple of batch_words lies in (start of s - 1, start of s]
            bsent[nb] = s
            bword[nb] = w
            bunit[nb] = u
            nb += 1
            last = q
        w += words[s]
        u += units[s]
    bsent[nb] = words.size
    bword[nb] = w
    bunit[nb] = u
    return nb


# --------------------------------------------------------------------------- corpus reading
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@njit(cache=True)
def scan_tokens(data, st, slots, hashes, arena, arena_off, counts, out_ids, out_lens,
                max_line):
    """Tokenise ``data`` (uint8, ASCII-whitespace separated, lines on ``\\n``) and intern tokens.

    Open-addressing table ``slots`` (int64, power-of-two size, -1 = empty) maps a token's
    FNV-1a hash to its provisional id (first-occurrence order); the token bytes live in
    ``arena[arena_off[u]:arena_off[u + 1]]``. Appends each token's id to ``out_ids`` and the
    length of each non-empty line to ``out_lens`` (a line reaching ``max_line`` tokens is cut
    there). ``st`` (int64, ``SCAN_STATE_SIZE`` entries: ``SCAN_POS``, ``SCAN_UNIQUE``,
    ``SCAN_ARENA_USED``, ``SCAN_OUT``, ``SCAN_LINES``, ``SCAN_LINE_LEN``) is read and
    updated. Returns False when done, True when it stopped early at a token boundary
    because the table or the arena is full (grow them and call again).
    """
    pos = st[SCAN_POS]
    nuniq = st[SCAN_UNIQUE]
    aused = st[SCAN_ARENA_USED]
    nout = st[SCAN_OUT]
    nlines = st[SCAN_LINES]
    cur = st[SCAN_LINE_LEN]
    n = data.size
    mask = np.uint64(slots.size - 1)
    limit = min(slots.size // 2, hashes.size)
    full = False
    while pos < n:
        c = data[pos]
        if c == 10:
            if cur > 0:
                out_lens[nlines] = cur
                nlines += 1
                cur = 0
            pos += 1
            continue
        if c == 32 or (c >= 9 and c <= 13):
            pos += 1
            continue
        start = pos
        h = _FNV_OFFSET
        while pos < n:
            c = data[pos]
            if c == 32 or (c >= 9 and c <= 13):
                break
            h = (h ^ np.uint64(c)) * _FNV_PRIME
            pos += 1
        ln = pos - start
        slot = np.int64((h ^ (h >> np.uint64(29))) & mask)
        uid = -1
        while True:
            u = slots[slot]
            if u < 0:
                if nuniq >= limit or aused + ln > arena.size:
                    full = True
                    break
                slots[slot] = nuniq
                hashes[nuniq] = h
                for k in range(ln):
                    arena[aused + k] = data[start + k]
                aused += ln
                arena_off[nuniq + 1] = aused
                counts[nuniq] = 0
                uid = nuniq
                nuniq += 1
                break
            if hashes[u] == h and arena_off[u + 1] - arena_off[u] == ln:
                a0 = arena_off[u]
                same = True
                for k in range(ln):
                    if arena[a0 + k] != data[start + k]:
                        same = False
                        break
                if same:
                    uid = u
                    break
            slot = np.int64((np.uint64(slot) + np.uint64(1)) & mask)
        if full:
            pos = start
            break
        counts[uid] += 1
        out_ids[nout] = uid
        nout += 1
        cur += 1
        if cur == max_line:
            out_lens[nlines] = cur
            nlines += 1
            cur = 0
    st[SCAN_POS] = pos
    st[SCAN_UNIQUE] = nuniq
    st[SCAN_ARENA_USED] = aused
    st[SCAN_OUT] = nout
    st[SCAN_LINES] = nlines
    st[SCAN_LINE_LEN] = cur
    return full


@njit(cache=True)
def rehash(hashes, nuniq, slots):
    """Insert provisional ids ``0 .. nuniq-1`` into the empty table ``slots`` by hash."""
    mask = np.uint64(slots.size - 1)
    for u in range(nuniq):
        h = hashes[u]
        slot = np.int64((h ^ (h >> np.uint64(29))) & mask)
        while slots[slot] >= 0:
            slot = np.int64((np.uint64(slot) + np.uint64(1)) & mask)
        slots[slot] = u


@njit(cache=True)
def decode_stream(stream, out):
    """Decode the uint16 stream ``stream`` (the format :func:`encode_part` writes) into the
    ids ``out`` (at least ``stream.size`` entries); returns ``(ids written, largest id or
    -1)``. An escape cut off by the end of ``stream`` ends it."""
    n = 0
    i = 0
    top = np.int64(-1)
    while i < stream.size:
        v = np.int64(stream[i])
        if v == ESCAPE:
            if i + 2 >= stream.size:
                break
            v = (np.int64(stream[i + 1]) << 16) | np.int64(stream[i + 2])
            i += 3
        else:
            i += 1
        out[n] = v
        n += 1
        top = max(top, v)
    return n, top


@njit(cache=True)
def encode_part(ids, lens, remap, out, pos, swords, sunits):
    """Encode provisional ``ids`` (sentences of ``lens``) into the uint16 stream ``out``.

    ``remap`` gives each provisional id its vocabulary id or -1 (dropped). Ids below
    ``ESCAPE`` take one uint16, larger ones three (escape, high half, low half). Emptied
    sentences are dropped. Writes from ``out[pos]``; each kept sentence's words and stream
    entries go to ``swords`` and ``sunits`` (uint16: at most 10 000 words, 30 000 entries).
    Returns ``(new_pos, n_sentences)``.
    """
    r = 0
    ns = 0
    for s in range(lens.size):
        m = 0
        p0 = pos
        for _ in range(lens[s]):
            v = remap[ids[r]]
            r += 1
            if v >= 0:
                if v < ESCAPE:
                    out[pos] = v
                    pos += 1
                else:
                    out[pos] = ESCAPE
                    out[pos + 1] = v >> 16
                    out[pos + 2] = v & 0xFFFF
                    pos += 3
                m += 1
        if m > 0:
            swords[ns] = m
            sunits[ns] = pos - p0
            ns += 1
    return pos, ns


guard_caches(globals())     # cache saves take a lock: _jitcache.py
