"""What one op costs on an arch, before it is scheduled: the per-op half of the tile engine
(:mod:`npusim.engine.simulate` schedules the ops and costs each class of identical ones once).

* :func:`contraction_cost`: a contraction mapped by :func:`npusim.engine.mapping.search`;
* :func:`glue_cost`: an elementwise, reduction, movement or collective op on the vector units,
  the on-chip memories, DRAM or the chip-to-chip link; :func:`epilogue_cost` and
  :func:`with_epilogues` for elementwise ops fused into a contraction under residual fusion;
* :func:`placement`: where each tensor lives (DRAM, shared SRAM, on chip);
* :func:`actions`: an op's action counts for the energy table; :class:`PowerLimits` the same
  coefficients for the mapping search; :func:`power_capped` what the power limit does to an
  op's time and energy.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import CapacityError
from ..ir import Collective, Contraction, Graph, Movement, Op, Role
from ..kernels import tiling as tk
from .mapping import ONCHIP_PER_DRAM, PowerLimit, search
from .roofline import collective_seconds, collective_why
from ..energy.cost import DELIVERY, ON_CHIP, OVERHEAD, dvfs_scale

# what a lower core voltage makes cheaper (the rest, DRAM and links, are device figures)
VOLTAGE_SCALED = frozenset((*ON_CHIP, OVERHEAD, DELIVERY))


@dataclass(frozen=True)
class OpCost:
    """One op's cost before scheduling, in seconds and bytes."""

    latency: float        # standalone, with its own pipeline, launch overhead included
    dram_time: float      # DRAM busy time within it
    prologue: float       # DRAM time before the first compute (prefetchable if weights)
    compute_time: float
    dram_bytes: float
    shared_bytes: float
    noc_bytes: float
    sram_bytes: float
    bound: str
    mapping: dict
    utilization: float
    cores_used: int
    prefetchable: bool


def placement(graph: Graph, arch, streamed: frozenset[str]):
    """Where each tensor lives: DRAM, chip-shared SRAM (GPU L2) or on chip (``streamed``: the
    attention tensors a fused kernel keeps on chip, :func:`streamed_tensors`)."""
    aliases = graph.aliases
    inputs = {aliases.get(n, n) for n in graph.inputs}
    outputs = {aliases.get(n, n) for n in graph.outputs}
    sram = arch.sram_total

    def where(t, written: bool) -> int:
        root = aliases.get(t.name, t.name)
        if root in streamed:
            return tk.ON_CHIP   # attention scores: streamed through a fused kernel
        role = graph.tensors[root].role if root in graph.tensors else t.role
        if role != Role.ACTIVATION or root in inputs or root in outputs or t.nbytes > sram:
            if not written and arch.shared_sram > 0 and t.nbytes <= arch.shared_sram / 2:
                return tk.IN_SHARED
            return tk.IN_DRAM
        return tk.ON_CHIP
    return where


def access_pattern(op: Op, dram_bytes: float) -> tuple[str, float | None, float]:
    """The DRAM access pattern of an op for the efficiency table: a gather of rows from a
    table is random reads of one row each; everything else streams its tiles."""
    if isinstance(op, Movement) and op.func.startswith("gather") and op.outputs:
        out = op.outputs[0]
        row = out.shape[-1] * out.dtype.bytes if out.shape else out.nbytes
        return "random", float(max(row, 1.0)), dram_bytes
    return "seq", None, dram_bytes


class PowerLimits:
    """The energy coefficients the mapping search needs to respect the TDP, taken from the
    same energy table (and the same action accounting, :func:`actions`) as the records.
    Per-byte energies are worked out once per run; an op adds its own MACs and outputs."""

    def __init__(self, arch, table, row_bytes: float) -> None:
        from ..energy import Actions, energy_of
        tdp = arch.power.limit
        self._base = None
        # a chip that lowers its voltage with the clock (the table's dvfs_exponent) meets its
        # limit in its clock governor, after the kernel is chosen, as a GPU does: the mapping
        # is the fastest at full clock and power_capped slows it, so a tighter cap never
        # trades tiles for energy and an op's energy only falls with the voltage
        if table is None or not tdp or tdp <= table.floor_w or table.dvfs_exponent:
            return

        def joules(**kw) -> float:
            return sum(energy_of(Actions(**kw), table).values())
        self._joules = joules
        self._per_mac: dict[str, float] = {}
        has_noc = table.noc is not None
        self._base = PowerLimit(
            fixed_j=0.0,
            dram_read_j=joules(dram_read_bytes=1.0, dram_activations=1.0 / row_bytes),
            dram_write_j=joules(dram_write_bytes=1.0, dram_activations=1.0 / row_bytes),
            dram_write_bytes=0.0,
            sram_j=joules(sram_read_bytes=0.5, sram_write_bytes=0.5),
            shared_j=joules(shared_read_bytes=1.0) if table.shared_read is not None else 0.0,
            noc_j=joules(noc_bytes=1.0) if has_noc else 0.0,
            noc_as_sram=not has_noc, budget_w=tdp - table.floor_w)
        self._per_vector = joules(vector_ops=1.0)

    def of(self, op: Op, exec_dtype: str) -> PowerLimit | None:
        if self._base is None:
            return None
        per_mac = self._per_mac.get(exec_dtype)
        if per_mac is None:
            per_mac = self._per_mac[exec_dtype] = self._joules(macs={exec_dtype: 1.0})
        return replace(self._base,
                       fixed_j=per_mac * op.macs + self._per_vector * op.vector_ops,
                       dram_write_bytes=float(sum(t.nbytes for t in op.outputs)))


