"""Data layers that need no file: Input, DummyData and MemoryData."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from engine.blob import Blob
from engine.data_transformer import DataTransformer
from engine.errors import BrewnetError, WiringError
from engine.fillers import fill
from engine.layer import Layer, register_layer
from engine.proto import caffe_pb2

log = logging.getLogger("brewnet.data")


def data_error(layer: Layer, message: str) -> WiringError:
    """A WiringError that starts with the layer's name and type."""
    return WiringError(f"layer '{layer.name}' of type {layer.type}: {message}", layer=layer.name)


def shape_of(layer: Layer, shape: caffe_pb2.BlobShape) -> list[int]:
    dims = [int(d) for d in shape.dim]
    if any(d < 0 for d in dims):
        raise data_error(layer, f"shape {dims} has a negative dimension")
    return dims


@register_layer("Input")
class InputLayer(Layer):
    """Tops the caller fills (deploy nets); shapes from input_param, nothing computed."""

    category = "data"
    description = "Net inputs filled by the caller"
    exact_num_bottom_blobs = 0
    min_top_blobs = 1

    def layer_setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        shapes = self.layer_param.input_param.shape
        if len(shapes) not in (0, 1, len(top)):
            raise data_error(self, "Must specify 'shape' once, once per top blob, or not at all: "
                                   f"{len(top)} tops vs. {len(shapes)} shapes.")
        for i, t in enumerate(top):
            if shapes:
                t.reshape(shape_of(self, shapes[0 if len(shapes) == 1 else i]))

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        """Input tops keep whatever shape the caller gave them."""

    def forward_cpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        """Nothing to compute."""


@register_layer("DummyData")
class DummyDataLayer(Layer):
    """Filler-generated tops. Constant fillers fill once at setup; others refill every forward."""

    category = "data"
    description = "Tops filled by fillers (testing, benchmarks)"
    exact_num_bottom_blobs = 0
    min_top_blobs = 1

    def layer_setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        p = self.layer_param.dummy_data_param
        n = len(top)
        n_fill = len(p.data_filler)
        if n_fill not in (0, 1, n):
            raise data_error(self, "Number of data fillers must be 0, 1 or equal to the number of tops: "
                                   f"{n} tops vs. {n_fill} data fillers.")
        legacy = bool(len(p.num) or len(p.channels) or len(p.height) or len(p.width))
        if legacy:
            if len(p.shape):
                raise data_error(self, "Both shape and legacy fields were specified")
            for field in ("num", "channels", "height", "width"):
                k = len(getattr(p, field))
                if k not in (1, n):
                    raise data_error(self, f"Must specify '{field}' once, or once per top blob ({n}); "
                                           f"specified {k}.")
        elif len(p.shape) not in (1, n):
            raise data_error(self, f"Must specify 'shape' once, or once per top blob ({n}); "
                                   f"specified {len(p.shape)}.")
        if n_fill <= 1:
            filler = caffe_pb2.FillerParameter()
            if n_fill == 1:
                filler.CopyFrom(p.data_filler[0])
            self.fillers = [filler]
        else:
            self.fillers = list(p.data_filler)
        self.refill = [f.type != "constant" for f in self.fillers]
        for i, t in enumerate(top):
            if legacy:
                dims = [int(getattr(p, f)[0 if len(getattr(p, f)) == 1 else i])
                        for f in ("num", "channels", "height", "width")]
                t.reshape(dims)
            else:
                t.reshape(shape_of(self, p.shape[0 if len(p.shape) == 1 else i]))
        for i, t in enumerate(top):  # the one-time fill of constant tops
            fid = i if len(self.fillers) > 1 else 0
            if not self.refill[fid]:
                fill(t, self.fillers[fid])

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        """Shapes are fixed at setup."""

    def forward_cpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        for i, t in enumerate(top):
            fid = i if len(self.fillers) > 1 else 0
            if self.refill[fid]:
                fill(t, self.fillers[fid])


