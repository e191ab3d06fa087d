"""Word2vec (skip-gram and CBOW) with negative sampling, sampled softmax or NCE.

gensim's interface, fastsampled's kernels. This module holds the :class:`Word2Vec` model
(vocabulary, training loop, vectors, save and load) and its training helpers (subsampling
tables, blocks, learning rates). ``fastsampled._corpus`` reads the corpus: a compiled
tokeniser counts it (no Python object per token) and, once the vocabulary is fixed, encodes
it into one flat uint16 id stream (about 2 bytes a token) kept in an anonymous temporary file
(``corpus_in_memory=True``: in RAM) and streamed back block group by block group while
training. Only the vocabulary's tokens become Python strings. ``fastsampled._w2v_kernels``
trains, in parallel over fixed blocks of about ``batch_words`` words.

Memory: what the process holds during training is the two ``(vocabulary, vector_size)``
float32 matrices, the vocabulary (strings, counts, sampling tables), 4 bytes per sentence
and a buffer of a few hundred KB; the corpus itself stays in the page cache. The fixed cost
of Numba comes on top: its import and loading the compiled kernels from its cache take a
fixed amount of resident memory, most of it LLVM's code mapped from ``libllvmlite.so``, and
compiling them instead, on a cold cache, takes more (docs/performance.md#word2vec).

Corpus rules (documented decisions) are in ``fastsampled._corpus``: one sentence per line of
UTF-8, tokens split on ASCII whitespace, sentences cut into pieces of 10 000 tokens, words
below ``min_count`` dropped (``max_final_vocab`` raises it as gensim does), the vocabulary
sorted by descending count with ties in first-occurrence order.

Training (what is computed; see ``_w2v_kernels`` for the kernel)
---------------------------------------------------------------
* Subsampling: ``t = sample * (words surviving min_count)``, keep probability
  ``min(1, (sqrt(c/t) + 1) * t / c)``; dropped words are removed before windows are formed.
* Window: per centre ``b`` uniform in ``1 .. window``, both sides.
* Learning rate, set per block from the block's position in the corpus, so it does not
  depend on thread timing (``N`` words an epoch, ``E`` epochs, ``x`` the words before the
  block in its epoch ``e``). It starts at ``alpha``, by default word2vec.c's 0.025 for
  skip-gram and 0.05 for CBOW (:meth:`Word2Vec.default_alpha`; gensim starts both at 0.025),
  which scored at least gensim's analogy and wordsim353 figures for both architectures
  (docs/word2vec.md#learning-rate):

  - ``lr_schedule="linear"`` (default, word2vec.c's): linear from ``alpha`` to
    ``min_alpha`` over all epochs together, progress ``(e * N + x) / (E * N)``.
  - ``lr_schedule="gensim"``: what gensim's ``corpus_file`` mode does with ``W = workers``
    threads. Each of its threads reads ``1/W`` of the file and advances the rate by its own
    sentences only, so within an epoch the rate falls just ``1/W`` of the way to the next
    epoch's start, then steps down when the epoch ends: progress ``(e + x / (W * N)) / E``.
    Its average rate is higher, which with few epochs and ``alpha=0.025`` scored better on
    CBOW analogies, as gensim itself does with several workers (docs/performance.md#word2vec).
    With one worker both schedules are the same.
* Candidates: ``negative`` (or ``num_sampled``) ids drawn once per centre word from an
  alias table over ``count ** ns_exponent`` and shared by the window's pairs; a draw equal
  to the centre word is dropped.
* Initialisation: input vectors uniform in ``[-1/dim, 1/dim)`` (gensim's; word2vec.c uses
  half that, which cost CBOW some analogy accuracy: docs/performance.md#word2vec), a pure
  function of ``(seed, word index)``; output vectors zero.
* Loss: per epoch the sum over (input row, output row) pairs of ``-log p(label)``
  (negative sampling / NCE), or of the sampled-softmax cross-entropy per input row;
  :meth:`Word2Vec.get_latest_training_loss` gives the last epoch's sum.
* Randomness: one counter-based stream per ``(seed, epoch, block)``; one worker and a seed
  give bit-identical vectors. Several workers update the shared float32 matrices without
  locks (Hogwild, like word2vec.c and gensim), so those runs are not bit-reproducible.
"""
import json
import logging
import os
import sys
import time

