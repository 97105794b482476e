"""Blob plumbing layers: Split, Silence, Flatten, Reshape, Concat, Slice, Tile, Filter, BatchReindex."""

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param, make_blobs


def make(text: str):
    return create_layer(layer_param(text))


def tops(n: int) -> list[Blob]:
    return [Blob(dtype=np.float64) for _ in range(n)]


def checker() -> GradientChecker:
    return GradientChecker(1e-2, 1e-3)


# -- Split / Silence


def test_split_shares_data_and_sums_diffs():
    rng = np.random.default_rng(0)
    bottom = make_blobs([(2, 3)], rng)[0]
    t = tops(3)
    layer = make('name: "s" type: "Split"')
    layer.setup([bottom], t)
    layer.forward([bottom], t)
    for top in t:
        np.testing.assert_array_equal(top.data, bottom.data)
    diffs = [rng.standard_normal((2, 3)) for _ in t]
    for top, d in zip(t, diffs, strict=True):
        top.diff[...] = d
    layer.backward(t, [True], [bottom])
    np.testing.assert_allclose(bottom.diff, diffs[0] + diffs[1] + diffs[2], rtol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_split_gradient(n):
    bottom = make_blobs([(2, 3)], np.random.default_rng(1))[0]
    checker().check_gradient_exhaustive(make('name: "s" type: "Split"'), [bottom], tops(n))


def test_split_refuses_in_place():
    bottom = Blob((2,), dtype=np.float64)
    with pytest.raises(WiringError, match="'s'.*in-place"):
        make('name: "s" type: "Split"').setup([bottom], [bottom])


def test_silence_zeroes_requested_diffs():
    a, b = make_blobs([(2, 2), (3,)], np.random.default_rng(2))
    a.diff[...] = 1
    b.diff[...] = 1
    layer = make('name: "q" type: "Silence"')
    layer.setup([a, b], [])
    layer.forward([a, b], [])
    layer.backward([], [True, False], [a, b])
    assert not a.diff.any() and (b.diff == 1).all()


# -- Flatten / Reshape


def test_flatten_forward_and_gradient():
    rng = np.random.default_rng(3)
    bottom, top = make_blobs([(2, 3, 2, 2)], rng)[0], Blob(dtype=np.float64)
    layer = make('name: "f" type: "Flatten"')
    layer.setup([bottom], [top])
    assert top.shape == (2, 12)
    layer.forward([bottom], [top])
    np.testing.assert_array_equal(top.data, bottom.data.reshape(2, 12))
    layer = make('name: "f" type: "Flatten" flatten_param { axis: 1 end_axis: 2 }')
    layer.setup([bottom], [top])
    assert top.shape == (2, 6, 2)
    checker().check_gradient_eltwise(layer, [bottom], [top])


def reshape_top_shape(bottom_shape, param: str):
    bottom, top = Blob(bottom_shape, dtype=np.float64), Blob(dtype=np.float64)
    make(f'name: "r" type: "Reshape" reshape_param {{ {param} }}').setup([bottom], [top])
    return top.shape


@pytest.mark.parametrize(
    ("bottom_shape", "param", "expected"),
    [
        ((2, 3, 4, 5), "shape { dim: 0 dim: -1 }", (2, 60)),
        ((2, 3, 4, 5), "shape { dim: 0 dim: 0 dim: 20 }", (2, 3, 20)),
        ((2, 3, 4, 5), "shape { dim: 6 dim: 2 dim: -1 }", (6, 2, 10)),
        ((2, 3, 4, 5), "shape { dim: 2 dim: 2 } axis: 2 num_axes: 1", (2, 3, 2, 2, 5)),
        ((2, 3, 4, 5), "shape { dim: -1 } axis: 1", (2, 60)),
        ((2, 3, 4, 5), "shape { dim: 1 } axis: -1 num_axes: 0", (2, 3, 4, 5, 1)),
        ((2, 3, 4, 5), "shape { dim: 1 } axis: 0 num_axes: 0", (1, 2, 3, 4, 5)),
        ((2, 3, 4, 5), "shape { dim: 0 dim: -1 } axis: 1 num_axes: 2", (2, 3, 4, 5)),
        ((6,), "shape { } axis: 0 num_axes: 0", (6,)),
    ],
)
def test_reshape_shapes(bottom_shape, param, expected):
    assert reshape_top_shape(bottom_shape, param) == expected


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("shape { dim: -1 dim: -1 }", "multiple -1"),
        ("shape { dim: 7 dim: -1 }", "divisible"),
        ("shape { dim: 7 dim: 5 }", "must match"),
        ("shape { dim: 0 dim: 0 dim: 0 dim: 0 dim: 0 }", "no bottom axis"),
        ("shape { dim: 2 } axis: 3 num_axes: 2", "past"),
        ("shape { dim: 2 } axis: 6", "out of range"),
    ],
)
def test_reshape_errors(param, message):
    with pytest.raises(WiringError, match=f"'r'.*{message}"):
        reshape_top_shape((2, 3, 4, 5), param)


