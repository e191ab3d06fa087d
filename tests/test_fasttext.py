"""FastText: fastText's hashing and n-grams, its .bin files, any-word vectors, training kernels."""
import math
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastsampled as fs
from fastsampled import _ft_kernels as K
from fastsampled import _ftformat as F
from fastsampled._rng import bits, stream_key
from fastsampled._alias_kernels import alias_pick
from fastsampled.word2vec import keep_probabilities

WORDS = ["the", "naïve", "über", "日本語", "aaaa", "ab", "a", "", "x", "zzzxy", "naïveté",
         "日本", "Ünïcødé", "</s>", "emoji😀word"]


def _ref_hash(data):
    h = 2166136261
    for c in data:
        c = c - 256 if c > 127 else c        # int8_t, then uint32_t
        h = ((h ^ (c & 0xFFFFFFFF)) * 16777619) & 0xFFFFFFFF
    return h


def _ref_ngrams(word, minn, maxn):
    """fastText's computeSubwords, as written in its dictionary.cc, on bytes."""
    w = b"<" + word.encode() + b">"
    out = []
    for i in range(len(w)):
        if (w[i] & 0xC0) == 0x80:
            continue
        j, n = i, 1
        while j < len(w) and n <= maxn:
            j += 1
            while j < len(w) and (w[j] & 0xC0) == 0x80:
                j += 1
            if n >= minn and not (n == 1 and (i == 0 or j == len(w))):
                out.append(w[i:j].decode())
            n += 1
    return out


def test_hash_matches_reference():
    rng = np.random.default_rng(0)
    for n in (0, 1, 5, 40):
        for _ in range(20):
            data = bytes(rng.integers(0, 256, n, dtype=np.uint8))
            assert F.ft_hash(data) == _ref_hash(data)
    for w in WORDS:
        b = w.encode()
        assert F.ft_hash(b) == _ref_hash(b)


@pytest.mark.parametrize("minn,maxn", [(3, 6), (1, 3), (2, 2), (5, 4), (0, 0)])
def test_ngrams_match_reference(minn, maxn):
    for w in WORDS:
        assert F.subword_strings(w, minn, maxn) == _ref_ngrams(w, minn, maxn)
    assert "<ab>" in F.subword_strings("ab", 3, 6)    # the bracketed word itself is kept


def test_subword_rows_layout():
    indptr, idx = F.subword_rows(["ab", "</s>"], 3, 6, 100, 2, np.array([0, 1]))
    grams = F.subword_strings("ab", 3, 6)
    assert indptr.tolist() == [0, 1 + len(grams), 2 + len(grams)]
    assert idx[0] == 0 and idx[-1] == 1           # own rows; "</s>" has no n-grams
    assert idx[1:1 + len(grams)].tolist() == [2 + _ref_hash(g.encode()) % 100 for g in grams]


# ------------------------------------------------------------------ against the fasttext package
_TRAIN_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import fasttext
    corpus, out, model, words = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    m = fasttext.train_unsupervised(corpus, model=model, dim=16, minCount=1, epoch=1, minn=3,
                                    maxn=6, bucket=1000, thread=1, verbose=0)
    m.save_model(out)
    np.save(out + ".vecs.npy", np.array([m.get_word_vector(w) for w in words], np.float32))
    print(json.dumps([m.get_subwords(w)[1].tolist() for w in words]))
