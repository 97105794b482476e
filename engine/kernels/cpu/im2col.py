"""im2col / col2im for up to 3 spatial axes, in Caffe's column layout.

A column buffer row is (channel, kernel offset...) in row-major order, and a
column is an output position in row-major order, as Caffe's im2col_cpu and
im2col_nd_cpu lay them out. Fewer than 3 spatial axes are handled by padding
the geometry with leading singleton axes (kernel 1, pad 0, stride 1), which
adds no work. col2im accumulates in Caffe's loop order, so float sums match.

The *batched* kernels (`_im2col3_batched`, the 2-D `_unit`/`_padded` ones) lay images out as
col (C*prod(kernel), n, *out): row (channel, kernel offset) as above, column (image, output
position). engine.kernels.cpu.conv calls them one image at a time (n = 1), where the layout is
the per-image one. The 2-D kernels copy through a zero-bordered image, so their copy loops have
no bounds tests and vectorise. Each image's values and, for col2im, each image's order of
accumulation are those of the per-image kernels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit


@njit(cache=True)
def _im2col3(img, k0, k1, k2, p0, p1, p2, s0, s1, s2, d0, d1, d2, col):
    n, chans, size0, size1, size2 = img.shape
    o0 = col.shape[2]
    o1 = col.shape[3]
    o2 = col.shape[4]
    for b in range(n):
        for c in range(chans):
            row = c * k0 * k1 * k2
            for i in range(k0):
                for j in range(k1):
                    for k in range(k2):
                        for z in range(o0):
                            iz = z * s0 - p0 + i * d0
                            zin = iz >= 0 and iz < size0
                            for y in range(o1):
                                iy = y * s1 - p1 + j * d1
                                yin = zin and iy >= 0 and iy < size1
                                for x in range(o2):
                                    ix = x * s2 - p2 + k * d2
                                    if yin and ix >= 0 and ix < size2:
                                        col[b, row, z, y, x] = img[b, c, iz, iy, ix]
                                    else:
                                        col[b, row, z, y, x] = 0.0
                        row += 1


@njit(cache=True)
def _col2im3(col, k0, k1, k2, p0, p1, p2, s0, s1, s2, d0, d1, d2, img):
    n, chans, size0, size1, size2 = img.shape
    o0 = col.shape[2]
    o1 = col.shape[3]
    o2 = col.shape[4]
    for b in range(n):
        img[b] = 0.0
        for c in range(chans):
            row = c * k0 * k1 * k2
            for i in range(k0):
                for j in range(k1):
                    for k in range(k2):
                        for z in range(o0):
                            iz = z * s0 - p0 + i * d0
                            if iz < 0 or iz >= size0:
                                continue
                            for y in range(o1):
                                iy = y * s1 - p1 + j * d1
                                if iy < 0 or iy >= size1:
                                    continue
                                for x in range(o2):
                                    ix = x * s2 - p2 + k * d2
                                    if ix >= 0 and ix < size2:
                                        img[b, c, iz, iy, ix] += col[b, row, z, y, x]
                        row += 1


@njit(cache=True)
def _im2col3_batched(img, k0, k1, k2, p0, p1, p2, s0, s1, s2, d0, d1, d2, col):
    """img (n, C, D, H, W) -> col (C*k0*k1*k2, n, oD, oH, oW)."""
    n, chans, size0, size1, size2 = img.shape
    o0 = col.shape[2]
    o1 = col.shape[3]
    o2 = col.shape[4]
    for b in range(n):  # image outermost: its planes stay in cache while its rows are written
        for c in range(chans):
            row = c * k0 * k1 * k2
            for i in range(k0):
                for j in range(k1):
                    for k in range(k2):
                        for z in range(o0):
                            iz = z * s0 - p0 + i * d0
                            zin = iz >= 0 and iz < size0
                            for y in range(o1):
                                iy = y * s1 - p1 + j * d1
                                yin = zin and iy >= 0 and iy < size1
                                # a fixed-length loop with a select vectorises; hoisted spans did not
                                for x in range(o2):
                                    ix = x * s2 - p2 + k * d2
                                    if yin and ix >= 0 and ix < size2:
                                        col[row, b, z, y, x] = img[b, c, iz, iy, ix]
                                    else:
                                        col[row, b, z, y, x] = 0.0
                        row += 1


@njit(cache=True)
def _span(k, d, p, s, size, out):
    """(offset, first, end) of the outputs x whose input x*s + offset lies in [0, size)."""
    off = k * d - p
    lo = 0 if off >= 0 else (-off + s - 1) // s
    lim = size - 1 - off
    hi = lim // s + 1 if lim >= 0 else 0
    lo = min(lo, out)
    hi = max(min(hi, out), lo)
    return off, lo, hi


@njit(cache=True)
def _col2im3_batched(col, k0, k1, k2, p0, p1, p2, s0, s1, s2, d0, d1, d2, img):
    """img (n, C, D, H, W) = scatter-add of col (C*k0*k1*k2, n, oD, oH, oW), Caffe's order per image."""
    n, chans, size0, size1, size2 = img.shape
    o0 = col.shape[2]
    o1 = col.shape[3]
    o2 = col.shape[4]
    img[...] = 0.0
    for c in range(chans):
        row = c * k0 * k1 * k2
        for i in range(k0):
            for j in range(k1):
                for k in range(k2):
                    off, lo, hi = _span(k, d2, p2, s2, size2, o2)
                    for b in range(n):  # per image the (row, z, y, x) order is Caffe's
                        for z in range(o0):
                            iz = z * s0 - p0 + i * d0
                            if iz < 0 or iz >= size0:
                                continue
                            for y in range(o1):
                                iy = y * s1 - p1 + j * d1
                                if iy < 0 or iy >= size1:
                                    continue
                                if s2 == 1:
                                    for x in range(lo, hi):
                                        img[b, c, iz, iy, x + off] += col[row, b, z, y, x]
                                else:
                                    for x in range(lo, hi):
                                        img[b, c, iz, iy, x * s2 + off] += col[row, b, z, y, x]
                    row += 1


