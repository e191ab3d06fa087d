"""fastsampled's losses against the slow numpy reference (``tests/reference.py``).

Random problems cover float32/float64, num_true 1..3, remove_accidental_hits and
subtract_log_q on and off, one array / lists of "mod" and "div" shards with uneven sizes /
memory-mapped weights, float64 weights with float32 inputs, repeated labels within a row,
non-unique candidates with duplicates, and problems big enough that every tiled phase of the
fused kernel runs over several tiles. Gradients are also checked by finite differences, the
default (sampled_values=None) path for reproducibility, and a hypothesis property test
compares random shapes / ids / shard layouts with the reference (under NUMBA_BOUNDSCHECK=1
this doubles as the out-of-bounds check of the kernels).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastsampled as fs
import reference as ref
from conftest import densify

pytestmark = pytest.mark.kernel

FS = {"ssm": fs.sampled_softmax_loss_and_grads, "nce": fs.nce_loss_and_grads}
FS_LOSS = {"ssm": fs.sampled_softmax_loss, "nce": fs.nce_loss}
REF = {"ssm": ref.sampled_softmax_loss_and_grads, "nce": ref.nce_loss_and_grads}
FLT_MAX = float(np.finfo(np.float32).max)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def split_layout(dense, num_shards, strategy):
    """Split a dense (N, ...) array into TF's consistent layout of ``num_shards`` shards."""
    if num_shards == 1:
        return [dense]
    if strategy == "mod":
        return [dense[p::num_shards] for p in range(num_shards)]
    q, r = divmod(dense.shape[0], num_shards)
    sizes = [q + 1 if p < r else q for p in range(num_shards)]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    return [dense[offsets[p]:offsets[p + 1]] for p in range(num_shards)]


class Problem:
    """A random sampled-loss problem with explicit sampled values."""

    def __init__(self, rng, B, D, T, S, C, dtype=np.float32, wdtype=None, unique=False,
                 counts_dtype=np.float32, force_hits=True, dup_labels=False):
        wdtype = dtype if wdtype is None else wdtype
        self.B, self.D, self.T, self.S, self.C = B, D, T, S, C
        self.dtype = np.dtype(dtype)
        self.W = (rng.normal(size=(C, D)) * 0.7).astype(wdtype)
        self.b = (rng.normal(size=C) * 0.3).astype(wdtype)
        self.x = rng.normal(size=(B, D)).astype(dtype)
        self.labels = rng.integers(0, C, size=(B, T))
        if dup_labels and T > 1:
            self.labels[::2, 1] = self.labels[::2, 0]   # a label repeated within a row
        if unique:
            self.s = rng.permutation(C)[:S].astype(np.int64)
        else:
            self.s = rng.integers(0, C, size=S)
        if force_hits and S >= 2 and B >= 1:
            # make sure there are accidental hits (and, if non-unique, duplicate hits)
            self.s[0] = self.labels[0, 0]
            if not unique:
                self.s[S - 1] = self.labels[0, 0]
        self.tec = rng.uniform(0.05, 1.5, size=(B, T)).astype(counts_dtype)
        self.sec = rng.uniform(0.05, 1.5, size=S).astype(counts_dtype)

    @property
    def sampled_values(self):
        return (self.s, self.tec, self.sec)


def run_fs(kind, p, weights=None, biases=None, labels=None, **kw):
    weights = p.W if weights is None else weights
    biases = p.b if biases is None else biases
    labels = p.labels if labels is None else labels
    return FS[kind](weights, biases, labels, p.x, p.S, p.C, num_true=p.T,
                    sampled_values=p.sampled_values, **kw)


def run_ref(kind, p, weights=None, biases=None, rah=False, slq=True, strategy="mod"):
    weights = p.W if weights is None else weights
    biases = p.b if biases is None else biases
    return REF[kind](weights, biases, p.labels, p.x, p.s, p.tec, p.sec, num_true=p.T,
                     remove_accidental_hits=rah, subtract_log_q=slq,
                     partition_strategy=strategy)


