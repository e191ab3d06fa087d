"""``fastsampled info``, ``fastsampled bench`` and the benchmark report (small, fast runs)."""
import argparse
import importlib.util
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

from fastsampled import _benchsuite, cli
from fastsampled._info import collect, format_info

BENCH = pathlib.Path(__file__).resolve().parent.parent / "bench"
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------- info

def test_info_collects_versions_threads_cpu_and_peers():
    import numba
    info = collect()
    assert info["versions"]["numpy"] == np.__version__
    assert info["versions"]["numba"] == numba.__version__
    assert info["numba"]["num_threads"] == numba.get_num_threads() >= 1
    assert info["numba"]["threading_layer"] in ("omp", "tbb", "workqueue")
    assert info["cpu"]["usable_cores"] >= 1
    assert set(info["peers"]) == {"tensorflow", "torch", "gensim", "matplotlib", "tqdm"}
    if os.path.exists("/proc/cpuinfo"):
        flags = open("/proc/cpuinfo").read()
        assert ("avx2" in info["cpu"]["simd"]) == (" avx2" in flags)
    assert isinstance(info["blas"], list) and any(b["internal_api"] in ("openblas", "mkl",
                                                                        "blis")
                                                   for b in info["blas"])
    text = format_info(info)
    for what in ("fastsampled :", "numba       :", "blas/openmp :", "simd        :",
                 "peers       :"):
        assert what in text


