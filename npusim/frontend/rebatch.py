"""``--batch N`` on an ONNX graph: the one place a graph's batch is changed.

The batch is the leading axis every graph input shares. Two cases:

- the inputs share a **symbolic** leading dim (``["batch", 3, 224, 224]``): ``--batch N``
  binds it, exactly as ``--dim batch=N`` would;
- the inputs share a **fixed** leading dim B (a model exported at batch 1): the loader binds
  the inputs' leading axis to N when it binds the symbolic dims (:func:`npusim.frontend.
  onnx_loader._skeleton`) and lets shape inference carry N through the graph; the shapes the
  file states for its outputs and intermediate tensors, which hold B, are dropped and
  re-inferred. Shape tensors computed from the inputs (``Shape``, ``Gather``, ``Concat``,
  as exporters of dynamic models write them) follow N. What cannot follow is a constant that
  holds the old batch: a ``Reshape`` of batch-carrying data to a constant target shape whose
  leading entry is neither ``0`` (copy the input's axis) nor ``-1`` (infer it) fixes the
  batch (``[1, 2048]``, ``[1, -1, 16, 64]``, ``[384, 1024]`` for B x 384 tokens), and the
  result at N would be wrong, not refused. Such a graph is refused by name, with the fix.
  Any other constant that disagrees with N (an ``Add`` of a ``[B, ...]`` constant, a
  ``Split`` of axis 0) fails shape inference, whose message then says that ``--batch``
  changed the batch.

A graph without inputs, with a scalar or shapeless input, or whose inputs disagree on the
leading axis has no batch to change and is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from onnx import ModelProto, TensorProto, numpy_helper

from ..errors import ModelError
from .context import MAX_DIM, show


#: A Reshape target longer than this is not a shape (ONNX ranks stay far below it; an
#: assumption that only bounds what is read).
MAX_SHAPE_RANK = 64


@dataclass(frozen=True)
class Rebatch:
    """How ``--batch`` changes a graph: bind a symbolic dim, or set fixed leading axes.

    Attributes
    ----------
    batch : int or None
        The batch asked for (None: the graph runs as its file states).
    dims : dict
        The symbolic dims to bind, with the batch's added when it is symbolic.
    lead : int or None
        The new leading axis of every graph input when the file fixed it (None: nothing to
        set, the batch is symbolic or already ``batch``).
    old : int or None
        The file's fixed batch (None when symbolic).
    """

    batch: int | None
    dims: dict
    lead: int | None = None
    old: int | None = None

    def hint(self) -> str:
        """What to tell a user whose graph failed shape inference after the change."""
        if self.lead is None:
            return ""
        return (f" (--batch {self.batch} changed the inputs' leading axis from {self.old}; a "
                f"constant of the model holds the old batch: run it at --batch {self.old}, or "
                f"re-export it with a symbolic batch dim, e.g. torch.onnx.export's "
                f"dynamic_axes)")


def rebatch(model: ModelProto, batch, dims: Mapping[str, int], label: str) -> Rebatch:
    """How to run ``model`` at ``batch``, given the symbolic ``dims`` already asked for.

    Raises
    ------
    ModelError
        ``batch`` not a positive integer; no batch axis to change (no inputs, a scalar or
        shapeless input, inputs that disagree on their leading axis); ``--dim`` binding the
        batch's symbolic dim to another value; or a constant of the graph fixing the old batch
        (the message names the node and the fix).
    """
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) \
            or not 1 <= batch <= MAX_DIM:
        raise ModelError(f"{label}: --batch {batch!r} must be a positive integer of at most "
                         f"2**40")
    batch = int(batch)
    dims = dict(dims)
    leads = _leading_axes(model, label)
    kinds = {type(v) for v in leads.values()}
    values = set(leads.values())
    if len(values) > 1:
        listed = ", ".join(f"{show(n)}: {v}" for n, v in leads.items())
        raise ModelError(f"{label}: --batch needs one leading (batch) axis shared by every graph "
                         f"input, but they differ ({listed}); bind the dims one by one with "
                         f"--dim NAME=VALUE or re-export the model with one batch axis")
    (value,) = values
    if kinds == {str}:
        if value in dims and dims[value] != batch:
            raise ModelError(f"{label}: --batch {batch} and --dim {show(value)}={dims[value]} "
                             f"disagree on the batch axis {show(value)}; give one of them")
        dims[value] = batch
        return Rebatch(batch, dims)
    if value == batch:
        return Rebatch(batch, dims)
    _check_constants(model, value, batch, label)
    return Rebatch(batch, dims, lead=batch, old=value)


def _leading_axes(model: ModelProto, label: str) -> dict[str, int | str]:
    """Leading axis (a size or a dim name) of each graph input that is not an initializer."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    out: dict[str, int | str] = {}
    for vi in g.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        dims = list(tt.shape.dim) if tt is not None and tt.HasField("shape") else None
        if not dims:
            what = "a scalar" if dims == [] else "a tensor without a stated shape"
            raise ModelError(f"{label}: --batch: graph input {show(vi.name)!r} is {what}, so "
                             f"the graph has no batch axis shared by its inputs; bind its dims "
                             f"with --dim NAME=VALUE instead, or drop --batch")
        d = dims[0]
        if d.HasField("dim_param"):
            out[vi.name] = d.dim_param
        elif d.HasField("dim_value"):
            out[vi.name] = int(d.dim_value)
        else:
            raise ModelError(f"{label}: --batch: the leading axis of graph input "
                             f"{show(vi.name)!r} has neither a size nor a name; give it one "
                             f"(re-export with dynamic_axes) or drop --batch")
    if not out:
        raise ModelError(f"{label}: --batch: the graph has no inputs, so no batch axis to "
                         f"change; drop --batch")
    return out


