"""Silicon area of a chip from per-component constants by process node (beside energy: both
are per-component tables with sources).

The area of an arch is the sum of its components, each a count the arch gives times a constant
from the tables in ``npusim/archs/area/``:

* ``mac``: per core, the largest of MACs-per-cycle x transistors-per-MAC over the engine's dtypes
  (one array runs them all), divided by the node's logic density;
* ``vector``: fp32 vector lanes x transistors per lane (FPU and its control);
* ``noc``: one network port per core;
* ``sram``, ``shared_sram``, ``accumulator``: bytes x the node's SRAM mm^2 per MiB (macro level);
* ``dram_phy``, ``dram_controller``: one PHY and controller per memory interface unit (an HBM
  stack, a GDDR6 device...), counted from ``dram.channels`` or, without it, ``dram.bandwidth``;
* ``link_phy``, ``link_controller``: lanes or links of the chip-to-chip link, from its bandwidth;
* ``uncore``: the share of the die none of the above covers (``uncore_share``, the one fitted
  constant: total = components / (1 - uncore_share)).

The node comes from the arch's energy table (its ``node:`` text), matched against each node
table's ``matches`` tokens; a user's arch file may instead carry a ``<stem>.area.yaml`` beside it,
a node table (optionally with any section of ``common.yaml`` replaced). An arch whose node has no
table gets ``nan`` with the reason, never a number from another node.

Run ``python -m npusim.energy.area`` for the die-area check against published dies (``--fit`` to
re-fit ``uncore_share`` on the chip marked ``fitted`` in ``dies.yaml``).
"""
from __future__ import annotations

import importlib.resources
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..arch.loader import parse_yaml
from ..arch.model import Arch, FrozenMap
from ..arch.units import UnitProblem, brief, parse_quantity, split_quantity
from ..errors import ArchError, NpusimError
from ..ir import dtype as _dtype

MIB = float(2 ** 20)
# Components in the order reports list them.
COMPONENTS = ("mac", "vector", "noc", "sram", "shared_sram", "accumulator", "dram_phy",
              "dram_controller", "link_phy", "link_controller", "uncore")
# The fallback for a link kind the table does not name (the notes say it was used).
FALLBACK_LINK = "pcie_gen5"

# Units accepted per field kind: name as written -> factor to the field's SI-free unit
# (mm^2, mm^2 per MiB, million transistors per mm^2).
_AREA_UNITS = {"mm^2": 1.0, "mm2": 1.0, "mm**2": 1.0, "um^2": 1e-6, "um2": 1e-6,
               "µm^2": 1e-6, "µm2": 1e-6}
_PER_MIB_UNITS = {"mm^2/MiB": 1.0, "mm2/MiB": 1.0, "mm^2/MB": MIB / 1e6, "mm2/MB": MIB / 1e6,
                  "mm^2/Mib": 8.0, "mm2/Mib": 8.0}
_DENSITY_UNITS = {"MTr/mm^2": 1.0, "MTr/mm2": 1.0}
_UNITS = {"area": _AREA_UNITS, "per_mib": _PER_MIB_UNITS, "density": _DENSITY_UNITS}
_EXAMPLE = {"area": "10.45 mm^2", "per_mib": "1.74 mm^2/MiB", "density": "138.2 MTr/mm^2"}
# Physically sensible ranges (assumptions, generous): a whole reticle is 858 mm^2; SRAM from a
# 2 nm test array (0.2 mm^2/MiB) to 180 nm-era macros; logic density from 180 nm to beyond 1 nm.
_RANGES = {"area": (0.0, 858.0), "per_mib": (0.05, 100.0), "density": (0.05, 2000.0),
           "transistors": (0.0, 1e10), "share": (0.0, 0.95), "bandwidth": (1e6, 1e13),
           "channels": (0.01, 1024.0)}

