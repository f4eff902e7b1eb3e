"""The K-Perf report: a spreadsheet, a CSV of every scenario, and 2-D graphs.

``kperf.xlsx`` has a ``summary`` sheet (one row per arch x model x precision, with the ratios to
the first arch when several are compared), one sheet per model and precision with the scenario
table (units in the headers), and a ``settings`` sheet (matrix, serving configuration, the
system of each run and every field of each arch, npusim version and date). ``kperf.csv`` holds
every record in SI units for machines. The PNGs: decode tokens/s (system, and per chip)
against users for each input/output pair, TTFT against input length, average power and tokens
per joule against users. Every table and legend names a system by its chips (``8 x h100``), and
shows the per-chip throughput and KV headroom beside the system figures.

openpyxl and matplotlib are the optional extra ``reports``, imported inside the functions;
figures are drawn through matplotlib's object API on the Agg canvas, as in
:mod:`npusim.report.plots`.
"""
from __future__ import annotations

import math
import re
from functools import partial
from pathlib import Path
from typing import Any, Sequence

from ..errors import NpusimError
from ..figures import (COLOURS, MARKERS, draw_and_save, figure_class, finish_panels,
                       log_ticks, panels_figure, plain_formatter, plain_log_axis, plain_number)
from ..files import cannot_write, make_folder, write_csv as _write_rows
from ..workloads.kperf import system_label
from .export import _jsonable
from .parallel import run_writers

XLSX, CSV = "kperf.xlsx", "kperf.csv"
PNG_DECODE = "decode_vs_users.png"
PNG_PER_CHIP = "decode_per_chip_vs_users.png"
PNG_TTFT = "ttft_vs_input.png"
PNG_POWER = "power_vs_users.png"
PNG_EFFICIENCY = "tokens_per_joule_vs_users.png"

# Scenario-table columns a reader looks for, in this order: record key, header with the unit
# shown, factor from the record's SI value, Excel number format. Any other summary field
# follows, its header made from its key (see _column).
SCENARIO_COLUMNS = (
    ("arch", "arch", None, None),
    ("chips", "chips", None, "0"),
    ("input_len", "input (tok)", None, "0"),
    ("output_len", "output (tok)", None, "0"),
    ("users", "users", None, "0"),
    ("ttft_mean_s", "TTFT mean (ms)", 1e3, "#,##0.0"),
    ("ttft_p50_s", "TTFT p50 (ms)", 1e3, "#,##0.0"),
    ("ttft_p99_s", "TTFT p99 (ms)", 1e3, "#,##0.0"),
    ("tpot_mean_s", "TPOT mean (ms)", 1e3, "0.00"),
    ("tpot_p50_s", "TPOT p50 (ms)", 1e3, "0.00"),
    ("tpot_p99_s", "TPOT p99 (ms)", 1e3, "0.00"),
    ("e2e_mean_s", "E2E mean (s)", None, "0.00"),
    ("e2e_p50_s", "E2E p50 (s)", None, "0.00"),
    ("e2e_p99_s", "E2E p99 (s)", None, "0.00"),
    ("prefill_tok_s", "prefill (tok/s)", None, "#,##0"),
    ("prefill_tok_s_per_user", "prefill per user (tok/s)", None, "#,##0"),
    ("decode_tok_s", "decode (tok/s)", None, "#,##0.0"),
    ("decode_tok_s_per_user", "decode per user (tok/s)", None, "#,##0.0"),
    ("decode_tok_s_per_chip", "decode per chip (tok/s)", None, "#,##0.0"),
    ("avg_power_w", "avg power (W)", None, "#,##0.0"),
    ("card_power_w", "card power (W)", None, "#,##0.0"),
    ("card_power_w_low", "card power low (W)", None, "#,##0.0"),
    ("card_power_w_high", "card power high (W)", None, "#,##0.0"),
    ("system_power_w", "system power at the wall (W)", None, "#,##0.0"),
    ("energy_per_token_j", "energy per token (J)", None, "0.0000"),
    ("energy_per_token_j_low", "energy per token low (J)", None, "0.0000"),
    ("energy_per_token_j_high", "energy per token high (J)", None, "0.0000"),
    ("tokens_per_j", "tokens/J", None, "#,##0.00"),
    ("kv_util_mean", "KV util mean (%)", 100.0, "0.0"),
    ("kv_util_peak", "KV util peak (%)", 100.0, "0.0"),
    ("kv_capacity_tokens", "KV capacity (tok)", None, "#,##0"),
    ("kv_demand_tokens", "KV demand (tok)", None, "#,##0"),
    ("kv_headroom", "KV headroom (x)", None, "0.00"),
)
# Scenario sheets leave out what the sheet's name already says and the system's figures that
# every scenario of a run shares (the settings sheet has them); status goes last (long text).
_NOT_IN_SCENARIO_SHEET = frozenset({
    "model", "precision", "status", "tdp_w", "static_power_w", "kv_block_tokens",
    "max_num_seqs", "max_num_batched_tokens", "rate_rps"})
