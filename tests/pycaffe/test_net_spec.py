"""net_spec: LeNet written the pycaffe way, naming rules, parameter routing and errors."""

import pytest
from google.protobuf import text_format

import engine as caffe
from engine import layers as L
from engine import net_spec
from engine import params as P
from engine.proto import caffe_pb2


def lenet(lmdb: str, batch_size: int) -> caffe_pb2.NetParameter:
    """As in Caffe's 01-learning-lenet notebook."""
    n = caffe.NetSpec()
    n.data, n.label = L.Data(batch_size=batch_size, backend=P.Data.LMDB, source=lmdb,
                             transform_param=dict(scale=1.0 / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50, weight_filler=dict(type="xavier"))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.fc1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.fc1, in_place=True)
    n.score = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.score, n.label)
    return n.to_proto()


def test_lenet_layers_and_params():
    net = lenet("mnist_train_lmdb", 64)
    assert isinstance(net, caffe_pb2.NetParameter)
    assert [(ly.name, ly.type) for ly in net.layer] == [
        ("data", "Data"), ("conv1", "Convolution"), ("pool1", "Pooling"), ("conv2", "Convolution"),
        ("pool2", "Pooling"), ("fc1", "InnerProduct"), ("relu1", "ReLU"), ("score", "InnerProduct"),
        ("loss", "SoftmaxWithLoss"),
    ]
    by = {ly.name: ly for ly in net.layer}
    data = by["data"]
    assert list(data.bottom) == [] and list(data.top) == ["data", "label"]
    assert data.data_param.source == "mnist_train_lmdb" and data.data_param.batch_size == 64
    assert data.data_param.backend == caffe_pb2.DataParameter.LMDB
    assert data.transform_param.scale == pytest.approx(1 / 255)
    conv1 = by["conv1"]
    assert list(conv1.bottom) == ["data"] and list(conv1.top) == ["conv1"]
    assert conv1.convolution_param.num_output == 20
    assert list(conv1.convolution_param.kernel_size) == [5]  # repeated field from a scalar
    assert conv1.convolution_param.weight_filler.type == "xavier"
    assert by["pool2"].pooling_param.pool == caffe_pb2.PoolingParameter.MAX
    assert by["pool2"].pooling_param.kernel_size == 2 and by["pool2"].pooling_param.stride == 2
    # In place: the ReLU's top is its bottom; the next layer reads that blob.
    assert list(by["relu1"].bottom) == ["fc1"] and list(by["relu1"].top) == ["fc1"]
    assert list(by["score"].bottom) == ["fc1"]
    assert by["score"].inner_product_param.num_output == 10
    assert list(by["loss"].bottom) == ["score", "label"]
    assert not by["loss"].HasField("convolution_param")


def test_prototxt_text_parses_back_to_the_same_message():
    net = lenet("x", 2)
    parsed = text_format.Parse(str(net), caffe_pb2.NetParameter())
    assert parsed == net


def test_param_name_mapping_from_the_descriptor():
    names = net_spec.param_name_dict()
    assert names["Convolution"] == "convolution"
    assert names["InnerProduct"] == "inner_product"
    assert names["HDF5Data"] == "hdf5_data"
    assert names["Python"] == "python"
    assert names["ReLU"] == "relu"
    assert names["Transformation"] == "transform"  # not a layer, as in pycaffe
    assert "Deconvolution" not in names
    # Layer types reading another type's message are routed too.
    deconv = caffe.to_proto(L.Deconvolution(L.Input(shape=dict(dim=[1, 1, 2, 2])), num_output=3,
                                            kernel_size=2, stride=2))
    assert deconv.layer[1].convolution_param.num_output == 3
    assert list(deconv.layer[1].convolution_param.stride) == [2]


def test_auto_names_by_type():
    data = L.Input(shape=dict(dim=[1, 2]))
    net = caffe.to_proto(L.ReLU(L.TanH(data)), L.TanH(data))
    assert [ly.name for ly in net.layer] == ["Input1", "TanH1", "ReLU1", "TanH2"]
    assert [list(ly.top) for ly in net.layer] == [["Input1"], ["TanH1"], ["ReLU1"], ["TanH2"]]
    assert list(net.layer[2].bottom) == ["TanH1"]
    # Top.to_proto is the same thing for one top.
    assert [ly.name for ly in L.Sigmoid(data).to_proto().layer] == ["Input1", "Sigmoid1"]


