"""Figures and summary of a design-space sweep: Pareto fronts, parallel coordinates, tornadoes.

:func:`write_report_rows` draws from plain rows (as :func:`npusim.dse.store.load` returns), so it
can be tested and reused without a store; :func:`write_report` is the thin layer that reads a
sweep's store and the spec kept in its meta (what ``npusim sweep report DIR`` calls). Per
workload it writes

* ``pareto_<workload>_<a>_vs_<b>.png`` for each pair of objectives: the 2-D front in colour,
  joined in order; feasible dominated points light grey; infeasible points grey crosses; failed
  points counted in the caption;
* ``parallel_<workload>.png``: fields and objectives as normalised axes, the front coloured;
* ``tornado_<workload>_<metric>.png`` per objective: one-at-a-time sensitivity around the best
  feasible point (:func:`npusim.dse.analysis.sensitivity`);

and one ``summary.md`` with the counts, each workload's front and the tornado tables. Figures
are :class:`matplotlib.figure.Figure` objects on the Agg canvas (never ``pyplot``), saved through
:func:`npusim.figures.save_figure`, as :mod:`npusim.report.plots` does.
"""
from __future__ import annotations

import math
import re
from itertools import combinations
from pathlib import Path
from typing import Sequence

import numpy as np

from ..dse import analysis as an
from ..errors import NpusimError
from ..figures import figure_class, plain_number, save_figure
from ..files import make_folder, write_text
from .plots import DPI
from .terminal import si

LOG_SPAN = 100.0
"""An axis whose positive values span more than this ratio is drawn on a log scale."""
FRONT_COLOUR = "tab:blue"
ALL_FRONT_COLOUR = "tab:orange"
DOMINATED_COLOUR = "0.78"
INFEASIBLE_COLOUR = "0.5"
MAX_NAME = 60                 # characters of one part of a file name


# ----------------------------------------------------------------------------- names, labels