def _check_constants(model: ModelProto, old: int, batch: int, label: str) -> None:
    """Refuse a Reshape of batch-carrying data to a constant shape that fixes the batch."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    constant_nodes = {n.output[0]: n for n in g.node if n.op_type == "Constant" and n.output}
    carried = {vi.name for vi in g.input if vi.name not in inits}
    for index, node in enumerate(g.node):
        if not any(i in carried for i in node.input if i):
            continue
        carried.update(o for o in node.output if o)
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[0] not in carried:
            continue
        target = node.input[1]
        if target in carried:
            continue        # computed from the inputs' shapes: follows the batch
        shape = _constant_ints(target, inits, constant_nodes)
        name = show(node.name or f"Reshape_{index}")
        if shape is not None and (shape.size == 0 or int(shape[0]) in (0, -1)):
            continue
        what = (f"the constant shape {shape.tolist()}, whose leading {int(shape[0])} fixes "
                f"the batch" if shape is not None else
                f"a shape computed from constants only, which cannot follow the batch")
        raise ModelError(f"{label}: --batch {batch}: node {name!r} (Reshape) reshapes "
                         f"batch-carrying data to {what} (the file's batch is {old}), so the "
                         f"graph cannot be run at another batch; run it at --batch {old} or "
                         f"re-export it with a symbolic batch dim (torch.onnx.export's "
                         f"dynamic_axes), which writes 0 or -1 or a Shape-derived value there")


def _constant_ints(name: str, inits: dict, constant_nodes: dict) -> np.ndarray | None:
    """The integer value of an initializer or a ``Constant`` node's ``value``, else None."""
    tensor = inits.get(name)
    if tensor is None and name in constant_nodes:
        for a in constant_nodes[name].attribute:
            if a.name == "value" and a.HasField("t"):
                tensor = a.t
            elif a.name == "value_ints":
                return np.asarray(list(a.ints), dtype=np.int64)
    if tensor is None or tensor.data_location == TensorProto.EXTERNAL \
            or np.prod(tensor.dims) > MAX_SHAPE_RANK:
        return None
    try:
        return np.asarray(numpy_helper.to_array(tensor)).reshape(-1).astype(np.int64)
    except Exception:  # unreadable (external data, bad bytes): treated as not known
        return None
