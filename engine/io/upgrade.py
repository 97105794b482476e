"""Caffe's upgrade_proto: old net and solver formats become the current ones on every read.

Order and rules follow UpgradeNetAsNeeded: V0 -> V1 (padding layers folded into the next
conv/pool), V1 data-layer transform fields -> transform_param, V1 `layers` -> V2 `layer`,
net-level inputs -> an "Input" layer, old 3-param BatchNorm specs; solvers: `solver_type`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from engine.errors import BrewnetError
from engine.proto import caffe_pb2

log = logging.getLogger("brewnet.io")

V1 = caffe_pb2.V1LayerParameter


class UpgradeError(BrewnetError, ValueError):
    """A legacy proto that Caffe itself refuses to upgrade (it would abort)."""


# ----------------------------------------------------------------------------- predicates


def net_needs_v0_to_v1_upgrade(p: caffe_pb2.NetParameter) -> bool:
    return any(lay.HasField("layer") for lay in p.layers)


def net_needs_v1_to_v2_upgrade(p: caffe_pb2.NetParameter) -> bool:
    return len(p.layers) > 0


_DATA_PARAMS = {V1.DATA: "data_param", V1.IMAGE_DATA: "image_data_param", V1.WINDOW_DATA: "window_data_param"}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


def net_needs_data_upgrade(p: caffe_pb2.NetParameter) -> bool:
    for lay in p.layers:
        name = _DATA_PARAMS.get(lay.type)
        if name and any(getattr(lay, name).HasField(f) for f in _TRANSFORM_FIELDS):
            return True
    return False


def net_needs_input_upgrade(p: caffe_pb2.NetParameter) -> bool:
    return len(p.input) > 0


def net_needs_batchnorm_upgrade(p: caffe_pb2.NetParameter) -> bool:
    return any(lay.type == "BatchNorm" and len(lay.param) == 3 for lay in p.layer)


def net_needs_upgrade(p: caffe_pb2.NetParameter) -> bool:
    """Caffe's NetNeedsUpgrade: any of the upgrades below would change the net."""
    return (
        net_needs_v0_to_v1_upgrade(p)
        or net_needs_v1_to_v2_upgrade(p)
        or net_needs_data_upgrade(p)
        or net_needs_input_upgrade(p)
        or net_needs_batchnorm_upgrade(p)
    )


def solver_needs_type_upgrade(p: caffe_pb2.SolverParameter) -> bool:
    return p.HasField("solver_type")


# ----------------------------------------------------------------------------- V0 -> V1

_V0_TYPES = {
    "accuracy": V1.ACCURACY,
    "bnll": V1.BNLL,
    "concat": V1.CONCAT,
    "conv": V1.CONVOLUTION,
    "data": V1.DATA,
    "dropout": V1.DROPOUT,
    "euclidean_loss": V1.EUCLIDEAN_LOSS,
    "flatten": V1.FLATTEN,
    "hdf5_data": V1.HDF5_DATA,
    "hdf5_output": V1.HDF5_OUTPUT,
    "im2col": V1.IM2COL,
    "images": V1.IMAGE_DATA,
    "infogain_loss": V1.INFOGAIN_LOSS,
    "innerproduct": V1.INNER_PRODUCT,
    "lrn": V1.LRN,
    "multinomial_logistic_loss": V1.MULTINOMIAL_LOGISTIC_LOSS,
    "pool": V1.POOLING,
    "relu": V1.RELU,
    "sigmoid": V1.SIGMOID,
    "softmax": V1.SOFTMAX,
    "softmax_loss": V1.SOFTMAX_LOSS,
    "split": V1.SPLIT,
    "tanh": V1.TANH,
    "window_data": V1.WINDOW_DATA,
}

