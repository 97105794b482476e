"""MAX pooling's vector tiles (engine.kernels.cpu.pool_tile) against the scalar kernel that follows
Caffe's loop (engine.kernels.cpu.pooling.max_forward): the same maxima and the same argmax, with
padding, clipped last windows, ties, NaN and infinities, in both vector widths."""

import numpy as np
import pytest

from engine.kernels.cpu import direct_tile, pool_tile, pooling

# (planes, height, width, kernel (h, w), stride (h, w), pad (h, w)); outputs use Caffe's ceil rule
SHAPES = [
    (7, 32, 32, (3, 3), (2, 2), (0, 0)),  # CIFAR10-quick pool1: the last window clipped
    (5, 24, 24, (2, 2), (2, 2), (0, 0)),  # LeNet
    (4, 13, 37, (3, 3), (1, 1), (1, 1)),  # stride 1, padding, rows of 37: partial vectors
    (3, 9, 11, (3, 2), (2, 1), (1, 0)),  # rectangular, row stride 2, column stride 1
    (3, 8, 5, (2, 3), (1, 2), (0, 2)),  # padding as wide as the window's reach
    (3, 1, 40, (1, 3), (1, 2), (0, 1)),  # one row
]


def _out(size, kernel, stride, pad):
    out = -(-(size + 2 * pad - kernel) // stride) + 1
    return out - 1 if pad and (out - 1) * stride >= size + pad else out


def _both(x, kernel, stride, pad):
    oh, ow = (_out(x.shape[1 + a], kernel[a], stride[a], pad[a]) for a in range(2))
    results = []
    for kern in (pooling, pool_tile):
        top = np.full((x.shape[0], oh, ow), 7.0, x.dtype)
        mask = np.full((x.shape[0], oh, ow), 7, np.int64)
        kern.max_forward(x, *kernel, *stride, *pad, top, mask)
        results.append((top, mask))
    return results


@pytest.mark.parametrize("bits", pool_tile.WIDTHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("planes, height, width, kernel, stride, pad", SHAPES)
def test_tiles_give_caffes_maxima_and_argmax(bits, dtype, planes, height, width, kernel, stride, pad,
                                              monkeypatch):
    assert pool_tile._ENGINE is not None, "the MAX-pool tiles did not compile"
    monkeypatch.setattr(direct_tile, "lanes_for", lambda w, dt: bits // 8 // np.dtype(dt).itemsize)
    rng = np.random.default_rng(11)
    x = rng.integers(-3, 4, size=(planes, height, width)).astype(dtype)  # many ties
    x[0, 0, :4] = [np.nan, np.inf, -np.inf, np.nan]
    x[1, :, :] = -np.inf  # no value above -FLT_MAX: -FLT_MAX and index -1, as Caffe
    x[2, 0, 1] = -np.finfo(np.float32).max
    (ref_top, ref_mask), (top, mask) = _both(x, kernel, stride, pad)
    np.testing.assert_array_equal(top, ref_top)
    np.testing.assert_array_equal(mask, ref_mask)
    assert (mask[1] == -1).all() and (top[1] == -np.finfo(np.float32).max).all()


def test_tiles_take_column_strides_one_and_two_of_floats_in_rows_of_8_or_more():
    assert pool_tile.suits(1, 16, np.float32) and pool_tile.suits(2, 8, np.float64)
    assert not pool_tile.suits(3, 16, np.float32)
    assert not pool_tile.suits(2, 16, np.int32)
    assert not pool_tile.suits(2, pool_tile.MIN_WIDTH - 1, np.float32)


def test_the_pooling_layer_runs_the_tiles_for_max_pooling(monkeypatch):
    from tests.layers.test_vision_pool import pool_layer, run

    calls = []
    real = pool_tile.max_forward
    monkeypatch.setattr(pool_tile, "max_forward", lambda *args: calls.append(args[1:7]) or real(*args))
    run(pool_layer("pool: MAX kernel_size: 3 stride: 2"), (2, 3, 19, 19))
    assert calls == [(3, 3, 2, 2, 0, 0)]
    run(pool_layer("pool: MAX kernel_size: 3 stride: 3"), (2, 3, 40, 40))  # column stride 3: scalar kernel
    run(pool_layer("pool: MAX kernel_size: 3 stride: 2"), (2, 3, 9, 9))  # rows of 4: scalar kernel
    assert len(calls) == 1
