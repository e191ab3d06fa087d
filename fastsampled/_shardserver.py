"""One shard of a distributed head: the rows it owns, their optimizer state, and the calls
a shard server answers (private; ``fastsampled.ray`` runs it inside a Ray actor, and it has
no dependency on Ray itself, so it is tested without one).

A shard ``s`` of ``P`` owns the classes that the head's ``partition_strategy`` maps to it
(``"mod"``: ``id % P == s``; ``"div"``: a contiguous block), as rows ``0 .. n_s - 1`` of a
local :class:`~fastsampled.SampledSoftmaxHead` (in RAM, or memory-mapped under the shard's
own directory) whose weights, biases and optimizer state are the shard's. Only local row
ids travel to a shard; the client maps global ids (``_shardroute``).

Every update carries the id of whoever sent it and a sequence number. A shard applies an
update whole (the optimizer computes every new row before writing any) or not at all, and
applies each (sender, sequence number) once: a repeated one is acknowledged and ignored, so
a retried call never applies a gradient twice. In synchronous data-parallel training each
trainer's part of a step is held until every trainer's has arrived, then summed per row in
trainer order and applied once. How checkpoints are made global and what happens after a
crash is in docs/cluster.md#faults.
"""
import json
import os
import pathlib

import numpy as np

from ._errors import StoreError
from ._files import atomic_write_bytes, read_json_object
from ._headfiles import RECORD
from ._headinit import make_optimizer, optimizer_from_record
from ._headscan import scan_classes
from ._layout import layout_sizes
from ._rng import normalize_seed
from ._step import SparseGrads
from ._store_kernels import INIT_NORMAL, INIT_UNIFORM, init_rows
from .head import SampledSoftmaxHead

__all__ = ["ShardServer", "Aborted", "ShardNotReady", "UpdateGap", "shard_dir_name", "sum_parts",
           "INITIAL"]

INITIAL = "initial"     # a checkpoint that is the state the head was created in
MAX_STEPS_AHEAD = 64    # how far ahead of the last complete synchronous step a part may be


def shard_dir_name(shard):
    """The directory of shard ``shard`` under a distributed head's path."""
    return f"shard-{shard:05d}"


