"""DNN/SNN hybrids: which layers run on the NPU and which on spiking cores, and when SNNs pay.

One question about one feed-forward network (an engine :class:`~npusim.engine.snn.Network`
with a spike rate per layer and ``T`` timesteps), asked of a system of an NPU arch
(:func:`~npusim.arch.load_arch`, priced by its energy table) and a spiking-core device
(:func:`~npusim.arch.snn_device.load_snn_device`):

**Placement** (C-DNN style, KAIST ISSCC'23 / JSSC'24 in ``snn.md`` table 1a: a CNN core
and an SNN core on one chip, a workload allocator splitting the layers). Each layer after the
input runs either as an ANN layer on the NPU (its contraction and ReLU, one pass, priced by
:func:`~npusim.engine.simulate.simulate_graph`) or as a spiking layer on the cores (``T``
steps, priced by :func:`~npusim.engine.snn.run`). A maximal run of consecutive layers on one
side is a *segment*, costed as a whole (on the NPU its intermediate activations stay on chip;
on the cores its layers share the timesteps, the barrier and the static power). At every
boundary between the two domains a converter runs (:func:`boundary`):

* activations -> spikes: a rate encoder, ``T`` compares per neuron;
* spikes -> activations: a counter per neuron, one increment per spike (``n T r``); its
  count is the activation (a ``T``-step rate code is a ``ceil(log2(T + 1))``-bit value,
  Yan et al., ``snn.md`` sec. 2.5);
* the values crossing between the two (``n`` activations of the ANN dtype, or, for a spike
  input fed straight to spiking cores, the spike messages) over the interface: the NPU's
  on-chip network (one chip, as C-DNN) or its chip-to-chip link (two chips).

The network's input and output are in the ANN domain by default (data in, class scores out),
so an all-spiking placement pays an encoder at the input and counters at the output; an
all-NPU one pays only the crossing of the input and output values (the same bytes).
:func:`place` finds the placement of least energy (or latency) by dynamic programming over the
chain of segments (``O(L^2)`` segment costs, each computed once), and :func:`evaluate` costs a
given one (``"npu"``, ``"snn"`` for all on one side, or a side per layer).

The ANN-vs-SNN break-even curve built on these placements, and spiking cores priced by an
NPU's own energy table, are in :mod:`npusim.engine.breakeven`.

Accounting rules (assumptions, stated once here):

* each side's static power is charged for its own busy time only: the idle side is power-gated
  (an all-on-one-side placement so pays no static for the other side);
* converter compares and increments cost one vector element op of the NPU's energy table
  each, as :data:`npusim.ir.NEURON_MODELS` prices an ``encode`` update (1 op), and run on the
  NPU's vector lanes; they sit at the interface, so the spikes an encoder emits are the
  input-layer messages of the spiking segment (counted by its run) and the spikes a counter
  receives are the last layer's own fire events (counted there);
* segments run one after another (the counter needs all ``T`` steps before the next ANN layer
  can start): latency is the sum of the parts'; inside a spiking segment the engine's
  convention holds (``T`` steps, no extra steps for the depth of the pipeline).

Everything returned is plain data (``as_dict``) with every total a sum of its parts.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..arch.snn_device import SnnDevice
from ..errors import ArchError, CapacityError, NpusimError
from ..ir import Axis, Contraction, Elementwise, Graph, Operand, Role, Tensor, dtype as as_dtype
from ..kernels import snn as ks
from . import snn as es

SIDES = ("npu", "snn")
"""Where a layer runs: ``npu`` (an ANN layer) or ``snn`` (spiking cores)."""
DOMAINS = {"npu": "ann", "snn": "snn"}
"""The value domain of each side: activations (``ann``) or spikes (``snn``)."""
OBJECTIVES = ("energy", "latency")
INTERFACES = ("noc", "link")
NPU_WEIGHTS = ("dram", "sram")
"""Where the NPU's weights live: ``dram`` (read every inference, the engine's default) or
``sram`` (resident on chip across inferences, as a spiking core keeps its synapses). The
engine has no notion of weights pre-placed in the SRAM of the core that uses them: ``sram``
gives them the role of on-chip activations, which the engine reads from SRAM and carries over
the NoC to the cores (and does not prefetch), so it charges an ANN more per weight than a
weight-stationary chip would; the same-silicon spiking core
(:func:`npusim.engine.breakeven.same_silicon_device`) reads each synapse from its own core's
SRAM. Read ``sram`` results with that in mind."""

SPIKE_MESSAGE_BITS = 32
"""Bits of one spike message (an address event) on a network. Assumption: one 32-bit flit
(a destination and a neuron address); no source gives a spike packet width in ``snn.md``."""


# ----------------------------------------------------------------------------- the system
@dataclass(frozen=True)
class System:
    """An NPU and spiking cores, and how they talk.

    ``arch``: a loaded arch with an energy table; ``device``: a spiking-core device (its
    ``cost_set``); ``dtype``: the ANN's compute and activation dtype; ``npu_weights``: see
    :data:`NPU_WEIGHTS`; ``interface``: ``noc`` (one chip: the NPU's on-chip network energy
    and bandwidth) or ``link`` (two chips: its chip-to-chip link); ``input_domain`` and
    ``output_domain``: ``ann`` (values) or ``snn`` (spikes); ``static``: charge static power
    (False: dynamic energy only, on both sides); ``snn_options``: extra keyword arguments of
    :func:`npusim.engine.snn.run` (``stages``, ``static_power``, ``tick``...).
    """

    arch: object
    device: SnnDevice
    dtype: str = "int8"
    cost_set: str | None = None
    npu_weights: str = "dram"
    interface: str = "noc"
    input_domain: str = "ann"
    output_domain: str = "ann"
    static: bool = True
    snn_options: Mapping = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value, allowed in (("npu_weights", self.npu_weights, NPU_WEIGHTS),
                                     ("interface", self.interface, INTERFACES),
                                     ("input_domain", self.input_domain, ("ann", "snn")),
                                     ("output_domain", self.output_domain, ("ann", "snn"))):
            if value not in allowed:
                raise NpusimError(f"hybrid system: {name}={value!r}; use one of "
                                  f"{', '.join(allowed)}")
        if "mapping" in self.snn_options or "timesteps" in self.snn_options:
            raise NpusimError("hybrid system: snn_options may not set mapping or timesteps "
                              "(each segment is mapped afresh; T is the placement's)")
        from ..energy import load_energy_table
        table = load_energy_table(self.arch)
        object.__setattr__(self, "_table", table)
        # the spiking mapping of a segment does not depend on the rates: made once per
        # segment and reused for every rate a break-even curve asks (an in-memory memo)
        object.__setattr__(self, "_maps", {})
        if table is None:
            raise ArchError(f"hybrid system: arch {self.arch.name} has no energy table; a "
                            f"placement compares joules, so give an arch with one "
                            f"(npusim/archs/energy/<arch>.yaml)")
        self.act_dtype            # validates the dtype

    @property
    def table(self):
        """The arch's energy table (loaded once, when the system is made)."""
        return self._table

    @property
    def act_dtype(self):
        try:
            return as_dtype(self.dtype)
        except ValueError as exc:
            raise NpusimError(f"hybrid system: dtype={self.dtype!r}: {exc}") from None

    def mapping(self, sub: es.Network) -> es.CoreMap:
        """The device's mapping of a segment's network (greedy mapper), made once."""
        cap = self.snn_options.get("max_neurons_per_core")
        key = (sub.layers, cap)
        if key not in self._maps:
            self._maps[key] = es.map_network(sub, self.device, cap)
        return self._maps[key]

    def interface_costs(self) -> tuple[float, float]:
        """(joules per bit, bytes per second) of the interface between the two sides."""
        table = self.table
        if self.interface == "noc":
            if table.noc is None or self.arch.noc.bandwidth is None:
                # one core, no network: the values are written to and read from its SRAM
                return ((table.sram_read + table.sram_write) / 8.0,
                        (self.arch.cores.sram_bandwidth or 1.0) * self.arch.clock)
            return table.noc, self.arch.noc.bandwidth
        if self.arch.link is None or table.link is None:
            raise ArchError(f"hybrid system: interface='link' but arch {self.arch.name} has "
                            f"no chip-to-chip link (or its energy table no link energy); use "
                            f"interface='noc' or an arch with a link")
        return table.link, self.arch.link.bandwidth


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Part:
    """One piece of a placement: an NPU segment, a spiking segment or a converter.

    ``kind``: ``npu``, ``snn`` or ``convert``; ``layers``: the layers it runs (a converter:
    the layer whose values it converts); ``detail``: per-layer or per-component numbers.
    """

    kind: str
    layers: tuple[str, ...]
    energy_j: float
    latency_s: float
    detail: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "layers": list(self.layers), "energy_j": self.energy_j,
                "latency_s": self.latency_s, "detail": _plain(self.detail)}


