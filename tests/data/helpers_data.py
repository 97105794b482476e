"""Shared helpers for the data tests: layer params from text, tops, raw Caffe-layout LMDBs."""

from __future__ import annotations

import io

import lmdb
import numpy as np
from google.protobuf import text_format
from PIL import Image

from engine.blob import Blob
from engine.layer import create_layer
from engine.proto import caffe_pb2


def make_layer(text: str):
    return create_layer(text_format.Parse(text, caffe_pb2.LayerParameter()))


def tops(n: int) -> list[Blob]:
    return [Blob() for _ in range(n)]


def raw_datum(chw: np.ndarray, label: int) -> bytes:
    """A Datum as Caffe's CVMatToDatum fills it, serialized with caffe_pb2 directly."""
    d = caffe_pb2.Datum()
    d.channels, d.height, d.width = chw.shape
    d.data = chw.astype(np.uint8).tobytes()
    d.label = label
    d.encoded = False
    return d.SerializeToString()


def write_raw_lmdb(path: str, values: list[bytes]) -> None:
    """Keys %08d, one transaction, using py-lmdb only (independent of engine.db)."""
    env = lmdb.open(path, map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, v in enumerate(values):
            txn.put(f"{i:08d}".encode(), v)
    env.close()


def png_bytes(rgb_or_gray: np.ndarray) -> bytes:
    mode = "L" if rgb_or_gray.ndim == 2 else "RGB"
    buf = io.BytesIO()
    Image.fromarray(rgb_or_gray.astype(np.uint8), mode).save(buf, format="PNG")
    return buf.getvalue()
