"""The sampled-softmax head on a Ray cluster: class-sharded shard servers, data-parallel
trainers (``pip install ".[ray]"``; this module is the only one that imports Ray).

:class:`RayHead` is a :class:`~fastsampled.SampledSoftmaxHead` whose classes live on
``num_shards`` shard servers, one Ray actor each, owning the rows ``id % num_shards == s``
(``partition_strategy="mod"``; ``"div"``: contiguous blocks) of the weights and biases and
their optimizer state, in RAM or memory-mapped under a directory on the actor's node. A
training step samples on the caller (the sampler is replicated: closed form, or an alias
table), pulls the unique rows of the labels and candidates from the shards that own them (one
request per shard, all shards at once), runs the fused kernel on them, and sends each shard
its slice of the sparse gradient. With the default transport, requests and updates to the
shard servers on the caller's node go through a shared-memory file per server and its
doorbell (``fastsampled._shmxfer``), not Ray calls. Only ids, rows and gradient rows travel;
nothing per step is proportional to the number of classes. ``predict`` and ``evaluate`` are
exact: each shard scans its own rows, and the caller merges the top-k lists and the
log-sum-exps.

:func:`train` runs several trainer actors against the same shard servers, synchronously
(each step's gradients from all trainers summed per row and applied once) or asynchronously
(each trainer applies its own, optionally within a bounded staleness).

Checkpoints are global and atomic, and a shard server killed mid-training is restarted by Ray
and brought back to where it was; docs/cluster.md describes the architecture, the fault model
and what a user must secure on a real cluster.
"""
import asyncio
import concurrent.futures
import json
import logging
import os
import pathlib
import threading
import time

import numba
import numpy as np
import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from ._files import atomic_output, atomic_write_bytes, read_json_object
from ._errors import StoreError
from ._headscan import full_softmax_losses
from ._layout import check_strategy
from ._shardroute import Router, merge_lse, merge_topk
from ._headinit import optimizer_from_record
from ._shardserver import (INITIAL, Aborted, ServerRestarted, ShardNotReady, ShardServer,
                           shard_dir_name)
from ._shmxfer import (Bell, Mapping, SharedBuffer, SharedFileGone, doorbell_available,
                       doorbell_loop, needed, serve)
from ._step import SparseGrads, check_sampled_values, step_ids
from ._step import loss_and_grads_on_unique
from ._validate import as_int
from ._validate_kernels import first_nonfinite
from .head import SampledSoftmaxHead
from .optimizers import check_sorted_ids
from .sharding import lock_directory, unlock_directory

__all__ = ["RayHead", "train", "connect"]

logger = logging.getLogger("fastsampled.ray")

MANIFEST = "ray-head.json"
FORMAT = "fastsampled.RayHead"
VERSION = 1
DIRECT_CALL_BYTES = 16 << 20   # rows and gradients travel inline in the call, not via the store
RECOVERY_TIMEOUT_S = 300.0     # how long a shard server may take to come back
_SENDER = "head"               # the sender id of a RayHead's own updates
# The caller runs a distributed step's kernels on one Numba thread, and the fused loss of a
# large step (rows x dim values from here on) on `step_threads`: an OpenMP worker spinning
# after a parallel kernel holds a core that the shard servers (and Ray's channels) on the
# same node need while the caller waits for them (docs/cluster.md#threads-on-the-caller).
PARALLEL_STEP_VALUES = 1 << 20
# a shard server's kernels are small (a gather, a sparse update): one Numba thread, and no
# OpenMP threads spinning after each kernel while the caller and the other servers wait
SERVER_ENV = {"env_vars": {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                           "OMP_WAIT_POLICY": "PASSIVE"}}


def connect(address=None, **init_kwargs):
    """Use the Ray instance this process is connected to, or connect to ``address``, or
    start a local one (no dashboard, Ray's token authentication as Ray sets it, row-sized
    objects passed inline; docs/cluster.md#security says what it listens on).

    Parameters
    ----------
    address : str, optional
        A cluster's address (``"auto"`` for the one ``ray start`` made on this machine).
    **init_kwargs
        Passed to ``ray.init`` when a connection is made here.

    Returns
    -------
    bool
        Whether this call started or connected Ray (then the caller shuts it down).
    """
    if ray.is_initialized():
        return False
    if address is None:
        kw = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                  _system_config={"max_direct_call_object_size": DIRECT_CALL_BYTES})
        kw.update(init_kwargs)
        ray.init(**kw)
    else:
        ray.init(address=address, **init_kwargs)
    return True


# ---------------------------------------------------------------------- the shard actor

