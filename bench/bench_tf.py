"""Benchmark fastsampled.tf and fastsampled.keras inside TensorFlow models, against TF's own op.

Run::

    PYTHONPATH=/path/to/repo python bench/bench_tf.py [--quick] [--out DIR] [--wait-quiet S]

Sections:

1. ``step``: one process, interleaved in blocks of 5 calls, medians: a ``tf.function`` training
   step of a small MLP body (64 -> 256 -> 128, ReLU) ending in an output layer over V=10^6
   classes, B=1024, D=128, S=64 and again with S=1024, float32, SGD (Keras's ``SGD`` for
   TensorFlow variables, fastsampled's sparse SGD for the head), one learning rate:

   - ``body``: the body with a trivial loss (``mean(hidden^2)``), no output layer;
   - ``tf.nn``: ``tf.nn.sampled_softmax_loss`` on a ``tf.Variable`` (V, D) and biases;
   - ``fastsampled.tf``: the same step with ``fastsampled.tf.sampled_softmax_loss``;
   - ``keras layer``: ``fastsampled.keras.SampledSoftmax`` over an in-RAM head (weights and
     sparse SGD owned by fastsampled), driven by the same kind of ``tf.function`` step.

   The output layer's share of a step is its time minus ``body``'s. The same three output
   layers also run ``alone``: on a fixed hidden batch (a ``tf.Variable``), its gradient
   computed and the layer's weights updated, no body; TensorFlow runs independent ops of a
   step side by side, so a layer can cost more alone than its share of a step. Beside them,
   the same work at the numpy level (no TensorFlow): ``fs.sampled_softmax_loss_and_grads`` on the
   gathered rows' sizes and ``head.train_step``, and the bridge's own pieces timed alone: a
   ``tf.numpy_function`` round trip carrying the step's arrays, and a Keras SGD update of the
   variable from ``IndexedSlices`` over the step's rows (made, as in a step, as the gradient
   of a ``tf.gather``: Keras's SGD densifies slices it is handed in some other forms).

   The ``floor`` variants are steps whose output layer does only what some kind of
   implementation cannot avoid (``FLOORS`` below says what each keeps): their share bounds
   the share any implementation of that kind can reach, so ``tf.nn``'s share over theirs is
   the largest ratio such an implementation can show on the machine.
2. ``memory``: V=10^7, a fresh process each, 30 steps: TF's op on a (V, D) ``tf.Variable``
   against the Keras layer over a memory-mapped head (weights on disk under a temporary
   directory). Reported: anonymous RSS (``RssAnon``) after training, and peak RSS.
3. ``exact``: every shared TensorFlow reference case of the losses, eagerly and inside
   ``tf.function``: the largest error of the loss and of each gradient over TensorFlow's
   tolerance bound (``tests/tf_cases.py``; <= 1 passes).
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import (arg_parser, child_report, disturbed, log, machine_info,  # noqa: E402
                     out_dir_for, run_child, section, timeit_many, wait_for_quiet,
                     write_results)

B, D, D_IN, HID = 1024, 128, 64, 256
LR = 0.1
COLUMNS = ["section", "case", "V", "S", "median_ms", "p10_ms", "p90_ms", "n", "share_ms", "ratio",
           "value", "unit", "others_cpu", "disturbed"]
FULL = dict(V=10**6, S=[64, 1024], rounds=60, seconds=90.0, mem_V=10**7, mem_steps=30)
QUICK = dict(V=10**5, S=[64], rounds=10, seconds=15.0, mem_V=10**5, mem_steps=5)


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    return tf


def _batches(V, n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.normal(size=(B, D_IN)).astype(np.float32)
        y = np.minimum(rng.zipf(1.2, size=(B, 1)) - 1, V - 1).astype(np.int64)
        out.append((x, y))
    return out


def _body(tf, seed):
    import keras
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((D_IN,)), keras.layers.Dense(HID, activation="relu"),
                             keras.layers.Dense(D)])


def _output_variables(tf, V, rng):
    """The output layer's (V, D) weights and (V,) biases as ``tf.Variable`` s."""
    return (tf.Variable(rng.normal(0, D ** -0.5, (V, D)).astype(np.float32)),
            tf.Variable(np.zeros(V, np.float32)))


