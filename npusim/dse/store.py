"""The sweep store: one SQLite file that loses nothing (issue 14 item 3).

A sweep's driver writes one row per (design point, workload) as soon as it is evaluated, each
in its own committed transaction, keyed by the record's hash (arch, workload, npusim version).
``INSERT OR IGNORE`` on that key means a record put twice (a re-run, a retried worker) never
makes a second row; SQLite's write-ahead log (``journal_mode=WAL``, ``synchronous=FULL``) means a driver killed
at any moment leaves every committed row whole and no half-written one, and readers (a report on
a live sweep) never block the writer.

Layout (schema version :data:`SCHEMA_VERSION`): a ``meta`` table of (name, text) pairs and a
``points`` table: the record's scalar fields as columns, ``params`` / ``values`` / ``metrics`` /
``violations`` as strict JSON text, the npusim version that wrote the row and when.
Non-finite floats, which strict JSON cannot hold, are written as ``{"$float": "nan"}``
(``"inf"``, ``"-inf"``): no record value is ever an object, so the tag cannot be confused with
data, and every row stays readable by any JSON tool.

Every row is checked against the record's shape both when it is put (a wrong shape is the
caller's bug) and when it is read back (a wrong shape means the file was damaged), so a store
either reads whole or fails with one message naming the file and the fix.
"""
from __future__ import annotations

import json
import math
import numbers
import sqlite3
import stat
import struct
from datetime import datetime, timezone
from importlib import import_module
from pathlib import Path
from typing import Any

from ..errors import NpusimError, OutputError

SCHEMA_VERSION = 1
_MAGIC = b"SQLite format 3\x00"
_INSTALL = 'pip install "npusim[sweep]"'
# Seconds a connection waits for another's lock before giving up (assumption: a checkpoint of a
# large store takes well under a second; 30 s leaves room for a slow network file system).
_BUSY_TIMEOUT_S = 30.0

# The record's keys and what each holds (the shared contract, P14-contract.md "Record").
RECORD_KEYS = ("key", "point", "phase", "workload", "params", "values", "metrics",
               "violations", "feasible", "error", "elapsed_s", "worker")
# The flat row's fixed columns (``load``); field and metric columns follow them.
FLAT_COLUMNS = ("key", "point", "phase", "workload", "feasible", "error", "violations",
                "elapsed_s", "worker")

_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
CREATE TABLE points (
    key TEXT PRIMARY KEY NOT NULL,
    point INTEGER NOT NULL,
    phase TEXT NOT NULL,
    workload TEXT NOT NULL,
    params TEXT NOT NULL,
    "values" TEXT NOT NULL,
    metrics TEXT NOT NULL,
    violations TEXT NOT NULL,
    feasible INTEGER NOT NULL,
    error TEXT,
    elapsed_s REAL NOT NULL,
    worker TEXT NOT NULL,
    version TEXT NOT NULL,
    finished TEXT NOT NULL
);
"""
_POINT_COLUMNS = ("key", "point", "phase", "workload", "params", "values", "metrics",
                  "violations", "feasible", "error", "elapsed_s", "worker", "version",
                  "finished")
_SELECT = ("SELECT rowid, key, point, phase, workload, params, \"values\", metrics, violations, "
           "feasible, error, elapsed_s, worker FROM points ORDER BY rowid")
_INSERT = ("INSERT OR IGNORE INTO points (key, point, phase, workload, params, \"values\", "
           "metrics, violations, feasible, error, elapsed_s, worker, version, finished) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


# ----------------------------------------------------------------------------- record shape

class _Shape(Exception):
    """A record that does not have the contract's shape; the caller says whose fault it is."""


def _text(v: Any, what: str) -> str:
    """``v`` if it is text SQLite can store as UTF-8 (a lone surrogate cannot be)."""
    if not isinstance(v, str):
        raise _Shape(f"{what} must be text, not {type(v).__name__}")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise _Shape(f"{what} holds a lone surrogate, which is not valid Unicode") from None
    return v


