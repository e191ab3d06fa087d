"""Word vectors keyed by string: lookup, cosine queries, word2vec files, analogy/similarity tests.

:class:`KeyedVectors` mirrors the part of gensim's ``KeyedVectors`` that people use after
training (``wv["word"]``, ``most_similar``, ``similarity``, ``doesnt_match``,
``save_word2vec_format`` / ``load_word2vec_format``, ``evaluate_word_analogies``,
``evaluate_word_pairs``) with gensim 4.4's semantics, in plain numpy. The analogy evaluation is
batched into matrix products (thousands of questions per BLAS call) instead of one
``most_similar`` call per question, so the 19 544 questions of ``questions-words.txt`` against
30 000 words take seconds, not minutes.

The file formats are read and written in ``_kvformats.py`` and the evaluations run in
``_kveval.py``; the methods here check their arguments and keep the documentation.
"""
import logging
import numbers
import os

import numpy as np

from ._kveval import score_analogies, score_word_pairs
from ._kvformats import read_npz, read_word2vec_format, write_npz, write_word2vec_format
from ._validate import as_bool, as_float_array, as_int
from .sharding import StoreError

__all__ = ["KeyedVectors"]

# The private modules _kvformats and _kveval log under this name too.
logger = logging.getLogger(__name__)


def _check_keys(index_to_key, n):
    if isinstance(index_to_key, (str, bytes)):
        raise TypeError("index_to_key must be a sequence of str, got a single "
                        f"{type(index_to_key).__name__}")
    keys = list(index_to_key)
    if len(keys) != n:
        raise ValueError(f"index_to_key has {len(keys)} keys but vectors has {n} rows")
    key_to_index = {}
    for i, key in enumerate(keys):
        if not isinstance(key, str):
            raise TypeError(f"index_to_key must hold str keys; index {i} is "
                            f"{type(key).__name__} {key!r}")
        if type(key) is not str:
            key = keys[i] = str(key)  # e.g. numpy.str_: store plain str
        if key in key_to_index:
            raise ValueError(f"index_to_key holds {key!r} twice "
                             f"(indices {key_to_index[key]} and {i})")
        key_to_index[key] = i
    return keys, key_to_index


def _as_optional_restrict(value, name):
    """``None``/``0`` -> no restriction (gensim treats a falsy value as 'all'), else int >= 1."""
    if value is None:
        return None
    value = as_int(value, name, minimum=0)
    return value or None


