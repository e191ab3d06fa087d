"""Candidate samplers and alias tables: distributions (chi-square), unique rejection and
expected counts, reproducibility, caching, vocab files, shards and accidental hits."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import fastsampled as fs
from fastsampled import _sampler_unigram
import reference as ref
from fastsampled._alias_kernels import alias_column_probs

pytestmark = pytest.mark.kernel

P_MIN = 1e-3


def chi2_pvalue(draws, probs, bins=None, min_expected=5.0):
    """Chi-square goodness-of-fit p-value of ``draws`` against ``probs`` (over ids).

    ``bins``: optional list of id arrays that are pooled into one category each. Ids with
    probability 0 must never be drawn (asserted here) and are left out of the test.
    """
    draws = np.asarray(draws)
    probs = np.asarray(probs, dtype=np.float64)
    n = draws.size
    counts = np.bincount(draws, minlength=probs.size)
    assert counts.size == probs.size, "a draw is out of range"
    assert counts[probs == 0].sum() == 0, "an id with probability 0 was drawn"
    if bins is None:
        bins = [np.array([i]) for i in np.flatnonzero(probs > 0)]
    obs = np.array([counts[b].sum() for b in bins], dtype=np.float64)
    exp = np.array([probs[b].sum() for b in bins]) * n / probs.sum()
    assert obs.sum() == n, "bins must cover every drawable id"
    assert exp.min() >= min_expected, "bins too small for a chi-square test"
    return stats.chisquare(obs, exp * (obs.sum() / exp.sum())).pvalue


def draws_of(sampler, n, unique=False):
    s, _, _ = sampler([[0]], 1, n, unique)
    return s


# ---------------------------------------------------------------------------
# AliasTable
# ---------------------------------------------------------------------------

def test_alias_table_distribution_with_zeros():
    rng = np.random.default_rng(0)
    w = rng.uniform(0, 1, size=60)
    w[rng.choice(60, 15, replace=False)] = 0.0
    w[7] = 0.0
    table = fs.AliasTable(w)
    draws = table.sample(300_000, seed=11)
    assert draws.dtype == np.int64
    assert chi2_pvalue(draws, w) > P_MIN
    assert not np.isin(draws, np.flatnonzero(w == 0)).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_alias_table_skewed_weights(dtype):
    # one heavy class, many light ones, zeros at both ends
    w = np.ones(40)
    w[3] = 500.0
    w[0] = w[-1] = 0.0
    w = w.astype(dtype)
    table = fs.AliasTable(w)
    draws = table.sample(200_000, seed=3)
    assert chi2_pvalue(draws, w.astype(np.float64)) > P_MIN
    probs = table.prob(np.arange(40))
    assert probs.dtype == np.float64
    w64 = w.astype(np.float64)
    np.testing.assert_allclose(probs, w64 / w64.sum(), rtol=1e-12)


def test_alias_table_single_positive_class():
    w = np.zeros(10)
    w[6] = 2.5
    draws = fs.AliasTable(w).sample(1000, seed=0)
    assert (draws == 6).all()


def test_alias_table_reproducible_and_streams():
    table = fs.AliasTable(np.arange(1.0, 30.0))
    a = table.sample(5000, seed=5)
    np.testing.assert_array_equal(a, table.sample(5000, seed=5))
    # draw i depends only on (seed, stream, i): a shorter call is a prefix
    np.testing.assert_array_equal(a[:777], table.sample(777, seed=5))
    assert not np.array_equal(a, table.sample(5000, seed=6))
    b = table.sample(5000, seed=5, stream=1)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(b, table.sample(5000, seed=5, stream=1))
    out = np.empty(5000, np.int64)
    res = table.sample(5000, seed=5, out=out)
    assert res is out
    np.testing.assert_array_equal(out, a)
    # numpy Generators with the same state give the same draws
    np.testing.assert_array_equal(table.sample(100, seed=np.random.default_rng(1)),
                                  table.sample(100, seed=np.random.default_rng(1)))
    # seed=None: fresh entropy every call
    assert not np.array_equal(table.sample(5000), table.sample(5000))
    assert table.sample(0, seed=1).shape == (0,)


def test_alias_table_memory_and_attributes():
    for V in (1, 7, 1000):
        table = fs.AliasTable(np.ones(V))
        assert table.nbytes == 8 * V
        assert table.table.dtype == np.uint64 and table.table.size == V
        assert len(table) == V and table.num_classes == V
    table = fs.AliasTable(np.array([0.0, 1.0, 0.0, 3.0]))
    assert table.num_positive == 2
    assert table.total == 4.0


def _check_table_probs(w):
    table = fs.AliasTable(w)
    ids = np.arange(w.size, dtype=np.int64)
    expected = np.asarray(w, np.float64) / np.asarray(w, np.float64).sum()
    np.testing.assert_allclose(table.prob(ids), expected, rtol=0, atol=1e-12)
    implied = np.empty(w.size, np.float64)
    alias_column_probs(table.table, ids, implied)
    np.testing.assert_allclose(implied, expected, rtol=0, atol=1e-9)
    assert (implied[np.asarray(w) == 0] == 0).all(), "a zero-weight class has implied mass"
    np.testing.assert_allclose(implied.sum(), 1.0, atol=1e-9)


_F64_WEIGHTS = st.lists(st.one_of(st.just(0.0), st.floats(1e-300, 1e300), st.floats(0.5, 2.0)),
                        min_size=1, max_size=300)
_F32_WEIGHTS = st.lists(st.floats(0.0, 2.0**100, width=32, allow_subnormal=False),
                        min_size=1, max_size=300)


@settings(max_examples=40, deadline=None)
@given(_F64_WEIGHTS.filter(lambda ws: any(x > 0 for x in ws)))
def test_alias_table_implied_probs_property_f64(weights):
    """Zeros, huge dynamic range (1e-300 .. 1e300) and near-uniform weights."""
    _check_table_probs(np.array(weights, np.float64))


@settings(max_examples=40, deadline=None)
@given(_F32_WEIGHTS.filter(lambda ws: any(x > 0 for x in ws)))
def test_alias_table_implied_probs_property_f32(weights):
    _check_table_probs(np.array(weights, np.float32))


@pytest.mark.parametrize("seed", range(4))
def test_alias_table_implied_probs_large(seed):
    rng = np.random.default_rng(seed)
    V = 5000
    w = rng.pareto(1.0, size=V)
    w[rng.random(V) < 0.3] = 0.0
    _check_table_probs(w)


# ---------------------------------------------------------------------------
# distributions of the samplers
# ---------------------------------------------------------------------------

def test_uniform_distribution():
    sampler = fs.UniformSampler(37, seed=1)
    draws = draws_of(sampler, 100_000)
    assert chi2_pvalue(draws, ref.uniform_prob(np.arange(37), 37)) > P_MIN
    np.testing.assert_array_equal(sampler.prob(np.arange(37)), np.float32(1.0 / 37))


def test_log_uniform_distribution_binned_tail():
    range_max = 2000
    sampler = fs.LogUniformSampler(range_max, seed=2)
    draws = draws_of(sampler, 200_000)
    v = np.arange(range_max, dtype=np.float64)
    probs = np.log((v + 2.0) / (v + 1.0)) / np.log1p(range_max)
    edges = list(range(30)) + [30, 45, 70, 110, 170, 260, 400, 650, 1000, 1400, range_max]
    bins = [np.arange(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
    assert chi2_pvalue(draws, probs, bins) > P_MIN
    np.testing.assert_array_equal(sampler.prob(np.arange(range_max)),
                                  ref.log_uniform_prob(np.arange(range_max), range_max))


@pytest.mark.parametrize("distortion,num_reserved_ids", [(1.0, 0), (0.75, 3), (0.0, 2),
                                                         (0.5, 5)])
def test_fixed_unigram_distribution(distortion, num_reserved_ids):
    rng = np.random.default_rng(4)
    unigrams = rng.integers(0, 50, size=40).astype(np.float64)
    unigrams[[1, 9]] = 0.0
    range_max = num_reserved_ids + unigrams.size
    sampler = fs.FixedUnigramSampler(range_max, unigrams=unigrams, distortion=distortion,
                                     num_reserved_ids=num_reserved_ids, seed=5)
    w, total = ref.fixed_unigram_weights(unigrams, distortion, num_reserved_ids)
    draws = draws_of(sampler, 150_000)
    assert chi2_pvalue(draws, w.astype(np.float64)) > P_MIN
    assert (draws >= num_reserved_ids).all(), "a reserved id was drawn"
    np.testing.assert_array_equal(sampler.prob(np.arange(range_max)),
                                  ref.fixed_unigram_prob(np.arange(range_max), unigrams,
                                                         distortion, num_reserved_ids))
    assert sampler.total == total


@pytest.mark.parametrize("num_reserved_ids,num_shards,shard",
                         [(0, 2, 1), (4, 3, 1), (4, 3, 0), (5, 4, 3), (2, 3, 2)])
def test_fixed_unigram_shards_match_reference(num_reserved_ids, num_shards, shard):
    rng = np.random.default_rng(num_shards * 10 + shard)
    unigrams = rng.uniform(0.5, 20.0, size=47).astype(np.float32)
    w, total = ref.fixed_unigram_weights(unigrams, 0.75, num_reserved_ids, num_shards, shard)
    sampler = fs.FixedUnigramSampler(w.size, unigrams=unigrams, distortion=0.75,
                                     num_reserved_ids=num_reserved_ids, num_shards=num_shards,
                                     shard=shard, seed=9)
    np.testing.assert_array_equal(sampler.weights, w)
    assert sampler.total == total
    ids = np.arange(w.size)
    np.testing.assert_array_equal(
        sampler.prob(ids), ref.fixed_unigram_prob(ids, unigrams, 0.75, num_reserved_ids,
                                                  num_shards, shard))
    draws = draws_of(sampler, 100_000)
    assert chi2_pvalue(draws, w.astype(np.float64)) > P_MIN
    # functional form: same distribution, same first-call draws
    s, tec, sec = fs.fixed_unigram_candidate_sampler(
        [[0]], 1, 50, False, w.size, unigrams=unigrams, distortion=0.75,
        num_reserved_ids=num_reserved_ids, num_shards=num_shards, shard=shard, seed=9)
    s2, tec2, sec2 = fs.FixedUnigramSampler(
        w.size, unigrams=unigrams, distortion=0.75, num_reserved_ids=num_reserved_ids,
        num_shards=num_shards, shard=shard, seed=9)([[0]], 1, 50, False)
    np.testing.assert_array_equal(s, s2)
    np.testing.assert_array_equal(sec, sec2)


def test_learned_unigram_distribution_after_updates():
    range_max = 25
    sampler = fs.LearnedUnigramSampler(range_max, seed=6)
    prior = np.array([[3, 3], [3, 7], [7, 0], [24, 3]] * 10)
    sampler.update(prior[:20])
    sampler(prior[20:], 2, 5, False)  # a call also adds its true classes (after the call)
    expected = ref.learned_unigram_prob(np.arange(range_max), range_max, prior)
    np.testing.assert_array_equal(sampler.prob(np.arange(range_max)), expected)
    counts = np.ones(range_max)
    np.add.at(counts, prior.reshape(-1), 1)
    s, tec, sec = sampler([[1]], 1, 120_000, False)
    assert chi2_pvalue(s, counts) > P_MIN
    # expected counts of this call used the counts before the call's own update
    np.testing.assert_array_equal(tec, ref.expected_count(expected[[1]], 120_000, 120_000)
                                  .reshape(1, 1))


def test_learned_unigram_counts_update_after_the_call():
    sampler = fs.LearnedUnigramSampler(10, seed=1)
    tc = np.array([[4, 4], [2, 9]])
    _, tec1, _ = sampler(tc, 2, 3, False)
    np.testing.assert_array_equal(tec1, ref.expected_count(
        ref.learned_unigram_prob(tc, 10), 3, 3))
    _, tec2, _ = sampler(tc, 2, 3, False)
    np.testing.assert_array_equal(tec2, ref.expected_count(
        ref.learned_unigram_prob(tc, 10, tc), 3, 3))
    np.testing.assert_array_equal(sampler.counts, [1, 1, 3, 1, 5, 1, 1, 1, 1, 3])


def test_learned_unigram_functional_is_stateful():
    tc = np.array([[1], [1]])
    seed = 987654
    _, tec1, _ = fs.learned_unigram_candidate_sampler(tc, 1, 2, False, 8, seed=seed)
    _, tec2, _ = fs.learned_unigram_candidate_sampler(tc, 1, 2, False, 8, seed=seed)
    np.testing.assert_array_equal(tec1, ref.expected_count(ref.learned_unigram_prob(tc, 8),
                                                           2, 2))
    np.testing.assert_array_equal(tec2, ref.expected_count(
        ref.learned_unigram_prob(tc, 8, tc), 2, 2))


# ---------------------------------------------------------------------------
# unique sampling, num_tries and expected counts
# ---------------------------------------------------------------------------

def _assert_rel(actual, expected, rtol=1.5e-7):
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=0)


def _make(name, range_max, seed):
    if name == "uniform":
        return fs.UniformSampler(range_max, seed=seed)
    if name == "log_uniform":
        return fs.LogUniformSampler(range_max, seed=seed)
    if name == "fixed_unigram":
        u = np.arange(range_max, dtype=np.float64) % 7
        u[:2] = 0.0
        return fs.FixedUnigramSampler(range_max, unigrams=u, distortion=0.75, seed=seed)
    if name == "learned_unigram":
        s = fs.LearnedUnigramSampler(range_max, seed=seed)
        s.update(np.arange(range_max) % 5)
        return s
    raise AssertionError(name)


SAMPLERS = ["uniform", "log_uniform", "fixed_unigram", "learned_unigram"]


@pytest.mark.parametrize("name", SAMPLERS)
def test_unique_draws_with_rejections(name):
    range_max, S = 30, 20
    sampler = _make(name, range_max, seed=8)
    tc = np.array([[2, 5], [7, 29]])
    if name == "fixed_unigram":
        S = int((sampler.weights > 0).sum()) - 2
    # probabilities as of the call (learned_unigram updates its counts after the call)
    prob = ref.learned_unigram_prob if name == "learned_unigram" else None
    prob_before = sampler.prob(tc)
    all_before = sampler.prob(np.arange(range_max))
    s, tec, sec = sampler(tc, 2, S, True)
    tries = sampler.last_num_tries
    assert s.shape == (S,) and s.dtype == np.int64
    assert np.unique(s).size == S
    assert tries > S  # S close to range_max: some draw is always rejected
    assert tec.dtype == np.float32 and sec.dtype == np.float32 and tec.shape == (2, 2)
    if prob is not None:
        np.testing.assert_array_equal(
            all_before, prob(np.arange(range_max), range_max, np.arange(range_max) % 5))
    _assert_rel(sec, ref.expected_count(all_before[s], tries, S))
    _assert_rel(tec, ref.expected_count(prob_before, tries, S))
    assert (sec <= 1.0).all()
    p = np.float32(prob_before[0, 0])
    _assert_rel(tec[0, 0], -np.expm1(np.float32(tries) * np.log1p(-p)))


@pytest.mark.parametrize("name", ["uniform", "log_uniform"])
def test_unique_without_rejection_uses_p_times_s(name):
    """unique=True but no draw rejected (num_tries == S): TF's p * S branch, not -expm1."""
    sampler = _make(name, 10**7, seed=3)
    S = 4
    tc = np.array([[12345]])
    s, tec, sec = sampler(tc, 1, S, True)
    assert sampler.last_num_tries == S   # 4 draws over 10**7 classes: no repeat for this seed
    np.testing.assert_array_equal(sec, sampler.prob(s) * np.float32(S))
    np.testing.assert_array_equal(tec, sampler.prob(tc) * np.float32(S))


