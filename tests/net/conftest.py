"""Fixtures for the Net tests: prototxt text -> NetParameter / Net, and test-only layers.

Real layers are used where they exist. Until the data-layer module lands, a
minimal stand-in for Caffe's "Input" layer is registered (only when the real
one is missing), and one test-only layer with a single scalar param exists
for weight-sharing checks that must not depend on InnerProduct's filler.
"""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from engine.layer import Layer, layer_type_list, register_layer
from engine.proto import caffe_pb2

if "Input" not in layer_type_list():  # loads the built-in layers first

    @register_layer("Input")
    class _StandInInputLayer(Layer):
        """Caffe's InputLayer: tops shaped by input_param.shape; forward does nothing."""

        category = "data"
        exact_num_bottom_blobs = 0
        min_top_blobs = 1

        def layer_setup(self, bottom, top):
            shapes = self.layer_param.input_param.shape
            for i, t in enumerate(top):
                shape = shapes[0] if len(shapes) == 1 else shapes[i]
                t.reshape(list(shape.dim))

        def reshape(self, bottom, top):
            pass

        def forward_cpu(self, bottom, top):
            pass


if "TestScalarMul" not in layer_type_list():

    @register_layer("TestScalarMul")
    class _ScalarMulLayer(Layer):
        """top = w * bottom with one learnable scalar w (filled from `scale_param.bias_filler`)."""

        exact_num_bottom_blobs = 1
        exact_num_top_blobs = 1

        def layer_setup(self, bottom, top):
            if not self.blobs:
                w = self.new_blob([1])
                w.data[...] = self.layer_param.scale_param.bias_filler.value or 1.0
                self.blobs.append(w)

        def reshape(self, bottom, top):
            top[0].reshape(bottom[0].shape)

        def forward_cpu(self, bottom, top):
            top[0].data[...] = bottom[0].data * self.blobs[0].data[0]

        def backward_cpu(self, top, propagate_down, bottom):
            if self.param_propagate_down(0):
                self.blobs[0].diff[0] += float(np.sum(top[0].diff * bottom[0].data, dtype=np.float64))
            if propagate_down[0]:
                bottom[0].diff[...] = top[0].diff * self.blobs[0].data[0]


def parse(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


@pytest.fixture
def net_param():
    """Prototxt text -> NetParameter."""
    return parse


@pytest.fixture
def make_net():
    """Prototxt text (or NetParameter) -> Net; keyword arguments go to Net."""
    from engine.net import Net

    def build(text_or_param, **kwargs):
        p = parse(text_or_param) if isinstance(text_or_param, str) else text_or_param
        return Net(p, **kwargs)

    return build
