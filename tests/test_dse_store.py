"""The sweep store (npusim/dse/store.py): records in are records out, flat rows and exports say
the same, concurrent readers work, a driver killed with SIGKILL at random moments and re-run
ends with every key exactly once, and every bad input is one clean error."""
from __future__ import annotations

import csv
import importlib.util
import json
import math
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npusim.dse.store import (FLAT_COLUMNS, SCHEMA_VERSION, Store, checked_record, export, load,
                              read_meta, read_records)
from npusim.errors import NpusimError, OutputError

ROOT = Path(__file__).resolve().parents[1]
NAN, INF = float("nan"), float("inf")


def record(i: int = 0, **kw) -> dict:
    """A valid record of the contract's shape; ``kw`` replaces keys."""
    r = {"key": f"{i:064x}", "point": i, "phase": "sample", "workload": "decode",
         "params": {"cores.sram": f"{i + 1} MiB", "cores.engine.dataflow": "ws"},
         "values": {"cores.sram": float((i + 1) * 2**20), "cores.engine.dataflow": "ws"},
         "metrics": {"latency_s": 0.001 * (i + 1), "power_w": 100.0 + i},
         "violations": [], "feasible": True, "error": None, "elapsed_s": 0.25, "worker": "local-0"}
    r.update(kw)
    return r


