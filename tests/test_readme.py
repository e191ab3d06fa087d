"""The Python examples of the README and of every ``docs/*.md`` page run as written, their
links resolve, and the runnable scripts in ``examples/`` run (docs that stay true).

Conventions for the examples:

* Every fenced block opened with ```` ```python ```` is executed, each in a fresh namespace, and
  must print what it shows.
* A block that imports an optional framework (``OPTIONAL``) is skipped where it is not installed.
* A block that is illustrative only and cannot run (pseudo-code that calls a function the
  reader supplies) is marked in its fence's info string: ```` ```python notest ````. It is then
  only compiled (it must still be valid Python), not run. Mark only such blocks.* Every line of a ```` ```bash ```` block is run (``python -m fastsampled ...`` in a folder
  holding a small ``corpus.txt``), except the commands ``NOT_RUN`` lists with who checks
  them instead (installation, the minute-long demo and benchmarks).
"""
import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest
from test_prose import anchors

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README] + sorted((ROOT / "docs").glob("*.md"))

# ```python, optionally followed by words of an info string (``notest``), then the code
FENCE = re.compile(r"^```python(?P<info>[ \t][^\n]*)?\n(?P<code>.*?)^```", re.S | re.M)
NOTEST = "notest"


def _where(page):
    return page.relative_to(ROOT).as_posix()


def python_blocks(page):
    """``(info words, code)`` of each ```python block of a markdown page."""
    return [((m.group("info") or "").split(), m.group("code"))
            for m in FENCE.finditer(page.read_text(encoding="utf-8"))]


BLOCKS = [(_where(page), i, info, code)
          for page in PAGES for i, (info, code) in enumerate(python_blocks(page))]
RUN = [b for b in BLOCKS if NOTEST not in b[2]]
ILLUSTRATIVE = [b for b in BLOCKS if NOTEST in b[2]]


def test_readme_has_python_examples():
    assert sum(where == "README.md" for where, *_ in RUN) >= 2
    # the topic pages carry examples of their own
    for page in ("docs/tensorflow.md", "docs/heads.md", "docs/word2vec.md", "docs/frameworks.md"):
        assert any(where == page for where, *_ in RUN), page


def test_the_fence_parser():
    text = ("```python\nprint(1)\n```\n\n```python notest\nfetch()\n```\n"
            "```bash\nls\n```\n```pythonic\nno\n```\n")
    found = [(m.group("info") or "").split() for m in FENCE.finditer(text)]
    assert found == [[], ["notest"]]


# optional frameworks an example may import: it is skipped where they are not installed
OPTIONAL = ("torch", "jax", "gensim", "ray", "tensorflow", "keras")


@pytest.mark.kernel
@pytest.mark.parametrize("where, index, info, code", RUN,
                         ids=[f"{where}-{index}" for where, index, _, _ in RUN])
def test_readme_example_runs(where, index, info, code, capsys):
    for name in OPTIONAL:
        if re.search(rf"^\s*(import|from)\s[^\n#]*\b{name}\b", code, flags=re.M):
            pytest.importorskip(name)
    try:
        exec(compile(code, f"{where} python block {index}", "exec"), {})
    except Exception as exc:
        raise AssertionError(
            f"{where}, python block {index}, does not run ({exc!r}); if it is illustrative "
            f"only, open its fence with ```python {NOTEST}") from exc
    assert capsys.readouterr().out.strip(), f"{where} block {index} prints nothing"


@pytest.mark.parametrize("where, index, info, code", ILLUSTRATIVE,
                         ids=[f"{where}-{index}" for where, index, _, _ in ILLUSTRATIVE])
def test_illustrative_blocks_are_valid_python(where, index, info, code):
    compile(code, f"{where} python block {index}", "exec")


def _prose(page):
    """A page's text outside fenced code blocks."""
    return re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)


@pytest.mark.parametrize("page", PAGES, ids=_where)
def test_links_resolve(page):
    """Relative links (README: repository paths; docs pages: relative to docs/) name files
    that exist, and their #anchors name sections of the page they point to."""
    problems = []
    for link, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)", _prose(page)):
        if re.match(r"[a-z]+://", link):
            continue
        target = (page.parent / link) if link else page
        if not target.exists():
            problems.append(f"{link} does not exist")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            problems.append(f"{link or _where(page)} has no section #{anchor}")
    assert not problems, f"{_where(page)}: " + "; ".join(problems)


def test_readme_links_every_docs_page():
    text = README.read_text(encoding="utf-8")
    missing = [_where(p) for p in PAGES[1:] if f"]({_where(p)})" not in text]
    assert not missing, missing


def test_readme_stays_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250


BOOKKEEPING = re.compile(r"\b(?:issues?|targets?|verdicts?|reviews?)\b|\b(?:PASS|FAIL)\b", re.I)


