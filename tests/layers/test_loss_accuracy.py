"""Accuracy: top-k with Caffe's tie rule, ignore_label, per-class top, no backward, no loss weight."""

from __future__ import annotations

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from tests.layers.helpers import layer_param, make_blobs

N, C = 12, 6


def _layer(extra: str = ""):
    return create_layer(layer_param(f'name: "acc" type: "Accuracy" {extra}'))


def _blobs(seed: int):
    rng = np.random.default_rng(seed)
    x, label = make_blobs([(N, C), (N,)], rng)
    label.data[...] = rng.integers(0, C, N)
    return x, label


def _run(layer, x, label, tops=1):
    top = [Blob(dtype=np.float64) for _ in range(tops)]
    layer.setup([x, label], top)
    loss = layer.forward([x, label], top)
    return loss, top


def _hit(scores: np.ndarray, lab: int, k: int) -> bool:
    """True class within the k best, counting every class scoring >= it as better (ties lose)."""
    return int((scores >= scores[lab]).sum()) - 1 < k


@pytest.mark.parametrize("k", [1, 2, 3, C])
def test_top_k(k):
    x, label = _blobs(1)
    loss, (top,) = _run(_layer(f"accuracy_param {{ top_k: {k} }}"), x, label)
    lab = label.data.astype(int)
    expected = np.mean([_hit(x.data[i], lab[i], k) for i in range(N)])
    assert top.shape == ()
    assert top.data[()] == pytest.approx(expected)
    if k == C:
        assert top.data[()] == 1.0
    assert loss == 0.0  # not a loss: no default loss weight


def test_ties_count_against_the_true_class():
    x = Blob((1, 3), dtype=np.float64)
    x.data[...] = [[0.5, 0.5, 0.1]]
    label = Blob((1,), dtype=np.float64)
    label.data[...] = [1]
    _, (top,) = _run(_layer(), x, label)
    assert top.data[()] == 0.0
    _, (top,) = _run(_layer("accuracy_param { top_k: 2 }"), x, label)
    assert top.data[()] == 1.0


def test_ignore_label_and_per_class():
    x, label = _blobs(2)
    label.data[:3] = -1
    _, (top, per_class) = _run(_layer("accuracy_param { ignore_label: -1 }"), x, label, tops=2)
    lab = label.data.astype(int)
    keep = lab != -1
    hits = np.array([_hit(x.data[i], lab[i], 1) for i in range(N)])
    assert top.data[()] == pytest.approx(hits[keep].mean())
    assert per_class.shape == (C,)
    for c in range(C):
        sel = keep & (lab == c)
        assert per_class.data[c] == pytest.approx(hits[sel].mean() if sel.any() else 0.0)


def test_spatial_axis():
    rng = np.random.default_rng(3)
    x, label = make_blobs([(2, C, 3), (2, 3)], rng)
    label.data[...] = rng.integers(0, C, (2, 3))
    _, (top,) = _run(_layer(), x, label)
    pred = x.data.argmax(axis=1)
    assert top.data[()] == pytest.approx(np.mean(pred == label.data))


def test_all_ignored_gives_zero():
    x, label = _blobs(4)
    label.data[...] = 3
    _, (top,) = _run(_layer("accuracy_param { ignore_label: 3 }"), x, label)
    assert top.data[()] == 0.0


def test_no_backward_and_bad_wiring():
    x, label = _blobs(5)
    layer = _layer()
    _, (top,) = _run(layer, x, label)
    layer.backward([top], [False, False], [x, label])
    with pytest.raises(WiringError, match="'acc'"):
        layer.backward([top], [True, False], [x, label])
    with pytest.raises(WiringError, match="top_k"):
        _run(_layer(f"accuracy_param {{ top_k: {C + 1} }}"), x, label)
    with pytest.raises(WiringError, match="number of labels"):
        _run(_layer(), x, Blob((N, 2), dtype=np.float64))
    label.data[0] = C
    with pytest.raises(WiringError, match="outside"):
        _run(_layer(), x, label)
