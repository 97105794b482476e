"""Fixtures: user Python-layer modules written into tmp_path and put on sys.path."""

import sys
import textwrap

import pytest

USER_LAYERS = '''
import numpy as np
import engine as caffe


class ScaleByParam(caffe.Layer):
    """top = w * bottom with one learnable scalar w, initialised from param_str."""

    def setup(self, bottom, top):
        if len(bottom) != 1:
            raise Exception("ScaleByParam needs one bottom")
        self.setup_phase = self.phase
        if len(self.blobs) == 0:
            self.blobs.add_blob(1)
            self.blobs[0].data[...] = float(self.param_str)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data[0] * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] += np.sum(top[0].diff * bottom[0].data)
        if propagate_down[0]:
            bottom[0].diff[...] = self.blobs[0].data[0] * top[0].diff


class HalfSumSquares(caffe.Layer):
    """Loss layer: top = sum(x^2) / 2; its loss weight arrives in top[0].diff[0]."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        top[0].data[0] = 0.5 * np.sum(bottom[0].data.astype(np.float64) ** 2)

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = top[0].diff[0] * bottom[0].data


class CubePlusBias(caffe.Layer):
    """top = a * x^3 + b, params a (scalar) and b (per channel): for the gradient check."""

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs.add_blob(bottom[0].channels)
        self.blobs[0].data[...] = 0.7
        self.blobs[1].data[...] = np.arange(bottom[0].channels) * 0.1

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x = bottom[0].data
        b = self.blobs[1].data.reshape(1, -1, *([1] * (x.ndim - 2)))
        top[0].data[...] = self.blobs[0].data[0] * x ** 3 + b

    def backward(self, top, propagate_down, bottom):
        x = bottom[0].data
        dy = top[0].diff
        self.blobs[0].diff[0] += np.sum(dy * x ** 3)
        axes = tuple(i for i in range(x.ndim) if i != 1)
        self.blobs[1].diff[...] += dy.sum(axis=axes)
        if propagate_down[0]:
            bottom[0].diff[...] = dy * 3 * self.blobs[0].data[0] * x ** 2


class FailsInForward(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        raise ValueError("user forward exploded")


class FailsInSetup(caffe.Layer):
    def setup(self, bottom, top):
        raise RuntimeError("bad param_str " + repr(self.param_str))


class FixedBatch(caffe.Layer):
    """Data layer (no bottoms): a fixed x and target y = x, the pycaffe way of feeding data."""

    def setup(self, bottom, top):
        if len(bottom) != 0:
            raise Exception("FixedBatch takes no bottoms")
        self.x = np.linspace(-1, 1, 6).reshape(2, 3)

    def reshape(self, bottom, top):
        top[0].reshape(2, 3)
        top[1].reshape(2, 3)

    def forward(self, bottom, top):
        top[0].data[...] = self.x
        top[1].data[...] = self.x

    def backward(self, top, propagate_down, bottom):
        pass


class NotALayer:
    pass
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Name of an importable module holding the user layers above (fresh per test)."""
    name = f"brewnet_user_layers_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_LAYERS))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)
