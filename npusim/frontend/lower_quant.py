"""Quantisation: (de)quantise ops, integer matmuls, and MatMulNBits (block-quantised weights).

Ops per element are assumptions: a quantise is a scale and a round (2), a dequantise a
subtract and a scale (2); dynamic quantisation adds a min/max pass (4 per element).
"""
from __future__ import annotations

import math

from ..ir import Tensor
from .context import Node
from .dtypes_onnx import int_bits, mac_dtype
from .lower_linear import matmul
from .registry import register


@register("QuantizeLinear")
@register("QuantizeLinear", domain="com.microsoft")
def lower_quantize(n: Node):
    return [n.elementwise("quantize", 2)]


@register("DequantizeLinear", weight_inputs=(0,))
@register("DequantizeLinear", domain="com.microsoft", weight_inputs=(0,))
def lower_dequantize(n: Node):
    return [n.elementwise("dequantize", 2, outputs=[n.out(0, n.shape(0))])]


@register("DynamicQuantizeLinear")
def lower_dynamic_quantize(n: Node):
    return [n.reduction("dynamic_quantize", 4)]


@register("MatMulInteger", weight_inputs=(1, 3))
def lower_matmul_integer(n: Node):
    a = n.inp(0)
    return [matmul(n, a, n.inp(1), n.out(0), mac_dtype(a.dtype),
                   extra=[n.inp(i) for i in (2, 3) if n.has(i)])]


@register("QLinearMatMul", weight_inputs=(3, 5))
def lower_qlinear_matmul(n: Node):
    a = n.inp(0)
    return [matmul(n, a, n.inp(3), n.out(0), mac_dtype(a.dtype),
                   extra=[n.inp(i) for i in (1, 2, 4, 5, 6, 7) if n.has(i)])]


@register("MatMulIntegerToFloat", domain="com.microsoft", weight_inputs=(1, 5))
def lower_matmul_integer_to_float(n: Node):
    a, b = n.inp(0), n.inp(1)
    y = n.out(0, a.shape[:-1] + b.shape[-1:], n.inp(2).dtype)
    return [matmul(n, a, b, y, mac_dtype(a.dtype),
                   extra=[n.inp(i) for i in range(2, 7) if n.has(i)])]


@register("DynamicQuantizeMatMul", domain="com.microsoft", weight_inputs=(1, 3))
def lower_dynamic_quantize_matmul(n: Node):
    """Float A is quantised on the fly (a reduction over A), then an int8 matmul."""
    a, b = n.inp(0), n.inp(1)
    y = n.out(0, a.shape[:-1] + b.shape[-1:], a.dtype)
    qa = n.tmp("quantized", a.shape, mac_dtype(b.dtype))
    return [n.reduction("dynamic_quantize", 4, inputs=[a], outputs=[qa], suffix="quantize"),
            matmul(n, qa, b, y, mac_dtype(b.dtype), suffix="matmul",
                   extra=[n.inp(i) for i in range(2, 5) if n.has(i)])]


@register("MatMulNBits", domain="com.microsoft", weight_inputs=(1, 3))
def lower_matmul_nbits(n: Node):
    """``Y = A @ dequant(B).T`` with B of ``bits`` bits in blocks of ``block_size`` along K.

    B is costed as the logical ``[N, K]`` weight of ``bits``-bit integers (``N*K*bits/8``
    bytes, the packed size when ``block_size`` divides K); the per-block scales and zero
    points are separate weight tensors the contraction also reads. Products are computed in
    A's type (the weights are dequantised on the fly).
    """
    a = n.inp(0)
    K, N = n.attr("K", "int", low=1), n.attr("N", "int", low=1)
    bits, block = n.attr("bits", "int", 4, low=1), n.attr("block_size", "int", 0, low=0)
    if a.shape[-1] != K:
        raise n.fail(f"A {a.shape} must end in K = {K}")
    packed = n.s.types.get(n.in_name(1), (0, None))[1]
    if block and packed is not None:
        want = (N, math.ceil(K / block), block * bits // 8)
        if tuple(packed) != want:
            raise n.fail(f"packed B has shape {tuple(packed)}, expected [N, K/block_size, "
                         f"block_size*bits/8] = {list(want)}")
    b = n.s.tensor(n.in_name(1), (N, K), int_bits(bits))
    y = n.out(0, a.shape[:-1] + (N,), a.dtype)
    extra: list[Tensor] = [n.inp(i) for i in range(2, n.n_in) if n.has(i)]
    return [matmul(n, a, b, y, mac_dtype(a.dtype), b_transposed=True, extra=extra)]
