"""TensorFlow adapter: ``tf.nn.sampled_softmax_loss`` and ``tf.nn.nce_loss`` on fastsampled's kernels.

Change the import and nothing else::

    loss = tf.reduce_mean(fastsampled.tf.sampled_softmax_loss(
        weights=w, biases=b, labels=labels, inputs=hidden, num_sampled=64, num_classes=V))

The functions take what TensorFlow's take -- ``tf.Tensor``, ``tf.Variable``, numpy arrays, or a
list of them for weights partitioned ``"mod"`` or ``"div"`` -- and work eagerly, under
``tf.GradientTape`` and inside ``tf.function``. The gradient of the weights and biases arrives
as ``tf.IndexedSlices`` over the rows the step used, as it does from TensorFlow's own op, so
any TensorFlow or Keras optimizer applies the same sparse update.

How a call runs
---------------
1. The candidates: ``sampled_values`` when given, otherwise TensorFlow's own
   ``tf.random.log_uniform_candidate_sampler(labels, num_true, num_sampled, unique=True,
   range_max=num_classes, seed=seed)`` -- the op TensorFlow's loss calls, so the same seeds
   draw the same candidates.
2. ``tf.unique`` of the labels and candidates; TensorFlow gathers those rows of the weights and
   biases (``tf.gather``, or ``embedding_lookup`` with the partition strategy for a list), so
   their gradients are ``IndexedSlices``.
3. One ``tf.numpy_function`` runs the fused kernel on the gathered rows: the loss and every
   gradient of ``sum(loss)`` in one pass (docs/tensorflow.md#inside-a-tensorflow-model).
4. The backward pass scales those gradients by the incoming gradient. When that gradient
   differs between examples (a weighted loss, a mask) the weights' gradient is not a
   multiple of the summed one; it is then computed by TensorFlow's own op on the gathered
   rows.

:data:`v1` holds the ``tf.compat.v1.nn`` signatures (``partition_strategy``, default
``"mod"``); the module-level functions are the v2 ones (``"div"``). Importing this module needs
TensorFlow (``pip install 'fastsampled[tensorflow]'``); nothing else in fastsampled imports it.
"""
try:
    import tensorflow as tf
except ImportError as e:  # TensorFlow is an optional extra
    raise ImportError(
        "fastsampled.tf needs TensorFlow, which is an optional extra of fastsampled: "
        "pip install 'fastsampled[tensorflow]'") from e

import types

import numpy as np

from ._layout import check_layout, check_strategy
from ._params import ParamRows
from ._step import StepOptions, loss_and_grads, thread_workspace
from ._validate import as_bool, as_int

__all__ = ["sampled_softmax_loss", "nce_loss", "v1"]


# --------------------------------------------------------------------------- arguments

