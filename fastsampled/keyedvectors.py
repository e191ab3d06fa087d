"""Word vectors keyed by string: lookup, cosine queries, word2vec files, analogy/similarity tests.

:class:`KeyedVectors` mirrors the part of gensim's ``KeyedVectors`` that people use after
training (``wv["word"]``, ``most_similar``, ``similarity``, ``doesnt_match``,
``save_word2vec_format`` / ``load_word2vec_format``, ``evaluate_word_analogies``,
``evaluate_word_pairs``) with gensim 4.4's semantics, in plain numpy. The analogy evaluation is
batched into matrix products (thousands of questions per BLAS call) instead of one
``most_similar`` call per question, so the 19 544 questions of ``questions-words.txt`` against
30 000 words take seconds, not minutes.
"""
import bz2
import gzip
import io
import json
import logging
import lzma
import numbers
import os
import stat

import numpy as np

from ._modelfiles import NpzReader, compression, replacing
from ._validate import as_bool, as_float_array, as_int
from .sharding import StoreError

__all__ = ["KeyedVectors"]

logger = logging.getLogger(__name__)

_FORMAT = "fastsampled.KeyedVectors"
_FORMAT_VERSION = 1
# Analogy evaluation: at most this many float32 scores (questions x restricted vocabulary) are
# held at once (128 MB), and at most _MAX_BLOCK questions go into one matrix product.
_SCORE_BUDGET = 1 << 25
_MAX_BLOCK = 1000
# gensim asks most_similar for the top 5 answers and takes the first that is not a case variant
# of an input word (only possible with case_insensitive=True); see _analogy_fallback.
_ANALOGY_TOPN = 5


def _open(path, mode):
    """Open ``path`` in binary ``mode``; ``.gz``, ``.bz2`` and ``.xz`` are (de)compressed."""
    path = os.fspath(path)
    kind = compression(path)
    if kind == "gz":
        return gzip.open(path, mode)
    if kind == "bz2":
        return bz2.open(path, mode)
    if kind == "xz":
        return lzma.open(path, mode)
    return open(path, mode)


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


