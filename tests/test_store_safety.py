"""A head's directory is the user's data: nothing is deleted that is not a head's own, a live
writer is never overwritten, a head reopens at exactly its last checkpoint, and every file read
back is checked before a kernel sees it."""
import json
import os
import pathlib
import shutil

import numpy as np
import pytest

import fastsampled as fs
from fastsampled import _files, _journal, _storefile, cli, sharding
from fastsampled.sharding import ShardedMatrix, StoreError, StoreLockedError

pytestmark = pytest.mark.kernel

V, D = 400, 8


def _xy(step, B=24):
    rng = np.random.default_rng(step)
    return rng.normal(size=(B, D)).astype(np.float32), rng.integers(0, V, B)


def _state(head):
    out = [head.weights.to_numpy(), head.biases.to_numpy(), head.step, head.sampler.calls]
    for st in head._states:
        if st is not None:
            out += [st.t] + [s.to_numpy() for s in st.slots.values()]
    return out


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in pathlib.Path(path).rglob("*"))


# ------------------------------------------------------------------ never delete user data

def _demo(path, *extra):
    return cli.main(["demo", "--classes", "300", "--dim", "8", "--batch", "16",
                     "--num-sampled", "8", "--steps", "6", "--eval-examples", "8",
                     "--no-full-softmax", "--path", str(path), *extra])


def test_demo_never_deletes_a_directory_it_did_not_make(tmp_path, capsys):
    thesis = tmp_path / "thesis"
    (thesis / "sub").mkdir(parents=True)
    (thesis / "thesis.txt").write_text("four years of work")
    for flags in ((), ("--overwrite",)):
        with pytest.raises(SystemExit) as e:
            _demo(thesis, *flags)
        assert e.value.code == 2
        assert "refusing to delete" in capsys.readouterr().err
        assert _tree(thesis) == ["sub", "thesis.txt"]
        assert (thesis / "thesis.txt").read_text() == "four years of work"


def test_demo_refuses_an_existing_head_unless_overwrite_or_resume(tmp_path, capsys):
    path = tmp_path / "h"
    assert _demo(path) == 0
    trained = json.loads((path / "head.json").read_text())["step"]
    with pytest.raises(SystemExit):
        _demo(path)
    assert "--overwrite" in capsys.readouterr().err
    assert json.loads((path / "head.json").read_text())["step"] == trained   # untouched
    assert _demo(path, "--resume") == 0
    assert "resuming the head" in capsys.readouterr().out
    assert json.loads((path / "head.json").read_text())["step"] == 2 * trained
    assert _demo(path, "--overwrite") == 0
    assert json.loads((path / "head.json").read_text())["step"] == trained


