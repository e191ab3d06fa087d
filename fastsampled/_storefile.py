"""The on-disk format of a ``ShardedMatrix`` store (private): ``meta.json`` and its digest,
the shard files with their identity header, the writer's lock, fsync helpers, what may be
deleted (and deleting a store), and opening a store: its checks, recovery from the rollback
journal and the shards' maps. ``docs/storage.md`` describes the format and the guarantees.
"""
import contextlib
import errno
import hashlib
import json
import os
import pathlib
import re

import numpy as np

from ._errors import StoreError, StoreLockedError
from ._files import atomic_write_bytes, fsync_dir, read_json_object
from ._journal import JOURNAL, read_journal
from ._layout import STRATEGIES, layout_sizes, split_by_shard

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None

FORMAT = "fastsampled.ShardedMatrix"


VERSION = 2


_READABLE_VERSIONS = (1, 2)    # version 1: no epoch, identity, digest or group


META = "meta.json"


LOCK = ".lock"


META_KEYS = ("format", "version", "num_rows", "dim", "dtype", "num_shards",
              "partition_strategy", "shard_rows", "step", "extra")


META_KEYS_V2 = ("epoch", "uuid", "group", "shard_bytes", "checksums", "digest")


_LAYOUT_KEYS = ("num_rows", "dim", "dtype", "num_shards", "partition_strategy", "shard_rows",
                "uuid", "group", "shard_bytes")


SHARD_NAME = re.compile(r"shard-\d{5,}\.npy")


IDENTITY = re.compile(r"# fastsampled ([0-9a-f]{32}) shard (\d+) of (\d+)")


_NO_FALLOCATE = {errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS}


def shard_file_name(p):
    """File name of shard ``p`` inside a store directory (``shard-00000.npy``, ...)."""
    return f"shard-{p:05d}.npy"


def lock(path):
    """Open ``<path>/.lock`` and take an exclusive non-blocking flock; return the fd."""
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is None:  # no flock on this platform: a single writer is the caller's job
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise StoreLockedError(
                f"{path} is already open for writing (mode 'r+') by another ShardedMatrix in "
                "this or another process; close it first, or open with mode 'r'") from None
        raise
    return fd


def unlock(fd):
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def lock_directory(path):
    """Take the exclusive writer's lock ``<path>/.lock`` (non-blocking ``flock``).

    Returns
    -------
    int
        The lock's file descriptor; :func:`unlock_directory` releases it (so does the death
        of the process).

    Raises
    ------
    StoreLockedError
        Another writer holds it, in this or another process.
    """
    return lock(pathlib.Path(os.fspath(path)))


def unlock_directory(fd):
    """Release a lock taken by :func:`lock_directory`."""
    unlock(fd)


def fsync_file(fn, drop_cache=False):
    fd = os.open(fn, os.O_RDWR)  # some platforms refuse fsync on a read-only descriptor
    try:
        os.fsync(fd)
        if drop_cache:
            drop_cached_pages(fd)
    finally:
        os.close(fd)


def reserve(fn):
    """Allocate the whole file (``posix_fallocate``) where the filesystem supports it."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(fn, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        if size:
            os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in _NO_FALLOCATE:
            raise
    finally:
        os.close(fd)


def digest(meta):
    """sha256 of every field of ``meta`` but ``digest``, canonically encoded."""
    body = {k: v for k, v in meta.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=False).encode()).hexdigest()


def write_meta(path, meta):
    """Atomically replace ``meta.json`` (temporary file, fsync, rename, fsync of the dir)."""
    meta = dict(meta, digest=None)
    meta["digest"] = digest(meta)
    atomic_write_bytes(path / META, (json.dumps(meta, indent=1, allow_nan=False) + "\n").encode())


def _is_store_file(name):
    return (name in (META, LOCK, JOURNAL) or SHARD_NAME.fullmatch(name) is not None
            or (name.startswith("." + META + ".") and name.endswith(".tmp"))
            or name == META + ".tmp")


def check_replaceable(path):
    """Refuse to empty a directory that is not a store: anything but a store's own files."""
    names = sorted(n for n in os.listdir(path) if n != LOCK)
    if not names:
        return
    if META not in names and not _interrupted_creation(path, names):
        raise FileExistsError(f"{path} is not empty and is not a ShardedMatrix store (no "
                              f"{META}); refusing to delete anything there")
    if META in names and not _is_store_meta(path / META):
        raise FileExistsError(f"{path / META} is not a ShardedMatrix's (another program's "
                              "file of that name?); refusing to delete anything there")
    others = [n for n in names if not _is_store_file(n)]
    if others:
        raise FileExistsError(f"{path} holds files that are not part of a store "
                              f"({others[:5]}); refusing to replace it")


