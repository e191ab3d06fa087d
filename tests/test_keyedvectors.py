"""KeyedVectors: lookup, cosine queries, word2vec files, analogy and word-pair evaluation.

Hand-computed cases and a slow per-question analogy reference run everywhere; the comparisons
with gensim 4.4 (same numbers, byte-identical files both ways) skip when gensim is absent.
"""
import math
import struct

import numpy as np
import pytest

import fastsampled as fs
from fastsampled import _kveval, _kvformats
from fastsampled.keyedvectors import KeyedVectors

QUESTIONS_WORDS = "questions-words.txt"


# ---------------------------------------------------------------------------- helpers

def _random_kv(n=300, dim=16, seed=0, keys=None):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    if keys is None:
        keys = [f"w{i}" for i in range(n)]
    return KeyedVectors(vectors, keys)


def _gensim_kv(kv):
    gensim_kv = pytest.importorskip("gensim.models.keyedvectors")
    g = gensim_kv.KeyedVectors(kv.vector_size)
    g.add_vectors(list(kv.index_to_key), kv.vectors.copy())
    return g


def _analogy_kv(seed=0, n_pairs=12, n_filler=120, dim=24, noise=1.3):
    """Vectors where 'capital = country + offset (+ noise)' holds approximately, so that some
    analogies come out right and some wrong, plus case variants and filler words."""
    rng = np.random.default_rng(seed)
    countries = [f"country{i}" for i in range(n_pairs)]
    capitals = [f"capital{i}" for i in range(n_pairs)]
    offset = rng.standard_normal(dim).astype(np.float32) * 1.5
    base = rng.standard_normal((n_pairs, dim)).astype(np.float32)
    cap = base + offset + noise * rng.standard_normal((n_pairs, dim)).astype(np.float32)
    plural_off = rng.standard_normal(dim).astype(np.float32) * 1.5
    singular = [f"thing{i}" for i in range(n_pairs)]
    plural = [f"things{i}" for i in range(n_pairs)]
    sing = rng.standard_normal((n_pairs, dim)).astype(np.float32)
    plur = sing + plural_off + noise * rng.standard_normal((n_pairs, dim)).astype(np.float32)
    filler = [f"filler{i}" for i in range(n_filler)]
    fill = rng.standard_normal((n_filler, dim)).astype(np.float32) * 1.2
    # Case variants that sit right next to an input or answer (exercise gensim's skip of
    # predictions whose upper-case form is an input word) and a later duplicate of a capital.
    variants = ["Country0", "COUNTRY1", "Capital2", "Things3", "capital4".upper()]
    jitter = 0.05 * rng.standard_normal((3, dim)).astype(np.float32)  # no exact ties
    var = np.stack([base[0] + offset * 0.9, base[1] + offset, cap[2] + jitter[0],
                    plur[3] + jitter[1], cap[4] + jitter[2]]).astype(np.float32)
    keys = countries + capitals + singular + plural + filler + variants
    vectors = np.concatenate([base, cap, sing, plur, fill, var])
    return KeyedVectors(vectors, keys), countries, capitals, singular, plural


def _write_analogies(path, countries, capitals, singular, plural, extra_lines=()):
    lines = [": capital-world"]
    n = len(countries)
    for i in range(n):
        for j in range(n):
            if i != j:
                lines.append(f"{countries[i]} {capitals[i]} {countries[j]} {capitals[j]}")
    lines.append(": gram-plural")
    for i in range(n):
        for j in range(n):
            if i != j:
                lines.append(f"{singular[i].upper()} {plural[i]} {singular[j]} {plural[j].title()}")
    lines.append(": oov-and-junk")
    lines += ["country0 capital0 nosuchword capital1", "too few words", "",
              "country2 capital2 country3 capital3"]
    lines += list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    return path


def _reference_analogies(kv, path, restrict_vocab, case_insensitive=True, dummy4unknown=False):
    """gensim 4.4's evaluate_word_analogies, one question at a time (plain numpy)."""
    ok_keys = kv.index_to_key[:restrict_vocab]
    ok_vocab = {}
    for i, k in enumerate(ok_keys):
        ok_vocab.setdefault(k.upper() if case_insensitive else k, i)
    normed = kv.vectors / np.linalg.norm(kv.vectors, axis=1, keepdims=True)
    sections, section = [], None
    for line in open(path, encoding="utf8"):
        if line.startswith(": "):
            if section:
                sections.append(section)
            section = {"section": line.lstrip(": ").strip(), "correct": [], "incorrect": []}
            continue
        words = line.split()
        if len(words) != 4:
            continue
        quad = tuple(w.upper() for w in words) if case_insensitive else tuple(words)
        if any(w not in ok_vocab for w in quad):
            if dummy4unknown:
                section["incorrect"].append(quad)
            continue
        a, b, c, expected = quad
        ia, ib, ic = ok_vocab[a], ok_vocab[b], ok_vocab[c]
        mean = normed[ib] + normed[ic] - normed[ia]
        mean /= np.linalg.norm(mean)
        dists = normed[:len(ok_keys)] @ mean
        best = [i for i in np.argsort(-dists, kind="stable")[:8] if i not in (ia, ib, ic)][:5]
        predicted = None
        for i in best:
            predicted = kv.index_to_key[i].upper() if case_insensitive else kv.index_to_key[i]
            if predicted not in (a, b, c):
                break
        section["correct" if predicted == expected else "incorrect"].append(quad)
    sections.append(section)
    total = {"section": "Total accuracy",
             "correct": [q for s in sections for q in s["correct"]],
             "incorrect": [q for s in sections for q in s["incorrect"]]}
    n_answered = len(total["correct"]) + len(total["incorrect"])
    sections.append(total)
    return (len(total["correct"]) / n_answered if n_answered else 0.0), sections


@pytest.fixture(scope="module")
def gensim_test_data():
    gensim = pytest.importorskip("gensim")
    import os
    return os.path.join(os.path.dirname(gensim.__file__), "test", "test_data")


# ---------------------------------------------------------------------------- construction

def test_exported():
    assert fs.KeyedVectors is KeyedVectors


def test_basic_lookup():
    vectors = np.arange(12, dtype=np.float32).reshape(4, 3)
    kv = KeyedVectors(vectors, ["a", "b", "c", "d"], counts=[9, 5, 2, 1])
    assert len(kv) == 4 and kv.vector_size == 3
    assert "b" in kv and "z" not in kv and 3 not in kv
    assert kv.key_to_index == {"a": 0, "b": 1, "c": 2, "d": 3}
    assert kv.get_index("c") == 2 and kv.get_index("z", default=-1) == -1
    np.testing.assert_array_equal(kv["b"], [3, 4, 5])
    np.testing.assert_array_equal(kv[["d", "a"]], [[9, 10, 11], [0, 1, 2]])
    assert kv[[]].shape == (0, 3)
    np.testing.assert_allclose(kv.get_vector("b", norm=True), np.array([3, 4, 5]) / np.sqrt(50),
                               rtol=1e-6)
    with pytest.raises(ValueError):
        kv["a"][0] = 1.0  # read-only view: writing would bypass the norm cache
    assert kv.counts.dtype == np.int64
    assert repr(kv) == "KeyedVectors<vector_size=3, 4 keys>"
    assert kv.vectors is vectors  # float32 C-contiguous input is not copied


def test_float64_input_is_stored_as_float32():
    kv = KeyedVectors(np.ones((2, 3)), ["x", "y"])
    assert kv.vectors.dtype == np.float32


@pytest.mark.parametrize("vectors, keys, counts, exc, match", [
    (np.zeros((3, 2), np.float32), ["a", "b"], None, ValueError, "index_to_key"),
    (np.zeros(3, np.float32), ["a", "b", "c"], None, ValueError, "vectors"),
    (np.zeros((2, 0), np.float32), ["a", "b"], None, ValueError, "vectors"),
    (np.zeros((2, 2), np.int32), ["a", "b"], None, TypeError, "vectors"),
    (np.zeros((2, 2), np.float32), ["a", "a"], None, ValueError, "'a' twice"),
    (np.zeros((2, 2), np.float32), ["a", 7], None, TypeError, "index_to_key"),
    (np.zeros((2, 2), np.float32), "ab", None, TypeError, "index_to_key"),
    (np.zeros((2, 2), np.float32), ["a", "b"], [1, 2, 3], ValueError, "counts"),
    (np.zeros((2, 2), np.float32), ["a", "b"], [1, -2], ValueError, "counts"),
    (np.zeros((2, 2), np.float32), ["a", "b"], [1.0, 2.0], TypeError, "counts"),
])
def test_constructor_rejects_bad_input(vectors, keys, counts, exc, match):
    with pytest.raises(exc, match=match):
        KeyedVectors(vectors, keys, counts)