import numpy as np

from ._corpus import MAX_WORDS_IN_BATCH, encode_corpus, scan_corpus, select_vocab
from ._errors import StoreError
from ._modelfiles import NpzReader, replacing
from ._rng import GAMMA, mix64_array, normalize_seed, stream_key
from ._validate import as_int
from ._w2v_kernels import (LOSS_NCE, LOSS_NEGATIVE_SAMPLING, LOSS_SAMPLED_SOFTMAX, block_table,
                           train_blocks)
from .alias import AliasTable
from .keyedvectors import KeyedVectors

logger = logging.getLogger(__name__)

_LOSSES = {"negative_sampling": LOSS_NEGATIVE_SAMPLING,
           "sampled_softmax": LOSS_SAMPLED_SOFTMAX,
           "nce": LOSS_NCE}
_FORMAT = "fastsampled.word2vec/1"
# Upper limits of the sizes the training kernel allocates its per-block buffers from
# (2 * window context rows by 1 + negative candidates): far above any useful value, low enough
# that no product overflows.
_MAX_CANDIDATES = 1 << 16
_MAX_BATCH_WORDS = 1 << 31
# Saved hyper-parameters and the JSON type each must have in a file (see Word2Vec.load).
_PARAM_KINDS = {"vector_size": "int", "window": "int", "min_count": "int",
                "max_final_vocab": "int or null", "sample": "number", "sg": "int",
                "negative": "int", "ns_exponent": "number", "loss": "str", "num_sampled": "int",
                "epochs": "int", "alpha": "number", "min_alpha": "number", "workers": "int",
                "cbow_mean": "int", "progress": "bool", "batch_words": "int",
                "corpus_in_memory": "bool", "lr_schedule": "str"}


# --------------------------------------------------------------------------- training tables
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


