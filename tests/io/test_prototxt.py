"""Text prototxt: positioned errors, canonical C++-TextFormat output, round trips."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import PrototxtError
from engine.io import (
    message_to_text,
    net_to_text,
    read_net_prototxt,
    read_net_text,
    read_solver_prototxt,
    write_net_prototxt,
    write_solver_prototxt,
)
from engine.proto import caffe_pb2

NET = """# a comment, as Caffe allows
name: "tiny"
layer {
  name: "data"
  type: "Input"
  top: "data"
  input_param { shape { dim: 2 dim: 3 } }
}
layer {
  name: "ip"
  type: "InnerProduct"
  bottom: "data"
  top: "ip"
  param { lr_mult: 1 decay_mult: 1 }
  param { lr_mult: 2 decay_mult: 0 }
  inner_product_param {
    num_output: 4
    weight_filler { type: "gaussian" std: 0.01 }
    bias_filler { type: "constant" value: -0.5 }
  }
  include { phase: TRAIN stage: "a" }
}
"""


def test_misspelled_field_gives_file_line_column(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "n"\nlayer {\n  name: "a"\n  tpye: "ReLU"\n}\n')
    with pytest.raises(PrototxtError) as info:
        read_net_prototxt(path)
    err = info.value
    assert (err.path, err.line, err.column) == (str(path), 4, 3)
    assert str(err).startswith(f"{path}:4:3: ")
    assert 'no field named "tpye"' in str(err) and 'Did you mean "type"' in str(err)


def test_bad_enum_lists_what_was_expected():
    with pytest.raises(PrototxtError) as info:
        read_net_text('layer {\n  include { phase: TRIAN }\n}\n', "x.prototxt")
    err = info.value
    assert (err.line, err.column) == (2, 20)
    assert "TRIAN" in err.message and "Expected one of: TRAIN, TEST" in err.message
    assert "Did you mean TRAIN?" in err.message


def test_bad_integer_value_position():
    text = 'layer {\n  convolution_param {\n    num_output: abc\n  }\n}\n'
    with pytest.raises(PrototxtError) as info:
        read_net_text(text)
    assert (info.value.line, info.value.column) == (3, 17)
    assert str(info.value).startswith("<string>:3:17: ")
    assert "integer" in info.value.message


def test_unbalanced_brace_is_a_prototxt_error():
    with pytest.raises(PrototxtError, match='Expected "}"|Expected identifier'):
        read_net_text('layer {\n  name: "a"\n')
    with pytest.raises(PrototxtError) as info:
        read_net_text('layer { name: "a" } }')
    assert (info.value.line, info.value.column) == (1, 21)


def test_invalid_utf8_is_positioned():
    with pytest.raises(PrototxtError) as info:
        read_net_text(b'name: "ok"\nlayer { name: "\xff" }\n', "u.prototxt")
    assert (info.value.line, info.value.column) == (2, 16)


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.prototxt"
    with pytest.raises(FileNotFoundError, match="nope.prototxt"):
        read_net_prototxt(missing)
    with pytest.raises(FileNotFoundError, match="nope.prototxt"):
        read_solver_prototxt(missing)


def test_round_trip_is_equal_and_byte_stable(tmp_path):
    first = read_net_text(NET)
    a, b = tmp_path / "a.prototxt", tmp_path / "b.prototxt"
    write_net_prototxt(first, a)
    second = read_net_prototxt(a)
    assert second == first
    write_net_prototxt(second, b)
    assert a.read_bytes() == b.read_bytes()


def test_output_is_cpp_textformat_layout():
    text = net_to_text(read_net_text(NET))
    expected_ip = """layer {
  name: "ip"
  type: "InnerProduct"
  bottom: "data"
  top: "ip"
  param {
    lr_mult: 1
    decay_mult: 1
  }
  param {
    lr_mult: 2
    decay_mult: 0
  }
  include {
    phase: TRAIN
    stage: "a"
  }
  inner_product_param {
    num_output: 4
    weight_filler {
      type: "gaussian"
      std: 0.01
    }
    bias_filler {
      type: "constant"
      value: -0.5
    }
  }
}
"""
    assert text.startswith('name: "tiny"\nlayer {\n  name: "data"\n')
    assert text.endswith(expected_ip)


@pytest.mark.parametrize(
    "value, text",
    [
        (0.1, "0.1"),
        (1.0, "1"),
        (1e-5, "1e-05"),
        (1e10, "1e+10"),
        (0.00390625, "0.00390625"),
        # one float32 ulp above 0.1 does not survive "%.6g", so 9 significant digits are used
        (float(np.nextafter(np.float32(0.1), np.float32(1))), "0.100000009"),
        (float("inf"), "inf"),
        (-0.0, "-0"),
    ],
)
def test_float_fields_print_like_simple_ftoa(value, text):
    msg = caffe_pb2.FillerParameter(std=value)
    assert message_to_text(msg) == f"std: {text}\n"
    back = caffe_pb2.FillerParameter()
    from google.protobuf import text_format

    text_format.Parse(message_to_text(msg), back)
    assert np.float32(back.std) == np.float32(value)


def test_double_and_string_printing():
    blob = caffe_pb2.BlobProto(double_data=[0.1, 1.0 / 3.0])
    assert message_to_text(blob) == "double_data: 0.1\ndouble_data: 0.33333333333333331\n"
    layer = caffe_pb2.LayerParameter(name='a"b\nc\u00e9')
    assert message_to_text(layer) == 'name: "a\\"b\\nc\\303\\251"\n'
    from google.protobuf import text_format

    back = caffe_pb2.LayerParameter()
    text_format.Parse(message_to_text(layer), back)
    assert back.name == layer.name


def test_solver_write_read(tmp_path):
    solver = caffe_pb2.SolverParameter(net="n.prototxt", base_lr=0.01, max_iter=100, type="Adam")
    solver.test_iter.append(5)
    path = tmp_path / "solver.prototxt"
    write_solver_prototxt(solver, path)
    assert path.read_text() == (
        'test_iter: 5\nbase_lr: 0.01\nmax_iter: 100\nnet: "n.prototxt"\ntype: "Adam"\n'
    )
    assert read_solver_prototxt(path) == solver
