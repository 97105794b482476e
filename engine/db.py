"""LMDB access in Caffe's layout: one record per sample, value = a serialized Datum.

Caffe's `db::LMDB` opens the source directory read-only for reading and creates a
fresh directory (which must not exist yet) for writing; it commits every 1,000
puts. Keys are whatever the writer chose (`%08d` for MNIST, `%08d_<path>` for
convert_imageset) and records are read back in LMDB's byte-wise key order.
LevelDB is not available here, so asking for it fails with a clear message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import lmdb

from engine.errors import BrewnetError
from engine.proto import caffe_pb2

LEVELDB_MESSAGE = "LEVELDB is not supported; convert the database to LMDB"
COMMIT_EVERY = 1000
_INITIAL_MAP_SIZE = 1 << 24


class DBError(BrewnetError):
    """A database that cannot be opened, read or written."""


def check_backend(backend: str | int) -> str:
    """Normalise a backend name or DataParameter.DB value to 'lmdb'; LevelDB is refused."""
    if isinstance(backend, int):
        backend = "lmdb" if backend == caffe_pb2.DataParameter.LMDB else "leveldb"
    name = str(backend).lower()
    if name == "leveldb":
        raise DBError(LEVELDB_MESSAGE)
    if name != "lmdb":
        raise DBError(f"unknown database backend {backend!r}; use lmdb")
    return name


def format_key(index: int) -> str:
    """Caffe's format_int(index, 8): zero-padded to eight digits."""
    return f"{index:08d}"


class LMDBReader:
    """Read-only view of an LMDB directory; iterates (key, value) in key order."""

    def __init__(self, path: str) -> None:
        if not os.path.isdir(path):
            raise DBError(f"LMDB '{path}' does not exist (expected a directory holding data.mdb)")
        try:
            self._env = lmdb.open(path, readonly=True, lock=False, readahead=False, subdir=True)
        except lmdb.Error as exc:
            raise DBError(f"cannot open LMDB '{path}': {exc}") from None
        self.path = path

    def __len__(self) -> int:
        return int(self._env.stat()["entries"])

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        with self._env.begin(buffers=False) as txn:
            yield from txn.cursor()

    def cursor(self) -> Cursor:
        return Cursor(self)

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> LMDBReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Cursor:
    """Caffe's db::Cursor: seek_to_first / next / valid / key / value; wraps only when asked."""

    def __init__(self, reader: LMDBReader) -> None:
        self._txn = reader._env.begin(buffers=False)
        self._cursor = self._txn.cursor()
        self._valid = self._cursor.first()
        self.path = reader.path

    def seek_to_first(self) -> None:
        self._valid = self._cursor.first()

    def next(self) -> None:
        self._valid = self._cursor.next()

    def valid(self) -> bool:
        return bool(self._valid)

    def key(self) -> bytes:
        return self._cursor.key()

    def value(self) -> bytes:
        return self._cursor.value()

    def close(self) -> None:
        self._cursor.close()
        self._txn.abort()


class LMDBWriter:
    """A new LMDB (the directory must not exist, as with Caffe's db::NEW); puts are
    committed every `COMMIT_EVERY` records and on close. The map grows as needed."""

    def __init__(self, path: str) -> None:
        if os.path.exists(path):
            raise DBError(f"mkdir {path} failed: it already exists (remove it or choose another name)")
        os.makedirs(path)
        self.path = path
        self._map_size = _INITIAL_MAP_SIZE
        self._env = lmdb.open(path, map_size=self._map_size, subdir=True)
        self._pending: list[tuple[bytes, bytes]] = []
        self.count = 0

    def put(self, key: str | bytes, value: bytes) -> None:
        self._pending.append((key.encode() if isinstance(key, str) else key, value))
        self.count += 1
        if len(self._pending) >= COMMIT_EVERY:
            self.commit()

    def commit(self) -> None:
        while self._pending:
            try:
                with self._env.begin(write=True) as txn:
                    for key, value in self._pending:
                        txn.put(key, value)
                self._pending.clear()
            except lmdb.MapFullError:
                self._map_size *= 2
                self._env.set_mapsize(self._map_size)

    def close(self) -> None:
        self.commit()
        self._env.close()

    def __enter__(self) -> LMDBWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self._env.close()


def open_reader(path: str, backend: str | int = "lmdb") -> LMDBReader:
    check_backend(backend)
    return LMDBReader(path)


def open_writer(path: str, backend: str | int = "lmdb") -> LMDBWriter:
    check_backend(backend)
    return LMDBWriter(path)


def parse_datum(value: bytes, where: str = "") -> caffe_pb2.Datum:
    datum = caffe_pb2.Datum()
    try:
        datum.ParseFromString(value)
    except Exception as exc:  # protobuf raises DecodeError and others
        raise DBError(f"{where or 'database'}: record is not a serialized Datum ({exc})") from None
    return datum
