"""Fused sampled-softmax / NCE forward and backward kernels (private).

Layout of one call: ``rows`` holds the gathered weight rows, already cast to the inputs'
dtype -- first the ``B*T`` rows of the labels (row-major), then the ``S`` sampled rows;
``brows`` the matching biases. A step is cut into slabs of (sampled classes x examples) whose
sizes depend on the shape only (:func:`plan`), never on the thread count, so every sum is
grouped the same way for any ``NUMBA_NUM_THREADS``; every parallel task owns what it writes.

A slab's logits are stored transposed, (classes, examples): the masking, ``- log q``, the
running maximum, the exponentials and the scaling into ``dL/dz`` are then element-wise loops
along contiguous rows of examples, which vectorise without reductions or fast-math. The
softmax runs in float64 (exponentials rounded to the inputs' dtype in place).

* S in one chunk (the common case, e.g. S = 64): one task per block of examples gathers its
  own label rows (from the weights themselves when they are one array, :func:`step_dense`),
  computes its logits by one BLAS product, the loss and ``dL/dz``, its ``d_inputs`` rows and
  partial ``dW_s`` / ``db_s`` (:func:`_fused`); the partials are added in block order
  afterwards.
* Several chunks: slab logits with each chunk's maximum and shifted sum; per example the
  chunks combined (an online log-sum-exp) into the loss and each chunk's scale; then
  ``dL/dz`` and the products per slab, each task owning a chunk or a row block.

``merge_sparse`` then sums label and sampled contributions per unique class id.

BLAS (``np.dot``) must run single-threaded inside these parallel regions; ``_blas.py`` sees to it.

Subnormal numbers are flushed to zero, as TensorFlow's CPU kernels do: dL/dz is rounded by
``flush_to`` wherever it is written, and every parallel task (and each serial floating-point
phase) runs between ``ftz_enter`` / ``ftz_exit`` (``_fpenv``: FTZ/DAZ in the thread's MXCSR on
x86-64, restored afterwards). Never around a call that starts a parallel region: the worker
threads Numba starts there would inherit the mode for good.
"""
import numpy as np
from numba import njit, prange

from ._fpenv import ftz_enter, ftz_exit
from ._jitcache import guard_caches
from ._rng import PRANGE_ONLY, mix64
from ._rows_kernels import gather_rows, gather_vec
from ._vmath import exp_into, flush_to, log1p_small_into
from ._vmath import vexp as _vexp

# Fixed slab sizes (never derived from the thread count, so results do not depend on it).
_RB = 256        # at most this many examples per row block (blocks are balanced)
_SC = 512        # at most this many sampled classes per chunk ...
_MIN_SC = 64     # ... cut down to this size ...
_MIN_SLABS = 4   # ... until a step has this many (chunk x row block) slabs
FLT_MAX = np.float64(np.finfo(np.float32).max)


@njit(cache=True)
def accidental_hit_columns(labels, sampled):
    """``cols[i, j]`` = last position of ``labels[i, j]`` in ``sampled``, or -1, as TensorFlow
    picks the column to mask (docs/semantics.md#accidental-hits)."""
    s = sampled.size
    cap = 16
    while cap < 2 * s:
        cap *= 2
    mask = np.uint64(cap - 1)
    keys = np.full(cap, -1, np.int64)
    vals = np.empty(cap, np.int64)
    for k in range(s):
        v = sampled[k]
        h = np.int64(mix64(np.uint64(v)) & mask)
        while keys[h] != -1 and keys[h] != v:
            h = (h + 1) & np.int64(mask)
        keys[h] = v
        vals[h] = k  # later duplicates overwrite: the last occurrence wins
    B, T = labels.shape
    cols = np.full((B, T), -1, np.int64)
    for i in range(B):
        for j in range(T):
            v = labels[i, j]
            h = np.int64(mix64(np.uint64(v)) & mask)
            while keys[h] != -1:
                if keys[h] == v:
                    cols[i, j] = vals[h]
                    break
                h = (h + 1) & np.int64(mask)
    return cols


@njit(cache=True, inline="never")
def _gemm(a, b, out):
    """``out = a @ b`` by BLAS. Every product goes through here (and :func:`_gemm_add`):
    each ``np.dot`` call site costs seconds of compilation, a call of this function almost
    nothing."""
    np.dot(a, b, out)


@njit(cache=True, inline="never")
def _gemm_add(a, b, out):
    """``out += a @ b`` by BLAS."""
    t = np.dot(a, b)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] += t[i, j]


@njit(cache=True, fastmath={"reassoc", "contract"})
def _rowdot(a, b):
    """Dot product of two rows; reassociation lets LLVM vectorise the reduction."""
    acc = a[0] * b[0]
    for c in range(1, a.size):
        acc += a[c] * b[c]
    return acc


