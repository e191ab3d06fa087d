"""fastsampled.tf against TensorFlow's own ops: the shared reference cases and fresh ones
computed by TensorFlow here, eagerly and inside tf.function, single and partitioned weights."""
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import fastsampled as fs  # noqa: E402
import fastsampled.tf as fstf  # noqa: E402
from tf_cases import assert_close_tf, case_files, case_id, load_case, shards_from_case  # noqa: E402

pytestmark = pytest.mark.kernel
LOSS_CASES = case_files("loss")


def _dense(grad, num_rows):
    """A weights/biases gradient as a dense array (IndexedSlices summed per row)."""
    assert isinstance(grad, tf.IndexedSlices), type(grad)
    return tf.math.unsorted_segment_sum(grad.values, grad.indices, num_rows).numpy()


def _global(case, shard_grads, key):
    """Per-shard dense gradients put back in global id order."""
    out = np.zeros_like(case[key])
    for p, g in enumerate(shard_grads):
        ids = np.nonzero(case["row_shard"] == p)[0]
        out[ids] = g[case["row_local"][ids]]
    return out


@pytest.mark.parametrize("mode", ["eager", "function"])
@pytest.mark.parametrize("path", LOSS_CASES, ids=case_id)
def test_reference_case(path, mode):
    case = load_case(path)
    dtype = case["dtype"]
    w_shards, b = shards_from_case(case)
    wv = [tf.Variable(w) for w in w_shards]
    bv = [tf.Variable(s) for s in b] if isinstance(b, list) else [tf.Variable(b)]
    x = tf.constant(case["inputs"])
    fn = fstf.v1.nce_loss if case["loss_fn"] == "nce" else fstf.v1.sampled_softmax_loss

    def run():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = fn(wv if len(wv) > 1 else wv[0], bv if len(bv) > 1 else bv[0],
                      case["labels"], x, case["num_sampled"], case["num_classes"],
                      case["num_true"],
                      sampled_values=(case["sampled"], case["true_expected_count"],
                                      case["sampled_expected_count"]),
                      remove_accidental_hits=bool(case["remove_accidental_hits"]),
                      partition_strategy=case["partition_strategy"],
                      subtract_log_q=bool(case["subtract_log_q"]))
            total = tf.reduce_sum(loss)
        return loss, tape.gradient(total, [x] + wv + bv)

    loss, grads = run() if mode == "eager" else tf.function(run)()
    assert loss.dtype == x.dtype and loss.shape == (x.shape[0],)
    assert_close_tf(loss.numpy(), case["loss"], dtype, "loss")
    assert_close_tf(grads[0].numpy(), case["grad_inputs"], dtype, "grad_inputs")
    gw = [_dense(g, w.shape[0]) for g, w in zip(grads[1:1 + len(wv)], wv)]
    gb = [_dense(g, v.shape[0]) for g, v in zip(grads[1 + len(wv):], bv)]
    assert_close_tf(_global(case, gw, "weights"), case["grad_weights"], dtype, "grad_weights")
    gb = _global(case, gb, "biases") if len(bv) > 1 else gb[0]
    assert_close_tf(gb, case["grad_biases"], dtype, "grad_biases")


def _fresh(seed, V=300, B=16, D=8, T=1, S=24, dtype=np.float32):
    rng = np.random.default_rng(seed)
    W = rng.normal(0, 0.3, (V, D)).astype(dtype)
    b = rng.normal(0, 0.1, V).astype(dtype)
    x = rng.normal(size=(B, D)).astype(dtype)
    labels = rng.integers(0, V, (B, T)).astype(np.int64)
    labels[0, 0] = 0                        # a frequent class: accidental hits likely
    sampled = tf.random.log_uniform_candidate_sampler(labels, T, S, True, V, seed=seed)
    if dtype == np.float64:             # TensorFlow's float64 op wants float64 counts
        sampled = (sampled[0], tf.cast(sampled[1], tf.float64), tf.cast(sampled[2], tf.float64))
    return W, b, x, labels, tuple(sampled)


