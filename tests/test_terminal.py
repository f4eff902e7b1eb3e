"""Terminal tables stay readable at 80 columns: columns are dropped (least important first),
never cut, so every number shown is whole; text such as op names may wrap.

A table rendered narrow is checked against the same table rendered wide (where nothing is
dropped): each narrow row must be the wide row with some columns left out, cell for cell.
"""
from __future__ import annotations

import io
import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from rich.console import Console

from npusim.engine.result import OpRecord, RunResult
from npusim.report.kperf import TERMINAL_SCENARIO, TERMINAL_SUMMARY, print_kperf
from npusim.report.terminal import (Column, fitted_table, print_fitted, print_items, print_run,
                                    si)
from npusim.workloads import kperf as kp

WIDE = 400


def _render(fn, width: int) -> str:
    con = Console(width=width, record=True, file=io.StringIO())
    fn(con)
    return con.export_text()


def _tables(text: str) -> list[list[list[str]]]:
    """The data rows (cells, stripped) of every table in ``text``, one list per table."""
    tables, rows = [], []
    for line in text.splitlines():
        if line.startswith("┏"):
            rows = []
        elif line.startswith("│"):
            rows.append([c.strip() for c in line.strip().strip("│").split("│")])
        elif line.startswith("└"):
            tables.append(rows)
    return tables


def _dropped(note: str) -> list[str]:
    """The column names of a "not shown" note."""
    return note.split(" (")[0].split(", ")


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(any(s == x for x in it) for s in short)


def _assert_whole(narrow: str, wide: str, width: int, skip_first: bool = False) -> None:
    assert "…" not in narrow
    assert all(len(line) <= width for line in narrow.splitlines())
    nt, wt = _tables(narrow), _tables(wide)
    assert len(nt) == len(wt)
    for n_rows, w_rows in zip(nt, wt):
        if skip_first:       # the first column wraps (op names): compare the rows' first lines
            n_rows = [r[1:] for r in n_rows if r[-1]]
            w_rows = [r[1:] for r in w_rows if r[-1]]
        assert len(n_rows) == len(w_rows)
        for n, w in zip(n_rows, w_rows):
            assert _is_subsequence(n, w), (n, w)


# ----------------------------------------------------------------------------------- K-Perf

def _kperf_result(scale: float = 1.0, archs=("rngd", "h100")) -> kp.KperfResult:
    records = []
    for a, arch in enumerate(archs):
        for prec in ("bf16", "fp8"):
            for i, o in ((128, 128), (2048, 2048)):
                for u in (1, 50, 250):
                    speed = 1234.5678 * (a + 1) * scale
                    records.append(dict(
                        arch=arch, model="llama-3.1-8b", chips=1, precision=prec,
                        input_len=i, output_len=o, users=u, status="ok",
                        ttft_mean_s=283.183 * u / speed, ttft_p99_s=412.5 * u / speed,
                        tpot_mean_s=0.0123 / scale, prefill_tok_s=48312.7 * scale,
                        decode_tok_s=speed * u, decode_tok_s_per_user=speed,
                        avg_power_w=712.34, tokens_per_j=speed * u / 712.34,
                        energy_per_token_j=712.34 / (speed * u)))
    return kp.KperfResult(model="llama-3.1-8b", records=records,
                          archs={a: {} for a in archs},
                          matrix=dict(precisions=("bf16", "fp8")))


@pytest.mark.parametrize("width", [80, 60])
def test_kperf_tables_at_narrow_widths_show_every_number_whole(width):
    r = _kperf_result()
    narrow = _render(lambda con: print_kperf(r, con=con), width)
    wide = _render(lambda con: print_kperf(r, con=con), WIDE)
    _assert_whole(narrow, wide, width)
    # The decode rates run to five digits with a thousands separator, shown whole.
    assert any(re.fullmatch(r"\d{2,3},\d{3}", c) for row in _tables(narrow)[1] for c in row)
    assert "not shown at" in narrow and "not shown at" not in wide


def test_kperf_drops_the_least_important_columns_first():
    r = _kperf_result()
    text = _render(lambda con: print_kperf(r, con=con), 80)
    notes = [_dropped(n) for n in text.replace("\n", " ").split("not shown at 80 columns: ")[1:]]
    # The power at the peak goes before anything else in the summary.
    assert "power W at peak" in notes[0]
    for _, header, _, keep in TERMINAL_SUMMARY + TERMINAL_SCENARIO:
        if keep is None:
            assert all(header not in n for n in notes)
    # The decode rate and the scenario's coordinates are always there.
    rows = _tables(text)[1]
    assert all(len(r) >= 5 for r in rows)


