"""Validation against a measured K-Perf sheet (npusim.validate.kperf_sheet).

The round trip: npusim's own K-Perf report of tiny-llama on the teaching chip (a 2 x 1 x 2
matrix), every measured value multiplied by 1.1, read back as the "measured" sheet; the same
simulation then predicts 1/1.1 of every measured value, so every cell's error is exactly
1/1.1 - 1 = -0.0909...
"""
from __future__ import annotations

import csv
import math

import pytest

pytest.importorskip("openpyxl")
pytest.importorskip("matplotlib")

from openpyxl import Workbook, load_workbook  # noqa: E402

from npusim.errors import NpusimError  # noqa: E402
from npusim.report.kperf import SCENARIO_COLUMNS  # noqa: E402
from npusim.validate import kperf_sheet as ks  # noqa: E402
from npusim.workloads.kperf import kperf  # noqa: E402

ARCH, MODEL = "edu", "tiny-llama"
MATRIX = dict(input_lens=(32, 64), output_lens=(16,), users=(1, 2))
SCALE = 1.1
EXPECTED = 1 / SCALE - 1


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """npusim's own K-Perf report of the matrix: (result, folder with kperf.xlsx/.csv)."""
    out = tmp_path_factory.mktemp("kperf")
    res = kperf(ARCH, MODEL, out=out, **MATRIX)
    return res, out


def _scaled_xlsx(src, dst, factor=SCALE):
    """A copy of npusim's workbook with every metric cell of every scenario sheet scaled."""
    wb = load_workbook(src)
    for ws in wb.worksheets:
        if ws.title in ("summary", "settings"):
            continue
        heads = [c.value for c in ws[1]]
        metric_cols = [j for j, h in enumerate(heads, 1)
                       if (hit := ks.parse_header(h)) and hit[0] in ks.METRIC_BY_KEY]
        assert metric_cols, "the workbook has no metric column to scale"
        for i in range(2, ws.max_row + 1):
            for j in metric_cols:
                c = ws.cell(i, j)
                if isinstance(c.value, (int, float)):
                    c.value = c.value * factor
    wb.save(dst)
    return dst


def _scaled_csv(src, dst, factor=SCALE):
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    keys = list(rows[0])
    with open(dst, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (float(v) * factor if k in ks.METRIC_BY_KEY and v else v)
                        for k, v in r.items()})
    return dst


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _write_xlsx(path, sheets):
    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append(r)
    wb.save(path)
    return path


# --- the round trip ---------------------------------------------------------------------------

def test_scaled_xlsx_gives_exact_error_on_every_cell(simulated, tmp_path):
    res, folder = simulated
    sheet = _scaled_xlsx(folder / "kperf.xlsx", tmp_path / "measured.xlsx")
    v = ks.validate_kperf(sheet, ARCH, MODEL, out=tmp_path / "report")
    metrics = {m.key for m in ks.METRICS}
    ok = [r for r in res.records if r["status"] == "ok"]
    assert len(ok) == 4
    # Every metric npusim's sheet holds, on every one of the 4 scenarios, was compared.
    present = {k for r in ok for k in r if k in metrics and r[k] is not None}
    assert len(v.cells) == 4 * len(present) and len(present) >= 15
    for c in v.cells:
        assert c["error"] == pytest.approx(EXPECTED, abs=1e-9), c
    for s in v.summary():
        assert s["mape"] == pytest.approx(-EXPECTED, abs=1e-9)
        assert s["bias"] == pytest.approx(EXPECTED, abs=1e-9)
        assert s["cells"] == 4
    # Precision came from the sheet's name ("tiny-llama bf16"), chips from its column.
    assert {(c["precision"], c["chips"]) for c in v.cells} == {("bf16", 1)}


def test_scaled_csv_gives_exact_error_and_si_values(simulated, tmp_path):
    res, folder = simulated
    sheet = _scaled_csv(folder / "kperf.csv", tmp_path / "measured.csv")
    v = ks.validate_kperf(sheet, ARCH, MODEL)
    assert v.cells and all(c["error"] == pytest.approx(EXPECTED, abs=1e-12) for c in v.cells)
    by = {(r["input_len"], r["users"]): r for r in res.records}
    c = next(c for c in v.cells if c["metric"] == "ttft_p99_s" and c["input_len"] == 64
             and c["users"] == 2)
    assert c["simulated"] == pytest.approx(by[(64, 2)]["ttft_p99_s"], rel=1e-12)
    assert c["measured"] == pytest.approx(SCALE * by[(64, 2)]["ttft_p99_s"], rel=1e-12)
    assert {r.model for r in v.measured.rows} == {MODEL}


