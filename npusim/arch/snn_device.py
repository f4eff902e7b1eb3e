"""Spiking-core device presets (``npusim/archs/snn/<name>.yaml``): loaded, validated, frozen.

A device describes one neuromorphic chip for the event-driven, per-timestep model of
``/work/shared/reference/snn.md`` sec. 2.2: its structure (a mesh of tiles, cores per tile,
neurons and synaptic memory per core, routing limits, a timestep tick) and what each hardware
event costs in energy and time, with the barrier that ends every timestep and the static power.

Every cost carries its *scope* and *basis* (snn.md sec. 5):

* ``scope: per-term`` prices one event kind; the model adds the kinds up.
* ``scope: all-in`` (only on ``synop``) stands for the whole dynamic energy of the chip per
  synaptic event (TrueNorth's 26 pJ, Hala Point's 6.8 pJ bound). A cost set with an all-in
  synop gives no other energies and no static power: the absent terms are absent, not zero,
  and a model must refuse to price them on top.
* ``basis`` says where the number comes from: ``measured``, ``simulated``, ``derived``
  (arithmetic on cited numbers), ``marketing``, ``fitted``, ``bound``, or ``assumption``.

The YAML shape (``npusim/archs/snn/loihi.yaml`` is the full example)::

    name: loihi
    description: ...
    sources: {SF: <reference>, D18: <reference>}     # source ID -> reference
    structure: {tiles: {x: 8, y: 4}, cores_per_tile: 4, neurons_per_core: 1024, ...}
    costs:                                          # the default cost set
      description: ...
      voltage: null                                 # operating point of the costs, or null
      events:                                       # absent kinds are absent, never zero
        synop: {energy: 35.5 pJ, time: 4.0 ns, scope: per-term, basis: measured, source: SF}
      must_fit: [learn]                             # kinds the device has, costs unpublished
      barrier: {base: 299 ns, per_tile: 0 ns, basis: measured, source: SF, fit: ...,
                multi_chip: null}
      static: {power: 104 mW, basis: derived, source: F20, voltage: null}
    alternatives:                                   # optional: other cost sets, same shape
      table2: {description: ..., events: ..., ...}
    linear_power: null                              # optional: P = P0 + e_event * events/s

Validation reuses the arch schema's machinery, so every problem is one
:class:`~npusim.errors.ArchError` naming the file, the field and the fix.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArchError, NpusimError
from ..files import user_path
from .loader import (apply_overrides, parse_yaml, preset_loader, preset_names, read_description,
                     read_preset)
from .model import FrozenMap
from .schema import (F, S, _line, _read_section, did_you_mean, read_described, read_sources,
                     without)
from .units import brief, split_quantity

EVENT_KINDS = ("synop", "update_active", "update_idle", "neuron_fire", "spike_out", "in_tile",
               "hop_ew", "hop_ns", "learn", "axon_in")
"""Hardware events a cost set may price, in the order of the per-core energy sum:

