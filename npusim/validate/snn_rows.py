"""Measured rows of spiking-core chips (``sim_mode`` ``snn``): the networks and their simulation.

A row names a spiking-core device preset in ``sim_arch`` (``npusim/archs/snn/``, e.g.
``loihi``, ``truenorth``) and a network in ``sim_model``: a YAML file of
``npusim/graphs/snn/`` (:func:`read_network`) holding the layers as published, their sources,
the timesteps of one inference and the spike rate of every layer, with the basis of each
(``assumption`` where nothing is published; a rate is never fitted to a measured energy). The
row is simulated by :func:`npusim.engine.snn.run` on the device; the metrics are

- ``snn_dynamic_energy_j``: dynamic energy of one inference (the device's event costs, no
  static power), as a paper's "running minus idle" figure measures it;
- ``snn_power_w``: chip power under the row's firing rate from the device's calibrated linear
  power model (``linear_power``, snn.md sec. 2.4): the event energy of the run at the model's
  slope ``e_event`` over the run's time, plus the intercept ``p0`` per chip.

``sim_set`` holds the run's settings as ``key=value`` items: ``firing_rate=11.58 Hz`` (every
layer fires at that rate; per timestep it is the rate times the device's tick),
``cost_set=table2`` (one of the device's cost sets). A row is *fitted* when its figure took part
in the device's calibration: a power row whose firing rate is one of the two sweep points the
device's ``p0`` and ``e_event`` were derived from (:func:`fit_points`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import NpusimError

SNN_METRICS = ("snn_dynamic_energy_j", "snn_power_w")
SET_KEYS = ("firing_rate", "cost_set")
NETWORK_DIR = Path(__file__).resolve().parents[1] / "graphs" / "snn"
_TOP = ("name", "description", "sources", "layers", "timesteps", "rates", "basis", "notes",
        "replicas")
_LAYER = ("name", "kind", "shape", "kernel", "stride")
MAX_TIMESTEPS = 100_000         # assumption: 100 s of 1-ms ticks, far past any inference
MAX_REPLICAS = 1_000_000        # assumption: 1,000x TrueNorth's 4,096 cores
FIT_TOLERANCE = 0.01            # a two-point fit reproduces the device's rounded p0, e_event


@dataclass(frozen=True)
class SnnWorkload:
    """A network as measured: the engine network, one inference's timesteps, the rate of every
    layer (mean spikes per neuron per timestep), how many identical copies ran (``replicas``),
    and the sources, bases and notes of the file it came from."""

    name: str
    network: Any
    timesteps: int
    rates: Mapping[str, float]
    replicas: int
    sources: Mapping[str, str]
    basis: Mapping[str, str]
    notes: tuple[str, ...]
    path: str


def network_names() -> list[str]:
    """The shipped networks (``npusim/graphs/snn/*.yaml``), by name."""
    return sorted(p.stem for p in NETWORK_DIR.glob("*.yaml"))


def read_network(name: str) -> SnnWorkload:
    """The shipped network ``name``, checked; every problem is one :class:`NpusimError` naming
    the file and the field.

    >>> w = read_network("blouw-kws")
    >>> [lay.size for lay in w.network.layers], w.timesteps, w.basis["rates"]
    ([390, 256, 256, 29], 10, 'assumption')
    """
    if name not in network_names():
        raise NpusimError(f"SNN network {name!r}: not a shipped network; sim_model names one "
                          f"of {', '.join(network_names())} (npusim/graphs/snn/)")
    return read_network_file(NETWORK_DIR / f"{name}.yaml")


def read_network_file(path: str | Path) -> SnnWorkload:
    """A network file (the shape of ``npusim/graphs/snn/*.yaml``), checked as
    :func:`read_network` does."""
    return _read(str(path))


@lru_cache(maxsize=None)
def _read(path: str) -> SnnWorkload:
    import yaml

    from ..engine.snn import Layer, Network
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise NpusimError(f"{path}: cannot read the network file ({type(e).__name__})") from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise NpusimError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(tree, dict):
        raise NpusimError(f"{path}: expected a mapping with {', '.join(_TOP)}")
    unknown = sorted(set(tree) - set(_TOP))
    if unknown:
        raise NpusimError(f"{path}: unknown field(s) {', '.join(unknown)}; the fields are "
                          f"{', '.join(_TOP)}")
    sources = _mapping(tree, "sources", path)
    basis = _mapping(tree, "basis", path)
    for what in ("layers", "timesteps", "rates"):
        src = basis.get(what)
        if src != "assumption" and src not in sources:
            raise NpusimError(f"{path}, basis.{what}: {src!r} is neither a source ID of "
                              f"'sources' nor 'assumption'")
    layers = []
    for i, lay in enumerate(tree.get("layers") or []):
        if not isinstance(lay, dict) or set(lay) - set(_LAYER):
            raise NpusimError(f"{path}, layers[{i}]: a mapping of {', '.join(_LAYER)}")
        try:
            layers.append(Layer(str(lay["name"]), str(lay["kind"]),
                                tuple(int(d) for d in lay["shape"]),
                                tuple(int(k) for k in lay.get("kernel", (1, 1))),
                                int(lay.get("stride", 1))))
        except (KeyError, TypeError, ValueError) as e:
            raise NpusimError(f"{path}, layers[{i}]: needs name, kind and a list of integer "
                              f"shape dimensions ({type(e).__name__}: {e})") from None
    try:
        net = Network(str(tree.get("name")), tuple(layers))
    except NpusimError as e:
        raise NpusimError(f"{path}, layers: {e}") from None
    if tree.get("name") != Path(path).stem:
        raise NpusimError(f"{path}, name: {tree.get('name')!r} differs from the file name")
    timesteps = _count(tree, "timesteps", path, MAX_TIMESTEPS)
    replicas = _count(tree, "replicas", path, MAX_REPLICAS, default=1)
    rates = _mapping(tree, "rates", path)
    names = [lay.name for lay in layers]
    if sorted(rates) != sorted(names):
        raise NpusimError(f"{path}, rates: give one rate per layer ({', '.join(names)}); got "
                          f"{', '.join(rates) or 'none'}")
    for k, v in rates.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise NpusimError(f"{path}, rates.{k}: {v!r}; a rate is mean spikes per neuron "
                              f"per timestep, in [0, 1]")
    notes = tree.get("notes") or []
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise NpusimError(f"{path}, notes: a list of strings")
    return SnnWorkload(name=net.name, network=net, timesteps=timesteps,
                       rates={k: float(v) for k, v in rates.items()}, replicas=replicas,
                       sources=sources, basis=basis, notes=tuple(notes), path=path)


def _mapping(tree: dict, key: str, path: str) -> dict:
    v = tree.get(key)
    if not isinstance(v, dict) or not v:
        raise NpusimError(f"{path}, {key}: a non-empty mapping is required")
    return {str(k): v[k] for k in v}


def _count(tree: dict, key: str, path: str, most: int, default: int | None = None) -> int:
    v = tree.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= most:
        raise NpusimError(f"{path}, {key}: {v!r}; an integer from 1 to {most:,}")
    return v


# ----------------------------------------------------------------------------- one row
def settings(items: Sequence[str], where: str) -> dict[str, Any]:
    """The row's ``sim_set`` items (``key=value`` strings) as run settings.

    >>> settings(("firing_rate=20.07 Hz",), "row TN2")
    {'firing_rate': 20.07}
    """
    out: dict[str, Any] = {}
    for item in items:
        key, value = (x.strip() for x in item.split("=", 1))
        if key not in SET_KEYS:
            raise NpusimError(f"{where}, column sim_set: {key!r} is not a setting of an SNN "
                              f"row; use {', '.join(SET_KEYS)}")
        if key == "firing_rate":
            m = re.fullmatch(r"(\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*Hz", value)
            if not m or not 0 < float(m.group(1)) <= 1e6:
                raise NpusimError(f"{where}, column sim_set: firing_rate={value!r}; write a "
                                  f"rate in Hz above 0 and at most 1 MHz, e.g. firing_rate="
                                  f"20.07 Hz")
            out[key] = float(m.group(1))
        else:
            out[key] = value
    return out


def check(row: Mapping[str, str], where: str, items: Sequence[str]) -> None:
    """Check an SNN row's columns: a shipped network, a spiking-core device, its settings, one
    chip, and a power row on a device with a linear power model."""
    from ..arch.snn_device import snn_devices
    model = (row.get("sim_model") or "").strip()
    if model not in network_names():
        raise NpusimError(f"{where}, column sim_model: {model!r} is not a shipped SNN network; "
                          f"use one of {', '.join(network_names())} (npusim/graphs/snn/)")
    read_network(model)
    dev = (row.get("sim_arch") or "").strip()
    if dev not in snn_devices():
        raise NpusimError(f"{where}, column sim_arch: {dev!r} is not a spiking-core device; "
                          f"an snn row names one of {', '.join(snn_devices())}")
    chips = (row.get("sim_chips") or "").strip()
    if chips not in ("", "1"):
        raise NpusimError(f"{where}, column sim_chips: {chips!r}; SNN rows run on one chip "
                          f"(leave it empty or 1)")
    settings(items, where)


def _rates(work: SnnWorkload, device, opts: Mapping[str, Any], where: str) -> dict[str, float]:
    if "firing_rate" not in opts:
        return dict(work.rates)
    tick = device.structure.tick
    if not tick:
        raise NpusimError(f"{where}, column sim_set: firing_rate needs a device with a "
                          f"timestep tick; {device.name} has none, give rates in the network")
    p = opts["firing_rate"] * tick
    if p > 1:
        raise NpusimError(f"{where}, column sim_set: firing_rate {opts['firing_rate']:g} Hz "
                          f"is more than one spike per {tick:g} s tick of {device.name}")
    return {k: p for k in work.rates}


def simulate(row: Mapping[str, str], items: Sequence[str], where: str):
    """Run the row's network on its device; returns ``(SnnResult, workload, device, rates)``.

    The dynamic energy comes from the device's event costs (static power 0); a power row prices
    synaptic events at the linear model's slope.
    """
    from ..arch.snn_device import load_snn_device
    from ..engine.snn import run
    opts = settings(items, where)
    work = read_network((row.get("sim_model") or "").strip())
    device = load_snn_device((row.get("sim_arch") or "").strip())
    rates = _rates(work, device, opts, where)
    costs = None
    if row["sim_metric"] == "snn_power_w":
        lp = _linear(device, where)
        costs = {"synop": (lp.e_event, 0.0)}
    res = run(work.network, device, rates, work.timesteps, cost_set=opts.get("cost_set"),
              costs=costs, static_power=0.0)
    return res, work, device, rates


def predict(row: Mapping[str, str], items: Sequence[str], where: str) -> tuple[float, str]:
    """The row's metric as simulated, in its unit, and a line saying what ran."""
    metric = row["sim_metric"]
    if metric not in SNN_METRICS:
        raise NpusimError(f"{where}, column sim_metric: {metric!r} is not a metric of sim_mode "
                          f"snn; use one of {', '.join(SNN_METRICS)}")
    res, work, device, rates = simulate(row, items, where)
    dynamic_j = res.energy_j * work.replicas
    rate_text = ", ".join(sorted({f"{r:g}" for r in rates.values()}))
    load = (f"{work.timesteps} timesteps, rate {rate_text} spikes/neuron/step"
            + (f", x{work.replicas} replicas" if work.replicas > 1 else ""))
    if metric == "snn_dynamic_energy_j":
        return dynamic_j, load
    lp = _linear(device, where)
    if res.latency_s <= 0:
        raise NpusimError(f"{where}: the run took no time on {device.name} (no tick, no "
                          f"event times), so it has no power")
    return dynamic_j / res.latency_s + lp.p0 * res.mapping.chips, load


def _linear(device, where: str):
    if device.linear_power is None:
        raise NpusimError(f"{where}, column sim_metric: snn_power_w needs a device with a "
                          f"calibrated linear power model (linear_power); {device.name} has "
                          f"none")
    return device.linear_power


# ----------------------------------------------------------------------------- fitted rows
def fit_linear_power(a: tuple[float, float], b: tuple[float, float],
                     events_per_hz: float) -> tuple[float, float]:
    """``(p0, e_event)`` of the line through two ``(rate Hz, power W)`` points, with
    ``events_per_hz`` synaptic events per second per Hz of mean firing rate (neurons x active
    synapses): snn.md sec. 2.4's two-point fit.

    >>> p0, e = fit_linear_power((11.58, 0.068), (95.93, 0.094), 1048576 * 128)
    >>> round(p0 * 1e3, 2), round(e * 1e12, 3)
    (64.43, 2.297)
    """
    (fa, pa), (fb, pb) = a, b
    if fa == fb:
        raise NpusimError("a two-point power fit needs two different firing rates")
    e = (pb - pa) / ((fb - fa) * events_per_hz)
    return pa - e * events_per_hz * fa, e


def fit_points(device) -> tuple[float, ...]:
    """The firing rates (Hz) of the two sweep points the device's ``p0`` and ``e_event`` were
    derived from: the pair of its ``linear_power.sweep`` whose two-point fit reproduces both
    within :data:`FIT_TOLERANCE`; empty if none does (or no linear model)."""
    lp = device.linear_power
    if lp is None:
        return ()
    events_per_hz = device.structure.neurons * lp.active_synapses
    pts = list(lp.sweep)
    for i in range(len(pts)):
        for j in range(i + 1, len(pts)):
            if pts[i][0] == pts[j][0]:
                continue
            p0, e = fit_linear_power(pts[i], pts[j], events_per_hz)
            if (math.isclose(p0, lp.p0, rel_tol=FIT_TOLERANCE)
                    and math.isclose(e, lp.e_event, rel_tol=FIT_TOLERANCE)):
                return (pts[i][0], pts[j][0])
    return ()


def is_fitted(row: Mapping[str, str], items: Sequence[str], where: str) -> bool:
    """Whether the row's figure took part in its device's calibration (see the module doc)."""
    from ..arch.snn_device import load_snn_device
    if row.get("sim_metric") != "snn_power_w":
        return False
    rate = settings(items, where).get("firing_rate")
    device = load_snn_device((row.get("sim_arch") or "").strip())
    return rate is not None and any(math.isclose(rate, f, rel_tol=1e-9)
                                    for f in fit_points(device))


__all__ = ["SNN_METRICS", "SnnWorkload", "check", "fit_linear_power", "fit_points",
           "is_fitted", "network_names", "predict", "read_network", "read_network_file",
           "settings", "simulate"]