# V0 field -> {V0 layer type: (V1 sub-message, field in it)}. A field set on any other
# type is an "Unknown parameter" (logged, and the upgrade is not fully compatible).
_V0_FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "num_output": {"conv": ("convolution_param", "num_output"),
                   "innerproduct": ("inner_product_param", "num_output")},
    "biasterm": {"conv": ("convolution_param", "bias_term"),
                 "innerproduct": ("inner_product_param", "bias_term")},
    "weight_filler": {"conv": ("convolution_param", "weight_filler"),
                      "innerproduct": ("inner_product_param", "weight_filler")},
    "bias_filler": {"conv": ("convolution_param", "bias_filler"),
                    "innerproduct": ("inner_product_param", "bias_filler")},
    "pad": {"conv": ("convolution_param", "pad"), "pool": ("pooling_param", "pad")},
    "kernelsize": {"conv": ("convolution_param", "kernel_size"), "pool": ("pooling_param", "kernel_size")},
    "group": {"conv": ("convolution_param", "group")},
    "stride": {"conv": ("convolution_param", "stride"), "pool": ("pooling_param", "stride")},
    "pool": {"pool": ("pooling_param", "pool")},
    "dropout_ratio": {"dropout": ("dropout_param", "dropout_ratio")},
    "local_size": {"lrn": ("lrn_param", "local_size")},
    "alpha": {"lrn": ("lrn_param", "alpha")},
    "beta": {"lrn": ("lrn_param", "beta")},
    "k": {"lrn": ("lrn_param", "k")},
    "source": {"data": ("data_param", "source"), "hdf5_data": ("hdf5_data_param", "source"),
               "images": ("image_data_param", "source"), "window_data": ("window_data_param", "source"),
               "infogain_loss": ("infogain_loss_param", "source")},
    "batchsize": {"data": ("data_param", "batch_size"), "hdf5_data": ("hdf5_data_param", "batch_size"),
                  "images": ("image_data_param", "batch_size"),
                  "window_data": ("window_data_param", "batch_size")},
    "rand_skip": {"data": ("data_param", "rand_skip"), "images": ("image_data_param", "rand_skip")},
    "shuffle_images": {"images": ("image_data_param", "shuffle")},
    "new_height": {"images": ("image_data_param", "new_height")},
    "new_width": {"images": ("image_data_param", "new_width")},
    "concat_dim": {"concat": ("concat_param", "concat_dim")},
    "det_fg_threshold": {"window_data": ("window_data_param", "fg_threshold")},
    "det_bg_threshold": {"window_data": ("window_data_param", "bg_threshold")},
    "det_fg_fraction": {"window_data": ("window_data_param", "fg_fraction")},
    "det_context_pad": {"window_data": ("window_data_param", "context_pad")},
    "det_crop_mode": {"window_data": ("window_data_param", "crop_mode")},
    "hdf5_output_param": {"hdf5_output": ("hdf5_output_param", None)},
}
# Fields that go to transform_param whatever the layer type.
_V0_TRANSFORM = {"scale": "scale", "meanfile": "mean_file", "cropsize": "crop_size", "mirror": "mirror"}


@dataclass
class _Report:
    """What one upgrade run did: whether anything changed, and Caffe's "not fully compatible" notes."""

    changed: bool = False
    problems: list[str] = field(default_factory=list)

    def problem(self, where: str, message: str) -> None:
        self.problems.append(message)
        log.error("%s: %s", where, message)


def _set_field(msg, name: str, value) -> None:
    """Set a scalar or message field; repeated fields get the value appended (Caffe's add_*)."""
    fd = msg.DESCRIPTOR.fields_by_name[name]
    if fd.is_repeated:
        getattr(msg, name).append(value)
    elif fd.type == fd.TYPE_MESSAGE:
        getattr(msg, name).CopyFrom(value)
    else:
        setattr(msg, name, value)


def _fold_padding_layers(p: caffe_pb2.NetParameter, where: str) -> list:
    """UpgradeV0PaddingLayers: drop "padding" layers, moving their pad into the consuming conv/pool."""
    last_top: dict[str, int] = {name: -1 for name in p.input}
    kept: list = []
    for i, conn in enumerate(p.layers):
        v0 = conn.layer
        if v0.type != "padding":
            copy = V1()
            copy.CopyFrom(conn)
            kept.append(copy)
        for j, blob in enumerate(conn.bottom):
            if blob not in last_top:
                raise UpgradeError(f"{where}: V0 layer {v0.name!r}: unknown bottom blob {blob!r}")
            src_idx = last_top[blob]
            if src_idx == -1:
                continue
            src = p.layers[src_idx]
            if src.layer.type != "padding":
                continue
            if v0.type not in ("conv", "pool"):
                raise UpgradeError(
                    f"{where}: V0 padding layer {src.layer.name!r} feeds layer {v0.name!r} of type "
                    f"{v0.type!r}; only conv and pool layers can absorb padding"
                )
            if len(conn.bottom) != 1:
                raise UpgradeError(
                    f"{where}: V0 layer {v0.name!r} takes padded input but has several bottoms"
                )
            if len(src.bottom) != 1 or len(src.top) != 1:
                raise UpgradeError(
                    f"{where}: V0 padding layer {src.layer.name!r} must have exactly one bottom and one top"
                )
            kept[-1].layer.pad = src.layer.pad
            kept[-1].bottom[j] = src.bottom[0]
        for blob in conn.top:
            last_top[blob] = i
    return kept


