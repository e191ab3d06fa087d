"""word2vec: fastsampled against gensim on the same corpus, settings and machine, in one run.

Each (tool, architecture) trains in a fresh process, so its peak RSS is its own; both tools read
the corpus from the file (gensim's ``corpus_file`` mode, its fastest). Reported per run:
effective words/s (words left after subsampling, trained per second, as gensim counts them),
raw words/s, training and vocabulary wall time, peak RSS, analogy accuracy (questions-words,
restricted to the 30 000 most frequent words) and wordsim353 Spearman. Quality is scored with
gensim's own ``KeyedVectors`` evaluation when gensim is installed (so both tools' figures are
gensim's scores), else with fastsampled's. Beside the peak RSS: the peak before the corpus
is read (each tool's fixed cost: imports, and fastsampled's kernels) and the private (anon) and
mapped-file parts of the RSS when training ends; ``others_cpu``: cores other processes used
while it trained.

fastsampled runs twice per architecture, around the gensim run: with gensim's settings
(``alpha=0.025`` and ``lr_schedule="gensim"``, the learning-rate trajectory gensim's
``corpus_file`` mode follows with the same number of workers: the comparison at the same
settings), and with its own defaults (``fastsampled-defaults``: the linear schedule, ``alpha``
0.025 for skip-gram and 0.05 for CBOW); ``--lr-schedule`` picks one. Each fastsampled run gets
a row against the gensim run: the ratio of effective words/s, the differences in analogy
accuracy and wordsim353 Spearman, the ratio of peak RSS.

fastsampled's kernels come from Numba's cache: a separate process warms it first (on a cold
cache it compiles there), and the measured process loads them on a tiny corpus before its
timer starts -- that load is inside its peak RSS.

    python bench/bench_word2vec.py --corpus /path/corpus.txt          # sg and cbow, 3 epochs
    python bench/bench_word2vec.py --corpus FILE --quick              # first 2 M tokens, 1 epoch

The evaluation corpus: ``../shared/corpus/make_corpus.sh OUTDIR`` (~20.5 M tokens). Any other
text file (one sentence per line, whitespace tokens) works too.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import (OtherLoad, arg_parser, log, machine_info, out_dir_for,  # noqa: E402
                     section, wait_for_quiet, write_results)

SETTINGS = dict(vector_size=100, window=5, negative=5, min_count=5, sample=1e-3, epochs=3)


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


def _evaluate(vec_path, questions, pairs, restrict):
    """Analogy accuracy and wordsim Spearman of binary word2vec vectors, and who scored them."""
    try:
        from gensim.models import KeyedVectors
        kv = KeyedVectors.load_word2vec_format(vec_path, binary=True)
        scorer = "gensim"
    except ImportError:
        import fastsampled as fs
        kv = fs.KeyedVectors.load_word2vec_format(vec_path, binary=True)
        scorer = "fastsampled"
    out = {"scorer": scorer}
    if questions and os.path.exists(questions):
        out["analogy"] = float(kv.evaluate_word_analogies(questions, restrict_vocab=restrict)[0])
    if pairs and os.path.exists(pairs):
        out["wordsim"] = float(kv.evaluate_word_pairs(pairs, restrict_vocab=restrict)[1][0])
    return out


def _warm_fastsampled(sg, workers, tmp):
    """Load (or, on a cold cache, compile) every kernel a run uses, on a tiny corpus file."""
    import fastsampled as fs
    path = os.path.join(tmp, "warm.txt")
    with open(path, "w") as f:
        f.write("a b c a b\n" * 50)
    fs.Word2Vec(corpus_file=path, vector_size=8, min_count=1, sg=sg, epochs=1,
                workers=workers, progress=False)


def child_main(cfg):
    """Train one model in this process; print one JSON line of figures.

    ``fixed_rss``: this process's peak RSS before it reads the corpus (gensim: after its
    import; fastsampled: after its import and loading its kernels on a tiny corpus), the cost
    every run pays whatever the data. ``rss_anon`` / ``rss_file``: private memory and mapped
    files (shared libraries) resident when training ended.
    """
    tool, sg = cfg["tool"], cfg["sg"]
    s = cfg["settings"]
    res = {"tool": tool, "arch": "sg" if sg else "cbow"}
    t0 = time.perf_counter()
    if tool == "gensim":
        import gensim
        from gensim.models import Word2Vec
        res["version"] = gensim.__version__
        res["fixed_rss"] = _status("VmHWM")
        model = Word2Vec(vector_size=s["vector_size"], window=s["window"],
                         min_count=s["min_count"], sample=s["sample"], sg=sg,
                         negative=s["negative"], workers=cfg["workers"], seed=cfg["seed"])
        res["alpha"] = model.alpha
        model.build_vocab(corpus_file=cfg["corpus"])
        t1 = time.perf_counter()
        load = OtherLoad().start()
        effective, raw = model.train(corpus_file=cfg["corpus"], epochs=s["epochs"],
                                     total_examples=model.corpus_count,
                                     total_words=model.corpus_total_words)
        t2 = time.perf_counter()
        vocab = len(model.wv)
    else:
        import fastsampled as fs
        res["version"] = fs.__version__
        with tempfile.TemporaryDirectory() as tmp:  # kernels: outside the timed region
            _warm_fastsampled(sg, cfg["workers"], tmp)
        res["fixed_rss"] = _status("VmHWM")
        given = {k: cfg[k] for k in ("lr_schedule", "alpha") if cfg.get(k) is not None}
        model = fs.Word2Vec(vector_size=s["vector_size"], window=s["window"],
                            min_count=s["min_count"], sample=s["sample"], sg=sg,
                            negative=s["negative"], epochs=s["epochs"],
                            workers=cfg["workers"], seed=cfg["seed"], progress=False, **given)
        res.update(lr_schedule=model.lr_schedule, alpha=model.alpha)
        t0 = time.perf_counter()
        model.build_vocab(corpus_file=cfg["corpus"])
        t1 = time.perf_counter()
        load = OtherLoad().start()
        fig = model.train()
        t2 = time.perf_counter()
        effective, raw = fig["effective_words"], fig["raw_words"]
        vocab = len(model.wv)
    res.update(vocab_s=t1 - t0, train_s=t2 - t1, effective_words=int(effective),
               raw_words=int(raw), vocab=vocab, peak_rss=_status("VmHWM"),
               rss_anon=_status("RssAnon"), rss_file=_status("RssFile"),
               others_cpu=load.stop(),
               effective_wps=effective / (t2 - t1), raw_wps=raw / (t2 - t1))
    model.wv.save_word2vec_format(cfg["vectors"], binary=True)
    print("RESULT " + json.dumps(res), flush=True)
    return 0


def _comparison(name, arch, f, g):
    """fastsampled run ``f`` against gensim run ``g`` of the same run: a row of ratios and
    differences (fastsampled's figure first)."""
    row = {"tool": f"{name} / gensim", "arch": arch,
           "speed_ratio": f["effective_wps"] / g["effective_wps"]}
    lines = [f"effective words/s: {row['speed_ratio']:.2f}x gensim's"]
    for key, col in (("analogy", "analogy_diff"), ("wordsim", "wordsim_diff")):
        if f.get(key) is not None and g.get(key) is not None:
            row[col] = f[key] - g[key]
            lines.append(f"{key}: {f[key]:.3f} against {g[key]:.3f} ({row[col]:+.3f})")
    row["peak_rss_ratio"] = f["peak_rss"] / g["peak_rss"]
    lines.append(f"peak RSS: {f['peak_rss'] / 2**30:.3f} against {g['peak_rss'] / 2**30:.3f} GiB "
                 f"({row['peak_rss_ratio']:.2f}x; fastsampled before reading the corpus: "
                 f"{f['fixed_rss'] / 2**30:.3f} GiB)")
    log(f"{name} against gensim:")
    for line in lines:
        log("  " + line)
    return row


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


def main(argv=None):
    p = arg_parser(__doc__.splitlines()[0])
    p.add_argument("--corpus", required=False, help="text file, one sentence per line")
    p.add_argument("--arch", nargs="+", choices=("sg", "cbow"), default=["sg", "cbow"])
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--epochs", type=int, default=None, help="default 3 (--quick: 1)")
    p.add_argument("--questions", default=None, help="analogy file (default: gensim's copy)")
    p.add_argument("--pairs", default=None, help="wordsim file (default: gensim's copy)")
    p.add_argument("--restrict-vocab", type=int, default=30000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-gensim", action="store_true", help="run fastsampled only")
    p.add_argument("--lr-schedule", choices=("gensim", "default", "both"), default="both",
                   help="fastsampled's learning rate: gensim's (alpha 0.025 and its "
                        "corpus_file schedule, the same trajectory as the gensim run), "
                        "fastsampled's defaults, or a run of each")
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
    settings = dict(SETTINGS)
    settings["epochs"] = args.epochs or (1 if args.quick else SETTINGS["epochs"])
    try:
        import gensim  # noqa: F401
        have_gensim = not args.no_gensim
    except ImportError:
        have_gensim = False
    # run name -> (tool, fastsampled's lr_schedule and alpha; None: its default); gensim runs
    # between the fastsampled ones
    runs = {"fastsampled": ("fastsampled", ("gensim", 0.025)), "gensim": ("gensim", None),
            "fastsampled-defaults": ("fastsampled", (None, None))}
    if not have_gensim:
        del runs["gensim"]
    if args.lr_schedule == "gensim":
        del runs["fastsampled-defaults"]
    elif args.lr_schedule == "default":
        del runs["fastsampled"]
    tools = [tool for tool, _ in runs.values()]
    notes = []
    if not have_gensim:
        notes.append("gensim not installed (or --no-gensim): no side-by-side ratio")
    if not questions:
        notes.append("no analogy file: pass --questions (gensim ships questions-words.txt)")
    if "fastsampled" in tools:
        notes.append("fastsampled kernels loaded from Numba's cache, warmed by a separate "
                     "process before each fastsampled run")
    busy = wait_for_quiet(args.wait_quiet)
    rows = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus
        if args.quick:
            corpus = os.path.join(tmp, "head.txt")
            n = _head_tokens(args.corpus, corpus, 2_000_000)
            notes.append(f"--quick: first {n:,} tokens of the corpus, {settings['epochs']} epoch(s)")
        results = {}
        for arch in args.arch:
            for name, (tool, lr) in runs.items():
                schedule, alpha = lr or (None, None)
                section(f"{name} {arch}, {settings['epochs']} epochs, {args.workers} workers"
                        + (f", lr_schedule={schedule!r}" if schedule else "")
                        + (f", alpha={alpha}" if alpha else "")
                        + (", fastsampled's default learning rate" if lr == (None, None)
                           else ""))
                vec = os.path.join(tmp, f"{name}-{arch}.bin")
                cfg = dict(tool=tool, sg=int(arch == "sg"), settings=settings, corpus=corpus,
                           workers=args.workers, seed=args.seed, vectors=vec,
                           lr_schedule=schedule, alpha=alpha)
                if tool == "fastsampled":  # a cold Numba cache compiles here, not in the run
                    warm = subprocess.run([sys.executable, os.path.abspath(__file__),
                                           "--warm-cache", json.dumps(cfg)])
                    if warm.returncode:
                        log(f"warming the kernel cache failed (exit {warm.returncode})")
                res, err = run_child(cfg)
                if err:
                    log(f"FAILED: {err}")
                    rows.append({"tool": name, "arch": arch, "error": err})
                    continue
                res.update(_evaluate(vec, questions, pairs, args.restrict_vocab))
                results[name] = res
                log(f"{res['effective_wps'] / 1e3:.0f} k effective words/s ({res['raw_wps'] / 1e3:.0f}"
                    f" k raw), train {res['train_s']:.1f} s, vocab {res['vocab_s']:.1f} s, peak RSS "
                    f"{res['peak_rss'] / 2**30:.3f} GiB (before the corpus "
                    f"{res['fixed_rss'] / 2**30:.3f}; at the end anon {res['rss_anon'] / 2**30:.3f}"
                    f" + files {res['rss_file'] / 2**30:.3f}), others_cpu {res['others_cpu']}, "
                    f"analogy {res.get('analogy', float('nan')):.3f}, wordsim353 "
                    f"{res.get('wordsim', float('nan')):.3f} ({res['scorer']} scoring)")
                rows.append({"tool": name, "arch": arch, "version": res["version"],
                             "lr_schedule": res.get("lr_schedule"),
                             "alpha": res.get("alpha"),
                             "effective_kwps": res["effective_wps"] / 1e3,
                             "raw_kwps": res["raw_wps"] / 1e3, "train_s": res["train_s"],
                             "vocab_s": res["vocab_s"], "peak_rss_GiB": res["peak_rss"] / 2**30,
                             "fixed_rss_GiB": res["fixed_rss"] / 2**30,
                             "end_anon_GiB": res["rss_anon"] / 2**30,
                             "end_files_GiB": res["rss_file"] / 2**30,
                             "others_cpu": res["others_cpu"],
                             "analogy": res.get("analogy"), "wordsim353": res.get("wordsim"),
                             "vocab": res["vocab"]})
            g = results.pop("gensim", None)
            for name in [n for n in runs if n != "gensim"]:
                f = results.pop(name, None)
                if g and f:
                    rows.append(_comparison(name, arch, f, g))
    meta = {"settings": settings, "workers": args.workers, "corpus": os.path.abspath(args.corpus),
            "questions": questions, "pairs": pairs, "restrict_vocab": args.restrict_vocab,
            "notes": notes, "busy_before": busy, "wall_s": time.perf_counter() - t_start}
    write_results("word2vec", rows, meta=meta, out_dir=out_dir_for(args), machine=machine_info())
    return 0


if __name__ == "__main__":
    sys.exit(main())
