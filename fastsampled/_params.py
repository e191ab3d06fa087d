"""Parameter rows: one home for "a parameter as the kernels take it" (private).

A parameter -- the class weights ``(num_rows, dim)``, the biases ``(num_rows,)`` or an
optimizer slot -- may be one array (an ``np.memmap`` too), a list of shard arrays laid out
as ``tf.nn.embedding_lookup`` lays them out (``"mod"`` or ``"div"``), or a store (a
:class:`~fastsampled.ShardedMatrix`, which knows its own layout). :class:`ParamRows` turns
any of these into the shards' arrays, their sizes, the strategy, the dtype and the dim,
checking everything once with one error message per failure; the losses, the optimizers,
the head and the store all take parameters apart through it
(docs/architecture.md#parameter-rows).
"""
import numpy as np

from ._layout import check_layout, check_strategy, is_store, split_by_shard, store_shards
from ._rows_kernels import gather_rows, gather_vec
from ._validate import FLOAT_DTYPES

__all__ = ["ParamRows", "row_view"]


def row_view(shard):
    """A 2-D view of a C-contiguous shard as an exact ``np.ndarray`` (1-D becomes ``(n, 1)``).

    Exact ndarrays (not ``np.memmap``) take Numba's fast argument-typing path.
    """
    if type(shard) is not np.ndarray:
        shard = shard.view(np.ndarray)
    return shard.reshape(-1, 1) if shard.ndim == 1 else shard


def _exact(a):
    return a if type(a) is np.ndarray else a.view(np.ndarray)


