"""Figures of a spiking-core run (:mod:`npusim.report.snn`) and of the ANN-vs-SNN break-even.

Energy per layer stacked by term, spikes and synops per layer, and the break-even curve of
:mod:`npusim.engine.hybrid` (``BreakEven.as_dict()``). Built as matplotlib ``Figure`` objects on
the Agg canvas (never ``pyplot``) and saved through :func:`npusim.figures.save_figure`, as
:mod:`npusim.report.plots` does; matplotlib is the optional extra ``reports``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NpusimError
from ..figures import figure_class, plain_formatter, save_figure
from ..files import make_folder
from .snn import STATIC, TERMS, SnnReport
from .terminal import si

TERM_COLOURS = {"SYNOP": "tab:blue", "UPDATE_ACTIVE": "tab:orange", "UPDATE_IDLE": "tab:olive",
                "SPIKE_OUT": "tab:red", "IN_TILE": "tab:cyan", "HOP_EW": "teal",
                "HOP_NS": "tab:purple", "NEURON_FIRE": "tab:green", "LEARN": "tab:pink",
                "AXON_IN": "tab:brown", STATIC: "tab:gray"}
FIGSIZE = (11.0, 7.0)        # inches; at DPI 100 a PNG is 1100 x 700 pixels (as report/plots.py)
DPI = 100


def energy_figure(report: SnnReport, dpi: int = DPI):
    """Energy per layer, stacked by term (static included); the legend gives each term's
    total and share."""
    Figure = figure_class()
    t = report.totals()
    fig = Figure(figsize=FIGSIZE, dpi=dpi, layout="constrained")
    ax = fig.subplots()
    recs = report.layers
    xs = list(range(len(recs)))
    top = max((r.energy_j for r in recs), default=0.0)
    scale, unit = _unit(top, "J")
    bottom = [0.0] * len(recs)
    for term in TERMS:
        vals = [r.energy_by_term_j.get(term, 0.0) / scale for r in recs]
        if not any(v > 0 for v in vals):
            continue
        total = t["energy_by_term_j"][term]
        pct = 100 * total / t["energy_j"] if t["energy_j"] > 0 else 0.0
        ax.bar(xs, vals, bottom=bottom, width=0.8, color=TERM_COLOURS.get(term, "black"),
               label=f"{term} {si(total, 'J')} ({pct:.1f}%)")
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylim(0, 1.05 * top / scale if top > 0 else 1.0)
    ax.set_ylabel(f"energy ({unit})")
    ax.yaxis.set_major_formatter(plain_formatter())
    if any(b > 0 for b in bottom):
        ax.legend(title="term", fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    ax.set_xticks(xs, [_shorten(r.name) for r in recs], rotation=90 if len(recs) > 8 else 0,
                  fontsize=8)
    ax.set_xlabel("layer (routing is charged to the sending layer, static shared by cores)")
    ax.set_title(f"Energy by term: {report.network} on {report.device} "
                 f"(cost set {report.cost_set})\n{report.timesteps} timesteps, energy "
                 f"{si(t['energy_j'], 'J')}, latency {si(t['latency_s'], 's')}")
    return fig


def spikes_figure(report: SnnReport, dpi: int = DPI):
    """Spikes fired and synops received per layer (two panels, shared layer axis)."""
    Figure = figure_class()
    fig = Figure(figsize=FIGSIZE, dpi=dpi, layout="constrained")
    ax_s, ax_o = fig.subplots(2, 1, sharex=True)
    recs = report.layers
    xs = list(range(len(recs)))
    known = [r.spikes if r.spikes is not None else 0.0 for r in recs]
    ax_s.bar(xs, known, width=0.8, color="tab:red")
    for x, r in zip(xs, recs):
        if r.spikes is None:
            ax_s.text(x, 0, "?", ha="center", va="bottom", color="gray")
        elif r.neurons and report.timesteps:
            ax_s.text(x, r.spikes, f"{r.spikes / (r.neurons * report.timesteps):.3g}/step",
                      ha="center", va="bottom", fontsize=7)
    ax_s.set_ylabel("spikes fired")
    ax_s.set_title(f"Spikes per layer: {report.network} on {report.device}, "
                   f"{report.timesteps} timesteps (label: spikes per neuron per step; "
                   f"? = unknown)")
    ax_o.bar(xs, [r.synops for r in recs], width=0.8, color="tab:blue")
    ax_o.set_ylabel("synops received")
    for ax in (ax_s, ax_o):
        ax.yaxis.set_major_formatter(plain_formatter())
    ax_o.set_xticks(xs, [_shorten(r.name) for r in recs], rotation=90 if len(recs) > 8 else 0,
                    fontsize=8)
    ax_o.set_xlabel("layer")
    return fig


BREAKEVEN_SERIES = ("rate", "snn_energy_j", "ann_energy_j", "spikes_per_synapse")
BREAKEVEN_KEYS = (*BREAKEVEN_SERIES, "timesteps", "crossover_rate",
                  "crossover_spikes_per_synapse")


def breakeven_series(curve: Mapping) -> dict[str, Any]:
    """The break-even curve dict (``BreakEven.as_dict()`` of :mod:`npusim.engine.hybrid`)
    checked and as arrays: ``rate``, ``snn_energy_j``, ``ann_energy_j`` (a list, or one number
    for every rate), ``spikes_per_synapse`` of one length, finite and >= 0, rates in [0, 1];
    ``timesteps`` >= 1; ``crossover_rate`` and ``crossover_spikes_per_synapse`` a number or
    None. Other keys are ignored.

    >>> breakeven_series({"rate": [0, 0.1], "snn_energy_j": [1, 3], "ann_energy_j": 2,
    ...     "spikes_per_synapse": [0, 0.5], "timesteps": 5, "crossover_rate": 0.05,
    ...     "crossover_spikes_per_synapse": 0.25})["ann_energy_j"].tolist()
    [2.0, 2.0]
    """
    where = "break-even curve"
    if not isinstance(curve, Mapping):
        raise NpusimError(f"{where}: expected a dict with keys {', '.join(BREAKEVEN_KEYS)}, "
                          f"got {type(curve).__name__}")
    missing = [k for k in BREAKEVEN_KEYS if k not in curve]
    if missing:
        raise NpusimError(f"{where}: missing keys {missing}; BreakEven.as_dict() gives "
                          f"{', '.join(BREAKEVEN_KEYS)}")
    out: dict[str, Any] = {}
    rate = _series(curve["rate"], "rate", None, where)
    for key in BREAKEVEN_SERIES:
        out[key] = rate if key == "rate" else _series(curve[key], key, rate.size, where)
    if rate.size < 1:
        raise NpusimError(f"{where}: 'rate' is empty; give at least one rate")
    if (rate > 1).any():
        raise NpusimError(f"{where}: 'rate' has values above 1; a rate is mean spikes per "
                          f"neuron per timestep, in [0, 1]")
    ts = curve["timesteps"]
    if isinstance(ts, bool) or not isinstance(ts, (int, np.integer)) or ts < 1:
        raise NpusimError(f"{where}: 'timesteps' is {ts!r}; give an integer >= 1")
    out["timesteps"] = int(ts)
    for key in ("crossover_rate", "crossover_spikes_per_synapse"):
        v = curve[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, np.number))
                              or not math.isfinite(float(v)) or float(v) < 0):
            raise NpusimError(f"{where}: {key!r} is {v!r}; give a finite number >= 0 or None "
                              f"(no crossover)")
        out[key] = None if v is None else float(v)
    return out


def _series(v: Any, key: str, n: int | None, where: str) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise NpusimError(f"{where}: {key!r} must be numbers, got {type(v).__name__}") from None
    if a.ndim == 0 and n is not None:
        a = np.full(n, float(a))
    if a.ndim != 1 or (n is not None and a.size != n):
        raise NpusimError(f"{where}: {key!r} has shape {a.shape}; it needs one value per rate "
                          f"({n if n is not None else 'a list'})")
    if not (np.isfinite(a).all() and (a >= 0).all()):
        raise NpusimError(f"{where}: {key!r} holds negative, NaN or infinite values; every "
                          f"value must be finite and >= 0")
    return a


def breakeven_figure(curve: Mapping, dpi: int = DPI):
    """Energy per inference against mean spike rate, SNN and ANN, with the crossover marked;
    a top axis in spikes per synapse per inference when that is proportional to the rate."""
    d = breakeven_series(curve)
    Figure = figure_class()
    fig = Figure(figsize=FIGSIZE, dpi=dpi, layout="constrained")
    ax = fig.subplots()
    order = np.argsort(d["rate"], kind="stable")
    rate = d["rate"][order]
    top = max(float(d["snn_energy_j"].max()), float(d["ann_energy_j"].max()))
    scale, unit = _unit(top, "J")
    ax.plot(rate, d["snn_energy_j"][order] / scale, "o-", color="tab:red",
            label="SNN (spiking cores)")
    ax.plot(rate, d["ann_energy_j"][order] / scale, "s--", color="tab:blue", label="ANN (NPU)")
    cross = d["crossover_rate"]
    if cross is not None:
        sps = d["crossover_spikes_per_synapse"]
        extra = f", {sps:.3g} spikes per synapse per inference" if sps is not None else ""
        ax.axvline(cross, color="gray", linestyle=":",
                   label=f"crossover at rate {cross:.3g}{extra}")
    else:
        ax.plot([], [], " ", label="no crossover in this range")
    ax.set_xlabel("mean spike rate (spikes per neuron per timestep)")
    ax.set_ylabel(f"energy per inference ({unit})")
    ax.yaxis.set_major_formatter(plain_formatter())
    ax.set_ylim(0, 1.05 * top / scale if top > 0 else 1.0)
    ratio = _proportion(d["rate"], d["spikes_per_synapse"])
    if ratio:
        sec = ax.secondary_xaxis("top", functions=(lambda r: r * ratio, lambda s: s / ratio))
        sec.set_xlabel("spikes per synapse per inference")
    ax.legend(fontsize=9, loc="upper left")
    ax.set_title(f"ANN vs SNN break-even, {d['timesteps']} timesteps", loc="left")
    return fig


def _proportion(x: np.ndarray, y: np.ndarray) -> float | None:
    """``k`` with ``y == k * x`` at every point (relative 1e-6), else None."""
    pos = x > 0
    if not pos.any() or not np.allclose(y[~pos], 0.0):
        return None
    k = y[pos] / x[pos]
    return float(k[0]) if k[0] > 0 and np.allclose(k, k[0], rtol=1e-6, atol=0.0) else None


def plot_energy(report: SnnReport, path: str | Path, dpi: int = DPI) -> Path:
    """Draw :func:`energy_figure` to ``path`` (format from the suffix)."""
    return save_figure(energy_figure(report, dpi), path)


def plot_spikes(report: SnnReport, path: str | Path, dpi: int = DPI) -> Path:
    """Draw :func:`spikes_figure` to ``path``."""
    return save_figure(spikes_figure(report, dpi), path)


def plot_breakeven(curve: Mapping, path: str | Path, dpi: int = DPI) -> Path:
    """Draw :func:`breakeven_figure` of the hybrid helper's ``BreakEven.as_dict()`` to ``path``.

    Raises
    ------
    NpusimError
        A malformed curve (naming the key), missing matplotlib, or an unwritable path.
    """
    return save_figure(breakeven_figure(curve, dpi), path)


def plot_snn(report: SnnReport, outdir: str | Path, dpi: int = DPI) -> list[Path]:
    """Write ``snn_energy.png`` and ``snn_spikes.png`` into ``outdir`` (created if missing)."""
    outdir = make_folder(outdir, "plot")
    return [plot_energy(report, outdir / "snn_energy.png", dpi),
            plot_spikes(report, outdir / "snn_spikes.png", dpi)]


def _unit(x: float, unit: str) -> tuple[float, str]:
    for scale, prefix in ((1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p")):
        if x >= scale:
            return scale, prefix + unit
    return 1e-15, "f" + unit


def _shorten(label: str, width: int = 28) -> str:
    if len(label) <= width:
        return label
    half = (width - 1) // 2
    return label[:half] + "…" + label[-half:]


__all__ = ["BREAKEVEN_KEYS", "BREAKEVEN_SERIES", "breakeven_figure", "breakeven_series",
           "energy_figure", "plot_breakeven", "plot_energy", "plot_snn", "plot_spikes",
           "spikes_figure"]
