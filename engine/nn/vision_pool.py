"""Pooling (MAX, AVE, STOCHASTIC) and spatial pyramid pooling, with Caffe's shape rules."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine import common
from engine.blob import Blob
from engine.errors import WiringError
from engine.kernels.cpu import pool_tile
from engine.kernels.cpu import pooling as kern
from engine.layer import Layer, register_layer
from engine.proto import caffe_pb2

PP = caffe_pb2.PoolingParameter


@dataclass(frozen=True)
class PoolGeometry:
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    pad_h: int
    pad_w: int
    global_pooling: bool


def parse_pool_geometry(p: caffe_pb2.PoolingParameter, layer: str) -> PoolGeometry:
    """Caffe's PoolingLayer::LayerSetUp checks; kernel 0 stands for 'whole input' when global."""

    def fail(msg: str) -> WiringError:
        return WiringError(f"layer '{layer}' (Pooling): {msg}", layer=layer)

    has_k, has_kh, has_kw = p.HasField("kernel_size"), p.HasField("kernel_h"), p.HasField("kernel_w")
    if p.global_pooling:
        if has_k or has_kh or has_kw:
            raise fail("with global_pooling: true, the filter size cannot be specified")
    else:
        if has_k == (has_kh and has_kw):
            raise fail("filter size is kernel_size OR kernel_h and kernel_w; not both")
        if not (has_k or (has_kh and has_kw)):
            raise fail("for non-square filters both kernel_h and kernel_w are required")
    has_p, has_ph, has_pw = p.HasField("pad"), p.HasField("pad_h"), p.HasField("pad_w")
    if not ((not has_p and has_ph and has_pw) or (not has_ph and not has_pw)):
        raise fail("pad is pad OR pad_h and pad_w are required")
    has_s, has_sh, has_sw = p.HasField("stride"), p.HasField("stride_h"), p.HasField("stride_w")
    if not ((not has_s and has_sh and has_sw) or (not has_sh and not has_sw)):
        raise fail("stride is stride OR stride_h and stride_w are required")
    if p.global_pooling:
        kh = kw = 0
    elif has_k:
        kh = kw = p.kernel_size
    else:
        kh, kw = p.kernel_h, p.kernel_w
    if not p.global_pooling and (kh <= 0 or kw <= 0):
        raise fail("filter dimensions cannot be zero")
    ph, pw = (p.pad_h, p.pad_w) if has_ph else (p.pad, p.pad)
    sh, sw = (p.stride_h, p.stride_w) if has_sh else (p.stride, p.stride)
    if sh <= 0 or sw <= 0:
        raise fail("stride dimensions cannot be zero")
    if p.global_pooling and not (ph == 0 and pw == 0 and sh == 1 and sw == 1):
        raise fail("with global_pooling: true, only pad = 0 and stride = 1 are allowed")
    if ph or pw:
        if p.pool not in (PP.AVE, PP.MAX):
            raise fail("padding implemented only for average and max pooling")
        if not p.global_pooling and (ph >= kh or pw >= kw):
            raise fail(f"pad ({ph}, {pw}) must be smaller than the kernel ({kh}, {kw})")
    return PoolGeometry(kh, kw, sh, sw, ph, pw, bool(p.global_pooling))


