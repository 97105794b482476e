"""pycaffe's `caffe.io`: BlobProto/Datum conversions, the input Transformer, image helpers.

Behaviour follows pycaffe's io.py step by step (including its preprocessing
order and `resize_image`'s rescaling to [0, 1] around skimage's resize); image
reading and resizing are done with Pillow and SciPy instead of skimage.
"""

from __future__ import annotations

import io as _io
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from engine.proto import caffe_pb2

# -- BlobProto / Datum ------------------------------------------------------------


def blobproto_to_array(blob: caffe_pb2.BlobProto, return_diff: bool = False) -> np.ndarray:
    """A BlobProto's data (or diff) as a float64 array; legacy num/channels/height/width win."""
    if return_diff:
        values = blob.diff if len(blob.diff) else blob.double_diff
    else:
        values = blob.data if len(blob.data) else blob.double_data
    data = np.array(values, dtype=np.float64)
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = tuple(blob.shape.dim)
    if data.size != int(np.prod(shape, dtype=np.int64)):
        what = "diff" if return_diff else "data"
        raise ValueError(f"BlobProto holds {data.size} {what} values but its shape {shape} needs "
                         f"{int(np.prod(shape, dtype=np.int64))}")
    return data.reshape(shape)


def array_to_blobproto(arr: np.ndarray, diff: np.ndarray | None = None) -> caffe_pb2.BlobProto:
    """An N-D array (and optional diff of the same size) as a BlobProto with an N-D shape."""
    arr = np.asarray(arr)
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(int(d) for d in arr.shape)
    blob.data.extend(arr.astype(float).flat)
    if diff is not None:
        diff = np.asarray(diff)
        if diff.size != arr.size:
            raise ValueError(f"diff has {diff.size} values but the array has {arr.size}")
        blob.diff.extend(diff.astype(float).flat)
    return blob


def arraylist_to_blobprotovector_str(arraylist: Sequence[np.ndarray]) -> bytes:
    """Serialized BlobProtoVector of the arrays (pycaffe's name says str; it is bytes)."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend(array_to_blobproto(arr) for arr in arraylist)
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(data: bytes) -> list[np.ndarray]:
    """Inverse of arraylist_to_blobprotovector_str."""
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(data)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr: np.ndarray, label: int | None = None) -> caffe_pb2.Datum:
    """A C x H x W array as a Datum: uint8 into `data` bytes, anything else into `float_data`."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError(f"array_to_datum needs a 3-D C x H x W array, got shape {arr.shape}")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = (int(d) for d in arr.shape)
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(float).flat)
    if label is not None:
        datum.label = int(label)
    return datum


def datum_to_array(datum: caffe_pb2.Datum) -> np.ndarray:
    """A Datum as a C x H x W array: uint8 from `data`, float64 from `float_data`.

    Encoded datums (JPEG/PNG bytes, `encoded: true`) are decoded the way Caffe's
    DecodeDatumNative does: grayscale stays 1 channel, colour becomes 3 channels in BGR order.
    """
    if datum.encoded:
        return _decode_datum(datum)
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        arr = np.frombuffer(datum.data, dtype=np.uint8)
    else:
        arr = np.array(datum.float_data, dtype=np.float64)
    if arr.size != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"Datum holds {arr.size} values but channels x height x width is {shape}")
    return arr.reshape(shape).copy()


def _decode_datum(datum: caffe_pb2.Datum) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(_io.BytesIO(datum.data)) as img:
            img.load()
            gray = img.mode in ("1", "L", "LA", "I", "I;16", "F")
            img = img.convert("L" if gray else "RGB")
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"encoded Datum ({len(datum.data)} bytes) could not be decoded: {exc}") from exc
    if arr.ndim == 2:
        return arr[np.newaxis].copy()
    return np.ascontiguousarray(arr[:, :, ::-1].transpose(2, 0, 1))


# -- Transformer -------------------------------------------------------------------


