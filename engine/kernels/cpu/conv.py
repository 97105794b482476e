"""Convolution on the CPU, image by image across numba's threads: im2col and GEMM fused per image.

Each thread takes every n_threads-th image of the batch, writes its column matrix into a buffer of
its own and runs the image's GEMMs single-threaded (engine.kernels.cpu.blas). Convolution's
backward goes further and works in blocks of image channels whose columns fit in the core's cache
(BLOCK_BYTES); the forward keeps one GEMM per image and group (blocking it would split the GEMM's
inner sum, and measured no gain). Compared with one column matrix for the whole batch and a
multi-threaded GEMM, this moves a few hundred KB per image instead of the whole batch's columns
(80 MB for CIFAR10-quick's conv2) through memory, and the GEMMs of the two threads run without
synchronising.

Values are Caffe's per image: the same im2col/col2im (col2im adds in Caffe's order) and one GEMM
per image and group. The weight gradient is summed per thread and the threads' sums are then added
in thread order, so it is deterministic for a given thread count.

The kernels are written once for the two roles of the image side. `gemm_from_columns` (im2col,
then GEMMs) is Convolution's forward and Deconvolution's backward (bottom and weight gradient
from one im2col of the top gradient); `columns_from_gemm` (GEMM, then col2im) is Deconvolution's
forward and Convolution's backward (the weight gradient from im2col of the bottom in the same
pass over the images).

Geometry modes (`mode`): 0 kernel 1x1 with stride 1 and no pad (the image is its own column matrix),
1 two spatial axes (or one) with stride 1 and dilation 1, 2 two axes in general, 3 three axes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine.kernels.cpu import direct, direct_weights
from engine.kernels.cpu.blas import gemm, gemm_strided, restore, single_threaded
from engine.kernels.cpu.im2col import (
    _col2im2_padded,
    _col2im2_unit,
    _col2im3_batched,
    _im2col2_padded,
    _im2col2_unit,
    _im2col3_batched,
)
from engine.kernels.cpu.threads import thread_count

MODE_1X1, MODE_2D_UNIT, MODE_2D, MODE_3D = 0, 1, 2, 3

#: column rows of one block of image channels in the backward pass: most of a core's L2 (512 KB here)
BLOCK_BYTES = 384 * 1024


@njit(cache=True)
def _to_columns(img, mode, g, col, pad):
    """col (rows, 1, o0, o1, o2) = im2col of one image img (C, D, H, W)."""
    c, d, h, w = img.shape
    if mode == MODE_3D:
        _im2col3_batched(img.reshape((1, c, d, h, w)), g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8],
                         g[9], g[10], g[11], col)
        return
    img4 = img.reshape((1, c, h, w))
    col4 = col.reshape((col.shape[0], 1, col.shape[3], col.shape[4]))
    if mode == MODE_2D_UNIT:
        _im2col2_unit(img4, g[1], g[2], g[4], g[5], col4, pad)
    else:
        _im2col2_padded(img4, g[1], g[2], g[4], g[5], g[7], g[8], g[10], g[11], col4, pad)


@njit(cache=True)
def _from_columns(col, mode, g, img, pad):
    """img (C, D, H, W) = col2im of col (rows, 1, o0, o1, o2), overwriting img."""
    c, d, h, w = img.shape
    if mode == MODE_3D:
        _col2im3_batched(col, g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11],
                         img.reshape((1, c, d, h, w)))
        return
    col4 = col.reshape((col.shape[0], 1, col.shape[3], col.shape[4]))
    img4 = img.reshape((1, c, h, w))
    if mode == MODE_2D_UNIT:
        _col2im2_unit(col4, g[1], g[2], g[4], g[5], img4, pad)
    else:
        _col2im2_padded(col4, g[1], g[2], g[4], g[5], g[7], g[8], g[10], g[11], img4, pad)


@njit(cache=True)
def _image_columns(images, b, mode, g, col, pad):
    """The column matrix of image b as a flat buffer: the image itself for 1x1 kernels."""
    if mode == MODE_1X1:
        return images[b].reshape(-1)
    _to_columns(images[b], mode, g, col, pad)
    return col.reshape(-1)


@njit(cache=True)
def _add_rows(arr, bias):
    """arr (rows, ...) += bias[row]: Caffe adds the bias after the GEMM."""
    flat = arr.reshape((arr.shape[0], -1))
    for c in range(flat.shape[0]):
        bc = bias[c]
        row = flat[c]
        for i in range(row.shape[0]):
            row[i] += bc


@njit(cache=True)
def _accumulate_weights(values, src, group, m, kd, p, acc):
    """acc (M, K/group per group) += values (M, P) @ src (K, P)^T, per group."""
    for gi in range(group):
        gemm(False, True, m, kd, p, values, gi * m * p, src, gi * kd * p, 1.0, acc, gi * m * kd)


# One thread's share of the batch: every n_threads-th image from t. The parallel kernels below run
# the shares in a prange (numba's thread pool, which the pooling and ReLU kernels share: a second
# pool of Python threads measured ~8% slower per CIFAR10-quick step next to PyTorch's pool).


@njit(cache=True)
def _gemm_from_columns_share(t, n_threads, images, w, group, bias, use_bias, mode, g, col_shape, pad_shape,
                             out, want_out, values, acc, want_wd):
    """Images b of share t, with col = im2col(images[b]):
    out[b] (M, P) = W (M, K/group per group) @ col (+ bias per row), if want_out;
    acc += values[b] (M', P') @ col^T, if want_wd (Deconvolution's weight gradient)."""
    n, rows = images.shape[0], col_shape[0]
    m_all, p = out.shape[1], out.shape[2]
    m, kd = m_all // group, rows // group
    wm, wp = values.shape[1] // group, values.shape[2]
    previous = single_threaded()
    col = np.empty(col_shape, images.dtype)
    pad = np.empty(pad_shape, images.dtype)
    for b in range(t, n, n_threads):
        src = _image_columns(images, b, mode, g, col, pad)
        if want_out:
            dst = out[b]
            for gi in range(group):
                gemm(False, False, m, p, kd, w, gi * m * kd, src, gi * kd * p, 0.0, dst, gi * m * p)
            if use_bias:
                _add_rows(dst, bias)
        if want_wd:
            _accumulate_weights(values[b], src, group, wm, kd, wp, acc)
    restore(previous)


@njit(cache=True)
def _channels(arr, c0, c1):
    """arr[c0:c1] of a C-contiguous array as a C-contiguous view (numba types a plain slice as 'A')."""
    inner = arr.size // arr.shape[0]
    return arr.reshape(-1)[c0 * inner : c1 * inner].reshape((c1 - c0, *arr.shape[1:]))


@njit(cache=True)
def _columns_from_gemm_share(t, n_threads, values, w, group, bias, use_bias, mode, g, col_shape, pad_shape,
                             images, want_images, sources, block_bytes, acc, want_wd):
    """Images b of share t:
    images[b] = col2im(W^T @ values[b]) (+ bias per channel), overwritten, if want_images;
    acc += values[b] @ im2col(sources[b])^T, if want_wd (Convolution's weight gradient).

    With columns, each group runs in blocks of image channels whose column rows fit in
    block_bytes, so im2col, the two GEMMs and col2im of a block stay in the core's cache. A channel's
    col2im reads only that channel's rows, so the additions per pixel keep Caffe's order, and the
    weight gradient's blocks are column blocks of one GEMM's output (the same dot products)."""
    n, m_all, p = values.shape
    rows = col_shape[0]
    m, kd = m_all // group, rows // group
    previous = single_threaded()
    col = np.empty(col_shape, values.dtype)
    pad = np.empty(pad_shape, values.dtype)
    per_group = images.shape[1] // group
    ksize = kd // per_group
    most = max(1, min(per_group, block_bytes // max(ksize * p * col.itemsize, 1)))
    block = -(-per_group // -(-per_group // most))  # as few blocks as fit, of even size
    for b in range(t, n, n_threads):
        if mode == MODE_1X1:
            if want_wd:
                _accumulate_weights(values[b], sources[b].reshape(-1), group, m, kd, p, acc)
            if want_images:
                dst = images[b].reshape(-1)
                for gi in range(group):
                    gemm(True, False, kd, p, m, w, gi * m * kd, values[b], gi * m * p, 0.0, dst, gi * kd * p)
        else:
            for gi in range(group):
                for c0 in range(0, per_group, block):
                    c1 = min(per_group, c0 + block)
                    first, n_rows = c0 * ksize, (c1 - c0) * ksize
                    cols = _channels(col, 0, n_rows)
                    pads = pad if mode == MODE_3D else _channels(pad, 0, c1 - c0)  # 3-D needs none
                    if want_wd:
                        _to_columns(_channels(sources[b], gi * per_group + c0, gi * per_group + c1), mode, g,
                                    cols, pads)
                        gemm_strided(False, True, m, n_rows, p, values[b], gi * m * p, p, cols, 0, p, 1.0,
                                     acc, gi * m * kd + first, kd)
                    if want_images:
                        gemm_strided(True, False, n_rows, p, m, w, gi * m * kd + first, kd, values[b],
                                     gi * m * p, p, 0.0, cols, 0, p)
                        _from_columns(cols, mode, g, _channels(images[b], gi * per_group + c0,
                                                               gi * per_group + c1), pads)
        if want_images and use_bias:
            _add_rows(images[b], bias)
    restore(previous)


@njit(cache=True, parallel=True)
def gemm_from_columns(n_threads, images, w, group, bias, use_bias, mode, g, col_shape, pad_shape, out,
                      want_out, values, partial, want_wd):
    """_gemm_from_columns_share for every share at once; partial[t] is share t's weight gradient."""
    for t in prange(n_threads):
        _gemm_from_columns_share(t, n_threads, images, w, group, bias, use_bias, mode, g, col_shape,
                                 pad_shape, out, want_out, values, partial[t], want_wd)


@njit(cache=True, parallel=True)
def columns_from_gemm(n_threads, values, w, group, bias, use_bias, mode, g, col_shape, pad_shape, images,
                      want_images, sources, block_bytes, partial, want_wd):
    """_columns_from_gemm_share for every share at once; partial[t] is share t's weight gradient."""
    for t in prange(n_threads):
        _columns_from_gemm_share(t, n_threads, values, w, group, bias, use_bias, mode, g, col_shape,
                                 pad_shape, images, want_images, sources, block_bytes, partial[t], want_wd)


class ColumnPlan:
    """How one image maps to its column matrix: the kernel mode, the 12 geometry values (three
    axes, leading axes padded with kernel 1) and the per-thread buffer shapes."""

    def __init__(self, channels: int, img_spatial, col_spatial, kernel, pad, stride, dilation,
                 col_rows: int, is_1x1: bool) -> None:
        nd = len(img_spatial)
        if nd > 3:
            raise ValueError("the fused convolution kernels handle up to 3 spatial axes")
        lead = 3 - nd
        k, p = [1] * lead + list(kernel), [0] * lead + list(pad)
        s, d = [1] * lead + list(stride), [1] * lead + list(dilation)
        self.geometry = tuple(int(v) for v in (*k, *p, *s, *d))
        self.image_shape = (int(channels), *([1] * lead), *(int(v) for v in img_spatial))
        out = [1] * lead + [int(v) for v in col_spatial]
        self.col_shape = (int(col_rows), 1, *out)
        if is_1x1:
            self.mode = MODE_1X1
        elif nd == 3:
            self.mode = MODE_3D
        elif s[1:] == [1, 1] and d[1:] == [1, 1]:
            self.mode = MODE_2D_UNIT
        else:
            self.mode = MODE_2D
        if self.mode in (MODE_2D_UNIT, MODE_2D):
            # rows up to the last one any window reads (at least the image plus its leading pad)
            size = self.image_shape[2:]
            rows = [max(size[a] + p[a + 1], (out[a + 1] - 1) * s[a + 1] + (k[a + 1] - 1) * d[a + 1] + 1)
                    for a in range(2)]
            self.pad_shape = (int(channels), *rows)
        else:
            self.pad_shape = (1, 1, 1)

    def _args(self):
        return self.mode, self.geometry, self.col_shape, self.pad_shape

    # -- the direct kernels (engine.kernels.cpu.direct) where they apply: 2-D or 1-D, not 1x1
    def _planar(self, arr: np.ndarray, spatial) -> np.ndarray:
        """arr (n, C, ...) as (n, C, H, W) with the given (H, W)."""
        return arr.reshape(arr.shape[0], arr.shape[1], *spatial)

    def _direct_suits(self, in_channels: int, outputs: int, group: int, out_hw, stride_w: int, dtype) -> bool:
        g = self.geometry
        planar = self.mode in (MODE_2D_UNIT, MODE_2D)
        taps = in_channels // group * g[1] * g[2]
        positions = self.col_shape[3] * self.col_shape[4]  # each column row's sums in the GEMM path
        return planar and direct.suits(taps, outputs, *out_hw, positions, dtype, stride_w)

    def _direct_forward(self, images: np.ndarray, w: np.ndarray, group: int, bias, out: np.ndarray) -> bool:
        """out = conv(images) by the direct kernels, if they suit this geometry."""
        g, out_hw = self.geometry, self.col_shape[3:]
        outputs = w.shape[0] // group
        if not self._direct_suits(self.image_shape[0], outputs, group, out_hw, g[8], out.dtype):
            return False
        src = self._planar(images, self.image_shape[2:])
        direct.correlate(src, w, group, bias, self._planar(out, out_hw), g[1:3], g[4:6], g[7:9], g[10:12])
        return True

    def _direct_backward(self, values: np.ndarray, w: np.ndarray, group: int, bias,
                         images: np.ndarray) -> bool:
        """images = conv^T(values) by the direct kernels, if they suit this geometry (unit strides)."""
        g, img_hw = self.geometry, self.image_shape[2:]
        if g[7:9] != (1, 1) or not self._direct_suits(values.shape[1], w.shape[1], group, img_hw, 1,
                                                      images.dtype):
            return False
        direct.correlate_transposed(self._planar(values, self.col_shape[3:]), w, group, bias,
                                    self._planar(images, img_hw), g[1:3], g[4:6], g[10:12])
        return True

    def _direct_weights(self, values: np.ndarray, images: np.ndarray, group: int, wd: np.ndarray) -> bool:
        """wd += values[b] @ im2col(images[b])^T for every image b by the direct kernel, if it suits
        this geometry: 2-D or 1-D, any strides."""
        g, out_hw = self.geometry, self.col_shape[3:]
        taps = self.image_shape[0] // group * g[1] * g[2]
        if self.mode not in (MODE_2D_UNIT, MODE_2D) or not direct_weights.suits(
                values.shape[1] // group, taps, out_hw[0] * out_hw[1], wd.dtype):
            return False
        src = self._planar(images, self.image_shape[2:])
        direct_weights.accumulate(values, src, group, wd, out_hw, g[1:3], g[4:6], g[7:9], g[10:12])
        return True

    def images(self, arr: np.ndarray) -> np.ndarray:
        """arr (n, C, *spatial) as the (n, C, D, H, W) view the kernels take."""
        return np.ascontiguousarray(arr).reshape((arr.shape[0], *self.image_shape))

    def forward(self, images: np.ndarray, w: np.ndarray, group: int, bias: np.ndarray | None,
                out: np.ndarray | None, values: np.ndarray | None = None,
                wd: np.ndarray | None = None) -> None:
        """With col = im2col(images[b]) for every image b: out[b] (n, M, P) = W @ col (+ bias), and
        wd += values[b] @ col^T (one im2col serves both); either may be None."""
        if images.shape[0] == 0:
            return  # an empty batch: nothing to write, nothing to add
        imgs = self.images(images)
        out = _or_none(out)
        if wd is not None and values is not None and self._direct_weights(values, imgs, group, wd):
            wd = None
        if out is not None and self._direct_forward(imgs, w, group, bias, out):
            out = None
        if out is None and wd is None:
            return
        _split_batch(gemm_from_columns, wd, imgs.dtype, imgs, _flat_weights(w), group, _bias(bias, imgs),
                     bias is not None, *self._args(), _or_empty(out, imgs.dtype), out is not None,
                     _or_empty(values, imgs.dtype))

    def backward(self, values: np.ndarray, w: np.ndarray, group: int, bias: np.ndarray | None,
                 images: np.ndarray | None, sources: np.ndarray | None = None,
                 wd: np.ndarray | None = None) -> None:
        """For every image b: images[b] = col2im(W^T @ values[b]) (+ bias), overwritten, and
        wd += values[b] @ im2col(sources[b])^T; either may be None."""
        if values.shape[0] == 0:
            return  # an empty batch: nothing to write, nothing to add
        values = np.ascontiguousarray(values)
        if images is not None and not images.flags.c_contiguous:
            raise ValueError("col2im needs a C-contiguous image buffer")
        dst = self.images(images) if images is not None else np.empty((1, *self.image_shape), values.dtype)
        src = self.images(sources) if sources is not None else dst
        if wd is not None and sources is not None and self._direct_weights(values, src, group, wd):
            wd = None
        if images is not None and self._direct_backward(values, w, group, bias, dst):
            images = None
        if images is None and wd is None:
            return
        _split_batch(columns_from_gemm, wd, values.dtype, values, _flat_weights(w), group,
                     _bias(bias, values), bias is not None, *self._args(), dst, images is not None, src,
                     BLOCK_BYTES)


def _or_none(arr: np.ndarray | None) -> np.ndarray | None:
    """arr as (n, M, P), or None."""
    if arr is None:
        return None
    if not arr.flags.c_contiguous:
        raise ValueError("the GEMM output must be C-contiguous")
    return arr.reshape(arr.shape[0], arr.shape[1], -1)


def _or_empty(arr: np.ndarray | None, dtype) -> np.ndarray:
    """arr as (n, M, P), or a placeholder the kernels do not touch."""
    return np.empty((1, 1, 1), dtype) if arr is None else _or_none(arr)


def _split_batch(kernel, wd: np.ndarray | None, dtype, *args) -> None:
    """kernel(n_threads, *args, partial, want_wd) over the batch split in numba's thread count of
    shares; then the shares' weight-gradient sums are added to wd in share order (deterministic for
    a thread count)."""
    n_threads = thread_count()
    if wd is not None and not wd.flags.c_contiguous:
        raise ValueError("the weight gradient must be C-contiguous")
    partial = np.zeros((n_threads, wd.size if wd is not None else 1), dtype)
    kernel(n_threads, *args, partial, wd is not None)
    if wd is not None:
        flat = wd.reshape(-1)
        for t in range(n_threads):
            flat += partial[t]


def _flat_weights(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w).reshape(-1)


def _bias(bias: np.ndarray | None, like: np.ndarray) -> np.ndarray:
    return np.zeros(1, like.dtype) if bias is None else np.ascontiguousarray(bias, dtype=like.dtype)


