"""TensorFlow-compatible candidate samplers.

Each sampler returns ``(sampled_candidates int64 (S,), true_expected_count float32 (B, T),
sampled_expected_count float32 (S,))`` with TensorFlow's exact expected counts: ``p * S`` when
no draw was rejected, else ``-expm1(num_tries * log1p(-p))`` in float32, where ``num_tries`` is
the number of draws this call needed (``unique=True`` rejects repeats in draw order).

Two forms:

* objects (:class:`UniformSampler`, :class:`LogUniformSampler`, :class:`FixedUnigramSampler`,
  :class:`LearnedUnigramSampler`, :class:`AllCandidateSampler`) build their O(V) state once and
  advance their random stream on every call, like TensorFlow's stateful kernels: a training
  loop gets fresh negatives each step and a seed reproduces the whole sequence;
* functions with TensorFlow's signatures (``fs.uniform_candidate_sampler(...)`` etc.). An int
  ``seed`` makes a call reproducible (the same seed gives the same draws every call -- use an
  object for a sequence); ``seed=None`` draws fresh entropy. The fixed-unigram function caches
  its alias table by content, so calling it every step does not rebuild a 10^7-entry table.

Draws are not bit-identical to TensorFlow's (which uses Philox); distributions, expected counts
and the unique-rejection rule are.
"""
import collections
import os
import threading

import numpy as np

from . import _sampler_kernels as K
from ._rng import normalize_seed, stream_key
from ._validate import as_bool, as_id_array, as_int, check_range
from .alias import AliasTable

__all__ = [
    "CandidateSamples", "CandidateSampler", "UniformSampler", "LogUniformSampler",
    "FixedUnigramSampler", "LearnedUnigramSampler", "AllCandidateSampler",
    "uniform_candidate_sampler", "log_uniform_candidate_sampler",
    "fixed_unigram_candidate_sampler", "learned_unigram_candidate_sampler",
    "all_candidate_sampler", "compute_accidental_hits", "expected_count",
]

CandidateSamples = collections.namedtuple(
    "CandidateSamples", ["sampled_candidates", "true_expected_count", "sampled_expected_count"])
CandidateSamples.__doc__ = """Result of a candidate sampler (unpacks like TensorFlow's triple).

Attributes
----------
sampled_candidates : ndarray of int64, shape (num_sampled,)
true_expected_count : ndarray of float32, shape (batch, num_true)
sampled_expected_count : ndarray of float32, shape (num_sampled,)
"""

FLT_MAX = np.float32(np.finfo(np.float32).max)
_FUSED_MAX = 4096           # non-unique draws up to this many: one sequential kernel call
_FUSED_UNIQUE_MAX = 65536   # unique draws are sequential anyway (rejection in draw order)
_E_F = np.empty(0, np.float32)
_E_I = np.empty(0, np.int64)
_E_U = np.empty(0, np.uint64)


def _as_true_classes(true_classes, num_true, range_max=None, name="true_classes"):
    """(B, num_true) int64 array; 1-D of length B accepted when num_true == 1."""
    num_true = as_int(num_true, "num_true", 1)
    tc = as_id_array(true_classes, name)
    if tc.ndim == 1 and num_true == 1:
        tc = tc.reshape(-1, 1)
    if tc.ndim != 2:
        raise ValueError(f"{name} must be 2-D (batch, num_true), got shape {tc.shape}")
    if tc.shape[1] != num_true:
        raise ValueError(f"{name} has {tc.shape[1]} columns but num_true is {num_true}")
    if range_max is not None:
        check_range(tc, 0, range_max, name, f"range_max is {range_max}")
    return tc, num_true


def expected_count(p, num_tries, num_sampled):
    """TensorFlow's expected count of candidates with single-draw probability ``p``.

    Parameters
    ----------
    p : array_like of float32
        Single-draw probabilities.
    num_tries : int
        Number of draws the call made (``num_sampled`` unless unique draws were rejected).
    num_sampled : int
        Number of candidates returned.

    Returns
    -------
    ndarray of float32, same shape as ``p``
        ``p * num_sampled`` if ``num_tries == num_sampled`` else ``-expm1(num_tries *
        log1p(-p))``, evaluated in float32.
    """
    p = np.ascontiguousarray(np.asarray(p, dtype=np.float32))
    out = np.empty(p.size, np.float32)
    K.expected_counts(p.reshape(-1), as_int(num_tries, "num_tries", 0),
                      as_int(num_sampled, "num_sampled", 0), out)
    return out.reshape(p.shape)


