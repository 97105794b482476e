"""The example nets under resources/examples: they parse, they are wired, they have the shape
of the Caffe nets they reproduce.

Expected values come from the published architectures (LeNet-5 as in Caffe's MNIST tutorial,
Krizhevsky et al. 2012, Szegedy et al. 2015 table 1, He et al. 2016 table 1), not from the files.
Shapes are propagated with Caffe's own size formulas, written out here independently.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
from collections import Counter

import pytest
from google.protobuf import text_format

from engine.proto import caffe_pb2

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(REPO, "resources", "examples")

NET_FILES = [
    "lenet/lenet_train_test.prototxt",
    "lenet/lenet.prototxt",
    "cifar10/cifar10_quick_train_test.prototxt",
    "cifar10/cifar10_full_train_test.prototxt",
    "mnist_autoencoder/mnist_autoencoder.prototxt",
    "siamese/mnist_siamese_train_test.prototxt",
    "siamese/mnist_siamese.prototxt",
    "logreg/logreg_train_test.prototxt",
    "alexnet/deploy.prototxt",
    "caffenet/deploy.prototxt",
    "googlenet/train_val.prototxt",
    "googlenet/deploy.prototxt",
    "resnet50/deploy.prototxt",
]
SOLVER_FILES = [
    "lenet/lenet_solver.prototxt",
    "lenet/lenet_quick_solver.prototxt",
    "cifar10/cifar10_quick_solver.prototxt",
    "cifar10/cifar10_full_solver.prototxt",
    "mnist_autoencoder/mnist_autoencoder_solver.prototxt",
    "siamese/mnist_siamese_solver.prototxt",
    "logreg/logreg_solver.prototxt",
]


def all_prototxt():
    found = []
    for root, _dirs, files in os.walk(EXAMPLES):
        for f in files:
            if f.endswith(".prototxt"):
                found.append(os.path.relpath(os.path.join(root, f), EXAMPLES))
    return sorted(found)


def is_solver(rel):
    return rel.endswith("_solver.prototxt")


def read_text(rel):
    with open(os.path.join(EXAMPLES, rel)) as f:
        return f.read()


def load_net(rel) -> caffe_pb2.NetParameter:
    return text_format.Parse(read_text(rel), caffe_pb2.NetParameter())


def load_solver(rel) -> caffe_pb2.SolverParameter:
    return text_format.Parse(read_text(rel), caffe_pb2.SolverParameter())


def types(net):
    return Counter(lay.type for lay in net.layer)


def by_type(net, t):
    return [lay for lay in net.layer if lay.type == t]


def by_name(net, name):
    hits = [lay for lay in net.layer if lay.name == name]
    assert len(hits) == 1, f"{name}: {len(hits)} layers"
    return hits[0]


# --------------------------------------------------------------------------- phase filtering

def rule_met(state, rule):
    """Caffe's Net::StateMeetsRule, written out."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    if any(s not in state.stage for s in rule.stage):
        return False
    if any(s in state.stage for s in rule.not_stage):
        return False
    return True


def filtered(net, phase, stages=()):
    """Caffe's Net::FilterNet: the layers kept for a state."""
    state = caffe_pb2.NetState(phase=phase, stage=list(stages))
    kept = []
    for lay in net.layer:
        if lay.include:
            keep = any(rule_met(state, r) for r in lay.include)
        else:
            keep = not any(rule_met(state, r) for r in lay.exclude)
        if keep:
            kept.append(lay)
    return kept


def check_wiring(net, layers):
    """Every bottom exists when its layer runs; a top either is new or is in place on the same
    index bottom (Caffe's AppendTop: otherwise 'Top blob produced by multiple sources')."""
    available = set(net.input)
    for lay in layers:
        for b in lay.bottom:
            assert b in available, f"layer {lay.name}: bottom {b!r} not produced earlier"
        for i, t in enumerate(lay.top):
            in_place = i < len(lay.bottom) and lay.bottom[i] == t
            if not in_place:
                assert t not in available, f"layer {lay.name}: top {t!r} produced twice"
            available.add(t)
    return available


