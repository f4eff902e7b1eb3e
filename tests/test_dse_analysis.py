"""Pareto fronts, sensitivity and the sweep report (npusim.dse.analysis, npusim.report.sweep).

- ``pareto_mask`` agrees with its pure-Python twin (ties, nan rows, every goal mix, blocks of
  any size) and has the front's properties: every dominated row has a dominator on the front,
  a point better than all others is alone on it, negating a column is flipping its goal.
- ``front`` and ``sensitivity`` on hand-computed rows.
- ``write_report_rows`` writes the expected, non-empty files and a summary whose counts are
  right, including the degenerate sweeps (all infeasible, nan metrics, one point, one
  objective, choice fields, names that are not file names).
- Bad input of every class is one NpusimError, also under fuzzing.
"""
from __future__ import annotations

import importlib.util
import math
import random
import re
import sys
import types
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from npusim.dse import analysis as an
from npusim.errors import NpusimError

NAN = float("nan")


# ----------------------------------------------------------------------------- pareto_mask

@st.composite
def matrices(draw, max_n=30, max_k=4):
    """Small integer-valued matrices (many ties) with some nan cells, and goals per column."""
    n = draw(st.integers(0, max_n))
    k = draw(st.integers(1, max_k))
    cells = st.one_of(st.integers(-3, 3).map(float), st.just(NAN)) if draw(st.booleans()) \
        else st.integers(-3, 3).map(float)
    values = [[draw(cells) for _ in range(k)] for _ in range(n)]
    goals = [draw(st.sampled_from(("min", "max"))) for _ in range(k)]
    return np.array(values, dtype=float).reshape(n, k), goals


@settings(max_examples=300, deadline=None)
@given(matrices(), st.sampled_from((1, 7, 50, an._BLOCK_CELLS)))
def test_pareto_mask_agrees_with_its_twin(case, cells):
    values, goals = case
    with mock.patch.object(an, "_BLOCK_CELLS", cells):      # blocks of 1 row up to all rows
        mask = an.pareto_mask(values, goals)
    assert mask.dtype == bool and mask.shape == (values.shape[0],)
    assert list(mask) == an.pareto_mask_ref(values, goals)


def test_pareto_mask_agrees_with_its_twin_across_many_blocks():
    rng = np.random.default_rng(5)
    values = rng.integers(0, 12, size=(700, 3)).astype(float)
    values[rng.random(700) < 0.05, 2] = np.nan
    goals = ["min", "max", "min"]
    assert list(an.pareto_mask(values, goals)) == an.pareto_mask_ref(values, goals)


def _dominates(a, b, goals) -> bool:
    s = np.array([1.0 if g == "min" else -1.0 for g in goals])
    return bool(np.all(a * s <= b * s) and np.any(a * s < b * s))


@settings(max_examples=200, deadline=None)
@given(matrices())
def test_every_dominated_row_has_a_dominator_on_the_front(case):
    values, goals = case
    mask = an.pareto_mask(values, goals)
    valid = ~np.isnan(values).any(axis=1)
    assert not mask[~valid].any()                       # nan rows never on the front
    front = values[mask]
    for i in np.flatnonzero(valid & ~mask):
        assert any(_dominates(f, values[i], goals) for f in front)
    for i in np.flatnonzero(mask):                      # and nothing dominates a front row
        assert not any(_dominates(values[j], values[i], goals)
                       for j in np.flatnonzero(valid))


@settings(max_examples=200, deadline=None)
@given(matrices())
def test_a_point_better_than_all_is_alone_on_the_front(case):
    values, goals = case
    s = np.array([1.0 if g == "min" else -1.0 for g in goals])
    best = np.full(values.shape[1], -10.0) * s                # better than -3..3 everywhere
    mask = an.pareto_mask(np.vstack([values, best]), goals)
    assert list(np.flatnonzero(mask)) == [values.shape[0]]


@settings(max_examples=200, deadline=None)
@given(matrices(), st.data())
def test_negating_a_column_flips_its_goal(case, data):
    values, goals = case
    c = data.draw(st.integers(0, values.shape[1] - 1))
    flipped = values.copy()
    flipped[:, c] = -flipped[:, c]
    goals2 = list(goals)
    goals2[c] = "max" if goals[c] == "min" else "min"
    assert list(an.pareto_mask(flipped, goals2)) == list(an.pareto_mask(values, goals))


