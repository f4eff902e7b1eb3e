"""Damaged sweep stores (npusim/dse/store.py) for the fuzzing benchmark.

Each case is a folder holding a ``sweep.sqlite`` that is not a whole store of this schema, read
by ``npusim sweep report DIR`` or ``npusim sweep export DIR --format csv``:

``store/garbage``
    Random bytes, with or without SQLite's magic header (certainly invalid).
``store/text``
    A YAML, CSV or JSON text file named sweep.sqlite (certainly invalid).
``store/empty``
    A file of zero bytes (certainly invalid: no store).
``store/truncated``
    A valid store cut short at a random byte (certainly invalid: its header says how long it is).
``store/corrupt``
    A valid store with random bytes overwritten: refused when the damage hits the header, a
    page's structure or a row's JSON, read when it only changes a stored value (not certain),
    except damage to the 16-byte magic (certainly invalid).
``store/schema``
    Another schema version, no schema version, a points table with other columns
    (certainly invalid).
``store/foreign``
    An SQLite database of another program, or one with no tables (certainly invalid).
``store/row``
    One row changed by SQL so it no longer has a record's shape: truncated or non-JSON text,
    a list where a mapping goes, a text metric, a text point, feasible = 7, bytes that are not
    UTF-8, JSON nested thousands deep (certainly invalid).
``store/missing``
    A folder without sweep.sqlite, or a sweep.sqlite that is a folder (certainly invalid).
``store/wal``
    A valid store beside a junk write-ahead log, which SQLite ignores (not certain).

Every case is a small file; each runs in milliseconds.
"""
from __future__ import annotations

import pathlib
import random
import sqlite3

NAME = "sweep.sqlite"

TEXTS = ["name: sweep\nbase: edu\nfields: []\n", "key,point,phase\nabc,0,sample\n",
         '{"key": "abc", "point": 0}\n', "SQLite format 3", "\n", "\x00" * 64]

ROW_DAMAGE = [
    "UPDATE points SET metrics='{\"latency_s\": ' WHERE rowid=2",
    "UPDATE points SET metrics='[1, 2]' WHERE rowid=1",
    "UPDATE points SET metrics='{\"latency_s\": \"fast\"}' WHERE rowid=3",
    "UPDATE points SET params='not json' WHERE rowid=1",
    "UPDATE points SET \"values\"='{\"cores.sram\": null}' WHERE rowid=2",
    "UPDATE points SET violations='{\"a\": 1}' WHERE rowid=1",
    "UPDATE points SET point='three' WHERE rowid=1",
    "UPDATE points SET point=-4 WHERE rowid=2",
    "UPDATE points SET feasible=7 WHERE rowid=1",
    "UPDATE points SET elapsed_s='slow' WHERE rowid=3",
    "UPDATE points SET workload=CAST(x'ff00fe' AS TEXT) WHERE rowid=1",
    "UPDATE points SET metrics=x'7b7d' WHERE rowid=2",
    "UPDATE points SET params='" + "[" * 3000 + "]" * 3000 + "' WHERE rowid=1",
    "UPDATE points SET key='' WHERE rowid=3",
]
SCHEMA_DAMAGE = [
    "UPDATE meta SET value='2' WHERE name='schema_version'",
    "UPDATE meta SET value='0' WHERE name='schema_version'",
    "UPDATE meta SET value='one' WHERE name='schema_version'",
    "DELETE FROM meta WHERE name='schema_version'",
    "ALTER TABLE points ADD COLUMN extra TEXT",
    "ALTER TABLE points RENAME COLUMN metrics TO measures",
    "DROP TABLE meta",
    "DROP TABLE points",
]
FOREIGN = ["CREATE TABLE results (x, y); INSERT INTO results VALUES (1, 2)",
           "CREATE TABLE meta (name TEXT, value TEXT)",
           "PRAGMA user_version = 3"]


