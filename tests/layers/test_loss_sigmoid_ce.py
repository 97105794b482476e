"""SigmoidCrossEntropyLoss: stable for large inputs, BATCH_SIZE default, ignore_label, gradient."""

from __future__ import annotations

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param, make_blobs

SHAPE = (4, 3, 2)


def _layer(extra: str = ""):
    return create_layer(layer_param(f'name: "sce" type: "SigmoidCrossEntropyLoss" {extra}'))


def _blobs(seed: int, binary: bool = False):
    rng = np.random.default_rng(seed)
    x, t = make_blobs([SHAPE, SHAPE], rng)
    x.data[...] *= 3
    t.data[...] = rng.integers(0, 2, SHAPE) if binary else rng.uniform(0, 1, SHAPE)
    return x, t


def _per_element(x, t):
    p = 1 / (1 + np.exp(-x))
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def _run(layer, x, t):
    top = Blob(dtype=np.float64)
    layer.setup([x, t], [top])
    layer.forward([x, t], [top])
    return top


@pytest.mark.parametrize(
    "extra,divisor",
    [
        ("", SHAPE[0]),  # Caffe's default here is BATCH_SIZE
        ("loss_param { normalization: FULL }", np.prod(SHAPE)),
        ("loss_param { normalization: VALID }", np.prod(SHAPE)),
        ("loss_param { normalization: NONE }", 1),
        ("loss_param { normalize: true }", np.prod(SHAPE)),
        ("loss_param { normalize: false }", SHAPE[0]),
    ],
)
def test_forward_normalization(extra, divisor):
    x, t = _blobs(1)
    top = _run(_layer(extra), x, t)
    assert top.data[()] == pytest.approx(_per_element(x.data, t.data).sum() / divisor, rel=1e-10)


def test_ignore_label_valid():
    x, t = _blobs(2, binary=True)
    t.data[0, 0, :] = -1
    t.data[3, 2, 1] = -1
    layer = _layer("loss_param { ignore_label: -1 normalization: VALID }")
    top = _run(layer, x, t)
    valid = t.data != -1
    per = _per_element(x.data, t.data)
    assert top.data[()] == pytest.approx(per[valid].sum() / valid.sum(), rel=1e-10)
    top.diff[...] = 1
    layer.backward([top], [True, False], [x, t])
    expected = np.where(valid, 1 / (1 + np.exp(-x.data)) - t.data, 0) / valid.sum()
    np.testing.assert_allclose(x.diff, expected, rtol=1e-10, atol=1e-15)


def test_large_inputs_stay_finite():
    x = Blob((1, 4), dtype=np.float32)
    x.data[...] = [-100.0, -30.0, 30.0, 100.0]
    t = Blob((1, 4), dtype=np.float32)
    t.data[...] = [0.0, 1.0, 0.0, 1.0]
    top = Blob(dtype=np.float32)
    layer = _layer()
    layer.setup([x, t], [top])
    layer.forward([x, t], [top])
    # terms: ~0, 30, 30, ~0
    assert top.data[()] == pytest.approx(60.0, rel=1e-5)


def test_gradient():
    x, t = _blobs(3)
    GradientChecker(1e-2, 1e-2, 1701).check_gradient_exhaustive(
        _layer(), [x, t], [Blob(dtype=np.float64)], check_bottom=0
    )


def test_no_gradient_to_targets_and_count_check():
    x, t = _blobs(4)
    layer = _layer()
    top = _run(layer, x, t)
    with pytest.raises(WiringError, match="label"):
        layer.backward([top], [True, True], [x, t])
    with pytest.raises(WiringError, match="same count"):
        _layer().setup([x, Blob((4, 5), dtype=np.float64)], [Blob(dtype=np.float64)])
