"""The Python layer: user classes inside a Net, their params, losses, gradients and errors."""

import numpy as np
import pytest

import engine as caffe
from engine.errors import WiringError
from engine.io import read_net_text
from engine.layer import create_layer
from engine.proto import caffe_pb2
from engine.testing import GradientChecker


def _scale_net(module: str, w: float = 3.0, phase_field: str = "") -> str:
    return f"""
name: "pyscale"
{phase_field}
layer {{ name: "data" type: "Input" top: "data" top: "target"
        input_param {{ shape {{ dim: 2 dim: 3 }} shape {{ dim: 2 dim: 3 }} }} }}
layer {{ name: "scale" type: "Python" bottom: "data" top: "scaled"
        python_param {{ module: "{module}" layer: "ScaleByParam" param_str: "{w}" }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "scaled" bottom: "target" top: "loss" }}
"""


def _python_param(module: str, layer: str, param_str: str = "") -> caffe_pb2.LayerParameter:
    p = caffe_pb2.LayerParameter(name="py", type="Python")
    p.python_param.module = module
    p.python_param.layer = layer
    p.python_param.param_str = param_str
    return p


def test_forward_backward_and_params_in_a_net(user_module, tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(_scale_net(user_module, 3.0, "force_backward: true"))
    net = caffe.Net(str(path), caffe.TRAIN)
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.0
    t = np.ones((2, 3), dtype=np.float32)
    net.blobs["data"].data[...] = x
    net.blobs["target"].data[...] = t
    out = net.forward()
    # EuclideanLoss: sum((3x - t)^2) / (2 N), N = 2.
    expected = np.sum((3 * x - t) ** 2) / 4.0
    assert out["loss"] == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(net.blobs["scaled"].data, 3 * x)

    assert list(net.params) == ["scale"]
    w = net.params["scale"][0]
    assert w.shape == (1,) and w.data[0] == 3.0
    net.backward()
    # d loss / d scaled = (3x - t) / N; d/dw = sum(that * x); d/dx = 3 * that.
    dscaled = (3 * x - t) / 2.0
    assert w.diff[0] == pytest.approx(np.sum(dscaled * x), rel=1e-6)
    np.testing.assert_allclose(net.blobs["data"].diff, 3 * dscaled, rtol=1e-6)

    # The user's blob is a learnable param of the net: an update moves it by -diff.
    assert any(p is w for p in net.learnable_params)
    before, grad = float(w.data[0]), float(w.diff[0])
    net.update()
    assert w.data[0] == pytest.approx(before - grad, rel=1e-6)


def test_input_diff_needs_force_backward(user_module):
    # As in Caffe: without force_backward nothing propagates into the Input blob.
    net = caffe.Net(read_net_text(_scale_net(user_module, 3.0)), caffe.TRAIN)
    net.blobs["data"].data[...] = 1.0
    net.forward()
    net.backward()
    assert not net.blobs["data"].diff.any()
    assert net.params["scale"][0].diff[0] != 0


def test_param_str_phase_and_user_attributes(user_module):
    for phase in (caffe.TRAIN, caffe.TEST):
        net = caffe.Net(read_net_text(_scale_net(user_module, 1.5)), phase)
        layer = net.layer_dict["scale"]
        assert layer.type == "Python"
        # pycaffe's net.layers[i] is the user object: its attributes are reachable.
        assert layer.param_str == "1.5"
        assert layer.setup_phase == phase
        assert layer.user_layer.phase == phase
        assert net.params["scale"][0].data[0] == 1.5


def test_loss_declared_with_loss_weight(user_module):
    text = f"""
force_backward: true
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 4 }} }} }}
layer {{ name: "l2" type: "Python" bottom: "data" top: "l2" loss_weight: 2.5
        python_param {{ module: "{user_module}" layer: "HalfSumSquares" }} }}
"""
    net = caffe.Net(read_net_text(text), caffe.TRAIN)
    x = np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32)
    net.blobs["data"].data[...] = x
    loss = net.forward_backward()
    assert loss == pytest.approx(2.5 * 0.5 * np.sum(x ** 2), rel=1e-6)
    assert net.blob_loss_weights["l2"] == 2.5
    np.testing.assert_allclose(net.blobs["data"].diff, 2.5 * x, rtol=1e-6)


def test_trained_params_round_trip_through_caffemodel(user_module, tmp_path):
    net = caffe.Net(read_net_text(_scale_net(user_module, 3.0)), caffe.TEST)
    net.params["scale"][0].data[...] = -7.25
    model = tmp_path / "w.caffemodel"
    net.save(str(model))
    other = caffe.Net(read_net_text(_scale_net(user_module, 3.0)), caffe.TEST, weights=str(model))
    assert other.params["scale"][0].data[0] == -7.25
    # Weights embedded in the layer's own proto reach the user's self.blobs before setup.
    lp = net.layers[net._layer_names.index("scale")].to_proto()
    assert lp.blobs[0].data[0] == -7.25
    layer = create_layer(lp)
    assert len(layer.user_layer.blobs) == 1 and layer.blobs is layer.user_layer.blobs


