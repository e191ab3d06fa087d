"""Slow, obviously-correct reference implementations (plain numpy + Python loops).

Everything here follows ``SEMANTICS.md`` (TensorFlow 2.21 behaviour of
``sampled_softmax_loss``, ``nce_loss``, ``compute_accidental_hits``,
``embedding_lookup`` with sharded weights and the candidate samplers'
expected counts). It is written for clarity, not speed, and is used to check
the fast Numba kernels of ``fastsampled``; it never imports ``fastsampled``.

Conventions (as in SEMANTICS.md): B batch size, D embedding dim, T num_true,
S num_sampled, P number of shards.
"""

import numpy as np

FLT_MAX = float(np.finfo(np.float32).max)  # 3.4028234663852886e38


# ---------------------------------------------------------------------------
# Sharding (SEMANTICS section 4)
# ---------------------------------------------------------------------------

def shard_map(ids, shard_sizes, strategy):
    """Map global ids to (shard, row) exactly like ``tf.nn.embedding_lookup``.

    Parameters
    ----------
    ids : array_like of int
        Global ids, any shape.
    shard_sizes : sequence of int
        Number of rows of each shard (P = len(shard_sizes)).
    strategy : {"mod", "div"}
        Partition strategy. Ignored when P == 1.

    Returns
    -------
    shard_index, row_in_shard : ndarray of int64, same shape as ``ids``
        The formula is applied whatever the actual shard sizes are; the rows
        are not checked against the sizes here (``lookup`` does that).
    """
    ids = np.asarray(ids, dtype=np.int64)
    num_shards = len(shard_sizes)
    if num_shards < 1:
        raise ValueError("need at least one shard")
    if num_shards == 1:
        return np.zeros(ids.shape, dtype=np.int64), ids.copy()
    if strategy not in ("mod", "div"):
        raise ValueError(f"partition_strategy must be 'mod' or 'div', got {strategy!r}")

    shard_index = np.empty(ids.shape, dtype=np.int64)
    row_in_shard = np.empty(ids.shape, dtype=np.int64)
    flat_ids = ids.reshape(-1)
    flat_shard = shard_index.reshape(-1)
    flat_row = row_in_shard.reshape(-1)

    if strategy == "mod":
        for n, i in enumerate(flat_ids):
            flat_shard[n] = i % num_shards   # python ints: floor semantics
            flat_row[n] = i // num_shards
        return shard_index, row_in_shard

    # "div": N is the sum of the shards' row counts (not num_classes).
    total_rows = int(sum(int(s) for s in shard_sizes))
    ids_per_shard = total_rows // num_shards          # q
    extras = total_rows % num_shards                  # r: shards with q+1 rows
    if ids_per_shard == 0:
        # TF would divide by zero here; the mapping is undefined.
        raise ValueError("'div' strategy needs at least as many rows as shards")
    for n, i in enumerate(flat_ids):
        i = int(i)
        p = max(i // (ids_per_shard + 1), (i - extras) // ids_per_shard)
        if p < extras:
            row = i % (ids_per_shard + 1)
        else:
            row = (i - extras) % ids_per_shard
        flat_shard[n] = p
        flat_row[n] = row
    return shard_index, row_in_shard


def _as_shard_list(params):
    """Return ``params`` as a list of arrays (one ndarray -> [ndarray])."""
    if isinstance(params, np.ndarray):
        return [params]
    shards = [np.asarray(p) for p in params]
    if not shards:
        raise ValueError("empty list of shards")
    return shards


def lookup(shards, ids, strategy):
    """Gather rows of a (possibly sharded) parameter like ``embedding_lookup``.

    Parameters
    ----------
    shards : ndarray or list of ndarray
        One array, or P shards, each of shape (rows_p,) or (rows_p, D).
    ids : array_like of int
        Global ids, any shape.
    strategy : {"mod", "div"}
        Partition strategy (ignored for a single shard).

    Returns
    -------
    ndarray of shape ids.shape + shard.shape[1:], dtype of the shards

    Raises
    ------
    IndexError
        If an id maps outside its shard (TF: InvalidArgumentError).
    """
    shards = _as_shard_list(shards)
    ids = np.asarray(ids, dtype=np.int64)
    sizes = [s.shape[0] for s in shards]
    shard_index, row_in_shard = shard_map(ids, sizes, strategy)
    row_shape = shards[0].shape[1:]
    out = np.empty((ids.size,) + row_shape, dtype=shards[0].dtype)
    for n, (p, r) in enumerate(zip(shard_index.reshape(-1), row_in_shard.reshape(-1))):
        if not 0 <= p < len(shards) or not 0 <= r < sizes[p]:
            raise IndexError(
                f"id {int(ids.reshape(-1)[n])} maps to shard {int(p)} row {int(r)}, "
                f"which does not exist (shard sizes {sizes})")
        out[n] = shards[p][r]
    return out.reshape(ids.shape + row_shape)


# ---------------------------------------------------------------------------
# Accidental hits (SEMANTICS section 3)
# ---------------------------------------------------------------------------

def compute_accidental_hits(true_classes, sampled_candidates, num_true):
    """Reference ``tf.nn.compute_accidental_hits``.

    Parameters
    ----------
    true_classes : array_like of int, shape (B, num_true)
    sampled_candidates : array_like of int, shape (S,)
    num_true : int

    Returns
    -------
    indices : ndarray of int32, shape (H,)
        Row i of each hit.
    ids : ndarray of int64, shape (H,)
        Position k in ``sampled_candidates``: the LAST position holding the
        true class (earlier duplicates are not reported).
    weights : ndarray of float32, shape (H,)
        All equal to -FLT_MAX.

    Hits are emitted in row-major order over (i, j); a label repeated in a
    row is emitted once per repetition.
    """
    true_classes = np.asarray(true_classes, dtype=np.int64).reshape(-1, num_true)
    sampled_candidates = np.asarray(sampled_candidates, dtype=np.int64).reshape(-1)
    last_position = {}
    for k, value in enumerate(sampled_candidates):
        last_position[int(value)] = k  # later duplicates overwrite earlier ones
    indices, ids = [], []
    for i in range(true_classes.shape[0]):
        for j in range(num_true):
            label = int(true_classes[i, j])
            if label in last_position:
                indices.append(i)
                ids.append(last_position[label])
    weights = np.full(len(indices), -FLT_MAX, dtype=np.float32)
    return np.array(indices, dtype=np.int32), np.array(ids, dtype=np.int64), weights


# ---------------------------------------------------------------------------
# Logits (SEMANTICS section 2)
# ---------------------------------------------------------------------------

def _gathered_rows(weights, biases, labels, inputs, sampled, num_true, partition_strategy):
    """Look up the rows for ``concat(labels.ravel(), sampled)`` cast to the inputs dtype.

    Returns (inputs, flat_labels, sampled, W_rows (B*T+S, D), b_rows (B*T+S,)).
    """
    inputs = np.asarray(inputs)
    if inputs.ndim != 2:
        raise ValueError("inputs must have shape (batch, dim)")
    batch = inputs.shape[0]
    flat_labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if flat_labels.size != batch * num_true:
        raise ValueError("labels must have shape (batch, num_true)")
    sampled = np.asarray(sampled, dtype=np.int64).reshape(-1)
    all_ids = np.concatenate([flat_labels, sampled])
    w_rows = lookup(weights, all_ids, partition_strategy).astype(inputs.dtype)
    b_rows = lookup(biases, all_ids, partition_strategy).astype(inputs.dtype)
    return inputs, flat_labels, sampled, w_rows, b_rows


def sampled_logits(weights, biases, labels, inputs, sampled, true_expected_count,
                   sampled_expected_count, num_true=1, remove_accidental_hits=False,
                   subtract_log_q=True, partition_strategy="mod"):
    """Reference ``nn_impl._compute_sampled_logits`` (computed in the inputs dtype).

    Parameters
    ----------
    weights : ndarray (C, D) or list of shards
    biases : ndarray (C,) or list of shards
    labels : array_like of int, shape (B, num_true)
    inputs : ndarray, shape (B, D)
    sampled : array_like of int, shape (S,)
    true_expected_count : array_like, shape (B, num_true)
    sampled_expected_count : array_like, shape (S,)
    num_true : int
    remove_accidental_hits : bool
    subtract_log_q : bool
    partition_strategy : {"mod", "div"}

    Returns
    -------
    logits : ndarray, shape (B, num_true + S), inputs dtype
        ``[x.W[L]+b[L] - ln(tec) | x.W[s]+b[s] + mask - ln(sec)]``; a masked
        (accidental hit) entry is ``logit + (-FLT_MAX)`` in the logits dtype,
        i.e. a huge finite negative number, not -inf.
    targets : ndarray, shape (B, num_true + S), inputs dtype
        1/num_true on the true columns, 0 on the sampled columns.
    """
    inputs, flat_labels, sampled, w_rows, b_rows = _gathered_rows(
        weights, biases, labels, inputs, sampled, num_true, partition_strategy)
    dtype = inputs.dtype
    batch = inputs.shape[0]
    num_sampled = sampled.size
    n_true_rows = batch * num_true

    true_logits = np.empty((batch, num_true), dtype=dtype)
    sampled_part = np.empty((batch, num_sampled), dtype=dtype)
    for i in range(batch):
        for j in range(num_true):
            n = i * num_true + j
            true_logits[i, j] = np.dot(inputs[i], w_rows[n]) + b_rows[n]
        for k in range(num_sampled):
            n = n_true_rows + k
            sampled_part[i, k] = np.dot(inputs[i], w_rows[n]) + b_rows[n]

    if remove_accidental_hits:
        # sparse_to_dense(validate_indices=False): duplicates are ASSIGNED, not summed.
        mask = np.zeros((batch, num_sampled), dtype=dtype)
        hit_rows, hit_cols, hit_weights = compute_accidental_hits(
            flat_labels.reshape(batch, num_true), sampled, num_true)
        for i, k, w in zip(hit_rows, hit_cols, hit_weights):
            mask[i, k] = dtype.type(w)
        sampled_part = sampled_part + mask

    if subtract_log_q:
        # No dtype promotion in TF: counts must have the inputs dtype (we cast;
        # float32 -> float64 is exact). ln(0) = -inf is allowed (gives NaN loss).
        tec = np.asarray(true_expected_count).astype(dtype).reshape(batch, num_true)
        sec = np.asarray(sampled_expected_count).astype(dtype).reshape(num_sampled)
        with np.errstate(divide="ignore"):
            true_logits = true_logits - np.log(tec)
            sampled_part = sampled_part - np.log(sec)

    logits = np.concatenate([true_logits, sampled_part], axis=1)
    targets = np.concatenate(
        [np.ones((batch, num_true), dtype=dtype) / dtype.type(num_true),
         np.zeros((batch, num_sampled), dtype=dtype)], axis=1)
    return logits, targets


# ---------------------------------------------------------------------------
# Losses and gradients (SEMANTICS section 5)
# ---------------------------------------------------------------------------

def _softmax_xent(z, y):
    """Per-row softmax cross-entropy and d loss / d z (float64 arrays)."""
    loss = np.empty(z.shape[0])
    grad = np.empty_like(z)
    for i in range(z.shape[0]):
        row_max = np.max(z[i])
        shifted = z[i] - row_max
        log_sum = np.log(np.sum(np.exp(shifted)))
        log_softmax = shifted - log_sum
        loss[i] = -np.sum(y[i] * log_softmax)
        grad[i] = np.exp(log_softmax) - y[i]
    return loss, grad


def _sigmoid(z):
    """Numerically stable logistic function of a float64 array."""
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _sigmoid_xent(z, y):
    """Per-row sum of sigmoid cross-entropies and d loss / d z (float64 arrays)."""
    elementwise = np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))
    return np.sum(elementwise, axis=1), _sigmoid(z) - y


