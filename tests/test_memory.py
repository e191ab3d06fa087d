"""Huge-page arrays and the malloc thresholds set on import (fastsampled._memory)."""
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from fastsampled import _memory


@pytest.mark.parametrize("shape", [(10, 3), (1 << 20, 9)])   # below and above HUGE_MIN_BYTES
def test_empty_and_full(shape):
    a = _memory.full(shape, 0, np.float32)
    assert a.shape == shape and a.dtype == np.float32 and a.flags.c_contiguous
    assert a.flags.writeable and not a.any()
    b = _memory.full(shape, 1.5, np.float64)
    assert np.all(b == 1.5)
    c = _memory.empty(shape[0], np.int64)
    c[:] = 7
    assert c.shape == (shape[0],) and np.all(c == 7)


def _rss_anon_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


@pytest.mark.kernel
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_full_of_zeros_is_resident_at_once():
    """Zero-filled slots (Adam's m and v) are faulted in when made, not during the steps."""
    nbytes = 96 << 20
    before = _rss_anon_bytes()
    a = _memory.full((nbytes // 4 // 64, 64), 0, np.float32)
    grown = _rss_anon_bytes() - before
    assert grown >= 0.9 * nbytes, (grown, nbytes)
    assert not a.any()


def _tuned_in_child(env):
    code = "import fastsampled, fastsampled._memory as m; print(m._tuned)"
    out = subprocess.run([sys.executable, "-c", code], env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt thresholds are glibc's")
def test_malloc_thresholds_set_on_import_unless_the_user_says_otherwise():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop("FASTSAMPLED_KEEP_MALLOC", None)
    base = {"FASTSAMPLED_KEEP_MALLOC": "0"}
    assert _tuned_in_child({**env, **base}) == "True"
    assert _tuned_in_child({**env, "FASTSAMPLED_KEEP_MALLOC": "1"}) == "False"
    assert _tuned_in_child({**env, **base, "MALLOC_TRIM_THRESHOLD_": "131072"}) == "False"


def test_available_memory_is_memavailable_in_bytes():
    avail = _memory.available_memory()
    assert isinstance(avail, int) and avail >= 0
    if os.path.exists("/proc/meminfo"):
        with open("/proc/meminfo") as f:
            kib = {line.split(":")[0]: int(line.split()[1]) for line in f}
        if "MemAvailable" in kib:          # it moves between the two reads: same order only
            assert 0 < avail <= kib["MemTotal"] * 1024
            assert abs(avail - kib["MemAvailable"] * 1024) < kib["MemTotal"] * 1024 // 4


def test_available_memory_is_0_where_unknown(monkeypatch):
    def no_proc(path, *args, **kwargs):
        raise FileNotFoundError(path)

    monkeypatch.setattr(_memory, "open", no_proc, raising=False)   # found before the builtin
    assert _memory.available_memory() == 0
