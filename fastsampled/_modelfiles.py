"""Files of the word-vector models (private): outputs that replace their target atomically
(plain or ``.gz`` / ``.bz2`` / ``.xz``), and a pickle-free ``.npz`` reader that checks every
array's header and size before reading it. ``KeyedVectors`` and ``Word2Vec`` use both.
"""
import bz2
import contextlib
import errno
import gzip
import json
import lzma
import os
import struct
import zipfile
import zlib

import numpy as np

from ._errors import StoreError
from ._files import atomic_output

__all__ = ["compression", "replacing", "NpzReader"]

# A member may inflate to at most this many times its compressed size, or to
# _NPZ_SMALL_MEMBER bytes whatever the ratio. The writers store their members uncompressed;
# float arrays compressed with np.savez_compressed stay far below the ratio, while a damaged
# or hostile file declaring gigabytes of zeros in a few megabytes is refused before inflating.
_NPZ_MAX_RATIO = 16
_NPZ_SMALL_MEMBER = 1 << 20
_NPZ_READ_CHUNK = 1 << 24
# What the zip and .npy parsers raise on damaged input (converted to StoreError).
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
            IndexError, struct.error, NotImplementedError, RuntimeError, OverflowError)


def compression(path):
    """``"gz"``, ``"bz2"``, ``"xz"`` or ``None``, from the (case-insensitive) suffix."""
    lower = os.fspath(path).lower()
    for suffix in ("gz", "bz2", "xz"):
        if lower.endswith("." + suffix):
            return suffix
    return None


