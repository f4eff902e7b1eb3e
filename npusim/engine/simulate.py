"""The tile-level engine: cost every op of a graph on an arch and schedule them.

Per op:

* a **contraction** is mapped by :func:`npusim.engine.mapping.search` (tiles, loop order,
  split over cores, double-buffered pipeline; cycles from the contraction-engine kernel);
* **elementwise** and **reduction** ops run on the vector units; an elementwise op whose only
  activation input is a contraction's output, read by nobody else, is fused into that
  contraction as an epilogue (its work overlaps the contraction's, its input never leaves the
  engine); chains of them too (bias, then activation). Its roofline bound is folded into the
  contraction's record as below (:meth:`_ClassCosts.prepare`), so the run's bound never counts
  overlapped vector work twice;
* on an arch with ``fusion: residual`` (NPU compilers that fuse elementwise ops with several
  activation inputs), an elementwise op is also fused when its other activation inputs were
  produced before the contraction (a residual add): see
  :func:`~npusim.engine.graph_facts.fusable`. Such a fused group is costed as one kernel:
  the contraction's output never leaves the engine (nor DRAM, even where it would not fit
  the SRAM), each epilogue reads its other inputs and writes its output where they live (the
  bytes and levels a standalone run of it would move, less the fused input:
  :func:`~npusim.engine.op_cost.epilogue_cost`), its DRAM bytes join the contraction's DRAM
  stream, its vector work and on-chip traffic overlap the contraction's, and it pays no
  launch. The group's
  roofline bounds are folded into the contraction's record (its compute bound the larger of
  the MAC and the vector time, as the two units work side by side; its memory bound the sum),
  the fused ops' records keep their own bytes and energy at zero time and bound;
* **movement** costs its bytes at DRAM or on-chip bandwidth; a **collective** what a ring moves
  over the chip-to-chip link, plus a latency per hop (:func:`~npusim.engine.roofline.
  collective_seconds`: the faster of a low-latency and a bulk protocol where the link has both);
* every contraction, and every run of glue ops between two contractions (one fused kernel),
  pays the arch's ``launch_overhead`` once.

Where tensors live follows the roofline's rules (:mod:`npusim.engine.roofline`): weights, KV
cache and graph inputs start in DRAM; an intermediate activation stays on chip when it fits
in the chip's SRAM, and attention scores always do (a fused attention kernel streams them). The engine only adds to the roofline's bytes (reloads, partial sums), and
runs DRAM at an effective bandwidth no higher than peak, so no op it times beats its bound.

Scheduling: ops run in dependency order, one after another on the chip; the DRAM prologue of a
contraction (loading its first tiles, weights need no predecessor) may overlap the DRAM-idle
tail of the op before it (weight prefetch), which is what the record's ``latency_s`` is net of.

Energy: each op's action counts (:class:`npusim.energy.Actions`) go through the arch's energy
table (times its ``dynamic_overhead``, reported as the ``overhead`` component); the table's
floor power (``loaded_floor``, else ``static``) is charged for the op's latency. If the dynamic
power an op would draw pushes the chip past its limit (``power.tdp``, or a lower ``power.cap``),
the op is slowed until it fits (the clock a power-capped chip would settle at; with the table's
``dvfs_exponent`` the voltage falls with the clock and the op's on-chip energy with it), and the
record says so.

PIM: on an arch whose DRAM has enabled processing units (``arch.pim``), each op the units can
run (:func:`npusim.engine.pim.op_on_pim`) goes to the NPU or to PIM by cost (``pim=``); PIM
ops are costed by :mod:`npusim.engine.pim` and never overlap NPU work, since both use the same
banks (see :func:`simulate_graph`). Without enabled units this module runs exactly as before.

Speed: ops that nothing the engine prices tells apart (an LLM's 32 layers repeat a few dozen)
form a cost class (:mod:`npusim.engine.graph_facts`, found once per graph); each class is
costed once per run, on its first op, by the functions above, and every op is then scheduled
(launch, prefetch, power cap, PIM placement) as if costed alone. ``share=False`` costs each op
by itself, the reference the classes are tested against. ``records=False`` (a sweep's points)
returns the totals alone, summed over the same per-op values in the same order.
"""
from __future__ import annotations

from dataclasses import replace