class ShardActor:
    """The Ray actor around a :class:`~fastsampled._shardserver.ShardServer` (asynchronous,
    so that a trainer's request can wait for the other trainers' updates)."""

    def __init__(self, spec):
        self.server = ShardServer(spec)
        self.generation = 0
        self.finished = set()           # asynchronous trainers whose data ended
        self._cond = None
        self._mapping = None            # the caller's shared-memory file (transport "shared")
        # the server is used by the event loop's methods and by a doorbell thread: one at a
        # time (never held across an await)
        self._lock = threading.Lock()
        self._closing = False
        self._bells = None

    def _condition(self):
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def _changed(self):
        cond = self._condition()
        async with cond:
            cond.notify_all()

    async def _wait(self, ready, timeout):
        gen = self.generation
        cond = self._condition()
        async with cond:
            await asyncio.wait_for(cond.wait_for(lambda: ready() or self.generation != gen),
                                   timeout)
        if self.generation != gen:
            raise Aborted(f"shard {self.server.shard} was restored while a request waited")

    async def _reset(self, result):
        self.generation += 1
        self.finished = set()
        await self._changed()
        return result

    async def info(self):
        with self._lock:
            info = self.server.info()
        return dict(info, node=ray.get_runtime_context().get_node_id())

    async def create(self, overwrite):
        with self._lock:
            result = self.server.create(overwrite)
        return await self._reset(result)

    async def restore(self, checkpoint):
        with self._lock:
            result = self.server.restore(checkpoint)
        return await self._reset(result)

    async def exchange(self, push, ids):
        """Apply ``push`` (``(sender, seq, ids, gw, gb)`` or None), then gather ``ids``."""
        out = self.step((push, ids))
        if push is not None:
            await self._changed()
        return out

    async def exchange_shared(self, msg):
        """:meth:`exchange` with the update and the rows in the caller's shared-memory file
        (``fastsampled._shmxfer``)."""
        if self._mapping is None:
            self._mapping = Mapping()
        with self._lock:
            applied = serve(self._mapping, self.server, msg)
        if applied:
            await self._changed()
        return applied

    async def doorbell(self, path, size, dtype, dim, sender):
        """Serve the caller's shared-memory file through its doorbell on a thread of this
        process (``fastsampled._shmxfer.doorbell_loop``) until the caller stops it or the
        server closes; returns the number of requests served."""
        loop = asyncio.get_running_loop()

        def serve_one(mapping, msg):
            with self._lock:
                applied = serve(mapping, self.server, msg)
            if applied:         # wake requests waiting for updates, on the event loop
                loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._changed()))
            return applied

        if self._bells is None:
            self._bells = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="doorbell")
        return await loop.run_in_executor(self._bells, doorbell_loop, path, size, dtype, dim,
                                          sender, serve_one, lambda: self._closing)

    def step(self, request):
        """:meth:`exchange` for the head's compiled graph (one ``(push, ids)`` argument)."""
        push, ids = request
        with self._lock:
            if push is not None:
                self.server.apply(*push)
            return None if ids is None else self.server.gather(ids)

    async def apply(self, sender, seq, ids, gw, gb):
        with self._lock:
            applied = self.server.apply(sender, seq, ids, gw, gb)
        await self._changed()
        return applied

    async def gather_when(self, ids, sync_step, sender, seq, staleness, active, timeout):
        """Gather once synchronous step ``sync_step`` is applied, or (asynchronous) once every
        sender in ``active`` has applied update ``seq - 1 - staleness`` (or finished)."""
        s = self.server
        if sync_step is not None:
            await self._wait(lambda: s.sync_step >= sync_step, timeout)
        elif staleness is not None:
            need = seq - 1 - staleness
            await self._wait(lambda: all(s.applied.get(t, 0) >= need or t in self.finished
                                         for t in active), timeout)
        with self._lock:
            return s.gather(ids)

    async def contribute(self, trainer, step, trainers, ids, gw, gb):
        with self._lock:
            applied = self.server.contribute(trainer, step, trainers, ids, gw, gb)
        await self._changed()
        return applied

    async def finish(self, sender, sync_step):
        """``sender``'s data ended: synchronous steps from ``sync_step`` on have no part of
        it, and asynchronous ones no longer wait for it."""
        self.finished.add(sender)
        if sync_step is not None:
            with self._lock:
                self.server.finish(sender, sync_step)
        await self._changed()

    async def scan(self, x, k, want_lse):
        with self._lock:
            return self.server.scan(x, k, want_lse)

    async def snapshot(self):
        with self._lock:
            return self.server.snapshot()

    async def prepare(self):
        with self._lock:
            return self.server.prepare()

    async def commit(self, epoch):
        with self._lock:
            return self.server.commit(epoch)

    async def save(self, path):
        with self._lock:
            return self.server.save(path)

    async def close(self):
        self._closing = True        # a doorbell loop ends at its next wake-up
        with self._lock:
            self.server.close()
        if self._mapping is not None:
            self._mapping.close()


def _is_shard_failure(e):
    """Whether ``e`` says a shard server died, is restarting, or came back empty."""
    if isinstance(e, RayActorError):
        return True
    return isinstance(e, RayTaskError) and isinstance(getattr(e, "cause", None), ShardNotReady)


