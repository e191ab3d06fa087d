"""Shared helpers of the fastsampled benchmarks: machine description, timing, results.

Imported by the ``bench_*.py`` scripts beside it (their own folder is on ``sys.path`` when they
run as scripts). Depends on the standard library and numpy only; numba, scipy, threadpoolctl
and fastsampled are described when importable and reported as missing otherwise.
"""
import argparse
import datetime
import gc
import json
import math
import multiprocessing
import os
import platform
import subprocess
import sys
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "results")


# --------------------------------------------------------------------------- machine

def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_family_model():
    """``"family F model M stepping S"`` from /proc/cpuinfo (identifies the core generation when
    a hypervisor shortens the model name, e.g. family 25 model 1 = AMD Zen 3 "Milan")."""
    from fastsampled._info import cpuinfo
    fields = cpuinfo()
    if "cpu family" not in fields:
        return None
    return (f"family {fields.get('cpu family')} model {fields.get('model')} "
            f"stepping {fields.get('stepping')}")


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return sorted(f for f in flags if f.startswith(("avx", "fma", "sse4")))
    except OSError:
        pass
    return []


def _mem_total_gib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(modname):
    try:
        mod = __import__(modname)
        return getattr(mod, "__version__", "unknown")
    except Exception as e:  # not installed or broken: say so, do not crash
        return f"unavailable ({type(e).__name__})"


def machine_info():
    """Describe the machine and the software stack as a JSON-serialisable dict.

    Call it *after* the benchmarks ran: Numba reports its threading layer only once a
    parallel kernel has executed, and threadpoolctl only sees BLAS libraries already loaded.
    """
    info = {
        "cpu_model": _cpu_model(),
        "cpu_family_model": _cpu_family_model(),
        "cpu_flags_simd": _cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_total_gib": _mem_total_gib(),
        "loadavg_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "numba": _version("numba"),
        "threadpoolctl": _version("threadpoolctl"),
        "env": {k: os.environ[k] for k in sorted(os.environ)
                if k.startswith(("NUMBA_", "OMP_", "OPENBLAS_", "MKL_"))},
    }
    try:
        import fastsampled
        info["fastsampled"] = getattr(fastsampled, "__version__", "unknown")
        info["fastsampled_path"] = os.path.dirname(os.path.abspath(fastsampled.__file__))
    except Exception as e:
        info["fastsampled"] = f"unavailable ({type(e).__name__})"
    try:
        import numba
        info["numba_num_threads"] = numba.get_num_threads()
        info["numba_config_num_threads"] = numba.config.NUMBA_NUM_THREADS
        info["numba_threading_layer_requested"] = numba.config.THREADING_LAYER
        try:
            info["numba_threading_layer"] = numba.threading_layer()
        except ValueError:
            info["numba_threading_layer"] = "not initialised (no parallel kernel ran yet)"
    except Exception as e:
        info["numba_num_threads"] = f"unavailable ({type(e).__name__})"
    try:
        try:
            import scipy.linalg.cython_blas  # noqa: F401  (load the BLAS numba's np.dot uses)
        except Exception:
            pass
        import threadpoolctl
        info["threadpools"] = [
            {k: lib.get(k) for k in ("user_api", "internal_api", "num_threads", "version",
                                     "threading_layer", "architecture", "filepath")}
            for lib in threadpoolctl.threadpool_info()]
    except Exception as e:
        info["threadpools"] = f"unavailable ({type(e).__name__})"
    return info


def format_machine(info):
    """A few human-readable lines summarising :func:`machine_info`."""
    blas = info.get("threadpools")
    if isinstance(blas, list):
        blas = "; ".join(f"{b['internal_api']} {b['version']} ({b['user_api']}, "
                         f"{b['num_threads']} thr, {b.get('architecture')}, "
                         f"{os.path.basename(str(b['filepath']))})" for b in blas)
    return "\n".join([
        f"CPU      : {info['cpu_model']}, {info.get('cpu_family_model')}  "
        f"({info['usable_cpus']}/{info['logical_cpus']} usable cpus, {info['mem_total_gib']} GiB, "
        f"simd: {' '.join(info['cpu_flags_simd'])})",
        f"load avg : {info['loadavg_1_5_15']}",
        f"software : python {info['python']}, numpy {info['numpy']}, scipy {info['scipy']}, "
        f"numba {info['numba']}, fastsampled {info.get('fastsampled')}",
        f"numba    : {info.get('numba_num_threads')} threads, layer "
        f"{info.get('numba_threading_layer')}",
        f"threads  : {blas}",
        f"env      : {info['env']}",
    ])


