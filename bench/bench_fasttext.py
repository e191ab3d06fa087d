"""FastText: fastsampled against the fasttext package and gensim, same corpus and settings, one run.

Each (tool, architecture) trains in a fresh process, so its peak RSS is its own; the tools run
interleaved (fastsampled, fastText, gensim for each architecture, ``--repeat`` times), each
reading the corpus from the file. A tool that is not installed is skipped (and said so in the
notes). Settings shared by all: dim 100, window 5, negative 5, min_count 5, sample 1e-3,
n-grams 3..6, 2 000 000 buckets, learning rate 0.05 (fastText's default; ``--alpha``), ``--epochs``
passes. Each tool keeps its own negative-sampling exponent (fastText 0.5, gensim and
fastsampled 0.75).

Reported per run: raw words/s over the whole call, vocabulary scan included (corpus tokens
times epochs divided by the wall time of building the vocabulary and training: the one figure
every tool allows, since ``fasttext.train_unsupervised`` does both in one call), the
training-only rate where a tool separates the two, peak RSS (``VmHWM``), analogy accuracy
(questions-words, restricted to the 30 000 most frequent words) and wordsim353 Spearman of the
vocabulary's vectors, scored by gensim's ``KeyedVectors`` when gensim is installed (else by
fastsampled's), and ``others_cpu``: cores other processes used meanwhile. Then, per
architecture, fastsampled's ratios against each other tool.

fastsampled's kernels come from Numba's cache: a separate process warms it first, and the
measured process loads them on a tiny corpus before its timer starts (inside its peak RSS).

    python bench/bench_fasttext.py --corpus /path/corpus.txt        # sg and cbow, 3 epochs
    python bench/bench_fasttext.py --corpus FILE --quick            # first 2 M tokens, 1 epoch

The evaluation corpus: ``../shared/corpus/make_corpus.sh OUTDIR`` (~20.5 M tokens).
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

from _common import (OtherLoad, arg_parser, log, machine_info, out_dir_for,  # noqa: E402
                     section, wait_for_quiet, write_results)

SETTINGS = dict(vector_size=100, window=5, negative=5, min_count=5, sample=1e-3, epochs=3,
                min_n=3, max_n=6, bucket=2_000_000, alpha=0.05)
TOOLS = ("fastsampled", "fasttext", "gensim")


def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _default_eval_files():
    try:
        import gensim
    except ImportError:
        return None, None
    d = os.path.join(os.path.dirname(gensim.__file__), "test", "test_data")
    return os.path.join(d, "questions-words.txt"), os.path.join(d, "wordsim353.tsv")


def _installed(tool):
    import importlib.util
    return tool == "fastsampled" or importlib.util.find_spec(tool) is not None


def _evaluate(vec_path, questions, pairs, restrict):
    """Analogy accuracy and wordsim Spearman of word2vec-text vectors, and who scored them."""
    try:
        from gensim.models import KeyedVectors
        kv = KeyedVectors.load_word2vec_format(vec_path, binary=False)
        scorer = "gensim"
    except ImportError:
        import fastsampled as fs
        kv = fs.KeyedVectors.load_word2vec_format(vec_path, binary=False)
        scorer = "fastsampled"
    out = {"scorer": scorer}
    try:
        if questions and os.path.exists(questions):
            out["analogy"] = float(kv.evaluate_word_analogies(questions,
                                                              restrict_vocab=restrict)[0])
        if pairs and os.path.exists(pairs):
            out["wordsim"] = float(kv.evaluate_word_pairs(pairs, restrict_vocab=restrict)[1][0])
    except (ValueError, ZeroDivisionError) as exc:    # e.g. no question in the vocabulary
        out["eval_error"] = str(exc)[:200]
    return out


def _warm_fastsampled(sg, workers, tmp):
    """Load (or, on a cold cache, compile) every kernel a run uses, on a tiny corpus file."""
    import fastsampled as fs
    path = os.path.join(tmp, "warm.txt")
    with open(path, "w") as f:
        f.write("ab bc cd ab bc\n" * 50)
    m = fs.FastText(corpus_file=path, vector_size=8, min_count=1, sg=sg, epochs=1, bucket=100,
                    workers=workers, progress=False)
    m.wv.vectors.sum()


def _write_vec(path, words, vectors):
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{len(words)} {vectors.shape[1]}\n")
        for w, v in zip(words, vectors):
            f.write(w + " " + " ".join(f"{x:.6g}" for x in v) + "\n")


def child_main(cfg):
    """Train one model in this process; print one JSON line of figures."""
    tool, sg = cfg["tool"], cfg["sg"]
    s = cfg["settings"]
    res = {"tool": tool, "arch": "sg" if sg else "cbow"}
    if tool == "fasttext":
        import fasttext
        res["version"] = getattr(fasttext, "__version__", "0.9")
        res["fixed_rss"] = _status("VmHWM")
        load = OtherLoad().start()
        t0 = time.perf_counter()
        model = fasttext.train_unsupervised(
            cfg["corpus"], model="skipgram" if sg else "cbow", dim=s["vector_size"],
            ws=s["window"], neg=s["negative"], minCount=s["min_count"], t=s["sample"],
            epoch=s["epochs"], minn=s["min_n"], maxn=s["max_n"], bucket=s["bucket"],
            lr=s["alpha"], thread=cfg["workers"], verbose=0)
        t2 = time.perf_counter()
        t1 = None
        words = [w for w in model.words if w != "</s>"]
        vecs = np.array([model.get_word_vector(w) for w in words], np.float32)
    elif tool == "gensim":
        import gensim
        from gensim.models import FastText
        res["version"] = gensim.__version__
        res["fixed_rss"] = _status("VmHWM")
        load = OtherLoad().start()
        t0 = time.perf_counter()
        model = FastText(vector_size=s["vector_size"], window=s["window"],
                         min_count=s["min_count"], sample=s["sample"], sg=sg,
                         negative=s["negative"], min_n=s["min_n"], max_n=s["max_n"],
                         bucket=s["bucket"], alpha=s["alpha"], workers=cfg["workers"],
                         seed=cfg["seed"])
        model.build_vocab(corpus_file=cfg["corpus"])
        t1 = time.perf_counter()
        model.train(corpus_file=cfg["corpus"], epochs=s["epochs"],
                    total_examples=model.corpus_count, total_words=model.corpus_total_words)
        t2 = time.perf_counter()
        words = list(model.wv.index_to_key)
        vecs = model.wv.vectors
    else:
        import fastsampled as fs
        res["version"] = fs.__version__
        with tempfile.TemporaryDirectory() as tmp:  # kernels: outside the timed region
            _warm_fastsampled(sg, cfg["workers"], tmp)
        res["fixed_rss"] = _status("VmHWM")
        load = OtherLoad().start()
        t0 = time.perf_counter()
        model = fs.FastText(vector_size=s["vector_size"], window=s["window"],
                            min_count=s["min_count"], sample=s["sample"], sg=sg,
                            negative=s["negative"], min_n=s["min_n"], max_n=s["max_n"],
                            bucket=s["bucket"], alpha=s["alpha"], epochs=s["epochs"],
                            workers=cfg["workers"], seed=cfg["seed"], progress=False)
        model.build_vocab(corpus_file=cfg["corpus"])
        t1 = time.perf_counter()
        model.train()
        t2 = time.perf_counter()
        words = list(model.wv.index_to_key)
        vecs = model.wv.vectors
    res["others_cpu"] = load.stop()
    tokens = cfg["tokens"] * s["epochs"]
    res.update(total_s=t2 - t0, raw_wps=tokens / (t2 - t0), vocab=len(words),
               peak_rss=_status("VmHWM"))
    if t1 is not None:
        res.update(vocab_s=t1 - t0, train_s=t2 - t1, train_raw_wps=tokens / (t2 - t1))
    _write_vec(cfg["vectors"], words, vecs)
    print("RESULT " + json.dumps(res), flush=True)
    return 0


def run_child(cfg):
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(cfg)],
                       capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:]), None
    return None, (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]


def _head_tokens(src, dst, max_tokens):
    n = 0
    with open(src, "rb") as f, open(dst, "wb") as g:
        for line in f:
            g.write(line)
            n += len(line.split())
            if n >= max_tokens:
                break
    return n


def _count_tokens(path):
    n = 0
    with open(path, "rb") as f:
        for line in f:
            n += len(line.split())
    return n


def _comparison(arch, mine, theirs):
    """fastsampled's runs against another tool's, paired by round (runs of one round ran
    side by side): the median of the per-round ratios, and their range; quality as the mean
    of the per-round differences."""
    pairs = [(f, o) for f in mine for o in theirs if f["round"] == o["round"]]
    speed = [f["raw_wps"] / o["raw_wps"] for f, o in pairs]
    row = {"tool": f"fastsampled / {theirs[0]['tool']}", "arch": arch, "rounds": len(pairs),
           "speed_ratio": float(np.median(speed)),
           "speed_ratio_range": [min(speed), max(speed)],
           "peak_rss_ratio": float(np.median([f["peak_rss"] / o["peak_rss"] for f, o in pairs]))}
    line = (f"fastsampled against {theirs[0]['tool']} ({arch}, {len(pairs)} rounds): words/s "
            f"{row['speed_ratio']:.2f}x (rounds {min(speed):.2f}x..{max(speed):.2f}x), "
            f"peak RSS {row['peak_rss_ratio']:.2f}x")
    for key, col in (("analogy", "analogy_diff"), ("wordsim", "wordsim_diff")):
        diffs = [f[key] - o[key] for f, o in pairs
                 if f.get(key) is not None and o.get(key) is not None]
        if diffs:
            row[col] = float(np.mean(diffs))
            line += f", {key} {row[col]:+.3f}"
    log(line)
    return row


def main(argv=None):
    p = arg_parser(__doc__.splitlines()[0])
    p.add_argument("--corpus", required=False, help="text file, one sentence per line")
    p.add_argument("--arch", nargs="+", choices=("sg", "cbow"), default=["sg", "cbow"])
    p.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--epochs", type=int, default=None, help="default 3 (--quick: 1)")
    p.add_argument("--repeat", type=int, default=1, help="rounds of interleaved runs")
    p.add_argument("--questions", default=None, help="analogy file (default: gensim's copy)")
    p.add_argument("--pairs", default=None, help="wordsim file (default: gensim's copy)")
    p.add_argument("--restrict-vocab", type=int, default=30000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--alpha", type=float, default=SETTINGS["alpha"],
                   help="initial learning rate of every tool (default 0.05, fastText's)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--warm-cache", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child_main(json.loads(args.child))
    if args.warm_cache:
        cfg = json.loads(args.warm_cache)
        with tempfile.TemporaryDirectory() as tmp:
            _warm_fastsampled(cfg["sg"], cfg["workers"], tmp)
        return 0
    if not args.corpus:
        p.error("--corpus is required (build one with ../shared/corpus/make_corpus.sh)")
    if not os.path.exists(args.corpus):
        p.error(f"--corpus {args.corpus}: no such file")
    q_default, w_default = _default_eval_files()
    questions = args.questions or q_default
    pairs = args.pairs or w_default
    settings = dict(SETTINGS, alpha=args.alpha)
    settings["epochs"] = args.epochs or (1 if args.quick else SETTINGS["epochs"])
    notes = []
    tools = []
    for tool in args.tools:
        if _installed(tool):
            tools.append(tool)
        else:
            notes.append(f"{tool} is not installed: skipped")
            log(f"{tool} is not installed: skipped")
    if not questions:
        notes.append("no analogy file: pass --questions (gensim ships questions-words.txt)")
    notes.append("negative-sampling exponent: each tool's own (fastText 0.5, gensim and "
                 "fastsampled 0.75)")
    busy = wait_for_quiet(args.wait_quiet)
    load_before = os.getloadavg()
    rows = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus
        if args.quick:
            corpus = os.path.join(tmp, "head.txt")
            n = _head_tokens(args.corpus, corpus, 2_000_000)
            notes.append(f"--quick: first {n:,} tokens of the corpus")
        tokens = _count_tokens(corpus)
        for arch in args.arch:
            results = {}
            for rnd in range(args.repeat):
                for tool in tools:
                    section(f"{tool} {arch}, {settings['epochs']} epochs, {args.workers} workers"
                            + (f", round {rnd + 1}" if args.repeat > 1 else ""))
                    vec = os.path.join(tmp, f"{tool}-{arch}.vec")
                    cfg = dict(tool=tool, sg=int(arch == "sg"), settings=settings,
                               corpus=corpus, workers=args.workers, seed=args.seed,
                               vectors=vec, tokens=tokens)
                    if tool == "fastsampled":
                        warm = subprocess.run([sys.executable, os.path.abspath(__file__),
                                               "--warm-cache", json.dumps(cfg)])
                        if warm.returncode:
                            log(f"warming the kernel cache failed (exit {warm.returncode})")
                    res, err = run_child(cfg)
                    if err:
                        log(f"FAILED: {err}")
                        rows.append({"tool": tool, "arch": arch, "error": err})
                        continue
                    res.update(_evaluate(vec, questions, pairs, args.restrict_vocab))
                    res["round"] = rnd + 1      # the child's result already names its tool
                    results.setdefault(tool, []).append(res)
                    log(f"{res['raw_wps'] / 1e3:.0f} k words/s incl. vocabulary, "
                        f"{res['total_s']:.1f} s, peak RSS {res['peak_rss'] / 2**30:.3f} GiB, "
                        f"others_cpu {res['others_cpu']}, analogy "
                        f"{res.get('analogy', float('nan')):.3f}, wordsim353 "
                        f"{res.get('wordsim', float('nan')):.3f} ({res['scorer']} scoring)")
                    rows.append({"tool": tool, "arch": arch, "round": rnd + 1,
                                 "version": res["version"], "raw_kwps": res["raw_wps"] / 1e3,
                                 "total_s": res["total_s"], "vocab_s": res.get("vocab_s"),
                                 "train_s": res.get("train_s"),
                                 "peak_rss_GiB": res["peak_rss"] / 2**30,
                                 "fixed_rss_GiB": res["fixed_rss"] / 2**30,
                                 "others_cpu": res["others_cpu"], "analogy": res.get("analogy"),
                                 "wordsim353": res.get("wordsim"), "vocab": res["vocab"]})
            for tool in tools:
                if tool != "fastsampled" and "fastsampled" in results and tool in results:
                    rows.append(_comparison(arch, results["fastsampled"], results[tool]))
    meta = {"settings": settings, "workers": args.workers, "corpus": os.path.abspath(args.corpus),
            "tokens": tokens, "questions": questions, "pairs": pairs,
            "restrict_vocab": args.restrict_vocab, "notes": notes, "busy_before": busy,
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "wall_s": time.perf_counter() - t_start}
    write_results("fasttext", rows, meta=meta, out_dir=out_dir_for(args), machine=machine_info())
    return 0


if __name__ == "__main__":
    sys.exit(main())
