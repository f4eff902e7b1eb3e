"""The server around the accelerators: host presets and system power at the wall.

K-Perf and ML.ENERGY meter accelerator cards; MLPerf meters the whole server at the wall (CPUs,
DRAM, NICs, NVSwitch or PCIe switches, fans, storage and the power supplies' losses). A *host*
describes that server, so a simulated run can report both boundaries: ``card_power_w`` (one
accelerator) and ``system_power_w`` (the wall), with ``host_power_w`` the difference between
the wall and the run's cards.

A host file (``npusim/archs/hosts/<name>.yaml``, or a user's YAML given by path)::

    description: 8-GPU HGX H100 server, 2x Xeon Platinum 8470 (Dell XE9680 class)
    slots: 8                      # accelerator slots of one server
    default_for: [h100]           # archs that get this host unless told otherwise (optional)
    fitted_rows: [X1]             # measured rows a value below was fitted on (optional)
    cpu: {count: 2, tdp: 350 W, idle_fraction: 0.25, active_fraction: 1.0, load: 0.1}
    components:                   # any names; per unit: count, idle and fully used power,
      memory: {count: 32, idle: 3 W, active: 6 W, load: 0.1}   # and its use while the
                                  # accelerators run (load, 0..1, default 1)
    fans: {idle_share: 0.05, active_share: 0.10}   # share of the DC load the fans add
    psu: {capacity: 16.8 kW, efficiency: [[0.1, 0.90], [0.2, 0.94], [0.5, 0.96], [1.0, 0.91]]}

The model (:meth:`Host.system`) is two-state. While the accelerators run, every component
draws its power at the use (``load``, 0..1) the run gives it, linear between its ``idle`` (no
use) and ``active`` (full use) figures, and the fans add ``active_share`` of the load; while
they wait, the ``idle`` figures and ``idle_share``; a run busy for a fraction ``b`` of its
window draws ``b`` x busy + (1 - b) x waiting. A CPU socket is linear in its utilisation
between ``idle_fraction`` and ``active_fraction`` of its TDP, the server power model of Fan,
Weber and Barroso ("Power provisioning for a warehouse-sized computer", ISCA 2007); its
``load`` is the utilisation the harness feeding the accelerators gives it (an offline GPU
harness mostly waits on the GPUs). ``load`` defaults to 1 (fully used while busy).

A run on fewer chips than the server has slots still powers the whole server: the empty-handed
accelerators draw their idle power, because a meter at the wall sees them (MLPerf's rows are
whole servers); a run on more chips than one server holds uses ``ceil(chips / slots)``
servers, each with its host.
Wall power is the DC load over the power supplies' efficiency at that load (each server's
load over its ``psu.capacity``, the rated output of the supplies sharing it), interpolated
linearly between the curve's points and held flat beyond its ends.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import ArchError
from .loader import preset_loader, preset_names
from .units import UnitProblem, brief, parse_quantity

FOLDER = "hosts"
NONE = "none"          # --host none: card power only
AUTO = "auto"          # the arch's usual host (default_for)
_TOP = {"description", "slots", "default_for", "fitted_rows", "cpu", "components", "fans",
        "psu", "generic"}
_CPU = {"count", "tdp", "idle_fraction", "active_fraction", "load"}
_CPU_REQUIRED = _CPU - {"load"}
_PART = {"count", "idle", "active", "load"}
_FANS = {"idle_share", "active_share"}
_PSU = {"capacity", "efficiency"}
# Ranges that refuse physical nonsense (assumptions: no server part comes near them).
MAX_SLOTS = 64
MAX_COUNT = 1024
MAX_PART_W = 5000.0          # one component
MAX_TDP_W = 1000.0           # one CPU socket
MAX_FAN_SHARE = 0.5
MAX_PSU_W = 100_000.0
MIN_EFFICIENCY = 0.5
MAX_COMPONENTS = 32
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class Component:
    """``count`` identical parts drawing ``idle_w`` / ``active_w`` each (W)."""

    name: str
    count: int
    idle_w: float
    active_w: float


@dataclass(frozen=True)
class SystemPower:
    """One run's power at both boundaries (W): ``cards_w`` (the run's cards), ``spare_w``
    (powered accelerators the run leaves idle), ``components_w`` (CPUs, memory, NICs, ...),
    ``fans_w``, ``dc_w`` (all of these), ``efficiency`` of the supplies at that load,
    ``system_w`` (at the wall) and ``host_w`` = ``system_w - cards_w``; ``servers`` used."""

    cards_w: float
    spare_w: float
    components_w: float
    fans_w: float
    dc_w: float
    efficiency: float
    system_w: float
    host_w: float
    servers: int


@dataclass(frozen=True)
class Host:
    """A server for accelerators (see the module docstring for the file and the model)."""

    name: str
    description: str
    slots: int
    default_for: tuple[str, ...]
    fitted_rows: tuple[str, ...]
    components: tuple[Component, ...]
    fan_idle_share: float
    fan_active_share: float
    psu_capacity_w: float
    psu_curve: tuple[tuple[float, float], ...]
    generic: bool = False

    def components_w(self, busy: float) -> float:
        """One server's components (W) when the accelerators run a fraction ``busy`` of the time.

        >>> h = Host("t", "", 8, (), (), (Component("cpu", 2, 100.0, 200.0),), 0.0, 0.0, 1e4,
        ...          ((1.0, 1.0),))
        >>> h.components_w(0.5)
        300.0
        """
        b = _fraction(busy)
        return sum(c.count * ((1 - b) * c.idle_w + b * c.active_w) for c in self.components)

    def efficiency(self, dc_w: float) -> float:
        """The supplies' efficiency at one server's DC load ``dc_w`` (linear between points).

        >>> h = Host("t", "", 8, (), (), (), 0.0, 0.0, 1000.0,
        ...          ((0.1, 0.90), (0.2, 0.94), (0.5, 0.96), (1.0, 0.91)))
        >>> round(h.efficiency(350.0), 4), h.efficiency(10.0), h.efficiency(5000.0)
        (0.95, 0.9, 0.91)
        """
        load = dc_w / self.psu_capacity_w
        pts = self.psu_curve
        if load <= pts[0][0]:
            return pts[0][1]
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            if load <= x1:
                return y0 + (y1 - y0) * (load - x0) / (x1 - x0)
        return pts[-1][1]

    def system(self, card_w: float, chips: int, idle_card_w: float,
               busy: float) -> SystemPower:
        """Power of ``chips`` cards drawing ``card_w`` each, in as many of these servers as
        they need, the servers' other slots holding idle cards of ``idle_card_w``.

        >>> h = Host("t", "", 4, (), (), (Component("cpu", 1, 100.0, 200.0),), 0.0, 0.1,
        ...          10_000.0, ((1.0, 0.8),))
        >>> p = h.system(300.0, 2, 50.0, 1.0)
        >>> p.cards_w, p.spare_w, p.components_w, round(p.fans_w, 6), p.system_w
        (600.0, 100.0, 200.0, 90.0, 1237.5)
        >>> round(p.host_w, 6)
        637.5
        """
        if chips < 1:
            raise ArchError(f"host {self.name}: a run needs at least one chip, got {chips}")
        b = _fraction(busy)
        servers = math.ceil(chips / self.slots)
        cards = chips * card_w
        spare = (servers * self.slots - chips) * idle_card_w
        parts = servers * self.components_w(b)
        share = (1 - b) * self.fan_idle_share + b * self.fan_active_share
        fans = share * (cards + spare + parts)
        dc = cards + spare + parts + fans
        eff = self.efficiency(dc / servers)
        wall = dc / eff
        return SystemPower(cards, spare, parts, fans, dc, eff, wall, wall - cards, servers)

    def to_dict(self) -> dict[str, Any]:
        """The resolved host in SI units (W), for reports and JSON."""
        return {"name": self.name, "description": self.description, "slots": self.slots,
                "generic": self.generic, "fitted_rows": list(self.fitted_rows),
                "components": {c.name: {"count": c.count, "idle_w": c.idle_w,
                                        "active_w": c.active_w} for c in self.components},
                "fans": {"idle_share": self.fan_idle_share,
                         "active_share": self.fan_active_share},
                "psu": {"capacity_w": self.psu_capacity_w,
                        "efficiency": [list(p) for p in self.psu_curve]}}


def _fraction(busy: float) -> float:
    if not (isinstance(busy, (int, float)) and math.isfinite(busy)):
        raise ArchError(f"host busy fraction {busy!r} is not a number between 0 and 1")
    return min(1.0, max(0.0, float(busy)))


# ----------------------------------------------------------------------------- reading files

def _mapping(value: Any, keys: set[str], label: str, where: str, required=None) -> dict:
    if not isinstance(value, Mapping):
        raise ArchError(f"{label}: {where}: must be a mapping with keys "
                        f"{', '.join(sorted(keys))}, got {brief(value)}")
    extra = sorted(str(k) for k in value if k not in keys)
    if extra:
        raise ArchError(f"{label}: {where}: unknown key {extra[0]!r}; the keys are "
                        f"{', '.join(sorted(keys))}")
    missing = sorted(k for k in (keys if required is None else required) if k not in value)
    if missing:
        raise ArchError(f"{label}: {where}.{missing[0]}: missing; give it (see "
                        f"npusim/arch/host.py for the file's shape)")
    return dict(value)


def _power(value: Any, label: str, where: str, most: float) -> float:
    try:
        w = parse_quantity(value, "power")
    except UnitProblem as e:
        raise ArchError(f"{label}: {where}: {e}") from None
    if not 0 <= w <= most:
        raise ArchError(f"{label}: {where}: {brief(value)} is outside 0 to {most:,g} W; check "
                        f"the value")
    return w


def _number(value: Any, label: str, where: str, lo: float, hi: float, *,
            integer: bool = False, open_low: bool = False) -> float:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        kind = "an integer" if integer else "a number"
        raise ArchError(f"{label}: {where}: {brief(value)} is not {kind}; give {kind} from "
                        f"{lo:g} to {hi:g}")
    v = float(value)
    if not math.isfinite(v) or v > hi or v < lo or (open_low and v <= lo):
        raise ArchError(f"{label}: {where}: {brief(value)} is outside {lo:g} to {hi:g}; check "
                        f"the value")
    return int(value) if integer else v


def _names(value: Any, label: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 40
                                              for v in value) or len(value) > 64:
        raise ArchError(f"{label}: {where}: must be a list of names (e.g. [h100]), got "
                        f"{brief(value)}")
    return tuple(value)


def _curve(value: Any, label: str) -> tuple[tuple[float, float], ...]:
    where = "psu.efficiency"
    if not isinstance(value, list) or not 1 <= len(value) <= 16:
        raise ArchError(f"{label}: {where}: must be a list of [load fraction, efficiency] "
                        f"pairs, e.g. [[0.1, 0.90], [0.5, 0.96]], got {brief(value)}")
    pts = []
    for i, p in enumerate(value):
        if not isinstance(p, list) or len(p) != 2:
            raise ArchError(f"{label}: {where}[{i}]: must be a pair [load fraction, "
                            f"efficiency], got {brief(p)}")
        x = _number(p[0], label, f"{where}[{i}] load", 0.0, 1.0, open_low=True)
        y = _number(p[1], label, f"{where}[{i}] efficiency", MIN_EFFICIENCY, 1.0)
        if pts and x <= pts[-1][0]:
            raise ArchError(f"{label}: {where}[{i}]: load {x:g} is not above the previous "
                            f"point's {pts[-1][0]:g}; list the points by rising load")
        pts.append((x, y))
    return tuple(pts)


def _component(name: Any, value: Any, label: str) -> Component:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ArchError(f"{label}: components: {brief(name)} is not a component name "
                        f"(lowercase letters, digits and _, e.g. memory)")
    where = f"components.{name}"
    d = _mapping(value, _PART, label, where, required=_PART - {"load"})
    count = _number(d["count"], label, f"{where}.count", 0, MAX_COUNT, integer=True)
    idle = _power(d["idle"], label, f"{where}.idle", MAX_PART_W)
    active = _power(d["active"], label, f"{where}.active", MAX_PART_W)
    load = _number(d.get("load", 1.0), label, f"{where}.load", 0.0, 1.0)
    if active < idle:
        raise ArchError(f"{label}: {where}.active: {brief(d['active'])} is below its idle "
                        f"power {brief(d['idle'])}; a part does not draw less while working")
    return Component(name, count, idle, idle + (active - idle) * load)


def cpu_power(tdp_w: float, idle_fraction: float, active_fraction: float,
              load: float) -> float:
    """One CPU socket's power (W) at utilisation ``load``: linear between ``idle_fraction``
    and ``active_fraction`` of its TDP (Fan, Weber, Barroso, ISCA 2007: a server's power is
    close to linear in its CPU utilisation between its idle and its fully loaded power).

    >>> cpu_power(200.0, 0.25, 1.0, 0.1)
    65.0
    """
    return tdp_w * (idle_fraction + (active_fraction - idle_fraction) * load)


def _cpu(value: Any, label: str) -> Component:
    d = _mapping(value, _CPU, label, "cpu", required=_CPU_REQUIRED)
    count = _number(d["count"], label, "cpu.count", 0, 16, integer=True)
    tdp = _power(d["tdp"], label, "cpu.tdp", MAX_TDP_W)
    lo = _number(d["idle_fraction"], label, "cpu.idle_fraction", 0.0, 1.0)
    hi = _number(d["active_fraction"], label, "cpu.active_fraction", 0.0, 1.0)
    load = _number(d.get("load", 1.0), label, "cpu.load", 0.0, 1.0)
    if hi < lo:
        raise ArchError(f"{label}: cpu.active_fraction: {hi:g} is below idle_fraction {lo:g}")
    return Component("cpu", count, cpu_power(tdp, lo, lo, 0.0), cpu_power(tdp, lo, hi, load))


def build_host(tree: Any, label: str) -> Host:
    """A :class:`Host` from a parsed host file; errors name ``label`` and the field."""
    d = _mapping(tree, _TOP, label, "the host file",
                 required={"description", "slots", "psu"})
    desc = d["description"]
    if not isinstance(desc, str) or not desc.strip() or len(desc) > 400:
        raise ArchError(f"{label}: description: must be one line of text saying what server "
                        f"this is, got {brief(desc)}")
    slots = _number(d["slots"], label, "slots", 1, MAX_SLOTS, integer=True)
    parts = [] if d.get("cpu") is None else [_cpu(d["cpu"], label)]
    comps = d.get("components") or {}
    if not isinstance(comps, Mapping) or len(comps) > MAX_COMPONENTS:
        raise ArchError(f"{label}: components: must be a mapping of at most {MAX_COMPONENTS} "
                        f"named parts, got {brief(comps)}")
    for name, value in comps.items():
        if name == "cpu":
            raise ArchError(f"{label}: components.cpu: the CPUs go in the top-level cpu "
                            f"section (count, tdp, idle_fraction, active_fraction, load)")
        parts.append(_component(name, value, label))
    fans = _mapping(d.get("fans") or {"idle_share": 0.0, "active_share": 0.0}, _FANS, label,
                    "fans")
    f_lo = _number(fans["idle_share"], label, "fans.idle_share", 0.0, MAX_FAN_SHARE)
    f_hi = _number(fans["active_share"], label, "fans.active_share", 0.0, MAX_FAN_SHARE)
    psu = _mapping(d["psu"], _PSU, label, "psu")
    cap = _power(psu["capacity"], label, "psu.capacity", MAX_PSU_W)
    if cap < 100:
        raise ArchError(f"{label}: psu.capacity: {brief(psu['capacity'])} is below 100 W; give "
                        f"the rated output of the supplies sharing the load, e.g. 12 kW")
    generic = d.get("generic", False)
    if not isinstance(generic, bool):
        raise ArchError(f"{label}: generic: must be true or false, got {brief(generic)}")
    name = Path(label).stem if label.endswith((".yaml", ".yml")) else label
    return Host(name=name, description=" ".join(desc.split()), slots=slots,
                default_for=_names(d.get("default_for"), label, "default_for"),
                fitted_rows=_names(d.get("fitted_rows"), label, "fitted_rows"),
                components=tuple(parts), fan_idle_share=f_lo, fan_active_share=f_hi,
                psu_capacity_w=cap, psu_curve=_curve(psu["efficiency"], label),
                generic=generic)


_load = preset_loader(FOLDER, "the host file", "host {name} has no preset", build_host)


def host_names() -> list[str]:
    """The shipped host presets (``npusim/archs/hosts``), sorted."""
    return preset_names(FOLDER)


def load_host(name_or_path: str | Path) -> Host:
    """A shipped host preset by name, or a host YAML file by path.

    >>> load_host("dgx-h100").slots
    8
    """
    return _load(name_or_path)


def default_host(arch_name: str) -> str | None:
    """The preset that names ``arch_name`` in its ``default_for`` (None: no usual host).

    >>> default_host("h100")
    'dgx-h100'
    """
    for name in host_names():
        if arch_name in load_host(name).default_for:
            return name
    return None


def resolve_host(spec: str | Path | Host | None, arch_name: str) -> Host | None:
    """The host a run gets: None or ``"none"`` gives no host; ``"auto"`` the arch's usual
    one (:func:`default_host`, None when it has none); a name or path loads that file."""
    if spec is None or isinstance(spec, Host):
        return spec
    text = str(spec).strip()
    if text.lower() == NONE:
        return None
    if text.lower() == AUTO:
        name = default_host(arch_name)
        return None if name is None else load_host(name)
    if not text:
        raise ArchError("--host: empty; give a host preset name, a host YAML path, auto or "
                        "none")
    return load_host(spec)


def card_idle_w(arch) -> float:
    """One accelerator of ``arch`` powered with nothing loaded (W): ``power.idle``, else its
    energy table's ``idle``, else the table's static power (what a run charges an idle chip).
    What the slots a run leaves empty draw."""
    if arch.power.idle is not None:
        return float(arch.power.idle)
    from ..energy import load_energy_table
    table = load_energy_table(arch)
    if table is None:
        raise ArchError(f"arch {arch.name}: neither power.idle nor an energy table gives the "
                        f"power of an idle chip; set power.idle (--set power.idle=...)")
    idle = getattr(table, "idle", None)      # older tables carried the idle figure here
    return float(idle if idle is not None else table.static)


def system_keys(host: Host | None, card_w: float, chips: int, idle_card_w: float,
                busy: float) -> dict[str, Any]:
    """The summary keys every result carries: ``host`` (name or None), ``host_power_w`` and
    ``system_power_w`` (NaN without a host), for ``chips`` cards of ``card_w`` each.

    >>> system_keys(None, 300.0, 2, 50.0, 1.0)["system_power_w"]
    nan
    """
    if host is None or not math.isfinite(card_w):
        return {"host": None if host is None else host.name, "host_power_w": math.nan,
                "system_power_w": math.nan}
    p = host.system(card_w, chips, idle_card_w, busy)
    return {"host": host.name, "host_power_w": p.host_w, "system_power_w": p.system_w}


__all__ = ["AUTO", "NONE", "Component", "Host", "SystemPower", "build_host", "card_idle_w",
           "cpu_power", "default_host",
           "host_names", "load_host", "resolve_host", "system_keys"]
