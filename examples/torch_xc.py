"""A PyTorch model whose softmax over 10^6 classes is fastsampled's: EmbeddingBag -> MLP -> head.

Run from a checkout (about a minute on 2 cores, plus Numba's one-time compilation)::

    python examples/torch_xc.py            # --help for the options

The task is fastsampled's built-in synthetic extreme classification (``SyntheticXC``: a
hidden teacher, 10^6 Zipf-frequent classes). Each example's feature vector is turned into a bag
of tokens, one per coordinate (which of ``--bins`` equal intervals the value falls in), as
bag-of-words features are in real extreme-classification data. The body is plain PyTorch
(``nn.EmbeddingBag`` summing the tokens' embeddings, then a two-layer MLP) trained by
``torch.optim.Adam``; the output layer is a ``fastsampled.SampledSoftmaxHead`` (sampled
softmax, log-uniform sampler, lazy Adam) behind ``fastsampled.torch.SampledSoftmaxLoss``. The
script prints the sampled training loss falling and held-out precision@1 (exact, over all
classes) rising against chance.
"""
import argparse
import time

import numpy as np
import torch

import fastsampled as fs
from fastsampled.datasets import SyntheticXC
from fastsampled.torch import SampledSoftmaxLoss


class BagOfTokens:
    """Turns SyntheticXC feature vectors (B, dim) into token ids (B, dim): coordinate ``j``
    with value in interval ``b`` of ``bins`` equal ones is token ``j * bins + b``."""

    def __init__(self, dim, bins):
        self.dim, self.bins = dim, bins
        # prototype and noise coordinates are uniform with variance 1/dim each: |x| < 2a
        self.half_width = 2.0 * np.sqrt(3.0 / dim)
        self.offsets = np.arange(dim, dtype=np.int64) * bins

    @property
    def num_tokens(self):
        return self.dim * self.bins

    def __call__(self, x):
        b = np.floor((x + self.half_width) * (self.bins / (2 * self.half_width)))
        return torch.from_numpy(np.clip(b, 0, self.bins - 1).astype(np.int64) + self.offsets)


class Body(torch.nn.Module):
    """Bag of token embeddings (sum) -> Linear -> ReLU -> Linear: (B, L) ids -> (B, out)."""

    def __init__(self, num_tokens, embed=128, hidden=256, out=128):
        super().__init__()
        self.bag = torch.nn.EmbeddingBag(num_tokens, embed, mode="sum")
        self.mlp = torch.nn.Sequential(torch.nn.Linear(embed, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, out))

    def forward(self, tokens):
        return self.mlp(self.bag(tokens))


def evaluate(body, loss_fn, tokens, labels):
    """Held-out full-softmax loss and precision@1 over all classes (eval mode, no grad)."""
    body.eval()
    loss_fn.eval()
    with torch.no_grad():
        res = loss_fn.evaluate(body(tokens), labels, k=5)
    body.train()
    loss_fn.train()
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", type=int, default=10**6, help="number of classes (10^6)")
    p.add_argument("--features", type=int, default=64, help="task feature dimension (64)")
    p.add_argument("--bins", type=int, default=16, help="token intervals per feature (16)")
    p.add_argument("--dim", type=int, default=128, help="hidden size fed to the head (128)")
    p.add_argument("--batch", type=int, default=1024, help="examples per step (1024)")
    p.add_argument("--num-sampled", type=int, default=64, help="sampled classes (64)")
    p.add_argument("--steps", type=int, default=3000, help="training steps (3000)")
    p.add_argument("--accumulate", type=int, default=1,
                   help="micro-batches per optimizer step (> 1: the head's update waits for "
                        "the optimizer step too, update='step')")
    p.add_argument("--eval-examples", type=int, default=1000, help="held-out examples (1000)")
    p.add_argument("--evals", type=int, default=3,
                   help="held-out evaluations during training, the last one at the end (3)")
    p.add_argument("--log-every", type=int, default=500, help="print the loss every N steps")
    p.add_argument("--threads", type=int, default=0,
                   help="torch.set_num_threads (0: leave torch's default)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    V = args.classes
    task = SyntheticXC(V, args.features, seed=args.seed)
    bag = BagOfTokens(args.features, args.bins)
    body = Body(bag.num_tokens, out=args.dim)
    head = fs.SampledSoftmaxHead(V, args.dim, num_sampled=args.num_sampled, optimizer="adam",
                                 lr=0.05, seed=args.seed)
    update = "backward" if args.accumulate == 1 else "step"
    loss_fn = SampledSoftmaxLoss(head, update=update)
    opt = torch.optim.Adam(body.parameters(), lr=2e-3)
    if update == "step":
        loss_fn.attach(opt)       # opt.step() applies the head's accumulated gradient too
    print(f"{V:,} classes, bags of {args.features} tokens from {bag.num_tokens} -> "
          f"EmbeddingBag -> MLP -> {args.dim} -> fastsampled head ({args.num_sampled} sampled "
          f"classes, lazy Adam); batch {args.batch}, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads", flush=True)

    xt, y_test = task.batch(args.eval_examples, 0, split="test")
    t_test = bag(xt)
    before = evaluate(body, loss_fn, t_test, y_test)
    chance = task.majority_baseline
    print(f"held-out precision@1 before training {before['precision@1']:.3f} (chance "
          f"{chance:.3f}: always the most frequent class)", flush=True)

    evals = {max(1, round(args.steps * (i + 1) / args.evals)) for i in range(args.evals)}
    losses, t_train, t_data = [], 0.0, 0.0
    after = before
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        x, y = task.batch(args.batch, step)
        tokens = bag(x)
        labels = torch.from_numpy(y)
        t1 = time.perf_counter()
        loss = loss_fn(body(tokens), labels)
        (loss / args.accumulate).backward()     # d_hidden into the body; the head updates
        if step % args.accumulate == 0:
            opt.step()
            opt.zero_grad()
        t2 = time.perf_counter()
        t_data += t1 - t0
        t_train += t2 - t1
        losses.append(loss.item())
        if step in evals:
            after = evaluate(body, loss_fn, t_test, y_test)
        if step % args.log_every == 0 or step in evals:
            print(f"step {step:6d}  sampled loss {np.mean(losses[-args.log_every:]):.3f}  "
                  f"held-out precision@1 {after['precision@1']:.3f}  "
                  f"{step / t_train:.0f} steps/s", flush=True)
    n = max(1, min(100, args.steps // 10))
    res = {"loss_first": float(np.mean(losses[:n])), "loss_last": float(np.mean(losses[-n:])),
           "p1_before": before["precision@1"], "p1_after": after["precision@1"],
           "full_loss_before": before["loss"], "full_loss_after": after["loss"],
           "chance": chance, "steps_per_s": args.steps / t_train,
           "data_ms_per_step": t_data / args.steps * 1e3}
    print(f"sampled loss {res['loss_first']:.3f} (first {n} steps) -> {res['loss_last']:.3f} "
          f"(last {n}); held-out full-softmax loss {before['loss']:.3f} -> {after['loss']:.3f}, "
          f"precision@1 {res['p1_before']:.3f} -> {res['p1_after']:.3f} (chance {chance:.3f}); "
          f"{res['steps_per_s']:.0f} training steps/s (+{res['data_ms_per_step']:.2f} ms per "
          f"step to make the batch)", flush=True)
    return res


if __name__ == "__main__":
    main()
