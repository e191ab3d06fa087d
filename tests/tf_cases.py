"""Loading and comparing the TensorFlow reference cases in ``tests/data/tf_cases``.

See ``tests/data/tf_cases/INDEX.md`` for the keys of each case and the tolerance rule.
"""

import os

import numpy as np

CASE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tf_cases")


def case_files(kind=None):
    """Sorted paths of the case files, optionally only those of one ``kind``.

    Parameters
    ----------
    kind : {None, "loss", "sampler", "accidental_hits"}

    Returns
    -------
    list of str
    """
    paths = sorted(
        os.path.join(CASE_DIR, name) for name in os.listdir(CASE_DIR) if name.endswith(".npz"))
    if kind is None:
        return paths
    return [p for p in paths if load_case(p)["kind"] == kind]


def case_id(path):
    """Readable test id of a case file (its name without ``.npz``)."""
    return os.path.splitext(os.path.basename(path))[0]


def load_case(path):
    """Load one case as a dict; 0-d arrays become Python scalars or str."""
    case = {}
    with np.load(path) as data:
        for key in data.files:
            value = data[key]
            case[key] = value.item() if value.ndim == 0 else value
    return case


def shards_from_case(case):
    """Weights and biases exactly as TensorFlow was given them.

    Returns
    -------
    weight_shards : list of ndarray
        ``[w_shard_0, ..., w_shard_{num_shards-1}]``.
    biases : list of ndarray or ndarray
        ``[b_shard_0, ...]`` if ``biases_sharded`` else the single ``biases`` array.
    """
    num_shards = int(case["num_shards"])
    weight_shards = [case[f"w_shard_{p}"] for p in range(num_shards)]
    if case["biases_sharded"]:
        biases = [case[f"b_shard_{p}"] for p in range(num_shards)]
    else:
        biases = case["biases"]
    return weight_shards, biases


def assert_close_tf(actual, expected, dtype, err_msg=""):
    """Assert INDEX.md's tolerance rule.

    Each finite element must satisfy ``|a - e| <= tol * max(|e|, max|E|)``, where
    ``max|E|`` is the largest finite magnitude in ``expected`` and tol is 1e-5
    for float32 and 1e-10 for float64. Non-finite entries (nan, +inf, -inf)
    must occur at exactly the same places with the same values.

    Parameters
    ----------
    actual, expected : array_like of the same shape
    dtype : numpy dtype or str
        The computation dtype that selects the tolerance.
    err_msg : str
        Prefix for the failure message.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (
        f"{err_msg}: shape {actual.shape} != expected {expected.shape}")
    tol = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}[np.dtype(dtype)]

    finite_e = np.isfinite(expected)
    finite_a = np.isfinite(actual)
    same_pattern = (finite_a == finite_e) & (
        finite_e | (np.isnan(actual) & np.isnan(expected)) | (actual == expected))
    assert same_pattern.all(), (
        f"{err_msg}: non-finite pattern differs at {np.argwhere(~same_pattern).tolist()}")
    if not finite_e.any():
        return
    scale = np.max(np.abs(expected[finite_e]))
    bound = tol * np.maximum(np.abs(expected[finite_e]), scale)
    err = np.abs(actual[finite_e] - expected[finite_e])
    bad = err > bound
    assert not bad.any(), (
        f"{err_msg}: {int(bad.sum())} of {bad.size} elements out of tolerance; "
        f"worst err/bound = {np.max(err / bound):.3g}")
