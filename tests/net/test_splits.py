"""InsertSplits against hand-written expected nets (Caffe's naming and rewiring rules)."""

from __future__ import annotations

import pytest

from engine.errors import WiringError
from engine.net_splits import insert_splits, split_blob_name, split_layer_name

NO_SPLIT = """
name: "n"
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "label" }
"""

ONE_TO_TWO = """
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "data" top: "ip2" }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "ip2" }
"""
ONE_TO_TWO_EXPECTED = """
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "data_data_0_split" type: "Split" bottom: "data"
        top: "data_data_0_split_0" top: "data_data_0_split_1" }
layer { name: "ip1" type: "InnerProduct" bottom: "data_data_0_split_0" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "data_data_0_split_1" top: "ip2" }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "ip2" }
"""

THREE_CONSUMERS = """
layer { name: "in" type: "Input" top: "x" }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" }
layer { name: "sum" type: "Eltwise" bottom: "x" bottom: "x" top: "z" }
"""
THREE_CONSUMERS_EXPECTED = """
layer { name: "in" type: "Input" top: "x" }
layer { name: "x_in_0_split" type: "Split" bottom: "x"
        top: "x_in_0_split_0" top: "x_in_0_split_1" top: "x_in_0_split_2" }
layer { name: "ip" type: "InnerProduct" bottom: "x_in_0_split_0" top: "y" }
layer { name: "sum" type: "Eltwise" bottom: "x_in_0_split_1" bottom: "x_in_0_split_2" top: "z" }
"""

TWO_TOPS = """
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "data" top: "ip2" }
layer { name: "loss1" type: "EuclideanLoss" bottom: "ip1" bottom: "label" }
layer { name: "loss2" type: "EuclideanLoss" bottom: "ip2" bottom: "label" }
"""
TWO_TOPS_EXPECTED = """
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "data_data_0_split" type: "Split" bottom: "data"
        top: "data_data_0_split_0" top: "data_data_0_split_1" }
layer { name: "label_data_1_split" type: "Split" bottom: "label"
        top: "label_data_1_split_0" top: "label_data_1_split_1" }
layer { name: "ip1" type: "InnerProduct" bottom: "data_data_0_split_0" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "data_data_0_split_1" top: "ip2" }
layer { name: "loss1" type: "EuclideanLoss" bottom: "ip1" bottom: "label_data_1_split_0" }
layer { name: "loss2" type: "EuclideanLoss" bottom: "ip2" bottom: "label_data_1_split_1" }
"""

IN_PLACE = """
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2" }
layer { name: "loss1" type: "EuclideanLoss" bottom: "ip1" bottom: "label" }
layer { name: "loss2" type: "EuclideanLoss" bottom: "ip2" bottom: "data" }
"""
IN_PLACE_EXPECTED = """
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "data_data_0_split" type: "Split" bottom: "data"
        top: "data_data_0_split_0" top: "data_data_0_split_1" }
layer { name: "ip1" type: "InnerProduct" bottom: "data_data_0_split_0" top: "ip1" }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip1_relu1_0_split" type: "Split" bottom: "ip1"
        top: "ip1_relu1_0_split_0" top: "ip1_relu1_0_split_1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1_relu1_0_split_0" top: "ip2" }
layer { name: "loss1" type: "EuclideanLoss" bottom: "ip1_relu1_0_split_1" bottom: "label" }
layer { name: "loss2" type: "EuclideanLoss" bottom: "ip2" bottom: "data_data_0_split_1" }
"""

LOSS_WEIGHT = """
layer { name: "data" type: "Input" top: "data" }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" loss_weight: 2.5 }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "r" }
"""
LOSS_WEIGHT_EXPECTED = """
layer { name: "data" type: "Input" top: "data" }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" }
layer { name: "ip_ip_0_split" type: "Split" bottom: "ip"
        top: "ip_ip_0_split_0" top: "ip_ip_0_split_1" loss_weight: 2.5 loss_weight: 0 }
layer { name: "relu" type: "ReLU" bottom: "ip_ip_0_split_1" top: "r" }
"""

# A non-zero weight on an unconsumed top, a zero weight on a consumed top, and the implicit
# weight of a loss layer (added later by the layer itself) never cause a split.
NO_SPLIT_LOSSES = """
layer { name: "data" type: "Input" top: "data" top: "label" }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" loss_weight: 0 }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "r" }
layer { name: "loss" type: "EuclideanLoss" bottom: "r" bottom: "label" top: "l" }
layer { name: "after" type: "Power" bottom: "l" top: "p" loss_weight: 3 }
"""


@pytest.mark.parametrize(
    "given, expected",
    [
        (NO_SPLIT, NO_SPLIT),
        (ONE_TO_TWO, ONE_TO_TWO_EXPECTED),
        (THREE_CONSUMERS, THREE_CONSUMERS_EXPECTED),
        (TWO_TOPS, TWO_TOPS_EXPECTED),
        (IN_PLACE, IN_PLACE_EXPECTED),
        (LOSS_WEIGHT, LOSS_WEIGHT_EXPECTED),
        (NO_SPLIT_LOSSES, NO_SPLIT_LOSSES),
    ],
    ids=["no-split", "one-to-two", "three-consumers", "two-tops", "in-place", "loss-weight",
         "no-split-losses"],
)
def test_insert_splits_golden(net_param, given, expected):
    out = insert_splits(net_param(given))
    assert out == net_param(expected)
    # Idempotent: a split net has no top with more than one consumer.
    assert insert_splits(out) == out


def test_names_follow_caffe():
    assert split_layer_name("conv1", "data", 0) == "data_conv1_0_split"
    assert split_blob_name("conv1", "data", 2, 3) == "data_conv1_2_split_3"


def test_other_fields_kept(net_param):
    p = net_param('name: "keep" force_backward: true debug_info: true state { phase: TRAIN }' + ONE_TO_TWO)
    out = insert_splits(p)
    assert out.name == "keep" and out.force_backward and out.debug_info
    assert out.state.phase == p.state.phase
    assert len(p.layer) == 4  # the input is not modified


def test_loss_weight_on_second_top_counts_split_from_one(net_param):
    text = """
    layer { name: "d" type: "Input" top: "a" top: "b" loss_weight: 0 loss_weight: 1 }
    layer { name: "u" type: "ReLU" bottom: "b" top: "c" }"""
    out = insert_splits(net_param(text))
    assert [layer.name for layer in out.layer] == ["d", "b_d_1_split", "u"]
    assert list(out.layer[0].loss_weight) == []  # Caffe clears all of the producer's weights
    assert list(out.layer[1].loss_weight) == [1, 0]
    assert list(out.layer[2].bottom) == ["b_d_1_split_1"]


def test_unknown_bottom_names_layer_and_blob(net_param):
    text = 'layer { name: "d" type: "Input" top: "a" } ' \
        'layer { name: "u" type: "ReLU" bottom: "nope" top: "c" }'
    with pytest.raises(WiringError, match="'u'.*'nope'") as info:
        insert_splits(net_param(text))
    assert (info.value.layer, info.value.blob) == ("u", "nope")