def _is_store_meta(fn):
    """Whether ``fn`` is a JSON object naming this library's store format."""
    try:
        with open(fn, "rb") as f:
            meta = json.loads(f.read(1 << 20))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def _interrupted_creation(path, names):
    """A store's files without its ``meta.json``, every shard carrying a store identity: what
    a creation cut short leaves (``meta.json`` is written last)."""
    shards = [n for n in names if SHARD_NAME.fullmatch(n)]
    if not shards or not all(_is_store_file(n) for n in names):
        return False
    for name in shards:
        try:
            with open(path / name, "rb") as f:
                head = f.read(4096).decode("latin1")
        except OSError:
            return False
        if IDENTITY.search(head) is None:
            return False
    return True


def remove_store_files(path):
    """Delete a previous store's files (meta.json first, so no half-deleted store is valid)."""
    for name in (META, META + ".tmp", JOURNAL):
        try:
            os.unlink(path / name)
        except FileNotFoundError:
            pass
    fsync_dir(path)
    for name in os.listdir(path):
        if _is_store_file(name) and name != LOCK:
            os.unlink(path / name)


def remove_store(path):
    """Delete the store at ``path`` -- its own files only -- and the directory if then empty.

    Takes the store's lock first (a live writer makes it fail with
    :class:`StoreLockedError`), and refuses with ``FileExistsError`` a directory that holds
    anything but a store's files.
    """
    path = pathlib.Path(os.fspath(path))
    if not path.is_dir() or path.is_symlink():
        raise FileExistsError(f"{path} is not a store directory; refusing to delete it")
    check_replaceable(path)
    fd = lock(path)
    try:
        check_replaceable(path)
        remove_store_files(path)
    finally:
        unlock(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path / LOCK)
    with contextlib.suppress(OSError):
        os.rmdir(path)


def check_group(group):
    if not isinstance(group, str) or not group or os.path.isabs(group):
        raise ValueError(f"group must be a relative path (str) to a commit record, got "
                         f"{group!r}")
    return group


def npy_header(dtype, shape, ident, p, num_shards):
    """A ``.npy`` header whose padding carries the shard's identity as a comment.

    ``np.load`` parses the header as a Python literal, which ignores the comment; the store
    checks it at open, so shards swapped within a store or taken from another store are
    refused.
    """
    text = (f"{{'descr': {np.lib.format.dtype_to_descr(dtype)!r}, 'fortran_order': False, "
            f"'shape': {tuple(shape)!r}, }} # fastsampled {ident} shard {p} of {num_shards}")
    for version, prefix in (((1, 0), 10), ((2, 0), 12)):
        total = prefix + len(text) + 1
        text_padded = text + " " * (-total % 64) + "\n"
        n = len(text_padded)
        if version == (1, 0) and n >= 1 << 16:
            continue
        size = n.to_bytes(2 if version == (1, 0) else 4, "little")
        return np.lib.format.magic(*version) + size + text_padded.encode("latin1")
    raise AssertionError("not reached")


def group_key(store_path, record_path):
    rel = os.path.relpath(os.path.abspath(store_path), os.path.abspath(record_path.parent))
    return rel.replace(os.sep, "/")


