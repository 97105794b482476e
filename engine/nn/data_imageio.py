"""Image reading with OpenCV's conventions, done with Pillow.

Caffe reads images through OpenCV: colour images come out as H x W x 3 in BGR
order, `is_color=false` converts to one grey channel with OpenCV's fixed-point
weights, and resizing is `cv::resize(..., INTER_LINEAR)` (half-pixel centres, no
antialiasing). Arrays here are always H x W x C uint8 with C in {1, 3}.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import BrewnetError

COLOR, GRAY, NATIVE = "color", "gray", "native"


class ImageReadError(BrewnetError):
    """An image file or encoded datum that cannot be decoded."""


def _rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's RGB2GRAY for 8-bit: (4899 R + 9617 G + 1868 B + 2^13) >> 14."""
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    return ((r * 4899 + g * 9617 + b * 1868 + 8192) >> 14).astype(np.uint8)


def _pil_to_array(img: Image.Image, mode: str) -> np.ndarray:
    img = ImageOps.exif_transpose(img)  # imread applies the EXIF orientation too
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = (np.asarray(img, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8)
        img = Image.fromarray(grey, "L")
    native_gray = img.mode in ("1", "L", "LA")  # palette images decode to colour, as with libpng
    if mode == GRAY or (mode == NATIVE and native_gray):
        if native_gray:
            return np.asarray(img.convert("L"), dtype=np.uint8)[:, :, None].copy()
        return _rgb_to_gray(np.asarray(img.convert("RGB"), dtype=np.uint8))[:, :, None]
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def decode_image(data: bytes, mode: str = COLOR, where: str = "image") -> np.ndarray:
    """Decode PNG/JPEG/... bytes to H x W x C uint8 (BGR when C == 3)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return _pil_to_array(img, mode)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageReadError(f"{where}: cannot decode image data ({exc})") from None


def read_image(path: str, new_height: int = 0, new_width: int = 0, is_color: bool = True) -> np.ndarray:
    """Caffe's ReadImageToCVMat: read, convert to colour or grey, optionally resize."""
    if not os.path.isfile(path):
        raise ImageReadError(f"Could not open or find file {path}")
    with open(path, "rb") as fh:
        img = decode_image(fh.read(), COLOR if is_color else GRAY, where=path)
    if new_height > 0 and new_width > 0:
        img = resize_linear(img, new_height, new_width)
    return img


def resize_linear(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """cv::resize with INTER_LINEAR: source coordinate (d + 0.5) * scale - 0.5, edges clamped.

    Computed in float and rounded; OpenCV's 11-bit fixed-point weights can differ by 1.
    """
    src_h, src_w = img.shape[:2]
    if (src_h, src_w) == (height, width):
        return img.copy()

    def axis(dst: int, src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = (np.arange(dst) + 0.5) * (src / dst) - 0.5
        lo = np.floor(pos)
        frac = pos - lo
        lo = lo.astype(np.int64)
        frac[lo < 0] = 0.0
        lo = np.clip(lo, 0, src - 1)
        hi = np.minimum(lo + 1, src - 1)
        frac[lo >= src - 1] = 0.0
        return lo, hi, frac

    y0, y1, fy = axis(height, src_h)
    x0, x1, fx = axis(width, src_w)
    f = img.astype(np.float64)
    rows = f[y0] * (1 - fy)[:, None, None] + f[y1] * fy[:, None, None]
    out = rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def encode_image(img: np.ndarray, ext: str) -> bytes:
    """cv::imencode('.' + ext, img): BGR/grey array to file bytes."""
    fmt = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "tif": "TIFF", "tiff": "TIFF",
           "ppm": "PPM", "pgm": "PPM", "webp": "WEBP"}.get(ext.lower())
    if fmt is None:
        raise ImageReadError(f"cannot encode images as {ext!r}")
    pil = Image.fromarray(img[:, :, 0], "L") if img.shape[2] == 1 else Image.fromarray(img[:, :, ::-1], "RGB")
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def image_to_chw(img: np.ndarray) -> np.ndarray:
    """H x W x C -> C x H x W (Caffe's CVMatToDatum layout)."""
    return np.ascontiguousarray(img.transpose(2, 0, 1))