def assert_matches(kind, p, fs_out, ref_out, num_rows=None, wdtype=None, bdtype=None):
    loss, g = fs_out
    rl, rgx, rgw, rgb = ref_out
    dt = p.dtype
    wdtype = np.dtype(p.W.dtype if wdtype is None else wdtype)
    bdtype = np.dtype(p.b.dtype if bdtype is None else bdtype)
    num_rows = p.C if num_rows is None else num_rows
    assert loss.shape == (p.B,) and loss.dtype == dt
    assert g.inputs.shape == (p.B, p.D) and g.inputs.dtype == dt
    assert g.weights.dtype == wdtype and g.biases.dtype == bdtype
    np.testing.assert_array_equal(
        g.ids, np.unique(np.concatenate([np.asarray(p.labels).reshape(-1), p.s])))
    gw, gb = densify(g, num_rows, p.D)
    # INDEX.md's rule, with a floor on the scale: on tiny random problems a whole gradient
    # array can be pure cancellation (e.g. one class that is both label and candidate), where
    # a scale taken from the array itself would demand far more than the dtype's precision.
    # dL/dz is O(1), so the natural scales are 1 (loss, biases), |W| (inputs), |x| (weights).
    w_scale = max(float(np.max(np.abs(p.W), initial=0.0)), 1.0)
    x_scale = max(float(np.max(np.abs(p.x), initial=0.0)), 1.0)
    assert_close(loss, rl, dt, 1.0, f"{kind} loss")
    assert_close(g.inputs, rgx, dt, w_scale, f"{kind} grad_inputs")
    assert_close(gw, rgw, dt, x_scale, f"{kind} grad_weights")
    assert_close(gb, rgb, dt, 1.0, f"{kind} grad_biases")


