"""The loader's boundary: what an ONNX model must satisfy before npusim walks it.

onnx.checker states the rules (UTF-8 names, SSA form, topological order, acyclic graphs,
graph outputs produced, attributes of the declared type, non-recursive functions), but it
also refuses models npusim loads on purpose (graph outputs without a shape, ops of domains
it does not know) and its messages span several lines. These checks enforce the rules that
decide what npusim computes, each failure one :class:`~npusim.errors.ModelError` naming the
file, the node or tensor, and the fix. They read only the protobuf: no weight, no external
data file.
"""
from __future__ import annotations

import math
from typing import Iterator

import networkx as nx
import onnx.defs
from onnx import AttributeProto, FunctionProto, GraphProto, ModelProto, NodeProto, TensorProto

from ..errors import ModelError
from .context import ATTRIBUTE_KINDS, MAX_DIM, MAX_ELEMENTS, attribute_problem, show
from .registry import canonical_domain

#: Assumption: expanding model-local functions into more nodes than this is a malformed
#: (exponentially nested) model; the largest exported LLM graphs have ~1e5 nodes.
MAX_INLINED_NODES = 1_000_000


def node_label(node: NodeProto, index: int) -> str:
    """How messages name a node: its name, else ``<op type>_<index>`` (as op sources do)."""
    return f"node {node.name or f'{node.op_type}_{index}'!r} ({show(node.op_type)})"


# -- strings ------------------------------------------------------------------------------
def check_text(model: ModelProto, label: str) -> None:
    """Every name npusim reads is UTF-8 text.

    protobuf hands a string field that is not UTF-8 back as ``bytes``; downstream it would
    crash onnx's schema lookups or end up in reports as ``b'...'``.
    """
    fields = [("graph name", model.graph.name), ("producer name", model.producer_name)]
    fields += [(f"opset import #{i} domain", o.domain) for i, o in enumerate(model.opset_import)]
    fields += list(_graph_text(model.graph, "graph"))
    for k, f in enumerate(model.functions):
        fields += list(_function_text(f, f"model-local function #{k}"))
    for where, value in fields:
        if not isinstance(value, str):
            raise ModelError(f"{label}: {where} is not UTF-8 text ({value!r:.80}); ONNX names "
                             f"must be UTF-8. Re-export the model or fix the name")


def _graph_text(g: GraphProto, where: str) -> Iterator[tuple[str, object]]:
    for kind, infos in (("input", g.input), ("output", g.output), ("value_info", g.value_info)):
        for i, vi in enumerate(infos):
            yield f"{where} {kind} #{i} name", vi.name
            for d in _dims_of(vi):
                if d.HasField("dim_param"):
                    yield f"{where} {kind} #{i} symbolic dim", d.dim_param
    for i, t in enumerate(g.initializer):
        yield f"{where} initializer #{i} name", t.name
    yield from _nodes_text(g.node, where)


def _function_text(f: FunctionProto, where: str) -> Iterator[tuple[str, object]]:
    yield f"{where} name", f.name
    yield f"{where} domain", f.domain
    for kind, names in (("input", f.input), ("output", f.output), ("attribute", f.attribute)):
        for i, name in enumerate(names):
            yield f"{where} {kind} #{i}", name
    for i, o in enumerate(f.opset_import):
        yield f"{where} opset import #{i} domain", o.domain
    yield from _nodes_text(f.node, where)


def _nodes_text(nodes, where: str) -> Iterator[tuple[str, object]]:
    for k, node in enumerate(nodes):
        at = f"{where} node #{k}"
        yield f"{at} op type", node.op_type
        yield f"{at} name", node.name
        yield f"{at} domain", node.domain
        for kind, names in (("input", node.input), ("output", node.output)):
            for i, name in enumerate(names):
                yield f"{at} {kind} #{i}", name
        for a in node.attribute:
            yield f"{at} attribute name", a.name
            for j, sub in enumerate(_subgraphs(a)):
                yield from _graph_text(sub, f"{at} attribute {a.name!r} graph #{j}")


def _subgraphs(a: AttributeProto) -> list[GraphProto]:
    return ([a.g] if a.HasField("g") else []) + list(a.graphs)


def _dims_of(vi: onnx.ValueInfoProto) -> list:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return []
    return list(vi.type.tensor_type.shape.dim)


# -- model-local functions ----------------------------------------------------------------
def _function_key(node_or_f) -> tuple[str, str, str]:
    name = node_or_f.op_type if isinstance(node_or_f, NodeProto) else node_or_f.name
    return canonical_domain(node_or_f.domain), name, node_or_f.overload


def _all_nodes(nodes) -> Iterator[NodeProto]:
    """Nodes and the nodes of their sub-graphs, depth first."""
    for node in nodes:
        yield node
        for a in node.attribute:
            for sub in _subgraphs(a):
                yield from _all_nodes(sub.node)


