"""Figures of a run: the roofline with every op placed, and time and energy per layer.

matplotlib is the optional extra ``reports``; it is imported inside the functions. Figures are
built as :class:`matplotlib.figure.Figure` objects and drawn by the Agg canvas, never through
``pyplot``, so plotting neither changes the caller's backend nor keeps figures alive.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..engine.result import RunResult
from ..figures import figure_class, plain_formatter, save_figure
from ..files import make_folder

FIGSIZE = (11.0, 7.0)        # inches; at DPI 100 a PNG is 1100 x 700 pixels
DPI = 100
MAX_BARS = 40

# Marker and colour per op kind: contractions stand out from the glue around them.
KIND_STYLE = {
    "contraction": ("o", "tab:blue"),
    "elementwise": ("s", "tab:orange"),
    "reduction": ("D", "tab:green"),
    "movement": ("v", "tab:purple"),
    "collective": ("P", "tab:red"),
}
DEFAULT_STYLE = ("X", "tab:gray")
ENERGY_COLOURS = {"mac": "tab:blue", "vector": "tab:orange", "sram": "tab:green",
                  "shared": "tab:olive", "dram": "tab:red", "noc": "tab:cyan",
                  "link": "tab:pink", "static": "tab:gray"}
KIND_ORDER = ("contraction", "elementwise", "reduction", "movement", "collective")
ENERGY_ORDER = ("mac", "vector", "sram", "shared", "dram", "noc", "link", "static")

# Path components of an op's source: builder layers (``model.layers.3.mlp``) and exported
# node names (``/model/layers.3/mlp/MatMul``, ``conv2/3x3_reduce``).
_COMPONENT = re.compile(r"[^./:]+")
_LAST_NUMBER = re.compile(r"\d+(?=\D*$)")
MAX_DEPTH = 3


@dataclass(frozen=True)
class RooflinePoint:
    """Where one op sits on the roofline.

    Attributes
    ----------
    name, kind : str
        The op.
    work : float
        FLOPs (2 x MACs) for a contraction, element operations for any other op.
    dram_bytes, latency_s : float
        The op's DRAM traffic and latency.
    intensity : float
        ``work / dram_bytes``, FLOP (or op) per byte; ``inf`` when the op moved no DRAM bytes
        but did work, ``nan`` when it did neither.
    rate : float
        ``work / latency_s``, FLOP/s (or op/s); ``inf`` when the latency is 0 but there was
        work, 0 when there was no work.
    share : float
        The op's fraction of the run's latency.
    """

    name: str
    kind: str
    work: float
    dram_bytes: float
    latency_s: float
    intensity: float
    rate: float
    share: float


def roofline_points(result: RunResult) -> list[RooflinePoint]:
    """One :class:`RooflinePoint` per op of ``result``, in schedule order.

    Examples
    --------
    >>> from npusim.engine.result import OpRecord, RunResult
    >>> op = OpRecord("mm", "contraction", "mm", "MatMul", "bf16", "bf16", 1000, 0.0, 500.0,
    ...               500.0, 0.5, 2.0, 2.0, 4.0, "memory")
    >>> p = roofline_points(RunResult("toy", "edu", "roofline", (op,)))[0]
    >>> p.intensity, p.rate, p.share
    (4.0, 500.0, 1.0)
    """
    total = result.latency_s
    out = []
    for r in result.ops:
        work = 2.0 * r.macs if r.kind == "contraction" or r.macs else float(r.vector_ops)
        out.append(RooflinePoint(
            name=r.name, kind=r.kind, work=work, dram_bytes=float(r.dram_bytes),
            latency_s=float(r.latency_s), intensity=_ratio(work, r.dram_bytes),
            rate=_ratio(work, r.latency_s) if work > 0 else 0.0,
            share=r.latency_s / total if total > 0 else 0.0))
    return out


def implied_peaks(result: RunResult) -> dict[str, float]:
    """Peak rates the records imply, by the dtype they ran in: work over ``compute_s``.

    ``compute_s`` is an op's ideal compute time at the peak rate of its execution dtype (vector
    units for ops that are not contractions), so ``work / compute_s`` recovers that peak: an
    fp32 convolution on a GPU sits under the fp32 roof, not the 16-bit one the result carries.
    Keys are ``"<exec_dtype> MAC"`` for contractions (value in FLOP/s) and ``"vector"``.

    Examples
    --------
    >>> from npusim.engine.result import OpRecord, RunResult
    >>> mm = OpRecord("mm", "contraction", "mm", "MatMul", "fp32", "fp32", 1000, 0.0, 500.0,
    ...               500.0, 0.5, 2.0, 2.0, 2.0, "memory")
    >>> implied_peaks(RunResult("toy", "edu", "roofline", (mm,)))
    {'fp32 MAC': 4000.0}
    """
    out: dict[str, float] = {}
    for r in result.ops:
        if r.compute_s <= 0:
            continue
        if r.kind == "contraction" and r.macs > 0:
            key, rate = f"{r.exec_dtype} MAC", 2.0 * r.macs / r.compute_s
        elif r.vector_ops > 0:
            key, rate = "vector", r.vector_ops / r.compute_s
        else:
            continue
        out[key] = max(out.get(key, 0.0), rate)
    return out


def layer_of(source: str, depth: int = 1) -> str:
    """The layer an op belongs to: its source up to the ``depth``-th path component that holds
    a digit (``layers.12``, ``layer.3``, ``conv2``, ``inception_3a``), else the whole source.

    Components are separated by ``.``, ``/`` or ``:``, as in builder layer names and in the node
    names of torch, tf2onnx and Keras exports. A name space that itself holds a digit
    (``gpu_0/...``) is why ``depth`` exists: :func:`layer_breakdown` goes one level deeper
    when the first level lumps most of the run together.

    Examples
    --------
    >>> layer_of("model.layers.12.self_attn.q_proj")
    'model.layers.12'
    >>> layer_of("/encoder/layer.3/attention/self/query/MatMul")
    '/encoder/layer.3'
    >>> layer_of("gpu_0/res2_0_branch2a", depth=2)
    'gpu_0/res2_0_branch2a'
    >>> layer_of("model.norm")
    'model.norm'
    """
    seen = 0
    for m in _COMPONENT.finditer(source):
        if any(ch.isdigit() for ch in m.group()):
            seen += 1
            if seen == depth:
                return source[:m.end()]
    return source


def layer_breakdown(result: RunResult, max_bars: int = MAX_BARS) -> dict:
    """Time by op kind and energy by component, per layer, in schedule order.

    A layer is :func:`layer_of` an op's source, at the shallowest depth (1 to
    :data:`MAX_DEPTH`) where no layer holds more than half of the run's latency (or going
    deeper splits nothing). With more than ``max_bars`` layers, runs of consecutive layers are
    summed into one bar each (``model.layers.0–3``; the same number per bar, and layers of one
    indexed family such as ``model.layers.N`` never share a bar with the embedding or the
    head), so every bar is a contiguous stretch of the model and nothing is hidden in an
    ``other`` bar. The bars add up to the run's totals.

    Returns
    -------
    dict
        ``layers`` (bar labels), ``time_s`` ({kind: list per bar}), ``energy_j``
        ({component: list per bar}), ``per_bar`` (layers summed in each bar) and ``grouped``
        (how many layers share a bar with another).
    """
    keys = _layer_keys(result)
    time: dict[str, dict[str, float]] = {}
    energy: dict[str, dict[str, float]] = {}
    for r, key in zip(result.ops, keys):
        t = time.setdefault(key, {})
        t[r.kind] = t.get(r.kind, 0.0) + r.latency_s
        e = energy.setdefault(key, {})
        for c, v in r.energy_j.items():
            e[c] = e.get(c, 0.0) + v
    chunks = _chunks(list(time), max_bars)
    labels = [_range_label(c) for c in chunks]
    kinds = _ordered({k for d in time.values() for k in d}, KIND_ORDER)
    comps = _ordered({c for d in energy.values() for c in d}, ENERGY_ORDER)
    return {
        "layers": labels,
        "time_s": {k: [sum(time[lay].get(k, 0.0) for lay in c) for c in chunks] for k in kinds},
        "energy_j": {e: [sum(energy[lay].get(e, 0.0) for lay in c) for c in chunks]
                     for e in comps},
        "per_bar": [len(c) for c in chunks],
        "grouped": sum(len(c) for c in chunks if len(c) > 1),
    }


def _layer_keys(result: RunResult) -> list[str]:
    """Each op's layer at the shallowest depth that does not lump most of the run together."""
    total = result.latency_s
    keys = [r.source or r.name for r in result.ops]
    for depth in range(1, MAX_DEPTH + 1):
        keys = [layer_of(r.source or r.name, depth) for r in result.ops]
        deeper = [layer_of(r.source or r.name, depth + 1) for r in result.ops]
        by: dict[str, float] = {}
        for r, k in zip(result.ops, keys):
            by[k] = by.get(k, 0.0) + r.latency_s
        lumped = total > 0 and max(by.values()) > 0.5 * total
        if not lumped or len(set(deeper)) == len(by):
            break
    return keys


