"""The gradient checker itself: it passes right gradients and catches wrong ones."""

import numpy as np
import pytest

from engine.blob import Blob
from engine.layer import Layer
from engine.proto import caffe_pb2
from engine.testing import GradientChecker, GradientCheckError, check_loss_weight_scaling


class _Square(Layer):
    """y = x^2, with a switch to break the backward on purpose."""

    type = "TestSquare"
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1
    broken = False

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward_cpu(self, bottom, top):
        top[0].data[...] = bottom[0].data ** 2

    def backward_cpu(self, top, propagate_down, bottom):
        factor = 3.0 if self.broken else 2.0
        bottom[0].diff[...] = factor * bottom[0].data * top[0].diff


def _blobs():
    x = Blob((2, 3), dtype=np.float64)
    x.data[...] = np.random.default_rng(0).normal(size=(2, 3))
    return x, Blob(dtype=np.float64)


def test_right_gradient_passes_wrong_one_fails():
    checker = GradientChecker(1e-3, 1e-4)
    x, y = _blobs()
    checker.check_gradient_exhaustive(_Square(caffe_pb2.LayerParameter(name="sq")), [x], [y])
    checker.check_gradient_eltwise(_Square(caffe_pb2.LayerParameter(name="sq")), [x], [y])
    broken = _Square(caffe_pb2.LayerParameter(name="sq"))
    broken.broken = True
    with pytest.raises(GradientCheckError, match="sq"):
        checker.check_gradient(broken, [x], [y])


def test_loss_weight_scaling_catches_a_layer_that_ignores_the_weight():
    x, y = _blobs()

    def make(weight, ignores_weight=False):
        layer = _Square(caffe_pb2.LayerParameter(name="sq", loss_weight=[weight]))
        if ignores_weight:  # a backward that drops the top diff (and with it the loss weight)
            layer.backward_cpu = lambda top, pd, bottom: bottom[0].diff.__setitem__(
                Ellipsis, 2.0 * bottom[0].data)
        return layer

    check_loss_weight_scaling(make, [x], [y])
    with pytest.raises(GradientCheckError, match="not scaled"):
        check_loss_weight_scaling(lambda w: make(w, ignores_weight=True), [x], [y])
