"""The plain-numpy reference (tests/reference.py) against every TensorFlow case,
plus focused unit tests of its pieces."""

import numpy as np
import pytest

import reference as ref
from tf_cases import assert_close_tf, case_files, case_id, load_case, shards_from_case

LOSS_CASES = case_files("loss")
SAMPLER_CASES = case_files("sampler")
HITS_CASES = case_files("accidental_hits")

# Logits of accidental hits are about -FLT_MAX; they are compared on their own
# so that they do not set the tolerance scale for the ordinary logits.
MASKED_LOGIT = 1e30


def test_every_case_file_is_used():
    assert len(LOSS_CASES) + len(SAMPLER_CASES) + len(HITS_CASES) == len(case_files())
    assert LOSS_CASES and SAMPLER_CASES and HITS_CASES


# ---------------------------------------------------------------------------
# TensorFlow cases
# ---------------------------------------------------------------------------

def _loss_args(case):
    weights, biases = shards_from_case(case)
    return dict(
        weights=weights, biases=biases, labels=case["labels"], inputs=case["inputs"],
        sampled=case["sampled"], true_expected_count=case["true_expected_count"],
        sampled_expected_count=case["sampled_expected_count"], num_true=case["num_true"],
        remove_accidental_hits=bool(case["remove_accidental_hits"]),
        subtract_log_q=bool(case["subtract_log_q"]),
        partition_strategy=case["partition_strategy"])


@pytest.mark.parametrize("path", LOSS_CASES, ids=case_id)
def test_loss_case_shard_map(path):
    case = load_case(path)
    weights, _ = shards_from_case(case)
    shard, row = ref.shard_map(np.arange(case["num_classes"]), [w.shape[0] for w in weights],
                               case["partition_strategy"])
    np.testing.assert_array_equal(shard, case["row_shard"])
    np.testing.assert_array_equal(row, case["row_local"])
    # and the shards are the dense matrix laid out by that map
    np.testing.assert_array_equal(
        ref.lookup(weights, np.arange(case["num_classes"]), case["partition_strategy"]),
        case["weights"])


@pytest.mark.parametrize("path", LOSS_CASES, ids=case_id)
def test_loss_case_logits(path):
    case = load_case(path)
    dtype = np.dtype(case["dtype"])
    logits, targets = ref.sampled_logits(**_loss_args(case))
    assert logits.dtype == dtype and targets.dtype == dtype
    expected = case["logits"]
    masked = np.abs(expected) > MASKED_LOGIT
    assert_close_tf(logits[~masked], expected[~masked], dtype, "logits")
    assert_close_tf(logits[masked], expected[masked], dtype, "masked logits")
    if dtype == np.float32:
        np.testing.assert_array_equal(logits[masked], expected[masked])
    if not case["remove_accidental_hits"]:
        assert not masked.any()
    np.testing.assert_array_equal(targets, case["out_labels"])


@pytest.mark.parametrize("path", LOSS_CASES, ids=case_id)
def test_loss_case_loss_and_grads(path):
    case = load_case(path)
    dtype = np.dtype(case["dtype"])
    func = {"ssm": ref.sampled_softmax_loss_and_grads,
            "nce": ref.nce_loss_and_grads}[case["loss_fn"]]
    loss, grad_inputs, grad_weights, grad_biases = func(**_loss_args(case))

    assert loss.dtype == dtype and grad_inputs.dtype == dtype
    assert grad_weights.dtype == np.dtype(case["weights_dtype"])
    assert grad_biases.dtype == np.dtype(case["weights_dtype"])
    # The computation (and hence TF's rounding) happens in the inputs dtype even
    # when weights are float64, so the inputs dtype selects the tolerance.
    assert_close_tf(loss, case["loss"], dtype, "loss")
    assert_close_tf(grad_inputs, case["grad_inputs"], dtype, "grad_inputs")
    assert_close_tf(grad_weights, case["grad_weights"], dtype, "grad_weights")
    assert_close_tf(grad_biases, case["grad_biases"], dtype, "grad_biases")


