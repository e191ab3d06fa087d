"""Command line: ``fastsampled demo``, ``word2vec train|eval``, ``fasttext train|eval``,
``bench`` and ``info``.

Also ``python -m fastsampled ...``.
"""

_DESCRIPTION = ("Sampled softmax, NCE and word2vec over huge vocabularies on CPUs. Sub-commands: "
                "demo, word2vec train|eval, fasttext train|eval, bench, info; "
                "'fastsampled COMMAND --help' for each.")
import argparse
import json
import logging
import os
import signal
import sys
import threading
import time

import numpy as np

import fastsampled as fs

from ._errors import StoreError, StoreLockedError
from ._benchsuite import BENCH_SUITES, find_bench_dir  # noqa: F401  (cli's API)
from ._benchsuite import run as run_bench
from ._evalsets import resolve as resolve_eval_set
from ._files import check_writable_target
from ._info import collect, format_info
from ._progress import Progress
from .baselines import full_softmax_step_time
from .datasets import SyntheticXC


class _StopRequest:
    """While active, Ctrl-C (SIGINT) asks the loop to stop after its current step instead of
    raising in the middle of it; the previous handler comes back on exit. Only in the main
    thread (elsewhere signals cannot be handled, and nothing changes)."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:                 # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _kernels_cached(module="_loss_kernels"):
    """Whether Numba's on-disk cache holds compiled kernels of ``module`` already (a guess,
    to warn before a first compilation)."""
    here = os.path.dirname(os.path.abspath(fs.__file__))
    where = [os.path.join(here, "__pycache__")]
    if os.environ.get("NUMBA_CACHE_DIR"):
        where.append(os.environ["NUMBA_CACHE_DIR"])
    for root in where:
        for _, _, files in os.walk(root):
            if any(f.startswith(module + ".") and f.endswith(".nbi") for f in files):
                return True
    return False


CHECKPOINT_EVERY = 1000   # demo steps between checkpoints of a memory-mapped head


def demo(num_classes=10**6, dim=128, batch=1024, num_sampled=64, steps=4000, path=None,
         optimizer="adam", lr=None, eval_examples=1000, full_softmax=True, seed=0,
         out=None, overwrite=False, resume=False):
    """Train a SampledSoftmaxHead on the built-in synthetic extreme-classification task.

    Prints the task, a progress bar (loss, steps/s), held-out precision@1 against chance
    before and after training, and one full-softmax step's time for comparison. Returns
    the figures as a dict. With ``path``, the head is memory-mapped there: a new directory
    (or an empty one), a head stored there before when ``overwrite`` (nothing else is ever
    replaced), or -- with ``resume`` -- the head stored there, trained further from its last
    checkpoint; a memory-mapped head is checkpointed every ``CHECKPOINT_EVERY`` steps. Ctrl-C
    stops after the current step (checkpointing a memory-mapped head); the dict then has
    ``interrupted`` True."""

    out = sys.stdout if out is None else out

    def say(msg):
        print(msg, file=out, flush=True)

    V, D, B, S = num_classes, dim, batch, num_sampled
    say(f"fastsampled {fs.__version__} demo: learn a hidden teacher over {V:,} Zipf-frequent "
        f"classes (dim {D}, batch {B}, {S} sampled classes per step)")
    task = SyntheticXC(V, D, seed=seed)
    if lr is None and optimizer == "adam":
        lr = 0.05      # lazy Adam on rarely-touched rows learns far too slowly at 1e-3
    if resume:
        head = fs.SampledSoftmaxHead.load(path)
        if (head.num_classes, head.dim, head.num_sampled) != (V, D, S):
            head.close()
            raise ValueError(f"--resume: the head at {path} has {head.num_classes} classes, "
                             f"dim {head.dim}, {head.num_sampled} sampled; run with "
                             f"--classes {head.num_classes} --dim {head.dim} --num-sampled "
                             f"{head.num_sampled}")
        say(f"  resuming the head at {path} from step {head.step}")
    else:
        head = fs.SampledSoftmaxHead(V, D, num_sampled=S, optimizer=optimizer, lr=lr,
                                     seed=seed, path=path, overwrite=overwrite)
    first = head.step
    where = "in RAM" if path is None else f"memory-mapped under {path}"
    say(f"  head: {head.weights.shape[0]:,} x {D} float32 weights {where}, "
        f"{type(head.optimizer).__name__.lower()} optimizer")
    if not _kernels_cached():
        say("  compiling the kernels (first run only, about a minute; cached on disk afterwards)")
    x_test, y_test = task.batch(eval_examples, 0, split="test")
    before = head.evaluate(x_test, y_test)

    # compile and warm up outside the timed loop
    t0 = time.perf_counter()
    head.train_step(*task.batch(B, first))
    t_first = time.perf_counter() - t0
    bar = Progress(steps, "training", unit="step", out=out, min_s=0)
    losses = []
    t_train = 0.0
    t_data = 0.0
    with _StopRequest() as stop:
        for step in range(1, steps + 1):
            t0 = time.perf_counter()
            xb, yb = task.batch(B, first + step)
            t1 = time.perf_counter()
            loss, _ = head.train_step(xb, yb)
            t2 = time.perf_counter()
            t_data += t1 - t0
            t_train += t2 - t1
            losses.append(loss)
            if step % 50 == 0 or step == steps:
                bar.update(step - bar.n, loss=f"{np.mean(losses[-50:]):.3f}",
                           steps_per_s=f"{step / t_train:.0f}")
            if path is not None and step % CHECKPOINT_EVERY == 0:
                head.checkpoint()
            if stop.requested:
                break
    bar.close()
    if stop.requested:
        if path is not None:
            head.checkpoint()
            say(f"  interrupted after step {head.step}: the head is checkpointed at {path} "
                "(--resume trains it further)")
        else:
            say(f"  interrupted after step {head.step} (the head was in RAM: nothing is kept)")
        head.close()
        return {"interrupted": True, "step": head.step}
    after = head.evaluate(x_test, y_test)
    if path is not None:
        head.checkpoint()
    chance = task.majority_baseline
    say(f"  {steps} steps: {steps / t_train:.0f} steps/s, {t_train / steps * 1e3:.2f} ms per "
        f"train step (+{t_data / steps * 1e3:.2f} ms to make each batch; first step with "
        f"compilation {t_first:.1f} s)")
    say(f"  sampled-softmax loss: {np.mean(losses[:50]):.3f} (first 50 steps) -> "
        f"{np.mean(losses[-50:]):.3f} (last 50)")
    say(f"  held-out ({eval_examples} examples) full-softmax loss {before['loss']:.3f} -> "
        f"{after['loss']:.3f}; precision@1 {before['precision@1']:.3f} -> "
        f"{after['precision@1']:.3f} (chance: {chance:.3f} always guessing the most frequent "
        f"class, {1 / V:.1e} uniform)")
    res = {"interrupted": False, "steps_per_s": steps / t_train, "step_s": t_train / steps,
           "loss_first":
           float(np.mean(losses[:50])), "loss_last": float(np.mean(losses[-50:])),
           "p1_before": before["precision@1"], "p1_after": after["precision@1"], "chance": chance}
    if full_softmax:
        W = head.weights if path is None else None
        if W is None:
            W = np.concatenate([np.asarray(s) for s in head.weights.shards]) \
                if head.partition_strategy == "div" else head.weights.to_numpy()
        b = np.asarray(head.biases) if path is None else head.biases.to_numpy()
        t_full = full_softmax_step_time(W, b, xb, yb)
        say(f"  one full-softmax step over all {V:,} classes (numpy BLAS, forward + backward): "
            f"~{t_full:.2f} s = {t_full / res['step_s']:.0f}x the sampled step")
        res["full_step_s"] = t_full
    head.close()
    return res


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default (flags and options without one excepted)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False \
                or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _parser(sub, name, help, **kw):
    """A sub-command parser that shows defaults and reports its own errors."""
    p = sub.add_parser(name, help=help, description=kw.pop("description", help[:1].upper()
                                                           + help[1:] + "."),
                       formatter_class=_HelpFormatter, **kw)
    p.set_defaults(parser=p)
    return p


def main(argv=None):
    """Run the command line; returns the exit status (130 after Ctrl-C, as a shell does)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("fastsampled: interrupted", file=sys.stderr)
        return 130


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="fastsampled", description=_DESCRIPTION,
                                     formatter_class=_HelpFormatter)
    parser.add_argument("-V", "--version", action="version",
                        version=f"fastsampled {fs.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = _parser(sub, "demo", "train a sampled-softmax head on a synthetic 10^6-class task")
    p.add_argument("--classes", type=int, default=10**6, help="number of classes")
    p.add_argument("--dim", type=int, default=128, help="feature dimension")
    p.add_argument("--batch", type=int, default=1024, help="examples per step")
    p.add_argument("--num-sampled", type=int, default=64, help="sampled classes per step")
    p.add_argument("--steps", type=int, default=4000, help="training steps")
    p.add_argument("--optimizer", choices=("sgd", "adagrad", "adam"), default="adam",
                   help="sparse optimizer of the head")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 0.05 for adam, else the head's default)")
    p.add_argument("--path", default=None,
                   help="keep the weights memory-mapped in this directory (default: RAM); "
                        "it must be new or empty unless --overwrite or --resume")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--overwrite", action="store_true",
                   help="replace a head stored at --path (only a head's own files are deleted)")
    g.add_argument("--resume", action="store_true",
                   help="continue training the head stored at --path from its last checkpoint")
    p.add_argument("--eval-examples", type=int, default=1000, help="held-out examples")
    p.add_argument("--no-full-softmax", action="store_true",
                   help="skip timing one full-softmax step for comparison")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the task, the weights and the sampler")
    _word2vec_parsers(sub)
    _fasttext_parsers(sub)
    _bench_parser(sub)
    i = _parser(sub, "info", "versions, threads, BLAS, CPU model and SIMD flags, peers")
    i.add_argument("--json", action="store_true", help="print the facts as JSON")
    args = parser.parse_args(argv)
    parser = args.parser            # errors below are the sub-command's own
    if args.command == "word2vec":
        # the library logs (vocabulary, per-section scores); the command shows those lines
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
        return _word2vec(parser, args)
    if args.command == "fasttext":
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
        return _fasttext(parser, args)
    if args.command == "bench":
        return run_bench(parser, args)
    if args.command == "info":
        info = collect()
        print(json.dumps(info, indent=1) if args.json else format_info(info))
        return 0
    if args.command == "demo":
        for name in ("classes", "dim", "batch", "num_sampled", "steps", "eval_examples"):
            if getattr(args, name) < 1:
                parser.error(f"--{name.replace('_', '-')} must be >= 1")
        if args.num_sampled > args.classes:
            parser.error("--num-sampled must be <= --classes")
        if (args.overwrite or args.resume) and args.path is None:
            parser.error("--overwrite and --resume need --path")
        try:
            res = demo(args.classes, args.dim, args.batch, args.num_sampled, args.steps,
                       args.path, args.optimizer, args.lr, args.eval_examples,
                       not args.no_full_softmax, args.seed, overwrite=args.overwrite,
                       resume=args.resume)
        except FileExistsError as e:
            if not args.overwrite and os.path.isfile(os.path.join(args.path, "head.json")):
                parser.error(f"--path {args.path} holds a head already: pass --overwrite to "
                             "replace it, or --resume to train it further")
            parser.error(f"--path: {e}")
        except (StoreError, StoreLockedError) as e:
            parser.error(f"--path: {e}")
        except ValueError as e:
            if "path" not in str(e) and "--resume" not in str(e):
                raise
            parser.error(str(e))
        return 130 if res["interrupted"] else 0
    return 0


