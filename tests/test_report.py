"""Exporters: JSON, CSV, Chrome trace and plots of a hand-built result, with hand-computed figures.

The fixture is five ops on a made-up schedule (seconds are nanoseconds here):

=====================  ===========  =====  ======  ====  =======  ===========================
op                     kind         MACs   vector  DRAM  latency  spans
=====================  ===========  =====  ======  ====  =======  ===========================
model.layers.0.q       contraction  1000   0       500   4        core0 0-3, dma 0-2
model.layers.0.act     elementwise  0      300     0     1        vector 4-5
model.layers.1.q       contraction  2000   0       250   8        core0 5-13, core1 5-13, dma 1-6
lm_head.gather         movement     0      0       64    2        none; start 13, end 15
model.norm             reduction    0      10      0     1        none; start 15, end 16
=====================  ===========  =====  ======  ====  =======  ===========================

The two dma spans overlap (0-2 and 1-6), so the trace needs a second dma lane. Ops without
spans go to a "core" thread, from their start to their end.
"""
from __future__ import annotations

import csv
import json
import math
import struct
import sys

import pytest

from npusim.engine.result import OpRecord, RunResult, Span
from npusim.errors import NpusimError
from npusim.report.export import csv_columns, flatten_mapping, write_csv, write_json
from npusim.report.plots import implied_peaks, layer_breakdown, layer_of, roofline_points
from npusim.report.trace import trace_dict, trace_events, write_trace

NS = 1e-9


def rec(name, kind, macs, vector_ops, dram, latency, **kw):
    defaults = dict(source=name, op_type=kind, dtype="bf16", exec_dtype="bf16", bytes=dram,
                    compute_s=0.0, memory_s=0.0, bound_s=latency, bound="memory")
    defaults.update(kw)
    return OpRecord(name=name, kind=kind, macs=macs, vector_ops=vector_ops, dram_bytes=dram,
                    latency_s=latency, **defaults)


@pytest.fixture
def result() -> RunResult:
    ops = (
        rec("model.layers.0.q", "contraction", 1000, 0.0, 500.0, 4 * NS,
            compute_s=1 * NS, bound="latency", start_s=0.0, end_s=4 * NS, cycles=4.0,
            energy_j={"mac": 1e-9, "dram": 2e-9},
            bytes_by_level={"dram": 500.0, "sram": 1500.0}, utilization=0.25,
            mapping={"split": {"n": 2}, "spatial": ["m", "n"], "order": "kmn"},
            spans=(Span("core0", 0.0, 3 * NS, "compute"), Span("dma", 0.0, 2 * NS, "load"))),
        rec("model.layers.0.act", "elementwise", 0, 300.0, 0.0, 1 * NS,
            compute_s=0.5 * NS, start_s=4 * NS, end_s=5 * NS,
            energy_j={"vector": 5e-10}, spans=(Span("vector", 4 * NS, 5 * NS),)),
        rec("model.layers.1.q", "contraction", 2000, 0.0, 250.0, 8 * NS,
            compute_s=2 * NS, bound="latency", start_s=5 * NS, end_s=13 * NS,
            energy_j={"mac": 2e-9, "dram": 1e-9, "static": 3e-10},
            bytes_by_level={"dram": 250.0, "shared": 100.0},
            spans=(Span("core0", 5 * NS, 13 * NS), Span("core1", 5 * NS, 13 * NS),
                   Span("dma", 1 * NS, 6 * NS, "prefetch"))),
        rec("lm_head.gather", "movement", 0, 0.0, 64.0, 2 * NS, start_s=13 * NS, end_s=15 * NS),
        rec("model.norm", "reduction", 0, 10.0, 0.0, 1 * NS, compute_s=1 * NS,
            start_s=15 * NS, end_s=16 * NS),
    )
    return RunResult(model="toy", arch="edu", engine="hand", ops=ops,
                     peak_macs_per_s=1e12, dram_bandwidth=2e11, clock_hz=1e9, tdp_w=10.0)


# ---------------------------------------------------------------------------------------- CSV

def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_csv_columns_are_scalars_then_components_then_levels(result):
    cols = csv_columns(result)
    assert cols[:3] == ["name", "kind", "source"]
    tail = cols[cols.index("energy_total_j"):]
    assert tail == ["energy_total_j", "energy_mac_j", "energy_vector_j", "energy_dram_j",
                    "energy_static_j", "bytes_dram", "bytes_shared", "bytes_sram", "mapping"]