_UNIT_SUFFIX = (("_tok_s", "tok/s"), ("_per_s", "1/s"), ("_s", "s"), ("_w", "W"), ("_j", "J"),
                ("_tokens", "tok"))

# (summary key, header, number format); the ratio columns are added when archs are compared.
SUMMARY_COLUMNS = (
    ("model", "model", None),
    ("arch", "arch", None),
    ("precision", "precision", None),
    ("chips", "chips", "0"),
    ("system", "system", None),
    ("status", "status", None),
    ("peak_decode_tok_s", "peak decode (tok/s)", "#,##0.0"),
    ("peak_at", "peak at (in/out/users)", None),
    ("peak_decode_tok_s_per_chip", "peak decode per chip (tok/s)", "#,##0.0"),
    ("avg_power_w_at_peak", "avg power at peak (W)", "#,##0.0"),
    ("best_ttft_s", "best TTFT mean (ms)", "#,##0.0"),
    ("best_ttft_at", "best TTFT at (in/out/users)", None),
    ("max_tokens_per_j", "max tokens/J", "#,##0.00"),
    ("kv_capacity_tokens", "KV capacity (tok)", "#,##0"),
    ("kv_headroom_min", "KV headroom at most users (x)", "0.00"),
    ("chips_reason", "chips chosen because", None),
)
# Ratios compare the systems as run: ``{ref}`` is the reference system ("8 x h100").
RATIO_COLUMNS = (("decode_ratio", "decode vs {ref} (x)"),
                 ("decode_per_chip_ratio", "decode per chip vs {ref} (x)"),
                 ("perf_per_w_ratio", "perf/W vs {ref} (x)"))

RUN_COLUMNS = (("arch", "arch"), ("precision", "precision"), ("chips", "chips"),
               ("chips_rule", "chips rule"), ("chips_reason", "chips chosen because"),
               ("precision_name", "precision (cost model)"),
               ("kv_capacity_tokens", "KV capacity (tok)"), ("kv_block_tokens", "KV block (tok)"),
               ("static_power_w", "static power (W)"), ("tdp_w", "TDP (W)"),
               ("status", "status"))

# A colour per (arch, precision) series and a marker per arch; line style says which
# statistic a line is, so it means the same in every graph.
MEAN_STYLE, P99_STYLE = "-", "--"
PREEMPTED_GID = "preempted"
PREEMPTED_NOTE = "ringed: KV cache full, requests preempted and recomputed"
DPI = 100
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")
SHEET_MAX = 31                 # Excel's limit on a sheet name's length


def write_kperf(result, outdir: str | Path, processes: int | None = None) -> list[Path]:
    """Write ``kperf.xlsx``, ``kperf.csv`` and the PNGs of a K-Perf result into ``outdir``.

    Parameters
    ----------
    result : KperfResult
        From :func:`npusim.workloads.kperf.kperf`.
    outdir : str or Path
        Created if missing.
    processes : int, optional
        Processes that write the files side by side (default: one per idle core, see
        :func:`npusim.report.parallel.run_writers`); 1 writes them one after the other. The
        files are the same either way.

    Returns
    -------
    list of Path
        The files written: the xlsx, the csv, then the PNGs (see :func:`plot_kperf`).

    Raises
    ------
    NpusimError
        If openpyxl or matplotlib (the optional extra ``reports``) is missing, or a file cannot
        be written.
    """
    outdir = make_folder(outdir, "K-Perf output")
    _workbook_class(load=False)   # both extras checked before any file is written; openpyxl
                                  # is loaded by the process that writes the workbook
    # handed out in this order: the cheap workbook and CSV last, to fill the gap the last
    # figure leaves the other process
    *pngs, xlsx, csv = run_writers([*_figure_writers(result, outdir, DPI),
                                    partial(write_xlsx, result, outdir / XLSX),
                                    partial(write_csv, result, outdir / CSV)], processes)
    return [xlsx, csv, *pngs]


# --- CSV ------------------------------------------------------------------------------------

def write_csv(result, path: str | Path) -> Path:
    """Every record as one CSV row, columns :meth:`KperfResult.columns`, SI units.

    Numbers are written in Python's shortest round-trip form (``float(cell)`` gives the record's
    value back), a missing value as an empty cell, and text that a spreadsheet would run as a
    formula gets a leading ``'``.
    """
    return _write_rows(path, result.columns(), result.records, "K-Perf CSV")


# --- xlsx -----------------------------------------------------------------------------------