def _loss_and_grads(xent, weights, biases, labels, inputs, sampled, true_expected_count,
                    sampled_expected_count, num_true, remove_accidental_hits,
                    subtract_log_q, partition_strategy):
    """Shared forward/backward pass; ``xent`` maps (z, y) -> (loss, dloss/dz)."""
    logits, targets = sampled_logits(
        weights, biases, labels, inputs, sampled, true_expected_count,
        sampled_expected_count, num_true, remove_accidental_hits, subtract_log_q,
        partition_strategy)
    inputs, flat_labels, sampled, w_rows, _ = _gathered_rows(
        weights, biases, labels, inputs, sampled, num_true, partition_strategy)
    weight_shards = _as_shard_list(weights)
    bias_shards = _as_shard_list(biases)
    num_weight_rows = sum(s.shape[0] for s in weight_shards)
    num_bias_rows = sum(s.shape[0] for s in bias_shards)

    # float64 from here on; the rows were already rounded to the inputs dtype,
    # exactly as TF uses them.
    z = logits.astype(np.float64)
    y = targets.astype(np.float64)
    x = inputs.astype(np.float64)
    rows = w_rows.astype(np.float64)
    loss, g = xent(z, y)          # g = d sum(loss) / d logits, shape (B, T+S)

    batch, dim = x.shape
    num_sampled = sampled.size
    all_ids = np.concatenate([flat_labels, sampled])
    grad_x = np.zeros((batch, dim))
    grad_w = np.zeros((num_weight_rows, dim))
    grad_b = np.zeros(num_bias_rows)
    # Accumulating by global id equals densifying TF's per-shard IndexedSlices
    # and mapping them back to global order (the id -> (shard, row) map is
    # injective); duplicates (labels and candidates alike) accumulate.
    for i in range(batch):
        for j in range(num_true):
            n = i * num_true + j
            c = all_ids[n]
            grad_x[i] += g[i, j] * rows[n]
            grad_w[c] += g[i, j] * x[i]
            grad_b[c] += g[i, j]
        for k in range(num_sampled):
            n = batch * num_true + k
            c = all_ids[n]
            gik = g[i, num_true + k]
            grad_x[i] += gik * rows[n]
            grad_w[c] += gik * x[i]
            grad_b[c] += gik

    out_dtype = inputs.dtype
    return (loss.astype(out_dtype), grad_x.astype(out_dtype),
            grad_w.astype(weight_shards[0].dtype), grad_b.astype(bias_shards[0].dtype))