@pytest.mark.parametrize("path", LOSS_CASES, ids=case_id)
def test_loss_case_num_accidental_hits(path):
    case = load_case(path)
    indices, _, _ = ref.compute_accidental_hits(case["labels"], case["sampled"],
                                                case["num_true"])
    assert indices.size == case["num_accidental_hits"]


@pytest.mark.parametrize("path", HITS_CASES, ids=case_id)
def test_accidental_hits_case(path):
    case = load_case(path)
    indices, ids, weights = ref.compute_accidental_hits(
        case["true_classes"], case["sampled_candidates"], case["num_true"])
    for name, got in (("indices", indices), ("ids", ids), ("weights", weights)):
        assert got.dtype == case[name].dtype, name
        np.testing.assert_array_equal(got, case[name], err_msg=name)


def _sampler_prob(case, ids):
    """Single-draw probabilities of ``ids`` under the case's sampler."""
    name = case["sampler"]
    range_max = case["range_max"]
    if name == "uniform":
        return ref.uniform_prob(ids, range_max)
    if name == "log_uniform":
        return ref.log_uniform_prob(ids, range_max)
    if name == "fixed_unigram":
        params = dict(unigrams=case["unigrams"], distortion=case.get("distortion", 1.0),
                      num_reserved_ids=case.get("num_reserved_ids", 0),
                      num_shards=case.get("num_shards", 1), shard=case.get("shard", 0))
        weights, _ = ref.fixed_unigram_weights(**params)
        assert weights.size == range_max  # TF: range must equal the weights size
        return ref.fixed_unigram_prob(ids, **params)
    if name == "learned_unigram":
        return ref.learned_unigram_prob(ids, range_max, case.get("prior_true_classes", ()))
    raise AssertionError(f"unknown sampler {name!r}")


def _assert_rel(actual, expected, rtol, name):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, name
    err = np.abs(actual - expected)
    bad = err > rtol * np.abs(expected)
    assert not bad.any(), f"{name}: worst relative error {np.max(err / np.abs(expected)):.3g}"


@pytest.mark.parametrize("path", SAMPLER_CASES, ids=case_id)
def test_sampler_case(path):
    case = load_case(path)
    candidates = case["sampled_candidates"]
    num_sampled = case["num_sampled"]
    assert candidates.shape == (num_sampled,)
    assert ((candidates >= 0) & (candidates < case["range_max"])).all()
    assert np.unique(candidates).size == case["num_distinct_sampled"]
    if case["unique"]:
        assert np.unique(candidates).size == num_sampled
    else:
        assert case["num_tries_inferred"] == num_sampled

    if case["sampler"] == "all_candidate":
        np.testing.assert_array_equal(candidates, np.arange(num_sampled))
        np.testing.assert_array_equal(case["sampled_expected_count"], 1.0)
        np.testing.assert_array_equal(case["true_expected_count"], 1.0)
        return

    # Zero-probability ids are never drawn.
    assert (_sampler_prob(case, candidates) > 0).all()

    num_tries = case["num_tries_inferred"]
    tec = ref.expected_count(_sampler_prob(case, case["true_classes"]), num_tries, num_sampled)
    sec = ref.expected_count(_sampler_prob(case, candidates), num_tries, num_sampled)
    assert tec.dtype == np.float32 and sec.dtype == np.float32
    _assert_rel(tec, case["true_expected_count"], 1.5e-7, "true_expected_count")
    _assert_rel(sec, case["sampled_expected_count"], 1.5e-7, "sampled_expected_count")


# ---------------------------------------------------------------------------
# Focused unit tests
# ---------------------------------------------------------------------------

def test_shard_map_mod_uneven():
    shard, row = ref.shard_map(np.arange(13), [5, 4, 4], "mod")
    np.testing.assert_array_equal(shard, [0, 1, 2] * 4 + [0])
    np.testing.assert_array_equal(row, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4])


