"""``--batch N`` on ONNX graphs (npusim/frontend/rebatch.py): one boundary, exact MAC scaling,
one clear error where the batch cannot be changed safely."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto as T
from onnx import helper, numpy_helper

import npusim
from npusim.errors import ModelError
from npusim.graphs import mlperf


def clean(code: int, err: str) -> bool:
    return (code == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err
            and "Traceback" not in err)


# BERT-Large MACs per sample at seq S, by hand (Devlin et al.: 24 layers, hidden 1024, FFN
# 4096): per layer q, k, v, output projections 4 x 1024^2 and the FFN 2 x 1024 x 4096 per
# token, QK^T and AV 2 x S^2 x 1024; the span head 1024 x 2 per token. Embeddings are gathers.
def bert_macs(batch: int, seq: int) -> int:
    per_layer = (4 * 1024 * 1024 + 2 * 1024 * 4096) * seq + 2 * seq * seq * 1024
    return batch * (24 * per_layer + 1024 * 2 * seq)


# ResNet-50 v1.5 at 224x224: torchvision's 4.09 GMACs, reproduced exactly by
# tests/test_mlperf_graphs.py from the layer table.
RESNET50_MACS = 4_089_184_256


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("rebatch")
    out = {}
    for name in mlperf.NETWORKS:
        out[name] = d / f"{name}.onnx"
        onnx.save(mlperf.build(name, 1), out[name])
    return out


def test_resnet50_at_batch_8_is_exactly_8x(files):
    one = npusim.load_model(files["resnet50"])
    eight = npusim.load_model(files["resnet50"], batch=8)
    assert one.macs == RESNET50_MACS
    assert eight.macs == 8 * RESNET50_MACS
    assert eight.meta["batch"] == 8
    assert eight.macs == npusim.load_model(mlperf.build("resnet50", 8)).macs


def test_bert_large_at_batch_2_by_hand(files):
    assert bert_macs(1, 384) == 123_212_660_736
    g = npusim.load_model(files["bert-large"], batch=2)
    assert g.macs == bert_macs(2, 384)


def test_same_batch_is_the_file_as_it_is(files):
    assert npusim.load_model(files["resnet50"], batch=1).macs == RESNET50_MACS


def test_symbolic_batch_is_bound_like_dim(tmp_path):
    path = tmp_path / "sym.onnx"
    onnx.save(mlperf.build("resnet50", "batch"), path)
    by_batch = npusim.load_model(path, batch=3)
    by_dim = npusim.load_model(path, dims={"batch": 3})
    assert by_batch.macs == by_dim.macs == 3 * RESNET50_MACS
    assert npusim.load_model(path, batch=3, dims={"batch": 3}).macs == by_dim.macs
    with pytest.raises(ModelError, match=r"--batch 3 and --dim batch=4 disagree"):
        npusim.load_model(path, batch=3, dims={"batch": 4})


# --- tiny graphs built here -------------------------------------------------------------

def mlp(path, lead=2, reshape=None, extra=None, opset=17):
    """x [lead, 2, 4] -> (Reshape to ``reshape``) -> MatMul with w [4, 3]; ``extra`` adds a
    second input of that shape."""
    inits = [helper.make_tensor("w", T.FLOAT, [4, 3], [0.0] * 12)]
    nodes, x = [], "x"
    if reshape is not None:
        inits.append(numpy_helper.from_array(np.array(reshape, dtype=np.int64), "shape"))
        nodes.append(helper.make_node("Reshape", ["x", "shape"], ["xr"], name="flatten_rows"))
        x = "xr"
    nodes.append(helper.make_node("MatMul", [x, "w"], ["y"], name="mm"))
    ins = [helper.make_tensor_value_info("x", T.FLOAT, [lead, 2, 4])]
    if extra is not None:
        ins.append(helper.make_tensor_value_info("z", T.FLOAT, extra))
    out = [helper.make_tensor_value_info("y", T.FLOAT, None)]
    m = helper.make_model(helper.make_graph(nodes, "g", ins, out, inits),
                          opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(m, path)
    return str(path)


def test_reshape_that_computes_the_batch_follows_it(tmp_path):
    for shape in ([0, -1, 4], [-1, 4]):
        path = mlp(tmp_path / "ok.onnx", reshape=shape)
        assert npusim.load_model(path, batch=5).macs == 5 * 2 * 4 * 3


@pytest.mark.parametrize("shape", [[2, 2, 4], [1, -1, 4], [4, 4]])
def test_reshape_that_fixes_the_batch_is_refused(cli, tmp_path, shape):
    path = mlp(tmp_path / "fixed.onnx", reshape=shape)
    code, _, err = cli("run", path, "--arch", "edu", "--batch", "6")
    assert clean(code, err), err
    assert "fixed.onnx" in err and "'flatten_rows' (Reshape)" in err
    assert "--batch 2" in err and "dynamic_axes" in err


@pytest.mark.parametrize("extra,needle", [
    ([3, 4], "they differ (x: 2, z: 3)"),
    (["n", 4], "they differ (x: 2, z: n)"),
    ([], "graph input 'z' is a scalar"),
])
def test_graphs_without_one_batch_axis_are_refused(cli, tmp_path, extra, needle):
    path = mlp(tmp_path / "two.onnx", extra=extra)
    for cmd in ("run", "inspect"):
        code, _, err = cli(cmd, path, "--arch", "edu", "--batch", "4") if cmd == "run" else \
            cli(cmd, path, "--batch", "4")
        assert clean(code, err), err
        assert "two.onnx" in err and needle in err


def test_constant_of_the_old_batch_names_batch_in_the_inference_error(cli, tmp_path):
    bias = numpy_helper.from_array(np.zeros((2, 2, 3), dtype=np.float32), "b")
    m = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["t"], name="mm"),
         helper.make_node("Add", ["t", "b"], ["y"], name="add_batch_bias")], "g",
        [helper.make_tensor_value_info("x", T.FLOAT, [2, 2, 4])],
        [helper.make_tensor_value_info("y", T.FLOAT, [2, 2, 3])],
        [helper.make_tensor("w", T.FLOAT, [4, 3], [0.0] * 12), bias]),
        opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "bias.onnx"
    onnx.save(m, path)
    code, _, err = cli("inspect", str(path), "--batch", "3")
    assert clean(code, err), err
    assert "add_batch_bias" in err and "--batch 3 changed the inputs' leading axis from 2" in err


@pytest.mark.parametrize("value,needle", [("0", "batch (--batch) 0 must be at least 1"),
                                          ("-1", "must be at least 1"),
                                          ("65537", "past the limit of 65,536")])
def test_batch_out_of_range_on_onnx(cli, tmp_path, value, needle):
    code, _, err = cli("run", mlp(tmp_path / "m.onnx"), "--arch", "edu", "--batch", value)
    assert clean(code, err), err
    assert needle in err


def test_run_and_inspect_take_batch(cli, tmp_path):
    path = mlp(tmp_path / "m.onnx")
    code, out, err = cli("run", path, "--arch", "edu", "--batch", "7", "--json",
                         str(tmp_path / "r.json"))
    assert code == 0, err
    want = npusim.simulate(path, "edu", batch=7)
    totals = json.loads((tmp_path / "r.json").read_text())["totals"]
    assert totals["macs"] == 7 * 2 * 4 * 3
    assert totals["latency_s"] == pytest.approx(want.latency_s, rel=1e-12)
    code, out, err = cli("inspect", path, "--batch", "7")
    assert code == 0, err


def test_load_onnx_refuses_a_bad_batch_directly(tmp_path):
    from npusim.frontend.onnx_loader import load_onnx
    for bad in (0, True, 2.5, 2**41):
        with pytest.raises(ModelError, match="--batch"):
            load_onnx(mlp(tmp_path / "m.onnx"), batch=bad)


def test_the_callers_model_is_not_changed(tmp_path):
    m = onnx.load(mlp(tmp_path / "m.onnx"))
    before = m.SerializeToString()
    npusim.load_model(m, batch=9)
    assert m.SerializeToString() == before


# --- property: MACs are linear in the batch ----------------------------------------------

def conv_net(batch: int, channels: int, size: int, out: int) -> onnx.ModelProto:
    """Conv 3x3 (pad 1) -> Relu -> Flatten -> Gemm, at a fixed batch."""
    w = helper.make_tensor("w", T.FLOAT, [out, channels, 3, 3], [0.0] * (out * channels * 9))
    fc = helper.make_tensor("fc", T.FLOAT, [out * size * size, 5],
                            [0.0] * (out * size * size * 5))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "fc"], ["y"], name="fc")]
    g = helper.make_graph(nodes, "convnet",
                          [helper.make_tensor_value_info("x", T.FLOAT,
                                                         [batch, channels, size, size])],
                          [helper.make_tensor_value_info("y", T.FLOAT, [batch, 5])], [w, fc])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 64), st.integers(1, 4), st.integers(1, 6),
       st.integers(1, 8))
def test_macs_scale_linearly_with_batch(file_batch, batch, channels, size, out):
    m = conv_net(file_batch, channels, size, out)
    per_sample = size * size * out * channels * 9 + out * size * size * 5
    assert npusim.load_model(m).macs == file_batch * per_sample
    assert npusim.load_model(m, batch=batch).macs == batch * per_sample


# --- fuzz: a Reshape target of any form either follows the batch exactly or is refused ---

@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(1, 9), st.sampled_from(
    ["0,-1,4", "-1,4", "B,-1,4", "2B,4", "0,2,4", "1,-1,4", "-1,2,4", "B,2,4", "0,8", "-1,8"]),
    st.booleans())
def test_reshape_targets_never_give_a_wrong_count(old, new, form, as_constant_node):
    shape = [int(x.replace("2B", str(2 * old)).replace("B", str(old))) for x in form.split(",")]
    width = shape[-1]
    nodes, inits = [], [helper.make_tensor("w", T.FLOAT, [width, 3], [0.0] * width * 3)]
    if as_constant_node:
        nodes.append(helper.make_node("Constant", [], ["s"], name="shape_const",
                                      value=numpy_helper.from_array(np.array(shape, np.int64))))
    else:
        inits.append(numpy_helper.from_array(np.array(shape, dtype=np.int64), "s"))
    nodes += [helper.make_node("Reshape", ["x", "s"], ["xr"], name="rs"),
              helper.make_node("MatMul", ["xr", "w"], ["y"], name="mm")]
    m = helper.make_model(helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", T.FLOAT, [old, 2, 4])],
        [helper.make_tensor_value_info("y", T.FLOAT, None)], inits),
        opset_imports=[helper.make_opsetid("", 17)])
    per_sample = 2 * 4 * 3          # every form keeps the 8 values of a sample
    try:
        macs = npusim.load_model(m, batch=new).macs
    except ModelError as e:
        assert "\n" not in str(e)
        assert new != old           # the file's own batch always loads
        assert shape[0] not in (0, -1)
        return
    assert macs == new * per_sample
