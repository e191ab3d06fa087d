"""Sparse optimizers: SGD, Adagrad and lazy Adam that update only the rows a step touched.

A step of a sampled loss touches ``K`` rows of a ``(num_classes, dim)`` weight matrix; these
optimizers update exactly those rows of the parameter and of its optimizer slots, in place, in
``O(K * dim)`` time, whatever ``num_classes`` is. The parameter may be one array (also an
``np.memmap``), a list of shard arrays mapped with ``partition_strategy`` as
``tf.nn.embedding_lookup`` maps ids, or a :class:`fastsampled.ShardedMatrix`; the slots always have
the parameter's exact layout (same shard sizes, strategy and dtype), in RAM or, with
``init_state(param, path=...)``, as one ``ShardedMatrix`` per slot on disk.

Update rules, per touched row and elementwise (``g`` the gradient row):

* :class:`SGD`: ``w -= lr * g``.
* :class:`Adagrad` (as Keras): ``acc += g * g; w -= lr * g / (sqrt(acc) + eps)``.
* :class:`Adam`, *lazy* (as TensorFlow's ``LazyAdamOptimizer``): ``m = b1 m + (1 - b1) g;
  v = b2 v + (1 - b2) g^2; w -= lr_t * m / (sqrt(v) + eps)`` with
  ``lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)`` and ``t`` the state's step count (1 on the first
  apply). Rows not touched keep their ``m`` and ``v`` (dense Adam would decay them every step).

``weight_decay`` is decoupled (AdamW-style) and lazy like the rest: on touched rows only,
``w -= lr * weight_decay * w`` is applied *before* the gradient step (with ``lr``, not Adam's
``lr_t``). Rows not touched by a step are not decayed by it.

Arithmetic is done in the parameter's dtype (float32 parameters are updated in float32).

Non-finite refusal: new param and slot rows are first computed into scratch buffers (every
touched shard) and counted for NaN/inf; if any computed value is not finite, ``apply`` raises
``FloatingPointError`` naming the id and writes nothing (neither the parameter nor the slots,
nor ``state.t``); only a clean count commits the rows. The gradient needs no separate pass: a
NaN or infinite gradient entry always makes a new value non-finite (``lr > 0``, ``1 - beta > 0``
and Adagrad's accumulator ``>= g*g``), and the error then names the gradient entry. So does an
overflowing update (say a huge ``lr``, or ``g*g`` beyond float32).

Every other argument (ids sorted, unique and in range; grad shape and dtype; the state's layout)
is checked with numpy before any kernel runs. Per call that costs a few microseconds, so
``apply`` suits a training loop calling it twice a step (weights and biases).

:class:`OptimizerState` (the slots in RAM or on disk, and the step ``t``) is defined in
``_optim_state`` and exported from here.
"""
import math
import numbers

import numpy as np

from ._optim_state import OptimizerState, make_state
from ._optimizer_kernels import ADAGRAD as ADAGRAD_RULE
from ._optimizer_kernels import ADAM as ADAM_RULE
from ._optimizer_kernels import SGD as SGD_RULE
from ._optimizer_kernels import commit_rows, update_rows
from ._params import ParamRows
from ._validate import as_id_array

__all__ = ["SGD", "Adagrad", "Adam", "OptimizerState", "BoundParams"]


# ---------------------------------------------------------------- hyper-parameters

