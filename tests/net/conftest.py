"""Fixtures for the Net tests: prototxt text -> NetParameter / Net (real layers throughout)."""

from __future__ import annotations

import pytest
from google.protobuf import text_format

from engine.proto import caffe_pb2


def parse(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


@pytest.fixture
def net_param():
    """Prototxt text -> NetParameter."""
    return parse


@pytest.fixture
def make_net():
    """Prototxt text (or NetParameter) -> Net; keyword arguments go to Net."""
    from engine.net import Net

    def build(text_or_param, **kwargs):
        p = parse(text_or_param) if isinstance(text_or_param, str) else text_or_param
        return Net(p, **kwargs)

    return build
