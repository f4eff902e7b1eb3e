"""Collectives of npusim's own ONNX domain ``ai.npusim``, written by the LLM builder's
tensor-parallel graphs (``npusim/graphs/builder.py``, ``tp=N``).

``AllReduce(x) -> y`` (same shape) and ``AllGather(x) -> y`` (``x`` concatenated over the
``group`` chips along ``axis``, default -1), each with an integer attribute ``group``, the
number of chips. onnx's shape inference does not know these ops, so the output shape is
computed here (and checked against any shape the model states). The payload is one chip's
input: what a ring or tree algorithm's cost is usually written in terms of.
"""
from __future__ import annotations

from ..ir import Collective
from .context import Node
from .registry import register

NPUSIM = "ai.npusim"


def _group(n: Node) -> int:
    return n.attr("group", "int", low=1)


def _collective(n: Node, func: str, out_shape: tuple[int, ...]):
    if n.n_in != 1 or n.n_out != 1:
        raise n.fail(f"{n.op_type} takes one input and gives one output, got {n.n_in} inputs "
                     f"and {n.n_out} outputs")
    x = n.inp(0)
    y = n.out(0, out_shape, x.dtype)
    return [Collective(name=n.name(), source=n.source, op_type=n.op_type, inputs=(x,),
                       outputs=(y,), func=func, group=_group(n), payload_bytes=x.nbytes)]


@register("AllReduce", domain=NPUSIM)
def lower_all_reduce(n: Node):
    """Sum of the chips' inputs, on every chip: output shape = input shape."""
    return _collective(n, "all_reduce", n.shape(0))


@register("AllGather", domain=NPUSIM)
def lower_all_gather(n: Node):
    """The chips' inputs concatenated along ``axis``: that axis grows ``group`` times."""
    shape = list(n.shape(0))
    axis = n.attr("axis", "int", -1)
    if not -len(shape) <= axis < len(shape):
        raise n.fail(f"axis {axis} is out of range for an input of rank {len(shape)}")
    shape[axis] *= _group(n)
    return _collective(n, "all_gather", tuple(shape))
