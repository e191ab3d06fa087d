"""The trusted training step: sampled loss and gradients on validated arguments (private).

The public losses (:mod:`fastsampled.losses`) and the head validate their arguments once and
then call :func:`loss_and_grads`; a backend that fetches the rows a step needs from
elsewhere (another process, another machine) gathers the rows of the distinct ids of
:func:`step_ids` and calls :func:`loss_and_grads_on_unique`. Nothing below this boundary checks again, so everything
passed in must hold what the docstrings say: the kernels do not bounds-check
(docs/architecture.md#the-training-step).
"""
import threading
from dataclasses import dataclass

import numpy as np

from ._blas import single_threaded_blas
from ._loss_kernels import (step_result, dense_sampled, fused_blocks, fused_outputs, plan,
                            step_dense, step_rows, work_size)
from ._params import ParamRows
from ._validate import as_float_array, as_id_array, check_range
from ._validate_kernels import first_not_positive_finite

__all__ = ["SparseGrads", "StepOptions", "Workspace", "check_sampled_values", "step_ids",
           "loss_and_grads", "loss_and_grads_on_unique", "thread_workspace"]


class SparseGrads:
    """Gradients of ``sum(loss)`` for one step.

    Attributes
    ----------
    inputs : ndarray, shape (batch, dim)
        Dense gradient w.r.t. the inputs, in the inputs' dtype.
    ids : ndarray of int64, shape (K,)
        Sorted unique class ids that received gradient (labels and sampled candidates).
    weights : ndarray, shape (K, dim)
        Gradient rows of ``weights`` for ``ids`` (duplicates already summed), weights' dtype.
    biases : ndarray, shape (K,)
        Gradient entries of ``biases`` for ``ids``, biases' dtype.
    sampled_values : tuple
        The ``(sampled_candidates, true_expected_count, sampled_expected_count)`` used.
    """

    __slots__ = ("inputs", "ids", "weights", "biases", "sampled_values")

    def __init__(self, inputs, ids, weights, biases, sampled_values):
        self.inputs = inputs
        self.ids = ids
        self.weights = weights
        self.biases = biases
        self.sampled_values = sampled_values

    def __repr__(self):
        return (f"SparseGrads(inputs={self.inputs.shape}, ids={self.ids.shape}, "
                f"weights={self.weights.shape}, biases={self.biases.shape})")


SparseGrads.__module__ = "fastsampled.losses"     # where users import it from


@dataclass(frozen=True)
class StepOptions:
    """What a step computes, besides its arrays.

    Attributes
    ----------
    nce : bool
        Sigmoid cross-entropy (NCE) instead of the sampled softmax.
    remove_accidental_hits : bool
        Mask a sampled candidate equal to a label of the row (docs/semantics.md#accidental-hits).
    subtract_log_q : bool
        Subtract ``log(expected_count)`` from every logit.
    """

    nce: bool = False
    remove_accidental_hits: bool = True
    subtract_log_q: bool = True


class Workspace:
    """Scratch memory that steps reuse, owned by whoever runs them (a head, a thread).

    A large step (many sampled classes) needs tens of megabytes of temporaries: the slab
    logits, the partial gradients, the gathered rows. Allocated afresh every step, they come
    from new pages that the kernel must fault in and zero each time; kept here, the pages
    stay mapped and warm from one step to the next (docs/performance.md#step-workspace). The
    buffers grow to the largest step seen and are freed with the workspace (or by
    :meth:`release`). Not thread-safe: one step at a time.

    Parameters
    ----------
    max_bytes : int, optional
        Buffers larger than this are not kept after the step (None: no limit).
    """

    __slots__ = ("max_bytes", "_buffers")

    def __init__(self, max_bytes=None):
        self.max_bytes = max_bytes
        self._buffers = {}

    def take(self, name, size, dtype):
        """A 1-D buffer of ``size`` elements of ``dtype`` (contents undefined), reused.

        Parameters
        ----------
        name : str
            Which buffer (several may be in use in one step).
        size : int
        dtype : numpy.dtype

        Returns
        -------
        ndarray
        """
        dtype = np.dtype(dtype)
        key = (name, dtype)
        buf = self._buffers.get(key)
        if buf is None or buf.size < size:
            buf = np.empty(max(int(size), 1), dtype)
            if self.max_bytes is None or buf.nbytes <= self.max_bytes:
                self._buffers[key] = buf
        return buf[:size]

    def release(self):
        """Free every buffer (the next step allocates again)."""
        self._buffers = {}


