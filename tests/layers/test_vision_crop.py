"""Crop: shapes and offsets per axis, backward into the cropped window, errors."""

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param, make_blobs


def crop_layer(body: str):
    return create_layer(layer_param(f'name: "crop" type: "Crop" crop_param {{ {body} }}'))


def run(body, shape, ref_shape):
    layer = crop_layer(body)
    bottom = make_blobs([shape, ref_shape], np.random.default_rng(0))
    top = Blob(dtype=np.float64)
    layer.setup(bottom, [top])
    layer.forward(bottom, [top])
    return layer, bottom, top


def test_default_axis_2_single_offset():
    _, (x, _), top = run("offset: 1", (2, 3, 6, 5), (1, 1, 3, 2))
    assert top.shape == (2, 3, 3, 2)
    np.testing.assert_array_equal(top.data, x.data[:, :, 1:4, 1:3])


def test_offsets_per_axis_from_axis_1():
    _, (x, _), top = run("axis: 1 offset: 0 offset: 2 offset: 1", (2, 4, 6, 5), (9, 3, 4, 2))
    assert top.shape == (2, 3, 4, 2)
    np.testing.assert_array_equal(top.data, x.data[:, 0:3, 2:6, 1:3])


def test_negative_axis_and_no_offset():
    _, (x, _), top = run("axis: -1", (2, 3, 4, 5), (1, 1, 1, 3))
    np.testing.assert_array_equal(top.data, x.data[..., :3])


def test_backward_fills_window_and_zeros_elsewhere():
    layer, bottom, top = run("offset: 1 offset: 2", (1, 2, 4, 5), (1, 1, 2, 2))
    bottom[0].diff[...] = 7.0
    top.diff[...] = np.arange(8.0).reshape(top.shape)
    layer.backward([top], [True, False], bottom)
    expected = np.zeros((1, 2, 4, 5))
    expected[:, :, 1:3, 2:4] = np.arange(8.0).reshape(1, 2, 2, 2)
    np.testing.assert_array_equal(bottom[0].diff, expected)
    GradientChecker(1e-3, 1e-6).check_gradient(layer, bottom, [top], check_bottom=0)


@pytest.mark.parametrize(
    "body, shape, ref, message",
    [
        ("offset: 3", (1, 1, 4, 4), (1, 1, 2, 2), "invalid crop parameters in dimension 2"),
        ("offset: 1 offset: 1 offset: 1", (1, 1, 4, 4), (1, 1, 2, 2), "number of offset values"),
        ("axis: 4", (1, 1, 4, 4), (1, 1, 2, 2), "out of range"),
        ("axis: 1", (1, 2, 4, 4), (1, 2), "no axis 2"),
    ],
)
def test_crop_errors(body, shape, ref, message):
    with pytest.raises(WiringError, match=message) as info:
        run(body, shape, ref)
    assert info.value.layer == "crop"