def test_csv_round_trip_gives_the_same_numbers(result, tmp_path):
    rows = read_csv(write_csv(result, tmp_path / "ops.csv"))
    assert [r["name"] for r in rows] == [r.name for r in result.ops]
    for row, r in zip(rows, result.ops):
        assert int(row["macs"]) == r.macs
        for f in ("vector_ops", "dram_bytes", "latency_s", "compute_s", "start_s", "end_s",
                  "cycles", "utilization"):
            assert float(row[f]) == getattr(r, f), f
        assert row["bound"] == r.bound and row["kind"] == r.kind
    first, third = rows[0], rows[2]
    assert float(first["energy_mac_j"]) == 1e-9 and float(first["energy_dram_j"]) == 2e-9
    assert float(first["energy_static_j"]) == 0.0          # a component this op does not have
    assert float(first["energy_total_j"]) == result.ops[0].energy_total_j == pytest.approx(3e-9)
    assert float(first["bytes_sram"]) == 1500.0 and float(first["bytes_shared"]) == 0.0
    assert float(third["bytes_shared"]) == 100.0
    assert first["mapping"] == "split.n=2; spatial=m,n; order=kmn"
    assert rows[1]["mapping"] == ""


def test_csv_column_sums_equal_the_totals(result, tmp_path):
    rows = read_csv(write_csv(result, tmp_path / "ops.csv"))
    t = result.totals()
    assert sum(int(r["macs"]) for r in rows) == t["macs"] == 3000
    assert sum(float(r["latency_s"]) for r in rows) == t["latency_s"]
    assert sum(float(r["dram_bytes"]) for r in rows) == t["dram_bytes"] == 814.0
    assert sum(float(r["energy_total_j"]) for r in rows) == pytest.approx(t["energy_j"], rel=1e-15)
    for comp, joules in t["energy_by_component_j"].items():
        assert sum(float(r[f"energy_{comp}_j"]) for r in rows) == pytest.approx(joules, rel=1e-15)
    assert t["energy_j"] == pytest.approx(6.8e-9)


def test_csv_defuses_spreadsheet_formulas(tmp_path):
    bad = rec("=HYPERLINK(\"http://x\")", "elementwise", 0, 1.0, 0.0, NS, source="@SUM(A1)")
    rows = read_csv(write_csv(RunResult("m", "a", "e", (bad,)), tmp_path / "x.csv"))
    assert rows[0]["name"] == "'=HYPERLINK(\"http://x\")"
    assert rows[0]["source"] == "'@SUM(A1)"


def test_flatten_mapping_nests_and_joins():
    assert flatten_mapping({"tiles": {"sram": {"m": 128, "k": 64}}, "order": ("k", "m"),
                            "split": 4.0, "empty": {}}) == \
        "tiles.sram.m=128; tiles.sram.k=64; order=k,m; split=4; empty={}"


def test_write_errors_name_the_file(result, tmp_path):
    missing = tmp_path / "no_such_dir" / "ops.csv"
    with pytest.raises(NpusimError, match="no_such_dir.*folder"):
        write_csv(result, missing)
    with pytest.raises(NpusimError, match="cannot write JSON"):
        write_json(result, missing.with_suffix(".json"))
    with pytest.raises(NpusimError, match="cannot write trace"):
        write_trace(result, missing.with_suffix(".trace.json"))


# --------------------------------------------------------------------------------------- JSON

def strict_load(path):
    def reject(const):
        raise AssertionError(f"non-standard JSON constant {const}")
    return json.loads(path.read_text(), parse_constant=reject)


def test_json_round_trip(result, tmp_path):
    data = strict_load(write_json(result, tmp_path / "run.json"))
    assert data["totals"] == json.loads(json.dumps(result.totals()))
    assert data["ops"][2]["energy_j"] == {"mac": 2e-9, "dram": 1e-9, "static": 3e-10}
    assert data["ops"][0]["spans"][1] == {"resource": "dma", "start_s": 0.0, "end_s": 2e-9,
                                         "label": "load"}
    assert "resolved_arch" not in data


def test_json_carries_the_resolved_arch(result, tmp_path):
    from npusim.arch import load_arch
    arch = load_arch("edu", {"dram.bandwidth": "123 GB/s"})
    data = strict_load(write_json(result, tmp_path / "run.json", arch=arch))
    assert data["arch"] == "edu"
    assert data["resolved_arch"]["name"] == "edu"
    assert data["resolved_arch"]["dram"]["bandwidth"] == pytest.approx(123e9)
    assert data["resolved_arch"]["units"]["dram.bandwidth"]


