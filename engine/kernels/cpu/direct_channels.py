"""The direct convolution vectorised along output channels: for output rows too narrow to fill
a vector (CIFAR10-quick conv3's rows of 8 against 16 lanes; 7x7 and 4x4 maps of deeper nets), and
for column strides above 1 (AlexNet's conv1, ResNet's 7x7 stride 2), whose outputs are not
contiguous along a row of the image.

The rows of engine.kernels.cpu.direct would leave lanes empty there. Here a channel tile
(engine.kernels.cpu.direct_tile.channel_tile, output positions as its columns, taps as its steps)
sums TILE_COLUMNS output positions x up to three vectors of output channels in registers, reading
the weights transposed (taps x channels) and one value of the zero-bordered image per position.
The sums of an image land positions x channels and are copied to the output transposed, the bias
added after, as Caffe adds it. Each output is one FMA chain over the taps in Caffe's order.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine.kernels.cpu.border import fill_bordered
from engine.kernels.cpu.direct_tile import TILE_COLUMNS, channel_tile, padded, vector_groups
from engine.kernels.cpu.threads import thread_count


@njit(cache=True)
def _share(t, n_threads, src, w_t, taps, pos, group, top, left, hp, wp, bias, use_bias, dst, lanes, max_mv):
    """dst[b] for the images b of share t."""
    n, c_all = src.shape[0], src.shape[1]
    m_all = dst.shape[1]
    cg, mg = c_all // group, m_all // group
    k, mp, p_pad = taps.shape[0], w_t.shape[2], pos.shape[0]
    flat_dst = dst.reshape((n, m_all, -1))
    positions = flat_dst.shape[2]
    buf = np.empty(cg * hp * wp, src.dtype)
    out = np.empty((p_pad, mp), src.dtype)
    flat_w, flat_out = w_t.reshape(-1), out.reshape(-1)
    sizes = vector_groups(mp // lanes, max_mv)
    for b in range(t, n, n_threads):
        for gi in range(group):
            fill_bordered(src, b, gi * cg, cg, top, left, buf, hp, wp)
            out[:] = 0.0
            c0 = 0
            for mv in sizes:
                for p0 in range(0, p_pad, TILE_COLUMNS):
                    channel_tile(lanes, mv, k, taps, flat_w, gi * k * mp + c0 * lanes, mp, buf, pos, p0,
                                 flat_out, p0 * mp + c0 * lanes, mp)
                c0 += mv
            for i in range(mg):
                row = flat_dst[b, gi * mg + i]
                if use_bias:
                    add = bias[gi * mg + i]
                    for q in range(positions):
                        row[q] = out[q, i] + add
                else:
                    for q in range(positions):
                        row[q] = out[q, i]


@njit(cache=True, parallel=True)
def _batch(n_threads, src, w_t, taps, pos, group, top, left, hp, wp, bias, use_bias, dst, lanes, max_mv):
    for t in prange(n_threads):
        _share(t, n_threads, src, w_t, taps, pos, group, top, left, hp, wp, bias, use_bias, dst, lanes,
               max_mv)


def correlate(src: np.ndarray, w_groups: np.ndarray, group: int, bias: np.ndarray | None, dst: np.ndarray,
              taps: np.ndarray, top: int, left: int, stride, hp: int, wp: int, lanes: int,
              max_vectors: int) -> None:
    """dst (n, M, Ho, Wo) = correlation of src (n, C, H, W) bordered to (hp, wp) from (top, left) with
    the (group, M/group, K) weights at the K tap offsets `taps`, strides (row, column) (+ bias)."""
    ho, wo = dst.shape[2], dst.shape[3]
    group_, outputs, k = w_groups.shape
    w_t = np.zeros((group_, k, padded(outputs, lanes)), w_groups.dtype)
    w_t[:, :, :outputs] = w_groups.transpose(0, 2, 1)
    oy, ox = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
    pos = np.zeros(padded(ho * wo, TILE_COLUMNS), np.int64)  # padded positions read the first value
    pos[: ho * wo] = (oy * stride[0] * wp + ox * stride[1]).reshape(-1)
    bias_arr = np.zeros(dst.shape[1], src.dtype) if bias is None else np.ascontiguousarray(bias, src.dtype)
    _batch(thread_count(), src, w_t, taps, pos, group, top, left, hp, wp, bias_arr, bias is not None, dst,
           lanes, max_vectors)
