"""Corpus ingestion for word2vec (private): text in, counted vocabulary and encoded id stream out.

A corpus comes either as a text file (``corpus_file``) or as an iterable of token lists
(``sentences``). :func:`scan_corpus` reads it once and counts it: a text file through a
compiled tokeniser that interns the tokens (``_w2v_kernels.scan_tokens``: no Python object a
token, docs/performance.md#word2vec), token lists through a dict. :func:`select_vocab` fixes the
vocabulary from the counts, and :func:`encode_corpus` then encodes the corpus with that
vocabulary into an :class:`EncodedCorpus`, the id stream the training kernel reads. A text file
is read once: the scan spills each chunk's provisional ids (in the encoded corpus's format,
about 2 bytes a token, to an anonymous temporary file), and encoding reads them back, which
costs a fraction of tokenising the text again. Only the vocabulary's tokens become Python
strings.

The encoded corpus is one flat uint16 id stream (ids >= 65535 escaped into three entries, see
``_w2v_kernels.encode_part``: about 2 bytes a token, half of an int32 array), written to an
anonymous temporary file (``corpus_in_memory=True``: kept in RAM) and read back block group by
block group while training, plus two uint16 numbers per sentence (its words and stream
entries).

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
"""
import logging
import os
import tempfile

import numpy as np

from ._progress import Progress
from ._w2v_kernels import (ESCAPE, SCAN_LINE_LEN, SCAN_LINES, SCAN_OUT, SCAN_POS,
                           SCAN_STATE_SIZE, SCAN_UNIQUE, decode_stream, encode_part, rehash,
                           scan_tokens)

logger = logging.getLogger("fastsampled.word2vec")

MAX_WORDS_IN_BATCH = 10000
_CHUNK_BYTES = 1 << 20


# --------------------------------------------------------------------------- text files
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


class _Spill:
    """The provisional ids of a scanned text file, chunk by chunk, until the vocabulary is
    fixed: the stream format of :class:`EncodedCorpus` (uint16 entries, ids >= ``ESCAPE``
    in three), in an anonymous temporary file (``in_memory``: in RAM), and each chunk's line
    lengths in RAM (uint16: a line holds at most 10 000 tokens). Encoding then reads these
    back instead of tokenising the text a second time."""

    def __init__(self, in_memory):
        self.in_memory = bool(in_memory)
        self._file = None if self.in_memory else tempfile.TemporaryFile(buffering=0)
        self._held = []       # in_memory: each chunk's stream
        self._chunks = []     # (stream entries, line lengths) of each chunk
        self._ident = np.empty(0, np.int32)
        self._buf = np.empty(0, np.uint16)
        self._ids = np.empty(0, np.int32)

    def add(self, ids, lens, nuniq):
        """Append one chunk: provisional ``ids`` (all below ``nuniq``), ``lens`` its lines."""
        if self._ident.size < nuniq:
            self._ident = np.arange(max(nuniq, 2 * self._ident.size), dtype=np.int32)
        if self._buf.size < 3 * ids.size:
            self._buf = np.empty(3 * ids.size, np.uint16)
        words = np.empty(lens.size, np.uint16)
        units = np.empty(lens.size, np.uint16)
        end, nsent = encode_part(ids, lens, self._ident, self._buf, 0, words, units)
        if nsent != lens.size:   # every scanned line holds a token
            raise RuntimeError("the tokeniser reported an empty line")
        if self.in_memory:
            self._held.append(self._buf[:end].copy())
        else:
            _write_all(self._file, self._buf[:end])
        self._chunks.append((end, words))

    def parts(self, nuniq):
        """Each chunk's ``(provisional ids, line lengths)`` again (views, valid until the
        next), each id checked below ``nuniq`` before a kernel indexes with it."""
        pos = 0
        for i, (end, words) in enumerate(self._chunks):
            if self.in_memory:
                stream = self._held[i]
                self._held[i] = None
            else:
                if self._buf.size < end:
                    self._buf = np.empty(end, np.uint16)
                stream = self._buf[:end]
                _readinto(self._file, 2 * pos, stream)
            pos += end
            if self._ids.size < end:
                self._ids = np.empty(end, np.int32)
            n, top = decode_stream(stream, self._ids)
            if n != int(words.sum(dtype=np.int64)) or top >= nuniq:
                raise RuntimeError("the spilled corpus does not match its scan")
            yield self._ids[:n], words

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None
        self._held = self._chunks = []


