"""HingeLoss: one-vs-all margins with L1 or squared L2 norm."""

from __future__ import annotations

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param, make_blobs

N, C = 6, 5


def _layer(norm: str = "L1"):
    return create_layer(layer_param(f'name: "hinge" type: "HingeLoss" hinge_loss_param {{ norm: {norm} }}'))


def _blobs(seed: int):
    rng = np.random.default_rng(seed)
    x, label = make_blobs([(N, C, 1, 1), (N,)], rng)
    x.data[...] *= 2
    label.data[...] = rng.integers(0, C, N)
    return x, label


def _margins(x, label):
    sign = -np.ones((N, C))
    sign[np.arange(N), label.astype(int)] = 1  # +1 for the true class, -1 for the others
    return np.maximum(0, 1 - sign * x.reshape(N, C))


@pytest.mark.parametrize("norm,power", [("L1", 1), ("L2", 2)])
def test_forward(norm, power):
    x, label = _blobs(1)
    top = Blob(dtype=np.float64)
    layer = _layer(norm)
    layer.setup([x, label], [top])
    layer.forward([x, label], [top])
    assert top.data[()] == pytest.approx((_margins(x.data, label.data) ** power).sum() / N, rel=1e-12)


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_gradient(norm):
    x, label = _blobs(2)
    # the hinge kinks where |x| = 1
    GradientChecker(1e-2, 2e-3, 1701, 1.0, 0.01).check_gradient_exhaustive(
        _layer(norm), [x, label], [Blob(dtype=np.float64)], check_bottom=0
    )


def test_no_gradient_to_labels():
    x, label = _blobs(3)
    top = Blob(dtype=np.float64)
    layer = _layer()
    layer.setup([x, label], [top])
    layer.forward([x, label], [top])
    with pytest.raises(WiringError, match="label"):
        layer.backward([top], [True, True], [x, label])


def test_bad_label():
    x, label = _blobs(4)
    label.data[2] = C
    layer = _layer()
    top = Blob(dtype=np.float64)
    layer.setup([x, label], [top])
    with pytest.raises(WiringError, match="'hinge'"):
        layer.forward([x, label], [top])
