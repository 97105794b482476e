"""Convolution's weight gradient on the CPU without a column matrix, for 2-D (and 1-D) geometries
with any strides and dilations.

Why: im2col + GEMM writes each image's column matrix and the BLAS copies it again into packed
panels; for CIFAR10-quick that made the weight gradient the slowest part of the step. Here, as a
GEMM microkernel would, a tile keeps the sums of TILE_COLUMNS taps x up to three vectors of output
channels in registers and runs over the output positions of one image: each step reads one row of
the top gradient transposed (positions x channels, copied once per image) and one value of the
zero-bordered bottom per tap (engine.kernels.cpu.direct_tile.channel_tile, taps as its columns).

It serves Convolution's weight gradient (values: the top gradient, source: the bottom) and
Deconvolution's (values: the bottom, source: the top gradient), as the GEMM kernels in
engine.kernels.cpu.conv do. Each thread takes every n-th image and sums into its own
accumulator; the threads' sums are then added to the gradient in thread order (deterministic for
a thread count).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine.kernels.cpu import direct_tile
from engine.kernels.cpu.border import fill_bordered
from engine.kernels.cpu.direct import MAX_EXTRA_WORK
from engine.kernels.cpu.direct_tile import TILE_COLUMNS, channel_tile, padded, vector_groups
from engine.kernels.cpu.threads import thread_count

#: below this many output positions per image a tile's fixed costs (adding its sums out) dominate
MIN_POSITIONS = 16


def suits(outputs: int, taps: int, positions: int, dtype) -> bool:
    """Whether the direct weight gradient pays for `outputs` channels per group x `taps` taps, each a
    sum over `positions` per image: not much more work than the GEMM's (the tiles compute whole
    vectors of channels and TILE_COLUMNS taps at a time), and enough positions."""
    dtype = np.dtype(dtype)
    if not direct_tile.available() or dtype not in (np.float32, np.float64) or positions < MIN_POSITIONS:
        return False
    lanes = direct_tile.lanes_for(outputs, dtype)
    return padded(outputs, lanes) * padded(taps, TILE_COLUMNS) <= MAX_EXTRA_WORK * outputs * taps


@njit(cache=True)
def _transpose_into(values, b, m0, mg, at):
    """at[:, :mg] (positions, channels) = values[b, m0:m0 + mg, :]^T; the padding columns stay zero."""
    for i in range(mg):
        row = values[b, m0 + i]
        for q in range(row.shape[0]):
            at[q, i] = row[q]


@njit(cache=True)
def _share(t, n_threads, values, src, group, top, left, hp, wp, taps, pos, lanes, max_mv, acc):
    """acc (group, padded taps, padded channels) += the weight gradient of the images of share t."""
    n, m_all, p = values.shape
    cg, mg = src.shape[1] // group, m_all // group
    k_pad, mp = acc.shape[1], acc.shape[2]
    buf = np.empty(cg * hp * wp, src.dtype)
    at = np.zeros((p, mp), src.dtype)
    flat_acc = acc.reshape(-1)
    sizes = vector_groups(mp // lanes, max_mv)
    for b in range(t, n, n_threads):
        for gi in range(group):
            fill_bordered(src, b, gi * cg, cg, top, left, buf, hp, wp)
            _transpose_into(values, b, gi * mg, mg, at)
            c0 = 0
            for mv in sizes:
                for t0 in range(0, k_pad, TILE_COLUMNS):
                    channel_tile(lanes, mv, p, pos, at, c0 * lanes, mp, buf, taps, t0, flat_acc,
                                (gi * k_pad + t0) * mp + c0 * lanes, mp)
                c0 += mv


@njit(cache=True, parallel=True)
def _batch(n_threads, values, src, group, top, left, hp, wp, taps, pos, lanes, max_mv, acc):
    for t in prange(n_threads):
        _share(t, n_threads, values, src, group, top, left, hp, wp, taps, pos, lanes, max_mv, acc[t])


def accumulate(values: np.ndarray, src: np.ndarray, group: int, wd: np.ndarray, out_hw, kernel, pad,
               stride, dilation) -> None:
    """wd (M, C/group, kh, kw) += sum over images b of values[b] (M, Ho*Wo) @ im2col(src[b])^T per
    group, src (n, C, H, W) padded by `pad` and read with the given kernel, stride and dilation."""
    n, m_all = values.shape[0], values.shape[1]
    (kh, kw), (ho, wo), (sh, sw), (dh, dw) = kernel, out_hw, stride, dilation
    if n == 0 or ho * wo == 0:
        return
    if not wd.flags.c_contiguous:
        raise ValueError("the weight gradient must be C-contiguous")
    cg, mg = src.shape[1] // group, m_all // group
    hp, wp = (ho - 1) * sh + (kh - 1) * dh + 1, (wo - 1) * sw + (kw - 1) * dw + 1
    c, ky, kx = np.meshgrid(np.arange(cg), np.arange(kh), np.arange(kw), indexing="ij")
    k = cg * kh * kw
    taps = np.zeros(padded(k, TILE_COLUMNS), np.int64)  # padded taps read the first value, unused
    taps[:k] = (c * hp * wp + ky * dh * wp + kx * dw).reshape(-1)
    oy, ox = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
    pos = (oy * sh * wp + ox * sw).reshape(-1).astype(np.int64)
    lanes = direct_tile.lanes_for(mg, values.dtype)
    n_threads = thread_count()
    acc = np.zeros((n_threads, group, taps.size, padded(mg, lanes)), values.dtype)
    _batch(n_threads, np.ascontiguousarray(values).reshape(n, m_all, -1), np.ascontiguousarray(src), group,
           pad[0], pad[1], hp, wp, taps, pos, lanes, direct_tile.channel_vectors_per_tile(), acc)
    grad = wd.reshape(group, mg, k)
    for t in range(n_threads):
        grad += acc[t, :, :k, :mg].transpose(0, 2, 1)