def _number(v: Any, what: str) -> float:
    """``v`` as a float: any real number (numpy's too) but not a bool."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise _Shape(f"{what} must be a number, not {type(v).__name__}")
    return float(v)


def _mapping(v: Any, what: str) -> dict:
    if not isinstance(v, dict):
        raise _Shape(f"{what} must be a mapping, not {type(v).__name__}")
    for k in v:
        _text(k, f"a name in {what}")
        if not k:
            raise _Shape(f"{what} has an empty name")
    return v


def checked_record(record: Any) -> dict:
    """A copy of ``record`` in the contract's exact shape (numbers as float, violations as a
    list), or :class:`NpusimError` naming the first key that is missing, unknown or of the
    wrong type.

    >>> r = checked_record({"key": "k", "point": 0, "phase": "sample", "workload": "w",
    ...     "params": {"cores.sram": "1 MiB"}, "values": {"cores.sram": 1048576},
    ...     "metrics": {"latency_s": 1}, "violations": (), "feasible": True, "error": None,
    ...     "elapsed_s": 0.5, "worker": "local-1"})
    >>> r["values"], r["metrics"], r["violations"]
    ({'cores.sram': 1048576.0}, {'latency_s': 1.0}, [])
    >>> checked_record({**r, "point": "3"})
    Traceback (most recent call last):
    ...
    npusim.errors.NpusimError: bad record for the sweep store: key 'point' must be a whole number >= 0, not str (a bug in the caller of Store.put)
    """
    try:
        return _checked(record)
    except _Shape as e:
        raise NpusimError(f"bad record for the sweep store: {e} (a bug in the caller of "
                          f"Store.put)") from None


def _checked(record: Any) -> dict:
    """The body of :func:`checked_record`; raises :class:`_Shape`."""
    if not isinstance(record, dict):
        raise _Shape(f"a record must be a mapping, not {type(record).__name__}")
    for k in RECORD_KEYS:
        if k not in record:
            raise _Shape(f"key {k!r} is missing")
    extra = [k for k in record if k not in RECORD_KEYS]
    if extra:
        raise _Shape(f"key {str(extra[0])[:80]!r} is not a record key (the keys are "
                     f"{', '.join(RECORD_KEYS)})")
    out: dict[str, Any] = {}
    for k in ("key", "phase", "workload", "worker"):
        out[k] = _text(record[k], f"key {k!r}")
    if not out["key"]:
        raise _Shape("key 'key' is empty")
    point = record["point"]
    if isinstance(point, bool) or not isinstance(point, numbers.Integral) or \
            not 0 <= int(point) < 2**63:
        raise _Shape(f"key 'point' must be a whole number >= 0, not {type(point).__name__}")
    out["point"] = int(point)
    out["params"] = {k: _text(v, f"key 'params' entry {k!r}")
                     for k, v in _mapping(record["params"], "key 'params'").items()}
    out["values"] = {k: _text(v, f"key 'values' entry {k!r}") if isinstance(v, str)
                     else _number(v, f"key 'values' entry {k!r}")
                     for k, v in _mapping(record["values"], "key 'values'").items()}
    out["metrics"] = {k: _number(v, f"key 'metrics' entry {k!r}")
                      for k, v in _mapping(record["metrics"], "key 'metrics'").items()}
    violations = record["violations"]
    if not isinstance(violations, (list, tuple)):
        raise _Shape(f"key 'violations' must be a list of texts, not {type(violations).__name__}")
    out["violations"] = [_text(v, "an entry of key 'violations'") for v in violations]
    feasible = record["feasible"]
    if not (isinstance(feasible, bool) or getattr(getattr(feasible, "dtype", None), "kind", "")
            == "b"):
        raise _Shape(f"key 'feasible' must be a bool, not {type(feasible).__name__}")
    out["feasible"] = bool(feasible)
    error = record["error"]
    out["error"] = None if error is None else _text(error, "key 'error'")
    out["elapsed_s"] = _number(record["elapsed_s"], "key 'elapsed_s'")
    if not math.isfinite(out["elapsed_s"]):
        raise _Shape("key 'elapsed_s' must be a finite number of seconds")
    if out["feasible"] and (out["error"] is not None or out["violations"]):
        raise _Shape("key 'feasible' is True but the record has an error or violations")
    _check_columns(out)
    return {k: out[k] for k in RECORD_KEYS}


def _check_columns(r: dict) -> None:
    """Field paths and metric names become columns of the flat rows beside the fixed ones:
    no name may be used twice."""
    clash = set(r["values"]) & set(r["metrics"])
    if clash:
        raise _Shape(f"key 'metrics' has {sorted(clash)[0]!r}, which is also a field in key "
                     f"'values'")
    for part in ("values", "metrics"):
        fixed = set(r[part]) & set(FLAT_COLUMNS)
        if fixed:
            raise _Shape(f"key {part!r} uses the name {sorted(fixed)[0]!r}, which is a fixed "
                         f"column of the flat rows")


# ----------------------------------------------------------------------------- JSON columns

def _tag(v: Any) -> Any:
    """``v`` with every non-finite float replaced by its ``{"$float": ...}`` tag."""
    if isinstance(v, float) and not math.isfinite(v):
        return {"$float": "nan" if v != v else ("inf" if v > 0 else "-inf")}
    if isinstance(v, dict):
        return {k: _tag(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_tag(x) for x in v]
    return v


def _untag(obj: dict) -> Any:
    """The ``object_hook`` undoing :func:`_tag`."""
    if len(obj) == 1 and obj.get("$float") in ("nan", "inf", "-inf"):
        return float(obj["$float"])
    return obj


def dumps(v: Any) -> str:
    """Strict JSON for a store column; non-finite floats tagged.

    >>> dumps({"a": float("inf"), "b": 1.5})
    '{"a":{"$float":"inf"},"b":1.5}'
    >>> loads(dumps([float("-inf"), "x"]))
    [-inf, 'x']
    """
    return json.dumps(_tag(v), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def loads(text: str) -> Any:
    """The value :func:`dumps` wrote."""
    return json.loads(text, object_hook=_untag)


# ----------------------------------------------------------------------------- opening

def _shown(path: Path) -> str:
    """A path for a one-line message: control characters escaped, at most 300 characters."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(path))
    return text if len(text) <= 300 else text[:297] + "..."