from ..errors import NpusimError
from ..ir import Contraction, Graph, Op
from .dram import dram_table
from .graph_facts import GraphFacts, graph_facts
from .op_cost import (NO_COST, VOLTAGE_SCALED, OpCost, PowerLimits, access_pattern, actions,
                      clock_free, contraction_cost, epilogue_cost, glue_cost, placement,
                      power_capped, scaled_on_chip, with_epilogues)
from .result import TOTALS_FIELDS, OpRecord, RunResult, RunTotals, Span
from .roofline import _peak, dram_bytes_of, link_chips, op_bound
from ..energy.area import area_totals

# the names helpers had here before they moved to graph_facts and op_cost (tests use them)
from .graph_facts import fusable as _fusable  # noqa: E402,F401
_power_capped, _contraction_cost, _placement = power_capped, contraction_cost, placement


def _entry_key(c: int, fused: bool, in_glue_run: bool) -> int:
    """The key of :meth:`_ClassCosts.entry`: an int, not a tuple, as the schedule looks one up
    per op (a tuple per op would be garbage the collector walks)."""
    return 4 * c + 2 * fused + in_glue_run


class _Entry:
    """An op class's cost in one run, for one fusion state and launch (see
    :meth:`_ClassCosts.entry`), with its energy before the power cap and its folded bound."""

    __slots__ = ("op", "cost", "bound", "bound_rec", "energy", "dyn", "chip_j", "slack",
                 "fused", "cores_used", "timed")

    def __init__(self, op, cost, bound_rec, energy, dyn, chip_j, fused, cores) -> None:
        self.op, self.cost, self.bound_rec, self.fused = op, cost, bound_rec, fused
        self.energy, self.dyn, self.chip_j = energy, dyn, chip_j
        self.bound = bound_rec.bound if cost.bound == "fused" else cost.bound
        self.slack = max(0.0, cost.latency - cost.dram_time)   # DRAM-idle time after it
        self.cores_used = max(1, min(cost.cores_used, cores))
        # (prefetched seconds, mode switch) -> _Timed; without PIM units (no switch) the
        # prefetched seconds alone (see _totals_only); a run takes one path or the other
        self.timed: dict = {}


class _Timed:
    """An op's figures once its prefetch and mode switch are known (its schedule aside)."""

    __slots__ = ("latency", "energy", "throttled", "untimed", "utilization", "values")

    def __init__(self, latency, energy, throttled, untimed, utilization, values) -> None:
        self.latency, self.energy, self.throttled = latency, energy, throttled
        self.untimed, self.utilization, self.values = untimed, utilization, values


