"""The word2vec training kernel against the plain reference of ``tests/reference.py``.

One worker and a fixed seed: the kernel (``_w2v_kernels.train_blocks``, what
``Word2Vec.train`` calls for each group of blocks, and ``Word2Vec.train`` itself) and the
reference start from identical copies of ``syn0`` / ``syn1neg`` and must end with the same
vectors, losses, effective words and pairs.

How exact: the random draws are the same integers (the reference is given ``_rng.bits`` and
``_rng.stream_key``), so every discrete choice -- kept words, window sizes, candidates --
is identical, and so are the effective words, the pairs and the set of rows each run
changes; these are compared exactly. The vectors agree to float32 rounding only, not bit
for bit: the kernel is compiled with fastmath (its float32 dot products are reassociated
into vector lanes, multiply-adds are fused), keeps the errors and the input-side error in
float32, and applies a row's updates one after the other, while the reference computes each
window's update in float64 and rounds once per row written. Each such rounding is about
2**-24 relative; over the few hundred windows here the vectors end up about 1e-7 apart,
well inside ``ATOL`` = 1e-6, while the updates are orders of magnitude larger: a wrong kept
word, window, candidate, stream, learning rate or update order (a pair-by-pair word2vec.c
update instead of one update per window) lands far outside it.
"""
import numba
import numpy as np
import pytest

import reference as ref
import fastsampled as fs
from fastsampled import _rng
from fastsampled import _w2v_kernels as K
from fastsampled import word2vec as W

pytestmark = pytest.mark.kernel

LOSS_MODES = {"negative_sampling": 0, "sampled_softmax": 1, "nce": 2}
V, DIM = 20, 8
ATOL = 1e-6       # absolute, on vectors of size 0.01 .. 0.5 (see the module docstring)
LOSS_RTOL = 1e-6  # the loss is a float64 sum; only the float32 logits differ
RNG = dict(bits=_rng.bits, stream_key=_rng.stream_key)


@pytest.fixture
def one_thread():
    """Blocks of one train_blocks call run in order on one thread (no Hogwild race)."""
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(old)


def _tiny_corpus(seed=0):
    """A few short sentences over 20 word ids, Zipf-like frequencies, every id present,
    one one-word sentence (a window with no context)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, V + 1)
    lengths = [5, 1, 7, 3, 9, 6, 2, 8, 4, 6]
    sents = [rng.choice(V, n, p=p / p.sum()).tolist() for n in lengths]
    sents.append(rng.permutation(V).tolist()[:12])
    sents.append(rng.permutation(V).tolist()[:10])
    missing = sorted(set(range(V)) - {w for s in sents for w in s})
    if missing:
        sents.append(missing)
    return sents


def _encode(sentences):
    """The kernel's corpus stream (uint16, ids >= 65535 escaped) and sentence offsets."""
    stream = []
    off = [0]
    for s in sentences:
        for w in s:
            stream += [w] if w < K.ESCAPE else [K.ESCAPE, w >> 16, w & 0xFFFF]
        off.append(len(stream))
    return np.array(stream, np.uint16), np.array(off, np.int64)


def _tables(counts, sample, nneg, ns_exponent=0.75):
    keep = W.keep_probabilities(counts, sample)[1]
    w = np.asarray(counts, np.float64) ** ns_exponent
    table = fs.AliasTable(w).table
    logq = np.log(nneg * w / w.sum())
    return keep, table, logq


def _vectors(n, seed=1):
    rng = np.random.default_rng(seed)
    syn0 = rng.uniform(-0.5, 0.5, (n, DIM)).astype(np.float32) / DIM
    syn1 = rng.uniform(-0.1, 0.1, (n, DIM)).astype(np.float32)
    return syn0, syn1


def _assert_same_vectors(got, want, before, name):
    # The same rows were written (exact) ...
    np.testing.assert_array_equal((got != before).any(axis=1), (want != before).any(axis=1),
                                  err_msg=f"{name}: different rows updated")
    # ... with the same values up to float32 rounding.
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL, err_msg=name)