def make_step(kind, V, S, seed=0, path=None):
    """A ``tf.function`` training step ``step(x, y) -> loss`` of one kind of output layer."""
    tf = _tf()
    import keras
    import fastsampled as fs
    alone = kind.endswith(" alone")
    kind = kind.removesuffix(" alone")
    body = _body(tf, seed)
    opt = keras.optimizers.SGD(LR)
    if kind in ("tf.nn", "fastsampled.tf"):
        w, b = _output_variables(tf, V, np.random.default_rng(seed))
        variables = body.trainable_variables + [w, b]
        if kind == "tf.nn":
            loss_fn = tf.nn.sampled_softmax_loss
        else:
            import fastsampled.tf as fstf
            loss_fn = fstf.sampled_softmax_loss

        def out_loss(h, y):
            return tf.reduce_mean(loss_fn(weights=w, biases=b, labels=y, inputs=h,
                                          num_sampled=S, num_classes=V))
    elif kind == "keras layer":
        from fastsampled.keras import SampledSoftmax
        head = fs.SampledSoftmaxHead(V, D, num_sampled=S, optimizer="sgd", lr=LR, seed=seed,
                                     path=path)
        layer = SampledSoftmax(head)
        variables = body.trainable_variables

        def out_loss(h, y):
            return tf.reduce_mean(layer([h, y], training=True))
    elif kind in FLOORS:
        variables, out_loss = _floor(tf, kind, V, S, seed, body)
    else:
        variables = body.trainable_variables

        def out_loss(h, y):
            return tf.reduce_mean(h * h)

    if alone:       # the output layer on a fixed hidden batch: its gradient, and its update
        hidden = tf.Variable(np.random.default_rng(seed).normal(size=(B, D)).astype(np.float32))
        own = [v for v in variables if all(v is not u for u in body.trainable_variables)]

        @tf.function
        def step_alone(x, y):
            with tf.GradientTape() as tape:
                loss = out_loss(hidden, y)
            grads = tape.gradient(loss, [hidden] + own)
            if own:
                opt.apply_gradients(zip(grads[1:], own))
            return loss + tf.reduce_sum(grads[0][0])
        return step_alone

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = out_loss(body(x), y)
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables))
        return loss
    return step


FLOORS = {
    "floor: sampler, gathers, Keras update":
        "what any drop-in over tf.Variables and Keras's SGD still runs in TensorFlow: the "
        "candidate sampler, the gathers of the B+S rows and biases, Keras's sparse update of "
        "their IndexedSlices gradient; no products, no loss",
    "floor: the same and an empty crossing":
        "the row above and one empty tf.numpy_function carrying the fused kernel's arrays "
        "(hidden, rows, biases in; loss and the three gradients out, zeros)",
    "floor: products in TensorFlow":
        "the gathers, the three matrix products (logits, their gradient to the hidden layer and "
        "to the rows) and Keras's update, computed by TensorFlow; no sampler, softmax, log-Q or "
        "accidental hits (loss 0.5 * sum(c * logits**2), so the hidden layer's gradient waits "
        "for the logits)",
    "floor: the Keras layer's crossing":
        "one empty tf.numpy_function carrying what the Keras layer must cross (hidden and labels "
        "in; loss and the hidden layer's gradient out, zeros), no products, no update",
}


def _floor(tf, kind, V, S, seed, body):
    """A lower bound's output layer: the part of a step some kind of implementation cannot
    avoid (``FLOORS`` says which). Returns ``(variables, out_loss)``."""
    rng = np.random.default_rng(seed)
    variables = list(body.trainable_variables)
    if kind == "floor: the Keras layer's crossing":
        def zeros(h, y):
            return np.zeros(h.shape[0], np.float32), np.zeros_like(h)

        def out_loss(h, y):
            @tf.custom_gradient
            def layer(h):
                loss, dh = tf.numpy_function(zeros, [h, y], [tf.float32] * 2, stateful=False)
                return loss, lambda g: dh * g[:, None]
            return tf.reduce_mean(layer(h)) + tf.reduce_mean(h * h)
        return variables, out_loss

    w, b = _output_variables(tf, V, rng)
    variables += [w, b]
    fixed = tf.constant(rng.choice(V, S, replace=False).astype(np.int64))
    c = tf.constant(rng.uniform(0, 1.0 / B, (B, S)).astype(np.float32))

    def zeros(h, rows, biases):
        return (np.zeros(h.shape[0], np.float32), np.zeros_like(h), np.zeros_like(rows),
                np.zeros_like(biases))

    def out_loss(h, y):
        if kind == "floor: products in TensorFlow":
            sampled = fixed
        else:
            sampled, _, _ = tf.random.log_uniform_candidate_sampler(
                y, 1, S, unique=True, range_max=V, seed=seed)
        ids = tf.concat([tf.reshape(y, [-1]), sampled], 0)
        rows, biases = tf.gather(w, ids), tf.gather(b, ids)
        if kind == "floor: sampler, gathers, Keras update":
            return tf.reduce_mean(h * h) + 1e-3 * (tf.reduce_sum(rows) + tf.reduce_sum(biases))
        if kind == "floor: the same and an empty crossing":
            @tf.custom_gradient
            def layer(h, rows, biases):
                loss, dh, dr, db = tf.numpy_function(zeros, [h, rows, biases],
                                                     [tf.float32] * 4, stateful=False)
                return loss, lambda g: (dh * g[:, None], dr, db)
            return tf.reduce_mean(layer(h, rows, biases)) + tf.reduce_mean(h * h)
        n = tf.shape(h)[0]
        true = tf.reduce_sum(h * rows[:n], 1) + biases[:n]
        logits = tf.matmul(h, rows[n:], transpose_b=True) + biases[n:]
        return tf.reduce_mean(true) + 0.5 * tf.reduce_sum(c * logits * logits)
    return variables, out_loss


