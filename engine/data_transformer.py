"""Caffe's DataTransformer: crop, mirror, mean subtraction and scaling of one sample.

Each output value is `(pixel - mean) * scale`, where the pixel is taken from the
(cropped, mirrored) source position and the mean from the same source position
(mean_file) or the channel (mean_value). Random choices happen in TRAIN only for
the crop; mirroring is random whenever `mirror` is set. The draws come from a
per-transformer generator seeded from `engine.common.rng()` at `init_rand`, so a
prefetch thread never touches the shared generator and runs stay reproducible.
"""

from __future__ import annotations

import numpy as np

from engine import common
from engine.errors import BrewnetError, ModelFileError
from engine.proto import caffe_pb2


class TransformError(BrewnetError):
    """A sample that does not fit the transformation parameters."""


def read_mean_file(path: str) -> np.ndarray:
    """Parse a .binaryproto BlobProto into a C x H x W float64 array (Caffe's data_mean_)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ModelFileError(f"cannot read mean file '{path}': {exc.strerror}") from None
    proto = caffe_pb2.BlobProto()
    try:
        proto.ParseFromString(raw)
    except Exception as exc:
        raise ModelFileError(f"mean file '{path}' is not a BlobProto ({exc})") from None
    if proto.HasField("shape"):
        shape = [int(d) for d in proto.shape.dim]
    else:
        shape = [proto.num, proto.channels, proto.height, proto.width]
    values = np.asarray(proto.double_data if len(proto.double_data) else proto.data, dtype=np.float64)
    count = int(np.prod(shape)) if shape else 1
    if values.size != count:
        raise ModelFileError(f"mean file '{path}': shape {shape} needs {count} values, has {values.size}")
    while len(shape) < 4:
        shape.insert(0, 1)
    return values.reshape([int(np.prod(shape[:-3]))] + shape[-3:])[0]


class DataTransformer:
    def __init__(self, param: caffe_pb2.TransformationParameter | None, phase: int, name: str = "") -> None:
        self.param = param if param is not None else caffe_pb2.TransformationParameter()
        self.phase = phase
        self.name = name
        p = self.param
        if p.force_color and p.force_gray:
            raise self._error("cannot set both force_color and force_gray")
        self.mean: np.ndarray | None = None
        self.mean_values = [float(np.float32(v)) for v in p.mean_value]
        if p.mean_file:
            if self.mean_values:
                raise self._error("Cannot specify mean_file and mean_value at the same time")
            self.mean = read_mean_file(p.mean_file)
        self._rng: np.random.Generator | None = None

    def _error(self, message: str) -> TransformError:
        where = f"layer '{self.name}': " if self.name else ""
        return TransformError(f"{where}transform_param: {message}")

    # -- randomness
    @property
    def needs_rand(self) -> bool:
        return bool(self.param.mirror or (self.phase == caffe_pb2.TRAIN and self.param.crop_size))

    def init_rand(self) -> None:
        """Seed this transformer's generator from the engine RNG (Caffe's InitRand)."""
        if self.needs_rand:
            self._rng = np.random.default_rng(int(common.rng().integers(0, 2**63 - 1)))

    def rand(self, n: int) -> int:
        if self._rng is None:  # used before init_rand: seed from the engine RNG now
            self._rng = np.random.default_rng(int(common.rng().integers(0, 2**63 - 1)))
        return int(self._rng.integers(0, n))

    # -- shapes
    def decode(self, datum: caffe_pb2.Datum) -> np.ndarray:
        """An encoded datum as H x W x C uint8 (force_color / force_gray / native channels)."""
        from engine.nn.data_imageio import COLOR, GRAY, NATIVE, decode_image

        mode = COLOR if self.param.force_color else GRAY if self.param.force_gray else NATIVE
        return decode_image(datum.data, mode, where=f"layer '{self.name}': encoded datum")

    def datum_chw(self, datum: caffe_pb2.Datum) -> np.ndarray:
        """The sample as a C x H x W array: uint8 for byte data, float32 for float_data."""
        if datum.encoded:
            img = self.decode(datum)
            return np.ascontiguousarray(img.transpose(2, 0, 1))
        c, h, w = datum.channels, datum.height, datum.width
        if c <= 0 or h <= 0 or w <= 0:
            raise self._error(f"datum has shape {c} x {h} x {w}; every dimension must be positive")
        if datum.data:
            arr = np.frombuffer(datum.data, dtype=np.uint8)
        else:
            arr = np.asarray(datum.float_data, dtype=np.float32)
        if arr.size != c * h * w:
            raise self._error(f"datum of shape {c} x {h} x {w} holds {arr.size} values, "
                              f"expected {c * h * w}")
        return arr.reshape(c, h, w)

    def infer_shape(self, sample_chw_shape: tuple[int, int, int]) -> list[int]:
        """[1, C, H', W'] for a C x H x W sample after cropping (Caffe's InferBlobShape)."""
        c, h, w = sample_chw_shape
        crop = self.param.crop_size
        if crop and (h < crop or w < crop):
            raise self._error(f"crop_size {crop} is larger than the {h} x {w} input")
        return [1, c, crop or h, crop or w]

    def infer_blob_shape(self, datum: caffe_pb2.Datum) -> list[int]:
        return self.infer_shape(self.datum_chw(datum).shape)

    # -- the transform
    def transform_chw(self, sample: np.ndarray, out: np.ndarray | None = None,
                      dtype=np.float32) -> np.ndarray:
        """Transform one C x H x W sample into `out` (shape C x crop x crop or C x H x W)."""
        c, h, w = sample.shape
        p = self.param
        crop = p.crop_size
        do_mirror = bool(p.mirror) and self.rand(2) == 1
        if self.mean is not None and self.mean.shape != (c, h, w):
            raise self._error(f"mean_file shape {self.mean.shape} does not match the {c} x {h} x {w} input")
        if self.mean_values and len(self.mean_values) not in (1, c):
            raise self._error(f"specify either 1 mean_value or as many as channels ({c}), "
                              f"got {len(self.mean_values)}")
        h_off = w_off = 0
        oh, ow = h, w
        if crop:
            if h < crop or w < crop:
                raise self._error(f"crop_size {crop} is larger than the {h} x {w} input")
            oh = ow = crop
            if self.phase == caffe_pb2.TRAIN:
                h_off = self.rand(h - crop + 1)
                w_off = self.rand(w - crop + 1)
            else:
                h_off = (h - crop) // 2
                w_off = (w - crop) // 2
        dt = np.dtype(out.dtype if out is not None else dtype)
        region = sample[:, h_off:h_off + oh, w_off:w_off + ow].astype(dt)
        if self.mean is not None:
            region = region - self.mean[:, h_off:h_off + oh, w_off:w_off + ow].astype(dt)
        elif self.mean_values:
            means = np.asarray(self.mean_values * (c if len(self.mean_values) == 1 else 1), dtype=dt)
            region = region - means[:, None, None]
        region = region * dt.type(np.float32(p.scale))
        if do_mirror:
            region = region[:, :, ::-1]
        if out is None:
            return np.ascontiguousarray(region)
        if out.shape != region.shape:
            raise self._error(f"output of shape {out.shape} does not fit the transformed {region.shape}")
        out[...] = region
        return out

    def transform_datum(self, datum: caffe_pb2.Datum, out: np.ndarray | None = None) -> np.ndarray:
        if not datum.encoded and (self.param.force_color or self.param.force_gray):
            import logging

            logging.getLogger("brewnet.data").error("force_color and force_gray only for encoded datum")
        return self.transform_chw(self.datum_chw(datum), out)

    def transform_image(self, img_hwc: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """An H x W x C image (BGR) as read by OpenCV."""
        return self.transform_chw(np.ascontiguousarray(img_hwc.transpose(2, 0, 1)), out)
