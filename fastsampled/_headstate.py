"""A head's state as a framework saves it (private): one home for what the framework adapters
(``fastsampled.torch``'s ``state_dict``, ``fastsampled.keras``'s weight files) put beside a
model's other weights, and for the checks made before any of it is written back.

An in-RAM head contributes its arrays (weights, biases, optimizer slots) and a description
(configuration, step, sampler and optimizer counters). A memory-mapped head contributes only
the description, which refers to its store: the store is checkpointed when the state is taken,
and a state is accepted back only by the same store at the same step (its rows cannot be
rewound, and are never copied into a framework's file).
"""
import pathlib

import numpy as np

__all__ = ["describe", "head_arrays", "check_description", "check_store_reference",
           "restore"]

STATE_VERSION = 1
# head.json fields a state must agree on to be loadable into a head
STRUCTURE = ("num_classes", "dim", "dtype", "sampler", "loss", "num_true")


def describe(head, fmt):
    """The description of ``head``'s state (a dict of JSON values), in the format ``fmt``."""
    return {"format": fmt, "version": STATE_VERSION, "config": head.config(),
            "optimizer_t": [None if st is None else st.t for st in head.optimizer_states],
            "store": None if head.path is None else str(head.path.resolve())}


def head_arrays(head, weight="weight", bias="bias"):
    """``{name: ndarray}`` of an in-RAM head: weights, biases and optimizer slots (the
    head's own arrays, not copies)."""
    out = {weight: head.weights, bias: head.biases}
    for name, st in zip((weight, bias), head.optimizer_states):
        for slot, arr in st.slots.items():
            out[f"{name}_{slot}"] = arr
    return out


def check_description(head, extra, fmt, what):
    """None when ``extra`` describes a head like ``head`` in format ``fmt``, else what
    differs (``what`` names the state in the message)."""
    if not isinstance(extra, dict) or extra.get("format") != fmt:
        return f"not a {fmt} state"
    if extra.get("version") != STATE_VERSION:
        return f"unknown version {extra.get('version')!r}"
    cfg, mine = extra.get("config"), head.config()
    if not isinstance(cfg, dict) or not isinstance(extra.get("optimizer_t"), list):
        return "the description has no head configuration"
    diff = [f"{k} {cfg.get(k)!r} (this head: {mine[k]!r})" for k in STRUCTURE
            if cfg.get(k) != mine[k]]
    if (cfg.get("optimizer") or {}).get("name") != mine["optimizer"]["name"]:
        diff.append(f"optimizer {(cfg.get('optimizer') or {}).get('name')!r} (this head: "
                    f"{mine['optimizer']['name']!r})")
    if not isinstance(cfg.get("step"), int) or cfg["step"] < 0:
        diff.append(f"step {cfg.get('step')!r}")
    return (f"the {what}'s head differs: " + ", ".join(diff)) if diff else None


def check_store_reference(head, extra, what):
    """None when ``head`` is the memory-mapped head ``extra`` refers to, at its step."""
    store = pathlib.Path(extra["store"])
    if head.path is None:
        return (f"the {what} refers to the memory-mapped head at {store} (its rows are not in "
                f"the {what}); build the layer around SampledSoftmaxHead.load({str(store)!r}) "
                "to use it")
    if head.path.resolve() != store.resolve():
        return f"the {what} refers to the store {store}, this head's is {head.path}"
    step = int(extra["config"]["step"])
    if head.step != step:
        return (f"the store {store} is at step {head.step}, the {what} was taken at step "
                f"{step}: a memory-mapped head's rows cannot be rewound")
    return None


def restore(head, extra, arrays=None):
    """Write a checked state back: ``arrays`` (``{name: ndarray}`` matching
    :func:`head_arrays`, already checked for shape and dtype) into the head's arrays, then its
    counters."""
    mine = head_arrays(head) if arrays else {}
    for name, src in (arrays or {}).items():
        np.copyto(mine[name], src)
    cfg = extra["config"]
    head.step = int(cfg["step"])
    head.sampler.calls = int(cfg.get("sampler_calls", cfg["step"]))
    for st, t in zip(head.optimizer_states, extra["optimizer_t"]):
        if st is not None and t is not None:
            st.t = int(t)
