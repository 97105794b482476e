"""HDF5Data (rows of named datasets from listed .h5 files) and HDF5Output."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import h5py
import numpy as np

from engine import common
from engine.blob import Blob
from engine.errors import BrewnetError
from engine.layer import Layer, register_layer
from engine.nn.data_core import data_error

log = logging.getLogger("brewnet.data")

HDF5_DATA_DATASET_NAME = "data"
HDF5_DATA_LABEL_NAME = "label"


class HDF5DataError(BrewnetError):
    """An .h5 file or its list that the HDF5 layers cannot use."""


@register_layer("HDF5Data")
class HDF5DataLayer(Layer):
    """Each top is the dataset of the same name; rows are served in (optionally shuffled) order.

    Paths in the source list are used as written (relative ones from the working
    directory), as in Caffe. With shuffle, the file order is reshuffled after each
    pass over all files and the rows after each pass over a file.
    """

    category = "data"
    description = "Rows of named datasets from HDF5 files"
    exact_num_bottom_blobs = 0
    min_top_blobs = 1

    def layer_setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        if self.layer_param.HasField("transform_param"):
            raise data_error(self, "HDF5Data does not transform data.")
        p = self.layer_param.hdf5_data_param
        if p.batch_size <= 0:
            raise data_error(self, "hdf5_data_param.batch_size must be positive")
        try:
            with open(p.source) as fh:
                self.filenames = fh.read().split()
        except OSError:
            raise data_error(self, f"Failed to open source file: {p.source}") from None
        if not self.filenames:
            raise data_error(self, f"Must have at least 1 HDF5 filename listed in {p.source}")
        log.info("Number of HDF5 files: %d", len(self.filenames))
        self.shuffle = bool(p.shuffle)
        self.batch_size = int(p.batch_size)
        self.dtype = top[0].dtype
        self.file_permutation = np.arange(len(self.filenames))
        if self.shuffle:
            common.rng().shuffle(self.file_permutation)
        self.current_file = 0
        self._load(self.filenames[self.file_permutation[0]])
        self.current_row = 0
        for i, t in enumerate(top):
            t.reshape([self.batch_size] + list(self.hdf_blobs[i].shape[1:]))

    def _load(self, filename: str) -> None:
        names = list(self.layer_param.top)
        blobs = []
        try:
            with h5py.File(filename, "r") as f:
                for name in names:
                    if name not in f or not isinstance(f[name], h5py.Dataset):
                        raise data_error(self, f"Failed to find HDF5 dataset {name!r} in {filename}")
                    ds = f[name]
                    if ds.dtype.kind not in "fiub":
                        raise data_error(self, f"dataset {name!r} in {filename} holds {ds.dtype}; "
                                               "expected float or integer data")
                    if ds.ndim < 1:
                        raise data_error(self, f"dataset {name!r} in {filename}: Input must have at least "
                                               "1 axis.")
                    blobs.append(np.asarray(ds[()], dtype=self.dtype))
        except OSError as exc:
            raise data_error(self, f"Failed opening HDF5 file: {filename} ({exc})") from None
        num = blobs[0].shape[0]
        for name, b in zip(names, blobs, strict=True):
            if b.shape[0] != num:
                raise data_error(self, f"{filename}: dataset {name!r} has {b.shape[0]} rows, "
                                       f"{names[0]!r} has {num}")
        self.hdf_blobs = blobs
        self.data_permutation = np.arange(num)
        if self.shuffle:
            common.rng().shuffle(self.data_permutation)

    def _next(self) -> None:
        self.current_row += 1
        if self.current_row == self.hdf_blobs[0].shape[0]:
            if len(self.filenames) > 1:
                self.current_file += 1
                if self.current_file == len(self.filenames):
                    self.current_file = 0
                    if self.shuffle:
                        common.rng().shuffle(self.file_permutation)
                self._load(self.filenames[self.file_permutation[self.current_file]])
            self.current_row = 0
            if self.shuffle:
                common.rng().shuffle(self.data_permutation)

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        """Tops are shaped at setup."""

    def forward_cpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        for i in range(self.batch_size):
            row = self.data_permutation[self.current_row]
            for j, t in enumerate(top):
                src = self.hdf_blobs[j]
                if src.shape[1:] != t.shape[1:]:
                    raise data_error(self, f"dataset {self.layer_param.top[j]!r} rows have shape "
                                           f"{src.shape[1:]} in this file, expected {t.shape[1:]}")
                t.data[i] = src[row]
            self._next()


@register_layer("HDF5Output")
class HDF5OutputLayer(Layer):
    """Writes bottom 0 as "data" and bottom 1 as "label" (legacy 4-D shapes) to file_name.

    The file is created (truncated) at setup. Like Caffe, one file holds one batch:
    a second forward pass into the same file is refused rather than silently lost.
    """

    category = "data"
    description = "Write data and label bottoms to an HDF5 file"
    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 0

    def layer_setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        self.file_name = self.layer_param.hdf5_output_param.file_name
        if not self.file_name:
            raise data_error(self, "hdf5_output_param.file_name is empty")
        try:
            with h5py.File(self.file_name, "w"):
                pass
        except OSError as exc:
            raise data_error(self, f"Failed to open HDF5 file {self.file_name} ({exc})") from None
        self.written = False

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        """No tops."""

    def forward_cpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        try:
            shapes = [(b.num, b.channels, b.height, b.width) for b in bottom[:2]]
        except ValueError:
            raise data_error(self, "bottoms must have at most 4 axes") from None
        if shapes[0][0] != shapes[1][0]:
            raise data_error(self, "data blob and label blob must have the same batch size")
        if self.written:
            raise data_error(self, f"datasets already written to {self.file_name}; HDF5Output saves "
                                   "one batch per file")
        log.info("Saving HDF5 file %s", self.file_name)
        with h5py.File(self.file_name, "a") as f:
            for name, b, shape in zip((HDF5_DATA_DATASET_NAME, HDF5_DATA_LABEL_NAME), bottom, shapes,
                                      strict=False):
                f.create_dataset(name, data=np.asarray(b.cpu_data()).reshape(shape))
        self.written = True
        log.info("Successfully saved %d rows", shapes[0][0])

    def backward_cpu(self, top, propagate_down, bottom) -> None:
        """Nothing to propagate."""
