"""JSON and CSV writers for run results.

The JSON file is the whole result tree (``RunResult.to_dict()``) and, when given, the fully
resolved arch, so a run can be reproduced and two runs diffed. The CSV file is one row per op,
for spreadsheets and pandas: scalar fields, one column per energy component and per memory
level, and the mapping flattened to a short string.
"""
from __future__ import annotations

import enum
import json
import math
from pathlib import Path
from typing import Any, Iterable

from ..engine.result import OpRecord, RunResult
from ..files import spreadsheet_safe, write_text
from ..files import write_csv as write_rows

# Columns copied from each OpRecord, in this order, before the per-component columns.
SCALAR_FIELDS = (
    "name", "kind", "source", "op_type", "dtype", "exec_dtype", "bound", "device",
    "macs", "vector_ops", "bytes", "dram_bytes",
    "compute_s", "memory_s", "bound_s", "latency_s", "cycles", "start_s", "end_s",
    "utilization",
)
TEXT_FIELDS = frozenset({"name", "kind", "source", "op_type", "dtype", "exec_dtype", "bound",
                         "device"})

# Known components and levels come first in this order; any others follow alphabetically, so
# the columns of two runs line up in a spreadsheet.
ENERGY_ORDER = ("mac", "vector", "sram", "shared", "dram", "noc", "link", "pim_mac",
                "pim_column", "static")
LEVEL_ORDER = ("dram", "shared", "sram", "bank")

# A spreadsheet runs a cell that starts with one of these as a formula; op names come from
# the user's (possibly untrusted) ONNX file. OWASP, "CSV Injection",


def write_json(result: RunResult, path: str | Path, arch: Any = None) -> Path:
    """Write ``result`` as JSON, with the resolved arch beside it when given.

    Parameters
    ----------
    result : RunResult
        The run to write.
    path : str or Path
        The file to write; its folder must exist.
    arch : Arch, optional
        The arch the run used. Its :meth:`~npusim.arch.model.Arch.to_dict` (every field in SI
        units, overrides applied) goes under the key ``"resolved_arch"``.

    Returns
    -------
    Path
        The file written.

    Notes
    -----
    Infinite and NaN numbers, which strict JSON cannot hold, are written as the strings
    ``"inf"``, ``"-inf"`` and ``"nan"`` rather than dropped.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> from npusim.engine.result import OpRecord, RunResult
    >>> op = OpRecord("mm", "contraction", "mm", "MatMul", "bf16", "bf16", 8, 0.0, 48.0,
    ...               48.0, 1e-9, 2e-9, 2e-9, 2e-9, "memory")
    >>> r = RunResult("toy", "edu", "roofline", (op,))
    >>> p = write_json(r, pathlib.Path(tempfile.mkdtemp()) / "run.json")
    >>> json.loads(p.read_text())["totals"]["macs"]
    8
    """
    data = result.to_dict()
    if arch is not None:
        data["resolved_arch"] = arch.to_dict()
    text = json.dumps(_jsonable(data), indent=1, allow_nan=False) + "\n"
    return write_text(Path(path), text, "JSON")


def csv_columns(result: RunResult) -> list[str]:
    """The header of :func:`write_csv` for ``result``.

    Scalar fields, ``energy_total_j``, one ``energy_<component>_j`` column per energy
    component and one ``bytes_<level>`` column per memory level found in any op, then
    ``mapping``.
    """
    comps = _ordered((k for r in result.ops for k in r.energy_j), ENERGY_ORDER)
    levels = _ordered((k for r in result.ops for k in r.bytes_by_level), LEVEL_ORDER)
    return (list(SCALAR_FIELDS) + ["energy_total_j"]
            + [f"energy_{c}_j" for c in comps] + [f"bytes_{lv}" for lv in levels]
            + ["mapping"])


def csv_rows(result: RunResult) -> list[dict[str, Any]]:
    """One dict per op, keyed by :func:`csv_columns`; missing components and levels are 0."""
    cols = csv_columns(result)
    return [_row(r, cols) for r in result.ops]


