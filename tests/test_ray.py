"""The distributed head (``fastsampled.ray``): the same results as a single-machine head,
updates applied once, recovery from shard servers and trainers killed with SIGKILL, the
data-parallel trainers. One local Ray instance (token authentication on) serves the module.

The shard server's own logic and the routing are tested without Ray in test_shardserver.py.
"""
import glob
import json
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

import fastsampled as fs
from fastsampled._shardserver import shard_dir_name
from fastsampled._shmxfer import doorbell_available

V, D, S, B = 3000, 8, 16, 32


ray = pytest.importorskip("ray")
fsray = pytest.importorskip("fastsampled.ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # the trainers' data factories below travel by value (workers cannot import this file)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    started = fsray.connect(num_cpus=2)
    yield
    if started:
        ray.shutdown()


def test_the_local_instance_keeps_token_authentication_on():
    """Ray's services listen on the machine's interfaces (Ray maps a loopback node address
    back to the machine's own), so what keeps others out is its token authentication,
    which a local instance started here must not turn off."""
    auth = pytest.importorskip("ray._private.authentication.authentication_utils")
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        pytest.skip("RAY_AUTH_MODE=disabled in this environment")
    assert auth.is_token_auth_enabled()


def _batches(n, seed=0, batch=B, num_classes=V, dim=D):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(batch, dim)).astype(np.float32),
             np.minimum(rng.zipf(1.3, batch) - 1, num_classes - 1)) for _ in range(n)]


def _state(head, tmp, name):
    """Weights, biases and optimizer slots of a RayHead in global id order (via save)."""
    dest = tmp / name
    head.save(dest)
    m = json.loads((dest / "ray-head.json").read_text())
    P, strategy = m["config"]["num_shards"], m["config"]["partition_strategy"]
    sizes = fs.sharding.layout_sizes(head.num_classes, P, strategy)
    out = {}
    for s in range(P):
        with fs.SampledSoftmaxHead.load(dest / shard_dir_name(s)) as h:
            gids = (np.arange(sizes[s]) * P + s if strategy == "mod" and P > 1
                    else np.arange(sizes[s]) + sum(sizes[:s]))
            arrays = {"weights": np.asarray(h.weights.gather(np.arange(sizes[s]))),
                      "biases": np.asarray(h.biases.gather(np.arange(sizes[s])))}
            for which, st in zip(("w", "b"), h.optimizer_states):
                for slot, arr in st.slots.items():
                    arrays[f"{which}_{slot}"] = np.asarray(arr.gather(np.arange(sizes[s])))
            for k, a in arrays.items():
                full = out.setdefault(k, np.zeros((head.num_classes,) + a.shape[1:], a.dtype))
                full[gids] = a
    return out


def _single_state(head):
    out = {"weights": np.asarray(head.weights.gather(np.arange(head.num_classes))),
           "biases": np.asarray(head.biases.gather(np.arange(head.num_classes)))}
    for which, st in zip(("w", "b"), head.optimizer_states):
        for slot, arr in st.slots.items():
            out[f"{which}_{slot}"] = np.asarray(arr.gather(np.arange(head.num_classes)))
    return out


@pytest.mark.parametrize("optimizer,strategy,shards,transport", [
    ("adam", "mod", 2, "graph"), ("adagrad", "div", 3, "graph"), ("sgd", "mod", 1, "graph"),
    ("adagrad", "mod", 2, "shared")])
def test_a_ray_head_computes_what_a_single_machine_head_does(tmp_path, optimizer, strategy,
                                                              shards, transport):
    single = fs.SampledSoftmaxHead(V, D, path=tmp_path / "one", num_sampled=S, seed=5,
                                   optimizer=optimizer)
    head = fsray.RayHead(V, D, num_shards=shards, partition_strategy=strategy,
                         num_sampled=S, seed=5, optimizer=optimizer, transport=transport)
    try:
        for x, y in _batches(30):
            l1, d1 = single.train_step(x, y)
            l2, d2 = head.train_step(x, y)
            assert l1 == l2
            np.testing.assert_array_equal(d1, d2)
        x, y = _batches(1, seed=9, batch=200)[0]
        i1, s1 = single.predict(x, 5)
        i2, s2 = head.predict(x, 5)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(s1, s2)
        e1, e2 = single.evaluate(x, y), head.evaluate(x, y)
        assert e1.keys() == e2.keys()
        for k in e1:
            assert e2[k] == pytest.approx(e1[k], rel=1e-12)
        single.checkpoint()
        got, want = _state(head, tmp_path, "saved"), _single_state(single)
        assert got.keys() == want.keys()
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)
        assert head.step == single.step == 30
        st = head.transport_stats()
        if transport == "shared" and doorbell_available():
            assert st["rings"] >= 30 * shards       # each step rang, none went as a call
            assert st["calls"] < 30     # the loops started; predict, evaluate, save
        else:
            assert st["calls"] >= 30 * shards
    finally:
        head.close()
        single.close()