def _upgrade_v0_layer(conn, out, report: _Report, where: str) -> None:
    """UpgradeV0LayerParameter: one V0 layer (wrapped in a V1 connection) -> a V1 layer."""
    out.bottom.extend(conn.bottom)
    out.top.extend(conn.top)
    if not conn.HasField("layer"):
        return
    v0 = conn.layer
    if v0.HasField("name"):
        out.name = v0.name
    kind = v0.type
    if v0.HasField("type"):
        if kind not in _V0_TYPES:
            raise UpgradeError(f"{where}: V0 layer {v0.name!r} has unknown layer type {kind!r}")
        out.type = _V0_TYPES[kind]
    out.blobs.extend(v0.blobs)
    out.blobs_lr.extend(v0.blobs_lr)
    out.weight_decay.extend(v0.weight_decay)
    for v0_name, targets in _V0_FIELDS.items():
        if not v0.HasField(v0_name):
            continue
        if kind not in targets:
            report.problem(
                where, f"V0 layer {v0.name!r}: unknown parameter {v0_name} for layer type {kind!r}"
            )
            continue
        sub_name, field_name = targets[kind]
        value = getattr(v0, v0_name)
        if field_name is None:
            getattr(out, sub_name).CopyFrom(value)
        else:
            # V0 and V1 pool enums share numbers (MAX=0, AVE=1, STOCHASTIC=2).
            _set_field(getattr(out, sub_name), field_name, value)
    for v0_name, transform_name in _V0_TRANSFORM.items():
        if v0.HasField(v0_name):
            setattr(out.transform_param, transform_name, getattr(v0, v0_name))


def _upgrade_v0_net(p: caffe_pb2.NetParameter, report: _Report, where: str) -> caffe_pb2.NetParameter:
    """UpgradeV0Net: keeps only name, layers, input, input_dim and force_backward, as Caffe does."""
    kept = _fold_padding_layers(p, where)
    out = caffe_pb2.NetParameter()
    if p.HasField("name"):
        out.name = p.name
    for conn in kept:
        _upgrade_v0_layer(conn, out.layers.add(), report, where)
    out.input.extend(p.input)
    out.input_dim.extend(p.input_dim)
    if p.HasField("force_backward"):
        out.force_backward = p.force_backward
    return out


# ----------------------------------------------------------------------------- V1 data fields


def _upgrade_data_transformation(p: caffe_pb2.NetParameter) -> None:
    """UpgradeNetDataTransformation: scale/mean_file/crop_size/mirror move to transform_param."""
    for lay in p.layers:
        name = _DATA_PARAMS.get(lay.type)
        if not name:
            continue
        sub = getattr(lay, name)
        # Caffe takes mutable_*_param() of every such layer: both messages become present.
        sub.SetInParent()
        lay.transform_param.SetInParent()
        for f in _TRANSFORM_FIELDS:
            if sub.HasField(f):
                setattr(lay.transform_param, f, getattr(sub, f))
                sub.ClearField(f)


# ----------------------------------------------------------------------------- V1 -> V2

V1_TYPE_NAMES = {
    V1.NONE: "",
    V1.ABSVAL: "AbsVal",
    V1.ACCURACY: "Accuracy",
    V1.ARGMAX: "ArgMax",
    V1.BNLL: "BNLL",
    V1.CONCAT: "Concat",
    V1.CONTRASTIVE_LOSS: "ContrastiveLoss",
    V1.CONVOLUTION: "Convolution",
    V1.DECONVOLUTION: "Deconvolution",
    V1.DATA: "Data",
    V1.DROPOUT: "Dropout",
    V1.DUMMY_DATA: "DummyData",
    V1.EUCLIDEAN_LOSS: "EuclideanLoss",
    V1.ELTWISE: "Eltwise",
    V1.EXP: "Exp",
    V1.FLATTEN: "Flatten",
    V1.HDF5_DATA: "HDF5Data",
    V1.HDF5_OUTPUT: "HDF5Output",
    V1.HINGE_LOSS: "HingeLoss",
    V1.IM2COL: "Im2col",
    V1.IMAGE_DATA: "ImageData",
    V1.INFOGAIN_LOSS: "InfogainLoss",
    V1.INNER_PRODUCT: "InnerProduct",
    V1.LRN: "LRN",
    V1.MEMORY_DATA: "MemoryData",
    V1.MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss",
    V1.MVN: "MVN",
    V1.POOLING: "Pooling",
    V1.POWER: "Power",
    V1.RELU: "ReLU",
    V1.SIGMOID: "Sigmoid",
    V1.SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss",
    V1.SILENCE: "Silence",
    V1.SOFTMAX: "Softmax",
    V1.SOFTMAX_LOSS: "SoftmaxWithLoss",
    V1.SPLIT: "Split",
    V1.SLICE: "Slice",
    V1.TANH: "TanH",
    V1.WINDOW_DATA: "WindowData",
    V1.THRESHOLD: "Threshold",
}

