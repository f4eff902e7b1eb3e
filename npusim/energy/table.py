"""Per-arch energy tables (Accelergy's ERT idea): what one action of each kind costs.

A table is a YAML file beside the archs (``npusim/archs/energy/<arch>.yaml``), kept apart from the
arch so that timing and energy can be changed, cited and diffed on their own. Values carry
units (``"0.06 pJ"``, ``"3.5 pJ/bit"``, ``"0.1 pJ/B"``, ``"45 W"``) and are parsed with the
project's unit registry (:mod:`npusim.arch.units`) into plain SI floats.

File layout (every key required; ``shared``, ``noc`` and ``link`` may be ``null`` for a chip
without that part)::

    name: rngd                      # the arch this table belongs to
    description: ...
    node: TSMC N5 (5 nm)            # process node the constants were scaled to
    mac: {bf16: 0.0595 pJ, ...}     # per multiply-accumulate, by execution dtype
    vector_op: 0.0912 pJ            # per fp32-equivalent vector element op
    sram: {read: 0.099 pJ/B, write: 0.099 pJ/B}      # core-local SRAM, per byte
    shared: {read: 0.50 pJ/B, write: 0.50 pJ/B}      # chip-shared SRAM (L2), per byte
    dram: {read: 3.48 pJ/bit, write: 3.48 pJ/bit, activation: 1.8 nJ}
    noc: 0.30 pJ/bit                # per bit carried between cores
    link: 5 pJ/bit                  # per bit sent chip to chip
    static: 45 W                    # idle + leakage power while the chip is on

Optional power-model parts (absent: the run is costed exactly as without them)::

    loaded_floor: 130 W             # clocks up, model resident, nothing running: charged for
                                    # every second of a run instead of `static`
    dynamic_overhead: 2.0           # multiplier on the on-chip action energies (operand
                                    # delivery, register files, clock tree, control)
    operand_delivery: 10 pJ/bit     # on-chip cost of carrying each DRAM bit to and from the
                                    # cores (PHY, controller, L2, crossbar), beyond `dram`
    dvfs_exponent: 2                # energy per op ~ (V/V0)^exponent under a power cap
    dvfs_min_voltage: 0.7           # V/V0 below which the clock drops at constant voltage

Where a part is not measured (the NPUs), the table may give the spread its assumption allows,
beside the central value it charges; K-Perf reports power as a band over it (a field set with
``--set energy.<field>=`` is no longer an assumption: its range is dropped)::

    ranges:                         # optional; each field named must also be given above
      loaded_floor: [37 W, 77 W]    # [low, high] in the field's own unit, low <= value <= high
      dynamic_overhead: [1, 4]
      operand_delivery: [0 pJ/bit, 4 pJ/bit]

Any of them (and any other field) can be overridden per run with ``--set energy.<field>=...``
(:func:`load_energy_table` applies the arch's ``energy`` overrides), which is how
``npusim validate --fit`` reaches them.
"""
from __future__ import annotations

import copy
import importlib.resources
from collections.abc import Mapping
from functools import lru_cache
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


from ..arch.loader import parse_yaml
from ..arch.model import Arch, FrozenMap
from ..arch.schema import F, FieldProblem, S, check_range, did_you_mean
from ..arch.units import UnitProblem, brief, parse_energy_per, parse_quantity
from ..errors import ArchError
from ..ir import dtype as _dtype

# Unit written into to_dict() for each field of EnergyTable that carries one.
SI_UNITS: dict[str, str] = {
    "mac": "J per MAC", "vector_op": "J", "sram_read": "J/B", "sram_write": "J/B",
    "shared_read": "J/B", "shared_write": "J/B", "dram_read": "J/bit",
    "dram_write": "J/bit", "dram_activation": "J", "noc": "J/bit", "link": "J/bit",
    "static": "W", "loaded_floor": "W", "dynamic_overhead": "",
    "dvfs_exponent": "", "dvfs_min_voltage": "",
}