class Transformer:
    """Turns H x W x K images into a net input blob's K x H x W layout, and back.

    preprocess: resize to the input's H x W -> transpose -> channel swap -> raw scale
    -> subtract mean -> input scale. deprocess undoes these in reverse order.
    """

    def __init__(self, inputs: Mapping[str, Sequence[int]]) -> None:
        self.inputs = dict(inputs)
        self.transpose: dict[str, Sequence[int]] = {}
        self.channel_swap: dict[str, Sequence[int]] = {}
        self.raw_scale: dict[str, float] = {}
        self.mean: dict[str, np.ndarray] = {}
        self.input_scale: dict[str, float] = {}

    def __check_input(self, in_: str) -> None:  # pycaffe subclasses call _Transformer__check_input
        if in_ not in self.inputs:
            raise ValueError(f"{in_!r} is not one of the net inputs: {list(self.inputs)}")

    def preprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        """One H x W x K image -> the K x H x W float32 array the net input expects."""
        self.__check_input(in_)
        caffe_in = np.array(data, dtype=np.float32)  # a copy: the caller's image is never modified
        transpose = self.transpose.get(in_)
        channel_swap = self.channel_swap.get(in_)
        raw_scale = self.raw_scale.get(in_)
        mean = self.mean.get(in_)
        input_scale = self.input_scale.get(in_)
        in_dims = tuple(self.inputs[in_][2:])
        if tuple(caffe_in.shape[:2]) != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        if transpose is not None:
            caffe_in = caffe_in.transpose(transpose)
        if channel_swap is not None:
            caffe_in = caffe_in[list(channel_swap), :, :]
        if raw_scale is not None:
            caffe_in *= raw_scale
        if mean is not None:
            caffe_in -= mean
        if input_scale is not None:
            caffe_in *= input_scale
        return caffe_in

    def deprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        """Invert preprocess (except the resize) on one blob item; singleton axes are squeezed."""
        self.__check_input(in_)
        decaf_in = np.array(data, copy=True).squeeze()
        transpose = self.transpose.get(in_)
        channel_swap = self.channel_swap.get(in_)
        raw_scale = self.raw_scale.get(in_)
        mean = self.mean.get(in_)
        input_scale = self.input_scale.get(in_)
        if input_scale is not None:
            decaf_in /= input_scale
        if mean is not None:
            decaf_in += mean
        if raw_scale is not None:
            decaf_in /= raw_scale
        if channel_swap is not None:
            decaf_in = decaf_in[np.argsort(channel_swap), :, :]
        if transpose is not None:
            decaf_in = decaf_in.transpose(np.argsort(transpose))
        return decaf_in

    def set_transpose(self, in_: str, order: Sequence[int]) -> None:
        """Axis order taking the image to K x H x W, e.g. (2, 0, 1)."""
        self.__check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise ValueError(f"input {in_!r}: transpose order {tuple(order)} needs "
                             f"{len(self.inputs[in_]) - 1} axes, as the input has")
        self.transpose[in_] = order

    def set_channel_swap(self, in_: str, order: Sequence[int]) -> None:
        """Channel permutation applied after the transpose, e.g. (2, 1, 0) for RGB -> BGR."""
        self.__check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise ValueError(f"input {in_!r}: channel swap {tuple(order)} needs "
                             f"{self.inputs[in_][1]} entries, one per input channel")
        self.channel_swap[in_] = order

    def set_raw_scale(self, in_: str, scale: float) -> None:
        """Multiply the image by this first (e.g. 255 for [0, 1] images and a [0, 255] model)."""
        self.__check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_: str, mean: np.ndarray) -> None:
        """Mean to subtract: per channel (K,) or a full K x H x W (or H x W) image."""
        self.__check_input(in_)
        mean = np.asarray(mean)
        ms = mean.shape
        if mean.ndim == 1:
            if ms[0] != self.inputs[in_][1]:
                raise ValueError(f"input {in_!r}: mean has {ms[0]} channels, the input "
                                 f"{self.inputs[in_][1]}")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if len(ms) == 2:
                ms = (1,) + ms
            if len(ms) != 3:
                raise ValueError(f"input {in_!r}: mean shape {mean.shape} is neither (K,), (H, W) "
                                 "nor (K, H, W)")
            if tuple(ms) != tuple(self.inputs[in_][1:]):
                raise ValueError(f"input {in_!r}: mean shape {tuple(ms)} does not match the input "
                                 f"shape {tuple(self.inputs[in_][1:])}")
        self.mean[in_] = mean

    def set_input_scale(self, in_: str, scale: float) -> None:
        """Multiply by this last, after the mean is subtracted."""
        self.__check_input(in_)
        self.input_scale[in_] = scale


# -- images -------------------------------------------------------------------------

# skimage's rgb2gray weights (what pycaffe's imread(as_grey=True) applies).
_GRAY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721])


def load_image(filename: str, color: bool = True) -> np.ndarray:
    """An image file as float32 H x W x 3 (color) or H x W x 1 (gray), values in [0, 1], RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(filename) as pil:
            pil.load()
            img = _pil_to_float(pil)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{filename}: cannot read image: {exc}") from exc
    if img.ndim == 3 and not color:
        img = img[:, :, :3] @ _GRAY_WEIGHTS if img.shape[2] >= 3 else img[:, :, 0]
    img = img.astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
        if color:
            img = np.tile(img, (1, 1, 3))
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return img


def _pil_to_float(pil) -> np.ndarray:
    """Pixel values scaled to [0, 1] as skimage's img_as_float does for the stored type."""
    if pil.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(pil, dtype=np.float64) / 65535.0
    if pil.mode == "F":
        return np.asarray(pil, dtype=np.float64)
    if pil.mode == "I":
        return np.asarray(pil, dtype=np.float64) / float(np.iinfo(np.int32).max)
    if pil.mode == "1":
        return np.asarray(pil, dtype=np.float64)
    if pil.mode in ("LA", "PA"):
        pil = pil.convert("L" if pil.mode == "LA" else "RGBA")
    elif pil.mode not in ("L", "RGB", "RGBA"):
        pil = pil.convert("RGBA" if "A" in pil.mode or "transparency" in pil.info else "RGB")
    return np.asarray(pil, dtype=np.float64) / 255.0


