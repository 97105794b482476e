"""Eltwise, Bias, Scale, Reduction, ArgMax and MVN against numpy, with gradient checks."""

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param, make_blobs


def make(text: str):
    return create_layer(layer_param(text))


def run(layer, bottom, top=None):
    top = top if top is not None else [Blob(dtype=np.float64)]
    layer.setup(bottom, top)
    layer.forward(bottom, top)
    return top


def checker() -> GradientChecker:
    return GradientChecker(1e-2, 1e-3)


# -- Eltwise


def test_eltwise_forward_ops():
    rng = np.random.default_rng(0)
    bottom = make_blobs([(2, 3, 2)] * 3, rng)
    a, b, c = (x.data for x in bottom)
    (top,) = run(make('name: "e" type: "Eltwise" eltwise_param { operation: PROD }'), bottom)
    np.testing.assert_allclose(top.data, a * b * c, rtol=1e-12)
    (top,) = run(make('name: "e" type: "Eltwise"'), bottom)
    np.testing.assert_allclose(top.data, a + b + c, rtol=1e-12)
    (top,) = run(make('name: "e" type: "Eltwise" eltwise_param { coeff: 1 coeff: -0.5 coeff: 2 }'), bottom)
    np.testing.assert_allclose(top.data, a - 0.5 * b + 2 * c, rtol=1e-12)
    (top,) = run(make('name: "e" type: "Eltwise" eltwise_param { operation: MAX }'), bottom)
    np.testing.assert_array_equal(top.data, np.maximum(np.maximum(a, b), c))


def test_eltwise_max_ties_route_like_caffe():
    bottom = [Blob((3,), dtype=np.float64) for _ in range(3)]
    bottom[0].data[...] = [1, 5, 2]
    bottom[1].data[...] = [1, 3, 2]
    bottom[2].data[...] = [0, 5, 2]
    layer = make('name: "e" type: "Eltwise" eltwise_param { operation: MAX }')
    (top,) = run(layer, bottom)
    top.diff[...] = [10, 20, 30]
    layer.backward([top], [True] * 3, bottom)
    # A 0/1 tie goes to bottom 1; a later bottom must be strictly larger to win.
    np.testing.assert_array_equal(bottom[0].diff, [0, 20, 0])
    np.testing.assert_array_equal(bottom[1].diff, [10, 0, 30])
    np.testing.assert_array_equal(bottom[2].diff, [0, 0, 0])


@pytest.mark.parametrize(
    "param",
    [
        "operation: PROD",
        "operation: PROD stable_prod_grad: false",
        "operation: SUM",
        "operation: SUM coeff: 1 coeff: -0.5 coeff: 2",
        "operation: MAX",
    ],
)
def test_eltwise_gradient(param):
    bottom = make_blobs([(2, 3, 2)] * 3, np.random.default_rng(1))
    layer = make(f'name: "e" type: "Eltwise" eltwise_param {{ {param} }}')
    checker().check_gradient_eltwise(layer, bottom, [Blob(dtype=np.float64)])


def test_eltwise_errors():
    bottom = [Blob((2, 3), dtype=np.float64), Blob((2, 3), dtype=np.float64)]
    with pytest.raises(WiringError, match="'e'.*one coefficient per bottom"):
        run(make('name: "e" type: "Eltwise" eltwise_param { coeff: 1 }'), bottom)
    with pytest.raises(WiringError, match="'e'.*summation"):
        run(make('name: "e" type: "Eltwise" eltwise_param { operation: PROD coeff: 1 coeff: 2 }'), bottom)
    with pytest.raises(WiringError, match="'e'.*shape"):
        run(make('name: "e" type: "Eltwise"'), [bottom[0], Blob((3, 2), dtype=np.float64)])


# -- Bias