def assert_close(actual, expected, dtype, floor, err_msg=""):
    """``assert_close_tf`` with the scale ``max(|e|, max|E|, floor)``."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, err_msg
    tol = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}[np.dtype(dtype)]
    np.testing.assert_array_equal(np.isfinite(actual), np.isfinite(expected), err_msg=err_msg)
    fin = np.isfinite(expected)
    np.testing.assert_array_equal(actual[~fin], expected[~fin], err_msg=err_msg)
    if not fin.any():
        return
    scale = max(float(np.max(np.abs(expected[fin]))), floor)
    bound = tol * np.maximum(np.abs(expected[fin]), scale)
    err = np.abs(actual[fin] - expected[fin])
    assert (err <= bound).all(), (
        f"{err_msg}: {int((err > bound).sum())} of {err.size} elements out of tolerance; "
        f"worst err/bound = {np.max(err / bound):.3g}")


# ---------------------------------------------------------------------------
# fastsampled vs reference on random problems
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ssm", "nce"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T", [1, 2, 3])
@pytest.mark.parametrize("rah", [False, True])
@pytest.mark.parametrize("slq", [True, False])
def test_matches_reference_single_array(kind, dtype, T, rah, slq):
    rng = np.random.default_rng([T, int(rah), int(slq), np.dtype(dtype).itemsize])
    p = Problem(rng, B=7, D=5, T=T, S=9, C=23, dtype=dtype)
    out = run_fs(kind, p, remove_accidental_hits=rah, subtract_log_q=slq)
    assert_matches(kind, p, out, run_ref(kind, p, rah=rah, slq=slq))
    # the loss-only function computes the same loss
    loss_only = FS_LOSS[kind](p.W, p.b, p.labels, p.x, p.S, p.C, num_true=T,
                              sampled_values=p.sampled_values, remove_accidental_hits=rah,
                              subtract_log_q=slq)
    np.testing.assert_array_equal(loss_only, out[0])
    assert np.isfinite(out[0]).all()


@pytest.mark.parametrize("kind", ["ssm", "nce"])
@pytest.mark.parametrize("strategy", ["mod", "div"])
@pytest.mark.parametrize("num_shards", [2, 3, 4])
@pytest.mark.parametrize("bias_sharded", [False, True])
def test_matches_reference_shards(kind, strategy, num_shards, bias_sharded):
    rng = np.random.default_rng([num_shards, int(bias_sharded), len(strategy)])
    # C = 23 is not a multiple of 2, 3 or 4: uneven shard sizes
    p = Problem(rng, B=6, D=4, T=2, S=8, C=23, dtype=np.float32)
    w_shards = split_layout(p.W, num_shards, strategy)
    assert len({w.shape[0] for w in w_shards}) == 2  # really uneven
    b = split_layout(p.b, num_shards, strategy) if bias_sharded else p.b
    out = run_fs(kind, p, weights=w_shards, biases=b, remove_accidental_hits=True,
                 partition_strategy=strategy)
    assert_matches(kind, p, out, run_ref(kind, p, w_shards, b, rah=True, strategy=strategy))
    # the same numbers as the unsharded problem (the layout is consistent)
    dense = run_fs(kind, p, remove_accidental_hits=True)
    np.testing.assert_allclose(out[0], dense[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out[1].weights, dense[1].weights, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["ssm", "nce"])
def test_sharded_tuple_and_single_shard_list(kind):
    rng = np.random.default_rng(3)
    p = Problem(rng, B=5, D=3, T=1, S=6, C=11)
    base = run_fs(kind, p)
    # a list of one shard: plain gather whatever the strategy
    for strategy in ("mod", "div"):
        out = run_fs(kind, p, weights=[p.W], biases=[p.b], partition_strategy=strategy)
        np.testing.assert_array_equal(out[0], base[0])
        np.testing.assert_array_equal(out[1].weights, base[1].weights)
    out = run_fs(kind, p, weights=tuple(split_layout(p.W, 3, "div")),
                 biases=tuple(split_layout(p.b, 3, "div")), partition_strategy="div",
                 remove_accidental_hits=True)
    assert_matches(kind, p, out, run_ref(kind, p, rah=True))


@pytest.mark.parametrize("kind", ["ssm", "nce"])
@pytest.mark.parametrize("sharded", [False, True])
def test_memmap_weights(kind, sharded, tmp_path):
    rng = np.random.default_rng(11)
    p = Problem(rng, B=6, D=5, T=2, S=10, C=31)
    if sharded:
        ws, bs = [], []
        for i, (w, b) in enumerate(zip(split_layout(p.W, 3, "mod"), split_layout(p.b, 3, "mod"))):
            np.save(tmp_path / f"w{i}.npy", w)
            np.save(tmp_path / f"b{i}.npy", b)
            ws.append(np.load(tmp_path / f"w{i}.npy", mmap_mode="r"))
            bs.append(np.load(tmp_path / f"b{i}.npy", mmap_mode="r"))
        assert all(isinstance(w, np.memmap) for w in ws)
        out = run_fs(kind, p, weights=ws, biases=bs, partition_strategy="mod",
                     remove_accidental_hits=True)
    else:
        wm = np.memmap(tmp_path / "w.bin", dtype=p.W.dtype, mode="w+", shape=p.W.shape)
        wm[:] = p.W
        wm.flush()
        del wm
        wm = np.memmap(tmp_path / "w.bin", dtype=p.W.dtype, mode="r", shape=p.W.shape)
        out = run_fs(kind, p, weights=wm, remove_accidental_hits=True)
    assert_matches(kind, p, out, run_ref(kind, p, rah=True))


@pytest.mark.parametrize("kind", ["ssm", "nce"])
@pytest.mark.parametrize("rah", [False, True])
def test_float64_weights_float32_inputs(kind, rah):
    rng = np.random.default_rng(5)
    p = Problem(rng, B=6, D=4, T=2, S=7, C=19, dtype=np.float32, wdtype=np.float64)
    ws = split_layout(p.W, 2, "div")
    bs = split_layout(p.b, 2, "div")
    out = run_fs(kind, p, weights=ws, biases=bs, partition_strategy="div",
                 remove_accidental_hits=rah)
    assert out[0].dtype == np.float32 and out[1].inputs.dtype == np.float32
    assert out[1].weights.dtype == np.float64 and out[1].biases.dtype == np.float64
    assert_matches(kind, p, out, run_ref(kind, p, ws, bs, rah=rah, strategy="div"),
                   wdtype=np.float64)


@pytest.mark.parametrize("counts_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_counts_dtype_independent_of_inputs_dtype(dtype, counts_dtype):
    rng = np.random.default_rng(8)
    p = Problem(rng, B=4, D=3, T=1, S=5, C=13, dtype=dtype, counts_dtype=counts_dtype)
    for kind in ("ssm", "nce"):
        assert_matches(kind, p, run_fs(kind, p, remove_accidental_hits=True),
                       run_ref(kind, p, rah=True))


@pytest.mark.parametrize("kind", ["ssm", "nce"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_duplicate_labels_and_nonunique_sampled(kind, dtype):
    rng = np.random.default_rng(21)
    p = Problem(rng, B=8, D=4, T=3, S=16, C=9, dtype=dtype, dup_labels=True)
    assert np.unique(p.s).size < p.S                       # duplicates among candidates
    assert any(np.unique(r).size < p.T for r in p.labels)   # a label repeated in a row
    hits = ref.compute_accidental_hits(p.labels, p.s, p.T)[0].size
    assert hits > 0
    for rah in (False, True):
        out = run_fs(kind, p, remove_accidental_hits=rah)
        assert np.isfinite(out[0]).all() and np.isfinite(out[1].inputs).all()
        assert_matches(kind, p, out, run_ref(kind, p, rah=rah))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masked_column_contributes_nothing(dtype):
    """A hit at the last occurrence is masked: its sampled row gets no gradient from that row,
    while an earlier duplicate of the same class stays an ordinary negative."""
    rng = np.random.default_rng(2)
    p = Problem(rng, B=1, D=3, T=1, S=4, C=10, dtype=dtype, force_hits=False)
    p.labels = np.array([[7]])
    p.s = np.array([7, 2, 3, 7])       # 7 twice: only position 3 is masked
    with_hits = run_fs("ssm", p, remove_accidental_hits=True)
    # same problem where the masked column is simply absent
    q = Problem(rng, B=1, D=3, T=1, S=3, C=10, dtype=dtype, force_hits=False)
    q.W, q.b, q.x, q.labels, q.tec = p.W, p.b, p.x, p.labels, p.tec
    q.s, q.sec = p.s[:3].copy(), p.sec[:3].copy()
    without = run_fs("ssm", q, remove_accidental_hits=False)
    np.testing.assert_allclose(with_hits[0], without[0], rtol=1e-6)
    np.testing.assert_allclose(with_hits[1].inputs, without[1].inputs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(with_hits[1].ids, without[1].ids)
    np.testing.assert_allclose(with_hits[1].weights, without[1].weights, rtol=1e-5, atol=1e-6)


# (B, S, T): shapes that run every code path of the fused kernel several tiles deep, whatever
# the exact tile sizes (today: rows 64/256, sampled columns 512/1024/2048, and a one-pass
# "fused blocks" path of 256 examples per task for S <= 512 and B >= 512).
BIG_SHAPES = [(300, 1100, 2), (600, 300, 1), (1030, 512, 3), (257, 40, 2)]


@pytest.mark.parametrize("kind", ["ssm", "nce"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", BIG_SHAPES, ids=lambda s: "B%d_S%d_T%d" % s)
def test_multi_tile_matches_reference(kind, dtype, shape):
    B, S, T = shape
    rng = np.random.default_rng([B, S, T])
    p = Problem(rng, B=B, D=6, T=T, S=S, C=1500, dtype=dtype, dup_labels=True)
    out = run_fs(kind, p, remove_accidental_hits=True)
    assert_matches(kind, p, out, _fast_ref(kind, p, rah=True))
    loss_only = FS_LOSS[kind](p.W, p.b, p.labels, p.x, p.S, p.C, num_true=p.T,
                              sampled_values=p.sampled_values, remove_accidental_hits=True)
    np.testing.assert_array_equal(loss_only, out[0])


def test_wide_sampled_chunks_matches_reference():
    """S > 2048: the d_inputs sum over S is split into partial sums."""
    rng = np.random.default_rng(100)
    p = Problem(rng, B=70, D=5, T=1, S=2100, C=5000, dtype=np.float32)
    for kind in ("ssm", "nce"):
        out = run_fs(kind, p, remove_accidental_hits=True)
        assert_matches(kind, p, out, _fast_ref(kind, p, rah=True))


def test_multi_tile_against_slow_reference():
    """One multi-tile problem against the loop reference itself (the vectorised helper used
    for big problems is checked against it in test_fast_ref_is_the_reference)."""
    rng = np.random.default_rng(7)
    p = Problem(rng, B=260, D=3, T=1, S=1030, C=1400, dtype=np.float32)
    out = run_fs("ssm", p, remove_accidental_hits=True)
    assert_matches("ssm", p, out, run_ref("ssm", p, rah=True))


def _fast_ref(kind, p, rah=True, slq=True):
    """The reference's formulas, vectorised (the loop reference is too slow for B*S ~ 3e5)."""
    dt = p.dtype
    x = p.x
    lab = np.asarray(p.labels).reshape(p.B, p.T)
    Wt = p.W[lab].astype(dt)                       # (B, T, D)
    bt = p.b[lab].astype(dt)
    Ws = p.W[p.s].astype(dt)
    bs = p.b[p.s].astype(dt)
    zt = (np.einsum("bd,btd->bt", x, Wt) + bt).astype(dt)
    zs = (x @ Ws.T + bs).astype(dt)
    if rah:
        mask = np.zeros_like(zs)
        rows, cols, _ = ref.compute_accidental_hits(lab, p.s, p.T)
        mask[rows, cols] = dt.type(-FLT_MAX)
        zs = zs + mask
    if slq:
        zt = zt - np.log(p.tec.astype(dt))
        zs = zs - np.log(p.sec.astype(dt))
    z = np.concatenate([zt, zs], axis=1).astype(np.float64)
    y = np.concatenate([np.full((p.B, p.T), 1.0 / p.T), np.zeros((p.B, p.S))], axis=1)
    if kind == "ssm":
        m = z.max(axis=1, keepdims=True)
        e = np.exp(z - m)
        ssum = e.sum(axis=1, keepdims=True)
        loss = (m + np.log(ssum))[:, 0] - (y * z).sum(axis=1)
        g = e / ssum - y
    else:
        loss = (np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))).sum(axis=1)
        g = ref._sigmoid(z) - y
    x64 = x.astype(np.float64)
    rows64 = np.concatenate([Wt.reshape(-1, p.D), Ws], axis=0).astype(np.float64)
    gt, gs = g[:, :p.T], g[:, p.T:]
    BT = p.B * p.T
    gx = np.einsum("bt,btd->bd", gt, rows64[:BT].reshape(p.B, p.T, p.D)) + gs @ rows64[BT:]
    gw = np.zeros((p.C, p.D))
    gb = np.zeros(p.C)
    np.add.at(gw, lab.reshape(-1), (gt[:, :, None] * x64[:, None, :]).reshape(-1, p.D))
    np.add.at(gb, lab.reshape(-1), gt.reshape(-1))
    np.add.at(gw, p.s, gs.T @ x64)
    np.add.at(gb, p.s, gs.sum(axis=0))
    return (loss.astype(dt), gx.astype(dt), gw.astype(p.W.dtype), gb.astype(p.b.dtype))


