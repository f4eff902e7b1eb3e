"""The arch file schema and its one validation boundary: raw YAML tree in, :class:`Arch` out.

Every problem is an :class:`~npusim.errors.ArchError` naming the file, the dotted field (and
its line when known) and the fix.
"""
from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..errors import ArchError
from ..ir import dtype as _dtype
from .model import (Arch, Cores, Dma, Dram, Engine, FrozenMap, Link, Noc, Pim, PimEnergy,
                    Power, Vector)
from .units import KINDS, UnitProblem, brief, parse_energy_per, parse_quantity

ENGINE_KINDS = ("systolic", "slice", "tensor_core", "cgra")
PIM_OPS = ("gemv", "attention", "elementwise")
"""What PIM units can be given: weight GEMV and small-batch GEMM, decode attention against
the KV cache (QK^T and PV), elementwise ops on tensors in DRAM."""
DATAFLOWS = ("os", "ws", "is", "slice")
FUSION_MODES = ("epilogue", "residual")
"""Which elementwise ops the engine fuses into the contraction before them (``fusion``)."""
# Keys of a later DRAM timing table; "generic" for a DRAM with no real part behind it.
DRAM_TYPES = ("ddr4", "ddr5", "lpddr5", "lpddr5x", "lpddr6", "gddr6", "gddr6x", "hbm2",
              "hbm2e", "hbm3", "hbm3e", "generic")


@dataclass(frozen=True)
class F:
    """One leaf field: how to read it, whether it must be present or may be null, the range of
    values that make physical sense, and what it means.

    ``lo``/``hi`` bound the value inclusively: quantity strings in the field's unit kind
    (``"1 MHz"``), plain numbers for counts and unitless numbers, ``None`` for no bound (text,
    choices, dtype maps). For ``dtype_rates`` they bound every entry. ``why`` says where the
    bounds come from: every range is generous, and an assumption unless it cites a source.
    """

    kind: str
    required: bool = True
    nullable: bool = False
    lo: str | float | None = None
    hi: str | float | None = None
    why: str = ""
    doc: str = ""
    choices: tuple[str, ...] = ()

    def bounds(self) -> tuple[float, float] | None:
        """``(lo, hi)`` in SI units (bytes, Hz, s...), or None for a field without a range."""
        if self.lo is None or self.hi is None:
            return None
        return _si_bound(self.lo, self.kind), _si_bound(self.hi, self.kind)

    def range_text(self) -> str:
        """The allowed range as people write it, e.g. ``'1 MHz .. 20 GHz'``."""
        return "" if self.lo is None else f"{_show(self.lo)} .. {_show(self.hi)}"


@dataclass(frozen=True)
class S:
    """A section: a mapping of named fields and sub-sections; ``nullable`` sections may be null."""

    fields: Mapping[str, "F | S"]
    nullable: bool = False
    doc: str = ""
    required: bool = True


def _show(bound: str | float) -> str:
    if isinstance(bound, str):
        return bound
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


# Kinds read by other schemas (the energy table's) whose bounds are written with units.
_PER = {"per_byte": "B", "per_bit": "bit"}
_AS_KIND = {"dtype_energy": "energy"}


@lru_cache(maxsize=256)
def _si_bound(bound: str | float, kind: str) -> float:
    if not isinstance(bound, str):
        return float(bound)
    if kind in _PER:
        return parse_energy_per(bound, _PER[kind])
    return parse_quantity(bound, _AS_KIND.get(kind, kind))


# The ranges below refuse physical nonsense (a 1e300 MiB DRAM row, a 1 B/s memory, a
# count past int64) before it reaches the kernels; they are deliberately generous, so a
# value outside one is a typo or a unit slip, never an exotic but real design. Unless a
# source is named, every bound is an assumption.
_CLOCK = "assumption: a 1 MHz microcontroller up to 3.5x the fastest shipping CPU clock (5.7 GHz)"
_BW = "assumption: a 1 MB/s microcontroller bus up to 125x an 8-stack HBM3E system (8 TB/s)"
_SIZE = "assumption: nothing on one chip up to 1 TiB of SRAM (a wafer-scale chip has 44 GB)"
_LAT = "assumption: 0 up to one second per hop or launch"
_POWER = "assumption: a milliwatt edge NPU up to a 100 kW wafer-scale system"
GEOMETRY_BASIS = ("assumption: DRAM parts have 1 to 8 bank groups of 2 to 16 banks (DDR4 to "
                  "HBM3E); the bound keeps the bank-level kernel's per-channel state small")