# --------------------------------------------------------------------------- shapes (Caffe formulas)

def conv_out(size, k, p, s, d=1):
    return (size + 2 * p - (d * (k - 1) + 1)) // s + 1


def pool_out(size, k, p, s):
    out = int(math.ceil((size + 2 * p - k) / s)) + 1
    if p and (out - 1) * s >= size + p:
        out -= 1
    return out


def first(repeated, default):
    return repeated[0] if len(repeated) else default


def infer_shapes(layers, seed):
    """Propagate N,C,H,W shapes through the layer kinds used by the example nets."""
    shapes = dict(seed)
    for lay in layers:
        t = lay.type
        ins = [shapes[b] for b in lay.bottom]
        if t == "Input":
            for top, shp in zip(lay.top, lay.input_param.shape, strict=True):
                shapes[top] = tuple(shp.dim)
            continue
        if t in ("Data", "HDF5Data"):
            continue
        if t == "Convolution":
            cp = lay.convolution_param
            n, c, h, w = ins[0]
            k, p, s = first(cp.kernel_size, 0), first(cp.pad, 0), first(cp.stride, 1)
            assert c % cp.group == 0 and cp.num_output % cp.group == 0, lay.name
            out = (n, cp.num_output, conv_out(h, k, p, s), conv_out(w, k, p, s))
        elif t == "Pooling":
            pp = lay.pooling_param
            n, c, h, w = ins[0]
            if pp.global_pooling:
                out = (n, c, 1, 1)
            else:
                out = (n, c, pool_out(h, pp.kernel_size, pp.pad, pp.stride),
                       pool_out(w, pp.kernel_size, pp.pad, pp.stride))
        elif t == "InnerProduct":
            out = (ins[0][0], lay.inner_product_param.num_output)
        elif t == "Concat":
            assert lay.concat_param.axis == 1
            for other in ins[1:]:
                assert other[0] == ins[0][0] and other[2:] == ins[0][2:], lay.name
            out = (ins[0][0], sum(x[1] for x in ins)) + tuple(ins[0][2:])
        elif t == "Eltwise":
            assert all(x == ins[0] for x in ins), f"{lay.name}: {ins}"
            out = ins[0]
        elif t in ("ReLU", "Sigmoid", "LRN", "Dropout", "BatchNorm", "Scale", "Softmax"):
            out = ins[0]
        elif t.endswith("Loss") or t == "Accuracy":
            for other in ins[1:]:
                assert other[0] == ins[0][0], f"{lay.name}: batch sizes {ins}"
            out = ()
        elif t == "Slice":
            sp = lay.slice_param
            axis = sp.axis if sp.HasField("axis") else sp.slice_dim
            bounds = [0, *sp.slice_point, ins[0][axis]]
            assert len(bounds) - 1 == len(lay.top), lay.name
            for top, lo, hi in zip(lay.top, bounds[:-1], bounds[1:], strict=True):
                assert hi > lo, lay.name
                shp = list(ins[0])
                shp[axis] = hi - lo
                shapes[top] = tuple(shp)
            continue
        else:
            raise AssertionError(f"no shape rule for {t}")
        for top in lay.top:
            shapes[top] = out
    return shapes


def legacy_input_shapes(net):
    dims = list(net.input_dim)
    return {name: tuple(dims[4 * i:4 * i + 4]) for i, name in enumerate(net.input)}


# --------------------------------------------------------------------------- parsing, files

def test_expected_files_present():
    found = set(all_prototxt())
    missing = set(NET_FILES + SOLVER_FILES) - found
    assert not missing
    assert os.path.isfile(os.path.join(EXAMPLES, "README.md"))


@pytest.mark.parametrize("rel", all_prototxt())
def test_every_prototxt_parses(rel):
    if is_solver(rel):
        msg = load_solver(rel)
        assert msg.net
    else:
        msg = load_net(rel)
        assert msg.name and len(msg.layer) > 0
        # modern format only: no V1 'layers' blocks
        assert len(msg.layers) == 0


