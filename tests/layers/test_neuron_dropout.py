"""Dropout: Bernoulli mask and 1/(1-p) scaling at TRAIN, identity at TEST, the scale_train fork field."""

from __future__ import annotations

import numpy as np
import pytest

from engine import common
from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param

SHAPE = (4, 5, 6, 7)


def _layer(phase: str, extra: str = ""):
    return create_layer(layer_param(f'name: "drop" type: "Dropout" phase: {phase} {extra}'))


def _ones_run(phase: str, extra: str = "", dtype=np.float64):
    x = Blob(SHAPE, dtype=dtype)
    x.data[...] = 1.0
    top = Blob(dtype=dtype)
    layer = _layer(phase, extra)
    layer.setup([x], [top])
    layer.forward([x], [top])
    return layer, x, top


@pytest.mark.parametrize("ratio", [0.5, 0.2, 0.8])
def test_train_drops_and_scales(ratio):
    _, _, top = _ones_run("TRAIN", f"dropout_param {{ dropout_ratio: {ratio} }}")
    scale = 1.0 / (1.0 - np.float32(ratio))
    values = np.unique(top.data)
    np.testing.assert_allclose(values, [0.0, scale])
    kept = np.mean(top.data != 0)
    # 840 Bernoulli draws: kept fraction within 5 standard deviations of 1 - ratio
    sd = np.sqrt(ratio * (1 - ratio) / top.count)
    assert abs(kept - (1 - ratio)) < 5 * sd


def test_test_phase_is_identity():
    rng = np.random.default_rng(1)
    x = Blob(SHAPE, dtype=np.float64)
    x.data[...] = rng.standard_normal(SHAPE)
    top = Blob(dtype=np.float64)
    layer = _layer("TEST", "dropout_param { dropout_ratio: 0.3 }")
    layer.setup([x], [top])
    layer.forward([x], [top])
    np.testing.assert_array_equal(top.data, x.data)
    top.diff[...] = rng.standard_normal(SHAPE)
    layer.backward([top], [True], [x])
    np.testing.assert_array_equal(x.diff, top.diff)


def test_scale_train_false_scales_at_test_instead():
    extra = "dropout_param { dropout_ratio: 0.25 scale_train: false }"
    _, _, top = _ones_run("TRAIN", extra)
    np.testing.assert_array_equal(np.unique(top.data), [0.0, 1.0])
    layer, x, top = _ones_run("TEST", extra)
    np.testing.assert_allclose(top.data, 0.75)
    top.diff[...] = 2.0
    layer.backward([top], [True], [x])
    np.testing.assert_allclose(x.diff, 1.5)


def test_backward_uses_the_forward_mask():
    layer, x, top = _ones_run("TRAIN")
    top.diff[...] = 3.0
    layer.backward([top], [True], [x])
    np.testing.assert_array_equal(x.diff, 3.0 * top.data)


def test_same_seed_same_mask_new_draw_each_forward():
    common.set_random_seed(42)
    _, _, a = _ones_run("TRAIN")
    common.set_random_seed(42)
    layer, x, b = _ones_run("TRAIN")
    np.testing.assert_array_equal(a.data, b.data)
    first = b.data.copy()
    layer.forward([x], [b])
    assert not np.array_equal(first, b.data)


def test_gradient_train():
    rng = np.random.default_rng(2)
    x = Blob((2, 3, 4), dtype=np.float64)
    x.data[...] = rng.standard_normal(x.shape)
    GradientChecker(1e-2, 1e-3).check_gradient_eltwise(_layer("TRAIN"), [x], [Blob(dtype=np.float64)])


def test_in_place_train():
    common.set_random_seed(7)
    _, _, ref = _ones_run("TRAIN")
    common.set_random_seed(7)
    x = Blob(SHAPE, dtype=np.float64)
    x.data[...] = 1.0
    layer = _layer("TRAIN")
    layer.setup([x], [x])
    layer.forward([x], [x])
    np.testing.assert_array_equal(x.data, ref.data)
    x.diff[...] = 1.0
    layer.backward([x], [True], [x])
    np.testing.assert_array_equal(x.diff, ref.data)


def test_sample_weights_test_is_not_supported():
    with pytest.raises(WiringError, match="not supported"):
        _ones_run("TEST", "dropout_param { sample_weights_test: true }")


@pytest.mark.parametrize("ratio", [1.0, -0.1, 1.5])
def test_bad_ratio(ratio):
    with pytest.raises(WiringError, match="'drop'"):
        _ones_run("TRAIN", f"dropout_param {{ dropout_ratio: {ratio} }}")