class ShardGroup:
    """The handles of a head's shard servers, its checkpoint, and the log of the updates sent
    since (replayed into a shard server that Ray restarted)."""

    def __init__(self, handles, checkpoint):
        self.handles = handles
        self.checkpoint = checkpoint    # per shard: INITIAL, a snapshot ref, or a commit
        self.log = []                   # [(seq, [payload per shard])] since the checkpoint
        self.log_complete = True        # False while trainers apply updates the log lacks
        self.log_bytes = 0
        self.calls = 0
        self.bytes_out = 0
        self.bytes_in = 0
        self.recoveries = 0
        self.dag = None                 # the compiled graph of the step's exchange
        self.use_dag = True
        self.dag_retry_at = 0.0
        self.shared = None              # per shard: a SharedBuffer, None, or False (remote)
        self.doorbell = doorbell_available()
        self.rings = 0
        self.early = [None] * len(handles)   # per shard: an update rung by push_early
        self.dim = self.dtype = None

    def __len__(self):
        return len(self.handles)

    def exchange(self, args, replayed):
        """``exchange(*args[s])`` on every shard: through a compiled graph (shared-memory
        channels, no per-call scheduling) when one can be built, else as actor calls. A
        failure in the graph tears it down and the step is redone with actor calls, which
        recover the failed shard (updates already applied are recognised and skipped)."""
        if self.shared is not None:
            return self._exchange_shared(args, replayed)
        if self.dag is None and self.use_dag and time.monotonic() >= self.dag_retry_at:
            self._compile()
        if self.dag is not None:
            try:
                out = ray.get(self.dag.execute(*args))
                self.calls += len(args)
                return out
            except Exception as e:      # a shard died or failed: the slow path recovers it
                logger.warning("compiled graph failed (%s); using actor calls",
                               type(e).__name__)
                self.teardown()
                self.dag_retry_at = time.monotonic() + 10.0
        return self.call("exchange", args, replayed=replayed)

    def _exchange_shared(self, args, replayed):
        """:meth:`exchange` with the shard servers on this node through shared-memory files,
        each request rung on the file's doorbell (an actor call where there is none), and
        with the others as actor calls. A request the server could not serve is asked again
        as an actor call, which raises its error; a shard that fails is recovered and asked
        again with an ordinary call (and gets a new file next time)."""
        self.settle_early()
        sent = []
        for s, (h, (push, ids)) in enumerate(zip(self.handles, args)):
            buf = self.shared[s]
            if buf is False:
                sent.append((h.exchange.remote(push, ids), None, None))
                self.calls += 1
                continue
            size = needed(push, ids, self.dim, self.dtype.itemsize)
            if buf is None or buf.size < size:
                if buf is not None:
                    buf.close()
                try:
                    buf = self.shared[s] = SharedBuffer(
                        max(size, 1 << 20, 0 if buf is None else 2 * buf.size))
                except OSError as e:    # e.g. a small /dev/shm: rows inline from now on
                    logger.warning("no shared-memory file for shard server %d (%s); its rows "
                                   "travel in the calls", s, e)
                    self.shared[s] = False
                    sent.append((h.exchange.remote(push, ids), None, None))
                    self.calls += 1
                    continue
            msg = buf.write(push, ids, self.dim, self.dtype)
            if self._rings(s, buf, push):
                sent.append((buf.ring(msg), buf, msg))
                self.rings += 1
            else:
                sent.append((h.exchange_shared.remote(msg), buf, msg))
                self.calls += 1
        return [self._answer(s, ref, buf, msg, args[s], replayed(s))
                for s, (ref, buf, msg) in enumerate(sent)]

    def _answer(self, s, ref, buf, msg, args, retry):
        """The answer of shard ``s`` to a request sent by :meth:`_exchange_shared` (``ref``:
        a doorbell ticket or an actor call; ``buf``: its file or None) or rung early
        (:meth:`push_early`). A request the doorbell could not serve is asked again as a
        call; a shard that failed is recovered, then asked ``retry`` (an ``exchange``'s
        arguments, what the log's replay left to do)."""
        h = self.handles[s]
        if isinstance(ref, int):        # a doorbell ticket
            served = buf.answer(ref, lambda: not ray.wait([buf.loop], timeout=0)[0])
            if served:
                buf.unlink()            # the shard server has it mapped
                return buf.reply(msg)
            if served is None:          # its loop ended (the server died?): calls from now on
                buf.bell_failed = True
            # asked again as a call: it raises the server's error, or recovers the server
            ref = h.exchange_shared.remote(msg)
            self.calls += 1
        if buf is not None:
            try:
                ray.get(ref)
            except RayTaskError as e:   # other failures are settled below
                if isinstance(getattr(e, "cause", None), SharedFileGone):
                    buf.close()         # nothing was applied: the same call, inline
                    self.shared[s] = None
                    buf, ref = None, h.exchange.remote(*args)
                    self.calls += 1
            except RayActorError:
                pass
        got, value = self._settle(s, ref, lambda: h.exchange.remote(*retry))
        if buf is None:
            return value
        if got is ref:
            buf.unlink()                # the shard server has it mapped
            return buf.reply(msg)
        buf.close()                     # recovered: answered inline; a new file next time
        self.shared[s] = None
        return value

    def push_early(self, pushes):
        """Ring each shard server's update (``pushes[s]``: ``(sender, seq, ids, gw, gb)``)
        on its doorbell now, so that it is applied while the caller goes on; the next
        request to that server first waits for it (:meth:`settle_early`). Returns the
        updates it could not ring (their entries; the others None), to be sent with the next
        request."""
        left = list(pushes)
        if self.shared is None:
            return left
        for s, push in enumerate(pushes):
            buf = self.shared[s]
            if push is None or not buf or buf.loop is None or self.early[s] is not None \
                    or buf.size < needed(push, None, self.dim, self.dtype.itemsize) \
                    or not self._rings(s, buf, push):
                continue
            msg = buf.write(push, None, self.dim, self.dtype)
            self.early[s] = (buf.ring(msg), buf, msg, push)
            self.rings += 1
            left[s] = None
        return left

    def settle_early(self):
        """Wait for the updates rung early to be applied (a failed one raises, after
        recovering its server as any request does)."""
        for s in range(len(self.handles)):
            early, self.early[s] = self.early[s], None
            if early is not None:
                ticket, buf, msg, push = early
                self._answer(s, ticket, buf, msg, (push, None), (None, None))

    def _rings(self, s, buf, push):
        """Whether shard ``s``'s request goes through ``buf``'s doorbell (its server's loop
        started on first use); not after the loop ended, nor for another sender's update."""
        if not self.doorbell or buf.bell_failed or (push is not None and push[0] != _SENDER):
            return False
        if buf.loop is None:
            buf.bell = Bell(buf.map)
            buf.loop = self.handles[s].doorbell.remote(buf.path, buf.size, self.dtype.str,
                                                       self.dim, _SENDER)
            self.calls += 1
        return True

    def close_shared(self):
        try:
            self.settle_early()
        except Exception as e:          # closing: the update is lost as an unsent one would be
            logger.warning("an update was not applied before closing (%s)", type(e).__name__)
        for buf in self.shared or ():
            if buf:
                buf.close()
        self.shared = None

    def _compile(self):
        from ray.dag import InputNode, MultiOutputNode
        try:
            with InputNode() as inp:
                dag = MultiOutputNode([h.step.bind(inp[s]) for s, h in enumerate(self.handles)])
            self.dag = dag.experimental_compile()
        except Exception as e:
            logger.warning("no compiled graph (%s: %s); using actor calls", type(e).__name__, e)
            self.use_dag = False

    def teardown(self):
        dag, self.dag = self.dag, None
        if dag is not None:
            try:
                dag.teardown()
            except Exception:
                pass

    def call(self, method, args, *, replayed=None):
        """``method(*args[s])`` on every shard at once; a shard that fails is recovered and
        asked again (with ``replayed(s)``'s arguments when given: the call's update is in
        the log and was replayed)."""
        refs = [getattr(h, method).remote(*a) for h, a in zip(self.handles, args)]
        self.calls += len(refs)
        out = []
        for s, (h, ref) in enumerate(zip(self.handles, refs)):
            retry = args[s] if replayed is None else replayed(s)
            out.append(self._settle(s, ref,
                                    lambda h=h, retry=retry: getattr(h, method).remote(*retry))[1])
        return out

    def _settle(self, s, ref, resubmit):
        """``(ref, value)`` of shard ``s``'s call ``ref``; a shard that failed is recovered
        and ``resubmit()`` asks again (at most twice)."""
        for attempt in range(3):
            try:
                return ref, ray.get(ref)
            except (RayActorError, RayTaskError) as e:
                if not _is_shard_failure(e) or attempt == 2:
                    raise
                logger.warning("shard server %d failed (%s); restoring it", s, type(e).__name__)
                self.recover(s)
                ref = resubmit()
        raise AssertionError("not reached")

    def snapshots(self):
        """A new checkpoint of in-RAM shards: each shard's copy of its state, kept in Ray's
        object store and owned by this process (a shard that fails while copying is
        recovered from the previous checkpoint and copies again). The copies are read
        zero-copy to see that they exist; they stay in the object store."""
        refs = [h.snapshot.remote() for h in self.handles]
        self.calls += len(refs)
        return [self._settle(s, ref, h.snapshot.remote)[0]
                for s, (h, ref) in enumerate(zip(self.handles, refs))]

    def wait_alive(self, s, timeout=RECOVERY_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while True:
            try:
                return ray.get(self.handles[s].info.remote(), timeout=10)
            except (RayActorError, GetTimeoutError) as e:
                if getattr(e, "actor_init_failed", False) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def recover(self, s, tries=3):
        """Bring shard ``s`` back to the checkpoint, then replay the logged updates; started
        again when the server fails again meanwhile (killed twice in a row). When the log
        lacks some of the updates it lost, raise :class:`ServerRestarted` instead."""
        if not self.log_complete:
            raise ServerRestarted(f"shard server {s} was restarted and lost updates that the "
                                  "head's log does not hold")
        for attempt in range(tries):
            try:
                self.wait_alive(s)
                ray.get(self.handles[s].restore.remote(self.checkpoint[s]))
                for seq, payloads in self.log:
                    ray.get(self.handles[s].apply.remote(_SENDER, seq, *payloads[s]))
                break
            except (RayActorError, RayTaskError) as e:
                if not _is_shard_failure(e) or attempt == tries - 1:
                    raise
                logger.warning("shard server %d failed while it was restored (%s); again", s,
                               type(e).__name__)
        self.recoveries += 1

    def restore_all(self):
        """Every shard back to the checkpoint (after a failure that the log cannot repair)."""
        for s in range(len(self.handles)):
            self.wait_alive(s)
        ray.get([h.restore.remote(c) for h, c in zip(self.handles, self.checkpoint)])
        self.log, self.log_bytes = [], 0
        self.log_complete = True


def _spread_options(num_shards, options):
    """Actor options per shard: restarts on, and each shard pinned to one node (round robin
    over the alive nodes), so that a restart finds its directory again."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))
    out = []
    for s in range(num_shards):
        o = dict(num_cpus=0, max_restarts=-1, max_task_retries=0, runtime_env=SERVER_ENV,
                 scheduling_strategy=NodeAffinitySchedulingStrategy(nodes[s % len(nodes)],
                                                                    soft=False))
        o.update(options or {})
        out.append(o)
    return out


def _node_of(options):
    """The node an actor's options pin it to (None: not pinned)."""
    return getattr(options.get("scheduling_strategy"), "node_id", None)


def _nbytes(obj):
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, (tuple, list)):
        return sum(_nbytes(o) for o in obj)
    return 0