def test_generated_files_match_generator(tmp_path, monkeypatch):
    """The committed long files are exactly what resources/examples/_generate.py writes."""
    script = os.path.join(EXAMPLES, "_generate.py")
    spec = importlib.util.spec_from_file_location("_examples_generate", script)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    monkeypatch.setattr(gen, "HERE", str(tmp_path))
    gen.main()
    written = sorted(os.path.relpath(os.path.join(r, f), tmp_path)
                     for r, _d, fs in os.walk(tmp_path) for f in fs)
    assert len(written) == 8
    for rel in written:
        assert (tmp_path / rel).read_text() == read_text(rel), rel


def test_readme_mentions_every_example_dir():
    readme = read_text("README.md")
    dirs = {rel.split("/")[0] for rel in all_prototxt()}
    for d in dirs:
        assert f"{d}/" in readme, d


@pytest.mark.parametrize("rel", SOLVER_FILES)
def test_solver_net_exists_and_is_cpu(rel):
    s = load_solver(rel)
    assert not os.path.isabs(s.net)
    assert os.path.isfile(os.path.join(REPO, s.net)), s.net
    assert s.solver_mode == caffe_pb2.SolverParameter.CPU
    assert s.snapshot_prefix.startswith("runs/")
    # one test_iter per test net; test_state, when given, names each of them
    assert len(s.test_iter) >= 1
    assert len(s.test_state) in (0, len(s.test_iter))


@pytest.mark.parametrize("rel", SOLVER_FILES)
def test_solver_nets_are_wired_in_every_state(rel):
    s = load_solver(rel)
    net = text_format.Parse(open(os.path.join(REPO, s.net)).read(), caffe_pb2.NetParameter())
    train = filtered(net, caffe_pb2.TRAIN, s.train_state.stage)
    check_wiring(net, train)
    assert any(lay.type.endswith("Loss") for lay in train)
    test_states = [list(ts.stage) for ts in s.test_state] or [[]] * len(s.test_iter)
    for stages in test_states:
        layers = filtered(net, caffe_pb2.TEST, stages)
        check_wiring(net, layers)
        # exactly one data source feeds each net
        data = [lay for lay in layers if lay.type in ("Data", "HDF5Data")]
        assert len(data) == 1, (stages, [d.name for d in data])


@pytest.mark.parametrize("rel", NET_FILES)
def test_nets_wired_in_both_phases(rel):
    net = load_net(rel)
    for phase in (caffe_pb2.TRAIN, caffe_pb2.TEST):
        if "autoencoder" in rel and phase == caffe_pb2.TEST:
            continue  # its TEST nets need a stage; covered by the solver test above
        check_wiring(net, filtered(net, phase))


def test_wiring_check_catches_mistakes():
    net = load_net("lenet/lenet_train_test.prototxt")
    broken = caffe_pb2.NetParameter()
    broken.CopyFrom(net)
    by_name(broken, "conv2").bottom[0] = "pool_missing"
    with pytest.raises(AssertionError, match="pool_missing"):
        check_wiring(broken, filtered(broken, caffe_pb2.TRAIN))
    # the TEST-only accuracy layer must not survive TRAIN filtering
    assert "accuracy" not in [lay.name for lay in filtered(net, caffe_pb2.TRAIN)]
    assert "accuracy" in [lay.name for lay in filtered(net, caffe_pb2.TEST)]


# --------------------------------------------------------------------------- LeNet

