"""Quantised, contrib (com.microsoft), opset-23 and glue ops: hand-checked figures."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from npusim.frontend import load_onnx
from npusim.ir import INT8, Role


def vi(name, elem, shape):
    return h.make_tensor_value_info(name, elem, shape)


def load(nodes, inputs, outputs, inits=(), opsets=(("", 23), ("com.microsoft", 1))):
    g = h.make_graph(nodes, "t", inputs, [onnx.ValueInfoProto(name=o) for o in outputs],
                     list(inits))
    return load_onnx(h.make_model(g, opset_imports=[h.make_opsetid(d, v) for d, v in opsets]))


def z(name, shape, dt=np.float32):
    return nh.from_array(np.zeros(shape, dt), name)


def by_name(g):
    return {op.name: op for op in g.ops()}


def test_quantized_ops():
    nodes = [h.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"]),
             h.make_node("QLinearConv", ["xq", "s", "zp", "w", "s", "zp", "s", "zp"], ["yq"],
                         name="qconv"),
             h.make_node("DequantizeLinear", ["yq", "s", "zp"], ["y"]),
             h.make_node("MatMulInteger", ["a", "w2"], ["mi"], name="mmi"),
             h.make_node("DynamicQuantizeLinear", ["f"], ["fq", "fs", "fz"])]
    g = load(nodes, [vi("x", T.FLOAT, [1, 4, 6, 6]), vi("a", T.UINT8, [3, 8]),
                     vi("f", T.FLOAT, [3, 8])], ["y", "mi", "fq"],
             [z("s", (), np.float32), z("zp", (), np.uint8), z("w", (8, 4, 3, 3), np.uint8),
              z("w2", (8, 5), np.uint8)], opsets=(("", 21),))
    ops = by_name(g)
    qc = ops["qconv"]
    assert qc.macs == 8 * 4 * 4 * 4 * 9 and qc.dtype == INT8  # uint8 x uint8 -> 8-bit MACs
    assert g.tensors["w"].role == Role.WEIGHT and g.tensors["w2"].role == Role.WEIGHT
    assert g.tensors["s"].role == Role.CONSTANT
    assert ops["mmi"].macs == 3 * 5 * 8
    assert g.parameters == 8 * 4 * 9 + 8 * 5
    assert [op.kind for op in g.ops()].count("elementwise") == 2


def test_dequantized_weight_is_costed_not_folded():
    # a QDQ model's int8 weight stays int8 (weight bytes = 1/value) and is dequantised at run time
    nodes = [h.make_node("DequantizeLinear", ["wq", "s"], ["w"], name="dq"),
             h.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    g = load(nodes, [vi("x", T.FLOAT, [2, 300])], ["y"],
             [z("wq", (300, 400), np.int8), z("s", (), np.float32)], opsets=(("", 21),))
    assert [op.name for op in g.ops()] == ["dq", "mm"]
    assert g.tensors["wq"].role == Role.WEIGHT and g.tensors["wq"].nbytes == 120_000
    assert g.parameters == 120_000


def test_microsoft_contrib_ops():
    B, S, D, H = 2, 4, 32, 4
    nodes = [
        h.make_node("SkipLayerNormalization", ["x", "skip", "g", "b"], ["ln", "", "", "sum"],
                    domain="com.microsoft", name="sln"),
        h.make_node("FastGelu", ["ln", "bias"], ["fg"], domain="com.microsoft", name="fg"),
        h.make_node("BiasGelu", ["fg", "bias"], ["bg"], domain="com.microsoft"),
        h.make_node("QuickGelu", ["bg"], ["qg"], domain="com.microsoft"),
        h.make_node("SkipSimplifiedLayerNormalization", ["qg", "x", "g"], ["rn"],
                    domain="com.microsoft"),
        h.make_node("Attention", ["rn", "wqkv", "bqkv"], ["att"], domain="com.microsoft",
                    num_heads=H, name="bert"),
        h.make_node("MultiHeadAttention", ["att", "x", "x"], ["mha"], domain="com.microsoft",
                    num_heads=H, name="mha"),
        h.make_node("RotaryEmbedding", ["mha", "pos", "cos", "sin"], ["rot"],
                    domain="com.microsoft", name="rope"),
        h.make_node("Relu", ["rot"], ["out"], name="relu")]
    g = load(nodes, [vi("x", T.FLOAT, [B, S, D]), vi("skip", T.FLOAT, [B, S, D]),
                     vi("pos", T.INT64, [B, S])], ["out", "sum"],
             [z("g", (D,)), z("b", (D,)), z("bias", (D,)), z("wqkv", (D, 3 * D)),
              z("bqkv", (3 * D,)), z("cos", (16, 4)), z("sin", (16, 4))])
    ops = by_name(g)
    assert ops["sln"].outputs[1].shape == (B, S, D) and ops["sln"].func == "skip_layernorm"
    assert ops["fg"].vector_ops == B * S * D * 9  # gelu 8 + bias 1
    assert ops["bert/qkv"].macs == B * S * 3 * D * D
    # each head: S x S scores of head size D/H
    assert ops["bert/qk"].macs == ops["bert/pv"].macs == B * H * S * S * (D // H)
    assert ops["mha/qk"].macs == B * H * S * S * (D // H)
    assert ops["relu"].inputs[0].shape == (B, S, D)
    assert g.macs == B * S * 3 * D * D + 4 * B * H * S * S * (D // H)


def test_onnx_attention_opset23_with_past():
    nodes = [h.make_node("Attention", ["q", "k", "v", "", "past_key", "past_value"],
                         ["y", "present_key", "present_value"], name="att")]
    g = load(nodes, [vi("q", T.FLOAT, [2, 8, 3, 16]), vi("k", T.FLOAT, [2, 2, 3, 16]),
                     vi("v", T.FLOAT, [2, 2, 3, 16]), vi("past_key", T.FLOAT, [2, 2, 5, 16]),
                     vi("past_value", T.FLOAT, [2, 2, 5, 16])],
             ["y", "present_key", "present_value"], opsets=(("", 23),))
    ops = by_name(g)
    assert ops["att/qk"].macs == 2 * 8 * 3 * 8 * 16
    assert dict(ops["att/qk"].dims)["g"] == 4
    assert g.tensors["present_key"].shape == (2, 2, 8, 16)


@pytest.mark.parametrize("op,attrs,out_shape,per_input", [
    ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2]), (1, 4, 3, 3), 1.0),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]), (1, 4, 6, 6), 9.0),
    ("GlobalAveragePool", {}, (1, 4, 1, 1), 1.0),
])
def test_pool_ops_per_input_element(op, attrs, out_shape, per_input):
    g = load([h.make_node(op, ["x"], ["y"], **attrs)], [vi("x", T.FLOAT, [1, 4, 6, 6])], ["y"],
             opsets=(("", 18),))
    (r,) = list(g.ops())
    assert r.kind == "reduction" and r.outputs[0].shape == out_shape
    assert r.vector_ops == pytest.approx(4 * 36 * per_input)


def test_glue_ops_lower():
    nodes = [h.make_node("Pad", ["x", "pads"], ["p"]),
             h.make_node("Resize", ["p", "", "scales"], ["r"], mode="linear"),
             h.make_node("ReduceMean", ["r", "axes"], ["rm"]),
             h.make_node("ArgMax", ["x"], ["am"], axis=1),
             h.make_node("CumSum", ["x", "ax0"], ["cs"]),
             h.make_node("ScatterND", ["x", "idx", "upd"], ["sc"], name="scatter"),
             h.make_node("Tile", ["x", "reps"], ["ti"]),
             h.make_node("Split", ["x"], ["s1", "s2"], axis=1, num_outputs=2),
             h.make_node("Where", ["cond", "x", "x"], ["wh"]),
             h.make_node("LayerNormalization", ["x", "g6"], ["ln"], axis=-1),
             h.make_node("Transpose", ["x"], ["tr"], perm=[0, 2, 3, 1], name="tr")]
    g = load(nodes, [vi("x", T.FLOAT, [1, 4, 6, 6]), vi("cond", T.BOOL, [1, 4, 6, 6])],
             ["rm", "am", "cs", "sc", "ti", "s1", "s2", "wh", "ln", "tr"],
             [nh.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
              nh.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
              nh.from_array(np.array([2, 3], np.int64), "axes"),
              nh.from_array(np.array(0, np.int64), "ax0"),
              nh.from_array(np.zeros((2, 4), np.int64), "idx"), z("upd", (2, 6, 6)),
              nh.from_array(np.array([1, 1, 2, 2], np.int64), "reps"), z("g6", (6,))],
             opsets=(("", 18),))
    kinds = {op.op_type: op.kind for op in g.ops()}
    assert kinds == {"Pad": "movement", "Resize": "elementwise", "ReduceMean": "reduction",
                     "ArgMax": "reduction", "CumSum": "elementwise", "ScatterND": "movement",
                     "Tile": "movement", "Split": "movement", "Where": "elementwise",
                     "LayerNormalization": "reduction", "Transpose": "movement"}
    ops = by_name(g)
    assert ops["scatter"].bytes == 2 * 4 * 8 + 2 * (2 * 36 * 4)  # indices + updates in, rows out
    assert ops["tr"].bytes == 2 * 144 * 4
    assert g.tensors["r"].shape == (1, 4, 16, 16)


def test_if_with_subgraph_is_unsupported_by_default():
    then = h.make_graph([h.make_node("Identity", ["x"], ["t"])], "then", [],
                        [vi("t", T.FLOAT, [2])])
    node = h.make_node("If", ["c"], ["y"], then_branch=then, else_branch=then, name="branch")
    g = h.make_graph([node], "g", [vi("c", T.BOOL, []), vi("x", T.FLOAT, [2])],
                     [vi("y", T.FLOAT, [2])])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    from npusim.errors import UnsupportedOpError
    with pytest.raises(UnsupportedOpError, match="'branch'.*'If'"):
        load_onnx(m)
    assert load_onnx(m, on_unsupported="memory").op("branch").func == "unsupported:If"
