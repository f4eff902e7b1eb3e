"""DRAM timing presets (``npusim/archs/dram/<type>.yaml``): loaded, validated, frozen.

A preset describes one channel of one DRAM type: its interface (command clock, per-pin rate,
bus width, burst length), its geometry (bank groups, banks, row size, channel interleave unit)
and its timing parameters. A timing is written either as a time (``14 ns``), a property of the
DRAM array that does not change with the interface speed, or in command-clock cycles
(``4 nCK``), an interface timing that scales with the clock when an arch runs the channel
faster or slower than the preset (see :meth:`DramTiming.timings_at`).

The arch's ``dram.type`` picks the preset; the arch's channel count and bandwidth scale it
(:mod:`npusim.engine.dram`). Validation reuses the arch schema's machinery, so every problem
is one :class:`~npusim.errors.ArchError` naming the file, the field and the fix.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArchError
from .loader import preset_loader, preset_names
from .model import FrozenMap
from .schema import (GEOMETRY_BASIS, F, FieldProblem, S, _line, check_range, did_you_mean,
                     read_described, read_sources)
from .units import UnitProblem, parse_quantity

TIMINGS = ("tCCD_S", "tCCD_L", "tRCD", "tRP", "tRAS", "tRC", "tCL", "tWL", "tRRD_S", "tRRD_L",
           "tFAW", "tRTP", "tWR", "tWTR_S", "tWTR_L", "tRTW", "tREFI", "tRFC")
"""Timing fields every preset gives (tBURST is derived: burst length / pin rate)."""

# The timing section and the sources are read here; the rest through the arch schema.
# Ranges as generous as the arch schema's (assumptions; see npusim.arch.schema).
SCHEMA = S({
    "name": F("identifier", doc="The DRAM type this preset describes (the file's stem)."),
    "description": F("text", doc="One line: the part and the channel it describes."),
    "clock": F("frequency", lo="1 MHz", hi="20 GHz",
               why="assumption: as the arch clock's range",
               doc="Command clock that `nCK` timings count."),
    "pin_rate": F("bandwidth", lo="1 Mb/s", hi="1 Tb/s",
                  why="assumption: up to 30x GDDR7's 32 Gb/s per pin",
                  doc="Data rate per pin (e.g. `6.0 Gb/s`)."),
    "geometry": S({
        "bus_width": F("count", lo=1, hi=4096, why="assumption: up to 2x an HBM4 "
                       "stack's 2048-bit interface", doc="Data pins per channel."),
        "burst_length": F("count", lo=1, hi=1024, why="assumption: up to 40x LPDDR6's BL24",
                          doc="Beats per burst."),
        "burst": F("size", nullable=True, lo="1 B", hi="64 KiB",
                   why="assumption: as the arch's dram.burst",
                   doc="Payload bytes per burst; null: bus_width x burst_length / 8."),
        "bank_groups": F("count", lo=1, hi=16, why=GEOMETRY_BASIS, doc="Bank groups per channel."),
        "banks_per_group": F("count", lo=1, hi=16, why=GEOMETRY_BASIS, doc="Banks per bank group."),
        "row_size": F("size", lo="1 B", hi="1 MiB", why="assumption: as the arch's "
                      "dram.row_size", doc="Bytes per row of one bank; whole bursts."),
        "interleave": F("size", lo="1 B", hi="1 GiB", why="assumption: a burst up to a "
                        "whole device", doc="Bytes sent to one channel before the next "
                        "takes over; whole bursts."),
    }, doc="Geometry of one channel."),
    "controller": S({"queue_depth": F("count", lo=1, hi=4096, why="assumption: 64x a "
                                      "64-entry queue", doc="Requests per channel queue.")},
                    doc="The memory controller."),
}, doc="A DRAM timing preset.")
_SCHEMA = SCHEMA
TIMING_RANGE = F("time", lo="0 s", hi="1 s", why="assumption: DRAM timings are ns to us; "
                 "tREFI is microseconds", doc="A timing as a time (`14 ns`).")
NCK_RANGE = F("number", lo=0, hi=1e9, why="assumption: up to a second at 1 GHz",
              doc="A timing in command-clock cycles (`4 nCK`).")
_OWN = ("sources", "timing")
_NCK = re.compile(r"^\s*(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*nCK\s*$")


@dataclass(frozen=True)
class DramTiming:
    """One DRAM type's per-channel preset, every quantity in SI units.

    Attributes
    ----------
    name, description : str
    clock : float
        Command clock (Hz) that ``nCK`` timings count.
    pin_rate : float
        Data rate per pin, bits per second.
    bus_width, burst_length : int
        Data pins per channel and beats per burst.
    burst : float
        Payload bytes per burst (LPDDR6 carries metadata besides).
    bank_groups, banks_per_group : int
    row_size, interleave : float
        Bytes per row of one bank; bytes sent to one channel before the next takes over.
    queue_depth : int
        Requests per channel queue in the controller.
    time_s : FrozenMap
        Timings given as times, seconds.
    cycles : FrozenMap
        Timings given in nCK of :attr:`clock`.
    sources : FrozenMap
        Source ID -> reference, as the file gives them.
    source : str
        The file it came from.
    """

    name: str
    description: str
    clock: float
    pin_rate: float
    bus_width: int
    burst_length: int
    burst: float
    bank_groups: int
    banks_per_group: int
    row_size: float
    interleave: float
    queue_depth: int
    time_s: FrozenMap
    cycles: FrozenMap
    sources: FrozenMap
    source: str = ""

    @property
    def t_burst(self) -> float:
        """Seconds one burst occupies the data bus at the preset's pin rate."""
        return self.burst_length / self.pin_rate

    @property
    def channel_bandwidth(self) -> float:
        """Peak payload bytes per second of one channel at the preset's pin rate."""
        return self.burst / self.t_burst

    def timings_at(self, scale: float = 1.0) -> dict[str, float]:
        """Every timing in seconds, with nCK timings (and tBURST) multiplied by ``scale``.

        ``scale`` is the preset's channel bandwidth over the arch's: a channel run twice as
        fast halves its interface timings and leaves the array's (ns) timings alone.

        >>> t = load_dram_timing("hbm3").timings_at(0.5)
        >>> round(t["tCCD_L"] * 1e9, 4), round(t["tRCD"] * 1e9, 4)
        (1.3333, 14.0)
        """
        out = {"tBURST": self.t_burst * scale}
        for name in TIMINGS:
            if name in self.time_s:
                out[name] = self.time_s[name]
            else:
                out[name] = self.cycles[name] / self.clock * scale
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able content (for cache keys and written results)."""
        return {
            "name": self.name, "clock": self.clock, "pin_rate": self.pin_rate,
            "bus_width": self.bus_width, "burst_length": self.burst_length,
            "burst": self.burst, "bank_groups": self.bank_groups,
            "banks_per_group": self.banks_per_group, "row_size": self.row_size,
            "interleave": self.interleave, "queue_depth": self.queue_depth,
            "time_s": dict(self.time_s), "cycles": dict(self.cycles),
        }


def dram_presets() -> list[str]:
    """Names of the shipped DRAM timing presets, sorted.

    >>> "hbm3" in dram_presets()
    True
    """
    return preset_names("dram")


def has_preset(dram_type: str) -> bool:
    """Whether a shipped preset exists for ``dram_type`` (an arch's ``dram.type``)."""
    return dram_type in dram_presets()


def load_dram_timing(name_or_path: str | Path) -> DramTiming:
    """Load a DRAM timing preset by type name (``"hbm3"``) or from a YAML file.

    Raises
    ------
    ArchError
        For an unknown name, unreadable or malformed file, unknown, duplicate or missing
        fields, wrong units or impossible values; the message names the file and field.

    Examples
    --------
    >>> t = load_dram_timing("hbm3")
    >>> t.burst, round(t.channel_bandwidth / 1e9, 3)
    (64.0, 48.0)
    """
    return _load(name_or_path)


def _parse_timing(value: Any, clock: float) -> tuple[str, float]:
    """``('s', seconds)`` for a time, ``('nck', cycles)`` for ``'<n> nCK'``; each in range."""
    try:
        if isinstance(value, str) and len(value) <= 100:
            m = _NCK.match(value)
            if m:
                return "nck", check_range(float(m.group("num")), NCK_RANGE, value)
        return "s", check_range(parse_quantity(value, "time"), TIMING_RANGE, value)
    except FieldProblem as exc:
        raise UnitProblem(str(exc)) from None


def build_dram_timing(tree: Any, label: str) -> DramTiming:
    """Validate a raw preset tree (as the YAML loader returned it) into a :class:`DramTiming`.

    Raises
    ------
    ArchError
        Naming ``label`` and the dotted field at fault, with the fix.
    """
    v = read_described(tree, _SCHEMA, _OWN, _OWN, label, "a DRAM timing preset",
                       "npusim/archs/dram/hbm3.yaml")
    sources = read_sources(tree, label, "{S1: https://...}")
    timing = tree["timing"]
    if not isinstance(timing, Mapping):
        raise ArchError(f"{label}: timing: expected a mapping of {', '.join(TIMINGS)}")
    for key in timing:
        if key not in TIMINGS:
            raise ArchError(f"{label}: timing.{key}{_line(timing, key)}: unknown timing"
                            f"{did_you_mean(key, list(TIMINGS))}; valid: {', '.join(TIMINGS)}")
    time_s: dict[str, float] = {}
    cycles: dict[str, float] = {}
    for key in TIMINGS:
        if key not in timing:
            raise ArchError(f"{label}: timing.{key}: missing; give it as a time ('14 ns') or "
                            f"in command-clock cycles ('4 nCK')")
        try:
            kind, x = _parse_timing(timing[key], v["clock"])
        except UnitProblem as exc:
            raise ArchError(f"{label}: timing.{key}{_line(timing, key)}: {exc} "
                            f"(or cycles of the clock, e.g. '4 nCK')") from None
        (time_s if kind == "s" else cycles)[key] = x
    g = v["geometry"]
    burst = g["burst"] if g["burst"] is not None else g["bus_width"] * g["burst_length"] / 8.0
    preset = DramTiming(
        name=v["name"], description=v["description"], clock=v["clock"],
        pin_rate=v["pin_rate"] * 8.0, bus_width=g["bus_width"],
        burst_length=g["burst_length"], burst=float(burst), bank_groups=g["bank_groups"],
        banks_per_group=g["banks_per_group"], row_size=g["row_size"],
        interleave=g["interleave"], queue_depth=v["controller"]["queue_depth"],
        time_s=FrozenMap(time_s), cycles=FrozenMap(cycles),
        sources=sources, source=label)
    _cross_check(preset, label)
    return preset


def _cross_check(p: DramTiming, label: str) -> None:
    if p.burst > p.bus_width * p.burst_length / 8.0:
        raise ArchError(f"{label}: geometry.burst: {p.burst:g} B is more than bus_width x "
                        f"burst_length = {p.bus_width * p.burst_length / 8:g} B; fix one")
    if p.row_size < p.burst or p.row_size % p.burst:
        raise ArchError(f"{label}: geometry.row_size: {p.row_size:g} B must be a whole number "
                        f"of bursts ({p.burst:g} B); fix row_size or the burst")
    if p.interleave < p.burst or p.interleave % p.burst:
        raise ArchError(f"{label}: geometry.interleave: {p.interleave:g} B must be a whole "
                        f"number of bursts ({p.burst:g} B)")
    t = p.timings_at(1.0)
    if t["tREFI"] <= t["tRFC"]:
        raise ArchError(f"{label}: timing.tREFI ({t['tREFI']:g} s) must exceed timing.tRFC "
                        f"({t['tRFC']:g} s), or the channel would only refresh")
    if t["tRC"] < t["tRAS"]:
        raise ArchError(f"{label}: timing.tRC ({t['tRC']:g} s) is below timing.tRAS "
                        f"({t['tRAS']:g} s); tRC is at least tRAS + tRP")


_load = preset_loader("dram", "the DRAM timing file", "DRAM type {name} has no timing preset",
                      build_dram_timing)

__all__ = ["DramTiming", "NCK_RANGE", "SCHEMA", "TIMINGS", "TIMING_RANGE", "build_dram_timing",
           "dram_presets", "has_preset", "load_dram_timing"]

