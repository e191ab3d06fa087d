"""The on-disk side of a ``SampledSoftmaxHead`` (private): its directory and ``head.json``.

Creating a head's directory (an existing head replaced only under its lock, ``head.json``
deleted first), creating, opening and checking its stores against ``head.json`` (the config
field by field, the shapes and layouts, the step of every store against the commit record),
bringing a head written without a commit record into one, writing an in-RAM head to a new
directory, and warming the stores' rows into the page cache; and ``HeadStorage``, the mixin
that gives the head its ``load``, ``checkpoint``, ``save``, ``warm`` and ``close`` on top of
these. The files are listed in
docs/storage.md#what-is-on-disk; the rules this module keeps in
docs/storage.md#writers-overwriting-and-deleting and docs/storage.md#what-is-checked-at-open.
"""
import contextlib
import json
import math
import os
import pathlib
import shutil
import time

import numpy as np

from . import _memory
from ._errors import StoreError
from ._files import atomic_output, atomic_write_bytes, fsync_dir, read_json_object
from ._storefile import check_group_record, check_replaceable
from ._validate import as_bool, as_int
from .optimizers import SGD, Adagrad, Adam
from .sharding import (ShardedMatrix, check_durability, commit_group, join_group,
                       lock_directory, remove_store, unlock_directory)

__all__ = ["FORMAT", "VERSION", "READABLE_VERSIONS", "RECORD", "HEAD_ENTRIES", "OPTIMIZERS",
           "SAMPLERS", "LOSSES", "lock_new_head", "create_stores", "open_head", "write_head",
           "warm_stores", "copy_to_store", "check_head_dir", "head_stores", "remove_head",
           "read_config", "read_counts", "check_stores", "check_steps", "rel_path",
           "adopt_stores", "HeadStorage"]

FORMAT = "fastsampled.SampledSoftmaxHead"
VERSION = 2
READABLE_VERSIONS = (1, 2)   # 1: no commit record (epoch, stores) in head.json
RECORD = "head.json"
# what a head directory may hold; anything else there is the user's and is never deleted
HEAD_ENTRIES = {RECORD, "weights", "biases", "opt", "counts.npy", ".lock"}
OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "adam": Adam}
SAMPLERS = ("log_uniform", "uniform", "unigram")
LOSSES = ("sampled_softmax", "nce")


def lock_new_head(p, overwrite):
    """Make the directory ``p`` of a new head and take its writer lock; returns the lock's
    file descriptor. A head already there is refused, or with ``overwrite`` checked again
    under the lock and deleted; anything else there is refused (``check_head_dir``)."""
    overwrite = as_bool(overwrite, "overwrite")
    if p.exists() and not p.is_dir():
        raise FileExistsError(f"path {str(p)!r} exists and is not a directory")
    if p.is_dir() and any(p.iterdir()):
        check_head_dir(p)
        if not overwrite:
            raise FileExistsError(f"{p} holds a head already (pass overwrite=True to "
                                  "replace it, or SampledSoftmaxHead.load to resume it)")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"path {str(p)!r}: cannot create the directory ({e.strerror})") \
            from None
    fd = lock_directory(p)
    try:
        if overwrite:
            check_head_dir(p)         # again, under the lock
            remove_head(p)
    except BaseException:
        unlock_directory(fd)
        raise
    return fd


def create_stores(p, num_classes, dim, *, num_shards, partition_strategy, dtype, durability,
                  seed, init, scale, counts, optimizer):
    """The new stores of a head at ``p``, in the commit group of its ``head.json``:
    ``(weights, biases, (weights' state, biases' state))``; ``counts.npy`` written when
    ``counts`` is not None. Nothing is committed: the head's first checkpoint does it."""
    group = "../" + RECORD
    common = dict(num_shards=num_shards, partition_strategy=partition_strategy,
                  dtype=dtype, durability=durability, group=group)
    kw = {"normal": dict(init="normal", std=scale), "uniform": dict(init="uniform", scale=scale),
          "zeros": dict(init="zeros")}[init]
    weights = ShardedMatrix.create(p / "weights", num_classes, dim, seed=seed, **common, **kw)
    biases = ShardedMatrix.create(p / "biases", num_classes, None, **common)
    if counts is not None:
        with atomic_output(p / "counts.npy") as f:
            np.save(f, counts)
    states = tuple(
        optimizer.init_state(param, path=p / "opt" / name, durability=durability,
                             group=p / RECORD)
        for name, param in (("weights", weights), ("biases", biases)))
    return weights, biases, states


