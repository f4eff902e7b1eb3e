"""Terminal tables (rich) for run results, model inspections and the arch list."""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..figures import plain_number

from ..engine.result import RunResult
from ..ir import Graph


_PREFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""),
             (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p"))


def si(x: float, unit: str = "") -> str:
    """Engineering notation with three significant digits, never an exponent.

    Examples
    --------
    >>> si(4.09e9, "MAC"), si(999.7e3, "B"), si(0.0), si(2.5e-13, "s")
    ('4.09 GMAC', '1 MB', '0', '0.25 ps')
    """
    if x == 0 or not math.isfinite(x):
        return f"{x:g} {unit}".strip()
    for scale, prefix in _PREFIXES:
        # 999.7e3 rounds to 1.00e6: it is written 1 M, not "1e+03 k".
        if abs(x) >= scale * (1 - 5e-4) or scale == _PREFIXES[-1][0]:
            return f"{plain_number(x / scale)} {prefix}{unit}".strip()
    return f"{x:g} {unit}".strip()   # unreachable: the last prefix takes every small value


def console() -> Console:
    """A console that keeps tables readable when piped (rich assumes 80 columns there)."""
    con = Console()
    return con if con.is_terminal else Console(width=120)


@dataclass(frozen=True)
class Column:
    """A terminal table column.

    ``keep`` orders what goes when the terminal is too narrow: the column with the lowest
    ``keep`` is dropped first, and one with ``keep=None`` never is. Numbers (``wrap=False``)
    are shown whole or not at all; only text such as op names may wrap.
    """

    header: str
    justify: str = "right"
    keep: int | None = None
    wrap: bool = False


WRAP_MIN = 12        # columns a wrapping text column keeps before others are dropped


def fitted_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int,
                 title: str | None = None) -> tuple[Table, list[str]]:
    """A rich table of ``rows`` that fits ``width`` columns without cutting a number.

    Headers wrap between words; number columns never wrap or shrink, so when the table is too
    wide whole columns are dropped, least important (lowest ``keep``) first. Returns the table
    and the headers of the dropped columns, for a note below it.

    Examples
    --------
    >>> cols = [Column("name", "left", wrap=True), Column("a big number", keep=1),
    ...         Column("small", keep=2)]
    >>> t, dropped = fitted_table(cols, [["x", "1,234,567", "7"]], width=20)
    >>> [c.header.plain for c in t.columns], dropped
    (['name', 'small'], ['a big number'])
    """
    need = [_needed(c, [r[j] for r in rows]) for j, c in enumerate(columns)]
    shown = list(range(len(columns)))

    def total(idx):          # heavy-head box: a border per column plus one, padding 1 + 1
        return sum(need[j] + 3 for j in idx) + 1

    while total(shown) > width:
        droppable = [j for j in shown if columns[j].keep is not None]
        if not droppable:
            break
        shown.remove(min(reversed(droppable), key=lambda j: columns[j].keep))
    table = Table(title=title, title_justify="left")
    for j in shown:
        c = columns[j]
        if c.wrap:
            table.add_column(Text(c.header), justify=c.justify, overflow="fold")
        else:
            head = "\n".join(textwrap.wrap(c.header, need[j], break_long_words=False)) or ""
            table.add_column(Text(head), justify=c.justify, no_wrap=True, min_width=need[j])
    for r in rows:
        table.add_row(*(Text(str(r[j])) for j in shown))
    return table, [columns[j].header for j in range(len(columns)) if j not in shown]


def table_width(columns: Sequence[Column], rows: Sequence[Sequence[str]],
                shown: Sequence[str]) -> int:
    """The narrowest width at which the columns headed ``shown`` fit whole."""
    need = [_needed(c, [r[j] for r in rows]) for j, c in enumerate(columns)]
    return sum(n + 3 for n, c in zip(need, columns) if c.header in shown) + 1


def _needed(col: Column, cells: Sequence[str]) -> int:
    """The width a column cannot go below: its widest cell (text: up to WRAP_MIN) and its
    longest header word."""
    word = max((len(w) for w in col.header.split()), default=0)
    widest = max((len(str(c)) for c in cells), default=0)
    return max(word, min(widest, WRAP_MIN) if col.wrap else widest, 1)