def test_a_ray_head_refuses_bad_input_before_any_call(tmp_path):
    head = fsray.RayHead(V, D, num_shards=2, num_sampled=S)
    try:
        before = head.transport_stats()
        with pytest.raises(ValueError, match=r"labels must lie in \[0, 3000\)"):
            head.train_step(np.zeros((2, D), np.float32), [1, V])
        assert head.transport_stats() == before
        g = head.loss_and_grads(np.zeros((2, D), np.float32), [1, 2])[1]
        after = head.transport_stats()
        assert after["calls"] + after["rings"] > before["calls"] + before["rings"]
        g.weights[0, 0] = np.nan
        with pytest.raises(FloatingPointError, match="not finite"):
            head.apply_grads(g)
        assert head.step == 0
        assert head.transport_stats() == after
        with pytest.raises(AttributeError, match="live on its shard servers"):
            head.weights
    finally:
        head.close()
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "chapter1.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        fsray.RayHead(V, D, path=tmp_path / "thesis")
    with pytest.raises(fs.StoreError, match="not a RayHead directory"):
        fsray.RayHead(V, D, path=tmp_path / "thesis", overwrite=True)
    assert (tmp_path / "thesis" / "chapter1.tex").read_text() == "precious"


def trainer_pids():
    """Process ids of the trainer actors running on this machine (from /proc: Ray names an
    actor's process after its class)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if b"Trainer" in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def _kill_shard(head, s, killed=None):
    """SIGKILL shard server ``s``'s process (once Ray has restarted it, if it is restarting
    from an earlier kill: the kill then lands while the head restores it); its pid is
    appended to ``killed``."""
    deadline = time.monotonic() + 120
    while True:
        try:
            pid = ray.get(head.shard_handles[s].info.remote(), timeout=30)["pid"]
            break
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    if killed is not None:
        killed.append(pid)


@pytest.mark.parametrize("where,transport", [("ram", "graph"), ("disk", "graph"),
                                             ("ram", "shared")])
def test_shard_servers_killed_at_random_points_lose_nothing(tmp_path, where, transport):
    """Ten kills per run: at random moments (most fall in a step's exchange), and one
    between the two phases of a checkpoint. The head never stops, and its results stay
    those of the uninterrupted single-machine head."""
    single = fs.SampledSoftmaxHead(V, D, path=tmp_path / "one", num_sampled=S, seed=2,
                                   optimizer="adam")
    head = fsray.RayHead(V, D, num_shards=3, num_sampled=S, seed=2, optimizer="adam",
                         path=None if where == "ram" else tmp_path / "rh",
                         transport=transport)
    rng = np.random.default_rng(1)
    batches = _batches(60, seed=3)
    group = type(head._shards)
    # the checkpoint's hardest moment: on disk after the manifest, before the shards'
    # own commits; in RAM while the shards copy their state
    method = "snapshots" if where == "ram" else "call"
    original = getattr(group, method)

    def kill_in_checkpoint(self, *args, **kw):
        if kill_in_commit and (where == "ram" or args[0] == "commit"):
            kill_in_commit.pop()
            _kill_shard(head, 0, killed)
        return original(self, *args, **kw)

    kill_in_commit = [True]
    killed = []
    try:
        setattr(group, method, kill_in_checkpoint)
        for i, (x, y) in enumerate(batches):
            if i % 6 == 0 and i < 54:
                s = int(rng.integers(3))
                killer = threading.Timer(float(rng.uniform(0, 0.02)), _kill_shard,
                                         (head, s, killed))
                killer.start()
            if i % 10 == 9:
                head.checkpoint()
            assert head.train_step(x, y)[0] == single.train_step(x, y)[0]
            if i % 6 == 5:
                killer.join()
        assert not kill_in_commit and len(killed) == 10
        # one restore may answer two kills (the second landing while it ran)
        assert head.transport_stats()["recoveries"] >= 6
        if transport == "shared":       # each file is unlinked once its server mapped it
            assert not glob.glob(f"/dev/shm/fastsampled-ray-{os.getpid()}-*")
        single.checkpoint()
        got, want = _state(head, tmp_path, "saved"), _single_state(single)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    finally:
        setattr(group, method, original)
        head.close()
        single.close()


def test_a_disk_head_reloads_at_its_last_global_checkpoint(tmp_path):
    head = fsray.RayHead(V, D, num_shards=2, num_sampled=S, seed=4, optimizer="adagrad",
                         path=tmp_path / "rh")
    batches = _batches(12, seed=5)
    for x, y in batches[:6]:
        head.train_step(x, y)
    head.checkpoint()
    x0, _ = batches[0]
    want = head.predict(x0, 3)
    for x, y in batches[6:]:
        head.train_step(x, y)         # not checkpointed: gone after the reload
    head.close()
    again = fsray.RayHead.load(tmp_path / "rh")
    try:
        assert again.step == 6 and again.sampler.calls == 6
        got = again.predict(x0, 3)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    finally:
        again.close()


class _Data:
    """Deterministic batches per trainer, as a factory (picklable). With ``mark``, trainer 0
    creates that file once it has made batch ``at`` and then pauses for a second, so that a
    process killed when the file appears dies in the middle of the run, however slowly the
    machine runs."""

    def __init__(self, n, num_classes=V, mark=None, at=10):
        self.n = n
        self.num_classes = num_classes
        self.mark, self.at = mark, at

    def __call__(self, index):
        for i, (x, y) in enumerate(_batches(self.n, seed=100 + index,
                                            num_classes=self.num_classes)):
            if self.mark and index == 0 and i == self.at and not os.path.exists(self.mark):
                with open(self.mark, "w"):
                    pass
                time.sleep(1.0)
            yield x, y


def _train(mode, kill=None, where="ram", tmp_path=None, steps=None):
    """Train over 2 shards and 2 trainers; ``kill`` ("trainer" or "shard") kills one such
    process with SIGKILL in the middle of the run, "checkpoint" shard server 1 as the first
    round's checkpoint begins (it comes back at the previous checkpoint, without the round)."""
    head = fsray.RayHead(V, D, num_shards=2, num_sampled=S, seed=8, optimizer="adagrad",
                         path=None if where == "ram" else tmp_path / f"dp-{kill}-{where}")
    killer = None
    mark = None if kill in (None, "checkpoint") else str(tmp_path / f"mark-{kill}")
    stale = set(trainer_pids())     # an earlier run's trainers may still be exiting
    if kill == "checkpoint":
        plain, calls = head.checkpoint, []

        def checkpoint():               # train() checkpoints before its first round too
            calls.append(1)
            if len(calls) == 2:
                _kill_shard(head, 1)
            return plain()
        head.checkpoint = checkpoint
    elif kill is not None:
        def k():
            deadline = time.monotonic() + 120
            while not os.path.exists(mark) and time.monotonic() < deadline:
                time.sleep(0.01)
            if kill == "shard":
                _kill_shard(head, 1)
            else:
                pids = []
                while not pids:          # the trainers may still be starting
                    pids = [p for p in trainer_pids() if p not in stale]
                    time.sleep(0.02)
                os.kill(pids[0], signal.SIGKILL)
        killer = threading.Thread(target=k)
        killer.start()
    try:
        out = fsray.train(head, _Data(24, mark=mark), num_trainers=2, mode=mode,
                          checkpoint_every=8, steps=steps)
        if killer is not None:
            killer.join()
        x, _ = _batches(1, seed=77, batch=64)[0]
        return out, head.predict(x, 5), head.step
    finally:
        head.close()


def test_synchronous_training_ends_where_an_uninterrupted_run_does(tmp_path):
    base, (ids, scores), step = _train("sync")
    assert base["steps"] == 24 and step == 24 and base["examples"] == 2 * 24 * B
    assert base["losses"][-1] < base["losses"][0]
    for kill, where in [("trainer", "disk"), ("shard", "disk"), ("checkpoint", "disk"),
                        ("checkpoint", "ram")]:
        out, (ids2, scores2), step2 = _train("sync", kill, where, tmp_path)
        assert out["retries"] >= 1, kill
        assert step2 == 24
        np.testing.assert_array_equal(ids2, ids)
        np.testing.assert_allclose(scores2, scores, rtol=1e-6)


def test_asynchronous_training_completes_after_a_trainer_is_killed(tmp_path):
    out, (ids, _), step = _train("async", "trainer", tmp_path=tmp_path)
    assert out["retries"] >= 1 and out["steps"] == 24 and step == 48
    assert out["losses"][-1] < out["losses"][0]


def test_the_torch_adapter_trains_a_ray_head_unchanged(tmp_path):
    torch = pytest.importorskip("torch")
    from fastsampled.torch import SampledSoftmaxLoss
    single = fs.SampledSoftmaxHead(V, D, path=tmp_path / "one", num_sampled=S, seed=6)
    head = fsray.RayHead(V, D, num_shards=2, num_sampled=S, seed=6)
    try:
        losses = []
        for h in (single, head):
            fn = SampledSoftmaxLoss(h)
            run = []
            for x, y in _batches(5, seed=11):
                hidden = torch.tensor(x, requires_grad=True)
                loss = fn(hidden, torch.tensor(y))
                loss.backward()
                run.append((float(loss.detach()), hidden.grad.numpy().copy()))
            losses.append(run)
        for (l1, g1), (l2, g2) in zip(*losses):
            assert l1 == l2
            np.testing.assert_array_equal(g1, g2)
    finally:
        head.close()
        single.close()


def test_trainers_take_their_batches_from_a_ray_dataset():
    pytest.importorskip("ray.data")
    rng = np.random.default_rng(0)
    ds = ray.data.from_items([{"inputs": rng.normal(size=D).astype(np.float32),
                               "labels": int(rng.integers(V))} for _ in range(256)])
    head = fsray.RayHead(V, D, num_shards=2, num_sampled=S)
    try:
        out = fsray.train(head, ds, num_trainers=2, batch_size=32, mode="sync",
                          checkpoint_every=2)
        assert out["examples"] == 256 and out["steps"] == 4 and head.step == 4
        with pytest.raises(ValueError, match="batch_size is required"):
            fsray.train(head, ds, num_trainers=2)
    finally:
        head.close()
