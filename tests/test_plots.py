"""Properties of the figures, read back from the matplotlib objects rather than from pixels.

- K-Perf graphs: every (arch, precision) series has a colour of its own; the line style says
  which statistic a line is (solid mean, dashed p99), never the precision.
- Millisecond axes are labelled with plain numbers: no ``1e-3`` offset, no exponent.
- A scenario that ran out of KV cache (requests preempted) is ringed, and the legend says so;
  a matrix without preemption has neither ring nor note.
- The per-layer breakdown shows the whole model in schedule order: no ``other`` bar, bars
  that add up to the run, and no bar holding most of a model whose layers are alike.
"""
from __future__ import annotations


import pytest
from hypothesis import given, settings, strategies as st

from npusim.engine.result import OpRecord, RunResult
from npusim.figures import plain_number
from npusim.report.plots import layer_breakdown, layer_of
from npusim.workloads import kperf as kp

pytest.importorskip("matplotlib")

from npusim.report import kperf as rk            # noqa: E402  (after the skip)
from npusim.report.plots import breakdown_figure  # noqa: E402

ARCHS = ("rngd", "h100")
PRECISIONS = ("bf16", "fp8", "int8")
USERS = (1, 10, 100)
PAIRS = ((128, 128), (2048, 128))


def _records(preempt_at: int | None) -> list[dict]:
    """A matrix with closed-form numbers; users >= ``preempt_at`` preempted (None: never)."""
    out = []
    for a, arch in enumerate(ARCHS):
        for p, prec in enumerate(PRECISIONS):
            for i, o in PAIRS:
                for u in USERS:
                    speed = 100.0 * (a + 1) * (p + 1)
                    out.append(dict(
                        arch=arch, model="m", chips=1, precision=prec, input_len=i,
                        output_len=o, users=u, status="ok",
                        ttft_mean_s=i / (1000 * speed) * (1 + u / 10),
                        ttft_p99_s=1.5 * i / (1000 * speed) * (1 + u / 10),
                        decode_tok_s=speed * u, avg_power_w=100.0 + 10 * u,
                        tokens_per_j=speed * u / (100.0 + 10 * u),
                        preemptions=(3 if preempt_at is not None and u >= preempt_at else 0)))
    return out


def _result(preempt_at: int | None = None) -> kp.KperfResult:
    runs = [dict(arch=a, precision=p, chips=1, status="ok", tdp_w=150.0 if a == "rngd" else 700.0)
            for a in ARCHS for p in PRECISIONS]
    return kp.KperfResult(model="m", records=_records(preempt_at), runs=runs,
                          archs={a: {} for a in ARCHS},
                          matrix=dict(precisions=PRECISIONS, users=USERS))


FIGURES = (rk.decode_figure, rk.ttft_figure, rk.power_figure, rk.efficiency_figure)


def _drawn(fig):
    fig.draw_without_rendering()        # tick labels and offset texts are made at draw time
    return fig


def _series_lines(ax):
    return [ln for ln in ax.get_lines() if ln.get_gid() is None and len(ln.get_xdata())]


# ----------------------------------------------------------------------- colours and styles

@pytest.mark.parametrize("make", FIGURES, ids=lambda f: f.__name__)
def test_every_series_has_its_own_colour_and_means_are_solid(make):
    fig = make(_result(), dpi=30)
    n = len(ARCHS) * len(PRECISIONS)
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        means = [ln for ln in _series_lines(ax) if ln.get_label() and
                 not ln.get_label().startswith("_")]
        assert len(means) == n
        assert len({ln.get_color() for ln in means}) == n
        assert {ln.get_linestyle() for ln in means} == {"-"}
    legend = fig.legends[0]
    labels = [t.get_text() for t in legend.get_texts()]
    # each series names its system: chips x arch, then the precision
    assert [lab for lab in labels if lab.split()[2:3] and lab.split()[2] in ARCHS] == [
        f"1 x {a} {p}" for a in ARCHS for p in PRECISIONS]


def test_series_colours_follow_the_series_not_the_precision():
    ss = rk.series(_result())
    assert len({s["colour"] for s in ss}) == len(ss)
    assert {s["linestyle"] for s in ss} == {rk.MEAN_STYLE}
    # The marker tells the arch: shared by an arch's series, different between archs.
    by_arch = {a: {s["marker"] for s in ss if s["arch"] == a} for a in ARCHS}
    assert all(len(m) == 1 for m in by_arch.values())
    assert by_arch["rngd"] != by_arch["h100"]


