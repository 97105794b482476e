"""Pooling and SPP: Caffe's output sizes, forward against direct loops, gradients, errors."""

import numpy as np
import pytest

from engine import common
from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param, make_blobs

FLT_MAX = float(np.finfo(np.float32).max)


def pool_layer(body: str, phase: str = "TRAIN", kind: str = "Pooling"):
    field = "pooling_param" if kind == "Pooling" else "spp_param"
    return create_layer(layer_param(f'name: "pool" type: "{kind}" phase: {phase} {field} {{ {body} }}'))


def run(layer, shape, ntop=1, seed=0, data=None):
    bottom = make_blobs([shape], np.random.default_rng(seed))
    if data is not None:
        bottom[0].data[...] = data
    top = [Blob(dtype=np.float64) for _ in range(ntop)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return bottom[0], top


def window_count(size, k, s, p, ceil):
    """Count windows by walking them: full windows in the padded input, then a partial one (CEIL),
    then drop windows that start in the right padding (only when padded, as Caffe)."""
    starts = []
    i = 0
    while i * s + k <= size + 2 * p:
        starts.append(i * s)
        i += 1
    if ceil and (not starts or starts[-1] + k < size + 2 * p):
        starts.append(i * s)
    if p > 0:
        starts = [st for st in starts if st - p < size]
    return len(starts)


def windows(size, k, s, p, out):
    """(start, end, divisor extent) per output along one axis, as Caffe's loops clip them."""
    res = []
    for o in range(out):
        st = o * s - p
        end_pad = min(st + k, size + p)
        res.append((max(st, 0), min(end_pad, size), end_pad - st))
    return res


def naive_pool(x, kh, kw, sh, sw, ph, pw, oh, ow, method):
    n, c = x.shape[:2]
    y = np.zeros((n, c, oh, ow))
    for oy, (hs, he, hd) in enumerate(windows(x.shape[2], kh, sh, ph, oh)):
        for ox, (ws, we, wd) in enumerate(windows(x.shape[3], kw, sw, pw, ow)):
            win = x[:, :, hs:he, ws:we]
            if method == "MAX":
                y[:, :, oy, ox] = win.max(axis=(2, 3)) if win.size else -FLT_MAX
            else:
                y[:, :, oy, ox] = win.sum(axis=(2, 3)) / (hd * wd)
    return y


CASES = [
    # size (h, w), kernel, stride, pad, round mode
    ((7, 6), (3, 3), (2, 2), (1, 1), "CEIL"),
    ((7, 6), (3, 3), (2, 2), (1, 1), "FLOOR"),
    ((5, 5), (2, 2), (2, 2), (1, 1), "CEIL"),  # last window would start in the padding: dropped
    ((6, 5), (3, 2), (3, 2), (0, 1), "CEIL"),
    ((9, 4), (4, 3), (3, 1), (2, 2), "CEIL"),
    ((3, 8), (3, 3), (1, 3), (0, 0), "FLOOR"),
    ((4, 7), (2, 3), (3, 2), (1, 2), "CEIL"),
]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("size, kernel, stride, pad, mode", CASES)
def test_pool_shapes_and_forward(method, size, kernel, stride, pad, mode):
    body = (f"pool: {method} kernel_h: {kernel[0]} kernel_w: {kernel[1]} stride_h: {stride[0]} "
            f"stride_w: {stride[1]} pad_h: {pad[0]} pad_w: {pad[1]} round_mode: {mode}")
    x, (top,) = run(pool_layer(body), (2, 2, *size))
    oh = window_count(size[0], kernel[0], stride[0], pad[0], mode == "CEIL")
    ow = window_count(size[1], kernel[1], stride[1], pad[1], mode == "CEIL")
    assert top.shape == (2, 2, oh, ow)
    ref = naive_pool(x.data, *kernel, *stride, *pad, oh, ow, method)
    np.testing.assert_allclose(top.data, ref, rtol=1e-12)


def test_known_sizes():
    # hand-computed: (7 + 2 - 3) / 2 = 3 -> 4 windows (ceil) ; (5 + 2 - 2) / 2 = 2.5 -> ceil 3 + 1 = 4,
    # the 4th starts at 6 - 1 = 5 >= 5 (in the padding) -> 3
    _, (top,) = run(pool_layer("kernel_size: 3 stride: 2 pad: 1"), (1, 1, 7, 5))
    assert top.shape == (1, 1, 4, 3)
    _, (top,) = run(pool_layer("kernel_size: 2 stride: 2 pad: 1"), (1, 1, 5, 5))
    assert top.shape == (1, 1, 3, 3)
    _, (top,) = run(pool_layer("kernel_size: 2 stride: 2 round_mode: FLOOR"), (1, 1, 5, 5))
    assert top.shape == (1, 1, 2, 2)


def test_max_empty_window_keeps_minus_flt_max():
    # no pad, stride > kernel: ceil((5 - 1) / 3) + 1 = 3, the last window starts at 6 > 4
    x, (top, mask) = run(pool_layer("kernel_size: 1 stride: 3"), (1, 1, 5, 5), ntop=2)
    assert top.shape == (1, 1, 3, 3)
    assert top.data[0, 0, 2, 0] == -FLT_MAX and mask.data[0, 0, 2, 0] == -1
    assert top.data[0, 0, 1, 1] == x.data[0, 0, 3, 3]


def test_max_mask_top_and_ties():
    data = np.array([[1.0, 3.0, 3.0], [0.0, 2.0, -1.0], [5.0, 5.0, 4.0]]).reshape(1, 1, 3, 3)
    x, (top, mask) = run(pool_layer("kernel_size: 2 stride: 1"), (1, 1, 3, 3), ntop=2, data=data)
    np.testing.assert_array_equal(top.data[0, 0], [[3.0, 3.0], [5.0, 5.0]])
    # first maximum in row-major window order wins, index is h * width + w
    np.testing.assert_array_equal(mask.data[0, 0], [[1, 1], [6, 7]])


def test_max_backward_routes_to_argmax():
    data = np.arange(16.0).reshape(1, 1, 4, 4)
    layer = pool_layer("kernel_size: 2 stride: 2")
    x, (top,) = run(layer, (1, 1, 4, 4), data=data)
    top.diff[...] = [[[[1.0, 2.0], [3.0, 4.0]]]]
    layer.backward([top], [True], [x])
    expected = np.zeros((4, 4))
    expected[1, 1], expected[1, 3], expected[3, 1], expected[3, 3] = 1, 2, 3, 4
    np.testing.assert_array_equal(x.diff[0, 0], expected)


def test_global_pooling():
    x, (top,) = run(pool_layer("pool: AVE global_pooling: true"), (2, 3, 4, 5))
    assert top.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(top.data[..., 0, 0], x.data.mean(axis=(2, 3)))
    x, (top,) = run(pool_layer("pool: MAX global_pooling: true"), (2, 3, 4, 5))
    np.testing.assert_allclose(top.data[..., 0, 0], x.data.max(axis=(2, 3)))


@pytest.mark.parametrize(
    "body",
    [
        "pool: MAX kernel_size: 3 stride: 2 pad: 1",
        "pool: MAX kernel_h: 3 kernel_w: 2 stride: 2 round_mode: FLOOR",
        "pool: AVE kernel_size: 3 stride: 2 pad: 1",
        "pool: AVE kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 2 round_mode: FLOOR",
        "pool: AVE kernel_size: 2 stride: 3 pad: 1",
    ],
)
def test_pool_gradient(body):
    layer = pool_layer(body)
    bottom = make_blobs([(1, 2, 6, 5)], np.random.default_rng(4))
    GradientChecker(1e-4, 1e-6).check_gradient_exhaustive(layer, bottom, [Blob(dtype=np.float64)])


def test_stochastic_train_samples_by_value_and_test_weights():
    data = np.abs(np.random.default_rng(5).standard_normal((1, 2, 4, 4))) + 0.1
    layer = pool_layer("pool: STOCHASTIC kernel_size: 2 stride: 2")
    common.set_random_seed(3)
    x, (top,) = run(layer, (1, 2, 4, 4), data=data)
    # every output is one of its window's values
    for c in range(2):
        for oy in range(2):
            for ox in range(2):
                win = data[0, c, 2 * oy : 2 * oy + 2, 2 * ox : 2 * ox + 2]
                assert top.data[0, c, oy, ox] in win
    # sampled frequencies follow value / window sum
    win = np.array([[1.0, 3.0], [0.0, 4.0]]).reshape(1, 1, 2, 2)
    counts = {1.0: 0, 3.0: 0, 4.0: 0}
    layer = pool_layer("pool: STOCHASTIC kernel_size: 2")
    x1, (t1,) = run(layer, (1, 1, 2, 2), data=win)
    for _ in range(800):
        layer.forward([x1], [t1])
        counts[float(t1.data[0, 0, 0, 0])] += 1
    assert abs(counts[4.0] / 800 - 0.5) < 0.07 and abs(counts[1.0] / 800 - 0.125) < 0.05
    # backward routes the gradient to the sampled element
    t1.diff[...] = 2.0
    layer.backward([t1], [True], [x1])
    picked = np.argwhere(x1.diff[0, 0] == 2.0)
    assert len(picked) == 1 and win[0, 0][tuple(picked[0])] == t1.data[0, 0, 0, 0]
    # TEST phase: sum(x^2) / sum(x)
    test_layer = pool_layer("pool: STOCHASTIC kernel_size: 2 stride: 2", phase="TEST")
    _, (tt,) = run(test_layer, (1, 2, 4, 4), data=data)
    blocks = data.reshape(1, 2, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
    ref = (blocks**2).sum(axis=(4, 5)) / blocks.sum(axis=(4, 5))
    np.testing.assert_allclose(tt.data, ref, rtol=1e-12)


@pytest.mark.parametrize(
    "body, message",
    [
        ("kernel_size: 2 pad: 2", "smaller than the kernel"),
        ("kernel_size: 3 kernel_h: 3 kernel_w: 3", "not both"),
        ("kernel_h: 3", "kernel_size OR kernel_h and kernel_w"),
        ("global_pooling: true kernel_size: 2", "cannot be specified"),
        ("pool: STOCHASTIC kernel_size: 3 pad: 1", "padding implemented only"),
        ("kernel_size: 3 pad: 1 pad_h: 1", "pad is pad OR"),
    ],
)
def test_pool_errors(body, message):
    with pytest.raises(WiringError, match=message) as info:
        run(pool_layer(body), (1, 1, 5, 5))
    assert info.value.layer == "pool"


def test_pool_needs_4_axes_and_ave_has_one_top():
    with pytest.raises(WiringError, match="4 axes"):
        run(pool_layer("kernel_size: 2"), (1, 1, 5))
    with pytest.raises(WiringError, match="at most 1 top"):
        run(pool_layer("pool: AVE kernel_size: 2"), (1, 1, 4, 4), ntop=2)


def spp_reference(x, height):
    n, c, h, w = x.shape
    parts = []
    for level in range(height):
        bins = 2**level
        kh, kw = -(-h // bins), -(-w // bins)
        ph, pw = (kh * bins - h + 1) // 2, (kw * bins - w + 1) // 2
        oh = window_count(h, kh, kh, ph, True)
        ow = window_count(w, kw, kw, pw, True)
        parts.append(naive_pool(x, kh, kw, kh, kw, ph, pw, oh, ow, "MAX").reshape(n, -1))
    return np.concatenate(parts, axis=1)


def test_spp_forward_and_gradient():
    layer = pool_layer("pyramid_height: 3", kind="SPP")
    x, (top,) = run(layer, (2, 2, 9, 7))
    np.testing.assert_allclose(top.data, spp_reference(x.data, 3))
    assert top.shape == (2, 2 * (1 + 4 + 16))
    GradientChecker(1e-4, 1e-6).check_gradient(
        pool_layer("pyramid_height: 2 pool: AVE", kind="SPP"),
        make_blobs([(1, 2, 5, 6)], np.random.default_rng(6)),
        [Blob(dtype=np.float64)],
    )
    GradientChecker(1e-4, 1e-6).check_gradient(
        pool_layer("pyramid_height: 3", kind="SPP"),
        make_blobs([(1, 1, 8, 7)], np.random.default_rng(7)),
        [Blob(dtype=np.float64)],
    )


def test_spp_height_one_keeps_4d_and_bad_level_errors():
    x, (top,) = run(pool_layer("pyramid_height: 1", kind="SPP"), (2, 3, 4, 5))
    assert top.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(top.data[..., 0, 0], x.data.max(axis=(2, 3)))
    with pytest.raises(WiringError, match="SPP") as info:
        run(pool_layer("pyramid_height: 3", kind="SPP"), (1, 1, 6, 5))  # 5 px in 4 bins: pad 2 >= kernel 2
    assert info.value.layer == "pool"


def test_pool_float32_ave_matches_float32_sums():
    layer = pool_layer("pool: AVE kernel_size: 3 stride: 2 pad: 1")
    bottom = make_blobs([(1, 1, 5, 5)], np.random.default_rng(8), dtype=np.float32)
    top = Blob(dtype=np.float32)
    layer.setup(bottom, [top])
    layer.forward(bottom, [top])
    x = bottom[0].data[0, 0]
    acc = np.float32(0)
    for v in (x[0, 0], x[0, 1], x[1, 0], x[1, 1]):
        acc = np.float32(acc + v)
    assert top.dtype == np.float32 and top.data[0, 0, 0, 0] == np.float32(acc / np.float32(9))
