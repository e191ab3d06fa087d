"""The README's main job: ``fastsampled demo`` (small sizes here)."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import fastsampled as fs
from fastsampled.cli import demo, main


@pytest.mark.kernel
@pytest.mark.parametrize("on_disk", [False, True])
def test_demo_trains_and_prints_its_figures(tmp_path, on_disk):
    out = io.StringIO()
    res = demo(num_classes=2000, dim=16, batch=128, num_sampled=16, steps=150,
               path=str(tmp_path / "head") if on_disk else None, optimizer="adam", lr=0.05,
               eval_examples=200, out=out)
    text = out.getvalue()
    for what in ("steps/s", "held-out", "precision@1", "chance", "full-softmax step"):
        assert what in text
    assert res["loss_last"] < res["loss_first"]
    assert res["p1_after"] > max(res["p1_before"], 2 * res["chance"])
    assert res["full_step_s"] > 0
    if on_disk:
        assert (tmp_path / "head" / "head.json").exists()


@pytest.mark.parametrize("argv", [["demo", "--classes", "0"], ["demo", "--num-sampled", "9",
                                                                "--classes", "8"],
                                  ["demo", "--optimizer", "rmsprop"], []])
def test_demo_rejects_bad_arguments(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2


def test_module_entry_point_help():
    r = subprocess.run([sys.executable, "-m", "fastsampled", "demo", "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--classes" in r.stdout and "--path" in r.stdout


@pytest.mark.kernel
def test_word2vec_train_then_eval(tmp_path, capsys):
    topics = [["cat", "dog", "mouse", "pet"], ["car", "road", "wheel", "fuel"]]
    lines = [" ".join(t[(i * 3 + j) % 4] for j in range(8)) for i in range(300) for t in topics]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n")
    out = tmp_path / "vectors.bin"
    assert main(["word2vec", "train", str(corpus), "-o", str(out), "--dim", "8",
                 "--min-count", "1", "--epochs", "2", "--workers", "1", "--window", "2"]) == 0
    assert "8 words x 8 written" in capsys.readouterr().out
    (tmp_path / "q.txt").write_text(": family\ncat dog car road\ndog cat road car\n")
    (tmp_path / "p.tsv").write_text("cat\tdog\t9.0\ncat\tcar\t1.0\ndog\troad\t1.5\nmouse\tpet\t8\n")
    assert main(["word2vec", "eval", str(out), "--analogies", str(tmp_path / "q.txt"),
                 "--pairs", str(tmp_path / "p.tsv")]) == 0
    text = capsys.readouterr().out
    assert "analogy accuracy" in text and "Spearman" in text


def test_word2vec_train_reports_a_missing_corpus(tmp_path, capsys):
    assert main(["word2vec", "train", str(tmp_path / "nope.txt"), "-o",
                 str(tmp_path / "v.bin")]) == 1
    assert "nope.txt" in capsys.readouterr().err


@pytest.mark.kernel
def test_word2vec_train_passes_the_lr_schedule(tmp_path, capsys):
    import fastsampled as fs
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join("a b c d e f g h" for _ in range(200)) + "\n")
    model_path = tmp_path / "model"
    assert main(["word2vec", "train", str(corpus), "-o", str(tmp_path / "v.bin"), "--dim", "4",
                 "--min-count", "1", "--epochs", "1", "--workers", "2", "--lr-schedule",
                 "gensim", "--save-model", str(model_path)]) == 0
    assert fs.Word2Vec.load(str(model_path)).lr_schedule == "gensim"
    with pytest.raises(SystemExit):
        main(["word2vec", "train", str(corpus), "-o", "x", "--lr-schedule", "cosine"])


@pytest.mark.kernel
def test_train_uses_the_library_default_learning_rate(tmp_path, capsys):
    # no --alpha: the library's default for the architecture; a given --alpha as it is
    import fastsampled as fs
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join("a b c d e f g h" for _ in range(200)) + "\n")
    common = ["--dim", "4", "--min-count", "1", "--epochs", "1", "--workers", "1"]
    for extra, want in (([], 0.025), (["--cbow"], 0.05), (["--cbow", "--alpha", "0.025"], 0.025)):
        model_path = tmp_path / "w2v"
        assert main(["word2vec", "train", str(corpus), "-o", str(tmp_path / "v.bin"), *common,
                     *extra, "--save-model", str(model_path)]) == 0
        model = fs.Word2Vec.load(str(model_path))
        assert (model.alpha, model.lr_schedule) == (want, "linear"), extra
    for extra, want in (([], fs.FastText.default_alpha(1)), (["--cbow"], 0.05),
                        (["--alpha", "0.05"], 0.05)):
        model_path = tmp_path / "ft.npz"
        assert main(["fasttext", "train", str(corpus), "-o", str(tmp_path / "m.bin"), *common,
                     "--bucket", "100", "--quiet", *extra, "--save-model",
                     str(model_path)]) == 0
        assert fs.FastText.load(str(model_path)).alpha == want, extra


# ------------------------------------------------------------------ as a user runs it

def _cli(*args):
    """``python -m fastsampled ARGS`` in a subprocess: (exit code, stdout, stderr)."""
    import subprocess
    import sys
    res = subprocess.run([sys.executable, "-m", "fastsampled", *args], capture_output=True,
                         text=True, timeout=120)
    return res.returncode, res.stdout, res.stderr


def test_version():
    for flag in ("--version", "-V"):
        code, out, _ = _cli(flag)
        assert code == 0 and out.strip() == f"fastsampled {fs.__version__}"


SUBCOMMANDS = [("demo",), ("word2vec",), ("word2vec", "train"), ("word2vec", "eval"),
               ("bench",), ("info",)]


@pytest.mark.parametrize("cmd", SUBCOMMANDS, ids=" ".join)
def test_help_shows_every_default_and_no_markup(cmd):
    import re
    code, out, _ = _cli(*cmd, "--help")
    assert code == 0 and out.startswith("usage: fastsampled " + " ".join(cmd))
    assert "``" not in out and ":func:" not in out and ":class:" not in out
    options = out.split("options:", 1)[1]
    # an option's entry: its line and the indented lines that continue its help
    entries = {m.group(1): m.group(0) for m in re.finditer(
        r"\n  (?:-\w, )?(--[\w-]+)[^\n]*(?:\n {10,}[^\n]*)*", options)}
    expected = {"demo": ["--classes", "--dim", "--batch", "--num-sampled", "--steps",
                         "--optimizer", "--eval-examples", "--seed"],
                "train": ["--dim", "--window", "--min-count", "--sample", "--negative",
                          "--ns-exponent", "--loss", "--epochs", "--alpha", "--min-alpha",
                          "--lr-schedule", "--seed"],
                "eval": ["--restrict-vocab"],
                "bench": ["--wait-quiet"]}.get(cmd[-1], [])
    for opt in expected:
        assert "(default:" in entries[opt], entries[opt]
    for opt in ("--max-final-vocab", "--num-sampled", "--workers"):
        if cmd[-1] == "train":               # no default value: the help says what happens
            assert "default" in entries[opt], entries[opt]


def test_subcommand_errors_come_from_the_subcommand():
    code, _, err = _cli("demo", "--steps", "0")
    assert code == 2
    assert err.splitlines()[0].startswith("usage: fastsampled demo")
    assert "fastsampled demo: error: --steps must be >= 1" in err


def test_bench_unknown_suite_lists_the_suites():
    code, _, err = _cli("bench", "nosuch")
    assert code == 2 and "unknown suite 'nosuch' (choose from samplers, losses" in err
    assert "[]" not in err


def test_word2vec_cli_picks_the_format_from_the_name_and_reads_either(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat\nthe dog sat on the log\n" * 50)
    for name, fmt in (("v.txt", "text"), ("v.bin", "binary"), ("v.txt.gz", "text")):
        code, out, err = _cli("word2vec", "train", str(corpus), "-o", str(tmp_path / name),
                              "--dim", "8", "--min-count", "1", "--epochs", "1",
                              "--workers", "1")
        assert code == 0, err
        assert f"in the word2vec {fmt} format" in out
        kv = fs.KeyedVectors.load_word2vec_format(tmp_path / name)
        assert "cat" in kv.key_to_index
    code, out, _ = _cli("word2vec", "train", str(corpus), "-o", str(tmp_path / "w.txt"),
                        "--binary", "--dim", "8", "--min-count", "1", "--epochs", "1")
    assert code == 0 and "binary format" in out
    assert fs.KeyedVectors.load_word2vec_format(tmp_path / "w.txt", binary=True).vector_size == 8


def test_word2vec_eval_finds_the_evaluation_sets_by_name(tmp_path):
    import importlib.util
    words = ["Athens", "Greece", "Baghdad", "Iraq", "tiger", "cat", "book", "paper"]
    kv = fs.KeyedVectors(np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32),
                         words)
    kv.save_word2vec_format(tmp_path / "v.bin", binary=True)
    code, out, err = _cli("word2vec", "eval", str(tmp_path / "v.bin"),
                          "--analogies", "questions-words")
    assert code == 0, err
    assert "analogy accuracy" in out and "questions-words.txt" in out
    assert "capital-common-countries" in err          # the library's per-section log lines
    code, out, err = _cli("word2vec", "eval", str(tmp_path / "v.bin"), "--pairs", "wordsim353")
    if importlib.util.find_spec("gensim") is None:
        assert code == 2 and "pip install gensim" in err
    else:
        assert code == 0 and "Spearman" in out
    code, _, err = _cli("word2vec", "eval", str(tmp_path / "v.bin"), "--pairs", "nosuch")
    assert code == 2 and "no such file (or a set name: questions-words, wordsim353" in err


# ------------------------------------------------------------------ Ctrl-C

def _interrupt_after(args, marker, timeout=240):
    """Run ``python -m fastsampled ARGS``, send SIGINT once ``marker`` has been printed (on
    stdout or stderr), return ``(exit code, stdout, stderr)``."""
    import signal
    import threading
    # Ctrl-C as at a terminal: SIGINT raises KeyboardInterrupt in the child even when this
    # process inherited it ignored (a job started with `&` from a script ignores SIGINT, and
    # Python then leaves it ignored). faulthandler on: a child that does not stop is sent
    # SIGABRT and prints every thread's stack, so a hang fails with where it hangs.
    as_at_a_terminal = ("import runpy, signal; "
                        "signal.signal(signal.SIGINT, signal.default_int_handler); "
                        "runpy.run_module('fastsampled', run_name='__main__', alter_sys=True)")
    proc = subprocess.Popen([sys.executable, "-c", as_at_a_terminal, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                            env=dict(os.environ, PYTHONFAULTHANDLER="1"))
    seen, out, err = threading.Event(), [], []

    def pump(stream, into):
        for line in stream:
            into.append(line)
            if marker in line:
                seen.set()

    threads = [threading.Thread(target=pump, args=(proc.stdout, out), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, err), daemon=True)]
    for t in threads:
        t.start()
    assert seen.wait(timeout), "".join(out + err)
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        proc.wait(60)
        for t in threads:
            t.join(10)
        mine = [line.strip() for line in open("/proc/self/status") if line.startswith("Sig")]
        pytest.fail(f"still running {timeout} s after SIGINT (this process: {mine}); its "
                    "output and stacks:\n" + "".join(out)[-2000:] + "".join(err)[-8000:])
    for t in threads:
        t.join(10)
    return code, "".join(out), "".join(err)


@pytest.mark.kernel
def test_ctrl_c_during_the_demo_checkpoints_the_head(tmp_path):
    path = tmp_path / "head"
    code, out, err = _interrupt_after(
        ["demo", "--classes", "20000", "--dim", "16", "--batch", "64", "--steps", "100000000",
         "--eval-examples", "50", "--no-full-softmax", "--path", str(path)], "training:")
    assert code == 130, out + err
    assert "Traceback" not in err and "Traceback" not in out
    assert f"the head is checkpointed at {path}" in out
    head = fs.SampledSoftmaxHead.load(path)
    assert head.step > 0
    head.close()


@pytest.mark.kernel
def test_ctrl_c_during_word2vec_training_writes_loadable_vectors(tmp_path):
    corpus = tmp_path / "c.txt"
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(500)]
    with open(corpus, "w") as f:
        for _ in range(60_000):
            f.write(" ".join(rng.choice(words, 12)) + "\n")
    out_path = tmp_path / "v.bin"
    code, out, err = _interrupt_after(
        ["word2vec", "train", str(corpus), "-o", str(out_path), "--dim", "16",
         "--min-count", "1", "--epochs", "100000", "--workers", "1"], "epoch 1/")
    assert code == 130, out + err
    assert "Traceback" not in err
    assert "interrupted; the vectors written are those trained until then" in err
    kv = fs.KeyedVectors.load_word2vec_format(out_path)
    assert len(kv) == 500 and kv.vector_size == 16
