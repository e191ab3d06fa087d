"""Benchmark fastsampled.torch: a PyTorch model's output layer as fastsampled's head vs PyTorch's.

Run::

    PYTHONPATH=/path/to/repo python bench/bench_torch.py [--quick] [--out DIR] [--wait-quiet S]

The model is the one of ``examples/torch_xc.py``: a bag of 64 tokens -> ``nn.EmbeddingBag(1024,
128, mode="sum")`` -> ``Linear(128, 256)`` -> ReLU -> ``Linear(256, 128)`` -> an output layer
over V classes, trained end to end; the body by ``torch.optim.Adam(lr=2e-3)``. B=1024, D=128,
S=64, float32, inputs and Zipf labels from ``SyntheticXC(V, 64)``. Output layers:

(a) ``fastsampled``: ``SampledSoftmaxLoss(SampledSoftmaxHead(V, 128, num_sampled=64,
    optimizer="adam", lr=0.05))``: sampled softmax, unique log-uniform candidates, lazy Adam,
    the head's update in the backward pass.
(b) ``torch sampled``: the idiomatic pure-PyTorch sampled softmax: output weights and biases in
    ``nn.Embedding(V, ., sparse=True)``, 64 log-uniform candidates drawn in torch by inverse CDF
    (with replacement, expected count S * p), label and candidate logits, accidental hits
    masked, log expected counts subtracted, ``F.cross_entropy``; ``torch.optim.SparseAdam``.
(c) ``full softmax``: ``nn.Linear(128, V)`` + ``F.cross_entropy`` over all classes,
    ``torch.optim.Adam``.

Sections:

1. Every (output layer, V) for V = 10^5, 10^6, 10^7 in a fresh process: median training step
   (body + output layer + both optimizers), steps/s, the process's peak RSS. What does not fit
   in the memory available is skipped with a note (the full softmax at 10^7 needs > 100 GB for
   its (B, V) logits and their gradients; its time is extrapolated from 10^6, not measured).
2. In one process per thread setting, at V=10^6, interleaved call by call, for lazy Adam
   (fastsampled) / SparseAdam (torch) and for SGD on both sides: (a) and (b) whole training
   steps; the output layer alone driven from torch (``loss_fn(hidden, y).backward()`` on a
   leaf ``hidden``, and (b)'s forward + backward + optimizer step); and ``head.train_step``
   called directly with numpy arrays. Reported: fastsampled's steps/s over (b)'s, for the
   whole training step and for the output layer alone, and the adapter's overhead (the head
   driven through torch over ``head.train_step``, minus 1). Thread settings:
   defaults; ``OMP_WAIT_POLICY=PASSIVE``; ``torch.set_num_threads(1)``;
   ``NUMBA_NUM_THREADS=1``; ``NUMBA_THREADING_LAYER=workqueue``; ``GOMP_SPINCOUNT=10000``;
   ``torch.set_flush_denormal(True)`` ("torch flush denormal": PyTorch computes subnormals by
   default, fastsampled flushes them as TensorFlow does, and on Intel cores they are slow; this
   gives torch the same treatment).
"""
import argparse
import json
import math
import os
import resource
import sys
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import (BUSY_OTHERS, arg_parser, child_report, disturbed, log,  # noqa: E402
                     machine_info, mem_available, out_dir_for, retry_if_busy, run_child,
                     section, timeit_many, wait_for_quiet, write_results)

B, D, S = 1024, 128, 64
FEATURES, BINS = 64, 16
KINDS = {"fs": "fastsampled head", "torch": "torch sampled softmax", "full": "full softmax"}
THREADS = {"default": {}, "passive": {"env": {"OMP_WAIT_POLICY": "PASSIVE"}},
           "torch 1 thread": {"torch_threads": 1},
           "numba 1 thread": {"env": {"NUMBA_NUM_THREADS": "1"}},
           "numba workqueue": {"env": {"NUMBA_THREADING_LAYER": "workqueue"}},
           "spin 10k": {"env": {"GOMP_SPINCOUNT": "10000"}},
           "torch flush denormal": {"flush_denormal": True}}

COLUMNS = ["case", "V", "threads", "opt", "median_ms", "p10_ms", "p90_ms", "reps", "steps_per_s",
           "peak_rss_GB", "value", "unit", "others_cpu", "disturbed"]