@settings(max_examples=100, deadline=None)
@given(matrices(), st.randoms(use_true_random=False))
def test_the_front_does_not_depend_on_row_order(case, rnd):
    values, goals = case
    perm = list(range(values.shape[0]))
    rnd.shuffle(perm)
    assert list(an.pareto_mask(values[perm], goals)) == list(an.pareto_mask(values, goals)[perm])


def test_pareto_mask_hand_cases():
    v = [[1, 5], [2, 2], [3, 3], [1, 5], [NAN, 0], [0, NAN]]
    assert list(an.pareto_mask(v, ["min", "min"])) == [True, True, False, True, False, False]
    assert list(an.pareto_mask(v, ["max", "max"])) == [True, False, True, True, False, False]
    assert list(an.pareto_mask([[1.0], [1.0], [2.0]], ["min"])) == [True, True, False]
    assert an.pareto_mask(np.zeros((0, 2)), ["min", "max"]).shape == (0,)
    assert list(an.pareto_mask(np.zeros((3, 0)), [])) == [True, True, True]
    # None is a missing value, as nan: never on the front
    assert list(an.pareto_mask([[None, 1], [2, 2]], ["min", "min"])) == [False, True]
    inf = float("inf")                                   # infinities compare, unlike nan
    assert list(an.pareto_mask([[inf, 0], [1, 1], [-inf, 5]], ["min", "min"])) == \
        [True, True, True]


@pytest.mark.parametrize("values, goals, words", [
    ([[1, 2]], ["min"], "1 goals for 2"),
    ([[1, 2]], ["min", "least"], "unknown goal 'least'"),
    ([[1, 2]], "minmax", "not the text"),
    ([1, 2], ["min"], "shape (2,)"),
    ([[[1]]], ["min"], "shape (1, 1, 1)"),
    ([["a", "b"]], ["min", "min"], "must be numbers"),
    ([[1, 2], [3]], ["min", "min"], "must be numbers"),
])
def test_pareto_mask_refuses_bad_input(values, goals, words):
    with pytest.raises(NpusimError, match=re.escape(words)) as e:
        an.pareto_mask(values, goals)
    assert "\n" not in str(e.value)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3),
                    lambda c: st.lists(c, max_size=4), max_leaves=12),
       st.one_of(st.text(max_size=4), st.lists(st.sampled_from(("min", "max", "", "MIN", 1)),
                                               max_size=4)))
def test_fuzz_pareto_mask_input(values, goals):
    """Anything at all: a boolean mask of one entry per row, or one NpusimError."""
    try:
        mask = an.pareto_mask(values, goals)
    except NpusimError as e:
        assert "\n" not in str(e)
        return
    assert mask.dtype == bool and mask.shape == (np.asarray(values, dtype=float).shape[0],)


# ----------------------------------------------------------------------------- rows

def _row(point, workload="w", feasible=True, error=None, **cols):
    return dict(key=f"{workload}-{point}", point=point, phase="sample", workload=workload,
                feasible=feasible, error=error, violations="", elapsed_s=0.1, worker="w0",
                **cols)


def test_front_hand_case():
    rows = [
        _row(0, lat=4.0, tok=10.0),
        _row(1, lat=2.0, tok=20.0),
        _row(2, lat=2.0, tok=20.0),                       # a tie: both on the front
        _row(3, lat=1.0, tok=5.0),
        _row(4, lat=3.0, tok=30.0),
        _row(5, feasible=False, lat=0.5, tok=99.0),       # dominates all but is infeasible
        _row(6, error="oom", lat=None, tok=None),         # failed
        _row(7, lat=NAN, tok=50.0),                       # no latency: never on the front
        _row(8, lat="fast", tok=50.0),                    # text is not a number either
        _row(9, workload="other", lat=0.1, tok=100.0),
    ]
    got = an.front(rows, [("lat", "min"), ("tok", "max")], "w")
    assert [r["point"] for r in got] == [3, 1, 2, 4]
    assert all(r is rows[r["point"]] for r in got)        # the rows themselves
    # max first: best first on the first objective
    got = an.front(rows, [("tok", "max"), ("lat", "min")], "w")
    assert [r["point"] for r in got] == [4, 1, 2, 3]
    # SQLite's 0/1 for feasible and "" for no error
    rows2 = [dict(r, feasible=int(r["feasible"]), error=r["error"] or "") for r in rows]
    assert [r["point"] for r in an.front(rows2, [("lat", "min"), ("tok", "max")], "w")] == \
        [3, 1, 2, 4]
    assert [r["point"] for r in an.front(rows, [("lat", "min")], "other")] == [9]


