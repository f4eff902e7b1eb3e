"""Parts of an LLM step (dense layer, attention core, head) and tensor parallelism in the
graph builder, checked by MAC and byte counts computed by hand and by running tiny graphs."""
from __future__ import annotations

import importlib
import json
import math

import numpy as np
import onnx
import pytest

from npusim.errors import ModelError
from npusim.frontend import load_onnx
from npusim.ir import Collective, Contraction, Role

B = importlib.import_module("npusim.graphs.builder")
TINY = ["tiny-llama", "tiny-llama-tied", "tiny-moe", "tiny-exaone4"]
BF16 = 2  # bytes


def _ir(name, phase="decode", batch=1, **kw):
    return load_onnx(B.build_llm(name, phase, batch, **kw))


def _dims(vi) -> list[int]:
    return [d.dim_value for d in vi.type.tensor_type.shape.dim]


def json_meta(m):
    return {p.key[len("npusim."):]: json.loads(p.value) for p in m.metadata_props}


def _parts_macs(name, batch, q_len, kv_len, phase):
    """MACs of dense x layers + attention x layers + head for one step of `batch` sequences."""
    s = B.resolve(name)
    tokens = batch * q_len
    total = 0
    for i in range(s.layers):
        total += _ir(name, phase, 1, seq=tokens, part="dense", layer=i).macs
        total += _ir(name, phase, batch, seq=q_len if phase == "prefill" else None,
                     kv_len=kv_len, part="attention", layer=i).macs
    return total + _ir(name, phase, batch, seq=tokens, part="head").macs


# -- expected experts ---------------------------------------------------------------------
def test_expected_experts_by_hand():
    # ceil(E * (1 - (1 - k/E)^T))
    assert B.expected_experts(128, 4, 1) == 4
    assert B.expected_experts(128, 4, 2) == 8          # 128 * (1 - (31/32)^2) = 7.875
    assert B.expected_experts(128, 4, 3) == 12         # 11.63...
    assert B.expected_experts(4, 2, 2) == 3            # exactly 4 * 3/4
    assert B.expected_experts(4, 2, 3) == 4            # 3.5
    assert B.expected_experts(128, 4, 10_000) == 128
    assert B.expected_experts(128, 4, 0) == 0
    counts = [B.expected_experts(128, 4, t) for t in range(1, 300)]
    assert counts == sorted(counts) and all(c <= 4 * t for t, c in enumerate(counts, 1))
    with pytest.raises(ValueError, match="top_k"):
        B.expected_experts(4, 5, 1)


# -- dense part ---------------------------------------------------------------------------
def test_dense_part_llama_8b_is_tokens_times_layer_parameters():
    d, kv, f, t = 4096, 1024, 14336, 7
    per_layer = d * d + 2 * d * kv + d * d + 3 * d * f          # matrices, not norms
    m = B.build_llm("llama-3.1-8b", "decode", 1, seq=t, part="dense", layer=5)
    assert _dims(m.graph.input[0]) == [1, t, d]
    assert {o.name: _dims(o) for o in m.graph.output} == {
        "hidden_out": [1, t, d], "k_new": [1, 8, t, 128], "v_new": [1, 8, t, 128]}
    g = load_onnx(m)
    assert g.macs == t * per_layer
    assert g.parameters == per_layer + 2 * d
    # The core is gone: no matmul between activations only.
    assert not [op for op in g.ops() if "qk_matmul" in op.name or "pv_matmul" in op.name]


def test_dense_part_tiny_by_hand():
    # tiny-llama: d 64, 4 heads x 16, 2 KV heads, intermediate 128
    assert _ir("tiny-llama", seq=5, part="dense").macs == 5 * (64 * 64 * 2 + 2 * 64 * 32 +
                                                                3 * 64 * 128)
    # tiny-moe: router 64x4, top-2 of 4 experts of intermediate 32
    t = 5
    attn = 64 * 64 * 2 + 2 * 64 * 32
    assert _ir("tiny-moe", seq=t, part="dense").macs == t * (attn + 64 * 4 + 2 * 3 * 64 * 32)


