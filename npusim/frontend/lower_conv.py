"""Convolutions as single contractions with affine input projections.

A Conv's iteration space is ``n, [g], m, c, p, q, r, s`` (batch, group, output channel in the
group, input channel in the group, output rows/cols, kernel rows/cols; 1-D and 3-D use the
first one or three spatial names of ``p q t`` and ``r s u``). The input row read is
``p*stride + r*dilation - pad_begin`` and the input channel ``g*C_per_group + c``; the weight
and output channels are ``g*M_per_group + m``. ``g`` is present only when ``group > 1``; a
depthwise conv is simply ``group == C``, with ``c`` of extent 1. The bias is read by the
contraction (an ``extra`` input, fused by every engine) rather than costed as its own op.
"""
from __future__ import annotations

from typing import Sequence

from ..ir import Axis, DType, Tensor
from .context import Node, operand
from .dtypes_onnx import mac_dtype
from .registry import register

_OUT_NAMES = ("p", "q", "t")
_KER_NAMES = ("r", "s", "u")


def _names(nsp: int) -> tuple[list[str], list[str]]:
    if nsp <= 3:
        return list(_OUT_NAMES[:nsp]), list(_KER_NAMES[:nsp])
    return [f"o{i}" for i in range(nsp)], [f"k{i}" for i in range(nsp)]


def _channel(g: int, per_group: int, inner: str) -> str | Axis:
    return Axis.affine({"g": per_group, inner: 1}) if g > 1 else inner