# Ranges: an action costs nothing (a term the chip lacks, written 0) up to far above any
# published figure; a value beyond one is a unit slip (pJ for nJ), not a design. Assumptions,
# anchored on Horowitz (ISSCC 2014, 45 nm): fp32 MAC 4.6 pJ, DRAM 20 pJ/bit, 1 MB SRAM 12.5 pJ/B.
_PER_ACTION = "assumption: 0 up to 200x Horowitz's 45 nm fp32 multiply-add (4.6 pJ)"
_PER_BYTE = "assumption: 0 up to 80x Horowitz's 45 nm 1 MB SRAM read (12.5 pJ/B)"
_PER_BIT = "assumption: 0 up to 50x Horowitz's 45 nm DRAM access (20 pJ/bit)"
_HIGH_ENERGY = "1 nJ"

# The file's schema, with the arch schema's building blocks (npusim.arch.schema.F and S):
# kinds "text", "energy", "power", "per_byte", "per_bit" and "dtype_energy".
SCHEMA = S({
    "name": F("text", doc="The arch this table belongs to (its `name`)."),
    "description": F("text", doc="One line: what the numbers assume."),
    "node": F("text", doc="Process node (and voltage) the constants were taken or scaled at."),
    "mac": F("dtype_energy", lo="0 J", hi=_HIGH_ENERGY, why=_PER_ACTION,
             doc="Energy per multiply-accumulate, by execution dtype (`{bf16: 0.06 pJ}`)."),
    "vector_op": F("energy", lo="0 J", hi=_HIGH_ENERGY, why=_PER_ACTION,
                   doc="Energy per fp32-equivalent vector element op."),
    "sram": S({"read": F("per_byte", lo="0 J/B", hi="1 nJ/B", why=_PER_BYTE,
                         doc="Energy per byte read from core-local SRAM."),
               "write": F("per_byte", lo="0 J/B", hi="1 nJ/B", why=_PER_BYTE,
                          doc="Energy per byte written to core-local SRAM.")},
              doc="Core-local SRAM."),
    "shared": S({"read": F("per_byte", lo="0 J/B", hi="1 nJ/B", why=_PER_BYTE,
                           doc="Energy per byte read from chip-shared SRAM."),
                 "write": F("per_byte", lo="0 J/B", hi="1 nJ/B", why=_PER_BYTE,
                            doc="Energy per byte written to chip-shared SRAM.")},
                nullable=True, doc="Chip-shared SRAM (L2); null for a chip without one."),
    "dram": S({"read": F("per_bit", lo="0 J/bit", hi="1 nJ/bit", why=_PER_BIT,
                         doc="Energy per bit read across the DRAM interface (no activations)."),
               "write": F("per_bit", lo="0 J/bit", hi="1 nJ/bit", why=_PER_BIT,
                          doc="Energy per bit written across the DRAM interface."),
               "activation": F("energy", lo="0 J", hi="1 uJ",
                               why="assumption: 0 up to 140x a DDR4 rank row (7.2 nJ)",
                               doc="Energy per row activation with its precharge.")},
              doc="DRAM."),
    "noc": F("per_bit", nullable=True, lo="0 J/bit", hi="1 nJ/bit", why=_PER_BIT,
             doc="Energy per bit carried between cores; null for a chip without a network."),
    "link": F("per_bit", nullable=True, lo="0 J/bit", hi="1 nJ/bit", why=_PER_BIT,
              doc="Energy per bit sent chip to chip; null for a chip without a link."),
    "static": F("power", lo="0 W", hi="100 kW",
                why="assumption: up to a 100 kW wafer-scale system",
                doc="Power burnt while the chip is on, busy or not; below the arch's "
                    "`power.tdp`. Replaced by `loaded_floor` where that is given."),
    # The power model's checkable parts (issue 13). Each is optional: absent, a run is costed
    # exactly as before the field existed (the flat `static`, action energies as written,
    # constant energy per op when a cap slows the chip).
    "loaded_floor": F("power", required=False, lo="0 W", hi="100 kW",
                      why="assumption: up to a 100 kW wafer-scale system",
                      doc="Power with clocks up and the model resident, nothing running; "
                          "charged for every second of a run instead of `static` when given. "
                          "At least the arch's `power.idle` (the one idle figure), below its "
                          "`power.tdp` and `power.cap`."),
    "dynamic_overhead": F("number", required=False, lo=1.0, hi=100.0,
                          why="assumption: 1 is the arithmetic and memory arrays alone; "
                              "Horowitz-scaled arithmetic is ~0.06 pJ per bf16 MAC on 5 nm while "
                              "a 700 W H100 at its 495 TMAC/s draws ~1.4 pJ per MAC all in, so "
                              "up to 100x covers any core",
                          doc="Multiplier on the on-chip action energies (MAC, vector, SRAM, "
                              "shared SRAM, NoC; not DRAM or links, which are device figures); "
                              "the excess is reported as the `overhead` component. Absent: 1."),
    "operand_delivery": F("per_bit", required=False, lo="0 J/bit", hi="1 nJ/bit", why=_PER_BIT,
                          doc="On-chip energy per bit crossing the DRAM interface, beyond the "
                              "DRAM's own `dram.read`/`write` (memory controller, PHY, L2 and "
                              "crossbar on the way to the cores); reported as the `delivery` "
                              "component, scaled by DVFS with the other on-chip parts. Absent: "
                              "0 (no component)."),
    "dvfs_exponent": F("number", required=False, lo=0.0, hi=3.0,
                       why="assumption: 0 (constant energy per op) up to 3; 2 is the CV^2 "
                           "switching energy with V proportional to f",
                       doc="How energy per op falls when a power cap lowers the clock: "
                           "energy x (V/V0)^exponent, V/V0 = f/f0 down to `dvfs_min_voltage`. "
                           "Absent: 0, a capped op is stretched at constant energy."),
    "dvfs_min_voltage": F("number", required=False, lo=0.1, hi=1.0,
                          why="assumption: a supply cannot fall below a tenth of nominal",
                          doc="Lowest supply voltage as a fraction of nominal; below the clock "
                              "it allows, the clock drops at that voltage (energy per op "
                              "constant). Absent: 0.1 (no floor in practice)."),
}, doc="An energy table.")
# The power-model parts a table may leave out (absent: costed as before they existed).
OPTIONAL = ("loaded_floor", "dynamic_overhead", "operand_delivery", "dvfs_exponent",
            "dvfs_min_voltage", "ranges")
