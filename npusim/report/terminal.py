"""Terminal tables (rich) for run results, model inspections and the arch list."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ..engine.result import RunResult
from ..ir import Graph


def si(x: float, unit: str = "") -> str:
    """Engineering notation: ``si(4.09e9, 'MAC') == '4.09 GMAC'``."""
    if x == 0:
        return f"0 {unit}".strip()
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"),
                          (1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}{unit}".strip()
    return f"{x:.3g} {unit}".strip()


def console() -> Console:
    """A console that keeps tables readable when piped (rich assumes 80 columns there)."""
    con = Console()
    return con if con.is_terminal else Console(width=120)


def print_run(result: RunResult, con: Console | None = None, top: int = 15) -> None:
    """Summary lines, then the ``top`` ops by latency."""
    con = con or console()
    t = result.totals()
    share = {r.name: r.latency_s / t["latency_s"] if t["latency_s"] else 0.0 for r in result.ops}
    con.print(f"[bold]{result.model}[/bold] on [bold]{result.arch}[/bold] "
              f"(engine: {result.engine})")
    params = result.meta.get("parameters")
    con.print(f"  ops {t['ops']}   MACs {si(t['macs'], 'MAC')}"
              + (f"   parameters {si(params)}" if params else "")
              + f"   DRAM traffic {si(t['dram_bytes'], 'B')}")
    con.print(f"  latency {si(t['latency_s'], 's')} (ops in sequence)   roofline bound "
              f"{si(t['bound_latency_s'], 's')} (compute {si(t['compute_s'], 's')}, "
              f"memory {si(t['memory_s'], 's')})")
    if t["energy_j"] > 0:
        tdp = f" (TDP {t['tdp_w']:.0f} W)" if t.get("tdp_w") else ""
        parts = "   ".join(f"{k} {100 * v / t['energy_j']:.0f}%"
                           for k, v in sorted(t["energy_by_component_j"].items(),
                                              key=lambda kv: -kv[1]) if v > 0)
        con.print(f"  energy {si(t['energy_j'], 'J')}   average power {t['avg_power_w']:.1f} W{tdp}"
                  f"   MAC utilisation {100 * t['utilization']:.1f}%")
        con.print(f"  energy by component: {parts}")
    by_kind: dict[str, float] = {}
    for r in result.ops:
        by_kind[r.kind] = by_kind.get(r.kind, 0.0) + share[r.name]
    con.print("  time by kind: " + "   ".join(
        f"{k} {100 * v:.1f}%" for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])))
    rows = sorted(result.ops, key=lambda r: -r.latency_s)[:top]
    # The source column earns its width only where an op's name is not its ONNX node's.
    show_source = any(r.source != r.name for r in rows)
    table = Table(title=f"top {len(rows)} of {len(result.ops)} ops by latency")
    cols = [("op", "left"), ("type", "left")] + ([("source", "left")] if show_source else []) + [
        ("MACs", "right"), ("bytes", "right"), ("latency", "right"), ("share", "right"),
        ("bound", "left")]
    for col, just in cols:
        table.add_column(col, justify=just, overflow="fold")
    for r in rows:
        cells = [r.name, r.op_type or r.kind] + ([r.source] if show_source else []) + [
            si(r.macs), si(r.bytes, "B"), si(r.latency_s, "s"), f"{100 * share[r.name]:.1f}%",
            r.bound]
        table.add_row(*cells)
    con.print(table)
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


def print_archs(rows: list[tuple[str, str]], con: Console | None = None) -> None:
    con = con or console()
    width = max((len(n) for n, _ in rows), default=0)
    for name, desc in rows:
        con.print(f"{name:<{width}}  {desc}", highlight=False)
