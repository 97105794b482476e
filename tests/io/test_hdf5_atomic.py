"""HDF5 weights in Caffe's layout, and atomic writes."""

from __future__ import annotations

import os
import stat

import h5py
import numpy as np
import pytest

from engine.errors import ModelFileError
from engine.io import atomic_write, load_hdf5_weights, save_hdf5_weights
from engine.io.atomic import atomic_path


def test_hdf5_weights_round_trip_in_caffe_layout(tmp_path):
    rng = np.random.default_rng(3)
    layers = [
        ("zeta", [rng.standard_normal((3, 2)).astype(np.float32), rng.standard_normal(3).astype(np.float32)]),
        ("alpha", [rng.standard_normal((1, 2, 3, 4)).astype(np.float32)]),
        ("relu", []),
    ]
    diffs = [(name, [a * 2 for a in arrays]) for name, arrays in layers]
    path = tmp_path / "w.h5"
    save_hdf5_weights(path, layers, diffs=diffs)
    with h5py.File(path, "r") as f:  # the layout itself, as Net::ToHDF5 writes it
        assert set(f.keys()) == {"data", "diff"}
        assert set(f["data/zeta"].keys()) == {"0", "1"}
        assert f["data/alpha/0"].dtype == np.float32 and f["data/alpha/0"].shape == (1, 2, 3, 4)
        assert len(f["data/relu"]) == 0
    loaded = load_hdf5_weights(path)
    assert list(loaded) == ["zeta", "alpha", "relu"]  # file order
    for name, arrays in layers:
        assert len(loaded[name]) == len(arrays)
        for got, want in zip(loaded[name], arrays, strict=True):
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(load_hdf5_weights(path, group="diff")["zeta"][1], layers[0][1][1] * 2)
    assert [p.name for p in tmp_path.iterdir()] == ["w.h5"]


def test_shared_param_gap_is_none(tmp_path):
    path = tmp_path / "s.h5"
    save_hdf5_weights(path, [("tied", [None, np.ones(2, np.float32)])])
    with h5py.File(path, "r") as f:
        assert list(f["data/tied"].keys()) == ["1"]
    loaded = load_hdf5_weights(path)["tied"]
    assert loaded[0] is None and list(loaded[1]) == [1.0, 1.0]


def test_reads_plain_h5py_file_with_double_data(tmp_path):
    path = tmp_path / "caffe.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data/conv1/0", data=np.full((2, 2), 0.5, dtype=np.float64))
        f.create_dataset("data/conv1/1", data=np.arange(2, dtype=np.int32))
    loaded = load_hdf5_weights(path)["conv1"]
    assert loaded[0].dtype == np.float32 and loaded[0].tolist() == [[0.5, 0.5], [0.5, 0.5]]
    assert loaded[1].tolist() == [0.0, 1.0]


def test_hdf5_errors(tmp_path):
    not_h5 = tmp_path / "x.h5"
    not_h5.write_bytes(b"definitely not hdf5")
    with pytest.raises(ModelFileError, match="x.h5"):
        load_hdf5_weights(not_h5)
    no_data = tmp_path / "y.h5"
    with h5py.File(no_data, "w") as f:
        f.create_group("weights")
    with pytest.raises(ModelFileError, match="no 'data' group"):
        load_hdf5_weights(no_data)
    with pytest.raises(FileNotFoundError, match="z.h5"):
        load_hdf5_weights(tmp_path / "z.h5")


def test_atomic_write_bytes_and_text_leave_only_the_file(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    atomic_write(target, "h\u00e9")
    assert target.read_bytes() == "h\u00e9".encode()
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_write_mode_follows_umask(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    target = tmp_path / "atomic"
    atomic_write(target, b"x")
    assert stat.S_IMODE(os.stat(target).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)


def test_failed_write_keeps_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "model.caffemodel"
    atomic_write(target, b"old contents")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"new contents that never land")
    monkeypatch.undo()
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["model.caffemodel"]


def test_writer_crash_midway_never_leaves_half_file(tmp_path):
    target = tmp_path / "w.h5"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["w.h5"]