def _run_both(sentences, block_sent, syn0, syn1, counts, sample, sg, loss, seed=12345,
              first_block=2, stream_base=5, window=3, nneg=5):
    """train_blocks and the reference on copies of (syn0, syn1); compare everything."""
    keep, table, logq = _tables(counts, sample, nneg)
    alphas = np.linspace(0.1, 0.04, len(block_sent) - 1)
    stream, sent_off = _encode(sentences)
    nb = alphas.size
    k0, k1 = syn0.copy(), syn1.copy()
    loss_out = np.zeros(nb)
    eff_out = np.zeros(nb, np.int64)
    pairs_out = np.zeros(nb, np.int64)
    K.train_blocks(k0, k1, stream, sent_off, np.asarray(block_sent, np.int64), first_block,
                   alphas, keep, table, logq, np.uint64(seed), np.uint64(stream_base), window,
                   nneg, sg, LOSS_MODES[loss], loss_out, eff_out, pairs_out)

    r0, r1 = syn0.copy(), syn1.copy()
    for i in range(nb):
        block = sentences[block_sent[i]:block_sent[i + 1]]
        want_loss, want_eff, want_pairs = ref.w2v_train_block(
            r0, r1, block, keep, table, seed, stream_base + first_block + i, alphas[i],
            window, nneg, sg, loss, logq, **RNG)
        assert eff_out[i] == want_eff
        assert pairs_out[i] == want_pairs
        assert loss_out[i] == pytest.approx(want_loss, rel=LOSS_RTOL)
    _assert_same_vectors(k0, r0, syn0, "syn0")
    _assert_same_vectors(k1, r1, syn1, "syn1neg")
    return eff_out, pairs_out


# ------------------------------------------------------------------ pieces of the reference
def test_splitmix_reference_draws_the_kernels_numbers():
    for seed in (0, 1, 12345, 2**64 - 1):
        for stream in (0, 1, 7, 2**40):
            key = ref.splitmix64_stream_key(seed, stream)
            assert key == int(_rng.stream_key(np.uint64(seed), np.uint64(stream)))
            for counter in (0, 1, 2, 1000, 2**63 + 5):
                assert ref.splitmix64_bits(key, counter) == \
                    int(_rng.bits(np.uint64(key), np.uint64(counter)))


def test_keep_thresholds_and_alias_table_match_model_settings():
    counts = np.bincount([w for s in _tiny_corpus() for w in s], minlength=V)
    for sample in (0.0, 0.02, 1e-3, 3.0):
        p, thr = ref.w2v_keep_thresholds(counts, sample)
        want_p, want_thr = W.keep_probabilities(counts, sample)
        np.testing.assert_array_equal(thr, want_thr)
        np.testing.assert_allclose(p, want_p, rtol=1e-15)
    w = counts.astype(np.float64) ** 0.75
    # The packed table encodes counts ** 0.75 (thresholds are quantised to 2**-32).
    np.testing.assert_allclose(ref.alias_table_probs(fs.AliasTable(w).table), w / w.sum(),
                               rtol=0, atol=1e-9)


def test_block_rule_matches_model():
    rng = np.random.default_rng(5)
    for batch in (1, 7, 30, 10000):
        words = rng.integers(1, 12, 60).astype(np.uint16)
        bsent = W.block_boundaries(words, words, batch)[0]
        assert ref.w2v_blocks(words.tolist(), batch) == bsent.tolist()


# ------------------------------------------------------------------ the kernel
@pytest.mark.parametrize("loss", list(LOSS_MODES))
@pytest.mark.parametrize("sample", [0.0, 0.02], ids=["all-words", "subsampled"])
@pytest.mark.parametrize("sg", [1, 0], ids=["skipgram", "cbow"])
def test_train_blocks_matches_reference(one_thread, sg, sample, loss):
    sents = _tiny_corpus()
    counts = np.bincount([w for s in sents for w in s], minlength=V)
    syn0, syn1 = _vectors(V)
    eff, pairs = _run_both(sents, [0, 4, 8, len(sents)], syn0, syn1, counts, sample, sg, loss)
    total = sum(len(s) for s in sents)
    if sample:
        assert eff.sum() < 0.9 * total   # subsampling did drop words
    else:
        assert eff.sum() == total
    assert pairs.sum() > 0


