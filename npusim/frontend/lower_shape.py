"""Free reshapes (views, no op) and shape ops that could not be folded.

Shape, Size and every op computed from constants alone are folded by the loader before any
lowering runs; what reaches here reads activations.
"""
from __future__ import annotations

from .context import Node
from .registry import register


@register("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def lower_view(n: Node):
    """A reshape moves no data: the output is a view of the input."""
    out = n.out(0)
    if out.numel != n.inp(0).numel:
        raise n.fail(f"output {out.name!r} {out.shape} has a different number of elements than "
                     f"input {n.inp(0).name!r} {n.inp(0).shape}")
    return n.alias()


@register("ConstantOfShape")
def lower_fill(n: Node):
    return [n.elementwise("fill", 1, inputs=[n.inp(0)])]


@register("Range")
def lower_range(n: Node):
    return [n.elementwise("range", 1)]


@register("NonZero")
def lower_nonzero(n: Node):
    return [n.reduction("nonzero", 1)]
