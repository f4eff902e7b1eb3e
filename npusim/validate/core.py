"""Simulate the measured rows of ``npusim/validate/data/measured.csv`` and compare: ``npusim validate``.

Each simulable row is run the way it was measured: a ``microbench`` row on the engine (one GEMM
from ``gemm:M,N,K``, or the long sequential DRAM read for ``stream``); an LLM row through the
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
``offline`` row without users then runs at that ``max_batch_size``.

The optional ``sim_graphs`` column says whether the stack replays each step's kernels from CUDA
graphs (``yes``): the step costs then charge the arch's ``graph_launch_overhead`` per kernel
instead of the standalone ``launch_overhead``.
"""
from __future__ import annotations

import csv
import hashlib
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..arch import load_arch
from ..errors import ModelError, NpusimError
from ..files import make_folder
from .microbench import allreduce_busbw_gbs, gemm_tflops, stream_tbps

REQUIRED = ("id", "sim_arch", "sim_chips", "sim_model", "sim_precision", "sim_mode",
            "sim_users", "sim_rate", "sim_input_len", "sim_output_len", "sim_metric",
            "sim_value", "simulable", "reason", "sim_note")
MODES = ("offline", "server", "latency", "batch", "microbench")
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
}
MICRO_METRICS = ("gemm_tflops", "dram_tbps", "allreduce_busbw_gbs")
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


@dataclass
class ValidationResult:
    """What :func:`validate` found; ``report`` and ``plot`` are the files it wrote."""

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
    meta: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- reading rows

