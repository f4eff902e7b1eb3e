"""Qwen3-4B and GPT-J 6B as built-in LLMs (issue 12, rows R5, R6, K8): configs, parameter
counts, the per-layer op census that shows their features, simulation on the NPUs, and tiny
variants checked in onnxruntime against a NumPy forward pass written from the models'
published definitions (Hugging Face Qwen3 and GPT-J)."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import onnx
import pytest

from npusim.graphs import builder as B

# Published totals (sources in each config's _npusim block): the Qwen3-4B model card says
# 4.0B, the GPT-J model card's table says 6,053,381,344.
PUBLISHED = {"qwen3-4b": 4.0e9, "gpt-j-6b": 6_053_381_344}


def _dense(name: str) -> onnx.ModelProto:
    return B.build_llm(name, "prefill", batch=1, seq=8, part="dense", layer=0)


@pytest.fixture(scope="module")
def dense_graphs():
    return {name: _dense(name) for name in PUBLISHED}


def _census(m: onnx.ModelProto) -> Counter:
    return Counter(n.op_type for n in m.graph.node if n.op_type != "Constant")


# -- configs and counts -------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_config_cites_sources(name):
    meta = B.load_config(name)["_npusim"]
    assert meta["source"].startswith("https://huggingface.co/")
    assert meta["published_params"] == PUBLISHED[name]
    assert meta["published_params_source"].startswith("https://")


def test_specs_read_the_hugging_face_keys():
    q = B.resolve("qwen3-4b")
    assert (q.layers, q.hidden, q.heads, q.kv_heads, q.head_dim, q.inter, q.vocab) == \
        (36, 2560, 32, 8, 128, 9728, 151936)
    assert (q.tie, q.qk_norm, q.post_norm, q.rope_theta, q.eps, q.context) == \
        (True, True, False, 1e6, 1e-6, 40960)
    assert (q.norm, q.mlp_act, q.parallel_residual, q.rope_dim) == ("rms", "swiglu", False, 128)
    j = B.resolve("gpt-j-6b")      # n_embd, n_layer, n_head, n_inner=null (4 x n_embd)
    assert (j.layers, j.hidden, j.heads, j.kv_heads, j.head_dim, j.inter, j.vocab) == \
        (28, 4096, 16, 16, 256, 16384, 50400)
    assert (j.norm, j.mlp_act, j.parallel_residual, j.rope_dim, j.rope_interleaved) == \
        ("layer", "gelu", True, 64, True)
    assert (j.tie, j.lm_head_bias, j.attention_bias, j.mlp_bias, j.context) == \
        (False, True, False, True, 2048)


def test_qwen3_4b_count_by_hand():
    d, q, kv, hd, f, v, layers = 2560, 32 * 128, 8 * 128, 128, 9728, 151936, 36
    per_layer = d * q + 2 * d * kv + q * d + 3 * d * f + 2 * d + 2 * hd   # + q/k norms
    assert B.count_parameters("qwen3-4b") == layers * per_layer + v * d + d == 4_022_468_096


def test_gpt_j_count_by_hand():
    d, f, v, layers = 4096, 16384, 50400, 28
    per_layer = 4 * d * d + (d * f + f) + (f * d + d) + 2 * d     # one LayerNorm, w and b
    assert B.count_parameters("gpt-j-6b") == \
        layers * per_layer + v * d + 2 * d + (d * v + v) == 6_050_882_784


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_counts_match_published_totals(name):
    n = B.count_parameters(name)
    # within 1 %: Qwen3-4B's card rounds to 4.0B; GPT-J's exact figure is 0.04 % above ours
    assert abs(n / PUBLISHED[name] - 1) < 0.01
    built = B.build_llm(name, "decode", batch=1, kv_len=4)
    assert B.count_parameters(built) == n


# -- per-layer op census ------------------------------------------------------------------
def test_qwen3_layer_has_per_head_qk_norms(dense_graphs):
    m = dense_graphs["qwen3-4b"]
    ops = _census(m)
    # input norm, q_norm, k_norm, post-attention norm; 7 projections; SwiGLU
    assert ops["RMSNormalization"] == 4 and ops["MatMul"] == 7 and ops["Sigmoid"] == 1
    assert "LayerNormalization" not in ops and "Gelu" not in ops
    inits = {t.name: list(t.dims) for t in m.graph.initializer}
    assert inits["model.layers.0.self_attn.q_norm.weight"] == [128]
    assert inits["model.layers.0.self_attn.k_norm.weight"] == [128]
    by_name = {n.name: n for n in m.graph.node}
    # the norm runs per head ([.., heads, head_dim]), before RoPE
    assert by_name["model.layers.0.self_attn.q_norm"].input[0] == \
        "model.layers.0.self_attn.q_split_heads"
    assert by_name["model.layers.0.self_attn.k_norm"].input[0] == \
        "model.layers.0.self_attn.k_split_heads"
    order = [n.name for n in m.graph.node]
    assert order.index("model.layers.0.self_attn.q_norm") < \
        order.index("model.layers.0.self_attn.q_rope")


def test_gpt_j_layer_is_one_norm_feeding_two_parallel_branches(dense_graphs):
    m = dense_graphs["gpt-j-6b"]
    ops = _census(m)
    assert ops["LayerNormalization"] == 1 and ops["Gelu"] == 1 and ops["MatMul"] == 6
    assert "RMSNormalization" not in ops and "Sigmoid" not in ops
    norm = "model.layers.0.input_layernorm"
    readers = sorted(n.name for n in m.graph.node if norm in n.input)
    assert readers == [f"model.layers.0.{p}" for p in
                       ("mlp.fc_in", "self_attn.k_proj", "self_attn.q_proj", "self_attn.v_proj")]
    by_name = {n.name: n for n in m.graph.node}
    both = by_name["model.layers.0.attn_plus_mlp"]
    assert list(both.input) == ["model.layers.0.self_attn.o_proj",
                                "model.layers.0.mlp.fc_out.bias_add"]
    assert list(by_name["model.layers.0.parallel_residual"].input) == \
        ["hidden_states", "model.layers.0.attn_plus_mlp"]
    assert by_name["model.layers.0.mlp.act"].attribute[0].s == b"tanh"
    inits = {t.name: list(t.dims) for t in m.graph.initializer}
    assert inits["model.layers.0.input_layernorm.bias"] == [4096]
    assert not any(k.startswith("model.layers.0.post_attention") for k in inits)
    assert not any(k.startswith("model.layers.0.self_attn") and k.endswith(".bias")
                   for k in inits)


def test_gpt_j_rotary_covers_64_of_256_dims(dense_graphs):
    m = dense_graphs["gpt-j-6b"]
    consts = {n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t).tolist()
              for n in m.graph.node if n.op_type == "Constant"}
    by_name = {n.name: n for n in m.graph.node}
    for x in ("q", "k"):
        p = f"model.layers.0.self_attn.{x}_rope"
        rot, keep = by_name[f"{p}.rot_part"], by_name[f"{p}.pass_part"]
        assert (consts[rot.input[1]], consts[rot.input[2]]) == ([0], [64])
        assert (consts[keep.input[1]], consts[keep.input[2]]) == ([64], [256])
        assert consts[by_name[f"{p}.pairs"].input[1]][-2:] == [32, 2]
    angles = consts[by_name["rope.angles"].input[1]][0]
    assert len(angles) == 64 and angles[0] == angles[1] != angles[2]   # adjacent pairs


def test_gpt_j_head_has_final_layernorm_and_bias():
    m = B.build_llm("gpt-j-6b", "decode", batch=2, part="head")
    ops = _census(m)
    assert ops["LayerNormalization"] == 1
    inits = {t.name: list(t.dims) for t in m.graph.initializer}
    assert inits["lm_head.bias"] == [50400] and inits["model.norm.bias"] == [4096]
    tp = B.build_llm("gpt-j-6b", "decode", batch=2, part="head", tp=4)
    assert {t.name: list(t.dims) for t in tp.graph.initializer}["lm_head.bias"] == [12600]


def test_bad_rotary_dim_is_refused():
    cfg = dict(B.load_config("tiny-gptj"), rotary_dim=7)
    with pytest.raises(ValueError, match="rotary_dim"):
        B.resolve(cfg)


# -- simulation on the NPUs -----------------------------------------------------------------
L = 64          # cached + new tokens of the decode step; prompt tokens of the prefill


@pytest.fixture(scope="module")
def npu_graphs():
    """Each model's decode and prefill step lowered once, simulated on both NPUs."""
    import npusim
    return {(name, phase): npusim.load_model(name, phase=phase, batch=1, **kw)
            for name in PUBLISHED
            for phase, kw in (("decode", {"kv_len": L - 1}), ("prefill", {"seq": L}))}