FULL = dict(V=[10**5, 10**6, 10**7], steps=200, max_seconds=60.0, full_steps={10**5: 10,
            10**6: 3}, ratio_V=10**6, ratio_rounds=40, ratio_seconds=120.0,
            ratio_opts=["adam", "sgd"], threads=["default"])   # --threads: the other settings
QUICK = dict(V=[10**4, 10**5], steps=30, max_seconds=8.0, full_steps={10**4: 3, 10**5: 2},
             ratio_V=10**5, ratio_rounds=6, ratio_seconds=12.0, ratio_opts=["adam", "sgd"],
             threads=["default"], in_process=True)


# --------------------------------------------------------------------------- models (child)

def _torch_models():
    """The output layers (b) and (c), defined once torch is imported (in a child)."""
    import torch
    import torch.nn.functional as F

    class TorchSampledSoftmax(torch.nn.Module):
        """Sampled softmax in plain PyTorch, weights in sparse-gradient embeddings."""

        def __init__(self, V, dim, num_sampled):
            super().__init__()
            self.V, self.S = V, num_sampled
            self.weight = torch.nn.Embedding(V, dim, sparse=True)
            torch.nn.init.normal_(self.weight.weight, 0.0, 1.0 / math.sqrt(dim))
            self.bias = torch.nn.Embedding(V, 1, sparse=True)
            torch.nn.init.zeros_(self.bias.weight)
            self.log_range = math.log(V + 1.0)

        def log_expected(self, ids):      # log(S * P(id)), P log-uniform (Zipf)
            p = torch.log1p(1.0 / (ids.to(torch.float64) + 1.0)) / self.log_range
            return torch.log(p * self.S).to(torch.float32)

        def forward(self, hidden, labels):
            u = torch.rand(self.S, dtype=torch.float64)
            cands = (torch.exp(u * self.log_range) - 1.0).long().clamp_(0, self.V - 1)
            n = labels.shape[0]
            ids = torch.cat([labels, cands])
            w = self.weight(ids)
            b = self.bias(ids).squeeze(1)
            true = (hidden * w[:n]).sum(1) + b[:n] - self.log_expected(labels)
            sampled = hidden @ w[n:].T + b[n:] - self.log_expected(cands)
            sampled = sampled.masked_fill(labels[:, None] == cands[None, :], -1e30)
            logits = torch.cat([true[:, None], sampled], 1)
            return F.cross_entropy(logits, torch.zeros(n, dtype=torch.long))

    class FullSoftmax(torch.nn.Module):
        def __init__(self, V, dim):
            super().__init__()
            self.out = torch.nn.Linear(dim, V)

        def forward(self, hidden, labels):
            return F.cross_entropy(self.out(hidden), labels)

    return TorchSampledSoftmax, FullSoftmax


def _build(kind, V, opt, seed):
    """``(output_layer, its_optimizer or None, head or None)`` of one kind."""
    import torch
    import fastsampled as fs
    from fastsampled.torch import SampledSoftmaxLoss
    TorchSampledSoftmax, FullSoftmax = _torch_models()
    torch.manual_seed(seed)
    if kind == "fs":
        head = fs.SampledSoftmaxHead(V, D, num_sampled=S, optimizer=opt,
                                     lr=0.05 if opt == "adam" else 0.5, seed=seed)
        return SampledSoftmaxLoss(head), None, head
    if kind == "torch":
        layer = TorchSampledSoftmax(V, D, S)
        o = (torch.optim.SparseAdam(list(layer.parameters()), lr=0.05) if opt == "adam"
             else torch.optim.SGD(layer.parameters(), lr=0.5))
        return layer, o, None
    layer = FullSoftmax(V, D)
    o = (torch.optim.Adam(layer.parameters(), lr=1e-3) if opt == "adam"
         else torch.optim.SGD(layer.parameters(), lr=0.5))
    return layer, o, None


def _model_step(layer, layer_opt, V, seed):
    """A closure running one whole training step (body + output layer) on batch ``k``."""
    import torch
    from torch_xc import BagOfTokens, Body
    torch.manual_seed(seed)
    body = Body(BagOfTokens(FEATURES, BINS).num_tokens, out=D)
    body_opt = torch.optim.Adam(body.parameters(), lr=2e-3)
    losses = []

    def step(tokens, labels):
        loss = layer(body(tokens), labels)
        loss.backward()
        body_opt.step()
        body_opt.zero_grad()
        if layer_opt is not None:
            layer_opt.step()
            layer_opt.zero_grad()
        losses.append(loss.item())
    return step, body, losses


