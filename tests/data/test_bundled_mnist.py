"""The committed MNIST subset and logistic-regression files have the promised contents."""

import gzip
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[2]
MNIST = REPO / "resources" / "data" / "mnist"


def load_idx(name: str) -> np.ndarray:
    raw = gzip.decompress((MNIST / name).read_bytes())
    magic = int.from_bytes(raw[:4], "big")
    ndim = {2051: 3, 2049: 1}[magic]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw[4 + 4 * ndim:], dtype=np.uint8)
    assert data.size == np.prod(dims)  # no trailing bytes
    return data.reshape(dims)


def test_counts_shapes_and_labels():
    for prefix, n in (("train", 4000), ("t10k", 1000)):
        images = load_idx(f"{prefix}-images-idx3-ubyte.gz")
        labels = load_idx(f"{prefix}-labels-idx1-ubyte.gz")
        assert images.shape == (n, 28, 28) and labels.shape == (n,)
        assert labels.min() == 0 and labels.max() == 9
        assert np.all(np.bincount(labels, minlength=10) == n // 10)
        assert images.max() == 255 and images.mean() > 20  # real digits, not blank
        assert len(set(labels[:20].tolist())) > 3  # shuffled, not sorted by digit


def test_train_and_test_are_disjoint():
    train = {img.tobytes() for img in load_idx("train-images-idx3-ubyte.gz")}
    test = [img.tobytes() for img in load_idx("t10k-images-idx3-ubyte.gz")]
    assert not any(t in train for t in test)


def test_logreg_files():
    for name, n in (("train", 100), ("test", 50)):
        listed = (REPO / "resources" / "data" / "logreg" / f"{name}.txt").read_text().split()
        assert listed == [f"resources/data/logreg/{name}.h5"]
        with h5py.File(REPO / listed[0], "r") as f:
            assert f["data"].shape == (n, 4) and f["data"].dtype == np.float32
            assert f["label"].shape == (n,) and set(np.unique(f["label"][()])) <= {0.0, 1.0}
    total = sum(p.stat().st_size for p in (REPO / "resources" / "data").rglob("*") if p.is_file()
                and "lmdb" not in str(p))
    assert total < 10 * 2**20
