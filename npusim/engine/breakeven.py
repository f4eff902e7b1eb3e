"""When spikes pay: the ANN-vs-SNN break-even, and spiking cores on an NPU's own silicon.

**Break-even** (:func:`break_even`): energy per inference of the all-NPU placement (flat
in the spike rate) and of the all-spiking one against one mean spike rate ``r`` shared by
every layer, the crossover rate where the two meet, and the spikes per synapse per inference
there (synaptic events / synapses, ``= T r`` at one shared rate). Memory, NoC, idle updates
and static power are all in, unlike the op-count model of ``snn.md`` sec. 2.1; set the answer
beside sec. 2.5 (about 1 spike per synapse per inference; below about 6 % rate at ``T = 5``),
never tune to it. :func:`same_silicon_device` builds the spiking cores an NPU would be if
its own energy table priced the events (Davidson & Furber 2021's "identical silicon").

The two sides are the all-NPU and the all-spiking placements of
:mod:`npusim.engine.hybrid` (its converters, interface and accounting rules hold here too).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..arch.model import FrozenMap
from ..arch.snn_device import (Barrier, CostSet, EventCost, SnnDevice, StaticPower,
                               Structure)
from ..errors import ArchError, NpusimError
from ..ir import NEURON_MODELS, dtype as as_dtype
from . import snn as es
from .hybrid import SPIKE_MESSAGE_BITS, Placement, System, evaluate, npu_graph, synapses


# ----------------------------------------------------------------------------- same silicon
ADD_SHARE = {"int8": 0.03 / 0.23, "fp16": 0.4 / 1.5, "bf16": 0.4 / 1.5, "fp32": 0.9 / 4.6}
"""Share of a MAC's energy that is its add, by dtype: Horowitz ISSCC 2014 (45 nm, 0.9 V; via
``snn.md`` sec. 2.1 and ``npusim/archs/energy/edu.yaml``): int8 add 0.03 / (mult 0.2 + add
0.03); fp16 add 0.4 / (1.1 + 0.4); fp32 add 0.9 / (3.7 + 0.9); bf16 as fp16 (assumption, as
the shipped energy tables do). A synop is an accumulate without the multiply (sec. 2.1's
E_AC), so its arithmetic is this share of the table's MAC energy."""
STATE_BYTES = 2
"""Bytes of one neuron's state (membrane potential). Assumption: 16 bits, as Xylo Audio 2's
16-bit state (``snn.md`` table 1b); Loihi keeps 23-bit potentials (table 1a)."""
NEURON_SHARE = 1 / 8
"""Share of a core's SRAM given to neuron state (the rest holds synapses). Assumption."""
BARRIER_CYCLES = 100
"""Cycles of a chip-wide barrier ending each timestep. Assumption: a round 100 cycles, a third
of Loihi 1's silicon-calibrated 299 ns barrier (SANA-FE, ``snn.md`` table 1b) counted at
1 GHz, since a clocked NPU needs no asynchronous handshake tree."""