def safe_name(text: str) -> str:
    """A file-name part: letters, digits, ``.``, ``_`` and ``-`` only, at most 60 characters.

    >>> safe_name("llama-3.1-8b decode/32 users"), safe_name("../.."), safe_name("")
    ('llama-3.1-8b-decode-32-users', 'x', 'x')
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-._")[:MAX_NAME].strip("-._")
    return name or "x"


def unique_names(names: Sequence[str]) -> dict[str, str]:
    """Each name's :func:`safe_name`, made unique with ``-2``, ``-3``... in order.

    >>> unique_names(["a b", "a/b", "c"])
    {'a b': 'a-b', 'a/b': 'a-b-2', 'c': 'c'}
    """
    out: dict[str, str] = {}
    taken: set[str] = set()
    for n in names:
        base = stem = safe_name(n)
        i = 1
        while stem.lower() in taken:      # case-insensitive file systems too
            i += 1
            stem = f"{base}-{i}"
        taken.add(stem.lower())
        out[n] = stem
    return out


def metric_unit(name: str) -> str | None:
    """The SI unit of a metric from :data:`npusim.dse.spec.METRICS`, None when unknown."""
    try:
        from ..dse.spec import METRICS
    except ImportError:
        return None
    entry = METRICS.get(name) if isinstance(METRICS, dict) else None
    if entry is None:
        return None
    if isinstance(entry, str):
        unit = entry
    elif isinstance(entry, dict):
        unit = entry.get("unit")
    elif hasattr(entry, "unit"):
        unit = entry.unit
    elif isinstance(entry, (tuple, list)) and entry and isinstance(entry[0], str):
        unit = entry[0]
    else:
        unit = None
    return unit if isinstance(unit, str) and unit not in ("", "1") else None


def metric_label(name: str, goal: str | None = None) -> str:
    """``latency_s (s), lower is better``: the name, its unit when known, and the goal."""
    unit = metric_unit(name)
    text = f"{shorten(name, 40)} ({unit})" if unit else shorten(name, 40)
    if goal is not None:
        text += ", lower is better" if goal == "min" else ", higher is better"
    return text


def fmt(v) -> str:
    """A table cell: integers exact with thousands separators, floats to 6 digits, text as is.

    >>> fmt(67108864.0), fmt(1.5e-3), fmt("ws"), fmt(None), fmt(float("nan"))
    ('67,108,864', '0.0015', 'ws', '', 'nan')
    """
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(x):
        return str(x)
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.6g}"


def tick(v: float) -> str:
    """A short axis label: SI prefixes in their range, else three digits and an exponent.

    >>> tick(67108864.0), tick(1.5e-3), tick(1e130), tick(0.0)
    ('67.1 M', '1.5 m', '1e+130', '0')
    """
    if v == 0 or not math.isfinite(v):
        return fmt(v)
    if 1e-12 <= abs(v) < 1e18:
        return si(v)
    return f"{v:.3g}"


def shorten(text: str, width: int = 24) -> str:
    """``text`` cut in the middle to ``width`` characters, so a label cannot swamp a figure.

    >>> shorten("cores.engine.dataflow", 12)
    'cores…taflow'
    """
    text = _one_line(text)
    if len(text) <= width:
        return text
    half = (width - 1) // 2
    return text[:half] + "…" + text[len(text) - (width - 1 - half):]


def _md(v) -> str:
    """A markdown table cell: one line, pipes escaped."""
    return " ".join(fmt(v).split()).replace("|", "\\|")


def _one_line(text) -> str:
    return " ".join(str(text).split())


# ----------------------------------------------------------------------------- counts

def counts(rows: Sequence[dict]) -> dict[str, int]:
    """``points``, ``ok`` (evaluated without error), ``failed`` and ``infeasible`` (ok but
    violating a constraint) of ``rows``.

    >>> counts([dict(error="x"), dict(error=None, feasible=0), dict(error=None, feasible=1)])
    {'points': 3, 'ok': 2, 'failed': 1, 'infeasible': 1}
    """
    failed = sum(an.failed(r) for r in rows)
    infeasible = sum(not an.failed(r) and not an.feasible(r) for r in rows)
    return dict(points=len(rows), ok=len(rows) - failed, failed=failed, infeasible=infeasible)


def _has_values(rows: Sequence[dict], metric: str) -> bool:
    return any(not an.failed(r) and not math.isnan(an.number(r.get(metric))) for r in rows)


def _log_wanted(values) -> bool:
    """True when the finite values are all positive and span more than :data:`LOG_SPAN`."""
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    return v.size > 1 and bool((v > 0).all()) and v.max() > LOG_SPAN * v.min()


def axis_number(v: float) -> str:
    """A tick label: :func:`npusim.figures.plain_number` where that stays short, three digits
    and an exponent beyond (a metric of 1e-148 must not write 150 zeros across the figure).

    >>> axis_number(2500.0), axis_number(0.05), axis_number(1.5e-148), axis_number(3e20)
    ('2,500', '0.05', '1.5e-148', '3e+20')
    """
    if v == 0 or not math.isfinite(v) or 1e-6 <= abs(v) < 1e15:
        return plain_number(v)
    return f"{v:.3g}"


def _scale_axis(ax, axis: str, values) -> None:
    """A log scale when the values span more than :data:`LOG_SPAN`; labels by
    :func:`axis_number` either way."""
    from matplotlib.ticker import FuncFormatter, NullFormatter
    axis_obj = getattr(ax, f"{axis}axis")
    if _log_wanted(values):
        getattr(ax, f"set_{axis}scale")("log")
        axis_obj.set_minor_formatter(NullFormatter())
    axis_obj.set_major_formatter(FuncFormatter(lambda v, _pos: axis_number(v)))


# ----------------------------------------------------------------------------- Pareto figure

def pareto_figure(rows: Sequence[dict], x: tuple[str, str], y: tuple[str, str], title: str,
                  all_objectives: Sequence[tuple[str, str]] | None = None, dpi: int = DPI):
    """The 2-D Pareto plot of one workload's ``rows`` on objectives ``x`` and ``y``.

    The front is that of these two objectives among the feasible points, drawn in colour and
    joined in order of ``x``; when there are more objectives, the points on the front of all of
    them that are not on this 2-D front are ringed.
    """
    Figure = figure_class()
    fig = Figure(figsize=(8.5, 6.5), dpi=dpi, layout="constrained")
    ax = fig.subplots()
    (mx, gx), (my, gy) = x, y
    ok = [r for r in rows if not an.failed(r)]
    xy = an.objective_matrix(ok, [x, y])
    has = ~np.isnan(xy).any(axis=1)
    feas = np.array([an.feasible(r) for r in ok], dtype=bool)
    on2 = np.zeros(len(ok), dtype=bool)
    sel = np.flatnonzero(feas & has)
    on2[sel] = an.pareto_mask(xy[sel], [gx, gy])
    dominated = feas & has & ~on2
    infeasible = ~feas & has
    if dominated.any():
        ax.scatter(xy[dominated, 0], xy[dominated, 1], s=18, color=DOMINATED_COLOUR,
                   label=f"feasible, dominated ({int(dominated.sum())})", zorder=1)
    if infeasible.any():
        ax.scatter(xy[infeasible, 0], xy[infeasible, 1], s=22, marker="x",
                   color=INFEASIBLE_COLOUR, linewidths=1.0,
                   label=f"infeasible ({int(infeasible.sum())})", zorder=2)
    if on2.any():
        pts = xy[on2]
        pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]
        ax.plot(pts[:, 0], pts[:, 1], "-o", color=FRONT_COLOUR, ms=6, lw=1.5, zorder=4,
                label=f"Pareto front of {shorten(mx)}, {shorten(my)} ({int(on2.sum())})")
    if all_objectives is not None and len(all_objectives) > 2:
        objs = list(all_objectives)
        full = np.zeros(len(ok), dtype=bool)
        m = an.objective_matrix(ok, objs)
        fsel = np.flatnonzero(feas)
        full[fsel] = an.pareto_mask(m[fsel], [g for _, g in objs])
        extra = full & ~on2 & has
        if extra.any():
            ax.scatter(xy[extra, 0], xy[extra, 1], s=60, facecolors="none",
                       edgecolors=ALL_FRONT_COLOUR, linewidths=1.5, zorder=3,
                       label=f"on the front of all {len(objs)} objectives only "
                             f"({int(extra.sum())})")
    c = counts(rows)
    missing = int((~has).sum())
    notes = [f"{c['points']} points", f"{c['failed']} failed (not drawn)",
             f"{c['infeasible']} infeasible"]
    if missing:
        notes.append(f"{missing} without a value of {shorten(mx)} or {shorten(my)} (not drawn)")
    ax.set_title(f"{title}\n" + ", ".join(notes), fontsize=10)
    ax.set_xlabel(metric_label(mx, gx))
    ax.set_ylabel(metric_label(my, gy))
    if not has.any():
        ax.text(0.5, 0.5, f"no point has values of both {shorten(mx)} and {shorten(my)}",
                ha="center", va="center", transform=ax.transAxes, color="0.4")
        return fig
    for axis, col in (("x", 0), ("y", 1)):
        _scale_axis(ax, axis, xy[has, col])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


# ----------------------------------------------------------------------------- parallel coordinates

def unit_interval(t: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``t`` mapped from [lo, hi] onto [0, 1] (0.5 when lo == hi; nan stays nan), halved first
    so that a span like -1e308..1e308 does not overflow.

    >>> unit_interval(np.array([1.0, 3.0, np.nan]), 1.0, 5.0).tolist()
    [0.0, 0.5, nan]
    >>> unit_interval(np.array([-1e308, 1e308]), -1e308, 1e308).tolist()
    [0.0, 1.0]
    """
    t = np.asarray(t, dtype=float)
    if not hi > lo:
        return np.where(np.isnan(t), np.nan, 0.5)
    return (t / 2 - lo / 2) / (hi / 2 - lo / 2)


