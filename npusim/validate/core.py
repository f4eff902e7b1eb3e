"""Simulate the measured rows of ``npusim/validate/data/measured.csv`` and compare: ``npusim validate``.

Each simulable row is run the way it was measured: a ``microbench`` row on the engine (one GEMM
from ``gemm:M,N,K``, or the long sequential DRAM read for ``stream``); an ``snn`` row, measured
on a spiking-core chip, by :mod:`npusim.validate.snn_rows` (its network on the device preset
it names, through :func:`npusim.engine.snn.run`); an LLM row through the
serving simulation with one :class:`~npusim.workloads.stepcost.StepCostModel` per (arch, model,
precision, chips, overrides), reused across rows. The load follows the row's ``sim_mode``:

- ``latency``: one user (closed loop), one request at a time;
- ``batch``: ``sim_users`` users in a closed loop (a static batch refilled as it drains);
- ``offline``: maximum load, a closed loop of ``sim_users`` users if the row states them, else
  ``vllm serve``'s default ``max_num_seqs`` for the device (1024 on an 80 GB H100, 256 on an
  A100 or a smaller device): more users than the scheduler may run only wait in its queue;
- ``server``: an open loop of Poisson arrivals at ``sim_rate`` requests per second.

The scheduler follows the optional ``sim_scheduler`` column: empty or ``vllm`` is vLLM V1 with
``vllm serve``'s defaults for the device, ``max_num_seqs`` raised to the row's users when it
states more (a static batch runs all its sequences at once); ``trtllm-bench`` is TensorRT-LLM's
``GUARANTEED_NO_EVICT`` scheduler with the limits ``trtllm-bench throughput`` derives from the KV
capacity and the lengths (:meth:`~npusim.workloads.serving.ServingConfig.trtllm_bench`), and an
``offline`` row without users then runs at that ``max_batch_size``. A ``sim_scheduler`` that
names a serving-stack preset (``vllm-0.5``, :mod:`npusim.workloads.stack`) is vLLM's scheduler
with that older engine's host time after every step, the chips waiting at their loaded floor.

A ``graph`` row is one whole-model inference (MLPerf SingleStream and Offline rows): its
``sim_model`` names a graph builder of :mod:`npusim.graphs.mlperf` or an ``.onnx`` file,
``sim_users`` the compiled batch, ``sim_input_len`` BERT's sequence length; the metrics are the
batch's latency ``latency_s`` and ``samples_s`` = batch / latency. How those read an MLPerf
measurement (mean latency, runner threads that hide the host) is in
:mod:`npusim.validate.graph_rows`.

An ``idle`` row is a chip powered with nothing running (``idle_power_w``), or with a model's
weights loaded and no request (``loaded_idle_power_w``): :func:`idle_power` reads the arch,
no workload runs. Power and energy rows say where they were measured in the optional
``sim_boundary`` column: ``card`` (accelerator boards, NVML or ``nvidia-smi``; empty means
card) or ``system`` (the whole server at the wall, as MLPerf's analyzer measures it). A
``system`` row names its server in the ``sim_host`` column (a preset of ``npusim/archs/hosts``
or a host YAML path relative to the data file; :mod:`npusim.arch.host`): its cards are
simulated as for a card row, then the host's CPUs, memory, NICs, switches, drives, fans, idle
slots and supply losses are added (:func:`system_power`). The host is busy on a graph or LLM
row (the accelerators run back to back) and idle on an ``idle`` row. An LLM system row whose
``sim_note`` layout ("parallel tp=2") uses fewer chips than ``sim_chips`` runs ``sim_chips``
over the layout's chips identical copies (MLPerf Offline's data parallelism).

A ``sim_note`` that states "parallel tp=N" (or "tp=N,pp=M") runs the layout the row's stack
used instead of the one npusim would choose (:func:`row_parallel`).

A ``sim_note`` that states "prefill chunk N" (vllm-rbln's ``prefill_chunk_size``, say) caps
each step's tokens at N, as that stack does.

The optional ``sim_graphs`` column says whether the stack replays each step's kernels from CUDA
graphs (``yes``): the step costs then charge the arch's ``graph_launch_overhead`` per kernel
instead of the standalone ``launch_overhead``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..arch import load_arch
from ..errors import ModelError, NpusimError
from ..files import csv_rows, decode_text, make_folder, read_bytes, write_text
from . import graph_rows, snn_rows
from .microbench import allreduce_busbw_gbs, gemm_tflops, stream_tbps

DATA_WHAT, DATA_FLAG = "the measured data", "--data"   # how errors name the file
REQUIRED = ("id", "sim_arch", "sim_chips", "sim_model", "sim_precision", "sim_mode",
            "sim_users", "sim_rate", "sim_input_len", "sim_output_len", "sim_metric",
            "sim_value", "simulable", "reason", "sim_note")
MODES = ("offline", "server", "latency", "batch", "microbench", "snn", "graph", "idle")
SCHEDULERS = ("vllm", "trtllm-bench")
# sim_metric -> key of the serving summary (decode_tok_s_per_chip divides by the chips)
SERVING_METRICS = {
    "decode_tok_s": "decode_tok_s",
    "decode_tok_s_per_chip": "decode_tok_s",
    "prefill_tok_s": "prefill_tok_s",
    "ttft_s": "ttft_mean_s",
    "tpot_s": "tpot_mean_s",
    "e2e_s": "e2e_mean_s",
    "energy_per_token_j": "energy_per_token_j",
    "avg_power_w": "avg_power_w",
    "avg_power_w_per_chip": "avg_power_w",
}
PER_CHIP = ("decode_tok_s_per_chip", "avg_power_w_per_chip")   # divided by sim_chips
IDLE_METRICS = ("idle_power_w", "loaded_idle_power_w")
# Metrics whose value depends on where the meter sits (the sim_boundary column)
POWER_METRICS = ("avg_power_w", "avg_power_w_per_chip", "energy_per_token_j") + IDLE_METRICS
BOUNDARIES = ("card", "system")
SYSTEM_REASON = "system boundary: needs the host model (issue 13 item 2)"
SYSTEM_METRICS = ("avg_power_w",) + IDLE_METRICS   # what a system row may state
MICRO_METRICS = ("gemm_tflops", "dram_tbps", "allreduce_busbw_gbs", "pim_peak_tflops",
                 "pim_internal_gbs", "pim_bw_ratio", "pim_gemv_speedup")
PIM_METRICS = MICRO_METRICS[3:]
MAX_SET = 20                  # arch overrides one row may state in sim_set
GEMM_DTYPES = {"fp8": "fp8_e4m3", "fp16": "fp16", "bf16": "bf16", "int8": "int8"}
# Requests simulated per row: enough for a steady state at every load, few enough for seconds.
LATENCY_REQUESTS = 3          # one at a time: every request is identical after the first
CLOSED_LOOP_ROUNDS = 2        # measured requests = rounds x users, after one warm-up round


@dataclass(frozen=True)
class RowResult:
    """One measured row, simulated.

    Attributes
    ----------
    id, arch, model, metric, mode : str
        From the data file (``arch`` as written in ``sim_arch``).
    measured : float
        ``sim_value``.
    predicted : float or None
        None when the simulation failed (``error_message`` says why).
    error : float or None
        Signed relative error ``predicted / measured - 1``.
    fitted : bool
        The row's id is in the ``rows`` of a fitted calibration entry of its arch.
    load : str
        The load simulated (e.g. ``"1024 users (max load)"``).
    note : str
        The row's ``sim_note``.
    error_message : str
        Why the simulation failed, empty when it ran.
    boundary : str
        Where a power row's meter sat: ``card`` (also every non-power row) or ``system``.
    """

    id: str
    arch: str
    chips: int
    model: str
    precision: str
    mode: str
    input_len: int | None
    output_len: int | None
    metric: str
    measured: float
    predicted: float | None
    error: float | None
    fitted: bool
    load: str
    note: str
    error_message: str = ""
    boundary: str = "card"


@dataclass
class ValidationResult:
    """What :func:`validate` found; ``report`` and ``plot`` are the report and the scatter it
    wrote, ``files`` every file it wrote (the report first), for a caller to list."""

    rows: list[RowResult]
    aggregates: list[dict]
    not_simulable: dict[str, int]
    calibration: dict[str, dict]
    microchecks: list[dict]
    data: Path
    data_sha256: str
    report: Path | None = None
    plot: Path | None = None
    summary_markdown: str = ""
    npu_summary_markdown: str = ""
    meta: dict = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


# ----------------------------------------------------------------------------- reading rows

def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a measured-data CSV (``npusim/validate/data/measured.csv``'s columns).

    The file must be a regular file of UTF-8 text (a byte-order mark is allowed), with a header
    holding every column of :data:`REQUIRED`, a unique id per row, and, on every row marked
    ``simulable`` yes, simulation columns :func:`check_row` accepts.

    Raises
    ------
    NpusimError
        Naming the file, the line and the column at fault, and the fix.
    """
    return _read_measured(Path(path))[0]


