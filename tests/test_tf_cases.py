"""fastsampled against every TensorFlow reference case in ``tests/data/tf_cases``.

Loss cases go through the public losses with the case's ``sampled_values`` (so everything is
deterministic), the weights/biases exactly as TensorFlow got them and the case's partition
strategy; sparse gradients are densified and compared with INDEX.md's tolerance rule.
Sampler cases check that fastsampled's samplers give TensorFlow's expected counts for the
stored candidates and number of draws.
"""
import numpy as np
import pytest

import fastsampled as fs
import reference as ref
from conftest import densify
from tf_cases import assert_close_tf, case_files, case_id, load_case, shards_from_case

pytestmark = pytest.mark.kernel

LOSS_CASES = case_files("loss")
SAMPLER_CASES = case_files("sampler")
HITS_CASES = case_files("accidental_hits")


def test_case_files_present():
    assert LOSS_CASES and SAMPLER_CASES and HITS_CASES
    assert len(LOSS_CASES) + len(SAMPLER_CASES) + len(HITS_CASES) == len(case_files())


def _loss_kwargs(case):
    dtype = np.dtype(case["dtype"])
    weights, biases = shards_from_case(case)
    return dict(
        weights=weights, biases=biases, labels=case["labels"], inputs=case["inputs"],
        num_sampled=int(case["num_sampled"]), num_classes=int(case["num_classes"]),
        num_true=int(case["num_true"]),
        sampled_values=(case["sampled"], case["true_expected_count"].astype(dtype),
                        case["sampled_expected_count"].astype(dtype)),
        remove_accidental_hits=bool(case["remove_accidental_hits"]),
        partition_strategy=case["partition_strategy"],
        subtract_log_q=bool(case["subtract_log_q"]))


_FUNCS = {"ssm": (fs.sampled_softmax_loss, fs.sampled_softmax_loss_and_grads),
          "nce": (fs.nce_loss, fs.nce_loss_and_grads)}


@pytest.mark.parametrize("path", LOSS_CASES, ids=case_id)
def test_loss_case(path):
    case = load_case(path)
    dtype = np.dtype(case["dtype"])
    wdtype = np.dtype(case["weights_dtype"])
    loss_fn, grads_fn = _FUNCS[case["loss_fn"]]
    kwargs = _loss_kwargs(case)

    loss_only = loss_fn(**kwargs)
    loss, g = grads_fn(**kwargs)
    assert loss.dtype == dtype and loss_only.dtype == dtype
    assert loss.shape == (case["inputs"].shape[0],)
    assert_close_tf(loss_only, case["loss"], dtype, "loss (loss-only function)")
    assert_close_tf(loss, case["loss"], dtype, "loss")

    assert g.inputs.dtype == dtype
    assert g.weights.dtype == wdtype, "g.weights must have the weights' dtype"
    assert g.biases.dtype == wdtype
    assert g.ids.dtype == np.int64
    assert np.all(np.diff(g.ids) > 0), "g.ids must be sorted and unique"
    np.testing.assert_array_equal(
        g.ids, np.unique(np.concatenate([case["labels"].reshape(-1), case["sampled"]])))
    assert g.weights.shape == (g.ids.size, case["inputs"].shape[1])
    assert g.biases.shape == (g.ids.size,)

    num_classes = case["weights"].shape[0]
    gw, gb = densify(g, num_classes, case["inputs"].shape[1])
    assert_close_tf(g.inputs, case["grad_inputs"], dtype, "grad_inputs")
    assert_close_tf(gw, case["grad_weights"], dtype, "grad_weights")
    assert_close_tf(gb, case["grad_biases"], dtype, "grad_biases")

    # the sampled values used are handed back
    np.testing.assert_array_equal(g.sampled_values[0], case["sampled"])


@pytest.mark.parametrize("path", LOSS_CASES, ids=case_id)
def test_loss_case_accidental_hits(path):
    case = load_case(path)
    indices, ids, weights = fs.compute_accidental_hits(case["labels"], case["sampled"],
                                                       int(case["num_true"]))
    assert indices.size == case["num_accidental_hits"]
    r_indices, r_ids, _ = ref.compute_accidental_hits(case["labels"], case["sampled"],
                                                      case["num_true"])
    np.testing.assert_array_equal(indices, r_indices)
    np.testing.assert_array_equal(ids, r_ids)


@pytest.mark.parametrize("path", HITS_CASES, ids=case_id)
def test_accidental_hits_case(path):
    case = load_case(path)
    indices, ids, weights = fs.compute_accidental_hits(
        case["true_classes"], case["sampled_candidates"], int(case["num_true"]))
    for name, got in (("indices", indices), ("ids", ids), ("weights", weights)):
        assert got.dtype == case[name].dtype, name
        np.testing.assert_array_equal(got, case[name], err_msg=name)


# ---------------------------------------------------------------------------
# Samplers
# ---------------------------------------------------------------------------

def _fixed_unigram_params(case):
    return dict(unigrams=case["unigrams"], distortion=case.get("distortion", 1.0),
                num_reserved_ids=int(case.get("num_reserved_ids", 0)),
                num_shards=int(case.get("num_shards", 1)), shard=int(case.get("shard", 0)))