class _ClassCosts:
    """One run's costs of the op classes of a graph (:class:`~npusim.engine.graph_facts.
    GraphFacts`), each found once, on the first op of its class, by the same functions that
    would cost each op alone; kept for the run only."""

    def __init__(self, facts: GraphFacts, aliases: dict, arch, table, dram, where,
                 row_bytes: float, limits: PowerLimits, power_cap: bool, residual: bool,
                 on_pim: bool) -> None:
        self.f, self.aliases, self.arch = facts, aliases, arch
        self.table, self.dram, self.where = table, dram, where
        self.row_bytes, self.limits, self.power_cap = row_bytes, limits, power_cap
        self.residual, self.on_pim = residual, on_pim
        self.has_noc = table is not None and table.noc is not None
        self.sram = arch.sram_total
        n = len(facts.first)
        self._roof: list = [None] * n
        self._bound: list = [None] * n
        self._bw: list = [None] * n
        self._epilogue: list = [None] * n     # residual epilogues: (cost, busy)
        self._extra: dict[int, tuple] = {}    # residual host -> what its epilogues add
        self._joules: dict[int, float] = {}   # host -> its epilogues' dynamic energy
        self._folds: dict[int, tuple] = {}    # host -> (vector s, memory s) folded into it
        self.entries: dict[int, _Entry] = {}

    def op(self, c: int) -> Op:
        return self.f.ops[self.f.first[c]]

    def roof(self, c: int) -> float:
        """The class's unavoidable DRAM bytes (the roofline's)."""
        v = self._roof[c]
        if v is None:
            v = self._roof[c] = dram_bytes_of(self.f.terms[self.f.first[c]], self.sram)
        return v

    def bound(self, c: int) -> OpRecord:
        """The class's roofline record (named after its first op)."""
        v = self._bound[c]
        if v is None:
            v = self._bound[c] = op_bound(self.op(c), self.arch, self.roof(c))
        return v

    def bandwidth(self, c: int) -> float:
        """The DRAM's effective bandwidth for the class's transfers: their size sets the
        efficiency (short ones pay DRAM latency): the op's unavoidable bytes, or its operands'
        when those are all on chip (reloads may spill)."""
        v = self._bw[c]
        if v is None:
            op = self.op(c)
            pattern, chunk, total = access_pattern(op, max(self.roof(c), op.bytes))
            v = self._bw[c] = self.arch.dram.bandwidth * self.dram.efficiency(
                pattern, chunk or total, total)
        return v

    def epilogue(self, c: int) -> tuple[OpCost, float]:
        """Under residual fusion, a fused op's own cost and busy time
        (:func:`~npusim.engine.op_cost.epilogue_cost`)."""
        v = self._epilogue[c]
        if v is None:
            op, f = self.op(c), self.f
            skip = frozenset(t.name for t in op.inputs
                             if self.aliases.get(t.name, t.name) == f.main[op.name])
            v = self._epilogue[c] = epilogue_cost(op, f.host[op.name], skip, self.arch,
                                                   self.where, self.roof(c), self.bandwidth(c))
        return v

    def prepare(self) -> None:
        """What each contraction's fused epilogues add to it: under residual fusion their DRAM
        time, vector and on-chip time and roofline terms; their dynamic energy (counted in the
        contraction's power check); and the roofline they fold into its record (their vector
        time overlaps its MACs, their memory time adds). The epilogues'
        own records then carry no bound, so the run's bound never counts overlapped vector
        work twice. With PIM units a host may run on PIM and its single-input epilogues alone,
        so there they keep their own bounds."""
        f = self.f
        hosts = [c for c, eps in enumerate(f.epilogues) if eps]
        if self.residual:
            for c in hosts:
                d = b = v = m = 0.0
                for e in f.epilogues[c]:
                    cost, busy = self.epilogue(e)
                    rec = self.bound(e)
                    d, b, v, m = d + cost.dram_time, b + busy, v + rec.compute_s, m + rec.memory_s
                self._extra[c] = (d, b, v, m)
        if self.table is not None:
            from ..energy import energy_of
            for c in hosts:
                j = 0.0
                for e in f.epilogues[c]:
                    op = self.op(e)
                    cost = self.epilogue(e)[0] if self.residual else NO_COST
                    acts = actions(op, cost, str(op.compute_dtype), self.row_bytes,
                                    self.has_noc)
                    j = j + sum(energy_of(acts, self.table).values())
                self._joules[c] = j
        if self.residual:
            self._folds = {c: e[2:] for c, e in self._extra.items()}
        elif not self.on_pim:
            for c in hosts:
                vec = mem = 0.0
                for e in f.epilogues[c]:
                    b = self.bound(e)
                    vec, mem = vec + b.compute_s, mem + b.memory_s
                self._folds[c] = (vec, mem)

    def entry(self, c: int, fused: bool, in_glue_run: bool) -> _Entry:
        """The class's cost when ``fused`` into its contraction or not, and for a glue op
        whether it continues a run of glue ops (one kernel, one launch) or starts one
        (kept under :func:`_entry_key`)."""
        key = _entry_key(c, fused, in_glue_run)
        e = self.entries.get(key)
        if e is not None:
            return e
        arch, op = self.arch, self.op(c)
        bound_rec = self.bound(c)
        eff_bw = self.bandwidth(c)
        if fused:
            cost = self.epilogue(c)[0] if self.residual else replace(
                NO_COST, mapping={"fused_into": self.f.host[op.name]})
        elif isinstance(op, Contraction):
            limit = self.limits.of(op, bound_rec.exec_dtype) if self.power_cap else None
            cost = contraction_cost(op, arch, self.where, eff_bw, limit)
            extra = self._extra.get(c)
            if extra is not None:
                cost = with_epilogues(cost, extra[0], extra[1], arch.launch_overhead)
        else:
            launch = 0.0 if in_glue_run else arch.launch_overhead
            cost = glue_cost(op, arch, self.where, self.roof(c), eff_bw, launch)
        energy, dyn, chip_j = {}, 0.0, 0.0
        if self.table is not None:
            from ..energy import energy_of
            energy = energy_of(actions(op, cost, bound_rec.exec_dtype, self.row_bytes,
                                        self.has_noc), self.table)
            # a fused epilogue takes no time of its own: its energy is spent within its
            # host's latency, so the host's power check counts it
            dyn = sum(energy.values()) + self._joules.get(c, 0.0)
            chip_j = sum(v for k, v in energy.items() if k in VOLTAGE_SCALED)
        if fused and (self.residual or not self.on_pim):   # its bound is folded into its host's
            bound_rec = replace(bound_rec, compute_s=0.0, memory_s=0.0, bound_s=0.0)
        elif c in self._folds:
            vec_s, mem_s = self._folds[c]
            c_s, m_s = max(bound_rec.compute_s, vec_s), bound_rec.memory_s + mem_s
            bound_rec = replace(bound_rec, compute_s=c_s, memory_s=m_s, bound_s=max(c_s, m_s))
        e = self.entries[key] = _Entry(op, cost, bound_rec, energy, dyn, chip_j, fused,
                                        arch.cores.count)
        return e

    def timed(self, e: _Entry, latency: float, saved: float, switch: float) -> _Timed:
        """The entry's latency, energy and utilisation after ``saved`` seconds of its DRAM
        prologue hid under the op before (``latency``: what is left) and a mode switch: the
        power cap, then the switch, then the floor power over the whole time."""
        from ..energy import static_energy
        arch, table, op = self.arch, self.table, e.op
        energy: dict[str, float] = {}
        throttled = 0.0
        untimed = latency <= 0.0
        if table is not None:
            energy = dict(e.energy)
            if self.power_cap and not e.fused:
                mem_s, core_s = clock_free(op, e.cost, saved)
                latency, throttled, factor = power_capped(
                    latency, e.dyn, table.floor_w, arch.power.limit, e.chip_j,
                    table.dvfs_exponent or 0.0, table.dvfs_min_voltage or 0.1, mem_s, core_s)
                energy = scaled_on_chip(energy, factor)
            if switch:
                latency += switch
            energy["static"] = static_energy(table, latency)
        elif switch:
            latency += switch
        b = e.bound_rec
        util = op.macs / (arch.peak_macs_per_s(b.exec_dtype) * latency) \
            if op.macs and latency > 0 else 0.0
        total = float(sum(energy.values()))
        # per op, the values a RunTotals sums (TOTALS_FIELDS), as its record would hold them
        values = (op.macs, latency, b.compute_s, b.memory_s, e.cost.dram_bytes, energy, total,
                  util, "npu")
        return _Timed(latency, energy, throttled, untimed, util, values)