class ParamRows:
    """A parameter normalised to its shards and their layout, validated once.

    Parameters
    ----------
    value : ndarray, np.memmap, list or tuple of shard arrays, or ShardedMatrix
        The parameter. A store (any object with ``shards`` and ``partition_strategy``)
        brings its own strategy; a closed one is refused.
    name : str
        What error messages call it (``"weights"``, ``"param"``, ``"slot 'm'"``).
    ndim : {1, 2, None}
        Required number of dimensions of every shard; None accepts 1 or 2.
    partition_strategy : {"mod", "div"} or None
        Layout of a list of several shards (None: such a list is refused); checked only
        when there are several shards.
    in_place : bool
        The parameter is read or updated where it lies, never copied: every shard must be
        an ``np.ndarray`` and C-contiguous (otherwise array-likes are converted).
    writeable : bool
        Every shard must be writeable (an optimizer updates it).

    Attributes
    ----------
    shards : list of ndarray
        The shards as exact ndarrays (1-D or 2-D as given).
    sizes : tuple of int
        Rows of each shard.
    strategy : str or None
        How ids map to the shards (meaningful with several shards).
    dtype : numpy.dtype
        float32 or float64, shared by every shard.
    dim : int or None
        Columns (None for a 1-D parameter).
    num_rows : int
    name : str
    store : object or None
        The store itself when ``value`` is one with a rollback journal (its rows must be
        journalled before they change).

    Raises
    ------
    ValueError, TypeError
        An empty list, a closed store, a shard of the wrong type, dtype, shape, contiguity
        or writeability, shards that disagree, or sizes that do not form the layout.
    """

    __slots__ = ("shards", "sizes", "strategy", "dtype", "dim", "num_rows", "name", "store",
                 "_views")

    def __init__(self, value, name, *, ndim=None, partition_strategy="mod", in_place=False,
                 writeable=False):
        self.name = name
        self.store = None
        self._views = None
        strategy = partition_strategy
        if (type(value) is np.ndarray and value.dtype in FLOAT_DTYPES
                and (value.ndim == ndim or (ndim is None and value.ndim in (1, 2)))
                and (not in_place or value.flags.c_contiguous)
                and (not writeable or value.flags.writeable)):
            shards = [value]        # the common case: one array, nothing more to check
        else:
            if is_store(value):
                self.store = value if hasattr(value, "journal") else None
                value, strategy = store_shards(value, name)
            if isinstance(value, (list, tuple)):
                if len(value) == 0:
                    raise ValueError(f"{name} must not be an empty list of shards")
                shards = list(value)
            else:
                shards = [value]
            for p, s in enumerate(shards):
                shards[p] = self._check_shard(s, p, shards, ndim, in_place, writeable)
        first = shards[0]
        self.shards = shards
        self.sizes = tuple(s.shape[0] for s in shards)
        self.dtype = first.dtype
        self.dim = first.shape[1] if first.ndim == 2 else None
        self.num_rows = sum(self.sizes)
        if len(shards) > 1:
            if strategy is None:
                raise ValueError(f"partition_strategy is required to map the ids of {name}, "
                                 f"a list of {len(shards)} shards")
            check_strategy(strategy)
            check_layout(self.sizes, strategy, name)
        self.strategy = strategy

    def _check_shard(self, s, p, shards, ndim, in_place, writeable):
        """Shard ``p`` as an exact ndarray, or the error that names what is wrong with it."""
        name = self.name
        what = name if len(shards) == 1 else f"{name}[{p}]"
        if in_place and not isinstance(s, np.ndarray):
            raise TypeError(f"{what} must be a numpy array (it is used in place), got "
                            f"{type(s).__name__}")
        a = _exact(s) if isinstance(s, np.ndarray) else np.asarray(s)
        if a.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{what} must be float32 or float64, got dtype {a.dtype}")
        if ndim is not None and a.ndim != ndim:
            raise ValueError(f"{what} must be {ndim}-D, got shape {a.shape}")
        if a.ndim not in (1, 2):
            raise ValueError(f"{what} must be 1-D or 2-D, got shape {a.shape}")
        if p:
            first = shards[0]
            if a.dtype != first.dtype:
                raise TypeError(f"{name}: all shards must share one dtype, got {first.dtype} "
                                f"and {a.dtype}")
            if a.ndim != first.ndim or a.shape[1:] != first.shape[1:]:
                raise ValueError(f"{name}: all shards must have the same ndim and dim, got "
                                 f"shapes {first.shape} and {a.shape}")
        if in_place and not a.flags.c_contiguous:
            raise ValueError(f"{what} must be C-contiguous (it is used in place, so it cannot "
                             f"be copied), got strides {a.strides} for shape {a.shape}")
        if writeable and not a.flags.writeable:
            raise ValueError(f"{what} is read-only (a ShardedMatrix opened with mode 'r', or "
                             "a non-writeable array); it is updated in place")
        return a

    @property
    def views(self):
        """The shards as 2-D exact ndarrays (a 1-D parameter's as ``(n, 1)``), made once."""
        if self._views is None:
            self._views = [row_view(s) for s in self.shards]
        return self._views

    def groups(self, ids):
        """``[(shard, positions, rows), ...]`` of range-checked global ``ids`` (1-D int64):
        see ``_layout.split_by_shard``."""
        return split_by_shard(ids, self.sizes, self.strategy)

    def gather(self, ids, out):
        """``out[t] = row(ids[t])``, cast to ``out.dtype``; ``ids`` already range-checked.

        ``out`` is ``(ids.size, dim)`` for a 2-D parameter, ``(ids.size,)`` for a 1-D one.
        """
        kernel = gather_rows if out.ndim == 2 else gather_vec
        for p, pos, rows in self.groups(ids):
            kernel(self.shards[p], rows, pos, out)
        return out

    def same_layout(self, other):
        """Whether ``other`` (a ParamRows) maps ids to the same shards and rows."""
        return self.sizes == other.sizes and (len(self.sizes) == 1
                                              or self.strategy == other.strategy)

    def describe(self):
        """``"shape (V, D), float32, shard sizes [..], 'mod'"``, for error messages."""
        shape = (self.num_rows,) if self.dim is None else (self.num_rows, self.dim)
        return (f"shape {shape}, {self.dtype}, shard sizes {list(self.sizes)}"
                + (f", {self.strategy!r}" if len(self.sizes) > 1 else ""))

    def __repr__(self):
        return f"ParamRows({self.name}: {self.describe()})"