@njit(cache=True, fastmath={"reassoc"})
def _vsum(a):
    """``sum(a)`` in float64; reassociation (no NaN/inf assumptions) lets it vectorise."""
    acc = 0.0
    for i in range(a.size):    # (an iterator loop is much slower here: docs/performance.md)
        acc += a[i]
    return acc


@njit(cache=True)
def _add_true_terms(d, g_true, rows, r0, roff):
    """``d[ii] += sum_j g_true[r0+ii, j] * rows[(r0+ii)*T + j - roff]``: the label rows'
    share of d_inputs for the block of examples starting at ``r0``."""
    T = g_true.shape[1]
    for ii in range(d.shape[0]):
        i = r0 + ii
        for j in range(T):
            g = g_true[i, j]
            t = i * T + j - roff
            for c in range(d.shape[1]):
                d[ii, c] += g * rows[t, c]


@njit(cache=True)
def _ceil_div(a, b):
    return (a + b - 1) // b


@njit(cache=True)
def plan(B, S):
    """Split of a (B examples x S sampled classes) step into slabs: ``(nrb, rb, nc, sc)``.

    ``nrb`` balanced row blocks of at most ``rb`` examples and ``nc`` chunks of at most ``sc``
    sampled classes. S is cut finer (down to ``_MIN_SC``) until there are ``_MIN_SLABS``
    slabs, so both threads have work. Only the shape decides (never the thread count), so
    every sum is grouped the same way for any ``NUMBA_NUM_THREADS``.
    """
    nrb = _ceil_div(B, _RB)
    rb = _ceil_div(_ceil_div(B, nrb), 16) * 16
    nrb = _ceil_div(B, rb)
    nc = _ceil_div(S, _SC)
    if nc * nrb < _MIN_SLABS:
        nc = max(nc, min(_ceil_div(S, _MIN_SC), _ceil_div(_MIN_SLABS, nrb)))
    sc = _ceil_div(_ceil_div(S, nc), 16) * 16
    nc = _ceil_div(S, sc)
    return nrb, rb, nc, sc


@njit(cache=True)
def work_size(B, T, S, D, gather):
    """Elements of the scratch buffer (``work``) a (B, T, S, D) step needs: none when S is one
    chunk (its temporaries are small); otherwise the slab logits (S*B), the per-chunk
    ``d_inputs`` partials and ``dW_s`` (or the per-block ``dW_s`` partials), and with
    ``gather`` (:func:`step_dense`) the gathered rows."""
    nrb, rb, nc, sc = plan(B, S)
    if nc == 1:
        return 0
    n = S * B + ((nc * B + S) * D if nc >= nrb else nrb * S * D)
    if gather:
        n += (B * T + S) * D
    return n


@njit(cache=True)
def _slab_logits(x, ws, bs, log_sec, hit_cols, r0, r1, s0, s1, Z):
    """Sampled logits of examples ``r0..r1`` for sampled classes ``s0..s1`` into ``Z``
    (s1 - s0, r1 - r0), transposed so that every pass below runs along contiguous rows of
    examples (vector loops, no reductions).

    In x's dtype, as TensorFlow: ``x.w + b``, ``-FLT_MAX`` added once to each hit column,
    ``- log q``. The mask is added before the bias here; for any logit below 2**74 in
    magnitude ``-FLT_MAX`` absorbs the bias and ``log q`` either way, so the values are the
    same as TensorFlow's order.
    """
    _gemm(ws[s0:s1], x[r0:r1].T, Z)
    neg = x.dtype.type(-FLT_MAX)
    T = hit_cols.shape[1]
    for ii in range(r1 - r0):
        i = r0 + ii
        for j in range(T):
            k = hit_cols[i, j]
            if k >= s0 and k < s1:
                dup = False
                for jj in range(j):
                    if hit_cols[i, jj] == k:
                        dup = True    # a label repeated in the row masks its column once
                if not dup:
                    Z[k - s0, ii] += neg
    for k in range(s1 - s0):
        b = bs[s0 + k]
        lq = log_sec[s0 + k]
        zk = Z[k]
        for ii in range(zk.size):
            zk[ii] = (zk[ii] + b) - lq


@njit(cache=True)
def _true_logits(x, rows, brows, log_tec, r0, r1, zt, roff):
    """``zt[j, ii]`` (float64, (T, r1 - r0)): true logits ``dt(x.w + b) - log q``; the label
    rows of example ``i`` are ``rows[i*T - roff ...]`` (``roff``: the first row ``rows``
    holds)."""
    T = log_tec.shape[1]
    dt = x.dtype.type
    for ii in range(r1 - r0):
        i = r0 + ii
        for j in range(T):
            t = i * T + j - roff
            zt[j, ii] = np.float64(dt(_rowdot(x[i], rows[t]) + brows[t]) - log_tec[i, j])


