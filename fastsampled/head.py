"""A trainable sampled-softmax (or NCE) output layer over a huge vocabulary.

:class:`SampledSoftmaxHead` owns the class weights and biases (in RAM, or memory-mapped
:class:`~fastsampled.ShardedMatrix` stores under a directory), a candidate sampler, a loss and
a sparse optimizer. ``train_step(inputs, labels)`` samples, computes the loss and all
gradients, applies the sparse update to the rows the step used, and returns the gradient with
respect to the inputs, so any host network (PyTorch, JAX, numpy) can back-propagate it.
``loss_and_grads`` and ``apply_grads`` are its two halves, for hosts that decide themselves
when the head's update happens (``fastsampled.torch`` applies it in the backward pass).
``predict`` and ``evaluate`` are exact over all classes, chunked over shards and threads,
and never build a (batch, num_classes) matrix.

On-disk layout of a head at ``path``::

    path/head.json                  config and step counter (replaced atomically)
    path/weights/, path/biases/     ShardedMatrix stores
    path/opt/weights/<slot>/, ...   optimizer state, stored like the weights
    path/counts.npy                 unigram counts (sampler="unigram" only)
"""
import contextlib
import json
import math
import os
import pathlib
import shutil
import time

import numba
import numpy as np

from . import _memory
from ._blas import single_threaded_blas
from ._errors import StoreError
from ._files import atomic_output, atomic_write_bytes, fsync_dir, read_json_object
from ._head_kernels import merge_heaps, merge_lse, scan_shard
from ._layout import check_strategy
from ._params import ParamRows
from ._step import SparseGrads, StepOptions, Workspace, check_sampled_values, step_ids
from ._step import loss_and_grads as step_loss_and_grads
from ._storefile import check_group_record, check_replaceable
from ._validate import as_bool, as_float_array, as_int, as_real, as_true_classes, check_range
from ._validate_kernels import first_nonfinite
from .optimizers import SGD, Adagrad, Adam
from .samplers import FixedUnigramSampler, LogUniformSampler, UniformSampler
from .sharding import (ShardedMatrix, check_durability, commit_group, join_group,
                       lock_directory, remove_store, unlock_directory)

__all__ = ["SampledSoftmaxHead", "Batch"]

_FORMAT = "fastsampled.SampledSoftmaxHead"
_VERSION = 2
_READABLE_VERSIONS = (1, 2)   # 1: no commit record (epoch, stores) in head.json
_RECORD = "head.json"
# what a head directory may hold; anything else there is the user's and is never deleted
_HEAD_ENTRIES = {_RECORD, "weights", "biases", "opt", "counts.npy", ".lock"}
_OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "adam": Adam}
_SAMPLERS = ("log_uniform", "uniform", "unigram")
_LOSSES = ("sampled_softmax", "nce")
_EXAMPLE_BLOCK = 256   # examples per pass over the classes in predict / evaluate


def _optimizer_config(opt):
    name = {SGD: "sgd", Adagrad: "adagrad", Adam: "adam"}.get(type(opt))
    if name is None:
        raise TypeError(f"optimizer must be 'sgd', 'adagrad', 'adam' or an SGD/Adagrad/Adam "
                        f"instance, got {opt!r}")
    return {"name": name, **opt.get_config()}


class Batch:
    """A batch validated once by :meth:`SampledSoftmaxHead.batch`, for that head's methods.

    Attributes
    ----------
    inputs : ndarray of shape (batch, dim)
        C-contiguous and finite, in the head's dtype.
    labels : ndarray of int64, shape (batch, num_true)
        The batch's own copy of the labels, each in ``[0, num_classes)``; do not modify it.
    """

    __slots__ = ("inputs", "labels", "_key")

    def __init__(self, inputs, labels, key):
        self.inputs = inputs
        self.labels = labels
        self._key = key

    def __repr__(self):
        return f"Batch(inputs={self.inputs.shape} {self.inputs.dtype}, labels={self.labels.shape})"