SCHEMA = S({
    "name": F("identifier", doc="Short name of the chip; shipped archs use it to find their "
                                "energy table and calibration (`archs/energy/<name>.yaml`)."),
    "description": F("text", doc="One line shown by `npusim archs`."),
    "clock": F("frequency", lo="1 MHz", hi="20 GHz", why=_CLOCK,
               doc="Core clock: cycles of the contraction engine, vector unit and SRAM."),
    "cores": S({
        "count": F("count", lo=1, hi=1e6, why="assumption: one core up to 1.1x a wafer-scale "
                   "chip (Cerebras WSE-3: 900,000 cores)",
                   doc="Identical cores on the chip (an SM on a GPU, a PE on RNGD)."),
        "engine": S({
            "kind": F("choice", choices=ENGINE_KINDS,
                      doc="How the contraction engine is timed: `systolic` and `slice` cycle "
                          "by cycle, `tensor_core` and `cgra` at a sustained throughput."),
            "units": F("count", lo=1, hi=65536, why="assumption: 1 to 1000x RNGD's 64 slices "
                       "per core", doc="Identical engine units per core (RNGD: 64 slices; an "
                       "H100 SM: 4 tensor cores)."),
            "rows": F("count", nullable=True, lo=1, hi=16384,
                      why="assumption: 64x the largest published array (TPU v1: 256 rows)",
                      doc="Rows of one unit in 16-bit MAC positions; null if unpublished."),
            "cols": F("count", nullable=True, lo=1, hi=16384,
                      why="assumption: 64x the largest published array (TPU v1: 256 columns)",
                      doc="Columns of one unit in 16-bit MAC positions; null if unpublished."),
            "dataflow": F("choice", nullable=True, choices=DATAFLOWS,
                          doc="What stays in place in the array: output (`os`), weight "
                              "(`ws`) or input (`is`) stationary, or RNGD's `slice`."),
            "macs_per_cycle": F("dtype_rates", lo=0.001, hi=1e8,
                                why="assumption: one MAC per 1000 cycles up to 1500x a "
                                    "256 x 256 array's 65,536 MACs per cycle",
                                doc="MACs per cycle of one core, per native dtype "
                                    "(`{bf16: 2048, fp8_e4m3: 4096}`); dtypes absent here "
                                    "need a `dtype_fallback`."),
            # sustained fraction of the MAC rate the best kernels reach (clock under the power
            # limit, issue overheads), measured or fitted with provenance; absent means 1. It
            # applies to throughput-modelled engines (tensor cores, CGRAs): systolic and slice
            # engines are timed cycle by cycle
            "efficiency": F("dtype_rates", required=False, lo=0.001, hi=1.0,
                            why="a fraction of the peak rate; below 0.1 % is a unit slip",
                            doc="Sustained fraction of the MAC rate per dtype, measured or "
                                "fitted (see the calibration file); absent means 1."),
        }, doc="The contraction engine of one core."),
        "vector": S({"ops_per_cycle": F(
            "number", lo=0.001, hi=1e7, why="assumption: one op per 1000 cycles up to 78,000x "
            "an H100 SM's 128 FP32 lanes", doc="fp32 element operations per cycle of one "
            "core's vector unit (softmax, norms, activations).")},
            doc="The vector unit of one core."),
        "sram": F("size", lo="0 B", hi="1 TiB", why=_SIZE,
                  doc="Local SRAM of one core (tiles are double-buffered in it)."),
        "sram_bandwidth": F("bytes per cycle", nullable=True, lo="1 B/cycle",
                            hi="1 MiB/cycle", why="assumption: one byte up to 128x RNGD's "
                            "8 KiB per cycle", doc="Bytes per cycle one core's SRAM delivers; "
                            "null if unpublished."),
        # where partial sums live outside the SRAM (registers, accumulator cells); optional
        "accumulator": F("size", required=False, nullable=True, lo="0 B", hi="1 TiB",
                         why=_SIZE, doc="Partial-sum storage outside the SRAM (registers, "
                         "accumulator cells); absent or null: sums live in SRAM."),
    }, doc="The cores: all identical."),
    "shared_sram": F("size", lo="0 B", hi="1 TiB", why=_SIZE,
                     doc="Chip-shared SRAM (a GPU's L2); 0 B if none."),
    "dram": S({
        "type": F("choice", choices=DRAM_TYPES,
                  doc="DRAM kind; picks the timing preset `archs/dram/<type>.yaml` "
                      "(`generic`: an ideal memory at full bandwidth)."),
        "capacity": F("size", lo="1 MB", hi="1000 TB", why="assumption: a 1 MB edge part up "
                      "to 7000x an H200's 141 GB", doc="DRAM capacity of one chip."),
        "bandwidth": F("bandwidth", lo="1 MB/s", hi="1000 TB/s", why=_BW,
                       doc="Peak DRAM bandwidth of one chip (all channels)."),
        "channels": F("count", nullable=True, lo=1, hi=2048,
                      why="assumption: 4x the 512 pseudo-channels of eight HBM4 stacks; the "
                          "bound keeps the bank-level kernel's state small",
                      doc="Independent channels; null: bandwidth / the preset's channel "
                          "bandwidth."),
        "bank_groups": F("count", nullable=True, lo=1, hi=16, why=GEOMETRY_BASIS,
                         doc="Bank groups per channel; null: the preset's."),
        "banks_per_group": F("count", nullable=True, lo=1, hi=16, why=GEOMETRY_BASIS,
                             doc="Banks per bank group; null: the preset's."),
        "row_size": F("size", nullable=True, lo="1 B", hi="1 MiB",
                      why="assumption: DRAM pages are 0.5 to 16 KiB; 64x headroom",
                      doc="Bytes of one row (page) of one bank; a whole number of bursts; "
                          "null: the preset's."),
        "burst": F("size", nullable=True, lo="1 B", hi="64 KiB",
                   why="assumption: bursts are 32 to 128 B; 512x headroom",
                   doc="Payload bytes of one burst; null: the preset's."),
    }, doc="Off-chip memory. Geometry fields left null come from the timing preset."),
    "noc": S({"bandwidth": F("bandwidth", nullable=True, lo="1 MB/s", hi="1000 PB/s",
                             why="assumption: up to 37x a wafer-scale fabric (Cerebras "
                                 "WSE-3: 214 Pb/s)",
                             doc="Aggregate on-chip network bandwidth; null if unpublished.")},
             doc="On-chip network."),
    "dma": S({
        "engines": F("count", nullable=True, lo=1, hi=1e6, why="assumption: at most one "
                     "per core of the largest chip", doc="Tensor DMA engines; null if "
                     "unpublished."),
        "bytes_per_cycle": F("number", nullable=True, lo=0.001, hi=1048576,
                             why="assumption: up to 1 MiB per cycle per engine",
                             doc="Bytes per cycle of one DMA engine; null if unpublished."),
        "startup_cycles": F("number", nullable=True, lo=0, hi=1e9,
                            why="assumption: up to one second at 1 GHz",
                            doc="Fixed cycles per DMA command; null if unpublished."),
    }, doc="Tensor DMA."),
    "link": S({
        "kind": F("identifier", doc="Link technology, one word (`nvlink4`, `pcie5`, "
                                    "`generic`)."),
        "bandwidth": F("bandwidth", lo="1 MB/s", hi="1000 TB/s", why=_BW,
                       doc="Bytes per second per direction per chip."),
        "latency": F("time", nullable=True, lo="0 s", hi="1 s", why=_LAT,
                     doc="Seconds per hop of a collective (the low-latency protocol when "
                         "`bulk_latency` is set); null: 0."),
        # per-hop latency of the full-bandwidth protocol; absent: one protocol (latency)
        "bulk_latency": F("time", required=False, nullable=True, lo="0 s", hi="1 s",
                          why=_LAT, doc="Seconds per hop of the full-bandwidth protocol; "
                          "absent or null: one protocol."),
    }, nullable=True, doc="Chip-to-chip link; null for a chip that never works with others "
                          "(then a system of more than one chip is refused)."),
    "power": S({
        "tdp": F("power", nullable=True, lo="1 mW", hi="100 kW", why=_POWER,
                 doc="Thermal design power; the engine slows ops down to stay under it. "
                     "Must exceed `power.idle` and the energy table's `static`. Null: no cap."),
        "idle": F("power", nullable=True, lo="0 W", hi="100 kW", why=_POWER,
                  doc="Idle power: board power with the chip on and nothing loaded (a "
                      "published board reading, e.g. nvidia-smi with no process); the one idle "
                      "figure (`idle_power_w` rows). Below `power.tdp`, at most the energy "
                      "table's `loaded_floor`. Null if unpublished."),
        "cap": F("power", required=False, nullable=True, lo="1 mW", hi="100 kW", why=_POWER,
                 doc="A configured power limit below the TDP (MLPerf MaxQ runs cap H100/H200 "
                     "at 350-500 W with nvidia-smi -pl); the engine holds the chip to the "
                     "lower of the two, lowering its clock (and voltage, per the energy "
                     "table's `dvfs_exponent`). Absent or null: the TDP alone."),
    }, doc="Board power."),
    "dtype_fallback": F("dtype_map", doc="Dtype the engine runs a non-native dtype in "
                                         "(`{fp32: bf16}`); targets must be native."),
    # Fixed cost per op (kernel launch, command issue); optional, absent means 0.
    "launch_overhead": F("time", required=False, lo="0 s", hi="1 s", why=_LAT,
                         doc="Fixed cost per op (kernel launch, command issue); absent: 0."),
    # Fixed cost per serving iteration (scheduler, sampling, host work); optional, absent 0.
    "step_overhead": F("time", required=False, lo="0 s", hi="10 s",
                       why="assumption: up to ten seconds of host work per serving step",
                       doc="Fixed cost per serving iteration (scheduler, sampling, host); "
                           "absent: 0."),
    # Fixed cost per op when a serving step replays its kernels from a captured graph (CUDA
    # graphs); optional, absent or null means launch_overhead.
    "graph_launch_overhead": F("time", required=False, nullable=True, lo="0 s", hi="1 s",
                               why=_LAT, doc="Fixed cost per op replayed from a captured "
                               "graph (CUDA graphs) in serving; absent or null: "
                               "`launch_overhead`."),
    # Which elementwise ops the compiler fuses into the contraction before them; optional,
    # absent or null means "epilogue" (what the engine did before the field existed)
    "fusion": F("choice", required=False, nullable=True, choices=FUSION_MODES,
                doc="Elementwise ops the compiler fuses into the contraction before them "
                    "(run in its epilogue, overlapping its work, no launch of their own): "
                    "`epilogue`, one whose only activation input is that contraction's output, "
                    "read by nobody else (bias, activation and chains of them); `residual`, "
                    "also one whose other activation inputs were produced before that "
                    "contraction (the residual adds of ResNet and transformers), read by the "
                    "epilogue from where they live. Absent or null: `epilogue`."),
    "pim": S({
        "device": F("identifier", doc="The PIM part (`hbm2-pim`, `gddr6-aim`, ...), for "
                    "reports."),
        "enabled": F("flag", doc="`false`: the same memory without its units (plain DRAM), "
                     "for a with/without comparison."),
        "banks_per_unit": F("count", lo=1, hi=16, why=GEOMETRY_BASIS,
                            doc="Banks sharing one processing unit (1; 2 for HBM2-PIM); must "
                                "divide the banks per channel."),
        "clock": F("frequency", lo="1 MHz", hi="20 GHz", why=_CLOCK,
                   doc="Clock of the processing units."),
        "macs_per_cycle": F("dtype_rates", lo=1, hi=65536,
                            why="assumption: 1 MAC up to 64x a 64-B burst of int4 per cycle",
                            doc="MACs per unit per unit-clock cycle, by native dtype."),
        "column_interval": F("time", nullable=True, lo="10 ps", hi="1 us",
                             why="assumption: DRAM column commands are 1 to 10 ns apart; "
                                 "100x margin either side",
                             doc="Time between all-bank column (MAC) commands; null: the "
                                 "DRAM's tCCD_L."),
        "input_buffer": F("size", lo="1 B", hi="64 MiB",
                          why="assumption: 256 B of GRF up to 32000x a 2 KB global buffer",
                          doc="Bytes of input vector(s) one channel's units hold at once, "
                              "refilled by broadcast over the external bus."),
        "accumulators": F("count", lo=1, hi=65536,
                          why="assumption: 1 up to far above HBM2-PIM's 8 GRF_B registers",
                          doc="Output rows one unit accumulates at once before read-out."),
        "accumulator_bytes": F("size", lo="1 B", hi="1 KiB",
                               why="assumption: an int8 result up to 32 lanes of 256-bit "
                                   "partial sums",
                               doc="Bytes read out per output row: its lanes' partial sums, "
                                   "which the host adds (HBM2-PIM: one 16-lane GRF_B entry, "
                                   "32 B), or one result where the unit reduces them itself."),
        "vectors_per_pass": F("count", lo=1, hi=4096,
                              why="assumption: 1 up to a 4096-wide batch",
                              doc="Input vectors a unit applies to each weight burst; a batch "
                                  "of B vectors costs ceil(B / this) passes."),
        "all_bank_act": F("flag", doc="`true`: one all-bank ACT opens every bank at once "
                          "(exempt from tRRD/tFAW); `false`: the banks' ACTs obey them."),
        "mode_switch": F("time", lo="0 s", hi="1 ms",
                         why="assumption: 0 up to 10,000x a few writes to reserved rows",
                         doc="Time of one switch between normal and PIM mode (each way)."),
        "ops": F("choices", choices=PIM_OPS, doc="What the units can run."),
        "dual_row_buffer": F("flag", doc="NeuPIMs' dual row buffer: host and PIM accesses "
                             "do not conflict (no mode switches; a PIM op may overlap host "
                             "work it does not depend on)."),
        "energy": S({
            "mac": F("dtype_energy", lo="0 J", hi="1 nJ",
                     why="assumption: 0 up to 200x Horowitz's 45 nm fp32 multiply-add",
                     doc="Energy per MAC in a unit, by dtype (every dtype of "
                         "`macs_per_cycle`)."),
            "column": F("per_byte", lo="0 J/B", hi="1 nJ/B",
                        why="assumption: 0 up to 35x FGDRAM's whole 3.59 pJ/bit HBM2 access",
                        doc="Energy per byte a unit reads from or writes to its open row "
                            "(array and bank-local wires; no external I/O)."),
            "unit_static": F("power", lo="0 W", hi="100 kW", why=_POWER,
                             doc="Static power of all the units while powered; 0 if not "
                                 "known."),
        }, doc="What the units' actions cost; activations and external-bus bits cost "
               "what the arch's energy table says for its DRAM."),
    }, nullable=True, required=False,
        doc="Processing units inside the DRAM (PIM); absent or null: none. In a file, "
            "`pim: <arch>` takes the section of that shipped arch; `--arch A+B` composes A "
            "with B's units, `A+none` removes them."),
}, doc="An arch file.")