@pytest.mark.parametrize("sg", [1, 0], ids=["skipgram", "cbow"])
def test_train_blocks_matches_reference_escaped_ids(one_thread, sg):
    # Ids >= 65535 take three stream entries; the kernel must still read the right words.
    n = 70000
    big = [65534, 65535, 65536, 69999]
    sents = [[0, 65535, 3, 69999, 1], [65534, 2, 65536, 65535, 0, 5], [69999, 65536]]
    counts = np.ones(n, np.int64)
    counts[:V] = 50
    for w in big:
        counts[w] = 40
    syn0, syn1 = _vectors(n)
    _run_both(sents, [0, 2, 3], syn0, syn1, counts, 0.0, sg, "negative_sampling")


# ------------------------------------------------------------------ Word2Vec.train
@pytest.mark.parametrize("sample", [0.0, 0.02], ids=["all-words", "subsampled"])
@pytest.mark.parametrize("sg", [1, 0], ids=["skipgram", "cbow"])
def test_word2vec_train_matches_reference(sg, sample):
    # Words, not ids: the model numbers them by descending count.
    sents = [[f"w{i}" for i in s] for s in _tiny_corpus(seed=3)]
    model = fs.Word2Vec(vector_size=DIM, window=3, min_count=1, sample=sample, sg=sg,
                        negative=5, epochs=2, alpha=0.08, min_alpha=0.001, workers=1, seed=99,
                        progress=False, batch_words=12, corpus_in_memory=True)
    model.build_vocab(sentences=sents)
    ids = [[model.key_to_index[w] for w in s] for s in sents]
    syn0, syn1 = model.syn0.copy(), model.syn1neg.copy()
    assert not syn1.any()   # output vectors start at zero
    result = model.train()

    keep = ref.w2v_keep_thresholds(model.counts, sample)[1]
    w = model.counts.astype(np.float64) ** 0.75
    np.testing.assert_allclose(ref.alias_table_probs(model._alias.table), w / w.sum(),
                               rtol=0, atol=1e-9)
    r0, r1 = syn0.copy(), syn1.copy()
    losses, eff, pairs = ref.w2v_train(r0, r1, ids, keep, model._alias.table, 99, 0.08, 0.001,
                                       2, 3, 5, sg, 12, **RNG)
    assert len(ref.w2v_blocks([len(s) for s in ids], 12)) > 4   # several rates per epoch
    assert result["effective_words"] == eff
    assert model.epoch_losses == pytest.approx(losses, rel=LOSS_RTOL)
    _assert_same_vectors(model.syn0, r0, syn0, "syn0")
    _assert_same_vectors(model.syn1neg, r1, syn1, "syn1neg")


@pytest.mark.kernel
def test_the_loss_stays_finite_with_many_saturated_negatives():
    """The label probabilities of a row are multiplied before their log is taken; with
    many negatives, each as small as sigmoid(-50), the product must not underflow."""
    V, D = 20, 8
    syn0 = np.full((V, D), 3.0, np.float32)      # every logit 72, clamped to 50
    syn1 = syn0.copy()
    table = fs.AliasTable(np.arange(V, 0, -1) ** 0.75).table
    keep = np.full(V, 2**32, np.uint64)
    out = np.zeros(1)
    eff, pairs = np.zeros(1, np.int64), np.zeros(1, np.int64)
    K.train_blocks(syn0, syn1, np.array([0, 1], np.uint16), np.array([0, 2]),
                   np.array([0, 1]), 0, np.array([0.025]), keep, table, np.zeros(V),
                   np.uint64(1), np.uint64(0), 1, 20, 1, 0, out, eff, pairs)
    assert np.isfinite(out[0]) and out[0] > 1000