def _grads(fn, W, b, x, labels, sv, upstream=None, function=False, **kw):
    Wv, bv, xt = tf.Variable(W), tf.Variable(b), tf.constant(x)

    def run():
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = fn(weights=Wv, biases=bv, labels=labels, inputs=xt,
                      num_sampled=int(sv[0].shape[0]), num_classes=W.shape[0],
                      num_true=labels.shape[1], sampled_values=sv, **kw)
            total = tf.reduce_sum(loss * upstream) if upstream is not None else \
                tf.reduce_mean(loss)
        return loss, tape.gradient(total, [xt, Wv, bv])

    loss, (gx, gw, gb) = tf.function(run)() if function else run()
    return loss.numpy(), gx.numpy(), _dense(gw, W.shape[0]), _dense(gb, W.shape[0])


@pytest.mark.parametrize("function", [False, True], ids=["eager", "function"])
@pytest.mark.parametrize("which", ["sampled_softmax_loss", "nce_loss"])
@pytest.mark.parametrize("num_true, dtype", [(1, np.float32), (3, np.float32),
                                             (2, np.float64)])
def test_fresh_cases_against_tensorflow(which, num_true, dtype, function):
    W, b, x, labels, sv = _fresh(7 + num_true, T=num_true, dtype=dtype)
    ours = _grads(getattr(fstf, which), W, b, x, labels, sv, function=function)
    theirs = _grads(getattr(tf.nn, which), W, b, x, labels, sv, function=function)
    for name, a, e in zip(("loss", "inputs", "weights", "biases"), ours, theirs):
        assert_close_tf(a, e, dtype, name)


@pytest.mark.parametrize("function", [False, True], ids=["eager", "function"])
def test_per_example_upstream_gradient(function):
    """A weighted loss: the weights' gradient is not a multiple of the summed one."""
    W, b, x, labels, sv = _fresh(3)
    weights = np.linspace(0.0, 2.0, x.shape[0]).astype(np.float32)
    ours = _grads(fstf.sampled_softmax_loss, W, b, x, labels, sv, upstream=weights,
                  function=function)
    theirs = _grads(tf.nn.sampled_softmax_loss, W, b, x, labels, sv, upstream=weights,
                    function=function)
    for name, a, e in zip(("loss", "inputs", "weights", "biases"), ours, theirs):
        assert_close_tf(a, e, np.float32, name)


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_partitioned_variables_in_function(strategy):
    V, P = 301, 3
    W, b, x, labels, sv = _fresh(11, V=V)
    sizes = fs.sharding.layout_sizes(V, P, strategy)
    rows = [np.arange(p, V, P) if strategy == "mod" else
            np.arange(sum(sizes[:p]), sum(sizes[:p + 1])) for p in range(P)]
    parts = [tf.Variable(W[r]) for r in rows]
    bparts = [tf.Variable(b[r]) for r in rows]
    xt = tf.constant(x)

    @tf.function
    def run(fn, **kw):
        with tf.GradientTape() as tape:
            loss = fn(parts, bparts, labels, xt, 24, V, sampled_values=sv,
                      partition_strategy=strategy, **kw)
            total = tf.reduce_mean(loss)
        return loss, tape.gradient(total, parts + bparts)

    ours = run(fstf.v1.sampled_softmax_loss)
    theirs = run(tf.compat.v1.nn.sampled_softmax_loss)
    assert_close_tf(ours[0].numpy(), theirs[0].numpy(), np.float32, "loss")
    for i, (a, e) in enumerate(zip(ours[1], theirs[1])):
        assert isinstance(a, tf.IndexedSlices)
        n = int((parts + bparts)[i].shape[0])
        assert_close_tf(_dense(a, n), _dense(e, n), np.float32, f"grad {i}")


