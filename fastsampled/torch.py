"""PyTorch adapter: a :class:`~fastsampled.SampledSoftmaxHead` as the output layer of a torch model.

Everything before the output layer stays in PyTorch; the softmax over millions of classes is
handed to fastsampled's kernels::

    head = fs.SampledSoftmaxHead(num_classes, 128, num_sampled=64, optimizer="adam", lr=0.05)
    loss_fn = SampledSoftmaxLoss(head)
    loss = loss_fn(body(batch), labels)     # (B, 128) float32 CPU tensor, (B,) int64 labels
    loss.backward()                         # d_hidden flows into the body; the head updates
    body_optimizer.step()

When the head's update happens (``update=``)
---------------------------------------------
The forward pass samples the candidates and computes the loss *and every gradient* in one
fused kernel (so the backward pass costs nothing but the update), keeping the head's sparse
gradients on the autograd graph.

``update="backward"`` (default)
    The backward pass applies the head's own sparse optimizer to the rows the step touched, at
    once, scaled by the incoming gradient (``(loss / 4).backward()`` makes a quarter of the
    update). One ``loss.backward()`` is one head step, whatever the body's optimizer does.
    Cheapest, and right for the plain ``zero_grad / backward / step`` loop.
``update="step"``
    The backward pass only *accumulates* the head's sparse gradients (summed over every
    backward pass since the last update, like ``.grad``); :meth:`SampledSoftmaxLoss.step`
    applies them as one head step and :meth:`SampledSoftmaxLoss.zero_grad` discards them.
    :meth:`SampledSoftmaxLoss.attach` hooks ``step`` onto a torch optimizer's ``step()``.
    Use it for gradient accumulation (several backward passes, one update of the body and of
    the head together) or when a step may be skipped.

Either way a forward whose backward never runs changes nothing but the sampler's stream, and
only a backward pass can change the head. A graph kept with ``retain_graph=True`` may be
back-propagated again while the head has not been updated since its forward (so with
``update="step"``, before ``step()``): the gradients are recomputed from the saved inputs and
candidates and accumulate again, as torch accumulates ``.grad``. With ``update="backward"`` the
first backward has already updated the head, and a second one raises ``RuntimeError`` rather
than apply a gradient of weights that no longer exist. ``create_graph=True`` (double backward)
is refused: the head's gradient is not differentiable.

Modes and grad mode
-------------------
* ``train()`` with grad enabled and ``hidden.requires_grad``: the sampled loss with its
  gradients, as above.
* ``train()`` under ``torch.no_grad()`` / ``inference_mode()`` (or a ``hidden`` that needs no
  gradient): the sampled loss only (no gradients computed); it draws candidates (the stream
  advances) but updates nothing.
* ``eval()``: the exact full-softmax cross-entropy over all classes (as
  ``SampledSoftmaxHead.evaluate``; O(batch x num_classes x dim), no (batch, num_classes)
  matrix), with no sampling, no gradient and no update, with or without ``no_grad``.

Zero copy
---------
A float CPU contiguous ``hidden`` in the head's dtype is read in place (``Tensor.numpy()``),
and the gradient w.r.t. ``hidden`` is handed to autograd as a tensor over the kernel's own
output buffer (``torch.from_numpy``; scaled in place when the incoming gradient is not 1):
autograd owns it from then on, and may keep it as a leaf's ``.grad``. Other dtypes, devices,
layouts or non-contiguous tensors are refused (``TypeError`` / ``ValueError``) rather than
copied behind your back.

state_dict
----------
An in-RAM head contributes ``weight`` (num_classes, dim), ``bias`` (num_classes,) and its
optimizer slots (``weight_m``, ``bias_v``, ``weight_accumulator``, ...) as tensors *sharing
memory* with the head, plus ``_extra_state`` (config, step counter, sampler stream position,
optimizer step counts). ``load_state_dict`` copies them back into the head's arrays in place.
A memory-mapped head contributes only ``_extra_state``, which *refers* to its store (path) and
records the step; ``state_dict()`` checkpoints the store first (flush, fsync, ``head.json``),
and ``load_state_dict`` accepts the reference only for the same store at the same step (its
rows cannot be rewound, and are never copied into the state dict). The pending gradients of
``update="step"`` are not saved (neither is ``.grad`` in torch).

Threads
-------
torch and Numba's OpenMP threading layer run on one OpenMP runtime: both bind libgomp's
symbols to the copy loaded first -- torch's bundled one when torch is imported before Numba's
thread pool starts, as in a training script (checked with ``LD_DEBUG=bindings``: Numba's
``omppool`` and ``libtorch_cpu`` both bind ``GOMP_parallel`` to ``torch/lib/libgomp.so.1``). The
body's ops and the head's kernels take turns on the same cores, and idle workers spin for a
while after each parallel region. The adapter changes no thread settings: the defaults were
the fastest of the settings tried; ``OMP_WAIT_POLICY=PASSIVE``, one torch thread, one Numba
thread and Numba's workqueue layer were all slower (docs/performance.md#pytorch-adapter).

Importing this module needs torch (``pip install 'fastsampled[torch]'``); nothing else in
fastsampled imports it.
"""
try:
    import torch