@register_layer("MemoryData")
class MemoryDataLayer(Layer):
    """Batches from arrays held in memory, cycling; `reset` hands over the arrays.

    As in Caffe, `reset` uses the arrays as they are (transform_param only applies
    to `add_datum_vector` / `add_image_vector`), and the label top is (N,) after
    setup but (N, 1, 1, 1) after a forward pass.
    """

    category = "data"
    description = "Batches from in-memory arrays (pycaffe set_input_arrays)"
    exact_num_bottom_blobs = 0
    exact_num_top_blobs = 2

    def layer_setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        p = self.layer_param.memory_data_param
        self.batch_size, self.channels, self.height, self.width = (
            int(p.batch_size), int(p.channels), int(p.height), int(p.width))
        self.size = self.channels * self.height * self.width
        if self.batch_size * self.size <= 0:
            raise data_error(self, "batch_size, channels, height, and width must be specified and "
                                   "positive in memory_data_param")
        self.dtype = top[0].dtype
        top[0].reshape([self.batch_size, self.channels, self.height, self.width])
        top[1].reshape([self.batch_size])
        self.transformer = DataTransformer(
            self.layer_param.transform_param if self.layer_param.HasField("transform_param") else None,
            self.phase, self.name)
        self.transformer.init_rand()
        self._data: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        self.n = 0
        self.pos = 0
        self.has_new_data = False

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        """Tops are shaped in forward."""

    def reset(self, data, labels, n: int | None = None) -> None:
        """Use `data` (n x C x H x W) and `labels` (n values) from now on; n % batch_size == 0."""
        if data is None or labels is None:
            raise BrewnetError(f"MemoryData '{self.name}': reset needs data and labels")
        data = np.asarray(data, dtype=top_dtype(self))
        labels = np.asarray(labels, dtype=top_dtype(self))
        n = int(data.shape[0] if n is None else n)
        if n <= 0 or n % self.batch_size != 0:
            raise BrewnetError(f"MemoryData '{self.name}': n must be a multiple of batch size "
                               f"{self.batch_size}, got {n}")
        if data.size < n * self.size or labels.size < n:
            raise BrewnetError(f"MemoryData '{self.name}': need {n} samples of {self.channels} x "
                               f"{self.height} x {self.width} and {n} labels, got data of shape "
                               f"{data.shape} and labels of shape {labels.shape}")
        if self.layer_param.HasField("transform_param"):
            log.warning("MemoryData does not transform array data on Reset()")
        self._data = data.reshape(-1)[: n * self.size].reshape(n, self.channels, self.height, self.width)
        self._labels = labels.reshape(-1)[:n]
        self.n = n
        self.pos = 0

    def set_batch_size(self, new_size: int) -> None:
        if self.has_new_data:
            raise BrewnetError(f"MemoryData '{self.name}': can't change batch_size until current data "
                               "has been consumed")
        self.batch_size = int(new_size)

    def _add(self, samples: np.ndarray, labels: Sequence[int]) -> None:
        if self.has_new_data:
            raise BrewnetError(f"MemoryData '{self.name}': can't add data until current data has "
                               "been consumed")
        num = len(labels)
        if num == 0 or num % self.batch_size != 0:
            raise BrewnetError(f"MemoryData '{self.name}': the added data must be a non-empty multiple "
                               f"of the batch size {self.batch_size}, got {num}")
        self.reset(samples, np.asarray(labels), num)
        self.has_new_data = True

    def _transform_all(self, chw_samples: Sequence[np.ndarray]) -> np.ndarray:
        out = np.empty((len(chw_samples), self.channels, self.height, self.width), dtype=top_dtype(self))
        for i, sample in enumerate(chw_samples):
            try:
                self.transformer.transform_chw(sample, out[i])
            except BrewnetError as exc:
                raise BrewnetError(f"MemoryData '{self.name}': {exc}") from None
        return out

    def add_datum_vector(self, datums: Sequence[caffe_pb2.Datum]) -> None:
        """Transform Datums (transform_param applies) and serve them next."""
        samples = [self.transformer.datum_chw(d) for d in datums]
        self._add(self._transform_all(samples), [d.label for d in datums])

    def add_image_vector(self, images: Sequence[np.ndarray], labels: Sequence[int]) -> None:
        """Caffe's AddMatVector: H x W x C (BGR) images, transformed."""
        if len(images) != len(labels):
            raise BrewnetError(f"MemoryData '{self.name}': vector of images and labels must be equal size")
        samples = [np.ascontiguousarray(np.asarray(im).transpose(2, 0, 1)) for im in images]
        self._add(self._transform_all(samples), labels)

    def forward_cpu(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        if self._data is None:
            raise BrewnetError(f"MemoryData '{self.name}' needs to be initialized by calling reset "
                               "(pycaffe: net.set_input_arrays)")
        b = self.batch_size
        top[0].reshape([b, self.channels, self.height, self.width])
        top[1].reshape([b, 1, 1, 1])
        idx = (self.pos + np.arange(b)) % self.n
        top[0].data[...] = self._data[idx]
        top[1].data[...] = self._labels[idx].reshape(b, 1, 1, 1)
        self.pos = (self.pos + b) % self.n
        if self.pos == 0:
            self.has_new_data = False


def top_dtype(layer: Layer) -> np.dtype:
    return np.dtype(getattr(layer, "dtype", np.float32))
