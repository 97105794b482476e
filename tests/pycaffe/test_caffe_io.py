"""pycaffe's caffe.io helpers: proto conversions, Transformer, image loading/resizing, oversample."""

import io

import numpy as np
import pytest
from PIL import Image

import engine as caffe
from engine.io import pycaffe_io as cio
from engine.proto import caffe_pb2

# -- BlobProto ---------------------------------------------------------------------


def test_blobproto_round_trip_with_diff():
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7
    diff = -arr[::-1].copy()
    proto = cio.array_to_blobproto(arr, diff)
    assert list(proto.shape.dim) == [2, 3, 4]
    assert not proto.HasField("num")
    back = cio.blobproto_to_array(proto)
    assert back.dtype == np.float64 and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, arr.astype(np.float64))
    np.testing.assert_array_equal(cio.blobproto_to_array(proto, return_diff=True), diff)
    # The engine's own Blob reads the same proto.
    blob = caffe.Blob()
    blob.from_proto(proto)
    np.testing.assert_array_equal(blob.data, arr)


def test_blobproto_legacy_4d_shape_wins():
    proto = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=3)
    proto.shape.dim.extend([6])  # ignored, as pycaffe and Caffe ignore it when legacy dims are set
    proto.data.extend(range(6))
    arr = cio.blobproto_to_array(proto)
    assert arr.shape == (1, 2, 1, 3)
    assert arr[0, 1, 0, 2] == 5


def test_blobproto_size_mismatch_is_a_clear_error():
    proto = caffe_pb2.BlobProto()
    proto.shape.dim.extend([2, 2])
    proto.data.extend([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="3 data values"):
        cio.blobproto_to_array(proto)


def test_blobprotovector_str_round_trip():
    arrays = [np.arange(6.0).reshape(2, 3), np.full((1, 1, 2, 2), 0.5), np.array([7.0])]
    data = cio.arraylist_to_blobprotovector_str(arrays)
    assert isinstance(data, bytes)
    vec = caffe_pb2.BlobProtoVector.FromString(data)
    assert [list(b.shape.dim) for b in vec.blobs] == [[2, 3], [1, 1, 2, 2], [1]]
    back = cio.blobprotovector_str_to_arraylist(data)
    assert len(back) == 3
    for got, want in zip(back, arrays, strict=True):
        np.testing.assert_array_equal(got, want)


# -- Datum ---------------------------------------------------------------------------


def test_datum_uint8_round_trip():
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 9
    datum = cio.array_to_datum(arr, label=7)
    assert (datum.channels, datum.height, datum.width, datum.label) == (2, 3, 4, 7)
    assert datum.data == arr.tobytes() and len(datum.float_data) == 0
    back = cio.datum_to_array(datum)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, arr)
    # Serialization keeps it.
    again = cio.datum_to_array(caffe_pb2.Datum.FromString(datum.SerializeToString()))
    np.testing.assert_array_equal(again, arr)


def test_datum_float_round_trip_and_no_label():
    arr = np.linspace(-1, 1, 12).reshape(3, 2, 2)
    datum = cio.array_to_datum(arr)
    assert datum.data == b"" and len(datum.float_data) == 12
    assert not datum.HasField("label")
    back = cio.datum_to_array(datum)
    assert back.dtype == np.float64
    np.testing.assert_allclose(back, arr, rtol=1e-7)  # float_data is float32 on the wire


def test_array_to_datum_needs_3d():
    with pytest.raises(ValueError, match="3-D"):
        cio.array_to_datum(np.zeros((2, 2), dtype=np.uint8))


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_encoded_datum_decodes_to_bgr_chw():
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 0] = 10  # R
    rgb[..., 1] = 20  # G
    rgb[..., 2] = np.arange(3) * 30  # B varies along width
    datum = caffe_pb2.Datum(data=_png(rgb), encoded=True, label=1)
    arr = cio.datum_to_array(datum)
    assert arr.shape == (3, 2, 3) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr[0], rgb[..., 2])  # B first, as OpenCV decodes
    np.testing.assert_array_equal(arr[2], rgb[..., 0])
    gray = np.array([[0, 128], [255, 1]], dtype=np.uint8)
    arr = cio.datum_to_array(caffe_pb2.Datum(data=_png(gray), encoded=True))
    assert arr.shape == (1, 2, 2)
    np.testing.assert_array_equal(arr[0], gray)
    with pytest.raises(ValueError, match="could not be decoded"):
        cio.datum_to_array(caffe_pb2.Datum(data=b"not an image", encoded=True))