def test_solver_learns_the_user_blob(user_module, tmp_path):
    net_text = f"""
layer {{ name: "batch" type: "Python" top: "x" top: "y"
        python_param {{ module: "{user_module}" layer: "FixedBatch" }} }}
layer {{ name: "scale" type: "Python" bottom: "x" top: "wx"
        python_param {{ module: "{user_module}" layer: "ScaleByParam" param_str: "3" }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "wx" bottom: "y" top: "loss" }}
"""
    (tmp_path / "train.prototxt").write_text(net_text)
    (tmp_path / "solver.prototxt").write_text(
        f'net: "{tmp_path / "train.prototxt"}"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 10\n'
        'display: 0\nsnapshot_after_train: false\n'
    )
    solver = caffe.SGDSolver(str(tmp_path / "solver.prototxt"))
    w = solver.net.params["scale"][0]
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    # Loss sum((w - 1)^2 x^2) / 4, so dL/dw = (w - 1) * sum(x^2) / 2 and each SGD step
    # multiplies (w - 1) by (1 - lr * sum(x^2) / 2).
    factor = 1 - 0.1 * np.sum(x ** 2) / 2
    solver.step(3)
    assert w.data[0] == pytest.approx(1 + 2 * factor ** 3, rel=1e-5)


def test_gradient_check(user_module):
    layer = create_layer(_python_param(user_module, "CubePlusBias"))
    rng = np.random.default_rng(5)
    bottom = caffe.Blob((2, 3, 2), dtype=np.float64)
    bottom.data[...] = rng.uniform(-1, 1, bottom.shape)
    top = caffe.Blob(dtype=np.float64)
    GradientChecker(1e-3, 1e-4).check_gradient_exhaustive(layer, [bottom], [top])
    assert [b.shape for b in layer.blobs] == [(1,), (3,)]
    assert all(b.dtype == np.float64 for b in layer.blobs)


def test_gradient_check_catches_a_wrong_backward(user_module):
    layer = create_layer(_python_param(user_module, "CubePlusBias"))
    user = layer.user_layer
    user.backward = lambda top, pd, bottom: bottom[0].diff.fill(1.0)
    bottom = caffe.Blob((1, 2, 2), dtype=np.float64)
    bottom.data[...] = [[[0.3, -0.4], [0.5, 0.9]]]
    with pytest.raises(AssertionError):
        GradientChecker(1e-3, 1e-6).check_gradient(layer, [bottom], [caffe.Blob(dtype=np.float64)])


def test_missing_module_names_layer_module_and_class():
    with pytest.raises(WiringError) as info:
        create_layer(_python_param("no_such_brewnet_module", "MyLayer"))
    msg = str(info.value)
    assert "'py'" in msg and "no_such_brewnet_module" in msg and "MyLayer" in msg
    assert info.value.layer == "py"


def test_missing_class_and_non_layer_class(user_module):
    with pytest.raises(WiringError, match=r"has no attribute 'Nope'") as info:
        create_layer(_python_param(user_module, "Nope"))
    assert user_module in str(info.value)
    with pytest.raises(WiringError, match="subclass of caffe.Layer"):
        create_layer(_python_param(user_module, "NotALayer"))
    with pytest.raises(WiringError, match="needs both"):
        create_layer(_python_param("", ""))


def test_missing_module_in_a_net_names_the_layer():
    text = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 } } }
layer { name: "mine" type: "Python" bottom: "data" top: "out"
        python_param { module: "absent_brewnet_mod" layer: "L" } }
"""
    with pytest.raises(WiringError, match="mine.*absent_brewnet_mod"):
        caffe.Net(read_net_text(text), caffe.TEST)


def test_user_exceptions_carry_the_layer_name(user_module):
    layer = create_layer(_python_param(user_module, "FailsInForward"))
    bottom, top = caffe.Blob((2,)), caffe.Blob()
    layer.setup([bottom], [top])
    with pytest.raises(ValueError, match=r"^Python layer 'py'.*user forward exploded") as info:
        layer.forward([bottom], [top])
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value.__cause__) == "user forward exploded"

    layer = create_layer(_python_param(user_module, "FailsInSetup", "xyz"))
    with pytest.raises(WiringError, match=r"'py'.*setup failed.*bad param_str 'xyz'") as info:
        layer.setup([bottom], [top])
    assert isinstance(info.value.__cause__, RuntimeError)


def test_blobs_is_read_only_and_add_blob_checks_dims():
    user = caffe.Layer()
    with pytest.raises(AttributeError):
        user.blobs = []
    user.blobs.add_blob(2, 3)
    assert user.blobs[0].shape == (2, 3)
    assert not user.blobs[0].data.any()
    with pytest.raises(TypeError, match="int dimensions"):
        user.blobs.add_blob(2.5)
    with pytest.raises(NotImplementedError, match="forward"):
        user.forward([], [])


def test_user_error_during_net_forward_keeps_its_type(user_module):
    text = f"""
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 3 }} }} }}
layer {{ name: "boom" type: "Python" bottom: "data" top: "out"
        python_param {{ module: "{user_module}" layer: "FailsInForward" }} }}
"""
    net = caffe.Net(read_net_text(text), caffe.TEST)
    with pytest.raises(ValueError, match="'boom'.*user forward exploded"):
        net.forward()
    assert "Python" in caffe.layer_type_list()
