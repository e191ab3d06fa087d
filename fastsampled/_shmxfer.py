"""Rows and gradients between a distributed head's caller and a shard server on the same node,
through a shared-memory file instead of the call's arguments (``transport="shared"``).

A call then carries a small message (the file, the counts, the update's sender and sequence
number); the caller writes the request's ids and the update into the file, the shard server
reads them in place, applies the update, and writes the requested rows and biases back into
the same file, which the caller reads once the call returns. The call's completion orders the
two sides' accesses; one buffer per shard server and one call at a time per buffer.

The file is created in ``/dev/shm`` (or the temporary directory where there is none), named
after the caller's process, and unlinked once the shard server has mapped it: nothing is left
behind when either process dies afterwards. A shard server that was restarted gets a new file.
"""
import mmap
import os
import tempfile
import uuid

import numpy as np

ALIGN = 64


def _up(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def layout(n_push, n_req, dim, itemsize):
    """Byte offsets of ``(req_ids, push_ids, gw, gb, rows, biases, end)`` in a buffer."""
    offs = []
    at = 0
    for nbytes in (8 * n_req, 8 * n_push, n_push * dim * itemsize, n_push * itemsize,
                   n_req * dim * itemsize, n_req * itemsize):
        offs.append(at)
        at += _up(nbytes)
    offs.append(at)
    return offs


def views(buf, n_push, n_req, dim, dtype):
    """``(req_ids, push_ids, gw, gb, rows, biases)`` as arrays over ``buf``."""
    dtype = np.dtype(dtype)
    o = layout(n_push, n_req, dim, dtype.itemsize)
    return (np.frombuffer(buf, np.int64, n_req, o[0]),
            np.frombuffer(buf, np.int64, n_push, o[1]),
            np.frombuffer(buf, dtype, n_push * dim, o[2]).reshape(n_push, dim),
            np.frombuffer(buf, dtype, n_push, o[3]),
            np.frombuffer(buf, dtype, n_req * dim, o[4]).reshape(n_req, dim),
            np.frombuffer(buf, dtype, n_req, o[5]))


def _directory():
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) \
        else tempfile.gettempdir()


class SharedBuffer:
    """The caller's side: a shared-memory file of ``size`` bytes, mapped."""

    def __init__(self, size):
        self.size = int(size)
        self.path = os.path.join(_directory(),
                                 f"fastsampled-ray-{os.getpid()}-{uuid.uuid4().hex[:12]}")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            # reserved now: a full tmpfs is an OSError here, not a SIGBUS on a later write
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, self.size)
            else:
                os.ftruncate(fd, self.size)
            self.map = mmap.mmap(fd, self.size)
        except BaseException:
            os.close(fd)
            os.unlink(self.path)
            raise
        os.close(fd)
        self.linked = True

    def write(self, push, ids, dim, dtype):
        """Write a request (local ids) and an update (``(sender, seq, ids, gw, gb)`` or None);
        returns the message for :func:`serve`."""
        n_push = 0 if push is None else push[2].size
        n_req = 0 if ids is None else ids.size
        req_ids, push_ids, gw, gb, _, _ = views(self.map, n_push, n_req, dim, dtype)
        if n_req:
            req_ids[:] = ids
        head = None
        if push is not None:
            push_ids[:] = push[2]
            gw[:] = push[3]
            gb[:] = push[4]
            head = (push[0], push[1])
        return (self.path, self.size, np.dtype(dtype).str, dim, head, n_push,
                None if ids is None else n_req)

    def reply(self, msg):
        """The rows and biases the shard server wrote for ``msg`` (views: copy them before the
        next call), or None when nothing was requested."""
        _, _, dtype, dim, _, n_push, n_req = msg
        if n_req is None:
            return None
        return views(self.map, n_push, n_req, dim, dtype)[4:]

    def unlink(self):
        """Remove the file's name (the mappings stay valid)."""
        if self.linked:
            self.linked = False
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def close(self):
        self.unlink()
        try:
            self.map.close()
        except BufferError:         # a view is still alive; the mapping goes with it
            pass


def needed(push, ids, dim, itemsize):
    """Bytes a buffer needs for this request and update."""
    n_push = 0 if push is None else push[2].size
    n_req = 0 if ids is None else ids.size
    return layout(n_push, n_req, dim, itemsize)[-1]


class SharedFileGone(RuntimeError):
    """The caller's file is no longer there to map (this shard server was restarted after the
    caller unlinked it): the caller sends the call again without it."""


class Mapping:
    """The shard server's side: the caller's current file, mapped on first sight."""

    def __init__(self):
        self.path = None
        self.map = None

    def get(self, path, size):
        if path != self.path:
            self.close()
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                raise SharedFileGone(path) from None
            try:
                self.map = mmap.mmap(fd, size)
            finally:
                os.close(fd)
            self.path = path
        return self.map

    def close(self):
        m, self.map, self.path = self.map, None, None
        if m is not None:
            try:
                m.close()
            except BufferError:
                pass


def serve(mapping, server, msg):
    """Apply the update of ``msg`` and write the requested rows into the file (on the shard
    server). Returns whether an update was applied."""
    path, size, dtype, dim, head, n_push, n_req = msg
    server.check_ready()
    buf = mapping.get(path, size)
    req_ids, push_ids, gw, gb, rows, biases = views(buf, n_push, 0 if n_req is None else n_req,
                                                    dim, dtype)
    applied = False
    if head is not None:
        applied = server.apply(head[0], head[1], push_ids, gw, gb)
    if n_req is not None:
        r, b = server.gather(req_ids)
        rows[:] = r
        biases[:] = b
    return applied