def _check_kv_meta(meta, path):
    """``(index_to_key, vector_size or None)`` from the JSON header of a :meth:`save` file."""
    if not isinstance(meta, dict):
        raise StoreError(f"{path}: array 'meta_json' must hold a JSON object, got "
                         f"{type(meta).__name__}")
    if meta.get("format") != _FORMAT:
        raise StoreError(f"{path}: not a file written by KeyedVectors.save (its 'format' is "
                         f"{meta.get('format')!r})")
    version = meta.get("version")
    if type(version) is not int or version < 1:
        raise StoreError(f"{path}: field 'version' must be an integer >= 1, got {version!r}")
    if version > _FORMAT_VERSION:
        raise StoreError(f"{path}: written by a newer fastsampled (format 'version' "
                         f"{version}; this one reads up to {_FORMAT_VERSION})")
    if "index_to_key" not in meta:
        raise StoreError(f"{path}: field 'index_to_key' is missing")
    keys = meta["index_to_key"]
    if not isinstance(keys, list):
        raise StoreError(f"{path}: field 'index_to_key' must be a list of str, got "
                         f"{type(keys).__name__}")
    for i, key in enumerate(keys):
        if type(key) is not str:
            raise StoreError(f"{path}: field 'index_to_key' must hold str keys; index {i} is "
                             f"{type(key).__name__} {key!r}")
    dim = meta.get("vector_size")   # absent in files written before it was recorded
    if dim is not None and (type(dim) is not int or dim < 1):
        raise StoreError(f"{path}: field 'vector_size' must be an integer >= 1, got {dim!r}")
    return keys, dim


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
        for key in self.index_to_key:
            if not key or " " in key or "\n" in key:
                raise ValueError(f"key {key!r} cannot be stored in word2vec format "
                                 "(empty, or contains a space or newline)")
        n, dim = self._vectors.shape
        block = 8192
        with replacing(path, compress=True) as fout:
            if write_header:
                fout.write(f"{n} {dim}\n".encode("utf8"))
            for start in range(0, n, block):
                keys = self.index_to_key[start:start + block]
                rows = self._vectors[start:start + block]
                if binary:
                    raw = rows.astype("<f4").tobytes()
                    rec = 4 * dim
                    fout.write(b"".join(f"{key} ".encode("utf8") + raw[j * rec:(j + 1) * rec]
                                        for j, key in enumerate(keys)))
                else:
                    # numpy's float32 -> str cast is str(np.float32(x)), as gensim writes
                    texts = rows.astype(str).tolist()
                    fout.write("".join(f"{key} {' '.join(vals)}\n"
                                       for key, vals in zip(keys, texts)).encode("utf8"))

    @classmethod
    def load_word2vec_format(cls, path, binary=False, limit=None, encoding="utf8",
                             unicode_errors="strict", no_header=False):
        """Read a C word2vec text or binary file (as written by word2vec.c or gensim).

        Parameters
        ----------
        path : str or os.PathLike
            ``.gz``, ``.bz2`` and ``.xz`` files are decompressed on the fly.
        binary : bool, optional
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
        binary = as_bool(binary, "binary")
        no_header = as_bool(no_header, "no_header")
        if limit is not None:
            limit = as_int(limit, "limit", minimum=1)
        if no_header and binary:
            raise ValueError("no_header=True is only supported for text files (binary=False)")
        path_str = os.fspath(path)
        with _open(path, "rb") as fin:
            if no_header:
                n, dim = _detect_text_sizes(fin, path_str, limit)
                fin.seek(0)
                header_len = 0
            else:
                header = fin.readline(_MAX_HEADER)
                header_len = len(header)
                try:
                    if header_len == _MAX_HEADER and not header.endswith(b"\n"):
                        raise ValueError
                    n, dim = (int(x) for x in header.decode(encoding).split())
                    if n < 0 or dim < 1:
                        raise ValueError
                except (ValueError, UnicodeDecodeError):
                    raise ValueError(
                        f"{path_str}: line 1: expected a word2vec header 'count dim', got "
                        f"{header[:80]!r} (a file without one: no_header=True)") from None
            declared = n
            if limit is not None:
                n = min(n, limit)
            size = _plain_file_size(fin)
            if size is not None:
                _check_declared_size(path_str, declared, n, dim, size, header_len, binary,
                                     no_header)
            reader = _read_binary if binary else _read_text
            vectors, keys = reader(fin, path_str, n, dim, encoding, unicode_errors, header_len,
                                   size is not None)
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
        meta = {"format": _FORMAT, "version": _FORMAT_VERSION, "vector_size": self.vector_size,
                "index_to_key": self.index_to_key}
        arrays = {"vectors": self._vectors,
                  "meta_json": np.frombuffer(json.dumps(meta, ensure_ascii=False).encode("utf8"),
                                             dtype=np.uint8)}
        if self.counts is not None:
            arrays["counts"] = self.counts
        with replacing(path) as fout:
            np.savez(fout, **arrays)

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
        with NpzReader(path_str, "KeyedVectors.save") as npz:
            keys, dim = _check_kv_meta(npz.read_json("meta_json"), path_str)
            n = len(keys)
            vectors = npz.read("vectors", np.float32, (n, dim),
                               f"{n} keys in index_to_key" + (f", vector_size {dim}" if dim
                                                               else ""))
            counts = (npz.read("counts", np.int64, (n,), f"{n} keys in index_to_key")
                      if "counts" in npz else None)
        try:
            return cls(vectors, keys, counts)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{path_str}: {exc}") from None

    # ------------------------------------------------------------------ evaluation

    def _ok_vocab(self, restrict_vocab, case_insensitive):
        """gensim's ok_vocab: (upper-cased) key of the first ``restrict_vocab`` rows -> the
        index of its first (most frequent) occurrence."""
        ok_keys = self.index_to_key[:restrict_vocab]  # None: all
        ok_vocab = {}
        for i, key in enumerate(ok_keys):
            ok_vocab.setdefault(key.upper() if case_insensitive else key, i)
        return ok_keys, ok_vocab

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
        path_str = os.fspath(path)
        ok_keys, ok_vocab = self._ok_vocab(restrict_vocab, case_insensitive)
        logger.info("Evaluating word analogies for top %s words in the model on %s",
                    restrict_vocab, path_str)

        # Parse: per section, the questions in file order; the answerable ones also as ids.
        sections = []          # [name, [(quad, q_or_None)]]
        ids = []               # (a, b, c, expected) rows of ok_vocab ids, answerable questions
        n_questions = oov = 0
        with _open(path, "rb") as fin:
            for line_no, raw in enumerate(fin, 1):
                try:
                    line = raw.decode("utf8")
                except UnicodeDecodeError as exc:
                    raise ValueError(f"{path_str}: line {line_no}: not UTF-8 ({exc})") from None
                if line.startswith(": "):
                    sections.append((line.lstrip(": ").strip(), []))
                    continue
                if not sections:
                    raise ValueError(f"{path_str}: line {line_no}: missing ': section' header "
                                     "before the first question")
                words = line.split()
                if len(words) != 4:
                    logger.info("Skipping invalid line #%i in %s", line_no, path_str)
                    continue
                quad = tuple(w.upper() for w in words) if case_insensitive else tuple(words)
                n_questions += 1
                q_ids = [ok_vocab.get(w) for w in quad]
                if None in q_ids:
                    oov += 1
                    if dummy4unknown:
                        sections[-1][1].append((quad, -1))
                    continue
                sections[-1][1].append((quad, len(ids)))
                ids.append(q_ids)
        if n_questions == 0:
            raise ValueError(f"{path_str}: no analogy questions (lines of four words) found")

        correct = self._answer_analogies(np.asarray(ids, np.int64).reshape(-1, 4),
                                         len(ok_keys), ok_keys, ok_vocab, case_insensitive)
        result = []
        for name, questions in sections:
            section = {"section": name,
                       "correct": [quad for quad, q in questions if q >= 0 and correct[q]],
                       "incorrect": [quad for quad, q in questions if q < 0 or not correct[q]]}
            self._log_section(section)
            result.append(section)
        total = {"section": "Total accuracy",
                 "correct": [quad for s in result for quad in s["correct"]],
                 "incorrect": [quad for s in result for quad in s["incorrect"]]}
        logger.info("Quadruplets with out-of-vocabulary words: %.1f%%", 100.0 * oov / n_questions)
        if not dummy4unknown and oov:
            logger.info("NB: analogies containing OOV words were skipped from evaluation! "
                        "To change this behavior, use \"dummy4unknown=True\"")
        score = self._log_section(total)
        result.append(total)
        return score, result

    @staticmethod
    def _check_restrict(restrict_vocab):
        if restrict_vocab is None:
            return None
        return as_int(restrict_vocab, "restrict_vocab", minimum=0)

    @staticmethod
    def _log_section(section):
        correct, incorrect = len(section["correct"]), len(section["incorrect"])
        if correct + incorrect == 0:
            return 0.0
        score = correct / (correct + incorrect)
        logger.info("%s: %.1f%% (%i/%i)", section["section"], 100.0 * score, correct,
                    correct + incorrect)
        return score

    def _answer_analogies(self, ids, n_ok, ok_keys, ok_vocab, case_insensitive):
        """Boolean (Q,): is the 3CosAdd answer of each question (rows of ``ids``) right?"""
        correct = np.zeros(len(ids), bool)
        if len(ids) == 0 or n_ok == 0:
            return correct
        normed = self.get_normed_vectors()[:n_ok]
        # canon[i]: the ok_vocab id standing for row i (differs from i only for a later case
        # variant of an earlier key, with case_insensitive)
        if case_insensitive:
            canon = np.fromiter((ok_vocab[k.upper()] for k in ok_keys), np.int64, n_ok)
        else:
            canon = np.arange(n_ok, dtype=np.int64)
        has_variants = bool((canon != np.arange(n_ok)).any())
        block = max(1, min(_MAX_BLOCK, _SCORE_BUDGET // n_ok))
        for start in range(0, len(ids), block):
            q = ids[start:start + block]
            a, b, c, expected = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
            query = (normed[b] + normed[c]) - normed[a]
            length = np.linalg.norm(query, axis=1, keepdims=True)
            query /= np.where(length > 0, length, np.float32(1.0))
            scores = query @ normed.T                            # (block, n_ok)
            rows = np.arange(len(q))
            for col in (a, b, c):                                # inputs are never the answer
                scores[rows, col] = -np.inf
            pred = np.argmax(scores, axis=1)
            answered = np.isfinite(scores[rows, pred])           # False: nothing left to pick
            pred_canon = canon[pred]
            ok = answered & (pred_canon == expected)
            if has_variants:
                # gensim skips answers whose upper-case form is an input word: redo those.
                clash = answered & ((pred_canon == a) | (pred_canon == b) | (pred_canon == c))
                for i in np.flatnonzero(clash).tolist():
                    ok[i] = self._analogy_fallback(scores[i], canon, a[i], b[i], c[i],
                                                   expected[i])
            correct[start:start + len(q)] = ok
        return correct

    @staticmethod
    def _analogy_fallback(scores, canon, a, b, c, expected):
        """gensim's loop over its top-5 answers: the first one that is not a case variant of an
        input word is the prediction; if all five are, the fifth one is."""
        n_candidates = min(_ANALOGY_TOPN, int(np.isfinite(scores).sum()))
        top = np.argsort(-scores, kind="stable")[:n_candidates]
        predicted = None
        for i in top.tolist():
            predicted = canon[i]
            if predicted not in (a, b, c):
                break
        return predicted is not None and predicted == expected

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
        from scipy import stats

        restrict_vocab = self._check_restrict(restrict_vocab)
        case_insensitive = as_bool(case_insensitive, "case_insensitive")
        dummy4unknown = as_bool(dummy4unknown, "dummy4unknown")
        if not isinstance(delimiter, str) or not delimiter:
            raise ValueError(f"delimiter must be a non-empty str, got {delimiter!r}")
        path_str = os.fspath(path)
        _, ok_vocab = self._ok_vocab(restrict_vocab, case_insensitive)
        gold, left, right = [], [], []   # right/left == -1: an unknown word (dummy4unknown)
        oov = 0
        with _open(path, "rb") as fraw, io.TextIOWrapper(fraw, encoding=encoding) as fin:
            lines = _decoded_lines(fin, path_str, encoding)
            for line_no, line in enumerate(lines, 1):
                if not line or line.startswith("#"):
                    continue
                try:
                    parts = line.split(delimiter)
                    if case_insensitive:
                        parts = [p.upper() for p in parts]
                    a, b, sim = parts
                    sim = float(sim)
                except (ValueError, TypeError):
                    logger.info("Skipping invalid line #%d in %s", line_no, path_str)
                    continue
                if a not in ok_vocab or b not in ok_vocab:
                    oov += 1
                    if dummy4unknown:
                        gold.append(sim)
                        left.append(-1)
                        right.append(-1)
                    continue
                gold.append(sim)
                left.append(ok_vocab[a])
                right.append(ok_vocab[b])
        if not gold:
            raise ValueError(f"No valid similarity judgements found in {path_str}: either invalid "
                             f"format or all are out-of-vocabulary in {self!r}")
        left = np.asarray(left, np.int64)
        right = np.asarray(right, np.int64)
        normed = self.get_normed_vectors()
        model = np.einsum("ij,ij->i", normed[left], normed[right]).astype(np.float64)
        model[left < 0] = 0.0
        spearman = stats.spearmanr(gold, model)
        pearson = stats.pearsonr(gold, model)
        if dummy4unknown:
            oov_ratio = float(oov) / len(gold) * 100
        else:
            oov_ratio = float(oov) / (len(gold) + oov) * 100
        logger.info("Pearson correlation coefficient against %s: %.4f", path_str, pearson[0])
        logger.info("Spearman rank-order correlation coefficient against %s: %.4f", path_str,
                    spearman[0])
        logger.info("Pairs with unknown words ratio: %.1f%%", oov_ratio)
        return pearson, spearman, oov_ratio


def _decoded_lines(fin, path, encoding):
    """The lines of a text file, a decoding error turned into a ValueError naming the file."""
    line_no = 0
    while True:
        try:
            line = fin.readline()
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: after line {line_no}: not {encoding} "
                             f"({exc.reason})") from None
        if not line:
            return
        line_no += 1
        yield line


# ---------------------------------------------------------------------- word2vec file readers

def _decode_key(raw, path, where, encoding, unicode_errors):
    try:
        return raw.decode(encoding, errors=unicode_errors)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: {where}: key {raw[:80]!r} does not decode as {encoding} "
                         f"({exc.reason}; unicode_errors='ignore' or 'replace' may help)") from None


# The header line "count dim\n" is short; a first line longer than this is not one.
_MAX_HEADER = 1024
# A header that the file is too small for is refused outright when its array would take more
# than this; a smaller one is read until the file ends, to name the line where it does.
_EAGER_BYTES = 1 << 24


def _plain_file_size(fin):
    """Size in bytes of ``fin`` if it is an uncompressed regular file, else None."""
    if not isinstance(fin, io.BufferedReader):
        return None
    st = os.fstat(fin.fileno())
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _check_declared_size(path, declared, n, dim, size, header_len, binary, no_header):
    """Refuse a header (or, without one, a first line) announcing more than the file holds,
    before its ``(n, dim)`` array is allocated.

    A binary record takes at least ``4 * dim + 2`` bytes (a one-byte key, a space, the
    float32 values); a text line at least ``2 * dim + 1`` (a key and ``dim`` values, each
    after a space, and the newline that ends every line but maybe the last). When the array
    would be small anyway, the file is read instead, and the reader's error names the line or
    record where it ends.
    """
    need = n * (4 * dim + 2 if binary else 2 * dim + 1)
    if need <= size - header_len or 4 * n * dim <= _EAGER_BYTES:
        return
    if no_header:
        raise ValueError(f"{path}: line 1 holds {dim} values, so the file's {n} lines need at "
                         f"least {need} bytes, but the file has only {size} bytes")
    raise ValueError(f"{path}: the header declares {declared} x {dim} but the file has only "
                     f"{size} bytes (the first {n} vectors need at least {header_len + need})")


class _Collector:
    """Rows of a word2vec file; a repeated key keeps its first vector, as in gensim.

    With ``preallocate`` (an uncompressed file whose size was checked against the header)
    the ``(n, dim)`` array is allocated at once; otherwise it grows as rows arrive, so that a
    damaged header in a compressed file costs no more memory than the rows really read.
    """

    def __init__(self, n, dim, preallocate=True):
        self.n = n
        self.vectors = np.empty((n if preallocate else 0, dim), np.float32)
        self.keys = []
        self.seen = set()

    def _grow(self):
        cap, dim = self.vectors.shape
        new_cap = min(self.n, max(2 * cap, (1 << 20) // (4 * dim), 1))
        grown = np.empty((new_cap, dim), np.float32)
        grown[:cap] = self.vectors
        self.vectors = grown

    def add(self, key, vector):
        if key in self.seen:
            logger.warning("duplicate word %r in word2vec file, ignoring all but first", key)
            return
        self.seen.add(key)
        if len(self.keys) == len(self.vectors):
            self._grow()
        self.vectors[len(self.keys)] = vector
        self.keys.append(key)

    def result(self):
        vectors = self.vectors if len(self.keys) == len(self.vectors) else \
            np.ascontiguousarray(self.vectors[:len(self.keys)])
        return vectors, self.keys


def _parse_text_line(line, path, line_no, dim, encoding, unicode_errors):
    # gensim: the key runs to the first space; word2vec.c ends lines with "value \n"
    line = line.rstrip()
    key_raw, _, rest = line.partition(b" ")
    values = rest.split()
    if dim is not None and len(values) != dim:
        raise ValueError(f"{path}: line {line_no}: expected a key and {dim} values, got "
                         f"{len(values)} values")
    try:
        vector = np.array(values, dtype=np.float32)
    except ValueError:
        bad = next(v for v in values if not _is_float(v))
        raise ValueError(f"{path}: line {line_no}: {bad[:40]!r} is not a number") from None
    key = _decode_key(key_raw, path, f"line {line_no}", encoding, unicode_errors)
    if not key:
        raise ValueError(f"{path}: line {line_no}: empty key (the line starts with a space)")
    return key, vector


def _is_float(token):
    try:
        float(token)
        return True
    except ValueError:
        return False


def _read_text(fin, path, n, dim, encoding, unicode_errors, header_len, preallocate=True):
    rows = _Collector(n, dim, preallocate)
    first_line = 1 if header_len == 0 else 2
    for i in range(n):
        line = fin.readline()
        if not line:
            raise ValueError(f"{path}: line {first_line + i}: file ends after {i} vectors, "
                             f"the header announces {n} vectors of dimension {dim}")
        rows.add(*_parse_text_line(line, path, first_line + i, dim, encoding, unicode_errors))
    return rows.result()


def _detect_text_sizes(fin, path, limit):
    """(number of lines, values on the first line) of a header-less text file."""
    n = 0
    dim = None
    for line in fin:
        if limit is not None and n == limit:
            break
        if dim is None:
            dim = len(line.rstrip().partition(b" ")[2].split())
            if dim < 1:
                raise ValueError(f"{path}: line 1: expected a key followed by its values")
        n += 1
    if dim is None:
        raise ValueError(f"{path}: the file is empty")
    return n, dim


def _read_binary(fin, path, n, dim, encoding, unicode_errors, header_len, preallocate=True,
                 chunk_size=1 << 20):
    rows = _Collector(n, dim, preallocate)
    record = 4 * dim
    buf = b""
    pos = 0            # start of the next record in buf
    consumed = header_len  # file offset of buf[0]
    eof = False
    i = 0
    while i < n:
        space = buf.find(b" ", pos)
        if space < 0 or len(buf) - (space + 1) < record:
            if eof:
                raise ValueError(f"{path}: record {i + 1} (byte {consumed + pos}): file ends after "
                                 f"{i} vectors, the header announces {n} vectors of dimension "
                                 f"{dim}")
            held = len(buf) - pos
            consumed += pos
            # At most twice what is held: a record of a damaged header's dimension is never
            # asked for at once, yet a long record takes few reads.
            more = fin.read(max(chunk_size, min(2 * record, 2 * held)))
            eof = not more
            buf = buf[pos:] + more
            pos = 0
            continue
        # some writers put a newline after each vector (word2vec.c); gensim strips it from keys
        where = f"record {i + 1} (byte {consumed + pos})"
        key = _decode_key(buf[pos:space], path, where, encoding, unicode_errors).lstrip("\n")
        if not key or "\n" in key:
            raise ValueError(f"{path}: {where}: " + (f"key {key[:80]!r} contains a newline"
                                                     if key else "empty key")
                             + " (the word2vec format cannot store it)")
        rows.add(key, np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1))
        pos = space + 1 + record
        i += 1
    return rows.result()
