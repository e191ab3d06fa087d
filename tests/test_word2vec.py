"""Word2Vec: corpus encoding, vocabulary, schedule helpers, training kernels, errors."""
import collections
import gc
import os
import tempfile

import numpy as np
import pytest

from fastsampled import _corpus
from fastsampled import word2vec as W
from fastsampled.word2vec import Word2Vec


def _topic_corpus(n=1500, length=12, seed=0):
    """Two disjoint topic vocabularies; every sentence draws from one topic."""
    rng = np.random.default_rng(seed)
    a = [f"a{i}" for i in range(15)]
    b = [f"b{i}" for i in range(15)]
    return [[str(w) for w in rng.choice(a if rng.random() < 0.5 else b, length)]
            for _ in range(n)]


def _neighbours(model, word, topn=5):
    vecs = model.syn0 / np.linalg.norm(model.syn0, axis=1, keepdims=True)
    i = model.key_to_index[word]
    sims = vecs @ vecs[i]
    sims[i] = -np.inf
    return [model.index_to_key[j] for j in np.argsort(-sims)[:topn]]


def _write(tmp_path, sentences, name="c.txt"):
    p = tmp_path / name
    p.write_text("".join(" ".join(s) + "\n" for s in sentences), encoding="utf-8")
    return p


# ------------------------------------------------------------------ corpus and vocabulary
def _plain_vocab(sentences, min_count):
    counts = collections.Counter(w for s in sentences for w in s)
    first = {}
    for s in sentences:
        for w in s:
            first.setdefault(w, len(first))
    words = sorted((w for w in counts if counts[w] >= min_count),
                   key=lambda w: (-counts[w], first[w]))
    index = {w: i for i, w in enumerate(words)}
    encoded = [[index[w] for w in s if w in index] for s in sentences]
    return words, [counts[w] for w in words], [e for e in encoded if e]


@pytest.mark.parametrize("source", ["sentences", "file"])
def test_vocab_and_encoding_match_plain_count(tmp_path, source):
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(40)]
    p = 1.0 / np.arange(1, 41)
    sents = [list(rng.choice(words, rng.integers(1, 9), p=p / p.sum())) for _ in range(300)]
    sents.append(["ünïcödé", "ünïcödé", "rare"])
    model = Word2Vec(min_count=2, progress=False)
    if source == "file":
        model.build_vocab(corpus_file=_write(tmp_path, sents))
    else:
        model.build_vocab(sentences=iter(sents))  # a one-shot generator is fine
    vocab, counts, encoded = _plain_vocab(sents, 2)
    assert model.index_to_key == vocab
    assert model.counts.tolist() == counts
    assert model._decoded_corpus() == encoded
    assert model.corpus_total_words == sum(len(s) for s in sents)


def test_max_final_vocab_raises_min_count():
    sents = [["a"] * 9 + ["b"] * 7 + ["c"] * 7 + ["d"] * 3 + ["e"] * 2]
    model = Word2Vec(min_count=1, max_final_vocab=2, progress=False).build_vocab(sentences=sents)
    # gensim: min_count becomes (count of the 3rd word) + 1 = 8, so only "a" remains
    assert model.index_to_key == ["a"]
    model = Word2Vec(min_count=1, max_final_vocab=3, progress=False).build_vocab(sentences=sents)
    assert model.index_to_key == ["a", "b", "c"]


@pytest.mark.parametrize("source", ["sentences", "file", "file-in-memory", "file-chunks"])
def test_large_vocabulary_ids_escaped(tmp_path, monkeypatch, source):
    # ids >= 65535 take three uint16 entries in the corpus stream; a file's provisional ids
    # (its first-occurrence order) are spilled in that format, chunk by chunk, and read back
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(70000)]
    sents = [words[i:i + 7] + words[i:i + 3] for i in range(0, 70000, 7)]
    sents = [sents[i] for i in rng.permutation(len(sents))]
    if source == "file-chunks":   # some 150 chunks, each spilled and read back on its own
        monkeypatch.setattr(_corpus, "_CHUNK_BYTES", 4096)
    model = Word2Vec(min_count=1, progress=False, corpus_in_memory=source == "file-in-memory")
    if source.startswith("file"):
        model.build_vocab(corpus_file=_write(tmp_path, sents))
    else:
        model.build_vocab(sentences=sents)
    vocab, _, encoded = _plain_vocab(sents, 1)
    assert model.index_to_key == vocab
    assert model._decoded_corpus() == encoded