# Each thread's scratch memory for the loss functions and the framework adapters, reused from
# call to call (a head keeps its own): docs/performance.md#step-workspace. Buffers over the
# limit are not kept.
THREAD_WORKSPACE_MAX_BYTES = 256 << 20
_local = threading.local()


def thread_workspace():
    """The calling thread's :class:`Workspace` (made on first use)."""
    ws = getattr(_local, "workspace", None)
    if ws is None:
        ws = _local.workspace = Workspace(max_bytes=THREAD_WORKSPACE_MAX_BYTES)
    return ws


_NO_WORK = {dt: np.empty(0, dt) for dt in (np.dtype(np.float32), np.dtype(np.float64))}


def _work(workspace, B, T, S, D, dtype, gather):
    n = work_size(B, T, S, D, gather)
    if n == 0:
        return _NO_WORK[dtype]
    if workspace is None:
        return np.empty(n, dtype)
    return workspace.take("step", n, dtype)


def check_sampled_values(sampled_values, labels, num_sampled, num_rows):
    """Candidates a caller passed (instead of drawing them), checked against a step.

    Parameters
    ----------
    sampled_values : tuple
        ``(sampled_candidates (S,), true_expected_count (B, T) -- or (B,) when T == 1 --,
        sampled_expected_count (S,))``, as a candidate sampler returns them.
    labels : ndarray of int64, shape (B, T)
        The step's validated labels.
    num_sampled : int
        S.
    num_rows : int
        Rows of the parameters: every candidate must be one of them.

    Returns
    -------
    (sampled_candidates int64 (S,), true_expected_count (B, T), sampled_expected_count (S,))
    """
    B, T = labels.shape
    if not isinstance(sampled_values, (tuple, list)) or len(sampled_values) != 3:
        raise ValueError("sampled_values must be a triple (sampled_candidates, "
                         "true_expected_count, sampled_expected_count)")
    s = as_id_array(sampled_values[0], "sampled_values[0] (sampled_candidates)")
    if s.ndim != 1:
        raise ValueError(f"sampled_candidates must be 1-D, got shape {s.shape}")
    if s.size != num_sampled:
        raise ValueError(f"num_sampled is {num_sampled} but sampled_candidates has {s.size} entries")
    check_range(s, 0, num_rows, "sampled_candidates", f"the weights have {num_rows} rows")
    tec = as_float_array(sampled_values[1], "sampled_values[1] (true_expected_count)")
    if tec.ndim == 1 and T == 1 and tec.shape == (B,):
        tec = tec.reshape(B, 1)
    if tec.shape != (B, T):
        raise ValueError(f"true_expected_count must have shape {(B, T)}, got {tec.shape}")
    sec = as_float_array(sampled_values[2], "sampled_values[2] (sampled_expected_count)")
    if sec.shape != (num_sampled,):
        raise ValueError(f"sampled_expected_count must have shape ({num_sampled},), got {sec.shape}")
    return s, tec, sec


def step_ids(labels, sampled):
    """The class ids whose rows a step reads: the ``B*T`` labels row-major, then the ``S``
    candidates (repeats kept); :func:`loss_and_grads_on_unique` takes the rows of their
    distinct values."""
    return np.concatenate([labels.reshape(-1), sampled])