def test_front_of_all_infeasible_or_failed_is_empty():
    rows = [_row(0, feasible=False, lat=1.0), _row(1, error="x", lat=None)]
    assert an.front(rows, [("lat", "min")], "w") == []


@pytest.mark.parametrize("rows, objectives, workload, words", [
    ([_row(0, lat=1.0)], [("lat", "min")], "nope", "no point of workload 'nope'"),
    ([_row(0, lat=1.0)], [("latency", "min")], "w", "no result has the metric 'latency'"),
    ([_row(0, lat=1.0)], [("lat", "best")], "w", "unknown goal 'best'"),
    ([_row(0, lat=1.0)], [], "w", "no objectives"),
    ([_row(0, lat=1.0)], "lat", "w", "not a text"),
    ([_row(0, lat=1.0)], [("lat",)], "w", "not a (metric, goal) pair"),
    ([_row(0, lat=1.0)], [(3, "min")], "w", "the metric must be a metric name"),
    ([_row(0, lat=1.0)], [("lat", "min"), ("lat", "max")], "w", "given twice"),
    ([{"point": 0}], [("lat", "min")], "w", "row 0 is not a dict with a 'workload'"),
    ("rows", [("lat", "min")], "w", "not str"),
    (None, [("lat", "min")], "w", "not NoneType"),
])
def test_front_refuses_bad_input(rows, objectives, workload, words):
    with pytest.raises(NpusimError, match=re.escape(words)) as e:
        an.front(rows, objectives, workload)
    assert "\n" not in str(e.value)


def _grid_rows():
    """sram x bw x dataflow around a best point (sram=2, bw=20, ws), lat by hand."""
    rows = [
        _row(0, sram=2, bw=20.0, df="ws", lat=4.0),       # the best feasible
        _row(1, sram=1, bw=20.0, df="ws", lat=6.0),       # sram variants: 6, 5
        _row(2, sram=4, bw=20.0, df="ws", lat=5.0),
        _row(3, sram=2, bw=10.0, df="ws", lat=8.0),       # bw variant: 8 ...
        _row(4, sram=2, bw=40.0, df="ws", lat=3.0, feasible=False),  # ... and an infeasible 3
        _row(5, sram=2, bw=80.0, df="ws", error="failed", lat=None),  # failed: ignored
        _row(6, sram=1, bw=10.0, df="os", lat=1.0, feasible=False),  # differs in 3 fields
        _row(7, sram=2, bw=20.0, df="os", lat=4.4),       # df variant
        _row(8, sram=1, bw=10.0, df="ws", lat=9.0),       # two fields differ: no variant
        _row(9, workload="x", sram=2, bw=20.0, df="is", lat=0.1),  # another workload
    ]
    return rows


def test_sensitivity_hand_case():
    out = an.sensitivity(_grid_rows(), ["sram", "bw", "df"], ("lat", "min"), "w")
    by = {e["field"]: e for e in out}
    assert [e["field"] for e in out] == ["bw", "sram", "df"]
    bw, sram, df = by["bw"], by["sram"], by["df"]
    assert (bw["min_objective"], bw["min_value"], bw["max_objective"], bw["max_value"]) == \
        (3.0, 40.0, 8.0, 10.0)
    assert bw["swing"] == pytest.approx(5.0 / 4.0) and bw["variants"] == 2
    assert bw["infeasible"] == 1
    assert (sram["min_objective"], sram["min_value"], sram["max_objective"],
            sram["max_value"]) == (4.0, 2, 6.0, 1)
    assert sram["swing"] == pytest.approx(0.5) and sram["variants"] == 2
    assert df["swing"] == pytest.approx(0.1) and df["max_value"] == "os"
    for e in out:
        assert e["best_point"] == 0 and e["best_objective"] == 4.0 and e["reason"] is None
        assert e["metric"] == "lat" and e["goal"] == "min"
    assert (by["sram"]["best_value"], by["df"]["best_value"]) == (2, "ws")


