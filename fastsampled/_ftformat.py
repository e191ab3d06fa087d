"""fastText's binary model files (private): reading and writing ``.bin``, and the n-gram rows.

The layout (fastText 0.9, ``FastText::saveModel``), all little-endian:

* ``int32`` magic 793712314, ``int32`` version 12;
* the arguments: ``int32`` dim, ws, epoch, minCount, neg, wordNgrams, loss (hs = 1,
  ns = 2, softmax = 3, ova = 4), model (cbow = 1, skip-gram = 2, supervised = 3), bucket,
  minn, maxn, lrUpdateRate, then ``float64`` t (the subsampling threshold);
* the dictionary: ``int32`` size, nwords, nlabels, ``int64`` ntokens, ``int64``
  pruneidx_size (-1: not pruned); per entry its bytes and a NUL, ``int64`` count, ``int8``
  type (0 word, 1 label); then ``pruneidx_size`` pairs of ``int32``;
* ``uint8`` quantised-input flag, the input matrix (``int64`` rows = nwords + bucket,
  ``int64`` cols = dim, float32 values in C order);
* ``uint8`` quantised-output flag, the output matrix (``int64`` rows = nwords, cols, values).

Every field is checked against the file's size and the other fields before an array is
allocated or a kernel sees it; a damaged or unsupported file raises ``StoreError`` (a
``ValueError``) naming the file and the field.
"""
import os
import struct

import numpy as np

from ._errors import StoreError
from ._ft_kernels import count_subwords, fill_subword_rows, fnv1a32, subword_ranges

FASTTEXT_MAGIC = 793712314
FASTTEXT_VERSION = 12
EOS = "</s>"
LOSS_NS = 2
MODEL_CBOW, MODEL_SG, MODEL_SUP = 1, 2, 3
_ARGS = struct.Struct("<12id")
_DICT = struct.Struct("<3i2q")
_ARG_NAMES = ("dim", "ws", "epoch", "minCount", "neg", "wordNgrams", "loss", "model",
              "bucket", "minn", "maxn", "lrUpdateRate", "t")
MAX_DIM = 1 << 16
MAX_NGRAM = 1 << 10
_INT32_MAX = (1 << 31) - 1


def word_bytes(word):
    """The UTF-8 bytes of a word (``surrogateescape`` gives back bytes that were not UTF-8)."""
    return word.encode("utf-8", "surrogateescape")


def ft_hash(data):
    """fastText's 32-bit hash of ``data`` (bytes)."""
    buf = np.frombuffer(bytes(data), np.uint8)
    return int(fnv1a32(buf, 0, buf.size))


def subword_strings(word, minn, maxn):
    """The character n-grams fastText computes for ``word`` (str), in its order."""
    data = b"<" + word_bytes(word) + b">"
    buf = np.frombuffer(data, np.uint8)
    cap = max(buf.size * max(maxn, 1), 1)
    lo, hi = np.empty(cap, np.int64), np.empty(cap, np.int64)
    m = subword_ranges(buf, 0, buf.size, minn, maxn, lo, hi)
    return [data[a:b].decode("utf-8", "surrogateescape") for a, b in zip(lo[:m], hi[:m])]


def subword_rows(words, minn, maxn, bucket, nwords, own_rows):
    """CSR ``(indptr, indices)`` (int64) of the input-matrix rows of each word.

    Per word: its own row (``own_rows[i]``, or none when it is -1), then ``nwords + hash %
    bucket`` of each n-gram of ``"<word>"`` (none for fastText's end-of-sentence word
    ``"</s>"`` or when ``maxn`` is 0).
    """
    encoded = [b"<" + word_bytes(w) + b">" for w in words]
    off = np.zeros(len(words) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=off[1:])
    buf = np.frombuffer(b"".join(encoded), np.uint8) if encoded else np.zeros(0, np.uint8)
    skip = np.array([w == EOS for w in words], np.bool_) if maxn > 0 \
        else np.ones(len(words), np.bool_)
    if maxn > 0 and bucket < 1:
        raise ValueError(f"bucket must be >= 1 when max_n > 0, got {bucket}")
    nsub = np.zeros(len(words), np.int64)
    count_subwords(buf, off, minn, maxn, skip, nsub)
    own_rows = np.asarray(own_rows, np.int64)
    indptr = np.zeros(len(words) + 1, np.int64)
    np.cumsum(nsub + (own_rows >= 0), out=indptr[1:])
    indices = np.empty(int(indptr[-1]), np.int64)
    fill_subword_rows(buf, off, minn, maxn, skip, bucket, nwords, own_rows, indptr, indices)
    return indptr, indices


