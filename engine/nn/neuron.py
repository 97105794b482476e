"""Neuron (element-wise) layers, PReLU, Dropout and Softmax, with Caffe's exact rules.

Every neuron layer may run in place (top is bottom). Caffe computes some
gradients from the bottom data, which in place already holds the output; those
layers keep a copy of their input when run in place, so backward stays right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from engine import common
from engine.blob import Blob
from engine.errors import WiringError
from engine.fillers import fill
from engine.kernels.cpu import neuron as K
from engine.kernels.cpu.relu import relu_backward, relu_forward
from engine.kernels.gpu import math as GM
from engine.kernels.gpu import neuron as KG
from engine.kernels.gpu.common import Scratch, launch, reduce_blocks
from engine.layer import Layer, register_layer
from engine.proto import caffe_pb2


def layer_error(layer: Layer, message: str) -> WiringError:
    """A WiringError that names the layer and its type."""
    return WiringError(f"layer '{layer.name}' ({layer.type}): {message}", layer=layer.name)


def same_data(a: Blob, b: Blob) -> bool:
    """True when two blobs hold the same data memory (an in-place layer)."""
    return a is b or a.data_memory is b.data_memory


class NeuronLayer(Layer):
    """One bottom, one top shaped like it; subclasses give `compute` and `gradient`."""

    category = "neuron"
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def __init__(self, layer_param: caffe_pb2.LayerParameter) -> None:
        super().__init__(layer_param)
        self._input_copy: np.ndarray | None = None
        self._gpu_input = None  # device copy of the input of an in-place run
        self._gpu_scratch = Scratch()

    def needs_input(self) -> bool:
        """Whether `gradient` needs the true input (so in-place runs must keep a copy)."""
        return False

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        if top[0] is not bottom[0]:
            top[0].reshape(bottom[0].shape)

    def forward_cpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        x = bottom[0].cpu_data()
        in_place = same_data(bottom[0], top[0])
        self._input_copy = x.copy() if in_place and self.needs_input() else None
        top[0].data[...] = self.compute(x)

    def backward_cpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        if not propagate_down[0]:
            return
        x = self._input_copy if self._input_copy is not None else bottom[0].cpu_data()
        dx = self.gradient(x, top[0].cpu_data(), top[0].cpu_diff())
        bottom[0].diff[...] = dx

    def forward_gpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        n = bottom[0].count
        x = bottom[0].gpu_data()
        keep = same_data(bottom[0], top[0]) and self.needs_input()
        self._gpu_input = self._gpu_scratch.copy_of(x) if keep else None
        y = top[0].mutable_gpu_data()
        if n:
            self.compute_gpu(n, x, y)

    def backward_gpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        if not propagate_down[0] or not bottom[0].count:
            return
        x = self._gpu_input if self._gpu_input is not None else bottom[0].gpu_data()
        y, dy = top[0].gpu_data(), top[0].gpu_diff()
        self.gradient_gpu(bottom[0].count, x, y, dy, bottom[0].mutable_gpu_diff())

    def compute(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.compute")

    def gradient(self, x: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """d(loss)/dx from the input x, the output y and the top diff dy (a new array)."""
        raise NotImplementedError(f"{type(self).__name__}.gradient")

    def compute_gpu(self, n: int, x, y) -> None:
        """y = f(x) on flat device arrays of n elements."""
        raise NotImplementedError(f"{type(self).__name__}.compute_gpu")

    def gradient_gpu(self, n: int, x, y, dy, dx) -> None:
        """dx from the device input, output and top diff (dx may alias dy in place)."""
        raise NotImplementedError(f"{type(self).__name__}.gradient_gpu")


@register_layer("ReLU")
class ReLULayer(NeuronLayer):
    description = "Rectified linear unit: max(x, 0) + negative_slope * min(x, 0)."

    def layer_setup(self, bottom, top) -> None:
        self.slope = self.layer_param.relu_param.negative_slope

    def needs_input(self) -> bool:
        return self.slope < 0  # the output's sign no longer tells the input's

    def compute(self, x):
        y = np.empty_like(x)
        relu_forward(np.ascontiguousarray(x), self.slope, y)
        return y

    def gradient(self, x, y, dy):
        dx = np.empty_like(dy)
        relu_backward(np.ascontiguousarray(x), np.ascontiguousarray(dy), self.slope, dx)
        return dx

    # Plain ReLU (slope 0) is most of the activations in a conv net: the same kernels as compute /
    # gradient, written straight into the top / bottom diff (no input copy is needed in place).
    def forward_cpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        if self.slope != 0:
            super().forward_cpu(bottom, top)
            return
        self._input_copy = None
        relu_forward(bottom[0].cpu_data(), 0.0, top[0].data)

    def backward_cpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        if self.slope != 0 or not propagate_down[0]:
            super().backward_cpu(top, propagate_down, bottom)
            return
        relu_backward(bottom[0].cpu_data(), top[0].cpu_diff(), 0.0, bottom[0].diff)

    def compute_gpu(self, n, x, y):
        launch(KG.relu_forward, n)(n, x, y, x.dtype.type(self.slope))

    def gradient_gpu(self, n, x, y, dy, dx):
        launch(KG.relu_backward, n)(n, dy, x, dx, x.dtype.type(self.slope))


@register_layer("Sigmoid")
class SigmoidLayer(NeuronLayer):
    description = "Logistic sigmoid 1 / (1 + e^-x)."

    def compute(self, x):
        return K.sigmoid(x)

    def gradient(self, x, y, dy):
        return dy * y * (1 - y)

    def compute_gpu(self, n, x, y):
        launch(KG.sigmoid_forward, n)(n, x, y)

    def gradient_gpu(self, n, x, y, dy, dx):
        launch(KG.sigmoid_backward, n)(n, dy, y, dx)


@register_layer("TanH")
class TanHLayer(NeuronLayer):
    description = "Hyperbolic tangent."

    def compute(self, x):
        return np.tanh(x)

    def gradient(self, x, y, dy):
        return dy * (1 - y * y)

    def compute_gpu(self, n, x, y):
        launch(KG.tanh_forward, n)(n, x, y)

    def gradient_gpu(self, n, x, y, dy, dx):
        launch(KG.tanh_backward, n)(n, dy, y, dx)


@register_layer("AbsVal")
class AbsValLayer(NeuronLayer):
    description = "Absolute value |x|."

    def needs_input(self) -> bool:
        return True

    def compute(self, x):
        return np.abs(x)

    def gradient(self, x, y, dy):
        return dy * np.sign(x)

    def compute_gpu(self, n, x, y):
        launch(KG.abs_forward, n)(n, x, y)

    def gradient_gpu(self, n, x, y, dy, dx):
        launch(KG.abs_backward, n)(n, dy, x, dx)


@register_layer("BNLL")
class BNLLLayer(NeuronLayer):
    description = "Binomial normal log likelihood: log(1 + e^x)."

    def needs_input(self) -> bool:
        return True

    def compute(self, x):
        return K.bnll_forward(x)

    def gradient(self, x, y, dy):
        return K.bnll_backward(x, dy)

    def compute_gpu(self, n, x, y):
        launch(KG.bnll_forward, n)(n, x, y)

    def gradient_gpu(self, n, x, y, dy, dx):
        launch(KG.bnll_backward, n)(n, dy, x, dx, x.dtype.type(KG.BNLL_THRESHOLD))


@register_layer("ELU")
class ELULayer(NeuronLayer):
    description = "Exponential linear unit: x if x > 0 else alpha * (e^x - 1)."

    def layer_setup(self, bottom, top) -> None:
        self.alpha = self.layer_param.elu_param.alpha

    def needs_input(self) -> bool:
        return self.alpha < 0  # the output's sign no longer tells the input's

    def compute(self, x):
        return np.maximum(x, 0) + self.alpha * (np.exp(np.minimum(x, 0)) - 1)

    def gradient(self, x, y, dy):
        return dy * ((x > 0) + (self.alpha + y) * (x <= 0))

    def compute_gpu(self, n, x, y):
        launch(KG.elu_forward, n)(n, x, y, x.dtype.type(self.alpha))

    def gradient_gpu(self, n, x, y, dy, dx):
        launch(KG.elu_backward, n)(n, dy, x, y, dx, x.dtype.type(self.alpha))


@register_layer("Exp")
class ExpLayer(NeuronLayer):
    description = "y = base^(shift + scale * x); base -1 means e."

    def layer_setup(self, bottom, top) -> None:
        p = self.layer_param.exp_param
        if p.base != -1 and not p.base > 0:
            raise layer_error(self, f"exp_param.base must be strictly positive (or -1 for e), got {p.base}")
        log_base = 1.0 if p.base == -1 else math.log(p.base)
        if not math.isfinite(log_base):
            raise layer_error(self, f"log(base) = {log_base} for base {p.base}")
        self.inner_scale = log_base * p.scale
        with np.errstate(over="ignore"):
            if p.shift == 0:
                self.outer_scale = 1.0
            elif p.base == -1:
                self.outer_scale = float(np.exp(np.float64(p.shift)))
            else:
                self.outer_scale = float(np.power(np.float64(p.base), p.shift))

    def compute(self, x):
        y = np.exp(x) if self.inner_scale == 1 else np.exp(self.inner_scale * x)
        return y if self.outer_scale == 1 else y * self.outer_scale

    def gradient(self, x, y, dy):
        dx = y * dy
        return dx if self.inner_scale == 1 else dx * self.inner_scale

    def compute_gpu(self, n, x, y):
        dt = x.dtype.type
        launch(KG.exp_forward, n)(n, x, y, dt(self.inner_scale), dt(self.outer_scale))

    def gradient_gpu(self, n, x, y, dy, dx):
        launch(KG.exp_backward, n)(n, dy, y, dx, y.dtype.type(self.inner_scale))


@register_layer("Log")
class LogLayer(NeuronLayer):
    description = "y = log_base(shift + scale * x); base -1 means e."

    def layer_setup(self, bottom, top) -> None:
        p = self.layer_param.log_param
        if p.base != -1 and not p.base > 0:
            raise layer_error(self, f"log_param.base must be strictly positive (or -1 for e), got {p.base}")
        log_base = 1.0 if p.base == -1 else math.log(p.base)
        if log_base == 0 or not math.isfinite(log_base):
            raise layer_error(self, f"log(base) = {log_base} for base {p.base}: no finite 1 / log(base)")
        self.base_scale = 1.0 / log_base
        self.scale, self.shift = p.scale, p.shift
        self.backward_num_scale = self.scale / log_base

    def needs_input(self) -> bool:
        return True

    def _affine(self, x):
        z = x if self.scale == 1 else x * self.scale
        return z if self.shift == 0 else z + self.shift

    def compute(self, x):
        y = np.log(self._affine(x))
        return y if self.base_scale == 1 else y * self.base_scale

    def gradient(self, x, y, dy):
        inv = 1 / self._affine(x)
        if self.backward_num_scale != 1:
            inv = inv * self.backward_num_scale
        return inv * dy

    def compute_gpu(self, n, x, y):
        dt = x.dtype.type
        launch(KG.log_forward, n)(n, x, y, dt(self.scale), dt(self.shift), dt(self.base_scale))

    def gradient_gpu(self, n, x, y, dy, dx):
        dt = x.dtype.type
        launch(KG.log_backward, n)(
            n, dy, x, dx, dt(self.scale), dt(self.shift), dt(self.backward_num_scale)
        )


@register_layer("Power")
class PowerLayer(NeuronLayer):
    description = "y = (shift + scale * x)^power."

    def layer_setup(self, bottom, top) -> None:
        p = self.layer_param.power_param
        self.power, self.scale, self.shift = p.power, p.scale, p.shift
        self.diff_scale = self.power * self.scale

    def needs_input(self) -> bool:
        return self.diff_scale != 0 and self.power != 1

    def compute(self, x):
        if self.diff_scale == 0:  # scale or power is 0: the input does not matter
            with np.errstate(all="ignore"):  # Caffe gives inf / NaN here, not an error
                value = 1.0 if self.power == 0 else np.power(np.float64(self.shift), self.power)
            return np.full_like(x, value)
        z = x if self.scale == 1 else x * self.scale
        if self.shift != 0:
            z = z + self.shift
        return z if self.power == 1 else np.power(z, x.dtype.type(self.power))

    def gradient(self, x, y, dy):
        if self.diff_scale == 0:
            return np.zeros_like(dy)
        if self.power == 1:
            return np.full_like(dy, self.diff_scale) * dy
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.power == 2:  # 2 * scale * (shift + scale * x)
                d = (self.diff_scale * self.scale) * x
                if self.shift != 0:
                    d = d + self.diff_scale * self.shift
            elif self.shift == 0:  # power * y / x, Caffe's shortcut (NaN at x = 0, as there)
                d = (y / x) * self.power
            else:  # diff_scale * y / (shift + scale * x)
                z = x if self.scale == 1 else x * self.scale
                d = y / (z + self.shift)
                if self.diff_scale != 1:
                    d = d * self.diff_scale
        return dy * d

    def compute_gpu(self, n, x, y):
        if self.diff_scale == 0:
            GM.gpu_set(n, float(self.compute(np.zeros(1, x.dtype))[0]), y)
            return
        dt = x.dtype.type
        launch(KG.power_forward, n)(n, x, y, dt(self.power), dt(self.scale), dt(self.shift))

    def gradient_gpu(self, n, x, y, dy, dx):
        if self.diff_scale == 0:
            GM.gpu_set(n, 0.0, dx)
            return
        if self.power == 1:
            case = KG.POWER_ONE
        elif self.power == 2:
            case = KG.POWER_TWO
        elif self.shift == 0:
            case = KG.POWER_NO_SHIFT
        else:
            case = KG.POWER_GENERAL
        dt = x.dtype.type
        launch(KG.power_backward, n)(
            n, dy, x, y, dx, case, dt(self.power), dt(self.scale), dt(self.shift)
        )


@register_layer("Threshold")
class ThresholdLayer(NeuronLayer):
    description = "1 where x > threshold, else 0 (no gradient)."

    def layer_setup(self, bottom, top) -> None:
        self.threshold = self.layer_param.threshold_param.threshold

    def compute(self, x):
        return (x > self.threshold).astype(x.dtype)

    def compute_gpu(self, n, x, y):
        launch(KG.threshold_forward, n)(n, x, y, x.dtype.type(self.threshold))

    def backward_cpu(self, top, propagate_down, bottom) -> None:
        if any(propagate_down):
            raise layer_error(self, "Threshold has no backward pass; nothing below it may need a gradient")

    def backward_gpu(self, top, propagate_down, bottom) -> None:
        self.backward_cpu(top, propagate_down, bottom)


@register_layer("Clip")
class ClipLayer(NeuronLayer):
    description = "Clip to [min, max]; gradient passes where min <= x <= max."

    def layer_setup(self, bottom, top) -> None:
        p = self.layer_param.clip_param
        if not (self.layer_param.HasField("clip_param") and p.HasField("min") and p.HasField("max")):
            raise layer_error(self, "clip_param needs both min and max")
        self.lo, self.hi = p.min, p.max

    def needs_input(self) -> bool:
        return True

    def compute(self, x):
        dt = x.dtype.type
        return np.fmax(dt(self.lo), np.minimum(x, dt(self.hi)))  # NaN -> min, as std::max gives

    def gradient(self, x, y, dy):
        dt = x.dtype.type
        return dy * ((x >= dt(self.lo)) & (x <= dt(self.hi))).astype(dy.dtype)

    def compute_gpu(self, n, x, y):
        dt = x.dtype.type
        launch(KG.clip_forward, n)(n, x, y, dt(self.lo), dt(self.hi))

    def gradient_gpu(self, n, x, y, dy, dx):
        dt = x.dtype.type
        launch(KG.clip_backward, n)(n, dy, x, dx, dt(self.lo), dt(self.hi))


@register_layer("Swish")
class SwishLayer(NeuronLayer):
    description = "Swish: x * sigmoid(beta * x)."

    def layer_setup(self, bottom, top) -> None:
        self.beta = self.layer_param.swish_param.beta
        self._sigmoid: np.ndarray | None = None
        self._gpu_sigmoid = Scratch()

    def compute(self, x):
        self._sigmoid = K.sigmoid(x * self.beta)
        return x * self._sigmoid

    def gradient(self, x, y, dy):
        s = self._sigmoid
        return dy * (self.beta * y + s * (1 - self.beta * y))

    def compute_gpu(self, n, x, y):
        sig = self._gpu_sigmoid.get(n, x.dtype)
        launch(KG.swish_forward, n)(n, x, sig, y, x.dtype.type(self.beta))

    def gradient_gpu(self, n, x, y, dy, dx):
        sig = self._gpu_sigmoid.get(n, y.dtype)
        launch(KG.swish_backward, n)(n, dy, y, sig, dx, y.dtype.type(self.beta))


@register_layer("PReLU")
class PReLULayer(NeuronLayer):
    description = "Parametric ReLU: a learnable negative slope per channel (or one shared)."

    def layer_setup(self, bottom, top) -> None:
        if bottom[0].num_axes < 2:
            raise layer_error(self, f"bottom needs at least 2 axes, got shape {bottom[0].shape}")
        p = self.layer_param.prelu_param
        self.channel_shared = p.channel_shared
        channels = bottom[0].shape[1]
        if not self.blobs:
            slope = Blob(dtype=self.dtype)
            slope.reshape([] if self.channel_shared else [channels])
            if p.HasField("filler"):
                fill(slope, p.filler)
            else:
                slope.data[...] = 0.25
            self.blobs = [slope]
        self._gpu_partial = Scratch()
        want = 1 if self.channel_shared else channels
        if self.blobs[0].count != want:
            raise layer_error(
                self, f"slope blob holds {self.blobs[0].count} value(s), need {want}"
                + (" (channel_shared)" if self.channel_shared else f" (one per channel of {channels})"),
            )
        self.set_param_propagate_down(0, True)

    def reshape(self, bottom, top) -> None:
        if bottom[0].num_axes < 2:
            raise layer_error(self, f"bottom needs at least 2 axes, got shape {bottom[0].shape}")
        super().reshape(bottom, top)

    def _slopes(self, x: np.ndarray) -> np.ndarray:
        """Slopes broadcast against x viewed as (num, channels, rest)."""
        s = self.blobs[0].cpu_data().astype(x.dtype, copy=False).reshape(-1)
        return s.reshape(1, -1, 1)

    def forward_cpu(self, bottom, top) -> None:
        x = bottom[0].cpu_data()
        self._input_copy = x.copy() if same_data(bottom[0], top[0]) else None
        x3 = x.reshape(x.shape[0], x.shape[1], -1)
        y = np.maximum(x3, 0) + self._slopes(x) * np.minimum(x3, 0)
        top[0].data[...] = y.reshape(x.shape)

    def backward_cpu(self, top, propagate_down, bottom) -> None:
        x = self._input_copy if self._input_copy is not None else bottom[0].cpu_data()
        shape3 = (x.shape[0], x.shape[1], -1)
        x3 = x.reshape(shape3)
        dy3 = top[0].cpu_diff().reshape(shape3)
        neg = x3 <= 0
        if self.param_propagate_down(0):
            g = (dy3 * x3 * neg).sum(axis=(0, 2), dtype=np.float64)
            slope_diff = self.blobs[0].diff.reshape(-1)
            slope_diff += g.sum() if self.channel_shared else g
        if propagate_down[0]:
            factor = np.where(neg, self._slopes(x), 1).astype(x.dtype)
            bottom[0].diff[...] = (dy3 * factor).reshape(x.shape)

    def _layout(self, blob: Blob) -> tuple[int, int, int, int]:
        """(count, channels, dim, div_factor) as Caffe's PReLU kernels index them."""
        channels = blob.shape[1]
        return blob.count, channels, blob.count_range(2), channels if self.channel_shared else 1

    def forward_gpu(self, bottom, top) -> None:
        n, channels, dim, div = self._layout(bottom[0])
        x = bottom[0].gpu_data()
        self._gpu_input = self._gpu_scratch.copy_of(x) if same_data(bottom[0], top[0]) else None
        y = top[0].mutable_gpu_data()
        if n:
            launch(KG.prelu_forward, n)(n, channels, dim, div, x, y, self.blobs[0].gpu_data())

    def backward_gpu(self, top, propagate_down, bottom) -> None:
        n, channels, dim, div = self._layout(bottom[0])
        if not n:
            return
        x = self._gpu_input if self._gpu_input is not None else bottom[0].gpu_data()
        dy = top[0].gpu_diff()
        if self.param_propagate_down(0):
            partial = self._gpu_partial.get(channels, np.float64)
            num = n // (channels * dim)
            reduce_blocks(KG.prelu_param_backward, channels)(num, channels, dim, dy, x, partial)
            slope_diff = self.blobs[0].mutable_gpu_diff()
            KG.add_partials[1, 1](channels, partial, slope_diff, int(self.channel_shared))
        if propagate_down[0]:
            launch(KG.prelu_backward, n)(
                n, channels, dim, div, dy, x, bottom[0].mutable_gpu_diff(), self.blobs[0].gpu_data()
            )