BROADCASTS = [
    # (param text, operand shape, broadcast shape of operand against bottom (2, 3, 4))
    ("", (3,), (1, 3, 1)),
    ("axis: 0 num_axes: 2", (2, 3), (2, 3, 1)),
    ("axis: -1", (4,), (1, 1, 4)),
    ("axis: 1 num_axes: -1", (3, 4), (1, 3, 4)),
    ("num_axes: 0", (), ()),
    ("axis: 0 num_axes: -1", (2, 3, 4), (2, 3, 4)),
]


@pytest.mark.parametrize(("param", "shape", "bshape"), BROADCASTS)
def test_bias_learned_forward_and_gradient(param, shape, bshape):
    rng = np.random.default_rng(2)
    bottom = make_blobs([(2, 3, 4)], rng)
    text = f'name: "b" type: "Bias" bias_param {{ {param} filler {{ type: "gaussian" std: 1 }} }}'
    layer = make(text)
    (top,) = run(layer, bottom)
    assert layer.blobs[0].shape == shape
    np.testing.assert_allclose(top.data, bottom[0].data + layer.blobs[0].data.reshape(bshape), rtol=1e-12)
    checker().check_gradient_exhaustive(make(text), make_blobs([(2, 3, 4)], rng), [Blob(dtype=np.float64)])


@pytest.mark.parametrize(("param", "shape", "bshape"), BROADCASTS)
def test_bias_second_bottom_forward_and_gradient(param, shape, bshape):
    rng = np.random.default_rng(3)
    bottom = make_blobs([(2, 3, 4), shape], rng)
    layer = make(f'name: "b" type: "Bias" bias_param {{ {param} }}')
    (top,) = run(layer, bottom)
    assert layer.blobs == []
    np.testing.assert_allclose(top.data, bottom[0].data + bottom[1].data.reshape(bshape), rtol=1e-12)
    checker().check_gradient_exhaustive(layer, bottom, [top])


def test_bias_in_place_and_accumulation():
    rng = np.random.default_rng(4)
    x = make_blobs([(2, 3)], rng)[0]
    original = x.data.copy()
    layer = make('name: "b" type: "Bias" bias_param { filler { type: "constant" value: 0.5 } }')
    layer.setup([x], [x])
    layer.forward([x], [x])
    np.testing.assert_allclose(x.data, original + 0.5)
    x.diff[...] = 1
    layer.backward([x], [True], [x])
    layer.backward([x], [True], [x])
    np.testing.assert_allclose(layer.blobs[0].diff, [4, 4, 4])  # 2 items, twice


def test_bias_shape_errors():
    bottom = [Blob((2, 3), dtype=np.float64), Blob((4,), dtype=np.float64)]
    with pytest.raises(WiringError, match="'b'.*dimension mismatch"):
        run(make('name: "b" type: "Bias"'), bottom)
    with pytest.raises(WiringError, match="'b'.*extends past"):
        run(make('name: "b" type: "Bias" bias_param { axis: 1 num_axes: 2 }'), bottom[:1])


# -- Scale


@pytest.mark.parametrize(("param", "shape", "bshape"), BROADCASTS)
def test_scale_learned_forward_and_gradient(param, shape, bshape):
    rng = np.random.default_rng(5)
    bottom = make_blobs([(2, 3, 4)], rng)
    text = f'name: "s" type: "Scale" scale_param {{ {param} filler {{ type: "gaussian" std: 1 }} }}'
    layer = make(text)
    (top,) = run(layer, bottom)
    assert layer.blobs[0].shape == shape
    np.testing.assert_allclose(top.data, bottom[0].data * layer.blobs[0].data.reshape(bshape), rtol=1e-12)
    checker().check_gradient_exhaustive(make(text), make_blobs([(2, 3, 4)], rng), [Blob(dtype=np.float64)])