def test_lenet_train_test_structure():
    net = load_net("lenet/lenet_train_test.prototxt")
    assert net.name == "LeNet"
    assert types(net) == Counter({"Data": 2, "Convolution": 2, "Pooling": 2, "InnerProduct": 2,
                                  "ReLU": 1, "Accuracy": 1, "SoftmaxWithLoss": 1})
    for name, n in (("conv1", 20), ("conv2", 50)):
        cp = by_name(net, name).convolution_param
        assert (cp.num_output, list(cp.kernel_size), list(cp.stride)) == (n, [5], [1])
        assert cp.weight_filler.type == "xavier"
    assert by_name(net, "ip1").inner_product_param.num_output == 500
    assert by_name(net, "ip2").inner_product_param.num_output == 10
    relu = by_name(net, "relu1")
    assert list(relu.bottom) == list(relu.top) == ["ip1"]
    datas = by_type(net, "Data")
    got = {d.include[0].phase: (d.data_param.source, d.data_param.batch_size) for d in datas}
    assert got == {caffe_pb2.TRAIN: ("resources/data/mnist/mnist_train_lmdb", 64),
                   caffe_pb2.TEST: ("resources/data/mnist/mnist_test_lmdb", 100)}
    for d in datas:
        assert d.data_param.backend == caffe_pb2.DataParameter.LMDB
        assert d.transform_param.scale == pytest.approx(1 / 256)
        assert list(d.top) == ["data", "label"]


def test_lenet_deploy_matches_train_test():
    deploy = load_net("lenet/lenet.prototxt")
    train = load_net("lenet/lenet_train_test.prototxt")
    assert deploy.layer[0].type == "Input"
    assert list(deploy.layer[0].input_param.shape[0].dim) == [64, 1, 28, 28]
    assert deploy.layer[-1].type == "Softmax"
    core = [lay for lay in train.layer if lay.type not in ("Data", "Accuracy", "SoftmaxWithLoss")]
    assert [lay for lay in deploy.layer[1:-1]] == core
    shapes = infer_shapes(deploy.layer, {})
    # 28 -5+1-> 24 /2-> 12 -5+1-> 8 /2-> 4
    assert shapes["pool2"] == (64, 50, 4, 4)
    assert shapes["prob"] == (64, 10)


def test_lenet_solvers():
    s = load_solver("lenet/lenet_solver.prototxt")
    assert s.net == "resources/examples/lenet/lenet_train_test.prototxt"
    assert (list(s.test_iter), s.test_interval, s.display, s.max_iter, s.snapshot) == ([100], 500, 100,
                                                                                        10000, 5000)
    assert s.base_lr == pytest.approx(0.01) and s.momentum == pytest.approx(0.9)
    assert s.weight_decay == pytest.approx(0.0005)
    assert (s.lr_policy, s.gamma, s.power) == ("inv", pytest.approx(0.0001), pytest.approx(0.75))
    assert s.snapshot_prefix == "runs/lenet/lenet"
    q = load_solver("lenet/lenet_quick_solver.prototxt")
    assert q.net == s.net
    assert (list(q.test_iter), q.test_interval, q.display, q.max_iter, q.snapshot) == ([10], 250, 50, 500, 0)
    assert q.snapshot_prefix == "runs/lenet_quick/lenet"
    for field in ("base_lr", "momentum", "weight_decay", "lr_policy", "gamma", "power", "solver_mode"):
        assert getattr(q, field) == getattr(s, field), field
    # the quick test pass covers the 1000 bundled test images exactly once
    net = load_net("lenet/lenet_train_test.prototxt")
    test_batch = [d for d in by_type(net, "Data") if d.include[0].phase == caffe_pb2.TEST][0]
    assert q.test_iter[0] * test_batch.data_param.batch_size == 1000


# --------------------------------------------------------------------------- CIFAR-10

def cifar_seed():
    return {"data": (100, 3, 32, 32), "label": (100,)}


def test_cifar10_quick():
    net = load_net("cifar10/cifar10_quick_train_test.prototxt")
    assert types(net) == Counter({"Data": 2, "Convolution": 3, "Pooling": 3, "ReLU": 3,
                                  "InnerProduct": 2, "Accuracy": 1, "SoftmaxWithLoss": 1})
    assert [c.convolution_param.num_output for c in by_type(net, "Convolution")] == [32, 32, 64]
    P = caffe_pb2.PoolingParameter
    assert [p.pooling_param.pool for p in by_type(net, "Pooling")] == [P.MAX, P.AVE, P.AVE]
    assert [i.inner_product_param.num_output for i in by_type(net, "InnerProduct")] == [64, 10]
    shapes = infer_shapes(filtered(net, caffe_pb2.TEST), cifar_seed())
    # 32 -> 16 -> 8 -> 4 with Caffe's ceil pooling
    assert shapes["pool3"] == (100, 64, 4, 4)
    for d in by_type(net, "Data"):
        assert d.transform_param.mean_file == "resources/data/cifar10/mean.binaryproto"
        assert d.data_param.source.startswith("resources/data/cifar10/cifar10_")
    s = load_solver("cifar10/cifar10_quick_solver.prototxt")
    assert (s.base_lr, s.max_iter, s.lr_policy) == (pytest.approx(0.001), 4000, "fixed")
    assert s.weight_decay == pytest.approx(0.004)


