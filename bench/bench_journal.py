"""What the rollback journal costs a training head, side by side in one process.

Run::

    PYTHONPATH=. python bench/bench_journal.py [--V 100000000] [--D 64] [--rounds 6]
        [--block 1000] [--interval 200] [--warmup 1000] [--store-dir DIR]
        [--baseline-src DIR] [--out DIR]

(a) Memory-mapped SGD head, V x D (default 10^8 x 64, bench_head's case: 25.6 GB, more than
    the RAM), B=1024, S=64, Zipf labels from ``SyntheticXC``. After ``head.warm()`` (what a
    user of a store larger than RAM does first) and ``--warmup`` untimed steps, one head
    switches in turn (``set_durability``, right after a checkpoint) between
    ``durability="process"`` (journal on), ``"none"`` (journal off) and ``"power"`` (journal
    msync-ed every step): ``--block`` steps each (half for "power"), ``--rounds`` times, the
    order reversed every other round, with a checkpoint every ``--interval`` steps (timed
    apart), as a run in one mode checkpoints.
    Steps/s of a mode is its steps over their total time; medians are per step. The journal's
    bytes are the rows it saved (``journal_rows``) before each checkpoint.
(b) In-RAM SGD head, V=10^6, D=128, B=1024, S=64: ``train_step`` of this tree against the
    same step of another source tree (``--baseline-src``, e.g. a checkout of the commit
    before the journal; skipped when not given), imported side by side under another
    package name and stepped alternately on the same batches.

Each timed step has its own batch, made before its timer starts.
"""
import importlib
import os
import pathlib
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (arg_parser, format_machine, log, machine_info, out_dir_for,  # noqa: E402
                     section, summarize, write_results)

import fastsampled as fs  # noqa: E402
from fastsampled.datasets import SyntheticXC  # noqa: E402

B, S = 1024, 64


def batches(V, D, first, n):
    task = SyntheticXC(V, D, seed=0)
    xs = np.empty((n, B, D), np.float32)
    ys = np.empty((n, B), np.int64)
    for i in range(n):
        x, y = task.batch(B, first + i)
        xs[i], ys[i] = x, np.asarray(y).reshape(-1)
    return xs, ys


