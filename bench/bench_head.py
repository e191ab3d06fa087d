"""Benchmark fastsampled.SampledSoftmaxHead: train steps, memory, memory-mapped stores, predict.

Run::

    PYTHONPATH=/work/main python bench/bench_head.py [--quick] [--out DIR] [--wait-quiet S]
                                                     [--store-dir DIR] [--fresh] [--skip-mmap]

B=1024, D=128, S=64, T=1, float32, sampled softmax with the head's log-uniform sampler, inputs
and Zipf labels from ``fastsampled.datasets.SyntheticXC(V, D).batch(B, step)``.

(a) ``head.train_step`` (sample + loss + gradients + sparse update) with SGD for V = 10^4,
    10^5, 10^6, 10^7, weights in RAM: median step, peak and anonymous RSS, and the V=10^7
    median over the V=10^6 one (TensorFlow 2.21 CPU, measured earlier on a 2-core Zen 3 EPYC VM,
    not run here: 2.2 ms at 10^6, 2.4-2.6 ms at 10^7 with 5.9-6.7 GB peak RSS).
(b) SGD, Adagrad and lazy Adam heads at V=10^6, stepped round robin in one process: each
    step's median, and Adagrad's and Adam's over SGD's.
(c) V=10^8, D=64, weights memory-mapped (25.6 GB on disk, more than the RAM), Zipf labels:
    steps/s, the largest anonymous RSS and the process's exit code. Page-cache figures
    (/proc/meminfo Cached, Dirty, Writeback, MemAvailable) and the process's RssAnon /
    RssFile / VmHWM are recorded before and after. The store is created once under
    ``--store-dir`` (default /tmp/fastsampled-bench-1e8) and reused by later runs.
(d) ``head.predict(x, k=10)`` at V=10^6, B=256 against numpy's ``x @ W.T`` on the same
    weights (interleaved): both FLOP rates (2*B*V*D) and their ratio.

Each configuration runs in a fresh subprocess (this script with a hidden ``--child``
argument), so its peak RSS (VmHWM) and anonymous RSS belong to it alone. The batches are
generated beforehand by another subprocess into .npy files that the measuring process maps
read-only and reads once before timing: data generation is never timed and the data pages
count as file-backed RSS (RssFile), not as anonymous memory. Every timed step gets its own
batch (no cycling), so the rows touched by tail labels are as cold as in real training.
"""
import argparse
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (BUSY_OTHERS, arg_parser, disturbed, log, machine_info,  # noqa: E402
                     out_dir_for, retry_if_busy, section, timeit_many, wait_for_quiet,
                     write_results)

B, D, S = 1024, 128, 64
MMAP_D = 64
PREDICT_B, PREDICT_K = 256, 10

# TensorFlow 2.21 CPU, measured earlier on a 2-core Zen 3 EPYC VM (not run here)
TF_STEP_MS = {10**6: (2.2, 2.2), 10**7: (2.4, 2.6)}
TF_PEAK_RSS_GB = (5.9, 6.7)  # at V=1e7
TF_FULL_SOFTMAX_S = 5.7      # full-softmax train step at V=1e6

RESULT_TAG = "@@RESULT@@ "
MARKER = "bench-store.json"  # written into a store directory this script created

COLUMNS = ["case", "V", "D", "opt", "median_ms", "p10_ms", "p90_ms", "reps", "value", "unit",
           "peak_rss_GB", "anon_GB", "TF", "vs_TF", "others_cpu", "disturbed"]

FULL = dict(ram_V=[10**4, 10**5, 10**6, 10**7], steps=400, warmup=3, step_seconds=60.0,
            scale_pair=(10**6, 10**7),
            opt_V=10**6, opt_steps=300, mmap_V=10**8, mmap_steps=3000, mmap_seconds=180.0,
            predict_V=10**6, predict_reps=10, predict_seconds=120.0)
QUICK = dict(ram_V=[10**4, 10**5], steps=60, warmup=3, step_seconds=10.0,
             scale_pair=(10**4, 10**5),
             opt_V=10**5, opt_steps=40, mmap_V=10**6, mmap_steps=150, mmap_seconds=20.0,
             predict_V=10**5, predict_reps=5, predict_seconds=20.0)


# --------------------------------------------------------------------------- /proc readers

_MEMINFO_KEYS = ("MemTotal", "MemFree", "MemAvailable", "Cached", "Dirty", "Writeback",
                 "Active(file)", "Inactive(file)", "AnonPages", "Shmem")
_STATUS_KEYS = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem", "VmSwap")


