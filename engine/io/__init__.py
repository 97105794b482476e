"""File formats: text prototxt, binary protobuf, HDF5 weights; Caffe's upgrades on every read.

Also pycaffe's `caffe.io` helpers (engine.io.pycaffe_io), re-exported here.
"""

from __future__ import annotations

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