def scenario_columns(records: Sequence[dict]) -> list[tuple[str, str, float | None, str | None]]:
    """The scenario table's columns for ``records``: known ones in :data:`SCENARIO_COLUMNS`
    order when any record has them, then any other field, then ``status``.

    Examples
    --------
    >>> [c[1] for c in scenario_columns([{"arch": "x", "users": 1, "ttft_p99_s": 0.1,
    ...                                   "queue_mean_s": 0.0, "status": "ok"}])]
    ['arch', 'users', 'TTFT p99 (ms)', 'queue mean (s)', 'status']
    """
    present = {k for r in records for k in r}
    known = {c[0] for c in SCENARIO_COLUMNS}
    cols = [c for c in SCENARIO_COLUMNS if c[0] in present]
    extra: list[str] = []
    for r in records:
        for k in r:
            if k not in known and k not in _NOT_IN_SCENARIO_SHEET and k not in extra:
                extra.append(k)
    cols += [_column(k) for k in extra]
    if "status" in present:
        cols.append(("status", "status", None, None))
    return cols


def _column(key: str) -> tuple[str, str, None, str | None]:
    """A header for a field with no entry in :data:`SCENARIO_COLUMNS`, its unit from its key."""
    for suffix, unit in _UNIT_SUFFIX:
        if key.endswith(suffix):
            return key, f"{key[:-len(suffix)].replace('_', ' ')} ({unit})", None, "General"
    return key, key.replace("_", " "), None, "General"


def write_xlsx(result, path: str | Path) -> Path:
    """The K-Perf workbook: ``summary``, one scenario sheet per model and precision, ``settings``.

    Cells hold the records' values (times in the unit the header names); a value the scenario
    does not have, or one that is not finite, is an empty cell.
    """
    Workbook = _workbook_class()
    wb = Workbook()
    _summary_sheet(wb.active, result)
    names = {"summary", "settings"}
    for (model, precision), rows in _by_model_precision(result.records).items():
        ws = wb.create_sheet(_sheet_name(f"{model} {precision}", names))
        _scenario_sheet(ws, rows)
    _settings_sheet(wb.create_sheet("settings"), result)
    path = Path(path)
    try:
        wb.save(path)
    except OSError as e:
        raise cannot_write(path, "the K-Perf workbook", e) from None
    return path


def summary_table(result) -> tuple[list[str], list[list[Any]], list[str | None]]:
    """Headers, rows and number formats of the ``summary`` sheet.

    With more than one arch, three ratio columns follow: the row's peak decode tokens/s, peak
    decode tokens/s per chip and max tokens/J (tokens/s per W) over those of the first arch's
    row of the same model and precision, each system with its own chips (the headers name
    the reference system).
    """
    rows = result.summary()
    archs = list(result.archs) or list(dict.fromkeys(r["arch"] for r in rows))
    cols = [(k, h, f) for k, h, f in SUMMARY_COLUMNS]
    if len(archs) > 1:
        ref = reference_system(rows, archs[0])
        cols += [(k, h.format(ref=ref), "0.00") for k, h in RATIO_COLUMNS]
    scale = {"best_ttft_s": 1e3}
    table = [[_scaled(r.get(k), scale.get(k)) for k, _, _ in cols] for r in rows]
    return [h for _, h, _ in cols], table, [f for _, _, f in cols]


def reference_system(rows: Sequence[dict], arch: str) -> str:
    """The system the ratios divide by: ``"8 x h100"`` when the reference arch has one chip
    count in every precision, else the arch and a note (its chips differ per precision).

    Examples
    --------
    >>> reference_system([{"arch": "h100", "chips": 8}, {"arch": "h100", "chips": 8}], "h100")
    '8 x h100'
    >>> reference_system([{"arch": "h100", "chips": 2}, {"arch": "h100", "chips": 8}], "h100")
    'h100 (2/8 chips by precision)'
    """
    chips = list(dict.fromkeys(r.get("chips") for r in rows if r.get("arch") == arch))
    if len(chips) == 1:
        return system_label(arch, chips[0])
    shown = "/".join(str(c) for c in chips if c)
    return f"{arch} ({shown} chips by precision)" if shown else arch


def _summary_sheet(ws, result) -> None:
    ws.title = "summary"
    headers, rows, formats = summary_table(result)
    _table(ws, 1, headers, rows, formats)
    ws.freeze_panes = "A2"


def _scenario_sheet(ws, records: list[dict]) -> None:
    cols = scenario_columns(records)
    rows = [[_scaled(r.get(k), s) for k, _, s, _ in cols] for r in records]
    _table(ws, 1, [h for _, h, _, _ in cols], rows, [f for *_, f in cols])
    ws.freeze_panes = "F2" if len(cols) > 5 else "A2"
    ws.auto_filter.ref = ws.dimensions