@pytest.mark.parametrize(("param", "shape", "bshape"), BROADCASTS)
def test_scale_second_bottom_forward_and_gradient(param, shape, bshape):
    rng = np.random.default_rng(6)
    bottom = make_blobs([(2, 3, 4), shape], rng)
    layer = make(f'name: "s" type: "Scale" scale_param {{ {param} }}')
    (top,) = run(layer, bottom)
    np.testing.assert_allclose(top.data, bottom[0].data * bottom[1].data.reshape(bshape), rtol=1e-12)
    checker().check_gradient_exhaustive(layer, bottom, [top])


def test_scale_default_filler_is_one():
    bottom = make_blobs([(2, 3)], np.random.default_rng(7))
    layer = make('name: "s" type: "Scale"')
    (top,) = run(layer, bottom)
    assert (layer.blobs[0].data == 1).all()
    np.testing.assert_array_equal(top.data, bottom[0].data)


@pytest.mark.parametrize("two_bottoms", [False, True])
def test_scale_with_bias_forward_and_gradient(two_bottoms):
    rng = np.random.default_rng(8)
    shapes = [(2, 3, 2), (3,)] if two_bottoms else [(2, 3, 2)]
    text = """name: "s" type: "Scale" scale_param { bias_term: true
        filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 } }"""
    bottom = make_blobs(shapes, rng)
    layer = make(text)
    (top,) = run(layer, bottom)
    assert len(layer.blobs) == (1 if two_bottoms else 2)
    bias = layer.blobs[-1].data.reshape(1, 3, 1)
    scale = (bottom[1] if two_bottoms else layer.blobs[0]).data.reshape(1, 3, 1)
    np.testing.assert_allclose(top.data, bottom[0].data * scale + bias, rtol=1e-12)
    checker().check_gradient_exhaustive(make(text), make_blobs(shapes, rng), [Blob(dtype=np.float64)])


def test_scale_in_place_matches_out_of_place():
    rng = np.random.default_rng(9)
    text = """name: "s" type: "Scale" scale_param { bias_term: true
        filler { type: "gaussian" std: 1 } bias_filler { type: "gaussian" std: 1 } }"""
    x = make_blobs([(2, 3, 2)], rng)[0]
    y = Blob(x.shape, dtype=np.float64)
    y.data[...] = x.data
    dy = rng.standard_normal(x.shape)
    out_layer, in_layer = make(text), make(text)
    (top,) = run(out_layer, [x])
    in_layer.setup([y], [y])
    for p_in, p_out in zip(in_layer.blobs, out_layer.blobs, strict=True):
        p_in.data[...] = p_out.data
    in_layer.forward([y], [y])
    np.testing.assert_allclose(y.data, top.data, rtol=1e-12)
    top.diff[...] = dy
    y.diff[...] = dy
    out_layer.backward([top], [True], [x])
    in_layer.backward([y], [True], [y])
    np.testing.assert_allclose(y.diff, x.diff, rtol=1e-12)
    for p_in, p_out in zip(in_layer.blobs, out_layer.blobs, strict=True):
        np.testing.assert_allclose(p_in.diff, p_out.diff, rtol=1e-12)


def test_scale_param_gradient_accumulates_and_eltwise_case_overwrites():
    rng = np.random.default_rng(10)
    x = make_blobs([(2, 3, 2)], rng)[0]
    layer = make('name: "s" type: "Scale"')
    (top,) = run(layer, [x])
    top.diff[...] = rng.standard_normal(top.shape)
    layer.backward([top], [False], [x])
    once = (top.diff * x.data).sum(axis=(0, 2))
    np.testing.assert_allclose(layer.blobs[0].diff, once, rtol=1e-12)
    layer.backward([top], [False], [x])
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once, rtol=1e-12)
    # When the scale has as many elements as the bottom, Caffe writes the product over the diff.
    layer = make('name: "s" type: "Scale" scale_param { axis: 0 num_axes: -1 }')
    (top,) = run(layer, [x])
    top.diff[...] = 1
    layer.backward([top], [False], [x])
    layer.backward([top], [False], [x])
    np.testing.assert_allclose(layer.blobs[0].diff, x.data, rtol=1e-12)