def _data(V, n, seed=0):
    import torch
    from torch_xc import BagOfTokens
    from fastsampled.datasets import SyntheticXC
    task = SyntheticXC(V, FEATURES, seed=seed)
    bag = BagOfTokens(FEATURES, BINS)
    out = []
    for i in range(n):
        x, y = task.batch(B, i)
        out.append((bag(x), torch.from_numpy(y)))
    return out


def _torch_info():
    import torch
    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "torch_parallel": torch.__config__.parallel_info().splitlines()[:8]}


def _peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024    # Linux: kB


def child_train(cfg):
    """Time whole training steps of one model (one output layer, one V) in this process."""
    V, kind = cfg["V"], cfg["kind"]
    data = _data(V, 16)
    t0 = time.perf_counter()
    layer, layer_opt, _ = _build(kind, V, cfg["opt"], 0)
    step, _, losses = _model_step(layer, layer_opt, V, 0)
    built = time.perf_counter() - t0
    pos = [0]

    def fn():
        tokens, labels = data[pos[0] % len(data)]
        pos[0] += 1
        step(tokens, labels)
    stats = timeit_many({kind: fn}, cfg["steps"], cfg["warmup"], cfg["max_seconds"])[kind]
    return {"stats": stats, "construct_s": built, "peak_rss": _peak_rss(),
            "loss_first": losses[0], "loss_last": float(np.mean(losses[-10:])),
            **_torch_info(), "machine": machine_info()}


def child_interleaved(cfg):
    """For each optimizer: (a) and (b) training steps, both output layers alone, and
    head.train_step with numpy arrays, all timed round robin in this one process."""
    import torch
    V = cfg["V"]
    data = _data(V, 16)
    from torch_xc import BagOfTokens, Body
    torch.manual_seed(1)
    first = Body(BagOfTokens(FEATURES, BINS).num_tokens, out=D)
    with torch.no_grad():          # output-layer-only inputs: what a body gives, as leaves
        hidden0 = [first(tok).contiguous() for tok, _ in data]
    pos = {}

    def nxt(name):
        k = pos.get(name, 0)
        pos[name] = k + 1
        return k % len(data)

    # every timed function gets copies of the batches (and, below, an output layer) of its
    # own: shared ones would be cache-hot for whichever function runs next on the same batch
    def own_data():
        return [(tok.clone(), y.clone()) for tok, y in data]

    def model(name, step):
        mine = own_data()
        return lambda: step(*mine[nxt(name)])

    def layer_only(name, layer, layer_opt):
        mine = [(h.clone(), y.clone()) for h, (_, y) in zip(hidden0, data)]

        def fn():
            h, y = mine[nxt(name)]
            h.requires_grad_()
            h.grad = None           # as a body would: take the gradient, do not accumulate it
            layer(h, y).backward()
            if layer_opt is not None:
                layer_opt.step()
                layer_opt.zero_grad()
            h.grad = None
        return fn

    def direct(name, head):
        mine = [(h.numpy().copy(), y.numpy().copy()) for h, (_, y) in zip(hidden0, data)]

        def fn():
            head.train_step(*mine[nxt(name)])
        return fn

    # the body alone: forward, backward of a fixed gradient, Adam step (the model's common part)
    torch.manual_seed(0)
    body = Body(BagOfTokens(FEATURES, BINS).num_tokens, out=D)
    body_opt = torch.optim.Adam(body.parameters(), lr=2e-3)
    d_out = torch.randn(B, D) * 1e-3

    body_data = own_data()

    def body_only():
        body(body_data[nxt("body")][0]).backward(d_out)
        body_opt.step()
        body_opt.zero_grad()

    fns, losses = {"body": body_only}, {}
    for opt in cfg["opts"]:
        fs_step, _, losses[f"fs_model_{opt}"] = _model_step(_build("fs", V, opt, 0)[0], None,
                                                            V, 0)
        t_step, _, losses[f"torch_model_{opt}"] = _model_step(*_build("torch", V, opt, 0)[:2],
                                                              V, 0)
        fns.update({f"fs_model_{opt}": model(f"fs_model_{opt}", fs_step),
                    f"torch_model_{opt}": model(f"torch_model_{opt}", t_step),
                    f"fs_head_{opt}": layer_only(f"fs_head_{opt}",
                                                 *_build("fs", V, opt, 0)[:2]),
                    f"torch_head_{opt}": layer_only(f"torch_head_{opt}",
                                                    *_build("torch", V, opt, 0)[:2]),
                    f"numpy_head_{opt}": direct(f"numpy_head_{opt}",
                                                _build("fs", V, opt, 0)[2])})
    stats = retry_if_busy(lambda: timeit_many(fns, cfg["rounds"], 3, cfg["max_seconds"],
                                              block=5),
                          cfg.get("retries", 0), cfg.get("wait", 0.0))
    return {"stats": stats, "peak_rss": _peak_rss(),
            "loss_last": {k: float(np.mean(v[-10:])) for k, v in losses.items()},
            **_torch_info(), "machine": machine_info()}