def test_ttft_p99_is_dashed_in_its_series_colour():
    fig = rk.ttft_figure(_result(), dpi=30)
    for ax in fig.axes:
        lines = _series_lines(ax)
        means = [ln for ln in lines if ln.get_linestyle() == "-"]
        p99 = [ln for ln in lines if ln.get_linestyle() == "--"]
        assert len(means) == len(p99) == len(ARCHS) * len(PRECISIONS)
        assert {ln.get_color() for ln in means} == {ln.get_color() for ln in p99}
        assert len(means) + len(p99) == len(lines)          # no third line style


# ----------------------------------------------------------------------- millisecond axes

def _ms_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible() and "(ms)" in ax.get_ylabel()]


def _plain(label: str) -> bool:
    text = label.replace(",", "").replace("−", "-")
    if not text:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return "e" not in text.lower() and "$" not in label


@pytest.mark.parametrize("spread", [1.0, 10.0, 1e4], ids=["narrow", "decade", "wide"])
def test_ttft_axis_has_plain_millisecond_labels(spread):
    res = _result()
    for r in res.records:
        r["ttft_mean_s"] *= spread if r["input_len"] > 128 else 1.0
        r["ttft_p99_s"] *= spread if r["input_len"] > 128 else 1.0
    fig = _drawn(rk.ttft_figure(res, dpi=30))
    axes = _ms_axes(fig)
    assert axes
    for ax in axes:
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        assert len(labels) >= 2 and all(_plain(lab) for lab in labels), labels
        assert ax.yaxis.get_offset_text().get_text() == ""


def test_breakdown_axes_have_plain_labels_and_no_offset():
    ops = tuple(_rec(f"model.layers.{i}.mlp", 1e-3 + 1e-9 * i, energy=1e-3) for i in range(8))
    fig = _drawn(breakdown_figure(RunResult("m", "a", "e", ops), dpi=30))
    top, bottom = fig.axes[:2]
    assert top.get_ylabel() == "latency (ms)"
    for ax in (top, bottom):
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        assert labels and all(_plain(lab) for lab in labels), labels
        assert ax.yaxis.get_offset_text().get_text() == ""


@given(st.floats(min_value=1e-9, max_value=1e12, allow_nan=False))
@settings(max_examples=200, deadline=None)
def test_plain_number_is_never_scientific(v):
    for x in (v, -v):
        text = plain_number(x)
        assert "e" not in text.lower() and text.replace(",", "").lstrip("-")[0].isdigit()
        # Three significant digits below 1,000, whole numbers above.
        tol = 0.5 if abs(x) >= 999.5 else 5e-3 * abs(x)
        assert abs(float(text.replace(",", "")) - x) <= tol


# ----------------------------------------------------------------------- preemption

def _rings(fig):
    return [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == rk.PREEMPTED_GID]


def _note(fig) -> bool:
    return any(t.get_text() == rk.PREEMPTED_NOTE for t in fig.legends[0].get_texts())


@pytest.mark.parametrize("make", FIGURES, ids=lambda f: f.__name__)
def test_preempted_scenarios_are_ringed_and_noted(make):
    fig = make(_result(preempt_at=100), dpi=30)
    rings = _rings(fig)
    assert rings and _note(fig)
    if make is not rk.ttft_figure:
        # Exactly the preempted points: users = 100, every series and panel.
        xs = [x for ln in rings for x in ln.get_xdata()]
        assert set(xs) == {100} and len(xs) == len(ARCHS) * len(PRECISIONS) * len(PAIRS)


@pytest.mark.parametrize("make", FIGURES, ids=lambda f: f.__name__)
def test_no_ring_and_no_note_without_preemption(make):
    fig = make(_result(preempt_at=None), dpi=30)
    assert not _rings(fig) and not _note(fig)


def test_real_serving_preemption_reaches_the_graphs(linear_cost):
    """The serving simulation's own ``preemptions`` field drives the ring: 16 users of 256
    tokens each need 4,096 KV tokens of a 1,024-token cache; one user fits."""
    linear_cost(kv_capacity_tokens=1024)
    r = kp.kperf("rngd", "m", input_lens=(128,), output_lens=(128,), users=(1, 16))
    assert [rk.preempted(x) for x in r.records] == [False, True]
    rings = _rings(rk.decode_figure(r, dpi=30))
    assert [list(ln.get_xdata()) for ln in rings] == [[16]]


# ----------------------------------------------------------------------- per-layer breakdown

def _rec(source, latency, kind="contraction", energy=0.0):
    return OpRecord(source, kind, source, "MatMul", "bf16", "bf16", 1, 0.0, 1.0, 1.0, 0.0, 0.0,
                    latency, latency, "memory", energy_j={"dram": energy} if energy else {})


def _other_share(data) -> float:
    per_bar = [sum(v) for v in zip(*data["time_s"].values())]
    other = sum(t for lab, t in zip(data["layers"], per_bar) if lab.startswith("other"))
    return other / sum(per_bar)


