"""Fixed-unigram weight lists (private): the table behind ``FixedUnigramSampler``.

TensorFlow's ``FixedUnigramSampler`` builds one shard's weight list from counts (``unigrams``
or the last column of a ``vocab_file``): the reserved ids of the shard first, with weight 0,
then ``count ** distortion`` in float32 for every count whose word id falls in the shard (see
docs/semantics.md#fixed-unigram). This module validates those arguments before anything of size
``range_max`` is allocated, builds the list, its float32 running total and its alias table, and
keeps the few most recent tables of the functional sampler by content.
"""
import collections
import numbers
import os
import threading

import numpy as np

from ._hash import fingerprint
from ._sampler_kernels import sequential_sum_f32
from ._validate import INT32_MAX, as_int_at_most
from .alias import AliasTable

_INT32_ATTR_WHY = "TensorFlow's fixed unigram sampler holds it in an int32"

UnigramParams = collections.namedtuple(
    "UnigramParams", ["distortion", "num_reserved_ids", "num_shards", "shard", "unigrams"])
UnigramParams.__doc__ = """Checked arguments of a fixed unigram sampler (:func:`unigram_params`).

``unigrams`` is a 1-D float64 array, or None when the counts come from ``vocab_file``.
"""


def read_vocab_counts(vocab_file):
    """The last comma-separated column of every non-empty line, as float64.

    Parameters
    ----------
    vocab_file : str
        Path of the CSV file.

    Returns
    -------
    ndarray of float64, shape (lines,)
    """
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


