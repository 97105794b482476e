"""Solver-state files: Caffe's SolverState protobuf (.solverstate) and its HDF5 form."""

from __future__ import annotations

import os
import tempfile

import h5py
import numpy as np

from engine.blob import Blob, proto_shape
from engine.errors import ModelFileError
from engine.proto import caffe_pb2


def write_state_binary(path: str, it: int, learned_net: str, current_step: int, history: list[Blob]) -> None:
    from engine.io import write_solverstate

    state = caffe_pb2.SolverState(iter=it, learned_net=learned_net, current_step=current_step)
    for blob in history:
        state.history.append(blob.to_proto())
    write_solverstate(state, path)


def read_state_binary(path: str) -> tuple[int, str, int, list[np.ndarray]]:
    from engine.io import read_solverstate

    state = read_solverstate(path)
    history = []
    for proto in state.history:
        values = np.asarray(proto.double_data or proto.data, dtype=np.float64)
        history.append(values.reshape(proto_shape(proto)) if proto_shape(proto) else values)
    return state.iter, state.learned_net, state.current_step, history


def write_state_hdf5(path: str, it: int, learned_net: str, current_step: int, history: list[Blob]) -> None:
    """Caffe's layout: datasets iter, learned_net, current_step and group history/0..N-1."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".h5", dir=folder)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("iter", data=np.int32(it))
            f.create_dataset("learned_net", data=np.bytes_(learned_net))
            f.create_dataset("current_step", data=np.int32(current_step))
            group = f.create_group("history")
            for i, blob in enumerate(history):
                group.create_dataset(str(i), data=blob.cpu_data())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_state_hdf5(path: str) -> tuple[int, str, int, list[np.ndarray]]:
    try:
        with h5py.File(path, "r") as f:
            it = int(f["iter"][()])
            raw = f["learned_net"][()]
            learned_net = raw.decode() if isinstance(raw, bytes) else str(raw)
            current_step = int(f["current_step"][()])
            group = f["history"]
            history = [np.asarray(group[str(i)]) for i in range(len(group))]
    except (OSError, KeyError) as exc:
        raise ModelFileError(f"{path}: not a readable HDF5 solver state ({exc})") from None
    return it, learned_net, current_step, history
