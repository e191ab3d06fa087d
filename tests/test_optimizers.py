"""fastsampled.optimizers (sparse SGD, Adagrad, lazy Adam) against plain-numpy references.

Covers: several consecutive steps with weight decay and Adam's bias correction, float32 and
float64, 2-D weights and 1-D biases; one array vs "mod"/"div" shard lists vs ShardedMatrix
(identical bits); untouched rows bit-identical; refusal of non-finite gradients and of
overflowing updates with nothing written; argument validation; state checkpoint and resume;
apply_grads with a real SparseGrads.
"""
import math
import shutil

import numpy as np
import pytest

import fastsampled as fs
from fastsampled import _optimizer_kernels as K
from fastsampled.optimizers import OptimizerState
from fastsampled.sharding import shard_ids

OPTS = [
    ("SGD", dict(lr=0.3)),
    ("SGD", dict(lr=0.3, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.2)),
    ("Adagrad", dict(lr=0.2, initial_accumulator_value=0.5, eps=1e-3, weight_decay=0.05)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.05, beta1=0.5, beta2=0.9, eps=1e-6, weight_decay=0.1)),
]
OPT_IDS = [f"{n}-{'wd' if 'weight_decay' in hp else 'plain'}" for n, hp in OPTS]
# one configuration per optimizer (with weight decay) where the whole grid would be slow
OPTS3 = [OPTS[1], OPTS[3], OPTS[5]]
OPT3_IDS = ["SGD", "Adagrad", "Adam"]

N = 11
STEPS = [[0, 2, 5], [2, 3, 9, 10], [5], [0, 2, 3]]   # rows 1, 4, 6, 7, 8 are never touched
UNTOUCHED = [1, 4, 6, 7, 8]


def make(name, hp):
    return getattr(fs, name)(**hp)


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


def ref_slots(name, hp, w):
    if name == "Adagrad":
        return {"accumulator": np.full_like(w, hp.get("initial_accumulator_value", 0.1))}
    if name == "Adam":
        return {"m": np.zeros_like(w), "v": np.zeros_like(w)}
    return {}


def ref_apply(name, hp, w, slots, ids, g, t):
    """The update rule written out with numpy on the rows ``ids`` (in the param's dtype)."""
    f = w.dtype.type
    lr = hp["lr"]
    x = w[ids]
    wd = hp.get("weight_decay", 0.0)
    if wd:
        x = x - f(lr * wd) * x
    if name == "SGD":
        x = x - f(lr) * g
    elif name == "Adagrad":
        acc = slots["accumulator"][ids] + g * g
        x = x - f(lr) * g / (np.sqrt(acc) + f(hp.get("eps", 1e-7)))
        slots["accumulator"][ids] = acc
    else:
        b1, b2, eps = hp.get("beta1", 0.9), hp.get("beta2", 0.999), hp.get("eps", 1e-8)
        m = f(b1) * slots["m"][ids] + f(1 - b1) * g
        v = f(b2) * slots["v"][ids] + f(1 - b2) * (g * g)
        lr_t = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        x = x - f(lr_t) * m / (np.sqrt(v) + f(eps))
        slots["m"][ids] = m
        slots["v"][ids] = v
    w[ids] = x


def grads_for(steps, shape_tail, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((len(ids),) + shape_tail).astype(dtype) for ids in steps]


def initial(dtype, ndim, n=N, dim=3, seed=1):
    rng = np.random.default_rng(seed)
    shape = (n, dim) if ndim == 2 else (n,)
    return rng.standard_normal(shape).astype(dtype)


def to_shards(dense, sizes, strategy):
    shard, row = shard_ids(np.arange(dense.shape[0]), sizes, strategy)
    shards = [np.empty((n,) + dense.shape[1:], dense.dtype) for n in sizes]
    for i in range(dense.shape[0]):
        shards[shard[i]][row[i]] = dense[i]
    return shards


def to_dense(shards, strategy):
    sizes = [s.shape[0] for s in shards]
    n = sum(sizes)
    shard, row = shard_ids(np.arange(n), sizes, strategy)
    return np.stack([np.asarray(shards[shard[i]][row[i]]) for i in range(n)])


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def store_from(path, dense, num_shards=1, strategy="div"):
    dim = dense.shape[1] if dense.ndim == 2 else None
    st = fs.ShardedMatrix.create(path, dense.shape[0], dim, num_shards=num_shards,
                                 partition_strategy=strategy, dtype=dense.dtype.name)
    st.assign(np.arange(dense.shape[0]), dense)
    return st


# ---------------------------------------------------------------- update rules

