"""The example nets build as Nets and run forward on generated input."""

from pathlib import Path

import numpy as np
import pytest

import engine as caffe

EXAMPLES = Path(__file__).resolve().parents[2] / "resources" / "examples"


@pytest.mark.parametrize(
    "path,input_shape,out,out_shape",
    [
        ("lenet/lenet.prototxt", (64, 1, 28, 28), "prob", (64, 10)),
        ("siamese/mnist_siamese.prototxt", (10000, 1, 28, 28), "feat", None),
        ("resnet50/deploy.prototxt", (1, 3, 224, 224), "prob", (1, 1000)),
        ("googlenet/deploy.prototxt", (10, 3, 224, 224), "prob", None),
    ],
)
def test_deploy_forward(path, input_shape, out, out_shape):
    net = caffe.Net(str(EXAMPLES / path), caffe.TEST)
    data = net.inputs[0]
    shape = tuple(net.blobs[data].data.shape)
    assert shape == input_shape
    if shape[0] > 2:  # keep the run small: reshape the batch to 2
        net.blobs[data].reshape(2, *shape[1:])
        net.reshape()
    net.blobs[data].data[...] = np.random.default_rng(0).normal(size=net.blobs[data].data.shape)
    result = net.forward()
    assert out in result
    if out_shape is not None and out_shape[0] == 1:
        assert result[out].shape == out_shape
    if out == "prob":
        np.testing.assert_allclose(result[out].reshape(result[out].shape[0], -1).sum(axis=1), 1.0, rtol=1e-4)


def test_cifar10_quick_trains_on_generated_data():
    """The train/test net builds in TRAIN with its Data layers swapped for generated input."""
    from engine.io import read_net_prototxt
    from engine.proto import caffe_pb2

    param = read_net_prototxt(str(EXAMPLES / "cifar10/cifar10_quick_train_test.prototxt"))
    kept = [lp for lp in param.layer if lp.type != "Data"]
    data = caffe_pb2.LayerParameter(name="data", type="Input", top=["data", "label"])
    data.input_param.shape.add(dim=[4, 3, 32, 32])
    data.input_param.shape.add(dim=[4])
    del param.layer[:]
    param.layer.extend([data, *kept])
    param.state.phase = caffe_pb2.TRAIN
    net = caffe.Net(param)
    net.blobs["data"].data[...] = np.random.default_rng(0).normal(size=(4, 3, 32, 32))
    net.blobs["label"].data[...] = [0, 3, 5, 9]
    loss = net.forward()["loss"]
    assert np.isfinite(loss) and loss > 0
    net.backward()
    assert np.abs(net.params["conv1"][0].diff).sum() > 0