def _record(op: Op, e: _Entry, timed: _Timed, saved: float, switch: float, t: float,
            host: dict, clock: float, cores: int) -> OpRecord:
    """The record of ``op`` at ``t`` on the schedule, of class entry ``e``."""
    cost, latency, b = e.cost, timed.latency, e.bound_rec
    mapping = {"fused_into": host[op.name]} if e.fused else dict(cost.mapping)
    if saved:
        mapping["prefetched_s"] = saved
    throttled = timed.throttled
    if throttled:
        key = "power_capped_s" if timed.untimed else "power_capped_slowdown"
        mapping[key] = throttled if timed.untimed else round(throttled, 4)
    if switch:
        mapping["mode_switch_s"] = switch
    spans = ()
    if latency > 0:
        # one span for the range of busy cores ("core0-7"); traces expand it per core
        used = e.cores_used
        spans = (Span("core0" if used == 1 else f"core0-{used - 1}", t, t + latency,
                      op.name),)
        if cost.dram_time > 0:
            start = t - saved
            spans += (Span("dma", start, start + cost.dram_time, op.name),)
    levels = {"dram": cost.dram_bytes, "shared": cost.shared_bytes,
              "sram": cost.sram_bytes, "noc": cost.noc_bytes}
    return OpRecord(
        name=op.name, kind=op.kind, source=op.source, op_type=op.op_type,
        dtype=b.dtype, exec_dtype=b.exec_dtype, macs=op.macs,
        vector_ops=b.vector_ops, bytes=b.bytes,
        dram_bytes=cost.dram_bytes, compute_s=b.compute_s,
        memory_s=b.memory_s, bound_s=b.bound_s, latency_s=latency,
        bound=e.bound, cycles=latency * clock, start_s=t, end_s=t + latency,
        bytes_by_level=levels, energy_j=dict(timed.energy), utilization=timed.utilization,
        mapping=mapping, spans=spans)


