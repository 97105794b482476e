"""Tiny nets for solver tests: an Input layer whose data the test fills once."""

import types

import numpy as np
import pytest
from google.protobuf import text_format

from engine.proto import caffe_pb2

NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" top: "target"
        input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip2" bottom: "target" top: "loss" }
"""


def solver_param(**fields) -> caffe_pb2.SolverParameter:
    p = caffe_pb2.SolverParameter()
    text_format.Parse(NET, p.net_param)
    p.base_lr = 0.1
    p.lr_policy = "fixed"
    p.max_iter = 10
    p.display = 0
    p.random_seed = 7
    p.solver_mode = caffe_pb2.SolverParameter.CPU
    p.snapshot_after_train = False
    for key, value in fields.items():
        if isinstance(value, list):
            getattr(p, key).extend(value)
        else:
            setattr(p, key, value)
    return p


def fill_inputs(net, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    net.blobs["data"].data[...] = rng.normal(size=(4, 3))
    net.blobs["target"].data[...] = rng.normal(size=(4, 2))


@pytest.fixture
def tiny():
    """The tiny net's solver parameters and input filler, for tests that build solvers themselves."""
    return types.SimpleNamespace(solver_param=solver_param, fill_inputs=fill_inputs)


@pytest.fixture
def make_solver():
    from engine import solvers

    def make(kind: str = "SGD", **fields):
        p = solver_param(type=kind, **fields)
        s = solvers.solver_class(kind)(p)
        fill_inputs(s.net)
        return s

    return make