def _in_shard(n, num_shards, shard):
    """How many of the ids ``0 .. n-1`` have ``id % num_shards == shard`` (0 <= shard)."""
    return max(0, (n - shard + num_shards - 1) // num_shards)


def _unigram_list_length(num_reserved_ids, num_unigrams, num_shards, shard):
    """Length of TensorFlow's weight list for one shard, computed without building it.

    The reserved ids ``0 .. num_reserved_ids-1`` of this shard come first (``start`` of
    them); the t-th unigram then has word id ``start + t`` (not ``num_reserved_ids + t``: a
    TensorFlow quirk when num_shards > 1) and is kept when that id falls in this shard.
    """
    start = _in_shard(num_reserved_ids, num_shards, shard)
    return start + _in_shard(start + num_unigrams, num_shards, shard) \
        - _in_shard(start, num_shards, shard)


def _unigram_weights(u, distortion, num_reserved_ids, num_shards, shard):
    """TensorFlow's weight list for this shard (float32) and its float32 sequential total.

    ``u`` is the validated 1-D float64 count array; the list length was checked against
    range_max before this allocates it.
    """
    if not np.isfinite(u).all():
        raise ValueError(f"unigrams must be finite; found {u[~np.isfinite(u)][0]} at index "
                         f"{int(np.argmax(~np.isfinite(u)))}")
    if (u < 0).any():
        i = int(np.argmax(u < 0))
        raise ValueError(f"unigrams must be non-negative (TensorFlow silently accepts negative "
                         f"counts and returns negative probabilities); found {u[i]} at index {i}")
    u = u.astype(np.float32)
    start = _in_shard(num_reserved_ids, num_shards, shard)
    word_ids = start + np.arange(u.size, dtype=np.int64)
    mine = u[word_ids % num_shards == shard]
    with np.errstate(divide="ignore", over="ignore"):
        w = np.concatenate([np.zeros(start, np.float32),
                            np.power(mine, np.float32(distortion), dtype=np.float32)])
    if not np.isfinite(w).all():
        i = int(np.argmax(~np.isfinite(w)))
        raise ValueError(f"unigram weight {i} is {w[i]} in float32 (count ** distortion); "
                         "scale the unigrams down")
    return w, sequential_sum_f32(w)


def _as_unigrams(unigrams):
    """``unigrams`` as a 1-D float64 array (empty when not given)."""
    if isinstance(unigrams, np.ndarray) and unigrams.dtype.kind in "iuf":
        u = np.asarray(unigrams, dtype=np.float64)
    else:
        try:
            u = np.asarray(unigrams)
        except ValueError:
            raise ValueError("unigrams must be a 1-D sequence of numbers") from None
        if u.size and (u.dtype == np.bool_ or u.dtype.kind not in "iuf"):
            raise TypeError(f"unigrams must hold numbers, got dtype {u.dtype}")
        u = u.astype(np.float64)
    if u.ndim != 1:
        raise ValueError(f"unigrams must be 1-D, got shape {u.shape}")
    return u


def unigram_params(vocab_file, distortion, num_reserved_ids, num_shards, shard, unigrams):
    """Validate every argument of the fixed unigram sampler except range_max and the counts'
    values; nothing O(range_max) is allocated.

    Parameters
    ----------
    vocab_file, distortion, num_reserved_ids, num_shards, shard, unigrams
        As ``fixed_unigram_candidate_sampler``.

    Returns
    -------
    UnigramParams
        Its ``unigrams`` is a 1-D float64 array, or None when vocab_file is given.
    """
    num_reserved_ids = as_int_at_most(num_reserved_ids, "num_reserved_ids", 0, INT32_MAX,
                                      _INT32_ATTR_WHY)
    num_shards = as_int_at_most(num_shards, "num_shards", 1, INT32_MAX, _INT32_ATTR_WHY)
    shard = as_int_at_most(shard, "shard", 0, INT32_MAX, _INT32_ATTR_WHY)
    if shard >= num_shards:
        raise ValueError(f"shard ({shard}) must be < num_shards ({num_shards})")
    if isinstance(distortion, (bool, np.bool_)) or not isinstance(distortion, numbers.Real):
        raise TypeError(f"distortion must be a number, got {type(distortion).__name__} "
                        f"{distortion!r}")
    distortion = float(distortion)
    with np.errstate(over="ignore"):
        distortion32 = np.float32(distortion)
    if not np.isfinite(distortion32):
        raise ValueError(f"distortion must be finite in float32 (TensorFlow's type), got "
                         f"{distortion}")
    u = _as_unigrams(unigrams)
    has_file = bool(vocab_file)
    if has_file == (u.size > 0):
        raise ValueError("exactly one of vocab_file and unigrams must be given")
    return UnigramParams(distortion, num_reserved_ids, num_shards, shard,
                         None if has_file else u)


def check_unigram_length(range_max, params, num_unigrams, what):
    """TensorFlow's rule: range_max equals this shard's list length (before it is built).

    Parameters
    ----------
    range_max : int
        The checked range_max.
    params : UnigramParams
    num_unigrams : int
        Number of counts.
    what : str
        What the counts are, for the message (``"unigrams"``, ``"lines of vocab_file"``).
    """
    length = _unigram_list_length(params.num_reserved_ids, num_unigrams, params.num_shards,
                                  params.shard)
    if length != range_max:
        raise ValueError(
            f"range_max is {range_max} but the unigram weights have {length} entries "
            f"({params.num_reserved_ids} reserved ids and {num_unigrams} {what}, shard "
            f"{params.shard} of {params.num_shards}); they must be equal")


def build_unigram_table(range_max, vocab_file, distortion, num_reserved_ids, num_shards, shard,
                        unigrams):
    """The weight list, its total and its alias table, for a checked range_max.

    Parameters
    ----------
    range_max : int
        Within ``FixedUnigramSampler``'s limits.
    vocab_file, distortion, num_reserved_ids, num_shards, shard, unigrams
        As ``fixed_unigram_candidate_sampler``.

    Returns
    -------
    tuple
        ``(weights float32, total float32, AliasTable)``.
    """
    params = unigram_params(vocab_file, distortion, num_reserved_ids, num_shards, shard,
                            unigrams)
    if params.unigrams is None:
        counts = read_vocab_counts(os.fspath(vocab_file))
        what = "lines of vocab_file"
    else:
        counts = params.unigrams
        what = "unigrams"
    check_unigram_length(range_max, params, counts.size, what)
    w, total = _unigram_weights(counts, params.distortion, params.num_reserved_ids,
                                params.num_shards, params.shard)
    if not np.isfinite(total):
        raise ValueError(f"the unigram weights sum to {total} in float32 (TensorFlow's running "
                         "total); scale the unigrams down")
    if not total > 0:
        raise ValueError("the unigram weights of this shard are all zero")
    return w, total, AliasTable(w)


# ---------------------------------------------------------------- the functional form's cache

_UNIGRAM_CACHE = collections.OrderedDict()
_UNIGRAM_CACHE_SIZE = 4
_UNIGRAM_LOCK = threading.Lock()


def _unigram_cache_key(range_max, vocab_file, params):

    key = (range_max, params.distortion, params.num_reserved_ids, params.num_shards,
           params.shard)
    if params.unigrams is None:
        path = os.path.realpath(os.fspath(vocab_file))
        try:
            st = os.stat(path)
        except OSError as e:
            raise ValueError(f"vocab_file {vocab_file!r} cannot be read: {e}") from None
        return ("file", path, st.st_mtime_ns, st.st_size) + key
    u = np.ascontiguousarray(params.unigrams)
    return ("list", u.size, fingerprint(u.view(np.uint8))) + key


def cached_unigram_table(range_max, vocab_file, params):
    """:func:`build_unigram_table`, kept for the few most recent distributions.

    The key is the counts' content (or the vocab file's path, size and modification time)
    plus the parameters; the least recently used table is dropped first.

    Parameters
    ----------
    range_max : int
        Checked, and equal to the list length when the counts are ``unigrams``.
    vocab_file : str or os.PathLike
    params : UnigramParams
        From :func:`unigram_params`.

    Returns
    -------
    tuple
        As :func:`build_unigram_table`.
    """
    key = _unigram_cache_key(range_max, vocab_file, params)
    with _UNIGRAM_LOCK:
        table = _UNIGRAM_CACHE.get(key)
        if table is not None:
            _UNIGRAM_CACHE.move_to_end(key)
    if table is None:
        table = build_unigram_table(range_max, vocab_file, params.distortion,
                                    params.num_reserved_ids, params.num_shards, params.shard,
                                    () if params.unigrams is None else params.unigrams)
        with _UNIGRAM_LOCK:
            _UNIGRAM_CACHE[key] = table
            while len(_UNIGRAM_CACHE) > _UNIGRAM_CACHE_SIZE:
                _UNIGRAM_CACHE.popitem(last=False)
    return table