def test_default_sampler_draws_what_tensorflow_draws():
    W, b, x, labels, _ = _fresh(5)
    args = dict(weights=tf.constant(W), biases=tf.constant(b), labels=labels,
                inputs=tf.constant(x), num_sampled=24, num_classes=W.shape[0], seed=42)
    tf.random.set_seed(1)
    theirs = tf.nn.sampled_softmax_loss(**args).numpy()
    tf.random.set_seed(1)
    ours = fstf.sampled_softmax_loss(**args).numpy()
    assert_close_tf(ours, theirs, np.float32, "loss")


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
def test_sparse_optimizer_step_equals_tensorflows(optimizer):
    """A Keras optimizer applies the IndexedSlices as it applies TensorFlow's own. TensorFlow's
    slices repeat a row once per occurrence of its id in the step; fastsampled's hold each
    row once, summed. SGD makes no difference between the two; Adagrad squares the gradient,
    and Keras 3 does not sum repeated rows first, so the reference there is TensorFlow's
    gradient summed per row (the gradient of the loss)."""
    W, b, x, labels, sv = _fresh(9)
    after = []
    for fn in (fstf.sampled_softmax_loss, tf.nn.sampled_softmax_loss):
        Wv, bv = tf.Variable(W), tf.Variable(b)
        opt = keras.optimizers.get({"class_name": optimizer,
                                    "config": {"learning_rate": 0.5}})
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(fn(Wv, bv, labels, tf.constant(x), 24, W.shape[0],
                                     sampled_values=sv))
        grads = tape.gradient(loss, [Wv, bv])
        assert all(isinstance(g, tf.IndexedSlices) for g in grads)
        if fn is fstf.sampled_softmax_loss:
            assert np.unique(grads[0].indices.numpy()).size == grads[0].indices.shape[0]
        else:
            grads = [tf.IndexedSlices(*_summed(g), dense_shape=g.dense_shape) for g in grads]
        opt.apply_gradients(zip(grads, [Wv, bv]))
        after.append((Wv.numpy(), bv.numpy()))
    assert_close_tf(after[0][0], after[1][0], np.float32, "weights after a step")
    assert_close_tf(after[0][1], after[1][1], np.float32, "biases after a step")
    untouched = np.setdiff1d(np.arange(W.shape[0]),
                             np.concatenate([labels.ravel(), sv[0].numpy()]))
    np.testing.assert_array_equal(after[0][0][untouched], W[untouched])


def _summed(g):
    """(values, indices) of IndexedSlices ``g`` with each row once, summed."""
    ids, pos = tf.unique(g.indices)
    return tf.math.unsorted_segment_sum(g.values, pos, tf.size(ids)), ids


def test_bad_arguments_are_refused():
    W, b, x, labels, sv = _fresh(1)
    ok = dict(weights=W, biases=b, labels=labels, inputs=x, num_sampled=24,
              num_classes=W.shape[0], sampled_values=sv)
    with pytest.raises(TypeError, match="inputs must be float32 or float64"):
        fstf.sampled_softmax_loss(**dict(ok, inputs=x.astype(np.float16)))
    with pytest.raises(TypeError, match="labels must be integers"):
        fstf.sampled_softmax_loss(**dict(ok, labels=labels.astype(np.float32)))
    with pytest.raises(ValueError, match="weights have dim 8 but inputs have dim 4"):
        fstf.sampled_softmax_loss(**dict(ok, inputs=x[:, :4]))
    with pytest.raises(ValueError, match="num_sampled is 5 but sampled_candidates has 24"):
        fstf.sampled_softmax_loss(**dict(ok, num_sampled=5))
    with pytest.raises(ValueError, match="labels must have shape"):
        fstf.sampled_softmax_loss(**dict(ok, num_true=2))
    with pytest.raises(ValueError, match="do not form a valid 'mod' layout"):
        fstf.v1.sampled_softmax_loss(**dict(ok, weights=[W[:100], W[100:]],
                                            biases=[b[:100], b[100:]]))
    with pytest.raises(ValueError, match="partition_strategy"):
        fstf.v1.sampled_softmax_loss(**dict(ok, partition_strategy="rows"))
    with pytest.raises(tf.errors.InvalidArgumentError):          # TensorFlow's gather
        fstf.sampled_softmax_loss(**dict(ok, labels=labels + W.shape[0]))
    zero = (sv[0], tf.zeros_like(sv[1]), sv[2])
    # checked in numpy before the kernel: a ValueError eagerly, TensorFlow's error inside a
    # tf.function, with the same message
    with pytest.raises(ValueError, match="positive and finite"):
        fstf.sampled_softmax_loss(**dict(ok, sampled_values=zero))
    with pytest.raises(tf.errors.OpError, match="positive and finite"):
        tf.function(lambda: fstf.sampled_softmax_loss(**dict(ok, sampled_values=zero)))()
    with pytest.raises(tf.errors.OpError, match="labels have 15 rows but inputs have 16"):
        tf.function(lambda: fstf.sampled_softmax_loss(
            **dict(ok, labels=tf.constant(labels[:15]),
                   sampled_values=(sv[0], sv[1][:15], sv[2]))))()