def test_json_writes_non_finite_numbers_as_strings(tmp_path):
    odd = rec("x", "elementwise", 0, 1.0, 0.0, math.inf, utilization=math.nan)
    data = strict_load(write_json(RunResult("m", "a", "e", (odd,)), tmp_path / "r.json"))
    assert data["ops"][0]["latency_s"] == "inf" and data["ops"][0]["utilization"] == "nan"


# -------------------------------------------------------------------------------------- trace

def test_trace_structure_loads_as_chrome_trace(result, tmp_path):
    data = strict_load(write_trace(result, tmp_path / "t.json"))
    events = data["traceEvents"]
    meta = [e for e in events if e["ph"] == "M"]
    xs = [e for e in events if e["ph"] == "X"]
    for e in events:
        assert {"name", "ph", "pid", "tid"} <= e.keys()
    for e in xs:
        assert {"ts", "dur", "args", "cat"} <= e.keys()
        assert e["dur"] >= 0 and e["ts"] >= 0
        assert {"op", "source", "macs", "bytes", "bound"} <= e["args"].keys()
    names = {e["tid"]: e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    assert {e["tid"] for e in xs} <= names.keys()          # every thread with slices is named
    assert sorted(names.values()) == ["core", "core0", "core1", "dma", "dma #2", "vector"]
    assert [e["name"] for e in meta if e["name"] == "process_name"] == ["process_name"]
    # Sorted and not overlapping per thread, checked in whole picoseconds as written.
    by_tid: dict[int, list] = {}
    for e in xs:
        by_tid.setdefault(e["tid"], []).append((round(e["ts"] * 1e6), round(e["dur"] * 1e6)))
    for tid, spans in by_tid.items():
        assert spans == sorted(spans), names[tid]
        for (s0, d0), (s1, _) in zip(spans, spans[1:]):
            assert s0 + d0 <= s1, names[tid]


def test_trace_places_every_span_in_microseconds(result):
    events = trace_events(result)
    tname = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    got = sorted((tname[e["tid"]], e["args"]["op"], round(e["ts"] * 1e6), round(e["dur"] * 1e6))
                 for e in events if e["ph"] == "X")
    assert got == sorted([
        ("core0", "model.layers.0.q", 0, 3000), ("dma", "model.layers.0.q", 0, 2000),
        ("vector", "model.layers.0.act", 4000, 1000),
        ("core0", "model.layers.1.q", 5000, 8000), ("core1", "model.layers.1.q", 5000, 8000),
        ("dma #2", "model.layers.1.q", 1000, 5000),
        ("core", "lm_head.gather", 13000, 2000), ("core", "model.norm", 15000, 1000),
    ])
    dma_label = [e["name"] for e in events if e["ph"] == "X" and e["args"]["op"] ==
                 "model.layers.1.q" and tname[e["tid"]].startswith("dma")]
    assert dma_label == ["model.layers.1.q: prefetch"]


def test_trace_threads_sort_naturally():
    ops = tuple(rec(f"op{i}", "contraction", 1, 0.0, 1.0, NS,
                    spans=(Span(f"core{i}", 0.0, NS),)) for i in (10, 2, 1))
    events = trace_events(RunResult("m", "a", "e", ops))
    order = {e["tid"]: e["args"]["sort_index"] for e in events if e["name"] == "thread_sort_index"}
    names = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert [names[t] for t in sorted(order, key=order.get)] == ["core1", "core2", "core10"]


def test_trace_shows_a_fused_op_as_a_zero_length_slice_where_it_sits():
    ops = (rec("mm", "contraction", 8, 0.0, 8.0, 5 * NS, start_s=0.0, end_s=5 * NS,
               spans=(Span("core0", 0.0, 5 * NS),)),
           rec("relu", "elementwise", 0, 4.0, 0.0, 0.0, start_s=5 * NS, end_s=5 * NS))
    xs = [(e["args"]["op"], round(e["ts"] * 1e6), e["dur"])
          for e in trace_events(RunResult("m", "a", "e", ops)) if e["ph"] == "X"]
    assert sorted(xs) == [("mm", 0, 0.005), ("relu", 5000, 0.0)]


def test_trace_of_an_unscheduled_run_is_ops_in_sequence():
    ops = tuple(rec(f"op{i}", "elementwise", 0, 1.0, 0.0, (i + 1) * NS) for i in range(3))
    d = trace_dict(RunResult("m", "a", "roofline", ops))
    xs = [(round(e["ts"] * 1e6), round(e["dur"] * 1e6))
          for e in d["traceEvents"] if e["ph"] == "X"]
    assert xs == [(0, 1000), (1000, 2000), (3000, 3000)]
    assert d["otherData"]["latency_s"] == pytest.approx(6 * NS)


# ------------------------------------------------------------------------------ plot data

def test_roofline_points_are_hand_computed(result):
    pts = {p.name: p for p in roofline_points(result)}
    q0, act, q1 = pts["model.layers.0.q"], pts["model.layers.0.act"], pts["model.layers.1.q"]
    assert (q0.work, q0.intensity, q0.rate) == (2000.0, 4.0, pytest.approx(5e11))
    assert (q1.intensity, q1.rate) == (16.0, pytest.approx(5e11))
    assert act.intensity == math.inf and act.rate == pytest.approx(3e11)
    assert pts["lm_head.gather"].intensity == 0.0 and pts["lm_head.gather"].rate == 0.0
    assert pts["model.norm"].rate == pytest.approx(1e10)
    assert [p.share for p in pts.values()] == pytest.approx([4 / 16, 1 / 16, 8 / 16, 2 / 16,
                                                             1 / 16])


def test_roofline_points_zero_latency_and_no_work():
    ops = (rec("free", "elementwise", 0, 5.0, 0.0, 0.0), rec("idle", "movement", 0, 0.0, 0.0, 0.0))
    free, idle = roofline_points(RunResult("m", "a", "e", ops))
    assert free.intensity == math.inf and free.rate == math.inf and free.share == 0.0
    assert math.isnan(idle.intensity) and idle.rate == 0.0


def test_implied_peaks_recover_rates_from_compute_time(result):
    # 2 x 1000 MACs in 1 ns and 2 x 2000 in 2 ns: 2e12 FLOP/s; 300 ops in 0.5 ns: 6e11 op/s.
    assert implied_peaks(result) == pytest.approx({"bf16 MAC": 2e12, "vector": 6e11})


def test_layer_of():
    assert layer_of("model.layers.31.mlp.down_proj") == "model.layers.31"
    assert layer_of("encoder.layers.3/attn/MatMul") == "encoder.layers.3"
    assert layer_of("model.layers_extra.1") == "model.layers_extra.1"
    assert layer_of("n17") == "n17"


def test_layer_breakdown_merges_consecutive_layers_of_a_family(result):
    full = layer_breakdown(result)
    assert full["layers"] == ["model.layers.0", "model.layers.1", "lm_head.gather", "model.norm"]
    assert full["time_s"]["contraction"] == pytest.approx([4 * NS, 8 * NS, 0, 0])
    assert full["energy_j"]["mac"] == pytest.approx([1e-9, 2e-9, 0, 0])
    assert full["grouped"] == 0 and full["per_bar"] == [1, 1, 1, 1]
    capped = layer_breakdown(result, max_bars=3)
    # The two decoder layers share a bar; the head and the norm stay bars of their own.
    assert capped["layers"] == ["model.layers.0–1", "lm_head.gather", "model.norm"]
    assert capped["grouped"] == 2 and capped["per_bar"] == [2, 1, 1]
    assert capped["time_s"]["contraction"] == pytest.approx([12 * NS, 0, 0])
    assert capped["time_s"]["elementwise"] == pytest.approx([1 * NS, 0, 0])
    assert capped["time_s"]["movement"] == pytest.approx([0, 2 * NS, 0])
    total = sum(sum(v) for v in capped["time_s"].values())
    assert total == pytest.approx(result.latency_s)
    energy = sum(sum(v) for v in capped["energy_j"].values())
    assert energy == pytest.approx(result.energy_j)


def test_layer_breakdown_of_a_cnn_with_hundreds_of_ops_has_no_other_bar():
    ops = tuple(rec(f"n{i}", "contraction", 10, 0.0, 1.0, (i % 7 + 1) * NS) for i in range(300))
    r = RunResult("cnn", "a", "e", ops)
    data = layer_breakdown(r)
    # 300 unnamed ops in 38 runs of 8 or 7 (8 is the fewest per bar that fit 40 bars).
    assert len(data["layers"]) == 38 and "other" not in data["layers"]
    assert data["layers"][:2] == ["n0–7", "n8–15"] and data["layers"][-1] == "n293–299"
    assert sum(data["per_bar"]) == 300 and max(data["per_bar"]) == 8
    assert sum(data["time_s"]["contraction"]) == pytest.approx(r.latency_s)


# -------------------------------------------------------------------------------------- PNGs

def png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_plots_write_pngs_of_the_expected_size(result, tmp_path):
    pytest.importorskip("matplotlib")
    from npusim.report.plots import FIGSIZE, plot_all
    paths = plot_all(result, tmp_path / "plots" / "deep", dpi=40)
    assert [p.name for p in paths] == ["roofline.png", "breakdown.png"]
    for p in paths:
        assert p.stat().st_size > 1000
        assert png_size(p) == (round(FIGSIZE[0] * 40), round(FIGSIZE[1] * 40))


def test_roofline_legend_counts_clipped_ops(result):
    pytest.importorskip("matplotlib")
    from npusim.report.plots import roofline_figure
    zero = rec("zero", "elementwise", 0, 5.0, 0.0, 0.0)
    r = RunResult("toy", "edu", "hand", result.ops + (zero,), peak_macs_per_s=1e12,
                  dram_bandwidth=2e11)
    texts = [t.get_text() for t in roofline_figure(r, dpi=20).axes[0].get_legend().get_texts()]
    # act, norm and zero move no DRAM bytes; the gather does no arithmetic; zero takes no time.
    assert "3 ops with no DRAM bytes (at right edge), hollow" in texts
    assert "1 op with no arithmetic (at bottom edge), hollow" in texts
    assert "1 op with zero latency (at top edge), hollow" in texts
    assert "contraction (2, FLOP/s)" in texts and "elementwise (2, op/s)" in texts
    assert "roof: 2 TFLOP/s peak (16-bit), 200 GB/s DRAM" in texts
    assert "vector peak 600 G op/s (implied by op records)" in texts


def test_breakdown_figure_titles_name_model_and_arch(result):
    pytest.importorskip("matplotlib")
    from npusim.report.plots import breakdown_figure
    fig = breakdown_figure(result, dpi=20)
    top, bottom = fig.axes[:2]
    assert top.get_title().startswith("Per-layer breakdown: toy on edu")
    assert top.get_ylabel() == "latency (ns)" and bottom.get_ylabel() == "energy (nJ)"
    assert [t.get_text() for t in bottom.get_xticklabels()] == [
        "model.layers.0", "model.layers.1", "lm_head.gather", "model.norm"]


def test_missing_matplotlib_names_the_extra(result, tmp_path, monkeypatch):
    from npusim.report import plots
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)   # makes the import fail
    with pytest.raises(NpusimError, match=r"npusim\[reports\]"):
        plots.plot_roofline(result, tmp_path / "r.png")