def _settings_sheet(ws, result) -> None:
    m = result.matrix
    kv = [("npusim version", result.version), ("created (UTC)", result.created),
          ("model", result.model),
          ("precisions", _join(m.get("precisions", ()))),
          ("input lengths (tok)", _join(m.get("input_lens", ()))),
          ("output lengths (tok)", _join(m.get("output_lens", ()))),
          ("users", _join(m.get("users", ()))),
          ("archs compared", _join(result.archs)),
          ("ratios relative to", next(iter(result.archs), ""))]
    kv += [(f"serving.{k}", v) for k, v in _flat(_jsonable(result.config))]
    row = _table(ws, 1, ["setting", "value"], [list(p) for p in kv], [None, None])
    run_cols = list(RUN_COLUMNS)
    for r in result.runs:          # what else the cost model describes (dtypes, bytes)
        run_cols += [(k, _column(k)[1]) for k in r if k not in {c[0] for c in run_cols}]
    row = _table(ws, row + 1, [h for _, h in run_cols],
                 [[r.get(k) for k, _ in run_cols] for r in result.runs],
                 [None] * len(run_cols))
    fields, units, values = _arch_fields(result.archs)
    _table(ws, row + 1, ["arch field", "unit", *result.archs],
           [[f, units.get(f, ""), *(values[a].get(f, "") for a in result.archs)]
            for f in fields], [None] * (2 + len(result.archs)))


def _arch_fields(archs: dict[str, dict]) -> tuple[list[str], dict[str, str], dict[str, dict]]:
    """Flattened dotted fields of every arch (union, first-seen order), their units, values."""
    fields: list[str] = []
    units: dict[str, str] = {}
    values: dict[str, dict] = {}
    for label, d in archs.items():
        d = dict(d)
        units.update({str(k): str(v) for k, v in (d.pop("units", None) or {}).items()})
        flat = dict(_flat(_jsonable(d)))
        values[label] = flat
        fields += [f for f in flat if f not in fields]
    return fields, _units_for(fields, units), values


