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

The doorbell (Linux on x86-64): instead of one actor call per step, the caller rings the file.
The file's first page holds two counters, each a futex: the caller writes the request's
sizes and sequence number into that page, increments ``req`` and wakes it; a thread of the
shard server, started by one long-running actor call (:func:`doorbell_loop`), sleeps on
``req`` in the kernel, serves the request and increments ``done``, on which the caller sleeps.
A round trip then costs two wake-ups instead of two Ray calls; neither side spins. The
caller learns that the server died from that long-running call, which Ray ends with an error;
a request the server could not serve is sent again as an actor call, which raises its error.
"""
import ctypes
import mmap
import os
import platform
import sys
import tempfile
import uuid

import numpy as np

ALIGN = 64
HEADER = 4096           # the doorbell's page, before the request's arrays

# the doorbell page: uint32 futex words on their own cache lines, then int64 fields
_REQ, _DONE = 0, 64
_F_SEQ, _F_NPUSH, _F_NREQ, _F_STATUS, _F_CLOSED = 128, 136, 144, 152, 160
_OK, _APPLIED, _FAILED = 1, 2, 3
_FUTEX_WAIT, _FUTEX_WAKE = 0, 1
# x86-64 only: its stores are seen in program order by other cores, so the request's arrays
# are visible once ``req`` is; other architectures would need explicit barriers
_SYS_FUTEX = 202 if sys.platform.startswith("linux") and platform.machine() in (
    "x86_64", "AMD64") else None


def _up(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def layout(n_push, n_req, dim, itemsize):
    """Byte offsets of ``(req_ids, push_ids, gw, gb, rows, biases, end)`` in a buffer."""
    offs = []
    at = HEADER
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


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc = None


def _syscall():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)    # ctypes calls release the GIL
    return _libc.syscall


def doorbell_available():
    """Whether this platform has the doorbell (else every request is an actor call)."""
    return _SYS_FUTEX is not None


class Bell:
    """The doorbell page of a mapped buffer: its counters and fields, read and written in
    place, and futex waits and wakes on the counters."""

    def __init__(self, buf):
        view = np.frombuffer(buf, np.uint8, HEADER)
        self._base = view.ctypes.data      # valid while the mapping is: its owner closes both
        del view
        self._u32 = {off: ctypes.c_uint32.from_address(self._base + off)
                     for off in (_REQ, _DONE)}
        self._fields = dict(self._u32)
        self._fields.update((off, ctypes.c_int64.from_address(self._base + off))
                            for off in (_F_SEQ, _F_NPUSH, _F_NREQ, _F_STATUS, _F_CLOSED))

    def get(self, off):
        return self._fields[off].value

    def set(self, off, value):
        self._fields[off].value = value

    def wake(self, off):
        # syscall(2) reads its arguments as longs: pass longs, not C ints
        _syscall()(ctypes.c_long(_SYS_FUTEX), ctypes.c_void_p(self._base + off),
                   ctypes.c_long(_FUTEX_WAKE), ctypes.c_long(1 << 30), None, None,
                   ctypes.c_long(0))

    def wait(self, off, seen, timeout):
        """Sleep until the counter at ``off`` differs from ``seen`` or ``timeout`` seconds
        pass (or a signal arrives); returns its value."""
        value = self._u32[off].value
        if value == seen:
            ts = _Timespec(int(timeout), int(timeout % 1 * 1e9))
            _syscall()(ctypes.c_long(_SYS_FUTEX), ctypes.c_void_p(self._base + off),
                       ctypes.c_long(_FUTEX_WAIT), ctypes.c_long(seen), ctypes.byref(ts),
                       None, ctypes.c_long(0))
            value = self._u32[off].value
        return value


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
        self.bell = None
        self.loop = None        # the server's doorbell_loop call, once rung
        self.bell_failed = False

    def ring(self, msg):
        """Ask for ``msg`` (from :meth:`write`) through the doorbell; returns the ticket for
        :meth:`answer`."""
        _, _, _, _, head, n_push, n_req = msg
        b = self.bell
        b.set(_F_SEQ, 0 if head is None else head[1])
        b.set(_F_NPUSH, n_push if head is not None else -1)
        b.set(_F_NREQ, -1 if n_req is None else n_req)
        ticket = (b.get(_REQ) + 1) & 0xFFFFFFFF
        b.set(_REQ, ticket)
        b.wake(_REQ)
        return ticket

    def answer(self, ticket, alive, poll=0.2):
        """Wait for the server to finish ``ticket``: ``True`` when it served it, ``False``
        when it could not (ask again with an actor call), or ``None`` when ``alive()`` says
        its loop ended (the server died or stopped serving) first."""
        b = self.bell
        while True:
            if b.wait(_DONE, (ticket - 1) & 0xFFFFFFFF, poll) == ticket:
                return b.get(_F_STATUS) != _FAILED
            if not alive():
                return None if b.get(_DONE) != ticket else b.get(_F_STATUS) != _FAILED

    def stop(self):
        """End the server's doorbell loop (it returns within its next wake-up)."""
        if self.bell is not None:
            self.bell.set(_F_CLOSED, 1)
            self.bell.wake(_REQ)

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
        self.stop()
        self.bell = None
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


def doorbell_loop(path, size, dtype, dim, sender, serve_one, stopping, poll=1.0):
    """The shard server's side of the doorbell, on a thread of its own until the caller stops
    the file (or ``stopping()``): sleep on ``req``, serve each request with
    ``serve_one(mapping, msg)`` (-> whether an update was applied; an exception marks the request
    failed and the caller asks again with an actor call), then bump ``done`` and wake the
    caller. Returns the number of requests served."""
    mapping = Mapping()
    buf = mapping.get(path, size)
    bell = Bell(buf)
    seen = bell.get(_DONE)
    served = 0
    try:
        while not stopping():
            req = bell.wait(_REQ, seen, poll)
            if bell.get(_F_CLOSED):
                break
            if req == seen:
                continue
            n_push = bell.get(_F_NPUSH)
            n_req = bell.get(_F_NREQ)
            head = None if n_push < 0 else (sender, bell.get(_F_SEQ))
            msg = (path, size, dtype, dim, head, max(n_push, 0), None if n_req < 0 else n_req)
            try:
                status = _APPLIED if serve_one(mapping, msg) else _OK
            except Exception:       # noqa: BLE001 -- the actor call raises it to the caller
                status = _FAILED
            bell.set(_F_STATUS, status)
            bell.set(_DONE, req)
            bell.wake(_DONE)
            seen = req
            served += 1
    finally:
        del bell
        mapping.close()
    return served
