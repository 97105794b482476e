"""Text prototxt read/write: positioned parse errors, Caffe's upgrades on read, canonical output.

Output follows C++ TextFormat::Print (what Caffe writes): fields in field-number order,
2-space indent, floats as SimpleFtoa ("%.6g", or "%.9g" when that does not round-trip),
doubles as SimpleDtoa, strings C-escaped. Same message -> same bytes.
"""

from __future__ import annotations

import difflib
import errno
import math
import os
import re
import struct

from google.protobuf import descriptor, text_encoding, text_format

from engine.errors import PrototxtError
from engine.io.atomic import atomic_write
from engine.io.upgrade import upgrade_net, upgrade_solver
from engine.proto import caffe_pb2

FD = descriptor.FieldDescriptor

# ----------------------------------------------------------------------------- printing


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    short = f"{value:.6g}"
    as_f32 = struct.unpack("f", struct.pack("f", value))[0]
    if struct.unpack("f", struct.pack("f", float(short)))[0] == as_f32:
        return short
    return f"{value:.9g}"


def _double_text(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    short = f"{value:.15g}"
    return short if float(short) == value else f"{value:.17g}"


def _scalar_text(fd: FD, value) -> str:
    t = fd.type
    if t == FD.TYPE_FLOAT:
        return _float_text(value)
    if t == FD.TYPE_DOUBLE:
        return _double_text(value)
    if t == FD.TYPE_BOOL:
        return "true" if value else "false"
    if t == FD.TYPE_ENUM:
        enum_value = fd.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else str(value)
    if t == FD.TYPE_STRING:
        return '"' + text_encoding.CEscape(value.encode("utf-8"), as_utf8=False) + '"'
    if t == FD.TYPE_BYTES:
        return '"' + text_encoding.CEscape(value, as_utf8=False) + '"'
    return str(int(value))


def _print_message(msg, indent: int, out: list[str]) -> None:
    pad = " " * indent
    for fd, value in msg.ListFields():  # sorted by field number, as C++ ListFields
        values = value if fd.is_repeated else [value]
        for item in values:
            if fd.type in (FD.TYPE_MESSAGE, FD.TYPE_GROUP):
                out.append(f"{pad}{fd.name} {{\n")
                _print_message(item, indent + 2, out)
                out.append(f"{pad}}}\n")
            else:
                out.append(f"{pad}{fd.name}: {_scalar_text(fd, item)}\n")


def message_to_text(msg) -> str:
    """Any caffe message as C++ TextFormat prints it."""
    out: list[str] = []
    _print_message(msg, 0, out)
    return "".join(out)


def net_to_text(p: caffe_pb2.NetParameter) -> str:
    return message_to_text(p)


def solver_to_text(p: caffe_pb2.SolverParameter) -> str:
    return message_to_text(p)


def write_net_prototxt(p: caffe_pb2.NetParameter, path: str | os.PathLike) -> None:
    atomic_write(path, net_to_text(p))


def write_solver_prototxt(p: caffe_pb2.SolverParameter, path: str | os.PathLike) -> None:
    atomic_write(path, solver_to_text(p))


# ----------------------------------------------------------------------------- parsing

_POSITION = re.compile(r"^\d+:\d+ : ")
_QUOTED_LINE = re.compile(r"^'.*?': ", re.S)
_NO_FIELD = re.compile(r'Message type "([\w.]+)" has no field named "(\w+)"')
_NO_ENUM = re.compile(r'Enum type "([\w.]+)" has no value named (\w+)')


def _message_descriptor(full_name: str):
    pool = caffe_pb2.DESCRIPTOR.pool
    try:
        return pool.FindMessageTypeByName(full_name)
    except KeyError:
        return None


def _hint(message: str) -> str:
    """Say what would have been accepted: close field names, or the enum's values."""
    m = _NO_FIELD.search(message)
    if m:
        desc = _message_descriptor(m.group(1))
        if desc is not None:
            names = [f.name for f in desc.fields]
            close = difflib.get_close_matches(m.group(2), names, n=3)
            if close:
                return " Did you mean " + " or ".join(f'"{c}"' for c in close) + "?"
            return f" Expected one of the fields of {m.group(1)}."
    m = _NO_ENUM.search(message)
    if m:
        try:
            enum = caffe_pb2.DESCRIPTOR.pool.FindEnumTypeByName(m.group(1))
        except KeyError:
            return ""
        names = [v.name for v in enum.values]
        close = difflib.get_close_matches(m.group(2), names, n=1)
        guess = f" Did you mean {close[0]}?" if close else ""
        return f"{guess} Expected one of: " + ", ".join(names) + "."
    return ""


def _clean_message(raw: str) -> str:
    msg = _POSITION.sub("", raw, count=1)
    return _QUOTED_LINE.sub("", msg, count=1)


def _snippet(text: str, line: int, column: int) -> str:
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return ""
    src = lines[line - 1].rstrip("\n")
    caret = " " * max(column - 1, 0) + "^"
    return f"\n  {src}\n  {caret}"


def _parse_text(text: str | bytes, message, path: str):
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = text[: exc.start].count(b"\n") + 1
            column = exc.start - (text.rfind(b"\n", 0, exc.start) + 1) + 1
            raise PrototxtError(path, line, column, "invalid UTF-8 byte in the text") from None
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        line, column = exc.GetLine() or 0, exc.GetColumn() or 0
        core = _clean_message(str(exc))
        detail = f"{core}{_hint(core)} (while parsing {message.DESCRIPTOR.full_name})"
        raise PrototxtError(path, line, column, detail + _snippet(text, line, column)) from None
    return message


def read_text_file(path: str | os.PathLike, what: str) -> bytes:
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"{what} file not found", name) from None
    except OSError as exc:
        raise PrototxtError(name, 0, 0, f"cannot read {what} file: {exc.strerror or exc}") from None


def parse_net_text(text: str | bytes, path: str = "<string>") -> caffe_pb2.NetParameter:
    """Parse only (no upgrades): what Caffe's ReadProtoFromTextFile gives."""
    return _parse_text(text, caffe_pb2.NetParameter(), path)


def parse_solver_text(text: str | bytes, path: str = "<string>") -> caffe_pb2.SolverParameter:
    return _parse_text(text, caffe_pb2.SolverParameter(), path)


def read_net_text(text: str | bytes, path: str = "<string>") -> caffe_pb2.NetParameter:
    """Parse a NetParameter and apply Caffe's upgrades (ReadNetParamsFromTextFileOrDie)."""
    return upgrade_net(parse_net_text(text, path), path)[0]


def read_net_prototxt(path: str | os.PathLike) -> caffe_pb2.NetParameter:
    name = os.fspath(path)
    return read_net_text(read_text_file(name, "net prototxt"), name)


def read_solver_text(text: str | bytes, path: str = "<string>") -> caffe_pb2.SolverParameter:
    """Parse a SolverParameter and upgrade `solver_type` (ReadSolverParamsFromTextFileOrDie)."""
    return upgrade_solver(parse_solver_text(text, path), path)[0]


def read_solver_prototxt(path: str | os.PathLike) -> caffe_pb2.SolverParameter:
    name = os.fspath(path)
    return read_solver_text(read_text_file(name, "solver prototxt"), name)
