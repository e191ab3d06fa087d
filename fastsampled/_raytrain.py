"""Data-parallel training of a :class:`~fastsampled.ray.RayHead`: trainer actors, each with
its own data and sampler stream, against the head's shard servers (private; ``train`` is
exported by ``fastsampled.ray``).

Training runs in rounds of ``checkpoint_every`` steps; after each round the head takes a
global checkpoint. If anything fails in a round -- a shard server or a trainer killed, a
shard restarted empty -- every shard returns to the round's checkpoint, every trainer to
the round's first batch and sampler position, and the round runs again. In synchronous mode
the data and the samplers are deterministic, so the rerun computes exactly what the failed
round would have: the final weights equal an uninterrupted run's (docs/cluster.md#faults).
"""
import logging
import os
import time

import numpy as np
import ray
from ray.exceptions import RayActorError, RayTaskError

from ._headinit import make_sampler
from ._shardroute import Router
from ._shardserver import Aborted, ServerRestarted, ShardNotReady, UpdateGap
from ._step import loss_and_grads_on_unique, step_ids
from ._validate import as_float_array, as_int, as_true_classes, check_range
from ._validate_kernels import first_nonfinite

__all__ = ["train", "Trainer"]

logger = logging.getLogger("fastsampled.ray")
WAIT_S = 600.0      # how long a trainer's request may wait for the other trainers


class Trainer:
    """A trainer actor: draws its batches from its own data, samples with its own stream,
    computes on the rows it pulls and pushes its gradients to the shards that own them."""

    def __init__(self, spec, handles, data, index):
        self.spec = spec
        self.handles = handles
        self.data = data
        self.index = index
        self.name = f"trainer-{index}"
        self.router = Router(spec["num_classes"], len(handles), spec["partition_strategy"])
        self.sampler = make_sampler(spec["sampler"], spec["num_classes"], spec["seed"],
                                    spec["counts"], spec["distortion"])
        self.iterator = None
        self.position = 0       # batches taken from the iterator
        self.exhausted = False

    def _seek(self, position):
        """The data iterator at batch ``position`` (made afresh when it is ahead)."""
        if self.iterator is None or self.position > position:
            self.iterator = iter(self.data(self.index) if callable(self.data) else self.data)
            self.position, self.exhausted = 0, False
        while self.position < position and not self.exhausted:
            self._next()

    def _next(self):
        try:
            batch = next(self.iterator)
        except StopIteration:
            self.exhausted = True
            return None
        self.position += 1
        return batch

    def _batch(self, batch):
        spec = self.spec
        inputs, labels = batch
        x = as_float_array(inputs, "inputs", 2)
        if x.shape[1] != spec["dim"] or x.shape[0] == 0:
            raise ValueError(f"{self.name}: inputs must have shape (batch, {spec['dim']}), "
                             f"got {x.shape}")
        x = np.ascontiguousarray(x, dtype=spec["dtype"])
        if first_nonfinite(x.reshape(-1)) >= 0:
            raise ValueError(f"{self.name}: inputs must be finite")
        lab, _ = as_true_classes(labels, spec["num_true"], name="labels")
        if lab.shape[0] != x.shape[0]:
            raise ValueError(f"{self.name}: labels have {lab.shape[0]} rows, inputs "
                             f"{x.shape[0]}")
        check_range(lab, 0, spec["num_classes"], "labels",
                    f"num_classes is {spec['num_classes']}")
        return x, np.ascontiguousarray(lab)

    def run(self, start, steps, base, mode, staleness, active):
        """Steps ``start + 1 .. start + steps`` of this trainer (``start`` batches taken
        before); synchronous step / update numbers are ``base + step``. Returns the loss
        sum, examples and steps done, and whether the data ran out."""
        self._seek(start)
        spec = self.spec
        D, dtype = spec["dim"], np.dtype(spec["dtype"])
        loss_sum, examples, done = 0.0, 0, 0
        for i in range(start + 1, start + steps + 1):
            batch = None if self.exhausted else self._next()
            seq = base + i
            if batch is None:          # the data ended: nothing of this trainer from here on
                ray.get([h.finish.remote(self.name, seq if mode == "sync" else None)
                         for h in self.handles])
                break
            x, lab = self._batch(batch)
            self.sampler.calls = seq - 1        # the stream position of this step
            cand = tuple(self.sampler.sample_unchecked(lab, spec["num_sampled"], True))
            uniq, inv = np.unique(step_ids(lab, cand[0]), return_inverse=True)
            groups = self.router.split(uniq)
            sync_step = seq - 1 if mode == "sync" else None
            refs = [(s, h.gather_when.remote(groups[s][1], sync_step, self.name, seq,
                                             staleness, active, WAIT_S))
                    for s, h in enumerate(self.handles) if groups[s][1].size]
            rows = np.empty((uniq.size, D), dtype)
            brows = np.empty(uniq.size, dtype)
            for s, ref in refs:
                r, b = ray.get(ref)
                rows[groups[s][0]] = r
                brows[groups[s][0]] = b
            loss, g = loss_and_grads_on_unique(rows, brows, uniq, inv, x, lab, cand,
                                               spec["options"], grad_scale=1.0 / x.shape[0])
            total = float(loss.sum(dtype=np.float64))
            if not np.isfinite(total):
                raise FloatingPointError(f"{self.name}: non-finite loss at step {i}")
            parts = [(local, np.ascontiguousarray(g.weights[pos]),
                      np.ascontiguousarray(g.biases[pos]))
                     for pos, local in self.router.split(g.ids)]
            if mode == "sync":
                ray.get([h.contribute.remote(self.name, seq, active, *p)
                         for h, p in zip(self.handles, parts)])
            else:
                ray.get([h.apply.remote(self.name, seq, *p)
                         for h, p in zip(self.handles, parts)])
            loss_sum += total
            examples += x.shape[0]
            done += 1
        return {"loss_sum": loss_sum, "examples": examples, "steps": done,
                "exhausted": self.exhausted, "pid": _pid()}

    def ping(self):
        return _pid()