# The power-model parts a table may give a [low, high] range for under `ranges:` (the spread an
# assumption allows; K-Perf's power band). Each is linear in a run's energy at a fixed time.
RANGED = ("loaded_floor", "dynamic_overhead", "operand_delivery")
_EXAMPLE = {"energy": "0.06 pJ", "power": "45 W", "per_byte": "0.1 pJ/B",
            "per_bit": "3.5 pJ/bit", "dtype_energy": "0.06 pJ"}


@dataclass(frozen=True)
class EnergyTable:
    """Energy per action of one arch, every value a float in SI units.

    Attributes
    ----------
    name, description, node : str
        The arch the table belongs to, a one-line description, the process node assumed.
    mac : FrozenMap
        Joules per multiply-accumulate, by execution dtype name.
    vector_op : float
        Joules per fp32-equivalent vector element op.
    sram_read, sram_write : float
        Joules per byte of core-local SRAM.
    shared_read, shared_write : float or None
        Joules per byte of chip-shared SRAM; ``None`` when the chip has none.
    dram_read, dram_write : float
        Joules per bit across the DRAM interface (row activations excluded).
    dram_activation : float
        Joules per row activation with its precharge.
    noc, link : float or None
        Joules per bit on the on-chip network and on chip-to-chip links; ``None`` when absent.
    static : float
        Watts burnt while the chip is on, busy or not (the flat floor before issue 13).
    loaded_floor : float or None
        Watts with the model resident and clocks up, nothing running; ``None`` when the
        table does not say (:attr:`floor_w` then falls back to ``static``). The idle figure
        (nothing loaded) is the arch's ``power.idle``, not the table's.
    dynamic_overhead : float or None
        Multiplier on the on-chip action energies; ``None`` means 1 (no overhead component).
    operand_delivery : float or None
        Joules per DRAM bit of on-chip transport beyond the DRAM's own; ``None`` means none.
    dvfs_exponent, dvfs_min_voltage : float or None
        How energy per op scales when a cap lowers the clock (:func:`npusim.energy.dvfs_scale`);
        ``None``: constant energy per op (exponent 0) and no voltage floor.
    ranges : FrozenMap or None
        ``{field: (low, high)}`` in SI units for the parts the table marks as assumptions
        (:data:`RANGED`); ``None`` when the table gives no ranges (GPUs, fitted parts).
    source : str
        The file the table was read from (for messages).
    """

    name: str
    description: str
    node: str
    mac: FrozenMap
    vector_op: float
    sram_read: float
    sram_write: float
    shared_read: float | None
    shared_write: float | None
    dram_read: float
    dram_write: float
    dram_activation: float
    noc: float | None
    link: float | None
    static: float
    loaded_floor: float | None = None
    dynamic_overhead: float | None = None
    operand_delivery: float | None = None
    dvfs_exponent: float | None = None
    dvfs_min_voltage: float | None = None
    ranges: FrozenMap | None = None
    source: str = ""

    @property
    def floor_w(self) -> float:
        """Watts charged for every second of a run: the loaded floor where the table gives
        one, else the flat ``static`` (the model before the floor was measured)."""
        return self.static if self.loaded_floor is None else self.loaded_floor

    def to_dict(self) -> dict:
        """The resolved table as JSON-able data in SI units (Timeloop's flattened ERT).

        >>> t = read_energy_table(_shipped_energy_dir() / "edu.yaml")
        >>> d = t.to_dict()
        >>> d["units"]["dram_read"], d["mac"]["bf16"]
        ('J/bit', 1.5e-12)
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None and f.name in OPTIONAL:
                continue      # a table without the part writes what it wrote before
            if f.name == "ranges":
                v = {k: list(lo_hi) for k, lo_hi in v.items()}
            out[f.name] = dict(v) if isinstance(v, Mapping) else v
        out["units"] = {k: u for k, u in SI_UNITS.items() if k not in OPTIONAL or k in out}
        return out


_Problem = FieldProblem


def _read_leaf(value: Any, spec: F) -> Any:
    kind = spec.kind
    if kind == "text":
        if not isinstance(value, str) or not value.strip():
            raise _Problem(f"{brief(value)} must be a non-empty string")
        return value.strip()
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or value != value or value in (float("inf"), float("-inf")):
            raise _Problem(f"{brief(value)} must be a plain number (no unit)")
        return check_range(float(value), spec, value)
    try:
        if kind in ("energy", "power"):
            out = parse_quantity(value, kind)
        elif kind in ("per_byte", "per_bit"):
            out = parse_energy_per(value, "B" if kind == "per_byte" else "bit")
        else:
            raise AssertionError(f"energy table kind {kind!r}")
    except UnitProblem as exc:
        raise _Problem(str(exc)) from None
    return check_range(out, spec, value)


def _line(tree: Any, key: str) -> str:
    where = getattr(tree, "lines", {}).get(key)
    return f" (line {where})" if isinstance(where, int) else ""


def _read_dtype_energies(value: Any, spec: F, label: str, where: str) -> FrozenMap:
    if not isinstance(value, Mapping) or not value:
        raise ArchError(f"{label}: {where}: must be a non-empty mapping of dtype name to "
                        f"energy per MAC, e.g. {{bf16: 0.06 pJ}}")
    out: dict[str, float] = {}
    for key, v in value.items():
        try:
            name = _dtype(str(key)).name
        except ValueError as exc:
            raise ArchError(f"{label}: {where}.{key}: {exc}; use a dtype name such as "
                            f"bf16, fp8_e4m3, int8") from None
        if name in out:
            raise ArchError(f"{label}: {where}.{key}: dtype given twice (as {name}); keep one")
        try:
            out[name] = _read_leaf(v, F("energy", lo=spec.lo, hi=spec.hi, why=spec.why))
        except _Problem as exc:
            raise ArchError(f"{label}: {where}.{key}{_line(value, key)}: {exc}") from None
    return FrozenMap(out)


def _read_section(tree: Any, spec: S, label: str, prefix: str) -> dict:
    where = prefix.rstrip(".") or "the top level"
    fields_ = spec.fields
    if not isinstance(tree, Mapping):
        raise ArchError(f"{label}: {where}: expected a mapping of fields "
                        f"({', '.join(fields_)}), got {brief(tree)}; fix that section")
    for key in tree:
        if key not in fields_:
            raise ArchError(f"{label}: {prefix}{key}{_line(tree, key)}: unknown field"
                            f"{did_you_mean(key, list(fields_))}; valid fields in {where}: "
                            f"{', '.join(fields_)}")
    out: dict[str, Any] = {}
    for name, sub in fields_.items():
        dotted = f"{prefix}{name}"
        if name not in tree and not getattr(sub, "required", True):
            out[name] = None
            continue
        if name not in tree:
            hint = " (or null if the chip has none)" if sub.nullable else ""
            raise ArchError(f"{label}: {dotted}: missing required field in {where}; "
                            f"add it{hint}")
        value = tree[name]
        if value is None:
            if sub.nullable or not getattr(sub, "required", True):
                out[name] = None
                continue
            kind = getattr(sub, "kind", None)
            example = f", e.g. {_EXAMPLE[kind]!r}" if kind in _EXAMPLE else ""
            raise ArchError(f"{label}: {dotted}: is empty (null) but required; give a "
                            f"value{example}")
        if isinstance(sub, S):
            out[name] = _read_section(value, sub, label, dotted + ".")
        elif sub.kind == "dtype_energy":
            out[name] = _read_dtype_energies(value, sub, label, dotted)
        else:
            try:
                out[name] = _read_leaf(value, sub)
            except _Problem as exc:
                raise ArchError(f"{label}: {dotted}{_line(tree, name)}: {exc}") from None
    return out


def build_energy_table(tree: Any, label: str) -> EnergyTable:
    """Validate a raw table tree (as the YAML loader returned it) and build the table.

    Raises
    ------
    ArchError
        Naming ``label`` and the dotted field at fault, with the fix.
    """
    if tree is None:
        raise ArchError(f"{label}: the energy table is empty; it must be a mapping of fields "
                        f"(start from a shipped table such as npusim/archs/energy/edu.yaml)")
    ranges_raw = tree.get("ranges") if isinstance(tree, Mapping) else None
    if isinstance(tree, Mapping) and "ranges" in tree:
        tree = copy.copy(tree)          # keeps the key lines for the other fields' messages
        del tree["ranges"]
    v = _read_section(tree, SCHEMA, label, "")
    ranges = None if ranges_raw is None else _read_ranges(ranges_raw, v, label)
    shared = v["shared"] or {"read": None, "write": None}
    return EnergyTable(
        name=v["name"], description=v["description"], node=v["node"], mac=v["mac"],
        vector_op=v["vector_op"], sram_read=v["sram"]["read"], sram_write=v["sram"]["write"],
        shared_read=shared["read"], shared_write=shared["write"],
        dram_read=v["dram"]["read"], dram_write=v["dram"]["write"],
        dram_activation=v["dram"]["activation"], noc=v["noc"], link=v["link"],
        static=v["static"], loaded_floor=v["loaded_floor"],
        dynamic_overhead=v["dynamic_overhead"], operand_delivery=v["operand_delivery"],
        dvfs_exponent=v["dvfs_exponent"],
        dvfs_min_voltage=v["dvfs_min_voltage"], ranges=ranges, source=label)


def _read_ranges(raw: Any, v: dict, label: str) -> FrozenMap:
    """The table's ``ranges:`` as ``{field: (low, high)}`` in SI units. Each bound is read as
    its field is (unit, limits); low <= the field's own value <= high, so the central value a
    run charges lies inside the band the report shows."""
    if not isinstance(raw, Mapping) or not raw:
        raise ArchError(f"{label}: ranges: must be a mapping of field to [low, high], e.g. "
                        f"{{loaded_floor: [40 W, 80 W]}}, got {brief(raw)}")
    out: dict[str, tuple[float, float]] = {}
    for name, pair in raw.items():
        where = f"{label}: ranges.{name}{_line(raw, name)}"
        if name not in RANGED:
            raise ArchError(f"{where}: no range can be given for this field"
                            f"{did_you_mean(str(name), list(RANGED))}; ranged fields: "
                            f"{', '.join(RANGED)}")
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ArchError(f"{where}: must be a two-item list [low, high], got {brief(pair)}")
        try:
            lo, hi = (_read_leaf(x, SCHEMA.fields[name]) for x in pair)
        except _Problem as exc:
            raise ArchError(f"{where}: {exc}") from None
        if lo > hi:
            raise ArchError(f"{where}: low {lo:.4g} is above high {hi:.4g}; write [low, high]")
        central = v[name]
        if central is None:
            raise ArchError(f"{where}: the table gives a range but no {name}; give {name} (the "
                            f"central value a run charges) or drop its range")
        if not lo <= central <= hi:
            raise ArchError(f"{where}: {name} {central:.4g} (the value charged) lies outside "
                            f"[{lo:.4g}, {hi:.4g}]; widen the range or change {name}")
        out[name] = (lo, hi)
    return FrozenMap(out)


def read_energy_table(path: str | Path) -> EnergyTable:
    """Read and validate an energy table file.

    Parameters
    ----------
    path : str or Path
        A YAML energy table (see the module docstring for its fields).

    Raises
    ------
    ArchError
        For a missing or unreadable file, malformed YAML, unknown, duplicate or missing keys,
        a unit of the wrong kind or a negative value; the message names the file and field.

    Examples
    --------
    >>> t = read_energy_table(_shipped_energy_dir() / "edu.yaml")
    >>> t.name, t.mac["bf16"]
    ('edu', 1.5e-12)
    """
    tree, label = _read_tree(path)
    return build_energy_table(tree, label)


def _read_tree(path: str | Path) -> tuple[Any, str]:
    """The raw tree of a table file and the label its messages name."""
    text, label = _read_text(path)
    return parse_yaml(text, label), label


def _read_text(path: str | Path) -> tuple[str, str]:
    """The text of a table file and the label its messages name."""
    p = Path(str(path)) if not hasattr(path, "read_text") else path
    label = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArchError(f"{label}: no such energy table; give an existing .yaml file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchError(f"{label}: cannot read the energy table ({exc}); check the path and "
                        f"that it is UTF-8 text") from None
    return text, label


def apply_energy_overrides(tree: Any, overrides: Mapping[str, Any], label: str) -> Any:
    """A copy of a raw table tree with ``{dotted field: value}`` set (the arch's ``--set
    energy.<field>=<value>``); an unknown field is an error naming it and the valid ones.
    Values are validated afterwards with the rest of the table (:func:`build_energy_table`).

    >>> t = parse_yaml("dram: {read: 1 pJ/bit}", "t")
    >>> apply_energy_overrides(t, {"dram.read": "2 pJ/bit", "static": "70 W"}, "t")["dram"]["read"]
    '2 pJ/bit'
    """
    if not isinstance(tree, Mapping):
        return tree               # build_energy_table says what is wrong with it
    out = copy.deepcopy(tree)
    for dotted, value in overrides.items():
        parts = [p.strip() for p in str(dotted).split(".")]
        node, spec = out, SCHEMA
        for i, part in enumerate(parts):
            options = list(spec.fields) if isinstance(spec, S) else []
            if part not in options:
                where = ".".join(parts[:i]) or "the energy table"
                raise ArchError(f"{label}: override energy.{dotted}={value}: unknown field "
                                f"'{'.'.join(parts[:i + 1])}'{did_you_mean(part, options)}; "
                                f"valid fields in {where}: {', '.join(options) or '(none)'}")
            spec = spec.fields[part]
            if i == len(parts) - 1:
                if isinstance(spec, S):
                    raise ArchError(f"{label}: override energy.{dotted}={value}: "
                                    f"'{dotted}' is a section; set one of its fields "
                                    f"({', '.join(spec.fields)})")
                node[part] = value
                _drop_range(out, parts)
            else:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
    return out


def _drop_range(tree: Any, parts: list[str]) -> None:
    """A value set by hand replaces the table's assumption, so its range goes with it (the band
    then spreads over the other assumed parts only)."""
    ranges = tree.get("ranges")
    if len(parts) == 1 and parts[0] in RANGED and isinstance(ranges, Mapping) \
            and parts[0] in ranges:
        del ranges[parts[0]]
        if not ranges:
            del tree["ranges"]


def _shipped_energy_dir():
    """The folder of shipped energy tables (``npusim/archs/energy``, package data)."""
    return importlib.resources.files("npusim.archs") / "energy"


def sidecar_file(arch: Arch, kind: str) -> Path | None:
    """``<stem>.<kind>.yaml`` (``energy``, ``area``) beside the user's arch file, if the arch
    came from a file and the file exists."""
    if not arch.source:
        return None
    src = Path(arch.source)
    if not src.is_file() or src.suffix.lower() not in (".yaml", ".yml"):
        return None
    candidate = src.with_name(f"{src.stem}.{kind}.yaml")
    return candidate if candidate.is_file() else None


def _sidecar(arch: Arch) -> Path | None:
    """``<stem>.energy.yaml`` beside the user's arch file (:func:`sidecar_file`)."""
    return sidecar_file(arch, "energy")


