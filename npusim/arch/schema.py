"""The arch file schema and its one validation boundary: raw YAML tree in, :class:`Arch` out.

Every problem is an :class:`~npusim.errors.ArchError` naming the file, the dotted field (and
its line when known) and the fix.
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..errors import ArchError
from ..ir import dtype as _dtype
from .model import Arch, Cores, Dma, Dram, Engine, FrozenMap, Link, Noc, Power, Vector
from .units import KINDS, UnitProblem, parse_quantity

ENGINE_KINDS = ("systolic", "slice", "tensor_core", "cgra")
DATAFLOWS = ("os", "ws", "is", "slice")
# Keys of a later DRAM timing table; "generic" for a DRAM with no real part behind it.
DRAM_TYPES = ("ddr4", "ddr5", "lpddr5", "lpddr5x", "lpddr6", "gddr6", "gddr6x", "hbm2",
              "hbm2e", "hbm3", "hbm3e", "generic")


@dataclass(frozen=True)
class F:
    """One leaf field: how to read it, whether it must be present, may be null, its bound."""

    kind: str
    required: bool = True
    nullable: bool = False
    minimum: str = "positive"  # "positive" (> 0) or "nonnegative" (>= 0)
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class S:
    """A section: a mapping of named fields and sub-sections; ``nullable`` sections may be null."""

    fields: Mapping[str, "F | S"]
    nullable: bool = False


SCHEMA = S({
    "name": F("identifier"),
    "description": F("text"),
    "clock": F("frequency"),
    "cores": S({
        "count": F("count"),
        "engine": S({
            "kind": F("choice", choices=ENGINE_KINDS),
            "units": F("count"),
            "rows": F("count", nullable=True),
            "cols": F("count", nullable=True),
            "dataflow": F("choice", nullable=True, choices=DATAFLOWS),
            "macs_per_cycle": F("dtype_rates"),
            # sustained fraction of the MAC rate the best kernels reach (clock under the power
            # limit, issue overheads), measured or fitted with provenance; absent means 1. It
            # applies to throughput-modelled engines (tensor cores, CGRAs): systolic and slice
            # engines are timed cycle by cycle
            "efficiency": F("dtype_rates", required=False),
        }),
        "vector": S({"ops_per_cycle": F("number")}),
        "sram": F("size", minimum="nonnegative"),
        "sram_bandwidth": F("bytes per cycle", nullable=True),
        # where partial sums live outside the SRAM (registers, accumulator cells); optional
        "accumulator": F("size", required=False, nullable=True),
    }),
    "shared_sram": F("size", minimum="nonnegative"),
    "dram": S({
        "type": F("choice", choices=DRAM_TYPES),
        "capacity": F("size"),
        "bandwidth": F("bandwidth"),
        "channels": F("count", nullable=True),
        "bank_groups": F("count", nullable=True),
        "banks_per_group": F("count", nullable=True),
        "row_size": F("size", nullable=True),
        "burst": F("size", nullable=True),
    }),
    "noc": S({"bandwidth": F("bandwidth", nullable=True)}),
    "dma": S({
        "engines": F("count", nullable=True),
        "bytes_per_cycle": F("number", nullable=True),
        "startup_cycles": F("number", nullable=True, minimum="nonnegative"),
    }),
    "link": S({
        "kind": F("identifier"),
        "bandwidth": F("bandwidth"),
        "latency": F("time", nullable=True, minimum="nonnegative"),
        # per-hop latency of the full-bandwidth protocol; absent: one protocol (latency)
        "bulk_latency": F("time", required=False, nullable=True, minimum="nonnegative"),
    }, nullable=True),
    "power": S({
        "tdp": F("power", nullable=True),
        "idle": F("power", nullable=True, minimum="nonnegative"),
    }),
    "dtype_fallback": F("dtype_map"),
    # Fixed cost per op (kernel launch, command issue); optional, absent means 0.
    "launch_overhead": F("time", required=False, minimum="nonnegative"),
    # Fixed cost per serving iteration (scheduler, sampling, host work); optional, absent 0.
    "step_overhead": F("time", required=False, minimum="nonnegative"),
    # Fixed cost per op when a serving step replays its kernels from a captured graph (CUDA
    # graphs); optional, absent or null means launch_overhead.
    "graph_launch_overhead": F("time", required=False, nullable=True, minimum="nonnegative"),
})


class _Problem(Exception):
    """A field-level problem; the caller adds file and field."""


def lookup(path: tuple[str, ...]) -> F | S | None:
    """The schema entry at a dotted path (None if unknown); entries inside dtype maps are F."""
    node: F | S = SCHEMA
    for i, part in enumerate(path):
        if isinstance(node, F):
            return node if node.kind in ("dtype_rates", "dtype_map") and i == len(path) - 1 \
                else None
        if part not in node.fields:
            return None
        node = node.fields[part]
    return node


def valid_keys(path: tuple[str, ...]) -> list[str]:
    """Field names allowed under the section at ``path`` (empty if it is not a section)."""
    node = lookup(path)
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


def _check_bound(x: float, spec: F) -> float:
    if spec.minimum == "positive" and not x > 0:
        raise _Problem(f"{x!r} must be greater than 0")
    if spec.minimum == "nonnegative" and not x >= 0:
        raise _Problem(f"{x!r} must not be negative")
    return x


def _read_leaf(value: Any, spec: F) -> Any:
    k = spec.kind
    if k in ("identifier", "text"):
        if not isinstance(value, str) or not value.strip():
            raise _Problem(f"{value!r} must be a non-empty string")
        if k == "identifier" and (any(c.isspace() for c in value) or "/" in value):
            raise _Problem(f"{value!r} must be one word without spaces or '/'")
        return value.strip()
    if k == "choice":
        if not isinstance(value, str) or value not in spec.choices:
            raise _Problem(f"{value!r} is not one of {', '.join(spec.choices)}"
                           f"{did_you_mean(value, list(spec.choices))}")
        return value
    if k == "count":
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value != int(value):
            raise _Problem(f"{value!r} must be a whole number (a count, no unit)")
        return int(_check_bound(int(value), spec))
    if k == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise _Problem(f"{value!r} must be a plain number (no unit)")
        return float(_check_bound(float(value), spec))
    if k in KINDS:
        try:
            return _check_bound(parse_quantity(value, k), spec)
        except UnitProblem as exc:
            raise _Problem(str(exc)) from None
    if k == "dtype_rates":
        return _read_dtype_map(value, lambda v: _read_leaf(v, F("number")), "MACs per cycle")
    if k == "dtype_map":
        return _read_dtype_map(value, _dtype_name, "a dtype name")
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
                        f"({', '.join(spec.fields)}), got {tree!r}; fix that section")
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
            if isinstance(sub, F) and not sub.required:
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
        graph_launch_overhead=v["graph_launch_overhead"], source=label,
        overrides=tuple(overrides))
    _cross_check(arch, label)
    return arch


def _cross_check(arch: Arch, label: str) -> None:
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
    if p.tdp is not None and p.idle is not None and p.idle > p.tdp:
        raise ArchError(f"{label}: power.idle: {p.idle:g} W exceeds power.tdp {p.tdp:g} W; "
                        f"fix one of them")
