"""A new ``SampledSoftmaxHead``'s parts made from its constructor's arguments (private): the
optimizer (by name or an instance) and its record in ``head.json``, the unigram counts, the
candidate sampler, and the initial parameters of a head in RAM (a memory-mapped head's are
``_headfiles.create_stores``).
"""
import numpy as np

from . import _memory
from ._headfiles import OPTIMIZERS
from .optimizers import SGD, Adagrad, Adam
from .samplers import FixedUnigramSampler, LogUniformSampler, UniformSampler

__all__ = ["make_optimizer", "optimizer_config", "check_counts", "make_sampler",
           "ram_params", "init_ram_weights"]


def make_optimizer(optimizer, lr):
    """``(optimizer, its record)`` for the head's ``optimizer`` and ``lr`` arguments: a name
    (with ``lr`` or that optimizer's default) or an SGD / Adagrad / Adam instance."""
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {tuple(OPTIMIZERS)} or an optimizer "
                             f"instance, got {optimizer!r}")
        defaults = {"sgd": 0.5, "adagrad": 0.1, "adam": 1e-3}
        optimizer = OPTIMIZERS[optimizer](lr=defaults[optimizer] if lr is None else lr)
    elif lr is not None:
        raise ValueError("lr is only used when optimizer is given by name")
    return optimizer, optimizer_config(optimizer)


def optimizer_config(opt):
    """The optimizer as ``head.json`` records it: its name and hyper-parameters."""
    name = {SGD: "sgd", Adagrad: "adagrad", Adam: "adam"}.get(type(opt))
    if name is None:
        raise TypeError(f"optimizer must be 'sgd', 'adagrad', 'adam' or an SGD/Adagrad/Adam "
                        f"instance, got {opt!r}")
    return {"name": name, **opt.get_config()}


def optimizer_from_record(record):
    """The optimizer a head's ``optimizer`` record (name and hyper-parameters, as
    :func:`optimizer_config` writes it) describes."""
    name = record["name"]
    hypers = {k: v for k, v in record.items() if k != "name"}
    return OPTIMIZERS[name](**hypers)


def check_counts(sampler, counts, num_classes):
    """The class counts as float64 ``(num_classes,)`` for ``sampler="unigram"``, else None."""
    if sampler == "unigram":
        if counts is None:
            raise ValueError("sampler='unigram' needs counts (class frequencies)")
        c = np.asarray(counts, dtype=np.float64).reshape(-1)
        if c.size != num_classes:
            raise ValueError(f"counts has {c.size} entries, num_classes is {num_classes}")
        return c
    if counts is not None:
        raise ValueError(f"counts is only used with sampler='unigram', not {sampler!r}")
    return None


def make_sampler(kind, num_classes, seed, counts, distortion):
    """The head's candidate sampler of ``kind`` (one of ``_headfiles.SAMPLERS``)."""
    if kind == "log_uniform":
        return LogUniformSampler(num_classes, seed=seed)
    if kind == "uniform":
        return UniformSampler(num_classes, seed=seed)
    return FixedUnigramSampler(num_classes, unigrams=counts, distortion=distortion, seed=seed)


def ram_params(num_classes, dim, dtype, init, scale, seed, optimizer):
    """A new in-RAM head's ``(weights, biases, (weights' state, biases' state))``: weights
    from ``init_ram_weights``, biases at zero."""
    weights = init_ram_weights(num_classes, dim, dtype, init, scale, seed)
    biases = _memory.full(num_classes, 0, dtype)
    return weights, biases, (optimizer.init_state(weights), optimizer.init_state(biases))


def init_ram_weights(V, D, dtype, init, scale, seed, chunk=1 << 22):
    """Initial in-RAM weights (V, D): N(0, scale), U(-scale, scale) or zeros, seeded, on huge
    pages when large (see ``_memory``), generated in chunks of the one generator so that no
    float64 temporary of the whole matrix exists (the values are those of one big draw)."""
    w = _memory.full((V, D), 0, dtype) if init == "zeros" else _memory.empty((V, D), dtype)
    if init == "zeros":
        return w
    rng = np.random.default_rng(seed)
    flat = w.reshape(-1)
    for lo in range(0, flat.size, chunk):
        part = flat[lo:lo + chunk]
        if init == "normal":
            rng.standard_normal(out=part, dtype=dtype)
            part *= dtype.type(scale)
        else:
            part[...] = rng.uniform(-scale, scale, part.size)
    return w
