"""Convolution on the CPU, image by image across numba's threads: im2col and GEMM fused per image.

Each thread takes every n_threads-th image of the batch, writes its column matrix into a buffer of
its own (small enough to stay in that core's cache) and runs the image's GEMMs single-threaded
(engine.kernels.cpu.blas). Compared with one column matrix for the whole batch and a
multi-threaded GEMM, this moves a few hundred KB per image instead of the whole batch's columns
(80 MB for CIFAR10-quick's conv2) through memory, and the GEMMs of the two threads run without
synchronising.

Values are Caffe's per image: the same im2col/col2im (col2im adds in Caffe's order) and one GEMM
per image and group. The weight gradient is summed per thread and the threads' sums are then added
in thread order, so it is deterministic for a given thread count.

The kernels are written once for the two roles of the image side: Convolution's forward and
Deconvolution's bottom gradient are `gemm_from_columns`; Convolution's bottom gradient and
Deconvolution's forward are `columns_from_gemm`; both weight gradients are `weight_gradient`.

Geometry modes (`mode`): 0 kernel 1x1 with stride 1 and no pad (the image is its own column matrix),
1 two spatial axes (or one) with stride 1 and dilation 1, 2 two axes in general, 3 three axes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine.kernels.cpu.blas import gemm, restore, single_threaded
from engine.kernels.cpu.im2col import (
    _col2im2_padded,
    _col2im2_unit,
    _col2im3_batched,
    _im2col2_padded,
    _im2col2_unit,
    _im2col3_batched,
)

MODE_1X1, MODE_2D_UNIT, MODE_2D, MODE_3D = 0, 1, 2, 3


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


@njit(cache=True, parallel=True)
def gemm_from_columns(images, w, group, bias, use_bias, mode, g, col_shape, pad_shape, out, n_threads):
    """out[b] (M, P) = W (M, K/group per group) @ im2col(images[b]) (+ bias per row of out[b])."""
    n, rows = out.shape[0], col_shape[0]
    m_all, p = out.shape[1], out.shape[2]
    m, kd = m_all // group, rows // group
    for t in prange(n_threads):
        previous = single_threaded()
        col = np.empty(col_shape, images.dtype)
        pad = np.empty(pad_shape, images.dtype)
        for b in range(t, n, n_threads):
            src = _image_columns(images, b, mode, g, col, pad)
            dst = out[b]
            for gi in range(group):
                gemm(False, False, m, p, kd, w, gi * m * kd, src, gi * kd * p, 0.0, dst, gi * m * p)
            if use_bias:
                for c in range(m_all):
                    bc = bias[c]
                    row = dst[c]
                    for i in range(p):
                        row[i] += bc
        restore(previous)


@njit(cache=True, parallel=True)
def columns_from_gemm(values, w, group, bias, use_bias, mode, g, col_shape, pad_shape, images, n_threads):
    """images[b] = col2im(W^T @ values[b]) (+ bias per channel), overwriting images."""
    n, m_all, p = values.shape
    rows = col_shape[0]
    m, kd = m_all // group, rows // group
    for t in prange(n_threads):
        previous = single_threaded()
        col = np.empty(col_shape, values.dtype)
        pad = np.empty(pad_shape, values.dtype)
        flat = col.reshape(-1)
        for b in range(t, n, n_threads):
            dst = images[b].reshape(-1) if mode == MODE_1X1 else flat
            for gi in range(group):
                gemm(True, False, kd, p, m, w, gi * m * kd, values[b], gi * m * p, 0.0, dst, gi * kd * p)
            if mode != MODE_1X1:
                _from_columns(col, mode, g, images[b], pad)
            if use_bias:
                img = images[b].reshape((images.shape[1], -1))
                for c in range(img.shape[0]):
                    bc = bias[c]
                    for i in range(img.shape[1]):
                        img[c, i] += bc
        restore(previous)


@njit(cache=True, parallel=True)
def weight_gradient(images, values, group, mode, g, col_shape, pad_shape, wd, n_threads):
    """wd (M, K/group per group) += sum over b of values[b] (M, P) @ im2col(images[b])^T."""
    n, m_all, p = values.shape
    rows = col_shape[0]
    m, kd = m_all // group, rows // group
    partial = np.zeros((n_threads, m_all * kd), wd.dtype)
    for t in prange(n_threads):
        previous = single_threaded()
        col = np.empty(col_shape, images.dtype)
        pad = np.empty(pad_shape, images.dtype)
        acc = partial[t]
        for b in range(t, n, n_threads):
            src = _image_columns(images, b, mode, g, col, pad)
            for gi in range(group):
                gemm(False, True, m, kd, p, values[b], gi * m * p, src, gi * kd * p, 1.0, acc, gi * m * kd)
        restore(previous)
    flat = wd.reshape(-1)
    for t in range(n_threads):
        for i in range(flat.shape[0]):
            flat[i] += partial[t, i]


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

    def images(self, arr: np.ndarray) -> np.ndarray:
        """arr (n, C, *spatial) as the (n, C, D, H, W) view the kernels take."""
        return np.ascontiguousarray(arr).reshape((arr.shape[0], *self.image_shape))

    def forward(self, images: np.ndarray, w: np.ndarray, group: int, bias: np.ndarray | None,
                out: np.ndarray) -> None:
        """out (n, M, P) = W @ im2col(images[b]) (+ bias) for every image b."""
        gemm_from_columns(self.images(images), _flat_weights(w), group, _bias(bias, out), bias is not None,
                          *self._args(), out, _threads())

    def backward(self, values: np.ndarray, w: np.ndarray, group: int, bias: np.ndarray | None,
                 images: np.ndarray) -> None:
        """images[b] = col2im(W^T @ values[b]) (+ bias) for every image b (overwritten)."""
        if not images.flags.c_contiguous:
            raise ValueError("col2im needs a C-contiguous image buffer")
        columns_from_gemm(np.ascontiguousarray(values), _flat_weights(w), group, _bias(bias, values),
                          bias is not None, *self._args(), self.images(images), _threads())

    def weight_gradient(self, images: np.ndarray, values: np.ndarray, group: int, wd: np.ndarray) -> None:
        """wd += sum over images b of values[b] @ im2col(images[b])^T."""
        if not wd.flags.c_contiguous:
            raise ValueError("the weight gradient must be C-contiguous")
        weight_gradient(self.images(images), np.ascontiguousarray(values), group, *self._args(), wd,
                        _threads())


def _flat_weights(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w).reshape(-1)


def _bias(bias: np.ndarray | None, like: np.ndarray) -> np.ndarray:
    return np.zeros(1, like.dtype) if bias is None else np.ascontiguousarray(bias, dtype=like.dtype)


def _threads() -> int:
    import numba

    return int(numba.get_num_threads())
