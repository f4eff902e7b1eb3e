"""Attention as the contractions it contains: scores = Q K^T, softmax, out = P V.

Heads are split into ``h`` (KV heads) and ``g`` (query heads sharing one KV head, present
only when ``num_heads > kv_num_heads``), so grouped-query attention reads each K and V head
once per group: Q's head axis is ``h*G + g``, K's is ``h``. The score and PV contractions
have dims ``b, h, [g], q, t, d`` and ``B * heads * q_len * kv_len * head_dim`` MACs each.
Masks (causal or padding) are not subtracted: the full ``q_len x kv_len`` rectangle is
computed, as dense attention kernels do.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Axis, DType, Op, Tensor
from .context import Node, operand
from .dtypes_onnx import mac_dtype
from .registry import register


@dataclass(frozen=True)
class Heads:
    """Sizes of one attention: batch, query length, attended KV length, heads, head dim."""

    batch: int
    q_len: int
    kv_len: int
    heads: int
    kv_heads: int
    head_dim: int

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads


def _head_axis(h: Heads, *, stride: int, offset: int = 0, with_d: bool = True) -> Axis:
    """Index of (head ``h*G+g``, element ``d``) in a packed axis of ``stride``-sized heads."""
    coeffs = {"h": h.group * stride}
    if h.group > 1:
        coeffs["g"] = stride
    if with_d:
        coeffs["d"] = 1
    return Axis.affine(coeffs, offset)


def q_axes(h: Heads, t: Tensor, offset: int = 0) -> list:
    """Axes of a query-like tensor, ``[B, S, heads*D]`` (3-D) or ``[B, heads, S, D]``."""
    if t.rank == 3:
        return ["b", "q", _head_axis(h, stride=h.head_dim, offset=offset)]
    return ["b", _head_axis(h, stride=1, with_d=False), "q", "d"]


def kv_axes(h: Heads, t: Tensor) -> list:
    """Axes of a key/value tensor, ``[B, T, kv_heads*D]`` or ``[B, kv_heads, T, D]``."""
    if t.rank == 3:
        return ["b", "t", Axis.affine({"h": h.head_dim, "d": 1})]
    return ["b", "h", "t", "d"]


def attended(n: Node, h: Heads, t: Tensor) -> Tensor:
    """``t`` itself, or a free view of its last ``kv_len`` positions when fewer are attended
    (a sliding window, or a cache buffer longer than the sequence)."""
    axis = 1 if t.rank == 3 else 2
    size = t.shape[axis]
    if size < h.kv_len:
        raise n.fail(f"{t.name!r} {t.shape} holds {size} positions, fewer than the "
                     f"{h.kv_len} attended")
    if size == h.kv_len:
        return t
    shape = list(t.shape)
    shape[axis] = h.kv_len
    view = n.tmp(f"{t.name.rsplit('/', 1)[-1]}_window", shape, t.dtype)
    n.s.alias(view.name, t.name)
    return view


def attention_core(n: Node, h: Heads, q: Tensor, k: Tensor, v: Tensor, y: Tensor, dt: DType, *,
                   extra_softmax: list[Tensor] = ()) -> list[Op]:
    """QK^T, softmax and PV for tensors already holding Q, the full K and the full V."""
    dims = [("b", h.batch), ("h", h.kv_heads)] + ([("g", h.group)] if h.group > 1 else [])
    dims += [("q", h.q_len), ("t", h.kv_len), ("d", h.head_dim)]
    score_head = _head_axis(h, stride=1, with_d=False)
    scores = n.tmp("scores", (h.batch, h.heads, h.q_len, h.kv_len), q.dtype)
    probs = n.tmp("probs", scores.shape, q.dtype)
    k, v = attended(n, h, k), attended(n, h, v)
    qk = n.contraction(dims, [operand(q, *q_axes(h, q)), operand(k, *kv_axes(h, k))],
                       operand(scores, "b", score_head, "q", "t"), dt, suffix="qk")
    sm = n.reduction("softmax", 5, inputs=[scores, *extra_softmax], outputs=[probs],
                     suffix="softmax")
    pv = n.contraction(dims, [operand(probs, "b", score_head, "q", "t"),
                              operand(v, *kv_axes(h, v))],
                       operand(y, *q_axes(h, y)), dt, suffix="pv")
    return [qk, sm, pv]


def kv_update(n: Node, past: Tensor | None, new: Tensor, present: Tensor, name: str) -> Op:
    """Write new K or V rows into the cache: only the new rows move when there is a past."""
    if past is None:
        return n.movement("kv_write", inputs=[new], outputs=[present], suffix=name)
    return n.movement("kv_append", 2 * new.nbytes, inputs=[past, new], outputs=[present],
                      suffix=name)


@register("Attention")
def lower_onnx_attention(n: Node):
    """ONNX Attention (opset 23): Q, K, V in 3-D ``[B, S, heads*D]`` or 4-D
    ``[B, heads, S, D]`` layout, optional mask, past_key / past_value."""
    q, k, v = n.inp(0), n.inp(1), n.inp(2)
    y = n.out(0)
    if q.rank == 4:
        B, nh, S, hd = q.shape
        kvh = k.shape[1]
    else:
        nh = n.attr("q_num_heads", "int", 0, low=0)
        kvh = n.attr("kv_num_heads", "int", 0, low=0)
        if not nh or not kvh:
            raise n.fail("3-D inputs need the q_num_heads and kv_num_heads attributes")
        B, S = q.shape[:2]
        hd = q.shape[2] // nh
    past_k = n.inp(4) if n.has(4) else None
    past_v = n.inp(5) if n.has(5) else None
    ops: list[Op] = []
    if past_k is not None:
        kt = n.out(1) if n.has_out(1) else n.tmp("present_key", (B, kvh, past_k.shape[2] + (
            k.shape[1] if k.rank == 3 else k.shape[2]), hd), k.dtype)
        vt = n.out(2) if n.has_out(2) else n.tmp("present_value", kt.shape, v.dtype)
        ops += [kv_update(n, past_k, k, kt, "k_append"), kv_update(n, past_v, v, vt, "v_append")]
        k, v = kt, vt
    T = k.shape[1] if k.rank == 3 else k.shape[2]
    h = Heads(B, S, T, nh, kvh, hd)
    extra = [n.inp(3)] if n.has(3) else []
    return ops + attention_core(n, h, q, k, v, y, mac_dtype(q.dtype), extra_softmax=extra)
