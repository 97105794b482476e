"""InfogainLoss (softmax inside, as Caffe 1.0): H from a .binaryproto or a third bottom."""

from __future__ import annotations

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import ModelFileError, WiringError
from engine.layer import create_layer
from engine.proto import caffe_pb2
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param, make_blobs

N, C, S = 3, 4, 2  # batch, labels, spatial positions


def _h(rng) -> np.ndarray:
    return rng.uniform(0.0, 1.0, (C, C))


def _blobs(seed: int):
    rng = np.random.default_rng(seed)
    x, label = make_blobs([(N, C, S), (N, S)], rng)
    label.data[...] = rng.integers(0, C, (N, S))
    return x, label, _h(rng)


def _expected(x, label, h, valid, divisor):
    lp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    total = 0.0
    for n in range(N):
        for s in range(S):
            if valid[n, s]:
                total -= sum(h[int(label[n, s]), c] * lp[n, c, s] for c in range(C))
    return total / divisor


def _write_h(path, h: np.ndarray) -> str:
    proto = caffe_pb2.BlobProto()
    proto.num, proto.channels, proto.height, proto.width = 1, 1, C, C
    proto.data.extend(h.ravel().tolist())
    path.write_bytes(proto.SerializeToString())
    return str(path)


def test_forward_from_source(tmp_path):
    x, label, h = _blobs(1)
    h32 = h.astype(np.float32).astype(np.float64)  # the file stores float32
    src = _write_h(tmp_path / "H.binaryproto", h)
    top = Blob(dtype=np.float64)
    layer = create_layer(
        layer_param(f'name: "ig" type: "InfogainLoss" infogain_loss_param {{ source: "{src}" }}')
    )
    layer.setup([x, label], [top])
    layer.forward([x, label], [top])
    expected = _expected(x.data, label.data, h32, np.ones((N, S), bool), N * S)  # VALID
    assert top.data[()] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "norm,divisor", [("FULL", N * S), ("VALID", N * S - 2), ("BATCH_SIZE", N), ("NONE", 1)]
)
def test_third_bottom_ignore_and_normalization(norm, divisor):
    x, label, h = _blobs(2)
    label.data[0, 1] = 9
    label.data[2, 0] = 9
    hb = Blob((C, C), dtype=np.float64)
    hb.data[...] = h
    top = Blob(dtype=np.float64)
    layer = create_layer(
        layer_param(f'name: "ig" type: "InfogainLoss" loss_param {{ ignore_label: 9 normalization: {norm} }}')
    )
    layer.setup([x, label, hb], [top])
    layer.forward([x, label, hb], [top])
    valid = label.data != 9
    assert top.data[()] == pytest.approx(_expected(x.data, label.data, h, valid, divisor), rel=1e-12)


def test_identity_h_equals_softmax_with_loss():
    x, label, _ = _blobs(3)
    hb = Blob((C, C), dtype=np.float64)
    hb.data[...] = np.eye(C)
    ig_top, sm_top = Blob(dtype=np.float64), Blob(dtype=np.float64)
    ig = create_layer(layer_param('name: "ig" type: "InfogainLoss"'))
    ig.setup([x, label, hb], [ig_top])
    ig.forward([x, label, hb], [ig_top])
    sm = create_layer(layer_param('name: "sm" type: "SoftmaxWithLoss"'))
    sm.setup([x, label], [sm_top])
    sm.forward([x, label], [sm_top])
    assert ig_top.data[()] == pytest.approx(sm_top.data[()], rel=1e-12)
    ig_top.diff[...] = sm_top.diff[...] = 1
    ig.backward([ig_top], [True, False, False], [x, label, hb])
    ig_diff = x.diff.copy()
    sm.backward([sm_top], [True, False], [x, label])
    np.testing.assert_allclose(ig_diff, x.diff, rtol=1e-12, atol=1e-15)


def test_gradient():
    x, label, h = _blobs(4)
    label.data[1, 1] = -1
    hb = Blob((C, C), dtype=np.float64)
    hb.data[...] = h
    layer = create_layer(layer_param('name: "ig" type: "InfogainLoss" loss_param { ignore_label: -1 }'))
    GradientChecker(1e-2, 1e-2, 1701).check_gradient_exhaustive(
        layer, [x, label, hb], [Blob(dtype=np.float64)], check_bottom=0
    )


def test_errors(tmp_path):
    x, label, h = _blobs(5)
    with pytest.raises(WiringError, match="source"):
        create_layer(layer_param('name: "ig" type: "InfogainLoss"')).setup([x, label], [Blob()])
    bad = tmp_path / "bad.binaryproto"
    bad.write_bytes(b"\xff\xff\xff")
    with pytest.raises(ModelFileError, match="bad.binaryproto"):
        create_layer(
            layer_param(f'name: "ig" type: "InfogainLoss" infogain_loss_param {{ source: "{bad}" }}')
        ).setup([x, label], [Blob()])
    with pytest.raises(ModelFileError, match="missing"):
        create_layer(
            layer_param(
                f'name: "ig" type: "InfogainLoss" infogain_loss_param {{ source: "{tmp_path}/missing" }}'
            )
        ).setup([x, label], [Blob()])
    small = Blob((C - 1, C - 1), dtype=np.float64)
    with pytest.raises(WiringError, match="H must be"):
        create_layer(layer_param('name: "ig" type: "InfogainLoss"')).setup([x, label, small], [Blob()])
    with pytest.raises(WiringError, match="normalize"):
        create_layer(layer_param('name: "ig" type: "InfogainLoss" loss_param { normalize: true }')).setup(
            [x, label, small], [Blob()]
        )
    hb = Blob((C, C), dtype=np.float64)
    layer = create_layer(layer_param('name: "ig" type: "InfogainLoss"'))
    top = Blob(dtype=np.float64)
    layer.setup([x, label, hb], [top])
    layer.forward([x, label, hb], [top])
    with pytest.raises(WiringError, match="infogain inputs"):
        layer.backward([top], [True, False, True], [x, label, hb])