@dataclass(frozen=True)
class Placement:
    """A side per layer (after the input) and what it costs; totals are sums of the parts."""

    network: str
    sides: tuple[str, ...]
    layers: tuple[str, ...]
    parts: tuple[Part, ...]
    objective: str = ""
    timesteps: int = 1
    notes: tuple[str, ...] = ()

    @property
    def energy_j(self) -> float:
        return float(sum(p.energy_j for p in self.parts))

    @property
    def latency_s(self) -> float:
        return float(sum(p.latency_s for p in self.parts))

    def energy_by_kind(self) -> dict[str, float]:
        out = {k: 0.0 for k in ("npu", "snn", "convert")}
        for p in self.parts:
            out[p.kind] += p.energy_j
        return out

    def as_dict(self) -> dict:
        return {"network": self.network, "objective": self.objective,
                "timesteps": self.timesteps, "sides": dict(zip(self.layers, self.sides)),
                "energy_j": self.energy_j, "latency_s": self.latency_s,
                "energy_by_kind_j": self.energy_by_kind(),
                "parts": [p.as_dict() for p in self.parts], "notes": list(self.notes)}


def _plain(x):
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


# ----------------------------------------------------------------------------- NPU side
def _conv_geometry(lay) -> tuple[int, int]:
    """(padding, groups) of a layer: the fields the engine's Layer may carry (defaults 0, 1)."""
    return int(getattr(lay, "padding", 0) or 0), int(getattr(lay, "groups", 1) or 1)


