"""FilterNet / StateMeetsRule, mirroring Caffe's FilterNetTest cases."""

from __future__ import annotations

import pytest

from engine.errors import WiringError
from engine.net_filter import filter_net
from engine.proto import caffe_pb2


def kept(net_param, text: str, **override) -> list[str]:
    return [layer.name for layer in filter_net(net_param(text), **override).layer]


BASE = """
name: "n"
layer { name: "data" type: "Input" top: "data" }
"""


def test_no_rules_keeps_everything(net_param):
    text = BASE + 'layer { name: "a" type: "ReLU" bottom: "data" top: "a" }'
    assert kept(net_param, text) == ["data", "a"]


def test_filter_keeps_other_fields_and_does_not_mutate(net_param):
    p = net_param(BASE + 'force_backward: true layer { name: "x" type: "ReLU" include { phase: TRAIN } }')
    out = filter_net(p)
    assert out.name == "n" and out.force_backward
    assert [layer.name for layer in p.layer] == ["data", "x"]  # input untouched
    assert [layer.name for layer in out.layer] == ["data"]  # default state phase is TEST


@pytest.mark.parametrize("phase, expected", [("TRAIN", ["data", "train"]), ("TEST", ["data", "test"])])
def test_phase_include(net_param, phase, expected):
    text = f"""state {{ phase: {phase} }}
    {BASE}
    layer {{ name: "train" type: "ReLU" include {{ phase: TRAIN }} }}
    layer {{ name: "test" type: "ReLU" include {{ phase: TEST }} }}"""
    assert kept(net_param, text) == expected


def test_phase_exclude(net_param):
    text = 'state { phase: TRAIN }' + BASE + 'layer { name: "x" type: "ReLU" exclude { phase: TRAIN } }'
    assert kept(net_param, text) == ["data"]
    text = 'state { phase: TEST }' + BASE + 'layer { name: "x" type: "ReLU" exclude { phase: TRAIN } }'
    assert kept(net_param, text) == ["data", "x"]


@pytest.mark.parametrize(
    "level, rule, included",
    [
        (0, "min_level: 1", False),
        (1, "min_level: 1", True),
        (2, "min_level: 1", True),
        (-1, "min_level: 0", False),
        (3, "max_level: 2", False),
        (2, "max_level: 2", True),
        (-5, "max_level: 2", True),
        (1, "min_level: 1 max_level: 1", True),
        (2, "min_level: 0 max_level: 1", False),
    ],
)
def test_levels(net_param, level, rule, included):
    text = f"state {{ level: {level} }}" + BASE + f'layer {{ name: "x" type: "ReLU" include {{ {rule} }} }}'
    assert ("x" in kept(net_param, text)) is included


@pytest.mark.parametrize(
    "stages, rule, included",
    [
        ([], 'stage: "mystage"', False),
        (["mystage"], 'stage: "mystage"', True),
        (["other", "mystage"], 'stage: "mystage"', True),
        (["mystage"], 'stage: "mystage" stage: "other"', False),  # all rule stages needed
        (["mystage", "other"], 'stage: "mystage" stage: "other"', True),
        ([], 'not_stage: "mystage"', True),
        (["mystage"], 'not_stage: "mystage"', False),
        (["x"], 'stage: "x" not_stage: "y"', True),
        (["x", "y"], 'stage: "x" not_stage: "y"', False),
    ],
)
def test_stages(net_param, stages, rule, included):
    state = "state { " + " ".join(f'stage: "{s}"' for s in stages) + " }"
    text = state + BASE + f'layer {{ name: "x" type: "ReLU" include {{ {rule} }} }}'
    assert ("x" in kept(net_param, text)) is included


def test_exclude_by_stage(net_param):
    text = 'state { stage: "deploy" }' + BASE + 'layer { name: "x" type: "ReLU" exclude { stage: "deploy" } }'
    assert kept(net_param, text) == ["data"]


def test_multiple_include_rules_any_matches(net_param):
    layers = """
    layer { name: "x" type: "ReLU" include { min_level: 2 phase: TRAIN } include { phase: TEST } }"""
    assert "x" in kept(net_param, "state { phase: TEST level: 0 }" + BASE + layers)
    assert "x" in kept(net_param, "state { phase: TRAIN level: 2 }" + BASE + layers)
    assert "x" not in kept(net_param, "state { phase: TRAIN level: 1 }" + BASE + layers)


def test_multiple_exclude_rules_any_excludes(net_param):
    layers = 'layer { name: "x" type: "ReLU" exclude { min_level: 2 } exclude { phase: TRAIN } }'
    assert "x" in kept(net_param, "state { phase: TEST level: 1 }" + BASE + layers)
    assert "x" not in kept(net_param, "state { phase: TEST level: 2 }" + BASE + layers)
    assert "x" not in kept(net_param, "state { phase: TRAIN level: 0 }" + BASE + layers)


def test_include_and_exclude_is_an_error_naming_the_layer(net_param):
    text = BASE + 'layer { name: "both" type: "ReLU" include { phase: TRAIN } exclude { phase: TEST } }'
    with pytest.raises(WiringError, match="'both'.*not both") as info:
        filter_net(net_param(text))
    assert info.value.layer == "both"


def test_explicit_override_for_the_editor(net_param):
    text = """state { phase: TEST stage: "deploy" }""" + BASE + """
    layer { name: "train" type: "ReLU" include { phase: TRAIN } }
    layer { name: "lvl" type: "ReLU" include { min_level: 3 } }
    layer { name: "st" type: "ReLU" include { stage: "a" } }"""
    assert kept(net_param, text) == ["data"]
    assert kept(net_param, text, phase=caffe_pb2.TRAIN) == ["data", "train"]
    assert kept(net_param, text, level=3) == ["data", "lvl"]
    assert kept(net_param, text, stages=["a"]) == ["data", "st"]
    out = filter_net(net_param(text), phase=caffe_pb2.TRAIN, level=3, stages=["a"])
    assert out.state.phase == caffe_pb2.TRAIN and out.state.level == 3 and list(out.state.stage) == ["a"]
