"""Convolution, Deconvolution and Im2col: forward against direct loops, gradients, errors."""

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param, make_blobs

FILLERS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'


def conv_layer(body: str, kind: str = "Convolution", extra: str = ""):
    return create_layer(
        layer_param(f'name: "conv" type: "{kind}" {extra} convolution_param {{ {body} {FILLERS} }}')
    )


def run(layer, shape, dtype=np.float64, seed=0):
    bottom = make_blobs([shape], np.random.default_rng(seed), dtype=dtype)
    top = Blob(dtype=dtype)
    layer.setup(bottom, [top])
    layer.forward(bottom, [top])
    return bottom[0], top


def naive_conv(x, w, b, stride, pad, dil, group):
    """Direct convolution over any number of spatial axes, independent of im2col."""
    n, c = x.shape[:2]
    m = w.shape[0]
    ks = w.shape[2:]
    nd = len(ks)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pad])
    out_sz = [(x.shape[2 + a] + 2 * pad[a] - dil[a] * (ks[a] - 1) - 1) // stride[a] + 1 for a in range(nd)]
    y = np.zeros((n, m, *out_sz))
    cg, mg = c // group, m // group
    for o in range(m):
        g = o // mg
        for pos in np.ndindex(*out_sz):
            for kpos in np.ndindex(*ks):
                idx = tuple(pos[a] * stride[a] + kpos[a] * dil[a] for a in range(nd))
                patch = xp[(slice(None), slice(g * cg, (g + 1) * cg), *idx)]
                y[(slice(None), o, *pos)] += patch @ w[(o, slice(None), *kpos)]
        if b is not None:
            y[:, o] += b[o]
    return y


@pytest.mark.parametrize(
    "body, shape, stride, pad, dil, group",
    [
        ("num_output: 4 kernel_size: 3", (2, 3, 6, 5), (1, 1), (0, 0), (1, 1), 1),
        ("num_output: 4 kernel_h: 3 kernel_w: 2 stride: 2 pad: 1 dilation: 2 group: 2",
         (2, 6, 7, 8), (2, 2), (1, 1), (2, 2), 2),
        ("num_output: 3 kernel_size: 2 kernel_size: 3 stride_h: 1 stride_w: 3 pad_h: 2 pad_w: 0",
         (1, 2, 5, 9), (1, 3), (2, 0), (1, 1), 1),
        ("num_output: 4 kernel_size: 3 group: 4 pad: 1", (2, 4, 5, 5), (1, 1), (1, 1), (1, 1), 4),
        ("num_output: 5 kernel_size: 1 bias_term: false", (2, 3, 4, 3), (1, 1), (0, 0), (1, 1), 1),
    ],
)
def test_conv_forward_matches_direct_loops(body, shape, stride, pad, dil, group):
    layer = conv_layer(body)
    x, top = run(layer, shape)
    bias = layer.blobs[1].data if len(layer.blobs) > 1 else None
    ref = naive_conv(x.data, layer.blobs[0].data, bias, stride, pad, dil, group)
    assert top.shape == ref.shape
    np.testing.assert_allclose(top.data, ref, rtol=1e-10, atol=1e-10)


def test_conv_3d_forward_matches_direct_loops():
    layer = conv_layer("num_output: 2 kernel_size: 2 kernel_size: 3 kernel_size: 2 stride: 2 pad: 1 group: 2")
    x, top = run(layer, (1, 4, 4, 5, 3))
    ref = naive_conv(x.data, layer.blobs[0].data, layer.blobs[1].data, (2, 2, 2), (1, 1, 1), (1, 1, 1), 2)
    np.testing.assert_allclose(top.data, ref, rtol=1e-10, atol=1e-10)


def test_conv_4d_spatial_uses_generic_path():
    layer = conv_layer("num_output: 2 kernel_size: 2 pad: 1 stride: 2")
    x, top = run(layer, (1, 2, 3, 3, 2, 3))
    ref = naive_conv(x.data, layer.blobs[0].data, layer.blobs[1].data, (2,) * 4, (1,) * 4, (1,) * 4, 1)
    np.testing.assert_allclose(top.data, ref, rtol=1e-10, atol=1e-10)


def test_conv_float32_and_axis_2():
    layer = conv_layer("num_output: 3 kernel_size: 2 axis: 2")
    x, top = run(layer, (2, 2, 3, 4, 4), dtype=np.float32)
    assert top.shape == (2, 2, 3, 3, 3) and top.dtype == np.float32
    flat = x.data.reshape(4, 3, 4, 4).astype(np.float64)
    ref = naive_conv(flat, layer.blobs[0].data.astype(np.float64), layer.blobs[1].data, (1, 1), (0, 0),
                     (1, 1), 1)
    np.testing.assert_allclose(top.data.reshape(ref.shape), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "body",
    [
        "num_output: 4 kernel_h: 3 kernel_w: 2 stride: 2 pad: 1 group: 2",
        "num_output: 2 kernel_size: 2 dilation: 2 pad_h: 1 pad_w: 0",
        "num_output: 3 kernel_size: 3 stride_h: 2 stride_w: 1 bias_term: false",
        "num_output: 4 kernel_size: 1",
    ],
)
def test_conv_gradient(body):
    layer = conv_layer(body)
    bottom = make_blobs([(2, 4, 5, 4)], np.random.default_rng(1))
    GradientChecker(1e-3, 1e-5).check_gradient(layer, bottom, [Blob(dtype=np.float64)])


def test_conv_gradient_two_bottoms_exhaustive():
    layer = conv_layer("num_output: 2 kernel_size: 2 stride: 2 pad: 1 group: 2")
    bottom = make_blobs([(1, 2, 3, 3), (1, 2, 3, 3)], np.random.default_rng(2))
    top = [Blob(dtype=np.float64), Blob(dtype=np.float64)]
    GradientChecker(1e-3, 1e-5).check_gradient_exhaustive(layer, bottom, top)


def test_conv_param_gradients_accumulate():
    layer = conv_layer("num_output: 2 kernel_size: 2")
    x, top = run(layer, (2, 2, 3, 3))
    top.diff[...] = 1.0
    layer.backward([top], [False], [x])
    first = [p.diff.copy() for p in layer.blobs]
    layer.backward([top], [False], [x])
    for p, f in zip(layer.blobs, first, strict=True):
        np.testing.assert_allclose(p.diff, 2 * f)
    # bias gradient of an all-ones top diff is the number of outputs per channel
    np.testing.assert_allclose(first[1], [2 * 2 * 2] * 2)


def test_deconv_forward_is_scatter_of_weights():
    layer = conv_layer("num_output: 4 kernel_h: 3 kernel_w: 2 stride: 2 pad: 1 group: 2", "Deconvolution")
    x, top = run(layer, (2, 2, 3, 4))
    w, b = layer.blobs[0].data, layer.blobs[1].data
    assert w.shape == (2, 2, 3, 2)
    oh, ow = 2 * (3 - 1) + 3 - 2, 2 * (4 - 1) + 2 - 2
    assert top.shape == (2, 4, oh, ow)
    full = np.zeros((2, 4, oh + 2, ow + 2))
    for n in range(2):
        for ci in range(2):
            g = ci  # one input channel per group
            for i in range(3):
                for j in range(4):
                    for co in range(2):
                        patch = full[n, g * 2 + co, 2 * i : 2 * i + 3, 2 * j : 2 * j + 2]
                        patch += x.data[n, ci, i, j] * w[ci, co]
    ref = full[:, :, 1 : 1 + oh, 1 : 1 + ow] + b[None, :, None, None]
    np.testing.assert_allclose(top.data, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "body",
    [
        "num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2",
        "num_output: 3 kernel_size: 2 dilation: 2",
        "num_output: 2 kernel_size: 4 stride: 2 pad: 1 group: 2",
        "num_output: 3 kernel_size: 1 bias_term: false",
    ],
)
def test_deconv_gradient(body):
    layer = conv_layer(body, "Deconvolution")
    bottom = make_blobs([(2, 2, 3, 3)], np.random.default_rng(3))
    GradientChecker(1e-3, 1e-5).check_gradient(layer, bottom, [Blob(dtype=np.float64)])


def test_im2col_layer_layout_and_gradient():
    text = 'name: "i" type: "Im2col" convolution_param { kernel_size: 2 stride: 1 pad: 1 }'
    layer = create_layer(layer_param(text))
    x, top = run(layer, (1, 2, 2, 3))
    assert top.shape == (1, 8, 3, 4)
    xp = np.pad(x.data, ((0, 0), (0, 0), (1, 1), (1, 1)))
    # row (c, ki, kj), column (oy, ox) holds padded input[c, oy + ki, ox + kj]
    for c in range(2):
        for ki in range(2):
            for kj in range(2):
                expected = xp[0, c, ki : ki + 3, kj : kj + 4]
                np.testing.assert_array_equal(top.data[0, c * 4 + ki * 2 + kj], expected)
    GradientChecker(1e-3, 1e-5).check_gradient_exhaustive(layer, [x], [top])


def test_weights_from_layer_param_are_kept_and_shape_checked():
    param = layer_param('name: "c" type: "Convolution" convolution_param { num_output: 2 kernel_size: 1 }')
    w = param.blobs.add()
    w.shape.dim.extend([2, 3, 1, 1])
    w.data.extend([1, 2, 3, 4, 5, 6])
    bias = param.blobs.add()
    bias.shape.dim.extend([2])
    bias.data.extend([0.5, -0.5])
    layer = create_layer(param)
    x, top = run(layer, (1, 3, 2, 2))
    np.testing.assert_allclose(top.data[0, 0], x.data[0, 0] + 2 * x.data[0, 1] + 3 * x.data[0, 2] + 0.5)
    assert layer.blobs[0].dtype == np.float64
    del param.blobs[1].shape.dim[:]
    param.blobs[1].shape.dim.extend([3])
    param.blobs[1].data.append(0.0)
    with pytest.raises(WiringError, match="incorrect bias shape"):
        run(create_layer(param), (1, 3, 2, 2))


@pytest.mark.parametrize(
    "body, shape, message",
    [
        ("num_output: 4 kernel_size: 3 group: 2", (1, 3, 5, 5), "group 2 must divide"),
        ("num_output: 3 kernel_size: 3 group: 2", (1, 4, 5, 5), "multiple of group"),
        ("num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3", (1, 2, 5, 5), "not both"),
        ("num_output: 2 kernel_size: 3 pad: 1 pad_h: 1", (1, 2, 5, 5), "not both"),
        ("num_output: 2 kernel_size: 3 stride: 1 stride_w: 2", (1, 2, 5, 5), "not both"),
        ("num_output: 2 kernel_h: 3 kernel_w: 3", (1, 2, 5, 5, 5), "only be used for 2D"),
        ("num_output: 2 kernel_size: 3 kernel_size: 3 kernel_size: 3", (1, 2, 5, 5), "once per spatial"),
        ("num_output: 2 kernel_h: 3", (1, 2, 5, 5), "nonzero"),
        ("kernel_size: 3", (1, 2, 5, 5), "num_output"),
    ],
)
def test_conv_errors_name_the_layer(body, shape, message):
    layer = conv_layer(body)
    with pytest.raises(WiringError, match=message) as info:
        run(layer, shape)
    assert info.value.layer == "conv" and "'conv'" in str(info.value)


def test_conv_rejects_channel_change_on_reshape():
    layer = conv_layer("num_output: 2 kernel_size: 1")
    x, top = run(layer, (1, 3, 2, 2))
    x.reshape((1, 4, 2, 2))
    with pytest.raises(WiringError, match="channels"):
        layer.forward([x], [top])
