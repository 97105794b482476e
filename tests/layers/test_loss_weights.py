"""Every loss layer: loss_weight 1 by default, and loss and gradients scale with the weight."""

from __future__ import annotations

import numpy as np
import pytest

from engine import common
from engine.blob import Blob
from engine.layer import create_layer
from tests.layers.helpers import layer_param, make_blobs


def _labels(rng, shape, classes):
    b = Blob(shape, dtype=np.float64)
    b.data[...] = rng.integers(0, classes, shape)
    return b


def _bottoms(kind: str):
    rng = np.random.default_rng(9)
    if kind in ("SoftmaxWithLoss", "HingeLoss"):
        (x,) = make_blobs([(4, 3, 2)], rng)
        return [x, _labels(rng, (4, 2) if kind == "SoftmaxWithLoss" else (4,), 3)]
    if kind == "InfogainLoss":
        (x, h) = make_blobs([(4, 3), (3, 3)], rng)
        h.data[...] = np.abs(h.data)
        return [x, _labels(rng, (4,), 3), h]
    if kind == "MultinomialLogisticLoss":
        p = Blob((4, 3), dtype=np.float64)
        p.data[...] = rng.uniform(0.1, 1, (4, 3))
        return [p, _labels(rng, (4,), 3)]
    if kind == "SigmoidCrossEntropyLoss":
        x, t = make_blobs([(4, 3), (4, 3)], rng)
        t.data[...] = rng.uniform(0, 1, (4, 3))
        return [x, t]
    if kind == "ContrastiveLoss":
        a, b = make_blobs([(4, 3), (4, 3)], rng)
        return [a, b, _labels(rng, (4,), 2)]
    return make_blobs([(4, 3), (4, 3)], rng)  # EuclideanLoss, L1Loss


KINDS = [
    "SoftmaxWithLoss",
    "EuclideanLoss",
    "L1Loss",
    "SigmoidCrossEntropyLoss",
    "HingeLoss",
    "InfogainLoss",
    "MultinomialLogisticLoss",
    "ContrastiveLoss",
]


def _run(kind: str, weight: float | None):
    bottom = _bottoms(kind)
    extra = "" if weight is None else f"loss_weight: {weight}"
    layer = create_layer(layer_param(f'name: "l" type: "{kind}" {extra}'))
    top = [Blob(dtype=np.float64)]  # a fresh top: a zero weight leaves its diff untouched
    common.set_random_seed(1701)
    layer.setup(bottom, top)
    loss = layer.forward(bottom, top)
    propagate = [layer.allow_force_backward(i) for i in range(len(bottom))]
    layer.backward(top, propagate, bottom)
    return layer, loss, [b.diff.copy() for b, p in zip(bottom, propagate, strict=True) if p]


@pytest.mark.parametrize("kind", KINDS)
def test_default_weight_is_one(kind):
    layer, loss, diffs = _run(kind, None)
    assert list(layer.layer_param.loss_weight) == [1.0]
    assert layer.loss(0) == 1.0
    assert loss != 0.0 and any(np.any(d) for d in diffs)
    _, loss1, diffs1 = _run(kind, 1.0)
    assert loss == loss1
    for a, b in zip(diffs, diffs1, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("weight", [0.0, 2.0, -1.0, 3.75, -2.5])  # exact in float32
def test_scaling(kind, weight):
    _, ref_loss, ref_diffs = _run(kind, 1.0)
    _, loss, diffs = _run(kind, weight)
    assert loss == pytest.approx(weight * ref_loss, rel=1e-12, abs=1e-12)
    for got, ref in zip(diffs, ref_diffs, strict=True):
        np.testing.assert_allclose(got, weight * ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
def test_float32_matches_float64(kind):
    ref_bottom = _bottoms(kind)
    bottom = []
    for b in ref_bottom:
        b32 = Blob(b.shape, dtype=np.float32)
        b32.data[...] = b.data
        bottom.append(b32)
    results = []
    for blobs in (ref_bottom, bottom):
        layer = create_layer(layer_param(f'name: "l" type: "{kind}"'))
        top = [Blob(dtype=blobs[0].dtype)]
        layer.setup(blobs, top)
        loss = layer.forward(blobs, top)
        layer.backward(top, [layer.allow_force_backward(i) for i in range(len(blobs))], blobs)
        assert top[0].data.dtype == blobs[0].dtype and blobs[0].diff.dtype == blobs[0].dtype
        results.append((loss, blobs[0].diff.copy()))
    (loss64, diff64), (loss32, diff32) = results
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    np.testing.assert_allclose(diff32, diff64, rtol=1e-4, atol=1e-6)