def _parts(value, name, ndim):
    """A parameter as a list of tensors or variables (one, or the shards of a partitioned
    one), each with ``ndim`` dimensions and a known number of rows."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueError(f"{name} is an empty list")
    out = []
    for i, item in enumerate(items):
        what = name if len(items) == 1 else f"{name}[{i}]"
        if not isinstance(item, tf.Variable):
            try:
                item = tf.convert_to_tensor(item)
            except (TypeError, ValueError) as e:
                raise TypeError(f"{what} must be a tf.Tensor, tf.Variable or array, got "
                                f"{type(item).__name__}") from e
        if item.dtype not in (tf.float32, tf.float64):
            raise TypeError(f"{what} must be float32 or float64, got {item.dtype.name}")
        if item.shape.rank != ndim:
            raise ValueError(f"{what} must have {ndim} dimension(s), got shape {item.shape}")
        if item.shape[0] is None:
            raise ValueError(f"{what} must have a known number of rows, got shape {item.shape}")
        out.append(item)
    return out


def _num_rows(parts, name, strategy):
    sizes = [int(p.shape[0]) for p in parts]
    if len(sizes) > 1:
        check_layout(sizes, strategy, name)
    return sum(sizes)


def _gather(parts, ids, strategy, dtype):
    if len(parts) == 1:
        rows = tf.gather(parts[0], ids)
    else:
        rows = tf.compat.v1.nn.embedding_lookup(parts, ids, partition_strategy=strategy)
    return rows if rows.dtype == dtype else tf.cast(rows, dtype)


def _candidates(sampled_values, labels, num_true, num_sampled, num_classes, seed):
    if sampled_values is None:
        sampled_values = tf.random.log_uniform_candidate_sampler(
            true_classes=labels, num_true=num_true, num_sampled=num_sampled, unique=True,
            range_max=num_classes, seed=seed)
    if not isinstance(sampled_values, (tuple, list)) or len(sampled_values) != 3:
        raise ValueError("sampled_values must be a triple (sampled_candidates, "
                         "true_expected_count, sampled_expected_count)")
    s, tec, sec = (tf.stop_gradient(tf.convert_to_tensor(v)) for v in sampled_values)
    if not s.dtype.is_integer:
        raise TypeError(f"sampled_candidates must be integers, got {s.dtype.name}")
    if s.shape.rank != 1:
        raise ValueError(f"sampled_candidates must be 1-D, got shape {s.shape}")
    if s.shape[0] is not None and s.shape[0] != num_sampled:
        raise ValueError(f"num_sampled is {num_sampled} but sampled_candidates has "
                         f"{s.shape[0]} entries")
    for what, v in (("true_expected_count", tec), ("sampled_expected_count", sec)):
        if not v.dtype.is_floating:
            raise TypeError(f"{what} must be floating point, got {v.dtype.name}")
    tec = tf.reshape(tec, tf.shape(labels))
    sec = tf.reshape(sec, [num_sampled])
    return tf.cast(s, tf.int64), tec, sec


# --------------------------------------------------------------------------- the step

def _kernel(nce, remove_hits, subtract_log_q):
    options = StepOptions(nce=nce, remove_accidental_hits=remove_hits,
                          subtract_log_q=subtract_log_q)

    def run(x, w_rows, b_rows, labels, sampled, tec, sec):
        # shapes TensorFlow could not check when tracing; the local ids index the K gathered
        # rows and lie in [0, K) by construction
        if labels.shape[0] != x.shape[0]:
            raise ValueError(f"labels have {labels.shape[0]} rows but inputs have {x.shape[0]}")
        if x.shape[0] == 0:
            raise ValueError("inputs must have at least one row")
        K = w_rows.shape[0]
        if (labels.size and labels.max() >= K) or (sampled.size and sampled.max() >= K):
            raise ValueError("internal error: a local id outside the gathered rows")
        x = np.ascontiguousarray(x)
        W = ParamRows(np.ascontiguousarray(w_rows), "weights", ndim=2)
        Bs = ParamRows(np.ascontiguousarray(b_rows), "biases", ndim=1)
        loss, g = loss_and_grads(W, Bs, x, labels, (sampled, tec, sec), options,
                                 workspace=thread_workspace())
        # every local id 0..K-1 occurs, so the gradient rows are in local id order
        return loss, g.inputs, g.weights, g.biases

    return run


@tf.autograph.experimental.do_not_convert
def _tf_row_grads(nce, remove_hits, subtract_log_q, x, w_rows, b_rows, labels, sampled, tec,
                  sec, dy):
    """The weights' and biases' gradients on the gathered rows for any incoming ``dy``,
    by TensorFlow's own op (local ids are class ids of the gathered rows)."""
    tec, sec = tf.cast(tec, x.dtype), tf.cast(sec, x.dtype)
    if not subtract_log_q:                       # log(1) = 0: nothing is subtracted
        tec, sec = tf.ones_like(tec), tf.ones_like(sec)
    fn = tf.nn.nce_loss if nce else tf.nn.sampled_softmax_loss
    with tf.GradientTape() as tape:
        tape.watch([w_rows, b_rows])
        loss = fn(weights=w_rows, biases=b_rows, labels=labels, inputs=x,
                  num_sampled=int(sampled.shape[0]), num_classes=tf.shape(w_rows)[0],
                  num_true=int(labels.shape[1]), sampled_values=(sampled, tec, sec),
                  remove_accidental_hits=remove_hits)
    gw, gb = tape.gradient(loss, [w_rows, b_rows], output_gradients=dy)
    return tf.convert_to_tensor(gw), tf.convert_to_tensor(gb)


@tf.autograph.experimental.do_not_convert
def _fused(nce, remove_hits, subtract_log_q, x, w_rows, b_rows, labels, sampled, tec, sec):
    kernel = _kernel(nce, remove_hits, subtract_log_q)
    dtype = x.dtype

    @tf.custom_gradient
    def fused(x, w_rows, b_rows):
        loss, dx, dw, db = tf.numpy_function(
            kernel, [x, w_rows, b_rows, labels, sampled, tec, sec], [dtype] * 4,
            stateful=False, name="fastsampled_step")
        loss.set_shape(x.shape[:1])
        dx.set_shape(x.shape)
        dw.set_shape(w_rows.shape)
        db.set_shape(b_rows.shape)

        def grad(dy):
            dy = tf.cast(dy, dtype)
            hi, lo = tf.reduce_max(dy), tf.reduce_min(dy)
            d_rows = tf.cond(
                tf.equal(hi, lo),
                lambda: (dw * hi, db * hi),
                lambda: _tf_row_grads(nce, remove_hits, subtract_log_q, x, w_rows, b_rows,
                                      labels, sampled, tec, sec, dy))
            return (dx * dy[:, None],) + tuple(d_rows)

        return loss, grad

    return fused(x, w_rows, b_rows)