def read_group_record(record_path):
    """Read and check the commit record of a group of stores (see :func:`commit_group`).

    Returns
    -------
    dict
        The record, with ``epoch`` (int >= 0) and ``stores`` (name -> step) checked.

    Raises
    ------
    StoreError
        A missing or unreadable file, or an ``epoch`` / ``stores`` field of the wrong type.
    """
    record_path = pathlib.Path(record_path)
    rec = read_json_object(record_path, f"{record_path}: missing commit record")
    return check_group_record(rec, record_path)


def check_group_record(rec, record_path):
    """:func:`read_group_record`'s checks on a record already read (a JSON object)."""
    ep, stores = rec.get("epoch"), rec.get("stores")
    if not isinstance(ep, int) or isinstance(ep, bool) or ep < 0:
        raise StoreError(f"{record_path}: epoch must be an int >= 0, got {ep!r}")
    if not isinstance(stores, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in stores.values()):
        raise StoreError(f"{record_path}: stores must map store names to steps (ints >= 0), "
                         f"got {stores!r}")
    return rec


def _committed(path, meta):
    """``(epoch, step)`` of the last commit that covers this store: its own, or its group's."""
    if meta.get("group") is None:
        return meta.get("epoch", 0), meta["step"]
    record_path = path / meta["group"]
    rec = read_group_record(record_path)
    key = group_key(path, record_path)
    if key not in rec["stores"]:
        raise StoreError(f"{path}: its commit record {record_path} does not list it as {key!r}")
    return rec["epoch"], rec["stores"][key]


def needs_recovery(path, meta):
    return (path / JOURNAL).exists() or _committed(path, meta)[0] != meta.get("epoch", 0)


def recover(path, meta, offsets):
    """Bring a store to its last commit (the caller holds the lock); return its meta.

    A journal of the current epoch is rolled back (rows copied back, fsynced); a journal of
    an earlier epoch, left by a crash after its commit, is dropped. A group member one epoch
    behind its record (a crash between the record's commit and the member's own) records
    the group's epoch: its rows were made durable before that commit.
    """
    committed, step = _committed(path, meta)
    epoch = meta.get("epoch", 0)
    jpath = path / JOURNAL
    if jpath.is_symlink():
        raise StoreError(f"{jpath}: is a symbolic link; refusing to roll back from it")
    if jpath.exists():
        width = 1 if meta["dim"] is None else meta["dim"]
        jepoch, blocks = read_journal(jpath, meta["num_rows"], width, meta["dtype"])
        if jepoch is not None and jepoch > committed:
            raise StoreError(f"{jpath}: journal of epoch {jepoch}, but the store's last commit "
                             f"is epoch {committed}")
        if jepoch == committed == epoch:
            _roll_back(path, meta, offsets, blocks)
    if epoch != committed:
        if meta.get("group") is None or epoch != committed - 1:
            raise StoreError(f"{path}: at epoch {epoch} but its commit record "
                             f"{meta.get('group')!r} is at epoch {committed}")
        meta = dict(meta, epoch=committed, step=step)
        write_meta(path, meta)
    if jpath.exists():
        os.unlink(jpath)
        fsync_dir(path)
    return meta


def _roll_back(path, meta, offsets, blocks):
    sizes, strategy = meta["shard_rows"], meta["partition_strategy"]
    maps = {}
    for ids, rows in blocks:
        for p, pos, local in split_by_shard(ids, sizes, strategy):
            if p not in maps:
                shape = (sizes[p],) if meta["dim"] is None else (sizes[p], meta["dim"])
                maps[p] = np.memmap(path / shard_file_name(p), dtype=meta["dtype"], mode="r+",
                                    offset=offsets[p], shape=shape)
            maps[p][local] = rows[pos].reshape((pos.size,) + maps[p].shape[1:])
    for p, mm in maps.items():
        mm.flush()
        del mm
        fsync_file(path / shard_file_name(p))


def _is_v2(meta):
    return meta.get("version", 1) >= 2


