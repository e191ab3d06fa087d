"""fastsampled.sharding (TensorFlow's embedding_lookup id -> (shard, row) map) against the
reference ``shard_map``, over many (N, P, strategy) including N < P."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference as ref
from fastsampled.sharding import check_layout, layout_sizes, shard_ids

pytestmark = pytest.mark.kernel

CONFIGS = [(n, p, s) for n in list(range(1, 30)) + [97, 1000, 1001, 1023]
           for p in (1, 2, 3, 4, 5, 7, 8, 16) for s in ("mod", "div")]


def _expected_sizes(n, p, strategy):
    """Consistent layout, derived from the reference map: rows of each shard."""
    if p == 1:
        return [n]
    # the reference map depends only on N = sum(sizes) and P, not on the individual sizes
    shard, _ = ref.shard_map(np.arange(n), [n] + [0] * (p - 1), strategy) if (
        strategy == "mod" or n >= p) else (np.arange(n), None)
    return [int(np.count_nonzero(shard == k)) for k in range(p)]


@pytest.mark.parametrize("n,p,strategy", CONFIGS)
def test_layout_and_map_match_reference(n, p, strategy):
    sizes = layout_sizes(n, p, strategy)
    assert len(sizes) == p and sum(sizes) == n
    assert sizes == _expected_sizes(n, p, strategy)
    check_layout(sizes, strategy)  # the layout is valid
    ids = np.arange(n)
    shard, row = shard_ids(ids, sizes, strategy)
    assert shard.dtype == np.int64 and row.dtype == np.int64
    # every id lands in an existing row, and the map is a bijection onto the rows
    assert ((shard >= 0) & (shard < p)).all()
    assert (row >= 0).all() and (row < np.array(sizes)[shard]).all()
    assert len(set(zip(shard.tolist(), row.tolist()))) == n
    if strategy == "div" and n < p and p > 1:
        # TF divides by N // P = 0 here; fastsampled maps the valid layout [1]*N + [0]*(P-N)
        np.testing.assert_array_equal(shard, ids)
        np.testing.assert_array_equal(row, 0)
        return
    r_shard, r_row = ref.shard_map(ids, sizes, strategy)
    np.testing.assert_array_equal(shard, r_shard)
    np.testing.assert_array_equal(row, r_row)
    # the layout is the one the reference's lookup reads back
    dense = np.arange(n * 2, dtype=np.float64).reshape(n, 2)
    shards = [np.empty((k, 2)) for k in sizes]
    for i in range(n):
        shards[shard[i]][row[i]] = dense[i]
    np.testing.assert_array_equal(ref.lookup(shards, ids, strategy), dense)


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_known_layouts(strategy):
    assert layout_sizes(13, 3, strategy) == [5, 4, 4]
    assert layout_sizes(10, 4, strategy) == [3, 3, 2, 2]
    assert layout_sizes(2, 3, strategy) == [1, 1, 0]
    assert layout_sizes(0, 2, strategy) == [0, 0]


def test_known_maps():
    shard, row = shard_ids(np.arange(13), [5, 4, 4], "div")
    np.testing.assert_array_equal(shard, [0] * 5 + [1] * 4 + [2] * 4)
    np.testing.assert_array_equal(row, [0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2, 3])
    shard, row = shard_ids(np.arange(13), [5, 4, 4], "mod")
    np.testing.assert_array_equal(shard, [0, 1, 2] * 4 + [0])
    np.testing.assert_array_equal(row, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4])


def test_shard_ids_keeps_shape_and_accepts_int32():
    ids = np.array([[3, 0], [7, 12]], dtype=np.int32)
    shard, row = shard_ids(ids, [5, 4, 4], "div")
    assert shard.shape == (2, 2) and row.shape == (2, 2)
    r_shard, r_row = ref.shard_map(ids, [5, 4, 4], "div")
    np.testing.assert_array_equal(shard, r_shard)
    np.testing.assert_array_equal(row, r_row)
    shard, row = shard_ids(np.zeros(0, np.int64), [5, 4, 4], "mod")
    assert shard.size == 0 and row.size == 0


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_single_shard_ignores_strategy(strategy):
    ids = np.array([[3, 0], [7, 12]])
    shard, row = shard_ids(ids, [20], strategy)
    np.testing.assert_array_equal(shard, 0)
    np.testing.assert_array_equal(row, ids)
    check_layout([20], strategy)
    check_layout([0], strategy)


@pytest.mark.parametrize("sizes,strategy", [
    ([4, 5, 4], "div"), ([4, 5, 4], "mod"), ([4, 4, 5], "div"), ([4, 4, 6], "mod"),
    ([3, 5], "div"), ([6, 4], "mod"), ([0, 1], "div"), ([1, 1, 1, 2], "mod"), ([4, 5, 5], "mod"),
])
def test_invalid_layouts_raise(sizes, strategy):
    with pytest.raises(ValueError, match="layout"):
        check_layout(sizes, strategy)
    with pytest.raises(ValueError, match="layout"):
        shard_ids([0], sizes, strategy)


def test_div_map_depends_on_total_rows():
    # SEMANTICS: under "div", N = sum of shard sizes; an extra row changes the whole map
    a = shard_ids(np.arange(13), layout_sizes(13, 3, "div"), "div")
    b = shard_ids(np.arange(13), layout_sizes(14, 3, "div"), "div")
    assert not np.array_equal(a[0], b[0])
    rb = ref.shard_map(np.arange(13), layout_sizes(14, 3, "div"), "div")
    np.testing.assert_array_equal(b[0], rb[0])
    np.testing.assert_array_equal(b[1], rb[1])


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 5000), p=st.integers(1, 64), strategy=st.sampled_from(["mod", "div"]),
       seed=st.integers(0, 2**32 - 1))
def test_random_ids_match_reference(n, p, strategy, seed):
    if strategy == "div" and p > n:
        p = n
    sizes = layout_sizes(n, p, strategy)
    ids = np.random.default_rng(seed).integers(0, n, size=200)
    shard, row = shard_ids(ids, sizes, strategy)
    r_shard, r_row = ref.shard_map(ids, sizes, strategy)
    np.testing.assert_array_equal(shard, r_shard)
    np.testing.assert_array_equal(row, r_row)