@pytest.mark.parametrize("name", ["README.md", "docs/benchmarks.md", "docs/threads.md"])
def test_results_say_what_was_measured(name):
    """Results are plain measured facts: what, against what, on which machine."""
    assert not BOOKKEEPING.findall((ROOT / name).read_text(encoding="utf-8")), name


def test_install_lines_work_from_a_clone():
    """Extras are installed from the clone (".[extra]") and name extras that exist; torch comes
    from PyTorch's CPU wheel index, not from a pinned version."""
    tomllib = pytest.importorskip("tomllib")      # Python >= 3.11
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
                 ["optional-dependencies"])
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert "fastsampled[" not in text, _where(page)
        assert not re.search(r"pip install[^\n`]*torch==", text), _where(page)
        for group in re.findall(r'pip install "\.\[([\w,]+)\]"', text):
            assert set(group.split(",")) <= extras, (_where(page), group)


def test_jax_example_runs_or_says_why_not():
    """examples/jax_head.py trains a JAX body into a head; without JAX it says so, status 0."""
    have_jax = importlib.util.find_spec("jax") is not None
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "jax_head.py")],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    if have_jax:
        assert "held-out" in done.stdout and "precision@1" in done.stdout, done.stdout
    else:
        assert "jax is not installed" in done.stdout, done.stdout


# ------------------------------------------------------------------ shell blocks

SHELL = re.compile(r"^```bash[^\n]*\n(?P<code>.*?)^```", re.S | re.M)
# Commands of the shell blocks that these tests do not run, and who checks them instead.
NOT_RUN = {
    "python3 -m venv": "the two set-up commands: CI runs the test one on a fresh clone, and "
                       "both are tried in a fresh clone and venv before a release",
    "pip install": "installation: the same",
    "fastsampled demo": "the main job (about a minute): tests/test_cli.py runs demo() itself",
    "fastsampled bench --quick": "minutes of benchmarks: tests/test_bench_cli.py drives the "
                                 "suite machinery on small scripts",
    "fastsampled bench losses": "the same",
    "fastsampled bench": "the same",
    "python examples/torch_xc.py": "a minute of training: tests/test_torch.py covers the adapter",
    "python examples/jax_head.py": "run by test_jax_example_runs_or_says_why_not here",
    "python examples/tf_perceptron.py": "run (shorter) by tests/test_tf.py",
}


def shell_commands():
    """``(page, command)`` of every line of every ```bash block (comments dropped)."""
    out = []
    for page in PAGES:
        for m in SHELL.finditer(page.read_text(encoding="utf-8")):
            for line in m.group("code").splitlines():
                cmd = line.split("  #")[0].strip()
                if cmd:
                    out.append((_where(page), cmd))
    return out


def _skipped(cmd):
    if cmd == "fastsampled bench --list":
        return None
    return next((why for prefix, why in NOT_RUN.items() if cmd.startswith(prefix)), None)


COMMANDS = [(where, cmd) for where, cmd in shell_commands() if _skipped(cmd) is None]


def test_every_shell_command_is_run_or_says_who_checks_it():
    for where, cmd in shell_commands():
        assert _skipped(cmd) is not None or (where, cmd) in COMMANDS
    assert any("word2vec train" in cmd for _, cmd in COMMANDS)


@pytest.mark.kernel
@pytest.mark.parametrize("where, cmd", COMMANDS, ids=[f"{w}: {c[:40]}" for w, c in COMMANDS])
def test_shell_command_runs(where, cmd, tmp_path):
    """Run as written, in a folder holding what the pages say the reader brings: a
    ``corpus.txt`` (one sentence per line); ``vectors.bin`` from the train command before."""
    import shlex
    # words of both evaluation sets, so that their questions and pairs are in the vocabulary
    words = ("tiger cat book paper computer keyboard plane car train king queen man woman "
             "money cash bank Athens Greece Baghdad Iraq Berlin Germany").split()
    rng = __import__("numpy").random.default_rng(0)
    (tmp_path / "corpus.txt").write_text(
        "\n".join(" ".join(rng.choice(words, 10)) for _ in range(3000)) + "\n")
    argv = shlex.split(cmd)
    if argv[:3] == ["fastsampled", "word2vec", "eval"]:
        subprocess.run([sys.executable, "-m", "fastsampled", "word2vec", "train", "corpus.txt",
                        "-o", "vectors.bin", "--dim", "8", "--min-count", "1", "--epochs", "1"],
                       cwd=tmp_path, check=True, capture_output=True)
        if "wordsim353" in argv and importlib.util.find_spec("gensim") is None:
            pytest.skip("wordsim353 comes from an installed gensim")
    assert argv[0] == "fastsampled", cmd
    res = subprocess.run([sys.executable, "-m", "fastsampled", *argv[1:]], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{where}: {cmd}\n{res.stdout}\n{res.stderr}"
    assert res.stdout.strip()