def _cpu_times():
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    return sum(vals[:8]), idle


def cpu_busy_fraction(interval=1.0):
    """Fraction of all CPUs busy over ``interval`` seconds (from /proc/stat; None elsewhere).

    Sampled while this process sleeps, so it measures *other* work on the machine.
    """
    try:
        t0, i0 = _cpu_times()
        time.sleep(interval)
        t1, i1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    return round(1.0 - (i1 - i0) / max(t1 - t0, 1), 3)


def wait_for_quiet(max_wait, threshold=0.15):
    """Wait up to ``max_wait`` seconds until other processes use < ``threshold`` of the CPUs.

    Returns the last busy fraction seen (None where /proc/stat is unavailable). Prints a
    warning when the machine is still busy, since every timing will then be inflated.
    """
    start = time.perf_counter()
    busy = cpu_busy_fraction()
    while busy is not None and busy >= threshold and time.perf_counter() - start < max_wait:
        busy = cpu_busy_fraction(2.0)
    if busy is not None and busy >= threshold:
        print(f"WARNING: other processes keep {100 * busy:.0f}% of the CPUs busy; "
              "timings will be inflated (see load1 / cpu_busy_before in the results)", flush=True)
    return busy


def mem_available():
    """Bytes of memory available to new allocations (/proc/meminfo MemAvailable), or None."""
    from fastsampled._memory import available_memory
    return available_memory() or None


# --------------------------------------------------------------------------- timing

class OtherLoad:
    """CPU used by *other* processes between :meth:`start` and :meth:`stop`, in cores.

    Machine-wide busy time (``/proc/stat``) minus this process's own CPU time
    (``time.process_time``, all its threads), over the wall time. 0 on a quiet machine; about
    1.0 while another process keeps one core busy. None where ``/proc/stat`` is missing.
    Resolution is a clock tick (10 ms), so it is only meaningful over a second or more.
    """

    _HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def start(self):
        try:
            total, idle = _cpu_times()
            self._busy0 = (total - idle) / self._HZ
        except (OSError, ValueError, IndexError):
            self._busy0 = None
        self._own0 = time.process_time()
        self._wall0 = time.perf_counter()
        return self

    def stop(self):
        if self._busy0 is None:
            return None
        try:
            total, idle = _cpu_times()
        except (OSError, ValueError, IndexError):
            return None
        wall = time.perf_counter() - self._wall0
        other = (total - idle) / self._HZ - self._busy0 - (time.process_time() - self._own0)
        return round(max(other, 0.0) / max(wall, 1e-9), 2)


def summarize(times):
    t = np.asarray(times)
    return {"median": float(np.median(t)), "p10": float(np.percentile(t, 10)),
            "p90": float(np.percentile(t, 90)), "min": float(t.min()), "mean": float(t.mean()),
            "n": int(t.size)}


def timeit(fn, repeat=30, warmup=3, max_seconds=None):
    """Time ``fn()`` call by call with ``time.perf_counter``.

    ``warmup`` untimed calls run first (they absorb Numba compilation or cache loading and
    first-touch page faults). The garbage collector is paused while timing. With
    ``max_seconds``, timing stops early once that much time was spent (at least 3 calls).

    Returns
    -------
    dict
        ``median``, ``p10``, ``p90``, ``min``, ``mean`` (seconds), ``n`` (timed calls),
        ``others_cpu`` (cores used by other processes meanwhile, see :class:`OtherLoad`) and
        ``load1`` (1-minute load average when timing ended).
    """
    return timeit_many({"fn": fn}, repeat, warmup, max_seconds)["fn"]


