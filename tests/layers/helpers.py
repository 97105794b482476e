"""Tiny shared helpers for layer tests: random blobs and LayerParameter from text."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from google.protobuf import text_format

from engine.blob import Blob
from engine.proto import caffe_pb2


def make_blobs(shapes: Sequence[Sequence[int]], rng: np.random.Generator, dtype=np.float64) -> list[Blob]:
    """One Blob per shape, data drawn from a standard normal."""
    blobs = []
    for shape in shapes:
        blob = Blob(dtype=dtype)
        blob.reshape(list(shape))  # explicit, so a 0-axis shape gives a 1-element blob
        blob.data[...] = rng.standard_normal(tuple(shape))
        blobs.append(blob)
    return blobs


def layer_param(text: str) -> caffe_pb2.LayerParameter:
    """Parse a LayerParameter from prototxt text."""
    return text_format.Parse(text, caffe_pb2.LayerParameter())