@pytest.mark.kernel
@pytest.mark.parametrize("ndim", [2, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,hp", OPTS, ids=OPT_IDS)
def test_matches_reference_over_steps(name, hp, dtype, ndim):
    w = initial(dtype, ndim)
    w0 = w.copy()
    opt = make(name, hp)
    state = opt.init_state(w)
    assert isinstance(state, OptimizerState) and state.t == 0
    assert tuple(state.slots) == opt.slots
    ref_w = w.copy()
    ref_s = ref_slots(name, hp, w)
    for name_, s in ref_s.items():
        assert same_bits(state.slots[name_], s)
    for t, (ids, g) in enumerate(zip(STEPS, grads_for(STEPS, w.shape[1:], dtype)), start=1):
        opt.apply(w, np.array(ids), g, state)
        ref_apply(name, hp, ref_w, ref_s, np.array(ids), g, t)
        assert state.t == t
        assert w.dtype == dtype
        np.testing.assert_allclose(w, ref_w, **tol(dtype))
        for k, s in ref_s.items():
            assert state.slots[k].dtype == dtype
            np.testing.assert_allclose(state.slots[k], s, **tol(dtype))
    # rows no step touched: parameter and slots bit-identical to where they started
    assert same_bits(w[UNTOUCHED], w0[UNTOUCHED])
    for k, s in ref_slots(name, hp, w0).items():
        assert same_bits(state.slots[k][UNTOUCHED], s[UNTOUCHED])


@pytest.mark.kernel
def test_known_values():
    # SGD and Adagrad by hand; Adam's first step moves each touched weight by ~lr
    w = np.zeros((3, 2))
    fs.SGD(lr=0.5, weight_decay=0.0).apply(w, [1], np.array([[2.0, -4.0]]))
    assert w.tolist() == [[0, 0], [-1, 2], [0, 0]]
    w = np.ones((2, 2))
    fs.SGD(lr=0.5, weight_decay=0.5).apply(w, [0], np.zeros((1, 2)))
    assert w.tolist() == [[0.75, 0.75], [1, 1]]   # w -= lr * wd * w on the touched row only
    w = np.zeros((2, 2))
    opt = fs.Adagrad(lr=1.0, initial_accumulator_value=0.0, eps=0.0)
    st = opt.init_state(w)
    opt.apply(w, [1], np.array([[3.0, -4.0]]), st)
    assert w.tolist() == [[0, 0], [-1, 1]] and st.slots["accumulator"].tolist() == [[0, 0],
                                                                                    [9, 16]]
    w = np.zeros((2, 2), np.float32)
    opt = fs.Adam(lr=0.1)
    st = opt.init_state(w)
    for t in range(1, 4):
        opt.apply(w, [0], np.array([[2.0, -0.5]], np.float32), st)
        # a constant gradient: m_hat / sqrt(v_hat) = sign(g) exactly, so each step is lr
        np.testing.assert_allclose(w[0], [-0.1 * t, 0.1 * t], rtol=1e-5)
    assert w[1].tolist() == [0, 0] and st.t == 3


@pytest.mark.kernel
def test_lr_change_between_steps_is_used():
    w = np.zeros((2, 1))
    opt = fs.SGD(lr=1.0)
    opt.apply(w, [0], np.ones((1, 1)))
    opt.lr = 0.25   # e.g. a schedule; validated on assignment
    opt.apply(w, [0], np.ones((1, 1)))
    assert w[0, 0] == -1.25
    opt.weight_decay = 1.0   # decay = lr * wd = 0.25: w = -1.25 * 0.75 - 0.25
    opt.apply(w, [0], np.ones((1, 1)))
    assert w[0, 0] == -1.25 * 0.75 - 0.25


@pytest.mark.kernel
def test_empty_ids_counts_a_step():
    w = initial(np.float32, 2)
    opt = fs.Adam()
    st = opt.init_state(w)
    before = w.copy()
    opt.apply(w, np.zeros(0, np.int64), np.zeros((0, 3), np.float32), st)
    assert st.t == 1 and same_bits(w, before)


# ---------------------------------------------------------------- layouts

@pytest.mark.kernel
@pytest.mark.parametrize("ndim", [2, 1])
@pytest.mark.parametrize("strategy", ["mod", "div"])
@pytest.mark.parametrize("name,hp", OPTS3, ids=OPT3_IDS)
def test_array_shards_and_store_identical(tmp_path, name, hp, strategy, ndim):
    n, num_shards = 10, 4   # uneven: 3, 3, 2, 2 rows
    steps = [[0, 1, 2, 3, 9], [4, 5, 7], [1, 8, 9], [0, 2, 3, 4, 5, 6, 7, 8]]
    dense = initial(np.float32, ndim, n=n, dim=5)
    gs = grads_for(steps, dense.shape[1:], np.float32, seed=3)
    opt = make(name, hp)

    w = dense.copy()
    st = opt.init_state(w)
    shards = to_shards(dense, [3, 3, 2, 2], strategy)
    st_sh = opt.init_state(shards, partition_strategy=strategy)
    assert all(len(v) == num_shards and [a.shape for a in v] == [a.shape for a in shards]
               for v in st_sh.slots.values())
    store = store_from(tmp_path / "w", dense, num_shards, strategy)
    st_ram = opt.init_state(store)          # a ShardedMatrix with its slots in RAM
    store2 = store_from(tmp_path / "w2", dense, num_shards, strategy)
    st_disk = opt.init_state(store2, path=tmp_path / "opt")   # slots as ShardedMatrix stores
    for k in opt.slots:
        sl = st_disk.slots[k]
        assert isinstance(sl, fs.ShardedMatrix)
        assert sl.shard_sizes == store2.shard_sizes and sl.partition_strategy == strategy
        assert sl.dtype == np.float32 and sl.dim == store2.dim
    for ids, g in zip(steps, gs):
        opt.apply(w, ids, g, st)
        # the strategy argument is ignored for a ShardedMatrix (it knows its own)
        other = "div" if strategy == "mod" else "mod"
        opt.apply(shards, ids, g, st_sh, partition_strategy=strategy)
        opt.apply(store, ids, g, st_ram, partition_strategy=other)
        opt.apply(store2, ids, g, st_disk)
    assert same_bits(to_dense(shards, strategy), w)
    assert same_bits(store.to_numpy(), w)
    assert same_bits(store2.to_numpy(), w)
    for k in opt.slots:
        assert same_bits(to_dense(st_sh.slots[k], strategy), st.slots[k])
        assert same_bits(to_dense(st_ram.slots[k], strategy), st.slots[k])
        assert same_bits(st_disk.slots[k].to_numpy(), st.slots[k])
    st_disk.close()
    store.close()
    store2.close()


# ---------------------------------------------------------------- non-finite refusal

def snapshot(param, state):
    if isinstance(param, list):
        p = [s.copy() for s in param]
    else:
        p = np.array(param.to_numpy() if hasattr(param, "to_numpy") else param)
    slots = {}
    for k, v in (state.slots.items() if state is not None else ()):
        slots[k] = v.to_numpy() if hasattr(v, "to_numpy") else (
            [s.copy() for s in v] if isinstance(v, list) else v.copy())
    return p, slots, (state.t if state is not None else None)


def assert_unchanged(param, state, snap):
    p, slots, t = snapshot(param, state)
    if isinstance(p, list):
        assert all(same_bits(a, b) for a, b in zip(p, snap[0]))
    else:
        assert same_bits(p, snap[0])
    for k in slots:
        if isinstance(slots[k], list):
            assert all(same_bits(a, b) for a, b in zip(slots[k], snap[1][k]))
        else:
            assert same_bits(slots[k], snap[1][k])
    assert t == snap[2]


@pytest.mark.kernel
@pytest.mark.parametrize("layout", ["array", "shards", "store"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name,hp", OPTS3, ids=OPT3_IDS)
def test_nonfinite_grad_refused(tmp_path, name, hp, bad, layout):
    dense = initial(np.float32, 2, n=10, dim=4)
    opt = make(name, hp)
    if layout == "array":
        param = dense.copy()
        state = opt.init_state(param)
    elif layout == "shards":
        param = to_shards(dense, [4, 3, 3], "mod")
        state = opt.init_state(param, partition_strategy="mod")
    else:
        param = store_from(tmp_path / "w", dense, 3, "mod")
        state = opt.init_state(param, path=tmp_path / "opt")
    ids = np.array([0, 3, 4, 8])   # mod: shards 0, 0, 1, 2; the bad value is in the last shard
    opt.apply(param, ids, np.ones((4, 4), np.float32), state, partition_strategy="mod")
    snap = snapshot(param, state)
    g = np.ones((4, 4), np.float32)
    g[3, 2] = bad
    with pytest.raises(FloatingPointError, match=r"grad is not finite.*row 3, column 2 \(id 8\)"):
        opt.apply(param, ids, g, state, partition_strategy="mod")
    assert_unchanged(param, state, snap)
    if layout == "store":
        state.close()
        param.close()


@pytest.mark.kernel
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,hp,grad,what", [
    ("SGD", dict(lr=1e30), 1e10, "param"),                  # lr * g overflows float32
    ("Adagrad", dict(lr=0.1), 1e20, "slot 'accumulator'"),  # g * g overflows float32
    ("Adam", dict(lr=0.1), 1e20, "slot 'v'"),
], ids=["SGD", "Adagrad", "Adam"])
def test_overflowing_update_refused(name, hp, grad, what, dtype):
    w = initial(dtype, 2, n=6, dim=3)
    opt = make(name, hp)
    state = opt.init_state(w)
    snap = snapshot(w, state)
    g = np.full((2, 3), 0.5, dtype)
    g[1, 1] = grad
    if dtype == np.float64:   # the same update fits float64: arithmetic is in the param's dtype
        opt.apply(w, [1, 4], g, state)
        assert np.isfinite(w).all() and state.t == 1
        return
    with pytest.raises(FloatingPointError, match=rf"id 4 gives a non-finite {what} value"):
        opt.apply(w, [1, 4], g, state)
    assert_unchanged(w, state, snap)


@pytest.mark.kernel
def test_huge_lr_refused_on_biases():
    b = np.zeros(5, np.float32)
    opt = fs.SGD(lr=1e39)   # finite as a float, infinite as float32
    with pytest.raises(FloatingPointError, match="id 2"):
        opt.apply(b, [2], np.zeros(1, np.float32))   # inf * 0 = nan
    assert same_bits(b, np.zeros(5, np.float32))


@pytest.mark.kernel
def test_apply_grads_refusal_writes_neither():
    w = initial(np.float32, 2, n=8, dim=3)
    b = initial(np.float32, 1, n=8)
    opt = fs.Adam()
    sw, sb = opt.init_state(w), opt.init_state(b)
    ids = np.array([1, 6])
    good_w = np.ones((2, 3), np.float32)
    for gw, gb in [(good_w, np.array([1.0, np.nan], np.float32)),
                   (np.where(good_w > 0, np.inf, 0).astype(np.float32), np.ones(2, np.float32))]:
        snap_w, snap_b = snapshot(w, sw), snapshot(b, sb)
        grads = fs.SparseGrads(np.zeros((1, 3), np.float32), ids, gw, gb, None)
        with pytest.raises(FloatingPointError):
            opt.apply_grads(w, b, grads, (sw, sb))
        assert_unchanged(w, sw, snap_w)
        assert_unchanged(b, sb, snap_b)


# ---------------------------------------------------------------- validation

def test_bad_hyper_parameters():
    for cls, kw, exc, match in [
        (fs.SGD, dict(lr=0), ValueError, "lr must be > 0"),
        (fs.SGD, dict(lr=-0.1), ValueError, "lr must be > 0"),
        (fs.SGD, dict(lr=float("nan")), ValueError, "lr must be finite"),
        (fs.SGD, dict(lr=float("inf")), ValueError, "lr must be finite"),
        (fs.SGD, dict(lr=True), TypeError, "lr must be a real number"),
        (fs.SGD, dict(lr="0.1"), TypeError, "lr must be a real number"),
        (fs.SGD, dict(weight_decay=-1e-3), ValueError, "weight_decay must be >= 0"),
        (fs.Adagrad, dict(initial_accumulator_value=-1), ValueError,
         "initial_accumulator_value must be >= 0"),
        (fs.Adagrad, dict(eps=-1e-7), ValueError, "eps must be >= 0"),
        (fs.Adam, dict(beta1=1.0), ValueError, r"beta1 must lie in \[0, 1\)"),
        (fs.Adam, dict(beta2=-0.1), ValueError, r"beta2 must lie in \[0, 1\)"),
        (fs.Adam, dict(eps=0.0), ValueError, "eps must be > 0"),
        (fs.Adam, dict(lr=None), TypeError, "lr must be a real number"),
    ]:
        with pytest.raises(exc, match=match):
            cls(**kw)
    opt = fs.Adam()
    with pytest.raises(ValueError, match="lr must be > 0"):
        opt.lr = 0.0
    assert opt.lr == 0.001
    opt.lr = np.float32(0.5)
    assert opt.lr == 0.5 and type(opt.lr) is float


def test_repr_and_slots():
    assert repr(fs.SGD()) == "SGD(lr=0.1, weight_decay=0.0)"
    assert repr(fs.Adagrad()) == ("Adagrad(lr=0.1, initial_accumulator_value=0.1, eps=1e-07, "
                                  "weight_decay=0.0)")
    assert repr(fs.Adam(lr=0.01)) == ("Adam(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-08, "
                                      "weight_decay=0.0)")
    assert fs.SGD.slots == () and fs.Adagrad().slots == ("accumulator",)
    assert fs.Adam.slots == ("m", "v")
    st = fs.Adam().init_state(np.zeros(4))
    assert "t=0" in repr(st) and "('m', 'v')" in repr(st)


def test_bad_ids_and_grads():
    w = np.zeros((6, 2), np.float32)
    g2 = np.ones((2, 2), np.float32)
    opt = fs.Adagrad()
    st = opt.init_state(w)
    cases = [
        (dict(ids=[3, 1]), ValueError, r"sorted strictly increasing.*unsorted ids 3, 1"),
        (dict(ids=[2, 2]), ValueError, r"duplicate ids 2, 2 at indices 0, 1"),
        (dict(ids=[-1, 2]), ValueError, r"ids must lie in \[0, 6\).*found -1 at index 0"),
        (dict(ids=[2, 6]), ValueError, r"ids must lie in \[0, 6\).*found 6 at index 1"),
        (dict(ids=[[1, 2]]), ValueError, "ids must be 1-D"),
        (dict(ids=[1.0, 2.0]), TypeError, "ids must hold integers"),
        (dict(grad=np.ones((3, 2), np.float32)), ValueError, r"grad must have shape \(2, 2\)"),
        (dict(grad=np.ones((2, 3), np.float32)), ValueError, r"grad must have shape \(2, 2\)"),
        (dict(grad=np.ones(2, np.float32)), ValueError, r"grad must have shape \(2, 2\)"),
        (dict(grad=np.ones((2, 2))), TypeError, "grad must have param's dtype float32"),
        (dict(grad=np.ones((2, 2), np.int32)), TypeError, "grad must have param's dtype"),
    ]
    for kw, exc, match in cases:
        args = dict(ids=[1, 2], grad=g2)
        args.update(kw)
        with pytest.raises(exc, match=match):
            opt.apply(w, args["ids"], args["grad"], st)
    assert st.t == 0 and not w.any()
    assert (st.slots["accumulator"] == np.float32(0.1)).all()


def test_bad_params_and_states():
    w = np.zeros((6, 2), np.float32)
    g = np.ones((1, 2), np.float32)
    adam = fs.Adam()
    with pytest.raises(ValueError, match="Adam keeps slots .*pass the state"):
        adam.apply(w, [0], g)
    with pytest.raises(TypeError, match="state must be an OptimizerState"):
        adam.apply(w, [0], g, state={"m": w, "v": w})
    with pytest.raises(ValueError, match="state holds slots"):
        adam.apply(w, [0], g, state=fs.Adagrad().init_state(w))
    with pytest.raises(ValueError, match="does not match the layout its state"):
        adam.apply(w, [0], g, state=adam.init_state(np.zeros((7, 2), np.float32)))
    with pytest.raises(ValueError, match="does not match the layout its state"):
        adam.apply(w, [0], g, state=adam.init_state(np.zeros((6, 2))))
    shards = [np.zeros((3, 2), np.float32), np.zeros((3, 2), np.float32)]
    st_mod = adam.init_state(shards, partition_strategy="mod")
    with pytest.raises(ValueError, match="does not match the layout its state"):
        adam.apply(shards, [0], g, st_mod, partition_strategy="div")
    closed = adam.init_state(w)
    closed.close()
    with pytest.raises(ValueError, match="state is closed"):
        adam.apply(w, [0], g, closed)
    sgd = fs.SGD()
    ro = np.zeros((6, 2), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="param is read-only"):
        sgd.apply(ro, [0], g)
    with pytest.raises(ValueError, match="C-contiguous"):
        sgd.apply(np.zeros((2, 6), np.float32).T, [0], g)
    with pytest.raises(TypeError, match=r"param must be a numpy array .*in place.*list"):
        sgd.apply([[0.0, 0.0]], [0], g)
    with pytest.raises(TypeError, match="float32 or float64"):
        sgd.apply(np.zeros((6, 2), np.int64), [0], g)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        sgd.apply(np.zeros((6, 2, 1), np.float32), [0], g)
    with pytest.raises(ValueError, match="empty list of shards"):
        sgd.apply([], [0], g)
    with pytest.raises(ValueError, match="do not form a valid 'mod' layout"):
        sgd.apply([np.zeros((2, 2), np.float32), np.zeros((4, 2), np.float32)], [0], g)
    with pytest.raises(ValueError, match="partition_strategy must be 'mod' or 'div'"):
        sgd.apply(shards, [0], g, partition_strategy="rows")
    with pytest.raises(TypeError, match="share one dtype"):
        sgd.apply([np.zeros((3, 2), np.float32), np.zeros((3, 2))], [0], g)
    with pytest.raises(ValueError, match="same ndim and dim"):
        sgd.apply([np.zeros((3, 2), np.float32), np.zeros((3, 3), np.float32)], [0], g)
    with pytest.raises(TypeError, match="grads must be a SparseGrads"):
        sgd.apply_grads(w, np.zeros(6, np.float32), (np.array([0]), g, g[:, 0]))
    with pytest.raises(ValueError, match="states must be a pair"):
        sgd.apply_grads(w, np.zeros(6, np.float32),
                        fs.SparseGrads(None, np.array([0]), g, g[:, 0], None), states=None)
    assert not w.any()


@pytest.mark.kernel
def test_readonly_or_strided_grad_and_ids_accepted():
    w = np.zeros((6, 2), np.float32)
    ids = np.array([1, 4], np.int32)
    g = np.ones((2, 4), np.float32)[:, ::2]   # non-contiguous
    ids_ro = np.array([1, 4])
    ids_ro.flags.writeable = False
    g_ro = np.ones((2, 2), np.float32)
    g_ro.flags.writeable = False
    opt = fs.SGD(lr=1.0)
    opt.apply(w, ids, g)
    opt.apply(w, ids_ro, g_ro)
    assert w[[1, 4]].tolist() == [[-2, -2], [-2, -2]] and not w[[0, 2, 3, 5]].any()


# ---------------------------------------------------------------- persistence

@pytest.mark.kernel
@pytest.mark.parametrize("name,hp", OPTS3[1:], ids=OPT3_IDS[1:])
def test_checkpoint_resume_equals_uninterrupted(tmp_path, name, hp):
    steps = [[0, 3], [1, 3, 8], [2, 5, 6, 8], [0, 8], [3, 4], [1, 2, 3, 7, 8]]
    w0 = initial(np.float32, 2, n=9, dim=4)
    b0 = initial(np.float32, 1, n=9)
    gws = grads_for(steps, (4,), np.float32, seed=5)
    gbs = grads_for(steps, (), np.float32, seed=6)
    opt = make(name, hp)

    w, b = w0.copy(), b0.copy()
    sw, sb = opt.init_state(w), opt.init_state(b)
    for ids, gw, gb in zip(steps, gws, gbs):
        opt.apply(w, ids, gw, sw)
        opt.apply(b, ids, gb, sb)

    W = store_from(tmp_path / "w", w0, 2, "mod")
    B = store_from(tmp_path / "b", b0, 2, "mod")
    SW = opt.init_state(W, path=tmp_path / "opt_w")
    SB = opt.init_state(B, path=tmp_path / "opt_b")
    if name == "Adagrad":
        assert (SW.slots["accumulator"].to_numpy() == np.float32(0.5)).all()
    for ids, gw, gb in zip(steps[:3], gws[:3], gbs[:3]):
        opt.apply(W, ids, gw, SW)
        opt.apply(B, ids, gb, SB)
    for store, state in ((W, SW), (B, SB)):
        store.checkpoint(step=state.t)
        state.checkpoint()
        state.close()
        store.close()
        assert state.closed
    with pytest.raises(ValueError, match="closed"):
        SW.checkpoint()

    W = fs.ShardedMatrix.open(tmp_path / "w", "r+")
    B = fs.ShardedMatrix.open(tmp_path / "b", "r+")
    with opt.init_state(W, path=tmp_path / "opt_w") as SW, \
            opt.init_state(B, path=tmp_path / "opt_b") as SB:
        assert SW.t == 3 and SB.t == 3 and W.step == 3
        for ids, gw, gb in zip(steps[3:], gws[3:], gbs[3:]):
            opt.apply(W, ids, gw, SW)
            opt.apply(B, ids, gb, SB)
        assert SW.t == 6
        assert same_bits(W.to_numpy(), w) and same_bits(B.to_numpy(), b)
        for k in opt.slots:
            assert same_bits(SW.slots[k].to_numpy(), sw.slots[k])
            assert same_bits(SB.slots[k].to_numpy(), sb.slots[k])
    W.close()
    B.close()


@pytest.mark.kernel
def test_resume_checks(tmp_path):
    opt = fs.Adam()
    w = np.zeros((6, 2), np.float32)
    st = opt.init_state(w, path=tmp_path / "opt")
    assert st.path == tmp_path / "opt" and st.t == 0
    assert {p.name for p in (tmp_path / "opt").iterdir()} == {"m", "v", "state.json"}
    with pytest.raises(fs.StoreLockedError):
        opt.init_state(w, path=tmp_path / "opt")   # already open for writing
    st.close()
    with pytest.raises(ValueError, match="does not match param"):
        opt.init_state(np.zeros((7, 2), np.float32), path=tmp_path / "opt")
    with pytest.raises(ValueError, match="does not match param"):
        opt.init_state(np.zeros((6, 2)), path=tmp_path / "opt")
    with pytest.raises(ValueError, match="does not match param"):
        opt.init_state([np.zeros((3, 2), np.float32)] * 2, path=tmp_path / "opt")
    st = opt.init_state(w, path=tmp_path / "opt")   # resumes: same layout
    assert st.t == 0
    st.close()
    shutil.rmtree(tmp_path / "opt" / "v")
    with pytest.raises(ValueError, match=r"found slot stores \['m'\] but not all"):
        opt.init_state(w, path=tmp_path / "opt")


# ---------------------------------------------------------------- with a loss

@pytest.mark.kernel
@pytest.mark.parametrize("layout", ["array", "mod"])
def test_apply_grads_with_sampled_softmax(layout):
    rng = np.random.default_rng(7)
    n, dim, batch = 40, 8, 6
    w0 = (rng.standard_normal((n, dim)) * 0.1).astype(np.float32)
    b0 = (rng.standard_normal(n) * 0.1).astype(np.float32)
    labels = rng.integers(0, n, (batch, 1))
    inputs = rng.standard_normal((batch, dim)).astype(np.float32)
    opt = fs.Adam(lr=0.05, weight_decay=0.01)
    if layout == "array":
        w, b = w0.copy(), b0.copy()
        sw, sb = opt.init_state(w), opt.init_state(b)
    else:
        w, b = to_shards(w0, [14, 13, 13], "mod"), to_shards(b0, [14, 13, 13], "mod")
        sw = opt.init_state(w, partition_strategy="mod")
        sb = opt.init_state(b, partition_strategy="mod")
    ref_w, ref_b = w0.copy(), b0.copy()
    rsw, rsb = ref_slots("Adam", dict(lr=0.05), w0), ref_slots("Adam", dict(lr=0.05), b0)
    for t in range(1, 4):
        _, g = fs.sampled_softmax_loss_and_grads(w, b, labels, inputs, num_sampled=10,
                                                 num_classes=n, seed=t)
        assert g.ids.size > 1
        opt.apply_grads(w, b, g, (sw, sb))
        hp = dict(lr=0.05, weight_decay=0.01)
        ref_apply("Adam", hp, ref_w, rsw, g.ids, g.weights, t)
        ref_apply("Adam", hp, ref_b, rsb, g.ids, g.biases, t)
    assert sw.t == 3 and sb.t == 3
    dw = w if layout == "array" else to_dense(w, "mod")
    db = b if layout == "array" else to_dense(b, "mod")
    np.testing.assert_allclose(dw, ref_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(db, ref_b, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- kernels directly

@pytest.mark.kernel
@pytest.mark.parametrize("kind", [K.SGD, K.ADAGRAD, K.ADAM])
def test_kernel_counts_every_nonfinite_entry_and_writes_only_scratch(kind):
    rng = np.random.default_rng(11)
    n, k, dim = 50, 40, 7
    w = rng.standard_normal((n, dim)).astype(np.float32)
    s0 = np.abs(rng.standard_normal((n, dim))).astype(np.float32)
    s1 = np.abs(rng.standard_normal((n, dim))).astype(np.float32)
    rows = np.sort(rng.choice(n, k, replace=False)).astype(np.int64)
    pos = rng.permutation(k).astype(np.int64)
    g = rng.standard_normal((k, dim)).astype(np.float32)
    bad = rng.random((k, dim)) < 0.05
    g[bad] = np.nan
    outs = [np.zeros((k, dim), np.float32) for _ in range(3)]
    hp = np.array([0.1, 0.01, 1e-7, 0.9, 0.1, 0.999, 0.001], np.float32)
    before = [a.copy() for a in (w, s0, s1)]
    count = K.update_rows(kind, w, s0, s1, rows, pos, g, *outs, hp)
    assert count == bad.sum() > 0
    assert all(same_bits(a, b) for a, b in zip((w, s0, s1), before))
    assert (np.isnan(outs[0]) == bad).all()
    K.commit_rows({K.SGD: 0, K.ADAGRAD: 1, K.ADAM: 2}[kind], w, s0, s1, rows, pos, *outs)
    assert same_bits(w[rows], outs[0][pos])
    assert same_bits(np.delete(w, rows, 0), np.delete(before[0], rows, 0))
    if kind != K.SGD:
        assert same_bits(s0[rows], outs[1][pos])
    if kind == K.ADAM:
        assert same_bits(s1[rows], outs[2][pos])
    else:
        assert same_bits(s1, before[2])


@pytest.mark.kernel
def test_float32_params_compile_float32_kernels_only():
    w = np.zeros((4, 3), np.float32)
    for opt in (fs.SGD(), fs.Adagrad(), fs.Adam()):
        opt.apply(w, [1], np.ones((1, 3), np.float32), opt.init_state(w))
    for sig in K.update_rows.signatures:
        floats = {a.dtype for a in sig if hasattr(a, "dtype") and a.dtype.name.startswith("f")}
        assert len(floats) == 1   # never a float64 array (or scalar) beside float32 arrays
        assert not any(str(a) in ("float64", "float32") for a in sig)


# ---------------------------------------------------------------- misc state handling

@pytest.mark.kernel
def test_sgd_state_and_store_params(tmp_path):
    opt = fs.SGD(lr=1.0)
    st = opt.init_state(np.zeros(3), path=tmp_path / "sgd")
    assert st.slots == {} and st.t == 0 and not (tmp_path / "sgd").exists()
    st.checkpoint()
    w = np.zeros(3)
    opt.apply(w, [0, 2], np.ones(2), st)
    assert st.t == 1 and w.tolist() == [-1, 0, -1]
    st.close()

    store = store_from(tmp_path / "w", np.zeros((5, 2), np.float32), 2, "div")
    store.close()
    with pytest.raises(ValueError, match=r"param: ShardedMatrix\(.*\) is closed"):
        opt.apply(store, [0], np.ones((1, 2), np.float32))
    ro = fs.ShardedMatrix.open(tmp_path / "w", "r")
    with pytest.raises(ValueError, match=r"param\[0\] is read-only"):
        opt.apply(ro, [0], np.ones((1, 2), np.float32))
    st = fs.Adagrad().init_state(ro)   # a state needs no write access to the param
    assert [a.shape for a in st.slots["accumulator"]] == [(3, 2), (2, 2)]
    ro.close()

    mm = np.lib.format.open_memmap(tmp_path / "w.npy", mode="w+", dtype=np.float64, shape=(4,))
    opt.apply(mm, [3], np.ones(1))   # a plain np.memmap is updated in place too
    mm.flush()
    del mm
    assert np.load(tmp_path / "w.npy").tolist() == [0, 0, 0, -1]


@pytest.mark.kernel
def test_disk_state_for_a_shard_list(tmp_path):
    shards = [np.zeros((3, 2), np.float32), np.zeros((2, 2), np.float32)]
    opt = fs.Adam(lr=0.1)
    with opt.init_state(shards, path=tmp_path / "opt", partition_strategy="div") as st:
        for k in ("m", "v"):
            assert st.slots[k].partition_strategy == "div"
            assert st.slots[k].shard_sizes == [3, 2]
        opt.apply(shards, [1, 4], np.ones((2, 2), np.float32), st, partition_strategy="div")
        np.testing.assert_allclose(shards[0][1], -0.1, rtol=1e-5)
        np.testing.assert_allclose(shards[1][1], -0.1, rtol=1e-5)
        st.checkpoint()
    with pytest.raises(ValueError, match="does not match param"):
        opt.init_state(shards, path=tmp_path / "opt", partition_strategy="mod")
    with opt.init_state(shards, path=tmp_path / "opt", partition_strategy="div") as st:
        assert st.t == 1
        np.testing.assert_allclose(st.slots["m"].to_numpy()[[1, 4]], 0.1, rtol=1e-6)


@pytest.mark.kernel
def test_adam_bias_correction_follows_each_states_own_t():
    opt = fs.Adam(lr=0.1, beta1=0.5, beta2=0.5)
    a, b = np.zeros((2, 1)), np.zeros((2, 1))
    sa, sb = opt.init_state(a), opt.init_state(b)
    for _ in range(3):
        opt.apply(a, [0], np.ones((1, 1)), sa)
    opt.apply(b, [1], np.full((1, 1), 4.0), sb)   # b's first step: lr_t uses t = 1, not 4
    ref_b, slots = np.zeros((2, 1)), ref_slots("Adam", {}, np.zeros((2, 1)))
    ref_apply("Adam", dict(lr=0.1, beta1=0.5, beta2=0.5), ref_b, slots, np.array([1]),
              np.full((1, 1), 4.0), 1)
    np.testing.assert_allclose(b, ref_b, rtol=1e-14)
    np.testing.assert_allclose(b[1, 0], -0.1, rtol=1e-7)   # m_hat / sqrt(v_hat) = 1 (+ eps)
    assert sa.t == 3 and sb.t == 1