# ---------------------------------------------------------------------- the head

class RayHead(SampledSoftmaxHead):
    """A :class:`~fastsampled.SampledSoftmaxHead` whose classes live on Ray shard servers.

    It has the single-machine head's methods and protocol (``train_step``,
    ``loss_and_grads``, ``apply_grads``, ``loss``, ``predict``, ``evaluate``,
    ``exact_loss``, ``checkpoint``, ``save``, ``load``), so ``fastsampled.torch`` and the
    JAX recipe use it unchanged. With the same seed it computes what a memory-mapped
    single-machine head computes: the same initial rows, candidates, losses and updates.

    Parameters
    ----------
    num_classes, dim
        As :class:`~fastsampled.SampledSoftmaxHead`.
    num_shards : int
        Shard servers (Ray actors), placed round robin over the cluster's nodes.
    path : str or path-like, optional
        Directory for memory-mapped shards: shard ``s`` keeps its rows and optimizer state in
        ``path/shard-<s>`` on its node, and the manifest of the global checkpoints is
        ``path/ray-head.json`` on the caller's. None keeps the rows in the actors' RAM, and
        checkpoints as copies in Ray's object store (owned by this process).
    partition_strategy : {"mod", "div"}
        Which classes a shard owns: ``id % num_shards == s``, or contiguous blocks.
    sampler, counts, distortion, loss, num_sampled, num_true, optimizer, lr, init,
    init_scale, reduction, remove_accidental_hits, subtract_log_q, seed, dtype, overwrite,
    durability
        As :class:`~fastsampled.SampledSoftmaxHead`.
    address : str, optional
        Ray address to connect to; default: the Ray instance this process is connected to,
        else a local one started here (and shut down by :meth:`close`).
    shard_options : dict, optional
        Ray actor options for the shard servers (e.g. ``{"num_cpus": 1}`` or a scheduling
        strategy), over the defaults: no CPU reserved, restarted without limit, pinned to a
        node.
    max_log_bytes : int
        The updates sent since the last checkpoint are kept (to replay into a restarted
        shard server); when they exceed this, the head checkpoints.
    transport : {"shared", "graph", "calls"}
        How a step's requests reach the shard servers: actor calls whose rows and gradients
        pass through a shared-memory file for the shard servers on the caller's node (inline
        for the others; the default), a Ray compiled graph (shared-memory channels, no
        per-call scheduling, but each server's channel reader spins while it waits; actor
        calls when it cannot be built or fails), or plain actor calls
        (docs/cluster.md#what-travels-per-step).
    step_threads : int, optional
        Threads for the fused loss of a large step on the caller (every other kernel of a
        distributed step runs on one). Default: Numba's thread count, except with
        ``transport="graph"`` on a node without a core for each of them besides one per
        shard server placed there: 1 (docs/cluster.md#threads-on-the-caller).

    Examples
    --------
    >>> import numpy as np, fastsampled as fs
    >>> from fastsampled.ray import RayHead
    >>> head = RayHead(10_000, 16, num_shards=2, num_sampled=20, seed=0)   # doctest: +SKIP
    >>> loss, d_x = head.train_step(np.ones((4, 16), np.float32), [1, 2, 3, 4])  # doctest: +SKIP
    """

    distributed = True

    def __init__(self, num_classes, dim, *, num_shards=2, path=None, partition_strategy="mod",
                 sampler="log_uniform", counts=None, distortion=0.75, loss="sampled_softmax",
                 num_sampled=64, num_true=1, optimizer="sgd", lr=None, init="normal",
                 init_scale=None, reduction="mean", remove_accidental_hits=None,
                 subtract_log_q=True, seed=0, dtype="float32", overwrite=False,
                 durability="process", address=None, shard_options=None,
                 max_log_bytes=1 << 30, transport="shared", step_threads=None,
                 _manifest=None):
        self._settings(num_classes, dim, sampler=sampler, counts=counts, distortion=distortion,
                       loss=loss, num_sampled=num_sampled, num_true=num_true,
                       optimizer=optimizer, lr=lr, init=init, reduction=reduction,
                       remove_accidental_hits=remove_accidental_hits,
                       subtract_log_q=subtract_log_q, seed=seed, dtype=dtype,
                       durability=durability)
        self.num_shards = as_int(num_shards, "num_shards", 1)
        if self.num_shards > self.num_classes:
            raise ValueError(f"num_shards ({self.num_shards}) must be <= num_classes "
                             f"({self.num_classes})")
        self.partition_strategy = check_strategy(partition_strategy)
        self.init = init
        self.init_scale = 1.0 / np.sqrt(self.dim) if init_scale is None else float(init_scale)
        self.max_log_bytes = as_int(max_log_bytes, "max_log_bytes", 0)
        self.step_threads = None if step_threads is None else \
            as_int(step_threads, "step_threads", 1)
        if transport not in ("graph", "calls", "shared"):
            raise ValueError(f"transport must be 'graph', 'calls' or 'shared', got "
                             f"{transport!r}")
        self.transport = transport
        self.path = None if path is None else pathlib.Path(os.fspath(path))
        self._options = self._step_options()
        self._router = Router(self.num_classes, self.num_shards, self.partition_strategy)
        self._pending = None
        self._states = (None, None)    # the optimizer state lives on the shard servers
        self.step = 0
        self._epoch = 0
        self._at_checkpoint = (0, 0)    # step and sampler position of the last checkpoint
        self._owns_ray = connect(address)
        try:
            if self.path is not None:
                self._lock_fd = _lock_head_dir(self.path, overwrite and _manifest is None,
                                               _manifest is not None)
            self._start_shards(shard_options, overwrite, _manifest)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ shards
    def _spec(self, s):
        return {"shard": s, "num_shards": self.num_shards, "num_classes": self.num_classes,
                "dim": self.dim, "partition_strategy": self.partition_strategy,
                "dtype": self.dtype.name, "optimizer": self._opt_config, "init": self.init,
                "init_scale": self.init_scale, "seed": self.seed,
                "path": None if self.path is None else
                str((self.path / shard_dir_name(s)).resolve()),
                "durability": self.durability}

    def _start_shards(self, shard_options, overwrite, manifest):
        actor = ray.remote(ShardActor)
        opts = _spread_options(self.num_shards, shard_options)
        handles = [actor.options(**o).remote(self._spec(s)) for s, o in enumerate(opts)]
        self._shards = ShardGroup(handles, [INITIAL] * self.num_shards)
        self._shards.use_dag = self.transport == "graph"
        here = ray.get_runtime_context().get_node_id()
        if self.transport == "shared":
            g = self._shards
            g.dim, g.dtype = self.dim, self.dtype
            g.shared = [None if _node_of(o) == here else False for o in opts]
        if self.step_threads is None:
            # a compiled graph's channel readers spin on their cores while they wait
            local = sum(_node_of(o) == here for o in opts) if self.transport == "graph" else 0
            cpus = os.cpu_count() or 1
            self.step_threads = numba.get_num_threads() if cpus >= \
                numba.get_num_threads() + local else 1
        if manifest is None:
            ray.get([h.create.remote(overwrite) for h in handles])
            if self.path is not None:
                if self.counts is not None:
                    with atomic_output(self.path / "counts.npy") as f:
                        np.save(f, self.counts)
                self.checkpoint()
            return
        self._epoch = manifest["epoch"]
        self.step = manifest["config"]["step"]
        self.sampler.calls = manifest["config"]["sampler_calls"]
        self._at_checkpoint = (self.step, self.sampler.calls)
        self._shards.checkpoint = [(m["epoch"], m["step"], m["applied"], m["sync_step"])
                                   for m in manifest["shards"]]
        self._shards.restore_all()

    @property
    def shard_handles(self):
        """The Ray actor handles of the shard servers (shard ``s`` at index ``s``)."""
        return list(self._shards.handles)

    def shard_info(self):
        """Per shard: its rows, step, the node it runs on, and its process's memory."""
        self.flush()
        return self._shards.call("info", [()] * self.num_shards)

    def expect_foreign_updates(self):
        """Data-parallel trainers are about to apply updates to the shard servers that this
        head's log does not hold: until the next checkpoint (or :meth:`rollback`), a shard
        server that restarts cannot be brought back from the log and raises
        ``ServerRestarted`` instead (:func:`train` reruns the round)."""
        self._shards.log_complete = False

    def trainer_spec(self):
        """What a data-parallel trainer needs to compute this head's steps: sizes, dtype,
        sampler settings and the step's options (a dict)."""
        return {"num_classes": self.num_classes, "dim": self.dim, "dtype": self.dtype.name,
                "num_true": self.num_true, "num_sampled": self.num_sampled,
                "partition_strategy": self.partition_strategy, "sampler": self.sampler_kind,
                "counts": self.counts, "distortion": self.distortion,
                "options": self._options, "seed": self.seed}

    def transport_stats(self):
        """Calls made to shard servers, requests rung on their doorbells (transport
        ``"shared"``), bytes sent and received in both (rows, gradients and ids), and shard
        recoveries, since the head was made."""
        g = self._shards
        return {"calls": g.calls, "rings": g.rings, "bytes_out": g.bytes_out,
                "bytes_in": g.bytes_in, "recoveries": g.recoveries}

    # ------------------------------------------------------------------ attributes
    @property
    def weights(self):
        raise AttributeError("a RayHead's weights live on its shard servers; use save(path) "
                             "to write them to disk, or predict / evaluate")

    @property
    def biases(self):
        raise AttributeError("a RayHead's biases live on its shard servers; use save(path)")

    def config(self):
        cfg = {k: v for k, v in super().config().items() if k not in ("format", "version")}
        cfg.update(format=FORMAT, version=VERSION, init=self.init, init_scale=self.init_scale,
                   optimizer_t=[self.step, self.step])
        return cfg

    def _check_open(self):
        if self.closed:
            raise ValueError(f"{self!r} is closed")

    def _placement(self):
        return f" on {self.num_shards} shard servers"

    # ------------------------------------------------------------------ training
    def _compute(self, x, lab, reduction, sampled_values, want_grads):
        threads = numba.get_num_threads()
        numba.set_num_threads(1)        # see PARALLEL_STEP_VALUES; restored below
        try:
            if sampled_values is None:
                candidates = tuple(self.sampler.sample_unchecked(lab, self.num_sampled, True))
            else:
                candidates = check_sampled_values(sampled_values, lab, self.num_sampled,
                                                  self.num_classes)
            ids = step_ids(lab, candidates[0])
            uniq, inv = np.unique(ids, return_inverse=True)
            rows, brows = self._gather(uniq)
            scale = 1.0 / x.shape[0] if reduction == "mean" else 1.0
            big = ids.size * self.dim >= PARALLEL_STEP_VALUES and self.step_threads > 1
            if big:     # Python threads for the fused loss; Numba's if S takes several chunks
                numba.set_num_threads(min(threads, self.step_threads))
            loss, g = loss_and_grads_on_unique(rows, brows, uniq, inv, x, lab, candidates,
                                               self._options, want_grads=want_grads,
                                               grad_scale=scale, workspace=self._workspace,
                                               threads=self.step_threads if big else None)
        finally:
            numba.set_num_threads(threads)
        return self._checked(loss, g, reduction, scale, want_grads)

    def _gather(self, uniq):
        """Rows and biases of sorted unique ids, from their shards (with the pending update
        in the same call)."""
        groups = self._router.split(uniq)
        push = self._take_pending()
        args = [(push[s], groups[s][1]) for s in range(self.num_shards)]
        res = self._shards.exchange(args, replayed=lambda s: (None, groups[s][1]))
        rows = np.empty((uniq.size, self.dim), self.dtype)
        brows = np.empty(uniq.size, self.dtype)
        for (pos, local), (r, b) in zip(groups, res):
            rows[pos] = r
            brows[pos] = b
        self._shards.bytes_out += _nbytes(args)
        self._shards.bytes_in += rows.nbytes + brows.nbytes
        return rows, brows

    def _take_pending(self):
        pending, self._pending = self._pending, None
        return [None] * self.num_shards if pending is None else pending

    def flush(self):
        """Apply the last update on the shard servers now (it otherwise travels with the
        next step's request, or was rung early and is awaited by it)."""
        self._shards.settle_early()
        if self._pending is not None:
            push = self._take_pending()
            args = [(p, None) for p in push]
            self._shards.exchange(args, replayed=lambda s: (None, None))
            self._shards.bytes_out += _nbytes(args)

    def apply_grads(self, grads):
        """Apply one step's gradients on the shard servers (each its own rows).

        The update is checked here, then rung at once on the doorbells of the shard servers
        that have one (they apply it while the caller goes on) and sent to the others with
        the next request (the next step's, or :meth:`flush`'s); it is applied before
        anything reads the rows. See :meth:`SampledSoftmaxHead.apply_grads`.
        """
        self._check_writable()
        if not isinstance(grads, SparseGrads):
            raise TypeError(f"grads must be a SparseGrads (from loss_and_grads), got "
                            f"{type(grads).__name__}")
        threads = numba.get_num_threads()
        numba.set_num_threads(1)        # see PARALLEL_STEP_VALUES; restored below
        try:
            ids, gw, gb = _checked_grads(grads, self.num_classes, self.dim, self.dtype)
            self.flush()
            payloads = [(local, np.ascontiguousarray(gw[pos]), np.ascontiguousarray(gb[pos]))
                        for pos, local in self._router.split(ids)]
        finally:
            numba.set_num_threads(threads)
        self.step += 1
        g = self._shards
        g.log.append((self.step, payloads))
        g.log_bytes += _nbytes(payloads)
        # rung now where a doorbell can take it (applied while the caller goes on), else
        # sent with the next request
        pending = g.push_early([(_SENDER, self.step) + tuple(p) for p in payloads])
        g.bytes_out += _nbytes([p for p, q in zip(payloads, pending) if q is None])
        self._pending = None if all(q is None for q in pending) else pending
        if g.log_bytes > self.max_log_bytes:
            logger.info("update log at %d bytes: checkpointing", g.log_bytes)
            self.checkpoint()

    # ------------------------------------------------------------------ inference
    def _scan(self, x, k, want_lse):
        self.flush()
        parts = self._shards.call("scan", [(x, k, want_lse)] * self.num_shards)
        ids, scores = merge_topk([(p[0], p[1]) for p in parts], k)
        lse = merge_lse([p[2] for p in parts]) if want_lse else None
        return ids, scores, lse

    def _exact_losses(self, x, lab, k):
        ids, _, lse = self._scan(x, k, True)
        flat = lab.reshape(-1)
        uniq, inv = np.unique(flat, return_inverse=True)
        rows, brows = self._gather(uniq)
        return full_softmax_losses(x, lab, rows[inv], brows[inv], lse), ids

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self):
        """A global checkpoint: every shard at this step, then (on disk) one manifest.

        Shards on disk commit in two phases: each makes its rows durable, the manifest
        ``ray-head.json`` is replaced atomically (the commit point), then each shard commits
        its own record; a shard that crashed between the two catches up when it reopens.
        Shards in RAM send a copy of their state to Ray's object store, owned by this
        process. Either way a restarted shard server comes back to this checkpoint.
        """
        self._check_writable()
        self.flush()
        g = self._shards
        # a shard server restarted before the new checkpoint is in place comes back to the
        # previous one: with the log replayed (its own steps), or, when data-parallel
        # trainers applied updates the log lacks, as ServerRestarted before anything of the
        # new checkpoint is written (their round reruns from the previous one)
        if self.path is None:
            g.checkpoint = g.snapshots()
        else:
            prepared = g.call("prepare", [()] * self.num_shards)
            self._epoch += 1
            self._write_manifest(self.path, self._epoch, prepared)
            g.checkpoint = [(p["epoch"], p["step"], p["applied"], p["sync_step"])
                            for p in prepared]
            g.log_complete = True       # from here on a restart comes back to this one
            g.call("commit", [(p["epoch"],) for p in prepared])
        g.log, g.log_bytes = [], 0
        g.log_complete = True
        self._at_checkpoint = (self.step, self.sampler.calls)

    def rollback(self):
        """Return every shard server, the step counter and the sampler to the last
        checkpoint (after a refused update, or to abandon the steps since)."""
        self._check_open()
        self._pending = None
        try:
            self._shards.settle_early()
        except Exception:               # whatever it did, every shard goes back below
            pass
        self._shards.restore_all()
        self.step, self.sampler.calls = self._at_checkpoint

    def sync(self):
        raise ValueError("a RayHead commits its shards together: use checkpoint()")

    def set_durability(self, durability):
        raise ValueError("a RayHead's durability is chosen when it is created")

    def warm(self, num_rows=None, max_bytes=None):
        """No-op (the shard servers own their page caches)."""
        return {"rows": 0, "vector_rows": 0, "bytes": 0, "seconds": 0.0}

    def save(self, path):
        """Write the head to a new directory that :meth:`load` reopens (shards on disk);
        a head with a ``path`` saved to its own path is :meth:`checkpoint`."""
        dest = self._save_target(path)
        if dest is None:
            return
        self.flush()
        dest.mkdir(parents=True, exist_ok=True)
        saved = self._shards.call("save", [(str((dest / shard_dir_name(s)).resolve()),)
                                           for s in range(self.num_shards)])
        if self.counts is not None:
            with atomic_output(dest / "counts.npy") as f:
                np.save(f, self.counts)
        self._write_manifest(dest, 1, saved)

    def _write_manifest(self, where, epoch, shards):
        """Replace ``where/ray-head.json`` atomically: the head's config at global commit
        ``epoch`` and each shard's commit (``epoch``, ``step``, ``applied``, ``sync_step``)."""
        manifest = {"format": FORMAT, "version": VERSION, "epoch": epoch,
                    "config": self.config(),
                    "shards": [dict(p, dir=shard_dir_name(s)) for s, p in enumerate(shards)]}
        text = json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False) + "\n"
        atomic_write_bytes(where / MANIFEST, text.encode())

    @classmethod
    def load(cls, path, mode="r+", durability="process", *, address=None, shard_options=None,
             max_log_bytes=1 << 30, transport="shared", step_threads=None):
        """Reopen a distributed head at its last global checkpoint.

        Parameters
        ----------
        path : str or os.PathLike
            A directory made by ``RayHead(path=...)`` or :meth:`save`.
        mode : {"r+"}
            Shard servers always open their rows for writing.
        durability, address, shard_options, max_log_bytes, transport, step_threads
            As the constructor.

        Raises
        ------
        StoreError
            The manifest or a shard directory is missing, unreadable, or at another
            checkpoint than the manifest records.
        """
        if mode != "r+":
            raise ValueError("a RayHead opens its shards for writing (mode='r+')")
        p = pathlib.Path(os.fspath(path))
        m = read_manifest(p)
        c = m["config"]
        counts = None
        if c["sampler"] == "unigram":
            counts = np.load(p / "counts.npy", allow_pickle=False)
        return cls(c["num_classes"], c["dim"], num_shards=c["num_shards"], path=p,
                   partition_strategy=c["partition_strategy"], sampler=c["sampler"],
                   counts=counts, distortion=c["distortion"], loss=c["loss"],
                   num_sampled=c["num_sampled"], num_true=c["num_true"],
                   optimizer=optimizer_from_record(c["optimizer"]), init=c["init"],
                   init_scale=c["init_scale"], reduction=c["reduction"],
                   remove_accidental_hits=c["remove_accidental_hits"],
                   subtract_log_q=c["subtract_log_q"], seed=c["seed"], dtype=c["dtype"],
                   durability=durability, address=address, shard_options=shard_options,
                   max_log_bytes=max_log_bytes, transport=transport,
                   step_threads=step_threads, _manifest=m)

    def close(self):
        """Stop the shard servers (without a checkpoint: a head on disk reopens at its last
        one) and, if this head started Ray, shut it down."""
        if self.closed:
            return
        self.closed = True
        shards = getattr(self, "_shards", None)
        if shards is not None:
            shards.teardown()
            shards.close_shared()
            try:
                ray.get([h.close.remote() for h in shards.handles], timeout=60)
            except Exception:           # a dead shard has nothing to close
                pass
            for h in shards.handles:
                ray.kill(h, no_restart=True)
        fd, self._lock_fd = getattr(self, "_lock_fd", None), None
        if fd is not None:
            unlock_directory(fd)
        if getattr(self, "_owns_ray", False):
            ray.shutdown()


