"""Caffe's upgrade_proto rules: expected V2 texts are written by hand from the rules."""

from __future__ import annotations

import pytest

from engine.io import net_to_text, read_net_text, read_solver_text, solver_to_text
from engine.io.prototxt import parse_net_text, parse_solver_text
from engine.io.upgrade import (
    V1_TYPE_NAMES,
    UpgradeError,
    net_needs_batchnorm_upgrade,
    net_needs_data_upgrade,
    net_needs_input_upgrade,
    net_needs_upgrade,
    net_needs_v0_to_v1_upgrade,
    net_needs_v1_to_v2_upgrade,
    solver_needs_type_upgrade,
    upgrade_net,
    upgrade_net_report,
    upgrade_solver,
)
from engine.proto import caffe_pb2

V1_NET = """
name: "v1net"
layers {
  name: "data" type: DATA top: "data" top: "label"
  data_param { source: "train_lmdb" backend: LMDB batch_size: 64 scale: 0.00390625 mirror: true }
  include { phase: TRAIN }
}
layers {
  name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  param: "w1" blob_share_mode: PERMISSIVE
  convolution_param { num_output: 20 kernel_size: 5 stride: 1 weight_filler { type: "xavier" } }
}
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
layers { name: "ip" type: INNER_PRODUCT bottom: "conv1" top: "ip" inner_product_param { num_output: 10 } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "ip" bottom: "label" top: "loss" loss_weight: 1 }
layers {
  name: "h5" type: HDF5_DATA top: "x"
  hdf5_data_param { source: "list.txt" batch_size: 2 }
  exclude { phase: TRAIN }
}
"""

V1_EXPECTED = """name: "v1net"
layer {
  name: "data"
  type: "Data"
  top: "data"
  top: "label"
  include {
    phase: TRAIN
  }
  transform_param {
    scale: 0.00390625
    mirror: true
  }
  data_param {
    source: "train_lmdb"
    batch_size: 64
    backend: LMDB
  }
}
layer {
  name: "conv1"
  type: "Convolution"
  bottom: "data"
  top: "conv1"
  param {
    name: "w1"
    share_mode: PERMISSIVE
    lr_mult: 1
    decay_mult: 1
  }
  param {
    lr_mult: 2
    decay_mult: 0
  }
  convolution_param {
    num_output: 20
    kernel_size: 5
    stride: 1
    weight_filler {
      type: "xavier"
    }
  }
}
layer {
  name: "relu1"
  type: "ReLU"
  bottom: "conv1"
  top: "conv1"
}
layer {
  name: "ip"
  type: "InnerProduct"
  bottom: "conv1"
  top: "ip"
  inner_product_param {
    num_output: 10
  }
}
layer {
  name: "loss"
  type: "SoftmaxWithLoss"
  bottom: "ip"
  bottom: "label"
  top: "loss"
  loss_weight: 1
}
layer {
  name: "h5"
  type: "HDF5Data"
  top: "x"
  exclude {
    phase: TRAIN
  }
  hdf5_data_param {
    source: "list.txt"
    batch_size: 2
  }
}
"""

V0_NET = """
name: "v0net"
input: "data"
input_dim: 10 input_dim: 3 input_dim: 32 input_dim: 32
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
layers {
  layer {
    name: "conv1" type: "conv" num_output: 16 kernelsize: 5 stride: 1 biasterm: false
    weight_filler { type: "gaussian" std: 0.01 } blobs_lr: 1 weight_decay: 1
  }
  bottom: "pad1" top: "conv1"
}
layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 3 stride: 2 } bottom: "conv1" top: "pool1" }
layers {
  layer { name: "norm1" type: "lrn" local_size: 3 alpha: 0.0001 beta: 0.75 }
  bottom: "pool1" top: "norm1"
}
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.3 } bottom: "norm1" top: "norm1" }
layers { layer { name: "fc" type: "innerproduct" num_output: 10 } bottom: "norm1" top: "fc" }
layers { layer { name: "prob" type: "softmax" } bottom: "fc" top: "prob" }
"""

