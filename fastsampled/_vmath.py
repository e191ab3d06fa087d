"""Vectorisable exp and log1p over float64 buffers (private).

LLVM cannot vectorise loops that call libm, and the softmax / sigmoid of a step evaluates
``B * (T + S)`` exponentials: with scalar ``exp`` that alone cost more than the matrix
products. These versions are plain arithmetic (range reduction, polynomial, exponent bits),
accurate to a few ulp of float64, and vectorise. They use ``fastmath={'contract'}`` (fused
multiply-add) only: no assumption about NaN or infinity.
"""
import numpy as np
from numba import njit

_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10
_LO = -708.0   # below: result 0 (true value < 1e-307)
_HI = 709.0    # above: inf
# 1/n! for n = 0..13
_C = (1.0, 1.0, 0.5, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
      1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800)


_MAGIC = 4503599627370496.0 + 1023.0  # 2**52 + exponent bias


@njit(cache=True, fastmath={"contract"})
def vexp(z, out, scratch):
    """``out[i] = exp(z[i])`` for float64 buffers; ``scratch`` is float64 of the same size.

    ``out`` may be ``z`` but should not be: the loops vectorise only for distinct buffers
    (LLVM's runtime overlap check falls back to scalar code). ``2**k`` is built from the bits of ``k + 2**52 + 1023``
    shifted into the exponent field, which avoids float -> int64 conversions (not vectorisable
    without AVX-512). NaN gives NaN, +inf gives inf, anything below -708 gives 0.
    """
    n = z.size
    for i in range(n):
        v = z[i]
        vc = min(max(v, _LO), _HI)
        k = np.floor(vc * _LOG2E + 0.5)
        r = (vc - k * _LN2_HI) - k * _LN2_LO
        p = _C[13]
        p = p * r + _C[12]
        p = p * r + _C[11]
        p = p * r + _C[10]
        p = p * r + _C[9]
        p = p * r + _C[8]
        p = p * r + _C[7]
        p = p * r + _C[6]
        p = p * r + _C[5]
        p = p * r + _C[4]
        p = p * r + _C[3]
        p = p * r + _C[2]
        p = p * r + _C[1]
        p = p * r + _C[0]
        if v < _LO:
            p = 0.0
        if v > _HI:
            p = np.inf
        if v != v:
            p = v
        out[i] = p
        scratch[i] = k + _MAGIC
    bits = scratch.view(np.int64)
    for i in range(n):
        bits[i] = bits[i] << 52
    for i in range(n):
        out[i] = out[i] * scratch[i]


@njit(cache=True)
def sum_exp_shifted(z, m, shifted, e, scratch):
    """``sum_j exp(z[j] - m)`` for a 1-D ``z`` (any float dtype); leaves ``e[j] = exp(z[j] -
    m)``. ``shifted``, ``e`` and ``scratch`` are distinct float64 buffers of ``z``'s size."""
    n = z.size
    for j in range(n):
        shifted[j] = z[j] - m
    vexp(shifted, e, scratch)
    acc = 0.0
    for j in range(n):
        acc += e[j]
    return acc


@njit(cache=True, fastmath={"contract"})
def vlog1p_small(e, out):
    """``out[i] = log1p(e[i])`` for ``0 <= e[i] <= 1``: ``2 atanh(e / (2 + e))`` by its series."""
    n = e.size
    for i in range(n):
        s = e[i] / (2.0 + e[i])
        t = s * s
        p = 1.0 / 37
        for m in range(17, -1, -1):
            p = p * t + 1.0 / (2 * m + 1)
        out[i] = 2.0 * s * p
