"""Drawing primitives shared by every layer that draws (reports, K-Perf, validation):
matplotlib's object API on the Agg canvas (never ``pyplot``, so a notebook's backend is left
alone), imported lazily because matplotlib is the optional extra ``reports``. Imports nothing
of npusim but its errors.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from .errors import NpusimError
from .files import cannot_write

COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown",
           "tab:pink", "tab:olive", "tab:cyan", "tab:gray", "black", "gold", "navy", "teal",
           "maroon", "lime", "indigo", "salmon", "darkkhaki", "slategray")
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")


def figure_class():
    """matplotlib's ``Figure``, or an error naming the extra to install."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise NpusimError("plots need matplotlib, which comes with npusim's optional extra "
                          "'reports': pip install 'npusim[reports]' (or pip install "
                          "matplotlib)") from None
    return Figure


def save_figure(fig, path: str | Path) -> Path:
    """Save ``fig`` to ``path`` (format from the suffix), with one clear error on failure."""
    path = Path(path)
    if "\x00" in str(path):
        raise cannot_write(path, "the plot", ValueError("a file name cannot hold a NUL byte"))
    try:
        if path.suffix.lower() == ".png":
            _save_png(fig, path)
        else:
            fig.savefig(path)
    except OSError as e:
        raise cannot_write(path, "the plot", e) from None
    except ValueError as e:   # an unknown image format, from the suffix
        raise NpusimError(f"cannot write the plot {path}: {e}. Use a .png, .svg or .pdf "
                          f"file name.") from None
    return path


def draw_and_save(make, data, path: str | Path, dpi: int = 100) -> Path:
    """Draw ``make(data, dpi=dpi)`` and save it to ``path`` (see :func:`save_figure`): one
    file's writer, which a pool of processes can run (:mod:`npusim.report.parallel`)."""
    return save_figure(make(data, dpi=dpi), path)


def _save_png(fig, path: Path) -> None:
    """``fig.savefig(path)`` drawing the figure once instead of twice.

    With a layout engine, matplotlib's ``savefig`` draws the whole figure once to lay it out
    and once more to render it. Here the engine lays the figure out on the Agg canvas that
    then renders it, and is set aside for that one draw: the same pixels (the tests compare
    the bytes) for about 15% less time per figure. Any other canvas or engine, or rc settings
    that add a layout or a tight bounding box, take matplotlib's own path.
    """
    import matplotlib as mpl
    from matplotlib.backend_bases import FigureCanvasBase
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.layout_engine import ConstrainedLayoutEngine
    engine = fig.get_layout_engine()
    rc = mpl.rcParams
    if (not isinstance(engine, ConstrainedLayoutEngine)
            or type(fig.canvas) not in (FigureCanvasBase, FigureCanvasAgg)
            or rc["figure.autolayout"] or rc["figure.constrained_layout.use"]
            or rc["savefig.bbox"] == "tight"):
        fig.savefig(path)
        return
    if type(fig.canvas) is FigureCanvasBase:
        FigureCanvasAgg(fig)           # the canvas savefig would switch to for a PNG
    engine.execute(fig)
    fig.set_layout_engine(None)        # no engine at all (with those rc settings off): one draw
    try:
        fig.savefig(path)
    finally:
        fig.set_layout_engine(engine)


def log_ticks(ax, values: Sequence[int], axis: str) -> None:
    """A log axis labelled at a sweep's own values, dropping labels that would collide."""
    values = sorted(v for v in values if v > 0)
    if not values:
        return
    getattr(ax, f"set_{axis}scale")("log")
    lo, hi = math.log10(values[0]), math.log10(values[-1])
    gap = max(hi - lo, 1.0) / 14.0
    shown, last = [], -math.inf
    for v in values:
        if math.log10(v) - last >= gap or v == values[-1]:
            if shown and v == values[-1] and math.log10(v) - last < gap:
                shown.pop()          # the last value of the sweep is always labelled
            shown.append(v)
            last = math.log10(v)
    from matplotlib.ticker import FixedLocator, NullLocator
    axis_obj = getattr(ax, f"{axis}axis")
    axis_obj.set_major_locator(FixedLocator(shown))
    axis_obj.set_minor_locator(NullLocator())
    getattr(ax, f"set_{axis}ticklabels")([str(v) for v in shown])
    pad = 10 ** (gap / 2)
    getattr(ax, f"set_{axis}lim")(values[0] / pad, values[-1] * pad)


def plain_number(v: float) -> str:
    """A tick label a reader takes in at once: ``12,500``, ``250``, ``2.5``, ``0.05``; never an
    exponent or an offset.

    Examples
    --------
    >>> [plain_number(v) for v in (12500.0, 250.0, 2.5, 0.05, 0.0, -1500.0, 1e-7, 33.333)]
    ['12,500', '250', '2.5', '0.05', '0', '-1,500', '0.0000001', '33.3']
    """
    if not math.isfinite(v):
        return str(v)
    if abs(v) >= 999.5:
        return f"{v:,.0f}"
    if v == 0:
        return "0"
    import numpy as np
    return np.format_float_positional(v, precision=3, unique=False, fractional=False,
                                      trim="-")


