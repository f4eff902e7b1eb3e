"""Hand-computed lowerings of tiny ONNX graphs built in memory."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from npusim.frontend import load_onnx, supported_ops
from npusim.frontend.registry import register
from npusim.ir import INT4, Axis, Role


def vi(name, elem, shape):
    return h.make_tensor_value_info(name, elem, shape)


def model(nodes, inputs, outputs, inits=(), opsets=(("", 17),)):
    g = h.make_graph(nodes, "t", inputs, outputs, list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid(d, v) for d, v in opsets])


def zeros(name, shape, dt=np.float32):
    return nh.from_array(np.zeros(shape, dt), name)


def only(graph, kind="contraction"):
    ops = [op for op in graph.ops() if op.kind == kind]
    assert len(ops) == 1, [op.name for op in graph.ops()]
    return ops[0]


def axes(op, tensor_name):
    for o in (*op.operands, op.output):
        if o.tensor.name == tensor_name:
            return [str(a) for a in o.axes]
    raise KeyError(tensor_name)


def test_conv_stride_dilation_pads_groups():
    # X [1,4,9,9], W [6,2,3,3], group 2, stride 2, dilation 2, pad 1:
    # out = (9 + 2 - 2*(3-1) - 1) // 2 + 1 = 4; MACs = N*M*(C/G)*P*Q*R*S = 6*2*16*9 = 1728
    node = h.make_node("Conv", ["x", "w", "b"], ["y"], name="cv", group=2, strides=[2, 2],
                       dilations=[2, 2], pads=[1, 1, 1, 1])
    g = load_onnx(model([node], [vi("x", T.FLOAT, [1, 4, 9, 9])], [vi("y", T.FLOAT, None)],
                        [zeros("w", (6, 2, 3, 3)), zeros("b", (6,))]))
    c = only(g)
    assert dict(c.dims) == {"n": 1, "g": 2, "m": 3, "c": 2, "p": 4, "q": 4, "r": 3, "s": 3}
    assert c.macs == 1728
    assert axes(c, "x") == ["n", "2*g+c", "2*p+2*r-1", "2*q+2*s-1"]
    assert axes(c, "w") == ["3*g+m", "c", "r", "s"]
    assert axes(c, "y") == ["n", "3*g+m", "p", "q"]
    assert c.operands[0].axes[2].extent(c.extents) == (-1, 9)  # rows -1..9 of a 9-row input
    assert sorted(c.reduced_dims) == ["c", "r", "s"]
    assert [t.name for t in c.inputs] == ["x", "w", "b"]  # bias read by the contraction
    assert (c.source, c.op_type, len(g)) == ("cv", "Conv", 1)
    assert g.parameters == 6 * 2 * 9 + 6


def test_depthwise_conv_and_auto_pad():
    node = h.make_node("Conv", ["x", "w"], ["y"], group=8, auto_pad="SAME_UPPER",
                       kernel_shape=[3, 3])
    g = load_onnx(model([node], [vi("x", T.FLOAT, [1, 8, 10, 10])], [vi("y", T.FLOAT, None)],
                        [zeros("w", (8, 1, 3, 3))]))
    c = only(g)
    assert dict(c.dims) == {"n": 1, "g": 8, "m": 1, "c": 1, "p": 10, "q": 10, "r": 3, "s": 3}
    assert c.macs == 8 * 10 * 10 * 9
    assert axes(c, "x")[1:] == ["g+c", "p+r-1", "q+s-1"]  # SAME_UPPER pads 1 before
    assert c.source == "Conv_0"  # unnamed node: <op_type>_<index>


def test_conv_transpose_scatter_form():
    # X [1,4,5,5], W [4,3,3,3], stride 2, pads 1, output_padding 1:
    # out = 2*(5-1) + 1 + (3-1) + 1 - 2 = 10; MACs = N*C*M*H*W*kH*kW = 4*3*25*9 = 2700
    node = h.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1],
                       output_padding=[1, 1])
    g = load_onnx(model([node], [vi("x", T.FLOAT, [1, 4, 5, 5])], [vi("y", T.FLOAT, None)],
                        [zeros("w", (4, 3, 3, 3))]))
    c = only(g)
    assert c.output.tensor.shape == (1, 3, 10, 10)
    assert c.macs == 2700
    assert axes(c, "x") == ["n", "c", "p", "q"]
    assert axes(c, "w") == ["c", "m", "r", "s"]
    assert axes(c, "y") == ["n", "m", "2*p+r-1", "2*q+s-1"]
    assert sorted(c.reduced_dims) == ["c"]


def test_gemm_transb_and_bias():
    node = h.make_node("Gemm", ["a", "b", "c"], ["y"], name="fc", transB=1)
    g = load_onnx(model([node], [vi("a", T.FLOAT, [3, 5])], [vi("y", T.FLOAT, None)],
                        [zeros("b", (4, 5)), zeros("c", (4,))]))
    mm = only(g)
    assert dict(mm.dims) == {"m": 3, "n": 4, "k": 5} and mm.macs == 60
    assert axes(mm, "b") == ["n", "k"]
    add = only(g, "elementwise")
    assert add.func == "add" and add.vector_ops == 12
    assert [t.name for t in add.inputs] == [mm.output.tensor.name, "c"]
    assert add.outputs[0].name == "y" and list(g.nx.edges) == [(mm.name, add.name)]
    assert {t.name: t.role for t in add.inputs}["c"] == Role.WEIGHT


def test_batched_matmul_broadcast():
    # [2,1,3,4] x [5,4,6] -> [2,5,3,6]; MACs 2*5*3*6*4 = 720
    node = h.make_node("MatMul", ["a", "b"], ["y"])
    g = load_onnx(model([node], [vi("a", T.FLOAT, [2, 1, 3, 4]), vi("b", T.FLOAT, [5, 4, 6])],
                        [vi("y", T.FLOAT, None)]))
    c = only(g)
    assert c.macs == 720 and c.output.tensor.shape == (2, 5, 3, 6)
    assert axes(c, "a") == ["b0", "0", "m", "k"]  # size-1 batch axis is broadcast
    assert axes(c, "b") == ["b1", "k", "n"]
    assert axes(c, "y") == ["b0", "b1", "m", "n"]


@pytest.mark.parametrize("eq,shapes,macs,reduced", [
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)], 2 * 3 * 4 * 5, ["j"]),
    ("...ij,...jk->...ik", [(7, 2, 3), (7, 3, 4)], 7 * 2 * 3 * 4, ["j"]),
    # implicit output (numpy rules): letters seen once, sorted -> "kq"; b, h and d are summed
    ("bhqd,bhkd", [(1, 2, 3, 4), (1, 2, 5, 4)], 2 * 3 * 5 * 4, ["b", "d", "h"]),
])
def test_einsum(eq, shapes, macs, reduced):
    node = h.make_node("Einsum", ["a", "b"], ["y"], equation=eq)
    g = load_onnx(model([node], [vi("a", T.FLOAT, shapes[0]), vi("b", T.FLOAT, shapes[1])],
                        [vi("y", T.FLOAT, None)], opsets=(("", 12),)))
    c = only(g)
    assert c.macs == macs and sorted(c.reduced_dims) == reduced


def _gqa_model(with_past=True):
    B, S, nh_, kvh, hd, P = 2, 3, 8, 2, 16, 5
    ins = [vi("q", T.FLOAT16, [B, S, nh_ * hd]), vi("k", T.FLOAT16, [B, S, kvh * hd]),
           vi("v", T.FLOAT16, [B, S, kvh * hd])]
    names = ["q", "k", "v", "", "", "seqlens_k", "total"]
    if with_past:
        ins += [vi("past_key", T.FLOAT16, [B, kvh, P, hd]),
                vi("past_value", T.FLOAT16, [B, kvh, P, hd])]
        names[3:5] = ["past_key", "past_value"]
    ins.append(vi("seqlens_k", T.INT32, [B]))
    node = h.make_node("GroupQueryAttention", names, ["o", "present_key", "present_value"],
                       domain="com.microsoft", name="attn", num_heads=nh_, kv_num_heads=kvh)
    total = nh.from_array(np.array(P + S if with_past else S, np.int32), "total")
    return model([node], ins, [vi(x, T.FLOAT16, None) for x in ("o", "present_key",
                                                                 "present_value")],
                 [total], opsets=(("", 17), ("com.microsoft", 1)))


def test_group_query_attention_with_past():
    # B=2, S=3, 8 query heads sharing 2 KV heads, head 16, past 5: kv_len 8.
    # QK^T MACs = B * heads * q_len * kv_len * head_dim = 2*8*3*8*16 = 6144 (PV the same)
    g = load_onnx(_gqa_model())
    qk, pv = [op for op in g.ops() if op.kind == "contraction"]
    assert dict(qk.dims) == {"b": 2, "h": 2, "g": 4, "q": 3, "t": 8, "d": 16}
    assert qk.macs == pv.macs == 6144
    assert axes(qk, "q") == ["b", "q", "64*h+16*g+d"]  # query head h*4+g
    assert axes(qk, "present_key") == ["b", "h", "t", "d"]  # one K head per group
    assert axes(pv, "o") == ["b", "q", "64*h+16*g+d"]
    assert g.tensors["present_key"].shape == (2, 2, 8, 16)
    assert g.tensors["past_key"].role == Role.KV_CACHE
    assert g.tensors["present_value"].role == Role.KV_CACHE
    append = g.op("attn/k_append")
    # only the 3 new positions move: read + write 2*3*2*16 fp16 values
    assert append.func == "kv_append" and append.bytes == 2 * (2 * 3 * 2 * 16 * 2)
    assert [op.source for op in g.ops()] == ["attn"] * len(g)
    assert {op.op_type for op in g.ops()} == {"GroupQueryAttention"}


def test_group_query_attention_prefill_without_past():
    g = load_onnx(_gqa_model(with_past=False))
    qk = [op for op in g.ops() if op.kind == "contraction"][0]
    assert qk.macs == 2 * 8 * 3 * 3 * 16


def test_matmulnbits_weight_bytes():
    # K=64, N=32, 4-bit, blocks of 32: B packs to [32, 2, 16] bytes = 1024 bytes; fp16 scales
    # one per block (64 * 2 bytes) and uint8 zero points (32 bytes) are extra weight bytes.
    K, N, bits, blk = 64, 32, 4, 32
    node = h.make_node("MatMulNBits", ["a", "B", "scales", "zp"], ["y"], domain="com.microsoft",
                       K=K, N=N, bits=bits, block_size=blk, name="q4")
    inits = [zeros("B", (N, K // blk, blk * bits // 8), np.uint8),
             zeros("scales", (N * K // blk,), np.float16), zeros("zp", (N,), np.uint8)]
    g = load_onnx(model([node], [vi("a", T.FLOAT16, [2, K])], [vi("y", T.FLOAT16, None)], inits,
                        opsets=(("", 17), ("com.microsoft", 1))))
    c = only(g)
    assert c.macs == 2 * N * K
    b = g.tensors["B"]
    assert (b.shape, b.dtype, b.nbytes, b.role) == ((N, K), INT4, 1024.0, Role.WEIGHT)
    assert g.bytes_by_role()["weight"] == 1024 + 128 + 32
    assert c.output.tensor.shape == (2, N) and c.dtype.name == "fp16"
    assert axes(c, "B") == ["n", "k"]


def test_free_reshapes_produce_no_ops():
    nodes = [h.make_node("Relu", ["x"], ["r"], name="first"),
             h.make_node("Reshape", ["r", "shape"], ["a"]),
             h.make_node("Flatten", ["a"], ["b"], axis=1),
             h.make_node("Unsqueeze", ["b", "axes"], ["c"]),
             h.make_node("Squeeze", ["c", "axes"], ["d"]),
             h.make_node("Identity", ["d"], ["e"]),
             h.make_node("Dropout", ["e"], ["f"]),
             h.make_node("Relu", ["f"], ["y"], name="second")]
    g = load_onnx(model(nodes, [vi("x", T.FLOAT, [2, 3, 4])], [vi("y", T.FLOAT, None)],
                        [nh.from_array(np.array([6, 4], np.int64), "shape"),
                         nh.from_array(np.array([0], np.int64), "axes")]))
    assert [op.name for op in g.ops()] == ["first", "second"]
    assert g.op("second").inputs[0].shape == (6, 4)
    assert g.aliases["f"] == "r"
    assert list(g.nx.edges) == [("first", "second")]
    assert g.bytes_by_role()["activation"] == 3 * 24 * 4  # x, r (= its views) and y


def test_shape_chain_folded_with_bound_batch():
    nodes = [h.make_node("Shape", ["x"], ["s"]),
             h.make_node("Gather", ["s", "i0"], ["b"], axis=0),
             h.make_node("Unsqueeze", ["b", "ax"], ["bu"]),
             h.make_node("Concat", ["bu", "m1"], ["shp"], axis=0),
             h.make_node("Reshape", ["x", "shp"], ["y"]),
             h.make_node("MatMul", ["y", "w"], ["z"], name="mm")]
    inits = [nh.from_array(np.array(0, np.int64), "i0"),
             nh.from_array(np.array([0], np.int64), "ax"),
             nh.from_array(np.array([-1], np.int64), "m1"), zeros("w", (32, 5))]
    m = model(nodes, [vi("x", T.FLOAT, ["batch", 4, 8])], [vi("z", T.FLOAT, None)], inits)
    g = load_onnx(m, {"batch": 3})
    assert [op.name for op in g.ops()] == ["mm"]
    mm = g.op("mm")
    assert mm.inputs[0].shape == (3, 32) and mm.macs == 3 * 32 * 5
    assert g.aliases["y"] == "x" and g.meta["dims"] == {"batch": 3}
    assert load_onnx(m, {"batch": 7}).macs == 7 * 32 * 5


def test_constant_of_shape_weights_and_roles():
    nodes = [h.make_node("ConstantOfShape", ["wshape"], ["w"],
                         value=nh.from_array(np.array([0.5], np.float32))),
             h.make_node("MatMul", ["x", "w"], ["m"]),
             h.make_node("Mul", ["m", "half"], ["y"])]
    inits = [nh.from_array(np.array([4, 6], np.int64), "wshape"),
             nh.from_array(np.array(0.5, np.float32), "half")]
    g = load_onnx(model(nodes, [vi("x", T.FLOAT, [2, 4])], [vi("y", T.FLOAT, None)], inits))
    assert len(g) == 2 and g.parameters == 24
    assert g.tensors["w"].role == Role.WEIGHT
    assert g.tensors["half"].role == Role.CONSTANT
    assert "wshape" not in g.tensors  # consumed only by a folded node


def test_standard_llm_glue_ops_lower():
    # RMSNormalization (opset 23), Trilu/Where causal mask on a computed tensor, TopK, Slice
    nodes = [h.make_node("RMSNormalization", ["x", "gamma"], ["n"], axis=-1),
             h.make_node("MatMul", ["n", "wt"], ["s"]),
             h.make_node("Trilu", ["s"], ["tri"], upper=0),
             h.make_node("Softmax", ["tri"], ["p"], axis=-1),
             h.make_node("TopK", ["p", "k"], ["vals", "idx"]),
             h.make_node("Slice", ["x", "st", "en", "ax"], ["sl"])]
    inits = [zeros("gamma", (8,)), zeros("wt", (8, 4)),
             nh.from_array(np.array([2], np.int64), "k"),
             nh.from_array(np.array([0], np.int64), "st"),
             nh.from_array(np.array([2], np.int64), "en"),
             nh.from_array(np.array([2], np.int64), "ax")]
    g = load_onnx(model(nodes, [vi("x", T.FLOAT, [1, 4, 8])],
                        [vi(o, T.FLOAT, None) for o in ("vals", "sl")] +
                        [vi("idx", T.INT64, None)], inits, opsets=(("", 23),)))
    kinds = [(op.op_type, op.kind) for op in g.ops()]
    assert kinds == [("RMSNormalization", "reduction"), ("MatMul", "contraction"),
                     ("Trilu", "elementwise"), ("Softmax", "reduction"), ("TopK", "reduction"),
                     ("Slice", "movement")]
    assert g.op("Slice_5").bytes == 2 * 1 * 4 * 2 * 4  # read and write the [1,4,2] slice


def test_gather_moves_rows_read_only():
    node = h.make_node("Gather", ["emb", "ids"], ["y"], name="embed")
    g = load_onnx(model([node], [vi("ids", T.INT64, [1, 3])], [vi("y", T.FLOAT, None)],
                        [zeros("emb", (1000, 16))]))
    op = only(g, "movement")
    assert op.bytes == 3 * 8 + 2 * 3 * 16 * 4  # indices + rows read + output written
    assert g.tensors["emb"].role == Role.WEIGHT and g.parameters == 16000


def test_registry_rejects_duplicates_and_knows_domains():
    with pytest.raises(ValueError, match="duplicate lowering"):
        register("Conv")(lambda n: [])
    with pytest.raises(ValueError, match="duplicate lowering"):
        register("MatMul", domain="ai.onnx")(lambda n: [])
    ops = supported_ops()
    for key in [("", "Conv"), ("", "ConvTranspose"), ("", "Einsum"), ("", "QLinearConv"),
                ("com.microsoft", "GroupQueryAttention"), ("com.microsoft", "MatMulNBits"),
                ("com.microsoft", "SkipSimplifiedLayerNormalization")]:
        assert key in ops
    assert not any(d == "ai.onnx" for d, _ in ops)


def test_ai_onnx_domain_spelling_is_default():
    node = h.make_node("Relu", ["x"], ["y"], domain="ai.onnx")
    g = load_onnx(model([node], [vi("x", T.FLOAT, [2, 2])], [vi("y", T.FLOAT, None)]))
    assert only(g, "elementwise").func == "relu"


def test_axis_extent_sanity():
    # guards the affine notation the conv tests rely on
    assert str(Axis.affine({"p": 2, "r": 2}, -1)) == "2*p+2*r-1"


def test_gqa_packed_rotary_sliding_window_on_shared_buffer():
    # decode 1 token; packed Q|K|V; the cache buffer holds 20 positions, 15 are valid, and a
    # window of 7 attends the last 7 + 1: QK^T MACs = 1 * 8 heads * 1 * 8 * 16 = 1024
    B, S, H, KV, D, P = 1, 1, 8, 2, 16, 20
    node = h.make_node("GroupQueryAttention",
                       ["qkv", "", "", "past_key", "past_value", "seqlens_k", "total",
                        "cos", "sin"], ["o", "present_key", "present_value"],
                       domain="com.microsoft", name="gqa", num_heads=H, kv_num_heads=KV,
                       do_rotary=1, local_window_size=7)
    ins = [vi("qkv", T.FLOAT16, [B, S, (H + 2 * KV) * D]),
           vi("past_key", T.FLOAT16, [B, KV, P, D]), vi("past_value", T.FLOAT16, [B, KV, P, D]),
           vi("seqlens_k", T.INT32, [B])]
    inits = [nh.from_array(np.array(15, np.int32), "total"),
             zeros("cos", (32, D // 2), np.float16), zeros("sin", (32, D // 2), np.float16)]
    g = load_onnx(model([node], ins, [vi(x, T.FLOAT16, None) for x in
                                      ("o", "present_key", "present_value")], inits,
                        opsets=(("", 17), ("com.microsoft", 1))))
    qk = g.op("gqa/qk")
    assert qk.macs == 1024 and dict(qk.dims)["t"] == 8
    window = qk.operands[1].tensor
    assert window.shape == (1, 2, 8, 16) and g.aliases[window.name] == "present_key"
    assert ("gqa/k_append", "gqa/qk") in g.nx.edges  # the view depends on the cache write
    assert g.tensors["cos"].role == Role.CONSTANT and g.parameters == 0  # a table, not weights
    assert g.bytes_by_role()["kv_cache"] == 4 * (1 * 2 * 20 * 16 * 2)  # views not counted
    assert g.op("gqa/rotary_q").inputs[0].name == "qkv"
