"""SoftmaxWithLoss: loss against the math, ignore_label, every normalization, gradient, prob top."""

from __future__ import annotations

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param, make_blobs

SHAPE = (4, 5, 2, 3)  # N, C, H, W
LABEL_SHAPE = (4, 1, 2, 3)


def _layer(extra: str = ""):
    return create_layer(layer_param(f'name: "loss" type: "SoftmaxWithLoss" {extra}'))


def _blobs(seed: int = 1, ignore_some: int | None = None):
    rng = np.random.default_rng(seed)
    x, label = make_blobs([SHAPE, LABEL_SHAPE], rng)
    label.data[...] = rng.integers(0, SHAPE[1], LABEL_SHAPE)
    if ignore_some is not None:
        label.data[0, 0, 0, :] = ignore_some
        label.data[2, 0, 1, 1] = ignore_some
    return x, label


def _log_probs(x: np.ndarray) -> np.ndarray:
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def _per_position_loss(x: np.ndarray, label: np.ndarray) -> np.ndarray:
    """-log softmax(x)[label] at each (n, h, w)."""
    lp = _log_probs(x)
    lab = label[:, 0].astype(int)
    n, h, w = np.indices(lab.shape)
    return -lp[n, np.clip(lab, 0, SHAPE[1] - 1), h, w]


def _forward(layer, x, label, tops=1):
    top = [Blob(dtype=np.float64) for _ in range(tops)]
    layer.setup([x, label], top)
    loss = layer.forward([x, label], top)
    return loss, top


def test_default_loss_is_mean_over_positions():
    x, label = _blobs()
    loss, (top,) = _forward(_layer(), x, label)
    expected = _per_position_loss(x.data, label.data).mean()
    assert top.shape == ()
    assert top.data[()] == pytest.approx(expected, rel=1e-12)
    assert loss == pytest.approx(expected, rel=1e-12)  # default loss_weight 1


N_POS = SHAPE[0] * SHAPE[2] * SHAPE[3]
N_VALID = N_POS - 4  # _blobs(ignore_some=...) ignores 4 positions


@pytest.mark.parametrize(
    "norm,divisor",
    [
        ("normalization: FULL", N_POS),
        ("normalization: VALID", N_VALID),
        ("normalization: BATCH_SIZE", SHAPE[0]),
        ("normalization: NONE", 1),
        ("normalize: true", N_VALID),
        ("normalize: false", SHAPE[0]),
        ("", N_VALID),
        ("normalize: false normalization: FULL", N_POS),  # the new field wins
    ],
)
def test_ignore_label_and_normalization(norm, divisor):
    x, label = _blobs(ignore_some=-1)
    layer = _layer(f"loss_param {{ ignore_label: -1 {norm} }}")
    _, (top,) = _forward(layer, x, label)
    per = _per_position_loss(x.data, label.data)
    valid = label.data[:, 0] != -1
    assert valid.sum() == N_VALID
    assert top.data[()] == pytest.approx(per[valid].sum() / divisor, rel=1e-12)

    top.diff[...] = 1.0
    layer.backward([top], [True, False], [x, label])
    grad = np.exp(_log_probs(x.data))
    lab = label.data[:, 0].astype(int)
    n, h, w = np.nonzero(valid)
    grad[n, lab[n, h, w], h, w] -= 1
    grad *= valid[:, None]
    np.testing.assert_allclose(x.diff, grad / divisor, rtol=1e-10, atol=1e-15)


def test_all_ignored_valid_normalizer_is_one():
    x, label = _blobs()
    label.data[...] = 7
    layer = _layer("loss_param { ignore_label: 7 normalization: VALID }")
    _, (top,) = _forward(layer, x, label)
    assert top.data[()] == 0.0
    top.diff[...] = 1.0
    layer.backward([top], [True, False], [x, label])
    assert not np.any(x.diff)


def test_spatial_axis():
    rng = np.random.default_rng(3)
    x, label = make_blobs([(2, 3, 4), (2, 3)], rng)
    label.data[...] = rng.integers(0, 4, (2, 3))
    _, (top,) = _forward(_layer("softmax_param { axis: 2 }"), x, label)
    lp = x.data - np.log(np.exp(x.data).sum(axis=2, keepdims=True))
    i, j = np.indices((2, 3))
    expected = -lp[i, j, label.data.astype(int)].mean()
    assert top.data[()] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("extra", ["", "loss_param { ignore_label: -1 normalization: FULL }"])
def test_gradient(extra):
    x, label = _blobs(seed=4, ignore_some=-1 if extra else None)
    GradientChecker(1e-2, 1e-2, 1701).check_gradient_exhaustive(
        _layer(extra), [x, label], [Blob(dtype=np.float64)], check_bottom=0
    )


def test_second_top_holds_probabilities():
    x, label = _blobs()
    # as in Caffe, two tops need a loss_weight each (the default adds only one)
    _, (loss, prob) = _forward(_layer("loss_weight: 1 loss_weight: 0"), x, label, tops=2)
    assert prob.shape == SHAPE
    np.testing.assert_allclose(prob.data, np.exp(_log_probs(x.data)), rtol=1e-12)
    with pytest.raises(WiringError, match="loss_weight"):
        _forward(_layer(), x, label, tops=2)


def test_label_gets_no_gradient():
    x, label = _blobs()
    layer = _layer()
    _, (top,) = _forward(layer, x, label)
    assert layer.allow_force_backward(0) and not layer.allow_force_backward(1)
    assert list(layer.layer_param.loss_weight) == [1.0]
    with pytest.raises(WiringError, match="label"):
        layer.backward([top], [True, True], [x, label])


def test_out_of_range_label_is_named():
    x, label = _blobs()
    label.data[1, 0, 0, 2] = 5
    with pytest.raises(WiringError, match="label 5"):
        _forward(_layer(), x, label)


def test_label_count_mismatch():
    x, _ = _blobs()
    label = Blob((4, 1, 2, 2), dtype=np.float64)
    with pytest.raises(WiringError, match="'loss'.*number of labels"):
        _forward(_layer(), x, label)


def test_first_dimensions_must_agree():
    x, _ = _blobs()
    label = Blob((2, 1, 2, 6), dtype=np.float64)
    with pytest.raises(WiringError, match="first dimension"):
        _forward(_layer(), x, label)


def test_three_bottoms_is_a_wiring_error():
    x, label = _blobs()
    with pytest.raises(WiringError, match="'loss'"):
        _layer().setup([x, label, label], [Blob(dtype=np.float64)])