def _axis_positions(values: list, numeric: bool = False
                    ) -> tuple[np.ndarray, list[tuple[float, str]], str]:
    """One axis of the parallel-coordinates plot: each row's position in [0, 1] (nan when
    missing), the ticks (position, label) and the scale's name.

    A column holding any text is a choice: its values (as text) are categories, evenly spaced in
    sorted order. Otherwise numbers are normalised from min to max, on a log scale when they
    span more than :data:`LOG_SPAN`. A ``numeric`` axis (an objective) is never a choice: text
    there is a missing value.
    """
    if not numeric and any(isinstance(v, str) for v in values):
        cats = sorted({str(v) for v in values if v is not None})
        step = 1.0 / (len(cats) - 1) if len(cats) > 1 else 0.0
        where = {c: (i * step if len(cats) > 1 else 0.5) for i, c in enumerate(cats)}
        pos = np.array([where[str(v)] if v is not None else np.nan for v in values])
        return pos, [(where[c], shorten(c)) for c in cats], "choice"
    num = np.array([an.number(v) for v in values], dtype=float)
    finite = num[~np.isnan(num)]
    if finite.size == 0:
        return num, [], "none"
    scale = "log" if _log_wanted(finite) else "linear"
    t = np.log10(num) if scale == "log" else num
    lo, hi = np.nanmin(t), np.nanmax(t)
    pos = unit_interval(t, lo, hi)
    raw_lo, raw_hi = float(finite.min()), float(finite.max())
    if raw_hi > raw_lo:
        mid_t = (lo + hi) / 2
        mid = 10 ** mid_t if scale == "log" else mid_t
        ticks = [(0.0, tick(raw_lo)), (0.5, tick(float(mid))), (1.0, tick(raw_hi))]
    else:
        ticks = [(0.5, tick(raw_lo))]
    return pos, ticks, scale


