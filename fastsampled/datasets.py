"""Built-in synthetic data: an extreme-classification task with a hidden teacher.

Used by ``fastsampled demo``, the head benchmark and the PyTorch example; no download, any
number of classes, every batch a pure function of ``(seed, split, step)``.
"""
import numpy as np

from ._synth_kernels import teacher_examples
from ._rng import normalize_seed, stream_key
from ._validate import as_int
from .alias import AliasTable

__all__ = ["SyntheticXC"]

_TEACHER = np.uint64(0x7EAC4E5)
_NOISE = np.uint64(0x0015E)


class SyntheticXC:
    """A hidden teacher maps feature vectors to one of ``num_classes`` Zipf-frequent classes.

    Class ``c`` (0 most frequent) has probability proportional to ``(c + 1) ** -zipf`` and a
    hidden prototype ``u_c`` with i.i.d. uniform coordinates of variance 1/dim. An example
    of class ``c`` is ``x = u_c + noise * eps`` with ``eps`` distributed like ``u_c``; the Bayes-optimal rule is the
    nearest prototype, so a linear softmax layer can learn it, class by class, as it sees
    them. Prototypes are recomputed from the seed, never stored.

    Parameters
    ----------
    num_classes : int
    dim : int
    zipf : float
        Exponent of the class frequencies (>= 0; 0 is uniform).
    noise : float
        Noise norm relative to the prototypes' (about 1).
    seed : int

    Examples
    --------
    >>> from fastsampled.datasets import SyntheticXC
    >>> task = SyntheticXC(num_classes=1000, dim=16, seed=0)
    >>> x, y = task.batch(4, step=0)
    >>> x.shape, x.dtype, y.dtype
    ((4, 16), dtype('float32'), dtype('int64'))
    >>> bool((task.batch(4, step=0)[1] == y).all())   # batches are reproducible
    True
    """

    def __init__(self, num_classes=10**6, dim=128, zipf=1.0, noise=1.0, seed=0):
        self.num_classes = as_int(num_classes, "num_classes", 1)
        self.dim = as_int(dim, "dim", 1)
        self.zipf = float(zipf)
        self.noise = float(noise)
        if not (self.zipf >= 0 and np.isfinite(self.zipf)):
            raise ValueError(f"zipf must be >= 0 and finite, got {zipf!r}")
        if not (self.noise >= 0 and np.isfinite(self.noise)):
            raise ValueError(f"noise must be >= 0 and finite, got {noise!r}")
        self.seed = normalize_seed(seed)
        w = np.arange(1, self.num_classes + 1, dtype=np.float64) ** -self.zipf
        self.class_probs = w / w.sum()
        self._table = AliasTable(w)
        self._teacher = np.uint64(stream_key(self.seed ^ _TEACHER, np.uint64(0)))

    @property
    def majority_baseline(self):
        """precision@1 of always predicting the most frequent class."""
        return float(self.class_probs[0])

    def batch(self, batch_size, step, split="train"):
        """Examples ``(x float32 (batch, dim), labels int64 (batch,))`` of one step.

        ``split`` "train" and "test" draw from disjoint random streams.

        Parameters
        ----------
        batch_size : int
            Examples to draw.
        step : int
            Which batch: the same ``(step, split)`` always gives the same examples.
        split : {"train", "test"}, default "train"

        Returns
        -------
        x : ndarray of float32, shape (batch_size, dim)
        labels : ndarray of int64, shape (batch_size,)
        """
        n = as_int(batch_size, "batch_size", 1)
        step = as_int(step, "step", 0)
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        stream = 2 * step + (split == "test")
        labels = self._table.sample(n, seed=int(self.seed), stream=stream)
        x = np.empty((n, self.dim), np.float32)
        noise_key = np.uint64(stream_key(self.seed ^ _NOISE, np.uint64(stream)))
        teacher_examples(self._teacher, noise_key, labels, self.noise, x)
        return x, labels

    def __repr__(self):
        return (f"SyntheticXC(num_classes={self.num_classes}, dim={self.dim}, zipf={self.zipf}, "
                f"noise={self.noise})")