def load_energy_table(arch: Arch, path: str | Path | None = None) -> EnergyTable | None:
    """The energy table of ``arch``, or ``None`` when it has none.

    Looked for, in order: ``path`` if given; ``<stem>.energy.yaml`` beside the arch's own
    YAML file (for archs loaded from a user's path); the shipped table
    ``npusim/archs/energy/<arch.host_name>.yaml`` (the name before any ``+device``). ``None`` means energy is unavailable (callers report
    it so, never as zero).

    Parameters
    ----------
    arch : Arch
        A loaded arch (:func:`npusim.arch.load_arch`).
    path : str or Path, optional
        An explicit table file; it must exist.

    Raises
    ------
    ArchError
        If the table found is invalid, or names a different arch than ``arch``.

    Examples
    --------
    >>> from npusim.arch import load_arch
    >>> load_energy_table(load_arch("rngd")).node
    'TSMC N5 (5 nm)'
    """
    if path is not None:
        text, label = _read_text(path)
    else:
        sidecar = _sidecar(arch)
        if sidecar is not None:
            text, label = _read_text(sidecar)
        else:
            # a composed arch (rngd+hbm2-pim) uses its host's table; PIM energies are in
            # the arch's pim section
            shipped = _shipped_energy_dir() / f"{arch.host_name}.yaml"
            if not shipped.is_file():
                return None
            label = f"energy/{arch.host_name}.yaml"
            text = shipped.read_text(encoding="utf-8")
    if not isinstance(arch, Arch):      # a stand-in built by hand: read afresh
        return _table_of.__wrapped__(text, label, arch)
    try:
        hash(arch)
    except TypeError:                   # a field that cannot be hashed: read afresh
        return _table_of.__wrapped__(text, label, arch)
    return _table_of(text, label, arch)


