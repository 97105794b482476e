"""ImageData with PNGs written in tmp_path: BGR order, grey, resize, list parsing, wrapping."""

import numpy as np
import pytest
from PIL import Image

from engine import common
from engine.errors import WiringError
from engine.nn.data_image import atoi, read_list_file
from engine.nn.data_imageio import resize_linear

from .helpers_data import make_layer, tops

RGB = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
                [[1, 2, 3], [40, 50, 60], [200, 100, 0]]], dtype=np.uint8)


@pytest.fixture
def folder(tmp_path):
    for i in range(3):
        Image.fromarray((RGB + i).astype(np.uint8), "RGB").save(tmp_path / f"img {i}.png")
    (tmp_path / "list.txt").write_text("img 0.png 5\nimg 1.png 6\nimg 2.png 7\n")
    return tmp_path


def image_layer(folder, extra="", batch=2):
    return make_layer(f'name: "im" type: "ImageData" top: "data" top: "label" phase: TEST '
                      'image_data_param { '
                      f'source: "{folder}/list.txt" root_folder: "{folder}/" batch_size: {batch} {extra} }}')


def test_bgr_order_labels_and_wrap(folder):
    layer = image_layer(folder)
    t = tops(2)
    layer.setup([], t)
    assert t[0].shape == (2, 3, 2, 3)
    labels = []
    for _ in range(2):
        layer.forward([], t)
        labels.extend(t[1].data.astype(int).tolist())
        for j, lab in enumerate(t[1].data.astype(int)):
            rgb = RGB + np.uint8(lab - 5)  # same uint8 wrap-around as the written files
            np.testing.assert_array_equal(t[0].data[j, 0], rgb[:, :, 2])  # channel 0 is blue
            np.testing.assert_array_equal(t[0].data[j, 2], rgb[:, :, 0])
    assert labels == [5, 6, 7, 5]
    layer.close()


def test_gray_and_resize(folder):
    layer = image_layer(folder, "is_color: false new_height: 4 new_width: 6", batch=1)
    t = tops(2)
    layer.setup([], t)
    layer.forward([], t)
    assert t[0].shape == (1, 1, 4, 6)
    layer.close()
    small = image_layer(folder, "is_color: false", batch=1)
    small.setup([], t)
    small.forward([], t)
    # pure red 255 -> 0.299 * 255 = 76.2 -> 76; pure green -> 0.587 * 255 = 149.7 -> 150
    assert t[0].data[0, 0, 0, 0] == 76 and t[0].data[0, 0, 0, 1] == 150
    small.close()


def test_shuffle_reproducible_and_complete(folder):
    runs = []
    for _ in range(2):
        common.set_random_seed(3)
        layer = image_layer(folder, "shuffle: true", batch=3)
        t = tops(2)
        layer.setup([], t)
        layer.forward([], t)
        runs.append(t[1].data.astype(int).tolist())
        layer.close()
    assert runs[0] == runs[1] and sorted(runs[0]) == [5, 6, 7]


def test_resize_matches_opencv_linear_rule():
    # 1 x 2 -> 1 x 4: source x = (d + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (clamped)
    img = np.array([[[0], [100]]], dtype=np.uint8)
    np.testing.assert_array_equal(resize_linear(img, 1, 4)[0, :, 0], [0, 25, 75, 100])


def test_list_parsing_like_caffe(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text("a b.jpg 3\r\nc.png -2\nnolabel\n\n")
    assert read_list_file(str(p)) == [("a b.jpg", 3), ("c.png", -2), ("nolabel", 0)]
    assert atoi(" 12abc") == 12 and atoi("x") == 0


def test_missing_image_and_half_resize_are_errors(folder):
    with pytest.raises(WiringError, match="at the same time"):
        image_layer(folder, "new_height: 4").setup([], tops(2))
    (folder / "bad.txt").write_text("missing.png 1\n")
    bad = make_layer(f'name: "im" type: "ImageData" top: "d" top: "l" image_data_param {{ '
                     f'source: "{folder}/bad.txt" root_folder: "{folder}/" }}')
    with pytest.raises(WiringError, match="missing.png"):
        bad.setup([], tops(2))
