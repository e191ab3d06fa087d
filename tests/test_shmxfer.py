"""The shared-memory files that carry a distributed step's rows and updates between the caller
and a shard server on its node (``fastsampled._shmxfer``), without Ray."""
import contextlib
import os
import threading

import numpy as np
import pytest

from fastsampled._shmxfer import (Bell, Mapping, SharedBuffer, SharedFileGone,
                                  doorbell_available, doorbell_loop, needed, serve)


class RecordingServer:
    """Stands in for a ShardServer: records updates, answers rows ``ids * 10 + column``."""

    def __init__(self, dim):
        self.dim = dim
        self.updates = []
        self.ready = True

    def check_ready(self):
        if not self.ready:
            raise RuntimeError("not ready")

    def apply(self, sender, seq, ids, gw, gb):
        self.updates.append((sender, seq, ids.copy(), gw.copy(), gb.copy()))
        return True

    def gather(self, ids):
        rows = ids[:, None] * 10.0 + np.arange(self.dim)[None, :]
        return rows.astype(np.float32), ids.astype(np.float32)


@pytest.mark.parametrize("with_push,with_ids", [(True, True), (False, True), (True, False)])
def test_an_update_and_a_request_travel_through_the_file(with_push, with_ids):
    D = 5
    rng = np.random.default_rng(0)
    ids = np.array([3, 9, 40], np.int64) if with_ids else None
    push = None
    if with_push:
        pid = np.array([1, 2, 7, 8], np.int64)
        push = ("head", 4, pid, rng.standard_normal((4, D)).astype(np.float32),
                rng.standard_normal(4).astype(np.float32))
    buf = SharedBuffer(needed(push, ids, D, 4))
    server, mapping = RecordingServer(D), Mapping()
    try:
        msg = buf.write(push, ids, D, np.float32)
        assert serve(mapping, server, msg) is with_push
        if with_push:
            (sender, seq, got_ids, gw, gb), = server.updates
            assert (sender, seq) == ("head", 4)
            np.testing.assert_array_equal(got_ids, push[2])
            np.testing.assert_array_equal(gw, push[3])
            np.testing.assert_array_equal(gb, push[4])
        reply = buf.reply(msg)
        if with_ids:
            rows, biases = reply
            want_rows, want_b = server.gather(ids)
            np.testing.assert_array_equal(rows, want_rows)
            np.testing.assert_array_equal(biases, want_b)
            del rows, biases
        else:
            assert reply is None
        del reply
    finally:
        mapping.close()
        buf.close()


def test_the_file_is_private_and_goes_once_unlinked():
    buf = SharedBuffer(1 << 16)
    try:
        assert os.stat(buf.path).st_mode & 0o777 == 0o600
        mapping = Mapping()
        msg = buf.write(None, np.array([1], np.int64), 4, np.float32)
        serve(mapping, RecordingServer(4), msg)
        buf.unlink()
        assert not os.path.exists(buf.path)
        # the server that mapped it keeps working; a restarted one cannot open it
        serve(mapping, RecordingServer(4), msg)
        with pytest.raises(SharedFileGone):
            serve(Mapping(), RecordingServer(4), msg)
        mapping.close()
    finally:
        buf.close()


def test_a_server_that_is_not_ready_refuses_before_mapping():
    buf = SharedBuffer(1 << 16)
    try:
        server = RecordingServer(4)
        server.ready = False
        mapping = Mapping()
        with pytest.raises(RuntimeError, match="not ready"):
            serve(mapping, server, buf.write(None, np.array([1], np.int64), 4, np.float32))
        assert mapping.path is None
    finally:
        buf.close()


def test_a_message_larger_than_the_file_is_refused():
    buf = SharedBuffer(needed(None, np.arange(10), 4, 4))
    try:
        msg = buf.write(None, np.arange(10, dtype=np.int64), 4, np.float32)
        path, size, dtype, dim, head, n_push, n_req = msg
        mapping = Mapping()
        with pytest.raises(ValueError):
            serve(mapping, RecordingServer(4), (path, size, dtype, dim, head, n_push, 10**6))
        mapping.close()
    finally:
        buf.close()


class Doorbell:
    """A doorbell loop on a thread (a shard server's, without Ray), serving ``buf``."""

    def __init__(self, buf, server, dim, fail=lambda msg: False):
        self.served = None
        self.stopping = False

        def serve_one(mapping, msg):
            if fail(msg):
                raise FloatingPointError("refused")
            return serve(mapping, server, msg)

        def run():
            self.served = doorbell_loop(buf.path, buf.size, np.dtype(np.float32).str, dim,
                                        "head", serve_one, lambda: self.stopping, poll=0.05)
        buf.bell = Bell(buf.map)
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def alive(self):
        return self.thread.is_alive()


needs_doorbell = pytest.mark.skipif(not doorbell_available(),
                                    reason="the doorbell needs Linux on x86-64")


@contextlib.contextmanager
def rung_file(dim, **kw):
    """``(buf, server, bell)``: a file, its recording server and that server's loop."""
    buf = SharedBuffer(1 << 16)
    server = RecordingServer(dim)
    bell = Doorbell(buf, server, dim, **kw)
    try:
        yield buf, server, bell
    finally:
        bell.stopping = True
        buf.close()


@needs_doorbell
def test_requests_rung_on_the_doorbell_are_served_in_order():
    D = 4
    rng = np.random.default_rng(1)
    with rung_file(D) as (buf, server, bell):
        for seq in range(1, 201):
            ids = np.unique(rng.integers(0, 50, 5))
            push = None if seq % 3 == 0 else \
                ("head", seq, np.array([seq], np.int64), np.full((1, D), seq, np.float32),
                 np.array([-seq], np.float32))
            msg = buf.write(push, ids, D, np.float32)
            ticket = buf.ring(msg)
            assert buf.answer(ticket, bell.alive) is True
            rows, biases = buf.reply(msg)
            want_rows, want_b = server.gather(ids)
            np.testing.assert_array_equal(rows, want_rows)
            np.testing.assert_array_equal(biases, want_b)
            del rows, biases
        assert [u[1] for u in server.updates] == [s for s in range(1, 201) if s % 3]
        assert all(u[3][0, 0] == u[1] and u[4][0] == -u[1] for u in server.updates)
        buf.stop()
        bell.thread.join(5)
        assert not bell.alive() and bell.served == 200


@needs_doorbell
def test_a_request_the_server_refuses_is_reported_and_the_loop_goes_on():
    D = 3
    refuse = lambda msg: msg[4] is not None and msg[4][1] == 2   # noqa: E731
    with rung_file(D, fail=refuse) as (buf, server, bell):
        for seq, want in ((1, True), (2, False), (3, True)):
            push = ("head", seq, np.array([0], np.int64), np.ones((1, D), np.float32),
                    np.ones(1, np.float32))
            assert buf.answer(buf.ring(buf.write(push, None, D, np.float32)), bell.alive) \
                is want
        assert [u[1] for u in server.updates] == [1, 3]


@needs_doorbell
def test_a_loop_that_ended_is_noticed_instead_of_waited_for():
    D = 3
    with rung_file(D) as (buf, _, bell):
        bell.stopping = True        # as a server that closes (or dies) between requests
        bell.thread.join(5)
        assert not bell.alive()
        ticket = buf.ring(buf.write(None, np.array([1], np.int64), D, np.float32))
        assert buf.answer(ticket, bell.alive, poll=0.01) is None
