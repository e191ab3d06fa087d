"""Train-step time against the number of classes: fastsampled, TensorFlow, full softmax.

Run::

    python bench/bench_scaling.py [--quick] [--out DIR] [--wait-quiet S] [--no-tf]

One whole sampled-softmax train step at B=1024, D=128, S=64, float32, Zipf labels, for
V = 10^4, 10^5, 10^6, 10^7 (``--quick``: up to 10^6):

* ``fastsampled``: ``SampledSoftmaxHead(V, D, optimizer="sgd").train_step(x, labels)``
  (log-uniform sampling, loss, gradients, sparse SGD update of the touched rows).
* ``TensorFlow``: the same step as TF users write it, compiled with ``tf.function``:
  ``tf.nn.sampled_softmax_loss`` (its default log-uniform sampler) under a ``GradientTape``,
  then a sparse SGD apply (``scatter_sub`` of the ``IndexedSlices`` gradients). It runs in its
  own child process (its import, threads and memory stay out of ours), on the same batches.
  Skipped with a note when ``import tensorflow`` fails.
* full softmax: every class's logit, forward and backward. ``numpy``: fastsampled's
  ``fastsampled.baselines.full_softmax_step_time`` (two chunked passes over the classes with
  BLAS, memory O(rows x chunk)), measured on the first ``rows`` examples of the batch and
  scaled to B linearly; ``TensorFlow``: ``matmul`` + ``sparse_softmax_cross_entropy_with_logits`` +
  dense SGD under ``tf.function``, only where the (B, V) logits and their gradient fit in
  the memory available (10^5 in ``--quick``, 10^6 in full mode).

fastsampled and TensorFlow are measured at the same V one after the other in alternating
blocks (``rounds``), so their ratio sees the same machine conditions; every step takes the
next of 16 different batches, so the gathered rows are not all cache-hot.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import (BUSY_OTHERS, OtherLoad, arg_parser, load1, log, machine_info,  # noqa: E402
                     mem_available, out_dir_for, section, summarize, wait_for_quiet,
                     write_results, zipf_labels)

B, D, S = 1024, 128, 64
POOL = 16
LR = 0.1
QUICK = dict(V=[10**4, 10**5, 10**6], reps=40, rounds=1, max_seconds=6.0, full_rows=32,
             full_reps=1, tf_full_max_V=10**5)
FULL = dict(V=[10**4, 10**5, 10**6, 10**7], reps=200, rounds=3, max_seconds=30.0,
            full_rows=128, full_reps=3, tf_full_max_V=10**6)
COLUMNS = ["impl", "V", "B", "S", "median_ms", "p10_ms", "p90_ms", "reps", "vs_fastsampled",
           "method", "others_cpu"]

FS = "fastsampled sampled softmax"
TF = "TensorFlow sampled softmax"
NP_FULL = "numpy full softmax"
TF_FULL = "TensorFlow full softmax"


def make_pool(V, seed=1):
    """16 batches: Zipf labels (B, 1) int64 and normal inputs (B, D) float32."""
    rng = np.random.default_rng(seed)
    labels = np.stack([zipf_labels(rng, V, (B, 1)) for _ in range(POOL)])
    inputs = rng.standard_normal((POOL, B, D), dtype=np.float32)
    return labels, inputs


def _merge(blocks):
    """One stats dict from several timing blocks (all their calls; worst others_cpu)."""
    times = [t for b in blocks for t in b.pop("times")]
    st = summarize(times)
    others = [b.get("others_cpu") for b in blocks if b.get("others_cpu") is not None]
    st.update(others_cpu=max(others) if others else None, load1=load1(), blocks=len(blocks))
    return st


def time_calls(fn, reps, warmup, max_seconds):
    """:func:`_common.timeit` keeping every call's time (blocks are merged later)."""
    for _ in range(warmup):
        fn()
    load = OtherLoad().start()
    times = []
    t_start = time.perf_counter()
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 3 and time.perf_counter() - t_start > max_seconds:
            break
    return {"times": times, "others_cpu": load.stop()}


