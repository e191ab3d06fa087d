"""Keras adapter: a :class:`~fastsampled.SampledSoftmaxHead` as the output layer of a Keras model.

The body of the model stays in Keras; the softmax over millions of classes, its weights and its
sparse optimizer are fastsampled's::

    head = fs.SampledSoftmaxHead(num_classes, 128, num_sampled=64, optimizer="adagrad")
    x = keras.Input((64,)); y = keras.Input((), dtype="int64")
    loss = SampledSoftmax(head)([body(x), y])       # per-example loss
    model = keras.Model([x, y], loss)
    model.compile(optimizer="adam")                 # the layer adds its loss to the model's
    model.fit([features, labels], epochs=3)

What the layer does
-------------------
``layer([hidden, labels], training=True)``
    The head's sampled loss of each example (the head samples, gathers its rows and computes
    the loss and every gradient in one fused kernel). In the backward pass the head applies
    its own sparse optimizer to the rows the step used, scaled by the incoming gradient, and
    hands the gradient with respect to ``hidden`` on to the body: one backward pass is one
    head step. The layer adds the mean (or sum: the head's ``reduction``) of the losses to
    the model's losses, so ``compile`` needs no ``loss``.
``layer([hidden, labels], training=False)`` (``evaluate``, ``predict``)
    The exact full-softmax cross-entropy over all classes, with no sampling and no update
    (``SampledSoftmaxHead.exact_loss``; no (batch, num_classes) matrix is built).
``TopK(head, k)(hidden)``
    A second layer over the same head: the exact top-``k`` classes and their logits,
    ``[ids, scores]`` (``SampledSoftmaxHead.predict``), for an inference model.

The head's weights are not Keras variables: Keras's optimizer sees only the body's. They live
where the head keeps them -- in RAM, or memory-mapped under the head's ``path`` for
vocabularies bigger than RAM.

Saving
------
``model.save`` / ``save_weights`` store an in-RAM head's weights, biases and optimizer slots
with the model's other weights, and its counters (step, sampler stream, optimizer step
counts). A memory-mapped head is checkpointed instead, and the file refers to its store;
loading it back is accepted only by the same store at the same step. ``get_config`` records
the head's configuration (for a memory-mapped head, its path), so ``keras.models.load_model``
rebuilds the layer.

Limits
------
TensorFlow backend only (the kernels are reached through ``tf.numpy_function``, which JAX's
and PyTorch's backends cannot trace); no XLA (``jit_compile`` is turned off for a model that
holds this layer); one replica (the head lives in this process). The incoming gradient must
be the same for every example (it is under ``fit``: the layer's own mean or sum).

Importing this module needs Keras 3 with TensorFlow (``pip install 'fastsampled[tensorflow]'``);
nothing else in fastsampled imports them.
"""
try:
    import keras
    import tensorflow as tf
except ImportError as e:  # TensorFlow and Keras are optional extras
    if e.name in ("keras", "tensorflow"):
        raise ImportError(
            "fastsampled.keras needs Keras 3 and TensorFlow, optional extras of fastsampled: "
            "pip install 'fastsampled[tensorflow]'") from e
    import os
    raise ImportError(  # Keras is there, but the backend it was asked for did not load
        f"Keras could not be imported ({e}) with KERAS_BACKEND="
        f"{os.environ.get('KERAS_BACKEND')!r}; fastsampled.keras runs on Keras's TensorFlow "
        "backend (set KERAS_BACKEND=tensorflow)") from e

import collections
import itertools
import json
import math
import threading

import numpy as np

from . import _headstate
from ._headinit import optimizer_from_record
from .head import SampledSoftmaxHead

__all__ = ["SampledSoftmax", "TopK"]

_KERAS_VERSION = getattr(keras, "__version__", None)
if isinstance(_KERAS_VERSION, str) and int(_KERAS_VERSION.split(".")[0]) < 3:
    raise ImportError(f"fastsampled.keras needs Keras 3, found keras {_KERAS_VERSION}")

_STATE_FORMAT = "fastsampled.keras.SampledSoftmax"
_EXTRA = "fastsampled_state"
_TF_DTYPES = {np.dtype(np.float32): tf.float32, np.dtype(np.float64): tf.float64}
# forward passes whose backward has not run yet (a forward under training=True without a
# tape never gets one): only the newest are kept
_MAX_PENDING = 16


