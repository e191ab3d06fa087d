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

from ._layout import check_strategy
from ._params import ParamRows
from ._step import (SparseGrads, StepOptions, check_sampled_values, loss_and_grads,
                    thread_workspace)
from ._validate import (INT32_MAX, INT32_WHY, as_bool, as_float_array, as_int, as_int_at_most,
                        as_true_classes, check_finite, check_range)
from .samplers import LogUniformSampler

__all__ = ["sampled_softmax_loss", "nce_loss", "sampled_softmax_loss_and_grads",
           "nce_loss_and_grads", "SparseGrads"]


def _default_candidates(labels, num_sampled, num_classes, num_rows, seed):
    """TensorFlow's default candidates: ``log_uniform_candidate_sampler(labels, num_true,
    num_sampled, unique=True, range_max=num_classes, seed)``, drawn from labels checked by
    the caller (only their bound ``num_classes`` is checked here)."""
    if num_classes > num_rows:
        raise ValueError(f"num_classes ({num_classes}) exceeds the {num_rows} rows of weights: "
                         "the default sampler would draw classes that have no row")
    check_range(labels, 0, num_classes, "labels",
                f"num_classes is {num_classes}; the default log-uniform sampler draws from it")
    sampler = LogUniformSampler(num_classes, seed=seed)
    num_sampled = as_int_at_most(num_sampled, "num_sampled", 1, INT32_MAX, INT32_WHY)
    if num_sampled > num_classes:
        raise ValueError(
            f"num_sampled ({num_sampled}) must be <= num_classes ({num_classes}): the default "
            "sampler draws distinct classes from [0, num_classes)")
    return tuple(sampler.sample_unchecked(labels, num_sampled, True))


def _sampled_loss(nce, weights, biases, labels, inputs, num_sampled, num_classes, num_true,
                  sampled_values, remove_accidental_hits, partition_strategy, seed,
                  subtract_log_q, want_grads):
    """Validate every argument once, then run the trusted step (``_step``)."""
    x = np.ascontiguousarray(as_float_array(inputs, "inputs", 2))
    check_finite(x, "inputs")
    B, D = x.shape
    if B == 0 or D == 0:
        raise ValueError(f"inputs must have at least one row and one column, got shape {x.shape}")
    check_strategy(partition_strategy)
    W = ParamRows(weights, "weights", ndim=2, partition_strategy=partition_strategy)
    Bs = ParamRows(biases, "biases", ndim=1, partition_strategy=partition_strategy)
    if W.dim != D:
        raise ValueError(f"weights have dim {W.dim} but inputs have dim {D}")
    if Bs.num_rows != W.num_rows:
        raise ValueError(f"biases have {Bs.num_rows} rows but weights have {W.num_rows}")
    num_sampled = as_int(num_sampled, "num_sampled", 1)
    num_classes = as_int(num_classes, "num_classes", 1)
    options = StepOptions(nce=nce,
                          remove_accidental_hits=as_bool(remove_accidental_hits,
                                                         "remove_accidental_hits"),
                          subtract_log_q=as_bool(subtract_log_q, "subtract_log_q"))
    lab, _ = as_true_classes(labels, num_true, name="labels")
    if lab.shape[0] != B:
        raise ValueError(f"labels have {lab.shape[0]} rows but inputs have {B}")
    check_range(lab, 0, W.num_rows, "labels", f"the weights have {W.num_rows} rows")
    if sampled_values is None:
        candidates = _default_candidates(lab, num_sampled, num_classes, W.num_rows, seed)
    else:
        candidates = check_sampled_values(sampled_values, lab, num_sampled, W.num_rows)
    loss, grads = loss_and_grads(W, Bs, x, lab, candidates, options, want_grads=want_grads,
                                 workspace=thread_workspace())
    return (loss, grads) if want_grads else loss


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