def _log_counts(counts, dtype, name, labels=None):
    c = np.ascontiguousarray(counts, dtype=dtype)
    first = first_not_positive_finite(c.reshape(-1))
    if first >= 0:
        idx = tuple(int(i) for i in np.unravel_index(first, c.shape))
        what = f" (label {int(labels[idx])})" if labels is not None else ""
        raise ValueError(
            f"{name} must be positive and finite to subtract its log; found {c[idx]} at index "
            f"{idx if len(idx) > 1 else idx[0]}{what}. A count of 0 means the sampler can never "
            "draw that class (e.g. a reserved id or a zero count of fixed_unigram); TensorFlow "
            "returns a NaN loss here. Use a sampler that gives every label non-zero probability, "
            "or subtract_log_q=False")
    return np.log(c)


def _log_q(labels, candidates, dtype, subtract_log_q):
    s, tec, sec = candidates
    if subtract_log_q:
        return (_log_counts(tec, dtype, "true_expected_count", labels),
                _log_counts(sec, dtype, "sampled_expected_count"))
    return np.zeros(labels.shape, dtype), np.zeros(s.size, dtype)


def _result(out, candidates, want_grads, w_dtype, b_dtype, dtype):
    loss, dx, uid, dW, db = out
    if not want_grads:
        return loss.astype(dtype), None
    # computed in the inputs' dtype, returned in the parameters' dtype (as TF casts back)
    return loss.astype(dtype), SparseGrads(dx, uid, dW.astype(w_dtype, copy=False),
                                           db.astype(b_dtype, copy=False), tuple(candidates))


def _dense_on_threads(weights, biases, x, labels, sampled, log_tec, log_sec, options,
                      want_grads, gscale, threads):
    """:func:`step_dense` for S in one chunk, its row blocks split over ``threads`` Python
    threads (this one included), each running :func:`fused_blocks` on a contiguous range
    without the GIL; the same values bit for bit. The threads end with the call: unlike an
    OpenMP worker, none keeps a core busy afterwards (a distributed step's caller waits for
    processes on the same cores next, docs/cluster.md#threads-on-the-caller)."""
    B, T = labels.shape
    nrb, rb, _, _ = plan(B, sampled.size)
    ws, bs, hit_cols = dense_sampled(weights, biases, x, labels, sampled,
                                     options.remove_accidental_hits)
    loss, g_true, dx, wpart, bpart = fused_outputs(x, sampled.size, T, nrb)
    true_ids = labels.reshape(-1)
    n = max(1, min(int(threads), nrb))
    cuts = [nrb * i // n for i in range(n + 1)]
    errors = []

    def run(i):
        try:
            fused_blocks(x, weights, biases, true_ids, ws, bs, T, log_tec, log_sec, hit_cols,
                         options.nce, want_grads, gscale, rb, cuts[i], cuts[i + 1], loss, g_true,
                         dx, wpart, bpart)
        except BaseException as e:      # re-raised on the calling thread
            errors.append(e)

    helpers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(1, n)]
    for t in helpers:
        t.start()
    run(0)
    for t in helpers:
        t.join()
    if errors:
        raise errors[0]
    return step_result(loss, dx, g_true, wpart, bpart, labels, sampled, x, want_grads)


