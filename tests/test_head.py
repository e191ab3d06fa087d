"""SampledSoftmaxHead: training step against the loss + optimizer it composes, exact top-k
and full-softmax evaluation against numpy, persistence, durability and refusals."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import fastsampled as fs
from fastsampled.datasets import SyntheticXC

pytestmark = pytest.mark.kernel

V, D = 500, 12


def _xy(B=32, seed=0, T=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, D)).astype(np.float32)
    y = rng.integers(0, V, size=B if T is None else (B, T))
    return x, y


def _numpy_topk(x, W, b, k):
    z = (x @ W.T + b).astype(np.float32)
    order = np.lexsort((np.broadcast_to(np.arange(W.shape[0]), z.shape), -z), axis=1)[:, :k]
    return order, np.take_along_axis(z, order, 1)


@pytest.mark.parametrize("loss", ["sampled_softmax", "nce"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_train_step_is_loss_plus_sgd(loss, reduction):
    head = fs.SampledSoftmaxHead(V, D, num_sampled=20, loss=loss, reduction=reduction,
                                 optimizer="sgd", lr=0.3, seed=3)
    W0, b0 = head.weights.copy(), head.biases.copy()
    twin = fs.LogUniformSampler(V, seed=3)          # the head's sampler, same stream
    x, y = _xy()
    total, dx = head.train_step(x, y)
    sv = twin(y.reshape(-1, 1), 1, 20, True)
    fn = fs.nce_loss_and_grads if loss == "nce" else fs.sampled_softmax_loss_and_grads
    ref_loss, g = fn(W0, b0, y, x, 20, V, sampled_values=sv)
    scale = 1.0 / len(x) if reduction == "mean" else 1.0
    np.testing.assert_allclose(total, ref_loss.sum() * scale, rtol=1e-5)
    np.testing.assert_allclose(dx, g.inputs * scale, rtol=1e-5, atol=1e-7)
    W1, b1 = W0.copy(), b0.copy()
    W1[g.ids] -= 0.3 * g.weights * np.float32(scale)
    b1[g.ids] -= 0.3 * g.biases * np.float32(scale)
    np.testing.assert_allclose(head.weights, W1, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(head.biases, b1, rtol=1e-5, atol=1e-7)
    untouched = np.setdiff1d(np.arange(V), g.ids)
    assert np.array_equal(head.weights[untouched], W0[untouched])
    assert head.step == 1 and head.sampler.calls == 1


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "adam"])
@pytest.mark.parametrize("sampler", ["log_uniform", "uniform", "unigram"])
def test_head_learns_the_synthetic_task(optimizer, sampler):
    task = SyntheticXC(300, 16, zipf=0.5, noise=0.5, seed=1)
    counts = task.class_probs * 1e6 if sampler == "unigram" else None
    lr = {"sgd": 0.5, "adagrad": 0.5, "adam": 0.05}[optimizer]
    head = fs.SampledSoftmaxHead(300, 16, num_sampled=30, sampler=sampler, counts=counts,
                                 optimizer=optimizer, lr=lr, seed=0, reduction="sum")
    xt, yt = task.batch(400, 0, split="test")
    before = head.evaluate(xt, yt)
    losses = [head.train_step(*task.batch(128, s))[0] for s in range(150)]
    after = head.evaluate(xt, yt)
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    assert after["loss"] < before["loss"]
    assert after["precision@1"] > max(0.6, 10 * task.majority_baseline)


def test_predict_and_evaluate_match_numpy():
    rng = np.random.default_rng(5)
    head = fs.SampledSoftmaxHead(V, D, seed=1)
    head.biases[:] = rng.normal(size=V).astype(np.float32)
    head.weights[7] = head.weights[3]                      # an exact tie: smaller id first
    head.biases[7] = head.biases[3]
    x, y = _xy(B=300, seed=2)                               # > one example block
    ids, scores = head.predict(x, k=7)
    ref_ids, ref_scores = _numpy_topk(x, head.weights, head.biases, 7)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-5)
    assert (ids == ref_ids).mean() > 0.999                 # float ties at 1e-7 may swap
    assert np.all(np.diff(scores, axis=1) <= 0)
    ev = head.evaluate(x, y, k=5)
    z = x.astype(np.float64) @ head.weights.T.astype(np.float64) + head.biases
    m = z.max(1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(1))
    np.testing.assert_allclose(ev["loss"], np.mean(lse - z[np.arange(len(y)), y]), rtol=1e-6)
    top5 = np.argsort(-z, axis=1)[:, :5]
    hit = top5 == y[:, None]
    assert ev["precision@1"] == pytest.approx(hit[:, 0].mean())
    assert ev["precision@5"] == pytest.approx(hit.sum(1).mean() / 5)
    assert ev["recall@5"] == pytest.approx(hit.sum(1).mean())


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_memory_mapped_head_equals_in_ram_head(tmp_path, strategy):
    kw = dict(num_sampled=16, optimizer="adagrad", lr=0.2, seed=4, init="zeros")
    ram = fs.SampledSoftmaxHead(V, D, **kw)
    disk = fs.SampledSoftmaxHead(V, D, path=tmp_path / "h", num_shards=3,
                                 partition_strategy=strategy, **kw)
    for s in range(4):
        x, y = _xy(seed=s)
        l1, d1 = ram.train_step(x, y)
        l2, d2 = disk.train_step(x, y)
        assert l1 == pytest.approx(l2, rel=1e-6)
        np.testing.assert_allclose(d1, d2, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(disk.weights.to_numpy(), ram.weights, rtol=1e-5, atol=1e-7)
    x, _ = _xy(B=40, seed=9)
    i1, s1 = ram.predict(x, 5)
    i2, s2 = disk.predict(x, 5)
    assert np.array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-6)
    disk.close()


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_scores_do_not_depend_on_the_batch_or_the_layout(tmp_path, strategy):
    """The scan computes every score ``x . w`` by the same code (its own tiled product,
    whatever tile the example and the class fall in), so the same weights give bit-identical
    scores in RAM and memory-mapped in any layout (3 shards of 166-167 rows: partial tiles),
    and an example gets the same scores alone or in any batch (301 rows: 2 blocks, the last
    one partial)."""
    disk = fs.SampledSoftmaxHead(V, D, path=tmp_path / "h", num_shards=3,
                                 partition_strategy=strategy, seed=4)
    disk.train_step(*_xy(seed=1))                           # biases away from zero
    ram = fs.SampledSoftmaxHead(V, D, seed=0)
    ram.weights[:] = disk.weights.to_numpy()
    ram.biases[:] = disk.biases.to_numpy()
    x, _ = _xy(B=301, seed=3)
    ids, scores = ram.predict(x, 9)
    i2, s2 = disk.predict(x, 9)
    np.testing.assert_array_equal(i2, ids)
    np.testing.assert_array_equal(s2, scores)
    for rows in (slice(0, 1), slice(5, 8), slice(250, 301), slice(299, 301)):
        i3, s3 = ram.predict(x[rows], 9)
        np.testing.assert_array_equal(i3, ids[rows])
        np.testing.assert_array_equal(s3, scores[rows])
    disk.close()


def test_float64_scan_matches_numpy_with_partial_tiles():
    """Sizes that fill no tile evenly (1003 classes, dim 13, 7 examples), k = all classes
    (the whole order, exact ties to the smaller id), and the full-softmax loss, in float64."""
    Vo, Do = 1003, 13
    rng = np.random.default_rng(8)
    head = fs.SampledSoftmaxHead(Vo, Do, dtype="float64", seed=2)
    head.weights[:] = rng.normal(size=(Vo, Do))
    head.biases[:] = rng.normal(size=Vo)
    head.weights[1002] = head.weights[5]                    # an exact tie across tiles
    head.biases[1002] = head.biases[5]
    x = rng.normal(size=(7, Do))
    y = rng.integers(0, Vo, size=7)
    ids, scores = head.predict(x, k=Vo)
    z = x @ head.weights.T + head.biases
    order = np.lexsort((np.broadcast_to(np.arange(Vo), z.shape), -z), axis=1)
    np.testing.assert_array_equal(ids, order)
    np.testing.assert_allclose(scores, np.take_along_axis(z, order, 1), rtol=1e-12, atol=1e-12)
    m = z.max(1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(1))
    np.testing.assert_allclose(head.exact_loss(x, y, reduction="none"),
                               lse - z[np.arange(7), y], rtol=1e-10)


def test_save_load_resumes_exactly(tmp_path):
    kw = dict(num_sampled=16, optimizer="adam", lr=0.01, seed=2)
    a = fs.SampledSoftmaxHead(V, D, **kw)
    b = fs.SampledSoftmaxHead(V, D, **kw)
    for s in range(3):
        a.train_step(*_xy(seed=s))
        b.train_step(*_xy(seed=s))
    b.save(tmp_path / "saved")
    c = fs.SampledSoftmaxHead.load(tmp_path / "saved")
    assert c.step == 3 and c.sampler.calls == 3
    for s in range(3, 6):
        la, _ = a.train_step(*_xy(seed=s))
        lc, _ = c.train_step(*_xy(seed=s))
        assert la == pytest.approx(lc, rel=1e-6)
    np.testing.assert_allclose(c.weights.to_numpy(), a.weights, rtol=1e-5, atol=1e-7)
    c.checkpoint()
    c.close()
    r = fs.SampledSoftmaxHead.load(tmp_path / "saved", mode="r")
    assert r.step == 6
    np.testing.assert_array_equal(r.predict(_xy(seed=0)[0], 3)[0], a.predict(_xy(seed=0)[0], 3)[0])
    with pytest.raises(ValueError, match="read-only"):
        r.train_step(*_xy())
    r.close()


def test_second_writer_is_refused(tmp_path):
    h = fs.SampledSoftmaxHead(V, D, path=tmp_path / "h")
    with pytest.raises(fs.StoreLockedError):
        fs.SampledSoftmaxHead.load(tmp_path / "h")
    h.close()
    fs.SampledSoftmaxHead.load(tmp_path / "h").close()


def test_corrupt_head_store_is_refused(tmp_path):
    h = fs.SampledSoftmaxHead(V, D, path=tmp_path / "h", num_shards=2)
    h.close()
    shard = tmp_path / "h" / "weights" / "shard-00001.npy"
    os.truncate(shard, os.path.getsize(shard) - 8)
    with pytest.raises(fs.StoreError):
        fs.SampledSoftmaxHead.load(tmp_path / "h")
    (tmp_path / "h" / "head.json").write_text("{not json")
    with pytest.raises(fs.StoreError, match="head.json"):
        fs.SampledSoftmaxHead.load(tmp_path / "h")
    with pytest.raises(fs.StoreError):
        fs.SampledSoftmaxHead.load(tmp_path / "nothing")


def test_non_finite_step_is_refused_and_writes_nothing(tmp_path):
    head = fs.SampledSoftmaxHead(V, D, path=tmp_path / "h", seed=0)
    W0 = head.weights.to_numpy()
    b0 = head.biases.to_numpy()
    x, y = _xy()
    x[0] = 3e38                                            # finite input, overflowing logits
    with pytest.raises(FloatingPointError, match="nothing was written"):
        head.train_step(x, y)
    assert np.array_equal(head.weights.to_numpy(), W0)
    assert np.array_equal(head.biases.to_numpy(), b0)
    assert head.step == 0 and head.sampler.calls == 0   # the stream did not advance either
    head.close()


def test_bad_arguments():
    with pytest.raises(ValueError, match="sampler"):
        fs.SampledSoftmaxHead(V, D, sampler="zipf")
    with pytest.raises(ValueError, match="counts"):
        fs.SampledSoftmaxHead(V, D, sampler="unigram")
    with pytest.raises(ValueError, match="counts"):
        fs.SampledSoftmaxHead(V, D, sampler="unigram", counts=np.ones(V - 1))
    with pytest.raises(ValueError, match="loss"):
        fs.SampledSoftmaxHead(V, D, loss="hinge")
    with pytest.raises(ValueError, match="optimizer"):
        fs.SampledSoftmaxHead(V, D, optimizer="rmsprop")
    with pytest.raises(ValueError, match="num_sampled"):
        fs.SampledSoftmaxHead(10, D, num_sampled=11)
    with pytest.raises(ValueError, match="num_shards"):
        fs.SampledSoftmaxHead(V, D, num_shards=2)
    head = fs.SampledSoftmaxHead(V, D, num_sampled=8)
    x, y = _xy()
    with pytest.raises(ValueError, match="labels"):
        head.train_step(x, y + V)
    with pytest.raises(ValueError, match="labels"):
        head.train_step(x, y[:-1])
    with pytest.raises(ValueError, match="inputs"):
        head.train_step(x[:, :-1], y)
    bad = x.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="inputs"):
        head.train_step(bad, y)
    with pytest.raises(ValueError, match="k"):
        head.predict(x, k=V + 1)
    assert head.step == 0


def test_sigkill_mid_training_leaves_a_store_that_reopens(tmp_path):
    path = tmp_path / "h"
    script = textwrap.dedent(f"""
        import numpy as np, fastsampled as fs
        head = fs.SampledSoftmaxHead({V}, {D}, path={str(path)!r}, num_shards=3,
                                     optimizer="adagrad", num_sampled=16)
        rng = np.random.default_rng(0)
        while True:
            x = rng.normal(size=(64, {D})).astype(np.float32)
            head.train_step(x, rng.integers(0, {V}, 64))
            if head.step % 5 == 0:
                head.checkpoint()
                print("ckpt", head.step, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    last = 0
    deadline = time.monotonic() + 240
    try:
        while last < 15 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            last = int(line.split()[1])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert last >= 15, "the training subprocess never reached its third checkpoint"
    head = fs.SampledSoftmaxHead.load(path)       # the dead writer's lock is gone
    assert head.step >= last
    head.weights.verify(values=True)
    head.biases.verify(values=True)
    head.train_step(*_xy())                        # and training goes on
    head.close()


def test_warm_makes_the_frequent_rows_resident_and_changes_nothing(tmp_path):
    head = fs.SampledSoftmaxHead(5000, 8, path=tmp_path / "h", num_shards=3,
                                 partition_strategy="mod", optimizer="adam", seed=2)
    cold = fs.SampledSoftmaxHead(5000, 8, path=tmp_path / "c", num_shards=3,
                                 partition_strategy="mod", optimizer="adam", seed=2)
    ram = fs.SampledSoftmaxHead(50, 8, num_sampled=5, seed=2)
    assert ram.warm() == {"rows": 0, "vector_rows": 0, "bytes": 0, "seconds": 0.0}
    info = head.warm(1000)
    # weights (8 floats) + bias + Adam's m (8) and v (8), 1000 rows, plus each shard's header
    assert info["rows"] == 1000 and info["vector_rows"] == 1000
    assert info["bytes"] >= 1000 * 25 * 4
    assert head.warm(max_bytes=0)["rows"] == 0
    # a budget that holds every class's bias (and its Adam slots: 12 bytes a class) four
    # times over but not all the rows: the biases of all 5000 classes, rows for the rest
    info = head.warm(max_bytes=4 * 5000 * 12)
    assert info["vector_rows"] == 5000
    assert info["rows"] == (4 * 5000 * 12 - 5000 * 12) // (3 * 8 * 4)
    assert head._warm_bias_rows == 5000 and head._warm_rows == info["rows"]
    with pytest.raises(ValueError, match="num_rows"):
        head.warm(5001)
    rng = np.random.default_rng(0)
    for step in range(3):          # warmed ids skip the prefetch hint; results are the same
        x = rng.normal(size=(16, 8)).astype(np.float32)
        y = rng.integers(0, 5000, 16)
        a, da = head.train_step(x, y)
        b, db = cold.train_step(x, y)
        assert a == b
        np.testing.assert_array_equal(da, db)
    np.testing.assert_array_equal(head.weights.to_numpy(), cold.weights.to_numpy())
    head.close()
    cold.close()
