"""Forward/backward passes: loss weights, shared weights, from-to ranges, reshape, update."""

from __future__ import annotations

import numpy as np
import pytest

from engine import common

IP = (
    'type: "InnerProduct" inner_product_param {{ num_output: {n} '
    'weight_filler {{ type: "gaussian" std: 0.5 }} bias_filler {{ type: "constant" value: 0.1 }} }}'
)


def _fill(net, seed=7):
    rng = np.random.default_rng(seed)
    for name in net.inputs:
        blob = net.blobs[name]
        blob.data[...] = rng.standard_normal(blob.shape)


def _loss_weight_net(make_net, w):
    text = f"""force_backward: true
    layer {{ name: "data" type: "Input" top: "data" top: "label"
            input_param {{ shape {{ dim: 3 dim: 5 }} shape {{ dim: 3 dim: 4 }} }} }}
    layer {{ name: "ip1" {IP.format(n=4)} bottom: "data" top: "ip1" loss_weight: {w} }}
    layer {{ name: "relu" type: "ReLU" bottom: "ip1" top: "r" }}
    layer {{ name: "ip2" {IP.format(n=4)} bottom: "r" top: "ip2" }}
    layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip2" bottom: "label" top: "loss"
             loss_weight: {w} }}"""
    common.set_random_seed(1701)
    net = make_net(text)
    _fill(net)
    return net


def _loss_and_diffs(net):
    net.clear_param_diffs()
    loss = net.forward_backward()
    diffs = [p.diff.copy() for p in net.learnable_params] + [net.blobs["data"].diff.copy()]
    return loss, diffs


@pytest.mark.parametrize("w", [2.0, 0.0, 1.0, -1.0, -2.5, 3.7])
def test_loss_weights_scale_loss_and_every_diff(make_net, w):
    ref_net = _loss_weight_net(make_net, 1.0)
    ref_loss, ref_diffs = _loss_and_diffs(ref_net)
    # The reference itself: mid-net weight moved onto the split, loss = sum(ip1) + euclidean.
    assert "ip1_ip1_0_split" in ref_net._layer_names
    ip1 = ref_net.blobs["ip1"].data.astype(np.float64)
    euclid = 0.5 * np.sum((ref_net.blobs["ip2"].data - ref_net.blobs["label"].data) ** 2) / 3
    assert ref_loss == pytest.approx(ip1.sum() + euclid, rel=1e-5)
    assert np.abs(ref_diffs[-1]).sum() > 0

    loss, diffs = _loss_and_diffs(_loss_weight_net(make_net, w))
    assert loss == pytest.approx(w * ref_loss, rel=1e-5, abs=1e-6)
    for got, ref in zip(diffs, ref_diffs, strict=True):
        np.testing.assert_allclose(got, w * ref, rtol=1e-4, atol=1e-5)


SHARED = """
layer {{ name: "in" type: "Input" top: "a" top: "b" top: "ta" top: "tb"
        input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "a" top: "ya" param {{ name: "{p1}" }}
        inner_product_param {{ num_output: 3 bias_term: false weight_filler {{ type: "gaussian" }} }} }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "b" top: "yb" param {{ name: "{p2}" }}
        inner_product_param {{ num_output: 3 bias_term: false weight_filler {{ type: "gaussian" }} }} }}
layer {{ name: "la" type: "EuclideanLoss" bottom: "ya" bottom: "ta" top: "la" }}
layer {{ name: "lb" type: "EuclideanLoss" bottom: "yb" bottom: "tb" top: "lb" }}
"""


def _data_for(net):
    rng = np.random.default_rng(3)
    for name in ("a", "b", "ta", "tb"):
        net.blobs[name].data[...] = rng.standard_normal(net.blobs[name].shape)


def test_input_layer_with_one_shape_for_all_tops_and_inputs_collected(make_net):
    net = make_net(SHARED.format(p1="w", p2="w"))
    assert net.inputs == ["a", "b", "ta", "tb"]
    assert all(net.blobs[n].shape == (2, 3) for n in net.inputs)