def test_demo_path_errors_are_clear(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for bad in (tmp_path / "file", "/proc/no-such-dir/x"):
        with pytest.raises(SystemExit) as e:
            _demo(bad)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and str(bad) in err


def test_overwrite_takes_the_lock_first_and_deletes_nothing_of_a_live_writer(tmp_path):
    p = tmp_path / "h"
    first = fs.SampledSoftmaxHead(V, D, path=p, num_sampled=8, optimizer="adam")
    first.train_step(*_xy(1))
    before = _tree(p)
    with pytest.raises(StoreLockedError):
        fs.SampledSoftmaxHead(V, D, path=p, num_sampled=8, overwrite=True)
    assert _tree(p) == before
    first.train_step(*_xy(2))
    first.checkpoint()                       # the first writer's files are all there
    state = _state(first)
    first.close()
    with fs.SampledSoftmaxHead.load(p) as again:
        _same(_state(again), state)


def test_overwrite_replaces_only_a_heads_own_files(tmp_path):
    p = tmp_path / "h"
    fs.SampledSoftmaxHead(V, D, path=p, num_sampled=8, optimizer="adagrad").close()
    (p / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not part of a head"):
        fs.SampledSoftmaxHead(V, D, path=p, num_sampled=8, overwrite=True)
    assert (p / "notes.txt").read_text() == "mine" and (p / "head.json").exists()
    os.unlink(p / "notes.txt")
    (p / "weights" / "mine.txt").write_text("mine")          # inside a store: refused too
    with pytest.raises(FileExistsError, match="not part of a store"):
        fs.SampledSoftmaxHead(V, D, path=p, num_sampled=8, overwrite=True)
    assert (p / "weights" / "mine.txt").exists()
    os.unlink(p / "weights" / "mine.txt")
    h = fs.SampledSoftmaxHead(V, D, path=p, num_sampled=8, overwrite=True, optimizer="sgd")
    assert h.step == 0 and not (p / "opt" / "weights" / "accumulator").exists()
    h.close()


def test_bad_head_arguments_name_the_argument(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="init_scale"):
        fs.SampledSoftmaxHead(V, D, init_scale=float("nan"))
    with pytest.raises(TypeError, match="seed"):
        fs.SampledSoftmaxHead(V, D, seed="x")
    with pytest.raises(FileExistsError, match="path .* not a directory"):
        fs.SampledSoftmaxHead(V, D, path=tmp_path / "f")
    with pytest.raises(ValueError, match="path '/proc/.*cannot create"):
        fs.SampledSoftmaxHead(V, D, path="/proc/no-such/x")
    with pytest.raises(ValueError, match="durability"):
        fs.SampledSoftmaxHead(V, D, durability="sometimes")


# ------------------------------------------------------------------ exactly the last checkpoint

@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "adam"])
@pytest.mark.parametrize("shards", [1, 3])
def test_reopens_exactly_at_the_checkpoint_after_unsaved_steps(tmp_path, optimizer, shards):
    kw = dict(num_sampled=8, optimizer=optimizer, num_shards=shards,
              partition_strategy="mod", seed=1)
    clean = fs.SampledSoftmaxHead(V, D, path=tmp_path / "clean", **kw)
    head = fs.SampledSoftmaxHead(V, D, path=tmp_path / "h", **kw)
    for step in range(1, 5):
        clean.train_step(*_xy(step))
        head.train_step(*_xy(step))
    head.checkpoint()
    at_checkpoint = _state(head)
    for step in range(5, 8):                 # three steps past the checkpoint, then "crash"
        head.train_step(*_xy(step))
    head.close()
    head = fs.SampledSoftmaxHead.load(tmp_path / "h")
    assert head.step == 4
    _same(_state(head), at_checkpoint)
    for step in range(5, 10):                # and it continues as the clean run does
        clean.train_step(*_xy(step))
        head.train_step(*_xy(step))
    _same(_state(head), _state(clean))
    head.close()
    clean.close()


def test_a_reader_rolls_back_a_dead_writers_journal(tmp_path):
    W = ShardedMatrix.create(tmp_path / "W", 20, 3, num_shards=2, init="uniform", seed=2)
    W.checkpoint(step=1)
    saved = W.to_numpy()
    W.assign([3, 17], np.full((2, 3), 9.0, np.float32))
    W.journal([0])                           # a direct write, saved first with journal()
    W.shards[0][0] = 5.0
    assert (tmp_path / "W" / "journal").exists()
    W.close()
    with ShardedMatrix.open(tmp_path / "W", "r") as R:
        np.testing.assert_array_equal(R.to_numpy(), saved)
        assert R.step == 1
    assert not (tmp_path / "W" / "journal").exists()


def test_a_reader_beside_a_live_writer_leaves_its_journal_alone(tmp_path):
    W = ShardedMatrix.create(tmp_path / "W", 20, 3, init="uniform")
    W.assign([3], np.full((1, 3), 9.0, np.float32))
    with ShardedMatrix.open(tmp_path / "W", "r") as R:
        assert R.gather([3]).tolist() == [[9.0, 9.0, 9.0]]   # live rows, as documented
    assert (tmp_path / "W" / "journal").exists()
    W.checkpoint()
    W.close()
    assert not (tmp_path / "W" / "journal").exists()


def test_durability_none_keeps_no_journal(tmp_path):
    W = ShardedMatrix.create(tmp_path / "W", 20, 3, durability="none")
    W.assign([3], np.full((1, 3), 9.0, np.float32))
    W.close()
    assert not (tmp_path / "W" / "journal").exists()
    with ShardedMatrix.open(tmp_path / "W") as R:
        assert R.gather([3]).tolist() == [[9.0, 9.0, 9.0]]


