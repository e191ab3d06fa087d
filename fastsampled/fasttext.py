"""FastText: word vectors with character n-gram subwords, compatible with fastText's files.

:class:`FastText` has gensim's ``FastText`` interface and :class:`~fastsampled.Word2Vec`'s
machinery (corpus scan and encoding, subsampling, negatives from ``count ** ns_exponent``,
blocks, learning-rate schedules, Hogwild threads, counter-based random streams); the training
kernels are in ``fastsampled._ft_kernels`` and fastText's ``.bin`` format in
``fastsampled._ftformat``.

What a model holds (fastText's layout):

* the input matrix: one row per vocabulary word (``vectors_vocab``), then the rows of the
  n-gram buckets (``vectors_ngrams``; in RAM, or memory-mapped in a
  :class:`~fastsampled.ShardedMatrix`
  with ``path=``);
* the output matrix ``syn1neg``, one row per word.

Of fastText's ``bucket`` n-gram rows, a model trained here stores only those the n-grams of
its vocabulary hash to (``ngram_buckets``: the bucket id of each row): the others never
receive a gradient and start at zero, so they stay zero, and storing them would cost memory
(and cache) for nothing. The rows are in order of first use by the vocabulary sorted by
frequency, so the n-grams of frequent words, which training reads most, share cache lines and
pages. A model read from a fastText file keeps all ``bucket`` rows
(``ngram_buckets`` is None). Either way the vectors are those of fastText's full matrix, and
:meth:`FastText.save_facebook_model` writes the full matrix.

The vector of a word is the mean of its rows: its own row (in-vocabulary words only) and the
rows of the n-grams of ``"<word>"`` with ``min_n .. max_n`` characters. Hashing follows
fastText exactly (see ``_ft_kernels``), so a model read from a fastText ``.bin`` gives the
vectors fastText gives, for any word, and a model written here loads in fastText.
"""
import json
import logging
import os

import numpy as np

from ._errors import StoreError
from ._ft_kernels import (compose_vectors, distinct_rows, first_seen, init_uniform,
                          train_blocks)
from ._ftformat import (EOS, LOSS_NS, MODEL_CBOW, MODEL_SG, check_int32, read_facebook_bin,
                        subword_rows, write_facebook_bin)
from ._modelfiles import NpzReader, replacing
from ._validate import as_int
from .keyedvectors import KeyedVectors
from .word2vec import Word2Vec

__all__ = ["FastText", "FastTextKeyedVectors", "load_facebook_model"]

logger = logging.getLogger(__name__)

_FORMAT = "fastsampled.fasttext/1"
# The constructor arguments a saved model records, and the JSON type each must have.
_SAVED = {"vector_size": "int", "window": "int", "min_count": "int",
          "max_final_vocab": "int or null", "sample": "number", "sg": "int", "negative": "int",
          "ns_exponent": "number", "loss": "str", "num_sampled": "int", "epochs": "int",
          "alpha": "number", "min_alpha": "number", "workers": "int", "cbow_mean": "int",
          "progress": "bool", "batch_words": "int", "corpus_in_memory": "bool",
          "lr_schedule": "str", "min_n": "int", "max_n": "int", "bucket": "int"}


def _json_kind(value, kind):
    is_int = type(value) is int and -(1 << 63) <= value < (1 << 63)
    return {"int": is_int, "int or null": value is None or is_int,
            "number": type(value) is float or (type(value) is int and abs(value) < (1 << 1000)),
            "str": type(value) is str, "bool": type(value) is bool}[kind]


