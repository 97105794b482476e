"""Every element-wise neuron layer run in place (top is bottom) gives the same data and gradient."""

from __future__ import annotations

import numpy as np
import pytest

from engine import common
from engine.blob import Blob
from engine.layer import create_layer
from tests.layers.helpers import layer_param

CONFIGS = [
    'type: "ReLU"',
    'type: "ReLU" relu_param { negative_slope: 0.5 }',
    'type: "ReLU" relu_param { negative_slope: -0.5 }',
    'type: "Sigmoid"',
    'type: "TanH"',
    'type: "AbsVal"',
    'type: "BNLL"',
    'type: "ELU" elu_param { alpha: 0.7 }',
    'type: "ELU" elu_param { alpha: -0.7 }',
    'type: "Exp" exp_param { base: 2 scale: 0.5 shift: 0.25 }',
    'type: "Log" log_param { scale: 0.5 shift: 3 }',
    'type: "Power" power_param { power: 0.5 scale: 0.5 shift: 3 }',
    'type: "Power" power_param { power: 3 scale: 2 }',
    'type: "Power" power_param { power: 2 scale: 2 shift: 1 }',
    'type: "Clip" clip_param { min: -0.5 max: 0.75 }',
    'type: "Swish" swish_param { beta: 0.8 }',
    'type: "Dropout" phase: TRAIN dropout_param { dropout_ratio: 0.4 }',
    'type: "Threshold" threshold_param { threshold: 0.1 }',
]
SHAPE = (2, 3, 4)


def _run(text: str, x: np.ndarray, dy: np.ndarray, in_place: bool):
    layer = create_layer(layer_param(f'name: "n" {text}'))
    bottom = Blob(SHAPE, dtype=np.float64)
    bottom.data[...] = x
    top = bottom if in_place else Blob(dtype=np.float64)
    common.set_random_seed(11)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    y = top.data.copy()
    if layer.type == "Threshold":
        return y, None
    top.diff[...] = dy
    layer.backward([top], [True], [bottom])
    return y, bottom.diff.copy()


@pytest.mark.parametrize("text", CONFIGS)
def test_in_place_equals_not_in_place(text):
    rng = np.random.default_rng(5)
    x = rng.uniform(-2, 2, SHAPE)
    dy = rng.standard_normal(SHAPE)
    y_ref, dx_ref = _run(text, x, dy, in_place=False)
    y, dx = _run(text, x, dy, in_place=True)
    np.testing.assert_allclose(y, y_ref, rtol=1e-13)
    if dx_ref is not None:
        assert np.all(np.isfinite(dx_ref))
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-13)
