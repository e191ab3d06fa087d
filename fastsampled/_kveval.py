"""The evaluations of :class:`fastsampled.KeyedVectors` (private): analogy questions
(``questions-words.txt``) answered in batches of matrix products, and word-pair similarities
(``wordsim353.tsv``) correlated with human judgements, both with gensim 4.4's semantics.

The functions take a ``KeyedVectors`` and use its public interface (``index_to_key``,
``get_normed_vectors``); the methods that call them check their arguments first.
"""
import io
import logging
import os

import numpy as np

from ._kvformats import open_compressed

__all__ = ["score_analogies", "score_word_pairs"]

# Records go to the logger of the public module, fastsampled.keyedvectors.
logger = logging.getLogger("fastsampled.keyedvectors")

# Analogy evaluation: at most this many float32 scores (questions x restricted vocabulary) are
# held at once (128 MB), and at most _MAX_BLOCK questions go into one matrix product.
_SCORE_BUDGET = 1 << 25
_MAX_BLOCK = 1000
# gensim asks most_similar for the top 5 answers and takes the first that is not a case variant
# of an input word (only possible with case_insensitive=True); see _analogy_fallback.
_ANALOGY_TOPN = 5


def _ok_vocab(index_to_key, restrict_vocab, case_insensitive):
    """gensim's ok_vocab: (upper-cased) key of the first ``restrict_vocab`` rows -> the
    index of its first (most frequent) occurrence."""
    ok_keys = index_to_key[:restrict_vocab]  # None: all
    ok_vocab = {}
    for i, key in enumerate(ok_keys):
        ok_vocab.setdefault(key.upper() if case_insensitive else key, i)
    return ok_keys, ok_vocab


def score_analogies(kv, path, restrict_vocab, case_insensitive, dummy4unknown):
    """What ``kv.evaluate_word_analogies`` returns; the arguments are already checked.

    Parameters
    ----------
    kv : KeyedVectors
    path : str or os.PathLike
        ``": section name"`` lines, then lines of four words (``.gz``, ``.bz2``, ``.xz``
        decompressed).
    restrict_vocab : int or None
    case_insensitive, dummy4unknown : bool

    Returns
    -------
    accuracy : float
    sections : list of dict
        As documented by ``KeyedVectors.evaluate_word_analogies``.

    Raises
    ------
    ValueError
        A question before any section header, a line that is not UTF-8, or a file without
        any question (path and line in the message).
    """
    path_str = os.fspath(path)
    ok_keys, ok_vocab = _ok_vocab(kv.index_to_key, restrict_vocab, case_insensitive)
    logger.info("Evaluating word analogies for top %s words in the model on %s",
                restrict_vocab, path_str)

    # Parse: per section, the questions in file order; the answerable ones also as ids.
    sections = []          # [name, [(quad, q_or_None)]]
    ids = []               # (a, b, c, expected) rows of ok_vocab ids, answerable questions
    n_questions = oov = 0
    with open_compressed(path, "rb") as fin:
        for line_no, raw in enumerate(fin, 1):
            try:
                line = raw.decode("utf8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path_str}: line {line_no}: not UTF-8 ({exc})") from None
            if line.startswith(": "):
                sections.append((line.lstrip(": ").strip(), []))
                continue
            if not sections:
                raise ValueError(f"{path_str}: line {line_no}: missing ': section' header "
                                 "before the first question")
            words = line.split()
            if len(words) != 4:
                logger.info("Skipping invalid line #%i in %s", line_no, path_str)
                continue
            quad = tuple(w.upper() for w in words) if case_insensitive else tuple(words)
            n_questions += 1
            q_ids = [ok_vocab.get(w) for w in quad]
            if None in q_ids:
                oov += 1
                if dummy4unknown:
                    sections[-1][1].append((quad, -1))
                continue
            sections[-1][1].append((quad, len(ids)))
            ids.append(q_ids)
    if n_questions == 0:
        raise ValueError(f"{path_str}: no analogy questions (lines of four words) found")

    correct = _answer_analogies(kv, np.asarray(ids, np.int64).reshape(-1, 4), len(ok_keys),
                                ok_keys, ok_vocab, case_insensitive)
    result = []
    for name, questions in sections:
        section = {"section": name,
                   "correct": [quad for quad, q in questions if q >= 0 and correct[q]],
                   "incorrect": [quad for quad, q in questions if q < 0 or not correct[q]]}
        _log_section(section)
        result.append(section)
    total = {"section": "Total accuracy",
             "correct": [quad for s in result for quad in s["correct"]],
             "incorrect": [quad for s in result for quad in s["incorrect"]]}
    logger.info("Quadruplets with out-of-vocabulary words: %.1f%%", 100.0 * oov / n_questions)
    if not dummy4unknown and oov:
        logger.info("NB: analogies containing OOV words were skipped from evaluation! "
                    "To change this behavior, use \"dummy4unknown=True\"")
    score = _log_section(total)
    result.append(total)
    return score, result


def _log_section(section):
    correct, incorrect = len(section["correct"]), len(section["incorrect"])
    if correct + incorrect == 0:
        return 0.0
    score = correct / (correct + incorrect)
    logger.info("%s: %.1f%% (%i/%i)", section["section"], 100.0 * score, correct,
                correct + incorrect)
    return score


