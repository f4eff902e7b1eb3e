"""What the tile engine needs of a graph before any arch is known, found once per graph.

:func:`npusim.engine.simulate.simulate_graph` costs every op of a graph on an arch, and a sweep
calls it on thousands of archs with the same graph. What does not depend on the arch is worked
out here once and kept beside the graph (:func:`graph_facts`): the ops in schedule order, which
elementwise ops fuse into which contraction (:func:`fusable`), the attention tensors a fused
kernel streams, each op's unavoidable DRAM bytes as terms still to be priced against an SRAM
size (:func:`~npusim.engine.roofline.dram_terms`), and each op's **cost class**.

Two ops are in the same class when nothing the engine prices differs between them: the same
kind and fields (dims, extents, dtypes, projections, functions, moved bytes...) with tensor
names replaced by their position in the op, the same roles and residency of each tensor
(streamed through a fused kernel; bound to DRAM as a weight, KV cache, graph input or
output; or an intermediate activation that stays on chip when it fits), the same DRAM-byte
terms (which depend on whether the op is the first reader of its weights), the same fusion
(fused into a contraction, which inputs the contraction hands it) and, for a contraction,
the same classes of fused epilogues. The 32 identical layers of an LLM fall into a few dozen
classes; the engine costs each class once and schedules every op (weight prefetch, kernel
launches, the power cap, PIM placement stay per op).

The facts are kept per graph object and per way of fusing, and found again if the graph has
grown since (ops, tensors, views, inputs or outputs added): see :func:`graph_facts`.
"""
from __future__ import annotations

import dataclasses
import weakref
from dataclasses import dataclass

from ..ir import Contraction, Elementwise, Graph, Op, Role
from ..ir.ops import Operand
from ..ir.tensor import Tensor
from .roofline import dram_terms, streamed_tensors, widest_collective

# residency classes of a tensor (how npusim.engine.simulate._placement treats it)
STREAMED, IN_DRAM, ACTIVATION = "streamed", "dram", "activation"
# op fields that name or trace an op and never change what it costs
_NAMING = frozenset(("name", "source", "op_type"))


def consumers(graph: Graph) -> dict[str, int]:
    """Readers of each storage root (a view counts as its root)."""
    count: dict[str, int] = {}
    for op in graph.ops():
        for t in op.inputs:
            root = graph.aliases.get(t.name, t.name)
            count[root] = count.get(root, 0) + 1
    return count


def fusable(graph: Graph, residual: bool = False) -> tuple[dict[str, str], dict[str, str]]:
    """Which elementwise ops are fused, as two maps: op name -> the contraction it is fused
    into (as its epilogue), and op name -> storage root of its input that the contraction (or
    an epilogue before it) produced, which never leaves the engine.

    An op is fused when that input is read by nobody else and is a contraction's output or a
    fused op's (a chain). Without ``residual`` it must be the op's only activation input, as
    before the arch field existed. With it the op may have other activation inputs, each
    produced before the contraction runs (graph inputs, or outputs of earlier ops): the
    epilogue reads them while the contraction works. Of several inputs that qualify, the one
    whose contraction runs last is taken (the other inputs are then ready): the residual add
    of a ResNet block with a projection shortcut fuses into the later of its two convs.
    """
    count = consumers(graph)
    order = {op.name: i for i, op in enumerate(graph.ops())}
    host: dict[str, str] = {}
    main: dict[str, str] = {}

    def root(t) -> str:
        return graph.aliases.get(t.name, t.name)

    def producer(t) -> str | None:
        return graph.producer.get(t.name) or graph.producer.get(root(t))

    def ready(t, into: str) -> bool:
        """Whether ``t`` exists before contraction ``into`` runs."""
        p = producer(t)
        return p is None or order[host.get(p, p)] < order[into]

    for op in graph.ops():
        if not isinstance(op, Elementwise):
            continue
        acts = [t for t in op.inputs if t.role == Role.ACTIVATION]
        if not acts or (len(acts) != 1 and not residual):
            continue
        best = None
        for i, t in enumerate(acts):
            p = producer(t)
            if p is None or count.get(root(t), 0) != 1:
                continue
            into = p if isinstance(graph.op(p), Contraction) else host.get(p)
            if into is None:
                continue
            if not all(ready(o, into) for j, o in enumerate(acts) if j != i):
                continue
            if best is None or order[into] > order[best[0]]:
                best = (into, root(t))
        if best is not None:
            host[op.name], main[op.name] = best
    return host, main


@dataclass(frozen=True)
class GraphFacts:
    """A graph's arch-independent facts for one way of fusing (see the module docstring).

    Attributes
    ----------
    ops : tuple of Op
        In schedule (dependency) order.
    host, main : dict
        :func:`fusable`'s maps (empty when not fusing).
    streamed : frozenset of str
        Storage roots that never reach DRAM: the attention tensors, and under residual fusion
        (without PIM units) the intermediates of each fused group.
    terms : tuple
        Per op, its :func:`~npusim.engine.roofline.dram_terms`.
    classes : tuple of int
        Per op, its cost class (with ``share`` off, every op its own).
    first : tuple of int
        Per class, the index of its first op (the one whose costing stands for the class).
    epilogues : tuple of tuple of int
        Per class, the classes of the epilogues fused into it, in schedule order (a
        contraction's; empty for every other op).
    fused, contraction : tuple of bool
        Per op: whether it is fused into a contraction (in ``host``), whether it is one.
    widest : Collective or None
        :func:`~npusim.engine.roofline.widest_collective` of the ops.
    """

    ops: tuple[Op, ...]
    host: dict
    main: dict
    streamed: frozenset
    terms: tuple
    classes: tuple[int, ...]
    first: tuple[int, ...]
    epilogues: tuple[tuple[int, ...], ...]
    fused: tuple[bool, ...]
    contraction: tuple[bool, ...]
    widest: Op | None


