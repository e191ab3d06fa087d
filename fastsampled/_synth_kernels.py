"""Kernels of the synthetic extreme-classification task (private)."""
import numpy as np
from numba import njit, prange

from ._jitcache import guard_caches
from ._rng import PRANGE_ONLY, bits, stream_key, uniform01

_SQRT3 = np.sqrt(3.0)


@njit(parallel=PRANGE_ONLY, cache=True)
def teacher_examples(teacher_key, noise_key, labels, noise, out):
    """``out[i] = u[labels[i]] + noise * eps_i``: the hidden prototype of the label plus noise.

    The prototype ``u[c]`` of class c has independent coordinates of mean 0 and variance
    1/D (uniform: cheap to draw), a pure function of ``(teacher_key, c)``, so it is never
    stored (10^8 classes cost nothing); the noise likewise."""
    B, D = out.shape
    inv = _SQRT3 / np.sqrt(D)
    for i in prange(B):
        ck = stream_key(teacher_key, np.uint64(labels[i]))
        ek = stream_key(noise_key, np.uint64(i))
        for j in range(D):
            u = 2.0 * uniform01(bits(ck, np.uint64(j))) - 1.0
            e = 2.0 * uniform01(bits(ek, np.uint64(j))) - 1.0
            out[i, j] = (u + noise * e) * inv


guard_caches(globals())     # cache saves take a lock: _jitcache.py
