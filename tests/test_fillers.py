"""Fillers follow Caffe's statistics and are reproducible from a seed."""

import numpy as np
import pytest

from engine import common
from engine.blob import Blob
from engine.errors import WiringError
from engine.fillers import fill
from engine.proto import caffe_pb2


def _param(**kw):
    p = caffe_pb2.FillerParameter()
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def test_constant():
    b = Blob((2, 3, 4, 5))
    fill(b, _param(type="constant", value=3.5))
    assert np.all(b.data == 3.5)


def test_uniform_in_range():
    b = Blob((2, 3, 4, 5))
    fill(b, _param(type="uniform", min=-2, max=1))
    assert b.data.min() >= -2 and b.data.max() <= 1 and b.data.std() > 0.3


def test_gaussian_sparse_keeps_expected_fraction():
    b = Blob((2, 3, 40, 50))
    fill(b, _param(type="gaussian", std=1.0, sparse=1))
    nonzero = np.count_nonzero(b.data) / b.count
    assert abs(nonzero - 0.5) < 0.05


def test_positive_unitball_rows_sum_to_one():
    b = Blob((4, 3, 2, 2))
    fill(b, _param(type="positive_unitball"))
    np.testing.assert_allclose(b.data.reshape(4, -1).sum(axis=1), 1.0, rtol=1e-5)
    assert (b.data >= 0).all()


@pytest.mark.parametrize("norm,n", [(0, 60), (1, 40), (2, 50)])
def test_xavier_scale(norm, n):
    b = Blob((30, 60))
    fill(b, _param(type="xavier", variance_norm=norm))
    fan_in, fan_out = 60, 30
    n = {0: fan_in, 1: fan_out, 2: (fan_in + fan_out) / 2}[norm]
    assert np.abs(b.data).max() <= np.sqrt(3.0 / n) + 1e-6
    assert np.abs(b.data).max() > 0.8 * np.sqrt(3.0 / n)


def test_msra_std():
    b = Blob((200, 50, 3, 3))
    fill(b, _param(type="msra"))
    assert abs(b.data.std() - np.sqrt(2.0 / 450)) < 0.005


def test_bilinear_matches_formula():
    b = Blob((1, 1, 4, 4))
    fill(b, _param(type="bilinear"))
    one_d = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(b.data[0, 0], np.outer(one_d, one_d), rtol=1e-6)


def test_seed_reproducible_and_unknown_type():
    a, b = Blob((3, 4)), Blob((3, 4))
    common.set_random_seed(5)
    fill(a, _param(type="gaussian"))
    common.set_random_seed(5)
    fill(b, _param(type="gaussian"))
    np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(WiringError, match="gausian"):
        fill(a, _param(type="gausian"))
    with pytest.raises(WiringError, match="sparse"):
        fill(a, _param(type="xavier", sparse=2))
