"""Size and value safety of the candidate samplers and ``compute_accidental_hits``.

Numba does not bounds-check, so every size argument has to be checked in Python before
anything is allocated or a kernel runs. The tests here make bad sizes fail safely even where a
check is missing: :func:`allocation_guard` replaces numpy inside the sampler and alias modules
with one that refuses any large allocation, and :func:`kernels_blocked` makes every kernel
fail the test, so a missing check shows up as a test failure instead of a machine running out
of memory.
"""
import contextlib
import math
import operator
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import fastsampled as fs
import fastsampled.alias as alias_mod
import fastsampled.samplers as samplers_mod
import reference as ref
from conftest import forbid_kernels
from fastsampled import (_alias_kernels, _loss_kernels, _sampler_counts, _sampler_kernels,
                         _sampler_unigram)

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
INT64_MIN = -2**63
_MAX_ELEMENTS = 1 << 22     # no call in this file needs a bigger numpy array


# ---------------------------------------------------------------------------
# guards
# ---------------------------------------------------------------------------

def _num_elements(shape):
    if isinstance(shape, (tuple, list)):
        return math.prod(operator.index(s) for s in shape)
    return operator.index(shape)


class _GuardedNumpy:
    """numpy, except that arrays of more than ``_MAX_ELEMENTS`` entries are refused."""

    def __getattr__(self, name):
        attr = getattr(np, name)
        if name in ("empty", "zeros", "ones", "full"):
            def alloc(shape, *args, **kwargs):
                n = _num_elements(shape)
                if n > _MAX_ELEMENTS:
                    raise AssertionError(f"np.{name} of {n} elements")
                return attr(shape, *args, **kwargs)
            return alloc
        if name == "arange":
            def arange(*args, **kwargs):
                ints = [operator.index(a) for a in args if isinstance(a, (int, np.integer))]
                if len(ints) == len(args):
                    start, stop, step = ([0] + ints + [1])[-3:] if len(ints) == 1 else \
                        (ints + [1])[:3]
                    n = max(0, -((start - stop) // step))
                    if n > _MAX_ELEMENTS:
                        raise AssertionError(f"np.arange of {n} elements")
                return attr(*args, **kwargs)
            return arange
        return attr


# the sampler modules, which allocate with numpy
SAMPLER_MODULES = (samplers_mod, _sampler_unigram, _sampler_counts)


@contextlib.contextmanager
def allocation_guard():
    """Refuse large numpy allocations in the sampler and alias modules while active."""
    guard = _GuardedNumpy()
    modules = SAMPLER_MODULES + (alias_mod,)
    saved = [m.np for m in modules]
    for m in modules:
        m.np = guard
    try:
        yield
    finally:
        for m, real in zip(modules, saved):
            m.np = real


_VALUE_READERS = {"weights_summary", "sequential_sum_f32"}   # read a value array, no ids


@contextlib.contextmanager
def kernels_blocked():
    """Make every id-consuming kernel fail the test while active: in its kernel module and
    wherever a fastsampled module imported it by name."""
    with pytest.MonkeyPatch.context() as mp:
        forbid_kernels(mp, {m.__name__ for m in (_sampler_kernels, _alias_kernels, _loss_kernels)},
                       "before validation failed", _VALUE_READERS)
        yield


@contextlib.contextmanager
def checked_before_kernels():
    with allocation_guard(), kernels_blocked():
        yield


# ---------------------------------------------------------------------------
# fixed_unigram: every size checked before anything is allocated
# ---------------------------------------------------------------------------

U3 = [1.0, 2.0, 3.0]

BAD_UNIGRAM_SIZES = {
    # name: (range_max, keyword arguments, exception, argument named in the message)
    "reserved_2**31": (3, dict(num_reserved_ids=2**31), ValueError, "num_reserved_ids"),
    "reserved_2**31-1": (3, dict(num_reserved_ids=INT32_MAX), ValueError, "range_max"),
    "reserved_int64_max": (3, dict(num_reserved_ids=INT64_MAX), ValueError, "num_reserved_ids"),
    "reserved_2**64": (3, dict(num_reserved_ids=2**64), ValueError, "num_reserved_ids"),
    "reserved_2**100": (3, dict(num_reserved_ids=2**100), ValueError, "num_reserved_ids"),
    "reserved_float": (3, dict(num_reserved_ids=2.0), TypeError, "num_reserved_ids"),
    "reserved_np_bool": (3, dict(num_reserved_ids=np.bool_(True)), TypeError, "num_reserved_ids"),
    "shards_2**31": (3, dict(num_shards=2**31), ValueError, "num_shards"),
    "shards_int64_max": (3, dict(num_shards=INT64_MAX), ValueError, "num_shards"),
    "shards_2**64": (3, dict(num_shards=2**64), ValueError, "num_shards"),
    "shards_negative": (3, dict(num_shards=-5), ValueError, "num_shards"),
    "shard_2**40": (3, dict(num_shards=3, shard=2**40), ValueError, r"\bshard\b"),
    "shard_2**64": (3, dict(shard=2**64), ValueError, "shard"),
    "shard_negative": (3, dict(shard=-1), ValueError, "shard"),
    "shard_bool": (3, dict(shard=False), TypeError, "shard"),
    "range_max_2**32": (2**32, {}, ValueError, "range_max"),
    "range_max_2**63": (2**63, {}, ValueError, "range_max"),
    "range_max_2**64": (2**64, {}, ValueError, "range_max"),
    "range_max_negative": (-3, {}, ValueError, "range_max"),
    "range_max_bool": (True, {}, TypeError, "range_max"),
    "range_max_float": (3.0, {}, TypeError, "range_max"),
    "range_max_too_big_for_list": (2**31 + 3, {}, ValueError, "range_max"),
    "reserved_matching_range_max_but_wrong_shard_count": (
        INT32_MAX + 3, dict(num_reserved_ids=INT32_MAX, num_shards=2), ValueError, "range_max"),
}


@pytest.mark.parametrize("case", list(BAD_UNIGRAM_SIZES), ids=str)
@pytest.mark.parametrize("form", ["class", "function"])
def test_fixed_unigram_sizes_checked_before_allocating(case, form):
    range_max, kwargs, exc, name = BAD_UNIGRAM_SIZES[case]
    tracemalloc.start()
    try:
        with checked_before_kernels(), pytest.raises(exc, match=name):
            if form == "class":
                fs.FixedUnigramSampler(range_max, unigrams=U3, seed=0, **kwargs)
            else:
                fs.fixed_unigram_candidate_sampler([[0]], 1, 1, False, range_max, unigrams=U3,
                                                   seed=0, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes allocated before the error"


@pytest.mark.kernel
def test_fixed_unigram_vocab_file_lines_checked_before_allocating(tmp_path):
    path = tmp_path / "vocab.csv"
    path.write_text("a,1\nb,2\nc,3\n")
    with checked_before_kernels():
        with pytest.raises(ValueError, match="num_reserved_ids"):
            fs.FixedUnigramSampler(3, vocab_file=str(path), num_reserved_ids=2**31)
        with pytest.raises(ValueError, match=r"range_max.*3 lines"):
            fs.FixedUnigramSampler(3, vocab_file=str(path), num_reserved_ids=INT32_MAX)
        with pytest.raises(ValueError, match=r"range_max.*3 lines"):
            fs.fixed_unigram_candidate_sampler([[0]], 1, 1, False, 4, vocab_file=str(path),
                                               seed=0)
    s = fs.FixedUnigramSampler(2, vocab_file=str(path), num_reserved_ids=1, num_shards=2,
                               shard=0, seed=0)
    np.testing.assert_array_equal(s.weights, ref.fixed_unigram_weights(U3, 1.0, 1, 2, 0)[0])


@pytest.mark.kernel
@settings(max_examples=60, deadline=None)
@given(num_reserved_ids=st.integers(0, 9), num_shards=st.integers(1, 4), shard=st.integers(0, 3),
       unigrams=st.lists(st.integers(1, 9), min_size=1, max_size=9),
       offset=st.integers(-2, 2))
def test_fixed_unigram_length_rule_is_tensorflows(num_reserved_ids, num_shards, shard, unigrams,
                                                  offset):
    """range_max must equal the shard-local list length: reserved ids of this shard plus the
    unigrams whose id (counted from that number, TensorFlow's quirk) falls in this shard."""
    assume(shard < num_shards)
    weights, _ = ref.fixed_unigram_weights(unigrams, 1.0, num_reserved_ids, num_shards, shard)
    assume(weights.sum() > 0)
    range_max = weights.size + offset
    assume(range_max >= 1)
    kw = dict(unigrams=[float(u) for u in unigrams], num_reserved_ids=num_reserved_ids,
              num_shards=num_shards, shard=shard, seed=0)
    if offset:
        with checked_before_kernels(), pytest.raises(ValueError, match="range_max"):
            fs.FixedUnigramSampler(range_max, **kw)
    else:
        sampler = fs.FixedUnigramSampler(range_max, **kw)
        np.testing.assert_array_equal(sampler.weights, weights)


@pytest.mark.kernel
def test_fixed_unigram_function_checks_arguments_on_a_cache_hit(tmp_path):
    kw = dict(unigrams=U3, num_reserved_ids=1, seed=0)
    fs.fixed_unigram_candidate_sampler([[0]], 1, 1, False, 4, **kw)     # fills the cache
    path = tmp_path / "vocab.csv"
    path.write_text("a,1\nb,2\nc,3\n")
    fs.fixed_unigram_candidate_sampler([[0]], 1, 1, False, 3, vocab_file=str(path), seed=0)
    with checked_before_kernels():
        for bad in (True, 1.5):      # int() of each is the cached call's value, 1
            with pytest.raises(TypeError, match="num_reserved_ids"):
                fs.fixed_unigram_candidate_sampler([[0]], 1, 1, False, 4,
                                                   **dict(kw, num_reserved_ids=bad))
        with pytest.raises(TypeError, match="num_shards"):
            fs.fixed_unigram_candidate_sampler([[0]], 1, 1, False, 4, **kw, num_shards=1.0)
        with pytest.raises(ValueError, match=r"(?=.*vocab_file)(?=.*unigrams)"):
            fs.fixed_unigram_candidate_sampler([[0]], 1, 1, False, 3, vocab_file=str(path),
                                               unigrams=U3, seed=0)
        with pytest.raises(TypeError, match="seed"):
            fs.fixed_unigram_candidate_sampler([[0]], 1, 1, False, 4, **dict(kw, seed=1.5))


def test_fixed_unigram_distortion_and_unigrams_types():
    with checked_before_kernels():
        with pytest.raises(TypeError, match="distortion"):
            fs.FixedUnigramSampler(3, unigrams=U3, distortion="0.75")
        with pytest.raises(TypeError, match="distortion"):
            fs.FixedUnigramSampler(3, unigrams=U3, distortion=None)
        with pytest.raises(ValueError, match="distortion"):
            fs.FixedUnigramSampler(3, unigrams=U3, distortion=1e300)    # inf in float32
        with pytest.raises(TypeError, match="unigrams"):
            fs.FixedUnigramSampler(3, unigrams=["a", "b", "c"])
        with pytest.raises(ValueError, match="unigrams"):
            fs.FixedUnigramSampler(2, unigrams=[3e38, 3e38])            # float32 total is inf


# ---------------------------------------------------------------------------
# compute_accidental_hits: every int64 value, -1 included
# ---------------------------------------------------------------------------

SPECIAL_INT64 = [-1, 0, 1, -2, INT64_MIN, INT64_MIN + 1, INT64_MAX, INT64_MAX - 1, 2**32, -2**32]


def _assert_hits_equal(labels, sampled, num_true):
    got = fs.compute_accidental_hits(labels, sampled, num_true)
    expected = ref.compute_accidental_hits(labels, sampled, num_true)
    for g, e, name in zip(got, expected, ("indices", "ids", "weights")):
        assert g.dtype == e.dtype, name
        np.testing.assert_array_equal(g, e, err_msg=name)


@pytest.mark.kernel
def test_compute_accidental_hits_minus_one_and_int64_limits():
    _assert_hits_equal(np.array([[-1]]), np.array([-1]), 1)
    _assert_hits_equal(np.array([[-1], [3]]), np.array([-1, 3, -1]), 1)
    labels = np.array([SPECIAL_INT64], dtype=np.int64)
    _assert_hits_equal(labels, np.array(SPECIAL_INT64[::-1] + SPECIAL_INT64, dtype=np.int64),
                       len(SPECIAL_INT64))
    idx, ids, w = fs.compute_accidental_hits([[-1, 5]], [7, -1], 2)
    assert idx.tolist() == [0] and ids.tolist() == [1] and w.size == 1


@pytest.mark.kernel
@settings(max_examples=80, deadline=None)
@given(data=st.data(),
       pool=st.lists(st.one_of(st.sampled_from(SPECIAL_INT64),
                               st.integers(INT64_MIN, INT64_MAX)), min_size=1, max_size=12),
       B=st.integers(0, 6), T=st.integers(1, 4), S=st.integers(0, 40))
def test_compute_accidental_hits_any_int64(data, pool, B, T, S):
    value = st.sampled_from(pool)
    labels = np.array(data.draw(st.lists(value, min_size=B * T, max_size=B * T)),
                      dtype=np.int64).reshape(B, T)
    sampled = np.array(data.draw(st.lists(value, min_size=S, max_size=S)), dtype=np.int64)
    _assert_hits_equal(labels, sampled, T)


def test_compute_accidental_hits_argument_checks():
    with checked_before_kernels():
        with pytest.raises(ValueError, match="num_true"):
            fs.compute_accidental_hits([[1]], [1], 2**64)
        with pytest.raises(TypeError, match="num_true"):
            fs.compute_accidental_hits([[1]], [1], True)
        with pytest.raises(ValueError, match="sampled_candidates"):
            fs.compute_accidental_hits([[1]], np.array([2**64 - 1], np.uint64), 1)


# ---------------------------------------------------------------------------
# int arguments of every sampler: clear errors, never OverflowError
# ---------------------------------------------------------------------------

def _function(f, **extra):
    """``make(range_max, seed)`` -> ``call(true_classes, num_true, num_sampled, unique)``."""
    def make(rm, seed=0):
        return lambda tc, nt, ns, u: f(tc, nt, ns, u, rm, seed=seed, **extra)
    return make


def _object(cls, **extra):
    def make(rm, seed=0):
        sampler = cls(rm, seed=seed, **extra)
        return lambda tc, nt, ns, u: sampler(tc, nt, ns, u)
    return make


def _all_function(rm, seed=0):
    return lambda tc, nt, ns, u: fs.all_candidate_sampler(tc, nt, ns, u, seed=seed)


def _all_object(rm, seed=0):
    sampler = fs.AllCandidateSampler(seed=seed)
    return lambda tc, nt, ns, u: sampler(tc, nt, ns, u)


SAMPLERS = {
    "uniform": _function(fs.uniform_candidate_sampler),
    "log_uniform": _function(fs.log_uniform_candidate_sampler),
    "learned_unigram": _function(fs.learned_unigram_candidate_sampler),
    "fixed_unigram": _function(fs.fixed_unigram_candidate_sampler, unigrams=U3),
    "UniformSampler": _object(fs.UniformSampler),
    "LogUniformSampler": _object(fs.LogUniformSampler),
    "LearnedUnigramSampler": _object(fs.LearnedUnigramSampler),
    "FixedUnigramSampler": _object(fs.FixedUnigramSampler, unigrams=U3),
    "all_candidate": _all_function,
    "AllCandidateSampler": _all_object,
}
RANGED = [name for name in SAMPLERS if "all" not in name.lower()]

BAD_INTS = [
    (2**63, ValueError), (2**64, ValueError), (2**100, ValueError), (-2**63 - 1, ValueError),
    (-1, ValueError), (0, ValueError), (True, TypeError), (np.bool_(False), TypeError),
    (3.0, TypeError), (np.float64(3), TypeError), ("3", TypeError), (None, TypeError),
    (np.array(3), TypeError),
]


@pytest.mark.parametrize("value,exc", BAD_INTS, ids=repr)
@pytest.mark.parametrize("name", RANGED)
def test_bad_range_max(name, value, exc):
    with checked_before_kernels(), pytest.raises(exc, match="range_max"):
        SAMPLERS[name](value)([[0]], 1, 1, False)


@pytest.mark.kernel
@pytest.mark.parametrize("value,exc", BAD_INTS + [(2**31, ValueError)], ids=repr)
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_bad_num_sampled_and_num_true(name, value, exc):
    call = SAMPLERS[name](3)       # objects build their tables here, outside the guards
    with checked_before_kernels():
        with pytest.raises(exc, match="num_sampled"):
            call([[0]], 1, value, False)
        with pytest.raises(exc, match="num_true"):
            call([[0]], value, 1, False)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_bad_seed(name):
    with checked_before_kernels():
        for seed in (True, 1.5, "1", np.float32(2), [1]):
            with pytest.raises(TypeError, match="seed"):
                SAMPLERS[name](3, seed)([[0]], 1, 1, False)


@pytest.mark.kernel
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_seeds_of_any_size(name):
    """Seeds are reduced modulo 2**64, as documented: any int works, none overflows."""
    for seed in (-1, INT64_MIN - 1, 2**64, 2**200, np.uint64(2**64 - 1), np.int8(-3)):
        s, tec, sec = SAMPLERS[name](3, seed)([[0]], 1, 2, True)
        assert s.shape == (2,) and tec.shape == (1, 1) and sec.shape == (2,)


LOG_UNIFORM_MAX = 2**53 - 1     # beyond it TensorFlow's P(v) rounds to 0 for the largest ids


@pytest.mark.kernel
@pytest.mark.parametrize("cls,range_max", [
    (fs.UniformSampler, INT64_MAX), (fs.UniformSampler, INT64_MAX - 1),
    (fs.UniformSampler, 3 * 2**61 + 1), (fs.UniformSampler, 2**32 + 1),
    (fs.UniformSampler, 2**32), (fs.LogUniformSampler, LOG_UNIFORM_MAX),
    (fs.LogUniformSampler, 2**40 + 3), (fs.LogUniformSampler, 2**31)], ids=repr)
@pytest.mark.parametrize("unique", [False, True])
def test_huge_range_max_gives_tensorflows_counts(cls, range_max, unique):
    """Draws stay in range and the expected counts are TensorFlow's formula (for the
    log-uniform sampler ln(range_max + 1) taken in double, never in int64), through both the
    fused path (few draws) and the parallel one (many)."""
    sampler = cls(range_max, seed=5)
    tc = np.array([[0, 1], [range_max - 1, range_max // 3]], dtype=np.int64)
    prob = ref.uniform_prob if cls is fs.UniformSampler else ref.log_uniform_prob
    for num_sampled in (7, 5000):
        s, tec, sec = sampler(tc, 2, num_sampled, unique)
        assert s.dtype == np.int64 and s.shape == (num_sampled,)
        assert (s >= 0).all() and (s < range_max).all()
        if unique:
            assert np.unique(s).size == num_sampled
        tries = sampler.last_num_tries
        np.testing.assert_array_equal(tec, fs.expected_count(prob(tc, range_max), tries,
                                                             num_sampled))
        np.testing.assert_array_equal(sec, fs.expected_count(prob(s, range_max), tries,
                                                             num_sampled))
        assert (sec > 0).all() and (tec > 0).all()
    np.testing.assert_array_equal(sampler.prob(tc), prob(tc, range_max))


@pytest.mark.parametrize("range_max", [LOG_UNIFORM_MAX + 1, 2**62, INT64_MAX, 2**63])
def test_log_uniform_range_max_beyond_double_precision(range_max):
    """TensorFlow gives ids >= 2**53 - 1 probability 0 (so drawn candidates would get an
    infinite log-q correction); such ranges are refused with the reason."""
    with checked_before_kernels():
        with pytest.raises(ValueError, match=r"range_max.*9007199254740991"):
            fs.LogUniformSampler(range_max)
        with pytest.raises(ValueError, match="range_max"):
            fs.log_uniform_candidate_sampler([[0]], 1, 1, False, range_max)
    assert ref.log_uniform_prob([LOG_UNIFORM_MAX - 1], LOG_UNIFORM_MAX)[0] > 0
    assert ref.log_uniform_prob([LOG_UNIFORM_MAX], LOG_UNIFORM_MAX + 1)[0] == 0


@pytest.mark.kernel
@pytest.mark.parametrize("range_max", [3 * 2**61 + 1, INT64_MAX, 2**40 + 7])
def test_wide_uniform_reaches_every_id(range_max):
    """Beyond 2**32 the uniform draw uses all 64 random bits: low bits of the ids are
    uniform too (a draw from one double only reaches every 2**10-th id near 2**63)."""
    sampler = fs.UniformSampler(range_max, seed=9)
    s = np.concatenate([sampler([[0]], 1, 4000, False)[0], sampler([[0]], 1, 20000, False)[0]])
    assert ((s >= 0) & (s < range_max)).all()
    low = np.bincount(s % 64, minlength=64)
    from scipy import stats
    assert stats.chisquare(low).pvalue > 1e-4
    assert np.unique(s % 1024).size > 1000
    top = np.bincount(s // -(-range_max // 8), minlength=8)
    assert stats.chisquare(top).pvalue > 1e-4


@pytest.mark.kernel
@pytest.mark.parametrize("range_max", [10, 2**32, 2**32 + 1, 3 * 2**61 + 1])
def test_uniform_fused_and_parallel_draws_agree(range_max):
    key = np.uint64(0x1234567890ABCDEF)
    out = np.empty(3000, np.int64)
    _sampler_kernels.uniform_draw(range_max, key, np.uint64(0), out)
    e_u, e_f, e_i = np.empty(0, np.uint64), np.empty(0, np.float32), np.empty(0, np.int64)
    fused, _, _, _ = _sampler_kernels.sample_fused(
        _sampler_kernels.UNIFORM, range_max, e_u, e_f, np.float32(1), e_i, e_i, 1, key, 3000,
        False, np.zeros(1, np.int64))
    np.testing.assert_array_equal(fused, out)


@pytest.mark.kernel
def test_huge_range_max_functions():
    for name, range_max in (("uniform", INT64_MAX), ("log_uniform", LOG_UNIFORM_MAX)):
        s, tec, sec = SAMPLERS[name](range_max, 1)([[range_max - 1]], 1, 3, True)
        assert ((s >= 0) & (s < range_max)).all()
        assert tec.dtype == np.float32 and (tec > 0).all() and np.isfinite(tec).all()


@pytest.mark.kernel
def test_expected_count_and_alias_arguments():
    with pytest.raises(ValueError, match="num_tries"):
        fs.expected_count([0.5], 2**63, 1)
    with pytest.raises(ValueError, match="num_sampled"):
        fs.expected_count([0.5], 1, 2**64)
    with pytest.raises(TypeError, match="num_tries"):
        fs.expected_count([0.5], 1.0, 1)
    table = fs.AliasTable([1.0, 2.0])
    with checked_before_kernels():
        with pytest.raises(ValueError, match="stream"):
            table.sample(2, seed=0, stream=2**64)
        with pytest.raises(ValueError, match=r"\bn\b"):
            table.sample(2**64, seed=0)
        with pytest.raises(TypeError, match="stream"):
            table.sample(2, seed=0, stream=True)


# ---------------------------------------------------------------------------
# AllCandidateSampler is a complete CandidateSampler
# ---------------------------------------------------------------------------

@pytest.mark.kernel
def test_all_candidate_sampler_inherited_members():
    sampler = fs.AllCandidateSampler(seed=3)
    assert sampler.num_drawable == 0 and sampler.range_max == 0
    with pytest.raises(ValueError, match="ids"):
        sampler.prob([0])
    assert sampler.prob(np.zeros((0, 2), np.int64)).shape == (0, 2)
    s, tec, sec = sampler([[1, 2]], 2, 4, True)
    np.testing.assert_array_equal(s, np.arange(4))
    assert sampler.range_max == 4 and sampler.num_drawable == 4
    p = sampler.prob([[0, 3]])
    assert p.dtype == np.float32 and p.shape == (1, 2)
    np.testing.assert_array_equal(p, np.float32(0.25))
    # the expected counts of a call follow from prob() with TensorFlow's rule
    np.testing.assert_array_equal(fs.expected_count(sampler.prob(s), sampler.last_num_tries, 4),
                                  sec)
    with pytest.raises(ValueError, match="ids"):
        sampler.prob([4])
    assert "calls=1" in repr(sampler)
    assert isinstance(sampler, fs.CandidateSampler)


# ---------------------------------------------------------------------------
# property: arbitrary ints either work or raise ValueError / TypeError
# ---------------------------------------------------------------------------

# Sizes a correct sampler accepts are kept small here (a valid huge size is a huge
# allocation); everything else is beyond some limit and must be refused before allocating.
HUGE = [2**31, 2**32, 2**32 - 1, 2**62, INT64_MAX, 2**63, 2**64, 2**100, INT64_MIN,
        INT64_MIN - 1, -2**31, -2**31 - 1]
ODD = [True, False, np.bool_(True), 2.0, float("nan"), float("inf"), np.float32(1), "2", None,
       np.array(2), np.int64(3), np.uint64(2**64 - 1), np.int32(-1), np.uint8(2)]
ARBITRARY_INT = st.one_of(st.integers(-3, 12), st.sampled_from(HUGE), st.sampled_from(ODD),
                          st.integers(2**31, 2**70), st.integers(-2**70, -1))
ARBITRARY_SEED = st.one_of(st.none(), st.integers(-2**70, 2**70), st.sampled_from(ODD))


def _plain_int(v):
    """``v`` as an int when it is an integer a correct sampler may accept (not a bool)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        return None
    return int(v)


def _true_classes(draw, num_true, range_max):
    t = _plain_int(num_true)
    cols = t if t is not None and 1 <= t <= 4 else 1
    r = _plain_int(range_max)
    high = min(r, 50) - 1 if r is not None and r >= 1 else 2
    return np.array(draw(st.lists(st.lists(st.integers(0, high), min_size=cols, max_size=cols),
                                  min_size=1, max_size=3)), dtype=np.int64)


def _check_result(result, tc, num_sampled, unique, range_max):
    s, tec, sec = result
    ns = _plain_int(num_sampled)
    assert ns is not None and ns >= 1
    assert s.dtype == np.int64 and s.shape == (ns,)
    assert tec.dtype == np.float32 and tec.shape == tc.shape
    assert sec.dtype == np.float32 and sec.shape == (ns,)
    assert (s >= 0).all() and (s < range_max).all()
    if unique:
        assert np.unique(s).size == ns


def _run(f):
    try:
        result = f()
    except (ValueError, TypeError) as e:
        event(f"refused: {type(e).__name__}")
        return None, e
    event("sampled")
    return result, None


SENSIBLE = {
    "num_true": st.integers(1, 3),
    "num_sampled": st.integers(1, 12),
    "range_max": st.one_of(st.integers(1, 40), st.sampled_from([2**31, 2**32 + 1, INT64_MAX])),
    "seed": st.one_of(st.none(), st.integers(-2**70, 2**70)),
    "unique": st.booleans(),
    "num_reserved_ids": st.integers(0, 5),
    "num_shards": st.integers(1, 3),
    "shard": st.integers(0, 2),
}
ARBITRARY = dict(SENSIBLE, num_true=ARBITRARY_INT, num_sampled=ARBITRARY_INT,
                 range_max=ARBITRARY_INT, seed=ARBITRARY_SEED,
                 unique=st.one_of(st.booleans(), st.sampled_from([0, 1, 2, -1, None, "yes"])),
                 num_reserved_ids=ARBITRARY_INT, num_shards=ARBITRARY_INT, shard=ARBITRARY_INT)


def _arguments(draw, names):
    """Sensible values, except for up to two arguments that get arbitrary ones."""
    odd = draw(st.sets(st.sampled_from(names), max_size=2))
    return {n: draw(ARBITRARY[n] if n in odd else SENSIBLE[n]) for n in names}


@pytest.mark.kernel
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(list(SAMPLERS)))
def test_arbitrary_int_arguments(data, name):
    a = _arguments(data.draw, ["num_true", "num_sampled", "range_max", "seed", "unique"])
    tc = _true_classes(data.draw, a["num_true"], a["range_max"])
    with allocation_guard():
        result, error = _run(lambda: SAMPLERS[name](a["range_max"], a["seed"])(
            tc, a["num_true"], a["num_sampled"], a["unique"]))
    if error is None:
        rm = a["num_sampled"] if "all" in name.lower() else a["range_max"]
        _check_result(result, tc, a["num_sampled"], bool(a["unique"]), _plain_int(rm))


@pytest.mark.kernel
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), use_class=st.booleans(), exact_range=st.booleans(),
       unigrams=st.lists(st.sampled_from([0.0, 1.0, 2.5, 7.0]), min_size=1, max_size=6))
def test_arbitrary_int_arguments_fixed_unigram(data, use_class, exact_range, unigrams):
    a = _arguments(data.draw, ["num_sampled", "range_max", "seed", "unique", "num_reserved_ids",
                               "num_shards", "shard"])
    sizes = [_plain_int(a[n]) for n in ("num_reserved_ids", "num_shards", "shard")]
    range_max = a["range_max"]
    if exact_range:
        r, n, k = sizes
        small = all(v is not None for v in sizes) and 0 <= r <= 5 and 1 <= n <= 3 and 0 <= k < n
        range_max = ref.fixed_unigram_weights(unigrams, 1.0, r, n, k)[0].size if small else 3
    tc = _true_classes(data.draw, 1, range_max)
    kw = dict(unigrams=unigrams, num_reserved_ids=a["num_reserved_ids"],
              num_shards=a["num_shards"], shard=a["shard"], seed=a["seed"])
    num_sampled, unique = a["num_sampled"], a["unique"]
    with allocation_guard():
        if use_class:
            result, error = _run(lambda: fs.FixedUnigramSampler(range_max, **kw)(
                tc, 1, num_sampled, unique))
        else:
            result, error = _run(lambda: fs.fixed_unigram_candidate_sampler(
                tc, 1, num_sampled, unique, range_max, **kw))
    if error is None:
        _check_result(result, tc, num_sampled, bool(unique), _plain_int(range_max))
        weights, _ = ref.fixed_unigram_weights(unigrams, 1.0, *sizes)
        assert weights.size == range_max
        assert (weights[result[0]] > 0).all()
