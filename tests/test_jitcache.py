"""Numba's on-disk cache shared by processes that compile at once (fastsampled._jitcache)."""
import importlib
import os
import pickle
import pkgutil
import subprocess
import sys
import textwrap
import time

import pytest

import fastsampled
from fastsampled._jitcache import LOCK_NAME, fcntl, is_guarded

pytestmark = pytest.mark.skipif(fcntl is None, reason="file locks need fcntl (POSIX)")

# one cached function, compiled for a different argument type by each process
_MODULE = """
import numpy as np
from numba import njit

from fastsampled._jitcache import guard_caches


@njit(cache=True)
def twice(x):
    return x + x


if {guard}:
    guard_caches(globals())
"""

_COMPILE = """
import sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import racemod
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
racemod.twice(getattr(np, sys.argv[3])(3))
"""

# every signature loaded back in a fresh process: from the cache (no compiling), with results
# of the right type and value
_CHECK = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import racemod
for name in sys.argv[2:]:
    value = getattr(np, name)(3)
    out = racemod.twice(value)
    kind = {"u": "i"}.get(value.dtype.kind, value.dtype.kind)     # integer, float or complex
    got = {"u": "i"}.get(np.asarray(out).dtype.kind, np.asarray(out).dtype.kind)
    assert got == kind and out == value + value, (name, out, type(out))
assert racemod.twice.stats.cache_misses == {}, racemod.twice.stats.cache_misses
print("ok", sum(racemod.twice.stats.cache_hits.values()))
"""

TYPES = ["int64", "float64", "float32", "int32", "int16", "uint32", "complex128", "uint64"]


def _race(tmp_path, guard):
    src = tmp_path / "src"
    src.mkdir()
    (src / "racemod.py").write_text(_MODULE.format(guard=guard))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    start = time.time() + 4.0           # every process imported numba by then
    procs = [subprocess.Popen([sys.executable, "-c", _COMPILE, str(src), str(start), t],
                              env=env) for t in TYPES]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    check = subprocess.run([sys.executable, "-c", _CHECK, str(src), *TYPES], env=env,
                           capture_output=True, text=True, timeout=120)
    index = next((tmp_path / "cache").rglob("racemod.twice-*.nbi"))
    with open(index, "rb") as f:
        pickle.load(f)                   # Numba's version
        _stamp, overloads = pickle.loads(f.read())
    return check, overloads, index.parent


def test_processes_compiling_one_function_at_once_keep_every_signature(tmp_path):
    check, overloads, cache_dir = _race(tmp_path, guard=True)
    assert check.returncode == 0, check.stderr[-3000:]
    assert check.stdout.split() == ["ok", str(len(TYPES))]
    # one data file per signature: no two entries of the index share one
    assert len(overloads) == len(TYPES)
    assert len(set(overloads.values())) == len(TYPES)
    assert (cache_dir / LOCK_NAME).exists()


def test_every_cached_kernel_saves_under_the_lock():
    """Each fastsampled module that defines a caching kernel guards it (guard_caches at its
    end); a kernel module that forgets would leave its cache open to the race above."""
    seen = 0
    for info in pkgutil.iter_modules(fastsampled.__path__):
        if info.name == "__main__":
            continue
        try:
            module = importlib.import_module(f"fastsampled.{info.name}")
        except ImportError:              # an adapter whose optional peer is absent
            continue
        for name, obj in vars(module).items():
            cache = getattr(obj, "_cache", None)
            if not hasattr(obj, "py_func") or cache is None \
                    or type(cache).__name__ == "NullCache":
                continue
            assert is_guarded(obj), f"fastsampled.{info.name}.{name}"
            seen += 1
    assert seen > 100


@pytest.mark.parametrize("how", ["no lock file", "flock fails"])
def test_a_cache_directory_that_cannot_lock_still_saves(tmp_path, monkeypatch, how):
    """No lock (a directory that refuses the file, a mount without locks) means Numba's own
    save, not a failed compile."""
    from fastsampled import _jitcache
    saved = []
    monkeypatch.setattr(_jitcache._IndexDataCacheFile, "save",
                        lambda self, key, data: saved.append((key, data)))

    def refuse(fd, op):
        raise OSError(37, "No locks available")
    monkeypatch.setattr(_jitcache.fcntl, "flock", refuse)

    class CacheFile:
        _cache_path = str(tmp_path / ("missing" if how == "no lock file" else ""))

    _jitcache._locked_save(CacheFile())("key", b"data")
    assert saved == [("key", b"data")]
