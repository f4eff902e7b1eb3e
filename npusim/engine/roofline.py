"""The roofline bound, per op and for a whole graph.

For each op: the ideal compute time (MACs at the arch's peak rate for the dtype the arch runs the
op in, or element ops at the vector units' peak) and the ideal memory time (the op's unavoidable
DRAM bytes at peak DRAM bandwidth). The larger is the op's bound. The cycle-approximate engine
reports its own latency beside this bound and must never beat it.

Unavoidable DRAM bytes, the assumptions that make them a true lower bound:

* weights, KV cache and constants start in DRAM at the start of the run: each distinct tensor
  is read once, charged to its first reader. A ``Movement`` that says what it moves (an
  embedding gather reads a few rows; a KV-cache append writes the new rows in place) is charged
  exactly that, and does not count as a read of the whole tensor;
* graph inputs are read once (first reader) and graph outputs written once (their producer);
  a graph output read by a later op (the KV cache a step appends to) is read from DRAM;
* an intermediate activation may stay on chip if it fits in the arch's total on-chip SRAM;
  the part that cannot fit (``bytes - sram_total``) is written once and read once;
* the attention scores and probabilities never leave the chip, whatever their size
  (:func:`streamed_tensors`): a fused attention kernel (FlashAttention, Dao et al. 2022,
  arXiv:2205.14135) computes them a tile at a time with an online softmax and consumes each
  tile before the next. Assumed for every arch (NPU compilers fuse attention the same way).

Everything else (re-reads, SRAM traffic, launch overheads, imperfect overlap) is the engine's
business and can only add time.
"""
from __future__ import annotations

from ..ir import Collective, Contraction, Elementwise, Graph, Movement, Op, Reduction, Role
from ..energy.area import area_totals
from .result import OpRecord, RunResult

# longest run of ops between the two matmuls of an attention (scale, mask, sinks, softmax...)
_MAX_ATTENTION_CHAIN = 8
# NCCL's low-latency (LL) protocol stores 4 B of data with a 4 B flag in every 8 B, so it
# reaches at most half the link bandwidth (NVIDIA/nccl issue 281, maintainer's answer)
LL_EFFICIENCY = 0.5


def ring_traffic(op: Collective) -> tuple[int, float]:
    """Hops in sequence and bytes each chip sends for a ring implementation of ``op``.

    All-reduce is a reduce-scatter then an all-gather: 2(g-1) hops, 2(g-1)/g of the buffer.
    All-gather sends the other g-1 chips' shares (``payload_bytes`` is one chip's input);
    reduce-scatter and all-to-all send (g-1)/g of the input.

    Examples
    --------
    >>> from npusim.ir import Collective
    >>> ring_traffic(Collective(name="ar", func="all_reduce", group=4, payload_bytes=8.0))
    (6, 12.0)
    >>> ring_traffic(Collective(name="ag", func="all_gather", group=4, payload_bytes=8.0))
    (3, 24.0)
    """
    g = max(op.group, 1)
    if op.func == "all_reduce":
        return 2 * (g - 1), op.payload_bytes * 2 * (g - 1) / g
    if op.func == "all_gather":
        return g - 1, op.payload_bytes * (g - 1)
    return g - 1, op.payload_bytes * (g - 1) / g


def collective_why(op: Collective) -> str:
    """What asks for ``op.group`` chips, for :meth:`~npusim.arch.Arch.require_link`."""
    origin = f", from {op.source}" if op.source and op.source != op.name else ""
    return f" (op {op.name}{origin}: {op.func} across {op.group} chips)"


def system_chips(graph: Graph, arch) -> int:
    """Chips the graph's collectives span; an arch without a link is refused here, at the
    entry of the engines, before any op is costed (:meth:`~npusim.arch.Arch.require_link`)."""
    return link_chips(widest_collective(graph.ops()), arch)


def widest_collective(ops) -> Collective | None:
    """The collective of ``ops`` across the most chips (the first of them), or None."""
    return max((op for op in ops if isinstance(op, Collective)),
               key=lambda op: op.group, default=None)


def link_chips(widest: Collective | None, arch) -> int:
    """:func:`system_chips` given the graph's :func:`widest_collective`."""
    if widest is None:
        return 1
    arch.require_link(widest.group, collective_why(widest))
    return max(1, widest.group)


