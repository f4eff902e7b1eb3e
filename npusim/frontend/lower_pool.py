"""Pooling, reductions, arg-max and top-k: Reductions priced per input element read.

A window pool does one op per window tap per output element, so its ops per *input* element
is ``outputs * window / inputs`` (a 3x3 stride-2 max pool: ~2.25). Other figures are
assumptions of one op per element read (two for mean/L2/log-sum-exp style reductions).
"""
from __future__ import annotations

import math

from .context import Node
from .registry import register


@register("MaxPool", "AveragePool", "LpPool")
def lower_pool(n: Node):
    x, y = n.inp(0), n.out(0)
    window = math.prod(n.attr("kernel_shape", "ints", list(x.shape[2:]), low=1))
    per_input = y.numel * window / max(1, x.numel)
    return [n.reduction(n.op_type.lower().replace("pool", "_pool"), per_input)]


@register("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def lower_global_pool(n: Node):
    return [n.reduction(n.op_type.lower().replace("global", "global_").replace("pool", "_pool"), 1)]


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