class _FileScan:
    """Token table of a text file, built by a compiled tokeniser (no Python object a token).

    ``scan()`` reads the file once: it counts the tokens and spills each chunk's
    provisional ids (:class:`_Spill`); ``parts()`` yields them back chunk by chunk for
    encoding, so the provisional ids of the whole corpus are never held in RAM at once
    (unless ``in_memory``).
    """

    def __init__(self, path, in_memory=False):
        self.path = path
        self.in_memory = in_memory
        cap = 1 << 16
        self.slots = np.full(2 * cap, -1, np.int64)
        self.hashes = np.empty(cap, np.uint64)
        self.counts = np.zeros(cap, np.int64)
        self.arena_off = np.zeros(cap + 1, np.int64)
        self.arena = np.empty(1 << 20, np.uint8)
        self.st = np.zeros(SCAN_STATE_SIZE, np.int64)
        self.out_ids = np.empty(_CHUNK_BYTES // 2 + 1, np.int32)
        self.out_lens = np.empty(_CHUNK_BYTES // 2 + 1, np.int64)
        self._spill = None

    def _grow(self, nbytes):
        nuniq = int(self.st[SCAN_UNIQUE])
        if nuniq >= min(self.slots.size // 2, self.hashes.size):
            cap = 2 * self.hashes.size
            self.hashes = np.concatenate((self.hashes, np.empty(cap - self.hashes.size,
                                                                np.uint64)))
            self.counts = np.concatenate((self.counts, np.zeros(cap - self.counts.size,
                                                                np.int64)))
            self.arena_off = np.concatenate((self.arena_off, np.zeros(
                cap + 1 - self.arena_off.size, np.int64)))
            self.slots = np.full(2 * cap, -1, np.int64)
            rehash(self.hashes, nuniq, self.slots)
        else:
            self.arena = np.concatenate((self.arena, np.empty(max(self.arena.size, nbytes),
                                                              np.uint8)))

    def _chunks(self):
        """Run the tokeniser over the file; yield (ids, lens) of each chunk (views)."""
        st = self.st
        st[SCAN_LINE_LEN] = 0
        for data in _iter_file_chunks(self.path):
            if self.out_ids.size < data.size // 2 + 1:
                self.out_ids = np.empty(data.size // 2 + 1, np.int32)
                self.out_lens = np.empty(data.size // 2 + 1, np.int64)
            st[SCAN_POS] = 0
            st[SCAN_OUT] = 0
            st[SCAN_LINES] = 0
            while scan_tokens(data, st, self.slots, self.hashes, self.arena,
                                          self.arena_off, self.counts, self.out_ids,
                                          self.out_lens, MAX_WORDS_IN_BATCH):
                self._grow(data.size)
            nl = int(st[SCAN_LINES])
            line_len = st[SCAN_LINE_LEN]
            if line_len > 0 and st[SCAN_POS] == data.size and data[-1] != 10:
                self.out_lens[nl] = line_len  # last line without a newline
                nl += 1
                st[SCAN_LINE_LEN] = 0
            self.chunk_bytes = data.size
            yield self.out_ids[:st[SCAN_OUT]], self.out_lens[:nl]

    def scan(self):
        """Read the file: returns ``(keys_of, counts)``: int64 counts of the distinct tokens
        (first-occurrence order) and ``keys_of(indices)``, their text as str.

        Every token is checked to be UTF-8 here; only the tokens asked for (the vocabulary,
        a fraction of the distinct tokens) become Python strings.
        """
        self._spill = _Spill(self.in_memory)
        try:
            with Progress(os.path.getsize(self.path), f"counting the words of {self.path}",
                          unit="B", logger=logger) as progress:
                for ids, lens in self._chunks():
                    self._spill.add(ids, lens, int(self.st[SCAN_UNIQUE]))
                    progress.update(self.chunk_bytes)
        except BaseException:
            self.close()
            raise
        nuniq = int(self.st[SCAN_UNIQUE])
        counts = self.counts[:nuniq].copy()
        arena, off = self.arena, self.arena_off
        try:
            # Valid as a whole and no token starting inside a character: every token is.
            arena[:off[nuniq]].tobytes().decode("utf-8")
            ok = not np.any(arena[off[:nuniq]] & 0xC0 == 0x80)
        except UnicodeDecodeError:
            ok = False
        if not ok:  # find the first bad token to name it
            _decode_keys([arena[off[u]:off[u + 1]].tobytes() for u in range(nuniq)],
                         self.path)

        def keys_of(which=None):
            which = range(nuniq) if which is None else np.asarray(which).tolist()
            return [arena[off[u]:off[u + 1]].tobytes().decode("utf-8") for u in which]

        return keys_of, counts

    def __iter__(self):
        """The provisional ids and line lengths of each chunk, from the spill; the spill is
        closed once they are all read."""
        try:
            yield from self._spill.parts(int(self.st[SCAN_UNIQUE]))
        finally:
            self.close()

    def close(self):
        """Drop the spill (whether or not it was read)."""
        if self._spill is not None:
            self._spill.close()
            self._spill = None


# --------------------------------------------------------------------------- token lists
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


# --------------------------------------------------------------------------- counting
def scan_corpus(sentences, corpus_file, in_memory=False):
    """Count a corpus given either way: ``(keys_of, counts, parts, what)``.

    ``keys_of(indices)`` gives the tokens of those provisional ids (all with None), ``parts``
    is an iterable of (provisional ids, line lengths) for :func:`encode_corpus`, read once;
    its ``close()`` frees what it holds, read or not (the caller's ``finally``).
    """
    if (sentences is None) == (corpus_file is None):
        raise ValueError("give exactly one of sentences or corpus_file")
    if corpus_file is not None:
        path = _check_file(corpus_file)
        scan = _FileScan(path, in_memory)
        keys_of, counts = scan.scan()
        return keys_of, counts, scan, f"corpus_file {path!r}"
    keys, counts, ids, lens = _scan_sentences(sentences)

    def keys_of(which=None):
        return list(keys) if which is None else [keys[i] for i in np.asarray(which).tolist()]

    return keys_of, counts, _Held([(ids, lens)]), "sentences"


class _Held(list):
    """Parts already in RAM (token lists): nothing to free."""

    def close(self):
        pass


# --------------------------------------------------------------------------- vocabulary
def select_vocab(counts, min_count, max_final_vocab):
    """Apply min_count / max_final_vocab; return (order, effective_min_count).

    ``order`` indexes ``counts``: retained words by descending count, ties in their given
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


# --------------------------------------------------------------------------- encoding
def _readinto(f, pos, out):
    """Fill ``out`` (a numpy array) from byte ``pos`` of the unbuffered file ``f``."""
    view = memoryview(out).cast("B")
    f.seek(pos)
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            raise RuntimeError("the encoded corpus file is shorter than expected")
        got += n


def _write_all(f, arr):
    view = memoryview(arr).cast("B")
    while len(view):
        view = view[f.write(view):]


class EncodedCorpus:
    """A corpus encoded with a fixed vocabulary, as the training kernel reads it.

    One flat uint16 id stream (ids >= 65535 escaped into three entries, see
    ``_w2v_kernels.encode_part``), held either in RAM or in an anonymous temporary file
    (``tempfile.TemporaryFile``: on POSIX already unlinked when created, so nothing is left
    behind even after a crash; freed when the model drops the corpus) that training reads
    back block group by block group into one reused buffer. Reading with ``readinto`` rather
    than mapping the file keeps its pages out of the process's resident set. Per sentence,
    ``words`` and ``units`` (uint16; a sentence holds at most 10 000 words) give its number
    of words and of stream entries.
    """

    def __init__(self, size, in_memory):
        self.size = int(size)
        self.in_memory = bool(in_memory)
        self.words = self.units = None
        self.total_words = 0
        self.max_id = -1   # the largest vocabulary id in the stream (set by encode_corpus)
        self._stream = np.empty(self.size, np.uint16) if self.in_memory else None
        self._file = None if self.in_memory else tempfile.TemporaryFile(buffering=0)
        self._pos = 0
        self._buf = np.empty(0, np.uint16)

    def writable(self, n):
        """Array to encode up to ``n`` entries into, and the position to start at."""
        if self.in_memory:
            return self._stream, self._pos
        if self._buf.size < n:
            self._buf = np.empty(n, np.uint16)
        return self._buf, 0

    def wrote(self, n):
        """``n`` entries were encoded into the array :meth:`writable` gave."""
        if not self.in_memory:
            _write_all(self._file, self._buf[:n])
        self._pos += n

    def finish(self, words, units):
        if self._pos != self.size:
            raise RuntimeError(f"corpus changed while it was read ({self._pos} != "
                               f"{self.size} ids)")
        self.words = np.concatenate(words) if words else np.empty(0, np.uint16)
        self.units = np.concatenate(units) if units else np.empty(0, np.uint16)
        self.total_words = int(self.words.sum(dtype=np.int64))
        self._buf = np.empty(0, np.uint16)
        return self

    def read(self, lo, hi, buf=None):
        """Stream entries ``lo .. hi - 1``: a view of the RAM copy, or read into ``buf``."""
        if self.in_memory:
            return self._stream[lo:hi]
        out = buf[:hi - lo]
        _readinto(self._file, 2 * lo, out)
        return out

    def decoded(self):
        """The stream as a list of id lists, one per sentence (for tests and inspection)."""
        stream = self.read(0, self.size, np.empty(self.size, np.uint16))
        stream = stream.astype(np.int64).tolist()
        out, i = [], 0
        for n in self.units.tolist():
            end, ids = i + n, []
            while i < end:
                if stream[i] == ESCAPE:
                    ids.append((stream[i + 1] << 16) | stream[i + 2])
                    i += 3
                else:
                    ids.append(stream[i])
                    i += 1
            out.append(ids)
        return out

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None
        self._stream = None


def encode_corpus(counts, parts, remap, in_memory):
    """Encode the scanned corpus with the final vocabulary into an :class:`EncodedCorpus`.

    ``counts`` are the provisional ids' counts, ``parts`` yields (provisional ids, line
    lengths) pairs, ``remap`` maps provisional ids to vocabulary ids (-1: dropped).
    """
    remap = np.ascontiguousarray(remap, np.int32)
    size = int(counts[remap >= 0].sum()) + 2 * int(counts[remap >= ESCAPE].sum())
    corpus = EncodedCorpus(size, in_memory)
    try:
        words, units = [], []
        for ids, lens in parts:
            out, pos = corpus.writable(3 * ids.size)
            swords = np.empty(lens.size, np.uint16)
            sunits = np.empty(lens.size, np.uint16)
            end, nsent = encode_part(ids, lens, remap, out, pos, swords, sunits)
            corpus.wrote(end - pos)
            words.append(swords[:nsent].copy())
            units.append(sunits[:nsent].copy())
        corpus.max_id = int(remap.max()) if remap.size else -1
        return corpus.finish(words, units)
    except BaseException:
        corpus.close()
        raise