def contraction_cost(op: Contraction, arch, where, eff_bw: float,
                      power: PowerLimit | None = None) -> OpCost:
    exec_dt = arch.execution_dtype(op.dtype)
    from .mapping import gemm_view
    view = gemm_view(op)
    a = op.operands[view.a].tensor
    place_a = where(a, False)
    place_b = where(op.operands[view.b].tensor, False) if view.b is not None else tk.ON_CHIP
    place_c = where(op.output.tensor, True)
    m = search(op, arch, exec_dt, (place_a, place_b, place_c), eff_bw, power)
    if not m.ok:
        raise CapacityError(f"op {op.name} (from {op.source}) cannot be mapped on {arch.name}: "
                            f"{m.reason}. Give the cores more SRAM (--set cores.sram=...).")
    clock = arch.clock
    latency = m.cycles / clock + arch.launch_overhead
    dram_time = m.dram_bytes / eff_bw
    prologue = m.prologue_cycles / clock
    compute = m.compute_cycles / clock
    peak = arch.peak_macs_per_s(exec_dt)
    util = op.macs / (peak * latency) if latency > 0 else 0.0
    fixed = latency - max(compute, dram_time)
    bound = "compute" if compute >= dram_time else "memory"
    if fixed > max(compute, dram_time):
        bound = "latency"
    b_weight = view.b is not None and op.operands[view.b].tensor.role != Role.ACTIVATION
    mapping = m.to_dict()
    mapping.update(placement={"A": PLACE_NAMES[place_a], "B": PLACE_NAMES[place_b], "C": PLACE_NAMES[place_c]})
    return OpCost(latency, dram_time, prologue, compute, m.dram_bytes, m.shared_bytes, m.noc_bytes, m.sram_bytes, bound,
                 mapping, util, m.cores_used, b_weight)


PLACE_NAMES = {tk.IN_DRAM: "dram", tk.IN_SHARED: "shared", tk.ON_CHIP: "chip"}


def onchip_bandwidth(arch, eff_bw: float) -> float:
    """Bytes/s a glue op moves on chip: the cores' SRAM, else the on-chip network, else (both
    unpublished) what the mapping search assumes for a contraction's on-chip operands
    (:data:`~npusim.engine.mapping.ONCHIP_PER_DRAM` times the DRAM's effective bandwidth), so
    the same SRAM does not feed an elementwise op slower than a matmul."""
    sram_bw = (arch.cores.sram_bandwidth or 0.0) * arch.cores.count * arch.clock
    return sram_bw or arch.noc.bandwidth or eff_bw * ONCHIP_PER_DRAM


def glue_cost(op: Op, arch, where, dram_bytes: float, eff_bw: float,
               launch: float, skip: frozenset[str] = frozenset()) -> OpCost:
    """A glue op's cost; ``skip`` names tensors it does not move (the input a fused epilogue
    gets from its contraction, :func:`epilogue_cost`)."""
    onchip = 0.0
    seen = set(skip)
    for t in (*op.inputs, *op.outputs):
        if t.name in seen:
            continue
        seen.add(t.name)
        if where(t, t in op.outputs) == tk.ON_CHIP:
            onchip += t.nbytes
    if isinstance(op, Movement) and op.moved_bytes is not None:
        onchip = min(onchip, float(op.moved_bytes))
    onchip_bw = onchip_bandwidth(arch, eff_bw)
    dram_time = dram_bytes / eff_bw
    onchip_time = onchip / onchip_bw
    if isinstance(op, Collective):
        link = arch.require_link(op.group, collective_why(op))
        compute = collective_seconds(op, link) if link is not None else 0.0
    else:
        compute = op.vector_ops / arch.peak_vector_ops_per_s
    latency = max(compute, dram_time, onchip_time) + launch
    bound = "compute" if compute >= max(dram_time, onchip_time) else "memory"
    if launch > max(compute, dram_time, onchip_time):
        bound = "latency"
    return OpCost(latency, dram_time, 0.0, compute, dram_bytes, 0.0, 0.0, onchip, bound, {},
                 0.0, arch.cores.count, False)