def parallel_figure(rows: Sequence[dict], fields: Sequence[str],
                    objectives: Sequence[tuple[str, str]], front_rows: Sequence[dict],
                    title: str, dpi: int = DPI):
    """Parallel coordinates of one workload: every field and objective an axis normalised to
    [0, 1]; the front's lines coloured by their first objective, the others grey (infeasible
    ones dashed); failed points are not drawn (they have no metrics)."""
    from matplotlib.collections import LineCollection
    Figure = figure_class()
    names = list(fields) + [m for m, _ in objectives]
    ok = [r for r in rows if not an.failed(r)]
    fig = Figure(figsize=(max(8.0, 1.7 * len(names) + 2.0), 6.5), dpi=dpi, layout="constrained")
    ax = fig.subplots()
    cols = [_axis_positions([r.get(n) for r in ok], numeric=i >= len(fields))
            for i, n in enumerate(names)]
    xs = np.arange(len(names), dtype=float)
    ys = np.array([c[0] for c in cols], dtype=float).T.reshape(len(ok), len(names))
    in_front = {id(r) for r in front_rows}
    is_front = np.array([id(r) in in_front for r in ok], dtype=bool)
    feas = np.array([an.feasible(r) for r in ok], dtype=bool)
    for mask, colour, style, label in (
            (~feas, "0.85", "--", "infeasible"),
            (feas & ~is_front, DOMINATED_COLOUR, "-", "feasible, not on the front")):
        if mask.any():
            segs = [np.column_stack([xs, y]) for y in ys[mask]]
            ax.add_collection(LineCollection(segs, colors=colour, linestyles=style,
                                             linewidths=0.8, zorder=1,
                                             label=f"{label} ({int(mask.sum())})"))
    if is_front.any():
        from matplotlib import colormaps
        first = an.objective_matrix([r for r in ok if id(r) in in_front], objectives[:1])[:, 0]
        shade = unit_interval(first, np.nanmin(first), np.nanmax(first))
        cmap = colormaps["viridis"]
        colours = [cmap(0.85 * s) for s in shade]
        segs = [np.column_stack([xs, y]) for y in ys[is_front]]
        ax.add_collection(LineCollection(segs, colors=colours, linewidths=2.0, zorder=3,
                                         label=f"Pareto front ({int(is_front.sum())}), colour "
                                               f"by {shorten(objectives[0][0])}"))
    for i, (pos, ticks, scale) in enumerate(cols):
        ax.axvline(i, color="black", lw=0.8, zorder=2)
        for p, text in ticks:
            ax.annotate(text, (i, p), xytext=(4, 0), textcoords="offset points", fontsize=7,
                        va="center", color="0.2", zorder=5)
        if scale == "log":
            ax.annotate("log", (i, 1.0), xytext=(0, 6), textcoords="offset points",
                        fontsize=7, ha="center", color="0.4")
    goals = dict(objectives)
    labels = [f"{shorten(n, 32)}\n({goals[n]})" if n in goals and i >= len(fields)
              else shorten(n, 32) for i, n in enumerate(names)]
    ax.set_xticks(xs, labels, fontsize=8, rotation=15 if len(names) > 5 else 0)
    ax.set_xlim(-0.3, len(names) - 0.4)
    ax.set_ylim(-0.06, 1.08)
    ax.set_yticks([])
    ax.set_ylabel("normalised: each axis from its lowest (bottom) to highest value (top)")
    c = counts(rows)
    ax.set_title(f"{title}\n{c['points']} points, {c['failed']} failed (not drawn), "
                 f"{c['infeasible']} infeasible", fontsize=10)
    if ok:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


