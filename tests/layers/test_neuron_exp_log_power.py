"""Exp, Log and Power: forward against the math (special cases included), numerical gradients."""

from __future__ import annotations

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param, make_blobs

SHAPE = (2, 3, 2, 3)


def _layer(text: str):
    return create_layer(layer_param(f'name: "f" {text}'))


def _run(text: str, x: np.ndarray, dtype=np.float64):
    bottom = Blob(x.shape, dtype=dtype)
    bottom.data[...] = x
    top = Blob(dtype=dtype)
    layer = _layer(text)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    top.diff[...] = 1
    layer.backward([top], [True], [bottom])
    return top.data.copy(), bottom.diff.copy()


def _positive(rng, low=0.5, high=2.0):
    (b,) = make_blobs([SHAPE], rng)
    b.data[...] = rng.uniform(low, high, SHAPE)
    return b


EXP_CASES = [
    ("exp_param { }", lambda x: np.e**x),
    ("exp_param { base: 2 }", lambda x: 2.0**x),
    ("exp_param { base: 2 scale: 0.5 shift: 1 }", lambda x: 2.0 ** (1 + 0.5 * x)),
    ("exp_param { scale: -0.25 shift: 0.5 }", lambda x: np.e ** (0.5 - 0.25 * x)),
]


@pytest.mark.parametrize("param,ref", EXP_CASES)
def test_exp(param, ref):
    rng = np.random.default_rng(1)
    (bottom,) = make_blobs([SHAPE], rng)
    y, _ = _run(f'type: "Exp" {param}', bottom.data)
    np.testing.assert_allclose(y, ref(bottom.data), rtol=1e-12)
    GradientChecker(1e-2, 1e-3).check_gradient_eltwise(
        _layer(f'type: "Exp" {param}'), [bottom], [Blob(dtype=np.float64)]
    )


LOG_CASES = [
    ("log_param { }", lambda x: np.log(x)),
    ("log_param { base: 2 }", lambda x: np.log(x) / np.log(2.0)),
    ("log_param { base: 10 scale: 0.5 shift: 1 }", lambda x: np.log(1 + 0.5 * x) / np.log(10.0)),
    ("log_param { scale: 2 shift: -0.5 }", lambda x: np.log(2 * x - 0.5)),
]


@pytest.mark.parametrize("param,ref", LOG_CASES)
def test_log(param, ref):
    bottom = _positive(np.random.default_rng(2))
    y, _ = _run(f'type: "Log" {param}', bottom.data)
    np.testing.assert_allclose(y, ref(bottom.data), rtol=1e-12)
    GradientChecker(1e-2, 1e-2).check_gradient_eltwise(
        _layer(f'type: "Log" {param}'), [bottom], [Blob(dtype=np.float64)]
    )


@pytest.mark.parametrize("kind,base", [("Exp", 0), ("Exp", -2), ("Log", 0), ("Log", 1), ("Log", -3)])
def test_bad_base_is_a_wiring_error(kind, base):
    (bottom,) = make_blobs([SHAPE], np.random.default_rng(3))
    layer = _layer(f'type: "{kind}" {kind.lower()}_param {{ base: {base} }}')
    with pytest.raises(WiringError, match="'f'"):
        layer.setup([bottom], [Blob(dtype=np.float64)])


# power, scale, shift; the data is kept where shift + scale * x > 0 so fractional powers are defined
POWER_CASES = [
    (0.37, 0.83, -2.4),
    (0.37, 0.83, 0.0),
    (2.0, 0.34, -2.4),
    (2.0, 0.83, 0.0),
    (3.0, 1.0, 0.5),
    (-1.5, 0.5, 1.0),
    (1.0, 0.83, -2.4),
    (0.0, 0.83, -2.4),
    (0.37, 0.0, 1.5),
    (1.0, 1.0, 0.0),
]


@pytest.mark.parametrize("power,scale,shift", POWER_CASES)
def test_power(power, scale, shift):
    rng = np.random.default_rng(4)
    bottom = _positive(rng, 3.5, 5.0)
    text = f'type: "Power" power_param {{ power: {power} scale: {scale} shift: {shift} }}'
    # the layer works with the float32 values the prototxt holds
    p, a, b = (float(np.float32(v)) for v in (power, scale, shift))
    y, dx = _run(text, bottom.data)
    np.testing.assert_allclose(y, (b + a * bottom.data) ** p, rtol=1e-12)
    if p == 0 or a == 0:
        expected = np.zeros(SHAPE)
    else:
        expected = p * a * (b + a * bottom.data) ** (p - 1)
    np.testing.assert_allclose(dx, expected, rtol=1e-10, atol=1e-14)
    GradientChecker(1e-2, 1e-2, 1701, 0.0, 0.01).check_gradient_eltwise(
        _layer(text), [bottom], [Blob(dtype=np.float64)]
    )


def test_power_scale_zero_ignores_input_even_for_negative_data():
    x = np.array([-3.0, 0.0, 7.0])
    y, dx = _run('type: "Power" power_param { power: 2 scale: 0 shift: 3 }', x)
    np.testing.assert_array_equal(y, [9.0, 9.0, 9.0])
    np.testing.assert_array_equal(dx, [0.0, 0.0, 0.0])


def test_power_shift_zero_gives_nan_gradient_at_zero_as_caffe():
    # Caffe computes power * y / x when shift is 0: 0 / 0 at x = 0
    y, dx = _run('type: "Power" power_param { power: 3 }', np.array([0.0, 2.0]))
    np.testing.assert_array_equal(y, [0.0, 8.0])
    assert np.isnan(dx[0]) and dx[1] == pytest.approx(12.0)
