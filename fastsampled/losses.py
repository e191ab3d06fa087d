"""Sampled softmax and NCE losses with TensorFlow v1 semantics, and their sparse gradients.

One private pipeline serves both losses (as ``_compute_sampled_logits`` does in TensorFlow):
validate everything, draw candidates if none were given, gather the ``B*T + S`` rows the step
needs (from one array, a memory map, or a list of ``"mod"``/``"div"`` shards), then one fused
parallel kernel computes logits, loss and every gradient. Nothing is O(num_classes).

Differences from TensorFlow, all deliberate: bad input raises a clear error instead of a NaN
loss or a silently wrong lookup (a true expected count of 0, shards that do not form the
strategy's layout, labels outside the weights); expected counts may be float32 or float64
whatever the inputs' dtype; ``num_sampled`` must equal ``len(sampled_candidates)``. The
full list is in docs/semantics.md#departures-from-tensorflow; the logits and losses follow
docs/semantics.md#sampled-logits and docs/semantics.md#losses.
"""
import numpy as np

from . import _loss_kernels as K
from . import _validate_kernels as VK
from ._blas import single_threaded_blas
from ._validate import (FLOAT_DTYPES, as_bool, as_float_array, as_id_array, as_int,
                        check_finite, check_range)
from .samplers import _as_true_classes, log_uniform_candidate_sampler
from ._layout import check_layout, check_strategy, is_store, split_by_shard, store_shards

__all__ = ["sampled_softmax_loss", "nce_loss", "sampled_softmax_loss_and_grads",
           "nce_loss_and_grads", "SparseGrads"]


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


class _Rows:
    """A weights or biases argument normalised to a list of shards and a strategy."""

    def __init__(self, value, name, ndim, partition_strategy):
        if isinstance(value, np.ndarray) and value.ndim == ndim and value.dtype in FLOAT_DTYPES:
            self.shards = [value]           # the common case: one array (or np.memmap)
            self.sizes = [value.shape[0]]
            self.strategy = partition_strategy
            self.num_rows = value.shape[0]
            self.dtype = value.dtype
            self.dim = value.shape[1] if ndim == 2 else None
            return
        strategy = partition_strategy
        if is_store(value):             # a ShardedMatrix knows its own layout
            value, strategy = store_shards(value, name)
        if isinstance(value, (list, tuple)):
            if len(value) == 0:
                raise ValueError(f"{name} must not be an empty list of shards")
            shards = [np.asarray(s) for s in value]
        else:
            shards = [np.asarray(value)]
        for p, s in enumerate(shards):
            what = name if len(shards) == 1 else f"{name}[{p}]"
            if s.ndim != ndim:
                raise ValueError(f"{what} must be {ndim}-D, got shape {s.shape}")
            if s.dtype not in FLOAT_DTYPES:
                raise TypeError(f"{what} must be float32 or float64, got dtype {s.dtype}")
            if s.dtype != shards[0].dtype:
                raise TypeError(f"{name}: all shards must share one dtype, got {shards[0].dtype} "
                                f"and {s.dtype}")
            if ndim == 2 and s.shape[1] != shards[0].shape[1]:
                raise ValueError(f"{name}: all shards must have the same dim, got "
                                 f"{shards[0].shape[1]} and {s.shape[1]}")
        self.sizes = [s.shape[0] for s in shards]
        if len(shards) > 1:
            check_strategy(strategy)
            check_layout(self.sizes, strategy, name)
        self.shards = shards
        self.strategy = strategy
        self.num_rows = int(sum(self.sizes))
        self.dtype = shards[0].dtype
        self.dim = shards[0].shape[1] if ndim == 2 else None

    def gather(self, ids, out):
        """``out[t] = row(ids[t])``, cast to ``out.dtype``; ids already range-checked."""
        kernel = K.gather_rows if out.ndim == 2 else K.gather_vec
        for p, pos, rows in split_by_shard(ids, self.sizes, self.strategy):
            kernel(self.shards[p], rows, pos, out)
        return out


