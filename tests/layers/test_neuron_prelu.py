"""PReLU: per-channel and shared slopes, gradients for slopes and bottom, in place."""

from __future__ import annotations

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param, make_blobs

SHAPE = (2, 3, 2, 2)


def _layer(extra: str = ""):
    return create_layer(layer_param(f'name: "prelu" type: "PReLU" {extra}'))


def _reference(x: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    s = np.broadcast_to(np.asarray(slopes).reshape(-1), (x.shape[1],)).reshape(1, -1, *([1] * (x.ndim - 2)))
    return np.where(x > 0, x, s * x)


def test_default_slope_is_a_quarter_per_channel():
    (x,) = make_blobs([SHAPE], np.random.default_rng(1))
    top = Blob(dtype=np.float64)
    layer = _layer()
    layer.setup([x], [top])
    assert layer.blobs[0].shape == (3,)
    np.testing.assert_array_equal(layer.blobs[0].data, [0.25, 0.25, 0.25])
    layer.forward([x], [top])
    np.testing.assert_allclose(top.data, _reference(x.data, [0.25] * 3))


def test_channel_shared_is_one_scalar():
    (x,) = make_blobs([SHAPE], np.random.default_rng(2))
    top = Blob(dtype=np.float64)
    layer = _layer("prelu_param { channel_shared: true }")
    layer.setup([x], [top])
    assert layer.blobs[0].shape == () and layer.blobs[0].count == 1


def test_forward_with_filled_slopes():
    rng = np.random.default_rng(3)
    (x,) = make_blobs([SHAPE], rng)
    top = Blob(dtype=np.float64)
    layer = _layer('prelu_param { filler { type: "uniform" min: -1 max: 1 } }')
    layer.setup([x], [top])
    slopes = layer.blobs[0].data.copy()
    assert np.all(np.abs(slopes) <= 1) and len(set(slopes.tolist())) == 3
    layer.forward([x], [top])
    np.testing.assert_allclose(top.data, _reference(x.data, slopes))


@pytest.mark.parametrize("shared", ["false", "true"])
def test_gradient(shared):
    rng = np.random.default_rng(4)
    (x,) = make_blobs([SHAPE], rng)
    filler = 'filler { type: "uniform" min: 0.1 max: 0.6 }'
    layer = _layer(f"prelu_param {{ channel_shared: {shared} {filler} }}")
    top = Blob(dtype=np.float64)
    GradientChecker(1e-2, 1e-3, 1701, 0.0, 0.01).check_gradient_exhaustive(layer, [x], [top])


def test_slope_gradient_accumulates_and_matches_formula():
    rng = np.random.default_rng(5)
    (x,) = make_blobs([SHAPE], rng)
    top = Blob(dtype=np.float64)
    layer = _layer()
    layer.setup([x], [top])
    layer.forward([x], [top])
    dy = rng.standard_normal(SHAPE)
    top.diff[...] = dy
    layer.blobs[0].diff[...] = 1.0
    layer.backward([top], [True], [x])
    expected = 1.0 + (dy * x.data * (x.data <= 0)).sum(axis=(0, 2, 3))
    np.testing.assert_allclose(layer.blobs[0].diff, expected)
    np.testing.assert_allclose(x.diff, dy * np.where(x.data > 0, 1.0, 0.25))


def test_in_place_matches_separate_top():
    rng = np.random.default_rng(6)
    (x,) = make_blobs([SHAPE], rng)
    dy = rng.standard_normal(SHAPE)
    ref_layer = _layer('prelu_param { filler { type: "uniform" min: -0.5 max: 0.5 } }')
    top = Blob(dtype=np.float64)
    ref_layer.setup([x], [top])
    ref_layer.forward([x], [top])
    top.diff[...] = dy
    ref_layer.backward([top], [True], [x])

    blob = Blob(SHAPE, dtype=np.float64)
    blob.data[...] = x.data
    layer = _layer()
    layer.setup([blob], [blob])
    layer.blobs[0].data[...] = ref_layer.blobs[0].data
    layer.forward([blob], [blob])
    np.testing.assert_allclose(blob.data, top.data)
    blob.diff[...] = dy
    layer.backward([blob], [True], [blob])
    np.testing.assert_allclose(blob.diff, x.diff)
    np.testing.assert_allclose(layer.blobs[0].diff, ref_layer.blobs[0].diff)


def test_one_axis_bottom_is_rejected():
    x = Blob((4,), dtype=np.float64)
    with pytest.raises(WiringError, match="'prelu'"):
        _layer().setup([x], [Blob(dtype=np.float64)])


def test_loaded_slope_blob_of_wrong_size_is_rejected():
    param = layer_param('name: "prelu" type: "PReLU" blobs { shape { dim: 5 } data: [1, 2, 3, 4, 5] }')
    (x,) = make_blobs([SHAPE], np.random.default_rng(7))
    with pytest.raises(WiringError, match="slope"):
        create_layer(param).setup([x], [Blob(dtype=np.float64)])