def same(a, b) -> bool:
    """Equality in which a NaN equals a NaN (and only a NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def one_line(e: BaseException) -> bool:
    return "\n" not in str(e) and "\r" not in str(e) and str(e).strip() != ""


def clean_error(code, err) -> bool:
    return code == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err and \
        "Traceback" not in err


# ----------------------------------------------------------------------------- hand cases

def test_put_is_idempotent_and_keeps_the_first(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        assert s.put(record(0)) is True
        assert s.put(record(0, worker="other")) is False      # same key: kept, not replaced
        assert s.put(record(1)) is True
        assert s.keys() == {record(0)["key"], record(1)["key"]}
        assert [r["worker"] for r in s.records()] == ["local-0", "local-0"]
    con = sqlite3.connect(tmp_path / "s.sqlite")
    assert con.execute("SELECT count(*), count(DISTINCT key) FROM points").fetchone() == (2, 2)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_records_keep_insertion_order_across_reopen(tmp_path):
    order = [5, 2, 9, 0, 7]
    with Store(tmp_path) as s:                 # a folder: its sweep.sqlite
        for i in order[:3]:
            s.put(record(i))
    assert (tmp_path / Store.DEFAULT_NAME).is_file()
    with Store(tmp_path / Store.DEFAULT_NAME) as s:
        for i in order[3:]:
            s.put(record(i))
        assert [r["point"] for r in s.records()] == order
    assert [r["point"] for r in load(tmp_path)] == order


def test_meta(tmp_path):
    with Store(tmp_path) as s:
        assert s.get_meta("spec") is None
        assert s.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert s.get_meta("created") and s.get_meta("version")
        s.set_meta("spec", "name: x\nbase: edu\n")
        s.set_meta("spec", "name: ü\n")                        # replaced, not a second row
        assert s.get_meta("spec") == "name: ü\n"
    assert read_records(tmp_path)[1]["spec"] == "name: ü\n"
    assert read_meta(tmp_path)["schema_version"] == "1"


def test_load_flat_rows_by_hand(tmp_path):
    """Two workloads, one failed point and one violated constraint: the flat rows, computed by
    hand."""
    ok = record(0, metrics={"latency_s": 0.5, "power_w": 182.0}, feasible=False,
                violations=["power_w 182 W > 150 W", "area_mm2 900 mm^2 > 800 mm^2"])
    failed = record(1, workload="resnet", metrics={}, feasible=False,
                    error="does not fit: 80 GB of weights in 64 GB of DRAM",
                    values={"cores.sram": 4194304.0, "noc.width": 256.0},
                    params={"cores.sram": "4 MiB", "noc.width": "256"})
    with Store(tmp_path) as s:
        s.put(ok)
        s.put(failed)
    rows = load(tmp_path)
    assert list(rows[0]) == [*FLAT_COLUMNS, "cores.sram", "cores.engine.dataflow", "noc.width",
                             "latency_s", "power_w"]
    assert rows[0] == {"key": ok["key"], "point": 0, "phase": "sample", "workload": "decode",
                       "feasible": False, "error": None,
                       "violations": "power_w 182 W > 150 W; area_mm2 900 mm^2 > 800 mm^2",
                       "elapsed_s": 0.25, "worker": "local-0", "cores.sram": 1048576.0,
                       "cores.engine.dataflow": "ws", "noc.width": None, "latency_s": 0.5,
                       "power_w": 182.0}
    assert rows[1]["error"].startswith("does not fit") and rows[1]["violations"] == ""
    assert rows[1]["latency_s"] is None and rows[1]["power_w"] is None
    assert rows[1]["noc.width"] == 256.0 and rows[1]["cores.engine.dataflow"] is None


def test_nonfinite_metrics_survive_as_strict_json(tmp_path):
    r = record(0, metrics={"a": NAN, "b": INF, "c": -INF, "d": -0.0, "e": 5e-324},
               values={"x": INF, "y": "inf"})
    with Store(tmp_path) as s:
        s.put(r)
        back = s.records()[0]
    assert same(back, r) and math.copysign(1, back["metrics"]["d"]) == -1
    assert back["values"]["y"] == "inf"                        # a text stays a text
    con = sqlite3.connect(tmp_path / Store.DEFAULT_NAME)
    metrics, values = con.execute('SELECT metrics, "values" FROM points').fetchone()
    con.close()
    for text in (metrics, values):                             # strict JSON: no NaN tokens
        json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))


# ----------------------------------------------------------------------------- round trip

names = st.text(min_size=1, max_size=12)
floats = st.floats(allow_nan=True, allow_infinity=True)
records = st.builds(
    lambda key, point, phase, workload, params, values, metrics, violations, error, elapsed,
    worker: {"key": key, "point": point, "phase": phase, "workload": workload,
             "params": params, "values": values,
             "metrics": {k: v for k, v in metrics.items()
                         if k not in values and k not in FLAT_COLUMNS},
             "violations": violations if error is None else [],
             "feasible": error is None and not violations, "error": error,
             "elapsed_s": elapsed, "worker": worker},
    key=st.text(min_size=1, max_size=70), point=st.integers(0, 2**63 - 1), phase=st.text(),
    workload=st.text(), params=st.dictionaries(names, st.text(), max_size=4),
    values=st.dictionaries(names.filter(lambda n: n not in FLAT_COLUMNS),
                           st.one_of(floats, st.text()), max_size=4),
    metrics=st.dictionaries(names, floats, max_size=5),
    violations=st.lists(st.text(), max_size=3), error=st.none() | st.text(),
    elapsed=st.floats(allow_nan=False, allow_infinity=False), worker=st.text())


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rs=st.lists(records, max_size=6, unique_by=lambda r: r["key"]))
def test_records_in_are_records_out(tmp_path_factory, rs):
    d = tmp_path_factory.mktemp("rt")
    with Store(d) as s:
        assert [s.put(r) for r in rs] == [True] * len(rs)
        assert not any(s.put(r) for r in rs)
        assert same(s.records(), rs)
        assert s.keys() == {r["key"] for r in rs}
    assert same(read_records(d)[0], rs)
    rows = load(d)
    for r, row in zip(rs, rows):
        assert row["violations"] == "; ".join(r["violations"])
        assert all(same(row[k], v) for k, v in {**r["values"], **r["metrics"]}.items())


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rs=st.lists(records, min_size=1, max_size=4, unique_by=lambda r: r["key"]))
def test_csv_cells_are_the_flat_rows(tmp_path_factory, rs):
    """Any records: each CSV cell reads back as its flat row's value (numbers in shortest
    round-trip form, text spreadsheet-safe, a missing value empty)."""
    from npusim.files import spreadsheet_safe
    d = tmp_path_factory.mktemp("csv")
    with Store(d) as s:
        for r in rs:
            s.put(r)
    with export(d, d / "rows.csv").open(newline="", encoding="utf-8") as f:
        got = list(csv.reader(f))
    rows = load(d)
    assert got[0] == list(rows[0]) and len(got) == len(rows) + 1
    for cells, row in zip(got[1:], rows):
        for cell, v in zip(cells, row.values()):
            if isinstance(v, float):
                assert same(float(cell), v)
            else:
                assert cell == str(spreadsheet_safe(v))


def test_csv_export_reads_back(tmp_path):
    rs = [record(0, metrics={"latency_s": 0.125, "power_w": NAN}),
          record(1, metrics={"latency_s": INF}, error="=cmd|' /C calc'!A0", feasible=False),
          record(2, workload="ünï, \"quoted\"\nline"),
          record(3, error="old mac\rline end", feasible=False)]
    with Store(tmp_path) as s:
        for r in rs:
            s.put(r)
    out = export(tmp_path, tmp_path / "rows.csv")
    assert out == tmp_path / "rows.csv"
    with out.open(newline="", encoding="utf-8") as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == list(load(tmp_path)[0])
    assert [float(g["latency_s"]) for g in got] == [0.125, INF, 0.003, 0.004]
    assert got[3]["error"] == "old mac\rline end"          # a bare CR stays in its cell
    assert got[0]["power_w"] == "nan" and got[1]["power_w"] == ""          # missing: empty
    assert got[1]["error"] == "'=cmd|' /C calc'!A0"                        # spreadsheet-safe
    assert got[2]["workload"] == "ünï, \"quoted\"\nline"
    assert got[0]["feasible"] == "True" and got[1]["feasible"] == "False"
    assert export(tmp_path, tmp_path) == tmp_path / "sweep.csv"           # a folder
    assert export(tmp_path, tmp_path / "noext", fmt=None).read_text() == out.read_text()


def test_parquet_export_reads_back(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    rs = [record(0, metrics={"latency_s": 0.125, "power_w": NAN}),
          record(1, metrics={}, error="failed", feasible=False)]
    with Store(tmp_path) as s:
        for r in rs:
            s.put(r)
    out = export(tmp_path, tmp_path / "rows.parquet")
    table = pq.read_table(out)
    assert table.column_names == list(load(tmp_path)[0])
    assert str(table.schema.field("latency_s").type) == "double"
    assert str(table.schema.field("cores.engine.dataflow").type) == "string"
    assert same(table.to_pylist(), load(tmp_path))
    assert export(tmp_path, tmp_path / "x.csv", fmt="parquet").read_bytes()[:4] == b"PAR1"
    assert export(tmp_path, tmp_path / "y.parquet", fmt="CSV").read_text().startswith("key,")


def test_dataframe(tmp_path):
    pd = pytest.importorskip("pandas")
    with Store(tmp_path) as s:
        s.put(record(0))
        s.put(record(1, metrics={"latency_s": 2.0, "tokens_per_s": 50.0}))
        s.put(record(2, metrics={}, error="failed", feasible=False))
    df = load(tmp_path, as_="dataframe")
    assert isinstance(df, pd.DataFrame) and len(df) == 3
    assert list(df.columns) == list(load(tmp_path)[0])
    assert str(df["tokens_per_s"].dtype) == "float64" and str(df["power_w"].dtype) == "float64"
    assert math.isnan(df["tokens_per_s"][0]) and df["tokens_per_s"][1] == 50.0
    assert math.isnan(df["latency_s"][2]) and df["error"][2] == "failed"


def test_empty_store_loads_and_exports(tmp_path):
    Store(tmp_path).close()
    assert load(tmp_path) == []
    with (export(tmp_path, tmp_path / "e.csv")).open() as f:
        assert next(csv.reader(f)) == list(FLAT_COLUMNS)


# ----------------------------------------------------------------------------- concurrency

def test_reader_while_the_writer_runs(tmp_path):
    """A report reads a live store: a second connection holding a read transaction sees its
    snapshot, never blocks the writer, and sees the new rows once it ends."""
    file = tmp_path / Store.DEFAULT_NAME
    with Store(file) as s:
        s.put(record(0))
        reader = sqlite3.connect(file, isolation_level=None)
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM points").fetchone() == (1,)
        for i in range(1, 30):                              # the writer is not blocked
            assert s.put(record(i))
            assert len(load(tmp_path)) == i + 1             # a fresh reader sees each commit
        assert reader.execute("SELECT count(*) FROM points").fetchone() == (1,)   # snapshot
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM points").fetchone() == (30,)
        reader.close()
        assert len(s.records()) == 30


def test_two_writers_never_write_a_key_twice(tmp_path):
    """Two drivers started on the same folder by mistake: each key is stored once, and put
    says True for exactly one of them."""
    with Store(tmp_path) as a, Store(tmp_path) as b:
        said = [(a if i % 2 else b).put(record(i // 3)) for i in range(60)]
        assert sum(said) == 20
        assert [r["point"] for r in a.records()] == list(range(20))
        assert b.keys() == a.keys()


# ----------------------------------------------------------------------------- crash safety

DRIVER = """
import random, sqlite3, sys, time
sys.path.insert(0, {root!r})
from npusim.dse.store import Store

