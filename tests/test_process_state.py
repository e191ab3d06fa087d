"""fastsampled leaves the process as it found it: no global setting outlives a call.

A library call may change a process-wide setting for its own duration -- the kernels run the
BLAS that Numba calls on one thread, ``Word2Vec.train`` runs on ``workers`` Numba threads --
but must restore it before it returns, and ``import fastsampled`` must change nothing at all:
the host program (a PyTorch training script, a server) owns these settings. Checked here,
before and after ``import fastsampled`` and each public entry point that runs kernels:

* Numba's thread count (``numba.get_num_threads()``);
* the thread count of every BLAS / OpenMP library loaded (``threadpoolctl.threadpool_info()``,
  ``num_threads`` per library ``filepath``), and torch's own thread counts for the adapter;
* ``os.environ``.

Each run starts a fresh interpreter (pytest has already imported fastsampled), with
``NUMBA_NUM_THREADS=2``, once with the process defaults and once with non-default thread
counts set first (Numba 1 thread, BLAS 1, or 2 where its default is 1): a library that
leaves its own setting behind fails the first, one that "restores" the default instead of the
caller's value fails the second. ``Word2Vec.train`` always runs with a ``workers`` different
from the current Numba thread count. The dependencies (numpy, Numba's thread pool, SciPy's
BLAS) are loaded before the first snapshot, so every library is in it from the start.

glibc's allocator is process state too: ``mallopt`` thresholds apply to every allocation of
the process and cannot be scoped to a call, so fastsampled must not call it (not even at
import). Checked in the sources (no ``mallopt`` name, attribute or symbol string in code) and
in a fresh interpreter (no ctypes lookup of the symbol during import and a training step).
The floating-point environment is checked in tests/test_fpenv.py.
"""
import functools
import json
import os
import pathlib
import platform
import subprocess
import sys
import tokenize

import pytest

pytestmark = pytest.mark.kernel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = pathlib.Path(REPO) / "fastsampled"
NUM_THREADS = 2          # NUMBA_NUM_THREADS of the child interpreters

# argv: mode ("default" or "changed"), with_torch ("0" or "1"). Prints one JSON line:
# {"expected_numba_threads": n, "steps": [[name, state_before, state_after, error], ...]}
SCRIPT = r"""
import json
import os
import sys
import traceback

MODE, WITH_TORCH = sys.argv[1], sys.argv[2] == "1"
if WITH_TORCH:
    import torch        # first, as in a training script (its OpenMP runtime is the one used)
import numpy as np
import numba
import scipy.linalg.cython_blas  # noqa: F401  (the BLAS that Numba's np.dot calls)
from threadpoolctl import threadpool_info, threadpool_limits

if MODE == "changed":
    numba.set_num_threads(1)
    blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    if blas:
        threadpool_limits(limits=1 if min(blas) > 1 else 2, user_api="blas")   # never undone


def state():
    s = {"numba_threads": numba.get_num_threads(),   # also starts Numba's thread pool
         "threadpools": {i["filepath"]: [i["user_api"], i["num_threads"]]
                         for i in threadpool_info()},
         "environ": dict(os.environ)}
    if WITH_TORCH:
        s["torch_threads"] = [torch.get_num_threads(), torch.get_num_interop_threads()]
    return s


expected = numba.get_num_threads()
steps = []


def step(name, fn):
    before = state()
    error = None
    try:
        fn()
    except BaseException:
        error = traceback.format_exc()
    steps.append([name, before, state(), error])


ns = {}
rng = np.random.default_rng(0)
x = rng.normal(size=(8, 16)).astype(np.float32)
y = np.arange(8)


def do_import():
    import fastsampled
    ns["fs"] = fastsampled
    if WITH_TORCH:
        import fastsampled.torch  # noqa: F401


def make_head():
    ns["head"] = ns["fs"].SampledSoftmaxHead(1000, 16, num_sampled=20, seed=0)


step("import fastsampled", do_import)
step("SampledSoftmaxHead()", make_head)
if WITH_TORCH:
    def torch_forward_backward():
        loss_fn = ns["fs"].torch.SampledSoftmaxLoss(ns["head"])
        hidden = torch.from_numpy(x.copy()).requires_grad_()
        loss = loss_fn(hidden, torch.from_numpy(y))
        loss.backward()
        assert hidden.grad is not None and ns["head"].step == 1

    step("SampledSoftmaxLoss forward+backward", torch_forward_backward)
else:
    def w2v_build_vocab():
        sentences = [[f"w{(7 * i + 3 * j) % 29}" for j in range(12)] for i in range(200)]
        # workers differs from the current thread count: train must put that count back
        workers = 1 if numba.get_num_threads() != 1 else 2
        model = ns["fs"].Word2Vec(vector_size=8, window=2, min_count=1, epochs=1,
                                  workers=workers, seed=1, progress=False)
        assert model.workers == workers != numba.get_num_threads()
        ns["w2v"] = model.build_vocab(sentences=sentences)

    step("SampledSoftmaxHead.train_step", lambda: ns["head"].train_step(x, y))
    step("SampledSoftmaxHead.predict", lambda: ns["head"].predict(x, k=3))
    step("SampledSoftmaxHead.evaluate", lambda: ns["head"].evaluate(x, y, k=3))
    step("sampled_softmax_loss_and_grads", lambda: ns["fs"].sampled_softmax_loss_and_grads(
        ns["head"].weights, ns["head"].biases, y[:, None], x, 20, 1000, seed=3))
    step("Word2Vec.build_vocab", w2v_build_vocab)
    step("Word2Vec.train", lambda: ns["w2v"].train())
print(json.dumps({"expected_numba_threads": expected, "steps": steps}))
"""