def check_functions(model: ModelProto, label: str) -> None:
    """Model-local functions are defined once, never call themselves (directly or through
    others), and do not expand into an absurd number of nodes.

    onnx's inliner would recurse forever on a recursive function (it raises), and a chain of
    functions each calling the next twice doubles the graph per level.
    """
    funcs: dict[tuple[str, str, str], FunctionProto] = {}
    for f in model.functions:
        key = _function_key(f)
        if key in funcs:
            raise ModelError(f"{label}: model-local function {_fname(key)} is defined twice; "
                             f"keep one definition")
        funcs[key] = f
    calls = nx.MultiDiGraph()
    calls.add_nodes_from(funcs)
    for key, f in funcs.items():
        for node in _all_nodes(f.node):
            callee = _function_key(node)
            if callee in funcs:
                calls.add_edge(key, callee)
    try:
        cycle = nx.find_cycle(calls)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join(_fname(e[0]) for e in cycle) + f" -> {_fname(cycle[0][0])}"
        raise ModelError(f"{label}: model-local function {_fname(cycle[0][0])} calls itself "
                         f"({path}); ONNX functions must not be recursive. Re-export the model "
                         f"with the recursion unrolled or as a Loop")
    size: dict[tuple[str, str, str], int] = {}
    for key in reversed(list(nx.topological_sort(calls))):  # callees first
        size[key] = sum(size.get(_function_key(n), 1) for n in _all_nodes(funcs[key].node))
    total = sum(size.get(_function_key(n), 1) for n in _all_nodes(model.graph.node))
    if total > MAX_INLINED_NODES:
        raise ModelError(f"{label}: its model-local functions expand to {total:,} nodes (more "
                         f"than {MAX_INLINED_NODES:,}); the functions nest too deeply. "
                         f"Re-export the model without them")


def _fname(key: tuple[str, str, str]) -> str:
    dom, name, overload = key
    return repr(f"{dom}::{name}" + (f":{overload}" if overload else ""))


# -- the main graph -----------------------------------------------------------------------
def check_graph(model: ModelProto, label: str) -> None:
    """Structure, shapes and attributes of the main graph (after functions are inlined)."""
    g = model.graph
    check_structure(g, label)
    check_declared_dims(g, label)
    check_attributes(model, label)


def check_structure(g: GraphProto, label: str) -> None:
    """SSA form, unique inputs, topological order, no cycle, every graph output produced.

    The loader walks nodes in file order and keeps one producer per tensor: a second
    producer, a node read before its producer runs or a cycle would be costed silently as
    some other graph, so each is refused with the node and tensor named.
    """
    inputs: set[str] = set()
    for vi in g.input:
        if vi.name in inputs:
            raise ModelError(f"{label}: graph input {vi.name!r} is listed twice; each graph "
                             f"input needs a unique name. Remove or rename one")
        inputs.add(vi.name)
    inits: set[str] = set()
    for t in g.initializer:
        if t.name in inits:
            raise ModelError(f"{label}: initializer {t.name!r} is given twice; keep one")
        inits.add(t.name)
    producer: dict[str, int] = {}
    for k, node in enumerate(g.node):
        for o in node.output:
            if not o:
                continue
            if o in producer:
                raise ModelError(
                    f"{label}: tensor {o!r} is produced twice, by "
                    f"{node_label(g.node[producer[o]], producer[o])} and {node_label(node, k)}; "
                    f"an ONNX graph gives each tensor one producer (SSA form). Rename one output")
            if o in inputs or o in inits:
                what = "graph input" if o in inputs else "initializer"
                raise ModelError(f"{label}: {node_label(node, k)} writes {o!r}, which is also a "
                                 f"{what}; an ONNX graph gives each tensor one producer (SSA "
                                 f"form). Rename the output")
            producer[o] = k
    defined = inputs | inits
    for k, node in enumerate(g.node):
        for i in node.input:
            if i and i not in defined:
                _undefined(g, label, k, i, producer)
        defined.update(o for o in node.output if o)
    for vi in g.output:
        if vi.name not in defined:
            raise ModelError(f"{label}: graph output {vi.name!r} is produced by no node and is "
                             f"no graph input or initializer; remove it from the graph outputs "
                             f"or add the node that computes it")


def _undefined(g: GraphProto, label: str, k: int, name: str, producer: dict[str, int]) -> None:
    """Explain a read of ``name`` by node ``k`` before any definition: a cycle, nodes out of
    order, or a tensor nothing defines."""
    node = g.node[k]
    if name not in producer:
        raise ModelError(f"{label}: {node_label(node, k)} reads {name!r}, which no node, "
                         f"initializer or graph input defines; the model is incomplete. Add "
                         f"its producer or make it a graph input")
    deps = nx.DiGraph()
    for j, n in enumerate(g.node):
        deps.add_edges_from((producer[i], j) for i in n.input if i in producer)
    try:
        cycle = nx.find_cycle(deps, source=k)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join(node_label(g.node[e[0]], e[0]) for e in cycle)
        raise ModelError(f"{label}: the nodes form a cycle: {path} -> "
                         f"{node_label(g.node[cycle[0][0]], cycle[0][0])}; an ONNX graph must "
                         f"be acyclic (repetition belongs in a Loop node). Fix the model")
    p = producer[name]
    raise ModelError(f"{label}: {node_label(node, k)} (node #{k}) reads {name!r} before "
                     f"{node_label(g.node[p], p)} (node #{p}) produces it: the nodes are not "
                     f"in topological order. Sort them topologically before saving the model")