def test_report_files_and_their_numbers(simulated, tmp_path):
    _, folder = simulated
    sheet = _scaled_xlsx(folder / "kperf.xlsx", tmp_path / "measured.xlsx")
    v = ks.validate_kperf(sheet, ARCH, MODEL, out=tmp_path / "out")
    names = sorted(p.name for p in v.files)
    assert names == sorted([ks.REPORT_MD, ks.REPORT_CSV, ks.PNG_DECODE, ks.PNG_TTFT,
                            ks.PNG_ERROR])
    for p in v.files:
        assert p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "out" / ks.REPORT_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(v.cells)
    for r in rows:   # each error is the one the numbers shown give
        assert float(r["error"]) == pytest.approx(float(r["simulated"]) / float(r["measured"])
                                                  - 1, rel=1e-9)
    md = (tmp_path / "out" / ks.REPORT_MD).read_text()
    assert md.startswith("<!-- Generated by `npusim validate --kperf`")
    assert "| decode (tok/s) | 4 | 9.1% | -9.1% | -9.1% |" in md
    assert "## Arch calibration" in md and "## Per cell" in md
    assert md.count("| -9.1% | ok |") == len(v.cells)


def test_calibration_provenance_in_report(tmp_path):
    """h100's shipped calibration (fitted fields) is listed with its rows."""
    rows = [[128, 16, 1, 10.0]]
    sheet = _write_csv(tmp_path / "m.csv", ["input", "output", "users", "TTFT mean (ms)"],
                       rows)
    pytest.importorskip("npusim.arch")
    from npusim.arch import load_arch
    cal = load_arch("h100").calibrated()
    if not cal:
        pytest.skip("h100 ships no calibration in this tree")
    v = ks.validate_kperf(sheet, "h100", "tiny-llama")
    md = ks.report_markdown(v)
    for f in cal:
        assert f"`{f}`" in md
    assert "fitted on rows" in md


# --- header matching --------------------------------------------------------------------------

@pytest.mark.parametrize("header, key, factor", [
    ("TTFT P99 (MS)", "ttft_p99_s", 1e-3),
    ("ttft_mean_s", "ttft_mean_s", 1.0),
    ("Time To First Token (s)", "ttft_mean_s", 1.0),
    ("tpot_mean_ms", "tpot_mean_s", 1e-3),
    ("ITL p50 [us]", "tpot_p50_s", 1e-6),
    ("E2E Mean (sec)", "e2e_mean_s", 1.0),
    ("Decode (Tokens/s)", "decode_tok_s", 1.0),
    ("decode_tok_s_per_user", "decode_tok_s_per_user", 1.0),
    ("Output Throughput", "decode_tok_s", 1.0),
    ("prefill per user (tok/s)", "prefill_tok_s_per_user", 1.0),
    ("Avg Power (kW)", "avg_power_w", 1e3),
    ("power_w", "avg_power_w", 1.0),
    ("Energy per token (mJ)", "energy_per_token_j", 1e-3),
    ("tokens/J", "tokens_per_j", 1.0),
    ("KV util mean (%)", "kv_util_mean", 1e-2),
    ("Concurrency", "users", 1.0),
    ("Input (tok)", "input_len", 1.0),
    ("output_len", "output_len", 1.0),
])
def test_parse_header(header, key, factor):
    assert ks.parse_header(header) == (key, factor)


def test_every_npusim_scenario_header_is_read_back():
    """Each metric header npusim kperf writes maps to its own key, in SI."""
    for key, header, scale, _ in SCENARIO_COLUMNS:
        if key in ks.METRIC_BY_KEY:
            got, factor = ks.parse_header(header)
            assert got == key
            assert factor * (scale or 1.0) == pytest.approx(1.0)


@pytest.mark.parametrize("header", ["arch", "status", "queue mean (s)", "steps", "energy_j",
                                    "tdp_w", None])
