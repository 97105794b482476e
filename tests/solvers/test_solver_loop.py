"""The Step/Solve loop: iter_size, smoothed loss, testing, snapshots, restore, seeds, NaN."""

import glob
import os

import numpy as np
import pytest

from engine import solvers
from engine.proto import caffe_pb2


def _weights(solver):
    return [p.data.copy() for p in solver.net.learnable_params]


def test_random_seed_reproduces_bit_for_bit(tiny):
    runs = []
    for _ in range(2):
        s = solvers.SGDSolver(tiny.solver_param(type="SGD", momentum=0.9))
        tiny.fill_inputs(s.net)
        s.step(4)
        runs.append(_weights(s))
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_smoothed_loss_is_running_mean(tiny):
    s = solvers.SGDSolver(tiny.solver_param(type="SGD", average_loss=3))
    tiny.fill_inputs(s.net)
    seen = []

    class Watch:
        def on_iteration(self, solver, record):
            seen.append(record)

    s.add_observer(Watch())
    s.step(5)
    losses = [r.loss for r in seen]
    for k, r in enumerate(seen):
        window = losses[max(0, k - 2): k + 1]
        assert r.smoothed_loss == pytest.approx(np.mean(window), rel=1e-6)
    assert [r.iteration for r in seen] == [1, 2, 3, 4, 5]
    assert all(r.learning_rate == pytest.approx(0.1) for r in seen)


def test_iter_size_matches_single_big_batch(tiny):
    """Two half batches with iter_size 2 give the same update as one full batch."""
    p_full = tiny.solver_param(type="SGD", momentum=0.0)
    full = solvers.SGDSolver(p_full)
    tiny.fill_inputs(full.net)
    p_half = tiny.solver_param(type="SGD", momentum=0.0, iter_size=2)
    p_half.net_param.layer[0].input_param.shape[0].dim[0] = 2
    p_half.net_param.layer[0].input_param.shape[1].dim[0] = 2
    half = solvers.SGDSolver(p_half)
    for a, b in zip(full.net.learnable_params, half.net.learnable_params, strict=True):
        b.data[...] = a.data
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    chunks = iter([(x[:2], y[:2]), (x[2:], y[2:])])

    original = half.net.forward_backward

    def fed_forward_backward():
        xs, ys = next(chunks)
        half.net.blobs["data"].data[...] = xs
        half.net.blobs["target"].data[...] = ys
        return original()

    half.net.forward_backward = fed_forward_backward
    full.step(1)
    half.step(1)
    # EuclideanLoss divides by the batch: each half-batch gradient is a mean over 2,
    # the full one over 4, so iter_size 2 with normalisation gives the same mean.
    for a, b in zip(full.net.learnable_params, half.net.learnable_params, strict=True):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam"])