def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a measured-data CSV (``npusim/validate/data/measured.csv``'s columns).

    Raises
    ------
    NpusimError
        If the file is missing or lacks a column npusim needs.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise NpusimError(f"cannot read the measured data {path}: {e.strerror}; pass "
                          f"--data with a CSV shaped like npusim/validate/data/measured.csv") from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise NpusimError(f"{path}: missing column(s) {', '.join(missing)}; the file needs "
                          f"npusim/validate/data/measured.csv's simulation columns (see "
                          f"validation/README.md)")
    rows = [dict(r) for r in reader]
    seen: set[str] = set()
    for i, r in enumerate(rows, start=2):
        rid = (r["id"] or "").strip()
        if not rid or rid in seen:
            raise NpusimError(f"{path}, line {i}: row id {rid!r} is empty or repeated; give "
                              f"every row a unique id")
        seen.add(rid)
    return rows


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
        raise NpusimError(f"{where}: column {col} is {text!r}, not a positive integer; fix the "
                          f"row or mark it simulable=no with a reason")
    return int(v)


def _float(row: dict, col: str, where: str) -> float:
    text = (row.get(col) or "").strip()
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise NpusimError(f"{where}: column {col} is {text!r}, not a positive number; fix the "
                          f"row or mark it simulable=no with a reason")
    return v


def arch_spec(row: dict, base: Path) -> str:
    """The arch to load for a row: a shipped name, or a YAML path relative to the data file."""
    name = (row.get("sim_arch") or "").strip()
    if name.endswith((".yaml", ".yml")):
        p = Path(name)
        return str(p if p.is_absolute() else (base / p).resolve())
    return name


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


def row_precision(row: dict):
    """The row's precision as npusim runs it, refined by what ``sim_note`` states.

    ``weight-only int8`` keeps bf16 activations; ``int4_g32`` is int4 weights with a scale per
    32 values (gpt-fast); ``--fp8_kv_cache`` (or "fp8 weights and KV cache", or "KV cache
    fp8") stores the KV cache in fp8 instead of the default 16 bits.
    """
    from ..workloads.stepcost import PRECISIONS, Precision
    name = (row.get("sim_precision") or "").strip()
    note = row.get("sim_note") or ""
    where = f"row {row['id']}"
    if name not in PRECISIONS:
        raise NpusimError(f"{where}: sim_precision {name!r} is not one of "
                          f"{', '.join(PRECISIONS)}")
    p = PRECISIONS[name]
    if name == "int8" and "weight-only int8" in note:
        p = Precision("int8 weight-only", "int8", "bf16", "bf16")
    elif name == "int4" and "int4_g32" in note:
        p = Precision("int4_g32 weight-only", "int4_g32", "bf16", "bf16")
    if re.search(r"fp8_kv_cache|fp8 weights and KV cache|KV cache fp8", note):
        p = Precision(f"{p.name} kv-fp8", p.weights, p.activations, "fp8_e4m3")
    return p


def row_overrides(row: dict) -> tuple[str, ...]:
    """Arch overrides a row's conditions ask for (a power-limited board: its TDP)."""
    m = re.search(r"TDP overridden to (\d+(?:\.\d+)?) ?W", row.get("sim_note") or "")
    return (f"power.tdp={m.group(1)} W",) if m else ()


def row_scheduler(row: dict) -> str:
    """The row's ``sim_scheduler`` (``vllm`` when the column is absent or empty)."""
    name = (row.get("sim_scheduler") or "").strip() or "vllm"
    if name not in SCHEDULERS:
        raise NpusimError(f"row {row['id']}: sim_scheduler {name!r} is not one of "
                          f"{', '.join(SCHEDULERS)} (leave it empty for vllm)")
    return name


def row_graphs(row: dict) -> bool:
    """Whether the row's stack replays its kernels from CUDA graphs (``sim_graphs`` yes/no;
    empty means no: a stack is only credited with graphs where its record shows them)."""
    text = (row.get("sim_graphs") or "").strip().lower()
    if text not in ("", "yes", "no"):
        raise NpusimError(f"row {row['id']}: sim_graphs {text!r} must be yes, no or empty")
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
    return LlmSetup(row_precision(row), row_overrides(row), users, rate, load, scheduler,
                    row_graphs(row))


class _ExtraStep:
    """A step cost with a different per-iteration overhead, without re-running the engine."""

    def __init__(self, base, extra_s: float) -> None:
        self._base, self._extra = base, extra_s
        for name in ("kv_capacity_tokens", "kv_block_tokens", "chips", "static_power_w",
                     "tdp_w"):
            setattr(self, name, getattr(base, name))

    def step(self, prefill, decode):
        from ..workloads.stepcost import StepResult
        r = self._base.step(prefill, decode)
        if r.seconds == 0:
            return r
        return StepResult(r.seconds + self._extra, r.energy_j + self._extra * self.static_power_w)


class Simulator:
    """Simulates rows; keeps one cost model per (arch, model, precision, chips, overrides).

    Parameters
    ----------
    base : Path
        Folder of the data file (relative arch paths are resolved against it).
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self._costs: dict[tuple, Any] = {}
        self._archs: dict[tuple, Any] = {}

    def arch(self, row: dict, overrides: Sequence[str] = ()):
        key = (arch_spec(row, self.base), tuple(overrides))
        if key not in self._archs:
            if not key[0]:
                raise NpusimError(f"row {row['id']}: sim_arch is empty; name a shipped arch "
                                  f"(npusim archs) or an arch YAML file")
            self._archs[key] = load_arch(key[0], list(overrides) or None)
        return self._archs[key]

    def cost(self, row: dict, setup: LlmSetup, chips: int, fit: Mapping[str, str]):
        from ..workloads.stepcost import StepCostModel
        engine_fit = tuple(sorted((k, v) for k, v in fit.items() if k != "step_overhead"))
        overrides = setup.overrides + tuple(f"{k}={v}" for k, v in engine_fit)
        key = (arch_spec(row, self.base), row["sim_model"], setup.precision, chips, overrides,
               setup.graphs)
        if key not in self._costs:
            self._costs[key] = StepCostModel(row["sim_model"], self.arch(row, overrides),
                                             chips=chips, precision=setup.precision,
                                             graphs=setup.graphs)
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
        if mode == "microbench":
            arch = self.arch(row, row_overrides(row) + tuple(f"{k}={v}" for k, v in
                                                             sorted(fit.items())))
            return _microbench(row, arch, where)
        if metric not in SERVING_METRICS:
            raise NpusimError(f"{where}: sim_metric {metric!r} is not one of "
                              f"{', '.join((*SERVING_METRICS, *MICRO_METRICS))}")
        arch = self.arch(row, row_overrides(row))
        setup = llm_setup(row, arch)
        chips = _int(row, "sim_chips", where, default=1)
        cost = self.cost(row, setup, chips, fit)
        summary = _serve(row, setup, cost, arch)
        value = summary[SERVING_METRICS[metric]]
        if metric == "decode_tok_s_per_chip":
            value /= chips
        load = setup.load
        if setup.users is None and setup.rate is None:
            load = f"{summary['users']} users ({load})"
        return float(value), load


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


def simulate_row(sim: Simulator, row: dict) -> RowResult:
    """Simulate one simulable row; a failure becomes the row's ``error_message``."""
    where = f"row {row['id']}"
    measured = _float(row, "sim_value", where)
    pred, load, message, fitted = None, "", "", False
    try:
        fitted = is_fitted(sim.arch(row), row["id"])
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
        note=row.get("sim_note") or "", error_message=message)


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