def sampled_softmax_loss_and_grads(weights, biases, labels, inputs, sampled,
                                   true_expected_count, sampled_expected_count, num_true=1,
                                   remove_accidental_hits=True, subtract_log_q=True,
                                   partition_strategy="mod"):
    """Reference sampled softmax loss and the gradients of its sum.

    Parameters are those of :func:`sampled_logits` (``sampled`` and the two
    expected counts are TF's ``sampled_values``).

    Returns
    -------
    loss : ndarray (B,), inputs dtype
        ``logsumexp(z_i) - (1/T) sum_j z_ij`` (TF: softmax_cross_entropy_with_logits).
    grad_inputs : ndarray (B, D), inputs dtype
    grad_weights : ndarray (num_rows, D), weights dtype
        Dense, in GLOBAL id order; num_rows = total rows over the weight shards.
    grad_biases : ndarray (num_bias_rows,), biases dtype
    """
    return _loss_and_grads(_softmax_xent, weights, biases, labels, inputs, sampled,
                           true_expected_count, sampled_expected_count, num_true,
                           remove_accidental_hits, subtract_log_q, partition_strategy)


def nce_loss_and_grads(weights, biases, labels, inputs, sampled, true_expected_count,
                       sampled_expected_count, num_true=1, remove_accidental_hits=False,
                       subtract_log_q=True, partition_strategy="mod"):
    """Reference NCE loss and the gradients of its sum.

    Parameters are those of :func:`sampled_logits`.

    Returns
    -------
    loss : ndarray (B,), inputs dtype
        ``sum_j sigmoid_xent(z_ij, y_ij)`` with y = 1/T on the true columns.
    grad_inputs : ndarray (B, D), inputs dtype
    grad_weights : ndarray (num_rows, D), weights dtype, GLOBAL id order
    grad_biases : ndarray (num_bias_rows,), biases dtype
    """
    return _loss_and_grads(_sigmoid_xent, weights, biases, labels, inputs, sampled,
                           true_expected_count, sampled_expected_count, num_true,
                           remove_accidental_hits, subtract_log_q, partition_strategy)