def _read_measured(path: Path) -> tuple[list[dict[str, str]], str]:
    """The checked rows of a measured-data file and the SHA-256 of the bytes they came from."""
    data = read_bytes(path, DATA_WHAT, DATA_FLAG)
    table = csv_rows(decode_text(data, path, DATA_WHAT, DATA_FLAG), path, DATA_WHAT, DATA_FLAG)
    if not table:
        raise NpusimError(f"{path}: the file is empty; it needs a header row with the columns "
                          f"of npusim/validate/data/measured.csv (see validation/README.md)")
    head_line, header = table[0]
    names = [h.strip() for h in header]
    _check_header(path, head_line, names)
    rows, seen = [], set()
    for line, cells in table[1:]:
        if len(cells) > len(names) and any(c.strip() for c in cells[len(names):]):
            raise NpusimError(f"{path}, line {line}: {len(cells)} cells but the header has "
                              f"{len(names)} columns; quote a cell that holds a comma")
        row = {n: (cells[j] if j < len(cells) else "") for j, n in enumerate(names) if n}
        rid = row["id"].strip()
        if not rid or rid in seen:
            raise NpusimError(f"{path}, line {line}, column id: row id {rid!r} is empty or "
                              f"repeated; give every row a unique id")
        seen.add(rid)
        row["id"] = rid
        rows.append((line, row))
    for line, row in rows:      # ids first: a repeated id is the likelier mistake
        check_row(row, f"{path}, line {line} (row {row['id']})")
    return [r for _, r in rows], hashlib.sha256(data).hexdigest()


def _check_header(path: Path, line: int, names: list[str]) -> None:
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        hint = ""
        if len([n for n in names if n]) <= 1 and any(d in "".join(names) for d in ";\t|"):
            hint = " (the header holds no comma: npusim reads comma-separated files)"
        raise NpusimError(f"{path}, line {line}: missing column(s) {', '.join(missing)}"
                          f"{hint}; the file needs npusim/validate/data/measured.csv's simulation "
                          f"columns (see validation/README.md)")
    dup = sorted({n for n in names if n and names.count(n) > 1})
    if dup:
        raise NpusimError(f"{path}, line {line}: column(s) {', '.join(dup)} appear more than "
                          f"once in the header; keep one of each")


# Upper bounds of a measured row's sizes (assumptions, far beyond any published measurement:
# the data's largest are 1,536 users, 8 chips, 32768^3 GEMMs and 8 GiB all-reduces); a value
# past them is a typo, and would make a row run for hours or overflow the kernels.
MAX_USERS = 100_000
MAX_CHIPS = 100_000
MAX_TOKENS = 10_000_000
MAX_RATE = 1e6                  # requests per second
MAX_GRAPH_RATE = 1e8            # samples per second of a graph row's system (MLPerf Server)
MAX_GEMM_DIM = 2**24
MAX_ALLREDUCE_BYTES = 2**50     # 1 PiB


def check_row(row: Mapping[str, str], where: str) -> None:
    """Check the simulation columns of one row, each against its own meaning.

    Rows whose ``simulable`` is not ``yes`` are only checked for ``simulable`` itself (yes,
    no or empty). The mode comes first, so a bad ``sim_mode`` is reported as such and the
    metric is then checked against the metrics of that mode.

    Raises
    ------
    NpusimError
        ``where`` (file, line, row), the column and the values it may take.

    Examples
    --------
    >>> check_row({"simulable": "yes", "sim_arch": "h100", "sim_mode": "bogus",
    ...            "sim_metric": "ttft_s"}, "f.csv")
    Traceback (most recent call last):
    ...
    npusim.errors.NpusimError: f.csv, column sim_mode: 'bogus' is not one of offline, server, latency, batch, microbench, snn, graph, idle
    """
    simulable = (row.get("simulable") or "").strip().lower()
    if simulable not in ("yes", "no", ""):
        raise NpusimError(f"{where}, column simulable: {row.get('simulable')!r} must be yes, "
                          f"no or empty")
    if simulable != "yes":
        return
    if not (row.get("sim_arch") or "").strip():
        raise NpusimError(f"{where}, column sim_arch: empty on a simulable row; name a shipped "
                          f"arch (npusim archs) or an arch YAML file, or set simulable to no")
    mode = (row.get("sim_mode") or "").strip()
    if mode not in MODES:
        raise NpusimError(f"{where}, column sim_mode: {mode!r} is not one of "
                          f"{', '.join(MODES)}")
    metric = (row.get("sim_metric") or "").strip()
    metrics = {"microbench": MICRO_METRICS, "snn": snn_rows.SNN_METRICS,
               "graph": graph_rows.GRAPH_METRICS,
               "idle": IDLE_METRICS}.get(mode, tuple(SERVING_METRICS))
    if metric not in metrics:
        raise NpusimError(f"{where}, column sim_metric: {metric!r} is not a metric of "
                          f"sim_mode {mode}; use one of {', '.join(metrics)}")
    row_boundary(row, where)
    _float(row, "sim_value", where)
    _bounded(row, "sim_chips", where, _int(row, "sim_chips", where), MAX_CHIPS)
    _bounded(row, "sim_users", where, _int(row, "sim_users", where), MAX_USERS)
    model = (row.get("sim_model") or "").strip()
    items = row_set(row, where)
    if mode == "microbench":
        _check_microbench(row, where, model, metric)
        return
    if mode == "snn":
        snn_rows.check(row, where, items)
        return
    if mode == "idle":
        _check_idle(row, where)
        return
    if mode == "graph":
        from ..frontend.llm import MAX_BATCH
        graph_rows.check(row, where, _int(row, "sim_users", where),
                         _int(row, "sim_input_len", where), _int(row, "sim_chips", where),
                         MAX_BATCH)
        _bounded(row, "sim_rate", where, _graph_rate(row, where, 1), MAX_GRAPH_RATE)
        return
    if not model:
        raise NpusimError(f"{where}, column sim_model: empty; name a built-in model "
                          f"(npusim models)")
    row_precision(row, where)
    row_scheduler(row, where)
    row_graphs(row, where)
    for col in ("sim_input_len", "sim_output_len"):
        if _bounded(row, col, where, _int(row, col, where), MAX_TOKENS) is None:
            raise NpusimError(f"{where}, column {col}: empty; an LLM row needs its input and "
                              f"output lengths in tokens")
    if mode == "batch" and _int(row, "sim_users", where) is None:
        raise NpusimError(f"{where}, column sim_users: empty; sim_mode batch needs the batch "
                          f"size")
    if mode == "server":
        _bounded(row, "sim_rate", where, _float(row, "sim_rate", where), MAX_RATE)