def same_silicon_device(arch, table=None, *, dtype: str = "int8", model: str = "if",
                        chips: int = 1) -> SnnDevice:
    """Spiking cores built from ``arch``'s own cores and priced by its own energy table.

    Every event is the table's actions (Davidson & Furber 2021's comparison "on identical
    silicon", ``snn.md`` sec. 2.5):

    * ``synop``: the weight's fetch from core SRAM (``dtype`` bytes x ``sram.read``) plus an
      add (:data:`ADD_SHARE` of the table's MAC energy); weights addressed densely (a layer's
      synapses in order, no index per synapse, as the NPU reads them);
    * ``update_active``: the state read and written back (:data:`STATE_BYTES` x (``read`` +
      ``write``)) and the neuron model's ops (:data:`npusim.ir.NEURON_MODELS`, ``if``: 2) at
      the add energy; ``update_idle``: the state read only (the potential checked, not
      changed; assumption); ``neuron_fire``: 0 (compare and reset are in the update's ops);
    * ``spike_out``: one message of :data:`SPIKE_MESSAGE_BITS` over the on-chip network
      (table ``noc`` per bit, which prices a whole core-to-core trip: hops and in-tile
      deliveries cost no more energy; on a one-core chip the message is written to and read
      from SRAM); ``axon_in``: 0 (the fan-out is implicit in dense addressing);
    * times from the arch: per cycle a core fetches ``sram_bandwidth`` bytes and adds on its
      ``vector.ops_per_cycle`` lanes, so a synop takes ``max(weight bytes / sram_bandwidth,
      1 / lanes)`` cycles, an update ``max(state bytes x 2 / sram_bandwidth, ops / lanes)``;
      a message or a hop 1 cycle (assumption); barrier :data:`BARRIER_CYCLES`;
    * static power: the table's ``static`` (the same chip).

    Structure: one tile per NPU core in a row (``tiles x = cores``); synaptic memory and
    neurons per core split the core's SRAM (:data:`NEURON_SHARE`); no fan-in or fan-out limit
    (an NPU core addresses all of its SRAM).
    """
    from ..energy import load_energy_table
    table = table or load_energy_table(arch)
    if table is None:
        raise ArchError(f"same-silicon spiking cores: arch {arch.name} has no energy table to "
                        f"price events with; give an arch with one")
    dt = as_dtype(dtype)
    if dt.name not in ADD_SHARE or dt.name not in table.mac:
        have = sorted(set(ADD_SHARE) & set(table.mac))
        raise ArchError(f"same-silicon spiking cores: dtype {dt.name!r} has no add share or "
                        f"no MAC energy in {table.source}; use one of {', '.join(have)}")
    if model not in NEURON_MODELS:
        raise NpusimError(f"same-silicon spiking cores: neuron model {model!r}; use one of "
                          f"{', '.join(NEURON_MODELS)}")
    c = arch.cores
    clock = arch.clock
    cycle = 1.0 / clock
    bw = float(c.sram_bandwidth or 1.0)
    lanes = float(c.vector.ops_per_cycle)
    e_add = table.mac[dt.name] * ADD_SHARE[dt.name]
    wbytes = dt.bytes
    ops = NEURON_MODELS[model]
    if table.noc is not None:
        e_msg = SPIKE_MESSAGE_BITS * table.noc
    else:
        e_msg = SPIKE_MESSAGE_BITS / 8.0 * (table.sram_read + table.sram_write)

    def ev(energy: float, cycles: float) -> EventCost:
        return EventCost(energy=float(energy), time=float(cycles) * cycle, scope="per-term",
                         basis="derived", source="ERT")

    events = {
        "synop": ev(wbytes * table.sram_read + e_add, max(wbytes / bw, 1.0 / lanes)),
        "update_active": ev(STATE_BYTES * (table.sram_read + table.sram_write) + ops * e_add,
                            max(2 * STATE_BYTES / bw, ops / lanes)),
        "update_idle": ev(STATE_BYTES * table.sram_read, STATE_BYTES / bw),
        "neuron_fire": ev(0.0, 0.0),
        "spike_out": ev(e_msg, 1.0),
        "in_tile": ev(0.0, 1.0),
        "hop_ew": ev(0.0, 1.0),
        "hop_ns": ev(0.0, 1.0),
        "axon_in": ev(0.0, 1.0),
    }
    costs = CostSet(
        name="default",
        description=f"derived from {table.source}: SRAM fetch + add per synop, state "
                    f"read/write per update, NoC bits per message",
        voltage=None, events=FrozenMap(events), must_fit=("learn",),
        barrier=Barrier(base=BARRIER_CYCLES * cycle, per_tile=0.0, basis="assumption",
                        source="assumption", fit=f"{BARRIER_CYCLES} cycles, assumed",
                        multi_chip=None),
        static=StaticPower(power=table.floor_w, basis="derived", source="ERT", voltage=None))
    sram = float(c.sram)
    structure = Structure(
        tiles_x=c.count, tiles_y=1, cores_per_tile=1, usable_cores=None,
        neurons_per_core=max(1, int(sram * NEURON_SHARE // STATE_BYTES)),
        synaptic_memory=sram * (1 - NEURON_SHARE), fan_in=None, fan_out=None,
        weight_bits=int(dt.bits), tick=None, graded_spikes=False, graded_spike_bits=None,
        chips=int(chips), process=None, voltage_min=None, voltage_max=None)
    return SnnDevice(
        name=f"{arch.name}-snn", description=f"spiking cores on {arch.name}'s silicon, events "
        f"priced by its energy table (every number derived or an assumption)",
        structure=structure, costs=costs, alternatives=FrozenMap({}), linear_power=None,
        sources=FrozenMap({"ERT": f"{table.source} (the NPU's energy table) and "
                                  f"{arch.source or arch.name} (its cores)"}),
        source=f"same_silicon_device({arch.name})")


# ----------------------------------------------------------------------------- break-even
@dataclass(frozen=True)
class BreakEven:
    """ANN (all on the NPU) vs SNN (all on the spiking cores) energy per inference against one
    spike rate shared by every layer; the crossover where they meet."""

    network: str
    npu: str
    snn: str
    timesteps: int
    rate: tuple[float, ...]
    snn_energy_j: tuple[float, ...]
    ann_energy_j: float
    spikes_per_synapse: tuple[float, ...]
    crossover_rate: float | None
    crossover_spikes_per_synapse: float | None
    regime: str
    synapses: int
    macs: int
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        """Plain data: ``rate``, ``snn_energy_j``, ``ann_energy_j`` (one per rate, flat),
        ``spikes_per_synapse`` (lists); ``timesteps``; ``crossover_rate`` and
        ``crossover_spikes_per_synapse`` (None when the curves do not cross); ``regime``
        (``crossover``, ``snn_cheaper`` at every rate or ``ann_cheaper`` at every rate); and
        the names of the network and both sides."""
        return {"network": self.network, "npu": self.npu, "snn": self.snn,
                "timesteps": self.timesteps, "rate": list(self.rate),
                "snn_energy_j": list(self.snn_energy_j),
                "ann_energy_j": [self.ann_energy_j] * len(self.rate),
                "spikes_per_synapse": list(self.spikes_per_synapse),
                "crossover_rate": self.crossover_rate,
                "crossover_spikes_per_synapse": self.crossover_spikes_per_synapse,
                "regime": self.regime, "synapses": self.synapses, "macs": self.macs,
                "notes": list(self.notes)}


DEFAULT_RATES = tuple(float(r) for r in np.round(np.linspace(0.0, 1.0, 21), 6))
"""Rates of the break-even curve: 0 to 1 in steps of 0.05."""


def snn_energy(system: System, net: es.Network, rate: float, timesteps: int) -> Placement:
    """The all-spiking placement at one spike rate shared by every layer."""
    return evaluate(system, net, {lay.name: rate for lay in net.layers}, timesteps, "snn")


def break_even(system: System, net: es.Network, timesteps: int,
               rates: Sequence[float] = DEFAULT_RATES, *, tol: float = 1e-6) -> BreakEven:
    """Energy per inference against the mean spike rate, and the crossover.

    The ANN side is the all-NPU placement (no spikes: its cost does not depend on the rate);
    the SNN side the all-spiking one with every layer (the input included) at rate ``r``.
    The crossover is found between the grid points that bracket it (the SNN energy is
    non-decreasing in the rate, a property the tests check), to ``tol`` in rate or a
    billionth of the ANN energy, by regula falsi (Illinois): the curve is nearly straight
    between grid points, so a few runs of the spiking engine do.
    """
    rates = tuple(sorted(float(r) for r in rates))
    if not rates or rates[0] < 0.0 or rates[-1] > 1.0:
        raise NpusimError(f"break-even of {net.name!r}: rates must lie in [0, 1]; got {rates}")
    zero = {lay.name: 0.0 for lay in net.layers}
    ann = evaluate(system, net, zero, timesteps, "npu").energy_j
    n_syn = synapses(net)
    macs = int(sum(op.macs for op in npu_graph(net, 1, len(net.layers)).ops()))

    @lru_cache(maxsize=None)
    def snn(r: float) -> tuple[float, float]:
        p = snn_energy(system, net, r, timesteps)
        ops = sum(part.detail["synops"] for part in p.parts if part.kind == "snn")
        return p.energy_j, ops / n_syn if n_syn else 0.0

    curve = [snn(r) for r in rates]
    energies = [e for e, _ in curve]
    cross = None
    if energies[0] >= ann:
        regime = "ann_cheaper"
    elif energies[-1] <= ann and rates[-1] == 1.0:
        regime = "snn_cheaper"
    else:
        k = next((k for k, e in enumerate(energies) if e > ann), None)
        if k is None:
            regime = "snn_cheaper"
        else:
            cross = _crossing(lambda r: snn(r)[0] - ann, rates[k - 1], rates[k],
                              energies[k - 1] - ann, energies[k] - ann, tol, 1e-9 * ann)
            regime = "crossover"
    notes = []
    if regime == "snn_cheaper" and rates[-1] < 1.0:
        notes.append(f"SNN cheaper up to the highest rate asked ({rates[-1]})")
    return BreakEven(
        network=net.name, npu=system.arch.name, snn=system.device.name,
        timesteps=int(timesteps), rate=rates, snn_energy_j=tuple(energies), ann_energy_j=ann,
        spikes_per_synapse=tuple(s for _, s in curve), crossover_rate=cross,
        crossover_spikes_per_synapse=None if cross is None else snn(cross)[1],
        regime=regime, synapses=n_syn, macs=macs, notes=tuple(notes))


def _crossing(f, lo: float, hi: float, f_lo: float, f_hi: float, tol: float,
              f_tol: float) -> float:
    """A root of the non-decreasing ``f`` in ``[lo, hi]`` (``f_lo <= 0 < f_hi``): Illinois
    regula falsi, the bracket kept; stops at ``|f| <= f_tol`` or a bracket of ``tol``."""
    last = 0
    for _ in range(200):
        if hi - lo <= tol:
            break
        c = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        if not lo < c < hi:
            c = 0.5 * (lo + hi)
        fc = f(c)
        if abs(fc) <= f_tol:
            return c
        if fc <= 0.0:
            lo, f_lo = c, fc
            if last == -1:
                f_hi *= 0.5
            last = -1
        else:
            hi, f_hi = c, fc
            if last == 1:
                f_lo *= 0.5
            last = 1
    return 0.5 * (lo + hi)


__all__ = ["ADD_SHARE", "BARRIER_CYCLES", "BreakEven", "DEFAULT_RATES", "NEURON_SHARE",
           "STATE_BYTES", "break_even", "same_silicon_device", "snn_energy"]