def _flat(d: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """Dotted keys of nested dicts, numbers kept as numbers and lists comma-joined."""
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out += _flat(v, f"{prefix}{k}.")
        elif isinstance(v, (list, tuple)):
            out.append((f"{prefix}{k}", _join(v)))
        else:
            out.append((f"{prefix}{k}", "{}" if isinstance(v, dict) else v))
    return out


def _units_for(fields: list[str], units: dict[str, str]) -> dict[str, str]:
    """Each flat field's unit: its own, or its parent's (``macs_per_cycle.bf16``)."""
    out = {}
    for f in fields:
        key = f
        while key and key not in units:
            key = key.rpartition(".")[0]
        if key:
            out[f] = units[key]
    return out


def _table(ws, row: int, headers: list[str], rows: list[list[Any]],
           formats: list[str | None]) -> int:
    """Write a header and rows from ``row``; returns the row after the table."""
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter
    bold = Font(bold=True)
    for j, h in enumerate(headers, 1):
        ws.cell(row, j, h).font = bold
    for i, values in enumerate(rows, row + 1):
        for j, v in enumerate(values, 1):
            c = ws.cell(i, j, _xlsx_value(v))
            if isinstance(v, str) and v.startswith("="):
                c.data_type = "s"          # text, never a formula (names come from files)
            elif formats[j - 1] and isinstance(c.value, (int, float)):
                c.number_format = formats[j - 1]
    for j, h in enumerate(headers, 1):
        letter = get_column_letter(j)
        width = max([len(str(h))] + [min(len(_shown(r[j - 1])), 40) for r in rows])
        ws.column_dimensions[letter].width = max(ws.column_dimensions[letter].width or 0,
                                                 width + 2)
    return row + len(rows) + 2


def _xlsx_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None              # Excel holds no inf or NaN
    if v is None or isinstance(v, (int, float, str)):
        return v
    return str(v)


def _shown(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}"
    return "" if v is None else str(v)


def _scaled(v: Any, scale: float | None) -> Any:
    if scale is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return v
    return v * scale


def _join(values) -> str:
    return ", ".join(str(v) for v in values)


def _by_model_precision(records: Sequence[dict]) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        out.setdefault((r["model"], r["precision"]), []).append(r)
    return out


def _sheet_name(text: str, taken: set[str]) -> str:
    """A legal, unused sheet name: no ``[]:*?/\\``, at most 31 characters."""
    base = _SHEET_BAD.sub("_", text).strip("'") or "sheet"
    name, n = base[:SHEET_MAX], 2
    while name.lower() in {t.lower() for t in taken}:
        tail = f" ({n})"
        name, n = base[:SHEET_MAX - len(tail)] + tail, n + 1
    taken.add(name)
    return name


def _workbook_class(load: bool = True):
    """openpyxl's ``Workbook`` (None when not ``load``: only checked to be installed), or an
    error naming the extra to install."""
    try:
        if not load:
            from importlib.util import find_spec
            if find_spec("openpyxl") is None:
                raise ImportError("openpyxl")
            return None
        from openpyxl import Workbook
    except ImportError:
        raise NpusimError("the K-Perf spreadsheet needs openpyxl, which comes with npusim's "
                          "optional extra 'reports': pip install 'npusim[reports]' (or pip "
                          "install openpyxl)") from None
    return Workbook


# --- graphs ---------------------------------------------------------------------------------

def plot_kperf(result, outdir: str | Path, dpi: int = DPI,
               processes: int | None = None) -> list[Path]:
    """Draw the K-Perf PNGs into ``outdir`` (which must exist); returns their paths: the five
    above, then the power graphs of :func:`npusim.report.kperf_power.plot_power`.

    ``processes`` draws them side by side, as in :func:`write_kperf`.
    """
    return run_writers(_figure_writers(result, Path(outdir), dpi), processes)


def figures(result) -> list[tuple[str, Any]]:
    """Every K-Perf PNG of ``result`` as (file name, function drawing its figure), in the order
    they are written: the five above, then the power graphs."""
    from .kperf_power import power_figures
    return [(PNG_DECODE, decode_figure), (PNG_PER_CHIP, per_chip_figure),
            (PNG_TTFT, ttft_figure), (PNG_POWER, power_figure),
            (PNG_EFFICIENCY, efficiency_figure), *power_figures(result)]


def _figure_writers(result, outdir: Path, dpi: int) -> list:
    figure_class()                # matplotlib imported once here, before any process forks
    return [partial(draw_and_save, make, result, outdir / name, dpi)
            for name, make in figures(result)]


def series(result) -> list[dict[str, Any]]:
    """One line per (arch, precision): its label, style, the rows that ran, and why none did.

    Every series has a colour of its own (archs in compared order, then precisions), so no two
    lines of a graph share one; the marker follows the arch. Line style is left to the
    statistic: solid for a mean (or the only value), dashed for p99. The label names the
    system (``"8 x h100 bf16"``) and, when known, its KV headroom at the matrix's largest
    demand (``"KV 1.3x of 250 x 4096 tok"``: capacity over users x (input + output) tokens).
    """
    archs = list(result.archs) or list(dict.fromkeys(r["arch"] for r in result.records))
    precs = list(dict.fromkeys(r["precision"] for r in result.records))
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in result.records:
        groups.setdefault((r["arch"], r["precision"]), []).append(r)
    order = sorted(groups, key=lambda k: (archs.index(k[0]) if k[0] in archs else len(archs),
                                          precs.index(k[1])))
    tdp = {(r["arch"], r["precision"]): r.get("tdp_w") for r in result.runs}
    out = []
    for n, (arch, prec) in enumerate(order):
        rows = groups[(arch, prec)]
        a = archs.index(arch) if arch in archs else len(archs)
        ok = [r for r in rows if r.get("status", "ok") == "ok"]
        chips = next((r.get("chips") for r in rows if r.get("chips")), None)
        out.append(dict(
            arch=arch, precision=prec, rows=ok, tdp_w=tdp.get((arch, prec)),
            why=None if ok else str(rows[0].get("status", "")),
            label=f"{system_label(arch, chips)} {prec}{_headroom_note(ok)}",
            colour=COLOURS[n % len(COLOURS)], linestyle=MEAN_STYLE,
            marker=MARKERS[a % len(MARKERS)]))
    return out


def _headroom_note(rows: list[dict]) -> str:
    """``", KV 1.3x of 250 x 4096 tok"``: the least KV headroom of a series (capacity over
    users x (input + output) tokens) and the demand it is measured against."""
    have = [r for r in rows if _num(r.get("kv_headroom"))]
    if not have:
        return ""
    low = min(have, key=lambda r: r["kv_headroom"])
    return (f", KV {plain_number(low['kv_headroom'])}x of {low['users']} x "
            f"{low['input_len'] + low['output_len']} tok")


def preempted(row: dict) -> bool:
    """Whether the scenario ran out of KV cache: a request was preempted (and recomputed)."""
    n = row.get("preemptions")
    return _num(n) and n > 0


def decode_figure(result, dpi: int = DPI, layout: str = "fixed"):
    """System decode tokens/s against concurrent users, a panel per input/output pair."""
    return _per_pair_figure(result, "decode_tok_s", 1.0, "decode (tok/s, system)",
                            "Decode throughput vs concurrent users", dpi, layout=layout)


def per_chip_figure(result, dpi: int = DPI, layout: str = "fixed"):
    """Decode tokens/s per chip (system / chips) against users, a panel per input/output
    pair: systems of different sizes side by side."""
    return _per_pair_figure(result, "decode_tok_s_per_chip", 1.0, "decode (tok/s, per chip)",
                            "Decode throughput per chip vs concurrent users", dpi, layout=layout)


def power_figure(result, dpi: int = DPI, layout: str = "fixed"):
    """Average system power against users, a panel per input/output pair, each arch's TDP a
    thin grey line labelled in place."""
    return _per_pair_figure(result, "avg_power_w", 1.0, "average power (W, system)",
                            "Average power vs concurrent users", dpi, tdp=True, layout=layout)


def efficiency_figure(result, dpi: int = DPI, layout: str = "fixed"):
    """Output tokens per joule against users, a panel per input/output pair."""
    return _per_pair_figure(result, "tokens_per_j", 1.0, "tokens per joule",
                            "Energy efficiency vs concurrent users", dpi, layout=layout)


def ttft_figure(result, dpi: int = DPI, layout: str = "fixed"):
    """Mean TTFT (solid) and p99 (dashed) against input length, at the fewest and the most
    users, for the shortest output length; a log millisecond axis with plain labels.

    ``layout`` places the panels, title and legend (see :func:`npusim.figures.panels_figure`),
    as in every K-Perf figure.
    """
    ss = series(result)
    users = sorted({r["users"] for s in ss for r in s["rows"]}) or [1]
    panels = [users[0]] if len(users) == 1 else [users[0], users[-1]]
    out_len = min((r["output_len"] for s in ss for r in s["rows"]), default=0)
    fig = panels_figure((6.0 * len(panels), 6.0), dpi, layout)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    xs_all: set[int] = set()
    any_preempted = False
    for ax, u in zip(axes, panels):
        for s in ss:
            rows = sorted((r for r in s["rows"] if r["users"] == u
                           and r["output_len"] == out_len and _pos(r.get("ttft_mean_s"))),
                          key=lambda r: r["input_len"])
            if not rows:
                continue
            xs_all.update(r["input_len"] for r in rows)
            xs = [r["input_len"] for r in rows]
            ax.plot(xs, [1e3 * r["ttft_mean_s"] for r in rows], color=s["colour"],
                    ls=MEAN_STYLE, marker=s["marker"], label=s["label"])
            p99 = [r for r in rows if _pos(r.get("ttft_p99_s"))]
            if p99:
                ax.plot([r["input_len"] for r in p99], [1e3 * r["ttft_p99_s"] for r in p99],
                        color=s["colour"], ls=P99_STYLE, lw=1.0, marker=s["marker"],
                        mfc="none", alpha=0.8)
            any_preempted |= _mark_preempted(ax, rows, "input_len", "ttft_mean_s", 1e3)
        ax.set_title(f"{u} concurrent user{'s' if u > 1 else ''}, output {out_len} tokens",
                     y=1.0)         # placed: matplotlib need not look for a place
        ax.set_xlabel("input length (tokens)")
        ax.set_ylabel("time to first token (ms)")
        log_ticks(ax, sorted(xs_all), "x")
        if ax.has_data():
            ax.set_yscale("log")
            plain_log_axis(ax, "y")
        else:
            ax.yaxis.set_major_formatter(plain_formatter())
        ax.grid(True, which="both", alpha=0.3)
    extra = [("solid: TTFT mean", MEAN_STYLE), ("dashed, hollow markers: TTFT p99", P99_STYLE)]
    handles = _legend(fig, axes[0], ss, extra=extra, preempted=any_preempted)
    finish_panels(fig, axes, len(panels), f"Time to first token vs input length: {result.model}",
                  handles, layout, ncols=legend_columns(handles, fig.get_figwidth()),
                  fontsize=9)
    return fig


def _per_pair_figure(result, key: str, scale: float, ylabel: str, title: str, dpi: int,
                     tdp: bool = False, layout: str = "fixed"):
    ss = series(result)
    pairs = sorted({(r["input_len"], r["output_len"]) for r in result.records})
    ncols = 1 if len(pairs) == 1 else 2
    nrows = math.ceil(len(pairs) / ncols)
    fig = panels_figure((6.0 * ncols, 1.0 + 4.2 * nrows), dpi, layout)
    axes = list(fig.subplots(nrows, ncols, squeeze=False).flat)
    users = sorted({r["users"] for r in result.records})
    any_preempted = False
    for ax, (i, o) in zip(axes, pairs):
        for s in ss:
            rows = sorted((r for r in s["rows"] if r["input_len"] == i and r["output_len"] == o
                           and _num(r.get(key))), key=lambda r: r["users"])
            if rows:
                ax.plot([r["users"] for r in rows], [scale * r[key] for r in rows],
                        color=s["colour"], ls=MEAN_STYLE, marker=s["marker"], label=s["label"])
                any_preempted |= _mark_preempted(ax, rows, "users", key, scale)
        if tdp:
            _draw_tdp(ax, ss)
        ax.set_title(f"input {i} / output {o} tokens", y=1.0)    # placed: no search
        ax.set_xlabel("concurrent users")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)     # before the ticks are made, which then take it up
        log_ticks(ax, users, "x")
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(plain_formatter())
    for ax in axes[len(pairs):]:
        ax.set_visible(False)
    handles = _legend(fig, axes[0], ss, preempted=any_preempted)
    finish_panels(fig, axes, ncols, f"{title}: {result.model}", handles, layout,
                  ncols=legend_columns(handles, fig.get_figwidth()), fontsize=9)
    return fig