def test_a_group_member_one_epoch_behind_its_record_catches_up(tmp_path, monkeypatch):
    head = fs.SampledSoftmaxHead(V, D, path=tmp_path / "h", num_sampled=8, optimizer="adam")
    head.train_step(*_xy(1))
    real = ShardedMatrix._commit
    calls = []

    def crash_after_two(self, *args, **kwargs):
        calls.append(self.path)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated crash between two members' commits")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ShardedMatrix, "_commit", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        head.checkpoint()                    # head.json says epoch 2; some stores say 1
    monkeypatch.undo()
    state = _state(head)
    head.close()
    again = fs.SampledSoftmaxHead.load(tmp_path / "h")
    assert again.step == 1
    _same(_state(again), state)
    again.close()


def test_power_durability_syncs_the_journal_before_rows_change(tmp_path, monkeypatch):
    """The ordering that a power cut relies on: every journal block is msync-ed (its pages
    and the file's size written to disk) before any row of the step changes."""
    import mmap
    from fastsampled import _optimizer_kernels, optimizers
    events = []
    real_flush = mmap.mmap.flush

    class Map(mmap.mmap):
        def flush(self, *a):
            events.append("msync")
            return real_flush(self, *a)
    monkeypatch.setattr(_journal.mmap, "mmap", Map)
    real_save = _journal.RollbackJournal.save

    def save(self, ids, gather_into):
        before = self.rows_saved
        real_save(self, ids, gather_into)
        if self.rows_saved > before:
            events.append("block")
    monkeypatch.setattr(_journal.RollbackJournal, "save", save)
    real_commit = _optimizer_kernels.commit_rows
    monkeypatch.setattr(optimizers, "commit_rows",     # where the optimizers call it
                        lambda *a: (events.append("rows"), real_commit(*a))[1])
    head = fs.SampledSoftmaxHead(V, D, path=tmp_path / "h", num_sampled=8,
                                 optimizer="adam", durability="power")
    for step in (1, 2):
        events.clear()
        head.train_step(*_xy(step))
        before = events[:events.index("rows")]
        assert before.count("block") == 6                 # weights, biases, 4 slots
        for i, e in enumerate(before):                   # each block synced as it was saved
            if e == "block":
                assert before[i - 1] == "msync"
    head.close()
    head = fs.SampledSoftmaxHead(V, D, path=tmp_path / "h2", num_sampled=8, optimizer="adam")
    events.clear()
    head.train_step(*_xy(1))
    assert "msync" not in events                          # "process": no sync per step
    head.close()


def test_checkpoint_syncs_every_store_before_its_commit_record(tmp_path, monkeypatch):
    head = fs.SampledSoftmaxHead(V, D, path=tmp_path / "h", num_sampled=8, optimizer="adam",
                                 num_shards=2)
    head.train_step(*_xy(1))
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(a, b):
        events.append(("replace", str(b)))
        return real_replace(a, b)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    head.checkpoint()
    monkeypatch.undo()
    commit = events.index(("replace", str(tmp_path / "h" / "head.json")))
    synced = {p for e, p in events[:commit] if e == "fsync" and p.endswith(".npy")}
    shards = {str(f) for f in (tmp_path / "h").rglob("shard-*.npy")}
    assert synced == shards                  # 6 stores x 2 shards, all before the commit
    assert all(not p.endswith(".npy") for e, p in events[commit:] if e == "fsync")
    head.close()


# ------------------------------------------------------------------ loads check what they read

def test_load_refuses_biases_laid_out_unlike_the_weights(tmp_path):
    for other in ({"num_shards": 3, "partition_strategy": "div"}, {"num_shards": 2}):
        p = tmp_path / f"h{len(other)}{other['num_shards']}"
        fs.SampledSoftmaxHead(V, D, path=p, num_shards=3, partition_strategy="mod",
                              num_sampled=8).close()
        q = tmp_path / f"o{len(other)}{other['num_shards']}"
        fs.SampledSoftmaxHead(V, D, path=q, num_sampled=8, **other).close()
        for f in os.listdir(p / "biases"):
            os.unlink(p / "biases" / f)
        for f in os.listdir(q / "biases"):
            if f != ".lock":
                os.link(q / "biases" / f, p / "biases" / f)
        with pytest.raises(StoreError, match="biases are laid out"):
            fs.SampledSoftmaxHead.load(p, "r")
        with pytest.raises(StoreError, match="biases are laid out"):
            fs.SampledSoftmaxHead.load(p)
        fs.SampledSoftmaxHead.load(q).close()      # the failed load released every lock


