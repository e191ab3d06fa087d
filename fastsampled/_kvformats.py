"""The files of :class:`fastsampled.KeyedVectors` (private): the C word2vec text and binary
formats (plain or ``.gz`` / ``.bz2`` / ``.xz``) and the pickle-free ``.npz`` file of
``KeyedVectors.save``, each read with every field checked before it is used.

The functions take and return plain values (arrays, key lists); ``KeyedVectors`` checks the
arguments its methods document and builds itself from what these return.
"""
import bz2
import gzip
import io
import json
import logging
import lzma
import os
import stat

import numpy as np

from ._modelfiles import NpzReader, compression, replacing
from ._errors import StoreError

__all__ = ["open_compressed", "write_word2vec_format", "read_word2vec_format", "write_vocab",
           "read_vocab", "KeyDecodeError", "write_npz", "read_npz"]

# Records go to the logger of the public module, fastsampled.keyedvectors.
logger = logging.getLogger("fastsampled.keyedvectors")

_FORMAT = "fastsampled.KeyedVectors"
_FORMAT_VERSION = 1


def open_compressed(path, mode):
    """Open ``path`` in binary ``mode``; ``.gz``, ``.bz2`` and ``.xz`` are (de)compressed.

    Parameters
    ----------
    path : str or os.PathLike
    mode : str
        A binary mode (``"rb"``, ``"wb"``).

    Returns
    -------
    file object
    """
    path = os.fspath(path)
    kind = compression(path)
    if kind == "gz":
        return gzip.open(path, mode)
    if kind == "bz2":
        return bz2.open(path, mode)
    if kind == "xz":
        return lzma.open(path, mode)
    return open(path, mode)


# ---------------------------------------------------------------------- word2vec files

def write_word2vec_format(path, index_to_key, vectors, binary, write_header):
    """Write ``vectors`` under their keys in the word2vec text or binary format, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Replaced whole once written; a ``.gz``, ``.bz2`` or ``.xz`` suffix compresses.
    index_to_key : list of str
    vectors : ndarray of shape (len(index_to_key), dim), float32
    binary, write_header : bool

    Raises
    ------
    ValueError
        If a key is empty or contains whitespace that the format cannot represent.
    """
    for key in index_to_key:
        if not key or " " in key or "\n" in key:
            raise ValueError(f"key {key!r} cannot be stored in word2vec format "
                             "(empty, or contains a space or newline)")
    n, dim = vectors.shape
    block = 8192
    with replacing(path, compress=True) as fout:
        if write_header:
            fout.write(f"{n} {dim}\n".encode("utf8"))
        for start in range(0, n, block):
            keys = index_to_key[start:start + block]
            rows = vectors[start:start + block]
            if binary:
                raw = rows.astype("<f4").tobytes()
                rec = 4 * dim
                fout.write(b"".join(f"{key} ".encode("utf8") + raw[j * rec:(j + 1) * rec]
                                    for j, key in enumerate(keys)))
            else:
                # numpy's float32 -> str cast is str(np.float32(x)), as gensim writes
                texts = rows.astype(str).tolist()
                fout.write("".join(f"{key} {' '.join(vals)}\n"
                                   for key, vals in zip(keys, texts)).encode("utf8"))