def test_dense_moe_costs_expected_experts_gpt_oss():
    d = f = 2880
    t = 3                                                   # u = 12 of 128 experts
    m = B.build_llm("gpt-oss-120b", "prefill", 1, seq=t, part="dense", layer=0)
    assert json_meta(m)["expected_experts"] == 12
    assert "TopK" not in {n.op_type for n in m.graph.node}
    g = load_onnx(m)
    experts = [op for op in g.ops() if isinstance(op, Contraction) and ".experts." in op.name]
    assert len(experts) == 3                                # 12 experts x 1 row: one group
    for op in experts:
        w = [o.tensor for o in op.operands if o.tensor.role == Role.WEIGHT]
        assert [x.shape for x in w] == [(12, d, f)]         # gathered from resident [128, d, f]
        assert w[0].nbytes == 12 * d * f * BF16             # weight traffic: u experts
        assert op.macs == t * 4 * d * f                     # T*k per-expert products
    router = g.op("model.layers.0.mlp.router")
    assert router.macs == t * d * 128


def test_dense_moe_uneven_groups_keep_macs_exact():
    # tiny-moe, T = 3: u = ceil(4 * (1 - 1/8)) = 4 experts for 6 pairs -> 2 experts x 2 rows
    # and 2 experts x 1 row.
    g = _ir("tiny-moe", seq=3, part="dense", layer=1)
    ups = sorted((op.name, op.output.tensor.shape) for op in g.ops()
                 if op.name.endswith(".up_proj") and "experts" in op.name)
    assert ups == [("model.layers.1.mlp.experts.g0.up_proj", (2, 2, 32)),
                   ("model.layers.1.mlp.experts.g1.up_proj", (2, 1, 32))]
    expert_macs = sum(op.macs for op in g.ops() if ".experts." in op.name)
    assert expert_macs == 3 * 2 * 3 * 64 * 32
    weights = {t.name: t.shape for t in g.tensors.values() if t.role == Role.WEIGHT
               and "experts" in t.name and t.name.endswith("gather")}
    assert sum(math.prod(s) for s in weights.values()) == 3 * 4 * 64 * 32   # u = 4 experts


# -- attention part -----------------------------------------------------------------------
@pytest.mark.parametrize("phase,batch,q_len,kv_len", [
    ("decode", 3, 1, 500), ("prefill", 2, 64, 0), ("prefill", 2, 16, 100)])
def test_attention_part_llama_8b(phase, batch, q_len, kv_len):
    m = B.build_llm("llama-3.1-8b", phase, batch, seq=q_len if phase == "prefill" else None,
                    kv_len=kv_len or None, part="attention", layer=3)
    ins = {i.name: _dims(i) for i in m.graph.input}
    assert ins["q"] == [batch, 32, q_len, 128] and ins["k_new"] == [batch, 8, q_len, 128]
    assert ins.get("past_key_values.3.key") == ([batch, 8, kv_len, 128] if kv_len else None)
    outs = {o.name: _dims(o) for o in m.graph.output}
    assert outs["attn_output"] == [batch, 32, q_len, 128]
    assert outs["present.3.value"] == [batch, 8, kv_len + q_len, 128]
    g = load_onnx(m)
    assert g.macs == batch * 32 * q_len * (kv_len + q_len) * 128 * 2
    assert g.parameters == 0
    masked = any("causal_mask" in op.name for op in g.ops())
    assert masked == (q_len > 1)


def test_sliding_window_caps_the_attention_part():
    # gpt-oss: layer 0 slides over 128 tokens, layer 1 is global; 64 heads of 64, 8 KV heads.
    slide = _ir("gpt-oss-120b", "decode", 2, kv_len=1000, part="attention", layer=0)
    full = _ir("gpt-oss-120b", "decode", 2, kv_len=1000, part="attention", layer=1)
    assert slide.tensors["past_key_values.0.key"].shape == (2, 8, 128, 64)
    assert slide.macs == 2 * 64 * 1 * (128 + 1) * 64 * 2
    assert full.macs == 2 * 64 * 1 * (1000 + 1) * 64 * 2
    assert slide.tensors["model.layers.0.self_attn.k_cache_window"].shape == (2, 8, 128, 64)
    assert any("sinks" in op.name for op in slide.ops())
    # the full cache holds one more token than the window: the oldest slot is masked out
    assert any("causal_mask" in op.name for op in slide.ops())
    chunk = _ir("gpt-oss-120b", "prefill", 1, seq=32, kv_len=1000, part="attention", layer=0)
    assert chunk.macs == 64 * 32 * (128 + 32) * 64 * 2