def npu_graph(net: es.Network, start: int, stop: int, dtype: str = "int8",
              weights: str = "dram") -> Graph:
    """Layers ``start .. stop - 1`` (indices into ``net.layers``, ``start >= 1``) as IR ops.

    Each layer is its contraction (dense: ``n k, k m -> n m``; conv2d: the Conv lowering's
    affine form, ``input = p * stride + r - padding``, grouped when ``groups > 1``) and, but
    the network's last, a ReLU. The segment's input and output are neither graph inputs nor
    outputs: they arrive and leave through the interface (:func:`boundary` prices that), so
    the engine keeps them on chip when they fit. ``weights="sram"`` marks the weights as
    resident on-chip values (role activation, no producer), so the engine reads them from
    SRAM instead of DRAM.

    >>> net = es.Network("n", (es.Layer("in", "input", (4,)), es.Layer("h", "dense", (3,))))
    >>> [op.macs for op in npu_graph(net, 1, 2).ops()]
    [12]
    """
    dt = as_dtype(dtype)
    g = Graph(f"{net.name}[{start}:{stop}]")
    wrole = Role.WEIGHT if weights == "dram" else Role.ACTIVATION
    last = len(net.layers) - 1
    for i in range(start, stop):
        lay, prev = net.layers[i], net.layers[i - 1]
        x = Tensor(prev.name, (1, *prev.shape), dt)
        pre = Tensor(f"{lay.name}:pre", (1, *lay.shape), dt)
        if lay.kind == "dense":
            ins = [f"k{a}" for a in range(len(prev.shape))]
            dims = [("n", 1), *zip(ins, prev.shape), ("m", lay.size)]
            w = Tensor(f"{lay.name}:w", (*prev.shape, lay.size), dt, wrole)
            c = Contraction(name=lay.name, source=lay.name, op_type="Gemm", dims=tuple(dims),
                            operands=(Operand(x, tuple(Axis.of(d) for d in ["n", *ins])),
                                      Operand(w, tuple(Axis.of(d) for d in [*ins, "m"]))),
                            output=Operand(pre, (Axis.of("n"), Axis.of("m"))), dtype=dt)
        else:
            c = _conv(lay, prev, x, pre, dt, wrole)
        g.add(c)
        if i == last:
            out = pre
        else:
            out = Tensor(lay.name, (1, *lay.shape), dt)
            g.add(Elementwise(name=f"{lay.name}:relu", source=lay.name, op_type="Relu",
                              func="relu", inputs=(pre,), outputs=(out,)))
    return g


