"""What a lowering sees: one ONNX node with its tensors resolved, and helpers to build ops.

:class:`Session` holds what the loader learned about the whole model (types and shapes after
inference, which tensors are constants, small constant values, the IR tensors made so far);
:class:`Node` is the view of one node handed to its lowering.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from onnx import AttributeProto, NodeProto

from ..errors import ModelError
from ..ir import (Axis, Contraction, DType, Elementwise, Graph, Movement, Op, Operand, Pool,
                  Reduction, Role, Tensor)
from .dtypes_onnx import ir_dtype

#: Assumption: no axis of a real model is longer than 2**40 (about 1.1e12; the largest
#: vocabularies, context lengths and weight axes are below 1e7), and no tensor has more than
#: 2**50 elements (about a petabyte even at one byte each, beyond any simulated system's
#: memory). Larger figures come from corrupt files (a dim of 2**63-1) and would overflow the
#: engine's 64-bit counts, so they are refused rather than costed.
MAX_DIM = 2 ** 40
MAX_ELEMENTS = 2 ** 50
#: Assumption: no single op of a real model does more than 2**60 (about 1.2e18) MACs; the
#: largest LLM matmuls do about 1e13. The engine's 64-bit tile counts overflow past this.
MAX_MACS = 2 ** 60

#: Each ONNX attribute type: how messages name it and the AttributeProto field holding it.
ATTRIBUTE_KINDS = {
    AttributeProto.FLOAT: ("float", "f"), AttributeProto.INT: ("int", "i"),
    AttributeProto.STRING: ("string", "s"), AttributeProto.TENSOR: ("tensor", "t"),
    AttributeProto.GRAPH: ("graph", "g"), AttributeProto.SPARSE_TENSOR: ("sparse tensor",
                                                                      "sparse_tensor"),
    AttributeProto.TYPE_PROTO: ("type", "tp"), AttributeProto.FLOATS: ("floats", "floats"),
    AttributeProto.INTS: ("ints", "ints"), AttributeProto.STRINGS: ("strings", "strings"),
    AttributeProto.TENSORS: ("tensors", "tensors"), AttributeProto.GRAPHS: ("graphs", "graphs"),
    AttributeProto.SPARSE_TENSORS: ("sparse tensors", "sparse_tensors"),
    AttributeProto.TYPE_PROTOS: ("types", "type_protos"),
}
_SINGULAR = frozenset({"f", "i", "s", "t", "g", "sparse_tensor", "tp"})
_REQUIRED = object()


def show(name: str) -> str:
    """``name`` as messages print it: as is, or quoted with escapes when it holds a newline
    or another control character (every error stays one line)."""
    return name if name.isprintable() else repr(name)


def check_shape(shape: Sequence[int], what: str) -> None:
    """Refuse a shape with a negative axis, an axis past :data:`MAX_DIM` or more than
    :data:`MAX_ELEMENTS` elements; ``what`` names the file and tensor."""
    bad = [d for d in shape if not 0 <= d <= MAX_DIM]
    if bad:
        raise ModelError(f"{what} has shape {tuple(shape)}, with axis size {bad[0]} outside "
                         f"0..2**40; fix the model's shapes or the --dim values")
    if math.prod(shape) > MAX_ELEMENTS:
        raise ModelError(f"{what} has shape {tuple(shape)}: {math.prod(shape):,} elements, "
                         f"more than npusim's bound of 2**50; fix the model's shapes or the "
                         f"--dim values")


def attribute_problem(a: AttributeProto) -> str | None:
    """Why attribute ``a``'s content disagrees with its declared type, or None if it agrees.

    onnx's own readers trust ``type`` and read that one field, so an attribute declared INTS
    that also holds a float, or one whose type is UNDEFINED, would be read as something it
    is not (or crash them); onnx.checker refuses both, and so does npusim.
    """
    if a.type not in ATTRIBUTE_KINDS:  # protobuf reads an unknown type code as UNDEFINED
        return "has no declared type (UNDEFINED)"
    kind, field_name = ATTRIBUTE_KINDS[a.type]
    held = [f for _, f in ATTRIBUTE_KINDS.values()
            if (a.HasField(f) if f in _SINGULAR else len(getattr(a, f)) > 0)]
    others = [f for f in held if f != field_name]
    if others:
        return f"is declared {kind} but holds field(s) {', '.join(others)}"
    if a.ref_attr_name:
        return f"refers to function attribute {a.ref_attr_name!r} outside a function"
    return None


def attribute(proto: NodeProto, name: str, kind: str, default: Any = _REQUIRED, *,
              length: int | None = None, low: int | float | None = None,
              where: str = "") -> Any:
    """Attribute ``name`` of ``proto`` read as ``kind`` ("int", "ints", "float", "floats",
    "string", "strings"): the one reader every lowering goes through, so an attribute of the
    wrong type, one missing without a default, a list of the wrong length or a value below
    ``low`` is a :class:`ModelError` naming ``where`` (the file and node), never a crash or a
    silently misread number. Strings are decoded from UTF-8; lists come back as lists.
    """
    found = [a for a in proto.attribute if a.name == name]
    if not found:
        if default is _REQUIRED:
            raise ModelError(f"{where}: attribute {name!r} ({kind}) is required but missing; "
                             f"set it on the node")
        return default
    a = found[-1]
    problem = attribute_problem(a)
    declared = ATTRIBUTE_KINDS.get(a.type, ("undefined", ""))[0]
    if problem is None and declared != kind:
        problem = f"is {declared}"
    if problem is not None:
        raise ModelError(f"{where}: attribute {name!r} {problem}, expected {kind}; fix its "
                         f"type in the model")
    value: Any = getattr(a, ATTRIBUTE_KINDS[a.type][1])
    if kind in ("ints", "floats", "strings"):
        value = list(value)
    try:
        if kind == "string":
            value = value.decode("utf-8")
        elif kind == "strings":
            value = [v.decode("utf-8") for v in value]
    except UnicodeDecodeError:
        raise ModelError(f"{where}: attribute {name!r} is not UTF-8 text ({value!r:.80}); fix "
                         f"it in the model") from None
    if length is not None and len(value) != length:
        raise ModelError(f"{where}: attribute {name!r} has {len(value)} values {value!r:.80}, "
                         f"expected {length}; fix it in the model")
    if kind == "float" and not math.isfinite(value) or kind == "floats" and not all(
            math.isfinite(v) for v in value):
        raise ModelError(f"{where}: attribute {name!r} is not finite ({value!r:.80}); fix it "
                         f"in the model")
    if low is not None and any(v < low for v in (value if isinstance(value, list) else [value])):
        raise ModelError(f"{where}: attribute {name!r} = {value!r:.80} must be >= {low}; fix "
                         f"it in the model")
    return value


@dataclass
class Session:
    """Model-wide facts shared by every node's lowering.

    Attributes
    ----------
    label : str
        The file name (or model name) used in error messages.
    types : dict
        Tensor name -> ``(onnx elem type, shape or None)``; a shape is None when unknown.
    const : set of str
        Tensors computed from initializers and constants only (folded, never an op).
    weight_names : set of str
        Constants read at a lowering's weight position (integer-typed weights included).
    kv_names : set of str
        Graph inputs and outputs named like a KV cache.
    trained : set of str
        Constants that hold (stand-ins for) trained values: initializers, Constant nodes,
        ConstantOfShape fills, and re-layouts of those; not tables computed by arithmetic
        (rotary cos/sin, masks), which are constants.
    value_of : callable
        ``name -> numpy array or None``: the value of a small constant.
    """

    label: str
    graph: Graph
    types: dict[str, tuple[int, tuple[int, ...] | None]]
    const: set[str]
    weight_names: set[str]
    kv_names: set[str]
    value_of: Callable[[str], np.ndarray | None]
    trained: set[str] = field(default_factory=set)
    tensors: dict[str, Tensor] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    op_names: set[str] = field(default_factory=set)

    def role(self, name: str, dt: DType, shape: tuple[int, ...]) -> Role:
        """Role of a tensor: KV cache by name, weight or constant if folded, else activation."""
        if name in self.kv_names or self.aliases.get(name) in self.kv_names:
            return Role.KV_CACHE
        root = self.tensors.get(self.aliases.get(name, name))
        if root is not None and root.name != name and root.role == Role.WEIGHT:
            return Role.WEIGHT                   # a view of a weight (selected experts)
        if name in self.const:
            big = math.prod(shape) > 1  # a scalar scale or zero point is not a parameter
            if big and (name in self.weight_names or (name in self.trained and dt.is_float)):
                return Role.WEIGHT
            return Role.CONSTANT
        return Role.ACTIVATION

    def tensor(self, name: str, shape: tuple[int, ...] | None = None,
               dt: DType | None = None) -> Tensor:
        """The IR tensor of ONNX tensor ``name`` (made once; later calls must agree)."""
        t = self.tensors.get(name)
        same_shape = shape is None or (t is not None and tuple(shape) == t.shape)
        if t is not None and same_shape and (dt is None or dt == t.dtype):
            return t
        elem, known = self.types.get(name, (0, None))
        shape = tuple(int(s) for s in shape) if shape is not None else known
        if shape is None:
            raise ModelError(f"{self.label}: the shape of tensor {name!r} is unknown after shape "
                             f"inference; bind every symbolic dim (--dim NAME=VALUE) or give the "
                             f"model static shapes")
        dt = dt or ir_dtype(elem)
        if dt is None:
            raise ModelError(f"{self.label}: tensor {name!r} has ONNX element type {elem}, "
                             f"which npusim cannot cost (strings, complex or unknown)")
        if t is not None:
            raise ModelError(f"{self.label}: tensor {name!r} is used as {t.shape} {t.dtype} and "
                             f"as {shape} {dt}; npusim needs one shape per tensor")
        check_shape(shape, f"{self.label}: tensor {name!r}")
        t = Tensor(name, shape, dt, self.role(name, dt, shape))
        self.tensors[name] = t
        return t

    def alias(self, view: str, of: str) -> None:
        """Record ONNX tensor ``view`` as a free view of ``of`` (see :meth:`Graph.alias`)."""
        root = self.aliases.get(of, of)
        self.aliases[view] = root
        self.graph.alias(view, root)

    def unique(self, base: str) -> str:
        """An op name not used before, ``base`` itself when possible."""
        name, k = base, 1
        while name in self.op_names:
            k += 1
            name = f"{base}#{k}"
        self.op_names.add(name)
        return name


class Node:
    """One ONNX node as its lowering sees it.

    Inputs and outputs are addressed by position; ``inp(i)`` gives the IR tensor (shape from
    shape inference, role decided by the loader) and ``out(i)`` the output tensor. Helper
    methods build IR ops named after the node, with ``source`` = the node name and ``op_type``
    = the ONNX op type.
    """

    def __init__(self, proto: NodeProto, source: str, session: Session) -> None:
        self.proto = proto
        self.source = source
        self.op_type = proto.op_type
        self.domain = proto.domain
        self.s = session

    # -- reading ----------------------------------------------------------------------
    def __str__(self) -> str:
        dom = f" (domain {show(self.domain)})" if self.domain not in ("", "ai.onnx") else ""
        return f"node {self.source!r} ({show(self.op_type)}{dom})"

    def fail(self, msg: str) -> ModelError:
        """A ModelError naming the file and this node; the caller raises it."""
        return ModelError(f"{self.s.label}: {self}: {msg}")

    def attr(self, name: str, kind: str, default: Any = _REQUIRED, *, length: int | None = None,
             low: int | float | None = None) -> Any:
        """Attribute ``name`` as ``kind`` (see :func:`attribute`): lowerings read attributes
        only through this, so a wrong type or a missing required one names this node."""
        return attribute(self.proto, name, kind, default, length=length, low=low,
                         where=f"{self.s.label}: {self}")

    def has_attr(self, name: str) -> bool:
        return any(a.name == name for a in self.proto.attribute)

    @property
    def n_in(self) -> int:
        return len(self.proto.input)

    @property
    def n_out(self) -> int:
        return len(self.proto.output)

    def has(self, i: int) -> bool:
        """Input ``i`` is given (ONNX marks an omitted optional input with an empty name)."""
        return i < len(self.proto.input) and bool(self.proto.input[i])

    def has_out(self, i: int) -> bool:
        return i < len(self.proto.output) and bool(self.proto.output[i])

    def in_name(self, i: int) -> str:
        if not self.has(i):
            raise self.fail(f"input {i} is required but missing")
        return self.proto.input[i]

    def inp(self, i: int, rank: int | tuple[int, ...] | None = None) -> Tensor:
        """IR tensor of input ``i``; with ``rank``, one of the ranks the lowering handles
        (ops of custom domains have no onnx shape inference to check it first)."""
        if not self.has(i):
            raise self.fail(f"input {i} is required but missing")
        t = self.s.tensor(self.proto.input[i])
        ranks = (rank,) if isinstance(rank, int) else rank
        if ranks is not None and t.rank not in ranks:
            raise self.fail(f"input {i} ({t.name!r}) has shape {t.shape}, of rank {t.rank}; "
                            f"{self.op_type} takes rank {' or '.join(map(str, ranks))} here. "
                            f"Fix the model's shapes")
        return t

    def inputs(self) -> list[Tensor]:
        """Every given input, in order."""
        return [self.inp(i) for i in range(self.n_in) if self.has(i)]

    def shape(self, i: int) -> tuple[int, ...]:
        return self.inp(i).shape

    def value(self, i: int) -> np.ndarray | None:
        """Value of input ``i`` if it is a small constant, else None."""
        return self.s.value_of(self.proto.input[i]) if self.has(i) else None

    def int_value(self, i: int, what: str) -> list[int]:
        """Input ``i`` as a list of ints; it must be a constant (axes, pads, sizes)."""
        if not self.has(i):
            raise self.fail(f"{what} (input {i}) is required but missing")
        v = self.value(i)
        if v is None:
            raise self.fail(f"{what} (input {i}, {self.proto.input[i]!r}) must be a constant "
                            f"npusim can fold; it is computed at run time")
        return [int(x) for x in np.asarray(v).reshape(-1)]

    def out(self, i: int = 0, shape: Sequence[int] | None = None,
            dt: DType | None = None) -> Tensor:
        """IR tensor of output ``i``; ``shape``/``dt`` are used when inference gave none."""
        if not self.has_out(i):
            raise self.fail(f"output {i} is required but missing")
        name = self.proto.output[i]
        elem, known = self.s.types.get(name, (0, None))
        if shape is not None and known is not None and tuple(shape) != tuple(known):
            raise self.fail(f"output {name!r} has shape {tuple(known)} by ONNX shape inference "
                            f"but {tuple(shape)} by npusim's lowering; the model's shapes are "
                            f"inconsistent")
        if known is not None:
            shape = None
        if dt is None and ir_dtype(elem) is None and self.has(0):
            dt = self.inp(0).dtype
        return self.s.tensor(name, shape, dt if ir_dtype(elem) is None else None)

    def outputs(self) -> list[Tensor]:
        return [self.out(i) for i in range(self.n_out) if self.has_out(i)]

    def alias(self, out_i: int = 0, in_i: int = 0) -> list[Op]:
        """Make output ``out_i`` a free view of input ``in_i``: no op, no data moved.

        The view keeps its own name and shape; the graph records it as sharing the input's
        storage, so readers depend on the input's producer and bytes are counted once.
        """
        self.s.alias(self.proto.output[out_i] if self.has_out(out_i) else self.out(out_i).name,
                     self.in_name(in_i))
        return []

    # -- building ---------------------------------------------------------------------
    def name(self, suffix: str = "") -> str:
        return self.s.unique(f"{self.source}/{suffix}" if suffix else self.source)

    def tmp(self, suffix: str, shape: Sequence[int], dt: DType) -> Tensor:
        """A fresh intermediate activation inside this node (``<first output>/<suffix>``)."""
        base = f"{self.proto.output[0] if self.n_out else self.source}/{suffix}"
        name, k = base, 1
        while name in self.s.tensors or name in self.s.types:
            k += 1
            name = f"{base}#{k}"
        check_shape(tuple(shape), f"{self.s.label}: {self}: intermediate {name!r}")
        t = Tensor(name, tuple(shape), dt, Role.ACTIVATION)
        self.s.tensors[name] = t
        return t

    def _common(self, suffix: str, inputs: Iterable[Tensor] | None,
                outputs: Iterable[Tensor] | None) -> dict:
        return dict(name=self.name(suffix), source=self.source, op_type=self.op_type,
                    inputs=tuple(self.inputs() if inputs is None else inputs),
                    outputs=tuple(self.outputs() if outputs is None else outputs))

    def elementwise(self, func: str, ops_per_element: float = 1.0, *, inputs=None, outputs=None,
                    suffix: str = "") -> Elementwise:
        return Elementwise(func=func, ops_per_element=float(ops_per_element),
                           **self._common(suffix, inputs, outputs))

    def reduction(self, func: str, ops_per_element: float = 1.0, *, inputs=None, outputs=None,
                  suffix: str = "") -> Reduction:
        return Reduction(func=func, ops_per_element=float(ops_per_element),
                         **self._common(suffix, inputs, outputs))

    def pool(self, func: str, ops_per_element: float, *, window: Sequence[int],
             strides: Sequence[int], dilations: Sequence[int], pads: Sequence[int]) -> Pool:
        """A window pooling: a reduction that keeps its window (a spiking network makes an
        average pool a projection from it)."""
        return Pool(func=func, ops_per_element=float(ops_per_element), window=tuple(window),
                    strides=tuple(strides), dilations=tuple(dilations), pads=tuple(pads),
                    **self._common("", None, None))

    def movement(self, func: str, moved_bytes: float | None = None, *, inputs=None, outputs=None,
                 suffix: str = "") -> Movement:
        return Movement(func=func, moved_bytes=None if moved_bytes is None else float(moved_bytes),
                        **self._common(suffix, inputs, outputs))

    def contraction(self, dims: Sequence[tuple[str, int]], operands: Sequence[Operand],
                    output: Operand, dt: DType, *, extra_inputs: Sequence[Tensor] = (),
                    suffix: str = "") -> Contraction:
        """A contraction; ``extra_inputs`` (bias, scales, zero points) are read, not multiplied."""
        macs = math.prod(int(e) for _, e in dims)
        if macs > MAX_MACS:
            raise self.fail(f"{macs:,} MACs in one op, more than npusim's bound of 2**60 (dims "
                            f"{dict(dims)}); fix the model's shapes or the --dim values")
        ins = [o.tensor for o in operands]
        ins += [t for t in extra_inputs if all(t.name != x.name for x in ins)]
        return Contraction(name=self.name(suffix), source=self.source, op_type=self.op_type,
                           dims=tuple((d, int(e)) for d, e in dims), operands=tuple(operands),
                           output=output, dtype=dt, inputs=tuple(ins), outputs=(output.tensor,))


def operand(t: Tensor, *axes: str | Axis | None) -> Operand:
    """An operand whose axes are dims (by name), affine :class:`Axis` objects, or None for a
    broadcast axis of size 1."""
    return Operand(t, tuple(Axis(()) if a is None else Axis.of(a) if isinstance(a, str) else a
                            for a in axes))
