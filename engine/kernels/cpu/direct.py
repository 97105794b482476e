"""Direct convolution on the CPU for 2-D (and 1-D) geometries: no column matrix.

Why: im2col + GEMM writes each image's column matrix, and the BLAS then copies it again into
its packed panels; for CIFAR10-quick's 5x5 convolutions those copies cost about a third of the
GEMM time. Here each output tile is summed straight from a zero-bordered copy of the image
(engine.kernels.cpu.direct_tile), as oneDNN's direct convolutions do.

Two operations, for Convolution and for Deconvolution alike:
- `correlate`: dst = conv(src, W) (+ bias): Convolution's forward, Deconvolution's bottom gradient;
- `correlate_transposed`: dst = conv^T(src, W) (+ bias), unit strides only: Convolution's bottom
  gradient, Deconvolution's forward. It is the same correlation over the zero-bordered source with
  the kernel flipped and its channel axes swapped.
Each output is one multiply-add chain over (input channel, kernel row, kernel column), Caffe's
order of the GEMM's inner sum. The batch is split over numba's threads as in
engine.kernels.cpu.conv (every n-th image per thread). Rows too narrow to fill a vector go to the
channel layout of engine.kernels.cpu.direct_channels instead; `suits` and `_run` weigh the lanes
each layout wastes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine.kernels.cpu import direct_channels, direct_tile
from engine.kernels.cpu.border import fill_bordered
from engine.kernels.cpu.direct_tile import (
    MAX_VECTORS,
    SCRATCH_BYTES,
    TILE_CHANNELS,
    TILE_COLUMNS,
    padded,
    tile,
)
from engine.kernels.cpu.threads import thread_count

#: below this many taps per output (channels x kernel size) im2col + GEMM is faster: a tile's
#: fixed costs (its call, copying its sums out) are then a large part of its work
MIN_TAPS = 64
#: how much more multiply-adds than im2col + GEMM the direct kernels may do and still be faster
MAX_EXTRA_WORK = 4 / 3
#: rows of the bordered source one pass over the output channels reads (fits a core's L2 here)
BLOCK_BYTES = 256 * 1024


def _full_lanes(dtype) -> int:
    """Lanes of the widest vector the tiles use here."""
    return (64 if direct_tile.WIDE else 32) // np.dtype(dtype).itemsize


def _row_work(outputs: int, height: int, width: int, dtype) -> float:
    """Multiply-adds per tap of the row tiles for `outputs` channels of height x width, counted in
    lanes of the widest vector: whole tiles of channels, whole vectors per row."""
    lanes = direct_tile.lanes_for(width, dtype)
    return padded(outputs, TILE_CHANNELS) * height * padded(width, lanes) * _full_lanes(dtype) / lanes


def _channel_work(outputs: int, height: int, width: int, dtype) -> float:
    """The same for the channel tiles: whole vectors of channels, whole tiles of positions."""
    lanes = direct_tile.lanes_for(outputs, dtype)
    return padded(outputs, lanes) * padded(height * width, TILE_COLUMNS) * _full_lanes(dtype) / lanes


def _rows_apply(stride_w: int) -> bool:
    """The row tiles read a row's outputs as one contiguous vector: width stride 1 only."""
    return stride_w == 1


def suits(taps: int, outputs: int, height: int, width: int, positions: int, dtype, stride_w: int = 1) -> bool:
    """Whether the direct kernels pay for `outputs` channels of height x width, each a sum of `taps`
    products, where im2col + GEMM would compute `positions` sums per channel: enough taps, and not
    much more work than the GEMM's in the cheaper layout that applies. Lanes past a row's end or
    past the last channel are wasted, and a transposed pass with little padding sums over many zeros
    that col2im never adds."""
    dtype = np.dtype(dtype)
    if not direct_tile.available() or taps < MIN_TAPS or dtype not in (np.float32, np.float64):
        return False
    work = _channel_work(outputs, height, width, dtype)
    if _rows_apply(stride_w):
        work = min(work, _row_work(outputs, height, width, dtype))
    return work <= MAX_EXTRA_WORK * outputs * positions