def _fingerprint(graph: Graph) -> tuple:
    """What changes when a graph is added to (ops with their edges, tensors, and views, which
    :meth:`~npusim.ir.Graph.alias` may also point elsewhere) or its inputs and outputs are."""
    return (len(graph.nx), len(graph.tensors), len(graph.producer),
            tuple(graph.aliases.items()), tuple(graph.inputs), tuple(graph.outputs))


# graph -> (fingerprint, {(fuse, residual, extra_streamed, share): GraphFacts}); a graph that
# is dropped takes its facts with it
_FACTS: "weakref.WeakKeyDictionary[Graph, tuple]" = weakref.WeakKeyDictionary()


def graph_facts(graph: Graph, fuse: bool, residual: bool, on_pim: bool,
                share: bool = True) -> GraphFacts:
    """The facts of ``graph`` when fusing (``fuse``) under the arch's ``fusion: residual``
    (``residual``) on an arch with enabled PIM units or not (``on_pim``), from memory when
    the graph has not grown since they were found. ``share`` False gives every op a class
    of its own (the engine then costs every op by itself: the reference the classes are
    tested against)."""
    residual = bool(fuse and residual)
    variant = (bool(fuse), residual, residual and not on_pim, bool(share))
    fp = _fingerprint(graph)
    held = _FACTS.get(graph)
    if held is None or held[0] != fp:
        held = (fp, {})
        _FACTS[graph] = held
    facts = held[1].get(variant)
    if facts is None:
        facts = held[1][variant] = _find(graph, *variant)
    return facts


def _find(graph: Graph, fuse: bool, residual: bool, fused_streamed: bool,
          share: bool) -> GraphFacts:
    ops = tuple(graph.ops())
    host, main = fusable(graph, residual) if fuse else ({}, {})
    streamed = streamed_tensors(graph)
    if fused_streamed:
        # a fused group's intermediates never leave the engine, so they are never DRAM
        # traffic, even where they would not fit the SRAM
        streamed = streamed | frozenset(main.values())
    by_name = dram_terms(graph, streamed)
    terms = tuple(by_name[op.name] for op in ops)
    aliases = graph.aliases
    inputs = {aliases.get(n, n) for n in graph.inputs}
    outputs = {aliases.get(n, n) for n in graph.outputs}

    def residency(t: Tensor) -> str:
        # as simulate._placement decides, less the sizes, which the arch's SRAM prices
        root = aliases.get(t.name, t.name)
        if root in streamed:
            return STREAMED
        role = graph.tensors[root].role if root in graph.tensors else t.role
        if role != Role.ACTIVATION or root in inputs or root in outputs:
            return IN_DRAM
        return ACTIVATION

    index = {op.name: i for i, op in enumerate(ops)}
    fused_into: dict[str, list[int]] = {}
    for name, into in host.items():
        fused_into.setdefault(into, []).append(index[name])

    own: list = []
    for i, op in enumerate(ops):
        if not share:
            own.append(i)
            continue
        skip = ()
        if residual and op.name in host:
            skip = tuple(aliases.get(t.name, t.name) == main[op.name] for t in op.inputs)
        try:
            key = (_shape_key(op, residency), terms[i], op.name in host, skip)
            hash(key)
        except TypeError:      # a field that cannot be compared: the op is a class alone
            key = ("alone", i)
        own.append(key)
    # a contraction's class also holds the classes of its epilogues
    ids: dict = {}
    first: list[int] = []
    classes: list[int] = []
    own_ids: dict = {}
    own_class = [own_ids.setdefault(k, len(own_ids)) for k in own]
    for i, op in enumerate(ops):
        eps = tuple(own_class[j] for j in fused_into.get(op.name, ()))
        key = (own_class[i], eps)
        c = ids.get(key)
        if c is None:
            c = ids[key] = len(first)
            first.append(i)
        classes.append(c)
    epilogues = []
    for c, i in enumerate(first):
        epilogues.append(tuple(classes[j] for j in fused_into.get(ops[i].name, ())))
    return GraphFacts(ops=ops, host=host, main=main, streamed=streamed, terms=terms,
                      classes=tuple(classes), first=tuple(first), epilogues=tuple(epilogues),
                      fused=tuple(op.name in host for op in ops),
                      contraction=tuple(isinstance(op, Contraction) for op in ops),
                      widest=widest_collective(ops))


def _shape_key(op: Op, residency) -> tuple:
    """``op``'s kind and fields, tensor names replaced by their order of appearance in the op
    and each tensor given its role, shape, dtype and residency."""
    local: dict[str, int] = {}

    def canon(v):
        if isinstance(v, Tensor):
            return ("tensor", local.setdefault(v.name, len(local)), v.shape, v.dtype, v.role,
                    residency(v))
        if isinstance(v, Operand):
            return ("operand", canon(v.tensor), v.axes)
        if isinstance(v, (tuple, list)):
            return tuple(canon(x) for x in v)
        return v

    return (type(op), tuple((f.name, canon(getattr(op, f.name)))
                            for f in dataclasses.fields(op) if f.name not in _NAMING))


__all__ = ["GraphFacts", "consumers", "fusable", "graph_facts"]