V0_EXPECTED = """name: "v0net"
layer {
  name: "input"
  type: "Input"
  top: "data"
  input_param {
    shape {
      dim: 10
      dim: 3
      dim: 32
      dim: 32
    }
  }
}
layer {
  name: "conv1"
  type: "Convolution"
  bottom: "data"
  top: "conv1"
  param {
    lr_mult: 1
    decay_mult: 1
  }
  convolution_param {
    num_output: 16
    bias_term: false
    pad: 2
    kernel_size: 5
    stride: 1
    weight_filler {
      type: "gaussian"
      std: 0.01
    }
  }
}
layer {
  name: "pool1"
  type: "Pooling"
  bottom: "conv1"
  top: "pool1"
  pooling_param {
    pool: AVE
    kernel_size: 3
    stride: 2
  }
}
layer {
  name: "norm1"
  type: "LRN"
  bottom: "pool1"
  top: "norm1"
  lrn_param {
    local_size: 3
    alpha: 0.0001
    beta: 0.75
  }
}
layer {
  name: "drop"
  type: "Dropout"
  bottom: "norm1"
  top: "norm1"
  dropout_param {
    dropout_ratio: 0.3
  }
}
layer {
  name: "fc"
  type: "InnerProduct"
  bottom: "norm1"
  top: "fc"
  inner_product_param {
    num_output: 10
  }
}
layer {
  name: "prob"
  type: "Softmax"
  bottom: "fc"
  top: "prob"
}
"""


def test_v1_net_upgrades_to_expected_v2_text():
    raw = parse_net_text(V1_NET)
    assert net_needs_upgrade(raw) and net_needs_v1_to_v2_upgrade(raw) and net_needs_data_upgrade(raw)
    assert not net_needs_v0_to_v1_upgrade(raw)
    assert net_to_text(read_net_text(V1_NET)) == V1_EXPECTED


def test_v0_net_with_padding_layer_upgrades_to_expected_v2_text():
    raw = parse_net_text(V0_NET)
    assert net_needs_v0_to_v1_upgrade(raw)
    net, changed, problems = upgrade_net_report(raw)
    assert changed and problems == []
    assert net_to_text(net) == V0_EXPECTED
    assert not net_needs_upgrade(net)


def test_v0_data_layer_fields_go_to_data_and_transform_param():
    text = """
    layers {
      layer { name: "d" type: "data" source: "db" batchsize: 8 meanfile: "mean.binaryproto"
              cropsize: 227 mirror: true scale: 0.5 rand_skip: 3 }
      top: "data" top: "label"
    }"""
    expected = """layer {
  name: "d"
  type: "Data"
  top: "data"
  top: "label"
  transform_param {
    scale: 0.5
    mirror: true
    crop_size: 227
    mean_file: "mean.binaryproto"
  }
  data_param {
    source: "db"
    batch_size: 8
    rand_skip: 3
  }
}
"""
    assert net_to_text(read_net_text(text)) == expected


def test_v0_unknown_parameter_is_reported_and_skipped():
    text = 'input: "x" layers { layer { name: "r" type: "relu" num_output: 3 } bottom: "x" top: "y" }'
    net, changed, problems = upgrade_net_report(parse_net_text(text))
    assert changed and len(problems) == 1 and "num_output" in problems[0]
    assert net.layer[0].type == "ReLU" and not net.layer[0].HasField("inner_product_param")


def test_v0_upgrade_keeps_only_caffes_fields():
    # UpgradeV0Net copies name, layers, input, input_dim, force_backward; debug_info is dropped.
    text = 'name: "n" debug_info: true force_backward: true layers { layer { name: "s" type: "softmax" } }'
    net, _ = upgrade_net(parse_net_text(text))
    assert net.force_backward and not net.HasField("debug_info") and net.name == "n"


@pytest.mark.parametrize(
    "text, needle",
    [
        ('input: "x" layers { layer { name: "p" type: "padding" pad: 1 } bottom: "x" top: "p" }'
         ' layers { layer { name: "r" type: "relu" } bottom: "p" top: "r" }', "only conv and pool"),
        ('layers { layer { name: "c" type: "conv" } bottom: "nowhere" top: "c" }', "unknown bottom"),
        ('layers { layer { name: "w" type: "warp_drive" } }', "unknown layer type"),
    ],
)
def test_v0_upgrade_refusals(text, needle):
    with pytest.raises(UpgradeError, match=needle):
        upgrade_net(parse_net_text(text))


def test_v1_type_table_is_caffes():
    v1 = caffe_pb2.V1LayerParameter
    assert V1_TYPE_NAMES[v1.SOFTMAX_LOSS] == "SoftmaxWithLoss"
    assert V1_TYPE_NAMES[v1.HDF5_DATA] == "HDF5Data"
    assert V1_TYPE_NAMES[v1.IM2COL] == "Im2col"
    assert V1_TYPE_NAMES[v1.TANH] == "TanH"
    assert V1_TYPE_NAMES[v1.ABSVAL] == "AbsVal"
    assert V1_TYPE_NAMES[v1.NONE] == ""
    assert set(V1_TYPE_NAMES) == set(v1.LayerType.values())


def test_both_layer_and_layers_is_an_error():
    text = 'layer { name: "a" type: "ReLU" } layers { name: "b" type: RELU }'
    with pytest.raises(UpgradeError, match="both 'layer' and the deprecated 'layers'"):
        read_net_text(text, "mixed.prototxt")


