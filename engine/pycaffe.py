"""pycaffe's `caffe.Layer`: the base class users subclass for `type: "Python"` layers.

A user layer is plain Python: `setup`, `reshape`, `forward`, `backward` receive
engine Blobs (whose `data`/`diff`/`reshape` behave like pycaffe's). The engine
side (`engine.nn.python.PythonLayer`) sets `param_str` and `phase` before
`setup`, as Caffe's PythonLayer::LayerSetUp does, and uses `self.blobs` as the
layer's learnable parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from engine.blob import Blob
from engine.proto import caffe_pb2


class BlobVec(list):
    """A layer's parameter blobs; pycaffe's `self.blobs.add_blob(*shape)` appends a zeroed blob."""

    def __init__(self, blobs: Iterable[Blob] = (), dtype=np.float32) -> None:
        super().__init__(blobs)
        self.dtype = np.dtype(dtype)

    def add_blob(self, *shape: int) -> None:
        """Append a new blob of this shape (ints, as pycaffe takes them); returns None like pycaffe."""
        dims = []
        for d in shape:
            if not isinstance(d, int | np.integer):
                raise TypeError(f"add_blob takes int dimensions, got {d!r} ({type(d).__name__})")
            dims.append(int(d))
        self.append(Blob(dims, dtype=self.dtype))


class Layer:
    """Subclass and define `setup`, `reshape`, `forward` and `backward` (pycaffe's caffe.Layer)."""

    def __init__(self, layer_param: caffe_pb2.LayerParameter | None = None) -> None:
        self._layer_param = caffe_pb2.LayerParameter()
        if layer_param is not None:
            self._layer_param.CopyFrom(layer_param)
        self._blobs = BlobVec()
        self.param_str = self._layer_param.python_param.param_str
        self.phase = int(self._layer_param.phase)

    @property
    def blobs(self) -> BlobVec:
        """Learnable blobs; read-only attribute as in pycaffe (add with `self.blobs.add_blob`)."""
        return self._blobs

    @property
    def type(self) -> str:
        return "Python"

    @property
    def layer_param(self) -> caffe_pb2.LayerParameter:
        return self._layer_param

    # -- the methods a user layer overrides
    def setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        """One-time setup; the default does nothing."""

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        """Shape the tops; called before every forward. The default does nothing."""

    def forward(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define forward(self, bottom, top)")

    def backward(self, top: Sequence[Blob], propagate_down: Sequence[bool], bottom: Sequence[Blob]) -> None:
        raise NotImplementedError(
            f"{type(self).__name__} does not define backward(self, top, propagate_down, bottom)"
        )