def record(i):
    big = "x" * (i % 7 * 1500)        # some records span overflow pages
    return {{"key": "%064x" % i, "point": i, "phase": "sample", "workload": "decode",
            "params": {{"f%d" % j: "%d MiB" % (i + j) for j in range(8)}},
            "values": {{"f%d" % j: float(i + j) for j in range(8)}},
            "metrics": {{"m%d" % j: i * 0.5 + j for j in range(17)}},
            "violations": [big] if big else [], "feasible": not big, "error": None,
            "elapsed_s": 0.001 * i, "worker": "driver"}}

if __name__ == "__main__":
    path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    with Store(path) as s:
        done = s.keys()
        side = sqlite3.connect(path)     # frequent checkpoints, so kills land in them too
        print("ready", len(done), flush=True)
        for i in range(n):
            if "%064x" % i in done:
                continue
            s.put(record(i))
            if rng.random() < 0.1:
                mode = rng.choice(["PASSIVE", "RESTART", "TRUNCATE"])
                side.execute("PRAGMA wal_checkpoint(%s)" % mode)
            if rng.random() < 0.2:
                time.sleep(rng.random() * 0.002)
        side.close()
    print("finished", flush=True)
"""


def _driver(tmp_path: Path) -> tuple[Path, object]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(root=str(ROOT)), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("store_driver", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return script, mod.record


def _start(script: Path, file: Path, n: int, seed: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), str(file), str(n), str(seed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check_store(file: Path, expected, n: int) -> int:
    """The store after a kill: intact, every row whole and equal to what was put, no key
    twice; returns how many rows it holds."""
    rs = read_records(file)[0]       # read-only first: it must recover a killed writer's log
    con = sqlite3.connect(file)
    assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    count, distinct = con.execute("SELECT count(*), count(DISTINCT key) FROM points").fetchone()
    con.close()
    assert count == distinct
    assert len(rs) == count          # every row parsed and had the record's shape
    for r in rs:
        assert 0 <= r["point"] < n and r == expected(r["point"])
    return count


def _has_tables(file: Path) -> bool:
    """False for a store whose driver was killed before it committed the tables (a reader
    rightly calls that no store yet; the next writer creates them)."""
    con = sqlite3.connect(file)
    try:
        return con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    finally:
        con.close()


def test_sigkill_at_random_moments_loses_nothing(tmp_path):
    """A driver putting N records is killed with SIGKILL at random moments (once before it has
    even opened the store), once while another process holds a read transaction, and while this
    process keeps loading the live store; each re-run skips the keys there; in the end every
    key is there exactly once, the file is intact and no record is partial."""
    n, rng = 1000, random.Random(14)
    file = tmp_path / "out" / Store.DEFAULT_NAME
    file.parent.mkdir()
    script, expected = _driver(tmp_path)
    counts = []
    for kill in range(8):
        reader = None
        if kill == 4 and file.exists():          # a reader holds the file across the kill
            reader = sqlite3.connect(file, isolation_level=None)
            reader.execute("BEGIN")
            before = reader.execute("SELECT count(*) FROM points").fetchone()
        proc = _start(script, file, n, seed=kill)
        if kill > 0:
            line = proc.stdout.readline()
            assert line.startswith("ready"), line + proc.stderr.read()
            deadline = time.monotonic() + rng.uniform(0.0, 0.15)
            while kill % 2 and time.monotonic() < deadline:  # live reads while it writes
                assert len(load(file)) <= n
            time.sleep(max(0.0, deadline - time.monotonic()))
        else:
            time.sleep(rng.uniform(0.0, 0.3))    # maybe before or while it creates the store
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        if reader is not None:
            assert reader.execute("SELECT count(*) FROM points").fetchone() == before
            reader.execute("COMMIT")
            reader.close()
        if file.exists() and file.stat().st_size and (kill > 0 or _has_tables(file)):
            counts.append(_check_store(file, expected, n))
    proc = _start(script, file, n, seed=99)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.splitlines()[-1] == "finished"
    assert _check_store(file, expected, n) == n
    assert {r["key"] for r in load(file.parent)} == {"%064x" % i for i in range(n)}
    assert counts == sorted(counts)              # a kill never took a committed row away


# ----------------------------------------------------------------------------- bad input

def _store_with(tmp_path: Path, sql: str) -> Path:
    """A valid store of three records, then ``sql`` run on it."""
    d = tmp_path / f"s{len(list(tmp_path.iterdir()))}"
    d.mkdir()
    with Store(d) as s:
        for i in range(3):
            s.put(record(i))
    con = sqlite3.connect(d / Store.DEFAULT_NAME)
    con.executescript(sql)
    con.close()
    return d


def _not_store_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each class of file that is not a store: (path, a word its message must hold)."""
    text = tmp_path / "text.sqlite"
    text.write_text("name: sweep\nbase: edu\n")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(bytes(random.Random(1).randrange(256) for _ in range(5000)))
    empty_dir = tmp_path / "emptydir"
    empty_dir.mkdir()
    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE results (x)")
    con.commit()
    con.close()
    blank_db = tmp_path / "blank.sqlite"
    sqlite3.connect(blank_db).execute("PRAGMA user_version=1").connection.close()
    full = _store_with(tmp_path, "") / Store.DEFAULT_NAME
    truncated = tmp_path / "truncated.sqlite"
    data = full.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    tiny = tmp_path / "tiny.sqlite"
    tiny.write_bytes(data[:40])
    folder_named = tmp_path / "dirstore"
    (folder_named / Store.DEFAULT_NAME).mkdir(parents=True)
    return {"text": (text, "not an sqlite"), "garbage": (garbage, "not an sqlite"),
            "folder without one": (empty_dir, "holds no sweep.sqlite"),
            "foreign sqlite": (foreign, "without the sweep's tables"),
            "blank sqlite": (blank_db, "empty sqlite database"),
            "truncated": (truncated, "truncated"), "truncated header": (tiny, "truncated"),
            "sweep.sqlite is a folder": (folder_named, "a folder"),
            "missing": (tmp_path / "nope", "no such file")}