class FieldProblem(Exception):
    """A field-level problem; the caller adds file and field."""


_Problem = FieldProblem


def lookup(path: tuple[str, ...], root: S | None = None) -> F | S | None:
    """The schema entry at a dotted path (None if unknown); entries inside dtype maps are F.

    ``root`` is the schema to walk (default the arch's; a spiking-core device passes its own)."""
    node: F | S = SCHEMA if root is None else root
    for i, part in enumerate(path):
        if isinstance(node, F):
            return node if node.kind in ("dtype_rates", "dtype_map", "dtype_energy") \
                and i == len(path) - 1 \
                else None
        if part not in node.fields:
            return None
        node = node.fields[part]
    return node


def iter_fields(node: S = SCHEMA, prefix: str = ""):
    """Yield ``(dotted name, entry)`` for every section and field under ``node``, depth first
    in file order (sections before their fields): what the reference and the tests walk."""
    for name, sub in node.fields.items():
        dotted = f"{prefix}{name}"
        yield dotted, sub
        if isinstance(sub, S):
            yield from iter_fields(sub, dotted + ".")


def valid_keys(path: tuple[str, ...], root: S | None = None) -> list[str]:
    """Field names allowed under the section at ``path`` of ``root`` (default the arch's
    schema); empty if it is not a section."""
    node = lookup(path, root)
    return sorted(node.fields) if isinstance(node, S) else []


