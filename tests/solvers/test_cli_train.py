"""`brewnet train` / `test` / `time` on the bundled LeNet example: it learns, logs as Caffe does."""

import logging
import re
import shutil
from pathlib import Path

import pytest

from engine.cli import main
from engine.io import read_solver_prototxt, write_solver_prototxt
from engine.solvers.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[2]
MNIST = ROOT / "resources" / "data" / "mnist"


@pytest.fixture
def lenet_quick(tmp_path, monkeypatch):
    """The LeNet example with its LMDBs built in tmp_path and a short schedule."""
    for split, prefix in (("train", "train"), ("test", "t10k")):
        assert main(["convert_mnist_data", str(MNIST / f"{prefix}-images-idx3-ubyte.gz"),
                     str(MNIST / f"{prefix}-labels-idx1-ubyte.gz"),
                     str(tmp_path / "resources/data/mnist" / f"mnist_{split}_lmdb")]) == 0
    shutil.copytree(ROOT / "resources/examples/lenet", tmp_path / "resources/examples/lenet")
    monkeypatch.chdir(tmp_path)
    solver = read_solver_prototxt("resources/examples/lenet/lenet_quick_solver.prototxt")
    solver.max_iter = 150
    solver.test_interval = 150
    solver.test_iter[0] = 5
    solver.display = 50
    solver.random_seed = 1
    write_solver_prototxt(solver, "solver.prototxt")
    return tmp_path


def test_train_learns_and_logs_like_caffe(lenet_quick, caplog):
    caplog.set_level(logging.INFO, logger="brewnet")
    logging.getLogger("brewnet").propagate = True
    assert main(["train", "-solver", "solver.prototxt", "-metrics", "m.jsonl"]) == 0
    text = caplog.text
    assert re.search(r"Iteration 50 \([\d.e+]+ iter/s, [\d.e+]+s/50 iters\), loss = [\d.e-]+", text)
    assert re.search(r"    Train net output #0: loss = [\d.e-]+ \(\* 1 = [\d.e-]+ loss\)", text)
    assert re.search(r"Iteration 50, lr = 0\.00996", text)
    assert "Iteration 150, Testing net (#0)" in text
    assert "Snapshotting to binary proto file runs/lenet_quick/lenet_iter_150.caffemodel" in text
    accuracy = [r for r in read_metrics("m.jsonl") if r["kind"] == "test"][-1]["outputs"][0]
    assert accuracy["name"] == "accuracy" and accuracy["value"] > 0.5  # chance is 0.1
    assert Path("runs/lenet_quick/lenet_iter_150.solverstate").exists()

    # Resume for 10 more iterations from the snapshot, then score the weights with `test`.
    solver = read_solver_prototxt("solver.prototxt")
    solver.max_iter = 160
    write_solver_prototxt(solver, "solver160.prototxt")
    assert main(["train", "-solver", "solver160.prototxt", "-snapshot",
                 "runs/lenet_quick/lenet_iter_150.solverstate"]) == 0
    assert Path("runs/lenet_quick/lenet_iter_160.caffemodel").exists()
    caplog.clear()
    assert main(["test", "-model", "resources/examples/lenet/lenet_train_test.prototxt", "-weights",
                 "runs/lenet_quick/lenet_iter_160.caffemodel", "-iterations", "2"]) == 0
    assert re.search(r"accuracy = 0\.[5-9]", caplog.text)
    caplog.clear()
    assert main(["time", "-model", "resources/examples/lenet/lenet_train_test.prototxt",
                 "-iterations", "1"]) == 0
    assert "Average Forward-Backward:" in caplog.text


def test_bad_command_lines_fail_with_one_clear_line(lenet_quick, capsys):
    assert main(["train", "-solver", "missing.prototxt"]) == 1
    assert "missing.prototxt" in capsys.readouterr().err
    assert main(["train", "-solver", "solver.prototxt", "-bogus", "1"]) == 1
    assert "unknown flag '-bogus'" in capsys.readouterr().err
    assert main(["train", "-solver", "solver.prototxt", "-weights", "a", "-snapshot", "b"]) == 1
    assert "not both" in capsys.readouterr().err
    assert main(["nonsense"]) == 1
