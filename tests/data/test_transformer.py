"""DataTransformer on a hand-made 2 x 3 x 4 datum; expected values worked out by hand."""

import numpy as np
import pytest
from google.protobuf import text_format

from engine.data_transformer import DataTransformer, TransformError
from engine.proto import caffe_pb2

# channel 0 holds 0..11, channel 1 holds 12..23, each row-major 3 x 4
SAMPLE = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)


def datum() -> caffe_pb2.Datum:
    return caffe_pb2.Datum(channels=2, height=3, width=4, data=SAMPLE.tobytes(), label=1)


def transformer(text: str, phase=caffe_pb2.TEST) -> DataTransformer:
    t = DataTransformer(text_format.Parse(text, caffe_pb2.TransformationParameter()), phase, "t")
    t.init_rand()
    return t


def test_centre_crop_mean_values_and_scale_in_test():
    # crop 2 in TEST: h_off = (3-2)//2 = 0, w_off = (4-2)//2 = 1 -> rows 0-1, cols 1-2
    # ch0 [[1,2],[5,6]] - 1, ch1 [[13,14],[17,18]] - 2, then * 0.5
    out = transformer("crop_size: 2 mean_value: 1 mean_value: 2 scale: 0.5").transform_datum(datum())
    np.testing.assert_allclose(out, [[[0, 0.5], [2, 2.5]], [[5.5, 6], [7.5, 8]]])
    assert out.dtype == np.float32


def test_single_mean_value_is_used_for_every_channel():
    out = transformer("mean_value: 10").transform_datum(datum())
    np.testing.assert_array_equal(out, SAMPLE.astype(np.float32) - 10)


def test_mean_file_is_indexed_by_source_position(tmp_path):
    mean = np.arange(24, dtype=np.float32).reshape(2, 3, 4) * 0.25
    blob = caffe_pb2.BlobProto(num=1, channels=2, height=3, width=4)
    blob.data.extend(mean.ravel().tolist())
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(blob.SerializeToString())
    out = transformer(f'crop_size: 2 mean_file: "{path}" scale: 2').transform_datum(datum())
    # value v at source position with mean 0.25 v: (v - 0.25 v) * 2 = 1.5 v
    np.testing.assert_allclose(out, [[[1.5, 3], [7.5, 9]], [[19.5, 21], [25.5, 27]]])


def test_mirror_and_random_crop_in_train_cover_every_choice():
    t = transformer("crop_size: 2 mirror: true", caffe_pb2.TRAIN)
    seen = set()
    for _ in range(200):
        out = t.transform_datum(datum())
        found = None
        for h in range(2):
            for w in range(3):
                crop = SAMPLE[:, h:h + 2, w:w + 2].astype(np.float32)
                if np.array_equal(out, crop):
                    found = (h, w, False)
                elif np.array_equal(out, crop[:, :, ::-1]):
                    found = (h, w, True)
        assert found is not None
        seen.add(found)
    assert len(seen) == 12  # 2 x 3 offsets, each mirrored or not


def test_test_phase_mirror_still_random_but_crop_centred():
    t = transformer("crop_size: 2 mirror: true", caffe_pb2.TEST)
    outs = {t.transform_datum(datum()).tobytes() for _ in range(50)}
    centre = SAMPLE[:, 0:2, 1:3].astype(np.float32)
    assert outs == {centre.tobytes(), np.ascontiguousarray(centre[:, :, ::-1]).tobytes()}


def test_reproducible_from_seed():
    from engine import common

    results = []
    for _ in range(2):
        common.set_random_seed(5)
        t = transformer("crop_size: 2 mirror: true", caffe_pb2.TRAIN)
        results.append([t.transform_datum(datum()).tobytes() for _ in range(10)])
    assert results[0] == results[1]


def test_float_data_datum():
    d = caffe_pb2.Datum(channels=1, height=1, width=3)
    d.float_data.extend([0.5, -1.0, 2.0])
    out = transformer("scale: 2").transform_datum(d)
    np.testing.assert_allclose(out, [[[1.0, -2.0, 4.0]]])


def test_errors_are_clear():
    with pytest.raises(TransformError, match="at the same time"):
        DataTransformer(caffe_pb2.TransformationParameter(mean_file="x", mean_value=[1]), 0, "t")
    with pytest.raises(TransformError, match="force_color and force_gray"):
        DataTransformer(caffe_pb2.TransformationParameter(force_color=True, force_gray=True), 0)
    with pytest.raises(TransformError, match="crop_size 5"):
        transformer("crop_size: 5").transform_datum(datum())
    with pytest.raises(TransformError, match="mean_value"):
        transformer("mean_value: 1 mean_value: 2 mean_value: 3").transform_datum(datum())
