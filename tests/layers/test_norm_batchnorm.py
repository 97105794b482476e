"""BatchNorm: batch statistics, Caffe's running averages and scale factor, global stats, gradients."""

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param, make_blobs

EPS = float(np.float32(1e-5))


def bn_layer(body: str = "", phase: str = "TRAIN", extra: str = ""):
    return create_layer(
        layer_param(f'name: "bn" type: "BatchNorm" phase: {phase} {extra} batch_norm_param {{ {body} }}')
    )


def batch_stats(x):
    axes = (0,) + tuple(range(2, x.ndim))
    return x.mean(axis=axes), x.var(axis=axes)


def bcast(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def test_train_normalizes_with_batch_stats():
    layer = bn_layer()
    bottom = make_blobs([(3, 2, 4, 5)], np.random.default_rng(0))
    bottom[0].data[...] = bottom[0].data * 3 + 2
    top = Blob(dtype=np.float64)
    layer.setup(bottom, [top])
    layer.forward(bottom, [top])
    x = bottom[0].data
    mean, var = batch_stats(x)
    ref = (x - bcast(mean, 4)) / np.sqrt(bcast(var, 4) + EPS)
    np.testing.assert_allclose(top.data, ref, rtol=1e-10, atol=1e-12)
    assert [b.shape for b in layer.blobs] == [(2,), (2,), (1,)]


def test_running_averages_after_two_passes_and_test_phase():
    maf = float(np.float32(0.9))
    layer = bn_layer("moving_average_fraction: 0.9")
    rng = np.random.default_rng(1)
    x1 = make_blobs([(2, 3, 2, 2)], rng)
    x2 = make_blobs([(2, 3, 2, 2)], rng)
    x2[0].data[...] = x2[0].data * 2 - 1
    top = Blob(dtype=np.float64)
    layer.setup(x1, [top])
    layer.forward(x1, [top])
    layer.forward(x2, [top])
    m = 2 * 2 * 2
    (m1, v1), (m2, v2) = batch_stats(x1[0].data), batch_stats(x2[0].data)
    v1c, v2c = v1 * m / (m - 1), v2 * m / (m - 1)
    np.testing.assert_allclose(layer.blobs[2].data, [maf * 1 + 1])
    np.testing.assert_allclose(layer.blobs[0].data, maf * m1 + m2, rtol=1e-12)
    np.testing.assert_allclose(layer.blobs[1].data, maf * v1c + v2c, rtol=1e-12)

    # A TEST-phase layer with those blobs divides them by the scale factor.
    param = layer.to_proto()
    param.phase = 1  # TEST
    test_layer = create_layer(param)
    x3 = make_blobs([(2, 3, 2, 2)], rng)
    out = Blob(dtype=np.float64)
    test_layer.setup(x3, [out])
    test_layer.forward(x3, [out])
    s = maf + 1
    mean, var = (maf * m1 + m2) / s, (maf * v1c + v2c) / s
    ref = (x3[0].data - bcast(mean, 4)) / np.sqrt(bcast(var, 4) + EPS)
    np.testing.assert_allclose(out.data, ref, rtol=1e-6)
    np.testing.assert_allclose(test_layer.blobs[2].data, [s], rtol=1e-6)  # unchanged in TEST


def test_zero_scale_factor_means_zero_statistics():
    layer = bn_layer(phase="TEST")
    bottom = make_blobs([(2, 2, 3)], np.random.default_rng(2))
    top = Blob(dtype=np.float64)
    layer.setup(bottom, [top])
    layer.blobs[0].data[...] = 5.0
    layer.blobs[1].data[...] = 7.0
    layer.forward(bottom, [top])
    np.testing.assert_allclose(top.data, bottom[0].data / np.sqrt(EPS))


@pytest.mark.parametrize(
    "phase, body, global_stats",
    [("TRAIN", "", False), ("TEST", "", True), ("TEST", "use_global_stats: false", False),
     ("TRAIN", "use_global_stats: true", True)],
)
def test_use_global_stats_default_follows_phase(phase, body, global_stats):
    layer = bn_layer(body, phase=phase)
    bottom = make_blobs([(4, 2)], np.random.default_rng(3))
    top = Blob(dtype=np.float64)
    layer.setup(bottom, [top])
    layer.blobs[2].data[...] = 1.0
    layer.forward(bottom, [top])
    assert layer.use_global_stats is global_stats
    assert bool(layer.blobs[2].data[0] == 1.0) is global_stats  # only batch statistics update the factor


def test_statistics_are_masked_with_lr_mult_zero():
    layer = bn_layer()
    bottom = make_blobs([(2, 2, 2, 2)], np.random.default_rng(4))
    layer.setup(bottom, [Blob(dtype=np.float64)])
    assert [p.lr_mult for p in layer.layer_param.param] == [0.0, 0.0, 0.0]
    layer.setup(bottom, [Blob(dtype=np.float64)])  # a second setup adds nothing
    assert len(layer.layer_param.param) == 3
    bad = bn_layer(extra="param { lr_mult: 0 } param { lr_mult: 1 }")
    with pytest.raises(WiringError, match="statistics as layer parameters") as info:
        bad.setup(bottom, [Blob(dtype=np.float64)])
    assert info.value.layer == "bn"


def test_gradient_train():
    bottom = make_blobs([(2, 3, 2, 3)], np.random.default_rng(5))
    GradientChecker(1e-3, 1e-5).check_gradient(bn_layer("eps: 0.01"), bottom, [Blob(dtype=np.float64)])
    bottom2d = make_blobs([(5, 3)], np.random.default_rng(6))
    GradientChecker(1e-3, 1e-5).check_gradient_exhaustive(bn_layer(), bottom2d, [Blob(dtype=np.float64)])


def test_gradient_global_stats_numerically():
    layer = bn_layer("use_global_stats: true")
    bottom = make_blobs([(2, 2, 3)], np.random.default_rng(7))
    top = Blob(dtype=np.float64)
    layer.setup(bottom, [top])
    layer.blobs[0].data[...] = [0.4, -1.0]
    layer.blobs[1].data[...] = [2.0, 0.5]
    layer.blobs[2].data[...] = 2.0
    layer.forward(bottom, [top])
    weights = np.random.default_rng(8).standard_normal(top.shape)
    top.diff[...] = weights
    layer.backward([top], [True], bottom)
    analytic = bottom[0].diff.copy()
    numeric = np.zeros_like(analytic)
    flat = bottom[0].data.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        vals = []
        for step in (1e-4, -1e-4):
            flat[i] = orig + step
            layer.forward(bottom, [top])
            vals.append(float((top.data * weights).sum()))
        flat[i] = orig
        numeric.reshape(-1)[i] = (vals[0] - vals[1]) / 2e-4
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(analytic, weights / bcast(np.sqrt(np.array([1.0, 0.25]) + EPS), 3))


def test_in_place_forward_and_backward():
    rng = np.random.default_rng(9)
    (x,) = make_blobs([(3, 2, 2)], rng)
    original = x.data.copy()
    layer = bn_layer()
    layer.setup([x], [x])
    layer.forward([x], [x])
    mean, var = batch_stats(original)
    np.testing.assert_allclose(x.data, (original - bcast(mean, 3)) / np.sqrt(bcast(var, 3) + EPS))
    x.diff[...] = 1.0  # a constant gradient is removed entirely by the mean subtraction
    layer.backward([x], [True], [x])
    np.testing.assert_allclose(x.diff, 0.0, atol=1e-12)


def test_stored_blobs_are_count_checked():
    param = layer_param('name: "bn" type: "BatchNorm"')
    for n in (3, 3, 2):
        blob = param.blobs.add()
        blob.shape.dim.append(n)
        blob.data.extend([0.0] * n)
    layer = create_layer(param)
    with pytest.raises(WiringError, match="scale factor"):
        layer.setup(make_blobs([(2, 3)], np.random.default_rng(0)), [Blob(dtype=np.float64)])