except ImportError as e:  # torch is an optional extra
    raise ImportError(
        "fastsampled.torch needs PyTorch, which is an optional extra of fastsampled: "
        "pip install 'fastsampled[torch]' (on a CPU-only machine, a CPU build such as "
        "pip install torch==2.13.0)") from e

import math

import numpy as np

from . import _headstate
from .head import SampledSoftmaxHead
from .losses import SparseGrads

__all__ = ["SampledSoftmaxLoss"]

_UPDATES = ("backward", "step")
_REDUCTIONS = ("mean", "sum", "none")
_STATE_FORMAT = "fastsampled.torch.SampledSoftmaxLoss"
_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
_EXTRA = "_extra_state"


# --------------------------------------------------------------------------- arguments

def _hidden_array(hidden, head, name="hidden"):
    """A zero-copy numpy view of ``hidden`` after checking it is what the head reads."""
    if not isinstance(hidden, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(hidden).__name__}")
    if hidden.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {hidden.layout}")
    if hidden.device.type != "cpu":
        raise ValueError(f"{name} must be on the CPU (fastsampled's kernels run there), got "
                         f"device {hidden.device}; move it with {name}.cpu()")
    want = _TORCH_DTYPES[head.dtype]
    if hidden.dtype != want:
        raise TypeError(f"{name} must have the head's dtype {want}, got {hidden.dtype} "
                        f"(cast it with {name}.to({want}), or build the head with "
                        f"dtype={'float64' if want == torch.float32 else 'float32'})")
    if hidden.dim() != 2 or hidden.shape[1] != head.dim:
        raise ValueError(f"{name} must have shape (batch, {head.dim}), got "
                         f"{tuple(hidden.shape)}")
    if hidden.shape[0] == 0:
        raise ValueError(f"{name} must have at least one row")
    if not hidden.is_contiguous():
        raise ValueError(f"{name} must be contiguous (it is read in place, not copied), got "
                         f"strides {hidden.stride()} for shape {tuple(hidden.shape)}; pass "
                         f"{name}.contiguous()")
    return hidden.detach().numpy()


def _labels_array(labels):
    """Labels as a numpy integer array (a view where possible); range and shape are the head's
    to check."""
    if isinstance(labels, torch.Tensor):
        if labels.device.type != "cpu":
            raise ValueError(f"labels must be on the CPU, got device {labels.device}")
        if labels.layout != torch.strided:
            raise TypeError(f"labels must be a dense tensor, got layout {labels.layout}")
        if labels.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"labels must be torch.int64 (or int32) class ids, got "
                            f"{labels.dtype}")
        return labels.detach().numpy()
    arr = np.asarray(labels)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"labels must be integer class ids, got dtype {arr.dtype}")
    return arr