@pytest.mark.kernel
def test_stream_decodes_to_the_ids_encoded():
    from fastsampled._w2v_kernels import decode_stream, encode_part
    ids = np.array([0, 65534, 65535, 65536, 7, 2**31 - 1, 3], np.int32)
    lens = np.array([3, 4])
    out = np.empty(3 * ids.size, np.uint16)
    words, units = np.empty(2, np.uint16), np.empty(2, np.uint16)
    end, nsent = encode_part(ids, lens, np.arange(2**31, dtype=np.int64), out, 0, words, units)
    assert (end, nsent, words.tolist()) == (13, 2, [3, 4])
    back = np.empty(end, np.int32)
    n, top = decode_stream(out[:end], back)
    assert n == ids.size and top == 2**31 - 1 and back[:n].tolist() == ids.tolist()
    # an escape cut off by the end of the stream ends it (no read past the stream)
    n, top = decode_stream(out[:4], back)
    assert (n, top, back[:n].tolist()) == (2, 65534, [0, 65534])


@pytest.mark.parametrize("source", ["sentences", "file"])
def test_long_lines_split_into_10000_token_pieces(tmp_path, source):
    sent = [f"w{i % 7}" for i in range(23456)]
    model = Word2Vec(min_count=1, progress=False)
    if source == "file":
        model.build_vocab(corpus_file=_write(tmp_path, [sent, ["w1", "w2"]]))
    else:
        model.build_vocab(sentences=[sent, ["w1", "w2"]])
    assert [len(s) for s in model._decoded_corpus()] == [10000, 10000, 3456, 2]


def test_keep_probabilities_follow_formula():
    counts = np.array([100000, 5000, 300, 20, 1])
    p, thr = W.keep_probabilities(counts, 1e-3)
    t = 1e-3 * counts.sum()
    want = np.minimum(1.0, (np.sqrt(counts / t) + 1) * t / counts)
    np.testing.assert_allclose(p, want)
    assert thr.dtype == np.uint64 and thr[-1] == 2**32
    np.testing.assert_array_equal(W.keep_probabilities(counts, 0)[0], 1.0)


@pytest.mark.kernel
def test_subsampling_keeps_expected_fraction():
    rng = np.random.default_rng(1)
    p = 1.0 / np.arange(1, 201) ** 1.1
    words = [f"w{i}" for i in range(200)]
    sents = [list(rng.choice(words, 20, p=p / p.sum())) for _ in range(2000)]
    model = Word2Vec(min_count=1, sample=1e-3, epochs=1, vector_size=8, workers=1,
                     progress=False).build_vocab(sentences=sents)
    res = model.train()
    expected = float((model.keep_prob * model.counts).sum())
    sd = float(np.sqrt((model.keep_prob * (1 - model.keep_prob) * model.counts).sum()))
    assert abs(res["effective_words"] - expected) < 5 * sd + 1
    assert res["effective_words"] < 0.8 * model.corpus_total_words


def test_reduced_window_uniform():
    from fastsampled._rng import bits
    from fastsampled._w2v_kernels import reduced_window

    key = np.uint64(12345)
    draws = [reduced_window(np.uint64(bits(key, np.uint64(i))), 5) for i in range(5000)]
    counts = np.bincount(draws, minlength=6)
    assert counts[0] == 0 and counts[1:].sum() == 5000
    assert np.all(np.abs(counts[1:] - 1000) < 150)