def test_a_closed_head_refuses_every_call(tmp_path):
    head = fs.SampledSoftmaxHead(V, D, path=tmp_path / "h", num_sampled=8)
    x, y = _xy(1)
    head.close()
    for call in (lambda: head.predict(x), lambda: head.evaluate(x, y),
                 lambda: head.train_step(x, y), lambda: head.loss(x, y),
                 lambda: head.checkpoint()):
        with pytest.raises(ValueError, match="closed"):
            call()


def _edit(path, **changes):
    cfg = json.loads((path / "head.json").read_text())
    for k, v in changes.items():
        if v is KeyError:
            del cfg[k]
        else:
            cfg[k] = v
    (path / "head.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("edit, match", [
    (lambda p: (p / "head.json").write_text("[1, 2]"), "must hold a JSON object"),
    (lambda p: (p / "head.json").write_text("{"), "not valid JSON"),
    (lambda p: _edit(p, num_sampled=KeyError), "missing field 'num_sampled'"),
    (lambda p: _edit(p, optimizer={"name": "rmsprop"}), "field 'optimizer'"),
    (lambda p: _edit(p, optimizer={"name": "sgd", "lr": -1}), "field 'optimizer'.*lr"),
    (lambda p: _edit(p, optimizer={"name": "sgd", "momentum": 1}), "field 'optimizer'"),
    (lambda p: _edit(p, sampler="unigram"), "counts.npy: missing"),
    (lambda p: _edit(p, dim="8"), "field 'dim'"),
    (lambda p: _edit(p, distortion=float("inf")) if False else _edit(p, distortion=None),
     "field 'distortion'"),
    (lambda p: _edit(p, num_sampled=10 ** 6), "num_sampled"),
    (lambda p: _edit(p, epoch="1"), "epoch must be an int"),
    (lambda p: _edit(p, stores={"weights": -1}), "stores must map"),
    (lambda p: _edit(p, step=3), "records 3"),
    (lambda p: _edit(p, remove_accidental_hits="yes"), "remove_accidental_hits"),
])
def test_bad_head_json_gives_store_error_naming_the_field(tmp_path, edit, match):
    p = tmp_path / "h"
    fs.SampledSoftmaxHead(V, D, path=p, num_sampled=8, optimizer="adam").close()
    good = (p / "head.json").read_bytes()
    edit(p)
    for mode in ("r+", "r"):
        with pytest.raises(StoreError, match=match) as info:
            fs.SampledSoftmaxHead.load(p, mode)
        assert "head.json" in str(info.value) or "counts.npy" in str(info.value)
    (p / "head.json").write_bytes(good)
    fs.SampledSoftmaxHead.load(p).close()         # nothing stayed locked


def test_bad_counts_are_refused(tmp_path):
    p = tmp_path / "h"
    counts = np.arange(1, V + 1)
    fs.SampledSoftmaxHead(V, D, path=p, num_sampled=8, sampler="unigram",
                          counts=counts).close()
    for bad in (np.ones(V - 1), np.full(V, np.nan), -np.ones(V), np.array(["a"] * V)):
        np.save(p / "counts.npy", bad)
        with pytest.raises(StoreError, match="counts.npy"):
            fs.SampledSoftmaxHead.load(p)
    np.save(p / "counts.npy", counts)
    fs.SampledSoftmaxHead.load(p).close()


def test_missing_optimizer_state_is_refused(tmp_path):
    p = tmp_path / "h"
    fs.SampledSoftmaxHead(V, D, path=p, num_sampled=8, optimizer="adam").close()
    sharding.remove_store(p / "opt" / "weights" / "v")
    with pytest.raises(StoreError, match="opt/weights/v is missing"):
        fs.SampledSoftmaxHead.load(p)
    fs.SampledSoftmaxHead.load(p, "r").close()      # predicting needs no optimizer state


