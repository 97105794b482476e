"""The Data layer over LMDBs laid out as Caffe lays them out."""

import threading
import time

import numpy as np
import pytest

from engine import db
from engine.errors import WiringError
from engine.proto import caffe_pb2

from .helpers_data import make_layer, png_bytes, raw_datum, tops, write_raw_lmdb

N = 5


def samples():
    return [np.full((1, 2, 3), 10 * i, dtype=np.uint8) + np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
            for i in range(N)]


def data_layer(source, extra="", phase="TEST", batch=3, ntop=2):
    top = 'top: "data" top: "label"' if ntop == 2 else 'top: "data"'
    return make_layer(f'name: "d" type: "Data" {top} phase: {phase} '
                      f'data_param {{ source: "{source}" batch_size: {batch} backend: LMDB }} {extra}')


@pytest.fixture
def raw_db(tmp_path):
    path = str(tmp_path / "raw_lmdb")
    write_raw_lmdb(path, [raw_datum(s, label=i) for i, s in enumerate(samples())])
    return path


def test_reads_in_key_order_and_wraps(raw_db):
    layer = data_layer(raw_db)
    t = tops(2)
    layer.setup([], t)
    assert t[0].shape == (3, 1, 2, 3) and t[1].shape == (3,)
    labels = []
    for _ in range(3):
        layer.forward([], t)
        labels.append(t[1].data.astype(int).tolist())
        for j, lab in enumerate(labels[-1]):
            np.testing.assert_array_equal(t[0].data[j], samples()[lab])
    assert labels == [[0, 1, 2], [3, 4, 0], [1, 2, 3]]
    layer.close()


def test_db_module_writes_what_raw_lmdb_reads(tmp_path):
    path = str(tmp_path / "w")
    with db.open_writer(path) as w:
        for i, s in enumerate(samples()):
            w.put(db.format_key(i), raw_datum(s, i))
    import lmdb

    env = lmdb.open(path, readonly=True, lock=False)
    with env.begin() as txn:
        keys = [k for k, _ in txn.cursor()]
        first = caffe_pb2.Datum.FromString(txn.get(b"00000000"))
    env.close()
    assert keys == [f"{i:08d}".encode() for i in range(N)]
    assert (first.channels, first.height, first.width) == (1, 2, 3)
    with pytest.raises(db.DBError, match="already exists"):
        db.open_writer(path)


def test_train_phase_transform_and_single_top(raw_db):
    layer = data_layer(raw_db, 'transform_param { scale: 2 crop_size: 2 mirror: true }', "TRAIN", 5, 1)
    t = tops(1)
    layer.setup([], t)
    layer.forward([], t)
    assert t[0].shape == (5, 1, 2, 2)
    for j, s in enumerate(samples()):
        crops = [2 * s[:, :, w:w + 2].astype(np.float32) for w in range(2)]
        crops += [c[:, :, ::-1] for c in crops]
        assert any(np.array_equal(t[0].data[j], c) for c in crops)
    layer.close()


def test_prefetch_fills_a_bounded_queue_and_stops(raw_db):
    layer = data_layer(raw_db, "", batch=1)
    layer.layer_param.data_param.prefetch = 2
    t = tops(2)
    layer.setup([], t)
    pre = layer._prefetcher
    deadline = time.time() + 5
    while pre.qsize() < 2 and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert pre.qsize() == 2  # full but never beyond `prefetch`
    layer.forward([], t)
    assert t[1].data.tolist() == [0]
    layer.close()
    assert not pre.alive
    assert not any(th.name == "prefetch-d" and th.is_alive() for th in threading.enumerate())


def test_encoded_png_datums(tmp_path):
    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    d = caffe_pb2.Datum(data=png_bytes(rgb), label=3, encoded=True)
    path = str(tmp_path / "enc")
    write_raw_lmdb(path, [d.SerializeToString()])
    layer = data_layer(path, batch=2)
    t = tops(2)
    layer.setup([], t)
    layer.forward([], t)
    assert t[0].shape == (2, 3, 2, 2)
    bgr = rgb[:, :, ::-1].transpose(2, 0, 1)  # OpenCV channel order, CHW
    np.testing.assert_array_equal(t[0].data[0], bgr)
    np.testing.assert_array_equal(t[0].data[1], bgr)
    assert t[1].data.tolist() == [3, 3]
    layer.close()
    gray = data_layer(path, 'transform_param { force_gray: true }', batch=1)
    t = tops(2)
    gray.setup([], t)
    gray.forward([], t)
    # OpenCV grey: (4899 R + 9617 G + 1868 B + 8192) >> 14; pure red 255 -> 76.245 -> 76
    assert t[0].shape == (1, 1, 2, 2) and t[0].data[0, 0, 0, 0] == 76
    gray.close()


def test_leveldb_and_missing_source_errors(tmp_path, raw_db):
    leveldb = make_layer(f'name: "d" type: "Data" top: "data" '
                         f'data_param {{ source: "{raw_db}" batch_size: 1 }}')
    with pytest.raises(WiringError, match="LEVELDB is not supported; convert the database to LMDB"):
        leveldb.setup([], tops(1))
    with pytest.raises(WiringError, match="does not exist"):
        data_layer(str(tmp_path / "nope")).setup([], tops(2))
