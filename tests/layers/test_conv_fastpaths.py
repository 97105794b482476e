"""The fused CPU convolution path (engine.kernels.cpu.conv: im2col and GEMM per image across
threads) against the generic per-chunk path, on awkward geometries, for Convolution and
Deconvolution; the per-thread BLAS binding; and the pooling kernels against direct references."""

import numba
import numpy as np
import pytest

import engine.nn.vision_conv as vc
from engine.blob import Blob
from engine.kernels.cpu import blas
from engine.kernels.cpu.conv import MODE_1X1, MODE_2D, MODE_2D_UNIT, MODE_3D, ColumnPlan
from engine.layer import create_layer
from tests.layers.helpers import layer_param, make_blobs

FILLERS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'

# (convolution_param body, bottom shape): stride 2, dilation 2, pad > kernel/2, rectangular,
# groups, 1x1 (plain and strided), 1-D, 3-D
GEOMETRIES = [
    ("num_output: 4 kernel_size: 3 stride: 2", (3, 2, 7, 8)),
    ("num_output: 3 kernel_size: 3 dilation: 2 pad: 1", (2, 2, 8, 7)),
    ("num_output: 2 kernel_size: 3 pad: 2", (2, 3, 5, 5)),
    ("num_output: 3 kernel_h: 2 kernel_w: 4 stride_h: 1 stride_w: 3 pad_h: 1 pad_w: 3", (2, 2, 6, 9)),
    ("num_output: 4 kernel_size: 3 group: 2 pad: 1 stride: 2", (3, 4, 7, 6)),
    ("num_output: 5 kernel_size: 1", (3, 3, 4, 5)),
    ("num_output: 6 kernel_size: 1 group: 3 bias_term: false", (2, 6, 3, 4)),
    ("num_output: 4 kernel_size: 1 stride: 2", (3, 2, 5, 6)),
    ("num_output: 2 kernel_size: 3 pad: 1 stride: 2", (3, 2, 9)),
    ("num_output: 2 kernel_size: 2 pad: 1 dilation: 2", (2, 2, 4, 5, 4)),
    ("num_output: 4 kernel_size: 2 stride: 2 group: 2", (3, 2, 4, 6, 5)),
    ("num_output: 4 kernel_size: 3 pad: 1", (5, 3, 6, 6)),
]


def _pass(kind, body, shape, fused: bool, monkeypatch, dtype=np.float64):
    """Forward + backward through a fresh layer with a fixed seed; (top, bottom diff, param diffs)."""
    with monkeypatch.context() as patch:
        if not fused:
            patch.setattr(vc._BaseConvolution, "_column_plan", lambda self, *blobs: None)
        return _run(kind, body, shape, dtype)


def _run(kind, body, shape, dtype):
    layer = create_layer(layer_param(
        f'name: "conv" type: "{kind}" convolution_param {{ {body} {FILLERS} }}'))
    rng = np.random.default_rng(7)
    bottom = make_blobs([shape], rng, dtype=dtype)
    top = Blob(dtype=dtype)
    layer.setup(bottom, [top])
    for blob, value in zip(layer.blobs, (0.25, -0.5), strict=False):
        blob.data[...] = rng.normal(size=blob.shape)
        blob.diff[...] = value  # param gradients must accumulate onto this
    layer.forward(bottom, [top])
    top.diff[...] = rng.normal(size=top.shape)
    bottom[0].diff[...] = 99.0  # the bottom gradient must be overwritten
    layer.backward([top], [True], bottom)
    return top.data.copy(), bottom[0].diff.copy(), [b.diff.copy() for b in layer.blobs], layer


def _assert_same(a, b, rtol):
    top_a, bd_a, pd_a, _ = a
    top_b, bd_b, pd_b, _ = b
    assert np.abs(top_a).max() > 0 and np.abs(bd_a).max() > 0
    np.testing.assert_allclose(top_b, top_a, rtol=rtol, atol=rtol)
    assert not np.any(bd_b == 99.0)
    np.testing.assert_allclose(bd_b, bd_a, rtol=rtol, atol=rtol)
    for x, y in zip(pd_a, pd_b, strict=True):
        np.testing.assert_allclose(y, x, rtol=rtol, atol=rtol)


def test_the_bundled_blas_is_bound_where_numpy_comes_from_its_wheel():
    # the project installs numpy from PyPI wheels, which bundle it: the fast path must be active
    assert blas.available(), "NumPy's bundled OpenBLAS was not found; the CPU convolution would be slow"


