"""Kill a training head with SIGKILL at every file operation of its first step (which creates
the journals), of a checkpoint and of the step after it, and at random moments; check
that it reopens at exactly its last checkpoint and then continues as if never killed.

Run by ``tests/test_crash.py`` in a subprocess of its own, with Numba's ``workqueue``
threading layer: GNU OpenMP refuses to run in a child forked after its first use, the
workqueue does not. The clean run happens in this process (so the forked children inherit
its compiled kernels); every killed run and every reopening is a forked child, and this
process compares the arrays they dump.

The schedule of one run: steps 1..N, a checkpoint after each step in CHECKPOINTS, batches
that depend on the step only. A clean run dumps the head's whole state after every
checkpoint. A killed run is reopened by a new child with ``SampledSoftmaxHead.load``,
which dumps the state it finds (it must equal the clean run's at that step), trains on to
step N with the same checkpoints and dumps the final state (it must equal the clean run's).
"""
import argparse
import json
import os
import random
import signal
import sys
import time

import numpy as np

import fastsampled as fs

V, D, B, S = 300, 8, 32, 12
STEPS = 12
CHECKPOINTS = (4, 8, 12)
TARGET = 8                       # the checkpoint killed at each of its file operations
_OPS = ("fsync", "fdatasync", "replace", "rename", "unlink", "open", "ftruncate")


def batch(step):
    rng = np.random.default_rng(1000 + step)
    x = rng.normal(size=(B, D)).astype(np.float32)
    y = rng.zipf(1.3, size=B) % V
    return x, y


DURABILITY = "process"           # the journal's mode (--durability)


def make_head(path, optimizer, shards):
    return fs.SampledSoftmaxHead(V, D, path=path, num_shards=shards,
                                 partition_strategy="mod" if shards > 1 else "div",
                                 optimizer=optimizer, num_sampled=S, seed=3,
                                 durability=DURABILITY)


def state(head):
    out = {"weights": head.weights.to_numpy(), "biases": head.biases.to_numpy(),
           "step": np.int64(head.step), "sampler_calls": np.int64(head.sampler.calls)}
    for name, st in zip(("weights", "biases"), head._states):
        if st is None:
            continue
        out[f"t_{name}"] = np.int64(st.t)
        for slot, store in st.slots.items():
            out[f"{name}_{slot}"] = store.to_numpy()
    return out


def train(head, until, dump=None, hook=None):
    while head.step < until:
        if hook is not None:        # the first step creates the journals
            hook.armed = head.step == 0
        head.train_step(*batch(head.step + 1))
        if hook is not None:
            hook.armed = False
        if head.step in CHECKPOINTS:
            if hook is not None:
                hook.armed = head.step == TARGET
            head.checkpoint()
            if hook is not None:
                hook.armed = False
            if dump is not None:
                np.savez(os.path.join(dump, f"clean-{head.step}.npz"), **state(head))


class Hook:
    """Counts the commit operations made while armed; SIGKILLs itself at number ``at``."""

    def __init__(self, at):
        self.at, self.count, self.armed = at, 0, False
        for name in _OPS:
            setattr(os, name, self._wrap(getattr(os, name)))

    def _wrap(self, fn):
        def op(*args, **kwargs):
            if self.armed:
                if self.count == self.at:
                    os.kill(os.getpid(), signal.SIGKILL)
                self.count += 1
            return fn(*args, **kwargs)
        return op


