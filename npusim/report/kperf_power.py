"""K-Perf power graphs: one card's power and the whole system's against users, with the TDP
and any power cap drawn as lines and, for an arch whose power parts are assumptions (its energy
table gives ``ranges``), the band they allow shaded; energy per output token against users.

The figures are built from a :class:`~npusim.workloads.kperf.KperfResult`'s records
(``card_power_w`` and its ``_low``/``_high`` band, ``system_power_w`` where a host model gave
one, ``energy_per_token_j`` and its band) and drawn with
:func:`npusim.figures.band_panels_figure`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..figures import band_panels_figure, draw_and_save, figure_class

PNG_CARD_POWER = "card_power_vs_users.png"
PNG_SYSTEM_POWER = "system_power_vs_users.png"
PNG_ENERGY_PER_TOKEN = "energy_per_token_vs_users.png"
SYSTEM = "system_power_w"
BAND_NOTE = "assumed power parts' range (held at the power limit: the chip slows there)"
ENERGY_NOTE = "assumed power parts' range"


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _limits(result, arch: str) -> tuple[float | None, float | None]:
    """One chip's TDP and power cap of ``arch`` as run (None where not set)."""
    power = (result.archs.get(arch) or {}).get("power") or {}
    tdp, cap = power.get("tdp"), power.get("cap")
    return (tdp if _finite(tdp) else None), (cap if _finite(cap) else None)


def _pairs(records) -> list[tuple[int, int]]:
    return sorted({(r["input_len"], r["output_len"]) for r in records})


def _lines(result, series, per_system: bool) -> list[tuple[float, str, str]]:
    """A TDP line (solid) and a cap line (dashed) per arch, one chip's or the system's."""
    out, seen = [], set()
    for s in series:
        arch, chips = s["arch"], s["chips"] or 1
        if arch in seen:
            continue
        seen.add(arch)
        tdp, cap = _limits(result, arch)
        k = chips if per_system else 1
        where = f"{chips} x {arch}" if per_system else arch
        if tdp:
            what = "cards' TDP" if per_system else "TDP"
            out.append((tdp * k, f"{where} {what} {tdp * k:,.0f} W", "-"))
        if cap:
            out.append((cap * k, f"{where} cap {cap * k:,.0f} W", "--"))
    return out


def _series(result) -> list[dict]:
    from .kperf import series
    out = []
    for s in series(result):
        chips = next((r.get("chips") for r in s["rows"] if r.get("chips")), None)
        out.append(dict(s, chips=chips))
    return out


def _panels(result, key: str, scale: float, band: bool, per_system: bool,
            lines: bool, note: str = BAND_NOTE) -> list[dict]:
    ss = _series(result)
    ok = [r for s in ss for r in s["rows"]]
    panels = []
    for i, o in _pairs(ok):
        items = []
        for s in ss:
            rows = sorted((r for r in s["rows"] if (r["input_len"], r["output_len"]) == (i, o)),
                          key=lambda r: r["users"])
            if not rows:
                continue
            k = (rows[0].get("chips") or 1) if per_system else 1
            item = dict(label=s["label"], colour=s["colour"], marker=s["marker"],
                        x=[r["users"] for r in rows],
                        y=[_times(r.get(key), scale) for r in rows])
            if band:
                item["band_label"] = f"{s['arch']}: {note}"
                item["low"] = [_times(r.get(f"{key}_low"), scale * k) for r in rows]
                item["high"] = [_times(r.get(f"{key}_high"), scale * k) for r in rows]
            items.append(item)
        panels.append(dict(title=f"input {i}, output {o} tokens", series=items,
                           lines=_lines(result, [s for s in ss if _drawn(s, key)], per_system)
                           if lines else [],
                           empty="no system power (no host model given)"))
    return panels


def _drawn(s: dict, key: str) -> bool:
    """Whether a series has any finite ``key`` (its limits are drawn only then)."""
    return any(_finite(r.get(key)) for r in s["rows"])


def _times(v, k: float) -> float:
    return v * k if _finite(v) else math.nan