def _pid():
    return os.getpid()


def _data_for(data, num_trainers, batch_size):
    """One data source per trainer: a list of factories/iterables, one factory called with
    the trainer's index, or a Ray Dataset split into equal parts."""
    if hasattr(data, "split") and hasattr(data, "iter_batches"):
        if batch_size is None:
            raise ValueError("batch_size is required when data is a Ray Dataset")
        parts = data.split(num_trainers, equal=True)
        return [_DatasetBatches(p, batch_size) for p in parts]
    if callable(data):
        return [data] * num_trainers
    data = list(data)
    if len(data) != num_trainers:
        raise ValueError(f"data has {len(data)} sources for {num_trainers} trainers")
    return data


class _DatasetBatches:
    """A Ray Dataset part as a factory of ``(inputs, labels)`` batches (columns
    ``inputs`` and ``labels``)."""

    def __init__(self, ds, batch_size):
        self.ds = ds
        self.batch_size = batch_size

    def __call__(self, index):
        for b in self.ds.iter_batches(batch_size=self.batch_size, batch_format="numpy"):
            yield np.stack(b["inputs"]), b["labels"]


def train(head, data, *, num_trainers=None, mode="sync", steps=None, checkpoint_every=1000,
          max_staleness=None, batch_size=None, trainer_options=None, max_round_retries=20):
    """Train a :class:`~fastsampled.ray.RayHead` with data-parallel trainer actors.

    Each trainer draws ``(inputs, labels)`` batches from its own data, samples candidates
    from its own stream (seeded from the head's seed and its index), pulls the rows it
    needs and pushes its gradients to the shard servers.

    Parameters
    ----------
    head : RayHead
    data : list, callable or ray.data.Dataset
        One source per trainer: a list of zero-argument iterables or of callables
        ``f(index)`` returning an iterator of ``(inputs (B, dim), labels)``; a single callable
        ``f(index)``, called in every trainer; or a Ray Dataset with columns ``inputs`` and
        ``labels``, split into equal parts. Sources must give the same batches when made
        again: a failed round is rerun from its first batch.
    num_trainers : int, optional
        Default: ``len(data)`` for a list, else 2.
    mode : {"sync", "async"}
        "sync": every step's gradients from all trainers are summed per row (in trainer
        order) and applied once. "async": each trainer applies its own (Hogwild on the
        shard servers).
    steps : int, optional
        Steps per trainer; default: until every trainer's data ends.
    checkpoint_every : int
        Steps per round; the head checkpoints after each.
    max_staleness : int, optional
        "async" only: a trainer may run at most this many steps ahead of the slowest
        (None: no bound).
    batch_size : int, optional
        For a Ray Dataset.
    trainer_options : dict, optional
        Ray actor options of the trainers (default: no CPU reserved, restarted on failure).
    max_round_retries : int
        How many times a failed round is rerun before the error is raised.

    Returns
    -------
    dict
        ``steps`` (per trainer), ``examples``, ``seconds``, ``examples_per_s``, ``loss``
        (mean over examples of the last round), ``losses`` (per round), ``retries``.
    """
    if not getattr(head, "distributed", False):
        raise TypeError(f"head must be a RayHead, got {type(head).__name__}")
    if mode not in ("sync", "async"):
        raise ValueError(f"mode must be 'sync' or 'async', got {mode!r}")
    if max_staleness is not None:
        if mode != "async":
            raise ValueError("max_staleness applies to mode='async'")
        max_staleness = as_int(max_staleness, "max_staleness", 0)
    checkpoint_every = as_int(checkpoint_every, "checkpoint_every", 1)
    if num_trainers is None:
        num_trainers = len(data) if isinstance(data, (list, tuple)) else 2
    num_trainers = as_int(num_trainers, "num_trainers", 1)
    sources = _data_for(data, num_trainers, batch_size)
    head.checkpoint()                          # the first round's restore point
    spec = head.trainer_spec()
    names = [f"trainer-{i}" for i in range(num_trainers)]
    info = head.shard_info()
    base_sync = info[0]["sync_step"]
    base_seq = [info[0]["applied"].get(n, 0) for n in names]
    opts = dict(num_cpus=0, max_restarts=-1, max_task_retries=0)
    opts.update(trainer_options or {})
    actor = ray.remote(Trainer)
    trainers = []
    for i in range(num_trainers):
        tspec = dict(spec, seed=int(np.random.SeedSequence([head.seed, i + 1])
                                    .generate_state(1)[0]))
        trainers.append(actor.options(**opts).remote(tspec, head.shard_handles, sources[i], i))
    done = 0
    examples = 0
    losses = []
    retries = 0
    t0 = time.perf_counter()
    try:
        def finish(results):            # rolled back with the shards if the round reruns
            head.step += max(r["steps"] for r in results) if mode == "sync" else \
                sum(r["steps"] for r in results)
            head.checkpoint()

        while steps is None or done < steps:
            n = checkpoint_every if steps is None else min(checkpoint_every, steps - done)
            out = _round(head, trainers, done, n, base_sync, base_seq, mode, max_staleness,
                         names, num_trainers, max_round_retries, finish)
            retries += out["retries"]
            ran = max(r["steps"] for r in out["results"])
            done += ran
            ex = sum(r["examples"] for r in out["results"])
            examples += ex
            if ex:
                losses.append(sum(r["loss_sum"] for r in out["results"]) / ex)
            if ran < n:                 # every trainer's data ended
                break
    finally:
        for t in trainers:
            ray.kill(t, no_restart=True)
    seconds = time.perf_counter() - t0
    return {"steps": done, "examples": examples, "seconds": seconds,
            "examples_per_s": examples / seconds if seconds else 0.0,
            "loss": losses[-1] if losses else float("nan"), "losses": losses,
            "retries": retries}


