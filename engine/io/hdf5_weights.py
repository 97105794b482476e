"""Net weights in Caffe's HDF5 layout (Net::ToHDF5 / CopyTrainedLayersFromHDF5).

Group `data` (and `diff` when diffs are written) holds one group per layer name, each
with float32 datasets "0", "1", ... in param order. A param that is shared from another
layer is not written to `data` (Caffe saves only owners); such gaps are None here.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

import h5py
import numpy as np

from engine.errors import ModelFileError
from engine.io.atomic import atomic_path

LayerArrays = Sequence[np.ndarray | None]


def _write_group(group: h5py.Group, layers: Sequence[tuple[str, LayerArrays]]) -> None:
    for name, arrays in layers:
        if name in group:
            raise ModelFileError(f"HDF5 weights: layer name {name!r} appears twice")
        layer_group = group.create_group(name, track_order=True)
        for i, array in enumerate(arrays):
            if array is not None:
                layer_group.create_dataset(str(i), data=np.asarray(array, dtype=np.float32))


def save_hdf5_weights(
    path: str | os.PathLike,
    layers: Sequence[tuple[str, LayerArrays]],
    diffs: Sequence[tuple[str, LayerArrays]] | None = None,
) -> None:
    """Write `data/<layer>/<i>` (and `diff/...` when `diffs` is given) atomically.

    Layers keep their order (creation order is tracked); None entries leave a gap.
    """
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=True) as f:
            _write_group(f.create_group("data", track_order=True), layers)
            if diffs is not None:
                _write_group(f.create_group("diff", track_order=True), diffs)


def _dataset_index(layer: str, key: str, path: str) -> int:
    if not key.isdigit():
        raise ModelFileError(f"{path}: layer {layer!r} holds dataset {key!r}; expected names 0, 1, ...")
    return int(key)


def _read_array(ds, layer: str, key: str, path: str) -> np.ndarray:
    if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "fiu":
        raise ModelFileError(f"{path}: {layer}/{key} is not a numeric dataset")
    return np.asarray(ds[()], dtype=np.float32)


def load_hdf5_weights(path: str | os.PathLike, group: str = "data") -> dict[str, list[np.ndarray | None]]:
    """{layer name: [param 0, param 1, ...]} from `group` ("data" or "diff"), in file order.

    A missing dataset index inside a layer (a shared param Caffe did not save) is None.
    """
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(errno.ENOENT, "HDF5 weights file not found", name)
    try:
        f = h5py.File(name, "r")
    except OSError as exc:
        raise ModelFileError(f"{name}: not a readable HDF5 weights file ({exc})") from None
    out: dict[str, list[np.ndarray | None]] = {}
    try:
        with f:
            if group not in f or not isinstance(f[group], h5py.Group):
                raise ModelFileError(f"{name}: HDF5 weights file has no '{group}' group")
            for layer, layer_group in f[group].items():
                if not isinstance(layer_group, h5py.Group):
                    raise ModelFileError(f"{name}: '{group}/{layer}' is not a group of param datasets")
                indexed = {_dataset_index(layer, k, name): k for k in layer_group.keys()}
                size = max(indexed) + 1 if indexed else 0
                arrays: list[np.ndarray | None] = [None] * size
                for i, key in indexed.items():
                    arrays[i] = _read_array(layer_group[key], layer, key, name)
                out[layer] = arrays
    except (OSError, KeyError, RuntimeError) as exc:
        raise ModelFileError(f"{name}: corrupt HDF5 weights file ({exc})") from None
    return out