@pytest.mark.parametrize("kind", ["ssm", "nce"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_ref_is_the_reference(kind, dtype):
    rng = np.random.default_rng(4)
    p = Problem(rng, B=9, D=4, T=3, S=12, C=10, dtype=dtype, dup_labels=True)
    for rah in (False, True):
        for slq in (False, True):
            fast = _fast_ref(kind, p, rah, slq)
            slow = run_ref(kind, p, rah=rah, slq=slq)
            for a, e in zip(fast, slow):
                assert_close(a, e, dtype, 1.0)


# ---------------------------------------------------------------------------
# finite differences (float64)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ssm", "nce"])
@pytest.mark.parametrize("rah", [False, True])
@pytest.mark.parametrize("slq", [True, False])
def test_gradients_by_finite_differences(kind, rah, slq):
    rng = np.random.default_rng(31)
    p = Problem(rng, B=3, D=3, T=2, S=5, C=8, dtype=np.float64, dup_labels=True)
    kw = dict(num_true=p.T, sampled_values=p.sampled_values, remove_accidental_hits=rah,
              subtract_log_q=slq)

    def total(W, b, x):
        return FS_LOSS[kind](W, b, p.labels, x, p.S, p.C, **kw).sum()

    loss, g = FS[kind](p.W, p.b, p.labels, p.x, p.S, p.C, **kw)
    np.testing.assert_allclose(loss.sum(), total(p.W, p.b, p.x), rtol=1e-14)
    gw, gb = densify(g, p.C, p.D)
    eps = 1e-6
    params = [p.W, p.b, p.x]
    for which, analytic in ((0, gw), (1, gb), (2, g.inputs)):
        numeric = np.zeros_like(params[which])
        for idx in np.ndindex(params[which].shape):
            args = [a.copy() for a in params]
            args[which][idx] += eps
            up = total(*args)
            args[which][idx] -= 2 * eps
            down = total(*args)
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{kind} param {which}")
    # rows that are neither labels nor candidates get no gradient
    unused = np.setdiff1d(np.arange(p.C), g.ids)
    assert (gw[unused] == 0).all()


# ---------------------------------------------------------------------------
# default sampler path, labels shape
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ssm", "nce"])
def test_default_sampler_reproducible_with_int_seed(kind):
    rng = np.random.default_rng(0)
    C, D, B, S = 500, 8, 6, 25
    W = rng.normal(size=(C, D)).astype(np.float32)
    b = rng.normal(size=C).astype(np.float32)
    x = rng.normal(size=(B, D)).astype(np.float32)
    labels = rng.integers(0, C, size=(B, 2))
    l1, g1 = FS[kind](W, b, labels, x, S, C, num_true=2, seed=7)
    l2, g2 = FS[kind](W, b, labels, x, S, C, num_true=2, seed=7)
    assert np.isfinite(l1).all() and np.isfinite(g1.inputs).all()
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(g1.inputs, g2.inputs)
    np.testing.assert_array_equal(g1.ids, g2.ids)
    np.testing.assert_array_equal(g1.weights, g2.weights)
    s, tec, sec = g1.sampled_values
    # the default sampler is the unique log-uniform sampler over num_classes
    es, etec, esec = fs.log_uniform_candidate_sampler(labels, 2, S, True, C, seed=7)
    np.testing.assert_array_equal(s, es)
    np.testing.assert_array_equal(tec, etec)
    np.testing.assert_array_equal(sec, esec)
    assert np.unique(s).size == S
    # and equals passing those values explicitly
    l3, g3 = FS[kind](W, b, labels, x, S, C, num_true=2, sampled_values=(s, tec, sec))
    np.testing.assert_array_equal(l1, l3)
    np.testing.assert_array_equal(g1.weights, g3.weights)
    # loss-only function with the same seed
    np.testing.assert_array_equal(FS_LOSS[kind](W, b, labels, x, S, C, num_true=2, seed=7), l1)
    # a different seed or no seed gives other candidates
    _, g4 = FS[kind](W, b, labels, x, S, C, num_true=2, seed=8)
    assert not np.array_equal(g4.sampled_values[0], s)
    _, g5 = FS[kind](W, b, labels, x, S, C, num_true=2)
    _, g6 = FS[kind](W, b, labels, x, S, C, num_true=2)
    assert not np.array_equal(g5.sampled_values[0], g6.sampled_values[0])


@pytest.mark.parametrize("kind", ["ssm", "nce"])
@pytest.mark.parametrize("label_dtype", [np.int32, np.int64])
def test_1d_labels_with_num_true_1(kind, label_dtype):
    rng = np.random.default_rng(1)
    p = Problem(rng, B=5, D=4, T=1, S=6, C=17)
    l2d, g2d = run_fs(kind, p)
    l1d, g1d = run_fs(kind, p, labels=p.labels[:, 0].astype(label_dtype))
    np.testing.assert_array_equal(l1d, l2d)
    np.testing.assert_array_equal(g1d.inputs, g2d.inputs)
    np.testing.assert_array_equal(g1d.ids, g2d.ids)
    np.testing.assert_array_equal(g1d.weights, g2d.weights)
    np.testing.assert_array_equal(g1d.biases, g2d.biases)
    # a 1-D true expected count is accepted too
    l1e, _ = FS[kind](p.W, p.b, p.labels[:, 0], p.x, p.S, p.C,
                      sampled_values=(p.s, p.tec[:, 0], p.sec))
    np.testing.assert_array_equal(l1e, l2d)


def test_labels_beyond_num_classes_accepted_with_explicit_sampled_values():
    """As TF: num_classes only feeds the default sampler."""
    rng = np.random.default_rng(6)
    p = Problem(rng, B=4, D=3, T=1, S=5, C=20)
    p.labels[:, 0] = [19, 18, 3, 17]
    loss, g = fs.sampled_softmax_loss_and_grads(p.W, p.b, p.labels, p.x, p.S, 10,
                                                sampled_values=p.sampled_values)
    assert_matches("ssm", p, (loss, g), run_ref("ssm", p, rah=True))


def test_inputs_not_modified():
    rng = np.random.default_rng(9)
    p = Problem(rng, B=5, D=4, T=2, S=6, C=15)
    copies = [a.copy() for a in (p.W, p.b, p.x, p.labels, p.s, p.tec, p.sec)]
    for kind in ("ssm", "nce"):
        run_fs(kind, p, remove_accidental_hits=True)
    for a, c in zip((p.W, p.b, p.x, p.labels, p.s, p.tec, p.sec), copies):
        np.testing.assert_array_equal(a, c)


# ---------------------------------------------------------------------------
# property test
# ---------------------------------------------------------------------------

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), B=st.integers(1, 9), D=st.integers(1, 7),
       T=st.integers(1, 3), S=st.integers(1, 20), C=st.integers(1, 40),
       num_shards=st.integers(1, 4), strategy=st.sampled_from(["mod", "div"]),
       dtype=st.sampled_from([np.float32, np.float64]),
       w64=st.booleans(), kind=st.sampled_from(["ssm", "nce"]), rah=st.booleans(),
       slq=st.booleans(), bias_sharded=st.booleans(), unique=st.booleans())
