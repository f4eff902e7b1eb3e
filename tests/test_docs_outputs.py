"""The output documentation cannot go stale.

- ``docs/kperf-columns.md`` lists exactly the K-Perf CSV's header, in order (the header of a
  real serving simulation, on a closed-form cost model so the test is fast).
- ``docs/results.md`` documents every ``bound`` value the engine can produce (the declared
  ones, every literal the engine's sources assign, and every one a few real runs produce) and
  every field of the run JSON and CSV files.
"""
from __future__ import annotations

import csv
import pathlib
import re
from dataclasses import fields

import pytest

import npusim
from npusim.engine.result import BOUNDS, OpRecord
from npusim.report.export import SCALAR_FIELDS, csv_columns
from npusim.workloads import kperf as kp

ROOT = pathlib.Path(__file__).resolve().parent.parent
KPERF_DOC = ROOT / "docs" / "kperf-columns.md"
RESULTS_DOC = ROOT / "docs" / "results.md"
ENGINE = pathlib.Path(npusim.__file__).parent / "engine"


def _table_rows(text: str) -> list[list[str]]:
    """Cells of every markdown table row (header and separator rows included)."""
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|")]


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _section(text: str, heading: str) -> str:
    """The text of the ``## heading`` section, up to the next ``## ``."""
    start = text.index(f"## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


# ----------------------------------------------------------------------------- K-Perf CSV

def _documented_kperf_columns() -> list[str]:
    rows = _table_rows(KPERF_DOC.read_text(encoding="utf-8"))
    out = []
    for cells in rows:
        if len(cells) >= 2 and cells[0].isdigit():
            assert int(cells[0]) == len(out) + 1, f"row numbers out of order at {cells[1]}"
            names = _ticked(cells[1])
            assert len(names) == 1, cells
            assert all(c and c != "-" or i == 2 for i, c in enumerate(cells[2:], 2)), cells
            out.append(names[0])
    return out


def test_kperf_doc_lists_the_csv_header_in_order(linear_cost, tmp_path):
    pytest.importorskip("openpyxl")
    linear_cost()
    r = kp.kperf("rngd", "llama-3.1-8b", input_lens=(128,), output_lens=(16,), users=(1, 4))
    from npusim.report.kperf import write_csv
    path = write_csv(r, tmp_path / "kperf.csv")
    with path.open(newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert header == r.columns()
    assert _documented_kperf_columns() == header
    assert len(header) == 53          # 46 before card_, host_, system_power_w and the power band (issue 13)


def test_kperf_doc_rows_have_a_unit_a_definition_and_a_method():
    rows = [c for c in _table_rows(KPERF_DOC.read_text(encoding="utf-8"))
            if c and c[0].isdigit()]
    assert rows
    for cells in rows:
        assert len(cells) == 5, cells
        number, column, unit, definition, method = cells
        assert unit and len(definition) > 5 and len(method) > 5, column


# ----------------------------------------------------------------------------- bound values

def _documented_bounds() -> set[str]:
    section = _section(RESULTS_DOC.read_text(encoding="utf-8"), "`bound`")
    out = set()
    for cells in _table_rows(section):
        names = _ticked(cells[0])
        if names:
            out.add(names[0])
    return out


_ASSIGN = re.compile(r"\bbound\s*=(?!=)\s*(.+)")


def _bound_literals_in_engine() -> set[str]:
    """Every string literal on the right of ``bound = ...`` or ``bound=...`` in the engine."""
    out = set()
    for path in ENGINE.rglob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            for rhs in _ASSIGN.findall(line):
                out.update(a or b for a, b in re.findall(r"\"([a-z_]+)\"|'([a-z_]+)'", rhs))
    return out


def test_every_declared_bound_is_documented_and_nothing_else():
    assert _documented_bounds() == set(BOUNDS)


def test_every_bound_the_engine_sources_assign_is_documented():
    literals = _bound_literals_in_engine()
    assert {"compute", "memory", "latency"} <= literals      # the scan finds the real ones
    # "fused" is the engine's internal marker, replaced by the op's roofline bound before a
    # record is made (engine/simulate.py); it never reaches a result.
    assert literals - {"fused"} <= _documented_bounds()


@pytest.mark.parametrize("engine", ["tile", "roofline"])
def test_bounds_of_real_runs_are_documented(engine):
    seen = set()
    for phase, kw in (("decode", dict(batch=1, kv_len=16)), ("prefill", dict(batch=2, seq=32))):
        r = npusim.simulate("tiny-llama", "edu", engine=engine, phase=phase, **kw)
        seen |= {op.bound for op in r.ops}
    assert seen and seen <= _documented_bounds()
    if engine == "roofline":
        assert "latency" not in seen        # as documented: the roofline has no fixed costs


# ----------------------------------------------------------------------------- JSON and CSV

def _documented_fields(heading: str) -> set[str]:
    section = _section(RESULTS_DOC.read_text(encoding="utf-8"), heading)
    out = set()
    for cells in _table_rows(section):
        out.update(_ticked(cells[0]))
    return out


@pytest.fixture(scope="module")
def run():
    return npusim.simulate("tiny-llama", "edu", phase="decode", batch=2, kv_len=16)


def test_every_json_field_is_documented(run):
    documented = _documented_fields("The JSON file")
    data = run.to_dict()
    assert set(data) | {"resolved_arch"} <= documented
    assert set(data["totals"]) <= documented
    op_fields = {f.name for f in fields(OpRecord)} | {"energy_total_j"}
    assert op_fields <= documented
    assert set(data["ops"][0]) <= documented


def test_every_csv_column_is_documented(run):
    documented = _documented_fields("The CSV file")
    assert set(csv_columns(run)) <= documented
    assert set(SCALAR_FIELDS) <= documented
    roof = npusim.simulate("tiny-llama", "edu", engine="roofline", phase="decode", batch=2,
                           kv_len=16)
    assert set(csv_columns(roof)) <= documented


def test_every_energy_component_and_level_in_a_run_is_named_in_the_json_section(run):
    section = _section(RESULTS_DOC.read_text(encoding="utf-8"), "The JSON file")
    # The op record's row (the totals table has an `energy_j` too, above it).
    energy_row = [c for c in _table_rows(section) if c[0] == "`energy_j`"][-1]
    levels_row = next(c for c in _table_rows(section) if c[0] == "`bytes_by_level`")
    comps = {k for op in run.ops for k in op.energy_j}
    levels = {k for op in run.ops for k in op.bytes_by_level}
    assert comps and comps <= set(_ticked(energy_row[2]))
    assert levels and levels <= set(_ticked(levels_row[2]))
