"""Load an ONNX model into an IR graph: read, bind symbolic dims, infer shapes, fold, lower.

Weights are never read: the file is opened with ``load_external_data=False`` and only tensor
shapes and small constants (shape tensors, axes, indices) are ever evaluated, so a model with
a 100 GB external-data file loads in the time it takes to walk its nodes, and no path named
inside the model is ever opened.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Mapping

import numpy as np
import onnx
import onnx.inliner
import onnx.reference.ops
import onnx.shape_inference
from onnx import ModelProto, NodeProto, TensorProto, TypeProto, helper, numpy_helper

from ..errors import ModelError, UnboundDimError, UnsupportedOpError
from ..ir import Graph, ShapeError
from .context import MAX_DIM, Node, Session, attribute, show
from .onnx_checks import check_functions, check_graph, check_text
from .rebatch import Rebatch, rebatch
from .registry import canonical_domain, lookup

#: Largest constant (in elements) npusim will materialise while folding shape sub-graphs.
#: Assumption: shape, axis and index tensors are far smaller; weights built by
#: ConstantOfShape are far larger and keep only their shape.
SMALL_CONST = 100_000

#: Graph inputs and outputs named like this carry the attention KV cache.
KV_PATTERN = re.compile(r"past_key_values|past_key|past_value|present|cache", re.IGNORECASE)

#: Ops that never fold: their result changes from run to run.
_NONDETERMINISTIC = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform",
                               "RandomUniformLike", "Multinomial", "Bernoulli"})
#: Ops with sub-graphs are not folded either (their bodies are not walked).
_CONTROL_FLOW = frozenset({"If", "Loop", "Scan", "SequenceMap"})
#: Quantisation of a large constant is real work done at run time (it is how int8 / fp8
#: weights reach the matmul), so it is lowered rather than folded.
_RUNTIME_ON_LARGE = frozenset({"DequantizeLinear", "QuantizeLinear", "DynamicQuantizeLinear"})
#: Ops whose output is a free view of input 0 (same bytes, another shape).
FREE_VIEWS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"})
#: Folded ops whose output holds trained values of input 0, re-laid out or partitioned
#: (a fused QKV weight split in three). Broadcasts (Expand, Tile) are not among them: they
#: repeat values and would count them again.
_RELAYOUT = FREE_VIEWS | {"Transpose", "Cast", "CastLike", "Split", "Slice", "Gather", "Concat",
                          "DequantizeLinear"}
#: Folded ops that create trained values (stand-ins for weights in exported test models).
_TRAINED_SOURCES = frozenset({"Constant", "ConstantOfShape"})
#: Ops whose output size is not bounded by their inputs' sizes: folded only after a size check.
_GROWING = frozenset({"ConstantOfShape", "Range", "Expand", "Tile", "Resize", "Upsample", "Pad",
                      "OneHot", "EyeLike"})

_ELEM_OF_NAME = {"fp32": TensorProto.FLOAT, "fp16": TensorProto.FLOAT16,
                 "bf16": TensorProto.BFLOAT16, "fp64": TensorProto.DOUBLE,
                 "int8": TensorProto.INT8, "uint8": TensorProto.UINT8,
                 "int16": TensorProto.INT16, "int32": TensorProto.INT32,
                 "int64": TensorProto.INT64, "bool": TensorProto.BOOL,
                 "fp8_e4m3": TensorProto.FLOAT8E4M3FN, "fp8_e5m2": TensorProto.FLOAT8E5M2,
                 "int4": TensorProto.INT4}

Types = dict[str, tuple[int, "tuple[int, ...] | None"]]


def load_onnx(src: str | Path | ModelProto, dims: Mapping[str, int] | None = None, *,
              on_unsupported: str = "error", name: str | None = None,
              batch: int | None = None, trusted: bool = False) -> Graph:
    """Load an ONNX model as an IR :class:`~npusim.ir.Graph`.

    Parameters
    ----------
    src : str, Path or onnx.ModelProto
        The model file (read without its external data) or an in-memory model.
    dims : mapping of str to int, optional
        Values of the symbolic dims of the graph inputs (``{"batch": 8}``); every symbolic dim
        of a graph input must be bound.
    on_unsupported : {"error", "memory"}
        What to do with a node that has no lowering: raise :class:`UnsupportedOpError`, or
        cost it as a :class:`~npusim.ir.Movement` of its inputs and outputs and add a line to
        ``graph.warnings``.
    name : str, optional
        Graph name (default: the ONNX graph's name, else the file's stem).
    batch : int, optional
        Run the graph at this batch: the leading axis its inputs share, bound when symbolic,
        changed when fixed (see :mod:`npusim.frontend.rebatch`, which refuses a graph whose
        constants fix the batch). ``graph.meta["batch"]`` records it.
    trusted : bool
        The model was built by npusim itself (:func:`npusim.graphs.builder.build_llm`), not
        read from a user: the boundary checks of :mod:`npusim.frontend.onnx_checks` (names,
        structure, declared sizes, attributes), which such a model always passes, are
        skipped, and the graph is the one they would have let through (a serving run loads
        hundreds of part graphs). Never set it for a model that came from outside npusim.

    Returns
    -------
    Graph
        Ops in the order of the ONNX nodes, each with ``source`` = the ONNX node name.

    Raises
    ------
    ModelError
        The file is not ONNX, is truncated, or its shapes disagree (the message names the node);
        or the model breaks a rule of the ONNX format (non-UTF-8 names, a tensor produced twice,
        nodes out of order or in a cycle, an attribute of the wrong type, a recursive function,
        sizes out of range: see :mod:`npusim.frontend.onnx_checks`).
    UnboundDimError
        A symbolic input dim has no value; the message lists every such name.
    UnsupportedOpError
        A node has no lowering and ``on_unsupported="error"``.

    Examples
    --------
    >>> from onnx import helper, TensorProto as T
    >>> g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
    ...     [helper.make_tensor_value_info("x", T.FLOAT, ["batch", 4])],
    ...     [helper.make_tensor_value_info("y", T.FLOAT, None)],
    ...     [helper.make_tensor("w", T.FLOAT, [4, 3], [0.0] * 12)])
    >>> graph = load_onnx(helper.make_model(g), {"batch": 2})
    >>> graph.macs, graph.parameters
    (24, 12)
    """
    if on_unsupported not in ("error", "memory"):
        raise ModelError(f"on_unsupported must be 'error' or 'memory', got {on_unsupported!r}")
    model, label = _read(src)
    if not trusted:
        check_text(model, label)
    if model.functions:
        check_functions(model, label)
        model = _inline(model, label)
    if not trusted:
        check_graph(model, label)
    change = Rebatch(None, dict(dims or {})) if batch is None else \
        rebatch(model, batch, dict(dims or {}), label)
    bound = _check_dims(model, change.dims, label)
    types = _infer(_skeleton(model, bound, change.lead), label, change.hint())
    from ..passes.layout import fold_transposes  # transposes read only by contractions are free
    graph = fold_transposes(_Walk(model, types, label, on_unsupported).run(name, bound))
    if batch is not None:
        graph.meta["batch"] = change.batch
    return graph


# -- reading ------------------------------------------------------------------------------
def _read(src: str | Path | ModelProto) -> tuple[ModelProto, str]:
    if isinstance(src, ModelProto):
        model, label = src, f"model {src.graph.name or '<in memory>'!r}"
    else:
        path = Path(src)
        label = show(str(path))
        if not path.is_file():
            raise ModelError(f"{label}: no such ONNX file; check the path")
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as e:  # protobuf raises several unrelated types on bad bytes
            raise ModelError(f"{path} is not a valid ONNX model: {type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else 'unreadable'}. Re-export "
                             f"or re-download it (a truncated download looks like this)") from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.output:
        raise ModelError(f"{label} is not a valid ONNX model: it has no IR version, graph or "
                         f"graph output (an empty, truncated or non-ONNX file). Re-export it")
    return model, label


def _inline(model: ModelProto, label: str) -> ModelProto:
    """The model with its (checked, non-recursive) local functions expanded in place."""
    try:
        return onnx.inliner.inline_local_functions(model)
    except Exception as e:  # onnx raises ValidationError or RuntimeError on a bad body
        first = " ".join(str(e).split())[:300] or type(e).__name__
        raise ModelError(f"{label}: its model-local functions cannot be expanded ({first}); "
                         f"fix or re-export the functions") from None


def _dims_of(vi: onnx.ValueInfoProto) -> list:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return []
    return list(vi.type.tensor_type.shape.dim)


def _check_dims(model: ModelProto, dims: dict[str, int], label: str) -> dict[str, int]:
    g = model.graph
    inits = {t.name for t in g.initializer}
    names: list[str] = []
    for vi in (*g.input, *g.output, *g.value_info):
        for d in _dims_of(vi):
            if d.HasField("dim_param") and d.dim_param not in names:
                names.append(d.dim_param)
    extra = [k for k in dims if k not in names]
    if extra:
        have = ", ".join(map(show, names)) if names else "none (all its shapes are static)"
        raise ModelError(f"{label}: --dim {', '.join(map(show, extra))} names no symbolic dim "
                         f"of the model; its symbolic dims are: {have}")
    for k, v in dims.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= MAX_DIM:
            raise ModelError(f"{label}: --dim {show(k)}={v!r} must be a positive integer of at "
                             f"most 2**40")
    unbound: list[str] = []
    anonymous: list[str] = []
    for vi in g.input:
        if vi.name in inits:
            continue
        for axis, d in enumerate(_dims_of(vi)):
            if d.HasField("dim_param"):
                if d.dim_param not in dims and d.dim_param not in unbound:
                    unbound.append(d.dim_param)
            elif not d.HasField("dim_value"):
                anonymous.append(f"{vi.name}[{axis}]")
    if unbound:
        raise UnboundDimError(
            f"{label}: symbolic dims without a value: {', '.join(map(show, unbound))}. Bind "
            f"each with --dim NAME=VALUE (e.g. " + " ".join(f"--dim {show(u)}=1" for u in unbound)
            + ")")
    if anonymous:
        raise UnboundDimError(
            f"{label}: graph input axes with neither a size nor a name: "
            f"{', '.join(map(show, anonymous))}. "
            f"Give them a name (re-export with dynamic_axes) or a static size")
    return {k: int(v) for k, v in dims.items()}


# -- shape inference ----------------------------------------------------------------------
def _bind_vi(vi: onnx.ValueInfoProto, dims: Mapping[str, int],
             lead: int | None = None) -> onnx.ValueInfoProto:
    """``vi`` with its symbolic dims bound, and its leading axis set to ``lead`` if given."""
    out = onnx.ValueInfoProto()
    out.CopyFrom(vi)
    if lead is not None:
        _dims_of(out)[0].dim_value = lead
    for d in _dims_of(out):
        if d.HasField("dim_param") and d.dim_param in dims:
            d.dim_value = dims[d.dim_param]
    return out


def _is_small(t: TensorProto) -> bool:
    external = t.data_location == TensorProto.EXTERNAL
    return not external and math.prod(t.dims) <= SMALL_CONST


def _unshaped(vi: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
    """``vi`` with its element type only: its stated shape holds a batch that was changed."""
    if not vi.type.HasField("tensor_type"):
        return vi
    return helper.make_tensor_value_info(vi.name, vi.type.tensor_type.elem_type, None)


def _skeleton(model: ModelProto, dims: Mapping[str, int], lead: int | None = None) -> ModelProto:
    """The model with dims bound and large initializers replaced by typed inputs (no data).

    ``lead`` (``--batch`` on a fixed-batch file) becomes the graph inputs' leading axis; the
    shapes the file states for outputs and intermediate tensors are then re-inferred."""
    g = model.graph
    keep = [t for t in g.initializer if _is_small(t) and
            (t.data_type not in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16,
                                 TensorProto.DOUBLE) or math.prod(t.dims) <= 16)]
    kept = {t.name for t in keep}
    weights = {t.name for t in g.initializer}
    inputs = [_bind_vi(vi, dims, None if vi.name in weights else lead)
              for vi in g.input if vi.name not in kept]
    listed = {vi.name for vi in g.input}
    inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
               for t in g.initializer if t.name not in kept and t.name not in listed]
    nodes = []
    for node in g.node:
        if node.domain == "ai.onnx":  # onnx's inference knows the default domain only as ""
            node = onnx.NodeProto.FromString(node.SerializeToString())
            node.domain = ""
        nodes.append(node)
    bind = _bind_vi if lead is None else (lambda vi, _dims: _unshaped(vi))
    sk = helper.make_graph(nodes, g.name or "g", inputs,
                           [bind(vi, dims) for vi in g.output], keep,
                           value_info=[bind(vi, dims) for vi in g.value_info])
    opsets = {canonical_domain(o.domain): o.version for o in model.opset_import}
    return helper.make_model(
        sk, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
        ir_version=max(model.ir_version, 4))


def _shape_of(t: TypeProto) -> tuple[int, tuple[int, ...] | None]:
    if not t.HasField("tensor_type"):
        return 0, None
    tt = t.tensor_type
    if not tt.HasField("shape"):
        return tt.elem_type, None
    shape = []
    for d in tt.shape.dim:
        if not d.HasField("dim_value") or d.dim_value < 0:
            return tt.elem_type, None
        shape.append(d.dim_value)
    return tt.elem_type, tuple(shape)


def _collect(m: ModelProto) -> Types:
    g = m.graph
    types: Types = {}
    for t in g.initializer:
        types[t.name] = (t.data_type, tuple(t.dims))
    for vi in (*g.input, *g.value_info, *g.output):
        elem, shape = _shape_of(vi.type)
        old = types.get(vi.name)
        if old is None or old[1] is None:
            types[vi.name] = (elem or (old[0] if old else 0), shape)
    return types


def _infer(skel: ModelProto, label: str, hint: str = "") -> Types:
    """Whole-model shape inference, without onnx's data propagation: onnx 1.23 propagates
    every 1-D tensor as shape data, one protobuf dim per element (a 1-D input of 2**31 values
    asks for hundreds of GB). Shape tensors are folded node by node in :class:`_Walk`
    instead, from their (small) values; on the onnx test models both give the same shapes."""
    try:
        inferred = onnx.shape_inference.infer_shapes(skel, check_type=False, strict_mode=True,
                                                     data_prop=False)
    except Exception as e:  # InferenceError, or ValidationError on a malformed node
        raise ModelError(_inference_message(skel, label, str(e)) + hint) from None
    return _collect(inferred)


def _inference_message(skel: ModelProto, label: str, text: str) -> str:
    """Name the failing node, its op type and its input shapes (from a lenient pass)."""
    m = re.search(r"node name: ([^)]*)\)", text)
    first = " ".join(text.split())
    msg = f"{label}: shapes do not agree: {first[:600]}"
    if m:
        try:
            partial = _collect(onnx.shape_inference.infer_shapes(skel, strict_mode=False))
        except Exception:  # the lenient pass is only for a better message
            partial = _collect(skel)
        for n in skel.graph.node:
            if n.name == m.group(1):
                shapes = ", ".join(f"{i}: {partial.get(i, (0, None))[1]}" for i in n.input if i)
                msg += f" [node {n.name!r} ({n.op_type}) has input shapes {shapes}]"
                break
    return msg + ". Fix the model or the --dim values"


# -- walking the nodes --------------------------------------------------------------------
class _Walk:
    """One pass over the nodes in order: fill missing shapes, fold constants, lower the rest."""

    def __init__(self, model: ModelProto, types: Types, label: str, on_unsupported: str) -> None:
        self.model = model
        self.g = model.graph
        self.types = types
        self.label = label
        self.on_unsupported = on_unsupported
        self.opsets = {canonical_domain(o.domain): o.version for o in model.opset_import}
        self.inits = {t.name: t for t in self.g.initializer}
        self.values: dict[str, np.ndarray | None] = {}
        self.producer: dict[str, NodeProto] = {}
        self.const: set[str] = set(self.inits)

    def run(self, name: str | None, dims: dict[str, int]) -> Graph:
        g = self.g
        gname = name or g.name or (Path(self.label).stem if self.label else "model")
        graph = Graph(gname, meta={"source": self.label, "dims": dict(dims),
                                   "opsets": dict(self.opsets),
                                   "producer": self.model.producer_name})
        real_inputs = [vi.name for vi in g.input if vi.name not in self.inits]
        outputs = [vi.name for vi in g.output]
        kv = {n for n in (*real_inputs, *outputs) if KV_PATTERN.search(n)}
        tables = self._slot_names("table_inputs")
        self.session = Session(self.label, graph, self.types, self.const,
                               self._slot_names("weight_inputs"), kv, self.value,
                               trained=set(self.inits) - tables)
        graph.inputs, graph.outputs = real_inputs, outputs
        for index, node in enumerate(g.node):
            self._visit(node, index, graph)
        return graph

    def _slot_names(self, attr: str) -> set[str]:
        """Names read at the ``weight_inputs`` or ``table_inputs`` positions of lowerings."""
        names: set[str] = set()
        for node in self.g.node:
            low = lookup(node.domain, node.op_type)
            if low is not None:
                names.update(node.input[i] for i in getattr(low, attr)
                             if i < len(node.input) and node.input[i])
        return names

    def _visit(self, node: NodeProto, index: int, graph: Graph) -> None:
        source = node.name or f"{node.op_type}_{index}"
        for o in node.output:
            if o:
                self.producer[o] = node
        missing = [i for i in node.input if i and i not in self.types and i not in self.const]
        if missing:
            raise ModelError(f"{self.label}: node {source!r} ({node.op_type}) reads "
                             f"{', '.join(map(repr, missing))}, which no earlier node, "
                             f"initializer or graph input defines; the model is not "
                             f"topologically sorted or is incomplete")
        if self._foldable(node):
            self._fold(node)
            return
        self._fill_types(node)
        low = lookup(node.domain, node.op_type)
        n = Node(node, source, self.session)
        if low is None:
            ops = self._unsupported(n, graph)
        else:
            try:
                ops = list(low.fn(n))
            except ShapeError as e:
                shapes = ", ".join(f"{i}: {self.types.get(i, (0, None))[1]}"
                                   for i in node.input if i)
                raise n.fail(f"shapes do not agree ({e}); input shapes {shapes}. Fix the "
                             f"model or the --dim values") from None
        for op in ops:
            try:
                graph.add(op)
            except ValueError as e:
                raise n.fail(str(e)) from None
        for op in ops:
            for t in op.outputs:
                if self.types.get(t.name, (0, None))[1] is None:
                    self.types[t.name] = (_ELEM_OF_NAME.get(t.dtype.name, 0), t.shape)

    def _unsupported(self, n: Node, graph: Graph) -> list:
        dom = n.domain or "ai.onnx"
        if self.on_unsupported != "memory":
            raise UnsupportedOpError(
                f"{self.label}: node {n.source!r} has op type {n.op_type!r} in domain {dom!r}, "
                f"which npusim cannot lower. Rerun with --on-unsupported=memory to cost it as "
                f"memory traffic only, or add a lowering (npusim.frontend.registry.register)")
        op = n.movement(f"unsupported:{n.op_type}")
        graph.warnings.append(f"{show(n.source)} ({show(n.op_type)}, domain {show(dom)}): no "
                              f"lowering; costed as memory traffic of its inputs and outputs "
                              f"({op.bytes:.0f} bytes)")
        return [op]

    # -- constants --------------------------------------------------------------------
    def _foldable(self, node: NodeProto) -> bool:
        if canonical_domain(node.domain) != "" or node.op_type in _NONDETERMINISTIC \
                or node.op_type in _CONTROL_FLOW:
            return False
        if node.op_type in ("Shape", "Size"):
            return self.types.get(node.input[0], (0, None))[1] is not None
        if not all(i in self.const for i in node.input if i):
            return False
        if node.op_type in ("Expand", "Tile") and node.input[0] in self.session.trained:
            return False  # a broadcast of trained values happens at run time; the root counts
        if node.op_type in _RUNTIME_ON_LARGE:
            shape = self.types.get(node.input[0], (0, None))[1]
            return shape is not None and math.prod(shape) <= SMALL_CONST
        return True

    def _fold(self, node: NodeProto) -> None:
        self._fill_types(node)
        trained = node.op_type in _TRAINED_SOURCES or (
            node.op_type in _RELAYOUT and node.input and node.input[0] in self.session.trained)
        for o in node.output:
            if o:
                self.const.add(o)
                if trained:
                    self.session.trained.add(o)
        if node.op_type in FREE_VIEWS and node.output and node.input:
            self.session.alias(node.output[0], node.input[0])

    def value(self, name: str) -> np.ndarray | None:
        """Value of a small constant tensor, evaluated on first use (None if not small)."""
        if name in self.values:
            return self.values[name]
        if name not in self.const:
            return None
        self.values[name] = None  # guards against re-entry while evaluating
        if name in self.inits:
            t = self.inits[name]
            self.values[name] = _small_value(t, self.label) if _is_small(t) else None
        elif name in self.producer:
            self._evaluate(self.producer[name])
        return self.values.get(name)

    def _evaluate(self, node: NodeProto) -> None:
        outs = [o for o in node.output if o]
        if node.op_type in ("Shape", "Size"):
            shape = self.types[node.input[0]][1]
            if node.op_type == "Size":
                self.values[outs[0]] = np.array(math.prod(shape), dtype=np.int64)
            else:
                where = f"{self.label}: node {node.name or node.op_type!r} (Shape)"
                start = attribute(node, "start", "int", 0, where=where)
                end = attribute(node, "end", "int", None, where=where)
                self.values[outs[0]] = np.array(shape[slice(start, end)], dtype=np.int64)
            return
        args = []
        for i in node.input:
            v = self.value(i) if i else None
            if i and v is None:
                return
            args.append(v)
        if not self._small_enough(node, args):
            return
        try:
            cls = onnx.reference.ops.load_op(canonical_domain(node.domain), node.op_type,
                                             self.opsets.get(canonical_domain(node.domain)))
            inst = cls(node, {"log": _quiet, "opsets": self.opsets, "verbose": 0,
                              "new_ops": None, "evaluator_cls": None})
            res = inst.run(*args)
        except Exception:  # not evaluable here: the tensor then keeps only its shape
            return
        for o, v in zip(outs, res if isinstance(res, tuple) else (res,)):
            self.values[o] = np.asarray(v)

    def _small_enough(self, node: NodeProto, args: list) -> bool:
        shapes = [self.types.get(o, (0, None))[1] for o in node.output if o]
        if all(s is not None for s in shapes):
            return all(math.prod(s) <= SMALL_CONST for s in shapes)
        op = node.op_type
        try:
            if op == "ConstantOfShape":
                size = math.prod(int(x) for x in np.asarray(args[0]).reshape(-1))
            elif op == "Range":
                start, limit, delta = (float(np.asarray(a)) for a in args[:3])
                size = max(0, math.ceil((limit - start) / delta))
            elif op == "Expand":
                size = math.prod(np.broadcast_shapes(np.shape(args[0]),
                                                     tuple(int(x) for x in args[1])))
            elif op == "Tile":
                size = math.prod(int(r) * s for r, s in zip(args[1], np.shape(args[0])))
            elif op in _GROWING:
                return False
            else:
                size = max((np.size(a) for a in args if a is not None), default=1)
        except (ValueError, TypeError, ZeroDivisionError, OverflowError):
            return False
        return size <= SMALL_CONST

    # -- missing shapes ---------------------------------------------------------------
    def _fill_types(self, node: NodeProto) -> None:
        """Give every output a static shape when the whole-model pass left it unknown."""
        outs = [o for o in node.output if o]
        if all(self.types.get(o, (0, None))[1] is not None for o in outs):
            return
        if all(i in self.const for i in node.input if i) and canonical_domain(node.domain) == "":
            for o in outs:
                v = self.value(o)
                if v is not None:
                    self.types[o] = (self.types.get(o, (0, None))[0] or
                                     helper.np_dtype_to_tensor_dtype(v.dtype), tuple(v.shape))
            if all(self.types.get(o, (0, None))[1] is not None for o in outs):
                return
        self._infer_node(node)

    def _infer_node(self, node: NodeProto) -> None:
        dom = canonical_domain(node.domain)
        try:
            schema = onnx.defs.get_schema(node.op_type, self.opsets.get(dom, 1), dom)
        except onnx.defs.SchemaError:
            return
        in_types: dict[str, TypeProto] = {}
        data: dict[str, TensorProto] = {}
        for i in node.input:
            if not i:
                continue
            elem, shape = self.types.get(i, (0, None))
            in_types[i] = helper.make_tensor_type_proto(elem, shape)
            v = self.value(i) if i in self.const else None
            if v is not None:
                data[i] = numpy_helper.from_array(np.asarray(v), i)
        try:
            res = onnx.shape_inference.infer_node_outputs(
                schema, node, in_types, data,
                opset_imports=[helper.make_opsetid(d, v) for d, v in self.opsets.items()])
        except Exception:  # left unknown: a lowering that needs the shape says so by name
            return
        for o, t in res.items():
            elem, shape = _shape_of(t)
            if shape is not None or o not in self.types:
                self.types[o] = (elem, shape)


def _small_value(t: TensorProto, label: str) -> np.ndarray:
    """The value of a small initializer; its stored data must fill its dims."""
    try:
        return numpy_helper.to_array(t)
    except Exception as e:  # ValueError (size), TypeError or KeyError (element type)
        raise ModelError(f"{label}: initializer {t.name!r} (dims {list(t.dims)}, element type "
                         f"{t.data_type}) has data that does not match its dims or type "
                         f"({type(e).__name__}); the file is corrupt. Re-export it") from None


def _quiet(*_args, **_kwargs) -> None:
    """Logger for onnx.reference ops: npusim's library code does not print."""