def test_unknown_columns_are_ignored(header):
    assert ks.parse_header(header) is None


def test_units_are_converted_to_si_on_read(tmp_path):
    header = ["Input Length", "OUTPUT_LEN", "concurrent users", "Precision", "TTFT P99 (MS)",
              "TPOT (us)", "Avg Power [kW]", "energy per token (mJ)", "decode (tokens/s)",
              "comment"]
    sheet = _write_csv(tmp_path / "m.csv", header,
                       [[128, 64, 4, "FP8", "250", "12,500", 1.5, 2, "1,234.5", "anything"]])
    m = ks.read_kperf_sheet(sheet)
    (row,) = m.rows
    assert (row.input_len, row.output_len, row.users, row.precision) == (128, 64, 4, "fp8")
    assert row.values == pytest.approx(dict(ttft_p99_s=0.25, tpot_mean_s=0.0125,
                                            avg_power_w=1500.0, energy_per_token_j=0.002,
                                            decode_tok_s=1234.5))
    assert m.ignored == {"m.csv": ["comment"]}
    assert row.row == 2


def test_blank_cells_are_not_measured(tmp_path):
    sheet = _write_csv(tmp_path / "m.csv", ["input", "output", "users", "TTFT (ms)",
                                            "decode (tok/s)"],
                       [[128, 64, 1, "", 100], [128, 64, 2, 30, ""]])
    rows = ks.read_kperf_sheet(sheet).rows
    assert [r.values for r in rows] == [{"decode_tok_s": 100.0}, {"ttft_mean_s": 0.03}]


def test_compare_by_hand():
    rows = [ks.MeasuredRow("s", 2, "bf16", 128, 64, 4, {"decode_tok_s": 200.0,
                                                        "ttft_mean_s": 0.5}),
            ks.MeasuredRow("s", 3, "bf16", 128, 64, 8, {"decode_tok_s": 0.0})]
    recs = {("bf16", None): {(128, 64, 4): {"status": "ok", "chips": 1, "decode_tok_s": 150.0,
                                            "ttft_mean_s": 0.6},
                             (128, 64, 8): {"status": "does not fit: x", "chips": 1}}}
    c = ks.compare(rows, recs)
    assert [(x["metric"], x["error"]) for x in c] == [
        ("ttft_mean_s", pytest.approx(0.2)), ("decode_tok_s", -0.25), ("decode_tok_s", None)]
    assert c[2]["status"] == "does not fit: x" and c[2]["simulated"] is None


# --- malformed sheets -------------------------------------------------------------------------

def _error(tmp_path, header, rows, name="bad.csv"):
    sheet = _write_csv(tmp_path / name, header, rows)
    with pytest.raises(NpusimError) as e:
        ks.read_kperf_sheet(sheet)
    return str(e.value)


def test_missing_required_column_lists_columns_found(tmp_path):
    msg = _error(tmp_path, ["input (tok)", "users", "TTFT (ms)"], [[1, 1, 1]])
    assert "bad.csv" in msg and "row 1" in msg and "'output (tok)'" in msg
    assert "'input (tok)', 'users', 'TTFT (ms)'" in msg


def test_non_numeric_cell_names_row_and_column(tmp_path):
    msg = _error(tmp_path, ["input", "output", "users", "TTFT (ms)"],
                 [[128, 64, 1, 10], [128, 64, 2, "n/a"]])
    assert "bad.csv, row 3, column 'TTFT (ms)' (column 4)" in msg and "'n/a'" in msg


def test_non_whole_users_names_cell(tmp_path):
    msg = _error(tmp_path, ["input", "output", "users", "TTFT (ms)"], [[128, 64, 1.5, 10]])
    assert "row 2, column 'users' (column 3)" in msg and "whole number" in msg


def test_unknown_unit_names_header(tmp_path):
    msg = _error(tmp_path, ["input", "output", "users", "TTFT p99 (fortnights)"],
                 [[128, 64, 1, 10]])
    assert "bad.csv, row 1, column 'TTFT p99 (fortnights)' (column 4)" in msg
    assert "'fortnights'" in msg and "ms" in msg


def test_time_without_unit_is_an_error(tmp_path):
    msg = _error(tmp_path, ["input", "output", "users", "TTFT"], [[128, 64, 1, 10]])
    assert "column 'TTFT'" in msg and "'TTFT (ms)'" in msg


