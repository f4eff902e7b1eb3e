"""Malformed input to ``npusim validate``: the measured CSV (``--data``) and the measured K-Perf
sheet (``--kperf``), each class of bad file with a regression test, and hypothesis fuzzing over
the files' bytes. Every bad file must end in one ``npusim: error: ...`` line naming the file
(and the line, row or cell, and column), exit status 2: never a traceback, a hang or a report.

Also: where ``validate`` writes (``--out``, default ``./validation-report``), where ``--fit``
writes (never into an installed package), and the progress callback.
"""
from __future__ import annotations

import csv
import io
import os
import re
import threading
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npusim.arch import load_arch
from npusim.arch.calibration import shipped_dir
from npusim.errors import NpusimError
from npusim.validate import fit, read_rows, validate
from npusim.validate import fit as fit_fn
from npusim.validate.core import REQUIRED, check_row, default_data
from npusim.validate.report import data_reference

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["id", *[c for c in REQUIRED if c != "id"]]
FIXTURE_CHECK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def _clean(code: int, err: str) -> bool:
    return (code == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err
            and "Traceback" not in err)


def _gemm(id_="G1", **kw) -> dict:
    """A simulable GEMM row on the shipped teaching chip (fast to simulate)."""
    row = {c: "" for c in COLUMNS}
    row.update(id=id_, sim_arch="edu", sim_chips="1", sim_model="gemm:64,64,64",
               sim_precision="bf16", sim_mode="microbench", sim_metric="gemm_tflops",
               sim_value="0.01", simulable="yes")
    row.update(kw)
    return row


def _llm(id_="L1", **kw) -> dict:
    row = {c: "" for c in COLUMNS}
    row.update(id=id_, sim_arch="edu", sim_chips="1", sim_model="tiny-llama",
               sim_precision="bf16", sim_mode="latency", sim_users="1", sim_input_len="16",
               sim_output_len="4", sim_metric="ttft_s", sim_value="0.001", simulable="yes")
    row.update(kw)
    return row


def _text(rows: list[dict], columns=COLUMNS) -> str:
    f = io.StringIO()
    w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return f.getvalue()


def _write(path: Path, rows: list[dict], encoding="utf-8", columns=COLUMNS) -> Path:
    path.write_bytes(_text(rows, columns).encode(encoding))
    return path


def _validate_cli(cli, data, tmp_path, *extra):
    return cli("validate", "--data", data, "--no-microchecks", "--no-progress", "--out",
               tmp_path / "out", *extra)


# ------------------------------------------------------------------ measured CSV: encodings

@pytest.mark.parametrize("encoding, words", [
    ("latin-1", ("not UTF-8", "line 2", "Latin-1")),
    ("utf-16", ("UTF-16",)),
    ("utf-16-le", ("NUL",)),
    ("utf-32", ("UTF-16 (or UTF-32)",)),
])
def test_other_encodings_name_the_encoding(cli, tmp_path, encoding, words):
    data = _write(tmp_path / "m.csv", [_gemm(sim_note="café é")], encoding)
    code, out, err = _validate_cli(cli, data, tmp_path)
    assert _clean(code, err), err
    assert "m.csv" in err and "--data" in err and "UTF-8" in err
    for w in words:
        assert w in err
    assert not (tmp_path / "out").exists()


def test_binary_file(cli, tmp_path):
    data = tmp_path / "m.csv"
    data.write_bytes(bytes(range(256)) * 20)
    code, _, err = _validate_cli(cli, data, tmp_path)
    assert _clean(code, err) and "m.csv" in err


def test_nul_inside_utf8_text(tmp_path):
    data = _write(tmp_path / "m.csv", [_gemm(sim_note="a\x00b")])
    with pytest.raises(NpusimError, match="NUL character at line 2"):
        read_rows(data)


def test_bom_is_accepted(tmp_path):
    plain = read_rows(_write(tmp_path / "a.csv", [_gemm(), _llm()]))
    bom = read_rows(_write(tmp_path / "b.csv", [_gemm(), _llm()], "utf-8-sig"))
    assert bom == plain and [r["id"] for r in bom] == ["G1", "L1"]