def test_not_a_store_is_one_clear_error(tmp_path):
    for name, (path, word) in _not_store_inputs(tmp_path).items():
        for call in (load, lambda p: export(p, tmp_path / "x.csv"), Store):
            if call is Store and name in ("missing", "folder without one", "blank sqlite"):
                continue      # the writer creates these (a blank database: killed at creation)
            with pytest.raises(NpusimError) as e:
                call(path)
            assert one_line(e.value), name
            assert word in str(e.value).lower(), (name, str(e.value))
            assert str(path.name) in str(e.value), name
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    with pytest.raises(NpusimError, match="an empty file"):
        load(empty)
    Store(empty).close()                             # the writer starts a store in it
    assert load(empty) == []
    blank = tmp_path / "blank.sqlite"                # as a driver killed while creating it
    Store(blank).close()
    assert load(blank) == []


def test_wrong_schema_version(tmp_path):
    d = _store_with(tmp_path, "UPDATE meta SET value='7' WHERE name='schema_version'")
    for call in (load, Store):
        with pytest.raises(NpusimError, match="schema version '7'.*reads version 1.*new --out"):
            call(d)
    d = _store_with(tmp_path, "DELETE FROM meta WHERE name='schema_version'")
    with pytest.raises(NpusimError, match="no schema_version"):
        load(d)
    d = _store_with(tmp_path, "ALTER TABLE points ADD COLUMN extra TEXT")
    with pytest.raises(NpusimError, match="points table has other columns"):
        load(d)
    d = _store_with(tmp_path, "ALTER TABLE meta RENAME COLUMN value TO text")
    with pytest.raises(NpusimError, match="meta table has other columns"):
        load(d)


