"""The distributed head (``fastsampled.ray``) on one machine with a local Ray instance.

Run::

    PYTHONPATH=. python bench/bench_ray.py [--quick] [--out DIR] [--only SECTIONS]

Sections (``--only exact,overhead,model,large,faults,quality``):

exact     With one synchronous trainer (the RayHead's own steps), 1, 2 and 4 shard servers,
          SGD / Adagrad / Adam, "mod" and "div": 200 steps against a memory-mapped
          single-machine head with the same seed. Losses, then weights, biases and every
          optimizer slot compared (max |difference| / max |value|); predict and evaluate.
overhead  V=10^6, D=128, S=64, in-RAM shards: ``train_step`` of the single-machine head and
          of a RayHead (2 shard servers), interleaved in one process (medians, compile and
          first calls excluded), at B=1024 and B=8192, with each transport (a compiled
          graph, actor calls, actor calls with shared-memory files); calls and bytes per
          step.
model     From the measured step: projected examples/s for 1-64 machines on 10 and 25
          Gbit/s links at V=10^8 and 10^9 (the assumptions are written with the figures).
large     V=10^7, D=128: 4 memory-mapped shard servers and 2 asynchronous trainers on
          ``SyntheticXC``; steps/s and the resident memory of every actor.
faults    10 synchronous runs with a shard server killed (SIGKILL) at a random moment
          (one of them inside a checkpoint), 5 with a trainer killed: each run completes and
          ends with the weights of the uninterrupted run.
quality   ``SyntheticXC`` at V=10^6: 2 asynchronous trainers against the single-process
          head after the same number of examples; held-out precision@1.
"""
import os
import signal
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (arg_parser, format_machine, log, machine_info, out_dir_for,  # noqa: E402
                     section, timeit_many, write_results, zipf_labels)

import ray  # noqa: E402

import fastsampled as fs  # noqa: E402
from fastsampled import ray as fsray  # noqa: E402
from fastsampled._shardserver import shard_dir_name  # noqa: E402
from fastsampled.datasets import SyntheticXC  # noqa: E402


# ---------------------------------------------------------------------- helpers

def ray_state(head, tmp, name):
    """Weights, biases and slots of a RayHead in global id order (via ``save``)."""
    dest = os.path.join(tmp, name)
    head.save(dest)
    P, strategy = head.num_shards, head.partition_strategy
    sizes = fs.sharding.layout_sizes(head.num_classes, P, strategy)
    out = {}
    for s in range(P):
        with fs.SampledSoftmaxHead.load(os.path.join(dest, shard_dir_name(s))) as h:
            n = sizes[s]
            gids = (np.arange(n) * P + s if strategy == "mod" and P > 1
                    else np.arange(n) + sum(sizes[:s]))
            arrays = {"weights": h.weights.gather(np.arange(n)),
                      "biases": h.biases.gather(np.arange(n))}
            for which, st in zip(("w", "b"), h.optimizer_states):
                for slot, arr in st.slots.items():
                    arrays[f"{which}_{slot}"] = arr.gather(np.arange(n))
            for k, a in arrays.items():
                full = out.setdefault(k, np.zeros((head.num_classes,) + a.shape[1:], a.dtype))
                full[gids] = a
    return out


def single_state(head):
    ids = np.arange(head.num_classes)
    out = {"weights": head.weights.gather(ids), "biases": head.biases.gather(ids)}
    for which, st in zip(("w", "b"), head.optimizer_states):
        for slot, arr in st.slots.items():
            out[f"{which}_{slot}"] = arr.gather(ids)
    return out