def test_reshape_shares_data_and_diff():
    rng = np.random.default_rng(4)
    bottom, top = make_blobs([(2, 3, 2)], rng)[0], Blob(dtype=np.float64)
    layer = make('name: "r" type: "Reshape" reshape_param { shape { dim: -1 dim: 2 } }')
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    np.testing.assert_array_equal(top.data, bottom.data.reshape(6, 2))
    top.diff[...] = np.arange(12).reshape(6, 2)
    np.testing.assert_array_equal(bottom.diff, np.arange(12).reshape(2, 3, 2))
    checker().check_gradient_eltwise(layer, [bottom], [top])


# -- Concat / Slice


def test_concat_forward_backward_and_gradient():
    rng = np.random.default_rng(5)
    a, b, c = make_blobs([(2, 1, 3), (2, 2, 3), (2, 3, 3)], rng)
    top = Blob(dtype=np.float64)
    layer = make('name: "c" type: "Concat"')
    layer.setup([a, b, c], [top])
    layer.forward([a, b, c], [top])
    np.testing.assert_array_equal(top.data, np.concatenate([a.data, b.data, c.data], axis=1))
    checker().check_gradient_exhaustive(layer, [a, b, c], [top])
    layer = make('name: "c" type: "Concat" concat_param { axis: -1 }')
    layer.setup([a, a], [top])
    layer.forward([a, a], [top])
    np.testing.assert_array_equal(top.data, np.concatenate([a.data, a.data], axis=2))


def test_concat_legacy_dim_and_single_bottom():
    rng = np.random.default_rng(6)
    a, b = make_blobs([(1, 2), (3, 2)], rng)
    top = Blob(dtype=np.float64)
    layer = make('name: "c" type: "Concat" concat_param { concat_dim: 0 }')
    layer.setup([a, b], [top])
    layer.forward([a, b], [top])
    np.testing.assert_array_equal(top.data, np.vstack([a.data, b.data]))
    layer = make('name: "c" type: "Concat"')
    layer.setup([b], [top])
    layer.forward([b], [top])
    np.testing.assert_array_equal(top.data, b.data)
    top.diff[...] = 3
    assert (b.diff == 3).all()


def test_concat_errors():
    a, b = Blob((2, 3), dtype=np.float64), Blob((3, 3), dtype=np.float64)
    with pytest.raises(WiringError, match="'c'.*same shape"):
        make('name: "c" type: "Concat"').setup([a, b], tops(1))
    with pytest.raises(WiringError, match="'c'.*not both"):
        make('name: "c" type: "Concat" concat_param { axis: 0 concat_dim: 0 }').setup([a, b], tops(1))
    with pytest.raises(WiringError, match="'c'.*#axes"):
        make('name: "c" type: "Concat"').setup([a, Blob((2, 3, 1), dtype=np.float64)], tops(1))


def test_slice_points_and_equal_split():
    rng = np.random.default_rng(7)
    bottom = make_blobs([(2, 6, 2)], rng)[0]
    t = tops(3)
    layer = make('name: "s" type: "Slice" slice_param { slice_point: 1 slice_point: 4 }')
    layer.setup([bottom], t)
    layer.forward([bottom], t)
    for top, ref in zip(t, np.split(bottom.data, [1, 4], axis=1), strict=True):
        np.testing.assert_array_equal(top.data, ref)
    layer = make('name: "s" type: "Slice" slice_param { axis: -1 }')
    t2 = tops(2)
    layer.setup([bottom], t2)
    layer.forward([bottom], t2)
    for top, ref in zip(t2, np.split(bottom.data, 2, axis=2), strict=True):
        np.testing.assert_array_equal(top.data, ref)
    layer = make('name: "s" type: "Slice" slice_param { slice_dim: 0 }')
    layer.setup([bottom], t2)
    layer.forward([bottom], t2)
    np.testing.assert_array_equal(t2[1].data, bottom.data[1:])


def test_slice_gradient():
    bottom = make_blobs([(2, 5)], np.random.default_rng(8))[0]
    layer = make('name: "s" type: "Slice" slice_param { slice_point: 2 slice_point: 3 }')
    checker().check_gradient_exhaustive(layer, [bottom], tops(3))


def test_concat_slice_round_trip():
    rng = np.random.default_rng(9)
    bottom = make_blobs([(3, 7, 2)], rng)[0]
    parts = tops(3)
    slicer = make('name: "s" type: "Slice" slice_param { slice_point: 2 slice_point: 5 }')
    joiner = make('name: "c" type: "Concat"')
    out = Blob(dtype=np.float64)
    slicer.setup([bottom], parts)
    slicer.forward([bottom], parts)
    joiner.setup(parts, [out])
    joiner.forward(parts, [out])
    np.testing.assert_array_equal(out.data, bottom.data)
    out.diff[...] = rng.standard_normal(out.shape)
    joiner.backward([out], [True] * 3, parts)
    slicer.backward(parts, [True], [bottom])
    np.testing.assert_array_equal(bottom.diff, out.diff)