@lru_cache(maxsize=1)
def si_units() -> dict[str, str]:
    """Map each dotted field that carries a unit to its SI unit (for written results)."""
    out: dict[str, str] = {}

    def walk(node: S, prefix: str) -> None:
        for name, sub in node.fields.items():
            dotted = f"{prefix}{name}"
            if isinstance(sub, S):
                walk(sub, dotted + ".")
            elif sub.kind in KINDS:
                out[dotted] = KINDS[sub.kind].si
    walk(SCHEMA, "")
    out["cores.engine.macs_per_cycle"] = "MAC/cycle per core"
    out["cores.vector.ops_per_cycle"] = "fp32 element op/cycle per core"
    out["dma.bytes_per_cycle"] = "B/cycle per engine"
    out["dma.startup_cycles"] = "cycle"
    out["pim.macs_per_cycle"] = "MAC/cycle per unit"
    out["pim.energy.mac"] = "J per MAC"
    out["pim.energy.column"] = "J/B"
    # energy-table fields reachable with --set energy.<field>= (npusim.energy.table), so a
    # fitted value is written with its unit; only the power-typed ones have one that a
    # plain number is read in
    for name in ("static", "loaded_floor"):
        out[f"energy.{name}"] = "W"
    out["energy.operand_delivery"] = "J/bit"
    return out