# Every *_param sub-message of V1LayerParameter is copied whole into the V2 field of the same name.
_V1_SUBPARAMS = tuple(
    f.name for f in V1.DESCRIPTOR.fields if f.name.endswith("_param") and f.type == f.TYPE_MESSAGE
)


def _param_spec(out: caffe_pb2.LayerParameter, i: int) -> caffe_pb2.ParamSpec:
    while len(out.param) <= i:
        out.param.add()
    return out.param[i]


def _upgrade_v1_layer(v1, out: caffe_pb2.LayerParameter, report: _Report, where: str) -> None:
    """UpgradeV1LayerParameter."""
    out.bottom.extend(v1.bottom)
    out.top.extend(v1.top)
    if v1.HasField("name"):
        out.name = v1.name
    out.include.extend(v1.include)
    out.exclude.extend(v1.exclude)
    if v1.HasField("type"):
        out.type = V1_TYPE_NAMES[v1.type]
    out.blobs.extend(v1.blobs)
    for i, name in enumerate(v1.param):
        _param_spec(out, i).name = name
    for i, mode in enumerate(v1.blob_share_mode):
        _param_spec(out, i).share_mode = mode  # STRICT=0, PERMISSIVE=1 in both enums
    for i, lr in enumerate(v1.blobs_lr):
        _param_spec(out, i).lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        _param_spec(out, i).decay_mult = decay
    out.loss_weight.extend(v1.loss_weight)
    for name in _V1_SUBPARAMS:
        if v1.HasField(name):
            getattr(out, name).CopyFrom(getattr(v1, name))
    if v1.HasField("layer"):
        report.problem(where, f"V1 layer {v1.name!r} still holds a V0 layer; ignoring it")


def _upgrade_v1_net(p: caffe_pb2.NetParameter, report: _Report, where: str) -> None:
    if len(p.layer) > 0:
        raise UpgradeError(
            f"{where}: the net uses both 'layer' and the deprecated 'layers' fields; "
            "use only 'layer' (Caffe would drop every 'layer' entry here)"
        )
    old = list(p.layers)
    del p.layers[:]
    for v1 in old:
        _upgrade_v1_layer(v1, p.layer.add(), report, where)


# ----------------------------------------------------------------------------- inputs, BatchNorm


def _upgrade_net_input(p: caffe_pb2.NetParameter, where: str) -> None:
    """UpgradeNetInput: input/input_shape/input_dim -> a first layer "input" of type "Input".

    With `input` alone (old caffemodels) the fields are just dropped.
    """
    has_shape, has_dim = len(p.input_shape) > 0, len(p.input_dim) > 0
    if has_shape or has_dim:
        n = len(p.input)
        if has_shape and len(p.input_shape) < n:
            raise UpgradeError(f"{where}: {n} net inputs but only {len(p.input_shape)} input_shape entries")
        if not has_shape and len(p.input_dim) < 4 * n:
            raise UpgradeError(
                f"{where}: {n} net inputs need {4 * n} input_dim values (4 per input), got {len(p.input_dim)}"
            )
        layer = caffe_pb2.LayerParameter(name="input", type="Input")
        for i, top in enumerate(p.input):
            layer.top.append(top)
            shape = layer.input_param.shape.add()
            if has_shape:
                shape.CopyFrom(p.input_shape[i])
            else:
                shape.dim.extend(p.input_dim[4 * i : 4 * i + 4])
        rest = list(p.layer)
        del p.layer[:]
        p.layer.append(layer)
        p.layer.extend(rest)
    p.ClearField("input")
    p.ClearField("input_shape")
    p.ClearField("input_dim")