@pytest.mark.parametrize("arch", ["rngd", "atom"])
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_prefill_and_decode_simulate(npu_graphs, name, arch):
    import npusim
    s = B.resolve(name)
    dec = npusim.simulate(npu_graphs[name, "decode"], arch).totals()
    pre = npusim.simulate(npu_graphs[name, "prefill"], arch).totals()
    # one token: every projection and the LM head once (the embedding is a lookup), plus
    # QK^T and PV over L positions in every head
    d, f, q, kv = s.hidden, s.inter, s.heads * s.head_dim, s.kv_heads * s.head_dim
    mlp = (3 if s.mlp_act == "swiglu" else 2) * d * f
    linear = s.layers * (2 * d * q + 2 * d * kv + mlp) + d * s.vocab
    assert dec["macs"] == linear + s.layers * s.heads * 2 * L * s.head_dim
    # prefill: L tokens through every layer, causal attention, last-token LM head
    assert pre["macs"] >= L * (linear - d * s.vocab) + d * s.vocab
    assert pre["latency_s"] > dec["latency_s"] > 0
    assert dec["dram_bytes"] >= 2 * linear              # bf16 weights are read at least once


# -- tiny variants in onnxruntime -----------------------------------------------------------
def _weights(m: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}


def _rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def _layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * w + b


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _rope(x, pos, s):
    """Rotary embedding as the models define it: on the first rope_dim dims, by halves
    (Qwen3's rotate_half) or by adjacent pairs (GPT-J's rotate_every_two)."""
    rd = s.rope_dim
    inv = 1.0 / s.rope_theta ** (np.arange(0, rd, 2) / rd)
    ang = pos[:, None] * inv[None, :]                                   # [S, rd/2]
    rot, keep = x[..., :rd], x[..., rd:]
    if s.rope_interleaved:
        cos, sin = np.repeat(np.cos(ang), 2, -1), np.repeat(np.sin(ang), 2, -1)
        turned = np.stack([-rot[..., 1::2], rot[..., ::2]], -1).reshape(rot.shape)
    else:
        cos, sin = np.tile(np.cos(ang), 2), np.tile(np.sin(ang), 2)
        half = rd // 2
        turned = np.concatenate([-rot[..., half:], rot[..., :half]], -1)
    return np.concatenate([rot * cos + turned * sin, keep], -1)