def test_cifar10_full():
    net = load_net("cifar10/cifar10_full_train_test.prototxt")
    lrns = by_type(net, "LRN")
    assert [lay.name for lay in lrns] == ["norm1", "norm2"]
    for lay in lrns:
        lp = lay.lrn_param
        assert lp.norm_region == caffe_pb2.LRNParameter.WITHIN_CHANNEL
        assert (lp.local_size, lp.alpha, lp.beta) == (3, pytest.approx(5e-5), pytest.approx(0.75))
    ip = by_type(net, "InnerProduct")
    assert len(ip) == 1 and ip[0].inner_product_param.num_output == 10
    assert [p.decay_mult for p in ip[0].param] == [250, 0]
    shapes = infer_shapes(filtered(net, caffe_pb2.TRAIN), cifar_seed())
    assert shapes["norm2"] == (100, 32, 8, 8)
    assert shapes["ip1"] == (100, 10)
    s = load_solver("cifar10/cifar10_full_solver.prototxt")
    assert (s.test_interval, s.display, s.max_iter, s.snapshot) == (1000, 200, 60000, 10000)


# --------------------------------------------------------------------------- MNIST autoencoder

def test_mnist_autoencoder():
    net = load_net("mnist_autoencoder/mnist_autoencoder.prototxt")
    sizes = [lay.inner_product_param.num_output for lay in by_type(net, "InnerProduct")]
    enc, dec = sizes[:4], sizes[4:]
    assert enc == [1000, 500, 250, 30]
    # the decoder mirrors the encoder and ends at the 28x28 input size
    assert dec == enc[-2::-1] + [28 * 28]
    for lay in by_type(net, "InnerProduct"):
        assert lay.inner_product_param.weight_filler.sparse == 15
    assert types(net)["Sigmoid"] == 7  # every hidden layer except the linear code, plus the output
    (xent,) = by_type(net, "SigmoidCrossEntropyLoss")
    (l2,) = by_type(net, "EuclideanLoss")
    assert list(xent.loss_weight) == [1] and list(l2.loss_weight) == [0]
    assert list(xent.bottom) == ["decode1", "flatdata"]
    assert list(l2.bottom) == ["decode1neuron", "flatdata"]
    stages = sorted(tuple(r.stage) for d in by_type(net, "Data") for r in d.include)
    assert stages == [(), ("test-on-test",), ("test-on-train",)]
    on_test = filtered(net, caffe_pb2.TEST, ["test-on-test"])
    (data,) = [lay for lay in on_test if lay.type == "Data"]
    assert data.data_param.source == "resources/data/mnist/mnist_test_lmdb"
    s = load_solver("mnist_autoencoder/mnist_autoencoder_solver.prototxt")
    assert [list(ts.stage) for ts in s.test_state] == [["test-on-train"], ["test-on-test"]]
    assert list(s.test_iter) == [500, 100] and s.test_compute_loss
    assert (s.lr_policy, s.stepsize, s.max_iter) == ("step", 10000, 65000)


# --------------------------------------------------------------------------- siamese

