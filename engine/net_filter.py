"""Caffe's Net::FilterNet: keep the layers whose include/exclude rules the net state meets.

A train/test prototxt holds layers for several phases, levels and stages; the
net that is built sees only those selected by `net_param.state` (or by an
explicit override, which the editor uses to preview another phase).
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.errors import WiringError
from engine.proto import caffe_pb2


def state_meets_rule(state: caffe_pb2.NetState, rule: caffe_pb2.NetStateRule) -> bool:
    """True when `state` satisfies every condition `rule` sets (Caffe's StateMeetsRule)."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(s not in stages for s in rule.stage):
        return False
    return not any(s in stages for s in rule.not_stage)


def layer_included(layer: caffe_pb2.LayerParameter, state: caffe_pb2.NetState) -> bool:
    """Whether `layer` belongs to the net built for `state`."""
    if layer.include and layer.exclude:
        raise WiringError(
            f"layer '{layer.name}': specify either include rules or exclude rules; not both",
            layer=layer.name,
        )
    if not layer.include:
        return not any(state_meets_rule(state, rule) for rule in layer.exclude)
    return any(state_meets_rule(state, rule) for rule in layer.include)


def filter_net(
    net_param: caffe_pb2.NetParameter,
    phase: int | None = None,
    level: int | None = None,
    stages: Iterable[str] | None = None,
) -> caffe_pb2.NetParameter:
    """A copy of `net_param` holding only the layers its state selects.

    `phase`, `level` and `stages` (each when given) replace the corresponding
    part of `net_param.state`; the returned copy carries the state used.
    """
    state = caffe_pb2.NetState()
    state.CopyFrom(net_param.state)
    if phase is not None:
        state.phase = phase
    if level is not None:
        state.level = int(level)
    if stages is not None:
        del state.stage[:]
        state.stage.extend(stages)
    filtered = caffe_pb2.NetParameter()
    filtered.CopyFrom(net_param)
    del filtered.layer[:]
    if phase is not None or level is not None or stages is not None:
        filtered.state.CopyFrom(state)
    for layer in net_param.layer:
        if layer_included(layer, state):
            filtered.layer.add().CopyFrom(layer)
    return filtered