def _conv(lay, prev, x: Tensor, pre: Tensor, dt, wrole) -> Contraction:
    pad, groups = _conv_geometry(lay)
    ic, oc = prev.shape[0], lay.shape[0]
    cg, mg = ic // groups, oc // groups
    kh, kw = lay.kernel
    s = lay.stride
    dims = [("n", 1)] + ([("g", groups)] if groups > 1 else []) + [("m", mg), ("c", cg)]
    dims += [("p", lay.shape[1]), ("q", lay.shape[2]), ("r", kh), ("s", kw)]

    def chan(per: int, inner: str):
        return Axis.affine({"g": per, inner: 1}) if groups > 1 else Axis.of(inner)

    w = Tensor(f"{lay.name}:w", (oc, cg, kh, kw), dt, wrole)
    return Contraction(
        name=lay.name, source=lay.name, op_type="Conv", dims=tuple(dims),
        operands=(Operand(x, (Axis.of("n"), chan(cg, "c"), Axis.affine({"p": s, "r": 1}, -pad),
                              Axis.affine({"q": s, "s": 1}, -pad))),
                  Operand(w, (chan(mg, "m"), Axis.of("c"), Axis.of("r"), Axis.of("s")))),
        output=Operand(pre, (Axis.of("n"), chan(mg, "m"), Axis.of("p"), Axis.of("q"))),
        dtype=dt)


def npu_segment(system: System, net: es.Network, start: int, stop: int) -> Part:
    """Layers ``start .. stop - 1`` on the NPU: one ANN pass of their ops.

    ``detail``: per layer (its contraction and ReLU records summed) energy and latency, and the
    energy by component (``mac``, ``sram``, ``dram``, ``static``...).
    """
    from .simulate import simulate_graph
    r = simulate_graph(npu_graph(net, start, stop, system.dtype, system.npu_weights),
                       system.arch)
    per: dict[str, dict] = {}
    for rec in r.ops:
        d = per.setdefault(rec.source or rec.name, {"energy_j": 0.0, "latency_s": 0.0})
        d["energy_j"] += rec.energy_total_j - (0.0 if system.static
                                               else rec.energy_j.get("static", 0.0))
        d["latency_s"] += rec.latency_s
    by = r.energy_by_component()
    if not system.static:
        by.pop("static", None)
    return Part("npu", tuple(lay.name for lay in net.layers[start:stop]),
                float(sum(by.values())), float(r.latency_s),
                {"layers": per, "by_component_j": by, "macs": int(r.macs)})


# ----------------------------------------------------------------------------- SNN side
def sub_network(net: es.Network, start: int, stop: int) -> es.Network:
    """Layers ``start .. stop - 1`` behind an input layer standing for layer ``start - 1``
    (the encoder's spikes, or the spikes of the layer before on the same cores)."""
    prev = net.layers[start - 1]
    return es.Network(f"{net.name}[{start}:{stop}]",
                      (es.Layer(prev.name, "input", prev.shape), *net.layers[start:stop]))