def test_siamese_shares_weights_by_name():
    net = load_net("siamese/mnist_siamese_train_test.prototxt")
    (sl,) = by_type(net, "Slice")
    assert list(sl.bottom) == ["pair_data"] and list(sl.top) == ["data", "data_p"]
    assert list(sl.slice_param.slice_point) == [1]
    learnable = [lay for lay in net.layer if lay.type in ("Convolution", "InnerProduct")]
    towers = {lay.name: lay for lay in learnable}
    base = [n for n in towers if not n.endswith("_p")]
    assert base == ["conv1", "conv2", "ip1", "ip2", "feat"]
    for name in base:
        a, b = towers[name], towers[name + "_p"]
        assert [p.name for p in a.param] == [name + "_w", name + "_b"]
        assert [p.name for p in a.param] == [p.name for p in b.param]
        # identically shaped, so the shared blobs fit both
        assert a.convolution_param == b.convolution_param
        assert a.inner_product_param == b.inner_product_param
    counts = Counter(p.name for lay in learnable for p in lay.param)
    assert set(counts.values()) == {2}
    (loss,) = by_type(net, "ContrastiveLoss")
    assert list(loss.bottom) == ["feat", "feat_p", "sim"]
    assert loss.contrastive_loss_param.margin == 1
    # pair_data stacks the two 28x28 images as channels; sim is one label per pair
    shapes = infer_shapes(filtered(net, caffe_pb2.TRAIN), {"pair_data": (64, 2, 28, 28), "sim": (64,)})
    assert shapes["data"] == shapes["data_p"] == (64, 1, 28, 28)
    assert shapes["feat"] == shapes["feat_p"] == (64, 2)


def test_siamese_deploy():
    net = load_net("siamese/mnist_siamese.prototxt")
    assert list(net.input) == ["data"] and list(net.input_shape[0].dim) == [10000, 1, 28, 28]
    shapes = infer_shapes(net.layer, {"data": (10000, 1, 28, 28)})
    assert shapes["feat"] == (10000, 2)
    assert all(not p.name for lay in net.layer for p in lay.param)


# --------------------------------------------------------------------------- logreg

def test_logreg():
    net = load_net("logreg/logreg_train_test.prototxt")
    srcs = {d.include[0].phase: d.hdf5_data_param.source for d in by_type(net, "HDF5Data")}
    assert srcs == {caffe_pb2.TRAIN: "resources/data/logreg/train.txt",
                    caffe_pb2.TEST: "resources/data/logreg/test.txt"}
    assert types(net) == Counter({"HDF5Data": 2, "InnerProduct": 1, "SoftmaxWithLoss": 1, "Accuracy": 1})
    assert by_type(net, "InnerProduct")[0].inner_product_param.num_output == 2


# --------------------------------------------------------------------------- AlexNet / CaffeNet

@pytest.mark.parametrize("rel", ["alexnet/deploy.prototxt", "caffenet/deploy.prototxt"])
def test_alexnet_family(rel):
    net = load_net(rel)
    assert types(net) == Counter({"Input": 1, "Convolution": 5, "ReLU": 7, "LRN": 2, "Pooling": 3,
                                  "InnerProduct": 3, "Dropout": 2, "Softmax": 1})
    convs = by_type(net, "Convolution")
    assert [c.convolution_param.num_output for c in convs] == [96, 256, 384, 384, 256]
    assert [c.convolution_param.group for c in convs] == [1, 2, 1, 2, 2]
    assert [i.inner_product_param.num_output for i in by_type(net, "InnerProduct")] == [4096, 4096, 1000]
    assert all(d.dropout_param.dropout_ratio == pytest.approx(0.5) for d in by_type(net, "Dropout"))
    shapes = infer_shapes(net.layer, {})
    assert shapes["conv1"][1:] == (96, 55, 55)
    assert shapes["pool5"] == (10, 256, 6, 6)  # 9216 inputs to fc6, as in the paper
    assert shapes["prob"] == (10, 1000)
    names = [lay.name for lay in net.layer]
    if rel.startswith("alexnet"):
        assert names.index("norm1") < names.index("pool1")
    else:
        assert names.index("pool1") < names.index("norm1")


# --------------------------------------------------------------------------- GoogLeNet

INCEPTION_OUT = {  # Szegedy et al. 2015, table 1: output channels and size of each module
    "3a": (256, 28), "3b": (480, 28), "4a": (512, 14), "4b": (512, 14), "4c": (512, 14),
    "4d": (528, 14), "4e": (832, 14), "5a": (832, 7), "5b": (1024, 7),
}


