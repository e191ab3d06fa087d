"""Crash-safe file output: write a temporary file beside the target, fsync it, rename it over
the target, fsync the directory.

Readers then see the old file or the new one, never a mixture, whatever happens meanwhile: a
full disk, an exception in the writer, a killed process or (once the directory's fsync
returned) a power cut. A failed write removes its temporary file and leaves the target as it
was.
"""
import contextlib
import errno
import os
import pathlib
import json
import secrets

from ._errors import StoreError

__all__ = ["atomic_output", "atomic_write_bytes", "fsync_dir", "check_writable_target",
           "read_json_object"]


def fsync_dir(path):
    """fsync a directory, so that a rename or unlink inside it is durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms that cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _temporary_name(path):
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def atomic_output(path, mode="wb"):
    """Context manager yielding a file object whose content replaces ``path`` on success.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write. Its directory must exist.
    mode : {"wb", "w"}
        Binary or text (UTF-8) output.

    Yields
    ------
    file object
        Writes go to a temporary file in the same directory. When the ``with`` block ends
        without an exception the file is flushed and fsynced, renamed over ``path`` and the
        directory fsynced; otherwise the temporary file is removed and ``path`` is untouched.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = pathlib.Path(os.fspath(path))
    tmp = _temporary_name(path)
    # 0o666 filtered by the umask, as open() would create the file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        f = os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {}))
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path, data):
    """Replace ``path`` with ``data`` (bytes) atomically and durably; see :func:`atomic_output`."""
    with atomic_output(path, "wb") as f:
        f.write(data)


def check_writable_target(path, name="path"):
    """Raise ``ValueError`` naming ``name`` unless a file could be created at ``path``.

    Checks that the parent directory exists, is a directory and is writable, and that
    ``path`` itself is not a directory -- before a long computation whose result would
    otherwise be lost to the error.
    """
    path = pathlib.Path(os.fspath(path))
    parent = path.parent
    if path.is_dir():
        raise ValueError(f"{name} {str(path)!r} is a directory, not a file")
    if not parent.is_dir():
        raise ValueError(f"{name} {str(path)!r}: the directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {str(path)!r}: the directory {str(parent)!r} is not writable")
    return path


def read_json_object(path, missing):
    """The JSON object in ``path``; ``StoreError`` naming the file when it is missing
    (with the message ``missing``), unreadable, not JSON or not an object."""
    path = pathlib.Path(os.fspath(path))
    try:
        obj = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise StoreError(missing) from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise StoreError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise StoreError(f"{path}: must hold a JSON object, got {type(obj).__name__}")
    return obj
