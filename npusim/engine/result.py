"""The result tree: a run holds per-op records; every total is a sum over the records."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

BOUNDS = ("compute", "memory", "latency")


@dataclass(frozen=True)
class Span:
    """A busy interval of one resource (``"core0"``, ``"dma"``, ``"link"``) or of a range of
    cores (``"core0-7"``: each of core0 to core7)."""

    resource: str
    start_s: float
    end_s: float
    label: str = ""


@dataclass(frozen=True)
class OpRecord:
    """What one op costs on one arch.

    Attributes
    ----------
    name, kind, source, op_type : str
        The op and where it came from (``source`` is the ONNX node or builder layer).
    dtype, exec_dtype : str
        The op's compute dtype and the dtype the arch really runs it in.
    macs : int
        Multiply-accumulates (contractions only).
    vector_ops : float
        Element operations on the vector unit.
    bytes : float
        Bytes of every distinct operand, each counted once.
    dram_bytes : float
        Bytes the engine moves across the DRAM interface for this op (the roofline engine:
        the unavoidable bytes, see :mod:`npusim.engine.roofline`).
    compute_s, memory_s : float
        Roofline terms: ideal compute time at peak for the dtype, unavoidable DRAM bytes at
        peak bandwidth.
    bound_s : float
        ``max(compute_s, memory_s)``: no schedule of this op alone can be faster.
    latency_s : float
        The time this op adds to the run: its span on the critical path, less what overlapped
        with the op before it (weight prefetch). Summed over ops it is the run's latency.
    bound : str
        What limits the op: ``"compute"``, ``"memory"`` or ``"latency"`` (fixed overheads,
        pipeline fill and drain).
    cycles : float
        ``latency_s`` in core clock cycles.
    start_s, end_s : float
        Where the op sits on the schedule.
    bytes_by_level : dict
        Bytes read plus written at each memory level (``dram``, ``shared``, ``sram``).
    energy_j : dict
        Joules by component (``mac``, ``vector``, ``sram``, ``shared``, ``dram``, ``noc``,
        ``link``, ``static``). Empty for the roofline engine.
    utilization : float
        MACs over (peak MACs per cycle x cycles) for contractions, 0 otherwise.
    mapping : dict
        The chosen mapping (split, spatial dims, tiles, loop order) or, for a fused op, the op
        it was fused into.
    spans : tuple of Span
        Busy intervals per resource, for traces.
    device : str
        Where the op ran: ``"npu"`` (the chip) or ``"pim"`` (the processing units in its
        DRAM, :mod:`npusim.engine.pim`). A PIM op's roofline terms are the PIM roofline (MACs
        at the units' peak, streamed bytes at the internal bandwidth), its ``dram_bytes`` what
        crossed the external bus (broadcast and read-out), ``bytes_by_level["bank"]`` what the
        units read and wrote in their banks, and its energy components ``pim_mac``,
        ``pim_column``, ``dram``, ``vector`` (the host's reduction) and ``static``.
    """

    name: str
    kind: str
    source: str
    op_type: str
    dtype: str
    exec_dtype: str
    macs: int
    vector_ops: float
    bytes: float
    dram_bytes: float
    compute_s: float
    memory_s: float
    bound_s: float
    latency_s: float
    bound: str
    cycles: float = 0.0
    start_s: float = 0.0
    end_s: float = 0.0
    bytes_by_level: dict = field(default_factory=dict)
    energy_j: dict = field(default_factory=dict)
    utilization: float = 0.0
    mapping: dict = field(default_factory=dict)
    spans: tuple[Span, ...] = ()
    device: str = "npu"

    @property
    def energy_total_j(self) -> float:
        return float(sum(self.energy_j.values()))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["energy_total_j"] = self.energy_total_j
        return d


@dataclass(frozen=True)
class _Totals:
    """Run totals, each a sum over per-op values in schedule order: :class:`RunResult` reads
    them off its records, :class:`RunTotals` keeps only the values (same sums, same order,
    so the same numbers to the last bit). The fields both carry are declared here once; all
    but the first three are keyword-only, so each subclass's own field comes fourth."""

    model: str
    arch: str
    engine: str
    meta: dict = field(default_factory=dict, kw_only=True)
    warnings: tuple[str, ...] = field(default=(), kw_only=True)
    peak_macs_per_s: float = field(default=0.0, kw_only=True)
    tdp_w: float | None = field(default=None, kw_only=True)
    clock_hz: float = field(default=0.0, kw_only=True)
    dram_bandwidth: float = field(default=0.0, kw_only=True)
    area: dict = field(default_factory=dict, kw_only=True)

    def _values(self, field: str):
        """The ops' values of record field ``field`` in schedule order."""
        raise NotImplementedError

    def _count(self) -> int:
        raise NotImplementedError

    @property
    def macs(self) -> int:
        return sum(self._values("macs"))

    @property
    def latency_s(self) -> float:
        return sum(self._values("latency_s"))

    @property
    def compute_s(self) -> float:
        return sum(self._values("compute_s"))

    @property
    def memory_s(self) -> float:
        return sum(self._values("memory_s"))

    @property
    def bound_latency_s(self) -> float:
        """Whole-run roofline: all compute at peak or all DRAM traffic at peak, whichever is
        longer. With perfect overlap between ops nothing is faster, so no engine may beat it."""
        return max(self.compute_s, self.memory_s)

    @property
    def dram_bytes(self) -> float:
        return sum(self._values("dram_bytes"))

    def energy_by_component(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for energy in self._values("energy_j"):
            for k, v in energy.items():
                out[k] = out.get(k, 0.0) + v
        return out

    @property
    def energy_j(self) -> float:
        return sum(self._values("energy_total_j"))

    @property
    def avg_power_w(self) -> float:
        return self.energy_j / self.latency_s if self.latency_s > 0 else 0.0

    @property
    def utilization(self) -> float:
        """The share of the run's latency the MAC engines would need at full rate, each op at the
        peak of the dtype it executes in (an fp8 matmul against the fp8 peak): the latency-
        weighted mean of the op records' utilisation, so it never exceeds 1."""
        busy = sum(u * t for u, t in zip(self._values("utilization"),
                                         self._values("latency_s")))
        return busy / self.latency_s if self.latency_s > 0 else 0.0

    @property
    def devices(self) -> tuple[str, ...]:
        """The devices the ops ran on, ``"npu"`` first."""
        seen = set(self._values("device"))
        return tuple(sorted(seen, key=lambda d: (d != "npu", d)))

    def by_device(self) -> dict[str, dict]:
        """Per device: ops, latency (seconds the device's ops add to the run) and energy."""
        out: dict[str, dict] = {}
        for dev, t, e in zip(self._values("device"), self._values("latency_s"),
                             self._values("energy_total_j")):
            d = out.setdefault(dev, {"ops": 0, "latency_s": 0.0, "energy_j": 0.0})
            d["ops"] += 1
            d["latency_s"] += t
            d["energy_j"] += e
        return {k: out[k] for k in self.devices}

    def totals(self) -> dict:
        """Run totals, each a sum over the records; ``by_device`` only when an op ran
        somewhere other than the NPU (a PIM run); ``host_power_w`` and ``system_power_w`` only
        when the run was given a host (``meta["host"]``, npusim/arch/host.py)."""
        t = self._totals()
        host = self.meta.get("host")
        if isinstance(host, dict) and "system_power_w" in host:
            t["host_power_w"] = host["host_power_w"]
            t["system_power_w"] = host["system_power_w"]
        if self.devices != ("npu",) and self._count():
            t["by_device"] = self.by_device()
        if self.area:
            t.update(self.area_totals())
        return t

    def area_totals(self) -> dict:
        """``area_mm2`` (``nan`` when unknown: ``area_notes`` say why) and its breakdown; empty
        for a result built by hand without its arch's area."""
        a = dict(self.area)
        if a:
            a["area_mm2"] = math.nan if a.get("area_mm2") is None else a["area_mm2"]
        return a

    def _totals(self) -> dict:
        return {
            "macs": self.macs,
            "latency_s": self.latency_s,
            "bound_latency_s": self.bound_latency_s,
            "compute_s": self.compute_s,
            "memory_s": self.memory_s,
            "dram_bytes": self.dram_bytes,
            "energy_j": self.energy_j,
            "energy_by_component_j": self.energy_by_component(),
            "avg_power_w": self.avg_power_w,
            # the chip alone: a run is one chip's graph, so the same as avg_power_w
            "card_power_w": self.avg_power_w,
            "tdp_w": self.tdp_w,
            "utilization": self.utilization,
            "ops": self._count(),
        }


@dataclass(frozen=True)
class RunResult(_Totals):
    """A model run on an arch: per-op records in schedule order and totals derived from them.

    ``peak_macs_per_s`` (bf16, the roofline plot's ceiling), ``dram_bandwidth`` (bytes/s), ``clock_hz``
    and ``tdp_w`` (to print beside average power) are the arch's, copied here so a result
    stands alone (a roofline plot needs nothing else); so is ``area``, the chip's silicon area
    (:func:`npusim.energy.area.area_totals`: ``area_mm2``, ``None`` when its node has no area
    table, with ``area_by_component_mm2``, ``area_node``, ``area_notes``).
    """

    ops: tuple[OpRecord, ...]

    def _values(self, field: str):
        return (getattr(r, field) for r in self.ops)

    def _count(self) -> int:
        return len(self.ops)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "arch": self.arch,
            "engine": self.engine,
            "totals": self.totals(),
            "meta": self.meta,
            "warnings": list(self.warnings),
            "ops": [r.to_dict() for r in self.ops],
        }


#: the record fields whose per-op values a :class:`RunTotals` keeps
TOTALS_FIELDS = ("macs", "latency_s", "compute_s", "memory_s", "dram_bytes", "energy_j",
                 "energy_total_j", "utilization", "device")


@dataclass(frozen=True)
class RunTotals(_Totals):
    """A run's totals without its records (what a sweep stores of a design point): the same
    properties and :meth:`totals` as :class:`RunResult`, summed over the same per-op values in
    the same order, so every figure equals the full result's exactly.

    ``values`` holds, per field of :data:`TOTALS_FIELDS`, the ops' values in schedule order.
    """

    values: dict = field(default_factory=dict)

    def _values(self, field: str):
        return self.values[field]

    def _count(self) -> int:
        return len(self.values["latency_s"])

    @staticmethod
    def of(result: RunResult) -> "RunTotals":
        """The totals of a full result."""
        shared = {f.name: getattr(result, f.name) for f in fields(_Totals)}
        return RunTotals(values={f: tuple(getattr(r, f) for r in result.ops)
                                 for f in TOTALS_FIELDS}, **shared)
