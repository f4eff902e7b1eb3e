"""com.microsoft contrib ops found in onnxruntime-exported models (transformers, LLMs).

onnx's shape inference does not know these ops, so each lowering states its output shapes
(from the onnxruntime contrib-op documentation,
https://github.com/microsoft/onnxruntime/blob/main/docs/ContribOperators.md).
"""
from __future__ import annotations

from ..ir import Op
from .context import Node
from .dtypes_onnx import mac_dtype
from .lower_attention import Heads, attention_core, kv_update
from .lower_linear import matmul
from .registry import register

MS = "com.microsoft"


def _same(n: Node, i: int = 0):
    return n.out(0, n.shape(i))


@register("FastGelu", "BiasGelu", "Gelu", "QuickGelu", "BiasAdd", domain=MS)
def lower_gelu_family(n: Node):
    """GELU forms (assumption: 8 ops per element for tanh/erf GELU, 4 for QuickGelu's
    ``x * sigmoid(1.702 x)``), plus one for a fused bias or skip add."""
    per = {"QuickGelu": 4, "BiasAdd": 0}.get(n.op_type, 8) + (1 if n.n_in > 1 else 0)
    return [n.elementwise(n.op_type.lower(), per, outputs=[_same(n)])]


@register("RotaryEmbedding", domain=MS, table_inputs=(2, 3))
@register("RotaryEmbedding", table_inputs=(1, 2))
def lower_rotary(n: Node):
    """Rotary position embedding: ``x*cos + rotate(x)*sin`` (assumption: 3 ops per element)."""
    return [n.elementwise("rotary", 3, inputs=n.inputs(), outputs=[_same(n)])]


def _skip_norm(n: Node, func: str, per: float):
    x = n.inp(0)
    outs = [_same(n)]
    stat = x.shape[:-1] + (1,)
    for i in (1, 2):
        if n.has_out(i):
            outs.append(n.out(i, stat, x.dtype if i else None))
    if n.has_out(3):
        outs.append(n.out(3, x.shape))
    return [n.reduction(func, per, outputs=outs)]


@register("SkipLayerNormalization", domain=MS)
def lower_skip_layernorm(n: Node):
    """Residual add (+ bias) then LayerNorm: 2 + 7 ops per element (assumption)."""
    return _skip_norm(n, "skip_layernorm", 9)


@register("SkipSimplifiedLayerNormalization", domain=MS)
def lower_skip_rmsnorm(n: Node):
    """Residual add (+ bias) then RMSNorm: 2 + 4 ops per element (assumption)."""
    return _skip_norm(n, "skip_rmsnorm", 6)


@register("GroupQueryAttention", domain=MS, table_inputs=(7, 8))
def lower_gqa(n: Node):
    """GroupQueryAttention: query ``[B, S, heads*D]`` (or packed Q|K|V when key is absent),
    key/value ``[B, S, kv_heads*D]``, past_key/past_value ``[B, kv_heads, P, D]``,
    total_sequence_length. Present K/V hold ``max(P, total)`` positions (``P`` when the past
    and present share one buffer); ``total`` positions are attended, or the last
    ``local_window_size + S`` with a sliding window. Rotary (``do_rotary``) adds an
    Elementwise op on Q and K.
    """
    q = n.inp(0, rank=3)
    nh, kvh = n.attr("num_heads", "int", low=1), n.attr("kv_num_heads", "int", low=1)
    if nh % kvh:
        raise n.fail(f"num_heads={nh} is not a multiple of kv_num_heads={kvh}")
    B, S, width = q.shape
    packed = not n.has(1)
    hd = width // (nh + 2 * kvh) if packed else width // nh
    past_k = n.inp(3, rank=4) if n.has(3) else None
    past_v = n.inp(4, rank=4) if n.has(4) else None
    P = past_k.shape[2] if past_k is not None else 0
    if past_k is not None and past_k.shape[3] != hd:
        raise n.fail(f"past_key {past_k.shape} has head size {past_k.shape[3]} but the query "
                     f"{q.shape} with num_heads={nh} gives {hd}")
    tot = n.value(6)
    total = int(tot.reshape(-1)[0]) if tot is not None else P + S
    window = n.attr("local_window_size", "int", -1)
    kv_len = min(total, window + S) if window > 0 else total
    T = max(P, total)
    ops: list[Op] = []
    k_new, v_new = (q, q) if packed else (n.inp(1, rank=3), n.inp(2, rank=3))
    if n.attr("do_rotary", "int", 0):
        cos_sin = [n.inp(i) for i in (7, 8) if n.has(i)]
        rot = n.tmp("rotary_q", q.shape, q.dtype)
        # packed Q|K|V: rotary touches the Q and K parts only
        per = 3 * (nh + kvh) / (nh + 2 * kvh) if packed else 3
        ops.append(n.elementwise("rotary", per, inputs=[q, *cos_sin], outputs=[rot],
                                 suffix="rotary_q"))
        if packed:
            k_new = v_new = rot
        else:
            k_rot = n.tmp("rotary_k", k_new.shape, k_new.dtype)
            ops.append(n.elementwise("rotary", 3, inputs=[k_new, *cos_sin], outputs=[k_rot],
                                     suffix="rotary_k"))
            k_new = k_rot
        q = rot
    y = n.out(0, (B, S, nh * hd), q.dtype)
    cache = (B, kvh, T, hd)
    kt = n.out(1, cache, q.dtype) if n.has_out(1) else n.tmp("present_key", cache, q.dtype)
    vt = n.out(2, cache, q.dtype) if n.has_out(2) else n.tmp("present_value", cache, q.dtype)
    new_bytes = B * S * kvh * hd * q.dtype.bytes
    for past, new, present, tag in ((past_k, k_new, kt, "k_append"),
                                    (past_v, v_new, vt, "v_append")):
        if past is None:
            ops.append(n.movement("kv_write", 2 * new_bytes, inputs=[new], outputs=[present],
                                  suffix=tag))
        else:
            ops.append(n.movement("kv_append", 2 * new_bytes, inputs=[past, new],
                                  outputs=[present], suffix=tag))
    h = Heads(B, S, kv_len, nh, kvh, hd)
    extra = [n.inp(10)] if n.has(10) else []
    return ops + attention_core(n, h, q, kt, vt, y, mac_dtype(q.dtype), extra_softmax=extra)