def read_word2vec_format(path, binary, limit, encoding, unicode_errors, no_header):
    """Read a word2vec text or binary file; the arguments are already checked.

    Parameters
    ----------
    path : str or os.PathLike
    binary : bool or None
        None: the format is read from the first record (:func:`detect_binary`); a bool that
        disagrees with it is refused.
    limit : int or None
        Read at most this many vectors.
    encoding, unicode_errors : str
        How the keys are decoded.
    no_header : bool
        A text file without the ``"N dim"`` first line (not with ``binary``).

    Returns
    -------
    vectors : ndarray of shape (N, dim), float32
    keys : list of str
        Distinct; a repeated key keeps its first vector.
    n : int
        The number of records read (the header's count, or the lines of a file without
        one, at most ``limit``); more than N when a key repeats.

    Raises
    ------
    ValueError
        If the file is not in the format or holds fewer vectors than its header declares
        (the message names the path and the line or record).
    KeyDecodeError
        (a ``UnicodeDecodeError``, so a ``ValueError``) If a key does not decode.
    """
    path_str = os.fspath(path)
    with open_compressed(path, "rb") as fin:
        if no_header:
            n, dim = _detect_text_sizes(fin, path_str, limit)
            fin.seek(0)
            header_len = 0
        else:
            header = fin.readline(_MAX_HEADER)
            header_len = len(header)
            try:
                if header_len == _MAX_HEADER and not header.endswith(b"\n"):
                    raise ValueError
                n, dim = (int(x) for x in header.decode(encoding).split())
                if n < 0 or dim < 1:
                    raise ValueError
            except (ValueError, UnicodeDecodeError):
                raise ValueError(
                    f"{path_str}: line 1: expected a word2vec header 'count dim', got "
                    f"{header[:80]!r} (a file without one: no_header=True)") from None
        found = None if no_header else detect_binary(fin, dim)
        fin.seek(header_len)
        if binary is None:
            binary = bool(found)
        elif found is not None and found != binary:
            raise ValueError(
                f"{path_str}: a word2vec {'binary' if found else 'text'} file, but it was "
                f"read as {'binary' if binary else 'text'} (binary={binary}); leave binary "
                "unset to read either format")
        declared = n
        if limit is not None:
            n = min(n, limit)
        size = _plain_file_size(fin)
        if size is not None:
            _check_declared_size(path_str, declared, n, dim, size, header_len, binary,
                                 no_header)
        reader = _read_binary if binary else _read_text
        vectors, keys = reader(fin, path_str, n, dim, encoding, unicode_errors, header_len,
                               size is not None)
        return vectors, keys, n


# what the values of a text record are written with: digits, signs, points, exponents,
# "nan" / "inf" and the separators
_TEXT_VALUE_BYTES = frozenset(b"0123456789+-.eE \t\r\nnaifNAIFty")
_SNIFF = 256      # value bytes of the first record looked at


def detect_binary(fin, dim):
    """Whether the word2vec file ``fin``, positioned after its header, holds binary vectors.

    The first record is a key, a space, then either ``dim`` float32 values (binary) or
    their decimal text up to a newline. Text values use a handful of ASCII characters, digits
    among them; the bytes of raw floats almost never all do. Returns None when the file has
    no record to look at. Moves the file position.
    """
    chunk = fin.read(_MAX_KEY_BYTES + 1 + min(4 * dim, _SNIFF))
    space = chunk.find(b" ")
    if space < 0:
        return None
    values = chunk[space + 1:space + 1 + min(4 * dim, _SNIFF)]
    if not values:
        return None
    line = values.split(b"\n", 1)[0]       # a text record ends at its newline
    return not (line and all(b in _TEXT_VALUE_BYTES for b in line)
                and any(48 <= b <= 57 for b in line))


class KeyDecodeError(UnicodeDecodeError):
    """A key of a word2vec or vocabulary file that does not decode.

    A ``UnicodeDecodeError`` (what gensim raises, and a ``ValueError``) whose message names
    the file, the line or record, and the key.

    Parameters
    ----------
    exc : UnicodeDecodeError
        The decoder's error.
    message : str
        What ``str()`` of this error says.
    """

    def __init__(self, exc, message):
        super().__init__(exc.encoding, exc.object, exc.start, exc.end, exc.reason)
        self.message = message

    def __str__(self):
        return self.message

    def __reduce__(self):     # (the default would call __init__ with the decoder's 5 fields)
        return _key_decode_error, (self.encoding, self.object, self.start, self.end,
                                   self.reason, self.message)


def _key_decode_error(encoding, obj, start, end, reason, message):
    return KeyDecodeError(UnicodeDecodeError(encoding, obj, start, end, reason), message)


def _decode_key(raw, path, where, encoding, unicode_errors):
    try:
        return raw.decode(encoding, errors=unicode_errors)
    except UnicodeDecodeError as exc:
        raise KeyDecodeError(
            exc, f"{path}: {where}: key {raw[:80]!r} does not decode as {encoding} "
                 f"({exc.reason}; unicode_errors='ignore' or 'replace' may help)") from None