def timeit_many(fns, repeat=30, warmup=3, max_seconds=None, block=1, keep_times=False,
                settle=0.0):
    """Time several callables *interleaved*: round robin, ``block`` consecutive calls each.

    Every callable then sees the same machine conditions, so ratios between them stay
    meaningful on a shared, noisy machine even when absolute times drift. ``repeat`` counts
    rounds (each callable runs ``repeat * block`` timed calls); ``max_seconds`` bounds the whole
    group. Use ``block`` > 1 when mixing thread pools (numpy's BLAS and Numba's): a pool's
    workers keep spinning for a while after its call and slow the *first* call of the other
    pool down, which a block of several calls keeps out of the median. OpenBLAS's workers spin
    for up to ~0.1 s (2**28 cycles), longer than a block of big calls: ``settle`` seconds of
    untimed sleep before each block let them go idle, so each callable is timed in its steady
    state rather than against the other pool's spinning threads.
    Returns ``{name: stats}`` with the fields of :func:`timeit` (plus ``times``, every call's
    duration in order, with ``keep_times``).
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    load = OtherLoad().start()
    try:
        t_start = time.perf_counter()
        for r in range(repeat):
            for name, fn in fns.items():
                if settle:
                    time.sleep(settle)
                for _ in range(block):
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
            if max_seconds is not None and r >= 2 and time.perf_counter() - t_start > max_seconds:
                break
    finally:
        if was_enabled:
            gc.enable()
    others, l1 = load.stop(), load1()
    out = {}
    for name, ts in times.items():
        out[name] = summarize(ts)
        out[name].update(others_cpu=others, load1=l1)
        if keep_times:
            out[name]["times"] = ts
    return out


BUSY_OTHERS = 0.25  # cores used by other processes above which a timing counts as disturbed


def retry_if_busy(measure, retries=0, wait=0.0, threshold=BUSY_OTHERS):
    """Run ``measure()`` (returning a timeit dict or ``{name: timeit dict}``) and, while other
    processes used more than ``threshold`` cores during it, wait up to ``wait`` seconds for
    quiet and measure again, at most ``retries`` more times. Returns the least-disturbed
    result; each stats dict gains ``attempts``.
    """
    def worst(res):
        stats = [res] if "median" in res else list(res.values())
        vals = [st.get("others_cpu") for st in stats]
        return max((v for v in vals if v is not None), default=0.0)

    best, best_load = None, None
    for attempt in range(retries + 1):
        res = measure()
        w = worst(res)
        if best is None or w < best_load:
            best, best_load = res, w
        if w <= threshold or attempt == retries:
            break
        print(f"   (other processes used {w:.2f} cores meanwhile: measuring again)", flush=True)
        wait_for_quiet(wait)
    for st in ([best] if "median" in best else best.values()):
        st["attempts"] = attempt + 1
    return best


def load1():
    """The 1-minute load average now (None where the OS does not say): flags noisy rows."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def disturbed(*stats, own_load=0.0):
    """``"yes"`` when other processes used more than :data:`BUSY_OTHERS` cores during any of
    the timings ``stats`` (timeit dicts; ``own_load``: cores of that load the benchmark put
    there itself, e.g. its burner process), else None. Such a figure does not measure the
    library alone: rerun on a quiet machine for a clean one."""
    busy = [s.get("others_cpu") for s in stats if s]
    busy = [b for b in busy if b is not None]
    return "yes" if busy and max(busy) - own_load > BUSY_OTHERS else None


# --------------------------------------------------------------------------- CPU burner

def _burn(stop_event, run_event):
    x = 0
    while not stop_event.is_set():
        if not run_event.wait(0.05):
            continue
        for _ in range(20000):  # ~1 ms of pure-Python spinning between event checks
            x += 1


class CoreBurner:
    """Context manager: one background process spinning a busy loop (keeps one core busy).

    :meth:`pause` / :meth:`resume` switch the load off and on without restarting the process,
    so loaded and unloaded timings can be interleaved. Uses the ``spawn`` start method so the
    child does not inherit Numba's worker threads; only the process it started is stopped
    (an event, then ``terminate`` of that one process if it does not exit).
    """

    def __init__(self):
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._run = ctx.Event()
        self._run.set()
        self._proc = ctx.Process(target=_burn, args=(self._stop, self._run), daemon=True)

    def pause(self):
        self._run.clear()
        time.sleep(0.02)

    def resume(self):
        self._run.set()
        time.sleep(0.02)

    def __enter__(self):
        self._proc.start()
        time.sleep(1.0)  # let the child start (spawn imports the main module) and spin
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._run.set()
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
        return False


# --------------------------------------------------------------------------- output

def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return "nan"
        if v == 0:
            return "0"
        a = abs(v)
        if a >= 1e5 or a < 1e-3:
            return f"{v:.3e}"
        if a >= 100:
            return f"{v:.1f}"
        if a >= 10:
            return f"{v:.2f}"
        return f"{v:.3f}"
    return str(v)


