"""Kernels behind the argument checks of ``_validate.py`` (private).

They read, never write, and exist because the equivalent numpy expressions are several
times slower on the arrays a training step checks: a pairwise ``x.sum()`` over a whole
(batch, dim) input is a noticeable part of the step
(docs/performance.md#small-loops-and-argument-checks).
"""
import numpy as np
from numba import njit

from ._jitcache import guard_caches


@njit(cache=True, fastmath={"reassoc"})
def _nonfinite_probe(flat):
    """``sum(flat * 0)``: 0 when every value is finite, NaN otherwise (``inf * 0`` and
    ``NaN * 0`` are NaN). Reassociation only -- no assumption about NaN or infinity -- so
    the loop vectorises and the NaN survives."""
    acc = 0.0
    for i in range(flat.size):
        acc += flat[i] * 0.0
    return acc


@njit(cache=True)
def first_nonfinite(flat):
    """Index of the first NaN or infinity in the 1-D array ``flat``, or -1."""
    if _nonfinite_probe(flat) == 0.0:
        return -1
    for i in range(flat.size):
        if not np.isfinite(flat[i]):
            return i
    return -1


@njit(cache=True)
def min_max(flat):
    """``(min, max)`` of a non-empty 1-D integer array in one pass."""
    lo = flat[0]
    hi = flat[0]
    for i in range(1, flat.size):
        v = flat[i]
        lo = min(lo, v)
        hi = max(hi, v)
    return lo, hi


@njit(cache=True)
def first_not_positive_finite(flat):
    """Index of the first entry of ``flat`` that is not a finite positive number, or -1."""
    for i in range(flat.size):
        v = flat[i]
        if not (v > 0 and v < np.inf):     # NaN fails both comparisons
            return i
    return -1


guard_caches(globals())     # cache saves take a lock: _jitcache.py
