"""Bad input raises ValueError / TypeError naming the argument, before any kernel runs.

Numba does not bounds-check, so validation must happen in Python first. The ``no_kernels``
fixture replaces every id-consuming kernel the public API calls from Python with one that
fails the test, so each case below also proves that the error came from validation.
(Validation helpers that only read a value array -- ``weights_summary``,
``sequential_sum_f32`` and the content fingerprint -- are left alone.)
"""
import numpy as np
import pytest
from conftest import forbid_kernels

import fastsampled as fs
import fastsampled.word2vec  # noqa: F401  (its kernels are blocked too)

_ALLOWED = {"weights_summary", "sequential_sum_f32"}
# the kernel modules whose kernels take ids (the validation kernels only read values)
_ID_KERNELS = {"fastsampled._loss_kernels", "fastsampled._sampler_kernels",
               "fastsampled._alias_kernels", "fastsampled._rows_kernels"}


@pytest.fixture
def block_kernels(monkeypatch):
    """Call it to make every id-consuming kernel fail the test from then on."""
    return lambda: forbid_kernels(monkeypatch, _ID_KERNELS, "before validation failed",
                                  _ALLOWED)


@pytest.fixture
def no_kernels(block_kernels):
    block_kernels()


def _problem(dtype=np.float32, C=12, D=4, B=3, T=1, S=5):
    rng = np.random.default_rng(0)
    return dict(
        weights=rng.normal(size=(C, D)).astype(dtype),
        biases=rng.normal(size=C).astype(dtype),
        labels=rng.integers(0, C, size=(B, T)),
        inputs=rng.normal(size=(B, D)).astype(dtype),
        num_sampled=S, num_classes=C, num_true=T,
        sampled_values=(np.arange(S, dtype=np.int64), np.full((B, T), 0.5, np.float32),
                        np.full(S, 0.25, np.float32)),
    )


LOSSES = [fs.sampled_softmax_loss, fs.nce_loss, fs.sampled_softmax_loss_and_grads,
          fs.nce_loss_and_grads]
LOSS_IDS = ["ssm", "nce", "ssm_grads", "nce_grads"]


def _with(**changes):
    def make():
        kw = _problem()
        kw.update(changes)
        return kw
    return make


def _labels(values, T=1):
    kw = _problem(T=T)
    kw["labels"] = values
    return kw


def _sv(s=None, tec=None, sec=None):
    kw = _problem()
    s0, tec0, sec0 = kw["sampled_values"]
    kw["sampled_values"] = (s0 if s is None else s, tec0 if tec is None else tec,
                            sec0 if sec is None else sec)
    return kw


def _shards(sizes, strategy, D=4):
    kw = _problem()
    kw["weights"] = [np.zeros((n, D), np.float32) for n in sizes]
    kw["biases"] = np.zeros(sum(sizes), np.float32)
    kw["partition_strategy"] = strategy
    return kw


def _weights(w):
    kw = _problem()
    kw["weights"] = w
    return kw


