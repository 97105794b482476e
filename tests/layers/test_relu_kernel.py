"""The threaded ReLU kernels against Caffe's formulas, corner values included."""

import numba
import numpy as np
import pytest

from engine.kernels.cpu.relu import relu_backward, relu_forward

SPECIAL = np.array([np.nan, -np.inf, np.inf, -0.0, 0.0, -1.5, 2.5, 1e-30, -1e-30], np.float32)


def _caffe_forward(x, slope):
    # std::max(x, 0) + slope * std::min(x, 0), std::max/min returning x when the comparison fails
    s = x.dtype.type(slope)
    high = np.where(x < 0, x.dtype.type(0), x)
    low = np.where(0 < x, x.dtype.type(0), x)
    with np.errstate(invalid="ignore"):
        return high + s * low


def _caffe_backward(x, dy, slope):
    s = x.dtype.type(slope)
    with np.errstate(invalid="ignore"):
        return dy * ((x > 0).astype(x.dtype) + s * (x <= 0).astype(x.dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_relu_kernels_follow_caffe_on_special_values(dtype, slope):
    x = SPECIAL.astype(dtype)
    y = np.empty_like(x)
    relu_forward(x, slope, y)
    np.testing.assert_array_equal(y, _caffe_forward(x, slope))
    assert np.signbit(y[3])  # std::max(-0, 0) is -0
    if slope == 0:
        assert np.isnan(y[1])  # 0 * -inf is NaN in Caffe
    dy = np.array([1, np.nan, 2, np.inf, 3, 4, 5, 6, -np.inf], dtype)
    dx = np.empty_like(dy)
    relu_backward(x, dy, slope, dx)
    np.testing.assert_array_equal(dx, _caffe_backward(x, dy, slope))
    if slope == 0:
        assert np.isnan(dx[3])  # an infinite gradient through a closed unit stays visible as NaN


def test_relu_kernels_split_over_threads_give_the_single_thread_result_in_place():
    rng = np.random.default_rng(0)
    x = rng.normal(size=100_003).astype(np.float32)
    dy = rng.normal(size=x.size).astype(np.float32)
    expect_y, expect_dx = _caffe_forward(x, 0.0), _caffe_backward(x, dy, 0.0)
    before = numba.get_num_threads()
    try:
        for threads in (1, before):
            numba.set_num_threads(threads)
            y = x.copy()
            relu_forward(y, 0.0, y)  # in place, as an in-place ReLU layer runs
            np.testing.assert_array_equal(y, expect_y)
            d = dy.copy()
            relu_backward(x, d, 0.0, d)
            np.testing.assert_array_equal(d, expect_dx)
    finally:
        numba.set_num_threads(before)
