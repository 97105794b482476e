"""LRN across and within channels: forward against the formula, gradients, errors."""

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param, make_blobs


def lrn_layer(body: str):
    return create_layer(layer_param(f'name: "norm" type: "LRN" lrn_param {{ {body} }}'))


def run(layer, shape, dtype=np.float64):
    bottom = make_blobs([shape], np.random.default_rng(0), dtype=dtype)
    top = Blob(dtype=dtype)
    layer.setup(bottom, [top])
    layer.forward(bottom, [top])
    return bottom[0].data.astype(np.float64), top


def across_reference(x, size, alpha, beta, k):
    c = x.shape[1]
    half = (size - 1) // 2
    y = np.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - half), min(c, ch + half + 1)
        scale = k + alpha / size * (x[:, lo:hi] ** 2).sum(axis=1)
        y[:, ch] = x[:, ch] * scale**-beta
    return y


def within_reference(x, size, alpha, beta):
    half = (size - 1) // 2
    h, w = x.shape[2:]
    sq = np.pad(x**2, ((0, 0), (0, 0), (half, half), (half, half)))
    y = np.empty_like(x)
    for i in range(h):
        for j in range(w):
            s = sq[:, :, i : i + size, j : j + size].sum(axis=(2, 3))
            y[:, :, i, j] = x[:, :, i, j] * (1 + alpha / size**2 * s) ** -beta
    return y


def f32(v: float) -> float:
    """The proto stores alpha/beta/k as float32; Caffe computes with those values."""
    return float(np.float32(v))


@pytest.mark.parametrize(
    "size, alpha, beta, k", [(5, 1.0, 0.75, 1.0), (3, 0.5, 0.6, 2.0), (1, 2.0, 1.5, 1.0)]
)
def test_across_channels_forward(size, alpha, beta, k):
    layer = lrn_layer(f"local_size: {size} alpha: {alpha} beta: {beta} k: {k}")
    x, top = run(layer, (2, 7, 3, 2))
    np.testing.assert_allclose(top.data, across_reference(x, size, f32(alpha), f32(beta), f32(k)), rtol=1e-12)


def test_across_channels_float32():
    x, top = run(lrn_layer("local_size: 3"), (2, 4, 3, 3), dtype=np.float32)
    assert top.dtype == np.float32
    np.testing.assert_allclose(top.data, across_reference(x, 3, 1.0, 0.75, 1.0), rtol=1e-5)


def test_within_channel_forward_ignores_k():
    layer = lrn_layer("local_size: 3 alpha: 0.7 beta: 0.75 k: 5 norm_region: WITHIN_CHANNEL")
    x, top = run(layer, (2, 2, 4, 5))
    np.testing.assert_allclose(top.data, within_reference(x, 3, f32(0.7), 0.75), rtol=1e-12)


@pytest.mark.parametrize(
    "body",
    [
        "local_size: 3 alpha: 0.8 beta: 0.75 k: 1.5",
        "local_size: 5 alpha: 1.0 beta: 0.75",
        "local_size: 3 alpha: 0.8 beta: 0.6 norm_region: WITHIN_CHANNEL",
    ],
)
def test_lrn_gradient(body):
    bottom = make_blobs([(2, 6, 3, 3)], np.random.default_rng(1))
    GradientChecker(1e-4, 1e-6).check_gradient(lrn_layer(body), bottom, [Blob(dtype=np.float64)])


def test_lrn_gradient_exhaustive_small():
    bottom = make_blobs([(1, 3, 2, 2)], np.random.default_rng(2))
    checker = GradientChecker(1e-4, 1e-6)
    checker.check_gradient_exhaustive(
        lrn_layer("local_size: 3 alpha: 2 beta: 0.75"), bottom, [Blob(dtype=np.float64)]
    )
    checker.check_gradient_exhaustive(
        lrn_layer("local_size: 3 alpha: 2 beta: 0.75 norm_region: WITHIN_CHANNEL"),
        bottom,
        [Blob(dtype=np.float64)],
    )


def test_lrn_errors():
    with pytest.raises(WiringError, match="odd") as info:
        run(lrn_layer("local_size: 4"), (1, 4, 2, 2))
    assert info.value.layer == "norm"
    with pytest.raises(WiringError, match="4 axes"):
        run(lrn_layer("local_size: 3"), (1, 4, 2))
