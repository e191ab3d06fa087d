"""Keep the BLAS that Numba calls single-threaded while our parallel kernels run (private).

Numba's ``np.dot`` calls SciPy's BLAS (``scipy.linalg.cython_blas``). Our kernels already split
work over Numba's threads; a multi-threaded BLAS inside each of them would oversubscribe the
cores and make even a small product many times slower (docs/performance.md#blas-threads).
``single_threaded_blas()`` sets that library to one thread for the duration of a kernel call
and restores the previous setting afterwards; nested and concurrent uses are
reference-counted. numpy's own BLAS (a different library in the wheels) is left alone. The C
entry points are looked up once, so a call costs only a few ctypes calls.
"""
import os
import threading
import warnings

_lock = threading.Lock()
_depth = 0
_saved = []
_funcs = None


def _symbol(dynlib, name):
    """An OpenBLAS entry point under any of the wheels' prefixes/suffixes, or None."""
    for prefix in ("", "scipy_"):
        for suffix in ("", "64_"):
            fn = getattr(dynlib, prefix + name + suffix, None)
            if fn is not None:
                return fn
    return None


def _numba_blas_funcs():
    """``[(get_num_threads, set_num_threads)]`` of the BLAS libraries Numba's dot may call."""
    global _funcs
    if _funcs is not None:
        return _funcs
    funcs = []
    try:
        import scipy
        import scipy.linalg.cython_blas  # noqa: F401  (load the library numba uses)
        from threadpoolctl import ThreadpoolController

        libs = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
        scipy_dir = os.path.dirname(os.path.dirname(os.path.abspath(scipy.__file__)))
        mine = [lib for lib in libs if os.path.abspath(lib.filepath).startswith(
            (os.path.join(scipy_dir, "scipy.libs"), os.path.join(scipy_dir, "scipy")))]
        for lib in mine or libs:   # unknown layout: limit every BLAS rather than none
            get = _symbol(lib.dynlib, "openblas_get_num_threads")
            put = _symbol(lib.dynlib, "openblas_set_num_threads")
            if get is not None and put is not None:
                funcs.append((get, put))
            else:  # MKL, BLIS, ...: go through threadpoolctl's generic controller
                funcs.append((lambda lib=lib: lib.num_threads, lib.set_num_threads))
    except Exception as e:  # threadpoolctl missing or unable to inspect: leave BLAS alone
        funcs = []
        warnings.warn(
            f"fastsampled cannot limit the BLAS that Numba calls to one thread inside its "
            f"parallel kernels ({type(e).__name__}: {e}); each kernel thread may then start "
            "a full set of BLAS threads, and a training step can be many times slower. "
            "Install threadpoolctl (a declared dependency) to avoid it.",
            RuntimeWarning, stacklevel=3)
    _funcs = funcs
    return funcs


class _SingleThreadedBlas:
    """Context manager behind :func:`single_threaded_blas` (a class: a generator-based
    context manager costs several microseconds a step)."""

    __slots__ = ()

    def __enter__(self):
        global _depth, _saved
        with _lock:
            if _depth == 0:
                _saved = []
                for get, put in _numba_blas_funcs():
                    n = get()
                    if n != 1:
                        put(1)
                        _saved.append((put, n))
            _depth += 1
        return self

    def __exit__(self, *exc):
        global _depth, _saved
        with _lock:
            _depth -= 1
            if _depth == 0:
                for put, n in _saved:
                    put(n)
                _saved = []
        return False


_SINGLE = _SingleThreadedBlas()


def single_threaded_blas():
    """Context manager: the BLAS that Numba's ``np.dot`` calls runs on one thread inside it
    (reference-counted, so it nests and is safe across Python threads)."""
    return _SINGLE