def test_sensitivity_max_goal_and_a_field_without_variants():
    rows = _grid_rows()
    for r in rows:
        r["cores"] = 4                                      # never varied
        if r["lat"] is not None:
            r["tok"] = 1.0 / r["lat"]
    out = an.sensitivity(rows, ["sram", "bw", "df", "cores"], ("tok", "max"), "w")
    assert out[0]["best_point"] == 0                        # 1/4 is the best feasible tok
    last = out[-1]
    assert last["field"] == "cores" and last["swing"] is None
    assert last["reason"] == an.NO_VARIANTS and last["variants"] == 0
    assert last["best_value"] == 4


def test_sensitivity_takes_a_spec_and_refuses_bad_input():
    spec = types.SimpleNamespace(fields=[types.SimpleNamespace(path=p) for p in ("sram", "bw")])
    assert {e["field"] for e in an.sensitivity(_grid_rows(), spec, ("lat", "min"), "w")} == \
        {"sram", "bw"}
    with pytest.raises(NpusimError, match="has the field 'nope'"):
        an.sensitivity(_grid_rows(), ["sram", "nope"], ("lat", "min"), "w")
    with pytest.raises(NpusimError, match="given twice"):
        an.sensitivity(_grid_rows(), ["sram", "sram"], ("lat", "min"), "w")
    with pytest.raises(NpusimError, match="not a field path"):
        an.sensitivity(_grid_rows(), ["sram", 3], ("lat", "min"), "w")
    with pytest.raises(NpusimError, match="no feasible point of workload 'w' has a value"):
        an.sensitivity([_row(0, sram=1, feasible=False, lat=1.0)], ["sram"], ("lat", "min"), "w")
    with pytest.raises(NpusimError, match="no result has the metric 'latency'"):
        an.sensitivity(_grid_rows(), ["sram"], ("latency", "min"), "w")


def test_sensitivity_around_a_zero_best_gives_no_relative_swing():
    rows = [_row(0, f=1, m=0.0), _row(1, f=2, m=3.0)]
    (e,) = an.sensitivity(rows, ["f"], ("m", "min"), "w")
    assert e["swing"] is None and "is 0" in e["reason"]
    assert (e["min_objective"], e["max_objective"], e["max_value"]) == (0.0, 3.0, 2)


def test_values_compare_exactly_as_stored():
    # 1 and 1.0 are the same value; "1" (text) is not; nan matches nothing
    rows = [_row(0, a=1, b="x", m=1.0), _row(1, a=1.0, b="y", m=2.0),
            _row(2, a="1", b="z", m=3.0), _row(3, a=NAN, b="w", m=4.0)]
    by = {e["field"]: e for e in an.sensitivity(rows, ["a", "b"], ("m", "min"), "w")}
    assert by["b"]["variants"] == 1 and by["b"]["max_value"] == "y"
    assert by["a"]["variants"] == 0


@st.composite
def random_rows(draw, max_rows=25):
    """Rows of one or two workloads with cells of every kind a store or a CSV might give."""
    cell = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                     st.sampled_from(("os", "ws", "1", "")),
                     st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80))
    metric = st.one_of(st.none(), st.floats(-10, 10), st.just(NAN), st.just(float("inf")),
                       st.text(max_size=2), st.integers(0, 3))
    rows = []
    for i in range(draw(st.integers(1, max_rows))):
        rows.append(_row(i, workload=draw(st.sampled_from(("w", "v/2"))),
                         feasible=draw(st.sampled_from((True, False, 0, 1, None))),
                         error=draw(st.sampled_from((None, "", "boom"))),
                         a=draw(cell), b=draw(cell), m1=draw(metric), m2=draw(metric)))
    return rows


@settings(max_examples=200, deadline=None)
@given(random_rows(), st.sampled_from(("min", "max")), st.sampled_from(("min", "max")))
def test_fuzz_front_and_sensitivity_on_odd_rows(rows, g1, g2):
    """Odd cells never crash the analysis: a front of feasible rows with finite objectives,
    and sensitivities whose ranges hold the best value, or one NpusimError."""
    w = rows[0]["workload"]
    fr = an.front(rows, [("m1", g1), ("m2", g2)], w)
    for r in fr:
        assert an.feasible(r) and r["workload"] == w
        assert math.isfinite(an.number(r["m1"])) and math.isfinite(an.number(r["m2"]))
    try:
        out = an.sensitivity(rows, ["a", "b"], ("m1", g1), w)
    except NpusimError as e:
        assert "no feasible point" in str(e) and "\n" not in str(e)
        assert not any(an.feasible(r) and math.isfinite(an.number(r["m1"]))
                       for r in rows if r["workload"] == w)
        return
    for e in out:
        if e["min_objective"] is not None:
            assert e["min_objective"] <= e["best_objective"] <= e["max_objective"]
        best = e["best_objective"]
        chosen = [an.number(r["m1"]) for r in rows
                  if r["workload"] == w and an.feasible(r) and math.isfinite(an.number(r["m1"]))]
        assert best == (min(chosen) if g1 == "min" else max(chosen))