def test_unknown_word_raises_key_error_naming_it():
    kv = _random_kv(5, 3)
    for call in (lambda: kv["nope"], lambda: kv[["w1", "nope"]], lambda: kv.get_index("nope"),
                 lambda: kv.get_vector("nope"), lambda: kv.most_similar("nope"),
                 lambda: kv.most_similar(["w1"], negative=["nope"]),
                 lambda: kv.similarity("w1", "nope"), lambda: kv.doesnt_match(["w1", "nope"]),
                 lambda: kv.n_similarity(["w1"], ["nope"])):
        with pytest.raises(KeyError, match="nope"):
            call()
    with pytest.raises(TypeError):
        kv[3]


# ---------------------------------------------------------------------------- queries, by hand

@pytest.fixture
def tiny():
    # angles: a=0°, b=45°, c=90°, d=180°, e=270° (and |e| = 3: norms must not matter)
    vectors = np.array([[1, 0], [1, 1], [0, 1], [-1, 0], [0, -3]], np.float32)
    return KeyedVectors(vectors, ["a", "b", "c", "d", "e"])


def test_most_similar_by_hand(tiny):
    r = math.sqrt(0.5)
    res = tiny.most_similar("a", topn=10)
    assert [w for w, _ in res][:2] == ["b", "c"] or [w for w, _ in res][:2] == ["b", "e"]
    sims = dict(res)
    assert set(sims) == {"b", "c", "d", "e"}  # the query word itself is excluded
    assert sims["b"] == pytest.approx(r) and sims["d"] == pytest.approx(-1.0)
    assert sims["c"] == pytest.approx(0.0, abs=1e-7) and sims["e"] == pytest.approx(0, abs=1e-7)
    # b - a + c: mean of (unit b, unit c, -unit a) = (r - 1, r + 1)/3, direction ~ 100.5°
    res = tiny.most_similar(positive=["b", "c"], negative=["a"], topn=1)
    q = np.array([r - 1, r + 1]) / np.hypot(r - 1, r + 1)
    assert res[0][0] == "d" and res[0][1] == pytest.approx(q @ [-1, 0], rel=1e-6)
    # weights: ("c", 3) dominates ("a", 1) -> between a and c, closer to c: b wins
    assert tiny.most_similar([("a", 1.0), ("c", 3.0)], topn=1)[0][0] == "b"
    # a raw vector is used as given and not excluded
    res = tiny.most_similar(np.array([0, 2], np.float32), topn=1)
    assert res == [("c", pytest.approx(1.0))]
    assert tiny.most_similar("a", topn=0) == []
    assert [w for w, _ in tiny.most_similar("a", restrict_vocab=3)] == ["b", "c"]
    all_sims = tiny.most_similar("a", topn=None)
    np.testing.assert_allclose(all_sims, [1, r, 0, -1, 0], atol=1e-6)


def test_most_similar_bad_arguments(tiny):
    with pytest.raises(ValueError, match="at least one"):
        tiny.most_similar()
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        tiny.most_similar(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="topn"):
        tiny.most_similar("a", topn=1.5)
    with pytest.raises(ValueError, match="restrict_vocab"):
        tiny.most_similar("a", restrict_vocab=-1)
    with pytest.raises(TypeError, match="positive"):
        tiny.most_similar([3])


def test_similarity_doesnt_match_n_similarity_by_hand(tiny):
    assert tiny.similarity("a", "b") == pytest.approx(math.sqrt(0.5))
    assert tiny.similarity("c", "e") == pytest.approx(-1.0)
    assert isinstance(tiny.similarity("a", "b"), float)
    assert tiny.doesnt_match(["a", "b", "c", "d"]) == "d"
    assert tiny.doesnt_match(["a", "b", "e"]) == "e"
    # mean of raw vectors: (1,0)+(0,-3) -> (0.5,-1.5); with c=(0,1)
    expected = np.array([0.5, -1.5]) @ np.array([0, 1]) / np.hypot(0.5, 1.5)
    assert tiny.n_similarity(["a", "e"], ["c"]) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="ws2"):
        tiny.n_similarity(["a"], [])
    with pytest.raises(ValueError, match="empty"):
        tiny.doesnt_match([])


def test_zero_vector_has_cosine_zero():
    kv = KeyedVectors(np.array([[0, 0], [1, 0], [0, 1]], np.float32), ["z", "x", "y"])
    assert kv.similarity("z", "x") == 0.0
    assert np.isfinite(kv.get_normed_vectors()).all()
    assert dict(kv.most_similar("x"))["z"] == 0.0


def test_norm_cache_follows_vector_changes(tiny):
    assert tiny.most_similar("a", topn=1)[0][0] == "b"
    normed = tiny.get_normed_vectors()
    assert tiny.get_normed_vectors() is normed and not normed.flags.writeable
    new = tiny.vectors.copy()
    new[3] = [1, 0.01]  # d now next to a
    tiny.vectors = new
    assert tiny.most_similar("a", topn=1)[0][0] == "d"
    tiny.vectors[2] = [1, 0.0001]  # in place: invisible until fill_norms(force=True)
    tiny.fill_norms(force=True)
    assert tiny.most_similar("a", topn=1)[0][0] == "c"
    with pytest.raises(ValueError, match="5 rows"):
        tiny.vectors = np.zeros((4, 2), np.float32)


# ---------------------------------------------------------------------------- npz persistence

def test_save_load_roundtrip(tmp_path):
    kv = KeyedVectors(np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32),
                      ["naïve", "日本", "a b", "x"], counts=[10, 5, 3, 1])
    path = tmp_path / "model.kv"
    kv.save(path)
    assert path.exists()  # no .npz suffix added
    back = KeyedVectors.load(path)
    np.testing.assert_array_equal(back.vectors, kv.vectors)
    assert back.index_to_key == kv.index_to_key
    np.testing.assert_array_equal(back.counts, kv.counts)
    KeyedVectors(kv.vectors, kv.index_to_key).save(tmp_path / "nocounts")
    assert KeyedVectors.load(tmp_path / "nocounts").counts is None


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz file at all")
    with pytest.raises(ValueError, match="bad.npz"):
        KeyedVectors.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, vectors=np.zeros((1, 1)))
    with pytest.raises(ValueError, match="other.npz"):
        KeyedVectors.load(other)
    with pytest.raises(FileNotFoundError):
        KeyedVectors.load(tmp_path / "missing")


# ---------------------------------------------------------------------------- word2vec format

UNICODE_KEYS = ["naïve", "日本語", "Ünïcødé", "emoji🙂", "tab\tin", "plain"]


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_word2vec_roundtrip(tmp_path, binary, suffix):
    rng = np.random.default_rng(3)
    vectors = (rng.standard_normal((6, 5)) * 10.0 ** rng.integers(-8, 8, (6, 5))).astype(np.float32)
    vectors[0, 0] = 0.0
    vectors[0, 1] = -0.0
    kv = KeyedVectors(vectors, UNICODE_KEYS)
    path = tmp_path / f"v{suffix}"
    kv.save_word2vec_format(path, binary=binary)
    back = KeyedVectors.load_word2vec_format(path, binary=binary)
    assert back.index_to_key == UNICODE_KEYS
    # text uses float32's shortest round-trip repr, so both formats are exact
    np.testing.assert_array_equal(back.vectors.view(np.uint32), vectors.view(np.uint32))
    assert back.counts.tolist() == [6, 5, 4, 3, 2, 1]  # made up in file order, as gensim does
    first = KeyedVectors.load_word2vec_format(path, binary=binary, limit=2)
    assert first.index_to_key == UNICODE_KEYS[:2]
    np.testing.assert_array_equal(first.vectors, vectors[:2])


