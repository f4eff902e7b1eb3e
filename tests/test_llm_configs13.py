"""Qwen3-8B as a built-in LLM (issue 13: the ML.ENERGY v3 H100 power rows Y11-Y18, Y31-Y36
run it): its config is read as Hugging Face's keys say, and its parameter count is checked by
hand and against the model card (8.2B, 6.95B non-embedding)."""
from __future__ import annotations

from npusim.graphs import builder as B


def test_qwen3_8b_reads_the_hugging_face_keys():
    q = B.resolve("qwen3-8b")
    assert (q.layers, q.hidden, q.heads, q.kv_heads, q.head_dim, q.inter, q.vocab) == \
        (36, 4096, 32, 8, 128, 12288, 151936)
    # untied embeddings: the one structural difference from Qwen3-4B
    assert (q.tie, q.qk_norm, q.rope_theta, q.eps) == (False, True, 1e6, 1e-6)


def test_qwen3_8b_count_by_hand_and_model_card():
    d, q, kv, hd, f, v, layers = 4096, 32 * 128, 8 * 128, 128, 12288, 151936, 36
    per_layer = d * q + 2 * d * kv + q * d + 3 * d * f + 2 * d + 2 * hd   # + q/k norms
    total = B.count_parameters("qwen3-8b")
    assert total == layers * per_layer + 2 * v * d + d == 8_190_735_360
    assert round(total / 1e9, 1) == 8.2                      # model card: 8.2B
    assert round((total - 2 * v * d) / 1e9, 2) == 6.95        # non-embedding 6.95B
