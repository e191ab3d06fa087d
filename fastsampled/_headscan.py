"""The exact scan over all classes behind ``SampledSoftmaxHead.predict``, ``evaluate`` and
``exact_loss`` (private): top-k and log-sum-exp of ``x . w + b`` for blocks of examples,
chunked over shards and threads (``_head_kernels``), never building a (batch, num_classes)
matrix; and the full-softmax loss of each example from them.
"""
import numba
import numpy as np

from ._blas import single_threaded_blas
from ._head_kernels import merge_heaps, merge_lse, scan_shard

__all__ = ["EXAMPLE_BLOCK", "scan_classes", "full_softmax_losses"]

EXAMPLE_BLOCK = 256   # examples per pass over the classes in predict / evaluate


def scan_classes(x, ws, bs, strategy, dtype, k, want_lse):
    """Top-k ``(ids, scores)`` (scores in ``dtype``) and, when ``want_lse``, the log-sum-exp
    (else None) over all classes for the rows of ``x``, the classes' weights and biases being
    the shard arrays ``ws`` and ``bs`` laid out by ``strategy``."""
    P = len(ws)
    is_div = strategy == "div" or P == 1
    offsets = np.concatenate([[0], np.cumsum([w.shape[0] for w in ws])])
    nthr = numba.config.NUMBA_NUM_THREADS
    B = x.shape[0]
    ids = np.empty((B, k), np.int64)
    scores = np.empty((B, k), dtype)
    lse = np.empty(B) if want_lse else None
    with single_threaded_blas():
        for r0 in range(0, B, EXAMPLE_BLOCK):
            xb = x[r0:r0 + EXAMPLE_BLOCK]
            nb = xb.shape[0]
            chunk = int(min(2048, max(128, (1 << 17) // nb)))
            heap_s = np.full((nthr, nb, k), -np.inf, dtype)
            heap_i = np.full((nthr, nb, k), np.iinfo(np.int64).max, np.int64)
            run_m = np.full((nthr, nb), -np.inf)
            run_s = np.zeros((nthr, nb))
            for p in range(P):
                scan_shard(xb, np.asarray(ws[p]), np.asarray(bs[p]), P, p,
                           int(offsets[p]), is_div, chunk, heap_s, heap_i, run_m, run_s,
                           want_lse)
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