def _numpy_level(V, S, data):
    """The same work without TensorFlow: the loss and gradients on the step's rows, and a
    whole head step."""
    import fastsampled as fs
    rng = np.random.default_rng(1)
    W = rng.normal(0, D ** -0.5, (V, D)).astype(np.float32)
    bias = np.zeros(V, np.float32)
    h = rng.normal(size=(B, D)).astype(np.float32)
    head = fs.SampledSoftmaxHead(V, D, num_sampled=S, optimizer="sgd", lr=LR, seed=0)
    pos = [0]

    def loss_and_grads():
        y = data[pos[0] % len(data)][1]
        pos[0] += 1
        fs.sampled_softmax_loss_and_grads(W, bias, y, h, S, V)

    def train_step():
        y = data[pos[0] % len(data)][1]
        pos[0] += 1
        head.train_step(h, y)

    rows = W[:S].copy()

    def products():
        logits = h @ rows.T
        logits @ rows
        logits.T @ h
    return loss_and_grads, train_step, products


def _bridge_pieces(V, S):
    """A numpy_function round trip with the step's arrays, and an IndexedSlices SGD update."""
    tf = _tf()
    import keras
    K = B + S
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(B, D)).astype(np.float32))
    rows = tf.constant(rng.normal(size=(K, D)).astype(np.float32))

    def back(a, r):
        return (np.zeros(a.shape[0], np.float32), np.empty_like(a), np.empty_like(r),
                np.empty(r.shape[0], np.float32))

    @tf.function
    def roundtrip(a, r):
        return tf.numpy_function(back, [a, r], [tf.float32] * 4, stateful=False)

    @tf.function
    def empty(a, r):
        return a[0, 0] + r[0, 0]

    w = tf.Variable(rng.normal(size=(V, D)).astype(np.float32))
    opt = keras.optimizers.SGD(LR)
    ids = tf.constant(rng.choice(V, K, replace=False).astype(np.int64))

    @tf.function
    def sparse_update(r):           # IndexedSlices as a gather's gradient makes them
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(tf.gather(w, ids) * r)
        opt.apply_gradients(zip(tape.gradient(total, [w]), [w]))

    return {"numpy_function round trip": lambda: roundtrip(x, rows)[0].numpy(),
            "empty tf.function": lambda: empty(x, rows).numpy(),
            "IndexedSlices SGD update (with its gather)": lambda: sparse_update(rows)}


