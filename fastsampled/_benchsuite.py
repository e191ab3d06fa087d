"""The benchmark suites behind ``fastsampled bench`` (private): which scripts of ``bench/``
each suite runs, with what arguments and expected durations, and the driver that runs them
one process each and renders their results with ``bench/report.py``.

The driver reports its progress as the library's long jobs do (``_progress.Progress``, on
stderr): a bar over the run's expected seconds on a terminal, which moves while a script
runs (up to that script's expected time) and jumps to the end of its share when it ends;
otherwise a plain line as each script ends. Its own lines (one per script, with the expected
and the elapsed time, and the scripts' section headers) go to stdout through the bar's
``write``, so the two never garble each other.
"""
import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from ._progress import Progress

__all__ = ["BenchScript", "BenchSuite", "BENCH_SUITES", "COMPILE_S", "TICK_S", "find_bench_dir",
           "format_seconds", "plan_runs", "run", "run_script", "run_step", "word2vec_args"]


@dataclasses.dataclass(frozen=True)
class BenchScript:
    """One script in ``bench/`` and how ``fastsampled bench`` runs it.

    The script is run as ``python SCRIPT --out DIR [--quick] [--wait-quiet S]``, then
    ``args``, then ``quick_args`` (with ``--quick`` only), then ``--corpus`` and the
    evaluation files when ``corpus`` is set.

    Parameters
    ----------
    script : str
        File name in ``bench/``.
    quick_s, full_s : int or None
        Seconds it is expected to take with ``--quick`` and in full mode, on a quiet 2-core
        machine with Numba's cache warm (docs/performance.md#benchmark-suite-durations).
        None: not run in that mode; a script with both None is listed with its suite and
        run by hand only.
    args : tuple of str
        Arguments it gets in both modes.
    quick_args : tuple of str
        Arguments it gets with ``--quick`` only.
    requires : tuple of (str, str)
        ``(module, how to install it)`` for every module it cannot run without; a missing
        one skips it with a note instead of a failure.
    corpus : bool
        Whether it gets ``--corpus``: the user's ``--corpus`` file, else a synthetic corpus
        with planted analogies and its question and word-pair files.
    """

    script: str
    quick_s: int | None
    full_s: int | None
    args: tuple[str, ...] = ()
    quick_args: tuple[str, ...] = ()
    requires: tuple[tuple[str, str], ...] = ()
    corpus: bool = False

    def expected(self, quick):
        """Expected seconds in the given mode (None: not run in it).

        Parameters
        ----------
        quick : bool
            ``--quick`` mode, else full mode.

        Returns
        -------
        int or None
        """
        return self.quick_s if quick else self.full_s

    def arguments(self, quick):
        """The arguments of :attr:`args` and, with ``quick``, :attr:`quick_args`.

        Parameters
        ----------
        quick : bool
            ``--quick`` mode, else full mode.

        Returns
        -------
        list of str
        """
        return list(self.args) + (list(self.quick_args) if quick else [])


@dataclasses.dataclass(frozen=True)
class BenchSuite:
    """A named group of benchmark scripts, run in order by ``fastsampled bench SUITE``.

    Parameters
    ----------
    description : str
        What the suite measures (``--list`` and ``--help``).
    scripts : tuple of BenchScript
        Its scripts, in the order they run.
    """

    description: str
    scripts: tuple[BenchScript, ...]


