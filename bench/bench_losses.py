"""Benchmark fastsampled's sampled softmax / NCE train steps (numpy and TensorFlow as reference).

Run::

    PYTHONPATH=/work/main python bench/bench_losses.py [--quick] [--out DIR]

Cases (medians of many timed calls after warm-up calls that absorb compilation):

(a) Headline: one whole train step ``fs.sampled_softmax_loss_and_grads`` (loss + every
    gradient as SparseGrads) *including* candidate sampling, B=1024, D=128, S=64, T=1 over
    V=10^6 float32 weights (normal * 0.05) with Zipf labels; median time, against TensorFlow
    2.21 CPU's 2.2-2.6 ms (measured earlier on a 2-core Zen 3 EPYC VM, not run here).
    Sampling either by a
    ``fs.LogUniformSampler`` object drawing S unique candidates each step (passed as
    ``sampled_values``) or by the default sampler (``sampled_values=None``, ``seed=None``).
    The step's two parts are also timed alone. Same for ``nce_loss_and_grads``; float64
    variant; V=10^7 variant (5 GB of float32 weights; full mode only).
(b) B=128, D=128, S=8192: FLOP rate of the loss+grads call (3 products, 3*2*B*S*D FLOPs) vs
    numpy's matmul FLOP rate on the same three products (``x @ Ws.T``, ``G @ Ws``, ``G.T @ x``,
    numpy's default BLAS threads) measured in the same run.
(c) A pure-numpy reference train step (np.take gather, matmuls, softmax, np.add.at scatter
    into unique ids), given the same sampled candidates, as a baseline column; its loss and
    gradients are checked against fastsampled's once.
(d) The headline again while a background process burns one of the cores (busy loop).

Every step cycles through a pool of different label/input batches so the gathered rows are
not all cache-hot from the previous call.
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (BUSY_OTHERS, CoreBurner, OtherLoad, arg_parser, disturbed,  # noqa: E402
                     load1, log, machine_info, mem_available, out_dir_for, retry_if_busy,
                     section, summarize, timeit_many, wait_for_quiet, write_results, zipf_labels)

try:
    import fastsampled as fs
except Exception as e:  # pragma: no cover - reported, not raised
    print(f"cannot import fastsampled ({type(e).__name__}: {e}); set PYTHONPATH or pip install it")
    sys.exit(2)

FLT_MAX = float(np.finfo(np.float32).max)
TF_STEP_MS = (2.2, 2.6)  # TF 2.21 CPU, this machine, B=1024 D=128 S=64 (measured earlier)
FLOP_SETTLE_S = 0.25   # untimed pause before each block of the FLOP section (see timeit_many)
POOL = 16  # distinct (labels, inputs) batches cycled through
RETRY = {"retries": 0, "wait": 0.0}  # remeasure a group disturbed by other processes (main sets)

COLUMNS = ["case", "V", "B", "S", "dtype", "median_ms", "p10_ms", "p90_ms", "reps", "GFLOP/s",
           "numpy_ref_ms", "vs_TF", "others_cpu", "disturbed"]


# --------------------------------------------------------------------------- data

def make_weights(V, D, dtype, seed=0, chunk=1 << 22):
    """``normal * 0.05`` weights of shape (V, D), generated in place chunk by chunk."""
    rng = np.random.default_rng(seed)
    W = np.empty((V, D), dtype)
    flat = W.reshape(-1)
    for lo in range(0, flat.size, chunk):
        part = flat[lo:lo + chunk]
        rng.standard_normal(out=part, dtype=dtype)
        part *= dtype(0.05)
    b = (rng.standard_normal(V, dtype=dtype) * dtype(0.01)).astype(dtype)
    return W, b


def make_batches(V, B, D, dtype, seed=1, pool=POOL):
    rng = np.random.default_rng(seed)
    labels = [zipf_labels(rng, V, (B, 1)) for _ in range(pool)]
    inputs = [rng.standard_normal((B, D)).astype(dtype) for _ in range(pool)]
    return labels, inputs


class Cycle:
    """Index that advances on every call (so each timed step gets the next batch)."""

    def __init__(self, n):
        self.n, self.i = n, -1

    def __call__(self):
        self.i = (self.i + 1) % self.n
        return self.i


# --------------------------------------------------------------------------- numpy reference

def numpy_softmax_step(W, b, labels, x, s, tec, sec, remove_accidental_hits=True):
    """Pure-numpy sampled softmax train step (num_true=1), TensorFlow's semantics.

    Returns ``(loss (B,), d_inputs (B, D), ids (K,) sorted unique, d_weights (K, D),
    d_biases (K,))`` -- the same content as fastsampled's ``(loss, SparseGrads)``.
    """
    dt = x.dtype
    B = x.shape[0]
    lab = labels[:, 0]
    ids = np.concatenate([lab, s])
    rows = np.take(W, ids, axis=0).astype(dt, copy=False)
    brows = np.take(b, ids).astype(dt, copy=False)
    w_true, w_s = rows[:B], rows[B:]
    true_logit = np.einsum("ij,ij->i", x, w_true) + brows[:B] - np.log(tec[:, 0].astype(dt))
    logits = x @ w_s.T
    logits += brows[B:] - np.log(sec.astype(dt))
    if remove_accidental_hits:
        # unique candidates: a label occurs at most once among them (TF keeps the last one)
        logits[lab[:, None] == s[None, :]] -= dt.type(FLT_MAX)
    m = np.maximum(true_logit, logits.max(axis=1))
    e_true = np.exp(true_logit - m)
    e_s = np.exp(logits - m[:, None])
    z = e_true + e_s.sum(axis=1)
    loss = np.log(z) + m - true_logit
    d_true = e_true / z - 1
    d_s = e_s / z[:, None]
    d_x = d_true[:, None] * w_true + d_s @ w_s
    g_rows = np.concatenate([d_true[:, None] * x, d_s.T @ x])
    g_b = np.concatenate([d_true, d_s.sum(axis=0)])
    uid, inv = np.unique(ids, return_inverse=True)
    d_w = np.zeros((uid.size, x.shape[1]), dt)
    np.add.at(d_w, inv, g_rows)
    d_b = np.zeros(uid.size, dt)
    np.add.at(d_b, inv, g_b)
    return loss, d_x, uid, d_w, d_b


def check_reference(W, b, lab, x, sv):
    """Max relative differences between fastsampled and the numpy reference on one step."""
    loss, g = fs.sampled_softmax_loss_and_grads(W, b, lab, x, sv[0].size, W.shape[0],
                                                sampled_values=sv)
    r_loss, r_dx, r_ids, r_dw, r_db = numpy_softmax_step(W, b, lab, x, *sv)
    if not np.array_equal(g.ids, r_ids):
        return {"ids_equal": False}

    def rel(a, r):
        return float(np.max(np.abs(a - r)) / max(np.max(np.abs(r)), 1e-30))
    return {"ids_equal": True, "loss": rel(loss, r_loss), "inputs": rel(g.inputs, r_dx),
            "weights": rel(g.weights, r_dw), "biases": rel(g.biases, r_db)}


# --------------------------------------------------------------------------- rows

def _row(case, V, B, S, dtype, t, gflops=None, ref_ms=None, vs_tf=True, own_load=0.0):
    """One result row; ``own_load``: cores this benchmark loaded itself (the burner process),
    not counted as disturbance."""
    med = t["median"] * 1e3
    return {"case": case.strip(), "V": V, "B": B, "S": S, "dtype": np.dtype(dtype).name,
            "median_ms": med, "p10_ms": t["p10"] * 1e3, "p90_ms": t["p90"] * 1e3, "reps": t["n"],
            "GFLOP/s": gflops, "numpy_ref_ms": ref_ms,
            "vs_TF": (f"{TF_STEP_MS[0] / med:.1f}-{TF_STEP_MS[1] / med:.1f}x" if vs_tf else None),
            "others_cpu": t.get("others_cpu"), "disturbed": disturbed(t, own_load=own_load),
            "load1": t.get("load1"), "attempts": t.get("attempts", 1)}


def _error_row(case, e):
    log(f"FAILED: {type(e).__name__}: {e}")
    return {"case": case, "error": f"{type(e).__name__}: {str(e)[:60]}"}


def _timed_group(rows, fns, reps, warmup, budget, block=1, cfg=None, settle=0.0):
    """Interleaved timings of ``fns``; drops (and reports) any callable whose warm-up fails."""
    ok = {}
    for name, fn in fns.items():
        try:
            fn()
            ok[name] = fn
        except Exception as e:
            rows.append(_error_row(name, e))
    if not ok:
        return {}
    try:
        return retry_if_busy(lambda: timeit_many(ok, reps, warmup, budget, block, settle=settle),
                             RETRY["retries"], RETRY["wait"])
    except Exception as e:
        rows.append(_error_row(", ".join(ok), e))
        return {}


def _step_fn(f, W, b, labels, inputs, S, V, sampler=None, pre_sv=None, default_sampler=False):
    """One train step on the next batch of the pool.

    ``sampler``: a sampler object draws S unique candidates in the step; ``pre_sv``: candidates
    drawn beforehand; ``default_sampler``: ``sampled_values=None`` (fastsampled's default
    log-uniform sampler, seed=None).
    """
    c = Cycle(len(labels))
    if sampler is not None:
        def step():
            i = c()
            return f(W, b, labels[i], inputs[i], S, V,
                     sampled_values=sampler(labels[i], 1, S, True))
    elif pre_sv is not None:
        def step():
            i = c()
            return f(W, b, labels[i], inputs[i], S, V, sampled_values=pre_sv[i])
    else:
        assert default_sampler
        def step():
            i = c()
            return f(W, b, labels[i], inputs[i], S, V)
    return step


def _numpy_fn(W, b, labels, inputs, pre_sv):
    c = Cycle(len(labels))

    def step():
        i = c()
        return numpy_softmax_step(W, b, labels[i], inputs[i], *pre_sv[i])
    return step


def _sampler_fn(sampler, labels, S):
    c = Cycle(len(labels))
    return lambda: sampler(labels[c()], 1, S, True)


LOSSES = {"softmax": "sampled_softmax_loss_and_grads", "nce": "nce_loss_and_grads"}


# --------------------------------------------------------------------------- (a), (c), (d)

def bench_steps(rows, cfg, V, dtype, tag, which=("softmax", "nce"), parts=True,
                under_load=False, ref_check=None):
    """Whole-step timings at B=1024, D=128, S=64 for one weights size and dtype.

    All the step variants of one call are timed interleaved (round robin), so their ratios
    hold even while the shared machine's load drifts.
    """
    B, D, S = 1024, 128, 64
    section(f"train step {tag}: V={V:.0e}, B={B}, D={D}, S={S}, {np.dtype(dtype).name}")
    t0 = time.perf_counter()
    W, b = make_weights(V, D, dtype)
    labels, inputs = make_batches(V, B, D, dtype)
    log(f"weights ready ({W.nbytes / 2**30:.2f} GiB) in {time.perf_counter() - t0:.1f} s")
    # Candidates drawn beforehand for the "loss+grads only" and numpy rows (same distribution).
    pre = fs.LogUniformSampler(V, seed=7)
    pre_sv = [pre(labels[i], 1, S, True) for i in range(POOL)]
    if ref_check is not None:
        try:
            ref_check.update(check_reference(W, b, labels[0], inputs[0], pre_sv[0]))
        except Exception as e:
            ref_check["error"] = f"{type(e).__name__}: {e}"
        log(f"fastsampled vs numpy reference (max rel diff): {ref_check}")

    # fastsampled's variants interleaved call by call (all on Numba's threads); the numpy
    # reference (on BLAS threads) separately right after, see timeit_many on mixing pools.
    fns = {}
    if parts:
        fns["sampler"] = _sampler_fn(fs.LogUniformSampler(V, seed=11), labels, S)
    for kind in which:
        f = getattr(fs, LOSSES[kind])
        if parts:
            fns[f"{kind} pre"] = _step_fn(f, W, b, labels, inputs, S, V, pre_sv=pre_sv)
        fns[f"{kind} obj"] = _step_fn(f, W, b, labels, inputs, S, V,
                                      sampler=fs.LogUniformSampler(V, seed=13))
        fns[f"{kind} none"] = _step_fn(f, W, b, labels, inputs, S, V, default_sampler=True)
    res = _timed_group(rows, fns, cfg["step_reps"], 5, cfg["step_seconds"])
    res.update(_timed_group(rows, {"numpy": _numpy_fn(W, b, labels, inputs, pre_sv)},
                            max(10, cfg["step_reps"] // 4), 3, cfg["step_seconds"] / 4))
    ref_ms = res["numpy"]["median"] * 1e3 if "numpy" in res else None

    def add(name, case, **kw):
        if name in res:
            rows.append(_row(case, V, B, S, dtype, res[name], **kw))
            log(f"{case}: {res[name]['median'] * 1e3:.3f} ms")

    add("numpy", f"numpy reference softmax step, pre-drawn cands {tag}")
    add("sampler", f"LogUniformSampler unique S={S} only {tag}", vs_tf=False)
    for kind in which:
        ref = ref_ms if kind == "softmax" else None
        add(f"{kind} pre", f"{kind} loss+grads only, pre-drawn cands {tag}", ref_ms=ref,
            vs_tf=False)
        add(f"{kind} obj", f"{kind} STEP: LogUniformSampler obj + loss+grads {tag}", ref_ms=ref)
        add(f"{kind} none", f"{kind} STEP: sampled_values=None {tag}", ref_ms=ref)

    if parts:
        _bench_after_blas(rows, cfg, W, b, labels, inputs, V, S, dtype, tag)
    if under_load:
        _bench_under_load(rows, cfg, W, b, labels, inputs, pre_sv, V, S, dtype, tag)
    del W, b


def _bench_after_blas(rows, cfg, W, b, labels, inputs, V, S, dtype, tag):
    """The headline step when a numpy matmul (default BLAS threads) ran just before it.

    As in a model whose previous layer is a numpy/BLAS product: only the step is timed.
    """
    B, D = inputs[0].shape
    rng = np.random.default_rng(9)
    A = rng.standard_normal((B, D)).astype(dtype)
    M = rng.standard_normal((D, D)).astype(dtype)
    step = _step_fn(fs.sampled_softmax_loss_and_grads, W, b, labels, inputs, S, V,
                    sampler=fs.LogUniformSampler(V, seed=19))
    try:
        for _ in range(5):
            A @ M
            step()
        times = []
        load = OtherLoad().start()
        t_start = time.perf_counter()
        for _ in range(cfg["step_reps"]):
            A @ M
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
            if time.perf_counter() - t_start > cfg["step_seconds"] / 4:
                break
        st = summarize(times)
        st.update(others_cpu=load.stop(), load1=load1())
        rows.append(_row(f"softmax STEP right after a numpy {B}x{D}@{D}x{D} matmul {tag}", V, B,
                         S, dtype, st))
        log(f"softmax step right after a numpy matmul: {st['median'] * 1e3:.3f} ms")
    except Exception as e:
        rows.append(_error_row("after BLAS", e))


def _blocks(fn, burner, blocks, per_block):
    """Time ``fn`` in alternating blocks with the burner running and paused."""
    loaded, idle = [], []
    la, li = OtherLoad(), OtherLoad()
    busy_a = busy_i = wall_a = wall_i = 0.0
    for _ in range(blocks):
        for on in (True, False):
            (burner.resume if on else burner.pause)()
            ld = (la if on else li).start()
            t_block = time.perf_counter()
            for _ in range(per_block):
                t0 = time.perf_counter()
                fn()
                (loaded if on else idle).append(time.perf_counter() - t0)
            w = time.perf_counter() - t_block
            o = ld.stop() or 0.0
            if on:
                busy_a += o * w
                wall_a += w
            else:
                busy_i += o * w
                wall_i += w
    burner.resume()
    sa, si = summarize(loaded), summarize(idle)
    sa["others_cpu"] = round(busy_a / max(wall_a, 1e-9), 2)
    si["others_cpu"] = round(busy_i / max(wall_i, 1e-9), 2)
    sa["load1"] = si["load1"] = load1()
    return sa, si


def _bench_under_load(rows, cfg, W, b, labels, inputs, pre_sv, V, S, dtype, tag):
    import numba

    section("headline under load: a background busy loop on one core, on/off in alternate "
            "blocks")
    B = inputs[0].shape[0]
    blocks, per_block = cfg["load_blocks"], cfg["load_per_block"]
    f = fs.sampled_softmax_loss_and_grads
    nthreads = numba.get_num_threads()
    thread_counts = [nthreads] + ([1] if nthreads > 1 else [])
    try:
        with CoreBurner() as burner:
            for threads in thread_counts:
                numba.set_num_threads(threads)
                try:
                    fn = _step_fn(f, W, b, labels, inputs, S, V,
                                  sampler=fs.LogUniformSampler(V, seed=17))
                    for _ in range(5):
                        fn()
                    sa, si = _blocks(fn, burner, blocks, per_block)
                finally:
                    numba.set_num_threads(nthreads)
                for st, what, own in ((sa, "UNDER LOAD", 1.0), (si, "same blocks, no load", 0.0)):
                    rows.append(_row(f"softmax STEP {what}, numba threads={threads} {tag}", V, B, S,
                                     dtype, st, own_load=own))
                log(f"softmax step, {threads} numba threads: {sa['median'] * 1e3:.3f} ms loaded, "
                    f"{si['median'] * 1e3:.3f} ms unloaded")
            fn = _numpy_fn(W, b, labels, inputs, pre_sv)
            fn()
            sa, si = _blocks(fn, burner, max(2, blocks // 2), max(3, per_block // 4))
            for st, what, own in ((sa, "UNDER LOAD", 1.0), (si, "same blocks, no load", 0.0)):
                rows.append(_row(f"numpy reference softmax step {what} {tag}", V, B, S, dtype, st,
                                 own_load=own))
            log(f"numpy reference: {sa['median'] * 1e3:.3f} ms loaded, "
                f"{si['median'] * 1e3:.3f} ms unloaded")
    except Exception as e:
        rows.append(_error_row("under load", e))


# --------------------------------------------------------------------------- (b)

def bench_flops(rows, cfg, V):
    """FLOP rate of loss+grads vs numpy's matmuls, all timed interleaved."""
    B, D, S = 128, 128, 8192
    dtype = np.float32
    section(f"FLOP rate: B={B}, D={D}, S={S}, V={V:.0e}, float32")
    flops = 3 * 2 * B * S * D
    W, b = make_weights(V, D, dtype)
    labels, inputs = make_batches(V, B, D, dtype)
    pre = fs.LogUniformSampler(V, seed=21)
    pre_sv = [pre(labels[i], 1, S, True) for i in range(POOL)]

    # numpy on the same three products, operands already gathered and contiguous.
    rng = np.random.default_rng(5)
    Ws = np.ascontiguousarray(W[pre_sv[0][0]])
    x = inputs[0]
    G = rng.standard_normal((B, S)).astype(dtype)

    def products():
        x @ Ws.T
        G @ Ws
        G.T @ x

    fns = {"matmul": products, "numpy": _numpy_fn(W, b, labels, inputs, pre_sv)}
    for kind in ("softmax", "nce"):
        f = getattr(fs, LOSSES[kind])
        fns[f"{kind} pre"] = _step_fn(f, W, b, labels, inputs, S, V, pre_sv=pre_sv)
        fns[f"{kind} obj"] = _step_fn(f, W, b, labels, inputs, S, V,
                                      sampler=fs.LogUniformSampler(V, seed=23))
    res = _timed_group(rows, fns, cfg["flop_reps"], 2, cfg["flop_seconds"], block=cfg["flop_block"],
                       settle=FLOP_SETTLE_S)

    def rate(name):
        return flops / res[name]["median"] / 1e9 if name in res else None

    np_rate = rate("matmul")
    ref_ms = res["numpy"]["median"] * 1e3 if "numpy" in res else None
    if "matmul" in res:
        rows.append(_row("numpy matmuls x@Ws.T, G@Ws, G.T@x (gathered)", V, B, S, dtype,
                         res["matmul"], gflops=np_rate, vs_tf=False))
        log(f"numpy 3 matmuls: {res['matmul']['median'] * 1e3:.3f} ms = {np_rate:.1f} GFLOP/s")
    if "numpy" in res:
        rows.append(_row("numpy reference softmax step, pre-drawn cands", V, B, S, dtype,
                         res["numpy"], gflops=rate("numpy"), vs_tf=False))
        log(f"numpy reference step: {ref_ms:.3f} ms")
    for kind in ("softmax", "nce"):
        name = f"{kind} pre"
        if name in res:
            r = rate(name)
            ratio = r / np_rate if np_rate else None
            pct = f": {100 * ratio:.0f}% of numpy" if ratio else ""
            rows.append(_row(f"{kind} loss+grads, pre-drawn cands{pct}", V, B, S, dtype, res[name],
                             gflops=r, ref_ms=ref_ms if kind == "softmax" else None,
                             vs_tf=False))
            log(f"{kind} loss+grads: {res[name]['median'] * 1e3:.3f} ms = {r:.1f} GFLOP/s{pct}")
        name = f"{kind} obj"
        if name in res:
            rows.append(_row(f"{kind} STEP incl. LogUniformSampler obj", V, B, S, dtype, res[name],
                             gflops=rate(name), vs_tf=False))
            log(f"{kind} whole step incl. sampling: {res[name]['median'] * 1e3:.3f} ms")
    del W, b