@njit(cache=True)
def _exp_stats(Z, m, s):
    """Softmax statistics of the columns of ``Z`` (n, rb): ``m[ii]`` (float64) is raised to
    the column's maximum (it holds a lower bound on entry), then ``Z[k, ii] = exp(Z[k, ii] -
    m[ii])`` in Z's dtype and ``s[ii] += sum_k`` of them in float64."""
    dt = Z.dtype.type
    n, rb = Z.shape
    for k in range(n):
        zk = Z[k]
        for ii in range(rb):
            m[ii] = max(m[ii], np.float64(zk[ii]))
    t = np.empty(rb, Z.dtype)
    scr = np.empty(rb)
    for k in range(n):
        zk = Z[k]
        for ii in range(rb):
            t[ii] = dt(np.float64(zk[ii]) - m[ii])
        exp_into(t, zk, scr)
        for ii in range(rb):
            s[ii] += np.float64(zk[ii])


@njit(cache=True)
def _nce_slab(Z, lsum, gscale):
    """NCE on the columns of ``Z`` (n, rb) of sampled logits (target 0): ``lsum[ii] +=
    max(z, 0) + log1p(exp(-|z|))`` over the column (float64) and ``Z = gscale *
    sigmoid(Z)`` (dL/dz), in Z's dtype."""
    dt = Z.dtype.type
    one = dt(1.0)
    n, rb = Z.shape
    t = np.empty(rb, Z.dtype)
    ee = np.empty(rb, Z.dtype)
    scr = np.empty(rb)
    for k in range(n):
        zk = Z[k]
        for ii in range(rb):
            v = zk[ii]
            lsum[ii] += max(np.float64(v), 0.0)
            t[ii] = -abs(v)
        exp_into(t, ee, scr)                     # e = exp(-|z|)
        log1p_small_into(ee, t)
        for ii in range(rb):
            lsum[ii] += np.float64(t[ii])
            sg = one / (one + ee[ii])
            if zk[ii] < 0:
                sg = ee[ii] * sg
            zk[ii] = flush_to(np.float64(sg) * gscale, zk)


@njit(cache=True)
def _true_nce(zt, inv_t, loss, g_true, r0, gscale):
    """NCE terms of the true logits ``zt`` (T, rb): loss (target ``1/T``) and ``gscale``
    times dL/dz."""
    T, rb = zt.shape
    for ii in range(rb):
        i = r0 + ii
        acc = 0.0
        for j in range(T):
            v = zt[j, ii]
            ev = np.exp(-abs(v))
            acc += max(v, 0.0) + np.log1p(ev) - v * inv_t
            sg = 1.0 / (1.0 + ev)
            if v < 0.0:
                sg = ev * sg
            g_true[i, j] = flush_to((sg - inv_t) * gscale, g_true)
        loss[i] += acc


@njit(cache=True)
def _scale_cols(G, f):
    """``G[k, ii] = G[k, ii] * f[ii]`` (the product in float64, rounded to G's dtype, a
    subnormal result flushed to 0 as :func:`~fastsampled._vmath.flush_to` says)."""
    for k in range(G.shape[0]):
        gk = G[k]
        for ii in range(gk.size):
            gk[ii] = flush_to(np.float64(gk[ii]) * f[ii], gk)


@njit(cache=True)
def _softmax_rows(zt, M, Ssum, loss, g_true, r0, want_grads, gscale):
    """Finish the softmax of examples ``r0 .. r0 + rb``: ``M`` (rb,) is their maximum logit
    (the true logits ``zt`` (T, rb) included) and ``Ssum`` the sum of their sampled
    exponentials shifted by ``M``; the true ones are added here. Writes ``loss = M +
    log(Ssum) - mean_j zt_j`` and ``g_true = gscale * (softmax_j - 1/T)``; on return
    ``Ssum`` holds ``gscale / Ssum``, the factor that turns the shifted sampled exponentials
    into (scaled) dL/dz."""
    T, rb = zt.shape
    inv_t = 1.0 / T
    t = np.empty(rb)
    sc = np.empty(rb)
    et = np.empty((T, rb))
    for j in range(T):
        for ii in range(rb):
            t[ii] = zt[j, ii] - M[ii]
        _vexp(t, et[j], sc)
        for ii in range(rb):
            Ssum[ii] += et[j, ii]
    for ii in range(rb):
        a = 0.0
        for j in range(T):
            a += zt[j, ii]
        loss[r0 + ii] = M[ii] + np.log(Ssum[ii]) - a * inv_t
        Ssum[ii] = 1.0 / Ssum[ii]
    if want_grads:
        for j in range(T):
            for ii in range(rb):
                g_true[r0 + ii, j] = flush_to((et[j, ii] * Ssum[ii] - inv_t) * gscale,
                                              g_true)
        for ii in range(rb):
            Ssum[ii] *= gscale