def _attention_reference(q, k_new, v_new, pk, pv, kv_len, window, sinks):
    """Plain numpy attention with absolute positions, for the attention part."""
    b, h, s, d = q.shape
    kvh = k_new.shape[1]
    k = np.concatenate([pk, k_new], axis=2) if pk is not None else k_new
    v = np.concatenate([pv, v_new], axis=2) if pv is not None else v_new
    past = 0 if pk is None else pk.shape[2]
    qpos = kv_len + np.arange(s)[:, None]
    kpos = kv_len - past + np.arange(past + s)[None, :]
    ok = (kpos <= qpos) & ((qpos - kpos < window) if window else True)
    out = np.empty_like(q)
    for head in range(h):
        kv = head // (h // kvh)
        sc = q[:, head] @ k[:, kv].transpose(0, 2, 1) / math.sqrt(d)
        sc = np.where(ok, sc, -np.inf)
        mx = sc.max(-1, keepdims=True)
        e = np.exp(sc - mx)
        den = e.sum(-1, keepdims=True) + (np.exp(sinks[head] - mx) if sinks is not None else 0)
        out[:, head] = (e / den) @ v[:, kv]
    return out


@pytest.mark.parametrize("name,layer,phase,q_len,kv_len", [
    ("tiny-llama", 1, "prefill", 5, 0), ("tiny-llama", 0, "prefill", 4, 6),
    ("tiny-moe", 0, "prefill", 3, 11), ("tiny-moe", 0, "decode", 1, 11),
    ("tiny-moe", 1, "decode", 1, 11), ("tiny-exaone4", 2, "prefill", 4, 9)])
def test_attention_part_matches_numpy(ort_run, name, layer, phase, q_len, kv_len):
    m = B.build_llm(name, phase, 2, seq=q_len if phase == "prefill" else None,
                    kv_len=kv_len or None, part="attention", layer=layer, dtype="fp32")
    onnx.checker.check_model(m, full_check=True)
    rng = np.random.default_rng(3)
    feed = {i.name: rng.standard_normal(_dims(i)).astype(np.float32) for i in m.graph.input}
    out = ort_run(m, feed)
    s = B.resolve(name)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    sinks = inits.get(f"model.layers.{layer}.self_attn.sinks")
    ref = _attention_reference(feed["q"], feed["k_new"], feed["v_new"],
                               feed.get(f"past_key_values.{layer}.key"),
                               feed.get(f"past_key_values.{layer}.value"), kv_len,
                               s.window if s.is_sliding(layer) else None, sinks)
    np.testing.assert_allclose(out["attn_output"], ref, rtol=1e-4, atol=1e-5)


# -- head part ----------------------------------------------------------------------------
def test_head_part_by_hand():
    m = B.build_llm("llama-3.1-8b", "decode", 6, seq=40, part="head")
    assert {i.name: _dims(i) for i in m.graph.input} == {"hidden_states": [1, 6, 4096],
                                                        "input_ids": [1, 40]}
    assert {o.name: _dims(o) for o in m.graph.output} == {"logits": [1, 6, 128256],
                                                         "inputs_embeds": [1, 40, 4096]}
    g = load_onnx(m)
    assert g.macs == 6 * 4096 * 128256
    gather = g.op("model.embed_tokens")
    assert gather.bytes == 40 * 8 + 2 * 40 * 4096 * BF16       # ids + rows read + written
    tied = _ir("tiny-llama-tied", batch=3, part="head")        # seq defaults to batch
    assert tied.macs == 3 * 64 * 256
    assert tied.parameters == 256 * 64 + 64                     # one table, and the norm


# -- parts add up to the whole step -------------------------------------------------------
@pytest.mark.parametrize("name", TINY)
def test_parts_sum_to_full_graph_tiny(name):
    assert _parts_macs(name, 3, 1, 20, "decode") == _ir(name, "decode", 3, kv_len=20).macs
    assert _parts_macs(name, 2, 10, 0, "prefill") == _ir(name, "prefill", 2, seq=10).macs
    assert _parts_macs(name, 2, 4, 9, "prefill") == _ir(name, "prefill", 2, seq=4,
                                                        kv_len=9).macs