def card_power_figure(result, dpi: int = 100, layout: str = "fixed"):
    """One chip's power against users, a panel per input/output pair, TDP and cap lines."""
    return band_panels_figure(_panels(result, "card_power_w", 1.0, True, False, True),
                              "power per card (W)",
                              "Card power vs concurrent users", dpi=dpi, layout=layout)


def system_power_figure(result, dpi: int = 100, layout: str = "fixed"):
    """The whole system's power at the wall (``system_power_w``) against users; TDP and cap
    lines are the cards' sum (the host draws on top of them)."""
    return band_panels_figure(_panels(result, SYSTEM, 1.0, False, True, True),
                              "power per system (W, at the wall)",
                              "System power vs concurrent users (cards + host)", dpi=dpi,
                              layout=layout)


def energy_per_token_figure(result, dpi: int = 100, layout: str = "fixed"):
    """Energy per output token (J, the whole system's) against users, with the band."""
    return band_panels_figure(_panels(result, "energy_per_token_j", 1.0, True, False, False,
                                      ENERGY_NOTE),
                              "energy per output token (J, system)",
                              "Energy per output token vs concurrent users", dpi=dpi,
                              log_y=True, layout=layout)


def band_note(result) -> str | None:
    """A line under the terminal table: what the card power band is, and where its high edge
    sits at the power limit (the chip would slow there instead); None without a band.

    >>> from types import SimpleNamespace as NS
    >>> r = NS(records=[dict(arch="rngd", status="ok", card_power_w_high=150.0)],
    ...        archs={"rngd": {"power": {"tdp": 150.0, "cap": None}}})
    >>> print(band_note(r))
    card W low/high: the power band the assumed power parts allow (energy table ranges); rngd's high edge reaches its 150 W limit in 1 scenario: there the chip would slow down instead of drawing more.
    """
    banded = [r for r in result.records if r.get("status") == "ok"
              and _finite(r.get("card_power_w_high"))]
    if not banded:
        return None
    text = ("card W low/high: the power band the assumed power parts allow (energy table "
            "ranges)")
    capped = []
    for arch in dict.fromkeys(r["arch"] for r in banded):
        tdp, cap = _limits(result, arch)
        limit = min(x for x in (tdp, cap) if x) if (tdp or cap) else None
        n = sum(1 for r in banded if r["arch"] == arch and limit
                and r["card_power_w_high"] >= limit * (1 - 1e-9))
        if n:
            capped.append(f"{arch}'s high edge reaches its {limit:,.0f} W limit in {n} "
                          f"scenario{'s' if n > 1 else ''}")
    if capped:
        text += "; " + "; ".join(capped) + ": there the chip would slow down instead of " \
            "drawing more"
    return text + "."


def has_system_power(result) -> bool:
    """Whether any record that ran carries a finite ``system_power_w`` (a host model)."""
    return any(_finite(r.get(SYSTEM)) for r in result.records)


def power_figures(result) -> list[tuple[str, Any]]:
    """The power PNGs of ``result`` as (file name, function drawing its figure): card power,
    system power when a host model gave it, energy per token."""
    figs = [(PNG_CARD_POWER, card_power_figure)]
    if has_system_power(result):
        figs.append((PNG_SYSTEM_POWER, system_power_figure))
    figs.append((PNG_ENERGY_PER_TOKEN, energy_per_token_figure))
    return figs


def plot_power(result, outdir: str | Path, dpi: int = 100,
               processes: int | None = None) -> list[Path]:
    """The card-power and energy-per-token PNGs, and the system-power one when a host model
    gave system power; returns their paths. ``processes`` draws them side by side (see
    :func:`npusim.report.parallel.run_writers`)."""
    from functools import partial

    from .parallel import run_writers
    outdir = Path(outdir)
    figure_class()                # matplotlib imported once here, before any process forks
    return run_writers([partial(draw_and_save, make, result, outdir / name, dpi)
                        for name, make in power_figures(result)], processes)


__all__ = ["band_note", "PNG_CARD_POWER", "PNG_SYSTEM_POWER", "PNG_ENERGY_PER_TOKEN",
           "card_power_figure", "system_power_figure", "energy_per_token_figure",
           "has_system_power", "power_figures", "plot_power"]