_NODE_FIELDS = ("node", "matches", "logic_density", "sram")
_COMMON_FIELDS = ("transistors_per_mac", "vector_lane", "core", "dram", "link", "uncore_share")
_IFACE_FIELDS = {"dram": ("unit", "unit_bandwidth", "channels_per_unit", "phy", "controller"),
                 "link": ("unit", "unit_bandwidth", "phy", "controller")}


@dataclass(frozen=True)
class Interface:
    """One kind of off-chip interface: what one PHY serves (``unit``), its peak bandwidth in
    bytes/s, channels per unit (DRAM only), PHY mm^2 and controller transistors per unit."""

    unit: str
    unit_bandwidth: float
    phy_mm2: float
    controller_transistors: float
    channels_per_unit: float | None = None


@dataclass(frozen=True)
class AreaTable:
    """The constants of one node with the node-independent ones beside them.

    ``logic_density`` in transistors per mm^2, ``sram_mm2_per_mib`` mm^2 per MiB,
    ``transistors_per_mac`` by dtype, ``dram`` and ``link`` interfaces by name, ``uncore_share``
    the fitted share of the die outside the components; ``source`` the file(s) read.
    """

    node: str
    matches: tuple[str, ...]
    logic_density: float
    sram_mm2_per_mib: float
    transistors_per_mac: FrozenMap
    vector_lane: float
    core: float
    dram: FrozenMap
    link: FrozenMap
    uncore_share: float
    source: str = ""


@dataclass(frozen=True)
class ChipArea:
    """The area of one arch: ``total_mm2`` (``nan`` when unknown, ``notes`` say why), the
    components in mm^2 (they sum to the total), the node table used and notes on assumptions
    made for this arch (a link kind costed as another...)."""

    arch: str
    total_mm2: float
    components_mm2: FrozenMap = field(default_factory=FrozenMap)
    node: str | None = None
    notes: tuple[str, ...] = ()

    def totals(self) -> dict:
        """The fields a run's totals carry: ``area_mm2`` (``None`` when unknown, which the
        result reports as ``nan``), ``area_by_component_mm2``, ``area_node`` and
        ``area_notes``."""
        known = not math.isnan(self.total_mm2)
        return {"area_mm2": self.total_mm2 if known else None,
                "area_by_component_mm2": dict(self.components_mm2),
                "area_node": self.node, "area_notes": list(self.notes)}


# ----------------------------------------------------------------------------- reading tables

def _number(value: Any, kind: str, label: str, where: str) -> float:
    """A plain number (counts, shares) within its physically sensible range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ArchError(f"{label}: {where}: {brief(value)} must be a plain number (no unit)")
    return _in_range(float(value), kind, label, where, value)


def _in_range(x: float, kind: str, label: str, where: str, raw: Any) -> float:
    lo, hi = _RANGES[kind]
    if not lo <= x <= hi:
        raise ArchError(f"{label}: {where}: {brief(raw)} is outside the physically sensible "
                        f"range [{lo:g}, {hi:g}] (assumption; see npusim/energy/area.py); check "
                        f"the value and its unit")
    return x


def _quantity(value: Any, kind: str, label: str, where: str) -> float:
    """``'10.45 mm^2'`` and the like, in the field's unit (mm^2, mm^2/MiB, MTr/mm^2)."""
    units = _UNITS[kind]
    parts = split_quantity(value) if isinstance(value, str) else None
    if parts is None or parts[1].strip() not in units:
        raise ArchError(f"{label}: {where}: {brief(value)} is not a quantity in one of the units "
                        f"{', '.join(units)}; write e.g. {_EXAMPLE[kind]!r}")
    x = float(parts[0].replace("_", "")) * units[parts[1].strip()]
    return _in_range(x, kind, label, where, value)


def _bandwidth(value: Any, label: str, where: str) -> float:
    try:
        x = parse_quantity(value, "bandwidth")
    except UnitProblem as exc:
        raise ArchError(f"{label}: {where}: {exc}") from None
    return _in_range(x, "bandwidth", label, where, value)