def did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(str(word), options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _line(tree: Any, key: str) -> str:
    lines = getattr(tree, "lines", None)
    if not lines or key not in lines:
        return ""
    where = lines[key]
    return f" (line {where})" if isinstance(where, int) else f" (from {where})"


def _finite(x: int | float) -> bool:
    """Whether a YAML number is finite; an int is, however large (float() of it may not be)."""
    return isinstance(x, int) or math.isfinite(x)


def _as_float(x: int | float) -> float:
    """``x`` as a float, an int too large for one becoming +-inf (a range then refuses it)."""
    try:
        return float(x)
    except OverflowError:
        return math.copysign(math.inf, x)


def check_range(x: float, spec: F, raw: Any = None) -> float:
    """Return ``x`` if it lies in ``spec``'s range, else raise a problem saying the value, the
    allowed range, where the range comes from and the fix.

    ``raw`` is the value as written (``'1e300 MiB'``), shown beside its SI value.
    """
    bounds = spec.bounds()
    if bounds is None:
        return x
    lo, hi = bounds
    if lo <= x <= hi:
        return x
    if x <= 0 < lo:
        what = "must be greater than 0"
    elif x < 0 <= lo:
        what = "must not be negative"
    elif x < lo:
        what = "is below the smallest value that makes physical sense"
    else:
        what = "is above the largest value that makes physical sense"
    unit = KINDS[_AS_KIND.get(spec.kind, spec.kind)].si if _AS_KIND.get(spec.kind, spec.kind) \
        in KINDS else {"per_byte": "J/B", "per_bit": "J/bit"}.get(spec.kind, "")
    shown = f"{brief(raw)} (= {x:.4g} {unit})" if isinstance(raw, str) and unit else \
        f"{x:.6g}" if raw is None or isinstance(raw, float) else brief(raw)
    raise _Problem(f"{shown} {what}: the allowed range is {spec.range_text()} ({spec.why}); "
                   f"give a value in that range")


_PLAIN = re.compile(r"^[+-]?(?:\d{1,30}(?:\.\d{0,30})?|\.\d{1,30})(?:[eE][+-]?\d{1,4})?$")


def _read_leaf(value: Any, spec: F) -> Any:
    k = spec.kind
    if k in ("identifier", "text"):
        if not isinstance(value, str) or not value.strip():
            raise _Problem(f"{brief(value)} must be a non-empty string")
        if k == "identifier" and (any(c.isspace() for c in value) or "/" in value):
            raise _Problem(f"{brief(value)} must be one word without spaces or '/'")
        return value.strip()
    if k == "choice":
        if not isinstance(value, str) or value not in spec.choices:
            raise _Problem(f"{brief(value)} is not one of {', '.join(spec.choices)}"
                           f"{did_you_mean(value, list(spec.choices))}")
        return value
    if k in ("count", "number") and isinstance(value, str) and _PLAIN.match(value.strip()):
        # YAML 1.1 reads '1e9' (no dot) as text; a plain number written so is still a number
        value = float(value.strip())
    if k in ("count", "number") and isinstance(value, float) and not math.isfinite(value):
        whole = "whole " if k == "count" else ""
        raise _Problem(f"{value!r} is not a finite number; give a {whole}number in the range "
                       f"{spec.range_text()}")
    if k == "count":
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not _finite(value) or value != int(value):
            raise _Problem(f"{brief(value)} must be a whole number (a count, no unit)")
        check_range(_as_float(value), spec, value)
        return int(value)
    if k == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not _finite(value):
            raise _Problem(f"{brief(value)} must be a plain number (no unit)")
        return check_range(_as_float(value), spec, value)
    if k in KINDS:
        try:
            return check_range(parse_quantity(value, k), spec, value)
        except UnitProblem as exc:
            raise _Problem(str(exc)) from None
    if k == "dtype_rates":
        entry = F("number", lo=spec.lo, hi=spec.hi, why=spec.why)
        return _read_dtype_map(value, lambda v: _read_leaf(v, entry), "MACs per cycle")
    if k == "dtype_map":
        return _read_dtype_map(value, _dtype_name, "a dtype name")
    if k == "dtype_energy":
        entry = F("energy", lo=spec.lo, hi=spec.hi, why=spec.why)
        return _read_dtype_map(value, lambda v: _read_leaf(v, entry), "energy per MAC")
    if k == "per_byte":
        try:
            return check_range(parse_energy_per(value, "B"), spec, value)
        except UnitProblem as exc:
            raise _Problem(str(exc)) from None
    if k == "flag":
        if not isinstance(value, bool):
            raise _Problem(f"{brief(value)} must be true or false")
        return value
    if k == "choices":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) for x in items):
            raise _Problem(f"{brief(value)} must be a list of {', '.join(spec.choices)}")
        for x in items:
            if x not in spec.choices:
                raise _Problem(f"{x!r} is not one of {', '.join(spec.choices)}"
                               f"{did_you_mean(x, list(spec.choices))}")
        return tuple(dict.fromkeys(items))
    raise AssertionError(f"schema kind {k!r}")