def test_info_command_prints_text_and_json(capsys):
    assert cli.main(["info"]) == 0
    assert "threading layer" in capsys.readouterr().out
    assert cli.main(["info", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["versions"]["fastsampled"] and "simd" in doc["cpu"]


# --------------------------------------------------------------------------- bench driver

def test_bench_help_and_list(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", "--help"])
    assert e.value.code == 0
    assert "--quick" in capsys.readouterr().out
    assert cli.main(["bench", "--list"]) == 0
    listing = capsys.readouterr().out
    for suite in ("samplers", "losses", "head", "word2vec", "torch", "memory"):
        assert suite in listing


def test_bench_rejects_unknown_suite():
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", "nonsense"])
    assert e.value.code == 2


def test_bench_without_scripts_says_to_run_from_a_clone(tmp_path, capsys):
    assert cli.find_bench_dir(str(tmp_path)) is None
    assert cli.main(["bench", "--quick", "--bench-dir", str(tmp_path)]) == 2
    assert "clone" in capsys.readouterr().err


def test_find_bench_dir_finds_the_checkout():
    assert cli.find_bench_dir() == str(BENCH)
    assert cli.find_bench_dir(str(BENCH)) == str(BENCH)


def test_every_bench_script_is_listed_once_and_described():
    """BENCH_SUITES lists every bench/bench_*.py (the one place a script is added), and
    bench/README.md describes each in its own section."""
    listed = [s.script for suite in cli.BENCH_SUITES.values() for s in suite.scripts]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(p.name for p in BENCH.glob("bench_*.py"))
    readme = (BENCH / "README.md").read_text()
    for script in listed:
        assert f"## {script}" in readme, script


def _planned(suites, quick):
    args = argparse.Namespace(suites=suites, quick=quick)
    return [(suite, step.script) for suite, step, _ in _benchsuite.plan_runs(args, str(BENCH))
            if step is not None]


def test_the_journal_benchmark_is_run_by_hand_only(capsys):
    """bench_journal.py needs a 26 GB store: listed with the head suite, never run by
    ``fastsampled bench``, with or without --quick."""
    quick = _planned([], True)
    assert ("head", "bench_head.py") in quick and ("losses", "bench_scaling.py") in quick
    assert ("losses", "bench_losses.py") not in quick            # full mode only
    for quick_mode in (True, False):
        assert "bench_journal.py" not in {s for _, s in _planned([], quick_mode)}
        assert "bench_journal.py" not in {s for _, s in _planned(["head"], quick_mode)}
    assert cli.main(["bench", "--list"]) == 0
    head = [line for line in capsys.readouterr().out.splitlines() if line.startswith("head")]
    assert "(bench_head.py; by hand: bench_journal.py)" in head[0]


def test_bench_scripts_get_their_mode_arguments():
    by_name = {s.script: s for suite in cli.BENCH_SUITES.values() for s in suite.scripts}
    assert by_name["bench_head.py"].arguments(True) == ["--skip-mmap"]
    assert by_name["bench_head.py"].arguments(False) == []
    assert by_name["bench_samplers.py"].arguments(True) == ["--no-tf"]
    assert by_name["bench_word2vec.py"].corpus
    assert [m for m, _ in by_name["bench_torch.py"].requires] == ["torch"]


FAKE_SUITE = '''
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import arg_parser, out_dir_for, write_results
p = arg_parser("fake")
p.add_argument("--no-tf", action="store_true")
args = p.parse_args()
print("== fake section", flush=True)
rows = [{"impl": "fastsampled sampled softmax", "V": v, "median_ms": 1.0 + v / 1e6,
         "others_cpu": 0.0} for v in (10**4, 10**5)]
write_results("scaling", rows, {"quick": args.quick, "notes": ["fake"]}, out_dir_for(args))
'''


def test_bench_runs_scripts_then_writes_the_report(tmp_path, capsys):
    """The driver on a bench folder whose scripts are stand-ins: runs them in subprocesses,
    passes --quick/--out, notes what is missing, writes suite.json and the report."""
    bench = tmp_path / "bench"
    bench.mkdir()
    shutil.copy(BENCH / "_common.py", bench)
    shutil.copy(BENCH / "report.py", bench)
    (bench / "bench_scaling.py").write_text(FAKE_SUITE)
    (bench / "bench_samplers.py").write_text("import sys; print('boom'); sys.exit(3)\n")
    out = tmp_path / "out"
    rc = cli.main(["bench", "losses", "samplers", "torch", "--quick", "--bench-dir", str(bench),
                   "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 1                                   # the samplers stand-in failed
    assert "expected duration" in text and "== fake section" in text
    assert "FAILED (exit 3" in text
    run = json.loads((out / "suite.json").read_text())
    assert [s["script"] for s in run["steps"]] == ["bench_scaling.py", "bench_samplers.py"]
    assert run["steps"][0]["returncode"] == 0 and "--quick" in run["steps"][0]["args"]
    assert "--no-tf" in run["steps"][1]["args"]
    notes = " ".join(s["note"] for s in run["skipped"])
    assert "bench_torch.py not found" in notes or "torch not installed" in notes
    assert (out / "scaling.json").exists() and (out / "logs" / "bench_samplers.log").exists()
    assert "boom" in (out / "logs" / "bench_samplers.log").read_text()
    readme = (out / "README.md").read_text()
    assert "fastsampled sampled softmax" in readme and "Machine: " in readme
    assert "bench_samplers.py" in readme and "FAILED" in readme
    assert (out / "scaling.png").exists() == HAVE_MPL


def _stand_in_bench(tmp_path, sleep_s=0.0):
    """A bench folder whose bench_scaling.py (losses, ~18 s quick) and bench_samplers.py
    (samplers, ~12 s quick) are fast stand-ins; the first sleeps ``sleep_s`` first."""
    bench = tmp_path / "bench"
    bench.mkdir()
    shutil.copy(BENCH / "_common.py", bench)
    shutil.copy(BENCH / "report.py", bench)
    (bench / "bench_scaling.py").write_text(f"import time; time.sleep({sleep_s})\n" + FAKE_SUITE)
    (bench / "bench_samplers.py").write_text(FAKE_SUITE)
    return bench


def test_bench_reports_progress_in_plain_lines_off_a_terminal(tmp_path, capsys):
    """Off a terminal, the run's progress (expected seconds done, scripts done) is a plain
    line on stderr as each script ends; the per-script lines stay on stdout."""
    bench = _stand_in_bench(tmp_path)
    rc = cli.main(["bench", "losses", "samplers", "--quick", "--bench-dir", str(bench),
                   "--out", str(tmp_path / "out")])
    assert rc == 0
    out, err = capsys.readouterr()
    lines = [line.strip() for line in err.splitlines() if "fastsampled bench:" in line]
    assert lines[0].startswith("fastsampled bench: 18/30 scripts=1/2 elapsed=")
    assert lines[-1].startswith("fastsampled bench: 30/30 scripts=2/2 elapsed=")
    assert "[1/2] losses: bench_scaling.py" in out and "[2/2] samplers" in out
    assert "fastsampled bench:" not in out


class _FakeTqdm:
    """Stands in for tqdm.tqdm: records the bar's positions and the lines written past it."""
    bars, lines = [], []

    def __init__(self, total, desc, file, unit, unit_scale, leave):
        self.total, self.desc, self.file, self.unit = total, desc, file, unit
        self.n, self.positions, self.closed = 0, [], False
        _FakeTqdm.bars.append(self)

    def update(self, n):
        self.n += n
        self.positions.append(self.n)

    def set_postfix(self, fields, refresh=True):
        self.postfix = dict(fields)

    def close(self):
        self.closed = True

    @classmethod
    def write(cls, s, file=None):
        cls.lines.append((s, file))
        print(s, file=file)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_bench_shows_a_bar_on_a_terminal(tmp_path, capsys, monkeypatch):
    """On a terminal, a bar over the run's expected seconds (on stderr) that moves while a
    script runs, with every line of the run written past it (tqdm.write) to stdout."""
    fake = types.ModuleType("tqdm")
    fake.tqdm = _FakeTqdm
    monkeypatch.setitem(sys.modules, "tqdm", fake)
    monkeypatch.setattr(_FakeTqdm, "bars", [])
    monkeypatch.setattr(_FakeTqdm, "lines", [])
    monkeypatch.setattr(_benchsuite, "TICK_S", 0.05)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bench = _stand_in_bench(tmp_path, sleep_s=2.5)
    rc = cli.main(["bench", "losses", "samplers", "--quick", "--bench-dir", str(bench),
                   "--out", str(tmp_path / "out")])
    assert rc == 0
    (bar,) = _FakeTqdm.bars
    assert (bar.total, bar.unit, bar.file) == (30, "s", terminal) and bar.closed
    assert bar.positions[-1] == 30 and bar.postfix["scripts"] == "2/2"
    assert 18 in bar.positions                        # the first script's share, at its end
    assert any(0 < p < 18 for p in bar.positions)     # moved while the first script ran
    assert bar.positions == sorted(bar.positions)
    written = "\n".join(s for s, _ in _FakeTqdm.lines)
    assert {f for _, f in _FakeTqdm.lines} == {sys.stdout}
    assert "[1/2] losses: bench_scaling.py" in written and "== fake section" in written
    assert "done in" in written
    assert "[1/2] losses" in capsys.readouterr().out
    assert "fastsampled bench:" not in terminal.getvalue()   # no plain lines beside the bar


def test_bench_word2vec_without_corpus_writes_a_synthetic_one(tmp_path):
    args = argparse.Namespace(corpus=None, quick=True)
    extra = _benchsuite.word2vec_args(args, str(tmp_path), str(BENCH), lambda m: None)
    corpus = extra[extra.index("--corpus") + 1]
    assert os.path.exists(corpus) and "--questions" in extra and "--pairs" in extra


# --------------------------------------------------------------------------- synthetic corpus

def test_synthetic_corpus_has_its_planted_structure(tmp_path):
    syn = _load("synthetic_corpus")
    res = syn.write_corpus(str(tmp_path), tokens=3200, seed=3)
    lines = pathlib.Path(res["corpus"]).read_text().splitlines()
    assert len(lines) == res["sentences"] == 200
    assert all(len(line.split()) == 16 for line in lines)
    for line in lines[:20]:          # one key word, 4 words of its topic, 4 of its role
        words = line.split()
        key = [w for w in words if w.startswith("t") and "r" in w and not w.startswith("topic")]
        assert len(key) == 1
        k, r = key[0][1:].split("r")
        assert sum(w.startswith(f"topic{k}c") for w in words) == 4
        assert sum(w.startswith(f"role{r}c") for w in words) == 4
    q = pathlib.Path(res["questions"]).read_text().splitlines()
    assert q[0].startswith(":") and all(len(x.split()) == 4 for x in q[1:])
    a, b, c, d = q[1].split()
    assert a[:a.index("r")] == b[:b.index("r")] and a[a.index("r"):] == c[c.index("r"):]
    again = syn.write_corpus(str(tmp_path / "again"), tokens=3200, seed=3)
    assert pathlib.Path(again["corpus"]).read_text() == "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- report

def _doc(name, rows, **meta):
    return {"benchmark": name, "timestamp": "2026-01-01T00:00:00+00:00",
            "meta": dict(meta, notes=[f"{name} note"]),
            "machine": {"cpu_model": "Fixture CPU", "cpu_family_model": "family 1 model 2",
                        "cpu_flags_simd": ["avx2", "avx512f"], "usable_cpus": 2,
                        "mem_total_gib": 8.0, "numba_num_threads": 2}, "rows": rows}


FIXTURES = {
    "scaling": [{"impl": i, "V": v, "median_ms": m * v ** 0.1, "others_cpu": busy}
                for i, m in (("fastsampled sampled softmax", 1.0),
                             ("TensorFlow sampled softmax", 3.0), ("numpy full softmax", 50.0))
                for v, busy in ((10**4, 0.0), (10**5, 0.9))],
    "memory": [{"impl": i, "V": v, "peak_rss_GB": 0.2 + v * 5e-7, "anon_GB": 0.1 + v * 5e-7,
                "weights_GB": v * 516e-9}
               for i in ("fastsampled in RAM", "TensorFlow sampled softmax")
               for v in (10**4, 10**6)]
    + [{"impl": "fastsampled memory-mapped", "V": 10**6, "weights_GB": 0.516,
        "skipped": "not enough free disk"}],
    "samplers": [{"case": "AliasTable build", "V": v, "value": 90.0, "unit": "M classes/s"}
                 for v in (10**5, 10**7)]
    + [{"case": "AliasTable.sample(out=buf)", "V": 10**7, "value": 70.0, "unit": "M draws/s"},
       {"case": "TF log_uniform draws", "V": 10**7, "value": 39.0, "unit": "M draws/s"}],
    "word2vec": [{"tool": t, "arch": a, "effective_kwps": k, "analogy": 0.3, "wordsim353": 0.5}
                 for t, a, k in (("fastsampled", "sg", 600.0), ("gensim", "sg", 200.0),
                                 ("fastsampled", "cbow", 1400.0), ("gensim", "cbow", 600.0))]
    + [{"tool": "fastsampled / gensim", "arch": "sg", "speed_ratio": 3.0, "analogy_diff": 0.0,
        "wordsim_diff": -0.01, "peak_rss_ratio": 1.4},
       {"tool": "fastsampled-defaults", "arch": "cbow", "error": "x|y"}],
    "head": [{"case": "train_step in RAM", "V": v, "opt": "sgd", "median_ms": 1.5,
              "peak_rss_GB": 0.4, "anon_GB": 0.1} for v in (10**4, 10**5)],
    "torch": [{"impl": "fastsampled.torch", "V": v, "median_ms": 2.0} for v in (10**4, 10**5)],
    "losses": [{"case": "softmax STEP: LogUniformSampler obj + loss+grads", "median_ms": 1.4,
                "others_cpu": 0.0}],
}


def _write_fixtures(folder):
    for name, rows in FIXTURES.items():
        (folder / f"{name}.json").write_text(json.dumps(_doc(name, rows, quick=True)))
    (folder / "not-results.json").write_text(json.dumps({"hello": 1}))


def test_report_writes_tables_and_plots_for_every_suite(tmp_path):
    report = _load("report")
    _write_fixtures(tmp_path)
    res = report.write_report(str(tmp_path), out=open(os.devnull, "w"))
    names = [pathlib.Path(p).stem for p in res["markdown"]]
    assert names[:-1] == ["scaling", "losses", "samplers", "head", "word2vec", "torch", "memory"]
    readme = (tmp_path / "README.md").read_text()
    assert "Fixture CPU (family 1 model 2, AVX-512)" in readme
    assert "| fastsampled sampled softmax | 10^4 |" in readme
    assert "x/y" in readme                         # a '|' inside a cell cannot break the table
    assert "| speed_ratio | analogy_diff | wordsim_diff | peak_rss_ratio | error |" in readme
    assert "| not enough free disk |" in (tmp_path / "memory.md").read_text()
    assert "scaling note" in (tmp_path / "scaling.md").read_text()
    if HAVE_MPL:
        assert sorted(pathlib.Path(p).stem for p in res["plots"]) == sorted(FIXTURES)
        assert "![scaling](scaling.png)" in readme
        with open(tmp_path / "scaling.png", "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    else:
        assert res["plots"] == [] and "matplotlib" in readme


def test_report_without_matplotlib_still_writes_tables(tmp_path, monkeypatch):
    report = _load("report")
    _write_fixtures(tmp_path)
    monkeypatch.setattr(report, "_pyplot", lambda show: None)
    res = report.write_report(str(tmp_path), out=open(os.devnull, "w"))
    assert res["plots"] == [] and any("matplotlib is not installed" in n for n in res["notes"])
    assert "| TensorFlow sampled softmax |" in (tmp_path / "README.md").read_text()


def test_report_keep_plots_links_the_plots_already_there(tmp_path, monkeypatch):
    report = _load("report")
    _write_fixtures(tmp_path)
    (tmp_path / "scaling.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    monkeypatch.setattr(report, "_pyplot", lambda show: pytest.fail("keep_plots draws nothing"))
    res = report.write_report(str(tmp_path), out=open(os.devnull, "w"), keep_plots=True)
    assert res["plots"] == [] and res["notes"] == []
    readme = (tmp_path / "README.md").read_text()
    assert "![scaling](scaling.png)" in readme and "![memory]" not in readme
    assert "matplotlib" not in readme


def test_report_cell_format():
    report = _load("report")
    assert [report.fmt(v) for v in (None, 2.768, 99.99, 5658.5, 1.2e7, 10**6, 123, True, "a|b")] \
        == ["-", "2.768", "99.99", "5658.5", "1.200e+07", "10^6", "123", "True", "a/b"]


# --------------------------------------------------------------------------- new bench scripts

def _run(script, *args, tmp):
    r = subprocess.run([sys.executable, str(BENCH / script), *args, "--out", str(tmp)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return json.loads((tmp / script.replace("bench_", "").replace(".py", ".json")).read_text())


def test_bench_scaling_tiny_run(tmp_path):
    doc = _run("bench_scaling.py", "--quick", "--no-tf", "--V", "1000", "4000", "--steps", "5",
               tmp=tmp_path)
    impls = {(r["impl"], r["V"]) for r in doc["rows"]}
    assert impls == {(i, v) for i in ("fastsampled sampled softmax", "numpy full softmax")
                     for v in (1000, 4000)}
    assert all(r["median_ms"] > 0 and r["reps"] >= 1 for r in doc["rows"])
    assert any("--no-tf" in n for n in doc["meta"]["notes"])


def test_bench_memory_tiny_run(tmp_path):
    doc = _run("bench_memory.py", "--no-tf", "--V", "2000", "--steps", "3", tmp=tmp_path)
    rows = {r["impl"]: r for r in doc["rows"]}
    assert set(rows) == {"fastsampled in RAM", "fastsampled memory-mapped"}
    for r in rows.values():
        assert "error" not in r and "skipped" not in r
        assert r["peak_rss_GB"] >= r["anon_GB"] > 0
        assert r["runtime_GB"] > 0 and r["mem"]["end"]["VmHWM"] > 0


# --------------------------------------------------------------------------- wording

def _bookkeeping_words(text):
    """Words of goal bookkeeping in ``text``: the results say what was measured, against what,
    on which machine."""
    return (re.findall(r"target|verdict|issue", text, re.I)
            + re.findall(r"\b(?:PASS|FAIL)\b", text))


def _stats(median, others_cpu=0.0):
    return {"median": median, "p10": 0.9 * median, "p90": 1.1 * median, "min": 0.8 * median,
            "mean": median, "n": 30, "others_cpu": others_cpu, "load1": 0.5}


def test_results_text_says_what_was_measured(tmp_path, capsys):
    """Rows from every script's row builders, written by write_results and report.py: the
    measured figures, the references and a plain ``disturbed`` flag, nothing else."""
    common, report = _load("_common"), _load("report")
    samplers, losses, head, torch_, w2v = (_load(f"bench_{n}") for n in (
        "samplers", "losses", "head", "torch", "word2vec"))
    quiet, busy = _stats(1e-3), _stats(2e-3, others_cpu=0.9)
    run = {"effective_wps": 1.2e6, "analogy": 0.35, "wordsim": 0.58, "peak_rss": 2.7e8,
           "fixed_rss": 1.7e8}
    gensim_run = {"effective_wps": 4e5, "analogy": 0.36, "wordsim": 0.57, "peak_rss": 2.1e8}
    docs = {
        "samplers": (samplers.COLUMNS, [
            samplers._row("LogUniformSampler call (+expected counts)", 10**7, 10**7, quiet,
                          110.0, "M draws/s", vs_tf=110.0 / 39.0),
            samplers._row("AliasTable build", 10**7, 10**7, busy, 60.0, "M classes/s"),
            samplers._error_row("UniformSampler", ValueError("boom"))]),
        "losses": (losses.COLUMNS, [
            losses._row("softmax STEP UNDER LOAD", 10**6, 1024, 64, np.float32, busy,
                        own_load=1.0),
            losses._row("softmax STEP", 10**6, 1024, 64, np.float32, busy, ref_ms=2.0)]),
        "head": (head.COLUMNS, [
            head._row("train_step in RAM", 10**6, 128, "sgd", quiet, tf="2.2 ms", vs_tf="3.1x"),
            head._row("step V=1e+07 / step V=1e+06", 10**7, 128, "sgd", value=1.1, unit="x",
                      of=(quiet, busy)),
            head._row("memory-mapped: process exit code", 10**8, 64, "sgd", value=0,
                      unit="exit code")]),
        "torch": (torch_.COLUMNS, [
            torch_._row("training step, fastsampled head", 10**6, opt="adam", st=quiet),
            torch_._row("full softmax training step", 10**7, opt="adam",
                        skipped="needs ~144 GB")]),
        "word2vec": (None, [w2v._comparison("fastsampled", "sg", run, gensim_run)]),
    }
    capsys.readouterr()                       # the row builders' progress lines
    for name, (columns, rows) in docs.items():
        for r in rows:
            assert not {"target", "status", "verdicts"} & set(r), (name, r)
        common.write_results(name, rows, {"notes": [f"{name} note"]}, str(tmp_path), columns)
    printed = capsys.readouterr().out         # the tables, machine and notes write_results prints
    assert [r.get("disturbed") for r in docs["samplers"][1][:2]] == [None, "yes"]
    assert [r.get("disturbed") for r in docs["losses"][1]] == [None, "yes"]  # own burner
    assert [r.get("disturbed") for r in docs["head"][1]] == [None, "yes", None]
    comparison = docs["word2vec"][1][0]
    assert comparison["speed_ratio"] == pytest.approx(3.0)
    assert comparison["analogy_diff"] == pytest.approx(-0.01)
    assert comparison["peak_rss_ratio"] == pytest.approx(2.7 / 2.1)
    assert "needs ~144 GB" in printed and "ValueError: boom" in printed  # skipped / error
    report.write_report(str(tmp_path), out=open(os.devnull, "w"))
    texts = {"stdout": printed}
    texts.update({p.name: p.read_text() for p in tmp_path.iterdir()
                  if p.suffix in (".json", ".md")})
    assert "| yes |" in texts["samplers.md"] and "| needs ~144 GB |" in texts["torch.md"]
    assert {k: _bookkeeping_words(t) for k, t in texts.items() if _bookkeeping_words(t)} == {}


def test_committed_results_and_bench_readme_say_what_was_measured():
    paths = [BENCH / "README.md"] + sorted(
        p for p in (BENCH / "results").rglob("*") if p.suffix in (".md", ".json", ".log"))
    found = {str(p.relative_to(BENCH)): _bookkeeping_words(p.read_text()) for p in paths}
    assert {k: v for k, v in found.items() if v} == {}