def _as_tensor(value, dtype):
    """A loss as a tensor: a 0-dim one of numpy ``dtype`` for a float, a zero-copy one for an
    array (``torch.from_numpy`` of a 0-dim array is several times cheaper than
    ``torch.tensor(value)`` right after a step's kernels: docs/performance.md#pytorch-adapter)."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    return torch.from_numpy(np.array(value, dtype))


class _Call:
    """The non-tensor arguments of one forward, passed to ``Function.apply`` as one object:
    every argument of ``apply`` costs something (pytree unwrapping, a gradient slot to fill
    with None). Together with the cheaper loss tensor this trims the adapter's per-step
    overhead slightly (docs/performance.md#pytorch-adapter)."""
    __slots__ = ("module", "batch", "sampled_values")

    def __init__(self, module, batch, sampled_values):
        self.module, self.batch, self.sampled_values = module, batch, sampled_values


def _add_sparse(a, b):
    """The sum of two sparse gradients (sorted unique ids; rows of equal ids added)."""
    ids = np.union1d(a.ids, b.ids)
    w = np.zeros((ids.size,) + a.weights.shape[1:], a.weights.dtype)
    bias = np.zeros(ids.size, a.biases.dtype)
    for g in (a, b):
        at = np.searchsorted(ids, g.ids)       # g.ids unique: no two rows land on one
        w[at] += g.weights
        bias[at] += g.biases
    return SparseGrads(None, ids, w, bias, None)


# --------------------------------------------------------------------------- autograd

class _HeadLossFunction(torch.autograd.Function):
    """loss = head's sampled loss of ``hidden``; its backward hands the gradient computed in
    the forward pass to autograd and the head's sparse gradient to the loss module."""

    @staticmethod
    def forward(ctx, hidden, call):
        module = call.module
        head = module.head
        loss, grads = head.loss_and_grads(call.batch, reduction=module.reduction,
                                          sampled_values=call.sampled_values)
        ctx.module, ctx.grads, ctx.lab = module, grads, call.batch.labels
        ctx.sampled_values = grads.sampled_values
        ctx.head_step = head.step           # the weights this gradient belongs to
        ctx.save_for_backward(hidden)       # for a retained graph's second backward
        return _as_tensor(loss, head.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        if torch.is_grad_enabled():             # backward(create_graph=True)
            raise RuntimeError(
                "SampledSoftmaxLoss cannot be differentiated twice (create_graph=True): the "
                "head's gradient comes from its kernels, not from differentiable torch ops; "
                "nothing was applied to the head")
        module = ctx.module
        if grad_out.dim() == 0:
            scale = float(grad_out)
        else:                                   # reduction="none": one entry per example
            flat = grad_out.reshape(-1)
            scale = float(flat[0])
            if not bool((flat == flat[0]).all()):
                raise RuntimeError(
                    "SampledSoftmaxLoss(reduction='none') back-propagates only a gradient that "
                    "is the same for every example (loss.sum(), loss.mean(), c * loss.sum()): "
                    "the head's kernels return the gradients of the summed loss, not one per "
                    "example. To drop examples (padding), pass only the rows you want: "
                    "loss_fn(hidden[mask], labels[mask])")
        if not math.isfinite(scale):
            raise FloatingPointError(f"the gradient reaching SampledSoftmaxLoss is {scale}; "
                                     "nothing was applied to the head")
        g, ctx.grads = ctx.grads, None          # handed over: autograd may keep the buffer
        if g is None:                           # backward again through a retained graph
            g = _HeadLossFunction._recompute(ctx)
        if scale != 1.0:                        # the buffers are ours to scale in place
            g.inputs *= g.inputs.dtype.type(scale)
            g.weights *= g.weights.dtype.type(scale)
            g.biases *= g.biases.dtype.type(scale)
        module._receive(g)
        return torch.from_numpy(g.inputs), None

    @staticmethod
    def _recompute(ctx):
        """The forward's gradients again (same hidden, labels, candidates and weights)."""
        head = ctx.module.head
        if head.step != ctx.head_step:
            raise RuntimeError(
                f"backward through this SampledSoftmaxLoss output again, but the head has "
                f"been updated since its forward (step {ctx.head_step} -> {head.step}; "
                "update='backward' applies the update in the first backward), so the "
                "forward's gradient no longer exists; run the forward again")
        (hidden,) = ctx.saved_tensors           # raises if hidden was modified in place
        return head.loss_and_grads(hidden.detach().numpy(), ctx.lab,
                                   reduction=ctx.module.reduction,
                                   sampled_values=ctx.sampled_values)[1]


# --------------------------------------------------------------------------- module

class SampledSoftmaxLoss(torch.nn.Module):
    """A :class:`~fastsampled.SampledSoftmaxHead` as a torch loss module (the model's output
    layer and its loss in one).

    Parameters
    ----------
    head : SampledSoftmaxHead
        The output layer: weights, biases, sampler, loss (sampled softmax or NCE) and sparse
        optimizer, in RAM or memory-mapped. The module refers to it (no copy); its own
        ``reduction`` is ignored here (``train_step`` still uses it).
    reduction : {"mean", "sum", "none"}
        Of the per-example losses, as in torch's losses. "none" returns a (batch,) tensor whose
        backward must be uniform over the batch (``loss.sum().backward()``).
    update : {"backward", "step"}
        When the head's sparse optimizer updates its rows: in every backward pass, or on
        :meth:`step` (see the module docstring).

    Examples
    --------
    >>> import torch, fastsampled as fs
    >>> from fastsampled.torch import SampledSoftmaxLoss
    >>> head = fs.SampledSoftmaxHead(1000, 16, num_sampled=20, seed=0)
    >>> loss_fn = SampledSoftmaxLoss(head)
    >>> hidden = torch.randn(8, 16, requires_grad=True)
    >>> loss = loss_fn(hidden, torch.arange(8))
    >>> loss.backward()                         # the head updated its rows: one step
    >>> hidden.grad.shape, head.step
    (torch.Size([8, 16]), 1)
    >>> ids, scores = loss_fn.predict(hidden, k=3)
    >>> ids.shape, ids.dtype
    (torch.Size([8, 3]), torch.int64)
    """

    def __init__(self, head, reduction="mean", update="backward"):
        super().__init__()
        if not isinstance(head, SampledSoftmaxHead):
            raise TypeError(f"head must be a fastsampled.SampledSoftmaxHead, got "
                            f"{type(head).__name__}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        if update not in _UPDATES:
            raise ValueError(f"update must be one of {_UPDATES}, got {update!r}")
        self.head = head
        self.reduction = reduction
        self.update = update
        self._pending = None
        self.pending_backward_passes = 0

    def extra_repr(self):
        return f"{self.head!r}, reduction={self.reduction!r}, update={self.update!r}"

    # ------------------------------------------------------------------ forward
    def forward(self, hidden, labels, sampled_values=None):
        """The loss of a batch.

        Parameters
        ----------
        hidden : torch.Tensor of shape (batch, dim)
            CPU, contiguous, the head's dtype (float32 unless the head is float64).
        labels : torch.Tensor or array_like of int, shape (batch,) or (batch, num_true)
            Class ids in ``[0, num_classes)`` (int64 or int32).
        sampled_values : tuple, optional
            ``(sampled_candidates (num_sampled,), true_expected_count (batch, num_true),
            sampled_expected_count (num_sampled,))`` (numpy arrays) to use instead of
            drawing, e.g. to compare with another implementation; training mode only.

        Returns
        -------
        torch.Tensor
            0-dim (``reduction`` "mean"/"sum") or (batch,) ("none"), in ``hidden``'s dtype.
            With a ``grad_fn`` in training mode when grad is enabled and ``hidden`` requires
            it; without one otherwise (see the module docstring).
        """
        head = self.head
        batch = head.batch(_hidden_array(hidden, head), _labels_array(labels),
                           inputs_name="hidden")
        if not self.training:
            if sampled_values is not None:
                raise ValueError("sampled_values is used in training mode only; eval() "
                                 "computes the exact full-softmax loss")
            return self._reduce(head.exact_loss(batch, reduction="none"), head.dtype)
        if torch.is_grad_enabled() and hidden.requires_grad:
            return _HeadLossFunction.apply(hidden, _Call(self, batch, sampled_values))
        loss = head.loss(batch, reduction=self.reduction, sampled_values=sampled_values)
        return _as_tensor(loss, head.dtype)

    def _reduce(self, losses, dtype):
        """Per-example float64 ``losses`` reduced as ``reduction`` says, as a tensor."""
        if self.reduction == "none":
            return torch.from_numpy(losses.astype(self.head.dtype))
        total = float(losses.sum(dtype=np.float64))
        return _as_tensor(total / losses.size if self.reduction == "mean" else total, dtype)

    # ------------------------------------------------------------------ the head's update
    def _receive(self, grads):
        """A backward pass's sparse gradient of the head: applied now or accumulated."""
        if self.update == "backward":
            self.head.apply_grads(grads)
            return
        self._pending = grads if self._pending is None else _add_sparse(self._pending, grads)
        self.pending_backward_passes += 1

    def step(self):
        """Apply the gradients accumulated since the last step as one head step
        (``update="step"``).

        Returns
        -------
        bool
            Whether anything was applied (False when no backward pass ran since the last
            step, and always with ``update="backward"``, which has already applied them).

        Raises
        ------
        FloatingPointError
            When an update is not finite; nothing is written and the gradients stay pending
            (``zero_grad()`` drops them).
        """
        if self._pending is None:
            return False
        self.head.apply_grads(self._pending)
        self._pending = None
        self.pending_backward_passes = 0
        return True

    def zero_grad(self, set_to_none=True):
        """Discard the head's pending gradients (``update="step"``); as ``Module.zero_grad``
        otherwise (this module has no parameters)."""
        self._pending = None
        self.pending_backward_passes = 0
        super().zero_grad(set_to_none)

    def attach(self, optimizer):
        """Make ``optimizer.step()`` also apply the head's pending gradients (:meth:`step`).

        Parameters
        ----------
        optimizer : torch.optim.Optimizer
            The body's optimizer (its ``register_step_post_hook``).

        Returns
        -------
        handle
            ``handle.remove()`` detaches again.
        """
        if self.update != "step":
            raise ValueError("attach() is for update='step'; with update='backward' every "
                             "backward pass has already applied the head's update")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got "
                            f"{type(optimizer).__name__}")
        return optimizer.register_step_post_hook(lambda opt, args, kwargs: self.step())

    # ------------------------------------------------------------------ inference
    def predict(self, hidden, k=10):
        """Exact top-k classes over all classes (``SampledSoftmaxHead.predict``).

        Parameters
        ----------
        hidden : torch.Tensor of shape (batch, dim)
        k : int

        Returns
        -------
        ids : torch.Tensor of int64, shape (batch, k)
            Best first (ties: smaller id first).
        scores : torch.Tensor of shape (batch, k)
            Their logits, in the head's dtype.
        """
        ids, scores = self.head.predict(_hidden_array(hidden, self.head), k)
        return torch.from_numpy(ids), torch.from_numpy(scores)

    def evaluate(self, hidden, labels, k=5):
        """Full-softmax loss, precision@1, precision@k and recall@k over all classes
        (``SampledSoftmaxHead.evaluate``); returns a dict of floats."""
        return self.head.evaluate(_hidden_array(hidden, self.head), _labels_array(labels), k)

    # ------------------------------------------------------------------ state_dict
    def _extra(self):
        return _headstate.describe(self.head, _STATE_FORMAT)

    def _arrays(self):
        """``{name: ndarray}`` of an in-RAM head: weights, biases and optimizer slots."""
        return _headstate.head_arrays(self.head)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        head = self.head
        if head.path is not None:
            if getattr(head, "_mode", "r+") != "r":
                head.checkpoint()       # the reference and the store agree from here on
        else:
            for name, arr in self._arrays().items():
                destination[prefix + name] = torch.from_numpy(arr)     # shares memory
        destination[prefix + _EXTRA] = self._extra()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        head = self.head
        ours = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if _EXTRA not in ours:
            missing_keys.append(prefix + _EXTRA)
            return
        extra = ours.pop(_EXTRA)
        problem = _headstate.check_description(head, extra, _STATE_FORMAT, "state dict")
        if problem is None and extra["store"] is not None:
            problem = _headstate.check_store_reference(head, extra, "state dict")
            arrays = {}
        elif problem is None:
            if head.path is not None:
                problem = (f"the state dict holds in-RAM weights, but this head is "
                           f"memory-mapped at {head.path}; its rows are not overwritten from "
                           "a state dict")
            arrays = self._arrays()
        if problem is not None:
            error_msgs.append(f"{prefix}{_EXTRA}: {problem}")
            return
        for name in ours:
            if name not in arrays:
                unexpected_keys.append(prefix + name)
        checked = {}
        for name, arr in arrays.items():
            if name not in ours:
                missing_keys.append(prefix + name)
                continue
            src = ours[name]
            if not isinstance(src, torch.Tensor):
                error_msgs.append(f"{prefix}{name}: expected a tensor, got "
                                  f"{type(src).__name__}")
            elif tuple(src.shape) != arr.shape or src.dtype != _TORCH_DTYPES[arr.dtype]:
                error_msgs.append(f"{prefix}{name}: shape {tuple(src.shape)} {src.dtype} in "
                                  f"the state dict, {arr.shape} {_TORCH_DTYPES[arr.dtype]} in "
                                  "the head")
            else:
                checked[name] = src
        if len(checked) != len(arrays):
            return                      # nothing written unless everything fits
        _headstate.restore(head, extra, {name: src.detach().cpu().numpy()
                                         for name, src in checked.items()})
        self._pending = None            # computed against the weights just replaced
        self.pending_backward_passes = 0
