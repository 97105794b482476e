"""ContrastiveLoss: similar pairs pulled together, dissimilar pushed past the margin (both versions)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param, make_blobs

N, C = 8, 3


def _layer(extra: str = ""):
    return create_layer(layer_param(f'name: "con" type: "ContrastiveLoss" {extra}'))


def _blobs(seed: int):
    rng = np.random.default_rng(seed)
    a, b = make_blobs([(N, C, 1, 1), (N, C, 1, 1)], rng)
    a.data[...] *= 0.5
    b.data[...] *= 0.5
    y = Blob((N, 1, 1, 1), dtype=np.float64)
    y.data[...] = np.arange(N).reshape(N, 1, 1, 1) % 2  # both kinds present
    return a, b, y


@pytest.mark.parametrize("legacy", [False, True])
def test_forward(legacy):
    a, b, y = _blobs(1)
    margin = 2.0
    top = Blob(dtype=np.float64)
    layer = _layer(f"contrastive_loss_param {{ margin: {margin} legacy_version: {str(legacy).lower()} }}")
    layer.setup([a, b, y], [top])
    layer.forward([a, b, y], [top])
    d2 = ((a.data - b.data) ** 2).reshape(N, C).sum(axis=1)
    sim = y.data.reshape(-1) != 0
    far = np.maximum(margin - d2, 0) if legacy else np.maximum(margin - np.sqrt(d2), 0) ** 2
    expected = np.where(sim, d2, far).sum() / (2 * N)
    assert top.data[()] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("legacy", [False, True])
def test_gradient(legacy):
    a, b, y = _blobs(2)
    layer = _layer(f"contrastive_loss_param {{ legacy_version: {str(legacy).lower()} }}")
    checker = GradientChecker(1e-2, 1e-2, 1701)
    checker.check_gradient_exhaustive(layer, [a, b, y], [Blob(dtype=np.float64)], check_bottom=0)
    checker.check_gradient_exhaustive(layer, [a, b, y], [Blob(dtype=np.float64)], check_bottom=1)


def test_similarity_bottom_gets_no_gradient():
    a, b, y = _blobs(3)
    layer = _layer()
    top = Blob(dtype=np.float64)
    layer.setup([a, b, y], [top])
    assert layer.allow_force_backward(0) and layer.allow_force_backward(1)
    assert not layer.allow_force_backward(2)
    layer.forward([a, b, y], [top])
    with pytest.raises(WiringError, match="'con'"):
        layer.backward([top], [True, True, True], [a, b, y])


def test_wiring_checks():
    a, b, y = _blobs(4)
    with pytest.raises(WiringError, match="'con'"):
        _layer().setup([a, b], [Blob(dtype=np.float64)])
    with pytest.raises(WiringError, match="channels"):
        _layer().setup([a, Blob((N, C + 1, 1, 1), dtype=np.float64), y], [Blob(dtype=np.float64)])
