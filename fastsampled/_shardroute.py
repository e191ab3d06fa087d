"""Which shard server owns which class, and the merges of their answers (private; numpy
only, used by ``fastsampled.ray``).

Ids map to shards as TensorFlow's ``partition_strategy`` maps them (``_layout``): a step's
sorted unique ids split into one group per shard, in the shard's local row ids; the local
top-k lists of the shards merge into the global top-k with the single-machine head's order
(higher score first, ties to the smaller id), and their log-sum-exps into one.
"""
import numpy as np

from ._layout import check_strategy, layout_sizes, split_by_shard

__all__ = ["Router", "merge_topk", "merge_lse"]


class Router:
    """The map from global class ids to ``(shard, local row)`` of a distributed head."""

    def __init__(self, num_classes, num_shards, partition_strategy):
        self.num_classes = int(num_classes)
        self.num_shards = int(num_shards)
        self.strategy = check_strategy(partition_strategy)
        self.sizes = layout_sizes(self.num_classes, self.num_shards, self.strategy)

    def split(self, ids):
        """``[(positions, local_ids)]``, one pair per shard (empty where it owns none of
        ``ids``): ``positions`` index into ``ids`` (ascending); for sorted ids the local ids
        of each shard are sorted too. ``ids`` must be range-checked int64."""
        empty = np.empty(0, np.int64)
        out = [(empty, empty)] * self.num_shards
        for p, pos, rows in split_by_shard(ids, self.sizes, self.strategy):
            out[p] = (pos, rows)
        return out


def merge_topk(parts, k):
    """The top ``k`` of several shards' top lists: ``parts`` is ``[(ids (B, k_s), scores
    (B, k_s))]``; returns ``(ids (B, k), scores (B, k))``, best first, ties to the smaller
    id."""
    ids = np.concatenate([p[0] for p in parts], axis=1)
    scores = np.concatenate([p[1] for p in parts], axis=1)
    order = np.lexsort((ids, -scores), axis=1)[:, :k]
    return (np.take_along_axis(ids, order, axis=1),
            np.take_along_axis(scores, order, axis=1))


def merge_lse(parts):
    """``log(sum(exp(lse_s)))`` of the shards' log-sum-exps (float64, each (B,))."""
    a = np.stack(parts)
    m = a.max(axis=0)
    return m + np.log(np.exp(a - m).sum(axis=0))