def _dtype_name(value: Any) -> str:
    if not isinstance(value, str):
        raise _Problem(f"{value!r} is not a dtype name")
    try:
        return _dtype(value).name
    except ValueError as exc:
        raise _Problem(str(exc)) from None


def _read_dtype_map(value: Any, read, what: str) -> FrozenMap:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise _Problem(f"must be a mapping of dtype name to {what}, e.g. {{bf16: ...}}")
    out: dict[str, Any] = {}
    for key, v in value.items():
        name = _dtype_name(key)
        if name in out:
            raise _Problem(f"dtype {key!r} is given twice (as {name})")
        try:
            out[name] = read(v)
        except _Problem as exc:
            raise _Problem(f"entry {key!r}: {exc}") from None
    return FrozenMap(out)


def _read_section(tree: Any, spec: S, path: str, label: str) -> dict | None:
    where = path.rstrip(".") or "the top level"
    if tree is None and spec.nullable:
        return None
    if not isinstance(tree, Mapping):
        raise ArchError(f"{label}: {where}: expected a mapping of fields "
                        f"({', '.join(spec.fields)}), got {brief(tree)}; fix that section")
    for key in tree:
        if key not in spec.fields:
            raise ArchError(
                f"{label}: {path}{key}{_line(tree, key)}: unknown field"
                f"{did_you_mean(key, list(spec.fields))}; valid fields in {where}: "
                f"{', '.join(spec.fields)}")
    out: dict[str, Any] = {}
    for name, sub in spec.fields.items():
        dotted = f"{path}{name}"
        if name not in tree:
            if not sub.required:
                out[name] = None
                continue
            hint = " (write null if the value is not published)" if \
                getattr(sub, "nullable", False) else ""
            raise ArchError(f"{label}: {dotted}: missing required field in {where}; "
                            f"add it{hint}")
        value = tree[name]
        if isinstance(sub, S):
            out[name] = _read_section(value, sub, dotted + ".", label)
            continue
        if value is None and sub.nullable:
            out[name] = None
            continue
        if value is None and sub.kind not in ("dtype_rates", "dtype_map"):
            raise ArchError(f"{label}: {dotted}{_line(tree, name)}: is empty (null) but "
                            f"required; give a value")
        try:
            out[name] = _read_leaf(value, sub)
        except _Problem as exc:
            raise ArchError(f"{label}: {dotted}{_line(tree, name)}: {exc}") from None
    return out