def test_shared_weights_accumulate_into_one_memory_and_update_moves_both(make_net):
    shared = make_net(SHARED.format(p1="w", p2="w"))
    assert shared.param_owners == [-1, 0]
    assert len(shared.learnable_params) == 1 and shared.learnable_param_ids == [0, 0]
    w1, w2 = shared.params["ip1"][0], shared.params["ip2"][0]
    assert np.shares_memory(w1.data, w2.data) and np.shares_memory(w1.diff, w2.diff)
    np.testing.assert_array_equal(w1.data, w2.data)  # the sharer sees the owner's values

    unshared = make_net(SHARED.format(p1="w1", p2="w2"))
    assert unshared.param_owners == [-1, -1]
    unshared.params["ip1"][0].data[...] = w1.data
    unshared.params["ip2"][0].data[...] = w1.data
    _data_for(shared)
    _data_for(unshared)
    loss_s = shared.forward_backward()
    loss_u = unshared.forward_backward()
    assert loss_s == pytest.approx(loss_u, rel=1e-6)
    g1, g2 = (unshared.params[n][0].diff.copy() for n in ("ip1", "ip2"))
    assert np.abs(g1).sum() > 0 and np.abs(g2).sum() > 0
    np.testing.assert_allclose(w1.diff, g1 + g2, rtol=1e-5, atol=1e-6)

    before = w1.data.copy()
    shared.update()
    np.testing.assert_allclose(w1.data, before - (g1 + g2), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(w1.data, w2.data)
    shared.clear_param_diffs()
    assert not w1.diff.any() and not w2.diff.any()


def test_update_subtracts_diff_only_once_per_owner(make_net):
    net = make_net(SHARED.format(p1="w", p2="w"))
    w = net.learnable_params[0]
    before = w.data.copy()
    w.diff[...] = 0.25
    net.update()
    np.testing.assert_allclose(w.data, before - 0.25, rtol=1e-6)


CHAIN = f"""force_backward: true
layer {{ name: "data" type: "Input" top: "data" top: "label"
        input_param {{ shape {{ dim: 2 dim: 5 }} shape {{ dim: 2 dim: 3 }} }} }}
layer {{ name: "ip1" {IP.format(n=4)} bottom: "data" top: "ip1" }}
layer {{ name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }}
layer {{ name: "ip2" {IP.format(n=3)} bottom: "ip1" top: "ip2" }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip2" bottom: "label" top: "loss" }}
"""


def test_forward_backward_from_to_equal_full_passes(make_net):
    net = make_net(CHAIN)
    _fill(net)
    net.clear_param_diffs()
    full_loss = net.forward_backward()
    ref = [p.diff.copy() for p in net.learnable_params] + [net.blobs["data"].diff.copy()]
    last = len(net.layers) - 1
    for k in range(last):
        net.clear_param_diffs()
        net.blobs["data"].diff[...] = 0
        loss = net.forward_from_to(0, k) + net.forward_from_to(k + 1, last)
        assert loss == pytest.approx(full_loss, rel=1e-6)
        net.backward_from_to(last, k + 1)
        net.backward_from_to(k, 0)
        got = [p.diff.copy() for p in net.learnable_params] + [net.blobs["data"].diff.copy()]
        for g, r in zip(got, ref, strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-7)


def test_forward_values_match_numpy(make_net):
    net = make_net(CHAIN)
    _fill(net)
    loss = net.forward_prefilled()
    (w1, b1), (w2, b2) = net.params["ip1"], net.params["ip2"]
    x = net.blobs["data"].data.astype(np.float64)
    h = np.maximum(x @ w1.data.T + b1.data, 0)
    y = h @ w2.data.T + b2.data
    expected = 0.5 * np.sum((y - net.blobs["label"].data) ** 2) / 2
    assert loss == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(net.blobs["ip2"].data, y, rtol=1e-5, atol=1e-6)


def test_reshape_between_input_sizes(make_net):
    net = make_net(CHAIN)
    _fill(net)
    net.forward_prefilled()
    small = net.blobs["ip2"].data.copy()
    x = net.blobs["data"].data.copy()
    net.blobs["data"].reshape(4, 5)
    net.blobs["label"].reshape(4, 3)
    net.reshape()
    assert net.blobs["ip1"].shape == (4, 4) and net.blobs["ip2"].shape == (4, 3)
    net.blobs["data"].data[:2] = x
    net.blobs["data"].data[2:] = -x
    net.blobs["label"].data[...] = 0
    net.forward_prefilled()
    np.testing.assert_allclose(net.blobs["ip2"].data[:2], small, rtol=1e-6)
    net.blobs["data"].reshape(2, 5)
    net.blobs["label"].reshape(2, 3)
    net.blobs["data"].data[...] = x
    net.forward_prefilled()  # layers reshape in forward too
    np.testing.assert_allclose(net.blobs["ip2"].data, small, rtol=1e-6)


def test_backward_skips_layers_not_needing_it(make_net):
    calls = []
    net = make_net(CHAIN.replace("force_backward: true", ""))
    for layer in net.layers:
        original = layer.backward

        def spy(top, propagate_down, bottom, _name=layer.name, _orig=original):
            calls.append((_name, list(propagate_down)))
            return _orig(top, propagate_down, bottom)

        layer.backward = spy
    _fill(net)
    net.forward_backward()
    assert calls == [("loss", [True, False]), ("ip2", [True]), ("relu", [True]), ("ip1", [False])]
