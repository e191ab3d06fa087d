"""One shard server's logic (``_shardserver``) and the routing of ids to shards
(``_shardroute``) of ``fastsampled.ray``, tested without Ray: updates applied once,
synchronous sums in trainer order, snapshots, and the two-phase commit of a shard on disk.
"""
import numpy as np
import pytest

import fastsampled as fs
from fastsampled._shardroute import Router, merge_lse, merge_topk
from fastsampled._shardserver import INITIAL, ShardServer, UpdateGap


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_router_splits_ids_as_tensorflow_partitions_them(strategy):
    r = Router(13, 3, strategy)
    ids = np.arange(13, dtype=np.int64)
    parts = r.split(ids)
    shard, row = fs.sharding.shard_ids(ids, fs.sharding.layout_sizes(13, 3, strategy), strategy)
    for s, (pos, local) in enumerate(parts):
        np.testing.assert_array_equal(pos, np.flatnonzero(shard == s))
        np.testing.assert_array_equal(local, row[shard == s])
        assert (np.diff(local) > 0).all()
    assert [p[0].size for p in r.split(np.array([0, 6], np.int64))] == \
        ([2, 0, 0] if strategy == "mod" else [1, 1, 0])


def test_merges_keep_the_single_machine_order_and_sums():
    a = (np.array([[5, 1]]), np.array([[2.0, 1.0]], np.float32))
    b = (np.array([[4, 0]]), np.array([[2.0, 1.0]], np.float32))
    ids, scores = merge_topk([a, b], 3)
    assert ids.tolist() == [[4, 5, 0]]                 # ties: the smaller id first
    assert scores.tolist() == [[2.0, 2.0, 1.0]]
    parts = [np.array([0.5, 700.0]), np.array([1.5, 700.0])]
    want = np.logaddexp(parts[0], parts[1])
    np.testing.assert_allclose(merge_lse(parts), want, rtol=1e-15)


def _server(tmp_path=None, shard=1, num_shards=3, optimizer="adam"):
    opt = {"sgd": {"name": "sgd", "lr": 0.5, "weight_decay": 0.0},
           "adam": {"name": "adam", **fs.Adam(lr=0.01).get_config()}}[optimizer]
    return ShardServer({"shard": shard, "num_shards": num_shards, "num_classes": 100,
                        "dim": 4, "partition_strategy": "mod", "dtype": "float32",
                        "optimizer": opt, "init": "normal", "init_scale": 0.5, "seed": 7,
                        "path": None if tmp_path is None else str(tmp_path / "s"),
                        "durability": "process"})


def test_a_new_shard_holds_the_initial_rows_of_a_memory_mapped_head(tmp_path):
    srv = _server()
    srv.create()
    with fs.SampledSoftmaxHead(100, 4, path=tmp_path / "h", seed=7, init_scale=0.5,
                               num_sampled=1) as h:
        want = h.weights.gather(np.arange(1, 100, 3))
    rows, biases = srv.gather(np.arange(srv.num_rows, dtype=np.int64))
    np.testing.assert_array_equal(rows, want)
    assert not biases.any()


def test_an_update_applies_once_and_a_gap_is_refused():
    srv = _server()
    srv.create()
    ids = np.array([0, 5], np.int64)
    g = np.ones((2, 4), np.float32), np.ones(2, np.float32)
    before = srv.gather(ids)[0].copy()
    assert srv.apply("a", 1, ids, *g) is True
    after = srv.gather(ids)[0].copy()
    assert srv.apply("a", 1, ids, *g) is False          # a retried call
    np.testing.assert_array_equal(srv.gather(ids)[0], after)
    assert not np.array_equal(before, after)
    with pytest.raises(UpdateGap, match="2 .. 2 are missing"):
        srv.apply("a", 3, ids, *g)
    assert srv.head.step == 1
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 33\)"):
        srv.gather(np.array([33], np.int64))


def test_synchronous_parts_sum_in_trainer_order_whatever_their_arrival():
    rng = np.random.default_rng(0)
    parts = {t: (np.sort(rng.choice(33, 5, replace=False)).astype(np.int64),
                 rng.normal(size=(5, 4)).astype(np.float32),
                 rng.normal(size=5).astype(np.float32)) for t in ("t0", "t1", "t2")}
    results = []
    for order in (["t0", "t1", "t2"], ["t2", "t0", "t1"]):
        srv = _server()
        srv.create()
        applied = [srv.contribute(t, 1, ["t0", "t1", "t2"], *parts[t]) for t in order]
        assert applied == [False, False, True] and srv.sync_step == 1
        results.append(srv.gather(np.arange(33, dtype=np.int64))[0])
    np.testing.assert_array_equal(results[0], results[1])
    # a later step's part waits; a finished trainer is no longer waited for
    srv.contribute("t0", 3, ["t0", "t1"], *parts["t0"])
    srv.contribute("t0", 2, ["t0", "t1"], *parts["t0"])
    assert srv.sync_step == 1
    assert srv.finish("t1", 2) is True and srv.sync_step == 3


def test_snapshot_and_restore_return_a_ram_shard_exactly(tmp_path):
    srv = _server(optimizer="adam")
    srv.create()
    ids = np.array([1, 2], np.int64)
    srv.apply("a", 1, ids, np.ones((2, 4), np.float32), np.ones(2, np.float32))
    snap = srv.snapshot()
    want = srv.gather(ids)
    srv.apply("a", 2, ids, np.ones((2, 4), np.float32), np.ones(2, np.float32))
    srv.restore(snap)
    np.testing.assert_array_equal(srv.gather(ids)[0], want[0])
    assert srv.applied == {"a": 1} and srv.head.optimizer_states[0].t == 1
    srv.restore(INITIAL)
    assert srv.head.step == 0 and srv.applied == {}


def test_a_disk_shard_that_missed_its_commit_catches_up_with_the_manifest(tmp_path):
    srv = _server(tmp_path)
    srv.create()
    ids = np.array([1, 2], np.int64)
    srv.apply("head", 1, ids, np.ones((2, 4), np.float32), np.ones(2, np.float32))
    prepared = srv.prepare()          # rows durable; the manifest would be written now...
    want = srv.gather(ids)[0].copy()
    srv.close()                       # ...and the shard dies before its own commit
    again = _server(tmp_path)
    again.open(prepared["epoch"], prepared["step"], prepared["applied"], 0)
    np.testing.assert_array_equal(again.gather(ids)[0], want)
    assert again.head.step == 1 and again.applied == {"head": 1}
    # a shard that did not reach the manifest's checkpoint is rolled back instead
    again.apply("head", 2, ids, np.ones((2, 4), np.float32), np.ones(2, np.float32))
    again.close()
    third = _server(tmp_path)
    third.open(prepared["epoch"], prepared["step"], prepared["applied"], 0)
    np.testing.assert_array_equal(third.gather(ids)[0], want)
    with pytest.raises(fs.StoreError, match="manifest records epoch"):
        _server(tmp_path).open(prepared["epoch"] + 5, 1, {}, 0)
    third.close()
