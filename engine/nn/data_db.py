"""The Data layer: batches of Datum records from an LMDB, read in key order, wrapping."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from engine import common, db
from engine.blob import Blob
from engine.data_transformer import DataTransformer
from engine.errors import BrewnetError
from engine.layer import register_layer
from engine.nn.data_core import data_error
from engine.nn.data_prefetch import Batch, PrefetchingLayer

log = logging.getLogger("brewnet.data")


class DataLoadError(BrewnetError):
    """A record that cannot be turned into a sample."""


class _DatumLoader:
    """Reads `batch_size` Datums per batch from an LMDB cursor; owned by the prefetch thread."""

    def __init__(self, source: str, batch_size: int, skip: int, transformer: DataTransformer,
                 with_labels: bool, dtype: np.dtype, name: str) -> None:
        self.source = source
        self.batch_size = batch_size
        self.skip = skip
        self.transformer = transformer
        self.with_labels = with_labels
        self.dtype = dtype
        self.name = name
        self._reader: db.LMDBReader | None = None
        self._cursor: db.Cursor | None = None

    def _next(self) -> None:
        self._cursor.next()
        if not self._cursor.valid():
            log.debug("Restarting data prefetching from start.")
            self._cursor.seek_to_first()

    def _open(self) -> None:
        self._reader = db.LMDBReader(self.source)
        self._cursor = self._reader.cursor()
        if not self._cursor.valid():
            raise DataLoadError(f"layer '{self.name}': LMDB '{self.source}' is empty")
        for _ in range(self.skip):
            self._next()

    def load_batch(self) -> Batch:
        if self._cursor is None:
            self._open()
        data = None
        label = np.empty(self.batch_size, dtype=self.dtype) if self.with_labels else None
        for i in range(self.batch_size):
            where = f"layer '{self.name}': {self.source} key {self._cursor.key()!r}"
            datum = db.parse_datum(self._cursor.value(), where)
            try:
                sample = self.transformer.datum_chw(datum)
                if i == 0:  # each batch is shaped by its first datum, as in Caffe
                    shape = self.transformer.infer_shape(sample.shape)
                    data = np.empty([self.batch_size] + shape[1:], dtype=self.dtype)
                self.transformer.transform_chw(sample, data[i])
            except BrewnetError as exc:
                raise DataLoadError(f"{where}: {exc}") from None
            if label is not None:
                label[i] = datum.label
            self._next()
        return Batch(data, label)


@register_layer("Data")
class DataLayer(PrefetchingLayer):
    """data_param { source batch_size backend: LMDB rand_skip prefetch } + transform_param."""

    description = "Datum records from an LMDB, prefetched in a thread"
    min_top_blobs = 1
    max_top_blobs = 2

    def layer_setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        p = self.layer_param.data_param
        try:
            db.check_backend(int(p.backend))
        except db.DBError as exc:
            raise data_error(self, str(exc)) from None
        if p.batch_size <= 0:
            raise data_error(self, "data_param.batch_size must be positive")
        if not p.source:
            raise data_error(self, "data_param.source is empty")
        tp = self.layer_param.transform_param if self.layer_param.HasField("transform_param") else None
        try:
            transformer = DataTransformer(tp, self.phase, self.name)
            reader = db.LMDBReader(p.source)
        except BrewnetError as exc:
            raise data_error(self, str(exc)) from None
        transformer.init_rand()
        try:
            cursor = reader.cursor()
            if not cursor.valid():
                raise db.DBError(f"LMDB '{p.source}' is empty")
            first = db.parse_datum(cursor.value(), f"layer '{self.name}': {p.source}")
            shape = transformer.infer_shape(transformer.datum_chw(first).shape)
            cursor.close()
        except BrewnetError as exc:
            raise data_error(self, str(exc)) from None
        finally:
            reader.close()
        skip = 0
        if p.rand_skip:
            skip = int(common.rng().integers(0, p.rand_skip))
            log.info("Skipping first %d data points.", skip)
        shape[0] = int(p.batch_size)
        top[0].reshape(shape)
        log.info("output data size: %s", ",".join(str(d) for d in shape))
        with_labels = len(top) > 1
        if with_labels:
            top[1].reshape([int(p.batch_size)])
        loader = _DatumLoader(p.source, int(p.batch_size), skip, transformer, with_labels,
                              top[0].dtype, self.name)
        self.start_prefetch(loader, int(p.prefetch))
