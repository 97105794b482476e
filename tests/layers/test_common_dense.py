"""InnerProduct, Embed and Parameter: forward against numpy, gradients, weight loading, errors."""

import numpy as np
import pytest

from engine.blob import Blob
from engine.errors import WiringError
from engine.layer import create_layer
from engine.testing import GradientChecker
from tests.layers.helpers import layer_param, make_blobs


def ip_layer(extra: str = "", num_output: int = 3):
    return create_layer(
        layer_param(
            f"""name: "ip" type: "InnerProduct"
            inner_product_param {{ num_output: {num_output}
              weight_filler {{ type: "gaussian" std: 1 }}
              bias_filler {{ type: "gaussian" std: 1 }} {extra} }}"""
        )
    )


def test_inner_product_forward_default_axis():
    rng = np.random.default_rng(0)
    bottom, top = make_blobs([(2, 3, 2, 2)], rng)[0], Blob(dtype=np.float64)
    layer = ip_layer()
    layer.setup([bottom], [top])
    assert top.shape == (2, 3)
    w, b = layer.blobs[0].data, layer.blobs[1].data
    assert w.shape == (3, 12) and b.shape == (3,)
    layer.forward([bottom], [top])
    expected = bottom.data.reshape(2, 12) @ w.T + b
    np.testing.assert_allclose(top.data, expected, rtol=1e-12)


def test_inner_product_axis_and_no_bias():
    rng = np.random.default_rng(1)
    bottom, top = make_blobs([(2, 3, 4)], rng)[0], Blob(dtype=np.float64)
    layer = ip_layer("axis: -1 bias_term: false", num_output=5)
    layer.setup([bottom], [top])
    assert top.shape == (2, 3, 5)
    assert len(layer.blobs) == 1 and layer.blobs[0].shape == (5, 4)
    layer.forward([bottom], [top])
    np.testing.assert_allclose(top.data, bottom.data @ layer.blobs[0].data.T, rtol=1e-12)


def test_inner_product_transpose_equals_transposed_weights():
    rng = np.random.default_rng(2)
    bottom = make_blobs([(3, 4)], rng)[0]
    plain, trans = ip_layer(), ip_layer("transpose: true")
    top_p, top_t = Blob(dtype=np.float64), Blob(dtype=np.float64)
    plain.setup([bottom], [top_p])
    trans.setup([bottom], [top_t])
    assert trans.blobs[0].shape == (4, 3)
    trans.blobs[0].data[...] = plain.blobs[0].data.T
    trans.blobs[1].data[...] = plain.blobs[1].data
    plain.forward([bottom], [top_p])
    trans.forward([bottom], [top_t])
    np.testing.assert_allclose(top_t.data, top_p.data, rtol=1e-12)
    dy = rng.standard_normal((3, 3))
    for layer, top in ((plain, top_p), (trans, top_t)):
        top.diff[...] = dy
        layer.backward([top], [True], [bottom])
        if layer is plain:
            dx_plain = bottom.diff.copy()
            dw_plain = layer.blobs[0].diff.copy()
    np.testing.assert_allclose(bottom.diff, dx_plain, rtol=1e-12)
    np.testing.assert_allclose(trans.blobs[0].diff, dw_plain.T, rtol=1e-12)


@pytest.mark.parametrize("extra", ["", "transpose: true", "axis: 2"])
def test_inner_product_gradient(extra):
    rng = np.random.default_rng(3)
    bottom, top = make_blobs([(2, 2, 3)], rng)[0], Blob(dtype=np.float64)
    GradientChecker(1e-2, 1e-3).check_gradient_exhaustive(ip_layer(extra, num_output=2), [bottom], [top])


