"""The exact scan over all classes behind ``SampledSoftmaxHead.predict``, ``evaluate`` and
``exact_loss`` (private): top-k and log-sum-exp of ``x . w + b`` for blocks of examples,
chunked over shards and threads (``_head_kernels``), never building a (batch, num_classes)
matrix; and the full-softmax loss of each example from them.

The products are computed by the kernel itself, not by a BLAS: no library with a thread pool
of its own is called from inside Numba's parallel region (docs/threads.md#blas).
"""
import numba
import numpy as np

from ._head_kernels import MR, NR, merge_heaps, merge_lse, scan_shard

__all__ = ["EXAMPLE_BLOCK", "scan_classes", "full_softmax_losses"]

EXAMPLE_BLOCK = 256   # examples per pass over the classes in predict / evaluate


def _chunk(nb):
    """Classes per kernel task for a block of ``nb`` examples (a multiple of ``NR``)."""
    return int(min(2048, max(128, (1 << 17) // nb))) // NR * NR


def scan_classes(x, ws, bs, strategy, dtype, k, want_lse):
    """Top-k ``(ids, scores)`` (scores in ``dtype``) and, when ``want_lse``, the log-sum-exp
    (else None) over all classes for the rows of ``x``, the classes' weights and biases being
    the shard arrays ``ws`` and ``bs`` laid out by ``strategy``."""
    P = len(ws)
    is_div = strategy == "div" or P == 1
    offsets = np.concatenate([[0], np.cumsum([w.shape[0] for w in ws])])
    nthr = numba.config.NUMBA_NUM_THREADS
    B, D = x.shape
    dtype = np.dtype(dtype)
    zero = np.zeros((), dtype)[()]
    ids = np.empty((B, k), np.int64)
    scores = np.empty((B, k), dtype)
    lse = np.empty(B) if want_lse else None
    ws = [np.asarray(w) for w in ws]
    bs = [np.asarray(b) for b in bs]
    wpad = np.empty((nthr, NR, D), dtype)
    for r0 in range(0, B, EXAMPLE_BLOCK):
        nb = min(EXAMPLE_BLOCK, B - r0)
        xp = np.zeros((-(-nb // MR) * MR, D), dtype)    # whole tiles of examples
        xp[:nb] = x[r0:r0 + nb]
        chunk = _chunk(nb)
        zbuf = np.empty((nthr, xp.shape[0], chunk), dtype)
        heap_s = np.full((nthr, nb, k), -np.inf, dtype)
        heap_i = np.full((nthr, nb, k), np.iinfo(np.int64).max, np.int64)
        run_m = np.full((nthr, nb), -np.inf)
        run_s = np.zeros((nthr, nb))
        for p in range(P):
            scan_shard(xp, nb, ws[p], bs[p], P, p, int(offsets[p]), is_div, chunk, zbuf, wpad,
                       zero, heap_s, heap_i, run_m, run_s, want_lse)
        merge_heaps(heap_s, heap_i, scores[r0:r0 + nb], ids[r0:r0 + nb])
        if want_lse:
            merge_lse(run_m, run_s, lse[r0:r0 + nb])
    return ids, scores, lse


def full_softmax_losses(x, lab, wl, bl, lse):
    """``lse - mean_j z[label_j]`` per example (float64, (B,)), ``wl`` and ``bl`` being the
    weight and bias rows of the labels ``lab`` (B, num_true) flattened."""
    zt = (np.einsum("bd,btd->bt", x.astype(np.float64), wl.reshape(lab.shape + (-1,))
                    .astype(np.float64)) + bl.reshape(lab.shape))
    return lse - zt.mean(axis=1)