@pytest.mark.parametrize("name", SAMPLERS)
def test_nonunique_expected_counts_are_p_times_s(name):
    sampler = _make(name, 40, seed=4)
    tc = np.array([[3], [11]])
    p_true = sampler.prob(tc)
    p_all = sampler.prob(np.arange(40))
    s, tec, sec = sampler(tc, 1, 60, False)   # S > range_max is fine without unique
    assert sampler.last_num_tries == 60
    np.testing.assert_array_equal(sec, p_all[s] * np.float32(60))
    np.testing.assert_array_equal(tec, p_true * np.float32(60))
    if name == "uniform":
        assert (sec > 1).all()  # E = p * S > 1 is possible without unique (as TF)


@pytest.mark.parametrize("name", SAMPLERS)
def test_unique_is_first_distinct_values_of_the_stream(name):
    """unique=True returns the first S distinct values of the unique=False stream of the same
    call, and num_tries is the position of the S-th distinct value (as TensorFlow)."""
    S = 15
    stream_sampler = _make(name, 50, seed=77)
    unique_sampler = _make(name, 50, seed=77)
    stream, _, _ = stream_sampler([[0]], 1, 3000, False)
    s, _, _ = unique_sampler([[0]], 1, S, True)
    expected, tries = ref.sampled_candidates_from_stream(stream, S, True)
    np.testing.assert_array_equal(s, expected)
    assert unique_sampler.last_num_tries == tries