def print_fitted(con: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]],
                 title: str | None = None, where: str = "") -> None:
    """Print :func:`fitted_table` at the console's width, and say which columns it left out."""
    table, dropped = fitted_table(columns, rows, con.width, title)
    # Only columns that are never dropped are left and still too wide: print the table at the
    # width it needs (the terminal folds the lines) rather than let rich cut the numbers.
    need = table_width(columns, rows, [c.header for c in columns if c.header not in dropped])
    con.print(table, width=max(con.width, need), crop=False)
    if dropped:
        con.print(f"  not shown at {con.width} columns: {', '.join(dropped)}"
                  + (f" ({where})" if where else " (widen the terminal to see them)"),
                  highlight=False)


def print_items(con: Console, lead: str, items: Sequence[str], indent: str = "    ") -> None:
    """``lead`` and ``items`` on as few lines as fit, breaking only between items, so a label
    never lands on one line and its number on the next."""
    lines, line, first = [], lead, True
    for item in items:
        sep = (" " if lead.strip() else "") if first else "   "
        if not first and len(line) + len(sep) + len(item) > con.width:
            lines.append(line)
            line, sep = indent, ""
        line, first = line + sep + item, False
    lines.append(line)
    for text in lines:
        con.print(text, highlight=False)


def print_run(result: RunResult, con: Console | None = None, top: int = 15) -> None:
    """Summary lines, then the ``top`` ops by latency (columns dropped, never cut, to fit)."""
    con = con or console()
    t = result.totals()
    share = {r.name: r.latency_s / t["latency_s"] if t["latency_s"] else 0.0 for r in result.ops}
    con.print(f"[bold]{result.model}[/bold] on [bold]{result.arch}[/bold] "
              f"(engine: {result.engine})")
    params = result.meta.get("parameters")
    print_items(con, "  ", [f"ops {t['ops']}", f"MACs {si(t['macs'], 'MAC')}"]
                + ([f"parameters {si(params)}"] if params else [])
                + [f"DRAM traffic {si(t['dram_bytes'], 'B')}"])
    print_items(con, "  ", [f"latency {si(t['latency_s'], 's')} (ops in sequence)",
                            f"roofline bound {si(t['bound_latency_s'], 's')} (compute "
                            f"{si(t['compute_s'], 's')}, memory {si(t['memory_s'], 's')})"])
    if t["energy_j"] > 0:
        tdp = f" (TDP {t['tdp_w']:.0f} W)" if t.get("tdp_w") else ""
        print_items(con, "  ", [f"energy {si(t['energy_j'], 'J')}",
                                f"average power {t['avg_power_w']:.1f} W{tdp}",
                                f"MAC utilisation {100 * t['utilization']:.1f}%"])
        print_items(con, "  energy by component:", [
            f"{k} {100 * v / t['energy_j']:.0f}%"
            for k, v in sorted(t["energy_by_component_j"].items(), key=lambda kv: -kv[1])
            if v > 0])
    print_items(con, "  ", [_area_item(t)])
    if "by_device" in t:
        print_items(con, "  by device:", [
            f"{d} {si(v['latency_s'], 's')}"
            + (f" ({100 * v['latency_s'] / t['latency_s']:.1f}%)" if t["latency_s"] else "")
            + (f", {si(v['energy_j'], 'J')}" if t["energy_j"] > 0 else "")
            + f", {v['ops']} ops" for d, v in t["by_device"].items()])
    by_kind: dict[str, float] = {}
    for r in result.ops:
        by_kind[r.kind] = by_kind.get(r.kind, 0.0) + share[r.name]
    print_items(con, "  time by kind:", [
        f"{k} {100 * v:.1f}%" for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])])
    rows = sorted(result.ops, key=lambda r: -r.latency_s)[:top]
    # The source column earns its width only where an op's name is not its ONNX node's.
    show_source = any(r.source != r.name for r in rows)
    # where each op ran, when some ran on PIM units
    show_device = "by_device" in t
    cols = ([Column("op", "left", wrap=True), Column("type", "left", keep=3)]
            + ([Column("source", "left", keep=1, wrap=True)] if show_source else [])
            + ([Column("device", "left", keep=7)] if show_device else [])
            + [Column("MACs", keep=4), Column("bytes", keep=2), Column("latency"),
               Column("share", keep=5), Column("bound", "left", keep=6)])
    cells = [[r.name, r.op_type or r.kind] + ([r.source] if show_source else [])
             + ([r.device] if show_device else [])
             + [si(r.macs), si(r.bytes, "B"), si(r.latency_s, "s"),
                f"{100 * share[r.name]:.1f}%", r.bound] for r in rows]
    print_fitted(con, cols, cells, title=f"top {len(rows)} of {len(result.ops)} ops by latency",
                 where="--csv has every column")
    for w in result.warnings:
        con.print(f"[yellow]warning:[/yellow] {w}")