def test_property_matches_reference(seed, B, D, T, S, C, num_shards, strategy, dtype, w64,
                                    kind, rah, slq, bias_sharded, unique):
    if strategy == "div" and num_shards > C:
        num_shards = C  # TF's div map divides by N // P (undefined when N < P)
    if unique:
        S = min(S, C)
    rng = np.random.default_rng(seed)
    p = Problem(rng, B=B, D=D, T=T, S=S, C=C, dtype=dtype,
                wdtype=np.float64 if w64 else dtype, unique=unique,
                force_hits=bool(seed % 2), dup_labels=bool(seed % 3 == 0))
    ws = split_layout(p.W, num_shards, strategy)
    bs = split_layout(p.b, num_shards, strategy) if bias_sharded else p.b
    out = run_fs(kind, p, weights=ws, biases=bs, remove_accidental_hits=rah,
                 subtract_log_q=slq, partition_strategy=strategy)
    expected = run_ref(kind, p, ws, bs, rah=rah, slq=slq, strategy=strategy)
    assert_matches(kind, p, out, expected)


@pytest.mark.parametrize("kind", ["ssm", "nce"])
def test_biases_dtype_differs_from_weights(kind):
    rng = np.random.default_rng(13)
    p = Problem(rng, B=5, D=4, T=2, S=7, C=17, dtype=np.float32)
    b64 = p.b.astype(np.float64)
    loss, g = run_fs(kind, p, biases=b64, remove_accidental_hits=True)
    assert g.weights.dtype == np.float32 and g.biases.dtype == np.float64
    expected = run_ref(kind, p, biases=b64, rah=True)
    assert expected[3].dtype == np.float64
    assert_matches(kind, p, (loss, g), expected, bdtype=np.float64)