@njit(parallel=PRANGE_ONLY, cache=True)
def _fused(x, wsrc, bsrc, true_ids, ws, bs, num_true, log_tec, log_sec, hit_cols, nce,
           want_grads, gscale, rb, nrb):
    """All of a step for S in one chunk: one task per block of ``rb`` examples gathers its
    label rows (``wsrc[true_ids[t]]``, ``bsrc[true_ids[t]]``, cast to x's dtype) and computes
    its logits, loss, dL/dz, d_inputs rows and partial ``dW_s`` / ``db_s``; the partials are
    added in block order afterwards. ``ws`` / ``bs`` are the sampled rows, already gathered.
    A block's inputs, label rows, logits and W_s stay in cache, the label rows are read from
    the weights once, and there is one parallel region."""
    loss, g_true, dx, wpart, bpart = fused_outputs(x, ws.shape[0], num_true, nrb)
    for blk in prange(nrb):
        _fused_block(blk, x, wsrc, bsrc, true_ids, ws, bs, num_true, log_tec, log_sec,
                     hit_cols, nce, want_grads, gscale, rb, loss, g_true, dx, wpart, bpart)
    return loss, dx, g_true, wpart, bpart


@njit(cache=True)
def fused_outputs(x, S, num_true, nrb):
    """The arrays :func:`_fused` fills: ``(loss, g_true, dx, wpart, bpart)``."""
    B, D = x.shape
    return (np.zeros(B, np.float64), np.empty((B, num_true), x.dtype), np.empty((B, D), x.dtype),
            np.empty((nrb, S, D), x.dtype), np.empty((nrb, S), np.float64))


@njit(nogil=True, cache=True)
def fused_blocks(x, wsrc, bsrc, true_ids, ws, bs, num_true, log_tec, log_sec, hit_cols, nce,
                 want_grads, gscale, rb, b0, b1, loss, g_true, dx, wpart, bpart):
    """Row blocks ``b0 .. b1`` of :func:`_fused` on the calling thread, without the GIL, into
    the arrays of :func:`fused_outputs`: threads that each run a range of blocks compute
    what :func:`_fused` computes, bit for bit, with no OpenMP worker left spinning after."""
    for blk in range(b0, b1):
        _fused_block(blk, x, wsrc, bsrc, true_ids, ws, bs, num_true, log_tec, log_sec,
                     hit_cols, nce, want_grads, gscale, rb, loss, g_true, dx, wpart, bpart)


@njit(cache=True)
def _fused_block(blk, x, wsrc, bsrc, true_ids, ws, bs, num_true, log_tec, log_sec, hit_cols,
                 nce, want_grads, gscale, rb, loss, g_true, dx, wpart, bpart):
    """Row block ``blk`` of :func:`_fused`."""
    B, D = x.shape
    T = num_true
    S = ws.shape[0]
    fpenv = ftz_enter()
    r0 = blk * rb
    r1 = min(B, r0 + rb)
    n = r1 - r0
    # this block's label rows, indexed from r0 * T (the kernels below take global rows)
    trows = np.empty((n * T, D), x.dtype)
    tb = np.empty(n * T, x.dtype)
    for t in range(n * T):
        r = true_ids[r0 * T + t]
        tb[t] = bsrc[r]
        wr = wsrc[r]
        tr = trows[t]
        for c in range(D):
            tr[c] = wr[c]
    Z = np.empty((S, n), x.dtype)
    _slab_logits(x, ws, bs, log_sec, hit_cols, r0, r1, 0, S, Z)
    zt = np.empty((T, n))
    _true_logits(x, trows, tb, log_tec, r0, r1, zt, r0 * T)
    if not nce:
        m = np.empty(n)
        for ii in range(n):
            m[ii] = zt[0, ii]
            for j in range(1, T):
                m[ii] = max(m[ii], zt[j, ii])
        s = np.zeros(n)
        _exp_stats(Z, m, s)   # m already includes the true logits
        _softmax_rows(zt, m, s, loss, g_true, r0, want_grads, gscale)
        if want_grads:
            _scale_cols(Z, s)              # s = gscale / sum
    else:
        _nce_slab(Z, loss[r0:r1], gscale)
        _true_nce(zt, 1.0 / T, loss, g_true, r0, gscale)
    if want_grads:
        d = dx[r0:r1]
        _gemm(Z.T, ws, d)
        _add_true_terms(d, g_true, trows, r0, r0 * T)
        _gemm(Z, x[r0:r1], wpart[blk])
        for k in range(S):
            bpart[blk, k] = _vsum(Z[k])
    ftz_exit(fpenv)