def row_boundary(row: Mapping[str, str], where: str | None = None) -> str:
    """Where a power or energy row was measured: ``card`` (the optional ``sim_boundary``
    column, empty meaning card) or ``system`` (the whole server at the wall, which needs the
    row's ``sim_host``).

    Raises
    ------
    NpusimError
        A value other than card, system or empty; a boundary on a metric that is not power
        or energy; ``system`` without a ``sim_host``, or on a metric other than
        :data:`SYSTEM_METRICS`; a ``sim_host`` on a card row.

    Examples
    --------
    >>> row_boundary({"id": "W1", "sim_metric": "avg_power_w", "sim_boundary": "system"})
    Traceback (most recent call last):
    ...
    npusim.errors.NpusimError: row W1, column sim_host: empty on a system-boundary row; name the server around the chips (a preset of npusim/archs/hosts, e.g. dgx-h100, or a host YAML path) or set simulable to no
    >>> row_boundary({"id": "W1", "sim_metric": "avg_power_w", "sim_boundary": "system",
    ...               "sim_host": "dgx-h100"})
    'system'
    """
    where = where or f"row {row.get('id', '?')}"
    text = (row.get("sim_boundary") or "").strip().lower()
    metric = (row.get("sim_metric") or "").strip()
    if text not in ("",) + BOUNDARIES:
        raise NpusimError(f"{where}, column sim_boundary: {row.get('sim_boundary')!r} must be "
                          f"{' or '.join(BOUNDARIES)} (empty: card)")
    if text and metric not in POWER_METRICS:
        raise NpusimError(f"{where}, column sim_boundary: {metric!r} is not a power or energy "
                          f"metric ({', '.join(POWER_METRICS)}); leave the column empty")
    host = (row.get("sim_host") or "").strip()
    if text == "system":
        if metric not in SYSTEM_METRICS:
            raise NpusimError(f"{where}, column sim_metric: {metric!r} on a system-boundary "
                              f"row; npusim gives the server's power at the wall for "
                              f"{', '.join(SYSTEM_METRICS)}")
        if not host:
            raise NpusimError(f"{where}, column sim_host: empty on a system-boundary row; "
                              f"name the server around the chips (a preset of "
                              f"npusim/archs/hosts, e.g. dgx-h100, or a host YAML path) or "
                              f"set simulable to no")
        if not host.endswith((".yaml", ".yml")):
            from ..arch.host import host_names
            if host not in host_names():
                raise NpusimError(f"{where}, column sim_host: {host!r} is not a host preset "
                                  f"({', '.join(host_names())}); name one or give a host "
                                  f"YAML path (relative to the data file)")
        return "system"
    if host:
        raise NpusimError(f"{where}, column sim_host: {host!r} on a card-boundary row; a host "
                          f"only adds to power at the wall (set sim_boundary to system) or "
                          f"leave the column empty")
    return "card"


def _check_idle(row: Mapping[str, str], where: str) -> None:
    """An idle row runs nothing: only sim_arch, sim_chips and the value are read."""
    for col in ("sim_model", "sim_precision", "sim_users", "sim_rate", "sim_input_len",
                "sim_output_len"):
        if (row.get(col) or "").strip():
            raise NpusimError(f"{where}, column {col}: not used by sim_mode idle (no workload "
                              f"runs; name a loaded model in notes); leave it empty")


def _bounded(row: Mapping[str, str], col: str, where: str, v, most: float):
    if v is not None and v > most:
        raise NpusimError(f"{where}, column {col}: {row.get(col, '').strip()!r} is more than "
                          f"{most:,g}; check the value")
    return v


def _check_microbench(row: Mapping[str, str], where: str, model: str, metric: str) -> None:
    want = {"gemm_tflops": "gemm:M,N,K", "dram_tbps": "stream",
            "allreduce_busbw_gbs": "allreduce:BYTES", "pim_peak_tflops": "pim",
            "pim_internal_gbs": "pim", "pim_bw_ratio": "pim",
            "pim_gemv_speedup": "pim-gemv:M,K"}[metric]
    gemm = re.fullmatch(r"gemm:(\d+),(\d+),(\d+)", model)
    reduce = re.fullmatch(r"allreduce:(\d+)", model)
    gemv = re.fullmatch(r"pim-gemv:(\d+),(\d+)", model)
    ok = {"gemm_tflops": gemm, "dram_tbps": model == "stream",
          "allreduce_busbw_gbs": reduce, "pim_peak_tflops": model == "pim",
          "pim_internal_gbs": model == "pim", "pim_bw_ratio": model == "pim",
          "pim_gemv_speedup": gemv}[metric]
    if not ok:
        raise NpusimError(f"{where}, column sim_model: {model!r} does not go with sim_metric "
                          f"{metric}; write {want}")
    for match, what in ((gemm, "GEMM"), (gemv, "GEMV")):
        if match and not all(1 <= int(x) <= MAX_GEMM_DIM for x in match.groups()):
            raise NpusimError(f"{where}, column sim_model: {model!r}: each {what} dimension "
                              f"is 1 to {MAX_GEMM_DIM:,}")
    prec = (row.get("sim_precision") or "").strip()
    if (gemm or metric in PIM_METRICS) and prec not in GEMM_DTYPES:
        what = "a GEMM row needs one" if gemm else "a PIM row needs the dtype its units run, one"
        raise NpusimError(f"{where}, column sim_precision: {prec!r}; {what} of "
                          f"{', '.join(GEMM_DTYPES)}")
    if reduce:
        if not 1 <= int(reduce.group(1)) <= MAX_ALLREDUCE_BYTES:
            raise NpusimError(f"{where}, column sim_model: {model!r}: the message is 1 to "
                              f"{MAX_ALLREDUCE_BYTES:,} bytes")
        if (_int(row, "sim_chips", where) or 1) < 2:
            raise NpusimError(f"{where}, column sim_chips: an all-reduce row needs 2 or more "
                              f"chips")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (the report names the data it was made from)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _int(row: dict, col: str, where: str, default: int | None = None) -> int | None:
    text = (row.get(col) or "").strip()
    if not text:
        return default
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v == int(v) and v >= 1):
        raise NpusimError(f"{where}, column {col}: {text!r} is not a positive integer; fix "
                          f"the row or mark it simulable=no with a reason")
    return int(v)


def _float(row: dict, col: str, where: str) -> float:
    text = (row.get(col) or "").strip()
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise NpusimError(f"{where}, column {col}: {text!r} is not a positive number; fix "
                          f"the row or mark it simulable=no with a reason")
    return v


def arch_spec(row: dict, base: Path) -> str:
    """The arch to load for a row: a shipped name, or a YAML path relative to the data file."""
    name = (row.get("sim_arch") or "").strip()
    if name.endswith((".yaml", ".yml")):
        p = Path(name)
        return str(p if p.is_absolute() else (base / p).resolve())
    return name


def host_spec(row: Mapping[str, str], base: Path) -> str:
    """The host a system row names: a preset name, or a YAML path relative to the data file."""
    name = (row.get("sim_host") or "").strip()
    if name.endswith((".yaml", ".yml")):
        p = Path(name)
        return str(p if p.is_absolute() else (base / p).resolve())
    return name


def system_power(host, arch, card_w: float, chips: int, busy: float) -> tuple[float, str]:
    """Power at the wall (W) of ``chips`` cards of ``card_w`` each in ``host``'s servers, the
    host ``busy`` (1: accelerators running, 0: idle), and how it was made up.

    >>> from npusim.arch import load_arch
    >>> from npusim.arch.host import load_host
    >>> w, how = system_power(load_host("xe9680-h100"), load_arch("h100"), 71.0, 8, 0.0)
    >>> round(w)
    2065
    """
    from ..arch.host import card_idle_w
    p = host.system(card_w, chips, card_idle_w(arch), busy)
    return p.system_w, (f"host {host.name}: cards {p.cards_w:,.0f} W + idle slots "
                        f"{p.spare_w:,.0f} W + parts {p.components_w:,.0f} W + fans "
                        f"{p.fans_w:,.0f} W, PSU {p.efficiency:.1%}")