def test_lr_schedule_linear_over_all_epochs():
    starts = np.array([0, 250, 500, 750])
    a0 = W.block_alphas(starts, 1000, 0, 2, 0.025, 1e-4)
    a1 = W.block_alphas(starts, 1000, 1, 2, 0.025, 1e-4)
    allv = np.concatenate((a0, a1))
    assert allv[0] == pytest.approx(0.025)
    assert np.all(np.diff(allv) < 0)
    np.testing.assert_allclose(np.diff(allv), np.diff(allv)[0])
    assert allv[-1] == pytest.approx(0.025 - (0.025 - 1e-4) * 7 / 8)
    np.testing.assert_array_equal(  # one worker: gensim's schedule is the linear one
        W.block_alphas(starts, 1000, 1, 2, 0.025, 1e-4, "gensim", 1), a1)


def test_lr_schedule_gensim_corpus_file():
    # gensim's corpus_file mode, W workers: a worker's progress counts its own sentences
    # only, so an epoch covers 1/W of the epoch's share of the decay, then the rate steps.
    starts = np.array([0, 250, 500, 750])
    a, lo = 0.025, 1e-4
    for epoch in range(3):
        got = W.block_alphas(starts, 1000, epoch, 3, a, lo, "gensim", 2)
        want = a - (a - lo) * (epoch + starts / 1000 / 2) / 3
        np.testing.assert_allclose(got, want)
    with pytest.raises(ValueError, match="lr_schedule"):
        Word2Vec(lr_schedule="cosine")


def test_default_learning_rate_per_architecture():
    # alpha=None: word2vec.c's initial rates, 0.025 for skip-gram and 0.05 for CBOW
    sg, cbow = Word2Vec(progress=False), Word2Vec(sg=0, progress=False)
    assert sg.sg == 1 and sg.alpha == 0.025 and Word2Vec.default_alpha(1) == 0.025
    assert cbow.alpha == 0.05 and Word2Vec.default_alpha(0) == 0.05
    for m in (sg, cbow):
        assert m.min_alpha == 1e-4 and m.lr_schedule == "linear"
    # a given rate means what it says, whatever the architecture
    assert Word2Vec(sg=0, alpha=0.025, progress=False).alpha == 0.025
    assert Word2Vec(sg=1, alpha=0.05, progress=False).alpha == 0.05
    assert Word2Vec(sg=0, alpha=None, progress=False).alpha == 0.05
    # min_alpha is checked against the rate used
    assert Word2Vec(sg=0, min_alpha=0.04, progress=False).min_alpha == 0.04
    with pytest.raises(ValueError, match="min_alpha"):
        Word2Vec(sg=1, min_alpha=0.04)


@pytest.mark.kernel
def test_default_learning_rate_is_saved(tmp_path):
    # a saved model records the rate it used, so it loads (and trains on) with the same one
    model = Word2Vec(_topic_corpus(100), sg=0, min_count=1, vector_size=8, epochs=1,
                     workers=1, progress=False)
    assert model.alpha == 0.05
    model.save(tmp_path / "m.npz")
    back = Word2Vec.load(tmp_path / "m.npz")
    assert (back.sg, back.alpha, back.min_alpha, back.lr_schedule) == (0, 0.05, 1e-4, "linear")


def _reference_blocks(lengths, batch_words):
    """First sentence of each block, the rule spelled out with numpy."""
    off = np.concatenate(([0], np.cumsum(lengths)))
    marks = np.arange(0, off[-1], batch_words)
    starts = np.unique(np.searchsorted(off[:-1], marks, side="left"))
    return np.concatenate((starts[starts < len(lengths)], [len(lengths)]))


def test_block_boundaries_cover_sentences():
    words = np.array([4000, 4000, 4000, 100, 9000, 50], np.uint16)
    bsent, bword, bunit = W.block_boundaries(words, words, 10000)
    assert bsent[0] == 0 and bsent[-1] == words.size
    assert np.all(np.diff(bsent) > 0)
    np.testing.assert_array_equal(bsent, _reference_blocks(words, 10000))
    rng = np.random.default_rng(5)
    for batch in (1, 7, 100, 10000):
        words = rng.integers(1, 60, 500).astype(np.uint16)
        units = (words + rng.integers(0, 3, 500)).astype(np.uint16)  # escaped ids
        bsent, bword, bunit = W.block_boundaries(words, units, batch)
        np.testing.assert_array_equal(bsent, _reference_blocks(words, batch))
        starts = np.concatenate(([0], np.cumsum(words, dtype=np.int64)))
        np.testing.assert_array_equal(bword, starts[bsent])
        np.testing.assert_array_equal(
            bunit, np.concatenate(([0], np.cumsum(units, dtype=np.int64)))[bsent])


