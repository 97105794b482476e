"""Brewnet engine: Caffe's semantics in Python, and pycaffe's surface.

`import engine as caffe` runs ordinary pycaffe scripts.
"""

from __future__ import annotations

import importlib

from engine import common, proto
from engine.blob import Blob
from engine.common import set_device, set_mode_cpu, set_mode_gpu, set_random_seed
from engine.layer import layer_type_list
from engine.proto.caffe_pb2 import TEST, TRAIN

# Pieces that land module by module: each name is exported once its module exists.
_OPTIONAL_EXPORTS = {
    "engine.net": ("Net", "filter_net", "insert_splits"),
    "engine.pycaffe": ("Layer",),
    "engine.net_spec": ("NetSpec", "layers", "params", "to_proto"),
    "engine.solvers": (
        "Solver",
        "SGDSolver",
        "NesterovSolver",
        "AdaGradSolver",
        "RMSPropSolver",
        "AdaDeltaSolver",
        "AdamSolver",
        "get_solver",
    ),
}


def _export_optional() -> None:
    for sub in ("io", "net_spec"):  # pycaffe's caffe.io and caffe.net_spec
        try:
            globals()[sub] = importlib.import_module(f"engine.{sub}")
        except ModuleNotFoundError as exc:
            if exc.name != f"engine.{sub}":
                raise
    for module_name, names in _OPTIONAL_EXPORTS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        for name in names:
            if hasattr(module, name):
                globals()[name] = getattr(module, name)


_export_optional()

__all__ = [
    "Blob",
    "TEST",
    "TRAIN",
    "common",
    "layer_type_list",
    "proto",
    "set_device",
    "set_mode_cpu",
    "set_mode_gpu",
    "set_random_seed",
]
