"""Vectorisable exp and log1p over float64 and float32 buffers (private).

LLVM cannot vectorise loops that call libm, and the softmax / sigmoid of a step evaluates
``B * (T + S)`` exponentials: with scalar ``exp`` that alone cost more than the matrix
products. These versions are plain arithmetic (range reduction, polynomial, exponent bits),
accurate to a few ulp of float64, and vectorise. They use ``fastmath={'contract'}`` (fused
multiply-add) only: no assumption about NaN or infinity.

The float32 versions (16 lanes of AVX-512 instead of 8, shorter polynomials) are accurate to
about 2 ulp of float32, the precision TensorFlow computes a float32 softmax in;
:func:`exp_into` and :func:`log1p_small_into` pick the version by the buffers' dtype.
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

from ._jitcache import guard_caches

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


_F = np.float32
_LOG2E_F = _F(1.4426950408889634)
_LN2_HI_F = _F(0.693359375)             # Cody-Waite split of ln 2 (8 significant bits)
_LN2_LO_F = _F(-2.12194440e-4)
_LO_F = _F(-87.0)       # below: 0 (the true value is under float32's normal range)
_HI_F = _F(88.0)        # above: inf (the true value is within 1.5x of FLT_MAX there)
_C_F = tuple(_F(c) for c in _C[:8])     # 1/n! for n = 0..7 (truncation error < 1e-8)
_BIAS_F = np.int32(127)
_S23 = np.int32(23)


@njit(cache=True, fastmath={"contract"})
def vexp32(z, out, scratch):
    """``out[i] = exp(z[i])`` for float32 buffers; ``scratch`` is any float64 buffer with at
    least ``z.size / 2`` entries (its memory holds the exponent bits). NaN gives NaN, +inf
    gives inf, as does anything above 88 (2**128 is not a float32 exponent); anything below
    -87 gives 0 (no subnormals). For the softmax, where every argument is <= 0."""
    n = z.size
    two_k = scratch.view(np.int32)[:n]
    for i in range(n):
        v = z[i]
        vc = min(max(v, _LO_F), _HI_F)
        k = np.floor(vc * _LOG2E_F + _F(0.5))
        r = (vc - k * _LN2_HI_F) - k * _LN2_LO_F
        p = _C_F[7]
        p = p * r + _C_F[6]
        p = p * r + _C_F[5]
        p = p * r + _C_F[4]
        p = p * r + _C_F[3]
        p = p * r + _C_F[2]
        p = p * r + _C_F[1]
        p = p * r + _C_F[0]
        if v < _LO_F:
            p = _F(0.0)
        if v > _HI_F:
            p = _F(np.inf)
        if v != v:
            p = v
        out[i] = p
        two_k[i] = (np.int32(k) + _BIAS_F) << _S23
    scale = two_k.view(np.float32)
    for i in range(n):
        out[i] = out[i] * scale[i]


@njit(cache=True, fastmath={"contract"})
def vlog1p_small32(e, out):
    """float32 :func:`vlog1p_small` (``0 <= e[i] <= 1``): 8 terms of the atanh series."""
    n = e.size
    for i in range(n):
        s = e[i] / (_F(2.0) + e[i])
        t = s * s
        p = _F(1.0 / 17)
        for m in range(7, -1, -1):
            p = p * t + _F(1.0 / (2 * m + 1))
        out[i] = _F(2.0) * s * p


def exp_into(z, out, scratch):
    """``out = exp(z)`` in the dtype of ``z`` and ``out`` (both float32 or both float64);
    ``scratch`` float64 of ``z``'s size. Numba-only dispatcher."""
    raise NotImplementedError("exp_into is only callable from Numba-compiled code")


@overload(exp_into, jit_options={"cache": True})
def _exp_into(z, out, scratch):
    if z.dtype == types.float32:
        return lambda z, out, scratch: vexp32(z, out, scratch)
    return lambda z, out, scratch: vexp(z, out, scratch)


_TINY32 = float(np.finfo(np.float32).tiny)     # smallest normal float32, 1.18e-38
_TINY64 = float(np.finfo(np.float64).tiny)     # smallest normal float64, 2.2e-308


def flush_to(v, like):
    """``v`` (a float64 value) rounded to the dtype of the array ``like``, with 0 for any
    value smaller in magnitude than that dtype's smallest normal number (what TensorFlow's
    flush-to-zero mode gives; NaN stays NaN). Numba-only dispatcher.

    Subnormal operands and results make x86 arithmetic take a microcode assist on Intel
    cores (~100 cycles an operation): a softmax gradient full of them (confident examples,
    probabilities near 1e-38 times 1/B) made a float32 head step several times slower there
    (docs/performance.md#subnormal-numbers). On
    x86-64 the kernels also run with FTZ/DAZ set (``_fpenv``), which flushes the products of
    the backward pass too; this explicit flush keeps the gradient itself the same elsewhere.
    """
    raise NotImplementedError("flush_to is only callable from Numba-compiled code")


@overload(flush_to, jit_options={"cache": True})
def _flush_to(v, like):
    if like.dtype == types.float32:
        def impl32(v, like):
            return np.float32(0.0) if abs(v) < _TINY32 else np.float32(v)
        return impl32

    def impl64(v, like):
        return 0.0 if abs(v) < _TINY64 else np.float64(v)
    return impl64


def log1p_small_into(e, out):
    """``out = log1p(e)`` for ``0 <= e <= 1`` in their dtype. Numba-only dispatcher."""
    raise NotImplementedError("log1p_small_into is only callable from Numba-compiled code")


@overload(log1p_small_into, jit_options={"cache": True})
def _log1p_small_into(e, out):
    if e.dtype == types.float32:
        return lambda e, out: vlog1p_small32(e, out)
    return lambda e, out: vlog1p_small(e, out)


guard_caches(globals())     # cache saves take a lock: _jitcache.py
