"""Generate the long example prototxt files (GoogLeNet, ResNet-50, the siamese net).

Run from the repository root:  .venv/bin/python resources/examples/_generate.py

The committed .prototxt files are the product; this script only saves typing the
repetitive parts (inception modules, residual blocks, the two siamese towers).
Values are a plain nested structure: a layer is a list of (key, value) pairs, a value
is a str (quoted), an Enum (bare word), a bool/int/float, or a nested list (a block).
"""

from __future__ import annotations

import os

HERE = os.path.dirname(os.path.abspath(__file__))


class Enum(str):
    """A bare protobuf enum word (MAX, TRAIN, LMDB)."""


def fmt_scalar(v) -> str:
    if isinstance(v, Enum):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def emit(fields, indent: int = 0) -> str:
    out = []
    pad = "  " * indent
    for key, value in fields:
        if isinstance(value, list):
            out.append(f"{pad}{key} {{")
            out.append(emit(value, indent + 1))
            out.append(f"{pad}}}")
        else:
            out.append(f"{pad}{key}: {fmt_scalar(value)}")
    return "\n".join(s for s in out if s)


def layer(name, type_, bottoms=(), tops=(), *extra):
    fields = [("name", name), ("type", type_)]
    fields += [("bottom", b) for b in bottoms]
    fields += [("top", t) for t in tops]
    for group in extra:
        fields += group
    return fields


def net_text(name, layers, header=()) -> str:
    parts = [f'name: "{name}"']
    parts += [emit(list(header))] if header else []
    for lay in layers:
        parts.append(emit([("layer", lay)]))
    return "\n".join(parts) + "\n"