def test_scale_shape_error():
    bottom = [Blob((2, 3), dtype=np.float64), Blob((2,), dtype=np.float64)]
    with pytest.raises(WiringError, match="'s'.*dimension mismatch"):
        run(make('name: "s" type: "Scale"'), bottom)


# -- Reduction


@pytest.mark.parametrize("op", ["SUM", "ASUM", "SUMSQ", "MEAN"])
@pytest.mark.parametrize(("axis", "coeff"), [(0, 1.0), (1, -2.5), (-1, 0.5)])
def test_reduction_forward_and_gradient(op, axis, coeff):
    rng = np.random.default_rng(11)
    bottom = make_blobs([(2, 3, 2)], rng)
    bottom[0].data[...] += np.sign(bottom[0].data) * 0.1  # keep ASUM away from its kink
    text = f'name: "r" type: "Reduction" reduction_param {{ operation: {op} axis: {axis} coeff: {coeff} }}'
    (top,) = run(make(text), bottom)
    a = axis % 3
    x = bottom[0].data.reshape(int(np.prod(bottom[0].shape[:a])), -1)
    ref = {"SUM": x.sum(1), "ASUM": np.abs(x).sum(1), "SUMSQ": (x**2).sum(1), "MEAN": x.mean(1)}[op] * coeff
    assert top.shape == bottom[0].shape[:a]
    np.testing.assert_allclose(top.data.reshape(-1), ref, rtol=1e-12)
    checker().check_gradient_exhaustive(make(text), bottom, [top])


# -- ArgMax


def argmax_reference(rows: np.ndarray, k: int):
    """Per row: the k largest (value, index) pairs, larger index first among equal values."""
    out = []
    for row in rows:
        pairs = sorted(((v, j) for j, v in enumerate(row)), reverse=True)[:k]
        out.append(pairs)
    return out


def test_argmax_flattened_with_ties():
    bottom = Blob((2, 2, 2), dtype=np.float64)
    bottom.data[...] = np.array([[[1, 3], [3, 0]], [[2, -1], [5, 4]]])
    layer = make('name: "a" type: "ArgMax" argmax_param { top_k: 2 }')
    (top,) = run(layer, [bottom])
    assert top.shape == (2, 1, 2)
    ref = argmax_reference(bottom.data.reshape(2, 4), 2)
    np.testing.assert_array_equal(top.data[:, 0], [[j for _, j in r] for r in ref])
    assert top.data[0, 0, 0] == 2  # tie between indices 1 and 2 -> the larger index
    layer = make('name: "a" type: "ArgMax" argmax_param { top_k: 2 out_max_val: true }')
    (top,) = run(layer, [bottom])
    assert top.shape == (2, 2, 2)
    np.testing.assert_array_equal(top.data[:, 0], [[j for _, j in r] for r in ref])
    np.testing.assert_array_equal(top.data[:, 1], [[v for v, _ in r] for r in ref])


@pytest.mark.parametrize("out_max_val", [False, True])
def test_argmax_along_axis(out_max_val):
    rng = np.random.default_rng(12)
    bottom = make_blobs([(2, 4, 3)], rng)
    flag = str(out_max_val).lower()
    text = f'name: "a" type: "ArgMax" argmax_param {{ axis: 1 top_k: 2 out_max_val: {flag} }}'
    (top,) = run(make(text), bottom)
    assert top.shape == (2, 2, 3)
    rows = bottom[0].data.transpose(0, 2, 1).reshape(6, 4)
    ref = np.array([[v if out_max_val else j for v, j in r] for r in argmax_reference(rows, 2)])
    np.testing.assert_array_equal(top.data.transpose(0, 2, 1).reshape(6, 2), ref)


