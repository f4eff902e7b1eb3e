"""Bad input to the ONNX frontend: one clear NpusimError naming the file / node and the fix."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from npusim.errors import ModelError, UnboundDimError, UnsupportedOpError
from npusim.frontend import load_onnx
from npusim.ir import Role


def vi(name, elem, shape):
    return h.make_tensor_value_info(name, elem, shape)


def matmul_model(x_shape=("batch", "seq", 4), w_shape=(4, 3)):
    g = h.make_graph([h.make_node("MatMul", ["x", "w"], ["y"], name="proj")], "g",
                     [vi("x", T.FLOAT, list(x_shape)), vi("w", T.FLOAT, list(w_shape))],
                     [vi("y", T.FLOAT, None)])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


@pytest.fixture
def good_file(tmp_path) -> Path:
    p = tmp_path / "good.onnx"
    onnx.save(matmul_model(), p)
    return p


def test_good_file_loads(good_file):
    g = load_onnx(good_file, {"batch": 2, "seq": 5})
    assert g.macs == 2 * 5 * 4 * 3 and g.name == "g"


def test_truncated_file(good_file, tmp_path):
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(good_file.read_bytes()[:-20])
    with pytest.raises(ModelError, match=r"cut\.onnx is not a valid ONNX model"):
        load_onnx(bad, {"batch": 1, "seq": 1})


@pytest.mark.parametrize("content", [b"", b"name,value\nbatch,8\n", b"\x00\xff" * 64])
def test_non_onnx_files(tmp_path, content):
    bad = tmp_path / "notes.onnx"
    bad.write_bytes(content)
    with pytest.raises(ModelError, match=r"notes\.onnx is not a valid ONNX model"):
        load_onnx(bad)


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="no such ONNX file"):
        load_onnx(tmp_path / "absent.onnx")


def test_unknown_op_names_node_op_and_domain():
    g = h.make_graph([h.make_node("FooBar", ["x"], ["y"], domain="acme", name="mystery"),
                      h.make_node("Relu", ["y"], ["z"])], "g", [vi("x", T.FLOAT, [2, 3])],
                     [vi("z", T.FLOAT, None)], value_info=[vi("y", T.FLOAT, [2, 3])])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("acme", 1)])
    with pytest.raises(UnsupportedOpError) as e:
        load_onnx(m)
    msg = str(e.value)
    for part in ("'mystery'", "'FooBar'", "'acme'", "--on-unsupported=memory"):
        assert part in msg
    graph = load_onnx(m, on_unsupported="memory")
    op = graph.op("mystery")
    assert op.kind == "movement" and op.func == "unsupported:FooBar"
    assert op.bytes == 2 * 6 * 4  # reads x, writes y
    assert len(graph.warnings) == 1 and "mystery" in graph.warnings[0]
    assert len(graph) == 2


def test_unbound_dims_listed_together():
    with pytest.raises(UnboundDimError) as e:
        load_onnx(matmul_model())
    assert "batch, seq" in str(e.value) and "--dim batch=1 --dim seq=1" in str(e.value)
    with pytest.raises(UnboundDimError, match=r"without a value: seq\. Bind"):
        load_onnx(matmul_model(), {"batch": 2})


def test_unknown_dim_name_lists_model_dims():
    with pytest.raises(ModelError, match="--dim btach names no symbolic dim.*batch, seq"):
        load_onnx(matmul_model(), {"btach": 2, "seq": 1})


def test_bad_dim_value():
    with pytest.raises(ModelError, match="positive integer"):
        load_onnx(matmul_model(), {"batch": 0, "seq": 1})


def test_mismatched_matmul_names_node_and_shapes():
    with pytest.raises(ModelError) as e:
        load_onnx(matmul_model(w_shape=(5, 3)), {"batch": 1, "seq": 2})
    msg = str(e.value)
    assert "'proj'" in msg and "MatMul" in msg and "(1, 2, 4)" in msg and "(5, 3)" in msg


def test_external_data_is_never_opened(tmp_path):
    # The weight claims to live in a file outside the model's folder; only its shape is used.
    w = nh.from_array(np.zeros((4, 3), np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = T.EXTERNAL
    for k, v in {"location": "../../../etc/shadow", "offset": "0", "length": "48"}.items():
        w.external_data.add(key=k, value=v)
    g = h.make_graph([h.make_node("MatMul", ["x", "w"], ["y"])], "g",
                     [vi("x", T.FLOAT, [2, 4])], [vi("y", T.FLOAT, None)], [w])
    path = tmp_path / "ext.onnx"
    path.write_bytes(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]).SerializeToString())
    graph = load_onnx(path)
    assert graph.macs == 24 and graph.tensors["w"].role == Role.WEIGHT


def test_bad_on_unsupported_value():
    with pytest.raises(ModelError, match="on_unsupported"):
        load_onnx(matmul_model(), {"batch": 1, "seq": 1}, on_unsupported="ignore")


def test_unsorted_graph():
    g = h.make_graph([h.make_node("Relu", ["a"], ["b"]), h.make_node("Relu", ["x"], ["a"])],
                     "g", [vi("x", T.FLOAT, [2])], [vi("b", T.FLOAT, None)])
    with pytest.raises(ModelError):
        load_onnx(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]))