def without(tree: Mapping, keys: tuple[str, ...]) -> Mapping:
    """``tree`` without ``keys``, keeping the YAML loader's line numbers."""
    rest = {k: v for k, v in tree.items() if k not in keys}
    if hasattr(tree, "lines"):
        rest = type(tree)(rest)
        rest.lines = tree.lines
    return rest


def read_described(tree: Any, spec: S, own: tuple[str, ...], required: tuple[str, ...],
                   label: str, what: str, start: str) -> dict:
    """Validate a description file's top level against ``spec``, leaving out the keys in
    ``own`` that the caller reads itself (``required`` of them must be present); an unknown
    field's message lists those keys among the valid ones. Line numbers are kept.

    A top level that is not a mapping is refused as ``what`` (``"a DRAM timing preset"``),
    naming its fields and the shipped file ``start`` to begin from."""
    if not isinstance(tree, Mapping):
        names = ", ".join(dict.fromkeys((*spec.fields, *own)))
        raise ArchError(f"{label}: {what} must be a mapping of fields ({names}); start from "
                        f"{start}")
    for key in required:
        if key not in tree:
            raise ArchError(f"{label}: {key}: missing required field at the top level; add it")
    try:
        return _read_section(without(tree, own), spec, "", label)
    except ArchError as exc:
        if "unknown field" in str(exc):
            raise ArchError(str(exc).replace("valid fields in the top level: ",
                                             f"valid fields in the top level: "
                                             f"{', '.join(own)}, ")) from None
        raise


def read_sources(tree: Mapping, label: str, example: str) -> FrozenMap:
    """A description file's ``sources``: a non-empty mapping of source ID to reference."""
    sources = tree["sources"]
    if not isinstance(sources, Mapping) or not sources or not all(
            isinstance(k, str) and isinstance(x, str) and x.strip() for k, x in sources.items()):
        raise ArchError(f"{label}: sources{_line(tree, 'sources')}: must be a non-empty mapping "
                        f"of source ID to reference, e.g. {example}")
    return FrozenMap({str(k): str(x) for k, x in sources.items()})


def build(tree: Any, label: str, overrides: tuple[str, ...] = ()) -> Arch:
    """Validate a raw arch tree and build the :class:`Arch`.

    Parameters
    ----------
    tree : Any
        What the YAML loader returned, with overrides already applied.
    label : str
        The file (or shipped name) to name in error messages.
    overrides : tuple of str
        The overrides applied, recorded in the Arch for reproducibility.

    Raises
    ------
    ArchError
        Naming ``label`` and the dotted field at fault, with the fix.
    """
    v = _read_section(tree, SCHEMA, "", label)
    c, e = v["cores"], v["cores"]["engine"]
    arch = Arch(
        name=v["name"], description=v["description"], clock=v["clock"],
        cores=Cores(count=c["count"], engine=Engine(**{**e, "efficiency": e["efficiency"] or FrozenMap()}), vector=Vector(**c["vector"]),
                    sram=c["sram"], sram_bandwidth=c["sram_bandwidth"],
                    accumulator=c["accumulator"]),
        shared_sram=v["shared_sram"], dram=Dram(**v["dram"]), noc=Noc(**v["noc"]),
        dma=Dma(**v["dma"]), link=Link(**v["link"]) if v["link"] is not None else None,
        power=Power(**v["power"]), dtype_fallback=v["dtype_fallback"],
        launch_overhead=v["launch_overhead"] or 0.0,
        step_overhead=v["step_overhead"] or 0.0,
        graph_launch_overhead=v["graph_launch_overhead"],
        fusion=v["fusion"] or "epilogue", pim=_pim(v["pim"]), source=label,
        overrides=tuple(overrides))
    _cross_check(arch, label)
    return arch