def collective_seconds(op: Collective, link) -> float:
    """Time of ``op`` on ``link`` beyond its launch: hops x per-hop latency + bytes / bandwidth.

    With ``link.bulk_latency`` set the faster of two protocols is taken, as NCCL picks per
    message: the low-latency one (``latency`` per hop at :data:`LL_EFFICIENCY` of the
    bandwidth) and the bulk one (``bulk_latency`` per hop at the full bandwidth).
    """
    steps, sent = ring_traffic(op)
    one = steps * (link.latency or 0.0) + sent / link.bandwidth
    if link.bulk_latency is None:
        return one
    low = steps * (link.latency or 0.0) + sent / (link.bandwidth * LL_EFFICIENCY)
    bulk = steps * link.bulk_latency + sent / link.bandwidth
    return min(low, bulk)


def streamed_tensors(graph: Graph) -> frozenset[str]:
    """Storage roots of the tensors a fused attention kernel keeps on chip.

    The pattern is a contraction fed, through a chain of elementwise, movement and reduction
    ops that includes a softmax, by another contraction (``QK^T -> scale/mask -> softmax ->
    PV``), every tensor in the chain an intermediate activation read by exactly one op. Those
    tensors (scores, masked scores, probabilities) are streamed tile by tile and never reach
    DRAM. Where a chain op has several activation inputs (attention sinks concatenated to the
    scores) the chain follows the largest.
    """
    aliases = getattr(graph, "aliases", {})

    def storage(name: str) -> str:
        return aliases.get(name, name)

    consumers: dict[str, int] = {}
    for op in graph.ops():
        for t in op.inputs:
            consumers[storage(t.name)] = consumers.get(storage(t.name), 0) + 1
    boundary = {storage(n) for n in (*graph.inputs, *graph.outputs)}

    def producer(name: str):
        p = graph.producer.get(name) or graph.producer.get(storage(name))
        return graph.op(p) if p is not None else None

    streamed: set[str] = set()
    for op in graph.ops():
        if not isinstance(op, Contraction):
            continue
        for t in op.inputs:
            chain, softmax, cur = [], False, t
            for _ in range(_MAX_ATTENTION_CHAIN + 1):
                root = storage(cur.name)
                tensor = graph.tensors.get(root, cur)
                if (tensor.role != Role.ACTIVATION or root in boundary
                        or consumers.get(root, 0) != 1):
                    break
                src = producer(cur.name)
                if src is None:
                    break
                chain.append(root)
                if isinstance(src, Contraction):
                    if softmax:
                        streamed.update(chain)
                    break
                if not isinstance(src, (Elementwise, Movement, Reduction)):
                    break
                softmax = softmax or (isinstance(src, Reduction) and src.func == "softmax")
                acts = [x for x in src.inputs if x.role == Role.ACTIVATION
                        and producer(x.name) is not None]
                if not acts:
                    break
                cur = max(acts, key=lambda x: x.nbytes)
    return frozenset(streamed)


def dram_terms(graph: Graph, streamed: frozenset[str] | None = None) -> dict[str, object]:
    """What each op's unavoidable DRAM bytes are made of, under the assumptions in the module
    docstring, before any arch is known: per op name either a float (a movement that says
    what it moves) or a tuple of ``(bytes, whole)`` terms in the order they are summed, a
    ``whole`` term counted as is and any other only where it exceeds the SRAM
    (:func:`dram_bytes_of`). ``streamed``: :func:`streamed_tensors` of the graph, when the
    caller has it already."""
    aliases = getattr(graph, "aliases", {})

    def storage(name: str) -> str:       # a free view (reshape) shares its root's storage
        return aliases.get(name, name)

    def role(t) -> Role:                 # a view of the KV cache is the KV cache
        root = graph.tensors.get(storage(t.name))
        return root.role if root is not None else t.role

    graph_inputs = {storage(n) for n in graph.inputs}
    graph_outputs = {storage(n) for n in graph.outputs}
    if streamed is None:
        streamed = streamed_tensors(graph)
    charged: set[str] = set()
    out: dict[str, object] = {}
    for op in graph.ops():
        if isinstance(op, Movement) and op.moved_bytes is not None:
            # a movement that says what it moves (a gather of rows, an in-place KV-cache
            # append) moves exactly that; whoever reads its whole output later pays for it
            out[op.name] = min(float(op.moved_bytes), op.bytes_all)
            continue
        terms = []
        for t in op.inputs:
            root = storage(t.name)
            if root in charged:
                continue
            # the KV cache, graph inputs and graph outputs live in DRAM: reading one is a read
            if role(t) != Role.ACTIVATION or root in graph_inputs or root in graph_outputs:
                terms.append((t.nbytes, True))
            elif root not in streamed:
                terms.append((t.nbytes, False))
            charged.add(root)
        for t in op.outputs:
            if storage(t.name) in graph_outputs or role(t) == Role.KV_CACHE:
                terms.append((t.nbytes, True))
            elif storage(t.name) in streamed:
                continue
            else:
                terms.append((t.nbytes, False))
        out[op.name] = tuple(terms)
    return out


