"""Word vectors keyed by string: lookup, cosine queries, word2vec files, analogy/similarity tests.

:class:`KeyedVectors` has the interface of gensim's ``KeyedVectors``, with gensim 4.4's
semantics, in plain numpy: lookup (``wv["word"]``, ``get_vector``, ``get_mean_vector``,
``vectors_for_all``), growing and changing (``add_vector``, ``add_vectors``,
``wv[key] = vector``, ``sort_by_descending_frequency``, ``unit_normalize_all``), per-key
attributes (``get_vecattr`` / ``set_vecattr``), cosine queries (``most_similar``,
``most_similar_cosmul``, ``similar_by_key`` / ``similar_by_word`` / ``similar_by_vector``,
``most_similar_to_given``, ``similarity``, ``distance`` / ``distances``, ``closer_than``,
``rank``, ``doesnt_match``, ``relative_cosine_similarity``), word2vec files
(``save_word2vec_format`` / ``load_word2vec_format``, with word2vec.c's vocabulary files) and
the evaluations (``evaluate_word_analogies``, ``evaluate_word_pairs``). The analogy evaluation
is batched into matrix products (thousands of questions per BLAS call) instead of one
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
from ._kvformats import (read_npz, read_vocab, read_word2vec_format, write_npz, write_vocab,
                         write_word2vec_format)
from ._validate import as_bool, as_float_array, as_int
from .sharding import StoreError

__all__ = ["KeyedVectors"]

# The private modules _kvformats and _kveval log under this name too.
logger = logging.getLogger(__name__)

_FLOAT32 = np.dtype(np.float32)


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


def _is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _check_float32(dtype, name):
    """The library stores float32 only: ``dtype`` must name it."""
    try:
        ok = np.dtype(dtype) == _FLOAT32
    except TypeError:
        ok = False
    if not ok:
        raise TypeError(f"{name} must be float32 (KeyedVectors stores float32 vectors), "
                        f"got {dtype!r}")


def _key_list(keys, name):
    """``keys`` (a list, tuple or array of str) as a list of plain str, each once."""
    if not isinstance(keys, (list, tuple, np.ndarray)):
        raise TypeError(f"{name} must be a str or a list of str, got {type(keys).__name__}")
    out, seen = [], {}
    for i, key in enumerate(keys):
        if not isinstance(key, str):
            raise TypeError(f"{name} must hold str keys; index {i} is {type(key).__name__} "
                            f"{key!r}")
        key = str(key)
        if key in seen:
            raise ValueError(f"{name} holds {key!r} twice (indices {seen[key]} and {i})")
        seen[key] = i
        out.append(key)
    return out


def _as_items(value):
    """gensim's ``_ensure_list``: a key or a 1-D vector is one item, a 2-D array its rows."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, np.ndarray):
        return [value] if value.ndim == 1 else list(value)
    return list(value)


def _unit(vector):
    """``vector`` scaled to unit length as float32 (a zero vector stays zero)."""
    length = np.linalg.norm(vector)
    if length > 0:
        vector = vector / length
    return np.asarray(vector, dtype=np.float32)


def _attr_dtype(value):
    """The dtype of a new per-key attribute array for ``value`` (gensim: ``int`` -> int64,
    ``str`` and other objects -> object)."""
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.dtype
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(bool)
    if isinstance(value, numbers.Integral):
        return np.dtype(np.int64)
    if isinstance(value, numbers.Real):
        return np.dtype(np.float64)
    return np.dtype(object)


def _attr_accepts(dtype, value_dtype):
    """Whether an attribute array of ``dtype`` can hold values of ``value_dtype``."""
    return (dtype.kind == "O" or (dtype.kind == "b" and value_dtype.kind == "b")
            or (dtype.kind in "iu" and value_dtype.kind in "iu")
            or (dtype.kind == "f" and value_dtype.kind in "iuf"))