def check_declared_dims(g: GraphProto, label: str) -> None:
    """Every stated size is in ``0..MAX_DIM`` and every initializer or constant has at most
    ``MAX_ELEMENTS`` elements: a negative or 2**63-1 size is a corrupt file, not a shape."""
    for kind, infos in (("graph input", g.input), ("graph output", g.output),
                        ("value_info", g.value_info)):
        for vi in infos:
            for axis, d in enumerate(_dims_of(vi)):
                if d.HasField("dim_value") and not 0 <= d.dim_value <= MAX_DIM:
                    raise ModelError(f"{label}: {kind} {vi.name!r} has size {d.dim_value} on "
                                     f"axis {axis}, outside 0..2**40; fix the model's shape "
                                     f"(or name the axis to bind it with --dim)")
    for t in g.initializer:
        _check_tensor_dims(t, f"initializer {t.name!r}", label)
    for k, node in enumerate(g.node):
        for a in node.attribute:
            for t in ([a.t] if a.HasField("t") else []) + list(a.tensors):
                _check_tensor_dims(t, f"{node_label(node, k)} attribute {a.name!r} tensor", label)


def _check_tensor_dims(t: TensorProto, what: str, label: str) -> None:
    dims = list(t.dims)
    if any(not 0 <= d <= MAX_DIM for d in dims) or math.prod(dims) > MAX_ELEMENTS:
        raise ModelError(f"{label}: {what} has dims {dims}, outside npusim's bounds (each "
                         f"0..2**40, at most 2**50 elements); the file is corrupt. Re-export it")


def check_attributes(model: ModelProto, label: str) -> None:
    """Every attribute holds what its type says, and for an op onnx knows, has the type its
    schema requires; required attributes are present and unknown ones refused (as
    onnx.checker and onnxruntime do: a misspelled ``transB`` would silently change costs);
    input and output counts are the schema's."""
    opsets = {canonical_domain(o.domain): o.version for o in model.opset_import}
    for k, node in enumerate(model.graph.node):
        where = f"{label}: {node_label(node, k)}"
        seen: set[str] = set()
        for a in node.attribute:
            if a.name in seen:
                raise ModelError(f"{where}: attribute {a.name!r} is given twice; fix the node to "
                                 f"keep one")
            seen.add(a.name)
            problem = attribute_problem(a)
            if problem:
                raise ModelError(f"{where}: attribute {a.name!r} {problem}; fix its type in the "
                                 f"model")
        schema = _schema(node, opsets)
        if schema is None:
            continue
        _check_arity(node, schema, where)
        given = {a.name: a for a in node.attribute}
        for name, a in given.items():
            spec = schema.attributes.get(name)
            if spec is None:
                known = ", ".join(sorted(schema.attributes)) or "none"
                raise ModelError(f"{where}: attribute {name!r} is not one of {node.op_type}'s "
                                 f"(opset {schema.since_version}: {known}); fix or remove it")
            if int(spec.type) != a.type:
                want = _kind(int(spec.type))
                raise ModelError(f"{where}: attribute {name!r} is {_kind(a.type)}, but "
                                 f"{node.op_type} takes {want}; fix its type in the model")
        for name, spec in schema.attributes.items():
            if spec.required and name not in given:
                raise ModelError(f"{where}: required attribute {name!r} "
                                 f"({_kind(int(spec.type))}) is missing; set it on the node")


def _check_arity(node: NodeProto, schema, where: str) -> None:
    """Input and output counts within the schema's, no required input left empty (onnx's
    shape inference does not check these; the loader and lowerings index inputs by
    position)."""
    for kind, names, low, high in (("inputs", node.input, schema.min_input, schema.max_input),
                                   ("outputs", node.output, schema.min_output,
                                    schema.max_output)):
        if not low <= len(names) <= high:
            span = f"{low}" if low == high else f"{low} to {high}" if high < 2 ** 31 - 1 \
                else f"at least {low}"
            raise ModelError(f"{where}: has {len(names)} {kind}, but {node.op_type} (opset "
                             f"{schema.since_version}) takes {span}; fix the node")
    single = onnx.defs.OpSchema.FormalParameterOption.Single
    for i, (name, param) in enumerate(zip(node.input, schema.inputs)):
        if not name and param.option == single:
            raise ModelError(f"{where}: required input {i} ({param.name!r}) is empty; connect "
                             f"it to a tensor")


def _kind(code: int) -> str:
    return ATTRIBUTE_KINDS.get(code, ("undefined", ""))[0]


def _schema(node: NodeProto, opsets: dict[str, int]):
    """onnx's schema of the node's op at the model's opset, or None (custom domain, no opset
    import for the domain, or an op onnx does not know)."""
    dom = canonical_domain(node.domain)
    if dom not in opsets:
        return None
    try:
        return onnx.defs.get_schema(node.op_type, opsets[dom], dom)
    except onnx.defs.SchemaError:
        return None