def _make_sampler(case):
    name = case["sampler"]
    range_max = int(case["range_max"])
    if name == "uniform":
        return fs.UniformSampler(range_max, seed=0)
    if name == "log_uniform":
        return fs.LogUniformSampler(range_max, seed=0)
    if name == "fixed_unigram":
        return fs.FixedUnigramSampler(range_max, seed=0, **_fixed_unigram_params(case))
    if name == "learned_unigram":
        sampler = fs.LearnedUnigramSampler(range_max, seed=0)
        prior = case.get("prior_true_classes", None)
        if prior is not None and np.asarray(prior).size:
            sampler.update(prior)
        return sampler
    raise AssertionError(f"unknown sampler {name!r}")


def _ref_prob(case, ids):
    name = case["sampler"]
    range_max = int(case["range_max"])
    if name == "uniform":
        return ref.uniform_prob(ids, range_max)
    if name == "log_uniform":
        return ref.log_uniform_prob(ids, range_max)
    if name == "fixed_unigram":
        return ref.fixed_unigram_prob(ids, **_fixed_unigram_params(case))
    if name == "learned_unigram":
        return ref.learned_unigram_prob(ids, range_max, case.get("prior_true_classes", ()))
    raise AssertionError(name)


def _assert_rel(actual, expected, rtol, name):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, name
    err = np.abs(actual - expected)
    bad = err > rtol * np.abs(expected)
    assert not bad.any(), f"{name}: worst relative error {np.max(err / np.abs(expected)):.3g}"


def _assert_within_ulp(actual, expected, name, ulps=1):
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == np.float32 and expected.dtype == np.float32, name
    assert actual.shape == expected.shape, name
    ai = actual.view(np.int32).astype(np.int64)
    ei = expected.view(np.int32).astype(np.int64)
    # all probabilities are >= 0, so the int view is monotone
    assert (np.abs(ai - ei) <= ulps).all(), (
        f"{name}: differs by more than {ulps} ulp: {actual[np.abs(ai - ei) > ulps]} vs "
        f"{expected[np.abs(ai - ei) > ulps]}")


SAMPLER_CASES_NO_ALL = [p for p in SAMPLER_CASES if load_case(p)["sampler"] != "all_candidate"]


@pytest.mark.parametrize("path", SAMPLER_CASES_NO_ALL, ids=case_id)
def test_sampler_case_expected_counts(path):
    case = load_case(path)
    sampler = _make_sampler(case)
    num_sampled = int(case["num_sampled"])
    num_tries = int(case["num_tries_inferred"])
    cands = case["sampled_candidates"]
    true_classes = case["true_classes"]

    p_true = sampler.prob(true_classes)
    p_cand = sampler.prob(cands)
    assert p_true.dtype == np.float32 and p_cand.dtype == np.float32
    assert p_true.shape == true_classes.shape
    assert (p_cand > 0).all(), "TF drew a candidate fastsampled gives probability 0"

    tec = fs.expected_count(p_true, num_tries, num_sampled)
    sec = fs.expected_count(p_cand, num_tries, num_sampled)
    assert tec.dtype == np.float32 and sec.dtype == np.float32
    _assert_rel(tec, case["true_expected_count"], 1.5e-7, "true_expected_count")
    _assert_rel(sec, case["sampled_expected_count"], 1.5e-7, "sampled_expected_count")


@pytest.mark.parametrize("path", SAMPLER_CASES_NO_ALL, ids=case_id)
def test_sampler_case_prob_matches_reference(path):
    case = load_case(path)
    sampler = _make_sampler(case)
    ids = np.arange(int(case["range_max"]))
    _assert_within_ulp(sampler.prob(ids), _ref_prob(case, ids), "prob")
    _assert_within_ulp(sampler.prob(case["true_classes"]), _ref_prob(case, case["true_classes"]),
                       "prob(true_classes)")


@pytest.mark.parametrize("path", SAMPLER_CASES_NO_ALL, ids=case_id)
def test_sampler_case_draws_same_kind_of_output(path):
    """The fastsampled sampler with the case's parameters returns a well-formed triple whose
    counts follow the expected-count rule with its own num_tries."""
    case = load_case(path)
    sampler = _make_sampler(case)
    num_sampled = int(case["num_sampled"])
    unique = bool(case["unique"])
    s, tec, sec = sampler(case["true_classes"], int(case["num_true"]), num_sampled, unique)
    assert s.dtype == np.int64 and s.shape == (num_sampled,)
    assert ((s >= 0) & (s < case["range_max"])).all()
    assert (sampler.prob(s) > 0).all()
    if unique:
        assert np.unique(s).size == num_sampled
    tries = sampler.last_num_tries
    assert tries >= num_sampled
    np.testing.assert_array_equal(sec, fs.expected_count(_ref_prob(case, s), tries, num_sampled))


def test_all_candidate_sampler_case():
    paths = [p for p in SAMPLER_CASES if load_case(p)["sampler"] == "all_candidate"]
    for path in paths:
        case = load_case(path)
        s, tec, sec = fs.all_candidate_sampler(case["true_classes"], int(case["num_true"]),
                                               int(case["num_sampled"]), bool(case["unique"]))
        np.testing.assert_array_equal(s, case["sampled_candidates"])
        np.testing.assert_array_equal(tec, case["true_expected_count"])
        np.testing.assert_array_equal(sec, case["sampled_expected_count"])
    # the sample of cases may not contain one; the semantics are checked regardless
    s, tec, sec = fs.all_candidate_sampler([[3, 1]], 2, 5, True)
    np.testing.assert_array_equal(s, np.arange(5))
    assert tec.shape == (1, 2) and (tec == 1).all() and (sec == 1).all()
    assert tec.dtype == np.float32 and sec.dtype == np.float32