# ----------------------------------------------------------------------------- the report

def _sweep_rows():
    """Two workloads on a 3 x 2 x 2 grid; 'llm' has failures and infeasible points."""
    rows, i = [], 0
    for w in ("llm decode/32", "resnet50"):
        for sram in (8.0, 16.0, 32.0):
            for bw in (1e12, 4e12):
                for df in ("os", "ws"):
                    lat = 1e-3 * (64 / sram) * (4e12 / bw) * (1.1 if df == "os" else 1.0)
                    area = 100 + sram + bw / 1e11
                    err = "CapacityError: does not fit" if (w.startswith("llm") and sram == 8.0
                                                            and df == "os") else None
                    metrics = dict(latency_s=lat, area_mm2=area, energy_j=lat * 50)
                    if err:
                        metrics = dict.fromkeys(metrics)
                    rows.append(_row(i, workload=w, error=err,
                                     feasible=err is None and area < 160, **{
                                         "cores.sram": sram, "dram.bandwidth": bw,
                                         "cores.engine.dataflow": df}, **metrics))
                    i += 1
    return rows


FIELDS = ["cores.sram", "dram.bandwidth", "cores.engine.dataflow"]
OBJECTIVES = [("latency_s", "min"), ("area_mm2", "min"), ("energy_j", "min")]


def _summary_counts(text: str) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"\| (.+?) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|", line)
        if m:
            out[m.group(1)] = tuple(int(g) for g in m.groups()[1:])
    return out


@pytest.fixture
def report():
    pytest.importorskip("matplotlib")
    from npusim.report import sweep
    return sweep


def test_report_writes_the_expected_files_and_counts(report, tmp_path):
    paths = report.write_report_rows(_sweep_rows(), FIELDS, OBJECTIVES, tmp_path / "out",
                                     title="demo")
    names = [p.name for p in paths]
    expected = []
    for stem in ("llm-decode-32", "resnet50"):
        expected += [f"pareto_{stem}_latency_s_vs_area_mm2.png",
                     f"pareto_{stem}_latency_s_vs_energy_j.png",
                     f"pareto_{stem}_area_mm2_vs_energy_j.png",
                     f"parallel_{stem}.png",
                     f"tornado_{stem}_latency_s.png", f"tornado_{stem}_area_mm2.png",
                     f"tornado_{stem}_energy_j.png"]
    assert names == expected + ["summary.md"]
    for p in paths:
        assert p.parent == tmp_path / "out" and p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (tmp_path / "out" / "summary.md").read_text()
    # llm: 12 points, 2 failed (sram 8, os, either bw); feasible iff area < 160 mm^2 with
    # area = 100 + sram + bw / 1e11: 118, 126, 142 at 1 TB/s, 148, 156, 172 at 4 TB/s, so
    # only sram 32 at 4 TB/s (os and ws) is infeasible
    counts = _summary_counts(text)
    assert counts["llm decode/32"] == (12, 10, 2, 2)
    assert counts["resnet50"] == (12, 12, 0, 2)
    assert counts["all"] == (24, 22, 2, 4)
    assert "# Sweep report: demo" in text and "### Pareto front" in text
    assert "### Sensitivity of latency_s (min)" in text


def test_report_front_table_is_the_front(report, tmp_path):
    rows = _sweep_rows()
    report.write_report_rows(rows, FIELDS, OBJECTIVES[:2], tmp_path, title="t")
    text = (tmp_path / "summary.md").read_text()
    section = text.split("## resnet50")[1].split("### Sensitivity")[0]
    points = [int(m) for m in re.findall(r"^\| (\d+) \|", section, flags=re.M)]
    assert points == [r["point"] for r in an.front(rows, OBJECTIVES[:2], "resnet50")]
    assert points                                   # a real front, best latency first