def _answer_analogies(kv, ids, n_ok, ok_keys, ok_vocab, case_insensitive):
    """Boolean (Q,): is the 3CosAdd answer of each question (rows of ``ids``) right?"""
    correct = np.zeros(len(ids), bool)
    if len(ids) == 0 or n_ok == 0:
        return correct
    normed = kv.get_normed_vectors()[:n_ok]
    # canon[i]: the ok_vocab id standing for row i (differs from i only for a later case
    # variant of an earlier key, with case_insensitive)
    if case_insensitive:
        canon = np.fromiter((ok_vocab[k.upper()] for k in ok_keys), np.int64, n_ok)
    else:
        canon = np.arange(n_ok, dtype=np.int64)
    has_variants = bool((canon != np.arange(n_ok)).any())
    block = max(1, min(_MAX_BLOCK, _SCORE_BUDGET // n_ok))
    for start in range(0, len(ids), block):
        q = ids[start:start + block]
        a, b, c, expected = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
        query = (normed[b] + normed[c]) - normed[a]
        length = np.linalg.norm(query, axis=1, keepdims=True)
        query /= np.where(length > 0, length, np.float32(1.0))
        scores = query @ normed.T                            # (block, n_ok)
        rows = np.arange(len(q))
        for col in (a, b, c):                                # inputs are never the answer
            scores[rows, col] = -np.inf
        pred = np.argmax(scores, axis=1)
        answered = np.isfinite(scores[rows, pred])           # False: nothing left to pick
        pred_canon = canon[pred]
        ok = answered & (pred_canon == expected)
        if has_variants:
            # gensim skips answers whose upper-case form is an input word: redo those.
            clash = answered & ((pred_canon == a) | (pred_canon == b) | (pred_canon == c))
            for i in np.flatnonzero(clash).tolist():
                ok[i] = _analogy_fallback(scores[i], canon, a[i], b[i], c[i], expected[i])
        correct[start:start + len(q)] = ok
    return correct


def _analogy_fallback(scores, canon, a, b, c, expected):
    """gensim's loop over its top-5 answers: the first one that is not a case variant of an
    input word is the prediction; if all five are, the fifth one is."""
    n_candidates = min(_ANALOGY_TOPN, int(np.isfinite(scores).sum()))
    top = np.argsort(-scores, kind="stable")[:n_candidates]
    predicted = None
    for i in top.tolist():
        predicted = canon[i]
        if predicted not in (a, b, c):
            break
    return predicted is not None and predicted == expected


def score_word_pairs(kv, path, delimiter, restrict_vocab, case_insensitive, encoding,
                     dummy4unknown):
    """What ``kv.evaluate_word_pairs`` returns; the arguments are already checked.

    Parameters
    ----------
    kv : KeyedVectors
    path : str or os.PathLike
        Lines ``word1<delimiter>word2<delimiter>score`` (``.gz``, ``.bz2``, ``.xz``
        decompressed).
    delimiter : str
    restrict_vocab : int or None
    case_insensitive : bool
    encoding : str
    dummy4unknown : bool

    Returns
    -------
    pearson, spearman, oov_ratio
        As documented by ``KeyedVectors.evaluate_word_pairs``.

    Raises
    ------
    ValueError
        If no pair could be evaluated, or a line does not decode.
    """
    from scipy import stats

    path_str = os.fspath(path)
    _, ok_vocab = _ok_vocab(kv.index_to_key, restrict_vocab, case_insensitive)
    gold, left, right = [], [], []   # right/left == -1: an unknown word (dummy4unknown)
    oov = 0
    with open_compressed(path, "rb") as fraw, io.TextIOWrapper(fraw, encoding=encoding) as fin:
        lines = _decoded_lines(fin, path_str, encoding)
        for line_no, line in enumerate(lines, 1):
            if not line or line.startswith("#"):
                continue
            try:
                parts = line.split(delimiter)
                if case_insensitive:
                    parts = [p.upper() for p in parts]
                a, b, sim = parts
                sim = float(sim)
            except (ValueError, TypeError):
                logger.info("Skipping invalid line #%d in %s", line_no, path_str)
                continue
            if a not in ok_vocab or b not in ok_vocab:
                oov += 1
                if dummy4unknown:
                    gold.append(sim)
                    left.append(-1)
                    right.append(-1)
                continue
            gold.append(sim)
            left.append(ok_vocab[a])
            right.append(ok_vocab[b])
    if not gold:
        raise ValueError(f"No valid similarity judgements found in {path_str}: either invalid "
                         f"format or all are out-of-vocabulary in {kv!r}")
    left = np.asarray(left, np.int64)
    right = np.asarray(right, np.int64)
    normed = kv.get_normed_vectors()
    model = np.einsum("ij,ij->i", normed[left], normed[right]).astype(np.float64)
    model[left < 0] = 0.0
    spearman = stats.spearmanr(gold, model)
    pearson = stats.pearsonr(gold, model)
    if dummy4unknown:
        oov_ratio = float(oov) / len(gold) * 100
    else:
        oov_ratio = float(oov) / (len(gold) + oov) * 100
    logger.info("Pearson correlation coefficient against %s: %.4f", path_str, pearson[0])
    logger.info("Spearman rank-order correlation coefficient against %s: %.4f", path_str,
                spearman[0])
    logger.info("Pairs with unknown words ratio: %.1f%%", oov_ratio)
    return pearson, spearman, oov_ratio


def _decoded_lines(fin, path, encoding):
    """The lines of a text file, a decoding error turned into a ValueError naming the file."""
    line_no = 0
    while True:
        try:
            line = fin.readline()
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: after line {line_no}: not {encoding} "
                             f"({exc.reason})") from None
        if not line:
            return
        line_no += 1
        yield line