# Every benchmark script in bench/, by suite, with the seconds it is expected to take
# (docs/performance.md#benchmark-suite-durations). A new script is added here, as one
# BenchScript, and described in bench/README.md. `fastsampled bench` runs the suites in this
# order, and of each suite the scripts whose time for the mode (quick_s / full_s) is set. The
# full head suite takes minutes more the first time, to create its 26 GB memory-mapped store
# (kept for later runs).
BENCH_SUITES = {
    "samplers": BenchSuite(
        "alias-table build rate against V, draw rates (TensorFlow's when installed)",
        # TensorFlow's rows are slow to run; full mode has them
        (BenchScript("bench_samplers.py", 12, 80, quick_args=("--no-tf",)),)),
    "losses": BenchSuite(
        "train-step time against V: fastsampled, TensorFlow, full softmax (full mode also: "
        "the step variants, FLOP rate, under load)",
        (BenchScript("bench_scaling.py", 18, 200), BenchScript("bench_losses.py", None, 200),
         # a step of this tree against another checkout (--baseline-src): by hand only
         BenchScript("bench_step.py", None, None))),
    "head": BenchSuite(
        "SampledSoftmaxHead train_step and memory against V, optimizers, memory-mapped, "
        "predict",
        # --quick: the memory suite covers memory maps
        (BenchScript("bench_head.py", 22, 420, quick_args=("--skip-mmap",)),
         # the journal's cost; it needs a 26 GB store of its own (made on its first run),
         # so it is run by hand, never by `fastsampled bench`
         BenchScript("bench_journal.py", None, None))),
    "word2vec": BenchSuite(
        "words/s and quality, fastsampled beside gensim (when installed)",
        (BenchScript("bench_word2vec.py", 25, 480, corpus=True),)),
    "fasttext": BenchSuite(
        "subword vectors: words/s, quality and peak RSS, fastsampled beside the fasttext "
        "package and gensim's FastText (each when installed)",
        (BenchScript("bench_fasttext.py", 90, 1500, corpus=True),)),
    "torch": BenchSuite(
        "PyTorch adapter (bench/bench_torch.py, when present and torch is installed)",
        (BenchScript("bench_torch.py", 25, 250,
                     requires=(("torch", "pip install torch==2.13.0 for the CPU build"),)),)),
    "tensorflow": BenchSuite(
        "fastsampled.tf and the Keras layer inside a tf.function step, beside "
        "tf.nn.sampled_softmax_loss; memory at V=10^7; the shared TensorFlow cases",
        (BenchScript("bench_tf.py", 60, 480,
                     requires=(("tensorflow", 'pip install ".[tensorflow]"'),)),)),
    "ray": BenchSuite(
        "the distributed head on a local Ray instance: exactness against one machine, the "
        "step's overhead, V=10^7 over 4 shard servers, SIGKILL runs, asynchronous quality",
        (BenchScript("bench_ray.py", 180, 900,
                     requires=(("ray", 'pip install ".[ray]"'),)),)),
    "memory": BenchSuite(
        "peak and anonymous RSS of a training process against V: fastsampled in RAM, "
        "memory-mapped, TensorFlow",
        (BenchScript("bench_memory.py", 20, 200),)),
}
COMPILE_S = 90      # first run in a fresh checkout: Numba compiles every kernel once
TICK_S = 0.5        # how often the bar moves while a script runs (on a terminal only)


def find_bench_dir(explicit=None):
    """The folder of the benchmark scripts: ``explicit``, else ``./bench``, the current folder,
    or ``bench/`` beside the imported package (a source checkout). None when not found.

    Parameters
    ----------
    explicit : str, optional
        A folder given with ``--bench-dir``; used as is when it holds the scripts.

    Returns
    -------
    str or None
        Absolute path of a folder holding ``_common.py`` and ``report.py``.
    """
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates = [explicit] if explicit else [os.path.join(os.getcwd(), "bench"), os.getcwd(),
                                              os.path.join(here, "bench")]
    for c in candidates:
        if all(os.path.isfile(os.path.join(c, f)) for f in ("_common.py", "report.py")):
            return os.path.abspath(c)
    return None


