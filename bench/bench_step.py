"""A training step of this tree against another source tree, side by side, with page faults.

Run::

    PYTHONPATH=. python bench/bench_step.py --baseline-src DIR [--repeat 40] [--out DIR]

``DIR`` is another checkout (e.g. ``git worktree add /tmp/base <commit>``); its
``fastsampled/`` is imported under another package name beside this tree's.

(a) Interleaved, in one process (``timeit_many``: round robin, a block of calls each), each
    case on the same arguments in both trees, compile time excluded by warm-up calls:

    * ``sampled_softmax_loss_and_grads``, V=10^6, D=128, B=1024, S=64 and S=8192 (the
      default log-uniform sampler, a fixed seed);
    * ``SampledSoftmaxHead.train_step`` (in RAM, SGD), the same sizes;
    * ``Word2Vec`` skip-gram, negative sampling, one epoch over a synthetic corpus
      (``synthetic_corpus.py``), 2 workers: effective words per second.

    Both trees share the process, so settings one of them makes for the whole process (an
    allocator setting at import) apply to both here; (b) runs each tree alone.
(b) Each tree alone in a fresh interpreter (``--alone-rounds`` of them per tree, alternating;
    medians): the head's ``train_step`` and the loss function at S=64 and S=8192,
    milliseconds and minor page faults (``getrusage``) per step after warm-up. This shows
    what each tree's own memory handling costs.
"""
import importlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (arg_parser, format_machine, log, machine_info, out_dir_for,  # noqa: E402
                     section, timeit_many, write_results)

V, D, B = 10**6, 128, 1024
SIZES = (64, 8192)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _problem(S, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, D)).astype(np.float32)
    y = np.minimum(rng.zipf(1.3, B) - 1, V - 1).astype(np.int64)
    return x, y


def _import_tree(src, name):
    """``src/fastsampled`` imported as package ``name`` (a copy under a temporary folder)."""
    tmp = tempfile.mkdtemp()
    shutil.copytree(os.path.join(src, "fastsampled"), os.path.join(tmp, name))
    sys.path.insert(0, tmp)
    return importlib.import_module(name), tmp


def _faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _step_cases(pkg, S):
    """``{case: callable}`` of one tree at S sampled classes."""
    x, y = _problem(S)
    head = pkg.SampledSoftmaxHead(V, D, num_sampled=S, optimizer="sgd", seed=0)
    W = np.random.default_rng(1).normal(size=(V, D)).astype(np.float32) * 0.05
    b = np.zeros(V, np.float32)
    return {f"loss S={S}": lambda: pkg.sampled_softmax_loss_and_grads(W, b, y, x, S, V, seed=3),
            f"train_step S={S}": lambda: head.train_step(x, y)}