# ------------------------------------------------------------------ training
@pytest.mark.kernel
def test_reproducible_with_one_worker():
    sents = _topic_corpus(400)
    kw = dict(min_count=1, vector_size=16, epochs=2, workers=1, seed=7, progress=False)
    m1, m2 = Word2Vec(sents, **kw), Word2Vec(sents, **kw)
    np.testing.assert_array_equal(m1.syn0, m2.syn0)
    np.testing.assert_array_equal(m1.syn1neg, m2.syn1neg)
    m3 = Word2Vec(sents, **{**kw, "seed": 8})
    assert not np.array_equal(m1.syn0, m3.syn0)


@pytest.mark.kernel
@pytest.mark.parametrize("sg", [1, 0])
@pytest.mark.parametrize("loss", ["negative_sampling", "sampled_softmax", "nce"])
def test_planted_topics_learned_and_loss_decreases(sg, loss):
    import numba

    sents = _topic_corpus()
    threads = numba.get_num_threads()
    model = Word2Vec(sents, min_count=1, vector_size=16, sg=sg, loss=loss, epochs=4,
                     sample=0, workers=2, seed=3, progress=False, alpha=0.05)
    for word in ("a0", "b3"):
        near = _neighbours(model, word)
        assert all(w[0] == word[0] for w in near), (word, near)
    assert numba.get_num_threads() == threads  # restored after training
    assert model.epoch_losses[-1] < model.epoch_losses[0]
    assert model.get_latest_training_loss() == model.epoch_losses[-1] > 0
    try:
        import fastsampled.keyedvectors  # noqa: F401
    except ImportError:
        return
    near = [w for w, _ in model.wv.most_similar("a1", topn=5)]
    assert all(w.startswith("a") for w in near)


@pytest.mark.kernel
def test_corpus_file_and_sentences_give_same_model(tmp_path):
    sents = _topic_corpus(300)
    kw = dict(min_count=1, vector_size=8, epochs=1, workers=1, seed=2, progress=False)
    m1 = Word2Vec(sentences=sents, **kw)
    m2 = Word2Vec(corpus_file=str(_write(tmp_path, sents)), **kw)
    assert m1.index_to_key == m2.index_to_key
    np.testing.assert_array_equal(m1.syn0, m2.syn0)


def _open_files(under):
    """This process's open files whose paths lie under ``under``, deleted ones included.

    Counting every descriptor would also count those that threads left behind by earlier
    tests (Ray, TensorFlow) open and close meanwhile.
    """
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:     # closed since it was listed
            continue
        if target.startswith(str(under) + os.sep):
            out.append(target)
    return sorted(out)