def trainer_pids():
    """Process ids of the trainer actors running on this machine (from /proc: Ray names an
    actor's process after its class)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if b"Trainer" in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def rel_diff(a, b):
    scale = max(float(np.abs(b).max()), 1e-30)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) / scale


def batches(n, B, V, D, seed):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(B, D)).astype(np.float32), zipf_labels(rng, V, B))
            for _ in range(n)]


# ---------------------------------------------------------------------- sections

def bench_exact(quick, tmp):
    V, D, B, S = 20_000, 32, 256, 64
    steps = 40 if quick else 200
    data = batches(steps, B, V, D, 1)
    xt, yt = batches(1, 512, V, D, 2)[0]
    rows = []
    shard_counts = (1, 2) if quick else (1, 2, 4)
    for P in shard_counts:
        for opt in ("sgd", "adagrad", "adam"):
            for strategy in ("mod", "div"):
                if P == 1 and strategy == "div":
                    continue        # one shard: the layouts are the same
                tag = f"{opt}-{strategy}-{P}"
                single = fs.SampledSoftmaxHead(V, D, path=os.path.join(tmp, "one-" + tag),
                                               num_sampled=S, seed=11, optimizer=opt)
                head = fsray.RayHead(V, D, num_shards=P, partition_strategy=strategy,
                                     num_sampled=S, seed=11, optimizer=opt)
                loss_diff = 0.0
                dx_diff = 0.0
                for x, y in data:
                    l1, d1 = single.train_step(x, y)
                    l2, d2 = head.train_step(x, y)
                    loss_diff = max(loss_diff, abs(l1 - l2))
                    dx_diff = max(dx_diff, float(np.abs(d1 - d2).max()))
                i1, s1 = single.predict(xt, 10)
                i2, s2 = head.predict(xt, 10)
                e1, e2 = single.evaluate(xt, yt), head.evaluate(xt, yt)
                single.checkpoint()
                got, want = ray_state(head, tmp, "saved-" + tag), single_state(single)
                state_diff = max(rel_diff(got[k], want[k]) for k in want)
                rows.append({"optimizer": opt, "strategy": strategy, "shards": P,
                             "steps": steps, "max_loss_diff": loss_diff,
                             "max_dinputs_diff": dx_diff, "max_state_rel_diff": state_diff,
                             "slots": sorted(k for k in want if k not in ("weights", "biases")),
                             "predict_ids_equal": bool((i1 == i2).all()),
                             "predict_scores_equal": bool((s1 == s2).all()),
                             "evaluate_max_diff": max(abs(e1[k] - e2[k]) for k in e1)})
                log(f"{tag}: loss diff {loss_diff:.3g}, state rel diff {state_diff:.3g}, "
                    f"predict equal {rows[-1]['predict_ids_equal']}, evaluate diff "
                    f"{rows[-1]['evaluate_max_diff']:.3g}")
                head.close()
                single.close()
    return rows


def bench_overhead(quick, transport, shards=2):
    V, D, S = 10**6, 128, 64
    rows = []
    single = fs.SampledSoftmaxHead(V, D, num_sampled=S, seed=0)
    head = fsray.RayHead(V, D, num_shards=shards, num_sampled=S, seed=0, transport=transport)
    for B in (1024, 8192):
        data = batches(8, B, V, D, B)
        state = {"i": 0, "j": 0}

        def local():
            x, y = data[state["i"] % 8]
            state["i"] += 1
            single.train_step(x, y)

        def dist():
            x, y = data[state["j"] % 8]
            state["j"] += 1
            head.train_step(x, y)

        for _ in range(10):         # compiled graph, kernels and pages warm
            dist()
            local()
        before = head.transport_stats()
        n0 = state["j"]
        res = timeit_many({"local": local, "ray": dist}, repeat=6 if quick else 20,
                          warmup=1, block=5)
        after = head.transport_stats()
        n = state["j"] - n0
        uniq = [np.unique(np.concatenate([y, head.sampler.sample_unchecked(
            y.reshape(-1, 1), S, True)[0]])).size for _, y in data]
        lt, rt = res["local"]["median"], res["ray"]["median"]
        rows.append({"batch": B, "shards": shards, "transport": transport,
                     "local_ms": lt * 1e3, "ray_ms": rt * 1e3,
                     "overhead_ms": (rt - lt) * 1e3, "examples_per_s_ratio": lt / rt,
                     "ray_p10_ms": res["ray"]["p10"] * 1e3, "ray_p90_ms": res["ray"]["p90"] * 1e3,
                     "calls_per_step": (after["calls"] - before["calls"]) / n,
                     "rings_per_step": (after["rings"] - before["rings"]) / n,
                     "bytes_out_per_step": (after["bytes_out"] - before["bytes_out"]) / n,
                     "bytes_in_per_step": (after["bytes_in"] - before["bytes_in"]) / n,
                     "unique_ids_per_step": float(np.mean(uniq)),
                     "others_cpu": res["ray"]["others_cpu"]})
        log(f"{transport}, B={B}: local {lt * 1e3:.2f} ms, ray {rt * 1e3:.2f} ms, overhead "
            f"{(rt - lt) * 1e3:.2f} ms, examples/s ratio {lt / rt:.2f}")
    head.close()
    return rows


def scale_model(over):
    """Projected examples/s from the measured B=8192 step (see the assumptions)."""
    m = next(r for r in over if r["batch"] == 8192 and r["transport"] == "shared")
    D, itemsize = 128, 4
    U = m["unique_ids_per_step"]
    compute_s = m["local_ms"] / 1e3                  # the caller's kernel, one machine
    per_call_s = 0.5e-3                              # Ray call on a real network (assumed)
    row_bytes = (D + 1) * itemsize + 8               # a row and its id
    rows = []
    for V in (10**8, 10**9):
        for gbit in (10, 25):
            link = gbit * 1e9 / 8 * 0.8                # 80 % of the line rate, each way
            for M in (1, 4, 16, 64):
                remote = (M - 1) / M
                # each machine: one trainer and one shard server of V/M rows. Each direction
                # of its link carries its trainer's remote rows (in) and gradients (out) and,
                # symmetrically, its server's rows out to and gradients in from the others.
                per_dir = 2 * U * row_bytes * remote
                net_s = per_dir / link
                step_s = compute_s + (per_call_s if M > 1 else 0.0) + net_s
                # the same with this machine's whole measured overhead added to every step
                # (serialisation, Ray's calls, 2 cores shared with the servers): a floor
                slow_s = m["ray_ms"] / 1e3 + net_s if M > 1 else compute_s
                rows.append({"classes": V, "link_gbit": gbit, "machines": M,
                             "unique_rows_per_step": U, "bytes_per_step_each_way": per_dir,
                             "step_ms": step_s * 1e3, "examples_per_s": M * 8192 / step_s,
                             "step_ms_measured_overhead": slow_s * 1e3,
                             "examples_per_s_measured_overhead": M * 8192 / slow_s,
                             "shard_gb_per_machine": V * (D + 1) * itemsize * 3 / M / 1e9})
    return rows


def _rss_of(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "RssAnon:", "RssFile:")):
                    out[line.split(":")[0]] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


class XCData:
    """``SyntheticXC`` batches for trainer ``index`` (steps index, index + W, ...)."""

    def __init__(self, V, D, B, steps, num_trainers, seed=0):
        self.args = (V, D, B, steps, num_trainers, seed)

    def __call__(self, index):
        V, D, B, steps, W, seed = self.args
        task = SyntheticXC(V, D, seed=seed)
        for s in range(steps):
            yield task.batch(B, s * W + index)


def bench_large(quick, tmp):
    V = 10**6 if quick else 10**7
    D, B, S, W, P = 128, 1024, 64, 2, 4
    steps = 30 if quick else 150
    head = fsray.RayHead(V, D, num_shards=P, num_sampled=S, seed=0, optimizer="adagrad",
                         path=os.path.join(tmp, "large"))
    t0 = time.perf_counter()
    out = fsray.train(head, XCData(V, D, B, steps, W), num_trainers=W, mode="async",
                      checkpoint_every=steps)
    wall = time.perf_counter() - t0
    info = head.shard_info()
    task = SyntheticXC(V, D)
    xt, yt = task.batch(2048, 0, "test")
    ev = head.evaluate(xt, yt)
    row = {"classes": V, "dim": D, "batch": B, "shards": P, "trainers": W,
           "steps_per_trainer": out["steps"], "seconds": out["seconds"], "wall_s": wall,
           "steps_per_s": W * out["steps"] / out["seconds"],
           "examples_per_s": out["examples_per_s"], "loss_first_round": out["losses"][0],
           "precision@1": ev["precision@1"],
           "shard_rss_mb": [i["rss_bytes"] / 2**20 for i in info],
           "shard_anon_mb": [i["anon_bytes"] / 2**20 for i in info],
           "caller_rss_mb": _rss_of(os.getpid()).get("VmRSS", 0) / 2**20}
    log(f"V={V}: {row['steps_per_s']:.1f} steps/s, {row['examples_per_s']:.0f} examples/s, "
        f"shard RSS {['%.0f' % r for r in row['shard_rss_mb']]} MB, anon "
        f"{['%.0f' % r for r in row['shard_anon_mb']]} MB")
    head.close()
    return [row]


def _sync_run(kill, tmp, name, V=20_000, D=32, B=256, steps=30):
    head = fsray.RayHead(V, D, num_shards=3, num_sampled=64, seed=5, optimizer="adam",
                         path=os.path.join(tmp, name))
    killer = None
    killed = []
    t0 = time.perf_counter()
    if kill is not None:
        what, delay = kill

        def k():
            time.sleep(delay)
            if what == "shard":
                s = np.random.default_rng(int(delay * 1e6)).integers(3)
                pid = ray.get(head.shard_handles[int(s)].info.remote())["pid"]
            else:
                pids = []
                while not pids:          # the trainers may still be starting
                    pids = trainer_pids()
                    time.sleep(0.02)
                pid = pids[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(time.perf_counter() - t0)
        killer = threading.Thread(target=k)
        killer.start()
    out = fsray.train(head, XCData(V, D, B, steps, 2, seed=3), num_trainers=2, mode="sync",
                      checkpoint_every=10)
    if killer is not None:
        killer.join()
    state = ray_state(head, tmp, name + "-saved")
    head.close()
    out["killed_at_s"] = killed[0] if killed else None
    return out, state


def bench_faults(quick, tmp):
    base_out, base = _sync_run(None, tmp, "base")
    rows = []
    rng = np.random.default_rng(0)
    # moments within the training (it takes base_out["seconds"] undisturbed)
    span = max(0.3, 0.9 * base_out["seconds"])
    kills = [("shard", float(rng.uniform(0.2, span))) for _ in range(3 if quick else 10)]
    kills += [("trainer", float(rng.uniform(0.2, span))) for _ in range(2 if quick else 5)]
    for i, kill in enumerate(kills):
        out, state = _sync_run(kill, tmp, f"kill{i}")
        diff = max(rel_diff(state[k], base[k]) for k in base)
        rows.append({"killed": kill[0], "after_s": out["killed_at_s"],
                     "training_s": out["seconds"], "completed": True,
                     "rounds_rerun": out["retries"], "max_state_rel_diff": diff,
                     "equal": diff == 0.0})
        log(f"{kill[0]} killed after {out['killed_at_s']:.2f} s of a {out['seconds']:.2f} s "
            f"training: rounds rerun {out['retries']}, "
            f"state diff {diff:.3g}")
    return rows


def bench_quality(quick, tmp):
    V, D, B, S = 10**6, 128, 512, 64
    steps = 100 if quick else 1000
    task = SyntheticXC(V, D, seed=0)
    xt, yt = task.batch(4096, 0, "test")
    single = fs.SampledSoftmaxHead(V, D, num_sampled=S, seed=0, optimizer="adagrad", lr=0.1)
    for s in range(2 * steps):
        single.train_step(*task.batch(B, s))
    p_single = single.evaluate(xt, yt)["precision@1"]
    head = fsray.RayHead(V, D, num_shards=2, num_sampled=S, seed=0, optimizer="adagrad",
                         lr=0.1)
    out = fsray.train(head, XCData(V, D, B, steps, 2), num_trainers=2, mode="async",
                      checkpoint_every=steps)
    p_ray = head.evaluate(xt, yt)["precision@1"]
    head.close()
    row = {"classes": V, "batch": B, "examples": 2 * steps * B, "single_precision@1": p_single,
           "async_2_trainers_precision@1": p_ray, "difference": p_ray - p_single,
           "async_examples_per_s": out["examples_per_s"]}
    log(f"precision@1 single {p_single:.4f}, 2 async trainers {p_ray:.4f}")
    return [row]


def main():
    p = arg_parser(__doc__.splitlines()[0])
    p.add_argument("--only", default="exact,overhead,model,large,faults,quality")
    args = p.parse_args()
    only = set(args.only.split(","))
    out_dir = out_dir_for(args)
    machine = machine_info()
    print(format_machine(machine))
    fsray.connect(num_cpus=2)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "exact" in only:
            section("exactness against a single-machine head")
            results["exact"] = bench_exact(args.quick, tmp)
        if "overhead" in only or "model" in only:
            section("overhead of the distributed step (V=10^6, D=128, S=64, 2 shard servers)")
            results["overhead"] = (bench_overhead(args.quick, "graph") +
                                   bench_overhead(args.quick, "calls") +
                                   bench_overhead(args.quick, "shared"))
        if "model" in only:
            section("projected scale from the measured step")
            results["model"] = scale_model(results["overhead"])
        if "large" in only:
            section("V=10^7 over 4 shard servers, 2 asynchronous trainers")
            results["large"] = bench_large(args.quick, tmp)
        if "faults" in only:
            section("SIGKILL of shard servers and trainers in synchronous training")
            results["faults"] = bench_faults(args.quick, tmp)
        if "quality" in only:
            section("held-out precision@1: 2 asynchronous trainers against one process")
            results["quality"] = bench_quality(args.quick, tmp)
    rows = [dict(section=k, **r) for k, v in results.items() for r in v]
    meta = {"quick": args.quick, "sections": sorted(results),
            "model_assumptions": [
                "one trainer and one shard server per machine, each server holding V/M rows",
                "rows and gradients float32, D=128; per step U unique rows each way, "
                "U as measured at B=8192 (Zipf labels, S=64)",
                "a fraction (M-1)/M of a step's rows is remote; each direction of a "
                "machine's link carries its trainer's and its server's share",
                "links at 80 % of line rate; one 0.5 ms call round trip per step on a real "
                "network; the caller's compute is the single-machine step measured here",
                "no overlap of network and compute (the step waits for its rows)",
                "examples_per_s_measured_overhead: every step also pays the whole overhead "
                "measured here at B=8192 (the default transport, shared-memory files), as "
                "if it carried over unchanged"],
            "notes": ["local Ray instance, 2 CPUs; shard servers run one Numba thread each"]}
    write_results("ray", rows, meta, out_dir, machine=machine)
    ray.shutdown()


if __name__ == "__main__":
    main()