# ---------------------------------------------------------------------------
# Candidate samplers: probabilities and expected counts (SEMANTICS section 6)
# ---------------------------------------------------------------------------

def uniform_prob(ids, range_max):
    """Single-draw probability of the uniform sampler: float32(1/range_max)."""
    ids = np.asarray(ids)
    return np.full(ids.shape, np.float32(1.0 / range_max), dtype=np.float32)


def log_uniform_prob(ids, range_max):
    """Single-draw probability of the log-uniform (Zipfian) sampler.

    ``P(v) = ln((v+2)/(v+1)) / ln(range_max+1)`` in double, rounded to float32.
    """
    ids = np.asarray(ids, dtype=np.int64)
    out = np.empty(ids.shape, dtype=np.float32)
    log_range = np.log1p(np.float64(range_max))
    for idx in np.ndindex(ids.shape):
        v = float(ids[idx])
        out[idx] = np.float32(np.log((v + 2.0) / (v + 1.0)) / log_range)
    return out


def fixed_unigram_weights(unigrams, distortion=1.0, num_reserved_ids=0, num_shards=1, shard=0):
    """Weight list of TF's fixed_unigram sampler for one shard.

    Returns
    -------
    weights : ndarray of float32
        Reserved ids of this shard get 0; the t-th unigram gets
        ``powf(u_t, distortion)`` if ``(start + t) % num_shards == shard``, where
        ``start`` is the number of reserved ids that fell in this shard (TF quirk).
    total : numpy.float32
        Sum of the unigram weights, accumulated sequentially in float32 in id order.
    """
    weights = []
    for reserved_id in range(num_reserved_ids):
        if reserved_id % num_shards == shard:
            weights.append(np.float32(0.0))
    start = len(weights)
    total = np.float32(0.0)
    dist = np.float32(distortion)
    for t, u in enumerate(np.asarray(unigrams, dtype=np.float32)):
        word_id = start + t
        if word_id % num_shards == shard:
            w = np.float32(np.power(u, dist))
            weights.append(w)
            total = np.float32(total + w)
    return np.array(weights, dtype=np.float32), total