def dram_bytes_of(terms, sram_bytes: float) -> float:
    """An op's unavoidable DRAM bytes from its :func:`dram_terms` with ``sram_bytes`` of SRAM:
    an intermediate activation costs only the part that cannot stay on chip."""
    if isinstance(terms, float):
        return terms
    total = 0.0
    for nbytes, whole in terms:
        total += nbytes if whole else max(0.0, nbytes - sram_bytes)
    return total


def _dram_bytes(graph: Graph, sram_bytes: float,
                streamed: frozenset[str] | None = None) -> dict[str, float]:
    """Unavoidable DRAM bytes per op name, under the assumptions in the module docstring
    (``streamed``: :func:`streamed_tensors` of the graph, when the caller has it already)."""
    return {name: dram_bytes_of(terms, sram_bytes)
            for name, terms in dram_terms(graph, streamed).items()}


def op_bound(op: Op, arch, dram_bytes: float) -> OpRecord:
    """Roofline record of one op on ``arch`` given its unavoidable DRAM bytes."""
    dt = op.compute_dtype
    exec_dt = dt
    compute_s = 0.0
    memory_s = dram_bytes / arch.dram.bandwidth
    if isinstance(op, Contraction):
        exec_dt = arch.execution_dtype(dt)
        compute_s = op.macs / arch.peak_macs_per_s(exec_dt)
    elif isinstance(op, Collective):
        # what a ring moves over each chip's link, at the full link bandwidth (nothing on one
        # chip, which needs no link)
        link = arch.require_link(op.group, collective_why(op))
        sent = ring_traffic(op)[1]
        memory_s += sent / link.bandwidth if sent else 0.0
    else:
        compute_s = op.vector_ops / arch.peak_vector_ops_per_s
    bound_s = max(compute_s, memory_s)
    return OpRecord(
        name=op.name, kind=op.kind, source=op.source, op_type=op.op_type,
        dtype=str(dt), exec_dtype=str(exec_dt), macs=int(op.macs),
        vector_ops=float(op.vector_ops), bytes=float(op.bytes), dram_bytes=float(dram_bytes),
        compute_s=compute_s, memory_s=memory_s, bound_s=bound_s, latency_s=bound_s,
        bound="compute" if compute_s >= memory_s and compute_s > 0 else "memory",
        cycles=bound_s * arch.clock,
        bytes_by_level={"dram": float(dram_bytes)},
        utilization=(compute_s / bound_s) if isinstance(op, Contraction) and bound_s > 0 else 0.0,
    )


def roofline(graph: Graph, arch) -> RunResult:
    """Roofline of every op of ``graph`` on ``arch``, in schedule order.

    The records' ``latency_s`` is the op's own bound (ops run one after another, no overlap);
    :attr:`RunResult.bound_latency_s` is the whole-graph bound with perfect overlap.

    Examples
    --------
    >>> from npusim.ir import Contraction, Graph, BF16, Role
    >>> from npusim.arch import load_arch
    >>> g = Graph("mm")
    >>> _ = g.add(Contraction.einsum("mk,kn->mn", {"m": 4096, "k": 4096, "n": 4096},
    ...                              ["x", "w"], "y", BF16, name="mm",
    ...                              roles=[Role.ACTIVATION, Role.WEIGHT]))
    >>> r = roofline(g, load_arch("rngd"))
    >>> r.ops[0].bound
    'compute'
    """
    system_chips(graph, arch)
    dram = _dram_bytes(graph, arch.sram_total)
    records = tuple(op_bound(op, arch, dram[op.name]) for op in graph.ops())
    return RunResult(model=graph.name, arch=arch.name, engine="roofline", ops=records,
                     meta=dict(graph.meta), warnings=tuple(graph.warnings),
                     peak_macs_per_s=_peak(arch), tdp_w=arch.power.tdp, clock_hz=arch.clock,
                     dram_bandwidth=arch.dram.bandwidth, area=area_totals(arch))


def _peak(arch) -> float:
    """The arch's highest 16-bit MAC rate, the denominator of a run's utilisation."""
    try:
        return arch.peak_macs_per_s("bf16")
    except Exception:  # an arch without bf16 (an int-only edge chip) reports none
        return 0.0