@pytest.mark.parametrize("fmt", [caffe_pb2.SolverParameter.BINARYPROTO, caffe_pb2.SolverParameter.HDF5])
def test_snapshot_restore_continues_exactly(tiny, tmp_path, kind, fmt):
    extra = {"momentum": 0.9} if kind in ("SGD", "Nesterov", "AdaDelta", "Adam") else {}
    prefix = str(tmp_path / "snap" / "tiny")
    straight = solvers.solver_class(kind)(tiny.solver_param(type=kind, **extra))
    tiny.fill_inputs(straight.net)
    straight.step(6)

    first = solvers.solver_class(kind)(tiny.solver_param(type=kind, snapshot_prefix=prefix,
                                                     snapshot_format=fmt, **extra))
    tiny.fill_inputs(first.net)
    first.step(3)
    model, state = first.snapshot()
    assert os.path.exists(model) and os.path.exists(state)
    assert model.endswith("_iter_3.caffemodel" + (".h5" if fmt == caffe_pb2.SolverParameter.HDF5 else ""))

    resumed = solvers.solver_class(kind)(tiny.solver_param(type=kind, random_seed=99, **extra))
    tiny.fill_inputs(resumed.net)
    resumed.restore(state)
    assert resumed.iter == 3
    resumed.step(3)
    assert resumed.iter == 6
    for a, b in zip(_weights(straight), _weights(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not glob.glob(str(tmp_path / "snap" / ".tmp*"))


def test_snapshot_every_n_and_after_train(tiny, tmp_path):
    prefix = str(tmp_path / "run")
    s = solvers.SGDSolver(tiny.solver_param(type="SGD", snapshot=4, snapshot_prefix=prefix, max_iter=10,
                                       snapshot_after_train=True))
    tiny.fill_inputs(s.net)
    s.solve()
    names = sorted(os.path.basename(f) for f in glob.glob(prefix + "_iter_*"))
    assert names == [
        "run_iter_10.caffemodel", "run_iter_10.solverstate", "run_iter_4.caffemodel",
        "run_iter_4.solverstate", "run_iter_8.caffemodel", "run_iter_8.solverstate",
    ]


def test_stop_request_finishes_iteration_and_snapshots(tiny, tmp_path):
    prefix = str(tmp_path / "run")
    s = solvers.SGDSolver(tiny.solver_param(type="SGD", snapshot_prefix=prefix, max_iter=100,
                                       snapshot_after_train=True))
    tiny.fill_inputs(s.net)
    calls = {"n": 0}

    def action():
        calls["n"] += 1
        return solvers.STOP if calls["n"] == 3 else solvers.NONE

    s.set_action_function(action)
    s.solve()
    assert s.iter == 3
    assert os.path.exists(prefix + "_iter_3.solverstate")


def test_test_nets_share_weights_and_average_outputs(tiny):
    p = tiny.solver_param(type="SGD", test_interval=2, max_iter=4)
    p.test_iter.append(3)
    p.test_initialization = False
    s = solvers.SGDSolver(p)
    tiny.fill_inputs(s.net)
    tiny.fill_inputs(s.test_nets[0])
    records = []

    class Watch:
        def on_test(self, solver, record):
            records.append(record)

    s.add_observer(Watch())
    s.solve()
    assert [r.iteration for r in records] == [2, 4]
    # Same inputs, shared weights: the test loss equals the train net's loss now.
    train_loss = s.net.forward_prefilled()
    assert records[-1].outputs[0].name == "loss"
    assert records[-1].outputs[0].value == pytest.approx(train_loss, rel=1e-5)
    assert records[-1].outputs[0].loss_weight == 1


def test_nan_names_the_first_layer(tiny):
    s = solvers.SGDSolver(tiny.solver_param(type="SGD", base_lr=1e30))
    tiny.fill_inputs(s.net)
    with pytest.raises(solvers.TrainingDivergedError, match="ip"):
        s.step(20)


def test_get_solver_reads_type_from_file(tiny, tmp_path):
    from engine.io import write_solver_prototxt

    path = tmp_path / "solver.prototxt"
    write_solver_prototxt(tiny.solver_param(type="Adam"), str(path))
    s = solvers.get_solver(str(path))
    assert isinstance(s, solvers.AdamSolver)


def test_weights_field_initialises_train_and_test_nets(tiny, tmp_path):
    """Fine-tuning: `weights` (what `brewnet train -weights` sets) loads into every net."""
    trained = solvers.SGDSolver(tiny.solver_param(type="SGD"))
    tiny.fill_inputs(trained.net)
    trained.step(3)
    trained.net.save(str(tmp_path / "w.caffemodel"))
    p = tiny.solver_param(type="SGD", random_seed=42, weights=[str(tmp_path / "w.caffemodel")])
    p.test_iter.append(1)
    tuned = solvers.SGDSolver(p)
    for name in ("ip1", "ip2"):
        for a, b, c in zip(trained.net.params[name], tuned.net.params[name], tuned.test_nets[0].params[name],
                           strict=True):
            np.testing.assert_array_equal(a.data, b.data)
            np.testing.assert_array_equal(a.data, c.data)
