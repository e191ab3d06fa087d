"""gensim's own KeyedVectors tests, run against ``fastsampled.KeyedVectors``.

The test module that the installed gensim ships (``gensim/test/test_keyedvectors.py``) is read
from the gensim package, its imports are changed to take ``KeyedVectors`` from fastsampled,
and it is executed as a module; its ``unittest.TestCase`` classes are then this file's, so
pytest reports every gensim test on its own. Nothing else in gensim's tests is changed: the
data files are gensim's own (``gensim.test.utils.datapath``), and the helpers the tests call
(``get_tmpfile``, ``gensim.utils.open``, ``pseudorandom_weak_vector``) are gensim's.

The library reads no pickles, so the tests that load gensim's pickled ``.save()`` files are
skipped, each saying so. The whole file is skipped where gensim is not installed.
"""
import importlib.util
import pathlib
import types
import unittest

import pytest

gensim = pytest.importorskip("gensim")
import gensim.test.utils  # noqa: E402 -- only once gensim is known to be there
import gensim.utils  # noqa: E402

import fastsampled as fs  # noqa: E402
from fastsampled import _kvformats  # noqa: E402

SOURCE = pathlib.Path(importlib.util.find_spec("gensim").origin).parent / "test" / \
    "test_keyedvectors.py"

# The tests that need what the library does not do: read a pickle.
NEEDS_PICKLE = "loads a file gensim pickled with KeyedVectors.save; fastsampled reads no pickles"
SKIPS = {("Gensim320Test", "test"): NEEDS_PICKLE}


def _load_word2vec_format(cls, fname, fvocab=None, binary=False, encoding="utf8",
                          unicode_errors="strict", limit=None, datatype=None, no_header=False,
                          binary_chunk_size=100 * 1024):
    """What the tests call ``gensim.models.keyedvectors._load_word2vec_format``:
    ``cls.load_word2vec_format``, reading binary files ``binary_chunk_size`` bytes at a time
    (the tests use chunks shorter than a record)."""
    read_binary = _kvformats._read_binary

    def read_in_chunks(*args):
        return read_binary(*args, chunk_size=binary_chunk_size)

    _kvformats._read_binary = read_in_chunks
    try:
        kwargs = {} if datatype is None else {"datatype": datatype}
        return cls.load_word2vec_format(fname, fvocab=fvocab, binary=binary, encoding=encoding,
                                        unicode_errors=unicode_errors, limit=limit,
                                        no_header=no_header, **kwargs)
    finally:
        _kvformats._read_binary = read_binary


# What the name ``gensim`` stands for in the test module: the model classes are fastsampled's,
# the test utilities gensim's. Any other use of ``gensim.`` there fails loudly.
_GENSIM = types.SimpleNamespace(
    models=types.SimpleNamespace(
        KeyedVectors=fs.KeyedVectors,
        keyedvectors=types.SimpleNamespace(KeyedVectors=fs.KeyedVectors,
                                           _load_word2vec_format=_load_word2vec_format)),
    test=types.SimpleNamespace(utils=gensim.test.utils),
    utils=gensim.utils,
)

# The only lines changed: gensim's imports of KeyedVectors, and the module it reaches the rest
# through (each stays one line, so that tracebacks point at the right line of gensim's file).
IMPORTS = {
    "from gensim.models.keyedvectors import KeyedVectors, REAL, pseudorandom_weak_vector\n":
        "from fastsampled import KeyedVectors; "
        "from gensim.models.keyedvectors import REAL, pseudorandom_weak_vector\n",
    "import gensim.models.keyedvectors\n": "gensim = _GENSIM\n",
}


def _gensim_tests():
    """gensim's test module with only the imports changed, executed as a module."""
    source = SOURCE.read_text(encoding="utf-8")
    for old, new in IMPORTS.items():
        if source.count(old) != 1:
            raise RuntimeError(f"{SOURCE} (gensim {gensim.__version__}) does not import "
                               f"{old.strip()!r} once; the rewrite here needs updating")
        source = source.replace(old, new)
    module = types.ModuleType("gensim_test_keyedvectors")
    module.__file__ = str(SOURCE)
    module._GENSIM = _GENSIM
    exec(compile(source, str(SOURCE), "exec"), module.__dict__)
    assert module.KeyedVectors is fs.KeyedVectors
    return module


_module = _gensim_tests()
_cases = {name: obj for name, obj in vars(_module).items()
          if isinstance(obj, type) and issubclass(obj, unittest.TestCase)}
for (_case, _test), _why in SKIPS.items():
    setattr(_cases[_case], _test, unittest.skip(_why)(getattr(_cases[_case], _test)))
globals().update(_cases)       # pytest collects gensim's TestCase classes from here


def test_the_gensim_tests_are_collected():
    """gensim 4.4's module holds 33 tests in three classes; all of them are here."""
    loader = unittest.defaultTestLoader
    names = {f"{case}.{test}" for case, cls in _cases.items()
             for test in loader.getTestCaseNames(cls)}
    assert {"TestKeyedVectors", "Gensim320Test", "LoadWord2VecFormatTest"} <= set(_cases)
    assert len(names) >= 33
    assert "TestKeyedVectors.test_most_similar_cosmul_parameter_types" in names