def _records(path):
    with Store(path) as s:
        return s.records()


@pytest.mark.parametrize("sql, word", [
    ("UPDATE points SET metrics='{\"a\": ' WHERE point=1", "row 2"),
    ("UPDATE points SET metrics='[1, 2]' WHERE point=1", "metrics"),
    ("UPDATE points SET metrics='{\"a\": \"fast\"}' WHERE point=1", "entry 'a'"),
    ("UPDATE points SET point='three' WHERE point=2", "point"),
    ("UPDATE points SET feasible=7 WHERE point=0", "feasible"),
    ("UPDATE points SET \"values\"='{\"x\": [1]}' WHERE point=0", "entry 'x'"),
    ("UPDATE points SET violations='\"text\"' WHERE point=0", "violations"),
    ("UPDATE points SET params='" + "[" * 5000 + "]" * 5000 + "' WHERE point=0", "params"),
], ids=["truncated-json", "list-metrics", "text-metric", "text-point", "feasible-7",
        "list-value", "text-violations", "deep-json"])
def test_damaged_row_is_one_clear_error(tmp_path, sql, word):
    d = _store_with(tmp_path, sql)
    for call in (load, _records):
        with pytest.raises(NpusimError) as e:
            call(d)
        assert one_line(e.value) and "damaged" in str(e.value) and word in str(e.value)