def _scheduled(facts: GraphFacts, classes: _ClassCosts, placer, host: dict, clock: float,
               cores: int) -> list[OpRecord]:
    """The records of every op in schedule order (:func:`simulate_graph`'s notes): each op's
    cost from its class, its launch, prefetch, power cap and PIM placement its own."""
    out: list[OpRecord] = []
    t = 0.0
    prev: _Entry | None = None
    glue_run = False
    for op, c in zip(facts.ops, facts.classes):
        bound_rec = classes.bound(c)
        fused = op.name in host and (placer is None or not placer.on_pim(host[op.name]))
        plan = placer.plan(op) if placer is not None and not fused else None
        if plan is not None and plan.ok and placer.mode == "all":
            rec = placer.record(op, plan, bound_rec, t)
            out.append(rec)
            t, prev, glue_run = t + rec.latency_s, None, False
            continue
        # a run of glue ops between two contractions is one fused kernel (one launch), as
        # inference stacks fuse norms, rotary embeddings, activations and cache writes
        glue = not fused and not isinstance(op, Contraction)
        entry = classes.entry(c, fused, glue and glue_run)
        cost = entry.cost
        # weight prefetch: the prologue hides under the previous op's DRAM-idle time
        saved = 0.0
        if prev is not None and cost.prefetchable:
            saved = min(cost.prologue, prev.slack)
        latency = cost.latency - saved
        if plan is not None and plan.ok and placer.prefers_pim(plan, latency):
            rec = placer.record(op, plan, bound_rec, t)
            out.append(rec)
            t, prev, glue_run = t + rec.latency_s, None, False
            continue
        switch = placer.to_npu(op, latency) if placer is not None else 0.0
        timed = entry.timed.get((saved, switch))
        if timed is None:
            timed = entry.timed[(saved, switch)] = classes.timed(entry, latency, saved, switch)
        latency = timed.latency
        out.append(_record(op, entry, timed, saved, switch, t, host, clock, cores))
        if placer is not None:
            placer.after_npu(op, t, latency)
        t += latency
        if cost.latency > 0:
            prev = entry
        if not fused:
            glue_run = glue
    return out


def _totals_only(facts: GraphFacts, classes: _ClassCosts) -> list[tuple]:
    """Per op, the values a :class:`~npusim.engine.result.RunTotals` sums: the schedule of
    :func:`_scheduled` on an arch without PIM placement (the same launches and prefetches,
    each op's figures from its class) without building records; a sweep's path."""
    out: list[tuple] = []
    prev: _Entry | None = None
    glue_run = False
    entries = classes.entries
    for c, fused, contraction in zip(facts.classes, facts.fused, facts.contraction):
        glue = not fused and not contraction
        entry = entries.get(_entry_key(c, fused, glue and glue_run)) \
            or classes.entry(c, fused, glue and glue_run)
        cost = entry.cost
        saved = 0.0
        if prev is not None and cost.prefetchable:
            saved = min(cost.prologue, prev.slack)
        # no mode switch without PIM units: the prefetched seconds alone key the figures
        timed = entry.timed.get(saved)
        if timed is None:
            timed = entry.timed[saved] = classes.timed(entry, cost.latency - saved, saved, 0.0)
        out.append(timed.values)
        if cost.latency > 0:
            prev = entry
        if not fused:
            glue_run = glue
    return out


PIM_MODES = ("auto", "off", "all")
"""Placement of PIM-eligible ops (:func:`simulate_graph`'s ``pim``): by cost, none, every one."""