def _real(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _positive(value, name):
    value = _real(value, name)
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def _non_negative(value, name):
    value = _real(value, name)
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _unit(value, name):
    value = _real(value, name)
    if not 0 <= value < 1:
        raise ValueError(f"{name} must lie in [0, 1), got {value}")
    return value


class _Hyper:
    """A hyper-parameter attribute, validated on every assignment (``opt.lr = 0.05`` works)."""

    def __init__(self, check):
        self.check = check

    def __set_name__(self, owner, name):
        self.name = name
        self.attr = "_" + name

    def __get__(self, obj, owner=None):
        return self if obj is None else getattr(obj, self.attr)

    def __set__(self, obj, value):
        setattr(obj, self.attr, self.check(value, self.name))
        obj._consts = {}  # kernel scalars are cached per dtype


# ---------------------------------------------------------------- parameters

def _journal(p, state, ids):
    """Save the rows ``ids`` of every store among the parameter and its slots to their
    rollback journals (``ShardedMatrix.journal``) before the update writes them."""
    if p.store is not None:
        p.store.journal(ids)
    if state is not None:
        state.journal(ids)


def check_sorted_ids(ids, name):
    """Ids as a contiguous int64 1-D array, strictly increasing (range checked by the caller)."""
    if (type(ids) is not np.ndarray or ids.dtype != np.int64 or not ids.flags.c_contiguous
            or not ids.flags.writeable):
        ids = as_id_array(ids, name)
        if not ids.flags.writeable:  # a read-only array would compile another kernel variant
            ids = ids.copy()
    if ids.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {ids.shape}")
    if ids.size > 1:
        inc = ids[1:] > ids[:-1]
        if not inc.all():
            k = int(np.argmin(inc))
            what = "duplicate" if ids[k] == ids[k + 1] else "unsorted"
            raise ValueError(
                f"{name} must be sorted strictly increasing (unique); found {what} ids "
                f"{int(ids[k])}, {int(ids[k + 1])} at indices {k}, {k + 1}")
    return ids


def _check_range(ids, param, name):
    if ids.size and (ids[0] < 0 or ids[-1] >= param.num_rows):
        bad, at = (ids[0], 0) if ids[0] < 0 else (ids[-1], ids.size - 1)
        raise ValueError(f"{name} must lie in [0, {param.num_rows}) ({param.name} has "
                         f"{param.num_rows} rows); found {int(bad)} at index {at}")


def _check_grad(grad, ids, param, name):
    """``grad`` as a C-contiguous ``(K, dim)`` array (``(K, 1)`` for a 1-D parameter)."""
    if type(grad) is not np.ndarray:
        grad = np.asarray(grad)
    if grad.dtype != param.dtype:
        raise TypeError(f"{name} must have {param.name}'s dtype {param.dtype}, got {grad.dtype}")
    want = (ids.size,) if param.dim is None else (ids.size, param.dim)
    if grad.shape != want:
        raise ValueError(f"{name} must have shape {want} (len(ids), {param.name} row shape), got "
                         f"{grad.shape}")
    if not (grad.flags.c_contiguous and grad.flags.writeable and grad.flags.aligned):
        grad = np.array(grad, order="C")  # one kernel variant: C-contiguous, writeable, aligned
    return grad.reshape(ids.size, 1) if param.dim is None else grad


class BoundParams:
    """Weights, biases and their optimizer states, validated once by
    :meth:`SGD.bind` / :meth:`Adagrad.bind` / :meth:`Adam.bind`.

    Holds the parameters' row views: rebinding (a new ``bind``) is needed when a parameter
    or a state is replaced. Not thread-safe, like the states.
    """

    __slots__ = ("optimizer", "weights", "weight_slots", "biases", "bias_slots", "states")

    def __init__(self, optimizer, weights, weight_slots, biases, bias_slots, states):
        self.optimizer = optimizer
        self.weights, self.weight_slots = weights, weight_slots
        self.biases, self.bias_slots = biases, bias_slots
        self.states = states

    def apply_grads(self, grads):
        """Apply a loss's :class:`~fastsampled.SparseGrads` (``ids``, ``weights``,
        ``biases``) with the optimizer; both updates are computed before either is written.

        Raises
        ------
        FloatingPointError
            A gradient or an updated value is not finite; nothing was written.
        ValueError, TypeError
            Invalid ``grads`` (checked before anything runs).
        """
        self.optimizer._apply_pair(self, grads)

    def __repr__(self):
        return (f"BoundParams({self.optimizer!r}, weights {self.weights.describe()}, "
                f"biases {self.biases.describe()})")


# ---------------------------------------------------------------- optimizers

class _SparseOptimizer:
    """Common machinery: validation, per-shard kernel calls, scratch-then-commit."""

    slots = ()
    _kind = None
    _hypers = ()
    lr = _Hyper(_positive)
    weight_decay = _Hyper(_non_negative)

    def __repr__(self):
        args = ", ".join(f"{h}={getattr(self, h)!r}" for h in self._hypers)
        return f"{type(self).__name__}({args})"

    def _slot_fill(self, name):
        return 0.0

    def _scalars(self, t, dtype):
        """Kernel scalars in the param's dtype: array [lr, decay, eps, b1, 1-b1, b2, 1-b2]."""
        c = self._consts.get(dtype)
        if c is None:
            with np.errstate(over="ignore"):  # lr=1e39 is inf in float32: refused later
                c = self._consts[dtype] = np.array(self._constants(), dtype)
        return c

    def _constants(self):
        raise NotImplementedError

    # ------------------------------------------------------------ state

    def init_state(self, param, path=None, partition_strategy="mod", *, durability="process",
                   group=None):
        """Create (or resume) the optimizer state of one parameter.

        Parameters
        ----------
        param : ndarray, list of shard arrays, or ShardedMatrix
            The parameter the state is for: shape (num_rows, dim) or (num_rows,), float32 or
            float64.
        path : str or os.PathLike, optional
            None: slots in RAM. Otherwise one ``ShardedMatrix`` per slot at ``path/<slot>``,
            created beside the parameter with its layout (Adagrad's accumulator filled with
            ``initial_accumulator_value``, Adam's ``m``/``v`` with zeros) -- or, when they exist
            already, opened ``"r+"`` to resume (their layout must match and ``t`` is read back
            from their checkpointed ``step``).
        partition_strategy : {"mod", "div"}
            Layout of a list of several shards (a ShardedMatrix uses its own).
        durability : {"process", "power", "none"}
            Rollback journal of the slot stores (see ``ShardedMatrix.create``).
        group : str or os.PathLike, optional
            A commit record the new slot stores join (``ShardedMatrix.create``'s ``group``;
            given here as a path, not relative): their checkpoints are then made by
            ``commit_group`` together with the parameter's, as a head does.

        Returns
        -------
        OptimizerState
        """
        return make_state(param, {n: self._slot_fill(n) for n in self.slots}, path,
                          partition_strategy, durability, group)

    # ------------------------------------------------------------ updates

    def apply(self, param, ids, grad, state=None, partition_strategy="mod"):
        """Update the rows ``ids`` of ``param`` (and of the state's slots) in place.

        Parameters
        ----------
        param : ndarray, list of shard arrays, or ShardedMatrix
            Shape (num_rows, dim) or (num_rows,), float32 or float64, writeable and
            C-contiguous (each shard); updated in place.
        ids : array_like of int, shape (K,)
            Global row ids, sorted strictly increasing (unique), in ``[0, num_rows)``.
        grad : ndarray of shape (K, dim) or (K,)
            Gradient rows for ``ids``, in the parameter's dtype.
        state : OptimizerState, optional
            From :meth:`init_state` for this parameter; required when the optimizer has slots.
            ``state.t`` grows by one per successful call.
        partition_strategy : {"mod", "div"}
            Map of a list of several shards (a ShardedMatrix uses its own).

        Raises
        ------
        FloatingPointError
            ``grad`` or a computed new value is NaN or infinite; nothing was written.
        ValueError, TypeError
            Invalid ids, grad, param or state (checked before anything runs).
        """
        p, slot_views = self._target(param, state, partition_strategy, "param")
        ids = check_sorted_ids(ids, "ids")
        _check_range(ids, p, "ids")
        grad = _check_grad(grad, ids, p, "grad")
        plan = self._compute(p, slot_views, state, ids, grad, None, "grad")
        _journal(p, state, ids)
        self._commit(plan)

    def apply_grads(self, weights, biases, grads, states=(None, None),
                    partition_strategy="mod"):
        """Apply a loss's :class:`~fastsampled.SparseGrads` to ``weights`` and ``biases``.

        Both updates are computed before either is written, so a ``FloatingPointError`` in
        either leaves both parameters (and states) untouched.

        Parameters
        ----------
        weights : ndarray (num_rows, dim), list of shard arrays, or ShardedMatrix
        biases : ndarray (num_rows,), list of shard arrays, or ShardedMatrix
        grads : SparseGrads
            Uses ``grads.ids``, ``grads.weights`` and ``grads.biases``.
        states : (OptimizerState, OptimizerState)
            The weights' and the biases' states (``(None, None)`` is fine for SGD).
        partition_strategy : {"mod", "div"}
        """
        self.bind(weights, biases, states, partition_strategy).apply_grads(grads)

    def bind(self, weights, biases, states=(None, None), partition_strategy="mod"):
        """Validate ``weights``, ``biases`` and their states once, for many updates.

        ``opt.bind(w, b, states).apply_grads(grads)`` is :meth:`apply_grads`; a training
        loop that updates the same parameters every step (the head does) binds them once
        and skips re-validating the parameters on every step. The gradients are still
        checked on every call.

        Parameters
        ----------
        weights, biases, states, partition_strategy
            As :meth:`apply_grads`.

        Returns
        -------
        BoundParams
        """
        if not isinstance(states, (tuple, list)) or len(states) != 2:
            raise ValueError("states must be a pair (weights_state, biases_state)")
        pw, sw = self._target(weights, states[0], partition_strategy, "weights")
        pb, sb = self._target(biases, states[1], partition_strategy, "biases")
        return BoundParams(self, pw, sw, pb, sb, tuple(states))

    def get_config(self):
        """The optimizer's hyper-parameters, ``{name: value}`` (``type(opt)(**config)``
        makes an equal optimizer)."""
        return {k: getattr(self, k) for k in self._hypers}

    def _apply_pair(self, bound, grads):
        """:meth:`BoundParams.apply_grads` (gradients checked, both updates computed before
        either is written)."""
        pw, sw, pb, sb, states = bound.weights, bound.weight_slots, bound.biases, \
            bound.bias_slots, bound.states
        if not all(hasattr(grads, a) for a in ("ids", "weights", "biases")):
            raise TypeError(f"grads must be a SparseGrads (with ids, weights, biases), got "
                            f"{type(grads).__name__}")
        for st in states:
            if st is not None:
                st.check_open()
        ids = check_sorted_ids(grads.ids, "grads.ids")
        _check_range(ids, pw, "grads.ids")
        _check_range(ids, pb, "grads.ids")
        gw = _check_grad(grads.weights, ids, pw, "grads.weights")
        gb = _check_grad(grads.biases, ids, pb, "grads.biases")
        plan_w = self._compute(pw, sw, states[0], ids, gw, None, "grads.weights")
        plan_b = self._compute(pb, sb, states[1], ids, gb,
                               plan_w[2] if pb.same_layout(pw) else None, "grads.biases")
        _journal(pw, states[0], ids)    # old rows saved before any is written
        _journal(pb, states[1], ids)
        self._commit(plan_w)
        self._commit(plan_b)

    def _target(self, param, state, partition_strategy, name):
        """Validated param and its slots' row views (before any kernel runs)."""
        p = ParamRows(param, name, partition_strategy=partition_strategy, in_place=True,
                      writeable=True)
        if state is None:
            if self.slots:
                raise ValueError(f"{type(self).__name__} keeps slots {self.slots}: pass the "
                                 f"state from init_state({name}) as state")
            return p, ()
        if not isinstance(state, OptimizerState):
            raise TypeError(f"state must be an OptimizerState, got {type(state).__name__}")
        return p, state.slot_rows(p, self.slots, name)

    def _compute(self, p, slot_views, state, ids, grad, groups, gname):
        """New rows into scratch, shard by shard; raises before anything is written."""
        k, width = grad.shape
        if state is not None:
            outs = state.scratch_buffers(k, width)
        else:
            outs = (np.empty((k, width), p.dtype),)
        out_p = outs[0]
        out_s0 = outs[1] if len(outs) > 1 else out_p
        out_s1 = outs[2] if len(outs) > 2 else out_p
        t = (state.t if state is not None else 0) + 1
        scalars = self._scalars(t, p.dtype)
        if groups is None:
            groups = p.groups(ids)
        kind = self._kind
        nslots = len(slot_views)
        for q, pos, rows in groups:
            w = p.views[q]
            s0 = slot_views[0][q] if nslots > 0 else w
            s1 = slot_views[1][q] if nslots > 1 else w
            if update_rows(kind, w, s0, s1, rows, pos, grad, out_p, out_s0, out_s1,
                             scalars):
                self._refuse(p, ids, grad, pos, rows, q, outs, gname)
        return p, slot_views, groups, (out_p, out_s0, out_s1), state, t

    @staticmethod
    def _commit(plan):
        p, slot_views, groups, (out_p, out_s0, out_s1), state, t = plan
        nslots = len(slot_views)
        for q, pos, rows in groups:
            w = p.views[q]
            s0 = slot_views[0][q] if nslots > 0 else w
            s1 = slot_views[1][q] if nslots > 1 else w
            commit_rows(nslots, w, s0, s1, rows, pos, out_p, out_s0, out_s1)
        if state is not None:
            state.t = t

    def _refuse(self, p, ids, grad, pos, rows, q, outs, gname):
        """Raise the FloatingPointError for a shard whose new rows are not all finite."""
        shard = f" (shard {q}, row {{}})" if len(p.sizes) > 1 else ""
        bad = ~np.isfinite(grad)
        if bad.any():
            k, j = (int(i) for i in np.argwhere(bad)[0])
            col = f", column {j}" if p.dim is not None else ""
            raise FloatingPointError(
                f"{gname} is not finite: {grad[k, j]} at row {k}{col} (id {int(ids[k])}); "
                f"nothing was updated")
        names = (p.name,) + tuple(f"slot {n!r}" for n in self.slots)
        for what, out in zip(names, outs):
            vals = out[pos]
            bad = ~np.isfinite(vals)
            if bad.any():
                r, j = (int(i) for i in np.argwhere(bad)[0])
                col = f", column {j}" if p.dim is not None else ""
                raise FloatingPointError(
                    f"{type(self).__name__} update of {p.name} id {int(ids[pos[r]])}"
                    f"{shard.format(int(rows[r]))} gives a non-finite {what} value "
                    f"{vals[r, j]}{col}; nothing was updated ({self!r}: lower lr, or check "
                    "the parameter and the gradients)")
        raise FloatingPointError(f"{type(self).__name__} update of {p.name} is not finite; "
                                 "nothing was updated")  # not reached: the kernel counted one


class SGD(_SparseOptimizer):
    """Sparse stochastic gradient descent: ``w -= lr * g`` on the touched rows.

    Parameters
    ----------
    lr : float, > 0
    weight_decay : float, >= 0
        Decoupled and lazy: touched rows first get ``w -= lr * weight_decay * w``.

    Examples
    --------
    >>> import numpy as np, fastsampled as fs
    >>> w = np.ones((5, 2), np.float32)
    >>> opt = fs.SGD(lr=0.5)
    >>> opt.apply(w, [1, 3], np.array([[1, 2], [4, 0]], np.float32))
    >>> w.tolist()    # only rows 1 and 3 moved
    [[1.0, 1.0], [0.5, 0.0], [1.0, 1.0], [-1.0, 1.0], [1.0, 1.0]]
    """

    slots = ()
    _kind = SGD_RULE
    _hypers = ("lr", "weight_decay")

    def __init__(self, lr=0.1, weight_decay=0.0):
        self.lr = lr
        self.weight_decay = weight_decay

    def _constants(self):
        return self._lr, self._lr * self._weight_decay, 0, 0, 0, 0, 0


class Adagrad(_SparseOptimizer):
    """Sparse Adagrad, as Keras: ``acc += g * g; w -= lr * g / (sqrt(acc) + eps)``.

    Parameters
    ----------
    lr : float, > 0
    initial_accumulator_value : float, >= 0
        Starting value of the ``"accumulator"`` slot.
    eps : float, >= 0
        Added to ``sqrt(acc)``. With both ``eps`` and ``initial_accumulator_value`` 0, a zero
        gradient entry on a fresh row gives 0/0 and ``apply`` raises ``FloatingPointError``.
    weight_decay : float, >= 0
        Decoupled and lazy: touched rows first get ``w -= lr * weight_decay * w``.

    Examples
    --------
    >>> import numpy as np, fastsampled as fs
    >>> w = np.zeros((3, 2))
    >>> opt = fs.Adagrad(lr=1.0, initial_accumulator_value=0.0, eps=0.0)
    >>> state = opt.init_state(w)
    >>> opt.apply(w, [2], np.array([[3.0, -4.0]]), state)
    >>> w[2], state.slots["accumulator"][2], state.t
    (array([-1.,  1.]), array([ 9., 16.]), 1)
    """

    slots = ("accumulator",)
    _kind = ADAGRAD_RULE
    _hypers = ("lr", "initial_accumulator_value", "eps", "weight_decay")
    initial_accumulator_value = _Hyper(_non_negative)
    eps = _Hyper(_non_negative)

    def __init__(self, lr=0.1, initial_accumulator_value=0.1, eps=1e-7, weight_decay=0.0):
        self.lr = lr
        self.initial_accumulator_value = initial_accumulator_value
        self.eps = eps
        self.weight_decay = weight_decay

    def _slot_fill(self, name):
        return self._initial_accumulator_value

    def _constants(self):
        return self._lr, self._lr * self._weight_decay, self._eps, 0, 0, 0, 0


class Adam(_SparseOptimizer):
    """Lazy Adam (TensorFlow's ``LazyAdamOptimizer``): moments and weights of touched rows only.

    Per touched row: ``m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    w -= lr_t * m / (sqrt(v) + eps)`` with ``lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)`` and ``t``
    the state's step count (1 on the first apply). Untouched rows keep their moments.

    Parameters
    ----------
    lr : float, > 0
    beta1, beta2 : float in [0, 1)
    eps : float, > 0
    weight_decay : float, >= 0
        Decoupled and lazy: touched rows first get ``w -= lr * weight_decay * w`` (with ``lr``,
        not ``lr_t``).

    Examples
    --------
    >>> import numpy as np, fastsampled as fs
    >>> w = np.zeros((3, 2))
    >>> opt = fs.Adam(lr=0.1)
    >>> state = opt.init_state(w)
    >>> opt.apply(w, [0], np.array([[2.0, -0.5]]), state)
    >>> np.round(w[0], 6)     # the first Adam step moves each weight by about lr
    array([-0.1,  0.1])
    >>> sorted(state.slots), state.t
    (['m', 'v'], 1)
    """

    slots = ("m", "v")
    _kind = ADAM_RULE
    _hypers = ("lr", "beta1", "beta2", "eps", "weight_decay")
    beta1 = _Hyper(_unit)
    beta2 = _Hyper(_unit)
    eps = _Hyper(_positive)

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weight_decay = weight_decay

    def _constants(self):
        b1, b2 = self._beta1, self._beta2
        return (self._lr, self._lr * self._weight_decay, self._eps, b1, 1.0 - b1, b2, 1.0 - b2)

    def _scalars(self, t, dtype):
        # lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t), computed in float64, then cast (into a
        # fresh array: the cached one is shared by every state this optimizer updates)
        c = super()._scalars(t, dtype).copy()
        with np.errstate(over="ignore"):
            c[0] = self._lr * math.sqrt(1.0 - self._beta2 ** t) / (1.0 - self._beta1 ** t)
        return c