def check_googlenet_common(net, shapes, batch):
    concats = by_type(net, "Concat")
    assert [c.name for c in concats] == [f"inception_{k}/output" for k in INCEPTION_OUT]
    for c in concats:
        assert len(c.bottom) == 4
        assert shapes[c.top[0]] == (batch,) + (INCEPTION_OUT[c.name[10:12]][0],) + (INCEPTION_OUT[
            c.name[10:12]][1],) * 2
    assert shapes["pool5/7x7_s1"] == (batch, 1024, 1, 1)
    assert shapes["loss3/classifier"] == (batch, 1000)
    assert len(by_type(net, "LRN")) == 2


def test_googlenet_train_val():
    net = load_net("googlenet/train_val.prototxt")
    # stem 3 + 6 per inception module + 1 per auxiliary head
    assert len(by_type(net, "Convolution")) == 3 + 9 * 6 + 2
    losses = by_type(net, "SoftmaxWithLoss")
    assert {lay.name: list(lay.loss_weight) for lay in losses} == {
        "loss1/loss": [pytest.approx(0.3)], "loss2/loss": [pytest.approx(0.3)], "loss3/loss3": [1]}
    accs = by_type(net, "Accuracy")
    assert len(accs) == 6
    assert sorted(a.accuracy_param.top_k for a in accs) == [1, 1, 1, 5, 5, 5]
    assert all(a.include[0].phase == caffe_pb2.TEST for a in accs)
    for d in by_type(net, "Data"):
        tp = d.transform_param
        assert list(tp.mean_value) == [104, 117, 123] and tp.crop_size == 224
        assert tp.mirror == (d.include[0].phase == caffe_pb2.TRAIN)
    seed = {"data": (32, 3, 224, 224), "label": (32,)}
    shapes = infer_shapes(filtered(net, caffe_pb2.TRAIN), seed)
    check_googlenet_common(net, shapes, 32)
    assert shapes["loss1/ave_pool"] == (32, 512, 4, 4)
    assert shapes["loss2/ave_pool"] == (32, 528, 4, 4)


def test_googlenet_deploy():
    net = load_net("googlenet/deploy.prototxt")
    assert len(by_type(net, "Convolution")) == 3 + 9 * 6
    assert not [lay for lay in net.layer if lay.type in ("SoftmaxWithLoss", "Accuracy", "Data")]
    assert net.layer[-1].type == "Softmax" and net.layer[-1].name == "prob"
    shapes = infer_shapes(net.layer, {})
    check_googlenet_common(net, shapes, 10)
    train = load_net("googlenet/train_val.prototxt")
    # the deploy trunk is the train_val trunk without the auxiliary heads
    trunk = [lay for lay in train.layer if lay.type not in ("Data", "SoftmaxWithLoss", "Accuracy")
             and not lay.name.startswith(("loss1/", "loss2/"))]
    assert trunk == list(net.layer[1:-1])


# --------------------------------------------------------------------------- ResNet-50

BLOCKS = {2: 3, 3: 4, 4: 6, 5: 3}  # He et al. 2016 table 1, the 50-layer column


