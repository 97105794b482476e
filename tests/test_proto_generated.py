"""The committed caffe_pb2.py is what protoc makes of caffe.proto today."""

import pathlib
import shutil
import subprocess
import sys

import pytest

PROTO_DIR = pathlib.Path(__file__).resolve().parents[1] / "engine" / "proto"


def test_generated_module_is_current(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools comes with the dev extra")
    shutil.copy(PROTO_DIR / "caffe.proto", tmp_path / "caffe.proto")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path}", f"--python_out={tmp_path}",
         str(tmp_path / "caffe.proto")],
        check=True,
    )
    fresh = (tmp_path / "caffe_pb2.py").read_text()
    committed = (PROTO_DIR / "caffe_pb2.py").read_text()
    assert fresh == committed, "engine/proto/caffe_pb2.py is stale: run `make proto` and commit"


def test_schema_matches_caffe_numbers():
    """Spot checks of field numbers that real Caffe files depend on."""
    from engine.proto import caffe_pb2

    layer = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    assert layer["convolution_param"].number == 106
    assert layer["batch_norm_param"].number == 139
    assert layer["clip_param"].number == 148
    assert layer["swish_param"].number == 147
    net = caffe_pb2.NetParameter.DESCRIPTOR.fields_by_name
    assert net["layer"].number == 100 and net["layers"].number == 2
    solver = caffe_pb2.SolverParameter.DESCRIPTOR.fields_by_name
    assert solver["type"].number == 40 and solver["weights"].number == 42
    assert caffe_pb2.SolverParameter().solver_mode == caffe_pb2.SolverParameter.GPU
    assert caffe_pb2.V1LayerParameter.LayerType.Value("DECONVOLUTION") == 39
    assert caffe_pb2.PoolingParameter().round_mode == caffe_pb2.PoolingParameter.CEIL