def test_netspec_names_tops_and_unnamed_intermediates():
    n = caffe.NetSpec()
    n.data = L.Input(shape=[dict(dim=[2, 3])])
    hidden = L.InnerProduct(n.data, num_output=4)
    n.out = L.Sigmoid(hidden)
    net = n.to_proto()
    assert [ly.name for ly in net.layer] == ["data", "InnerProduct1", "out"]
    assert list(net.layer[0].input_param.shape[0].dim) == [2, 3]
    assert n.keys() == ["data", "out"] and n["out"] is n.out
    del n["out"]
    assert n.keys() == ["data"]
    with pytest.raises(AttributeError, match="no top named"):
        _ = n.missing


def test_multiple_tops_ntop_zero_and_explicit_name():
    n = caffe.NetSpec()
    n.a, n.b = L.Slice(L.Input(shape=dict(dim=[2, 4])), slice_point=[1], axis=1, ntop=2)
    n.silence = L.Silence(n.b, ntop=0)
    n.conv = L.Convolution(L.Input(shape=dict(dim=[1, 1, 3, 3])), kernel_size=3, num_output=1,
                           name="my_conv")
    net = n.to_proto()
    by = {ly.name: ly for ly in net.layer}
    slice_layer = by["a"]
    assert list(slice_layer.top) == ["a", "b"]
    assert list(slice_layer.slice_param.slice_point) == [1] and slice_layer.slice_param.axis == 1
    assert list(by["silence"].bottom) == ["b"] and list(by["silence"].top) == []
    assert list(by["my_conv"].top) == ["conv"]
    # An unnamed ntop=0 layer is named by its type.
    fn = L.Silence(n.a, ntop=0)
    assert isinstance(fn, net_spec.Function)
    assert caffe.to_proto(n.a, fn).layer[-1].name == "Silence1"


def test_layer_level_fields_and_nested_repeated_messages():
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3]))
    n.ip = L.InnerProduct(n.data, num_output=2, param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2)],
                          include=dict(phase=caffe.TRAIN), bias_filler=dict(type="constant", value=0.5),
                          loss_weight=2, propagate_down=[False])
    n.py = L.Python(n.ip, module="mod", layer="Cls", param_str="{'k': 1}")
    net = n.to_proto()
    ip = net.layer[1]
    assert [(p.lr_mult, p.decay_mult) for p in ip.param] == [(1, 1), (2, 1)]  # decay_mult default 1
    assert not ip.param[1].HasField("decay_mult")
    assert ip.include[0].phase == caffe_pb2.TRAIN
    assert ip.inner_product_param.bias_filler.value == 0.5
    assert list(ip.loss_weight) == [2.0] and list(ip.propagate_down) == [False]
    py = net.layer[2].python_param
    assert (py.module, py.layer, py.param_str) == ("mod", "Cls", "{'k': 1}")


def test_params_enum_access():
    assert P.Pooling.MAX == caffe_pb2.PoolingParameter.MAX
    assert P.Pooling.AVE == caffe_pb2.PoolingParameter.AVE
    assert P.Eltwise.SUM == caffe_pb2.EltwiseParameter.SUM
    with pytest.raises(AttributeError, match="PoolingParameter"):
        _ = P.Pooling.NOPE
    with pytest.raises(AttributeError, match="NopeParameter"):
        _ = P.Nope.X


def test_bad_inputs_are_clear_errors():
    with pytest.raises(TypeError, match="Convolution input 0 is not a Top"):
        L.Convolution("data", kernel_size=3)
    with pytest.raises(AttributeError, match="unknown parameter 'kernal_size'"):
        caffe.to_proto(L.Convolution(L.Input(shape=dict(dim=[1])), kernal_size=3))
    with pytest.raises(AttributeError, match="unknown parameter 'num_output'"):
        caffe.to_proto(L.Silence(L.Input(shape=dict(dim=[1])), num_output=3, ntop=0))
