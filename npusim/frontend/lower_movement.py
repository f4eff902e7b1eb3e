"""Ops that move data without arithmetic: Movement ops with the bytes they really move.

By default a Movement reads all its inputs and writes all its outputs. Gathers and slices read
only the rows they select (``moved_bytes`` = indices + selected data read + output written);
a Concat onto a KV cache input writes only the new rows into the cache (as a serving engine's
in-place cache does), not a full copy of the past.
"""
from __future__ import annotations

from dataclasses import replace

from ..ir import Role
from .context import Node
from .registry import register


@register("Transpose")
def lower_transpose(n: Node):
    x = n.inp(0)
    perm = tuple(n.attr("perm", "ints", list(reversed(range(x.rank))), length=x.rank))
    if sorted(perm) != list(range(x.rank)):
        raise n.fail(f"perm {list(perm)} is not a permutation of the {x.rank} axes of input "
                     f"{x.shape}; fix the attribute")
    m = n.movement("transpose", inputs=[x])
    return [replace(m, perm=perm)]


@register("Split", "Expand", "Tile", "Pad", "DepthToSpace", "SpaceToDepth",
          "ReverseSequence", "Compress")
def lower_copy(n: Node):
    return [n.movement(n.op_type.lower(), inputs=[n.inp(0)] + [
        t for t in n.inputs()[1:] if t.role != Role.CONSTANT])]


@register("Concat")
def lower_concat(n: Node):
    ins = n.inputs()
    past = [t for t in ins if t.role == Role.KV_CACHE]
    if past:
        new = sum(t.nbytes for t in ins if t.role != Role.KV_CACHE)
        return [n.movement("kv_append", 2 * new)]
    return [n.movement("concat")]


@register("Slice")
def lower_slice(n: Node):
    y = n.out(0)
    return [n.movement("slice", 2 * y.nbytes)]


@register("Gather", "GatherElements", "GatherND")
def lower_gather(n: Node):
    """Reads the selected rows and the indices, writes the output.

    A ``Gather`` of whole matrices from a stack of weights (axis 0 of a weight of rank 3 or
    more: the experts an MoE layer routes to) copies nothing: MoE kernels read the chosen
    experts' weights where they lie. Its output is then a view of the stack (a weight, whose
    reader pays for the selected matrices' bytes) and the op moves only its indices.
    """
    data, idx = n.inp(0), n.inp(1)
    axis = n.attr("axis", "int", 0) if n.op_type == "Gather" else None
    if n.op_type == "Gather" and data.role == Role.WEIGHT and data.rank >= 3 \
            and axis in (0, -data.rank) and n.has_out(0):
        n.s.alias(n.proto.output[0], data.name)      # before the output tensor is made
        return [n.movement("gather_weights", idx.nbytes, inputs=[data, idx],
                           outputs=[n.out(0)])]
    y = n.out(0)
    return [n.movement(n.op_type.lower(), idx.nbytes + 2 * y.nbytes)]


@register("ScatterND", "ScatterElements", "Scatter")
def lower_scatter(n: Node):
    """An in-place update: reads indices and updates, writes the updated rows (the copy of
    the untouched data is elided, as engines update the buffer in place)."""
    idx, upd = n.inp(1), n.inp(2)
    return [n.movement(n.op_type.lower(), idx.nbytes + 2 * upd.nbytes)]


@register("Resize", "Upsample")
def lower_resize(n: Node):
    """Nearest-neighbour resize only moves data; linear and cubic interpolate (assumption:
    4 and 16 ops per output element, the taps of bilinear / bicubic in 2-D)."""
    mode = n.attr("mode", "string", "nearest")
    data = [n.inp(0)]
    if mode == "nearest":
        return [n.movement("resize_nearest", inputs=data, outputs=[n.out(0)])]
    return [n.elementwise(f"resize_{mode}", 16 if mode == "cubic" else 4, inputs=data,
                          outputs=[n.out(0)])]