# --------------------------------------------------------------------------- reading
class _Reader:
    def __init__(self, f, path, size):
        self.f = f
        self.path = path
        self.size = size

    def fail(self, field, message):
        return StoreError(f"{self.path}: {field} {message}")

    def left(self):
        return self.size - self.f.tell()

    def exact(self, n, field):
        data = self.f.read(n)
        if len(data) != n:
            raise self.fail(field, f"is cut short: the file ends after {len(data)} of its "
                                   f"{n} bytes")
        return data


def _check_args(a, r):
    """Raise unless the argument block describes a model this library can use."""
    for name in ("dim", "ws", "epoch"):
        if a[name] < 1:
            raise r.fail(f"argument {name!r}", f"must be >= 1, got {a[name]}")
    if a["dim"] > MAX_DIM:
        raise r.fail("argument 'dim'", f"must be <= {MAX_DIM}, got {a['dim']}")
    for name in ("minCount", "neg", "bucket", "minn", "maxn", "wordNgrams", "lrUpdateRate"):
        if a[name] < 0:
            raise r.fail(f"argument {name!r}", f"must be >= 0, got {a[name]}")
    for name in ("minn", "maxn"):
        if a[name] > MAX_NGRAM:
            raise r.fail(f"argument {name!r}", f"must be <= {MAX_NGRAM}, got {a[name]}")
    if a["model"] == MODEL_SUP:
        raise r.fail("argument 'model'", "is 3 (a supervised classifier); only word-vector "
                                         "models (skip-gram 2, CBOW 1) are supported")
    if a["model"] not in (MODEL_CBOW, MODEL_SG):
        raise r.fail("argument 'model'", f"must be 1 (cbow) or 2 (skip-gram), got {a['model']}")
    if a["loss"] not in (1, 2, 3, 4):
        raise r.fail("argument 'loss'", f"must be 1 .. 4, got {a['loss']}")
    if a["maxn"] > 0 and a["bucket"] < 1:
        raise r.fail("argument 'bucket'", f"must be >= 1 when maxn > 0 (maxn {a['maxn']})")
    if not (np.isfinite(a["t"]) and a["t"] >= 0):
        raise r.fail("argument 't'", f"must be a finite number >= 0, got {a['t']}")


def _read_matrix(r, field, rows, cols):
    """An ``(rows, cols)`` float32 matrix after its ``int64`` shape, checked first."""
    m, n = struct.unpack("<2q", r.exact(16, f"{field} shape"))
    if (m, n) != (rows, cols):
        raise r.fail(f"{field} shape", f"is ({m}, {n}); expected ({rows}, {cols}) from the "
                                       "arguments and the dictionary")
    nbytes = rows * cols * 4
    if nbytes > r.left():
        raise r.fail(field, f"needs {nbytes} bytes but only {r.left()} remain in the file")
    out = np.empty((rows, cols), np.float32)
    got = r.f.readinto(memoryview(out).cast("B"))
    if got != nbytes:
        raise r.fail(field, f"is cut short ({got} of {nbytes} bytes)")
    bad = ~np.isfinite(out)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise r.fail(field, f"holds {out[i, j]} at row {i}, column {j}; values must be finite")
    return out


def _read_dictionary(r):
    size, nwords, nlabels, ntokens, pruneidx_size = _DICT.unpack(r.exact(_DICT.size,
                                                                          "dictionary header"))
    if size < 0 or nwords < 0 or nlabels < 0 or size != nwords + nlabels:
        raise r.fail("dictionary header", f"holds size {size}, nwords {nwords}, nlabels "
                                          f"{nlabels}; expected size = nwords + nlabels >= 0")
    if nlabels:
        raise r.fail("dictionary", f"holds {nlabels} labels; only word-vector models are "
                                   "supported")
    if nwords < 1:
        raise r.fail("dictionary", "holds no word")
    if ntokens < 0:
        raise r.fail("dictionary header", f"holds ntokens {ntokens}; must be >= 0")
    if pruneidx_size >= 0:
        raise r.fail("dictionary header", f"holds pruneidx_size {pruneidx_size}: a pruned "
                                          "(quantised, .ftz) model, which is not supported")
    if pruneidx_size != -1:
        raise r.fail("dictionary header", f"holds pruneidx_size {pruneidx_size}; expected -1")
    if size * 10 > r.left():
        raise r.fail("dictionary", f"announces {size} entries (at least 10 bytes each) but "
                                   f"only {r.left()} bytes remain in the file")
    words, counts = [], np.empty(size, np.int64)
    seen = {}
    pending = b""
    pos = 0
    chunk = 1 << 20
    i = 0
    while i < size:
        nul = pending.find(b"\0", pos)
        if nul < 0 or len(pending) - nul - 1 < 9:
            more = r.f.read(chunk)
            if not more:
                raise r.fail(f"dictionary entry {i}", "is cut short: the file ends inside it")
            pending = pending[pos:] + more
            pos = 0
            continue
        raw = pending[pos:nul]
        count, etype = struct.unpack_from("<qb", pending, nul + 1)
        pos = nul + 10
        if etype != 0:
            raise r.fail(f"dictionary entry {i}", f"has type {etype}; expected 0 (a word)")
        if count < 0:
            raise r.fail(f"dictionary entry {i}", f"has count {count}; must be >= 0")
        if not raw:
            raise r.fail(f"dictionary entry {i}", "is an empty word")
        word = raw.decode("utf-8", "surrogateescape")
        if seen.setdefault(word, i) != i:
            raise r.fail("dictionary", f"holds {word!r} twice (entries {seen[word]} and {i})")
        words.append(word)
        counts[i] = count
        i += 1
    # give back what was read past the dictionary
    r.f.seek(pos - len(pending), os.SEEK_CUR)
    return words, counts, ntokens