def _check_backend():
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"fastsampled.keras.SampledSoftmax runs on Keras's TensorFlow backend; this Keras "
            f"uses {keras.backend.backend()!r} (set KERAS_BACKEND=tensorflow). With PyTorch, "
            "use fastsampled.torch.SampledSoftmaxLoss")


def _check_head(head):
    _check_backend()
    if not isinstance(head, SampledSoftmaxHead):
        raise TypeError(f"head must be a fastsampled.SampledSoftmaxHead, got "
                        f"{type(head).__name__}")


def _check_dim(shape, head):
    if shape[-1] is not None and int(shape[-1]) != head.dim:
        raise ValueError(f"the hidden layer has {shape[-1]} units but the head's dim is "
                         f"{head.dim}")


def _as_hidden(hidden, head):
    hidden = tf.convert_to_tensor(hidden)
    dtype = _TF_DTYPES[head.dtype]
    return hidden if hidden.dtype == dtype else tf.cast(hidden, dtype)


@keras.saving.register_keras_serializable(package="fastsampled")
class SampledSoftmax(keras.layers.Layer):
    """A :class:`~fastsampled.SampledSoftmaxHead` as a Keras layer: the model's output layer
    and its loss in one (see the module docstring).

    Parameters
    ----------
    head : SampledSoftmaxHead
        The output layer: weights, biases, sampler, loss (sampled softmax or NCE) and sparse
        optimizer, in RAM or memory-mapped. The layer refers to it (no copy).
    **kwargs
        Keras layer arguments (``name``, ...).

    Examples
    --------
    >>> import numpy as np, keras, fastsampled as fs
    >>> from fastsampled.keras import SampledSoftmax
    >>> head = fs.SampledSoftmaxHead(1000, 16, num_sampled=20, seed=0)
    >>> x = keras.Input((8,)); y = keras.Input((), dtype="int64")
    >>> body = keras.layers.Dense(16)
    >>> model = keras.Model([x, y], SampledSoftmax(head)([body(x), y]))
    >>> model.compile(optimizer="sgd")
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(64, 8)).astype("float32"); Y = rng.integers(0, 1000, 64)
    >>> _ = model.fit([X, Y], batch_size=32, epochs=1, verbose=0)
    >>> head.step                                  # two batches, two head steps
    2
    """

    def __init__(self, head, **kwargs):
        _check_head(head)
        super().__init__(**kwargs)
        self.head = head
        self.supports_jit = False           # tf.numpy_function: no XLA
        self._fs_pending = collections.OrderedDict()
        self._fs_tokens = itertools.count(1)
        self._fs_lock = threading.Lock()

    # ------------------------------------------------------------------ Keras plumbing
    def build(self, input_shape):
        _check_dim(input_shape[0], self.head)
        super().build(input_shape)

    def compute_output_spec(self, inputs, training=None):
        return keras.KerasTensor(inputs[0].shape[:1], dtype=self.head.dtype.name)

    def call(self, inputs, training=None):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError("call SampledSoftmax on [hidden, labels]; for the top-k classes "
                             "of hidden alone, use fastsampled.keras.TopK(head, k)")
        hidden, labels = inputs
        hidden = _as_hidden(hidden, self.head)
        labels = tf.cast(labels, tf.int64)
        losses = self._train_losses(hidden, labels) if training else \
            self._exact_losses(hidden, labels)
        total = tf.reduce_sum(losses)
        self.add_loss(total if self.head.reduction == "sum" else
                      total / tf.cast(tf.shape(losses)[0], total.dtype))
        return losses

    # ------------------------------------------------------------------ training
    def _train_losses(self, hidden, labels):
        dtype = hidden.dtype

        @tf.custom_gradient
        def losses(hidden):
            loss, dx, token = tf.numpy_function(self._forward, [hidden, labels],
                                                [dtype, dtype, tf.int64], stateful=True,
                                                name="fastsampled_forward")
            loss.set_shape(hidden.shape[:1])
            dx.set_shape(hidden.shape)

            def grad(dy):
                out = tf.numpy_function(self._backward, [token, tf.cast(dy, dtype), dx],
                                        dtype, stateful=True, name="fastsampled_backward")
                out.set_shape(hidden.shape)
                return out

            return loss, grad

        return losses(hidden)

    def _forward(self, hidden, labels):
        """Sample, loss and every gradient of one step (nothing updated yet)."""
        losses, grads = self.head.loss_and_grads(np.ascontiguousarray(hidden), labels,
                                                 reduction="none")
        with self._fs_lock:
            token = next(self._fs_tokens)
            self._fs_pending[token] = (grads, self.head.step)
            while len(self._fs_pending) > _MAX_PENDING:
                self._fs_pending.popitem(last=False)
        return losses.astype(self.head.dtype, copy=False), grads.inputs, np.int64(token)

    def _backward(self, token, dy, dx):
        """Apply the step's update, scaled by the incoming gradient; return d hidden."""
        with self._fs_lock:
            entry = self._fs_pending.pop(int(token), None)
        if entry is None:
            raise RuntimeError("the head's gradient for this forward pass was already applied "
                               "(or dropped); run the forward pass again")
        grads, step = entry
        if step != self.head.step:
            raise RuntimeError(f"the head was updated since this forward pass (step {step} -> "
                               f"{self.head.step}); run the forward pass again")
        flat = dy.reshape(-1)
        scale = float(flat[0]) if flat.size else 0.0
        if flat.size and not np.all(flat == flat[0]):
            raise ValueError(
                "SampledSoftmax back-propagates only a gradient that is the same for every "
                "example (the layer's own mean or sum, as under fit); the head's kernels "
                "return the gradients of the summed loss. To drop examples, pass only the rows "
                "you want")
        if not math.isfinite(scale):
            raise FloatingPointError(f"the gradient reaching SampledSoftmax is {scale}; nothing "
                                     "was applied to the head")
        if scale != 1.0:
            s = grads.weights.dtype.type(scale)
            grads.weights *= s
            grads.biases *= s
        self.head.apply_grads(grads)
        return dx * dx.dtype.type(scale)       # a scalar of dx's dtype keeps its dtype

    # ------------------------------------------------------------------ inference
    def _exact_losses(self, hidden, labels):
        def run(x, y):
            return self.head.exact_loss(np.ascontiguousarray(x), y, reduction="none").astype(
                self.head.dtype, copy=False)
        out = tf.numpy_function(run, [hidden, labels], hidden.dtype, stateful=False,
                                name="fastsampled_exact_loss")
        out.set_shape(hidden.shape[:1])
        return tf.stop_gradient(out)

    # ------------------------------------------------------------------ saving
    def get_config(self):
        config = super().get_config()
        head = self.head
        config.update(head=_head_spec(head))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(_head_from_spec(config.pop("head")), **config)

    def save_own_variables(self, store):
        head = self.head
        if head.path is not None and getattr(head, "_mode", "r+") != "r":
            head.checkpoint()           # the reference and the store agree from here on
        extra = _headstate.describe(head, _STATE_FORMAT)
        store[_EXTRA] = np.frombuffer(json.dumps(extra).encode(), np.uint8)
        if head.path is None:
            for name, arr in _headstate.head_arrays(head).items():
                store[name] = arr

    def load_own_variables(self, store):
        head = self.head
        if _EXTRA not in store:
            raise ValueError(f"the saved weights of layer {self.name!r} hold no fastsampled "
                             "head state")
        try:
            extra = json.loads(bytes(np.asarray(store[_EXTRA], np.uint8)).decode())
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"layer {self.name!r}: the saved head state is not readable") from e
        problem = _headstate.check_description(head, extra, _STATE_FORMAT, "saved state")
        arrays = {}
        if problem is None and extra["store"] is not None:
            problem = _headstate.check_store_reference(head, extra, "saved state")
        elif problem is None and head.path is not None:
            problem = (f"the saved state holds in-RAM weights, but this head is memory-mapped "
                       f"at {head.path}; its rows are not overwritten from a weights file")
        elif problem is None:
            for name, arr in _headstate.head_arrays(head).items():
                if name not in store:
                    problem = f"the saved state has no {name!r}"
                    break
                src = np.asarray(store[name])
                if src.shape != arr.shape or src.dtype != arr.dtype:
                    problem = (f"{name}: shape {src.shape} {src.dtype} saved, {arr.shape} "
                               f"{arr.dtype} in the head")
                    break
                arrays[name] = src
        if problem is not None:
            raise ValueError(f"layer {self.name!r}: {problem}; nothing was loaded")
        _headstate.restore(head, extra, arrays)
        with self._fs_lock:
            self._fs_pending.clear()       # computed against the weights just replaced


