"""Word2vec (skip-gram and CBOW) with negative sampling, sampled softmax or NCE.

gensim's interface, fastsampled's kernels. A text corpus is read twice by a compiled
tokeniser that interns the tokens (no Python object per token; about 5 s for 20 M tokens):
once to count, once to encode. It is encoded once, after the vocabulary is fixed, into one
flat uint16 id stream (ids >= 65535 escaped into three entries: about 2 bytes a token, half
of an int32 array) plus int64 sentence offsets. Training runs a Numba kernel in parallel
over fixed blocks of about ``batch_words`` words.

Corpus rules (documented decisions)
-----------------------------------
* A text file holds one sentence per line, tokens separated by ASCII whitespace, UTF-8. A
  token that is not valid UTF-8 raises ``ValueError`` naming the file and the line.
* Lines (or token lists) longer than 10 000 tokens are split into pieces of 10 000 tokens
  (gensim's ``MAX_WORDS_IN_BATCH``; gensim's ``LineSentence`` splits the same way), before
  rare words are dropped.
* Words below ``min_count`` are dropped from the corpus (windows reach over them), as gensim.
  ``max_final_vocab`` raises ``min_count`` until the vocabulary fits, as gensim.
* The vocabulary is sorted by descending count; ties keep first-occurrence order.
* Tokens are split on ASCII whitespace (``bytes.split``); other Unicode spaces stay inside
  tokens.

Training (what is computed; see ``_w2v_kernels`` for the kernel)
---------------------------------------------------------------
* Subsampling: ``t = sample * (words surviving min_count)``, keep probability
  ``min(1, (sqrt(c/t) + 1) * t / c)``; dropped words are removed before windows are formed.
* Window: per centre ``b`` uniform in ``1 .. window``, both sides.
* Learning rate: linear from ``alpha`` to ``min_alpha`` over all epochs together, set per
  block from the block's position in the corpus (``(epoch * N + words before the block) /
  (epochs * N)``), so it does not depend on thread timing. Note: gensim's ``corpus_file``
  mode with ``W`` workers advances each worker's progress by only its own words, so its rate
  falls ``W`` times slower within an epoch (a higher average rate); with 2 workers that
  raises gensim's CBOW analogy score by about 0.02 on the evaluation corpus.
* Candidates: ``negative`` (or ``num_sampled``) ids drawn once per centre word from an
  alias table over ``count ** ns_exponent`` and shared by the window's pairs; a draw equal
  to the centre word is dropped.
* Initialisation: input vectors uniform in ``[-0.5/dim, 0.5/dim)`` (word2vec.c), a pure
  function of ``(seed, word index)``; output vectors zero.
* Loss: per epoch the sum over (input row, output row) pairs of ``-log p(label)``
  (negative sampling / NCE), or of the sampled-softmax cross-entropy per input row;
  :meth:`Word2Vec.get_latest_training_loss` gives the last epoch's sum.
* Randomness: one counter-based stream per ``(seed, epoch, block)``; one worker and a seed
  give bit-identical vectors. Several workers update the shared float32 matrices without
  locks (Hogwild, like word2vec.c and gensim), so those runs are not bit-reproducible.
"""
import json
import os
import time

import numpy as np

from ._rng import normalize_seed
from ._validate import as_int

MAX_WORDS_IN_BATCH = 10000
_LOSSES = {"negative_sampling": 0, "sampled_softmax": 1, "nce": 2}
_CHUNK_BYTES = 1 << 20
_FORMAT = "fastsampled.word2vec/1"


