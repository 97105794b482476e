"""Which layers and bottoms need backward: Caffe's forward marking plus its reverse loss analysis.

Expected matrices are worked out by hand from Caffe's rules (see each test's comment).
"""

from __future__ import annotations

INPUT = """
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 4 } } }
"""
IP = 'type: "InnerProduct" inner_product_param { num_output: 4 weight_filler { type: "gaussian" } }'


def flags(net):
    return net.layer_need_backward, net.bottom_need_backward


def test_tiny_net(make_net):
    # ip1 has learnable params -> needs backward; its bottom "data" comes from a layer without
    # params, so no gradient flows there; the loss needs its first bottom only.
    net = make_net(INPUT + f"""
    layer {{ name: "ip1" {IP} bottom: "data" top: "ip1" }}
    layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" top: "loss" }}""")
    assert net._layer_names == ["data", "ip1", "loss"]
    assert flags(net) == ([False, True, True], [[], [False], [True, False]])
    assert net.blob_need_backward == [False, False, True, True]  # data, label, ip1, loss
    assert net.layers[1].param_propagate_down(0) and net.layers[1].param_propagate_down(1)


def test_force_backward_euclidean_reaches_labels(make_net):
    net = make_net("force_backward: true" + INPUT + f"""
    layer {{ name: "ip1" {IP} bottom: "data" top: "ip1" }}
    layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" top: "loss" }}""")
    assert flags(net) == ([True, True, True], [[], [True], [True, True]])
    assert net.blob_need_backward == [True, True, True, True]


def test_force_backward_respects_allow_force_backward(make_net):
    # SoftmaxWithLoss never takes a gradient for its label bottom.
    net = make_net("""force_backward: true
    layer { name: "data" type: "Input" top: "data" top: "label"
            input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }""" + f"""
    layer {{ name: "ip1" {IP} bottom: "data" top: "ip1" }}
    layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }}""")
    assert flags(net) == ([True, True, True], [[], [True], [True, False]])
    assert net.blob_need_backward[1] is False  # label


def test_lr_mult_zero_params(make_net):
    # ip1's params are frozen and nothing below it learns: it needs no backward at all.
    net = make_net(INPUT + f"""
    layer {{ name: "ip1" {IP} bottom: "data" top: "ip1" param {{ lr_mult: 0 }} param {{ lr_mult: 0 }} }}
    layer {{ name: "ip2" {IP} bottom: "ip1" top: "ip2" }}
    layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip2" bottom: "label" top: "loss" }}""")
    assert flags(net) == ([False, False, True, True], [[], [False], [False], [True, False]])
    assert not net.layers[1].param_propagate_down(0) and net.layers[2].param_propagate_down(0)
    assert net.params_lr == [0.0, 0.0, 1.0, 1.0]


def test_one_frozen_param_still_learns_the_other(make_net):
    net = make_net(INPUT + f"""
    layer {{ name: "ip1" {IP} bottom: "data" top: "ip1" param {{ lr_mult: 0 }} }}
    layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" top: "loss" }}""")
    ip1 = net.layers[1]
    assert net.layer_need_backward[1]
    assert (ip1.param_propagate_down(0), ip1.param_propagate_down(1)) == (False, True)


def test_layer_after_the_loss_does_not_contribute(make_net):
    # ip1 feeds the loss and ip2 (so a Split follows ip1). ip2's output carries no loss:
    # ip2 skips backward, and the split's second top takes no gradient.
    net = make_net(INPUT + f"""
    layer {{ name: "ip1" {IP} bottom: "data" top: "ip1" }}
    layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" top: "loss" }}
    layer {{ name: "ip2" {IP} bottom: "ip1" top: "ip2" }}""")
    assert net._layer_names == ["data", "ip1", "ip1_ip1_0_split", "loss", "ip2"]
    assert flags(net) == ([False, True, True, True, False], [[], [False], [True], [True, False], [False]])
    # blob_need_backward comes from the forward marking only, as in Caffe.
    assert net.blob_need_backward[net._blob_names.index("ip2")] is True
    assert net.outputs == ["ip2", "loss"]


def test_mid_net_loss_and_an_unrelated_branch(make_net):
    # data feeds ip1 (-> loss) and ip2 (-> output only). The split of data needs no backward:
    # its first top feeds ip1 whose bottom does not need it, its second feeds ip2 which is
    # cut off from the loss.
    text = INPUT + f"""
    layer {{ name: "ip1" {IP} bottom: "data" top: "ip1" }}
    layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" top: "loss" }}
    layer {{ name: "ip2" {IP} bottom: "data" top: "ip2" }}"""
    net = make_net(text)
    assert net._layer_names == ["data", "data_data_0_split", "ip1", "loss", "ip2"]
    assert flags(net) == ([False, False, True, True, False], [[], [False], [False], [True, False], [False]])
    forced = make_net("force_backward: true" + text)
    assert flags(forced) == ([True] * 5, [[], [True], [True], [True, True], [True]])


def test_propagate_down_false_stops_gradient_below(make_net):
    # ip2 does not propagate to ip1, so ip1 (whose only top is skipped) needs no backward,
    # although it has learnable params.
    net = make_net(INPUT + f"""
    layer {{ name: "ip1" {IP} bottom: "data" top: "ip1" }}
    layer {{ name: "ip2" {IP} bottom: "ip1" top: "ip2" propagate_down: false }}
    layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip2" bottom: "label" top: "loss" }}""")
    assert flags(net) == ([False, False, True, True], [[], [False], [False], [True, False]])


def test_propagate_down_true_forces_a_bottom(make_net):
    # An explicit propagate_down: true marks the bottom even when its blob needs no gradient.
    net = make_net(INPUT + f"""
    layer {{ name: "ip1" {IP} bottom: "data" top: "ip1" propagate_down: true }}
    layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" top: "loss"
             propagate_down: true propagate_down: false }}""")
    assert flags(net) == ([False, True, True], [[], [True], [True, False]])


def test_accuracy_branch_needs_no_backward(make_net):
    net = make_net("""
    layer { name: "data" type: "Input" top: "data" top: "label"
            input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }""" + f"""
    layer {{ name: "ip1" {IP} bottom: "data" top: "ip1" }}
    layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }}
    layer {{ name: "acc" type: "Accuracy" bottom: "ip1" bottom: "label" top: "acc" }}""")
    names = net._layer_names
    assert names == ["data", "label_data_1_split", "ip1", "ip1_ip1_0_split", "loss", "acc"]
    assert net.layer_need_backward == [False, False, True, True, True, False]
    assert net.bottom_need_backward[names.index("acc")] == [False, False]
    assert net.bottom_need_backward[names.index("ip1_ip1_0_split")] == [True]
    assert net._blob_loss_weights[net._blob_names.index("acc")] == 0
    assert net.blob_loss_weights["loss"] == 1


def test_in_place_relu_shares_the_blob(make_net):
    net = make_net(INPUT + f"""
    layer {{ name: "ip1" {IP} bottom: "data" top: "ip1" }}
    layer {{ name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }}
    layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip1" bottom: "label" top: "loss" }}""")
    assert net.top_id_vecs[2] == net.bottom_id_vecs[2] == net.top_id_vecs[1]
    assert net._blob_names == ["data", "label", "ip1", "loss"]
    assert flags(net) == ([False, True, True, True], [[], [False], [True], [True, False]])
