"""SampledSoftmaxHead.loss_and_grads / apply_grads / loss: the two halves of train_step."""
import numpy as np
import pytest

import fastsampled as fs

V, D, B = 500, 8, 16


def _xy(seed=0, num_true=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, D)).astype(np.float32)
    y = rng.integers(0, V, (B, num_true)) if num_true > 1 else rng.integers(0, V, B)
    return x, y


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_loss_and_grads_then_apply_is_train_step(optimizer):
    a = fs.SampledSoftmaxHead(V, D, num_sampled=20, optimizer=optimizer, seed=3)
    b = fs.SampledSoftmaxHead(V, D, num_sampled=20, optimizer=optimizer, seed=3)
    for s in range(3):
        x, y = _xy(s)
        la, dxa = a.train_step(x, y)
        lb, g = b.loss_and_grads(x, y)
        assert b.step == s and b.sampler.calls == s + 1      # sampled, nothing applied
        b.apply_grads(g)
        assert la == lb
        np.testing.assert_array_equal(dxa, g.inputs)
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.biases, b.biases)
    assert a.step == b.step == 3


def test_reductions_and_fixed_sampled_values():
    head = fs.SampledSoftmaxHead(V, D, num_sampled=20, num_true=2, seed=1)
    x, y = _xy(1, num_true=2)
    per, g_sum = head.loss_and_grads(x, y, reduction="none")
    sv = g_sum.sampled_values
    assert per.shape == (B,) and head.sampler.calls == 1
    mean, g_mean = head.loss_and_grads(x, y, reduction="mean", sampled_values=sv)
    total, g_tot = head.loss_and_grads(x, y, reduction="sum", sampled_values=sv)
    assert head.sampler.calls == 1                # given sampled_values: the stream stays
    assert mean == pytest.approx(per.mean(), rel=1e-6)
    assert total == pytest.approx(per.sum(dtype=np.float64), rel=1e-6)
    np.testing.assert_array_equal(g_sum.ids, g_mean.ids)
    np.testing.assert_allclose(g_tot.weights, g_sum.weights, rtol=1e-6)
    np.testing.assert_allclose(g_mean.weights * B, g_sum.weights, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(g_mean.inputs * B, g_sum.inputs, rtol=1e-5, atol=1e-7)
    # the same as the functional loss with those sampled values
    ref, rg = fs.sampled_softmax_loss_and_grads(head.weights, head.biases, y, x, 20, V,
                                                num_true=2, sampled_values=sv)
    np.testing.assert_allclose(per, ref, rtol=1e-6)
    np.testing.assert_allclose(g_sum.inputs, rg.inputs, rtol=1e-6)
    assert head.loss(x, y, sampled_values=sv) == pytest.approx(mean, rel=1e-6)
    assert head.step == 0


def test_refusals_leave_the_head_as_it_was():
    head = fs.SampledSoftmaxHead(V, D, num_sampled=20, seed=0)
    W0 = head.weights.copy()
    x, y = _xy()
    x[0] = 3e38                                   # finite input, overflowing logits
    with pytest.raises(FloatingPointError, match="nothing was written"):
        head.loss_and_grads(x, y)
    assert head.sampler.calls == 0
    with pytest.raises(ValueError, match="reduction"):
        head.loss_and_grads(*_xy(), reduction="max")
    with pytest.raises(TypeError, match="SparseGrads"):
        head.apply_grads((np.arange(3), np.zeros((3, D)), np.zeros(3)))
    _, g = head.loss_and_grads(*_xy())
    g.weights[0, 0] = np.nan
    with pytest.raises(FloatingPointError):
        head.apply_grads(g)
    assert head.step == 0
    np.testing.assert_array_equal(head.weights, W0)
    with pytest.raises(ValueError, match="sampled_candidates"):
        head.loss_and_grads(*_xy(), sampled_values=(np.arange(3), np.ones((B, 1)), np.ones(3)))


def test_sampler_stream_survives_save_load_without_updates(tmp_path):
    head = fs.SampledSoftmaxHead(V, D, num_sampled=20, seed=2, path=tmp_path / "h")
    for s in range(3):                            # sampled three times, updated once
        _, g = head.loss_and_grads(*_xy(s))
    head.apply_grads(g)
    head.checkpoint()
    nxt = head.loss_and_grads(*_xy(9))[1].sampled_values[0]
    head.close()
    again = fs.SampledSoftmaxHead.load(tmp_path / "h")
    assert (again.step, again.sampler.calls) == (1, 3)
    np.testing.assert_array_equal(again.loss_and_grads(*_xy(9))[1].sampled_values[0], nxt)
    again.close()