def _reference_logits(name: str, w: dict, ids: np.ndarray) -> np.ndarray:
    """Last-token logits of a whole prefill, from the published layer definitions."""
    s = B.resolve(name)
    bsz, n = ids.shape
    hd, g = s.head_dim, s.heads // s.kv_heads
    pos = np.arange(n, dtype=np.float64)
    causal = np.tril(np.ones((n, n), bool))
    h = w["model.embed_tokens.weight"][ids].astype(np.float64)

    def norm(x, prefix):
        if s.norm == "layer":
            return _layernorm(x, w[prefix + ".weight"], w[prefix + ".bias"], s.eps)
        return _rms(x, w[prefix + ".weight"], s.eps)

    for i in range(s.layers):
        p = f"model.layers.{i}"
        x = norm(h, f"{p}.input_layernorm")
        q = (x @ w[f"{p}.self_attn.q_proj.weight"]).reshape(bsz, n, s.heads, hd)
        k = (x @ w[f"{p}.self_attn.k_proj.weight"]).reshape(bsz, n, s.kv_heads, hd)
        v = (x @ w[f"{p}.self_attn.v_proj.weight"]).reshape(bsz, n, s.kv_heads, hd)
        if s.qk_norm:
            q = _rms(q, w[f"{p}.self_attn.q_norm.weight"], s.eps)
            k = _rms(k, w[f"{p}.self_attn.k_norm.weight"], s.eps)
        q, k, v = (a.transpose(0, 2, 1, 3) for a in (q, k, v))
        q, k = _rope(q, pos, s), _rope(k, pos, s)
        k, v = np.repeat(k, g, 1), np.repeat(v, g, 1)
        scores = np.where(causal, q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd), -np.inf)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(bsz, n, s.heads * hd)
        attn = ctx @ w[f"{p}.self_attn.o_proj.weight"]
        if s.parallel_residual:
            y = _gelu_tanh(x @ w[f"{p}.mlp.fc_in.weight"] + w[f"{p}.mlp.fc_in.bias"])
            h = h + attn + (y @ w[f"{p}.mlp.fc_out.weight"] + w[f"{p}.mlp.fc_out.bias"])
            continue
        h = h + attn
        x = norm(h, f"{p}.post_attention_layernorm")
        gate = x @ w[f"{p}.mlp.gate_proj.weight"]
        y = gate / (1 + np.exp(-gate)) * (x @ w[f"{p}.mlp.up_proj.weight"])
        h = h + y @ w[f"{p}.mlp.down_proj.weight"]
    last = norm(h[:, -1:], "model.norm")
    if s.tie:
        return last @ w["model.embed_tokens.weight"].T
    logits = last @ w["lm_head.weight"]
    return logits + w["lm_head.bias"] if s.lm_head_bias else logits


