"""TensorFlow's classic sampled-softmax perceptron, with TensorFlow's op and with fastsampled's.

Run from a checkout (about ten seconds on two cores)::

    pip install tensorflow-cpu
    python examples/tf_perceptron.py [--steps 600]

Without TensorFlow installed it prints a note and exits with status 0.

The model is the textbook one: a perceptron (one hidden layer of 256 ReLU units) whose logits
layer is replaced by a sampled softmax during training,
``labels = tf.reshape(tf.argmax(y, 1), [-1, 1])`` and
``tf.reduce_mean(sampled_softmax_loss(weights=w, biases=b, labels=labels, inputs=hidden,
num_sampled=3, num_true=1, num_classes=10))``, and whose accuracy is measured with the full
softmax. The data is synthetic, made here: 8x8 "digit" images drawn around ten random
prototypes, one-hot labels (so nothing is downloaded). Two copies of the model start from the
same weights and see the same batches; one trains with ``tf.nn.sampled_softmax_loss``, the
other with ``fastsampled.tf.sampled_softmax_loss``, the only line that differs. fastsampled
draws its candidates with TensorFlow's own sampler op, so under the same global seed both
models see the same candidates: their loss curves agree to float32 rounding, and they reach
the same test accuracy. (Run with another ``--seed`` for each and the curves differ only by
sampling noise.)
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
try:
    import tensorflow as tf
except ImportError:
    print("tensorflow is not installed: `pip install tensorflow-cpu` to run this example "
          "(skipped)")
    sys.exit(0)

import numpy as np

import fastsampled.tf as fstf

NUM_CLASSES, NUM_PIXELS, HIDDEN = 10, 64, 256


def make_digits(n, seed):
    """``n`` noisy 8x8 images around ten fixed prototypes, and their one-hot labels."""
    protos = np.random.default_rng(1234).uniform(0, 16, (NUM_CLASSES, NUM_PIXELS))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, NUM_CLASSES, n)
    x = np.clip(protos[y] + rng.normal(0, 10.0, (n, NUM_PIXELS)), 0, 16) / 16.0
    return x.astype(np.float32), np.eye(NUM_CLASSES, dtype=np.float32)[y]


class Perceptron:
    """hidden = relu(x W1 + b1); logits = hidden w^T + b, trained by a sampled softmax."""

    def __init__(self, loss_fn, seed=0):
        init = np.random.default_rng(seed)
        self.W1 = tf.Variable(init.normal(0, 0.1, (NUM_PIXELS, HIDDEN)).astype(np.float32))
        self.b1 = tf.Variable(np.zeros(HIDDEN, np.float32))
        self.w = tf.Variable(init.normal(0, 0.1, (NUM_CLASSES, HIDDEN)).astype(np.float32))
        self.b = tf.Variable(np.zeros(NUM_CLASSES, np.float32))
        self.loss_fn = loss_fn
        self.opt = tf.keras.optimizers.SGD(0.1)
        self.variables = [self.W1, self.b1, self.w, self.b]

    def hidden(self, x):
        return tf.nn.relu(tf.matmul(x, self.W1) + self.b1)

    @tf.function
    def train_step(self, x, y):
        labels = tf.reshape(tf.argmax(y, 1), [-1, 1])
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(self.loss_fn(
                weights=self.w, biases=self.b, labels=labels, inputs=self.hidden(x),
                num_sampled=3, num_true=1, num_classes=NUM_CLASSES))
        grads = tape.gradient(loss, self.variables)
        self.opt.apply_gradients(zip(grads, self.variables))
        return loss

    def accuracy(self, x, y):
        logits = tf.matmul(self.hidden(x), self.w, transpose_b=True) + self.b
        return float(np.mean(np.argmax(logits, 1) == np.argmax(y, 1)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="TensorFlow's global seed")
    args = parser.parse_args(argv)
    x_train, y_train = make_digits(20_000, seed=1)
    x_test, y_test = make_digits(2_000, seed=2)
    models = {"tf.nn": Perceptron(tf.nn.sampled_softmax_loss),
              "fastsampled.tf": Perceptron(fstf.sampled_softmax_loss)}
    tf.random.set_seed(args.seed)
    order = np.random.default_rng(0)
    curves = {name: [] for name in models}
    window = max(1, args.steps // 6)
    print(f"{'step':>6}  " + "  ".join(f"{name + ' loss':>20}" for name in models))
    for step in range(1, args.steps + 1):
        idx = order.integers(0, len(x_train), args.batch)
        x, y = tf.constant(x_train[idx]), tf.constant(y_train[idx])
        for name, model in models.items():
            curves[name].append(float(model.train_step(x, y)))
        if step % window == 0:
            print(f"{step:>6}  " + "  ".join(
                f"{np.mean(curves[name][-window:]):>20.4f}" for name in models))
    gap = np.max(np.abs(np.subtract(*curves.values())))
    print(f"largest difference between the two loss curves: {gap:.2e}")
    for name, model in models.items():
        print(f"{name:>15}: test accuracy {model.accuracy(x_test, y_test):.3f} "
              f"(full softmax over {NUM_CLASSES} classes)")
    return {name: (curves[name], model.accuracy(x_test, y_test))
            for name, model in models.items()}


if __name__ == "__main__":
    main()
