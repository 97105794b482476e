"""debug_info statistics and log lines (Caffe's Forward/Backward/UpdateDebugInfo), NaN location."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from engine import debug
from engine.blob import Blob

NET = """debug_info: true
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" param { name: "w" } param { }
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


@pytest.fixture
def net(make_net):
    n = make_net(NET)
    rng = np.random.default_rng(5)
    n.blobs["data"].data[...] = rng.standard_normal((2, 3))
    n.blobs["label"].data[...] = rng.standard_normal((2, 2))
    return n


def test_blob_stat_values():
    b = Blob((2, 2))
    b.data[...] = [[1, -2], [3, -4]]
    b.diff[...] = [[0, 0.5], [-1.5, 0]]
    s = debug.blob_stat(b, "forward", "L", "top", "x")
    assert s.mean_abs_data == 2.5 and s.mean_abs_diff == 0.5 and s.max_abs_diff == 1.5
    assert s.l2_data == pytest.approx(math.sqrt(30)) and s.l2_diff == pytest.approx(math.sqrt(2.5))
    assert math.isnan(debug.blob_stat(Blob(), "forward", "L", "top", "e").mean_abs_data)


def test_forward_records_and_log_lines(net, caplog):
    with caplog.at_level(logging.INFO, logger="brewnet.net"):
        net.forward_prefilled()
    recs = net.debug_records
    assert [(r.layer, r.kind, r.blob) for r in recs] == [
        ("data", "top", "data"), ("data", "top", "label"),
        ("ip", "top", "ip"), ("ip", "param", "w"), ("ip", "param", "1"),
        ("loss", "top", "loss"),
    ]
    ip = next(r for r in recs if r.blob == "ip")
    assert ip.mean_abs_data == pytest.approx(float(np.abs(net.blobs["ip"].data).mean()), rel=1e-6)
    lines = [r.getMessage() for r in caplog.records]
    assert f"    [Forward] Layer ip, top blob ip data: {ip.mean_abs_data:.6g}" in lines
    assert any(line.startswith("    [Forward] Layer ip, param blob w data: ") for line in lines)


def test_backward_and_update_records(net, caplog):
    net.forward_prefilled()
    with caplog.at_level(logging.INFO, logger="brewnet.net"):
        net.backward_all()
        net.update()
    back = [r for r in net.debug_records if r.pass_name == "backward"]
    # loss: bottom ip only (label needs no backward); ip: its params only (data needs none).
    assert [(r.layer, r.kind, r.blob) for r in back] == [
        ("loss", "bottom", "ip"), ("ip", "param", "w"), ("ip", "param", "1"), ("", "net", "all params"),
    ]
    total = back[-1]
    params = net.learnable_params
    assert total.l1_diff == pytest.approx(sum(float(np.abs(p.diff).sum()) for p in params), rel=1e-6)
    assert total.l2_diff == pytest.approx(math.sqrt(sum(float((p.diff**2).sum()) for p in params)), rel=1e-6)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("    [Backward] Layer loss, bottom blob ip diff: ") for line in lines)
    assert any(line.startswith("    [Backward] Layer ip, param blob 0 diff: ") for line in lines)
    assert any(line.startswith("    [Backward] All net params (data, diff): L1 norm = (") for line in lines)
    update_lines = [line for line in lines if line.startswith("    [Update] Layer ip, param w data: ")]
    assert len(update_lines) == 1 and "; diff: " in update_lines[0]
    updates = [r for r in net.debug_records if r.pass_name == "update"]
    assert [(r.layer, r.blob, r.param_index) for r in updates] == [("ip", "w", 0), ("ip", "1", 1)]


def test_records_reset_each_forward_and_off_when_disabled(net):
    net.forward_backward()
    assert net.debug_records
    net.debug_info = False
    net.forward_backward()
    assert net.debug_records == []


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_first_nonfinite_layer(net):
    net.forward_backward()
    assert debug.first_nonfinite_layer(net) is None
    net.blobs["data"].data[0, 0] = np.nan
    net.forward_prefilled()
    assert debug.first_nonfinite_layer(net) == "layer 'data' (top blob 'data' data)"
    net.blobs["data"].data[0, 0] = 0
    net.params["ip"][0].data[0, 0] = np.inf
    net.forward_prefilled()
    assert debug.first_nonfinite_layer(net) == "layer 'ip' (param 0 data)"