def _pim(v: dict | None) -> Pim | None:
    if v is None:
        return None
    e = v["energy"]
    return Pim(**{**v, "energy": PimEnergy(mac=e["mac"], column=e["column"],
                                           unit_static=e["unit_static"])})


def _cross_check_pim(arch: Arch, label: str) -> None:
    p = arch.pim
    if p is None:
        return
    if not p.macs_per_cycle:
        raise ArchError(f"{label}: pim.macs_per_cycle: is empty; give the MACs per cycle of "
                        f"one unit for each dtype it runs natively, e.g. {{fp16: 16}}")
    for name in p.macs_per_cycle:
        if name not in p.energy.mac:
            raise ArchError(f"{label}: pim.energy.mac: has no energy for {name}, which "
                            f"pim.macs_per_cycle runs; add '{name}: <pJ>' (or an assumption)")
    for name in p.energy.mac:
        if name not in p.macs_per_cycle:
            raise ArchError(f"{label}: pim.energy.mac.{name}: {name} has no rate in "
                            f"pim.macs_per_cycle; remove it or give the units that dtype")
    if not p.ops:
        raise ArchError(f"{label}: pim.ops: is empty; list what the units run ("
                        f"{', '.join(PIM_OPS)}) or remove the pim section")
    banks = [arch.dram.bank_groups, arch.dram.banks_per_group]
    if None in banks:           # null in the arch: the DRAM timing preset's, as dram_setup has it
        from .dram_timing import has_preset, load_dram_timing  # that module imports this one
        if has_preset(arch.dram.type):
            t = load_dram_timing(arch.dram.type)
            banks = [b if b is not None else d
                     for b, d in zip(banks, (t.bank_groups, t.banks_per_group))]
    if None not in banks and (banks[0] * banks[1]) % p.banks_per_unit:
        raise ArchError(f"{label}: pim.banks_per_unit: {p.banks_per_unit} does not divide the "
                        f"{banks[0] * banks[1]} banks per channel (dram.bank_groups x "
                        f"dram.banks_per_group); every unit needs its own banks")
    if arch.dram.type == "generic":
        raise ArchError(f"{label}: pim: needs a real DRAM (dram.type with a timing preset in "
                        f"npusim/archs/dram/), not 'generic': PIM timing is the DRAM's")


def _cross_check(arch: Arch, label: str) -> None:
    _cross_check_pim(arch, label)
    eng = arch.cores.engine
    rates = eng.macs_per_cycle
    if not rates:
        raise ArchError(f"{label}: cores.engine.macs_per_cycle: is empty; give at least one "
                        f"dtype's MACs per cycle per core, e.g. {{bf16: 256}}")
    for src, dst in arch.dtype_fallback.items():
        if src in rates:
            raise ArchError(
                f"{label}: dtype_fallback.{src}: {src} has its own MAC rate in "
                f"cores.engine.macs_per_cycle, so a fallback is contradictory; remove one")
        if dst not in rates:
            raise ArchError(
                f"{label}: dtype_fallback.{src}: target {dst} has no MAC rate; a fallback "
                f"must name a native dtype ({', '.join(rates)})")
    if eng.rows is not None and eng.cols is not None:
        sixteen = next((rates[d] for d in ("bf16", "fp16") if d in rates), None)
        expect = eng.units * eng.rows * eng.cols
        if sixteen is not None and sixteen != expect:
            raise ArchError(
                f"{label}: cores.engine.macs_per_cycle: the 16-bit rate {sixteen:g} disagrees "
                f"with units x rows x cols = {eng.units} x {eng.rows} x {eng.cols} = "
                f"{expect}; change the shape and the MAC rates together")
    for name, frac in eng.efficiency.items():
        if not 0.0 < frac <= 1.0:
            raise ArchError(f"{label}: cores.engine.efficiency.{name}: {frac:g} is not a "
                            f"fraction in (0, 1]; it scales the peak MAC rate")
        if name not in rates:
            raise ArchError(f"{label}: cores.engine.efficiency.{name}: {name} has no MAC rate "
                            f"in cores.engine.macs_per_cycle; an efficiency needs one")
    p = arch.power
    if p.tdp is not None and p.idle is not None and p.idle >= p.tdp:
        what = "exceeds" if p.idle > p.tdp else "equals"
        raise ArchError(f"{label}: power.idle: {p.idle:g} W {what} power.tdp {p.tdp:g} W; a "
                        f"chip under its TDP must have power to spare above idle, so the TDP "
                        f"must be higher; fix one of them")
    d = arch.dram
    if d.row_size is not None and d.burst is not None and (
            d.row_size < d.burst or d.row_size % d.burst):
        raise ArchError(f"{label}: dram.row_size: {d.row_size:g} B is not a whole number of "
                        f"{d.burst:g}-B bursts (dram.burst); fix dram.row_size or dram.burst")
