"""The optimizer state of one parameter (private): its slots and its update count ``t``.

An optimizer keeps per-row slots beside a parameter (Adagrad's accumulator, Adam's ``m`` and
``v``) with exactly the parameter's layout: in RAM, or as one ``ShardedMatrix`` per slot under
``path`` whose checkpoints commit together through ``path/state.json`` (see docs/storage.md).
:class:`OptimizerState` holds them; :func:`make_state` creates or resumes them for
``init_state``. The class is public as ``fastsampled.optimizers.OptimizerState``.
"""
import os
import pathlib

import numpy as np

from . import _memory
from ._errors import StoreError
from ._layout import is_store
from ._params import ParamRows
from .sharding import ShardedMatrix, commit_group

_STATE_RECORD = "state.json"      # commit record of the slot stores of one state
_STATE_FORMAT = "fastsampled.OptimizerState"


class OptimizerState:
    """The slots of one parameter (Adagrad's accumulator, Adam's ``m`` and ``v``) and its step.

    Made by :meth:`SGD.init_state` / :meth:`Adagrad.init_state` / :meth:`Adam.init_state`; use
    one state per parameter (weights and biases each have their own). Not thread-safe: one
    ``apply`` at a time per state.

    Attributes
    ----------
    slots : dict
        Slot name -> slot values with exactly the parameter's layout: an ndarray for an array
        parameter, a list of shard arrays for a shard list, a ``ShardedMatrix`` per slot when
        the state was created with a ``path`` (otherwise a list of in-RAM shard arrays for a
        ``ShardedMatrix`` parameter).
    t : int
        Number of successful ``apply`` calls (Adam's bias-correction step). Saved as the slot
        stores' ``step`` by :meth:`checkpoint` and read back when a state is resumed.
    path : pathlib.Path or None
        Directory of the slot stores (``path / <slot name>``), or None for in-RAM slots.
    closed : bool

    Slot values may be read and modified in place; do not rebind ``slots`` entries (the state
    keeps views of the arrays it was made with). :meth:`check_open`, :meth:`slot_rows`,
    :meth:`scratch_buffers` and :meth:`journal` serve the optimizers' updates.

    Examples
    --------
    >>> import numpy as np, fastsampled as fs
    >>> w = np.zeros((4, 2), np.float32)
    >>> state = fs.Adagrad(lr=0.5).init_state(w)
    >>> state
    OptimizerState(slots=('accumulator',), t=0, param shape (4, 2), float32, shard sizes [4])
    >>> state.slots["accumulator"][0]
    array([0.1, 0.1], dtype=float32)
    """

    def __init__(self, names, slots, param, t=0, path=None, stores=()):
        self.slots = dict(zip(names, slots))
        self.t = int(t)
        self.path = path
        self.closed = False
        self._names = tuple(names)
        self._stores = list(stores)
        self._sizes = param.sizes
        self._strategy = param.strategy
        self._dtype = param.dtype
        self._dim = param.dim
        self._describe = param.describe()
        # 2-D row views of each slot's shards, made once (slot arrays belong to the state)
        self._views = tuple(ParamRows(s, f"slot {n!r}", partition_strategy=param.strategy,
                                      in_place=True, writeable=True).views
                            for n, s in zip(names, slots))
        self._scratch = None

    def scratch_buffers(self, k, width):
        """Scratch rows for one update of the parameter and its slots, reused across calls.

        Parameters
        ----------
        k : int
            Rows the update touches.
        width : int
            Row width (``dim``, or 1 for a 1-D parameter).

        Returns
        -------
        tuple of ndarray
            ``1 + len(slots)`` buffers of shape ``(k, width)`` in the parameter's dtype: the
            new parameter rows, then each slot's.
        """
        buf = self._scratch
        if buf is None or buf[0].shape[0] < k:
            cap = max(k, 2 * buf[0].shape[0] if buf is not None else 0, 16)
            buf = tuple(np.empty((cap, width), self._dtype)
                        for _ in range(1 + len(self._names)))
            self._scratch = buf
        return tuple(b[:k] for b in buf)

    def checkpoint(self):
        """Make the slot stores durable with ``step = t``, as one atomic commit.

        Slot stores made by ``init_state(path=...)`` commit together through
        ``path/state.json`` (``fastsampled.sharding.commit_group``): after a crash at any
        instant they reopen at the same step. A no-op for in-RAM slots. Checkpoint the
        parameter in the same breath: a resumed run continues exactly only if parameter and
        slots were saved at the same step. (The slots of a ``SampledSoftmaxHead`` commit with
        the head's ``checkpoint()``; this method refuses them.)
        """
        self.check_open()
        record = None if self.path is None else self.path / _STATE_RECORD
        if self._stores and record is not None and all(
                s.group is not None and os.path.abspath(s.path / s.group)
                == os.path.abspath(record) for s in self._stores):
            commit_group(record, [(s, self.t) for s in self._stores],
                         {"format": _STATE_FORMAT, "slots": list(self._names)})
            return
        for store in self._stores:      # stores written before state.json existed
            store.checkpoint(step=self.t)

    def close(self):
        """Close the slot stores (without checkpointing). Closing twice is a no-op."""
        for store in self._stores:
            store.close()
        self._views = ()
        self._scratch = None
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        return (f"OptimizerState(slots={self._names}, t={self.t}, param {self._describe}"
                f"{where}{', closed' if self.closed else ''})")

    def check_open(self):
        """Raise ``ValueError`` if the state or one of its slot stores is closed."""
        if self.closed:
            raise ValueError("the optimizer state is closed")
        for store in self._stores:
            if store.closed:
                raise ValueError(f"the slot store {str(store.path)!r} is closed")

    def slot_rows(self, param, slots, name):
        """The slots' row views, once the state is known to be open and made for ``param``.

        Parameters
        ----------
        param : ParamRows
            The parameter about to be updated.
        slots : tuple of str
            The slot names of the optimizer that updates it.
        name : str
            The parameter's name, for the messages.

        Returns
        -------
        tuple
            For each slot, its 2-D row views, one per shard of ``param``.
        """
        self.check_open()
        self._check_param(param, slots, name)
        return self._views

    def journal(self, ids):
        """Save the rows ``ids`` of every slot store to its rollback journal
        (``ShardedMatrix.journal``) before an update writes them; nothing for in-RAM slots.

        Parameters
        ----------
        ids : ndarray of int64
            Global row ids, sorted and unique.
        """
        for store in self._stores:
            store.journal(ids)

    def _check_param(self, param, slots, name):
        if tuple(slots) != self._names:
            raise ValueError(f"state holds slots {self._names} but this optimizer uses "
                             f"{tuple(slots)}: pass a state made by this optimizer's init_state")
        if (param.sizes != self._sizes or param.dtype != self._dtype or param.dim != self._dim
                or (len(param.sizes) > 1 and param.strategy != self._strategy)):
            raise ValueError(f"{name} ({param.describe()}) does not match the layout its state "
                             f"was made for ({self._describe})")


