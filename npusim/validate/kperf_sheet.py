"""Validation against a user's measured K-Perf sheet.

A measured sheet has the shape of ``npusim kperf``'s own output (:mod:`npusim.report.kperf`): one
row per serving scenario (input length, output length, concurrent users, optionally precision,
chips and model) and one column per measured metric, its unit in the header (``TTFT p99 (ms)``,
``decode (tok/s)``, ``avg power (W)``) or, as in ``kperf.csv``, as the suffix of an SI field name
(``ttft_p99_s``). :func:`validate_kperf` reads it (``.xlsx`` or ``.csv``), simulates the same
scenarios with :func:`npusim.workloads.kperf.kperf` and reports, per cell and metric, the
simulated and measured values and the signed error ``simulated / measured - 1``, with the mean
absolute percentage error (MAPE) and the worst cell per metric.

Header matching ignores case, spaces, underscores and hyphens. A column whose name npusim does
not know is ignored (and listed in the report); a known column with an unknown unit, a cell that
is not a number, a missing required column, two rows of the same scenario, or an empty sheet is
one :class:`~npusim.errors.NpusimError` naming the file, the sheet, the row and the column.

openpyxl (``.xlsx``) and matplotlib (graphs) are the optional extra ``reports`` and are imported
inside the functions that need them. The graphs are drawn by :mod:`npusim.report.kperf_validation`.
"""
from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Sequence

from ..errors import NpusimError
from ..files import csv_rows, make_folder, read_bytes, read_text, write_csv, write_text
from .core import MAX_CHIPS, MAX_TOKENS, MAX_USERS

REPORT_MD = "validation_report.md"
REPORT_CSV = "validation.csv"
PNG_DECODE = "decode_vs_users.png"
PNG_TTFT = "ttft_vs_input.png"
PNG_ERROR = "error_per_metric.png"
DEFAULT_PRECISION = "bf16"
# Sheets of npusim's own workbook that hold no scenarios.
NOT_SCENARIO_SHEETS = frozenset({"summary", "settings"})


@dataclass(frozen=True)
class Metric:
    """A metric a measured sheet may hold.

    Attributes
    ----------
    key : str
        The field of a serving summary (SI units).
    kind : str
        Its quantity: ``time``, ``rate``, ``power``, ``energy``, ``per_energy``, ``fraction``;
        the units a header may give are those of :data:`UNITS` for the kind.
    label : str
        How reports name it, with the display unit.
    shown : float
        Factor from the SI value to the display unit.
    """

    key: str
    kind: str
    label: str
    shown: float = 1.0


METRICS = (
    Metric("ttft_mean_s", "time", "TTFT mean (ms)", 1e3),
    Metric("ttft_p50_s", "time", "TTFT p50 (ms)", 1e3),
    Metric("ttft_p99_s", "time", "TTFT p99 (ms)", 1e3),
    Metric("tpot_mean_s", "time", "TPOT mean (ms)", 1e3),
    Metric("tpot_p50_s", "time", "TPOT p50 (ms)", 1e3),
    Metric("tpot_p99_s", "time", "TPOT p99 (ms)", 1e3),
    Metric("e2e_mean_s", "time", "E2E mean (s)"),
    Metric("e2e_p50_s", "time", "E2E p50 (s)"),
    Metric("e2e_p99_s", "time", "E2E p99 (s)"),
    Metric("prefill_tok_s", "rate", "prefill (tok/s)"),
    Metric("prefill_tok_s_per_user", "rate", "prefill per user (tok/s)"),
    Metric("decode_tok_s", "rate", "decode (tok/s)"),
    Metric("decode_tok_s_per_user", "rate", "decode per user (tok/s)"),
    Metric("decode_tok_s_per_chip", "rate", "decode per chip (tok/s)"),
    Metric("avg_power_w", "power", "avg power (W)"),
    Metric("energy_per_token_j", "energy", "energy per token (mJ)", 1e3),
    Metric("tokens_per_j", "per_energy", "tokens/J"),
    Metric("kv_util_mean", "fraction", "KV util mean (%)", 100.0),
    Metric("kv_util_peak", "fraction", "KV util peak (%)", 100.0),
)
METRIC_BY_KEY = MappingProxyType({m.key: m for m in METRICS})

