"""Reports of a spiking-core run: per-layer records, a terminal table, JSON, CSV, a trace.

One record per layer of the network (:class:`SnnLayerRecord`), built from the run's per-core,
per-timestep counts (:class:`~npusim.engine.snn.SnnResult`) and the cost set that priced them;
every exporter reads the same :class:`SnnReport`, and its totals are sums of the records. The
figures are in :mod:`npusim.report.snn_plots`.

Attribution (how a chip-level number lands on a layer):

* **Dynamic energy** is per core: ``sum_t counts[t, c, k] * e[k]`` with the cost vector of the
  run (the device's cost set, with the same ``costs`` and ``layer_costs`` overrides the run got).
  A core's energy goes to the layer(s) whose neurons it holds; a core shared by several layers
  (a mapper that packs layers together) splits its events by its neurons' shares, which is
  an approximation and is said in the notes. The records' per-term sums are checked against
  the run's own per-term energies, so a report priced differently from its run is refused.
* **Routing** is charged to the sending core (:mod:`npusim.kernels.snn`), so a layer's hop and
  message energy is the cost of the spikes it *sends*; its synops are the events it *receives*.
* **Static energy** (static power x chips x latency) belongs to the whole chip; a record's
  share is the fraction of the neuron-holding cores it occupies. A convention, not a
  measurement: an idle core leaks as much as a busy one.
* **Spikes** of a layer are exact from the activity the run was given (rates: expected counts,
  ``rate x neurons x T``). Without it they come from the counts where that is exact: the
  ``NEURON_FIRE`` events of a layer that is not the input (when the cost set counts them), else
  the synops the layer causes in the next one divided by its fan-out when every neuron has the
  same fan-out (dense). Otherwise the record's spikes are None and the notes say so.
* **Busy time**: ``busy_s`` is, summed over timesteps, the busy time of the layer's slowest core
  (its share of each step's critical path when it holds the critical core); ``core_busy_s`` is
  core-seconds (additive); ``critical_steps`` counts the steps in which one of its cores was
  the critical core.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..arch.snn_device import SnnDevice
from ..engine import snn as es
from ..errors import NpusimError
from ..files import write_csv, write_text
from ..kernels import snn as ks
from .export import _jsonable
from .terminal import Column, console, print_fitted, print_items, si

STATIC = "STATIC"
TERMS = (*ks.TERM_NAMES, STATIC)
"""Energy terms of a record, kernel terms first, in the kernel's order."""

REL_TOL = 1e-9               # records vs the run: float summation order only