@pytest.mark.kernel
@pytest.mark.parametrize("sg", [1, 0])
def test_streamed_corpus_trains_like_in_memory(tmp_path, sg):
    # batch_words=40: about 270 blocks, so training reads the file back in 9 groups
    sents = _topic_corpus(900)
    path = str(_write(tmp_path, sents))
    kw = dict(min_count=1, vector_size=8, epochs=2, workers=1, seed=4, sg=sg,
              batch_words=40, progress=False)
    streamed = Word2Vec(corpus_file=path, **kw)
    assert not streamed._corpus.in_memory
    for m in (Word2Vec(corpus_file=path, corpus_in_memory=True, **kw),
              Word2Vec(sentences=sents, corpus_in_memory=True, **kw)):
        assert m._corpus.in_memory
        assert m._decoded_corpus() == streamed._decoded_corpus()
        np.testing.assert_array_equal(m.syn0, streamed.syn0)
        np.testing.assert_array_equal(m.syn1neg, streamed.syn1neg)
        assert m.epoch_losses == streamed.epoch_losses


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_encoded_corpus_file_leaves_nothing_behind(tmp_path, monkeypatch):
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))
    path = _write(tmp_path, _topic_corpus(50))
    gc.collect()        # files left to the collector by earlier tests would close mid-test
    assert _open_files(tmp_path) == []
    model = Word2Vec(min_count=1, progress=False).build_vocab(corpus_file=path)
    spilled = _open_files(spill)    # open, already unlinked
    assert len(spilled) == 1 and spilled[0].endswith(" (deleted)") and os.listdir(spill) == []
    assert _open_files(tmp_path) == spilled      # the text corpus itself is closed
    model.build_vocab(corpus_file=path)  # a new corpus replaces the old file
    assert len(_open_files(spill)) == 1 and _open_files(tmp_path) == _open_files(spill)
    del model
    gc.collect()
    assert _open_files(tmp_path) == []

    def broken(*args):
        raise RuntimeError("disk full")

    # the scan's own spill of provisional ids is closed too when the vocabulary is refused
    with pytest.raises(ValueError, match="reaches min_count"):
        Word2Vec(min_count=10**6, progress=False).build_vocab(corpus_file=path)
    assert _open_files(tmp_path) == [] and os.listdir(spill) == []

    monkeypatch.setattr(_corpus, "_write_all", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        Word2Vec(min_count=1, progress=False).build_vocab(corpus_file=path)
    gc.collect()
    assert _open_files(tmp_path) == [] and os.listdir(spill) == []


@pytest.mark.kernel
def test_save_load_roundtrip(tmp_path):
    model = Word2Vec(_topic_corpus(200), min_count=1, vector_size=8, epochs=1, workers=1,
                     progress=False, lr_schedule="gensim")
    path = tmp_path / "m.npz"
    model.save(path)
    back = Word2Vec.load(path)
    assert back.index_to_key == model.index_to_key
    np.testing.assert_array_equal(back.syn0, model.syn0)
    np.testing.assert_array_equal(back.syn1neg, model.syn1neg)
    assert back.get_latest_training_loss() == model.get_latest_training_loss()
    assert back.vector_size == 8 and back.sg == model.sg and back.lr_schedule == "gensim"
    with pytest.raises(ValueError, match="no corpus"):
        back.train()  # the encoded corpus is not saved ...
    back.train(sentences=_topic_corpus(50), epochs=1)  # ... but a new one can be given
    assert np.isfinite(back.syn0).all()


# ------------------------------------------------------------------ bad input
def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="holds no tokens"):
        Word2Vec(sentences=[[], []], progress=False)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(ValueError, match="holds no tokens"):
        Word2Vec(corpus_file=empty, progress=False)
    with pytest.raises(ValueError, match="min_count"):
        Word2Vec(sentences=[["a", "b"]], min_count=5, progress=False)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        Word2Vec(corpus_file=tmp_path / "nope.txt", progress=False)
    with pytest.raises(ValueError, match="window"):
        Word2Vec(window=0)
    with pytest.raises(ValueError, match="vector_size"):
        Word2Vec(vector_size=0)
    with pytest.raises(ValueError, match="loss"):
        Word2Vec(loss="hinge")
    with pytest.raises(TypeError, match="token lists"):
        Word2Vec(sentences=["a sentence as a string"], progress=False)
    with pytest.raises(ValueError, match="not both"):
        Word2Vec(sentences=[["a"]], corpus_file=empty)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good words here\nmore good words\nbad \xff\xfe token\n")
    with pytest.raises(ValueError, match=r"bad\.txt.*line 3"):
        Word2Vec(corpus_file=bad, min_count=1, progress=False)
    with pytest.raises(ValueError, match="build_vocab"):
        Word2Vec(progress=False).train()
    # each token invalid, their concatenation (how the token table stores them) valid UTF-8
    split = tmp_path / "split.txt"
    split.write_bytes(b"ok fine\na\xc3 \xa9b\n")
    with pytest.raises(ValueError, match=r"split\.txt.*line 2"):
        Word2Vec(corpus_file=split, min_count=1, progress=False)
