"""Huge-page arrays and the memory probe (fastsampled._memory)."""
import os
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