def _round(head, trainers, start, n, base_sync, base_seq, mode, staleness, names,
           num_trainers, max_retries, finish):
    """One round of ``n`` steps from step ``start`` and ``finish(results)`` (its
    checkpoint), rerun from the last checkpoint until both complete. A shard server restarted
    during the round or its checkpoint lost the round's updates (the head's log does not hold
    the trainers'), so that is a failure of the round too (:class:`ServerRestarted`)."""
    for attempt in range(max_retries + 1):
        base = [base_sync if mode == "sync" else base_seq[i] for i in range(num_trainers)]
        servers = _server_pids(head.shard_handles)
        head.expect_foreign_updates()          # the trainers' updates bypass the log
        refs = [t.run.remote(start, n, base[i], mode, staleness, names)
                for i, t in enumerate(trainers)]
        try:
            results = _get_all(refs, head.shard_handles, servers)
            finish(results)
            return {"results": results, "retries": attempt}
        except (RayActorError, RayTaskError, ServerRestarted) as e:
            if attempt == max_retries or not (isinstance(e, ServerRestarted) or _retryable(e)):
                raise
            logger.warning("round from step %d failed (%s: %s); rerunning it from the "
                           "checkpoint", start, type(e).__name__, str(e).splitlines()[0])
            remaining = refs
            while remaining:                # restoring ends every wait of the failed round
                head.rollback()
                _, remaining = ray.wait(remaining, num_returns=len(remaining), timeout=2.0)
            for t in trainers:             # a killed trainer is back before the rerun
                _wait_alive(t)
            head.rollback()     # nothing a stopping trainer sent survives
    raise AssertionError("not reached")


def _retryable(e):
    """Whether a round failed because a process died (or as a consequence of that), rather
    than because of an error in the data or the arithmetic."""
    cause = e.cause if isinstance(e, RayTaskError) else e
    if isinstance(cause, RayActorError):
        return not cause.actor_init_failed
    return isinstance(cause, (ShardNotReady, Aborted, UpdateGap))


def _server_pids(handles, timeout=30.0):
    """The process id of each shard server (None while one cannot answer)."""
    refs = [h.info.remote() for h in handles]
    out = []
    for ref in refs:
        try:
            out.append(ray.get(ref, timeout=timeout)["pid"])
        except Exception:  # noqa: BLE001 -- restarting or gone: compared as unknown
            out.append(None)
    return out


def _get_all(refs, handles, servers, poll_s=1.0):
    """Every result, or the first failure as soon as it happens; :class:`ServerRestarted`
    when a shard server's process is no longer the one the round started with (a trainer
    would otherwise wait for steps that server lost, up to ``WAIT_S``)."""
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=poll_s)
        if ready:
            ray.get(ready[0])              # raises the trainer's failure now
            continue
        now = _server_pids(handles, timeout=poll_s)
        if any(a is not None and b is not None and a != b for a, b in zip(servers, now)):
            raise ServerRestarted(f"shard server processes {servers} are now {now}")
    return ray.get(refs)


def _wait_alive(actor, timeout=300.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ray.get(actor.ping.remote(), timeout=10)
        except Exception as e:
            if getattr(e, "actor_init_failed", False) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