``synop`` one synaptic event (a spike meeting one synapse: weight read and accumulate);
``update_active`` / ``update_idle`` one neuron (compartment) update in a timestep with / without
input; ``neuron_fire`` the soma's extra work for a neuron that fires (SANA-FE's ``spiking``);
``spike_out`` one message leaving a core (axon-out, per destination core); ``in_tile`` one
spike delivered inside its tile; ``hop_ew`` / ``hop_ns`` one mesh hop east-west / north-south;
``learn`` one synaptic learning (STDP) update; ``axon_in`` one message arriving at a core (per
spiking neuron and destination core: SANA-FE's axon-in unit).

The pipeline stage each kind occupies inside a core is not a device field: it is a property of
the timing model, so the engine holds it (``npusim.engine.snn.STAGES``)."""
SCOPES = ("per-term", "all-in")
BASES = ("measured", "simulated", "derived", "marketing", "fitted", "bound", "assumption")
ASSUMPTION = "assumption"
"""The source ID (and basis) of a number that no source gives."""
DEFAULT = "default"
"""The name :meth:`SnnDevice.cost_set` gives the ``costs`` section."""

_E_WHY = "assumption: 0 (a term folded into others) up to 40x SpiNNaker 1's 26 nJ per update"
_T_WHY = "assumption: 0 up to a millisecond per event (a whole TrueNorth tick)"
_SRC = F("identifier", doc="A source ID from `sources`, or `assumption`.")
_BASIS = F("choice", choices=BASES, doc="Where the number comes from.")
_VOLTS = F("text", nullable=True, doc="Operating voltage of the numbers (`0.75 V`); null if "
                                      "not stated.")

EVENT_SCHEMA = S({
    "energy": F("energy", nullable=True, lo="0 J", hi="1 uJ", why=_E_WHY,
                doc="Energy per event; null if not published."),
    "time": F("time", nullable=True, lo="0 s", hi="1 ms", why=_T_WHY,
              doc="Time the event occupies its core (serial within a core); null if not "
                  "published."),
    "scope": F("choice", choices=SCOPES, doc="`per-term` or `all-in` (synop only)."),
    "basis": _BASIS,
    "source": _SRC,
}, required=False, doc="The cost of one event kind.")

BARRIER_SCHEMA = S({
    "base": F("time", lo="0 s", hi="10 ms", why="assumption: 20x the 465 ns Loihi barrier "
              "up to ten 1-ms ticks", doc="Barrier time of a one-chip system, constant part."),
    "per_tile": F("time", lo="0 s", hi="1 ms", why="assumption: 0 up to a tick per tile",
                  doc="Barrier time added per tile in use."),
    "basis": _BASIS, "source": _SRC,
    "fit": F("text", doc="How base and per_tile were obtained from the published numbers."),
    "multi_chip": S({
        "base": F("time", lo="0 s", hi="1 s", why="assumption: up to 60,000x Loihi's "
                  "16.2 us 768-chip barrier", doc="Barrier time of a multi-chip system, "
                  "constant part."),
        "per_chip": F("time", lo="0 s", hi="1 ms", why="assumption: 0 up to a tick per chip",
                      doc="Barrier time added per chip."),
        "basis": _BASIS, "source": _SRC,
        "fit": F("text", doc="How base and per_chip were obtained."),
    }, nullable=True, doc="The barrier of a system of more than one chip (replaces the "
                          "one-chip form); null if not published."),
}, nullable=True, doc="The barrier that ends each timestep: base + per_tile x tiles on one "
                      "chip; null if not published.")

COST_SCHEMA = S({
    "description": F("text", doc="One line: what the set is and how it was obtained."),
    "voltage": _VOLTS,
    "events": S({k: EVENT_SCHEMA for k in EVENT_KINDS},
                doc="Event kind -> cost; a kind left out is absent (never zero)."),
    "must_fit": F("choices", required=False, choices=EVENT_KINDS,
                  doc="Kinds the device has whose per-term cost is not published: fit them to "
                      "a measurement before pricing them."),
    "barrier": BARRIER_SCHEMA,
    "static": S({
        "power": F("power", lo="0 W", hi="1 kW", why="assumption: up to 250x a Loihi 2 "
                   "chip's 'about 1 W' plus its Hala Point system share (2.26 W)",
                   doc="Static (leakage and clock) power of one chip."),
        "basis": _BASIS, "source": _SRC, "voltage": _VOLTS,
    }, nullable=True, doc="Static power per chip; null if not published (and always null "
                          "beside an all-in synop, which contains it)."),
}, doc="One cost set.")

SCHEMA = S({
    "name": F("identifier", doc="The device (the file's stem)."),
    "description": F("text", doc="One line: the chip and where its numbers come from."),
    "structure": S({
        "tiles": S({
            "x": F("count", lo=1, hi=1024, why="assumption: 16x TrueNorth's 64-wide mesh",
                   doc="Tiles (mesh routers) east-west."),
            "y": F("count", lo=1, hi=1024, why="assumption: 16x TrueNorth's 64-high mesh",
                   doc="Tiles (mesh routers) north-south."),
        }, doc="The mesh of one chip."),
        "cores_per_tile": F("count", lo=1, hi=1024, why="assumption: 256x Loihi's 4",
                            doc="Neuro-cores sharing one router."),
        "usable_cores": F("count", required=False, nullable=True, lo=1, hi=1048576,
                          why="assumption: at most the cores a 1024 x 1024 mesh holds",
                          doc="Cores a system exposes per chip when fewer than all; absent "
                              "or null: all."),
        "neurons_per_core": F("count", lo=1, hi=1048576, why="assumption: 128x Loihi 2's "
                              "8,192", doc="Neurons (compartments) per core."),
        "synaptic_memory": F("size", lo="1 B", hi="1 GiB", why="assumption: 8000x Loihi's "
                             "128 KiB", doc="Synaptic memory per core."),
        "fan_in": F("count", nullable=True, lo=1, hi=1048576, why="assumption: 256x Loihi's "
                    "4,096 axon slots", doc="Input axon slots per core; null if unpublished."),
        "fan_out": F("count", nullable=True, lo=1, hi=1048576, why="assumption: 256x Loihi's "
                     "4,096 core edges", doc="Output core edges per core; null if "
                     "unpublished."),
        "weight_bits": F("count", nullable=True, lo=1, hi=64, why="assumption: up to a "
                         "64-bit word", doc="Largest synaptic weight width; null if "
                         "unpublished."),
        "tick": F("time", nullable=True, lo="1 ns", hi="10 s", why="assumption: 10,000x "
                  "TrueNorth's 1 ms tick", doc="A timestep tick the device always keeps "
                  "(TrueNorth's 1 kHz); null: unthrottled (a throttled run is a run option)."),
        "graded_spikes": F("flag", doc="Whether a spike can carry an integer payload."),
        "graded_spike_bits": F("count", nullable=True, lo=1, hi=64, why="assumption: up to "
                               "a 64-bit word", doc="Payload bits of a graded spike; null if "
                               "none or unpublished."),
        "chips": F("count", lo=1, hi=1048576, why="assumption: 900x Hala Point's 1,152 "
                   "chips", doc="Chips in the default system."),
        "process": F("text", nullable=True, doc="Process node, as published."),
        "voltage": S({"min": _VOLTS, "max": _VOLTS}, nullable=True,
                     doc="Supply voltage range; null if not published."),
    }, doc="What one chip is made of."),
    "costs": COST_SCHEMA,
}, doc="A spiking-core device preset.")
_OWN = ("sources", "alternatives", "linear_power")

LINEAR_SCHEMA = S({
    "p0": F("power", lo="0 W", hi="1 kW", why="assumption: as static power",
            doc="Intercept: power at zero event rate, at `voltage`."),
    "e_event": F("energy", lo="0 J", hi="1 uJ", why=_E_WHY,
                 doc="Slope: energy per synaptic event."),
    "voltage": _VOLTS,
    "active_synapses": F("count", lo=1, hi=1048576, why="assumption: up to 4096x "
                         "TrueNorth's 256 axons", doc="Active synapses per neuron assumed "
                         "when turning a firing rate into events."),
    "basis": _BASIS, "source": _SRC,
}, doc="P = p0 + e_event x neurons x rate x active_synapses.")
SWEEP_SCHEMA = S({
    "rate": F("frequency", lo="0 Hz", hi="1 MHz", why="assumption: up to 1000 spikes per "
              "1-ms tick", doc="Mean firing rate per neuron."),
    "power": F("power", lo="0 W", hi="1 kW", why="assumption: as static power",
               doc="Measured chip power at that rate."),
}, doc="One measured point of a power-vs-rate sweep.")
_VOLT_RANGE = (0.05, 5.0)   # assumption: subthreshold logic to 4x a 1.25 V supply
_VOLT_UNITS = {"V": 1.0, "mV": 1e-3}


@dataclass(frozen=True)
class EventCost:
    """The cost of one event kind: joules and seconds per event (None: not published)."""

    energy: float | None
    time: float | None
    scope: str
    basis: str
    source: str


@dataclass(frozen=True)
class MultiChipBarrier:
    """Barrier of a system of ``chips`` > 1: ``base + per_chip * chips`` seconds."""

    base: float
    per_chip: float
    basis: str
    source: str
    fit: str


@dataclass(frozen=True)
class Barrier:
    """Barrier ending each timestep: ``base + per_tile * tiles`` seconds on one chip."""

    base: float
    per_tile: float
    basis: str
    source: str
    fit: str
    multi_chip: MultiChipBarrier | None

    def seconds(self, tiles: int, chips: int = 1) -> float:
        """Barrier time of one timestep over ``tiles`` tiles in use on ``chips`` chips.

        More than one chip takes the multi-chip form (its published values are whole-system
        barriers, so it replaces the one-chip term); a device without one refuses.

        >>> b = Barrier(100e-9, 10e-9, "derived", "X", "two points", None)
        >>> round(b.seconds(4) * 1e9, 6)
        140.0
        """
        if chips <= 1:
            return self.base + self.per_tile * tiles
        if self.multi_chip is None:
            raise ArchError(f"barrier.multi_chip: this cost set has no multi-chip barrier, so "
                            f"a {chips}-chip system cannot be timed; use one chip or give "
                            f"barrier.multi_chip")
        return self.multi_chip.base + self.multi_chip.per_chip * chips


@dataclass(frozen=True)
class StaticPower:
    """Static power of one chip (W), its basis and source, and its voltage (V) if stated."""

    power: float
    basis: str
    source: str
    voltage: float | None


@dataclass(frozen=True)
class CostSet:
    """One self-consistent set of event costs.

    Attributes
    ----------
    name, description : str
    voltage : float or None
        Volts the costs were taken at; None if not stated.
    events : FrozenMap
        Event kind -> :class:`EventCost`; kinds not in it are absent (never zero).
    must_fit : tuple of str
        Kinds the device has whose per-term cost is not published.
    barrier : Barrier or None
    static : StaticPower or None
    """

    name: str
    description: str
    voltage: float | None
    events: FrozenMap
    must_fit: tuple[str, ...]
    barrier: Barrier | None
    static: StaticPower | None

    @property
    def all_in(self) -> bool:
        """Whether the synop energy stands for the whole dynamic energy (no other terms)."""
        synop = self.events.get("synop")
        return synop is not None and synop.scope == "all-in"


@dataclass(frozen=True)
class LinearPower:
    """TrueNorth-style calibrated power: ``P = p0 + e_event * events/s`` (snn.md sec. 2.4).

    ``sweep`` holds the measured ``(rate Hz, power W)`` points the form was derived from.
    """

    p0: float
    e_event: float
    voltage: float | None
    active_synapses: int
    basis: str
    source: str
    sweep: tuple[tuple[float, float], ...]

    def power(self, events_per_second: float) -> float:
        """Chip power (W) at ``events_per_second`` synaptic events per second.

        >>> LinearPower(0.064, 2.3e-12, 0.8, 128, "derived", "X", ()).power(1e10)
        0.087
        """
        return self.p0 + self.e_event * events_per_second


@dataclass(frozen=True)
class Structure:
    """What one chip is made of (see the schema's docs for each field)."""

    tiles_x: int
    tiles_y: int
    cores_per_tile: int
    usable_cores: int | None
    neurons_per_core: int
    synaptic_memory: float
    fan_in: int | None
    fan_out: int | None
    weight_bits: int | None
    tick: float | None
    graded_spikes: bool
    graded_spike_bits: int | None
    chips: int
    process: str | None
    voltage_min: float | None
    voltage_max: float | None

    @property
    def tiles(self) -> int:
        """Tiles on one chip."""
        return self.tiles_x * self.tiles_y

    @property
    def cores(self) -> int:
        """Neuro-cores per chip: tiles x cores per tile."""
        return self.tiles * self.cores_per_tile

    @property
    def usable(self) -> int:
        """Neuro-cores per chip a mapping may use (``usable_cores`` when given, else all)."""
        return self.usable_cores or self.cores

    @property
    def neurons(self) -> int:
        """Neurons per chip: cores x neurons per core (the published chip total)."""
        return self.cores * self.neurons_per_core


@dataclass(frozen=True)
class SnnDevice:
    """One spiking-core device preset, every quantity in SI units.

    Attributes
    ----------
    name, description : str
    structure : Structure
    costs : CostSet
        The default cost set (named ``"default"``).
    alternatives : FrozenMap
        Name -> other :class:`CostSet` of the same device.
    linear_power : LinearPower or None
    sources : FrozenMap
        Source ID -> reference, as the file gives them.
    source : str
        The file it came from.
    """

    name: str
    description: str
    structure: Structure
    costs: CostSet
    alternatives: FrozenMap
    linear_power: LinearPower | None
    sources: FrozenMap
    source: str = ""

    def cost_set(self, name: str | None = None) -> CostSet:
        """The cost set ``name`` (None or ``"default"``: :attr:`costs`).

        >>> load_snn_device("loihi").cost_set("table2").events["synop"].basis
        'simulated'
        """
        if name is None or name == DEFAULT:
            return self.costs
        if name not in self.alternatives:
            names = [DEFAULT, *self.alternatives]
            raise ArchError(f"{self.source}: no cost set {name!r}{did_you_mean(name, names)}; "
                            f"sets: {', '.join(names)}")
        return self.alternatives[name]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able content, SI units (for cache keys and results written beside a run).

        >>> load_snn_device("truenorth").to_dict()["costs"]["events"]["synop"]["scope"]
        'all-in'
        """
        return _plain(self)


def _plain(x: Any) -> Any:
    """Dataclasses and mappings as dicts, tuples as lists, the rest as it is."""
    if hasattr(x, "__dataclass_fields__"):
        return {f: _plain(getattr(x, f)) for f in x.__dataclass_fields__}
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return [_plain(v) for v in x]
    return x


def snn_devices() -> list[str]:
    """Names of the shipped spiking-core device presets, sorted.

    >>> "truenorth" in snn_devices()
    True
    """
    return preset_names("snn")


def is_snn_device(name_or_path: str | Path) -> bool:
    """True for a shipped spiking-core device name, or a YAML file shaped like one (top-level
    ``structure`` and ``costs``); what decides whether ``--arch`` means spiking cores.

    >>> is_snn_device("loihi"), is_snn_device("rngd")
    (True, False)
    """
    s = str(name_or_path).strip()
    if s.lower() in snn_devices():
        return True
    if not s.lower().endswith((".yaml", ".yml")) or not user_path(s).is_file():
        return False
    try:
        tree = parse_yaml(read_description(user_path(s), "the device file"), s)
    except NpusimError:
        return False
    return isinstance(tree, dict) and "structure" in tree and "costs" in tree


def load_snn_device(name_or_path: str | Path, overrides=None) -> SnnDevice:
    """Load a spiking-core device by name (``"loihi"``) or from a YAML file.

    Parameters
    ----------
    name_or_path : str or Path
        A shipped device name (see :func:`snn_devices`) or the path of a device ``.yaml``.
    overrides : mapping or sequence of str, optional
        ``{"structure.neurons_per_core": 2048}`` or ``["costs.events.synop.energy=20 pJ"]``:
        dotted fields of :data:`SCHEMA` set on the raw tree, then validated exactly like the
        file, by the arch loader's own :func:`~npusim.arch.loader.apply_overrides` (same rules,
        same messages); what lets a sweep vary spiking-core fields.

    Raises
    ------
    ArchError
        For an unknown name, unreadable or malformed file, unknown, duplicate or missing
        fields, wrong units, impossible values, or per-term energies beside an all-in one;
        the message names the file and field.

    Examples
    --------
    >>> d = load_snn_device("loihi")
    >>> d.structure.neurons, round(d.costs.events["synop"].energy * 1e12, 1)
    (131072, 35.5)
    >>> load_snn_device("loihi", {"structure.cores_per_tile": 8}).structure.cores
    256
    """
    if not overrides:
        return _load(name_or_path)
    text, label = read_preset(name_or_path, "snn", "the spiking-core device file",
                              f"spiking-core device {str(name_or_path)!r} has no preset")
    tree, _ = apply_overrides(parse_yaml(text, label), overrides, label, SCHEMA)
    return build_snn_device(tree, label)


def _volts(value: str | None, label: str, dotted: str) -> float | None:
    """``'0.775 V'`` (or mV) as volts; None stays None."""
    if value is None:
        return None
    parts = split_quantity(value)
    if parts is None or parts[1] not in _VOLT_UNITS:
        raise ArchError(f"{label}: {dotted}: {brief(value)} is not a voltage; expected a "
                        f"number and V or mV, e.g. '0.75 V' (or null if not stated)")
    v = float(parts[0]) * _VOLT_UNITS[parts[1]]
    if not _VOLT_RANGE[0] <= v <= _VOLT_RANGE[1]:
        raise ArchError(f"{label}: {dotted}: {brief(value)} is outside {_VOLT_RANGE[0]:g} .. "
                        f"{_VOLT_RANGE[1]:g} V (assumption: subthreshold logic up to 4x a "
                        f"1.25 V supply); give a value in that range")
    return v


def _check_source(src: str, basis: str, sources: Mapping, label: str, dotted: str) -> None:
    if src != ASSUMPTION and src not in sources:
        raise ArchError(f"{label}: {dotted}.source: {src!r} is not a source ID"
                        f"{did_you_mean(src, list(sources))}; use one of "
                        f"{', '.join(sources)} or 'assumption'")
    if (src == ASSUMPTION) != (basis == ASSUMPTION):
        raise ArchError(f"{label}: {dotted}.basis: {basis!r} with source {src!r}: a number "
                        f"with no source has basis 'assumption', and only it; fix one")


def _cost_set(tree: Any, name: str, path: str, sources: Mapping, label: str) -> CostSet:
    v = _read_section(tree, COST_SCHEMA, path, label)
    events: dict[str, EventCost] = {}
    for kind in EVENT_KINDS:
        e = v["events"][kind]
        if e is None:
            continue
        where = f"{path}events.{kind}"
        if e["energy"] is None and e["time"] is None:
            raise ArchError(f"{label}: {where}: gives neither energy nor time; give one, or "
                            f"leave the kind out (absent) or list it in {path}must_fit")
        if e["scope"] == "all-in" and kind != "synop":
            raise ArchError(f"{label}: {where}.scope: 'all-in' belongs on synop only (the "
                            f"whole dynamic energy per synaptic event); make it per-term")
        _check_source(e["source"], e["basis"], sources, label, where)
        events[kind] = EventCost(**e)
    must_fit = tuple(v["must_fit"] or ())
    costs = CostSet(name=name, description=v["description"],
                    voltage=_volts(v["voltage"], label, f"{path}voltage"),
                    events=FrozenMap(events), must_fit=must_fit,
                    barrier=_barrier(v["barrier"], path, sources, label),
                    static=_static(v["static"], path, sources, label))
    for kind in must_fit:
        e = events.get(kind)
        if e is not None and e.scope == "per-term" and e.energy is not None:
            raise ArchError(f"{label}: {path}must_fit: {kind} is listed as unpublished but "
                            f"{path}events.{kind}.energy gives it; drop one")
    if costs.all_in:
        for kind, e in events.items():
            if kind != "synop" and e.energy is not None:
                raise ArchError(
                    f"{label}: {path}events.{kind}.energy: a per-term energy beside the all-in "
                    f"{path}events.synop, which already stands for the whole dynamic energy; "
                    f"remove it (absent terms are absent, not zero) or make synop per-term")
        if costs.static is not None:
            raise ArchError(f"{label}: {path}static: static power beside the all-in "
                            f"{path}events.synop, which already contains it; set static to "
                            f"null or make synop per-term")
    return costs


def _barrier(b: dict | None, path: str, sources: Mapping, label: str) -> Barrier | None:
    if b is None:
        return None
    _check_source(b["source"], b["basis"], sources, label, f"{path}barrier")
    m = b["multi_chip"]
    multi = None
    if m is not None:
        _check_source(m["source"], m["basis"], sources, label, f"{path}barrier.multi_chip")
        multi = MultiChipBarrier(**m)
    return Barrier(**{**b, "multi_chip": multi})


def _static(s: dict | None, path: str, sources: Mapping, label: str) -> StaticPower | None:
    if s is None:
        return None
    _check_source(s["source"], s["basis"], sources, label, f"{path}static")
    return StaticPower(power=s["power"], basis=s["basis"], source=s["source"],
                       voltage=_volts(s["voltage"], label, f"{path}static.voltage"))


def _linear(tree: Any, sources: Mapping, label: str) -> LinearPower | None:
    if tree is None:
        return None
    if not isinstance(tree, Mapping):
        raise ArchError(f"{label}: linear_power: expected a mapping (p0, e_event, voltage, "
                        f"active_synapses, basis, source, sweep) or null, got {brief(tree)}")
    v = _read_section(without(tree, ("sweep",)), LINEAR_SCHEMA, "linear_power.", label)
    _check_source(v["source"], v["basis"], sources, label, "linear_power")
    raw = tree.get("sweep", [])
    if not isinstance(raw, list) or len(raw) == 1:
        raise ArchError(f"{label}: linear_power.sweep{_line(tree, 'sweep')}: expected a list "
                        f"of at least two {{rate, power}} points (or leave it out)")
    sweep = []
    for i, point in enumerate(raw):
        p = _read_section(point, SWEEP_SCHEMA, f"linear_power.sweep[{i}].", label)
        sweep.append((p["rate"], p["power"]))
    return LinearPower(p0=v["p0"], e_event=v["e_event"],
                       voltage=_volts(v["voltage"], label, "linear_power.voltage"),
                       active_synapses=v["active_synapses"], basis=v["basis"],
                       source=v["source"], sweep=tuple(sweep))


def build_snn_device(tree: Any, label: str) -> SnnDevice:
    """Validate a raw device tree (as the YAML loader returned it) into a :class:`SnnDevice`.

    Raises
    ------
    ArchError
        Naming ``label`` and the dotted field at fault, with the fix.
    """
    v = read_described(tree, SCHEMA, _OWN, ("sources",), label, "a spiking-core device",
                       "npusim/archs/snn/snn-edu.yaml")
    sources = read_sources(tree, label, "{D18: Davies 2018, Table 2}")
    if ASSUMPTION in sources:
        raise ArchError(f"{label}: sources.{ASSUMPTION}: is reserved for numbers without a "
                        f"source; rename that source ID")
    costs = _cost_set(tree["costs"], DEFAULT, "costs.", sources, label)
    alternatives: dict[str, CostSet] = {}
    raw = tree.get("alternatives") or {}
    if not isinstance(raw, Mapping):
        raise ArchError(f"{label}: alternatives{_line(tree, 'alternatives')}: expected a "
                        f"mapping of cost-set name to cost set, got {brief(raw)}")
    for name, sub in raw.items():
        if not isinstance(name, str) or not name.isidentifier() or name == DEFAULT:
            raise ArchError(f"{label}: alternatives.{name}: a cost-set name is one word "
                            f"(letters, digits, _) and not {DEFAULT!r}; rename it")
        alternatives[name] = _cost_set(sub, name, f"alternatives.{name}.", sources, label)
    s = v["structure"]
    volts = s["voltage"] or {"min": None, "max": None}
    structure = Structure(
        tiles_x=s["tiles"]["x"], tiles_y=s["tiles"]["y"], cores_per_tile=s["cores_per_tile"],
        usable_cores=s["usable_cores"], neurons_per_core=s["neurons_per_core"],
        synaptic_memory=s["synaptic_memory"], fan_in=s["fan_in"], fan_out=s["fan_out"],
        weight_bits=s["weight_bits"], tick=s["tick"], graded_spikes=s["graded_spikes"],
        graded_spike_bits=s["graded_spike_bits"], chips=s["chips"], process=s["process"],
        voltage_min=_volts(volts["min"], label, "structure.voltage.min"),
        voltage_max=_volts(volts["max"], label, "structure.voltage.max"))
    device = SnnDevice(name=v["name"], description=v["description"], structure=structure,
                       costs=costs, alternatives=FrozenMap(alternatives),
                       linear_power=_linear(tree.get("linear_power"), sources, label),
                       sources=sources,
                       source=label)
    _cross_check(structure, label)
    return device


def _cross_check(s: Structure, label: str) -> None:
    if s.usable_cores is not None and s.usable_cores > s.cores:
        raise ArchError(f"{label}: structure.usable_cores: {s.usable_cores} is more than the "
                        f"{s.cores} cores of tiles.x x tiles.y x cores_per_tile; fix one")
    if s.graded_spike_bits is not None and not s.graded_spikes:
        raise ArchError(f"{label}: structure.graded_spike_bits: given, but graded_spikes is "
                        f"false; set graded_spikes: true or graded_spike_bits: null")
    if (s.voltage_min is None) != (s.voltage_max is None) or (
            s.voltage_min is not None and s.voltage_min > s.voltage_max):
        raise ArchError(f"{label}: structure.voltage: min ({s.voltage_min}) and max "
                        f"({s.voltage_max}) must both be given with min <= max, or the "
                        f"section null")


_load = preset_loader("snn", "the spiking-core device file",
                      "spiking-core device {name} has no preset", build_snn_device)

__all__ = ["ASSUMPTION", "BASES", "Barrier", "CostSet", "DEFAULT", "EVENT_KINDS", "EventCost",
           "LinearPower", "MultiChipBarrier", "SCHEMA", "SCOPES", "SnnDevice", "StaticPower",
           "Structure", "build_snn_device", "load_snn_device", "snn_devices"]