def block_boundaries(words, units, batch_words):
    """Blocks of about ``batch_words`` words: ``(bsent, bword, bunit)``, int64 each.

    Per block (and once more for the end of the corpus): its first sentence, the words and
    the stream entries before it. A block starts at the first sentence that begins at or
    after each multiple of ``batch_words`` words, so blocks never split a sentence
    (sentences are at most 10 000 words). ``words`` / ``units`` are each sentence's words
    and stream entries.
    """
    cap = min(words.size, int(words.sum(dtype=np.int64)) // batch_words + 1) + 1
    bsent, bword, bunit = (np.empty(cap, np.int64) for _ in range(3))
    nb = block_table(words, units, batch_words, bsent, bword, bunit)
    return bsent[:nb + 1].copy(), bword[:nb + 1].copy(), bunit[:nb + 1].copy()


_LR_SCHEDULES = ("linear", "gensim")


def block_alphas(block_word_start, total_words, epoch, epochs, alpha, min_alpha,
                 schedule="linear", workers=1):
    """Learning rate of each block of one epoch (see the module docstring).

    ``"linear"``: progress ``(epoch * N + x) / (epochs * N)`` for a block after ``x`` of the
    epoch's ``N`` words; ``"gensim"``: ``(epoch + x / (workers * N)) / epochs``, gensim's
    ``corpus_file`` schedule. lr = ``max(min_alpha, alpha - (alpha - min_alpha) * progress)``.
    """
    within = np.asarray(block_word_start, np.float64) / total_words
    if schedule == "gensim":
        within = within / workers
    progress = (epoch + within) / epochs
    return np.maximum(min_alpha, alpha - (alpha - min_alpha) * progress)


# --------------------------------------------------------------------------- checks
def _at_most(value, name, maximum, why=""):
    if value > maximum:
        raise ValueError(f"{name} must be <= {maximum}{' (' + why + ')' if why else ''}, "
                         f"got {value}")
    return value


def _first_nonfinite(arr, block=1 << 18):
    """Index ``(row, column)`` of the first NaN or infinity of a 2-D array, or None.

    Checks a block of rows at a time, so the temporary mask stays small.
    """
    rows = max(1, block // max(arr.shape[1], 1))
    for lo in range(0, arr.shape[0], rows):
        bad = ~np.isfinite(arr[lo:lo + rows])
        if bad.any():
            i, j = np.argwhere(bad)[0]
            return lo + int(i), int(j)
    return None


def _is_number(value):
    """A JSON number that converts to a float (bools, and ints beyond float range, do not)."""
    return type(value) is float or (type(value) is int and abs(value) < (1 << 1000))


def _is_int64(value):
    return type(value) is int and -(1 << 63) <= value < (1 << 63)


def _check_meta(meta, path):
    """The fields of a :meth:`Word2Vec.save` file's JSON header, each checked for its type
    and range (StoreError naming the file and the field otherwise)."""
    def fail(field, message):
        return StoreError(f"{path}: field {field!r} {message}")

    if not isinstance(meta, dict):
        raise StoreError(f"{path}: array 'meta' must hold a JSON object, got "
                         f"{type(meta).__name__}")
    if meta.get("format") != _FORMAT:
        raise StoreError(f"{path}: not a file written by Word2Vec.save (its 'format' is "
                         f"{meta.get('format')!r}, expected {_FORMAT!r})")
    for field in ("params", "seed", "index_to_key", "corpus_total_words",
                  "running_training_loss", "epoch_losses"):
        if field not in meta:
            raise fail(field, "is missing")
    params = meta["params"]
    if not isinstance(params, dict):
        raise fail("params", f"must be a JSON object, got {type(params).__name__}")
    for name, value in params.items():
        kind = _PARAM_KINDS.get(name)
        if kind is None:
            raise fail("params", f"holds an unknown parameter {name!r}")
        ok = {"int": _is_int64(value), "int or null": value is None or _is_int64(value),
              "number": _is_number(value), "str": type(value) is str,
              "bool": type(value) is bool}[kind]
        if name == "sg":
            ok = ok and value in (0, 1)
        if not ok:
            raise fail("params", f"holds {name!r} = {value!r}; expected "
                                 f"{'0 or 1' if name == 'sg' else kind}")
    seed = meta["seed"]
    if type(seed) is not int or not 0 <= seed < (1 << 64):
        raise fail("seed", f"must be an integer in [0, 2**64), got {seed!r}")
    keys = meta["index_to_key"]
    if not isinstance(keys, list) or not keys:
        raise fail("index_to_key", "must be a non-empty list of str, got "
                   + ("an empty list" if keys == [] else type(keys).__name__))
    seen = {}
    for i, key in enumerate(keys):
        if type(key) is not str:
            raise fail("index_to_key", f"must hold str words; index {i} is "
                                       f"{type(key).__name__} {key!r}")
        if seen.setdefault(key, i) != i:
            raise fail("index_to_key", f"holds {key!r} twice (indices {seen[key]} and {i})")
    total = meta["corpus_total_words"]
    if not _is_int64(total) or total < 0:
        raise fail("corpus_total_words", f"must be an integer >= 0, got {total!r}")
    if not _is_number(meta["running_training_loss"]):
        raise fail("running_training_loss", f"must be a number, got "
                                            f"{meta['running_training_loss']!r}")
    losses = meta["epoch_losses"]
    if not isinstance(losses, list) or not all(_is_number(x) for x in losses):
        raise fail("epoch_losses", f"must be a list of numbers, got {losses!r:.80}")
    return params, seed, keys, seen


def _init_vectors(n, dim, seed):
    """Uniform in [-1/dim, 1/dim), a pure function of (seed, word index, component).

    SplitMix64 in numpy (same construction as ``_rng.bits``), no compiled kernel needed.
    """

    key = np.uint64(stream_key(np.uint64(seed), np.uint64(0x5EED)))
    out = np.empty((n, dim), np.float32)
    step = max(1, (1 << 18) // max(dim, 1))
    cols = np.arange(dim, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            rows = np.arange(lo, hi, dtype=np.uint64)[:, None]
            z = mix64_array(key + (rows * np.uint64(dim) + cols) * GAMMA)
            u = (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
            out[lo:hi] = ((2.0 * u - 1.0) / dim).astype(np.float32)
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
        uniformly from ``1 .. window``. At most 10 000 (the longest sentence piece).
    min_count : int
        Words with fewer occurrences are dropped.
    max_final_vocab : int, optional
        Raise ``min_count`` until at most this many words remain (gensim's rule).
    sample : float
        Subsampling threshold of frequent words (0 disables).
    sg : int
        1 skip-gram, 0 CBOW.
    negative : int
        Negatives per centre word, shared by its window (``loss="negative_sampling"``);
        at most 65 536.
    ns_exponent : float
        Candidates are drawn from ``count ** ns_exponent`` with an alias table.
    loss : {"negative_sampling", "sampled_softmax", "nce"}
        Training objective; see ``fastsampled._w2v_kernels`` for what each computes.
    num_sampled : int, optional
        Candidates per window for ``sampled_softmax`` / ``nce`` (default: ``negative``);
        at most 65 536.
    epochs : int
    alpha : float, optional
        Initial learning rate (default: :meth:`default_alpha`, 0.025 for skip-gram and 0.05
        for CBOW, word2vec.c's choices; the model's ``alpha`` attribute, and a saved model,
        hold the value used).
    min_alpha : float
        Final learning rate: the rate decays from ``alpha`` to ``min_alpha`` as
        ``lr_schedule`` says.
    lr_schedule : {"linear", "gensim"}
        ``"linear"``: linearly over all epochs together (word2vec.c). ``"gensim"``: the
        schedule of gensim's ``corpus_file`` mode with ``workers`` threads -- within each
        epoch the rate falls only ``1/workers`` of the way to the next epoch's start, then
        steps down (a higher average rate; the same as "linear" with one worker). See the
        module docstring.
    workers : int, optional
        Threads (default: all Numba threads). One worker and a fixed seed give bit-identical
        runs; more workers update the shared matrices without locks (Hogwild).
    seed : int
    cbow_mean : int
        Only 1 (mean of the context vectors) is supported.
    progress : bool
        Show a tqdm bar on stderr (words/s, lr, loss) when stderr is a terminal and tqdm is
        installed; otherwise log one line per epoch (``fastsampled.word2vec`` logger, INFO:
        loss per effective word, words/s, lr).
    batch_words : int
        Words per parallel block (at most 2**31).
    corpus_in_memory : bool
        Keep the encoded corpus (about 2 bytes a word) in RAM instead of an anonymous
        temporary file in ``tempfile.gettempdir()`` (``TMPDIR``) that training streams back
        in blocks. Both give identical training. The same holds for the tokens of a
        ``corpus_file`` while ``build_vocab`` fixes the vocabulary (about 2 bytes each).
    """

    def __init__(self, sentences=None, corpus_file=None, vector_size=100, window=5,
                 min_count=5, max_final_vocab=None, sample=1e-3, sg=1, negative=5,
                 ns_exponent=0.75, loss="negative_sampling", num_sampled=None, epochs=5,
                 alpha=None, min_alpha=1e-4, workers=None, seed=1, cbow_mean=1,
                 progress=True, batch_words=MAX_WORDS_IN_BATCH, corpus_in_memory=False,
                 lr_schedule="linear"):
        self.vector_size = as_int(vector_size, "vector_size", 1)
        self.window = _at_most(as_int(window, "window", 1), "window", MAX_WORDS_IN_BATCH,
                               "sentences are cut into pieces of at most that many words")
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
        self.negative = _at_most(as_int(negative, "negative", 0), "negative", _MAX_CANDIDATES)
        self.num_sampled = (self.negative if num_sampled is None
                            else _at_most(as_int(num_sampled, "num_sampled", 1), "num_sampled",
                                          _MAX_CANDIDATES))
        if loss == "negative_sampling" and self.negative < 1:
            raise ValueError("negative must be >= 1 for loss='negative_sampling' "
                             "(hierarchical softmax is not implemented)")
        if loss != "negative_sampling" and self.num_sampled < 1:
            raise ValueError(f"num_sampled must be >= 1 for loss={loss!r}")
        self.ns_exponent = float(ns_exponent)
        if not np.isfinite(self.ns_exponent):
            raise ValueError(f"ns_exponent must be finite, got {ns_exponent!r}")
        self.epochs = as_int(epochs, "epochs", 1)
        self.alpha = self.default_alpha(self.sg) if alpha is None else float(alpha)
        self.min_alpha = float(min_alpha)
        if not (self.alpha > 0 and np.isfinite(self.alpha)):
            raise ValueError(f"alpha must be > 0, got {alpha!r}")
        if not (0 <= self.min_alpha <= self.alpha):
            raise ValueError(f"min_alpha must lie in [0, alpha] = [0, {self.alpha}], got "
                             f"{min_alpha!r}")
        if lr_schedule not in _LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {_LR_SCHEDULES}, got {lr_schedule!r}")
        self.lr_schedule = lr_schedule
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
        self.batch_words = _at_most(as_int(batch_words, "batch_words", 1), "batch_words",
                                    _MAX_BATCH_WORDS)
        self.corpus_in_memory = bool(corpus_in_memory)

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
        self._drop_corpus()
        self.syn0 = self.syn1neg = self._wv = None  # free before reading
        keys_of, counts, parts, what = scan_corpus(sentences, corpus_file,
                                                   self.corpus_in_memory)
        try:
            raw_total = int(counts.sum())
            if raw_total == 0:
                raise ValueError(f"{what} holds no tokens")
            order, eff_min = select_vocab(counts, self.min_count, self.max_final_vocab)
            if order.size == 0:
                raise ValueError(f"no word of {what} reaches min_count={self.min_count} "
                                 f"(most frequent: {int(counts.max())} occurrences)")
            remap = np.full(counts.size, -1, np.int64)
            remap[order] = np.arange(order.size)
            corpus = encode_corpus(counts, parts, remap, self.corpus_in_memory)
        finally:
            parts.close()
        words = keys_of(order)
        vcounts = counts[order]
        del keys_of, parts, remap
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
        import numba

        if sentences is not None or corpus_file is not None:
            if self.syn0 is None:
                raise ValueError("call build_vocab before train")
            self._encode_new(sentences, corpus_file)
        if self._corpus is None:
            raise ValueError("no corpus: call build_vocab(sentences=... or corpus_file=...) "
                             "first")
        epochs = self.epochs if epochs is None else as_int(epochs, "epochs", 1)
        self._check_state()
        corpus = self._corpus
        total = corpus.total_words
        if total == 0:
            raise ValueError("the corpus holds no word of the vocabulary")
        bsent, bword, bunit = block_boundaries(corpus.words, corpus.units, self.batch_words)
        nblocks = bsent.size - 1
        train_group = self._block_trainer()
        chunk = max(4 * self.workers, 32)
        starts = np.arange(0, nblocks, chunk)
        ends = np.minimum(starts + chunk, nblocks)
        # One buffer for the stream of a group of blocks (unused when it is in RAM).
        buf = np.empty(0 if corpus.in_memory else int((bunit[ends] - bunit[starts]).max()),
                       np.uint16)
        bar = self._progress_bar(epochs * total)
        old_threads = numba.get_num_threads()
        old_chunk = numba.get_parallel_chunksize()
        numba.set_num_threads(self.workers)
        if self._PARALLEL_CHUNKSIZE is not None:
            numba.set_parallel_chunksize(self._PARALLEL_CHUNKSIZE)
        t0 = time.perf_counter()
        eff_total = eff_before = 0
        loss_total = 0.0
        self.epoch_losses = []
        try:
            for epoch in range(epochs):
                alphas = block_alphas(bword[:-1], total, epoch, epochs, self.alpha,
                                      self.min_alpha, self.lr_schedule, self.workers)
                loss_e = 0.0
                for b0, b1 in zip(starts.tolist(), ends.tolist()):
                    s0, s1 = int(bsent[b0]), int(bsent[b1])
                    stream = corpus.read(int(bunit[b0]), int(bunit[b1]), buf)
                    sent_off = np.zeros(s1 - s0 + 1, np.int64)
                    np.cumsum(corpus.units[s0:s1], dtype=np.int64, out=sent_off[1:])
                    loss_out = np.zeros(b1 - b0, np.float64)
                    eff_out = np.zeros(b1 - b0, np.int64)
                    pairs_out = np.zeros(b1 - b0, np.int64)
                    train_group(stream, sent_off, bsent[b0:b1 + 1] - s0, b0, alphas[b0:b1],
                                np.uint64(epoch * nblocks), loss_out, eff_out, pairs_out)
                    loss_e += float(loss_out.sum())
                    eff_total += int(eff_out.sum())
                    if bar is not None:
                        words = int(bword[b1] - bword[b0])
                        el = time.perf_counter() - t0
                        bar.set_postfix_str(f"lr={alphas[b1 - 1]:.5f} loss={loss_e:.4g} "
                                            f"eff_words/s={eff_total / max(el, 1e-9):,.0f}",
                                            refresh=False)
                        bar.update(words)
                self.epoch_losses.append(loss_e)
                loss_total += loss_e
                if self.progress and bar is None:
                    el = time.perf_counter() - t0
                    eff_epoch = eff_total - eff_before
                    logger.info("%s epoch %d/%d: loss %.4f per word, %s effective "
                                "words/s, lr %.5f", self._LOG_NAME, epoch + 1, epochs,
                                loss_e / max(eff_epoch, 1), f"{eff_total / max(el, 1e-9):,.0f}",
                                alphas[-1])
                eff_before = eff_total
        finally:        # also after Ctrl-C between two batches: every batch ran whole
            numba.set_num_threads(old_threads)
            numba.set_parallel_chunksize(old_chunk)
            self._wv = None
            if bar is not None:
                bar.close()
        self._trained()
        seconds = time.perf_counter() - t0
        self.running_training_loss = self.epoch_losses[-1]
        self._wv = None
        return {"effective_words": eff_total, "raw_words": epochs * self.corpus_total_words,
                "seconds": seconds, "words_per_s": eff_total / max(seconds, 1e-12),
                "loss": loss_total}

    # the initial learning rate that alpha=None stands for, by sg (1 skip-gram, 0 CBOW)
    _DEFAULT_ALPHA = {1: 0.025, 0: 0.05}

    @classmethod
    def default_alpha(cls, sg):
        """The initial learning rate used when ``alpha`` is not given (``alpha=None``).

        Parameters
        ----------
        sg : int
            1 skip-gram, 0 CBOW.

        Returns
        -------
        float
            ``Word2Vec``: 0.025 for skip-gram and 0.05 for CBOW, word2vec.c's choices.
            ``FastText``: 0.035 for skip-gram and 0.05 for CBOW.
        """
        return cls._DEFAULT_ALPHA[int(bool(sg))]

    # what train()'s log lines call the model, and how Numba hands blocks to threads (None:
    # Numba's default)
    _LOG_NAME = "word2vec"
    _PARALLEL_CHUNKSIZE = None

    def _block_trainer(self):
        """``run(stream, sent_off, block_sent, first_block, alphas, epoch_key, loss_out,
        eff_out, pairs_out)``: the kernel call that trains one group of blocks in place."""
        mode = _LOSSES[self.loss]
        nneg = self.negative if mode == LOSS_NEGATIVE_SAMPLING else self.num_sampled

        def run(stream, sent_off, block_sent, b0, alphas, key, loss_out, eff_out, pairs_out):
            train_blocks(self.syn0, self.syn1neg, stream, sent_off, block_sent, b0, alphas,
                         self._keep_thr, self._alias.table, self._logq, self._seed64, key,
                         self.window, nneg, self.sg, mode, loss_out, eff_out, pairs_out)
        return run

    def _trained(self):
        """Called once at the end of :meth:`train` (a model with a store checkpoints it)."""

    def _check_state(self):
        """Raise unless the arrays :meth:`train` hands the kernel agree with each other.

        The kernel indexes the vector matrices, the sampling tables and the counts with the
        corpus's word ids without bounds checks, so the matrices must be C-contiguous,
        writable float32 of shape (len(index_to_key), vector_size), the tables and counts
        one entry per word, and every id of the encoded corpus below len(index_to_key).
        Attributes replaced by hand after :meth:`build_vocab` or :meth:`load` are caught here.
        """
        n = len(self.index_to_key)
        shape = (n, self.vector_size)
        for name in ("syn0", "syn1neg"):
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype != np.float32 \
                    or not arr.flags.c_contiguous or not arr.flags.writeable:
                what = (f"{arr.dtype} array of shape {arr.shape}" if isinstance(arr, np.ndarray)
                        else type(arr).__name__)
                raise TypeError(f"{name} must be a C-contiguous, writable float32 ndarray, "
                                f"got {what}")
            if arr.shape != shape:
                raise ValueError(f"{name} has shape {arr.shape}; expected {shape} (one row per "
                                 "word of index_to_key, vector_size columns)")
        counts = self.counts
        if not isinstance(counts, np.ndarray) or counts.dtype != np.int64 \
                or counts.shape != (n,):
            raise ValueError(f"counts must be an int64 array of shape ({n},) (one count per "
                             f"word of index_to_key), got {getattr(counts, 'shape', counts)!r}")
        sizes = {self._keep_thr.size, self._alias.table.size, self._logq.size}
        if sizes != {n}:
            raise ValueError(f"the sampling tables hold {sorted(sizes)} entries but "
                             f"index_to_key has {n} words")
        if self._corpus is not None and self._corpus.max_id >= n:
            raise ValueError(f"the encoded corpus holds word id {self._corpus.max_id} but "
                             f"index_to_key has {n} words")

    def _decoded_corpus(self):
        """The encoded corpus as a list of id lists (for tests and inspection)."""
        return self._corpus.decoded()

    def _drop_corpus(self):
        if self._corpus is not None:
            self._corpus.close()
            self._corpus = None

    def _encode_new(self, sentences, corpus_file):
        self._drop_corpus()
        keys_of, counts, parts, _ = scan_corpus(sentences, corpus_file,
                                                self.corpus_in_memory)
        try:
            get = self.key_to_index.get
            remap = np.fromiter((get(k, -1) for k in keys_of()), np.int64,
                                count=counts.size)
            if remap.size and remap.max() >= len(self.index_to_key):
                raise ValueError(f"key_to_index maps a word to {int(remap.max())}, beyond "
                                 f"the {len(self.index_to_key)} words of index_to_key")
            self.corpus_total_words = int(counts.sum())
            self._corpus = encode_corpus(counts, parts, remap, self.corpus_in_memory)
        finally:
            parts.close()

    def _progress_bar(self, total):
        """A tqdm bar on stderr when it is a terminal (and tqdm is installed), else None: the
        epochs are then logged, one line each."""
        if not self.progress or not sys.stderr.isatty():
            return None
        try:
            from tqdm.auto import tqdm     # optional: the bench extra installs it
        except ImportError:
            return None
        return tqdm(total=total, unit="word", unit_scale=True, desc="word2vec", file=sys.stderr)

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

            self._wv = KeyedVectors(self.syn0, list(self.index_to_key), counts=self.counts)
        return self._wv

    # ------------------------------------------------------------------ persistence
    _PARAMS = tuple(_PARAM_KINDS)

    def save(self, path):
        """Write the model to ``path`` (a .npz holding the arrays and a JSON header).

        ``path`` is used as given (no ``.npz`` suffix is added). The file is written under a
        temporary name and renamed over ``path`` when complete, so an existing file is
        either replaced whole or, if writing fails (a full disk), left as it was.

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
        with replacing(path) as f:
            np.savez(f, meta=blob, syn0=self.syn0, syn1neg=self.syn1neg, counts=self.counts)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save` (no pickle).

        Everything is checked before the model is built, since training hands these arrays
        to a kernel that does not bounds-check: the JSON header's fields (types and ranges;
        the hyper-parameters as the constructor checks them), then each array's ``.npy``
        header before it is read or decompressed -- ``syn0`` and ``syn1neg`` float32 of
        shape (len(index_to_key), vector_size), ``counts`` int64 of shape
        (len(index_to_key),), all in C order -- then their values: finite vectors (a NaN
        would spread through training) and counts >= 1 (every word of a vocabulary occurred
        in the corpus it was counted from).

        Parameters
        ----------
        path : str or os.PathLike
            A file written by :meth:`save`.

        Returns
        -------
        Word2Vec
            The model, ready to query (``wv``) or to train further.

        Raises
        ------
        fastsampled.StoreError
            (a ``ValueError``) If ``path`` is not such a file or is damaged or inconsistent;
            the message names the file and the field or array at fault.
        FileNotFoundError
            If ``path`` does not exist.
        """
        path_str = os.fspath(path)
        with NpzReader(path_str, "Word2Vec.save") as npz:
            meta = npz.read_json("meta")
            params, seed, keys, key_to_index = _check_meta(meta, path_str)
            try:
                model = cls(seed=seed, **params)
            except (TypeError, ValueError) as exc:
                raise StoreError(f"{path_str}: field 'params': {exc}") from None
            n, dim = len(keys), model.vector_size
            why = f"{n} words in index_to_key, vector_size {dim}"
            syn0 = npz.read("syn0", np.float32, (n, dim), why)
            syn1neg = npz.read("syn1neg", np.float32, (n, dim), why)
            counts = npz.read("counts", np.int64, (n,), f"{n} words in index_to_key")
        for name, arr in (("syn0", syn0), ("syn1neg", syn1neg)):
            bad = _first_nonfinite(arr)
            if bad is not None:
                raise StoreError(f"{path_str}: array {name!r} holds {arr[bad]} at index {bad}; "
                                 "the vectors must be finite (training would spread it)")
        low = int(np.argmin(counts))
        if counts[low] < 1:
            raise StoreError(f"{path_str}: array 'counts' holds {int(counts[low])} at index "
                             f"{low}; every count must be >= 1")
        if counts.sum(dtype=np.float64) >= 2.0**62:
            raise StoreError(f"{path_str}: array 'counts' sums to "
                             f"{counts.sum(dtype=np.float64):.3g}, beyond any corpus")
        model.index_to_key = keys
        model.key_to_index = key_to_index
        model.counts = counts
        model.syn0 = syn0
        model.syn1neg = syn1neg
        model.corpus_total_words = meta["corpus_total_words"]
        model.corpus_retained_words = int(counts.sum())
        model.running_training_loss = float(meta["running_training_loss"])
        model.epoch_losses = [float(x) for x in meta["epoch_losses"]]
        try:
            model._prepare_tables()
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{path_str}: no sampling table from array 'counts' and "
                             f"'ns_exponent' {model.ns_exponent}: {exc}") from None
        return model

    def __repr__(self):
        return (f"Word2Vec(vocab={len(self.index_to_key)}, vector_size={self.vector_size}, "
                f"sg={self.sg}, loss={self.loss!r}, window={self.window})")
