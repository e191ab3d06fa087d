"""Weights split into shards, and :class:`ShardedMatrix`: such shards kept on disk.

The shard layouts (``"mod"`` / ``"div"``, exactly TensorFlow's ``embedding_lookup`` maps) live
in ``_layout.py`` and are re-exported here. :class:`ShardedMatrix` keeps a matrix as a
directory of memory-mapped ``.npy`` files plus ``meta.json``, initialised in parallel, locked
against a second writer, journalled so that it reopens at exactly its last checkpoint, and
accepted wherever the losses and optimizers take weights or biases. Its on-disk format,
opening, recovery and deletion live in ``_storefile.py``, the writing of a new store's files
in ``_storecreate.py``, :meth:`~ShardedMatrix.verify` in ``_storecheck.py``, its page-cache
management in ``_pagecache.py``; :func:`commit_group` (``_groupcommit.py``) checkpoints
several stores as one commit (``docs/storage.md``).
"""
import os
import pathlib

import numpy as np

from ._errors import StoreError, StoreLockedError
from ._groupcommit import commit_group, join_group
from ._journal import JOURNAL, RollbackJournal, check_durability
from ._layout import (STRATEGIES, check_layout, check_strategy, is_store, layout_sizes,
                      shard_ids, split_by_shard, store_shards)
from ._pagecache import PageCacheMethods
from ._params import row_view
from ._rows_kernels import gather_rows, scatter_rows
from ._storecheck import shard_checksums, verify_store
from ._storecreate import check_extra, create_store, layout_of
from ._storefile import (FORMAT, VERSION, fsync_file, lock_directory, open_store,
                         read_group_record, remove_store, shard_file_name, unlock,
                         unlock_directory, write_meta)
from ._validate import (FLOAT_DTYPES, as_bool, as_float_array, as_id_array, as_int,
                        check_finite, check_range)
from ._journal import DURABILITY  # noqa: F401  (defined here before)
from ._storecreate import INITS  # noqa: F401  (defined here before)

__all__ = ["ShardedMatrix", "StoreError", "StoreLockedError", "commit_group", "join_group",
           "check_durability",
           "read_group_record", "remove_store", "lock_directory", "unlock_directory",
           "STRATEGIES", "check_strategy", "layout_sizes", "check_layout", "shard_ids",
           "split_by_shard", "is_store", "store_shards", "shard_file_name"]


# --------------------------------------------------------------------------------------------
# ShardedMatrix: a matrix (or vector) stored as memory-mapped .npy shards on disk
# --------------------------------------------------------------------------------------------