def _mapping(value: Any, label: str, where: str, what: str) -> Mapping:
    if not isinstance(value, Mapping) or not value:
        raise ArchError(f"{label}: {where}: must be a non-empty mapping of {what}, got "
                        f"{brief(value)}")
    return value


def _check_keys(tree: Mapping, allowed: tuple[str, ...], label: str, where: str) -> None:
    from ..arch.schema import did_you_mean
    for key in tree:
        if key not in allowed:
            raise ArchError(f"{label}: {where}{key}: unknown field"
                            f"{did_you_mean(str(key), list(allowed))}; valid fields: "
                            f"{', '.join(allowed)}")


def _require(tree: Mapping, key: str, label: str, where: str) -> Any:
    if key not in tree or tree[key] is None:
        raise ArchError(f"{label}: {where}{key}: missing required field; add it")
    return tree[key]


def _read_interfaces(raw: Any, section: str, label: str) -> FrozenMap:
    out = {}
    for name, entry in _mapping(raw, label, section, "interface name to its figures").items():
        where = f"{section}.{name}"
        entry = _mapping(entry, label, where, "unit, unit_bandwidth, phy, controller")
        fields_ = _IFACE_FIELDS[section]
        _check_keys(entry, fields_, label, where + ".")
        unit = _require(entry, "unit", label, where + ".")
        if not isinstance(unit, str) or not unit.strip():
            raise ArchError(f"{label}: {where}.unit: {brief(unit)} must be a non-empty name")
        cpu = None
        if section == "dram":
            cpu = _number(_require(entry, "channels_per_unit", label, where + "."), "channels",
                          label, where + ".channels_per_unit")
        out[str(name)] = Interface(
            unit=unit.strip(),
            unit_bandwidth=_bandwidth(_require(entry, "unit_bandwidth", label, where + "."),
                                      label, where + ".unit_bandwidth"),
            phy_mm2=_quantity(_require(entry, "phy", label, where + "."), "area", label,
                              where + ".phy"),
            controller_transistors=_number(_require(entry, "controller", label, where + "."),
                                           "transistors", label, where + ".controller"),
            channels_per_unit=cpu)
    return FrozenMap(out)


def _read_macs(raw: Any, label: str) -> FrozenMap:
    out = {}
    for key, v in _mapping(raw, label, "transistors_per_mac", "dtype to transistors").items():
        try:
            name = _dtype(str(key)).name
        except ValueError as exc:
            raise ArchError(f"{label}: transistors_per_mac.{key}: {exc}; use a dtype name such "
                            f"as bf16, fp8_e4m3, int8") from None
        out[name] = _number(v, "transistors", label, f"transistors_per_mac.{key}")
    return FrozenMap(out)


def _read_common(tree: Mapping, label: str) -> dict:
    """The node-independent sections present in ``tree`` (validated)."""
    out: dict[str, Any] = {}
    if "transistors_per_mac" in tree:
        out["transistors_per_mac"] = _read_macs(tree["transistors_per_mac"], label)
    for key in ("vector_lane", "core"):
        if key in tree:
            out[key] = _number(tree[key], "transistors", label, key)
    for key in ("dram", "link"):
        if key in tree:
            out[key] = _read_interfaces(tree[key], key, label)
    if "uncore_share" in tree:
        out["uncore_share"] = _number(tree["uncore_share"], "share", label, "uncore_share")
    return out


def _read_node(tree: Mapping, label: str, need_matches: bool) -> dict:
    node = _require(tree, "node", label, "")
    if not isinstance(node, str) or not node.strip():
        raise ArchError(f"{label}: node: {brief(node)} must be a non-empty name")
    matches = tree.get("matches")
    if matches is None and need_matches:
        raise ArchError(f"{label}: matches: missing required field; list the energy-table node "
                        f"names this table covers, e.g. [N5, 5 nm]")
    if matches is not None and (not isinstance(matches, list) or not matches
                                or not all(isinstance(m, str) and m.strip() for m in matches)):
        raise ArchError(f"{label}: matches: must be a non-empty list of node names, e.g. "
                        f"[N5, 5 nm], got {brief(matches)}")
    return {"node": node.strip(), "matches": tuple(m.strip() for m in matches or ()),
            "logic_density": 1e6 * _quantity(_require(tree, "logic_density", label, ""),
                                             "density", label, "logic_density"),
            "sram": _quantity(_require(tree, "sram", label, ""), "per_mib", label, "sram")}


