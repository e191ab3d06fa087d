"""Fused sampled-softmax / NCE forward and backward kernels (private).

Layout of one call: ``rows`` holds the gathered weight rows, already cast to the inputs'
dtype -- first the ``B*T`` rows of the labels (row-major), then the ``S`` sampled rows;
``brows`` the matching biases. The work is organised so that every parallel task owns what it
writes and the block sizes are fixed (not derived from the thread count), so results are the
same for any ``NUMBA_NUM_THREADS``. The sampled logits live in one row-major (B, S) matrix,
overwritten by ``dL/dz`` once an example's loss is known, so every per-example pass runs over
contiguous memory:

1. row blocks (``_RB`` examples): sampled logits by one BLAS product ``x_blk @ W_s^T``, true
   logits by dot products, masking of accidental hits, ``- log q``, loss and ``dL/dz`` row by
   row (softmax or sigmoid in float64), then ``d_inputs_blk = G_blk @ W_s + sum_j g_ij W[L_ij]``;
2. tiles of (sampled block x batch chunk): ``dW_s = G^T @ x`` and ``db_s = sum_i G``, partial
   sums over batch chunks added in a fixed order;
3. ``merge_sparse``: label and sampled contributions summed per unique class id, each unique id
   owned by one task.

BLAS (``np.dot``) must run single-threaded inside these parallel regions; ``_blas.py`` sees to it.
"""
import numpy as np
from numba import njit, prange

from ._rng import PRANGE_ONLY, mix64
from ._vmath import sum_exp_shifted
from ._vmath import vexp as _vexp
from ._vmath import vlog1p_small as _vlog1p

# Fixed tile sizes (never derived from the thread count, so results do not depend on it).
_RA, _SA = 256, 1024   # phase A (logits) tile: rows x sampled classes
_RB = 64               # phase B: rows per task
_FB = 256              # fused path: examples per task ...
_FUSED_MAX_S = 512     # ... used when S is at most this and there are >= 2 blocks
_RC, _SC = 256, 2048   # phase C (d_inputs): at most _RC rows per task x chunk of S
_MIN_RC = 64           # phase C: at least this many rows per task (B/8 between the two)
_SD = 512              # phase D (d_weights): sampled classes per task ...
_MIN_BD = 256          # ... x chunk of at least this many examples when S is small
FLT_MAX = np.float64(np.finfo(np.float32).max)


@njit(cache=True)
def accidental_hit_columns(labels, sampled):
    """``cols[i, j]`` = last position of ``labels[i, j]`` in ``sampled``, or -1 (TF semantics)."""
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
def gather_vec(src, idx, pos, out):
    for t in prange(idx.size):
        out[pos[t]] = src[idx[t]]


@njit(parallel=PRANGE_ONLY, cache=True)
def shard_map(ids, num_shards, is_div, q, r):
    """TensorFlow's id -> (shard, row) map (SEMANTICS.md section 4); ids already validated."""
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


@njit(cache=True, fastmath={"reassoc", "contract"})
def _rowdot(a, b):
    """Dot product of two rows; reassociation lets LLVM vectorise the reduction."""
    acc = a[0] * b[0]
    for c in range(1, a.size):
        acc += a[c] * b[c]
    return acc


@njit(cache=True)
def _add_true_terms(d, g_true, rows, r0):
    """``d[ii] += sum_j g_true[r0+ii, j] * rows[(r0+ii)*T + j]``: the label rows' share of
    d_inputs for the block of examples starting at ``r0``."""
    T = g_true.shape[1]
    for ii in range(d.shape[0]):
        i = r0 + ii
        for j in range(T):
            g = g_true[i, j]
            t = i * T + j
            for c in range(d.shape[1]):
                d[ii, c] += g * rows[t, c]