def _draw_candidates(draw, key, num_sampled, unique):
    """Run ``draw(key, start, out)`` until ``num_sampled`` candidates; returns (ids, num_tries)."""
    out = np.empty(num_sampled, np.int64)
    if not unique:
        draw(key, np.uint64(0), out)
        return out, num_sampled
    keys = K.new_set(num_sampled)
    count = 0
    start = 0
    chunk = max(32, num_sampled + num_sampled // 4)
    while count < num_sampled:
        buf = np.empty(chunk, np.int64)
        draw(key, np.uint64(start), buf)
        count, used = K.take_unique(buf, keys, out, count)
        start += used
        chunk = min(2 * chunk, 1 << 24)
    return out, start


class CandidateSampler:
    """Base class of the stateful samplers.

    Calling a sampler ``sampler(true_classes, num_true, num_sampled, unique)`` returns a
    :class:`CandidateSamples` triple and advances the sampler's stream, so consecutive calls
    give new candidates while the same ``seed`` reproduces the sequence. ``num_tries`` of the
    last call is kept in :attr:`last_num_tries`.

    Parameters
    ----------
    range_max : int
        Candidates are drawn from ``[0, range_max)``.
    seed : int, numpy Generator or None
        Seed of the sampler's stream (None: fresh OS entropy).

    Attributes
    ----------
    calls : int
        Calls so far (the stream position; saved and restored by the head).
    last_num_tries : int or None
        Draws the last call needed (``num_sampled`` unless repeats were rejected).
    """

    def __init__(self, range_max, seed=None):
        self.range_max = as_int(range_max, "range_max", 1)
        self.seed = normalize_seed(seed)
        self.calls = 0
        self.last_num_tries = None

    # subclasses: _draw(key, start, out), _prob(ids) -> float32, num_drawable
    @property
    def num_drawable(self):
        """Number of classes with non-zero probability."""
        return self.range_max

    def prob(self, ids):
        """Single-draw probability of each id, TensorFlow's formula.

        Parameters
        ----------
        ids : array_like of int
            Class ids in ``[0, range_max)``, any shape.

        Returns
        -------
        ndarray of float32, same shape as ``ids``
        """
        ids = as_id_array(ids, "ids")
        check_range(ids, 0, self.range_max, "ids", f"range_max is {self.range_max}")
        return self._prob(ids.reshape(-1)).reshape(ids.shape)

    def _check_call(self, true_classes, num_true, num_sampled, unique):
        tc, num_true = _as_true_classes(true_classes, num_true, self.range_max)
        num_sampled = as_int(num_sampled, "num_sampled", 1)
        unique = as_bool(unique, "unique")
        if unique and num_sampled > self.range_max:
            raise ValueError(
                f"num_sampled ({num_sampled}) must be <= range_max ({self.range_max}) when "
                "unique=True (TensorFlow: \"Sampler's range is too small.\")")
        if unique and num_sampled > self.num_drawable:
            raise ValueError(
                f"num_sampled ({num_sampled}) exceeds the {self.num_drawable} classes with "
                "non-zero probability; unique sampling would never finish")
        return tc, num_sampled, unique

    def __call__(self, true_classes, num_true, num_sampled, unique):
        """Draw candidates for one batch and advance the stream.

        Parameters
        ----------
        true_classes : array_like of int, shape (batch, num_true)
            The batch's target classes (int32/int64, each in ``[0, range_max)``); they only
            feed ``true_expected_count`` (and a learned sampler's counts).
        num_true : int
            Columns of ``true_classes``.
        num_sampled : int
            Candidates to return.
        unique : bool
            Reject repeats (in draw order) until ``num_sampled`` distinct candidates.

        Returns
        -------
        CandidateSamples
            ``(sampled_candidates int64 (num_sampled,), true_expected_count float32 (batch,
            num_true), sampled_expected_count float32 (num_sampled,))``.
        """
        tc, num_sampled, unique = self._check_call(true_classes, num_true, num_sampled, unique)
        return self._sample(tc, num_sampled, unique)

    def _sample(self, tc, num_sampled, unique):
        """``__call__`` after validation: ``tc`` (B, T) int64 ids in range (for callers that
        have checked them already, e.g. the head's training step)."""
        key = np.uint64(stream_key(self.seed, np.uint64(self.calls)))
        self.calls += 1
        if num_sampled <= (_FUSED_UNIQUE_MAX if unique else _FUSED_MAX):
            # one sequential kernel call: cheaper than several parallel ones for small S
            cands, tec, sec, num_tries = K.sample_fused(
                *self._fused_args(), key, num_sampled, unique, tc.reshape(-1))
        else:
            cands, num_tries = _draw_candidates(self._draw, key, num_sampled, unique)
            tec = np.empty(tc.size, np.float32)
            sec = np.empty(num_sampled, np.float32)
            K.expected_counts(self._prob(tc.reshape(-1)), num_tries, num_sampled, tec)
            K.expected_counts(self._prob(cands), num_tries, num_sampled, sec)
        self.last_num_tries = num_tries
        self._observe(tc)
        return CandidateSamples(cands, tec.reshape(tc.shape), sec)

    sample = __call__

    def _observe(self, true_classes):
        pass

    def __repr__(self):
        return f"{type(self).__name__}(range_max={self.range_max}, calls={self.calls})"


class UniformSampler(CandidateSampler):
    """Uniform over ``[0, range_max)``; P = float32(1 / range_max).

    Parameters
    ----------
    range_max : int
    seed : int, numpy Generator or None
        As :class:`CandidateSampler`.

    Examples
    --------
    >>> import fastsampled as fs
    >>> s = fs.UniformSampler(100, seed=0)
    >>> a = s([[1], [2]], 1, 5, True); b = s([[1], [2]], 1, 5, True)
    >>> a.sampled_candidates.shape, bool((a.sampled_candidates != b.sampled_candidates).any())
    ((5,), True)
    """

    def _fused_args(self):
        return K.UNIFORM, self.range_max, _E_U, _E_F, np.float32(1), _E_I, _E_I, 1

    def _draw(self, key, start, out):
        K.uniform_draw(self.range_max, key, start, out)

    def _prob(self, ids):
        return np.full(ids.size, np.float32(1.0 / self.range_max), np.float32)


class LogUniformSampler(CandidateSampler):
    """Zipfian: P(v) = ln((v+2)/(v+1)) / ln(range_max+1), suited to ids sorted by frequency.

    Parameters
    ----------
    range_max : int
    seed : int, numpy Generator or None
        As :class:`CandidateSampler`.
    """

    def _fused_args(self):
        return K.LOG_UNIFORM, self.range_max, _E_U, _E_F, np.float32(1), _E_I, _E_I, 1

    def _draw(self, key, start, out):
        K.log_uniform_draw(self.range_max, key, start, out)

    def _prob(self, ids):
        out = np.empty(ids.size, np.float32)
        K.log_uniform_prob(ids, self.range_max, out)
        return out


def _read_vocab_counts(vocab_file):
    """The last comma-separated column of every non-empty line, as float64."""
    try:
        with open(vocab_file, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"vocab_file {vocab_file!r} cannot be read: {e}") from None
    lines = [ln for ln in data.splitlines() if ln.strip()]
    try:
        return np.array([ln.rpartition(b",")[2].strip() for ln in lines], dtype=np.bytes_).astype(np.float64)
    except ValueError:
        for n, ln in enumerate(lines):
            try:
                float(ln.rpartition(b",")[2])
            except ValueError:
                raise ValueError(
                    f"vocab_file {vocab_file!r}: the last column of non-empty line {n + 1} is "
                    f"not a number: {ln[:80]!r}") from None
        raise


def _unigram_weights(unigrams, distortion, num_reserved_ids, num_shards, shard):
    """TensorFlow's weight list for this shard (float32) and its float32 sequential total."""
    u = np.asarray(unigrams, dtype=np.float64)
    if u.ndim != 1:
        raise ValueError(f"unigrams must be 1-D, got shape {u.shape}")
    if not np.isfinite(u).all():
        raise ValueError(f"unigrams must be finite; found {u[~np.isfinite(u)][0]} at index "
                         f"{int(np.argmax(~np.isfinite(u)))}")
    if (u < 0).any():
        i = int(np.argmax(u < 0))
        raise ValueError(f"unigrams must be non-negative (TensorFlow silently accepts negative "
                         f"counts and returns negative probabilities); found {u[i]} at index {i}")
    u = u.astype(np.float32)
    reserved = np.arange(num_reserved_ids, dtype=np.int64)
    start = int(np.count_nonzero(reserved % num_shards == shard))
    word_ids = start + np.arange(u.size, dtype=np.int64)
    mine = u[word_ids % num_shards == shard]
    with np.errstate(divide="ignore"):
        w = np.concatenate([np.zeros(start, np.float32),
                            np.power(mine, np.float32(distortion), dtype=np.float32)])
    return w, K.sequential_sum_f32(w)


class FixedUnigramSampler(CandidateSampler):
    """Unigram distribution from given counts, drawn with an alias table (O(1) a draw).

    Parameters follow ``tf.random.fixed_unigram_candidate_sampler``: ``unigrams`` (counts in id
    order) or ``vocab_file`` (a CSV whose last column is the count), ``distortion`` (weights are
    ``count ** distortion``; 0.75 as in word2vec), ``num_reserved_ids`` (leading ids with
    weight 0), ``num_shards``/``shard`` (keep only ids with ``id % num_shards == shard``;
    returned ids are then indices into this shard's list, as in TensorFlow). ``range_max`` must
    equal the length of the resulting list. Negative or non-finite counts raise ``ValueError``.

    Parameters
    ----------
    range_max : int
    vocab_file : str or os.PathLike, optional
    distortion : float
    num_reserved_ids, num_shards, shard : int
    unigrams : sequence of float, optional
        As :func:`fixed_unigram_candidate_sampler`.
    seed : int, numpy Generator or None
        As :class:`CandidateSampler`.
    """

    def __init__(self, range_max, vocab_file="", distortion=1.0, num_reserved_ids=0,
                 num_shards=1, shard=0, unigrams=(), seed=None, _table=None):
        super().__init__(range_max, seed)
        if _table is None:
            _table = _build_unigram_table(self.range_max, vocab_file, distortion,
                                          num_reserved_ids, num_shards, shard, unigrams)
        self.weights, self.total, self.table = _table

    @property
    def num_drawable(self):
        """Number of classes with non-zero weight (unique draws need at least num_sampled)."""
        return self.table.num_positive

    def _fused_args(self):
        return (K.ALIAS, self.range_max, self.table.table, self.weights, np.float32(self.total),
                _E_I, _E_I, 1)

    def _draw(self, key, start, out):
        from ._alias_kernels import alias_draw
        alias_draw(self.table.table, key, start, out)

    def _prob(self, ids):
        out = np.empty(ids.size, np.float32)
        K.gather_prob(self.weights, self.total, ids, out)
        return out


def _unigram_params(range_max, vocab_file, distortion, num_reserved_ids, num_shards, shard, unigrams):
    num_reserved_ids = as_int(num_reserved_ids, "num_reserved_ids", 0)
    num_shards = as_int(num_shards, "num_shards", 1)
    shard = as_int(shard, "shard", 0)
    if shard >= num_shards:
        raise ValueError(f"shard ({shard}) must be < num_shards ({num_shards})")
    try:
        distortion = float(distortion)
    except (TypeError, ValueError):
        raise TypeError(f"distortion must be a number, got {distortion!r}") from None
    if not np.isfinite(distortion):
        raise ValueError(f"distortion must be finite, got {distortion}")
    has_file = bool(vocab_file)
    has_list = np.asarray(unigrams).size > 0
    if has_file == has_list:
        raise ValueError("exactly one of vocab_file and unigrams must be given")
    return num_reserved_ids, num_shards, shard, distortion, has_file


def _build_unigram_table(range_max, vocab_file, distortion, num_reserved_ids, num_shards, shard, unigrams):
    num_reserved_ids, num_shards, shard, distortion, has_file = _unigram_params(
        range_max, vocab_file, distortion, num_reserved_ids, num_shards, shard, unigrams)
    counts = _read_vocab_counts(os.fspath(vocab_file)) if has_file else unigrams
    w, total = _unigram_weights(counts, distortion, num_reserved_ids, num_shards, shard)
    if w.size != range_max:
        raise ValueError(f"range_max is {range_max} but the unigram weights have {w.size} entries "
                         f"({num_reserved_ids} reserved ids, shard {shard} of {num_shards}); they "
                         "must be equal")
    if not total > 0:
        raise ValueError("the unigram weights of this shard are all zero")
    return w, total, AliasTable(w)


class LearnedUnigramSampler(CandidateSampler):
    """Unigram distribution learned from the true classes seen so far.

    Counts start at 1 for every class; after each call every entry of that call's
    ``true_classes`` adds 1 (duplicates too), as in TensorFlow. Draws use a Fenwick tree:
    O(log V) per draw and per update. ``range_max`` must be < 2**31 - 1.

    Parameters
    ----------
    range_max : int
    seed : int, numpy Generator or None
        As :class:`CandidateSampler`.
    """

    def __init__(self, range_max, seed=None):
        super().__init__(range_max, seed)
        if self.range_max >= 2**31 - 1:
            raise ValueError(f"range_max must be < 2**31 - 1 for learned_unigram, got {self.range_max}")
        self.counts = np.ones(self.range_max, np.int64)
        self.tree = np.empty(self.range_max, np.int64)
        K.fenwick_build(self.counts, self.tree)
        self.total = self.range_max

    def update(self, true_classes):
        """Add 1 to the count of every entry of ``true_classes`` (what a call does after it).

        Parameters
        ----------
        true_classes : array_like of int
            Class ids in ``[0, range_max)``, any shape; duplicates count once each.
        """
        ids = as_id_array(true_classes, "true_classes").reshape(-1)
        check_range(ids, 0, self.range_max, "true_classes", f"range_max is {self.range_max}")
        self._observe(ids)

    def _observe(self, true_classes):
        ids = true_classes.reshape(-1)
        K.fenwick_add(self.tree, self.counts, ids)
        self.total += ids.size

    def _fused_args(self):
        return K.FENWICK, self.range_max, _E_U, _E_F, np.float32(1), self.tree, self.counts, self.total

    def _draw(self, key, start, out):
        K.fenwick_draw(self.tree, self.total, key, start, out)

    def _prob(self, ids):
        out = np.empty(ids.size, np.float32)
        K.count_prob(self.counts, self.total, ids, out)
        return out


class AllCandidateSampler(CandidateSampler):
    """Returns candidates ``0 .. num_sampled-1`` with every expected count 1 (for testing).

    Parameters
    ----------
    seed : int, numpy Generator or None
        Accepted for TensorFlow's signature; nothing is random.
    """

    def __init__(self, seed=None):
        self.seed = normalize_seed(seed)
        self.calls = 0
        self.last_num_tries = None

    def __call__(self, true_classes, num_true, num_sampled, unique):
        """Draw candidates for one batch and advance the stream.

        Parameters
        ----------
        true_classes : array_like of int, shape (batch, num_true)
            The batch's target classes (int32/int64, each in ``[0, range_max)``); they only
            feed ``true_expected_count`` (and a learned sampler's counts).
        num_true : int
            Columns of ``true_classes``.
        num_sampled : int
            Candidates to return.
        unique : bool
            Reject repeats (in draw order) until ``num_sampled`` distinct candidates.

        Returns
        -------
        CandidateSamples
            ``(sampled_candidates int64 (num_sampled,), true_expected_count float32 (batch,
            num_true), sampled_expected_count float32 (num_sampled,))``.
        """
        tc, _ = _as_true_classes(true_classes, num_true)
        num_sampled = as_int(num_sampled, "num_sampled", 1)
        as_bool(unique, "unique")
        check_range(tc, 0, np.iinfo(np.int64).max, "true_classes")
        self.calls += 1
        self.last_num_tries = num_sampled
        return CandidateSamples(np.arange(num_sampled, dtype=np.int64),
                                np.ones(tc.shape, np.float32), np.ones(num_sampled, np.float32))

    sample = __call__

    def __repr__(self):
        return f"AllCandidateSampler(calls={self.calls})"


# ---------------------------------------------------------------- functional, TF signatures

def uniform_candidate_sampler(true_classes, num_true, num_sampled, unique, range_max, seed=None):
    """Sample candidates uniformly from ``[0, range_max)`` (``tf.random.uniform_candidate_sampler``).

    Parameters
    ----------
    true_classes : array_like of int, shape (batch, num_true)
        The target classes; must lie in ``[0, range_max)``. 1-D is accepted when num_true == 1.
    num_true : int
        Number of target classes per example.
    num_sampled : int
        Number of candidates to return.
    unique : bool
        Whether candidates must be distinct (rejection in draw order).
    range_max : int
        Number of classes.
    seed : int or None
        An int makes the call reproducible; None uses fresh entropy.

    Returns
    -------
    sampled_candidates : ndarray of int64, shape (num_sampled,)
    true_expected_count : ndarray of float32, shape (batch, num_true)
    sampled_expected_count : ndarray of float32, shape (num_sampled,)

    Examples
    --------
    >>> import fastsampled as fs
    >>> s, tec, sec = fs.uniform_candidate_sampler([[1], [7]], 1, 4, False, 10, seed=3)
    >>> s.shape, tec.tolist(), sec.dtype      # no rejection: expected count p * S = 0.1 * 4
    ((4,), [[0.4000000059604645], [0.4000000059604645]], dtype('float32'))
    """
    return UniformSampler(range_max, seed)(true_classes, num_true, num_sampled, unique)


def log_uniform_candidate_sampler(true_classes, num_true, num_sampled, unique, range_max, seed=None):
    """Sample candidates from the log-uniform (Zipfian) distribution over ``[0, range_max)``.

    ``P(v) = ln((v+2)/(v+1)) / ln(range_max+1)``: good when class ids are sorted by decreasing
    frequency.

    Parameters
    ----------
    true_classes, num_true, num_sampled, unique, range_max, seed
        As :func:`uniform_candidate_sampler`.

    Returns
    -------
    CandidateSamples
        As :func:`uniform_candidate_sampler`.

    Examples
    --------
    >>> import fastsampled as fs
    >>> s, tec, sec = fs.log_uniform_candidate_sampler([[0, 5]], 2, 8, True, 1000, seed=1)
    >>> len(set(s.tolist())), tec.shape
    (8, (1, 2))
    """
    return LogUniformSampler(range_max, seed)(true_classes, num_true, num_sampled, unique)


_UNIGRAM_CACHE = collections.OrderedDict()
_UNIGRAM_CACHE_SIZE = 4
_UNIGRAM_LOCK = threading.Lock()


def _unigram_cache_key(range_max, vocab_file, distortion, num_reserved_ids, num_shards, shard, unigrams):
    from ._hash import fingerprint

    params = (int(range_max), float(distortion), int(num_reserved_ids), int(num_shards), int(shard))
    if vocab_file:
        path = os.path.realpath(os.fspath(vocab_file))
        try:
            st = os.stat(path)
        except OSError as e:
            raise ValueError(f"vocab_file {vocab_file!r} cannot be read: {e}") from None
        return ("file", path, st.st_mtime_ns, st.st_size) + params
    u = np.ascontiguousarray(np.asarray(unigrams, dtype=np.float64))
    return ("list", u.size, fingerprint(u.view(np.uint8))) + params


def fixed_unigram_candidate_sampler(true_classes, num_true, num_sampled, unique, range_max,
                                    vocab_file="", distortion=1.0, num_reserved_ids=0,
                                    num_shards=1, shard=0, unigrams=(), seed=None):
    """Sample candidates from given unigram counts (``tf.random.fixed_unigram_candidate_sampler``).

    The alias table is built once per distinct distribution (keyed by the counts' content or
    the vocab file's path, size and modification time, plus the parameters) and cached, so
    calling this every step costs O(V) hashing of ``unigrams`` but no rebuild. For a training
    loop prefer :class:`FixedUnigramSampler`, which also advances its stream every call.

    Parameters
    ----------
    true_classes, num_true, num_sampled, unique, range_max, seed
        As :func:`uniform_candidate_sampler`.
    vocab_file : str or path
        CSV file whose last column holds the counts (one line per id). Exclusive with unigrams.
    distortion : float
        Weights are ``count ** distortion`` (float32).
    num_reserved_ids : int
        Ids ``0 .. num_reserved_ids-1`` get weight 0 (never drawn; they must not be labels
        of a loss with subtract_log_q, whose true expected count would be 0).
    num_shards, shard : int
        Keep only ids with ``id % num_shards == shard``; returned ids index this shard's list.
    unigrams : sequence of float
        Counts in id order. Exclusive with vocab_file.

    Returns
    -------
    CandidateSamples
        As :func:`uniform_candidate_sampler`.

    Examples
    --------
    >>> import fastsampled as fs
    >>> s, tec, sec = fs.fixed_unigram_candidate_sampler(
    ...     [[2]], 1, 2, True, 4, unigrams=[0, 1, 1, 2], seed=0)
    >>> sorted(s.tolist()) in ([1, 2], [1, 3], [2, 3])
    True
    """
    key = _unigram_cache_key(range_max, vocab_file, distortion, num_reserved_ids, num_shards,
                             shard, unigrams)
    with _UNIGRAM_LOCK:
        table = _UNIGRAM_CACHE.get(key)
        if table is not None:
            _UNIGRAM_CACHE.move_to_end(key)
    if table is None:
        table = _build_unigram_table(as_int(range_max, "range_max", 1), vocab_file, distortion,
                                     num_reserved_ids, num_shards, shard, unigrams)
        with _UNIGRAM_LOCK:
            _UNIGRAM_CACHE[key] = table
            while len(_UNIGRAM_CACHE) > _UNIGRAM_CACHE_SIZE:
                _UNIGRAM_CACHE.popitem(last=False)
    sampler = FixedUnigramSampler(range_max, seed=seed, _table=table)
    return sampler(true_classes, num_true, num_sampled, unique)


_LEARNED = {}
_LEARNED_LOCK = threading.Lock()


def learned_unigram_candidate_sampler(true_classes, num_true, num_sampled, unique, range_max, seed=None):
    """Sample from a unigram distribution learned from the true classes seen so far.

    Stateful like TensorFlow's op: calls with the same ``(range_max, seed)`` share one
    :class:`LearnedUnigramSampler` (counts start at 1; every true class of a call adds 1 after
    the call; the random stream advances every call). Use the class directly to control the
    state's lifetime.

    Returns
    -------
    CandidateSamples
        As :func:`uniform_candidate_sampler`.
    """
    range_max = as_int(range_max, "range_max", 1)
    key = (range_max, None if seed is None else int(normalize_seed(seed)))
    with _LEARNED_LOCK:
        sampler = _LEARNED.get(key)
        if sampler is None:
            sampler = _LEARNED[key] = LearnedUnigramSampler(range_max, seed)
    return sampler(true_classes, num_true, num_sampled, unique)


def all_candidate_sampler(true_classes, num_true, num_sampled, unique, seed=None):
    """Return candidates ``0 .. num_sampled-1`` with all expected counts 1 (for testing).

    Parameters
    ----------
    true_classes, num_true, num_sampled, unique, seed
        As :func:`uniform_candidate_sampler` (``num_sampled`` is the number of classes).

    Returns
    -------
    CandidateSamples
    """
    return AllCandidateSampler(seed)(true_classes, num_true, num_sampled, unique)


def compute_accidental_hits(true_classes, sampled_candidates, num_true):
    """Find true classes among the sampled candidates (``tf.nn.compute_accidental_hits``).

    For every ``(i, j)`` in row-major order whose label ``true_classes[i, j]`` occurs in
    ``sampled_candidates``, emit ``(i, k, -FLT_MAX)`` where ``k`` is the **last** position of
    that value in ``sampled_candidates`` (earlier duplicates are not reported, as in TF).

    Returns
    -------
    indices : ndarray of int32, shape (H,)
        Row of each hit.
    ids : ndarray of int64, shape (H,)
        Position in ``sampled_candidates`` of each hit.
    weights : ndarray of float32, shape (H,)
        ``-FLT_MAX`` for every hit.

    Examples
    --------
    >>> import fastsampled as fs
    >>> idx, ids, w = fs.compute_accidental_hits([[1], [3]], [3, 1, 3], 1)
    >>> idx.tolist(), ids.tolist()
    ([0, 1], [1, 2])
    """
    from ._loss_kernels import accidental_hit_columns

    tc, _ = _as_true_classes(true_classes, num_true)
    s = as_id_array(sampled_candidates, "sampled_candidates")
    if s.ndim != 1:
        raise ValueError(f"sampled_candidates must be 1-D, got shape {s.shape}")
    cols = accidental_hit_columns(tc, s)
    rows, _ = np.nonzero(cols >= 0)
    ids = cols[cols >= 0]
    return rows.astype(np.int32), ids.astype(np.int64), np.full(ids.size, -FLT_MAX, np.float32)