ROW_NOTES = ("skipped", "error")  # per-row text columns, shown only where a row has one


def format_table(rows, columns=None):
    """Fixed-width text table of a list of dicts (columns: given, or union in first-seen order;
    given columns gain :data:`ROW_NOTES` that some row holds)."""
    if columns is None:
        columns = []
        for r in rows:
            for k in r:
                if k not in columns:
                    columns.append(k)
    else:
        columns = list(columns) + [c for c in ROW_NOTES
                                   if c not in columns and any(c in r for r in rows)]
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    left = [all(not _is_num(r.get(c)) for r in rows) for c in columns]

    def line(vals):
        return "  ".join(v.ljust(w) if lft else v.rjust(w)
                         for v, w, lft in zip(vals, widths, left)).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def _is_num(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_results(name, rows, meta=None, out_dir=None, columns=None, machine=None):
    """Print ``rows`` as a table and write ``<out_dir>/<name>.json``.

    The JSON holds ``rows``, ``meta`` (benchmark parameters, notes), ``machine``
    (:func:`machine_info` unless given) and an ISO timestamp. Returns the file's path.
    """
    out_dir = DEFAULT_OUT if out_dir is None else out_dir
    machine = machine_info() if machine is None else machine
    meta = dict(meta or {})
    print()
    print(format_table(rows, columns))
    print()
    print(format_machine(machine))
    for note in meta.get("notes", []):
        print(f"note     : {note}")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.json")
    doc = {"benchmark": name,
           "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "meta": meta, "machine": machine, "rows": rows}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, default=_json_default)
        f.write("\n")
    print(f"results  : {path}")
    return path


def arg_parser(description):
    """ArgumentParser with ``--quick`` (fewer repeats, smaller sizes: < 1 min) and ``--out``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats and smaller sizes, finishes in under a minute")
    p.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                   help="first wait up to SECONDS for other processes to leave the CPUs idle")
    p.add_argument("--out", default=None,
                   help=f"folder for the JSON results (default {DEFAULT_OUT}; "
                        "--quick runs default to <that>/quick)")
    return p


def out_dir_for(args):
    """Results folder: ``--out``, else bench/results/local (``local/quick`` with --quick), a
    folder git ignores: the committed results under bench/results change only when a run is
    pointed at them with ``--out``."""
    if args.out:
        return args.out
    local = os.path.join(DEFAULT_OUT, "local")
    return os.path.join(local, "quick") if args.quick else local


def section(title):
    """Print a section header (flushed, so progress shows while a long benchmark runs)."""
    print(f"\n== {title}", flush=True)


def log(msg):
    print(f"   {msg}", flush=True)


def zipf_labels(rng, num_classes, size):
    """Zipf-like (log-uniform, exponent ~1) class ids in ``[0, num_classes)``, int64.

    ``floor(exp(u * ln(V + 1))) - 1`` for uniform ``u``: P(k) = ln((k+2)/(k+1)) / ln(V+1),
    i.e. frequency ~ 1/k as for words sorted by frequency.
    """
    u = rng.random(size)
    ids = np.floor(np.exp(u * np.log(num_classes + 1.0))).astype(np.int64) - 1
    return np.clip(ids, 0, num_classes - 1)


# --------------------------------------------------------------------------- child processes

RESULT_TAG = "@@RESULT@@ "


def child_report(job, cfg):
    """In a child process: run ``job(cfg)`` and print its JSON result (or the error) on one
    tagged line for :func:`run_child`; returns the process's exit status."""
    try:
        result = job(cfg)
    except BaseException as e:  # reported to the parent as an error row
        traceback.print_exc()
        print(RESULT_TAG + json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        return 1
    print(RESULT_TAG + json.dumps(result), flush=True)
    return 0


def run_child(script, cfg, env=None):
    """``script --child JSON(cfg)`` in a fresh process, its other output passed through;
    ``(result or None, error or None)``."""
    cmd = [sys.executable, os.path.abspath(script), "--child", json.dumps(cfg)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True,
                          env=None if env is None else dict(os.environ, **env))
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG):])
        else:
            print(line, flush=True)
    if proc.returncode == -9:
        return None, "killed by SIGKILL (out of memory?)"
    if result is None or "error" in result:
        return None, (result or {}).get("error") or f"child exited with {proc.returncode}"
    return result, None