# ---------------------------------------------------------------------------
# degenerate shapes: a clear ValueError or the right (TF) answer, never garbage
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ssm", "nce"])
@pytest.mark.parametrize("slq", [True, False])
def test_empty_batch(kind, slq):
    """B = 0: TF returns an empty loss and all-zero gradients."""
    rng = np.random.default_rng(14)
    C, D, S = 100, 8, 41
    W = rng.normal(size=(C, D)).astype(np.float32)
    b = rng.normal(size=C).astype(np.float32)
    x = np.zeros((0, D), np.float32)
    labels = np.zeros((0, 1), np.int64)
    s = np.concatenate([np.arange(1, 41), [2]])
    sv = (s, np.ones((0, 1), np.float32), np.full(S, 0.5, np.float32))
    try:
        loss, g = FS[kind](W, b, labels, x, S, C, sampled_values=sv, subtract_log_q=slq)
    except ValueError as e:
        assert "inputs" in str(e) or "labels" in str(e) or "batch" in str(e)
        return
    assert loss.shape == (0,) and g.inputs.shape == (0, D)
    np.testing.assert_array_equal(g.ids, np.arange(1, 41))
    np.testing.assert_array_equal(g.weights, np.zeros((40, D), np.float32))
    np.testing.assert_array_equal(g.biases, np.zeros(40, np.float32))


