"""TensorFlow-compatible candidate samplers.

Each sampler returns ``(sampled_candidates int64 (S,), true_expected_count float32 (B, T),
sampled_expected_count float32 (S,))`` with TensorFlow's exact expected counts: ``p * S`` when
no draw was rejected, else ``-expm1(num_tries * log1p(-p))`` in float32, where ``num_tries`` is
the number of draws this call needed (``unique=True`` rejects repeats in draw order; see
docs/semantics.md#candidate-samplers).

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

Fixed-unigram weight lists are built in ``_sampler_unigram``; ``expected_count`` and
``compute_accidental_hits``, which draw nothing, come from ``_sampler_counts``.
"""
import collections
import threading

import numpy as np

from ._alias_kernels import alias_draw
from ._rng import normalize_seed, stream_key
from ._sampler_counts import FLT_MAX  # noqa: F401  (re-exported)
from ._sampler_counts import compute_accidental_hits, expected_count
from ._sampler_kernels import (ALIAS, FENWICK, LOG_UNIFORM, UNIFORM, count_prob,
                               expected_counts, fenwick_add, fenwick_build, fenwick_draw,
                               gather_prob, log_uniform_draw, log_uniform_prob, new_set,
                               sample_fused, take_unique, uniform_draw)
from ._sampler_unigram import (build_unigram_table, cached_unigram_table, check_unigram_length,
                               unigram_params)
from ._validate import (INT32_MAX, INT32_WHY, INT64_MAX, as_bool, as_id_array,
                        as_int_at_most, as_true_classes, check_range)
from .alias import MAX_CLASSES

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

_FUSED_MAX = 4096           # non-unique draws up to this many: one sequential kernel call
_FUSED_UNIQUE_MAX = 65536   # unique draws are sequential anyway (rejection in draw order)
_E_F = np.empty(0, np.float32)
_E_I = np.empty(0, np.int64)
_E_U = np.empty(0, np.uint64)


def _check_call_args(true_classes, num_true, num_sampled, unique, range_max):
    """Validated ``(true_classes (B, T) int64, num_sampled, unique)`` of a sampler call over
    ``[0, range_max)`` (``range_max`` already checked)."""
    tc, num_true = as_true_classes(true_classes, num_true, range_max)
    num_sampled = as_int_at_most(num_sampled, "num_sampled", 1, INT32_MAX, INT32_WHY)
    unique = as_bool(unique, "unique")
    if unique and num_sampled > range_max:
        raise ValueError(
            f"num_sampled ({num_sampled}) must be <= range_max ({range_max}) when "
            "unique=True (TensorFlow: \"Sampler's range is too small.\")")
    return tc, num_sampled, unique


