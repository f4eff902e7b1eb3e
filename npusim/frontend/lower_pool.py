"""Pooling, reductions, arg-max and top-k: Reductions priced per input element read.

A window pool does one op per window tap per output element, so its ops per *input* element
is ``outputs * window / inputs`` (a 3x3 stride-2 max pool: ~2.25). Other figures are
assumptions of one op per element read (two for mean/L2/log-sum-exp style reductions).
"""
from __future__ import annotations

import math

from .context import Node
from .lower_conv import conv_pads
from .registry import register


@register("MaxPool", "AveragePool", "LpPool")
def lower_pool(n: Node):
    x, y = n.inp(0), n.out(0)
    nsp = max(x.rank - 2, 0)
    window = n.attr("kernel_shape", "ints", list(x.shape[2:]), low=1)
    per_input = y.numel * math.prod(window) / max(1, x.numel)
    if len(window) != nsp or y.rank != x.rank:
        return [n.reduction(_func(n.op_type), per_input)]
    strides = n.attr("strides", "ints", [1] * nsp, length=nsp, low=1)
    dil = n.attr("dilations", "ints", [1] * nsp, length=nsp, low=1)
    pads = conv_pads(n, x.shape[2:], y.shape[2:], window, strides, dil)
    return [n.pool(_func(n.op_type), per_input, window=window, strides=strides, dilations=dil,
                   pads=pads)]


@register("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def lower_global_pool(n: Node):
    x = n.inp(0)
    nsp = max(x.rank - 2, 0)
    return [n.pool(_func(n.op_type), 1, window=x.shape[2:], strides=(1,) * nsp,
                   dilations=(1,) * nsp, pads=(0,) * nsp)]


def _func(op_type: str) -> str:
    """``AveragePool`` -> ``average_pool``, ``GlobalMaxPool`` -> ``global_max_pool``."""
    return op_type.lower().replace("global", "global_").replace("pool", "_pool")


_REDUCE = {"ReduceSum": 1, "ReduceMean": 1, "ReduceMax": 1, "ReduceMin": 1, "ReduceProd": 1,
           "ReduceL1": 2, "ReduceL2": 2, "ReduceSumSquare": 2, "ReduceLogSum": 1,
           "ReduceLogSumExp": 2, "ArgMax": 1, "ArgMin": 1}


@register(*_REDUCE)
def lower_reduce(n: Node):
    return [n.reduction(n.op_type.lower().replace("reduce", "reduce_"), _REDUCE[n.op_type],
                        inputs=[n.inp(0)])]


@register("TopK")
def lower_topk(n: Node):
    """Top-k along an axis: a partial sort keeping k candidates, assumed ``1 + log2(k)``
    comparisons per element read."""
    k = n.value(1)
    k = int(k.reshape(-1)[0]) if k is not None else n.out(0).shape[n.attr("axis", "int", -1)]
    return [n.reduction("topk", 1 + math.log2(max(k, 1)))]
