"""HDF5Data over two listed files (order, wrapping, seeded shuffle) and HDF5Output."""

import h5py
import numpy as np
import pytest

from engine import common
from engine.blob import Blob
from engine.errors import WiringError

from .helpers_data import make_layer, tops


@pytest.fixture
def listed(tmp_path):
    """Two files: rows 0..3 and 4..5; data row r is r * [1, 1, 1], label r + 100."""
    names = []
    for name, rows in (("a.h5", range(0, 4)), ("b.h5", range(4, 6))):
        path = tmp_path / name
        r = np.array(list(rows), dtype=np.float32)
        with h5py.File(path, "w") as f:
            f["data"] = np.repeat(r[:, None], 3, axis=1).reshape(-1, 3, 1, 1)
            f["label"] = r + 100
        names.append(str(path))
    src = tmp_path / "list.txt"
    src.write_text("\n".join(names) + "\n")
    return str(src)


def hdf5_layer(source, batch=4, shuffle=False):
    return make_layer(f'name: "h" type: "HDF5Data" top: "data" top: "label" hdf5_data_param {{ '
                      f'source: "{source}" batch_size: {batch} shuffle: {str(shuffle).lower()} }}')


def rows_served(layer, t, batches):
    out = []
    for _ in range(batches):
        layer.forward([], t)
        assert np.array_equal(t[1].data, t[0].data[:, 0, 0, 0] + 100)
        out.extend(t[0].data[:, 0, 0, 0].astype(int).tolist())
    return out


def test_files_in_order_and_wrapping(listed):
    layer = hdf5_layer(listed)
    t = tops(2)
    layer.setup([], t)
    assert t[0].shape == (4, 3, 1, 1) and t[1].shape == (4,)
    assert rows_served(layer, t, 3) == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]


def test_shuffle_is_a_permutation_per_pass_and_reproducible(listed):
    runs = []
    for _ in range(2):
        common.set_random_seed(42)
        layer = hdf5_layer(listed, batch=6, shuffle=True)
        t = tops(2)
        layer.setup([], t)
        runs.append(rows_served(layer, t, 4))
    assert runs[0] == runs[1]
    for k in range(4):
        assert sorted(runs[0][6 * k:6 * k + 6]) == [0, 1, 2, 3, 4, 5]
    assert runs[0] != [0, 1, 2, 3, 4, 5] * 4


def test_missing_dataset_and_transform_refused(listed, tmp_path):
    bad = make_layer(f'name: "h" type: "HDF5Data" top: "nothere" hdf5_data_param {{ source: "{listed}" '
                     'batch_size: 1 }')
    with pytest.raises(WiringError, match="nothere"):
        bad.setup([], tops(1))
    tr = make_layer(f'name: "h" type: "HDF5Data" top: "data" transform_param {{ scale: 2 }} '
                    f'hdf5_data_param {{ source: "{listed}" batch_size: 1 }}')
    with pytest.raises(WiringError, match="does not transform"):
        tr.setup([], tops(1))


def test_hdf5_output_writes_data_and_label(tmp_path):
    path = tmp_path / "out.h5"
    layer = make_layer(f'name: "o" type: "HDF5Output" bottom: "data" bottom: "label" '
                       f'hdf5_output_param {{ file_name: "{path}" }}')
    data = Blob((2, 3, 2, 1))
    data.data[...] = np.arange(12).reshape(2, 3, 2, 1)
    label = Blob((2,))
    label.data[...] = [7, 8]
    layer.setup([data, label], [])
    layer.forward([data, label], [])
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["data"][()], np.arange(12).reshape(2, 3, 2, 1))
        assert f["label"].shape == (2, 1, 1, 1)  # legacy 4-D shape, as Caffe saves it
        np.testing.assert_array_equal(f["label"][()].ravel(), [7, 8])
    with pytest.raises(WiringError, match="one batch per file"):
        layer.forward([data, label], [])
