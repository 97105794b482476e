"""Weights in and out: .caffemodel and HDF5 round trips, Caffe's shape rules, sharing with a test net."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from engine import common
from engine.errors import WiringError
from engine.proto import caffe_pb2

NET = """
name: "w"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" }
                              bias_filler { type: "gaussian" } } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
"""


def _net(make_net, seed, text=NET):
    common.set_random_seed(seed)
    return make_net(text)


def _params(net):
    return {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()}


def _assert_same_params(a, b):
    assert a.keys() == b.keys()
    for name in a:
        for x, y in zip(a[name], b[name], strict=True):
            np.testing.assert_array_equal(x, y)


def test_different_seeds_give_different_weights(make_net):
    a, b = _net(make_net, 1), _net(make_net, 2)
    assert not np.array_equal(a.params["ip1"][0].data, b.params["ip1"][0].data)


def test_caffemodel_round_trip(make_net, tmp_path):
    src = _net(make_net, 1)
    path = tmp_path / "m.caffemodel"
    src.save(str(path))
    dst = _net(make_net, 2)
    dst.copy_trained_layers_from(str(path))
    _assert_same_params(_params(src), _params(dst))
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(src.forward(data=x)["ip2"], dst.forward(data=x)["ip2"])


def test_hdf5_round_trip(make_net, tmp_path):
    src = _net(make_net, 1)
    path = tmp_path / "m.caffemodel.h5"
    src.save_hdf5(str(path))
    with h5py.File(path, "r") as f:
        assert set(f["data"]) == {"data", "ip1", "ip2"} and "diff" not in f
        np.testing.assert_array_equal(f["data/ip1/1"][()], src.params["ip1"][1].data)
    dst = _net(make_net, 2)
    dst.copy_trained_layers_from(str(path))  # detected by content, as Caffe does
    _assert_same_params(_params(src), _params(dst))


def test_constructor_weights_and_pycaffe_copy_from(make_net, tmp_path):
    from engine.net import Net

    src = _net(make_net, 1)
    path = tmp_path / "m.caffemodel"
    src.save(str(path))
    proto = tmp_path / "net.prototxt"
    proto.write_text(NET)
    for net in (
        Net(str(proto), caffe_pb2.TEST, weights=str(path)),
        Net(str(proto), str(path), caffe_pb2.TEST),
    ):
        _assert_same_params(_params(src), _params(net))
    other = _net(make_net, 3)
    other.copy_from(str(path))
    _assert_same_params(_params(src), _params(other))


def test_to_proto_holds_layers_and_optionally_diffs(make_net):
    net = _net(make_net, 1)
    net.params["ip1"][0].diff[...] = 0.5
    p = net.to_proto()
    assert p.name == "w" and [lp.name for lp in p.layer] == ["data", "ip1", "ip2"]
    assert p.layer[1].phase == caffe_pb2.TEST
    assert len(p.layer[1].blobs) == 2 and not p.layer[1].blobs[0].diff
    assert list(p.layer[1].blobs[0].shape.dim) == [4, 3]
    assert all(v == 0.5 for v in net.to_proto(write_diff=True).layer[1].blobs[0].diff)


def test_unknown_source_layers_are_ignored(make_net):
    src = _net(make_net, 1).to_proto()
    extra = src.layer.add()
    extra.name = "not_in_target"
    extra.blobs.add().shape.dim.append(7)
    dst = _net(make_net, 2)
    dst.copy_trained_layers_from(src)
    expected = np.asarray(src.layer[1].blobs[0].data).reshape(4, 3)
    np.testing.assert_array_equal(dst.params["ip1"][0].data, expected)


def test_shape_mismatch_names_layer_and_shapes(make_net):
    src = _net(make_net, 1, NET.replace("num_output: 4", "num_output: 5")).to_proto()
    with pytest.raises(WiringError, match=r"layer 'ip1'.*\(5, 3\).*\(4, 3\)") as info:
        _net(make_net, 2).copy_trained_layers_from(src)
    assert info.value.layer == "ip1"


def test_blob_count_mismatch(make_net):
    src = _net(make_net, 1).to_proto()
    del src.layer[1].blobs[1]
    with pytest.raises(WiringError, match="'ip1'.*number of blobs"):
        _net(make_net, 2).copy_trained_layers_from(src)


def test_legacy_4d_shapes_match_trailing_axes(make_net):
    src = _net(make_net, 1)
    p = src.to_proto()
    for blob, (n, c, h, w) in zip(p.layer[1].blobs, [(1, 1, 4, 3), (1, 1, 1, 4)], strict=True):
        blob.ClearField("shape")
        blob.num, blob.channels, blob.height, blob.width = n, c, h, w
    dst = _net(make_net, 2)
    dst.copy_trained_layers_from(p)
    _assert_same_params(_params(src), _params(dst))
    bad = caffe_pb2.NetParameter()
    bad.CopyFrom(p)
    bad.layer[1].blobs[0].num = 2  # (2, 1, 4, 3) is not the (4, 3) weight
    with pytest.raises(WiringError, match="'ip1'"):
        dst.copy_trained_layers_from(bad)


def test_hdf5_with_shared_params_saves_owner_only(make_net, tmp_path):
    text = """
    layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "ip1" type: "InnerProduct" bottom: "a" top: "ya" param { name: "w" }
            inner_product_param { num_output: 2 bias_term: false weight_filler { type: "gaussian" } } }
    layer { name: "ip2" type: "InnerProduct" bottom: "b" top: "yb" param { name: "w" }
            inner_product_param { num_output: 2 bias_term: false weight_filler { type: "gaussian" } } }"""
    src = _net(make_net, 1, text)
    path = tmp_path / "s.h5"
    src.save_hdf5(str(path), write_diff=True)
    with h5py.File(path, "r") as f:
        assert list(f["data/ip1"]) == ["0"] and list(f["data/ip2"]) == []
        assert list(f["diff/ip2"]) == ["0"]
    dst = _net(make_net, 2, text)
    dst.copy_trained_layers_from(str(path))
    np.testing.assert_array_equal(dst.params["ip2"][0].data, src.params["ip1"][0].data)


def test_share_trained_layers_shares_data_memory(make_net):
    train = _net(make_net, 1)
    test = _net(make_net, 2)
    test.share_trained_layers(train)
    assert np.shares_memory(test.params["ip1"][0].data, train.params["ip1"][0].data)
    train.params["ip1"][0].data[...] = 3.0
    assert (test.params["ip1"][0].data == 3.0).all()
    assert not np.shares_memory(test.params["ip1"][0].diff, train.params["ip1"][0].diff)
    wrong = _net(make_net, 3, NET.replace("num_output: 2", "num_output: 3"))
    with pytest.raises(WiringError, match="'ip2'.*shape mismatch"):
        wrong.share_with(train)