BAD_LOSS_ARGS = {
    # labels
    "labels_negative": (lambda: _labels(np.array([[0], [-1], [2]])), ValueError, r"labels.*-1"),
    "labels_too_big": (lambda: _labels(np.array([[0], [12], [2]])), ValueError, r"labels.*12"),
    "labels_float": (lambda: _labels(np.array([[0.0], [1.0], [2.0]])), TypeError, r"labels"),
    "labels_bool": (lambda: _labels(np.array([[True], [False], [True]])), TypeError, r"labels"),
    "labels_3d": (lambda: _labels(np.zeros((3, 1, 1), np.int64)), ValueError, r"labels"),
    "labels_0d": (lambda: _labels(np.int64(3)), ValueError, r"labels"),
    "labels_cols_ne_num_true": (lambda: _labels(np.zeros((3, 2), np.int64)), ValueError,
                                r"labels.*num_true"),
    "labels_1d_with_num_true_2": (lambda: _labels(np.zeros(3, np.int64), T=2), ValueError,
                                  r"labels"),
    "labels_rows_ne_batch": (lambda: _labels(np.zeros((4, 1), np.int64)), ValueError,
                             r"labels.*inputs"),
    # inputs
    "inputs_1d": (_with(inputs=np.zeros(4, np.float32)), ValueError, r"inputs"),
    "inputs_3d": (_with(inputs=np.zeros((3, 4, 1), np.float32)), ValueError, r"inputs"),
    "inputs_int": (_with(inputs=np.zeros((3, 4), np.int64)), TypeError, r"inputs"),
    "inputs_float16": (_with(inputs=np.zeros((3, 4), np.float16)), TypeError, r"inputs"),
    "inputs_nan": (_with(inputs=np.array([[0, 0, 0, 0], [0, np.nan, 0, 0], [0, 0, 0, 0]],
                                         np.float32)), ValueError, r"inputs.*finite"),
    "inputs_inf": (_with(inputs=np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, -np.inf, 0]],
                                         np.float64)), ValueError, r"inputs.*finite"),
    "dim_mismatch": (_with(inputs=np.zeros((3, 5), np.float32)), ValueError,
                     r"(?=.*weights)(?=.*inputs).*dim"),
    # weights / biases
    "weights_1d": (lambda: _weights(np.zeros(12, np.float32)), ValueError, r"weights"),
    "weights_int": (lambda: _weights(np.zeros((12, 4), np.int32)), TypeError, r"weights"),
    "weights_empty_list": (lambda: _weights([]), ValueError, r"weights"),
    "weights_shards_dim_differ": (lambda: _weights([np.zeros((6, 4), np.float32),
                                                    np.zeros((6, 3), np.float32)]),
                                  ValueError, r"weights"),
    "weights_shards_dtype_differ": (lambda: _weights([np.zeros((6, 4), np.float32),
                                                      np.zeros((6, 4), np.float64)]),
                                    TypeError, r"weights"),
    "biases_wrong_length": (_with(biases=np.zeros(11, np.float32)), ValueError, r"biases"),
    "biases_2d": (_with(biases=np.zeros((12, 1), np.float32)), ValueError, r"biases"),
    "biases_int": (_with(biases=np.zeros(12, np.int64)), TypeError, r"biases"),
    "partition_strategy_unknown": (_with(partition_strategy="modulo"), ValueError,
                                   r"partition_strategy"),
    "partition_strategy_unknown_single": (_with(partition_strategy=None), ValueError,
                                          r"partition_strategy"),
    "shards_div_4_5_4": (lambda: _shards([4, 5, 4], "div"), ValueError, r"weights.*layout"),
    "shards_mod_4_5_4": (lambda: _shards([4, 5, 4], "mod"), ValueError, r"weights.*layout"),
    "shards_mod_4_4_5": (lambda: _shards([4, 4, 5], "mod"), ValueError, r"weights.*layout"),
    "shards_div_3_5": (lambda: _shards([3, 5], "div"), ValueError, r"weights.*layout"),
    # sampled_values
    "sampled_values_not_triple": (_with(sampled_values=(np.arange(5), np.ones((3, 1)))),
                                  ValueError, r"sampled_values"),
    "sampled_values_not_sequence": (_with(sampled_values=np.arange(5)), ValueError,
                                    r"sampled_values"),
    "candidates_float": (lambda: _sv(s=np.arange(5, dtype=np.float64)), TypeError,
                         r"sampled_candidates"),
    "candidates_2d": (lambda: _sv(s=np.arange(6).reshape(2, 3)), ValueError,
                      r"sampled_candidates"),
    "candidates_negative": (lambda: _sv(s=np.array([0, 1, -2, 3, 4])), ValueError,
                            r"sampled_candidates.*-2"),
    "candidates_too_big": (lambda: _sv(s=np.array([0, 1, 12, 3, 4])), ValueError,
                           r"sampled_candidates.*12"),
    "candidates_len_ne_num_sampled": (lambda: _sv(s=np.arange(4), sec=np.ones(4, np.float32)),
                                      ValueError, r"num_sampled"),
    "tec_wrong_shape": (lambda: _sv(tec=np.ones((3, 2), np.float32)), ValueError,
                        r"true_expected_count"),
    "sec_wrong_shape": (lambda: _sv(sec=np.ones(4, np.float32)), ValueError,
                        r"sampled_expected_count"),
    "tec_int": (lambda: _sv(tec=np.ones((3, 1), np.int64)), TypeError, r"true_expected_count"),
    "sec_int": (lambda: _sv(sec=np.ones(5, np.int64)), TypeError, r"sampled_expected_count"),
    "tec_zero": (lambda: _sv(tec=np.array([[0.5], [0.0], [0.5]], np.float32)), ValueError,
                 r"(?s)true_expected_count.*(NaN|zero|0\.0)"),
    "tec_negative": (lambda: _sv(tec=np.array([[0.5], [-0.5], [0.5]], np.float32)), ValueError,
                     r"true_expected_count"),
    "tec_nan": (lambda: _sv(tec=np.array([[0.5], [np.nan], [0.5]], np.float32)), ValueError,
                r"true_expected_count"),
    "sec_zero": (lambda: _sv(sec=np.array([0.25, 0.25, 0.0, 0.25, 0.25], np.float32)),
                 ValueError, r"sampled_expected_count"),
    "sec_inf": (lambda: _sv(sec=np.array([0.25, np.inf, 0.1, 0.25, 0.25], np.float32)),
                ValueError, r"sampled_expected_count"),
    # scalars
    "num_sampled_zero": (_with(num_sampled=0), ValueError, r"num_sampled"),
    "num_sampled_bool": (_with(num_sampled=True), TypeError, r"num_sampled"),
    "num_sampled_float": (_with(num_sampled=5.0), TypeError, r"num_sampled"),
    "num_true_bool": (_with(num_true=True), TypeError, r"num_true"),
    "num_true_zero": (_with(num_true=0), ValueError, r"num_true"),
    "num_classes_bool": (_with(num_classes=True), TypeError, r"num_classes"),
    "num_classes_zero": (_with(num_classes=0), ValueError, r"num_classes"),
    "remove_accidental_hits_str": (_with(remove_accidental_hits="yes"), TypeError,
                                   r"remove_accidental_hits"),
    "subtract_log_q_none": (_with(subtract_log_q=None), TypeError, r"subtract_log_q"),
    # default sampler: labels must be in [0, num_classes)
    "labels_beyond_num_classes_default_sampler": (
        _with(num_classes=5, sampled_values=None, labels=np.array([[1], [7], [2]])),
        ValueError, r"(?=.*labels)(?=.*num_classes)"),
    "default_sampler_num_sampled_too_big": (
        _with(num_classes=4, num_sampled=5, sampled_values=None,
              labels=np.array([[1], [3], [2]])), ValueError, r"num_sampled"),
}


