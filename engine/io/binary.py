"""Binary protobuf files: .caffemodel nets, .binaryproto blobs (mean files), .solverstate.

A file that does not decode raises ModelFileError naming it (truncated or corrupt); a
missing one raises FileNotFoundError with its path. Nets are upgraded on read, as Caffe's
ReadNetParamsFromBinaryFileOrDie does.
"""

from __future__ import annotations

import errno
import os

from google.protobuf.message import DecodeError

from engine.errors import ModelFileError, PrototxtError
from engine.io.atomic import atomic_write
from engine.io.upgrade import upgrade_net
from engine.proto import caffe_pb2

BINARY_EXTENSIONS = (".caffemodel", ".binaryproto", ".solverstate")


def _read_bytes(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"{what} file not found", path) from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read {what} file: {exc.strerror or exc}") from None


def _parse(path: str | os.PathLike, message, what: str):
    name = os.fspath(path)
    data = _read_bytes(name, what)
    try:
        message.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelFileError(
            f"{name}: truncated or corrupt {what} file ({len(data)} bytes do not decode as "
            f"{message.DESCRIPTOR.full_name}: {exc})"
        ) from None
    return message


def _write(message, path: str | os.PathLike) -> None:
    atomic_write(path, message.SerializeToString())


def parse_net_binary(path: str | os.PathLike) -> caffe_pb2.NetParameter:
    """Decode only, no upgrades (Caffe's ReadProtoFromBinaryFile)."""
    return _parse(path, caffe_pb2.NetParameter(), "binary net (.caffemodel)")


def read_net_binary(path: str | os.PathLike) -> caffe_pb2.NetParameter:
    return upgrade_net(parse_net_binary(path), os.fspath(path))[0]


def write_net_binary(p: caffe_pb2.NetParameter, path: str | os.PathLike) -> None:
    _write(p, path)


def read_blobproto(path: str | os.PathLike) -> caffe_pb2.BlobProto:
    return _parse(path, caffe_pb2.BlobProto(), "blob (.binaryproto)")


def write_blobproto(blob_proto: caffe_pb2.BlobProto, path: str | os.PathLike) -> None:
    _write(blob_proto, path)


def read_blobproto_vector(path: str | os.PathLike) -> caffe_pb2.BlobProtoVector:
    return _parse(path, caffe_pb2.BlobProtoVector(), "blob vector")


def write_blobproto_vector(vector: caffe_pb2.BlobProtoVector, path: str | os.PathLike) -> None:
    _write(vector, path)


def read_solverstate(path: str | os.PathLike) -> caffe_pb2.SolverState:
    return _parse(path, caffe_pb2.SolverState(), "solver state (.solverstate)")


def write_solverstate(state: caffe_pb2.SolverState, path: str | os.PathLike) -> None:
    _write(state, path)


def read_net_param(path: str | os.PathLike) -> caffe_pb2.NetParameter:
    """A net from either format: binary for .caffemodel/.binaryproto names, text otherwise.

    A binary-named file that does not decode is tried as text before its error is raised
    (text is never retried as binary: stray text bytes can decode as a bogus message).
    """
    from engine.io.prototxt import read_net_prototxt

    name = os.fspath(path)
    if not name.lower().endswith(BINARY_EXTENSIONS):
        return read_net_prototxt(name)
    try:
        return read_net_binary(name)
    except ModelFileError as exc:
        try:
            return read_net_prototxt(name)
        except PrototxtError:
            raise exc from None