def _check_saved_meta(meta, path):
    """The JSON header of a :meth:`FastText.save` file, every field checked for its type and
    range: ``(params, seed, index_to_key, key_to_index)``; StoreError naming the field."""
    def fail(field, message):
        return StoreError(f"{path}: field {field!r} {message}")

    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise StoreError(f"{path}: not a file written by FastText.save (its 'format' is "
                         f"{got!r}, expected {_FORMAT!r})")
    for field in ("params", "seed", "index_to_key", "corpus_total_words",
                  "running_training_loss", "epoch_losses"):
        if field not in meta:
            raise fail(field, "is missing")
    params = meta["params"]
    if not isinstance(params, dict):
        raise fail("params", "must be a JSON object")
    for name, value in params.items():
        if name not in _SAVED:
            raise fail("params", f"holds an unknown parameter {name!r}")
        if not _json_kind(value, _SAVED[name]):
            raise fail("params", f"holds {name!r} = {value!r}; expected {_SAVED[name]}")
    seed = meta["seed"]
    if type(seed) is not int or not 0 <= seed < (1 << 64):
        raise fail("seed", f"must be an integer in [0, 2**64), got {seed!r}")
    keys = meta["index_to_key"]
    if not isinstance(keys, list) or not keys or not all(type(k) is str for k in keys):
        raise fail("index_to_key", "must be a non-empty list of str")
    key_to_index = {k: i for i, k in enumerate(keys)}
    if len(key_to_index) != len(keys):
        raise fail("index_to_key", "holds a word twice")
    if not _json_kind(meta["corpus_total_words"], "int") or meta["corpus_total_words"] < 0:
        raise fail("corpus_total_words", "must be an integer >= 0")
    if not _json_kind(meta["running_training_loss"], "number"):
        raise fail("running_training_loss", "must be a number")
    losses = meta["epoch_losses"]
    if not isinstance(losses, list) or not all(_json_kind(x, "number") for x in losses):
        raise fail("epoch_losses", "must be a list of numbers")
    return params, seed, keys, key_to_index