def bench_mmap(args, rows, meta):
    V, D = args.V, args.D
    root = pathlib.Path(args.store_dir or os.path.join(tempfile.gettempdir(),
                                                       "fastsampled-bench-journal"))
    path = root / f"head-V{V}-D{D}"
    section(f"memory-mapped SGD head, V={V:.0e}, D={D}: journal on / off / fsync per step")
    if (path / "head.json").exists():
        log(f"reusing {path}")
    else:
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        fs.SampledSoftmaxHead(V, D, path=path, num_sampled=S, optimizer="sgd",
                              overwrite=path.exists()).close()
        meta["create_s"] = time.perf_counter() - t0
        log(f"created {V * (D + 1) * 4 / 1e9:.1f} GB in {meta['create_s']:.0f} s")
    modes = ("process", "none", "power")
    task = SyntheticXC(V, D, seed=0)         # batch(B, step): made outside the timed calls
    times = {m: [] for m in modes}
    blocks = {m: [] for m in modes}            # mean seconds a step, block by block
    ckpt = {m: [] for m in modes}
    jbytes = {m: 0 for m in modes}
    head = fs.SampledSoftmaxHead.load(path, durability="none")
    warm = head.warm()
    log(f"warm(): {warm['rows']:,} rows, {warm['bytes'] / 1e9:.1f} GB in {warm['seconds']:.0f} s")
    t0 = time.perf_counter()
    for i in range(args.warmup):             # compile; fault in what a long run has resident
        head.train_step(*task.batch(B, i))
    head.checkpoint()
    log(f"{args.warmup} warm-up steps in {time.perf_counter() - t0:.0f} s")
    k = args.warmup
    for r in range(args.rounds):
        for m in (modes if r % 2 == 0 else modes[::-1]):
            block = args.block if m != "power" else max(1, args.block // 2)
            head.set_durability(m)           # right after a checkpoint, as it must be
            for j in range(block):
                x, y = task.batch(B, k)
                t0 = time.perf_counter()
                head.train_step(x, y)
                times[m].append(time.perf_counter() - t0)
                k += 1
                if (j + 1) % args.interval == 0 or j + 1 == block:
                    jbytes[m] += sum(st.journal_rows * st.nbytes // st.num_rows
                                     for st in (head.weights, head.biases))
                    t0 = time.perf_counter()
                    head.checkpoint()
                    ckpt[m].append(time.perf_counter() - t0)
            blocks[m].append(float(np.mean(times[m][-block:])))
            log(f"round {r}: {m:8s} {block} steps, {block / sum(times[m][-block:]):6.1f} "
                f"steps/s, median {np.median(times[m][-block:]) * 1e3:.2f} ms, last checkpoint "
                f"{ckpt[m][-1]:.2f} s")
    head.close()
    base = len(times["none"]) / sum(times["none"])
    # paired by round: a block's steps/s over the journal-off block of the same round, so
    # that the drift of the page cache over the run cancels
    paired = {m: float(np.median([b / a for a, b in zip(blocks[m], blocks["none"])]))
              for m in modes}
    for m in modes:
        st = summarize(times[m])
        rate = len(times[m]) / sum(times[m])
        rows.append({"case": f"memory-mapped train_step, durability={m!r}", "V": V, "D": D,
                     "steps": len(times[m]), "steps_per_s": round(rate, 1),
                     "median_ms": round(st["median"] * 1e3, 3),
                     "vs_journal_off": round(rate / base, 3),
                     "vs_journal_off_paired_median": round(paired[m], 3),
                     "checkpoint_s_median": round(float(np.median(ckpt[m])), 3),
                     "journal_MB_per_step": round(jbytes[m] / len(times[m]) / 1e6, 4)})
        log(f"{m:8s}: {rate:6.1f} steps/s ({rate / base:.3f} of journal off; paired by round "
            f"{paired[m]:.3f}), median "
            f"{st['median'] * 1e3:.2f} ms, checkpoint {np.median(ckpt[m]):.2f} s, journal "
            f"{jbytes[m] / len(times[m]) / 1e3:.1f} kB a step")
    meta["warm"] = warm
    meta["store"] = str(path)


def bench_ram(args, rows, meta):
    if not args.baseline_src:
        log("no --baseline-src: the in-RAM comparison is skipped")
        return
    section("in-RAM SGD head, V=1e6, D=128: this tree against --baseline-src, alternating")
    tmp = tempfile.mkdtemp()
    shutil.copytree(os.path.join(args.baseline_src, "fastsampled"),
                    os.path.join(tmp, "fastsampled_baseline"))
    sys.path.insert(0, tmp)
    old = importlib.import_module("fastsampled_baseline")
    V, D, n = 10**6, 128, args.ram_steps
    xs, ys = batches(V, D, 1, 200)
    heads = {"this tree": fs.SampledSoftmaxHead(V, D, num_sampled=S, optimizer="sgd"),
             "baseline": old.SampledSoftmaxHead(V, D, num_sampled=S, optimizer="sgd")}
    times = {k: [] for k in heads}
    for i in range(20):
        for h in heads.values():
            h.train_step(xs[i], ys[i])
    for j in range(n):
        order = list(heads.items()) if j % 2 == 0 else list(heads.items())[::-1]
        for name, h in order:
            i = 20 + j % 180
            t0 = time.perf_counter()
            h.train_step(xs[i], ys[i])
            times[name].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    for k in heads:
        rows.append({"case": f"in-RAM train_step ({k})", "V": V, "D": D, "steps": n,
                     "median_ms": round(med[k] * 1e3, 4),
                     "vs_baseline": round(med["baseline"] / med[k], 3)})
        log(f"{k:10s}: median {med[k] * 1e3:.3f} ms ({med['baseline'] / med[k]:.3f}x the "
            "baseline's speed)")
    shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
    p = arg_parser(__doc__.splitlines()[0])
    p.add_argument("--V", type=int, default=10**8)
    p.add_argument("--D", type=int, default=64)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--block", type=int, default=1000)
    p.add_argument("--interval", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--warmup", type=int, default=1000,
                   help="untimed steps first (journal off)")
    p.add_argument("--ram-steps", type=int, default=600)
    p.add_argument("--store-dir", default=None)
    p.add_argument("--baseline-src", default=None,
                   help="a source tree (its fastsampled/ folder) to compare the in-RAM step with")
    p.add_argument("--skip-mmap", action="store_true")
    args = p.parse_args(argv)
    info = machine_info()
    log(format_machine(info))
    rows, meta = [], {"B": B, "S": S, "rounds": args.rounds, "block": args.block,
                      "interval": args.interval, "warmup": args.warmup}
    bench_ram(args, rows, meta)
    if not args.skip_mmap:
        bench_mmap(args, rows, meta)
    write_results("journal", rows, meta=meta, out_dir=out_dir_for(args), machine=info)


if __name__ == "__main__":
    main()
