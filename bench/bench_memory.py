"""Memory of a sampled-softmax train step against the number of classes, one process per point.

Run::

    python bench/bench_memory.py [--quick] [--out DIR] [--store-dir DIR] [--no-tf]

For V = 10^4, 10^5, 10^6, 10^7 (``--quick``: 10^4 and 10^6), B=1024, D=128, S=64, float32, each
implementation trains ``steps`` steps in a fresh child process (this script with a hidden
``--child`` argument), so its peak RSS (``VmHWM``) and anonymous RSS are its own:

* ``fastsampled in RAM``: ``SampledSoftmaxHead(V, D, optimizer="sgd")``, weights in RAM.
* ``fastsampled memory-mapped``: the same head as a ``ShardedMatrix`` store on disk, created
  beforehand by this (parent) process and opened by the child with
  ``SampledSoftmaxHead.load(path, "r+")``; only the rows a step touches are paged in, as
  file-backed (page-cache) memory, not anonymous memory.
* ``TensorFlow``: ``tf.Variable`` weights, ``tf.nn.sampled_softmax_loss`` under a
  ``GradientTape`` and a sparse SGD apply, in ``tf.function`` (skipped with a note when
  ``import tensorflow`` fails).

Reported per point: peak RSS (VmHWM: anonymous + file-backed pages, the figure a job
scheduler or the OOM killer sees), the largest anonymous RSS (polled by the parent every 0.1 s
and read at the end), the RSS after the imports and before the model (the runtime's own
footprint), and the weights' own size ``V * (D + 1) * 4`` bytes for reference.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import (OtherLoad, arg_parser, log, machine_info, out_dir_for,  # noqa: E402
                     section, wait_for_quiet, write_results, zipf_labels)

B, D, S = 1024, 128, 64
POOL = 4
LR = 0.1
QUICK = dict(V=[10**4, 10**6], steps=20)     # each process costs seconds of start-up
FULL = dict(V=[10**4, 10**5, 10**6, 10**7], steps=100)
IMPLS = ("fastsampled in RAM", "fastsampled memory-mapped", "TensorFlow sampled softmax")
COLUMNS = ["impl", "V", "D", "peak_rss_GB", "anon_GB", "runtime_GB", "weights_GB", "steps",
           "step_ms", "others_cpu"]
RESULT_TAG = "@@RESULT@@ "


def status(pid="self"):
    """``{VmHWM, VmRSS, RssAnon, RssFile}`` of a process in bytes ({} where unreadable)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                    out[k] = int(v.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def _batches(V):
    rng = np.random.default_rng(1)
    return ([zipf_labels(rng, V, (B, 1)) for _ in range(POOL)],
            [rng.standard_normal((B, D), dtype=np.float32) for _ in range(POOL)])


# --------------------------------------------------------------------------- children

def child_fastsampled(cfg, mem):
    import fastsampled as fs
    labels, inputs = _batches(cfg["V"])
    mem["runtime"] = status()
    if cfg.get("store"):
        head = fs.SampledSoftmaxHead.load(cfg["store"], "r+")
    else:
        head = fs.SampledSoftmaxHead(cfg["V"], D, num_sampled=S, optimizer="sgd", lr=LR, seed=0)
    mem["model"] = status()

    def step(i):
        head.train_step(inputs[i % POOL], labels[i % POOL])
    return step, head.close


def child_tensorflow(cfg, mem):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    V = cfg["V"]
    labels, inputs = _batches(V)
    xs = [tf.constant(x) for x in inputs]
    ys = [tf.constant(y) for y in labels]
    mem["runtime"] = status()
    W = tf.Variable(tf.random.normal((V, D), stddev=0.05, seed=0))
    b = tf.Variable(tf.zeros((V,)))
    mem["model"] = status()

    @tf.function
    def train(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sampled_softmax_loss(W, b, y, x, S, V))
        gw, gb = tape.gradient(loss, [W, b])
        W.scatter_sub(tf.IndexedSlices(gw.values * LR, gw.indices))
        b.scatter_sub(tf.IndexedSlices(gb.values * LR, gb.indices))
        return loss

    def step(i):
        train(xs[i % POOL], ys[i % POOL]).numpy()
    return step, None


def child_main(cfg):
    mem = {"start": status()}
    try:
        make = child_tensorflow if cfg["impl"].startswith("TensorFlow") else child_fastsampled
        step, close = make(cfg, mem)
        step(0)                         # compilation / tracing, first touch
        mem["first_step"] = status()
        load = OtherLoad().start()
        t0 = time.perf_counter()
        for i in range(1, cfg["steps"] + 1):
            step(i)
        dt = (time.perf_counter() - t0) / cfg["steps"]
        others = load.stop()
        mem["end"] = status()
        if close is not None:
            close()
        print(RESULT_TAG + json.dumps({"mem": mem, "step_s": dt, "others_cpu": others}),
              flush=True)
        return 0
    except BaseException as e:
        traceback.print_exc()
        print(RESULT_TAG + json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        return 1


def run_child(cfg, poll=0.1):
    """Run one point in a fresh process; returns (result or None, exit code, polled peaks)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child",
                             json.dumps(cfg)], stdout=subprocess.PIPE, text=True, bufsize=1,
                            env=env)
    box = {}

    def reader():
        for line in proc.stdout:
            if line.startswith(RESULT_TAG):
                box["result"] = json.loads(line[len(RESULT_TAG):])
            else:
                print("   | " + line, end="", flush=True)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    peaks = {"RssAnon": 0, "VmRSS": 0}
    while proc.poll() is None:
        st = status(proc.pid)
        for k in peaks:
            peaks[k] = max(peaks[k], st.get(k, 0))
        time.sleep(poll)
    t.join(10)
    return box.get("result"), proc.returncode, peaks


# --------------------------------------------------------------------------- parent

def _gb(x):
    return None if x is None else x / 1e9


def create_store(V, root):
    """A memory-mapped SGD head store of V classes under ``root`` (created in this process)."""
    import fastsampled as fs
    path = os.path.join(root, f"head-V{V}-D{D}")
    t0 = time.perf_counter()
    fs.SampledSoftmaxHead(V, D, path=path, num_sampled=S, optimizer="sgd", lr=LR, seed=0,
                          overwrite=True).close()
    log(f"store of {V:.0e} x {D} created in {time.perf_counter() - t0:.1f} s under {path}")
    return path


def _free_disk(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def main(argv=None):
    p = arg_parser(__doc__.splitlines()[0])
    p.add_argument("--store-dir", default=None,
                   help="where the memory-mapped stores go (default: a temporary directory, "
                        "removed afterwards)")
    p.add_argument("--no-tf", action="store_true", help="leave TensorFlow out")
    p.add_argument("--V", type=int, nargs="+", default=None, metavar="N",
                   help="numbers of classes to measure (default: the mode's)")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per process (default: the mode's)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child_main(json.loads(args.child))
    cfg = dict(QUICK if args.quick else FULL)
    if args.V:
        cfg["V"] = sorted(args.V)
    if args.steps:
        cfg["steps"] = args.steps
    notes = []
    t_start = time.perf_counter()
    busy = wait_for_quiet(args.wait_quiet)
    impls = list(IMPLS)
    try:
        import importlib.util
        have_tf = importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        have_tf = False
    if args.no_tf or not have_tf:
        impls.remove("TensorFlow sampled softmax")
        notes.append("TensorFlow " + ("left out (--no-tf)" if args.no_tf else "not installed")
                     + ": its rows skipped")
    root = args.store_dir or tempfile.mkdtemp(prefix="fastsampled-bench-memory-")
    os.makedirs(root, exist_ok=True)
    rows = []
    try:
        for V in cfg["V"]:
            section(f"V={V:.0e}, D={D}: {cfg['steps']} train steps per process")
            weights = V * (D + 1) * 4
            store = None
            for impl in impls:
                row = {"impl": impl, "V": V, "D": D, "weights_GB": weights / 1e9,
                       "steps": cfg["steps"]}
                rows.append(row)
                if impl.endswith("memory-mapped"):
                    if _free_disk(root) < 1.2 * weights:
                        row["skipped"] = "not enough free disk"
                        notes.append(f"V={V:.0e} memory-mapped skipped: "
                                     f"{_free_disk(root) / 1e9:.1f} GB free under {root}")
                        continue
                    store = create_store(V, root)
                res, rc, peaks = run_child(dict(impl=impl, V=V, steps=cfg["steps"], store=store))
                if rc != 0 or res is None or "error" in res:
                    err = (res or {}).get("error") or ("killed by SIGKILL (out of memory?)"
                                                       if rc == -9 else f"exit {rc}")
                    row["error"] = err[:80]
                    log(f"{impl}: FAILED: {row['error']}")
                    continue
                mem = res["mem"]
                anon = max(peaks["RssAnon"], mem["end"].get("RssAnon", 0))
                row.update(peak_rss_GB=_gb(mem["end"].get("VmHWM")), anon_GB=_gb(anon),
                           runtime_GB=_gb(mem["runtime"].get("VmRSS")),
                           rss_file_GB=_gb(mem["end"].get("RssFile")),
                           step_ms=res["step_s"] * 1e3, others_cpu=res.get("others_cpu"),
                           mem=mem)
                log(f"{impl}: peak RSS {row['peak_rss_GB']:.2f} GB, anonymous "
                    f"{row['anon_GB']:.2f} GB (runtime alone {row['runtime_GB']:.2f} GB), "
                    f"{row['step_ms']:.2f} ms/step")
            if store is not None and not args.store_dir:
                shutil.rmtree(store, ignore_errors=True)
    finally:
        if not args.store_dir:
            shutil.rmtree(root, ignore_errors=True)
    notes += [
        "one fresh process per point: peak_rss_GB = its VmHWM at the end (anonymous + "
        "file-backed pages); anon_GB = its largest RssAnon (polled every 0.1 s and at the end); "
        "runtime_GB = its RSS after the imports and the batches, before the model",
        "weights_GB = V * (D + 1) * 4 bytes (float32 weights and biases), for reference",
        "step_ms = mean step time over the steps, informative only (few steps, not interleaved; "
        "others_cpu = cores other processes used meanwhile: Numba's OpenMP threads slow down "
        "by tens of times when another process holds one of the cores)",
        "memory-mapped stores are created by the parent process, so the child's pages are only "
        "those its steps touch",
        f"wall time {time.perf_counter() - t_start:.1f} s; CPUs busy before: {busy}",
    ]
    meta = {"quick": args.quick, "config": cfg, "notes": notes, "cpu_busy_before": busy,
            "plot": {"x": "V", "y": ["peak_rss_GB", "anon_GB"], "series": "impl"}}
    write_results("memory", rows, meta, out_dir_for(args), COLUMNS, machine_info())
    return 0


if __name__ == "__main__":
    sys.exit(main())