def test_a_head_written_before_commit_records_still_loads_and_trains(tmp_path):
    p = tmp_path / "h"
    head = fs.SampledSoftmaxHead(V, D, path=p, num_sampled=8, optimizer="adam", num_shards=2)
    head.train_step(*_xy(1))
    head.checkpoint()
    state = _state(head)
    head.close()
    # the layout an earlier version wrote: version-1 metas and head.json, no epochs
    cfg = json.loads((p / "head.json").read_text())
    for k in ("epoch", "stores", "optimizer_t"):
        del cfg[k]
    cfg["version"] = 1
    (p / "head.json").write_text(json.dumps(cfg))
    for meta_path in p.rglob("meta.json"):
        meta = json.loads(meta_path.read_text())
        for k in _storefile.META_KEYS_V2:
            del meta[k]
        meta["version"] = 1
        meta_path.write_text(json.dumps(meta))
    with fs.SampledSoftmaxHead.load(p, "r") as r:
        _same(_state(r)[:2], state[:2])
    head = fs.SampledSoftmaxHead.load(p)
    _same(_state(head), state)
    head.train_step(*_xy(2))
    head.checkpoint()
    state = _state(head)
    head.close()
    with fs.SampledSoftmaxHead.load(p) as again:
        _same(_state(again), state)
        assert json.loads((p / "head.json").read_text())["version"] == 2


def test_content_checksums(tmp_path):
    W = ShardedMatrix.create(tmp_path / "W", 50, 4, num_shards=3, init="uniform")
    with pytest.raises(ValueError, match="no checksums"):
        W.verify(checksums=True)
    W.checkpoint(checksums=True)
    W.verify(checksums=True)
    W.close()
    fn = tmp_path / "W" / "shard-00001.npy"
    data = bytearray(fn.read_bytes())
    data[-3] ^= 0x10                          # one bit of the last row's value
    fn.write_bytes(bytes(data))
    with ShardedMatrix.open(tmp_path / "W") as R:
        with pytest.raises(StoreError, match="shard-00001.npy: content checksum"):
            R.verify(checksums=True)


def test_atomic_output_keeps_the_old_file_when_writing_fails(tmp_path):
    fn = tmp_path / "f"
    fn.write_bytes(b"old")
    with pytest.raises(OSError):
        with _files.atomic_output(fn) as f:
            f.write(b"new, half")
            raise OSError(28, "No space left on device")
    assert fn.read_bytes() == b"old" and os.listdir(tmp_path) == ["f"]
    _files.atomic_write_bytes(fn, b"new")
    assert fn.read_bytes() == b"new" and os.listdir(tmp_path) == ["f"]


def test_a_journal_cut_short_anywhere_rolls_back_its_whole_blocks(tmp_path):
    W = ShardedMatrix.create(tmp_path / "W", 30, 3, init="uniform", seed=4)
    W.checkpoint()
    saved = W.to_numpy()
    for block in ([1, 2], [5], [7, 8, 9]):      # one journal block each
        W.assign(block, np.full((len(block), 3), 7.0, np.float32))
    W.close()
    journal = (tmp_path / "W" / "journal").read_bytes()
    W_rows = saved.copy()
    W_rows[[1, 2, 5, 7, 8, 9]] = 7.0
    shards = {f: (tmp_path / "W" / f).read_bytes() for f in os.listdir(tmp_path / "W")
              if f.startswith("shard")}
    ends = []
    pos = 40
    for n in (2, 1, 3):
        pos += 32 + 8 * n + 12 * n
        ends.append(pos)
        pos = (pos + 7) // 8 * 8                  # blocks start 8-byte aligned
    assert not any(journal[ends[-1]:])            # the rest of the file: never written
    journal = journal[:ends[-1]]
    for cut in range(0, len(journal) + 1, 3):
        for f, data in shards.items():
            (tmp_path / "W" / f).write_bytes(data)
        (tmp_path / "W" / "journal").write_bytes(journal[:cut])
        with ShardedMatrix.open(tmp_path / "W") as R:
            got = R.to_numpy()
        whole = sum(cut >= e for e in ends)       # blocks that were complete
        restored = [[1, 2], [5], [7, 8, 9]][:whole]
        want = W_rows.copy()
        for ids in restored:
            want[ids] = saved[ids]
        np.testing.assert_array_equal(got, want, err_msg=f"cut at byte {cut}")
        assert not (tmp_path / "W" / "journal").exists()