@tf.autograph.experimental.do_not_convert
def _loss(nce, weights, biases, labels, inputs, num_sampled, num_classes, num_true,
          sampled_values, remove_accidental_hits, partition_strategy, seed, subtract_log_q,
          name):
    with tf.name_scope(name or ("nce_loss" if nce else "sampled_softmax_loss")):
        check_strategy(partition_strategy)
        x = tf.convert_to_tensor(inputs)
        if x.dtype not in (tf.float32, tf.float64):
            raise TypeError(f"inputs must be float32 or float64, got {x.dtype.name}")
        if x.shape.rank != 2 or x.shape[1] is None:
            raise ValueError(f"inputs must be 2-D (batch, dim) with a known dim, got shape "
                             f"{x.shape}")
        W = _parts(weights, "weights", 2)
        Bs = _parts(biases, "biases", 1)
        num_rows = _num_rows(W, "weights", partition_strategy)
        if _num_rows(Bs, "biases", partition_strategy) != num_rows:
            raise ValueError(f"biases have {_num_rows(Bs, 'biases', partition_strategy)} rows "
                             f"but weights have {num_rows}")
        for i, w in enumerate(W):
            if w.shape[1] != x.shape[1]:
                raise ValueError(f"weights have dim {w.shape[1]} but inputs have dim "
                                 f"{x.shape[1]}")
        num_true = as_int(num_true, "num_true", 1)
        num_sampled = as_int(num_sampled, "num_sampled", 1)
        num_classes = as_int(num_classes, "num_classes", 1)
        remove_hits = as_bool(remove_accidental_hits, "remove_accidental_hits")
        subtract_log_q = as_bool(subtract_log_q, "subtract_log_q")
        labels = tf.convert_to_tensor(labels)
        if not labels.dtype.is_integer:
            raise TypeError(f"labels must be integers, got {labels.dtype.name}")
        labels = tf.cast(labels, tf.int64)
        if labels.shape.rank == 1 and num_true == 1:
            labels = labels[:, None]
        if labels.shape.rank != 2 or labels.shape[1] != num_true:
            raise ValueError(f"labels must have shape (batch, num_true={num_true}), got "
                             f"{labels.shape}")
        s, tec, sec = _candidates(sampled_values, labels, num_true, num_sampled, num_classes,
                                  seed)
        # ids outside the weights stop TensorFlow's gather (InvalidArgumentError); the rest
        # is checked in numpy before the kernel runs (_kernel)
        flat = tf.reshape(labels, [-1])
        uid, local = tf.unique(tf.concat([flat, s], 0), out_idx=tf.int64)
        n_true = tf.size(flat)
        local_labels = tf.reshape(local[:n_true], tf.shape(labels))
        local_sampled = local[n_true:]
        local_sampled.set_shape([num_sampled])
        w_rows = _gather(W, uid, partition_strategy, x.dtype)
        b_rows = _gather(Bs, uid, partition_strategy, x.dtype)
        return _fused(nce, remove_hits, subtract_log_q, x, w_rows, b_rows, local_labels,
                      local_sampled, tec, sec)


_DOC = """

    The same arguments, defaults and results as TensorFlow's function of the same name
    (``{tf_name}``), computed by fastsampled's fused kernel; see the module docstring for how
    a call runs.

    Parameters
    ----------
    weights : tf.Variable, tf.Tensor or array, shape (num_classes, dim), or a list of them
        A list is a partitioned variable, mapped by ``partition_strategy``{strategy} as
        ``embedding_lookup`` maps it; its shard sizes must form that layout (TensorFlow would
        read the wrong rows otherwise; here a ``ValueError``).
    biases : tf.Variable, tf.Tensor or array, shape (num_classes,), or a list of them
    labels : int tensor, shape (batch, num_true)
    inputs : float32 or float64 tensor, shape (batch, dim)
    num_sampled : int
    num_classes : int
        Range of the default sampler; used for nothing else.
    num_true : int
    sampled_values : tuple of tensors, optional
        ``(sampled_candidates, true_expected_count, sampled_expected_count)`` from a
        candidate sampler; None draws them with ``tf.random.log_uniform_candidate_sampler``.
    remove_accidental_hits : bool
{extra}    subtract_log_q : bool, keyword only
        Subtract ``log(expected_count)`` from each logit (TensorFlow always does; False is
        plain negative sampling).

    Returns
    -------
    tf.Tensor of shape (batch,)
        The per-example loss, in the inputs' dtype. Its gradient reaches ``inputs`` densely
        and ``weights``/``biases`` as ``tf.IndexedSlices``.

    Raises
    ------
    TypeError, ValueError
        When tracing, on arguments whose types or static shapes are wrong.
    tf.errors.InvalidArgumentError
        When running, on labels or candidates outside ``[0, num_classes)``, or an expected
        count that is zero or not finite (TensorFlow returns NaN there).
"""


