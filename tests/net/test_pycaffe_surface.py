"""pycaffe's Net surface: constructors, name maps, forward/backward with arrays, batching."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import engine as caffe
from engine.errors import WiringError

NET = """
name: "surface"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "zeta" type: "InnerProduct" bottom: "data" top: "zeta"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" }
                              bias_filler { type: "gaussian" } } }
layer { name: "alpha" type: "ReLU" bottom: "data" top: "alpha" }
layer { name: "train_only" type: "ReLU" bottom: "zeta" top: "t" include { phase: TRAIN } }
layer { name: "staged" type: "ReLU" bottom: "zeta" top: "s" include { stage: "extra" min_level: 1 } }
"""


@pytest.fixture
def proto_path(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(NET)
    return str(path)


def test_engine_exports_net():
    assert caffe.Net.__module__ == "engine.net"


def test_constructor_forms(proto_path):
    test = caffe.Net(proto_path, caffe.TEST)
    assert test.phase == caffe.TEST and "train_only" not in test._layer_names
    train = caffe.Net(proto_path, caffe.TRAIN)
    assert train.phase == caffe.TRAIN and "train_only" in train._layer_names
    assert all(layer.phase == caffe.TRAIN for layer in train.layers)  # inherited from the net
    assert "staged" not in caffe.Net(proto_path, caffe.TEST, stages=["extra"])._layer_names
    staged = caffe.Net(proto_path, caffe.TEST, level=1, stages=["extra"])
    assert "staged" in staged._layer_names
    assert "staged" in caffe.Net(proto_path, phase=caffe.TEST, level=1, stages=["extra"])._layer_names
    with pytest.raises(ValueError, match="phase"):
        caffe.Net(proto_path, 7)


def test_name_maps(proto_path):
    net = caffe.Net(proto_path, caffe.TEST)
    assert net.name == "surface"
    # data feeds zeta and alpha, so a Split follows the Input layer.
    assert net._layer_names == ["data", "data_data_0_split", "zeta", "alpha"]
    assert list(net.blobs) == ["data", "data_data_0_split_0", "data_data_0_split_1", "zeta", "alpha"]
    assert isinstance(net.blobs, OrderedDict) and net.blobs["zeta"].shape == (2, 2)
    assert list(net.params) == ["zeta"] and [p.shape for p in net.params["zeta"]] == [(2, 3), (2,)]
    assert net.layer_dict["zeta"] is net.layers[2] and net.layers[2].type == "InnerProduct"
    assert net.top_names["data_data_0_split"] == ["data_data_0_split_0", "data_data_0_split_1"]
    assert net.bottom_names["zeta"] == ["data_data_0_split_0"]
    assert net.inputs == ["data"]
    assert net.outputs == ["alpha", "zeta"]  # sorted by name, as Caffe's std::set yields them
    assert net.blob_loss_weights["zeta"] == 0 and list(net.blob_loss_weights) == [0.0] * 5
    assert net.has_blob("zeta") and not net.has_layer("nope")


def test_forward_with_inputs_and_extra_blobs(proto_path):
    net = caffe.Net(proto_path, caffe.TEST)
    x = np.array([[1, -2, 3], [-4, 5, -6]], dtype=np.float32)
    out = net.forward(data=x)
    w, b = (p.data for p in net.params["zeta"])
    assert set(out) == {"alpha", "zeta"}
    np.testing.assert_allclose(out["zeta"], x @ w.T + b, rtol=1e-6)
    np.testing.assert_array_equal(out["alpha"], np.maximum(x, 0))
    out = net.forward(blobs=["data_data_0_split_0"], data=x)
    np.testing.assert_array_equal(out["data_data_0_split_0"], x)
    with pytest.raises(WiringError, match="do not match net inputs"):
        net.forward(wrong=x)
    with pytest.raises(WiringError, match="not batch sized"):
        net.forward(data=np.zeros((3, 3), np.float32))


def test_forward_start_end_by_layer_name(proto_path):
    net = caffe.Net(proto_path, caffe.TEST)
    net.blobs["data"].data[...] = 1.0
    net.forward()
    net.blobs["zeta"].data[...] = 0
    out = net.forward(start="zeta", end="zeta")
    assert set(out) == {"zeta"} and out["zeta"].any()
    with pytest.raises(WiringError, match="no layer named 'nope'"):
        net.forward(end="nope")


def test_backward_with_output_diffs(proto_path):
    net2_text = "force_backward: true\n" + NET
    path2 = proto_path.replace("net.prototxt", "fb.prototxt")
    with open(path2, "w") as f:
        f.write(net2_text)
    net = caffe.Net(path2, caffe.TEST)
    x = np.array([[1, -2, 3], [-4, 5, -6]], dtype=np.float32)
    net.forward(data=x)
    dz = np.array([[1, 0], [0, 2]], dtype=np.float32)
    da = np.ones((2, 3), dtype=np.float32)
    grads = net.backward(zeta=dz, alpha=da)
    w = net.params["zeta"][0].data
    assert set(grads) == {"data"}
    np.testing.assert_allclose(grads["data"], dz @ w + (x > 0), rtol=1e-6)
    with pytest.raises(WiringError, match="do not match net outputs"):
        net.backward(zeta=dz)


def test_forward_all_batches_and_drops_padding(proto_path):
    net = caffe.Net(proto_path, caffe.TEST)
    xs = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    out = net.forward_all(data=xs)
    w, b = (p.data for p in net.params["zeta"])
    assert out["zeta"].shape == (5, 2) and out["alpha"].shape == (5, 3)
    np.testing.assert_allclose(out["zeta"], xs @ w.T + b, rtol=1e-5, atol=1e-6)
    outs, diffs = net.forward_backward_all(
        data=xs, zeta=np.ones((5, 2), np.float32), alpha=np.zeros((5, 3), np.float32)
    )
    assert outs["zeta"].shape == (5, 2) and diffs["data"].shape == (5, 3)
    # No force_backward: nothing needs backward, so the input diff stays zero.
    assert not diffs["data"].any()


def test_set_input_arrays_needs_memory_data_first(proto_path):
    net = caffe.Net(proto_path, caffe.TEST)
    with pytest.raises(WiringError, match="MemoryData"):
        net.set_input_arrays(np.zeros((2, 1, 1, 3), np.float32), np.zeros(2, np.float32))


def test_explicit_layer_phase_is_kept(make_net):
    net = make_net('state { phase: TRAIN } layer { name: "d" type: "Input" top: "d" phase: TEST '
                   'input_param { shape { dim: 1 } } }')
    assert net.phase == caffe.TRAIN and net.layers[0].phase == caffe.TEST