def test_a_damaged_journal_block_before_the_last_is_refused(tmp_path):
    W = ShardedMatrix.create(tmp_path / "W", 30, 3, init="uniform", seed=4)
    W.checkpoint()
    W.assign([1], np.ones((1, 3), np.float32))
    W.assign([2], np.ones((1, 3), np.float32))
    W.close()
    j = tmp_path / "W" / "journal"
    good = j.read_bytes()
    data = bytearray(good)
    data[40 + 32 + 8] ^= 1                        # a byte of the first block's row
    j.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="fails its checksum but later blocks"):
        ShardedMatrix.open(tmp_path / "W")
    data = bytearray(good)
    data[40 + 32:40 + 40] = (99).to_bytes(8, "little")   # an id out of range ...
    payload = np.frombuffer(bytes(data[40 + 32:40 + 32 + 20]), np.uint8)
    data[40 + 24:40 + 32] = _journal.checksum_bytes(payload).to_bytes(8, "little")  # ... signed
    j.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="names rows outside"):
        ShardedMatrix.open(tmp_path / "W")


def test_the_journal_file_is_reused_and_removed_when_clean(tmp_path):
    W = ShardedMatrix.create(tmp_path / "W", 30, 3, init="uniform", seed=4)
    saved = W.to_numpy()
    W.assign([1, 2, 3], np.ones((3, 3), np.float32))
    W.checkpoint()
    after = W.to_numpy()
    assert (tmp_path / "W" / "journal").exists()      # kept for the next interval
    W.assign([4], np.ones((1, 3), np.float32))       # written over the old block
    W.close()
    with ShardedMatrix.open(tmp_path / "W") as R:     # rolls back row 4 only
        np.testing.assert_array_equal(R.to_numpy(), after)
        assert not np.array_equal(after, saved)
    W = ShardedMatrix.open(tmp_path / "W", "r+")
    W.assign([5], np.ones((1, 3), np.float32))
    W.checkpoint()
    W.close()                                         # clean: nothing to roll back
    assert not (tmp_path / "W" / "journal").exists()


def test_durability_changes_only_at_a_checkpoint(tmp_path):
    head = fs.SampledSoftmaxHead(V, D, path=tmp_path / "h", num_sampled=8, optimizer="adam")
    head.train_step(*_xy(1))
    with pytest.raises(ValueError, match="checkpoint"):
        head.set_durability("none")
    assert head.durability == "process"
    head.checkpoint()
    stores = [head.weights, head.biases] + [s for st in head._states
                                             for s in st.slots.values()]
    head.set_durability("none")
    head.train_step(*_xy(2))
    assert [s.journal_rows for s in stores] == [0] * 6
    head.checkpoint()
    head.set_durability("power")
    head.train_step(*_xy(3))
    assert all(s.journal_rows > 0 for s in stores) and head.durability == "power"
    assert len(list((tmp_path / "h").rglob("journal"))) == 6
    head.checkpoint()
    after = _state(head)
    head.train_step(*_xy(4))
    head.close()
    with fs.SampledSoftmaxHead.load(tmp_path / "h") as again:
        _same(_state(again), after)
    with pytest.raises(ValueError, match="RAM"):
        fs.SampledSoftmaxHead(V, D).set_durability("none")