# --------------------------------------------------------------------------- TensorFlow child

class TFWorker:
    """This script with ``--tf-worker`` in a child process, driven by JSON lines on its stdin."""

    def __init__(self, tmp):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--tf-worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1, env=env)
        self.tmp = tmp
        self.hello = self._reply()

    def _reply(self):
        for line in self.proc.stdout:
            if line.startswith("@@ "):
                return json.loads(line[3:])
        raise RuntimeError(f"TensorFlow worker exited ({self.proc.wait()})")

    def ask(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        r = self._reply()
        if "error" in r:
            raise RuntimeError(r["error"])
        return r

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def tf_worker_main():
    def emit(obj):
        print("@@ " + json.dumps(obj), flush=True)
    try:
        import tensorflow as tf
    except Exception as e:
        emit({"error": f"tensorflow not importable ({type(e).__name__}: {e})"})
        return 0
    emit({"tensorflow": tf.__version__,
          "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
          "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()})
    state = {}
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if cmd["op"] == "setup":
                state.clear()
                V = cmd["V"]
                t0 = time.perf_counter()
                W = tf.Variable(tf.random.normal((V, D), stddev=0.05, seed=0))
                b = tf.Variable(tf.zeros((V,)))
                labels = np.load(cmd["labels"])
                inputs = np.load(cmd["inputs"])
                xs = [tf.constant(x) for x in inputs]
                ys = [tf.constant(y) for y in labels]

                @tf.function
                def sampled_step(x, y):
                    with tf.GradientTape() as tape:
                        loss = tf.reduce_mean(tf.nn.sampled_softmax_loss(W, b, y, x, S, V))
                    gw, gb = tape.gradient(loss, [W, b])     # IndexedSlices: sparse
                    W.scatter_sub(tf.IndexedSlices(gw.values * LR, gw.indices))
                    b.scatter_sub(tf.IndexedSlices(gb.values * LR, gb.indices))
                    return loss

                @tf.function
                def full_step(x, y):
                    with tf.GradientTape() as tape:
                        logits = tf.matmul(x, W, transpose_b=True) + b
                        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                            labels=y[:, 0], logits=logits))
                    gw, gb = tape.gradient(loss, [W, b])
                    W.assign_sub(tf.convert_to_tensor(gw) * LR)
                    b.assign_sub(tf.convert_to_tensor(gb) * LR)
                    return loss

                state.update(W=W, b=b, xs=xs, ys=ys, sampled=sampled_step, full=full_step, i=0)
                emit({"setup_s": time.perf_counter() - t0})
            elif cmd["op"] in ("sampled", "full"):
                step = state[cmd["op"]]

                def fn():
                    i = state["i"] = (state["i"] + 1) % POOL
                    step(state["xs"][i], state["ys"][i]).numpy()
                res = time_calls(fn, cmd["reps"], cmd["warmup"], cmd["max_seconds"])
                emit(res)
        except Exception as e:
            emit({"error": f"{type(e).__name__}: {str(e)[:300]}"})
    return 0


# --------------------------------------------------------------------------- parent

def _row(impl, V, st, method, fs_ms=None):
    med = st["median"] * 1e3
    return {"impl": impl, "V": V, "B": B, "D": D, "S": S, "median_ms": med,
            "p10_ms": st["p10"] * 1e3, "p90_ms": st["p90"] * 1e3, "reps": st["n"],
            "vs_fastsampled": None if fs_ms is None else f"{med / fs_ms:.3g}x",
            "method": method, "others_cpu": st.get("others_cpu"), "load1": st.get("load1"),
            "blocks": st.get("blocks", 1)}


def bench_V(V, cfg, tfw, tmp, rows, notes):
    import fastsampled as fs
    from fastsampled.baselines import full_softmax_step_time
    section(f"V={V:.0e}: B={B}, D={D}, S={S}, float32")
    labels, inputs = make_pool(V)
    t0 = time.perf_counter()
    head = fs.SampledSoftmaxHead(V, D, num_sampled=S, optimizer="sgd", lr=LR, seed=0)
    log(f"fastsampled head ready in {time.perf_counter() - t0:.1f} s "
        f"({head.weights.nbytes / 2**30:.2f} GiB of weights)")
    c = [0]

    def fs_step():
        i = c[0] = (c[0] + 1) % POOL
        head.train_step(inputs[i], labels[i])

    tf_ok = False
    if tfw is not None:
        np.save(os.path.join(tmp, "labels.npy"), labels)
        np.save(os.path.join(tmp, "inputs.npy"), inputs)
        try:
            r = tfw.ask(op="setup", V=V, labels=os.path.join(tmp, "labels.npy"),
                        inputs=os.path.join(tmp, "inputs.npy"))
            log(f"TensorFlow variables ready in {r['setup_s']:.1f} s")
            tf_ok = True
        except RuntimeError as e:
            log(f"TensorFlow setup failed: {e}")
            notes.append(f"V={V:.0e}: TensorFlow setup failed: {e}")
    fs_blocks, tf_blocks = [], []
    for r in range(cfg["rounds"]):
        fs_blocks.append(time_calls(fs_step, cfg["reps"], 5 if r == 0 else 1,
                                    cfg["max_seconds"]))
        if tf_ok:
            try:
                tf_blocks.append(tfw.ask(op="sampled", reps=cfg["reps"],
                                         warmup=5 if r == 0 else 1,
                                         max_seconds=cfg["max_seconds"]))
            except RuntimeError as e:
                notes.append(f"V={V:.0e}: TensorFlow sampled step failed: {e}")
                tf_ok = False
    st = _merge(fs_blocks)
    fs_ms = st["median"] * 1e3
    rows.append(_row(FS, V, st, "SampledSoftmaxHead.train_step, SGD (sample + loss + grads + "
                     "sparse update)"))
    log(f"fastsampled train_step: {fs_ms:.3f} ms (others_cpu {st['others_cpu']})")
    if tf_blocks:
        st = _merge(tf_blocks)
        rows.append(_row(TF, V, st, "tf.function: GradientTape + tf.nn.sampled_softmax_loss + "
                         "scatter_sub SGD", fs_ms))
        log(f"TensorFlow sampled step: {st['median'] * 1e3:.3f} ms "
            f"({st['median'] * 1e3 / fs_ms:.3g}x fastsampled)")

    # full softmax: numpy (chunked, scaled from `full_rows` examples), then TensorFlow's
    W, bias = np.asarray(head.weights), np.asarray(head.biases)
    rows_used = min(cfg["full_rows"], B)
    full_softmax_step_time(W, bias, inputs[0], labels[0], rows=8)   # BLAS threads, page faults
    load = OtherLoad().start()
    ts, t_start = [], time.perf_counter()
    # at least full_reps calls, and at least 0.5 s of them (others_cpu has 10 ms resolution)
    while len(ts) < cfg["full_reps"] or (time.perf_counter() - t_start < 0.5 and len(ts) < 50):
        i = len(ts) % POOL
        ts.append(full_softmax_step_time(W, bias, inputs[i], labels[i], rows=rows_used))
    st = summarize(ts)
    st.update(others_cpu=load.stop(), load1=load1())
    rows.append(_row(NP_FULL, V, st, f"numpy BLAS, two chunked passes, {rows_used} of {B} "
                     "examples timed, scaled linearly", fs_ms))
    log(f"numpy full softmax step: {st['median'] * 1e3:.1f} ms (from {rows_used} examples)")
    del head, W, bias
    if tf_ok and V <= cfg["tf_full_max_V"]:
        need = 3 * B * V * 4 + 3 * V * D * 4
        avail = mem_available()
        if avail is not None and avail < 1.5 * need:
            notes.append(f"V={V:.0e}: TensorFlow full softmax skipped ({avail / 2**30:.1f} GiB "
                         f"available, ~{need / 2**30:.1f} GiB needed)")
        else:
            try:
                r = tfw.ask(op="full", reps=cfg["full_reps"], warmup=1,
                            max_seconds=cfg["max_seconds"])
                st = _merge([r])
                rows.append(_row(TF_FULL, V, st, "tf.function: matmul + sparse softmax "
                                 "cross-entropy + dense SGD, whole batch", fs_ms))
                log(f"TensorFlow full softmax step: {st['median'] * 1e3:.1f} ms")
            except RuntimeError as e:
                notes.append(f"V={V:.0e}: TensorFlow full softmax failed: {e}")
    elif tf_ok:
        notes.append(f"V={V:.0e}: TensorFlow full softmax not run (its (B, V) logits and "
                     f"gradient need ~{3 * B * V * 4 / 2**30:.0f} GiB; limit "
                     f"{cfg['tf_full_max_V']:.0e} in this mode)")


def main(argv=None):
    p = arg_parser(__doc__.splitlines()[0])
    p.add_argument("--no-tf", action="store_true", help="leave TensorFlow out")
    p.add_argument("--V", type=int, nargs="+", default=None, metavar="N",
                   help="numbers of classes to measure (default: the mode's)")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per block (default: the mode's)")
    p.add_argument("--tf-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tf_worker:
        return tf_worker_main()
    cfg = dict(QUICK if args.quick else FULL)
    if args.V:
        cfg["V"] = sorted(args.V)
    if args.steps:
        cfg["reps"] = args.steps
    notes = []
    t_start = time.perf_counter()
    busy = wait_for_quiet(args.wait_quiet)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fastsampled-bench-scaling-") as tmp:
        tfw, tf_meta = None, None
        if args.no_tf:
            notes.append("TensorFlow left out (--no-tf)")
        else:
            section("starting the TensorFlow child process")
            try:
                tfw = TFWorker(tmp)
                if "error" in tfw.hello:
                    notes.append(f"{tfw.hello['error']}: TensorFlow rows skipped")
                    log(notes[-1])
                    tfw.close()
                    tfw = None
                else:
                    tf_meta = tfw.hello
                    log(f"tensorflow {tf_meta['tensorflow']}")
            except (OSError, RuntimeError) as e:
                notes.append(f"TensorFlow child failed to start ({e}): TensorFlow rows skipped")
                tfw = None
        try:
            for V in cfg["V"]:
                need = 2.2 * V * D * 4
                avail = mem_available()
                if avail is not None and avail < need:
                    notes.append(f"V={V:.0e} skipped: {avail / 2**30:.1f} GiB available, "
                                 f"{need / 2**30:.1f} GiB needed")
                    continue
                bench_V(V, cfg, tfw, tmp, rows, notes)
        finally:
            if tfw is not None:
                tfw.close()
    notes += [
        f"one train step, B={B}, D={D}, S={S}, float32, Zipf labels, 16 batches cycled; "
        "median of the timed steps, warm-up steps (compilation, tracing) excluded",
        f"fastsampled and TensorFlow alternate in {cfg['rounds']} block(s) of up to "
        f"{cfg['reps']} steps at each V (blocks in the JSON); TensorFlow in its own process",
        "numpy full softmax = fastsampled.baselines.full_softmax_step_time: forward and backward "
        f"over all classes on {cfg['full_rows']} examples, scaled to B={B}",
        f"others_cpu = cores used by other processes while timing (worst block); above "
        f"{BUSY_OTHERS} a row does not measure the library alone",
        f"wall time {time.perf_counter() - t_start:.1f} s; CPUs busy before: {busy}",
    ]
    meta = {"quick": args.quick, "config": cfg, "tensorflow": tf_meta, "notes": notes,
            "series": [FS, TF, NP_FULL, TF_FULL], "cpu_busy_before": busy,
            "plot": {"x": "V", "y": "median_ms", "series": "impl"}}
    write_results("scaling", rows, meta, out_dir_for(args), COLUMNS, machine_info())
    return 0


if __name__ == "__main__":
    sys.exit(main())
