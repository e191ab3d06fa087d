"""Command line: ``fastsampled demo`` (also ``python -m fastsampled demo``)."""
import argparse
import sys
import time

import numpy as np


def _median_time(fn, repeat):
    fn()  # warm up: compiles, touches pages
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def demo(num_classes=10**6, dim=128, batch=1024, num_sampled=64, repeat=50, seed=0, out=sys.stdout):
    """Samplers and the sampled-softmax loss on a synthetic problem; prints its figures."""
    import fastsampled as fs

    def say(msg):
        print(msg, file=out, flush=True)

    rng = np.random.default_rng(seed)
    V, D, B, S = num_classes, dim, batch, num_sampled
    say(f"fastsampled {fs.__version__} demo: {V:,} classes, dim {D}, batch {B}, {S} samples")

    counts = (1e6 / np.arange(1, V + 1) ** 1.1).astype(np.float32)   # Zipf-like class counts
    fs.FixedUnigramSampler(1000, unigrams=counts[:1000], distortion=0.75)  # compile first
    t0 = time.perf_counter()
    unigram = fs.FixedUnigramSampler(V, unigrams=counts, distortion=0.75, seed=seed)
    t_build = time.perf_counter() - t0
    say(f"  fixed_unigram sampler over {V:,} classes built in {t_build * 1e3:.1f} ms "
        f"({V / t_build / 1e6:.0f} M classes/s; alias table {unigram.table.nbytes / 2**20:.1f} MiB)")

    n = 2 * 10**6
    out_ids = np.empty(n, np.int64)
    t = _median_time(lambda: unigram.table.sample(n, seed=1, out=out_ids), 5)
    say(f"  alias draws: {n / t / 1e6:.0f} M samples/s")
    labels = np.minimum(rng.zipf(1.3, size=(B, 1)) - 1, V - 1).astype(np.int64)
    logu = fs.LogUniformSampler(V, seed=seed)
    t = _median_time(lambda: logu(labels, 1, n, False), 5)
    say(f"  log-uniform draws: {n / t / 1e6:.0f} M samples/s")
    t = _median_time(lambda: logu(labels, 1, S, True), repeat)
    say(f"  unique log-uniform draw of {S} candidates with expected counts: {t * 1e6:.0f} µs")

    W = (rng.standard_normal((V, D), dtype=np.float32) * 0.05)
    b = np.zeros(V, np.float32)
    x = rng.standard_normal((B, D), dtype=np.float32)

    def step():
        sv = logu(labels, 1, S, True)
        return fs.sampled_softmax_loss_and_grads(W, b, labels, x, S, V, sampled_values=sv)

    t_step = _median_time(step, repeat)
    loss, g = step()
    say(f"  sampled softmax loss + gradients, sampling included: median {t_step * 1e3:.3f} ms "
        f"(mean loss {loss.mean():.3f}; {g.ids.size} distinct rows touched)")

    def nce_step():
        sv = logu(labels, 1, S, True)
        return fs.nce_loss_and_grads(W, b, labels, x, S, V, sampled_values=sv)

    t_nce = _median_time(nce_step, repeat)
    say(f"  NCE loss + gradients, sampling included: median {t_nce * 1e3:.3f} ms")

    # The full softmax over all classes, for comparison: logits of a slice of the batch.
    bf = min(B, 64)
    logits = np.empty((bf, V), np.float32)

    def full_forward():
        np.matmul(x[:bf], W.T, out=logits)
        np.add(logits, b, out=logits)
        true = logits[np.arange(bf), labels[:bf, 0]].copy()
        mx = logits.max(axis=1, keepdims=True)
        np.subtract(logits, mx, out=logits)
        np.exp(logits, out=logits)
        return mx[:, 0] + np.log(logits.sum(axis=1)) - true

    full = full_forward()                                  # first touch of the buffer
    t0 = time.perf_counter()
    full = full_forward()
    t_full = (time.perf_counter() - t0) * B / bf
    say(f"  numpy full-softmax forward alone (logits + log-sum-exp) over {V:,} classes: "
        f"~{t_full * 1e3:.0f} ms per batch of {B} (measured on {bf} rows), "
        f"{t_full / t_step:.0f}x the sampled step with its backward")
    say(f"  full-softmax loss of those rows {full.mean():.3f} vs sampled estimate "
        f"{loss[:bf].mean():.3f} (sampled softmax is a biased, cheap estimate)")
    return {"build_s": t_build, "step_s": t_step, "nce_step_s": t_nce, "full_s": t_full}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastsampled", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="samplers and sampled softmax on a synthetic 10^6-class problem")
    p.add_argument("--classes", type=int, default=10**6)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--num-sampled", type=int, default=64)
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        for name in ("classes", "dim", "batch", "num_sampled", "repeat"):
            if getattr(args, name) < 1:
                parser.error(f"--{name.replace('_', '-')} must be >= 1")
        if args.num_sampled > args.classes:
            parser.error("--num-sampled must be <= --classes")
        demo(args.classes, args.dim, args.batch, args.num_sampled, args.repeat, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