def write_csv(result: RunResult, path: str | Path) -> Path:
    """Write one row per op of ``result`` as CSV, with a header row.

    Numbers are written in full precision (Python's shortest round-trip form), seconds in
    seconds, energy in joules, bytes in bytes. An energy component or memory level an op does
    not have is 0. Text cells that a spreadsheet would run as a formula (starting with ``=``,
    ``+``, ``-``, ``@``) get a leading ``'``.

    Parameters
    ----------
    result : RunResult
        The run to write.
    path : str or Path
        The file to write; its folder must exist.

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> import csv, tempfile, pathlib
    >>> from npusim.engine.result import OpRecord, RunResult
    >>> op = OpRecord("mm", "contraction", "mm", "MatMul", "bf16", "bf16", 8, 0.0, 48.0,
    ...               48.0, 1e-9, 2e-9, 2e-9, 2e-9, "memory", energy_j={"mac": 1e-12},
    ...               mapping={"spatial": ["m", "n"], "tiles": {"k": 4}})
    >>> p = write_csv(RunResult("toy", "edu", "roofline", (op,)),
    ...               pathlib.Path(tempfile.mkdtemp()) / "ops.csv")
    >>> row = next(csv.DictReader(p.open()))
    >>> row["energy_mac_j"], row["mapping"]
    ('1e-12', 'spatial=m,n; tiles.k=4')
    """
    cols = csv_columns(result)
    return write_rows(path, cols, (_row(r, cols) for r in result.ops), "CSV")


def flatten_mapping(mapping: dict) -> str:
    """A mapping as one short line: ``key=value`` pairs joined by ``"; "``.

    Nested dicts become dotted keys, lists and tuples comma-joined values.

    Examples
    --------
    >>> flatten_mapping({"split": {"n": 4}, "spatial": ("m", "n"), "order": "kmn"})
    'split.n=4; spatial=m,n; order=kmn'
    >>> flatten_mapping({})
    ''
    """
    return "; ".join(f"{k}={v}" for k, v in _flat_items(mapping, ""))


def _flat_items(d: dict, prefix: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.extend(_flat_items(v, key + ".") if v else [(key, "{}")])
        elif isinstance(v, (list, tuple)):
            out.append((key, ",".join(_short(x) for x in v)))
        else:
            out.append((key, _short(v)))
    return out


def _short(v: Any) -> str:
    if isinstance(v, enum.Enum):
        v = v.value
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def _row(r: OpRecord, cols: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for c in SCALAR_FIELDS:
        v = getattr(r, c)
        row[c] = spreadsheet_safe(v) if c in TEXT_FIELDS else v
    row["energy_total_j"] = r.energy_total_j
    for c in cols:
        if c.startswith("energy_") and c != "energy_total_j":
            row[c] = r.energy_j.get(c[len("energy_"):-len("_j")], 0.0)
        elif c.startswith("bytes_"):
            row[c] = r.bytes_by_level.get(c[len("bytes_"):], 0.0)
    row["mapping"] = spreadsheet_safe(flatten_mapping(r.mapping))
    return row


def _ordered(keys: Iterable[str], known: tuple[str, ...]) -> list[str]:
    seen = set(keys)
    return [k for k in known if k in seen] + sorted(seen - set(known))


def _jsonable(obj: Any) -> Any:
    """Plain JSON data: enums by value, numpy scalars and arrays as numbers and lists, sets
    sorted, paths as strings, non-finite floats as strings."""
    if isinstance(obj, dict):
        return {str(_jsonable(k)) if not isinstance(k, str) else k: _jsonable(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((_jsonable(v) for v in obj), key=str)
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, enum.Enum):
        return _jsonable(obj.value)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):           # numpy scalars and arrays, without importing numpy
        return _jsonable(obj.tolist())
    if hasattr(obj, "items"):            # read-only mappings (the arch's FrozenMap)
        return _jsonable(dict(obj.items()))
    return str(obj)