@njit(parallel=PRANGE_ONLY, cache=True)
def _slab_pass(x, rows, brows, num_true, log_tec, log_sec, hit_cols, nce, gscale, rb, nrb, sc,
               nc, Zbuf, zt, Mp, Sp, loss):
    """Phase 1 of a step with several chunks of S: each (chunk, row block) slab gets its
    logits, and its softmax statistics (maximum ``Mp[c]``, shifted sum ``Sp[c]`` and the
    shifted exponentials in place) or its NCE loss terms and dL/dz. Chunk 0's tasks also
    compute the true logits ``zt`` (T, B)."""
    B = x.shape[0]
    T = num_true
    BT = B * T
    S = rows.shape[0] - BT
    ws = rows[BT:]
    bs = brows[BT:]
    for t in prange(nc * nrb):
        fpenv = ftz_enter()
        c = t // nrb
        b = t % nrb
        s0 = c * sc
        s1 = min(S, s0 + sc)
        r0 = b * rb
        r1 = min(B, r0 + rb)
        Z = _slab(Zbuf, B, s0, s1, r0, r1)
        _slab_logits(x, ws, bs, log_sec, hit_cols, r0, r1, s0, s1, Z)
        if c == 0:
            _true_logits(x, rows, brows, log_tec, r0, r1, zt[:, r0:r1], 0)
        if not nce:
            m = Mp[c, r0:r1]
            s = Sp[c, r0:r1]
            for ii in range(r1 - r0):
                m[ii] = -np.inf
                s[ii] = 0.0
            _exp_stats(Z, m, s)
        else:
            lp = Sp[c, r0:r1]
            for ii in range(r1 - r0):
                lp[ii] = 0.0
            _nce_slab(Z, lp, gscale)
        ftz_exit(fpenv)


@njit(cache=True)
def _slab(Zbuf, B, s0, s1, r0, r1):
    """Slab (s1 - s0, r1 - r0) of the flat logits buffer: chunk ``s0..s1`` occupies
    ``Zbuf[s0*B : s1*B]``, and within it the row block ``r0..r1`` is contiguous."""
    n = s1 - s0
    return Zbuf[s0 * B + r0 * n: s0 * B + r1 * n].reshape((n, r1 - r0))


@njit(cache=True)
def _combine_rows(zt, Mp, Sp, nce, want_grads, gscale, rb, nrb, loss, g_true, F):
    """Phase 2: per example, the chunks' statistics combined into the loss and ``g_true``,
    and ``F[c, i]``, the factor that turns chunk c's shifted exponentials into dL/dz.
    Serial: ~B * (T + chunks) vectorised exponentials, too little work to repay the long
    compilation of a parallel loop (docs/performance.md#compile-time)."""
    T, B = zt.shape
    nc = Mp.shape[0]
    fpenv = ftz_enter()
    for b in range(nrb):
        r0 = b * rb
        r1 = min(B, r0 + rb)
        n = r1 - r0
        if nce:
            for ii in range(n):
                a = 0.0
                for c in range(nc):
                    a += Sp[c, r0 + ii]
                loss[r0 + ii] = a
            _true_nce(zt[:, r0:r1], 1.0 / T, loss, g_true, r0, gscale)
            continue
        M = np.empty(n)
        for ii in range(n):
            M[ii] = Mp[0, r0 + ii]
        for c in range(1, nc):
            for ii in range(n):
                M[ii] = max(M[ii], Mp[c, r0 + ii])
        for j in range(T):
            for ii in range(n):
                M[ii] = max(M[ii], zt[j, r0 + ii])
        Ssum = np.zeros(n)
        tmp = np.empty(n)
        scr = np.empty(n)
        for c in range(nc):
            f = F[c, r0:r1]
            for ii in range(n):
                tmp[ii] = Mp[c, r0 + ii] - M[ii]
            _vexp(tmp, f, scr)                      # f = exp(m_c - M)
            for ii in range(n):
                Ssum[ii] += Sp[c, r0 + ii] * f[ii]
        _softmax_rows(zt[:, r0:r1], M, Ssum, loss, g_true, r0, want_grads, gscale)
        if want_grads:
            for c in range(nc):
                for ii in range(n):
                    F[c, r0 + ii] *= Ssum[ii]          # Ssum = gscale / sum now
    ftz_exit(fpenv)