def _record(i: int) -> dict:
    return {"key": f"{i:064x}", "point": i, "phase": "sample", "workload": "decode",
            "params": {"cores.sram": f"{i + 1} MiB", "cores.engine.dataflow": "ws"},
            "values": {"cores.sram": float((i + 1) * 2**20), "cores.engine.dataflow": "ws"},
            "metrics": {"latency_s": 0.001 * (i + 1), "power_w": 100.0 + i,
                        "area_mm2": float("nan")},
            "violations": [] if i % 3 else ["power_w 182 W > 150 W"], "feasible": bool(i % 3),
            "error": None, "elapsed_s": 0.01, "worker": "local-0"}


def _valid(workdir: pathlib.Path) -> bytes:
    """The bytes of a valid store of a few records, built once per workdir."""
    from npusim.dse.store import Store
    path = workdir / "_valid" / NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with Store(path) as s:
            s.set_meta("spec", "name: fuzz\n")
            for i in range(6):
                s.put(_record(i))
    return path.read_bytes()


def _folder(workdir: pathlib.Path, i: int) -> pathlib.Path:
    folder = workdir / f"store{i}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sql(path: pathlib.Path, base: bytes, sql: str) -> None:
    """``base`` written to ``path``, then ``sql`` run on it and the log folded back in."""
    path.write_bytes(base)
    con = sqlite3.connect(path)
    try:
        con.executescript(sql)
    finally:
        con.close()


def _make(kind: str, path: pathlib.Path, base: bytes, rng: random.Random) -> bool:
    """Write case ``kind`` at ``path`` (the sweep.sqlite); True if certainly invalid."""
    if kind == "store/garbage":
        body = bytes(rng.randrange(256) for _ in range(rng.choice([1, 99, 100, 512, 4096])))
        path.write_bytes((b"SQLite format 3\x00" if rng.random() < 0.5 else b"") + body)
    elif kind == "store/text":
        path.write_text(rng.choice(TEXTS), encoding="utf-8")
    elif kind == "store/empty":
        path.write_bytes(b"")
    elif kind == "store/truncated":
        path.write_bytes(base[: rng.randrange(0, len(base))] if rng.random() < 0.5 else
                         base[: rng.choice([16, 99, 100, 1024, 4096, len(base) - 1])])
    elif kind == "store/corrupt":
        blob = bytearray(base)
        magic = rng.random() < 0.2
        for _ in range(rng.randrange(1, 8)):
            pos = rng.randrange(16) if magic else rng.randrange(16, len(blob))
            blob[pos] = (blob[pos] + rng.randrange(1, 256)) % 256   # always a change
        path.write_bytes(bytes(blob))
        return magic
    elif kind == "store/schema":
        _sql(path, base, rng.choice(SCHEMA_DAMAGE))
    elif kind == "store/foreign":
        _sql(path, b"", rng.choice(FOREIGN))
    elif kind == "store/row":
        _sql(path, base, rng.choice(ROW_DAMAGE))
    elif kind == "store/missing":
        if rng.random() < 0.5:
            path.mkdir()
    elif kind == "store/wal":
        path.write_bytes(base)
        path.with_name(NAME + "-wal").write_bytes(
            bytes(rng.randrange(256) for _ in range(rng.choice([8, 32, 4128]))))
        return False
    return True


KINDS = ["store/garbage", "store/text", "store/empty", "store/truncated", "store/corrupt",
         "store/schema", "store/foreign", "store/row", "store/missing", "store/wal"]


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield (label, argv, must_fail) for about ``n`` damaged sweep stores."""
    base = _valid(workdir)
    for i in range(n):
        kind = KINDS[i % len(KINDS)] if i < len(KINDS) else rng.choice(KINDS)
        folder = _folder(workdir, i)
        must = _make(kind, folder / NAME, base, rng)
        argv = (["sweep", "report", str(folder)] if rng.random() < 0.5 else
                ["sweep", "export", str(folder), "--format", "csv"])
        yield kind, argv, must