def _word2vec_parsers(sub):
    w = _parser(sub, "word2vec", "train or evaluate word vectors")
    wsub = w.add_subparsers(dest="w2v_command", required=True)
    t = _parser(wsub, "train", "train word2vec on a text file (one sentence per line)")
    t.add_argument("corpus", help="UTF-8 text, one sentence per line, whitespace tokens")
    t.add_argument("-o", "--output", required=True, help="vectors file to write")
    arch = t.add_mutually_exclusive_group()
    arch.add_argument("--sg", dest="sg", action="store_const", const=1, default=1,
                      help="skip-gram (default)")
    arch.add_argument("--cbow", dest="sg", action="store_const", const=0, help="CBOW")
    t.add_argument("--dim", type=int, default=100, help="vector size")
    t.add_argument("--window", type=int, default=5, help="largest distance to a context word")
    t.add_argument("--min-count", type=int, default=5, help="drop words seen fewer times")
    t.add_argument("--max-final-vocab", type=int, default=None,
                   help="keep at most this many words, the most frequent (default: no limit)")
    t.add_argument("--sample", type=float, default=1e-3,
                   help="down-sampling threshold of frequent words (0: off)")
    t.add_argument("--negative", type=int, default=5, help="negative samples per pair")
    t.add_argument("--ns-exponent", type=float, default=0.75,
                   help="exponent of the counts in the negative-sampling distribution")
    t.add_argument("--loss", choices=("negative_sampling", "sampled_softmax", "nce"),
                   default="negative_sampling", help="training objective")
    t.add_argument("--num-sampled", type=int, default=None,
                   help="candidates per pair for sampled_softmax / nce (default: --negative)")
    t.add_argument("--epochs", type=int, default=5, help="passes over the corpus")
    t.add_argument("--alpha", type=float, default=None,
                   help="initial learning rate (default: 0.025 with --sg, 0.05 with --cbow)")
    t.add_argument("--min-alpha", type=float, default=1e-4, help="final learning rate")
    t.add_argument("--lr-schedule", choices=("linear", "gensim"), default="linear",
                   help="linear decay over all epochs (word2vec.c, default) or gensim's "
                        "corpus_file schedule (its rate falls 1/workers of the way within "
                        "an epoch, then steps down)")
    t.add_argument("--workers", type=int, default=None, help="threads (default: all cores)")
    t.add_argument("--seed", type=int, default=1, help="seeds the vectors and the sampling")
    fmt = t.add_mutually_exclusive_group()
    fmt.add_argument("--text", dest="binary", action="store_false", default=None,
                     help="write the word2vec text format (default for a name ending in .txt, "
                          ".txt.gz, .txt.bz2 or .txt.xz)")
    fmt.add_argument("--binary", dest="binary", action="store_true",
                     help="write the word2vec binary format (default for other names)")
    t.add_argument("--save-model", default=None, help="also save the whole model here")
    e = _parser(wsub, "eval", "evaluate word vectors on analogies and word pairs")
    e.add_argument("vectors", help="word2vec-format vectors, text or binary (read from the file; "
                                   "also .gz, .bz2, .xz)")
    e.add_argument("--analogies", default=None, metavar="FILE_OR_SET",
                   help="a questions-words format file, or 'questions-words' (word2vec's "
                        "analogy set, shipped with fastsampled)")
    e.add_argument("--pairs", default=None, metavar="FILE_OR_SET",
                   help="a word-pair file (word, word, score per line), or 'wordsim353' / "
                        "'simlex999' (from an installed gensim)")
    e.add_argument("--restrict-vocab", type=int, default=30000,
                   help="only the most frequent words are candidates and questions")