def test_every_file_of_a_head_cut_short_or_rewritten_is_refused_cleanly(tmp_path):
    """Each file of a memory-mapped head (head.json, every meta.json, shard, journal and
    counts.npy) truncated at several points, or replaced by an array of another shape, dtype
    or layout: load() either succeeds or raises StoreError -- never another exception, and
    never a kernel reading out of bounds."""
    src = tmp_path / "src"
    counts = np.arange(1, V + 1)
    head = fs.SampledSoftmaxHead(V, D, path=src, num_shards=2, partition_strategy="mod",
                                 num_sampled=8, optimizer="adam", sampler="unigram",
                                 counts=counts)
    head.train_step(*_xy(1))
    head.checkpoint()
    head.train_step(*_xy(2))                   # leaves journals to roll back
    head.close()
    files = sorted(p.relative_to(src) for p in src.rglob("*")
                   if p.is_file() and p.name != ".lock")
    assert any(f.name == "journal" for f in files)
    x, _ = _xy(3)

    def attempt(label):
        try:
            h = fs.SampledSoftmaxHead.load(case)
        except StoreError:
            return
        except Exception as e:                  # noqa: BLE001 - the point of the test
            pytest.fail(f"{label}: {type(e).__name__}: {e}")
        try:
            h.predict(x, k=3)
            h.train_step(*_xy(3))
        finally:
            h.close()

    n = 0
    for rel in files:
        data = (src / rel).read_bytes()
        variants = [(f"cut at {c}", data[:c]) for c in
                    sorted({0, 1, len(data) // 2, max(len(data) - 1, 0)})]
        if rel.suffix == ".npy":
            arr = np.load(src / rel) if rel.name == "counts.npy" else None
            for other in (np.zeros((3, 3), np.float32), np.zeros(7, np.float64),
                          np.asfortranarray(np.zeros((4, 2), np.float32)),
                          None if arr is None else arr[:-1]):
                if other is not None:
                    buf = __import__("io").BytesIO()
                    np.save(buf, other)
                    variants.append((f"array {other.shape} {other.dtype}", buf.getvalue()))
        for label, content in variants:
            case = tmp_path / f"case{n}"
            n += 1
            shutil.copytree(src, case, ignore=shutil.ignore_patterns(".lock"))
            (case / rel).write_bytes(content)
            attempt(f"{rel} {label}")
    assert n > 40


def test_a_journal_killed_before_its_header_rolls_back_nothing(tmp_path):
    W = ShardedMatrix.create(tmp_path / "W", 30, 3, init="uniform", seed=4)
    W.checkpoint()
    saved = W.to_numpy()
    W.close()
    (tmp_path / "W" / "journal").write_bytes(bytes(1 << 20))   # created and sized, no header
    with ShardedMatrix.open(tmp_path / "W") as R:
        np.testing.assert_array_equal(R.to_numpy(), saved)
    assert not (tmp_path / "W" / "journal").exists()
    (tmp_path / "W" / "journal").write_bytes(b"not a journal" * 10)
    with pytest.raises(StoreError, match="not a fastsampled journal"):
        ShardedMatrix.open(tmp_path / "W")


def test_a_closed_store_gets_one_clear_error_from_every_entry_point(tmp_path):
    """Losses, optimizers, the store's own methods and ShardedMatrix.like all say that the
    store is closed, naming the argument, before any kernel runs."""
    W = ShardedMatrix.create(tmp_path / "W", 50, 4, init="uniform")
    b = ShardedMatrix.create(tmp_path / "b", 50, None)
    state_w = fs.Adagrad().init_state(W)
    W.close()
    x = np.ones((3, 4), np.float32)
    y = np.array([[1], [2], [3]])
    grads = fs.sampled_softmax_loss_and_grads(np.zeros((50, 4), np.float32),
                                              np.zeros(50, np.float32), y, x, 5, 50,
                                              seed=0)[1]
    calls = {
        "sampled_softmax_loss": lambda: fs.sampled_softmax_loss(W, b, y, x, 5, 50),
        "nce_loss": lambda: fs.nce_loss(W, b, y, x, 5, 50),
        "sampled_softmax_loss_and_grads":
            lambda: fs.sampled_softmax_loss_and_grads(W, b, y, x, 5, 50),
        "nce_loss_and_grads": lambda: fs.nce_loss_and_grads(W, b, y, x, 5, 50),
        "SGD.apply": lambda: fs.SGD().apply(W, grads.ids, grads.weights),
        "SGD.apply_grads": lambda: fs.SGD().apply_grads(W, b, grads),
        "Adagrad.apply_grads": lambda: fs.Adagrad().apply_grads(W, b, grads, (state_w, None)),
        "SGD.bind": lambda: fs.SGD().bind(W, b),
        "init_state": lambda: fs.Adam().init_state(W),
        "ShardedMatrix.like": lambda: ShardedMatrix.like(W, tmp_path / "L"),
        "gather": lambda: W.gather([1]),
        "assign": lambda: W.assign([1], np.ones((1, 4), np.float32)),
        "journal": lambda: W.journal([1]),
        "checkpoint": lambda: W.checkpoint(),
        "verify": lambda: W.verify(),
        "to_numpy": lambda: W.to_numpy(),
    }
    for what, call in calls.items():
        with pytest.raises(ValueError, match=r"ShardedMatrix\(.*closed\)? is closed"):
            call()
    b.close()

    # a closed head: every method that reads or writes its stores says so
    head = fs.SampledSoftmaxHead(50, 4, path=tmp_path / "head", num_sampled=5)
    batch = head.batch(x, y)
    head.close()
    for what, call in {"train_step": lambda: head.train_step(x, y),
                       "loss_and_grads": lambda: head.loss_and_grads(x, y),
                       "loss (Batch)": lambda: head.loss(batch),
                       "batch": lambda: head.batch(x, y),
                       "apply_grads": lambda: head.apply_grads(grads),
                       "predict": lambda: head.predict(x),
                       "evaluate": lambda: head.evaluate(x, y),
                       "exact_loss": lambda: head.exact_loss(batch),
                       "checkpoint": lambda: head.checkpoint()}.items():
        with pytest.raises(ValueError, match=r"SampledSoftmaxHead\(.*\) is closed"):
            call()


def test_a_standalone_optimizer_state_commits_its_slots_atomically(tmp_path, monkeypatch):
    """Adam's m and v made with init_state(path=...) commit through one record: a crash
    between the two slots' own commits reopens both at the same step."""
    W = ShardedMatrix.create(tmp_path / "W", 40, 4, init="uniform")
    opt = fs.Adam(lr=0.01)
    state = opt.init_state(W, path=tmp_path / "opt")
    ids = np.array([1, 5, 9])
    for _ in range(3):
        opt.apply(W, ids, np.ones((3, 4), np.float32), state)
    state.checkpoint()
    saved = [s.to_numpy() for s in state.slots.values()]
    opt.apply(W, ids, np.ones((3, 4), np.float32), state)
    real = ShardedMatrix._commit
    calls = []

    def crash_after_one(self, *args, **kwargs):
        calls.append(self.path)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated crash between m's commit and v's")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ShardedMatrix, "_commit", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        state.checkpoint()                 # state.json says t=4; v's own meta says 3
    monkeypatch.undo()
    after = [s.to_numpy() for s in state.slots.values()]
    state.close()
    again = opt.init_state(W, path=tmp_path / "opt")
    assert again.t == 4
    for got, want in zip(again.slots.values(), after):
        np.testing.assert_array_equal(got.to_numpy(), want)
    assert not all(np.array_equal(a, b) for a, b in zip(after, saved))
    again.close()
    W.close()


def test_overwrite_checks_the_whole_head_before_deleting_anything(tmp_path):
    p = tmp_path / "h"
    fs.SampledSoftmaxHead(V, D, path=p, num_sampled=8, optimizer="adam").close()
    (p / "opt" / "weights" / "notes.txt").write_text("mine")     # deep inside the head
    before = _tree(p)
    with pytest.raises(FileExistsError, match="notes.txt"):
        fs.SampledSoftmaxHead(V, D, path=p, num_sampled=8, overwrite=True)
    assert _tree(p) == before                  # head.json, weights and biases all still there
    os.unlink(p / "opt" / "weights" / "notes.txt")
    (p / "opt" / "biases" / "v" / "mine.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not part of a store"):
        fs.SampledSoftmaxHead(V, D, path=p, num_sampled=8, overwrite=True)
    assert (p / "head.json").exists() and (p / "weights" / "meta.json").exists()


def test_overwrite_refuses_a_directory_whose_meta_json_is_not_a_stores(tmp_path):
    """Another program's meta.json (with nothing else, or beside a file named like a shard)
    is not a store: overwrite=True deletes nothing there."""
    d = tmp_path / "data"
    d.mkdir()
    (d / "meta.json").write_text('{"name": "my dataset"}')
    (d / "shard-00000.npy").write_bytes(b"theirs")
    with pytest.raises(FileExistsError, match="not a ShardedMatrix's"):
        ShardedMatrix.create(d, 10, 4, overwrite=True)
    assert (d / "meta.json").read_text() == '{"name": "my dataset"}'
    assert (d / "shard-00000.npy").read_bytes() == b"theirs"
    # inside a head: its weights directory holding another program's meta.json
    h = tmp_path / "head"
    fs.SampledSoftmaxHead(10, 4, num_sampled=2, path=h).close()
    (h / "weights" / "meta.json").write_text('{"name": "theirs"}')
    with pytest.raises(FileExistsError, match="not a ShardedMatrix's"):
        fs.SampledSoftmaxHead(10, 4, num_sampled=2, path=h, overwrite=True)
    assert (h / "weights" / "meta.json").read_text() == '{"name": "theirs"}'
    assert (h / "head.json").exists()