def _draw_candidates(draw, key, num_sampled, unique):
    """Run ``draw(key, start, out)`` until ``num_sampled`` candidates; returns (ids, num_tries)."""
    out = np.empty(num_sampled, np.int64)
    if not unique:
        draw(key, np.uint64(0), out)
        return out, num_sampled
    keys = new_set(num_sampled)
    count = 0
    start = 0
    chunk = max(32, num_sampled + num_sampled // 4)
    while count < num_sampled:
        buf = np.empty(chunk, np.int64)
        draw(key, np.uint64(start), buf)
        count, used = take_unique(buf, keys, out, count)
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
        Candidates are drawn from ``[0, range_max)``; at most ``2**63 - 1`` (less for some
        samplers, see theirs).
    seed : int, numpy Generator or None
        Seed of the sampler's stream (None: fresh OS entropy). Any int is accepted (it is
        reduced modulo 2**64).

    Attributes
    ----------
    calls : int
        Calls so far (the stream position; saved and restored by the head).
    last_num_tries : int or None
        Draws the last call needed (``num_sampled`` unless repeats were rejected).
    """

    # smallest and largest range_max this sampler supports, and why the largest
    _MIN_RANGE_MAX = 1
    _MAX_RANGE_MAX = INT64_MAX
    _MAX_RANGE_MAX_WHY = "the largest int64"

    def __init__(self, range_max, seed=None):
        self.range_max = self._check_range_max(range_max)
        self.seed = normalize_seed(seed)
        self.calls = 0
        self.last_num_tries = None

    @classmethod
    def _check_range_max(cls, range_max):
        """``range_max`` as an int within this sampler's limits (else TypeError/ValueError)."""
        return as_int_at_most(range_max, "range_max", cls._MIN_RANGE_MAX, cls._MAX_RANGE_MAX,
                              cls._MAX_RANGE_MAX_WHY)

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
        tc, num_sampled, unique = _check_call_args(true_classes, num_true, num_sampled, unique,
                                                   self.range_max)
        self._check_drawable(num_sampled, unique)
        return tc, num_sampled, unique

    def _check_drawable(self, num_sampled, unique):
        if unique and num_sampled > self.num_drawable:
            raise ValueError(
                f"num_sampled ({num_sampled}) exceeds the {self.num_drawable} classes with "
                "non-zero probability; unique sampling would never finish")

    def _checked_sample(self, tc, num_sampled, unique):
        """A call whose arguments passed :func:`_check_call_args` for this range_max."""
        self._check_drawable(num_sampled, unique)
        return self.sample_unchecked(tc, num_sampled, unique)

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
        return self.sample_unchecked(tc, num_sampled, unique)

    def sample_unchecked(self, tc, num_sampled, unique):
        """:meth:`__call__` without its checks, for a layer that has validated its batch once
        (the head's training step).

        Nothing is checked here: an id out of range is read outside the sampler's tables.

        Parameters
        ----------
        tc : ndarray of int64, shape (batch, num_true)
            Ids in ``[0, range_max)``.
        num_sampled : int
            At least 1; at most ``num_drawable`` when ``unique``.
        unique : bool

        Returns
        -------
        CandidateSamples
            As :meth:`__call__`.
        """
        key = np.uint64(stream_key(self.seed, np.uint64(self.calls)))
        self.calls += 1
        if num_sampled <= (_FUSED_UNIQUE_MAX if unique else _FUSED_MAX):
            # one sequential kernel call: cheaper than several parallel ones for small S
            cands, tec, sec, num_tries = sample_fused(
                *self._fused_args(), key, num_sampled, unique, tc.reshape(-1))
        else:
            cands, num_tries = _draw_candidates(self._draw, key, num_sampled, unique)
            tec = np.empty(tc.size, np.float32)
            sec = np.empty(num_sampled, np.float32)
            expected_counts(self._prob(tc.reshape(-1)), num_tries, num_sampled, tec)
            expected_counts(self._prob(cands), num_tries, num_sampled, sec)
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

    Ranges up to 2**32 draw from one double; wider ones (up to ``2**63 - 1``) from 64
    random bits with rejection, so every id stays equally likely.

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
        return UNIFORM, self.range_max, _E_U, _E_F, np.float32(1), _E_I, _E_I, 1

    def _draw(self, key, start, out):
        uniform_draw(self.range_max, key, start, out)

    def _prob(self, ids):
        return np.full(ids.size, np.float32(1.0 / self.range_max), np.float32)


class LogUniformSampler(CandidateSampler):
    """Zipfian: P(v) = ln((v+2)/(v+1)) / ln(range_max+1), suited to ids sorted by frequency.

    Parameters
    ----------
    range_max : int
        At most ``2**53 - 1``: TensorFlow evaluates ``(v+2)/(v+1)`` in double, which rounds
        to 1 for ``v >= 2**53 - 1``, so larger ids would be drawn with probability and
        expected count 0 (an infinite log-q correction in the losses). TensorFlow accepts
        such ranges silently; here they raise ``ValueError``.
    seed : int, numpy Generator or None
        As :class:`CandidateSampler`.
    """

    _MAX_RANGE_MAX = 2**53 - 1
    _MAX_RANGE_MAX_WHY = ("beyond it ln((v+2)/(v+1)) rounds to 0 in double and drawn ids "
                          "would get expected count 0")

    def _fused_args(self):
        return LOG_UNIFORM, self.range_max, _E_U, _E_F, np.float32(1), _E_I, _E_I, 1

    def _draw(self, key, start, out):
        log_uniform_draw(self.range_max, key, start, out)

    def _prob(self, ids):
        out = np.empty(ids.size, np.float32)
        log_uniform_prob(ids, self.range_max, out)
        return out


