"""The LLM builder's standard ONNX (npusim/graphs/builder.py) lowers with exact counts."""
from __future__ import annotations

import time

import pytest

from npusim.frontend import load_onnx
from npusim.ir import Role

builder = pytest.importorskip("npusim.graphs.builder")


def _attention_macs(g) -> int:
    return sum(op.macs for op in g.ops()
               if op.kind == "contraction" and op.name.endswith(("qk_matmul", "pv_matmul")))


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-llama-tied", "tiny-moe", "tiny-exaone4"])
@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_tiny_models_lower_with_builder_parameter_count(name, phase):
    kw = {"seq": 7} if phase == "prefill" else {"kv_len": 5}
    g = load_onnx(builder.build_llm(name, phase, 2, dtype="fp32", **kw))
    assert g.parameters == builder.count_parameters(name)
    assert not g.warnings
    if phase == "decode":
        assert g.tensors["past_key_values.0.key"].role == Role.KV_CACHE
        assert any(op.kind == "movement" and op.func == "kv_append" for op in g.ops())


def test_decode_attention_macs_follow_gqa_formula():
    # tiny-llama: 2 layers, 4 query heads on 2 KV heads, head 16; decode 1 token after 5
    s = builder.resolve("tiny-llama")
    B, kv = 3, 5
    g = load_onnx(builder.build_llm("tiny-llama", "decode", B, kv_len=kv, dtype="fp32"))
    per_layer = B * s.heads * 1 * (kv + 1) * s.head_dim  # batch*heads*q_len*kv_len*head_dim
    assert _attention_macs(g) == 2 * s.layers * per_layer


def test_llama_8b_decode_lowers_fast_without_weights():
    start = time.perf_counter()
    m = builder.build_llm("llama-3.1-8b", "decode", 1, kv_len=128, dtype="bf16")
    g = load_onnx(m)
    assert time.perf_counter() - start < 5.0
    assert g.parameters == builder.count_parameters("llama-3.1-8b") == 8_030_261_248
    # one token: a MAC per non-embedding weight (the embedding is a gather), plus attention
    s = builder.resolve("llama-3.1-8b")
    dense = g.parameters - s.vocab * s.hidden - (2 * s.layers + 1) * s.hidden  # minus norms
    assert g.macs == dense + 2 * s.layers * s.heads * 129 * s.head_dim
    assert g.bytes_by_role()["weight"] == 2 * g.parameters
