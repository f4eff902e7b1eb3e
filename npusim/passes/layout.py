"""Layout: a transpose read only by contractions is not a data movement.

A contraction reads its operands through projections, so reading ``X`` transposed is a
different projection of ``X``, not a copy: attention's ``Q K^T`` reads the K cache as it lies
(a kernel indexes it by column), a ``MatMul`` with a transposed weight reads the weight. This
pass removes such transposes and rewrites the readers' operand axes (output axis ``j`` of a
transpose is input axis ``perm[j]``, so input axis ``k`` is read through the axis that output
axis ``perm.index(k)`` was read through).
"""
from __future__ import annotations

from dataclasses import replace

from ..ir import Contraction, Graph, Movement, Operand


def fold_transposes(graph: Graph) -> Graph:
    """A copy of ``graph`` without the transposes that only contractions read.

    Examples
    --------
    >>> import npusim
    >>> g = npusim.load_model("tiny-llama", phase="decode", kv_len=8)  # folded on loading
    >>> transposed = {t.name for op in g.ops() if op.kind == "movement" and op.func == "transpose"
    ...               for t in op.outputs}
    >>> [op.name for op in g.ops() if op.kind == "contraction"
    ...  and any(t.name in transposed for t in op.inputs)]
    []
    """
    readers: dict[str, list] = {}
    for op in graph.ops():
        for t in op.inputs:
            readers.setdefault(t.name, []).append(op)
    aliased = set(graph.aliases.values())
    outputs = set(graph.outputs)
    fold: dict[str, tuple] = {}  # transposed tensor name -> (source tensor, perm)
    for op in graph.ops():
        if not (isinstance(op, Movement) and op.func == "transpose" and op.perm is not None
                and len(op.inputs) == 1 and len(op.outputs) == 1):
            continue
        y = op.outputs[0]
        users = readers.get(y.name, [])
        if (users and y.name not in outputs and y.name not in aliased
                and all(isinstance(u, Contraction) for u in users)):
            fold[y.name] = (op.inputs[0], op.perm, op.name)
    if not fold:
        return graph
    dropped = {name for _, _, name in fold.values()}

    def operand(o: Operand) -> Operand:
        hit = fold.get(o.tensor.name)
        if hit is None:
            return o
        x, perm, _ = hit
        return Operand(x, tuple(o.axes[perm.index(k)] for k in range(len(perm))))

    out = Graph(graph.name, dict(graph.meta))
    out.inputs, out.outputs = list(graph.inputs), list(graph.outputs)
    out.warnings = list(graph.warnings)
    out.aliases.update(graph.aliases)
    for op in graph.ops():
        if op.name in dropped:
            continue
        if isinstance(op, Contraction) and any(o.tensor.name in fold for o in op.operands):
            ins = tuple(fold[t.name][0] if t.name in fold else t for t in op.inputs)
            op = replace(op, inputs=ins, operands=tuple(operand(o) for o in op.operands))
        out.add(op)
    for name, t in graph.tensors.items():
        if name not in out.tensors and name not in fold:
            out.add_tensor(t)
    return out