# ----------------------------------------------------------------------------- tornado

def tornado_figure(entries: list[dict] | None, metric: str, goal: str, title: str,
                   why_none: str | None = None, dpi: int = DPI):
    """One objective's tornado: per field, a bar from the lowest to the highest objective over
    its one-at-a-time variants, the best point's value as a vertical line; the field values
    giving each end are written there. ``entries`` from :func:`npusim.dse.analysis.sensitivity`
    (None, with ``why_none``, when there is no best point)."""
    Figure = figure_class()
    drawn = [e for e in entries or [] if e["min_objective"] is not None]
    fig = Figure(figsize=(9.5, 2.2 + 0.55 * max(len(drawn), 2)), dpi=dpi, layout="constrained")
    ax = fig.subplots()
    ax.set_xlabel(metric_label(metric, goal))
    without = [e["field"] for e in entries or [] if e["min_objective"] is None]
    listed = ", ".join(shorten(f, 32) for f in without[:4])
    more = f" and {len(without) - 4} more" if len(without) > 4 else ""
    sub = f"without variants: {listed}{more}" if without else ""
    if not drawn:
        text = why_none or (f"{an.NO_VARIANTS}: run the sweep with strategy sensitivity on "
                            f"to add them")
        ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4",
                wrap=True)
        ax.set_yticks([])
        ax.set_title(f"{title}\n{sub}".strip(), fontsize=10)
        return fig
    best = drawn[0]["best_objective"]
    ys = np.arange(len(drawn))[::-1]             # the largest swing on top
    for y, e in zip(ys, drawn):
        lo, hi = e["min_objective"], e["max_objective"]
        # a thick segment rather than a bar: a bar's width hi - lo can overflow a float
        ax.plot([lo, hi], [y, y], lw=16, solid_capstyle="butt", color=FRONT_COLOUR,
                alpha=0.75)
        for x, value, dx, ha in ((lo, e["min_value"], -3, "right"),
                                 (hi, e["max_value"], 3, "left")):
            ax.annotate(shorten(fmt(value)), (x, y), xytext=(dx, 0), textcoords="offset points",
                        ha=ha, va="center", fontsize=7)
    ax.axvline(best, color="black", lw=1.0, ls="--",
               label=f"best point {drawn[0]['best_point']}: {fmt(best)}")
    swing = [f"{shorten(e['field'], 32)}\n("
             + (f"swing {e['swing']:.3g}, " if e["swing"] is not None else "")
             + f"{e['variants']} variants)" for e in drawn]
    ax.set_yticks(ys, swing, fontsize=8)
    values = [v for e in drawn for v in (e["min_objective"], e["max_objective"])] + [best]
    _scale_axis(ax, "x", values)
    lo, hi = min(values), max(values)
    pad = 0.3 * (hi / 2 - lo / 2) if hi > lo else 0.1 * abs(hi) or 1.0
    if ax.get_xscale() == "linear" and math.isfinite(lo - pad) and math.isfinite(hi + pad):
        ax.set_xlim(lo - pad, hi + pad)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"{title}\n{sub}".strip(), fontsize=10)
    return fig