def test_unique_all_classes():
    sampler = fs.UniformSampler(12, seed=0)
    s, tec, sec = sampler([[3]], 1, 12, True)
    np.testing.assert_array_equal(np.sort(s), np.arange(12))
    assert sampler.last_num_tries >= 12
    _assert_rel(sec, ref.expected_count(np.full(12, np.float32(1 / 12)),
                                        sampler.last_num_tries, 12))


def test_unique_many_rejections_large_chunking():
    # S close to the number of drawable classes with a skewed distribution: many chunks
    w = np.ones(3000)
    w[:10] = 1e4
    sampler = fs.FixedUnigramSampler(3000, unigrams=w, seed=2)
    s, _, sec = sampler([[0]], 1, 2990, True)
    assert np.unique(s).size == 2990
    assert sampler.last_num_tries > 2990
    _assert_rel(sec, ref.expected_count(sampler.prob(s), sampler.last_num_tries, 2990))


def test_expected_count_function_branches():
    p = np.array([0.0, 1e-6, 0.1, 0.5, 0.99], np.float32)
    np.testing.assert_array_equal(fs.expected_count(p, 5, 5), p * np.float32(5))
    got = fs.expected_count(p, 9, 5)
    assert got.dtype == np.float32
    _assert_rel(got[1:], ref.expected_count(p, 9, 5)[1:])
    assert got[0] == 0
    np.testing.assert_allclose(got, 1 - (1 - p.astype(np.float64)) ** 9, rtol=1e-6)
    assert fs.expected_count(p.reshape(5, 1), 5, 5).shape == (5, 1)


