"""The full-softmax baseline (fastsampled.baselines) that the demo and bench/ compare with."""
import inspect
import time

import numpy as np
import pytest

from fastsampled import baselines
from fastsampled.baselines import full_softmax_step_time


def _problem(V=1000, D=8, B=64, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((V, D)).astype(np.float32)
    b = rng.standard_normal(V).astype(np.float32)
    x = rng.standard_normal((B, D)).astype(np.float32)
    y = rng.integers(0, V, B)
    return W, b, x, y


@pytest.mark.parametrize("chunk", [1 << 15, 256, 333, 1])   # one pass, several, uneven, rows
@pytest.mark.parametrize("labels_shape", ["flat", "column"])
def test_returns_a_positive_time_for_any_chunking(chunk, labels_shape):
    W, b, x, y = _problem()
    labels = y if labels_shape == "flat" else y[:, None]
    t = full_softmax_step_time(W, b, x, labels, rows=16, chunk=chunk)
    assert isinstance(t, float) and 0 < t < 60


def test_computes_rows_examples_and_scales_to_the_batch(monkeypatch):
    """The time of the computed rows times batch / rows (fewer rows than asked: no scaling)."""
    W, b, x, y = _problem(B=40)
    ticks = iter([10.0, 12.5])
    monkeypatch.setattr(time, "perf_counter", lambda: next(ticks))
    assert full_softmax_step_time(W, b, x, y, rows=8) == pytest.approx(2.5 * 40 / 8)
    ticks = iter([0.0, 3.0])
    assert full_softmax_step_time(W, b, x, y, rows=128) == pytest.approx(3.0)


def test_reads_a_memory_map(tmp_path):
    W, b, x, y = _problem()
    path = tmp_path / "w.npy"
    np.save(path, W)
    assert full_softmax_step_time(np.load(path, mmap_mode="r"), b, x, y, rows=4, chunk=300) > 0


def test_is_documented_with_shapes():
    doc = inspect.getdoc(full_softmax_step_time)
    for section in ("Parameters\n----------", "Returns\n-------", "(num_classes, dim)",
                    "(batch, dim)"):
        assert section in doc
    assert "full softmax" in inspect.getdoc(baselines)
    assert baselines.__all__ == ["full_softmax_step_time"]