_FIX = ("give the folder a sweep wrote (its --out) or the sweep.sqlite in it, or start a new "
        "sweep in an empty folder")


def _not_a_store(path: Path, why: str) -> NpusimError:
    return NpusimError(f"{_shown(path)} is not an npusim sweep store ({why}); {_FIX}")


def _damaged(path: Path, why: Any) -> NpusimError:
    """The error for a store SQLite or the record check refused (``why``); a file shorter than
    its header says is named as truncated."""
    why = _truncation(path) or " ".join(str(why).split())[:200]
    return NpusimError(f"the sweep store {_shown(path)} is damaged ({why}); re-run the sweep "
                       f"into a new --out folder (`sqlite3 FILE .recover` may save its rows)")


def store_file(path: str | Path, create: bool = False) -> Path:
    """The store file ``path`` names: ``path`` itself, or ``path/sweep.sqlite`` when ``path``
    is a folder. Refuses (one :class:`NpusimError`) a missing store unless ``create``, and
    anything that is not an SQLite file or is truncated, before SQLite opens it.
    """
    path = Path(path)
    try:
        if path.is_dir():
            path = path / Store.DEFAULT_NAME
            if not create and not path.exists():
                raise NpusimError(f"the folder {_shown(path.parent)} holds no "
                                  f"{Store.DEFAULT_NAME}; {_FIX}")
        st = path.stat()
    except FileNotFoundError:
        if create:
            return path
        raise NpusimError(f"no sweep store at {_shown(path)}: no such file or folder; "
                          f"{_FIX}") from None
    except (OSError, ValueError) as e:
        raise NpusimError(f"cannot read the sweep store {_shown(path)}: "
                          f"{getattr(e, 'strerror', None) or e}; check the path") from None
    if not stat.S_ISREG(st.st_mode):
        raise _not_a_store(path, "a folder" if stat.S_ISDIR(st.st_mode) else
                           "not a regular file")
    if st.st_size == 0:
        if create:
            return path
        raise _not_a_store(path, "an empty file")
    _check_header(path)
    why = _truncation(path)
    if why:
        raise _damaged(path, why)
    return path


