"""The op graph: a networkx DiGraph of ops, edges from producer to consumer."""
from __future__ import annotations

from collections import Counter
from typing import Iterator

import networkx as nx

from .ops import Op
from .tensor import Role, Tensor


class Graph:
    """A workload: ops in a DAG, the tensors they exchange, graph inputs and outputs.

    Nodes of :attr:`nx` are op names with the op in the ``op`` attribute; an edge ``a -> b``
    carries the names of the tensors ``a`` produces and ``b`` reads.

    >>> from npusim.ir import Contraction, BF16
    >>> g = Graph("demo")
    >>> _ = g.add(Contraction.einsum("mk,kn->mn", {"m": 2, "n": 2, "k": 2}, ["x", "w"], "y",
    ...                              BF16, name="mm"))
    >>> g.macs
    8
    """

    def __init__(self, name: str, meta: dict | None = None) -> None:
        self.name = name
        self.nx = nx.DiGraph()
        self.tensors: dict[str, Tensor] = {}
        self.producer: dict[str, str] = {}
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.meta: dict = dict(meta or {})
        self.warnings: list[str] = []
        self.aliases: dict[str, str] = {}
        self._order: list[str] | None = None  # memo of the dependency order, reset by add

    # -- building ---------------------------------------------------------------------
    def add_tensor(self, t: Tensor) -> Tensor:
        old = self.tensors.get(t.name)
        if old is not None and old != t:
            raise ValueError(f"tensor {t.name!r} redefined: {old} vs {t}")
        self.tensors[t.name] = t
        return t

    def add(self, op: Op) -> Op:
        if op.name in self.nx:
            raise ValueError(f"duplicate op name {op.name!r}")
        for t in (*op.inputs, *op.outputs):
            self.add_tensor(t)
        self._order = None
        self.nx.add_node(op.name, op=op)
        for t in op.inputs:
            src = self.producer.get(self.aliases.get(t.name, t.name))
            if src is not None and src != op.name:
                if self.nx.has_edge(src, op.name):
                    self.nx.edges[src, op.name]["tensors"].append(t.name)
                else:
                    self.nx.add_edge(src, op.name, tensors=[t.name])
        for t in op.outputs:
            if t.name in self.producer:
                raise ValueError(f"tensor {t.name!r} produced twice "
                                 f"({self.producer[t.name]!r} and {op.name!r})")
            self.producer[t.name] = op.name
        return op

    def alias(self, name: str, of: str) -> None:
        """Declare tensor ``name`` a free view of ``of`` (a reshape): same storage, no op.

        Readers of ``name`` then depend on the producer of ``of`` (added before or after), and
        sizes by role count the shared storage once.
        """
        self.aliases[name] = self.aliases.get(of, of)

    def _storage(self) -> list[Tensor]:
        """One tensor per distinct storage (a view and its root count once)."""
        roots: dict[str, Tensor] = {}
        for t in self.tensors.values():
            roots.setdefault(self.aliases.get(t.name, t.name), t)
        return list(roots.values())

    # -- reading ----------------------------------------------------------------------
    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def __iter__(self) -> Iterator[Op]:
        return self.ops()

    def ops(self) -> Iterator[Op]:
        """Ops in a dependency order (stable: insertion order breaks ties)."""
        if self._order is None or len(self._order) != len(self.nx):
            index = {n: i for i, n in enumerate(self.nx.nodes)}
            self._order = list(nx.lexicographical_topological_sort(self.nx,
                                                                    key=index.__getitem__))
        nodes = self.nx.nodes
        for n in self._order:
            yield nodes[n]["op"]

    def op(self, name: str) -> Op:
        return self.nx.nodes[name]["op"]

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops())

    def tensors_by_role(self, role: Role) -> list[Tensor]:
        return [t for t in self.tensors.values() if t.role == role]

    @property
    def parameters(self) -> int:
        """Number of weight values (each weight tensor counted once, views not again)."""
        return sum(t.numel for t in self._storage() if t.role == Role.WEIGHT)

    def bytes_by_role(self) -> dict[str, float]:
        out = {r.value: 0.0 for r in Role}
        for t in self._storage():
            out[t.role.value] += t.nbytes
        return out

    def census(self) -> dict[str, dict[str, float]]:
        """Per source op type: count, MACs and vector ops."""
        count: Counter = Counter()
        macs: Counter = Counter()
        for op in self.ops():
            key = op.op_type or op.kind
            count[key] += 1
            macs[key] += op.macs
        return {k: {"count": count[k], "macs": macs[k]} for k in sorted(count, key=lambda k: -macs[k])}
