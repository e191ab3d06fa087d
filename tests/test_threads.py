"""Same seed, same numbers, whatever NUMBA_NUM_THREADS is.

Kernels split work into fixed-size blocks whose random streams and partial sums depend on
the block, not the thread, so draws and loss/gradient bits must not change with the number
of threads. Each setting runs in a fresh interpreter (the thread count is fixed at import).
"""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.kernel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import hashlib
import numba
import numpy as np
import fastsampled as fs

def h(*arrays):
    m = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        m.update(str((a.dtype.str, a.shape)).encode())
        m.update(a.tobytes())
    return m.hexdigest()[:24]

out = {}
rng = np.random.default_rng(0)

w = rng.pareto(1.0, size=200_000)           # > 1 block of the parallel weight summary
w[rng.random(w.size) < 0.2] = 0.0
table = fs.AliasTable(w)
out["alias_total"] = repr(table.total)
out["alias_table"] = h(table.table)
out["alias_draws"] = h(table.sample(10**6, seed=5))
out["alias_draws_stream"] = h(table.sample(3000, seed=5, stream=9))

lu = fs.LogUniformSampler(100_000, seed=11)
out["log_uniform"] = h(*[x for _ in range(3) for x in lu(rng.integers(0, 1000, (4, 2)), 2, 5000,
                                                           False)])
out["log_uniform_unique"] = h(*[x for _ in range(3) for x in lu([[1, 2]], 2, 3000, True)])

fu = fs.FixedUnigramSampler(50_000, unigrams=rng.integers(0, 100, 50_000).astype(float),
                            distortion=0.75, num_reserved_ids=0, seed=3)
out["fixed_unigram_unique"] = h(*[x for _ in range(3) for x in fu([[7]], 1, 4000, True)])
out["fixed_unigram_tries"] = fu.last_num_tries

un = fs.UniformSampler(10**6, seed=4)
out["uniform"] = h(*un([[1]], 1, 20_000, False))
lg = fs.LearnedUnigramSampler(1000, seed=5)
lg.update(rng.integers(0, 50, 5000))
out["learned"] = h(*lg([[3]], 1, 20_000, False))

C, D, B, S, T = 3000, 16, 300, 700, 2
W = rng.normal(size=(C, D)).astype(np.float32)
b = rng.normal(size=C).astype(np.float32)
x = rng.normal(size=(B, D)).astype(np.float32)
labels = rng.integers(0, C, size=(B, T))
sv = fs.log_uniform_candidate_sampler(labels, T, S, False, C, seed=8)
for name, f in (("ssm", fs.sampled_softmax_loss_and_grads), ("nce", fs.nce_loss_and_grads)):
    loss, g = f(W, b, labels, x, S, C, num_true=T, sampled_values=sv,
                remove_accidental_hits=True)
    out[name] = h(loss, g.inputs, g.ids, g.weights, g.biases)
labels2 = rng.integers(0, C, size=(1100, 1))
x2 = rng.normal(size=(1100, D)).astype(np.float32)
sv2 = fs.uniform_candidate_sampler(labels2, 1, 200, True, C, seed=9)
for name, f in (("ssm_small_s", fs.sampled_softmax_loss_and_grads),
                ("nce_small_s", fs.nce_loss_and_grads)):
    loss, g = f(W, b, labels2, x2, 200, C, sampled_values=sv2, remove_accidental_hits=True)
    out[name] = h(loss, g.inputs, g.ids, g.weights, g.biases)
loss, g = fs.sampled_softmax_loss_and_grads(W.astype(np.float64), b.astype(np.float64),
                                            labels, x.astype(np.float64), 900, C, num_true=T,
                                            seed=12, partition_strategy="div")
out["ssm64_default_sampler"] = h(loss, g.inputs, g.ids, g.weights, g.biases)

print("THREADS", numba.get_num_threads())
for k in sorted(out):
    print(k, out[k])
"""


def _run(num_threads):
    env = dict(os.environ)
    env["NUMBA_NUM_THREADS"] = str(num_threads)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == f"THREADS {num_threads}", lines[0]
    return lines[1:]


def test_same_results_for_any_thread_count():
    one = _run(1)
    assert len(one) == 15
    for n in (2, 3):   # 3 also oversubscribes a 2-core runner: other schedules
        other = _run(n)
        for a, b in zip(one, other):
            assert a == b, f"NUMBA_NUM_THREADS=1 gives {a!r}, {n} gives {b!r}"


@pytest.mark.skipif(os.environ.get("NUMBA_BOUNDSCHECK", "").strip() in ("", "0"),
                    reason="only meaningful in the NUMBA_BOUNDSCHECK=1 run")
def test_boundscheck_is_really_on():
    """Guards the bounds-checked CI run: the kernels it loads must really be checked (numba's
    cache ignores NUMBA_BOUNDSCHECK; conftest.py gives such runs their own cache dir)."""
    import numpy as np
    from fastsampled import _sampler_kernels

    tree = np.zeros(4, np.int64)
    counts = np.zeros(4, np.int64)
    with pytest.raises(IndexError):
        _sampler_kernels.fenwick_add(tree, counts, np.array([4], np.int64))


def test_a_missing_threadpoolctl_is_said_once_not_silently_slow(monkeypatch):
    """Without threadpoolctl the BLAS inside the kernels cannot be limited: a warning says
    so (once: the lookup is cached), instead of a silent slowdown."""
    import sys
    import warnings
    from fastsampled import _blas
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)     # import fails
    monkeypatch.setattr(_blas, "_funcs", None)
    with pytest.warns(RuntimeWarning, match="threadpoolctl"):
        assert _blas._numba_blas_funcs() == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _blas._numba_blas_funcs() == []                  # cached, no second warning