def _check_header(path: Path) -> None:
    """Refuse a file without SQLite's magic (those 16 bytes never change, so the check is safe
    on a store a driver is writing)."""
    try:
        with path.open("rb") as f:
            head = f.read(100)
    except OSError as e:
        raise NpusimError(f"cannot read the sweep store {_shown(path)}: {e.strerror}; check "
                          f"its permissions") from None
    if len(head) < 100 or not head.startswith(_MAGIC):
        raise _not_a_store(path, "not an SQLite database" if not head.startswith(_MAGIC[:6])
                           or len(head) >= 100 else "a truncated SQLite header")


def _truncation(path: Path) -> str | None:
    """Why ``path`` is damaged if the file is shorter than its header says, else None.

    SQLite alone can miss a lost tail (zeros read back in an index page pass its quick
    check), so this is asked before SQLite opens the file. On a live store a checkpoint
    writes the new header before the file's last pages, but it holds those pages in a
    non-empty log until it is done and the file never shrinks; reading the header first, then
    the log's size, then the file's size (in that order) therefore never calls a live store
    truncated. With a non-empty log beside it (a driver killed in a checkpoint) the sizes do
    not decide: SQLite completes the file from the log.
    """
    try:
        with path.open("rb") as f:
            head = f.read(100)
        if len(head) < 100 or _has_log(path):
            return None
        size = path.stat().st_size
    except OSError:
        return None
    page = struct.unpack(">H", head[16:18])[0]
    page = 65536 if page == 1 else page
    pages = struct.unpack(">I", head[28:32])[0]
    if pages > 0 and head[24:28] == head[92:96] and size < page * pages:
        return f"truncated: {size:,} bytes of the {page * pages:,} its header gives"
    return None


def _has_log(path: Path) -> bool:
    """Whether a non-empty write-ahead log sits beside ``path`` (a writer may delete it at any
    moment, so a vanished log counts as none)."""
    try:
        return path.with_name(path.name + "-wal").stat().st_size > 0
    except OSError:
        return False


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    """An autocommit connection (each statement its own transaction) to ``path``."""
    try:
        if readonly:
            uri = "file:" + _uri_path(path) + "?mode=ro"
            con = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                                  check_same_thread=False)
        else:
            con = sqlite3.connect(str(path), timeout=_BUSY_TIMEOUT_S, isolation_level=None,
                                  check_same_thread=False)
    except sqlite3.Error as e:
        if readonly:
            raise NpusimError(f"cannot read the sweep store {_shown(path)}: {e}; check that "
                              f"it and its folder are readable") from None
        raise OutputError(f"cannot open the sweep store {_shown(path)}: {e}; check that its "
                          f"folder exists and is writable, or choose another --out") from None
    return con


