"""Softmax: any axis, stable for large inputs, exhaustive gradient, in place."""

from __future__ import annotations

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param, make_blobs

SHAPE = (2, 4, 3, 2)


def _layer(axis: int | None = None):
    extra = "" if axis is None else f"softmax_param {{ axis: {axis} }}"
    return create_layer(layer_param(f'name: "sm" type: "Softmax" {extra}'))


def _reference(x: np.ndarray, axis: int) -> np.ndarray:
    out = np.empty_like(x)
    moved = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])
    res = np.array([[np.exp(v) / sum(np.exp(w) for w in row) for v in row] for row in moved])
    out_m = np.moveaxis(out, axis, -1)
    out_m[...] = res.reshape(out_m.shape)
    return out


@pytest.mark.parametrize("axis", [None, 0, 2, -1])
def test_forward(axis):
    (x,) = make_blobs([SHAPE], np.random.default_rng(1))
    top = Blob(dtype=np.float64)
    layer = _layer(axis)
    layer.setup([x], [top])
    layer.forward([x], [top])
    a = 1 if axis is None else axis
    np.testing.assert_allclose(top.data, _reference(x.data, a), rtol=1e-12)
    np.testing.assert_allclose(top.data.sum(axis=a), 1.0, rtol=1e-12)


def test_large_inputs_are_stable():
    x = Blob((1, 3), dtype=np.float32)
    x.data[...] = [1000.0, 1001.0, 999.0]
    top = Blob(dtype=np.float32)
    layer = _layer()
    layer.setup([x], [top])
    layer.forward([x], [top])
    e = np.exp([-1.0, 0.0, -2.0])
    np.testing.assert_allclose(top.data[0], e / e.sum(), rtol=1e-6)


@pytest.mark.parametrize("axis", [None, 2])
def test_gradient(axis):
    (x,) = make_blobs([(2, 3, 2, 2)], np.random.default_rng(2))
    GradientChecker(1e-2, 1e-3).check_gradient_exhaustive(_layer(axis), [x], [Blob(dtype=np.float64)])


def test_in_place_matches_separate_top():
    rng = np.random.default_rng(3)
    (x,) = make_blobs([SHAPE], rng)
    dy = rng.standard_normal(SHAPE)
    top = Blob(dtype=np.float64)
    layer = _layer()
    layer.setup([x], [top])
    layer.forward([x], [top])
    top.diff[...] = dy
    layer.backward([top], [True], [x])
    blob = Blob(SHAPE, dtype=np.float64)
    blob.data[...] = x.data
    layer = _layer()
    layer.setup([blob], [blob])
    layer.forward([blob], [blob])
    np.testing.assert_allclose(blob.data, top.data)
    blob.diff[...] = dy
    layer.backward([blob], [True], [blob])
    np.testing.assert_allclose(blob.diff, x.diff)


def test_axis_out_of_range():
    (x,) = make_blobs([SHAPE], np.random.default_rng(4))
    with pytest.raises(WiringError, match="'sm'"):
        _layer(4).setup([x], [Blob(dtype=np.float64)])