def snn_segment(system: System, net: es.Network, rates: Mapping, timesteps: int,
                start: int, stop: int) -> Part:
    """Layers ``start .. stop - 1`` on the spiking cores for ``timesteps`` steps.

    ``detail["layers"]``: each layer's dynamic energy (the events on its cores, routing
    charged to the sender as the engine does) and busy time (per step the busiest of its
    cores, summed); the segment's input layer (spike sources) appears as ``<name>:in``;
    ``detail["static_j"]``; ``detail["synops"]``, ``detail["synapses"]``.
    """
    sub = sub_network(net, start, stop)
    activity = {lay.name: float(rates[lay.name]) for lay in sub.layers}
    options = dict(system.snn_options)
    if not system.static:
        options["static_power"] = 0.0
    r = es.run(sub, system.device, activity, timesteps, cost_set=system.cost_set,
               mapping=system.mapping(sub), **options)
    return Part("snn", tuple(lay.name for lay in sub.layers[1:]), float(r.energy_j),
                float(r.latency_s), {"layers": layer_costs(sub, r, system),
                                     "static_j": float(r.static_j),
                                     "synops": float(r.counts[:, :, ks.SYNOP].sum()),
                                     "synapses": synapses(sub),
                                     "cores": int(r.mapping.n_cores)})


def synapses(net: es.Network) -> int:
    """Synapses of every projection of ``net`` (the engine's connectivity)."""
    return int(sum(es.connectivity(net, i)[0].size for i in range(1, len(net.layers))))


def layer_costs(net: es.Network, result: es.SnnResult, system: System) -> dict[str, dict]:
    """Per layer of ``net``: dynamic energy of its cores' events and their busy time."""
    cs = system.device.cost_set(system.cost_set)
    base = dict(system.snn_options.get("costs") or {})
    over = system.snn_options.get("layer_costs") or {}
    out = {}
    for i, lm in enumerate(result.mapping.layers):
        e, _ = es.cost_vectors(cs, {**base, **dict(over.get(lm.name, {}))})
        cores = slice(lm.first_core, lm.first_core + lm.n_cores)
        counts = result.counts[:, cores, :].sum(axis=(0, 1))
        energy = float(np.sum(np.where(np.isnan(e), 0.0, e) * counts))
        busy = result.core_busy_s[:, cores]
        name = lm.name if i else f"{lm.name}:in"
        out[name] = {"energy_j": energy,
                     "busy_s": float(busy.max(axis=1).sum()) if busy.size else 0.0}
    return out


# ----------------------------------------------------------------------------- converters
def boundary(system: System, net: es.Network, rates: Mapping, timesteps: int, i: int,
             src: str, dst: str) -> Part:
    """The converter after layer ``i`` from domain ``src`` to ``dst`` (``ann`` or ``snn``).

    ``ann -> ann``: the ``n`` values cross; ``ann -> snn``: they cross and a rate encoder does
    ``n T`` compares; ``snn -> ann``: ``n T r`` counter increments, then the ``n`` counts
    cross; ``snn -> snn`` (spikes in or out of the system): the ``n T r`` spike messages
    cross, :data:`SPIKE_MESSAGE_BITS` each. Ops are NPU vector ops (energy table
    ``vector_op``, the chip's vector rate); bytes go at the interface's energy and bandwidth.
    """
    lay = net.layers[i]
    n, T = lay.size, int(timesteps)
    rate = float(rates[lay.name])
    value_bytes = n * system.act_dtype.bytes
    if src == "ann":
        ops = n * T if dst == "snn" else 0.0
        nbytes = value_bytes
    else:
        ops = n * T * rate if dst == "ann" else 0.0
        nbytes = value_bytes if dst == "ann" else n * T * rate * SPIKE_MESSAGE_BITS / 8.0
    e_bit, bw = system.interface_costs()
    table = system.table
    ops_j = ops * table.vector_op
    bytes_j = nbytes * 8.0 * e_bit
    t = ops / system.arch.peak_vector_ops_per_s + nbytes / bw
    what = {("ann", "ann"): "values", ("ann", "snn"): "encoder", ("snn", "ann"): "counter",
            ("snn", "snn"): "spikes"}[(src, dst)]
    return Part("convert", (lay.name,), ops_j + bytes_j, t,
                {"what": what, "from": src, "to": dst, "ops": ops, "ops_j": ops_j,
                 "bytes": nbytes, "bytes_j": bytes_j})