STEPS = ["import fastsampled", "SampledSoftmaxHead()", "SampledSoftmaxHead.train_step",
         "SampledSoftmaxHead.predict", "SampledSoftmaxHead.evaluate",
         "sampled_softmax_loss_and_grads", "Word2Vec.build_vocab", "Word2Vec.train"]
TORCH_STEPS = ["import fastsampled", "SampledSoftmaxHead()",
               "SampledSoftmaxLoss forward+backward"]


def _child_env():
    """The test process's environment with ``NUMBA_NUM_THREADS=2`` and the repository first on
    the path, without the switches that would make the library skip what is checked here."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k != "FASTSAMPLED_KEEP_MALLOC"}
    env["NUMBA_NUM_THREADS"] = str(NUM_THREADS)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


@functools.lru_cache(maxsize=None)
def _run(mode, with_torch=False):
    """One child run (shared by the tests of a mode): ``(steps by name, expected, stderr)``."""
    proc = subprocess.run([sys.executable, "-c", SCRIPT, mode, "1" if with_torch else "0"],
                          env=_child_env(), cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {s[0]: s[1:] for s in out["steps"]}, out["expected_numba_threads"]


def _diff(before, after):
    """What changed between two states, in words (empty: nothing did)."""
    changes = []
    if before["numba_threads"] != after["numba_threads"]:
        changes.append(f"numba.get_num_threads(): {before['numba_threads']} -> "
                       f"{after['numba_threads']}")
    pools_b, pools_a = before["threadpools"], after["threadpools"]
    for path in sorted(pools_b.keys() | pools_a.keys()):
        if pools_b.get(path) != pools_a.get(path):
            changes.append(f"threadpool {path}: {pools_b.get(path, 'not loaded')} -> "
                           f"{pools_a.get(path, 'not loaded')}")
    env_b, env_a = before["environ"], after["environ"]
    for key in sorted(env_b.keys() | env_a.keys()):
        if env_b.get(key) != env_a.get(key):
            changes.append(f"os.environ[{key!r}]: {env_b.get(key)!r} -> {env_a.get(key)!r}")
    if before.get("torch_threads") != after.get("torch_threads"):
        changes.append(f"torch (num_threads, num_interop_threads): "
                       f"{before.get('torch_threads')} -> {after.get('torch_threads')}")
    return changes


def _check(steps, expected, name, mode):
    before, after, error = steps[name]
    assert error is None, f"{name} raised in the child:\n{error}"
    changes = _diff(before, after)
    assert not changes, f"{name} ({mode} settings) changed process state:\n" + \
        "\n".join(changes)
    assert after["numba_threads"] == expected


@pytest.mark.parametrize("mode", ["default", "changed"])
@pytest.mark.parametrize("name", STEPS)
def test_call_leaves_process_state_alone(name, mode):
    steps, expected = _run(mode)
    assert expected == (NUM_THREADS if mode == "default" else 1)
    assert list(steps) == STEPS
    _check(steps, expected, name, mode)


@pytest.mark.parametrize("mode", ["default", "changed"])
def test_torch_loss_leaves_process_state_alone(mode):
    pytest.importorskip("torch")
    steps, expected = _run(mode, with_torch=True)
    assert list(steps) == TORCH_STEPS
    for name in TORCH_STEPS:
        _check(steps, expected, name, mode)


# --------------------------------------------------------------------------- glibc malloc
def _code_mentions(path, word):
    """``(line, token)`` of each NAME token (a name or an attribute: ``libc.mallopt``) equal to
    ``word``, and of each string literal whose value is exactly ``word`` (``getattr(libc,
    "mallopt")``); words inside comments, docstrings and longer strings do not count."""
    hits = []
    with open(path, "rb") as f:
        tokens = list(tokenize.tokenize(f.readline))
    for tok in tokens:
        if tok.type == tokenize.NAME and tok.string == word:
            hits.append((tok.start[0], tok.string))
        elif tok.type == tokenize.STRING:
            text = tok.string.lstrip("rRbBuU")
            if text.strip("'\"") == word:
                hits.append((tok.start[0], tok.string))
    return hits


def test_code_mentions_finds_names_attributes_and_symbol_strings(tmp_path):
    p = tmp_path / "m.py"
    p.write_text('"""mallopt in a docstring is fine."""\n'
                 "# so is mallopt in a comment\n"
                 "libc.mallopt(1, 2)\n"
                 "f = getattr(libc, 'mallopt')\n"
                 "mallopt = 3\n"
                 "s = 'call mallopt later'\n")
    assert [line for line, _ in _code_mentions(p, "mallopt")] == [3, 4, 5]


def test_no_mallopt_in_the_sources():
    """No module of the package refers to ``mallopt`` in code."""
    files = sorted(PACKAGE.rglob("*.py"))
    assert files, PACKAGE
    found = [f"{f.relative_to(REPO)}:{line}: {tok}" for f in files
             for line, tok in _code_mentions(f, "mallopt")]
    assert not found, "fastsampled calls glibc's mallopt:\n" + "\n".join(found)


# Python raises an audit event for every symbol ctypes looks up in a library, whichever way
# (``lib.name``, ``lib["name"]``, a ``CFUNCTYPE(...)(("name", lib))`` prototype, a library
# loaded before this hook or by another package), so a hook sees a mallopt lookup however the
# library makes it; a wrapper around ``ctypes.CDLL`` would miss the last ones. A lookup of
# ``getpid`` after the step checks that the hook is really called.
MALLOC_SCRIPT = r"""
import ctypes
import json
import sys

symbols = set()


def hook(event, args):
    if event in ("ctypes.dlsym", "ctypes.dlsym/handle"):
        symbols.add(args[1] if isinstance(args[1], str) else repr(args[1]))


sys.addaudithook(hook)
import numpy as np
import fastsampled as fs

head = fs.SampledSoftmaxHead(1000, 16, num_sampled=20, seed=0)
x = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
head.train_step(x, np.arange(8))
looked_up = "mallopt" in symbols
ctypes.CDLL(None).getpid
print(json.dumps({"mallopt": looked_up, "hook_works": "getpid" in symbols}))
"""


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_import_and_a_training_step_do_not_look_up_mallopt():
    proc = subprocess.run([sys.executable, "-c", MALLOC_SCRIPT], env=_child_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["hook_works"], "the ctypes.dlsym audit event was not seen: check inconclusive"
    assert not out["mallopt"], ("import fastsampled or a train_step looked up glibc's "
                                "mallopt through ctypes")