class ShardedMatrix(PageCacheMethods):
    """A ``(num_rows, dim)`` matrix, or a ``(num_rows,)`` vector, kept on disk as memory-mapped
    shards laid out exactly as ``tf.nn.embedding_lookup`` maps ids (``"mod"`` or ``"div"``).

    A store is a directory holding ``meta.json`` and one plain ``.npy`` file per shard
    (``shard-00000.npy``, ...), each readable with ``np.load(path, mmap_mode="r")``. Rows are
    paged in by the operating system on demand, so the matrix may be far larger than RAM.
    Pass a store as ``weights`` / ``biases`` to the losses (they read :attr:`shards` and
    :attr:`partition_strategy`) and to the sparse optimizers, which update rows in place.

    Open stores with :meth:`create` (new, opened ``"r+"``), :meth:`open` (``"r"`` or
    ``"r+"``) or :meth:`like` (a new store with the layout of another); ``ShardedMatrix(path,
    mode)`` is the same as ``ShardedMatrix.open(path, mode)``.

    Durability. Writes go straight to the shared memory maps, i.e. to the kernel's page cache.
    Before a row changes for the first time after a commit, its old bytes are appended to
    ``<path>/journal`` (:meth:`assign` and the optimizers do it; call :meth:`journal` before
    writing through :attr:`shards` yourself). :meth:`checkpoint` makes every row durable,
    atomically replaces ``meta.json`` with the next epoch (the commit point) and starts the
    journal over; opening a store with a journal of its current epoch copies the old rows back
    first. So after a killed process, at any instant, the store reopens at exactly its last
    checkpoint. With ``durability="power"`` each journal block is also ``msync``-ed
    before its rows change, which extends that to a power cut; ``durability="none"`` keeps no
    journal. The format, the guarantees and the checks made at open are described in
    ``docs/storage.md``.

    At most one writer: mode ``"r+"`` holds an exclusive ``flock`` on ``<path>/.lock`` until
    :meth:`close` (or until the process dies), and a second writer -- in another process or in
    this one -- gets :class:`StoreLockedError`. Readers take no lock, except for a moment to
    roll back a journal a dead writer left.

    Neither :meth:`close` nor leaving a ``with`` block checkpoints: call :meth:`checkpoint`
    to record a step (rows changed after it are rolled back at the next open).

    Attributes
    ----------
    path : pathlib.Path
        The store directory.
    mode : {"r", "r+"}
    num_rows : int
    dim : int or None
        Row width; None for a vector store (1-D shards, e.g. biases).
    shape : tuple
        ``(num_rows, dim)`` or ``(num_rows,)``.
    dtype : numpy.dtype
        float32 or float64.
    num_shards : int
    partition_strategy : {"mod", "div"}
    shard_sizes : list of int
        Rows of each shard: ``layout_sizes(num_rows, num_shards, partition_strategy)``.
    shards : list of numpy.memmap
        Shard ``p`` has shape ``(shard_sizes[p], dim)`` (or ``(shard_sizes[p],)``); writable
        in mode ``"r+"``. Empty after :meth:`close`.
    step : int
        The step recorded by the last :meth:`checkpoint` (0 for a new store).
    extra : dict
        A JSON object kept in ``meta.json`` for the owner (configuration, counters...).
    epoch : int
        Number of the last commit (0 for a new store); a group member's follows its group.
    group : str or None
        Path, relative to the store, of the commit record it is checkpointed with (a head's
        ``head.json``), or None.
    durability : {"process", "power", "none"} or None
        The journal's mode (None when open read-only).
    closed : bool

    Examples
    --------
    >>> import shutil, tempfile
    >>> import numpy as np
    >>> import fastsampled as fs
    >>> d = tempfile.mkdtemp()
    >>> W = fs.ShardedMatrix.create(d + "/W", 10, 4, num_shards=3, init="uniform", seed=1)
    >>> W  # doctest: +ELLIPSIS
    ShardedMatrix('.../W', shape=(10, 4), dtype=float32, num_shards=3, ..., mode='r+', step=0)
    >>> W.shard_sizes
    [4, 3, 3]
    >>> W.assign([2, 7], np.ones((2, 4), np.float32))
    >>> W.gather([7, 2]).tolist()
    [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]
    >>> [a.tolist() for a in W.locate([2, 7])]
    [[0, 2], [2, 0]]
    >>> W.checkpoint(step=1)
    >>> W.close()
    >>> with fs.ShardedMatrix.open(d + "/W") as R:    # read-only, no lock
    ...     print(R.step, R.mode, np.load(d + "/W/shard-00002.npy", mmap_mode="r").shape)
    1 r (3, 4)
    >>> shutil.rmtree(d)
    """

    # ---------------------------------------------------------------- constructors

    def __init__(self, path, mode="r", durability="process"):
        self._init(path, mode, None, check_durability(durability))

    @classmethod
    def open(cls, path, mode="r", durability="process"):
        """Open an existing store, checking its structure first.

        A journal left by a writer that stopped between two checkpoints is rolled back
        first (this takes the writer's lock for a moment, also in mode ``"r"``; when a live
        writer holds it, a reader sees that writer's rows as they are).

        Parameters
        ----------
        path : str or os.PathLike
            The store directory.
        mode : {"r", "r+"}
            ``"r"``: read-only memory maps, no lock. ``"r+"``: writable maps, exclusive lock.
        durability : {"process", "power", "none"}
            For mode ``"r+"``: what the journal protects against, as in :meth:`create`.

        Returns
        -------
        ShardedMatrix

        Raises
        ------
        StoreError
            No directory, missing or unparsable ``meta.json``, unknown format or version,
            inconsistent fields (``shard_rows`` not the strategy's layout of ``num_rows``...),
            a missing shard file, a ``.npy`` header whose shape / dtype / order differs, or a
            shard file whose size is not header + data (truncated or padded), a shard that is
            a symbolic link or whose identity is another store's or another shard's, an edited
            ``meta.json`` (its digest), or a journal that cannot be rolled back.
        StoreLockedError
            Mode ``"r+"`` while another writer holds the store.
        """
        return cls(path, mode, durability)

    @classmethod
    def create(cls, path, num_rows, dim=None, *, num_shards=1, partition_strategy="div",
               dtype="float32", init="zeros", scale=0.05, std=None, seed=0, fill=None,
               overwrite=False, extra=None, durability="process", group=None):
        """Create a store and return it opened ``"r+"``.

        Values are written in parallel chunks by a Numba kernel straight into the shard
        files; the matrix is never held in RAM. They are a pure function of ``(seed, global
        id, column)``, so one seed gives the same logical matrix for every ``num_shards``,
        ``partition_strategy`` and thread count. ``meta.json`` is written last (step 0): a
        creation cut short leaves no valid store.

        Parameters
        ----------
        path : str or os.PathLike
            Directory to create (parents too). An existing non-empty directory is refused
            unless ``overwrite=True`` and it holds a store: then its files are deleted after
            taking the store's lock (a live writer makes it fail with
            :class:`StoreLockedError`).
        num_rows : int
            Number of rows (ids ``0 .. num_rows - 1``), at least 1.
        dim : int or None
            Row width; None makes a vector store with 1-D shards (biases).
        num_shards : int
            Number of shard files; their sizes are ``layout_sizes(num_rows, num_shards,
            partition_strategy)``.
        partition_strategy : {"div", "mod"}
            How ids map to shards, as in ``tf.nn.embedding_lookup``.
        dtype : {"float32", "float64"}
        init : {"zeros", "uniform", "normal", "constant"}
            ``"uniform"``: U(-scale, scale); ``"normal"``: N(0, std); ``"constant"``: ``fill``.
        scale : float
            Half-width of the uniform init (and the default ``std``).
        std : float or None
            Standard deviation of the normal init; None means ``scale``.
        seed : int or numpy.random.Generator or None
            Seed of the counter-based generator (None: fresh OS entropy).
        fill : float or None
            The value of ``init="constant"`` (required there, refused with other inits).
        overwrite : bool
            Replace a store at ``path``. Only a directory holding nothing but a store's own
            files is ever emptied; anything else there is refused with ``FileExistsError``.
        extra : dict or None
            JSON object stored in ``meta.json`` (default ``{}``).
        durability : {"process", "power", "none"}
            What the rollback journal protects against between checkpoints (see the class
            notes): ``"process"`` a killed process, ``"power"`` also a power cut (an
            ``msync`` of the journal per batch of newly changed rows), ``"none"`` nothing
            (no journal; a crash leaves rows newer than the last checkpoint).
        group : str or None
            Path, relative to the store's directory, of the JSON commit record of a group of
            stores checkpointed together by :func:`commit_group` (a head's ``head.json``).

        Returns
        -------
        ShardedMatrix
        """
        def opened(path, lock_fd, durability):
            self = cls.__new__(cls)
            self._init(path, "r+", lock_fd, durability, created=True)
            return self

        return create_store(path, num_rows, dim, num_shards=num_shards,
                            partition_strategy=partition_strategy, dtype=dtype, init=init,
                            scale=scale, std=std, seed=seed, fill=fill, overwrite=overwrite,
                            extra=extra, durability=durability, group=group, opened=opened)

    @classmethod
    def like(cls, other, path, init=None, fill=None, *, partition_strategy=None, scale=0.05,
             std=None, seed=0, overwrite=False, extra=None, durability="process", group=None):
        """Create a store with the layout of ``other`` (e.g. optimizer state beside weights).

        Parameters
        ----------
        other : ShardedMatrix, ndarray, or list of shard arrays
            Gives ``num_rows``, ``dim`` (None for 1-D), ``num_shards``, the strategy and the
            dtype. An ndarray is one shard; a list of several shards needs
            ``partition_strategy`` (their sizes must form its layout).
        path : str or os.PathLike
        init : {"zeros", "uniform", "normal", "constant"} or None
            None means ``"constant"`` when ``fill`` is given, else ``"zeros"``.
        fill : float or None
        partition_strategy : {"mod", "div"} or None
            Only for a list of shards (must agree with a ShardedMatrix's own strategy).
        scale, std, seed, overwrite, extra, durability, group
            As in :meth:`create`.

        Returns
        -------
        ShardedMatrix
            Opened ``"r+"``.
        """
        num_rows, dim, num_shards, strategy, dtype = layout_of(other, partition_strategy)
        if init is None:
            init = "zeros" if fill is None else "constant"
        return cls.create(path, num_rows, dim, num_shards=num_shards,
                          partition_strategy=strategy, dtype=dtype, init=init, scale=scale,
                          std=std, seed=seed, fill=fill, overwrite=overwrite, extra=extra,
                          durability=durability, group=group)

    def _init(self, path, mode, lock_fd, durability="process", created=False):
        """Open the store; a ``lock_fd`` passed in stays the caller's to release on error."""
        self.closed = True
        self.shards = []
        self._lock_fd = None
        self._journal = None
        self._parked_journal = None
        if mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+', got {mode!r}")
        path = pathlib.Path(os.fspath(path))
        meta, shards, lock_fd = open_store(path, mode, lock_fd, created)
        self.path = path
        self.mode = mode
        self.num_rows = meta["num_rows"]
        self.dim = meta["dim"]
        self.shape = (self.num_rows,) if self.dim is None else (self.num_rows, self.dim)
        self.dtype = np.dtype(meta["dtype"])
        self.num_shards = meta["num_shards"]
        self.partition_strategy = meta["partition_strategy"]
        self.shard_sizes = list(meta["shard_rows"])
        self.shards = shards
        self.step = meta["step"]
        self.extra = meta["extra"]
        self.epoch = meta.get("epoch", 0)
        self.group = meta.get("group")
        self.durability = durability if mode == "r+" else None
        self._meta_v2 = {k: meta.get(k) for k in ("uuid", "shard_bytes", "checksums")}
        self._lock_fd = lock_fd
        if mode == "r+" and durability != "none":
            self._journal = RollbackJournal(path / JOURNAL, self.epoch, self.num_rows,
                                            1 if self.dim is None else self.dim, self.dtype,
                                            sync=durability == "power")
        self.closed = False
        self.advise("random")

    # ---------------------------------------------------------------- life cycle

    def close(self):
        """Drop the memory maps and release the writer's lock. Does not checkpoint.

        Rows written since the last checkpoint stay on disk together with their journal: the
        next :meth:`open` rolls them back (with ``durability="none"`` they stay). Closing
        twice is a no-op.
        """
        self.shards = []
        for name in ("_journal", "_parked_journal"):
            journal = getattr(self, name, None)
            setattr(self, name, None)
            if journal is not None:
                journal.close()
        fd, self._lock_fd = getattr(self, "_lock_fd", None), None
        if fd is not None:
            unlock(fd)
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()  # no implicit checkpoint: the step recorded is the caller's decision
        return False

    def __del__(self):
        for name in ("_journal", "_parked_journal"):
            journal = getattr(self, name, None)
            if journal is not None:
                try:
                    journal.close()
                except Exception:
                    pass
        fd = getattr(self, "_lock_fd", None)
        if fd is not None:
            self._lock_fd = None
            try:
                os.close(fd)  # closing the descriptor releases the flock
            except Exception:  # interpreter shutdown may have torn down ``os``
                pass

    def __repr__(self):
        state = ", closed" if self.closed else ""
        return (f"ShardedMatrix({str(self.path)!r}, shape={self.shape}, dtype={self.dtype.name}, "
                f"num_shards={self.num_shards}, partition_strategy={self.partition_strategy!r}, "
                f"mode={self.mode!r}, step={self.step}{state})")

    def __len__(self):
        return self.num_rows

    @property
    def nbytes(self):
        """Bytes of data in all shards (headers excluded)."""
        return self.num_rows * (1 if self.dim is None else self.dim) * self.dtype.itemsize

    # ---------------------------------------------------------------- durability

    def flush(self):
        """Write every shard's dirty pages to disk (``msync``); no-op in mode ``"r"``."""
        self._check_open()
        if self.mode == "r+":
            for s in self.shards:
                s.flush()

    def sync(self):
        """Make every row written so far durable (``msync`` + ``fsync`` of every shard).

        Records nothing: after a crash the journal still rolls these rows back to the last
        checkpoint. :meth:`checkpoint` and :func:`commit_group` call it first.
        """
        self.check_writable("sync")
        for p, s in enumerate(self.shards):
            s.flush()
            fsync_file(self.path / shard_file_name(p))

    @property
    def journal_rows(self):
        """Rows saved to the journal since the last checkpoint (changed, or about to be)."""
        return 0 if self._journal is None else self._journal.rows_saved

    def set_durability(self, durability):
        """Change what the journal protects against, at a checkpoint (mode ``"r+"``).

        Parameters
        ----------
        durability : {"process", "power", "none"}
            As in :meth:`create`.

        Raises
        ------
        ValueError
            Rows were changed since the last checkpoint: half of an interval journalled and
            half not would reopen as neither state.
        """
        self.check_writable("set_durability")
        durability = check_durability(durability)
        if self.journal_rows:
            raise ValueError(f"{self.path}: rows changed since the last checkpoint; call "
                             "checkpoint() before changing the durability")
        # the journal object (and its file, mapped) is kept while the journal is off, so that
        # turning it on again reuses both
        keep = self._journal if self._journal is not None else self._parked_journal
        if durability == "none":
            self._journal, self._parked_journal = None, keep
        else:
            if keep is None:
                keep = RollbackJournal(self.path / JOURNAL, self.epoch, self.num_rows,
                                       1 if self.dim is None else self.dim, self.dtype,
                                       sync=False)
            elif keep.epoch != self.epoch:
                keep.committed(self.epoch)
            keep.sync = durability == "power"
            self._journal, self._parked_journal = keep, None
        self.durability = durability

    def journal(self, ids):
        """Save rows ``ids`` to the rollback journal before they are changed.

        :meth:`assign` and the optimizers call this themselves; call it before writing rows
        through :attr:`shards` directly, or a crash keeps those writes. Rows already saved
        since the last checkpoint are skipped, so a row costs one copy per checkpoint
        interval. A no-op with ``durability="none"``.

        Parameters
        ----------
        ids : array_like of int, shape (K,)
            Row ids in ``[0, num_rows)``; repeats are fine.
        """
        self.check_writable("journal")
        if self._journal is None:
            return
        ids = as_id_array(ids, "ids").reshape(-1)
        check_range(ids, 0, self.num_rows, "ids", f"the store has {self.num_rows} rows")
        self._journal.save(np.ascontiguousarray(ids), self._gather_into)

    def _gather_into(self, ids, out):
        """Rows ``ids`` (valid, 1-D) into ``out`` (C-contiguous, ``ids.size`` rows)."""
        out2 = out.reshape(ids.size, 1 if self.dim is None else self.dim)
        for p, pos, rows in split_by_shard(ids, self.shard_sizes, self.partition_strategy):
            gather_rows(row_view(self.shards[p]), rows, pos, out2)

    def checkpoint(self, step=None, extra=None, *, checksums=False):
        """Make every write so far durable, then record ``step`` / ``extra`` atomically.

        ``msync`` + ``fsync`` of every shard file; then ``meta.json`` is replaced atomically
        (temporary file, ``fsync``, rename, ``fsync`` of the directory) with the next epoch --
        the commit point -- and the journal is started over. After a crash the store reopens at
        this checkpoint or the previous one, never a mixture.

        Parameters
        ----------
        step : int or None
            Step to record (None keeps :attr:`step`).
        extra : dict or None
            JSON object to record (None keeps :attr:`extra`).
        checksums : bool, default False
            Also record a checksum of every shard's content (reads the whole store), which
            ``verify(checksums=True)`` compares with later.

        Raises
        ------
        ValueError
            The store belongs to a group (a head's store): checkpoint the group's owner.
        """
        self.check_writable("checkpoint")
        if self.group is not None:
            raise ValueError(f"{self.path} is checkpointed together with the stores of "
                             f"{self.group!r}; checkpoint that (e.g. the head) instead")
        step = self.step if step is None else as_int(step, "step", 0)
        extra = self.extra if extra is None else check_extra(extra)
        sums = self.checksums() if as_bool(checksums, "checksums") else None
        self.sync()
        self._commit(self.epoch + 1, step, extra, sums)

    def _commit(self, epoch, step, extra, sums=None):
        """Record ``epoch`` in ``meta.json`` and start the journal over (rows already synced)."""
        write_meta(self.path, self._meta(step, extra, epoch, sums))
        self.step, self.extra, self.epoch = step, extra, epoch
        self._meta_v2["checksums"] = sums
        if self._journal is not None:
            self._journal.committed(epoch)

    def record_commit(self, epoch, step):
        """Record a group's commit: ``epoch`` and ``step`` in ``meta.json`` (atomically), then
        start the journal over. :func:`commit_group` calls it on every member after the
        commit record's rename; the rows were made durable before it.

        Parameters
        ----------
        epoch : int
            The epoch of the group's commit record.
        step : int
            The step the record holds for this store.
        """
        self._commit(epoch, step, self.extra)

    def set_group(self, group):
        """Make ``group`` the store's commit record and record it in ``meta.json``
        (atomically); :func:`join_group` calls it once it has checked the record.

        Parameters
        ----------
        group : str
            Path of the commit record, relative to the store's directory.
        """
        self.group = group
        write_meta(self.path, self._meta(self.step, self.extra, self.epoch,
                                         self._meta_v2["checksums"]))

    def _meta(self, step, extra, epoch, sums):
        uuid = self._meta_v2["uuid"]
        shard_bytes = self._meta_v2["shard_bytes"] or [
            os.path.getsize(self.path / shard_file_name(p)) for p in range(self.num_shards)]
        return {"format": FORMAT, "version": VERSION, "num_rows": self.num_rows, "dim": self.dim,
                "dtype": self.dtype.name, "num_shards": self.num_shards,
                "partition_strategy": self.partition_strategy, "shard_rows": self.shard_sizes,
                "step": step, "extra": extra, "epoch": epoch, "uuid": uuid, "group": self.group,
                "shard_bytes": shard_bytes, "checksums": sums}

    def checksums(self):
        """A 64-bit checksum of each shard's current content (reads the whole store).

        Returns
        -------
        list of str
            One hexadecimal checksum per shard.
        """
        self._check_open()
        return shard_checksums(self)

    def verify(self, values=False, checksums=False):
        """Re-check the store on disk; raise :class:`StoreError` if anything is wrong.

        Re-runs every structural check of :meth:`open` and compares the layout with this
        object's. ``values=True`` also scans every shard (in parallel chunks) for NaN or
        infinite values and names the first bad shard, row and global id.
        ``checksums=True`` compares every shard's content with the checksums recorded by
        ``checkpoint(checksums=True)``; meaningful on a store that has not been written
        since that checkpoint (the journal's rollback restores that state after a crash).

        Parameters
        ----------
        values : bool, default False
            Also scan every value for NaN or infinity (reads the whole store).
        checksums : bool, default False
            Also compare the content with the recorded checksums (reads the whole store).

        Raises
        ------
        StoreError
            When a shard is missing, truncated or inconsistent, a value is not finite, or a
            shard's content differs from its recorded checksum.
        ValueError
            ``checksums=True`` but none were recorded at the last checkpoint.
        """
        self._check_open()
        verify_store(self, values, checksums)

    # ---------------------------------------------------------------- rows

    def locate(self, ids):
        """``(shard, row)`` of each id, as ``tf.nn.embedding_lookup`` maps them.

        Parameters
        ----------
        ids : array_like of int, any shape, values in ``[0, num_rows)``

        Returns
        -------
        shard, row : ndarray of int64, shape of ``ids``
        """
        self._check_open()
        return shard_ids(ids, self.shard_sizes, self.partition_strategy)

    def gather(self, ids, out=None):
        """Rows ``ids`` in the storage dtype.

        Parameters
        ----------
        ids : array_like of int, shape (K,) (any shape works), values in ``[0, num_rows)``
        out : ndarray or None
            C-contiguous float32/float64 array of shape ``ids.shape + (dim,)`` (or
            ``ids.shape`` for a vector store) to fill; rows are cast to its dtype.

        Returns
        -------
        ndarray of shape (K, dim), or (K,) for a vector store
        """
        self._check_open()
        ids = as_id_array(ids, "ids")
        check_range(ids, 0, self.num_rows, "ids", f"the store has {self.num_rows} rows")
        shape = ids.shape + self.shape[1:]
        if out is None:
            out = np.empty(shape, self.dtype)
        else:
            if not isinstance(out, np.ndarray):
                raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
            if out.shape != shape:
                raise ValueError(f"out must have shape {shape}, got {out.shape}")
            if out.dtype not in FLOAT_DTYPES:
                raise TypeError(f"out must be float32 or float64, got dtype {out.dtype}")
            if not out.flags.c_contiguous or not out.flags.writeable:
                raise ValueError("out must be C-contiguous and writeable")
        self._gather_into(ids.reshape(-1), np.asarray(out))
        return out

    def assign(self, ids, values):
        """Write rows in place (mode ``"r+"``).

        Parameters
        ----------
        ids : array_like of int, shape (K,)
            Distinct ids in ``[0, num_rows)``, any order.
        values : ndarray of shape (K, dim), or (K,) for a vector store
            float32 or float64, cast to the storage dtype; must be finite there (a NaN or an
            overflow to infinity raises ``ValueError`` and nothing is written).
        """
        self.check_writable("assign")
        ids = as_id_array(ids, "ids")
        if ids.ndim != 1:
            raise ValueError(f"ids must be 1-D, got shape {ids.shape}")
        check_range(ids, 0, self.num_rows, "ids", f"the store has {self.num_rows} rows")
        values = as_float_array(values, "values")
        shape = ids.shape + self.shape[1:]
        if values.shape != shape:
            raise ValueError(f"values must have shape {shape} for {ids.size} ids, got "
                             f"{values.shape}")
        if ids.size > 1:
            s = np.sort(ids)
            dup = np.flatnonzero(s[1:] == s[:-1])
            if dup.size:
                raise ValueError(f"ids must be distinct; {int(s[dup[0]])} appears more than once")
        with np.errstate(over="ignore"):
            vals = np.ascontiguousarray(values, dtype=self.dtype)
        check_finite(vals, f"values (as {self.dtype.name})")
        vals2 = vals.reshape(ids.size, 1 if self.dim is None else self.dim)
        if self._journal is not None:
            self._journal.save(np.ascontiguousarray(ids), self._gather_into)
        for p, pos, rows in split_by_shard(ids, self.shard_sizes, self.partition_strategy):
            scatter_rows(vals2, pos, rows, row_view(self.shards[p]))

    def to_numpy(self):
        """A dense in-RAM copy in global id order, shape :attr:`shape` (small stores, tests)."""
        self._check_open()
        out = np.empty(self.shape, self.dtype)
        P = self.num_shards
        with self.scan():
            self._copy_into(out, P)
        return out

    def _copy_into(self, out, P):
        if P == 1:
            out[...] = self.shards[0]
        elif self.partition_strategy == "mod":
            for p, s in enumerate(self.shards):
                out[p::P] = s
        else:
            start = 0
            for s in self.shards:
                out[start:start + s.shape[0]] = s
                start += s.shape[0]

    # ---------------------------------------------------------------- helpers

    def _check_open(self):
        if self.closed:
            raise ValueError(f"{self!r} is closed")  # the wording of store_shards

    def check_writable(self, what):
        """Raise ``ValueError`` unless the store is open in mode ``"r+"``.

        Parameters
        ----------
        what : str
            The operation that needs it, named in the message.
        """
        self._check_open()
        if self.mode != "r+":
            raise ValueError(f"{what} needs a store opened with mode 'r+'; {self.path} is open "
                             "read-only")

