"""The K-Perf figures' fixed layout (:func:`npusim.figures.grid_layout`), read back from the
renderer rather than from pixels.

- No two blocks of text overlap, nor text and a panel: the suptitle, the legend, and each
  panel's title, axis labels and every tick label, for the README job's shape (one system,
  four input/output pairs) and a multi-precision ``--vs`` run's (ten series with long labels,
  a series that could not run, bands, system power), and for an odd number of pairs.
- Everything stays inside the figure.
- The fixed layout draws what constrained layout draws: the same lines and markers, texts,
  tick labels, scales and limits, legend entries and titles; only positions differ.
"""
from __future__ import annotations

import itertools

import pytest

pytest.importorskip("matplotlib")

from npusim.errors import NpusimError                 # noqa: E402  (after the skip)
from npusim.figures import band_panels_figure, panels_figure  # noqa: E402
from npusim.report import kperf as rk                 # noqa: E402
from npusim.workloads import kperf as kp              # noqa: E402

USERS = (1, 5, 25, 50, 100, 150, 200, 250)
PAIRS = ((128, 128), (128, 2048), (2048, 128), (2048, 2048))
PRECISIONS = ("bf16", "fp8", "int8", "int4", "mxfp4")


def _result(archs=(("rngd", 1),), precisions=("bf16",), pairs=PAIRS, users=USERS,
            unsupported=(), system_power=False) -> kp.KperfResult:
    """A K-Perf matrix with closed-form numbers spanning the ranges of real runs: decode up to
    ~10^5 tok/s, TTFT from ~10 ms to ~10^5 ms, power bands, preemption at high load."""
    records, runs = [], []
    for a, (arch, chips) in enumerate(archs):
        for p, prec in enumerate(precisions):
            ok = (arch, prec) not in unsupported
            runs.append(dict(arch=arch, precision=prec, chips=chips,
                             status="ok" if ok else "unsupported: no such dtype",
                             tdp_w=(150.0, 700.0)[a % 2] * chips))
            for i, o in pairs:
                for u in users:
                    speed = 80.0 * (a + 1) * (1 + p / 2) * chips
                    r = dict(arch=arch, model="llama-3.3-70b", chips=chips, precision=prec,
                             input_len=i, output_len=o, users=u,
                             status="ok" if ok else "unsupported: no such dtype")
                    if ok:
                        card = (100.0, 300.0)[a % 2] + 0.5 * u
                        r.update(
                            ttft_mean_s=i / (2e4 * speed) * (1 + u * u / 10),
                            ttft_p99_s=1.5 * i / (2e4 * speed) * (1 + u * u / 10),
                            decode_tok_s=speed * u * 2048 / (2048 + i),
                            decode_tok_s_per_chip=speed * u * 2048 / (2048 + i) / chips,
                            avg_power_w=card * chips, card_power_w=card,
                            card_power_w_low=0.6 * card, card_power_w_high=1.3 * card,
                            energy_per_token_j=card * chips / (speed * u),
                            energy_per_token_j_low=0.6 * card * chips / (speed * u),
                            energy_per_token_j_high=1.3 * card * chips / (speed * u),
                            tokens_per_j=speed * u / (card * chips),
                            kv_headroom=0.0944 * (p + 1) * (a + 1), kv_capacity_tokens=96_000,
                            preemptions=5 if u >= 100 and i + o > 2048 else 0)
                        if system_power:
                            r["system_power_w"] = card * chips + 800.0
                    records.append(r)
    return kp.KperfResult(model="llama-3.3-70b", records=records, runs=runs,
                          archs={a: {"power": {"tdp": (150.0, 700.0)[n % 2]}}
                                 for n, (a, _) in enumerate(archs)},
                          matrix=dict(precisions=precisions, users=users))


README = _result()
SUITE = _result(archs=(("rngd", 4), ("h100", 8)), precisions=PRECISIONS,
                unsupported={("h100", "mxfp4")}, system_power=True)
ODD = _result(archs=(("rngd", 4), ("h100", 8)), precisions=("bf16", "fp8"),
              pairs=PAIRS[:3], users=(1, 10, 100, 1000), system_power=True)
ONE = _result(pairs=PAIRS[:1], users=(1, 250))
RESULTS = dict(readme=README, suite=SUITE, odd=ODD, one=ONE)
CASES = [(k, name, make) for k, r in RESULTS.items() for name, make in rk.figures(r)]


def _boxes(fig) -> list[tuple[str, object]]:
    """Every block of text the layout places, and every panel, as renderer bounding boxes."""
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    out = []
    for t in fig.texts:
        if t.get_visible() and t.get_text():
            out.append((f"figure text {t.get_text()!r}", t.get_window_extent(renderer)))
    for leg in fig.legends:
        out.append(("legend", leg.get_window_extent(renderer)))
    for n, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        out.append((f"panel {n}", ax.get_window_extent(renderer)))
        for what, t in (("title", ax.title), ("x label", ax.xaxis.label),
                        ("y label", ax.yaxis.label)):
            if t.get_text():
                out.append((f"panel {n} {what}", t.get_window_extent(renderer)))
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            slack = 1e-9 * (hi - lo)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                label = tick.label1
                if (label.get_visible() and label.get_text()
                        and lo - slack <= tick.get_loc() <= hi + slack):
                    out.append((f"panel {n} {axis.axis_name} tick {label.get_text()!r}",
                                label.get_window_extent(renderer)))
    return out