class KeyedVectors:
    """Vectors of shape (N, dim) addressed by N distinct string keys.

    Parameters
    ----------
    vectors : array_like of shape (N, dim)
        float32 or float64 values, stored as float32 (kept without a copy when already a
        C-contiguous float32 array, so a trainer may keep writing into it; call
        :meth:`fill_norms` with ``force=True`` after such in-place changes).
    index_to_key : sequence of str, length N
        The key of each row; keys must be distinct.
    counts : array_like of shape (N,), optional
        Non-negative integer frequency of each key (metadata: saved by :meth:`save`, not
        used by the queries).

    Attributes
    ----------
    vectors : ndarray of shape (N, dim), float32
        Assigning a new array validates it and drops the cached norms.
    index_to_key : list of str
    key_to_index : dict of str to int
    counts : ndarray of shape (N,), int64, or None
    norms : ndarray of shape (N,), float32, or None
        Row L2 norms, filled on demand by :meth:`fill_norms`.

    Notes
    -----
    Queries use the unit-normalised matrix, computed once and cached. Rows of norm zero are
    normalised to zero (cosine 0 with everything), where gensim would produce NaN.

    Examples
    --------
    >>> import numpy as np, fastsampled as fs
    >>> kv = fs.KeyedVectors(np.array([[1, 0], [1, 1], [0, 1], [-1, 0]], np.float32),
    ...                      ["king", "queen", "man", "woman"])
    >>> kv["queen"]
    array([1., 1.], dtype=float32)
    >>> [(w, round(s, 4)) for w, s in kv.most_similar("king", topn=2)]
    [('queen', 0.7071), ('man', 0.0)]
    >>> round(kv.similarity("queen", "man"), 4)
    0.7071
    >>> kv.doesnt_match(["king", "queen", "woman"])
    'woman'
    """

    def __init__(self, vectors, index_to_key, counts=None):
        self._vectors = self._check_vectors(vectors)
        self.index_to_key, self.key_to_index = _check_keys(index_to_key, self._vectors.shape[0])
        self.counts = self._check_counts(counts, self._vectors.shape[0])
        self.norms = None
        self._normed = None

    # ------------------------------------------------------------------ storage and lookup

    @staticmethod
    def _check_vectors(vectors, name="vectors"):
        arr = as_float_array(vectors, name, ndim=2)
        if arr.shape[1] < 1:
            raise ValueError(f"{name} must have at least one column, got shape {arr.shape}")
        return np.ascontiguousarray(arr, dtype=np.float32)

    @staticmethod
    def _check_counts(counts, n):
        if counts is None:
            return None
        arr = np.asarray(counts)
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"counts must hold integers, got dtype {arr.dtype}")
        if arr.shape != (n,):
            raise ValueError(f"counts must have shape ({n},) to match vectors, got {arr.shape}")
        if arr.size and arr.min() < 0:
            raise ValueError(f"counts must be non-negative; found {arr.min()} "
                             f"at index {int(np.argmin(arr))}")
        return np.ascontiguousarray(arr, dtype=np.int64)

    @property
    def vectors(self):
        """ndarray of shape (N, dim), float32: the vector of each key, in index order."""
        return self._vectors

    @vectors.setter
    def vectors(self, value):
        value = self._check_vectors(value)
        if value.shape[0] != len(self.index_to_key):
            raise ValueError(f"vectors must have {len(self.index_to_key)} rows (one per key), "
                             f"got shape {value.shape}")
        self._vectors = value
        self.norms = None
        self._normed = None

    @property
    def vector_size(self):
        """int: the dimension ``dim`` of the vectors."""
        return self._vectors.shape[1]

    def __len__(self):
        return len(self.index_to_key)

    def __contains__(self, key):
        return key in self.key_to_index

    def __repr__(self):
        return f"KeyedVectors<vector_size={self.vector_size}, {len(self)} keys>"

    def get_index(self, key, default=None):
        """Row index of ``key``.

        Parameters
        ----------
        key : str
        default : int, optional
            Returned for an unknown key instead of raising.

        Returns
        -------
        int

        Raises
        ------
        KeyError
            If ``key`` is unknown and no ``default`` is given; the message names the key.
        """
        index = self.key_to_index.get(key) if isinstance(key, str) else None
        if index is not None:
            return index
        if default is not None:
            return default
        raise KeyError(f"word {key!r} not in vocabulary")

    def get_vector(self, key, norm=False):
        """The vector of ``key``.

        Parameters
        ----------
        key : str
            A key of the vocabulary (``KeyError`` otherwise).
        norm : bool, default False
            Return the unit-length vector instead of the raw one.

        Returns
        -------
        ndarray of float32, shape (dim,)
            A read-only view (not a copy).
        """
        index = self.get_index(key)
        row = (self.get_normed_vectors() if norm else self._vectors)[index]
        row.setflags(write=False)  # a view: writing through it would bypass the norm cache
        return row

    def __getitem__(self, key_or_keys):
        """``kv["w"]`` -> (dim,) read-only view; ``kv[["a", "b"]]`` -> (2, dim) copy."""
        if isinstance(key_or_keys, str):
            return self.get_vector(key_or_keys)
        if isinstance(key_or_keys, (list, tuple, np.ndarray)):
            return self._vectors[[self.get_index(k) for k in key_or_keys]].reshape(
                len(key_or_keys), self.vector_size)
        raise TypeError(f"key must be a str or a list of str, got {type(key_or_keys).__name__}")

    def fill_norms(self, force=False):
        """Compute ``self.norms`` (shape (N,), float32) if missing, or again if ``force``.

        Call with ``force=True`` after changing ``vectors`` in place; this also drops the
        cached unit-normalised matrix.

        Parameters
        ----------
        force : bool, default False
            Recompute even when the norms are already there.
        """
        if self.norms is None or force:
            self.norms = np.linalg.norm(self._vectors, axis=1).astype(np.float32, copy=False)
            self._normed = None

    def get_normed_vectors(self):
        """All vectors scaled to unit L2 length (zero rows stay zero).

        Returns
        -------
        ndarray of shape (N, dim), float32
            Cached and read-only; recomputed after ``vectors`` is reassigned or
            ``fill_norms(force=True)``.
        """
        self.fill_norms()
        if self._normed is None:
            safe = np.where(self.norms > 0, self.norms, np.float32(1.0))
            normed = self._vectors / safe[:, None]
            normed.setflags(write=False)
            self._normed = normed
        return self._normed

    # ------------------------------------------------------------------ similarity queries

    def _weighted_terms(self, positive, negative):
        """(keys-or-vectors, weights) like gensim: str / (str, w) / 1-D array items."""
        terms, weights = [], []
        for default, name, items in ((1.0, "positive", positive), (-1.0, "negative", negative)):
            if items is None:
                continue
            if isinstance(items, str) or (isinstance(items, np.ndarray) and items.ndim == 1):
                items = [items]
            elif isinstance(items, np.ndarray) and items.ndim == 2:
                items = list(items)
            for item in items:
                weight = default
                if isinstance(item, tuple):
                    if len(item) != 2 or not isinstance(item[1], numbers.Real):
                        raise ValueError(f"{name} items must be a key, a vector or a "
                                         f"(key, weight) pair, got {item!r}")
                    item, weight = item[0], float(item[1])
                if isinstance(item, np.ndarray):
                    if item.shape != (self.vector_size,):
                        raise ValueError(f"vectors in {name} must have shape ({self.vector_size},),"
                                         f" got {item.shape}")
                elif not isinstance(item, str):
                    raise TypeError(f"{name} items must be str keys or vectors, got "
                                    f"{type(item).__name__} {item!r}")
                else:
                    self.get_index(item)  # KeyError naming an unknown word
                terms.append(item)
                weights.append(weight)
        if not terms:
            raise ValueError("most_similar needs at least one word in positive or negative")
        return terms, weights

    def most_similar(self, positive=None, negative=None, topn=10, restrict_vocab=None):
        """The keys nearest (by cosine) to the mean of the given keys, 3CosAdd-style.

        As gensim: the unit-normalised vectors of the ``positive`` keys (weight +1) and the
        ``negative`` keys (weight -1) are summed, divided by the sum of the absolute weights and
        normalised; the result is compared with every (unit) vector; the input keys themselves
        are left out of the answer.

        Parameters
        ----------
        positive, negative : str, ndarray of shape (dim,), or list of those, optional
            List items may also be ``(key, weight)`` pairs. Raw vectors are used as given
            (not normalised) and are not excluded from the answer.
        topn : int or None, optional
            Number of results; ``None`` returns the similarities to all (restricted) keys.
        restrict_vocab : int, optional
            Search only the first ``restrict_vocab`` rows (the most frequent words when the
            vocabulary is sorted by frequency).

        Returns
        -------
        list of (str, float)
            At most ``topn`` pairs, most similar first. With ``topn=None``: an ndarray of
            shape (min(N, restrict_vocab),) of cosine similarities.

        Raises
        ------
        KeyError
            For an unknown key (the message names it).
        ValueError
            If no key is given at all, or a vector has the wrong shape.
        """
        if topn is not None:
            topn = as_int(topn, "topn")
            if topn < 1:
                return []
        restrict_vocab = _as_optional_restrict(restrict_vocab, "restrict_vocab")
        terms, weights = self._weighted_terms(positive, negative)
        normed = self.get_normed_vectors()
        mean = np.zeros(self.vector_size, np.float32)
        exclude = set()
        for term, weight in zip(terms, weights):
            if isinstance(term, str):
                index = self.key_to_index[term]
                exclude.add(index)
                mean += weight * normed[index]
            else:
                mean += weight * term.astype(np.float32, copy=False)
        total_weight = sum(abs(w) for w in weights)
        if total_weight > 0:
            mean = mean / np.float32(total_weight)
        length = np.linalg.norm(mean)
        if length > 0:
            mean = (mean / length).astype(np.float32)
        end = len(self) if restrict_vocab is None else min(restrict_vocab, len(self))
        dists = normed[:end] @ mean
        if topn is None:
            return dists
        n_excluded = sum(1 for i in exclude if i < end)
        k = min(topn + n_excluded, end)
        if k == 0:
            return []
        if k < end:
            best = np.argpartition(-dists, k - 1)[:k]
            best = best[np.argsort(-dists[best], kind="stable")]
        else:
            best = np.argsort(-dists, kind="stable")
        result = [(self.index_to_key[i], float(dists[i]))
                  for i in best.tolist() if i not in exclude]
        return result[:topn]

    def similarity(self, w1, w2):
        """Cosine similarity between the vectors of two keys (0.0 if one is all zeros).

        Returns
        -------
        float
        """
        normed = self.get_normed_vectors()
        return float(normed[self.get_index(w1)] @ normed[self.get_index(w2)])

    def n_similarity(self, ws1, ws2):
        """Cosine similarity between the (unnormalised) mean vectors of two lists of keys.

        Parameters
        ----------
        ws1, ws2 : list of str
            Non-empty lists of keys.

        Returns
        -------
        float
            The cosine of the angle between the two mean vectors (0.0 when one is zero).

        Raises
        ------
        ValueError
            If either list is empty.
        """
        for name, ws in (("ws1", ws1), ("ws2", ws2)):
            if isinstance(ws, str) or len(ws) == 0:
                raise ValueError(f"{name} must be a non-empty list of keys, got {ws!r}")
        m1 = self[list(ws1)].mean(axis=0)
        m2 = self[list(ws2)].mean(axis=0)
        n1, n2 = np.linalg.norm(m1), np.linalg.norm(m2)
        if n1 == 0 or n2 == 0:
            return 0.0
        return float((m1 / n1) @ (m2 / n2))

    def doesnt_match(self, words):
        """The key farthest (by cosine) from the normalised mean of the given keys' unit vectors.

        Parameters
        ----------
        words : list of str

        Returns
        -------
        str

        Raises
        ------
        KeyError
            For an unknown key (gensim drops unknown keys with a warning instead).
        ValueError
            If ``words`` is empty.
        """
        if isinstance(words, str):
            raise TypeError("words must be a list of str, got a single str")
        words = list(words)
        if not words:
            raise ValueError("words must not be empty")
        vecs = self.get_normed_vectors()[[self.get_index(w) for w in words]]
        mean = vecs.mean(axis=0)
        length = np.linalg.norm(mean)
        if length > 0:
            mean = mean / length
        dists = vecs @ mean
        # gensim: sorted(zip(dists, words), reverse=True)[-1] -> smallest similarity, ties to
        # the lexicographically smallest word
        return min(zip(dists.tolist(), words))[1]

    # ------------------------------------------------------------------ word2vec files

    def save_word2vec_format(self, path, binary=False, write_header=True):
        """Write the vectors in the C word2vec text or binary format, in index order.

        The bytes are those gensim 4.4 writes: a ``"N dim\\n"`` header, then per key either
        ``key v1 v2 ...\\n`` with each float32 in its shortest round-trip decimal form (text)
        or ``key `` followed by dim little-endian float32 (binary, no newline).
        Paths ending in ``.gz``, ``.bz2`` or ``.xz`` are compressed. The file is written
        under a temporary name and renamed over ``path`` when complete, so an existing file is
        either replaced whole or, if writing fails (a full disk), left as it was.

        Parameters
        ----------
        path : str or os.PathLike
        binary : bool, optional
        write_header : bool, optional
            ``False`` omits the header line (GloVe-style text; read it back with
            ``load_word2vec_format(..., no_header=True)``).

        Raises
        ------
        ValueError
            If a key is empty or contains whitespace that the format cannot represent.
        """
        binary = as_bool(binary, "binary")
        write_header = as_bool(write_header, "write_header")
        write_word2vec_format(path, self.index_to_key, self._vectors, binary, write_header)

    @classmethod
    def load_word2vec_format(cls, path, binary=None, limit=None, encoding="utf8",
                             unicode_errors="strict", no_header=False):
        """Read a C word2vec text or binary file (as written by word2vec.c or gensim).

        Parameters
        ----------
        path : str or os.PathLike
            ``.gz``, ``.bz2`` and ``.xz`` files are decompressed on the fly.
        binary : bool, optional
            None (the default) reads the format from the file's first record: its values
            are either raw float32 or decimal text. True or False states the format, and a
            file of the other one is refused rather than misread.
        limit : int, optional
            Read only the first ``limit`` vectors (the rest of the file is not read).
        encoding : str, optional
            Encoding of the keys.
        unicode_errors : str, optional
            ``errors`` for decoding keys: ``"ignore"`` or ``"replace"`` help with files whose
            keys were cut in the middle of a multi-byte character by word2vec.c.
        no_header : bool, optional
            Text files without the ``"N dim"`` first line (GloVe); the file is read twice.

        Returns
        -------
        KeyedVectors
            ``counts`` is None (the format stores none). A key that occurs twice keeps its
            first vector (with a warning), as in gensim.

        Raises
        ------
        ValueError
            If the file is not in the format (the message gives the path and the line or
            record), ends before the header's count, holds an empty key or (binary) a key
            with a newline, which the format cannot store, or a key does not decode. The
            header's size is checked against the file's before anything is allocated: an
            uncompressed file too small for the vectors the header declares is refused at
            once; a compressed one is read with arrays that grow as vectors arrive.
        """
        binary = None if binary is None else as_bool(binary, "binary")
        no_header = as_bool(no_header, "no_header")
        if limit is not None:
            limit = as_int(limit, "limit", minimum=1)
        if no_header and binary:
            raise ValueError("no_header=True is only supported for text files (binary=False)")
        vectors, keys = read_word2vec_format(path, binary, limit, encoding, unicode_errors,
                                             no_header)
        return cls(vectors, keys)

    # ------------------------------------------------------------------ npz persistence

    def save(self, path):
        """Save to one ``.npz`` file (arrays plus a JSON member for the keys; no pickle).

        ``path`` is used as given (no ``.npz`` suffix is added). The file is written under a
        temporary name and renamed over ``path`` when complete, so an existing file is
        either replaced whole or, if writing fails (a full disk), left as it was.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (replaced if it exists).
        """
        write_npz(path, self.index_to_key, self._vectors, self.counts)

    @classmethod
    def load(cls, path):
        """Load what :meth:`save` wrote.

        Every field is checked before it is used: the JSON header (an object with the
        ``format``, ``version`` and ``index_to_key`` fields of the right types), then each
        array's ``.npy`` header against it (``vectors`` float32 of shape (N, vector_size)
        with N the number of keys, ``counts`` int64 of shape (N,), both in C order) and
        against the array's size in the file, before the array is read or decompressed.

        Parameters
        ----------
        path : str or os.PathLike
            A file written by :meth:`save`.

        Returns
        -------
        KeyedVectors

        Raises
        ------
        fastsampled.StoreError
            (a ``ValueError``) If ``path`` is not such a file or is damaged; the message
            names the file and the field or array at fault.
        FileNotFoundError
            If ``path`` does not exist.
        """
        path_str = os.fspath(path)
        vectors, keys, counts = read_npz(path_str)
        try:
            return cls(vectors, keys, counts)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{path_str}: {exc}") from None

    # ------------------------------------------------------------------ evaluation

    def evaluate_word_analogies(self, path, restrict_vocab=300000, case_insensitive=True,
                                dummy4unknown=False):
        """Accuracy on analogy questions "a : b :: c : expected" (``questions-words.txt`` format).

        Same semantics and return value as gensim 4.4: the answer is the key nearest to
        ``b - a + c`` (unit vectors, 3CosAdd) among the first ``restrict_vocab`` keys, the three
        input words excluded; a question with a word outside those keys is skipped (or counted
        wrong with ``dummy4unknown``). The questions are answered in batches, one matrix
        product per block of up to 1000.

        Parameters
        ----------
        path : str or os.PathLike
            UTF-8 text: ``": section name"`` lines, then lines of four words. Lines that do not
            hold four words are skipped; a question before the first section is an error.
        restrict_vocab : int or None, optional
            Use only the first ``restrict_vocab`` keys (sort the vocabulary by frequency).
        case_insensitive : bool, optional
            Compare upper-cased words; a key whose upper-case form occurs more than once
            stands for its first (lowest-index) occurrence, as in gensim.
        dummy4unknown : bool, optional
            Count questions with unknown words as incorrect instead of skipping them.

        Returns
        -------
        accuracy : float
            Correct / answered over all sections (0.0 if nothing was answered).
        sections : list of dict
            One dict per section in file order, then ``{"section": "Total accuracy", ...}``;
            each has ``"section"`` (str), ``"correct"`` and ``"incorrect"`` (lists of
            ``(a, b, c, expected)`` tuples, upper-cased when ``case_insensitive``).

        Raises
        ------
        ValueError
            A question before any section header, a line that is not UTF-8, or a file
            without any question (path and line in the message).
        """
        restrict_vocab = self._check_restrict(restrict_vocab)
        case_insensitive = as_bool(case_insensitive, "case_insensitive")
        dummy4unknown = as_bool(dummy4unknown, "dummy4unknown")
        return score_analogies(self, path, restrict_vocab, case_insensitive, dummy4unknown)

    @staticmethod
    def _check_restrict(restrict_vocab):
        if restrict_vocab is None:
            return None
        return as_int(restrict_vocab, "restrict_vocab", minimum=0)

    def evaluate_word_pairs(self, path, delimiter="\t", restrict_vocab=300000,
                            case_insensitive=True, encoding="utf8", dummy4unknown=False):
        """Correlation of cosine similarities with human judgements (``wordsim353.tsv`` format).

        Same semantics and return value as gensim 4.4.

        Parameters
        ----------
        path : str or os.PathLike
            Lines ``word1<delimiter>word2<delimiter>score``; lines starting with ``#`` and
            lines that do not parse are skipped.
        delimiter : str, optional
        restrict_vocab : int or None, optional
            Pairs with a word outside the first ``restrict_vocab`` keys are skipped.
        case_insensitive : bool, optional
            Compare upper-cased words (first occurrence of a case variant wins).
        encoding : str, optional
        dummy4unknown : bool, optional
            Give pairs with unknown words similarity 0 instead of skipping them.

        Returns
        -------
        pearson : scipy.stats PearsonRResult
            ``(r, p-value)``; unpacks like a tuple.
        spearman : scipy.stats SignificanceResult
            ``(rho, p-value)``.
        oov_ratio : float
            Percentage of pairs with an unknown word.

        Raises
        ------
        ValueError
            If no pair could be evaluated.
        """
        restrict_vocab = self._check_restrict(restrict_vocab)
        case_insensitive = as_bool(case_insensitive, "case_insensitive")
        dummy4unknown = as_bool(dummy4unknown, "dummy4unknown")
        if not isinstance(delimiter, str) or not delimiter:
            raise ValueError(f"delimiter must be a non-empty str, got {delimiter!r}")
        return score_word_pairs(self, path, delimiter, restrict_vocab, case_insensitive,
                                encoding, dummy4unknown)
