"""Processing-in-memory (PIM) as a device beside the NPU: what it is, what it can run, and
what each op costs there.

The device is the arch's DRAM with the units of its ``pim`` section (:class:`~npusim.arch.
model.Pim`): one unit per ``banks_per_unit`` banks in every channel, all channels running the
same all-bank program in lockstep. Timing comes from the all-bank kernel
(:func:`npusim.kernels.pim.simulate`) run on the busiest channel's work; energy from action
counts (MACs, column bytes, bank activations, external-bus bits, host vector ops) priced by
the pim section's energies and the arch's energy table (:mod:`npusim.energy`).

Modelling choices (the reference, ``pim.md``, is cited by section; the rest are assumptions):

* **Column interval.** A unit takes one column burst per all-bank column command, at most one
  per ``pim.column_interval`` (the DRAM's tCCD_L at the arch's speed when null; PIMSimulator's
  "PIM op consumes tCCD_L", pim.md sec. 3 [I1]). Its lanes must also multiply the burst: a
  burst of ``e`` weights applied to ``v`` vectors needs ``e * v / macs_per_cycle[dtype]`` unit
  cycles. The two are pipelined resources, so the slower one paces the stream: the interval
  is their **max** (:meth:`PimDevice.interval`).
* **GEMV mapping.** The output rows of all matrices (a weight GEMV has one matrix; decode
  attention one per (sequence, KV head)) are spread evenly over every unit, in matrix order; the
  busiest unit's row count is the kernel's ``W_ROWS``. A row's whole reduction stays in one
  unit, so the host only adds each row's lane partial sums.
* **Broadcast.** Each channel writes, over its own external bus, the input vectors its units
  need: one shared set for a weight GEMV; for attention, the vectors of every matrix (KV
  group) the channel holds rows of (``groups_per_channel``). The channel's ``input_buffer``
  holds ``groups_per_channel x vectors-in-pass`` chunks of the input at once; the weight
  chunk is that many elements, rounded down to whole bursts (at least one burst: assumption,
  a buffer too small for one burst of every group is refilled per burst).
* **Passes.** ``vectors_per_pass`` vectors share each weight burst; ``B`` vectors cost
  ``ceil(B / vectors_per_pass)`` passes over the weights, every pass timed as a full one
  (assumption: the last, partial pass is not shortened).
* **Read-out and host reduction.** Per output row and vector, ``accumulator_bytes`` are read
  over the external bus: the lanes' partial sums (HBM2-PIM: one 16-lane GRF_B entry, 32 B),
  or one result where the unit reduces them itself. The partial sums are taken to be held in
  the compute dtype (assumption), so a row carries ``accumulator_bytes / dtype bytes`` of them
  (at least one) and the host adds them: ``partials - 1`` vector ops per output, timed on the
  arch's vector units after the read-out (no overlap: assumption).
* **Mode switches** are not charged here (the kernel runs with ``P_MODE = 0``): the engine's
  placement charges ``pim.mode_switch`` once per switch between an NPU op and a PIM op.
* **Counts.** MACs and column bytes are exact (rows x k, per pass); bank activations,
  broadcast and read-out bursts are the busiest channel's kernel counts times the channels
  (an upper estimate when rows do not divide evenly).
* **Elementwise** (in-bank ALUs: add, sub, mul, neg, relu, the ops HBM2-PIM's units run,
  pim.md sec. 2 [P2][S1]; other functions are refused): every operand as large as the output
  must be in DRAM and is streamed from the units' own banks (one column burst per interval,
  an ALU op costing what a MAC does: assumption); smaller operands (a scale, a bias row) are
  broadcast; the result is written back into the banks.
* **Launch and power.** A PIM op pays the arch's ``launch_overhead`` (a host kernel issues its
  commands, as PIMSimulator's GEMV is driven by the host [S1]); it is not slowed by the chip's
  TDP cap, which is the NPU's (the units draw from the memory's power: assumption). Its
  energy: ``pim_mac`` (MACs, or ALU ops, x ``pim.energy.mac``), ``pim_column`` (bytes the
  units read or write in their banks x ``pim.energy.column``), ``dram`` (bank activations,
  broadcast and read-out bits at the energy table's DRAM figures), ``vector`` (the host's
  reduction) and ``static`` (the table's static power plus ``pim.energy.unit_static``, for
  the op's time).
* **Dtypes.** A unit reads the matrix (weights, KV cache) as it is stored in its banks and
  runs MACs at the rate of that dtype in ``pim.macs_per_cycle``; nothing converts it on the
  way, so a matrix stored in a dtype the units lack is refused (an fp8 GEMV on FP16-only
  units, bf16 weights on units without bf16) and the op runs on the NPU, the run's warning
  naming it. Weights stored narrower than the activations (int4 with group scales under bf16
  activations) run at the int4 rate, their scales applied in the unit (assumption).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..arch.model import FrozenMap
from ..errors import ArchError
from ..ir import Contraction, Elementwise, Movement, Op, Role, dtype as _dtype
from ..kernels import tiling as tk
from .result import OpRecord

ELEMENTWISE_FUNCS = frozenset({"add", "sub", "mul", "neg", "relu"})
"""What in-bank ALUs compute (HBM2-PIM: FP16 ADD, MUL, MAC, MAD, pim.md sec. 2 [P2]; ReLU
among PIMSimulator's kernels [S1]); anything else stays on the host."""

MAX_CROSSOVER_BATCH = 1024
""":func:`crossover_batch` looks no further than this batch."""

STAT_NAMES = ("time", "columns", "activations", "row_switches", "refreshes", "write_bursts",
              "read_bursts", "mode_switches", "stream_s", "broadcast_s", "readout_s",
              "row_s", "refresh_s")
"""The kernel's stats, in the order of its ``S_*`` indices (see :func:`_stat_index`)."""


def _kernel():
    from ..kernels import pim as kp
    return kp


def _stat_index(kp) -> dict[str, int]:
    return {n: getattr(kp, "S_" + n.upper()) for n in STAT_NAMES}


@dataclass(frozen=True)
class PimDevice:
    """The PIM units of an arch, resolved against its DRAM (:func:`pim_device`).

    Attributes
    ----------
    arch, device : str
        The arch's name and the PIM part (``pim.device``).
    channels, banks_per_channel, banks_per_unit, units_per_channel, units : int
        Geometry: ``units_per_channel = banks_per_channel / banks_per_unit``, ``units =
        channels x units_per_channel``.
    burst, row : int
        Bytes of one column burst and of one bank's row.
    clock : float
        The units' clock, Hz.
    command_interval : float
        Seconds between all-bank column commands: ``pim.column_interval``, else tCCD_L.
    column_interval : FrozenMap
        Per native dtype, the interval a stream of that dtype's weights runs at (one vector):
        ``max(command_interval, burst elements / macs_per_cycle / clock)``.
    peak_macs : FrozenMap
        Per native dtype, MACs per second of all units.
    internal_bandwidth, external_bandwidth : float
        Bytes/s: ``units x burst / command_interval`` and the arch's ``dram.bandwidth``.
    bus_burst : float
        Seconds per burst on one channel's external bus (broadcast and read-out).
    geometry, pim_timing, timing : tuple
        The kernel's arrays (``G_*``, ``P_*`` with ``P_MODE = 0``, the DRAM ``T_*`` timing
        with tREF0 as :func:`~npusim.engine.dram.dram_setup` gives it).
    """

    arch: str
    device: str
    channels: int
    banks_per_channel: int
    banks_per_unit: int
    units_per_channel: int
    units: int
    burst: int
    row: int
    clock: float
    command_interval: float
    column_interval: FrozenMap
    peak_macs: FrozenMap
    internal_bandwidth: float
    external_bandwidth: float
    bus_burst: float
    mode_switch: float
    dual_row_buffer: bool
    pim: object = field(repr=False)
    geometry: tuple = field(repr=False, default=())
    pim_timing: tuple = field(repr=False, default=())
    timing: tuple = field(repr=False, default=())

    @property
    def ratio(self) -> float:
        """Internal over external bandwidth."""
        return self.internal_bandwidth / self.external_bandwidth

    def has(self, dtype_name: str) -> bool:
        return dtype_name in self.pim.macs_per_cycle

    def partials(self, compute: str) -> int:
        """Partial sums read out per output row and vector, each in the compute dtype: the
        host adds them (1: the unit reduced the row itself)."""
        return max(1, int(self.pim.accumulator_bytes // _dtype(compute).bytes))

    def interval(self, compute: str, weight_bytes: float, vectors: int = 1,
                 ops_per_element: float = 1.0) -> float:
        """Seconds per column burst: the command interval or the lanes' time, the slower."""
        elems = self.burst / weight_bytes
        lanes_s = elems * vectors * ops_per_element / (
            self.pim.macs_per_cycle[compute] * self.clock)
        return max(self.command_interval, lanes_s)


def pim_device(arch) -> PimDevice:
    """Resolve ``arch``'s ``pim`` section against its DRAM.

    Raises
    ------
    ArchError
        If the arch has no pim section, its DRAM type has no timing preset, or the DRAM's
        banks per channel are not a whole number of units (the message names the field).

    Examples
    --------
    >>> from npusim.arch import load_arch
    >>> d = pim_device(load_arch("lpddr6-pim"))
    >>> d.units, d.units_per_channel, round(d.ratio, 1)
    (128, 16, 9.6)
    """
    return _device(arch)


@lru_cache(maxsize=64)
def _device(arch) -> PimDevice:
    from ..arch.dram_timing import has_preset
    from .dram import dram_setup
    kp = _kernel()
    from ..kernels import dram as kd
    p = getattr(arch, "pim", None)
    where = arch.source or f"the arch file of {arch.name}"
    if p is None:
        raise ArchError(f"arch {arch.name} has no pim section (no PIM units); use an arch "
                        f"with one (npusim pim lists them) or compose one, e.g. "
                        f"--arch {arch.name}+hbm2-pim")
    if not has_preset(arch.dram.type):
        raise ArchError(f"{where}: dram.type: {arch.dram.type} has no timing preset in "
                        f"npusim/archs/dram/, and the PIM units' timing is the DRAM's; use a "
                        f"DRAM type with a preset")
    s = dram_setup(arch)
    banks = s.bank_groups * s.banks_per_group
    if p.banks_per_unit < 1 or banks % p.banks_per_unit:
        raise ArchError(f"{where}: pim.banks_per_unit: {p.banks_per_unit} does not divide the "
                        f"{banks} banks per channel of its DRAM (dram.bank_groups x "
                        f"dram.banks_per_group, {s.type} preset where unset); every unit "
                        f"needs whole banks of its own")
    if not p.macs_per_cycle:
        raise ArchError(f"{where}: pim.macs_per_cycle: is empty; give one unit's MACs per "
                        f"cycle for each dtype it runs, e.g. {{fp16: 16}}")
    if not p.clock or p.clock <= 0:
        raise ArchError(f"{where}: pim.clock: must be above 0 Hz")
    upc = banks // p.banks_per_unit
    t = s.timing
    command = float(p.column_interval) if p.column_interval else float(t[kd.T_CCD_L])
    if command <= 0:
        raise ArchError(f"{where}: pim.column_interval: the DRAM's tCCD_L is 0 s; give "
                        f"pim.column_interval")
    bus = max(float(t[kd.T_BURST]), float(t[kd.T_CCD_S]))
    units = s.channels * upc
    col, peak = {}, {}
    for name, rate in p.macs_per_cycle.items():
        wb = _dtype(name).bytes
        col[name] = max(command, s.burst / wb / (rate * p.clock))
        peak[name] = units * rate * p.clock
    geometry = _array_tuple(kp, "G", {
        "BANKS": banks, "BANKS_PER_UNIT": p.banks_per_unit, "BURST": s.burst,
        "ROW": s.row_size, "ACCUMULATORS": p.accumulators,
        "ACT_EXEMPT": 1 if p.all_bank_act else 0}, int)
    pim_timing = _array_tuple(kp, "P", {"COLUMN": command, "MODE": 0.0,
                                        "WRITE_BURST": bus, "READ_BURST": bus}, float)
    return PimDevice(
        arch=arch.name, device=p.device, channels=s.channels, banks_per_channel=banks,
        banks_per_unit=p.banks_per_unit, units_per_channel=upc, units=units, burst=s.burst,
        row=s.row_size, clock=float(p.clock), command_interval=command,
        column_interval=FrozenMap(col), peak_macs=FrozenMap(peak),
        internal_bandwidth=units * s.burst / command,
        external_bandwidth=float(arch.dram.bandwidth), bus_burst=bus,
        mode_switch=0.0 if p.dual_row_buffer else float(p.mode_switch),
        dual_row_buffer=bool(p.dual_row_buffer), pim=p, geometry=geometry,
        pim_timing=pim_timing, timing=tuple(float(x) for x in t))


def _array_tuple(kp, prefix: str, values: dict, kind) -> tuple:
    idx = {k: getattr(kp, f"{prefix}_{k}") for k in values}
    out = [kind(0)] * (max(idx.values()) + 1)
    for k, v in values.items():
        out[idx[k]] = kind(v)
    return tuple(out)


# --------------------------------------------------------------------------- costs
@dataclass(frozen=True)
class PimCost:
    """What one op costs on the PIM units (no launch overhead, no mode switch).

    ``latency`` = ``kernel_s`` (the all-bank program: broadcast, streaming, row switches,
    refresh, read-out, write-back) + ``host_s`` (the host's reduction on its vector units).
    ``compute_s`` and ``memory_s`` are the PIM roofline: MACs (or ALU ops) at the units' peak
    and the streamed bytes once at the internal bandwidth.
    """

    kind: str
    dtype: str
    latency: float
    kernel_s: float
    host_s: float
    macs: float
    alu_ops: float
    column_bytes: float
    activations: float
    broadcast_bytes: float
    readout_bytes: float
    writeback_bytes: float
    host_vector_ops: float
    compute_s: float
    memory_s: float
    stats: FrozenMap
    mapping: FrozenMap

    @property
    def bound_s(self) -> float:
        return max(self.compute_s, self.memory_s)

    @property
    def external_bytes(self) -> float:
        """Bytes across the external bus: broadcast plus read-out."""
        return self.broadcast_bytes + self.readout_bytes


@lru_cache(maxsize=8192)
def _run(geometry: tuple, pim_timing: tuple, work: tuple, timing: tuple) -> tuple:
    kp = _kernel()
    st = kp.simulate(np.array(geometry, dtype=np.int64), np.array(pim_timing, dtype=np.float64),
                     np.array(work, dtype=np.int64), np.array(timing, dtype=np.float64))
    return tuple(float(x) for x in st)


def _stats(dev: PimDevice, column_s: float, work: dict) -> dict[str, float]:
    kp = _kernel()
    pt = list(dev.pim_timing)
    pt[kp.P_COLUMN] = column_s
    st = _run(dev.geometry, tuple(pt), _array_tuple(kp, "W", work, int), dev.timing)
    return {n: st[i] for n, i in _stat_index(kp).items()}


def _groups_per_channel(rows: int, matrices: int, per_unit: int, upc: int,
                        channels: int) -> int:
    """Most matrices any one channel holds rows of, rows dealt out in matrix order."""
    if matrices <= 1:
        return 1
    span = per_unit * upc
    total = rows * matrices
    most = 1
    for c in range(channels):
        lo = c * span
        if lo >= total:
            break
        hi = min(total, lo + span) - 1
        most = max(most, hi // rows - lo // rows + 1)
    return min(most, matrices)


def gemv_cost(device: PimDevice, rows: int, k: int, weight_dtype: str, input_dtype: str,
              vectors: int = 1, matrices: int = 1, *, compute_dtype: str | None = None,
              kind: str = "gemv") -> PimCost:
    """Cost of ``matrices`` GEMVs of ``rows x k`` each, applied to ``vectors`` vectors.

    Parameters
    ----------
    device : PimDevice
    rows, k : int
        Output rows and reduction length of one matrix.
    weight_dtype, input_dtype : str
        Storage dtypes of the matrix (in the banks) and of the input vectors (broadcast).
    vectors : int
        Input vectors per matrix (a batch of B rows; the query heads of a KV group).
    matrices : int
        Independent matrices (1 for a weight; sequences x KV heads for attention).
    compute_dtype : str, optional
        The units' MAC dtype (default: ``input_dtype``'s kind); must be native to the units.
    kind : str
        Label of the cost (``"gemv"`` or ``"attention"``).

    Raises
    ------
    ArchError
        If the units have no MAC rate for the compute dtype.
    """
    compute = compute_dtype or _dtype(input_dtype).kind
    return _gemv(device, int(rows), int(k), str(weight_dtype), str(input_dtype), int(vectors),
                 int(matrices), compute, kind)


@lru_cache(maxsize=8192)
def _gemv(dev: PimDevice, rows: int, k: int, weight_dtype: str, input_dtype: str,
          vectors: int, matrices: int, compute: str, kind: str) -> PimCost:
    p = dev.pim
    if compute not in p.macs_per_cycle:
        raise ArchError(f"{dev.device} units have no {compute} MACs (pim.macs_per_cycle: "
                        f"{', '.join(p.macs_per_cycle)}); PIM has no dtype fallback")
    if min(rows, k, vectors, matrices) < 1:
        raise ValueError(f"gemv_cost: rows, k, vectors and matrices must be >= 1, got "
                         f"{rows}, {k}, {vectors}, {matrices}")
    wb = _dtype(weight_dtype).bytes
    ib = _dtype(input_dtype).bytes
    vpp = min(vectors, int(p.vectors_per_pass))
    passes = math.ceil(vectors / vpp)
    total_rows = rows * matrices
    per_unit = math.ceil(total_rows / dev.units)
    groups = _groups_per_channel(rows, matrices, per_unit, dev.units_per_channel,
                                 dev.channels)
    k_bytes = math.ceil(k * wb)
    elems = int(p.input_buffer // (groups * vpp * ib))
    chunk = int(elems * wb) // dev.burst * dev.burst
    chunk = min(max(chunk, dev.burst), k_bytes)
    chunk_input = math.ceil(groups * vpp * (chunk / wb) * ib)
    partials = dev.partials(compute)
    result_bytes = math.ceil(p.accumulator_bytes * vpp)
    column_s = dev.interval(compute, wb, vpp)
    work = {"ROWS": per_unit, "K_BYTES": k_bytes, "CHUNK_BYTES": chunk,
            "CHUNK_INPUT": chunk_input, "RESULT_BYTES": result_bytes, "PASSES": passes,
            "WRITEBACK": 0}
    st = _stats(dev, column_s, work)
    order, per_row = "rows", partials
    chunks = math.ceil(k_bytes / chunk)
    if chunks > 1:
        # The other loop order: each input chunk is broadcast once and every row's partial
        # sum over that chunk is read out (GDDR6-AiM keeps one input chunk in its global
        # buffer and reads each row's result, pim.md sec. 2-3); the host then adds the
        # chunks' partials too. The weights are laid out chunk-major for it, so each chunk is
        # one kernel run over every row (the banks' open rows and the refresh phase restart
        # per chunk: one extra activation per chunk at most). Whichever order is faster wins.
        full, rest = divmod(k_bytes, chunk)
        kp = _kernel()
        turnaround = dev.timing[kp.T_WL] + dev.timing[kp.T_WTR_L]

        def one_chunk(cb: int) -> dict[str, float]:
            # every row over one chunk, the chunk broadcast once before them (the kernel
            # would broadcast it per accumulator group, so it runs without and the broadcast
            # train, with its write-to-column turnaround, is added here)
            one = _stats(dev, column_s, {**work, "K_BYTES": cb, "CHUNK_BYTES": cb,
                                         "CHUNK_INPUT": 0})
            bursts = math.ceil(math.ceil(chunk_input * cb / chunk) / dev.burst)
            train = bursts * dev.bus_burst + turnaround
            one["write_bursts"] += bursts
            one["broadcast_s"] += train
            one["time"] += train
            return one
        by_chunk = one_chunk(chunk)
        alt = {n: v * full for n, v in by_chunk.items()}
        if rest:
            last = one_chunk(rest)
            alt = {n: alt[n] + last[n] for n in alt}
        if alt["time"] < st["time"]:
            st, order, per_row = alt, "chunks", partials * chunks
    macs = float(total_rows) * k * vectors
    outputs = float(total_rows) * vectors
    host_ops = outputs * (per_row - 1)
    weight_bytes = float(total_rows) * k * wb
    mapping = FrozenMap({
        "device": dev.device, "kind": kind, "rows_per_unit": per_unit,
        "units": dev.units, "matrices": matrices, "vectors": vectors,
        "vectors_per_pass": vpp, "passes": passes, "groups_per_channel": groups,
        "chunk_bytes": chunk, "column_interval_s": column_s, "partials": per_row,
        "loop_order": order})
    return PimCost(
        kind=kind, dtype=compute, latency=st["time"], kernel_s=st["time"], host_s=0.0,
        macs=macs, alu_ops=0.0, column_bytes=weight_bytes * passes,
        activations=st["activations"] * dev.channels,
        broadcast_bytes=st["write_bursts"] * dev.burst * dev.channels,
        readout_bytes=st["read_bursts"] * dev.burst * dev.channels, writeback_bytes=0.0,
        host_vector_ops=host_ops, compute_s=macs / dev.peak_macs[compute],
        memory_s=weight_bytes / dev.internal_bandwidth, stats=FrozenMap(st), mapping=mapping)


def elementwise_cost(device: PimDevice, elements: int, streamed_bytes: float,
                     broadcast_bytes: float, out_bytes: float, dtype_name: str,
                     ops_per_element: float = 1.0) -> PimCost:
    """Cost of an elementwise op streamed through the units from their own banks.

    ``streamed_bytes`` of DRAM operands are spread evenly over the units; ``broadcast_bytes``
    of small operands go to every channel; ``out_bytes`` are written back into the banks.
    """
    return _elementwise(device, int(elements), float(streamed_bytes), float(broadcast_bytes),
                        float(out_bytes), str(dtype_name), float(ops_per_element))


@lru_cache(maxsize=4096)
def _elementwise(dev: PimDevice, elements: int, streamed: float, broadcast: float,
                 out_bytes: float, compute: str, ops_per_element: float) -> PimCost:
    p = dev.pim
    if compute not in p.macs_per_cycle:
        raise ArchError(f"{dev.device} units have no {compute} ALUs (pim.macs_per_cycle: "
                        f"{', '.join(p.macs_per_cycle)}); PIM has no dtype fallback")
    eb = _dtype(compute).bytes
    k_bytes = max(dev.burst, math.ceil(streamed / dev.units / dev.burst) * dev.burst)
    wb_bytes = math.ceil(out_bytes / dev.units / dev.burst) * dev.burst
    column_s = dev.interval(compute, eb, 1, ops_per_element)
    st = _stats(dev, column_s, {"ROWS": 1, "K_BYTES": k_bytes, "CHUNK_BYTES": k_bytes,
                                "CHUNK_INPUT": math.ceil(broadcast), "RESULT_BYTES": 0,
                                "PASSES": 1, "WRITEBACK": wb_bytes})
    ops = float(elements) * ops_per_element
    mapping = FrozenMap({"device": dev.device, "kind": "elementwise", "units": dev.units,
                         "bytes_per_unit": k_bytes, "writeback_per_unit": wb_bytes,
                         "column_interval_s": column_s})
    return PimCost(
        kind="elementwise", dtype=compute, latency=st["time"], kernel_s=st["time"],
        host_s=0.0, macs=0.0, alu_ops=ops, column_bytes=streamed + out_bytes,
        activations=st["activations"] * dev.channels,
        broadcast_bytes=st["write_bursts"] * dev.burst * dev.channels, readout_bytes=0.0,
        writeback_bytes=out_bytes, host_vector_ops=0.0,
        compute_s=ops / dev.peak_macs[compute],
        memory_s=(streamed + out_bytes) / dev.internal_bandwidth, stats=FrozenMap(st),
        mapping=mapping)


def with_host(cost: PimCost, arch) -> PimCost:
    """``cost`` with the host's reduction timed on ``arch``'s vector units (after read-out)."""
    if cost.host_vector_ops <= 0:
        return cost
    from dataclasses import replace
    host = cost.host_vector_ops / arch.peak_vector_ops_per_s
    return replace(cost, host_s=host, latency=cost.kernel_s + host)


# --------------------------------------------------------------------------- eligibility
@dataclass(frozen=True)
class PimPlan:
    """Whether an op can run on the arch's PIM units: ``ok`` with its ``cost``, or the
    ``reason`` it cannot (``kind`` says which PIM op it would be, when known)."""

    ok: bool
    reason: str = ""
    kind: str = ""
    cost: PimCost | None = None


def _plain_axes(op: Contraction) -> bool:
    for o in (*op.operands, op.output):
        for ax in o.axes:
            if ax.offset or any(c != 1 for _, c in ax.terms) or len(ax.terms) > 1:
                return False
    return True


def kv_resident(graph, t) -> bool:
    """Whether tensor ``t`` is (a view of) the KV cache: its storage has role ``kv_cache``,
    or is the output of a KV-cache append (the cache the step has just extended in place)."""
    if t.role == Role.KV_CACHE:
        return True
    if graph is None:
        return False
    root = graph.aliases.get(t.name, t.name)
    base = graph.tensors.get(root)
    if base is not None and base.role == Role.KV_CACHE:
        return True
    prod = graph.producer.get(t.name) or graph.producer.get(root)
    if prod is None:
        return False
    p = graph.op(prod)
    return isinstance(p, Movement) and p.func == "kv_append"


def _in_dram(t, where) -> bool:
    if t.role != Role.ACTIVATION:
        return True
    return where is not None and where(t, False) == tk.IN_DRAM


def op_on_pim(op: Op, arch, *, graph=None, where=None, device: PimDevice | None = None
              ) -> PimPlan:
    """Can ``op`` run on ``arch``'s PIM units, and at what cost?

    Eligible: a contraction with plain dims whose matrix operand is a weight (GEMV, or a
    small-batch GEMM of B vectors) or the KV cache (decode attention's QK^T and PV, the query
    heads of a KV group as its vectors), and an elementwise op of an in-bank ALU function
    whose full-size operands live in DRAM. ``graph`` and ``where`` (the engine's tensor
    placement) tell KV-cache views and DRAM residency; without them only tensor roles do.

    Returns
    -------
    PimPlan
        ``ok`` and the cost (host reduction included, launch overhead and mode switches not),
        or ``ok=False`` and the reason.
    """
    p = getattr(arch, "pim", None)
    if p is None or not p.enabled:
        return PimPlan(False, f"arch {arch.name} has no enabled PIM units")
    dev = device or pim_device(arch)
    if isinstance(op, Contraction):
        return _contraction_plan(op, arch, dev, graph)
    if isinstance(op, Elementwise):
        return _elementwise_plan(op, arch, dev, where)
    return PimPlan(False, f"a {op.kind} op; the units run contractions (GEMV, attention) and "
                          f"elementwise ops")


def _units_dtype(dt, arch, p) -> tuple[str, str]:
    """The dtype the units would run ``dt`` in, and why they cannot ("" when they can).

    ``dt`` itself where the units have it natively, else the dtype the system executes it in
    (:meth:`~npusim.arch.Arch.execution_dtype`: bf16 runs as fp16 where the arch's
    ``dtype_fallback`` says so) where the units have that; the units have no fallback table of
    their own, so anything else is refused.
    """
    if dt.kind in p.macs_per_cycle:
        return dt.kind, ""
    try:
        ex = arch.execution_dtype(dt)
    except ArchError:
        ex = dt
    if ex.kind not in p.macs_per_cycle:
        shown = dt.name if ex.name == dt.name else f"{dt.name} (run as {ex.name} by the host)"
        return "", (f"{shown} MACs: the units run only {', '.join(p.macs_per_cycle)} and "
                    f"have no dtype fallback")
    return ex.kind, ""


def _contraction_plan(op: Contraction, arch, dev: PimDevice, graph) -> PimPlan:
    from .mapping import gemm_view
    p = dev.pim
    if not _plain_axes(op):
        return PimPlan(False, "a convolution (operand axes are sums of dims, not plain dims); "
                              "PIM units run GEMV only")
    view = gemm_view(op)
    if view.b is None:
        return PimPlan(False, "a single-operand contraction; PIM needs a matrix in DRAM")
    mat = op.operands[view.b].tensor
    vec = op.operands[view.a].tensor
    if mat.role == Role.WEIGHT:
        kind = "gemv"
    elif kv_resident(graph, mat) or kv_resident(graph, vec):
        kind = "attention"
        if not kv_resident(graph, mat):
            mat, vec = vec, mat
    else:
        return PimPlan(False, "neither operand is a weight or the KV cache (both are "
                              "activations the host produces)")
    if kind not in p.ops:
        return PimPlan(False, f"the units do not run {kind} (pim.ops: {', '.join(p.ops)})",
                       kind)
    # the units read the matrix as it is stored in the banks: nothing converts it on the way
    # (an fp8 weight on FP16-only units, a bf16 one on units without bf16, are refused)
    compute = mat.dtype.kind
    if compute not in p.macs_per_cycle:
        return PimPlan(False, f"{mat.dtype.name} {'weights' if kind == 'gemv' else 'KV cache'}"
                              f" in DRAM: the units run only {', '.join(p.macs_per_cycle)} and "
                              f"convert nothing as they read", kind)
    if kind == "attention" and mat is not op.operands[view.b].tensor:
        rows, k, vectors = view.M, view.K, view.N
    else:
        rows, k, vectors = view.N, view.K, view.M
    cost = gemv_cost(dev, rows, k, mat.dtype.name, vec.dtype.name, vectors, view.B,
                     compute_dtype=compute, kind=kind)
    return PimPlan(True, kind=kind, cost=with_host(cost, arch))


def _elementwise_plan(op: Elementwise, arch, dev: PimDevice, where) -> PimPlan:
    p = dev.pim
    if "elementwise" not in p.ops:
        return PimPlan(False, f"the units do not run elementwise ops (pim.ops: "
                              f"{', '.join(p.ops)})", "elementwise")
    if op.func not in ELEMENTWISE_FUNCS:
        return PimPlan(False, f"{op.func} is not an in-bank ALU function (the units add, "
                              f"subtract, multiply, negate and ReLU)", "elementwise")
    if not op.outputs:
        return PimPlan(False, "an op with no output", "elementwise")
    n = op.outputs[0].numel
    streamed = broadcast = 0.0
    seen = set()
    for t in op.inputs:
        if t.name in seen:
            continue
        seen.add(t.name)
        if t.numel >= n:
            if not _in_dram(t, where):
                return PimPlan(False, "an operand is held on chip by the host, not in DRAM",
                               "elementwise")
            streamed += t.nbytes
        else:
            broadcast += t.nbytes
    compute, why = _units_dtype(op.compute_dtype, arch, p)
    if why:
        return PimPlan(False, why, "elementwise")
    cost = elementwise_cost(dev, n, streamed, broadcast, op.outputs[0].nbytes, compute,
                            op.ops_per_element)
    return PimPlan(True, kind="elementwise", cost=cost)


# --------------------------------------------------------------------------- crossover
def host_arch(arch):
    """``arch`` with its PIM units switched off: the NPU alone on the same memory."""
    from dataclasses import replace
    if getattr(arch, "pim", None) is None:
        return arch
    return replace(arch, pim=replace(arch.pim, enabled=False))


def _gemm_graph(batch: int, k: int, m: int, dt: str):
    from ..ir import Graph
    g = Graph(f"gemm {batch}x{k}x{m}")
    d = _dtype(dt)
    g.add(Contraction.einsum("bk,km->bm", {"b": batch, "k": k, "m": m}, ["x", "w"], "y", d,
                             name="gemm", op_type="MatMul",
                             roles=[Role.ACTIVATION, Role.WEIGHT]))
    return g


def npu_gemm_seconds(arch, batch: int, k: int, m: int, dtype_name: str) -> float:
    """Seconds of a ``batch x k`` by ``k x m`` GEMM on the host NPU alone (the tile engine)."""
    from .simulate import simulate_graph
    return simulate_graph(_gemm_graph(batch, k, m, dtype_name), host_arch(arch),
                          pim="off").latency_s


def pim_gemm_seconds(arch, batch: int, k: int, m: int, dtype_name: str,
                     device: PimDevice | None = None) -> float:
    """Seconds of the same GEMM on the PIM units as the engine places it after an NPU op:
    launch overhead, one mode switch in, the kernel, and the host's reduction."""
    dev = device or pim_device(arch)
    c = with_host(gemv_cost(dev, m, k, dtype_name, dtype_name, batch, 1), arch)
    return arch.launch_overhead + dev.mode_switch + c.latency


def crossover_batch(arch, m: int, k: int, dtype: str,
                    limit: int = MAX_CROSSOVER_BATCH) -> int | None:
    """Smallest batch B at which the host NPU runs a ``B x k`` by ``k x m`` GEMM faster than
    the PIM units (:func:`pim_gemm_seconds`); ``None`` if PIM is still faster at ``limit``.

    The NPU is ``arch`` with its units disabled, costed by the tile engine. The search doubles
    B until the NPU wins, then bisects, which finds the smallest such B when the difference
    changes sign once (PIM time grows with every pass over the weights; the NPU's, streaming
    the weights once, barely moves until it becomes compute-bound).
    """
    dev = pim_device(arch)

    def npu_wins(b: int) -> bool:
        return npu_gemm_seconds(arch, b, k, m, dtype) < pim_gemm_seconds(arch, b, k, m, dtype,
                                                                           dev)
    if npu_wins(1):
        return 1
    lo, hi = 1, 2
    while hi <= limit and not npu_wins(hi):
        lo, hi = hi, hi * 2
    if hi > limit:
        if lo == limit or not npu_wins(limit):
            return None
        hi = limit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if npu_wins(mid):
            hi = mid
        else:
            lo = mid
    return hi


# --------------------------------------------------------------------------- summary
def shipped_pim_archs() -> list[str]:
    """Names of the shipped archs with a ``pim`` section, sorted."""
    from ..arch import list_archs, load_arch
    return [name for name, _ in list_archs() if load_arch(name).pim is not None]


def pim_summary(arch, rows: int = 4096, k: int = 4096, dtype_name: str | None = None) -> dict:
    """What ``npusim pim`` prints for one arch: the device, its peaks and bandwidths, and a
    ``rows x k`` GEMV (the units' dtype: fp16 where they have it, else their first) timed
    against the internal-bandwidth bound, with the batch where the NPU overtakes PIM.

    The GEMV's efficiency is the internal-bandwidth bound (its weight bytes at the units'
    column rate) over the kernel's time; launch overhead and mode switches are left out of it
    (they are in the crossover, as the engine's placement counts them).
    """
    on = arch if arch.pim.enabled else _enabled(arch)
    dev = pim_device(on)
    p = on.pim
    dt = dtype_name or ("fp16" if "fp16" in p.macs_per_cycle else next(iter(p.macs_per_cycle)))
    c = gemv_cost(dev, rows, k, dt, dt)
    cross = crossover_batch(on, rows, k, dt)
    return {
        "arch": arch.name, "device": dev.device, "enabled": bool(arch.pim.enabled),
        "channels": dev.channels, "units_per_channel": dev.units_per_channel,
        "units": dev.units, "banks_per_unit": dev.banks_per_unit, "clock_hz": dev.clock,
        "column_interval_s": dev.command_interval,
        "peak_tflops": {d: 2 * v / 1e12 for d, v in dev.peak_macs.items()},
        "internal_bandwidth": dev.internal_bandwidth,
        "external_bandwidth": dev.external_bandwidth, "ratio": dev.ratio,
        "gemv": {"rows": rows, "k": k, "dtype": dt, "kernel_s": c.kernel_s,
                 "bound_s": c.memory_s, "efficiency": c.memory_s / c.kernel_s,
                 "row_s": c.stats["row_s"], "broadcast_s": c.stats["broadcast_s"],
                 "readout_s": c.stats["readout_s"], "refresh_s": c.stats["refresh_s"]},
        "crossover_batch": cross, "crossover_limit": MAX_CROSSOVER_BATCH,
    }


def _enabled(arch):
    from dataclasses import replace
    return replace(arch, pim=replace(arch.pim, enabled=True))


# --------------------------------------------------------------------------- placement
def _shape_key(o) -> tuple:
    """What a contraction's PIM plan depends on in one operand (cheap to hash)."""
    t = o.tensor
    return (t.shape, t.dtype.name, t.role,
            tuple((ax.terms, ax.offset) for ax in o.axes))


def _roots(graph, tensors) -> set[str]:
    return {graph.aliases.get(t.name, t.name) for t in tensors}


class Placer:
    """The PIM side of :func:`npusim.engine.simulate.simulate_graph`'s schedule: which ops go
    to the units, the mode switches, and the PIM op records (see that function's notes).

    One per run; it holds the run's placement state (the device of the op before, the
    NeuPIMs overlap window) and is dropped with the run.
    """

    def __init__(self, graph, arch, where, table, mode: str) -> None:
        self.graph, self.arch, self.where, self.table, self.mode = graph, arch, where, table, mode
        self.dev = pim_device(arch)
        self.pim = arch.pim
        self.prev = "npu"           # the device of the last op that took time
        self.placed: set[str] = set()
        self.switches = 0
        self.switch_s = 0.0
        self.fallbacks: list[tuple[str, str]] = []
        self.window: tuple[float, float, set[str]] | None = None   # (start, end, written)
        self.pim_free = 0.0          # when the units are free again
        self._plans: dict = {}
        self._kv: set[str] | None = None      # storage roots of the KV cache, when asked
        self._mappings: dict[int, tuple] = {}   # id(cost) -> (cost, its record mapping)
        self.refused: dict[str, int] = {}    # auto: why contractions could not go to PIM

    # -- decisions -------------------------------------------------------------------
    def on_pim(self, name: str) -> bool:
        return name in self.placed

    def plan(self, op) -> PimPlan | None:
        """The op's PIM plan, or None for an op of a kind PIM never runs (not worth a
        warning: reductions, movement, collectives). Contractions of one shape share a plan
        (an LLM's layers repeat a few shapes)."""
        if isinstance(op, Contraction):
            key = (op.dims, op.dtype.name, _shape_key(op.output),
                   tuple(_shape_key(o) + (self._is_kv(o.tensor),) for o in op.operands))
            plan = self._plans.get(key)
            if plan is None:
                plan = self._plans[key] = op_on_pim(op, self.arch, graph=self.graph,
                                                    where=self.where, device=self.dev)
        elif isinstance(op, Elementwise):
            plan = op_on_pim(op, self.arch, graph=self.graph, where=self.where,
                             device=self.dev)
        else:
            return None
        if not plan.ok and self.mode == "all":
            self.fallbacks.append((op.name, plan.reason))
        elif not plan.ok and isinstance(op, Contraction):
            self.refused[plan.reason] = self.refused.get(plan.reason, 0) + 1
        return plan

    def _is_kv(self, t) -> bool:
        """:func:`kv_resident`, from the run's set of KV-cache storage roots."""
        if self._kv is None:
            g = self.graph
            roots = {n for n, x in g.tensors.items() if x.role == Role.KV_CACHE}
            for o in g.ops():
                if isinstance(o, Movement) and o.func == "kv_append":
                    roots.update(g.aliases.get(x.name, x.name) for x in o.outputs)
            self._kv = roots
        return t.role == Role.KV_CACHE or self.graph.aliases.get(t.name, t.name) in self._kv

    def _switch_in(self) -> float:
        return self.dev.mode_switch if self.prev == "npu" else 0.0

    def _standalone(self, plan: PimPlan) -> float:
        return max(self.arch.launch_overhead + plan.cost.latency, plan.cost.bound_s)

    def prefers_pim(self, plan: PimPlan, npu_latency: float) -> bool:
        """Auto placement: PIM when its time (launch, switch in, kernel, host reduction) is
        below the NPU's (with the switch back when the op before ran on PIM)."""
        npu = npu_latency + (self.dev.mode_switch if self.prev == "pim" else 0.0)
        return self._switch_in() + self._standalone(plan) < npu

    def to_npu(self, op, latency: float) -> float:
        """The mode switch an NPU op of ``latency`` pays (the op before ran on PIM)."""
        if latency <= 0.0:
            return 0.0
        switch = self.dev.mode_switch if self.prev == "pim" else 0.0
        if switch:
            self.switches += 1
            self.switch_s += switch
        self.prev = "npu"
        return switch

    def after_npu(self, op, start: float, latency: float) -> None:
        """Track the NPU op a PIM op may run beside (dual row buffer only)."""
        if not self.dev.dual_row_buffer:
            return
        written = _roots(self.graph, op.outputs)
        if latency > 0.0:
            self.window = (start, start + latency, written)
        elif self.window is not None:
            self.window[2].update(written)

    # -- records ---------------------------------------------------------------------
    def record(self, op, plan: PimPlan, bound_rec, t: float) -> OpRecord:
        """The op's record on PIM, starting at ``t`` (or beside the NPU op before it)."""
        from ..energy import static_energy
        from .result import OpRecord, Span
        c, p, arch = plan.cost, self.pim, self.arch
        switch = self._switch_in()
        if switch:
            self.switches += 1
            self.switch_s += switch
        run = self._standalone(plan) + switch
        start, added = t, run
        if self.dev.dual_row_buffer and self.prev == "npu" and self.window is not None:
            w_start, w_end, written = self.window
            if not (_roots(self.graph, op.inputs) & written):
                start = max(w_start, self.pim_free)
                added = max(0.0, start + run - t)
        self.prev = "pim"
        self.window = None
        self.pim_free = start + run
        self.placed.add(op.name)
        energy: dict[str, float] = {}
        if self.table is not None:
            energy = self._energy(c, run)
        held = self._mappings.get(id(c))
        base = held[1] if held is not None and held[0] is c else None
        if base is None:
            base = dict(c.mapping)
            base.update(pim_kernel_s=c.kernel_s, host_reduce_s=c.host_s,
                        launch_s=arch.launch_overhead, column_bytes=c.column_bytes,
                        bank_activations=c.activations, broadcast_bytes=c.broadcast_bytes,
                        readout_bytes=c.readout_bytes)
            if c.writeback_bytes:
                base["writeback_bytes"] = c.writeback_bytes
            self._mappings[id(c)] = (c, base)
        mapping = dict(base)
        if switch:
            mapping["mode_switch_s"] = switch
        if added < run:
            mapping["overlapped_s"] = run - added
        # what limits it: the units' MACs or their column stream (the PIM roofline), unless
        # the fixed costs around the kernel (launch, mode switch, host reduction) outweigh it
        bound = "compute" if c.compute_s >= c.memory_s else "memory"
        if run - c.kernel_s > c.kernel_s:
            bound = "latency"
        peak = self.dev.peak_macs[c.dtype]
        util = op.macs / (peak * run) if op.macs and run > 0 else 0.0
        ext = c.external_bytes
        return OpRecord(
            name=op.name, kind=op.kind, source=op.source, op_type=op.op_type,
            dtype=bound_rec.dtype, exec_dtype=c.dtype, macs=op.macs,
            vector_ops=bound_rec.vector_ops + c.host_vector_ops, bytes=bound_rec.bytes,
            dram_bytes=ext, compute_s=c.compute_s, memory_s=c.memory_s, bound_s=c.bound_s,
            latency_s=added, bound=bound, cycles=added * arch.clock, start_s=start,
            end_s=start + run, bytes_by_level={"dram": ext, "bank": c.column_bytes},
            energy_j=energy, utilization=util, mapping=mapping,
            spans=(Span("pim", start, start + run, op.name),) if run > 0 else (),
            device="pim")

    def _energy(self, c: PimCost, seconds: float) -> dict[str, float]:
        from ..energy import static_energy
        p, tb = self.pim, self.table
        per_op = p.energy.mac[c.dtype]
        return {
            "pim_mac": (c.macs + c.alu_ops) * per_op,
            "pim_column": c.column_bytes * p.energy.column,
            "dram": c.activations * tb.dram_activation
            + 8.0 * (c.broadcast_bytes * tb.dram_write + c.readout_bytes * tb.dram_read),
            "vector": c.host_vector_ops * tb.vector_op,
            "static": static_energy(tb, seconds) + p.energy.unit_static * seconds,
        }

    def finish(self, records: list) -> list:
        """The run ends in normal mode: a last switch back after a final PIM op is charged
        to it (the zero-time records after it move along)."""
        if self.prev != "pim" or not self.dev.mode_switch:
            return records
        from dataclasses import replace
        from .result import Span
        s = self.dev.mode_switch
        last = max(i for i, r in enumerate(records) if r.device == "pim")
        r = records[last]
        run = r.end_s - r.start_s + s
        mapping = dict(r.mapping)
        mapping["mode_switch_s"] = mapping.get("mode_switch_s", 0.0) + s
        energy = dict(r.energy_j)
        if energy:
            tb = self.table
            energy["static"] += (tb.floor_w + self.pim.energy.unit_static) * s
        out = list(records)
        out[last] = replace(r, latency_s=r.latency_s + s, end_s=r.end_s + s,
                            cycles=(r.latency_s + s) * self.arch.clock, mapping=mapping,
                            energy_j=energy, utilization=r.macs / (
                                self.dev.peak_macs[r.exec_dtype] * run) if r.macs else 0.0,
                            spans=(Span("pim", r.start_s, r.end_s + s, r.name),))
        for i in range(last + 1, len(out)):
            q = out[i]
            out[i] = replace(q, start_s=q.start_s + s, end_s=q.end_s + s,
                             spans=tuple(replace(sp, start_s=sp.start_s + s,
                                                 end_s=sp.end_s + s) for sp in q.spans))
        self.switches += 1
        self.switch_s += s
        return out

    def warnings(self, n_ops: int) -> list[str]:
        out = []
        by_reason: dict[str, list[str]] = {}
        for name, why in self.fallbacks:
            by_reason.setdefault(why, []).append(name)
        for why, names in by_reason.items():
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5
                                            else "")
            out.append(f"pim='all': {len(names)} op(s) cannot run on the {self.dev.device} "
                       f"units ({why}) and ran on the host NPU: {shown}")
        kinds: dict[str, int] = {}
        for name in self.placed:
            kind = self.graph.op(name).kind
            kinds[kind] = kinds.get(kind, 0) + 1
        what = ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
        sw = (f"; no mode switches (dual row buffer)" if self.dev.dual_row_buffer else
              f"; {self.switches} mode switches ({self.switch_s * 1e6:.3g} us)")
        text = (f"pim ({self.mode}): {len(self.placed)} of {n_ops} ops ran on the "
                f"{self.dev.device} units" + (f" ({what})" if what else "") + sw)
        if self.refused:
            why, n = max(self.refused.items(), key=lambda kv: kv[1])
            others = sum(self.refused.values()) - n
            text += (f"; {n} contraction(s) could not run there ({why})"
                     + (f", {others} more for other reasons" if others else ""))
        out.append(text)
        return out


__all__ = ["ELEMENTWISE_FUNCS", "MAX_CROSSOVER_BATCH", "PimCost", "PimDevice", "PimPlan", "Placer",
           "crossover_batch", "elementwise_cost", "gemv_cost", "host_arch", "kv_resident",
           "pim_summary", "shipped_pim_archs",
           "npu_gemm_seconds", "op_on_pim", "pim_device", "pim_gemm_seconds", "with_host"]