def write(rel, text):
    path = os.path.join(HERE, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


# --------------------------------------------------------------------------- GoogLeNet

LR_PARAMS = [("param", [("lr_mult", 1), ("decay_mult", 1)]), ("param", [("lr_mult", 2), ("decay_mult", 0)])]


def gconv(name, bottom, num_output, kernel, std, pad=0, stride=1, bias=0.2):
    cp = [("num_output", num_output)]
    if pad:
        cp.append(("pad", pad))
    cp.append(("kernel_size", kernel))
    if stride != 1:
        cp.append(("stride", stride))
    wf = [("type", "xavier")]
    if std is not None:
        wf.append(("std", std))
    cp += [("weight_filler", wf), ("bias_filler", [("type", "constant"), ("value", bias)])]
    return layer(name, "Convolution", [bottom], [name], LR_PARAMS, [("convolution_param", cp)])


def relu(name, blob):
    return layer(name, "ReLU", [blob], [blob])


def pool(name, bottom, method, kernel, stride, pad=0, top=None):
    pp = [("pool", Enum(method)), ("kernel_size", kernel), ("stride", stride)]
    if pad:
        pp.append(("pad", pad))
    return layer(name, "Pooling", [bottom], [top or name], [("pooling_param", pp)])


def lrn(name, bottom):
    return layer(name, "LRN", [bottom], [name],
                 [("lrn_param", [("local_size", 5), ("alpha", 0.0001), ("beta", 0.75)])])


# (name, 1x1, 3x3_reduce, 3x3, 5x5_reduce, 5x5, pool_proj) as in Szegedy et al. table 1
INCEPTIONS = [
    ("inception_3a", 64, 96, 128, 16, 32, 32),
    ("inception_3b", 128, 128, 192, 32, 96, 64),
    ("inception_4a", 192, 96, 208, 16, 48, 64),
    ("inception_4b", 160, 112, 224, 24, 64, 64),
    ("inception_4c", 128, 128, 256, 24, 64, 64),
    ("inception_4d", 112, 144, 288, 32, 64, 64),
    ("inception_4e", 256, 160, 320, 32, 128, 128),
    ("inception_5a", 256, 160, 320, 32, 128, 128),
    ("inception_5b", 384, 192, 384, 48, 128, 128),
]


def inception(name, bottom, n1, n3r, n3, n5r, n5, npp):
    p = name + "/"
    return [
        gconv(p + "1x1", bottom, n1, 1, 0.03),
        relu(p + "relu_1x1", p + "1x1"),
        gconv(p + "3x3_reduce", bottom, n3r, 1, 0.09),
        relu(p + "relu_3x3_reduce", p + "3x3_reduce"),
        gconv(p + "3x3", p + "3x3_reduce", n3, 3, 0.03, pad=1),
        relu(p + "relu_3x3", p + "3x3"),
        gconv(p + "5x5_reduce", bottom, n5r, 1, 0.2),
        relu(p + "relu_5x5_reduce", p + "5x5_reduce"),
        gconv(p + "5x5", p + "5x5_reduce", n5, 5, 0.03, pad=2),
        relu(p + "relu_5x5", p + "5x5"),
        pool(p + "pool", bottom, "MAX", 3, 1, pad=1),
        gconv(p + "pool_proj", p + "pool", npp, 1, 0.1),
        relu(p + "relu_pool_proj", p + "pool_proj"),
        layer(p + "output", "Concat", [p + "1x1", p + "3x3", p + "5x5", p + "pool_proj"], [p + "output"]),
    ]


def fc(name, bottom, num_output, std, bias, params=True):
    wf = [("type", "xavier")]
    if std is not None:
        wf.append(("std", std))
    ip = [("num_output", num_output), ("weight_filler", wf),
          ("bias_filler", [("type", "constant"), ("value", bias)])]
    return layer(name, "InnerProduct", [bottom], [name], LR_PARAMS if params else [],
                 [("inner_product_param", ip)])


def test_only():
    return [("include", [("phase", Enum("TEST"))])]


def accuracy_pair(prefix, scores):
    return [
        layer(prefix + "/top-1", "Accuracy", [scores, "label"], [prefix + "/top-1"], test_only()),
        layer(prefix + "/top-5", "Accuracy", [scores, "label"], [prefix + "/top-5"], test_only(),
              [("accuracy_param", [("top_k", 5)])]),
    ]


def aux_head(prefix, bottom, loss_top):
    return [
        pool(prefix + "/ave_pool", bottom, "AVE", 5, 3),
        gconv(prefix + "/conv", prefix + "/ave_pool", 128, 1, 0.08),
        relu(prefix + "/relu_conv", prefix + "/conv"),
        fc(prefix + "/fc", prefix + "/conv", 1024, 0.02, 0.2),
        relu(prefix + "/relu_fc", prefix + "/fc"),
        layer(prefix + "/drop_fc", "Dropout", [prefix + "/fc"], [prefix + "/fc"],
              [("dropout_param", [("dropout_ratio", 0.7)])]),
        fc(prefix + "/classifier", prefix + "/fc", 1000, 0.0009765625, 0),
        layer(prefix + "/loss", "SoftmaxWithLoss", [prefix + "/classifier", "label"], [loss_top],
              [("loss_weight", 0.3)]),
    ] + accuracy_pair(prefix, prefix + "/classifier")


def googlenet(train_val: bool) -> str:
    layers = []
    if train_val:
        for phase, mirror, source, batch in (
            ("TRAIN", True, "resources/data/imagenet/ilsvrc12_train_lmdb", 32),
            ("TEST", False, "resources/data/imagenet/ilsvrc12_val_lmdb", 50),
        ):
            tp = [("mirror", mirror), ("crop_size", 224),
                  ("mean_value", 104), ("mean_value", 117), ("mean_value", 123)]
            dp = [("source", source), ("batch_size", batch), ("backend", Enum("LMDB"))]
            layers.append(layer("data", "Data", [], ["data", "label"],
                                [("include", [("phase", Enum(phase))])],
                                [("transform_param", tp), ("data_param", dp)]))
    else:
        shape = [("dim", 10), ("dim", 3), ("dim", 224), ("dim", 224)]
        layers.append(layer("data", "Input", [], ["data"], [("input_param", [("shape", shape)])]))
    layers += [
        gconv("conv1/7x7_s2", "data", 64, 7, 0.1, pad=3, stride=2),
        relu("conv1/relu_7x7", "conv1/7x7_s2"),
        pool("pool1/3x3_s2", "conv1/7x7_s2", "MAX", 3, 2),
        lrn("pool1/norm1", "pool1/3x3_s2"),
        gconv("conv2/3x3_reduce", "pool1/norm1", 64, 1, 0.1),
        relu("conv2/relu_3x3_reduce", "conv2/3x3_reduce"),
        gconv("conv2/3x3", "conv2/3x3_reduce", 192, 3, 0.03, pad=1),
        relu("conv2/relu_3x3", "conv2/3x3"),
        lrn("conv2/norm2", "conv2/3x3"),
        pool("pool2/3x3_s2", "conv2/norm2", "MAX", 3, 2),
    ]
    bottom = "pool2/3x3_s2"
    for spec in INCEPTIONS:
        name = spec[0]
        layers += inception(name, bottom, *spec[1:])
        bottom = name + "/output"
        if name == "inception_3b":
            layers.append(pool("pool3/3x3_s2", bottom, "MAX", 3, 2))
            bottom = "pool3/3x3_s2"
        elif name == "inception_4e":
            layers.append(pool("pool4/3x3_s2", bottom, "MAX", 3, 2))
            bottom = "pool4/3x3_s2"
        elif train_val and name == "inception_4a":
            layers += aux_head("loss1", bottom, "loss1/loss1")
        elif train_val and name == "inception_4d":
            # Caffe's release names this top "loss2/loss1" (sic); kept for compatibility.
            layers += aux_head("loss2", bottom, "loss2/loss1")
    layers += [
        pool("pool5/7x7_s1", bottom, "AVE", 7, 1),
        layer("pool5/drop_7x7_s1", "Dropout", ["pool5/7x7_s1"], ["pool5/7x7_s1"],
              [("dropout_param", [("dropout_ratio", 0.4)])]),
        fc("loss3/classifier", "pool5/7x7_s1", 1000, None, 0),
    ]
    if train_val:
        layers.append(layer("loss3/loss3", "SoftmaxWithLoss", ["loss3/classifier", "label"],
                            ["loss3/loss3"], [("loss_weight", 1)]))
        layers += accuracy_pair("loss3", "loss3/classifier")
    else:
        layers.append(layer("prob", "Softmax", ["loss3/classifier"], ["prob"]))
    return net_text("GoogleNet", layers)


# --------------------------------------------------------------------------- ResNet-50

def rconv(name, bottom, num_output, kernel, pad, stride, bias_term=False):
    cp = [("num_output", num_output), ("kernel_size", kernel), ("pad", pad), ("stride", stride)]
    if not bias_term:
        cp.append(("bias_term", False))
    return layer(name, "Convolution", [bottom], [name], [("convolution_param", cp)])


def bn_scale(suffix, blob):
    return [
        layer("bn" + suffix, "BatchNorm", [blob], [blob],
              [("batch_norm_param", [("use_global_stats", True)])]),
        layer("scale" + suffix, "Scale", [blob], [blob], [("scale_param", [("bias_term", True)])]),
    ]


# (stage, block letters, bottleneck width, output width, first stride)
RESNET50_STAGES = [
    (2, "abc", 64, 256, 1),
    (3, "abcd", 128, 512, 2),
    (4, "abcdef", 256, 1024, 2),
    (5, "abc", 512, 2048, 2),
]


def resnet50() -> str:
    layers = [
        rconv("conv1", "data", 64, 7, 3, 2, bias_term=True),
        *bn_scale("_conv1", "conv1"),
        relu("conv1_relu", "conv1"),
        pool("pool1", "conv1", "MAX", 3, 2),
    ]
    bottom = "pool1"
    for stage, letters, width, out, first_stride in RESNET50_STAGES:
        for letter in letters:
            block = f"{stage}{letter}"
            stride = first_stride if letter == "a" else 1
            if letter == "a":
                br1 = f"res{block}_branch1"
                layers.append(rconv(br1, bottom, out, 1, 0, stride))
                layers += bn_scale(f"{block}_branch1", br1)
                shortcut = br1
            else:
                shortcut = bottom
            prev = bottom
            for sub, (n, k, pad, s) in zip(
                "abc", ((width, 1, 0, stride), (width, 3, 1, 1), (out, 1, 0, 1)), strict=True
            ):
                name = f"res{block}_branch2{sub}"
                layers.append(rconv(name, prev, n, k, pad, s))
                layers += bn_scale(f"{block}_branch2{sub}", name)
                if sub != "c":
                    layers.append(relu(name + "_relu", name))
                prev = name
            res = f"res{block}"
            layers.append(layer(res, "Eltwise", [shortcut, prev], [res]))
            layers.append(relu(res + "_relu", res))
            bottom = res
    layers += [
        pool("pool5", bottom, "AVE", 7, 1),
        layer("fc1000", "InnerProduct", ["pool5"], ["fc1000"],
              [("inner_product_param", [("num_output", 1000)])]),
        layer("prob", "Softmax", ["fc1000"], ["prob"]),
    ]
    header = [("input", "data"), ("input_dim", 1), ("input_dim", 3), ("input_dim", 224), ("input_dim", 224)]
    return net_text("ResNet-50", layers, header)


# --------------------------------------------------------------------------- siamese

def siamese_tower(suffix: str, bottom: str, shared_names: bool, fillers: bool):
    def params(base):
        if shared_names:
            return [("param", [("name", base + "_w"), ("lr_mult", 1)]),
                    ("param", [("name", base + "_b"), ("lr_mult", 2)])]
        return [("param", [("lr_mult", 1)]), ("param", [("lr_mult", 2)])]

    def fill():
        if not fillers:
            return []
        return [("weight_filler", [("type", "xavier")]), ("bias_filler", [("type", "constant")])]

    def conv(base, bot, n):
        cp = [("num_output", n), ("kernel_size", 5), ("stride", 1)] + fill()
        return layer(base + suffix, "Convolution", [bot], [base + suffix], params(base),
                     [("convolution_param", cp)])

    def ip(base, bot, n):
        return layer(base + suffix, "InnerProduct", [bot], [base + suffix], params(base),
                     [("inner_product_param", [("num_output", n)] + fill())])

    s = suffix
    return [
        conv("conv1", bottom, 20),
        pool("pool1" + s, "conv1" + s, "MAX", 2, 2),
        conv("conv2", "pool1" + s, 50),
        pool("pool2" + s, "conv2" + s, "MAX", 2, 2),
        ip("ip1", "pool2" + s, 500),
        relu("relu1" + s, "ip1" + s),
        ip("ip2", "ip1" + s, 10),
        ip("feat", "ip2" + s, 2),
    ]


def siamese_train_test() -> str:
    layers = []
    for phase, split, batch in (("TRAIN", "train", 64), ("TEST", "test", 100)):
        layers.append(layer(
            "pair_data", "Data", [], ["pair_data", "sim"],
            [("include", [("phase", Enum(phase))])],
            [("transform_param", [("scale", 0.00390625)]),
             ("data_param", [("source", f"resources/data/siamese/mnist_siamese_{split}_lmdb"),
                             ("batch_size", batch), ("backend", Enum("LMDB"))])],
        ))
    layers.append(layer("slice_pair", "Slice", ["pair_data"], ["data", "data_p"],
                        [("slice_param", [("slice_dim", 1), ("slice_point", 1)])]))
    layers += siamese_tower("", "data", True, True)
    layers += siamese_tower("_p", "data_p", True, True)
    layers.append(layer("loss", "ContrastiveLoss", ["feat", "feat_p", "sim"], ["loss"],
                        [("contrastive_loss_param", [("margin", 1)])]))
    return net_text("mnist_siamese_train_test", layers)


def siamese_deploy() -> str:
    header = [("input", "data"),
              ("input_shape", [("dim", 10000), ("dim", 1), ("dim", 28), ("dim", 28)])]
    return net_text("mnist_siamese", siamese_tower("", "data", False, False), header)


# --------------------------------------------------------------------------- MNIST autoencoder

def ae_ip(name, bottom, num_output):
    ip = [("num_output", num_output),
          ("weight_filler", [("type", "gaussian"), ("std", 1), ("sparse", 15)]),
          ("bias_filler", [("type", "constant"), ("value", 0)])]
    params = [("param", [("lr_mult", 1), ("decay_mult", 1)]), ("param", [("lr_mult", 1), ("decay_mult", 0)])]
    return layer(name, "InnerProduct", [bottom], [name], params, [("inner_product_param", ip)])


def mnist_autoencoder() -> str:
    layers = []
    for rule, split in (
        ([("phase", Enum("TRAIN"))], "train"),
        ([("phase", Enum("TEST")), ("stage", "test-on-train")], "train"),
        ([("phase", Enum("TEST")), ("stage", "test-on-test")], "test"),
    ):
        layers.append(layer(
            "data", "Data", [], ["data"], [("include", rule)],
            [("transform_param", [("scale", 0.0039215684)]),
             ("data_param", [("source", f"resources/data/mnist/mnist_{split}_lmdb"),
                             ("batch_size", 100), ("backend", Enum("LMDB"))])],
        ))
    layers.append(layer("flatdata", "Flatten", ["data"], ["flatdata"]))
    bottom = "data"
    for i, n in ((1, 1000), (2, 500), (3, 250), (4, 30)):
        layers.append(ae_ip(f"encode{i}", bottom, n))
        bottom = f"encode{i}"
        if i < 4:  # the 30-unit code layer is linear
            layers.append(layer(f"encode{i}neuron", "Sigmoid", [bottom], [bottom + "neuron"]))
            bottom += "neuron"
    for i, n in ((4, 250), (3, 500), (2, 1000), (1, 784)):
        layers.append(ae_ip(f"decode{i}", bottom, n))
        bottom = f"decode{i}"
        if i > 1:
            layers.append(layer(f"decode{i}neuron", "Sigmoid", [bottom], [bottom + "neuron"]))
            bottom += "neuron"
    layers += [
        layer("loss", "SigmoidCrossEntropyLoss", ["decode1", "flatdata"], ["cross_entropy_loss"],
              [("loss_weight", 1)]),
        layer("decode1neuron", "Sigmoid", ["decode1"], ["decode1neuron"]),
        # reported only: loss_weight 0 keeps it out of the objective
        layer("loss", "EuclideanLoss", ["decode1neuron", "flatdata"], ["l2_error"], [("loss_weight", 0)]),
    ]
    return net_text("MNISTAutoencoder", layers)


# --------------------------------------------------------------------------- AlexNet / CaffeNet

def aconv(name, bottom, num_output, kernel, pad=0, stride=1, group=1):
    cp = [("num_output", num_output)]
    if pad:
        cp.append(("pad", pad))
    cp.append(("kernel_size", kernel))
    if group != 1:
        cp.append(("group", group))
    if stride != 1:
        cp.append(("stride", stride))
    return layer(name, "Convolution", [bottom], [name], LR_PARAMS, [("convolution_param", cp)])


def imagenet_deploy(name: str, pool_before_norm: bool) -> str:
    """bvlc_alexnet (norm then pool) or bvlc_reference_caffenet (pool then norm), deploy form."""
    shape = [("dim", 10), ("dim", 3), ("dim", 227), ("dim", 227)]
    layers = [layer("data", "Input", [], ["data"], [("input_param", [("shape", shape)])])]
    bottom = "data"
    for i, (n, k, pad, stride, group) in enumerate(((96, 11, 0, 4, 1), (256, 5, 2, 1, 2)), start=1):
        layers.append(aconv(f"conv{i}", bottom, n, k, pad, stride, group))
        layers.append(relu(f"relu{i}", f"conv{i}"))
        if pool_before_norm:
            layers.append(pool(f"pool{i}", f"conv{i}", "MAX", 3, 2))
            layers.append(lrn(f"norm{i}", f"pool{i}"))
            bottom = f"norm{i}"
        else:
            layers.append(lrn(f"norm{i}", f"conv{i}"))
            layers.append(pool(f"pool{i}", f"norm{i}", "MAX", 3, 2))
            bottom = f"pool{i}"
    layers += [
        aconv("conv3", bottom, 384, 3, pad=1),
        relu("relu3", "conv3"),
        aconv("conv4", "conv3", 384, 3, pad=1, group=2),
        relu("relu4", "conv4"),
        aconv("conv5", "conv4", 256, 3, pad=1, group=2),
        relu("relu5", "conv5"),
        pool("pool5", "conv5", "MAX", 3, 2),
    ]
    bottom = "pool5"
    for i in (6, 7):
        layers += [
            layer(f"fc{i}", "InnerProduct", [bottom], [f"fc{i}"], LR_PARAMS,
                  [("inner_product_param", [("num_output", 4096)])]),
            relu(f"relu{i}", f"fc{i}"),
            layer(f"drop{i}", "Dropout", [f"fc{i}"], [f"fc{i}"],
                  [("dropout_param", [("dropout_ratio", 0.5)])]),
        ]
        bottom = f"fc{i}"
    layers += [
        layer("fc8", "InnerProduct", ["fc7"], ["fc8"], LR_PARAMS,
              [("inner_product_param", [("num_output", 1000)])]),
        layer("prob", "Softmax", ["fc8"], ["prob"]),
    ]
    return net_text(name, layers)


def main():
    write("googlenet/train_val.prototxt", googlenet(True))
    write("googlenet/deploy.prototxt", googlenet(False))
    write("resnet50/deploy.prototxt", resnet50())
    write("siamese/mnist_siamese_train_test.prototxt", siamese_train_test())
    write("siamese/mnist_siamese.prototxt", siamese_deploy())
    write("mnist_autoencoder/mnist_autoencoder.prototxt", mnist_autoencoder())
    write("alexnet/deploy.prototxt", imagenet_deploy("AlexNet", pool_before_norm=False))
    write("caffenet/deploy.prototxt", imagenet_deploy("CaffeNet", pool_before_norm=True))


if __name__ == "__main__":
    main()
