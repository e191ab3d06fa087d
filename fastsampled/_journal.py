"""The rollback journal of a :class:`~fastsampled.ShardedMatrix` (private).

Before a row of a store changes for the first time since the store's last commit, its old
bytes are appended to ``<store>/journal``. A commit (``checkpoint``) makes the rows durable,
records the new epoch and then starts the journal over. A store opened with a journal left over
from its current epoch -- a writer that died between two commits -- copies the old rows back
first, so it reopens exactly as it was at its last commit, as SQLite's rollback journal does.

File layout (little-endian)::

    header   8s magic, int64 epoch, int64 row_bytes, int64 num_rows, uint64 salt   (40 bytes)
    block    8s tag, uint64 salt, int64 n, uint64 checksum                        (32 bytes)
             int64 ids[n], then n rows of row_bytes bytes (the storage dtype), then zero to
             seven bytes of padding, so that every block starts 8-byte aligned

The checksum covers the ids and the rows. The file is mapped shared and grown by doubling;
blocks are written in place (a ``write`` per step would go through the file system's write
path, which costs more than the copy). A writer reuses its journal file from one commit
to the next -- a commit rewrites the header with the next epoch and a fresh salt, and the
blocks that follow are written over the old ones -- so its pages stay in the page cache
instead of being freed and allocated again every interval. The journal therefore ends at
the first block that does not carry the header's salt or fails its checksum, as SQLite's
write-ahead log ends at its first invalid frame: that is an old block, or the block a dying
writer was writing, whose rows had not changed yet (rows change only after their block,
header last, is in place). With ``sync=True`` every block is ``msync``-ed before its rows
change, so the journal also outlives a power cut.
"""
import mmap
import os
import secrets
import struct

import numpy as np

from . import _memory
from . import _store_kernels as SK
from ._errors import StoreError
from ._files import fsync_dir

__all__ = ["RollbackJournal", "read_journal", "checksum_bytes", "check_durability", "JOURNAL",
           "DURABILITY"]

JOURNAL = "journal"
DURABILITY = ("process", "power", "none")
_MAGIC = b"FSJRNL\x00\x01"
_TAG = b"FSBLOCK\x01"
_MIN_FILE = 1 << 20
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)     # Linux 5.14+
_HEADER = struct.Struct("<8sqqqQ")
_BLOCK = struct.Struct("<8sQqQ")


def check_durability(durability):
    """``durability`` if it is one of :data:`DURABILITY`, else ``ValueError``."""
    if durability not in DURABILITY:
        raise ValueError(f"durability must be one of {DURABILITY}, got {durability!r}")
    return durability


