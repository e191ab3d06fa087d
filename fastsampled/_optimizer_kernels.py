"""Row updates of the sparse optimizers (private kernels).

Two kernels serve SGD, Adagrad and lazy Adam, so a process compiles two functions per dtype:

* ``update_rows`` computes the new value of every touched param row and slot row into scratch
  buffers (nothing in the param or the slots is written) and returns how many of the new values
  are not finite;
* ``commit_rows`` copies the scratch rows back into the param and slot rows, which the public
  layer calls only once every shard's update came back clean.

(Committing inside ``update_rows`` when the count is 0 would save one call per step but a
second ``prange`` loop there makes it much slower to compile: docs/performance.md#compile-time.)

Arguments are 2-D: a 1-D param (biases) arrives as an ``(n, 1)`` view. ``rows`` index the
shard, ``pos`` the matching rows of ``grad`` and of the scratch buffers. ``rows`` are unique
(the public layer checked the ids are strictly increasing), so each ``prange`` iteration owns
its param and slot rows: no races. Scalars arrive in the param's dtype, already combined
(``decay = lr * weight_decay``, Adam's bias-corrected ``lr_t`` ...), so float32 params are
updated in float32 arithmetic. Nothing here validates. Subnormal values are flushed to zero
(FTZ/DAZ for each task, ``_fpenv``), as in TensorFlow: Adam's ``g * g`` of a tiny gradient
would otherwise be a subnormal ``v``, slow on Intel cores in every later step.
"""
import math

from numba import njit, prange

from ._fpenv import ftz_enter, ftz_exit
from ._jitcache import guard_caches
from ._rng import PRANGE_ONLY

SGD = 0
ADAGRAD = 1
ADAM = 2

# "contract" lets LLVM fuse a*b+c; "nnan"/"ninf" are deliberately absent: they would let it
# fold away the finiteness check that guards the commit. error_model="numpy" (x/0 gives inf,
# which the check then counts) drops the ZeroDivisionError branch that stops vectorisation.
_FASTMATH = {"contract", "arcp"}
_CHUNK = 64     # rows a parallel task updates (the FP mode is set once a task)


@njit(parallel=PRANGE_ONLY, cache=True, fastmath=_FASTMATH, error_model="numpy")
def update_rows(kind, param, s0, s1, rows, pos, grad, out_p, out_s0, out_s1, hp):
    """New param/slot rows of ``param[rows]`` into ``out_*[pos]``; returns how many entries
    (of ``K * dim``) have a non-finite new param or slot value.

    ``hp`` holds ``(lr, decay, eps, b1, cb1, b2, cb2)`` in the param's dtype (one small array
    rather than seven scalar arguments: cheaper to pass). Every kind first applies the
    decoupled weight decay ``w -= decay * w`` (skipped when ``decay == 0``), then its step:

    * SGD: ``w -= lr g`` (``s*``, ``out_s*``, ``eps``, ``b*``, ``cb*`` unused);
    * ADAGRAD (``s0`` accumulator): ``a += g g; w -= lr g / (sqrt(a) + eps)``;
    * ADAM (``s0`` m, ``s1`` v, ``lr`` the bias-corrected ``lr_t``, ``cb1 = 1 - b1``,
      ``cb2 = 1 - b2``): ``m = b1 m + cb1 g; v = b2 v + cb2 g g; w -= lr m / (sqrt(v) + eps)``.

    Unused arrays may be any array of the param's type (they are not touched).
    """
    lr = hp[0]
    decay = hp[1]
    eps = hp[2]
    b1 = hp[3]
    cb1 = hp[4]
    b2 = hp[5]
    cb2 = hp[6]
    # 2-D indexing throughout: row views (param[r]) would cost reference-count updates per row
    dim = param.shape[1]
    bad = 0
    nchunks = (rows.size + _CHUNK - 1) // _CHUNK
    for c in prange(nchunks):
        fpenv = ftz_enter()     # flush-to-zero, as TensorFlow (see _fpenv); once a chunk
        nb = 0
        for k in range(c * _CHUNK, min(rows.size, (c + 1) * _CHUNK)):
            r = rows[k]
            i = pos[k]
            if kind == SGD:
                for j in range(dim):
                    x = param[r, j]
                    if decay != 0:
                        x -= decay * x
                    x -= lr * grad[i, j]
                    out_p[i, j] = x
                    if not math.isfinite(x):
                        nb += 1
            elif kind == ADAGRAD:
                for j in range(dim):
                    x = param[r, j]
                    if decay != 0:
                        x -= decay * x
                    g = grad[i, j]
                    acc = s0[r, j] + g * g
                    x -= lr * g / (math.sqrt(acc) + eps)
                    out_p[i, j] = x
                    out_s0[i, j] = acc
                    if not (math.isfinite(x) & math.isfinite(acc)):
                        nb += 1
            else:
                for j in range(dim):
                    x = param[r, j]
                    if decay != 0:
                        x -= decay * x
                    g = grad[i, j]
                    m = b1 * s0[r, j] + cb1 * g
                    v = b2 * s1[r, j] + cb2 * (g * g)
                    x -= lr * m / (math.sqrt(v) + eps)
                    out_p[i, j] = x
                    out_s0[i, j] = m
                    out_s1[i, j] = v
                    if not (math.isfinite(x) & math.isfinite(m) & math.isfinite(v)):
                        nb += 1
        bad += nb
        ftz_exit(fpenv)
    return bad


@njit(parallel=PRANGE_ONLY, cache=True)
def commit_rows(nslots, param, s0, s1, rows, pos, out_p, out_s0, out_s1):
    """``param[rows] = out_p[pos]`` and likewise for the first ``nslots`` slots."""
    dim = param.shape[1]
    for k in prange(rows.size):
        r = rows[k]
        i = pos[k]
        for j in range(dim):
            param[r, j] = out_p[i, j]
        if nslots > 0:
            for j in range(dim):
                s0[r, j] = out_s0[i, j]
        if nslots > 1:
            for j in range(dim):
                s1[r, j] = out_s1[i, j]


guard_caches(globals())     # cache saves take a lock: _jitcache.py