# --------------------------------------------------------------------------- Keras

def _task(seed, V=500, n=2048, d_in=8):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(V, d_in)).astype(np.float32)
    y = rng.integers(0, V, n)
    X = (centers[y] + 0.1 * rng.normal(size=(n, d_in))).astype(np.float32)
    return X, y


def _model(head, d_in=8):
    from fastsampled.keras import SampledSoftmax
    x = keras.Input((d_in,))
    y = keras.Input((), dtype="int64")
    body = keras.Sequential([keras.layers.Dense(64, activation="relu"),
                             keras.layers.Dense(head.dim)])
    layer = SampledSoftmax(head)
    model = keras.Model([x, y], layer([body(x), y]))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model, body, layer


def test_keras_layer_trains_and_evaluates_exactly():
    from fastsampled.keras import TopK
    keras.utils.set_random_seed(0)
    X, y = _task(0, V=200)
    head = fs.SampledSoftmaxHead(200, 16, num_sampled=32, optimizer="adagrad", lr=0.5, seed=0)
    model, body, _ = _model(head)
    before = model.evaluate([X, y], batch_size=512, verbose=0)
    hist = model.fit([X, y], batch_size=128, epochs=5, verbose=0)
    assert head.step == 5 * 16                     # one head step per batch
    after = model.evaluate([X, y], batch_size=512, verbose=0)
    assert after < 0.5 * before, (before, after)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    # evaluate is the exact full-softmax loss
    hidden = body.predict(X[:256], verbose=0)
    exact = head.exact_loss(hidden, y[:256])
    assert model.evaluate([X[:256], y[:256]], batch_size=256, verbose=0) == \
        pytest.approx(exact, rel=1e-5)
    # TopK over the same head
    x = keras.Input((8,))
    ids, scores = keras.Model(x, TopK(head, k=5)(body(x))).predict(X[:64], verbose=0)
    ref_ids, ref_scores = head.predict(body.predict(X[:64], verbose=0), 5)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6)