def _checked_grads(grads, num_classes, dim, dtype):
    ids = check_sorted_ids(grads.ids, "grads.ids")
    if ids.size and (ids[0] < 0 or ids[-1] >= num_classes):
        raise ValueError(f"grads.ids must lie in [0, {num_classes})")
    gw, gb = np.asarray(grads.weights), np.asarray(grads.biases)
    if gw.dtype != dtype or gb.dtype != dtype:
        raise TypeError(f"grads.weights and grads.biases must be {dtype}")
    if gw.shape != (ids.size, dim) or gb.shape != (ids.size,):
        raise ValueError(f"grads.weights must have shape {(ids.size, dim)} and grads.biases "
                         f"{(ids.size,)}, got {gw.shape} and {gb.shape}")
    for name, a in (("grads.weights", gw), ("grads.biases", gb)):
        if a.size and first_nonfinite(np.ascontiguousarray(a).reshape(-1)) >= 0:
            raise FloatingPointError(f"{name} is not finite; nothing was updated")
    return ids, gw, gb


def read_manifest(path):
    """The manifest of a distributed head's directory, checked."""
    fn = pathlib.Path(path) / MANIFEST
    m = read_json_object(fn, f"{path}: no {MANIFEST} (not a RayHead directory)")
    if m.get("format") != FORMAT or m.get("version") != VERSION:
        raise StoreError(f"{fn}: unknown format {m.get('format')!r} version "
                         f"{m.get('version')!r}")
    shards = m.get("shards")
    cfg = m.get("config")
    if not isinstance(cfg, dict) or not isinstance(shards, list) or \
            len(shards) != cfg.get("num_shards"):
        raise StoreError(f"{fn}: config and shards do not agree")
    for s, sh in enumerate(shards):
        if not isinstance(sh, dict) or sh.get("dir") != shard_dir_name(s) or \
                not all(k in sh for k in ("epoch", "step", "applied", "sync_step")):
            raise StoreError(f"{fn}: shard entry {s} is malformed")
    return m