def _first_nonfinite(arr, block=1 << 18):
    """``(row, column)`` of the first NaN or infinity of a 2-D array, or None (a block of rows
    at a time, so the mask stays small)."""
    rows = max(1, block // max(arr.shape[1], 1))
    for lo in range(0, arr.shape[0], rows):
        bad = ~np.isfinite(arr[lo:lo + rows])
        if bad.any():
            i, j = np.argwhere(bad)[0]
            return lo + int(i), int(j)
    return None
_MAX_BUCKET = (1 << 31) - 1


class FastTextKeyedVectors(KeyedVectors):
    """Word vectors that also compose a vector for any word from its character n-grams.

    ``vectors`` (and every method of :class:`~fastsampled.KeyedVectors`: evaluations,
    ``most_similar`` rankings, files) covers the vocabulary, each word's vector composed as
    fastText does (the mean of its own row and its n-grams' rows). :meth:`get_vector` and
    ``kv[word]`` also answer words outside the vocabulary, from their n-grams alone (a zero
    vector when the word has none); so do :meth:`most_similar` (for the query words) and
    :meth:`similarity`.

    Parameters
    ----------
    vectors : array_like of shape (N, dim)
        The composed vectors of the vocabulary.
    index_to_key : sequence of str, length N
    counts : array_like of shape (N,), optional
    min_n, max_n : int
        N-gram lengths, in characters.
    bucket : int
        Number of n-gram buckets.
    vectors_ngrams : ndarray of shape (rows, dim), float32
        The rows of the n-gram buckets (kept by reference).
    ngram_buckets : ndarray of shape (rows,), int64, optional
        The bucket of each row (distinct); buckets without a row are zero. None: ``rows ==
        bucket``, row ``i`` is bucket ``i``.
    """

    def __init__(self, vectors, index_to_key, counts=None, *, min_n=3, max_n=6, bucket=0,
                 vectors_ngrams=None, ngram_buckets=None):
        super().__init__(vectors, index_to_key, counts)
        self.min_n = as_int(min_n, "min_n", 0)
        self.max_n = as_int(max_n, "max_n", 0)
        self.bucket = as_int(bucket, "bucket", 0)
        if vectors_ngrams is None:
            vectors_ngrams = np.zeros((0, self.vector_size), np.float32)
            ngram_buckets = np.zeros(0, np.int64)
        rows = self.bucket if ngram_buckets is None else len(ngram_buckets)
        if not isinstance(vectors_ngrams, np.ndarray) or vectors_ngrams.dtype != np.float32 \
                or vectors_ngrams.shape != (rows, self.vector_size):
            raise ValueError(f"vectors_ngrams must be a float32 array of shape ({rows}, "
                             f"{self.vector_size}), got "
                             f"{getattr(vectors_ngrams, 'shape', type(vectors_ngrams).__name__)}")
        if self.max_n > 0 and self.bucket < 1:
            raise ValueError("bucket must be >= 1 when max_n > 0")
        self.vectors_ngrams = vectors_ngrams
        self.ngram_buckets = ngram_buckets
        self._bucket_index = bucket_index(ngram_buckets)

    def __repr__(self):
        return (f"FastTextKeyedVectors<vector_size={self.vector_size}, {len(self)} keys, "
                f"bucket={self.bucket}, n-grams {self.min_n}..{self.max_n}>")

    def __contains__(self, key):
        """True for a vocabulary word, and for any word with at least one n-gram (a vector
        can be composed for it), as gensim's ``FastTextKeyedVectors``."""
        if not isinstance(key, str):
            return False
        return key in self.key_to_index or self._ngram_rows(key).size > 0

    def has_index_for(self, key):
        """Whether ``key`` is a vocabulary word (has its own row).

        Parameters
        ----------
        key : str

        Returns
        -------
        bool
        """
        return isinstance(key, str) and key in self.key_to_index

    def _ngram_rows(self, word):
        """Rows of ``vectors_ngrams`` of the n-grams of ``word`` (-1: a bucket without a
        row, i.e. zero)."""
        if self.max_n == 0 or word == EOS:
            return np.zeros(0, np.int64)
        _, idx = subword_rows([word], self.min_n, self.max_n, self.bucket, 0, [-1])
        return bucket_rows(idx, self._bucket_index)

    def get_vector(self, key, norm=False):
        """The vector of any word.

        Parameters
        ----------
        key : str
            A vocabulary word (its composed vector) or any other word (the mean of its
            n-grams' rows; zeros when it has no n-gram).
        norm : bool, default False
            Return the unit-length vector (a zero vector stays zero).

        Returns
        -------
        ndarray of float32, shape (dim,)
        """
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, got {type(key).__name__} {key!r}")
        if key in self.key_to_index:
            return super().get_vector(key, norm=norm)
        rows = self._ngram_rows(key)
        vec = np.zeros(self.vector_size, np.float32)
        for r in rows.tolist():
            if r >= 0:
                vec += self.vectors_ngrams[r]
        if rows.size:
            vec *= np.float32(1.0 / rows.size)
        if norm:
            length = np.linalg.norm(vec)
            if length > 0:
                vec = (vec / length).astype(np.float32)
        return vec

    def __getitem__(self, key_or_keys):
        """``kv["w"]`` -> (dim,); ``kv[["a", "b"]]`` -> (2, dim); any word."""
        if isinstance(key_or_keys, str):
            return self.get_vector(key_or_keys)
        if isinstance(key_or_keys, (list, tuple, np.ndarray)):
            out = np.empty((len(key_or_keys), self.vector_size), np.float32)
            for i, k in enumerate(key_or_keys):
                out[i] = self.get_vector(k)
            return out
        raise TypeError(f"key must be a str or a list of str, got {type(key_or_keys).__name__}")

    def _oov_as_vector(self, items):
        if items is None:
            return None
        if isinstance(items, str) or (isinstance(items, np.ndarray) and items.ndim == 1):
            items = [items]
        elif isinstance(items, np.ndarray):
            return items
        out = []
        for item in items:
            if isinstance(item, str) and item not in self.key_to_index:
                item = self.get_vector(item)
            elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) \
                    and item[0] not in self.key_to_index:
                item = (self.get_vector(item[0]), item[1])
            out.append(item)
        return out

    def most_similar(self, positive=None, negative=None, topn=10, restrict_vocab=None):
        """The vocabulary words nearest to a combination of words, as
        :meth:`KeyedVectors.most_similar`; words outside the vocabulary are allowed in
        ``positive`` / ``negative`` (their n-gram vectors are used, as gensim does).

        Parameters
        ----------
        positive, negative : str, ndarray of shape (dim,), or list of those, optional
        topn : int or None
        restrict_vocab : int, optional

        Returns
        -------
        list of (str, float)
        """
        return super().most_similar(self._oov_as_vector(positive),
                                    self._oov_as_vector(negative), topn, restrict_vocab)

    def similarity(self, w1, w2):
        """Cosine similarity of the vectors of two words, either of them possibly outside
        the vocabulary.

        Parameters
        ----------
        w1, w2 : str

        Returns
        -------
        float
            0.0 when one of the vectors is zero.
        """
        a = self.get_vector(w1, norm=True)
        b = self.get_vector(w2, norm=True)
        return float(a @ b)

    @classmethod
    def load(cls, path):
        """Read what :meth:`save` wrote: the vocabulary's vectors.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        KeyedVectors
            A plain :class:`~fastsampled.KeyedVectors`: ``save`` keeps the vocabulary's
            vectors only (the n-gram rows are saved with the model, :meth:`FastText.save`).
        """
        return KeyedVectors.load(path)