# --------------------------------------------------------------------------- corpus
def _iter_file_chunks(path):
    """Yield uint8 views of chunks of ``path`` that end at a line boundary.

    One buffer is reused for every chunk (a view is valid until the next one is yielded), so
    reading allocates nothing per chunk.
    """
    buf = bytearray(_CHUNK_BYTES)
    view = memoryview(buf)
    with open(path, "rb") as f:
        have = 0
        while True:
            if have == len(buf):  # a line longer than the buffer: grow it
                buf = buf + bytearray(len(buf))
                view = memoryview(buf)
            got = f.readinto(view[have:])
            if not got:
                if have:
                    yield np.frombuffer(buf, np.uint8, count=have)
                return
            end = have + got
            cut = buf.rfind(b"\n", have, end)
            if cut < 0:
                have = end
                continue
            yield np.frombuffer(buf, np.uint8, count=cut + 1)
            rest = end - cut - 1
            buf[:rest] = buf[cut + 1:end]
            have = rest


def _check_file(corpus_file):
    path = os.fspath(corpus_file)
    if not os.path.exists(path):
        raise FileNotFoundError(f"corpus_file {path!r} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"corpus_file {path!r} is a directory, not a text file")
    return path


def _find_bad_line(path, token):
    """1-based line number of the first line containing the byte token ``token``."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if token in line.split():
                return lineno
    return None


def _decode_keys(keys, path):
    out = []
    for k in keys:
        try:
            out.append(k.decode("utf-8"))
        except UnicodeDecodeError as exc:
            line = _find_bad_line(path, k)
            raise ValueError(f"corpus_file {path!r}: line {line} is not valid UTF-8 "
                             f"(token {k!r}: {exc.reason})") from None
    return out


class _FileScan:
    """Token table of a text file, built by a compiled tokeniser (no Python object a token).

    ``scan()`` counts (first pass); ``parts()`` re-reads the file with the frozen table and
    yields each chunk's provisional ids and line lengths (second pass), so the provisional
    ids of the whole corpus are never held at once.
    """

    def __init__(self, path):
        self.path = path
        cap = 1 << 16
        self.slots = np.full(2 * cap, -1, np.int64)
        self.hashes = np.empty(cap, np.uint64)
        self.counts = np.zeros(cap, np.int64)
        self.arena_off = np.zeros(cap + 1, np.int64)
        self.arena = np.empty(1 << 20, np.uint8)
        self.st = np.zeros(6, np.int64)
        self.out_ids = np.empty(_CHUNK_BYTES // 2 + 1, np.int32)
        self.out_lens = np.empty(_CHUNK_BYTES // 2 + 1, np.int64)

    def _grow(self, nbytes):
        nuniq = int(self.st[1])
        if nuniq >= min(self.slots.size // 2, self.hashes.size):
            cap = 2 * self.hashes.size
            self.hashes = np.concatenate((self.hashes, np.empty(cap - self.hashes.size,
                                                                np.uint64)))
            self.counts = np.concatenate((self.counts, np.zeros(cap - self.counts.size,
                                                                np.int64)))
            self.arena_off = np.concatenate((self.arena_off, np.zeros(
                cap + 1 - self.arena_off.size, np.int64)))
            self.slots = np.full(2 * cap, -1, np.int64)
            from . import _w2v_kernels as K
            K.rehash(self.hashes, nuniq, self.slots)
        else:
            self.arena = np.concatenate((self.arena, np.empty(max(self.arena.size, nbytes),
                                                              np.uint8)))

    def _chunks(self):
        """Run the tokeniser over the file; yield (ids, lens) of each chunk (views)."""
        from . import _w2v_kernels as K

        st = self.st
        st[5] = 0
        for data in _iter_file_chunks(self.path):
            if self.out_ids.size < data.size // 2 + 1:
                self.out_ids = np.empty(data.size // 2 + 1, np.int32)
                self.out_lens = np.empty(data.size // 2 + 1, np.int64)
            st[0] = st[3] = st[4] = 0
            while K.scan_tokens(data, st, self.slots, self.hashes, self.arena, self.arena_off,
                                self.counts, self.out_ids, self.out_lens, MAX_WORDS_IN_BATCH):
                self._grow(data.size)
            nl = int(st[4])
            if st[5] > 0 and st[0] == data.size and data[-1] != 10:
                self.out_lens[nl] = st[5]  # last line without a newline
                nl += 1
                st[5] = 0
            yield self.out_ids[:st[3]], self.out_lens[:nl]

    def scan(self):
        """First pass: returns ``(keys, counts)`` (distinct tokens as str, first-occurrence
        order; int64 counts)."""
        for _ in self._chunks():
            pass
        nuniq = int(self.st[1])
        counts = self.counts[:nuniq].copy()
        raw = [self.arena[self.arena_off[u]:self.arena_off[u + 1]].tobytes()
               for u in range(nuniq)]
        return _decode_keys(raw, self.path), counts

    def parts(self):
        """Second pass over the (unchanged) file: (provisional ids, line lengths) per chunk."""
        saved = self.counts
        nuniq = int(self.st[1])
        self.counts = np.zeros_like(saved)  # counting again must not double the counts
        try:
            for part in self._chunks():
                if self.st[1] != nuniq:  # new tokens: their ids are outside the remap
                    raise RuntimeError(f"corpus_file {self.path!r} changed while it was read")
                yield part
        finally:
            self.counts = saved


def _split_lengths(lengths):
    """Split sentence lengths above MAX_WORDS_IN_BATCH into 10 000-token pieces."""
    lengths = np.asarray(lengths, np.int64)
    if lengths.size == 0 or lengths.max() <= MAX_WORDS_IN_BATCH:
        return lengths
    out = []
    for n in lengths.tolist():
        while n > MAX_WORDS_IN_BATCH:
            out.append(MAX_WORDS_IN_BATCH)
            n -= MAX_WORDS_IN_BATCH
        out.append(n)
    return np.asarray(out, np.int64)


def _apply_vocab(counts, parts, remap):
    """Encode the scanned corpus with the final vocabulary.

    ``counts`` are the provisional ids' counts, ``parts`` yields (provisional ids, line
    lengths) pairs (the lengths are overwritten), ``remap`` maps provisional ids to
    vocabulary ids (-1: dropped). Returns ``(stream, sent_off, word_off)``: the uint16 id
    stream (ids >= 65535 take three entries, see ``_w2v_kernels.encode_part``) and, per
    sentence, its start in the stream and in words (int64, one entry more than sentences).
    """
    from . import _w2v_kernels as K

    remap = np.ascontiguousarray(remap, np.int32)
    size = int(counts[remap >= 0].sum()) + 2 * int(counts[remap >= K.ESCAPE].sum())
    stream = np.empty(size, np.uint16)
    pos = 0
    sent_pos, sent_len = [np.zeros(1, np.int64)], [np.zeros(1, np.int64)]
    for ids, lens in parts:
        slens = np.empty(lens.size, np.int64)
        pos, nsent = K.encode_part(ids, lens, remap, stream, pos, slens)
        sent_len.append(lens[:nsent].copy())
        sent_pos.append(slens[:nsent].copy())
    if pos != size:
        raise RuntimeError(f"corpus changed while it was read ({pos} != {size} ids)")
    return stream, np.cumsum(np.concatenate(sent_pos)), np.cumsum(np.concatenate(sent_len))


def _scan(sentences, corpus_file):
    """Count a corpus given either way: ``(keys, counts, parts, what)``.

    ``parts`` is an iterable of (provisional ids, line lengths) for :func:`_apply_vocab`.
    """
    if (sentences is None) == (corpus_file is None):
        raise ValueError("give exactly one of sentences or corpus_file")
    if corpus_file is not None:
        path = _check_file(corpus_file)
        scan = _FileScan(path)
        keys, counts = scan.scan()
        return keys, counts, scan.parts(), f"corpus_file {path!r}"
    keys, counts, ids, lens = _scan_sentences(sentences)
    return keys, counts, [(ids, lens)], "sentences"


def _scan_sentences(sentences):
    """One pass over token lists: provisional ids (first-occurrence order), lengths, counts."""
    if isinstance(sentences, (str, bytes)):
        raise TypeError("sentences must be an iterable of token lists, got a single string")
    index = {}
    setdefault = index.setdefault
    parts, lens = [], []
    for s in sentences:
        if isinstance(s, (str, bytes)):
            raise TypeError("sentences must be an iterable of token lists (lists of str); "
                            f"got a {type(s).__name__} element {s[:40]!r}")
        ids = [setdefault(w, len(index)) for w in s]
        if ids:
            parts.append(np.asarray(ids, np.int32))
            lens.append(len(ids))
    for w in index:
        if not isinstance(w, str):
            raise TypeError(f"sentences must hold str tokens; found {type(w).__name__} {w!r}")
    ids = np.concatenate(parts) if parts else np.empty(0, np.int32)
    counts = np.bincount(ids, minlength=len(index)).astype(np.int64)
    return list(index), counts, ids, _split_lengths(lens)


# --------------------------------------------------------------------------- vocabulary
def _select_vocab(words, counts, min_count, max_final_vocab):
    """Apply min_count / max_final_vocab; return (order, effective_min_count).

    ``order`` indexes ``words``: retained words by descending count, ties in their given
    (first-occurrence) order -- a stable sort, as gensim's.
    """
    counts = np.asarray(counts, np.int64)
    eff_min = min_count
    if max_final_vocab is not None:
        srt = np.sort(counts[counts >= min_count])[::-1]
        if srt.size > max_final_vocab:
            eff_min = max(min_count, int(srt[max_final_vocab]) + 1)
    retained = np.flatnonzero(counts >= eff_min)
    order = retained[np.argsort(-counts[retained], kind="stable")]
    return order, eff_min


def keep_probabilities(counts, sample):
    """word2vec's subsampling: probability of keeping each word, and uint64 thresholds.

    ``t = sample * sum(counts)`` (``sample >= 1`` is an absolute count, as gensim); a word of
    count ``c`` is kept with probability ``min(1, (sqrt(c / t) + 1) * t / c)``. The kernel keeps
    a word when the top 32 bits of a random word are below ``round(p * 2**32)``.
    """
    counts = np.asarray(counts, np.float64)
    if not sample:
        p = np.ones_like(counts)
    else:
        t = sample * counts.sum() if sample < 1.0 else float(sample)
        p = np.minimum(1.0, (np.sqrt(counts / t) + 1.0) * t / counts)
    thr = np.round(p * 2.0**32).astype(np.uint64)
    return p, thr


def block_boundaries(sent_off, batch_words):
    """First sentence of each block (int64, ends with the sentence count).

    A block starts at the first sentence that begins at or after each multiple of
    ``batch_words`` words, so blocks hold about ``batch_words`` words and never split a
    sentence (sentences are at most 10 000 words).
    """
    total = int(sent_off[-1])
    nsent = sent_off.size - 1
    marks = np.arange(0, total, batch_words, dtype=np.int64)
    starts = np.unique(np.searchsorted(sent_off[:-1], marks, side="left"))
    starts = starts[starts < nsent]
    return np.concatenate((starts, [nsent])).astype(np.int64)


def block_alphas(block_word_start, total_words, epoch, epochs, alpha, min_alpha):
    """Learning rate of each block of one epoch: linear decay over all epochs together.

    progress = (epoch * total_words + words before the block) / (epochs * total_words);
    lr = alpha - (alpha - min_alpha) * progress (gensim's schedule, evaluated per block).
    """
    progress = (epoch * total_words + np.asarray(block_word_start, np.float64)) / (
        epochs * total_words)
    return np.maximum(min_alpha, alpha - (alpha - min_alpha) * progress)


def _init_vectors(n, dim, seed):
    """Uniform in [-0.5/dim, 0.5/dim), a pure function of (seed, word index, component).

    SplitMix64 in numpy (same construction as ``_rng.bits``), no compiled kernel needed.
    """
    from ._rng import GAMMA, _M1, _M2, stream_key

    key = np.uint64(stream_key(np.uint64(seed), np.uint64(0x5EED)))
    out = np.empty((n, dim), np.float32)
    step = max(1, (1 << 18) // max(dim, 1))
    cols = np.arange(dim, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            rows = np.arange(lo, hi, dtype=np.uint64)[:, None]
            z = key + (rows * np.uint64(dim) + cols) * GAMMA
            z = (z ^ (z >> np.uint64(30))) * _M1
            z = (z ^ (z >> np.uint64(27))) * _M2
            z = z ^ (z >> np.uint64(31))
            u = (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
            out[lo:hi] = ((u - 0.5) / dim).astype(np.float32)
    return out


# --------------------------------------------------------------------------- model
class Word2Vec:
    """Word2vec embeddings: skip-gram or CBOW, trained with Numba kernels.

    Parameters
    ----------
    sentences : iterable of list of str, optional
        Tokenised sentences (may be a one-shot generator: it is read once).
    corpus_file : str or path, optional
        Text file, one sentence per line, whitespace-separated UTF-8 tokens.
    vector_size : int
        Dimension of the vectors.
    window : int
        Maximum distance between centre and context word; each centre uses a window drawn
        uniformly from ``1 .. window``.
    min_count : int
        Words with fewer occurrences are dropped.
    max_final_vocab : int, optional
        Raise ``min_count`` until at most this many words remain (gensim's rule).
    sample : float
        Subsampling threshold of frequent words (0 disables).
    sg : int
        1 skip-gram, 0 CBOW.
    negative : int
        Negatives per centre word, shared by its window (``loss="negative_sampling"``).
    ns_exponent : float
        Candidates are drawn from ``count ** ns_exponent`` with an alias table.
    loss : {"negative_sampling", "sampled_softmax", "nce"}
        Training objective; see ``fastsampled._w2v_kernels`` for what each computes.
    num_sampled : int, optional
        Candidates per window for ``sampled_softmax`` / ``nce`` (default: ``negative``).
    epochs : int
    alpha, min_alpha : float
        Learning rate, decayed linearly from ``alpha`` to ``min_alpha`` over all epochs.
    workers : int, optional
        Threads (default: all Numba threads). One worker and a fixed seed give bit-identical
        runs; more workers update the shared matrices without locks (Hogwild).
    seed : int
    cbow_mean : int
        Only 1 (mean of the context vectors) is supported.
    progress : bool
        Show a tqdm bar (words/s, lr, loss) when tqdm is installed, else print a line per epoch.
    batch_words : int
        Words per parallel block.
    """

    def __init__(self, sentences=None, corpus_file=None, vector_size=100, window=5,
                 min_count=5, max_final_vocab=None, sample=1e-3, sg=1, negative=5,
                 ns_exponent=0.75, loss="negative_sampling", num_sampled=None, epochs=5,
                 alpha=0.025, min_alpha=1e-4, workers=None, seed=1, cbow_mean=1,
                 progress=True, batch_words=MAX_WORDS_IN_BATCH):
        self.vector_size = as_int(vector_size, "vector_size", 1)
        self.window = as_int(window, "window", 1)
        self.min_count = as_int(min_count, "min_count", 0)
        self.max_final_vocab = (None if max_final_vocab is None
                                else as_int(max_final_vocab, "max_final_vocab", 1))
        self.sample = float(sample)
        if not (self.sample >= 0.0 and np.isfinite(self.sample)):
            raise ValueError(f"sample must be a finite number >= 0, got {sample!r}")
        self.sg = int(bool(sg))
        if loss not in _LOSSES:
            raise ValueError(f"loss must be one of {sorted(_LOSSES)}, got {loss!r}")
        self.loss = loss
        self.negative = as_int(negative, "negative", 0)
        self.num_sampled = (self.negative if num_sampled is None
                            else as_int(num_sampled, "num_sampled", 1))
        if loss == "negative_sampling" and self.negative < 1:
            raise ValueError("negative must be >= 1 for loss='negative_sampling' "
                             "(hierarchical softmax is not implemented)")
        if loss != "negative_sampling" and self.num_sampled < 1:
            raise ValueError(f"num_sampled must be >= 1 for loss={loss!r}")
        self.ns_exponent = float(ns_exponent)
        if not np.isfinite(self.ns_exponent):
            raise ValueError(f"ns_exponent must be finite, got {ns_exponent!r}")
        self.epochs = as_int(epochs, "epochs", 1)
        self.alpha = float(alpha)
        self.min_alpha = float(min_alpha)
        if not (self.alpha > 0 and np.isfinite(self.alpha)):
            raise ValueError(f"alpha must be > 0, got {alpha!r}")
        if not (0 <= self.min_alpha <= self.alpha):
            raise ValueError(f"min_alpha must lie in [0, alpha], got {min_alpha!r}")
        import numba
        maxthreads = numba.config.NUMBA_NUM_THREADS
        self.workers = maxthreads if workers is None else min(as_int(workers, "workers", 1),
                                                              maxthreads)
        self.seed = seed
        self._seed64 = normalize_seed(seed)
        if cbow_mean != 1:
            raise ValueError(f"cbow_mean must be 1 (averaged context), got {cbow_mean!r}")
        self.cbow_mean = 1
        self.progress = bool(progress)
        self.batch_words = as_int(batch_words, "batch_words", 1)

        self.index_to_key = []
        self.counts = np.empty(0, np.int64)
        self.syn0 = None
        self.syn1neg = None
        self.corpus_total_words = 0
        self.running_training_loss = 0.0
        self.epoch_losses = []
        self._corpus = None
        self._wv = None
        if sentences is not None and corpus_file is not None:
            raise ValueError("give either sentences or corpus_file, not both")
        if sentences is not None or corpus_file is not None:
            self.build_vocab(sentences=sentences, corpus_file=corpus_file)
            self.train()

    # ------------------------------------------------------------------ vocabulary
    def build_vocab(self, sentences=None, corpus_file=None):
        """Count the corpus, fix the vocabulary, encode the corpus and initialise vectors.

        Parameters
        ----------
        sentences : iterable of list of str, optional
            Tokenised sentences (read once).
        corpus_file : str or os.PathLike, optional
            A UTF-8 text file, one sentence per line, whitespace-separated tokens. Give
            exactly one of ``sentences`` and ``corpus_file``.
        """
        self._corpus = self.syn0 = self.syn1neg = self._wv = None  # free before reading
        keys, counts, parts, what = _scan(sentences, corpus_file)
        raw_total = int(counts.sum())
        if raw_total == 0:
            raise ValueError(f"{what} holds no tokens")
        order, eff_min = _select_vocab(keys, counts, self.min_count, self.max_final_vocab)
        if order.size == 0:
            raise ValueError(f"no word of {what} reaches min_count={self.min_count} "
                             f"(most frequent: {int(counts.max())} occurrences)")
        remap = np.full(len(keys), -1, np.int64)
        remap[order] = np.arange(order.size)
        corpus = _apply_vocab(counts, parts, remap)
        words = [keys[i] for i in order.tolist()]
        vcounts = counts[order]
        del keys, parts, remap
        self.index_to_key = words
        self.key_to_index = {w: i for i, w in enumerate(words)}
        self.counts = np.ascontiguousarray(vcounts, np.int64)
        self.effective_min_count = eff_min
        self.corpus_total_words = int(raw_total)
        self.corpus_retained_words = int(self.counts.sum())
        self._corpus = corpus
        self._prepare_tables()
        dim = self.vector_size
        self.syn0 = _init_vectors(len(words), dim, self._seed64)
        self.syn1neg = np.zeros((len(words), dim), np.float32)
        self._wv = None
        return self

    def _prepare_tables(self):
        from .alias import AliasTable

        self.keep_prob, self._keep_thr = keep_probabilities(self.counts, self.sample)
        w = self.counts.astype(np.float64) ** self.ns_exponent
        self._alias = AliasTable(w)
        p = w / w.sum()
        with np.errstate(divide="ignore"):
            self._logq = np.log(self.num_sampled * p)

    # ------------------------------------------------------------------ training
    def train(self, sentences=None, corpus_file=None, epochs=None):
        """Train (after ``build_vocab``); a new corpus replaces the encoded one.

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
        from . import _w2v_kernels as K
        import numba

        if sentences is not None or corpus_file is not None:
            if self.syn0 is None:
                raise ValueError("call build_vocab before train")
            self._encode_new(sentences, corpus_file)
        if self._corpus is None:
            raise ValueError("no corpus: call build_vocab(sentences=... or corpus_file=...) "
                             "first")
        epochs = self.epochs if epochs is None else as_int(epochs, "epochs", 1)
        stream, sent_off, word_off = self._corpus
        total = int(word_off[-1])
        if total == 0:
            raise ValueError("the corpus holds no word of the vocabulary")
        bsent = block_boundaries(word_off, self.batch_words)
        nblocks = bsent.size - 1
        bword = word_off[bsent[:-1]]
        mode = _LOSSES[self.loss]
        nneg = self.negative if mode == 0 else self.num_sampled
        chunk = max(4 * self.workers, 32)
        bar = self._progress_bar(epochs * total)
        old_threads = numba.get_num_threads()
        numba.set_num_threads(self.workers)
        t0 = time.perf_counter()
        eff_total = 0
        loss_total = 0.0
        self.epoch_losses = []
        try:
            for epoch in range(epochs):
                alphas = block_alphas(bword, total, epoch, epochs, self.alpha, self.min_alpha)
                loss_e = 0.0
                for b0 in range(0, nblocks, chunk):
                    b1 = min(nblocks, b0 + chunk)
                    loss_out = np.zeros(b1 - b0, np.float64)
                    eff_out = np.zeros(b1 - b0, np.int64)
                    pairs_out = np.zeros(b1 - b0, np.int64)
                    K.train_blocks(self.syn0, self.syn1neg, stream, sent_off, bsent, b0,
                                   alphas[b0:b1], self._keep_thr, self._alias.table,
                                   self._logq, self._seed64, np.uint64(epoch * nblocks),
                                   self.window, nneg, self.sg, mode, loss_out, eff_out,
                                   pairs_out)
                    loss_e += float(loss_out.sum())
                    eff_total += int(eff_out.sum())
                    if bar is not None:
                        words = int(word_off[bsent[b1]] - word_off[bsent[b0]])
                        el = time.perf_counter() - t0
                        bar.set_postfix_str(f"lr={alphas[b1 - 1]:.5f} loss={loss_e:.4g} "
                                            f"eff_words/s={eff_total / max(el, 1e-9):,.0f}",
                                            refresh=False)
                        bar.update(words)
                self.epoch_losses.append(loss_e)
                loss_total += loss_e
                if self.progress and bar is None:
                    el = time.perf_counter() - t0
                    print(f"word2vec epoch {epoch + 1}/{epochs}: loss {loss_e:.6g}, "
                          f"{eff_total / max(el, 1e-9):,.0f} effective words/s, "
                          f"lr {alphas[-1]:.5f}", flush=True)
        finally:
            numba.set_num_threads(old_threads)
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - t0
        self.running_training_loss = self.epoch_losses[-1]
        self._wv = None
        return {"effective_words": eff_total, "raw_words": epochs * self.corpus_total_words,
                "seconds": seconds, "words_per_s": eff_total / max(seconds, 1e-12),
                "loss": loss_total}

    def _decoded_corpus(self):
        """The encoded corpus as a list of id lists (for tests and inspection)."""
        stream, sent_off, _ = self._corpus
        out = []
        for s in range(sent_off.size - 1):
            seg = stream[sent_off[s]:sent_off[s + 1]].astype(np.int64).tolist()
            ids, i = [], 0
            while i < len(seg):
                if seg[i] == 0xFFFF:
                    ids.append((seg[i + 1] << 16) | seg[i + 2])
                    i += 3
                else:
                    ids.append(seg[i])
                    i += 1
            out.append(ids)
        return out

    def _encode_new(self, sentences, corpus_file):
        keys, counts, parts, _ = _scan(sentences, corpus_file)
        get = self.key_to_index.get
        remap = np.fromiter((get(k, -1) for k in keys), np.int64, count=len(keys))
        self.corpus_total_words = int(counts.sum())
        self._corpus = _apply_vocab(counts, parts, remap)

    def _progress_bar(self, total):
        if not self.progress:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None
        return tqdm(total=total, unit="word", unit_scale=True, desc="word2vec")

    def get_latest_training_loss(self):
        """Summed per-pair loss of the last epoch trained."""
        return self.running_training_loss

    # ------------------------------------------------------------------ vectors
    @property
    def wv(self):
        """KeyedVectors of the input vectors (rows in descending frequency order)."""
        if self.syn0 is None:
            raise ValueError("the model has no vocabulary yet: call build_vocab first")
        if self._wv is None:
            from .keyedvectors import KeyedVectors

            self._wv = KeyedVectors(self.syn0, list(self.index_to_key), counts=self.counts)
        return self._wv

    # ------------------------------------------------------------------ persistence
    _PARAMS = ("vector_size", "window", "min_count", "max_final_vocab", "sample", "sg",
               "negative", "ns_exponent", "loss", "num_sampled", "epochs", "alpha",
               "min_alpha", "workers", "cbow_mean", "progress", "batch_words")

    def save(self, path):
        """Write the model to ``path`` (a .npz holding the arrays and a JSON header).

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (replaced if it exists).
        """
        if self.syn0 is None:
            raise ValueError("nothing to save: the model has no vocabulary")
        meta = {"format": _FORMAT, "params": {k: getattr(self, k) for k in self._PARAMS},
                "seed": int(self._seed64), "index_to_key": self.index_to_key,
                "corpus_total_words": self.corpus_total_words,
                "running_training_loss": self.running_training_loss,
                "epoch_losses": self.epoch_losses}
        blob = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
        with open(path, "wb") as f:
            np.savez(f, meta=blob, syn0=self.syn0, syn1neg=self.syn1neg, counts=self.counts)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save` (no pickle).

        Parameters
        ----------
        path : str or os.PathLike
            A file written by :meth:`save`.

        Returns
        -------
        Word2Vec
            The model, ready to query (``wv``) or to train further.
        """
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode("utf-8"))
            if meta.get("format") != _FORMAT:
                raise ValueError(f"{path!r} is not a fastsampled Word2Vec file")
            syn0, syn1, counts = z["syn0"], z["syn1neg"], z["counts"]
        params = dict(meta["params"])
        model = cls(seed=meta["seed"], **params)
        model.index_to_key = list(meta["index_to_key"])
        model.key_to_index = {w: i for i, w in enumerate(model.index_to_key)}
        model.counts = counts.astype(np.int64)
        model.syn0 = np.ascontiguousarray(syn0, np.float32)
        model.syn1neg = np.ascontiguousarray(syn1, np.float32)
        model.corpus_total_words = meta["corpus_total_words"]
        model.corpus_retained_words = int(model.counts.sum())
        model.running_training_loss = meta["running_training_loss"]
        model.epoch_losses = meta["epoch_losses"]
        model._prepare_tables()
        return model

    def __repr__(self):
        return (f"Word2Vec(vocab={len(self.index_to_key)}, vector_size={self.vector_size}, "
                f"sg={self.sg}, loss={self.loss!r}, window={self.window})")
