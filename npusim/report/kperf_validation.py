"""Graphs of a K-Perf validation (:mod:`npusim.validate.kperf_sheet`): decode tokens/s against
users and TTFT against input length (measured as markers, simulated as lines), and the error of
every cell per metric.

The validation job computes; this face draws, with the shared primitives of
:mod:`npusim.figures` (a :class:`matplotlib.figure.Figure` on the Agg canvas, never ``pyplot``).
matplotlib is the optional extra ``reports``, imported when a figure is drawn.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..figures import COLOURS, MARKERS, figure_class, log_ticks, save_figure
from ..validate.kperf_sheet import METRIC_BY_KEY, PNG_DECODE, PNG_ERROR, PNG_TTFT

if TYPE_CHECKING:
    from ..validate.kperf_sheet import KperfValidation


def _pct(v: Any) -> str:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return f"{100 * v:.1f}%" if ok else "n/a"


def plot_validation(result: "KperfValidation", outdir: str | Path, dpi: int = 100) -> list[Path]:
    """Draw decode tokens/s vs users and TTFT vs input length (measured values as markers,
    simulated as lines) and the error of every cell per metric into ``outdir`` (which must
    exist).

    Raises
    ------
    NpusimError
        If matplotlib (the optional extra ``reports``) is missing.
    """
    outdir = Path(outdir)
    return [save_figure(decode_figure(result, dpi), outdir / PNG_DECODE),
            save_figure(ttft_figure(result, dpi), outdir / PNG_TTFT),
            save_figure(error_figure(result, dpi), outdir / PNG_ERROR)]


def _series(result: "KperfValidation", metric: str) -> list[tuple[str, list[dict]]]:
    """Cells of ``metric`` grouped per (precision, chips), labelled."""
    groups: dict[str, list[dict]] = {}
    for c in result.cells:
        if c["metric"] == metric:
            label = c["precision"] + (f" x{c['chips']} chips" if (c["chips"] or 1) > 1 else "")
            groups.setdefault(label, []).append(c)
    return list(groups.items())


def _style(n: int) -> tuple[str, str]:
    return COLOURS[n % len(COLOURS)], MARKERS[n % len(MARKERS)]


def _pick(result: "KperfValidation", keys: Sequence[str]) -> str | None:
    have = set(result.measured.metrics())
    return next((k for k in keys if k in have), None)


def decode_figure(result: "KperfValidation", dpi: int = 100):
    """Decode tokens/s against users, a panel per input/output pair (system decode, else per
    user)."""
    Figure = figure_class()
    key = _pick(result, ("decode_tok_s", "decode_tok_s_per_user"))
    cells = [c for c in result.cells if c["metric"] == key]
    pairs = sorted({(c["input_len"], c["output_len"]) for c in cells}) or [None]
    ncols = 1 if len(pairs) == 1 else 2
    nrows = math.ceil(len(pairs) / ncols)
    fig = Figure(figsize=(6.0 * ncols, 1.2 + 4.2 * nrows), dpi=dpi, layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False).flat)
    series = _series(result, key) if key else []
    for ax, pair in zip(axes, pairs):
        if pair is None:
            ax.text(0.5, 0.5, "the sheet has no decode tokens/s column", ha="center",
                    va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        for n, (label, cs) in enumerate(series):
            colour, marker = _style(n)
            pts = sorted((c["users"], c["measured"], c["simulated"]) for c in cs
                         if (c["input_len"], c["output_len"]) == pair)
            _overlay(ax, pts, colour, marker, label)
        ax.set_title(f"input {pair[0]} / output {pair[1]} tokens")
        ax.set_xlabel("concurrent users")
        ax.set_ylabel("decode (tok/s" + (", per user)" if key.endswith("user") else ", system)"))
        log_ticks(ax, sorted({c["users"] for c in cells}), "x")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(pairs):]:
        ax.set_visible(False)
    _legend(fig, series)
    fig.suptitle(f"Decode throughput, measured vs simulated: {result.model} on {result.arch}")
    return fig


def ttft_figure(result: "KperfValidation", dpi: int = 100):
    """TTFT against input length at the fewest and the most users, each at the shortest
    output length measured there (mean TTFT, else p50, else p99)."""
    Figure = figure_class()
    key = _pick(result, ("ttft_mean_s", "ttft_p50_s", "ttft_p99_s"))
    cells = [c for c in result.cells if c["metric"] == key]
    users = sorted({c["users"] for c in cells})
    panels = users[:1] if len(users) == 1 else [users[0], users[-1]] if users else [None]
    fig = Figure(figsize=(6.0 * len(panels), 5.6), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    series = _series(result, key) if key else []
    for ax, u in zip(axes, panels):
        if u is None:
            ax.text(0.5, 0.5, "the sheet has no TTFT column", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_axis_off()
            continue
        out_len = min(c["output_len"] for c in cells if c["users"] == u)
        for n, (label, cs) in enumerate(series):
            colour, marker = _style(n)
            pts = sorted((c["input_len"], 1e3 * c["measured"],
                          None if c["simulated"] is None else 1e3 * c["simulated"])
                         for c in cs if c["users"] == u and c["output_len"] == out_len)
            _overlay(ax, pts, colour, marker, label)
        ax.set_title(f"{u} concurrent user{'s' if u > 1 else ''}, output {out_len} tokens")
        ax.set_xlabel("input length (tokens)")
        ax.set_ylabel(f"{METRIC_BY_KEY[key].label.replace(' (ms)', '')} (ms)")
        log_ticks(ax, sorted({c["input_len"] for c in cells}), "x")
        if ax.has_data():
            ax.set_yscale("log")
            _plain_log_labels(ax.yaxis)
        ax.grid(True, which="both", alpha=0.3)
    _legend(fig, series)
    fig.suptitle(f"Time to first token, measured vs simulated: {result.model} on {result.arch}")
    return fig


def error_figure(result: "KperfValidation", dpi: int = 100):
    """Signed error of every cell, a column per metric, with the 10% and 25% bands shaded and
    each metric's MAPE above its column."""
    from matplotlib.ticker import PercentFormatter
    Figure = figure_class()
    keys = result.measured.metrics()
    fig = Figure(figsize=(max(6.0, 1.0 + 0.75 * len(keys)), 5.6), dpi=dpi,
                 layout="constrained")
    ax = fig.subplots()
    ax.axhspan(-25, 25, color="tab:orange", alpha=0.10, lw=0)
    ax.axhspan(-10, 10, color="tab:green", alpha=0.15, lw=0)
    ax.axhline(0, color="black", lw=0.8)
    for n, key in enumerate(keys):
        errs = [100 * c["error"] for c in result.cells
                if c["metric"] == key and c["error"] is not None]
        if not errs:
            continue
        colour, marker = _style(n)
        # Spread a column's points sideways so equal errors stay visible.
        xs = [n + 0.3 * ((i % 7) / 6 - 0.5) for i in range(len(errs))]
        ax.scatter(xs, errs, color=colour, marker=marker, s=22, alpha=0.8)
        ax.annotate(f"MAPE\n{_pct(result.mape(key))}", (n, 1.0), xycoords=("data",
                    "axes fraction"), xytext=(0, 3), textcoords="offset points",
                    ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(keys)),
                  [METRIC_BY_KEY[k].label.rsplit(" (", 1)[0] for k in keys],
                  rotation=45, ha="right")
    ax.set_xlim(-0.6, max(len(keys), 1) - 0.4)
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    ax.set_ylabel("error: simulated / measured - 1")
    ax.grid(True, axis="y", alpha=0.3)
    if not keys:
        ax.text(0.5, 0.5, "no measured cell", ha="center", va="center",
                transform=ax.transAxes)
    fig.suptitle(f"Error per cell (green: within 10%, orange: within 25%): {result.model} on "
                 f"{result.arch}")
    return fig