# ------------------------------------------------------------------------ output paths

def _one_line_error(e: NpusimError) -> bool:
    text = str(e)
    return "\n" not in text and "\r" not in text and text.startswith("cannot ")


@pytest.mark.parametrize("bad", ["a\x00b.csv", "x\n\x00y"])
def test_a_path_with_a_nul_byte_is_one_clean_error(result, tmp_path, bad):
    from npusim.report.plots import plot_all, plot_roofline
    writers = (lambda p: write_csv(result, p), lambda p: write_json(result, p),
               lambda p: write_trace(result, p), lambda p: plot_all(result, p, dpi=10),
               lambda p: plot_roofline(result, p, dpi=10))
    for write in writers:
        with pytest.raises(NpusimError) as info:
            write(tmp_path / bad)
        assert _one_line_error(info.value) and "\\x00" in str(info.value)


def test_writing_under_a_file_or_into_a_folder_is_one_clean_error(result, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for write, path in ((lambda p: write_csv(result, p), tmp_path),
                        (lambda p: write_json(result, p), afile / "r.json"),
                        (lambda p: write_trace(result, p), tmp_path / "missing" / "t.json")):
        with pytest.raises(NpusimError) as info:
            write(path)
        assert _one_line_error(info.value)


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_NAMES = st.text(alphabet=st.sampled_from(list("ab/.\x00\n\t ") + ["é", "\u202e"]),
                 min_size=1, max_size=12)


@given(_NAMES)
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzz_output_paths_write_or_fail_cleanly(result, tmp_path, name):
    """Any file name under a writable folder: the writers write it or raise one clean line."""
    for write in (lambda p: write_csv(result, p), lambda p: write_json(result, p),
                  lambda p: write_trace(result, p)):
        try:
            write(tmp_path / name)
        except NpusimError as e:
            assert _one_line_error(e), str(e)