def test_resnet50_structure():
    net = load_net("resnet50/deploy.prototxt")
    assert net.name == "ResNet-50"
    assert list(net.input) == ["data"] and list(net.input_dim) == [1, 3, 224, 224]
    assert not any(lay.type == "Input" for lay in net.layer)
    n_blocks = sum(BLOCKS.values())
    assert n_blocks == 16
    t = types(net)
    assert t["Convolution"] == 1 + 3 * n_blocks + len(BLOCKS) == 53
    assert t["BatchNorm"] == t["Scale"] == 53
    assert t["Eltwise"] == 16
    assert t["ReLU"] == 1 + 3 * n_blocks
    assert t["InnerProduct"] == 1 and by_name(net, "fc1000").inner_product_param.num_output == 1000
    assert all(b.batch_norm_param.use_global_stats for b in by_type(net, "BatchNorm"))
    assert all(s.scale_param.bias_term for s in by_type(net, "Scale"))
    assert all(e.eltwise_param.operation == caffe_pb2.EltwiseParameter.SUM for e in by_type(net, "Eltwise"))
    expected_res = [f"res{s}{chr(ord('a') + i)}" for s, n in BLOCKS.items() for i in range(n)]
    assert [e.name for e in by_type(net, "Eltwise")] == expected_res
    names = [lay.name for lay in net.layer]
    # every convolution is followed by its in-place BatchNorm and Scale, named after it
    for i, lay in enumerate(net.layer):
        if lay.type != "Convolution":
            continue
        suffix = "_conv1" if lay.name == "conv1" else lay.name[3:]
        bn, sc = net.layer[i + 1], net.layer[i + 2]
        assert (bn.type, bn.name, sc.type, sc.name) == ("BatchNorm", "bn" + suffix, "Scale", "scale" + suffix)
        assert list(bn.bottom) == list(bn.top) == list(sc.bottom) == list(sc.top) == [lay.name]
    for res in expected_res:
        relu = net.layer[names.index(res) + 1]
        assert relu.name == res + "_relu" and list(relu.bottom) == list(relu.top) == [res]
        # projection shortcuts exactly on the first block of each stage
        assert (f"{res}_branch1" in names) == res.endswith("a")
    assert names[-3:] == ["pool5", "fc1000", "prob"]


def test_resnet50_shapes():
    net = load_net("resnet50/deploy.prototxt")
    check_wiring(net, net.layer)
    shapes = infer_shapes(net.layer, legacy_input_shapes(net))
    assert shapes["pool1"] == (1, 64, 56, 56)
    for stage, (c, hw) in {2: (256, 56), 3: (512, 28), 4: (1024, 14), 5: (2048, 7)}.items():
        last = f"res{stage}{chr(ord('a') + BLOCKS[stage] - 1)}"
        assert shapes[last] == (1, c, hw, hw), last
    assert shapes["pool5"] == (1, 2048, 1, 1)
    assert shapes["prob"] == (1, 1000)


# --------------------------------------------------------------------------- engine.io, when present

def _io_module():
    try:
        mod = importlib.import_module("engine.io.prototxt")
    except ImportError:
        return None
    needed = ("read_net_prototxt", "net_to_text", "read_solver_prototxt", "read_net_text")
    return mod if all(hasattr(mod, n) for n in needed) else None


_IO = _io_module()

if _IO is not None:  # defined only once the I/O module exists (no skipped placeholders)

    @pytest.mark.parametrize("rel", NET_FILES)
    def test_io_reads_and_round_trips_nets(rel):
        path = os.path.join(EXAMPLES, rel)
        msg = _IO.read_net_prototxt(path)
        text1 = _IO.net_to_text(msg)
        msg2 = _IO.read_net_text(text1)
        assert msg2 == msg
        text2 = _IO.net_to_text(msg2)
        text3 = _IO.net_to_text(_IO.read_net_text(text2))
        assert text2 == text3
        # upgrades aside, the layers are those of the raw parse
        raw = load_net(rel)
        assert [lay.name for lay in msg.layer if lay.type != "Input"] == [
            lay.name for lay in raw.layer if lay.type != "Input"]

    @pytest.mark.parametrize("rel", SOLVER_FILES)
    def test_io_reads_solvers(rel):
        s = _IO.read_solver_prototxt(os.path.join(EXAMPLES, rel))
        assert s.net == load_solver(rel).net

    def test_io_upgrades_resnet50_inputs():
        msg = _IO.read_net_prototxt(os.path.join(EXAMPLES, "resnet50/deploy.prototxt"))
        assert len(msg.input) == 0 and len(msg.input_dim) == 0 and len(msg.input_shape) == 0
        first_layer = msg.layer[0]
        assert first_layer.type == "Input" and list(first_layer.top) == ["data"]
        assert list(first_layer.input_param.shape[0].dim) == [1, 3, 224, 224]
