"""Expected counts and accidental hits (private): TensorFlow's arithmetic on given candidates.

``expected_count`` is the formula every sampler applies to its single-draw probabilities (see
docs/semantics.md#expected-counts); ``compute_accidental_hits`` finds the labels among the
candidates (docs/semantics.md#accidental-hits). Neither draws anything. Both are public through
``fastsampled.samplers``.
"""
import numpy as np

from ._sampler_kernels import expected_counts, last_positions
from ._validate import INT64_MAX, as_id_array, as_int_at_most, as_true_classes

FLT_MAX = np.float32(np.finfo(np.float32).max)


def expected_count(p, num_tries, num_sampled):
    """TensorFlow's expected count of candidates with single-draw probability ``p``.

    Parameters
    ----------
    p : array_like of float32
        Single-draw probabilities.
    num_tries : int
        Number of draws the call made (``num_sampled`` unless unique draws were rejected).
    num_sampled : int
        Number of candidates returned.

    Returns
    -------
    ndarray of float32, same shape as ``p``
        ``p * num_sampled`` if ``num_tries == num_sampled`` else ``-expm1(num_tries *
        log1p(-p))``, evaluated in float32.
    """
    p = np.ascontiguousarray(np.asarray(p, dtype=np.float32))
    out = np.empty(p.size, np.float32)
    num_tries = as_int_at_most(num_tries, "num_tries", 0, INT64_MAX)
    num_sampled = as_int_at_most(num_sampled, "num_sampled", 0, INT64_MAX)
    expected_counts(p.reshape(-1), num_tries, num_sampled, out)
    return out.reshape(p.shape)


def compute_accidental_hits(true_classes, sampled_candidates, num_true):
    """Find true classes among the sampled candidates (``tf.nn.compute_accidental_hits``).

    For every ``(i, j)`` in row-major order whose label ``true_classes[i, j]`` occurs in
    ``sampled_candidates``, emit ``(i, k, -FLT_MAX)`` where ``k`` is the **last** position of
    that value in ``sampled_candidates`` (earlier duplicates are not reported, as in TF).
    Values are only compared, never range-checked, as in TensorFlow: any int64 matches,
    negative ones included.

    Parameters
    ----------
    true_classes : array_like of int, shape (batch, num_true)
        Labels (int32/int64; 1-D accepted when num_true == 1).
    sampled_candidates : array_like of int, shape (num_sampled,)
        Candidates, e.g. a sampler's first output.
    num_true : int
        Columns of ``true_classes``.

    Returns
    -------
    indices : ndarray of int32, shape (H,)
        Row of each hit.
    ids : ndarray of int64, shape (H,)
        Position in ``sampled_candidates`` of each hit.
    weights : ndarray of float32, shape (H,)
        ``-FLT_MAX`` for every hit.

    Examples
    --------
    >>> import fastsampled as fs
    >>> idx, ids, w = fs.compute_accidental_hits([[1], [3]], [3, 1, 3], 1)
    >>> idx.tolist(), ids.tolist()
    ([0, 1], [1, 2])
    """
    tc, num_true = as_true_classes(true_classes, num_true, max_num_true=INT64_MAX)
    s = as_id_array(sampled_candidates, "sampled_candidates")
    if s.ndim != 1:
        raise ValueError(f"sampled_candidates must be 1-D, got shape {s.shape}")
    cols = np.empty(tc.size, np.int64)
    last_positions(tc.reshape(-1), s, cols)
    hits = np.flatnonzero(cols >= 0)
    rows = (hits // num_true).astype(np.int32)
    return rows, cols[hits], np.full(hits.size, -FLT_MAX, np.float32)