def sampled_softmax_loss(weights, biases, labels, inputs, num_sampled, num_classes, num_true=1,
                         sampled_values=None, remove_accidental_hits=True, seed=None,
                         name="sampled_softmax_loss", *, subtract_log_q=True):
    return _loss(False, weights, biases, labels, inputs, num_sampled, num_classes, num_true,
                 sampled_values, remove_accidental_hits, "div", seed, subtract_log_q, name)


def nce_loss(weights, biases, labels, inputs, num_sampled, num_classes, num_true=1,
             sampled_values=None, remove_accidental_hits=False, name="nce_loss", *, seed=None,
             subtract_log_q=True):
    return _loss(True, weights, biases, labels, inputs, num_sampled, num_classes, num_true,
                 sampled_values, remove_accidental_hits, "div", seed, subtract_log_q, name)


def _v1_sampled_softmax_loss(weights, biases, labels, inputs, num_sampled, num_classes,
                             num_true=1, sampled_values=None, remove_accidental_hits=True,
                             partition_strategy="mod", name="sampled_softmax_loss", seed=None,
                             *, subtract_log_q=True):
    return _loss(False, weights, biases, labels, inputs, num_sampled, num_classes, num_true,
                 sampled_values, remove_accidental_hits, partition_strategy, seed,
                 subtract_log_q, name)


def _v1_nce_loss(weights, biases, labels, inputs, num_sampled, num_classes, num_true=1,
                 sampled_values=None, remove_accidental_hits=False, partition_strategy="mod",
                 name="nce_loss", *, seed=None, subtract_log_q=True):
    return _loss(True, weights, biases, labels, inputs, num_sampled, num_classes, num_true,
                 sampled_values, remove_accidental_hits, partition_strategy, seed,
                 subtract_log_q, name)


_V2 = """    seed : int, optional
        Op seed of the default sampler{seed_note}.
    name : str
"""
_V1 = """    partition_strategy : {{"mod", "div"}}
    name : str
    seed : int, optional
        Op seed of the default sampler{seed_note}.
"""
_NCE_SEED = " (keyword only: TensorFlow's ``nce_loss`` has no seed)"

sampled_softmax_loss.__doc__ = ("Sampled softmax loss, ``tf.nn.sampled_softmax_loss``."
                                + _DOC.format(tf_name="tf.nn.sampled_softmax_loss",
                                              strategy=' ("div" in v2)',
                                              extra=_V2.format(seed_note="")))
nce_loss.__doc__ = ("Noise-contrastive estimation loss, ``tf.nn.nce_loss``."
                    + _DOC.format(tf_name="tf.nn.nce_loss", strategy=' ("div" in v2)',
                                  extra=_V2.format(seed_note=_NCE_SEED)))
_v1_sampled_softmax_loss.__doc__ = (
    "Sampled softmax loss, ``tf.compat.v1.nn.sampled_softmax_loss``."
    + _DOC.format(tf_name="tf.compat.v1.nn.sampled_softmax_loss", strategy="",
                  extra=_V1.format(seed_note="")))
_v1_nce_loss.__doc__ = (
    "Noise-contrastive estimation loss, ``tf.compat.v1.nn.nce_loss``."
    + _DOC.format(tf_name="tf.compat.v1.nn.nce_loss", strategy="",
                  extra=_V1.format(seed_note=_NCE_SEED)))
_v1_sampled_softmax_loss.__name__ = _v1_sampled_softmax_loss.__qualname__ = \
    "sampled_softmax_loss"
_v1_nce_loss.__name__ = _v1_nce_loss.__qualname__ = "nce_loss"

#: The ``tf.compat.v1.nn`` signatures: ``fastsampled.tf.v1.sampled_softmax_loss`` and
#: ``fastsampled.tf.v1.nce_loss`` (``partition_strategy`` argument, default ``"mod"``).
v1 = types.SimpleNamespace(sampled_softmax_loss=_v1_sampled_softmax_loss,
                           nce_loss=_v1_nce_loss)