def child(fn):
    """Run ``fn`` in a forked child; return its exit status (``-9`` when killed)."""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        except BaseException as e:  # noqa: BLE001 - reported through the exit code
            print(f"child failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def compare(a_path, b_path):
    """Names of the arrays that differ between two dumps (bit for bit)."""
    with np.load(a_path) as a, np.load(b_path) as b:
        if sorted(a.files) != sorted(b.files):
            return [f"keys {sorted(a.files)} != {sorted(b.files)}"]
        return [k for k in a.files if not np.array_equal(a[k], b[k])]


def check_recovery(work, label, clean):
    """Reopen a killed run, compare it with the clean run, finish it, compare again."""
    found = os.path.join(work, "found.npz")
    final = os.path.join(work, "final.npz")

    def resume():
        head = fs.SampledSoftmaxHead.load(os.path.join(work, "head"), durability=DURABILITY)
        np.savez(found, **state(head))
        train(head, STEPS)
        np.savez(final, **state(head))
        head.close()

    if os.path.exists(os.path.join(work, "head")) and not os.path.exists(
            os.path.join(work, "head", "head.json")):
        # killed before the first commit of the head: it never existed as a head
        return {"label": label, "step": None, "ok": True}
    rc = child(resume)
    if rc != 0:
        return {"label": label, "ok": False, "error": f"reopening failed (exit {rc})"}
    with np.load(found) as f:
        step = int(f["step"])
    if step not in (0,) + CHECKPOINTS:
        return {"label": label, "ok": False, "error": f"reopened at step {step}"}
    diff = compare(found, os.path.join(clean, f"clean-{step}.npz"))
    diff_end = compare(final, os.path.join(clean, f"clean-{STEPS}.npz"))
    return {"label": label, "step": step, "ok": not diff and not diff_end,
            "differs_at_reopen": diff, "differs_at_end": diff_end}


def run_config(root, optimizer, shards, random_kills, rng):
    base = os.path.join(root, f"{optimizer}-{shards}")
    clean = os.path.join(base, "clean")
    os.makedirs(clean)

    def clean_run():
        head = make_head(os.path.join(clean, "head"), optimizer, shards)
        np.savez(os.path.join(clean, "clean-0.npz"), **state(head))
        train(head, STEPS, dump=clean)
        head.close()

    clean_run()      # in this process: the children inherit the compiled kernels
    counted = os.path.join(base, "count.json")

    def count_run():
        hook = Hook(at=-1)
        head = make_head(os.path.join(base, "count"), optimizer, shards)
        t0 = time.perf_counter()
        train(head, TARGET, hook=hook)
        hook.armed = True
        head.train_step(*batch(TARGET + 1))
        hook.armed = False
        seconds = time.perf_counter() - t0
        with open(counted, "w") as f:
            json.dump([hook.count, seconds * STEPS / TARGET], f)

    if child(count_run) != 0:
        return [{"label": f"{optimizer}/{shards} count run", "ok": False}]
    with open(counted) as f:
        points, duration = json.load(f)     # duration: of a whole run, as a child
    results = []
    for k in range(points + 1):      # before each operation, and after the last
        work = os.path.join(base, f"point-{k}")
        os.makedirs(work)

        def killed_run(k=k, work=work):
            hook = Hook(at=k)
            head = make_head(os.path.join(work, "head"), optimizer, shards)
            train(head, TARGET, hook=hook)
            hook.armed = True
            head.train_step(*batch(TARGET + 1))       # rows changed after the checkpoint
            os.kill(os.getpid(), signal.SIGKILL)

        rc = child(killed_run)
        label = f"{optimizer}/{shards} shard(s): kill at file operation {k} of {points}"
        if rc != -signal.SIGKILL:
            results.append({"label": label, "ok": False, "error": f"exit {rc}"})
            continue
        results.append(check_recovery(work, label, clean))
    # random moments: this process kills the run after a random delay
    for r in range(random_kills):
        work = os.path.join(base, f"random-{r}")
        os.makedirs(work)
        read, write = os.pipe()

        def run(work=work, write=write):
            os.close(read)
            head = make_head(os.path.join(work, "head"), optimizer, shards)
            os.write(write, b"1")
            train(head, STEPS)
            time.sleep(60)

        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            try:
                run()
            finally:
                os._exit(0)
        os.close(write)
        os.read(read, 1)                            # the head exists
        delay = rng.uniform(0, duration)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read)
        results.append(check_recovery(work, f"{optimizer}/{shards} shard(s): random kill "
                                      f"after {delay * 1e3:.1f} ms", clean))
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--optimizers", default="sgd,adagrad,adam")
    ap.add_argument("--shards", default="1,3")
    ap.add_argument("--random-kills", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--durability", default="process", choices=("process", "power"))
    args = ap.parse_args()
    global DURABILITY
    DURABILITY = args.durability
    rng = random.Random(args.seed)
    results = []
    for optimizer in args.optimizers.split(","):
        for shards in (int(s) for s in args.shards.split(",")):
            results += run_config(args.root, optimizer, shards, args.random_kills, rng)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