def read_facebook_bin(path):
    """Read a fastText ``.bin`` model. Returns ``(args, words, counts, ntokens, input,
    output)``: ``args`` a dict of the argument block, ``input`` float32 of shape
    ``(nwords + bucket, dim)``, ``output`` float32 ``(nwords, dim)``."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"fastText model {path!r} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"fastText model {path!r} is a directory, not a file")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        r = _Reader(f, path, size)
        magic, version = struct.unpack("<2i", r.exact(8, "header"))
        if magic != FASTTEXT_MAGIC:
            raise r.fail("header", f"has magic number {magic}; not a fastText model file "
                                   f"(expected {FASTTEXT_MAGIC})")
        if version != FASTTEXT_VERSION:
            raise r.fail("header", f"has version {version}; only version {FASTTEXT_VERSION} "
                                   "(fastText 0.9) is supported")
        a = dict(zip(_ARG_NAMES, _ARGS.unpack(r.exact(_ARGS.size, "argument block"))))
        _check_args(a, r)
        words, counts, ntokens = _read_dictionary(r)
        nwords = len(words)
        (qin,) = struct.unpack("<B", r.exact(1, "quantisation flag"))
        if qin:
            raise r.fail("quantisation flag", "is set: a quantised model (.ftz), which is "
                                              "not supported; use the .bin model")
        inp = _read_matrix(r, "input matrix", nwords + a["bucket"], a["dim"])
        (qout,) = struct.unpack("<B", r.exact(1, "output quantisation flag"))
        if qout:
            raise r.fail("output quantisation flag", "is set: a quantised model, which is "
                                                     "not supported")
        out = _read_matrix(r, "output matrix", nwords, a["dim"])
        if r.left():
            raise r.fail("end", f"{r.left()} bytes follow the output matrix")
    return a, words, counts, ntokens, inp, out


# --------------------------------------------------------------------------- writing
def write_facebook_bin(f, args, words, counts, ntokens, vocab, ngrams, index, bucket, output):
    """Write a fastText ``.bin`` model to the binary file object ``f``.

    ``args``: dict of the argument block; ``vocab``: the ``(nwords, dim)`` word rows;
    ``ngrams``: the n-gram rows; ``index``: None when they are all ``bucket`` buckets in
    order, else ``(sorted bucket ids, their rows of ngrams)`` -- the other buckets are
    written as zeros; ``output``: the ``(nwords, dim)`` output matrix.
    """
    dim = args["dim"]
    f.write(struct.pack("<2i", FASTTEXT_MAGIC, FASTTEXT_VERSION))
    f.write(_ARGS.pack(*(args[k] for k in _ARG_NAMES)))
    f.write(_DICT.pack(len(words), len(words), 0, int(ntokens), -1))
    f.write(b"".join(word_bytes(w) + b"\0" + struct.pack("<qb", int(c), 0)
                     for w, c in zip(words, counts)))
    f.write(b"\0")
    f.write(struct.pack("<2q", vocab.shape[0] + bucket, dim))
    _write_rows(f, vocab)
    if index is None:
        _write_rows(f, ngrams)
    else:
        srt, order = index
        block = 1 << 16
        buf = np.zeros((block, dim), np.float32)
        for lo in range(0, bucket, block):
            hi = min(bucket, lo + block)
            a, b = np.searchsorted(srt, [lo, hi])
            part = buf[:hi - lo]
            part[:] = 0
            part[srt[a:b] - lo] = ngrams[order[a:b]]
            f.write(part.tobytes())
    f.write(b"\0")
    f.write(struct.pack("<2q", output.shape[0], dim))
    _write_rows(f, output)


def _write_rows(f, arr, block=1 << 16):
    for lo in range(0, arr.shape[0], block):
        f.write(np.ascontiguousarray(arr[lo:lo + block], np.float32).tobytes())


def check_int32(value, name):
    if value > _INT32_MAX:
        raise ValueError(f"{name} {value} does not fit fastText's 32-bit field")
    return value