def test_report_with_one_objective_says_there_is_no_pair(report, tmp_path):
    paths = report.write_report_rows(_sweep_rows(), FIELDS, [("latency_s", "min")], tmp_path)
    names = {p.name for p in paths}
    assert not any(n.startswith("pareto_") for n in names)
    assert {"parallel_resnet50.png", "tornado_resnet50_latency_s.png"} <= names
    assert "no pair of objectives to draw as a Pareto front" in \
        (tmp_path / "summary.md").read_text()


def test_report_of_all_infeasible_points(report, tmp_path):
    rows = [dict(r, feasible=False) for r in _sweep_rows()]
    paths = report.write_report_rows(rows, FIELDS, OBJECTIVES[:2], tmp_path)
    assert all(p.stat().st_size > 0 for p in paths)
    text = (tmp_path / "summary.md").read_text()
    assert text.count("the front is empty") == 2
    assert "No tornado: no feasible point of workload 'resnet50'" in text
    assert _summary_counts(text)["all"] == (24, 22, 2, 22)


def test_report_of_one_point_and_nan_metrics(report, tmp_path):
    rows = [_row(0, workload="solo", s=1.0, latency_s=1.0, area_mm2=2.0),
            _row(0, workload="gaps", s=1.0, latency_s=NAN, area_mm2=2.0),
            _row(1, workload="gaps", s=2.0, latency_s=3.0, area_mm2=NAN),
            _row(2, workload="gaps", s=3.0, latency_s=2.0, area_mm2=1.0)]
    objectives = [("latency_s", "min"), ("area_mm2", "min")]
    paths = report.write_report_rows(rows, ["s"], objectives, tmp_path)
    assert {p.name for p in paths} >= {"pareto_solo_latency_s_vs_area_mm2.png",
                                       "pareto_gaps_latency_s_vs_area_mm2.png"}
    text = (tmp_path / "summary.md").read_text()
    assert "one point: no front to compare it with" in text
    gaps = text.split("## gaps")[1]
    assert re.findall(r"^\| (\d+) \|", gaps.split("### Sensitivity")[0], flags=re.M) == ["2"]


def test_report_of_a_metric_one_workload_lacks(report, tmp_path):
    rows = [_row(i, workload="decode", f=float(i), tpot_s=1.0 + i, ttft_s=None)
            for i in range(3)] + [_row(3, workload="prefill", f=1.0, tpot_s=None, ttft_s=2.0)]
    paths = report.write_report_rows(rows, ["f"], [("tpot_s", "min"), ("ttft_s", "min")],
                                     tmp_path)
    names = {p.name for p in paths}
    assert "tornado_decode_tpot_s.png" in names and "tornado_decode_ttft_s.png" not in names
    assert not any(n.startswith("pareto_") for n in names)
    text = (tmp_path / "summary.md").read_text()
    assert "no evaluated point of this workload has ttft_s" in text


def test_report_file_names_are_sanitised_and_unique(report, tmp_path):
    rows = [_row(0, workload="../../etc/passwd", f=1.0, m=1.0),
            _row(1, workload="a b", f=1.0, m=1.0),
            _row(2, workload="a/b", f=1.0, m=1.0),
            _row(3, workload="A-B", f=1.0, m=1.0),
            _row(4, workload="", f=1.0, m=1.0)]
    paths = report.write_report_rows(rows, ["f"], [("m", "min")], tmp_path)
    names = [p.name for p in paths if p.name.startswith("parallel_")]
    assert names == ["parallel_etc-passwd.png", "parallel_a-b.png", "parallel_a-b-2.png",
                     "parallel_A-B-3.png", "parallel_x.png"]
    assert all(p.parent == tmp_path for p in paths)


def test_report_of_choice_fields_only(report, tmp_path):
    rows = [_row(i, df=df, mode=mode, m=float(i + 1), n=float(10 - i))
            for i, (df, mode) in enumerate([("os", "a"), ("ws", "a"), ("is", "b"), ("os", "b")])]
    paths = report.write_report_rows(rows, ["df", "mode"], [("m", "min"), ("n", "min")],
                                     tmp_path)
    assert all(p.stat().st_size > 0 for p in paths)
    text = (tmp_path / "summary.md").read_text()
    assert "| mode | a | 1 (a) | 4 (b) | 3 | 1 (0) |" in text
    assert "| df | os | 1 (os) | 2 (ws) | 1 | 1 (0) |" in text


