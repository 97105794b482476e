"""Kernel/pad/stride/dilation parsing shared by Convolution, Deconvolution and Im2col.

Follows Caffe's BaseConvolutionLayer::LayerSetUp rules: the repeated fields take
one value for every spatial axis or one per axis; the `_h/_w` forms are 2-D only
and exclusive with the repeated forms.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import WiringError
from engine.proto import caffe_pb2


@dataclass(frozen=True)
class ConvGeometry:
    kernel: tuple[int, ...]
    pad: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]

    def extent(self, axis: int) -> int:
        return self.dilation[axis] * (self.kernel[axis] - 1) + 1

    def conv_out(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """Convolution output size; C integer division (truncation toward zero), as Caffe."""
        out = []
        for a, size in enumerate(spatial):
            num = size + 2 * self.pad[a] - self.extent(a)
            out.append(int(num / self.stride[a]) + 1)
        return tuple(out)

    def deconv_out(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(
            self.stride[a] * (size - 1) + self.extent(a) - 2 * self.pad[a]
            for a, size in enumerate(spatial)
        )


def _per_axis(
    name: str, values, n: int, default: int | None, fail
) -> list[int]:
    count = len(values)
    allowed = (0, 1, n) if default is not None else (1, n)
    if count not in allowed:
        once = "once, or once per spatial dimension" if default is None else "0, 1 or once per spatial dim"
        raise fail(f"{name} must be specified {once} ({name} specified {count} times; {n} spatial dims)")
    if count == 0:
        return [default] * n
    return [int(values[0 if count == 1 else i]) for i in range(n)]


def parse_conv_geometry(
    param: caffe_pb2.ConvolutionParameter, num_spatial: int, layer: str
) -> ConvGeometry:
    """Read the geometry as Caffe does; errors are WiringErrors naming the layer."""

    def fail(msg: str) -> WiringError:
        return WiringError(f"layer '{layer}': {msg}", layer=layer)

    if param.HasField("kernel_h") or param.HasField("kernel_w"):
        if num_spatial != 2:
            raise fail("kernel_h & kernel_w can only be used for 2D convolution")
        if len(param.kernel_size):
            raise fail("either kernel_size or kernel_h/w should be specified; not both")
        kernel = [param.kernel_h, param.kernel_w]
    else:
        kernel = _per_axis("kernel_size", param.kernel_size, num_spatial, None, fail)
    if any(k <= 0 for k in kernel):
        raise fail(f"filter dimensions must be nonzero (kernel {kernel})")

    if param.HasField("pad_h") or param.HasField("pad_w"):
        if num_spatial != 2:
            raise fail("pad_h & pad_w can only be used for 2D convolution")
        if len(param.pad):
            raise fail("either pad or pad_h/w should be specified; not both")
        pad = [param.pad_h, param.pad_w]
    else:
        pad = _per_axis("pad", param.pad, num_spatial, 0, fail)

    if param.HasField("stride_h") or param.HasField("stride_w"):
        if num_spatial != 2:
            raise fail("stride_h & stride_w can only be used for 2D convolution")
        if len(param.stride):
            raise fail("either stride or stride_h/w should be specified; not both")
        stride = [param.stride_h, param.stride_w]
    else:
        stride = _per_axis("stride", param.stride, num_spatial, 1, fail)
    if any(s <= 0 for s in stride):
        raise fail(f"stride dimensions must be nonzero (stride {stride})")

    dilation = _per_axis("dilation", param.dilation, num_spatial, 1, fail)
    return ConvGeometry(tuple(kernel), tuple(pad), tuple(stride), tuple(dilation))


def spatial_setup(
    bottom_shape: tuple[int, ...], axis: int, layer: str, min_spatial: int = 0
) -> tuple[int, int]:
    """(channel axis, number of spatial axes) for a bottom shape and conv_param.axis."""
    n = len(bottom_shape)
    if not -n <= axis < max(n, 1):
        raise WiringError(
            f"layer '{layer}': axis {axis} out of range for a {n}-D bottom {bottom_shape}", layer=layer
        )
    channel_axis = axis + n if axis < 0 else axis
    num_spatial = n - channel_axis - 1
    if num_spatial < min_spatial:
        raise WiringError(
            f"layer '{layer}': bottom {bottom_shape} has {num_spatial} spatial axes after axis "
            f"{channel_axis}; at least {min_spatial} needed",
            layer=layer,
        )
    return channel_axis, num_spatial


def adopt_dtype(layer) -> None:
    """Cast param blobs loaded from layer_param.blobs (float32 on disk) to the layer's dtype."""
    from engine.blob import Blob

    for i, blob in enumerate(layer.blobs):
        if blob.dtype != layer.dtype:
            cast = Blob(blob.shape, dtype=layer.dtype)
            cast.data[...] = blob.cpu_data()
            layer.blobs[i] = cast
