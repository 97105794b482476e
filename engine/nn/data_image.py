"""The ImageData layer: images named in a list file ("path label" per line), prefetched."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np

from engine import common
from engine.blob import Blob
from engine.data_transformer import DataTransformer
from engine.errors import BrewnetError
from engine.layer import register_layer
from engine.nn.data_core import data_error
from engine.nn.data_imageio import read_image
from engine.nn.data_prefetch import Batch, PrefetchingLayer

log = logging.getLogger("brewnet.data")

_INT_PREFIX = re.compile(r"\s*([+-]?\d+)")


def atoi(text: str) -> int:
    """C's atoi: leading blanks, optional sign, digits; 0 when there are none."""
    m = _INT_PREFIX.match(text)
    return int(m.group(1)) if m else 0


def read_list_file(path: str) -> list[tuple[str, int]]:
    """Caffe's parsing: the label follows the LAST space; names may contain spaces."""
    lines = []
    with open(path, newline="") as fh:
        for raw in fh.read().split("\n"):
            line = raw[:-1] if raw.endswith("\r") else raw
            if not line.strip():
                continue
            name, sep, label = line.rpartition(" ")
            lines.append((name, atoi(label)) if sep else (line, atoi(line)))
    return lines


class _ImageLoader:
    def __init__(self, lines, lines_id, root, new_h, new_w, is_color, shuffle_rng, batch_size,
                 transformer: DataTransformer, dtype, name) -> None:
        self.lines = lines
        self.lines_id = lines_id
        self.root = root
        self.new_h, self.new_w, self.is_color = new_h, new_w, is_color
        self.shuffle_rng = shuffle_rng
        self.batch_size = batch_size
        self.transformer = transformer
        self.dtype = dtype
        self.name = name

    def load_batch(self) -> Batch:
        data = None
        label = np.empty(self.batch_size, dtype=self.dtype)
        for i in range(self.batch_size):
            path, lab = self.lines[self.lines_id]
            try:
                img = read_image(self.root + path, self.new_h, self.new_w, self.is_color)
                if i == 0:
                    shape = self.transformer.infer_shape((img.shape[2], img.shape[0], img.shape[1]))
                    data = np.empty([self.batch_size] + shape[1:], dtype=self.dtype)
                self.transformer.transform_image(img, data[i])
            except BrewnetError as exc:
                raise BrewnetError(f"layer '{self.name}': {exc}") from None
            label[i] = lab
            self.lines_id += 1
            if self.lines_id >= len(self.lines):
                self.lines_id = 0
                if self.shuffle_rng is not None:
                    self.shuffle_rng.shuffle(self.lines)
        return Batch(data, label)


@register_layer("ImageData")
class ImageDataLayer(PrefetchingLayer):
    """image_data_param { source root_folder batch_size new_height new_width is_color shuffle rand_skip }."""

    description = "Images from a list file, BGR like OpenCV"
    exact_num_top_blobs = 2

    def layer_setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        p = self.layer_param.image_data_param
        new_h, new_w = int(p.new_height), int(p.new_width)
        if not ((new_h == 0 and new_w == 0) or (new_h > 0 and new_w > 0)):
            raise data_error(self, "Current implementation requires new_height and new_width to be set "
                                   "at the same time.")
        if p.batch_size <= 0:
            raise data_error(self, "Positive batch size required")
        tp = self.layer_param.transform_param if self.layer_param.HasField("transform_param") else None
        try:
            transformer = DataTransformer(tp, self.phase, self.name)
        except BrewnetError as exc:
            raise data_error(self, str(exc)) from None
        transformer.init_rand()
        try:
            lines = read_list_file(p.source)
        except OSError:
            raise data_error(self, f"cannot open list file {p.source}") from None
        if not lines:
            raise data_error(self, f"File is empty: {p.source}")
        shuffle_rng = None
        if p.shuffle:
            shuffle_rng = np.random.default_rng(int(common.rng().integers(0, 2**63 - 1)))
            shuffle_rng.shuffle(lines)
        log.info("A total of %d images.", len(lines))
        lines_id = 0
        if p.rand_skip:
            skip = int(common.rng().integers(0, p.rand_skip))
            log.info("Skipping first %d data points.", skip)
            if skip >= len(lines):
                raise data_error(self, f"Not enough points to skip: {skip} of {len(lines)}")
            lines_id = skip
        try:
            img = read_image(p.root_folder + lines[lines_id][0], new_h, new_w, p.is_color)
            shape = transformer.infer_shape((img.shape[2], img.shape[0], img.shape[1]))
        except BrewnetError as exc:
            raise data_error(self, str(exc)) from None
        shape[0] = int(p.batch_size)
        top[0].reshape(shape)
        top[1].reshape([int(p.batch_size)])
        log.info("output data size: %s", ",".join(str(d) for d in shape))
        loader = _ImageLoader(lines, lines_id, p.root_folder, new_h, new_w, bool(p.is_color), shuffle_rng,
                              int(p.batch_size), transformer, top[0].dtype, self.name)
        self.start_prefetch(loader, int(self.layer_param.data_param.prefetch))
