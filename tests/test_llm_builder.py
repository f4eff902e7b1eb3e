"""The LLM graph builder (npusim/graphs/builder.py): configs, parameter counts, ONNX shapes, and
tiny models run in onnxruntime with a real KV path."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest

from npusim.graphs import builder as B

ROOT = Path(__file__).resolve().parents[1]

PUBLISHED = {  # billions, as published (sources in each config's _npusim block)
    "llama-3.1-8b": 8.03, "llama-3.1-70b": 70.6, "llama-3.1-405b": 405.9,
    "llama-3.3-70b": 70.6, "exaone-3.5-32b": 32.0, "exaone-4.0-32b": 32.0,
    "gpt-oss-120b": 116.8, "gpt-oss-20b": 20.9,
}
TINY = ["tiny-llama", "tiny-llama-tied", "tiny-moe", "tiny-exaone4"]


def _dims(vi) -> list[int]:
    return [d.dim_value for d in vi.type.tensor_type.shape.dim]


def _shapes(values) -> dict[str, list[int]]:
    return {v.name: _dims(v) for v in values}


# -- configs ------------------------------------------------------------------------------
def test_list_models_has_every_shipped_config():
    assert set(PUBLISHED) | set(TINY) <= set(B.list_models())


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="llama-3.1-8b"):
        B.load_config("llama-9")


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_config_cites_sources(name):
    meta = B.load_config(name)["_npusim"]
    assert meta["source"].startswith("http")
    assert meta["published_params"] == pytest.approx(PUBLISHED[name] * 1e9)
    assert meta["published_params_source"]


def test_configs_are_plain_json_with_hf_keys():
    path = ROOT / "npusim" / "graphs" / "configs" / "gpt-oss-120b.json"
    cfg = json.loads(path.read_text())
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
            cfg["num_key_value_heads"], cfg["head_dim"], cfg["vocab_size"]) == \
        (2880, 36, 64, 8, 64, 201088)
    assert (cfg["num_local_experts"], cfg["num_experts_per_tok"], cfg["sliding_window"]) == \
        (128, 4, 128)
    assert cfg["layer_types"][:2] == ["sliding_attention", "full_attention"]
    exa = B.load_config("exaone-4.0-32b")
    assert exa["layer_types"][:8] == ["sliding_attention"] * 3 + ["full_attention"] + \
        ["sliding_attention"] * 3 + ["full_attention"]
    assert exa["sliding_window"] == 4096


# -- parameter counts ---------------------------------------------------------------------
def test_llama_8b_count_by_hand():
    d, f, v, layers = 4096, 14336, 128256, 32
    per_layer = d * d + 2 * d * 1024 + d * d + 3 * d * f + 2 * d
    assert B.count_parameters("llama-3.1-8b") == layers * per_layer + 2 * v * d + d


def test_gpt_oss_count_by_hand():
    d, e, f, v, layers = 2880, 128, 2880, 201088, 36
    attn = (d * 4096 + 4096) + 2 * (d * 512 + 512) + (4096 * d + d) + 64
    moe = d * e + e + e * (2 * (d * f + f) + f * d + d)
    assert B.count_parameters("gpt-oss-120b") == layers * (attn + moe + 2 * d) + 2 * v * d + d


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_counts_match_published_sizes(name):
    n = B.count_parameters(name)
    assert abs(n / (PUBLISHED[name] * 1e9) - 1) < 0.01
    built = B.build_llm(name, "decode", batch=1, kv_len=16)
    assert B.count_parameters(built) == n
    # Every initializer is a parameter: constants are Constant nodes, not initializers.
    assert sum(math.prod(t.dims) for t in built.graph.initializer) == n


def test_big_models_are_not_materialized():
    m = B.build_llm("llama-3.1-405b", "prefill", batch=1, seq=128)
    assert m.ByteSize() < 5_000_000
    for t in m.graph.initializer:
        assert t.data_location == onnx.TensorProto.EXTERNAL
        assert not t.raw_data
        assert dict((e.key, e.value) for e in t.external_data)["location"] == \
            B.EXTERNAL_LOCATION
    assert m.graph.initializer[0].data_type == onnx.TensorProto.BFLOAT16
    # onnx.checker itself wants to open the (never written) external file ...
    with pytest.raises(onnx.checker.ValidationError, match="not-materialized"):
        onnx.checker.check_model(m)
    # ... so B.check validates the graph with those initializers as typed inputs.
    B.check(m)


# -- graph interface ----------------------------------------------------------------------
def test_prefill_interface_llama_8b():
    m = B.build_llm("llama-3.1-8b", "prefill", batch=2, seq=100)
    assert _shapes(m.graph.input) == {"input_ids": [2, 100]}
    outs = _shapes(m.graph.output)
    assert outs["logits"] == [2, 1, 128256]
    assert outs["present.0.key"] == outs["present.31.value"] == [2, 8, 100, 128]
    assert len(outs) == 1 + 2 * 32
    assert m.opset_import[0].domain == "" and m.opset_import[0].version == B.OPSET
    assert {n.domain for n in m.graph.node} == {""}
    names = {n.name for n in m.graph.node}
    assert {"model.layers.3.self_attn.q_proj", "model.layers.31.mlp.down_proj",
            "model.embed_tokens", "lm_head"} <= names


def test_decode_interface_llama_8b():
    m = B.build_llm("llama-3.1-8b", "decode", batch=3, kv_len=500)
    ins = _shapes(m.graph.input)
    assert ins["input_ids"] == [3, 1]
    assert ins["past_key_values.0.key"] == ins["past_key_values.31.value"] == [3, 8, 500, 128]
    outs = _shapes(m.graph.output)
    assert outs["logits"] == [3, 1, 128256]
    assert outs["present.7.key"] == [3, 8, 501, 128]


def test_gqa_keeps_one_copy_of_kv():
    m = B.build_llm("llama-3.1-8b", "decode", batch=1, kv_len=64)
    ops = {n.op_type for n in m.graph.node}
    assert "Expand" not in ops and "Tile" not in ops
    shapes = _shapes(onnx.shape_inference.infer_shapes(_stripped(m)).graph.value_info)
    # q as [b, kv_heads, group, s, d] against k as [b, kv_heads, 1, d, T]
    assert shapes["model.layers.0.self_attn.q_scale"] == [1, 8, 4, 1, 128]
    assert shapes["model.layers.0.self_attn.qk_matmul"] == [1, 8, 4, 1, 65]


def _stripped(m):
    """The graph with unmaterialized initializers turned into inputs, for shape inference."""
    copy = onnx.ModelProto()
    copy.CopyFrom(m)
    ext = list(copy.graph.initializer)
    del copy.graph.initializer[:]
    copy.graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                            for t in ext)
    return copy


@pytest.mark.parametrize("name,window,pattern", [
    ("exaone-4.0-32b", 4096, [True, True, True, False]),
    ("gpt-oss-120b", 128, [True, False]),
])
def test_sliding_layers_cap_the_cache(name, window, pattern):
    cfg = B.load_config(name)
    layers, kvh, hd = cfg["num_hidden_layers"], cfg["num_key_value_heads"], cfg["head_dim"]
    m = B.build_llm(name, "decode", batch=2, kv_len=10_000)
    ins, outs = _shapes(m.graph.input), _shapes(m.graph.output)
    for i in range(layers):
        sliding = pattern[i % len(pattern)]
        assert ins[f"past_key_values.{i}.key"] == [2, kvh, window if sliding else 10_000, hd]
        assert outs[f"present.{i}.value"] == [2, kvh, window if sliding else 10_001, hd]
    short = _shapes(B.build_llm(name, "decode", batch=1, kv_len=50).graph.input)
    assert short["past_key_values.0.key"][2] == 50          # shorter than the window
    pre = _shapes(B.build_llm(name, "prefill", batch=1, seq=5000).graph.output)
    assert pre["present.0.key"][2] == window and pre[f"present.{len(pattern) - 1}.key"][2] == 5000


def test_exaone4_global_layers_skip_rope_and_have_qk_norm():
    m = B.build_llm("exaone-4.0-32b", "decode", batch=1, kv_len=8)
    names = {n.name for n in m.graph.node}
    assert "model.layers.0.self_attn.q_rope" in names
    assert "model.layers.3.self_attn.q_rope" not in names
    assert {"model.layers.3.self_attn.q_norm", "model.layers.3.self_attn.k_norm"} <= names


def test_moe_computes_only_k_experts():
    m = B.build_llm("gpt-oss-120b", "decode", batch=4, kv_len=32)
    inferred = onnx.shape_inference.infer_shapes(_stripped(m))
    shapes = _shapes(inferred.graph.value_info)
    p = "model.layers.0.mlp"
    assert shapes[f"{p}.topk:1"] == [4, 4]                           # [tokens, k] indices
    assert shapes[f"{p}.experts.gate_proj.gather"] == [4, 4, 2880, 2880]  # k of 128 experts
    assert shapes[f"{p}.experts.gate_proj"] == [4, 4, 1, 2880]
    assert shapes[f"{p}.experts.down_proj"] == [4, 4, 1, 2880]
    init = {t.name: list(t.dims) for t in m.graph.initializer}
    assert init[f"{p}.experts.gate_proj.weight"] == [128, 2880, 2880]   # all resident
    assert init["model.layers.0.self_attn.sinks"] == [64]
    topk = next(n for n in m.graph.node if n.name == f"{p}.topk")
    assert topk.op_type == "TopK"


# -- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,match", [
    (dict(phase="train", batch=1, seq=4), "phase"),
    (dict(phase="prefill", batch=1), "seq"),
    (dict(phase="decode", batch=1), "kv_len"),
    (dict(phase="decode", batch=1, seq=4, kv_len=3), "one token"),
    (dict(phase="prefill", batch=0, seq=4), "batch"),
    (dict(phase="prefill", batch=1, seq=4, dtype="int3"), "dtype"),
])
def test_bad_arguments_are_clear(kwargs, match):
    with pytest.raises(ValueError, match=match):
        B.build_llm("tiny-llama", **kwargs)


def test_bad_config_names_the_key():
    cfg = dict(B.load_config("tiny-llama"), num_key_value_heads=3)
    with pytest.raises(ValueError, match="num_key_value_heads"):
        B.build_llm(cfg, "prefill", batch=1, seq=4)
    cfg = {k: v for k, v in B.load_config("tiny-llama").items() if k != "hidden_size"}
    with pytest.raises(ValueError, match="hidden_size"):
        B.count_parameters(cfg)


def test_exaone35_original_key_names_are_accepted():
    cfg = B.load_config("exaone-3.5-32b")
    raw = {("num_layers" if k == "num_hidden_layers" else k): v for k, v in cfg.items()}
    assert B.count_parameters(raw) == B.count_parameters(cfg)


# -- tiny models run in onnxruntime -------------------------------------------------------
@pytest.mark.parametrize("name", TINY)
def test_tiny_decode_matches_prefill(ort_run, name):
    n, batch = 12, 2                        # 12 > window 8: sliding caches really are capped
    ids = np.random.default_rng(7).integers(0, 256, (batch, n))
    graphs = {"full": B.build_llm(name, "prefill", batch, n, dtype="fp32"),
              "head": B.build_llm(name, "prefill", batch, n - 1, dtype="fp32"),
              "step": B.build_llm(name, "decode", batch, kv_len=n - 1, dtype="fp32")}
    for g in graphs.values():
        assert g.graph.initializer[0].raw_data            # tiny models carry real weights
        onnx.checker.check_model(g, full_check=True)
    full = ort_run(graphs["full"], {"input_ids": ids})
    head = ort_run(graphs["head"], {"input_ids": ids[:, :-1]})
    feed = {"input_ids": ids[:, -1:]}
    feed.update({"past_key_values." + k[len("present."):]: v for k, v in head.items()
                 if k.startswith("present.")})
    step = ort_run(graphs["step"], feed)
    assert np.isfinite(full["logits"]).all() and full["logits"].std() > 0.1
    np.testing.assert_allclose(step["logits"], full["logits"], atol=1e-3)
    for key, value in step.items():          # the new cache equals the longer prefill's
        np.testing.assert_allclose(value, full[key], atol=1e-3)


def test_sliding_mask_by_hand(ort_run):
    # Decode at position 11 with window 8: the cache holds positions 3..10 and the new token
    # may see positions 4..11 only, so the oldest cached slot is masked out.
    m = B.build_llm("tiny-moe", "decode", 1, kv_len=11, dtype="fp32")
    m.graph.output.append(onnx.helper.make_tensor_value_info(
        "mask.sliding.allowed", onnx.TensorProto.BOOL, None))
    m.graph.output.append(onnx.helper.make_tensor_value_info(
        "mask.full.causal", onnx.TensorProto.BOOL, None))
    feed = {"input_ids": np.zeros((1, 1), np.int64)}
    for i, length in enumerate([8, 11, 8, 11]):
        for kind in ("key", "value"):
            feed[f"past_key_values.{i}.{kind}"] = np.zeros((1, 2, length, 16), np.float32)
    out = ort_run(m, feed)
    assert out["mask.sliding.allowed"].tolist() == [[False] + [True] * 8]
    assert out["mask.full.causal"].tolist() == [[True] * 12]


def test_prefill_sliding_mask_by_hand(ort_run):
    m = B.build_llm("tiny-moe", "prefill", 1, 10, dtype="fp32")
    m.graph.output.append(onnx.helper.make_tensor_value_info(
        "mask.sliding.allowed", onnx.TensorProto.BOOL, None))
    allowed = ort_run(m, {"input_ids": np.zeros((1, 10), np.int64)})["mask.sliding.allowed"]
    q, k = np.arange(10)[:, None], np.arange(10)[None, :]
    np.testing.assert_array_equal(allowed, (k <= q) & (q - k < 8))


def test_materialize_switch():
    assert B.build_llm("tiny-llama", "prefill", 1, 4).graph.initializer[0].raw_data
    lean = B.build_llm("tiny-llama", "prefill", 1, 4, materialize=False)
    assert lean.graph.initializer[0].data_location == onnx.TensorProto.EXTERNAL
    B.check(lean)