@njit(cache=True)
def _im2col2_padded(img, kh, kw, ph, pw, sh, sw, dh, dw, col, pad):
    """2-D batched im2col through a zero-bordered copy of each image: no bounds tests in the
    copy loops, which vectorise (about 2x faster than the generic kernel for stride 1)."""
    n, chans, height, width = img.shape
    oh = col.shape[2]
    ow = col.shape[3]
    pad[...] = 0.0
    for b in range(n):
        for c in range(chans):
            for y in range(height):
                for x in range(width):
                    pad[c, y + ph, x + pw] = img[b, c, y, x]
        for c in range(chans):
            row = c * kh * kw
            for i in range(kh):
                for j in range(kw):
                    jx = j * dw
                    for y in range(oh):
                        dst = col[row, b, y]
                        # slices, so the loop indices are plain non-negative counters: numba then
                        # drops its negative-index wraparound and the copy vectorises
                        if sw == 1:
                            src = pad[c, y * sh + i * dh, jx : jx + ow]
                            for x in range(ow):
                                dst[x] = src[x]
                        else:
                            src_s = pad[c, y * sh + i * dh, jx : jx + (ow - 1) * sw + 1 : sw]
                            for x in range(ow):
                                dst[x] = src_s[x]
                    row += 1


@njit(cache=True)
def _col2im2_padded(col, kh, kw, ph, pw, sh, sw, dh, dw, img, pad):
    """2-D batched col2im into a zero-bordered buffer per image, then its interior is copied out.
    Every image element receives the same additions in the same order as Caffe's col2im."""
    n, chans, height, width = img.shape
    oh = col.shape[2]
    ow = col.shape[3]
    for b in range(n):
        pad[...] = 0.0
        for c in range(chans):
            row = c * kh * kw
            for i in range(kh):
                for j in range(kw):
                    jx = j * dw
                    for y in range(oh):
                        src = col[row, b, y]
                        if sw == 1:
                            dst = pad[c, y * sh + i * dh, jx : jx + ow]
                            for x in range(ow):
                                dst[x] += src[x]
                        else:
                            dst_s = pad[c, y * sh + i * dh, jx : jx + (ow - 1) * sw + 1 : sw]
                            for x in range(ow):
                                dst_s[x] += src[x]
                    row += 1
        for c in range(chans):
            for y in range(height):
                for x in range(width):
                    img[b, c, y, x] = pad[c, y + ph, x + pw]


@njit(cache=True)
def _im2col2_unit(img, kh, kw, ph, pw, col, pad):
    """_im2col2_padded for stride 1 and dilation 1 (the common case), with no geometry arithmetic
    in the copy loops; measured ~1.4x faster than the general padded kernel."""
    n, chans, height, width = img.shape
    oh = col.shape[2]
    ow = col.shape[3]
    pad[...] = 0.0
    for b in range(n):
        for c in range(chans):
            for y in range(height):
                for x in range(width):
                    pad[c, y + ph, x + pw] = img[b, c, y, x]
        for c in range(chans):
            row = c * kh * kw
            for i in range(kh):
                for j in range(kw):
                    for y in range(oh):
                        src = pad[c, y + i, j : j + ow]
                        dst = col[row, b, y]
                        for x in range(ow):
                            dst[x] = src[x]
                    row += 1


