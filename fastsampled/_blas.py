"""Keep BLAS single-threaded while our parallel kernels run (private).

Numba's ``np.dot`` calls SciPy's BLAS. Our kernels already split work over Numba's threads;
a multi-threaded BLAS inside each of them would oversubscribe the cores (seen here: a small
sgemm taking 8 ms instead of 0.2 ms). ``single_threaded_blas()`` sets every loaded BLAS to one
thread for the duration of a kernel call and restores the previous setting afterwards; nested
and concurrent uses are reference-counted. Cost: a few ctypes calls (~µs).
"""
import contextlib
import threading

_lock = threading.Lock()
_depth = 0
_saved = []
_libs = None


def _blas_libs():
    global _libs
    if _libs is None:
        try:
            import scipy.linalg.cython_blas  # noqa: F401  (load the library numba uses)
            from threadpoolctl import ThreadpoolController

            _libs = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
        except Exception:  # threadpoolctl missing or unable to inspect: leave BLAS alone
            _libs = []
    return _libs


@contextlib.contextmanager
def single_threaded_blas():
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = []
            for lib in _blas_libs():
                n = lib.num_threads
                if n != 1:
                    lib.set_num_threads(1)
                    _saved.append((lib, n))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for lib, n in _saved:
                    lib.set_num_threads(n)
                _saved = []