def test_argmax_errors():
    bottom = Blob((2, 3), dtype=np.float64)
    with pytest.raises(WiringError, match="'a'.*top_k"):
        run(make('name: "a" type: "ArgMax" argmax_param { top_k: 4 }'), [bottom])
    layer = make('name: "a" type: "ArgMax"')
    (top,) = run(layer, [bottom])
    with pytest.raises(WiringError, match="'a'.*backward"):
        layer.backward([top], [True], [bottom])


# -- MVN


@pytest.mark.parametrize(
    ("param", "axes", "normalize"),
    [
        ("", (2, 3), True),
        ("normalize_variance: false", (2, 3), False),
        ("across_channels: true", (1, 2, 3), True),
        ("across_channels: true normalize_variance: false", (1, 2, 3), False),
    ],
)
def test_mvn_forward_and_gradient(param, axes, normalize):
    rng = np.random.default_rng(13)
    bottom = make_blobs([(2, 3, 2, 2)], rng)
    text = f'name: "m" type: "MVN" mvn_param {{ {param} }}'
    (top,) = run(make(text), bottom)
    x = bottom[0].data
    ref = x - x.mean(axis=axes, keepdims=True)
    if normalize:
        eps = float(np.float32(1e-9))
        ref = ref / (np.sqrt((ref**2).mean(axis=axes, keepdims=True)) + eps)  # eps added to the std
    np.testing.assert_allclose(top.data, ref, rtol=1e-10, atol=1e-12)
    checker().check_gradient_exhaustive(make(text), bottom, [top])


def test_mvn_eps_is_added_to_the_standard_deviation():
    bottom = Blob((1, 1, 2), dtype=np.float64)
    bottom.data[...] = [[[-1.0, 1.0]]]  # std 1
    (top,) = run(make('name: "m" type: "MVN" mvn_param { eps: 0.5 }'), [bottom])
    np.testing.assert_allclose(top.data.reshape(-1), [-1 / 1.5, 1 / 1.5], rtol=1e-12)


# -- float32 nets: every layer runs in the bottom's precision

FLOAT32_CASES = [
    ('name: "e" type: "Eltwise" eltwise_param { coeff: 0.5 coeff: -2 }', [(2, 3), (2, 3)]),
    ('name: "e" type: "Eltwise" eltwise_param { operation: MAX }', [(2, 3), (2, 3)]),
    ('name: "s" type: "Scale" scale_param { bias_term: true filler { type: "gaussian" } }', [(2, 3, 2)]),
    ('name: "s" type: "Scale" scale_param { axis: 0 }', [(2, 3), (2,)]),
    ('name: "b" type: "Bias" bias_param { filler { type: "gaussian" } }', [(2, 3)]),
    ('name: "r" type: "Reduction" reduction_param { operation: MEAN axis: 1 coeff: 3 }', [(2, 3, 2)]),
    ('name: "m" type: "MVN"', [(2, 3, 2, 2)]),
    ('name: "c" type: "Concat"', [(2, 1), (2, 3)]),
    ('name: "t" type: "Tile" tile_param { tiles: 2 }', [(2, 3)]),
]


@pytest.mark.parametrize(("text", "shapes"), FLOAT32_CASES)
def test_float32_matches_float64(text, shapes):
    results = {}
    for dtype in (np.float64, np.float32):
        bottom = make_blobs(shapes, np.random.default_rng(14), dtype=dtype)
        layer = make(text)
        top = [Blob(dtype=dtype)]
        layer.setup(bottom, top)
        for p in layer.blobs:
            assert p.dtype == dtype
            p.data[...] = np.random.default_rng(15).standard_normal(p.shape)
        layer.forward(bottom, top)
        top[0].diff[...] = np.random.default_rng(16).standard_normal(top[0].shape)
        layer.backward(top, [True] * len(bottom), bottom)
        assert top[0].data.dtype == dtype
        results[dtype] = [top[0].data.copy()] + [b.diff.copy() for b in bottom]
    for got, ref in zip(results[np.float32], results[np.float64], strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