@njit(parallel=PRANGE_ONLY, cache=True)
def _slab_grads(x, rows, num_true, g_true, nce, rb, nrb, sc, nc, Zbuf, F, work):
    """Phase 3: dL/dz of every slab, then ``dW_s``, ``db_s`` and ``d_inputs`` by BLAS.

    With at least as many chunks as row blocks, a task owns a chunk (its ``dW_s`` rows
    directly, ``d_inputs`` as per-chunk partials); otherwise a row block (its ``d_inputs``
    rows directly, ``dW_s`` as per-block partials). Partials are added in a fixed order.
    The per-chunk ``d_inputs`` partials and ``dW_s`` are carved from ``work`` (see
    :func:`work_size`).
    """
    B, D = x.shape
    T = num_true
    BT = B * T
    S = rows.shape[0] - BT
    ws = rows[BT:]
    dx = np.empty((B, D), x.dtype)
    by_chunk = nc >= nrb
    if by_chunk:
        dxp = work[:nc * B * D].reshape((nc, B, D))
        wpart = work[nc * B * D:(nc * B + S) * D].reshape((1, S, D))  # one "partial": dW_s
        bpart = np.empty((1, S), np.float64)
        ntask = nc
    else:
        dxp = work[:D].reshape((1, 1, D))
        wpart = work[:nrb * S * D].reshape((nrb, S, D))
        bpart = np.empty((nrb, S), np.float64)
        ntask = nrb
    for t in prange(ntask):
        fpenv = ftz_enter()
        if by_chunk:
            c = t
            s0 = c * sc
            s1 = min(S, s0 + sc)
            bacc = np.zeros(s1 - s0)
            for b in range(nrb):
                r0 = b * rb
                r1 = min(B, r0 + rb)
                G = _slab(Zbuf, B, s0, s1, r0, r1)
                if not nce:
                    _scale_cols(G, F[c, r0:r1])
                if b == 0:
                    _gemm(G, x[r0:r1], wpart[0, s0:s1])
                else:
                    _gemm_add(G, x[r0:r1], wpart[0, s0:s1])
                for k in range(s1 - s0):
                    bacc[k] += _vsum(G[k])
                _gemm(G.T, ws[s0:s1], dxp[c, r0:r1])
            for k in range(s1 - s0):
                bpart[0, s0 + k] = bacc[k]
        else:
            b = t
            r0 = b * rb
            r1 = min(B, r0 + rb)
            d = dx[r0:r1]
            for c in range(nc):
                s0 = c * sc
                s1 = min(S, s0 + sc)
                G = _slab(Zbuf, B, s0, s1, r0, r1)
                if not nce:
                    _scale_cols(G, F[c, r0:r1])
                if c == 0:
                    _gemm(G.T, ws[s0:s1], d)
                else:
                    _gemm_add(G.T, ws[s0:s1], d)
                _gemm(G, x[r0:r1], wpart[b, s0:s1])
                for k in range(s1 - s0):
                    bpart[b, s0 + k] = _vsum(G[k])
            _add_true_terms(d, g_true, rows, r0, 0)
        ftz_exit(fpenv)
    if by_chunk:
        _sum_dx_partials(dxp, g_true, rows, rb, nrb, dx)
    return dx, wpart, bpart


@njit(parallel=PRANGE_ONLY, cache=True)
def _sum_dx_partials(dxp, g_true, rows, rb, nrb, dx):
    """``dx = sum_c dxp[c]`` (fixed order) plus the label rows' terms, by row blocks."""
    B, D = dx.shape
    nc = dxp.shape[0]
    for b in prange(nrb):
        fpenv = ftz_enter()
        r0 = b * rb
        r1 = min(B, r0 + rb)
        for i in range(r0, r1):
            for j in range(D):
                a = dxp[0, i, j]
                for c in range(1, nc):
                    a += dxp[c, i, j]
                dx[i, j] = a
        _add_true_terms(dx[r0:r1], g_true, rows, r0, 0)
        ftz_exit(fpenv)