def inspect_dict(graph: Graph) -> dict:
    """The data ``npusim inspect`` prints and writes."""
    return {
        "model": graph.name,
        "ops": len(graph),
        "macs": graph.macs,
        "parameters": graph.parameters,
        "bytes_by_role": graph.bytes_by_role(),
        "census": graph.census(),
        "inputs": {n: list(graph.tensors[n].shape) for n in graph.inputs if n in graph.tensors},
        "outputs": {n: list(graph.tensors[n].shape) for n in graph.outputs if n in graph.tensors},
        "warnings": list(graph.warnings),
        "meta": graph.meta,
    }


def print_inspect(info: dict, con: Console | None = None) -> None:
    con = con or console()
    con.print(f"[bold]{info['model']}[/bold]: {info['ops']} ops, {si(info['macs'], 'MAC')}, "
              f"{si(info['parameters'])} parameters")
    roles = "   ".join(f"{k} {si(v, 'B')}" for k, v in info["bytes_by_role"].items())
    con.print(f"  bytes by role: {roles}")
    table = Table(title="op census")
    for col in ("op type", "count", "MACs", "share of MACs"):
        table.add_column(col, justify="left" if col == "op type" else "right")
    total = info["macs"] or 1
    for k, v in info["census"].items():
        table.add_row(k, str(v["count"]), si(v["macs"]), f"{100 * v['macs'] / total:.1f}%")
    con.print(table)
    for w in info["warnings"]:
        con.print(f"[yellow]warning:[/yellow] {w}")


def print_pim(summaries: Sequence[dict], con: Console | None = None) -> None:
    """``npusim pim``: a few lines per PIM arch (:func:`npusim.engine.pim.pim_summary`)."""
    con = con or console()
    if not summaries:
        con.print("no arch with PIM units")
    for s in summaries:
        gm = s["gemv"]
        off = "" if s["enabled"] else " (units disabled in this arch; shown as if enabled)"
        con.print(f"[bold]{s['arch']}[/bold]: {s['device']} units{off}", highlight=False)
        per = "bank" if s["banks_per_unit"] == 1 else f"{s['banks_per_unit']} banks"
        print_items(con, "  ", [
            f"units {s['units']} ({s['channels']} channels x {s['units_per_channel']}, one per "
            f"{per})", f"unit clock {si(s['clock_hz'], 'Hz')}",
            f"column interval {si(s['column_interval_s'], 's')}"])
        print_items(con, "  peak:", [f"{d} {plain_number(v)} TFLOPS"
                                     for d, v in s["peak_tflops"].items()])
        print_items(con, "  ", [f"internal bandwidth {si(s['internal_bandwidth'], 'B/s')}",
                                f"external {si(s['external_bandwidth'], 'B/s')}",
                                f"ratio {s['ratio']:.2f}x"])
        cross = s["crossover_batch"]
        print_items(con, "  ", [
            f"GEMV {gm['rows']}x{gm['k']} {gm['dtype']}: {si(gm['kernel_s'], 's')}",
            f"efficiency {100 * gm['efficiency']:.1f}% of the internal-bandwidth bound "
            f"({si(gm['bound_s'], 's')})",
            f"row switches {si(gm['row_s'], 's')}", f"broadcast {si(gm['broadcast_s'], 's')}",
            f"read-out {si(gm['readout_s'], 's')}", f"refresh {si(gm['refresh_s'], 's')}",
            (f"NPU overtakes PIM at batch {cross}" if cross is not None else
             f"PIM still faster than the NPU at batch {s['crossover_limit']}")])