def child_step(cfg):
    V, S = cfg["V"], cfg["S"]
    data = _batches(V, 16)
    tf = _tf()
    kinds = ["body", "tf.nn", "fastsampled.tf", "keras layer", "tf.nn alone",
             "fastsampled.tf alone", "keras layer alone", *FLOORS]
    steps = {k: make_step(k, V, S) for k in kinds}
    tensors = [(tf.constant(x), tf.constant(y)) for x, y in data]
    pos = {k: 0 for k in kinds}

    def runner(kind):
        def fn():
            x, y = tensors[pos[kind] % len(tensors)]
            pos[kind] += 1
            steps[kind](x, y).numpy()
        return fn
    fns = {k: runner(k) for k in kinds}
    lg, ts, mm = _numpy_level(V, S, data)
    fns["numpy: fs.sampled_softmax_loss_and_grads"] = lg
    fns["numpy: head.train_step"] = ts
    fns.update(_bridge_pieces(V, S))
    stats = timeit_many(fns, cfg["rounds"], warmup=3, max_seconds=cfg["seconds"], block=5)
    # numpy's BLAS threads spin for ~0.1 s after a call, slowing whatever runs next: timed
    # after the round robin, not in it
    stats.update(timeit_many({"numpy: the three matrix products": mm}, cfg["rounds"], warmup=3,
                             max_seconds=cfg["seconds"] / 10, block=5))
    return {"stats": stats, "tf": tf.__version__, "machine": machine_info()}


def _rss():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("RssAnon", "VmHWM", "VmRSS"):
                out[key] = int(val.split()[0]) * 1024
    return out


def child_memory(cfg):
    V, kind = cfg["V"], cfg["kind"]
    data = _batches(V, 8)
    tf = _tf()
    with tempfile.TemporaryDirectory(dir=cfg.get("tmp")) as tmp:
        t0 = time.perf_counter()
        step = make_step(kind, V, cfg["S"], path=os.path.join(tmp, "head") if kind == "keras layer"
                         else None)
        built = time.perf_counter() - t0
        losses = []
        t0 = time.perf_counter()
        for i in range(cfg["steps"]):
            x, y = data[i % len(data)]
            losses.append(float(step(tf.constant(x), tf.constant(y))))
        train_s = time.perf_counter() - t0
        rss = _rss()
    return {"rss": rss, "build_s": built, "train_s": train_s, "loss_first": losses[0],
            "loss_last": losses[-1]}


def child_exact(cfg):
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
    tf = _tf()
    import fastsampled.tf as fstf
    from tf_cases import case_files, load_case, shards_from_case

    def worst(actual, expected, dtype):
        tol = 1e-5 if np.dtype(dtype) == np.float32 else 1e-10
        a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
        scale = np.max(np.abs(e)) if e.size else 0.0
        bound = tol * np.maximum(np.abs(e), scale)
        return float(np.max(np.abs(a - e) / np.where(bound > 0, bound, 1.0)))

    out = {"cases": 0, "worst": {}}
    for path in case_files("loss"):
        c = load_case(path)
        ws, bs = shards_from_case(c)
        wv = [tf.Variable(w) for w in ws]
        bv = [tf.Variable(b) for b in bs] if isinstance(bs, list) else [tf.Variable(bs)]
        x = tf.constant(c["inputs"])
        fn = fstf.v1.nce_loss if c["loss_fn"] == "nce" else fstf.v1.sampled_softmax_loss

        def run():
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = fn(wv if len(wv) > 1 else wv[0], bv if len(bv) > 1 else bv[0],
                          c["labels"], x, c["num_sampled"], c["num_classes"], c["num_true"],
                          sampled_values=(c["sampled"], c["true_expected_count"],
                                          c["sampled_expected_count"]),
                          remove_accidental_hits=bool(c["remove_accidental_hits"]),
                          partition_strategy=c["partition_strategy"],
                          subtract_log_q=bool(c["subtract_log_q"]))
                total = tf.reduce_sum(loss)
            return loss, tape.gradient(total, [x] + wv + bv)

        for mode in ("eager", "tf.function"):
            loss, g = run() if mode == "eager" else tf.function(run)()
            dense = [tf.convert_to_tensor(t).numpy() for t in g[1:]]
            gw = np.zeros_like(c["weights"])
            gb = np.zeros_like(c["biases"])
            for p in range(len(wv)):
                ids = np.nonzero(c["row_shard"] == p)[0]
                gw[ids] = dense[p][c["row_local"][ids]]
                if len(bv) > 1:
                    gb[ids] = dense[len(wv) + p][c["row_local"][ids]]
            if len(bv) == 1:
                gb = dense[-1]
            for name, a, e in (("loss", loss.numpy(), c["loss"]),
                               ("grad_inputs", g[0].numpy(), c["grad_inputs"]),
                               ("grad_weights", gw, c["grad_weights"]),
                               ("grad_biases", gb, c["grad_biases"])):
                key = f"{mode} {name}"
                out["worst"][key] = max(out["worst"].get(key, 0.0), worst(a, e, c["dtype"]))
            out["cases"] += 1
    return out