def format_seconds(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def plan_runs(args, bench_dir):
    """``[(suite, step or None, note)]``: what runs, and why a suite is skipped."""
    plan = []
    for suite in dict.fromkeys(args.suites or BENCH_SUITES):    # in the order given, once
        for step in BENCH_SUITES[suite].scripts:
            if step.expected(args.quick) is None:
                continue
            path = os.path.join(bench_dir, step.script)
            missing = [(module, how) for module, how in step.requires
                       if importlib.util.find_spec(module) is None]
            if not os.path.isfile(path):
                plan.append((suite, None, f"{step.script} not found in {bench_dir}: skipped"))
            elif missing:
                module, how = missing[0]
                plan.append((suite, None, f"{module} not installed: skipped ({how})"))
            else:
                plan.append((suite, step, None))
    return plan


def run_script(cmd, log_path, verbose, out, write=None):
    """Run one benchmark script; echo its section headers (everything with ``verbose``) to
    ``out``, through ``write(line, out)`` when given (a progress bar's)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1, env=env)
        for line in proc.stdout:
            log.write(line)
            s = line.strip()
            if verbose or s.startswith(("== ", "WARNING: other processes", "Traceback")) \
                    or "FAILED" in s or "ERROR" in s:
                if write is not None:
                    write("      " + line.rstrip(), out)
                else:
                    print("      " + line.rstrip(), file=out, flush=True)
        return proc.wait()


class _Ticker:
    """Moves ``progress`` along while a script runs, from ``start`` by the seconds elapsed,
    short of the script's ``share`` of the expected time (a bar only: plain lines come as
    each script ends)."""

    def __init__(self, progress, start, share):
        self.progress, self.start, self.share = progress, start, share
        self._stop = threading.Event()
        self._thread = None
        if progress.interactive and share > 1:
            self._thread = threading.Thread(target=self._run, name="fastsampled-bench-bar",
                                            daemon=True)
            self._thread.start()

    def _run(self):
        t0 = time.perf_counter()
        while not self._stop.wait(TICK_S):
            target = self.start + min(int(time.perf_counter() - t0), self.share - 1)
            if target > self.progress.n:
                self.progress.update(target - self.progress.n)

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def run(parser, args, out=None):
    out = sys.stdout if out is None else out
    progress = None

    def say(msg=""):
        if progress is not None:
            progress.write(msg, out)
        else:
            print(msg, file=out, flush=True)

    unknown = [s for s in args.suites if s not in BENCH_SUITES]
    if unknown:
        parser.error(f"unknown suite {unknown[0]!r} (choose from {', '.join(BENCH_SUITES)})")
    if args.list:
        for name, suite in BENCH_SUITES.items():
            q = sum(s.quick_s or 0 for s in suite.scripts)
            f = sum(s.full_s or 0 for s in suite.scripts)
            run = [s.script for s in suite.scripts if (s.quick_s, s.full_s) != (None, None)]
            by_hand = [s.script for s in suite.scripts if (s.quick_s, s.full_s) == (None, None)]
            scripts = ", ".join(run) + ("; by hand: " + ", ".join(by_hand) if by_hand else "")
            say(f"{name:9s} ~{format_seconds(q)} quick, ~{format_seconds(f)} full: {suite.description} "
                f"({scripts})")
        return 0
    bench_dir = find_bench_dir(args.bench_dir)
    if bench_dir is None:
        where = f" in {args.bench_dir}" if args.bench_dir else ""
        print("fastsampled bench: cannot find the benchmark scripts (bench/_common.py, "
              f"bench/report.py){where}. They live in the source repository, not in the "
              "installed package: run this command from a clone of the repository (its top "
              "folder), or pass --bench-dir PATH/TO/bench.", file=sys.stderr)
        return 2
    if args.corpus is not None and not os.path.isfile(args.corpus):
        parser.error(f"--corpus {args.corpus}: no such file")
    out_dir = os.path.abspath(args.out or os.path.join(
        bench_dir, "results", "local", "suite-quick" if args.quick else "suite"))
    logs = os.path.join(out_dir, "logs")
    os.makedirs(logs, exist_ok=True)
    plan = plan_runs(args, bench_dir)
    runs = [(suite, step) for suite, step, _ in plan if step is not None]
    expected = sum(step.expected(args.quick) for _, step in runs)
    mode = "--quick" if args.quick else "full"
    say(f"fastsampled bench ({mode}): {len(runs)} scripts, suites "
        f"{', '.join(dict.fromkeys(s for s, _, _ in plan))}")
    say(f"expected duration: ~{format_seconds(expected)} on a quiet 2-core machine with Numba's cache "
        f"warm (the first run in a fresh checkout adds ~{format_seconds(COMPILE_S)} of compilation; "
        "other processes on the CPUs make it longer)")
    say(f"results: {out_dir} (logs of every script in {logs})")
    suite_log = {"mode": mode, "out": out_dir, "bench_dir": bench_dir, "steps": [],
                 "skipped": [], "expected_s": expected, "command": " ".join(sys.argv)}
    for suite, step, note in plan:
        if note:
            say(f"  {suite}: {note}")
            suite_log["skipped"].append({"suite": suite, "note": note})
    t_all = time.perf_counter()
    failed = []
    if runs:
        # on stderr, the results' lines keep stdout; every script end is reported (min_s=0)
        progress = Progress(expected, "fastsampled bench", unit="s", out=sys.stderr, min_s=0)
    ctx = dict(say=say, out=out, bench_dir=bench_dir, out_dir=out_dir, logs=logs, n=len(runs),
               tmp=tempfile.mkdtemp(prefix="fastsampled-bench-"), expected=expected, t_all=t_all,
               suite_log=suite_log, progress=progress, done_s=0)
    try:
        for i, (suite, step) in enumerate(runs, 1):
            if run_step(args, ctx, i, suite, step) != 0:
                failed.append(step.script)
    finally:
        shutil.rmtree(ctx["tmp"], ignore_errors=True)
        if progress is not None:
            progress.close()
            progress = None
    suite_log["wall_s"] = round(time.perf_counter() - t_all, 1)
    with open(os.path.join(out_dir, "suite.json"), "w") as f:
        json.dump(suite_log, f, indent=1)
        f.write("\n")
    say(f"all scripts ran in {format_seconds(suite_log['wall_s'])}; tables and plots:")
    report = [sys.executable, os.path.join(bench_dir, "report.py"), out_dir]
    if args.show:
        report.append("--show")
    rc = subprocess.call(report)
    say(f"open {os.path.join(out_dir, 'README.md')} for every table and plot "
        f"(PNG files beside it)")
    if failed:
        say(f"failed: {', '.join(failed)} (their logs are in {logs})")
    return 1 if failed or rc != 0 else 0


def run_step(args, ctx, i, suite, step):
    """Run script ``i`` of the plan (``step`` of ``suite``); record it in the suite log."""
    say = ctx["say"]
    cmd = [sys.executable, os.path.join(ctx["bench_dir"], step.script), "--out", ctx["out_dir"]]
    if args.quick:
        cmd.append("--quick")
    if args.wait_quiet:
        cmd += ["--wait-quiet", str(args.wait_quiet)]
    cmd += step.arguments(args.quick)
    if step.corpus:
        cmd += word2vec_args(args, ctx["tmp"], ctx["bench_dir"], say)
    elapsed = time.perf_counter() - ctx["t_all"]
    say(f"[{i}/{ctx['n']}] {suite}: {step.script} {' '.join(cmd[2:])} "
        f"(~{format_seconds(step.expected(args.quick))}; elapsed {format_seconds(elapsed)} of "
        f"~{format_seconds(ctx['expected'])})")
    t0 = time.perf_counter()
    log_path = os.path.join(ctx["logs"], step.script.replace(".py", ".log"))
    progress = ctx.get("progress")
    share = step.expected(args.quick)
    ticker = None if progress is None else _Ticker(progress, ctx["done_s"], share)
    try:
        rc = run_script(cmd, log_path, args.verbose, ctx["out"],
                        None if progress is None else progress.write)
    finally:
        if ticker is not None:
            ticker.stop()
    dt = time.perf_counter() - t0
    say(f"      {'done' if rc == 0 else f'FAILED (exit {rc}, see {log_path})'} in "
        f"{format_seconds(dt)}")
    ctx["done_s"] += share
    if progress is not None:
        progress.update(ctx["done_s"] - progress.n, scripts=f"{i}/{ctx['n']}",
                        elapsed=format_seconds(time.perf_counter() - ctx["t_all"]))
    ctx["suite_log"]["steps"].append({"suite": suite, "script": step.script, "args": cmd[2:],
                                      "returncode": rc, "wall_s": round(dt, 1),
                                      "expected_s": step.expected(args.quick)})
    return rc


def word2vec_args(args, tmp, bench_dir, say):
    """``--corpus`` (and evaluation files) for a script listed with ``corpus=True``
    (bench_word2vec.py): the user's file, else a synthetic corpus with planted analogies
    written under ``tmp``."""
    if args.corpus:
        return ["--corpus", os.path.abspath(args.corpus)]
    sys.path.insert(0, bench_dir)
    try:
        from synthetic_corpus import write_corpus
    finally:
        sys.path.remove(bench_dir)
    tokens = 500_000 if args.quick else 5_000_000
    syn = write_corpus(os.path.join(tmp, "synthetic-corpus"), tokens=tokens, seed=0)
    say(f"      no --corpus: synthetic corpus of {syn['tokens']:,} tokens with planted "
        "topic/role analogies (pass --corpus FILE for English text; "
        "../shared/corpus/make_corpus.sh builds the 20 M-token evaluation corpus)")
    return ["--corpus", syn["corpus"], "--questions", syn["questions"], "--pairs", syn["pairs"]]