def _area_item(t: dict) -> str:
    """One item for the chip's silicon area (npusim/energy/area.py), TDP beside it."""
    tdp = f" (TDP {t['tdp_w']:.0f} W)" if t.get("tdp_w") else ""
    area = t.get("area_mm2")
    if area is None or area != area:
        return f"silicon area unknown: no area table for the arch's process node{tdp}"
    return f"silicon area {area:,.0f} mm^2, {t.get('area_node')} area model{tdp}"


def print_archs(rows: list[tuple[str, str]], con: Console | None = None,
                snn: list[tuple[str, str]] = ()) -> None:
    """One line per arch, then one per spiking-core device (each line starts with its name)."""
    con = con or console()
    width = max((len(n) for n, _ in (*rows, *snn)), default=0)
    for name, desc in rows:
        con.print(f"{name:<{width}}  {desc}", highlight=False)
    for name, desc in snn:
        con.print(f"{name:<{width}}  [spiking cores] {desc}", highlight=False, markup=False)


def print_hybrid(placement, con: Console | None = None) -> None:
    """A hybrid NPU + spiking-core run: the side of every layer, then its parts (NPU segments,
    spiking segments, converters) with energy and latency; totals are their sums."""
    con = con or console()
    p = placement
    by = p.energy_by_kind()
    con.print(f"[bold]{p.network}[/bold]: {len(p.layers)} layers, T={p.timesteps}, placement: "
              f"{'least ' + p.objective if p.objective in ('energy', 'latency') else 'as given'}",
              highlight=False)
    print_items(con, "  ", [f"energy {si(p.energy_j, 'J')}", f"latency {si(p.latency_s, 's')}",
                            f"NPU {si(by['npu'], 'J')}", f"spiking {si(by['snn'], 'J')}",
                            f"conversion {si(by['convert'], 'J')}"])
    table = Table(box=None, pad_edge=False)
    for col, just in (("part", "left"), ("layers", "left"), ("energy", "right"),
                      ("share", "right"), ("latency", "right")):
        table.add_column(col, justify=just)
    for part in p.parts:
        names = ", ".join(part.layers)
        share = part.energy_j / p.energy_j if p.energy_j else 0.0
        table.add_row(part.kind, Text(names), si(part.energy_j, "J"), f"{100 * share:.1f}%",
                      si(part.latency_s, "s"))
    con.print(table)
    for note in p.notes:
        con.print(f"note: {note}", highlight=False)


def print_breakeven(curve: dict, con: Console | None = None) -> None:
    """``npusim breakeven``: the crossover, then energy per inference at each rate."""
    con = con or console()
    c = curve
    con.print(f"[bold]{c['network']}[/bold]: ANN on {c['npu']} vs SNN on {c['snn']}, "
              f"T={c['timesteps']}, {c['synapses']:,} synapses, {c['macs']:,} MACs",
              highlight=False)
    ann = c["ann_energy_j"][0] if c["ann_energy_j"] else float("nan")
    if c["crossover_rate"] is not None:
        con.print(f"  break-even at spike rate {c['crossover_rate']:.4f} per neuron per step = "
                  f"{c['crossover_spikes_per_synapse']:.3f} spikes per synapse per inference; "
                  f"ANN {si(ann, 'J')} per inference", highlight=False)
    else:
        side = "SNN" if c["regime"] == "snn_cheaper" else "ANN"
        con.print(f"  no crossover: the {side} is cheaper at every rate; ANN {si(ann, 'J')} per "
                  f"inference", highlight=False)
    table = Table(box=None, pad_edge=False)
    for col in ("rate", "spikes/synapse", "SNN energy", "SNN / ANN"):
        table.add_column(col, justify="right")
    for r, sps, e in zip(c["rate"], c["spikes_per_synapse"], c["snn_energy_j"]):
        table.add_row(f"{r:.2f}", f"{sps:.3f}", si(e, "J"), f"{e / ann:.3g}" if ann else "-")
    con.print(table)
    for note in c.get("notes", ()):
        con.print(f"note: {note}", highlight=False)
