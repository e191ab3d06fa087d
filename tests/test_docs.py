"""Docs that stay true: every public name has a numpydoc docstring, and the README's shell
commands name subcommands and files that exist (its Python blocks run in test_readme.py)."""
import inspect
import pathlib
import re
import warnings

import pytest

import fastsampled as fs
from fastsampled import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SECTION = re.compile(r"^(Parameters|Returns|Yields|Attributes)\n-{3,}$", re.M)

# Public names allowed to lack a numpydoc section (none: every public name is documented).
PENDING = set()


def _takes_arguments(fn):
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return any(p not in ("self", "cls") for p in params)


def _problems(qualname, obj, init=None):
    doc = inspect.getdoc(obj) or ""
    if not doc.strip():
        return [f"{qualname}: no docstring"]
    target = init if init is not None else obj
    if callable(target) and _takes_arguments(target):
        init_doc = inspect.getdoc(init) if init is not None else ""
        if not (SECTION.search(doc) or (init_doc and SECTION.search(init_doc))):
            return [f"{qualname}: takes arguments but has no Parameters/Returns section"]
    return []


def _defined_in_fastsampled(cls):
    return cls.__module__ == "fastsampled" or cls.__module__.startswith("fastsampled.")


def _public_members(cls):
    """``cls``'s own public methods and properties, and those it inherits from base classes
    defined in fastsampled (e.g. a mixin in a private module), each under ``cls``'s name."""
    seen = set()
    for klass in cls.__mro__:
        for name, member in vars(klass).items():
            if name in seen:          # overridden further down the hierarchy
                continue
            seen.add(name)
            if klass is not cls and not _defined_in_fastsampled(klass):
                continue
            if name.startswith("_") and name != "__call__":
                continue
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if isinstance(member, property) or inspect.isfunction(member):
                yield name, member


def public_names():
    """``(qualified name, object, __init__ or None)`` of every public name and method."""
    names = [(n, getattr(fs, n)) for n in fs.__all__]
    names += [(f"datasets.{n}", getattr(fs.datasets, n)) for n in dir(fs.datasets)
              if not n.startswith("_") and getattr(getattr(fs.datasets, n), "__module__", None)
              == fs.datasets.__name__]
    out = []
    for qual, obj in names:
        if inspect.ismodule(obj):
            out.append((qual, obj, None))
        elif inspect.isclass(obj):
            init = obj.__dict__.get("__init__")
            if issubclass(obj, BaseException):
                init = None
            out.append((qual, obj, init))
            for name, member in _public_members(obj):
                out.append((f"{qual}.{name}", member, None))
        else:
            out.append((qual, obj, None))
    return out


def test_every_public_name_has_a_numpydoc_docstring():
    problems, pending = [], []
    for qual, obj, init in public_names():
        if isinstance(obj, property):
            found = [] if (obj.__doc__ or "").strip() else [f"{qual}: no docstring"]
        else:
            found = _problems(qual, obj, init)
        (pending if qual in PENDING else problems).extend(found)
    assert len(public_names()) > 80           # the walk really covers the API
    assert not problems, "\n".join(problems)
    if pending:
        warnings.warn("docstrings pending on other branches: " + "; ".join(pending))


def test_the_walk_covers_methods_inherited_from_fastsampled_classes():
    names = {qual for qual, _, _ in public_names()}
    assert {"ShardedMatrix.advise", "ShardedMatrix.scan", "ShardedMatrix.prefetch",
            "ShardedMatrix.warm", "ShardedMatrix.drop_cache"} <= names   # _pagecache's mixin
    assert "StoreError.with_traceback" not in names          # builtins' methods are not


def test_the_check_catches_an_undocumented_function():
    def documented(x):
        """Double.

        Parameters
        ----------
        x : int
        """

    def bare(x):
        """Double x."""

    assert _problems("documented", documented) == []
    assert _problems("bare", bare) and _problems("nothing", lambda x: x)


SHELL = re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def test_readme_shell_commands_name_real_subcommands():
    used = {m for block in SHELL for m in re.findall(r"\bfastsampled (\w[\w-]*)", block)}
    assert {"demo", "bench", "info", "word2vec"} <= used
    for sub in sorted(used):
        with pytest.raises(SystemExit) as e:
            cli.main([sub, "--help"])
        assert e.value.code == 0, sub


def test_readme_links_and_images_exist():
    targets = re.findall(r"\]\(([^)#\s]+)\)", README)
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert any(t.endswith(".png") for t in local)   # the committed example plots
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, missing


def test_readme_set_up_commands_are_unchanged():
    """The two set-up commands every newcomer runs (and CI runs the second)."""
    assert ('python3 -m venv .venv && . .venv/bin/activate && pip install . && fastsampled demo'
            in README)
    assert ('python3 -m venv .venv && . .venv/bin/activate && pip install ".[test]" && '
            'python -m pytest' in README)
    # CI runs the README's test command (quietly)
    test_cmd = re.search(r'pip install "\.\[test\]" && python -m pytest([^\n`]*)', README)
    ci = (ROOT / ".ci" / "run").read_text()
    assert f'pip install --quiet ".[test]" && python -m pytest -q{test_cmd.group(1)}\n' in ci