class ShardServer:
    """The state and the answers of one shard server.

    Parameters
    ----------
    spec : dict
        ``shard``, ``num_shards``, ``num_classes``, ``dim``, ``partition_strategy``,
        ``dtype``, ``optimizer`` (the head's optimizer record: name and hyper-parameters),
        ``init``, ``init_scale``, ``seed``, ``path`` (the shard's directory, or None for
        RAM) and ``durability``.

    Nothing is allocated until :meth:`create`, :meth:`open` or :meth:`restore`: a shard
    server restarted after a crash comes up empty and is told which checkpoint to restore.
    """

    def __init__(self, spec):
        self.spec = dict(spec)
        self.shard = int(spec["shard"])
        self.num_shards = int(spec["num_shards"])
        sizes = layout_sizes(spec["num_classes"], self.num_shards, spec["partition_strategy"])
        self.num_rows = sizes[self.shard]
        self.offset = int(sum(sizes[:self.shard]))
        self.is_mod = spec["partition_strategy"] == "mod" and self.num_shards > 1
        self.dtype = np.dtype(spec["dtype"])
        self.path = None if spec["path"] is None else pathlib.Path(spec["path"])
        self.head = None
        self.applied = {}          # sender -> last sequence number applied
        self.sync_step = 0         # last synchronous step applied (data-parallel, "sync")
        self.pending = {}          # sync step -> {trainer: (ids, gw, gb)}
        self.finished = {}         # trainer -> first synchronous step it has no part of

    # ------------------------------------------------------------------ lifecycle
    @property
    def ready(self):
        """Whether the shard holds its rows (False after a restart until restored)."""
        return self.head is not None

    def check_ready(self):
        if self.head is None:
            raise ShardNotReady(f"shard {self.shard} holds no rows (restarted): restore it "
                                "from a checkpoint first")

    def _local_head(self, path, overwrite):
        opt, _ = make_optimizer(optimizer_from_record(self.spec["optimizer"]), None)
        return SampledSoftmaxHead(
            self.num_rows, self.spec["dim"], path=path, optimizer=opt, init="zeros",
            num_sampled=1, seed=self.spec["seed"], dtype=self.dtype.name,
            durability=self.spec["durability"], overwrite=overwrite)

    def _fill_initial(self):
        """The initial weights of the rows this shard owns: the values a memory-mapped
        single-machine head with the same seed gives the same global ids."""
        init = self.spec["init"]
        if init == "zeros":
            return
        kind = INIT_NORMAL if init == "normal" else INIT_UNIFORM
        w = self.head.weights
        arr = w if self.path is None else w.shards[0]
        stride, first = (self.num_shards, self.shard) if self.is_mod else (1, self.offset)
        rows_per_task = max(1, (2 << 20) // (self.spec["dim"] * self.dtype.itemsize))
        init_rows(arr, stride, first, kind, float(self.spec["init_scale"]),
                  normalize_seed(self.spec["seed"]), rows_per_task)

    def create(self, overwrite=False):
        """Allocate the shard's rows at their initial values (and, on disk, commit them).

        Returns
        -------
        dict
            :meth:`info`.
        """
        self.close()
        self.head = self._local_head(self.path, overwrite)
        self._fill_initial()
        if self.path is not None:
            self.head.checkpoint()
        self.applied, self.sync_step, self.pending, self.finished = {}, 0, {}, {}
        return self.info()

    def open(self, epoch, step, applied, sync_step):
        """Reopen a memory-mapped shard at the global checkpoint that recorded it at local
        commit ``epoch`` and local ``step``.

        A shard whose own record is one epoch behind crashed between the global commit and
        its own (its rows were made durable before the global commit): its record is moved
        forward first. Rows changed after the checkpoint are rolled back by the stores'
        journals as the local head opens.
        """
        self.close()
        rec_path = self.path / RECORD
        rec = read_json_object(rec_path, f"{self.path}: no {RECORD} (not a shard directory)")
        have = rec.get("epoch")
        if have == epoch - 1:
            _advance_record(rec_path, rec, epoch, step)
        elif have != epoch:
            raise StoreError(f"{self.path}: shard at commit epoch {have!r}, but the head's "
                             f"manifest records epoch {epoch}")
        head = SampledSoftmaxHead.load(self.path, durability=self.spec["durability"])
        if head.step != step:
            head.close()
            raise StoreError(f"{self.path}: shard at step {head.step}, the manifest "
                             f"records {step}")
        self.head = head
        self.applied = {k: int(v) for k, v in applied.items()}
        self.sync_step, self.pending, self.finished = int(sync_step), {}, {}
        return self.info()

    def restore(self, checkpoint):
        """Return to a checkpoint: :data:`INITIAL`, a :meth:`snapshot` (RAM), or the
        ``(epoch, step, applied, sync_step)`` of a commit (on disk)."""
        if checkpoint == INITIAL:
            if self.path is not None:
                raise ValueError("a shard on disk restores from its committed state")
            return self.create()
        if self.path is not None:
            epoch, step, applied, sync_step = checkpoint
            return self.open(epoch, step, applied, sync_step)
        self.close()
        head = self._local_head(None, False)
        head.weights[...] = checkpoint["weights"]
        head.biases[...] = checkpoint["biases"]
        for st, slots, t in zip(head.optimizer_states, checkpoint["slots"], checkpoint["t"]):
            for name, arr in slots.items():
                st.slots[name][...] = arr
            st.t = t
        head.step = checkpoint["step"]
        self.head = head
        self.applied = dict(checkpoint["applied"])
        self.sync_step, self.pending, self.finished = checkpoint["sync_step"], {}, {}
        return self.info()

    def snapshot(self):
        """A copy of the shard's whole state (RAM shards): its checkpoint."""
        self.check_ready()
        h = self.head
        return {"weights": np.array(h.weights), "biases": np.array(h.biases),
                "slots": [{n: np.array(a) for n, a in st.slots.items()}
                          for st in h.optimizer_states],
                "t": [st.t for st in h.optimizer_states], "step": h.step,
                "applied": dict(self.applied), "sync_step": self.sync_step}

    def prepare(self):
        """First phase of a global checkpoint on disk: every row durable, nothing committed.

        Returns
        -------
        dict
            ``epoch`` (the local commit this checkpoint will be), ``step``, ``applied``,
            ``sync_step``.
        """
        self.check_ready()
        if self.pending:
            raise RuntimeError(f"shard {self.shard}: a synchronous step is incomplete "
                               f"(steps {sorted(self.pending)} wait for trainers)")
        rec = read_json_object(self.path / RECORD, f"{self.path}: no {RECORD}")
        self.head.sync()
        return {"epoch": int(rec["epoch"]) + 1, "step": self.head.step,
                "applied": dict(self.applied), "sync_step": self.sync_step}

    def commit(self, epoch):
        """Second phase: the shard's own commit, as local epoch ``epoch`` (after the manifest
        recorded the global one). A shard already there (it caught up when it reopened)
        commits nothing."""
        self.check_ready()
        rec = read_json_object(self.path / RECORD, f"{self.path}: no {RECORD}")
        if rec["epoch"] == epoch - 1:
            self.head.checkpoint()
        elif rec["epoch"] != epoch:
            raise StoreError(f"{self.path}: shard at commit epoch {rec['epoch']!r}, asked to "
                             f"commit epoch {epoch}")
        return epoch

    def save(self, path):
        """Write the shard as a head directory at ``path`` (new or empty)."""
        self.check_ready()
        self.head.save(path)
        rec = read_json_object(pathlib.Path(path) / RECORD, f"{path}: no {RECORD}")
        return {"epoch": int(rec["epoch"]), "step": self.head.step,
                "applied": dict(self.applied), "sync_step": self.sync_step}

    def close(self):
        if self.head is not None:
            self.head.close()
        self.head = None

    def info(self):
        """``shard``, ``rows``, ``step``, ``sync_step``, ``applied`` and the process's
        resident memory (``rss_bytes``, and ``anon_bytes`` where Linux tells)."""
        return {"shard": self.shard, "rows": self.num_rows, "ready": self.ready,
                "step": None if self.head is None else self.head.step,
                "sync_step": self.sync_step, "applied": dict(self.applied), "pid": os.getpid(),
                **_memory_of_process()}

    # ------------------------------------------------------------------ rows
    def _check_ids(self, ids, name="ids"):
        ids = np.asarray(ids)
        if ids.dtype != np.int64 or ids.ndim != 1:
            raise TypeError(f"shard {self.shard}: {name} must be a 1-D int64 array, got "
                            f"{ids.dtype} {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_rows):
            raise ValueError(f"shard {self.shard}: {name} must lie in [0, {self.num_rows})")
        return ids

    def gather(self, ids):
        """``(rows (K, dim), biases (K,))`` of local row ids."""
        self.check_ready()
        ids = self._check_ids(ids)
        h = self.head
        if self.path is None:
            return np.take(h.weights, ids, axis=0), np.take(h.biases, ids)
        h.weights.prefetch(ids)
        return h.weights.gather(ids), h.biases.gather(ids)

    def apply(self, sender, seq, ids, gw, gb):
        """Apply update ``seq`` of ``sender`` (local ids sorted unique, gradient rows), once.

        Returns
        -------
        bool
            True when applied now, False when it had been applied before.

        Raises
        ------
        ValueError
            ``seq`` skips one: an earlier update of this sender is missing.
        FloatingPointError
            The update is not finite; nothing was written.
        """
        self.check_ready()
        last = self.applied.get(sender, 0)
        if seq <= last:
            return False
        if seq != last + 1:
            raise UpdateGap(f"shard {self.shard}: update {seq} from {sender!r} arrived "
                            f"after {last}; {last + 1} .. {seq - 1} are missing", last)
        self._apply(ids, gw, gb)
        self.applied[sender] = seq
        return True

    def _apply(self, ids, gw, gb):
        # the optimizer checks ids (sorted, unique, in range) and gradients before writing
        self.head.apply_grads(SparseGrads(None, ids, _writable(gw), _writable(gb), None))

    def contribute(self, trainer, step, trainers, ids, gw, gb):
        """Trainer ``trainer``'s part of synchronous step ``step``; when the parts of every
        trainer in ``trainers`` still running at the next step are in, their sum is applied
        once (rows summed in trainer order, so the result does not depend on arrival
        order). Parts of later steps wait for the earlier steps to complete.

        Returns
        -------
        bool
            Whether a step was applied by this call.
        """
        self.check_ready()
        if step <= self.sync_step:
            return False                       # applied already: a retried call
        if step > self.sync_step + MAX_STEPS_AHEAD:
            raise UpdateGap(f"shard {self.shard}: synchronous step {step} arrived while "
                            f"{self.sync_step + 1} is incomplete", self.sync_step)
        parts = self.pending.setdefault(step, {})
        if trainer in parts:
            return False                       # this part arrived before: a retried call
        parts[trainer] = (self._check_ids(ids), gw, gb)
        self.trainers = list(trainers)
        return self._complete_steps()

    def finish(self, trainer, step):
        """Trainer ``trainer`` has no part of synchronous steps ``step`` and later (its data
        ended); returns whether a step waiting for it was applied."""
        self.check_ready()
        self.finished[trainer] = int(step)
        return self._complete_steps()

    def _complete_steps(self):
        applied = False
        while True:
            step = self.sync_step + 1
            parts = self.pending.get(step, {})
            need = [t for t in getattr(self, "trainers", ()) if self.finished.get(t, step + 1) > step]
            if not parts or any(t not in parts for t in need):
                break
            del self.pending[step]
            ids, gw, gb = sum_parts([parts[t] for t in sorted(parts)], self.spec["dim"],
                                    self.dtype)
            self._apply(ids, gw, gb)
            self.sync_step = step
            applied = True
        return applied

    # ------------------------------------------------------------------ inference
    def scan(self, x, k, want_lse):
        """Top-k over this shard's classes: ``(global ids (B, k'), scores (B, k'), lse
        (B,) float64 or None)``, ``k' = min(k, rows)``."""
        self.check_ready()
        k = min(int(k), self.num_rows)
        h = self.head
        if self.path is None:
            ids, scores, lse = scan_classes(x, [h.weights], [h.biases], "div", self.dtype, k,
                                            want_lse)
        else:
            with h.weights.scan(), h.biases.scan():
                ids, scores, lse = scan_classes(x, h.weights.shards, h.biases.shards, "div",
                                                self.dtype, k, want_lse)
        return self.global_ids(ids), scores, lse

    def global_ids(self, local):
        """Global class ids of local rows."""
        return local * self.num_shards + self.shard if self.is_mod else local + self.offset


class Aborted(RuntimeError):
    """A request waiting on a shard server ended because the shard was restored to a
    checkpoint."""


class ShardNotReady(RuntimeError):
    """The shard server was restarted and holds no rows until it is restored."""


class ServerRestarted(RuntimeError):
    """A shard server was restarted, and the updates it lost are not in the caller's log
    (data-parallel trainers applied them): the caller cannot bring it back alone, and reruns
    the steps since the last checkpoint instead."""


class UpdateGap(ValueError):
    """An update arrived before the one it follows; ``last`` is the last one applied."""

    def __init__(self, message, last):
        super().__init__(message)
        self.last = last

    def __reduce__(self):
        return (type(self), (self.args[0], self.last))


def sum_parts(parts, dim, dtype):
    """The sum of several sparse gradients ``(ids sorted unique, gw (K, dim), gb (K,))``,
    added in the order given: ``(ids, gw, gb)`` over the union of their ids."""
    if len(parts) == 1:
        return parts[0]
    ids = np.unique(np.concatenate([p[0] for p in parts]))
    gw = np.zeros((ids.size, dim), dtype)
    gb = np.zeros(ids.size, dtype)
    for pid, pw, pb in parts:
        pos = np.searchsorted(ids, pid)
        gw[pos] += pw
        gb[pos] += pb
    return ids, gw, gb


def _writable(a):
    a = np.asarray(a)
    return a if a.flags.writeable and a.flags.c_contiguous else np.array(a, order="C")


def _advance_record(rec_path, rec, epoch, step):
    """Move a shard's commit record forward to the global commit it missed."""
    stores = {k: step for k in rec.get("stores", {})}
    rec = dict(rec, epoch=epoch, step=step, sampler_calls=step, stores=stores,
               optimizer_t=[step, step])
    text = json.dumps(rec, indent=1, sort_keys=True, allow_nan=False) + "\n"
    atomic_write_bytes(rec_path, text.encode())


def _memory_of_process():
    out = {"rss_bytes": None, "anon_bytes": None}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss_bytes"] = int(line.split()[1]) * 1024
                elif line.startswith("RssAnon:"):
                    out["anon_bytes"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out
