"""MultinomialLogisticLoss: -log p[label] averaged over the batch, p clamped at 1e-20."""

from __future__ import annotations

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param

N, C = 5, 4


def _layer():
    return create_layer(layer_param('name: "mlr" type: "MultinomialLogisticLoss"'))


def _blobs(seed: int):
    rng = np.random.default_rng(seed)
    p = Blob((N, C, 1, 1), dtype=np.float64)
    raw = rng.uniform(0.2, 1.0, (N, C))
    p.data[...] = (raw / raw.sum(axis=1, keepdims=True)).reshape(N, C, 1, 1)
    label = Blob((N, 1, 1, 1), dtype=np.float64)
    label.data[...] = rng.integers(0, C, (N, 1, 1, 1))
    return p, label


def test_forward_and_clamp():
    p, label = _blobs(1)
    lab = label.data.reshape(-1).astype(int)
    p.data[0, lab[0]] = 0.0  # clamped to 1e-20
    top = Blob(dtype=np.float64)
    layer = _layer()
    layer.setup([p, label], [top])
    layer.forward([p, label], [top])
    picked = p.data.reshape(N, C)[np.arange(N), lab]
    expected = (-np.log(np.maximum(picked, 1e-20))).sum() / N
    assert top.data[()] == pytest.approx(expected, rel=1e-12)
    top.diff[...] = 1
    layer.backward([top], [True, False], [p, label])
    g = np.zeros((N, C))
    g[np.arange(N), lab] = -1.0 / N / np.maximum(picked, 1e-20)
    np.testing.assert_allclose(p.diff.reshape(N, C), g, rtol=1e-12)


def test_gradient():
    p, label = _blobs(2)
    GradientChecker(1e-2, 2e-2, 1701, 0.0, 0.05).check_gradient_exhaustive(
        _layer(), [p, label], [Blob(dtype=np.float64)], check_bottom=0
    )


def test_label_shape_and_propagation():
    p, label = _blobs(3)
    with pytest.raises(WiringError, match="'mlr'"):
        _layer().setup([p, Blob((N, 2), dtype=np.float64)], [Blob(dtype=np.float64)])
    layer = _layer()
    top = Blob(dtype=np.float64)
    layer.setup([p, label], [top])
    layer.forward([p, label], [top])
    with pytest.raises(WiringError, match="label"):
        layer.backward([top], [True, True], [p, label])
