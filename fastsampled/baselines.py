"""What a sampled step is compared with: one full-softmax train step over every class.

Sampled softmax approximates the gradient of the full softmax cross-entropy, whose every
step multiplies the batch by all ``num_classes`` weight rows: O(batch x num_classes x dim)
work against the sampled step's O(batch x num_sampled x dim). The time of that exact step is
what sampling saves, so ``fastsampled demo`` prints it beside the sampled step and the
benchmarks in ``bench/`` draw it against the number of classes.

The baseline here is plain numpy (its BLAS, its default threads), and it is a generous
one: it never materialises the ``(batch, num_classes)`` logits a framework would, and it
leaves out the dense update of the weights, so the comparison does not flatter the sampled
step.
"""
import time

import numpy as np

__all__ = ["full_softmax_step_time"]


def full_softmax_step_time(W, b, x, labels, rows=128, chunk=1 << 15):
    """Seconds of one full-softmax train step (forward and backward over every class).

    The step is the exact one sampled softmax approximates: the logits ``x @ W.T + b`` of
    every class, the softmax cross-entropy against ``labels``, and the gradients of its sum
    with respect to the inputs (``(softmax - onehot) @ W``) and to the weights
    (``(softmax - onehot).T @ x``). It runs in float32 on the first ``rows`` examples of the
    batch and is scaled linearly to the whole batch (every example costs the same products).

    The classes are taken ``chunk`` at a time in two passes: a running log-sum-exp over all
    of them, then the gradients of each chunk. Memory stays O(rows x chunk) instead of the
    ``(batch, num_classes)`` logits a framework materialises; the price is one extra product
    (the logits are computed twice). Each chunk's weight gradient is computed into a scratch
    buffer and dropped (a real step would apply it to ``W``), so the step's dense write of
    the weights is not part of the time.

    Parameters
    ----------
    W : array_like of shape (num_classes, dim)
        Output weights, float32 (an ``np.memmap`` works; its pages are read as the chunks
        are reached).
    b : array_like of shape (num_classes,)
        Output biases.
    x : ndarray of shape (batch, dim)
        Inputs of the batch; only the first ``rows`` are used.
    labels : array_like of int of shape (batch,) or (batch, 1)
        The true class of every example, in ``[0, num_classes)``.
    rows : int, default 128
        Examples actually computed; the time is scaled by ``batch / min(rows, batch)``.
    chunk : int, default 32768
        Classes per pass over the weights.

    Returns
    -------
    float
        Estimated seconds of one full-softmax train step for the whole batch ``x``.
    """
    V, D = W.shape
    xs = np.ascontiguousarray(x[:rows], np.float32)
    ys = np.asarray(labels).reshape(-1)[:rows]
    n = xs.shape[0]
    z = np.empty((n, min(chunk, V)), np.float32)
    dx = np.zeros_like(xs)
    dW = np.empty((min(chunk, V), D), np.float32)
    t0 = time.perf_counter()
    m = np.full(n, -np.inf, np.float32)
    acc = np.zeros(n, np.float32)
    for c0 in range(0, V, chunk):
        wc = W[c0:c0 + chunk]
        zc = z[:, :wc.shape[0]]
        np.matmul(xs, wc.T, out=zc)
        zc += b[c0:c0 + chunk]
        m_new = np.maximum(m, zc.max(axis=1))
        acc *= np.exp(m - m_new)
        zc -= m_new[:, None]
        np.exp(zc, out=zc)
        acc += zc.sum(axis=1)
        m = m_new
    lse = m + np.log(acc)
    for c0 in range(0, V, chunk):
        wc = W[c0:c0 + chunk]
        zc = z[:, :wc.shape[0]]
        np.matmul(xs, wc.T, out=zc)
        zc += b[c0:c0 + chunk]
        zc -= lse[:, None]
        np.exp(zc, out=zc)                               # softmax
        hit = (ys >= c0) & (ys < c0 + wc.shape[0])
        zc[np.nonzero(hit)[0], ys[hit] - c0] -= 1.0      # minus the one-hot target
        dx += zc @ wc
        np.matmul(zc.T, xs, out=dW[:wc.shape[0]])        # a real step would apply it to W
    return (time.perf_counter() - t0) * x.shape[0] / n