def epilogue_cost(op: Op, into: str, skip: frozenset[str], arch, where, dram_bytes: float,
                   eff_bw: float) -> tuple[OpCost, float]:
    """A fused epilogue under residual fusion: what a standalone run of it would move less
    the input its contraction hands it (``skip``), at no time of its own (its host's latency
    covers it, :func:`with_epilogues`); and the time its vector work and on-chip traffic
    take, which run beside the contraction's."""
    c = glue_cost(op, arch, where, dram_bytes, eff_bw, 0.0, skip)
    busy = max(c.compute_time, c.sram_bytes / onchip_bandwidth(arch, eff_bw))
    where_from = {"fused_into": into}
    return replace(c, latency=0.0, bound="fused", mapping=where_from, cores_used=0), busy


def with_epilogues(cost: OpCost, dram_time: float, busy: float, launch: float) -> OpCost:
    """A contraction's cost with its residual-fused epilogues: their DRAM bytes (``dram_time``
    at their own effective bandwidth) stream after its own on the same DRAM, their vector work
    and on-chip traffic (``busy``) overlap its run, and they add no launch. Never more than
    the contraction and the epilogues run one after another, never less than any part."""
    body = cost.latency - launch
    dram = cost.dram_time + dram_time
    latency = launch + max(body, dram, busy)
    bound = cost.bound
    if latency > cost.latency:
        bound = "memory" if dram >= busy else "compute"
    # weight prefetch hides the DRAM prologue under the op before; it cannot shorten the
    # epilogues' vector work, which needs the contraction's output
    prologue = min(cost.prologue, max(0.0, latency - launch - busy))
    return replace(cost, latency=latency, dram_time=dram, bound=bound, prologue=prologue)


def actions(op: Op, cost: OpCost, exec_dtype: str, row_bytes: float, has_noc: bool):
    from ..energy import Actions
    macs = {exec_dtype: float(op.macs)} if op.macs else {}
    writes = sum(t.nbytes for t in op.outputs)
    dram_w = min(cost.dram_bytes, writes) if cost.dram_bytes else 0.0
    # on a chip without a network (one core), data "on chip" is read from the core's SRAM
    sram = cost.sram_bytes + (0.0 if has_noc else cost.noc_bytes)
    return Actions(
        macs=macs, vector_ops=float(op.vector_ops),
        sram_read_bytes=sram * 0.5, sram_write_bytes=sram * 0.5,
        shared_read_bytes=cost.shared_bytes, shared_write_bytes=0.0,
        dram_read_bytes=cost.dram_bytes - dram_w, dram_write_bytes=dram_w,
        # streamed tiles open each DRAM row once (a lower estimate for scattered reads)
        dram_activations=cost.dram_bytes / row_bytes,
        noc_bytes=cost.noc_bytes if has_noc else 0.0,
        # a collective on one chip sends nothing over a link (and needs none)
        link_bytes=op.payload_bytes if isinstance(op, Collective) and op.group > 1 else 0.0)