def child_main(cfg):
    def job(cfg):
        if cfg.get("torch_threads"):
            import torch
            torch.set_num_threads(cfg["torch_threads"])
        if cfg.get("flush_denormal"):    # before any parallel region: workers inherit it
            import torch
            if not torch.set_flush_denormal(True):
                raise RuntimeError("torch.set_flush_denormal(True) is not supported here")
        return {"train": child_train, "interleaved": child_interleaved}[cfg["kind_of"]](cfg)
    return child_report(job, cfg)


# --------------------------------------------------------------------------- parent

def _run_child(cfg, env=None):
    """This script with ``--child`` in a fresh process, ``examples/`` on its path."""
    examples = os.path.join(os.path.dirname(HERE), "examples")
    path = os.pathsep.join(p for p in (examples, (env or {}).get("PYTHONPATH",
                                                                  os.environ.get("PYTHONPATH")))
                           if p)
    return run_child(__file__, cfg, dict(env or {}, PYTHONPATH=path))


def run_in_process(cfg):
    """``--quick``: a child's training job in this process, ``(result or None, error or None)``
    (a fresh interpreter per variant costs ~6 s of imports and set-up; peak RSS is then this
    process's, cumulative over the variants run so far)."""
    examples = os.path.join(os.path.dirname(HERE), "examples")
    if examples not in sys.path:
        sys.path.insert(0, examples)
    try:
        return child_train(cfg), None
    except Exception as e:  # noqa: BLE001 -- reported as an error row, as a child's would be
        traceback.print_exc()
        return None, f"{type(e).__name__}: {e}"


def need_bytes(kind, V, opt):
    """What the output layer and its optimizer allocate (a margin for the rest is added)."""
    slots = 2 if opt == "adam" else 0
    params = V * (D + 1) * 4
    if kind in ("fs", "torch"):
        return params * (1 + slots)
    # dense gradient and optimizer slots, plus the (B, V) logits, log-softmax and gradient
    return params * (2 + slots) + 3 * B * V * 4


def _row(case, V, threads="default", opt=None, st=None, res=None, **kw):
    r = {"case": case, "V": V, "threads": threads, "opt": opt}
    if st:
        r.update(median_ms=st["median"] * 1e3, p10_ms=st["p10"] * 1e3, p90_ms=st["p90"] * 1e3,
                 reps=st["n"], steps_per_s=1.0 / st["median"], others_cpu=st.get("others_cpu"),
                 disturbed=disturbed(st), load1=st.get("load1"))
    if res:
        r["peak_rss_GB"] = res["peak_rss"] / 1e9
    r.update(kw)
    return r


