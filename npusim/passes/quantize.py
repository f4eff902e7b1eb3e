"""Precision: store weights, activations and the KV cache in chosen dtypes.

A pass over the IR graph (no ONNX involved): it returns a new graph whose tensors carry the
requested storage dtypes, so every byte count downstream (roofline, engine, capacity) follows.

* **weights**: the matrix weights (rank >= 2) that contractions read, directly or through a
  gather (MoE experts), LM head included; embedding tables read only by a gather, norm scales and
  biases keep their dtype, as weight-only and W8A8 recipes leave them;
* **activations**: every floating-point activation in the graph's working dtype (the most
  common float dtype of its activations); one the model computes in another dtype on purpose
  (an MoE router's fp32 softmax in a bf16 model) keeps it;
* **kv**: the KV cache (tensors with role ``kv_cache`` and what is appended to them).

A contraction computes in the activation dtype; the arch decides what it really runs that in
(:meth:`npusim.arch.Arch.execution_dtype`), and a weight stored narrower (int4 with group scales,
MXFP4 with its shared scales) costs its storage bytes while the engine dequantises on the fly.

A **precision** is a named recipe of those three dtypes (:data:`PRECISIONS`); every front door
(``npusim run --dtype``, :func:`npusim.load_model`, :func:`npusim.simulate`, ``npusim kperf
--precision``, the serving cost model, validation rows) resolves a name with
:func:`resolve_precision` and applies it with :func:`apply_precision`, so a name means the same
thing everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import NpusimError
from ..ir import Contraction, DType, Graph, Movement, Operand, Role, Tensor, dtype


@dataclass(frozen=True)
class Precision:
    """Storage dtypes of weights, activations (and the compute dtype) and the KV cache."""

    name: str
    weights: str
    activations: str
    kv: str


# The precisions K-Perf sweeps, as deployed: W8A8 fp8 and int8 keep a 16-bit KV cache (as
# FuriosaAI's FP8 builds do, rngd.md section 2); int4 is weight-only with an fp16 scale per 128
# weights (GPTQ/AWQ); mxfp4 is OCP MX weights with fp8 activations where the arch runs them with
# fp8 (an FP4 path, or a fallback to fp8), else W4A16 (resolve_precision).
# fp32 is the unquantised reference (training precision), not a K-Perf precision.
PRECISIONS = {
    "bf16": Precision("bf16", "bf16", "bf16", "bf16"),
    "fp16": Precision("fp16", "fp16", "fp16", "fp16"),
    "fp32": Precision("fp32", "fp32", "fp32", "fp32"),
    "fp8": Precision("fp8", "fp8_e4m3", "fp8_e4m3", "bf16"),
    "int8": Precision("int8", "int8", "int8", "bf16"),
    "int4": Precision("int4", "int4_g128", "bf16", "bf16"),
    "mxfp4": Precision("mxfp4", "mxfp4", "fp8_e4m3", "bf16"),
}


class PrecisionError(NpusimError):
    """A precision name that is not one of :data:`PRECISIONS`."""


def resolve_precision(p: str | Precision, arch=None) -> Precision:
    """The precision named ``p`` (one of :data:`PRECISIONS`), as ``arch`` runs it if given.

    On an arch without native fp8, or whose ``dtype_fallback.mxfp4`` dequantises MXFP4 to a
    16-bit float (Hopper), MXFP4 weights run with bf16 (fp16) activations, W4A16, instead of
    fp8; an arch that cannot run the weights or activations at all raises ArchError
    (:meth:`npusim.arch.Arch.execution_dtype`).

    Examples
    --------
    >>> resolve_precision("fp8")
    Precision(name='fp8', weights='fp8_e4m3', activations='fp8_e4m3', kv='bf16')
    >>> resolve_precision("fp9")
    Traceback (most recent call last):
    ...
    npusim.passes.quantize.PrecisionError: precision 'fp9' is not one of bf16, fp16, fp32, fp8, int8, int4, mxfp4 (did you mean 'fp8'?)
    """
    if isinstance(p, Precision):
        prec = p
    else:
        prec = PRECISIONS.get(p) if isinstance(p, str) else None
        if prec is None:
            from ..arch.schema import did_you_mean
            raise PrecisionError(f"precision {p!r} is not one of {', '.join(PRECISIONS)}"
                                 f"{did_you_mean(str(p), list(PRECISIONS))}")
    if arch is None:
        return prec
    act = prec.activations
    if prec.name == "mxfp4":
        act = _mxfp4_activations(arch, act)
    for name in (prec.weights, act):
        arch.execution_dtype(name)  # raises ArchError if the arch cannot run it at all
    return Precision(prec.name, prec.weights, act, prec.kv)


def _mxfp4_activations(arch, act: str) -> str:
    """The activation dtype MXFP4 weights run with on ``arch``.

    Without native fp8 the MX weights are dequantised to bf16 (W4A16). With fp8 but no FP4
    MMA, the arch's own ``dtype_fallback.mxfp4`` says what the weights are dequantised to:
    a 16-bit float there means the stacks run W4A16 with activations in it (Hopper: vLLM's
    mxfp4 MoE on SM90 is ``mxfp4_w4a16``, and TensorRT-LLM's gpt-oss support matrix lists
    bf16 activations with MXFP4 weights on Hopper, examples/models/core/gpt_oss/README.md);
    an fp8 fallback (RNGD's fetch adapter decodes MXFP4 to fp8) keeps fp8 activations.
    """
    macs = arch.cores.engine.macs_per_cycle
    if "fp8_e4m3" not in macs:
        return "bf16"
    if "mxfp4" not in macs:
        fallback = arch.dtype_fallback.get("mxfp4")
        if fallback in ("bf16", "fp16"):
            return fallback
    return act


def checkpoint_dtype(p: Precision) -> str:
    """The float dtype a built-in LLM is built in before :func:`apply_precision` narrows it:
    fp32 for the fp32 reference, else bf16 (every shipped config's published dtype)."""
    return "fp32" if p.activations == "fp32" else "bf16"


def apply_precision(graph: Graph, p: str | Precision, *, experts_only: bool = False) -> Graph:
    """``graph`` with its weights, activations and KV cache in precision ``p``'s dtypes.

    ``experts_only``: only the MoE expert weights (stacked per expert or gathered) take the
    weight dtype; the other matrices keep theirs, as a checkpoint quantised that way ships
    them (gpt-oss: MXFP4 experts, everything else bf16; :func:`npusim.frontend.llm.mx_experts_only`).

    Examples
    --------
    >>> import npusim
    >>> g = npusim.load_model("tiny-llama", phase="decode", kv_len=8, dtype="bf16")
    >>> apply_precision(g, "fp8").meta["precision"]["weights"]
    'fp8_e4m3'
    """
    p = resolve_precision(p)
    return quantize(graph, weights=p.weights, activations=p.activations, kv=p.kv,
                    experts_only=experts_only)


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


def _working_dtype(graph: Graph) -> DType | None:
    """The most common float dtype of the graph's activations (first seen on ties)."""
    count: dict[DType, int] = {}
    for t in graph.tensors.values():
        if t.role == Role.ACTIVATION and t.dtype.is_float:
            count[t.dtype] = count.get(t.dtype, 0) + 1
    return max(count, key=count.get) if count else None


def quantize(graph: Graph, *, weights: DType | str | None = None,
             activations: DType | str | None = None, kv: DType | str | None = None,
             experts_only: bool = False) -> Graph:
    """A copy of ``graph`` with weights, activations and KV cache in the given dtypes
    (``None`` leaves that class as it is); with ``experts_only`` the weight dtype goes only to
    the MoE expert matrices (stacked per expert, or read through a gather).

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
    if experts_only:   # expert weights are stacked (experts x in x out) or gathered rows
        gathers = {op.inputs[0].name for op in graph.ops()
                   if isinstance(op, Movement) and op.inputs}
        matrices = {m for m in matrices
                    if m in gathers or graph.tensors[m].rank >= 3}
    gathered: set[str] = set()  # gather outputs that carry quantised weights
    kv_derived: set[str] = set()
    for op in graph.ops():
        if isinstance(op, Movement) and op.inputs:
            if op.inputs[0].name in matrices:
                gathered.update(t.name for t in op.outputs)
            if kv_dt is not None and any(t.role == Role.KV_CACHE for t in op.inputs):
                kv_derived.update(t.name for t in op.outputs)
    roots = graph.aliases
    working = _working_dtype(graph)

    def new_dtype(t: Tensor) -> DType:
        name = roots.get(t.name, t.name)
        if w_dt is not None and (name in matrices or name in gathered
                                 or t.name in matrices or t.name in gathered):
            return w_dt
        if kv_dt is not None and (t.role == Role.KV_CACHE or name in kv_derived
                                  or t.name in kv_derived):
            return kv_dt
        if a_dt is not None and t.role == Role.ACTIVATION and t.dtype == working:
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
