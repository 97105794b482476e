"""File formats: text prototxt, binary protobuf, HDF5 weights; Caffe's upgrades on every read.

Also pycaffe's `caffe.io` helpers (engine.io.pycaffe_io), re-exported here.
"""

from __future__ import annotations

import importlib

from engine.io import upgrade
from engine.io.atomic import atomic_path, atomic_write
from engine.io.binary import (
    read_blobproto,
    read_blobproto_vector,
    read_net_binary,
    read_net_param,
    read_solverstate,
    write_blobproto,
    write_blobproto_vector,
    write_net_binary,
    write_solverstate,
)
from engine.io.hdf5_weights import load_hdf5_weights, save_hdf5_weights
from engine.io.prototxt import (
    message_to_text,
    net_to_text,
    read_net_prototxt,
    read_net_text,
    read_solver_prototxt,
    read_solver_text,
    solver_to_text,
    write_net_prototxt,
    write_solver_prototxt,
)

__all__ = [
    "atomic_path",
    "atomic_write",
    "load_hdf5_weights",
    "message_to_text",
    "net_to_text",
    "read_blobproto",
    "read_blobproto_vector",
    "read_net_binary",
    "read_net_param",
    "read_net_prototxt",
    "read_net_text",
    "read_solver_prototxt",
    "read_solver_text",
    "read_solverstate",
    "save_hdf5_weights",
    "solver_to_text",
    "upgrade",
    "write_blobproto",
    "write_blobproto_vector",
    "write_net_binary",
    "write_net_prototxt",
    "write_solver_prototxt",
    "write_solverstate",
]

_PYCAFFE_NAMES = (
    "blobproto_to_array",
    "array_to_blobproto",
    "arraylist_to_blobprotovector_str",
    "blobprotovector_str_to_arraylist",
    "array_to_datum",
    "datum_to_array",
    "Transformer",
    "load_image",
    "resize_image",
    "oversample",
)


def _export_pycaffe_io() -> None:
    """pycaffe's caffe.io helpers live in engine.io.pycaffe_io (written separately)."""
    try:
        module = importlib.import_module("engine.io.pycaffe_io")
    except ModuleNotFoundError as exc:
        if exc.name != "engine.io.pycaffe_io":
            raise
        return
    for name in _PYCAFFE_NAMES:
        if hasattr(module, name):  # a missing helper must not break `import engine`
            globals()[name] = getattr(module, name)
            __all__.append(name)


_export_pycaffe_io()
