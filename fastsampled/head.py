"""A trainable sampled-softmax (or NCE) output layer over a huge vocabulary.

:class:`SampledSoftmaxHead` owns the class weights and biases (in RAM, or memory-mapped
:class:`~fastsampled.ShardedMatrix` stores under a directory), a candidate sampler, a loss and
a sparse optimizer. ``train_step(inputs, labels)`` samples, computes the loss and all
gradients, applies the sparse update to the rows the step used, and returns the gradient with
respect to the inputs, so any host network (PyTorch, JAX, numpy) can back-propagate it.
``loss_and_grads`` and ``apply_grads`` are its two halves, for hosts that decide themselves
when the head's update happens (``fastsampled.torch`` applies it in the backward pass).
``predict`` and ``evaluate`` are exact over all classes, chunked over shards and threads,
and never build a (batch, num_classes) matrix.

Reopening, checkpoints, saving, warming and closing come from the mixin
``_headfiles.HeadStorage``; a memory-mapped head's files are listed in
docs/storage.md#what-is-on-disk.
"""
import os
import pathlib

import numpy as np

from ._headfiles import FORMAT, LOSSES, SAMPLERS, VERSION, HeadStorage
from ._headinit import check_counts, make_optimizer, make_sampler, ram_params
from ._headscan import full_softmax_losses, scan_classes
from ._layout import check_strategy
from ._params import ParamRows
from ._step import SparseGrads, StepOptions, Workspace, check_sampled_values, step_ids
from ._step import loss_and_grads as step_loss_and_grads
from ._validate import as_bool, as_float_array, as_int, as_real, as_true_classes, check_range
from ._validate_kernels import first_nonfinite
from .sharding import check_durability

__all__ = ["SampledSoftmaxHead", "Batch"]


class Batch:
    """A batch validated once by :meth:`SampledSoftmaxHead.batch`, for that head's methods.

    Attributes
    ----------
    inputs : ndarray of shape (batch, dim)
        C-contiguous and finite, in the head's dtype.
    labels : ndarray of int64, shape (batch, num_true)
        The batch's own copy of the labels, each in ``[0, num_classes)``; do not modify it.
    """

    __slots__ = ("inputs", "labels", "_key")

    def __init__(self, inputs, labels, key):
        self.inputs = inputs
        self.labels = labels
        self._key = key

    def __repr__(self):
        return f"Batch(inputs={self.inputs.shape} {self.inputs.dtype}, labels={self.labels.shape})"