@njit(cache=True)
def _share(t, n_threads, src, w_tiles, taps, group, top, left, stride_h, hp, wp, bias, use_bias, dst,
           block_bytes, lanes, max_vectors):
    """Images b of share t: dst[b] = correlation of the bordered src[b] per group (+ bias). The tiles
    store whole vectors themselves; the lanes of a vector that runs past a row's end are copied
    here from the tile's scratch (bias added)."""
    n, c_all = src.shape[0], src.shape[1]
    m_all, ho, wo = dst.shape[1], dst.shape[2], dst.shape[3]
    cg, mg = c_all // group, m_all // group
    n_tiles, k = w_tiles.shape[1], taps.shape[0]
    tile_size = k * TILE_CHANNELS
    flat_w, flat_dst = w_tiles.reshape(-1), dst.reshape(-1)
    buf = np.empty(cg * hp * wp + lanes, src.dtype)
    sums = np.empty(SCRATCH_BYTES // src.itemsize, src.dtype)
    xoff = np.zeros(MAX_VECTORS, np.int64)
    ooff = np.zeros(MAX_VECTORS, np.int64)
    per_row = -(-wo // lanes)
    rows_per_block = max(1, block_bytes // max(1, stride_h * wp * cg * src.itemsize))
    for b in range(t, n, n_threads):
        for gi in range(group):
            fill_bordered(src, b, gi * cg, cg, top, left, buf, hp, wp)
            for r0 in range(0, ho, rows_per_block):
                v0, v1 = r0 * per_row, min(ho, r0 + rows_per_block) * per_row
                for mt in range(n_tiles):
                    m0 = gi * mg + mt * TILE_CHANNELS
                    nm = min(TILE_CHANNELS, (gi + 1) * mg - m0)
                    for v in range(v0, v1, max_vectors):
                        nv = min(max_vectors, v1 - v)
                        for j in range(nv):
                            oy, ox = (v + j) // per_row, ((v + j) % per_row) * lanes
                            xoff[j] = oy * stride_h * wp + ox
                            ooff[j] = ((b * m_all + m0) * ho + oy) * wo + ox if ox + lanes <= wo else -1
                        w_off = (gi * n_tiles + mt) * tile_size
                        tile(lanes, nv, buf, xoff, taps, flat_w, w_off, sums, ooff, flat_dst, ho * wo, nm,
                             bias, m0, use_bias)
                        for j in range(nv):
                            if ooff[j] < 0:  # a vector past the row's end: store its outputs here
                                oy, ox = (v + j) // per_row, ((v + j) % per_row) * lanes
                                for i in range(nm):
                                    first = (i * MAX_VECTORS + j) * lanes
                                    dst[b, m0 + i, oy, ox:] = sums[first : first + wo - ox]


@njit(cache=True, parallel=True)
def _correlate_batch(n_threads, src, w_tiles, taps, group, top, left, stride_h, hp, wp, bias, use_bias, dst,
                     block_bytes, lanes, max_vectors):
    for t in prange(n_threads):
        _share(t, n_threads, src, w_tiles, taps, group, top, left, stride_h, hp, wp, bias, use_bias, dst,
               block_bytes, lanes, max_vectors)


def _weight_tiles(w_groups: np.ndarray) -> np.ndarray:
    """(group, outputs, taps) weights as (group, tiles, taps, TILE_CHANNELS), zero-padded."""
    group, outputs, taps = w_groups.shape
    n_tiles = -(-outputs // TILE_CHANNELS)
    padded = np.zeros((group, n_tiles * TILE_CHANNELS, taps), w_groups.dtype)
    padded[:, :outputs] = w_groups
    return np.ascontiguousarray(padded.reshape(group, n_tiles, TILE_CHANNELS, taps).transpose(0, 1, 3, 2))


def _run(src: np.ndarray, w_groups: np.ndarray, group: int, bias: np.ndarray | None, dst: np.ndarray,
         kernel, dilation, top: int, left: int, stride) -> None:
    """dst (n, M, Ho, Wo) = correlation of src (n, C, H, W) bordered by (top, left) with the
    (group, M/group, C/group * kh * kw) weights, taps in (channel, row, column) order, with strides
    (row, column), by the row tiles (column stride 1) or the channel tiles
    (engine.kernels.cpu.direct_channels), whichever wastes fewer lanes."""
    if src.shape[0] == 0:
        return
    if not dst.flags.c_contiguous:
        raise ValueError("the direct convolution writes a C-contiguous output")
    (kh, kw), (dh, dw), (stride_h, stride_w) = kernel, dilation, stride
    ho, wo = dst.shape[2], dst.shape[3]
    hp, wp = (ho - 1) * stride_h + (kh - 1) * dh + 1, (wo - 1) * stride_w + (kw - 1) * dw + 1
    cg = src.shape[1] // group
    c, ky, kx = np.meshgrid(np.arange(cg), np.arange(kh), np.arange(kw), indexing="ij")
    taps = (c * hp * wp + ky * dh * wp + kx * dw).reshape(-1).astype(np.int64)
    src = np.ascontiguousarray(src)
    outputs = w_groups.shape[1]
    if not _rows_apply(stride_w) or _channel_work(outputs, ho, wo, dst.dtype) < _row_work(outputs, ho, wo,
                                                                                          dst.dtype):
        lanes = direct_tile.lanes_for(outputs, dst.dtype)
        direct_channels.correlate(src, w_groups, group, bias, dst, taps, top, left, stride, hp, wp, lanes,
                                  direct_tile.channel_vectors_per_tile())
        return
    bias_arr = np.zeros(dst.shape[1] + TILE_CHANNELS, src.dtype)  # a tile reads TILE_CHANNELS biases
    if bias is not None:
        bias_arr[: dst.shape[1]] = bias
    _correlate_batch(thread_count(), src, _weight_tiles(w_groups), taps, group, top,
                     left, stride_h, hp, wp, bias_arr, bias is not None, dst, BLOCK_BYTES,
                     direct_tile.lanes_for(wo, dst.dtype), direct_tile.vectors_per_tile())


def correlate(src: np.ndarray, w: np.ndarray, group: int, bias: np.ndarray | None, dst: np.ndarray,
              kernel, pad, stride, dilation) -> None:
    """dst (n, M, Ho, Wo) = the convolution (Caffe's: a correlation) of src (n, C, H, W) with
    w (M, C/group, kh, kw) (+ bias), strides (row, column); dst C-contiguous, overwritten."""
    m = w.shape[0]
    w_groups = np.ascontiguousarray(w).reshape(group, m // group, -1)
    _run(src, w_groups, group, bias, dst, kernel, dilation, pad[0], pad[1], stride)


def correlate_transposed(src: np.ndarray, w: np.ndarray, group: int, bias: np.ndarray | None,
                         dst: np.ndarray, kernel, pad, dilation) -> None:
    """dst (n, C, H, W) = the transposed convolution of src (n, M, Ho, Wo) with w (M, C/group, kh, kw)
    (+ bias), unit strides: Convolution's bottom gradient, overwritten."""
    (kh, kw), (dh, dw) = kernel, dilation
    m, cg = w.shape[0], w.shape[1]
    flipped = np.ascontiguousarray(w).reshape(group, m // group, cg, kh, kw)[..., ::-1, ::-1]
    w_groups = np.ascontiguousarray(flipped.transpose(0, 2, 1, 3, 4)).reshape(group, cg, -1)
    _run(src, w_groups, group, bias, dst, kernel, dilation, (kh - 1) * dh - pad[0], (kw - 1) * dw - pad[1],
         (1, 1))