# The header line "count dim\n" is short; a first line longer than this is not one.
_MAX_HEADER = 1024
_MAX_KEY_BYTES = 4096   # a first key longer than this leaves the format undetected
# A header that the file is too small for is refused outright when its array would take more
# than this; a smaller one is read until the file ends, to name the line where it does.
_EAGER_BYTES = 1 << 24


def _plain_file_size(fin):
    """Size in bytes of ``fin`` if it is an uncompressed regular file, else None."""
    if not isinstance(fin, io.BufferedReader):
        return None
    st = os.fstat(fin.fileno())
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _check_declared_size(path, declared, n, dim, size, header_len, binary, no_header):
    """Refuse a header (or, without one, a first line) announcing more than the file holds,
    before its ``(n, dim)`` array is allocated.

    A binary record takes at least ``4 * dim + 2`` bytes (a one-byte key, a space, the
    float32 values); a text line at least ``2 * dim + 1`` (a key and ``dim`` values, each
    after a space, and the newline that ends every line but maybe the last). When the array
    would be small anyway, the file is read instead, and the reader's error names the line or
    record where it ends.
    """
    need = n * (4 * dim + 2 if binary else 2 * dim + 1)
    if need <= size - header_len or 4 * n * dim <= _EAGER_BYTES:
        return
    if no_header:
        raise ValueError(f"{path}: line 1 holds {dim} values, so the file's {n} lines need at "
                         f"least {need} bytes, but the file has only {size} bytes")
    raise ValueError(f"{path}: the header declares {declared} x {dim} but the file has only "
                     f"{size} bytes (the first {n} vectors need at least {header_len + need})")