# ----------------------------------------------------------------------------- placement
def _check(net: es.Network, rates: Mapping, timesteps: int) -> None:
    if len(net.layers) < 2:
        raise NpusimError(f"hybrid placement of {net.name!r}: the network has no layer after "
                          f"its input; nothing to place")
    missing = [lay.name for lay in net.layers if lay.name not in rates]
    if missing:
        raise NpusimError(f"hybrid placement of {net.name!r}: give a spike rate for every "
                          f"layer (the input included); missing {missing}")
    for name, r in rates.items():
        if not (isinstance(r, (int, float, np.floating)) and 0.0 <= float(r) <= 1.0):
            raise NpusimError(f"hybrid placement of {net.name!r}: layer {name!r} has rate "
                              f"{r!r}; a rate is mean spikes per neuron per timestep in [0, 1]")
    if not (isinstance(timesteps, (int, np.integer)) and timesteps >= 1):
        raise NpusimError(f"hybrid placement of {net.name!r}: timesteps={timesteps!r}; give "
                          f"an integer >= 1")


class _Costs:
    """Segment and boundary costs of one (system, network, rates, T), each computed once."""

    def __init__(self, system: System, net: es.Network, rates: Mapping, timesteps: int):
        _check(net, rates, timesteps)
        self.system, self.net, self.rates, self.T = system, net, dict(rates), int(timesteps)
        self._seg: dict[tuple, Part | Exception] = {}

    def segment(self, side: str, start: int, stop: int) -> Part | None:
        """The segment's cost, or None if it does not fit (the reason kept in ``refused``)."""
        key = (side, start, stop)
        if key not in self._seg:
            try:
                self._seg[key] = (npu_segment(self.system, self.net, start, stop)
                                  if side == "npu" else
                                  snn_segment(self.system, self.net, self.rates, self.T,
                                              start, stop))
            except CapacityError as exc:
                self._seg[key] = exc
        got = self._seg[key]
        return None if isinstance(got, Exception) else got

    def refused(self, side: str, start: int, stop: int) -> str:
        got = self._seg.get((side, start, stop))
        return str(got) if isinstance(got, Exception) else ""

    def convert(self, i: int, src: str, dst: str) -> Part:
        return boundary(self.system, self.net, self.rates, self.T, i, src, dst)


def _parts(costs: _Costs, sides: Sequence[str]) -> list[Part]:
    """The parts of a placement given as a side per layer (after the input)."""
    net = costs.net
    L = len(net.layers) - 1
    parts = []
    domain = costs.system.input_domain
    i = 1
    while i <= L:
        side = sides[i - 1]
        j = i
        while j < L and sides[j] == side:
            j += 1
        parts.append(costs.convert(i - 1, domain, DOMAINS[side]))
        seg = costs.segment(side, i, j + 1)
        if seg is None:
            raise CapacityError(costs.refused(side, i, j + 1))
        parts.append(seg)
        domain = DOMAINS[side]
        i = j + 1
    parts.append(costs.convert(L, domain, costs.system.output_domain))
    return parts


def _sides(net: es.Network, sides: str | Sequence[str]) -> tuple[str, ...]:
    L = len(net.layers) - 1
    if isinstance(sides, str):
        sides = [sides] * L
    sides = tuple(sides)
    bad = [s for s in sides if s not in SIDES]
    if len(sides) != L or bad:
        raise NpusimError(f"hybrid placement of {net.name!r}: give 'npu', 'snn' or one of "
                          f"them per layer after the input ({L} layers); got {sides}")
    return sides


def evaluate(system: System, net: es.Network, rates: Mapping, timesteps: int,
             sides: str | Sequence[str]) -> Placement:
    """Cost one placement: ``"npu"``, ``"snn"`` (all on one side) or a side per layer.

    Raises :class:`~npusim.errors.CapacityError` when a segment does not fit its side.
    """
    costs = _Costs(system, net, rates, timesteps)
    s = _sides(net, sides)
    return Placement(net.name, s, tuple(lay.name for lay in net.layers[1:]),
                     tuple(_parts(costs, s)), "given", int(timesteps))