class KeyedVectors:
    """Vectors of shape (N, dim) addressed by N distinct string keys.

    Two ways to make one: from the vectors and their keys, ``KeyedVectors(vectors,
    index_to_key, counts=None)``, or empty, to be filled with :meth:`add_vectors`,
    :meth:`add_vector` or ``kv[key] = vector``, as in gensim: ``KeyedVectors(vector_size,
    count=0, dtype=np.float32)``. An integer first argument (or ``vector_size=``) selects the
    second form.

    Parameters
    ----------
    vectors : array_like of shape (N, dim)
        float32 or float64 values, stored as float32 (kept without a copy when already a
        C-contiguous float32 array, so a trainer may keep writing into it; call
        :meth:`fill_norms` with ``force=True`` after such in-place changes).
    index_to_key : sequence of str, length N
        The key of each row; keys must be distinct.
    counts : array_like of shape (N,), optional
        Non-negative integer frequency of each key (saved by :meth:`save`, written by
        :meth:`save_word2vec_format` to a vocabulary file, and the order of
        :meth:`sort_by_descending_frequency`; the same as the ``"count"`` attribute of
        :meth:`get_vecattr`).
    vector_size : int
        (Second form) The dimension of the vectors to come.
    count : int, default 0
        (Second form; also gensim's second positional argument) Rows to reserve for the keys
        to come, so that adding them one at a time does not copy the vectors each time.
        gensim counts reserved rows as keys (``None`` in ``index_to_key``) until they are
        filled; here they are only room: ``len(kv)`` is the number of keys added.
    dtype : numpy dtype, default float32
        (Second form) Only float32 is accepted: the vectors are always float32.

    Attributes
    ----------
    vectors : ndarray of shape (N, dim), float32
        Assigning a new array validates it and drops the cached norms.
    index_to_key : list of str
    key_to_index : dict of str to int
    counts : ndarray of shape (N,), int64, or None
    expandos : dict of str to ndarray of shape (N,)
        Per-key attributes by name (gensim's), read and written with :meth:`get_vecattr`
        and :meth:`set_vecattr`; ``"count"`` is ``counts``.
    norms : ndarray of shape (N,), float32, or None
        Row L2 norms, filled on demand by :meth:`fill_norms`.

    Raises
    ------
    TypeError
        For arguments of the wrong type (keys that are not str, integer vectors, a ``dtype``
        other than float32, or a mix of the two forms' arguments).
    ValueError
        For inconsistent shapes or repeated keys; the message names the argument.

    Notes
    -----
    Queries use the unit-normalised matrix, computed once and cached. Rows of norm zero are
    normalised to zero (cosine 0 with everything), where gensim would produce NaN. Keys are
    str; gensim also takes integer keys and reads an integer absent from the keys as a row
    index, which this class does not.

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

    Built up key by key, as in gensim:

    >>> kv = fs.KeyedVectors(2)
    >>> kv.add_vectors(["a", "b"], np.array([[1.0, 0.0], [0.0, 2.0]]))
    >>> kv["c"] = np.array([1.0, 1.0])
    >>> kv.index_to_key, kv.rank("a", "b")
    (['a', 'b', 'c'], 2)
    """

    def __init__(self, vectors=None, index_to_key=None, counts=None, *, vector_size=None,
                 count=None, dtype=None):
        if vector_size is not None or _is_integer(vectors):
            if vector_size is not None and vectors is not None:
                raise TypeError("give vectors (with index_to_key) or vector_size, not both")
            if index_to_key is not None:   # gensim's KeyedVectors(vector_size, count)
                if count is not None:
                    raise TypeError("count given twice: as the second argument and by name")
                count = index_to_key
            if counts is not None:
                raise TypeError("counts goes with KeyedVectors(vectors, index_to_key, counts); "
                                "KeyedVectors(vector_size, count, dtype) starts empty")
            vector_size = as_int(vectors if vector_size is None else vector_size,
                                 "vector_size", minimum=1)
            count = 0 if count is None else as_int(count, "count", minimum=0)
            if dtype is not None:
                _check_float32(dtype, "dtype")
            buffer, keys, n = np.empty((count, vector_size), np.float32), [], 0
        else:
            if vectors is None or index_to_key is None:
                raise TypeError("KeyedVectors needs vectors and index_to_key, or a vector_size")
            if count is not None or dtype is not None:
                raise TypeError("count and dtype go with KeyedVectors(vector_size, count, "
                                "dtype), not with vectors and index_to_key")
            buffer = self._check_vectors(vectors)
            keys, n = index_to_key, buffer.shape[0]
        self._set_rows(buffer, n)
        self.index_to_key, self.key_to_index = _check_keys(keys, n)
        self.expandos = {}
        self.counts = counts
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

    def _set_rows(self, buffer, n):
        """Hold the vectors in the first ``n`` rows of ``buffer``; the rest is room to grow."""
        self._buffer = buffer
        self._vectors = buffer if buffer.shape[0] == n else buffer[:n]

    def _changed(self):
        """Vectors were written: the cached norms and unit vectors are stale."""
        self.norms = None
        self._normed = None

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
        self._set_rows(value, value.shape[0])
        self._changed()

    @property
    def counts(self):
        """ndarray of shape (N,), int64, or None: the frequency of each key (the ``"count"``
        attribute). Assigning checks the array; None removes it."""
        return self.expandos.get("count")

    @counts.setter
    def counts(self, value):
        value = self._check_counts(value, len(self.index_to_key))
        if value is None:
            self.expandos.pop("count", None)
        else:
            self.expandos["count"] = value

    @property
    def vector_size(self):
        """int: the dimension ``dim`` of the vectors."""
        return self._vectors.shape[1]

    def __len__(self):
        return len(self.index_to_key)

    def __contains__(self, key):
        return key in self.key_to_index

    def has_index_for(self, key):
        """Whether ``key`` is one of the keys (gensim's name for ``key in kv``).

        Parameters
        ----------
        key : str

        Returns
        -------
        bool
        """
        return isinstance(key, str) and key in self.key_to_index

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

    def _indices(self, keys, name):
        """Row indices of ``keys`` (a list of str; KeyError naming an unknown one)."""
        if isinstance(keys, str):
            raise TypeError(f"{name} must be a list of str, got a single str {keys!r}")
        return [self.get_index(key) for key in keys]

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

    def get_mean_vector(self, keys, weights=None, pre_normalize=True, post_normalize=False,
                        ignore_missing=True):
        """The weighted mean of the vectors of ``keys`` (gensim's ``get_mean_vector``).

        Parameters
        ----------
        keys : list of (str or ndarray of shape (dim,))
            Keys, or vectors used as given (never normalised). (A key outside the vocabulary
            that ``key in kv`` accepts, in a subclass that composes vectors, is used as
            ``get_vector`` gives it.)
        weights : array_like of shape (len(keys),), optional
            The weight of each item; all 1 by default.
        pre_normalize : bool, default True
            Use the unit-length vectors of the keys.
        post_normalize : bool, default False
            Scale the mean to unit length (a zero mean stays zero).
        ignore_missing : bool, default True
            Leave out unknown keys (with their weights) instead of raising ``KeyError``.

        Returns
        -------
        ndarray of shape (dim,), float32
            ``sum(w_i * v_i) / sum(|w_i|)`` over the items used (zeros if their weights sum
            to zero, or if no item is used).

        Raises
        ------
        ValueError
            If ``keys`` is empty, ``weights`` has the wrong shape or a vector the wrong size.
        KeyError
            For an unknown key when ``ignore_missing`` is False (the message names it).
        """
        if isinstance(keys, str):
            raise TypeError(f"keys must be a list of keys or vectors, got a single str {keys!r}")
        items = list(keys)
        if not items:
            raise ValueError("keys must not be empty: there is no mean of nothing")
        pre_normalize = as_bool(pre_normalize, "pre_normalize")
        post_normalize = as_bool(post_normalize, "post_normalize")
        ignore_missing = as_bool(ignore_missing, "ignore_missing")
        if weights is None:
            weights = np.ones(len(items), np.float32)
        else:
            weights = np.asarray(weights)
            if weights.dtype.kind not in "iuf":
                raise TypeError(f"weights must hold numbers, got dtype {weights.dtype}")
            if weights.shape != (len(items),):
                raise ValueError(f"weights must have shape ({len(items)},), one per key, got "
                                 f"{weights.shape}")
            weights = weights.astype(np.float32)
        rows, row_at, vectors, vector_at = [], [], [], []
        for i, item in enumerate(items):
            if isinstance(item, str):
                index = self.key_to_index.get(item)
                if index is not None:
                    rows.append(index)
                    row_at.append(i)
                elif item in self:      # a subclass composing vectors for other keys
                    vectors.append(self.get_vector(item, norm=pre_normalize))
                    vector_at.append(i)
                elif not ignore_missing:
                    self.get_index(item)           # KeyError naming the key
            elif isinstance(item, np.ndarray):
                if item.shape != (self.vector_size,):
                    raise ValueError(f"vectors in keys must have shape ({self.vector_size},); "
                                     f"index {i} has shape {item.shape}")
                vectors.append(as_float_array(item, f"keys[{i}]"))
                vector_at.append(i)
            else:
                raise TypeError(f"keys must hold str keys or vectors; index {i} is "
                                f"{type(item).__name__} {item!r}")
        mean = np.zeros(self.vector_size, np.float32)
        total = 0.0
        if rows:
            source = self.get_normed_vectors() if pre_normalize else self._vectors
            w = weights[row_at]
            mean += w @ source[rows]
            total += float(np.abs(w).sum())
        if vectors:
            w = weights[vector_at]
            mean += (w @ np.stack(vectors)).astype(np.float32)
            total += float(np.abs(w).sum())
        if total > 0:
            mean /= np.float32(total)
        return _unit(mean) if post_normalize else mean

    # ------------------------------------------------------------------ adding and changing

    def _rows_for(self, keys, weights):
        """``(keys as a list, float32 rows of shape (len(keys), dim))``, both checked."""
        single = isinstance(keys, str)
        keys = [str(keys)] if single else _key_list(keys, "keys")
        try:
            rows = np.asarray(weights)
        except ValueError as exc:          # ragged lists
            raise ValueError(f"weights must be of shape ({len(keys)}, {self.vector_size}): "
                             f"{exc}") from None
        if not keys and rows.size == 0:
            return keys, np.empty((0, self.vector_size), np.float32)
        rows = as_float_array(rows, "weights")
        if single and rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.shape != (len(keys), self.vector_size):
            raise ValueError(f"weights must have shape ({len(keys)}, {self.vector_size}) for "
                             f"{len(keys)} key(s) of dimension {self.vector_size}, got "
                             f"{rows.shape}")
        return keys, rows.astype(np.float32, copy=False)

    def _check_extras(self, extras, n):
        """``extras`` (attribute name -> array_like of shape (n,)) as checked arrays."""
        if extras is None:
            return {}
        if not isinstance(extras, dict):
            raise TypeError(f"extras must be a dict of attribute name to values, got "
                            f"{type(extras).__name__}")
        out = {}
        for attr, values in extras.items():
            if not isinstance(attr, str):
                raise TypeError(f"extras must be keyed by str attribute names, got {attr!r}")
            values = np.asarray(values)
            if values.dtype.kind in "US":        # as gensim: str attributes are objects
                values = values.astype(object)
            if values.shape != (n,):
                raise ValueError(f"extras[{attr!r}] must have shape ({n},), one value per key, "
                                 f"got {values.shape}")
            if attr == "count":
                values = self._check_counts(values, n)
            existing = self.expandos.get(attr)
            if existing is not None and not _attr_accepts(existing.dtype, values.dtype):
                raise TypeError(f"extras[{attr!r}] holds {values.dtype}, but the attribute "
                                f"holds {existing.dtype}")
            out[attr] = values
        return out

    def _check_writable(self, what):
        if not self._vectors.flags.writeable:
            raise ValueError(f"{what} writes into the vectors, which are read-only (a "
                             "read-only array or memory map was given)")

    def _append(self, keys, rows, spare):
        """Add new keys (none of them present) and their rows; ``spare`` reserves room for
        more, so that adding keys one by one does not copy the vectors each time."""
        n, k = len(self), len(keys)
        need = n + k
        if need > self._buffer.shape[0]:
            capacity = max(need, n + n // 2) if spare else need
            grown = np.empty((capacity, self.vector_size), np.float32)
            grown[:n] = self._vectors
            self._buffer = grown
        self._buffer[n:need] = rows
        self._set_rows(self._buffer, need)
        self.index_to_key.extend(keys)
        self.key_to_index.update(zip(keys, range(n, need)))
        for attr, values in self.expandos.items():     # gensim: new keys' attributes are 0
            self.expandos[attr] = np.concatenate([values, np.zeros(k, values.dtype)])
        self._changed()

    def add_vectors(self, keys, weights, extras=None, replace=False):
        """Add keys with their vectors; keys already present keep their vector unless
        ``replace``.

        New keys go after the existing ones, in the order given. The vectors move to a
        larger array when the reserved room (``count``) runs out, so an array that held them
        before (a trainer's matrix) no longer does.

        Parameters
        ----------
        keys : str or list of str
            Distinct keys.
        weights : array_like of shape (len(keys), dim), or (dim,) for one key
            float32 or float64 values (a list of vectors is fine), stored as float32.
        extras : dict of str to array_like of shape (len(keys),), optional
            Per-key attributes (see :meth:`set_vecattr`) of the new keys, and of the present
            ones too when ``replace``; ``"count"`` sets :attr:`counts`.
        replace : bool, default False
            Overwrite the vectors of keys already present (in place).

        Raises
        ------
        TypeError
            For a key that is not a str, or integer or other non-float weights.
        ValueError
            If ``weights`` does not have one row of ``vector_size`` values per key, a key is
            given twice, or ``replace`` would write into read-only vectors.
        """
        keys, rows = self._rows_for(keys, weights)
        replace = as_bool(replace, "replace")
        extras = self._check_extras(extras, len(keys))
        known = np.fromiter((key in self.key_to_index for key in keys), bool, len(keys))
        replacing = replace and bool(known.any())
        if replacing:
            self._check_writable("add_vectors(..., replace=True)")
        for attr, values in extras.items():      # a new attribute is 0 for the present keys
            if attr not in self.expandos:
                self.expandos[attr] = np.zeros(len(self), values.dtype)
        if replacing:
            at = [self.key_to_index[key] for key, present in zip(keys, known) if present]
            self._vectors[at] = rows[known]
            self._changed()
            for attr, values in extras.items():
                self.expandos[attr][at] = values[known]
        new = ~known
        if new.any():
            n = len(self)
            self._append([key for key, fresh in zip(keys, new) if fresh], rows[new],
                         spare=int(new.sum()) == 1)
            for attr, values in extras.items():
                self.expandos[attr][n:] = values[new]

    def add_vector(self, key, vector):
        """Add one key with its vector and return its row index.

        Room is reserved as the vectors grow, so adding many keys one at a time costs
        amortised constant time per key (gensim copies all vectors each time unless
        ``count`` reserved rows).

        Parameters
        ----------
        key : str
        vector : array_like of shape (dim,)
            float32 or float64 values, stored as float32.

        Returns
        -------
        int
            The row of ``key``: ``kv.index_to_key[result] == key``. A key already present
            keeps its vector (as :meth:`add_vectors` does) and its row is returned.

        Raises
        ------
        TypeError
            If ``key`` is not a str or ``vector`` does not hold floats.
        ValueError
            If ``vector`` does not have shape (dim,).
        """
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, got {type(key).__name__} {key!r}")
        vector = as_float_array(vector, "vector")
        if vector.shape != (self.vector_size,):
            raise ValueError(f"vector must have shape ({self.vector_size},), got {vector.shape}")
        key = str(key)
        if key in self.key_to_index:
            return self.key_to_index[key]
        self._append([key], vector.reshape(1, -1), spare=True)
        return len(self) - 1

    def __setitem__(self, keys, weights):
        """``kv[key] = vector`` / ``kv[[k1, k2]] = vectors``: add keys or replace their vectors.

        The same as ``add_vectors(keys, weights, replace=True)``.
        """
        if not isinstance(keys, (str, list, tuple, np.ndarray)):
            raise TypeError(f"key must be a str or a list of str, got {type(keys).__name__}")
        self.add_vectors(keys, weights, replace=True)

    def get_vecattr(self, key, attr):
        """The value of the per-key attribute ``attr`` for ``key``.

        Parameters
        ----------
        key : str
        attr : str
            An attribute set with :meth:`set_vecattr` (or ``extras``); ``"count"`` is
            :attr:`counts` (made up as N, N-1, ..., 1 by :meth:`load_word2vec_format` when
            no vocabulary file is given, as gensim does).

        Returns
        -------
        numpy scalar or object

        Raises
        ------
        KeyError
            For an unknown key or attribute (the message names it).
        """
        index = self.get_index(key)
        values = self.expandos.get(attr)
        if values is None:
            raise KeyError(f"no attribute {attr!r} (have: {sorted(self.expandos)}); set it with "
                           "set_vecattr")
        return values[index]

    def set_vecattr(self, key, attr, val):
        """Set the per-key attribute ``attr`` of ``key`` to ``val``.

        The first value set under a name fixes the array that holds it (as in gensim): bool,
        int64 for Python ints, float64 for Python floats, a numpy scalar's own dtype, or
        object for anything else; every other key holds 0 until set.

        Parameters
        ----------
        key : str
        attr : str
            ``"count"`` (:attr:`counts`) takes non-negative integers only.
        val : object

        Raises
        ------
        KeyError
            For an unknown key (the message names it).
        TypeError
            If ``val`` does not fit the attribute's array (a float into an integer attribute,
            say).
        ValueError
            For a negative ``"count"``.
        """
        index = self.get_index(key)
        if not isinstance(attr, str):
            raise TypeError(f"attr must be a str, got {type(attr).__name__} {attr!r}")
        if attr == "count":
            if not _is_integer(val):
                raise TypeError(f"attribute 'count' holds integers, got {type(val).__name__} "
                                f"{val!r}")
            if val < 0:
                raise ValueError(f"attribute 'count' must be non-negative, got {val}")
        dtype = np.dtype(np.int64) if attr == "count" else _attr_dtype(val)
        values = self.expandos.get(attr)
        if values is None:
            values = self.expandos[attr] = np.zeros(len(self), dtype)
        elif not _attr_accepts(values.dtype, dtype):
            raise TypeError(f"attribute {attr!r} holds {values.dtype}; cannot store "
                            f"{type(val).__name__} {val!r} in it")
        values[index] = val

    def sort_by_descending_frequency(self):
        """Reorder the keys by descending :attr:`counts` (gensim's method).

        Keys of equal count end up in reverse index order, as gensim 4.4 orders them. The
        vectors and every attribute are reordered with the keys (into new arrays).

        Raises
        ------
        ValueError
            If there are no counts to sort by.
        """
        if not len(self):
            return
        counts = self.counts
        if counts is None:
            raise ValueError("sort_by_descending_frequency needs counts: pass counts= to the "
                             "constructor or set_vecattr(key, 'count', n)")
        order = np.lexsort((-np.arange(len(counts)), -counts))
        vectors = self._vectors[order]
        self._set_rows(vectors, vectors.shape[0])
        self.index_to_key = [self.index_to_key[i] for i in order.tolist()]
        self.key_to_index = {key: i for i, key in enumerate(self.index_to_key)}
        for attr, values in self.expandos.items():
            self.expandos[attr] = values[order]
        self._changed()

    def vectors_for_all(self, keys, allow_inference=True, copy_vecattrs=False):
        """A new KeyedVectors with the vectors of those of ``keys`` that are present.

        Parameters
        ----------
        keys : iterable of str
            Repeats and unknown keys are left out; the first occurrence fixes the order.
        allow_inference : bool, default True
            Also take the keys outside the vocabulary that ``key in kv`` accepts, with the
            vector ``get_vector`` gives them (for a subclass that composes vectors, as
            gensim's ``FastTextKeyedVectors``; here there are none).
        copy_vecattrs : bool, default False
            Copy every per-key attribute (:attr:`expandos`, counts included). Otherwise the
            counts are made up as M, M-1, ..., 1 for the M keys, as gensim does.

        Returns
        -------
        KeyedVectors
            Its vectors are a copy.
        """
        if isinstance(keys, str):
            raise TypeError(f"keys must be an iterable of str, got a single str {keys!r}")
        present = self if as_bool(allow_inference, "allow_inference") else self.key_to_index
        copy_vecattrs = as_bool(copy_vecattrs, "copy_vecattrs")
        vocab, seen = [], set()
        for i, key in enumerate(keys):
            if not isinstance(key, str):
                raise TypeError(f"keys must hold str; item {i} is {type(key).__name__} {key!r}")
            if key not in seen:
                seen.add(key)
                if key in present:
                    vocab.append(key)
        rows = np.fromiter((self.key_to_index.get(key, -1) for key in vocab), np.int64,
                           len(vocab))
        vectors = self._vectors[np.maximum(rows, 0)] if len(self) else \
            np.empty((len(vocab), self.vector_size), np.float32)
        for i in np.flatnonzero(rows < 0).tolist():          # composed by a subclass
            vectors[i] = self.get_vector(vocab[i])
        kv = KeyedVectors(vectors, vocab, counts=np.arange(len(vocab), 0, -1, dtype=np.int64))
        if copy_vecattrs:       # (composed keys have no attributes: they keep 0)
            known = rows >= 0
            for attr, values in self.expandos.items():
                copied = np.zeros(len(vocab), values.dtype)
                copied[known] = values[rows[known]]
                if attr == "count":
                    copied[~known] = kv.counts[~known]        # gensim's made-up counts stay
                kv.expandos[attr] = copied
        return kv

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

    def unit_normalize_all(self):
        """Scale every vector to unit length, in place (zero vectors stay zero).

        As in gensim, the original lengths are lost, and the array is changed where it lives
        (a trainer's matrix too).

        Raises
        ------
        ValueError
            If the vectors are read-only.
        """
        self._check_writable("unit_normalize_all")
        self.fill_norms()
        norms = self.norms
        self._vectors /= np.where(norms > 0, norms, np.float32(1.0))[:, None]
        self._normed = None
        self.norms = (norms > 0).astype(np.float32)

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

    def _top(self, dists, topn, exclude):
        """The ``topn`` best ``(key, score)`` pairs of ``dists`` (scores of the first rows),
        best first (ties in index order), leaving out the rows in ``exclude``."""
        end = dists.shape[0]
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
        mean = _unit(mean)
        end = len(self) if restrict_vocab is None else min(restrict_vocab, len(self))
        dists = normed[:end] @ mean
        if topn is None:
            return dists
        return self._top(dists, topn, exclude)

    def similar_by_key(self, key, topn=10, restrict_vocab=None):
        """The keys nearest (by cosine) to ``key``: ``most_similar(positive=[key], ...)``.

        Parameters
        ----------
        key : str
        topn : int or None, optional
            Number of results; ``None`` returns the similarities to all (restricted) keys.
        restrict_vocab : int, optional
            Search only the first ``restrict_vocab`` rows.

        Returns
        -------
        list of (str, float), or ndarray with ``topn=None``
            As :meth:`most_similar`; ``key`` itself is left out.
        """
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, got {type(key).__name__} {key!r}")
        return self.most_similar(positive=[key], topn=topn, restrict_vocab=restrict_vocab)

    def similar_by_word(self, word, topn=10, restrict_vocab=None):
        """gensim's older name of :meth:`similar_by_key`.

        Parameters
        ----------
        word : str
        topn : int or None, optional
        restrict_vocab : int, optional

        Returns
        -------
        list of (str, float), or ndarray with ``topn=None``
        """
        return self.similar_by_key(word, topn, restrict_vocab)

    def similar_by_vector(self, vector, topn=10, restrict_vocab=None):
        """The keys nearest (by cosine) to a vector: ``most_similar(positive=[vector], ...)``.

        Parameters
        ----------
        vector : array_like of shape (dim,)
        topn : int or None, optional
            Number of results; ``None`` returns the similarities to all (restricted) keys.
        restrict_vocab : int, optional
            Search only the first ``restrict_vocab`` rows.

        Returns
        -------
        list of (str, float), or ndarray with ``topn=None``
            As :meth:`most_similar`; no key is left out (a key whose vector this is comes
            first).
        """
        vector = as_float_array(vector, "vector", ndim=1)
        return self.most_similar(positive=[vector], topn=topn, restrict_vocab=restrict_vocab)

    def most_similar_cosmul(self, positive=None, negative=None, topn=10, restrict_vocab=None):
        """The keys nearest to the given ones by Levy and Goldberg's multiplicative objective
        (3CosMul), as gensim computes it.

        Each cosine is shifted to [0, 1] as ``(1 + cos) / 2``; the score of a key is the
        product of its shifted cosines with the ``positive`` items divided by (the product of
        those with the ``negative`` items + 1e-6). With one positive key the ranking is that of
        :meth:`most_similar`. The input keys are left out of the answer.

        Parameters
        ----------
        positive, negative : str, ndarray of shape (dim,), or list of those, optional
            Keys (their unit vectors are used) or vectors (used as given: not normalised, as
            in gensim). Unlike :meth:`most_similar`, no ``(key, weight)`` pairs.
        topn : int or None, optional
            Number of results; ``None`` returns the scores of all (restricted) keys.
        restrict_vocab : int, optional
            Search only the first ``restrict_vocab`` rows (gensim 4.4 takes the argument but
            searches every row).

        Returns
        -------
        list of (str, float)
            At most ``topn`` pairs, best first. With ``topn=None``: an ndarray of shape
            (min(N, restrict_vocab),) of scores.

        Raises
        ------
        KeyError
            For an unknown key (the message names it).
        ValueError
            If ``positive`` is empty or a vector has the wrong shape.
        """
        if topn is not None:
            topn = as_int(topn, "topn")
            if topn < 1:
                return []
        restrict_vocab = _as_optional_restrict(restrict_vocab, "restrict_vocab")
        exclude = set()
        pos = self._cosmul_columns(positive, "positive", exclude)
        neg = self._cosmul_columns(negative, "negative", exclude)
        if not pos:
            raise ValueError("most_similar_cosmul needs at least one key or vector in positive")
        end = len(self) if restrict_vocab is None else min(restrict_vocab, len(self))
        normed = self.get_normed_vectors()[:end]
        shifted = (1 + normed @ np.stack(pos + neg, axis=1)) / 2    # (end, items), in [0, 1]
        dists = (np.prod(shifted[:, :len(pos)], axis=1)
                 / (np.prod(shifted[:, len(pos):], axis=1) + np.float32(1e-6)))
        if topn is None:
            return dists
        return self._top(dists, topn, exclude)

    def _cosmul_columns(self, items, name, exclude):
        """The vectors of ``most_similar_cosmul``'s ``positive`` or ``negative`` items: unit
        vectors of keys (whose rows go into ``exclude``), vectors as given."""
        normed = self.get_normed_vectors()
        columns = []
        for item in _as_items(items):
            if isinstance(item, str):
                index = self.key_to_index.get(item)
                if index is None:   # KeyError naming it, or a subclass's composed vector
                    columns.append(self.get_vector(item, norm=True))
                    continue
                exclude.add(index)
                columns.append(normed[index])
            elif isinstance(item, np.ndarray):
                if item.shape != (self.vector_size,):
                    raise ValueError(f"vectors in {name} must have shape ({self.vector_size},),"
                                     f" got {item.shape}")
                columns.append(as_float_array(item, name).astype(np.float32, copy=False))
            else:
                raise TypeError(f"{name} items must be str keys or vectors, got "
                                f"{type(item).__name__} {item!r}")
        return columns

    def most_similar_to_given(self, key1, keys_list):
        """The key of ``keys_list`` most similar (by cosine) to ``key1``.

        Parameters
        ----------
        key1 : str
        keys_list : list of str
            Candidates; the first of equally similar ones wins.

        Returns
        -------
        str

        Raises
        ------
        KeyError
            For an unknown key (the message names it).
        ValueError
            If ``keys_list`` is empty.
        """
        if isinstance(keys_list, str):
            raise TypeError(f"keys_list must be a list of str, got a single str {keys_list!r}")
        keys_list = list(keys_list)
        if not keys_list:
            raise ValueError("keys_list must not be empty")
        index = self.key_to_index.get(key1)
        rows = [self.key_to_index.get(key) for key in keys_list]
        if index is None or None in rows:    # KeyError naming it, or a subclass's vectors
            sims = np.array([self.similarity(key1, key) for key in keys_list])
        else:
            normed = self.get_normed_vectors()
            sims = normed[rows] @ normed[index]
            sims[np.asarray(rows) == index] = self._self_similarity(index)
        return keys_list[int(np.argmax(sims))]

    def _self_similarity(self, index):
        """The cosine of a key with itself: exactly 1 (0 for a zero vector), not a rounding
        of it, so that ``distance(w, w) == 0`` and ``rank(w, w) == 1``."""
        self.fill_norms()
        return 1.0 if self.norms[index] > 0 else 0.0

    def similarity(self, w1, w2):
        """Cosine similarity between the vectors of two keys (0.0 if one is all zeros).

        Parameters
        ----------
        w1, w2 : str

        Returns
        -------
        float
            Exactly 1.0 for a key with itself (unless its vector is zero).
        """
        i1 = self.key_to_index.get(w1) if isinstance(w1, str) else None
        i2 = self.key_to_index.get(w2) if isinstance(w2, str) else None
        if i1 is None or i2 is None:    # KeyError naming it, or a subclass's composed vector
            return float(self.get_vector(w1, norm=True) @ self.get_vector(w2, norm=True))
        if i1 == i2:
            return self._self_similarity(i1)
        normed = self.get_normed_vectors()
        return float(normed[i1] @ normed[i2])

    def distance(self, w1, w2):
        """Cosine distance between the vectors of two keys: ``1 - similarity(w1, w2)``.

        Parameters
        ----------
        w1, w2 : str

        Returns
        -------
        float
            In [0, 2]; exactly 0.0 for a key with itself.
        """
        return 1.0 - self.similarity(w1, w2)

    def distances(self, word_or_vector, other_words=()):
        """Cosine distances from a key or a vector to the given keys, or to every key.

        Parameters
        ----------
        word_or_vector : str or array_like of shape (dim,)
        other_words : list of str, optional
            Empty (the default) or None: every key, in index order (``word_or_vector``
            itself included, at distance 0).

        Returns
        -------
        ndarray of shape (len(other_words),) or (N,), float32
            ``1 - cos``; 1 where a vector is zero (gensim: NaN).

        Raises
        ------
        KeyError
            For an unknown key (the message names it).
        """
        normed = self.get_normed_vectors()
        index = None
        if isinstance(word_or_vector, str):
            index = self.key_to_index.get(word_or_vector)
            # KeyError naming an unknown key, or a subclass's composed vector
            unit = normed[index] if index is not None else \
                _unit(self.get_vector(word_or_vector))
        else:
            vector = as_float_array(word_or_vector, "word_or_vector", ndim=1)
            if vector.shape != (self.vector_size,):
                raise ValueError(f"word_or_vector must be a key or a vector of shape "
                                 f"({self.vector_size},), got shape {vector.shape}")
            unit = _unit(vector)
        rows = self._indices(() if other_words is None else other_words, "other_words")
        if rows:
            rows = np.asarray(rows, np.int64)
            sims = normed[rows] @ unit
            if index is not None:
                sims[rows == index] = self._self_similarity(index)
        else:
            sims = normed @ unit
            if index is not None:
                sims[index] = self._self_similarity(index)
        return (1 - sims).astype(np.float32, copy=False)

    @staticmethod
    def cosine_similarities(vector_1, vectors_all):
        """Cosine similarities between one vector and each row of a matrix.

        Parameters
        ----------
        vector_1 : array_like of shape (dim,)
        vectors_all : array_like of shape (n, dim)

        Returns
        -------
        ndarray of shape (n,)
            0 where a vector is zero (gensim: NaN); float32 for float32 inputs.
        """
        vector_1 = as_float_array(vector_1, "vector_1", ndim=1)
        vectors_all = as_float_array(vectors_all, "vectors_all", ndim=2)
        if vectors_all.shape[1] != vector_1.shape[0]:
            raise ValueError(f"vectors_all must have {vector_1.shape[0]} columns like "
                             f"vector_1, got shape {vectors_all.shape}")
        lengths = np.linalg.norm(vectors_all, axis=1) * np.linalg.norm(vector_1)
        safe = np.where(lengths > 0, lengths, 1)
        return np.where(lengths > 0, (vectors_all @ vector_1) / safe, 0).astype(
            np.result_type(vector_1, vectors_all), copy=False)

    def _closer(self, key1, key2):
        """Mask of the keys closer (by cosine distance) to ``key1`` than ``key2`` is."""
        i1, i2 = self.get_index(key1), self.get_index(key2)
        dists = self.distances(key1)
        mask = dists < dists[i2]
        mask[i1] = False
        return mask

    def closer_than(self, key1, key2):
        """The keys closer to ``key1`` than ``key2`` is (``key1`` itself left out).

        Parameters
        ----------
        key1, key2 : str

        Returns
        -------
        list of str
            In index order; empty when ``key2`` is ``key1``.
        """
        return [self.index_to_key[i] for i in np.flatnonzero(self._closer(key1, key2)).tolist()]

    def rank(self, key1, key2):
        """The rank of ``key2`` among the keys by distance from ``key1``:
        ``len(closer_than(key1, key2)) + 1``.

        Parameters
        ----------
        key1, key2 : str

        Returns
        -------
        int
            1 for the nearest key, and for ``key1`` itself.
        """
        return int(np.count_nonzero(self._closer(key1, key2))) + 1

    def relative_cosine_similarity(self, wa, wb, topn=10):
        """Relative cosine similarity of Leeuwenberg et al.: ``similarity(wa, wb)`` divided
        by the sum of the similarities of the ``topn`` keys nearest ``wa``.

        Parameters
        ----------
        wa, wb : str
        topn : int, default 10

        Returns
        -------
        float
            Above ``1 / topn``, ``wb`` is nearer ``wa`` than an average one of its ``topn``
            nearest keys.

        Raises
        ------
        ValueError
            If ``wa`` has no other key to compare with, or its nearest similarities sum to 0.
        """
        topn = as_int(topn, "topn", minimum=1)
        sims = self.similar_by_key(wa, topn)
        if not sims:
            raise ValueError(f"relative_cosine_similarity needs keys other than {wa!r}")
        total = sum(sim for _, sim in sims)
        if total == 0:
            raise ValueError(f"the {len(sims)} keys nearest {wa!r} have similarities summing "
                             "to 0")
        return self.similarity(wa, wb) / total

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

    def save_word2vec_format(self, path, fvocab=None, binary=False, write_header=True):
        """Write the vectors in the C word2vec text or binary format, in index order.

        The bytes are those gensim 4.4 writes: a ``"N dim\\n"`` header, then per key either
        ``key v1 v2 ...\\n`` with each float32 in its shortest round-trip decimal form (text)
        or ``key `` followed by dim little-endian float32 (binary, no newline).
        Paths ending in ``.gz``, ``.bz2`` or ``.xz`` are compressed. The file is written
        under a temporary name and renamed over ``path`` when complete, so an existing file is
        either replaced whole or, if writing fails (a full disk), left as it was. (gensim
        writes the keys in descending order of count when it has counts: the same order for
        vectors that are sorted by frequency, as trained or loaded ones are.)

        Parameters
        ----------
        path : str or os.PathLike
        fvocab : str or os.PathLike, optional
            Also write the counts there, one ``key count`` line per key (word2vec.c's
            ``-save-vocab`` file; read back with ``load_word2vec_format(..., fvocab=...)``).
        binary : bool, optional
        write_header : bool, optional
            ``False`` omits the header line (GloVe-style text; read it back with
            ``load_word2vec_format(..., no_header=True)``).

        Raises
        ------
        ValueError
            If a key is empty or contains whitespace that the format cannot represent, or
            ``fvocab`` is given but there are no counts.
        """
        binary = as_bool(binary, "binary")
        write_header = as_bool(write_header, "write_header")
        counts = None
        if fvocab is not None:
            if not isinstance(fvocab, (str, os.PathLike)):
                raise TypeError(f"fvocab must be a path, got {type(fvocab).__name__} "
                                f"{fvocab!r} (binary is the third argument, as in gensim)")
            counts = self._check_counts(self.counts, len(self))
            if counts is None:
                raise ValueError("fvocab needs counts to write; these vectors have none")
        write_word2vec_format(path, self.index_to_key, self._vectors, binary, write_header)
        if counts is not None:
            write_vocab(fvocab, self.index_to_key, counts)

    @classmethod
    def load_word2vec_format(cls, path, fvocab=None, binary=None, encoding="utf8",
                             unicode_errors="strict", limit=None, datatype=np.float32,
                             no_header=False):
        """Read a C word2vec text or binary file (as written by word2vec.c or gensim).

        Parameters
        ----------
        path : str or os.PathLike
            ``.gz``, ``.bz2`` and ``.xz`` files are decompressed on the fly.
        fvocab : str or os.PathLike, optional
            word2vec.c's ``-save-vocab`` file (``key count`` lines) to take the counts from;
            a key it does not list gets count 0, with a warning.
        binary : bool, optional
            None (the default) reads the format from the file's first record: its values
            are either raw float32 or decimal text. True or False states the format, and a
            file of the other one is refused rather than misread.
        encoding : str, optional
            Encoding of the keys (and of ``fvocab``).
        unicode_errors : str, optional
            ``errors`` for decoding keys: ``"ignore"`` or ``"replace"`` help with files whose
            keys were cut in the middle of a multi-byte character by word2vec.c.
        limit : int, optional
            Read only the first ``limit`` vectors (the rest of the file is not read).
        datatype : numpy dtype, optional
            Only float32 is accepted: the vectors are always float32 (gensim can store
            float16 or float64).
        no_header : bool, optional
            Text files without the ``"N dim"`` first line (GloVe); the file is read twice.

        Returns
        -------
        KeyedVectors
            Without ``fvocab``, ``counts`` are made up as R, R-1, ..., for the R records read
            (the format stores none; gensim does the same, so that the file's order is the
            frequency order). A key that occurs twice keeps its first vector (with a
            warning), as in gensim.

        Raises
        ------
        ValueError
            If the file is not in the format (the message gives the path and the line or
            record), ends before the header's count, holds an empty key or (binary) a key
            with a newline, which the format cannot store. The header's size is checked
            against the file's before anything is allocated: an uncompressed file too small
            for the vectors the header declares is refused at once; a compressed one is read
            with arrays that grow as vectors arrive.
        UnicodeDecodeError
            (a ``ValueError``) If a key does not decode; the message names the file, the line
            or record, and the key.
        """
        if fvocab is not None and not isinstance(fvocab, (str, os.PathLike)):
            raise TypeError(f"fvocab must be a path, got {type(fvocab).__name__} {fvocab!r} "
                            "(binary is the third argument, as in gensim)")
        binary = None if binary is None else as_bool(binary, "binary")
        no_header = as_bool(no_header, "no_header")
        if limit is not None:
            limit = as_int(limit, "limit", minimum=1)
        _check_float32(datatype, "datatype")
        if no_header and binary:
            raise ValueError("no_header=True is only supported for text files (binary=False)")
        listed = None if fvocab is None else read_vocab(fvocab, encoding, unicode_errors)
        vectors, keys, n_read = read_word2vec_format(path, binary, limit, encoding,
                                                     unicode_errors, no_header)
        if listed is None:
            counts = np.arange(n_read, n_read - len(keys), -1, dtype=np.int64)
        else:
            counts = np.fromiter((listed.get(key, -1) for key in keys), np.int64, len(keys))
            missing = counts < 0
            if missing.any():
                logger.warning("%s lists no count for %d of the keys (%r first); they get "
                               "count 0", os.fspath(fvocab), int(missing.sum()),
                               keys[int(np.argmax(missing))])
                counts[missing] = 0
        return cls(vectors, keys, counts)

    # ------------------------------------------------------------------ npz persistence

    def save(self, path):
        """Save to one ``.npz`` file (arrays plus a JSON member for the keys; no pickle).

        The file holds the keys, the vectors and the counts; other per-key attributes
        (:meth:`set_vecattr`) are not saved.

        ``path`` is used as given (no ``.npz`` suffix is added). The file is written under a
        temporary name and renamed over ``path`` when complete, so an existing file is
        either replaced whole or, if writing fails (a full disk), left as it was.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (replaced if it exists).
        """
        write_npz(path, self.index_to_key, self._vectors,
                  self._check_counts(self.counts, len(self)))

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