@lru_cache(maxsize=64)
def _table_of(text: str, label: str, arch: Arch) -> EnergyTable:
    """The table that ``text`` (the file ``label``) gives ``arch``, checked against it:
    memoised on all three (the file is read on every call, so an edited table is read
    afresh; every field of the arch but its file path is part of the key, and the path
    appears only in messages), as a serving run simulates hundreds of graphs on one arch.
    A table that fails its checks raises on every call."""
    tree = parse_yaml(text, label)
    overrides = getattr(arch, "energy", None) or {}
    if overrides:
        tree = apply_energy_overrides(tree, overrides, label)
        label += " with " + ", ".join(f"--set energy.{k}={v}" for k, v in overrides.items())
    table = build_energy_table(tree, label)
    if table.name != arch.host_name:
        raise ArchError(f"{table.source}: name: the table is for arch {table.name!r} but the "
                        f"arch is {arch.host_name!r}; use the table of that arch or fix its "
                        f"name")
    _check_tdp(arch, table)
    _check_idle(arch, table)
    if arch.shared_sram > 0 and table.shared_read is None:
        where = arch.source or f"the arch file of {arch.name}"
        raise ArchError(f"{table.source}: shared: is null (no shared SRAM), but {where} has "
                        f"shared_sram {arch.shared_sram:.4g} B; give the table a shared section "
                        f"(read and write energy per byte) or set shared_sram: 0 B")
    return table