# assumption: at 9 pt, matplotlib's default sans-serif averages ~13 characters per inch; a
# legend entry also takes its marker and padding (~6 characters)
CHARS_PER_INCH = 13
ENTRY_PADDING = 6


def legend_columns(handles, width_in: float, most: int = 4) -> int:
    """As many legend columns (up to ``most``) as the longest label lets fit the figure's
    width, so long system labels wrap into rows instead of running off the figure."""
    longest = max((len(h.get_label()) for h in handles), default=0) + ENTRY_PADDING
    return max(1, min(len(handles), most, int(width_in * CHARS_PER_INCH // longest)))


def _draw_tdp(ax, ss: list[dict]) -> None:
    """Each arch's system TDP once, a thin grey line with its label on it."""
    from matplotlib.transforms import blended_transform_factory
    where = blended_transform_factory(ax.transAxes, ax.transData)
    done: set[str] = set()
    for s in ss:
        if s["arch"] in done or not _pos(s["tdp_w"]) or not s["rows"]:
            continue
        done.add(s["arch"])
        ax.axhline(s["tdp_w"], color="gray", lw=0.8, alpha=0.8, gid="tdp")
        ax.text(0.99, s["tdp_w"], f"{s['arch']} TDP {s['tdp_w']:,.0f} W", transform=where,
                ha="right", va="bottom", fontsize=8, color="dimgray")


def _mark_preempted(ax, rows: list[dict], xkey: str, ykey: str, scale: float) -> bool:
    """Ring the points whose scenario ran out of KV cache; True if any was ringed."""
    hit = [r for r in rows if preempted(r) and _num(r.get(ykey))]
    if hit:
        ax.plot([r[xkey] for r in hit], [scale * r[ykey] for r in hit], ls="none",
                marker="o", ms=14, mfc="none", mec="black", mew=1.3, zorder=5,
                gid=PREEMPTED_GID)
    return bool(hit)


def _legend(fig, ax, ss: list[dict], extra=(), preempted: bool = False) -> list:
    """Legend handles: every series (a series with no rows says why), then notes."""
    from matplotlib.lines import Line2D
    handles = []
    for s in ss:
        if s["rows"]:
            handles.append(Line2D([], [], color=s["colour"], ls=MEAN_STYLE,
                                  marker=s["marker"], label=s["label"]))
        else:
            handles.append(Line2D([], [], color=s["colour"], ls="none", marker="x",
                                  label=f"{s['label']}: {_brief(s['why'])}"))
    for text, ls in extra:
        handles.append(Line2D([], [], color="gray", ls=ls, label=text))
    if preempted:
        handles.append(Line2D([], [], ls="none", marker="o", ms=10, mfc="none", mec="black",
                              mew=1.3, label=PREEMPTED_NOTE))
    return handles


def _brief(why: str | None) -> str:
    """The kind of failure (``unsupported``, ``does not fit``); the sheets carry the reason."""
    kind = (why or "no data").partition(":")[0]
    return f"{kind} (see the status column)"


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _pos(x) -> bool:
    return _num(x) and x > 0


# --- terminal -------------------------------------------------------------------------------

# Short headers for the terminal (the spreadsheet has every column): key, header, scale, keep.
# ``keep`` orders what a narrow terminal drops first (lowest first; None: never dropped).
TERMINAL_SCENARIO = (
    ("arch", "arch", None, None), ("input_len", "in", None, None),
    ("output_len", "out", None, None), ("users", "users", None, None),
    ("ttft_mean_s", "TTFT ms", 1e3, 8), ("ttft_p99_s", "p99 ms", 1e3, 3),
    ("tpot_mean_s", "TPOT ms", 1e3, 6), ("prefill_tok_s", "prefill tok/s", None, 4),
    ("decode_tok_s", "decode tok/s", None, None),
    ("decode_tok_s_per_chip", "per chip", None, 9),
    ("decode_tok_s_per_user", "tok/s per user", None, 2),
    ("avg_power_w", "power W", None, 5), ("card_power_w", "card W", None, 6),
    ("card_power_w_low", "card W low", None, 4), ("card_power_w_high", "card W high", None, 4),
    ("system_power_w", "system W", None, 5), ("tokens_per_j", "tok/J", None, 7),
    ("kv_headroom", "KV room x", None, 8), ("status", "status", None, 1))
TERMINAL_SUMMARY = (
    ("arch", "arch", None, None), ("precision", "precision", None, None),
    ("chips", "chips", None, None), ("peak_decode_tok_s", "peak decode tok/s", None, None),
    ("peak_decode_tok_s_per_chip", "per chip", None, 9),
    ("peak_at", "at in/out/users", None, 2), ("best_ttft_s", "best TTFT ms", 1e3, 6),
    ("max_tokens_per_j", "max tok/J", None, 5),
    ("kv_headroom_min", "KV room x", None, 8),
    ("avg_power_w_at_peak", "power W at peak", None, 1))
_TEXT_COLUMNS = frozenset({"arch", "precision", "peak_at", "status"})


def print_kperf(result, con=None, scenarios: bool = True) -> None:
    """Print the summary, why each arch has its chips, the reason of each (arch, precision)
    that could not run, and, when ``scenarios``, the scenario table per model and precision.

    ``KV room x`` is the KV capacity over the demand of users x (input + output) tokens: the
    least of the matrix in the summary, the scenario's in its table.

    Tables fit the console's width: when it is narrow, the least important columns are left
    out (and named below the table); a number is always shown whole.
    """
    from .terminal import console, print_fitted
    con = con or console()
    rows = result.summary()
    cols = list(TERMINAL_SUMMARY)
    archs = list(result.archs)
    if len(archs) > 1:
        ref = reference_system(rows, archs[0])
        cols += [("decode_ratio", f"decode vs {ref}", None, 8),
                 ("decode_per_chip_ratio", f"per chip vs {archs[0]}", None, 3),
                 ("perf_per_w_ratio", f"perf/W vs {ref}", None, 7)]
    print_fitted(con, [_terminal_column(c) for c in cols],
                 [[_brief_cell(_scaled(r.get(k), sc)) for k, _, sc, _ in cols]
                  for r in rows if r["status"] == "ok"],
                 title=f"K-Perf summary: {result.model}", where="kperf.xlsx has every column")
    for line in chips_lines(result.runs) + stack_lines(result.config):
        con.print(line, highlight=False, markup=False)
    for r in rows:
        if r["status"] != "ok":
            con.print(f"[bold]{r['arch']} {r['precision']}[/bold]: {r['status']}",
                      highlight=False)
    if not scenarios:
        return
    for (model, precision), recs in _by_model_precision(result.records).items():
        ran = {r["arch"] for r in recs if r.get("status") == "ok"}
        recs = [r for r in recs if r["arch"] in ran]
        if not recs:
            continue
        print_fitted(con, [_terminal_column(c) for c in TERMINAL_SCENARIO],
                     [[_brief_cell(_scaled(r.get(k), sc)) for k, _, sc, _ in TERMINAL_SCENARIO]
                      for r in recs],
                     title=f"{model} {precision}", where="kperf.csv has every column")
    from .kperf_power import band_note
    note = band_note(result)
    if note:
        con.print(note, highlight=False, markup=False)


def stack_lines(config: dict) -> list[str]:
    """The serving stack's host time, when the run charges one (``--stack``).

    >>> stack_lines({"stack": "vllm-0.5"})[0].startswith("serving stack vllm-0.5: ")
    True
    >>> stack_lines({"stack": None})
    []
    """
    from ..workloads.stack import load_stack
    stack = load_stack((config or {}).get("stack"))
    if stack is None:
        return []
    return [f"serving stack {stack.name}: {stack.description}; host time after each step "
            f"{stack.step_s * 1e3:g} ms + {stack.per_sequence_s * 1e3:g} ms per sequence"
            f" + {stack.multi_chip_s * 1e3:g} ms on several chips, the chips waiting at their "
            f"loaded floor"]


def chips_lines(runs: Sequence[dict]) -> list[str]:
    """One line per arch (per arch and precision where they differ): its chips and why.

    Examples
    --------
    >>> chips_lines([dict(arch="rngd", precision=p, chips=4, chips_reason="S16")
    ...              for p in ("bf16", "fp8")])
    ['chips: 4 x rngd (S16)']
    """
    out: list[str] = []
    by_arch: dict[str, list[dict]] = {}
    for r in runs:
        by_arch.setdefault(r["arch"], []).append(r)
    for arch, rs in by_arch.items():
        if len({(r.get("chips"), r.get("chips_reason"), r.get("parallel")) for r in rs}) == 1:
            rs = rs[:1]
        for r in rs:
            what = system_label(arch, r.get("chips"))
            if len(rs) > 1:
                what += f" {r['precision']}"
            why = r.get("chips_reason")
            layout = (f", {r['parallel']}: {r.get('parallel_why') or 'chosen'}"
                      if (r.get("chips") or 1) > 1 and r.get("parallel") else "")
            out.append(f"chips: {what}" + (f" ({why})" if why else "") + layout)
    return out


def _terminal_column(col: tuple):
    from .terminal import Column
    key, header, _, keep = col
    return Column(header, "left" if key in _TEXT_COLUMNS else "right", keep=keep)


def _brief_cell(v: Any) -> str:
    """A terminal cell: thousands grouped, three significant digits below 1,000, no exponent,
    and a status cut to its kind (``unsupported``)."""
    if v is None:
        return "-"
    if isinstance(v, str):
        return v.partition(":")[0]
    if isinstance(v, float):
        return plain_number(v) if math.isfinite(v) else "-"   # NaN: no value (no power band)
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    return str(v)
