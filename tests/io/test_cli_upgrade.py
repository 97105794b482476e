"""`brewnet upgrade_*` verbs, run through engine.cli.main on files in tmp_path."""

from __future__ import annotations

from engine.cli import main
from engine.io import read_net_binary, write_net_binary
from engine.proto import caffe_pb2

V1_TEXT = 'name: "n"\nlayers { name: "s" type: SIGMOID bottom: "x" top: "y" }\n'
V2_TEXT = 'name: "n"\nlayer {\n  name: "s"\n  type: "Sigmoid"\n  bottom: "x"\n  top: "y"\n}\n'


def test_upgrade_net_proto_text(tmp_path):
    src, dst = tmp_path / "old.prototxt", tmp_path / "new.prototxt"
    src.write_text(V1_TEXT)
    assert main(["upgrade_net_proto_text", str(src), str(dst)]) == 0
    assert dst.read_text() == V2_TEXT
    assert src.read_text() == V1_TEXT


def test_upgrade_net_proto_text_on_current_file_rewrites_it_canonically(tmp_path):
    src, dst = tmp_path / "cur.prototxt", tmp_path / "out.prototxt"
    src.write_text('name: "n" layer { name: "s" type: "Sigmoid" bottom: "x" top: "y" }')
    assert main(["upgrade_net_proto_text", str(src), str(dst)]) == 0
    assert dst.read_text() == V2_TEXT


def test_upgrade_net_proto_text_reports_problems_with_exit_1(tmp_path):
    src, dst = tmp_path / "v0.prototxt", tmp_path / "v2.prototxt"
    src.write_text('input: "x"\nlayers { layer { name: "r" type: "relu" num_output: 3 } top: "y" }')
    assert main(["upgrade_net_proto_text", str(src), str(dst)]) == 1
    assert 'type: "ReLU"' in dst.read_text()  # written anyway, as Caffe does


def test_upgrade_net_proto_binary(tmp_path):
    old = caffe_pb2.NetParameter(name="b")
    layer = old.layers.add(name="ip", type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
    layer.blobs.add().data.extend([0.5, -1.0])
    src, dst = tmp_path / "old.caffemodel", tmp_path / "new.caffemodel"
    write_net_binary(old, src)
    assert main(["upgrade_net_proto_binary", str(src), str(dst)]) == 0
    raw = caffe_pb2.NetParameter()
    raw.ParseFromString(dst.read_bytes())  # already V2 on disk, no upgrade needed to read it
    assert len(raw.layers) == 0 and raw.layer[0].type == "InnerProduct"
    assert list(raw.layer[0].blobs[0].data) == [0.5, -1.0]
    assert read_net_binary(dst) == raw


def test_upgrade_solver_proto_text(tmp_path):
    src, dst = tmp_path / "solver.prototxt", tmp_path / "solver_new.prototxt"
    src.write_text('net: "n.prototxt"\nbase_lr: 0.1\nsolver_type: NESTEROV\n')
    assert main(["upgrade_solver_proto_text", str(src), str(dst)]) == 0
    assert dst.read_text() == 'base_lr: 0.1\nnet: "n.prototxt"\ntype: "Nesterov"\n'


def test_wrong_arguments_print_usage_and_exit_1(tmp_path, capsys):
    assert main(["upgrade_net_proto_text", str(tmp_path / "only_one")]) == 1
    assert "usage: brewnet upgrade_net_proto_text" in capsys.readouterr().err
    assert main(["upgrade_solver_proto_text"]) == 1
    assert "usage: brewnet upgrade_solver_proto_text" in capsys.readouterr().err


def test_parse_error_and_missing_input_exit_1(tmp_path, capsys):
    bad = tmp_path / "bad.prototxt"
    bad.write_text("layer {\n  nmae: 1\n}\n")
    out = tmp_path / "out.prototxt"
    assert main(["upgrade_net_proto_text", str(bad), str(out)]) == 1
    assert f"{bad}:2:3:" in capsys.readouterr().err
    assert not out.exists()
    assert main(["upgrade_net_proto_binary", str(tmp_path / "gone.caffemodel"), str(out)]) == 1
    assert "gone.caffemodel" in capsys.readouterr().err