def open_head(p, mode, durability, build):
    """Open the head stored at ``p`` (what ``SampledSoftmaxHead.load`` documents).

    ``head.json`` is read and checked, the stores opened (their journals recovered) and checked
    against it, then ``build(cfg, optimizer, counts, opened)`` makes the head, ``opened`` being
    ``(weights, biases, states, step, lock_fd)``. If anything raises, the stores opened are
    closed and the lock released. Returns ``(head, cfg, states)``.
    """
    if mode not in ("r", "r+"):
        raise ValueError(f"mode must be 'r' or 'r+', got {mode!r}")
    if not p.is_dir():
        raise StoreError(f"{p}: no such directory (not a SampledSoftmaxHead store)")
    lock_fd = lock_directory(p) if mode == "r+" else None
    opened = []
    try:
        cfg, opt = read_config(p)
        weights = ShardedMatrix.open(p / "weights", mode, durability)
        opened.append(weights)
        biases = ShardedMatrix.open(p / "biases", mode, durability)
        opened.append(biases)
        check_stores(p, cfg, weights, biases)
        counts = read_counts(p, cfg) if cfg["sampler"] == "unigram" else None
        states = (None, None)
        if mode == "r+":
            for name in ("weights", "biases"):
                for slot in opt.slots:
                    if not (p / "opt" / name / slot / "meta.json").is_file():
                        raise StoreError(f"{p}: the optimizer state opt/{name}/{slot} is "
                                         f"missing ({cfg['optimizer']['name']} keeps "
                                         f"slots {opt.slots})")
            states = tuple(opt.init_state(param, path=p / "opt" / name,
                                          durability=durability)
                           for name, param in (("weights", weights), ("biases", biases)))
            opened.extend(states)
            if cfg["version"] == 1:
                adopt_stores(p, cfg, weights, biases, states)
        if cfg["version"] >= 2 or mode == "r+":
            check_steps(p, cfg, weights, biases, states)
        head = build(cfg, opt, counts, (weights, biases, states, cfg["step"], lock_fd))
    except BaseException:
        for o in reversed(opened):
            if o is not None:
                o.close()
        if lock_fd is not None:
            unlock_directory(lock_fd)
        raise
    return head, cfg, states


def write_head(dest, weights, biases, step, states, counts, record):
    """Write an in-RAM head (its arrays, optimizer states' slots and ``counts``) as a new head
    directory ``dest``, committed under its lock with ``record`` as its ``head.json``."""
    dest.mkdir(parents=True, exist_ok=True)
    fd = lock_directory(dest)
    stores = []
    try:
        members = []
        for name, arr in (("weights", weights), ("biases", biases)):
            stores.append(copy_to_store(arr, dest / name, "../" + RECORD))
            members.append((stores[-1], step))
        for name, st in zip(("weights", "biases"), states):
            for slot, arr in st.slots.items():
                stores.append(copy_to_store(arr, dest / "opt" / name / slot,
                                            "../../../" + RECORD))
                members.append((stores[-1], st.t))
        if counts is not None:
            with atomic_output(dest / "counts.npy") as f:
                np.save(f, counts)
        commit_group(dest / RECORD, members, record)
    finally:
        for store in stores:
            store.close()
        unlock_directory(fd)