""")


def _zipf_corpus(path, lines=2000, seed=0):
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnoprstuéüï日本語")
    vocab = ["".join(rng.choice(letters, rng.integers(1, 10))) for _ in range(500)]
    vocab += ["the", "naïve", "über", "日本語", "ab", "a", "aaaa"]
    p = 1.0 / np.arange(1, len(vocab) + 1)
    p /= p.sum()
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(lines):
            f.write(" ".join(vocab[i] for i in rng.choice(len(vocab), 15, p=p)) + "\n")


@pytest.fixture(scope="module")
def ft_model(tmp_path_factory):
    """A model trained by the fasttext package, in a separate process (fastText's training
    is not reliable in a process that has imported Numba), with its vectors of WORDS."""
    pytest.importorskip("fasttext")
    import json
    d = tmp_path_factory.mktemp("ft")
    corpus = d / "c.txt"
    _zipf_corpus(corpus)
    out = str(d / "m.bin")
    r = subprocess.run([sys.executable, "-c", _TRAIN_SCRIPT, str(corpus), out, "skipgram",
                        json.dumps(WORDS)], capture_output=True, text=True, timeout=120)
    if r.returncode:
        pytest.skip(f"fasttext could not train: {r.stderr.strip().splitlines()[-1:]}")
    return out, np.load(out + ".vecs.npy"), json.loads(r.stdout), corpus


def test_load_facebook_model_vectors(ft_model):
    path, expected, subwords, _ = ft_model
    model = fs.load_facebook_model(path)
    assert isinstance(model, fs.FastText) and model.sg == 1
    assert model.vector_size == 16 and model.bucket == 1000
    for w, want, ids in zip(WORDS, expected, subwords):
        np.testing.assert_allclose(model.wv[w], want, atol=1e-6, err_msg=w)
        if w in model.wv.key_to_index:
            i = model.key_to_index[w]
            assert model._indices[model._indptr[i]:model._indptr[i + 1]].tolist() == ids, w
    assert "naïve" in model.wv.key_to_index and "zzzxy" not in model.wv.key_to_index
    assert model.wv["zzzxy"].any()                      # composed from its n-grams
    assert not model.wv[""].any()                       # no n-gram: zeros
    assert model.wv.similarity("naïve", "naïveté") > 0.0
    assert len(model.wv.most_similar("naïvetés", topn=3)) == 3


def test_save_facebook_model_loads_in_fasttext(ft_model, tmp_path):
    fasttext = pytest.importorskip("fasttext")
    path, expected, _, _ = ft_model
    model = fs.FastText.load_facebook_model(path)
    out = tmp_path / "o.bin"
    model.save_facebook_model(out)
    assert out.read_bytes() == open(path, "rb").read()    # the same bytes back
    m = fasttext.load_model(str(out))
    for w, want in zip(WORDS, expected):
        np.testing.assert_allclose(m.get_word_vector(w), want, atol=1e-6)


def test_trained_model_loads_in_fasttext(tmp_path):
    fasttext = pytest.importorskip("fasttext")
    corpus = tmp_path / "c.txt"
    _zipf_corpus(corpus, lines=300)
    model = fs.FastText(corpus_file=corpus, vector_size=12, min_count=1, bucket=500, epochs=1,
                        workers=1, progress=False, sg=1)
    model.save_facebook_model(tmp_path / "m.bin")
    m = fasttext.load_model(str(tmp_path / "m.bin"))
    for w in WORDS + model.index_to_key[:20]:
        np.testing.assert_allclose(model.wv[w], m.get_word_vector(w), atol=1e-6, err_msg=w)
    model.wv.save_word2vec_format(tmp_path / "m.vec", binary=False)
    kv = fs.KeyedVectors.load_word2vec_format(tmp_path / "m.vec", binary=False)
    np.testing.assert_allclose(kv.vectors, model.wv.vectors, atol=1e-5)


# ------------------------------------------------------------------ damaged files
def _small_bin(tmp_path):
    model = fs.FastText(sentences=[["ab", "cd", "ef"]] * 20, vector_size=4, min_count=1,
                        bucket=50, epochs=1, workers=1, progress=False)
    p = tmp_path / "good.bin"
    model.save_facebook_model(p)
    return p, bytearray(p.read_bytes())


def test_corrupt_bin_files(tmp_path):
    good, data = _small_bin(tmp_path)
    fs.load_facebook_model(good)
    nargs = 8 + F._ARGS.size

    def bad(mutate, match):
        d = bytearray(data)
        d = mutate(d) or d
        p = tmp_path / "bad.bin"
        p.write_bytes(bytes(d))
        with pytest.raises(ValueError, match=match) as e:
            fs.load_facebook_model(p)
        assert "bad.bin" in str(e.value)

    bad(lambda d: d.__setitem__(slice(0, 4), struct.pack("<i", 1)), "magic")
    bad(lambda d: d.__setitem__(slice(4, 8), struct.pack("<i", 11)), "version")
    bad(lambda d: d.__setitem__(slice(8, 12), struct.pack("<i", 0)), "dim")
    bad(lambda d: d.__setitem__(slice(40, 44), struct.pack("<i", 10**6)), "input matrix")
    bad(lambda d: d.__setitem__(slice(40, 44), struct.pack("<i", -1)), "bucket")
    bad(lambda d: d.__setitem__(slice(40, 44), struct.pack("<i", 0)), "bucket")
    bad(lambda d: d.__setitem__(slice(40, 44), struct.pack("<i", 51)), "input matrix")
    bad(lambda d: d.__setitem__(slice(36, 40), struct.pack("<i", 3)), "supervised")
    bad(lambda d: d.__setitem__(slice(nargs, nargs + 4), struct.pack("<i", 10**8)),
        "dictionary")
    bad(lambda d: d.__setitem__(slice(nargs + 20, nargs + 28), struct.pack("<q", 5)),
        "pruned")
    bad(lambda d: d[:len(d) - 7], "cut short|remain")
    bad(lambda d: d + b"\0", "follow")
    qflag = data.index(b"ef\0") + 3 + 9
    bad(lambda d: d.__setitem__(qflag, 1), "quantised")
    nan_at = len(data) - 4
    bad(lambda d: d.__setitem__(slice(nan_at, nan_at + 4), struct.pack("<f", float("nan"))),
        "finite")
    with pytest.raises(FileNotFoundError):
        fs.load_facebook_model(tmp_path / "missing.bin")


# ------------------------------------------------------------------ training
def _sents(n=300, seed=0):
    rng = np.random.default_rng(seed)
    a = ["cat", "cats", "kitten", "dog", "dogs", "puppy", "mat", "sat", "on", "the"]
    return [[str(w) for w in rng.choice(a, 8)] for _ in range(n)]


@pytest.mark.kernel
@pytest.mark.parametrize("sg", [0, 1])
def test_training_bit_reproducible(sg):
    kw = dict(vector_size=16, min_count=1, bucket=200, epochs=2, workers=1, progress=False,
              sg=sg, seed=7)
    m1 = fs.FastText(sentences=_sents(), **kw)
    m2 = fs.FastText(sentences=_sents(), **kw)
    m3 = fs.FastText(sentences=_sents(), **dict(kw, seed=8))
    assert np.array_equal(m1._input, m2._input) and np.array_equal(m1.syn1neg, m2.syn1neg)
    assert not np.array_equal(m1._input, m3._input)
    assert np.isfinite(m1.epoch_losses).all() and m1.epoch_losses[-1] > 0
    assert m1.syn1neg.any() and m1.vectors_ngrams.any()


def _draw_negatives(table, key, ctr, t, nneg):
    """The kernel's negatives for the word predicted ``t``: each redrawn while it equals
    ``t`` (up to ``_REDRAWS`` tries); returns them and the next counter."""
    nf = float(table.size)
    out = []
    for _ in range(nneg):
        for _ in range(K._REDRAWS):
            c = alias_pick(table, nf, np.uint64(bits(key, np.uint64(ctr))),
                           np.uint64(bits(key, np.uint64(ctr + 1))))
            ctr += 2
            if c != t:
                out.append(c)
                break
    return out, ctr


def _train_targets(h, syn1, targets, alpha, loss):
    """Output rows of the word predicted (label 1) and its negatives (label 0) updated from
    the input ``h``; returns the gradient of ``h``. ``loss[0]`` += the negative log
    probability of each label (scores clamped to +-50, as the kernel does)."""
    gacc = np.zeros_like(h)
    for o, label in targets:
        z = h @ syn1[o]
        g = alpha * (label - 1.0 / (1.0 + math.exp(-z)))
        zc = min(max(z, -50.0), 50.0)
        loss[0] += math.log1p(math.exp(-zc if label else zc))
        gacc += g * syn1[o]
        syn1[o] += g * h
    return gacc


def _reference(inp, syn1, indptr, indices, sent, keep, table, key, alpha, window, nneg, sg):
    """Plain numpy fastText with n-grams on one sentence, drawing the kernel's random
    numbers: subsampling, then per centre the window, then per word predicted its negatives.
    Skip-gram: for each context word the centre word's rows are its input, and are updated
    after every pair, as fastText does (the next pair's input is their new mean). CBOW: the
    input is the mean of every row of every context word, each of which gets the gradient."""
    key = np.uint64(key)     # numba types a Python int below 2**63 as int64: keep uint64
    loss = [0.0]
    inp = inp.astype(np.float64)
    syn1 = syn1.astype(np.float64)
    ctr = 0
    kept = []
    for w in sent:
        r = int(bits(key, np.uint64(ctr)))
        ctr += 1
        if (r >> 32) < keep[w]:
            kept.append(w)
    for i, w in enumerate(kept):
        b = 1 + (int(bits(key, np.uint64(ctr))) >> 32) % window
        ctr += 1
        ctx = [kept[j] for j in range(max(0, i - b), min(len(kept), i + b + 1)) if j != i]
        if not ctx:
            continue
        if sg:
            rows = indices[indptr[w]:indptr[w + 1]]
            for t in ctx:
                negs, ctr = _draw_negatives(table, key, ctr, t, nneg)
                gacc = _train_targets(inp[rows].mean(axis=0), syn1,
                                      [(t, 1.0)] + [(c, 0.0) for c in negs], alpha, loss)
                for r in rows:
                    inp[r] += gacc
        else:
            rows = np.concatenate([indices[indptr[t]:indptr[t + 1]] for t in ctx])
            negs, ctr = _draw_negatives(table, key, ctr, w, nneg)
            gacc = _train_targets(inp[rows].mean(axis=0), syn1,
                                  [(w, 1.0)] + [(c, 0.0) for c in negs], alpha, loss)
            for r in rows:           # a row listed twice gets the gradient twice
                inp[r] += gacc
    return inp, syn1, loss[0]


@pytest.mark.kernel
def test_logistic_probability_of_a_saturated_score_stays_positive():
    # a negative scored past ~37 has 1 - sigmoid(z) below float64's rounding of 1: the
    # probability must still be exp(-z) / (1 + exp(-z)), or the loss becomes infinite
    for z in (40.0, 49.0, 80.0):
        g, p = K._logistic(np.float32(z), False, 0.05)
        zc = min(z, 50.0)
        assert p > 0 and math.isclose(p, math.exp(-zc) / (1 + math.exp(-zc)), rel_tol=1e-12)
        assert math.isclose(g, -0.05, rel_tol=1e-6)
        g, p = K._logistic(np.float32(-z), True, 0.05)
        assert p > 0 and math.isclose(p, math.exp(-zc) / (1 + math.exp(-zc)), rel_tol=1e-12)
        assert math.isclose(g, 0.05, rel_tol=1e-6)


def _kernel_case(words, bucket, dim, sent, window, sg, seed=1):
    rng = np.random.default_rng(seed)
    nw = len(words)
    indptr, indices = F.subword_rows(words, 3, 6, bucket, nw, np.arange(nw))
    inp = (rng.standard_normal((nw + bucket, dim)) * 0.3).astype(np.float32)
    syn1 = (rng.standard_normal((nw, dim)) * 0.3).astype(np.float32)
    counts = rng.integers(5, 100, nw)
    _, keep = keep_probabilities(counts, 0.05)
    table = fs.AliasTable(counts ** 0.75).table
    alpha, nneg = 0.05, 3
    want_in, want_out, want_loss = _reference(inp, syn1, indptr, indices, sent.astype(np.int64), keep,
                                   table, stream_key(np.uint64(5), np.uint64(0)), alpha,
                                   window, nneg, sg)
    got_in, got_out = inp.copy(), syn1.copy()
    loss, eff, pairs = (np.zeros(1), np.zeros(1, np.int64), np.zeros(1, np.int64))
    K.train_blocks(got_in, got_out, indptr, indices, K.distinct_rows(indptr, indices), sent,
                   np.array([0, sent.size], np.int64), np.array([0, 1], np.int64), 0,
                   np.array([alpha]), keep, table, np.uint64(5), np.uint64(0), window, nneg,
                   sg, loss, eff, pairs)
    assert eff[0] > 3 and pairs[0] > 0 and loss[0] > 0
    assert not np.allclose(got_in, inp)
    np.testing.assert_allclose(got_in, want_in, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_out, want_out, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loss[0], want_loss, rtol=1e-4)
    return indptr, indices


@pytest.mark.kernel
def test_skipgram_kernel_matches_numpy_reference():
    words = ["cat", "cats", "dog", "the", "mat"]
    sent = np.array([3, 0, 4, 1, 2, 3, 0, 2, 1, 4, 3], np.uint16)
    indptr, indices = _kernel_case(words, 1000, 8, sent, 3, 1)
    for w in range(len(words)):   # distinct rows per word: the mean moves by the gradient
        rows = indices[indptr[w]:indptr[w + 1]]
        assert np.unique(rows).size == rows.size


@pytest.mark.kernel
@pytest.mark.parametrize("window", [1, 2, 5])
def test_cbow_kernel_matches_numpy_reference(window):
    # The kernel keeps each window position's row sum and owed gradient and writes a word's
    # rows once, when it leaves the window: neighbours that share n-grams ("cat", "cats";
    # a word twice in a window), a word listing a row twice ("banana": "ana") and, with
    # 40 buckets, n-grams hashed together must all come out as rows written every centre.
    words = ["cat", "cats", "dog", "the", "mat", "banana", "bananas", "a"]
    rng = np.random.default_rng(window)
    sent = rng.integers(0, len(words), 60).astype(np.uint16)
    indptr, indices = _kernel_case(words, 40, 8, sent, window, 0)
    rows = indices[indptr[5]:indptr[6]]
    assert np.unique(rows).size < rows.size


def test_distinct_rows():
    indptr = np.array([0, 3, 3, 7], np.int64)
    indices = np.array([5, 2, 5, 9, 1, 9, 9], np.int64)
    uptr, urows, ucount, sig = K.distinct_rows(indptr, indices)
    assert uptr.tolist() == [0, 2, 2, 4]
    assert urows.tolist() == [2, 5, 1, 9]
    assert ucount.tolist() == [1, 2, 1, 3]
    assert K._overlap(urows, ucount, 0, 2, 0, 2) == 1 + 4
    assert K._overlap(urows, ucount, 2, 4, 2, 4) == 1 + 9
    assert K._overlap(urows, ucount, 0, 2, 2, 4) == 0
    # each filter of a word's signature has a bit per distinct row: words sharing a row
    # share a bit in every filter
    assert sig[1].sum() == 0 and sig.shape == (3, K._SIGL * K._SIGW)
    filters = sig.reshape(3, K._SIGL, K._SIGW)
    assert [[sum(bin(int(x)).count("1") for x in f) for f in row] for row in filters] == \
        [[2] * K._SIGL, [0] * K._SIGL, [2] * K._SIGL]
    both = K.distinct_rows(np.array([0, 2, 4]), np.array([3, 77, 77, 12]))[3]
    both = both.reshape(2, K._SIGL, K._SIGW)
    assert np.all(np.any(both[0] & both[1], axis=1))


@pytest.mark.kernel
def test_first_seen_numbers_values_in_order_of_first_occurrence():
    rng = np.random.default_rng(3)
    for keys in (np.empty(0, np.int64), np.array([7, 7, 7]),
                 rng.integers(0, 50, 1000), rng.integers(0, 2**62, 300),
                 np.repeat(rng.permutation(5000), 3)):
        keys = np.asarray(keys, np.int64)
        rows, distinct = np.empty(keys.size, np.int64), np.empty(keys.size, np.int64)
        m = K.first_seen(keys, rows, distinct)
        _, first = np.unique(keys, return_index=True)
        want = keys[np.sort(first)]
        assert distinct[:m].tolist() == want.tolist()
        assert np.array_equal(distinct[rows], keys)


def test_subwords_help_rare_forms():
    m = fs.FastText(sentences=_sents(600), vector_size=16, min_count=1, bucket=500, epochs=5,
                    workers=1, progress=False, sg=1, seed=1, sample=0)
    assert m.wv.similarity("kitten", "kittens") > 0.5     # an unseen form, from n-grams
    assert "kittens" in m.wv and not m.wv.has_index_for("kittens")


def test_only_used_buckets_are_stored(tmp_path):
    m = fs.FastText(sentences=_sents(), vector_size=8, min_count=1, bucket=10**7, epochs=1,
                    workers=1, progress=False)
    used = np.unique([F.ft_hash(g.encode()) % 10**7 for w in m.index_to_key
                      for g in F.subword_strings(w, 3, 6)])
    assert sorted(m.ngram_buckets.tolist()) == used.tolist()
    assert m.vectors_ngrams.shape == (used.size, 8)
    # the full matrix's vector of any word: unused buckets are zero
    full = np.zeros((10**4, 8), np.float32)      # the buckets below 10**4 suffice here
    small = fs.FastText(sentences=_sents(), vector_size=8, min_count=1, bucket=10**4,
                        epochs=1, workers=1, progress=False)
    full[small.ngram_buckets] = small.vectors_ngrams
    for w in ("kittens", "dogge", "the"):
        rows = [F.ft_hash(g.encode()) % 10**4 for g in F.subword_strings(w, 3, 6)]
        want = full[rows].sum(axis=0)
        if w in small.key_to_index:
            want = (want + small.syn0[small.key_to_index[w]]) / (len(rows) + 1)
        else:
            want = want / len(rows)
        np.testing.assert_allclose(small.wv[w], want, rtol=1e-5, atol=1e-7)


def test_default_learning_rate_per_architecture(tmp_path):
    # alpha=None: 0.05 for CBOW (the default architecture), 0.035 for skip-gram
    assert fs.FastText(progress=False).alpha == 0.05 == fs.FastText.default_alpha(0)
    assert fs.FastText(sg=1, progress=False).alpha == 0.035 == fs.FastText.default_alpha(1)
    assert fs.Word2Vec.default_alpha(1) == 0.025          # Word2Vec keeps its own
    assert fs.FastText(sg=1, alpha=0.05, progress=False).alpha == 0.05
    assert fs.FastText(sg=0, alpha=0.025, progress=False).alpha == 0.025
    m = fs.FastText(sentences=_sents(), vector_size=8, min_count=1, bucket=100, epochs=1,
                    workers=1, progress=False)
    m.save(tmp_path / "m.npz")                   # the file holds the rate used
    back = fs.FastText.load(tmp_path / "m.npz")
    assert (back.sg, back.alpha, back.min_alpha, back.lr_schedule) == (0, 0.05, 1e-4, "linear")


def test_own_format_round_trip(tmp_path):
    m = fs.FastText(sentences=_sents(), vector_size=8, min_count=1, bucket=100, epochs=1,
                    workers=1, progress=False)
    m.save(tmp_path / "m.npz")
    m2 = fs.FastText.load(tmp_path / "m.npz")
    assert np.array_equal(m2._input, m._input) and m2.bucket == 100 and m2.min_n == 3
    np.testing.assert_array_equal(m2.wv["kittens"], m.wv["kittens"])
    m2.train(sentences=_sents(50))                 # trains further
    fs.Word2Vec(sentences=_sents(), vector_size=8, min_count=1, epochs=1,
                progress=False).save(tmp_path / "w.npz")
    with pytest.raises(ValueError, match="FastText.save"):
        fs.FastText.load(tmp_path / "w.npz")
    import json
    import zipfile
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        members = {n: z.read(n) for n in z.namelist()}
    meta = json.loads(np.load(tmp_path / "m.npz")["meta"].tobytes())
    for field, value, match in (("ngram_rows", 10**6, "ngram_rows"),
                                ("params", dict(meta["params"], bucket=-3), "bucket"),
                                ("params", dict(meta["params"], sample="x"), "sample"),
                                ("index_to_key", meta["index_to_key"][:-1], "input")):
        bad = dict(meta, **{field: value})
        path = tmp_path / "bad.npz"
        arrays = {n[:-4]: np.load(tmp_path / "m.npz")[n[:-4]] for n in members}
        arrays["meta"] = np.frombuffer(json.dumps(bad).encode(), np.uint8)
        np.savez(path, **arrays)
        with pytest.raises(ValueError, match=match) as e:
            fs.FastText.load(path)
        assert "bad.npz" in str(e.value)


@pytest.mark.kernel
def test_memory_mapped_input_matches_ram(tmp_path):
    kw = dict(sentences=_sents(), vector_size=8, min_count=1, bucket=300, epochs=1,
              workers=1, progress=False, seed=3)
    ram = fs.FastText(**kw)
    mm = fs.FastText(path=tmp_path / "store", **kw)
    assert isinstance(mm._input, np.ndarray) and mm._store is not None
    np.testing.assert_array_equal(mm._input, ram._input)
    np.testing.assert_array_equal(mm.wv["kittens"], ram.wv["kittens"])
    mm.close()
    with pytest.raises(FileExistsError):
        fs.FastText(path=tmp_path / "store", **kw)
    again = fs.FastText(path=tmp_path / "store", overwrite=True, **kw)
    np.testing.assert_array_equal(again._input, ram._input)
    again.close()


def test_argument_checks(tmp_path):
    with pytest.raises(ValueError, match="bucket"):
        fs.FastText(bucket=-1)
    with pytest.raises(ValueError, match="bucket"):
        fs.FastText(bucket=0, max_n=6)
    with pytest.raises(TypeError, match="min_n"):
        fs.FastText(min_n=2.5)
    with pytest.raises(ValueError, match="loss"):
        fs.FastText(loss="nce")
    with pytest.raises(ValueError, match="path"):
        fs.FastText(path=tmp_path / "no" / "such" / "dir")
    m = fs.FastText(sentences=_sents(20), vector_size=4, min_count=1, bucket=10, epochs=1,
                    workers=1, progress=False)
    with pytest.raises(TypeError, match="key"):
        m.wv.get_vector(3)
    m.syn0 = m.syn0.copy()
    with pytest.raises(ValueError, match="syn0"):
        m.train()
    plain = fs.FastText(sentences=_sents(20), vector_size=4, min_count=1, max_n=0, bucket=0,
                        epochs=1, workers=1, progress=False)
    assert not plain.wv["unseen"].any() and plain.vectors_ngrams.shape == (0, 4)


def test_cli_train_and_eval(tmp_path):
    from fastsampled.cli import main
    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(" ".join(s) + "\n" for s in _sents(200)), encoding="utf-8")
    out = tmp_path / "v.bin"
    assert main(["fasttext", "train", str(corpus), "-o", str(out), "--dim", "8", "--min-count", "1",
                 "--bucket", "100", "--epochs", "1", "--workers", "1", "--quiet"]) == 0
    m = fs.load_facebook_model(out)
    assert m.vector_size == 8
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("cat\tcats\t9\ndog\tpuppy\t8\ncat\tmat\t2\nkitten\tkittens\t9\n")
    assert main(["fasttext", "eval", str(out), "--pairs", str(pairs)]) == 0


def test_gensim_facebook_files_both_ways(tmp_path):
    pytest.importorskip("gensim")
    from gensim.models import FastText as GensimFastText
    from gensim.models.fasttext import load_facebook_model, save_facebook_model
    sents = [["naïve", "über", "日本語", "cats", "dogs", "running", "the"]] * 30
    g = GensimFastText(sents, vector_size=8, min_count=1, bucket=500, epochs=1, workers=1)
    save_facebook_model(g, str(tmp_path / "g.bin"))
    m = fs.load_facebook_model(tmp_path / "g.bin")
    t = fs.FastText(sents, vector_size=8, min_count=1, bucket=500, epochs=1, workers=1,
                    progress=False)
    t.save_facebook_model(tmp_path / "t.bin")
    back = load_facebook_model(str(tmp_path / "t.bin"))
    for w in ("naïve", "日本語", "cats", "unseen", "日本"):
        np.testing.assert_allclose(m.wv[w], g.wv[w], atol=1e-6)
        np.testing.assert_allclose(back.wv[w], t.wv[w], atol=1e-6)