@pytest.mark.parametrize("func", LOSSES, ids=LOSS_IDS)
@pytest.mark.parametrize("case", list(BAD_LOSS_ARGS), ids=str)
def test_bad_loss_argument(func, case, no_kernels):
    make, exc, pattern = BAD_LOSS_ARGS[case]
    with pytest.raises(exc, match=pattern):
        func(**make())


def test_no_kernels_fixture_really_blocks(no_kernels):
    with pytest.raises(AssertionError, match="kernel"):
        fs.sampled_softmax_loss(**_problem())


def test_tec_zero_message_mentions_nan(no_kernels):
    with pytest.raises(ValueError) as info:
        fs.sampled_softmax_loss(**_sv(tec=np.array([[0.5], [0.0], [0.5]], np.float32)))
    msg = str(info.value)
    assert "NaN" in msg and "0" in msg and "subtract_log_q" in msg
    assert "index (1, 0)" in msg  # where


def test_zero_counts_fine_without_subtract_log_q():
    kw = _sv(tec=np.zeros((3, 1), np.float32), sec=np.zeros(5, np.float32))
    kw["subtract_log_q"] = False
    for func in LOSSES:
        out = func(**kw)
        loss = out[0] if isinstance(out, tuple) else out
        assert np.isfinite(loss).all()


