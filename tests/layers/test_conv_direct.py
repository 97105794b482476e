"""The direct CPU convolution (engine.kernels.cpu.direct, direct_weights and their LLVM tiles)
against the generic im2col + GEMM path, for Convolution and Deconvolution, with the direct kernels
forced on for shapes they would otherwise leave to im2col; and the tiles and the shape rules on
their own."""

import numpy as np
import pytest

from engine.kernels.cpu import direct, direct_tile, direct_weights
from engine.kernels.cpu.direct_tile import MAX_VECTORS, TILE_CHANNELS, tile
from tests.layers.test_conv_fastpaths import _assert_same, _pass

# (convolution_param body, bottom shape): the direct forward applies to every one (column strides
# above 1 in the channel layout); the unit-stride ones take the direct transposed pass too.
# Partial vectors (widths not a multiple of the lanes), widths under one vector, pad beyond the
# kernel's reach (the transposed pass then starts inside the top gradient), dilation, groups with
# output channels not a multiple of the tile, row stride 2, column strides 2 and 3, rectangular
# kernels, 1-D.
GEOMETRIES = [
    ("num_output: 6 kernel_size: 5 pad: 2", (3, 4, 9, 19)),
    ("num_output: 5 kernel_size: 3 dilation: 2 pad: 1 group: 1", (2, 3, 8, 11)),
    ("num_output: 3 kernel_size: 3 pad: 3", (2, 2, 7, 8)),
    ("num_output: 10 kernel_size: 3 pad: 1 group: 2", (3, 4, 7, 9)),
    ("num_output: 4 kernel_h: 2 kernel_w: 4 pad_h: 1 pad_w: 2", (2, 3, 6, 17)),
    ("num_output: 4 kernel_size: 3 stride_h: 2 stride_w: 1 pad: 1", (3, 2, 9, 10)),
    ("num_output: 5 kernel_size: 3 stride: 2 pad: 1", (2, 3, 9, 11)),  # column stride: channel tiles only
    ("num_output: 4 kernel_h: 3 kernel_w: 4 stride_h: 1 stride_w: 3 dilation: 2", (2, 2, 8, 17)),
    ("num_output: 3 kernel_size: 3 pad: 1", (2, 5, 3)),
    ("num_output: 2 kernel_size: 3", (2, 3, 4, 3)),
]