def _upgrade_batchnorm(p: caffe_pb2.NetParameter) -> bool:
    """UpgradeNetBatchNorm (BVLC master): the 3 old param specs keep their names, lr/decay -> 0.

    The specs stay, so Caffe's predicate stays true; returns whether a value actually changed.
    """
    changed = False
    for lay in p.layer:
        if lay.type == "BatchNorm" and len(lay.param) == 3:
            for spec in lay.param:
                changed |= not (spec.HasField("lr_mult") and spec.lr_mult == 0.0)
                changed |= not (spec.HasField("decay_mult") and spec.decay_mult == 0.0)
                spec.lr_mult = 0.0
                spec.decay_mult = 0.0
    return changed


# ----------------------------------------------------------------------------- drivers


def upgrade_net_report(
    p: caffe_pb2.NetParameter, path: str = "<NetParameter>"
) -> tuple[caffe_pb2.NetParameter, bool, list[str]]:
    """Upgrade a copy of `p`; return (net, changed, problems). `problems` lists Caffe's soft failures."""
    net = caffe_pb2.NetParameter()
    net.CopyFrom(p)
    report = _Report()
    if net_needs_v0_to_v1_upgrade(net):
        net = _upgrade_v0_net(net, report, path)
        report.changed = True
        log.warning("%s: upgraded deprecated V0LayerParameter net; run upgrade_net_proto_text/binary "
                    "to save it in the current format", path)
    if net_needs_data_upgrade(net):
        _upgrade_data_transformation(net)
        report.changed = True
        log.warning("%s: upgraded deprecated data transformation fields to transform_param", path)
    if net_needs_v1_to_v2_upgrade(net):
        _upgrade_v1_net(net, report, path)
        report.changed = True
        log.warning("%s: upgraded deprecated V1LayerParameter ('layers') net", path)
    if net_needs_input_upgrade(net):
        _upgrade_net_input(net, path)
        report.changed = True
        log.warning("%s: upgraded deprecated net input fields to an Input layer", path)
    if net_needs_batchnorm_upgrade(net) and _upgrade_batchnorm(net):
        report.changed = True
        log.warning("%s: upgraded BatchNorm layers declaring 3 param specs", path)
    if report.problems:
        log.error("%s: had %d problem(s) upgrading the net (see above); continuing anyway",
                  path, len(report.problems))
    return net, report.changed, report.problems


def upgrade_net(
    p: caffe_pb2.NetParameter, path: str = "<NetParameter>"
) -> tuple[caffe_pb2.NetParameter, bool]:
    """Caffe's UpgradeNetAsNeeded on a copy: (upgraded net, whether anything changed)."""
    net, changed, _ = upgrade_net_report(p, path)
    return net, changed


def upgrade_net_as_needed(p: caffe_pb2.NetParameter, path: str = "<NetParameter>") -> caffe_pb2.NetParameter:
    """The upgraded net alone (for callers that do not care whether it changed)."""
    return upgrade_net(p, path)[0]


SOLVER_TYPE_NAMES = {
    caffe_pb2.SolverParameter.SGD: "SGD",
    caffe_pb2.SolverParameter.NESTEROV: "Nesterov",
    caffe_pb2.SolverParameter.ADAGRAD: "AdaGrad",
    caffe_pb2.SolverParameter.RMSPROP: "RMSProp",
    caffe_pb2.SolverParameter.ADADELTA: "AdaDelta",
    caffe_pb2.SolverParameter.ADAM: "Adam",
}


def upgrade_solver(
    p: caffe_pb2.SolverParameter, path: str = "<SolverParameter>"
) -> tuple[caffe_pb2.SolverParameter, bool]:
    """UpgradeSolverAsNeeded on a copy: enum `solver_type` -> string `type` (both set is an error)."""
    solver = caffe_pb2.SolverParameter()
    solver.CopyFrom(p)
    if not solver_needs_type_upgrade(solver):
        return solver, False
    if solver.HasField("type"):
        raise UpgradeError(
            f"{path}: failed to upgrade solver: the old solver_type field (enum) and the new type "
            "field (string) cannot both be given"
        )
    solver.type = SOLVER_TYPE_NAMES[solver.solver_type]
    solver.ClearField("solver_type")
    log.warning("%s: upgraded deprecated 'solver_type' (enum) to 'type: \"%s\"'", path, solver.type)
    return solver, True