def test_parallel_axes_treat_text_as_categories(report):
    pos, ticks, scale = report._axis_positions(["ws", "os", None, "is", "os"])
    assert scale == "choice" and [t[1] for t in ticks] == ["is", "os", "ws"]
    assert list(pos[[0, 1, 3]]) == [1.0, 0.5, 0.0] and math.isnan(pos[2])
    pos, ticks, scale = report._axis_positions([1.0, 1000.0, 10.0, None])
    assert scale == "log" and list(pos[:3]) == [0.0, 1.0, pytest.approx(1 / 3)]
    pos, ticks, scale = report._axis_positions([5.0, 5.0])
    assert scale == "linear" and list(pos) == [0.5, 0.5]


def test_metric_labels_use_the_spec_units_when_there(report, monkeypatch):
    fake = types.ModuleType("npusim.dse.spec")
    fake.METRICS = {"latency_s": ("s", False), "area_mm2": {"unit": "mm^2"},
                    "power_w": types.SimpleNamespace(unit="W"), "utilisation": ("1", True)}
    monkeypatch.setitem(sys.modules, "npusim.dse.spec", fake)
    assert report.metric_label("latency_s", "min") == "latency_s (s), lower is better"
    assert report.metric_label("area_mm2") == "area_mm2 (mm^2)"
    assert report.metric_label("power_w", "max") == "power_w (W), higher is better"
    assert report.metric_label("utilisation") == "utilisation"
    assert report.metric_label("custom") == "custom"


@pytest.mark.parametrize("rows, words", [
    ([], "to report: run the sweep first"),
    ([_row(0, error="CapacityError: weights need 16 GB\nof 8", m=None),
      _row(1, error="boom", m=None)], "all 2 points"),
])
def test_report_refuses_empty_and_all_failed(report, tmp_path, rows, words):
    with pytest.raises(NpusimError, match=words) as e:
        report.write_report_rows(rows, ["f"], [("m", "min")], tmp_path, source="s.sqlite")
    assert "\n" not in str(e.value) and "s.sqlite" in str(e.value)
    assert not list(tmp_path.iterdir())                 # nothing written


def test_report_refuses_an_unwritable_folder(report, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NpusimError, match="cannot create the sweep report folder"):
        report.write_report_rows(_sweep_rows(), FIELDS, OBJECTIVES, tmp_path / "file" / "out")


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(random_rows(max_rows=10), st.sampled_from((1, 2)))
def test_fuzz_report_on_odd_rows(report, tmp_path_factory, rows, n_objectives):
    """Any rows: the report's files, or one NpusimError (all failed), never another error,
    and never a figure whose labels crowd out its axes (matplotlib's collapsed layout)."""
    out = tmp_path_factory.mktemp("fuzz")
    objectives = [("m1", "min"), ("m2", "max")][:n_objectives]
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*constrained_layout")
            paths = report.write_report_rows(rows, ["a", "b"], objectives, out,
                                             title="fuzz\ntitle")
    except NpusimError as e:
        assert "\n" not in str(e) and all(an.failed(r) for r in rows)
        return
    assert paths[-1].name == "summary.md" and all(p.stat().st_size > 0 for p in paths)
    assert "# Sweep report: fuzz title" in paths[-1].read_text()


# ----------------------------------------------------------------------------- write_report