@njit(cache=True)
def sampled_fwd_bwd(x, rows, brows, num_true, log_tec, log_sec, hit_cols, nce, want_grads,
                    gscale, work):
    """Loss (float64, per example) and, if ``want_grads``, all gradients of ``gscale *
    sum(loss)`` (``gscale = 1 / B`` gives the mean's, folded into dL/dz for free).

    Parameters
    ----------
    x : (B, D) float array, C-contiguous.
    rows : (B*T + S, D) same dtype; brows : (B*T + S,) same dtype.
    log_tec : (B, T) and log_sec : (S,) in x's dtype: the log expected counts to subtract
        (zeros when subtract_log_q is False).
    hit_cols : (B, T) int64, the sampled column to mask for each label, or -1.
    nce : False for sampled softmax, True for NCE (sigmoid cross-entropy).
    work : 1-D array of x's dtype, at least ``work_size(B, T, S, D, False)`` elements:
        scratch for the step's largest temporaries, owned and reused by the caller.

    Returns
    -------
    loss (B,) float64, dx (B, D), g_true (B, T) in x's dtype; ``wpart`` (P, S, D) in x's
    dtype and ``bpart`` (P, S) float64: the gradients of the sampled rows and biases as P
    partial sums, added in order by :func:`merge_sparse`.

    The step is cut into slabs of (sampled classes x examples) by :func:`plan`. When S is one
    chunk, each row block does everything in one parallel loop (:func:`_fused`). Otherwise
    three parallel phases: slab logits and per-chunk softmax statistics, their combination
    per example (an online log-sum-exp), then dL/dz and the three products per slab.
    """
    B, D = x.shape
    T = num_true
    S = rows.shape[0] - B * T
    nrb, rb, nc, sc = plan(B, S)
    if nc == 1:
        BT = B * T
        return _fused(x, rows, brows, np.arange(BT), rows[BT:], brows[BT:], T, log_tec,
                      log_sec, hit_cols, nce, want_grads, gscale, rb, nrb)
    Zbuf = work[:S * B]
    zt = np.empty((T, B))
    Mp = np.empty((nc, B))
    Sp = np.empty((nc, B))
    loss = np.zeros(B)
    g_true = np.empty((B, T), x.dtype)
    _slab_pass(x, rows, brows, T, log_tec, log_sec, hit_cols, nce, gscale, rb, nrb, sc, nc,
               Zbuf, zt, Mp, Sp, loss)
    F = np.empty((nc, B))
    _combine_rows(zt, Mp, Sp, nce, want_grads, gscale, rb, nrb, loss, g_true, F)
    if not want_grads:
        return (loss, np.empty((0, D), x.dtype), g_true, np.empty((0, 0, D), x.dtype),
                np.empty((0, 0)))
    dx, wpart, bpart = _slab_grads(x, rows, T, g_true, nce, rb, nrb, sc, nc, Zbuf, F,
                                   work[S * B:])
    return loss, dx, g_true, wpart, bpart


@njit(cache=True)
def _concat_ids(a, b):
    """``concatenate([a, b])`` of two int64 vectors (a loop: array-slice assignment
    compiles its error-message machinery, seconds per call site)."""
    out = np.empty(a.size + b.size, np.int64)
    for i in range(a.size):
        out[i] = a[i]
    for i in range(b.size):
        out[a.size + i] = b[i]
    return out


@njit(cache=True)
def _stable_order(ids):
    """Permutation sorting ``ids`` stably (equal ids keep their positions' order)."""
    N = ids.size
    if N == 0 or (ids.max() < (np.int64(1) << 40) and N < (1 << 23)):
        keys = ids * N + np.arange(N)         # composite keys: one int64 sort
        keys.sort()
        return keys % N
    order = np.argsort(ids)                   # ids beyond 2**40: sort, then put each run
    t = 0                                     # of equal ids back in position order
    while t < N:
        e = t + 1
        while e < N and ids[order[e]] == ids[order[t]]:
            e += 1
        order[t:e].sort()
        t = e
    return order


