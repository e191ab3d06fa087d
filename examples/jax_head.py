"""A JAX model whose output layer is a fastsampled ``SampledSoftmaxHead``.

Run from a checkout (a few seconds, plus Numba's one-time compilation)::

    pip install jax            # the CPU build
    python examples/jax_head.py

Without JAX installed it prints a note and exits with status 0.

The head speaks numpy (``head.loss_and_grads`` / ``head.apply_grads``); JAX reaches it through
``jax.pure_callback`` inside a ``jax.custom_vjp`` function, so ``jax.jit(jax.value_and_grad(...))``
differentiates a model whose body is JAX and whose sampled softmax is fastsampled's. The body (one
tanh layer) takes a plain SGD step in JAX; the head's sparse update is applied in numpy after
each step, because it is state outside JAX's functional world. The script prints the sampled
loss falling and the head's held-out full-softmax loss and precision@1/@5.
"""
import sys

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError:
    print("jax is not installed: `pip install jax` to run this example (skipped)")
    sys.exit(0)

import fastsampled as fs
from fastsampled.datasets import SyntheticXC


def main():
    task = SyntheticXC(num_classes=10_000, dim=16, seed=0)
    head = fs.SampledSoftmaxHead(10_000, 32, num_sampled=64, optimizer="adam", lr=0.05)
    pending = []                        # the head's sparse gradient of each forward pass

    def _loss_and_grad(h, y):           # numpy in, numpy out (np.array: a writable copy)
        loss, g = head.loss_and_grads(np.array(h), np.asarray(y))
        pending.append(g)
        return np.float32(loss), g.inputs

    @jax.custom_vjp
    def head_loss(h, y):                # without differentiation: the sampled loss only
        return jax.pure_callback(
            lambda h, y: np.float32(head.loss(np.array(h), np.asarray(y))),
            jax.ShapeDtypeStruct((), jnp.float32), h, y)

    def head_loss_fwd(h, y):
        out = (jax.ShapeDtypeStruct((), jnp.float32), jax.ShapeDtypeStruct(h.shape, h.dtype))
        return jax.pure_callback(_loss_and_grad, out, h, y)   # (loss, residual d_h)

    def head_loss_bwd(d_h, g):          # hidden gets g * d_h, the integer labels nothing
        return g * d_h, None

    head_loss.defvjp(head_loss_fwd, head_loss_bwd)

    def model_loss(W, x, y):            # the JAX body: one tanh layer into the head
        return head_loss(jnp.tanh(x @ W), y)

    step = jax.jit(jax.value_and_grad(model_loss))
    W = jnp.asarray(np.random.default_rng(0).normal(0, 0.5, (16, 32)), jnp.float32)
    losses = []
    for i in range(100):
        x, y = task.batch(256, i)
        loss, dW = step(W, x, y)
        W = W - 0.5 * dW                # the body's SGD step in JAX ...
        head.apply_grads(pending.pop()) # ... and the head's sparse update, in numpy
        losses.append(float(loss))
    xt, yt = task.batch(1000, 0, split="test")
    print(f"jax {jax.__version__}: sampled loss {np.mean(losses[:10]):.2f} (first 10 steps) -> "
          f"{np.mean(losses[-10:]):.2f} (last 10); held-out",
          head.evaluate(np.tanh(xt @ np.asarray(W)), yt))


if __name__ == "__main__":
    main()
