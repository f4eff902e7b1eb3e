"""Drawing primitives shared by every layer that draws (reports, K-Perf, validation):
matplotlib's object API on the Agg canvas (never ``pyplot``, so a notebook's backend is left
alone), imported lazily because matplotlib is the optional extra ``reports``. Imports nothing
of npusim but its errors.

Grids of panels with one title and one legend (the K-Perf and power figures) are laid out by
:func:`grid_layout`, which measures the text around each panel once and places everything,
instead of matplotlib's constrained layout engine, which searches for the layout on every draw.
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
    that add a layout or a tight bounding box, take matplotlib's own path; so does a figure
    with no engine (:func:`grid_layout`'s), which savefig draws once.
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


# The space kept around every block of text, as constrained layout's default pads (3 pt).
PAD_PT = 3.0
# assumption: no panel is drawn shorter or narrower than this share of its figure's slot,
# however much text surrounds it (a legend of dozens of series)
MIN_PANEL_SHARE = 0.15
# How a grid of panels is laid out: "fixed" is grid_layout's; "constrained", matplotlib's
# engine, is what the figures used before it (about a third more CPU per figure; kept so the
# tests and benchmarks/report_speed.py can compare the two).
LAYOUTS = ("fixed", "constrained")


def panels_figure(size: tuple[float, float], dpi: int, layout: str = "fixed"):
    """An empty figure of ``size`` inches for a grid of panels laid out by ``layout``:
    ``"fixed"`` (:func:`grid_layout`, placed by :func:`finish_panels`) or ``"constrained"``
    (matplotlib's constrained layout engine, laid out again at every draw: slower, kept to
    compare against)."""
    if layout not in LAYOUTS:
        raise NpusimError(f"unknown figure layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    # "none", not None: rc settings that would add an engine (figure.autolayout) add none
    return figure_class()(figsize=size, dpi=dpi,
                          layout="constrained" if layout == "constrained" else "none")


def finish_panels(fig, axes, columns: int, title: str, handles, layout: str = "fixed",
                  **legend_kw) -> None:
    """Give a figure from :func:`panels_figure` its title and one legend of ``handles`` under
    its panels (``axes``, row by row, ``columns`` to a row; no legend without handles), and
    lay it out; ``legend_kw`` go to :meth:`~matplotlib.figure.Figure.legend`."""
    if layout == "constrained":
        if handles:
            fig.legend(handles=handles, loc="outside lower center", **legend_kw)
        fig.suptitle(title)
        return
    legend = fig.legend(handles=handles, loc="lower center", **legend_kw) if handles else None
    grid_layout(fig, axes, columns, title, legend)


def grid_layout(fig, axes, ncols: int, title: str | None = None, legend=None) -> None:
    """Place a grid of panels, a title above them and one legend below, with no layout engine.

    The margins come from the text around each panel, measured once (no tight bounding box,
    no layout engine, no second draw): above a panel its title; on its left its y tick labels
    (the widest of those the axis will draw) and y label; below it its x tick labels and x
    label; on its right any x tick label running past its edge. Panels of a column share their
    left margin and panels of a row their top and bottom ones, so every panel has the same
    size, as constrained layout gives them. ``title`` becomes the figure's suptitle at the top
    edge; ``legend`` (a figure legend at ``lower center``) sits in a band of its own height at
    the bottom. Every block keeps :data:`PAD_PT` from the next.

    Call it once the panels hold their data, scales, limits, labels and tick formatters.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        With no layout engine; given an Agg canvas if it has none (the canvas a PNG is drawn
        on, which measures the text).
    axes : sequence of Axes
        The panels, row by row, ``ncols`` to a row; hidden ones keep their slot.
    ncols : int
        Panels per row.
    title : str, optional
        The figure's title.
    legend : matplotlib.legend.Legend, optional
        A figure legend placed at ``lower center``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    width, height = fig.get_size_inches()
    inch = 1.0 / fig.dpi                          # inches per pixel
    pad = PAD_PT / 72.0
    top = pad
    if title:
        sup = fig.suptitle(title, y=1.0 - pad / height, va="top")
        top += sup.get_window_extent(renderer).height * inch + pad
    bottom = pad
    if legend is not None:
        bottom += legend.get_window_extent(renderer).y1 * inch
    nrows = math.ceil(len(axes) / ncols)
    shown = [(i, ax) for i, ax in enumerate(axes) if ax.get_visible()]
    texts = {i: _panel_texts(ax, renderer, inch) for i, ax in shown}

    def spans(axis_width):
        """Left, right margins per column and top, bottom per row, in inches."""
        left, right = [pad] * ncols, [pad] * ncols
        above, below = [pad] * nrows, [pad] * nrows
        for i, t in texts.items():
            r, c = divmod(i, ncols)
            over_left, over_right = _overhang(t["x_labels"], axis_width)
            left[c] = max(left[c], t["left"] + pad, over_left + pad)
            right[c] = max(right[c], over_right + pad)
            above[r] = max(above[r], t["above"] + pad)
            below[r] = max(below[r], t["below"] + pad)
        return left, right, above, below

    axis_width = (width - ncols * 2 * pad) / ncols
    for _ in range(2):              # the x labels' overhang depends on the panel's width
        left, right, above, below = spans(axis_width)
        axis_width = max((width - sum(left) - sum(right)) / ncols,
                         MIN_PANEL_SHARE * width / ncols)
    axis_height = max((height - top - bottom - sum(above) - sum(below)) / nrows,
                      MIN_PANEL_SHARE * height / nrows)
    for i, ax in enumerate(axes):
        r, c = divmod(i, ncols)
        x0 = sum(left[:c + 1]) + sum(right[:c]) + c * axis_width
        y1 = height - top - sum(above[:r + 1]) - sum(below[:r]) - r * axis_height
        ax.set_position([x0 / width, (y1 - axis_height) / height, axis_width / width,
                         axis_height / height])
        if i in texts:
            _place_labels(ax, texts[i])