def test_unknown_export_format(tmp_path):
    Store(tmp_path).close()
    with pytest.raises(NpusimError, match="unknown export format 'xlsx'; give csv or parquet"):
        export(tmp_path, tmp_path / "x.csv", fmt="xlsx")
    with pytest.raises(NpusimError, match=r"unknown export format '\.json'.*--format"):
        export(tmp_path, tmp_path / "x.json")
    with pytest.raises(NpusimError, match="as_='records' or as_='dataframe'"):
        load(tmp_path, as_="frame")


def test_missing_optional_packages(tmp_path, monkeypatch):
    Store(tmp_path).close()
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(NpusimError, match=r'pyarrow.*pip install "npusim\[sweep\]"'):
        export(tmp_path, tmp_path / "x.parquet")
    with pytest.raises(NpusimError, match=r'pandas.*pip install "npusim\[sweep\]"'):
        load(tmp_path, as_="dataframe")
    assert export(tmp_path, tmp_path / "x.csv").exists()         # CSV needs neither


def test_export_to_an_unwritable_place(tmp_path):
    Store(tmp_path).close()
    for out in (tmp_path / "no" / "such" / "x.csv", tmp_path / "no" / "x.parquet"):
        if out.suffix == ".parquet":
            pytest.importorskip("pyarrow")
        with pytest.raises(OutputError, match="cannot write the sweep export") as e:
            export(tmp_path, out)
        assert one_line(e.value)