def pooled_size(size: int, kernel: int, pad: int, stride: int, ceil_mode: bool) -> int:
    """Caffe's output size, including dropping a last window that starts in the padding."""
    ratio = float(np.float32(size + 2 * pad - kernel) / np.float32(stride))
    out = (math.ceil(ratio) if ceil_mode else math.floor(ratio)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@register_layer("Pooling")
class PoolingLayer(Layer):
    """MAX / AVE / STOCHASTIC pooling over 4-D (N, C, H, W) blobs."""

    category = "vision"
    description = "Max, average or stochastic pooling over spatial windows"
    exact_num_bottom_blobs = 1
    min_top_blobs = 1

    def check_blob_counts(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        self.max_top_blobs = 2 if self.layer_param.pooling_param.pool == PP.MAX else 1
        super().check_blob_counts(bottom, top)

    def layer_setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        p = self.layer_param.pooling_param
        self.method = p.pool
        self.ceil_mode = p.round_mode == PP.CEIL
        self.geom = parse_pool_geometry(p, self.name)

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        if bottom[0].num_axes != 4:
            raise WiringError(
                f"layer '{self.name}' (Pooling): input must have 4 axes, corresponding to "
                f"(num, channels, height, width); got {bottom[0].shape}",
                layer=self.name,
            )
        n, c, h, w = bottom[0].shape
        g = self.geom
        self.kh, self.kw = (h, w) if g.global_pooling else (g.kernel_h, g.kernel_w)
        oh = pooled_size(h, self.kh, g.pad_h, g.stride_h, self.ceil_mode)
        ow = pooled_size(w, self.kw, g.pad_w, g.stride_w, self.ceil_mode)
        if oh <= 0 or ow <= 0:
            raise WiringError(
                f"layer '{self.name}' (Pooling): output size ({oh}, {ow}) is not positive for input "
                f"{bottom[0].shape} and kernel ({self.kh}, {self.kw})",
                layer=self.name,
            )
        self.out_shape = (n, c, oh, ow)
        for t in top:
            t.reshape(self.out_shape)
        # The host index buffers (argmax / sample) are allocated by the CPU passes, lazily and only
        # when the shape changes: reshape runs before every forward, on the GPU path too, and in
        # shape-only analysis, which should not pay for a buffer it never uses.
        self._index_planes = (n * c, oh, ow)

    def _host_index(self, name: str) -> np.ndarray:
        """The host index buffer `name` ('mask' or 'rand_idx'), (N*C, out_h, out_w), -1 when new."""
        buf = getattr(self, name, None)
        if buf is None or buf.shape != self._index_planes:
            buf = np.full(self._index_planes, -1, dtype=np.int64)
            setattr(self, name, buf)
        return buf

    def _planes(self, blob: Blob, arr: np.ndarray) -> np.ndarray:
        n, c = blob.shape[:2]
        return arr.reshape(n * c, *arr.shape[2:])

    def forward_cpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        g = self.geom
        x = self._planes(bottom[0], np.ascontiguousarray(bottom[0].cpu_data()))
        y = self._planes(top[0], top[0].data)
        if self.method == PP.MAX:
            mask = self._host_index("mask")
            vectors = (pool_tile.suits(g.stride_w, y.shape[2], x.dtype) and y.dtype == x.dtype
                       and y.flags.c_contiguous)
            (pool_tile if vectors else kern).max_forward(x, self.kh, self.kw, g.stride_h, g.stride_w, g.pad_h,
                                                         g.pad_w, y, mask)
            if len(top) > 1:
                top[1].data[...] = mask.reshape(self.out_shape)
        elif self.method == PP.AVE:
            kern.ave_forward(x, self.kh, self.kw, g.stride_h, g.stride_w, g.pad_h, g.pad_w, y)
        elif self.method == PP.STOCHASTIC:
            if self.phase == caffe_pb2.TRAIN:
                rand = common.rng().random(size=y.shape).astype(x.dtype)
                kern.stochastic_forward_train(x, self.kh, self.kw, g.stride_h, g.stride_w, rand, y,
                                              self._host_index("rand_idx"))
            else:
                kern.stochastic_forward_test(x, self.kh, self.kw, g.stride_h, g.stride_w, y)
        else:
            raise WiringError(f"layer '{self.name}' (Pooling): unknown pooling method {self.method}",
                              layer=self.name)

    def backward_cpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        if not propagate_down[0]:
            return
        g = self.geom
        td = self._planes(top[0], np.ascontiguousarray(top[0].cpu_diff()))
        bd = self._planes(bottom[0], bottom[0].diff)
        if self.method == PP.MAX:
            kern.max_backward(td, self._host_index("mask"), bd)
        elif self.method == PP.AVE:
            kern.ave_backward(td, self.kh, self.kw, g.stride_h, g.stride_w, g.pad_h, g.pad_w, bd)
        else:
            kern.stochastic_backward(td, self._host_index("rand_idx"), bd)

    # -- GPU (pooling_layer.cu): one thread per top element forward, per bottom element backward
    def _gpu_geometry(self, bottom: Blob) -> tuple[int, ...]:
        n, c, h, w = bottom.shape
        g = self.geom
        return (n * c, h, w, self.out_shape[2], self.out_shape[3], self.kh, self.kw,
                g.stride_h, g.stride_w, g.pad_h, g.pad_w)

    def _gpu_scratch(self, name: str):
        """A device buffer kept between passes (Caffe's max_idx_ / rand_idx_ Blobs)."""
        from engine.kernels.gpu.common import Scratch

        if not hasattr(self, "_scratch"):
            self._scratch: dict[str, object] = {}
        return self._scratch.setdefault(name, Scratch())

    def _gpu_top_mask(self, top: Sequence[Blob], read: bool):
        """(top mask array, use flag): top[1] when the layer has a mask top (as Caffe), else a stub."""
        if len(top) > 1:
            return (top[1].gpu_data() if read else top[1].mutable_gpu_data()), 1
        return self._gpu_scratch("stub").get(1, self.dtype), 0

    def forward_gpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        from engine.kernels.gpu import pooling as gk
        from engine.kernels.gpu.launch import grid_for
        from engine.kernels.gpu.math import gpu_rng_uniform

        geom = self._gpu_geometry(bottom[0])
        count = top[0].count
        x, y = bottom[0].gpu_data(), top[0].mutable_gpu_data()
        grid = grid_for(count)
        if self.method == PP.MAX:
            mask = self._gpu_scratch("mask").get(count, np.int64)
            top_mask, use_top_mask = self._gpu_top_mask(top, read=False)
            gk.max_forward[grid](x, *geom, y, mask, top_mask, use_top_mask)
        elif self.method == PP.AVE:
            gk.ave_forward[grid](x, *geom, y)
        elif self.method == PP.STOCHASTIC:
            if self.phase == caffe_pb2.TRAIN:
                rand = self._gpu_scratch("rand").get(count, self.dtype)
                gpu_rng_uniform(count, 0.0, 1.0, rand)  # the CPU path's draws, in the same order
                index = self._gpu_scratch("rand_idx").get(count, np.int64)
                gk.stochastic_forward_train[grid](x, rand, *geom, y, index)
            else:
                gk.stochastic_forward_test[grid](x, *geom, y)
        else:
            raise WiringError(f"layer '{self.name}' (Pooling): unknown pooling method {self.method}",
                              layer=self.name)

    def backward_gpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        if not propagate_down[0]:
            return
        from engine.kernels.gpu import pooling as gk
        from engine.kernels.gpu.launch import grid_for

        geom = self._gpu_geometry(bottom[0])
        count = top[0].count
        td, bd = top[0].gpu_diff(), bottom[0].mutable_gpu_diff()
        grid = grid_for(bottom[0].count)
        if self.method == PP.MAX:
            mask = self._gpu_scratch("mask").get(count, np.int64)
            top_mask, use_top_mask = self._gpu_top_mask(top, read=True)
            gk.max_backward[grid](td, mask, top_mask, use_top_mask, *geom, bd)
        elif self.method == PP.AVE:
            gk.ave_backward[grid](td, *geom, bd)
        else:
            index = self._gpu_scratch("rand_idx").get(count, np.int64)
            gk.stochastic_backward[grid](td, index, *geom, bd)


def spp_pooling_param(
    level: int, height: int, width: int, method: int, name: str
) -> caffe_pb2.LayerParameter:
    """Caffe's SPPLayer::GetPoolingParam: 2^level bins per side, padded so the bins cover the input."""
    bins = 2**level
    param = caffe_pb2.LayerParameter(name=f"{name}/pool{level}", type="Pooling")
    pp = param.pooling_param
    kh = math.ceil(height / bins)
    kw = math.ceil(width / bins)
    pp.pad_h = (kh * bins - height + 1) // 2
    pp.pad_w = (kw * bins - width + 1) // 2
    pp.kernel_h, pp.kernel_w = kh, kw
    pp.stride_h, pp.stride_w = kh, kw
    pp.pool = method
    return param


@register_layer("SPP")
class SPPLayer(Layer):
    """Spatial pyramid pooling: pool at 1, 2, 4, ... bins per side, flatten and concatenate."""

    category = "vision"
    description = "Spatial pyramid pooling into a fixed-length vector"
    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        self.height_levels = int(self.layer_param.spp_param.pyramid_height)
        if self.height_levels < 1:
            raise WiringError(
                f"layer '{self.name}' (SPP): pyramid_height must be at least 1", layer=self.name
            )
        self._built_for: tuple[int, ...] | None = None

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        shape = bottom[0].shape
        if len(shape) != 4:
            raise WiringError(f"layer '{self.name}' (SPP): input must have 4 axes, corresponding to "
                              f"(num, channels, height, width); got {shape}", layer=self.name)
        if shape[2] <= 0 or shape[3] <= 0:
            raise WiringError(f"layer '{self.name}' (SPP): input dimensions cannot be zero", layer=self.name)
        if self._built_for != shape:
            self._build(bottom[0])
        else:
            for layer, out in zip(self.pools, self.outs, strict=True):
                layer.reshape(bottom, [out])
        if self.height_levels == 1:
            top[0].reshape(self.outs[0].shape)
        else:
            n = shape[0]
            top[0].reshape((n, sum(o.count // n for o in self.outs)))

    def _build(self, bottom: Blob) -> None:
        n, c, h, w = bottom.shape
        method = self.layer_param.spp_param.pool
        self.pools: list[PoolingLayer] = []
        self.outs: list[Blob] = []
        for level in range(self.height_levels):
            # Caffe builds each pooling layer from a fresh LayerParameter, so its phase is TRAIN.
            param = spp_pooling_param(level, h, w, method, self.name)
            layer = PoolingLayer(param)
            out = Blob(dtype=bottom.dtype)
            try:
                layer.setup([bottom], [out])
            except WiringError as exc:
                raise WiringError(f"layer '{self.name}' (SPP) pyramid level {level}: {exc}",
                                  layer=self.name) from None
            self.pools.append(layer)
            self.outs.append(out)
        self._built_for = bottom.shape

    def forward_cpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        if self.height_levels == 1:
            self.pools[0].forward(bottom, top)
            return
        n = bottom[0].shape[0]
        y = top[0].data
        start = 0
        for layer, out in zip(self.pools, self.outs, strict=True):
            layer.forward(bottom, [out])
            width = out.count // n
            y[:, start : start + width] = out.cpu_data().reshape(n, width)
            start += width

    def backward_cpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        if not propagate_down[0]:
            return
        if self.height_levels == 1:
            self.pools[0].backward(top, propagate_down, bottom)
            return
        n = bottom[0].shape[0]
        td = top[0].cpu_diff()
        scratch = Blob(bottom[0].shape, dtype=bottom[0].dtype)
        scratch.share_data(bottom[0])
        total = np.zeros(bottom[0].shape, dtype=bottom[0].dtype)
        start = 0
        for layer, out in zip(self.pools, self.outs, strict=True):
            width = out.count // n
            out.diff[...] = td[:, start : start + width].reshape(out.shape)
            start += width
            layer.backward([out], [True], [scratch])
            total += scratch.cpu_diff()
        bottom[0].diff[...] = total

    def forward_gpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        """The pyramid levels run their GPU kernels; a column-copy kernel concatenates them."""
        if self.height_levels == 1:
            self.pools[0].forward(bottom, top)
            return
        from engine.kernels.gpu.launch import grid_for
        from engine.kernels.gpu.pooling import copy_columns

        n = bottom[0].shape[0]
        total = top[0].count // n
        y = top[0].mutable_gpu_data()
        start = 0
        for layer, out in zip(self.pools, self.outs, strict=True):
            layer.forward(bottom, [out])
            width = out.count // n
            copy_columns[grid_for(n * width)](out.gpu_data(), n, width, width, total, start, y)
            start += width

    def backward_gpu(
        self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]
    ) -> None:
        """Each level's slice of the top diff goes back through its pooling; the bottom diffs add up."""
        if not propagate_down[0]:
            return
        if self.height_levels == 1:
            self.pools[0].backward(top, propagate_down, bottom)
            return
        from engine.kernels.gpu import blas
        from engine.kernels.gpu.launch import grid_for
        from engine.kernels.gpu.math import gpu_set
        from engine.kernels.gpu.pooling import gather_columns

        n = bottom[0].shape[0]
        count = bottom[0].count
        total = top[0].count // n
        scratch = getattr(self, "_gpu_split", None)
        if scratch is None or scratch.shape != bottom[0].shape or scratch.dtype != bottom[0].dtype:
            scratch = self._gpu_split = Blob(bottom[0].shape, dtype=bottom[0].dtype)
        scratch.share_data(bottom[0])
        td = top[0].gpu_diff()
        bd = bottom[0].mutable_gpu_diff()
        gpu_set(count, 0.0, bd)
        start = 0
        for layer, out in zip(self.pools, self.outs, strict=True):
            width = out.count // n
            gather_columns[grid_for(n * width)](td, n, width, total, start, out.mutable_gpu_diff())
            start += width
            layer.backward([out], [True], [scratch])
            blas.axpy(count, 1.0, scratch.gpu_diff(), bd)