@pytest.mark.parametrize("name", ["tiny-qwen3", "tiny-gptj"])
def test_tiny_matches_reference_and_decode_matches_prefill(ort_run, name):
    n, batch = 10, 2
    ids = np.random.default_rng(3).integers(0, 256, (batch, n))
    full = B.build_llm(name, "prefill", batch, n, dtype="fp32")
    onnx.checker.check_model(full, full_check=True)
    out = ort_run(full, {"input_ids": ids})
    ref = _reference_logits(name, _weights(full), ids)
    assert out["logits"].std() > 0.1
    np.testing.assert_allclose(out["logits"], ref, atol=2e-4, rtol=1e-4)
    head = ort_run(B.build_llm(name, "prefill", batch, n - 1, dtype="fp32"),
                {"input_ids": ids[:, :-1]})
    feed = {"input_ids": ids[:, -1:]}
    feed.update({"past_key_values." + k[len("present."):]: v for k, v in head.items()
                 if k.startswith("present.")})
    step = ort_run(B.build_llm(name, "decode", batch, kv_len=n - 1, dtype="fp32"), feed)
    np.testing.assert_allclose(step["logits"], out["logits"], atol=1e-4)


# -- tensor parallelism (the ATOM-Max rows run over 4 dies) --------------------------------
@pytest.mark.parametrize("name, reduces", [("qwen3-4b", 2), ("gpt-j-6b", 2)])
def test_one_of_four_chips(name, reduces):
    m = B.build_llm(name, "prefill", batch=1, seq=8, part="dense", layer=0, tp=4)
    B.check(m)
    ops = _census(m)
    # o_proj and the MLP's down projection each end in an all-reduce, parallel block or not
    assert ops["AllReduce"] == reduces
    inits = {t.name: list(t.dims) for t in m.graph.initializer}
    s = B.resolve(name)
    assert inits["model.layers.0.self_attn.q_proj.weight"] == [s.hidden, s.heads // 4 * s.head_dim]
    if s.qk_norm:
        assert inits["model.layers.0.self_attn.k_norm.weight"] == [s.head_dim]
    else:
        assert inits["model.layers.0.mlp.fc_in.bias"] == [s.inter // 4]