def bench_side_by_side(args, rows, meta):
    section("this tree against --baseline-src, interleaved in one process")
    import fastsampled as new
    old, tmp = _import_tree(args.baseline_src, "fastsampled_baseline")
    try:
        for S in SIZES:
            cases_new, cases_old = _step_cases(new, S), _step_cases(old, S)
            for case in cases_new:
                repeat = args.repeat if S <= 64 else max(8, args.repeat // 4)
                fns = {"this tree": cases_new[case], "baseline": cases_old[case]}
                stats = timeit_many(fns, repeat=repeat, warmup=3, block=5)
                faults = {}
                for name, fn in fns.items():
                    f0 = _faults()
                    for _ in range(10):
                        fn()
                    faults[name] = (_faults() - f0) / 10
                _row(rows, case, stats, faults)
        bench_word2vec(new, old, args, rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _row(rows, case, stats, faults):
    med = {k: v["median"] for k, v in stats.items()}
    rows.append({"part": "a", "case": case,
                 "this_ms": round(med["this tree"] * 1e3, 4),
                 "baseline_ms": round(med["baseline"] * 1e3, 4),
                 "speed_vs_baseline": round(med["baseline"] / med["this tree"], 3),
                 "this_faults_per_step": faults.get("this tree"),
                 "baseline_faults_per_step": faults.get("baseline"),
                 "disturbed": any(v.get("others_cpu", 0) > 0.25 for v in stats.values())})
    log(f"{case:18s} this {med['this tree'] * 1e3:9.3f} ms  baseline "
        f"{med['baseline'] * 1e3:9.3f} ms  speed {med['baseline'] / med['this tree']:.3f}x  "
        f"faults/step {faults.get('this tree')} vs {faults.get('baseline')}")


def bench_word2vec(new, old, args, rows):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from synthetic_corpus import write_corpus
    tmp = tempfile.mkdtemp()
    try:
        write_corpus(tmp, tokens=args.w2v_tokens, seed=0)
        path = os.path.join(tmp, "corpus.txt")
        with open(path) as f:
            sentences = [line.split() for line in f]
        models = {}
        for name, pkg in (("this tree", new), ("baseline", old)):
            m = pkg.Word2Vec(vector_size=100, window=5, min_count=5, sg=1, negative=5,
                             epochs=1, workers=2, seed=1, progress=False)
            m.build_vocab(sentences)
            m.train(sentences, epochs=1)   # compile
            models[name] = m
        words = {}

        def trainer(name):
            def run():
                m = models[name]
                words[name] = m.train(sentences, epochs=1)["effective_words"]
            return run

        stats = timeit_many({k: trainer(k) for k in models}, repeat=args.w2v_repeat,
                            warmup=1, block=1)
        wps = {k: words[k] / stats[k]["median"] for k in models}
        rows.append({"part": "a", "case": "word2vec sg words/s",
                     "this_words_per_s": round(wps["this tree"]),
                     "baseline_words_per_s": round(wps["baseline"]),
                     "speed_vs_baseline": round(wps["this tree"] / wps["baseline"], 3),
                     "disturbed": any(v.get("others_cpu", 0) > 0.25 for v in stats.values())})
        log(f"word2vec sg        this {wps['this tree']:,.0f} words/s  baseline "
            f"{wps['baseline']:,.0f} words/s  speed {wps['this tree'] / wps['baseline']:.3f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import numpy as np
import fastsampled as fs
from bench_step import _step_cases
out = {}
for S in (64, 8192):
    for case, fn in _step_cases(fs, S).items():
        for _ in range(5):
            fn()
        n = 40 if S <= 64 else 12
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = []
        for _ in range(n):
            t0 = time.perf_counter(); fn(); t.append(time.perf_counter() - t0)
        out[case] = {"ms": float(np.median(t)) * 1e3,
                     "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n}
print(json.dumps(out))
"""


def bench_alone(args, rows, meta):
    section("each tree alone in a fresh interpreter: ms and minor page faults per step")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop("PYTHONPATH", None)
    bench_dir = os.path.dirname(os.path.abspath(__file__))
    runs = {"this tree": [], "baseline": []}
    for r in range(args.alone_rounds):        # alternating, so that both see the same drift
        order = list(runs) if r % 2 == 0 else list(runs)[::-1]
        for name in order:
            src = ROOT if name == "this tree" else args.baseline_src
            res = subprocess.run([sys.executable, "-c", CHILD, src, bench_dir], env=env,
                                 capture_output=True, text=True, check=True)
            runs[name].append(json.loads(res.stdout.strip().splitlines()[-1]))
    for case in runs["this tree"][0]:
        a, b = ({k: float(np.median([run[case][k] for run in runs[name]]))
                 for k in ("ms", "faults")} for name in ("this tree", "baseline"))
        rows.append({"part": "b", "case": case, "this_ms": round(a["ms"], 4),
                     "baseline_ms": round(b["ms"], 4),
                     "this_faults_per_step": a["faults"], "baseline_faults_per_step": b["faults"]})
        log(f"{case:18s} this {a['ms']:9.3f} ms {a['faults']:8.1f} faults/step   baseline "
            f"{b['ms']:9.3f} ms {b['faults']:8.1f} faults/step")


def main(argv=None):
    p = arg_parser(__doc__.splitlines()[0])
    p.add_argument("--baseline-src", required=True,
                   help="a source tree (its fastsampled/ folder) to compare with")
    p.add_argument("--repeat", type=int, default=40, help="rounds of the S=64 cases")
    p.add_argument("--w2v-tokens", type=int, default=400_000)
    p.add_argument("--w2v-repeat", type=int, default=7)
    p.add_argument("--alone-rounds", type=int, default=3,
                   help="fresh interpreters per tree in (b), alternating; medians reported")
    args = p.parse_args(argv)
    info = machine_info()
    log(format_machine(info))
    t0 = time.perf_counter()
    rows, meta = [], {"V": V, "D": D, "B": B, "sizes": list(SIZES), "repeat": args.repeat,
                      "w2v_tokens": args.w2v_tokens, "alone_rounds": args.alone_rounds,
                      "baseline": os.path.abspath(args.baseline_src)}
    bench_side_by_side(args, rows, meta)
    bench_alone(args, rows, meta)
    meta["seconds"] = round(time.perf_counter() - t0, 1)
    write_results("step", rows, meta=meta, out_dir=out_dir_for(args), machine=info)


if __name__ == "__main__":
    main()