def _key(objective: str, energy: float, latency: float) -> tuple[float, float]:
    return (energy, latency) if objective == "energy" else (latency, energy)


def place(system: System, net: es.Network, rates: Mapping, timesteps: int,
          objective: str = "energy") -> Placement:
    """The placement of least ``objective`` (ties: the other one), by dynamic programming.

    ``best[j][s]``: the cheapest way to run layers ``1 .. j`` with layer ``j`` ending a
    segment on side ``s``; a segment ``i + 1 .. j`` on ``s`` follows one ending at ``i`` on
    the other side (or the input, in the system's input domain) and pays the converter
    between them. The answer adds the output converter. Sides alternate, so every placement
    (all-NPU and all-spiking included) is one of the chains searched: the result is never
    worse than either.

    Raises :class:`~npusim.errors.CapacityError` when no placement fits.
    """
    if objective not in OBJECTIVES:
        raise NpusimError(f"hybrid placement: objective={objective!r}; use one of "
                          f"{', '.join(OBJECTIVES)}")
    costs = _Costs(system, net, rates, timesteps)
    L = len(net.layers) - 1
    # best[j][side] = (key, energy, latency, back pointer (i, previous side) or None)
    best: list[dict] = [dict() for _ in range(L + 1)]
    for j in range(1, L + 1):
        for side in SIDES:
            for i in range(j):
                if i == 0:
                    prev_e = prev_t = 0.0
                    domain = system.input_domain
                    back = None
                else:
                    other = SIDES[1 - SIDES.index(side)]
                    if other not in best[i]:
                        continue
                    _, prev_e, prev_t, _ = best[i][other]
                    domain = DOMAINS[other]
                    back = (i, other)
                seg = costs.segment(side, i + 1, j + 1)
                if seg is None:
                    continue
                conv = costs.convert(i, domain, DOMAINS[side])
                e = prev_e + conv.energy_j + seg.energy_j
                t = prev_t + conv.latency_s + seg.latency_s
                cand = (_key(objective, e, t), e, t, back)
                if side not in best[j] or cand[0] < best[j][side][0]:
                    best[j][side] = cand
    finals = []
    for side, (_, e, t, _) in best[L].items():
        out = costs.convert(L, DOMAINS[side], system.output_domain)
        finals.append((_key(objective, e + out.energy_j, t + out.latency_s), side))
    if not finals:
        why = costs.refused("snn", 1, L + 1) or costs.refused("npu", 1, L + 1)
        raise CapacityError(f"hybrid placement of {net.name!r}: no placement fits ({why})")
    side = min(finals)[1]
    sides = [""] * L
    j = L
    while True:
        back = best[j][side][3]
        i = back[0] if back else 0
        sides[i:j] = [side] * (j - i)
        if back is None:
            break
        j, side = back
    return Placement(net.name, tuple(sides), tuple(lay.name for lay in net.layers[1:]),
                     tuple(_parts(costs, sides)), objective, int(timesteps))


_BREAKEVEN = ("ADD_SHARE", "BARRIER_CYCLES", "BreakEven", "DEFAULT_RATES", "NEURON_SHARE",
              "STATE_BYTES", "break_even", "same_silicon_device", "snn_energy")


def __getattr__(name: str):
    """The break-even half (:mod:`npusim.engine.breakeven`, which builds on this module) is
    reachable from here too, as ``hybrid.break_even`` and ``hybrid.same_silicon_device``."""
    if name in _BREAKEVEN:
        from . import breakeven
        return getattr(breakeven, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DOMAINS", "INTERFACES", "NPU_WEIGHTS", "OBJECTIVES", "Part", "Placement", "SIDES",
           "SPIKE_MESSAGE_BITS", "System", "boundary", "evaluate", "layer_costs", "npu_graph",
           "npu_segment", "place", "snn_segment", "sub_network", "synapses"]