def test_word2vec_bytes_by_hand(tmp_path):
    kv = KeyedVectors(np.array([[0.1, -2.0], [1e-5, 3.4e38]], np.float32), ["é", "b"])
    kv.save_word2vec_format(tmp_path / "t")
    assert (tmp_path / "t").read_bytes() == "2 2\né 0.1 -2.0\nb 1e-05 3.4e+38\n".encode("utf8")
    kv.save_word2vec_format(tmp_path / "b", binary=True)
    expected = (b"2 2\n" + "é ".encode("utf8") + struct.pack("<2f", 0.1, -2.0)
                + b"b " + struct.pack("<2f", 1e-5, 3.4e38))
    assert (tmp_path / "b").read_bytes() == expected
    kv.save_word2vec_format(tmp_path / "nh", write_header=False)
    assert (tmp_path / "nh").read_text(encoding="utf8").startswith("é 0.1")
    back = KeyedVectors.load_word2vec_format(tmp_path / "nh", no_header=True)
    np.testing.assert_array_equal(back.vectors, kv.vectors)
    first = KeyedVectors.load_word2vec_format(tmp_path / "nh", no_header=True, limit=1)
    assert first.vectors.shape == (1, 2)


def test_word2vec_c_style_files(tmp_path):
    # word2vec.c: text lines end in "value \n"; binary records end in "\n"
    (tmp_path / "t").write_bytes(b"2 3\nthe 0.100000 0.200000 -0.300000 \nof 1 2 3 \n")
    kv = KeyedVectors.load_word2vec_format(tmp_path / "t")
    assert kv.index_to_key == ["the", "of"]
    np.testing.assert_array_equal(kv["the"], np.array([0.1, 0.2, -0.3], np.float32))
    raw = (b"2 2\n" + b"the " + struct.pack("<2f", 1, 2) + b"\n"
           + b"of " + struct.pack("<2f", 3, 4) + b"\n")
    (tmp_path / "b").write_bytes(raw)
    kv = KeyedVectors.load_word2vec_format(tmp_path / "b", binary=True)
    assert kv.index_to_key == ["the", "of"]
    np.testing.assert_array_equal(kv.vectors, [[1, 2], [3, 4]])


def test_word2vec_binary_small_chunks(tmp_path, monkeypatch):
    kv = _random_kv(50, 7, keys=[f"k{i}" * (i % 5 + 1) for i in range(50)])
    kv.save_word2vec_format(tmp_path / "b", binary=True)
    real = _kvformats._read_binary
    monkeypatch.setattr(_kvformats, "_read_binary", lambda *a: real(*a, chunk_size=3))
    back = KeyedVectors.load_word2vec_format(tmp_path / "b", binary=True)
    assert back.index_to_key == kv.index_to_key
    np.testing.assert_array_equal(back.vectors, kv.vectors)


def test_word2vec_duplicate_keys_keep_first(tmp_path, caplog):
    (tmp_path / "t").write_bytes(b"3 1\na 1\nb 2\na 3\n")
    kv = KeyedVectors.load_word2vec_format(tmp_path / "t")
    assert kv.index_to_key == ["a", "b"]
    np.testing.assert_array_equal(kv.vectors, [[1], [2]])
    assert "duplicate word" in caplog.text


@pytest.mark.parametrize("content, binary, match", [
    (b"the 0.1 0.2\nof 0.3 0.4\n", False, r"line 1: expected a word2vec header"),
    (b"", False, r"line 1: expected a word2vec header"),
    (b"2 2 2\na 1 2\n", False, r"line 1"),
    (b"2 3\na 1 2 3\nb 1 2\n", False, r"line 3: expected a key and 3 values, got 2"),
    (b"2 2\na 1 2\nb 1 x\n", False, r"line 3: b'x' is not a number"),
    (b"3 2\na 1 2\nb 1 2\n", False, r"line 4: file ends after 2 vectors, the header announces 3"),
    (b"2 2\n\xff\xfe 1 2\nb 1 2\n", False, r"line 2: key .* does not decode"),
    (b"2 2\na " + struct.pack("<2f", 1, 2) + b"b " + struct.pack("<f", 1), True,
     r"record 2 \(byte 14\): file ends after 1 vectors"),
    (b"1 2\n\xff " + struct.pack("<2f", 1, 2), True, r"record 1 \(byte 4\): key"),
])
def test_word2vec_bad_files(tmp_path, content, binary, match):
    path = tmp_path / "bad.vec"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        KeyedVectors.load_word2vec_format(path, binary=binary)
    assert str(path) in str(info.value)


def test_word2vec_unicode_errors(tmp_path):
    (tmp_path / "t").write_bytes(b"1 1\nab\xff 1\n")
    kv = KeyedVectors.load_word2vec_format(tmp_path / "t", unicode_errors="replace")
    assert kv.index_to_key == ["ab\ufffd"]
    kv = KeyedVectors.load_word2vec_format(tmp_path / "t", unicode_errors="ignore")
    assert kv.index_to_key == ["ab"]


def test_word2vec_argument_errors(tmp_path):
    kv = KeyedVectors(np.zeros((1, 2), np.float32), ["has space"])
    with pytest.raises(ValueError, match="'has space'"):
        kv.save_word2vec_format(tmp_path / "x")
    KeyedVectors(np.zeros((1, 2), np.float32), ["ok"]).save_word2vec_format(tmp_path / "ok")
    with pytest.raises(ValueError, match="limit"):
        KeyedVectors.load_word2vec_format(tmp_path / "ok", limit=0)
    with pytest.raises(ValueError, match="no_header"):
        KeyedVectors.load_word2vec_format(tmp_path / "ok", binary=True, no_header=True)
    with pytest.raises(FileNotFoundError):
        KeyedVectors.load_word2vec_format(tmp_path / "missing")


# ---------------------------------------------------------------------------- analogies

def test_analogies_by_hand(tmp_path):
    # king - man + woman = queen; paris - france + italy = rome (exactly, in 4-D)
    vecs = {"man": [1, 0, 0, 0], "woman": [1, 1, 0, 0], "king": [1, 0, 1, 0],
            "queen": [1, 1, 1, 0], "france": [0, 0, 0, 1], "paris": [0.2, 0, 0, 1],
            "italy": [0, 0.7, 0, 1], "rome": [0.2, 0.7, 0, 1], "Rome": [0.2, 0.7, 0.3, 1]}
    kv = KeyedVectors(np.array(list(vecs.values()), np.float32), list(vecs))
    path = tmp_path / "q.txt"
    path.write_text(": royal\nman king woman queen\nMAN WOMAN KING QUEEN\nman king woman italy\n"
                    ": capital\nfrance paris italy rome\nfrance paris italy ROME\n"
                    "france paris spain madrid\nnot four\n", encoding="utf8")
    score, sections = kv.evaluate_word_analogies(path)
    assert [s["section"] for s in sections] == ["royal", "capital", "Total accuracy"]
    assert sections[0]["correct"] == [("MAN", "KING", "WOMAN", "QUEEN"),
                                      ("MAN", "WOMAN", "KING", "QUEEN")]
    assert sections[0]["incorrect"] == [("MAN", "KING", "WOMAN", "ITALY")]
    assert sections[1]["correct"] == [("FRANCE", "PARIS", "ITALY", "ROME")] * 2
    assert sections[1]["incorrect"] == []  # spain/madrid unknown: skipped
    assert len(sections[2]["correct"]) == 4 and score == pytest.approx(4 / 5)
    # case-sensitive: "ROME" is unknown, "Rome" is a different word (and not the answer)
    score, sections = kv.evaluate_word_analogies(path, case_insensitive=False)
    assert sections[1]["correct"] == [("france", "paris", "italy", "rome")]
    assert sections[0]["incorrect"] == [("man", "king", "woman", "italy")]
    score, sections = kv.evaluate_word_analogies(path, dummy4unknown=True)
    assert ("FRANCE", "PARIS", "SPAIN", "MADRID") in sections[1]["incorrect"]
    assert score == pytest.approx(4 / 6)
    # restrict to the first 4 words: only the royal section remains answerable
    score, sections = kv.evaluate_word_analogies(path, restrict_vocab=4)
    assert sections[1]["correct"] == sections[1]["incorrect"] == []
    assert len(sections[0]["correct"]) == 2