def power_capped(latency: float, dyn_j: float, static_w: float,
                  tdp: float | None, chip_j: float = 0.0, exponent: float = 0.0,
                  min_voltage: float = 0.1, memory_s: float = 0.0,
                  compute_s: float = 0.0) -> tuple[float, float, float]:
    """An op's latency under the power limit, its slowdown (0 when it already fits; for an
    op that took no time, the seconds the cap adds), and the factor on its on-chip dynamic
    energy (1 unless the chip lowers its voltage with the clock).

    A chip drawing more than its limit (``tdp``: the TDP or a lower configured cap) settles
    at a lower clock. With ``exponent`` 0 (no DVFS in the energy table) the op is stretched
    until its dynamic energy over its time plus the floor power ``static_w`` equals the
    limit, at constant energy. With an exponent the voltage falls with the clock, so the
    ``chip_j`` part of ``dyn_j`` (the on-chip energy; the rest is DRAM and links) costs less
    per op (:func:`npusim.energy.dvfs_scale`) and the op slows less. Only the core's clock
    drops: the op's ``memory_s`` (DRAM or link time, on their own clocks) does not stretch,
    so at clock ``s`` it takes ``fixed/s + max(compute_s/s, memory_s)`` with
    ``fixed = latency - max(compute_s, memory_s)`` (:func:`capped_clock`); a DRAM-bound op
    (decode) gives up clock it was not using and hardly slows, a compute-bound one
    (prefill) slows by the clock. Without ``memory_s`` every second is the core's. The
    energy table's loader refuses a limit at or below the floor, so the budget is always
    positive and every op fits after slowing: average power never exceeds the limit.
    """
    if not tdp or dyn_j <= 0.0 or tdp <= static_w:
        return latency, 0.0, 1.0
    if latency > 0.0 and dyn_j / latency + static_w <= tdp:
        return latency, 0.0, 1.0
    if latency > 0.0 and exponent > 0.0:
        chip = min(chip_j, dyn_j)
        if memory_s > 0.0:
            stretched, factor = capped_clock(latency, chip, dyn_j - chip, tdp - static_w,
                                              exponent, min_voltage, memory_s, compute_s)
            return stretched, stretched / latency - 1.0, factor
        clock, factor = dvfs_scale(chip / latency, tdp - static_w, exponent, min_voltage,
                                   io_w=(dyn_j - chip) / latency)
        stretched = latency / clock
        return stretched, stretched / latency - 1.0, factor
    stretched = dyn_j / (tdp - static_w)
    # an op of no time of its own (nothing to slow down) reports the time the cap adds
    return stretched, (stretched / latency - 1.0) if latency > 0.0 else stretched, 1.0


def capped_clock(latency: float, chip_j: float, io_j: float, budget_w: float,
                  exponent: float, min_voltage: float, memory_s: float,
                  compute_s: float) -> tuple[float, float]:
    """Latency and on-chip energy factor of an op at the highest core clock ``s`` whose
    power ``(chip_j g(s) + io_j) / t(s)`` fits ``budget_w``, where ``g(s) = max(s,
    min_voltage)^exponent`` and ``t(s) = fixed/s + max(compute_s/s, memory_s)``.

    Power rises with ``s`` (``g`` rises, ``t`` falls), so bisection finds it. If even the
    lowest voltage draws too much in the DRAM's own time (DRAM and link power alone over
    budget), the op is stretched at that lowest energy until it fits, as without DVFS.

    >>> t, f = capped_clock(1.0, 0.0, 300.0, 200.0, 2.0, 0.7, 1.0, 0.5)  # 1/s: 0.5/s = 1.5
    >>> round(t, 9), round(f, 9)
    (1.5, 0.49)
    >>> t, f = capped_clock(1.0, 800.0, 0.0, 100.0, 2.0, 0.1, 0.0, 1.0)  # all core: s^3=1/8
    >>> round(t, 6), round(f, 6)
    (2.0, 0.25)
    """
    memory = min(memory_s, latency)
    compute = min(compute_s, latency)
    fixed = max(0.0, latency - max(compute, memory))

    def t_at(s: float) -> float:
        return fixed / s + max(compute / s, memory)

    def g(s: float) -> float:
        return max(s, min_voltage) ** exponent

    lo, hi = 0.0, 1.0
    if (chip_j * g(min_voltage) + io_j) / t_at(min_voltage) > budget_w \
            and fixed + compute <= 0.0:
        return (chip_j * g(min_voltage) + io_j) / budget_w, g(min_voltage)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if mid > 0.0 and (chip_j * g(mid) + io_j) / t_at(mid) <= budget_w:
            lo = mid
        else:
            hi = mid
    if lo <= 0.0:     # nothing of the op's time is the core's, and DRAM alone is over budget
        return (chip_j * g(min_voltage) + io_j) / budget_w, g(min_voltage)
    return max(latency, t_at(lo)), g(lo)


def clock_free(op: Op, cost: OpCost, saved: float) -> tuple[float, float]:
    """The op's seconds on clocks a core power cap does not lower (DRAM; a collective's link
    time) and its core compute seconds, as its cost found them; ``saved`` is the DRAM
    prologue hidden under the op before (no longer inside this op's time)."""
    if isinstance(op, Collective):
        return max(cost.compute_time, cost.dram_time), 0.0
    return max(0.0, cost.dram_time - saved), cost.compute_time


def scaled_on_chip(energy: dict[str, float], factor: float) -> dict[str, float]:
    """``energy`` with its on-chip components (overhead and delivery too) times ``factor``: what a lower
    core voltage saves; DRAM and link energy per bit do not depend on it."""
    if factor == 1.0:
        return energy
    return {k: v * factor if k in VOLTAGE_SCALED else v for k, v in energy.items()}


# a fused epilogue's cost before residual fusion gives it one of its own
NO_COST = OpCost(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, "fused", {}, 0.0, 0, False)