def test_keras_save_and_load_round_trip(tmp_path):
    keras.utils.set_random_seed(1)
    X, y = _task(1)
    head = fs.SampledSoftmaxHead(500, 16, num_sampled=32, optimizer="adam", lr=0.01, seed=0)
    model, _, _ = _model(head)
    model.fit([X, y], batch_size=256, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    again = keras.models.load_model(path)
    assert again.evaluate([X, y], batch_size=512, verbose=0) == \
        pytest.approx(model.evaluate([X, y], batch_size=512, verbose=0), rel=1e-6)
    layer = again.layers[-1]
    np.testing.assert_array_equal(layer.head.weights, head.weights)
    assert layer.head.step == head.step and layer.head.sampler.calls == head.sampler.calls
    # both continue identically: body, its optimizer, the head's rows and slots, its
    # sampler stream and Adam's step count were all restored
    for m in (model, again):
        m.fit([X[:256], y[:256]], batch_size=256, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(layer.head.weights, head.weights, rtol=1e-6, atol=1e-7)
    assert layer.head.config()["optimizer_t"] == head.config()["optimizer_t"]


def test_keras_weights_of_a_different_head_are_refused(tmp_path):
    X, y = _task(2)
    model, _, _ = _model(fs.SampledSoftmaxHead(500, 16, num_sampled=16, seed=0))
    model.save_weights(tmp_path / "w.weights.h5")
    other, _, _ = _model(fs.SampledSoftmaxHead(600, 16, num_sampled=16, seed=0))
    with pytest.raises(ValueError, match="num_classes 500 \\(this head: 600\\)"):
        other.load_weights(tmp_path / "w.weights.h5")


def test_keras_memory_mapped_head_is_referenced_not_copied(tmp_path):
    X, y = _task(3, V=20_000)
    head = fs.SampledSoftmaxHead(20_000, 16, num_sampled=16, seed=0, path=tmp_path / "head")
    model, _, _ = _model(head)
    model.fit([X, y], batch_size=256, epochs=1, verbose=0)
    model.save_weights(tmp_path / "w.weights.h5")
    # the body's weights and the head's description, none of its 20,000 rows
    assert (tmp_path / "w.weights.h5").stat().st_size < 20_000 * 16 * 4 / 4
    model.load_weights(tmp_path / "w.weights.h5")          # same store, same step: fine
    model.fit([X[:256], y[:256]], batch_size=256, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="cannot be rewound"):
        model.load_weights(tmp_path / "w.weights.h5")
    head.close()


def test_keras_non_uniform_gradient_is_refused():
    head = fs.SampledSoftmaxHead(500, 16, num_sampled=16, seed=0)
    from fastsampled.keras import SampledSoftmax
    layer = SampledSoftmax(head)
    h = tf.Variable(np.ones((4, 16), np.float32))
    with tf.GradientTape() as tape:
        loss = layer([h, tf.constant([1, 2, 3, 4])], training=True)
        total = tf.reduce_sum(loss * tf.constant([1.0, 2.0, 3.0, 4.0]))
    with pytest.raises(ValueError, match="same for every example"):
        tape.gradient(total, h)
    assert head.step == 0


def test_perceptron_example_matches_tensorflows_curve():
    """examples/tf_perceptron.py: TensorFlow's op and fastsampled's, side by side."""
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / "tf_perceptron.py"
    spec = importlib.util.spec_from_file_location("tf_perceptron_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = example.main(["--steps", "150"])
    (tf_curve, tf_acc), (fs_curve, fs_acc) = out["tf.nn"], out["fastsampled.tf"]
    assert np.mean(tf_curve[-30:]) < 0.5 * np.mean(tf_curve[:30])      # it learns
    np.testing.assert_allclose(fs_curve, tf_curve, rtol=1e-3, atol=1e-4)
    assert abs(fs_acc - tf_acc) <= 0.01


def test_keras_layer_on_another_backend_says_which_it_needs():
    import subprocess
    import sys
    code = ("import fastsampled as fs\nfrom fastsampled.keras import SampledSoftmax\n"
            "try:\n    SampledSoftmax(fs.SampledSoftmaxHead(100, 4, num_sampled=5))\n"
            "except RuntimeError as e:\n    print(e)\n")
    env = dict(os.environ, KERAS_BACKEND="numpy", TF_CPP_MIN_LOG_LEVEL="3")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if r.returncode:
        # Keras's numpy backend itself imports JAX in some versions: without JAX, importing
        # fastsampled.keras fails, and says why and which backend to use
        assert "ImportError: Keras could not be imported" in r.stderr, r.stderr
        assert "KERAS_BACKEND='numpy'" in r.stderr and "TensorFlow backend" in r.stderr
        return
    assert "runs on Keras's TensorFlow backend" in r.stdout and "'numpy'" in r.stdout