def simulate_graph(graph: Graph, arch, *, fuse: bool = True, power_cap: bool = True,
                   pim: str = "auto", records: bool = True,
                   share: bool = True) -> RunResult | RunTotals:
    """Cost and schedule every op of ``graph`` on ``arch`` with the tile-level engine.

    Parameters
    ----------
    graph : Graph
    arch : Arch
    fuse : bool
        Fuse elementwise epilogues into the contraction before them (which ones: the arch's
        ``fusion``, see the module docstring); False runs every op on its own.
    power_cap : bool
        Slow ops whose power would pass the TDP.
    pim : str
        Where PIM-eligible ops (:func:`npusim.engine.pim.op_on_pim`) go on an arch with
        enabled PIM units: ``"auto"`` each to the cheaper device, the mode switch and PIM's
        broadcast and read-out included; ``"all"`` every eligible op to PIM (an ineligible one
        runs on the NPU with a warning saying why); ``"off"`` none. Without enabled units
        every op runs on the NPU whatever this says, exactly as with ``"off"``.
    records : bool
        False returns a :class:`~npusim.engine.result.RunTotals`: every total of the full
        result, to the last bit, without building its per-op records (what a sweep keeps).
    share : bool
        Cost each class of identical ops once (:mod:`npusim.engine.graph_facts`); False costs
        every op by itself, which gives the same result more slowly (the reference the
        classes are tested against).

    Notes
    -----
    PIM and the NPU share the DRAM banks, so a PIM op never overlaps NPU work, and each switch
    between an NPU op and a PIM op pays ``pim.mode_switch`` (charged to the op after the
    switch, and a last switch back to normal mode to the run's last PIM op; a run starts and
    ends in normal mode). With ``pim.dual_row_buffer`` (NeuPIMs) no switch is paid, and a PIM
    op that does not read anything the preceding NPU op (and the zero-time ops after it)
    wrote starts when that NPU op starts, running beside it; its ``latency_s`` is then only
    the time it adds beyond that op's end (its whole run is ``end_s - start_s``). Only one PIM
    op overlaps each NPU op; the next one waits for it (the units are busy). Weight prefetch
    never reaches across a PIM op.

    Examples
    --------
    >>> from npusim import load_arch, load_model
    >>> r = simulate_graph(load_model("tiny-llama", phase="decode", kv_len=16), load_arch("rngd"))
    >>> r.engine, r.latency_s >= r.bound_latency_s
    ('tile', True)
    """
    from ..energy import load_energy_table
    wanted = records
    if pim not in PIM_MODES:
        raise NpusimError(f"pim={pim!r}: use one of {', '.join(PIM_MODES)}")
    units = getattr(arch, "pim", None)
    on_pim = pim != "off" and units is not None and units.enabled
    residual = fuse and arch.fusion == "residual"
    # with residual fusion and no PIM units, a fused group's intermediates never leave the
    # engine (graph_facts streams them); with PIM units a host may go to PIM and its
    # epilogues then run alone, so there they are placed as before
    facts = graph_facts(graph, fuse, residual, on_pim, share)
    link_chips(facts.widest, arch)     # refuses an arch without the link the graph needs
    table = load_energy_table(arch)
    warnings = list(graph.warnings)
    if table is None:
        warnings.append(f"no energy table for {arch.name}: energy and power not reported")
    dram = dram_table(arch)
    warnings.extend(w for w in dram.warnings if w not in warnings)
    host = facts.host
    where = placement(graph, arch, facts.streamed)
    # DRAM row size for activation counts: the arch's, else the preset's, else HBM's 1 KiB
    row_bytes = arch.dram.row_size or float(dram.setup.get("row_size") or 1024.0)
    limits = PowerLimits(arch, table, row_bytes)
    classes = _ClassCosts(facts, graph.aliases, arch, table, dram, where, row_bytes, limits,
                          power_cap, residual, on_pim)
    classes.prepare()
    clock = arch.clock
    placer = None
    if on_pim:
        from .pim import Placer
        placer = Placer(graph, arch, where, table, pim)
        records = True      # the placer revises its records at the end (placer.finish)
    elif pim == "all":
        warnings.append(f"pim='all': {arch.name} has no enabled PIM units; every op ran on the "
                        f"host NPU")
    if placer is None and not records:
        out = _totals_only(facts, classes)
    else:
        out = _scheduled(facts, classes, placer, host, clock, arch.cores.count)
    if placer is not None:
        out = placer.finish(out)
        warnings.extend(placer.warnings(len(out)))
    common = dict(model=graph.name, arch=arch.name, engine="tile", meta=dict(graph.meta),
                  warnings=tuple(warnings), peak_macs_per_s=_peak(arch), tdp_w=arch.power.tdp,
                  clock_hz=clock, dram_bandwidth=arch.dram.bandwidth, area=area_totals(arch))
    if records:
        result = RunResult(ops=tuple(out), **common)
        return result if wanted else RunTotals.of(result)
    columns = tuple(zip(*out)) if out else ((),) * len(TOTALS_FIELDS)
    return RunTotals(values=dict(zip(TOTALS_FIELDS, columns)), **common)