def test_inner_product_param_gradients_accumulate():
    rng = np.random.default_rng(4)
    bottom, top = make_blobs([(2, 3)], rng)[0], Blob(dtype=np.float64)
    layer = ip_layer()
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    top.diff[...] = rng.standard_normal(top.shape)
    layer.backward([top], [False], [bottom])
    once = [p.diff.copy() for p in layer.blobs]
    np.testing.assert_allclose(once[0], top.diff.T @ bottom.data, rtol=1e-12)
    np.testing.assert_allclose(once[1], top.diff.sum(0), rtol=1e-12)
    layer.backward([top], [False], [bottom])
    for p, d in zip(layer.blobs, once, strict=True):
        np.testing.assert_allclose(p.diff, 2 * d, rtol=1e-12)


def _ip_param_with_blobs(w: np.ndarray, b: np.ndarray, extra: str = ""):
    param = layer_param(f'name: "ip" type: "InnerProduct" inner_product_param {{ num_output: 2 {extra} }}')
    for arr in (w, b):
        blob = Blob(arr.shape, dtype=np.float64)
        blob.data[...] = arr
        param.blobs.append(blob.to_proto())
    return param


def test_inner_product_keeps_weights_from_layer_param():
    rng = np.random.default_rng(5)
    # float32-exact values: Layer.__init__ loads proto blobs as float32
    w = rng.standard_normal((2, 3)).astype(np.float32).astype(np.float64)
    b = rng.standard_normal(2).astype(np.float32).astype(np.float64)
    layer = create_layer(_ip_param_with_blobs(w, b))
    bottom, top = make_blobs([(4, 3)], rng)[0], Blob(dtype=np.float64)
    layer.setup([bottom], [top])
    layer.forward([bottom], [top])
    np.testing.assert_allclose(top.data, bottom.data @ w.T + b, rtol=1e-12)


def test_inner_product_shape_mismatch_errors():
    rng = np.random.default_rng(6)
    layer = create_layer(_ip_param_with_blobs(rng.standard_normal((2, 5)), rng.standard_normal(2)))
    bottom = make_blobs([(4, 3)], rng)[0]
    with pytest.raises(WiringError, match="'ip'.*weight"):
        layer.setup([bottom], [Blob(dtype=np.float64)])
    layer = ip_layer()
    top = Blob(dtype=np.float64)
    layer.setup([bottom], [top])
    bottom.reshape(4, 7)
    with pytest.raises(WiringError, match="'ip'.*incompatible"):
        layer.forward([bottom], [top])


def test_inner_product_float32_matches_float64():
    rng = np.random.default_rng(7)
    b64, t64 = make_blobs([(3, 5)], rng)[0], Blob(dtype=np.float64)
    b32, t32 = Blob((3, 5), dtype=np.float32), Blob()
    b32.data[...] = b64.data
    l64, l32 = ip_layer(), ip_layer()
    l64.setup([b64], [t64])
    l32.setup([b32], [t32])
    for p32, p64 in zip(l32.blobs, l64.blobs, strict=True):
        assert p32.dtype == np.float32
        p32.data[...] = p64.data
    l64.forward([b64], [t64])
    l32.forward([b32], [t32])
    np.testing.assert_allclose(t32.data, t64.data, rtol=1e-5, atol=1e-5)


# -- Embed


def embed_layer(bias: bool = True):
    return create_layer(
        layer_param(
            f"""name: "emb" type: "Embed"
            embed_param {{ num_output: 3 input_dim: 4 bias_term: {str(bias).lower()}
              weight_filler {{ type: "uniform" min: -1 max: 1 }}
              bias_filler {{ type: "uniform" min: -1 max: 1 }} }}"""
        )
    )


def test_embed_forward_looks_up_rows():
    bottom, top = Blob((2, 3), dtype=np.float64), Blob(dtype=np.float64)
    idx = np.array([[0, 3, 1], [1, 1, 2]], dtype=np.float64)
    bottom.data[...] = idx
    layer = embed_layer()
    layer.setup([bottom], [top])
    assert top.shape == (2, 3, 3)
    layer.forward([bottom], [top])
    w, b = layer.blobs[0].data, layer.blobs[1].data
    np.testing.assert_allclose(top.data, w[idx.astype(int)] + b, rtol=1e-12)