def _check_replaceable(p, overwrite):
    """Whether the directory ``p`` holds a RayHead that may be replaced (True), is new or
    empty (False), or holds something else (``FileExistsError``, ``StoreError``)."""
    if not p.exists() or (p.is_dir() and all(e.name == ".lock" for e in p.iterdir())):
        return False
    if not p.is_dir() or not overwrite:
        raise FileExistsError(f"{p} is not empty; pass overwrite=True to replace a "
                              "RayHead stored there")
    read_manifest(p)
    own = {MANIFEST, "counts.npy", ".lock"}
    other = [e.name for e in p.iterdir() if e.name not in own and not e.name.startswith("shard-")]
    if other:
        raise FileExistsError(f"{p} holds {other[0]!r}, which is not a RayHead's: refusing "
                              "to replace it")
    return True


def _lock_head_dir(p, overwrite, reopen):
    """Create (or, for ``reopen``, find) a distributed head's directory and take its
    writer lock. Replacing a directory needs ``overwrite`` and a manifest there, checked
    before anything is written and again under the lock; nothing but the head's own entries
    is ever touched."""
    if not reopen:
        _check_replaceable(p, overwrite)
    p.mkdir(parents=True, exist_ok=True)
    fd = lock_directory(p)
    try:
        if not reopen and _check_replaceable(p, overwrite):
            (p / MANIFEST).unlink()    # no manifest until the new shards are committed
    except BaseException:
        unlock_directory(fd)
        raise
    return fd


from ._raytrain import train  # noqa: E402  (uses ShardActor and ShardGroup)
