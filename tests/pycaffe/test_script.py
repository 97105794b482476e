"""A pycaffe-style user script runs unchanged with `import engine as caffe`."""

import runpy
import textwrap

import numpy as np
from PIL import Image

SCRIPT = '''
import numpy as np
import engine as caffe
from engine import layers as L, params as P

caffe.set_mode_cpu()
caffe.set_random_seed(0)


def deploy_net(batch):
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[batch, 3, 4, 4]))
    n.scaled = L.Python(n.data, module="{module}", layer="ScaleByParam", param_str="2.0")
    n.pool = L.Pooling(n.scaled, kernel_size=2, stride=2, pool=P.Pooling.AVE)
    n.ip = L.InnerProduct(n.pool, num_output=5, weight_filler=dict(type="gaussian", std=0.1),
                          bias_filler=dict(type="constant", value=0.2))
    n.prob = L.Softmax(n.ip)
    return n.to_proto()


with open("deploy.prototxt", "w") as f:
    f.write(str(deploy_net(2)))

net = caffe.Net("deploy.prototxt", caffe.TEST)
print([(k, v.data.shape) for k, v in net.blobs.items()])
print([(k, v[0].data.shape) for k, v in net.params.items()])

transformer = caffe.io.Transformer({{"data": net.blobs["data"].data.shape}})
transformer.set_transpose("data", (2, 0, 1))
transformer.set_channel_swap("data", (2, 1, 0))
transformer.set_raw_scale("data", 255)
transformer.set_mean("data", np.array([104.0, 117.0, 123.0]))

image = caffe.io.load_image("cat.png")
net.blobs["data"].data[...] = transformer.preprocess("data", image)
out = net.forward()
probs = out["prob"].copy()
top_k = probs[0].argsort()[::-1]
print("predicted class", top_k[0])

weights = net.params["ip"][0].data.copy()
biases = net.params["ip"][1].data.copy()
net.save("trained.caffemodel")
reloaded = caffe.Net("deploy.prototxt", "trained.caffemodel", caffe.TEST)
reloaded.blobs["data"].data[...] = net.blobs["data"].data
reloaded_probs = reloaded.forward()["prob"].copy()
recovered = transformer.deprocess("data", net.blobs["data"].data[0])
'''


def test_pycaffe_script_runs_unchanged(user_module, tmp_path, monkeypatch):
    rng = np.random.default_rng(11)
    rgb = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "cat.png")
    script = tmp_path / "classify.py"
    script.write_text(textwrap.dedent(SCRIPT.format(module=user_module)))
    monkeypatch.chdir(tmp_path)

    g = runpy.run_path(str(script), run_name="__main__")

    net = g["net"]
    assert list(net.blobs) == ["data", "scaled", "pool", "ip", "prob"]
    assert list(net.params) == ["scaled", "ip"]
    assert net.params["scaled"][0].data[0] == 2.0
    assert g["weights"].shape == (5, 12) and np.all(g["biases"] == np.float32(0.2))

    # Independent computation: load (RGB / 255), 8x8 -> 4x4 is a 2x2 block mean, HWC -> CHW,
    # RGB -> BGR, x255, minus the mean; then x2 (the Python layer), 2x2 average pool, ip, softmax.
    def block_mean(a):
        return a.reshape(a.shape[0] // 2, 2, a.shape[1] // 2, 2, *a.shape[2:]).mean(axis=(1, 3))

    img = block_mean(rgb / 255.0)
    data = img.transpose(2, 0, 1)[::-1] * 255.0 - np.array([104.0, 117.0, 123.0])[:, None, None]
    np.testing.assert_allclose(net.blobs["data"].data[1], data, rtol=1e-4, atol=1e-3)
    pooled = np.stack([block_mean(2 * c) for c in data])
    logits = g["weights"] @ pooled.ravel() + g["biases"]
    expected = np.exp(logits - logits.max())
    expected /= expected.sum()
    for item in range(2):
        np.testing.assert_allclose(g["probs"][item], expected, rtol=1e-4, atol=1e-6)
    assert g["top_k"][0] == int(np.argmax(expected))

    # Weights saved and reloaded through the old Net(path, weights, phase) form give the same output.
    np.testing.assert_allclose(g["reloaded_probs"], g["probs"], rtol=1e-6)
    # deprocess undoes the preprocessing (resize aside): back to the block-mean RGB image.
    np.testing.assert_allclose(g["recovered"], img, atol=1e-4)