def make_state(param, fills, path=None, partition_strategy="mod", durability="process",
               group=None):
    """Create (or resume) the state of one parameter: what ``init_state`` does.

    Parameters
    ----------
    param : ndarray, list of shard arrays, or ShardedMatrix
        The parameter the state is for.
    fills : dict of str to float
        The optimizer's slots, in order, and the value each new slot starts at.
    path, partition_strategy, durability, group
        As ``init_state``.

    Returns
    -------
    OptimizerState
    """
    p = ParamRows(param, "param", partition_strategy=partition_strategy, in_place=True)
    names = tuple(fills)
    if path is None:
        slots = [_ram_slot(param, p, fills[n]) for n in names]
        return OptimizerState(names, slots, p)
    path = pathlib.Path(os.fspath(path))
    dirs = [path / n for n in names]
    exist = [(d / "meta.json").exists() for d in dirs]
    if any(exist) and not all(exist):
        have = [n for n, e in zip(names, exist) if e]
        raise StoreError(f"{path}: found slot stores {have} but not all of {names}; "
                         "remove the partial state or restore it completely")
    stores = []
    try:
        for n, d in zip(names, dirs):
            if exist[0]:
                store = ShardedMatrix.open(d, "r+", durability)
                stores.append(store)
                _check_store(store, p, n)
            else:
                path.mkdir(parents=True, exist_ok=True)
                strategy = None if is_store(param) else p.strategy
                # the slots commit together: with the caller's record (a head's) or with
                # their own, path/state.json
                record = path / _STATE_RECORD if group is None else pathlib.Path(group)
                rel = os.path.relpath(os.path.abspath(record), os.path.abspath(d))
                stores.append(ShardedMatrix.like(param, d, fill=fills[n],
                                                 partition_strategy=strategy,
                                                 durability=durability, group=rel))
        if stores and not exist[0] and group is None:
            commit_group(path / _STATE_RECORD, [(s, 0) for s in stores],
                         {"format": _STATE_FORMAT, "slots": list(names)})
        steps = {s.step for s in stores}
        if len(steps) > 1:
            raise StoreError(f"{path}: slot stores were checkpointed at different steps "
                             f"{sorted(steps)}; they cannot be resumed together")
        t = steps.pop() if steps else 0
        return OptimizerState(names, stores, p, t=t, path=path, stores=stores)
    except BaseException:
        for s in stores:
            s.close()
        raise


def _check_store(store, p, name):
    """Raise ``StoreError`` unless the slot store ``name`` has the parameter's layout."""
    if (tuple(store.shard_sizes) != p.sizes or store.dtype != p.dtype or store.dim != p.dim
            or (len(p.sizes) > 1 and store.partition_strategy != p.strategy)):
        raise StoreError(
            f"slot store {str(store.path)!r} ({name}: shard sizes {store.shard_sizes}, "
            f"{store.partition_strategy!r}, dim {store.dim}, {store.dtype}) does not match "
            f"param ({p.describe()})")


def _ram_slot(param, p, fill):
    """A slot in RAM filled with ``fill``: an array, or a shard list for shards or a store."""
    shards = [_memory.full(v.shape[:1] + ((p.dim,) if p.dim is not None else ()), fill, p.dtype)
              for v in p.views]
    if not is_store(param) and not isinstance(param, (list, tuple)):
        return shards[0]
    return shards
