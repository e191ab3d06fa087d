"""Word-vector evaluation sets by name, for ``fastsampled word2vec eval`` (private).

``questions-words`` (word2vec's analogy set, Apache-2.0) ships with fastsampled. The
word-pair sets ``wordsim353`` and ``simlex999`` have their own terms of use and are not
shipped; an installed gensim carries copies, which are used when present.
"""
import importlib.util
import os

__all__ = ["ANALOGY_SETS", "PAIR_SETS", "resolve"]

_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
ANALOGY_SETS = {"questions-words": os.path.join(_DATA, "questions-words.txt")}
PAIR_SETS = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}


def _gensim_data(filename):
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "test", "test_data", filename)
    return path if os.path.isfile(path) else None


def resolve(value, option):
    """The file an evaluation option names: an existing path, or a known set's name.

    Parameters
    ----------
    value : str
        A path, or ``questions-words`` / ``wordsim353`` / ``simlex999``.
    option : str
        The option it came from, for the error message.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        Neither a file nor a set that can be found here, saying where to get it.
    """
    if os.path.isfile(value):
        return value
    if value in ANALOGY_SETS:
        return ANALOGY_SETS[value]
    if value in PAIR_SETS:
        path = _gensim_data(PAIR_SETS[value])
        if path is None:
            raise ValueError(f"{option} {value}: not shipped with fastsampled (its terms of "
                             "use are its own); 'pip install gensim' provides a copy, or pass "
                             "the path of a word-pair file (word, word, score per line)")
        return path
    known = ", ".join(list(ANALOGY_SETS) + list(PAIR_SETS))
    raise ValueError(f"{option} {value}: no such file (or a set name: {known})")