def test_analogies_match_reference_across_blocks(tmp_path, monkeypatch):
    kv, countries, capitals, singular, plural = _analogy_kv(seed=1)
    path = _write_analogies(tmp_path / "q.txt", countries, capitals, singular, plural)
    monkeypatch.setattr(_kveval, "_MAX_BLOCK", 7)  # many blocks, a ragged last one
    scores = []
    for restrict, case_insensitive, dummy in [(None, True, False), (1000, True, True),
                                              (40, True, False), (len(kv), False, False)]:
        got = kv.evaluate_word_analogies(path, restrict_vocab=restrict,
                                         case_insensitive=case_insensitive, dummy4unknown=dummy)
        want = _reference_analogies(kv, path, restrict, case_insensitive, dummy)
        assert got == want
        scores.append(got[0])
    assert all(0.2 < score < 0.9 for score in scores)  # neither trivial nor hopeless


def test_analogies_case_variant_is_skipped_like_gensim(tmp_path):
    # "B" is b's case variant and the vector nearest to b - a + c; gensim skips it (its
    # upper-case form is an input word) and takes the next candidate, d.
    vectors = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 1, 1.1], [-1, 1, 1], [5, 5, -5]],
                       np.float32)
    kv = KeyedVectors(vectors, ["a", "b", "c", "d", "B", "e"])
    path = tmp_path / "q.txt"
    path.write_text(": s\na b c d\na b c b\n", encoding="utf8")
    score, sections = kv.evaluate_word_analogies(path)
    assert sections[0]["correct"] == [("A", "B", "C", "D")]
    assert sections[0]["incorrect"] == [("A", "B", "C", "B")]
    assert _reference_analogies(kv, path, None) == (score, sections)


def test_analogies_bad_files(tmp_path):
    kv = _random_kv(10, 3)
    path = tmp_path / "q.txt"
    path.write_text("w0 w1 w2 w3\n: s\n", encoding="utf8")
    with pytest.raises(ValueError, match=r"q.txt: line 1: missing ': section' header"):
        kv.evaluate_word_analogies(path)
    path.write_bytes(b": s\nw0 w1 w2 w3\nw0 \xff w2 w3\n")
    with pytest.raises(ValueError, match=r"q.txt: line 3: not UTF-8"):
        kv.evaluate_word_analogies(path)
    path.write_text(": s\nonly three words\n", encoding="utf8")
    with pytest.raises(ValueError, match="no analogy questions"):
        kv.evaluate_word_analogies(path)
    path.write_text(": s\nw0 w1 w2 w3\n", encoding="utf8")
    with pytest.raises(ValueError, match="restrict_vocab"):
        kv.evaluate_word_analogies(path, restrict_vocab=-5)
    assert kv.evaluate_word_analogies(path, restrict_vocab=0)[0] == 0.0  # all out of vocabulary


# ---------------------------------------------------------------------------- word pairs

def _write_pairs(path, kv, rng, n=60, oov=5):
    lines = ["# comment line", "Word 1\tWord 2\tHuman (mean)"]  # header: not a number, skipped
    for k in range(n):
        i, j = rng.integers(0, len(kv), 2)
        first = kv.index_to_key[i].upper() if k % 3 == 0 else kv.index_to_key[i]
        lines.append(f"{first}\t{kv.index_to_key[j]}\t{rng.uniform(0, 10):.2f}")
    for k in range(oov):
        lines.append(f"unknown{k}\t{kv.index_to_key[k]}\t5.0")
    lines.append("malformed line")
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    return path


def test_word_pairs_by_hand(tmp_path):
    scipy_stats = pytest.importorskip("scipy.stats")
    kv = KeyedVectors(np.array([[1, 0], [1, 1], [0, 1], [-1, 0]], np.float32),
                      ["a", "b", "c", "d"])
    path = tmp_path / "p.tsv"
    path.write_text("# x\nA\tb\t9\na\tc\t5\na\td\t1\nb\tC\t8.5\na\tzzz\t3\nbad line\n",
                    encoding="utf8")
    pearson, spearman, oov = kv.evaluate_word_pairs(path)
    r = math.sqrt(0.5)
    gold, model = [9, 5, 1, 8.5], [r, 0, -1, r]
    assert pearson[0] == pytest.approx(scipy_stats.pearsonr(gold, model)[0], rel=1e-6)
    assert spearman[0] == pytest.approx(scipy_stats.spearmanr(gold, model)[0], rel=1e-6)
    assert oov == pytest.approx(100 / 5)
    pearson, spearman, oov = kv.evaluate_word_pairs(path, dummy4unknown=True)
    assert pearson[0] == pytest.approx(scipy_stats.pearsonr(gold + [3], model + [0])[0], rel=1e-6)
    assert oov == pytest.approx(100 / 5)
    with pytest.raises(ValueError, match="No valid similarity judgements"):
        kv.evaluate_word_pairs(path, restrict_vocab=0)
    with pytest.raises(ValueError, match="delimiter"):
        kv.evaluate_word_pairs(path, delimiter="")
    path.write_bytes(b"a\tb\t1\n\xff\xfe\tb\t2\n")
    with pytest.raises(ValueError, match="p.tsv"):
        kv.evaluate_word_pairs(path)


# ---------------------------------------------------------------------------- against gensim

def test_queries_match_gensim():
    kv = _random_kv(300, 16, seed=5)
    g = _gensim_kv(kv)
    rng = np.random.default_rng(6)
    for _ in range(30):
        pos = [kv.index_to_key[i] for i in rng.choice(300, rng.integers(1, 4), replace=False)]
        neg = [kv.index_to_key[i] for i in rng.choice(300, rng.integers(0, 3), replace=False)]
        restrict = [None, 150][rng.integers(0, 2)]
        ours = kv.most_similar(pos, neg, topn=7, restrict_vocab=restrict)
        theirs = g.most_similar(pos, neg, topn=7, restrict_vocab=restrict)
        assert [w for w, _ in ours] == [w for w, _ in theirs]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-6)
        words = [kv.index_to_key[i] for i in rng.choice(300, 5, replace=False)]
        assert kv.doesnt_match(words) == g.doesnt_match(words)
        assert kv.similarity(words[0], words[1]) == pytest.approx(
            float(g.similarity(words[0], words[1])), abs=1e-6)
        assert kv.n_similarity(words[:2], words[2:]) == pytest.approx(
            float(g.n_similarity(words[:2], words[2:])), abs=1e-6)
    ours = kv.most_similar([("w1", 2.0), "w2"], [("w3", -0.5)], topn=5)
    theirs = g.most_similar([("w1", 2.0), "w2"], [("w3", -0.5)], topn=5)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose(kv.most_similar("w4", topn=None), g.most_similar("w4", topn=None),
                               atol=1e-6)


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_files_match_gensim_both_ways(tmp_path, binary):
    gensim_kv = pytest.importorskip("gensim.models.keyedvectors")
    keys = UNICODE_KEYS + [f"w{i}" for i in range(200)]
    kv = _random_kv(len(keys), 12, seed=9, keys=keys)
    kv.vectors[0, :3] = [1e-30, 3e18, -0.0]
    kv.fill_norms(force=True)
    g = _gensim_kv(kv)
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    kv.save_word2vec_format(ours, binary=binary)
    g.save_word2vec_format(theirs, binary=binary)
    assert ours.read_bytes() == theirs.read_bytes()
    loaded_by_gensim = gensim_kv.KeyedVectors.load_word2vec_format(ours, binary=binary)
    assert loaded_by_gensim.index_to_key == keys
    np.testing.assert_array_equal(loaded_by_gensim.vectors, kv.vectors)
    loaded_by_us = KeyedVectors.load_word2vec_format(theirs, binary=binary, limit=50)
    assert loaded_by_us.index_to_key == keys[:50]
    np.testing.assert_array_equal(loaded_by_us.vectors, kv.vectors[:50])
    # gensim's own limit reads the same rows
    np.testing.assert_array_equal(
        gensim_kv.KeyedVectors.load_word2vec_format(ours, binary=binary, limit=50).vectors,
        loaded_by_us.vectors)


def test_analogies_match_gensim(tmp_path):
    kv, countries, capitals, singular, plural = _analogy_kv(seed=2)
    g = _gensim_kv(kv)
    path = _write_analogies(tmp_path / "q.txt", countries, capitals, singular, plural)
    for restrict, case_insensitive, dummy in [(300000, True, False), (60, True, True),
                                              (len(kv), False, False)]:
        ours = kv.evaluate_word_analogies(path, restrict_vocab=restrict,
                                          case_insensitive=case_insensitive, dummy4unknown=dummy)
        theirs = g.evaluate_word_analogies(str(path), restrict_vocab=restrict,
                                           case_insensitive=case_insensitive, dummy4unknown=dummy)
        assert ours == theirs


