"""No module reaches into another fastsampled module's private names.

A name with a leading underscore (not a dunder) belongs to its module: it may change with
that module alone. When another module needs it, it gets a public name (in a private module
if it is not for users, e.g. ``_memory.available_memory``). Private *modules* are fine:
``from . import _loss_kernels`` and ``fastsampled._info.cpuinfo()`` use a private module's
public names, its interface to the rest of the package and to ``bench/``.

Every ``.py`` under ``fastsampled/`` and ``bench/`` is parsed with ``ast`` (``tests/`` may
reach into anything) and these count as a use of another module's private name:

* ``from fastsampled.X import _name`` or ``from .X import _name``, where ``_name`` is not a
  module;
* ``mod._name``, where ``mod`` is bound to a fastsampled module by an import (also through
  submodules: ``fastsampled.head._name``);
* ``obj._name``, where ``obj`` is not ``self``, ``cls`` or ``super()`` and ``_name`` is an
  attribute or method that no class of this file defines but a class of another fastsampled
  module does (``head._loss_and_grads(...)`` on a ``SampledSoftmaxHead``). Types are not
  known without running the code, so this one goes by the name.

Names reached through strings (``getattr(obj, "_draw", None)``) are not seen.
"""
import ast
import pathlib


ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fastsampled"
BENCH = ROOT / "bench"

def is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_module(dotted):
    """Whether ``dotted`` (``fastsampled.x.y``) names a module or package of the source tree."""
    parts = dotted.split(".")
    if parts[0] != "fastsampled":
        return False
    path = ROOT.joinpath(*parts)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def module_name(path):
    """``fastsampled.x`` for a file of the package, None for anything else."""
    rel = path.resolve().relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] != "fastsampled":
        return None
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def class_private_names(tree):
    """Private names the classes of a module define: methods and class attributes, and the
    attributes their methods assign to ``self`` / ``cls``."""
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(item.name)
            elif isinstance(item, (ast.Assign, ast.AnnAssign)):
                targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                names.update(t.id for t in targets if isinstance(t, ast.Name))
        for sub in ast.walk(node):
            if (isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store)
                    and isinstance(sub.value, ast.Name) and sub.value.id in ("self", "cls")):
                names.add(sub.attr)
    return {n for n in names if is_private(n)}