def _chunks(layers: list[str], max_bars: int) -> list[list[str]]:
    """``layers`` cut into at most ``max_bars`` runs of consecutive layers.

    Runs never cross from one indexed family to another (``model.layers.N`` to ``lm_head``)
    unless the families alone are more than ``max_bars``; the smallest run length that fits
    is used, so bars stay as fine as the space allows.
    """
    max_bars = max(max_bars, 1)
    if len(layers) <= max_bars:
        return [[lay] for lay in layers]
    segments: list[list[str]] = []
    for lay in layers:
        if segments and _family(lay) is not None and _family(lay) == _family(segments[-1][-1]):
            segments[-1].append(lay)
        else:
            segments.append([lay])
    if len(segments) > max_bars:
        segments = [layers]
    k = 1
    while sum(-(-len(s) // k) for s in segments) > max_bars:
        k += 1
    return [c for s in segments for c in _even_split(s, -(-len(s) // k))]


def _even_split(items: list, n: int) -> list[list]:
    """``items`` in ``n`` consecutive runs whose lengths differ by at most one.

    Examples
    --------
    >>> [len(c) for c in _even_split(list(range(10)), 4)]
    [3, 3, 2, 2]
    >>> sorted({len(c) for c in _even_split(list(range(126)), 32)})
    [3, 4]
    """
    base, extra = divmod(len(items), n)
    out, i = [], 0
    for j in range(n):
        size = base + (1 if j < extra else 0)
        out.append(items[i:i + size])
        i += size
    return out


def _family(layer: str) -> str | None:
    """The layer's name with its last number masked (``model.layers.#``), None if it has none."""
    m = _LAST_NUMBER.search(layer)
    return None if m is None else layer[:m.start()] + "#" + layer[m.end():]


def _range_label(chunk: list[str]) -> str:
    """``model.layers.4`` for one layer, ``model.layers.4–7`` for a run of one family."""
    first, last = chunk[0], chunk[-1]
    if len(chunk) == 1:
        return first
    if _family(first) is not None and _family(first) == _family(last):
        m = _LAST_NUMBER.search(last)
        f = _LAST_NUMBER.search(first)
        return f"{first[:f.end()]}–{m.group()}{first[f.end():]}"
    return f"{first} – {last}"


def roofline_figure(result: RunResult, dpi: int = DPI):
    """The roofline of ``result`` as a matplotlib Figure (see :func:`plot_roofline`)."""
    Figure = figure_class()
    fig = Figure(figsize=FIGSIZE, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    pts = roofline_points(result)
    peaks = implied_peaks(result)
    xlim, ylim = _limits(pts, 2.0 * result.peak_macs_per_s, result.dram_bandwidth,
                         peaks.values())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    _draw_roofs(ax, 2.0 * result.peak_macs_per_s, result.dram_bandwidth, peaks, xlim)
    _draw_points(ax, pts, xlim, ylim)
    ax.plot([], [], " ", label="marker area ~ share of run latency")
    ax.set_xlabel("arithmetic intensity (FLOP/byte of DRAM traffic; op/byte for non-contractions)")
    ax.set_ylabel("achieved throughput (FLOP/s; op/s for non-contractions)")
    ax.set_title(f"Roofline: {result.model} on {result.arch}\nengine: {result.engine}, "
                 f"{len(pts)} ops, latency {_si(result.latency_s, 's')}")
    ax.grid(True, which="major", alpha=0.3)
    # Upper left lies above the memory roof, where no op can be.
    leg = ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    for h in leg.legend_handles:       # one readable size, not the first op's share
        if hasattr(h, "set_sizes"):
            h.set_sizes([40])
    return fig


def _draw_roofs(ax, peak: float, bw: float, peaks: dict[str, float], xlim: tuple) -> None:
    x0, x1 = xlim
    if peak > 0 and bw > 0:
        ridge = peak / bw
        xs = [x0, ridge, x1]
        ax.plot(xs, [min(bw * x, peak) for x in xs], color="black", lw=2,
                label=f"roof: {_si(peak, 'FLOP/s')} peak (16-bit), {_si(bw, 'B/s')} DRAM")
        ax.axvline(ridge, color="black", lw=0.8, ls=":",
                   label=f"ridge point {ridge:.3g} FLOP/byte")
    else:
        ax.plot([], [], " ", label="roof unknown: the result has no peak rate or DRAM bandwidth")
    styles = iter(("--", "-.", (0, (5, 2, 1, 2)), (0, (1, 1))))
    for key, rate in peaks.items():
        if peak > 0 and abs(rate - peak) <= 0.01 * peak:
            continue
        value = f"{_si(rate, '')} op/s" if key == "vector" else _si(rate, "FLOP/s")
        # A lower roof starts where it meets the memory slope.
        ax.plot([rate / bw if bw > 0 else x0, x1], [rate, rate], color="dimgray", lw=1.2,
                ls=next(styles, "--"), label=f"{key} peak {value} (implied by op records)")


def _draw_points(ax, pts: list[RooflinePoint], xlim: tuple, ylim: tuple) -> None:
    """Every op, one legend entry per kind; ops off the log axes hollow at the edge."""
    clipped = {"no DRAM bytes (at right edge)": 0, "no arithmetic (at bottom edge)": 0,
               "zero latency (at top edge)": 0}
    by_kind: dict[str, list] = {}
    for p in pts:
        x, y, clip = _place(p, xlim, ylim)
        for c in clip:
            clipped[c] += 1
        by_kind.setdefault(p.kind, []).append((x, y, 15 + 600 * p.share, bool(clip)))
    for kind in _ordered(set(by_kind), KIND_ORDER):
        marker, colour = KIND_STYLE.get(kind, DEFAULT_STYLE)
        rows = by_kind[kind]
        label = f"{kind} ({len(rows)}, {'FLOP' if kind == 'contraction' else 'op'}/s)"
        for hollow in (False, True):
            sel = [r for r in rows if r[3] == hollow]
            if not sel:
                continue
            ax.scatter([r[0] for r in sel], [r[1] for r in sel], s=[r[2] for r in sel],
                       marker=marker, alpha=0.7, label=label, clip_on=False,
                       facecolors="none" if hollow else colour, edgecolors=colour)
            label = None                 # the kind's second group shares the first's entry
    for text, n in clipped.items():
        if n:
            ax.plot([], [], " ", label=f"{n} op{'s' if n > 1 else ''} with {text}, hollow")


def breakdown_figure(result: RunResult, max_bars: int = MAX_BARS, dpi: int = DPI):
    """Per-layer time and energy bars of ``result`` as a Figure (see :func:`plot_breakdown`)."""
    Figure = figure_class()
    data = layer_breakdown(result, max_bars)
    layers = data["layers"]
    fig = Figure(figsize=FIGSIZE, dpi=dpi, layout="constrained")
    ax_t, ax_e = fig.subplots(2, 1, sharex=True)
    xs = list(range(len(layers)))

    t_max = max((sum(v) for v in zip(*data["time_s"].values())), default=0.0)
    t_scale, t_unit = _unit(t_max, "s")
    bottom = [0.0] * len(layers)
    for kind, vals in _nonzero(data["time_s"]):
        _, colour = KIND_STYLE.get(kind, DEFAULT_STYLE)
        ys = [v / t_scale for v in vals]
        ax_t.bar(xs, ys, bottom=bottom, color=colour, label=kind, width=0.8)
        bottom = [b + y for b, y in zip(bottom, ys)]
    # Stacked zero-height bars pin autoscaling to their base, so the limits are set here.
    ax_t.set_ylim(0, 1.05 * t_max / t_scale if t_max > 0 else 1.0)
    ax_t.set_ylabel(f"latency ({t_unit})")
    ax_t.yaxis.set_major_formatter(plain_formatter())
    ax_t.legend(title="op kind", fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    energy = f", energy {_si(result.energy_j, 'J')}" if data["energy_j"] else ""
    ax_t.set_title(f"Per-layer breakdown: {result.model} on {result.arch}\n"
                   f"engine: {result.engine}, latency {_si(result.latency_s, 's')}{energy}")

    if data["energy_j"]:
        e_max = max(sum(v) for v in zip(*data["energy_j"].values()))
        e_scale, e_unit = _unit(e_max, "J")
        bottom = [0.0] * len(layers)
        for comp, vals in _nonzero(data["energy_j"]):
            ys = [v / e_scale for v in vals]
            ax_e.bar(xs, ys, bottom=bottom, color=ENERGY_COLOURS.get(comp, "tab:brown"),
                     label=comp, width=0.8)
            bottom = [b + y for b, y in zip(bottom, ys)]
        ax_e.set_ylim(0, 1.05 * e_max / e_scale if e_max > 0 else 1.0)
        ax_e.set_ylabel(f"energy ({e_unit})")
        ax_e.yaxis.set_major_formatter(plain_formatter())
        ax_e.legend(title="component", fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    else:
        ax_e.set_ylabel("energy (J)")
        ax_e.text(0.5, 0.5, f"no energy in this result (engine: {result.engine})",
                  transform=ax_e.transAxes, ha="center", va="center", color="gray")
        ax_e.set_yticks([])

    ax_e.set_xticks(xs, [_shorten(lay) for lay in layers], rotation=90,
                    fontsize=8 if len(layers) <= 20 else 7)
    per = max(data["per_bar"], default=1)
    note = f" (up to {per} consecutive layers per bar, as labelled)" if per > 1 else ""
    ax_e.set_xlabel(f"layer, in schedule order{note}")
    return fig


def plot_roofline(result: RunResult, path: str | Path, dpi: int = DPI) -> Path:
    """Draw the roofline of ``result`` to a PNG (or any format matplotlib knows from the suffix).

    x is arithmetic intensity (2 x MACs per DRAM byte; element ops per byte for ops that are
    not contractions), y achieved throughput (2 x MACs, or element ops, per second of the op's
    latency), the roof is ``2 * result.peak_macs_per_s`` and ``result.dram_bandwidth``. Each op
    is a marker by kind, its area proportional to its share of the run's latency. An op that
    cannot sit on log axes (no DRAM bytes, no arithmetic, zero latency) is drawn hollow at the
    matching edge and counted in the legend.

    Raises
    ------
    NpusimError
        If matplotlib (the optional extra ``reports``) is missing or the file cannot be written.
    """
    return save_figure(roofline_figure(result, dpi=dpi), path)


def plot_breakdown(result: RunResult, path: str | Path, max_bars: int = MAX_BARS,
                   dpi: int = DPI) -> Path:
    """Draw per-layer stacked bars of time (by op kind) and energy (by component).

    Layers are those of :func:`layer_breakdown` (``model.layers.3``); past ``max_bars`` layers,
    runs of consecutive layers share a bar (``model.layers.0–3``), so every bar is a stretch of
    the model in schedule order and none is an ``other`` catch-all.

    Raises
    ------
    NpusimError
        If matplotlib (the optional extra ``reports``) is missing or the file cannot be written.
    """
    return save_figure(breakdown_figure(result, max_bars=max_bars, dpi=dpi), path)


def plot_all(result: RunResult, outdir: str | Path, dpi: int = DPI) -> list[Path]:
    """Write ``roofline.png`` and ``breakdown.png`` into ``outdir`` (created if missing)."""
    outdir = make_folder(outdir, "plot")
    return [plot_roofline(result, outdir / "roofline.png", dpi=dpi),
            plot_breakdown(result, outdir / "breakdown.png", dpi=dpi)]


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return math.inf if num > 0 else math.nan


def _limits(pts: list[RooflinePoint], peak: float, bw: float, others) -> tuple[tuple, tuple]:
    """Log-axis limits that hold every finite point, the roof's ridge and the other peaks."""
    xs = [p.intensity for p in pts if 0 < p.intensity < math.inf]
    ys = [p.rate for p in pts if 0 < p.rate < math.inf] + [v for v in others if v > 0]
    if peak > 0 and bw > 0:
        xs += [peak / bw]
        ys += [peak]
    x0, x1 = (min(xs) / 4, max(xs) * 4) if xs else (0.1, 1e3)
    y0, y1 = (min(ys) / 4, max(ys) * 4) if ys else (1e6, 1e15)
    return (x0, x1), (y0, y1)


def _place(p: RooflinePoint, xlim: tuple, ylim: tuple) -> tuple[float, float, list[str]]:
    """The point's position, pulled onto the axes' edge where log axes cannot show it."""
    clip = []
    x, y = p.intensity, p.rate
    if p.work <= 0:
        clip.append("no arithmetic (at bottom edge)")
        y = ylim[0]
    elif not y < math.inf:
        clip.append("zero latency (at top edge)")
        y = ylim[1]
    if not 0 < x < math.inf:
        if p.dram_bytes <= 0:
            clip.append("no DRAM bytes (at right edge)")
        x = xlim[1] if p.dram_bytes <= 0 else xlim[0]
    return min(max(x, xlim[0]), xlim[1]), min(max(y, ylim[0]), ylim[1]), clip


def _unit(x: float, unit: str) -> tuple[float, str]:
    for scale, prefix in ((1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p")):
        if x >= scale:
            return scale, prefix + unit
    return 1e-12, "p" + unit


def _si(x: float, unit: str) -> str:
    from .terminal import si
    return si(x, unit)


def _shorten(label: str, width: int = 28) -> str:
    if len(label) <= width:
        return label
    half = (width - 1) // 2
    return label[:half] + "…" + label[-half:]


def _nonzero(series: dict[str, list[float]]) -> list[tuple[str, list[float]]]:
    """The series with anything to draw: an all-zero component only clutters the legend."""
    return [(k, v) for k, v in series.items() if any(x != 0 for x in v)]


def _ordered(keys: set, known: tuple[str, ...]) -> list[str]:
    return [k for k in known if k in keys] + sorted(keys - set(known))