def test_analogies_match_gensim_on_questions_words(tmp_path, gensim_test_data):
    """gensim's real questions-words.txt, cut to 25 questions per section (fast)."""
    import os
    lines, per_section = [], 0
    words = {}
    with open(os.path.join(gensim_test_data, QUESTIONS_WORDS), encoding="utf8") as fin:
        for line in fin:
            if line.startswith(": "):
                per_section = 0
            elif per_section < 25:
                per_section += 1
                for w in line.split():
                    words.setdefault(w.lower(), None)
            else:
                continue
            lines.append(line)
    path = tmp_path / "q.txt"
    path.write_text("".join(lines), encoding="utf8")
    rng = np.random.default_rng(11)
    keys = list(words) + [f"filler{i}" for i in range(300)]
    keys = [keys[i] for i in rng.permutation(len(keys))]
    kv = _random_kv(len(keys), 20, seed=12, keys=keys)
    # structure: b - a + c ~ expected for part of the questions
    for line in lines:
        parts = line.lower().split()
        if len(parts) == 4 and rng.random() < 0.5:
            a, b, c, d = (kv.get_index(w) for w in parts)
            kv.vectors[d] = kv.vectors[b] - kv.vectors[a] + kv.vectors[c]
    kv.fill_norms(force=True)
    g = _gensim_kv(kv)
    ours = kv.evaluate_word_analogies(path, restrict_vocab=500)
    theirs = g.evaluate_word_analogies(str(path), restrict_vocab=500)
    assert ours == theirs
    assert len(ours[1]) == 15 and ours[1][-1]["section"] == "Total accuracy"
    assert 0.0 < ours[0] < 1.0


def test_word_pairs_match_gensim(tmp_path, gensim_test_data):
    import os
    kv = _random_kv(300, 16, seed=13, keys=[f"w{i}" for i in range(299)] + ["W5"])
    g = _gensim_kv(kv)
    path = _write_pairs(tmp_path / "p.tsv", kv, np.random.default_rng(14))
    for restrict, ci, dummy in [(300000, True, False), (150, True, True), (300, False, False)]:
        ours = kv.evaluate_word_pairs(path, restrict_vocab=restrict, case_insensitive=ci,
                                      dummy4unknown=dummy)
        theirs = g.evaluate_word_pairs(str(path), restrict_vocab=restrict, case_insensitive=ci,
                                       dummy4unknown=dummy)
        np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-5, atol=1e-6)
        assert ours[2] == pytest.approx(theirs[2])
    # the real wordsim353 file parses the same way (every pair is out of this vocabulary)
    wordsim = os.path.join(gensim_test_data, "wordsim353.tsv")
    with pytest.raises(ValueError, match="No valid similarity judgements"):
        kv.evaluate_word_pairs(wordsim)


# ---------------------------------------------------------------------------- gensim's form

def test_gensim_constructor_form():
    for kv in (KeyedVectors(3), KeyedVectors(vector_size=3), KeyedVectors(3, 5),
               KeyedVectors(np.int64(3), count=5, dtype=np.float32), KeyedVectors(3, dtype="f4")):
        assert len(kv) == 0 and kv.vector_size == 3 and kv.index_to_key == []
        assert kv.vectors.shape == (0, 3) and kv.vectors.dtype == np.float32
        assert kv.counts is None and kv.expandos == {}
    kv = KeyedVectors(2, 3)          # three rows reserved: filled without moving
    assert kv.add_vector("a", np.array([1.0, 2.0])) == 0
    buffer = kv.vectors.base                                # the three rows
    assert buffer.shape == (3, 2)
    assert kv.add_vector("b", [3.0, 4.0]) == 1 and kv.add_vector("c", [5.0, 6.0]) == 2
    assert kv.vectors is buffer and kv.vectors.flags.c_contiguous
    np.testing.assert_array_equal(kv.vectors, [[1, 2], [3, 4], [5, 6]])
    assert kv.key_to_index == {"a": 0, "b": 1, "c": 2}


