"""The shared-memory files that carry a distributed step's rows and updates between the caller
and a shard server on its node (``fastsampled._shmxfer``), without Ray."""
import os

import numpy as np
import pytest

from fastsampled._shmxfer import Mapping, SharedBuffer, SharedFileGone, needed, serve


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
    buf = SharedBuffer(4096)
    try:
        msg = buf.write(None, np.arange(10, dtype=np.int64), 4, np.float32)
        path, size, dtype, dim, head, n_push, n_req = msg
        mapping = Mapping()
        with pytest.raises(ValueError):
            serve(mapping, RecordingServer(4), (path, size, dtype, dim, head, n_push, 10**6))
        mapping.close()
    finally:
        buf.close()