def test_shard_map_div_uneven():
    shard, row = ref.shard_map(np.arange(13), [5, 4, 4], "div")
    np.testing.assert_array_equal(shard, [0] * 5 + [1] * 4 + [2] * 4)
    np.testing.assert_array_equal(row, [0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2, 3])


def test_shard_map_div_uses_sum_of_shard_sizes():
    # Same N = 13 -> same map whatever the individual sizes are.
    a = ref.shard_map(np.arange(13), [4, 5, 4], "div")
    b = ref.shard_map(np.arange(13), [5, 4, 4], "div")
    np.testing.assert_array_equal(a, b)
    # One extra (never read) row changes N and the whole map: N=14, q=4, r=2.
    shard, row = ref.shard_map(np.arange(14), [5, 5, 4], "div")
    np.testing.assert_array_equal(shard, [0] * 5 + [1] * 5 + [2] * 4)
    np.testing.assert_array_equal(row, list(range(5)) + list(range(5)) + list(range(4)))


def test_shard_map_single_shard_ignores_strategy():
    ids = np.array([[3, 0], [7, 12]])
    for strategy in ("mod", "div"):
        shard, row = ref.shard_map(ids, [20], strategy)
        np.testing.assert_array_equal(shard, 0)
        np.testing.assert_array_equal(row, ids)


def test_lookup_roundtrip_and_missing_rows():
    dense = np.arange(13 * 2, dtype=np.float32).reshape(13, 2)
    ids = np.arange(13)
    mod_shards = [dense[p::3] for p in range(3)]           # sizes [5, 4, 4]
    np.testing.assert_array_equal(ref.lookup(mod_shards, ids, "mod"), dense)
    div_shards = [dense[0:5], dense[5:9], dense[9:13]]     # sizes [5, 4, 4]
    np.testing.assert_array_equal(ref.lookup(div_shards, ids, "div"), dense)
    np.testing.assert_array_equal(ref.lookup(dense, ids.reshape(13, 1), "div"),
                                  dense.reshape(13, 1, 2))
    # div with sizes [4, 5, 4]: id 4 -> shard 0 row 4, which does not exist.
    with pytest.raises(IndexError):
        ref.lookup([dense[0:4], dense[4:9], dense[9:13]], ids, "div")
    with pytest.raises(IndexError):
        ref.lookup(mod_shards, [13], "mod")


def test_accidental_hits_last_occurrence_only():
    labels = np.array([[3, 9], [5, 3], [8, 8]])
    sampled = np.array([3, 1, 3, 5, 8, 5, 8])
    indices, ids, weights = ref.compute_accidental_hits(labels, sampled, 2)
    np.testing.assert_array_equal(indices, [0, 1, 1, 2, 2])
    np.testing.assert_array_equal(ids, [2, 5, 2, 6, 6])
    assert indices.dtype == np.int32 and ids.dtype == np.int64
    assert weights.dtype == np.float32
    np.testing.assert_array_equal(weights, -np.finfo(np.float32).max)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_duplicate_label_mask_is_assigned_once(dtype):
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(6, 3)).astype(dtype)
    biases = rng.normal(size=6).astype(dtype)
    inputs = rng.normal(size=(2, 3)).astype(dtype)
    labels = np.array([[2, 2], [1, 4]])
    sampled = np.array([2, 0, 2, 5])
    tec = np.full((2, 2), 0.5, dtype=np.float32)
    sec = np.full(4, 0.25, dtype=np.float32)
    logits, _ = ref.sampled_logits(weights, biases, labels, inputs, sampled, tec, sec,
                                   num_true=2, remove_accidental_hits=True)
    assert np.isfinite(logits).all()
    # row 0: only the last copy of 2 (column 2 + 2) is masked, once.
    assert logits[0, 4] < -3e38 and logits[0, 2] > -1e30
    if dtype == np.float32:
        assert logits[0, 4] == -np.finfo(np.float32).max
    assert (logits[1] > -1e30).all()
    for func in (ref.sampled_softmax_loss_and_grads, ref.nce_loss_and_grads):
        out = func(weights, biases, labels, inputs, sampled, tec, sec, num_true=2,
                   remove_accidental_hits=True)
        assert all(np.isfinite(a).all() for a in out)