# -- Transformer ---------------------------------------------------------------------


def _transformer() -> cio.Transformer:
    t = cio.Transformer({"data": (1, 3, 2, 2)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255.0)
    t.set_mean("data", np.array([10.0, 20.0, 30.0]))
    t.set_input_scale("data", 0.5)
    return t


def test_preprocess_exact_values_in_pycaffe_order():
    img = np.arange(12, dtype=np.float64).reshape(2, 2, 3) / 11.0  # H x W x C in [0, 1]
    out = _transformer().preprocess("data", img)
    assert out.shape == (3, 2, 2) and out.dtype == np.float32
    swap, mean = (2, 1, 0), (10.0, 20.0, 30.0)
    for c in range(3):
        for h in range(2):
            for w in range(2):
                want = (img[h, w, swap[c]] * 255.0 - mean[c]) * 0.5
                assert out[c, h, w] == pytest.approx(want, rel=1e-5)
    # The caller's image is left alone.
    np.testing.assert_array_equal(img, np.arange(12).reshape(2, 2, 3) / 11.0)


def test_deprocess_inverts_preprocess():
    t = _transformer()
    img = np.random.default_rng(0).uniform(size=(2, 2, 3)).astype(np.float32)
    blob_item = t.preprocess("data", img)[np.newaxis]  # as read back from a 1 x 3 x 2 x 2 blob
    np.testing.assert_allclose(t.deprocess("data", blob_item), img, atol=1e-5)


def test_full_mean_and_resize_in_preprocess():
    t = cio.Transformer({"data": (1, 1, 2, 2)})
    t.set_transpose("data", (2, 0, 1))
    t.set_mean("data", np.array([[1.0, 2.0], [3.0, 4.0]]))  # H x W mean for one channel
    assert t.mean["data"].shape == (2, 2)
    img = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
    out = t.preprocess("data", img)
    # Downscaling by 2 first: each output pixel is its 2 x 2 block's mean.
    blocks = img[:, :, 0].reshape(2, 2, 2, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(out[0], blocks - [[1, 2], [3, 4]], atol=1e-5)


def test_transformer_checks_like_pycaffe():
    t = cio.Transformer({"data": (1, 3, 4, 4)})
    with pytest.raises(ValueError, match="not one of the net inputs"):
        t.set_raw_scale("label", 1.0)
    with pytest.raises(ValueError, match="transpose"):
        t.set_transpose("data", (1, 0))
    with pytest.raises(ValueError, match="channel swap"):
        t.set_channel_swap("data", (1, 0))
    with pytest.raises(ValueError, match="channels"):
        t.set_mean("data", np.zeros(4))
    with pytest.raises(ValueError, match="does not match"):
        t.set_mean("data", np.zeros((3, 5, 4)))
    with pytest.raises(ValueError, match="does not match"):
        t.set_mean("data", np.zeros((4, 4)))  # read as 1 x 4 x 4: one channel, the input has three
    with pytest.raises(ValueError, match="neither"):
        t.set_mean("data", np.zeros((1, 3, 4, 4)))
    t.set_mean("data", np.zeros((3, 4, 4)))
    assert t.mean["data"].shape == (3, 4, 4)


# -- images ---------------------------------------------------------------------------


def test_load_image_color_and_gray(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    img = cio.load_image(str(tmp_path / "c.png"))
    assert img.shape == (3, 4, 3) and img.dtype == np.float32
    np.testing.assert_allclose(img, rgb / 255.0, atol=1e-7)
    gray_of_rgb = cio.load_image(str(tmp_path / "c.png"), color=False)
    assert gray_of_rgb.shape == (3, 4, 1)
    lum = (0.2125 * rgb[..., 0] + 0.7154 * rgb[..., 1] + 0.0721 * rgb[..., 2]) / 255.0  # skimage weights
    np.testing.assert_allclose(gray_of_rgb[..., 0], lum, atol=1e-6)

    g = np.array([[0, 51], [102, 255]], dtype=np.uint8)
    Image.fromarray(g).save(tmp_path / "g.png")
    as_color = cio.load_image(str(tmp_path / "g.png"))
    assert as_color.shape == (2, 2, 3)
    for c in range(3):
        np.testing.assert_allclose(as_color[..., c], g / 255.0, atol=1e-7)
    as_gray = cio.load_image(str(tmp_path / "g.png"), color=False)
    assert as_gray.shape == (2, 2, 1)

    rgba = np.dstack([rgb, np.full((3, 4), 9, dtype=np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_allclose(cio.load_image(str(tmp_path / "a.png")), rgb / 255.0, atol=1e-7)

    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="bad.png"):
        cio.load_image(str(tmp_path / "bad.png"))


def test_resize_downscale_is_block_mean_and_keeps_range():
    im = np.random.default_rng(2).uniform(-5, 9, size=(4, 6, 3))
    out = cio.resize_image(im, (2, 3))
    assert out.shape == (2, 3, 3) and out.dtype == np.float32
    want = im.reshape(2, 2, 3, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_resize_nearest_upscale_and_constant_image():
    im = np.array([[0.0, 1.0], [2.0, 3.0]])[:, :, np.newaxis]
    out = cio.resize_image(im, (4, 4), interp_order=0)
    np.testing.assert_array_equal(out[:, :, 0], np.repeat(np.repeat(im[:, :, 0], 2, 0), 2, 1))
    const = cio.resize_image(np.full((3, 3, 3), 4.5), (5, 2))
    assert const.shape == (5, 2, 3) and const.dtype == np.float32 and np.all(const == 4.5)


def test_resize_bilinear_upscale_pads_with_zero_like_skimage_constant_mode():
    # Output pixel centres map to input (o + 0.5) / 2 - 0.5; outside the image the value is 0
    # (in the [0, 1] scaled image), so the first row/column blends with zero.
    im = np.array([[1.0, 1.0], [1.0, 2.0]])[:, :, np.newaxis]  # scaled: [[0, 0], [0, 1]]
    out = cio.resize_image(im, (4, 4))[:, :, 0]
    # Centre pixel (2, 2) maps to (0.75, 0.75): 0.75 * 0.75 of the bottom-right input pixel.
    assert out[2, 2] == pytest.approx(1 + 0.5625, rel=1e-6)
    # Corner (3, 3) maps to (1.25, 1.25): 0.75 * 0.75 of that pixel, the rest outside (0).
    assert out[3, 3] == pytest.approx(1 + 0.5625, rel=1e-6)
    assert out[0, 0] == pytest.approx(1.0)


def test_resize_other_channel_counts_use_corner_aligned_zoom():
    im = np.random.default_rng(3).uniform(size=(3, 3, 4))
    out = cio.resize_image(im, (5, 7))
    assert out.shape == (5, 7, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], im[0, 0], rtol=1e-5)
    np.testing.assert_allclose(out[-1, -1], im[-1, -1], rtol=1e-5)


def test_oversample_ten_crops_in_pycaffe_order():
    h, w, ch, cw = 5, 6, 3, 4
    images = []
    for i in range(2):
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        im = np.stack([1000 * i + 10 * rows + cols, -(1000 * i + 10 * rows + cols)], axis=-1)
        images.append(im.astype(np.float32))
    crops = cio.oversample(images, (ch, cw))
    assert crops.shape == (20, ch, cw, 2) and crops.dtype == np.float32
    # Corners TL, TR, BL, BR, then the centre: (5 - 3) / 2 = 1 and (6 - 4) / 2 = 1.
    origins = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), (1, 1)]
    for i, im in enumerate(images):
        for k, (r, c) in enumerate(origins):
            window = im[r:r + ch, c:c + cw]
            np.testing.assert_array_equal(crops[10 * i + k], window)
            np.testing.assert_array_equal(crops[10 * i + 5 + k], window[:, ::-1])


def test_oversample_centre_truncates_odd_offsets():
    im = np.arange(7 * 7, dtype=np.float32).reshape(7, 7, 1)
    crops = cio.oversample([im], (2, 2))
    # Centre 3.5 - 1 = 2.5 -> 2 (the int cast truncates), end 4.5 -> 4: rows/cols 2..3.
    np.testing.assert_array_equal(crops[4], im[2:4, 2:4])


def test_transformer_subclass_can_use_the_private_check_like_pycaffe():
    class Cropper(cio.Transformer):
        def set_crop(self, in_, size):
            cio.Transformer._Transformer__check_input(self, in_)
            self.crop = size

    t = Cropper({"data": (1, 3, 4, 4)})
    t.set_crop("data", 2)
    with pytest.raises(ValueError, match="not one of the net inputs"):
        t.set_crop("label", 2)