class FixedUnigramSampler(CandidateSampler):
    """Unigram distribution from given counts, drawn with an alias table (O(1) a draw).

    Parameters follow ``tf.random.fixed_unigram_candidate_sampler``: ``unigrams`` (counts in id
    order) or ``vocab_file`` (a CSV whose last column is the count), ``distortion`` (weights are
    ``count ** distortion``; 0.75 as in word2vec), ``num_reserved_ids`` (leading ids with
    weight 0), ``num_shards``/``shard`` (keep only ids with ``id % num_shards == shard``;
    returned ids are then indices into this shard's list, as in TensorFlow). ``range_max`` must
    equal the length of the resulting list. Negative or non-finite counts raise ``ValueError``.

    Every size is checked before anything is allocated: ``num_reserved_ids``,
    ``num_shards`` and ``shard`` must fit in an int32 (TensorFlow holds them in one), and
    ``range_max`` (at most ``2**32 - 1``, the alias table's limit) must equal the list length
    computed from them and the number of counts.

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

    _MAX_RANGE_MAX = MAX_CLASSES
    _MAX_RANGE_MAX_WHY = "the alias table holds 32-bit ids"

    def __init__(self, range_max, vocab_file="", distortion=1.0, num_reserved_ids=0,
                 num_shards=1, shard=0, unigrams=(), seed=None, _table=None):
        super().__init__(range_max, seed)
        if _table is None:
            _table = build_unigram_table(self.range_max, vocab_file, distortion,
                                         num_reserved_ids, num_shards, shard, unigrams)
        self.weights, self.total, self.table = _table

    @property
    def num_drawable(self):
        """Number of classes with non-zero weight (unique draws need at least num_sampled)."""
        return self.table.num_positive

    def _fused_args(self):
        return (ALIAS, self.range_max, self.table.table, self.weights, np.float32(self.total),
                _E_I, _E_I, 1)

    def _draw(self, key, start, out):
        alias_draw(self.table.table, key, start, out)

    def _prob(self, ids):
        out = np.empty(ids.size, np.float32)
        gather_prob(self.weights, self.total, ids, out)
        return out


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

    _MAX_RANGE_MAX = 2**31 - 2
    _MAX_RANGE_MAX_WHY = "TensorFlow's unigram samplers need range_max < 2**31 - 1"

    def __init__(self, range_max, seed=None):
        super().__init__(range_max, seed)
        self.counts = np.ones(self.range_max, np.int64)
        self.tree = np.empty(self.range_max, np.int64)
        fenwick_build(self.counts, self.tree)
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
        fenwick_add(self.tree, self.counts, ids)
        self.total += ids.size

    def _fused_args(self):
        return FENWICK, self.range_max, _E_U, _E_F, np.float32(1), self.tree, self.counts, self.total

    def _draw(self, key, start, out):
        fenwick_draw(self.tree, self.total, key, start, out)

    def _prob(self, ids):
        out = np.empty(ids.size, np.float32)
        count_prob(self.counts, self.total, ids, out)
        return out


class AllCandidateSampler(CandidateSampler):
    """Returns candidates ``0 .. num_sampled-1`` with every expected count 1 (for testing).

    As in TensorFlow, the sampler's range is the number of candidates of a call: after a
    call, :attr:`range_max` is that call's ``num_sampled`` (0 before the first call, when
    :meth:`prob` accepts no id). Every class of the range is returned once per call, so its
    single-draw probability (:meth:`prob`) is ``1 / range_max`` and its expected count 1.

    Parameters
    ----------
    seed : int, numpy Generator or None
        Accepted for TensorFlow's signature; nothing is random.
    """

    _MIN_RANGE_MAX = 0

    def __init__(self, seed=None):
        super().__init__(0, seed)

    def _prob(self, ids):
        if ids.size == 0:
            return np.empty(0, np.float32)
        return np.full(ids.size, np.float32(1.0 / self.range_max), np.float32)

    def __call__(self, true_classes, num_true, num_sampled, unique):
        """Return every class of ``[0, num_sampled)`` once.

        Parameters
        ----------
        true_classes : array_like of int, shape (batch, num_true)
            The batch's target classes (non-negative int32/int64); they only set the shape
            of ``true_expected_count``.
        num_true : int
            Columns of ``true_classes``.
        num_sampled : int
            Candidates to return (the range of this call).
        unique : bool
            Accepted for TensorFlow's signature (the candidates are always distinct).

        Returns
        -------
        CandidateSamples
            ``(arange(num_sampled) int64, ones float32 (batch, num_true), ones float32
            (num_sampled,))``.
        """
        tc, _ = as_true_classes(true_classes, num_true)
        num_sampled = as_int_at_most(num_sampled, "num_sampled", 1, INT32_MAX, INT32_WHY)
        as_bool(unique, "unique")
        check_range(tc, 0, np.iinfo(np.int64).max, "true_classes")
        self.range_max = num_sampled
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
        Number of classes (at most ``2**63 - 1``).
    seed : int or None
        An int makes the call reproducible; None uses fresh entropy.

    Every argument is checked before anything is allocated: ``num_true`` and
    ``num_sampled`` must fit in an int32 (as in TensorFlow), ``range_max`` in an int64.

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
    return _sample_once(UniformSampler, true_classes, num_true, num_sampled, unique, range_max,
                        seed)


def log_uniform_candidate_sampler(true_classes, num_true, num_sampled, unique, range_max, seed=None):
    """Sample candidates from the log-uniform (Zipfian) distribution over ``[0, range_max)``.

    ``P(v) = ln((v+2)/(v+1)) / ln(range_max+1)``: good when class ids are sorted by decreasing
    frequency.

    Parameters
    ----------
    true_classes, num_true, num_sampled, unique, seed
        As :func:`uniform_candidate_sampler`.
    range_max : int
        Number of classes, at most ``2**53 - 1`` (see :class:`LogUniformSampler`).

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
    return _sample_once(LogUniformSampler, true_classes, num_true, num_sampled, unique,
                        range_max, seed)