class _FakeStore:
    """The contract's Store: meta by name, a context manager (the report only reads)."""

    DEFAULT_NAME = "sweep.sqlite"
    meta: dict = {}

    def __init__(self, path):
        self.path = path

    def get_meta(self, name):
        return self.meta.get(name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def fake_dse(monkeypatch):
    """npusim.dse.store and npusim.dse.spec as the contract has them, over plain data."""
    rows = [r for r in _sweep_rows() if r["workload"] == "resnet50"]
    state = {"rows": rows, "meta": {"spec": "name: demo\n", "spec_source": "s.yaml"}}
    store = types.ModuleType("npusim.dse.store")
    _FakeStore.meta = state["meta"]
    store.Store = _FakeStore
    store.flat_rows = lambda records: list(state["rows"])
    # the store's records keep the spec's text of each value beside its SI number
    records = [{"values": {"cores.sram": r["cores.sram"], "dram.bandwidth": r["dram.bandwidth"]},
                "params": {"cores.sram": f"{r['cores.sram']:g} MiB-text",
                           "dram.bandwidth": f"{r['dram.bandwidth'] / 1e12:g} TB/s"}}
               for r in rows]
    store.read_records = lambda path: (records, dict(state["meta"]))
    spec = types.ModuleType("npusim.dse.spec")

    def parse_spec(mapping, source):
        state["parsed"] = (mapping, source)
        return types.SimpleNamespace(
            name=mapping["name"],
            fields=tuple(types.SimpleNamespace(path=p) for p in FIELDS),
            objectives=tuple(types.SimpleNamespace(metric=m, goal=g) for m, g in OBJECTIVES[:2]))

    spec.parse_spec = parse_spec
    monkeypatch.setitem(sys.modules, "npusim.dse.store", store)
    monkeypatch.setitem(sys.modules, "npusim.dse.spec", spec)
    return state


def test_write_report_reads_the_store_and_its_spec(report, fake_dse, tmp_path):
    (tmp_path / "sweep.sqlite").write_bytes(b"")
    paths = report.write_report(tmp_path)
    assert fake_dse["parsed"] == ({"name": "demo"}, "s.yaml")
    assert [p.name for p in paths] == [
        "pareto_resnet50_latency_s_vs_area_mm2.png", "parallel_resnet50.png",
        "tornado_resnet50_latency_s.png", "tornado_resnet50_area_mm2.png", "summary.md"]
    summary = paths[-1].read_text()
    assert "# Sweep report: demo" in summary
    # the front and tornado tables show values as the spec wrote them, not as SI numbers
    assert "MiB-text" in summary and " TB/s" in summary
    assert "4,000,000,000,000" not in summary
    other = report.write_report(tmp_path / "sweep.sqlite", tmp_path / "elsewhere")
    assert [p.name for p in other] == [p.name for p in paths]
    assert all(p.parent == tmp_path / "elsewhere" for p in other)


@pytest.mark.parametrize("case, words", [
    ("no store", "no sweep store at"),
    ("empty", "holds no points yet"),
    ("no spec", "holds no sweep spec"),
    ("bad yaml", "is not valid YAML"),
    ("all failed", "all 12 points"),
])
def test_write_report_refuses_what_it_cannot_report(report, fake_dse, tmp_path, case, words):
    if case != "no store":
        (tmp_path / "sweep.sqlite").write_bytes(b"")
    if case == "empty":
        fake_dse["rows"] = []
    elif case == "no spec":
        fake_dse["meta"].pop("spec")
    elif case == "bad yaml":
        fake_dse["meta"]["spec"] = "name: [unclosed\n"
    elif case == "all failed":
        fake_dse["rows"] = [dict(r, error="x") for r in fake_dse["rows"]]
    with pytest.raises(NpusimError, match=re.escape(words)) as e:
        report.write_report(tmp_path)
    assert "\n" not in str(e.value)


def _clean_error(code, err) -> bool:
    return code == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err \
        and "Traceback" not in err


def _corpus():
    src = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_cases" / "sweep_report.py"
    spec = importlib.util.spec_from_file_location("fuzz_cases_sweep_report", src)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fuzz_corpus_yields_bad_sweep_folders(tmp_path):
    got = list(_corpus().cases(tmp_path, random.Random(3), 30))
    assert len(got) == 30
    labels = {label for label, _, _ in got}
    assert {"sweep-report/folder", "sweep-report/store-bytes"} <= labels
    for label, argv, must_fail in got:
        assert argv[:2] == ["sweep", "report"] and len(argv) == 3 and must_fail is True
        if label == "sweep-report/store-bytes":
            assert (tmp_path / argv[2] / "sweep.sqlite").stat().st_size > 0


def test_cli_sweep_report_of_bad_folders_is_one_clean_error(cli, tmp_path):
    """benchmarks/fuzz_cases/sweep_report.py through the CLI, once the store and the CLI's
    ``sweep report`` are merged: every case one clean line, exit 2."""
    pytest.importorskip("npusim.dse.store")
    code, _, _ = cli("sweep", "report", "--help")
    if code != 0:
        pytest.skip("the CLI has no 'sweep report' yet")
    for label, argv, _ in _corpus().cases(tmp_path, random.Random(0), 40):
        code, out, err = cli(*argv)
        assert _clean_error(code, err), (label, argv, err)