@register_layer("Dropout")
class DropoutLayer(NeuronLayer):
    description = "Randomly zero units with probability dropout_ratio while training."

    def layer_setup(self, bottom, top) -> None:
        p = self.layer_param.dropout_param
        if p.sample_weights_test:
            raise layer_error(self, "dropout_param.sample_weights_test is not supported")
        if not 0 <= p.dropout_ratio < 1:
            raise layer_error(self, f"dropout_ratio must be in [0, 1), got {p.dropout_ratio}")
        self.ratio = p.dropout_ratio
        self.scale_train = p.scale_train
        self.scale = 1.0 / (1.0 - self.ratio)
        self.mask: np.ndarray | None = None
        self._gpu_mask = Scratch()

    def _factor(self, dtype) -> np.ndarray | float:
        """What multiplies the input (and the gradient) in the current phase."""
        if self.phase == caffe_pb2.TRAIN:
            return self.mask * self.scale if self.scale_train else self.mask
        return 1.0 if self.scale_train else dtype.type(1.0 - self.ratio)

    def forward_cpu(self, bottom, top) -> None:
        x = bottom[0].cpu_data()
        if self.phase == caffe_pb2.TRAIN:
            keep = common.rng().random(x.shape) < (1.0 - self.ratio)
            self.mask = keep.astype(x.dtype)
        top[0].data[...] = x * self._factor(x.dtype)

    def backward_cpu(self, top, propagate_down, bottom) -> None:
        if propagate_down[0]:
            dy = top[0].cpu_diff()
            bottom[0].diff[...] = dy * self._factor(dy.dtype)

    def _apply_gpu(self, n: int, src, dst) -> None:
        """dst = src times the phase's factor (the same one forward and backward)."""
        dt = src.dtype.type
        if self.phase == caffe_pb2.TRAIN:
            scale = dt(self.scale) if self.scale_train else dt(1)
            keep = self._gpu_mask.get(n, src.dtype)
            launch(KG.dropout_apply, n)(n, src, keep, dst, scale)
        elif self.scale_train:
            GM.gpu_copy(n, src, dst)
        else:
            GM.gpu_scale(n, dt(1.0 - self.ratio), src, dst)

    def forward_gpu(self, bottom, top) -> None:
        n = bottom[0].count
        if self.phase == caffe_pb2.TRAIN:
            # drawn on the host from the engine's generator, exactly as forward_cpu draws
            GM.gpu_rng_bernoulli(n, 1.0 - self.ratio, self._gpu_mask.get(n, bottom[0].dtype))
        if n:
            self._apply_gpu(n, bottom[0].gpu_data(), top[0].mutable_gpu_data())

    def backward_gpu(self, top, propagate_down, bottom) -> None:
        n = bottom[0].count
        if propagate_down[0] and n:
            self._apply_gpu(n, top[0].gpu_diff(), bottom[0].mutable_gpu_diff())