def loss_and_grads(weights, biases, inputs, labels, candidates, options, *, want_grads=True,
                   grad_scale=1.0, workspace=None, threads=None):
    """Loss of one step and, if ``want_grads``, the gradients of ``grad_scale * sum(loss)``.

    Parameters
    ----------
    weights, biases : ParamRows
        2-D and 1-D, with the same rows (``_params.ParamRows``).
    inputs : ndarray of shape (B, D)
        C-contiguous, finite, float32 or float64; D is the weights' dim.
    labels : ndarray of int64, shape (B, T)
        Ids in ``[0, weights.num_rows)``.
    candidates : (sampled (S,) int64, true_expected_count (B, T), sampled_expected_count (S,))
        Sampled ids in range; expected counts positive and finite when
        ``options.subtract_log_q`` (checked here, as they are computed from the data).
    options : StepOptions
    want_grads : bool
    grad_scale : float
        Folded into dL/dz by the kernels at no cost (the head's mean passes ``1 / B``).
    workspace : Workspace, optional
        Scratch memory to reuse (None: allocated for this step).
    threads : int, optional
        Run the fused kernel of a single-array step with S in one chunk on this many Python
        threads, each a range of its row blocks without the GIL (:func:`_dense_on_threads`),
        instead of Numba's parallel region. None: Numba's.

    Returns
    -------
    loss : ndarray of shape (B,), the inputs' dtype
    grads : SparseGrads or None
    """
    x = inputs
    s = candidates[0]
    (B, D), T, S = x.shape, labels.shape[1], s.size
    log_tec, log_sec = _log_q(labels, candidates, x.dtype, options.subtract_log_q)
    with single_threaded_blas():
        if len(weights.shards) == 1 and len(biases.shards) == 1 and threads is not None \
                and plan(B, S)[2] == 1:
            out = _dense_on_threads(weights.shards[0], biases.shards[0], x, labels, s, log_tec,
                                    log_sec, options, want_grads, float(grad_scale), threads)
        elif len(weights.shards) == 1 and len(biases.shards) == 1:
            work = _work(workspace, B, T, S, D, x.dtype, True)
            out = step_dense(weights.shards[0], biases.shards[0], x, labels, s, log_tec,
                             log_sec, options.remove_accidental_hits, options.nce, want_grads,
                             float(grad_scale), work)
        else:
            ids = step_ids(labels, s)
            if workspace is None:
                rows = np.empty((ids.size, D), x.dtype)
            else:
                rows = workspace.take("rows", ids.size * D, x.dtype).reshape(ids.size, D)
            rows = weights.gather(ids, rows)
            brows = biases.gather(ids, np.empty(ids.size, x.dtype))
            out = step_rows(rows, brows, x, labels, s, log_tec, log_sec,
                            options.remove_accidental_hits, options.nce, want_grads,
                            float(grad_scale), _work(workspace, B, T, S, D, x.dtype, False))
    return _result(out, candidates, want_grads, weights.dtype, biases.dtype, x.dtype)


def loss_and_grads_on_unique(rows, bias_rows, uid, inverse, inputs, labels, candidates, options,
                             *, want_grads=True, grad_scale=1.0, workspace=None, threads=None):
    """:func:`loss_and_grads` on the rows of a step's distinct classes, gathered by the caller.

    The kernel reads the ``K`` rows in place through local ids (no ``(B*T + S, D)`` copy with
    a row per occurrence), exactly as a head reads its own weights.

    Parameters
    ----------
    rows : ndarray of shape (K, D)
        The weight rows of ``uid``, in the inputs' dtype, C-contiguous.
    bias_rows : ndarray of shape (K,)
        The matching biases, in the inputs' dtype.
    uid : ndarray of int64, shape (K,)
        ``np.unique(step_ids(labels, candidates[0]))``.
    inverse : ndarray of int, shape (B*T + S,)
        Where each of ``step_ids(labels, candidates[0])`` is in ``uid`` (``np.unique``'s
        ``return_inverse``): every entry in ``[0, K)``.
    inputs, labels, candidates, options, want_grads, grad_scale, workspace, threads
        As :func:`loss_and_grads`, except that labels and candidates need only be
        non-negative: they name the gradient rows and are never used to index an array.

    Returns
    -------
    loss, grads
        As :func:`loss_and_grads`, the gradients in the inputs' dtype, ``grads.ids`` global.
    """
    B, T = labels.shape
    local = np.asarray(inverse, np.int64).reshape(-1)
    local_candidates = (local[B * T:], candidates[1], candidates[2])
    W = ParamRows(rows, "rows", ndim=2, in_place=True)
    Bs = ParamRows(bias_rows, "bias_rows", ndim=1, in_place=True)
    loss, g = loss_and_grads(W, Bs, inputs, local[:B * T].reshape(B, T), local_candidates,
                             options, want_grads=want_grads, grad_scale=grad_scale,
                             workspace=workspace, threads=threads)
    if g is not None:
        g.ids = uid[g.ids]               # local ids are sorted as uid is: still sorted
        g.sampled_values = tuple(candidates)
    return loss, g