@register("MultiHeadAttention", domain=MS)
def lower_mha(n: Node):
    """MultiHeadAttention: query ``[B, S, heads*D]``; key/value ``[B, L, heads*D]`` (projected,
    appended to past_key/past_value ``[B, heads, P, D]`` if given) or ``[B, heads, L, D]``
    (a cross-attention cache used as is)."""
    q = n.inp(0)
    nh = n.attr("num_heads", "int", low=1)
    if q.rank != 3 or not n.has(1):
        raise n.fail("only unpacked query [B, S, D] with separate key and value is supported")
    B, S, D = q.shape
    k, v = n.inp(1, rank=(3, 4)), n.inp(2, rank=(3, 4))
    hd = D // nh
    ops: list[Op] = []
    y = n.out(0, (B, S, v.shape[-1] if v.rank == 3 else nh * v.shape[-1]), q.dtype)
    if k.rank == 3 and n.has(6):
        past_k, past_v = n.inp(6, rank=4), n.inp(7, rank=4)
        T = past_k.shape[2] + k.shape[1]
        cache = (B, nh, T, hd)
        kt = n.out(1, cache, k.dtype) if n.has_out(1) else n.tmp("present_key", cache, k.dtype)
        vt = n.out(2, cache, v.dtype) if n.has_out(2) else n.tmp("present_value", cache, v.dtype)
        ops += [kv_update(n, past_k, k, kt, "k_append"), kv_update(n, past_v, v, vt, "v_append")]
        k, v = kt, vt
    T = k.shape[1] if k.rank == 3 else k.shape[2]
    extra = [n.inp(i) for i in (4, 5) if n.has(i)]
    return ops + attention_core(n, Heads(B, S, T, nh, nh, hd), q, k, v, y, mac_dtype(q.dtype),
                                extra_softmax=extra)


@register("Attention", domain=MS)
def lower_ms_attention(n: Node):
    """Attention (BERT-style): input ``[B, S, Din]`` times packed QKV weights
    ``[Din, Dq+Dk+Dv]`` (+ bias), then attention over past ``[2, B, heads, P, D]`` plus the
    new positions; present ``[2, B, heads, P+S, D]``."""
    x, w = n.inp(0, rank=3), n.inp(1, rank=2)
    nh = n.attr("num_heads", "int", low=1)
    B, S, _ = x.shape
    sizes = n.attr("qkv_hidden_sizes", "ints", [w.shape[1] // 3] * 3, length=3, low=0)
    dq, dk, dv = sizes
    hd, hdv = dq // nh, dv // nh
    qkv = n.tmp("qkv", (B, S, dq + dk + dv), x.dtype)
    ops: list[Op] = [matmul(n, x, w, qkv, mac_dtype(x.dtype), suffix="qkv",
                            extra=[n.inp(2)] if n.has(2) else [])]
    past = n.inp(4, rank=5) if n.has(4) else None
    P = past.shape[3] if past is not None else 0
    T = P + S
    kt = n.tmp("k", (B, nh, T, hd), x.dtype)
    vt = n.tmp("v", (B, nh, T, hdv), x.dtype)
    ins = [qkv] + ([past] if past is not None else [])
    ops.append(n.movement("split_heads", inputs=ins, outputs=[kt, vt], suffix="split_kv"))
    if n.has_out(1):
        present = n.out(1, (2, B, nh, T, hd), x.dtype)
        ops.append(n.movement("kv_present", 2 * B * nh * S * (hd + hdv) * x.dtype.bytes,
                              inputs=[kt, vt], outputs=[present], suffix="present"))
    y = n.out(0, (B, S, dv), x.dtype)
    extra = [n.inp(i) for i in (3, 5) if n.has(i)]
    if hd != hdv:
        raise n.fail("different Q/K and V head sizes are not supported")
    return ops + attention_core(n, Heads(B, S, T, nh, nh, hd), qkv, kt, vt, y,
                                mac_dtype(x.dtype), extra_softmax=extra)