def warm_stores(stores, num_classes, num_rows, max_bytes):
    """``SampledSoftmaxHead.warm`` on a memory-mapped head's stores (weights, biases and the
    optimizer's slot stores): the dict it returns."""
    vectors = [st for st in stores if st.dim is None]       # biases and their slots
    matrices = [st for st in stores if st.dim is not None]
    nv = None
    if num_rows is None:
        budget = max(0, _memory.available_memory() // 2 if max_bytes is None
                     else int(max_bytes))
        # the per-class vectors cost 4 bytes a class: all of them, when they take at most a
        # quarter of the budget, save a second page read for every row outside the rest
        vec_bytes = num_classes * sum(st.dtype.itemsize for st in vectors)
        row_bytes = sum(st.dim * st.dtype.itemsize for st in matrices)
        if 0 < vec_bytes <= budget // 4:
            nv, budget = num_classes, budget - vec_bytes
        else:                           # the vectors share the matrices' row count
            row_bytes += vec_bytes // num_classes
        num_rows = min(num_classes, budget // row_bytes)
    n = as_int(num_rows, "num_rows", 0)
    if n > num_classes:
        raise ValueError(f"num_rows ({n}) must be <= num_classes ({num_classes})")
    nv = n if nv is None else nv
    t0 = time.perf_counter()
    total = sum(st.warm(n) for st in matrices) + sum(st.warm(nv) for st in vectors)
    return {"rows": n, "vector_rows": nv, "bytes": total,
            "seconds": time.perf_counter() - t0}


def copy_to_store(arr, path, group):
    """A new store at ``path`` holding ``arr``, in the commit group ``group``; left open."""
    arr = np.asarray(arr)
    store = ShardedMatrix.create(path, arr.shape[0], arr.shape[1] if arr.ndim == 2 else None,
                                 dtype=arr.dtype.name, durability="none", group=group)
    try:
        store.shards[0][...] = arr
    except BaseException:
        store.close()
        raise
    return store


def check_head_dir(p):
    """Refuse to replace a directory unless it holds a head and nothing else."""
    names = set(os.listdir(p)) - {".lock"}
    names = {n for n in names if not (n.startswith(".") and n.endswith(".tmp"))}
    if not names:
        return
    if RECORD not in names and not names & {"weights", "biases"}:
        raise FileExistsError(f"{p} is not empty and is not a SampledSoftmaxHead store (no "
                              f"{RECORD}); refusing to delete anything there")
    others = sorted(names - HEAD_ENTRIES)
    if others:
        raise FileExistsError(f"{p} holds files that are not part of a head ({others[:5]}); "
                              "refusing to replace it")
    if RECORD in names:
        try:
            cfg = json.loads((p / RECORD).read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            cfg = None
        if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
            raise FileExistsError(f"{p / RECORD} is not a SampledSoftmaxHead's; refusing to "
                                  "replace the directory")
    for store in head_stores(p):   # every store, checked before anything is deleted
        check_replaceable(store)


def head_stores(p):
    """The store directories of the head at ``p`` (weights, biases, ``opt/<param>/<slot>``);
    ``FileExistsError`` for anything else under them, so that nothing is deleted before the
    whole tree is known to be the head's own."""
    stores = []
    for d in [p / "weights", p / "biases"]:
        if d.is_symlink() or (d.exists() and not d.is_dir()):
            raise FileExistsError(f"{d} is not a store directory; refusing to replace {p}")
        if d.exists():
            stores.append(d)
    opt = p / "opt"
    if opt.exists():
        for d in [opt] + (sorted(opt.iterdir()) if opt.is_dir() else []):
            if d.is_symlink() or not d.is_dir():
                raise FileExistsError(f"{d} is not part of a head; refusing to replace {p}")
            if d != opt:
                for slot in sorted(d.iterdir()):
                    if slot.is_symlink() or not slot.is_dir():
                        raise FileExistsError(f"{slot} is not part of a head; refusing to "
                                              f"replace {p}")
                    stores.append(slot)
    return stores


def remove_head(p):
    """Delete a head's files (``head.json`` first: a half-deleted head is not loadable)."""
    stores = head_stores(p)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(p / RECORD)
    fsync_dir(p)
    for store in stores:
        remove_store(store)
    opt = p / "opt"
    if opt.is_dir():
        for param in sorted(opt.iterdir()):
            with contextlib.suppress(OSError):
                os.rmdir(param)
        with contextlib.suppress(OSError):
            os.rmdir(opt)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(p / "counts.npy")


def read_config(p):
    """``head.json`` checked field by field; returns ``(config, optimizer)``."""
    fn = p / RECORD
    cfg = read_json_object(fn, f"{p}: no {RECORD} (not a SampledSoftmaxHead store)")
    if cfg.get("format") != FORMAT or cfg.get("version") not in READABLE_VERSIONS:
        raise StoreError(f"{fn}: unknown format {cfg.get('format')!r} version "
                         f"{cfg.get('version')!r}")

    def field(key, ok, what):
        if key not in cfg:
            raise StoreError(f"{fn}: missing field {key!r}")
        v = cfg[key]
        if not ok(v):
            raise StoreError(f"{fn}: field {key!r} must be {what}, got {v!r}")
        return v

    def is_int(lo):
        return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= lo

    def is_bool(v):
        return isinstance(v, bool)

    def is_real(lo):
        return lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool)
                          and math.isfinite(v) and v >= lo)

    field("num_classes", is_int(1), "an int >= 1")
    field("dim", is_int(1), "an int >= 1")
    field("num_shards", is_int(1), "an int >= 1")
    field("partition_strategy", lambda v: v in ("mod", "div"), "'mod' or 'div'")
    field("sampler", lambda v: v in SAMPLERS, f"one of {SAMPLERS}")
    field("distortion", is_real(0), "a finite number >= 0")
    field("loss", lambda v: v in LOSSES, f"one of {LOSSES}")
    field("num_sampled", is_int(1), "an int >= 1")
    if cfg["num_sampled"] > cfg["num_classes"]:
        raise StoreError(f"{fn}: field 'num_sampled' ({cfg['num_sampled']}) exceeds "
                         f"num_classes ({cfg['num_classes']})")
    field("num_true", is_int(1), "an int >= 1")
    field("reduction", lambda v: v in ("mean", "sum"), "'mean' or 'sum'")
    field("remove_accidental_hits", is_bool, "true or false")
    field("subtract_log_q", is_bool, "true or false")
    field("seed", is_int(0), "an int >= 0")
    field("dtype", lambda v: v in ("float32", "float64"), "'float32' or 'float64'")
    field("step", is_int(0), "an int >= 0")
    if "sampler_calls" in cfg:
        field("sampler_calls", is_int(0), "an int >= 0")
    if "optimizer_t" in cfg:
        field("optimizer_t", lambda v: isinstance(v, list) and len(v) == 2 and all(
            isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in v),
            "a list of two ints >= 0")
    oc = field("optimizer", lambda v: isinstance(v, dict) and v.get("name") in OPTIMIZERS,
               f"an object whose name is one of {tuple(OPTIMIZERS)}")
    params = {k: v for k, v in oc.items() if k != "name"}
    try:
        opt = OPTIMIZERS[oc["name"]](**params)
    except (TypeError, ValueError) as e:
        raise StoreError(f"{fn}: field 'optimizer' is not a valid {oc['name']} "
                         f"configuration: {e}") from None
    if cfg["version"] >= 2:
        check_group_record(cfg, fn)     # head.json is the stores' commit record too
    return cfg, opt