def test_parts_sum_to_full_graph_llama_8b():
    layers, bsz, k = 32, 4, 300
    dense = _ir("llama-3.1-8b", seq=bsz, part="dense").macs
    attn = _ir("llama-3.1-8b", "decode", bsz, kv_len=k, part="attention").macs
    head = _ir("llama-3.1-8b", "decode", bsz, part="head").macs
    assert layers * (dense + attn) + head == _ir("llama-3.1-8b", "decode", bsz, kv_len=k).macs
    dense = _ir("llama-3.1-8b", seq=2 * 50, part="dense").macs
    attn = _ir("llama-3.1-8b", "prefill", 2, seq=50, part="attention").macs
    head = _ir("llama-3.1-8b", "prefill", 2, seq=100, part="head").macs
    assert layers * (dense + attn) + head == _ir("llama-3.1-8b", "prefill", 2, seq=50).macs


# -- tensor parallelism -------------------------------------------------------------------
def _by_name(g):
    return {op.name: op for op in g.ops()}


def test_tp2_halves_projection_macs_and_adds_collectives():
    t, d = 6, 4096
    one = _by_name(_ir("llama-3.1-8b", seq=t, part="dense", layer=2))
    two = _by_name(_ir("llama-3.1-8b", seq=t, part="dense", layer=2, tp=2))
    for proj in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                 "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"):
        name = f"model.layers.2.{proj}"
        assert two[name].macs * 2 == one[name].macs, proj
    coll = {op.name: op for op in two.values() if isinstance(op, Collective)}
    assert set(coll) == {"model.layers.2.self_attn.o_proj.all_reduce",
                         "model.layers.2.mlp.down_proj.all_reduce"}
    for op in coll.values():
        assert (op.func, op.group, op.payload_bytes) == ("all_reduce", 2, t * d * BF16)
        assert op.outputs[0].shape == (1, t, d)
    assert not [op for op in one.values() if isinstance(op, Collective)]


def test_tp_full_graph_and_head_collectives():
    m = B.build_llm("llama-3.1-8b", "decode", 3, kv_len=64, tp=4)
    assert [(o.domain, o.version) for o in m.opset_import] == [("", B.OPSET), ("ai.npusim", 1)]
    assert {n.op_type for n in m.graph.node if n.domain == "ai.npusim"} == {"AllReduce",
                                                                             "AllGather"}
    ins = {i.name: _dims(i) for i in m.graph.input}
    assert ins["past_key_values.0.key"] == [3, 2, 64, 128]           # 8 KV heads / 4
    g = load_onnx(m)
    coll = [op for op in g.ops() if isinstance(op, Collective)]
    assert len(coll) == 2 * 32 + 2                                  # 2 per layer, embed, head
    gather = [op for op in coll if op.func == "all_gather"]
    assert len(gather) == 1 and gather[0].payload_bytes == 3 * (128256 // 4) * BF16
    assert gather[0].outputs[0].shape == (3, 1, 128256)
    assert g.op("lm_head").macs == 3 * 4096 * 128256 // 4
    assert g.macs * 4 < _ir("llama-3.1-8b", "decode", 3, kv_len=64).macs * 1.01
    per_chip = B.count_parameters(m)
    d, f, v = 4096, 14336, 128256
    assert per_chip == 2 * (v // 4) * d + d + 32 * (2 * d * d // 4 + 2 * d * 256 +
                                                     3 * d * f // 4 + 2 * d)


def test_tp_replicates_kv_heads_and_shards_experts():
    m = B.build_llm("llama-3.1-8b", "decode", 1, kv_len=10, part="attention", tp=16)
    assert {i.name: _dims(i) for i in m.graph.input}["k_new"] == [1, 1, 1, 128]
    assert json_meta(m)["heads_per_chip"] == 2 and json_meta(m)["kv_heads_per_chip"] == 1
    one = _ir("gpt-oss-120b", seq=2, part="dense", layer=1)
    two = _ir("gpt-oss-120b", seq=2, part="dense", layer=1, tp=2)
    up1, up2 = one.op("model.layers.1.mlp.experts.up_proj"), two.op(
        "model.layers.1.mlp.experts.up_proj")
    assert up1.macs == 2 * up2.macs == 2 * 4 * 2880 * 2880
    assert up2.output.tensor.shape == (8, 1, 1440)                   # u = 8 experts, f / 2
    assert two.op("model.layers.1.mlp.all_reduce").payload_bytes == 2 * 2880 * BF16


@pytest.mark.parametrize("name,tp,match", [("llama-3.1-8b", 3, "32 attention heads"),
                                           ("tiny-llama", 8, "4 attention heads"),
                                           ("llama-3.1-8b", 0, "tp")])
def test_tp_must_divide_heads(name, tp, match):
    with pytest.raises(ValueError, match=match) as e:
        B.build_llm(name, "decode", 1, kv_len=4, tp=tp)
    if tp:
        assert f"tp={tp}" in str(e.value)


def test_tp_graphs_are_valid_onnx():
    for part, kw in (("all", dict(kv_len=9)), ("dense", dict(seq=3)),
                     ("attention", dict(kv_len=9)), ("head", {})):
        m = B.build_llm("tiny-moe", "decode", 1 if part == "dense" else 2, part=part, tp=2,
                        dtype="fp32", **kw)
        onnx.checker.check_model(m, full_check=True)
        B.check(B.build_llm("gpt-oss-120b", "decode", 1 if part == "dense" else 2, part=part,
                            tp=2, **kw))


def test_collective_lowering_rejects_bad_group():
    from onnx import TensorProto as T, helper
    node = helper.make_node("AllGather", ["x"], ["y"], name="ag", domain="ai.npusim", group=0)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", T.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", T.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 23),
                                            helper.make_opsetid("ai.npusim", 1)])
    with pytest.raises(ModelError, match="'ag'.*group"):
        load_onnx(m)
    m.graph.node[0].attribute[0].i = 3
    op = next(iter(load_onnx(m).ops()))
    assert (op.func, op.group, op.payload_bytes, op.outputs[0].shape) == \
        ("all_gather", 3, 24.0, (2, 9))