@pytest.mark.parametrize("kind", ["Convolution", "Deconvolution"])
@pytest.mark.parametrize("body, shape", GEOMETRIES)
def test_fused_conv_matches_the_generic_path(kind, body, shape, monkeypatch):
    generic = _pass(kind, body, shape, False, monkeypatch)
    fused = _pass(kind, body, shape, True, monkeypatch)
    for blob_a, blob_b in zip(generic[3].blobs, fused[3].blobs, strict=True):
        np.testing.assert_array_equal(blob_a.data, blob_b.data)
    _assert_same(generic, fused, 1e-12)


@pytest.mark.parametrize("body, shape", [
    ("num_output: 4 kernel_size: 3 pad: 1", (3, 5, 6, 6)),
    ("num_output: 4 kernel_size: 3 pad: 1 stride: 2 group: 2", (2, 6, 7, 6)),
    ("num_output: 2 kernel_size: 2 pad: 1", (2, 3, 4, 5, 4)),
])
def test_conv_backward_in_blocks_of_one_channel_matches_the_generic_path(body, shape, monkeypatch):
    import engine.kernels.cpu.conv as kc

    generic = _pass("Convolution", body, shape, False, monkeypatch)
    monkeypatch.setattr(kc, "BLOCK_BYTES", 1)  # every image channel its own block
    blocked = _pass("Convolution", body, shape, True, monkeypatch)
    _assert_same(generic, blocked, 1e-12)


@pytest.mark.parametrize("kind", ["Convolution", "Deconvolution"])
def test_fused_conv_in_float32(kind, monkeypatch):
    body, shape = "num_output: 4 kernel_size: 3 pad: 1 group: 2", (5, 4, 6, 7)
    _assert_same(_pass(kind, body, shape, False, monkeypatch, np.float32),
                 _pass(kind, body, shape, True, monkeypatch, np.float32), 1e-5)


def test_fused_conv_gives_the_same_values_on_one_thread_and_is_repeatable(monkeypatch):
    body, shape = "num_output: 3 kernel_size: 3 pad: 1 stride: 2", (7, 2, 6, 6)
    many = _pass("Convolution", body, shape, True, monkeypatch)
    again = _pass("Convolution", body, shape, True, monkeypatch)
    for a, b in zip(many[:2] + tuple(many[2]), again[:2] + tuple(again[2]), strict=True):
        np.testing.assert_array_equal(a, b)  # fixed image-to-thread split: bit-for-bit repeatable
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = _pass("Convolution", body, shape, True, monkeypatch)
    finally:
        numba.set_num_threads(before)
    _assert_same(many, one, 1e-12)


def test_column_plan_picks_the_kernel_for_the_geometry():
    def mode(spatial, kernel, pad, stride, dil):
        out = [(s + 2 * p - (d * (k - 1) + 1)) // st + 1
               for s, k, p, st, d in zip(spatial, kernel, pad, stride, dil, strict=True)]
        one = all(k == 1 for k in kernel) and all(s == 1 for s in stride) and not any(pad)
        return ColumnPlan(2, spatial, out, kernel, pad, stride, dil, 2 * int(np.prod(kernel)), one).mode

    assert mode((5, 5), (1, 1), (0, 0), (1, 1), (1, 1)) == MODE_1X1
    assert mode((5, 5), (3, 3), (1, 1), (1, 1), (1, 1)) == MODE_2D_UNIT
    assert mode((9,), (3,), (1,), (1,), (1,)) == MODE_2D_UNIT
    assert mode((5, 5), (3, 3), (1, 1), (2, 1), (1, 1)) == MODE_2D
    assert mode((5, 5), (1, 1), (0, 0), (2, 2), (1, 1)) == MODE_2D
    assert mode((4, 5, 6), (2, 2, 2), (0, 0, 0), (1, 1, 1), (1, 1, 1)) == MODE_3D
    with pytest.raises(ValueError, match="3 spatial axes"):
        ColumnPlan(1, (2, 2, 2, 2), (2, 2, 2, 2), (1,) * 4, (0,) * 4, (1,) * 4, (1,) * 4, 1, True)