def _read_kb_fields(path, keys):
    """``{key: bytes}`` of the ``key: N kB`` lines of a /proc file (empty where unreadable)."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in keys:
                    out[k] = int(v.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def meminfo():
    return _read_kb_fields("/proc/meminfo", _MEMINFO_KEYS)


def proc_status(pid="self"):
    return _read_kb_fields(f"/proc/{pid}/status", _STATUS_KEYS)


def proc_io():
    """read_bytes / write_bytes of this process (/proc/self/io; {} where unavailable)."""
    out = {}
    try:
        with open("/proc/self/io") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("read_bytes", "write_bytes"):
                    out[k] = int(v)
    except (OSError, ValueError):
        pass
    return out


def faults():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"majflt": r.ru_majflt, "minflt": r.ru_minflt}


def _delta(after, before):
    return {k: after[k] - before[k] for k in after if k in before}


def _disk_of(path):
    """Block device name (``vda``...) holding ``path``, or None (tmpfs, overlay, no /sys)."""
    try:
        st = os.stat(path)
        real = os.path.realpath(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
        name = os.path.basename(real)
        return name if os.path.exists(real) else None
    except OSError:
        return None


def _disk_written(dev):
    """Bytes written to block device ``dev`` since boot (/proc/diskstats), or None."""
    if dev is None:
        return None
    try:
        with open("/proc/diskstats") as f:
            for line in f:
                p = line.split()
                if len(p) > 9 and p[2] == dev:
                    return int(p[9]) * 512
    except (OSError, ValueError):
        pass
    return None


def _gb(x):
    return None if x is None else x / 1e9


# --------------------------------------------------------------------------- child processes

def run_child(kind, cfg, progress=None, progress_every=10.0, poll=0.25):
    """Run this script as ``--child`` in a fresh process and return its result.

    The child's progress lines are echoed; its RssAnon / VmRSS are polled from here (so the
    child has no extra thread). Returns ``(result dict or None, returncode, polled peaks)``.
    """
    cmd = [sys.executable, os.path.abspath(__file__), "--child",
           json.dumps(dict(cfg, kind=kind))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1)
    box = {}

    def reader():
        for line in proc.stdout:
            if line.startswith(RESULT_TAG):
                box["result"] = json.loads(line[len(RESULT_TAG):])
            else:
                print(line, end="", flush=True)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    peaks = {"RssAnon": 0, "VmRSS": 0}
    t0 = last = time.perf_counter()
    while proc.poll() is None:
        st = proc_status(proc.pid)
        for k in peaks:
            peaks[k] = max(peaks[k], st.get(k, 0))
        now = time.perf_counter()
        if progress is not None and now - last >= progress_every:
            progress(now - t0)
            last = now
        time.sleep(poll)
    t.join(10)
    return box.get("result"), proc.returncode, peaks


def _emit(result):
    print(RESULT_TAG + json.dumps(result), flush=True)


def child_main(cfg):
    try:
        result = {"gen": child_gen, "train": child_train, "create": child_create,
                  "predict": child_predict}[cfg["kind"]](cfg)
    except BaseException as e:  # reported to the parent as an error row
        traceback.print_exc()
        _emit({"error": f"{type(e).__name__}: {e}"})
        return 1
    _emit(result)
    return 0


def _numba_info():
    import numba
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = None
    return {"numba_threads": numba.get_num_threads(), "numba_threading_layer": layer}


def child_gen(cfg):
    """Write batch pools: for each job, X (n, B, D) float32 and Y (n, B) int64 .npy files."""
    import gc
    from fastsampled.datasets import SyntheticXC
    out = []
    for job in cfg["jobs"]:
        t0 = time.perf_counter()
        task = SyntheticXC(job["V"], job["D"], seed=job.get("seed", 0))
        n, bsz = job["n"], job["B"]
        X = np.lib.format.open_memmap(job["prefix"] + "_x.npy", "w+", np.float32,
                                      (n, bsz, job["D"]))
        Y = np.lib.format.open_memmap(job["prefix"] + "_y.npy", "w+", np.int64, (n, bsz))
        for i in range(n):
            X[i], Y[i] = task.batch(bsz, step=i)
        X.flush()
        Y.flush()
        del X, Y, task
        gc.collect()
        dt = time.perf_counter() - t0
        log(f"data V={job['V']:.0e} D={job['D']}: {n} batches of {bsz} in {dt:.1f} s")
        out.append(dt)
    t0 = time.perf_counter()
    _warm_kernels(cfg["jobs"][0]["prefix"], cfg["warm_dir"])
    log(f"Numba kernels compiled or loaded from the cache in {time.perf_counter() - t0:.1f} s")
    return {"seconds": out}


def _warm_kernels(prefix, store_dir):
    """Run every code path of the measurements once on tiny heads, with the same argument
    types (read-only mapped batches, in-RAM arrays and stores), so that Numba compiles and
    caches them here (after a source change) and not in a measured process, where the
    compilation would add seconds to the first step and its memory to VmHWM."""
    import fastsampled as fs
    X, Y, _ = _load_pool(prefix)
    x, y = X[0], np.minimum(Y[0], 999)
    y.flags.writeable = False  # as the measured processes' mapped labels
    for opt in ("sgd", "adagrad", "adam"):
        h = fs.SampledSoftmaxHead(1000, X.shape[2], num_sampled=S, optimizer=opt)
        h.train_step(x, y)
    h.predict(x[:PREDICT_B], k=PREDICT_K)
    h.evaluate(x[:PREDICT_B], y[:PREDICT_B], k=PREDICT_K)
    with fs.SampledSoftmaxHead(1000, X.shape[2], path=store_dir, num_sampled=S,
                               overwrite=True) as h:
        h.train_step(x, y)
    shutil.rmtree(store_dir, ignore_errors=True)


def _load_pool(prefix):
    """Map a batch pool read-only and read it once (page cache, outside any timing)."""
    X = np.asarray(np.load(prefix + "_x.npy", mmap_mode="r"))
    Y = np.asarray(np.load(prefix + "_y.npy", mmap_mode="r"))
    float(X.sum(dtype=np.float64))
    int(Y.sum())
    return X, Y, X.nbytes + Y.nbytes


def child_train(cfg):
    """Time ``train_step`` of one head per optimizer, round robin, one batch per step."""
    import fastsampled as fs
    res = {"mem": {"start": proc_status()}, "meminfo_before": meminfo()}
    X, Y, res["data_bytes"] = _load_pool(cfg["data"])
    res["mem"]["data_loaded"] = proc_status()
    warm, steps = cfg["warmup"], cfg["steps"]
    heads = {}
    t0 = time.perf_counter()
    if cfg.get("store"):
        heads[cfg["opts"][0]] = fs.SampledSoftmaxHead.load(cfg["store"], "r+")
    else:
        for j, opt in enumerate(cfg["opts"]):
            heads[opt] = fs.SampledSoftmaxHead(cfg["V"], cfg["D"], num_sampled=S,
                                               optimizer=opt, seed=j)
    res["construct_s"] = time.perf_counter() - t0
    res["mem"]["constructed"] = proc_status()
    log(f"{len(heads)} head(s) ready in {res['construct_s']:.1f} s: "
        + "; ".join(repr(h) for h in heads.values()))
    if cfg.get("store") and cfg.get("warm", True):
        # what a user of a store larger than RAM does first: the frequent rows resident
        f0, io0 = faults(), proc_io()
        res["warm"] = next(iter(heads.values())).warm()
        res["warm"]["faults"] = _delta(faults(), f0)
        res["warm"]["io"] = _delta(proc_io(), io0)
        res["mem"]["warmed_cache"] = proc_status()
        w = res["warm"]
        log(f"head.warm(): {w['rows']:,} rows, {w['bytes'] / 1e9:.2f} GB read in "
            f"{w['seconds']:.1f} s ({w['bytes'] / 1e9 / max(w['seconds'], 1e-9):.2f} GB/s)")

    losses = {opt: [] for opt in heads}
    for opt, h in heads.items():
        for i in range(warm):
            losses[opt].append(h.train_step(X[i], Y[i])[0])
    res["mem"]["warmed_up"] = proc_status()

    def step_fn(opt, h, offset):
        pos = [0]
        ls = losses[opt]

        def fn():
            k = warm + (pos[0] + offset) % steps
            pos[0] += 1
            ls.append(h.train_step(X[k], Y[k])[0])
        return fn

    fns = {opt: step_fn(opt, h, j) for j, (opt, h) in enumerate(heads.items())}
    f0, io0 = faults(), proc_io()
    stats = retry_if_busy(
        lambda: timeit_many(fns, steps, 0, cfg["max_seconds"], keep_times=cfg.get("series")),
        cfg.get("retries", 0), cfg.get("wait", 0.0))
    res["faults_timed"] = _delta(faults(), f0)
    res["io_timed"] = _delta(proc_io(), io0)
    res["mem"]["end"] = proc_status()
    res["meminfo_after"] = meminfo()
    for opt, st in stats.items():
        ts = st.pop("times", None)
        if ts:
            m = max(1, len(ts) // 10)
            st["median_first_10pct"] = float(np.median(ts[:m]))
            st["median_last_10pct"] = float(np.median(ts[-m:]))
            st["max"] = float(max(ts))
            st["total_s"] = float(sum(ts))
            k = min(len(ts), 1000)      # the first 1000 steps after warm-up, on their own
            st["steps_per_s_first_1000"] = k / float(sum(ts[:k]))
            st["steps_per_s_last_third"] = (len(ts) - 2 * len(ts) // 3) / float(
                sum(ts[2 * len(ts) // 3:]))
        ls = losses[opt]
        st["loss_first"] = float(ls[0])
        st["loss_last20"] = float(np.mean(ls[-20:]))
    res["stats"] = stats
    res["steps_done"] = {opt: h.step for opt, h in heads.items()}
    for h in heads.values():
        h.close()
    res.update(_numba_info())
    res["machine"] = machine_info()
    return res


def child_create(cfg):
    """Create a memory-mapped SGD head store at ``cfg['path']`` (written at disk speed)."""
    import fastsampled as fs
    t0 = time.perf_counter()
    head = fs.SampledSoftmaxHead(cfg["V"], cfg["D"], path=cfg["path"], num_sampled=S,
                                 optimizer="sgd", seed=0, overwrite=True)
    head.close()
    dt = time.perf_counter() - t0
    p = pathlib.Path(cfg["path"])
    disk = sum(f.stat().st_blocks * 512 for f in p.rglob("*") if f.is_file())
    (p / MARKER).write_text(json.dumps({"V": cfg["V"], "D": cfg["D"], "S": S,
                                        "create_s": dt, "disk_bytes": disk}))
    return {"create_s": dt, "disk_bytes": disk, "mem_end": proc_status()}


def child_predict(cfg):
    """``predict(x, k)`` vs numpy ``x @ W.T`` (into a preallocated output), interleaved."""
    import fastsampled as fs
    X, Y, _ = _load_pool(cfg["data"])
    V, dim = cfg["V"], cfg["D"]
    head = fs.SampledSoftmaxHead(V, dim, num_sampled=S, seed=0)
    W = head.weights
    out = np.empty((X.shape[1], V), np.float32)
    n = X.shape[0]
    pos = {"p": 0, "n": 0, "e": 0}

    def nxt(key):
        pos[key] += 1
        return pos[key] % n

    fns = {"predict": lambda: head.predict(X[nxt("p")], k=PREDICT_K),
           "numpy": lambda: np.matmul(X[nxt("n")], W.T, out=out),
           "evaluate": lambda: head.evaluate(X[nxt("e")], Y[pos["e"] % n], k=PREDICT_K)}
    # a correctness spot check: predict's top-1 matches numpy's argmax (+ zero biases)
    ids, _ = head.predict(X[0], k=PREDICT_K)
    ref = np.argmax(np.matmul(X[0], W.T, out=out), axis=1)
    agree = float(np.mean(ids[:, 0] == ref))
    stats = retry_if_busy(lambda: timeit_many(fns, cfg["reps"], 1, cfg["max_seconds"]),
                          cfg.get("retries", 0), cfg.get("wait", 0.0))
    res = {"stats": stats, "top1_agrees_with_numpy": agree, "mem_end": proc_status()}
    res.update(_numba_info())
    res["machine"] = machine_info()
    return res


# --------------------------------------------------------------------------- rows

def _tf_range(lo, hi, unit):
    return f"{lo:g} {unit}" if lo == hi else f"{lo:g}-{hi:g} {unit}"


def _row(case, V, dim, opt=None, st=None, child=None, peaks=None, value=None, unit=None,
         tf=None, vs_tf=None, of=()):
    """One result row; ``of``: the timings a derived ``value`` (a ratio, a rate) comes from,
    when ``st`` is not given (they decide ``disturbed``)."""
    r = {"case": case, "V": V, "D": dim, "opt": opt}
    if st:
        r.update(median_ms=st["median"] * 1e3, p10_ms=st["p10"] * 1e3, p90_ms=st["p90"] * 1e3,
                 reps=st["n"], others_cpu=st.get("others_cpu"), load1=st.get("load1"),
                 attempts=st.get("attempts", 1))
    if child:
        end = child.get("mem", {}).get("end") or child.get("mem_end") or {}
        r["peak_rss_GB"] = _gb(end.get("VmHWM"))
        anon = max(end.get("RssAnon", 0), (peaks or {}).get("RssAnon", 0))
        r["anon_GB"] = _gb(anon) if anon else None
    r.update(value=value, unit=unit, TF=tf, vs_TF=vs_tf,
             disturbed=disturbed(st, *of) if (st or of) else None)
    return r


def _error_row(case, msg):
    log(f"FAILED: {case}: {msg}")
    return {"case": case, "error": str(msg)[:70]}


def _child_error(result, rc):
    if rc == -9:
        return "killed by SIGKILL (out of memory?)"
    if result is None:
        return f"child exited with {rc} and no result"
    return result.get("error") or f"child exited with {rc}"


# --------------------------------------------------------------------------- parent parts

class Run:
    """State of one benchmark run: rows, notes, child results, temporary data directory."""

    def __init__(self, args, cfg):
        self.args, self.cfg = args, cfg
        self.rows, self.notes, self.children, self.machine = [], [], {}, None
        self.mmap_info = None
        self.tmp = tempfile.mkdtemp(prefix="fastsampled-bench-head-")
        self.retry = {"retries": 0 if args.quick else 2,
                      "wait": max(args.wait_quiet, 0 if args.quick else 60)}

    def data(self, name):
        return os.path.join(self.tmp, name)

    def child(self, name, kind, cfg, **kw):
        result, rc, peaks = run_child(kind, cfg, **kw)
        ok = rc == 0 and result is not None and "error" not in result
        self.children[name] = {"returncode": rc, "polled_peaks": peaks,
                               "result": {k: v for k, v in (result or {}).items()
                                          if k != "machine"}}
        if ok and result.get("machine"):
            self.machine = result["machine"]
        return (result if ok else None), rc, peaks, (None if ok else _child_error(result, rc))


def gen_data(run, jobs):
    section("generating batches (SyntheticXC, Zipf labels) and warming Numba's cache in a "
            "separate process")
    result, rc, _, err = run.child("gen", "gen", {"jobs": jobs,
                                                  "warm_dir": run.data("warm-store")})
    if err:
        run.rows.append(_error_row("data generation", err))
        return False
    return True


def bench_ram(run):
    cfg = run.cfg
    res = {}
    for V in cfg["ram_V"]:
        section(f"train_step, weights in RAM: V={V:.0e}, B={B}, D={D}, S={S}, SGD "
                "(fresh process)")
        need = V * D * 4 * 1.3 + 2**30   # weights + batches + interpreter, with a margin
        avail = meminfo().get("MemAvailable")
        if avail is not None and avail < need:
            msg = f"{avail / 2**30:.1f} GiB available, ~{need / 2**30:.1f} GiB needed"
            run.notes.append(f"skipped V={V:.0e}: {msg}")
            log(f"skipped: {msg}")
            run.rows.append({"case": "train_step in RAM", "V": V, "D": D, "opt": "sgd",
                             "skipped": msg})
            continue
        result, rc, peaks, err = run.child(
            f"ram_{V:.0e}", "train",
            dict(V=V, D=D, opts=["sgd"], data=run.data(f"ram_{V}"), warmup=cfg["warmup"],
                 steps=cfg["steps"], max_seconds=cfg["step_seconds"], **run.retry))
        if err:
            run.rows.append(_error_row(f"train_step in RAM V={V:.0e}", err))
            continue
        st = result["stats"]["sgd"]
        med = st["median"] * 1e3
        tf = vs = None
        if V in TF_STEP_MS:
            lo, hi = TF_STEP_MS[V]
            tf = _tf_range(lo, hi, "ms")
            vs = f"{lo / med:.1f}x" if lo == hi else f"{lo / med:.1f}-{hi / med:.1f}x"
            if V == 10**7:
                tf += f", {_tf_range(*TF_PEAK_RSS_GB, 'GB')} peak RSS"
        run.rows.append(_row("train_step in RAM", V, D, "sgd", st, result, peaks,
                             tf=tf, vs_tf=vs))
        mem = result["mem"]
        log(f"median {med:.3f} ms (p10 {st['p10'] * 1e3:.3f}, p90 {st['p90'] * 1e3:.3f}, "
            f"n={st['n']}, others_cpu {st.get('others_cpu')}); head built in "
            f"{result['construct_s']:.1f} s; VmHWM after construction "
            f"{_gb(mem['constructed'].get('VmHWM')):.2f} GB, at end "
            f"{_gb(mem['end'].get('VmHWM')):.2f} GB; RssAnon at end "
            f"{_gb(mem['end'].get('RssAnon')):.2f} GB; loss {st['loss_first']:.3f} -> "
            f"{st['loss_last20']:.3f}")
        res[V] = st
    lo, hi = cfg["scale_pair"]
    if lo in res and hi in res:
        ratio = res[hi]["median"] / res[lo]["median"]
        run.rows.append(_row(f"step V={hi:.0e} / step V={lo:.0e} (separate processes)", hi, D,
                             "sgd", value=ratio, unit="x", of=(res[lo], res[hi])))
    return res


def bench_optimizers(run):
    cfg = run.cfg
    V = cfg["opt_V"]
    section(f"optimizers at V={V:.0e}: sgd, adagrad, adam heads stepped round robin "
            "(one process)")
    opts = ["sgd", "adagrad", "adam"]
    result, rc, peaks, err = run.child(
        "optimizers", "train",
        dict(V=V, D=D, opts=opts, data=run.data("opt"), warmup=cfg["warmup"],
             steps=cfg["opt_steps"], max_seconds=cfg["step_seconds"] * 1.5, **run.retry))
    if err:
        run.rows.append(_error_row(f"optimizers V={V:.0e}", err))
        return
    stats = result["stats"]
    sgd = stats["sgd"]
    for opt in opts:
        st = stats[opt]
        ratio = st["median"] / sgd["median"]
        if opt == "sgd":
            run.rows.append(_row("train_step in RAM, 3 optimizers interleaved", V, D, opt, st,
                                 result, peaks))
        else:
            run.rows.append(_row("train_step in RAM, 3 optimizers interleaved", V, D, opt, st,
                                 value=ratio, unit="x sgd"))
        log(f"{opt}: median {st['median'] * 1e3:.3f} ms ({ratio:.2f}x sgd), loss "
            f"{st['loss_first']:.3f} -> {st['loss_last20']:.3f}")
    mem = result["mem"]["end"]
    log(f"process with all three heads: VmHWM {_gb(mem.get('VmHWM')):.2f} GB, RssAnon "
        f"{_gb(mem.get('RssAnon')):.2f} GB")


def _creating_marker(head_dir):
    """File beside ``head_dir`` that exists while this script creates a store there."""
    return head_dir.with_name(head_dir.name + ".creating")


def _store_state(head_dir, V, dim):
    """"reuse", "recreate" (ours or empty) or an error message for ``head_dir``."""
    if not head_dir.exists() or not any(head_dir.iterdir()):
        return "recreate"
    marker = head_dir / MARKER
    if _creating_marker(head_dir).exists():   # an earlier creation was cut short
        return "recreate"
    if not marker.exists():
        return (f"{head_dir} exists, is not empty and was not created by this benchmark "
                f"(no {MARKER}); remove it or pass another --store-dir")
    try:
        m = json.loads(marker.read_text())
        h = json.loads((head_dir / "head.json").read_text())
    except (OSError, ValueError):
        return "recreate"
    same = (m.get("V"), m.get("D"), m.get("S")) == (V, dim, S) and \
        (h.get("num_classes"), h.get("dim"), h.get("num_sampled"), h.get("dtype"),
         h.get("optimizer", {}).get("name"), h.get("loss")) == \
        (V, dim, S, "float32", "sgd", "sampled_softmax")
    return "reuse" if same else "recreate"


def bench_mmap(run):
    cfg, args = run.cfg, run.args
    V, dim = cfg["mmap_V"], MMAP_D
    section(f"train_step, memory-mapped weights: V={V:.0e}, D={dim}, B={B}, S={S}, SGD "
            "(fresh process)")
    if args.store_dir:
        root = pathlib.Path(args.store_dir)
    elif args.quick:
        root = pathlib.Path(run.tmp) / "store"
    else:
        root = pathlib.Path(tempfile.gettempdir()) / "fastsampled-bench-1e8"
    head_dir = root / f"head-V{V}-D{dim}"
    store_bytes = V * dim * 4 + V * 4
    info = {"store_dir": str(head_dir), "store_bytes": store_bytes,
            "mem_total": meminfo().get("MemTotal")}
    run.mmap_info = info
    state = _store_state(head_dir, V, dim)
    if state not in ("reuse", "recreate"):
        run.rows.append(_error_row("memory-mapped store", state))
        return
    if state == "reuse" and args.fresh:
        state = "recreate"
    if state == "reuse":
        m = json.loads((head_dir / MARKER).read_text())
        log(f"reusing the store at {head_dir} (created earlier in {m.get('create_s', 0):.0f} s; "
            "--fresh recreates it)")
        info["created"] = False
    else:
        root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(root).free
        have = free + (sum(f.stat().st_blocks * 512 for f in head_dir.rglob("*") if f.is_file())
                       if head_dir.exists() else 0)
        if have < store_bytes * 1.05:
            run.rows.append(_error_row("memory-mapped store",
                                       f"{have / 1e9:.1f} GB free at {root}, "
                                       f"{store_bytes / 1e9:.1f} GB needed"))
            return
        dev = _disk_of(root)
        w0 = _disk_written(dev)
        mi0 = meminfo()
        log(f"creating {store_bytes / 1e9:.2f} GB of weights+biases at {head_dir} "
            f"(device {dev}, RAM {mi0.get('MemTotal', 0) / 2**30:.1f} GiB) ...")

        def progress(elapsed):
            w = _disk_written(dev)
            mi = meminfo()
            disk = (f"{(w - w0) / 1e9:.1f} GB written to {dev} "
                    f"({(w - w0) / 1e6 / max(elapsed, 1e-9):.0f} MB/s), ") if w is not None else ""
            log(f"creating: {elapsed:.0f} s, {disk}Dirty {_gb(mi.get('Dirty', 0)):.1f} GB, "
                f"Writeback {_gb(mi.get('Writeback', 0)):.1f} GB, Cached "
                f"{_gb(mi.get('Cached', 0)):.1f} GB, MemAvailable "
                f"{_gb(mi.get('MemAvailable', 0)):.1f} GB")

        _creating_marker(head_dir).write_text("")
        result, rc, peaks, err = run.child("create", "create",
                                           dict(V=V, D=dim, path=str(head_dir)),
                                           progress=progress,
                                           progress_every=2.0 if args.quick else 10.0)
        if err:
            run.rows.append(_error_row("create memory-mapped store", err))
            return
        _creating_marker(head_dir).unlink()
        dt = result["create_s"]
        info.update(created=True, create_s=dt, disk_bytes=result["disk_bytes"],
                    create_peak_anon=peaks.get("RssAnon"))
        log(f"store created in {dt:.1f} s ({result['disk_bytes'] / 1e9 / dt:.2f} GB/s), "
            f"{result['disk_bytes'] / 1e9:.2f} GB on disk")
        run.rows.append(_row("create memory-mapped SGD head store (weights+biases, fsync)", V,
                             dim, "sgd", value=dt, unit="s"))
    result, rc, peaks, err = run.child(
        "mmap", "train",
        dict(V=V, D=dim, opts=["sgd"], data=run.data("mmap"), store=str(head_dir),
             warmup=cfg["warmup"], steps=cfg["mmap_steps"], max_seconds=cfg["mmap_seconds"],
             series=True, warm=not run.args.no_warm))
    info["returncode"] = rc
    info["polled_peak_anon"] = peaks.get("RssAnon")
    info["polled_peak_rss"] = peaks.get("VmRSS")
    oom = rc == -9
    if err:
        run.rows.append(_error_row("memory-mapped train_step", err))
        run.rows.append(_row("memory-mapped: process exit code" + (
            " (SIGKILL: probably killed for memory)" if oom else ""), V, dim, "sgd", value=rc,
            unit="exit code"))
        if peaks.get("RssAnon"):
            run.rows.append(_row("memory-mapped: peak anonymous RSS (polled)", V, dim, "sgd",
                                 value=_gb(peaks["RssAnon"]), unit="GB"))
        return
    st = result["stats"]["sgd"]
    rate = 1.0 / st["mean"]
    mem = result["mem"]
    info["warm"] = result.get("warm")
    if info["warm"]:
        w = info["warm"]
        run.rows.append(_row(f"memory-mapped: head.warm() first ({w['rows']:.2e} most frequent "
                             f"rows, {w['bytes'] / 1e9:.1f} GB)", V, dim, "sgd",
                             value=w["seconds"], unit="s"))
    else:
        run.notes.append("memory-mapped case run cold (--no-warm): no head.warm() before it")
    anon = max(mem["end"].get("RssAnon", 0), peaks.get("RssAnon", 0))
    run.rows.append(_row("memory-mapped train_step: steps/s = 1/mean", V, dim, "sgd", st,
                         result, peaks, value=rate, unit="steps/s"))
    sustained = st.get("steps_per_s_last_third")
    if sustained:   # once Dirty reaches the flusher's threshold, written-back pages re-fault
        run.rows.append(_row("memory-mapped train_step: sustained steps/s (last third)", V, dim,
                             "sgd", value=sustained, unit="steps/s", of=(st,)))
    run.rows.append(_row("memory-mapped: peak anonymous RSS", V, dim, "sgd", value=_gb(anon),
                         unit="GB"))
    run.rows.append(_row("memory-mapped: process exit code", V, dim, "sgd", value=rc,
                         unit="exit code"))
    before, after = result["meminfo_before"], result["meminfo_after"]
    info.update(meminfo_before=before, meminfo_after=after, mem=mem,
                faults_timed=result["faults_timed"], io_timed=result["io_timed"],
                data_bytes=result["data_bytes"],
                steps_per_s_mean=rate, steps_per_s_median=1.0 / st["median"],
                median_first_10pct_ms=st["median_first_10pct"] * 1e3,
                median_last_10pct_ms=st["median_last_10pct"] * 1e3, max_ms=st["max"] * 1e3,
                steps_per_s_first_1000=st["steps_per_s_first_1000"],
                steps_per_s_last_third=st["steps_per_s_last_third"])
    n = st["n"]
    log(f"median {st['median'] * 1e3:.3f} ms, mean {st['mean'] * 1e3:.3f} ms -> "
        f"{rate:.0f} steps/s (1/median {1 / st['median']:.0f}); first 10% median "
        f"{st['median_first_10pct'] * 1e3:.3f} ms, last 10% {st['median_last_10pct'] * 1e3:.3f} "
        f"ms, max {st['max'] * 1e3:.1f} ms; {n} steps; steps/s (1/mean) over the first 1000 "
        f"{st['steps_per_s_first_1000']:.0f}, over the last third {st['steps_per_s_last_third']:.0f}")
    log("page cache      before -> after the run (GB): " + ", ".join(
        f"{k} {_gb(before.get(k, 0)):.2f} -> {_gb(after.get(k, 0)):.2f}"
        for k in ("Cached", "Dirty", "Writeback", "MemAvailable", "MemFree")))
    log("process (GB): " + ", ".join(
        f"{k} {_gb(mem['end'].get(k, 0)):.2f}" for k in ("VmHWM", "VmRSS", "RssAnon", "RssFile",
                                                          "RssShmem"))
        + f"; polled peak RssAnon {_gb(peaks.get('RssAnon', 0)):.2f}; batches mapped from "
        f"file: {result['data_bytes'] / 1e9:.2f} GB (part of RssFile)")
    f, io = result["faults_timed"], result["io_timed"]
    log(f"during the timed steps: {f.get('majflt')} major / {f.get('minflt')} minor page faults "
        f"({f.get('majflt', 0) / max(n, 1):.1f} major per step), "
        f"read {io.get('read_bytes', 0) / 1e6:.0f} MB, wrote {io.get('write_bytes', 0) / 1e6:.0f} "
        "MB (this process's own I/O; dirty pages are written back by the kernel)")


def bench_predict(run):
    cfg = run.cfg
    V = cfg["predict_V"]
    section(f"predict top-{PREDICT_K}: V={V:.0e}, B={PREDICT_B}, D={D} vs numpy x @ W.T "
            "(fresh process, interleaved)")
    result, rc, peaks, err = run.child(
        "predict", "predict",
        dict(V=V, D=D, data=run.data("predict"), reps=cfg["predict_reps"],
             max_seconds=cfg["predict_seconds"], **run.retry))
    if err:
        run.rows.append(_error_row(f"predict V={V:.0e}", err))
        return
    stats = result["stats"]
    flops = 2.0 * PREDICT_B * V * D
    rate_np = flops / stats["numpy"]["median"] / 1e9
    rate_fs = flops / stats["predict"]["median"] / 1e9
    ratio = rate_fs / rate_np
    run.rows.append(_row("numpy x @ W.T into a preallocated output (default BLAS threads)",
                         V, D, None, stats["numpy"], value=rate_np, unit="GFLOP/s"))
    run.rows.append(_row(f"predict top-{PREDICT_K}", V, D, None, stats["predict"], result, peaks,
                         value=rate_fs, unit="GFLOP/s"))
    run.rows.append(_row(f"predict FLOP rate / numpy's ({100 * ratio:.0f}%)", V, D, None,
                         value=ratio, unit="x numpy", of=(stats["predict"], stats["numpy"])))
    run.rows.append(_row(f"evaluate top-{PREDICT_K} + full-softmax loss (informative)", V, D,
                         None, stats["evaluate"], value=flops / stats["evaluate"]["median"] / 1e9,
                         unit="GFLOP/s",
                         tf=f"full-softmax train step {TF_FULL_SOFTMAX_S:g} s at 1e6 (not the "
                            "same op)"))
    log(f"predict {stats['predict']['median'] * 1e3:.1f} ms = {rate_fs:.1f} GFLOP/s; numpy "
        f"{stats['numpy']['median'] * 1e3:.1f} ms = {rate_np:.1f} GFLOP/s ({100 * ratio:.0f}%); "
        f"evaluate {stats['evaluate']['median'] * 1e3:.1f} ms; top-1 agrees with numpy's "
        f"argmax on {100 * result['top1_agrees_with_numpy']:.1f}% of rows")


# --------------------------------------------------------------------------- main

def parser():
    p = arg_parser(__doc__.splitlines()[0])
    p.add_argument("--store-dir", default=None, metavar="DIR",
                   help="where the memory-mapped store is created and kept for later runs "
                        "(default /tmp/fastsampled-bench-1e8; --quick: a temporary directory "
                        "removed afterwards). An existing store created by this script with the "
                        "same V and D is reused")
    p.add_argument("--fresh", action="store_true",
                   help="recreate the memory-mapped store even when a matching one exists")
    p.add_argument("--no-warm", action="store_true",
                   help="memory-mapped case: train without head.warm() first (a cold page cache)")
    p.add_argument("--skip-mmap", action="store_true",
                   help="skip the memory-mapped case (it needs ~26 GB of disk in full mode)")
    p.add_argument("--only", nargs="+", choices=("ram", "opt", "predict", "mmap"), default=None,
                   help="run only these cases (e.g. --only mmap; combine with --out so the "
                        "full results file is not replaced by a partial one)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if args.child is not None:
        return child_main(json.loads(args.child))
    cfg = dict(QUICK if args.quick else FULL)
    run = Run(args, cfg)
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    try:
        busy_before = wait_for_quiet(args.wait_quiet)
        want = set(args.only or ("ram", "opt", "predict", "mmap"))
        if args.skip_mmap:
            want.discard("mmap")
        n_ram = cfg["warmup"] + cfg["steps"]
        jobs = []
        if "ram" in want:
            jobs += [dict(V=V, D=D, B=B, n=n_ram, prefix=run.data(f"ram_{V}"))
                     for V in cfg["ram_V"]]
        if "opt" in want:
            jobs.append(dict(V=cfg["opt_V"], D=D, B=B, n=cfg["warmup"] + cfg["opt_steps"],
                             prefix=run.data("opt"), seed=1))
        if "predict" in want:
            jobs.append(dict(V=cfg["predict_V"], D=D, B=PREDICT_B, n=cfg["predict_reps"] + 2,
                             prefix=run.data("predict"), seed=2))
        if "mmap" in want:
            jobs.append(dict(V=cfg["mmap_V"], D=MMAP_D, B=B,
                             n=cfg["warmup"] + cfg["mmap_steps"], prefix=run.data("mmap"),
                             seed=3))
        if gen_data(run, jobs):
            if "ram" in want:
                bench_ram(run)
            if "opt" in want:
                bench_optimizers(run)
            if "predict" in want:
                bench_predict(run)
            # last: its store creation and dirty pages keep the disk and the kernel's
            # writeback threads busy for a while
            if "mmap" in want:
                bench_mmap(run)
            else:
                run.notes.append("memory-mapped case not run (--skip-mmap / --only)")
    finally:
        shutil.rmtree(run.tmp, ignore_errors=True)
    quick = " [quick: smaller sizes stand in for the full run's V]" if args.quick else ""
    run.notes += [
        f"B={B}, D={D} (memory-mapped case D={MMAP_D}), S={S}, T=1, float32, sampled softmax, "
        "log-uniform sampler; inputs and Zipf labels from SyntheticXC(V, D).batch(B, step), "
        "generated beforehand in another process, one batch per timed step" + quick,
        "each configuration runs in a fresh process: peak_rss_GB = its VmHWM, anon_GB = its "
        "largest RssAnon (polled every 0.25 s from the parent, and at the end); the batches "
        "are mapped from .npy files, so they count in VmHWM/RssFile, not in anon_GB",
        "VmHWM includes the construction of the in-RAM head (see children.*.result.mem."
        "constructed in the JSON for the peak right after it)",
        "the V=1e7 / V=1e6 ratio compares two processes run one after the other (not "
        "interleaved); the optimizer rows are interleaved round robin in one process",
        "memory-mapped steps/s = 1 / mean step time over all timed steps (stalls included; 1/mean of the first 1000 and of the last third in meta.mmap); 1/median is in "
        "meta.mmap.steps_per_s_median",
        "predict GFLOP/s counts 2*B*V*D for the product x @ W.T; numpy computes the same "
        "product into a preallocated (B, V) float32 output with its default BLAS threads",
        f"TF (TensorFlow 2.21 CPU measured earlier on a 2-core Zen 3 EPYC VM, not run here): "
        f"train step "
        f"{_tf_range(*TF_STEP_MS[10**6], 'ms')} at 1e6, {_tf_range(*TF_STEP_MS[10**7], 'ms')} at "
        f"1e7 with {_tf_range(*TF_PEAK_RSS_GB, 'GB')} peak RSS; full-softmax step "
        f"{TF_FULL_SOFTMAX_S:g} s at 1e6",
        f"disturbed = yes: measured while other processes used > {BUSY_OTHERS} cores "
        "(others_cpu = those cores): rerun on a quiet machine for a clean figure",
        f"loadavg before run: {list(load_before)}; CPUs busy with other work just before: "
        f"{busy_before}; wall time {time.perf_counter() - t_start:.1f} s",
    ]
    if run.mmap_info:
        mi = run.mmap_info
        if mi.get("created"):
            run.notes.append(f"memory-mapped store created this run in {mi['create_s']:.1f} s "
                             f"({mi['disk_bytes'] / 1e9:.2f} GB on disk) at {mi['store_dir']}")
        elif "created" in mi:
            run.notes.append(f"memory-mapped store reused from {mi['store_dir']}")
    meta = {"quick": args.quick, "config": cfg, "B": B, "D": D, "S": S, "mmap_D": MMAP_D,
            "predict_B": PREDICT_B, "cpu_busy_before": busy_before, "notes": run.notes,
            "mmap": run.mmap_info, "children": run.children,
            "tf_reference": {"step_ms": {str(k): v for k, v in TF_STEP_MS.items()},
                             "peak_rss_gb_1e7": TF_PEAK_RSS_GB,
                             "full_softmax_step_s_1e6": TF_FULL_SOFTMAX_S}}
    machine = run.machine or machine_info()
    machine["loadavg_1_5_15"] = list(os.getloadavg())
    write_results("head", run.rows, meta, out_dir_for(args), COLUMNS, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