class _Collector:
    """Rows of a word2vec file; a repeated key keeps its first vector, as in gensim.

    With ``preallocate`` (an uncompressed file whose size was checked against the header)
    the ``(n, dim)`` array is allocated at once; otherwise it grows as rows arrive, so that a
    damaged header in a compressed file costs no more memory than the rows really read.
    """

    def __init__(self, n, dim, preallocate=True):
        self.n = n
        self.vectors = np.empty((n if preallocate else 0, dim), np.float32)
        self.keys = []
        self.seen = set()

    def _grow(self):
        cap, dim = self.vectors.shape
        new_cap = min(self.n, max(2 * cap, (1 << 20) // (4 * dim), 1))
        grown = np.empty((new_cap, dim), np.float32)
        grown[:cap] = self.vectors
        self.vectors = grown

    def add(self, key, vector):
        if key in self.seen:
            logger.warning("duplicate word %r in word2vec file, ignoring all but first", key)
            return
        self.seen.add(key)
        if len(self.keys) == len(self.vectors):
            self._grow()
        self.vectors[len(self.keys)] = vector
        self.keys.append(key)

    def result(self):
        vectors = self.vectors if len(self.keys) == len(self.vectors) else \
            np.ascontiguousarray(self.vectors[:len(self.keys)])
        return vectors, self.keys


def _parse_text_line(line, path, line_no, dim, encoding, unicode_errors):
    # gensim: the key runs to the first space; word2vec.c ends lines with "value \n"
    line = line.rstrip()
    key_raw, _, rest = line.partition(b" ")
    values = rest.split()
    if dim is not None and len(values) != dim:
        raise ValueError(f"{path}: line {line_no}: expected a key and {dim} values, got "
                         f"{len(values)} values")
    try:
        vector = np.array(values, dtype=np.float32)
    except ValueError:
        bad = next(v for v in values if not _is_float(v))
        raise ValueError(f"{path}: line {line_no}: {bad[:40]!r} is not a number") from None
    key = _decode_key(key_raw, path, f"line {line_no}", encoding, unicode_errors)
    if not key:
        raise ValueError(f"{path}: line {line_no}: empty key (the line starts with a space)")
    return key, vector


def _is_float(token):
    try:
        float(token)
        return True
    except ValueError:
        return False


def _read_text(fin, path, n, dim, encoding, unicode_errors, header_len, preallocate=True):
    rows = _Collector(n, dim, preallocate)
    first_line = 1 if header_len == 0 else 2
    for i in range(n):
        line = fin.readline()
        if not line:
            raise ValueError(f"{path}: line {first_line + i}: file ends after {i} vectors, "
                             f"the header announces {n} vectors of dimension {dim}")
        rows.add(*_parse_text_line(line, path, first_line + i, dim, encoding, unicode_errors))
    return rows.result()


def _detect_text_sizes(fin, path, limit):
    """(number of lines, values on the first line) of a header-less text file."""
    n = 0
    dim = None
    for line in fin:
        if limit is not None and n == limit:
            break
        if dim is None:
            dim = len(line.rstrip().partition(b" ")[2].split())
            if dim < 1:
                raise ValueError(f"{path}: line 1: expected a key followed by its values")
        n += 1
    if dim is None:
        raise ValueError(f"{path}: the file is empty")
    return n, dim


def _read_binary(fin, path, n, dim, encoding, unicode_errors, header_len, preallocate=True,
                 chunk_size=1 << 20):
    rows = _Collector(n, dim, preallocate)
    record = 4 * dim
    buf = b""
    pos = 0            # start of the next record in buf
    consumed = header_len  # file offset of buf[0]
    eof = False
    i = 0
    while i < n:
        space = buf.find(b" ", pos)
        if space < 0 or len(buf) - (space + 1) < record:
            if eof:
                raise ValueError(f"{path}: record {i + 1} (byte {consumed + pos}): file ends after "
                                 f"{i} vectors, the header announces {n} vectors of dimension "
                                 f"{dim}")
            held = len(buf) - pos
            consumed += pos
            # At most twice what is held: a record of a damaged header's dimension is never
            # asked for at once, yet a long record takes few reads.
            more = fin.read(max(chunk_size, min(2 * record, 2 * held)))
            eof = not more
            buf = buf[pos:] + more
            pos = 0
            continue
        # some writers put a newline after each vector (word2vec.c); gensim strips it from keys
        where = f"record {i + 1} (byte {consumed + pos})"
        key = _decode_key(buf[pos:space], path, where, encoding, unicode_errors).lstrip("\n")
        if not key or "\n" in key:
            raise ValueError(f"{path}: {where}: " + (f"key {key[:80]!r} contains a newline"
                                                     if key else "empty key")
                             + " (the word2vec format cannot store it)")
        rows.add(key, np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1))
        pos = space + 1 + record
        i += 1
    return rows.result()


# ---------------------------------------------------------------------- vocabulary files

def write_vocab(path, index_to_key, counts):
    """Write word2vec.c's ``-save-vocab`` file: one ``key count`` line per key, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Replaced whole once written; a ``.gz``, ``.bz2`` or ``.xz`` suffix compresses.
    index_to_key : list of str
        Keys the word2vec format can hold (checked by :func:`write_word2vec_format`).
    counts : ndarray of shape (len(index_to_key),), int64
    """
    block = 65536
    with replacing(path, compress=True) as fout:
        for start in range(0, len(index_to_key), block):
            keys = index_to_key[start:start + block]
            fout.write("".join(f"{key} {count}\n" for key, count in
                               zip(keys, counts[start:start + block].tolist())).encode("utf8"))


def read_vocab(path, encoding, unicode_errors):
    """The counts of word2vec.c's ``-save-vocab`` file: ``key count`` lines.

    Parameters
    ----------
    path : str or os.PathLike
        ``.gz``, ``.bz2`` and ``.xz`` files are decompressed on the fly.
    encoding, unicode_errors : str
        How each line is decoded (as gensim does: the whole line, so a key cut in the middle
        of a character decodes as it does in the vectors file).

    Returns
    -------
    dict of str to int
        A key listed twice keeps its last count, as in gensim.

    Raises
    ------
    ValueError
        If a line does not hold a key and a non-negative integer (path and line in the
        message).
    KeyDecodeError
        (a ``UnicodeDecodeError``) If a line does not decode.
    """
    path_str = os.fspath(path)
    counts = {}
    with open_compressed(path, "rb") as fin:
        for line_no, raw in enumerate(fin, 1):
            line = _decode_key(raw.rstrip(b"\r\n"), path_str, f"line {line_no}", encoding,
                               unicode_errors)
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not (parts[1].isascii() and parts[1].isdigit()):
                raise ValueError(f"{path_str}: line {line_no}: expected 'key count' with a "
                                 f"non-negative integer count, got {line[:80]!r}")
            counts[parts[0]] = int(parts[1])
    return counts


# ---------------------------------------------------------------------- npz files

def write_npz(path, index_to_key, vectors, counts):
    """Write one ``.npz`` file (arrays plus a JSON member for the keys; no pickle), atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Used as given (no suffix is added); replaced whole once written.
    index_to_key : list of str
    vectors : ndarray of shape (len(index_to_key), dim), float32
    counts : ndarray of shape (len(index_to_key),), int64, or None
    """
    meta = {"format": _FORMAT, "version": _FORMAT_VERSION, "vector_size": vectors.shape[1],
            "index_to_key": index_to_key}
    arrays = {"vectors": vectors,
              "meta_json": np.frombuffer(json.dumps(meta, ensure_ascii=False).encode("utf8"),
                                         dtype=np.uint8)}
    if counts is not None:
        arrays["counts"] = counts
    with replacing(path) as fout:
        np.savez(fout, **arrays)


def read_npz(path):
    """Read what :func:`write_npz` wrote, every field checked before it is used.

    The JSON header first (an object with the ``format``, ``version`` and ``index_to_key``
    fields of the right types), then each array's ``.npy`` header against it and against the
    array's size in the file, before the array is read or decompressed.

    Parameters
    ----------
    path : str
        The file's path.

    Returns
    -------
    vectors : ndarray of shape (N, dim), float32
    keys : list of str
    counts : ndarray of shape (N,), int64, or None

    Raises
    ------
    fastsampled.StoreError
        If ``path`` is not such a file or is damaged; the message names the file and the
        field or array at fault.
    FileNotFoundError
        If ``path`` does not exist.
    """
    with NpzReader(path, "KeyedVectors.save") as npz:
        keys, dim = _check_kv_meta(npz.read_json("meta_json"), path)
        n = len(keys)
        vectors = npz.read("vectors", np.float32, (n, dim),
                           f"{n} keys in index_to_key" + (f", vector_size {dim}" if dim
                                                           else ""))
        counts = (npz.read("counts", np.int64, (n,), f"{n} keys in index_to_key")
                  if "counts" in npz else None)
    return vectors, keys, counts


def _check_kv_meta(meta, path):
    """``(index_to_key, vector_size or None)`` from the JSON header of a :meth:`save` file."""
    if not isinstance(meta, dict):
        raise StoreError(f"{path}: array 'meta_json' must hold a JSON object, got "
                         f"{type(meta).__name__}")
    if meta.get("format") != _FORMAT:
        raise StoreError(f"{path}: not a file written by KeyedVectors.save (its 'format' is "
                         f"{meta.get('format')!r})")
    version = meta.get("version")
    if type(version) is not int or version < 1:
        raise StoreError(f"{path}: field 'version' must be an integer >= 1, got {version!r}")
    if version > _FORMAT_VERSION:
        raise StoreError(f"{path}: written by a newer fastsampled (format 'version' "
                         f"{version}; this one reads up to {_FORMAT_VERSION})")
    if "index_to_key" not in meta:
        raise StoreError(f"{path}: field 'index_to_key' is missing")
    keys = meta["index_to_key"]
    if not isinstance(keys, list):
        raise StoreError(f"{path}: field 'index_to_key' must be a list of str, got "
                         f"{type(keys).__name__}")
    for i, key in enumerate(keys):
        if type(key) is not str:
            raise StoreError(f"{path}: field 'index_to_key' must hold str keys; index {i} is "
                             f"{type(key).__name__} {key!r}")
    dim = meta.get("vector_size")   # absent in files written before it was recorded
    if dim is not None and (type(dim) is not int or dim < 1):
        raise StoreError(f"{path}: field 'vector_size' must be an integer >= 1, got {dim!r}")
    return keys, dim