def test_valid_problem_passes():
    for func in LOSSES:
        func(**_problem())
    kw = _shards([5, 4, 4], "div")
    for func in LOSSES:
        func(**kw)


def test_labels_int32_and_sampled_int32_accepted():
    kw = _problem()
    base = fs.sampled_softmax_loss(**kw)
    kw["labels"] = kw["labels"].astype(np.int32)
    s, tec, sec = kw["sampled_values"]
    kw["sampled_values"] = (s.astype(np.int32), tec, sec)
    np.testing.assert_array_equal(fs.sampled_softmax_loss(**kw), base)


# ---------------------------------------------------------------------------
# samplers and alias tables
# ---------------------------------------------------------------------------

BAD_WEIGHTS = {
    "negative": (np.array([1.0, -0.5, 2.0]), r"weights.*non-negative.*-0\.5"),
    "nan": (np.array([1.0, np.nan, 2.0]), r"weights.*finite"),
    "inf": (np.array([1.0, 2.0, np.inf]), r"weights.*finite"),
    "neg_inf": (np.array([-np.inf, 2.0, 1.0]), r"weights.*finite"),
    "all_zero": (np.zeros(4), r"weights.*positive"),
    "empty": (np.zeros(0), r"weights.*empty"),
    "2d": (np.ones((2, 2)), r"weights.*1-D"),
}


@pytest.mark.parametrize("case", list(BAD_WEIGHTS), ids=str)
def test_alias_table_bad_weights(case, no_kernels):
    w, pattern = BAD_WEIGHTS[case]
    with pytest.raises(ValueError, match=pattern):
        fs.AliasTable(w)
    if w.ndim == 1 and w.size:
        with pytest.raises(ValueError, match=pattern):
            fs.AliasTable(w.astype(np.float32))


def test_alias_table_bad_dtype(no_kernels):
    with pytest.raises(TypeError, match="weights"):
        fs.AliasTable(np.array([True, False]))
    with pytest.raises(TypeError, match="weights"):
        fs.AliasTable(np.array(["a", "b"]))


def test_alias_table_overflowing_total():
    with pytest.raises(ValueError, match="weights"):
        fs.AliasTable(np.array([1e308, 1e308]))


def test_alias_table_sample_and_prob_arguments():
    table = fs.AliasTable(np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"\bn\b"):
        table.sample(-1)
    with pytest.raises(TypeError, match=r"\bn\b"):
        table.sample(2.0)
    with pytest.raises(TypeError, match="seed"):
        table.sample(3, seed="abc")
    with pytest.raises(TypeError, match="seed"):
        table.sample(3, seed=True)
    with pytest.raises(ValueError, match="stream"):
        table.sample(3, seed=1, stream=-1)
    with pytest.raises(ValueError, match="out"):
        table.sample(3, seed=1, out=np.empty(4, np.int64))
    with pytest.raises(ValueError, match="out"):
        table.sample(3, seed=1, out=np.empty(3, np.int32))
    with pytest.raises(ValueError, match="ids"):
        table.prob([0, 3])
    with pytest.raises(ValueError, match="ids"):
        table.prob([-1])
    with pytest.raises(TypeError, match="ids"):
        table.prob([0.5])


BAD_UNIGRAMS = {
    "negative": ([1.0, -2.0, 3.0], r"unigrams.*non-negative"),
    "nan": ([1.0, np.nan, 3.0], r"unigrams.*finite"),
    "inf": ([1.0, np.inf, 3.0], r"unigrams.*finite"),
    "all_zero": ([0.0, 0.0, 0.0], r"zero"),
    "2d": ([[1.0, 2.0, 3.0]], r"unigrams.*1-D"),
}