@pytest.mark.parametrize("args, kwargs, exc, match", [
    ((), {}, TypeError, "vector_size"),
    ((0,), {}, ValueError, "vector_size"),
    ((3, -1), {}, ValueError, "count"),
    ((3, 1.5), {}, TypeError, "count"),
    ((3, 2), {"count": 2}, TypeError, "count given twice"),
    ((3,), {"dtype": np.float64}, TypeError, "dtype must be float32"),
    ((3,), {"dtype": "no such type"}, TypeError, "dtype"),
    ((3, None, [1]), {}, TypeError, "counts"),
    ((np.zeros((1, 3), np.float32),), {"vector_size": 3}, TypeError, "not both"),
    ((np.zeros((1, 3), np.float32), ["a"]), {"count": 2}, TypeError, "count and dtype"),
    ((np.zeros((1, 3), np.float32), ["a"]), {"dtype": np.float32}, TypeError, "count and dtype"),
    ((np.zeros((1, 3), np.float32),), {}, TypeError, "index_to_key"),
])
def test_gensim_constructor_form_rejects_bad_input(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        KeyedVectors(*args, **kwargs)


def test_add_vector_grows_amortised_and_keeps_the_callers_array():
    original = np.arange(6, dtype=np.float32).reshape(3, 2)
    kv = KeyedVectors(original, ["a", "b", "c"])
    copies = 0
    for i in range(200):
        before = kv.vectors.base if kv.vectors.base is not None else kv.vectors
        assert kv.add_vector(f"k{i}", np.full(2, i, np.float64)) == 3 + i
        after = kv.vectors.base if kv.vectors.base is not None else kv.vectors
        copies += after is not before
    assert copies < 20                                    # room is reserved geometrically
    assert kv.vectors.shape == (203, 2) and kv.vectors.dtype == np.float32
    np.testing.assert_array_equal(kv.vectors[:3], original)
    np.testing.assert_array_equal(kv.vectors[3:, 0], np.arange(200))
    np.testing.assert_array_equal(original, np.arange(6).reshape(3, 2))   # not written
    assert kv.add_vector("a", [9.0, 9.0]) == 0                             # present: kept
    np.testing.assert_array_equal(kv["a"], [0, 1])


def test_add_vectors_replace_and_order(tiny):
    tiny.add_vectors(["b", "new1", "new2"], [[7.0, 7.0], [0.0, 2.0], [2.0, 0.5]])
    assert tiny.index_to_key == ["a", "b", "c", "d", "e", "new1", "new2"]
    np.testing.assert_array_equal(tiny["b"], [1, 1])                       # kept
    tiny.add_vectors(["b", "new3"], np.array([[7.0, 7.0], [1.0, -1.0]]), replace=True)
    np.testing.assert_array_equal(tiny["b"], [7, 7])                       # replaced
    assert len(tiny) == 8
    tiny.add_vectors("one", np.array([0.5, 0.5]))                          # a single key
    tiny.add_vectors("two", [[0.5, -0.5]])
    tiny.add_vectors([], np.empty((0, 2)))                                 # nothing to add
    assert tiny.index_to_key[-2:] == ["one", "two"] and len(tiny) == 10
    # the norm cache follows: a new key is found at once
    assert tiny.most_similar("new1", topn=1)[0][0] == "c"


def test_setitem(tiny):
    tiny["f"] = np.array([2.0, 2.0])
    tiny["a"] = np.array([0.0, 5.0])
    tiny[["c", "g"]] = [np.array([3.0, 3.0]), np.array([4.0, 4.0])]
    assert tiny.index_to_key == ["a", "b", "c", "d", "e", "f", "g"]
    np.testing.assert_array_equal(tiny[["a", "c", "f", "g"]], [[0, 5], [3, 3], [2, 2], [4, 4]])
    assert tiny.similarity("a", "e") == pytest.approx(-1.0)    # the norm cache followed
    with pytest.raises(TypeError, match="int"):
        tiny[3] = np.zeros(2)


@pytest.mark.parametrize("keys, weights, exc, match", [
    (["x", "y"], np.zeros((3, 2)), ValueError, r"weights must have shape \(2, 2\)"),
    (["x"], np.zeros((1, 3)), ValueError, r"weights must have shape \(1, 2\)"),
    ("x", np.zeros((2, 2)), ValueError, r"weights must have shape \(1, 2\)"),
    (["x", "y"], [[1.0, 2.0], [3.0]], ValueError, "weights"),
    (["x"], np.zeros((1, 2), np.int64), TypeError, "weights must be float32 or float64"),
    (["x", 7], np.zeros((2, 2)), TypeError, "index 1 is int 7"),
    (["x", "x"], np.zeros((2, 2)), ValueError, "'x' twice"),
    (7, np.zeros((1, 2)), TypeError, "keys must be a str or a list of str"),
])
def test_add_vectors_rejects_bad_input(tiny, keys, weights, exc, match):
    with pytest.raises(exc, match=match):
        tiny.add_vectors(keys, weights)
    assert len(tiny) == 5                                   # nothing half-added


def test_add_vector_rejects_bad_input(tiny):
    with pytest.raises(TypeError, match="key must be a str"):
        tiny.add_vector(1, np.zeros(2))
    with pytest.raises(ValueError, match=r"vector must have shape \(2,\)"):
        tiny.add_vector("x", np.zeros(3))
    with pytest.raises(TypeError, match="vector"):
        tiny.add_vector("x", np.zeros(2, np.int32))
    assert len(tiny) == 5


def test_replacing_read_only_vectors_is_refused():
    vectors = np.ones((2, 2), np.float32)
    vectors.setflags(write=False)
    kv = KeyedVectors(vectors, ["a", "b"])
    with pytest.raises(ValueError, match="read-only"):
        kv["a"] = np.zeros(2)
    with pytest.raises(ValueError, match="read-only"):
        kv.unit_normalize_all()
    kv["c"] = np.zeros(2)                                   # adding copies: fine
    assert len(kv) == 3


def test_vecattrs():
    kv = _random_kv(4, 2)
    with pytest.raises(KeyError, match="'count'"):
        kv.get_vecattr("w0", "count")
    kv.set_vecattr("w1", "count", 7)
    assert kv.counts.tolist() == [0, 7, 0, 0] and kv.counts.dtype == np.int64
    assert kv.get_vecattr("w1", "count") == 7
    kv.counts = [4, 3, 2, 1]
    assert kv.get_vecattr("w0", "count") == 4 and kv.expandos["count"] is kv.counts
    kv.set_vecattr("w2", "tag", "noun")
    kv.set_vecattr("w3", "weight", 0.5)
    kv.set_vecattr("w3", "weight", 2)                       # an int fits a float attribute
    assert kv.expandos["tag"].dtype == object and kv.get_vecattr("w2", "tag") == "noun"
    assert kv.get_vecattr("w3", "weight") == 2.0 and kv.get_vecattr("w0", "weight") == 0.0
    with pytest.raises(TypeError, match="'count' holds integers"):
        kv.set_vecattr("w0", "count", 1.5)
    with pytest.raises(ValueError, match="non-negative"):
        kv.set_vecattr("w0", "count", -1)
    with pytest.raises(TypeError, match="holds integers, got bool"):
        kv.set_vecattr("w0", "count", True)
    kv.set_vecattr("w0", "flag", True)
    with pytest.raises(TypeError, match="'flag' holds bool"):
        kv.set_vecattr("w0", "flag", 3.5)
    with pytest.raises(KeyError, match="nope"):
        kv.set_vecattr("nope", "count", 1)
    with pytest.raises(KeyError, match="nope"):
        kv.get_vecattr("nope", "count")
    # new keys get 0 (as in gensim) or what extras say
    kv.add_vectors(["n1", "n2"], np.ones((2, 2)), extras={"count": [5, 6], "tag": ["a", "b"]})
    assert kv.counts.tolist() == [4, 3, 2, 1, 5, 6]
    assert kv.get_vecattr("n2", "tag") == "b" and kv.get_vecattr("n1", "weight") == 0.0
    kv["n3"] = np.ones(2)
    assert kv.get_vecattr("n3", "count") == 0
    kv.add_vectors(["w0", "n4"], np.ones((2, 2)), extras={"count": [10, 11]}, replace=True)
    assert kv.get_vecattr("w0", "count") == 10 and kv.get_vecattr("n4", "count") == 11
    with pytest.raises(ValueError, match=r"extras\['count'\] must have shape \(1,\)"):
        kv.add_vectors(["n5"], np.ones((1, 2)), extras={"count": [1, 2]})
    with pytest.raises(TypeError, match="counts must hold integers"):
        kv.add_vectors(["n5"], np.ones((1, 2)), extras={"count": [1.5]})
    assert "n5" not in kv


def test_counts_survive_save_and_a_bad_count_array_is_refused(tmp_path):
    kv = _random_kv(3, 2)
    kv.set_vecattr("w2", "count", 9)
    kv.save(tmp_path / "kv")
    assert KeyedVectors.load(tmp_path / "kv").counts.tolist() == [0, 0, 9]
    kv.expandos["count"] = np.array([0.5, 1.0, 2.0])        # written around the checks
    with pytest.raises(TypeError, match="counts must hold integers"):
        kv.save(tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_sort_by_descending_frequency():
    kv = KeyedVectors(np.arange(8, dtype=np.float32).reshape(4, 2), ["a", "b", "c", "d"],
                      counts=[1, 5, 5, 3])
    kv.set_vecattr("d", "tag", "x")
    kv.most_similar("a")                                    # fill the caches
    kv.sort_by_descending_frequency()
    # ties in reverse index order, as gensim 4.4 orders them
    assert kv.index_to_key == ["c", "b", "d", "a"]
    assert kv.key_to_index == {"c": 0, "b": 1, "d": 2, "a": 3}
    assert kv.counts.tolist() == [5, 5, 3, 1] and kv.get_vecattr("d", "tag") == "x"
    np.testing.assert_array_equal(kv["c"], [4, 5])
    np.testing.assert_allclose(kv.get_vector("a", norm=True), [0, 1])  # caches follow
    with pytest.raises(ValueError, match="needs counts"):
        _random_kv(3, 2).sort_by_descending_frequency()
    KeyedVectors(2).sort_by_descending_frequency()          # nothing to sort


def test_vectors_for_all():
    kv = _random_kv(6, 3)
    kv.counts = [60, 50, 40, 30, 20, 10]
    kv.set_vecattr("w4", "tag", "t")
    sub = kv.vectors_for_all(["w4", "nope", "w1", "w4", "w2"])
    assert sub.index_to_key == ["w4", "w1", "w2"]
    np.testing.assert_array_equal(sub.vectors, kv.vectors[[4, 1, 2]])
    assert sub.counts.tolist() == [3, 2, 1] and "tag" not in sub.expandos   # made up
    copied = kv.vectors_for_all(iter(["w4", "w1"]), copy_vecattrs=True)
    assert copied.counts.tolist() == [20, 50] and copied.get_vecattr("w4", "tag") == "t"
    assert len(kv.vectors_for_all([])) == 0
    with pytest.raises(TypeError, match="single str"):
        kv.vectors_for_all("w1")
    with pytest.raises(TypeError, match="item 1 is int"):
        kv.vectors_for_all(["w1", 3])


def test_unit_normalize_all():
    kv = KeyedVectors(np.array([[3, 4], [0, 0], [0, -2]], np.float32), ["a", "z", "b"])
    vectors = kv.vectors
    kv.unit_normalize_all()
    assert kv.vectors is vectors                            # in place, as in gensim
    np.testing.assert_allclose(kv.vectors, [[0.6, 0.8], [0, 0], [0, -1]])
    assert kv.norms.tolist() == [1.0, 0.0, 1.0]
    np.testing.assert_allclose(kv.get_normed_vectors(), kv.vectors)


# ---------------------------------------------------------------------------- more queries

def test_get_mean_vector_by_hand(tiny):
    # unit vectors of a and c, weights 1 and 3: (1, 3) / 4
    np.testing.assert_allclose(tiny.get_mean_vector(["a", "c"], [1, 3]), [0.25, 0.75])
    # raw vectors: e is (0, -3)
    np.testing.assert_allclose(tiny.get_mean_vector(["a", "e"], pre_normalize=False), [0.5, -1.5])
    np.testing.assert_allclose(tiny.get_mean_vector(["a", "e"], post_normalize=True),
                               np.array([1, -1]) / np.sqrt(2), rtol=1e-6)
    # vectors are used as given; unknown keys are left out with their weight
    np.testing.assert_allclose(tiny.get_mean_vector([np.array([4.0, 0.0]), "nope", "c"],
                                                    weights=np.array([1.0, 5.0, 1.0])),
                               [2.0, 0.5])
    assert tiny.get_mean_vector(["nope"]).tolist() == [0.0, 0.0]
    assert tiny.get_mean_vector(["a", "c"]).dtype == np.float32
    with pytest.raises(KeyError, match="nope"):
        tiny.get_mean_vector(["a", "nope"], ignore_missing=False)
    with pytest.raises(ValueError, match="empty"):
        tiny.get_mean_vector([])
    with pytest.raises(ValueError, match=r"weights must have shape \(2,\)"):
        tiny.get_mean_vector(["a", "c"], [1, 2, 3])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        tiny.get_mean_vector([np.zeros(3)])
    with pytest.raises(TypeError, match="single str"):
        tiny.get_mean_vector("a")
    with pytest.raises(TypeError, match="index 0 is int"):
        tiny.get_mean_vector([0])


def test_distances_closer_than_rank_by_hand(tiny):
    # angles a=0°, b=45°, c=90°, d=180°, e=270°
    h = 1 - np.sqrt(0.5)
    np.testing.assert_allclose(tiny.distances("a"), [0, h, 1, 2, 1], atol=1e-6)
    assert tiny.distances("a")[0] == 0.0 and tiny.distance("b", "b") == 0.0
    assert tiny.distances("a").dtype == np.float32
    np.testing.assert_allclose(tiny.distances("a", ["d", "b"]), [2, h], atol=1e-6)
    np.testing.assert_allclose(tiny.distances(np.array([0.0, 2.0]), ["a", "c"]), [1, 0],
                               atol=1e-6)
    assert tiny.distance("a", "d") == pytest.approx(2.0)
    assert tiny.closer_than("a", "c") == ["b"]              # e is as far as c, not closer
    assert tiny.closer_than("a", "d") == ["b", "c", "e"]
    assert tiny.closer_than("a", "a") == [] and tiny.rank("a", "a") == 1
    assert tiny.rank("a", "b") == 1 and tiny.rank("a", "c") == 2 and tiny.rank("a", "d") == 4
    assert tiny.most_similar_to_given("a", ["d", "c", "b"]) == "b"
    assert tiny.most_similar_to_given("a", ("c", "e")) == "c"     # ties: the first
    assert tiny.most_similar_to_given("a", ["d", "a"]) == "a"
    for call, match in [(lambda: tiny.distances("nope"), "nope"),
                        (lambda: tiny.distances("a", ["b", "nope"]), "nope"),
                        (lambda: tiny.closer_than("a", "nope"), "nope"),
                        (lambda: tiny.rank("nope", "a"), "nope"),
                        (lambda: tiny.distance("a", "nope"), "nope"),
                        (lambda: tiny.most_similar_to_given("a", ["b", "nope"]), "nope"),
                        (lambda: tiny.similar_by_key("nope"), "nope"),
                        (lambda: tiny.most_similar_cosmul(["a"], ["nope"]), "nope"),
                        (lambda: tiny.relative_cosine_similarity("a", "nope"), "nope")]:
        with pytest.raises(KeyError, match=match):
            call()
    with pytest.raises(ValueError, match="empty"):
        tiny.most_similar_to_given("a", [])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        tiny.distances(np.zeros(3))
    with pytest.raises(TypeError, match="single str"):
        tiny.distances("a", "bc")


def test_similar_by_and_relative_cosine_similarity_by_hand(tiny):
    assert tiny.similar_by_word("a", topn=2) == tiny.most_similar("a", topn=2)
    assert tiny.similar_by_key("a", topn=2) == tiny.most_similar(positive=["a"], topn=2)
    found = tiny.similar_by_vector(np.array([0.0, 1.0]), topn=2)
    assert [k for k, _ in found] == ["c", "b"]              # c itself is not left out
    assert len(tiny.similar_by_vector([1.0, 0.0], topn=None)) == 5
    assert len(tiny.similar_by_key("a", topn=None, restrict_vocab=3)) == 3
    with pytest.raises(TypeError, match="key must be a str"):
        tiny.similar_by_key(np.zeros(2))
    with pytest.raises(ValueError, match="vector"):
        tiny.similar_by_vector(np.zeros((1, 2)))
    # similarity(a, b) / (sum of a's 2 best: b at cos 45°, c and e at 0 -> c first)
    assert tiny.relative_cosine_similarity("a", "b", topn=2) == pytest.approx(1.0)
    assert tiny.relative_cosine_similarity("a", "c", topn=2) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="topn"):
        tiny.relative_cosine_similarity("a", "b", topn=0)
    with pytest.raises(ValueError, match="keys other than"):
        KeyedVectors(np.ones((1, 2), np.float32), ["only"]).relative_cosine_similarity(
            "only", "only")


def test_most_similar_cosmul_by_hand(tiny):
    normed = tiny.get_normed_vectors()
    shifted = (1 + normed @ normed.T) / 2
    a, b, c, d, e = range(5)
    # one positive key: the ranking of most_similar, scores (1 + cos) / 2 / (1 + 1e-6)
    found = tiny.most_similar_cosmul("a", topn=3)
    assert [k for k, _ in found] == [k for k, _ in tiny.most_similar("a", topn=3)]
    np.testing.assert_allclose([s for _, s in found],
                               shifted[a, [b, c, e]] / (1 + 1e-6), rtol=1e-6)
    # positive b, c; negative d: 3CosMul over the remaining keys a, e
    expected = shifted[:, b] * shifted[:, c] / (shifted[:, d] + 1e-6)
    found = dict(tiny.most_similar_cosmul(["b", "c"], ["d"], topn=5))
    assert set(found) == {"a", "e"}
    np.testing.assert_allclose([found["a"], found["e"]], expected[[a, e]], rtol=1e-5)
    np.testing.assert_allclose(tiny.most_similar_cosmul(["b", "c"], ["d"], topn=None),
                               expected, rtol=1e-5)
    # positional, keyword and single-key forms agree; vectors are used as given
    assert (tiny.most_similar_cosmul("b", "d", topn=3)
            == tiny.most_similar_cosmul(positive=["b"], negative=["d"], topn=3))
    by_vector = tiny.most_similar_cosmul([np.array([0.0, 1.0])], topn=5)
    assert by_vector[0][0] == "c" and len(by_vector) == 5
    assert len(tiny.most_similar_cosmul("a", topn=None, restrict_vocab=2)) == 2
    assert tiny.most_similar_cosmul("a", topn=0) == []
    with pytest.raises(ValueError, match="positive"):
        tiny.most_similar_cosmul(negative=["a"])
    with pytest.raises(TypeError, match="positive items"):
        tiny.most_similar_cosmul([("a", 2.0)])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        tiny.most_similar_cosmul([np.zeros(3)])


def test_cosine_similarities():
    sims = KeyedVectors.cosine_similarities(np.array([1, 0], np.float32),
                                            np.array([[2, 0], [0, 0], [-1, 1]], np.float32))
    np.testing.assert_allclose(sims, [1, 0, -np.sqrt(0.5)], rtol=1e-6)
    assert sims.dtype == np.float32
    with pytest.raises(ValueError, match="2 columns"):
        KeyedVectors.cosine_similarities(np.zeros(2), np.zeros((3, 3)))


class _Composing(KeyedVectors):
    """A subclass that composes a vector for any key (as FastText's vectors do)."""

    def __contains__(self, key):
        return isinstance(key, str)

    def get_vector(self, key, norm=False):
        if key in self.key_to_index:
            return super().get_vector(key, norm)
        vector = np.array([len(key), -1.0], np.float32)
        return vector / np.linalg.norm(vector) if norm else vector


def test_queries_take_a_subclass_composed_vectors(tiny):
    kv = _Composing(tiny.vectors, tiny.index_to_key)
    sub = kv.vectors_for_all(["a", "zzz", "a"], copy_vecattrs=True)
    assert sub.index_to_key == ["a", "zzz"] and sub.counts.tolist() == [2, 1]
    np.testing.assert_array_equal(sub["zzz"], [3, -1])
    assert kv.vectors_for_all(["a", "zzz"], allow_inference=False).index_to_key == ["a"]
    np.testing.assert_allclose(kv.get_mean_vector(["zzz"], pre_normalize=False), [3, -1])
    np.testing.assert_allclose(kv.distances("z")[[0, 4]],
                               1 - np.array([1, 1]) / np.sqrt(2), rtol=1e-6)  # (1, -1)
    assert kv.most_similar_cosmul("z", topn=1)[0][0] in ("a", "e")
    assert kv.most_similar_to_given("z", ["c", "b", "zz"]) == "zz"


# ---------------------------------------------------------------------------- vocabulary files

def test_word2vec_with_vocabulary_file(tmp_path, caplog):
    kv = _random_kv(4, 3)
    kv.counts = [40, 30, 20, 10]
    kv.save_word2vec_format(tmp_path / "v.txt", fvocab=tmp_path / "vocab.txt")
    assert (tmp_path / "vocab.txt").read_text() == "w0 40\nw1 30\nw2 20\nw3 10\n"
    back = KeyedVectors.load_word2vec_format(tmp_path / "v.txt", fvocab=tmp_path / "vocab.txt")
    assert back.counts.tolist() == [40, 30, 20, 10]
    (tmp_path / "part.txt").write_text("w1 7\nw0 8\n\nw1 9\n")     # repeated: the last wins
    back = KeyedVectors.load_word2vec_format(tmp_path / "v.txt", fvocab=tmp_path / "part.txt")
    assert back.counts.tolist() == [8, 9, 0, 0]
    assert "lists no count for 2 of the keys ('w2' first)" in caplog.text
    with pytest.raises(ValueError, match="fvocab needs counts"):
        _random_kv(2, 3).save_word2vec_format(tmp_path / "x", fvocab=tmp_path / "xv")
    with pytest.raises(TypeError, match="binary is the third argument"):
        kv.save_word2vec_format(tmp_path / "x", True)
    with pytest.raises(TypeError, match="binary is the third argument"):
        KeyedVectors.load_word2vec_format(tmp_path / "v.txt", False)


@pytest.mark.parametrize("content, match", [
    (b"w0 1 2\n", "line 1: expected 'key count'"),
    (b"w0 1\nw1 -3\n", "line 2: expected 'key count'"),
    (b"w0 x\n", "line 1"),
    ("w0 \u00b2\n".encode("utf8"), "line 1"),            # a digit int() does not read
])
def test_bad_vocabulary_files(tmp_path, content, match):
    _random_kv(2, 3).save_word2vec_format(tmp_path / "v.txt")
    (tmp_path / "vocab").write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        KeyedVectors.load_word2vec_format(tmp_path / "v.txt", fvocab=tmp_path / "vocab")
    assert str(tmp_path / "vocab") in str(info.value)


def test_undecodable_keys_raise_unicode_decode_error(tmp_path):
    (tmp_path / "t").write_bytes(b"1 1\nab\xff 1\n")
    (tmp_path / "vocab").write_bytes(b"ab\xff 5\n")
    for kwargs in ({}, {"fvocab": tmp_path / "vocab"}):
        with pytest.raises(UnicodeDecodeError, match="does not decode") as info:
            KeyedVectors.load_word2vec_format(tmp_path / "t", **kwargs)
        assert isinstance(info.value, ValueError) and "line " in str(info.value)
    kv = KeyedVectors.load_word2vec_format(tmp_path / "t", fvocab=tmp_path / "vocab",
                                           unicode_errors="replace")
    assert kv.get_vecattr("ab\ufffd", "count") == 5


def test_load_word2vec_format_dtype(tmp_path):
    _random_kv(2, 3).save_word2vec_format(tmp_path / "v")
    assert KeyedVectors.load_word2vec_format(tmp_path / "v", datatype=np.float32).vectors.dtype \
        == np.float32
    with pytest.raises(TypeError, match="datatype must be float32"):
        KeyedVectors.load_word2vec_format(tmp_path / "v", datatype=np.float16)


def test_made_up_counts_follow_gensim_with_repeats_and_limit(tmp_path):
    (tmp_path / "t").write_bytes(b"4 1\na 1\nb 2\na 3\nc 4\n")
    kv = KeyedVectors.load_word2vec_format(tmp_path / "t")
    assert kv.index_to_key == ["a", "b", "c"] and kv.counts.tolist() == [4, 3, 2]
    assert KeyedVectors.load_word2vec_format(tmp_path / "t", limit=2).counts.tolist() == [2, 1]


# ---------------------------------------------------------------------------- more, against gensim

@pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")  # gensim's own call
def test_more_queries_match_gensim():
    kv = _random_kv(300, 16, seed=11)
    g = _gensim_kv(kv)
    rng = np.random.default_rng(12)
    for _ in range(15):
        pos = [kv.index_to_key[i] for i in rng.choice(300, rng.integers(1, 4), replace=False)]
        neg = [kv.index_to_key[i] for i in rng.choice(300, rng.integers(0, 3), replace=False)]
        ours, theirs = kv.most_similar_cosmul(pos, neg, topn=8), g.most_similar_cosmul(pos, neg,
                                                                                         topn=8)
        assert [w for w, _ in ours] == [w for w, _ in theirs]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=1e-4)
        w1, w2 = pos[0], kv.index_to_key[int(rng.integers(300))]
        assert kv.closer_than(w1, w2) == g.closer_than(w1, w2)
        assert kv.rank(w1, w2) == g.rank(w1, w2)
        assert kv.distance(w1, w2) == pytest.approx(float(g.distance(w1, w2)), abs=1e-6)
        np.testing.assert_allclose(kv.distances(w1), g.distances(w1), atol=1e-6)
        np.testing.assert_allclose(kv.distances(w1, neg + [w2]), g.distances(w1, neg + [w2]),
                                   atol=1e-6)
        candidates = [kv.index_to_key[i] for i in rng.choice(300, 6, replace=False)]
        assert kv.most_similar_to_given(w1, candidates) == g.most_similar_to_given(w1,
                                                                                   candidates)
        assert kv.relative_cosine_similarity(w1, w2, 5) == pytest.approx(
            g.relative_cosine_similarity(w1, w2, 5), rel=1e-5, abs=1e-6)
        weights = rng.standard_normal(len(pos) + 1)
        for pre, post in [(True, False), (False, True)]:
            np.testing.assert_allclose(
                kv.get_mean_vector(pos + ["nope"], weights, pre, post),
                g.get_mean_vector(pos + ["nope"], weights, pre, post), rtol=1e-5, atol=1e-6)
        vector = rng.standard_normal(16)
        assert ([w for w, _ in kv.similar_by_vector(vector, topn=5)]
                == [w for w, _ in g.similar_by_vector(vector, topn=5)])
    np.testing.assert_allclose(kv.most_similar_cosmul("w3", topn=None),
                               g.most_similar_cosmul("w3", topn=None), rtol=1e-5)