# --------------------------------------------------------------------------- main

def main(argv=None):
    args = arg_parser(__doc__.splitlines()[0]).parse_args(argv)
    if args.quick:
        cfg = dict(step_reps=60, step_seconds=3.0, flop_reps=2, flop_block=4, flop_seconds=4.0,
                   load_blocks=4, load_per_block=15, big_V=None)
    else:
        cfg = dict(step_reps=500, step_seconds=40.0, flop_reps=10, flop_block=6, flop_seconds=40.0,
                   load_blocks=20, load_per_block=30, big_V=10**7)
    RETRY.update(retries=0 if args.quick else 2, wait=max(args.wait_quiet, 0 if args.quick else 60))
    rows, notes, ref_check = [], [], {}
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    busy_before = wait_for_quiet(args.wait_quiet)
    V = 10**6
    bench_steps(rows, cfg, V, np.float32, "", under_load=True, ref_check=ref_check)
    bench_steps(rows, cfg, V, np.float64, "[f64]", which=("softmax",), parts=False)
    bench_flops(rows, cfg, V)
    if cfg["big_V"]:
        need = cfg["big_V"] * 128 * 4 * 1.1
        avail = mem_available()
        if avail is not None and avail < need:
            notes.append(f"V={cfg['big_V']:.0e} skipped: {avail / 2**30:.1f} GiB available, "
                         f"{need / 2**30:.1f} GiB needed")
        else:
            try:
                bench_steps(rows, cfg, cfg["big_V"], np.float32, "[V=1e7]", parts=False)
            except MemoryError as e:
                rows.append(_error_row("V=1e7", e))
    else:
        notes.append("V=1e7 variant skipped in --quick mode")
    notes += [
        "STEP rows = one whole train step (candidate sampling + loss + all gradients as "
        "SparseGrads), median; vs_TF = TensorFlow's time over ours, from TensorFlow 2.21 CPU's "
        "2.2-2.6 ms (measured earlier on a 2-core Zen 3 EPYC VM, not run here)",
        "'pre-drawn cands' rows pass sampled_values drawn beforehand (no sampling in the timing)",
        "sampled_values=None rows use the default log-uniform sampler with seed=None "
        "(fresh OS entropy per call), as TF users call it",
        "numpy_ref_ms = pure-numpy step (np.take, BLAS matmuls, softmax, np.add.at into unique "
        "ids) on the same pre-drawn candidates; numpy uses its default BLAS threads",
        f"fastsampled vs numpy reference, max |diff|/max|ref| on one step: {ref_check}",
        "FLOP rows: 3*2*B*S*D FLOPs per call; numpy row times x@Ws.T, G@Ws, G.T@x on "
        "pre-gathered contiguous Ws",
        "fastsampled rows of one section are timed interleaved call by call (round robin), so "
        "their ratios are robust to load drift; the numpy reference right after them; the FLOP "
        f"section interleaves numpy and fastsampled in blocks of {cfg['flop_block']} calls, "
        f"each block after an untimed {FLOP_SETTLE_S:g} s pause: OpenBLAS's workers spin ~0.1 s "
        "after a call and would otherwise slow the next block of Numba's threads (that "
        "effect is measured on its own in the 'right after a numpy matmul' row)",
        f"disturbed = yes: measured while other processes used > {BUSY_OTHERS} cores "
        "(others_cpu; under-load rows discount their own burner's core): rerun on a quiet "
        "machine for a clean figure",
        "others_cpu = cores used by other processes while timing (0 = quiet machine); a group "
        f"disturbed by > {BUSY_OTHERS} cores is remeasured up to {RETRY['retries']} times after "
        f"waiting up to {RETRY['wait']:g} s for quiet (JSON field 'attempts')",
        "'right after a numpy matmul' row: each step follows a small numpy product on BLAS's "
        "default threads, as in a model whose previous layer is a BLAS matmul",
        "under-load rows: a spawned process spins a busy loop on one core, switched on and off "
        f"in alternate blocks of {cfg['load_per_block']} steps ({cfg['load_blocks']} blocks each)",
        f"batches cycle through a pool of {POOL} different label/input sets",
        f"loadavg before run: {list(load_before)}; CPUs busy with other work just before: "
        f"{busy_before}; wall time {time.perf_counter() - t_start:.1f} s",
    ]
    meta = {"quick": args.quick, "config": cfg, "cpu_busy_before": busy_before, "notes": notes,
            "reference_check": ref_check}
    write_results("losses", rows, meta, out_dir_for(args), COLUMNS, machine_info())
    return 0


if __name__ == "__main__":
    sys.exit(main())