def test_llm_breakdown_has_a_bar_per_decoder_layer():
    import npusim
    r = npusim.simulate("tiny-llama", "edu", phase="decode", batch=2, kv_len=16)
    data = layer_breakdown(r)
    decoder = [lab for lab in data["layers"] if ".layers." in lab]
    assert decoder == [f"model.layers.{i}" for i in range(len(decoder))] and decoder
    assert _other_share(data) == 0.0
    assert sum(sum(v) for v in data["time_s"].values()) == pytest.approx(r.latency_s)


@pytest.mark.parametrize("names", [
    [f"n{i}" for i in range(700)],                                     # unnamed ONNX nodes
    [f"/Conv_{i}" if i % 2 else f"/Relu_{i}" for i in range(500)],   # torch's unnamed ops
    [f"gpu_0/res{i // 10}_{i % 10}_branch2a" for i in range(400)],     # caffe2 name space
    [f"/encoder/layer.{i // 12}/attention/op{i % 12}" for i in range(12 * 96)],
])
def test_many_alike_layers_never_lump_into_one_bar(names):
    ops = tuple(_rec(n, 1e-6 * (1 + i % 3)) for i, n in enumerate(names))
    data = layer_breakdown(RunResult("m", "a", "e", ops))
    per_bar = [sum(v) for v in zip(*data["time_s"].values())]
    assert len(per_bar) <= 40 and _other_share(data) == 0.0
    assert sum(per_bar) == pytest.approx(sum(o.latency_s for o in ops))
    # Alike layers: no bar holds more than three times an even share of the run.
    assert max(per_bar) / sum(per_bar) <= 3.0 / len(per_bar)


def test_a_name_space_with_a_digit_does_not_swallow_the_model():
    assert layer_of("gpu_0/res2_0_branch2a") == "gpu_0"
    ops = tuple(_rec(f"gpu_0/conv{i}", 1e-6) for i in range(10))
    assert layer_breakdown(RunResult("m", "a", "e", ops))["layers"] == [
        f"gpu_0/conv{i}" for i in range(10)]


_SOURCES = st.lists(st.one_of(
    st.builds(lambda i, s: f"model.layers.{i}.{s}", st.integers(0, 200),
              st.sampled_from(["q", "mlp.up", "norm"])),
    st.sampled_from(["model.embed_tokens", "lm_head", "model.norm", "other"]),
    st.builds(lambda i: f"n{i}", st.integers(0, 5000)),
    st.text(alphabet="ab./:_0123456789", min_size=1, max_size=12)), min_size=1, max_size=300)


@given(_SOURCES, st.integers(1, 60), st.data())
@settings(max_examples=150, deadline=None)
def test_breakdown_bars_are_runs_of_layers_in_order_adding_up(sources, max_bars, data):
    lat = data.draw(st.lists(st.floats(0.0, 1e-3), min_size=len(sources),
                             max_size=len(sources)))
    ops = tuple(_rec(s, t, energy=t) for s, t in zip(sources, lat))
    r = RunResult("m", "a", "e", ops)
    d = layer_breakdown(r, max_bars=max_bars)
    assert 1 <= len(d["layers"]) <= max_bars
    assert all(n >= 1 for n in d["per_bar"])
    n_layers = len(dict.fromkeys(d_key for d_key in _keys(r)))
    assert sum(d["per_bar"]) == n_layers
    assert sum(sum(v) for v in d["time_s"].values()) == pytest.approx(r.latency_s, abs=1e-15)
    assert sum(sum(v) for v in d["energy_j"].values()) == pytest.approx(r.energy_j, abs=1e-15)


def _keys(r):
    from npusim.report.plots import _layer_keys
    return _layer_keys(r)


def test_band_panels_share_one_legend_with_each_label_once():
    """Several systems' power panels: one legend under the panels (none inside a panel, where
    it would hide the lines), each series and each arch's band named once."""
    from npusim.figures import band_panels_figure
    series = [dict(label=f"rngd {p}", colour=c, marker="o", x=[1, 25], y=[100.0, 120.0],
                   low=[80.0, 90.0], high=[140.0, 150.0], band_label="rngd: band")
              for p, c in (("bf16", "C0"), ("fp8", "C1"))]
    series.append(dict(label="h100 bf16", colour="C2", marker="s", x=[1, 25], y=[400.0, 500.0]))
    panel = dict(title="p", series=series, lines=[(150.0, "rngd TDP 150 W", "-")])
    fig = band_panels_figure([panel, dict(panel, title="q")], "W", "t", dpi=20)
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert len(fig.legends) == 1
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["rngd bf16", "rngd: band", "rngd fp8", "h100 bf16"]