def read_store(path):
    """Check ``meta.json`` and every shard file; return (meta, data offset of each shard)."""
    meta_path = path / META
    meta = read_json_object(meta_path, f"{path}: missing {META} (not a ShardedMatrix store, "
                            "or its creation did not finish)")
    if meta.get("format") != FORMAT:
        raise StoreError(f"{meta_path}: format is {meta.get('format')!r}, expected {FORMAT!r}")
    version = meta.get("version")
    if version not in _READABLE_VERSIONS or isinstance(version, bool):
        raise StoreError(f"{meta_path}: unsupported version {version!r} (this fastsampled "
                         f"reads versions {list(_READABLE_VERSIONS)})")
    if meta_path.is_symlink():
        raise StoreError(f"{meta_path}: is a symbolic link; a store's files must be its own")
    missing = [k for k in META_KEYS + (META_KEYS_V2 if version >= 2 else ()) if k not in meta]
    if missing:
        raise StoreError(f"{meta_path}: missing keys {missing}")
    if version >= 2 and meta["digest"] != digest(meta):
        raise StoreError(f"{meta_path}: its digest does not match its content (edited by hand, "
                         "or damaged); refusing to guess which field is wrong")

    def bad(key, what):
        raise StoreError(f"{meta_path}: {key} must be {what}, got {meta[key]!r}")

    def is_int(v, minimum):
        return isinstance(v, int) and not isinstance(v, bool) and v >= minimum

    if not is_int(meta["num_rows"], 1):
        bad("num_rows", "an int >= 1")
    if meta["dim"] is not None and not is_int(meta["dim"], 1):
        bad("dim", "an int >= 1 or null")
    if meta["dtype"] not in ("float32", "float64"):
        bad("dtype", "'float32' or 'float64'")
    if not is_int(meta["num_shards"], 1):
        bad("num_shards", "an int >= 1")
    if meta["partition_strategy"] not in STRATEGIES:
        bad("partition_strategy", "'mod' or 'div'")
    if not is_int(meta["step"], 0):
        bad("step", "an int >= 0")
    if not isinstance(meta["extra"], dict):
        bad("extra", "a JSON object")
    rows = meta["shard_rows"]
    if not isinstance(rows, list) or not all(is_int(n, 0) for n in rows):
        bad("shard_rows", "a list of ints >= 0")
    if len(rows) != meta["num_shards"]:
        raise StoreError(f"{meta_path}: shard_rows has {len(rows)} entries but num_shards is "
                         f"{meta['num_shards']}")
    expected = layout_sizes(meta["num_rows"], meta["num_shards"], meta["partition_strategy"])
    if rows != expected:
        raise StoreError(f"{meta_path}: shard_rows {rows} is not the "
                         f"{meta['partition_strategy']!r} layout of {meta['num_rows']} rows over "
                         f"{meta['num_shards']} shards (expected {expected})")

    if version >= 2:
        if not is_int(meta["epoch"], 0):
            bad("epoch", "an int >= 0")
        if meta["uuid"] is not None and not (isinstance(meta["uuid"], str)
                                             and re.fullmatch("[0-9a-f]{32}", meta["uuid"])):
            bad("uuid", "32 hexadecimal digits or null")
        if meta["group"] is not None:
            try:
                check_group(meta["group"])
            except ValueError:
                bad("group", "a relative path or null")
        sb = meta["shard_bytes"]
        if not isinstance(sb, list) or len(sb) != len(rows) or not all(is_int(n, 0) for n in sb):
            bad("shard_bytes", f"a list of {len(rows)} ints >= 0")
        cs = meta["checksums"]
        if cs is not None and not (isinstance(cs, list) and len(cs) == len(rows) and all(
                isinstance(c, str) and re.fullmatch("[0-9a-f]{16}", c) for c in cs)):
            bad("checksums", f"null or a list of {len(rows)} 16-digit hexadecimal strings")

    dtype = np.dtype(meta["dtype"])
    offsets = []
    for p, n in enumerate(rows):
        fn = path / shard_file_name(p)
        shape = (n,) if meta["dim"] is None else (n, meta["dim"])
        if fn.is_symlink():
            raise StoreError(f"{fn}: is a symbolic link; a store's shards must be its own files "
                             "(copy the file there instead)")
        if not fn.is_file():
            raise StoreError(f"{fn}: missing shard file ({p} of {len(rows)})")
        with open(fn, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                start = f.tell()
                if version == (1, 0):
                    hshape, fortran, hdtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    hshape, fortran, hdtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
            except (ValueError, OSError, SyntaxError) as e:
                raise StoreError(f"{fn}: not a readable .npy file ({e})") from None
            offset = f.tell()
            size = os.fstat(f.fileno()).st_size
            f.seek(start)
            header_text = f.read(offset - start).decode("latin1")
        if hshape != shape or hdtype != dtype or fortran:
            raise StoreError(
                f"{fn}: .npy header says shape {hshape}, dtype {hdtype}, fortran_order "
                f"{fortran}; meta.json needs shape {shape}, dtype {dtype}, fortran_order False")
        want = offset + int(np.prod(shape)) * dtype.itemsize
        if size != want:
            what = "truncated" if size < want else "padded"
            raise StoreError(f"{fn}: {size} bytes, expected {want} (header {offset} + data "
                             f"{want - offset}): the file is {what}")
        if meta.get("uuid") is not None:
            m = IDENTITY.search(header_text)
            ident = (m.group(1), int(m.group(2)), int(m.group(3))) if m else None
            if ident != (meta["uuid"], p, len(rows)):
                what = ("has no shard identity" if ident is None else
                        f"is shard {ident[1]} of {ident[2]} of store {ident[0]}")
                raise StoreError(f"{fn}: {what}, but {META} needs shard {p} of {len(rows)} of "
                                 f"store {meta['uuid']} (files swapped, or copied in from "
                                 "another store)")
        if _is_v2(meta) and size != meta["shard_bytes"][p]:
            raise StoreError(f"{fn}: {size} bytes, but {META} records {meta['shard_bytes'][p]}")
        offsets.append(offset)
    return meta, offsets


def open_store(path, mode, lock_fd, created=False):
    """Check a store's files, bring it to its last commit and map its shards.

    Parameters
    ----------
    path : pathlib.Path
        The store directory.
    mode : {"r", "r+"}
        ``"r+"``: writable maps, under the writer's lock (taken here unless ``lock_fd`` is
        given); a journal is rolled back. ``"r"``: read-only maps; a journal a dead writer
        left is rolled back under the lock, taken for a moment.
    lock_fd : int or None
        The writer's lock, already taken by the caller; it stays the caller's to release
        when this raises (a lock taken here is released).
    created : bool
        The store was just written, consistent by construction: nothing to recover.

    Returns
    -------
    meta : dict
        The store's ``meta.json`` after recovery.
    shards : list of numpy.memmap
        Every shard, mapped in ``mode``.
    lock_fd : int or None
        The writer's lock (mode ``"r+"``), None in mode ``"r"``.
    """
    own_lock = lock_fd is None
    try:
        if not path.is_dir():
            raise StoreError(f"{path}: no such directory (not a ShardedMatrix store)")
        if mode == "r+" and lock_fd is None:
            lock_fd = lock(path)
        meta, offsets = read_store(path)
        if created:
            pass                        # consistent by construction; no record yet
        elif mode == "r+":
            meta = recover(path, meta, offsets)
        elif needs_recovery(path, meta):
            try:
                fd = lock(path)
            except StoreLockedError:
                pass                    # a live writer: its rows are read as they are
            except OSError as e:
                raise StoreError(f"{path}: a writer stopped with changes to roll back, and "
                                 f"this process cannot take the store's lock to do it "
                                 f"({e.strerror}); open it once with write access") from None
            else:
                try:
                    meta = recover(path, meta, offsets)
                finally:
                    unlock(fd)
        shards = []
        for p, n in enumerate(meta["shard_rows"]):
            shape = (n,) if meta["dim"] is None else (n, meta["dim"])
            shards.append(np.memmap(path / shard_file_name(p), dtype=meta["dtype"],
                                    mode=mode, offset=offsets[p], shape=shape))
    except BaseException:
        if lock_fd is not None and own_lock:
            unlock(lock_fd)
        raise
    return meta, shards, lock_fd


def drop_cached_pages(fd):
    """Ask the kernel to forget the file's clean cached pages (a hint; dirty pages stay)."""
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
