"""Group commits (private; ``fastsampled.sharding`` re-exports the public names).

Several stores -- a head's weights, biases and optimizer slots, an optimizer state's slots --
are checkpointed as one atomic commit: their rows are made durable, then one JSON commit
record is replaced atomically (the commit point), then each store records the new epoch. A
store opened after a crash compares its epoch with the record's and rolls back or catches up
(docs/storage.md#checkpoints-are-atomic); ``_storefile.py`` reads the record at open.
"""
import json
import os
import pathlib

from ._errors import StoreError
from ._files import atomic_write_bytes
from ._storefile import group_key, read_group_record
from ._validate import as_int

__all__ = ["commit_group", "join_group"]


def commit_group(record_path, members, record):
    """Checkpoint several stores as one atomic commit (a head's weights, biases and slots).

    Every store's rows are made durable first; then ``record`` -- with ``epoch`` and each
    store's ``step`` added -- atomically replaces ``record_path``: that rename is the commit
    point. Last, each store records the new epoch and starts its journal over. A store opened after
    a crash reads the record: a journal from before the record's epoch is rolled back, one
    from a commit the record already holds is dropped. So after a crash at any instant every
    store of the group reopens at the same commit.

    Parameters
    ----------
    record_path : str or os.PathLike
        The JSON commit record, named by every member's ``group`` (relative to the member).
    members : list of (ShardedMatrix, int)
        Each store, open ``"r+"`` at the same epoch, with the step to record for it.
    record : dict
        The rest of the record (JSON); ``epoch`` and ``stores`` are filled in here.
    """
    record_path = pathlib.Path(os.fspath(record_path))
    members = [(st, as_int(step, "step", 0)) for st, step in members]
    for st, _ in members:
        st.check_writable("commit_group")
        if st.group is None or os.path.abspath(st.path / st.group) != \
                os.path.abspath(record_path):
            raise ValueError(f"{st.path} does not belong to the group of {record_path}")
    epochs = sorted({st.epoch for st, _ in members})
    if len(epochs) > 1:
        raise ValueError(f"the stores of {record_path} are at different epochs {epochs}")
    epoch = (epochs[0] if epochs else 0) + 1
    for st, _ in members:
        st.sync()
    rec = dict(record, epoch=epoch,
               stores={group_key(st.path, record_path): step for st, step in members})
    text = json.dumps(rec, indent=1, sort_keys=True, allow_nan=False) + "\n"
    atomic_write_bytes(record_path, text.encode())
    for st, step in members:
        st.record_commit(epoch, step)
    return rec


def join_group(store, record_path):
    """Make an open store (mode ``"r+"``, not in a group) a member of the commit record at
    ``record_path`` from now on (a head written by an earlier version adopting its stores).

    The record must already list the store at its epoch and step.
    """
    store.check_writable("join_group")
    record_path = pathlib.Path(os.fspath(record_path))
    if store.group is not None:
        raise ValueError(f"{store.path} already belongs to the group of {store.group!r}")
    rec = read_group_record(record_path)
    key = group_key(store.path, record_path)
    if rec["epoch"] != store.epoch or rec["stores"].get(key) != store.step:
        raise StoreError(f"{record_path}: records {key!r} at epoch {rec['epoch']} step "
                         f"{rec['stores'].get(key)}, but the store is at epoch {store.epoch} "
                         f"step {store.step}")
    store.set_group(os.path.relpath(os.path.abspath(record_path), os.path.abspath(store.path)))