# ---------------------------------------------------------------------------
# reproducibility
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("unique", [False, True])
def test_object_sampler_advances_and_seed_reproduces(name, unique):
    a = _make(name, 500, seed=123)
    b = _make(name, 500, seed=123)
    seq_a = [a([[1]], 1, 20, unique)[0] for _ in range(3)]
    seq_b = [b([[1]], 1, 20, unique)[0] for _ in range(3)]
    for x, y in zip(seq_a, seq_b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(seq_a[0], seq_a[1])
    assert not np.array_equal(seq_a[1], seq_a[2])
    assert a.calls == 3
    c = _make(name, 500, seed=124)
    assert not np.array_equal(c([[1]], 1, 20, unique)[0], seq_a[0])


FUNCS = {
    "uniform": lambda seed: fs.uniform_candidate_sampler([[1, 2]], 2, 10, True, 100, seed=seed),
    "log_uniform": lambda seed: fs.log_uniform_candidate_sampler([[1, 2]], 2, 10, True, 100,
                                                                 seed=seed),
    "fixed_unigram": lambda seed: fs.fixed_unigram_candidate_sampler(
        [[1, 2]], 2, 10, True, 100, unigrams=np.arange(1.0, 101.0), seed=seed),
}


@pytest.mark.parametrize("name", list(FUNCS))
def test_functional_sampler_int_seed_reproducible(name):
    f = FUNCS[name]
    a, b = f(42), f(42)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(f(43)[0], a[0])
    assert not np.array_equal(f(None)[0], f(None)[0])
    # the TF-style triple is a namedtuple
    assert a.sampled_candidates is a[0] and a.sampled_expected_count is a[2]


# ---------------------------------------------------------------------------
# fixed_unigram: caching and vocab files
# ---------------------------------------------------------------------------

@pytest.fixture
def fresh_unigram_cache(monkeypatch):
    import collections
    cache = collections.OrderedDict()
    monkeypatch.setattr(_sampler_unigram, "_UNIGRAM_CACHE", cache)
    calls = []
    real = _sampler_unigram.build_unigram_table

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(_sampler_unigram, "build_unigram_table", spy)
    return cache, calls


def test_functional_fixed_unigram_caches_table(fresh_unigram_cache):
    cache, calls = fresh_unigram_cache
    u = np.arange(1.0, 51.0)
    r1 = fs.fixed_unigram_candidate_sampler([[1]], 1, 5, False, 50, unigrams=u, seed=1)
    assert len(calls) == 1 and len(cache) == 1
    table = next(iter(cache.values()))[2]
    assert isinstance(table, fs.AliasTable)
    r2 = fs.fixed_unigram_candidate_sampler([[1]], 1, 5, False, 50, unigrams=u.copy(), seed=1)
    assert len(calls) == 1 and len(cache) == 1
    assert next(iter(cache.values()))[2] is table
    np.testing.assert_array_equal(r1[0], r2[0])
    # another distribution is another entry; the cache is bounded (LRU)
    fs.fixed_unigram_candidate_sampler([[1]], 1, 5, False, 50, unigrams=u, distortion=0.5,
                                       seed=1)
    assert len(calls) == 2 and len(cache) == 2
    for k in range(6):
        fs.fixed_unigram_candidate_sampler([[1]], 1, 5, False, 50, unigrams=u + k + 1, seed=1)
    assert len(cache) == _sampler_unigram._UNIGRAM_CACHE_SIZE


def test_functional_fixed_unigram_cache_sees_content_changes(fresh_unigram_cache):
    cache, calls = fresh_unigram_cache
    u = np.ones(20)
    fs.fixed_unigram_candidate_sampler([[1]], 1, 5, False, 20, unigrams=u, seed=1)
    u[3] = 0.0  # same object, new content: must not reuse the stale table
    fs.fixed_unigram_candidate_sampler([[1]], 1, 5, False, 20, unigrams=u, seed=1)
    assert len(calls) == 2
    _, tec, _ = fs.fixed_unigram_candidate_sampler([[3]], 1, 5, False, 20, unigrams=u, seed=1)
    assert tec[0, 0] == 0


@pytest.mark.parametrize("layout", ["word_count", "count_only", "three_columns"])
def test_vocab_file_equals_unigrams(tmp_path, layout, fresh_unigram_cache):
    rng = np.random.default_rng(12)
    counts = rng.integers(1, 1000, size=30)
    path = tmp_path / f"vocab_{layout}.csv"
    lines = []
    for i, c in enumerate(counts):
        if layout == "word_count":
            lines.append(f"word{i},{c}")
        elif layout == "count_only":
            lines.append(f"{c}")
        else:
            lines.append(f"w{i},x,{c}")
    path.write_text("\n".join(lines) + "\n\n")  # a trailing blank line is ignored
    kw = dict(distortion=0.75, num_reserved_ids=2, seed=17)
    a = fs.FixedUnigramSampler(32, vocab_file=str(path), **kw)
    b = fs.FixedUnigramSampler(32, unigrams=counts, **kw)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.total == b.total
    for _ in range(2):
        for x, y in zip(a([[5]], 1, 10, True), b([[5]], 1, 10, True)):
            np.testing.assert_array_equal(x, y)
    fa = fs.fixed_unigram_candidate_sampler([[5]], 1, 10, True, 32, vocab_file=path, **kw)
    fb = fs.fixed_unigram_candidate_sampler([[5]], 1, 10, True, 32, unigrams=counts, **kw)
    for x, y in zip(fa, fb):
        np.testing.assert_array_equal(x, y)


# ---------------------------------------------------------------------------
# all_candidate_sampler, compute_accidental_hits
# ---------------------------------------------------------------------------

def test_all_candidate_sampler():
    s, tec, sec = fs.all_candidate_sampler(np.array([[4, 2], [0, 9]]), 2, 7, False, seed=3)
    np.testing.assert_array_equal(s, np.arange(7))
    assert s.dtype == np.int64
    np.testing.assert_array_equal(tec, np.ones((2, 2), np.float32))
    np.testing.assert_array_equal(sec, np.ones(7, np.float32))
    sampler = fs.AllCandidateSampler()
    sampler([[1]], 1, 3, True)
    assert sampler.last_num_tries == 3 and sampler.calls == 1


def test_compute_accidental_hits_last_occurrence():
    labels = np.array([[3, 9], [5, 3], [8, 8]])
    sampled = np.array([3, 1, 3, 5, 8, 5, 8])
    indices, ids, weights = fs.compute_accidental_hits(labels, sampled, 2)
    np.testing.assert_array_equal(indices, [0, 1, 1, 2, 2])
    np.testing.assert_array_equal(ids, [2, 5, 2, 6, 6])
    assert indices.dtype == np.int32 and ids.dtype == np.int64 and weights.dtype == np.float32
    np.testing.assert_array_equal(weights, -np.finfo(np.float32).max)
    # no hits
    i, k, w = fs.compute_accidental_hits([[100]], [1, 2, 3], 1)
    assert i.size == k.size == w.size == 0
    assert i.dtype == np.int32 and k.dtype == np.int64 and w.dtype == np.float32


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), B=st.integers(1, 12), T=st.integers(1, 4),
       S=st.integers(1, 60), C=st.integers(1, 30))
def test_compute_accidental_hits_matches_reference(seed, B, T, S, C):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, C, size=(B, T))
    sampled = rng.integers(0, C, size=S)
    got = fs.compute_accidental_hits(labels, sampled, T)
    expected = ref.compute_accidental_hits(labels, sampled, T)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype
        np.testing.assert_array_equal(g, e)


def test_learned_function_keeps_a_bounded_number_of_states():
    """The functional learned sampler shares state per (range_max, seed), like TensorFlow's
    op, but keeps only the most recently used states."""
    from fastsampled import samplers
    for seed in range(samplers._LEARNED_SIZE + 5):
        fs.learned_unigram_candidate_sampler([[1]], 1, 2, True, 50, seed=10_000 + seed)
    assert len(samplers._LEARNED) <= samplers._LEARNED_SIZE
    key = (50, 10_000 + samplers._LEARNED_SIZE + 4)          # the last one used is kept
    assert key in samplers._LEARNED
    before = samplers._LEARNED[key].calls
    fs.learned_unigram_candidate_sampler([[1]], 1, 2, True, 50, seed=key[1])
    assert samplers._LEARNED[key].calls == before + 1        # shared, its stream advanced