def _text_name(path):
    """Whether a vectors file name asks for the text format (``.txt``, also compressed)."""
    name = os.fspath(path).lower()
    for ext in (".gz", ".bz2", ".xz"):
        if name.endswith(ext):
            name = name[:-len(ext)]
    return name.endswith(".txt")


def _word2vec(parser, args):

    if args.w2v_command == "train":
        for name in ("dim", "window", "epochs"):
            if getattr(args, name) < 1:
                parser.error(f"--{name} must be >= 1")
        kw = dict(vector_size=args.dim, window=args.window, min_count=args.min_count,
                  max_final_vocab=args.max_final_vocab, sample=args.sample, sg=args.sg,
                  negative=args.negative, ns_exponent=args.ns_exponent, loss=args.loss,
                  num_sampled=args.num_sampled, epochs=args.epochs, alpha=args.alpha,
                  min_alpha=args.min_alpha, lr_schedule=args.lr_schedule, seed=args.seed)
        if args.workers is not None:
            kw["workers"] = args.workers
        # Before training: an unwritable output would otherwise cost the whole run.
        for option, out_path in (("-o/--output", args.output),
                                 ("--save-model", args.save_model)):
            if out_path is not None:
                try:
                    check_writable_target(out_path, option)
                except ValueError as err:
                    parser.error(str(err))
        t0 = time.perf_counter()
        interrupted = False
        try:
            model = fs.Word2Vec(**kw)
            if not _kernels_cached("_w2v_kernels"):
                print("compiling the word2vec kernels (first run only, about a minute; cached "
                      "on disk afterwards)", file=sys.stderr, flush=True)
            model.build_vocab(corpus_file=args.corpus)
        except (OSError, ValueError) as err:
            print(f"fastsampled word2vec train: {err}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("fastsampled word2vec train: interrupted while reading the corpus; nothing "
                  "was written", file=sys.stderr)
            return 130
        try:
            model.train()
        except KeyboardInterrupt:     # raised between two batches: the vectors are whole
            interrupted = True
        try:
            binary = args.binary if args.binary is not None else not _text_name(args.output)
            model.wv.save_word2vec_format(args.output, binary=binary)
            if args.save_model:
                model.save(args.save_model)
        except (OSError, ValueError) as err:
            print(f"fastsampled word2vec train: cannot write the result: {err}",
                  file=sys.stderr)
            return 1
        print(f"{len(model.wv):,} words x {args.dim} written to {args.output} in the word2vec "
              f"{'binary' if binary else 'text'} format ({time.perf_counter() - t0:.1f} s)")
        if interrupted:
            print("fastsampled word2vec train: interrupted; the vectors written are those "
                  "trained until then", file=sys.stderr)
            return 130
        return 0
    if not (args.analogies or args.pairs):
        parser.error("give --analogies and/or --pairs (e.g. --analogies questions-words)")
    try:
        if args.analogies:
            args.analogies = resolve_eval_set(args.analogies, "--analogies")
        if args.pairs:
            args.pairs = resolve_eval_set(args.pairs, "--pairs")
    except ValueError as err:
        parser.error(str(err))
    try:
        kv = fs.KeyedVectors.load_word2vec_format(args.vectors)
        if args.analogies:
            acc, _ = kv.evaluate_word_analogies(args.analogies, restrict_vocab=args.restrict_vocab)
            print(f"analogy accuracy: {acc:.4f} ({args.analogies}, restrict_vocab "
                  f"{args.restrict_vocab})")
        if args.pairs:
            pearson, spearman, oov = kv.evaluate_word_pairs(args.pairs,
                                                            restrict_vocab=args.restrict_vocab)
            print(f"word pairs: Spearman {spearman[0]:.4f}, Pearson {pearson[0]:.4f}, "
                  f"{oov:.1f}% out of vocabulary ({args.pairs})")
    except (OSError, ValueError) as err:
        print(f"fastsampled word2vec eval: {err}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- fasttext

def _fasttext_parsers(sub):
    f = _parser(sub, "fasttext", "train or evaluate subword (fastText) word vectors")
    fsub = f.add_subparsers(dest="ft_command", required=True)
    t = _parser(fsub, "train", "train FastText on a text file (one sentence per line); writes "
                               "a fastText .bin model")
    t.add_argument("corpus", help="UTF-8 text, one sentence per line, whitespace tokens")
    t.add_argument("-o", "--output", required=True,
                   help="the fastText .bin model to write (fastText and gensim read it)")
    arch = t.add_mutually_exclusive_group()
    arch.add_argument("--sg", dest="sg", action="store_const", const=1, default=1,
                      help="skip-gram (default)")
    arch.add_argument("--cbow", dest="sg", action="store_const", const=0, help="CBOW")
    t.add_argument("--dim", type=int, default=100, help="vector size")
    t.add_argument("--window", type=int, default=5, help="largest distance to a context word")
    t.add_argument("--min-count", type=int, default=5, help="drop words seen fewer times")
    t.add_argument("--minn", type=int, default=3, help="shortest character n-gram")
    t.add_argument("--maxn", type=int, default=6, help="longest character n-gram (0: none)")
    t.add_argument("--bucket", type=int, default=2_000_000, help="rows of the n-gram hash table")
    t.add_argument("--sample", type=float, default=1e-3,
                   help="down-sampling threshold of frequent words (0: off)")
    t.add_argument("--negative", type=int, default=5, help="negative samples per predicted word")
    t.add_argument("--epochs", type=int, default=5, help="passes over the corpus")
    t.add_argument("--alpha", type=float, default=None,
                   help="initial learning rate (default: 0.035 with --sg, 0.05 with --cbow)")
    t.add_argument("--min-alpha", type=float, default=1e-4, help="final learning rate")
    t.add_argument("--workers", type=int, default=None, help="threads (default: all cores)")
    t.add_argument("--seed", type=int, default=1, help="seeds the vectors and the sampling")
    t.add_argument("--path", default=None,
                   help="keep the input matrix memory-mapped in this new directory (default: "
                        "RAM)")
    t.add_argument("--overwrite", action="store_true",
                   help="replace a store already at --path")
    t.add_argument("--vec", default=None,
                   help="also write the vocabulary's vectors here, word2vec text format")
    t.add_argument("--save-model", default=None, help="also save the model in fastsampled's "
                                                      "own format here")
    t.add_argument("--quiet", action="store_true", help="no per-epoch log lines")
    e = _parser(fsub, "eval", "evaluate a fastText .bin model on analogies and word pairs")
    e.add_argument("model", help="a fastText .bin model")
    e.add_argument("--analogies", default=None, metavar="FILE_OR_SET",
                   help="a questions-words format file, or 'questions-words'")
    e.add_argument("--pairs", default=None, metavar="FILE_OR_SET",
                   help="a word-pair file (word, word, score per line), or 'wordsim353' / "
                        "'simlex999' (from an installed gensim)")
    e.add_argument("--restrict-vocab", type=int, default=30000,
                   help="only the most frequent words are candidates and questions")


def _fasttext(parser, args):
    if args.ft_command == "train":
        for name in ("dim", "window", "epochs"):
            if getattr(args, name) < 1:
                parser.error(f"--{name} must be >= 1")
        for option, out_path in (("-o/--output", args.output), ("--vec", args.vec),
                                 ("--save-model", args.save_model)):
            if out_path is not None:
                try:
                    check_writable_target(out_path, option)
                except ValueError as err:
                    parser.error(str(err))
        kw = dict(vector_size=args.dim, window=args.window, min_count=args.min_count,
                  sample=args.sample, sg=args.sg, negative=args.negative, epochs=args.epochs,
                  alpha=args.alpha, min_alpha=args.min_alpha, seed=args.seed,
                  min_n=args.minn, max_n=args.maxn, bucket=args.bucket, path=args.path,
                  overwrite=args.overwrite, progress=not args.quiet)
        if args.workers is not None:
            kw["workers"] = args.workers
        t0 = time.perf_counter()
        interrupted = False
        try:
            model = fs.FastText(**kw)
            if not _kernels_cached("_ft_kernels"):
                print("compiling the fasttext kernels (first run only, about a minute; cached "
                      "on disk afterwards)", file=sys.stderr, flush=True)
            model.build_vocab(corpus_file=args.corpus)
        except (OSError, ValueError) as err:
            print(f"fastsampled fasttext train: {err}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("fastsampled fasttext train: interrupted while reading the corpus; nothing "
                  "was written", file=sys.stderr)
            return 130
        try:
            model.train()
        except KeyboardInterrupt:     # raised between two batches: the vectors are whole
            interrupted = True
        try:
            model.save_facebook_model(args.output)
            if args.vec:
                model.wv.save_word2vec_format(args.vec, binary=False)
            if args.save_model:
                model.save(args.save_model)
        except (OSError, ValueError) as err:
            print(f"fastsampled fasttext train: cannot write the result: {err}",
                  file=sys.stderr)
            return 1
        finally:
            model.close()
        print(f"{len(model.index_to_key):,} words x {args.dim} (+ {args.bucket:,} n-gram rows) "
              f"written to {args.output} ({time.perf_counter() - t0:.1f} s)")
        if interrupted:
            print("fastsampled fasttext train: interrupted; the model written is the one "
                  "trained until then", file=sys.stderr)
            return 130
        return 0
    if not (args.analogies or args.pairs):
        parser.error("give --analogies and/or --pairs (e.g. --analogies questions-words)")
    try:
        if args.analogies:
            args.analogies = resolve_eval_set(args.analogies, "--analogies")
        if args.pairs:
            args.pairs = resolve_eval_set(args.pairs, "--pairs")
    except ValueError as err:
        parser.error(str(err))
    try:
        kv = fs.load_facebook_model(args.model).wv
        if args.analogies:
            acc, _ = kv.evaluate_word_analogies(args.analogies, restrict_vocab=args.restrict_vocab)
            print(f"analogy accuracy: {acc:.4f} ({args.analogies}, restrict_vocab "
                  f"{args.restrict_vocab})")
        if args.pairs:
            pearson, spearman, oov = kv.evaluate_word_pairs(args.pairs,
                                                            restrict_vocab=args.restrict_vocab)
            print(f"word pairs: Spearman {spearman[0]:.4f}, Pearson {pearson[0]:.4f}, "
                  f"{oov:.1f}% out of vocabulary ({args.pairs})")
    except (OSError, ValueError) as err:
        print(f"fastsampled fasttext eval: {err}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- bench

def _bench_parser(sub):
    b = _parser(
        sub, "bench", "run the benchmark suites: JSON, markdown tables and PNG plots",
        description="Run benchmark suites (scripts in bench/ of a source checkout), each in its "
                    "own process, then write markdown tables and PNG plots of their JSON. "
                    "Suites: " + "; ".join(f"{k}: {v.description}"
                                           for k, v in BENCH_SUITES.items()))
    b.add_argument("suites", nargs="*", metavar="SUITE",
                   help="which suites (default: all): " + ", ".join(BENCH_SUITES))
    b.add_argument("--quick", action="store_true",
                   help="small sizes and few repeats: all suites in under 2 minutes")
    b.add_argument("--out", default=None,
                   help="results folder (default: bench/results/local/suite, or suite-quick; "
                        "not tracked by git)")
    b.add_argument("--bench-dir", default=None,
                   help="folder of the benchmark scripts (default: ./bench of a checkout)")
    b.add_argument("--corpus", default=None,
                   help="word2vec: a text file, one sentence per line (default: a synthetic "
                        "corpus with planted analogies, written under the results folder)")
    b.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                   help="each script first waits up to SECONDS for the CPUs to be idle")
    b.add_argument("--show", action="store_true", help="open the plots in a window at the end")
    b.add_argument("--verbose", action="store_true", help="print every line the scripts print")
    b.add_argument("--list", action="store_true", help="list the suites and exit")

if __name__ == "__main__":
    sys.exit(main())