def _finite_difference_check(func, **kwargs):
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(7, 3))
    biases = rng.normal(size=7)
    inputs = rng.normal(size=(3, 3))
    labels = np.array([[1, 4], [4, 4], [0, 6]])
    sampled = np.array([4, 2, 5, 2])
    tec = rng.uniform(0.1, 0.9, size=(3, 2))
    sec = rng.uniform(0.1, 0.9, size=4)
    args = (labels, inputs, sampled, tec, sec)

    def total(w, b, x):
        return func(w, b, labels, x, sampled, tec, sec, num_true=2, **kwargs)[0].sum()

    _, gx, gw, gb = func(weights, biases, *args, num_true=2, **kwargs)
    eps = 1e-6
    for array, grad, which in ((inputs, gx, 2), (weights, gw, 0), (biases, gb, 1)):
        numeric = np.zeros_like(array)
        for idx in np.ndindex(array.shape):
            params = [weights.copy(), biases.copy(), inputs.copy()]
            target = params[which]
            target[idx] += eps
            up = total(*params)
            target[idx] -= 2 * eps
            down = total(*params)
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("rah", [False, True])
@pytest.mark.parametrize("func", [ref.sampled_softmax_loss_and_grads, ref.nce_loss_and_grads],
                         ids=["ssm", "nce"])
def test_gradients_by_finite_differences(func, rah):
    _finite_difference_check(func, remove_accidental_hits=rah)


def test_sampled_candidates_from_stream():
    stream = [4, 4, 1, 4, 2, 1, 7]
    cands, tries = ref.sampled_candidates_from_stream(stream, 3, unique=True)
    np.testing.assert_array_equal(cands, [4, 1, 2])
    assert tries == 5
    cands, tries = ref.sampled_candidates_from_stream(stream, 3, unique=False)
    np.testing.assert_array_equal(cands, [4, 4, 1])
    assert tries == 3


def test_expected_count_branches():
    p = np.array([0.1, 0.0, 0.5], dtype=np.float32)
    np.testing.assert_array_equal(ref.expected_count(p, 4, 4), p * np.float32(4))
    e = ref.expected_count(p, 6, 4)
    assert e.dtype == np.float32
    np.testing.assert_allclose(e, 1 - (1 - p.astype(np.float64)) ** 6, rtol=1e-6)
    assert e[1] == 0


def test_fixed_unigram_weights_shard_quirk():
    # 4 reserved ids over 3 shards: shard 1 gets reserved id 1 only, so start = 1
    # and the unigram word ids restart at 1 (not at num_reserved_ids = 4).
    unigrams = np.arange(1, 7, dtype=np.float32)          # word ids 1..6 -> t = 0..5
    weights, total = ref.fixed_unigram_weights(unigrams, 1.0, 4, 3, 1)
    # word_id = 1 + t; kept when word_id % 3 == 1 -> t = 0, 3 -> unigrams 1, 4
    np.testing.assert_array_equal(weights, [0, 1, 4])
    assert total == np.float32(5)
    # distortion 0: zero counts get weight 1, reserved ids stay 0
    weights, total = ref.fixed_unigram_weights([0.0, 3.0], 0.0, 2)
    np.testing.assert_array_equal(weights, [0, 0, 1, 1])
    assert total == 2


def test_learned_unigram_prob_counts():
    p = ref.learned_unigram_prob([0, 1, 2], 4, prior_true_classes=[[1, 1], [2, 0]])
    # counts [2, 3, 2, 1] / 8
    np.testing.assert_array_equal(p, np.array([2, 3, 2], dtype=np.float32) / np.float32(8))