def test_duplicate_scenario_names_both_rows(tmp_path):
    msg = _error(tmp_path, ["input", "output", "users", "TTFT (ms)"],
                 [[128, 64, 1, 10], [256, 64, 1, 20], [128, 64, 1, 11]])
    assert "bad.csv, sheet 'bad.csv', row 4, column 'users'" in msg
    assert "duplicate scenario" in msg and "row 2" in msg


def test_unknown_precision_names_cell(tmp_path):
    msg = _error(tmp_path, ["input", "output", "users", "precision", "TTFT (ms)"],
                 [[128, 64, 1, "fp3", 10]])
    assert "row 2, column 'precision'" in msg and "bf16" in msg


def test_empty_csv(tmp_path):
    msg = _error(tmp_path, [], [])
    assert "bad.csv" in msg and "empty" in msg


def test_no_metric_column(tmp_path):
    msg = _error(tmp_path, ["input", "output", "users", "notes"], [[128, 64, 1, "x"]])
    assert "row 1" in msg and "no measured metric column" in msg


def test_xlsx_errors_name_the_sheet(tmp_path):
    good = [["input (tok)", "output (tok)", "users", "TTFT mean (ms)"], [128, 64, 1, 10.0]]
    path = _write_xlsx(tmp_path / "book.xlsx", {
        "summary": [["anything"]], "llama fp8": good,
        "notes": [["free text"], ["more"]],
        "broken": [["input (tok)", "output (tok)", "users", "TTFT mean (ms)"],
                   [128, 64, 1, 10.0], [128, 64, 2, "fast"]]})
    with pytest.raises(NpusimError) as e:
        ks.read_kperf_sheet(path)
    assert "book.xlsx, sheet 'broken', row 3, column 'TTFT mean (ms)' (D)" in str(e.value)
    m = ks.read_kperf_sheet(path, sheet_name="llama fp8")
    assert [r.precision for r in m.rows] == ["fp8"] and m.sheets == ["llama fp8"]
    with pytest.raises(NpusimError, match="no sheet 'nope'.*'summary', 'llama fp8'"):
        ks.read_kperf_sheet(path, sheet_name="nope")


def test_xlsx_empty_and_skipped_sheets(tmp_path):
    path = _write_xlsx(tmp_path / "book.xlsx", {"first": [], "notes": [["text only"]]})
    with pytest.raises(NpusimError) as e:
        ks.read_kperf_sheet(path)
    msg = str(e.value)
    assert "book.xlsx" in msg and "'first': empty" in msg and "'notes': no scenario" in msg
    with pytest.raises(NpusimError, match=r"book.xlsx, sheet 'first'.*empty"):
        ks.read_kperf_sheet(path, sheet_name="first")


def test_duplicate_across_sheets(tmp_path):
    rows = [["input", "output", "users", "precision", "TTFT (ms)"], [128, 64, 1, "bf16", 1]]
    path = _write_xlsx(tmp_path / "book.xlsx", {"a": rows, "b": rows})
    with pytest.raises(NpusimError, match=r"sheet 'b', row 2.*already in row 2 of sheet 'a'"):
        ks.read_kperf_sheet(path)


def test_bad_file_kinds(tmp_path):
    with pytest.raises(NpusimError, match="no such file"):
        ks.read_kperf_sheet(tmp_path / "missing.xlsx")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(NpusimError, match=r"\.txt is not a format"):
        ks.read_kperf_sheet(tmp_path / "m.txt")
    (tmp_path / "fake.xlsx").write_text("not a zip")
    with pytest.raises(NpusimError, match="cannot read fake.xlsx as an Excel workbook"):
        ks.read_kperf_sheet(tmp_path / "fake.xlsx")


def test_bad_chips_argument(tmp_path):
    sheet = _write_csv(tmp_path / "m.csv", ["input", "output", "users", "TTFT (ms)"],
                       [[32, 16, 1, 1]])
    with pytest.raises(NpusimError, match="--chips"):
        ks.validate_kperf(sheet, ARCH, MODEL, chips=0)


def test_expected_is_not_trivial():
    assert math.isclose(EXPECTED, -0.0909090909, rel_tol=1e-9)