def resize_image(im: np.ndarray, new_dims: Sequence[int], interp_order: int = 1) -> np.ndarray:
    """Resize H x W x K to new_dims (H', W') with spline order `interp_order`; float32 out.

    As pycaffe: 1- and 3-channel images are scaled to [0, 1], resized with
    pixel-centre alignment and zero padding beyond the border (skimage's resize in
    'constant' mode), clipped and scaled back to their [min, max]; a constant image
    stays constant; other channel counts use ndimage.zoom (corner-aligned).
    """
    im = np.asarray(im)
    new_dims = tuple(int(d) for d in new_dims)
    if len(new_dims) != 2:
        raise ValueError(f"resize_image needs new_dims (height, width), got {new_dims}")
    if im.ndim < 2:
        raise ValueError(f"resize_image needs an H x W (x K) image, got shape {im.shape}")
    if im.shape[-1] in (1, 3):
        im_min, im_max = im.min(), im.max()
        if im_max > im_min:
            im_std = (im - im_min) / (im_max - im_min)
            resized_std = _resize_constant(im_std, new_dims, interp_order)
            resized_im = resized_std * (im_max - im_min) + im_min
        else:
            ret = np.empty((new_dims[0], new_dims[1], im.shape[-1]), dtype=np.float32)
            ret.fill(im_min)
            return ret
    else:
        scale = tuple(np.array(new_dims, dtype=float) / np.array(im.shape[:2]))
        resized_im = ndimage.zoom(im, scale + (1,) * (im.ndim - 2), order=interp_order)
    return resized_im.astype(np.float32)


def _resize_constant(im: np.ndarray, new_dims: tuple[int, int], order: int) -> np.ndarray:
    """skimage.transform.resize(im, new_dims, order, mode='constant', cval=0) without anti-aliasing."""
    im = im.astype(np.float64, copy=False)
    rows = (np.arange(new_dims[0]) + 0.5) * (im.shape[0] / new_dims[0]) - 0.5
    cols = (np.arange(new_dims[1]) + 0.5) * (im.shape[1] / new_dims[1]) - 0.5
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    planes = im.reshape(im.shape[0], im.shape[1], -1)
    out = np.empty(new_dims + (planes.shape[2],), dtype=np.float64)
    for k in range(planes.shape[2]):
        out[:, :, k] = ndimage.map_coordinates(
            planes[:, :, k], [rr, cc], order=order, mode="grid-constant", cval=0.0
        )
    np.clip(out, im.min(), im.max(), out=out)
    return out.reshape(new_dims + im.shape[2:])


def oversample(images: Sequence[np.ndarray], crop_dims: Sequence[int]) -> np.ndarray:
    """Ten crops per H x W x K image: 4 corners, centre, then the same 5 mirrored left-right.

    Corner order: top-left, top-right, bottom-left, bottom-right. Returns
    (10 * N) x crop_h x crop_w x K float32.
    """
    images = list(images)
    if not images:
        raise ValueError("oversample needs at least one image")
    im_shape = np.array(images[0].shape)
    crop_dims = np.array(crop_dims)
    if len(crop_dims) != 2 or np.any(crop_dims > im_shape[:2]) or np.any(crop_dims <= 0):
        raise ValueError(f"crop_dims {tuple(crop_dims)} must be 2 positive sizes within the image "
                         f"size {tuple(im_shape[:2])}")
    im_center = im_shape[:2] / 2.0
    crops_ix = np.empty((5, 4), dtype=int)
    curr = 0
    for i in (0, im_shape[0] - crop_dims[0]):
        for j in (0, im_shape[1] - crop_dims[1]):
            crops_ix[curr] = (i, j, i + crop_dims[0], j + crop_dims[1])
            curr += 1
    # Centre crop: the float corners truncate toward zero, as numpy's int cast does in pycaffe.
    crops_ix[4] = np.tile(im_center, (1, 2)) + np.concatenate([-crop_dims / 2.0, crop_dims / 2.0])
    crops_ix = np.tile(crops_ix, (2, 1))
    crops = np.empty((10 * len(images), crop_dims[0], crop_dims[1], im_shape[-1]), dtype=np.float32)
    ix = 0
    for im in images:
        if tuple(im.shape) != tuple(im_shape):
            raise ValueError(f"oversample: all images must share the shape {tuple(im_shape)}, "
                             f"got {im.shape}")
        for crop in crops_ix:
            crops[ix] = im[crop[0]:crop[2], crop[1]:crop[3], :]
            ix += 1
        crops[ix - 5:ix] = crops[ix - 5:ix, :, ::-1, :].copy()
    return crops
