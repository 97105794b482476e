"""ReLU on the host, split over threads: the most frequent activation of conv nets, one pass each way.

Caffe's formulas exactly, in the blob's dtype (the slope arrives as a one-element array of it):
forward max(x, 0) + slope * min(x, 0), with std::max/std::min's NaN behaviour (x is kept when the
comparison fails) and 0 * -inf = NaN as in Caffe; backward dy * ((x > 0) + slope * (x <= 0)), so a
NaN or infinite top gradient still poisons a closed unit.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from engine.kernels.cpu.threads import thread_count


@njit(cache=True, parallel=True)
def _forward(parts, x, slope, y):
    for part in prange(parts):
        _forward_range(x.size * part // parts, x.size * (part + 1) // parts, x, slope, y)


@njit(cache=True, parallel=True)
def _backward(parts, x, dy, slope, dx):
    for part in prange(parts):
        _backward_range(x.size * part // parts, x.size * (part + 1) // parts, x, dy, slope, dx)


@njit(cache=True)
def _forward_range(lo, hi, x, slope, y):
    s = slope[0]
    zero = s - s  # 0 in the blob's dtype
    xs, ys = x[lo:hi], y[lo:hi]  # counters from 0: no negative-index wraparound, so the loop vectorises
    for i in range(hi - lo):
        v = xs[i]
        high = zero if v < zero else v  # std::max(v, 0)
        low = zero if zero < v else v  # std::min(v, 0)
        ys[i] = high + s * low


@njit(cache=True)
def _backward_range(lo, hi, x, dy, slope, dx):
    s = slope[0]
    one = s - s + 1
    zero = s - s
    xs, dys, dxs = x[lo:hi], dy[lo:hi], dx[lo:hi]
    for i in range(hi - lo):
        v = xs[i]
        dxs[i] = dys[i] * ((one if v > zero else zero) + s * (one if v <= zero else zero))


def relu_forward(x: np.ndarray, slope: float, y: np.ndarray) -> None:
    """y = ReLU(x) on flat C-contiguous arrays (y may be x)."""
    _forward(thread_count(), x.reshape(-1), np.full(1, slope, x.dtype), y.reshape(-1))


def relu_backward(x: np.ndarray, dy: np.ndarray, slope: float, dx: np.ndarray) -> None:
    """dx = ReLU'(x) * dy on flat C-contiguous arrays (dx may be dy)."""
    _backward(thread_count(), x.reshape(-1), dy.reshape(-1), np.full(1, slope, x.dtype), dx.reshape(-1))