def fixed_unigram_prob(ids, unigrams, distortion=1.0, num_reserved_ids=0, num_shards=1,
                       shard=0):
    """Single-draw probability ``w_v / total`` (float32) of the fixed_unigram sampler.

    ``ids`` are indices into the shard-local weight list; ids outside it get 0.
    """
    weights, total = fixed_unigram_weights(unigrams, distortion, num_reserved_ids,
                                           num_shards, shard)
    ids = np.asarray(ids, dtype=np.int64)
    out = np.zeros(ids.shape, dtype=np.float32)
    for idx in np.ndindex(ids.shape):
        v = int(ids[idx])
        if 0 <= v < weights.size:
            out[idx] = np.float32(weights[v] / total)
    return out


def learned_unigram_prob(ids, range_max, prior_true_classes=()):
    """Single-draw probability of the learned_unigram sampler (float32).

    Counts start at 1 for every id in [0, range_max); each entry of
    ``prior_true_classes`` (all true classes fed to the op in earlier calls)
    adds 1. ``P(v) = float32(count_v) / float32(sum counts)``.
    """
    counts = np.ones(range_max, dtype=np.int64)
    for c in np.asarray(prior_true_classes, dtype=np.int64).reshape(-1):
        counts[c] += 1
    total = np.float32(counts.sum())
    ids = np.asarray(ids, dtype=np.int64)
    out = np.empty(ids.shape, dtype=np.float32)
    for idx in np.ndindex(ids.shape):
        out[idx] = np.float32(np.float32(counts[ids[idx]]) / total)
    return out


def expected_count(p, num_tries, num_sampled):
    """Expected count of values with single-draw probability ``p`` (float32).

    ``p * num_sampled`` if ``num_tries == num_sampled`` (no rejection happened),
    else ``-expm1(num_tries * log1p(-p))``, all in float32.
    """
    p = np.asarray(p, dtype=np.float32)
    if num_tries == num_sampled:
        return (p * np.float32(num_sampled)).astype(np.float32)
    return (-np.expm1(np.float32(num_tries) * np.log1p(-p))).astype(np.float32)


def sampled_candidates_from_stream(stream, num_sampled, unique):
    """Turn a stream of independent draws into sampler output.

    Parameters
    ----------
    stream : array_like of int
        Independent draws, in order.
    num_sampled : int
    unique : bool

    Returns
    -------
    candidates : ndarray of int64, shape (num_sampled,)
        unique=False: the first ``num_sampled`` draws. unique=True: the first
        ``num_sampled`` distinct values, in order of first appearance.
    num_tries : int
        Number of draws consumed (position of the last one kept + 1).
    """
    stream = np.asarray(stream, dtype=np.int64).reshape(-1)
    if not unique:
        if stream.size < num_sampled:
            raise ValueError("stream too short")
        return stream[:num_sampled].copy(), num_sampled
    seen = set()
    candidates = []
    for position, value in enumerate(stream):
        if len(candidates) == num_sampled:
            break
        if int(value) not in seen:
            seen.add(int(value))
            candidates.append(int(value))
            num_tries = position + 1
    if len(candidates) < num_sampled:
        raise ValueError("stream has fewer than num_sampled distinct values")
    if num_sampled == 0:
        num_tries = 0
    return np.array(candidates, dtype=np.int64), num_tries


# ---------------------------------------------------------------------------
# Counter-based random numbers (SplitMix64), as the kernels draw them
# ---------------------------------------------------------------------------
#
# The i-th draw of a stream is SplitMix64's output started at the stream's key:
# mix64(key + i * GAMMA) mod 2**64. Plain Python integers, masked to 64 bits.

_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_STREAM_SALT = 0xD1B54A32D192ED03