def _overlap(a, b) -> float:
    """Pixels the two boxes share along each direction (the lesser); > 0 when they overlap."""
    return min(min(a.x1, b.x1) - max(a.x0, b.x0), min(a.y1, b.y1) - max(a.y0, b.y0))


@pytest.mark.parametrize("key, name, make", CASES, ids=[f"{k}-{n}" for k, n, _ in CASES])
def test_no_text_overlaps_and_all_inside_the_figure(key, name, make):
    fig = make(RESULTS[key])
    boxes = _boxes(fig)
    assert any(w == "legend" for w, _ in boxes) and any("title" in w for w, _ in boxes)
    assert any(w.startswith("figure text") for w, _ in boxes)       # the suptitle
    page = fig.bbox
    for what, b in boxes:
        assert page.x0 - 0.5 <= b.x0 and b.x1 <= page.x1 + 0.5, (what, b, page)
        assert page.y0 - 0.5 <= b.y0 and b.y1 <= page.y1 + 0.5, (what, b, page)
    clashes = [(w1, w2) for (w1, b1), (w2, b2) in itertools.combinations(boxes, 2)
               if _overlap(b1, b2) > 0.5]
    assert not clashes, clashes


def _content(fig) -> dict:
    """What a reader sees, without where it sits: texts, lines, scales, ticks, legend."""
    fig.draw_without_rendering()
    panels = []
    for ax in fig.axes:
        if not ax.get_visible():
            panels.append(None)
            continue
        lines = [(tuple(map(float, ln.get_xdata())), tuple(map(float, ln.get_ydata())),
                  ln.get_color(), ln.get_linestyle(), ln.get_marker(), ln.get_markersize(),
                  ln.get_markerfacecolor(), ln.get_linewidth(), ln.get_gid())
                 for ln in ax.get_lines()]
        ticks = {}
        for axis in (ax.xaxis, ax.yaxis):
            ticks[axis.axis_name] = [(float(t.get_loc()), t.label1.get_text())
                                     for t in axis.get_major_ticks()
                                     if t.label1.get_text()]
        panels.append(dict(
            title=ax.get_title(), xlabel=ax.get_xlabel(), ylabel=ax.get_ylabel(),
            scales=(ax.get_xscale(), ax.get_yscale()), limits=(ax.get_xlim(), ax.get_ylim()),
            lines=lines, ticks=ticks, texts=[t.get_text() for t in ax.texts],
            bands=len(ax.collections), grid=ax.xaxis._major_tick_kw.get("gridOn")))
    legends = [([t.get_text() for t in leg.get_texts()],
                [(h.get_color(), h.get_linestyle(), h.get_marker())
                 for h in leg.legend_handles if hasattr(h, "get_marker")])
               for leg in fig.legends]
    return dict(panels=panels, legends=legends, suptitle=fig.get_suptitle(),
                size=tuple(fig.get_size_inches()), dpi=fig.dpi)


@pytest.mark.parametrize("key, name, make", CASES, ids=[f"{k}-{n}" for k, n, _ in CASES])
def test_fixed_layout_draws_what_constrained_layout_draws(key, name, make):
    fixed = make(RESULTS[key])
    slow = make(RESULTS[key], layout="constrained")
    assert fixed.get_layout_engine() is None
    assert slow.get_layout_engine() is not None
    assert _content(fixed) == _content(slow)


def test_panels_keep_about_the_size_constrained_layout_gives():
    """Same figure, same text: the panels differ from constrained layout's by a few pixels."""
    for result in (README, SUITE):
        for _, make in rk.figures(result):
            fixed, slow = make(result), make(result, layout="constrained")
            for fig in (fixed, slow):
                fig.draw_without_rendering()
            for a, b in zip(fixed.axes, slow.axes):
                if a.get_visible():
                    pa, pb = a.get_window_extent(), b.get_window_extent()
                    assert abs(pa.width - pb.width) < 0.05 * pb.width
                    assert abs(pa.height - pb.height) < 0.05 * pb.height


def test_an_unknown_layout_is_refused():
    with pytest.raises(NpusimError, match="unknown figure layout 'tight'"):
        panels_figure((6.0, 4.0), 100, "tight")
    with pytest.raises(NpusimError, match="unknown figure layout"):
        band_panels_figure([dict(title="p")], "W", "t", layout="tight")


@pytest.mark.parametrize("rc", [{"figure.autolayout": True},
                                {"figure.constrained_layout.use": True}])
def test_rc_layout_settings_leave_the_fixed_layout_alone(rc):
    """A user's rc asking for tight or constrained layout gives the K-Perf figures no engine:
    the fixed layout, legend band included, is what gets drawn."""
    import matplotlib as mpl
    with mpl.rc_context(rc):
        for _, make in rk.figures(README):
            fig = make(README)
            assert fig.get_layout_engine() is None
            assert not [(w1, w2) for (w1, b1), (w2, b2)
                        in itertools.combinations(_boxes(fig), 2) if _overlap(b1, b2) > 0.5]
