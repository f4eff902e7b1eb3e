"""Precision: store weights, activations and the KV cache in chosen dtypes.

A pass over the IR graph (no ONNX involved): it returns a new graph whose tensors carry the
requested storage dtypes, so every byte count downstream (roofline, engine, capacity) follows.

* **weights**: the matrix weights (rank >= 2) that contractions read, directly or through a
  gather (MoE experts), LM head included; embedding tables read only by a gather, norm scales and
  biases keep their dtype, as weight-only and W8A8 recipes leave them;
* **activations**: every floating-point activation;
* **kv**: the KV cache (tensors with role ``kv_cache`` and what is appended to them).

A contraction computes in the activation dtype; the arch decides what it really runs that in
(:meth:`npusim.arch.Arch.execution_dtype`), and a weight stored narrower (int4 with group scales,
MXFP4 with its shared scales) costs its storage bytes while the engine dequantises on the fly.
"""
from __future__ import annotations

from dataclasses import replace

from ..ir import Contraction, DType, Graph, Movement, Operand, Role, Tensor, dtype


def _matrix_weights(graph: Graph) -> set[str]:
    """Names of weights that feed contractions, directly or through a gather."""
    out: set[str] = set()
    contraction_inputs = {t.name for op in graph.ops() if isinstance(op, Contraction)
                          for t in op.inputs}
    for op in graph.ops():
        for t in op.inputs:
            if t.role != Role.WEIGHT or t.rank < 2 or not t.dtype.is_float:
                continue
            if isinstance(op, Contraction):
                out.add(t.name)
            elif isinstance(op, Movement) and any(o.name in contraction_inputs
                                                   for o in op.outputs):
                out.add(t.name)
    return out


def quantize(graph: Graph, *, weights: DType | str | None = None,
             activations: DType | str | None = None, kv: DType | str | None = None) -> Graph:
    """A copy of ``graph`` with weights, activations and KV cache in the given dtypes
    (``None`` leaves that class as it is).

    Examples
    --------
    >>> import npusim
    >>> g = npusim.load_model("tiny-llama", phase="decode", kv_len=8)
    >>> q = quantize(g, weights="int4_g128")
    >>> round(q.bytes_by_role()["weight"] / g.bytes_by_role()["weight"], 3) < 0.5
    True
    """
    w_dt = dtype(weights) if weights is not None else None
    a_dt = dtype(activations) if activations is not None else None
    kv_dt = dtype(kv) if kv is not None else None
    matrices = _matrix_weights(graph) if w_dt is not None else set()
    gathered: set[str] = set()  # gather outputs that carry quantised weights
    kv_derived: set[str] = set()
    for op in graph.ops():
        if isinstance(op, Movement) and op.inputs:
            if op.inputs[0].name in matrices:
                gathered.update(t.name for t in op.outputs)
            if kv_dt is not None and any(t.role == Role.KV_CACHE for t in op.inputs):
                kv_derived.update(t.name for t in op.outputs)
    roots = graph.aliases

    def new_dtype(t: Tensor) -> DType:
        name = roots.get(t.name, t.name)
        if w_dt is not None and (name in matrices or name in gathered
                                 or t.name in matrices or t.name in gathered):
            return w_dt
        if kv_dt is not None and (t.role == Role.KV_CACHE or name in kv_derived
                                  or t.name in kv_derived):
            return kv_dt
        if a_dt is not None and t.dtype.is_float and t.role == Role.ACTIVATION:
            return a_dt
        return t.dtype

    memo: dict[str, Tensor] = {}

    def conv(t: Tensor) -> Tensor:
        got = memo.get(t.name)
        if got is None:
            nd = new_dtype(t)
            got = t if nd == t.dtype else Tensor(t.name, t.shape, nd, t.role)
            memo[t.name] = got
        return got

    out = Graph(graph.name, dict(graph.meta))
    out.inputs = list(graph.inputs)
    out.outputs = list(graph.outputs)
    out.warnings = list(graph.warnings)
    for name, root in graph.aliases.items():
        out.aliases[name] = root
    for op in graph.ops():
        if isinstance(op, Contraction):
            new = replace(op, inputs=(), outputs=(),
                          operands=tuple(Operand(conv(o.tensor), o.axes) for o in op.operands),
                          output=Operand(conv(op.output.tensor), op.output.axes),
                          dtype=a_dt if a_dt is not None else op.dtype)
        else:
            new = replace(op, inputs=tuple(conv(t) for t in op.inputs),
                          outputs=tuple(conv(t) for t in op.outputs))
        out.add(new)
    for name, t in graph.tensors.items():
        if name not in out.tensors:
            out.add_tensor(conv(t))
    for name, producer in graph.producer.items():
        out.producer.setdefault(name, producer)
    out.meta["precision"] = {"weights": str(w_dt) if w_dt else None,
                             "activations": str(a_dt) if a_dt else None,
                             "kv": str(kv_dt) if kv_dt else None}
    return out