def _uri_path(path: Path) -> str:
    """``path`` quoted for an SQLite ``file:`` URI (``?`` and ``#`` would end the path)."""
    from urllib.parse import quote
    return quote(str(path.absolute()), safe="/")


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _create(con: sqlite3.Connection) -> None:
    """The empty schema and its meta, in one transaction (a second writer racing to create
    the same store waits for the lock, then finds the tables there)."""
    from .. import __version__
    con.execute("BEGIN IMMEDIATE")
    try:
        if not _tables(con):
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    con.execute(stmt)
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            con.executemany("INSERT INTO meta (name, value) VALUES (?, ?)",
                            [("schema_version", str(SCHEMA_VERSION)), ("version", __version__),
                             ("created", now)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _check_schema(con: sqlite3.Connection, path: Path) -> None:
    """Refuse an SQLite file that is not a store of this schema version, or is damaged."""
    tables = _tables(con)
    if not {"meta", "points"} <= tables:
        raise _not_a_store(path, "an SQLite database without the sweep's tables" if tables
                           else "an empty SQLite database")
    if tuple(r[1] for r in con.execute("PRAGMA table_info(meta)")) != ("name", "value"):
        raise _not_a_store(path, "its meta table has other columns than a sweep's")
    row = con.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
    if row is None:
        raise _not_a_store(path, "its meta table has no schema_version")
    if row[0] != str(SCHEMA_VERSION):
        from .. import __version__
        raise NpusimError(f"the sweep store {_shown(path)} has schema version "
                          f"{str(row[0])[:40]!r}, and this npusim ({__version__}) reads version "
                          f"{SCHEMA_VERSION}; re-run the sweep into a new --out folder, or read "
                          f"it with the npusim that wrote it")
    columns = tuple(r[1] for r in con.execute("PRAGMA table_info(points)"))
    if columns != _POINT_COLUMNS:
        raise _not_a_store(path, "its points table has other columns than a sweep's")
    problems = [r[0] for r in con.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise _damaged(path, "; ".join(map(str, problems[:3])))


def _io_failure(e: sqlite3.OperationalError) -> bool:
    """Whether SQLite failed to reach the file (permissions, a lock, the disk), not because
    the file's content is wrong."""
    text = str(e).lower()
    return any(w in text for w in ("readonly", "read-only", "unable to open", "locked",
                                   "disk i/o", "full", "permission"))


def _read_error(path: Path, e: Exception) -> NpusimError:
    """The error for a failed read: the file out of reach, or its content damaged."""
    if isinstance(e, sqlite3.OperationalError) and _io_failure(e):
        return NpusimError(f"cannot read the sweep store {_shown(path)}: "
                           f"{' '.join(str(e).split())}; check that it is readable and that no "
                           f"other program holds it")
    return _damaged(path, e)


def _open(path: str | Path, create: bool) -> tuple[sqlite3.Connection, Path]:
    """A checked connection to the store at ``path`` (created when missing if ``create``)."""
    file = store_file(path, create=create)
    con = _connect(file, readonly=not create)
    try:
        if create:
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutputError(f"the sweep store {_shown(file)} cannot use SQLite's "
                                  f"write-ahead log (journal mode {mode}); put --out on a "
                                  f"local file system")
            con.execute("PRAGMA synchronous=FULL")
            if not _tables(con):
                _create(con)
        _check_schema(con, file)
    except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
        con.close()
        if "not a database" in str(e) or "encrypted" in str(e):
            raise _not_a_store(file, "not an SQLite database") from None
        if isinstance(e, sqlite3.OperationalError) and _io_failure(e):
            kind = OutputError if create else NpusimError
            raise kind(f"cannot {'open' if create else 'read'} the sweep store {_shown(file)}: "
                       f"{' '.join(str(e).split())}; check that the file and its folder are "
                       f"{'writable' if create else 'readable'} and that no other program "
                       f"holds it") from None
        raise _damaged(file, e) from None
    except BaseException:
        con.close()
        raise
    return con, file


# ----------------------------------------------------------------------------- rows

def _row_record(row: tuple, path: Path) -> dict:
    """The record one ``points`` row holds, checked; a row that does not parse or has the
    wrong shape means the file was damaged."""
    rowid, key, point, phase, workload, params, values, metrics, violations, feasible, error, \
        elapsed_s, worker = row
    try:
        record = {"key": key, "point": point, "phase": phase, "workload": workload,
                  "params": _column("params", params), "values": _column("values", values),
                  "metrics": _column("metrics", metrics),
                  "violations": _column("violations", violations), "feasible": feasible,
                  "error": error, "elapsed_s": elapsed_s, "worker": worker}
        if feasible not in (0, 1) or isinstance(feasible, float):
            raise _Shape(f"column feasible holds {feasible!r}")
        record["feasible"] = bool(feasible)
        return _checked(record)
    except (TypeError, ValueError, _Shape) as e:
        raise _damaged(path, f"row {rowid}: {e}") from None


def _column(name: str, text: Any) -> Any:
    """The value of one JSON column, or :class:`_Shape` naming the column."""
    if not isinstance(text, str):
        raise _Shape(f"column {name} holds {type(text).__name__}, not JSON text")
    try:
        return loads(text)
    except (ValueError, RecursionError) as e:
        raise _Shape(f"column {name} is not valid JSON ({str(e)[:80]})") from None


class Store:
    """The results store of one sweep: open or create ``path`` (a file, or a folder holding
    :attr:`DEFAULT_NAME`). One writer (the sweep's driver); any number of readers may use
    :func:`load` on the same file meanwhile.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> r = {"key": "k1", "point": 0, "phase": "sample", "workload": "decode",
    ...      "params": {"cores.sram": "64 MiB"}, "values": {"cores.sram": 67108864.0},
    ...      "metrics": {"latency_s": 0.002, "power_w": float("nan")}, "violations": [],
    ...      "feasible": True, "error": None, "elapsed_s": 0.1, "worker": "local-0"}
    >>> with Store(d / "sweep.sqlite") as s:
    ...     s.put(r), s.put(r), s.keys()
    (True, False, {'k1'})
    >>> load(d)[0]["power_w"]
    nan
    """

    DEFAULT_NAME = "sweep.sqlite"

    def __init__(self, path: str | Path):
        self._con, self.path = _open(path, create=True)

    def _live(self) -> sqlite3.Connection:
        if self._con is None:
            raise NpusimError(f"the sweep store {_shown(self.path)} is closed")
        return self._con

    def _write(self, sql: str, args: tuple) -> sqlite3.Cursor:
        """One statement as its own committed transaction; a failure to write is one
        :class:`OutputError` naming the file."""
        try:
            return self._live().execute(sql, args)
        except sqlite3.Error as e:
            raise OutputError(f"cannot write the sweep store {_shown(self.path)}: "
                              f"{' '.join(str(e).split())}; check the disk and that no other "
                              f"program holds the file") from None

    def put(self, record: dict) -> bool:
        """Store ``record`` (the contract's shape, checked) and commit at once; False if a
        record with its key is there already (the stored one is kept, never a second row)."""
        from .. import __version__
        r = checked_record(record)
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        cur = self._write(_INSERT, (r["key"], r["point"], r["phase"], r["workload"],
                                    dumps(r["params"]), dumps(r["values"]), dumps(r["metrics"]),
                                    dumps(r["violations"]), int(r["feasible"]), r["error"],
                                    r["elapsed_s"], r["worker"], __version__, now))
        return cur.rowcount == 1

    def relabel(self, record: dict) -> None:
        """Give the stored record with ``record``'s key its ``point``, ``phase``, ``params`` and
        ``values`` (a run of another spec that finds the same design and workload stored
        shows it as its own point; the figures are the same, they depend on the key only)."""
        r = checked_record(record)
        self._write('UPDATE points SET point = ?, phase = ?, params = ?, "values" = ? '
                    'WHERE key = ?', (r["point"], r["phase"], dumps(r["params"]),
                                      dumps(r["values"]), r["key"]))

    def keys(self) -> set[str]:
        """The keys of every stored record (a re-run skips these)."""
        return {r[0] for r in self._read("SELECT key FROM points")}

    def records(self) -> list[dict]:
        """Every stored record in the contract's shape, in the order they were put."""
        return [_row_record(row, self.path) for row in self._read(_SELECT)]

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            return self._live().execute(sql, args).fetchall()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
            raise _read_error(self.path, e) from None

    def set_meta(self, name: str, text: str) -> None:
        """Set the meta entry ``name`` (``spec``, ``spec_source``, ...) to ``text``."""
        try:
            _text(name, "a meta name")
            _text(text, f"meta {name!r}")
        except _Shape as e:
            raise NpusimError(f"bad meta entry for the sweep store: {e} (a bug in the caller "
                              f"of Store.set_meta)") from None
        self._write("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, text))

    def get_meta(self, name: str) -> str | None:
        """The meta entry ``name``, or None when it was never set."""
        rows = self._read("SELECT value FROM meta WHERE name=?", (name,))
        return str(rows[0][0]) if rows else None

    def close(self) -> None:
        """Close the file (idempotent); every put is already committed."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------- load, export

def read_records(path: str | Path) -> tuple[list[dict], dict[str, str]]:
    """The records (in insertion order) and the meta entries of the store at ``path``, read
    through a read-only connection (safe on a store a sweep is still writing)."""
    con, file = _open(path, create=False)
    try:
        rows = con.execute(_SELECT).fetchall()
        meta = dict(con.execute("SELECT name, value FROM meta").fetchall())
    except (sqlite3.DatabaseError, UnicodeDecodeError) as e:
        raise _read_error(file, e) from None
    finally:
        con.close()
    return [_row_record(row, file) for row in rows], {str(k): str(v) for k, v in meta.items()}


def read_meta(path: str | Path) -> dict[str, str]:
    """The meta entries (``spec``, ``spec_source``, ``version``, ``created``, ...) of the store
    at ``path``, read-only (a report on a live sweep need not open it as a writer)."""
    return read_records(path)[1]


def flat_columns(records: list[dict]) -> list[str]:
    """The flat rows' columns: the fixed ones, each field path (first seen first), then each
    metric name (first seen first)."""
    fields: dict[str, None] = {}
    metrics: dict[str, None] = {}
    for r in records:
        fields.update(dict.fromkeys(r["values"]))
        metrics.update(dict.fromkeys(r["metrics"]))
    return [*FLAT_COLUMNS, *fields, *metrics]


def flat_row(record: dict, columns: list[str]) -> dict:
    """One record as a flat row over ``columns``; a field or metric it lacks is None."""
    row = {c: record[c] for c in FLAT_COLUMNS if c != "violations"}
    row["violations"] = "; ".join(record["violations"])
    extra = {**record["values"], **record["metrics"]}
    return {c: row[c] if c in row else extra.get(c) for c in columns}


def flat_rows(records: list[dict]) -> list[dict]:
    """Records as the flat rows :func:`load` gives (a report that also needs the records reads
    the store once with :func:`read_records` and flattens them here)."""
    columns = flat_columns(records)
    return [flat_row(r, columns) for r in records]


def load(path: str | Path, as_: str = "records"):
    """The store at ``path`` (its file, or the folder holding ``sweep.sqlite``) as flat rows,
    one per record in insertion order: ``key, point, phase, workload, feasible, error,
    violations`` ("; "-joined), ``elapsed_s, worker``, then one column per field path (its
    value) and one per metric name; what a record lacks is None (NaN in a DataFrame).

    ``as_="records"`` gives a list of dicts; ``as_="dataframe"`` a pandas DataFrame (the
    optional extra ``sweep``), metric columns as float64.
    """
    if as_ not in ("records", "dataframe"):
        raise NpusimError(f"load(as_={str(as_)[:40]!r}): give as_='records' or "
                          f"as_='dataframe'")
    pd = _optional("pandas", "a DataFrame") if as_ == "dataframe" else None
    records, _ = read_records(path)
    rows = flat_rows(records)
    columns = flat_columns(records)
    if pd is None:
        return rows
    df = pd.DataFrame(rows, columns=columns)
    for c in _metric_columns(records):
        df[c] = df[c].astype("float64")
    return df


def _metric_columns(records: list[dict]) -> list[str]:
    return list(dict.fromkeys(m for r in records for m in r["metrics"]))


def _optional(module: str, what: str):
    """The optional package ``module``, or one error naming the extra that installs it."""
    try:
        return import_module(module)
    except ImportError:
        raise NpusimError(f"{what} needs the optional package {module}, which is not "
                          f"installed; install it with {_INSTALL}") from None


_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def export(path: str | Path, out: str | Path, fmt: str | None = None) -> Path:
    """Write the flat rows of the store at ``path`` to ``out`` as CSV (the stdlib's csv
    module, every cell spreadsheet-safe) or Parquet (pyarrow, the optional extra ``sweep``);
    return the file written.

    ``fmt`` ("csv" or "parquet") wins; without it the suffix of ``out`` chooses (``.csv``,
    ``.parquet``, ``.pq``; no suffix means CSV). When ``out`` is a folder, the file is
    ``out/sweep.csv`` or ``out/sweep.parquet``.
    """
    out = Path(out)
    fmt = _format(out, fmt)
    if out.is_dir():
        out = out / f"sweep.{fmt}"
    pa = _optional("pyarrow", "Parquet export") if fmt == "parquet" else None
    records, _ = read_records(path)
    columns = flat_columns(records)
    rows = [flat_row(r, columns) for r in records]
    if pa is None:
        return _write_csv(out, columns, rows)
    return _write_parquet(pa, out, columns, rows, set(_metric_columns(records)))


def _write_csv(out: Path, columns: list[str], rows: list[dict]) -> Path:
    """The flat rows as CSV, every cell spreadsheet-safe, numbers in shortest round-trip form.

    Lines end in CRLF (RFC 4180, the csv module's default) rather than the ``\n`` of
    :func:`npusim.files.write_csv`: with ``\n`` as the line end the csv module leaves a bare
    ``\r`` in a cell unquoted, and a reader then splits the row there. Any text a user or a
    failing workload wrote can reach these cells (error messages, workload names).
    """
    import csv

    from ..files import cannot_write, spreadsheet_safe
    try:
        with out.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(columns)
            for r in rows:
                w.writerow([spreadsheet_safe(r[c]) for c in columns])
    except (OSError, ValueError) as e:
        raise cannot_write(out, "the sweep export", e) from None
    return out


def _format(out: Path, fmt: str | None) -> str:
    """The export format: ``fmt`` if given, else from the suffix of ``out``."""
    if fmt is not None:
        if str(fmt).lower() not in ("csv", "parquet"):
            raise NpusimError(f"unknown export format {str(fmt)[:40]!r}; give csv or parquet")
        return str(fmt).lower()
    suffix = out.suffix.lower()
    if suffix in _FORMATS:
        return _FORMATS[suffix]
    if suffix and not out.is_dir():
        raise NpusimError(f"unknown export format {suffix[:40]!r} of {_shown(out)}; name the "
                          f"file .csv or .parquet, or give the format (--format csv|parquet)")
    return "csv"


def _write_parquet(pa, out: Path, columns: list[str], rows: list[dict],
                   metrics: set[str]) -> Path:
    """The flat rows as one Parquet table: metric columns float64, a field column float64 if
    every value is a number and text otherwise."""
    pq = import_module("pyarrow.parquet")
    fixed = {"key": pa.string(), "point": pa.int64(), "phase": pa.string(),
             "workload": pa.string(), "feasible": pa.bool_(), "error": pa.string(),
             "violations": pa.string(), "elapsed_s": pa.float64(), "worker": pa.string()}
    arrays = {}
    for c in columns:
        values = [r[c] for r in rows]
        kind = fixed.get(c)
        if kind is None and c not in metrics and any(isinstance(v, str) for v in values):
            kind = pa.string()
            values = [None if v is None else str(v) for v in values]
        arrays[c] = pa.array(values, type=kind or pa.float64())
    try:
        pq.write_table(pa.table(arrays), out)
    except (OSError, ValueError) as e:
        from ..files import cannot_write
        raise cannot_write(out, "the sweep export", e) from None
    return out