def _sampled_values(sampled_values, labels, num_true, num_sampled, num_classes, num_rows, seed):
    B = labels.shape[0]
    if sampled_values is None:
        if num_classes > num_rows:
            raise ValueError(f"num_classes ({num_classes}) exceeds the {num_rows} rows of weights: "
                             "the default sampler would draw classes that have no row")
        check_range(labels, 0, num_classes, "labels",
                    f"num_classes is {num_classes}; the default log-uniform sampler draws from it")
        s, tec, sec = log_uniform_candidate_sampler(labels, num_true, num_sampled, True,
                                                    num_classes, seed)
        return s, tec, sec
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
    if tec.ndim == 1 and num_true == 1 and tec.shape == (B,):
        tec = tec.reshape(B, 1)
    if tec.shape != (B, num_true):
        raise ValueError(f"true_expected_count must have shape {(B, num_true)}, got {tec.shape}")
    sec = as_float_array(sampled_values[2], "sampled_values[2] (sampled_expected_count)")
    if sec.shape != (num_sampled,):
        raise ValueError(f"sampled_expected_count must have shape ({num_sampled},), got {sec.shape}")
    return s, tec, sec


def _log_counts(counts, dtype, name, labels=None):
    c = np.ascontiguousarray(counts, dtype=dtype)
    first = VK.first_not_positive_finite(c.reshape(-1))
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


def _sampled_loss(nce, weights, biases, labels, inputs, num_sampled, num_classes, num_true,
                  sampled_values, remove_accidental_hits, partition_strategy, seed,
                  subtract_log_q, want_grads):
    x = np.ascontiguousarray(as_float_array(inputs, "inputs", 2))
    check_finite(x, "inputs")
    B, D = x.shape
    if B == 0 or D == 0:
        raise ValueError(f"inputs must have at least one row and one column, got shape {x.shape}")
    check_strategy(partition_strategy)
    W = _Rows(weights, "weights", 2, partition_strategy)
    Bs = _Rows(biases, "biases", 1, partition_strategy)
    if W.dim != D:
        raise ValueError(f"weights have dim {W.dim} but inputs have dim {D}")
    if Bs.num_rows != W.num_rows:
        raise ValueError(f"biases have {Bs.num_rows} rows but weights have {W.num_rows}")
    num_sampled = as_int(num_sampled, "num_sampled", 1)
    num_classes = as_int(num_classes, "num_classes", 1)
    remove_accidental_hits = as_bool(remove_accidental_hits, "remove_accidental_hits")
    subtract_log_q = as_bool(subtract_log_q, "subtract_log_q")
    lab, T = _as_true_classes(labels, num_true, name="labels")
    if lab.shape[0] != B:
        raise ValueError(f"labels have {lab.shape[0]} rows but inputs have {B}")
    check_range(lab, 0, W.num_rows, "labels", f"the weights have {W.num_rows} rows")
    s, tec, sec = _sampled_values(sampled_values, lab, T, num_sampled, num_classes, W.num_rows, seed)

    return _run_step(nce, W, Bs, x, lab, s, tec, sec, remove_accidental_hits, subtract_log_q,
                     want_grads)