@pytest.mark.parametrize(
    ("param", "ntops", "message"),
    [
        ("slice_point: 2", 3, "slice_point"),
        ("slice_point: 3 slice_point: 2", 3, "greater than the previous"),
        ("slice_point: 9", 2, "past the end"),
        ("", 4, "evenly divide"),
        ("axis: 1 slice_dim: 1", 2, "not both"),
    ],
)
def test_slice_errors(param, ntops, message):
    bottom = Blob((2, 6), dtype=np.float64)
    with pytest.raises(WiringError, match=f"'s'.*{message}"):
        make(f'name: "s" type: "Slice" slice_param {{ {param} }}').setup([bottom], tops(ntops))


# -- Tile


def test_tile_forward_and_gradient():
    rng = np.random.default_rng(10)
    bottom, top = make_blobs([(2, 3, 2)], rng)[0], Blob(dtype=np.float64)
    layer = make('name: "t" type: "Tile" tile_param { axis: 1 tiles: 3 }')
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    np.testing.assert_array_equal(top.data, np.tile(bottom.data, (1, 3, 1)))
    checker().check_gradient_exhaustive(layer, [bottom], [top])
    with pytest.raises(WiringError, match="'t'.*specified"):
        make('name: "t" type: "Tile"').setup([bottom], [top])


# -- Filter / BatchReindex


def test_filter_forward_backward_and_gradient():
    rng = np.random.default_rng(11)
    data, other = make_blobs([(4, 3, 2), (4, 2)], rng)
    selector = Blob((4, 1), dtype=np.float64)
    selector.data[...] = [[0], [1], [0], [2]]
    t = tops(2)
    layer = make('name: "f" type: "Filter"')
    layer.setup([data, other, selector], t)
    assert t[0].shape == (4, 3, 2)  # Caffe sizes tops for the whole batch at setup
    layer.forward([data, other, selector], t)
    np.testing.assert_array_equal(t[0].data, data.data[[1, 3]])
    np.testing.assert_array_equal(t[1].data, other.data[[1, 3]])
    t[0].diff[...] = 1
    data.diff[...] = 7
    layer.backward(t, [True, False, False], [data, other, selector])
    np.testing.assert_array_equal(data.diff[:, 0, 0], [0, 1, 0, 1])
    with pytest.raises(WiringError, match="'f'.*selector"):
        layer.backward(t, [True, False, True], [data, other, selector])
    # Tops shrink to the selected items on the first forward, so walk their final sizes.
    for check_bottom in (0, 1):
        for i, top in enumerate(t):
            for j in range(top.count):
                checker().check_gradient_single(layer, [data, other, selector], t, check_bottom, i, j)


def test_filter_errors():
    data, selector = Blob((4, 2), dtype=np.float64), Blob((3,), dtype=np.float64)
    with pytest.raises(WiringError, match="'f'.*0th dimension"):
        make('name: "f" type: "Filter"').setup([data, selector], tops(1))
    with pytest.raises(WiringError, match="'f'.*one top"):
        make('name: "f" type: "Filter"').setup([data, Blob((4,), dtype=np.float64)], tops(2))


def test_batch_reindex_forward_and_accumulating_backward():
    rng = np.random.default_rng(12)
    data = make_blobs([(3, 2, 2)], rng)[0]
    perm = Blob((5,), dtype=np.float64)
    perm.data[...] = [2, 0, 2, 1, 2]
    top = Blob(dtype=np.float64)
    layer = make('name: "b" type: "BatchReindex"')
    layer.setup([data, perm], [top])
    layer.forward([data, perm], [top])
    np.testing.assert_array_equal(top.data, data.data[[2, 0, 2, 1, 2]])
    top.diff[...] = rng.standard_normal(top.shape)
    layer.backward([top], [True, False], [data, perm])
    expected = np.zeros_like(data.data)
    for i, j in enumerate([2, 0, 2, 1, 2]):
        expected[j] += top.diff[i]
    np.testing.assert_allclose(data.diff, expected, rtol=1e-12)
    checker().check_gradient_exhaustive(layer, [data, perm], [top], check_bottom=0)
    with pytest.raises(WiringError, match="'b'.*index"):
        layer.backward([top], [True, True], [data, perm])


@pytest.mark.parametrize(("values", "message"), [([0, -1], "negative"), ([0, 3], "greater")])
def test_batch_reindex_bad_indices(values, message):
    data, perm, top = Blob((3, 2), dtype=np.float64), Blob((2,), dtype=np.float64), Blob(dtype=np.float64)
    perm.data[...] = values
    layer = make('name: "b" type: "BatchReindex"')
    layer.setup([data, perm], [top])
    with pytest.raises(WiringError, match=f"'b'.*{message}"):
        layer.forward([data, perm], [top])