@njit(cache=True)
def _sum_partials(parts, k, out):
    """``out = sum_p parts[p, k]``, added in partial order (the same for any thread count)."""
    for c in range(out.size):
        a = parts[0, k, c]
        for p in range(1, parts.shape[0]):
            a += parts[p, k, c]
        out[c] = a


@njit(cache=True)
def _ceil_div(a, b):
    return (a + b - 1) // b


@njit(parallel=PRANGE_ONLY, cache=True)
def logits(x, ws):
    """Phase A: ``Z = x @ W_s^T`` (B, S), the sampled logits, by tiles of rows x classes."""
    B = x.shape[0]
    S = ws.shape[0]
    Z = np.empty((B, S), x.dtype)
    nra = _ceil_div(B, _RA)
    nsa = _ceil_div(S, _SA)
    for tile in prange(nra * nsa):
        r0 = (tile % nra) * _RA
        r1 = min(B, r0 + _RA)
        s0 = (tile // nra) * _SA
        s1 = min(S, s0 + _SA)
        Z[r0:r1, s0:s1] = np.dot(x[r0:r1], ws[s0:s1].T)
    return Z


@njit(cache=True)
def _loss_rows(x, rows, brows, num_true, log_tec, log_sec, hit_cols, nce, want_grads, Z,
                  r0, r1, loss, g_true):
    """Phase B on examples ``r0 .. r1-1``: true logits, masking, ``- log q``, loss, dL/dz.

    ``Z`` (r1 - r0, S) holds their sampled logits on entry and ``dL/dz`` of the sampled
    columns on exit (when ``want_grads``). Logit arithmetic follows TensorFlow in x's dtype
    (+ bias, + ``-FLT_MAX`` once per hit column, ``- log q``); softmax / sigmoid run in
    float64 over the row's ``T + S`` logits, contiguous here, so every pass is a vector loop
    over one row. Writes ``loss`` (float64) and ``g_true`` (B, T) for those examples.
    """
    T = num_true
    BT = x.shape[0] * T
    S = Z.shape[1]
    n = T + S
    dt = x.dtype.type
    inv_t = 1.0 / T
    bs = brows[BT:]
    neg = dt(-FLT_MAX)
    z = np.empty(n, np.float64)
    e = np.empty(n, np.float64)
    scratch = np.empty(n, np.float64)
    s2 = np.empty(n, np.float64)
    masked = np.empty(T, np.int64)
    for i in range(r0, r1):
        zi = Z[i - r0]
        tsum = 0.0
        for j in range(T):
            t = i * T + j
            z[j] = np.float64(dt(_rowdot(x[i], rows[t]) + brows[t]) - log_tec[i, j])
            tsum += z[j]
        for k in range(S):
            zi[k] = zi[k] + bs[k]
        nm = 0
        for j in range(T):
            k = hit_cols[i, j]
            if k >= 0:
                dup = False
                for m in range(nm):
                    if masked[m] == k:
                        dup = True
                if not dup:  # assigned once, even when a label repeats in the row
                    masked[nm] = k
                    nm += 1
                    zi[k] = zi[k] + neg
        for k in range(S):
            z[T + k] = np.float64(zi[k] - log_sec[k])
        if not nce:
            mx = z[0]
            for k in range(1, n):
                mx = max(mx, z[k])
            acc = sum_exp_shifted(z, mx, scratch, e, s2)
            loss[i] = mx + np.log(acc) - tsum * inv_t
            if want_grads:
                inv = 1.0 / acc
                for j in range(T):
                    g_true[i, j] = dt(e[j] * inv - inv_t)
                for k in range(S):
                    zi[k] = dt(e[T + k] * inv)
        else:
            # loss terms max(z, 0) + log1p(exp(-|z|)); sigmoid(z) from e = exp(-|z|)
            acc = 0.0
            for k in range(n):
                acc += max(z[k], 0.0)
                scratch[k] = -abs(z[k])
            _vexp(scratch, e, s2)                 # e = exp(-|z|)
            _vlog1p(e, scratch)
            for k in range(n):
                acc += scratch[k]
            loss[i] = acc - tsum * inv_t
            if want_grads:
                for k in range(n):
                    sg = 1.0 / (1.0 + e[k])
                    if z[k] < 0.0:
                        sg = e[k] * sg
                    scratch[k] = sg
                for j in range(T):
                    g_true[i, j] = dt(scratch[j] - inv_t)
                for k in range(S):
                    zi[k] = dt(scratch[T + k])



@njit(parallel=PRANGE_ONLY, cache=True)
def rows_loss(x, rows, brows, num_true, log_tec, log_sec, hit_cols, nce, want_grads, Z):
    """Phase B over all examples in parallel; returns ``loss`` (B,) float64, ``g_true``."""
    B = x.shape[0]
    loss = np.empty(B, np.float64)
    g_true = np.empty((B, num_true), x.dtype)
    nblk = _ceil_div(B, _RB)
    for blk in prange(nblk):
        r0 = blk * _RB
        r1 = min(B, r0 + _RB)
        _loss_rows(x, rows, brows, num_true, log_tec, log_sec, hit_cols, nce, want_grads,
                   Z[r0:r1], r0, r1, loss, g_true)
    return loss, g_true


@njit(cache=True)
def _add_col_sums(g, acc):
    """``acc[k] += sum_i g[i, k]`` (float64 accumulators, one vector loop per row)."""
    for i in range(g.shape[0]):
        gi = g[i]
        for k in range(g.shape[1]):
            acc[k] += gi[k]


@njit(parallel=PRANGE_ONLY, cache=True)
def fused_blocks(x, rows, brows, num_true, log_tec, log_sec, hit_cols, nce, want_grads):
    """All four phases per block of ``_FB`` examples in one parallel loop (for small S).

    Each task computes its block's logits, loss, ``dL/dz``, ``d_inputs`` rows and a partial
    ``dW_s``/``db_s``; the partials are added in block order afterwards. The block's data
    (inputs, logits, W_s) stays in cache and there is one parallel region instead of four.
    """
    B, D = x.shape
    T = num_true
    BT = B * T
    S = rows.shape[0] - BT
    dt = x.dtype.type
    ws = rows[BT:]
    nb = _ceil_div(B, _FB)
    loss = np.empty(B, np.float64)
    g_true = np.empty((B, T), x.dtype)
    dx = np.empty((B, D), x.dtype)
    wpart = np.empty((nb, S, D), x.dtype)
    bpart = np.zeros((nb, S), np.float64)
    for blk in prange(nb):
        r0 = blk * _FB
        r1 = min(B, r0 + _FB)
        z = np.dot(x[r0:r1], ws.T)                      # (rb, S) sampled logits
        _loss_rows(x, rows, brows, T, log_tec, log_sec, hit_cols, nce, want_grads, z,
                   r0, r1, loss, g_true)
        if want_grads:                                  # z now holds dL/dz
            d = np.dot(z, ws)
            _add_true_terms(d, g_true, rows, r0)
            dx[r0:r1] = d
            wpart[blk] = np.dot(z.T, x[r0:r1])
            _add_col_sums(z, bpart[blk])
    dws = np.empty((S, D), x.dtype)
    dbs = np.empty(S, x.dtype)
    if not want_grads:
        return loss, dx, g_true, dws, dbs
    for k in prange(S):
        _sum_partials(wpart, k, dws[k])
        a = 0.0
        for p in range(nb):
            a += bpart[p, k]
        dbs[k] = dt(a)
    return loss, dx, g_true, dws, dbs


@njit(parallel=PRANGE_ONLY, cache=True)
def grad_inputs(x, rows, num_true, g_true, G):
    """Phase C: ``dx = G @ W_s + sum_j g_true[:, j] * W[L_j]``.

    Each task owns a block of examples and sums over chunks of S in a fixed order, so no
    partial buffers are needed and the block's rows are written once.
    """
    B, D = x.shape
    T = num_true
    BT = B * T
    S = G.shape[1]
    ws = rows[BT:]
    dx = np.empty((B, D), x.dtype)
    rc = min(_RC, max(_MIN_RC, _ceil_div(B, 8)))
    nrc = _ceil_div(B, rc)
    nsc = _ceil_div(S, _SC)
    for blk in prange(nrc):
        r0 = blk * rc
        r1 = min(B, r0 + rc)
        if nsc == 1:
            acc = np.dot(G[r0:r1], ws)
        else:
            acc = np.dot(np.ascontiguousarray(G[r0:r1, 0:_SC]), ws[0:_SC])
            for c in range(1, nsc):
                s0 = c * _SC
                s1 = min(S, s0 + _SC)
                acc += np.dot(np.ascontiguousarray(G[r0:r1, s0:s1]), ws[s0:s1])
        _add_true_terms(acc, g_true, rows, r0)
        dx[r0:r1] = acc
    return dx


@njit(parallel=PRANGE_ONLY, cache=True)
def grad_sampled(x, G):
    """Phase D: ``dW_s = G^T @ x`` and ``db_s = sum_i G``.

    Tasks are tiles of (sampled classes x examples); each copies its tile of ``G`` once and
    multiplies it transposed. The partial sums over example chunks are added in a fixed
    order afterwards.
    """
    B, D = x.shape
    S = G.shape[1]
    dt = x.dtype.type
    dws = np.empty((S, D), x.dtype)
    dbs = np.empty(S, x.dtype)
    nsd = _ceil_div(S, _SD)
    bd = B
    if nsd < 4:
        bd = max(_MIN_BD, _ceil_div(B, 4))
    nbd = _ceil_div(B, bd)
    wpart = np.empty((nbd, S, D), x.dtype)
    bpart = np.zeros((nbd, S), np.float64)
    for tile in prange(nsd * nbd):
        s0 = (tile // nbd) * _SD
        s1 = min(S, s0 + _SD)
        cb = tile % nbd
        b0 = cb * bd
        b1 = min(B, b0 + bd)
        g = np.ascontiguousarray(G[b0:b1, s0:s1])
        wpart[cb, s0:s1] = np.dot(g.T, x[b0:b1])
        _add_col_sums(g, bpart[cb, s0:s1])
    for k in prange(S):
        _sum_partials(wpart, k, dws[k])
        a = 0.0
        for p in range(nbd):
            a += bpart[p, k]
        dbs[k] = dt(a)
    return dws, dbs


@njit(cache=True)
def sampled_fwd_bwd(x, rows, brows, num_true, log_tec, log_sec, hit_cols, nce, want_grads):
    """Loss (float64, per example) and, if ``want_grads``, all gradients of sum(loss).

    Parameters
    ----------
    x : (B, D) float array, C-contiguous.
    rows : (B*T + S, D) same dtype; brows : (B*T + S,) same dtype.
    log_tec : (B, T) and log_sec : (S,) in x's dtype: the log expected counts to subtract
        (zeros when subtract_log_q is False).
    hit_cols : (B, T) int64, the sampled column to mask for each label, or -1.
    nce : False for sampled softmax, True for NCE (sigmoid cross-entropy).

    Returns
    -------
    loss (B,) float64, dx (B, D), g_true (B, T), dws (S, D), dbs (S,) in x's dtype.

    Small S: one fused parallel loop over blocks of examples. Otherwise four phases, each a
    parallel loop over fixed-size tiles (so any thread count gives the same result): A
    logits, B loss and ``dL/dz``, C ``d_inputs``, D sampled-row gradients.
    """
    B, D = x.shape
    S = rows.shape[0] - B * num_true
    if S <= _FUSED_MAX_S and B >= 2 * _FB:
        return fused_blocks(x, rows, brows, num_true, log_tec, log_sec, hit_cols, nce, want_grads)
    Z = logits(x, rows[B * num_true:])
    loss, g_true = rows_loss(x, rows, brows, num_true, log_tec, log_sec, hit_cols, nce,
                             want_grads, Z)
    if not want_grads:
        return loss, np.empty((0, D), x.dtype), g_true, np.empty((0, D), x.dtype), np.empty(0, x.dtype)
    dx = grad_inputs(x, rows, num_true, g_true, Z)
    dws, dbs = grad_sampled(x, Z)
    return loss, dx, g_true, dws, dbs


@njit(cache=True)
def merge_sparse(labels_flat, sampled, num_true, x, g_true, dws, dbs):
    """Sum label and sampled contributions per unique class id.

    Returns ``(ids, dW, db)`` in x's dtype: sorted unique ids of ``concat(labels_flat,
    sampled)``, the weight-gradient rows ``sum g_ij x_i`` (labels) + ``dws[k]`` (samples) and
    the bias gradients. A stable order by id fixes the order of the sums. Serial: it adds
    ~(B*T + S) rows, a few tens of microseconds, and a parallel version compiled 8 s longer.
    """
    BT = labels_flat.size
    S = sampled.size
    N = BT + S
    D = x.shape[1]
    allids = np.empty(N, np.int64)
    allids[:BT] = labels_flat
    allids[BT:] = sampled
    # stable order by id: sort the composite keys id * N + position (ids are < 2**40 and
    # N < 2**23 in practice; otherwise fall back to a stable mergesort)
    if allids.max() < (np.int64(1) << 40) and N < (1 << 23):
        keys = allids * N + np.arange(N)
        keys.sort()
        order = keys % N
    else:
        order = np.argsort(allids, kind="mergesort")
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
                for c in range(D):
                    acc[c] += dws[k, c]
                bacc += dbs[k]
        ids[u] = allids[order[starts[u]]]
        db[u] = bacc
    return ids, dW, db


@njit(cache=True)
def step_rows(rows, brows, x, labels, sampled, log_tec, log_sec, remove_hits, nce, want_grads):
    """One loss (+ gradients) step on already gathered rows: one dispatch for all phases.

    Returns ``(loss float64 (B,), dx, ids, dW, db)``; the last four are empty when
    ``want_grads`` is False. Parallel regions follow each other without returning to Python,
    so the worker threads stay awake between them.
    """
    B, T = labels.shape
    D = x.shape[1]
    if remove_hits:
        hit_cols = accidental_hit_columns(labels, sampled)
    else:
        hit_cols = np.full((B, T), -1, np.int64)
    loss, dx, g_true, dws, dbs = sampled_fwd_bwd(x, rows, brows, T, log_tec, log_sec, hit_cols,
                                                 nce, want_grads)
    if not want_grads:
        return loss, dx, np.empty(0, np.int64), np.empty((0, D), x.dtype), np.empty(0, x.dtype)
    ids, dW, db = merge_sparse(labels.reshape(-1), sampled, T, x, g_true, dws, dbs)
    return loss, dx, ids, dW, db


@njit(cache=True)
def step_dense(weights, biases, x, labels, sampled, log_tec, log_sec, remove_hits, nce, want_grads):
    """:func:`step_rows` with the gather from one weights array and one biases array."""
    B, T = labels.shape
    BT = B * T
    S = sampled.size
    ids = np.empty(BT + S, np.int64)
    ids[:BT] = labels.reshape(-1)
    ids[BT:] = sampled
    pos = np.arange(BT + S)
    rows = np.empty((BT + S, x.shape[1]), x.dtype)
    brows = np.empty(BT + S, x.dtype)
    gather_rows(weights, ids, pos, rows)
    gather_vec(biases, ids, pos, brows)
    return step_rows(rows, brows, x, labels, sampled, log_tec, log_sec, remove_hits, nce,
                     want_grads)
