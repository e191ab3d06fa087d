"""A synthetic word2vec corpus with known structure, plus analogy and word-pair files for it.

Used by ``fastsampled bench word2vec`` when no ``--corpus`` is given (``--quick`` needs no
download). The corpus has ``topics x roles`` *key words* ``t<k>r<r>``: every sentence holds one
key word, context words of its topic and of its role, and Zipf-distributed filler words. A key
word's vector should then be about "topic + role", so

* ``t1r1 t1r2 t2r1 t2r2`` analogies are solvable (``questions.txt``, questions-words format);
* a pair of key words is related by how much it shares: 8 for the same topic, 3 for the same
  role, 0 otherwise (``pairs.tsv``, wordsim format), scored by Spearman correlation.

Its words/s are comparable between tools on the same file; its quality scores measure how well
each tool recovers the planted structure, not English semantics (for that, pass a real corpus).

    python bench/synthetic_corpus.py OUTDIR [--tokens N] [--seed S]
"""
import argparse
import os

import numpy as np

TOPICS, ROLES = 40, 5
CONTEXT = 12          # context words per topic and per role
FILLER = 20000        # filler vocabulary (Zipf frequencies)


def write_corpus(out_dir, tokens=1_000_000, seed=0):
    """Write ``corpus.txt``, ``questions.txt`` and ``pairs.tsv`` under ``out_dir``.

    Parameters
    ----------
    out_dir : str
        Folder to write into (created if missing).
    tokens : int
        About how many tokens the corpus gets (16 per sentence).
    seed : int
        Seed of the generator: the same seed writes the same files.

    Returns
    -------
    dict
        Paths ``corpus``, ``questions``, ``pairs`` and the counts ``tokens``, ``sentences``.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(out_dir, exist_ok=True)
    per = 16                               # key word + 4 topic + 4 role + 7 filler
    n = max(1, tokens // per)
    topic = rng.integers(0, TOPICS, n)
    role = rng.integers(0, ROLES, n)
    tctx = rng.integers(0, CONTEXT, (n, 4))
    rctx = rng.integers(0, CONTEXT, (n, 4))
    u = rng.random((n, 7))                 # Zipf filler: ids floor(exp(u ln(F+1))) - 1
    filler = np.minimum(np.floor(np.exp(u * np.log(FILLER + 1.0))).astype(np.int64) - 1,
                        FILLER - 1)
    order = np.argsort(rng.random((n, per)), axis=1)
    path = os.path.join(out_dir, "corpus.txt")
    with open(path, "w") as f:
        for i in range(n):
            words = ([f"t{topic[i]}r{role[i]}"] + [f"topic{topic[i]}c{j}" for j in tctx[i]]
                     + [f"role{role[i]}c{j}" for j in rctx[i]] + [f"w{j}" for j in filler[i]])
            f.write(" ".join(words[j] for j in order[i]) + "\n")
    q_path = os.path.join(out_dir, "questions.txt")
    with open(q_path, "w") as f:
        f.write(": synthetic-topic-role\n")
        for _ in range(1000):
            k1, k2 = rng.choice(TOPICS, 2, replace=False)
            r1, r2 = rng.choice(ROLES, 2, replace=False)
            f.write(f"t{k1}r{r1} t{k1}r{r2} t{k2}r{r1} t{k2}r{r2}\n")
    p_path = os.path.join(out_dir, "pairs.tsv")
    with open(p_path, "w") as f:
        f.write("# word1\tword2\tscore: 8 same topic, 3 same role, 0 otherwise\n")
        for _ in range(400):
            k1, k2 = rng.integers(0, TOPICS, 2)
            r1, r2 = rng.integers(0, ROLES, 2)
            if (k1, r1) == (k2, r2):
                continue
            score = 8.0 * (k1 == k2) + 3.0 * (r1 == r2)
            f.write(f"t{k1}r{r1}\tt{k2}r{r2}\t{score:.1f}\n")
    return {"corpus": path, "questions": q_path, "pairs": p_path, "tokens": n * per,
            "sentences": n}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("--tokens", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    res = write_corpus(args.out_dir, args.tokens, args.seed)
    print(f"{res['tokens']:,} tokens in {res['sentences']:,} sentences: {res['corpus']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
