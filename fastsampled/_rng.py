"""Counter-based random numbers for the kernels (private).

Every random number is a pure function of ``(key, counter)``: the i-th draw of a stream
is ``mix64(key + i * GAMMA)`` -- SplitMix64's output sequence started at ``key``. Nothing
is shared between threads, so a kernel may compute any draw on any thread in any order and
the result does not depend on ``NUMBA_NUM_THREADS``.

``stream_key(seed, stream)`` derives an independent key per (seed, stream); samplers use
the stream to count their calls, so an object sampler gives new draws on every call while
a seed still reproduces the whole sequence (docs/architecture.md#randomness).
"""
import os

import numpy as np
from numba import njit

from ._jitcache import guard_caches

GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_S32 = np.uint64(32)
_ONE = np.uint64(1)
_TWO = np.uint64(2)
_STREAM_SALT = np.uint64(0xD1B54A32D192ED03)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53

_MASK64 = (1 << 64) - 1

# Numba's parallel options for every kernel: explicit ``prange`` loops only. The automatic
# parallelisation of numpy expressions is off: our array expressions are small, and each
# one it converts costs compile time (a large share of the loss kernels' first call:
# docs/performance.md#compile-time).
PRANGE_ONLY = {"prange": True, "comprehension": False, "setitem": False, "reduction": False,
               "numpy": False, "stencil": False, "fusion": False, "inplace_binop": False}


@njit(cache=True, inline="always")
def mix64(z):
    """SplitMix64 finaliser: a bijective avalanche of one uint64."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def mix64_array(z):
    """:func:`mix64` on a numpy uint64 array, with wrapping arithmetic (for numpy code that
    must draw the same numbers as the kernels)."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def stream_key(seed, stream):
    """Key of stream ``stream`` (uint64) under ``seed`` (uint64)."""
    return mix64(mix64(seed) + (stream + _ONE) * _STREAM_SALT)


@njit(cache=True, inline="always")
def bits(key, counter):
    """The ``counter``-th 64 random bits of the stream ``key`` (both uint64)."""
    return mix64(key + counter * GAMMA)


@njit(cache=True, inline="always")
def uniform01(r):
    """A double in [0, 1) from the top 53 bits of ``r``."""
    return np.float64(r >> _S11) * _INV53


@njit(cache=True, inline="always")
def pair(key, i):
    """Two independent 64-bit words for draw ``i`` (counters 2i and 2i+1)."""
    c = np.uint64(i) * _TWO
    return bits(key, c), bits(key, c + _ONE)


def normalize_seed(seed):
    """Turn a user seed into a uint64.

    ``None`` draws fresh entropy from the OS. Python ints (any size, negative too) are
    reduced modulo 2**64; numpy integers likewise; a ``np.random.Generator`` contributes one
    64-bit draw. Anything else is a ``TypeError``.
    """
    if seed is None:
        return np.uint64(int.from_bytes(os.urandom(8), "little"))
    if isinstance(seed, np.random.Generator):
        return np.uint64(int(seed.integers(0, 2**63)) * 2 + int(seed.integers(0, 2)))
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"seed must be an int, a numpy Generator or None, got {seed!r}")
    if isinstance(seed, (int, np.integer)):
        return np.uint64(int(seed) & _MASK64)
    raise TypeError(f"seed must be an int, a numpy Generator or None, got {type(seed).__name__}")


guard_caches(globals())     # cache saves take a lock: _jitcache.py
