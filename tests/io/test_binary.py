"""Binary protobuf files: caffemodel, binaryproto, solverstate; corrupt files and big messages."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ModelFileError
from engine.io import (
    read_blobproto,
    read_blobproto_vector,
    read_net_binary,
    read_net_param,
    read_solverstate,
    write_blobproto,
    write_blobproto_vector,
    write_net_binary,
    write_net_prototxt,
    write_solverstate,
)
from engine.proto import caffe_pb2


def _blob(array: np.ndarray) -> caffe_pb2.BlobProto:
    proto = caffe_pb2.BlobProto()
    proto.shape.dim.extend(array.shape)
    proto.data.extend(array.ravel().tolist())
    return proto


def _net_with_weights(rng) -> tuple[caffe_pb2.NetParameter, dict[str, list[np.ndarray]]]:
    arrays = {
        "conv": [
            rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
            rng.standard_normal(4).astype(np.float32),
        ],
        "ip": [rng.standard_normal((10, 36)).astype(np.float32)],
    }
    net = caffe_pb2.NetParameter(name="w")
    for name, blobs in arrays.items():
        layer = net.layer.add(name=name, type="Convolution" if name == "conv" else "InnerProduct")
        layer.blobs.extend(_blob(a) for a in blobs)
    return net, arrays


def test_caffemodel_round_trip_keeps_shapes_and_float32_values(tmp_path):
    net, arrays = _net_with_weights(np.random.default_rng(0))
    path = tmp_path / "w.caffemodel"
    write_net_binary(net, path)
    back = read_net_binary(path)
    assert back == net
    for layer in back.layer:
        for proto, expected in zip(layer.blobs, arrays[layer.name], strict=True):
            got = np.asarray(proto.data, dtype=np.float32).reshape(tuple(proto.shape.dim))
            assert got.shape == expected.shape
            np.testing.assert_array_equal(got, expected)


def test_truncated_caffemodel_raises_model_file_error(tmp_path):
    net, _ = _net_with_weights(np.random.default_rng(1))
    data = net.SerializeToString()
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"cut\.caffemodel: truncated or corrupt"):
        read_net_binary(path)


def test_garbage_binaryproto_raises_model_file_error(tmp_path):
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")
    with pytest.raises(ModelFileError, match="mean.binaryproto"):
        read_blobproto(path)


def test_missing_binary_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.caffemodel"):
        read_net_binary(tmp_path / "absent.caffemodel")


def test_binary_v1_caffemodel_is_upgraded(tmp_path):
    net = caffe_pb2.NetParameter(name="old")
    v1 = net.layers.add(name="fc", type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
    v1.blobs.add().data.extend([1.0, 2.0])
    v1.blobs_lr.append(3.0)
    path = tmp_path / "old.caffemodel"
    write_net_binary(net, path)
    back = read_net_binary(path)
    assert len(back.layers) == 0 and back.layer[0].type == "InnerProduct"
    assert list(back.layer[0].blobs[0].data) == [1.0, 2.0] and back.layer[0].param[0].lr_mult == 3.0


def test_binaryproto_round_trip(tmp_path):
    mean = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 2, 3, 4) / 7
    proto = caffe_pb2.BlobProto(num=1, channels=2, height=3, width=4)
    proto.data.extend(mean.ravel().tolist())
    path = tmp_path / "mean.binaryproto"
    write_blobproto(proto, path)
    back = read_blobproto(path)
    assert (back.num, back.channels, back.height, back.width) == (1, 2, 3, 4)
    np.testing.assert_array_equal(np.asarray(back.data, dtype=np.float32).reshape(1, 2, 3, 4), mean)


def test_blobproto_vector_round_trip(tmp_path):
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend([_blob(np.ones((2, 2), np.float32)), _blob(np.zeros(3, np.float32))])
    path = tmp_path / "v.binaryproto"
    write_blobproto_vector(vec, path)
    assert read_blobproto_vector(path) == vec


def test_solverstate_round_trip(tmp_path):
    state = caffe_pb2.SolverState(iter=1200, learned_net="snap_iter_1200.caffemodel", current_step=2)
    state.history.extend([_blob(np.full((3, 2), 0.25, np.float32))])
    path = tmp_path / "snap_iter_1200.solverstate"
    write_solverstate(state, path)
    back = read_solverstate(path)
    assert back == state and back.iter == 1200 and back.current_step == 2
    assert list(back.history[0].data) == [0.25] * 6


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_message_over_100_mb_parses(tmp_path):
    # Built on the wire by hand: NetParameter.layer (100) > LayerParameter.blobs (7) >
    # BlobProto.data (5, packed float). 26.5M floats = 106 MB.
    count = 26_500_000
    values = np.zeros(count, dtype="<f4")
    values[0], values[-1] = 1.5, -2.25
    packed = values.tobytes()
    blob = _varint((5 << 3) | 2) + _varint(len(packed)) + packed
    layer = b"\x0a\x03big" + _varint((7 << 3) | 2) + _varint(len(blob)) + blob
    net = _varint((100 << 3) | 2) + _varint(len(layer)) + layer
    assert len(net) > 100 * 1024 * 1024
    path = tmp_path / "big.caffemodel"
    path.write_bytes(net)
    del packed, blob, layer, net
    back = read_net_binary(path)
    data = back.layer[0].blobs[0].data
    assert back.layer[0].name == "big" and len(data) == count
    assert (data[0], data[count - 1]) == (1.5, -2.25)


def test_read_net_param_picks_format(tmp_path):
    net, _ = _net_with_weights(np.random.default_rng(2))
    binary, text = tmp_path / "m.caffemodel", tmp_path / "m.prototxt"
    write_net_binary(net, binary)
    write_net_prototxt(net, text)
    assert read_net_param(binary) == net
    assert read_net_param(text) == net
    # a text net saved under a binary name is still found (binary fails, text parses)
    misnamed = tmp_path / "text.caffemodel"
    misnamed.write_text('name: "t"\nlayer { name: "r" type: "ReLU" }\n')
    assert read_net_param(misnamed).layer[0].name == "r"
    # garbage under a binary name: the binary error is what the caller sees
    junk = tmp_path / "junk.caffemodel"
    junk.write_bytes(b"\xff" * 16)
    with pytest.raises(ModelFileError, match="junk.caffemodel"):
        read_net_param(junk)