# ----------------------------------------------------------------------------- one row

@dataclass(frozen=True)
class LlmSetup:
    """How an LLM row is simulated: precision, arch overrides, load and scheduler limits."""

    precision: Any
    overrides: tuple[str, ...]
    users: int | None
    rate: float | None
    load: str
    scheduler: str = "vllm"
    graphs: bool = False


def row_precision(row: Mapping[str, str], where: str | None = None):
    """The row's precision as npusim runs it, refined by what ``sim_note`` states.

    ``weight-only int8`` keeps bf16 activations; ``int4_g32`` is int4 weights with a scale per
    32 values (gpt-fast); ``--fp8_kv_cache`` (or "fp8 weights and KV cache", or "KV cache
    fp8") stores the KV cache in fp8 instead of the default 16 bits, "KV cache int8" in int8.
    """
    from ..workloads.stepcost import PRECISIONS, Precision
    name = (row.get("sim_precision") or "").strip()
    note = row.get("sim_note") or ""
    if name not in PRECISIONS:
        raise NpusimError(f"{where or 'row ' + row['id']}, column sim_precision: {name!r} is "
                          f"not one of {', '.join(PRECISIONS)}")
    p = PRECISIONS[name]
    if name == "int8" and "weight-only int8" in note:
        p = Precision("int8 weight-only", "int8", "bf16", "bf16")
    elif name == "int4" and "int4_g32" in note:
        p = Precision("int4_g32 weight-only", "int4_g32", "bf16", "bf16")
    if re.search(r"fp8_kv_cache|fp8 weights and KV cache|KV cache fp8", note):
        p = Precision(f"{p.name} kv-fp8", p.weights, p.activations, "fp8_e4m3")
    elif "KV cache int8" in note:
        p = Precision(f"{p.name} kv-int8", p.weights, p.activations, "int8")
    return p


def row_overrides(row: dict) -> tuple[str, ...]:
    """Arch overrides a row's conditions ask for: a power-limited board's TDP (stated in
    ``sim_note``), then the optional ``sim_set`` column's ``field=value`` items, separated by
    ``;`` (the hardware as measured, e.g. one HBM stack of a four-stack arch)."""
    m = re.search(r"TDP overridden to (\d+(?:\.\d+)?) ?W", row.get("sim_note") or "")
    out = (f"power.tdp={m.group(1)} W",) if m else ()
    return out + row_set(row)


def row_set(row: Mapping[str, str], where: str | None = None) -> tuple[str, ...]:
    """The ``sim_set`` column as override strings (empty when absent).

    >>> row_set({"id": "X", "sim_set": "dram.channels=16; dram.bandwidth=307.2 GB/s"})
    ('dram.channels=16', 'dram.bandwidth=307.2 GB/s')
    """
    text = (row.get("sim_set") or "").strip()
    items = tuple(x.strip() for x in text.split(";") if x.strip()) if text else ()
    where = where or f"row {row.get('id', '?')}"
    if len(items) > MAX_SET:
        raise NpusimError(f"{where}, column sim_set: {len(items)} overrides; at most {MAX_SET}")
    for x in items:
        if "=" not in x or not x.split("=", 1)[0].strip():
            raise NpusimError(f"{where}, column sim_set: {x[:60]!r} is not field=value; write "
                              f"e.g. dram.channels=16; dram.bandwidth=307.2 GB/s")
    return items


def row_parallel(row: Mapping[str, str]) -> str | None:
    """The layout a row's stack used, where its ``sim_note`` states one ("parallel tp=2" or
    "parallel tp=2,pp=2"); None lets the cost model choose (stepcost's module docstring).

    >>> row_parallel({"sim_note": "TP over the cards: parallel tp=2 (vendor)"})
    'tp=2'
    """
    m = re.search(r"parallel (tp=\d+(?:,pp=\d+)?|pp=\d+)", row.get("sim_note") or "")
    return m.group(1) if m else None


def row_scheduler(row: Mapping[str, str], where: str | None = None) -> str:
    """The row's ``sim_scheduler`` (``vllm`` when the column is absent or empty)."""
    from ..workloads.stack import stack_names
    name = (row.get("sim_scheduler") or "").strip() or "vllm"
    if name not in SCHEDULERS and name not in stack_names():
        names = ", ".join(SCHEDULERS + tuple(stack_names()))
        raise NpusimError(f"{where or 'row ' + row['id']}, column sim_scheduler: {name!r} is "
                          f"not one of {names} (leave it empty for vllm)")
    return name


def row_graphs(row: Mapping[str, str], where: str | None = None) -> bool:
    """Whether the row's stack replays its kernels from CUDA graphs (``sim_graphs`` yes/no;
    empty means no: a stack is only credited with graphs where its record shows them)."""
    text = (row.get("sim_graphs") or "").strip().lower()
    if text not in ("", "yes", "no"):
        raise NpusimError(f"{where or 'row ' + row['id']}, column sim_graphs: {text!r} must "
                          f"be yes, no or empty")
    return text == "yes"


def llm_setup(row: dict, arch) -> LlmSetup:
    """Precision, overrides and load of an LLM row on ``arch`` (see the module docstring).

    An ``offline`` row without users under ``trtllm-bench`` leaves ``users`` None: the load is
    the scheduler's ``max_batch_size``, which needs the cost model's KV capacity (:func:`_serve`).
    """
    from ..workloads.serving import ServingConfig
    where = f"row {row['id']}"
    mode = row["sim_mode"]
    scheduler = row_scheduler(row)
    users = _int(row, "sim_users", where)
    rate = None
    if mode == "latency":
        users, load = 1, "1 user"
    elif mode == "batch":
        if users is None:
            raise NpusimError(f"{where}: sim_mode batch needs sim_users (the batch size)")
        load = f"{users} users (closed loop)"
    elif mode == "offline":
        if users is None and scheduler == "trtllm-bench":
            load = "max load: trtllm-bench max_batch_size"
        elif users is None:
            users = ServingConfig.vllm_serve_defaults(arch.dram.capacity, arch.name).max_num_seqs
            load = f"{users} users (max load: vllm max_num_seqs)"
        else:
            load = f"{users} users (max load)"
    elif mode == "server":
        rate, users = _float(row, "sim_rate", where), None
        load = f"{rate:g} req/s (open loop)"
    else:
        raise NpusimError(f"{where}: sim_mode {mode!r} is not one of {', '.join(MODES)}")
    if scheduler not in SCHEDULERS:
        load += f"; {scheduler} host time per step"
    return LlmSetup(row_precision(row), row_overrides(row), users, rate, load, scheduler,
                    row_graphs(row))


class _ExtraStep:
    """A step cost with a different per-iteration overhead, without re-running the engine."""

    def __init__(self, base, extra_s: float) -> None:
        self._base, self._extra = base, extra_s
        for name in ("kv_capacity_tokens", "kv_block_tokens", "chips", "static_power_w",
                     "tdp_w", "parallel"):
            setattr(self, name, getattr(base, name))

    def step(self, prefill, decode):
        from ..workloads.stepcost import StepResult
        r = self._base.step(prefill, decode)
        if r.seconds == 0:
            return r
        return StepResult(r.seconds + self._extra, r.energy_j + self._extra * self.static_power_w)