@keras.saving.register_keras_serializable(package="fastsampled")
class TopK(keras.layers.Layer):
    """The exact top-``k`` classes of a :class:`~fastsampled.SampledSoftmaxHead` and their
    logits, as a Keras layer: ``ids, scores = TopK(head, k)(hidden)`` (int64 and the head's
    dtype, shape (batch, k), best first; ``SampledSoftmaxHead.predict``). It shares the head
    of the :class:`SampledSoftmax` layer that trains it, and saves nothing of it.

    Examples
    --------
    >>> import numpy as np, keras, fastsampled as fs
    >>> from fastsampled.keras import TopK
    >>> head = fs.SampledSoftmaxHead(1000, 16, num_sampled=20, seed=0)
    >>> x = keras.Input((16,))
    >>> model = keras.Model(x, TopK(head, k=3)(x))
    >>> ids, scores = model.predict(np.ones((2, 16), "float32"), verbose=0)
    >>> ids.shape, str(ids.dtype)
    ((2, 3), 'int64')
    """

    def __init__(self, head, k=10, **kwargs):
        _check_head(head)
        super().__init__(**kwargs)
        k = int(k)
        if not 1 <= k <= head.num_classes:
            raise ValueError(f"k must be in [1, num_classes={head.num_classes}], got {k}")
        self.head, self.k = head, k
        self.supports_jit = False

    def build(self, input_shape):
        _check_dim(input_shape, self.head)
        super().build(input_shape)

    def compute_output_spec(self, inputs):
        batch = inputs.shape[:1]
        return [keras.KerasTensor(batch + (self.k,), dtype="int64"),
                keras.KerasTensor(batch + (self.k,), dtype=self.head.dtype.name)]

    def call(self, hidden):
        hidden = _as_hidden(hidden, self.head)

        def run(x):
            return self.head.predict(np.ascontiguousarray(x), self.k)

        ids, scores = tf.numpy_function(run, [hidden], [tf.int64, hidden.dtype],
                                        stateful=False, name="fastsampled_top_k")
        ids.set_shape(hidden.shape[:1] + (self.k,))
        scores.set_shape(hidden.shape[:1] + (self.k,))
        return [ids, scores]

    def get_config(self):
        config = super().get_config()
        config.update(k=self.k, head=_head_spec(self.head))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(_head_from_spec(config.pop("head")), **config)


def _head_spec(head):
    return {"path": None if head.path is None else str(head.path.resolve()),
            "config": head.config()}


def _head_from_spec(spec):
    if spec.get("path") is not None:
        return SampledSoftmaxHead.load(spec["path"])
    return _head_from_config(spec["config"])


def _head_from_config(cfg):
    """A new in-RAM head with the configuration ``head.config()`` returned (its weights come
    from the saved arrays)."""
    if cfg.get("sampler") == "unigram":
        raise ValueError("an in-RAM head with sampler='unigram' cannot be rebuilt from a Keras "
                         "config (its class counts are not part of it): build the layer "
                         "around your head and call model.load_weights")
    return SampledSoftmaxHead(
        cfg["num_classes"], cfg["dim"], sampler=cfg["sampler"], distortion=cfg["distortion"],
        loss=cfg["loss"], num_sampled=cfg["num_sampled"], num_true=cfg["num_true"],
        optimizer=optimizer_from_record(cfg["optimizer"]), reduction=cfg["reduction"],
        remove_accidental_hits=cfg["remove_accidental_hits"],
        subtract_log_q=cfg["subtract_log_q"], seed=cfg["seed"], dtype=cfg["dtype"])