def package_class_names():
    """``{module name: private names its classes define}`` over the whole package."""
    return {module_name(p): class_private_names(ast.parse(p.read_text(encoding="utf-8")))
            for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def _short(module):
    return module.split(".", 1)[1] if "." in module else module


def scan(source, module, class_names):
    """``(line, "owner._name", how)`` for every use of another module's private name.

    Parameters
    ----------
    source : str
        The file's text.
    module : str or None
        Its module name (``fastsampled.head``), None outside the package (``bench/``).
    class_names : dict of str to set of str
        :func:`package_class_names`.

    Returns
    -------
    list of tuple
        Sorted, without duplicates.
    """
    tree = ast.parse(source)
    package = None            # what a relative import is relative to
    if module is not None:
        is_package = (ROOT.joinpath(*module.split(".")) / "__init__.py").is_file()
        package = module if is_package else module.rpartition(".")[0]
    modules = {}          # local name -> the fastsampled module it is bound to
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "fastsampled":
                    if alias.asname:
                        modules[alias.asname] = alias.name
                    else:
                        modules["fastsampled"] = "fastsampled"
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                source_module = ".".join(base + ([node.module] if node.module else []))
            else:
                source_module = node.module or ""
            if source_module.split(".")[0] != "fastsampled":
                continue
            for alias in node.names:
                if is_module(f"{source_module}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{source_module}.{alias.name}"
                elif is_private(alias.name) and source_module != module:
                    found.add((node.lineno, f"{_short(source_module)}.{alias.name}", "imported"))
    own = class_names.get(module, set()) if module else class_private_names(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        chain, base = [], node
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        if isinstance(base, ast.Name) and base.id in modules:
            current = modules[base.id]
            for attr in reversed(chain):
                if is_module(f"{current}.{attr}"):
                    current = f"{current}.{attr}"
                    continue
                if is_private(attr) and current != module:
                    found.add((node.lineno, f"{_short(current)}.{attr}", "module attribute"))
                break
            continue
        if not is_private(node.attr) or node.attr in own:
            continue
        value = node.value
        if isinstance(value, ast.Name) and value.id in ("self", "cls"):
            continue
        if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                and value.func.id == "super"):
            continue
        owners = sorted(_short(m) for m, names in class_names.items()
                        if m != module and node.attr in names)
        if owners:
            found.add((node.lineno, f"{'/'.join(owners)}.{node.attr}", "on an object"))
    return sorted(found)


def source_files():
    return sorted(p for root in (PACKAGE, BENCH) for p in root.rglob("*.py")
                  if "__pycache__" not in p.parts)


def violations():
    """``{relative path: [(line, "owner._name", how), ...]}`` of every file that has any."""
    class_names = package_class_names()
    out = {}
    for path in source_files():
        found = scan(path.read_text(encoding="utf-8"), module_name(path), class_names)
        if found:
            out[path.relative_to(ROOT).as_posix()] = found
    return out


def report(found):
    return "\n".join(f"{where}:{line}: {name} ({how})"
                     for where, items in sorted(found.items()) for line, name, how in items)


def test_the_scan_covers_the_package_and_bench():
    files = {p.relative_to(ROOT).as_posix() for p in source_files()}
    assert {"fastsampled/cli.py", "fastsampled/head.py", "fastsampled/baselines.py",
            "bench/_common.py", "bench/bench_scaling.py"} <= files
    assert sum(f.startswith("fastsampled/") for f in files) > 30


def test_the_check_catches_what_it_is_for():
    classes = {"fastsampled.head": {"_loss_and_grads", "_states"},
               "fastsampled.torch": {"_pending"}}

    def names(source, module=None):
        return [name for _, name, _ in scan(source, module, classes)]

    # importing another module's private name, absolutely or relatively
    assert names("from fastsampled.head import _available_memory") \
        == ["head._available_memory"]
    assert names("from .losses import _Rows, SparseGrads", "fastsampled.head") \
        == ["losses._Rows"]
    assert names("from fastsampled._info import _cpuinfo") == ["_info._cpuinfo"]
    # private modules, their public names and dunders are fine
    assert names("from . import _loss_kernels, __version__\n_loss_kernels.plan(1, 2)",
                 "fastsampled.losses") == []
    assert names("from fastsampled._info import cpuinfo\nimport fastsampled._memory\n"
                 "fastsampled._memory.available_memory()\nimport fastsampled as fs\n"
                 "fs.__version__") == []
    # a private name through a module bound by an import
    assert names("import fastsampled._info as info\ninfo._cpuinfo()") == ["_info._cpuinfo"]
    assert names("import fastsampled\nfastsampled.head._init_ram_weights(1)") \
        == ["head._init_ram_weights"]
    assert names("from . import head as H\nH._available_memory()", "fastsampled.cli") \
        == ["head._available_memory"]
    # a module's own private names
    assert names("from .head import _init_ram_weights", "fastsampled.head") == []
    # another module's private method called on its object, not on self / cls / super()
    assert names("def f(head):\n    return head._loss_and_grads(1), head.step",
                 "fastsampled.torch") == ["head._loss_and_grads"]
    assert names("class A:\n    def f(self):\n        self._loss_and_grads()\n"
                 "        super()._states()\n        self.head._states", "fastsampled.cli") \
        == ["head._states"]
    assert names("def f(m):\n    return m._pending", "fastsampled.torch") == []


def test_no_module_uses_another_modules_private_names():
    found = violations()
    assert not found, ("private names of other fastsampled modules (give each a public name "
                       "in its module):\n" + report(found))