@pytest.mark.parametrize("kind", ["ssm", "nce"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_dim(kind, dtype):
    """D = 0: every logit is bias - log q (TF computes that), or a clear ValueError.
    (An out-of-bounds read here is undefined behaviour: it shows as garbage only sometimes,
    reliably under NUMBA_BOUNDSCHECK=1.)"""
    rng = np.random.default_rng(15)
    p = Problem(rng, B=3, D=0, T=1, S=4, C=9, dtype=dtype)
    try:
        out = run_fs(kind, p, remove_accidental_hits=True)
    except ValueError as e:
        assert "dim" in str(e) or "inputs" in str(e)
        return
    assert_matches(kind, p, out, run_ref(kind, p, rah=True))


@pytest.mark.parametrize("offset", [0, 1 << 41])
def test_stable_order_matches_numpy(offset):
    """The merge's stable id order, both the composite-key path and (ids beyond 2**40) the
    sort-then-fix-runs path."""
    from fastsampled._loss_kernels import _stable_order
    rng = np.random.default_rng(offset % 97)
    ids = rng.integers(0, 50, 3000).astype(np.int64) + offset
    np.testing.assert_array_equal(_stable_order(ids), np.argsort(ids, kind="stable"))
    np.testing.assert_array_equal(_stable_order(ids[:0]), np.empty(0, np.int64))


@pytest.mark.parametrize("kind", ["ssm", "nce"])
@pytest.mark.parametrize("shape", [(600, 40, 1), (300, 1100, 2), (600, 300, 1)],
                         ids=["fused", "by_chunk", "by_block"])
def test_grad_scale_scales_every_gradient(kind, shape):
    """The head's mean reduction passes grad_scale = 1/B into the kernels: every gradient is
    scaled (exactly, for a power of two), the loss is not."""
    from fastsampled._params import ParamRows
    from fastsampled._step import StepOptions, loss_and_grads
    B, S, T = shape
    p = Problem(np.random.default_rng([B, S]), B=B, D=5, T=T, S=S, C=2000, dup_labels=True)
    W = ParamRows(p.W, "weights", ndim=2)
    Bs = ParamRows(p.b, "biases", ndim=1)
    lab = np.asarray(p.labels, np.int64).reshape(B, T)
    args = (W, Bs, p.x, lab, (p.s, p.tec, p.sec), StepOptions(nce=kind == "nce"))
    l1, g1 = loss_and_grads(*args)
    for scale, exact in ((0.25, True), (1.0 / 3.0, False)):
        ls, gs = loss_and_grads(*args, grad_scale=scale)
        np.testing.assert_array_equal(ls, l1)
        np.testing.assert_array_equal(gs.ids, g1.ids)
        for a, b in ((gs.inputs, g1.inputs), (gs.weights, g1.weights), (gs.biases, g1.biases)):
            if exact:
                np.testing.assert_array_equal(a, b * np.float32(scale))
            else:
                np.testing.assert_allclose(a, b * scale, rtol=2e-6, atol=2e-6 * np.abs(b).max())


@pytest.mark.parametrize("kind", ["ssm", "nce"])
@pytest.mark.parametrize("shape", [(600, 40, 1), (1030, 64, 3), (300, 1100, 2), (7, 5, 1)],
                         ids=["fused", "fused_T3", "by_chunk", "one_block"])
@pytest.mark.parametrize("threads", [1, 2, 5])
def test_python_threads_compute_what_the_parallel_loop_does(kind, shape, threads):
    """``threads=`` runs the fused kernel's row blocks on Python threads (a distributed step's
    caller): bit for bit the values of Numba's parallel loop, and the ordinary path when S
    takes several chunks."""
    from fastsampled._params import ParamRows
    from fastsampled._step import StepOptions, loss_and_grads
    B, S, T = shape
    p = Problem(np.random.default_rng([B, S, 7]), B=B, D=9, T=T, S=S, C=2500, dup_labels=True)
    W = ParamRows(p.W, "weights", ndim=2)
    Bs = ParamRows(p.b, "biases", ndim=1)
    lab = np.asarray(p.labels, np.int64).reshape(B, T)
    args = (W, Bs, p.x, lab, (p.s, p.tec, p.sec), StepOptions(nce=kind == "nce"))
    l1, g1 = loss_and_grads(*args, grad_scale=1.0 / B)
    l2, g2 = loss_and_grads(*args, grad_scale=1.0 / B, threads=threads)
    np.testing.assert_array_equal(l2, l1)
    for a, b in ((g2.inputs, g1.inputs), (g2.ids, g1.ids), (g2.weights, g1.weights),
                 (g2.biases, g1.biases)):
        np.testing.assert_array_equal(a, b)
    l3, g3 = loss_and_grads(*args, want_grads=False, threads=threads)
    np.testing.assert_array_equal(l3, l1)
    assert g3 is None