# Units a header may give, per kind, written as normalised (lower case, no spaces or
# underscores): factor to SI. "mj" is the millijoule: nobody reports energy per token in MJ.
UNITS = MappingProxyType({
    "time": {"s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
             "ms": 1e-3, "msec": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3,
             "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "usec": 1e-6, "microseconds": 1e-6},
    "rate": {"tok/s": 1.0, "tokens/s": 1.0, "token/s": 1.0, "toks": 1.0, "tok/sec": 1.0,
             "tokens/sec": 1.0, "tps": 1.0, "tokenspers": 1.0, "tokpers": 1.0},
    "power": {"w": 1.0, "watt": 1.0, "watts": 1.0, "kw": 1e3},
    "energy": {"j": 1.0, "joule": 1.0, "joules": 1.0, "mj": 1e-3, "j/tok": 1.0,
               "j/token": 1.0, "mj/tok": 1e-3, "mj/token": 1e-3},
    "per_energy": {"tok/j": 1.0, "tokens/j": 1.0, "token/j": 1.0, "1/j": 1.0},
    "fraction": {"%": 1e-2, "percent": 1e-2, "fraction": 1.0},
    "length": {"tok": 1.0, "tokens": 1.0, "token": 1.0},
    "count": {"users": 1.0, "user": 1.0, "chips": 1.0, "devices": 1.0, "requests": 1.0},
    "text": {},
})
# A header with no unit is read in SI for these kinds; a time or an energy needs its unit
# written (ms and s, J and mJ are all common, and a wrong guess is a factor of 1,000).
IMPLICIT_UNIT = frozenset({"rate", "power", "per_energy", "fraction", "length", "count", "text"})

# Scenario columns: field, kind, accepted names (normalised).
SCENARIO_NAMES = (
    ("input_len", "length", ("input", "inputlen", "inputlength", "inputtokens", "inputtok",
                             "isl", "inputseqlen", "prompt", "promptlen", "promptlength",
                             "prompttokens")),
    ("output_len", "length", ("output", "outputlen", "outputlength", "outputtokens",
                              "outputtok", "osl", "outputseqlen", "generationlength",
                              "generatedtokens")),
    ("users", "count", ("users", "user", "concurrency", "concurrentusers", "maxconcurrency",
                        "numusers", "concurrentrequests", "clients")),
    ("precision", "text", ("precision", "dtype", "quantization", "quantisation")),
    ("model", "text", ("model", "modelname")),
    ("chips", "count", ("chips", "numchips", "devices", "numdevices", "gpus", "numgpus",
                        "npus", "numnpus")),
)
REQUIRED = ("input_len", "output_len", "users")
# The largest scenario a sheet may ask for: the measured data's bounds (assumptions, see there).
MOST = MappingProxyType({"input_len": MAX_TOKENS, "output_len": MAX_TOKENS, "users": MAX_USERS,
                         "chips": MAX_CHIPS})

_STATS = {"mean": ("", "mean", "avg", "average"), "p50": ("p50", "median"), "p99": ("p99",)}
_LATENCY = {"ttft": ("ttft", "timetofirsttoken"),
            "tpot": ("tpot", "timeperoutputtoken", "itl", "intertokenlatency"),
            "e2e": ("e2e", "e2elatency", "endtoend", "endtoendlatency")}
_RATES = {"prefill_tok_s": ("prefill", "prefillthroughput", "prefilltokens", "inputthroughput"),
          "decode_tok_s": ("decode", "decodethroughput", "decodetokens", "outputthroughput",
                           "generationthroughput")}
_OTHER = {"decode_tok_s_per_chip": ("decodeperchip", "decodepergpu", "decodepernpu",
                                     "decodeperdevice", "outputthroughputpergpu",
                                     "outputthroughputperchip", "decodethroughputperchip"),
          "avg_power_w": ("avgpower", "averagepower", "meanpower", "power"),
          "energy_per_token_j": ("energypertoken", "energy/token", "energy/tok",
                                 "energypertok"),
          "tokens_per_j": ("tokens/j", "tokensperj", "tokensperjoule", "tok/j", "tokperj",
                           "tokenspj"),
          "kv_util_mean": ("kvutilmean", "kvutil", "kvcacheusage", "kvcacheutil",
                           "kvutilisation", "kvutilization"),
          "kv_util_peak": ("kvutilpeak", "peakkvutil", "kvcacheusagepeak")}


def normalise(text: str) -> str:
    """A header or unit as matched: lower case, no spaces, underscores or hyphens.

    Examples
    --------
    >>> normalise(" TTFT_p99 ms"), normalise("Decode Tok-s")
    ('ttftp99ms', 'decodetoks')
    """
    return re.sub(r"[\s_\-]+", "", str(text)).lower()


def _alias_table() -> dict[str, tuple[str, str]]:
    """Normalised column name -> (field, kind), every metric and scenario column."""
    out: dict[str, tuple[str, str]] = {}

    def add(name: str, key: str, kind: str) -> None:
        if out.get(name, (key, kind)) != (key, kind):
            raise AssertionError(f"alias {name!r} is given twice")  # a bug in the table
        out[name] = (key, kind)

    for key, kind, names in SCENARIO_NAMES:
        for n in names:
            add(n, key, kind)
    for short, names in _LATENCY.items():
        for stat, words in _STATS.items():
            for n in names:
                for w in words:
                    add(n + w, f"{short}_{stat}_s", "time")
                    if w:
                        add(w + n, f"{short}_{stat}_s", "time")
    for key, names in _RATES.items():
        for n in names:
            add(n, key, "rate")
            for tail in ("peruser", "toksperuser", "throughputperuser"):
                add(n + tail, key + "_per_user", "rate")
    for key, names in _OTHER.items():
        for n in names:
            add(n, key, METRIC_BY_KEY[key].kind)
    for m in METRICS:   # the SI field names of kperf.csv, whatever their suffix says
        add(normalise(m.key), m.key, m.kind)
    return out


ALIASES = MappingProxyType(_alias_table())
_UNIT_IN_HEADER = re.compile(r"^(?P<name>.*?)\s*[\(\[](?P<unit>[^\)\]]*)[\)\]]\s*$")


class _HeaderUnitError(ValueError):
    """A known column with a unit its kind does not have (message: what to write)."""


def parse_header(text: Any) -> tuple[str, float] | None:
    """The field a header names and the factor from its unit to SI, or None if unknown.

    The unit is either in brackets (``TTFT p99 (ms)``, ``power [kW]``) or, with no brackets,
    the tail of the name (``ttft_p99_ms``, ``decode_tok_s``, ``avg_power_w``).

    Raises
    ------
    ValueError
        A known column whose unit is not one of its kind's (the message lists them), or a time
        or energy with no unit at all.

    Examples
    --------
    >>> parse_header("TTFT p99 (ms)"), parse_header("Avg Power [kW]")
    (('ttft_p99_s', 0.001), ('avg_power_w', 1000.0))
    >>> parse_header("decode_tok_s"), parse_header("tpot_mean_us"), parse_header("queue (s)")
    (('decode_tok_s', 1.0), ('tpot_mean_s', 1e-06), None)
    """
    if text is None:
        return None
    header = str(text).strip()
    m = _UNIT_IN_HEADER.match(header)
    if m:
        name, unit = normalise(m["name"]), normalise(m["unit"])
        if name not in ALIASES:
            return None
        key, kind = ALIASES[name]
        if unit == "" and kind in IMPLICIT_UNIT:
            return key, 1.0
        if unit not in UNITS[kind]:
            raise _HeaderUnitError(_unit_help(kind, m["unit"].strip()))
        return key, UNITS[kind][unit]
    name = normalise(header)
    if name in ALIASES:
        key, kind = ALIASES[name]
        if name == normalise(key) and key in METRIC_BY_KEY:
            return key, 1.0                      # kperf.csv's SI field names
        if kind not in IMPLICIT_UNIT:
            raise _HeaderUnitError(f"it has no unit; write it in the header, e.g. "
                                   f"'{header} ({_example_unit(kind)})'")
        return key, 1.0
    for unit_kind, units in UNITS.items():
        for unit, factor in units.items():
            stem = name[:-len(unit)] if name.endswith(unit) else None
            if stem and stem in ALIASES and ALIASES[stem][1] == unit_kind:
                return ALIASES[stem][0], factor
    return None


def _example_unit(kind: str) -> str:
    return {"time": "ms", "energy": "J"}.get(kind, next(iter(UNITS[kind]), ""))


def _unit_help(kind: str, unit: str) -> str:
    shown = ", ".join(sorted({u for u in UNITS[kind] if u != "tokenspers"}))
    return (f"the unit {unit!r} is not one npusim reads for a {kind.replace('_', ' ')}; "
            f"use one of: {shown}")


# --- reading ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class MeasuredRow:
    """One measured scenario of a sheet (values in SI units).

    ``chips`` is None when the sheet has no chips column; ``model`` is "" without a model
    column.
    """

    sheet: str
    row: int
    precision: str
    input_len: int
    output_len: int
    users: int
    values: dict
    chips: int | None = None
    model: str = ""


@dataclass
class MeasuredSheet:
    """What :func:`read_kperf_sheet` found: the rows, and the columns it did not use."""

    path: Path
    sheets: list[str]
    rows: list[MeasuredRow]
    ignored: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def metrics(self) -> list[str]:
        """The metrics with at least one measured cell, in :data:`METRICS` order."""
        have = {k for r in self.rows for k in r.values}
        return [m.key for m in METRICS if m.key in have]


def read_kperf_sheet(path: str | Path, sheet_name: str | None = None) -> MeasuredSheet:
    """Read a measured K-Perf sheet from ``.xlsx`` (every scenario sheet, or ``sheet_name``)
    or ``.csv``.

    In a workbook, ``summary`` and ``settings`` sheets are skipped, and so is any sheet with
    none of the scenario columns (input, output, users); a sheet with some of them must have
    all. Precision comes from a precision column, else from a sheet name ending in a
    precision (npusim names its sheets ``<model> <precision>``), else ``bf16``.

    Raises
    ------
    NpusimError
        Naming the file, sheet, row and column: see the module's description.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        if sheet_name is not None:
            raise NpusimError(f"{path.name}: a CSV file has no sheets; drop the sheet name "
                              f"({sheet_name!r}) or give an .xlsx workbook")
        tables = [(path.name, _csv_rows(path))]
    elif suffix in (".xlsx", ".xlsm"):
        tables = _xlsx_tables(path, sheet_name)
    else:
        raise NpusimError(f"measured K-Perf sheet {path.name}: {path.suffix or 'no suffix'} is "
                          f"not a format npusim reads; save it as .xlsx or .csv")
    out = MeasuredSheet(path=path, sheets=[], rows=[])
    for name, rows in tables:
        where = _Where(path.name, name, suffix == ".csv")
        parsed = _parse_table(where, rows, required=sheet_name is not None or len(tables) == 1)
        if isinstance(parsed, str):
            out.skipped[name] = parsed
            continue
        found, ignored = parsed
        out.sheets.append(name)
        out.rows += found
        out.ignored[name] = ignored
    if not out.rows:
        _raise_nothing(path, tables, out.skipped)
    _check_duplicates(path.name, out.rows)
    return out


@dataclass(frozen=True)
class _Where:
    file: str
    sheet: str
    csv: bool

    def at(self, row: int | None = None, column: str | None = None,
           index: int | None = None) -> str:
        place = f"{self.file}" if self.csv else f"{self.file}, sheet {self.sheet!r}"
        if row is not None:
            place += f", row {row}"
        if column is not None:
            col = _column_name(index, self.csv) if index is not None else ""
            place += f", column {column!r}" + (f" ({col})" if col else "")
        return place


def _column_name(index: int, is_csv: bool) -> str:
    """A spreadsheet's column letter (A, ..., Z, AA, ...) or a CSV's column number."""
    if is_csv:
        return f"column {index + 1}"
    letters, n = "", index + 1
    while n:
        n, r = divmod(n - 1, 26)
        letters = chr(65 + r) + letters
    return letters


# Bounds of a workbook npusim opens (assumptions: `npusim kperf`'s own workbook is tens of KB
# unpacked, with a few hundred rows and about 40 columns; a real measured sheet is of that
# order). They keep a zip bomb, or a sheet whose one cell sits at row 1,048,576, from filling
# memory or running for minutes.
MAX_UNPACKED_BYTES = 64 * 2**20
MAX_ZIP_MEMBERS = 10_000
MAX_SHEET_ROWS = 100_000
MAX_SHEET_COLUMNS = 1_000
SHEET_WHAT, SHEET_FLAG = "the measured K-Perf sheet", "--kperf"


def _csv_rows(path: Path) -> list[tuple[int, list[Any]]]:
    text = read_text(path, SHEET_WHAT, SHEET_FLAG)
    return csv_rows(text, path, SHEET_WHAT, SHEET_FLAG)


def _unzip_check(path: Path, data: bytes) -> None:
    """Refuse what is not a zip archive, or unpacks to more than :data:`MAX_UNPACKED_BYTES`
    (the declared sizes bound what :mod:`zipfile` will inflate)."""
    import io
    import zipfile
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = z.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError):
        raise NpusimError(f"cannot read {path.name} as an Excel workbook: it is not a zip "
                          f"archive, as every .xlsx file is; save it again as .xlsx or as "
                          f".csv") from None
    unpacked = sum(m.file_size for m in members)
    if len(members) > MAX_ZIP_MEMBERS or unpacked > MAX_UNPACKED_BYTES:
        raise NpusimError(f"{path.name}: the workbook unpacks to {unpacked:,} bytes in "
                          f"{len(members):,} parts, more than the {MAX_UNPACKED_BYTES:,} bytes "
                          f"npusim reads from a measured sheet; save only the scenario sheets, "
                          f"or as .csv")


def _xlsx_tables(path: Path, sheet_name: str | None) -> list[tuple[str, list]]:
    import io
    try:
        from openpyxl import load_workbook
    except ImportError:
        raise NpusimError("reading an .xlsx sheet needs openpyxl, which comes with npusim's "
                          "optional extra 'reports': pip install 'npusim[reports]' (or save "
                          "the sheet as .csv)") from None
    data = read_bytes(path, SHEET_WHAT, SHEET_FLAG)
    _unzip_check(path, data)
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises zip, XML and its own errors on a bad file
        raise NpusimError(f"cannot read {path.name} as an Excel workbook "
                          f"({type(e).__name__}: {_one_line(e)}); save it again as .xlsx or as "
                          f".csv") from None
    try:
        names = list(wb.sheetnames)
        if sheet_name is not None:
            if sheet_name not in names:
                raise NpusimError(f"{path.name}: no sheet {sheet_name!r}; its sheets are "
                                  f"{', '.join(map(repr, names))}")
            chosen = [sheet_name]
        else:
            chosen = [n for n in names if n.strip().lower() not in NOT_SCENARIO_SHEETS]
            if not chosen:
                raise NpusimError(f"{path.name}: no scenario sheet (its sheets are "
                                  f"{', '.join(map(repr, names))}); add one with a row per "
                                  f"scenario, as `npusim kperf` writes")
        return [(n, _sheet_rows(path, wb[n])) for n in chosen]
    except NpusimError:
        raise
    except Exception as e:  # a sheet's XML is parsed only now, in read-only mode
        raise NpusimError(f"cannot read {path.name} as an Excel workbook "
                          f"({type(e).__name__}: {_one_line(e)}); save it again as .xlsx or as "
                          f".csv") from None
    finally:
        wb.close()


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:200] or "unreadable"


def _sheet_rows(path: Path, ws) -> list[tuple[int, list[Any]]]:
    """The rows of a read-only worksheet, within :data:`MAX_SHEET_ROWS` and
    :data:`MAX_SHEET_COLUMNS` (the sheet's own stated dimension is not trusted: a row is as
    wide as its last cell, and missing rows are skipped)."""
    ws.reset_dimensions()
    out: list[tuple[int, list[Any]]] = []
    for i, row in enumerate(ws.iter_rows(values_only=True), 1):
        if i > MAX_SHEET_ROWS:
            raise NpusimError(f"{path.name}, sheet {ws.title!r}: more than {MAX_SHEET_ROWS:,} "
                              f"rows; a measured sheet holds a row per scenario")
        cells = list(row)
        while cells and _blank(cells[-1]):
            cells.pop()
        if len(cells) > MAX_SHEET_COLUMNS:
            raise NpusimError(f"{path.name}, sheet {ws.title!r}, row {i}: a value in column "
                              f"{_column_name(len(cells) - 1, False)}, past the "
                              f"{MAX_SHEET_COLUMNS:,} columns npusim reads; delete it")
        if cells:
            out.append((i, cells))
    return out


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _parse_table(where: _Where, rows: list[tuple[int, list[Any]]], required: bool):
    """(rows, ignored headers) of one sheet, or why the sheet was skipped (a string)."""
    rows = [(n, r) for n, r in rows if not all(_blank(v) for v in r)]
    if not rows:
        if required:
            raise NpusimError(f"{where.at()}: the sheet is empty; it needs a header row (input, "
                              f"output, users and the measured metrics) and a row per "
                              f"scenario")
        return "empty"
    head_row, header = rows[0]
    columns, ignored = _columns(where, head_row, header)
    missing = [k for k in REQUIRED if k not in columns]
    if missing:
        found = ", ".join(repr(str(h).strip()) for h in header if not _blank(h)) or "none"
        if len(missing) == len(REQUIRED) and not required:
            return f"no scenario columns (found {found})"
        need = {"input_len": "input (tok)", "output_len": "output (tok)", "users": "users"}
        raise NpusimError(
            f"{where.at(head_row)}: missing the required column"
            f"{'s' if len(missing) > 1 else ''} {', '.join(repr(need[k]) for k in missing)} "
            f"(the columns found: {found}). Name them as `npusim kperf` does: 'input (tok)', "
            f"'output (tok)', 'users' (or concurrency)")
    if not any(k in METRIC_BY_KEY for k in columns):
        known = ", ".join(repr(m.label) for m in METRICS[:3] + METRICS[9:14])
        raise NpusimError(f"{where.at(head_row)}: no measured metric column; add at least one, "
                          f"e.g. {known}")
    if not rows[1:]:
        raise NpusimError(f"{where.at(head_row)}: the sheet has a header but no scenario rows")
    sheet_precision = _precision_from_name(where.sheet)
    return [_row(where, n, r, columns, sheet_precision) for n, r in rows[1:]], ignored


def _columns(where: _Where, head_row: int, header: list[Any]):
    """{field: (index, header text, factor)} and the headers not used."""
    columns: dict[str, tuple[int, str, float]] = {}
    ignored: list[str] = []
    for j, h in enumerate(header):
        if _blank(h):
            continue
        text = str(h).strip()
        try:
            hit = parse_header(text)
        except _HeaderUnitError as e:
            raise NpusimError(f"{where.at(head_row, text, j)}: {e}") from None
        if hit is None:
            ignored.append(text)
            continue
        key, factor = hit
        if key in columns:
            first = columns[key][1]
            raise NpusimError(f"{where.at(head_row, text, j)}: the same quantity as column "
                              f"{first!r}; keep one of them")
        columns[key] = (j, text, factor)
    return columns, ignored


def _precision_from_name(sheet: str) -> str | None:
    from ..workloads.stepcost import PRECISIONS
    last = sheet.strip().split()[-1].lower() if sheet.strip() else ""
    return last if last in PRECISIONS else None


def _row(where: _Where, n: int, cells: list[Any], columns: dict, sheet_precision):
    def cell(key: str) -> tuple[Any, str, int]:
        j, text, _ = columns[key]
        return (cells[j] if j < len(cells) else None), text, j

    ints = {k: _whole(where, n, *cell(k), most=MOST[k]) for k in REQUIRED}
    chips = (_whole(where, n, *cell("chips"), optional=True, most=MOST["chips"])
             if "chips" in columns else None)
    precision = sheet_precision or DEFAULT_PRECISION
    if "precision" in columns:
        v, text, j = cell("precision")
        if not _blank(v):
            precision = _precision(where, n, str(v), text, j)
    model = ""
    if "model" in columns and not _blank(cell("model")[0]):
        model = str(cell("model")[0]).strip()
    values = {}
    for key, (j, text, factor) in columns.items():
        if key in METRIC_BY_KEY:
            v = _number(where, n, cells[j] if j < len(cells) else None, text, j)
            if v is not None:
                values[key] = v * factor
    return MeasuredRow(sheet=where.sheet, row=n, precision=precision, chips=chips,
                       model=model, values=values, **ints)


def _number(where: _Where, n: int, v: Any, text: str, j: int) -> float | None:
    """A cell's number, None when blank."""
    if _blank(v):
        return None
    x: float | None = None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        x = float(v)
    elif isinstance(v, str):
        s = v.strip()
        if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?", s):
            s = s.replace(",", "")          # thousands separators, as spreadsheets show them
        try:
            x = float(s)
        except ValueError:
            x = None
    if x is None or not math.isfinite(x):
        raise NpusimError(f"{where.at(n, text, j)}: {v!r} is not a number; write a finite "
                          f"number in the header's unit, or leave the cell empty if it was "
                          f"not measured")
    if x < 0:
        raise NpusimError(f"{where.at(n, text, j)}: {v!r} is negative; a measured value is "
                          f"at least 0")
    return x


def _whole(where: _Where, n: int, v: Any, text: str, j: int, optional: bool = False,
           most: int | None = None):
    if _blank(v):
        if optional:
            return None
        raise NpusimError(f"{where.at(n, text, j)}: the cell is empty; every scenario row needs "
                          f"its input length, output length and users")
    x = _number(where, n, v, text, j)
    if x is None or x < 1 or x != int(x):
        raise NpusimError(f"{where.at(n, text, j)}: {v!r} is not a whole number of at least 1")
    if most is not None and x > most:
        raise NpusimError(f"{where.at(n, text, j)}: {v!r} is more than {most:,}; check the "
                          f"value")
    return int(x)


def _precision(where: _Where, n: int, v: str, text: str, j: int) -> str:
    from ..workloads.stepcost import PRECISIONS
    p = v.strip().lower()
    if p not in PRECISIONS:
        raise NpusimError(f"{where.at(n, text, j)}: precision {v!r} is not one npusim "
                          f"simulates; use one of {', '.join(PRECISIONS)}")
    return p


def _check_duplicates(file: str, rows: list[MeasuredRow]) -> None:
    seen: dict[tuple, MeasuredRow] = {}
    for r in rows:
        key = (r.precision, r.chips, r.input_len, r.output_len, r.users)
        if key in seen:
            a = seen[key]
            first = f"row {a.row}" + (f" of sheet {a.sheet!r}" if a.sheet != r.sheet else "")
            raise NpusimError(
                f"{file}, sheet {r.sheet!r}, row {r.row}, column 'users': duplicate scenario "
                f"(precision {r.precision}, input {r.input_len}, output {r.output_len}, users "
                f"{r.users}" + (f", chips {r.chips}" if r.chips else "") + f"), already in "
                f"{first}; keep one row per scenario (average repeated runs)")
        seen[key] = r


def _raise_nothing(path: Path, tables, skipped: dict[str, str]) -> None:
    why = "; ".join(f"sheet {k!r}: {v}" for k, v in skipped.items()) or "no sheets"
    raise NpusimError(f"{path.name}: no sheet has scenario rows ({why}). A scenario sheet has "
                      f"the columns 'input (tok)', 'output (tok)', 'users' and at least one "
                      f"measured metric, as `npusim kperf` writes")


# --- simulating and comparing -----------------------------------------------------------------

@dataclass
class KperfValidation:
    """A measured K-Perf sheet against npusim's simulation of the same scenarios.

    Attributes
    ----------
    source : Path
        The measured sheet.
    arch, model : str
        As simulated (the arch's label, ``*`` marking user overrides).
    cells : list of dict
        One per measured (scenario, metric), in sheet order: ``sheet``, ``row``,
        ``precision``, ``chips``, ``input_len``, ``output_len``, ``users``, ``metric``,
        ``measured``, ``simulated`` (SI units), ``error`` (``simulated / measured - 1``; None
        when either is missing or the measured value is 0) and ``status`` (the simulation's).
    calibration : dict
        The arch's calibrated fields and their provenance
        (:meth:`npusim.arch.model.Arch.calibrated`).
    measured : MeasuredSheet
        The sheet as read.
    records : list of dict
        The simulated K-Perf records of the sheet's scenarios.
    files : list of Path
        What :meth:`write` wrote.
    """

    source: Path
    arch: str
    model: str
    cells: list[dict]
    calibration: dict
    measured: MeasuredSheet
    records: list[dict]
    version: str = ""
    created: str = ""
    files: list[Path] = field(default_factory=list)

    def summary(self) -> list[dict[str, Any]]:
        """Per metric (in :data:`METRICS` order): ``metric``, ``cells`` (with an error),
        ``mape`` and ``bias`` (mean of |error| and of error, fractions), ``worst_error`` and
        the ``worst_at`` cell (``sheet`` row ``n``), None where no cell has an error."""
        out = []
        for key in self.measured.metrics():
            errs = [c for c in self.cells if c["metric"] == key and c["error"] is not None]
            worst = max(errs, key=lambda c: abs(c["error"]), default=None)
            out.append(dict(
                metric=key, cells=len(errs),
                mape=sum(abs(c["error"]) for c in errs) / len(errs) if errs else None,
                bias=sum(c["error"] for c in errs) / len(errs) if errs else None,
                worst_error=worst["error"] if worst else None,
                worst_at=_cell_at(worst) if worst else None))
        return out

    def mape(self, metric: str) -> float | None:
        """MAPE of one metric (a fraction), None if it has no cell with an error."""
        return next((s["mape"] for s in self.summary() if s["metric"] == metric), None)

    def write(self, out: str | Path) -> list[Path]:
        """Write ``validation_report.md``, ``validation.csv`` and the PNG graphs into ``out``."""
        # The report layer sits above validation; it is imported here, late, only so that a
        # result can write itself (as npusim.workloads.kperf.KperfResult.write does).
        from ..report.kperf_validation import plot_validation
        out = make_folder(out, "validation output")
        files = [write_text(out / REPORT_MD, report_markdown(self), "the validation report"),
                 write_cells_csv(self, out / REPORT_CSV), *plot_validation(self, out)]
        self.files = files
        return files


def validate_kperf(sheet: str | Path, arch, model: str, *, chips: int | None = None,
                   out: str | Path | None = None, sheet_name: str | None = None,
                   config=None, overrides=None, progress: bool = False) -> KperfValidation:
    """Compare a measured K-Perf sheet with npusim's simulation of the same scenarios.

    Parameters
    ----------
    sheet : str or Path
        The measured sheet, ``.xlsx`` or ``.csv``, shaped like ``npusim kperf``'s output
        (see :func:`read_kperf_sheet`).
    arch : str, Path or Arch
        The simulated arch: a shipped name, a YAML file or a loaded arch.
    model : str
        A built-in LLM name (``npusim models``).
    chips : int, optional
        Chips per system for every row; by default a row's chips column, else one count for
        every row without one: what ``npusim kperf`` would choose for the sheet's scenarios
        (:func:`~npusim.workloads.kperf.default_chips`).
    out : str or Path, optional
        If given, the report is written there (:meth:`KperfValidation.write`).
    sheet_name : str, optional
        Read only this sheet of a workbook.
    config : ServingConfig, optional
        The serving scheduler's settings; its defaults when omitted.
    overrides : mapping or sequence of str, optional
        Arch field overrides, as for :func:`npusim.load_arch`.
    progress : bool
        Show the K-Perf simulation's progress bar on the terminal's standard error.

    Returns
    -------
    KperfValidation

    Raises
    ------
    NpusimError
        On a malformed sheet (naming file, sheet, row and column), an arch or model that
        cannot be loaded, or when none of the sheet's scenarios can run.
    """
    if chips is not None and (isinstance(chips, bool) or not isinstance(chips, int)
                              or chips < 1):
        raise NpusimError(f"validate --chips: {chips!r} must be a whole number of at least 1")
    measured = read_kperf_sheet(sheet, sheet_name)
    arch_obj = _arch(arch, overrides)
    records, label = _simulate(measured.rows, arch_obj, model, chips, config, progress)
    cells = compare(measured.rows, records, chips)
    from ..workloads.kperf import _version
    return _finish(KperfValidation(
        source=measured.path, arch=label, model=str(model), cells=cells,
        calibration=arch_obj.calibrated(), measured=measured,
        records=[r for rs in records.values() for r in rs.values()], version=_version(),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")),
        out)


def _finish(result: KperfValidation, out) -> KperfValidation:
    if out is not None:
        result.write(out)
    return result


def _arch(arch, overrides):
    from ..arch import load_arch
    if isinstance(arch, (str, Path)):
        return load_arch(arch, overrides)
    if overrides:
        raise NpusimError("validate: overrides apply only when the arch is given by name or "
                          "path; apply them with npusim.load_arch(name, overrides) instead")
    return arch


def _simulate(rows: Sequence[MeasuredRow], arch, model, chips, config, progress=False):
    """{(precision, chips): {(input, output, users): record}} and the arch's label.

    One :func:`~npusim.workloads.kperf.kperf` call per (precision, chips) over the lengths and
    users of its rows; combinations the sheet does not have are dropped by :func:`compare`.
    Rows that are far from a full matrix (their lengths and users would span more than
    :data:`MATRIX_SLACK` times as many scenarios as there are rows) run one call per
    (input, output) pair instead, so scattered scenarios cost what they ask for, not the cube.
    """
    from ..workloads.kperf import kperf
    groups: dict[tuple, list[MeasuredRow]] = {}
    for r in rows:
        groups.setdefault((r.precision, chips if chips is not None else r.chips), []).append(r)
    default = _default_chips(arch, model, [r for (_, n), rs in groups.items() if n is None
                                           for r in rs])
    out: dict[tuple, dict[tuple, dict]] = {}
    label = arch.name
    for (precision, n), rs in groups.items():
        out[(precision, n)] = {}
        for batch in _matrices(rs):
            res = kperf(arch, model, chips=n if n is not None else default,
                        precisions=(precision,),
                        input_lens=sorted({r.input_len for r in batch}),
                        output_lens=sorted({r.output_len for r in batch}),
                        users=sorted({r.users for r in batch}), config=config,
                        progress=progress)
            label = next(iter(res.archs), label)
            out[(precision, n)].update({(r["input_len"], r["output_len"], r["users"]): r
                                        for r in res.records})
    return out, label


MATRIX_SLACK = 4


def _default_chips(arch, model, rows: Sequence[MeasuredRow]):
    """One chip count for every row that names none (and no --chips): what ``npusim kperf``
    would give the whole sheet (:func:`~npusim.workloads.kperf.default_chips`), so that rows
    split into several K-Perf calls still share one system. ``"auto"`` when the count cannot
    be chosen (the K-Perf call then reports why)."""
    if not rows:
        return None
    from ..errors import ArchError, CapacityError
    from ..workloads.kperf import AUTO, default_chips
    try:
        choice = default_chips(model, arch, list(dict.fromkeys(r.precision for r in rows)),
                               [r.users for r in rows], [r.input_len for r in rows],
                               [r.output_len for r in rows])
    except (ArchError, CapacityError):
        return AUTO
    return choice.chips if choice.chips is not None else AUTO


def _matrices(rows: Sequence[MeasuredRow]) -> list[list[MeasuredRow]]:
    """``rows`` as one matrix, or one per (input, output) pair when the one matrix would be
    more than :data:`MATRIX_SLACK` x the rows.

    Examples
    --------
    >>> rs = [MeasuredRow("s", n, "bf16", n, n, n, {}) for n in (1, 2, 3)]
    >>> [len(m) for m in _matrices(rs)]
    [1, 1, 1]
    """
    size = (len({r.input_len for r in rows}) * len({r.output_len for r in rows})
            * len({r.users for r in rows}))
    if size <= MATRIX_SLACK * len(rows):
        return [list(rows)]
    pairs: dict[tuple, list[MeasuredRow]] = {}
    for r in rows:
        pairs.setdefault((r.input_len, r.output_len), []).append(r)
    return list(pairs.values())


# The power band of an NPU whose power parts are assumptions (npusim.workloads.powerband):
# metric -> the record keys of its low and high edge, and whether they are one chip's figure
# (scaled to the system by its chips).
BAND = MappingProxyType({"avg_power_w": ("card_power_w_low", "card_power_w_high", True),
                         "energy_per_token_j": ("energy_per_token_j_low",
                                                "energy_per_token_j_high", False)})


def _band(rec: dict, metric: str) -> tuple[float | None, float | None]:
    """The simulated low and high edge of ``metric`` in ``rec`` (None where it has no band)."""
    keys = BAND.get(metric)
    if keys is None:
        return None, None
    lo, hi, per_chip = keys
    k = float(rec.get("chips") or 1) if per_chip else 1.0
    lo, hi = rec.get(lo), rec.get(hi)
    if not (_finite(lo) and _finite(hi)):
        return None, None
    return float(lo) * k, float(hi) * k


def compare(rows: Iterable[MeasuredRow], records: dict, chips: int | None = None) -> list[dict]:
    """The per-cell comparison: one dict per measured (row, metric); see
    :class:`KperfValidation`.

    ``records`` maps ``(precision, chips)`` to ``{(input_len, output_len, users): record}``.

    Examples
    --------
    >>> row = MeasuredRow("s", 2, "bf16", 128, 64, 4, {"decode_tok_s": 200.0})
    >>> rec = {"status": "ok", "chips": 1, "decode_tok_s": 150.0}
    >>> c = compare([row], {("bf16", None): {(128, 64, 4): rec}})[0]
    >>> c["measured"], c["simulated"], c["error"]
    (200.0, 150.0, -0.25)
    """
    out = []
    for r in rows:
        rec = records.get((r.precision, chips if chips is not None else r.chips), {}) \
            .get((r.input_len, r.output_len, r.users), {})
        status = rec.get("status", "not simulated")
        for m in METRICS:
            if m.key not in r.values:
                continue
            meas = r.values[m.key]
            sim = rec.get(m.key) if status == "ok" else None
            sim = float(sim) if _finite(sim) else None
            err = sim / meas - 1.0 if sim is not None and meas > 0 else None
            lo, hi = _band(rec, m.key) if status == "ok" else (None, None)
            out.append(dict(sheet=r.sheet, row=r.row, model=r.model, precision=r.precision,
                            chips=rec.get("chips", r.chips), input_len=r.input_len,
                            output_len=r.output_len, users=r.users, metric=m.key,
                            measured=meas, simulated=sim, simulated_low=lo,
                            simulated_high=hi, error=err, status=status))
    return out


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _cell_at(c: dict) -> str:
    return f"{c['sheet']} row {c['row']}"


# --- report -----------------------------------------------------------------------------------

CSV_COLUMNS = ("sheet", "row", "model", "precision", "chips", "input_len", "output_len",
               "users", "metric", "measured", "simulated", "simulated_low", "simulated_high",
               "error", "status")


def _band_lines(cells: list[dict]) -> list[str]:
    """Where the arch's power is a band (assumed power parts): how many measured power and
    energy cells fall inside it."""
    banded = [c for c in cells if c.get("simulated_low") is not None]
    if not banded:
        return []
    out = ["", "## Power band", "",
           "The arch's power parts are assumptions (its energy table gives ranges), so npusim's "
           "power is a band; `simulated` is its central value.", "",
           "| metric | cells | measured inside the band |", "|---|---:|---:|"]
    for key in BAND:
        mine = [c for c in banded if c["metric"] == key]
        if mine:
            inside = sum(c["simulated_low"] <= c["measured"] <= c["simulated_high"]
                         for c in mine)
            out.append(f"| {METRIC_BY_KEY[key].label} | {len(mine)} | {inside} |")
    return out


def write_cells_csv(result: KperfValidation, path: str | Path) -> Path:
    """Every compared cell as a CSV row (:data:`CSV_COLUMNS`), values in SI units, the error
    as a fraction, a missing value as an empty cell; ``simulated_low``/``_high`` are the power
    band's edges (power and energy per token on an arch with assumed power parts)."""
    return write_csv(path, CSV_COLUMNS, result.cells, "the validation CSV")


def report_markdown(result: KperfValidation) -> str:
    """The text of ``validation_report.md``: provenance, MAPE per metric, calibration, cells."""
    m = result.measured
    lines = [
        "<!-- Generated by `npusim validate --kperf`; do not edit by hand. -->",
        f"# K-Perf validation: {result.model} on {result.arch}",
        "",
        f"- measured sheet: `{_md(result.source.name)}`, sheets "
        f"{', '.join(f'`{_md(s)}`' for s in m.sheets)}",
        f"- simulated: model `{_md(result.model)}` on arch `{_md(result.arch)}`, npusim "
        f"{_md(result.version)}, {_md(result.created)}",
        f"- scenarios: {len(m.rows)}; compared cells: {len(result.cells)}; cells with an error: "
        f"{sum(c['error'] is not None for c in result.cells)}",
        "- error = simulated / measured - 1 (negative: npusim predicts less than measured); "
        "MAPE = mean of |error|",
    ]
    models = sorted({r.model for r in m.rows if r.model})
    if models:
        lines.append(f"- model named in the sheet: {', '.join(f'`{_md(x)}`' for x in models)}")
    for sheet, why in m.skipped.items():
        lines.append(f"- sheet `{_md(sheet)}` skipped: {_md(why)}")
    for sheet, cols in m.ignored.items():
        if cols:
            lines.append(f"- columns of `{_md(sheet)}` not compared: "
                         f"{', '.join(f'`{_md(c)}`' for c in cols)}")
    lines += ["", "## Error per metric", "",
              "| metric | cells | MAPE | bias | worst error | worst at |",
              "|---|---:|---:|---:|---:|---|"]
    for s in result.summary():
        lines.append(f"| {METRIC_BY_KEY[s['metric']].label} | {s['cells']} | "
                     f"{_pct(s['mape'])} | {_pct(s['bias'], True)} | "
                     f"{_pct(s['worst_error'], True)} | {_md(s['worst_at'] or '')} |")
    lines += _band_lines(result.cells)
    lines += ["", "## Arch calibration", ""]
    if result.calibration:
        from ..arch.calibration import describe
        lines += ["| field | value | provenance |", "|---|---:|---|"]
        for f, prov in sorted(result.calibration.items()):
            lines.append(f"| `{_md(f)}` | {_num(prov.get('value'))} | {_md(describe(prov))} |")
    else:
        lines.append(f"Arch `{_md(result.arch)}` carries no calibrated field: every parameter "
                     f"is its arch file's.")
    lines += ["", "## Per cell", "",
              "| sheet | row | precision | chips | input | output | users | metric | measured "
              "| simulated | error | status |",
              "|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for c in result.cells:
        k = METRIC_BY_KEY[c["metric"]]
        lines.append(
            f"| {_md(c['sheet'])} | {c['row']} | {c['precision']} | {c['chips'] or ''} | "
            f"{c['input_len']} | {c['output_len']} | {c['users']} | {k.label} | "
            f"{_num(_times(c['measured'], k.shown))} | {_num(_times(c['simulated'], k.shown))} "
            f"| {_pct(c['error'], True)} | {_md(c['status'])} |")
    lines += ["", "## Graphs", "",
              f"![decode tokens/s vs users]({PNG_DECODE})",
              f"![TTFT vs input length]({PNG_TTFT})",
              f"![error per metric]({PNG_ERROR})", ""]
    return "\n".join(lines)


def _times(v, k):
    return None if v is None else v * k


def _num(v: Any) -> str:
    if not _finite(v):
        return "" if v is None else str(v)
    return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"


def _pct(v: Any, signed: bool = False) -> str:
    if not _finite(v):
        return "n/a"
    return f"{100 * v:+.1f}%" if signed else f"{100 * v:.1f}%"


def _md(text: Any) -> str:
    """Text from a user's file, safe in a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


# The graphs live in the report layer (npusim/report/kperf_validation.py): a job computes, a face
# draws. Their old names here still work, resolved late so this module never imports upward.
_FIGURES = ("plot_validation", "decode_figure", "ttft_figure", "error_figure")


def __getattr__(name: str):
    if name in _FIGURES:
        from ..report import kperf_validation
        return getattr(kperf_validation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["KperfValidation", "METRICS", "MeasuredRow", "MeasuredSheet", "Metric", "compare",
           "normalise", "parse_header", "plot_validation", "read_kperf_sheet",
           "report_markdown", "validate_kperf", "write_cells_csv"]