# ----------------------------------------------------------------------------- the report

def write_report_rows(rows: Sequence[dict], fields, objectives, out_dir: str | Path,
                      title: str = "sweep", *, source: str | None = None,
                      dpi: int = DPI, texts: dict | None = None) -> list[Path]:
    """Write every workload's figures and ``summary.md`` into ``out_dir``; returns the paths
    (PNGs in workload order, then the summary).

    Parameters
    ----------
    rows : list of dict
        As :func:`npusim.dse.store.load` returns.
    fields : list of str, or a spec with ``fields``
        The swept field paths.
    objectives : list of (metric, goal)
    out_dir : path
        Created if missing.
    title : str
        The sweep's name, on every figure.
    source : str, optional
        Where the rows came from, for error messages (the store file).
    texts : dict, optional
        ``{field: {value: text}}``: how the spec wrote each value (``"16 MiB"``), shown in the
        summary's tables instead of the SI number (:func:`value_texts` reads it from a store's
        records); values without a text are shown as numbers.

    Raises
    ------
    NpusimError
        No rows; every point failed; malformed fields or objectives; matplotlib missing; a file
        that cannot be written.
    """
    where = f" in {source}" if source else ""
    an.check_rows(rows)
    rows = list(rows)
    paths = an.field_paths(fields)
    objectives = an.check_objectives(objectives)
    if not rows:
        raise NpusimError(f"no points{where} to report: run the sweep first (npusim sweep "
                          f"SPEC --out DIR)")
    if all(an.failed(r) for r in rows):
        first = _one_line(next(r.get("error") for r in rows))
        raise NpusimError(f"all {len(rows)} points{where} failed, so there is nothing to plot "
                          f"(first error: {first}); fix the spec or its workloads and run the "
                          f"sweep again")
    figure_class()                       # matplotlib missing: one error before any file
    title = _one_line(title) or "sweep"
    out = make_folder(out_dir, "sweep report")
    stems = unique_names(an.workloads_of(rows))
    written: list[Path] = []
    sections = []
    for workload, stem in stems.items():
        files, section = _workload_report(rows, workload, stem, paths, objectives, out, title,
                                          dpi, texts or {})
        written += files
        sections.append(section)
    summary = _summary(rows, stems, paths, objectives, title, sections)
    written.append(write_text(out / "summary.md", summary, "the sweep summary"))
    return written


