"""Shard layouts: how ids map to shards, exactly as TensorFlow's ``embedding_lookup`` maps them
(private; ``fastsampled.sharding`` re-exports the public names).

``"mod"``: shard ``id % P``, row ``id // P``. ``"div"``: contiguous blocks; with ``N`` the
total number of rows, ``q, r = divmod(N, P)``, the first ``r`` shards hold ``q + 1`` rows and
the others ``q``. TensorFlow applies these formulas whatever the shards' real sizes and
silently mis-maps ids when the sizes do not form that layout; fastsampled raises instead
(docs/semantics.md#sharded-weights). The losses, the optimizers and the store all take their
layouts from here.
"""
import numpy as np

from ._rows_kernels import shard_map
from ._validate import as_id_array, check_range

STRATEGIES = ("mod", "div")


def check_strategy(partition_strategy):
    if partition_strategy not in STRATEGIES:
        raise ValueError(f"partition_strategy must be 'mod' or 'div', got {partition_strategy!r}")
    return partition_strategy


def layout_sizes(num_rows, num_shards, partition_strategy):
    """Rows per shard of the consistent layout of ``num_rows`` ids over ``num_shards`` shards.

    Examples
    --------
    >>> from fastsampled.sharding import layout_sizes
    >>> layout_sizes(13, 3, "mod"), layout_sizes(13, 3, "div")
    ([5, 4, 4], [5, 4, 4])
    >>> layout_sizes(10, 4, "div")
    [3, 3, 2, 2]
    """
    check_strategy(partition_strategy)
    q, r = divmod(int(num_rows), int(num_shards))
    return [q + 1 if p < r else q for p in range(num_shards)]


def check_layout(shard_sizes, partition_strategy, name="weights"):
    """Raise ``ValueError`` unless ``shard_sizes`` form TensorFlow's layout for the strategy."""
    check_strategy(partition_strategy)
    sizes = [int(s) for s in shard_sizes]
    if len(sizes) == 1:
        return
    expected = layout_sizes(sum(sizes), len(sizes), partition_strategy)
    if sizes != expected:
        raise ValueError(
            f"{name}: shard sizes {sizes} do not form a valid {partition_strategy!r} layout of "
            f"{sum(sizes)} rows over {len(sizes)} shards (expected {expected}); TensorFlow would "
            "silently read the wrong rows or fail on some ids")


def shard_ids(ids, shard_sizes, partition_strategy):
    """Map global ids to ``(shard, row_in_shard)`` as TensorFlow does.

    Parameters
    ----------
    ids : array_like of int
        Global ids in ``[0, sum(shard_sizes))``.
    shard_sizes : sequence of int
        Rows of each shard (must form a valid layout, see :func:`check_layout`).
    partition_strategy : {"mod", "div"}

    Returns
    -------
    shard, row : ndarray of int64, shape of ``ids``

    Examples
    --------
    >>> from fastsampled.sharding import shard_ids
    >>> [a.tolist() for a in shard_ids([0, 4, 5, 12], [5, 4, 4], "div")]
    [[0, 0, 1, 2], [0, 4, 0, 3]]
    """
    check_layout(shard_sizes, partition_strategy)
    ids = as_id_array(ids, "ids")
    n = int(sum(shard_sizes))
    check_range(ids, 0, n, "ids", f"{n} rows")
    shard, row = _map(ids.reshape(-1), len(shard_sizes), n, partition_strategy)
    return shard.reshape(ids.shape), row.reshape(ids.shape)


def split_by_shard(ids_flat, shard_sizes, partition_strategy):
    """Group already range-checked global ids by shard.

    Returns a list with one ``(p, positions, rows)`` per non-empty shard ``p``: ``positions``
    index into ``ids_flat`` (ascending), ``rows`` are the rows of those ids inside shard ``p``.
    One shard costs nothing; several cost one stable argsort of ``ids_flat``.
    """
    num_shards = len(shard_sizes)
    if num_shards == 1:
        return [(0, np.arange(ids_flat.size, dtype=np.int64), ids_flat)]
    shard, row = _map(ids_flat, num_shards, int(sum(shard_sizes)), partition_strategy)
    order = np.argsort(shard, kind="stable")
    bounds = np.searchsorted(shard[order], np.arange(num_shards + 1))
    groups = []
    for p in range(num_shards):
        sel = order[bounds[p]:bounds[p + 1]]
        if sel.size:
            groups.append((p, sel, row[sel]))
    return groups


def _map(ids_flat, num_shards, num_rows, partition_strategy):
    if num_shards == 1:
        return np.zeros(ids_flat.size, np.int64), ids_flat
    q, r = divmod(num_rows, num_shards)
    return shard_map(ids_flat, num_shards, partition_strategy == "div", q, r)


def is_store(value):
    """Whether ``value`` is a store-like parameter (a :class:`ShardedMatrix`, or any object
    with ``shards`` and ``partition_strategy``) rather than an array or a list of shards."""
    return hasattr(value, "shards") and hasattr(value, "partition_strategy")


def store_shards(value, name):
    """``(shards, partition_strategy)`` of a store-like parameter, refusing a closed store.

    The one place where the losses, the optimizers and :meth:`ShardedMatrix.like` take a
    store apart, so that a closed store gets the same error from all of them.

    Raises
    ------
    ValueError
        ``value`` is closed: ``"<name>: ShardedMatrix(...) is closed"``.
    """
    if getattr(value, "closed", False):
        raise ValueError(f"{name}: {value!r} is closed")
    return value.shards, value.partition_strategy