def child_main(cfg):
    return child_report({"step": child_step, "memory": child_memory,
                         "exact": child_exact}[cfg["kind_of"]], cfg)


def _run(cfg):
    return run_child(__file__, cfg)


def _ms(st):
    return {"median_ms": st["median"] * 1e3, "p10_ms": st["p10"] * 1e3,
            "p90_ms": st["p90"] * 1e3, "n": st["n"], "others_cpu": st.get("others_cpu"),
            "disturbed": disturbed(st)}


def bench_step(cfg, rows, notes):
    machine = None
    for S in cfg["S"]:
        machine = _bench_step(cfg, S, rows, notes) or machine
    return machine


def _bench_step(cfg, S, rows, notes):
    section(f"step: tf.function training steps at V={cfg['V']:.0e}, S={S} (interleaved)")
    res, err = _run(dict(cfg, S=S, kind_of="step"))
    if err:
        notes.append(f"step S={S}: {err}")
        return None
    st = res["stats"]
    body = st["body"]["median"]
    for name, s in st.items():
        row = {"section": "step", "case": name, "V": cfg["V"], "S": S, **_ms(s)}
        if name in ("tf.nn", "fastsampled.tf", "keras layer", *FLOORS):
            row["share_ms"] = (s["median"] - body) * 1e3
        rows.append(row)
        log(f"{name:42s} {s['median'] * 1e3:8.3f} ms" +
            (f"   output layer {row['share_ms']:.3f} ms" if "share_ms" in row else ""))
    tf_share = st["tf.nn"]["median"] - body
    for name in ("fastsampled.tf", "keras layer"):
        share = st[name]["median"] - body
        for what, value in (("output layer share: tf.nn / this", tf_share / share),
                            ("whole step: tf.nn / this", st["tf.nn"]["median"] /
                             st[name]["median"])):
            rows.append({"section": "step", "case": f"{name}: {what}", "V": cfg["V"],
                         "S": S, "ratio": value})
            log(f"{name}: {what} = {value:.2f}x")
    for name in FLOORS:         # the largest share ratio an implementation of that kind reaches
        share = st[name]["median"] - body
        value = tf_share / share if share > 0 else None
        rows.append({"section": "step", "case": f"{name}: tf.nn's share / this share",
                     "V": cfg["V"], "S": S, "ratio": value})
        log(f"{name}: tf.nn's share / this share = " +
            (f"{value:.2f}x" if value is not None else "n/a (no share above the body's noise)"))
    for name in ("fastsampled.tf alone", "keras layer alone"):
        value = st["tf.nn alone"]["median"] / st[name]["median"]
        rows.append({"section": "step", "case": f"{name}: tf.nn alone / this", "V": cfg["V"],
                     "S": S, "ratio": value})
        log(f"{name}: tf.nn alone / this = {value:.2f}x")
    value = (st["tf.nn alone"]["median"] - tf_share) * 1e3
    rows.append({"section": "step", "case": "tf.nn: alone minus its share of the step (run "
                 "beside the body)", "V": cfg["V"], "S": S, "value": value, "unit": "ms"})
    log(f"tf.nn: alone minus its share of the step: {value:.3f} ms")
    kernel = st["numpy: fs.sampled_softmax_loss_and_grads"]["median"]
    head = st["numpy: head.train_step"]["median"]
    for name, value in (("fastsampled.tf: share minus the numpy-level loss and gradients",
                         st["fastsampled.tf"]["median"] - body - kernel),
                        ("keras layer: share minus head.train_step",
                         st["keras layer"]["median"] - body - head),
                        ("numpy_function round trip minus an empty tf.function",
                         st["numpy_function round trip"]["median"] -
                         st["empty tf.function"]["median"])):
        rows.append({"section": "step", "case": name, "V": cfg["V"], "S": S,
                     "value": value * 1e3, "unit": "ms"})
        log(f"{name}: {value * 1e3:.3f} ms")
    return res["machine"]


