"""Normalisations and softmax: Reductions priced in ops per input element.

Ops per element are assumptions counting primitive steps: LayerNorm reads x for the mean
(1), subtracts it (1), squares and sums (2), scales by 1/std (1), applies gamma and beta (2),
about 7; RMSNorm squares and sums (2), scales (1) and applies gamma (1), 4; softmax takes a
max, subtracts, exponentiates, sums and divides, 5. Inference BatchNormalization folds to one
scale and one shift per element (2) and is an Elementwise op.
"""
from __future__ import annotations

from .context import Node
from .registry import register


@register("BatchNormalization")
def lower_batchnorm(n: Node):
    return [n.elementwise("batchnorm", 2, outputs=[n.out(0)])]


@register("LayerNormalization")
def lower_layernorm(n: Node):
    return [n.reduction("layernorm", 7)]


@register("LayerNormalization", domain="com.microsoft")
def lower_layernorm_ms(n: Node):
    return [n.reduction("layernorm", 7, outputs=[n.out(0, n.shape(0))])]


@register("RMSNormalization")
def lower_rmsnorm(n: Node):
    return [n.reduction("rmsnorm", 4)]


@register("SimplifiedLayerNormalization")
@register("SimplifiedLayerNormalization", domain="com.microsoft")
def lower_simplified_layernorm(n: Node):
    return [n.reduction("rmsnorm", 4, outputs=[n.out(0, n.shape(0))])]


@register("InstanceNormalization", "GroupNormalization", "MeanVarianceNormalization")
def lower_instance_norm(n: Node):
    return [n.reduction(n.op_type.replace("Normalization", "_norm").lower(), 7)]


@register("LpNormalization")
def lower_lp_norm(n: Node):
    return [n.reduction("lp_norm", 3)]


@register("LRN")
def lower_lrn(n: Node):
    """Local response norm: a windowed sum of squares over ``size`` channels, then a power
    and a divide (assumption: size + 3 ops per element)."""
    return [n.reduction("lrn", n.attr("size", "int", 5, low=1) + 3)]


@register("Softmax", "LogSoftmax", "Hardmax")
def lower_softmax(n: Node):
    return [n.reduction(n.op_type.lower(), 5)]