def _workload_report(rows, workload, stem, fields, objectives, out, title, dpi, texts):
    """One workload's figures and its part of the summary (markdown lines)."""
    mine = an.rows_of(rows, workload)
    have = [o for o in objectives if _has_values(mine, o[0])]
    lines = [f"## {workload}", ""]
    for m, g in objectives:
        if (m, g) not in have:
            lines.append(f"- no evaluated point of this workload has {m}: it is left out of "
                         f"its front, plots and tornado.")
    fr = an.front(mine, have, workload) if have else []
    name = shorten(f"{title}: {workload}", 100)
    files = []
    if len(have) < 2:
        lines.append(f"- {len(have)} objective{'s' if len(have) != 1 else ''} with values: no "
                     f"pair of objectives to draw as a Pareto front"
                     + (f"; the front is the best point on {have[0][0]}." if have else "."))
    for a, b in combinations(have, 2):
        fig = pareto_figure(mine, a, b, name, all_objectives=have, dpi=dpi)
        files.append(save_figure(fig, out / f"pareto_{stem}_{safe_name(a[0])}_vs_"
                                            f"{safe_name(b[0])}.png"))
    fig = parallel_figure(mine, fields, have, fr, name, dpi=dpi)
    files.append(save_figure(fig, out / f"parallel_{stem}.png"))
    if len(mine) == 1:
        lines.append("- one point: no front to compare it with and no one-at-a-time variants.")
    lines += ["", f"### Pareto front ({len(fr)} point{'s' if len(fr) != 1 else ''}"
              f"{', objectives ' + ', '.join(f'{m} ({g})' for m, g in have) if have else ''})",
              ""]
    lines += _front_table(fr, fields, have, texts)
    for metric, goal in have:
        try:
            entries = an.sensitivity(mine, fields, (metric, goal), workload)
            why = None
        except NpusimError as e:
            entries, why = None, str(e)
        fig = tornado_figure(entries, metric, goal, f"{name}: sensitivity of {metric}", why,
                             dpi=dpi)
        files.append(save_figure(fig, out / f"tornado_{stem}_{safe_name(metric)}.png"))
        lines += ["", f"### Sensitivity of {metric} ({goal})", ""]
        lines += _tornado_table(entries, metric, why, texts)
    lines += ["", "Figures: " + ", ".join(f"`{p.name}`" for p in files), ""]
    return files, lines


def value_texts(records) -> dict:
    """``{field: {value: text}}`` from store records (their ``values`` and ``params``): the text
    the spec gave each swept value, for tables a reader compares with the spec.

    >>> value_texts([{"values": {"cores.sram": 16777216.0}, "params": {"cores.sram": "16 MiB"}}])
    {'cores.sram': {16777216.0: '16 MiB'}}
    """
    out: dict = {}
    for r in records:
        params = r.get("params") or {}
        for f, v in (r.get("values") or {}).items():
            text = params.get(f)
            if isinstance(text, str) and not isinstance(v, str) and v is not None:
                out.setdefault(f, {}).setdefault(v, text)
    return out


def _shown(field, v, texts) -> str:
    """A field's value as the spec wrote it when known, else as a number."""
    text = texts.get(field, {}).get(v) if v is not None and not isinstance(v, str) else None
    return text if text is not None else fmt(v)


def _front_table(fr: list[dict], fields, objectives, texts=None) -> list[str]:
    texts = texts or {}
    if not fr:
        return ["No feasible point has every objective: the front is empty."]
    head = ["point"] + list(fields) + [metric_label(m) for m, _ in objectives]
    out = ["| " + " | ".join(_md(h) for h in head) + " |",
           "|" + "---|" * len(head)]
    for r in fr:
        cells = ([r.get("point")] + [_shown(f, r.get(f), texts) for f in fields]
                 + [r.get(m) for m, _ in objectives])
        out.append("| " + " | ".join(_md(c) for c in cells) + " |")
    return out


