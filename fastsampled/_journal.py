"""The rollback journal of a :class:`~fastsampled.ShardedMatrix` (private).

Before a row of a store changes for the first time since the store's last commit, its old
bytes are appended to ``<store>/journal``. A commit (``checkpoint``) makes the rows durable,
records the new epoch and then deletes the journal. A store opened with a journal left over
from its current epoch -- a writer that died between two commits -- copies the old rows back
first, so it reopens exactly as it was at its last commit, as SQLite's rollback journal does.

File layout (little-endian)::

    header   8s magic, int64 epoch, int64 row_bytes, int64 num_rows        (32 bytes)
    block    8s tag, int64 n, uint64 checksum                              (24 bytes)
             int64 ids[n], then n rows of row_bytes bytes (the storage dtype)

The checksum covers the ids and the rows. Blocks are appended whole with one ``write``; a
writer killed during a write leaves at most one incomplete block at the end, whose rows were
not yet changed (rows change only after their block's ``write`` returned), so recovery
ignores an incomplete or unverifiable last block. With ``sync=True`` every block is
``fdatasync``-ed before the rows change, so the journal also outlives a power cut.
"""
import os
import struct

import numpy as np

from . import _store_kernels as SK
from ._errors import StoreError
from ._files import fsync_dir

__all__ = ["RollbackJournal", "read_journal", "JOURNAL"]

JOURNAL = "journal"
_MAGIC = b"FSJRNL\x00\x01"
_TAG = b"FSBLOCK\x01"
_HEADER = struct.Struct("<8sqqq")
_BLOCK = struct.Struct("<8sqQ")


def _checksum(payload):
    """Checksum of a uint8 array whose start is 8-byte aligned."""
    n8 = payload.size // 8 * 8
    return int(SK.checksum64(payload[:n8].view(np.uint64), payload[n8:]))


class RollbackJournal:
    """Saves the old contents of rows before they are first changed after a commit.

    Parameters
    ----------
    path : pathlib.Path
        The journal file (created on the first :meth:`save`).
    epoch : int
        The commit the journal rolls back to.
    num_rows : int
        Rows of the store (ids are ``0 .. num_rows - 1``).
    width : int
        Values per row (1 for a vector store).
    dtype : numpy.dtype
        Storage dtype.
    sync : bool
        ``fdatasync`` every block before returning (survives a power cut).
    """

    def __init__(self, path, epoch, num_rows, width, dtype, sync):
        self.path = path
        self.epoch = int(epoch)
        self.num_rows = int(num_rows)
        self.width = int(width)
        self.dtype = np.dtype(dtype)
        self.row_bytes = self.width * self.dtype.itemsize
        self.sync = bool(sync)
        self._fd = None
        self._saved = None          # bitmap over ids, allocated on first use
        self._pending = np.empty(0, np.int64)
        self.rows_saved = 0

    def save(self, ids, gather_into):
        """Append the rows of ``ids`` not saved since the last commit.

        Parameters
        ----------
        ids : ndarray of int64, shape (K,)
            Valid row ids (checked by the caller); repeats are fine.
        gather_into : callable
            ``gather_into(ids, out)`` copies rows ``ids`` of the store into ``out``, an array
            of shape (n, width) in the storage dtype.
        """
        if self._saved is None:
            self._saved = np.zeros((self.num_rows + 7) // 8, np.uint8)
        if self._pending.size < ids.size:
            self._pending = np.empty(max(ids.size, 2 * self._pending.size), np.int64)
        n = int(SK.take_unsaved(ids, self._saved, self._pending))
        if n == 0:
            return
        new = self._pending[:n]
        head = _BLOCK.size
        buf = np.empty(head + 8 * n + n * self.row_bytes, np.uint8)
        buf[head:head + 8 * n].view(np.int64)[:] = new
        rows = buf[head + 8 * n:].view(self.dtype).reshape(n, self.width)
        try:
            gather_into(new, rows)
            buf[:head] = np.frombuffer(_BLOCK.pack(_TAG, n, _checksum(buf[head:])), np.uint8)
            if self._fd is None:
                self._create()
            _write_all(self._fd, memoryview(buf))
            if self.sync:
                os.fdatasync(self._fd)
        except BaseException:
            # these rows are not in the journal: they must be saved again before a change
            self._saved[new >> 3] &= ~(np.uint8(1) << (new & 7).astype(np.uint8))
            raise
        self.rows_saved += n

    def _create(self):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        try:
            _write_all(fd, _HEADER.pack(_MAGIC, self.epoch, self.row_bytes, self.num_rows))
            if self.sync:
                os.fsync(fd)
                fsync_dir(self.path.parent)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def committed(self, epoch):
        """Forget the saved rows after a commit to ``epoch``: close and delete the file."""
        self.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        if self._saved is not None and self.rows_saved:
            self._saved.fill(0)
        self.rows_saved = 0
        self.epoch = int(epoch)

    def close(self):
        """Close the file (it stays on disk: it is what a reopen rolls back from)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _write_all(fd, data):
    view = memoryview(data)
    while view.nbytes:
        n = os.write(fd, view)
        view = view[n:]


def read_journal(path, num_rows, width, dtype):
    """Read a journal left by a writer that stopped before its next commit.

    Returns
    -------
    epoch : int
        The commit the journal rolls back to.
    blocks : list of (ids, rows)
        ``ids`` int64 (n,) in ``[0, num_rows)``; ``rows`` (n, width) of ``dtype``, copies.

    Raises
    ------
    StoreError
        A header that does not match the store, or a damaged block followed by more data
        (only the last block may be incomplete: it was being written when the writer died).
    """
    dtype = np.dtype(dtype)
    row_bytes = int(width) * dtype.itemsize
    data = np.fromfile(path, np.uint8)
    if data.size < _HEADER.size:
        # killed while writing the header: no row was changed yet
        return None, []
    magic, epoch, rb, nr = _HEADER.unpack(data[:_HEADER.size].tobytes())
    if magic != _MAGIC:
        raise StoreError(f"{path}: not a fastsampled journal (magic {magic!r})")
    if rb != row_bytes or nr != num_rows:
        raise StoreError(f"{path}: journal of rows of {rb} bytes over {nr} rows, but the store "
                         f"has rows of {row_bytes} bytes over {num_rows} rows")
    blocks = []
    pos = _HEADER.size
    while pos < data.size:
        if data.size - pos < _BLOCK.size:
            break                                            # torn block header at the end
        tag, n, checksum = _BLOCK.unpack(data[pos:pos + _BLOCK.size].tobytes())
        size = 8 * n + n * row_bytes if tag == _TAG and n > 0 else -1
        end = pos + _BLOCK.size + size
        if size < 0 or end > data.size:
            if size >= 0 or pos + _BLOCK.size >= data.size:
                break                                        # the last block, cut short
            raise StoreError(f"{path}: damaged journal block at byte {pos}")
        payload = data[pos + _BLOCK.size:end]
        if _checksum(payload) != checksum:
            if end == data.size:
                break                                        # the last block, partly written
            raise StoreError(f"{path}: journal block at byte {pos} fails its checksum")
        ids = payload[:8 * n].view(np.int64).copy()
        if ids.size and (ids.min() < 0 or ids.max() >= num_rows):
            raise StoreError(f"{path}: journal block at byte {pos} names rows outside "
                             f"[0, {num_rows})")
        rows = payload[8 * n:].view(dtype).reshape(n, width).copy()
        blocks.append((ids, rows))
        pos = end
    return epoch, blocks