@given(st.floats(min_value=1e-3, max_value=1e4), st.sampled_from([60, 80, 100, 120]))
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
def test_kperf_tables_never_cut_a_number(scale, width):
    r = _kperf_result(scale)
    narrow = _render(lambda con: print_kperf(r, con=con), width)
    wide = _render(lambda con: print_kperf(r, con=con), WIDE)
    _assert_whole(narrow, wide, width)


def test_wide_terminal_keeps_every_column():
    r = _kperf_result()
    text = _render(lambda con: print_kperf(r, con=con), 200)
    assert "not shown" not in text
    assert len(_tables(text)[0][0]) == len(TERMINAL_SUMMARY) + 3     # + the three ratios


# ----------------------------------------------------------------------------------- runs

def _run_result(n: int = 20) -> RunResult:
    ops = tuple(OpRecord(
        f"model.layers.{i}.mlp.down_proj_with_a_long_name", "contraction",
        f"/model/layers.{i}/mlp/down_proj/MatMul", "MatMul", "bf16", "bf16",
        470_000_000 + i, 0.0, 118e6, 118e6, 1e-6, 8e-5, 8e-5, 8.93e-5 * (1 + i / 7), "memory")
        for i in range(n))
    return RunResult("llama", "rngd", "tile", ops, peak_macs_per_s=1e15, tdp_w=150.0)


@pytest.mark.parametrize("width", [80, 64])
def test_run_table_at_narrow_widths_shows_every_number_whole(width):
    r = _run_result()
    narrow = _render(lambda con: print_run(r, con=con), width)
    wide = _render(lambda con: print_run(r, con=con), WIDE)
    _assert_whole(narrow, wide, width, skip_first=True)


def test_run_summary_lines_break_between_items_only():
    r = _run_result()
    text = _render(lambda con: print_run(r, con=con), 80)
    summary = text.split("┏")[0]
    assert all(len(line) <= 80 for line in summary.splitlines())
    # Each figure stays beside its label.
    for item in ("roofline bound", "DRAM traffic", "time by kind:"):
        assert any(re.search(re.escape(item) + r" \S", line) for line in summary.splitlines())


def test_print_items_packs_and_wraps_at_item_boundaries():
    items = [f"item{i} {i * 1111}" for i in range(12)]
    text = _render(lambda con: print_items(con, "  lead:", items), 40)
    lines = text.splitlines()
    assert all(len(line) <= 40 for line in lines) and len(lines) > 1
    assert lines[0].startswith("  lead: item0 0")
    joined = " ".join(lines)
    assert all(item in joined for item in items)
    assert all(line.startswith("    ") for line in lines[1:])


# ----------------------------------------------------------------------------------- helpers

def test_fitted_table_drops_by_keep_then_by_position():
    cols = [Column("name", "left"), Column("a", keep=1), Column("b", keep=1), Column("c", keep=2)]
    rows = [["x", "1" * 10, "2" * 10, "3" * 10]]
    # Widths: name 4, the others 10, each plus 3 for padding and border, plus 1: 47.
    _, dropped = fitted_table(cols, rows, width=47)
    assert dropped == []
    _, dropped = fitted_table(cols, rows, width=46)
    assert dropped == ["b"]           # equal keep: the rightmost goes first
    _, dropped = fitted_table(cols, rows, width=33)
    assert dropped == ["a", "b"]
    _, dropped = fitted_table(cols, rows, width=20)
    assert dropped == ["a", "b", "c"]


def test_a_table_too_narrow_for_its_kept_columns_still_never_cuts_numbers():
    cols = [Column("n"), Column("m")]
    text = _render(lambda con: print_fitted(con, cols, [["123456789", "987654321"]]), 15)
    assert "…" not in text and "123456789" in text and "987654321" in text


@given(st.floats(min_value=1e-12, max_value=1e17, allow_nan=False), st.booleans())
@settings(max_examples=300, deadline=None)
def test_si_never_writes_an_exponent(x, negative):
    text = si(-x if negative else x, "B")
    assert "e+" not in text and "e-" not in text and "…" not in text
    assert re.fullmatch(r"-?[\d,]+(\.\d+)? [PTGMkmunp]?B", text), text