@njit(cache=True)
def merge_sparse(labels_flat, sampled, num_true, x, g_true, wpart, bpart):
    """Sum label and sampled contributions per unique class id.

    ``wpart`` (P, S, D) and ``bpart`` (P, S) hold the sampled rows' gradients as P partial
    sums (over blocks of examples), added here in partial order. Returns ``(ids, dW, db)`` in
    x's dtype: sorted unique ids of ``concat(labels_flat, sampled)``, the weight-gradient rows
    ``sum g_ij x_i`` (labels) + ``sum_p wpart[p, k]`` (samples) and the bias gradients. A
    stable order by id fixes the order of the sums. Serial: it adds ~(B*T + P*S) rows, a small
    share of a step, and a parallel version compiles much longer
    (docs/performance.md#compile-time).
    """
    BT = labels_flat.size
    S = sampled.size
    N = BT + S
    D = x.shape[1]
    allids = _concat_ids(labels_flat, sampled)
    order = _stable_order(allids)
    starts = np.empty(N + 1, np.int64)
    K = 0
    for t in range(N):
        if t == 0 or allids[order[t]] != allids[order[t - 1]]:
            starts[K] = t
            K += 1
    starts[K] = N
    ids = np.empty(K, np.int64)
    dW = np.zeros((K, D), x.dtype)
    db = np.empty(K, x.dtype)
    gt = g_true.reshape(-1)
    fpenv = ftz_enter()
    for u in range(K):
        acc = dW[u]
        bacc = 0.0
        for t in range(starts[u], starts[u + 1]):
            e = order[t]
            if e < BT:
                g = gt[e]
                xi = x[e // num_true]
                for c in range(D):
                    acc[c] += g * xi[c]
                bacc += g
            else:
                k = e - BT
                for p in range(wpart.shape[0]):
                    wk = wpart[p, k]
                    for c in range(D):
                        acc[c] += wk[c]
                    bacc += bpart[p, k]
        ids[u] = allids[order[starts[u]]]
        db[u] = bacc
    ftz_exit(fpenv)
    return ids, dW, db


@njit(cache=True)
def _hit_columns(labels, sampled, remove_hits):
    """:func:`accidental_hit_columns`, or no column masked (-1) when hits are kept."""
    if remove_hits:
        return accidental_hit_columns(labels, sampled)
    return np.full(labels.shape, -1, np.int64)


@njit(cache=True)
def step_result(loss, dx, g_true, wpart, bpart, labels, sampled, x, want_grads):
    """``(loss, dx, ids, dW, db)`` of a step from the fused kernels' outputs (the sparse
    merge; the last four empty when ``want_grads`` is False)."""
    if not want_grads:
        D = x.shape[1]
        return loss, dx, np.empty(0, np.int64), np.empty((0, D), x.dtype), np.empty(0, x.dtype)
    ids, dW, db = merge_sparse(labels.reshape(-1), sampled, labels.shape[1], x, g_true, wpart,
                               bpart)
    return loss, dx, ids, dW, db


@njit(cache=True)
def step_rows(rows, brows, x, labels, sampled, log_tec, log_sec, remove_hits, nce, want_grads,
              gscale, work):
    """One loss (+ gradients) step on already gathered rows: one dispatch for all phases.

    Returns ``(loss float64 (B,), dx, ids, dW, db)``, the gradients those of ``gscale *
    sum(loss)``; the last four are empty when ``want_grads`` is False. Parallel regions
    follow each other without returning to Python, so the worker threads stay awake between
    them.
    """
    hit_cols = _hit_columns(labels, sampled, remove_hits)
    loss, dx, g_true, wpart, bpart = sampled_fwd_bwd(x, rows, brows, labels.shape[1], log_tec,
                                                     log_sec, hit_cols, nce, want_grads, gscale,
                                                     work)
    return step_result(loss, dx, g_true, wpart, bpart, labels, sampled, x, want_grads)


@njit(cache=True)
def dense_sampled(weights, biases, x, labels, sampled, remove_hits):
    """What :func:`_fused` takes besides the weights, for S in one chunk: the sampled rows and
    biases, gathered in x's dtype, and the accidental-hit columns."""
    S = sampled.size
    D = x.shape[1]
    ws = np.empty((S, D), x.dtype)
    bs = np.empty(S, x.dtype)
    for k in range(S):
        r = sampled[k]
        bs[k] = biases[r]
        for c in range(D):
            ws[k, c] = weights[r, c]
    return ws, bs, _hit_columns(labels, sampled, remove_hits)


@njit(cache=True)
def step_dense(weights, biases, x, labels, sampled, log_tec, log_sec, remove_hits, nce, want_grads,
               gscale, work):
    """:func:`step_rows` on one weights array and one biases array. With S in one chunk the
    S sampled rows are gathered here and each row block of :func:`_fused` gathers its own
    label rows from ``weights`` (one parallel region; the same values as gathering first);
    otherwise everything is gathered first, in parallel, into ``work`` (at least
    ``work_size(B, T, S, D, True)`` elements)."""
    B, T = labels.shape
    BT = B * T
    S = sampled.size
    D = x.shape[1]
    nrb, rb, nc, _ = plan(B, S)
    if nc == 1:
        ws, bs, hit_cols = dense_sampled(weights, biases, x, labels, sampled, remove_hits)
        loss, dx, g_true, wpart, bpart = _fused(x, weights, biases, labels.reshape(-1), ws, bs,
                                                T, log_tec, log_sec, hit_cols, nce, want_grads,
                                                gscale, rb, nrb)
        return step_result(loss, dx, g_true, wpart, bpart, labels, sampled, x, want_grads)
    ids = _concat_ids(labels.reshape(-1), sampled)
    pos = np.arange(BT + S)
    rows = work[:(BT + S) * D].reshape((BT + S, D))
    brows = np.empty(BT + S, x.dtype)
    gather_rows(weights, ids, pos, rows)
    gather_vec(biases, ids, pos, brows)
    return step_rows(rows, brows, x, labels, sampled, log_tec, log_sec, remove_hits, nce,
                     want_grads, gscale, work[(BT + S) * D:])


guard_caches(globals())     # cache saves take a lock: _jitcache.py
