"""Walker/Vose alias tables: O(V) build, O(1) draws, reproducible in parallel."""
import numpy as np

from ._alias_kernels import alias_draw, build_alias, weights_summary
from ._rng import normalize_seed, stream_key
from ._validate import INT64_MAX, as_id_array, as_int_at_most, check_range

MAX_CLASSES = 2**32 - 1


def _prepare_weights(weights, name="weights"):
    """Validate a weight vector and return ``(w, total, n_positive)``.

    Accepts float32/float64 (and integer counts, converted to float64) 1-D arrays; zeros are
    allowed; negative, NaN, inf or all-zero weights raise ``ValueError``.
    """
    w = np.asarray(weights)
    if w.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {w.shape}")
    if w.size == 0:
        raise ValueError(f"{name} must not be empty")
    if w.size > MAX_CLASSES:
        raise ValueError(f"{name} has {w.size} entries; at most {MAX_CLASSES} classes are supported")
    if w.dtype == np.bool_ or not (np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)):
        raise TypeError(f"{name} must be float32, float64 or integer counts, got dtype {w.dtype}")
    if w.dtype not in (np.float32, np.float64):
        w = w.astype(np.float64)
    w = np.ascontiguousarray(w)
    total, npos, first_neg, first_bad = weights_summary(w)
    if first_bad >= 0:
        raise ValueError(f"{name} must be finite; found {w[first_bad]} at index {first_bad}")
    if first_neg >= 0:
        raise ValueError(f"{name} must be non-negative; found {w[first_neg]} at index {first_neg}")
    if npos == 0:
        raise ValueError(f"{name} must have at least one positive entry (all {w.size} are zero)")
    if not np.isfinite(total):
        raise ValueError(f"{name} sum to {total}; scale them down")
    return w, float(total), int(npos)


class AliasTable:
    """Alias-method sampler over ``V`` classes with O(1) draws.

    Parameters
    ----------
    weights : array_like of shape (V,)
        Non-negative finite weights (float32, float64 or integer counts); need not sum to 1.
        Zero entries are never drawn. ``V`` may be up to 2**32 - 1.

    Notes
    -----
    The table takes 8 bytes per class (a packed uint64: 32-bit threshold, 32-bit alias), so
    10^8 classes cost 800 MB; the build needs another 8 bytes per class transiently. The
    weights array is kept by reference (not copied when it is already float32/float64 and
    contiguous) to answer :meth:`prob`. Draw ``i`` of a call is a pure function of
    ``(seed, stream, i)``, so results do not depend on the number of threads.

    Examples
    --------
    >>> import numpy as np, fastsampled as fs
    >>> table = fs.AliasTable(np.array([1.0, 0.0, 3.0]))
    >>> draws = table.sample(1000, seed=0)
    >>> sorted(set(draws.tolist()))
    [0, 2]
    >>> table.prob([0, 1, 2]).tolist()
    [0.25, 0.0, 0.75]
    """

    def __init__(self, weights):
        w, total, npos = _prepare_weights(weights)
        self._weights = w
        self.total = total
        self.num_positive = npos
        self.table = np.empty(w.size, np.uint64)
        build_alias(w, total, np.empty(w.size, np.float64), self.table)

    @property
    def num_classes(self):
        """Number of classes V."""
        return self.table.size

    def __len__(self):
        return self.table.size

    @property
    def nbytes(self):
        """Bytes held by the table itself (8 per class)."""
        return self.table.nbytes

    def sample(self, n, seed=None, stream=0, out=None):
        """Draw ``n`` class ids (int64) with replacement.

        Parameters
        ----------
        n : int
            Number of draws (at most ``2**63 - 1``).
        seed : int, numpy.random.Generator or None
            ``None`` takes fresh OS entropy; an int makes the draws reproducible.
        stream : int
            Independent sub-stream of ``seed`` (e.g. a step counter), in ``[0, 2**64)``.
        out : ndarray of int64, shape (n,), optional
            Buffer to fill.
        """

        n = as_int_at_most(n, "n", 0, INT64_MAX)
        stream = as_int_at_most(stream, "stream", 0, 2**64 - 1, "streams are 64-bit counters")
        if out is None:
            out = np.empty(n, np.int64)
        elif not (isinstance(out, np.ndarray) and out.dtype == np.int64 and out.shape == (n,)
                  and out.flags.c_contiguous):
            raise ValueError(f"out must be a contiguous int64 array of shape ({n},)")
        key = np.uint64(stream_key(normalize_seed(seed), np.uint64(stream)))
        alias_draw(self.table, key, np.uint64(0), out)
        return out

    def prob(self, ids):
        """Single-draw probability of each id.

        Parameters
        ----------
        ids : array_like of int
            Class ids in ``[0, num_classes)``, any shape.

        Returns
        -------
        ndarray of float64, same shape as ``ids``
            ``weights[id] / sum(weights)``.
        """

        ids = as_id_array(ids, "ids")
        check_range(ids, 0, self.num_classes, "ids")
        return self._weights[ids].astype(np.float64) / self.total

    def __repr__(self):
        return f"AliasTable(num_classes={self.num_classes}, num_positive={self.num_positive})"