@pytest.mark.parametrize("case", list(BAD_UNIGRAMS), ids=str)
def test_fixed_unigram_bad_weights(case, no_kernels):
    u, pattern = BAD_UNIGRAMS[case]
    with pytest.raises(ValueError, match=pattern):
        fs.FixedUnigramSampler(3, unigrams=u)
    with pytest.raises(ValueError, match=pattern):
        fs.fixed_unigram_candidate_sampler([[0]], 1, 1, False, 3, unigrams=u, seed=0)


def test_fixed_unigram_shard_all_zero(no_kernels):
    # shard 1 of 2 keeps ids 1 and 3, both zero
    with pytest.raises(ValueError, match="zero"):
        fs.FixedUnigramSampler(2, unigrams=[1.0, 0.0, 1.0, 0.0], num_shards=2, shard=1)


SAMPLER_FUNCS = {
    "uniform": lambda tc, nt, ns, u, rm: fs.uniform_candidate_sampler(tc, nt, ns, u, rm, seed=1),
    "log_uniform": lambda tc, nt, ns, u, rm: fs.log_uniform_candidate_sampler(tc, nt, ns, u, rm,
                                                                              seed=1),
    "fixed_unigram": lambda tc, nt, ns, u, rm: fs.fixed_unigram_candidate_sampler(
        tc, nt, ns, u, rm, unigrams=np.arange(1, rm + 1, dtype=np.float64), seed=1),
}


@pytest.mark.parametrize("name", list(SAMPLER_FUNCS) + ["learned_unigram", "fixed_unigram_obj"])
def test_sampler_bad_arguments(name, block_kernels):
    if name == "learned_unigram":
        f = _object_call(fs.LearnedUnigramSampler(10, seed=1))
    elif name == "fixed_unigram_obj":
        f = _object_call(fs.FixedUnigramSampler(10, unigrams=np.arange(1.0, 11.0), seed=1))
    else:
        f = SAMPLER_FUNCS[name]
        # warm the functional fixed_unigram's table cache: cache hits build nothing
        f([[0]], 1, 2, False, 10)
    block_kernels()
    with pytest.raises(ValueError, match=r"(?=.*num_sampled)(?=.*range_max)"):
        f([[0]], 1, 11, True, 10)
    with pytest.raises(ValueError, match="num_sampled"):
        f([[0]], 1, 0, False, 10)
    with pytest.raises(TypeError, match="num_sampled"):
        f([[0]], 1, True, False, 10)
    with pytest.raises(TypeError, match="num_sampled"):
        f([[0]], 1, 3.0, False, 10)
    with pytest.raises(TypeError, match="num_true"):
        f([[0]], True, 3, False, 10)
    with pytest.raises(ValueError, match="true_classes"):
        f([[0, 1]], 1, 3, False, 10)
    with pytest.raises(ValueError, match="true_classes"):
        f([[[0]]], 1, 3, False, 10)
    with pytest.raises(ValueError, match=r"true_classes.*10"):
        f([[0], [10]], 1, 3, False, 10)
    with pytest.raises(ValueError, match=r"true_classes.*-1"):
        f([[0], [-1]], 1, 3, False, 10)
    with pytest.raises(TypeError, match="true_classes"):
        f([[0.0]], 1, 3, False, 10)
    with pytest.raises(TypeError, match="unique"):
        f([[0]], 1, 3, "yes", 10)


def _object_call(sampler):
    def call(tc, nt, ns, u, rm):
        assert rm == sampler.range_max
        return sampler(tc, nt, ns, u)
    return call


@pytest.mark.parametrize("name", ["uniform", "log_uniform", "learned_unigram"])
def test_sampler_bad_range_max(name, no_kernels):
    cls = {"uniform": fs.UniformSampler, "log_uniform": fs.LogUniformSampler,
           "learned_unigram": fs.LearnedUnigramSampler}[name]
    with pytest.raises(TypeError, match="range_max"):
        cls(True)
    with pytest.raises(TypeError, match="range_max"):
        cls(10.0)
    with pytest.raises(ValueError, match="range_max"):
        cls(0)


def test_unique_needs_enough_drawable_classes(block_kernels):
    sampler = fs.FixedUnigramSampler(5, unigrams=[1.0, 0.0, 2.0, 0.0, 3.0], seed=0)
    block_kernels()
    with pytest.raises(ValueError, match="num_sampled"):
        sampler([[0]], 1, 4, True)


