"""Numba's on-disk cache, made safe for processes that compile at once (private).

Every kernel is compiled with ``cache=True``: the machine code goes to an index file and
numbered data files per function (``__pycache__`` or ``NUMBA_CACHE_DIR``). Numba writes each
file atomically, but a new entry is a read-modify-write of the index: it reads the index,
takes the first data-file number no entry uses, writes the index and then the data file.
Two processes that add *different* signatures of one function at the same moment (a float32
and a float64 trainer, Ray actors of different dtypes, DataLoader workers started together)
can both take the same number: one index then names a data file that holds the other's
machine code, and a later process that loads that signature runs code compiled for other
argument types.

:func:`guard_caches` closes that window for fastsampled's own kernels: each one's cache file
saves under an exclusive ``flock`` on one lock file in its cache directory, so the
read-modify-write of the index is whole. Loading is left alone (it reads files that are
replaced atomically). Only the dispatchers passed in are changed -- no other Numba function in
the process is touched. Where locks are not available (no ``fcntl``, a directory that refuses
the lock file, a file system that cannot lock) saving goes on as Numba does it.
"""
import os

try:
    import fcntl
except ImportError:          # not POSIX: Numba's own behaviour
    fcntl = None

__all__ = ["guard_caches", "is_guarded", "LOCK_NAME"]

#: The lock file, one per cache directory.
LOCK_NAME = "fastsampled-numba-cache.lock"


def _index_file_class():
    try:
        from numba.core.caching import IndexDataCacheFile
    except ImportError:      # a Numba without this layout: leave its caches alone
        return None
    return IndexDataCacheFile


_IndexDataCacheFile = _index_file_class()


def _locked_save(cache_file):
    plain_save = _IndexDataCacheFile.save
    lock_path = os.path.join(cache_file._cache_path, LOCK_NAME)

    def save(key, data):
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError:
            return plain_save(cache_file, key, data)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:              # a file system without locks (some network mounts)
                pass
            return plain_save(cache_file, key, data)
        finally:
            os.close(fd)                 # releases the lock
    save.fastsampled_guarded = True
    return save


def _cache_file(obj):
    """The ``IndexDataCacheFile`` of a caching Numba dispatcher, or None."""
    if _IndexDataCacheFile is None or not hasattr(obj, "py_func"):
        return None
    cache_file = getattr(getattr(obj, "_cache", None), "_cache_file", None)
    if type(cache_file) is not _IndexDataCacheFile or not hasattr(cache_file, "_cache_path"):
        return None
    return cache_file


def guard_caches(namespace):
    """Make every caching Numba dispatcher in ``namespace`` (a module's ``globals()``) save its
    cache entries under the directory's lock. Returns how many it guarded."""
    if fcntl is None:
        return 0
    n = 0
    for obj in list(namespace.values()):
        cache_file = _cache_file(obj)
        if cache_file is None or getattr(cache_file.save, "fastsampled_guarded", False):
            continue
        cache_file.save = _locked_save(cache_file)
        n += 1
    return n


def is_guarded(obj):
    """Whether ``obj`` is a caching dispatcher whose saves take the lock (False for anything
    else)."""
    cache_file = _cache_file(obj)
    return cache_file is not None and getattr(cache_file.save, "fastsampled_guarded", False)