def test_store_in_a_missing_folder(tmp_path):
    with pytest.raises(OutputError, match="cannot open the sweep store.*writable") as e:
        Store(tmp_path / "no" / "such" / "sweep.sqlite")
    assert one_line(e.value)


BAD_SHAPES = [
    ({"point": "3"}, "'point'"), ({"point": -1}, "'point'"), ({"point": True}, "'point'"),
    ({"point": 2**63}, "'point'"), ({"key": ""}, "'key'"), ({"key": 5}, "'key'"),
    ({"phase": None}, "'phase'"), ({"workload": b"w"}, "'workload'"),
    ({"worker": "\ud800"}, "'worker'"), ({"params": []}, "'params'"),
    ({"params": {"a": 1}}, "'params' entry 'a'"), ({"params": {"": "1"}}, "'params'"),
    ({"values": {"a": None}}, "'values' entry 'a'"), ({"values": {"a": [1]}}, "'values'"),
    ({"metrics": {"latency_s": "1 s"}}, "'metrics' entry 'latency_s'"),
    ({"metrics": {"latency_s": True}}, "'metrics' entry 'latency_s'"),
    ({"metrics": {1: 2.0}}, "metrics"), ({"metrics": None}, "'metrics'"),
    ({"violations": "power"}, "'violations'"), ({"violations": [1]}, "'violations'"),
    ({"feasible": 1}, "'feasible'"), ({"feasible": "yes"}, "'feasible'"),
    ({"error": 3}, "'error'"), ({"elapsed_s": NAN}, "'elapsed_s'"),
    ({"elapsed_s": "1"}, "'elapsed_s'"),
    ({"error": "failed", "feasible": True}, "'feasible'"),
    ({"violations": ["power"], "feasible": True}, "'feasible'"),
    ({"metrics": {"key": 1.0}}, "'key'"), ({"metrics": {"cores.sram": 1.0}}, "'cores.sram'"),
    ({"extra": 1}, "'extra'"),
]


@pytest.mark.parametrize("change, word", BAD_SHAPES)
def test_bad_record_shape_names_the_key(tmp_path, change, word):
    with Store(tmp_path) as s:
        with pytest.raises(NpusimError) as e:
            s.put(record(0, **change))
        assert one_line(e.value) and word in str(e.value) and "Store.put" in str(e.value)
        for k in ("key", "metrics", "feasible"):
            r = record(0)
            del r[k]
            with pytest.raises(NpusimError, match=f"key '{k}' is missing"):
                s.put(r)
        with pytest.raises(NpusimError, match="must be a mapping"):
            s.put([("key", "k")])
        with pytest.raises(NpusimError, match="Store.set_meta"):
            s.set_meta("spec", 3)
        assert s.keys() == set()                     # nothing half-stored
    with pytest.raises(NpusimError, match="is closed"):
        s.put(record(0))


def test_numpy_scalars_are_accepted(tmp_path):
    np = pytest.importorskip("numpy")
    r = record(0, point=np.int64(3), metrics={"latency_s": np.float32(0.5)},
               values={"n": np.int64(4)}, feasible=np.bool_(True), elapsed_s=np.float64(1))
    with Store(tmp_path) as s:
        s.put(r)
        back = s.records()[0]
    assert back["point"] == 3 and type(back["point"]) is int
    assert back["metrics"] == {"latency_s": 0.5} and back["values"] == {"n": 4.0}
    assert back["feasible"] is True and back["elapsed_s"] == 1.0