def bench_memory(cfg, rows, notes):
    section(f"memory: V={cfg['mem_V']:.0e}, {cfg['mem_steps']} steps, a fresh process each")
    got = {}
    for kind in ("tf.nn", "keras layer"):
        res, err = _run(dict(cfg, kind_of="memory", kind=kind, V=cfg["mem_V"], S=64,
                             steps=cfg["mem_steps"]))
        if err:
            notes.append(f"memory {kind}: {err}")
            continue
        got[kind] = res
        for what, key in (("anonymous RSS after training", "RssAnon"), ("peak RSS", "VmHWM")):
            rows.append({"section": "memory", "case": f"{kind}: {what}", "V": cfg["mem_V"],
                         "value": res["rss"][key] / 2**30, "unit": "GiB"})
        log(f"{kind:12s} anon {res['rss']['RssAnon'] / 2**30:.2f} GiB, peak "
            f"{res['rss']['VmHWM'] / 2**30:.2f} GiB, build {res['build_s']:.1f} s, "
            f"{cfg['mem_steps']} steps {res['train_s']:.1f} s, loss {res['loss_first']:.3f} -> "
            f"{res['loss_last']:.3f}")
    if len(got) == 2:
        ratio = got["tf.nn"]["rss"]["RssAnon"] / got["keras layer"]["rss"]["RssAnon"]
        rows.append({"section": "memory", "case": "anonymous RSS: tf.nn / keras layer",
                     "V": cfg["mem_V"], "ratio": ratio})
        log(f"anonymous RSS: tf.nn / keras layer = {ratio:.1f}x")


def bench_exact(rows, notes):
    section("exact: the shared TensorFlow cases, eagerly and in tf.function")
    res, err = _run({"kind_of": "exact"})
    if err:
        notes.append(f"exact: {err}")
        return
    for key, value in sorted(res["worst"].items()):
        rows.append({"section": "exact", "case": f"{key}: worst error / TF tolerance",
                     "value": value, "unit": f"{res['cases'] // 2} cases"})
        log(f"{key:28s} worst error / tolerance = {value:.3g}")


def main(argv=None):
    p = arg_parser(__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=("step", "memory", "exact"), default=None)
    p.add_argument("--tmp", default=None, help="where the memory section's head is stored")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        return child_main(json.loads(args.child))
    cfg = dict(QUICK if args.quick else FULL, tmp=args.tmp)
    rows, notes = [], []
    t_start = time.perf_counter()
    busy_before = wait_for_quiet(args.wait_quiet)
    want = set(args.only or ("step", "memory", "exact"))
    machine = None
    if "step" in want:
        machine = bench_step(cfg, rows, notes)
    if "memory" in want:
        bench_memory(cfg, rows, notes)
    if "exact" in want:
        bench_exact(rows, notes)
    notes += [
        f"B={B}, D={D}, S={cfg['S']} (memory: 64), float32; body Dense({D_IN}->{HID}, relu) -> Dense({HID}->{D}); "
        f"SGD lr={LR} everywhere (keras.optimizers.SGD; the head's own sparse SGD for the "
        "keras layer); labels Zipf(1.2) clipped to V; 16 batches made before timing, cycled",
        "step: every variant is a tf.function with GradientTape and apply_gradients; timed "
        "round robin in blocks of 5 calls, medians; compile and tracing excluded (3 warm-up "
        "rounds); output layer share = the variant's median minus body's",
        "numpy rows: the same sizes without TensorFlow, for what the bridge adds: "
        "fs.sampled_softmax_loss_and_grads (default log-uniform sampler, numpy weights) and "
        "head.train_step (an in-RAM head, sparse SGD); 'the three matrix products' are numpy's "
        "(BLAS) logits, hidden-gradient and row-gradient products of the step's sizes, timed "
        "after the round robin (BLAS's spinning threads would slow the next variant)",
        *(f"{name}: {what}" for name, what in FLOORS.items()),
        "memory: RssAnon and VmHWM from /proc/self/status at the end of the child; the Keras "
        "layer's head is memory-mapped in a temporary directory (--tmp)",
        f"CPUs busy with other work just before: {busy_before}; wall time "
        f"{time.perf_counter() - t_start:.1f} s",
    ]
    import importlib.metadata as md
    meta = {"quick": args.quick, "config": cfg, "notes": notes,
            "tensorflow": md.version("tensorflow-cpu") if _has("tensorflow-cpu") else
            md.version("tensorflow") if _has("tensorflow") else None,
            "keras": md.version("keras") if _has("keras") else None}
    machine = machine or machine_info()
    machine["loadavg_1_5_15"] = list(os.getloadavg())
    write_results("tf", rows, meta, out_dir_for(args), COLUMNS, machine)
    return 0


def _has(dist):
    import importlib.metadata as md
    try:
        md.version(dist)
        return True
    except md.PackageNotFoundError:
        return False


if __name__ == "__main__":
    sys.exit(main())