def bench_variants(cfg, rows, notes, children):
    medians, machine = {}, None
    for V in cfg["V"]:
        for kind in ("fs", "torch", "full"):
            opt = "adam"
            name = f"{KINDS[kind]} training step"
            avail = mem_available()
            margin = 1.5e9
            if avail is not None and need_bytes(kind, V, opt) + margin > avail:
                if kind != "full" and need_bytes(kind, V, "sgd") + margin <= avail:
                    notes.append(f"{KINDS[kind]} V={V:.0e}: Adam's two slots do not fit in the "
                                 f"{avail / 2**30:.1f} GiB available; measured with SGD")
                    opt = "sgd"
                else:
                    msg = (f"needs ~{need_bytes(kind, V, opt) / 1e9:.0f} GB, "
                           f"{(avail or 0) / 1e9:.1f} GB available")
                    if kind == "full" and (10**6, "full") in medians:
                        t = medians[(10**6, "full")] * V / 10**6
                        msg += f"; ~{t:.0f} s per step extrapolated (linear in V) from 1e6"
                    notes.append(f"{name} V={V:.0e} skipped: {msg}")
                    rows.append(_row(name, V, opt=opt, skipped=msg[:80]))
                    log(f"{name} V={V:.0e} skipped: {msg}")
                    continue
            fresh = not cfg.get("in_process")
            section(f"{name}, V={V:.0e}" + (" (fresh process)" if fresh else ""))
            steps = cfg["full_steps"].get(V, 2) if kind == "full" else cfg["steps"]
            job = dict(kind_of="train", kind=kind, V=V, opt=opt, steps=steps,
                       warmup=1 if kind == "full" else 3, max_seconds=cfg["max_seconds"])
            res, err = _run_child(job) if fresh else run_in_process(job)
            children[f"train_{kind}_{V:.0e}"] = res or {"error": err}
            if err:
                rows.append(_row(name, V, opt=opt, error=err[:70]))
                log(f"FAILED: {err}")
                continue
            st = res["stats"]
            medians[(V, kind)] = st["median"]
            rows.append(_row(name, V, opt=opt, st=st, res=res))
            log(f"median {st['median'] * 1e3:.2f} ms = {1 / st['median']:.1f} steps/s, peak RSS "
                f"{res['peak_rss'] / 1e9:.2f} GB, others_cpu {st.get('others_cpu')}; loss "
                f"{res['loss_first']:.2f} -> {res['loss_last']:.2f}")
            machine = res.pop("machine", None) or machine
    for V in cfg["V"]:
        if (V, "fs") in medians and (V, "torch") in medians:
            where = "one process" if cfg.get("in_process") else "separate processes"
            rows.append(_row(f"fastsampled / torch sampled steps/s ({where})", V,
                             value=medians[(V, "torch")] / medians[(V, "fs")], unit="x"))
    return machine


def bench_interleaved(cfg, rows, args, children):
    V = cfg["ratio_V"]
    retry = {"retries": 0 if args.quick else 2, "wait": max(args.wait_quiet,
                                                            0 if args.quick else 60)}
    machine = None
    for name in cfg["threads"]:
        setting = THREADS[name]
        section(f"interleaved at V={V:.0e}, threads: {name} (fresh process)")
        res, err = _run_child(dict(kind_of="interleaved", V=V, rounds=cfg["ratio_rounds"],
                                  max_seconds=cfg["ratio_seconds"], opts=cfg["ratio_opts"],
                                  torch_threads=setting.get("torch_threads"),
                                  flush_denormal=setting.get("flush_denormal", False), **retry),
                             env=setting.get("env"))
        children[f"interleaved_{name}"] = res or {"error": err}
        if err:
            rows.append(_row(f"interleaved ({name})", V, name, error=err[:70]))
            log(f"FAILED: {err}")
            continue
        machine = res.pop("machine", None) or machine
        rows.append(_row("body alone: forward, backward, Adam", V, name, "adam",
                         res["stats"]["body"]))
        for opt in cfg["ratio_opts"]:
            _interleaved_rows(rows, res, V, name, opt)
    return machine


def _interleaved_rows(rows, res, V, threads, opt):
    st = {k[:-len(opt) - 1]: v for k, v in res["stats"].items() if k.endswith("_" + opt)}
    torch_opt = "SparseAdam" if opt == "adam" else "SGD"
    for key, case in (("fs_model", "training step, fastsampled head"),
                      ("torch_model", "training step, torch sampled softmax"),
                      ("fs_head", "output layer only: SampledSoftmaxLoss fwd+bwd+update"),
                      ("torch_head", f"output layer only: torch sampled fwd+bwd+{torch_opt}"),
                      ("numpy_head", "head.train_step with numpy arrays")):
        rows.append(_row(case, V, threads, opt, st[key], res if key == "fs_model" else None))
    speed = st["torch_model"]["median"] / st["fs_model"]["median"]
    head_speed = st["torch_head"]["median"] / st["fs_head"]["median"]
    overhead = st["fs_head"]["median"] / st["numpy_head"]["median"] - 1.0
    busy = st["fs_model"].get("others_cpu")   # one interleaved group: the same for every row
    rows.append(_row("training steps/s: fastsampled / torch sampled (same process)", V,
                     threads, opt, value=speed, unit="x", others_cpu=busy,
                     disturbed=disturbed(st["fs_model"])))
    rows.append(_row("output layer only: fastsampled / torch sampled", V, threads, opt,
                     value=head_speed, unit="x", others_cpu=busy,
                     disturbed=disturbed(st["fs_head"])))
    rows.append(_row("adapter overhead over head.train_step", V, threads, opt, value=overhead,
                     unit="fraction", others_cpu=busy, disturbed=disturbed(st["fs_head"])))
    log(f"{opt}: training step fastsampled {st['fs_model']['median'] * 1e3:.2f} ms, torch "
        f"sampled {st['torch_model']['median'] * 1e3:.2f} ms ({speed:.2f}x); output layer only "
        f"{st['fs_head']['median'] * 1e3:.2f} vs {st['torch_head']['median'] * 1e3:.2f} ms "
        f"({head_speed:.2f}x); head.train_step {st['numpy_head']['median'] * 1e3:.2f} ms "
        f"(adapter overhead {100 * overhead:.1f} %); others_cpu {busy}")