# -- bad arguments ------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,match", [
    (dict(phase="decode", batch=1, kv_len=4, part="mlp"), "part"),
    (dict(phase="decode", batch=1, kv_len=4, part="attention", layer=2), "0..1"),
    (dict(phase="decode", batch=1, kv_len=4, layer=1), "layer"),
    (dict(phase="decode", batch=2, seq=4, part="dense"), "batch=1"),
    (dict(phase="decode", batch=1, part="dense"), "seq = T"),
    (dict(phase="decode", batch=1, part="attention"), "kv_len"),
])
def test_bad_part_arguments_are_clear(kwargs, match):
    with pytest.raises(ValueError, match=match):
        B.build_llm("tiny-llama", **kwargs)


# -- tiny graphs still run ----------------------------------------------------------------
@pytest.mark.parametrize("name", TINY)
def test_chunked_prefill_matches_one_prefill(ort_run, name):
    # 7 + 5 tokens in two chunks (past the window of 8 on sliding layers) = one prefill of 12.
    ids = np.random.default_rng(5).integers(0, 256, (2, 12))
    full = ort_run(B.build_llm(name, "prefill", 2, 12, dtype="fp32"), {"input_ids": ids})
    first = ort_run(B.build_llm(name, "prefill", 2, 7, dtype="fp32"), {"input_ids": ids[:, :7]})
    feed = {"input_ids": ids[:, 7:]}
    feed.update({"past_key_values." + k[len("present."):]: v for k, v in first.items()
                 if k.startswith("present.")})
    chunk = ort_run(B.build_llm(name, "prefill", 2, 5, kv_len=7, dtype="fp32"), feed)
    for key, value in chunk.items():
        np.testing.assert_allclose(value, full[key], atol=1e-3)


@pytest.mark.parametrize("name", TINY)
def test_tiny_parts_run(ort_run, name):
    rng = np.random.default_rng(1)
    for part, kw in (("dense", dict(batch=1, seq=5)), ("head", dict(batch=2, seq=3)),
                     ("all", dict(batch=2, kv_len=3))):
        m = B.build_llm(name, "decode", part=part, dtype="fp32", **kw)
        onnx.checker.check_model(m, full_check=True)
        feed = {i.name: (rng.integers(0, 256, _dims(i)) if i.type.tensor_type.elem_type ==
                         onnx.TensorProto.INT64 else
                         rng.standard_normal(_dims(i)).astype(np.float32))
                for i in m.graph.input}
        out = ort_run(m, feed)
        assert all(np.isfinite(v).all() for v in out.values())
        if part == "head":
            table = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
            np.testing.assert_allclose(out["inputs_embeds"][0],
                                       table["model.embed_tokens.weight"][feed["input_ids"][0]])