def test_growing_and_attributes_match_gensim(tmp_path):
    gensim_kv = pytest.importorskip("gensim.models.keyedvectors")
    rng = np.random.default_rng(13)
    first, rows = rng.standard_normal((10, 4)), rng.standard_normal((6, 4))
    counts = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7]        # with ties
    ours, theirs = KeyedVectors(4), gensim_kv.KeyedVectors(4)
    for kv in (ours, theirs):
        kv.add_vectors([f"k{i}" for i in range(10)], first)
        kv.add_vectors(["k1", "n1", "n2"], rows[:3])
        kv[["k2", "n3"]] = rows[3:5]
        kv["n4"] = rows[5]
        for key, count in zip(kv.index_to_key, counts):
            kv.set_vecattr(key, "count", count)
        kv.sort_by_descending_frequency()
    assert ours.index_to_key == theirs.index_to_key
    np.testing.assert_allclose(ours.vectors, theirs.vectors, rtol=1e-6)
    np.testing.assert_array_equal(ours.counts, theirs.expandos["count"])
    keys = ["n2", "k0", "nope", "n2", "k5"]
    for copy in (False, True):
        a, b = ours.vectors_for_all(keys, copy_vecattrs=copy), theirs.vectors_for_all(
            keys, copy_vecattrs=copy)
        assert a.index_to_key == b.index_to_key
        np.testing.assert_array_equal(a.counts, b.expandos["count"])
    # files with a vocabulary: gensim reads ours
    ours.save_word2vec_format(tmp_path / "v", fvocab=tmp_path / "vocab")
    back = gensim_kv.KeyedVectors.load_word2vec_format(tmp_path / "v", fvocab=tmp_path / "vocab")
    assert back.index_to_key == ours.index_to_key
    np.testing.assert_array_equal(back.expandos["count"], ours.counts)