def validate(data: str | Path | None = None, *, out: str | Path | None = None,
             rows: Sequence[str] | None = None, microchecks: bool = True,
             plot: bool = True, progress: Callable[[str], None] | None = None
             ) -> ValidationResult:
    """Simulate the measured rows and write the validation report.

    Parameters
    ----------
    data : path, optional
        Measured-data CSV; default ``npusim/validate/data/measured.csv``.
    out : path, optional
        Folder for ``REPORT.md`` and ``predicted_vs_measured.png``; default the data file's
        folder. Nothing is written when ``out`` is ``False``.
    rows : sequence of str, optional
        Only these row ids (each must be simulable); default every simulable row.
    microchecks : bool
        Add the model-level microchecks (decode time against its roofline bound, GEMM
        throughput against peak) for every shipped arch; they take about a minute.
    plot : bool
        Draw the predicted-vs-measured scatter (needs matplotlib).
    progress : callable, optional
        Called with each row id before it is simulated (for a progress bar).

    Returns
    -------
    ValidationResult
    """
    from .report import microcheck_table, summary_markdown, write_plot, write_report
    path = Path(data) if data is not None else default_data()
    all_rows = read_rows(path)
    chosen = select(all_rows, rows, path)
    sim = Simulator(path.parent)
    results = []
    for r in chosen:
        if progress:
            progress(r["id"])
        results.append(simulate_row(sim, r))
    calibration = _calibration(sim, chosen)
    res = ValidationResult(rows=results, aggregates=aggregate(results),
                           not_simulable=not_simulable(all_rows), calibration=calibration,
                           microchecks=microcheck_table() if microchecks else [],
                           data=path, data_sha256=file_sha256(path))
    res.summary_markdown = summary_markdown(res)
    if out is not False:
        folder = make_folder(out if out is not None else path.parent, "report")
        if plot:
            res.plot = write_plot(res, folder / "predicted_vs_measured.png")
        res.report = write_report(res, folder / "REPORT.md")
    return res


def _calibration(sim: Simulator, rows: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in rows:
        try:
            arch = sim.arch(r)
        except NpusimError:
            continue
        out.setdefault(r["sim_arch"], arch.calibrated())
    return out


__all__ = ["RowResult", "ValidationResult", "Simulator", "read_rows", "validate", "aggregate",
           "not_simulable", "reason_group", "row_precision", "llm_setup", "is_fitted",
           "simulate_row", "file_sha256", "default_data", "select"]
