"""Input, DummyData and MemoryData."""

import numpy as np
import pytest

from engine.errors import BrewnetError, WiringError
from engine.proto import caffe_pb2

from .helpers_data import make_layer, tops


def test_input_one_shape_for_all_tops():
    layer = make_layer('name: "in" type: "Input" top: "a" top: "b" '
                       'input_param { shape { dim: 2 dim: 3 } }')
    t = tops(2)
    layer.setup([], t)
    assert t[0].shape == (2, 3) and t[1].shape == (2, 3)
    t[0].reshape([5])  # the caller may reshape; forward keeps it
    layer.forward([], t)
    assert t[0].shape == (5,)


def test_input_one_shape_per_top_and_count_error():
    layer = make_layer('name: "in" type: "Input" top: "a" top: "b" '
                       'input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } shape { dim: 1 } }')
    t = tops(2)
    layer.setup([], t)
    assert t[0].shape == (1, 3, 4, 4) and t[1].shape == (1,)
    bad = make_layer('name: "in" type: "Input" top: "a" top: "b" top: "c" '
                     'input_param { shape { dim: 1 } shape { dim: 2 } }')
    with pytest.raises(WiringError, match="'in'"):
        bad.setup([], tops(3))


def test_dummy_constant_filled_once_others_every_forward():
    layer = make_layer('name: "d" type: "DummyData" top: "c" top: "u" '
                       'dummy_data_param { shape { dim: 2 dim: 3 } '
                       'data_filler { type: "constant" value: 7 } '
                       'data_filler { type: "uniform" min: 1 max: 2 } }')
    t = tops(2)
    layer.setup([], t)
    assert np.all(t[0].data == 7)
    assert not t[1].data.any()  # setup fills only the constant tops
    t[0].data[...] = -1  # Caffe never refills a constant top
    layer.forward([], t)
    first = t[1].data.copy()
    assert np.all((first >= 1) & (first <= 2))
    layer.forward([], t)
    assert np.all(t[0].data == -1)
    assert not np.array_equal(first, t[1].data)


def test_dummy_legacy_shape_and_default_zero_filler():
    layer = make_layer('name: "d" type: "DummyData" top: "a" top: "b" '
                       'dummy_data_param { num: 2 channels: 3 channels: 1 height: 4 width: 5 }')
    t = tops(2)
    layer.setup([], t)
    assert t[0].shape == (2, 3, 4, 5) and t[1].shape == (2, 1, 4, 5)
    assert not t[0].data.any()
    mixed = make_layer('name: "d" type: "DummyData" top: "a" '
                       'dummy_data_param { num: 2 channels: 3 height: 4 width: 5 shape { dim: 1 } }')
    with pytest.raises(WiringError, match="legacy"):
        mixed.setup([], tops(1))
    two_fillers = make_layer('name: "d" type: "DummyData" top: "a" top: "b" top: "c" dummy_data_param { '
                             'shape { dim: 1 } data_filler { type: "constant" } '
                             'data_filler { type: "constant" } }')
    with pytest.raises(WiringError, match="data fillers"):
        two_fillers.setup([], tops(3))


def _memory_layer(extra: str = ""):
    return make_layer('name: "m" type: "MemoryData" top: "data" top: "label" '
                      f'memory_data_param {{ batch_size: 2 channels: 1 height: 2 width: 2 }} {extra}')


def test_memory_data_cycles_and_shapes():
    layer = _memory_layer()
    t = tops(2)
    layer.setup([], t)
    assert t[0].shape == (2, 1, 2, 2) and t[1].shape == (2,)
    data = np.arange(16, dtype=np.float32).reshape(4, 1, 2, 2)
    labels = np.array([10, 11, 12, 13], dtype=np.float32)
    layer.reset(data, labels, 4)
    seen = []
    for _ in range(3):
        layer.forward([], t)
        assert t[1].shape == (2, 1, 1, 1)
        seen.append((t[0].data[:, 0, 0, 0].tolist(), t[1].data.ravel().tolist()))
    assert seen == [([0, 4], [10, 11]), ([8, 12], [12, 13]), ([0, 4], [10, 11])]


def test_memory_data_errors():
    layer = _memory_layer()
    t = tops(2)
    layer.setup([], t)
    with pytest.raises(BrewnetError, match="reset"):
        layer.forward([], t)
    with pytest.raises(BrewnetError, match="multiple of batch size"):
        layer.reset(np.zeros((3, 1, 2, 2), np.float32), np.zeros(3, np.float32), 3)
    with pytest.raises(WiringError, match="positive"):
        make_layer('name: "m" type: "MemoryData" top: "a" top: "b" memory_data_param { batch_size: 2 }'
                   ).setup([], tops(2))


def test_memory_data_add_datum_vector_applies_transform():
    layer = _memory_layer('transform_param { scale: 0.5 mean_value: 1 }')
    t = tops(2)
    layer.setup([], t)
    datums = []
    for i in range(2):
        d = caffe_pb2.Datum(channels=1, height=2, width=2, data=bytes([i, 3, 5, 9]), label=i + 4)
        datums.append(d)
    layer.add_datum_vector(datums)
    layer.forward([], t)
    # (pixel - 1) * 0.5
    np.testing.assert_allclose(t[0].data[0, 0], [[-0.5, 1.0], [2.0, 4.0]])
    np.testing.assert_allclose(t[0].data[1, 0], [[0.0, 1.0], [2.0, 4.0]])
    assert t[1].data.ravel().tolist() == [4, 5]