def _check_tdp(arch: Arch, table: EnergyTable) -> None:
    """Refuse a power limit (TDP, or a configured cap) at or below the power the chip burns
    doing nothing (the loaded floor, else the static power): no slowdown could ever bring a
    run under it. This is where the arch's power meets the table's, so it is checked here,
    once, before anything is simulated."""
    floor, which = (table.static, "static") if table.loaded_floor is None \
        else (table.loaded_floor, "loaded_floor")
    where = arch.source or f"the arch file of {arch.name}"
    for field, limit in (("tdp", arch.power.tdp), ("cap", arch.power.cap)):
        if limit is not None and limit <= floor:
            what = "a power cap" if field == "cap" else "this cap"
            raise ArchError(
                f"{where}: power.{field}: {limit:.4g} W is not above the {which} power "
                f"{floor:.4g} W that {table.source} declares (field {which}); the chip burns "
                f"that much doing nothing, so no run can stay under {what}; set power.{field} "
                f"above {floor:.4g} W (e.g. --set power.{field}={_suggest(floor)}W) or lower "
                f"the table's {which} power")


def _check_idle(arch: Arch, table: EnergyTable) -> None:
    """The arch's ``power.idle`` (board on, nothing loaded) is the one idle figure; the
    table's ``loaded_floor`` (clocks up, model resident) cannot be below it."""
    a, f = arch.power.idle, table.loaded_floor
    if a is not None and f is not None and f < a * (1 - 1e-12):
        where = arch.source or f"the arch file of {arch.name}"
        raise ArchError(f"{table.source}: loaded_floor: {f:.4g} W is below power.idle {a:.4g} W "
                        f"in {where}; a chip with the model resident and clocks up draws at "
                        f"least its idle power, so raise loaded_floor or lower power.idle")


def _suggest(static: float) -> str:
    """A round TDP comfortably above the static power, for the fix in a message."""
    return f"{max(2.0 * static, 0.001):.3g}"


__all__ = ["EnergyTable", "load_energy_table", "read_energy_table", "build_energy_table",
           "apply_energy_overrides", "SI_UNITS", "OPTIONAL", "RANGED"]
