"""Benchmark fastsampled's alias table and candidate samplers (TensorFlow 2.21 as reference).

Run::

    PYTHONPATH=/work/main python bench/bench_samplers.py [--quick] [--out DIR]

Cases (medians of many timed calls after warm-up calls that absorb compilation):

* AliasTable build rate (classes/s) over Zipf weights ``1/(i+1)`` (float32), V = 10^5..10^7.
* Draw rates with ``unique=False`` at 10^7 classes, 10^7 draws per call: ``AliasTable.sample``,
  ``LogUniformSampler`` (TensorFlow's log_uniform: 39 M/s, measured earlier on a 2-core
  Zen 3 EPYC VM),
  ``UniformSampler`` and ``FixedUnigramSampler`` (TensorFlow's fixed_unigram: 8 M/s); ``vs_TF``
  = our rate over those figures, measured earlier (TensorFlow is not run for it). Sampler
  objects are timed through their public call, which also computes the TensorFlow expected
  count of every candidate; a "draw only" row times the object's own draw method (no expected
  counts) to separate the two costs.
* ``FixedUnigramSampler`` setup over 10^7 counts (TensorFlow: ~17 s, same machine).
* Per-call latency of ``unique=True`` draws of S = 64 and 8192 from V = 10^6.
* TensorFlow side by side when ``import tensorflow`` works (skipped with a note otherwise).
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (BUSY_OTHERS, arg_parser, disturbed, log, machine_info,  # noqa: E402
                     out_dir_for, retry_if_busy, section, timeit, wait_for_quiet, write_results,
                     zipf_labels)

try:
    import fastsampled as fs
except Exception as e:  # pragma: no cover - reported, not raised
    print(f"cannot import fastsampled ({type(e).__name__}: {e}); set PYTHONPATH or pip install it")
    sys.exit(2)

# TensorFlow 2.21 CPU, measured earlier on a 2-core Zen 3 EPYC VM (not run here): vs_TF's
# reference.
TF_FIXED_UNIGRAM_SETUP_S = 17.0
TF_FIXED_UNIGRAM_DRAWS_MPS = 8.0
TF_LOG_UNIFORM_DRAWS_MPS = 39.0

RETRY = {"retries": 0, "wait": 0.0}  # remeasure a case disturbed by other processes (main sets)


def measure(fn, repeat, warmup):
    """:func:`_common.timeit`, remeasured while other processes disturb it (see RETRY)."""
    return retry_if_busy(lambda: timeit(fn, repeat=repeat, warmup=warmup),
                         RETRY["retries"], RETRY["wait"])


COLUMNS = ["case", "V", "n", "median_ms", "p10_ms", "p90_ms", "reps", "value", "unit",
           "vs_TF", "others_cpu", "disturbed"]


def _row(case, V, n, t, value, unit, vs_tf=None, **extra):
    r = {"case": case, "V": V, "n": n,
         "median_ms": t["median"] * 1e3, "p10_ms": t["p10"] * 1e3, "p90_ms": t["p90"] * 1e3,
         "reps": t["n"], "value": value, "unit": unit,
         "vs_TF": None if vs_tf is None else f"{vs_tf:.2f}x",
         "others_cpu": t.get("others_cpu"), "disturbed": disturbed(t), "load1": t.get("load1"),
         "attempts": t.get("attempts", 1)}
    r.update(extra)
    return r


def _error_row(case, e):
    log(f"FAILED: {type(e).__name__}: {e}")
    return {"case": case, "error": f"{type(e).__name__}: {str(e)[:60]}"}


def bench_alias_build(rows, cfg):
    section("AliasTable build rate (Zipf weights 1/(i+1), float32)")
    for V in cfg["build_sizes"]:
        case = "AliasTable build"
        try:
            w = (1.0 / (np.arange(V, dtype=np.float64) + 1.0)).astype(np.float32)
            reps = cfg["build_reps"] if V >= 10**7 else cfg["build_reps"] * 3
            t = measure(lambda: fs.AliasTable(w), repeat=reps, warmup=2)
            rate = V / t["median"] / 1e6
            rows.append(_row(case, V, V, t, rate, "M classes/s"))
            log(f"V={V:.0e}: {rate:.1f} M classes/s")
        except Exception as e:
            rows.append(_error_row(case, e))


def bench_draws(rows, cfg):
    V = n = cfg["draw_V"]
    section(f"unique=False draw rates, V={V:.0e}, n={n:.0e} per call")
    reps = cfg["draw_reps"]
    tc = zipf_labels(np.random.default_rng(0), V, (1024, 1))
    buf = np.empty(n, np.int64)

    def add(case, fn, tf_rate=None):
        try:
            t = measure(fn, repeat=reps, warmup=2)
            rate = n / t["median"] / 1e6
            rows.append(_row(case, V, n, t, rate, "M draws/s",
                             vs_tf=None if tf_rate is None else rate / tf_rate))
            log(f"{case}: {rate:.1f} M draws/s")
        except Exception as e:
            rows.append(_error_row(case, e))

    # AliasTable.sample: into a preallocated buffer (the kernel), and allocating its output.
    try:
        w = (1.0 / (np.arange(V, dtype=np.float64) + 1.0)).astype(np.float32)
        table = fs.AliasTable(w)
        step = iter(range(10**9))
        add("AliasTable.sample(out=buf)",
            lambda: table.sample(n, seed=1, stream=next(step), out=buf))
        add("AliasTable.sample (allocates)", lambda: table.sample(n, seed=1, stream=next(step)))
    except Exception as e:
        rows.append(_error_row("AliasTable.sample", e))

    samplers = {}
    for name, make, tf_rate in [
            ("LogUniformSampler", lambda: fs.LogUniformSampler(V, seed=1),
             TF_LOG_UNIFORM_DRAWS_MPS),
            ("UniformSampler", lambda: fs.UniformSampler(V, seed=1), None),
            ("FixedUnigramSampler", lambda: fs.FixedUnigramSampler(V, unigrams=_counts(V), seed=1),
             TF_FIXED_UNIGRAM_DRAWS_MPS)]:
        try:
            s = samplers[name] = make()
        except Exception as e:
            rows.append(_error_row(name, e))
            continue
        add(f"{name} call (+expected counts)", lambda s=s: s(tc, 1, n, False), tf_rate)
        draw = getattr(s, "_draw", None)
        if draw is not None:  # the object's own draw method: ids only, no expected counts
            step = iter(range(10**9))
            add(f"{name} draw only",
                lambda d=draw, st=step: d(np.uint64(next(st) + 12345), np.uint64(0), buf))
    return samplers


def _counts(V):
    """Zipf word counts (float64, >= 1), like a word2vec vocabulary sorted by frequency."""
    return np.maximum(np.floor(1e9 / (np.arange(V, dtype=np.float64) + 1.0)), 1.0)


def bench_fixed_unigram_setup(rows, cfg):
    V = cfg["setup_V"]
    section(f"FixedUnigramSampler setup over V={V:.0e} counts")
    counts = _counts(V)
    for distortion in (1.0, 0.75):
        case = f"FixedUnigramSampler setup (distortion={distortion})"
        try:
            t = measure(lambda: fs.FixedUnigramSampler(V, unigrams=counts, distortion=distortion),
                       repeat=cfg["setup_reps"], warmup=1)
            rows.append(_row(case, V, V, t, t["median"], "s",
                             vs_tf=TF_FIXED_UNIGRAM_SETUP_S / t["median"]))
            log(f"{case}: {t['median']:.3f} s")
        except Exception as e:
            rows.append(_error_row(case, e))
    # The functional form caches the table by content: every call after the first still hashes
    # the counts (O(V)), so this is the per-step price of calling it TF-style in a loop.
    case = "fixed_unigram_candidate_sampler (cached, S=64)"
    try:
        tc = zipf_labels(np.random.default_rng(1), V, (1024, 1))
        t = measure(lambda: fs.fixed_unigram_candidate_sampler(tc, 1, 64, True, V, unigrams=counts),
                   repeat=cfg["setup_reps"] * 3, warmup=2)
        rows.append(_row(case, V, 64, t, t["median"] * 1e3, "ms/call"))
        log(f"{case}: {t['median'] * 1e3:.2f} ms/call")
    except Exception as e:
        rows.append(_error_row(case, e))


def bench_unique_latency(rows, cfg):
    V = 10**6
    section(f"unique=True per-call latency, V={V:.0e}, B=1024 true classes")
    tc = zipf_labels(np.random.default_rng(2), V, (1024, 1))
    makers = [("LogUniformSampler", lambda: fs.LogUniformSampler(V, seed=3)),
              ("UniformSampler", lambda: fs.UniformSampler(V, seed=3)),
              ("FixedUnigramSampler",
               lambda: fs.FixedUnigramSampler(V, unigrams=_counts(V), seed=3))]
    for name, make in makers:
        try:
            s = make()
        except Exception as e:
            rows.append(_error_row(name, e))
            continue
        for S in (64, 8192):
            case = f"{name} unique=True S={S}"
            try:
                t = measure(lambda: s(tc, 1, S, True), repeat=cfg["lat_reps"], warmup=5)
                rows.append(_row(case, V, S, t, t["median"] * 1e6, "us/call",
                                 tries_per_call=s.last_num_tries))
                log(f"{case}: {t['median'] * 1e6:.1f} us/call (last num_tries {s.last_num_tries})")
            except Exception as e:
                rows.append(_error_row(case, e))


def bench_tensorflow(rows, cfg, notes):
    section("TensorFlow side by side")
    try:
        import tensorflow as tf
    except Exception as e:
        msg = (f"tensorflow not importable ({type(e).__name__}); TF rows skipped "
               "(vs_TF uses TensorFlow 2.21's figures measured earlier on a 2-core Zen 3 EPYC VM)")
        log(msg)
        notes.append(msg)
        return
    notes.append(f"tensorflow {tf.__version__} timed in this run")
    V = cfg["setup_V"]
    tc = tf.constant(zipf_labels(np.random.default_rng(4), V, (1024, 1)))
    try:
        counts = _counts(V).tolist()
        t0 = time.perf_counter()
        tf.random.fixed_unigram_candidate_sampler(tc, 1, 64, True, V, unigrams=counts, seed=1)
        setup = time.perf_counter() - t0
        t = {"median": setup, "p10": setup, "p90": setup, "n": 1}
        rows.append(_row("TF fixed_unigram first call (setup)", V, V, t, setup, "s"))
        log(f"TF fixed_unigram setup: {setup:.2f} s")
        n = cfg["draw_V"]
        t = measure(lambda: tf.random.fixed_unigram_candidate_sampler(
            tc, 1, n, False, V, unigrams=counts, seed=1), repeat=max(3, cfg["draw_reps"] // 3),
            warmup=1)
        rows.append(_row("TF fixed_unigram draws", V, n, t, n / t["median"] / 1e6, "M draws/s"))
    except Exception as e:
        rows.append(_error_row("TF fixed_unigram", e))
    try:
        n = cfg["draw_V"]
        t = measure(lambda: tf.random.log_uniform_candidate_sampler(tc, 1, n, False, V, seed=1),
                   repeat=cfg["draw_reps"], warmup=2)
        rows.append(_row("TF log_uniform draws", V, n, t, n / t["median"] / 1e6, "M draws/s"))
    except Exception as e:
        rows.append(_error_row("TF log_uniform", e))


def main(argv=None):
    p = arg_parser(__doc__.splitlines()[0])
    p.add_argument("--no-tf", action="store_true",
                   help="leave the TensorFlow rows out (fastsampled bench --quick does, to "
                        "stay within its time budget)")
    args = p.parse_args(argv)
    if args.quick:
        cfg = dict(build_sizes=[10**5, 10**6, 10**7], build_reps=3, draw_V=10**7, draw_reps=3,
                   setup_V=10**7, setup_reps=2, lat_reps=30)
    else:
        cfg = dict(build_sizes=[10**5, 10**6, 10**7], build_reps=15, draw_V=10**7, draw_reps=15,
                   setup_V=10**7, setup_reps=5, lat_reps=300)
    RETRY.update(retries=0 if args.quick else 2, wait=max(args.wait_quiet, 0 if args.quick else 60))
    rows, notes = [], []
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    busy_before = wait_for_quiet(args.wait_quiet)
    bench_alias_build(rows, cfg)
    bench_draws(rows, cfg)
    bench_fixed_unigram_setup(rows, cfg)
    bench_unique_latency(rows, cfg)
    if args.no_tf:
        notes.append("TensorFlow rows left out (--no-tf)")
    else:
        bench_tensorflow(rows, cfg, notes)
    notes += [
        "rates use the median call time; value/unit = the row's figure",
        f"disturbed = yes: measured while other processes used > {BUSY_OTHERS} cores "
        "(others_cpu): rerun on a quiet machine for a clean figure",
        "others_cpu = cores used by other processes while a row was timed (0 = quiet machine); "
        f"a case disturbed by > {BUSY_OTHERS} cores is remeasured up to {RETRY['retries']} times "
        f"after waiting up to {RETRY['wait']:g} s for quiet (JSON field 'attempts')",
        "'call (+expected counts)' = public sampler call incl. TF expected counts of all n "
        "candidates; 'draw only' = the object's _draw method (ids only)",
        "TensorFlow 2.21 CPU measured earlier on a 2-core Zen 3 EPYC VM, not run here: fixed_unigram "
        f"setup ~{TF_FIXED_UNIGRAM_SETUP_S:g} s @1e7, draws {TF_FIXED_UNIGRAM_DRAWS_MPS:g} M/s "
        f"fixed_unigram, {TF_LOG_UNIFORM_DRAWS_MPS:g} M/s log_uniform; vs_TF = TensorFlow's "
        "time over ours (our rate over TensorFlow's; > 1: faster than TensorFlow)",
        f"loadavg before run: {list(load_before)}; CPUs busy with other work just before: "
        f"{busy_before}; wall time {time.perf_counter() - t_start:.1f} s",
    ]
    meta = {"quick": args.quick, "config": cfg, "cpu_busy_before": busy_before, "notes": notes}
    write_results("samplers", rows, meta, out_dir_for(args), COLUMNS, machine_info())
    return 0


if __name__ == "__main__":
    sys.exit(main())