def test_shipped_data_reads_with_a_bom_too(tmp_path):
    src = default_data().read_bytes()
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + src)
    assert read_rows(tmp_path / "bom.csv") == read_rows(default_data())


# ------------------------------------------------------------------ measured CSV: sizes, kinds

def test_huge_cell_is_one_error_naming_the_line(cli, tmp_path):
    data = _write(tmp_path / "m.csv", [_gemm(), _gemm("G2", sim_note="x" * 10 * 2**20)])
    code, _, err = _validate_cli(cli, data, tmp_path)
    assert _clean(code, err) and "line 3" in err and "longer than" in err


def test_file_larger_than_the_read_limit(tmp_path, monkeypatch):
    import npusim.files as files
    data = _write(tmp_path / "m.csv", [_gemm()])
    monkeypatch.setattr(files, "MAX_READ_BYTES", 10)
    with pytest.raises(NpusimError, match="more than the 10 bytes"):
        files.read_bytes(data, max_bytes=files.MAX_READ_BYTES)


def _in_thread(fn, timeout=30.0):
    """Run ``fn`` in a daemon thread; a hang fails the test instead of blocking the run."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:   # handed back to the test
            box["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "hung"
    return box


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "m.csv"
    os.mkfifo(fifo)
    box = _in_thread(lambda: read_rows(fifo))
    assert isinstance(box.get("error"), NpusimError) and "FIFO" in str(box["error"])
    sheet = tmp_path / "s.xlsx"
    os.mkfifo(sheet)
    from npusim.validate.kperf_sheet import read_kperf_sheet
    box = _in_thread(lambda: read_kperf_sheet(sheet))
    assert isinstance(box.get("error"), NpusimError) and "FIFO" in str(box["error"])


def test_folder_and_device_are_refused(cli, tmp_path):
    code, _, err = _validate_cli(cli, tmp_path, tmp_path)
    assert _clean(code, err) and "folder" in err
    if Path("/dev/zero").exists():
        code, _, err = _validate_cli(cli, "/dev/zero", tmp_path)
        assert _clean(code, err) and "device" in err


def test_empty_file(tmp_path):
    (tmp_path / "m.csv").write_bytes(b"")
    with pytest.raises(NpusimError, match="empty"):
        read_rows(tmp_path / "m.csv")


# ------------------------------------------------------------------ measured CSV: columns

def test_bogus_mode_is_reported_as_the_mode(cli, tmp_path):
    for row in (_gemm(sim_mode="bogus"), _llm(sim_mode="bogus")):
        data = _write(tmp_path / "m.csv", [row])
        code, _, err = _validate_cli(cli, data, tmp_path)
        assert _clean(code, err)
        assert "column sim_mode: 'bogus'" in err and "sim_metric" not in err
        assert "m.csv, line 2 (row " in err


@pytest.mark.parametrize("make, column, value", [
    (_gemm, "sim_value", "abc"),
    (_gemm, "sim_value", "-1"),
    (_gemm, "sim_value", "nan"),
    (_gemm, "sim_chips", "0"),
    (_gemm, "sim_chips", "1e9"),
    (_gemm, "sim_metric", "ttft_s"),
    (_gemm, "sim_model", "gemm:1,2"),
    (_gemm, "sim_model", "gemm:1,2,999999999999"),
    (_gemm, "sim_precision", "fp9"),
    (_gemm, "sim_arch", ""),
    (_gemm, "simulable", "perhaps"),
    (_llm, "sim_metric", "gemm_tflops"),
    (_llm, "sim_users", "1.5"),
    (_llm, "sim_users", "99999999999999999999"),
    (_llm, "sim_input_len", ""),
    (_llm, "sim_output_len", "-3"),
    (_llm, "sim_precision", "fp9"),
    (_llm, "sim_scheduler", "slurm"),
    (_llm, "sim_graphs", "maybe"),
    (_llm, "sim_model", ""),
    (lambda: _llm(sim_mode="server"), "sim_rate", ""),
    (lambda: _llm(sim_mode="batch"), "sim_users", ""),
    (lambda: _gemm(sim_model="allreduce:1024", sim_metric="allreduce_busbw_gbs"),
     "sim_chips", "1"),
])
def test_bad_cell_names_its_column(tmp_path, make, column, value):
    columns = COLUMNS + ["sim_scheduler", "sim_graphs"]
    data = _write(tmp_path / "m.csv", [_gemm("OK"), {**make(), column: value}],
                  columns=columns)
    with pytest.raises(NpusimError) as e:
        read_rows(data)
    msg = str(e.value)
    assert f"column {column}" in msg and "m.csv, line 3" in msg and "\n" not in msg


def test_not_simulable_rows_are_not_checked_beyond_simulable(tmp_path):
    rows = read_rows(_write(tmp_path / "m.csv", [_gemm(simulable="no", sim_mode="bogus",
                                                       sim_value="?")]))
    assert rows[0]["sim_mode"] == "bogus"


def test_header_problems(tmp_path):
    semi = tmp_path / "semi.csv"
    semi.write_text(";".join(COLUMNS) + "\n" + ";".join("x" for _ in COLUMNS) + "\n")
    with pytest.raises(NpusimError, match="no comma"):
        read_rows(semi)
    dup = tmp_path / "dup.csv"
    head, body = _text([_gemm()]).split("\n", 1)
    dup.write_text(f"{head},sim_value\n{body}")
    with pytest.raises(NpusimError, match="more than once"):
        read_rows(dup)
    extra = tmp_path / "extra.csv"
    extra.write_text(_text([_gemm()]).rstrip("\n") + ",surplus\n")
    with pytest.raises(NpusimError, match="line 2: 16 cells but the header has 15"):
        read_rows(extra)


def test_check_row_accepts_every_shipped_row():
    rows = read_rows(default_data())
    assert sum((r["simulable"] or "").strip() == "yes" for r in rows) > 100
    for r in rows:
        check_row(r, r["id"])


# ------------------------------------------------------------------ where validate writes

def test_default_out_is_a_new_folder_in_the_working_directory(cli, tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data = _write(data_dir / "m.csv", [_gemm()])
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = cli("validate", "--data", data, "--no-microchecks", "--no-progress")
    assert code == 0, err
    assert (work / "validation-report" / "REPORT.md").is_file()
    assert sorted(p.name for p in data_dir.iterdir()) == ["m.csv"]
    report = (work / "validation-report" / "REPORT.md").read_text()
    assert f"`{data}`" in report          # not beside the report: named by its own path


def test_out_that_cannot_be_written_names_out(cli, tmp_path):
    data = _write(tmp_path / "m.csv", [_gemm()])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = cli("validate", "--data", data, "--no-microchecks", "--no-progress",
                       "--out", blocker / "sub")
    assert _clean(code, err) and "--out" in err and str(blocker) in err


def test_committed_report_links_its_data():
    text = (ROOT / "validation" / "REPORT.md").read_text(encoding="utf-8")
    link = "(../npusim/validate/data/measured.csv)"
    assert link in text
    assert (ROOT / "validation" / "../npusim/validate/data/measured.csv").is_file()


def test_data_reference():
    repo = Path("/r")
    assert data_reference(repo / "npusim/validate/data/measured.csv", repo / "validation") == \
        "[`npusim/validate/data/measured.csv`](../npusim/validate/data/measured.csv)"
    assert data_reference(Path("/elsewhere/x.csv"), repo / "validation") == "`/elsewhere/x.csv`"
    shipped = data_reference(default_data(), Path("/tmp/nowhere/validation-report"))
    assert "shipped with npusim" in shipped or "](" in shipped


def test_progress_is_called_per_row_then_done(tmp_path):
    data = _write(tmp_path / "m.csv", [_gemm("G1"), _gemm("G2", sim_model="gemm:32,64,16")])
    calls = []
    validate(data, out=False, microchecks=False, plot=False,
             progress=lambda *a: calls.append(a))
    assert calls == [("G1", 0, 2), ("G2", 1, 2), ("done", 2, 2)]


# ------------------------------------------------------------------ where --fit writes

def test_fit_of_a_shipped_arch_writes_a_calibrated_copy_into_out(cli, tmp_path):
    data = _write(tmp_path / "m.csv", [_gemm("G1"), _gemm("G2", sim_model="gemm:32,64,16")])
    package = sorted(p.name for p in Path(str(shipped_dir())).iterdir())
    code, out, err = cli("validate", "--data", data, "--no-microchecks", "--no-progress",
                         "--out", tmp_path / "out", "--fit", "launch_overhead=G1")
    assert code == 0, err
    assert sorted(p.name for p in Path(str(shipped_dir())).iterdir()) == package
    copy = tmp_path / "out" / "archs" / "edu.yaml"
    assert copy.is_file() and (tmp_path / "out" / "archs" / "edu.calibration.yaml").is_file()
    assert f"--arch {copy}" in out
    cal = load_arch(copy).calibrated()
    assert cal["launch_overhead"]["kind"] == "fitted" and list(cal["launch_overhead"]["rows"]) == ["G1"]
    # the report that follows runs the rows on the fitted copy: G1 is a fitted row
    report = (tmp_path / "out" / "REPORT.md").read_text()
    assert "| G1 | edu |" in report and "fitted |" in report.split("| G1 | edu |")[1].split("\n")[0]


def test_fit_keeps_the_shipped_calibration_entries(tmp_path):
    data = _write(tmp_path / "m.csv", [_gemm("G1", sim_arch="h100", sim_precision="fp8",
                                             sim_model="gemm:1024,1024,1024",
                                             sim_value="300")])
    r = fit(data, ["launch_overhead=G1"], out=tmp_path / "out")["launch_overhead"]
    shipped = load_arch("h100").calibrated()
    fitted = load_arch(r["arch_file"]).calibrated()
    assert set(shipped) <= set(fitted)
    assert list(fitted["launch_overhead"]["rows"]) == ["G1"]


def test_fit_into_package_is_refused_for_an_installed_package(tmp_path, monkeypatch):
    import importlib
    fit_module = importlib.import_module("npusim.validate.fit")
    data = _write(tmp_path / "m.csv", [_gemm()])
    fake = tmp_path / "site-packages" / "npusim" / "validate" / "fit.py"
    monkeypatch.setattr(fit_module, "__file__", str(fake))
    with pytest.raises(NpusimError, match="--fit-into-package: npusim is installed"):
        fit_fn(data, ["launch_overhead=G1"], into_package=True)


def test_fit_into_package_needs_fit(cli, tmp_path):
    code, _, err = cli("validate", "--fit-into-package", "--no-progress")
    assert _clean(code, err) and "--fit" in err


# ------------------------------------------------------------------ K-Perf sheets

def _sheet_csv(path: Path, body: str, encoding="utf-8") -> Path:
    path.write_bytes(body.encode(encoding))
    return path


GOOD_SHEET = "input (tok),output (tok),users,TTFT mean (ms),decode (tok/s)\n32,16,1,5.5,100\n"


def _kperf_cli(cli, sheet, *extra):
    return cli("validate", "--kperf", sheet, "--arch", "edu", "--model", "tiny-llama",
               "--no-progress", *extra)


@pytest.mark.parametrize("encoding, word", [("latin-1", "not UTF-8"), ("utf-16", "UTF-16")])
def test_kperf_csv_encodings(cli, tmp_path, encoding, word):
    sheet = _sheet_csv(tmp_path / "s.csv", GOOD_SHEET.replace("users", "usérs"), encoding)
    code, _, err = _kperf_cli(cli, sheet)
    assert _clean(code, err) and word in err and "s.csv" in err and "--kperf" in err


def test_kperf_csv_bom_and_huge_cell(tmp_path):
    from npusim.validate.kperf_sheet import read_kperf_sheet
    bom = read_kperf_sheet(_sheet_csv(tmp_path / "b.csv", GOOD_SHEET, "utf-8-sig"))
    assert len(bom.rows) == 1 and bom.rows[0].values["decode_tok_s"] == 100.0
    huge = _sheet_csv(tmp_path / "h.csv", GOOD_SHEET + "64,16,1,5," + "9" * 200_000 + "\n")
    with pytest.raises(NpusimError, match="h.csv.*line 3: a cell is longer"):
        read_kperf_sheet(huge)


def test_kperf_not_a_zip_and_not_a_workbook(cli, tmp_path):
    (tmp_path / "a.xlsx").write_bytes(b"\x00" * 100)
    code, _, err = _kperf_cli(cli, tmp_path / "a.xlsx")
    assert _clean(code, err) and "not a zip archive" in err
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "not a workbook")
    (tmp_path / "b.xlsx").write_bytes(buf.getvalue())
    code, _, err = _kperf_cli(cli, tmp_path / "b.xlsx")
    assert _clean(code, err) and "b.xlsx" in err and "Excel workbook" in err


def test_kperf_zip_bomb_is_refused_before_unpacking(cli, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/worksheets/sheet1.xml", b"\x00" * (80 * 2**20))
    (tmp_path / "bomb.xlsx").write_bytes(buf.getvalue())
    assert len(buf.getvalue()) < 2**20
    code, _, err = _kperf_cli(cli, tmp_path / "bomb.xlsx")
    assert _clean(code, err) and "unpacks to" in err


def test_kperf_far_away_cells_are_refused_quickly(cli, tmp_path):
    from openpyxl import Workbook
    wb = Workbook()
    ws = wb.active
    ws.title = "m bf16"
    ws.append(["input (tok)", "output (tok)", "users", "TTFT mean (ms)"])
    ws.append([32, 16, 1, 5.0])
    ws.cell(row=1_048_576, column=1, value=1)
    wb.save(tmp_path / "rows.xlsx")
    code, _, err = _kperf_cli(cli, tmp_path / "rows.xlsx")
    assert _clean(code, err) and "more than 100,000 rows" in err
    wb = Workbook()
    ws = wb.active
    ws.append(["input (tok)", "output (tok)", "users", "TTFT mean (ms)"])
    ws.cell(row=2, column=16_384, value=1)
    wb.save(tmp_path / "cols.xlsx")
    code, _, err = _kperf_cli(cli, tmp_path / "cols.xlsx")
    assert _clean(code, err) and "column XFD" in err and "row 2" in err


def test_kperf_wrong_sheet_missing_columns_bad_cells(cli, tmp_path):
    from openpyxl import Workbook
    wb = Workbook()
    ws = wb.active
    ws.title = "data"
    ws.append(["input (tok)", "output (tok)", "TTFT mean (ms)"])
    ws.append([32, 16, 5.0])
    wb.save(tmp_path / "w.xlsx")
    code, _, err = _kperf_cli(cli, tmp_path / "w.xlsx", "--sheet", "nope")
    assert _clean(code, err) and "no sheet 'nope'" in err and "'data'" in err
    code, _, err = _kperf_cli(cli, tmp_path / "w.xlsx")
    assert _clean(code, err) and "'users'" in err and "sheet 'data'" in err
    sheet = _sheet_csv(tmp_path / "n.csv", GOOD_SHEET + "64,16,2,fast,100\n")
    code, _, err = _kperf_cli(cli, sheet)
    assert _clean(code, err) and "row 3" in err and "'TTFT mean (ms)'" in err


@pytest.mark.parametrize("row, column", [("64,16,1000000000,5,100", "users"),
                                         ("99999999999,16,1,5,100", "input (tok)"),
                                         ("64,1e12,1,5,100", "output (tok)")])
def test_kperf_sizes_past_any_measurement_are_refused(tmp_path, row, column):
    from npusim.validate.kperf_sheet import read_kperf_sheet
    sheet = _sheet_csv(tmp_path / "s.csv", GOOD_SHEET + row + "\n")
    with pytest.raises(NpusimError, match=rf"s.csv, row 3, column '{re.escape(column)}'.*more "
                                          rf"than"):
        read_kperf_sheet(sheet)


def test_kperf_scattered_scenarios_run_only_themselves(tmp_path):
    from npusim.validate.kperf_sheet import validate_kperf
    rows = "".join(f"{16 * k},{8 + k},{k},5,100\n" for k in range(1, 6))
    sheet = _sheet_csv(tmp_path / "s.csv", GOOD_SHEET.split("\n")[0] + "\n" + rows)
    v = validate_kperf(sheet, "edu", "tiny-llama")
    assert len(v.records) == 5                      # not the 5 x 5 x 5 matrix
    assert len(v.cells) == 10 and all(c["status"] == "ok" for c in v.cells)


# ------------------------------------------------------------------ fuzzing

ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16", "utf-16-le", "utf-32")
VALUES = ("", "0", "1", "-1", "1.5", "1e400", "nan", "inf", "bogus", "yes", "no", "=1+1",
          "gemm:8,8,8", "gemm:0,1,1", "allreduce:0", "stream", "tiny-llama", "edu",
          "microbench", "latency", "batch", "server", "offline", "ttft_s", "gemm_tflops",
          "bf16", "fp9", "vllm", "trtllm-bench", "\x00", "é", "\ufeff", "a\nb", '"', "x" * 300)


@st.composite
def measured_bytes(draw):
    """A small measured CSV, then damaged: columns dropped, cells replaced, encoded in a
    random encoding, maybe with NULs, a huge cell or random bytes spliced in."""
    columns = list(COLUMNS) + draw(st.sampled_from([[], ["sim_scheduler", "sim_graphs"]]))
    keep = draw(st.lists(st.sampled_from(columns), unique=True, min_size=0,
                         max_size=len(columns)))
    if draw(st.booleans()):
        columns = [c for c in columns if c in keep] or ["id"]
    rows = [_gemm(f"G{i}") if i % 2 else _llm(f"L{i}")
            for i in range(draw(st.integers(0, 3)))]
    for _ in range(draw(st.integers(0, 4))):
        if rows:
            r = draw(st.sampled_from(rows))
            r[draw(st.sampled_from(columns))] = draw(st.sampled_from(VALUES) | st.text(max_size=8))
    data = _text(rows, columns).encode(draw(st.sampled_from(ENCODINGS)), errors="replace")
    kind = draw(st.sampled_from(["none", "nul", "huge", "splice", "truncate", "bom"]))
    at = draw(st.integers(0, len(data)))
    if kind == "nul":
        data = data[:at] + b"\x00" + data[at:]
    elif kind == "huge":
        data = data[:at] + b"9" * 140_000 + data[at:]
    elif kind == "splice":
        data = data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
    elif kind == "truncate":
        data = data[:at]
    elif kind == "bom":
        data = b"\xef\xbb\xbf" + data
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE_CHECK)
@given(data=measured_bytes())
def test_fuzz_measured_csv_reads_or_fails_cleanly(tmp_path, data):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    try:
        rows = read_rows(path)
    except NpusimError as e:
        msg = str(e)
        assert "\n" not in msg and "fuzz.csv" in msg
        return
    for r in rows:   # what is accepted passes the column checks on its own
        check_row(r, r["id"])


@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURE_CHECK)
@given(data=measured_bytes())
def test_fuzz_validate_cli_exit_code(cli, tmp_path, data):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    code, _, err = cli("validate", "--data", path, "--no-microchecks", "--no-progress",
                       "--out", tmp_path / "o")
    assert code == 0 or _clean(code, err), err


SHEET_HEADERS = ("input (tok)", "output (tok)", "users", "TTFT mean (ms)", "decode (tok/s)",
                 "precision", "chips", "TTFT p99 (furlongs)", "ttft", "power (W)", "")


@st.composite
def sheet_bytes(draw):
    header = draw(st.lists(st.sampled_from(SHEET_HEADERS), min_size=0, max_size=7))
    lines = [",".join(header)]
    for _ in range(draw(st.integers(0, 3))):
        lines.append(",".join(draw(st.sampled_from(VALUES[:12]) | st.integers(-5, 4096)
                                   .map(str)) for _ in header))
    data = "\n".join(lines).encode(draw(st.sampled_from(ENCODINGS)), errors="replace")
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=8)) + data[at:]
    return data


@settings(max_examples=200, deadline=None, suppress_health_check=FIXTURE_CHECK)
@given(data=sheet_bytes(), suffix=st.sampled_from([".csv", ".xlsx"]))
def test_fuzz_kperf_sheet_reads_or_fails_cleanly(tmp_path, data, suffix):
    from npusim.validate.kperf_sheet import read_kperf_sheet
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        sheet = read_kperf_sheet(path)
    except NpusimError as e:
        assert "\n" not in str(e) and "fuzz" in str(e)
        return
    assert sheet.rows and all(r.users >= 1 and r.input_len >= 1 for r in sheet.rows)


# ------------------------------------------------------------------ after a plain install

@pytest.mark.slow
def test_validate_after_a_non_editable_install(tmp_path):
    """``npusim validate`` (and ``--fit``) from a wheel-style install: the shipped data is found,
    the report lands in ./validation-report, and nothing is written into the package."""
    import shutil
    import subprocess
    import sys
    src = tmp_path / "src"             # a copy: building writes build/ beside the sources
    shutil.copytree(ROOT / "npusim", src / "npusim",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    target = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(src)], capture_output=True, text=True, cwd=tmp_path)
    if build.returncode != 0:
        pytest.fail(f"pip install . failed:\n{build.stderr[-2000:]}")
    before = sorted(p.relative_to(target) for p in target.rglob("*") if "__pycache__" not in
                    p.parts)
    # the pure-Python kernels: the same numbers, without compiling them all into a new place
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "NUMBA_DISABLE_JIT": "1"}
    work = tmp_path / "work"
    work.mkdir()

    def npusim(*argv):
        return subprocess.run([sys.executable, "-m", "npusim.cli", *argv], capture_output=True,
                              text=True, cwd=work, env=env)
    run = npusim("validate", "--rows", "N3", "--no-microchecks", "--fit", "launch_overhead=N3")
    assert run.returncode == 0, run.stderr[-2000:]
    assert (work / "validation-report" / "REPORT.md").is_file()
    assert (work / "validation-report" / "archs" / "h100.calibration.yaml").is_file()
    report = (work / "validation-report" / "REPORT.md").read_text()
    assert "`npusim/validate/data/measured.csv` (shipped with npusim)" in report
    refused = npusim("validate", "--rows", "N3", "--fit", "launch_overhead=N3",
                     "--fit-into-package")
    assert _clean(refused.returncode, refused.stderr) and "installed" in refused.stderr
    after = sorted(p.relative_to(target) for p in target.rglob("*") if "__pycache__" not in
                   p.parts)
    assert after == before


def test_kperf_graphs_live_in_the_report_layer_and_keep_their_old_names():
    """The job computes, the face draws: importing the validation job loads no report module,
    and the graph functions are still reachable under their old names."""
    import subprocess
    import sys
    probe = ("import sys, npusim.validate, npusim.validate.kperf_sheet as ks;"
             "assert not [m for m in sys.modules if m.startswith('npusim.report')], 'upward';"
             "from npusim.report import kperf_validation as kv;"
             "assert ks.plot_validation is kv.plot_validation;"
             "assert ks.decode_figure is kv.decode_figure; print('ok')")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=ROOT)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


@pytest.mark.parametrize("argv, words", [
    (("--kperf", "s.csv", "--arch", "edu", "--model", "tiny-llama", "--fit", "a=G1"),
     ("--fit does nothing",)),
    (("--kperf", "s.csv", "--arch", "edu", "--model", "tiny-llama", "--rows", "G1"),
     ("--rows does nothing",)),
    (("--sheet", "x"), ("--sheet goes with --kperf",)),
    (("--arch", "edu"), ("--arch goes with --kperf SHEET (or --fit)",)),
    (("--model", "m", "--chips", "2"), ("--model and --chips go with --kperf",)),
])
def test_options_that_would_be_ignored_are_refused(cli, argv, words):
    code, _, err = cli("validate", "--no-progress", *argv)
    assert _clean(code, err)
    for w in words:
        assert w in err