def test_without_the_blas_binding_the_generic_path_runs(monkeypatch):
    monkeypatch.setattr(blas, "LIBRARY", None)
    layer = create_layer(layer_param('name: "c" type: "Convolution" convolution_param { num_output: 2 '
                                     'kernel_size: 3 }'))
    bottom, top = make_blobs([(1, 1, 4, 4)], np.random.default_rng(0)), Blob()
    layer.setup(bottom, [top])
    assert layer._column_plan() is None
    layer.forward(bottom, [top])
    assert top.shape == (1, 2, 2, 2) and np.isfinite(top.data).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_blas_gemm_on_flat_buffers_with_offsets(dtype, trans_a, trans_b):
    from numba import njit

    @njit
    def call(ta, tb, m, n, k, a, ao, b, bo, beta, c, co):
        prev = blas.single_threaded()
        blas.gemm(ta, tb, m, n, k, a, ao, b, bo, beta, c, co)
        blas.restore(prev)

    rng = np.random.default_rng(3)
    m, n, k = 3, 5, 4
    a = rng.normal(size=(k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.normal(size=(n, k) if trans_b else (k, n)).astype(dtype)
    c0 = rng.normal(size=(m, n)).astype(dtype)
    flat_a, flat_b = np.concatenate([[7.0], a.ravel()]).astype(dtype), np.concatenate([[7.0] * 2, b.ravel()])
    flat_b = flat_b.astype(dtype)
    flat_c = np.concatenate([[7.0] * 3, c0.ravel(), [7.0]]).astype(dtype)
    expect = (a.T if trans_a else a) @ (b.T if trans_b else b)
    call(trans_a, trans_b, m, n, k, flat_a, 1, flat_b, 2, 1.0, flat_c, 3)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(flat_c[3:-1].reshape(m, n), expect + c0, rtol=tol, atol=tol)
    assert flat_c[0] == flat_c[-1] == 7.0  # nothing written outside the output
    call(trans_a, trans_b, m, n, k, flat_a, 1, flat_b, 2, 0.0, flat_c, 3)
    np.testing.assert_allclose(flat_c[3:-1].reshape(m, n), expect, rtol=tol, atol=tol)


def test_max_pooling_allocates_its_argmax_buffer_on_the_first_forward_only():
    layer = create_layer(layer_param('name: "pool" type: "Pooling" pooling_param { pool: MAX kernel_size: 2 '
                                     'stride: 2 }'))
    bottom = make_blobs([(2, 3, 4, 4)], np.random.default_rng(0), dtype=np.float64)
    top = Blob(dtype=np.float64)
    layer.setup(bottom, [top])
    layer.reshape(bottom, [top])
    assert getattr(layer, "mask", None) is None  # shape-only work allocates nothing
    layer.forward(bottom, [top])
    first = layer.mask
    assert first.shape == (6, 2, 2) and first.min() >= 0
    layer.forward(bottom, [top])
    assert layer.mask is first  # kept while the shape stays
    bottom[0].reshape((1, 3, 6, 6))
    bottom[0].data[...] = np.arange(108.0).reshape(1, 3, 6, 6)
    layer.forward(bottom, [top])
    assert layer.mask.shape == (3, 3, 3)
    top.diff[...] = 1.0
    layer.backward([top], [True], bottom)
    # the max of each 2x2 window is its bottom-right element of an increasing ramp
    np.testing.assert_array_equal(bottom[0].diff[0, 0, 1::2, 1::2], np.ones((3, 3)))
    assert bottom[0].diff.sum() == 9 * 3


@pytest.mark.parametrize("k, s, p, size", [(3, 2, 0, 9), (2, 2, 1, 6), (3, 1, 1, 5), (4, 3, 2, 8),
                                          (1, 3, 0, 5)])
def test_max_pooling_kernel_matches_a_direct_reference_with_ties(k, s, p, size):
    from engine.kernels.cpu.pooling import FLT_MAX, max_forward
    from engine.nn.vision_pool import pooled_size

    rng = np.random.default_rng(k * 10 + s)
    x = rng.integers(0, 3, size=(4, size, size)).astype(np.float32)  # many ties
    x[0, 0, 0] = np.nan  # never wins a comparison, as in Caffe
    o = pooled_size(size, k, p, s, True)
    top = np.empty((4, o, o), np.float32)
    mask = np.empty((4, o, o), np.int64)
    max_forward(x, k, k, s, s, p, p, top, mask)
    for pl in range(4):
        for oy in range(o):
            for ox in range(o):
                best, arg = -FLT_MAX, -1
                for h in range(max(oy * s - p, 0), min(oy * s - p + k, size)):
                    for w in range(max(ox * s - p, 0), min(ox * s - p + k, size)):
                        if x[pl, h, w] > best:
                            best, arg = x[pl, h, w], h * size + w
                assert top[pl, oy, ox] == np.float32(best) and mask[pl, oy, ox] == arg


@pytest.mark.parametrize("k, s, p, size", [(3, 2, 0, 9), (3, 2, 1, 7), (4, 3, 2, 8)])
def test_ave_pooling_kernels_match_a_direct_float32_reference(k, s, p, size):
    from engine.kernels.cpu.pooling import ave_backward, ave_forward
    from engine.nn.vision_pool import pooled_size

    rng = np.random.default_rng(k + s + p)
    x = rng.normal(size=(3, size, size)).astype(np.float32)
    o = pooled_size(size, k, p, s, True)
    top = np.empty((3, o, o), np.float32)
    ave_forward(x, k, k, s, s, p, p, top)
    td = rng.normal(size=top.shape).astype(np.float32)
    bd = np.full_like(x, np.nan)
    ave_backward(td, k, k, s, s, p, p, bd)
    ref_bd = np.zeros_like(x)
    for pl in range(3):
        for oy in range(o):
            for ox in range(o):
                hs, ws = oy * s - p, ox * s - p
                he, we = min(hs + k, size + p), min(ws + k, size + p)
                acc = np.float32(0)
                g = np.float32(td[pl, oy, ox] / np.float32((he - hs) * (we - ws)))
                for h in range(max(hs, 0), min(he, size)):
                    for w in range(max(ws, 0), min(we, size)):
                        acc = np.float32(acc + x[pl, h, w])
                        ref_bd[pl, h, w] = np.float32(ref_bd[pl, h, w] + g)
                assert top[pl, oy, ox] == np.float32(acc / np.float32((he - hs) * (we - ws)))
    np.testing.assert_array_equal(bd, ref_bd)


@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("use_binding", [True, False])
def test_parallel_gemm_splits_rows_and_accumulates(trans_a, trans_b, use_binding, monkeypatch):
    if not use_binding:
        monkeypatch.setattr(blas, "LIBRARY", None)  # the numpy fallback
    rng = np.random.default_rng(4)
    m, n, k = 67, 5, 9  # 67 rows: four parts of uneven size on up to 4 threads
    a = rng.normal(size=(k, m) if trans_a else (m, k))
    b = rng.normal(size=(n, k) if trans_b else (k, n))
    expect = (a.T if trans_a else a) @ (b.T if trans_b else b)
    c = np.full((m, n), np.nan)
    blas.parallel_gemm(trans_a, trans_b, a, b, 0.0, c)  # beta 0 overwrites, NaN included
    np.testing.assert_allclose(c, expect, rtol=1e-12, atol=1e-12)
    blas.parallel_gemm(trans_a, trans_b, a, b, 1.0, c)
    np.testing.assert_allclose(c, 2 * expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["Convolution", "Deconvolution"])
def test_blobs_of_another_dtype_than_the_weights_take_the_generic_path(kind):
    # a float32 top beside float64 weights (layers used by hand): the kernels are compiled per dtype
    layer = create_layer(layer_param(f'name: "c" type: "{kind}" convolution_param {{ num_output: 2 '
                                     f'kernel_size: 3 stride: 2 {FILLERS} }}'))
    bottom = make_blobs([(2, 1, 1, 1)], np.random.default_rng(0), dtype=np.float64)
    top = Blob(dtype=np.float32)
    layer.setup(bottom, [top])
    assert layer._column_plan(bottom[0], top) is None and layer._column_plan(bottom[0]) is not None
    layer.forward(bottom, [top])
    top.diff[...] = 1
    layer.backward([top], [True], bottom)
    assert np.isfinite(layer.blobs[0].diff).all() and np.abs(layer.blobs[0].diff).max() < 10


@pytest.mark.parametrize("kind", ["Convolution", "Deconvolution"])
@pytest.mark.parametrize("body, shape", [("num_output: 2 kernel_size: 2", (0, 3, 4, 4)),  # empty batch
                                         ("num_output: 2 kernel_size: 3 stride: 2", (2, 1, 1, 1))])
def test_empty_batches_and_outputs_run_through(kind, body, shape):
    layer = create_layer(layer_param(f'name: "c" type: "{kind}" convolution_param {{ {body} {FILLERS} }}'))
    bottom, top = make_blobs([shape], np.random.default_rng(0), dtype=np.float64), Blob(dtype=np.float64)
    layer.setup(bottom, [top])
    layer.forward(bottom, [top])
    top.diff[...] = 1
    layer.backward([top], [True], bottom)
    assert np.isfinite(layer.blobs[0].diff).all() and np.isfinite(bottom[0].diff).all()
    if shape[0] == 0:
        assert not layer.blobs[0].diff.any()  # nothing to add from no images