def test_fixed_unigram_range_max_must_match(no_kernels):
    with pytest.raises(ValueError, match=r"range_max.*5.*4"):
        fs.FixedUnigramSampler(5, unigrams=[1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="range_max"):
        fs.fixed_unigram_candidate_sampler([[0]], 1, 2, False, 3, unigrams=[1.0, 2.0, 3.0, 4.0])
    # reserved ids count towards the length
    with pytest.raises(ValueError, match="range_max"):
        fs.FixedUnigramSampler(4, unigrams=[1.0, 2.0, 3.0, 4.0], num_reserved_ids=1)
    # shard-local length: 10 ids over 3 shards, shard 0 has 4
    with pytest.raises(ValueError, match="range_max"):
        fs.FixedUnigramSampler(3, unigrams=np.ones(10), num_shards=3, shard=0)


def test_fixed_unigram_vocab_file_xor_unigrams(tmp_path, no_kernels):
    path = tmp_path / "vocab.csv"
    path.write_text("a,1\nb,2\nc,3\n")
    with pytest.raises(ValueError, match=r"(?=.*vocab_file)(?=.*unigrams)"):
        fs.FixedUnigramSampler(3, vocab_file=str(path), unigrams=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"(?=.*vocab_file)(?=.*unigrams)"):
        fs.FixedUnigramSampler(3)
    with pytest.raises(ValueError, match=r"(?=.*vocab_file)(?=.*unigrams)"):
        fs.fixed_unigram_candidate_sampler([[0]], 1, 1, False, 3, vocab_file=str(path),
                                           unigrams=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"(?=.*vocab_file)(?=.*unigrams)"):
        fs.fixed_unigram_candidate_sampler([[0]], 1, 1, False, 3)


def test_fixed_unigram_missing_or_bad_vocab_file(tmp_path, no_kernels):
    missing = tmp_path / "nope.csv"
    with pytest.raises(ValueError, match=r"vocab_file.*nope\.csv"):
        fs.FixedUnigramSampler(3, vocab_file=str(missing))
    with pytest.raises(ValueError, match=r"vocab_file.*nope\.csv"):
        fs.fixed_unigram_candidate_sampler([[0]], 1, 1, False, 3, vocab_file=str(missing))
    bad = tmp_path / "bad.csv"
    bad.write_text("a,1\nb,two\nc,3\n")
    with pytest.raises(ValueError, match=r"vocab_file.*line 2"):
        fs.FixedUnigramSampler(3, vocab_file=str(bad))


def test_fixed_unigram_bad_shard_and_distortion(no_kernels):
    u = [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="shard"):
        fs.FixedUnigramSampler(2, unigrams=u, num_shards=2, shard=2)
    with pytest.raises(ValueError, match="num_shards"):
        fs.FixedUnigramSampler(4, unigrams=u, num_shards=0)
    with pytest.raises(ValueError, match="num_reserved_ids"):
        fs.FixedUnigramSampler(4, unigrams=u, num_reserved_ids=-1)
    with pytest.raises(TypeError, match="num_reserved_ids"):
        fs.FixedUnigramSampler(4, unigrams=u, num_reserved_ids=True)
    with pytest.raises(ValueError, match="distortion"):
        fs.FixedUnigramSampler(4, unigrams=u, distortion=np.nan)
    with pytest.raises(TypeError, match="distortion"):
        fs.FixedUnigramSampler(4, unigrams=u, distortion="x")


def test_learned_unigram_range_max_too_large(no_kernels):
    with pytest.raises(ValueError, match="range_max"):
        fs.LearnedUnigramSampler(2**31 - 1)
    with pytest.raises(ValueError, match="range_max"):
        fs.learned_unigram_candidate_sampler([[0]], 1, 1, False, 2**31 - 1, seed=3)


def test_learned_unigram_update_out_of_range(block_kernels):
    sampler = fs.LearnedUnigramSampler(5, seed=0)
    block_kernels()
    with pytest.raises(ValueError, match="true_classes"):
        sampler.update([[1, 5]])
    with pytest.raises(TypeError, match="true_classes"):
        sampler.update([[1.0]])


def test_sampler_prob_out_of_range(no_kernels):
    with pytest.raises(ValueError, match="ids"):
        fs.LogUniformSampler(10).prob([10])
    with pytest.raises(ValueError, match="ids"):
        fs.UniformSampler(10).prob([-1])


def test_expected_count_arguments(no_kernels):
    with pytest.raises(TypeError, match="num_tries"):
        fs.expected_count([0.1], 3.0, 3)
    with pytest.raises(ValueError, match="num_tries"):
        fs.expected_count([0.1], -1, 3)
    with pytest.raises(TypeError, match="num_sampled"):
        fs.expected_count([0.1], 3, True)


def test_compute_accidental_hits_arguments(no_kernels):
    with pytest.raises(ValueError, match="sampled_candidates"):
        fs.compute_accidental_hits([[0]], [[1, 2]], 1)
    with pytest.raises(TypeError, match="sampled_candidates"):
        fs.compute_accidental_hits([[0]], [1.0, 2.0], 1)
    with pytest.raises(ValueError, match="true_classes"):
        fs.compute_accidental_hits([[0, 1]], [1, 2], 1)
    with pytest.raises(TypeError, match="true_classes"):
        fs.compute_accidental_hits([[0.5]], [1, 2], 1)
    with pytest.raises(TypeError, match="num_true"):
        fs.compute_accidental_hits([[0]], [1, 2], True)


def test_all_candidate_sampler_arguments(no_kernels):
    with pytest.raises(ValueError, match="num_sampled"):
        fs.all_candidate_sampler([[0]], 1, 0, True)
    with pytest.raises(TypeError, match="unique"):
        fs.all_candidate_sampler([[0]], 1, 2, "no")
    with pytest.raises(ValueError, match="true_classes"):
        fs.all_candidate_sampler([[-1]], 1, 2, True)


def test_sharding_arguments(no_kernels):
    from fastsampled.sharding import check_layout, layout_sizes, shard_ids

    with pytest.raises(ValueError, match="partition_strategy"):
        layout_sizes(10, 2, "rows")
    with pytest.raises(ValueError, match="layout"):
        check_layout([4, 5, 4], "div")
    with pytest.raises(ValueError, match="ids"):
        shard_ids([13], [5, 4, 4], "div")
    with pytest.raises(ValueError, match="ids"):
        shard_ids([-1], [5, 4, 4], "mod")
    with pytest.raises(TypeError, match="ids"):
        shard_ids([1.5], [5, 4, 4], "mod")


def test_default_sampler_num_classes_beyond_weights(no_kernels):
    """sampled_values=None draws from [0, num_classes): with num_classes > rows of weights the
    candidates can fall outside the weights (TF: a gather error). The loss kernels must never
    see them (they would read out of bounds)."""
    rng = np.random.default_rng(0)
    kw = dict(weights=rng.normal(size=(50, 4)).astype(np.float32),
              biases=np.zeros(50, np.float32), labels=np.array([[1], [7], [20]]),
              inputs=rng.normal(size=(3, 4)).astype(np.float32), num_sampled=200,
              num_classes=10**6, seed=1)
    for func in LOSSES:
        with pytest.raises(ValueError, match="num_classes|sampled_candidates"):
            func(**kw)


def test_num_sampled_beyond_num_classes_is_named_as_passed(no_kernels):
    """The default sampler's limit is worded with the loss's own arguments, not the
    sampler's (range_max, unique) the caller never passed."""
    kw = _problem()
    kw.update(sampled_values=None, num_sampled=2000, num_classes=12)
    for func in LOSSES:
        with pytest.raises(ValueError, match=r"num_sampled \(2000\) must be <= num_classes "
                                             r"\(12\)") as info:
            func(**kw)
        assert "range_max" not in str(info.value)