def test_input_dim_becomes_first_input_layer():
    text = """
    input: "a" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 4
    input: "b" input_dim: 5 input_dim: 6 input_dim: 7 input_dim: 8
    layer { name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "c" }
    """
    raw = parse_net_text(text)
    assert net_needs_input_upgrade(raw)
    net = read_net_text(text)
    assert len(net.input) == len(net.input_dim) == len(net.input_shape) == 0
    assert [lay.name for lay in net.layer] == ["input", "cat"]
    first = net.layer[0]
    assert first.type == "Input" and list(first.top) == ["a", "b"]
    assert [list(s.dim) for s in first.input_param.shape] == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_input_shape_becomes_input_layer():
    text = 'input: "x" input_shape { dim: 2 dim: 7 } layer { name: "r" type: "ReLU" bottom: "x" top: "y" }'
    net = read_net_text(text)
    assert net.layer[0].name == "input" and list(net.layer[0].input_param.shape[0].dim) == [2, 7]
    assert net.layer[1].name == "r" and len(net.input_shape) == 0


def test_bare_input_is_just_dropped():
    net = read_net_text('input: "x" layer { name: "r" type: "ReLU" bottom: "x" top: "y" }')
    assert len(net.input) == 0 and [lay.name for lay in net.layer] == ["r"]


def test_input_dim_count_must_match_inputs():
    with pytest.raises(UpgradeError, match="4 per input"):
        read_net_text('input: "x" input: "y" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 4')


def test_batchnorm_with_three_params_gets_zero_lr_and_decay():
    text = """
    layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y"
            param { name: "m" lr_mult: 1 } param { lr_mult: 1 decay_mult: 5 } param { lr_mult: 1 } }
    layer { name: "bn2" type: "BatchNorm" bottom: "y" top: "z" param { lr_mult: 0 } }
    """
    raw = parse_net_text(text)
    assert net_needs_batchnorm_upgrade(raw)
    net, changed = upgrade_net(raw)
    assert changed
    specs = net.layer[0].param
    assert len(specs) == 3 and specs[0].name == "m"
    assert [(s.lr_mult, s.decay_mult) for s in specs] == [(0, 0)] * 3
    assert net.layer[1] == raw.layer[1]  # one param spec: left alone
    # Caffe keeps the 3 specs, so its predicate still fires; a second pass changes nothing.
    again, changed_again = upgrade_net(net)
    assert net_needs_batchnorm_upgrade(net) and again == net and not changed_again


def test_current_net_is_unchanged():
    raw = parse_net_text('layer { name: "r" type: "ReLU" bottom: "x" top: "y" }')
    net, changed = upgrade_net(raw)
    assert not changed and net == raw and net is not raw


@pytest.mark.parametrize(
    "enum, name",
    [("SGD", "SGD"), ("NESTEROV", "Nesterov"), ("ADAGRAD", "AdaGrad"),
     ("RMSPROP", "RMSProp"), ("ADADELTA", "AdaDelta"), ("ADAM", "Adam")],
)
def test_solver_type_enum_becomes_type_string(enum, name):
    raw = parse_solver_text(f"base_lr: 0.01 solver_type: {enum}")
    assert solver_needs_type_upgrade(raw)
    solver = read_solver_text(f"base_lr: 0.01 solver_type: {enum}")
    assert solver.type == name and not solver.HasField("solver_type")
    assert solver_to_text(solver) == f'base_lr: 0.01\ntype: "{name}"\n'


def test_solver_with_both_type_fields_is_an_error():
    with pytest.raises(UpgradeError, match="cannot both"):
        upgrade_solver(parse_solver_text('solver_type: ADAM type: "Adam"'))


def test_current_solver_is_unchanged():
    raw = parse_solver_text('type: "Adam" base_lr: 0.1')
    solver, changed = upgrade_solver(raw)
    assert not changed and solver == raw


def test_data_upgrade_touches_every_data_layer_like_caffe():
    # mutable_data_param()/mutable_transform_param() run for each DATA layer once any needs it
    text = """
    layers { name: "a" type: DATA top: "a" data_param { source: "x" crop_size: 3 } }
    layers { name: "b" type: DATA top: "b" }
    layers { name: "c" type: RELU bottom: "a" top: "c" }
    """
    net = read_net_text(text)
    a, b, c = net.layer
    assert a.transform_param.crop_size == 3 and not a.data_param.HasField("crop_size")
    assert b.HasField("transform_param") and b.HasField("data_param")
    assert not c.HasField("transform_param")
    assert net_to_text(net).count("transform_param {\n  }") == 1