@register_layer("Softmax")
class SoftmaxLayer(Layer):
    category = "utility"
    description = "Softmax over one axis (default 1, the channels)."
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def __init__(self, layer_param: caffe_pb2.LayerParameter) -> None:
        super().__init__(layer_param)
        self._gpu_scale = Scratch()  # Caffe's scale_ blob: per-position max, sum or dot

    def reshape(self, bottom, top) -> None:
        try:
            self.axis = bottom[0].canonical_axis_index(self.layer_param.softmax_param.axis)
        except IndexError as exc:
            raise layer_error(self, f"softmax_param.axis: {exc}") from None
        if top[0] is not bottom[0]:
            top[0].reshape(bottom[0].shape)

    def _shape3(self, blob: Blob) -> tuple[int, int, int]:
        return (blob.count_range(0, self.axis), blob.shape[self.axis], blob.count_range(self.axis + 1))

    def forward_cpu(self, bottom, top) -> None:
        x = bottom[0].cpu_data().reshape(self._shape3(bottom[0]))
        top[0].data[...] = K.softmax_forward(x).reshape(bottom[0].shape)

    def backward_cpu(self, top, propagate_down, bottom) -> None:
        if not propagate_down[0]:
            return
        shape3 = self._shape3(top[0])
        y = top[0].cpu_data().reshape(shape3)
        dy = top[0].cpu_diff().reshape(shape3)
        bottom[0].diff[...] = K.softmax_backward(y, dy).reshape(top[0].shape)

    def forward_gpu(self, bottom, top) -> None:
        outer, channels, inner = self._shape3(bottom[0])
        n = bottom[0].count
        if n:
            per_pos = self._gpu_scale.get(outer * inner, bottom[0].dtype)
            softmax_gpu(outer, channels, inner, bottom[0].gpu_data(), top[0].mutable_gpu_data(), per_pos)

    def backward_gpu(self, top, propagate_down, bottom) -> None:
        outer, channels, inner = self._shape3(top[0])
        if not propagate_down[0] or not top[0].count:
            return
        y, dy = top[0].gpu_data(), top[0].gpu_diff()
        dots = self._gpu_scale.get(outer * inner, top[0].dtype)
        m = outer * inner
        launch(KG.channel_dot, m)(outer, channels, inner, dy, y, dots)
        n = top[0].count
        launch(KG.softmax_backward, n)(outer, channels, inner, dy, y, dots, bottom[0].mutable_gpu_diff())


def softmax_gpu(outer: int, channels: int, inner: int, x, y, per_pos) -> None:
    """y = softmax of x over the middle axis of (outer, channels, inner); per_pos holds outer*inner.

    Caffe's sequence: channel max, subtract and exp, channel sum, divide.
    """
    m, n = outer * inner, outer * channels * inner
    launch(KG.channel_max, m)(outer, channels, inner, x, per_pos)
    launch(KG.channel_subtract_exp, n)(outer, channels, inner, x, per_pos, y)
    launch(KG.channel_sum, m)(outer, channels, inner, y, per_pos)
    launch(KG.channel_div, n)(outer, channels, inner, per_pos, y)