@pytest.fixture(params=["own choice", "rows 256-bit", "rows 512-bit", "channels 256-bit", "channels 512-bit"])
def forced(request, monkeypatch):
    """Force the direct kernels on for every shape; count the passes that took them. Run with the
    layout and vector width the shapes choose, and with each layout and width forced (the 512-bit
    tiles run correctly, if split, on CPUs without AVX-512)."""
    assert direct_tile.available(), "the LLVM tile did not compile: the CPU convolution would be slow"
    if request.param != "own choice":
        layout, bits = request.param.split()
        lanes = {4: int(bits[:3]) // 32, 8: int(bits[:3]) // 64}
        monkeypatch.setattr(direct_tile, "lanes_for", lambda width, dtype: lanes[np.dtype(dtype).itemsize])
        other = "_channel_work" if layout == "rows" else "_row_work"
        monkeypatch.setattr(direct, other, lambda *shape_and_dtype: float("inf"))
    calls = {"data": [], "weights": []}
    real_run, real_accumulate = direct._run, direct_weights.accumulate
    monkeypatch.setattr(direct, "suits", lambda *shape_and_dtype: True)
    monkeypatch.setattr(direct_weights, "suits", lambda *shape_and_dtype: True)
    monkeypatch.setattr(direct, "_run", lambda *args: calls["data"].append(args[6:]) or real_run(*args))
    monkeypatch.setattr(direct_weights, "accumulate",
                        lambda *args: calls["weights"].append(args[4:]) or real_accumulate(*args))
    return calls


@pytest.mark.parametrize("kind", ["Convolution", "Deconvolution"])
@pytest.mark.parametrize("body, shape", GEOMETRIES)
def test_direct_conv_matches_the_generic_path(kind, body, shape, forced, monkeypatch):
    generic = _pass(kind, body, shape, False, monkeypatch)
    assert not forced["data"] and not forced["weights"]
    fast = _pass(kind, body, shape, True, monkeypatch)
    unit = "stride" not in body
    assert len(forced["data"]) == (2 if unit else 1)  # forward and bottom gradient, or the forward
    assert len(forced["weights"]) == 1  # any strides
    _assert_same(generic, fast, 1e-12)


@pytest.mark.parametrize("kind", ["Convolution", "Deconvolution"])
def test_direct_conv_in_float32(kind, forced, monkeypatch):
    body, shape = "num_output: 7 kernel_size: 3 pad: 1 group: 1", (3, 5, 6, 13)
    generic = _pass(kind, body, shape, False, monkeypatch, np.float32)
    fast = _pass(kind, body, shape, True, monkeypatch, np.float32)
    assert len(forced["data"]) == 2 and len(forced["weights"]) == 1
    _assert_same(generic, fast, 1e-5)


def test_without_bias_the_outputs_are_the_bare_sums(forced, monkeypatch):
    body, shape = "num_output: 3 kernel_size: 3 pad: 1 bias_term: false", (2, 2, 5, 10)
    _assert_same(_pass("Convolution", body, shape, False, monkeypatch),
                 _pass("Convolution", body, shape, True, monkeypatch), 1e-12)


@pytest.mark.parametrize("bits", direct_tile.WIDTHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tile_stores_whole_vectors_and_leaves_the_rest_in_its_scratch(dtype, bits):
    lanes = bits // 8 // np.dtype(dtype).itemsize
    x = np.arange(4 * lanes, dtype=dtype)
    taps = np.array([0, 1], np.int64)
    w = np.zeros((2, TILE_CHANNELS), dtype)
    w[0, 0], w[1, 1], w[0, 2], w[1, 2] = 1, 2, 1, 1  # channel 0: x[p]; 1: 2 x[p+1]; 2: x[p] + x[p+1]
    xoff = np.array([0, lanes, 2 * lanes], np.int64)
    ooff = np.array([0, -1, lanes], np.int64)  # the middle vector goes to the scratch
    dst = np.full(3 * 2 * lanes + 1, 7.0, dtype)  # three channels of 2 vectors, one sentinel past the end
    bias = np.array([0.5, -1.0, 0.25, 100.0], dtype)
    sums = direct_tile.scratch(dtype)
    slots = sums[: TILE_CHANNELS * MAX_VECTORS * lanes].reshape(TILE_CHANNELS, MAX_VECTORS, lanes)
    tile(lanes, 3, x, xoff, taps, w, 0, sums, ooff, dst, 2 * lanes, 3, bias, 0, True)
    p = np.arange(3 * lanes, dtype=dtype)
    expect = [p + 0.5, 2 * (p + 1) - 1.0, 2 * p + 1 + 0.25]
    for ch in range(3):
        row = dst[ch * 2 * lanes: (ch + 1) * 2 * lanes]
        np.testing.assert_array_equal(row[:lanes], expect[ch][:lanes])
        np.testing.assert_array_equal(row[lanes:], expect[ch][2 * lanes:])
        np.testing.assert_array_equal(slots[ch, 1], expect[ch][lanes: 2 * lanes])
    assert dst[-1] == 7.0  # the fourth channel (nm = 3) is not written to dst
    sums[:] = 0
    scratch_only = np.array([-1, 0, 0], np.int64)
    tile(lanes, 1, x, xoff, taps, w, 0, sums, scratch_only, dst, 2 * lanes, 3, bias, 0, False)
    np.testing.assert_array_equal(slots[0, 0], p[:lanes])


@pytest.mark.parametrize("bits", direct_tile.WIDTHS)
def test_every_tile_size_sums_its_own_vectors(bits):
    """Tiles of 1..MAX_VECTORS vectors: each vector j of channel i is sum_k w[k, i] x[xoff[j] + tap k]."""
    rng = np.random.default_rng(3)
    lanes = bits // 8 // 8
    x = rng.normal(size=MAX_VECTORS * lanes * 3)
    taps = np.array([0, 2, 5, 7], np.int64)
    w = rng.normal(size=(taps.size, TILE_CHANNELS))
    bias = np.zeros(TILE_CHANNELS)
    for nv in range(1, MAX_VECTORS + 1):
        xoff = np.arange(nv, dtype=np.int64) * 2 * lanes
        dst = np.zeros(TILE_CHANNELS * nv * lanes)
        ooff = np.arange(nv, dtype=np.int64) * lanes
        tile(lanes, nv, x, np.concatenate([xoff, np.zeros(MAX_VECTORS - nv, np.int64)]), taps, w, 0,
             direct_tile.scratch(np.float64), np.concatenate([ooff, np.zeros(MAX_VECTORS - nv, np.int64)]),
             dst, nv * lanes, TILE_CHANNELS, bias, 0, False)
        for j in range(nv):
            window = np.stack([x[xoff[j] + t: xoff[j] + t + lanes] for t in taps])  # (taps, lanes)
            expect = w.T @ window
            got = dst.reshape(TILE_CHANNELS, nv, lanes)[:, j]
            np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-12)


def test_rows_choose_the_vector_width_that_wastes_least():
    if not direct_tile.WIDE:
        assert direct_tile.lanes_for(32, np.float32) == 8 and direct_tile.vectors_per_tile() == 3
        assert direct_tile.channel_vectors_per_tile() == 1
        return
    assert direct_tile.lanes_for(16, np.float32) == 16
    assert direct_tile.lanes_for(32, np.float32) == 16
    assert direct_tile.lanes_for(8, np.float32) == 8  # a 16-lane vector would be half empty
    assert direct_tile.lanes_for(12, np.float32) == 16  # 16 lanes for 12 outputs, as two of 8 would
    assert direct_tile.lanes_for(8, np.float64) == 8
    assert direct_tile.lanes_for(4, np.float64) == 4
    assert direct_tile.vectors_per_tile() == MAX_VECTORS
    assert direct_tile.channel_vectors_per_tile() == direct_tile.MAX_CHANNEL_VECTORS


def test_the_direct_kernels_take_only_the_shapes_where_they_pay():
    f32, f64 = np.float32, np.float64
    assert direct.suits(800, 32, 16, 16, 256, f32)  # CIFAR10-quick conv2
    assert direct.suits(800, 64, 8, 8, 64, f32)  # its conv3: rows of 8, 64 channels
    assert not direct.suits(direct.MIN_TAPS - 1, 32, 16, 16, 256, f32)  # too few taps per output
    assert not direct.suits(800, 5, 16, 4, 64, f32)  # 5 channels, rows of 4: most lanes empty either way
    assert not direct.suits(800, 12, 12, 12, 64, f64)  # a transposed pass over mostly zeros
    assert not direct.suits(800, 32, 16, 16, 256, np.int32)
    assert direct.suits(363, 96, 55, 55, 3025, f32, stride_w=4)  # AlexNet conv1: channel tiles
    assert not direct.suits(800, 5, 16, 4, 64, f32, stride_w=2)  # rows of 4, 5 channels: GEMM


def test_cifar10_quick_and_lenet_take_the_direct_kernels_where_they_measured_faster():
    from engine.kernels.cpu.conv import ColumnPlan

    def plan(channels, size, kernel, pad):
        out = size + 2 * pad - kernel + 1
        return ColumnPlan(channels, (size, size), (out, out), (kernel,) * 2, (pad,) * 2, (1, 1), (1, 1),
                          channels * kernel * kernel, False)

    f32 = np.float32
    cifar_conv2, cifar_conv3, lenet_conv2 = plan(32, 16, 5, 2), plan(32, 8, 5, 2), plan(20, 12, 5, 0)
    # (input channels, output channels per group, group, output size): forward, then bottom gradient
    assert cifar_conv2._direct_suits(32, 32, 1, (16, 16), 1, f32)
    assert cifar_conv2._direct_suits(32, 32, 1, (16, 16), 1, f32)  # 32 top channels into 32
    assert cifar_conv3._direct_suits(32, 64, 1, (8, 8), 1, f32)
    assert cifar_conv3._direct_suits(64, 32, 1, (8, 8), 1, f32)
    assert lenet_conv2._direct_suits(20, 50, 1, (8, 8), 1, f32)  # 500 taps
    assert not lenet_conv2._direct_suits(50, 20, 1, (12, 12), 1, f32)  # 2.25x the GEMM's work
    if direct_tile.WIDE:  # rows of 16 fill a 512-bit vector; rows of 8 half of one
        assert direct._row_work(32, 16, 16, f32) <= direct._channel_work(32, 16, 16, f32)
        assert direct._channel_work(64, 8, 8, f32) < direct._row_work(64, 8, 8, f32)


def _weight_gradient_reference(values, src, group, kernel, pad, stride, dilation, out_hw):
    """sum over images of values[b] @ im2col(src[b])^T per group, by numpy."""
    n, c = src.shape[:2]
    (kh, kw), (ph, pw), (sh, sw), (dh, dw), (ho, wo) = kernel, pad, stride, dilation, out_hw
    padded = np.pad(src, ((0, 0), (0, 0), (ph, ph + sh * ho), (pw, pw + sw * wo)))
    cols = np.empty((n, c, kh, kw, ho, wo), src.dtype)
    for ky in range(kh):
        for kx in range(kw):
            cols[:, :, ky, kx] = padded[:, :, ky * dh: ky * dh + sh * ho: sh, kx * dw: kx * dw + sw * wo: sw]
    m, cg = values.shape[1], c // group
    cols = cols.reshape(n, group, cg * kh * kw, ho * wo)
    vals = values.reshape(n, group, m // group, ho * wo)
    return np.einsum("bgmp,bgkp->gmk", vals, cols).reshape(m, cg, kh, kw)


@pytest.mark.parametrize("vectors", [1, direct_tile.MAX_CHANNEL_VECTORS])  # 16 vector registers, or 32
@pytest.mark.parametrize("bits", direct_tile.WIDTHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("outputs, group, kernel, pad, stride, dilation, size", [
    (20, 1, (5, 5), (0, 0), (1, 1), (1, 1), (13, 11)),  # channels not a multiple of the lanes
    (40, 2, (3, 3), (1, 1), (2, 1), (1, 1), (9, 10)),  # groups, row stride, three vectors of 8 channels
    (6, 1, (3, 2), (2, 1), (1, 2), (2, 1), (8, 9)),  # rectangular kernel, width stride, dilation
    (70, 1, (1, 3), (0, 1), (1, 1), (1, 1), (1, 17)),  # 1-D, five vectors of 16 channels
])
def test_direct_weight_gradient_matches_im2col(vectors, bits, dtype, outputs, group, kernel, pad, stride,
                                               dilation, size, monkeypatch):
    lanes = bits // 8 // np.dtype(dtype).itemsize
    monkeypatch.setattr(direct_tile, "lanes_for", lambda width, dt: lanes)
    monkeypatch.setattr(direct_tile, "channel_vectors_per_tile", lambda: vectors)
    rng = np.random.default_rng(5)
    n, c = 3, 2 * group
    out_hw = tuple((s + 2 * p - (d * (k - 1) + 1)) // st + 1
                   for s, k, p, st, d in zip(size, kernel, pad, stride, dilation, strict=True))
    src = rng.normal(size=(n, c, *size)).astype(dtype)
    values = rng.normal(size=(n, outputs, *out_hw)).astype(dtype)
    start = rng.normal(size=(outputs, c // group, *kernel)).astype(dtype)
    wd = start.copy()
    direct_weights.accumulate(values, src, group, wd, out_hw, kernel, pad, stride, dilation)
    expect = start + _weight_gradient_reference(values.astype(np.float64), src.astype(np.float64), group,
                                                kernel, pad, stride, dilation, out_hw)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(wd, expect, rtol=tol, atol=tol)


def test_the_direct_weight_gradient_takes_only_the_shapes_where_it_pays():
    f32 = np.float32
    assert direct_weights.suits(32, 800, 256, f32)  # CIFAR10-quick conv2
    assert direct_weights.suits(32, 75, 1024, f32)  # its conv1: 80 of 75 taps computed
    assert direct_weights.suits(50, 500, 64, f32)  # LeNet conv2
    assert not direct_weights.suits(20, 25, 576, f32)  # LeNet conv1: 32 of 25 taps, 24 of 20 channels
    assert not direct_weights.suits(32, 800, direct_weights.MIN_POSITIONS - 1, f32)
    assert not direct_weights.suits(32, 800, 256, np.int32)