def _tornado_table(entries, metric, why, texts=None) -> list[str]:
    texts = texts or {}
    if entries is None:
        return [f"No tornado: {why}"]
    best = entries[0]
    out = [f"Around the best feasible point {fmt(best['best_point'])} ({metric} = "
           f"{fmt(best['best_objective'])}); swing = (max - min) / best.", "",
           "| field | best value | min " + _md(metric) + " (at value) | max " + _md(metric)
           + " (at value) | swing | variants (infeasible) |",
           "|---|---|---|---|---|---|"]
    for e in entries:
        if e["min_objective"] is None:
            lo = hi = ""
        else:
            lo = f"{fmt(e['min_objective'])} ({_shown(e['field'], e['min_value'], texts)})"
            hi = f"{fmt(e['max_objective'])} ({_shown(e['field'], e['max_value'], texts)})"
        swing = f"{e['swing']:.3g}" if e["swing"] is not None else e["reason"]
        cells = [e["field"], _shown(e["field"], e["best_value"], texts), lo, hi, swing,
                 f"{e['variants']} ({e['infeasible']})"]
        out.append("| " + " | ".join(_md(c) for c in cells) + " |")
    return out


def _summary(rows, stems, fields, objectives, title, sections) -> str:
    lines = [f"# Sweep report: {title}", "",
             "Objectives: " + ", ".join(f"{m} ({g})" for m, g in objectives) + ".  ",
             "Fields: " + (", ".join(fields) or "none") + ".", "",
             "ok: evaluated without error (feasible or not); infeasible: ok but violating a "
             "constraint; failed: the evaluation raised an error (no metrics).", "",
             "| workload | points | ok | failed | infeasible |", "|---|---|---|---|---|"]
    for workload in stems:
        c = counts([r for r in rows if str(r.get("workload")) == workload])
        lines.append(f"| {_md(workload)} | {c['points']} | {c['ok']} | {c['failed']} | "
                     f"{c['infeasible']} |")
    c = counts(rows)
    lines += [f"| all | {c['points']} | {c['ok']} | {c['failed']} | {c['infeasible']} |", ""]
    for s in sections:
        lines += s
    return "\n".join(lines).rstrip() + "\n"


def write_report(path: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Regenerate a sweep's figures and ``summary.md`` from its store (``npusim sweep report``).

    ``path`` is the store file or the sweep's ``--out`` folder holding it; the fields and
    objectives come from the spec kept in the store's meta. ``out_dir`` defaults to the store's
    folder.

    Raises
    ------
    NpusimError
        No store at ``path``, a store without points or without a spec, every point failed,
        or as :func:`write_report_rows`.
    """
    import yaml

    from ..dse.spec import parse_spec
    from ..dse.store import Store, flat_rows, read_records
    path = Path(path)
    store_file = path / Store.DEFAULT_NAME if path.is_dir() else path
    if not store_file.is_file():
        raise NpusimError(f"no sweep store at {store_file}: give the --out folder of a sweep "
                          f"(it holds {Store.DEFAULT_NAME}) or the store file itself")
    records, meta = read_records(store_file)  # read-only: a report may run beside a sweep
    rows = flat_rows(records)
    if not rows:
        raise NpusimError(f"the sweep store {store_file} holds no points yet: run the sweep "
                          f"first (npusim sweep SPEC --out {store_file.parent})")
    text = meta.get("spec")
    source = meta.get("spec_source") or f"the spec stored in {store_file}"
    if not text:
        raise NpusimError(f"the sweep store {store_file} holds no sweep spec (meta 'spec'), so "
                          f"its fields and objectives are unknown: was it written by npusim "
                          f"sweep?")
    try:
        mapping = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise NpusimError(f"the spec stored in {store_file} is not valid YAML "
                          f"({_one_line(e)}); run the sweep again") from None
    spec = parse_spec(mapping, source)
    fields = [f.path for f in spec.fields]
    objectives = [(o.metric, o.goal) for o in spec.objectives]
    out = Path(out_dir) if out_dir is not None else store_file.parent
    return write_report_rows(rows, fields, objectives, out, title=spec.name,
                             source=str(store_file), texts=value_texts(records))
