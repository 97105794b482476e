"""Convolution, Deconvolution and Im2col: im2col + one BLAS GEMM per image and group, as Caffe.

Up to 3 spatial axes, the CPU passes run in engine.kernels.cpu.conv: the batch split over
threads, each image's im2col and GEMMs fused in a thread's own cache-sized buffers. More axes (or
no usable BLAS) take the generic path here: chunks of the batch through numpy's batched matmul.
Param gradients accumulate (+=); the bottom gradient is overwritten through col2im, as Caffe.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.blob import Blob
from engine.errors import WiringError
from engine.fillers import fill
from engine.kernels.cpu import blas
from engine.kernels.cpu.conv import ColumnPlan
from engine.kernels.cpu.im2col import col2im, im2col
from engine.layer import Layer, register_layer
from engine.nn.vision_geometry import ConvGeometry, adopt_dtype, parse_conv_geometry, spatial_setup

#: column-buffer budget per chunk, in elements
_CHUNK_ELEMS = 1 << 22


def _chunks(num: int, per_image: int):
    step = max(1, min(num, _CHUNK_ELEMS // max(per_image, 1)))
    for start in range(0, num, step):
        yield start, min(num, start + step)


class _BaseConvolution(Layer):
    """Caffe's BaseConvolutionLayer: geometry, param blobs, shapes, GEMM helpers."""

    category = "vision"
    min_bottom_blobs = 1
    min_top_blobs = 1
    equal_num_bottom_top_blobs = True
    reverse = False  # Deconvolution swaps the roles of input and output

    def _fail(self, msg: str) -> WiringError:
        return WiringError(f"layer '{self.name}' ({self.type}): {msg}", layer=self.name)

    def layer_setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        p = self.layer_param.convolution_param
        self.channel_axis, self.num_spatial = spatial_setup(bottom[0].shape, p.axis, self.name)
        self.geom: ConvGeometry = parse_conv_geometry(p, self.num_spatial, self.name)
        g = self.geom
        self.is_1x1 = all(k == 1 for k in g.kernel) and all(s == 1 for s in g.stride) and not any(g.pad)
        self.channels = bottom[0].shape[self.channel_axis]
        self.num_output = int(p.num_output)
        if self.num_output <= 0:
            raise self._fail("num_output must be positive")
        self.group = int(p.group)
        if self.group <= 0 or self.channels % self.group:
            raise self._fail(f"group {self.group} must divide the {self.channels} input channels")
        if self.num_output % self.group:
            raise self._fail(f"num_output {self.num_output} should be a multiple of group {self.group}")
        if self.reverse:
            self.conv_out_ch, self.conv_in_ch = self.channels, self.num_output
        else:
            self.conv_out_ch, self.conv_in_ch = self.num_output, self.channels
        self.bias_term = bool(p.bias_term)
        weight_shape = (self.conv_out_ch, self.conv_in_ch // self.group, *g.kernel)
        bias_shape = (self.num_output,)
        if self.blobs:
            if len(self.blobs) != 1 + self.bias_term:
                raise self._fail(f"incorrect number of weight blobs: {len(self.blobs)}, "
                                 f"expected {1 + self.bias_term}")
            if self.blobs[0].shape != weight_shape:
                raise self._fail(f"incorrect weight shape: expected {weight_shape}; "
                                 f"instead, shape was {self.blobs[0].shape}")
            if self.bias_term and self.blobs[1].shape != bias_shape:
                raise self._fail(f"incorrect bias shape: expected {bias_shape}; "
                                 f"instead, shape was {self.blobs[1].shape}")
            adopt_dtype(self)
        else:
            self.blobs = [self.new_blob(weight_shape)]
            fill(self.blobs[0], p.weight_filler)
            if self.bias_term:
                self.blobs.append(self.new_blob(bias_shape))
                fill(self.blobs[1], p.bias_filler)
        self.kernel_dim = self.blobs[0].count_range(1)
        for i in range(len(self.blobs)):
            self.set_param_propagate_down(i, True)

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        first = self.channel_axis + 1
        shape = bottom[0].shape
        if len(shape) != first + self.num_spatial:
            raise self._fail(f"bottom num_axes may not change (now {shape})")
        if shape[self.channel_axis] != self.channels:
            raise self._fail(f"input size incompatible with convolution kernel: bottom {shape} "
                             f"has {shape[self.channel_axis]} channels, expected {self.channels}")
        for i, b in enumerate(bottom[1:], 1):
            if b.shape != shape:
                raise self._fail(f"shape mismatch - bottom[0]: {shape} vs. bottom[{i}]: {b.shape}")
        self.num = bottom[0].count_range(0, self.channel_axis)
        self.in_spatial = tuple(shape[first:])
        g = self.geom
        out = g.deconv_out(self.in_spatial) if self.reverse else g.conv_out(self.in_spatial)
        if any(o < 0 for o in out):
            raise self._fail(f"output size {out} is negative for input {shape}")
        self.out_spatial = tuple(out)
        top_shape = (*shape[: self.channel_axis], self.num_output, *out)
        for t in top:
            t.reshape(top_shape)
        # The image side of im2col is the bottom for convolution, the top for deconvolution.
        if self.reverse:
            self.img_spatial, self.col_spatial = self.out_spatial, self.in_spatial
        else:
            self.img_spatial, self.col_spatial = self.in_spatial, self.out_spatial
        self.col_positions = int(np.prod(self.col_spatial, dtype=np.int64))

    # -- column helpers (img: (n, conv_in_ch, *img_spatial); col: (n, kernel_dim*group, P))
    def _to_col(self, img: np.ndarray) -> np.ndarray:
        n = img.shape[0]
        if self.is_1x1:
            return np.ascontiguousarray(img).reshape(n, self.conv_in_ch, self.col_positions)
        col = np.empty((n, self.kernel_dim * self.group, self.col_positions), dtype=img.dtype)
        g = self.geom
        im2col(img, g.kernel, g.pad, g.stride, g.dilation, self.col_spatial, col)
        return col

    def _from_col(self, col: np.ndarray, img: np.ndarray) -> None:
        """img = col2im(col); img must be a C-contiguous view."""
        if self.is_1x1:
            img.reshape(col.shape)[...] = col
            return
        g = self.geom
        col2im(col, g.kernel, g.pad, g.stride, g.dilation, self.col_spatial, img)

    def _weight_groups(self, blob_array: np.ndarray) -> np.ndarray:
        return blob_array.reshape(self.group, self.conv_out_ch // self.group, self.kernel_dim)

    def _col_group(self, col: np.ndarray, gi: int) -> np.ndarray:
        return col[:, gi * self.kernel_dim : (gi + 1) * self.kernel_dim]

    def _out_group(self, arr: np.ndarray, gi: int) -> np.ndarray:
        m = self.conv_out_ch // self.group
        return arr[:, gi * m : (gi + 1) * m]

    def _forward_gemm(self, col: np.ndarray, out: np.ndarray) -> None:
        """out (n, conv_out_ch, P) = W * col, per group."""
        w = self._weight_groups(self.blobs[0].cpu_data())
        for gi in range(self.group):
            self._out_group(out, gi)[...] = np.matmul(w[gi], self._col_group(col, gi))

    def _backward_gemm(self, out: np.ndarray) -> np.ndarray:
        """col (n, kernel_dim*group, P) = W^T * out, per group."""
        w = self._weight_groups(self.blobs[0].cpu_data())
        col = np.empty((out.shape[0], self.kernel_dim * self.group, out.shape[2]), dtype=out.dtype)
        for gi in range(self.group):
            self._col_group(col, gi)[...] = np.matmul(w[gi].T, self._out_group(out, gi))
        return col

    def _weight_gemm(self, col: np.ndarray, out: np.ndarray) -> None:
        """weight_diff += out * col^T summed over the chunk, per group."""
        wd = self._weight_groups(self.blobs[0].diff)
        for gi in range(self.group):
            out_g, col_g = self._out_group(out, gi), self._col_group(col, gi)
            # One GEMM per image, as Caffe does: tensordot over (image, position) would first copy
            # the whole column buffer into a transposed layout, which costs more than the GEMMs.
            for n in range(out_g.shape[0]):
                wd[gi] += out_g[n] @ col_g[n].T

    def _top_positions(self) -> int:
        """Spatial positions of the top (explicit, so an empty batch reshapes too)."""
        return int(np.prod(self.out_spatial, dtype=np.int64))

    # -- fused CPU path (up to 3 spatial axes): see engine.kernels.cpu.conv
    def _column_plan(self, *blobs: Blob) -> ColumnPlan | None:
        """The fused kernels' plan for this geometry, or None where the generic path must run: more
        than 3 spatial axes, no BLAS binding, or blobs of another dtype than the weights (the
        kernels are compiled for one dtype)."""
        if self.num_spatial > 3 or not blas.available():
            return None
        if any(blob.dtype != self.blobs[0].dtype for blob in blobs):
            return None
        key = (self.conv_in_ch, self.img_spatial, self.col_spatial)
        if getattr(self, "_plan_key", None) != key:
            g = self.geom
            self._plan = ColumnPlan(self.conv_in_ch, self.img_spatial, self.col_spatial, g.kernel, g.pad,
                                    g.stride, g.dilation, self.kernel_dim * self.group, self.is_1x1)
            self._plan_key = key
        return self._plan

    def _add_bias(self, out: np.ndarray) -> None:
        out += self.blobs[1].cpu_data().reshape(1, -1, 1)

    def _bias_grad(self, top_diff: np.ndarray) -> None:
        self.blobs[1].diff[...] += top_diff.sum(axis=(0, 2))

    # -- GPU (base_conv_layer's forward_gpu_gemm / backward_gpu_gemm / weight_gpu_gemm)
    # Flat device arrays; an image's column block is kernel_dim*group rows by col_positions.
    def _gpu_ok(self) -> bool:
        from engine.kernels.gpu.im2col import supported

        return supported(self.num_spatial)

    def _gpu_scratch(self, name: str):
        """A device buffer kept between passes (Caffe's col_buffer_)."""
        from engine.kernels.gpu.common import Scratch

        if not hasattr(self, "_scratch"):
            self._scratch: dict[str, object] = {}
        return self._scratch.setdefault(name, Scratch())

    @property
    def _col_image(self) -> int:
        return self.kernel_dim * self.group * self.col_positions

    def _img_dim(self) -> int:
        return self.conv_in_ch * int(np.prod(self.img_spatial, dtype=np.int64))

    def _gpu_to_col(self, img, start: int, end: int, name: str = "col"):
        """(array, offset) of the columns of images [start, end); 1x1 kernels use the image itself."""
        if self.is_1x1:
            return img, start * self._img_dim()
        from engine.kernels.gpu.im2col import im2col_gpu

        col = self._gpu_scratch(name).get((end - start) * self._col_image, img.dtype)
        g = self.geom
        im2col_gpu(img, end - start, self.conv_in_ch, self.img_spatial, g.kernel, g.pad, g.stride,
                   g.dilation, self.col_spatial, col, img_off=start * self._img_dim())
        return col, 0

    def _gpu_from_col(self, col, start: int, end: int, img) -> None:
        from engine.kernels.gpu.im2col import col2im_gpu

        g = self.geom
        col2im_gpu(col, end - start, self.conv_in_ch, self.img_spatial, g.kernel, g.pad, g.stride,
                   g.dilation, self.col_spatial, img, img_off=start * self._img_dim())

    def _gemm_sizes(self) -> tuple[int, int, int]:
        """(output channels per group, weight offset, column offset) per group, as Caffe names them."""
        m = self.conv_out_ch // self.group
        return m, m * self.kernel_dim, self.kernel_dim * self.col_positions

    def _gpu_forward_gemm(self, col, col_off: int, out, out_off: int) -> None:
        """out (conv_out_ch x P) = W * col, per group."""
        from engine.kernels.gpu.blas import gemm

        m, w_step, c_step = self._gemm_sizes()
        o_step, p = m * self.col_positions, self.col_positions
        w = self.blobs[0].gpu_data()
        for gi in range(self.group):
            gemm(False, False, m, p, self.kernel_dim, 1.0, w[gi * w_step:], col[col_off + gi * c_step:],
                 0.0, out[out_off + gi * o_step:])

    def _gpu_backward_gemm(self, out, out_off: int, col, col_off: int) -> None:
        """col = W^T * out, per group."""
        from engine.kernels.gpu.blas import gemm

        m, w_step, c_step = self._gemm_sizes()
        o_step, p = m * self.col_positions, self.col_positions
        w = self.blobs[0].gpu_data()
        for gi in range(self.group):
            gemm(True, False, self.kernel_dim, p, m, 1.0, w[gi * w_step:], out[out_off + gi * o_step:],
                 0.0, col[col_off + gi * c_step:])

    def _gpu_weight_gemm(self, col, col_off: int, out, out_off: int) -> None:
        """weight_diff += out * col^T, per group."""
        from engine.kernels.gpu.blas import gemm

        m, w_step, c_step = self._gemm_sizes()
        o_step, p = m * self.col_positions, self.col_positions
        wd = self.blobs[0].mutable_gpu_diff()
        for gi in range(self.group):
            gemm(False, True, m, self.kernel_dim, p, 1.0, out[out_off + gi * o_step:],
                 col[col_off + gi * c_step:], 1.0, wd[gi * w_step:])

    def _gpu_top_positions(self) -> int:
        return int(np.prod(self.out_spatial, dtype=np.int64))

    def _gpu_add_bias(self, y) -> None:
        from engine.kernels.gpu.dense import add_channel_bias

        add_channel_bias(self.num, self.num_output, self._gpu_top_positions(), self.blobs[1].gpu_data(), y)

    def _gpu_bias_grad(self, top_diff) -> None:
        from engine.kernels.gpu.dense import channel_sum

        channel_sum(self.num, self.num_output, self._gpu_top_positions(), top_diff,
                    self.blobs[1].mutable_gpu_diff())


@register_layer("Convolution")
class ConvolutionLayer(_BaseConvolution):
    """N-D convolution with groups, dilation and padding (Caffe's im2col + GEMM)."""

    description = "Convolves the input with learned filters (groups, dilation, N-D)"

    def forward_cpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        n_img = (self.num, self.channels, *self.in_spatial)
        per_image = self.kernel_dim * self.group * self.col_positions
        for b, t in zip(bottom, top, strict=True):
            x = b.cpu_data().reshape(n_img)
            y = t.data.reshape(self.num, self.num_output, self.col_positions)
            plan = self._column_plan(b, t)
            if plan is not None:
                bias = self.blobs[1].cpu_data() if self.bias_term else None
                plan.forward(x, self.blobs[0].cpu_data(), self.group, bias, y)  # + bias after, as Caffe
                continue
            for s, e in _chunks(self.num, per_image):
                self._forward_gemm(self._to_col(x[s:e]), y[s:e])
            if self.bias_term:
                self._add_bias(y)

    def backward_cpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        n_img = (self.num, self.channels, *self.in_spatial)
        per_image = self.kernel_dim * self.group * self.col_positions
        for i, (t, b) in enumerate(zip(top, bottom, strict=True)):
            td = t.cpu_diff().reshape(self.num, self.num_output, self.col_positions)
            if self.bias_term and self.param_propagate_down(1):
                self._bias_grad(td)
            want_w = self.param_propagate_down(0)
            if not (want_w or propagate_down[i]):
                continue
            x = b.cpu_data().reshape(n_img)
            bd = b.diff.reshape(n_img) if propagate_down[i] else None
            plan = self._column_plan(t, b)
            if plan is not None:
                wd = self.blobs[0].diff if want_w else None
                plan.backward(td, self.blobs[0].cpu_data(), self.group, None, bd, sources=x, wd=wd)
                continue
            for s, e in _chunks(self.num, per_image):
                if want_w:
                    self._weight_gemm(self._to_col(x[s:e]), td[s:e])
                if bd is not None:
                    self._from_col(self._backward_gemm(td[s:e]), bd[s:e])

    def forward_gpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        if not self._gpu_ok():
            self.forward_cpu(bottom, top)
            return
        top_dim = self.num_output * self.col_positions
        for b, t in zip(bottom, top, strict=True):
            x, y = b.gpu_data(), t.mutable_gpu_data()
            for s, e in _chunks(self.num, self._col_image):
                col, base = self._gpu_to_col(x, s, e)
                for n in range(s, e):
                    self._gpu_forward_gemm(col, base + (n - s) * self._col_image, y, n * top_dim)
            if self.bias_term:
                self._gpu_add_bias(y)

    def backward_gpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        if not self._gpu_ok():
            self.backward_cpu(top, propagate_down, bottom)
            return
        top_dim = self.num_output * self.col_positions
        for i, (t, b) in enumerate(zip(top, bottom, strict=True)):
            td = t.gpu_diff()
            if self.bias_term and self.param_propagate_down(1):
                self._gpu_bias_grad(td)
            want_w = self.param_propagate_down(0)
            if not (want_w or propagate_down[i]):
                continue
            x = b.gpu_data()
            bd = b.mutable_gpu_diff() if propagate_down[i] else None
            for s, e in _chunks(self.num, self._col_image):
                if want_w:
                    col, base = self._gpu_to_col(x, s, e)
                    for n in range(s, e):
                        self._gpu_weight_gemm(col, base + (n - s) * self._col_image, td, n * top_dim)
                if bd is not None:
                    # a 1x1 kernel's columns are the bottom diff itself (Caffe skips col2im)
                    col_diff, base = (bd, s * self._img_dim()) if self.is_1x1 else (
                        self._gpu_scratch("col_diff").get((e - s) * self._col_image, bd.dtype), 0)
                    for n in range(s, e):
                        self._gpu_backward_gemm(td, n * top_dim, col_diff, base + (n - s) * self._col_image)
                    if not self.is_1x1:
                        self._gpu_from_col(col_diff, s, e, bd)


@register_layer("Deconvolution")
class DeconvolutionLayer(_BaseConvolution):
    """Transposed convolution: the backward pass of Convolution used as a forward pass."""

    description = "Transposed convolution (learned upsampling); weights (C_in, C_out/group, k...)"
    reverse = True

    def forward_cpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        out_img = (self.num, self.num_output, *self.out_spatial)
        per_image = self.kernel_dim * self.group * self.col_positions
        for b, t in zip(bottom, top, strict=True):
            x = b.cpu_data().reshape(self.num, self.channels, self.col_positions)
            y = t.data.reshape(out_img)
            plan = self._column_plan(b, t)
            if plan is not None:
                bias = self.blobs[1].cpu_data() if self.bias_term else None
                plan.backward(x, self.blobs[0].cpu_data(), self.group, bias, y)  # + bias after, as Caffe
                continue
            for s, e in _chunks(self.num, per_image):
                self._from_col(self._backward_gemm(x[s:e]), y[s:e])
            if self.bias_term:
                self._add_bias(y.reshape(self.num, self.num_output, self._top_positions()))

    def backward_cpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        out_img = (self.num, self.num_output, *self.out_spatial)
        per_image = self.kernel_dim * self.group * self.col_positions
        for i, (t, b) in enumerate(zip(top, bottom, strict=True)):
            td = t.cpu_diff()
            if self.bias_term and self.param_propagate_down(1):
                self._bias_grad(td.reshape(self.num, self.num_output, self._top_positions()))
            want_w = self.param_propagate_down(0)
            if not (want_w or propagate_down[i]):
                continue
            td_img = td.reshape(out_img)
            x = b.cpu_data().reshape(self.num, self.channels, self.col_positions)
            bd = b.diff.reshape(self.num, self.channels, self.col_positions) if propagate_down[i] else None
            plan = self._column_plan(t, b)
            if plan is not None:
                wd = self.blobs[0].diff if want_w else None
                plan.forward(td_img, self.blobs[0].cpu_data(), self.group, None, bd, values=x, wd=wd)
                continue
            for s, e in _chunks(self.num, per_image):
                col = self._to_col(td_img[s:e])
                if want_w:
                    self._weight_gemm(col, x[s:e])
                if bd is not None:
                    self._forward_gemm(col, bd[s:e])

    def forward_gpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        if not self._gpu_ok():
            self.forward_cpu(bottom, top)
            return
        bottom_dim = self.channels * self.col_positions
        for b, t in zip(bottom, top, strict=True):
            x, y = b.gpu_data(), t.mutable_gpu_data()
            for s, e in _chunks(self.num, self._col_image):
                col, base = (y, s * self._img_dim()) if self.is_1x1 else (
                    self._gpu_scratch("col").get((e - s) * self._col_image, y.dtype), 0)
                for n in range(s, e):
                    self._gpu_backward_gemm(x, n * bottom_dim, col, base + (n - s) * self._col_image)
                if not self.is_1x1:
                    self._gpu_from_col(col, s, e, y)
            if self.bias_term:
                self._gpu_add_bias(y)

    def backward_gpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        if not self._gpu_ok():
            self.backward_cpu(top, propagate_down, bottom)
            return
        bottom_dim = self.channels * self.col_positions
        for i, (t, b) in enumerate(zip(top, bottom, strict=True)):
            td = t.gpu_diff()
            if self.bias_term and self.param_propagate_down(1):
                self._gpu_bias_grad(td)
            want_w = self.param_propagate_down(0)
            if not (want_w or propagate_down[i]):
                continue
            x = b.gpu_data()
            bd = b.mutable_gpu_diff() if propagate_down[i] else None
            for s, e in _chunks(self.num, self._col_image):
                col, base = self._gpu_to_col(td, s, e)
                for n in range(s, e):
                    off = base + (n - s) * self._col_image
                    if want_w:
                        self._gpu_weight_gemm(col, off, x, n * bottom_dim)
                    if bd is not None:
                        self._gpu_forward_gemm(col, off, bd, n * bottom_dim)


@register_layer("Im2col")
class Im2colLayer(Layer):
    """Rearranges image patches into columns, as the first half of Caffe's convolution."""

    category = "vision"
    description = "Rearranges image patches into columns (the im2col step of convolution)"
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        p = self.layer_param.convolution_param
        self.channel_axis, self.num_spatial = spatial_setup(bottom[0].shape, p.axis, self.name, min_spatial=1)
        self.geom = parse_conv_geometry(p, self.num_spatial, self.name)

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        shape = bottom[0].shape
        first = self.channel_axis + 1
        if len(shape) != first + self.num_spatial:
            raise WiringError(f"layer '{self.name}' (Im2col): bottom num_axes may not change (now {shape})",
                              layer=self.name)
        self.num = bottom[0].count_range(0, self.channel_axis)
        self.channels = shape[self.channel_axis]
        self.in_spatial = tuple(shape[first:])
        self.out_spatial = self.geom.conv_out(self.in_spatial)
        if any(o < 0 for o in self.out_spatial):
            raise WiringError(f"layer '{self.name}' (Im2col): output size {self.out_spatial} is negative",
                              layer=self.name)
        k = int(np.prod(self.geom.kernel, dtype=np.int64))
        top[0].reshape((*shape[: self.channel_axis], self.channels * k, *self.out_spatial))
        self.rows = self.channels * k

    def _args(self):
        g = self.geom
        return g.kernel, g.pad, g.stride, g.dilation, self.out_spatial

    def forward_cpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        x = bottom[0].cpu_data().reshape(self.num, self.channels, *self.in_spatial)
        col = top[0].data.reshape(self.num, self.rows, -1)
        im2col(x, *self._args(), col)

    def backward_cpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        if not propagate_down[0]:
            return
        col = top[0].cpu_diff().reshape(self.num, self.rows, -1)
        col2im(col, *self._args(), bottom[0].diff.reshape(self.num, self.channels, *self.in_spatial))

    def forward_gpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        from engine.kernels.gpu.im2col import im2col_gpu, supported

        if not supported(self.num_spatial):
            self.forward_cpu(bottom, top)
            return
        g = self.geom
        im2col_gpu(bottom[0].gpu_data(), self.num, self.channels, self.in_spatial, g.kernel, g.pad,
                   g.stride, g.dilation, self.out_spatial, top[0].mutable_gpu_data())

    def backward_gpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        from engine.kernels.gpu.im2col import col2im_gpu, supported

        if not propagate_down[0]:
            return
        if not supported(self.num_spatial):
            self.backward_cpu(top, propagate_down, bottom)
            return
        g = self.geom
        col2im_gpu(top[0].gpu_diff(), self.num, self.channels, self.in_spatial, g.kernel, g.pad,
                   g.stride, g.dilation, self.out_spatial, bottom[0].mutable_gpu_diff())
