"""``npusim.validate.core.blank_row`` / ``write_rows`` / ``data_columns``: the one way tests,
fuzz corpora and users build a measured-data file with the shipped header."""
from __future__ import annotations

import csv

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npusim.errors import NpusimError
from npusim.validate.core import (blank_row, data_columns, default_data, read_rows, validate,
                                  write_rows)

IDLE = dict(id="T1", sim_arch="edu", sim_chips="1", sim_mode="idle", sim_metric="idle_power_w",
            sim_value="1", simulable="yes")


def test_columns_are_the_shipped_header_in_order():
    with open(default_data(), newline="", encoding="utf-8") as f:
        assert data_columns() == next(csv.reader(f))
    row = blank_row(**IDLE)
    assert list(row) == data_columns()
    assert {k: v for k, v in row.items() if v} == IDLE


def test_written_file_reads_back_and_validates(tmp_path):
    path = write_rows(tmp_path / "m.csv", [blank_row(**IDLE), dict(IDLE, id="T2")])
    assert path == tmp_path / "m.csv"
    assert [r["id"] for r in read_rows(path)] == ["T1", "T2"]   # a short dict: the rest empty
    res = validate(path, out=False, microchecks=False)
    assert [r.error_message for r in res.rows] == ["", ""]


def test_cells_are_written_verbatim(tmp_path):
    """No spreadsheet quoting: a measured file's ``-1`` must stay ``-1`` (a fuzz case's bad
    value, or a formula-like note)."""
    path = write_rows(tmp_path / "m.csv", [blank_row(**dict(IDLE, sim_note="=1+1, -1"))])
    with open(path, newline="", encoding="utf-8") as f:
        assert next(csv.DictReader(f))["sim_note"] == "=1+1, -1"


@pytest.mark.parametrize("bad", ["sim_boundry", "Sim_arch", "value "])
def test_unknown_column_is_refused(tmp_path, bad):
    with pytest.raises(NpusimError) as e:
        blank_row(**{bad: "x"})
    assert bad in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(NpusimError) as e:
        write_rows(tmp_path / "m.csv", [dict(blank_row(**IDLE), **{bad: "x"})])
    msg = str(e.value)
    assert bad in msg and "T1" in msg and "m.csv" in msg and "\n" not in msg
    assert not (tmp_path / "m.csv").exists()


def test_unwritable_path_is_one_clear_error(tmp_path):
    with pytest.raises(NpusimError) as e:
        write_rows(tmp_path / "no" / "such" / "m.csv", [blank_row(**IDLE)])
    assert "m.csv" in str(e.value) and "\n" not in str(e.value)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40))
def test_any_note_round_trips(tmp_path, note):
    """Commas, quotes and any printable text in a cell come back as written."""
    path = write_rows(tmp_path / "m.csv", [blank_row(**dict(IDLE, sim_note=note))])
    assert read_rows(path)[0]["sim_note"] == note