# ----------------------------------------------------------------------------- the records
@dataclass(frozen=True)
class SnnLayerRecord:
    """What one layer of a spiking run holds and costs (see the module docstring for how each
    number is attributed).

    Attributes
    ----------
    name, kind : str
        The layer and its kind (input, dense, conv2d).
    shape : tuple of int
    neurons, synapses : int
        Neurons of the layer; synapses into it (0 for the input layer).
    first_core, n_cores, per_core : int
        Where it was mapped: its lowest core, how many cores hold its neurons, and at most how
        many neurons one core holds.
    core_share : float
        Cores it occupies: ``n_cores`` when it shares no core, else each shared core counted by
        its neurons' share of it (so the layers' shares add up to the cores in use).
    bound_by : str
        The per-core limit that set ``per_core`` (``neurons_per_core``, ``synaptic_memory``,
        ``fan_in``, or ``layer`` when the whole layer fits one core).
    synops : float
        Synaptic events the layer's neurons integrate over the run.
    spikes : float or None
        Spikes its neurons fire over the run (expected counts for rates); None if unknown.
    energy_j, dynamic_j, static_j : float
        Energy attributed to it: dynamic (its cores' events) + its share of static.
    energy_by_term_j : dict
        Term -> joules: the terms the run priced, then ``STATIC``.
    share : float
        ``energy_j`` over the run's energy.
    busy_s, core_busy_s : float
        Summed over timesteps: its slowest core's busy time; its cores' busy core-seconds.
    critical_steps : int
        Timesteps in which one of its cores was the critical core.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    neurons: int
    synapses: int
    first_core: int
    n_cores: int
    per_core: int
    core_share: float
    bound_by: str
    synops: float
    spikes: float | None
    energy_j: float
    dynamic_j: float
    static_j: float
    energy_by_term_j: dict
    share: float
    busy_s: float
    core_busy_s: float
    critical_steps: int

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


ADDITIVE = ("neurons", "synapses", "core_share", "synops", "energy_j", "dynamic_j", "static_j",
            "core_busy_s", "critical_steps")
"""Record fields whose totals are their sums over the layers (spikes too, when all known)."""


@dataclass(frozen=True, eq=False)
class SnnReport:
    """A spiking run, ready for every exporter: the records, the run-level numbers they do not
    sum to (latency, barrier), the per-step arrays the trace draws, and the device provenance.
    """

    network: str
    device: str
    cost_set: str
    timesteps: int
    layers: tuple[SnnLayerRecord, ...]
    latency_s: float
    barrier_s: float
    tick_s: float
    chips: int
    tiles: int
    step_time_s: np.ndarray
    core_busy_s: np.ndarray
    critical_core: np.ndarray
    core_layer: tuple[str, ...]
    provenance: dict
    notes: tuple[str, ...] = field(default_factory=tuple)

    def totals(self) -> dict[str, Any]:
        """Run totals; every additive one is the sum of the records (``spikes`` None when a
        layer's is unknown), then latency, power and the per-term energies."""
        recs = self.layers
        t: dict[str, Any] = {k: _sum(getattr(r, k) for r in recs) for k in ADDITIVE}
        t["cores"] = int(round(t.pop("core_share")))
        spikes = [r.spikes for r in recs]
        t["spikes"] = None if any(s is None for s in spikes) else _sum(spikes)
        t["timesteps"] = self.timesteps
        t["latency_s"] = self.latency_s
        t["step_s"] = self.latency_s / self.timesteps if self.timesteps else 0.0
        t["barrier_s"] = self.barrier_s
        t["tiles"], t["chips"] = self.tiles, self.chips
        t["avg_power_w"] = t["energy_j"] / self.latency_s if self.latency_s > 0 else 0.0
        t["energy_per_synop_j"] = t["energy_j"] / t["synops"] if t["synops"] > 0 else None
        keys = [k for k in TERMS if any(k in r.energy_by_term_j for r in recs)]
        t["energy_by_term_j"] = {k: _sum(r.energy_by_term_j.get(k, 0.0) for r in recs)
                                 for k in keys}
        return t

    def to_dict(self) -> dict[str, Any]:
        """The JSON tree: ``totals``, ``layers`` (the records), ``device`` (provenance),
        ``steps`` (time and critical core of each timestep) and ``notes``."""
        return {
            "network": self.network,
            "totals": self.totals(),
            "layers": [r.to_dict() for r in self.layers],
            "device": self.provenance,
            "steps": {"step_time_s": self.step_time_s.tolist(),
                      "critical_core": self.critical_core.tolist(),
                      "critical_layer": [self.core_layer[c] if c >= 0 else None
                                         for c in self.critical_core.tolist()]},
            "notes": list(self.notes),
        }


def snn_report(net: es.Network, result: es.SnnResult, device: SnnDevice, *,
               activity: Mapping | None = None, cost_set: str | None = None,
               costs: Mapping | None = None, layer_costs: Mapping | None = None) -> SnnReport:
    """The report of ``result``, a :func:`~npusim.engine.snn.run` of ``net`` on ``device``.

    Pass the same ``cost_set``, ``costs`` and ``layer_costs`` the run got (the records are
    priced again per core and checked against the run's per-term energies), and its
    ``activity`` for exact spikes of every layer.

    Raises
    ------
    NpusimError
        The result is not of this network (layers or cores differ), the activity does not fit
        it, or the records do not add up to the run's energies (different costs).

    Examples
    --------
    >>> from npusim.arch.snn_device import load_snn_device
    >>> net = es.Network("n", (es.Layer("in", "input", (4,)), es.Layer("h", "dense", (3,))))
    >>> dev = load_snn_device("snn-edu")
    >>> act = {"in": 0.5, "h": 0.0}
    >>> rep = snn_report(net, es.run(net, dev, act, 2), dev, activity=act)
    >>> [(r.name, r.synops, r.spikes) for r in rep.layers]
    [('in', 0.0, 4.0), ('h', 12.0, 0.0)]
    """
    mapping = result.mapping
    where = f"SNN report of {net.name!r} on {device.name}"
    _check_shapes(net, result, where)
    T, n_cores, _ = result.counts.shape
    cs = device.cost_set(cost_set)
    weight = _core_weights(net, mapping)                       # (layers, cores)
    e_core = _core_energy(net, result, device, cs.name, costs, layer_costs, weight)
    priced = [k for k, name in enumerate(ks.TERM_NAMES)
              if not math.isnan(result.energy_by_term_j.get(name, math.nan))]
    _check_sums(e_core, result, priced, where)
    used = weight.sum(axis=0) > 0
    n_used = int(used.sum())
    notes = list(result.notes)
    if (np.count_nonzero(weight, axis=0) > 1).any():
        notes.append("a core holds neurons of several layers: its events are split between "
                     "them by neuron share (approximate)")
    spikes, why = _spikes(net, result, cs.all_in, activity, weight, where)
    if why:
        notes.append(why)
    lm_of = {lm.name: lm for lm in mapping.layers}
    busy = result.core_busy_s
    crit = result.critical_core
    owner = weight.argmax(axis=0)
    records = []
    for i, lay in enumerate(net.layers):
        w = weight[i]
        cores = np.flatnonzero(w > 0)
        by_term = {ks.TERM_NAMES[k]: float(w @ e_core[:, k]) for k in priced}
        dynamic = math.fsum(by_term.values())
        static = result.static_j * float(w.sum()) / n_used if n_used else 0.0
        by_term[STATIC] = static
        lm = lm_of.get(lay.name)
        records.append(SnnLayerRecord(
            name=lay.name, kind=lay.kind, shape=tuple(int(d) for d in lay.shape),
            neurons=lay.size, synapses=_synapses(net, i),
            first_core=int(cores.min()) if cores.size else -1, n_cores=int(cores.size),
            per_core=int(lm.per_core) if lm else int(np.bincount(mapping.core_of[lay.name]).max()),
            core_share=float(w.sum()), bound_by=lm.bound_by if lm else "unknown",
            synops=float(w @ result.counts[:, :, ks.SYNOP].sum(axis=0)),
            spikes=spikes[i], energy_j=dynamic + static, dynamic_j=dynamic, static_j=static,
            energy_by_term_j=by_term,
            share=(dynamic + static) / result.energy_j if result.energy_j > 0 else 0.0,
            busy_s=float(busy[:, cores].max(axis=1).sum()) if cores.size else 0.0,
            core_busy_s=float((busy * w).sum()),
            critical_steps=int(sum(1 for t, c in enumerate(crit.tolist())
                                   if c >= 0 and owner[c] == i and busy[t, c] > 0))))
    core_layer = tuple(net.layers[owner[c]].name if used[c] else "" for c in range(n_cores))
    return SnnReport(
        network=net.name, device=device.name, cost_set=cs.name, timesteps=int(T),
        layers=tuple(records), latency_s=float(result.latency_s),
        barrier_s=float(result.barrier_s), tick_s=float(device.structure.tick or 0.0),
        chips=int(mapping.chips), tiles=int(mapping.tiles),
        step_time_s=np.asarray(result.step_time_s, dtype=np.float64),
        core_busy_s=np.asarray(busy, dtype=np.float64),
        critical_core=np.asarray(crit, dtype=np.int64), core_layer=core_layer,
        provenance=provenance(device, cs.name, costs, layer_costs), notes=tuple(notes))


def provenance(device: SnnDevice, cost_set: str | None = None, costs: Mapping | None = None,
               layer_costs: Mapping | None = None) -> dict[str, Any]:
    """Where the device's numbers come from: the file, the cost set, each event's cost with
    its scope, basis and source (ID and reference), the barrier and static power, and the
    overrides the run added.

    >>> from npusim.arch.snn_device import load_snn_device
    >>> p = provenance(load_snn_device("loihi"))
    >>> p["cost_set"]["name"], p["events"]["synop"]["source"], p["events"]["synop"]["basis"]
    ('default', 'SF', 'measured')
    """
    cs = device.cost_set(cost_set)
    refs = dict(device.sources.items())

    def cite(src: str) -> str | None:
        return refs.get(src)

    s = device.structure
    out: dict[str, Any] = {
        "name": device.name, "description": device.description, "file": device.source,
        "structure": {"chips": s.chips, "tiles": s.tiles, "cores_per_tile": s.cores_per_tile,
                      "cores": s.cores, "usable_cores": s.usable,
                      "neurons_per_core": s.neurons_per_core, "fan_in": s.fan_in,
                      "fan_out": s.fan_out, "tick_s": s.tick},
        "cost_set": {"name": cs.name, "description": cs.description, "voltage_v": cs.voltage,
                     "all_in": cs.all_in, "must_fit": list(cs.must_fit)},
        "events": {kind: {"energy_j": ev.energy, "time_s": ev.time, "scope": ev.scope,
                          "basis": ev.basis, "source": ev.source, "reference": cite(ev.source)}
                   for kind, ev in cs.events.items()},
        "barrier": None if cs.barrier is None else {
            "base_s": cs.barrier.base, "per_tile_s": cs.barrier.per_tile,
            "basis": cs.barrier.basis, "source": cs.barrier.source,
            "reference": cite(cs.barrier.source), "fit": cs.barrier.fit},
        "static": None if cs.static is None else {
            "power_w": cs.static.power, "basis": cs.static.basis, "source": cs.static.source,
            "reference": cite(cs.static.source)},
        "sources": refs,
    }
    if costs or layer_costs:
        out["overrides"] = {
            "costs": {k: {"energy_j": j, "time_s": t} for k, (j, t) in (costs or {}).items()},
            "layer_costs": {lay: {k: {"energy_j": j, "time_s": t} for k, (j, t) in over.items()}
                            for lay, over in (layer_costs or {}).items()}}
    return out


def _sum(values):
    """Exact sum: an int for counts of things (neurons, cores), else ``math.fsum``."""
    values = list(values)
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return int(sum(values))
    return math.fsum(float(v) for v in values)


def _check_shapes(net: es.Network, result: es.SnnResult, where: str) -> None:
    """The result must be a run of this network: every layer mapped, the counts' cores the
    mapping's."""
    m = result.mapping
    missing = [lay.name for lay in net.layers if lay.name not in m.core_of]
    if missing:
        raise NpusimError(f"{where}: the result's mapping has no layer {missing}; report a "
                          f"run of this network")
    bad = [lay.name for lay in net.layers if np.shape(m.core_of[lay.name]) != (lay.size,)]
    if bad or result.counts.shape[1:] != (m.n_cores, ks.N_TERMS) \
            or result.core_busy_s.shape != result.counts.shape[:2]:
        raise NpusimError(f"{where}: the result does not match the network (layers {bad} "
                          f"differ in size, or counts and mapping disagree); report a run of "
                          f"this network")


def _core_weights(net: es.Network, mapping: es.CoreMap) -> np.ndarray:
    """``w[layer, core]``: the share of the core's neurons that belong to the layer (each
    used core's column sums to 1; an empty core's is 0)."""
    n = mapping.n_cores
    held = np.array([np.bincount(mapping.core_of[lay.name], minlength=n)[:n]
                     for lay in net.layers], dtype=np.float64).reshape(len(net.layers), n)
    total = held.sum(axis=0)
    return np.divide(held, total, out=np.zeros_like(held), where=total > 0)


def _core_energy(net: es.Network, result: es.SnnResult, device: SnnDevice, cost_set: str,
                 costs: Mapping | None, layer_costs: Mapping | None,
                 weight: np.ndarray) -> np.ndarray:
    """``e[core, term]`` joules over the run, each core priced as :func:`~npusim.engine.snn.run`
    prices it (the overrides of the layer it holds)."""
    cs = device.cost_set(cost_set)
    where = f" of {device.name} ({device.source})"
    unknown = [k for k in (layer_costs or {}) if k not in {lay.name for lay in net.layers}]
    if unknown:
        raise NpusimError(f"SNN report of {net.name!r}: layer_costs names layers {unknown} "
                          f"that the network does not have")
    per_core = result.counts.sum(axis=0)                       # (cores, terms)
    unit = np.zeros((len(net.layers), ks.N_TERMS))             # joules per event, by layer
    for i, lay in enumerate(net.layers):
        over = (layer_costs or {}).get(lay.name, {})
        ev, _ = es.cost_vectors(cs, {**(costs or {}), **dict(over)}, where)
        unit[i] = np.nan_to_num(ev, nan=0.0)                   # absent terms count 0 events
    return per_core * unit[weight.argmax(axis=0)]


def _check_sums(e_core: np.ndarray, result: es.SnnResult, priced: list[int], where: str) -> None:
    """Each term summed over the cores must be the run's; else the costs differ."""
    for k in priced:
        mine = math.fsum(e_core[:, k].tolist())
        theirs = result.energy_by_term_j[ks.TERM_NAMES[k]]
        if not math.isclose(mine, theirs, rel_tol=REL_TOL, abs_tol=1e-24):
            raise NpusimError(f"{where}: {ks.TERM_NAMES[k]} energy priced per core is "
                              f"{mine:.6g} J but the run's is {theirs:.6g} J; pass the "
                              f"cost_set, costs and layer_costs the run was given")


def _synapses(net: es.Network, i: int) -> int:
    if i == 0:
        return 0
    return int(es.connectivity(net, i)[0].size)


def _fan_out(net: es.Network, i: int) -> int | None:
    """The fan-out every neuron of layer ``i`` has into layer ``i + 1``, if they all share one."""
    if i + 1 >= len(net.layers):
        return None
    src, _ = es.connectivity(net, i + 1)
    fo = np.bincount(src, minlength=net.layers[i].size)
    return int(fo[0]) if fo.size and fo[0] > 0 and (fo == fo[0]).all() else None


def _spikes(net: es.Network, result: es.SnnResult, all_in: bool, activity: Mapping | None,
            weight: np.ndarray, where: str) -> tuple[list[float | None], str]:
    """Spikes per layer (module docstring) and a note naming the layers left unknown."""
    T = result.counts.shape[0]
    if activity is not None:
        return [_spikes_of(lay, activity, T, where) for lay in net.layers], ""
    per_core = result.counts.sum(axis=0)
    fire = weight @ per_core[:, ks.NEURON_FIRE]
    synops = weight @ per_core[:, ks.SYNOP]
    out: list[float | None] = []
    for i, lay in enumerate(net.layers):
        if i and not all_in:
            out.append(float(fire[i]))
            continue
        fo = _fan_out(net, i)
        out.append(float(synops[i + 1]) / fo if fo else None)
    unknown = [lay.name for lay, s in zip(net.layers, out) if s is None]
    why = (f"spikes of {unknown} cannot be recovered from this run's counts; pass "
           f"activity= (the rates or rasters given to the run)" if unknown else "")
    return out, why


def _spikes_of(lay: es.Layer, activity: Mapping, T: int, where: str) -> float:
    if lay.name not in activity:
        raise NpusimError(f"{where}: activity has no entry for layer {lay.name!r}; give the "
                          f"rates or rasters the run was given")
    v = activity[lay.name]
    if np.ndim(v) == 0:
        p = float(v)
        if not 0.0 <= p <= 1.0:
            raise NpusimError(f"{where}: layer {lay.name!r} has rate {v}; a rate is in [0, 1]")
        return p * lay.size * T
    a = np.asarray(v)
    if a.shape != (T, lay.size):
        raise NpusimError(f"{where}: layer {lay.name!r}: a raster of shape {a.shape}, but the "
                          f"run has {T} timesteps and the layer {lay.size} neurons")
    return float(a.astype(np.float64).sum())


# ----------------------------------------------------------------------------- terminal
def print_snn(report: SnnReport, con=None) -> None:
    """Summary lines, the energy by term, then one row per layer (columns dropped, never cut,
    to fit the terminal)."""
    con = con or console()
    t = report.totals()
    con.print(f"[bold]{report.network}[/bold] on [bold]{report.device}[/bold] (spiking cores, "
              f"cost set {report.cost_set})")
    spikes = "unknown" if t["spikes"] is None else si(t["spikes"])
    print_items(con, "  ", [f"timesteps {t['timesteps']}", f"neurons {si(t['neurons'])}",
                            f"synapses {si(t['synapses'])}",
                            f"cores {t['cores']} on {t['tiles']} tiles, {t['chips']} chip(s)"])
    print_items(con, "  ", [f"synops {si(t['synops'])}", f"spikes {spikes}"])
    print_items(con, "  ", [f"latency {si(t['latency_s'], 's')}",
                            f"per step {si(t['step_s'], 's')}",
                            f"barrier {si(t['barrier_s'], 's')} per step"])
    per_synop = t["energy_per_synop_j"]
    print_items(con, "  ", [f"energy {si(t['energy_j'], 'J')}",
                            f"dynamic {si(t['dynamic_j'], 'J')}",
                            f"static {si(t['static_j'], 'J')}",
                            f"average power {si(t['avg_power_w'], 'W')}"]
                + ([f"per synop {si(per_synop, 'J')}"] if per_synop else []))
    if t["energy_j"] > 0:
        print_items(con, "  energy by term:", [
            f"{k} {_pct(v / t['energy_j'])}"
            for k, v in sorted(t["energy_by_term_j"].items(), key=lambda kv: -kv[1]) if v > 0])
    cols = [Column("layer", "left", wrap=True), Column("kind", "left", keep=3),
            Column("neurons", keep=6), Column("cores"), Column("per core", keep=5),
            Column("bound by", "left", keep=4), Column("synops", keep=8),
            Column("spikes", keep=7), Column("energy"), Column("share", keep=9),
            Column("busy", keep=2)]
    cells = [[r.name, r.kind, str(r.neurons), str(r.n_cores), str(r.per_core), r.bound_by,
              si(r.synops), "?" if r.spikes is None else si(r.spikes), si(r.energy_j, "J"),
              _pct(r.share) if r.share > 0 else "0%", si(r.busy_s, "s")] for r in report.layers]
    print_fitted(con, cols, cells, title=f"{len(report.layers)} layers",
                 where="the CSV has every column")
    for note in report.notes:
        con.print(f"  note: {note}", highlight=False)


def _pct(x: float) -> str:
    """A share as a percentage; a tiny nonzero one is ``<0.1%``, not ``0.0%``."""
    return f"{100 * x:.1f}%" if x >= 5e-4 else "<0.1%"


# ----------------------------------------------------------------------------- JSON, CSV
def write_snn_json(report: SnnReport, path: str | Path) -> Path:
    """Write :meth:`SnnReport.to_dict` as JSON (non-finite numbers as strings)."""
    text = json.dumps(_jsonable(report.to_dict()), indent=1, allow_nan=False) + "\n"
    return write_text(Path(path), text, "JSON")


CSV_FIELDS = ("name", "kind", "shape", "neurons", "synapses", "first_core", "n_cores",
              "per_core", "core_share", "bound_by", "synops", "spikes", "energy_j", "share",
              "dynamic_j", "static_j", "busy_s", "core_busy_s", "critical_steps")


def csv_columns(report: SnnReport) -> list[str]:
    """The CSV header: :data:`CSV_FIELDS`, then one ``energy_<TERM>_j`` per term the run priced."""
    keys = [k for k in TERMS if any(k in r.energy_by_term_j for r in report.layers)]
    return list(CSV_FIELDS) + [f"energy_{k}_j" for k in keys]


def csv_rows(report: SnnReport) -> list[dict[str, Any]]:
    """One dict per layer, keyed by :func:`csv_columns`; the shape as ``CxHxW``, an unknown
    spike count empty."""
    cols = csv_columns(report)
    rows = []
    for r in report.layers:
        row = {c: getattr(r, c) for c in CSV_FIELDS}
        row["shape"] = "x".join(str(d) for d in r.shape)
        for c in cols[len(CSV_FIELDS):]:
            row[c] = r.energy_by_term_j.get(c[len("energy_"):-len("_j")], 0.0)
        rows.append(row)
    return rows


def write_snn_csv(report: SnnReport, path: str | Path) -> Path:
    """Write one row per layer as CSV (text cells spreadsheet-safe)."""
    return write_csv(path, csv_columns(report), csv_rows(report), "CSV")


# ----------------------------------------------------------------------------- trace
PID = 1


def snn_trace_events(report: SnnReport) -> list[dict]:
    """Chrome trace events (format as :mod:`npusim.report.trace`): a ``timestep`` track with a
    slice per step, a ``barrier`` track (the barrier after the slowest core, then any wait for
    the tick), and a track per neuron-holding core with a slice per step of its busy time.

    Steps start at the sum of the previous step times; times are whole picoseconds.

    >>> from npusim.arch.snn_device import load_snn_device
    >>> net = es.Network("n", (es.Layer("in", "input", (2,)), es.Layer("h", "dense", (1,))))
    >>> dev = load_snn_device("snn-edu")
    >>> rep = snn_report(net, es.run(net, dev, {"in": 1.0, "h": 0.0}, 1), dev)
    >>> [(e["name"], e["ts"], e["dur"]) for e in snn_trace_events(rep) if e["ph"] == "X"]
    [('step 0', 0.0, 0.15), ('barrier', 0.03, 0.12), ('in t0', 0.0, 0.03), ('h t0', 0.0, 0.019)]

    (microseconds; snn-edu: input core 2 messages x 10 ns + 2 hops x 5 ns = 30 ns; hidden
    core 2 synops x 2 ns + 2 axon-ins x 5 ns + 1 idle update x 5 ns = 19 ns; barrier 100 ns
    + 2 tiles x 10 ns.)
    """
    T = report.timesteps
    cores = [c for c, name in enumerate(report.core_layer) if name]
    ends = np.round(np.cumsum(report.step_time_s) * 1e12).astype(np.int64)
    starts = np.concatenate(([0], ends[:-1])) if T else ends
    step_tid, barrier_tid = 1, 2
    tid = {c: 3 + j for j, c in enumerate(cores)}
    ev: list[dict] = [{"name": "process_name", "ph": "M", "pid": PID, "tid": 0,
                       "args": {"name": f"{report.device}: {report.network} (spiking, cost set "
                                        f"{report.cost_set})"}}]
    names = [(step_tid, "timestep"), (barrier_tid, "barrier")] + [
        (tid[c], f"core {c} ({report.core_layer[c]})") for c in cores]
    for i, (t_id, name) in enumerate(names):
        ev.append({"name": "thread_name", "ph": "M", "pid": PID, "tid": t_id,
                   "args": {"name": name}})
        ev.append({"name": "thread_sort_index", "ph": "M", "pid": PID, "tid": t_id,
                   "args": {"sort_index": i}})
    xs: list[dict] = []
    busy = report.core_busy_s
    for t in range(T):
        s0, s1 = int(starts[t]), int(ends[t])
        crit = int(report.critical_core[t])
        slowest = min(s0 + _ps(busy[t].max() if busy.shape[1] else 0.0), s1)
        xs.append(_x(f"step {t}", "step", step_tid, s0, s1, {
            "step": t, "step_time_s": float(report.step_time_s[t]), "critical_core": crit,
            "critical_layer": report.core_layer[crit] if crit >= 0 else None}))
        b_end = min(slowest + _ps(report.barrier_s), s1)
        if b_end > slowest:
            xs.append(_x("barrier", "barrier", barrier_tid, slowest, b_end,
                         {"step": t, "barrier_s": report.barrier_s}))
        if s1 > b_end:
            xs.append(_x("tick wait", "barrier", barrier_tid, b_end, s1,
                         {"step": t, "tick_s": report.tick_s}))
        for c in cores:
            d = _ps(busy[t, c])
            if d > 0:
                xs.append(_x(f"{report.core_layer[c]} t{t}", "core", tid[c], s0,
                             min(s0 + d, s1), {"step": t, "core": c,
                                               "layer": report.core_layer[c],
                                               "busy_s": float(busy[t, c]),
                                               "critical": c == crit}))
    xs.sort(key=lambda e: (e["tid"], e["ts"]))
    return ev + xs


def snn_trace_dict(report: SnnReport) -> dict:
    """The trace file: ``traceEvents`` plus the run's totals in ``otherData``."""
    t = report.totals()
    return {"traceEvents": snn_trace_events(report), "displayTimeUnit": "ns",
            "otherData": {"network": report.network, "device": report.device,
                          "cost_set": report.cost_set, "timesteps": report.timesteps,
                          "latency_s": t["latency_s"], "energy_j": t["energy_j"]}}


def write_snn_trace(report: SnnReport, path: str | Path) -> Path:
    """Write the Chrome / Perfetto trace of ``report`` (opens in https://ui.perfetto.dev)."""
    text = json.dumps(_jsonable(snn_trace_dict(report)), allow_nan=False) + "\n"
    return write_text(Path(path), text, "trace")


def _x(name: str, cat: str, tid: int, start_ps: int, end_ps: int, args: dict) -> dict:
    return {"name": name, "cat": cat, "ph": "X", "pid": PID, "tid": tid,
            "ts": start_ps / 1e6, "dur": (end_ps - start_ps) / 1e6, "args": args}


def _ps(seconds: float) -> int:
    return int(round(float(seconds) * 1e12))


__all__ = ["ADDITIVE", "CSV_FIELDS", "SnnLayerRecord", "SnnReport", "STATIC", "TERMS",
           "csv_columns", "csv_rows", "print_snn", "provenance", "snn_report", "snn_trace_dict",
           "snn_trace_events", "write_snn_csv", "write_snn_json", "write_snn_trace"]