def _plain_log_labels(axis) -> None:
    """Log-axis labels as plain numbers (0.02, 150) rather than powers of ten."""
    from matplotlib.ticker import FuncFormatter
    fmt = FuncFormatter(lambda v, _pos: f"{v:.3g}")
    axis.set_major_formatter(fmt)
    axis.set_minor_formatter(fmt)


def _overlay(ax, pts: list[tuple], colour: str, marker: str, label: str) -> None:
    """Measured as bare markers, simulated as a line through the same x values."""
    if not pts:
        return
    ax.plot([p[0] for p in pts], [p[1] for p in pts], ls="none", marker=marker, ms=8,
            mfc="none", mew=1.8, color=colour, label=f"{label} measured")
    sim = [(p[0], p[2]) for p in pts if p[2] is not None]
    if sim:
        ax.plot([p[0] for p in sim], [p[1] for p in sim], color=colour, lw=1.6,
                label=f"{label} simulated")


def _legend(fig, series) -> None:
    from matplotlib.lines import Line2D
    handles = []
    for n, (label, _) in enumerate(series):
        colour, marker = _style(n)
        handles += [Line2D([], [], color=colour, ls="none", marker=marker, mfc="none",
                           label=f"{label}: measured"),
                    Line2D([], [], color=colour, ls="-", label=f"{label}: simulated")]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4),
                   fontsize=9)


__all__ = ["decode_figure", "error_figure", "plot_validation", "ttft_figure"]