class SampledSoftmaxHead(HeadStorage):
    """Output layer over ``num_classes`` classes trained by sampled softmax or NCE.

    Parameters
    ----------
    num_classes : int
        Number of classes (rows of the weights).
    dim : int
        Input dimension (columns of the weights).
    path : str or path-like, optional
        Directory for memory-mapped weights, biases and optimizer state (created; must not
        exist or be empty unless ``overwrite``). None keeps everything in RAM.
    num_shards, partition_strategy : int, {"div", "mod"}
        Shard layout of the on-disk stores (ids map as in ``tf.nn.embedding_lookup``).
    sampler : {"log_uniform", "uniform", "unigram"}
        Candidate sampler; "unigram" draws from ``counts ** distortion`` with an alias table.
    counts : array_like of shape (num_classes,), optional
        Class frequencies for ``sampler="unigram"``.
    distortion : float
        Exponent applied to ``counts`` (0.75 as in word2vec).
    loss : {"sampled_softmax", "nce"}
    num_sampled, num_true : int
        Sampled classes per step (shared by the batch) and labels per example.
    optimizer : {"sgd", "adagrad", "adam"} or SGD / Adagrad / Adam instance
    lr : float, optional
        Learning rate when ``optimizer`` is a name (defaults: sgd 0.5, adagrad 0.1, adam 1e-3).
    init, init_scale : {"normal", "uniform", "zeros"}, float
        Initial weights: N(0, init_scale) or U(-init_scale, init_scale); default scale
        ``1 / sqrt(dim)``. Biases start at zero.
    reduction : {"mean", "sum"}
        ``train_step`` returns and differentiates the mean (or sum) of the per-example loss.
    remove_accidental_hits : bool, optional
        Default: True for sampled softmax, False for NCE (as TensorFlow).
    subtract_log_q : bool
    seed : int
        Seeds the initial weights and the sampler's stream.
    dtype : {"float32", "float64"}
    overwrite : bool
        Replace a head already stored at ``path`` (after taking its lock). A directory that
        is not empty and is not a head -- or a head directory holding files of its own --
        is refused even so: nothing but a head's own files is ever deleted.
    durability : {"process", "power", "none"}
        What the stores' rollback journal protects between checkpoints (memory-mapped heads):
        after a killed process (``"process"``) or also a power cut (``"power"``, an
        ``msync`` of the journal per step) the head reopens exactly at its last
        :meth:`checkpoint`. ``"none"`` keeps no journal: a crash then leaves rows newer than
        the checkpoint.

    Examples
    --------
    >>> import numpy as np, fastsampled as fs
    >>> head = fs.SampledSoftmaxHead(1000, 16, num_sampled=20, seed=0)
    >>> x = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
    >>> y = np.arange(8)
    >>> loss, d_x = head.train_step(x, y)
    >>> d_x.shape, head.step
    ((8, 16), 1)
    >>> ids, scores = head.predict(x, k=3)
    >>> ids.shape
    (8, 3)
    """

    def __init__(self, num_classes, dim, *, path=None, num_shards=1, partition_strategy="div",
                 sampler="log_uniform", counts=None, distortion=0.75, loss="sampled_softmax",
                 num_sampled=64, num_true=1, optimizer="sgd", lr=None, init="normal",
                 init_scale=None, reduction="mean", remove_accidental_hits=None,
                 subtract_log_q=True, seed=0, dtype="float32", overwrite=False,
                 durability="process", _open=None):
        self._settings(num_classes, dim, sampler=sampler, counts=counts, distortion=distortion,
                       loss=loss, num_sampled=num_sampled, num_true=num_true,
                       optimizer=optimizer, lr=lr, init=init, reduction=reduction,
                       remove_accidental_hits=remove_accidental_hits,
                       subtract_log_q=subtract_log_q, seed=seed, dtype=dtype,
                       durability=durability)
        self.step = 0
        self._warm_rows = 0          # rows 0.. made resident by warm(): no prefetch hints
        self._warm_bias_rows = 0     # the same for the biases (warm() may take all of them)
        self.path = None if path is None else pathlib.Path(os.fspath(path))
        if _open is not None:          # load(): stores already opened
            self.weights, self.biases, self._states, self.step, self._lock_fd = _open
            self._options = self._step_options()
            self.num_shards = getattr(self.weights, "num_shards", 1)
            self.partition_strategy = getattr(self.weights, "partition_strategy", "div")
            self.sampler.calls = self.step
            return
        self.num_shards = as_int(num_shards, "num_shards", 1)
        self.partition_strategy = check_strategy(partition_strategy)
        scale = 1.0 / np.sqrt(self.dim) if init_scale is None else \
            as_real(init_scale, "init_scale", 0.0)
        self._options = self._step_options()
        if self.path is None:
            if self.num_shards != 1:
                raise ValueError("num_shards > 1 needs a path (in-RAM heads use one array)")
            self.weights, self.biases, self._states = ram_params(
                self.num_classes, self.dim, self.dtype, init, scale, self.seed, self.optimizer)
        else:
            self._create_store(init, scale, overwrite)

    # ------------------------------------------------------------------ construction
    def _settings(self, num_classes, dim, *, sampler, counts, distortion, loss, num_sampled,
                  num_true, optimizer, lr, init, reduction, remove_accidental_hits,
                  subtract_log_q, seed, dtype, durability):
        """Check the constructor's arguments and set the attributes they give (everything
        but the parameters), the sampler and the optimizer included."""
        self.num_classes = as_int(num_classes, "num_classes", 1)
        self.dim = as_int(dim, "dim", 1)
        self.num_sampled = as_int(num_sampled, "num_sampled", 1)
        self.num_true = as_int(num_true, "num_true", 1)
        if self.num_sampled > self.num_classes:
            raise ValueError(f"num_sampled ({self.num_sampled}) must be <= num_classes "
                             f"({self.num_classes}): candidates are drawn without repeats")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        if init not in ("normal", "uniform", "zeros"):
            raise ValueError(f"init must be 'normal', 'uniform' or 'zeros', got {init!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.sampler_kind = sampler
        self.loss_kind = loss
        self.reduction = reduction
        self.distortion = as_real(distortion, "distortion", 0.0)
        self.remove_accidental_hits = (loss == "sampled_softmax") if remove_accidental_hits is None \
            else as_bool(remove_accidental_hits, "remove_accidental_hits")
        self.subtract_log_q = as_bool(subtract_log_q, "subtract_log_q")
        self.seed = as_int(seed, "seed", 0)
        self.durability = check_durability(durability)
        self.counts = check_counts(sampler, counts, self.num_classes)
        self.optimizer, self._opt_config = make_optimizer(optimizer, lr)
        self.sampler = make_sampler(sampler, self.num_classes, self.seed, self.counts,
                                    self.distortion)
        if self.num_sampled > self.sampler.num_drawable:
            raise ValueError(f"num_sampled ({self.num_sampled}) exceeds the "
                             f"{self.sampler.num_drawable} classes the sampler can draw (zero "
                             "counts have probability 0)")
        self.closed = False
        self._lock_fd = None
        self._rows = None            # the parameters as the step takes them (_loss_rows)
        self._bound = None           # the parameters bound to the optimizer (apply_grads)
        self._workspace = Workspace()  # the steps' scratch memory, reused step after step

    def _step_options(self):
        return StepOptions(nce=self.loss_kind == "nce",
                           remove_accidental_hits=self.remove_accidental_hits,
                           subtract_log_q=self.subtract_log_q)

    @property
    def optimizer_states(self):
        """``(weights' OptimizerState, biases' OptimizerState)``; ``(None, None)`` for a head
        opened read-only."""
        return self._states

    def config(self):
        """The head's configuration and counters as written to ``head.json`` (a dict of JSON
        values: sizes, sampler, loss, optimizer and its hyper-parameters, ``step``, the
        sampler's and the optimizer's counters)."""
        return {
            "format": FORMAT, "version": VERSION, "num_classes": self.num_classes,
            "dim": self.dim, "num_shards": self.num_shards,
            "partition_strategy": self.partition_strategy, "sampler": self.sampler_kind,
            "distortion": self.distortion, "loss": self.loss_kind,
            "num_sampled": self.num_sampled, "num_true": self.num_true,
            "optimizer": self._opt_config, "reduction": self.reduction,
            "remove_accidental_hits": self.remove_accidental_hits,
            "subtract_log_q": self.subtract_log_q, "seed": self.seed,
            "dtype": self.dtype.name, "step": self.step,
            # differs from step when batches were sampled without an update (loss_and_grads)
            "sampler_calls": self.sampler.calls,
            # the optimizer states' update counts (Adam's bias correction): SGD and Adagrad
            # keep no slot store that would record them
            "optimizer_t": [st.t if st is not None else self.step for st in self._states],
        }

    def _check_open(self):
        if self.closed or (self.path is not None and self.weights.closed):
            raise ValueError(f"{self!r} is closed")

    def __repr__(self):
        where = "RAM" if self.path is None else str(self.path)
        return (f"{type(self).__name__}({self.num_classes} classes x {self.dim}"
                f"{self._placement()}, {self.loss_kind}, {self.sampler_kind} sampler, "
                f"S={self.num_sampled}, {self._opt_config['name']}, step {self.step}, {where})")

    def _placement(self):
        """Where the rows are, for ``repr`` (a distributed head names its servers)."""
        return ""

    # ------------------------------------------------------------------ training
    def _inputs(self, inputs, name="inputs"):
        self._check_open()
        x = as_float_array(inputs, name, 2)
        if x.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (batch, {self.dim}), got {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} must have at least one row")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        bad = first_nonfinite(x.reshape(-1))     # a vectorised probe, then the index
        if bad >= 0:
            idx = tuple(int(i) for i in np.unravel_index(bad, x.shape))
            raise ValueError(f"{name} must be finite; found {x[idx]} at index {idx}")
        return x

    def _batch_key(self):
        return (self.num_classes, self.num_true, self.dim, self.dtype)

    def batch(self, inputs, labels, *, inputs_name="inputs"):
        """Validate a batch once, for any number of calls of this head's methods.

        :meth:`loss_and_grads`, :meth:`loss`, :meth:`exact_loss` and :meth:`evaluate`
        take the returned :class:`Batch` in place of ``inputs`` (with ``labels`` omitted)
        and skip their own checks: a host that validates its batch before choosing what to
        compute (``fastsampled.torch``) pays for the checks once.

        Parameters
        ----------
        inputs : ndarray of shape (batch, dim)
        labels : array_like of int, shape (batch,) or (batch, num_true)
        inputs_name : str
            What error messages call ``inputs``.

        Returns
        -------
        Batch

        Raises
        ------
        ValueError, TypeError
            Wrong shape or dtype, non-finite inputs, labels outside ``[0, num_classes)``.
        """
        x = self._inputs(inputs, inputs_name)
        lab, _ = as_true_classes(labels, self.num_true, name="labels")
        if lab.shape[0] != x.shape[0]:
            raise ValueError(f"labels have {lab.shape[0]} rows but {inputs_name} have "
                             f"{x.shape[0]}")
        check_range(lab, 0, self.num_classes, "labels", f"num_classes is {self.num_classes}")
        # the batch's own copy: the caller's buffer may be refilled while the batch lives
        return Batch(x, lab.copy() if lab.base is not None or lab is labels else lab,
                     self._batch_key())

    def _as_batch(self, inputs, labels):
        """``inputs`` when it is a Batch made for this head's sizes, else a new one."""
        if isinstance(inputs, Batch):
            self._check_open()
            if labels is not None:
                raise ValueError("labels must be omitted when inputs is a Batch (it holds them)")
            if inputs._key != self._batch_key():
                raise ValueError(f"this Batch was validated for another head (num_classes, "
                                 f"num_true, dim, dtype = {inputs._key}, not "
                                 f"{self._batch_key()})")
            return inputs
        if labels is None:
            raise TypeError("labels are required (unless inputs is a Batch from head.batch)")
        return self.batch(inputs, labels)

    def _check_writable(self):
        self._check_open()
        if getattr(self, "_mode", "r+") == "r":
            raise ValueError("head opened read-only (mode='r'); load it with mode='r+' to train")

    def train_step(self, inputs, labels):
        """One training step: sample, loss, gradients, sparse update of the touched rows.

        The same as ``loss_and_grads`` followed by ``apply_grads``.

        Parameters
        ----------
        inputs : ndarray of shape (batch, dim)
        labels : array_like of int, shape (batch,) or (batch, num_true)

        Returns
        -------
        loss : float
            Mean (or sum, see ``reduction``) of the per-example loss before the update.
        d_inputs : ndarray of shape (batch, dim)
            Gradient of that loss with respect to ``inputs``.

        Raises
        ------
        FloatingPointError
            When the loss or a gradient is not finite; nothing is written to the weights.
        """
        self._check_writable()
        batch = self.batch(inputs, labels)
        calls = self.sampler.calls
        try:
            loss, g = self._loss_and_grads(batch, self.reduction, None, True)
            self.apply_grads(g)
        except BaseException:
            self.sampler.calls = calls  # a refused step leaves the sampler's stream unchanged
            raise
        return loss, g.inputs

    def loss_and_grads(self, inputs, labels=None, *, reduction=None, sampled_values=None):
        """Sample, then the loss and every gradient of one step, without updating anything.

        ``train_step`` is this followed by :meth:`apply_grads`. Split, a host framework can
        compute the gradient in its forward pass, hand ``grads.inputs`` to its own
        back-propagation and apply (or accumulate, or drop) the head's update when its
        optimizer steps.

        Parameters
        ----------
        inputs : ndarray of shape (batch, dim), or Batch
            A :class:`Batch` from :meth:`batch` carries its labels (omit ``labels``).
        labels : array_like of int, shape (batch,) or (batch, num_true)
        reduction : {"mean", "sum", "none"}, optional
            Default: the head's ``reduction``. "none" returns the per-example losses and the
            gradients of their sum.
        sampled_values : tuple, optional
            ``(sampled_candidates (num_sampled,), true_expected_count (batch, num_true),
            sampled_expected_count (num_sampled,))`` to use instead of drawing (the
            sampler's stream then does not advance), as in ``fs.sampled_softmax_loss``.

        Returns
        -------
        loss : float, or ndarray of shape (batch,) for ``reduction="none"``
        grads : SparseGrads
            Gradients of that (reduced) loss: ``inputs`` (batch, dim), ``ids`` (K,) sorted
            unique class ids, ``weights`` (K, dim), ``biases`` (K,), and the
            ``sampled_values`` used.

        Raises
        ------
        FloatingPointError
            When the loss or the gradient w.r.t. the inputs is not finite; the sampler's
            stream is left where it was.

        Examples
        --------
        >>> import numpy as np, fastsampled as fs
        >>> head = fs.SampledSoftmaxHead(1000, 16, num_sampled=20, seed=0)
        >>> x = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
        >>> loss, g = head.loss_and_grads(x, np.arange(8))
        >>> g.inputs.shape, head.step                    # nothing applied yet
        ((8, 16), 0)
        >>> head.apply_grads(g); head.step
        1
        """
        batch = self._as_batch(inputs, labels)
        return self._loss_and_grads(batch, reduction, sampled_values, True)

    def loss(self, inputs, labels=None, *, reduction=None, sampled_values=None):
        """The sampled loss of a batch without its gradients (cheaper; nothing is updated).

        Draws from the sampler (its stream advances) unless ``sampled_values`` is given.
        For the exact loss over all classes use :meth:`exact_loss`.

        Parameters
        ----------
        inputs, labels, reduction, sampled_values
            As :meth:`loss_and_grads`.

        Returns
        -------
        float, or ndarray of shape (batch,) for ``reduction="none"``
        """
        batch = self._as_batch(inputs, labels)
        return self._loss_and_grads(batch, reduction, sampled_values, False)[0]

    def _loss_and_grads(self, batch, reduction, sampled_values, want_grads):
        """``(loss, SparseGrads or None)`` of a validated batch."""
        reduction = self.reduction if reduction is None else reduction
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        calls = self.sampler.calls
        try:
            return self._compute(batch.inputs, batch.labels, reduction, sampled_values,
                                 want_grads)
        except BaseException:
            self.sampler.calls = calls  # a refused step leaves the sampler's stream unchanged
            raise

    def _compute(self, x, lab, reduction, sampled_values, want_grads):
        if sampled_values is None:
            candidates = tuple(self.sampler.sample_unchecked(lab, self.num_sampled, True))
        else:
            candidates = check_sampled_values(sampled_values, lab, self.num_sampled,
                                              self.num_classes)
        if self.path is not None:
            # rows not in the page cache: issue all their reads at once (see prefetch); the
            # rows warm() made resident need no hint (a syscall per page run otherwise)
            ids = step_ids(lab, candidates[0])
            for store, warm in ((self.weights, self._warm_rows),
                                (self.biases, self._warm_bias_rows)):
                cold = ids[ids >= warm] if warm else ids
                if cold.size:
                    store.prefetch(cold)
        W, Bs = self._loss_rows()
        scale = 1.0 / x.shape[0] if reduction == "mean" else 1.0
        loss, g = step_loss_and_grads(W, Bs, x, lab, candidates, self._options,
                                      want_grads=want_grads, grad_scale=scale,
                                      workspace=self._workspace)
        return self._checked(loss, g, reduction, scale, want_grads)

    def _checked(self, loss, g, reduction, scale, want_grads):
        """``(reduced loss, grads)`` of a step, refused when not finite."""
        total = float(loss.sum(dtype=np.float64))
        if not np.isfinite(total):
            raise FloatingPointError(f"non-finite loss ({total}) at step {self.step}; nothing "
                                     "was written to the weights")
        total = loss if reduction == "none" else total * scale
        if want_grads and first_nonfinite(g.inputs.reshape(-1)) >= 0:
            raise FloatingPointError(f"non-finite gradient w.r.t. inputs at step {self.step}; "
                                     "nothing was written to the weights")
        return total, g

    def apply_grads(self, grads):
        """Apply one step's gradients to the rows they touch with the head's optimizer.

        Parameters
        ----------
        grads : SparseGrads
            As returned by :meth:`loss_and_grads` (possibly scaled, or summed over several
            batches: ``ids`` sorted unique, ``weights`` (K, dim), ``biases`` (K,), in the
            head's dtype). ``grads.inputs`` is not used.

        Raises
        ------
        FloatingPointError
            When a gradient or an updated value is not finite; nothing is written and the
            step counter does not advance.
        """
        self._check_writable()
        if not isinstance(grads, SparseGrads):
            raise TypeError(f"grads must be a SparseGrads (from loss_and_grads), got "
                            f"{type(grads).__name__}")
        # the optimizer refuses (FloatingPointError, nothing written) non-finite weight/bias
        # gradients or updates itself
        key = (self.optimizer, self.weights, self.biases, self._states)
        if self._bound is None or any(a is not b for a, b in zip(self._bound[0], key)):
            self._bound = (key, self.optimizer.bind(self.weights, self.biases, self._states,
                                                    self.partition_strategy))
        self._bound[1].apply_grads(grads)
        self.step += 1

    def _loss_rows(self):
        """The weights and biases as the step takes them (built once, then reused)."""
        if (self._rows is None or self._rows[0] is not self.weights
                or self._rows[1] is not self.biases):
            self._rows = (self.weights, self.biases,
                          ParamRows(self.weights, "weights", ndim=2,
                                    partition_strategy=self.partition_strategy),
                          ParamRows(self.biases, "biases", ndim=1,
                                    partition_strategy=self.partition_strategy))
        return self._rows[2], self._rows[3]

    # ------------------------------------------------------------------ inference
    def _scan(self, x, k, want_lse):
        """Top-k (ids, scores) and optionally log-sum-exp over all classes for rows of x."""
        if self.path is None:
            return scan_classes(x, [self.weights], [self.biases], "div", self.dtype, k,
                                want_lse)
        # the stores are read sequentially (kernel read-ahead on) for the duration of the scan
        with self.weights.scan(), self.biases.scan():
            return scan_classes(x, self.weights.shards, self.biases.shards,
                                self.partition_strategy, self.dtype, k, want_lse)

    def predict(self, inputs, k=10):
        """Exact top-k classes of each input over all classes.

        Parameters
        ----------
        inputs : ndarray of shape (batch, dim)
        k : int

        Returns
        -------
        ids : ndarray of int64, shape (batch, k)
            Best first (ties: smaller id first).
        scores : ndarray, shape (batch, k)
            Their logits ``x . w + b``.
        """
        x = self._inputs(inputs)
        k = as_int(k, "k", 1)
        if k > self.num_classes:
            raise ValueError(f"k ({k}) must be <= num_classes ({self.num_classes})")
        ids, scores, _ = self._scan(x, k, False)
        return ids, scores

    def evaluate(self, inputs, labels=None, k=5):
        """Full-softmax loss and precision over all classes, exactly, without a (B, V) matrix.

        Parameters
        ----------
        inputs : ndarray of shape (batch, dim), or Batch
        labels : array_like of int, shape (batch,) or (batch, num_true)
            Omitted when ``inputs`` is a :class:`Batch`.
        k : int

        Returns
        -------
        dict
            ``loss``: mean over examples of ``logsumexp(z) - mean_j z[label_j]`` (the full
            softmax cross-entropy with targets ``1/num_true``); ``precision@1`` and
            ``precision@k``: mean of ``|top-k ∩ labels| / k`` (the extreme-classification
            definition); ``recall@k``: mean of ``|top-k ∩ labels| / num_true``.
        """
        batch = self._as_batch(inputs, labels)
        x, lab = batch.inputs, batch.labels
        k = as_int(k, "k", 1)
        if k > self.num_classes:
            raise ValueError(f"k ({k}) must be <= num_classes ({self.num_classes})")
        losses, ids = self._exact_losses(x, lab, k)
        hits = (ids[:, :, None] == lab[:, None, :]).any(axis=2)   # (B, k)
        return {"loss": float(np.mean(losses)),
                "precision@1": float(hits[:, 0].mean()),
                f"precision@{k}": float(hits.sum(axis=1).mean() / k),
                f"recall@{k}": float(hits.sum(axis=1).mean() / self.num_true)}

    def exact_loss(self, inputs, labels=None, *, reduction=None):
        """The full-softmax loss over all classes, exactly (no sampling, no (B, V) matrix).

        Parameters
        ----------
        inputs : ndarray of shape (batch, dim), or Batch
        labels : array_like of int, shape (batch,) or (batch, num_true)
            Omitted when ``inputs`` is a :class:`Batch`.
        reduction : {"mean", "sum", "none"}, optional
            Default: the head's ``reduction``.

        Returns
        -------
        float, or ndarray of float64, shape (batch,), for ``reduction="none"``
            ``logsumexp(z) - mean_j z[label_j]`` per example, computed in float64.
        """
        batch = self._as_batch(inputs, labels)
        reduction = self.reduction if reduction is None else reduction
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        losses = self._exact_losses(batch.inputs, batch.labels, 1)[0]
        if reduction == "none":
            return losses
        total = float(losses.sum(dtype=np.float64))
        return total / losses.size if reduction == "mean" else total

    def _exact_losses(self, x, lab, k):
        """Per-example full-softmax losses (float64, (B,)) and top-k ids of validated rows."""
        ids, _, lse = self._scan(x, k, True)
        flat = lab.reshape(-1)
        if self.path is not None:
            wl, bl = self.weights.gather(flat), self.biases.gather(flat)
        else:
            wl, bl = self.weights[flat], self.biases[flat]
        return full_softmax_losses(x, lab, wl, bl, lse), ids