@njit(cache=True)
def _col2im2_unit(col, kh, kw, ph, pw, img, pad):
    """_col2im2_padded for stride 1 and dilation 1; the same additions in the same order."""
    n, chans, height, width = img.shape
    oh = col.shape[2]
    ow = col.shape[3]
    for b in range(n):
        pad[...] = 0.0
        for c in range(chans):
            row = c * kh * kw
            for i in range(kh):
                for j in range(kw):
                    for y in range(oh):
                        dst = pad[c, y + i, j : j + ow]
                        src = col[row, b, y]
                        for x in range(ow):
                            dst[x] += src[x]
                    row += 1
        for c in range(chans):
            for y in range(height):
                for x in range(width):
                    img[b, c, y, x] = pad[c, y + ph, x + pw]


def _pad3(values: Sequence[int], fill: int) -> list[int]:
    return [fill] * (3 - len(values)) + [int(v) for v in values]


def _gather_index(spatial, kernel, pad, stride, dilation, out) -> tuple[np.ndarray, np.ndarray]:
    """For more than 3 spatial axes: flat image index per (kernel offset, output) and its validity."""
    koff = np.indices(kernel).reshape(len(kernel), -1)  # (nd, K)
    opos = np.indices(out).reshape(len(out), -1)  # (nd, P)
    flat = np.zeros((koff.shape[1], opos.shape[1]), dtype=np.int64)
    valid = np.ones_like(flat, dtype=bool)
    for a in range(len(spatial)):
        coord = opos[a][None, :] * stride[a] - pad[a] + koff[a][:, None] * dilation[a]
        valid &= (coord >= 0) & (coord < spatial[a])
        flat = flat * spatial[a] + coord
    return np.where(valid, flat, 0), valid


def im2col(img: np.ndarray, kernel, pad, stride, dilation, out, col: np.ndarray) -> None:
    """img (n, C, *spatial) -> col (n, C*prod(kernel), *out); every argument per spatial axis."""
    nd = img.ndim - 2
    if nd <= 3:
        shape5 = img.shape[:2] + tuple(_pad3(img.shape[2:], 1))
        cshape5 = col.shape[:2] + tuple(_pad3(out, 1))
        _im2col3(
            np.ascontiguousarray(img).reshape(shape5),
            *_pad3(kernel, 1), *_pad3(pad, 0), *_pad3(stride, 1), *_pad3(dilation, 1),
            col.reshape(cshape5),
        )
        return
    idx, valid = _gather_index(img.shape[2:], kernel, pad, stride, dilation, out)
    n, chans = img.shape[:2]
    flat = img.reshape(n, chans, -1)
    gathered = flat[:, :, idx] * valid  # (n, C, K, P)
    col.reshape(n, chans, idx.shape[0], idx.shape[1])[...] = gathered


def col2im(col: np.ndarray, kernel, pad, stride, dilation, out, img: np.ndarray) -> None:
    """Inverse scatter of im2col: img (n, C, *spatial) = sum of col entries (overwrites img)."""
    nd = img.ndim - 2
    if nd <= 3:
        shape5 = img.shape[:2] + tuple(_pad3(img.shape[2:], 1))
        cshape5 = col.shape[:2] + tuple(_pad3(out, 1))
        if not img.flags.c_contiguous:
            raise ValueError("col2im needs a C-contiguous image buffer")
        _col2im3(
            np.ascontiguousarray(col).reshape(cshape5),
            *_pad3(kernel, 1), *_pad3(pad, 0), *_pad3(stride, 1), *_pad3(dilation, 1),
            img.reshape(shape5),
        )
        return
    idx, valid = _gather_index(img.shape[2:], kernel, pad, stride, dilation, out)
    n, chans = img.shape[:2]
    size = int(np.prod(img.shape[2:]))
    vals = col.reshape(n, chans, idx.shape[0], idx.shape[1])
    flat = img.reshape(n * chans, size)
    flat[...] = 0
    rows = vals.reshape(n * chans, -1)[:, valid.ravel()]
    target = idx.ravel()[valid.ravel()]
    for r in range(n * chans):
        flat[r] = np.bincount(target, weights=rows[r], minlength=size)