def _run_step(nce, W, Bs, x, lab, s, tec, sec, remove_accidental_hits, subtract_log_q,
              want_grads, grad_scale=1.0):
    """The step on validated arguments: ``W``/``Bs`` are ``_Rows``, ``x`` (B, D) C-contiguous
    finite, ``lab`` (B, T) int64 and ``s`` (S,) int64 in range, ``tec``/``sec`` the expected
    counts. Returns ``loss`` or ``(loss, SparseGrads)``, the gradients those of ``grad_scale
    * sum(loss)`` (the head's mean reduction passes ``1 / B``; the kernels fold it into
    dL/dz at no cost)."""
    dt = x.dtype
    B, D = x.shape
    if subtract_log_q:
        log_tec = _log_counts(tec, dt, "true_expected_count", lab)
        log_sec = _log_counts(sec, dt, "sampled_expected_count")
    else:
        log_tec = np.zeros(lab.shape, dt)
        log_sec = np.zeros(s.size, dt)

    with single_threaded_blas():
        if len(W.shards) == 1 and len(Bs.shards) == 1:
            out = K.step_dense(W.shards[0], Bs.shards[0], x, lab, s, log_tec, log_sec,
                               remove_accidental_hits, nce, want_grads, float(grad_scale))
        else:
            ids = np.concatenate([lab.reshape(-1), s])
            rows = W.gather(ids, np.empty((ids.size, D), dt))
            brows = Bs.gather(ids, np.empty(ids.size, dt))
            out = K.step_rows(rows, brows, x, lab, s, log_tec, log_sec,
                              remove_accidental_hits, nce, want_grads, float(grad_scale))
    loss, dx, uid, dW, db = out
    if not want_grads:
        return loss.astype(dt)
    # computed in the inputs' dtype, returned in the parameters' dtype (as TF casts back)
    return loss.astype(dt), SparseGrads(dx, uid, dW.astype(W.dtype, copy=False),
                                        db.astype(Bs.dtype, copy=False), (s, tec, sec))


_DOC_ARGS = """
    Parameters
    ----------
    weights : ndarray of shape (num_rows, dim), list of shard arrays, or ShardedMatrix
        Class embeddings; float32 or float64 (np.memmap works). A list is mapped by
        ``partition_strategy`` exactly as ``tf.nn.embedding_lookup`` does; shard sizes must
        form that strategy's layout.
    biases : ndarray of shape (num_rows,), or list of shards
        Class biases, mapped like ``weights``.
    labels : array_like of int, shape (batch, num_true)
        Target classes (int32/int64), each in ``[0, num_rows)``. 1-D of length batch is
        accepted when ``num_true == 1``.
    inputs : ndarray of shape (batch, dim)
        float32 or float64 activations; rows of ``weights`` are cast to this dtype.
    num_sampled : int
        Number of sampled classes; must equal ``len(sampled_values[0])`` when given.
    num_classes : int
        Range of the default sampler (log-uniform, unique) used when ``sampled_values`` is
        None; used for nothing else.
    num_true : int
        Number of target classes per example; each gets target ``1 / num_true``.
    sampled_values : tuple, optional
        ``(sampled_candidates (S,), true_expected_count (batch, num_true),
        sampled_expected_count (S,))`` as returned by a candidate sampler.
    remove_accidental_hits : bool
        Add ``-FLT_MAX`` to the logit of a sampled candidate equal to a label of the row (only
        its last occurrence in the candidates, as TensorFlow).
    partition_strategy : {"mod", "div"}
        How ids map to shards when ``weights`` is a list (TF v1 default "mod"; TF v2 "div").
    seed : int, optional
        Seed of the default sampler (None: fresh entropy every call).
    subtract_log_q : bool
        Subtract ``log(expected_count)`` from each logit (TF always does; False gives plain
        negative sampling). With True every expected count must be positive: TensorFlow
        returns NaN for a count of 0, fastsampled raises ``ValueError``.
"""


def sampled_softmax_loss(weights, biases, labels, inputs, num_sampled, num_classes, num_true=1,
                         sampled_values=None, remove_accidental_hits=True,
                         partition_strategy="mod", seed=None, subtract_log_q=True, *, name=None):
    return _sampled_loss(False, weights, biases, labels, inputs, num_sampled, num_classes,
                         num_true, sampled_values, remove_accidental_hits, partition_strategy,
                         seed, subtract_log_q, False)


def nce_loss(weights, biases, labels, inputs, num_sampled, num_classes, num_true=1,
             sampled_values=None, remove_accidental_hits=False, partition_strategy="mod",
             seed=None, subtract_log_q=True, *, name=None):
    return _sampled_loss(True, weights, biases, labels, inputs, num_sampled, num_classes,
                         num_true, sampled_values, remove_accidental_hits, partition_strategy,
                         seed, subtract_log_q, False)


