"""2-D pooling loops (MAX, AVE, STOCHASTIC), in Caffe's window and accumulation order.

Arrays are (N*C, H, W) planes. MAX records the argmax as h*W + w within the
plane (-1 for an empty window, whose output stays -FLT_MAX as in Caffe).
STOCHASTIC records the index over the whole (N, C, H, W) blob, as Caffe's GPU
kernel does. MAX and AVE run the planes in parallel (each plane's values are computed as
Caffe's loop computes them, so the thread count changes nothing).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

FLT_MAX = float(np.finfo(np.float32).max)


@njit(cache=True, parallel=True)
def max_forward(x, kh, kw, sh, sw, ph, pw, top, mask):
    planes, height, width = x.shape
    out_h, out_w = top.shape[1], top.shape[2]
    for p in prange(planes):
        plane = x[p]
        for oy in range(out_h):
            hs = oy * sh - ph
            he = min(hs + kh, height)
            hs = max(hs, 0)
            trow = top[p, oy]
            mrow = mask[p, oy]
            for ox in range(out_w):
                ws = ox * sw - pw
                we = min(ws + kw, width)
                ws = max(ws, 0)
                best = -FLT_MAX
                arg = -1
                # row slices indexed by non-negative counters: no negative-index wraparound per
                # element (~1.25x faster); the same (h, w) visiting order as Caffe
                for dh in range(he - hs):
                    seg = plane[hs + dh, ws:we]
                    for t in range(we - ws):
                        v = seg[t]
                        if v > best:
                            best = v
                            arg = (hs + dh) * width + ws + t
                trow[ox] = best
                mrow[ox] = arg


@njit(cache=True, parallel=True)
def max_backward(top_diff, mask, bottom_diff):
    """Arrays C-contiguous; flat planes, so an argmax is used as is (no division per element,
    ~3.5x faster); the additions are in the same (top position) order."""
    planes, height, width = bottom_diff.shape
    n_out = top_diff.shape[1] * top_diff.shape[2]
    flat = bottom_diff.reshape(planes, height * width)
    tflat = top_diff.reshape(planes, n_out)
    mflat = mask.reshape(planes, n_out)
    for p in prange(planes):
        dst = flat[p]
        dst[...] = 0.0
        src = tflat[p]
        idxs = mflat[p]
        for o in range(n_out):
            idx = idxs[o]
            if idx >= 0:
                dst[idx] += src[o]


@njit(cache=True, parallel=True)
def ave_forward(x, kh, kw, sh, sw, ph, pw, top):
    planes, height, width = x.shape
    out_h, out_w = top.shape[1], top.shape[2]
    for p in prange(planes):
        plane = x[p]
        for oy in range(out_h):
            hs = oy * sh - ph
            he = min(hs + kh, height + ph)
            h0 = max(hs, 0)
            h1 = min(he, height)
            trow = top[p, oy]
            for ox in range(out_w):
                ws = ox * sw - pw
                we = min(ws + kw, width + pw)
                pool_size = (he - hs) * (we - ws)
                w0 = max(ws, 0)
                w1 = min(we, width)
                trow[ox] = 0.0  # summed in the blob's dtype, in Caffe's (h, w) order
                for dh in range(h1 - h0):
                    seg = plane[h0 + dh, w0:w1]
                    for t in range(w1 - w0):
                        trow[ox] += seg[t]
                trow[ox] /= pool_size


@njit(cache=True, parallel=True)
def ave_backward(top_diff, kh, kw, sh, sw, ph, pw, bottom_diff):
    planes, height, width = bottom_diff.shape
    g_all = np.empty(planes, dtype=bottom_diff.dtype)  # quotients rounded to the blob's dtype, as Caffe
    for p in prange(planes):
        g = g_all[p : p + 1]
        plane = bottom_diff[p]
        plane[...] = 0.0
        for oy in range(top_diff.shape[1]):
            hs = oy * sh - ph
            he = min(hs + kh, height + ph)
            h0 = max(hs, 0)
            h1 = min(he, height)
            for ox in range(top_diff.shape[2]):
                ws = ox * sw - pw
                we = min(ws + kw, width + pw)
                g[0] = top_diff[p, oy, ox] / ((he - hs) * (we - ws))
                gv = g[0]
                w0 = max(ws, 0)
                w1 = min(we, width)
                for dh in range(h1 - h0):
                    seg = plane[h0 + dh, w0:w1]
                    for t in range(w1 - w0):
                        seg[t] += gv


@njit(cache=True)
def stochastic_forward_train(x, kh, kw, sh, sw, rand, top, index):
    """Sample one element per window with probability proportional to its value."""
    planes, height, width = x.shape
    acc = np.zeros(2, dtype=x.dtype)  # [running sum, threshold] in the blob's dtype
    for p in range(planes):
        for oy in range(top.shape[1]):
            hs = oy * sh
            he = min(hs + kh, height)
            for ox in range(top.shape[2]):
                ws = ox * sw
                we = min(ws + kw, width)
                acc[0] = 0.0
                for h in range(hs, he):
                    for w in range(ws, we):
                        acc[0] += x[p, h, w]
                acc[1] = rand[p, oy, ox] * acc[0]
                acc[0] = 0.0
                index[p, oy, ox] = -1
                top[p, oy, ox] = 0.0
                done = False
                for h in range(hs, he):
                    if done:
                        break
                    for w in range(ws, we):
                        acc[0] += x[p, h, w]
                        if acc[0] >= acc[1]:
                            index[p, oy, ox] = (p * height + h) * width + w
                            top[p, oy, ox] = x[p, h, w]
                            done = True
                            break


@njit(cache=True)
def stochastic_forward_test(x, kh, kw, sh, sw, top):
    """Probability-weighted average: sum(x^2) / sum(x), the sum starting at FLT_MIN."""
    planes, height, width = x.shape
    acc = np.zeros(3, dtype=x.dtype)  # [sum, sum of squares, square] in the blob's dtype
    for p in range(planes):
        for oy in range(top.shape[1]):
            hs = oy * sh
            he = min(hs + kh, height)
            for ox in range(top.shape[2]):
                ws = ox * sw
                we = min(ws + kw, width)
                acc[0] = 1.1754943508222875e-38
                acc[1] = 0.0
                for h in range(hs, he):
                    for w in range(ws, we):
                        acc[0] += x[p, h, w]
                        acc[2] = x[p, h, w] * x[p, h, w]
                        acc[1] += acc[2]
                top[p, oy, ox] = acc[1] / acc[0]


@njit(cache=True)
def stochastic_backward(top_diff, index, bottom_diff):
    planes, height, width = bottom_diff.shape
    bottom_diff[...] = 0.0
    for p in range(planes):
        for oy in range(top_diff.shape[1]):
            for ox in range(top_diff.shape[2]):
                idx = index[p, oy, ox]
                if idx >= 0:
                    local = idx - p * height * width
                    bottom_diff[p, local // width, local % width] += top_diff[p, oy, ox]
