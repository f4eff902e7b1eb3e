"""REPORT.md's power trend check (issue 13 item 3: "the right direction and size of change with
batch"): series of power rows that differ only in the batch, their two ends as fractions of TDP,
the measured and predicted change, and the verdicts; on hand-made rows with hand-computed
figures, then on a few real rows."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.validate import report as rp
from npusim.validate import trend as tr
from npusim.validate.core import RowResult, ValidationResult, aggregate

TDP = {"h100": 700.0, "edu": None}


def row(id_, measured, predicted, users, *, chips=4, metric="avg_power_w", arch="h100",
        model="llama-3.1-70b", output_len=350, boundary="card", fitted=False, load=None):
    return RowResult(id=id_, arch=arch, chips=chips, model=model, precision="bf16",
                     mode="offline", input_len=512, output_len=output_len, metric=metric,
                     measured=measured, predicted=predicted,
                     error=None if predicted is None else predicted / measured - 1,
                     fitted=fitted, load=load or f"{users} users (max load), tp={chips}",
                     note="", boundary=boundary)


# 4 GPUs of 700 W: measured 1960 -> 2800 W (490 -> 700 W a GPU: 0.70 -> 1.00 of TDP, x1.4286);
# predicted A: 1960 -> 2660 W (x1.3571, ratio error -5 %: agrees, within 15 %);
# predicted B: 2400 -> 2000 W (x0.8333: the direction disagrees).
AGREE = [row("Y1", 1960.0, 1960.0, 8, fitted=True), row("Y3", 2400.0, 2300.0, 64),
         row("Y5", 2800.0, 2660.0, 512)]
DISAGREE = [row("Z1", 1960.0, 2400.0, 8, model="qwen3-8b"),
            row("Z3", 2800.0, 2000.0, 256, model="qwen3-8b")]


def _line(md: str, start: str) -> list[str]:
    hits = [ln for ln in md.splitlines() if ln.startswith(f"| {start}")]
    assert len(hits) == 1, (start, md)
    return [c.strip() for c in hits[0].strip("|").split("|")]


def test_agreeing_series_by_hand():
    (t,) = tr.power_trends(AGREE, TDP.get)
    assert (t.low, t.high) == (8, 512)
    assert t.measured == pytest.approx((490.0, 700.0))          # per GPU
    assert t.predicted == pytest.approx((490.0, 665.0))
    assert t.measured_ratio == pytest.approx(2800 / 1960)
    assert t.ratio_error == pytest.approx((2660 / 1960) / (2800 / 1960) - 1)   # -5 %
    assert t.direction_agrees and t.size_agrees
    cells = _line(tr.trend_markdown([t]), "Y:")
    assert cells[0] == "Y: llama-3.1-70b bf16 on 4 x h100, card, in 512, out 350"
    assert cells[1] == "Y1*, Y3, Y5"
    assert cells[2] == "8 → 512"
    assert cells[3] == "490 W (0.70) → 700 W (1.00)"
    assert cells[4] == "490 W (0.70) → 665 W (0.95)"
    assert cells[5:] == ["x1.429", "x1.357", "rises / rises: agrees", "yes (-5.0%)"]


def test_disagreeing_series_by_hand():
    (t,) = tr.power_trends(DISAGREE, TDP.get)
    assert t.predicted_ratio == pytest.approx(2000 / 2400)
    assert not t.direction_agrees and not t.size_agrees
    cells = _line(tr.trend_markdown([t]), "Z:")
    assert cells[3] == "490 W (0.70) → 700 W (1.00)"
    assert cells[4] == "600 W (0.86) → 500 W (0.71)"
    assert cells[7] == "rises / falls: disagrees"
    assert cells[8] == f"no ({100 * ((2000 / 2400) / (2800 / 1960) - 1):+.1f}%)"   # -41.7 %


def test_summary_line_counts_both_verdicts():
    md = tr.trend_markdown(tr.power_trends(AGREE + DISAGREE, TDP.get))
    assert "Direction agrees in 1 of 2 series; direction and size both in 1 of 2." in md


def test_size_wrong_with_direction_right():
    """Measured x1.50, predicted x1.10: rises both, but the change is 27 % short."""
    t, = tr.power_trends([row("Y1", 400.0, 500.0, 8, chips=1),
                          row("Y2", 600.0, 550.0, 64, chips=1)], TDP.get)
    assert t.direction_agrees and not t.size_agrees
    assert t.ratio_error == pytest.approx(1.1 / 1.5 - 1)


def test_series_are_grouped_from_the_row_fields():
    """Source letters, model, chips, metric, boundary and a far output length split series;
    failed rows, single-batch groups, non-power rows and loads without a batch are left out."""
    rows = [*AGREE,
            row("Y7", 2000.0, 2000.0, 8, chips=8), row("Y9", 2000.0, 2100.0, 64, chips=8),
            row("X1", 1000.0, 900.0, 8), row("X2", 1100.0, None, 64),     # X2 failed
            row("Y11", 400.0, 420.0, 8, chips=1, output_len=640),
            row("Y12", 500.0, 520.0, 32, chips=1, output_len=652),
            row("Y31", 450.0, 460.0, 8, chips=1, output_len=7900),
            row("Y32", 600.0, 610.0, 64, chips=1, output_len=8300),
            row("W1", 5000.0, 4800.0, 8, chips=1, boundary="system"),
            row("W2", 5500.0, 5000.0, 64, chips=1, boundary="system"),
            row("R1", 3.0, 3.0, 8, metric="decode_tok_s"),
            row("R2", 4.0, 4.0, 64, metric="decode_tok_s"),
            row("S1", 100.0, 100.0, 0, load="2 req/s (open loop)"),
            row("S2", 200.0, 200.0, 0, load="4 req/s (open loop)")]
    series = [[r.id for r in s] for s in tr.trend_series(rows)]
    assert series == [["W1", "W2"], ["Y1", "Y3", "Y5"], ["Y7", "Y9"], ["Y11", "Y12"],
                      ["Y31", "Y32"]]
    trends = {t.rows[0].id: t for t in tr.power_trends(rows, TDP.get)}
    assert trends["W1"].tdp is None and trends["W1"].measured == (5000.0, 5500.0)   # per system
    assert "(0." not in _line(tr.trend_markdown([trends["W1"]]), "W:")[3]


def test_rows_at_one_end_are_averaged_and_per_chip_metric_kept():
    rows = [row("Y1", 400.0, 420.0, 8, metric="avg_power_w_per_chip"),
            row("Y2", 500.0, 440.0, 8, metric="avg_power_w_per_chip"),
            row("Y3", 630.0, 630.0, 128, metric="avg_power_w_per_chip")]
    t, = tr.power_trends(rows, TDP.get)
    assert t.measured == pytest.approx((450.0, 630.0))
    assert t.predicted == pytest.approx((430.0, 630.0))


def test_batch_of_reads_serving_and_graph_loads():
    assert tr.batch_of("8 users (max load), tp=4") == 8
    assert tr.batch_of("1 user") == 1
    assert tr.batch_of("batch 2048, back to back; host dgx-a100") == 2048
    assert tr.batch_of("max load: trtllm-bench max_batch_size") is None
    assert tr.batch_of("") is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 2048), st.floats(50, 5000), st.floats(50, 5000)),
                min_size=2, max_size=6))
def test_trend_verdicts_follow_the_ratios(points):
    """Any series: the ends are the lowest and highest batch, the direction verdict is whether
    both ratios are on the same side of 1, the size verdict the stated tolerance."""
    rows = [row(f"Y{i}", m, p, u, chips=1) for i, (u, m, p) in enumerate(points)]
    trends = tr.power_trends(rows, TDP.get)
    batches = {u for u, _, _ in points}
    if len(batches) < 2:
        assert trends == []
        return
    t, = trends
    assert (t.low, t.high) == (min(batches), max(batches))
    side = lambda x: (x > 1) - (x < 1)
    assert t.direction_agrees == (side(t.measured_ratio) == side(t.predicted_ratio))
    assert t.size_agrees == (abs(t.predicted_ratio / t.measured_ratio - 1) <= tr.TREND_TOLERANCE)
    assert len(tr.trend_markdown(trends).splitlines()) == 5


def _result(rows) -> ValidationResult:
    return ValidationResult(rows=list(rows), aggregates=aggregate(rows), not_simulable={},
                            calibration={}, microchecks=[], data=Path("measured.csv"),
                            data_sha256="0" * 64)


def test_power_section_has_the_trend_table(tmp_path):
    section = "\n".join(rp._power_section(_result(AGREE + DISAGREE), tmp_path))
    assert "### Power against batch" in section
    assert "| Y1*, Y3, Y5 |" in section and "| Z1, Z3 |" in section
    assert "within 15% of the measured one" in section


def test_real_rows_trend_table(tmp_path):
    """Two real series (ML.ENERGY v3 Llama 70B TP4, v2 Llama 8B), each at its two ends: the
    report's power section holds their lines with the measured powers of the data file."""
    from npusim.validate import validate
    res = validate(out=tmp_path, rows=["Y1", "Y9", "V37", "V45"], microchecks=False, plot=False)
    text = res.report.read_text(encoding="utf-8")
    section = text.split("### Power against batch")[1].split("\n## ")[0]
    y = _line(section, "Y: llama-3.1-70b bf16 on 4 x h100")
    assert y[1:4] == ["Y1*, Y9", "8 → 1024", "441 W (0.63) → 637 W (0.91)"]   # 1765/4, 2548/4
    v = _line(section, "V: llama-3.1-8b bf16 on 1 x h100")
    assert v[1:4] == ["V37, V45", "64 → 1024", "305 W (0.44) → 244 W (0.35)"]
    assert v[5] == "x0.800" and v[7].startswith("falls /")