def _mix64(z):
    """SplitMix64's finaliser of one 64-bit integer."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def splitmix64_stream_key(seed, stream):
    """Key of random stream ``stream`` under ``seed`` (both integers in [0, 2**64))."""
    seed, stream = int(seed), int(stream)
    return _mix64((_mix64(seed) + (stream + 1) * _STREAM_SALT) & _MASK64)


def splitmix64_bits(key, counter):
    """The ``counter``-th 64 random bits of the stream ``key`` (an integer)."""
    key, counter = int(key), int(counter)
    return _mix64((key + counter * _GAMMA) & _MASK64)


# ---------------------------------------------------------------------------
# Alias tables, packed as fastsampled stores them
# ---------------------------------------------------------------------------
#
# One uint64 per column: high 32 bits the acceptance threshold (probability * 2**32),
# low 32 bits the alias.

def alias_pick(table, r1, r2):
    """One draw from a packed alias table given two 64-bit random integers.

    Column ``j = floor(u * V)`` with ``u`` the top 53 bits of ``r1`` as a fraction in
    [0, 1); the column is kept when the top 32 bits of ``r2`` are below its threshold,
    else its alias is returned.
    """
    n = len(table)
    u = (int(r1) >> 11) / 2.0**53   # exact: a 53-bit integer times a power of two
    j = min(int(u * float(n)), n - 1)
    entry = int(table[j])
    if (int(r2) >> 32) < (entry >> 32):
        return j
    return entry & 0xFFFFFFFF


def alias_table_probs(table):
    """Probability of each class under :func:`alias_pick` (float64, shape (V,)).

    Each column is chosen with probability 1/V (up to the 2**-53 granularity of ``u``);
    it gives itself with probability threshold / 2**32 and its alias otherwise.
    """
    n = len(table)
    mass = np.zeros(n)
    for j in range(n):
        entry = int(table[j])
        accept = (entry >> 32) / 2.0**32
        mass[j] += accept
        mass[entry & 0xFFFFFFFF] += 1.0 - accept
    return mass / n


# ---------------------------------------------------------------------------
# Word2vec training (fastsampled._w2v_kernels, one worker)
# ---------------------------------------------------------------------------
#
# What one block of training does, written out plainly:
#
# * One random stream per block, key ``stream_key(seed, stream)``; its counter starts at
#   0 and every draw takes the next counter value.
# * Per sentence: one draw per word, in order; the word is kept when the top 32 bits of
#   the draw are below its keep threshold (subsampling; a threshold of 2**32 always keeps,
#   but the draw is made all the same). Windows are formed over the kept words only.
# * Per kept centre word, in order: one draw for the window, ``b = 1 + (top 32 bits) %
#   window``; the context is the kept words at distance 1 .. b on both sides. Then
#   ``negative`` candidates, two draws each (column, coin) from the alias table; a
#   candidate equal to the centre word is dropped. These draws are made even when the
#   context is empty (a one-word sentence), and that window is then skipped.
# * One update per window (HogBatch): input rows X (skip-gram: each context word's input
#   vector; CBOW: one row, their mean) and output rows Y (centre word, then the
#   candidates, duplicates kept) give logits Z = X Y^T, and the error
#   E = alpha * (label - prediction), all from the values before the window's update.
#   Then every output row ``o`` gains ``sum_a E[a, o] X[a]`` and every input row ``a``
#   gains ``sum_o E[a, o] Y[o]`` (CBOW: every context word gains that row's error,
#   unscaled, as in word2vec.c). A row listed twice gets both updates.
# * Losses: "negative_sampling": sigmoid with label 1 for the centre word and 0 for the
#   candidates; "nce": the same on ``Z - log Q`` with ``Q = num_sampled * p(word)`` (the
#   ``logq`` argument); "sampled_softmax": softmax over [centre] + candidates of
#   ``Z - log Q``, target the centre word. Sigmoid logits are clamped to [-50, 50] (the
#   sigmoid is saturated in float64 beyond that; the loss of a row is then at most 50).
# * The learning rate is constant within a block; the kernel takes it as float32.
#
# Arithmetic: each window's update is computed in float64 from the float32 rows and
# rounded to float32 once per row written (a row listed twice: its summed update).

W2V_LOSSES = ("negative_sampling", "sampled_softmax", "nce")
W2V_CLAMP = 50.0


def w2v_keep_thresholds(counts, sample):
    """Subsampling: probability of keeping each word and its uint64 threshold.

    ``t = sample * sum(counts)`` (``sample >= 1``: ``t = sample``); keep probability
    ``min(1, (sqrt(c / t) + 1) * t / c)``; threshold ``round(p * 2**32)`` (half to even).
    ``sample == 0``: every word is kept (threshold 2**32).
    """
    counts = [int(c) for c in counts]
    p = np.ones(len(counts))
    if sample:
        t = sample * float(sum(counts)) if sample < 1.0 else float(sample)
        for i, c in enumerate(counts):
            p[i] = min(1.0, (np.sqrt(c / t) + 1.0) * t / c)
    thresholds = np.array([round(q * 2.0**32) for q in p], dtype=np.uint64)
    return p, thresholds


def _softplus(z):
    """log(1 + exp(z)) for a float |z| <= 50 (float64)."""
    return float(np.log1p(np.exp(z)))


def w2v_window_update(syn0, syn1, centre, context, candidates, alpha, sg,
                      loss="negative_sampling", logq=None):
    """Apply one window's update to ``syn0`` / ``syn1`` in place.

    Parameters
    ----------
    syn0, syn1 : ndarray of float32, shape (V, D)
        Input and output vectors.
    centre : int
        The centre word (label 1 / the softmax target).
    context : sequence of int
        Context word ids, non-empty.
    candidates : sequence of int
        Sampled candidates, the centre word already removed.
    alpha : float
        Learning rate.
    sg : bool
        Skip-gram (one input row per context word) or CBOW (one row, their mean).
    loss : {"negative_sampling", "sampled_softmax", "nce"}
    logq : ndarray of float64, shape (V,), optional
        ``log(num_sampled * p(word))``; needed by "sampled_softmax" and "nce".

    Returns
    -------
    loss : float
        Summed over input rows: ``-log p(label)`` per (input row, output row) pair, or
        the softmax cross-entropy per input row.
    pairs : int
        Number of input rows.
    """
    if loss not in W2V_LOSSES:
        raise ValueError(f"loss must be one of {W2V_LOSSES}, got {loss!r}")
    outputs = [int(centre)] + [int(c) for c in candidates]
    context = [int(c) for c in context]
    dim = syn0.shape[1]
    if sg:
        x = np.array([syn0[c].astype(np.float64) for c in context])       # (nin, D)
    else:
        total = np.zeros(dim)
        for c in context:
            total += syn0[c].astype(np.float64)
        x = (total / len(context))[None, :]                                # (1, D)
    y = np.array([syn1[o].astype(np.float64) for o in outputs])           # (nout, D)
    nin, nout = x.shape[0], y.shape[0]
    shift = np.zeros(nout)
    if loss != "negative_sampling":
        shift = np.array([float(logq[o]) for o in outputs])

    err = np.zeros((nin, nout))   # alpha * (label - prediction)
    total_loss = 0.0
    for a in range(nin):
        z = np.array([float(np.dot(x[a], y[o])) - shift[o] for o in range(nout)])
        if loss == "sampled_softmax":
            m = z.max()
            e = np.exp(z - m)
            prob = e / e.sum()
            total_loss += float(np.log(e.sum()) + m - z[0])
            for o in range(nout):
                err[a, o] = alpha * ((1.0 if o == 0 else 0.0) - prob[o])
        else:
            for o in range(nout):
                zo = min(max(z[o], -W2V_CLAMP), W2V_CLAMP)
                sig = 1.0 / (1.0 + np.exp(-zo))
                if o == 0:
                    total_loss += _softplus(-zo)      # -log sigmoid(z)
                    err[a, o] = alpha * (1.0 - sig)
                else:
                    total_loss += _softplus(zo)       # -log (1 - sigmoid(z))
                    err[a, o] = -alpha * sig

    # Both updates from the values before the window.
    d_out = {}
    for o in range(nout):
        step = np.zeros(dim)
        for a in range(nin):
            step += err[a, o] * x[a]
        d_out[outputs[o]] = d_out.get(outputs[o], 0.0) + step
    d_in = {}
    for a in range(nin):
        step = np.zeros(dim)
        for o in range(nout):
            step += err[a, o] * y[o]
        if sg:
            d_in[context[a]] = d_in.get(context[a], 0.0) + step
        else:
            for c in context:
                d_in[c] = d_in.get(c, 0.0) + step
    for row, step in d_out.items():
        syn1[row] = (syn1[row].astype(np.float64) + step).astype(np.float32)
    for row, step in d_in.items():
        syn0[row] = (syn0[row].astype(np.float64) + step).astype(np.float32)
    return total_loss, nin


def w2v_train_block(syn0, syn1, sentences, keep_thresholds, alias_table, seed, stream, alpha,
                    window, negative, sg, loss="negative_sampling", logq=None,
                    bits=splitmix64_bits, stream_key=splitmix64_stream_key):
    """Train one block of sentences with one worker; updates ``syn0`` / ``syn1`` in place.

    Parameters
    ----------
    syn0, syn1 : ndarray of float32, shape (V, D)
    sentences : sequence of sequences of int
        The block's sentences as word ids.
    keep_thresholds : ndarray of uint64, shape (V,)
        From :func:`w2v_keep_thresholds` (2**32: always kept).
    alias_table : ndarray of uint64, shape (V,)
        Packed alias table of the candidate distribution (see :func:`alias_pick`).
    seed, stream : int
        The block's random stream is ``stream_key(seed, stream)``.
    alpha : float
        The block's learning rate.
    window, negative : int
        Largest window; candidates per centre word.
    sg : bool
    loss : {"negative_sampling", "sampled_softmax", "nce"}
    logq : ndarray of float64, shape (V,), optional
    bits, stream_key : callables
        The counter-based generator ``bits(key, counter)`` and ``stream_key(seed,
        stream)``; by default the SplitMix64 of this module. They are called with numpy
        uint64 arguments, so the kernels' own functions can be passed.

    Returns
    -------
    loss : float
    effective_words : int
        Words kept by subsampling.
    pairs : int
        (input row, centre word) pairs trained.
    """
    alpha = float(np.float32(alpha))
    key = np.uint64(int(stream_key(np.uint64(seed), np.uint64(stream))))
    counter = 0

    def draw():
        nonlocal counter
        r = int(bits(key, np.uint64(counter)))
        counter += 1
        return r

    total_loss, effective, pairs = 0.0, 0, 0
    for sentence in sentences:
        kept = [int(w) for w in sentence if (draw() >> 32) < int(keep_thresholds[int(w)])]
        effective += len(kept)
        for i, centre in enumerate(kept):
            b = 1 + (draw() >> 32) % window
            context = [kept[j] for j in range(max(0, i - b), min(len(kept), i + b + 1))
                       if j != i]
            candidates = []
            for _ in range(negative):
                r1 = draw()
                r2 = draw()
                c = alias_pick(alias_table, r1, r2)
                if c != centre:
                    candidates.append(c)
            if not context:
                continue
            window_loss, n = w2v_window_update(syn0, syn1, centre, context, candidates,
                                               alpha, sg, loss, logq)
            total_loss += window_loss
            pairs += n
    return total_loss, effective, pairs


def w2v_blocks(sentence_lengths, batch_words):
    """First sentence of each block (and the number of sentences at the end).

    A block starts at sentence 0 and at every sentence whose start (in words from the
    beginning of the corpus) is the first at or after a multiple of ``batch_words``.
    """
    first_word = [0]
    for n in sentence_lengths:
        first_word.append(first_word[-1] + int(n))
    starts = [s for s in range(len(sentence_lengths))
              if s == 0 or first_word[s] // batch_words != first_word[s - 1] // batch_words]
    return starts + [len(sentence_lengths)]


def w2v_train(syn0, syn1, sentences, keep_thresholds, alias_table, seed, alpha, min_alpha,
              epochs, window, negative, sg, batch_words, loss="negative_sampling", logq=None,
              bits=splitmix64_bits, stream_key=splitmix64_stream_key):
    """``Word2Vec.train`` with one worker and the linear learning-rate schedule.

    The corpus is cut into blocks (:func:`w2v_blocks`); block ``b`` of epoch ``e`` uses the
    random stream ``e * num_blocks + b`` and the rate ``max(min_alpha, alpha - (alpha -
    min_alpha) * (e * N + x) / (epochs * N))``, ``N`` the words of the corpus and ``x``
    those before the block. Returns the loss of each epoch and the effective words and
    pairs of all epochs.
    """
    lengths = [len(s) for s in sentences]
    starts = w2v_blocks(lengths, batch_words)
    nblocks = len(starts) - 1
    total_words = sum(lengths)
    epoch_losses, effective, pairs = [], 0, 0
    for epoch in range(epochs):
        epoch_loss = 0.0
        for b in range(nblocks):
            before = sum(lengths[:starts[b]])
            progress = (epoch * total_words + before) / (epochs * total_words)
            rate = max(min_alpha, alpha - (alpha - min_alpha) * progress)
            block_loss, eff, n = w2v_train_block(
                syn0, syn1, sentences[starts[b]:starts[b + 1]], keep_thresholds, alias_table,
                seed, epoch * nblocks + b, rate, window, negative, sg, loss, logq, bits,
                stream_key)
            epoch_loss += block_loss
            effective += eff
            pairs += n
        epoch_losses.append(epoch_loss)
    return epoch_losses, effective, pairs