def sampled_softmax_loss_and_grads(weights, biases, labels, inputs, num_sampled, num_classes,
                                   num_true=1, sampled_values=None, remove_accidental_hits=True,
                                   partition_strategy="mod", seed=None, subtract_log_q=True, *,
                                   name=None):
    return _sampled_loss(False, weights, biases, labels, inputs, num_sampled, num_classes,
                         num_true, sampled_values, remove_accidental_hits, partition_strategy,
                         seed, subtract_log_q, True)


def nce_loss_and_grads(weights, biases, labels, inputs, num_sampled, num_classes, num_true=1,
                       sampled_values=None, remove_accidental_hits=False,
                       partition_strategy="mod", seed=None, subtract_log_q=True, *, name=None):
    return _sampled_loss(True, weights, biases, labels, inputs, num_sampled, num_classes,
                         num_true, sampled_values, remove_accidental_hits, partition_strategy,
                         seed, subtract_log_q, True)


sampled_softmax_loss.__doc__ = """Sampled softmax loss (``tf.compat.v1.nn.sampled_softmax_loss``).

    ``loss_i = logsumexp(z_i) - mean_j z_ij`` over the logits ``z_i`` of the row's true classes
    and the shared sampled classes, each corrected by ``-log(expected_count)``.
""" + _DOC_ARGS + """
    Returns
    -------
    ndarray of shape (batch,)
        Per-example loss in the inputs' dtype.

    Raises
    ------
    ValueError, TypeError
        On any invalid argument, before any computation (see the module docstring).

    Examples
    --------
    >>> import numpy as np, fastsampled as fs
    >>> rng = np.random.default_rng(0)
    >>> W = rng.normal(size=(1000, 16)).astype(np.float32); b = np.zeros(1000, np.float32)
    >>> x = rng.normal(size=(4, 16)).astype(np.float32); y = np.array([[3], [10], [500], [7]])
    >>> fs.sampled_softmax_loss(W, b, y, x, num_sampled=20, num_classes=1000, seed=1).shape
    (4,)
"""

nce_loss.__doc__ = """Noise-contrastive estimation loss (``tf.compat.v1.nn.nce_loss``).

    Sigmoid cross-entropy summed over the true columns (target ``1/num_true``) and the sampled
    columns (target 0) of each row. ``remove_accidental_hits`` defaults to False, as in TF.
""" + _DOC_ARGS + """
    Returns
    -------
    ndarray of shape (batch,)
        Per-example loss in the inputs' dtype.
"""

sampled_softmax_loss_and_grads.__doc__ = """Sampled softmax loss and the gradients of its sum.

    Same arguments and semantics as :func:`sampled_softmax_loss`; forward and backward run in
    one fused parallel kernel.
""" + _DOC_ARGS + """
    Returns
    -------
    loss : ndarray of shape (batch,)
    grads : SparseGrads
        ``grads.inputs`` (batch, dim) dense; ``grads.ids`` sorted unique class ids;
        ``grads.weights`` (K, dim) and ``grads.biases`` (K,) for those ids.

    Examples
    --------
    >>> import numpy as np, fastsampled as fs
    >>> rng = np.random.default_rng(0)
    >>> W = rng.normal(size=(1000, 16)).astype(np.float32); b = np.zeros(1000, np.float32)
    >>> x = rng.normal(size=(4, 16)).astype(np.float32); y = np.array([3, 10, 500, 7])
    >>> loss, g = fs.sampled_softmax_loss_and_grads(W, b, y, x, 20, 1000, seed=1)
    >>> g.inputs.shape, g.weights.shape[1], bool(np.all(np.diff(g.ids) > 0))
    ((4, 16), 16, True)
"""

nce_loss_and_grads.__doc__ = """NCE loss and the gradients of its sum.

    Same arguments and semantics as :func:`nce_loss`.
""" + _DOC_ARGS + """
    Returns
    -------
    loss : ndarray of shape (batch,)
    grads : SparseGrads
        As :func:`sampled_softmax_loss_and_grads`.
"""
