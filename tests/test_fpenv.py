"""Subnormal numbers are flushed to zero in the training kernels, as TensorFlow's CPU kernels do.

TensorFlow runs its CPU ops with FTZ/DAZ set (``port::ScopedFlushDenormal``). The expected
values below are what TensorFlow 2.21 (tensorflow-cpu, x86-64) returned for the same problems
with ``tf.nn.sampled_softmax_loss`` under ``tf.GradientTape``: 0 wherever an intermediate is
subnormal. Before the flush, fastsampled returned 1.34e-38 and 1.49e-41 there -- harmless as
values, but on Intel cores every subnormal operation takes a microcode assist, and a confident
head's steps had slowed down 3-4x. The caller's floating-point mode must never change.
"""
import subprocess
import sys

import numpy as np
import pytest

import fastsampled as fs
from fastsampled import _fpenv

pytestmark = pytest.mark.kernel

x86_only = pytest.mark.skipif(not _fpenv.X86_64, reason="FTZ/DAZ via MXCSR is x86-64 only")
TINY32 = np.finfo(np.float32).tiny


def _problem(bias4, w4):
    """label 0 (logit 0) and candidates 1, 2, 4 (logits 0, 0, ``bias4 + x.w4``), counts 1."""
    B, D, V = 2, 4, 8
    x = np.zeros((B, D), np.float32)
    x[:, 0] = 1.0
    W = np.zeros((V, D), np.float32)
    W[4] = w4
    b = np.zeros(V, np.float32)
    b[4] = bias4
    cand = np.array([1, 2, 4])
    sv = (cand, np.ones((B, 1)), np.ones(3))
    _, g = fs.sampled_softmax_loss_and_grads(W, b, np.zeros((B, 1), np.int64), x, 3, V,
                                             sampled_values=sv, remove_accidental_hits=False)
    return g, int(np.searchsorted(g.ids, 4))


def test_subnormal_softmax_gradient_is_zero_as_in_tensorflow():
    # p_4 = exp(-86.8) / 3 ~ 6.7e-39 per example: subnormal, flushed; TF: db_4 = 0, dW_4 = 0
    g, k = _problem(-86.8, np.zeros(4, np.float32))
    assert g.biases[k] == 0.0 and not g.weights[k].any()
    assert not g.inputs.any()
    # p_4 = exp(-86) / 3 ~ 1.49e-38 per example is normal and kept: TF db_4 = 2.9825194e-38
    g, k = _problem(-86.0, np.zeros(4, np.float32))
    np.testing.assert_allclose(g.biases[k], 2.9825194e-38, rtol=1e-6)


@x86_only
def test_subnormal_products_in_the_backward_are_zero_as_in_tensorflow():
    # d_inputs[:, 1] = p_4 * 1e-3 ~ 1.5e-41: a subnormal product inside the backward matrix
    # product (BLAS, under the kernels' FTZ mode); TF: d_inputs = 0 exactly
    g, k = _problem(-86.0, np.array([0, 1e-3, 0, 0], np.float32))
    assert not g.inputs.any()
    np.testing.assert_allclose(g.biases[k], 2.9825194e-38, rtol=1e-6)


@x86_only
def test_optimizer_slots_get_no_subnormals():
    w = np.zeros((3, 2), np.float32)
    opt = fs.Adam(lr=0.1)
    st = opt.init_state(w)
    # v = (1 - beta2) g^2 = 1e-3 * 1e-40: subnormal without FTZ
    opt.apply(w, [1], np.array([[1e-20, 1.0]], np.float32), st)
    v = st.slots["v"]
    assert v[1, 0] == 0.0 and v[1, 1] > 0
    assert not ((np.abs(v) < TINY32) & (v != 0)).any()


_CALLER = """
import numpy as np
from numba import njit, prange
import fastsampled as fs
from fastsampled import _fpenv


@njit(parallel=True)
def workers_mxcsr(n):
    out = np.zeros(n, np.int64)
    for t in prange(n):
        out[t] = _fpenv.mxcsr()
    return out


before = int(_fpenv.mxcsr())
# the first parallel call of the process starts Numba's worker threads, which inherit the
# floating-point mode of the thread that starts them: it must be the caller's, not FTZ
head = fs.SampledSoftmaxHead(1000, 16, num_sampled=20, optimizer="adam", seed=0)
x = np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32)
head.train_step(x, np.arange(64))
head.predict(x, 3)
fs.sampled_softmax_loss_and_grads(head.weights, head.biases, np.arange(64), x, 600, 1000,
                                  seed=1)          # several chunks of S: the other path
after = int(_fpenv.mxcsr())
subnormal = float(np.float32(1e-30) * np.float32(1e-9))
modes = sorted(set(int(m) for m in workers_mxcsr(64)))
print(before, after, subnormal, modes)
"""


def test_callers_floating_point_mode_is_restored():
    out = subprocess.run([sys.executable, "-c", _CALLER], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    before, after, subnormal, modes = out.stdout.strip().split(" ", 3)
    assert after == before
    assert float(subnormal) > 0            # this thread still computes subnormals
    modes = [int(m) for m in modes.strip("[]").split(",")]
    if _fpenv.X86_64:                      # and so does every Numba worker thread
        assert not any(m & int(_fpenv.FTZ_DAZ) for m in modes), modes


@x86_only
def test_ftz_enter_and_exit_round_trip():
    before = _fpenv.mxcsr()
    old = _fpenv.ftz_enter()
    inside = _fpenv.mxcsr()
    _fpenv.ftz_exit(old)
    assert old == before and inside == before | _fpenv.FTZ_DAZ and _fpenv.mxcsr() == before