def conv_pads(n: Node, ins: Sequence[int], outs: Sequence[int], ks: Sequence[int],
              strides: Sequence[int], dil: Sequence[int]) -> list[int]:
    """Padding before each spatial axis, from ``pads`` or ``auto_pad``."""
    auto = n.attr("auto_pad", "string", "NOTSET")
    nsp = len(ins)
    if auto in ("NOTSET", ""):
        return n.attr("pads", "ints", [0] * 2 * nsp, length=2 * nsp)[:nsp]
    if auto == "VALID":
        return [0] * nsp
    begin = []
    for i in range(nsp):
        total = max(0, (outs[i] - 1) * strides[i] + (ks[i] - 1) * dil[i] + 1 - ins[i])
        begin.append(total // 2 if auto == "SAME_UPPER" else total - total // 2)
    return begin


def conv(n: Node, x: Tensor, w: Tensor, y: Tensor, dt: DType, extra: Sequence[Tensor] = ()):
    """Lower ``y = conv(x, w)`` (ONNX Conv semantics) to one contraction."""
    if x.rank < 3 or w.rank != x.rank:
        raise n.fail(f"Conv needs X [N, C, spatial...] and W of the same rank; got X {x.shape}, "
                     f"W {w.shape}")
    nsp = x.rank - 2
    N, C, ins = x.shape[0], x.shape[1], x.shape[2:]
    M, cg, ks = w.shape[0], w.shape[1], w.shape[2:]
    outs = y.shape[2:]
    G = n.attr("group", "int", 1, low=1)
    if C % G or M % G or C // G != cg:
        raise n.fail(f"group={G} does not divide X {x.shape} and W {w.shape} "
                     f"(W must be [M, C/group, k...], M divisible by group)")
    strides = n.attr("strides", "ints", [1] * nsp, length=nsp, low=1)
    dil = n.attr("dilations", "ints", [1] * nsp, length=nsp, low=1)
    pb = conv_pads(n, ins, outs, ks, strides, dil)
    mg = M // G
    on, kn = _names(nsp)
    dims = [("n", N)] + ([("g", G)] if G > 1 else []) + [("m", mg), ("c", cg)]
    dims += list(zip(on, outs)) + list(zip(kn, ks))
    x_sp = [Axis.affine({on[i]: strides[i], kn[i]: dil[i]}, -pb[i]) for i in range(nsp)]
    return n.contraction(
        dims,
        [operand(x, "n", _channel(G, cg, "c"), *x_sp),
         operand(w, _channel(G, mg, "m"), "c", *kn)],
        operand(y, "n", _channel(G, mg, "m"), *on), dt, extra_inputs=extra)


def conv_transpose(n: Node, x: Tensor, w: Tensor, y: Tensor, dt: DType,
                   extra: Sequence[Tensor] = ()):
    """Lower ConvTranspose to one contraction in scatter form.

    A transposed convolution adds ``x[n, c, p] * w[c, m, r]`` into output row
    ``p*stride + r*dilation - pad_begin``: the iteration space is the *input* positions
    ``p, q`` and kernel taps ``r, s``, and the output (not the input) carries the affine
    projection. That is the same space as the Conv whose gradient it is, so its MACs are
    ``N * C * M/group * H_in * W_in * kH * kW``, counting products that land in the cropped
    border too (as the hardware computes them).
    """
    if x.rank < 3 or w.rank != x.rank:
        raise n.fail(f"ConvTranspose needs X [N, C, spatial...] and W of the same rank; got "
                     f"X {x.shape}, W {w.shape}")
    nsp = x.rank - 2
    N, C, ins = x.shape[0], x.shape[1], x.shape[2:]
    G = n.attr("group", "int", 1, low=1)
    if w.shape[0] != C or C % G:
        raise n.fail(f"W {w.shape} must be [C, M/group, k...] with C = {C} divisible by group={G}")
    cg, mg, ks = C // G, w.shape[1], w.shape[2:]
    outs = y.shape[2:]
    strides = n.attr("strides", "ints", [1] * nsp, length=nsp, low=1)
    dil = n.attr("dilations", "ints", [1] * nsp, length=nsp, low=1)
    opad = n.attr("output_padding", "ints", [0] * nsp, length=nsp)
    auto = n.attr("auto_pad", "string", "NOTSET")
    if n.has_attr("output_shape") or auto in ("SAME_UPPER", "SAME_LOWER"):
        pb = []
        for i in range(nsp):
            total = strides[i] * (ins[i] - 1) + opad[i] + (ks[i] - 1) * dil[i] + 1 - outs[i]
            pb.append(total // 2 if auto == "SAME_UPPER" else total - total // 2)
    elif auto == "VALID":
        pb = [0] * nsp
    else:
        pb = n.attr("pads", "ints", [0] * 2 * nsp, length=2 * nsp)[:nsp]
    on, kn = _names(nsp)
    dims = [("n", N)] + ([("g", G)] if G > 1 else []) + [("m", mg), ("c", cg)]
    dims += list(zip(on, ins)) + list(zip(kn, ks))
    y_sp = [Axis.affine({on[i]: strides[i], kn[i]: dil[i]}, -pb[i]) for i in range(nsp)]
    return n.contraction(
        dims,
        [operand(x, "n", _channel(G, cg, "c"), *on),
         operand(w, _channel(G, cg, "c"), "m", *kn)],
        operand(y, "n", _channel(G, mg, "m"), *y_sp), dt, extra_inputs=extra)


@register("Conv")
def lower_conv(n: Node):
    x = n.inp(0)
    return [conv(n, x, n.inp(1), n.out(0), mac_dtype(x.dtype),
                 [n.inp(2)] if n.has(2) else [])]


@register("ConvTranspose")
def lower_conv_transpose(n: Node):
    x = n.inp(0)
    return [conv_transpose(n, x, n.inp(1), n.out(0), mac_dtype(x.dtype),
                           [n.inp(2)] if n.has(2) else [])]


@register("ConvInteger", weight_inputs=(1, 3))
def lower_conv_integer(n: Node):
    extra = [n.inp(i) for i in (2, 3) if n.has(i)]
    return [conv(n, n.inp(0), n.inp(1), n.out(0), mac_dtype(n.inp(0).dtype), extra)]


@register("QLinearConv", weight_inputs=(3, 5, 8))
def lower_qlinear_conv(n: Node):
    """Integer conv: x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp[, bias]; scales, zero
    points and bias are read by the contraction (requantisation fuses into it)."""
    extra = [n.inp(i) for i in (1, 2, 4, 5, 6, 7, 8) if n.has(i)]
    return [conv(n, n.inp(0), n.inp(3), n.out(0), mac_dtype(n.inp(0).dtype), extra)]