def read_counts(p, cfg):
    fn = p / "counts.npy"
    if not fn.is_file():
        raise StoreError(f"{fn}: missing (sampler 'unigram' needs the class counts)")
    try:
        c = np.load(fn, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise StoreError(f"{fn}: not a readable .npy file ({e})") from None
    if c.shape != (cfg["num_classes"],) or c.dtype.kind not in "fiu":
        raise StoreError(f"{fn}: must hold {cfg['num_classes']} numbers (one per class), got "
                         f"shape {c.shape} dtype {c.dtype}")
    c = c.astype(np.float64)
    if not np.isfinite(c).all() or (c < 0).any():
        raise StoreError(f"{fn}: counts must be finite and >= 0")
    return c


def check_stores(p, cfg, weights, biases):
    """The stores must match head.json and each other's shard layout."""
    V, D = cfg["num_classes"], cfg["dim"]
    if (weights.num_rows, weights.dim) != (V, D) or biases.num_rows != V or \
            biases.dim is not None or weights.dtype.name != cfg["dtype"] or \
            biases.dtype != weights.dtype:
        raise StoreError(f"{p}: weights {weights.shape} {weights.dtype} / biases "
                         f"{biases.shape} {biases.dtype} do not match {RECORD} ({V} x {D} "
                         f"{cfg['dtype']})")
    if biases.shard_sizes != weights.shard_sizes or (
            weights.num_shards > 1 and biases.partition_strategy != weights.partition_strategy):
        raise StoreError(f"{p}: the biases are laid out over {biases.num_shards} shards "
                         f"{biases.shard_sizes} ({biases.partition_strategy!r}) but the weights "
                         f"over {weights.num_shards} {weights.shard_sizes} "
                         f"({weights.partition_strategy!r}); a head needs one layout")
    if weights.num_shards != cfg["num_shards"] or (
            weights.num_shards > 1 and weights.partition_strategy != cfg["partition_strategy"]):
        raise StoreError(f"{p}: the weights have {weights.num_shards} shards "
                         f"({weights.partition_strategy!r}) but {RECORD} says "
                         f"{cfg['num_shards']} ({cfg['partition_strategy']!r})")


def check_steps(p, cfg, weights, biases, states):
    """Every store is at the step its commit record gives (after the journals' recovery)."""
    rec = cfg if cfg["version"] >= 2 else None     # checked by read_config
    for store, want in [(weights, cfg["step"]), (biases, cfg["step"])] + [
            (store, st.t) for st in states if st is not None for store in st.slots.values()]:
        if store.step != want or (rec is not None and store.group is not None and
                                  rec["stores"].get(rel_path(p, store.path)) != store.step):
            raise StoreError(f"{store.path}: at step {store.step}, but {p / RECORD} records "
                             f"{want}")
        if rec is not None and store.group is None:
            raise StoreError(f"{store.path}: not part of {p / RECORD}'s commit group")


def rel_path(p, path):
    """``path`` relative to the head directory ``p``, with ``/``: its key in the record."""
    return os.path.relpath(os.path.abspath(path), os.path.abspath(p)).replace(os.sep, "/")


def adopt_stores(p, cfg, weights, biases, states):
    """Bring a head written without a commit record into one (see ``join_group``)."""
    members = [weights, biases] + [s for st in states for s in st.slots.values()]
    epochs = {s.epoch for s in members}
    if len(epochs) != 1:
        raise StoreError(f"{p}: its stores are at different epochs {sorted(epochs)}")
    if weights.step != cfg["step"] or biases.step != cfg["step"]:
        raise StoreError(f"{p}: weights at step {weights.step} and biases at step "
                         f"{biases.step}, but {RECORD} records {cfg['step']}")
    rec = dict(cfg, version=VERSION, epoch=epochs.pop(),
               stores={rel_path(p, s.path): s.step for s in members})
    atomic_write_bytes(p / RECORD, (json.dumps(rec, indent=1, sort_keys=True) + "\n").encode())
    for s in members:
        if s.group is None:
            join_group(s, p / RECORD)
    cfg.update(rec)


class HeadStorage:
    """The persistence half of ``SampledSoftmaxHead``, mixed into it: reopening a head from
    its directory (``load``), creating a new one, checkpoints, the journals' durability,
    saving, warming the page cache and closing.

    It works on the head's own attributes (``path``, the stores, ``_states``, ``step``, the
    writer lock's ``_lock_fd``, the step's caches) and methods (``config``, ``_check_open``,
    ``_check_writable``); the head's constructor takes the stores ``load`` opened as
    ``_open``. What a checkpoint makes durable, in which order, is in
    docs/storage.md#checkpoints-are-atomic.
    """

    @classmethod
    def load(cls, path, mode="r+", durability="process"):
        """Reopen a head saved at ``path`` (``mode`` "r+" to train on, "r" to predict only).

        The head reopens exactly at its last :meth:`checkpoint`: rows changed after it by a
        process that died (or closed without checkpointing) are rolled back from the stores'
        journals first. The step counter and the sampler's stream continue from there.

        Parameters
        ----------
        path : str or os.PathLike
            A directory written by :meth:`save` or by a head created with ``path=``.
        mode : {"r+", "r"}
            "r+" takes the writer lock; "r" opens read-only (predict, evaluate).
        durability : {"process", "power", "none"}
            For mode "r+": what the journal protects from now on (see the class).

        Returns
        -------
        SampledSoftmaxHead

        Raises
        ------
        StoreError
            When the directory is not a consistent head store: ``head.json`` missing,
            unreadable or with a field of the wrong type or value (named), a store that does
            not match it (shape, dtype, shard layout of the biases against the weights), a
            missing optimizer state or ``counts.npy``.
        StoreLockedError
            When another process has it open for writing.
        """
        def build(cfg, opt, counts, opened):
            return cls(cfg["num_classes"], cfg["dim"], path=p, sampler=cfg["sampler"],
                       counts=counts, distortion=cfg["distortion"], loss=cfg["loss"],
                       num_sampled=cfg["num_sampled"], num_true=cfg["num_true"], optimizer=opt,
                       reduction=cfg["reduction"],
                       remove_accidental_hits=cfg["remove_accidental_hits"],
                       subtract_log_q=cfg["subtract_log_q"], seed=cfg["seed"],
                       dtype=cfg["dtype"], durability=durability, _open=opened)

        p = pathlib.Path(os.fspath(path))
        head, cfg, states = open_head(p, mode, durability, build)
        head._mode = mode
        head.sampler.calls = cfg.get("sampler_calls", cfg["step"])
        for st, t in zip(states, cfg.get("optimizer_t", (None, None))):
            if st is not None and t is not None and not st.slots:
                st.t = t
        return head

    def _create_store(self, init, scale, overwrite):
        self._lock_fd = lock_new_head(self.path, overwrite)
        try:
            self.weights, self.biases, self._states = create_stores(
                self.path, self.num_classes, self.dim, num_shards=self.num_shards,
                partition_strategy=self.partition_strategy, dtype=self.dtype.name,
                durability=self.durability, seed=self.seed, init=init, scale=scale,
                counts=self.counts, optimizer=self.optimizer)
            self.checkpoint()
        except BaseException:
            self._release()
            raise

    def checkpoint(self):
        """Commit the head's state atomically: weights, biases, every optimizer slot, the
        step counter and the sampler's stream.

        Every store's rows are made durable (``msync`` + ``fsync``), then ``head.json`` is
        replaced atomically with the next epoch -- the one commit point of the whole head --
        and the stores' journals start over. After a crash at any instant, :meth:`load`
        reopens at this checkpoint or at the previous one, never at a mixture."""
        if self.path is None:
            raise ValueError("this head lives in RAM; use save(path) to write it to disk")
        self._check_open()
        if getattr(self, "_mode", "r+") == "r":
            raise ValueError("head opened read-only (mode='r')")
        commit_group(self.path / RECORD, self._members(), self.config())

    def sync(self):
        """Make every row of the stores durable (``msync`` + ``fsync``) without committing:
        the first half of :meth:`checkpoint`, for a caller that commits several heads as
        one (a distributed head's shards). Rows changed afterwards still roll back to the
        last checkpoint."""
        if self.path is None:
            raise ValueError("this head lives in RAM; there is nothing to sync")
        self._check_writable()
        for store, _ in self._members():
            store.sync()

    def set_durability(self, durability):
        """Change what the stores' journals protect against, right after a checkpoint.

        Parameters
        ----------
        durability : {"process", "power", "none"}
            See the class.

        Raises
        ------
        ValueError
            The head lives in RAM, or rows changed since the last :meth:`checkpoint`.
        """
        if self.path is None:
            raise ValueError("this head lives in RAM: it keeps no journal")
        self._check_writable()
        stores = [store for store, _ in self._members()]
        check_durability(durability)
        changed = [str(store.path) for store in stores if store.journal_rows]
        if changed:
            raise ValueError(f"rows of {changed[0]} changed since the last checkpoint; call "
                             "checkpoint() before changing the durability")
        for store in stores:
            store.set_durability(durability)
        self.durability = durability

    def _members(self):
        members = [(self.weights, self.step), (self.biases, self.step)]
        for st in self._states:
            members += [(store, st.t) for store in st.slots.values()]
        return members

    def save(self, path):
        """Write the head (weights, biases, optimizer state, config) to a new directory.

        Saving a memory-mapped head to its own path is :meth:`checkpoint`.

        Parameters
        ----------
        path : str or os.PathLike
            A directory that does not exist or is empty; :meth:`load` reopens it.
        """
        dest = self._save_target(path)
        if dest is None:
            return
        if self.path is not None:
            self.checkpoint()
            shutil.copytree(self.path, dest, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(".lock", "*.tmp", "journal"))
            return
        write_head(dest, self.weights, self.biases, self.step, self._states, self.counts,
                   self.config())

    def _save_target(self, path):
        """``save``'s destination, checked to be new or empty; None when it is the head's
        own directory (then checkpointed: saving there is a checkpoint)."""
        self._check_open()
        dest = pathlib.Path(os.fspath(path))
        if self.path is not None and dest.resolve() == self.path.resolve():
            self.checkpoint()
            return None
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise FileExistsError(f"{dest} exists and is not an empty directory")
        return dest

    def warm(self, num_rows=None, max_bytes=None):
        """Bring the rows of the most frequent classes into the page cache (memory-mapped
        heads; a no-op in RAM), for weights, biases and optimizer slots alike.

        A head larger than RAM otherwise starts cold: every step then reads its rows from
        disk one 4 KiB page at a time. Classes are taken to be numbered by decreasing
        frequency (what the log-uniform sampler assumes), so the rows a step touches most
        are those of the smallest ids; see :meth:`ShardedMatrix.warm`. Warmed rows are also
        no longer hinted to the kernel before each step.

        Parameters
        ----------
        num_rows : int, optional
            Classes ``0 .. num_rows - 1`` to warm in every store. Default: as many as fit in
            ``max_bytes``, after the biases (and any per-class optimizer slots of them) of
            *all* classes when those take at most a quarter of it: 4 bytes a class, and a cold
            row then costs one page read instead of two.
        max_bytes : int, optional
            Budget for the default ``num_rows``; default half of the memory available now
            (``MemAvailable``; Linux), and nothing where that is unknown.

        Returns
        -------
        dict
            ``rows`` of the matrices warmed, ``vector_rows`` of the biases, ``bytes`` read
            and ``seconds`` taken.
        """
        if self.path is None:
            return {"rows": 0, "vector_rows": 0, "bytes": 0, "seconds": 0.0}
        stores = [self.weights, self.biases]
        for st in self._states:
            if st is not None:
                stores += [v for v in st.slots.values() if isinstance(v, ShardedMatrix)]
        info = warm_stores(stores, self.num_classes, num_rows, max_bytes)
        self._warm_rows = max(self._warm_rows, info["rows"])
        self._warm_bias_rows = max(self._warm_bias_rows, info["vector_rows"])
        return info

    def close(self):
        """Release the stores (and the writer lock). Does not checkpoint: rows changed since
        the last :meth:`checkpoint` are rolled back when the head is loaded again."""
        self._rows = None
        self._bound = None
        self._workspace.release()
        self.closed = True
        if self.path is None:
            return
        for st in self._states:
            if st is not None:
                st.close()
        self.weights.close()
        self.biases.close()
        self._release()

    def _release(self):
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            unlock_directory(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
