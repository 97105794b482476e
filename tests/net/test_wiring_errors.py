"""Bad nets fail at construction with a WiringError naming the layer (and blob or param)."""

from __future__ import annotations

import pytest

from engine.errors import WiringError

INPUT = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }\n'
IP = 'type: "InnerProduct" inner_product_param {{ num_output: {n} bias_term: false }}'


def _raises(make_net, text, match):
    with pytest.raises(WiringError, match=match) as info:
        make_net(text)
    return info.value


def test_missing_bottom(make_net):
    err = _raises(make_net, INPUT + 'layer { name: "r" type: "ReLU" bottom: "nope" top: "r" }', "'r'.*'nope'")
    assert (err.layer, err.blob) == ("r", "nope")


def test_duplicate_top(make_net):
    text = INPUT + 'layer { name: "r" type: "ReLU" bottom: "data" top: "data2" }' \
                   'layer { name: "s" type: "Sigmoid" bottom: "data2" top: "data" }'
    err = _raises(make_net, text, "Top blob 'data' produced by multiple sources")
    assert (err.layer, err.blob) == ("s", "data")


def test_in_place_on_a_split_blob_is_a_duplicate_top(make_net):
    # After InsertSplits the ReLU reads data_data_0_split_1 but still writes "data": Caffe
    # rejects this net the same way.
    text = INPUT + 'layer { name: "s" type: "Sigmoid" bottom: "data" top: "s" }' \
                   'layer { name: "r" type: "ReLU" bottom: "data" top: "data" }'
    _raises(make_net, text, "'r'.*'data' produced by multiple sources")


def test_in_place_needs_the_same_index(make_net):
    text = INPUT + 'layer { name: "d2" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }' \
                   'layer { name: "e" type: "Eltwise" bottom: "data" bottom: "x" top: "x" }'
    _raises(make_net, text, "'x' produced by multiple sources")


def test_propagate_down_count(make_net):
    text = INPUT + 'layer { name: "r" type: "ReLU" bottom: "data" top: "r" ' \
                   'propagate_down: true propagate_down: false }'
    err = _raises(make_net, text, "'r'.*propagate_down.*1.*2")
    assert err.layer == "r"


def test_unknown_layer_type_suggests(make_net):
    err = _raises(make_net, INPUT + 'layer { name: "fc" type: "InnerProdct" bottom: "data" top: "fc" }',
                  "'fc'.*'InnerProdct'.*did you mean 'InnerProduct'")
    assert err.layer == "fc"


def _shared(n1, n2, extra1="", extra2=""):
    return INPUT + f"""
    layer {{ name: "a" {IP.format(n=n1)} bottom: "data" top: "a" param {{ name: "w" {extra1} }} }}
    layer {{ name: "b" {IP.format(n=n2)} bottom: "data" top: "b" param {{ name: "w" {extra2} }} }}"""


def test_shared_param_shape_mismatch_names_both_layers(make_net):
    err = _raises(make_net, _shared(2, 3), r"'w' owned by layer 'a' with layer 'b'.*\(2, 3\).*\(3, 3\)")
    assert (err.layer, err.blob) == ("b", "w")


def test_permissive_share_checks_count_only(make_net):
    # (2, 3) and (3, 2)-shaped weights cannot be made from one input; use a reshaped copy.
    text = INPUT + """
    layer { name: "t" type: "Reshape" bottom: "data" top: "t" reshape_param { shape { dim: 3 dim: 2 } } }
    layer { name: "a" type: "InnerProduct" bottom: "data" top: "a" param { name: "w" }
            inner_product_param { num_output: 2 bias_term: false } }
    layer { name: "b" type: "InnerProduct" bottom: "t" top: "b" param { name: "w" share_mode: PERMISSIVE }
            inner_product_param { num_output: 3 bias_term: false } }"""
    net = make_net(text)
    assert net.param_owners == [-1, 0]
    assert net.params["a"][0].shape == (2, 3) and net.params["b"][0].shape == (3, 2)
    _raises(make_net, text.replace("num_output: 3", "num_output: 4"), "'w'.*count mismatch")
    _raises(make_net, text.replace(" share_mode: PERMISSIVE", ""), "'w'.*shape mismatch")


def test_shared_lr_mult_must_agree_when_both_set(make_net):
    _raises(make_net, _shared(2, 2, "lr_mult: 1", "lr_mult: 2"), "'b'.*'w'.*mismatched lr_mult")
    _raises(make_net, _shared(2, 2, "decay_mult: 1", "decay_mult: 0"), "'w'.*mismatched decay_mult")
    net = make_net(_shared(2, 2, "", "lr_mult: 3 decay_mult: 0.5"))  # the sharer sets it first
    assert net.params_lr == [3.0] and net.params_weight_decay == [0.5]


def test_too_many_param_specs(make_net):
    text = INPUT + f'layer {{ name: "a" {IP.format(n=2)} bottom: "data" top: "a" param {{ }} param {{ }} }}'
    _raises(make_net, text, "'a'.*2 param specs.*1 param blob")


def test_layer_setup_errors_name_the_layer(make_net):
    text = INPUT + 'layer { name: "r" type: "Reshape" bottom: "data" top: "r" ' \
                   'reshape_param { shape { dim: 7 dim: 5 } } }'
    err = _raises(make_net, text, "'r'")
    assert err.layer == "r"


def test_include_and_exclude_rejected_by_net(make_net):
    _raises(make_net, INPUT + 'layer { name: "x" type: "ReLU" bottom: "data" top: "x" '
                              'include { phase: TEST } exclude { phase: TRAIN } }', "'x'.*not both")