def _param_numeric_check(layer, bottom, top, step=1e-2, tol=1e-3):
    """Central differences of 0.5 * sum(top²) w.r.t. every param element (bottoms hold indices)."""

    def objective():
        layer.forward(bottom, top)
        return 0.5 * float((top[0].data ** 2).sum())

    for p in layer.blobs:
        p.diff[...] = 0
    objective()
    top[0].diff[...] = top[0].data
    layer.backward(top, [False], bottom)
    for p in layer.blobs:
        analytic = p.diff.copy().reshape(-1)
        flat = p.data.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + step
            plus = objective()
            flat[i] = orig - step
            minus = objective()
            flat[i] = orig
            numeric = (plus - minus) / (2 * step)
            assert abs(numeric - analytic[i]) <= tol * max(1.0, abs(numeric), abs(analytic[i]))


def test_embed_param_gradient_with_repeated_indices():
    bottom, top = Blob((5,), dtype=np.float64), Blob(dtype=np.float64)
    bottom.data[...] = [2, 0, 2, 3, 2]
    layer = embed_layer()
    layer.setup([bottom], [top])
    _param_numeric_check(layer, [bottom], [top])
    # Row 1 is never looked up: no gradient.
    assert not layer.blobs[0].diff[1].any()


def test_embed_errors():
    bottom, top = Blob((3,), dtype=np.float64), Blob(dtype=np.float64)
    bottom.data[...] = [0, 4, 1]
    layer = embed_layer(bias=False)
    layer.setup([bottom], [top])
    with pytest.raises(WiringError, match="'emb'.*outside"):
        layer.forward([bottom], [top])
    bottom.data[...] = [0, -1, 1]
    with pytest.raises(WiringError, match="'emb'.*outside"):
        layer.forward([bottom], [top])
    bottom.data[...] = [0, 3.7, 1]  # truncated to 3, as C's int cast
    layer.forward([bottom], [top])
    np.testing.assert_array_equal(top.data[1], layer.blobs[0].data[3])
    with pytest.raises(WiringError, match="'emb'.*backpropagate"):
        layer.backward([top], [True], [bottom])
    assert not layer.allow_force_backward(0)


# -- Parameter


def test_parameter_layer_shares_its_blob():
    layer = create_layer(
        layer_param('name: "p" type: "Parameter" parameter_param { shape { dim: 2 dim: 3 } }')
    )
    top = Blob()
    layer.setup([], [top])
    assert top.shape == (2, 3) and len(layer.blobs) == 1 and layer.blobs[0].shape == (2, 3)
    layer.blobs[0].data[...] = np.arange(6).reshape(2, 3)
    layer.forward([], [top])
    np.testing.assert_array_equal(top.data, np.arange(6).reshape(2, 3))
    top.diff[...] = 5
    assert (layer.blobs[0].diff == 5).all()


def test_parameter_layer_rejects_wrong_loaded_shape():
    param = layer_param('name: "p" type: "Parameter" parameter_param { shape { dim: 2 dim: 3 } }')
    param.blobs.append(Blob((3, 2)).to_proto())
    with pytest.raises(WiringError, match="'p'"):
        create_layer(param).setup([], [Blob()])


def test_embed_float32_forward_backward():
    bottom, top = Blob((4,), dtype=np.float32), Blob(dtype=np.float32)
    bottom.data[...] = [1, 1, 0, 3]
    layer = embed_layer()
    layer.setup([bottom], [top])
    assert all(p.dtype == np.float32 for p in layer.blobs)
    layer.forward([bottom], [top])
    np.testing.assert_array_equal(top.data, layer.blobs[0].data[[1, 1, 0, 3]] + layer.blobs[1].data)
    top.diff[...] = np.arange(12, dtype=np.float32).reshape(4, 3)
    layer.backward([top], [False], [bottom])
    np.testing.assert_array_equal(layer.blobs[0].diff[1], top.diff[0] + top.diff[1])
    np.testing.assert_array_equal(layer.blobs[0].diff[2], 0)