class SampledSoftmaxHead:
    """Output layer over ``num_classes`` classes trained by sampled softmax or NCE.

    Parameters
    ----------
    num_classes : int
        Number of classes (rows of the weights).
    dim : int
        Input dimension (columns of the weights).
    path : str or path-like, optional
        Directory for memory-mapped weights, biases and optimizer state (created; must not
        exist or be empty unless ``overwrite``). None keeps everything in RAM.
    num_shards, partition_strategy : int, {"div", "mod"}
        Shard layout of the on-disk stores (ids map as in ``tf.nn.embedding_lookup``).
    sampler : {"log_uniform", "uniform", "unigram"}
        Candidate sampler; "unigram" draws from ``counts ** distortion`` with an alias table.
    counts : array_like of shape (num_classes,), optional
        Class frequencies for ``sampler="unigram"``.
    distortion : float
        Exponent applied to ``counts`` (0.75 as in word2vec).
    loss : {"sampled_softmax", "nce"}
    num_sampled, num_true : int
        Sampled classes per step (shared by the batch) and labels per example.
    optimizer : {"sgd", "adagrad", "adam"} or SGD / Adagrad / Adam instance
    lr : float, optional
        Learning rate when ``optimizer`` is a name (defaults: sgd 0.5, adagrad 0.1, adam 1e-3).
    init, init_scale : {"normal", "uniform", "zeros"}, float
        Initial weights: N(0, init_scale) or U(-init_scale, init_scale); default scale
        ``1 / sqrt(dim)``. Biases start at zero.
    reduction : {"mean", "sum"}
        ``train_step`` returns and differentiates the mean (or sum) of the per-example loss.
    remove_accidental_hits : bool, optional
        Default: True for sampled softmax, False for NCE (as TensorFlow).
    subtract_log_q : bool
    seed : int
        Seeds the initial weights and the sampler's stream.
    dtype : {"float32", "float64"}
    overwrite : bool
        Replace a head already stored at ``path`` (after taking its lock). A directory that
        is not empty and is not a head -- or a head directory holding files of its own --
        is refused even so: nothing but a head's own files is ever deleted.
    durability : {"process", "power", "none"}
        What the stores' rollback journal protects between checkpoints (memory-mapped heads):
        after a killed process (``"process"``) or also a power cut (``"power"``, an
        ``msync`` of the journal per step) the head reopens exactly at its last
        :meth:`checkpoint`. ``"none"`` keeps no journal: a crash then leaves rows newer than
        the checkpoint.

    Examples
    --------
    >>> import numpy as np, fastsampled as fs
    >>> head = fs.SampledSoftmaxHead(1000, 16, num_sampled=20, seed=0)
    >>> x = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
    >>> y = np.arange(8)
    >>> loss, d_x = head.train_step(x, y)
    >>> d_x.shape, head.step
    ((8, 16), 1)
    >>> ids, scores = head.predict(x, k=3)
    >>> ids.shape
    (8, 3)
    """

    def __init__(self, num_classes, dim, *, path=None, num_shards=1, partition_strategy="div",
                 sampler="log_uniform", counts=None, distortion=0.75, loss="sampled_softmax",
                 num_sampled=64, num_true=1, optimizer="sgd", lr=None, init="normal",
                 init_scale=None, reduction="mean", remove_accidental_hits=None,
                 subtract_log_q=True, seed=0, dtype="float32", overwrite=False,
                 durability="process", _open=None):
        self.num_classes = as_int(num_classes, "num_classes", 1)
        self.dim = as_int(dim, "dim", 1)
        self.num_sampled = as_int(num_sampled, "num_sampled", 1)
        self.num_true = as_int(num_true, "num_true", 1)
        if self.num_sampled > self.num_classes:
            raise ValueError(f"num_sampled ({self.num_sampled}) must be <= num_classes "
                             f"({self.num_classes}): candidates are drawn without repeats")
        if sampler not in _SAMPLERS:
            raise ValueError(f"sampler must be one of {_SAMPLERS}, got {sampler!r}")
        if loss not in _LOSSES:
            raise ValueError(f"loss must be one of {_LOSSES}, got {loss!r}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        if init not in ("normal", "uniform", "zeros"):
            raise ValueError(f"init must be 'normal', 'uniform' or 'zeros', got {init!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.sampler_kind = sampler
        self.loss_kind = loss
        self.reduction = reduction
        self.distortion = as_real(distortion, "distortion", 0.0)
        self.remove_accidental_hits = (loss == "sampled_softmax") if remove_accidental_hits is None \
            else as_bool(remove_accidental_hits, "remove_accidental_hits")
        self.subtract_log_q = as_bool(subtract_log_q, "subtract_log_q")
        self.seed = as_int(seed, "seed", 0)
        self.durability = check_durability(durability)
        self.closed = False
        self._lock_fd = None
        self._rows = None            # the parameters as the step takes them (_loss_rows)
        self._bound = None           # the parameters bound to the optimizer (apply_grads)
        self._workspace = Workspace()  # the steps' scratch memory, reused step after step
        self.counts = None
        if sampler == "unigram":
            if counts is None:
                raise ValueError("sampler='unigram' needs counts (class frequencies)")
            c = np.asarray(counts, dtype=np.float64).reshape(-1)
            if c.size != self.num_classes:
                raise ValueError(f"counts has {c.size} entries, num_classes is {self.num_classes}")
            self.counts = c
        elif counts is not None:
            raise ValueError(f"counts is only used with sampler='unigram', not {sampler!r}")
        if isinstance(optimizer, str):
            if optimizer not in _OPTIMIZERS:
                raise ValueError(f"optimizer must be one of {tuple(_OPTIMIZERS)} or an optimizer "
                                 f"instance, got {optimizer!r}")
            defaults = {"sgd": 0.5, "adagrad": 0.1, "adam": 1e-3}
            optimizer = _OPTIMIZERS[optimizer](lr=defaults[optimizer] if lr is None else lr)
        elif lr is not None:
            raise ValueError("lr is only used when optimizer is given by name")
        self._opt_config = _optimizer_config(optimizer)
        self.optimizer = optimizer
        self.sampler = self._make_sampler()
        if self.num_sampled > self.sampler.num_drawable:
            raise ValueError(f"num_sampled ({self.num_sampled}) exceeds the "
                             f"{self.sampler.num_drawable} classes the sampler can draw (zero "
                             "counts have probability 0)")
        self.step = 0
        self._warm_rows = 0          # rows 0.. made resident by warm(): no prefetch hints
        self._warm_bias_rows = 0     # the same for the biases (warm() may take all of them)
        self.path = None if path is None else pathlib.Path(os.fspath(path))
        if _open is not None:          # load(): stores already opened
            self.weights, self.biases, self._states, self.step, self._lock_fd = _open
            self._options = self._step_options()
            self.num_shards = getattr(self.weights, "num_shards", 1)
            self.partition_strategy = getattr(self.weights, "partition_strategy", "div")
            self.sampler.calls = self.step
            return
        self.num_shards = as_int(num_shards, "num_shards", 1)
        self.partition_strategy = check_strategy(partition_strategy)
        scale = 1.0 / np.sqrt(self.dim) if init_scale is None else \
            as_real(init_scale, "init_scale", 0.0)
        self._options = self._step_options()
        if self.path is None:
            if self.num_shards != 1:
                raise ValueError("num_shards > 1 needs a path (in-RAM heads use one array)")
            self.weights = _init_ram_weights(self.num_classes, self.dim, self.dtype, init,
                                             scale, self.seed)
            self.biases = _memory.full(self.num_classes, 0, self.dtype)
            self._states = (self.optimizer.init_state(self.weights),
                            self.optimizer.init_state(self.biases))
        else:
            self._create_store(init, scale, overwrite)

    # ------------------------------------------------------------------ construction
    def _make_sampler(self):
        V, seed = self.num_classes, self.seed
        if self.sampler_kind == "log_uniform":
            return LogUniformSampler(V, seed=seed)
        if self.sampler_kind == "uniform":
            return UniformSampler(V, seed=seed)
        return FixedUnigramSampler(V, unigrams=self.counts, distortion=self.distortion, seed=seed)

    def _step_options(self):
        return StepOptions(nce=self.loss_kind == "nce",
                           remove_accidental_hits=self.remove_accidental_hits,
                           subtract_log_q=self.subtract_log_q)

    @property
    def optimizer_states(self):
        """``(weights' OptimizerState, biases' OptimizerState)``; ``(None, None)`` for a head
        opened read-only."""
        return self._states

    def config(self):
        """The head's configuration and counters as written to ``head.json`` (a dict of JSON
        values: sizes, sampler, loss, optimizer and its hyper-parameters, ``step``, the
        sampler's and the optimizer's counters)."""
        return {
            "format": _FORMAT, "version": _VERSION, "num_classes": self.num_classes,
            "dim": self.dim, "num_shards": self.num_shards,
            "partition_strategy": self.partition_strategy, "sampler": self.sampler_kind,
            "distortion": self.distortion, "loss": self.loss_kind,
            "num_sampled": self.num_sampled, "num_true": self.num_true,
            "optimizer": self._opt_config, "reduction": self.reduction,
            "remove_accidental_hits": self.remove_accidental_hits,
            "subtract_log_q": self.subtract_log_q, "seed": self.seed,
            "dtype": self.dtype.name, "step": self.step,
            # differs from step when batches were sampled without an update (loss_and_grads)
            "sampler_calls": self.sampler.calls,
            # the optimizer states' update counts (Adam's bias correction): SGD and Adagrad
            # keep no slot store that would record them
            "optimizer_t": [st.t if st is not None else self.step for st in self._states],
        }

    def _create_store(self, init, scale, overwrite):
        p = self.path
        overwrite = as_bool(overwrite, "overwrite")
        if p.exists() and not p.is_dir():
            raise FileExistsError(f"path {str(p)!r} exists and is not a directory")
        if p.is_dir() and any(p.iterdir()):
            _check_head_dir(p)
            if not overwrite:
                raise FileExistsError(f"{p} holds a head already (pass overwrite=True to "
                                      "replace it, or SampledSoftmaxHead.load to resume it)")
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"path {str(p)!r}: cannot create the directory ({e.strerror})") \
                from None
        self._lock_fd = lock_directory(p)
        try:
            if overwrite:
                _check_head_dir(p)         # again, under the lock
                _remove_head(p)
            self._make_stores(p, init, scale)
        except BaseException:
            self._release()
            raise

    def _make_stores(self, p, init, scale):
        group = "../" + _RECORD
        common = dict(num_shards=self.num_shards, partition_strategy=self.partition_strategy,
                      dtype=self.dtype.name, durability=self.durability, group=group)
        kw = {"normal": dict(init="normal", std=scale), "uniform": dict(init="uniform", scale=scale),
              "zeros": dict(init="zeros")}[init]
        self.weights = ShardedMatrix.create(p / "weights", self.num_classes, self.dim,
                                            seed=self.seed, **common, **kw)
        self.biases = ShardedMatrix.create(p / "biases", self.num_classes, None, **common)
        if self.counts is not None:
            with atomic_output(p / "counts.npy") as f:
                np.save(f, self.counts)
        self._states = tuple(
            self.optimizer.init_state(param, path=p / "opt" / name, durability=self.durability,
                                      group=p / _RECORD)
            for name, param in (("weights", self.weights), ("biases", self.biases)))
        self.checkpoint()

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
        p = pathlib.Path(os.fspath(path))
        if mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+', got {mode!r}")
        if not p.is_dir():
            raise StoreError(f"{p}: no such directory (not a SampledSoftmaxHead store)")
        lock_fd = lock_directory(p) if mode == "r+" else None
        opened = []
        try:
            cfg, opt = _read_config(p)
            weights = ShardedMatrix.open(p / "weights", mode, durability)
            opened.append(weights)
            biases = ShardedMatrix.open(p / "biases", mode, durability)
            opened.append(biases)
            _check_stores(p, cfg, weights, biases)
            counts = _read_counts(p, cfg) if cfg["sampler"] == "unigram" else None
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
                    _adopt_stores(p, cfg, weights, biases, states)
            if cfg["version"] >= 2 or mode == "r+":
                _check_steps(p, cfg, weights, biases, states)
            head = cls(cfg["num_classes"], cfg["dim"], path=p, sampler=cfg["sampler"],
                       counts=counts, distortion=cfg["distortion"], loss=cfg["loss"],
                       num_sampled=cfg["num_sampled"], num_true=cfg["num_true"], optimizer=opt,
                       reduction=cfg["reduction"],
                       remove_accidental_hits=cfg["remove_accidental_hits"],
                       subtract_log_q=cfg["subtract_log_q"], seed=cfg["seed"],
                       dtype=cfg["dtype"], durability=durability,
                       _open=(weights, biases, states, cfg["step"], lock_fd))
        except BaseException:
            for o in reversed(opened):
                if o is not None:
                    o.close()
            if lock_fd is not None:
                unlock_directory(lock_fd)
            raise
        head._mode = mode
        head.sampler.calls = cfg.get("sampler_calls", cfg["step"])
        for st, t in zip(states, cfg.get("optimizer_t", (None, None))):
            if st is not None and t is not None and not st.slots:
                st.t = t
        return head

    # ------------------------------------------------------------------ persistence
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
        commit_group(self.path / _RECORD, self._members(), self.config())

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
        self._check_open()
        dest = pathlib.Path(os.fspath(path))
        if self.path is not None and dest.resolve() == self.path.resolve():
            self.checkpoint()
            return
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise FileExistsError(f"{dest} exists and is not an empty directory")
        if self.path is not None:
            self.checkpoint()
            shutil.copytree(self.path, dest, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(".lock", "*.tmp", "journal"))
            return
        dest.mkdir(parents=True, exist_ok=True)
        fd = lock_directory(dest)
        stores = []
        try:
            members = []
            for name, arr, step in (("weights", self.weights, self.step),
                                    ("biases", self.biases, self.step)):
                stores.append(_copy_to_store(arr, dest / name, "../" + _RECORD))
                members.append((stores[-1], step))
            for name, st in zip(("weights", "biases"), self._states):
                for slot, arr in st.slots.items():
                    stores.append(_copy_to_store(arr, dest / "opt" / name / slot,
                                                 "../../../" + _RECORD))
                    members.append((stores[-1], st.t))
            if self.counts is not None:
                with atomic_output(dest / "counts.npy") as f:
                    np.save(f, self.counts)
            commit_group(dest / _RECORD, members, self.config())
        finally:
            for store in stores:
                store.close()
            unlock_directory(fd)

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
        vectors = [st for st in stores if st.dim is None]       # biases and their slots
        matrices = [st for st in stores if st.dim is not None]
        nv = None
        if num_rows is None:
            budget = max(0, _memory.available_memory() // 2 if max_bytes is None
                         else int(max_bytes))
            # the per-class vectors cost 4 bytes a class: all of them, when they take at most a
            # quarter of the budget, save a second page read for every row outside the rest
            vec_bytes = self.num_classes * sum(st.dtype.itemsize for st in vectors)
            row_bytes = sum(st.dim * st.dtype.itemsize for st in matrices)
            if 0 < vec_bytes <= budget // 4:
                nv, budget = self.num_classes, budget - vec_bytes
            else:                           # the vectors share the matrices' row count
                row_bytes += vec_bytes // self.num_classes
            num_rows = min(self.num_classes, budget // row_bytes)
        n = as_int(num_rows, "num_rows", 0)
        if n > self.num_classes:
            raise ValueError(f"num_rows ({n}) must be <= num_classes ({self.num_classes})")
        nv = n if nv is None else nv
        t0 = time.perf_counter()
        total = sum(st.warm(n) for st in matrices) + sum(st.warm(nv) for st in vectors)
        self._warm_rows = max(self._warm_rows, n)
        self._warm_bias_rows = max(self._warm_bias_rows, nv)
        return {"rows": n, "vector_rows": nv, "bytes": total,
                "seconds": time.perf_counter() - t0}

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

    def _check_open(self):
        if self.closed or (self.path is not None and self.weights.closed):
            raise ValueError(f"{self!r} is closed")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        where = "RAM" if self.path is None else str(self.path)
        return (f"SampledSoftmaxHead({self.num_classes} classes x {self.dim}, {self.loss_kind}, "
                f"{self.sampler_kind} sampler, S={self.num_sampled}, {self._opt_config['name']}, "
                f"step {self.step}, {where})")

    # ------------------------------------------------------------------ training
    def _inputs(self, inputs, name="inputs"):
        self._check_open()
        x = as_float_array(inputs, name, 2)
        if x.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (batch, {self.dim}), got {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} must have at least one row")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        bad = first_nonfinite(x.reshape(-1))     # a vectorised probe, then the index
        if bad >= 0:
            idx = tuple(int(i) for i in np.unravel_index(bad, x.shape))
            raise ValueError(f"{name} must be finite; found {x[idx]} at index {idx}")
        return x

    def _batch_key(self):
        return (self.num_classes, self.num_true, self.dim, self.dtype)

    def batch(self, inputs, labels, *, inputs_name="inputs"):
        """Validate a batch once, for any number of calls of this head's methods.

        :meth:`loss_and_grads`, :meth:`loss`, :meth:`exact_loss` and :meth:`evaluate`
        take the returned :class:`Batch` in place of ``inputs`` (with ``labels`` omitted)
        and skip their own checks: a host that validates its batch before choosing what to
        compute (``fastsampled.torch``) pays for the checks once.

        Parameters
        ----------
        inputs : ndarray of shape (batch, dim)
        labels : array_like of int, shape (batch,) or (batch, num_true)
        inputs_name : str
            What error messages call ``inputs``.

        Returns
        -------
        Batch

        Raises
        ------
        ValueError, TypeError
            Wrong shape or dtype, non-finite inputs, labels outside ``[0, num_classes)``.
        """
        x = self._inputs(inputs, inputs_name)
        lab, _ = as_true_classes(labels, self.num_true, name="labels")
        if lab.shape[0] != x.shape[0]:
            raise ValueError(f"labels have {lab.shape[0]} rows but {inputs_name} have "
                             f"{x.shape[0]}")
        check_range(lab, 0, self.num_classes, "labels", f"num_classes is {self.num_classes}")
        # the batch's own copy: the caller's buffer may be refilled while the batch lives
        return Batch(x, lab.copy() if lab.base is not None or lab is labels else lab,
                     self._batch_key())

    def _as_batch(self, inputs, labels):
        """``inputs`` when it is a Batch made for this head's sizes, else a new one."""
        if isinstance(inputs, Batch):
            self._check_open()
            if labels is not None:
                raise ValueError("labels must be omitted when inputs is a Batch (it holds them)")
            if inputs._key != self._batch_key():
                raise ValueError(f"this Batch was validated for another head (num_classes, "
                                 f"num_true, dim, dtype = {inputs._key}, not "
                                 f"{self._batch_key()})")
            return inputs
        if labels is None:
            raise TypeError("labels are required (unless inputs is a Batch from head.batch)")
        return self.batch(inputs, labels)

    def _check_writable(self):
        self._check_open()
        if getattr(self, "_mode", "r+") == "r":
            raise ValueError("head opened read-only (mode='r'); load it with mode='r+' to train")

    def train_step(self, inputs, labels):
        """One training step: sample, loss, gradients, sparse update of the touched rows.

        The same as ``loss_and_grads`` followed by ``apply_grads``.

        Parameters
        ----------
        inputs : ndarray of shape (batch, dim)
        labels : array_like of int, shape (batch,) or (batch, num_true)

        Returns
        -------
        loss : float
            Mean (or sum, see ``reduction``) of the per-example loss before the update.
        d_inputs : ndarray of shape (batch, dim)
            Gradient of that loss with respect to ``inputs``.

        Raises
        ------
        FloatingPointError
            When the loss or a gradient is not finite; nothing is written to the weights.
        """
        self._check_writable()
        batch = self.batch(inputs, labels)
        calls = self.sampler.calls
        try:
            loss, g = self._loss_and_grads(batch, self.reduction, None, True)
            self.apply_grads(g)
        except BaseException:
            self.sampler.calls = calls  # a refused step leaves the sampler's stream unchanged
            raise
        return loss, g.inputs

    def loss_and_grads(self, inputs, labels=None, *, reduction=None, sampled_values=None):
        """Sample, then the loss and every gradient of one step, without updating anything.

        ``train_step`` is this followed by :meth:`apply_grads`. Split, a host framework can
        compute the gradient in its forward pass, hand ``grads.inputs`` to its own
        back-propagation and apply (or accumulate, or drop) the head's update when its
        optimizer steps.

        Parameters
        ----------
        inputs : ndarray of shape (batch, dim), or Batch
            A :class:`Batch` from :meth:`batch` carries its labels (omit ``labels``).
        labels : array_like of int, shape (batch,) or (batch, num_true)
        reduction : {"mean", "sum", "none"}, optional
            Default: the head's ``reduction``. "none" returns the per-example losses and the
            gradients of their sum.
        sampled_values : tuple, optional
            ``(sampled_candidates (num_sampled,), true_expected_count (batch, num_true),
            sampled_expected_count (num_sampled,))`` to use instead of drawing (the
            sampler's stream then does not advance), as in ``fs.sampled_softmax_loss``.

        Returns
        -------
        loss : float, or ndarray of shape (batch,) for ``reduction="none"``
        grads : SparseGrads
            Gradients of that (reduced) loss: ``inputs`` (batch, dim), ``ids`` (K,) sorted
            unique class ids, ``weights`` (K, dim), ``biases`` (K,), and the
            ``sampled_values`` used.

        Raises
        ------
        FloatingPointError
            When the loss or the gradient w.r.t. the inputs is not finite; the sampler's
            stream is left where it was.

        Examples
        --------
        >>> import numpy as np, fastsampled as fs
        >>> head = fs.SampledSoftmaxHead(1000, 16, num_sampled=20, seed=0)
        >>> x = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
        >>> loss, g = head.loss_and_grads(x, np.arange(8))
        >>> g.inputs.shape, head.step                    # nothing applied yet
        ((8, 16), 0)
        >>> head.apply_grads(g); head.step
        1
        """
        batch = self._as_batch(inputs, labels)
        return self._loss_and_grads(batch, reduction, sampled_values, True)

    def loss(self, inputs, labels=None, *, reduction=None, sampled_values=None):
        """The sampled loss of a batch without its gradients (cheaper; nothing is updated).

        Draws from the sampler (its stream advances) unless ``sampled_values`` is given.
        For the exact loss over all classes use :meth:`exact_loss`.

        Parameters
        ----------
        inputs, labels, reduction, sampled_values
            As :meth:`loss_and_grads`.

        Returns
        -------
        float, or ndarray of shape (batch,) for ``reduction="none"``
        """
        batch = self._as_batch(inputs, labels)
        return self._loss_and_grads(batch, reduction, sampled_values, False)[0]

    def _loss_and_grads(self, batch, reduction, sampled_values, want_grads):
        """``(loss, SparseGrads or None)`` of a validated batch."""
        reduction = self.reduction if reduction is None else reduction
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        calls = self.sampler.calls
        try:
            return self._compute(batch.inputs, batch.labels, reduction, sampled_values,
                                 want_grads)
        except BaseException:
            self.sampler.calls = calls  # a refused step leaves the sampler's stream unchanged
            raise

    def _compute(self, x, lab, reduction, sampled_values, want_grads):
        if sampled_values is None:
            candidates = tuple(self.sampler.sample_unchecked(lab, self.num_sampled, True))
        else:
            candidates = check_sampled_values(sampled_values, lab, self.num_sampled,
                                              self.num_classes)
        if self.path is not None:
            # rows not in the page cache: issue all their reads at once (see prefetch); the
            # rows warm() made resident need no hint (a syscall per page run otherwise)
            ids = step_ids(lab, candidates[0])
            for store, warm in ((self.weights, self._warm_rows),
                                (self.biases, self._warm_bias_rows)):
                cold = ids[ids >= warm] if warm else ids
                if cold.size:
                    store.prefetch(cold)
        W, Bs = self._loss_rows()
        scale = 1.0 / x.shape[0] if reduction == "mean" else 1.0
        loss, g = step_loss_and_grads(W, Bs, x, lab, candidates, self._options,
                                      want_grads=want_grads, grad_scale=scale,
                                      workspace=self._workspace)
        total = float(loss.sum(dtype=np.float64))
        if not np.isfinite(total):
            raise FloatingPointError(f"non-finite loss ({total}) at step {self.step}; nothing "
                                     "was written to the weights")
        total = loss if reduction == "none" else total * scale
        if want_grads and first_nonfinite(g.inputs.reshape(-1)) >= 0:
            raise FloatingPointError(f"non-finite gradient w.r.t. inputs at step {self.step}; "
                                     "nothing was written to the weights")
        return total, g

    def apply_grads(self, grads):
        """Apply one step's gradients to the rows they touch with the head's optimizer.

        Parameters
        ----------
        grads : SparseGrads
            As returned by :meth:`loss_and_grads` (possibly scaled, or summed over several
            batches: ``ids`` sorted unique, ``weights`` (K, dim), ``biases`` (K,), in the
            head's dtype). ``grads.inputs`` is not used.

        Raises
        ------
        FloatingPointError
            When a gradient or an updated value is not finite; nothing is written and the
            step counter does not advance.
        """
        self._check_writable()
        if not isinstance(grads, SparseGrads):
            raise TypeError(f"grads must be a SparseGrads (from loss_and_grads), got "
                            f"{type(grads).__name__}")
        # the optimizer refuses (FloatingPointError, nothing written) non-finite weight/bias
        # gradients or updates itself
        key = (self.optimizer, self.weights, self.biases, self._states)
        if self._bound is None or any(a is not b for a, b in zip(self._bound[0], key)):
            self._bound = (key, self.optimizer.bind(self.weights, self.biases, self._states,
                                                    self.partition_strategy))
        self._bound[1].apply_grads(grads)
        self.step += 1

    def _loss_rows(self):
        """The weights and biases as the step takes them (built once, then reused)."""
        if (self._rows is None or self._rows[0] is not self.weights
                or self._rows[1] is not self.biases):
            self._rows = (self.weights, self.biases,
                          ParamRows(self.weights, "weights", ndim=2,
                                    partition_strategy=self.partition_strategy),
                          ParamRows(self.biases, "biases", ndim=1,
                                    partition_strategy=self.partition_strategy))
        return self._rows[2], self._rows[3]

    # ------------------------------------------------------------------ inference
    def _shards(self):
        if self.path is not None:
            return self.weights.shards, self.biases.shards, self.partition_strategy
        return [self.weights], [self.biases], "div"

    def _scan(self, x, k, want_lse):
        """Top-k (ids, scores) and optionally log-sum-exp over all classes for rows of x."""
        ws, bs, strategy = self._shards()
        P = len(ws)
        is_div = strategy == "div" or P == 1
        offsets = np.concatenate([[0], np.cumsum([w.shape[0] for w in ws])])
        nthr = numba.config.NUMBA_NUM_THREADS
        B = x.shape[0]
        ids = np.empty((B, k), np.int64)
        scores = np.empty((B, k), self.dtype)
        lse = np.empty(B) if want_lse else None
        with single_threaded_blas(), self._sequential():
            for r0 in range(0, B, _EXAMPLE_BLOCK):
                xb = x[r0:r0 + _EXAMPLE_BLOCK]
                nb = xb.shape[0]
                chunk = int(min(2048, max(128, (1 << 17) // nb)))
                heap_s = np.full((nthr, nb, k), -np.inf, self.dtype)
                heap_i = np.full((nthr, nb, k), np.iinfo(np.int64).max, np.int64)
                run_m = np.full((nthr, nb), -np.inf)
                run_s = np.zeros((nthr, nb))
                for p in range(P):
                    scan_shard(xb, np.asarray(ws[p]), np.asarray(bs[p]), P, p,
                                  int(offsets[p]), is_div, chunk, heap_s, heap_i, run_m, run_s,
                                  want_lse)
                merge_heaps(heap_s, heap_i, scores[r0:r0 + nb], ids[r0:r0 + nb])
                if want_lse:
                    merge_lse(run_m, run_s, lse[r0:r0 + nb])
        return ids, scores, lse

    @contextlib.contextmanager
    def _sequential(self):
        """Stores read sequentially (kernel read-ahead on) for the duration of a full scan."""
        if self.path is None:
            yield
            return
        with self.weights.scan(), self.biases.scan():
            yield

    def predict(self, inputs, k=10):
        """Exact top-k classes of each input over all classes.

        Parameters
        ----------
        inputs : ndarray of shape (batch, dim)
        k : int

        Returns
        -------
        ids : ndarray of int64, shape (batch, k)
            Best first (ties: smaller id first).
        scores : ndarray, shape (batch, k)
            Their logits ``x . w + b``.
        """
        x = self._inputs(inputs)
        k = as_int(k, "k", 1)
        if k > self.num_classes:
            raise ValueError(f"k ({k}) must be <= num_classes ({self.num_classes})")
        ids, scores, _ = self._scan(x, k, False)
        return ids, scores

    def evaluate(self, inputs, labels=None, k=5):
        """Full-softmax loss and precision over all classes, exactly, without a (B, V) matrix.

        Parameters
        ----------
        inputs : ndarray of shape (batch, dim), or Batch
        labels : array_like of int, shape (batch,) or (batch, num_true)
            Omitted when ``inputs`` is a :class:`Batch`.
        k : int

        Returns
        -------
        dict
            ``loss``: mean over examples of ``logsumexp(z) - mean_j z[label_j]`` (the full
            softmax cross-entropy with targets ``1/num_true``); ``precision@1`` and
            ``precision@k``: mean of ``|top-k ∩ labels| / k`` (the extreme-classification
            definition); ``recall@k``: mean of ``|top-k ∩ labels| / num_true``.
        """
        batch = self._as_batch(inputs, labels)
        x, lab = batch.inputs, batch.labels
        k = as_int(k, "k", 1)
        if k > self.num_classes:
            raise ValueError(f"k ({k}) must be <= num_classes ({self.num_classes})")
        losses, ids = self._exact_losses(x, lab, k)
        hits = (ids[:, :, None] == lab[:, None, :]).any(axis=2)   # (B, k)
        return {"loss": float(np.mean(losses)),
                "precision@1": float(hits[:, 0].mean()),
                f"precision@{k}": float(hits.sum(axis=1).mean() / k),
                f"recall@{k}": float(hits.sum(axis=1).mean() / self.num_true)}

    def exact_loss(self, inputs, labels=None, *, reduction=None):
        """The full-softmax loss over all classes, exactly (no sampling, no (B, V) matrix).

        Parameters
        ----------
        inputs : ndarray of shape (batch, dim), or Batch
        labels : array_like of int, shape (batch,) or (batch, num_true)
            Omitted when ``inputs`` is a :class:`Batch`.
        reduction : {"mean", "sum", "none"}, optional
            Default: the head's ``reduction``.

        Returns
        -------
        float, or ndarray of float64, shape (batch,), for ``reduction="none"``
            ``logsumexp(z) - mean_j z[label_j]`` per example, computed in float64.
        """
        batch = self._as_batch(inputs, labels)
        reduction = self.reduction if reduction is None else reduction
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        losses = self._exact_losses(batch.inputs, batch.labels, 1)[0]
        if reduction == "none":
            return losses
        total = float(losses.sum(dtype=np.float64))
        return total / losses.size if reduction == "mean" else total

    def _exact_losses(self, x, lab, k):
        """Per-example full-softmax losses (float64, (B,)) and top-k ids of validated rows."""
        ids, _, lse = self._scan(x, k, True)
        flat = lab.reshape(-1)
        if self.path is not None:
            wl, bl = self.weights.gather(flat), self.biases.gather(flat)
        else:
            wl, bl = self.weights[flat], self.biases[flat]
        zt = (np.einsum("bd,btd->bt", x.astype(np.float64), wl.reshape(lab.shape + (-1,))
                        .astype(np.float64)) + bl.reshape(lab.shape))
        return lse - zt.mean(axis=1), ids


def _init_ram_weights(V, D, dtype, init, scale, seed, chunk=1 << 22):
    """Initial in-RAM weights (V, D): N(0, scale), U(-scale, scale) or zeros, seeded, on huge
    pages when large (see ``_memory``), generated in chunks of the one generator so that no
    float64 temporary of the whole matrix exists (the values are those of one big draw)."""
    w = _memory.full((V, D), 0, dtype) if init == "zeros" else _memory.empty((V, D), dtype)
    if init == "zeros":
        return w
    rng = np.random.default_rng(seed)
    flat = w.reshape(-1)
    for lo in range(0, flat.size, chunk):
        part = flat[lo:lo + chunk]
        if init == "normal":
            rng.standard_normal(out=part, dtype=dtype)
            part *= dtype.type(scale)
        else:
            part[...] = rng.uniform(-scale, scale, part.size)
    return w


def _copy_to_store(arr, path, group):
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


def _check_head_dir(p):
    """Refuse to replace a directory unless it holds a head and nothing else."""
    names = set(os.listdir(p)) - {".lock"}
    names = {n for n in names if not (n.startswith(".") and n.endswith(".tmp"))}
    if not names:
        return
    if _RECORD not in names and not names & {"weights", "biases"}:
        raise FileExistsError(f"{p} is not empty and is not a SampledSoftmaxHead store (no "
                              f"{_RECORD}); refusing to delete anything there")
    others = sorted(names - _HEAD_ENTRIES)
    if others:
        raise FileExistsError(f"{p} holds files that are not part of a head ({others[:5]}); "
                              "refusing to replace it")
    if _RECORD in names:
        try:
            cfg = json.loads((p / _RECORD).read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            cfg = None
        if not isinstance(cfg, dict) or cfg.get("format") != _FORMAT:
            raise FileExistsError(f"{p / _RECORD} is not a SampledSoftmaxHead's; refusing to "
                                  "replace the directory")
    for store in _head_stores(p):   # every store, checked before anything is deleted
        check_replaceable(store)


def _head_stores(p):
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


def _remove_head(p):
    """Delete a head's files (``head.json`` first: a half-deleted head is not loadable)."""
    stores = _head_stores(p)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(p / _RECORD)
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


def _read_config(p):
    """``head.json`` checked field by field; returns ``(config, optimizer)``."""
    fn = p / _RECORD
    cfg = read_json_object(fn, f"{p}: no {_RECORD} (not a SampledSoftmaxHead store)")
    if cfg.get("format") != _FORMAT or cfg.get("version") not in _READABLE_VERSIONS:
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
    field("sampler", lambda v: v in _SAMPLERS, f"one of {_SAMPLERS}")
    field("distortion", is_real(0), "a finite number >= 0")
    field("loss", lambda v: v in _LOSSES, f"one of {_LOSSES}")
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
    oc = field("optimizer", lambda v: isinstance(v, dict) and v.get("name") in _OPTIMIZERS,
               f"an object whose name is one of {tuple(_OPTIMIZERS)}")
    params = {k: v for k, v in oc.items() if k != "name"}
    try:
        opt = _OPTIMIZERS[oc["name"]](**params)
    except (TypeError, ValueError) as e:
        raise StoreError(f"{fn}: field 'optimizer' is not a valid {oc['name']} "
                         f"configuration: {e}") from None
    if cfg["version"] >= 2:
        check_group_record(cfg, fn)     # head.json is the stores' commit record too
    return cfg, opt


def _read_counts(p, cfg):
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


def _check_stores(p, cfg, weights, biases):
    """The stores must match head.json and each other's shard layout."""
    V, D = cfg["num_classes"], cfg["dim"]
    if (weights.num_rows, weights.dim) != (V, D) or biases.num_rows != V or \
            biases.dim is not None or weights.dtype.name != cfg["dtype"] or \
            biases.dtype != weights.dtype:
        raise StoreError(f"{p}: weights {weights.shape} {weights.dtype} / biases "
                         f"{biases.shape} {biases.dtype} do not match {_RECORD} ({V} x {D} "
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
                         f"({weights.partition_strategy!r}) but {_RECORD} says "
                         f"{cfg['num_shards']} ({cfg['partition_strategy']!r})")


def _check_steps(p, cfg, weights, biases, states):
    """Every store is at the step its commit record gives (after the journals' recovery)."""
    rec = cfg if cfg["version"] >= 2 else None     # checked by _read_config
    for store, want in [(weights, cfg["step"]), (biases, cfg["step"])] + [
            (store, st.t) for st in states if st is not None for store in st.slots.values()]:
        if store.step != want or (rec is not None and store.group is not None and
                                  rec["stores"].get(_rel(p, store.path)) != store.step):
            raise StoreError(f"{store.path}: at step {store.step}, but {p / _RECORD} records "
                             f"{want}")
        if rec is not None and store.group is None:
            raise StoreError(f"{store.path}: not part of {p / _RECORD}'s commit group")


def _rel(p, path):
    return os.path.relpath(os.path.abspath(path), os.path.abspath(p)).replace(os.sep, "/")


def _adopt_stores(p, cfg, weights, biases, states):
    """Bring a head written without a commit record into one (see ``join_group``)."""
    members = [weights, biases] + [s for st in states for s in st.slots.values()]
    epochs = {s.epoch for s in members}
    if len(epochs) != 1:
        raise StoreError(f"{p}: its stores are at different epochs {sorted(epochs)}")
    if weights.step != cfg["step"] or biases.step != cfg["step"]:
        raise StoreError(f"{p}: weights at step {weights.step} and biases at step "
                         f"{biases.step}, but {_RECORD} records {cfg['step']}")
    rec = dict(cfg, version=_VERSION, epoch=epochs.pop(),
               stores={_rel(p, s.path): s.step for s in members})
    atomic_write_bytes(p / _RECORD, (json.dumps(rec, indent=1, sort_keys=True) + "\n").encode())
    for s in members:
        if s.group is None:
            join_group(s, p / _RECORD)
    cfg.update(rec)