@contextlib.contextmanager
def replacing(path, compress=False):
    """Binary file object whose content replaces ``path`` once the ``with`` block succeeds.

    Writes go to a temporary file beside ``path`` that is renamed over it at the end
    (:func:`fastsampled._files.atomic_output`), so a full disk or an exception midway leaves
    the previous file as it was and no temporary file behind. With ``compress``, a ``.gz``,
    ``.bz2`` or ``.xz`` suffix compresses the content as ``_kvformats.open_compressed`` would.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        Naming ``path`` when its directory does not exist or ``path`` is a directory.
    """
    path = os.fspath(path)
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise FileNotFoundError(errno.ENOENT, f"No such directory {parent!r}", path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
    kind = compression(path) if compress else None
    with atomic_output(path, "wb") as raw:
        if kind is None:
            yield raw
            return
        if kind == "gz":
            # the name gzip.open would record (not the temporary file's)
            name = os.path.basename(path)
            f = gzip.GzipFile(filename=name, mode="wb", fileobj=raw)
        elif kind == "bz2":
            f = bz2.BZ2File(raw, "wb")
        else:
            f = lzma.LZMAFile(raw, "wb")
        try:
            yield f
        except BaseException:
            with contextlib.suppress(Exception):  # the temporary file is dropped anyway
                f.close()
            raise
        f.close()  # writes the compressor's trailer before the rename


class NpzReader:
    """Pickle-free reading of an ``.npz`` file that checks each array before reading it.

    ``np.load`` trusts a member's ``.npy`` header: whatever shape it announces is allocated
    and filled, however small the file. Here the header (dtype, shape, order) is read first
    and compared with what the caller expects and with the member's declared size, and the
    member's declared size with its compressed size, so that a damaged or foreign file is
    refused with a :class:`~fastsampled.StoreError` naming the file and the array before
    any large allocation or decompression.

    Parameters
    ----------
    path : str
    writer : str
        What writes such files (``"KeyedVectors.save"``), for the messages.
    """

    def __init__(self, path, writer):
        self.path = path
        self.writer = writer
        self._file = open(path, "rb")   # FileNotFoundError and the like as they are
        try:
            self.size = os.fstat(self._file.fileno()).st_size
            self._zip = zipfile.ZipFile(self._file)
            self._infos = {info.filename: info for info in self._zip.infolist()}
        except _DAMAGED as exc:
            self._file.close()
            raise StoreError(f"{path}: not a file written by {writer} ({exc})") from None
        except BaseException:
            self._file.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._zip.close()
        self._file.close()

    def __contains__(self, name):
        return name + ".npy" in self._infos

    def _fail(self, name, message):
        return StoreError(f"{self.path}: array {name!r} {message}")

    def read(self, name, dtype, shape, why=""):
        """The array ``name``, which must have ``dtype`` (either byte order) and ``shape``.

        Parameters
        ----------
        name : str
            Member name without ``.npy``.
        dtype : numpy dtype
            The dtype the writer uses; returned in native byte order.
        shape : tuple of (int or None)
            The expected shape; ``None`` accepts any length >= 1 on that axis.
        why : str, optional
            Where the expected shape comes from, for the message.

        Returns
        -------
        ndarray
            C-contiguous, writable, of ``dtype`` and ``shape``.

        Raises
        ------
        StoreError
            A missing member, a member that would inflate far beyond its compressed size, an
            unreadable or unexpected ``.npy`` header (dtype, shape, Fortran order), a
            declared size that differs from what the header announces, or damaged data.
        """
        info = self._infos.get(name + ".npy")
        if info is None:
            raise StoreError(f"{self.path}: not a file written by {self.writer}: it has no "
                             f"{name!r} array")
        limit = max(_NPZ_SMALL_MEMBER, _NPZ_MAX_RATIO * info.compress_size)
        if info.compress_size > self.size or info.file_size > limit:
            raise self._fail(name, f"declares {info.file_size} bytes stored in "
                                   f"{info.compress_size} (the file has {self.size}): refusing "
                                   "to inflate it")
        expected = np.dtype(dtype)
        try:
            with self._zip.open(info) as fp:
                version = np.lib.format.read_magic(fp)
                if version == (1, 0):
                    got_shape, fortran, got = np.lib.format.read_array_header_1_0(fp)
                elif version == (2, 0):
                    got_shape, fortran, got = np.lib.format.read_array_header_2_0(fp)
                else:
                    raise self._fail(name, f"has .npy format version {version}; "
                                           f"{self.writer} writes 1.0")
                header_len = fp.tell()
                self._check_header(name, got, got_shape, fortran, expected, shape, why)
                nbytes = int(np.prod(got_shape, dtype=object)) * got.itemsize
                if info.file_size - header_len != nbytes:
                    raise self._fail(name, f"holds {info.file_size - header_len} bytes of data "
                                           f"but its header announces shape {got_shape} "
                                           f"({nbytes} bytes): the file is damaged")
                arr = np.empty(got_shape, got)
                if nbytes:
                    view = memoryview(arr.reshape(-1)).cast("B")
                    done = 0
                    while done < nbytes:
                        step = fp.readinto(view[done:done + _NPZ_READ_CHUNK])
                        if not step:
                            raise self._fail(name, f"ends after {done} of its {nbytes} bytes")
                        done += step
                if fp.read(1):   # (reading to the end also checks the CRC)
                    raise self._fail(name, "holds more data than its header announces")
        except StoreError:
            raise
        except _DAMAGED as exc:
            raise self._fail(name, f"is damaged ({type(exc).__name__}: {exc})") from None
        return arr if got.isnative else arr.astype(expected)

    def _check_header(self, name, got, got_shape, fortran, expected, shape, why):
        if got.hasobject or got.newbyteorder("=") != expected:
            raise self._fail(name, f"has dtype {got}; {self.writer} writes {expected}")
        if fortran and len(got_shape) > 1:
            raise self._fail(name, f"is stored in Fortran (column-major) order; "
                                   f"{self.writer} writes C order")
        if len(got_shape) != len(shape) or any(
                (want is None and size < 1) or (want is not None and size != want)
                for size, want in zip(got_shape, shape)):
            wanted = "(" + ", ".join("any" if w is None else str(w) for w in shape) + \
                ("," if len(shape) == 1 else "") + ")"
            raise self._fail(name, f"has shape {got_shape}; expected {wanted}"
                                   + (f" ({why})" if why else ""))

    def read_json(self, name):
        """The JSON value stored as the uint8 array ``name`` (StoreError if it is not)."""
        blob = self.read(name, np.uint8, (None,))
        try:
            return json.loads(blob.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise self._fail(name, f"is not UTF-8 JSON ({exc})") from None
