"""Clip (inclusive-boundary gradient) and Threshold (forward only)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param


def _layer(text: str):
    return create_layer(layer_param(f'name: "c" {text}'))


def _blob(values, dtype=np.float64) -> Blob:
    values = np.asarray(values, dtype=dtype)
    b = Blob(values.shape, dtype=dtype)
    b.data[...] = values
    return b


def test_clip_forward_and_boundary_gradient():
    x = _blob([-3.0, -1.0, -0.5, 0.0, 1.5, 2.0, 2.5])
    top = Blob(dtype=np.float64)
    layer = _layer('type: "Clip" clip_param { min: -1 max: 2 }')
    layer.setup([x], [top])
    layer.forward([x], [top])
    np.testing.assert_array_equal(top.data, [-1.0, -1.0, -0.5, 0.0, 1.5, 2.0, 2.0])
    top.diff[...] = np.arange(1.0, 8.0)
    layer.backward([top], [True], [x])
    # the gradient passes where min <= x <= max: both boundaries included
    np.testing.assert_array_equal(x.diff, [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0])


def test_clip_gradient_check_away_from_the_boundaries():
    rng = np.random.default_rng(1)
    values = rng.uniform(-3, 3, (2, 3, 4))
    values[np.abs(values + 1) < 0.05] = 0.3  # keep the central differences off the kinks
    values[np.abs(values - 2) < 0.05] = 0.3
    GradientChecker(1e-2, 1e-3).check_gradient_eltwise(
        _layer('type: "Clip" clip_param { min: -1 max: 2 }'), [_blob(values)], [Blob(dtype=np.float64)]
    )


def test_clip_nan_becomes_min_as_in_caffe():
    x = _blob([np.nan, 5.0], dtype=np.float32)
    top = Blob(dtype=np.float32)
    layer = _layer('type: "Clip" clip_param { min: -1 max: 2 }')
    layer.setup([x], [top])
    layer.forward([x], [top])
    np.testing.assert_array_equal(top.data, [-1.0, 2.0])


def test_clip_needs_min_and_max():
    x = _blob([1.0])
    with pytest.raises(WiringError, match="'c'"):
        _layer('type: "Clip"').setup([x], [Blob(dtype=np.float64)])


@pytest.mark.parametrize("threshold", [0.0, 0.5, -1.25])
def test_threshold_forward(threshold):
    rng = np.random.default_rng(2)
    values = rng.standard_normal((2, 3, 4))
    values[0, 0, 0] = threshold  # equal is not above
    x = _blob(values)
    top = Blob(dtype=np.float64)
    layer = _layer(f'type: "Threshold" threshold_param {{ threshold: {threshold} }}')
    layer.setup([x], [top])
    layer.forward([x], [top])
    assert top.data[0, 0, 0] == 0.0
    np.testing.assert_array_equal(top.data, np.where(values > threshold, 1.0, 0.0))


def test_threshold_has_no_backward():
    x = _blob([0.2, 0.7])
    top = Blob(dtype=np.float64)
    layer = _layer('type: "Threshold" threshold_param { threshold: 0.5 }')
    layer.setup([x], [top])
    layer.forward([x], [top])
    layer.backward([top], [False], [x])  # nothing asked: fine
    with pytest.raises(WiringError, match="no backward"):
        layer.backward([top], [True], [x])