# ----------------------------------------------------------------------------- fuzz

def _valid_store_bytes(tmp_path: Path) -> bytes:
    return (_store_with(tmp_path, "") / Store.DEFAULT_NAME).read_bytes()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_damaged_files_load_whole_or_fail_cleanly(tmp_path_factory, data):
    """Any damage to a store's file (truncation, flipped bits, junk appended or prepended, a
    junk write-ahead log): load gives valid records or one clean NpusimError, never another
    exception; a truncation is always refused."""
    d = tmp_path_factory.mktemp("fz")
    good = _valid_store_bytes(d)
    kind = data.draw(st.sampled_from(["truncate", "flip", "prefix", "append", "wal"]))
    blob = bytearray(good)
    if kind == "truncate":
        blob = blob[: data.draw(st.integers(0, len(good) - 1))]
    elif kind == "flip":
        for pos in data.draw(st.lists(st.integers(0, len(good) - 1), min_size=1, max_size=8)):
            blob[pos] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "prefix":
        blob = bytearray(data.draw(st.binary(min_size=1, max_size=64))) + blob
    elif kind == "append":
        blob += data.draw(st.binary(min_size=1, max_size=5000))
    target = d / "t"
    target.mkdir()
    (target / Store.DEFAULT_NAME).write_bytes(bytes(blob))
    if kind == "wal":
        (target / (Store.DEFAULT_NAME + "-wal")).write_bytes(
            data.draw(st.binary(min_size=1, max_size=9000)))
    try:
        rows = load(target)
    except NpusimError as e:
        assert one_line(e)
        return
    assert kind not in ("truncate", "prefix")
    assert all(set(FLAT_COLUMNS) <= set(r) for r in rows)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(sorted(record())),
       value=st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(),
                       st.binary(), st.lists(st.text(), max_size=2),
                       st.dictionaries(st.text(max_size=3), st.one_of(st.floats(), st.text(),
                                       st.none()), max_size=2)))
def test_fuzz_record_shapes_put_or_refuse(tmp_path_factory, key, value):
    """Any value at any key: put stores it (and reads it back equal) or refuses it with one
    clean error naming that key; nothing is half-stored."""
    d = tmp_path_factory.mktemp("shape")
    with Store(d) as s:
        r = record(0, **{key: value})
        try:
            s.put(r)
        except NpusimError as e:
            assert one_line(e) and (f"'{key}'" in str(e) or "'feasible'" in str(e)), str(e)
            assert s.records() == []
            return
        assert same(s.records(), [checked_record(r)])


def _fuzz_module():
    src = ROOT / "benchmarks" / "fuzz_cases" / "sweep_store.py"
    spec = importlib.util.spec_from_file_location("fuzz_cases_sweep_store", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fuzz_corpus_cases_are_clean(cli, tmp_path):
    """benchmarks/fuzz_cases/sweep_store.py: every certainly-bad store is one clean error from
    ``load`` (and from the CLI once it has the ``sweep`` verbs); no case raises anything else."""
    has_sweep = cli("sweep", "--help")[0] == 0
    seen = set()
    for label, argv, must_fail in _fuzz_module().cases(tmp_path, random.Random(7), 40):
        seen.add(label)
        assert argv[0] == "sweep" and argv[1] in ("report", "export")
        try:
            load(argv[2])
        except NpusimError as e:
            assert one_line(e), (label, str(e))
        else:
            assert not must_fail, (label, argv)
        if has_sweep:
            code, _, err = cli(*argv)
            assert clean_error(code, err) if must_fail else code == 0 or clean_error(code, err), \
                (label, argv, err)
    assert {"store/garbage", "store/truncated", "store/schema", "store/row"} <= seen
