"""EuclideanLoss and L1Loss: both bottoms get gradients of opposite sign."""

from __future__ import annotations

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker, check_loss_weight_scaling
from tests.layers.helpers import layer_param, make_blobs

SHAPE = (5, 3, 2)


def _layer(kind: str, extra: str = ""):
    return create_layer(layer_param(f'name: "reg" type: "{kind}" {extra}'))


def _pair(seed: int):
    """Two bottoms whose differences stay at least 0.1 away from 0 (L1's kink)."""
    rng = np.random.default_rng(seed)
    a, b = make_blobs([SHAPE, SHAPE], rng)
    gap = rng.uniform(0.1, 1.0, SHAPE) * rng.choice([-1.0, 1.0], SHAPE)
    b.data[...] = a.data + gap
    return a, b


@pytest.mark.parametrize(
    "kind,ref",
    [
        ("EuclideanLoss", lambda d: (d**2).sum() / SHAPE[0] / 2),
        ("L1Loss", lambda d: np.abs(d).sum() / SHAPE[0]),
    ],
)
def test_forward(kind, ref):
    a, b = _pair(1)
    top = Blob(dtype=np.float64)
    layer = _layer(kind)
    layer.setup([a, b], [top])
    loss = layer.forward([a, b], [top])
    assert top.shape == ()
    assert top.data[()] == pytest.approx(ref(a.data - b.data), rel=1e-12)
    assert loss == pytest.approx(top.data[()])
    assert layer.allow_force_backward(0) and layer.allow_force_backward(1)


@pytest.mark.parametrize("kind", ["EuclideanLoss", "L1Loss"])
def test_gradient_both_bottoms(kind):
    a, b = _pair(2)
    GradientChecker(1e-2, 1e-2, 1701).check_gradient(_layer(kind), [a, b], [Blob(dtype=np.float64)])


def test_l1_gradient_is_sign_over_batch_and_zero_where_equal():
    a, b = _pair(3)
    b.data[0, 0, 0] = a.data[0, 0, 0]
    top = Blob(dtype=np.float64)
    layer = _layer("L1Loss", "loss_weight: 3")
    layer.setup([a, b], [top])
    layer.forward([a, b], [top])
    layer.backward([top], [True, True], [a, b])
    expected = 3.0 * np.sign(a.data - b.data) / SHAPE[0]
    assert expected[0, 0, 0] == 0
    np.testing.assert_allclose(a.diff, expected)
    np.testing.assert_allclose(b.diff, -expected)


@pytest.mark.parametrize("kind", ["EuclideanLoss", "L1Loss"])
def test_only_requested_bottoms_get_gradients(kind):
    a, b = _pair(4)
    b.diff[...] = 5.0
    top = Blob(dtype=np.float64)
    layer = _layer(kind)
    layer.setup([a, b], [top])
    layer.forward([a, b], [top])
    layer.backward([top], [True, False], [a, b])
    assert np.all(b.diff == 5.0) and np.any(a.diff)


@pytest.mark.parametrize("kind", ["EuclideanLoss", "L1Loss"])
def test_loss_weight_scaling(kind):
    a, b = _pair(5)
    check_loss_weight_scaling(
        lambda w: _layer(kind, f"loss_weight: {w}"),
        [a, b],
        [Blob(dtype=np.float64)],
        weights=(2.0, -1.0, 3.5),
    )


@pytest.mark.parametrize("kind", ["EuclideanLoss", "L1Loss"])
def test_mismatched_inputs(kind):
    a = Blob((5, 6), dtype=np.float64)
    b = Blob((5, 7), dtype=np.float64)
    with pytest.raises(WiringError, match="'reg'"):
        _layer(kind).setup([a, b], [Blob(dtype=np.float64)])
