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