def _tree(path: Path | Any, label: str) -> Mapping:
    """The parsed table at ``path``: a file through the project's one reader of description
    files (:func:`~npusim.arch.loader.read_description`), a packaged resource directly."""
    if isinstance(path, Path):
        from ..arch.loader import read_description
        text = read_description(path, "the area table")
    else:
        text = path.read_text(encoding="utf-8")
    tree = parse_yaml(text, label)
    if not isinstance(tree, Mapping):
        raise ArchError(f"{label}: an area table must be a mapping of fields (node, matches, "
                        f"logic_density, sram...), got {brief(tree)}; start from "
                        f"npusim/archs/area/n5.yaml")
    return tree


def _shipped_dir():
    return importlib.resources.files("npusim.archs") / "area"


@lru_cache(maxsize=8)
def _shipped_common() -> dict:
    label = "area/common.yaml"
    tree = _tree(_shipped_dir() / "common.yaml", label)
    _check_keys(tree, _COMMON_FIELDS, label, "")
    common = _read_common(tree, label)
    missing = [k for k in _COMMON_FIELDS if k not in common]
    if missing:
        raise ArchError(f"{label}: {missing[0]}: missing required field; add it")
    return common


def build_table(tree: Mapping, label: str, *, need_matches: bool = True,
                base: Mapping | None = None) -> AreaTable:
    """Validate a node table's tree and join it with the common constants (``base``, the
    shipped ``common.yaml`` when ``None``); any common section the tree gives replaces the
    base's.

    Raises
    ------
    ArchError
        Naming ``label`` and the field: unknown key, wrong unit, value out of range, missing.
    """
    _check_keys(tree, _NODE_FIELDS + _COMMON_FIELDS, label, "")
    common = dict(_shipped_common() if base is None else base)
    common.update(_read_common(tree, label))
    node = _read_node(tree, label, need_matches)
    return AreaTable(node=node["node"], matches=node["matches"],
                     logic_density=node["logic_density"], sram_mm2_per_mib=node["sram"],
                     transistors_per_mac=common["transistors_per_mac"],
                     vector_lane=common["vector_lane"], core=common["core"],
                     dram=common["dram"], link=common["link"],
                     uncore_share=common["uncore_share"], source=label)


def read_area_table(path: str | Path) -> AreaTable:
    """Read a node table file (a user's: ``matches`` optional) joined with the shipped common
    constants.

    >>> t = read_area_table(_shipped_dir() / "n5.yaml")
    >>> t.node, round(t.sram_mm2_per_mib, 3), t.logic_density
    ('TSMC N5 family (N5, N4, 4N)', 1.742, 138200000.0)
    """
    label = str(path)
    return build_table(_tree(Path(str(path)), label), label, need_matches=False)


