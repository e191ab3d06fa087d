"""The package's comments and docstrings say what the code does and why, and stay true.

Every comment (``tokenize``) and docstring (``ast``: module, class and function docstrings,
and the strings assigned to ``__doc__``) under ``fastsampled/`` is checked for:

* references to notes outside the repository: the repository carries its own account in
  ``docs/`` (``docs/semantics.md``, ``docs/architecture.md``, ``docs/performance.md``);
* machine names and measured timings or throughputs, which go stale: a figure belongs in
  ``docs/performance.md`` or ``bench/results/``, and the comment points there;
* links to ``docs/*.md`` (and their ``#section`` anchors) that do not exist.
"""
import ast
import io
import pathlib
import re
import tokenize

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fastsampled"
DOCS = ROOT / "docs"

OUTSIDE_NOTES = re.compile(r"SEMANTICS(?:\.md)?\b|DESIGN\.md|\.\./shared\b")
MACHINES = re.compile(r"\b(?:Zen\s?\d*|Xeon|EPYC|Emerald\s+Rapids|Ryzen)\b", re.I)
_NUMBER = r"\d(?:[\d.,]*\d)?"
TIMINGS = re.compile(
    # a number with a time or rate unit: "8 ms", "~2 µs", "0.16 GB/s", "1.4 M words/s"
    rf"{_NUMBER}\s*(?:[kKMG]\s*)?(?:ms|us|µs|μs|ns|[KMGT]i?B/s|GFLOP/s|"
    r"(?:steps|words|tokens|rows|draws|classes)/s)(?![\w/])"
    # "5 s", "8 seconds", "4 min"
    rf"|{_NUMBER}\s+(?:s|sec|secs|seconds|minutes|min)\b"
    # "2.5x faster", "4x slower", "ten times slower"
    rf"|{_NUMBER}\s*x\s+(?:faster|slower)\b"
    r"|\b(?:two|three|four|five|ten|twenty|hundred)\s+times\s+(?:faster|slower)\b",
    re.I)
DOC_LINK = re.compile(r"docs/([\w.-]+\.md)(?:#([\w-]+))?")


def _module_strings(tree):
    """Module-level ``NAME = "text"`` constants (pieces of docstrings built by concatenation)."""
    out = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            out[node.targets[0].id] = node.value
    return out


def _doc_pieces(value, names):
    """The string constants a ``__doc__ = ...`` expression is made of."""
    for node in ast.walk(value):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node
        elif isinstance(node, ast.Name) and node.id in names:
            yield names[node.id]


def prose(path):
    """``(line, kind, text)`` of every comment and docstring of one source file."""
    src = path.read_text(encoding="utf-8")
    items = []
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            items.append((tok.start[0], "comment", tok.string))
    tree = ast.parse(src)
    names = _module_strings(tree)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                items.append((body[0].lineno, "docstring", body[0].value.value))
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Attribute) and t.attr == "__doc__" for t in node.targets):
            for piece in _doc_pieces(node.value, names):
                items.append((piece.lineno, "docstring", piece.value))
    return items


def source_files():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def all_prose():
    return [(path.relative_to(ROOT).as_posix(), line, kind, text)
            for path in source_files() for line, kind, text in prose(path)]


def _hits(pattern, text):
    return [m.group(0) for m in pattern.finditer(text)]


def _slug(heading):
    """The anchor GitHub gives a markdown heading."""
    text = re.sub(r"[`*_]", lambda m: "_" if m.group(0) == "_" else "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(md_path):
    """The section anchors of a markdown file (headings outside code blocks)."""
    out, fenced = set(), False
    for line in md_path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            out.add(_slug(line.lstrip("#")))
    return out


def _problems(pattern, what):
    found = []
    for where, line, kind, text in all_prose():
        for hit in _hits(pattern, text):
            found.append(f"{where}:{line} ({kind}): {what} {hit!r}")
    return found


def test_the_scan_covers_the_package():
    items = all_prose()
    files = {where for where, *_ in items}
    modules = {p.relative_to(ROOT).as_posix() for p in source_files()
               if len(p.read_text(encoding="utf-8").splitlines()) > 10}
    assert len(modules) > 20 and modules <= files
    assert sum(kind == "comment" for _, _, kind, _ in items) > 100
    assert sum(kind == "docstring" for _, _, kind, _ in items) > 300
    # docstrings assembled at import time are scanned too
    assert any(where.endswith("losses.py") and "partition_strategy" in text
               for where, _, kind, text in items if kind == "docstring")


def test_no_reference_to_notes_outside_the_repository():
    problems = _problems(OUTSIDE_NOTES, "refers to")
    assert not problems, "\n".join(problems)


def test_no_machine_names():
    problems = _problems(MACHINES, "names a machine:")
    assert not problems, "\n".join(problems)


def test_no_measured_timings_or_throughputs():
    problems = _problems(TIMINGS, "quotes a measurement (move it to docs/performance.md):")
    assert not problems, "\n".join(problems)


def test_docs_links_in_comments_exist():
    problems, checked = [], 0
    for where, line, kind, text in all_prose():
        for name, anchor in DOC_LINK.findall(text):
            checked += 1
            doc = DOCS / name
            if not doc.is_file():
                problems.append(f"{where}:{line}: docs/{name} does not exist")
            elif anchor and anchor not in anchors(doc):
                problems.append(f"{where}:{line}: docs/{name} has no section #{anchor}")
    assert checked >= 10          # the comments really point into docs/
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", ["semantics.md", "architecture.md", "performance.md",
                                  "storage.md"])
def test_docs_are_self_contained(name):
    text = (DOCS / name).read_text(encoding="utf-8")
    assert not _hits(OUTSIDE_NOTES, text), name
    for link, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([\w-]+))?\)", text):
        if re.match(r"[a-z]+://", link):
            continue
        path = (DOCS / link) if link else DOCS / name
        assert path.exists(), f"{name}: link to {link} does not exist"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{name}: {link or name} has no section #{anchor}"


def test_the_checks_catch_what_they_are_for():
    for text in ("see SEMANTICS.md section 4", "DESIGN.md says", "../shared/corpus"):
        assert _hits(OUTSIDE_NOTES, text), text
    for text in ("on an Intel Xeon (Emerald Rapids)", "a 2-core AMD EPYC", "Zen 4", "Ryzen"):
        assert _hits(MACHINES, text), text
    for text in ("took 8 ms instead of 0.2 ms", "~2 µs", "159 us", "0.16 GB/s", "8 steps/s",
                 "1.4 M words/s", "about 5 s for 20 M tokens", "2.5x faster", "4x slower",
                 "ten times slower", "5 s of compilation", "compiled 8 s longer", "12 ns"):
        assert _hits(TIMINGS, text), text
    # sizes, limits and formats are behaviour, not measurements
    for text in ("2 MiB pages", "int32", "128 KiB", "26 GB memory-mapped store", "8s magic",
                 "a progress bar (loss, steps/s)", "10^8 x 64", "2x the last such chunk",
                 "within 1.5x of FLT_MAX", "frozen table", "32 bytes", "3 columns"):
        assert not _hits(TIMINGS, text) and not _hits(MACHINES, text), text
    assert _slug("## Drawing and `unique`".lstrip("#")) == "drawing-and-unique"
    assert _slug(" Departures from TensorFlow") == "departures-from-tensorflow"
