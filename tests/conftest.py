"""Shared pytest configuration and fixtures for the fastsampled test suite.

``tests/`` has no ``__init__.py``, so pytest puts it on ``sys.path`` (rootdir insertion) and
``import reference`` / ``import tf_cases`` work from every test module.
"""
import os
import tempfile

import numpy as np
import pytest

# Numba's on-disk cache ignores NUMBA_BOUNDSCHECK: with a warm __pycache__, a
# `NUMBA_BOUNDSCHECK=1 pytest -m kernel` run would silently load the unchecked machine code
# (and a checked build would later be loaded by ordinary runs). Give bounds-checked runs their
# own cache directory, before anything imports numba.
if os.environ.get("NUMBA_BOUNDSCHECK", "").strip() not in ("", "0") \
        and "NUMBA_CACHE_DIR" not in os.environ:
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(),
                                                 "fastsampled-numba-cache-boundscheck")
# Under pytest-xdist (`-n logical`) the worker processes share one cache directory: each kernel
# saves its cache entries under a lock (fastsampled/_jitcache.py), so workers that compile one
# function for different signatures at once keep every entry.


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "kernel: exercises the numba kernels (CI re-runs `-m kernel` with NUMBA_BOUNDSCHECK=1)")


def densify(grads, num_rows, dim, weights_dtype=None, biases_dtype=None):
    """Scatter ``SparseGrads`` (ids, weights, biases) into dense (num_rows, dim) / (num_rows,)."""
    wdt = grads.weights.dtype if weights_dtype is None else weights_dtype
    bdt = grads.biases.dtype if biases_dtype is None else biases_dtype
    gw = np.zeros((num_rows, dim), wdt)
    gb = np.zeros(num_rows, bdt)
    gw[grads.ids] = grads.weights
    gb[grads.ids] = grads.biases
    return gw, gb


def forbid_kernels(monkeypatch, kernel_modules, why, allowed=()):
    """Make every Numba kernel defined in ``kernel_modules`` (module names) fail the test when
    called, in its own module and wherever a fastsampled module imported it by name."""
    import sys

    def forbid(name):
        def kernel(*args, **kwargs):
            raise AssertionError(f"kernel {name} ran {why}")
        return kernel

    for modname, module in list(sys.modules.items()):
        if not modname.startswith("fastsampled") or module is None:
            continue
        for name in dir(module):
            obj = getattr(module, name)
            if (hasattr(obj, "py_func") and name not in allowed    # a numba dispatcher
                    and obj.py_func.__module__ in kernel_modules):
                monkeypatch.setattr(module, name, forbid(f"{obj.py_func.__module__}.{name}"))