def _place_labels(ax, texts: dict) -> None:
    """Pin the axis labels where matplotlib would put them, just beyond the tick labels
    measured in :func:`_panel_texts` (so a draw need not measure every tick label again to
    find the place)."""
    from matplotlib.transforms import ScaledTranslation
    inches = ax.get_figure(root=True).dpi_scale_trans
    x_off = texts["x_ticks"] + ax.xaxis.labelpad / 72.0
    y_off = texts["y_ticks"] + ax.yaxis.labelpad / 72.0
    ax.xaxis.set_label_coords(0.5, 0.0, ax.transAxes + ScaledTranslation(0.0, -x_off, inches))
    ax.yaxis.set_label_coords(0.0, 0.5, ax.transAxes + ScaledTranslation(-y_off, 0.0, inches))


def _panel_texts(ax, renderer, inch: float) -> dict:
    """The text around a panel, in inches: what its title takes above it, its y tick labels
    and label on its left, its x tick labels and label below, and each x tick label's place
    along the axis (0 to 1) and half width (for :func:`_overhang`).

    Tick labels are measured as matplotlib lays a line of text out (through a
    :class:`~matplotlib.text.Text` of the tick labels' font), so the draw that follows finds
    each size already measured.
    """
    import matplotlib as mpl
    from matplotlib.text import Text

    def sizer(name):
        probe = Text(0, 0, "", fontsize=mpl.rcParams[f"{name}.labelsize"])
        probe.set_figure(ax.get_figure(root=True))

        def size(text):
            probe.set_text(text)
            box = probe.get_window_extent(renderer)
            return box.width * inch, box.height * inch
        return size

    def labels(axis):
        lo, hi = sorted(axis.get_view_interval())
        slack = 1e-9 * (hi - lo)
        out = []
        for locs, fmt in ((axis.get_majorticklocs(), axis.get_major_formatter()),
                          (axis.get_minorticklocs(), axis.get_minor_formatter())):
            out += [(v, s) for v, s in zip(locs, fmt.format_ticks(locs))
                    if s and lo - slack <= v <= hi + slack]
        return out

    def tick_room(name):
        length, gap = mpl.rcParams[f"{name}.major.size"], mpl.rcParams[f"{name}.major.pad"]
        d = mpl.rcParams[f"{name}.direction"]
        return (gap + (length if d == "out" else length / 2 if d == "inout" else 0)) / 72.0

    def label_room(axis, across):
        text = axis.label
        if not text.get_text():
            return 0.0
        box = text.get_window_extent(renderer)
        return axis.labelpad / 72.0 + (box.width if across else box.height) * inch

    ysize, xsize = sizer("ytick"), sizer("xtick")
    ys = [ysize(s) for _, s in labels(ax.yaxis)]
    xs = labels(ax.xaxis)
    x_sizes = [xsize(s) for _, s in xs]
    to_axes = ax.transScale + ax.transLimits
    where = [to_axes.transform((v, 0.0))[0] for v, _ in xs]
    y_half = max((h for _, h in ys), default=0.0) / 2      # the end labels stick out this far
    title_h = (mpl.rcParams["axes.titlepad"] / 72.0
               + ax.title.get_window_extent(renderer).height * inch) \
        if ax.title.get_text() else 0.0
    y_ticks = tick_room("ytick") + max(w for w, _ in ys) if ys else 0.0
    x_ticks = tick_room("xtick") + max(h for _, h in x_sizes) if xs else 0.0
    return dict(above=max(title_h, y_half), y_ticks=y_ticks, x_ticks=x_ticks,
                left=y_ticks + label_room(ax.yaxis, True),
                below=max(x_ticks + label_room(ax.xaxis, False), y_half),
                x_labels=[(f, w / 2) for f, (w, _) in zip(where, x_sizes)])


def _overhang(x_labels, axis_width: float) -> tuple[float, float]:
    """How far (inches) the x tick labels run past the panel's left and right edges."""
    left = max((hw - f * axis_width for f, hw in x_labels), default=0.0)
    right = max((f * axis_width + hw - axis_width for f, hw in x_labels), default=0.0)
    return max(left, 0.0), max(right, 0.0)


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
                       dpi: int = 100, log_x: bool = True, log_y: bool = False,
                       layout: str = "fixed"):
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
    layout : {"fixed", "constrained"}
        How the panels are placed (see :func:`panels_figure`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    n = max(1, len(panels))
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig = panels_figure((6.0 * cols, 4.5 * rows), dpi, layout)
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
        ax.set_title(panel.get("title", ""), y=1.0)    # placed: matplotlib need not look
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if not drawn:
            ax.text(0.5, 0.5, panel.get("empty", "no data"), ha="center", va="center",
                    transform=ax.transAxes, color="0.4")
            continue
        ax.grid(True, alpha=0.3)     # before the ticks are made, which then take it up
        if log_x:
            log_ticks(ax, sorted(int(x) for x in xs_all), "x")
        if log_y:
            ax.set_yscale("log")
            plain_log_axis(ax, "y")
        else:
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_formatter(plain_formatter())
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles = figure_handles(axes)
    # one legend under the panels (a legend inside each panel hides its lines once a run
    # compares several systems and precisions), each label once
    finish_panels(fig, axes, cols, title, handles, layout, fontsize=8,
                  ncols=2 if len(handles) > 4 and cols > 1 else 1)
    return fig


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