def checksum_bytes(payload):
    """64-bit checksum (``checksum64``) of a uint8 array whose start is 8-byte aligned."""
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
        ``msync`` every block before returning (survives a power cut).
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
        self._map = None            # the file, mapped shared: blocks are written in place
        self._view = None           # uint8 view of the map
        self._end = 0               # where the next block goes (a multiple of 8)
        self._high = 0              # the furthest _end of earlier intervals
        self._salt = 0
        self._saved = None          # bitmap over ids, allocated on first use
        self._pending = np.empty(0, np.int64)
        self.rows_saved = 0

    def save(self, ids, gather_into):
        """Save the rows of ``ids`` not saved since the last commit.

        The block is written in place in the mapped file: ids, rows (gathered straight into
        it), then its header last, so a writer killed half-way leaves a header without the
        current salt, which ends the journal before the unfinished block.

        Parameters
        ----------
        ids : ndarray of int64, shape (K,)
            Valid row ids (checked by the caller); repeats are fine.
        gather_into : callable
            ``gather_into(ids, out)`` copies rows ``ids`` of the store into ``out``, an array
            of shape (n, width) in the storage dtype.
        """
        if self._saved is None:     # faulted in now, in parallel, not bit by bit in steps
            self._saved = _memory.full((self.num_rows + 7) // 8, 0, np.uint8)
        if self._pending.size < ids.size:
            self._pending = np.empty(max(ids.size, 2 * self._pending.size), np.int64)
        n = int(SK.take_unsaved(ids, self._saved, self._pending))
        if n == 0:
            return
        new = self._pending[:n]
        head = _BLOCK.size
        size = head + 8 * n + n * self.row_bytes
        try:
            if self._fd is None:
                self._start()
            self._reserve(self._end + _padded(size))
            blk = self._view[self._end:self._end + size]
            blk[head:head + 8 * n].view(np.int64)[:] = new
            gather_into(new, blk[head + 8 * n:].view(self.dtype).reshape(n, self.width))
            blk[:head] = np.frombuffer(_BLOCK.pack(_TAG, self._salt, n, checksum_bytes(blk[head:])),
                                       np.uint8)
            del blk
            if self.sync:
                self._sync_range(self._end, size)
        except BaseException:
            # these rows are not in the journal: they must be saved again before a change
            self._saved[new >> 3] &= ~(np.uint8(1) << (new & 7).astype(np.uint8))
            raise
        self._end += _padded(size)
        self.rows_saved += n

    def _sync_range(self, start, size):
        """``msync`` the pages of bytes ``start .. start + size`` (and the file's size)."""
        page = mmap.PAGESIZE
        lo = start // page * page
        self._map.flush(lo, start + size - lo)

    def _start(self):
        """Open (or reuse) the file, map it, write a header for this epoch with a fresh salt."""
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._fd = fd
            self._reserve(_HEADER.size)
            self._write_header()
            if self.sync:
                self._sync_range(0, _HEADER.size)
                if created:
                    fsync_dir(self.path.parent)
        except BaseException:
            self._unmap()
            raise
        self._end = _HEADER.size

    def _write_header(self):
        self._salt = int.from_bytes(secrets.token_bytes(8), "little")
        self._view[:_HEADER.size] = np.frombuffer(
            _HEADER.pack(_MAGIC, self.epoch, self.row_bytes, self.num_rows, self._salt),
            np.uint8)

    def _reserve(self, nbytes):
        """Grow the file and its mapping (by doubling) to hold at least ``nbytes``."""
        have = 0 if self._map is None else len(self._map)
        if nbytes <= have:
            return
        size = max(nbytes, 2 * have, _MIN_FILE)
        size = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE
        if os.fstat(self._fd).st_size < size:
            os.ftruncate(self._fd, size)
        self._view = None
        if self._map is not None:
            self._map.close()
        self._map = mmap.mmap(self._fd, size)
        self._view = np.frombuffer(self._map, np.uint8)
        self._populate(size)

    def _populate(self, nbytes):
        """Map the first ``nbytes`` writable now (``MADV_POPULATE_WRITE``, Linux 5.14+), in
        one call: the file system's per-page work on a first write (``page_mkwrite``) then
        happens here, not in the training steps that write the blocks."""
        if nbytes <= 0:
            return
        try:
            self._map.madvise(_MADV_POPULATE_WRITE, 0, -(-nbytes // mmap.PAGESIZE)
                              * mmap.PAGESIZE)
        except (OSError, ValueError):
            pass                        # a hint: older kernels fault the pages in later

    def _unmap(self):
        self._view = None
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def committed(self, epoch):
        """Forget the saved rows after a commit to ``epoch``; the file is kept for reuse,
        its header rewritten for ``epoch`` (the old blocks no longer carry its salt)."""
        self.epoch = int(epoch)
        if self._saved is not None and self.rows_saved:
            self._saved.fill(0)
        self.rows_saved = 0
        if self._fd is not None:
            self._high = max(self._high, self._end)
            if self._end > _HEADER.size:
                self._write_header()
                self._end = _HEADER.size
            self._populate(self._high)  # writeback may have write-protected the pages

    def close(self):
        """Close the file. It is deleted when it holds nothing to roll back; otherwise it
        stays: it is what the next open rolls back from."""
        if self._fd is None:
            return
        self._unmap()
        if not self.rows_saved:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def _padded(size):
    return (size + 7) & ~7


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
        A header that does not match the store, a valid block naming rows out of range, or a
        damaged block followed by valid ones.
    """
    dtype = np.dtype(dtype)
    row_bytes = int(width) * dtype.itemsize
    data = np.fromfile(path, np.uint8)
    if data.size < _HEADER.size or not data[:_HEADER.size].any():
        # killed before its header was written (the file is created, sized and mapped
        # first): no block, so no row was changed yet
        return None, []
    magic, epoch, rb, nr, salt = _HEADER.unpack(data[:_HEADER.size].tobytes())
    if magic != _MAGIC:
        raise StoreError(f"{path}: not a fastsampled journal (magic {magic!r})")
    if rb != row_bytes or nr != num_rows:
        raise StoreError(f"{path}: journal of rows of {rb} bytes over {nr} rows, but the store "
                         f"has rows of {row_bytes} bytes over {num_rows} rows")
    blocks = []
    pos = _HEADER.size
    while data.size - pos >= _BLOCK.size:
        tag, block_salt, n, checksum = _BLOCK.unpack(data[pos:pos + _BLOCK.size].tobytes())
        if tag != _TAG or block_salt != salt or n <= 0:
            break                          # an old block, or never written: the journal ends
        end = pos + _BLOCK.size + 8 * n + n * row_bytes
        if end > data.size:
            break                          # the last block, cut short
        payload = data[pos + _BLOCK.size:end]
        if checksum_bytes(payload) != checksum:
            nxt = _padded(end)
            if data.size - nxt >= _BLOCK.size:
                tag2, salt2, _, _ = _BLOCK.unpack(data[nxt:nxt + _BLOCK.size].tobytes())
                if tag2 == _TAG and salt2 == salt:
                    raise StoreError(f"{path}: journal block at byte {pos} fails its checksum "
                                     "but later blocks were written after it (damaged file)")
            break                          # the block being written when the writer died
        ids = payload[:8 * n].view(np.int64).copy()
        if ids.min() < 0 or ids.max() >= num_rows:
            raise StoreError(f"{path}: journal block at byte {pos} names rows outside "
                             f"[0, {num_rows})")
        rows = payload[8 * n:].view(dtype).reshape(n, width).copy()
        blocks.append((ids, rows))
        pos = _padded(end)
    return epoch, blocks