class Simulator:
    """Simulates rows; keeps one cost model per (arch, model, precision, chips, overrides)
    and one lowered graph per graph row's (graph, batch, sequence, precision).

    Parameters
    ----------
    base : Path
        Folder of the data file (relative arch paths are resolved against it).
    archs : mapping, optional
        Arch files to simulate instead of a row's ``sim_arch`` (``{"h100": "out/h100.yaml"}``):
        how rows run on an arch that ``--fit`` wrote outside the package.
    """

    def __init__(self, base: Path, archs: Mapping[str, str | Path] | None = None) -> None:
        self.base = base
        self.archs = {str(k): str(v) for k, v in (archs or {}).items()}
        self._costs: dict[tuple, Any] = {}
        self._archs: dict[tuple, Any] = {}
        self._graphs: dict[tuple, Any] = {}
        self._hosts: dict[str, Any] = {}

    def host(self, row: dict):
        """The host of a system row (``sim_host``), loaded once per file; errors name the row."""
        from ..arch.host import load_host
        spec = host_spec(row, self.base)
        if spec not in self._hosts:
            try:
                self._hosts[spec] = load_host(spec)
            except NpusimError as e:
                raise type(e)(f"row {row['id']}, column sim_host: {e}") from None
        return self._hosts[spec]

    def spec(self, row: dict) -> str:
        """The arch a row runs on: its :func:`arch_spec`, or the file standing in for it."""
        spec = arch_spec(row, self.base)
        return self.archs.get(spec, spec)

    def arch(self, row: dict, overrides: Sequence[str] = ()):
        key = (self.spec(row), tuple(overrides))
        if key not in self._archs:
            if not key[0]:
                raise NpusimError(f"row {row['id']}: sim_arch is empty; name a shipped arch "
                                  f"(npusim archs) or an arch YAML file")
            self._archs[key] = load_arch(key[0], list(overrides) or None)
        return self._archs[key]

    def graph_spec(self, row: dict) -> graph_rows.GraphSpec:
        """What a ``graph`` row runs (its ``.onnx`` path resolved against the data file)."""
        where = f"row {row['id']}"
        return graph_rows.graph_spec(row, self.base, _int(row, "sim_users", where),
                                     _int(row, "sim_input_len", where))

    def graph(self, spec: graph_rows.GraphSpec, arch):
        """The lowered graph of a ``graph`` row, built once per (graph, batch, sequence,
        precision as ``arch`` runs it) and reused across rows and ``--fit`` evaluations."""
        from ..passes.quantize import resolve_precision
        precision = resolve_precision(spec.precision, arch) if spec.precision else None
        key = (spec, precision)
        if key not in self._graphs:
            self._graphs[key] = graph_rows.load(spec, precision)
        return self._graphs[key]

    def cost(self, row: dict, setup: LlmSetup, chips: int, fit: Mapping[str, str]):
        from ..workloads.stepcost import StepCostModel
        engine_fit = tuple(sorted((k, v) for k, v in fit.items() if k != "step_overhead"))
        overrides = setup.overrides + tuple(f"{k}={v}" for k, v in engine_fit)
        layout = row_parallel(row)
        key = (self.spec(row), row["sim_model"], setup.precision, chips, overrides,
               setup.graphs, layout)
        if key not in self._costs:
            self._costs[key] = StepCostModel(row["sim_model"], self.arch(row, overrides),
                                             chips=chips, precision=setup.precision,
                                             graphs=setup.graphs, parallel=layout)
        cost = self._costs[key]
        if "step_overhead" in fit:
            target = self.arch(row, overrides + (f"step_overhead={fit['step_overhead']}",))
            return _ExtraStep(cost, target.step_overhead - cost.arch.step_overhead)
        return cost

    def predict(self, row: dict, fit: Mapping[str, str] | None = None) -> tuple[float, str]:
        """Predicted value of the row's metric (in its unit) and the load simulated.

        ``fit`` holds arch overrides being tried by :func:`fit` (``{field: value}``).
        """
        fit = dict(fit or {})
        where = f"row {row['id']}"
        metric, mode = row["sim_metric"], row["sim_mode"]
        if mode not in MODES:
            raise NpusimError(f"{where}, column sim_mode: {mode!r} is not one of "
                              f"{', '.join(MODES)}")
        if mode == "snn":
            if fit:
                raise NpusimError(f"{where}: an SNN row runs on a spiking-core device, which "
                                  f"has no arch fields to fit; leave it out of --fit")
            return snn_rows.predict(row, row_set(row), where)
        if _is_system(row) and row_boundary(row, where) == "system":
            return self._predict_system(row, fit, where)
        if mode == "idle":
            arch = self.arch(row, row_overrides(row) + tuple(f"{k}={v}" for k, v in
                                                             sorted(fit.items())))
            return idle_power(arch, _int(row, "sim_chips", where, default=1), metric)
        if mode in ("microbench", "graph"):
            arch = self.arch(row, row_overrides(row) + tuple(f"{k}={v}" for k, v in
                                                             sorted(fit.items())))
            if mode == "microbench":
                return _microbench(row, arch, where)
            spec = self.graph_spec(row)
            chips = _int(row, "sim_chips", where, default=1)
            return graph_rows.predict(self.graph(spec, arch), arch, spec, metric, where,
                                      chips, _graph_rate(row, where, chips))
        if metric not in SERVING_METRICS:
            raise NpusimError(f"{where}, column sim_metric: {metric!r} is not a metric of "
                              f"sim_mode {mode}; use one of {', '.join(SERVING_METRICS)}")
        chips = _int(row, "sim_chips", where, default=1)
        summary, load = self._serve_row(row, fit, chips)
        value = summary[SERVING_METRICS[metric]]
        if metric in PER_CHIP:
            value /= chips
        return float(value), load

    def _serve_row(self, row: dict, fit: Mapping[str, str], chips: int) -> tuple[dict, str]:
        """The serving summary of an LLM row on ``chips`` chips, and the load simulated."""
        arch = self.arch(row, row_overrides(row))
        setup = llm_setup(row, arch)
        cost = self.cost(row, setup, chips, fit)
        summary = _serve(row, setup, cost, arch)
        load = setup.load
        if setup.users is None and setup.rate is None:
            load = f"{summary['users']} users ({load})"
        if chips > 1:  # the multi-chip layout the cost model chose (stepcost's docstring)
            load = f"{load}, {summary['parallel']}"
        return summary, load

    def _predict_system(self, row: dict, fit: Mapping[str, str],
                        where: str) -> tuple[float, str]:
        """A system-boundary row: its cards as a card row simulates them, in its host."""
        host = self.host(row)
        metric, mode = row["sim_metric"], row["sim_mode"]
        chips = _int(row, "sim_chips", where, default=1)
        fitted = tuple(f"{k}={v}" for k, v in sorted(fit.items()))
        if mode == "idle":
            arch = self.arch(row, row_overrides(row) + fitted)
            card, what = idle_power(arch, 1, metric)
            watts, how = system_power(host, arch, card, chips, 0.0)
            return watts, f"{what.removesuffix(' x 1')} x {chips}, host idle; {how}"
        if mode == "graph":
            arch = self.arch(row, row_overrides(row) + fitted)
            spec = self.graph_spec(row)
            card, load = graph_rows.predict(self.graph(spec, arch), arch, spec,
                                            "avg_power_w_per_chip", where, 1,
                                            _graph_rate(row, where, chips))
            watts, how = system_power(host, arch, card, chips, 1.0)
            return watts, f"{load.removesuffix(' x 1 chip(s)')} x {chips} chips; {how}"
        if mode not in ("offline", "batch", "latency", "server"):
            raise NpusimError(f"{where}, column sim_mode: a system-boundary row runs idle, "
                              f"graph, offline, batch, latency or server (the host busy "
                              f"throughout), not {mode}")
        copies = _copies(row, chips, where)
        if mode == "server" and copies > 1:   # the system's rate, split over its copies
            row = {**row, "sim_rate": repr(_float(row, "sim_rate", where) / copies)}
        summary, load = self._serve_row(row, fit, chips // copies)
        arch = self.arch(row, row_overrides(row))
        watts, how = system_power(host, arch, summary["card_power_w"], chips, 1.0)
        if copies > 1:
            load = f"{load} x {copies} copies"
        return watts, f"{load}; {how}"


def _graph_rate(row: Mapping[str, str], where: str, chips: int) -> float | None:
    """A graph row's MLPerf Server rate per chip: ``sim_rate`` (samples per second of the
    whole system) over its ``chips`` copies; None for batches back to back."""
    if not (row.get("sim_rate") or "").strip():
        return None
    return _float(row, "sim_rate", where) / chips


def _is_system(row: Mapping[str, str]) -> bool:
    """Whether the row's meter sat at the wall (its ``sim_boundary`` is system)."""
    return (row.get("sim_boundary") or "").strip().lower() == "system"


def _copies(row: Mapping[str, str], chips: int, where: str) -> int:
    """How many identical copies of the row's layout run on its ``chips`` (1 without one)."""
    layout = row_parallel(row)
    if layout is None:
        return 1
    from ..workloads.stepcost import ParallelLayout
    per = ParallelLayout.parse(layout).chips
    if per > chips or chips % per:
        raise NpusimError(f"{where}, column sim_note: layout {layout} needs {per} chips, which "
                          f"do not divide sim_chips {chips} into identical copies")
    return chips // per


def idle_power(arch, chips: int, metric: str) -> tuple[float, str]:
    """Power of ``chips`` idle chips of ``arch`` (W) and what it was read from.

    ``idle_power_w`` (board on, nothing loaded) is the arch's ``power.idle``, the one idle
    figure, where it is published, else the energy table's ``static``.
    ``loaded_idle_power_w`` (model resident, clocks up, no request) is what every second of
    a run is charged: the table's ``floor_w`` (its ``loaded_floor``, else ``static``).

    >>> from npusim.arch import load_arch
    >>> idle_power(load_arch("atom"), 2, "idle_power_w")
    (12.4, 'power.idle x 2')
    >>> idle_power(load_arch("h100"), 1, "loaded_idle_power_w")
    (131.0, 'loaded_floor x 1')
    """
    if metric == "idle_power_w" and arch.power.idle is not None:
        return float(arch.power.idle) * chips, f"power.idle x {chips}"
    from ..energy import load_energy_table
    table = load_energy_table(arch)
    if table is None:
        raise NpusimError(f"arch {arch.name}: neither power.idle nor an energy table's "
                          f"static power is known; set power.idle (--set power.idle=...)")
    if metric == "loaded_idle_power_w":
        what = "static (no loaded_floor)" if table.loaded_floor is None else "loaded_floor"
        return float(table.floor_w) * chips, f"{what} x {chips}"
    return float(table.static) * chips, f"static power (power.idle not published) x {chips}"


def _microbench(row: dict, arch, where: str) -> tuple[float, str]:
    model, metric = row["sim_model"].strip(), row["sim_metric"]
    if model == "stream" and metric == "dram_tbps":
        return stream_tbps(arch), "long sequential read"
    m = re.fullmatch(r"gemm:(\d+),(\d+),(\d+)", model)
    if m and metric == "gemm_tflops":
        prec = (row.get("sim_precision") or "").strip()
        if prec not in GEMM_DTYPES:
            raise NpusimError(f"{where}: a GEMM row needs sim_precision in "
                              f"{', '.join(GEMM_DTYPES)}, got {prec!r}")
        mm, nn, kk = (int(x) for x in m.groups())
        return gemm_tflops(arch, mm, nn, kk, GEMM_DTYPES[prec]), "one GEMM"
    if metric in PIM_METRICS:
        from .microbench import pim_figure
        prec = GEMM_DTYPES.get((row.get("sim_precision") or "").strip(), "")
        m = re.fullmatch(r"pim-gemv:(\d+),(\d+)", model)
        shape = (int(m.group(1)), int(m.group(2))) if m else None
        return pim_figure(arch, metric, prec, shape, where)
    m = re.fullmatch(r"allreduce:(\d+)", model)
    if m and metric == "allreduce_busbw_gbs":
        chips = _int(row, "sim_chips", where, default=1)
        if chips < 2:
            raise NpusimError(f"{where}: an all-reduce row needs sim_chips >= 2")
        return allreduce_busbw_gbs(arch, int(m.group(1)), chips), f"one all-reduce x {chips}"
    raise ModelError(f"{where}: a microbench row is sim_model gemm:M,N,K with sim_metric "
                     f"gemm_tflops, stream with dram_tbps, or allreduce:BYTES with "
                     f"allreduce_busbw_gbs; got {model!r} / {metric!r}")


def _serve(row: dict, setup: LlmSetup, cost, arch) -> dict:
    from ..workloads.serving import Scenario, ServingConfig, simulate_serving
    where = f"row {row['id']}"
    i = _int(row, "sim_input_len", where)
    o = _int(row, "sim_output_len", where)
    if i is None or o is None:
        raise NpusimError(f"{where}: an LLM row needs sim_input_len and sim_output_len")
    users = setup.users
    if setup.scheduler == "trtllm-bench":
        cfg = ServingConfig.trtllm_bench(cost.kv_capacity_tokens, i, o)
        if users is None:
            users = cfg.max_num_seqs
        elif users > cfg.max_num_seqs:
            cfg = replace(cfg, max_num_seqs=users,
                          max_num_batched_tokens=max(cfg.max_num_batched_tokens, users))
    else:
        cfg = ServingConfig.vllm_serve_defaults(arch.dram.capacity, arch.name)
        if users is not None and users > cfg.max_num_seqs:
            cfg = ServingConfig(users, max(cfg.max_num_batched_tokens, users))
        if setup.scheduler != "vllm":    # an older engine's stack preset (row_scheduler)
            cfg = replace(cfg, stack=setup.scheduler)
    chunk = re.search(r"prefill chunk (\d+)", row.get("sim_note") or "")
    if chunk:       # the stack's prefill chunk (e.g. vllm-rbln's prefill_chunk_size)
        n = int(chunk.group(1))
        cfg = replace(cfg, max_num_batched_tokens=n, max_num_seqs=min(cfg.max_num_seqs, n))
    if setup.rate is not None:
        scen = Scenario(i, o, rate=setup.rate)
    elif users == 1:
        scen = Scenario(i, o, users=1, num_requests=LATENCY_REQUESTS, warmup=1)
    else:
        scen = Scenario(i, o, users=users, num_requests=CLOSED_LOOP_ROUNDS * users,
                        warmup=users)
    return simulate_serving(cost, scen, cfg).summary


def is_fitted(arch, row_id: str) -> bool:
    """Whether ``row_id`` is among the rows a fitted calibration entry of ``arch`` used."""
    return any(p.get("kind") == "fitted" and row_id in p.get("rows", ())
               for p in arch.calibrated().values())


def _stack_fitted(row: Mapping[str, str]) -> bool:
    """Whether the row's serving-stack preset (``sim_scheduler``) was fitted on it."""
    from ..workloads.stack import load_stack, stack_names
    name = row_scheduler(row)
    return name in stack_names() and row["id"] in load_stack(name).fitted_rows


def simulate_row(sim: Simulator, row: dict) -> RowResult:
    """Simulate one simulable row; a failure becomes the row's ``error_message``."""
    where = f"row {row['id']}"
    measured = _float(row, "sim_value", where)
    pred, load, message, fitted = None, "", "", False
    try:
        if row["sim_mode"] == "snn":     # a spiking-core device, not an NPU arch
            fitted = snn_rows.is_fitted(row, row_set(row), where)
        else:
            fitted = is_fitted(sim.arch(row), row["id"]) or (
                _is_system(row) and row["id"] in sim.host(row).fitted_rows) or (
                _stack_fitted(row))
        pred, load = sim.predict(row)
    except NpusimError as e:
        message = str(e)
    except Exception as e:  # a bug in npusim: report it on the row instead of losing the run
        message = f"internal error {type(e).__name__}: {e}"
    error = pred / measured - 1 if pred is not None and math.isfinite(pred) else None
    return RowResult(
        id=row["id"], arch=row["sim_arch"], chips=_int(row, "sim_chips", where, 1),
        model=row["sim_model"], precision=row.get("sim_precision") or "",
        mode=row["sim_mode"], input_len=_int(row, "sim_input_len", where),
        output_len=_int(row, "sim_output_len", where), metric=row["sim_metric"],
        measured=measured, predicted=pred, error=error, fitted=fitted, load=load,
        note=row.get("sim_note") or "", error_message=message,
        boundary="system" if _is_system(row) else "card")


# ----------------------------------------------------------------------------- aggregates

def aggregate(results: Iterable[RowResult]) -> list[dict]:
    """MAPE and worst signed error per arch x metric, fitted and held-out rows apart.

    Returns
    -------
    list of dict
        Keys ``arch``, ``metric``, ``split`` (``"fitted"`` or ``"held-out"``), ``n``,
        ``mape`` (mean of ``|error|``), ``worst`` (the signed error of largest magnitude),
        ``worst_id``, ``failed`` (rows that did not simulate).

    Examples
    --------
    >>> r = [RowResult("a", "h100", 1, "m", "", "batch", 1, 1, "ttft_s", 1.0, 1.1, 0.1, False,
    ...                "", ""), RowResult("b", "h100", 1, "m", "", "batch", 1, 1, "ttft_s",
    ...                1.0, 0.7, -0.3, False, "", "")]
    >>> a = aggregate(r)[0]
    >>> round(a["mape"], 3), a["worst_id"]
    (0.2, 'b')
    """
    return _group_errors(results, lambda r: {"arch": r.arch, "metric": r.metric,
                                             "split": "fitted" if r.fitted else "held-out"})


def source_of(row_id: str) -> str:
    """The source group of a row: the letters its id starts with (``A13`` -> ``A``)."""
    return re.match(r"[A-Za-z]*", row_id).group(0) or row_id


def aggregate_by_source(results: Iterable[RowResult]) -> list[dict]:
    """MAPE and worst error of the held-out rows per arch x metric x source group (the id's
    letters: one publication, one software generation), as :func:`aggregate` gives them."""
    return _group_errors((r for r in results if not r.fitted),
                         lambda r: {"arch": r.arch, "metric": r.metric,
                                    "source": source_of(r.id)})


def _group_errors(results: Iterable[RowResult], key: Callable[[RowResult], dict]) -> list[dict]:
    groups: dict[tuple, tuple[dict, list[RowResult]]] = {}
    for r in results:
        k = key(r)
        groups.setdefault(tuple(k.values()), (k, []))[1].append(r)
    out = []
    for _, (k, rs) in sorted(groups.items()):
        ok = [r for r in rs if r.error is not None]
        worst = max(ok, key=lambda r: abs(r.error)) if ok else None
        out.append({**k, "n": len(ok),
                    "mape": sum(abs(r.error) for r in ok) / len(ok) if ok else math.nan,
                    "worst": worst.error if worst else math.nan,
                    "worst_id": worst.id if worst else "",
                    "failed": len(rs) - len(ok)})
    return out


def reason_group(reason: str) -> str:
    """A short category for a ``reason`` text, so the report can count rows by reason."""
    r = reason.strip()
    if r.lower().startswith("no arch file"):
        return "no arch file for the chip"
    if re.search(r"not built in", r):
        return "model not built in"
    if re.search(r"conditions not stated|not stated", r):
        return "conditions not stated"
    return re.split(r"[;(:]", r)[0].strip() or "no reason given"


def not_simulable(rows: Iterable[dict]) -> dict[str, int]:
    """Rows marked ``simulable`` != yes, counted by :func:`reason_group`."""
    out: dict[str, int] = {}
    for r in rows:
        if (r.get("simulable") or "").strip().lower() != "yes":
            g = reason_group(r.get("reason") or "")
            out[g] = out.get(g, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


# ----------------------------------------------------------------------------- validate

def default_data() -> Path:
    """The shipped measured data, ``npusim/validate/data/measured.csv`` (package data)."""
    return Path(__file__).resolve().parent / "data" / "measured.csv"


def data_columns() -> list[str]:
    """The columns of the shipped measured data's header, in its order: what a row of a user's
    file (or a test's) has, so that a column added to the shipped file reaches every writer."""
    text = decode_text(read_bytes(default_data(), DATA_WHAT), default_data(), DATA_WHAT)
    return [h.strip() for h in next(csv.reader(io.StringIO(text)))]


def blank_row(**cells: str) -> dict[str, str]:
    """A measured-data row with every column of the shipped header (:func:`data_columns`)
    empty but ``cells``.

    Raises
    ------
    NpusimError
        A cell named after no column (a typo would otherwise leave the row silently short).

    Examples
    --------
    >>> row = blank_row(id="T1", sim_arch="edu", sim_chips="1", sim_mode="idle",
    ...                 sim_metric="idle_power_w", sim_value="1", simulable="yes")
    >>> list(row)[:3], row["sim_note"], row["sim_value"]
    (['id', 'hardware', 'count'], '', '1')
    """
    row = dict.fromkeys(data_columns(), "")
    unknown = [c for c in cells if c not in row]
    if unknown:
        raise NpusimError(f"blank_row: {', '.join(unknown)} is no column of "
                          f"npusim/validate/data/measured.csv; the columns are its header's")
    row.update(cells)
    return row


def write_rows(path: str | Path, rows: Iterable[Mapping[str, str]]) -> Path:
    """Write ``rows`` as a measured-data CSV with the shipped header (:func:`data_columns`),
    every cell as given (no spreadsheet quoting: ``-1`` stays ``-1``), a missing cell empty.

    Raises
    ------
    NpusimError
        A row with a key that is no column, or a file that cannot be written.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "mine.csv"
    >>> row = blank_row(id="T1", sim_arch="edu", sim_chips="1", sim_mode="idle",
    ...                 sim_metric="idle_power_w", sim_value="1", simulable="yes")
    >>> [r["id"] for r in read_rows(write_rows(path, [row, dict(row, id="T2")]))]
    ['T1', 'T2']
    """
    columns = data_columns()
    f = io.StringIO()
    w = csv.DictWriter(f, fieldnames=columns, restval="", lineterminator="\n")
    w.writeheader()
    for row in rows:
        extra = [k for k in row if k not in columns]
        if extra:
            raise NpusimError(f"{path}: row {row.get('id', '?')!r} has {', '.join(extra)}, no "
                              f"column of npusim/validate/data/measured.csv; drop or rename it")
        w.writerow(row)
    return write_text(path, f.getvalue(), DATA_WHAT)


# Where ``npusim validate`` writes unless told (relative to the working directory, resolved
# when called): a folder of its own, never the installed package or the data file's folder.
DEFAULT_OUT = Path("validation-report")


def select(rows: list[dict], ids: Iterable[str] | None, path: Path) -> list[dict]:
    """The simulable rows, or the named ones (each must exist and be simulable)."""
    if ids is None:
        return [r for r in rows if (r["simulable"] or "").strip().lower() == "yes"]
    by_id = {r["id"]: r for r in rows}
    wanted = [i.strip() for i in ids if i.strip()]
    unknown = [i for i in wanted if i not in by_id]
    if unknown:
        raise NpusimError(f"{path}: no row with id {', '.join(unknown)}; the ids are in the "
                          f"file's first column")
    closed = [i for i in wanted if (by_id[i]["simulable"] or "").strip().lower() != "yes"]
    if closed:
        raise NpusimError(f"{path}: row(s) {', '.join(closed)} are not simulable "
                          f"({by_id[closed[0]]['reason'] or 'no reason given'}); drop them "
                          f"from --rows")
    return [by_id[i] for i in wanted]


def validate(data: str | Path | None = None, *, out: str | Path | bool | None = None,
             rows: Sequence[str] | None = None, microchecks: bool = True,
             plot: bool = True, progress: Callable[[str, int, int], None] | None = None,
             archs: Mapping[str, str | Path] | None = None) -> ValidationResult:
    """Simulate the measured rows and write the validation report.

    Parameters
    ----------
    data : path, optional
        Measured-data CSV; default ``npusim/validate/data/measured.csv``.
    out : path, optional
        Folder for ``REPORT.md`` and ``predicted_vs_measured.png``, created if missing; default
        :data:`DEFAULT_OUT` (``./validation-report``). ``out="validation"`` run from a checkout
        regenerates the repository's committed report. Nothing is written when ``out`` is
        ``False``.
    rows : sequence of str, optional
        Only these row ids (each must be simulable); default every simulable row.
    microchecks : bool
        Add the model-level microchecks (decode time against its roofline bound, GEMM
        throughput against peak) for every shipped arch; they take about a minute.
    plot : bool
        Draw the predicted-vs-measured scatter (needs matplotlib).
    progress : callable, optional
        Called as ``progress(label, done, total)`` before each step (a row's id, then
        ``"microchecks"``), for a progress bar.
    archs : mapping, optional
        Arch files standing in for a row's ``sim_arch`` (see :class:`Simulator`), e.g. the
        ones :func:`~npusim.validate.fit` wrote.

    Returns
    -------
    ValidationResult

    Raises
    ------
    NpusimError
        A data file that cannot be read or has a malformed row (naming file, line and column),
        unknown or non-simulable ``rows``, a system row's host file that cannot be read
        (naming the row and ``sim_host``), or a report that cannot be written (``--out``).
    """
    from .report import (microcheck_table, npu_summary_markdown, summary_markdown, write_plots,
                         write_report)
    path = Path(data) if data is not None else default_data()
    all_rows, sha = _read_measured(path)
    chosen = select(all_rows, rows, path)
    sim = Simulator(path.parent, archs)
    for r in chosen:            # a system row's host file is read before any row runs
        if _is_system(r):
            sim.host(r)
    total = len(chosen) + bool(microchecks)
    results = []
    for n, r in enumerate(chosen):
        if progress:
            progress(r["id"], n, total)
        results.append(simulate_row(sim, r))
    if microchecks and progress:
        progress("microchecks", len(chosen), total)
    calibration = _calibration(sim, chosen)
    res = ValidationResult(rows=results, aggregates=aggregate(results),
                           not_simulable=not_simulable(all_rows), calibration=calibration,
                           microchecks=microcheck_table() if microchecks else [],
                           data=path, data_sha256=sha)
    if progress:
        progress("done", total, total)
    res.summary_markdown = summary_markdown(res)
    res.npu_summary_markdown = npu_summary_markdown(res)
    if microchecks:
        res.meta["sensitivity"] = link_sensitivity(sim, chosen, results)
        res.meta["readings"] = reading_ranges(sim, chosen, results)
    if out is not False:
        folder = make_folder(DEFAULT_OUT if out is None or out is True else out, "report")
        plots = write_plots(res, folder / "predicted_vs_measured.png") if plot else []
        res.plot = plots[0] if plots else None
        res.report = write_report(res, folder / "REPORT.md")
        res.files = [res.report, *plots]
    return res


def _predict_as(sim: Simulator, row: dict, **cols: str) -> float:
    """The row's prediction with some of its columns changed (a what-if for the report)."""
    return sim.predict(dict(row, **cols))[0]


LINK_FIELDS = ("link.latency", "link.bandwidth")     # constants no NPU vendor publishes
SENSITIVITY = (0.5, 2.0)


def link_sensitivity(sim: Simulator, rows: list[dict], results: list[RowResult]) -> list[dict]:
    """Each multi-chip NPU serving row re-predicted with its link's latency and bandwidth
    halved and doubled: how far the result rests on constants no vendor publishes.

    Returns one dict per (row, field): ``id``, ``field``, and ``low``, ``base``, ``high`` as
    (predicted, error) pairs; a field the arch leaves unset (null) is skipped.
    """
    from .report import is_npu_row
    done = {r.id: r for r in results}
    out = []
    for row in rows:
        res = done.get(row["id"])
        if (res is None or res.predicted is None or res.chips < 2 or row["sim_mode"] not in
                ("latency", "batch", "offline", "server") or not is_npu_row(res)):
            continue
        arch = sim.arch(row, row_overrides(row))
        for name in LINK_FIELDS:
            value = getattr(arch.link, name.split(".")[1], None)
            if not value:
                continue
            unit = "s" if name.endswith("latency") else "B/s"
            pair = []
            for k in SENSITIVITY:
                v = _predict_as(sim, row, sim_set="; ".join(
                    filter(None, [row.get("sim_set") or "", f"{name}={value * k!r} {unit}"])))
                pair.append((v, v / res.measured - 1))
            out.append({"id": row["id"], "field": name, "low": pair[0],
                        "base": (res.predicted, res.error), "high": pair[1]})
    return out


RANGE_KEYS = {"users": "sim_users", "input": "sim_input_len", "output": "sim_output_len"}


def row_range(row: Mapping[str, str]) -> dict[str, list[int]]:
    """The plausible range of a row's unstated conditions, where its ``sim_note`` gives one:
    ``range users=1,2,4,8 input=128,1024,8192`` (keys users, input, output).

    >>> row_range({"sim_note": "one user assumed; range users=1,4 input=128,8192"})
    {'users': [1, 4], 'input': [128, 8192]}
    """
    m = re.search(r"range ((?:(?:users|input|output)=[\d,]+ ?)+)", row.get("sim_note") or "")
    if not m:
        return {}
    out = {}
    for item in m.group(1).split():
        key, values = item.split("=")
        out[key] = [int(v) for v in values.split(",") if v]
    return out


def reading_ranges(sim: Simulator, rows: list[dict], results: list[RowResult]) -> list[dict]:
    """Each serving row whose note states a ``range`` (:func:`row_range`), predicted at every
    combination of it: how far the prediction moves across the readings the source allows.

    Returns one dict per row: ``id``, ``metric``, ``measured``, ``keys`` (the varied
    conditions) and ``points`` (the conditions and the predicted value of each combination).
    """
    import itertools
    done = {r.id: r for r in results}
    out = []
    for row in rows:
        spec = row_range(row)
        res = done.get(row["id"])
        if not spec or res is None or res.predicted is None or row["sim_mode"] == "graph":
            continue
        keys = list(spec)
        points = []
        for combo in itertools.product(*(spec[k] for k in keys)):
            cols = {RANGE_KEYS[k]: str(v) for k, v in zip(keys, combo)}
            if "users" in keys and row["sim_mode"] == "latency":
                cols["sim_mode"] = "batch"
            try:
                value = _predict_as(sim, row, **cols)
            except NpusimError as e:
                value = f"failed: {e}"
            points.append((combo, value))
        out.append({"id": row["id"], "metric": row["sim_metric"], "measured": res.measured,
                    "keys": keys, "points": points})
    return out


def _calibration(sim: Simulator, rows: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in rows:
        if r["sim_mode"] == "snn":      # device costs carry their own provenance
            continue
        try:
            arch = sim.arch(r)
        except NpusimError:
            continue
        out.setdefault(r["sim_arch"], arch.calibrated())
    return out


__all__ = ["RowResult", "ValidationResult", "Simulator", "read_rows", "check_row", "validate",
           "idle_power", "row_boundary", "POWER_METRICS", "IDLE_METRICS", "SYSTEM_REASON",
           "SYSTEM_METRICS", "host_spec", "system_power",
           "DEFAULT_OUT", "aggregate",
           "not_simulable", "reason_group", "row_precision", "llm_setup", "is_fitted",
           "simulate_row", "file_sha256", "default_data", "select", "data_columns",
           "blank_row", "write_rows"]
