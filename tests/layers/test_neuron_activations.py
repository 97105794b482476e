"""ReLU, Sigmoid, TanH, AbsVal, BNLL, ELU, Swish: forward against the math, gradients numerically."""

from __future__ import annotations

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param, make_blobs

SHAPE = (2, 3, 4, 5)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# (prototxt, reference y = f(x), kink at 0?)
CASES = {
    "relu": ('type: "ReLU"', lambda x: np.where(x > 0, x, 0.0), True),
    "leaky_relu": (
        'type: "ReLU" relu_param { negative_slope: 0.25 }', lambda x: np.where(x > 0, x, 0.25 * x), True
    ),
    "sigmoid": ('type: "Sigmoid"', _sigmoid, False),
    "tanh": ('type: "TanH"', lambda x: (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x)), False),
    "absval": ('type: "AbsVal"', lambda x: np.where(x < 0, -x, x), True),
    "bnll": ('type: "BNLL"', lambda x: np.log(1.0 + np.exp(x)), False),
    "elu": (
        'type: "ELU" elu_param { alpha: 0.5 }', lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1)), True
    ),
    "swish": ('type: "Swish" swish_param { beta: 1.5 }', lambda x: x * _sigmoid(1.5 * x), False),
}


def _layer(text: str):
    return create_layer(layer_param(f'name: "act" {text}'))


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_matches_formula(case):
    text, ref, _ = CASES[case]
    rng = np.random.default_rng(3)
    (bottom,) = make_blobs([SHAPE], rng)
    bottom.data[...] *= 3
    top = Blob(dtype=np.float64)
    layer = _layer(text)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    assert top.shape == SHAPE
    np.testing.assert_allclose(top.data, ref(bottom.data), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_float32_stays_float32(case):
    text, ref, _ = CASES[case]
    rng = np.random.default_rng(4)
    (bottom,) = make_blobs([SHAPE], rng, dtype=np.float32)
    top = Blob(dtype=np.float32)
    layer = _layer(text)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    assert top.data.dtype == np.float32
    np.testing.assert_allclose(top.data, ref(bottom.data.astype(np.float64)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradient(case):
    text, _, kink = CASES[case]
    rng = np.random.default_rng(5)
    (bottom,) = make_blobs([SHAPE], rng)
    top = Blob(dtype=np.float64)
    checker = GradientChecker(1e-2, 1e-3, 1701, 0.0, 0.01) if kink else GradientChecker(1e-2, 1e-3)
    checker.check_gradient_eltwise(_layer(text), [bottom], [top])


def test_bnll_large_inputs_do_not_overflow():
    bottom = Blob((4,), dtype=np.float32)
    bottom.data[...] = [-200.0, -60.0, 60.0, 200.0]
    top = Blob(dtype=np.float32)
    layer = _layer('type: "BNLL"')
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    np.testing.assert_allclose(top.data, [0.0, np.exp(-60.0), 60.0, 200.0], rtol=1e-6, atol=1e-30)
    top.diff[...] = 1
    layer.backward([top], [True], [bottom])
    # e^x is capped at e^50, so the gradient saturates at e^50 / (e^50 + 1) == 1 in float32
    np.testing.assert_allclose(bottom.diff, [0.0, np.exp(-60.0), 1.0, 1.0], rtol=1e-6, atol=1e-30)


def test_relu_gradient_at_zero_takes_the_negative_side():
    bottom = Blob((3,), dtype=np.float64)
    bottom.data[...] = [-1.0, 0.0, 2.0]
    top = Blob(dtype=np.float64)
    layer = _layer('type: "ReLU" relu_param { negative_slope: 0.125 }')
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    top.diff[...] = 1
    layer.backward([top], [True], [bottom])
    np.testing.assert_array_equal(bottom.diff, [0.125, 0.125, 1.0])


def test_no_propagate_down_leaves_bottom_diff():
    (bottom,) = make_blobs([SHAPE], np.random.default_rng(6))
    bottom.diff[...] = 7
    top = Blob(dtype=np.float64)
    layer = _layer('type: "Sigmoid"')
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    top.diff[...] = 1
    layer.backward([top], [False], [bottom])
    assert np.all(bottom.diff == 7)


def test_wrong_bottom_count_names_the_layer():
    a, b = make_blobs([SHAPE, SHAPE], np.random.default_rng(7))
    with pytest.raises(WiringError, match="'act'"):
        _layer('type: "ReLU"').setup([a, b], [Blob()])