@lru_cache(maxsize=8)
def shipped_tables() -> tuple[AreaTable, ...]:
    """Every shipped node table (``npusim/archs/area/*.yaml`` but ``common`` and ``dies``)."""
    out = []
    for entry in sorted(_shipped_dir().iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml") and entry.name not in ("common.yaml", "dies.yaml"):
            label = f"area/{entry.name}"
            out.append(build_table(_tree(entry, label), label))
    return tuple(out)


@lru_cache(maxsize=64)
def table_for_node(text: str) -> AreaTable | None:
    """The shipped table whose ``matches`` token comes first in an energy table's ``node``
    text (a whole token: ``5 nm`` matches neither ``45 nm`` nor ``1.5 nm``), or ``None``.

    >>> table_for_node("Samsung SF4X (4 nm; scaled as TSMC N5)").node
    'TSMC N5 family (N5, N4, 4N)'
    >>> table_for_node("FPGA, 16 nm-class") is None
    True
    """
    best: tuple[int, AreaTable] | None = None
    for table in shipped_tables():
        for token in table.matches:
            m = re.search(rf"(?<![A-Za-z0-9.]){re.escape(token)}(?![A-Za-z0-9]|\.\d)", text)
            if m and (best is None or m.start() < best[0]):
                best = (m.start(), table)
    return None if best is None else best[1]


def _sidecar(arch: Arch) -> Path | None:
    """``<stem>.area.yaml`` beside the user's arch file (:func:`.table.sidecar_file`)."""
    from .table import sidecar_file
    return sidecar_file(arch, "area")


def table_for_arch(arch: Arch) -> tuple[AreaTable | None, str]:
    """The area table of ``arch`` and, when there is none, why (for the result's notes).

    A ``<stem>.area.yaml`` beside the arch's file wins; else the node its energy table names.

    Raises
    ------
    ArchError
        If the sidecar table (or the shipped ones) are invalid.
    """
    side = _sidecar(arch)
    if side is not None:
        return read_area_table(side), ""
    try:
        node = _energy_node(arch)
    except NpusimError as exc:
        return None, f"area unknown: the energy table that names the process node is invalid ({exc})"
    if node is None:
        return None, (f"area unknown: arch {arch.name} has no energy table, so no process node; "
                      f"give one, or an area table <arch stem>.area.yaml beside the arch file")
    text, where = node
    table = table_for_node(text)
    if table is None:
        known = "; ".join(t.node for t in shipped_tables())
        return None, (f"area unknown: no area table for process node {text!r} ({where} node:); "
                      f"shipped nodes: {known}; give an area table <arch stem>.area.yaml beside "
                      f"the arch file")
    return table, ""


# (host name, arch file, energy overrides) -> (node text, table file): the energy table a sweep's
# every design point shares is read once (reading it costs as much as the area model itself)
_NODES: dict[tuple, tuple[str, str] | None] = {}


def _energy_node(arch: Arch) -> tuple[str, str] | None:
    """The ``node:`` text of the arch's energy table and the table's file, ``None`` without one.
    Only a table that validated is remembered."""
    key = (arch.host_name, arch.source, tuple(sorted(arch.energy.items())))
    if key not in _NODES:
        from .table import load_energy_table
        energy = load_energy_table(arch)
        if len(_NODES) > 256:
            _NODES.clear()
        _NODES[key] = None if energy is None else (energy.node, energy.source)
    return _NODES[key]


# ----------------------------------------------------------------------------- the model

def _units(needed: float, per_unit: float) -> int:
    """Whole interface units to reach ``needed`` at ``per_unit`` each (a part run above the
    JEDEC rate counts one more: conservative)."""
    return max(1, math.ceil(needed / per_unit * (1 - 1e-9))) if needed > 0 else 0


def _dram_units(arch: Arch, table: AreaTable, notes: list[str]) -> tuple[int, Interface | None]:
    d = arch.dram
    iface = table.dram.get(d.type)
    if iface is None:
        notes.append(f"DRAM type {d.type!r} has no PHY figure in {table.source or 'the table'} "
                     f"(known: {', '.join(table.dram)}); its interface area is not counted")
        return 0, None
    if d.channels:
        return _units(d.channels, iface.channels_per_unit), iface
    return _units(d.bandwidth, iface.unit_bandwidth), iface


def _link_units(arch: Arch, table: AreaTable, notes: list[str]) -> tuple[int, Interface | None]:
    link = arch.link
    if link is None:
        return 0, None
    name = next((k for k in sorted(table.link, key=len, reverse=True)
                 if link.kind.lower().startswith(k)), None)
    if name is None:
        name = FALLBACK_LINK
        notes.append(f"link kind {link.kind!r} has no PHY figure (known: "
                     f"{', '.join(table.link)}); costed as {FALLBACK_LINK} lanes (assumption)")
    iface = table.link[name]
    return _units(link.bandwidth, iface.unit_bandwidth), iface


def components(arch: Arch, table: AreaTable) -> tuple[dict[str, float], list[str]]:
    """The arch's area by component in mm^2 (``uncore`` included) and the notes on it.

    Each component is a count the arch gives times a constant of ``table``; see the module
    docstring. The components sum to the total by construction.
    """
    notes: list[str] = []
    c = arch.cores
    rates = c.engine.macs_per_cycle
    priced = {k: rates[k] * table.transistors_per_mac[k] for k in rates
              if k in table.transistors_per_mac}
    unpriced = [k for k in rates if k not in table.transistors_per_mac]
    if unpriced:
        notes.append(f"no transistors_per_mac for {', '.join(unpriced)}; the MAC array is sized "
                     f"by the other dtypes")
    per_mm2 = table.logic_density
    out = {
        "mac": c.count * max(priced.values(), default=0.0) / per_mm2,
        "vector": c.count * c.vector.ops_per_cycle * table.vector_lane / per_mm2,
        "noc": c.count * table.core / per_mm2,
        "sram": c.count * c.sram / MIB * table.sram_mm2_per_mib,
        "shared_sram": arch.shared_sram / MIB * table.sram_mm2_per_mib,
        # assumption: accumulators and register files take at least SRAM's area per bit
        "accumulator": c.count * (c.accumulator or 0.0) / MIB * table.sram_mm2_per_mib,
    }
    for part, (n, iface) in (("dram", _dram_units(arch, table, notes)),
                             ("link", _link_units(arch, table, notes))):
        out[f"{part}_phy"] = n * iface.phy_mm2 if iface else 0.0
        out[f"{part}_controller"] = n * iface.controller_transistors / per_mm2 if iface else 0.0
    covered = sum(out.values())
    out["uncore"] = covered * table.uncore_share / (1.0 - table.uncore_share)
    return {k: out[k] for k in COMPONENTS}, notes


def chip_area(arch: Arch) -> ChipArea:
    """The silicon area of one chip of ``arch``: memoised for the shipped tables (archs are
    frozen); an area table beside a user's arch file is read afresh each time (it may change).

    Returns ``nan`` with the reason in ``notes`` when the arch's node has no area table.

    Raises
    ------
    ArchError
        If an area table found for the arch is invalid (naming the file and field).

    Examples
    --------
    >>> from npusim.arch import load_arch
    >>> a = chip_area(load_arch("rngd"))
    >>> a.node, round(a.total_mm2)
    ('TSMC N5 family (N5, N4, 4N)', 732)
    >>> math.isnan(chip_area(load_arch("gddr6-aim")).total_mm2)   # an FPGA: no table
    True
    """
    if _sidecar(arch) is not None:
        return _area_of(arch)
    return _shipped_area(arch, arch.source)


@lru_cache(maxsize=256)
def _shipped_area(arch: Arch, source: str) -> ChipArea:
    """:func:`_area_of` memoised; ``source`` is part of the key because archs that differ only
    in their file compare equal."""
    return _area_of(arch)


def _area_of(arch: Arch) -> ChipArea:
    table, why = table_for_arch(arch)
    if table is None:
        return ChipArea(arch=arch.name, total_mm2=math.nan, notes=(why,))
    parts, notes = components(arch, table)
    return ChipArea(arch=arch.name, total_mm2=sum(parts.values()),
                    components_mm2=FrozenMap(parts), node=table.node, notes=tuple(notes))


def area_totals(arch: Arch) -> dict:
    """What a run's totals carry about area (:meth:`ChipArea.totals`); for a stand-in that is
    not an :class:`Arch` (tests build engines' inputs by hand), area unknown, saying so."""
    if not isinstance(arch, Arch):
        return ChipArea(arch=str(getattr(arch, "name", "?")), total_mm2=math.nan,
                        notes=("area unknown: not a loaded arch",)).totals()
    return chip_area(arch).totals()


# ----------------------------------------------------------------------------- die-area check

@dataclass(frozen=True)
class DieCheck:
    """One shipped chip: predicted area of the die as built against the published one."""

    name: str
    arch: str
    predicted_mm2: float
    published_mm2: float | None
    source: str | None
    fitted: bool

    @property
    def error(self) -> float | None:
        """(predicted - published) / published, ``None`` when no area is published."""
        if self.published_mm2 is None:
            return None
        return (self.predicted_mm2 - self.published_mm2) / self.published_mm2


def _die_entries() -> list[dict]:
    label = "area/dies.yaml"
    tree = _tree(_shipped_dir() / "dies.yaml", label)
    return list(tree["chips"])


def die_checks(uncore_share: float | None = None) -> list[DieCheck]:
    """Predicted vs published die area of every chip in ``dies.yaml``; ``uncore_share``
    replaces the table's (for the fit)."""
    from ..arch import load_arch
    out = []
    for e in _die_entries():
        arch = load_arch(e["arch"], list(e.get("as_built") or []))
        table, why = table_for_arch(arch)
        if table is None:
            raise ArchError(f"area/dies.yaml: {e['name']}: {why}")
        if uncore_share is not None:
            table = _with_share(table, uncore_share)
        parts, _ = components(arch, table)
        pub = e.get("published")
        out.append(DieCheck(name=e["name"], arch=e["arch"], predicted_mm2=sum(parts.values()),
                            published_mm2=None if pub is None else _published(pub),
                            source=e.get("source"),
                            fitted=bool(e.get("fitted", False))))
    return out


def _published(pub: Any) -> float:
    """A die area as written: ``'814 mm^2'`` (reticle-limited, so at most 858 mm^2 each die;
    a multi-die package is written as its total)."""
    parts = split_quantity(str(pub))
    if parts is None or parts[1].strip() not in _AREA_UNITS:
        raise ArchError(f"area/dies.yaml: published: {brief(pub)} must be an area such as "
                        f"'814 mm^2'")
    return float(parts[0]) * _AREA_UNITS[parts[1].strip()]


def _with_share(table: AreaTable, share: float) -> AreaTable:
    from dataclasses import replace
    return replace(table, uncore_share=share)


def fit_uncore_share() -> tuple[str, float]:
    """The uncore share that makes the chip marked ``fitted`` in ``dies.yaml`` exact:
    share = 1 - components / published (components at share 0)."""
    for check in die_checks(uncore_share=0.0):
        if check.fitted:
            return check.name, 1.0 - check.predicted_mm2 / check.published_mm2
    raise ArchError("area/dies.yaml: no chip is marked fitted: true")


def _main(argv: list[str] | None = None) -> int:
    import sys
    args = sys.argv[1:] if argv is None else argv
    if "--fit" in args:
        name, share = fit_uncore_share()
        print(f"uncore_share fitted on {name}: {share:.4f}")
        return 0
    print(f"{'chip':<40} {'predicted':>10} {'published':>10} {'error':>8}  role")
    for c in die_checks():
        pub = "n/p" if c.published_mm2 is None else f"{c.published_mm2:.0f}"
        err = "" if c.error is None else f"{100 * c.error:+.1f}%"
        role = "fitted" if c.fitted else ("held out" if c.published_mm2 else "not published")
        print(f"{c.name:<40} {c.predicted_mm2:>10.0f} {pub:>10} {err:>8}  {role}")
    return 0


__all__ = ["AreaTable", "ChipArea", "DieCheck", "Interface", "chip_area", "area_totals",
           "components", "read_area_table", "build_table", "table_for_node", "table_for_arch",
           "shipped_tables", "die_checks", "fit_uncore_share", "COMPONENTS"]

if __name__ == "__main__":
    raise SystemExit(_main())