def bucket_index(ngram_buckets):
    """``(sorted bucket ids, their rows)`` for :func:`bucket_rows`; None for None (every
    bucket has the row of its own number)."""
    if ngram_buckets is None:
        return None
    order = np.argsort(ngram_buckets, kind="stable")
    return ngram_buckets[order], order


def bucket_rows(buckets, index):
    """Row of each bucket id through ``index`` (:func:`bucket_index`), -1 for a bucket
    without a row."""
    buckets = np.asarray(buckets, np.int64)
    if index is None:
        return buckets
    srt, order = index
    if srt.size == 0:
        return np.full(buckets.shape, -1, np.int64)
    pos = np.minimum(np.searchsorted(srt, buckets), srt.size - 1)
    return np.where(srt[pos] == buckets, order[pos], -1)


def _input_store(path, rows, dim, overwrite):
    from .sharding import ShardedMatrix
    return ShardedMatrix.create(path, rows, dim, num_shards=1, init="zeros",
                                durability="none", overwrite=overwrite,
                                extra={"fastsampled": "fasttext input matrix"})


class FastText(Word2Vec):
    """FastText word vectors (skip-gram or CBOW with character n-grams), gensim's interface.

    Parameters
    ----------
    sentences, corpus_file, vector_size, window, min_count, max_final_vocab, sample, sg, \
negative, ns_exponent, epochs, alpha, min_alpha, workers, seed, progress, batch_words, \
corpus_in_memory, lr_schedule, num_sampled, cbow_mean
        As :class:`~fastsampled.Word2Vec` (``sg=0``, CBOW, by default, as gensim's
        ``FastText``).
    loss : {"negative_sampling"}
        The only objective.
    min_n, max_n : int
        Lengths, in characters (Unicode code points), of the n-grams of ``"<word>"``; 0 for
        ``max_n`` trains plain word vectors.
    bucket : int
        Buckets the n-grams are hashed into (fastText's ``-bucket``), at most 2**31 - 1.
        Only the buckets the vocabulary's n-grams use get a row (see the module docstring).
    path : str or os.PathLike, optional
        Keep the input matrix (word rows and n-gram rows) in a memory-mapped
        :class:`~fastsampled.ShardedMatrix` at this directory (created by
        :meth:`build_vocab`) instead of RAM; the kernels update it in place and
        :meth:`train` ends with a checkpoint.
    overwrite : bool
        Let :meth:`build_vocab` replace a store already at ``path``.

    Notes
    -----
    The defaults are gensim's (``vector_size=100``, ``window=5``, ``min_count=5``,
    ``sample=1e-3``, ``negative=5``, ``epochs=5``, ``sg=0``, ``min_n=3``, ``max_n=6``,
    ``bucket=2_000_000``) but for the initial learning rate: ``alpha=None`` is 0.05 for CBOW
    and 0.035 for skip-gram (:meth:`default_alpha`; gensim starts both at 0.025, fastText's
    own tool at 0.05): against gensim's defaults, CBOW scored higher on analogies and
    wordsim353, skip-gram higher on wordsim353 and within 0.003 on analogies
    (docs/word2vec.md#speed-and-quality). fastText's tool also uses ``sample=1e-4`` and
    ``ns_exponent=0.5``.

    Training: the input vector of a word is the mean of its input rows and the gradient is
    added to each of them, as fastText does; skip-gram predicts each context word from the
    centre word (negatives drawn per context word), CBOW the centre word from the mean of
    all rows of the context words. One worker and a seed give bit-identical vectors.

    Examples
    --------
    >>> import fastsampled as fs
    >>> sents = [["the", "cat", "sat"], ["the", "dog", "sat"]] * 50
    >>> m = fs.FastText(sentences=sents, vector_size=8, min_count=1, bucket=1000, epochs=2,
    ...                 workers=1, progress=False)
    >>> m.wv["cats"].shape                     # a word outside the vocabulary
    (8,)
    """

    # the initial learning rate that alpha=None stands for (Word2Vec.default_alpha), by sg
    _DEFAULT_ALPHA = {1: 0.035, 0: 0.05}

    def __init__(self, sentences=None, corpus_file=None, vector_size=100, window=5,
                 min_count=5, max_final_vocab=None, sample=1e-3, sg=0, negative=5,
                 ns_exponent=0.75, epochs=5, alpha=None, min_alpha=1e-4, workers=None,
                 seed=1, progress=True, batch_words=10000, corpus_in_memory=False,
                 lr_schedule="linear", min_n=3, max_n=6, bucket=2_000_000, path=None,
                 overwrite=False, loss="negative_sampling", num_sampled=None, cbow_mean=1):
        if loss != "negative_sampling":
            raise ValueError(f"loss must be 'negative_sampling' for FastText, got {loss!r}")
        self.min_n = as_int(min_n, "min_n", 0)
        self.max_n = as_int(max_n, "max_n", 0)
        if self.max_n > 1024 or self.min_n > 1024:
            raise ValueError(f"min_n and max_n must be <= 1024, got {min_n}, {max_n}")
        self.bucket = as_int(bucket, "bucket", 0)
        if self.bucket > _MAX_BUCKET:
            raise ValueError(f"bucket must be <= {_MAX_BUCKET}, got {bucket}")
        if self.max_n > 0 and self.bucket < 1:
            raise ValueError("bucket must be >= 1 when max_n > 0")
        if path is not None:
            parent = os.path.dirname(os.path.abspath(os.fspath(path)))
            if not os.path.isdir(parent):
                raise ValueError(f"path {os.fspath(path)!r}: the directory {parent!r} does "
                                 "not exist")
        self.path = None if path is None else os.fspath(path)
        self.overwrite = bool(overwrite)
        self.vectors_ngrams = None
        self.ngram_buckets = None
        self._input = None
        self._store = None
        self._indptr = self._indices = None
        super().__init__(sentences=sentences, corpus_file=corpus_file,
                         vector_size=vector_size, window=window, min_count=min_count,
                         max_final_vocab=max_final_vocab, sample=sample, sg=sg,
                         negative=negative, ns_exponent=ns_exponent, epochs=epochs,
                         alpha=alpha, min_alpha=min_alpha, workers=workers, seed=seed,
                         progress=progress, batch_words=batch_words,
                         corpus_in_memory=corpus_in_memory, lr_schedule=lr_schedule,
                         num_sampled=num_sampled, cbow_mean=cbow_mean)

    # ------------------------------------------------------------------ vocabulary
    def build_vocab(self, sentences=None, corpus_file=None):
        """Count the corpus, fix the vocabulary, encode the corpus, hash every word's
        n-grams and initialise the matrices: the words' input rows uniform in ``[-1/dim,
        1/dim)`` (a pure function of the seed and the row), the n-gram rows and the output
        matrix zero. Only the buckets the vocabulary's n-grams hash to get a row (see the
        module docstring), so the memory taken grows with the vocabulary, not ``bucket``.

        Parameters
        ----------
        sentences : iterable of list of str, optional
        corpus_file : str or os.PathLike, optional
            Exactly one of the two, as :meth:`Word2Vec.build_vocab`.
        """
        self._close_store()
        self.vectors_ngrams = None
        super().build_vocab(sentences=sentences, corpus_file=corpus_file)
        n, dim = len(self.index_to_key), self.vector_size
        self.syn0 = None
        indptr, indices = subword_rows(self.index_to_key, self.min_n, self.max_n, self.bucket,
                                       n, np.arange(n))
        # the buckets get rows in the order the vocabulary first uses them
        ng = indices >= n
        used = indices[ng] - n
        rows_of = np.empty(used.size, np.int64)
        distinct = np.empty(used.size, np.int64)
        m = first_seen(used, rows_of, distinct)
        self.ngram_buckets = distinct[:m].copy()
        indices[ng] = n + rows_of
        del used, rows_of, distinct
        rows = n + m
        if self.path is not None:
            self._store = _input_store(self.path, rows, dim, self.overwrite)
            inp = np.asarray(self._store.shards[0])
        else:
            inp = np.zeros((rows, dim), np.float32)
        init_uniform(inp[:n], self._seed64, 0)
        self._set_input(inp)
        self._indptr, self._indices = indptr, indices
        return self

    def _ngram_row_count(self):
        return self.bucket if self.ngram_buckets is None else int(self.ngram_buckets.size)

    def _set_input(self, inp):
        """Use ``inp`` (word rows, then n-gram rows) as the input matrix: ``syn0`` and
        ``vectors_ngrams`` are views of it."""
        n = len(self.index_to_key)
        self._input = inp
        self.syn0 = inp[:n]
        self.vectors_ngrams = inp[n:]

    def _prepare_rows(self):
        """The CSR lists of each word's rows of the input matrix (its own row, then its
        n-grams' rows), from fastText's bucket ids mapped through ``ngram_buckets``."""
        n = len(self.index_to_key)
        indptr, indices = subword_rows(self.index_to_key, self.min_n, self.max_n,
                                       self.bucket, n, np.arange(n))
        ng = indices >= n
        rows = bucket_rows(indices[ng] - n, bucket_index(self.ngram_buckets))
        if rows.size and rows.min() < 0:
            raise ValueError("ngram_buckets lacks a bucket the vocabulary's n-grams use")
        indices[ng] = n + rows
        self._indptr, self._indices = indptr, indices

    def _close_store(self):
        if self._store is not None:
            self._store.close()
            self._store = None

    def close(self):
        """Close the memory-mapped n-gram store (``path=``) if there is one; the model can no
        longer be trained or queried afterwards."""
        self._close_store()
        self.vectors_ngrams = self.syn0 = self._input = self.ngram_buckets = None
        self._wv = None

    # ------------------------------------------------------------------ training
    # blocks are handed to the threads one at a time as each finishes its last, not split in
    # equal shares up front: a thread slowed by another process then trains fewer blocks
    # instead of making the others wait for it at the end of every group
    _LOG_NAME = "fasttext"
    _PARALLEL_CHUNKSIZE = 1

    def train(self, sentences=None, corpus_file=None, epochs=None):
        """Train (after :meth:`build_vocab`); a new corpus replaces the encoded one.

        Parameters
        ----------
        sentences : iterable of list of str, optional
            A corpus to train on instead of the one ``build_vocab`` encoded (its words
            outside the vocabulary are dropped).
        corpus_file : str or os.PathLike, optional
            The same as a text file, one sentence per line.
        epochs : int, optional
            Passes over the corpus (default: the model's ``epochs``).

        Returns
        -------
        dict
            ``effective_words`` (kept after subsampling), ``raw_words``, ``seconds``,
            ``words_per_s`` (effective) and ``loss`` (summed over the epochs of this call).
        """
        return super().train(sentences=sentences, corpus_file=corpus_file, epochs=epochs)

    def _check_state(self):
        super()._check_state()
        self._check_ft_state()

    def _block_trainer(self):
        # CBOW finds the rows neighbouring words share from each word's distinct rows
        if self.sg:     # skip-gram needs none: empty arrays of the same types
            distinct = distinct_rows(self._indptr[:1], self._indices[:0])
        else:
            distinct = distinct_rows(self._indptr, self._indices)

        def run(stream, sent_off, block_sent, b0, alphas, key, loss_out, eff_out, pairs_out):
            train_blocks(self._input, self.syn1neg, self._indptr, self._indices, distinct,
                         stream, sent_off, block_sent, b0, alphas, self._keep_thr,
                         self._alias.table, self._seed64, key, self.window, self.negative,
                         self.sg, loss_out, eff_out, pairs_out)
        return run

    def _trained(self):
        if self._store is not None:
            self._store.checkpoint()

    def _check_ft_state(self):
        """Raise unless the n-gram rows and the CSR row lists agree with the matrices (the
        kernel indexes them without bounds checks)."""
        n, dim = len(self.index_to_key), self.vector_size
        inp = self._input
        nb = self._ngram_row_count()
        if not isinstance(inp, np.ndarray) or inp.dtype != np.float32 \
                or inp.shape != (n + nb, dim) or not inp.flags.c_contiguous \
                or not inp.flags.writeable:
            raise ValueError(f"the input matrix must be a writable C-contiguous float32 array "
                             f"of shape ({n + nb}, {dim}), got "
                             f"{getattr(inp, 'shape', type(inp).__name__)}")
        base = inp.__array_interface__["data"][0]
        for name, arr, at, rows in (("syn0", self.syn0, 0, n),
                                    ("vectors_ngrams", self.vectors_ngrams, n, nb)):
            ok = isinstance(arr, np.ndarray) and arr.shape == (rows, dim) and (
                rows == 0 or arr.__array_interface__["data"][0] == base + at * dim * 4)
            if not ok:
                raise ValueError(f"{name} must be the view of rows {at} .. {at + rows - 1} of "
                                 "the input matrix (change the model's rows in place)")
        ip, ix = self._indptr, self._indices
        if ip is None or ip.shape != (n + 1,) or ip[0] != 0 or ip[-1] != ix.size \
                or np.any(np.diff(ip) < 1):
            raise ValueError("the n-gram row lists do not match the vocabulary")
        if ix.size and (ix.min() < 0 or ix.max() >= n + nb):
            raise ValueError("the n-gram row lists hold a row beyond the input matrix")

    # ------------------------------------------------------------------ vectors
    @property
    def wv(self):
        """:class:`FastTextKeyedVectors`: composed vectors of the vocabulary, and vectors of
        any other word from its n-grams."""
        if self.syn0 is None:
            raise ValueError("the model has no vocabulary yet: call build_vocab first")
        if self._wv is None:
            out = np.empty_like(self.syn0)
            compose_vectors(self._input, self._indptr, self._indices, out)
            self._wv = FastTextKeyedVectors(out, list(self.index_to_key), counts=self.counts,
                                            min_n=self.min_n, max_n=self.max_n,
                                            bucket=self.bucket,
                                            vectors_ngrams=self.vectors_ngrams,
                                            ngram_buckets=self.ngram_buckets)
        return self._wv

    @property
    def vectors_vocab(self):
        """ndarray (nwords, dim): the words' own rows of the input matrix (gensim's name)."""
        return self.syn0

    # ------------------------------------------------------------------ fastText files
    def _ft_args(self):
        dim = self.vector_size
        return {"dim": dim, "ws": self.window, "epoch": self.epochs,
                "minCount": check_int32(self.min_count, "min_count"),
                "neg": self.negative, "wordNgrams": 1, "loss": LOSS_NS,
                "model": MODEL_SG if self.sg else MODEL_CBOW, "bucket": self.bucket,
                "minn": self.min_n, "maxn": self.max_n, "lrUpdateRate": 100,
                "t": float(self.sample)}

    def save_facebook_model(self, path):
        """Write the model as a fastText ``.bin`` file (``fasttext.load_model`` reads it and
        gives the same vectors for every word).

        The file is written under a temporary name and renamed over ``path`` when complete.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (replaced if it exists).
        """
        if self.syn0 is None:
            raise ValueError("nothing to save: the model has no vocabulary")
        with replacing(path) as f:
            write_facebook_bin(f, self._ft_args(), self.index_to_key, self.counts,
                               self.corpus_total_words, self.syn0, self.vectors_ngrams,
                               bucket_index(self.ngram_buckets), self.bucket, self.syn1neg)

    @classmethod
    def load_facebook_model(cls, path):
        """Read a model written by fastText (``.bin``; also gensim's
        ``save_facebook_model`` and :meth:`save_facebook_model`).

        Parameters
        ----------
        path : str or os.PathLike

        Every field is checked (magic number, version, argument ranges, dictionary sizes,
        matrix shapes against the arguments, finite values, the file's size) before it is
        used; quantised ``.ftz`` and supervised models are refused.

        Returns
        -------
        FastText
            Ready to query (``wv``) or to train further on a corpus (``train(corpus_file=
            ...)``: its words outside the vocabulary are dropped).

        Raises
        ------
        fastsampled.StoreError
            (a ``ValueError``) naming the file and the field when it is not such a model,
            is damaged, quantised or supervised.
        """
        args, words, counts, ntokens, inp, out = read_facebook_bin(path)
        model = cls(vector_size=args["dim"], window=args["ws"], epochs=args["epoch"],
                    min_count=args["minCount"], negative=max(args["neg"], 1),
                    sample=args["t"], sg=int(args["model"] == MODEL_SG),
                    min_n=args["minn"], max_n=args["maxn"], bucket=args["bucket"],
                    progress=False)
        model.index_to_key = words
        model.key_to_index = {w: i for i, w in enumerate(words)}
        model.counts = np.maximum(counts, 1)
        model.corpus_total_words = int(ntokens)
        model.corpus_retained_words = int(counts.sum())
        model.ngram_buckets = None
        model._set_input(inp)
        model.syn1neg = out
        model._ready(path)
        return model

    # ------------------------------------------------------------------ own format
    def save(self, path):
        """Write the model to ``path``: a .npz holding the arrays (n-gram rows included) and
        a JSON header, no pickle; written under a temporary name renamed over ``path``.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (replaced if it exists).
        """
        if self.syn0 is None:
            raise ValueError("nothing to save: the model has no vocabulary")
        params = {k: getattr(self, k) for k in _SAVED}
        meta = {"format": _FORMAT, "params": params,
                "seed": int(self._seed64), "index_to_key": self.index_to_key,
                "corpus_total_words": self.corpus_total_words,
                "running_training_loss": self.running_training_loss,
                "epoch_losses": self.epoch_losses,
                "ngram_rows": None if self.ngram_buckets is None else int(self.ngram_buckets.size)}
        blob = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
        with replacing(path) as f:
            arrays = {} if self.ngram_buckets is None else {"ngram_buckets": self.ngram_buckets}
            np.savez(f, meta=blob, input=self._input, syn1neg=self.syn1neg,
                     counts=self.counts, **arrays)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save` (no pickle; the n-gram rows into RAM).

        The header's fields and every array's header are checked before anything is read,
        as :meth:`Word2Vec.load` does; ``ngram_buckets`` must be distinct and below
        ``bucket``, ``input`` float32 with a row per word and per n-gram bucket row.

        Parameters
        ----------
        path : str or os.PathLike
            A file written by :meth:`save`.

        Returns
        -------
        FastText

        Raises
        ------
        fastsampled.StoreError
            (a ``ValueError``) naming the file and the field or array at fault.
        """
        path_str = os.fspath(path)
        with NpzReader(path_str, "FastText.save") as npz:
            meta = npz.read_json("meta")
            params, seed, keys, key_to_index = _check_saved_meta(meta, path_str)
            try:
                model = cls(seed=seed, **params)
            except (TypeError, ValueError) as exc:
                raise StoreError(f"{path_str}: field 'params': {exc}") from None
            n, dim = len(keys), model.vector_size
            why = f"{n} words in index_to_key, vector_size {dim}"
            nb = meta.get("ngram_rows")
            if nb is None:
                ngram_buckets, nb = None, model.bucket
            elif type(nb) is not int or not 0 <= nb <= model.bucket:
                raise StoreError(f"{path_str}: field 'ngram_rows' must be null or an integer "
                                 f"in [0, bucket = {model.bucket}], got {nb!r}")
            elif nb == 0:
                ngram_buckets = np.zeros(0, np.int64)
            else:
                ngram_buckets = npz.read("ngram_buckets", np.int64, (nb,),
                                         "field 'ngram_rows'")
            if ngram_buckets is not None:
                if nb and (ngram_buckets.min() < 0 or ngram_buckets.max() >= model.bucket
                           or np.unique(ngram_buckets).size != nb):
                    raise StoreError(f"{path_str}: array 'ngram_buckets' must hold distinct "
                                     f"bucket ids in [0, {model.bucket})")
            inp = npz.read("input", np.float32, (n + nb, dim),
                           f"{why}, {nb} n-gram rows")
            syn1neg = npz.read("syn1neg", np.float32, (n, dim), why)
            counts = npz.read("counts", np.int64, (n,), f"{n} words in index_to_key")
        for name, arr in (("input", inp), ("syn1neg", syn1neg)):
            bad = _first_nonfinite(arr) if arr.size else None
            if bad is not None:
                raise StoreError(f"{path_str}: array {name!r} holds {arr[bad]} at index {bad}; "
                                 "the vectors must be finite")
        if counts.size and counts.min() < 1:
            raise StoreError(f"{path_str}: array 'counts' holds a count below 1")
        model.index_to_key = keys
        model.key_to_index = key_to_index
        model.counts = counts
        model.ngram_buckets = ngram_buckets
        model._set_input(inp)
        model.syn1neg = syn1neg
        model.corpus_total_words = meta["corpus_total_words"]
        model.corpus_retained_words = int(counts.sum())
        model.running_training_loss = float(meta["running_training_loss"])
        model.epoch_losses = [float(x) for x in meta["epoch_losses"]]
        model._ready(path_str)
        return model

    def _ready(self, path):
        """After reading a file: the sampling tables and the row lists (StoreError naming
        ``path`` when they cannot be built from what it holds)."""
        try:
            self._prepare_tables()
            self._prepare_rows()
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{os.fspath(path)}: {exc}") from None

    def __repr__(self):
        return (f"FastText(vocab={len(self.index_to_key)}, vector_size={self.vector_size}, "
                f"sg={self.sg}, n-grams {self.min_n}..{self.max_n}, bucket={self.bucket})")


def load_facebook_model(path):
    """Read a fastText ``.bin`` model (see :meth:`FastText.load_facebook_model`).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    FastText
    """
    return FastText.load_facebook_model(path)