def _sample_once(cls, true_classes, num_true, num_sampled, unique, range_max, seed):
    """One call of a fresh ``cls(range_max, seed)``, every argument checked first."""
    range_max = cls._check_range_max(range_max)
    seed = normalize_seed(seed)
    args = _check_call_args(true_classes, num_true, num_sampled, unique, range_max)
    return cls(range_max, seed)._checked_sample(*args)


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
    range_max = FixedUnigramSampler._check_range_max(range_max)
    params = unigram_params(vocab_file, distortion, num_reserved_ids, num_shards, shard,
                            unigrams)
    if params.unigrams is not None:
        check_unigram_length(range_max, params, params.unigrams.size, "unigrams")
    seed = normalize_seed(seed)
    args = _check_call_args(true_classes, num_true, num_sampled, unique, range_max)
    table = cached_unigram_table(range_max, vocab_file, params)
    sampler = FixedUnigramSampler(range_max, seed=seed, _table=table)
    return sampler._checked_sample(*args)


# The functional learned sampler's states, by (range_max, seed): the most recently used ones
# are kept (each holds O(range_max) counts), so a loop over many seeds does not grow without
# bound.
_LEARNED = collections.OrderedDict()
_LEARNED_SIZE = 8
_LEARNED_LOCK = threading.Lock()


def learned_unigram_candidate_sampler(true_classes, num_true, num_sampled, unique, range_max, seed=None):
    """Sample from a unigram distribution learned from the true classes seen so far.

    Stateful like TensorFlow's op: calls with the same ``(range_max, seed)`` share one
    :class:`LearnedUnigramSampler` (counts start at 1; every true class of a call adds 1 after
    the call; the random stream advances every call). The states of the 8 most recently used
    ``(range_max, seed)`` pairs are kept; a pair used again after more than 8 others starts
    afresh. Use the class directly to control the state's lifetime.

    Returns
    -------
    CandidateSamples
        As :func:`uniform_candidate_sampler`.
    """
    range_max = LearnedUnigramSampler._check_range_max(range_max)
    seed = None if seed is None else int(normalize_seed(seed))
    args = _check_call_args(true_classes, num_true, num_sampled, unique, range_max)
    key = (range_max, seed)
    with _LEARNED_LOCK:
        sampler = _LEARNED.get(key)
        if sampler is None:
            sampler = _LEARNED[key] = LearnedUnigramSampler(range_max, seed)
            while len(_LEARNED) > _LEARNED_SIZE:
                _LEARNED.popitem(last=False)
        else:
            _LEARNED.move_to_end(key)
    return sampler._checked_sample(*args)


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