def main(argv=None):
    p = arg_parser(__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=("variants", "interleaved"), default=None,
                   help="run only these sections (with --out, so that the full results file "
                        "is not replaced by a partial one)")
    p.add_argument("--threads", nargs="+", choices=tuple(THREADS), default=None,
                   help="interleaved section: these thread settings (default: 'default'; "
                        "six took ~12 min here, results in bench/results/torch-threads.json)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        return child_main(json.loads(args.child))
    cfg = dict(QUICK if args.quick else FULL)
    if args.threads:
        cfg["threads"] = list(args.threads)
    rows, notes, children = [], [], {}
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    busy_before = wait_for_quiet(args.wait_quiet)
    want = set(args.only or ("variants", "interleaved"))
    machine = None
    if "variants" in want:
        machine = bench_variants(cfg, rows, notes, children)
    if "interleaved" in want:
        machine = bench_interleaved(cfg, rows, args, children) or machine
    quick = " [quick: smaller V stand in for the full run's 1e6]" if args.quick else ""
    notes += [
        f"B={B}, D={D}, S={S}, float32; body: bag of {FEATURES} tokens -> EmbeddingBag("
        f"{FEATURES * BINS}, {D}, sum) -> Linear({D}, 256) -> ReLU -> Linear(256, {D}), "
        "torch.optim.Adam(2e-3); batches from SyntheticXC(V, 64), 16 cycled, made before "
        "timing" + quick,
        "a training step = body forward, output layer forward and backward, body Adam step and "
        "the output layer's update (fastsampled: lazy Adam inside backward; torch sampled: "
        "SparseAdam; full softmax: Adam)",
        "torch sampled softmax draws its 64 candidates with replacement (inverse-CDF "
        "log-uniform, as cheap as sampling gets in torch); fastsampled draws them unique, as TF",
        ("variants (--quick): all in the benchmark's own process; peak_rss_GB = its ru_maxrss "
         "so far (cumulative, not per variant)" if cfg.get("in_process") else
         "variants: one fresh process per (output layer, V); peak_rss_GB = that process's "
         "ru_maxrss (VmHWM), interpreter, torch, Numba and the data included"),
        "interleaved: the body alone, both models, both output layers alone (hidden = a "
        "body's output for the batch, a leaf) and head.train_step(numpy) timed round robin in "
        "blocks of 5 calls in one process, each with an output layer of its own (same seed); "
        "adapter overhead = SampledSoftmaxLoss fwd+bwd / head.train_step - 1",
        "threads: 'passive' = OMP_WAIT_POLICY=PASSIVE for the OpenMP runtime that torch and "
        "Numba's omp layer share (torch's bundled libgomp), set before the process starts",
        f"disturbed = yes: measured while other processes used > {BUSY_OTHERS} cores "
        "(others_cpu = those cores): rerun on a quiet machine for a clean figure",
        f"loadavg before run: {list(load_before)}; CPUs busy with other work just before: "
        f"{busy_before}; wall time {time.perf_counter() - t_start:.1f} s",
    ]
    child_info = next((c for c in children.values() if c and "torch" in c), {})
    meta = {"quick": args.quick, "config": {k: (v if not isinstance(v, dict) else
                                                {str(a): b for a, b in v.items()})
                                            for k, v in cfg.items()},
            "B": B, "D": D, "S": S, "features": FEATURES, "bins": BINS, "notes": notes,
            "torch": {k: child_info.get(k) for k in ("torch", "torch_threads",
                                                     "torch_interop_threads", "torch_parallel")},
            "children": children}
    machine = machine or machine_info()
    machine["loadavg_1_5_15"] = list(os.getloadavg())
    write_results("torch", rows, meta, out_dir_for(args), COLUMNS, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