def plain_formatter():
    """A matplotlib tick formatter writing :func:`plain_number` (no ``1e-3`` offset text)."""
    from matplotlib.ticker import FuncFormatter
    return FuncFormatter(lambda v, _pos: plain_number(v))


def plain_log_axis(ax, axis: str = "y") -> None:
    """Label a log axis with plain numbers at 1, 2, 5 x 10^n (only 10^n across many decades).

    Call once the data is drawn: the ticks are fixed from the axis' current limits.
    """
    from matplotlib.ticker import FixedLocator, NullFormatter
    lo, hi = getattr(ax, f"get_{axis}lim")()
    if not (lo > 0 and hi > lo):
        return
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    subs = (1, 2, 5) if len(decades) <= 4 else (1,)
    ticks = [m * 10.0 ** d for d in decades for m in subs if lo <= m * 10.0 ** d <= hi]
    if len(ticks) < 2:         # a narrow range: label both ends instead of one lonely tick
        ticks = [lo, hi]
    axis_obj = getattr(ax, f"{axis}axis")
    axis_obj.set_major_locator(FixedLocator(ticks))
    axis_obj.set_major_formatter(plain_formatter())
    axis_obj.set_minor_formatter(NullFormatter())
    getattr(ax, f"set_{axis}lim")(lo, hi)


def figure_handles(axes) -> list:
    """The legend handles of every axes, each label once, in the order first drawn."""
    seen: dict = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if not label.startswith("_"):
                seen.setdefault(label, h)
    return list(seen.values())


def band_panels_figure(panels: Sequence[dict], ylabel: str, title: str, xlabel: str = "users",
                       dpi: int = 100, log_x: bool = True, log_y: bool = False):
    """Lines with an optional shaded band and horizontal reference lines, one panel each.

    Each panel: ``title``, ``series`` (each ``label``, ``colour``, ``marker``, ``x``, ``y`` and
    optionally ``low``/``high`` and ``band_label``, same length as ``y``: shaded between them where both are
    finite) and ``lines`` (``(y, label, linestyle)``: a limit such as a TDP or a power cap,
    drawn as a thin grey line labelled in place); a series' ``band_label`` names its shading
    in the legend. A panel without data says so.

    Parameters
    ----------
    panels : sequence of dict
        As above; at least one.
    ylabel, title, xlabel : str
    dpi : int
    log_x : bool
        A log x axis labelled at the data's own values (a sweep of users).
    log_y : bool
        A log y axis with plain labels (a quantity spanning decades, energy per token).

    Returns
    -------
    matplotlib.figure.Figure
    """
    Figure = figure_class()
    n = max(1, len(panels))
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(6.0 * cols, 4.5 * rows), dpi=dpi, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        xs_all: set = set()
        drawn = False
        for s in panel.get("series", ()):
            pts = [(x, y) for x, y in zip(s["x"], s["y"]) if _finite(y)]
            if not pts:
                continue
            drawn = True
            xs_all.update(x for x, _ in pts)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=s["colour"],
                    marker=s.get("marker", "o"), label=s["label"])
            low, high = s.get("low"), s.get("high")
            if low is not None and high is not None:
                band = [(x, lo, hi) for x, lo, hi in zip(s["x"], low, high)
                        if _finite(lo) and _finite(hi)]
                if band:
                    ax.fill_between([b[0] for b in band], [b[1] for b in band],
                                    [b[2] for b in band], color=s["colour"], alpha=0.18,
                                    lw=0, label=s.get("band_label", "assumption band"))
        for y, label, style in panel.get("lines", ()):
            if not _finite(y):
                continue
            ax.axhline(y, color="0.45", lw=0.9, ls=style)
            ax.annotate(label, (0.01, y), xycoords=("axes fraction", "data"),
                        textcoords="offset points", xytext=(2, 2), fontsize=8, color="0.35")
        ax.set_title(panel.get("title", ""))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if not drawn:
            ax.text(0.5, 0.5, panel.get("empty", "no data"), ha="center", va="center",
                    transform=ax.transAxes, color="0.4")
            continue
        if log_x:
            log_ticks(ax, sorted(int(x) for x in xs_all), "x")
        if log_y:
            ax.set_yscale("log")
            plain_log_axis(ax, "y")
        else:
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_formatter(plain_formatter())
        ax.grid(True, alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles = figure_handles(axes)
    if handles:
        # one legend under the panels (a legend inside each panel hides its lines once a run
        # compares several systems and precisions), each label once
        fig.legend(handles=handles, loc="outside lower center", fontsize=8,
                   ncols=2 if len(handles) > 4 and cols > 1 else 1)
    fig.suptitle(title)
    return fig


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
