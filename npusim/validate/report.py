"""The validation report: REPORT.md, the predicted-vs-measured scatter, the microchecks.

matplotlib is imported lazily (:mod:`npusim.figures`); the figure is a
:class:`matplotlib.figure.Figure` drawn by the Agg canvas (never ``pyplot``), as in
:mod:`npusim.report.plots`.
"""
from __future__ import annotations

import functools
import math
import re
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CapacityError
from ..figures import figure_class, save_figure
from ..files import write_text
from .core import IDLE_METRICS, POWER_METRICS
from .trend import (TREND_METRICS, TREND_TOLERANCE, batch_of, per_chip, power_trends, series_label,
                    trend_markdown, trend_series)

if TYPE_CHECKING:
    from .core import RowResult, ValidationResult

# Issue 5's targets per metric (MAPE); RNGD vendor rows are held to 20% each.
TARGETS = {"gemm_tflops": 0.10, "dram_tbps": 0.10, "allreduce_busbw_gbs": 0.10,
           "decode_tok_s": 0.15, "decode_tok_s_per_chip": 0.15, "prefill_tok_s": 0.15,
           "ttft_s": 0.20, "tpot_s": 0.20, "e2e_s": 0.20,
           # issue 10: each PIM figure within 15 %
           "pim_peak_tflops": 0.15, "pim_internal_gbs": 0.15, "pim_bw_ratio": 0.15,
           "pim_gemv_speedup": 0.15,
           # issue 11: Loihi keyword spotting within 15 %, TrueNorth's held-out sweep point 5 %
           "snn_dynamic_energy_j": 0.15, "snn_power_w": 0.05,
           # issue 12: ATOM's MLPerf SingleStream latency and Offline throughput within 20 %
           "latency_s": 0.20, "samples_s": 0.20}
RNGD_TARGET = 0.20
# Issue 13: held-out average power within 15 %, energy per token within 20 % (MAPE). Idle and
# loaded-idle readings have no target: they are the inputs (power.idle, loaded_floor) read
# back, a consistency check, never a prediction held to a throughput-style bound.
POWER_TARGETS = {"avg_power_w": 0.15, "avg_power_w_per_chip": 0.15, "energy_per_token_j": 0.20}
TARGETS.update(POWER_TARGETS)
POWER_PNG = "power_vs_batch.png"
ENERGY_PNG = "energy_per_token_vs_batch.png"
OUTLIER = 0.30
MARKERS = {"h100": ("o", "tab:green"), "a100": ("s", "tab:blue"), "rngd": ("D", "tab:red"),
           "h200": ("^", "tab:olive"), "atom": ("v", "tab:purple"),
           "hbm2-pim": ("P", "tab:orange"), "gddr6-aim": ("*", "tab:brown"),
           "lpddr5x-pim": ("p", "tab:pink"), "lpddr6-pim": ("h", "tab:cyan"),
           "loihi": ("<", "tab:blue"), "truenorth": (">", "tab:red")}
DEFAULT_MARKER = ("X", "tab:gray")
# Microchecks: Llama 3.1 8B decode at these batches and KV length, and one square GEMM.
MICRO_MODEL = "llama-3.1-8b"
MICRO_BATCHES, MICRO_KV = (1, 64), 2048
MICRO_GEMM, MICRO_GEMM_DTYPE = 8192, "bf16"


def _pct(x: float | None, signed: bool = True) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{100 * x:+.2f}%" if signed else f"{100 * x:.2f}%"


def _num(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.6g}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _target(arch: str, metric: str) -> str:
    if metric in IDLE_METRICS:
        return "—"
    if arch == "rngd":
        return f"each ≤ {RNGD_TARGET:.0%}"
    t = TARGETS.get(metric)
    return f"≤ {t:.0%}" if t is not None else "—"


def _met(agg: dict) -> str:
    if not agg["n"] or agg["metric"] in IDLE_METRICS:
        return "—"
    if agg["arch"] == "rngd":
        return "yes" if abs(agg["worst"]) <= RNGD_TARGET else "no"
    t = TARGETS.get(agg["metric"])
    return "—" if t is None else ("yes" if agg["mape"] <= t else "no")


def summary_markdown(res: "ValidationResult") -> str:
    """The MAPE table (arch x metric, fitted and held-out), as a markdown string."""
    lines = ["| arch | metric | rows used for fitting: n, MAPE | held-out: n, MAPE | held-out "
             "worst (row) | target | met (held-out) |",
             "|---|---|---|---|---|---|---|"]
    keys = sorted({(a["arch"], a["metric"]) for a in res.aggregates})
    by = {(a["arch"], a["metric"], a["split"]): a for a in res.aggregates}
    for arch, metric in keys:
        f = by.get((arch, metric, "fitted"))
        h = by.get((arch, metric, "held-out"))
        fcell = f"{f['n']}, {_pct(f['mape'], False)}" if f else "0"
        hcell = f"{h['n']}, {_pct(h['mape'], False)}" if h else "0"
        if h and h["failed"]:
            hcell += f" ({h['failed']} failed)"
        worst = f"{_pct(h['worst'])} ({h['worst_id']})" if h and h["n"] else "—"
        lines.append(f"| {arch} | {metric} | {fcell} | {hcell} | {worst} | "
                     f"{_target(arch, metric)} | {_met(h) if h else '—'} |")
    return "\n".join(lines) + "\n"


# Issue 12: every NPU row simulated; held-out MAPE within 20 % per NPU. ATOM-Max is four ATOM
# dies (archs/atom-max.yaml), so its rows count with ATOM's.
NPU_TARGET = 0.20
NPU_FAMILY = {"atom-max": "atom"}
GPU_ENGINES = ("tensor_core",)


def is_npu_row(r: "RowResult") -> bool:
    """A row measured on an NPU: not a spiking-core or PIM-device row, on an arch whose engine
    is no GPU's."""
    if r.mode == "snn" or r.metric.startswith("pim_"):   # spiking chips, PIM devices
        return False
    return _is_npu_arch(r.arch)


@functools.lru_cache(maxsize=None)
def _is_npu_arch(spec: str) -> bool:
    """Whether arch ``spec`` has an engine that is no GPU's (one load per arch, not per row)."""
    from ..arch import load_arch
    try:
        return load_arch(spec).cores.engine.kind not in GPU_ENGINES
    except Exception:       # an arch file that does not load: the row's failure says why
        return False


def npu_summary_markdown(res: "ValidationResult") -> str:
    """The NPU rows per NPU (ATOM-Max with ATOM): rows, fitted rows, held-out MAPE, the worst
    held-out row and its cause, as a markdown table (REPORT.md and the README)."""
    fams: dict[str, list] = {}
    for r in res.rows:
        if is_npu_row(r) and r.metric not in POWER_METRICS:   # power: power_summary_markdown
            fams.setdefault(NPU_FAMILY.get(r.arch, r.arch), []).append(r)
    lines = ["| NPU | rows | fitted on | held-out: n, MAPE | held-out worst (row) | target | "
             "met | cause of the worst |", "|---|---|---|---|---|---|---|---|"]
    for fam, rows in sorted(fams.items()):
        fitted = [r.id for r in rows if r.fitted]
        held = [r for r in rows if not r.fitted and r.error is not None]
        failed = [r.id for r in rows if r.error_message]
        mape = sum(abs(r.error) for r in held) / len(held) if held else None
        worst = max(held, key=lambda r: abs(r.error)) if held else None
        ids = ", ".join(r.id for r in rows) + (f" ({', '.join(failed)} failed)" if failed else "")
        met = "—" if mape is None else ("yes" if mape <= NPU_TARGET and not failed else "no")
        cause = cause_of(worst) if worst and abs(worst.error) > NPU_TARGET else "—"
        lines.append(f"| {fam} | {ids} | {', '.join(fitted) or 'none'} | "
                     f"{len(held)}, {_pct(mape, False)} | "
                     f"{f'{_pct(worst.error)} ({worst.id})' if worst else '—'} | "
                     f"≤ {NPU_TARGET:.0%} | {met} | {_cell(cause)} |")
    return "\n".join(lines) + "\n"


def boundary_of(r: "RowResult") -> str:
    """Where a power row's meter sat: ``card`` (boards) or ``system`` (the server at the wall);
    the row result's ``boundary`` where it carries one, else card (the only boundary npusim
    simulated before a host model)."""
    return str(getattr(r, "boundary", "") or "card")


def power_summary_markdown(res: "ValidationResult") -> str:
    """Power rows per arch, boundary and metric: the rows fitted on, the held-out MAPE, the
    worst held-out row and the target (none for idle readings), as a markdown table."""
    groups: dict[tuple[str, str, str], list] = {}
    for r in res.rows:
        if r.metric in POWER_METRICS:
            groups.setdefault((r.arch, boundary_of(r), r.metric), []).append(r)
    lines = ["| arch | boundary | metric | fitted on | held-out: n, MAPE | held-out worst (row) "
             "| target | met |", "|---|---|---|---|---|---|---|---|"]
    for (arch, where, metric), rows in sorted(groups.items()):
        fitted = [r.id for r in rows if r.fitted]
        held = [r for r in rows if not r.fitted and r.error is not None]
        failed = [r.id for r in rows if r.error_message]
        mape = sum(abs(r.error) for r in held) / len(held) if held else None
        worst = max(held, key=lambda r: abs(r.error)) if held else None
        target = POWER_TARGETS.get(metric)
        met = "—" if target is None or mape is None else ("yes" if mape <= target else "no")
        hcell = f"{len(held)}, {_pct(mape, False)}" + (f" ({len(failed)} failed)" if failed
                                                      else "")
        lines.append(f"| {arch} | {where} | {metric} | {', '.join(fitted) or 'none'} | {hcell} | "
                     f"{f'{_pct(worst.error)} ({worst.id})' if worst else '—'} | "
                     f"{'—' if target is None else f'≤ {target:.0%}'} | {met} |")
    if not groups:
        return "No power row was simulated.\n"
    return "\n".join(lines) + "\n"


def power_cause(r: "RowResult") -> str:
    """What is known about why a power or energy row is off (the power model's parts, the
    meter's boundary, and the throughput that energy per token divides by)."""
    over = r.error is not None and r.error > 0
    system = boundary_of(r) == "system"
    if r.metric in IDLE_METRICS:
        what = "loaded-idle" if r.metric == "loaded_idle_power_w" else "idle"
        return (f"An {what} reading against the arch's input read back (power.idle, or the "
                f"energy table's loaded_floor, else its static power: see the row's load); the "
                f"gap is the input's, not a simulation's: set the arch's idle or the table's "
                f"loaded_floor from such readings. Readings vary with temperature, board and "
                f"driver ({'above' if over else 'below'} this one here).")
    if system and not over:
        return ("System power under-predicted: the meter is at the wall, so the host (CPUs, "
                "memory, fans, NICs, switches) and the power supply's losses are in the "
                "measurement; without a host model npusim counts the cards alone.")
    if r.metric == "energy_per_token_j":
        if over:
            return ("Energy per token over-predicted: it is power over output tokens per "
                    "second, so either the power is over-predicted (the floor or the dynamic "
                    "overhead above this row's) or the throughput under-predicted (see the same "
                    "load's throughput row; a slower run charges the floor for longer).")
        return ("Energy per token under-predicted: power under-predicted (on-chip energy that "
                "Horowitz-scaled arithmetic leaves out: operand delivery, register files, clock "
                "tree, control, unless the energy table's fitted dynamic_overhead and "
                "operand_delivery cover it) or throughput over-predicted (fewer seconds to "
                "charge the floor).")
    if over:
        return ("Power over-predicted: the loaded floor or the fitted dynamic overhead is above "
                "what this row's chip draws, or its throughput (actions per second) is "
                "over-predicted; a power cap in force (MaxQ) that the row's arch settings miss "
                "would also show here.")
    return ("Power under-predicted: the chip's dynamic energy per action is the arithmetic "
            "and arrays alone (Horowitz-scaled) unless the energy table's dynamic_overhead and "
            "operand_delivery (fitted per family on named rows) add what real chips pay to move "
            "operands, clock and control; an under-predicted throughput (fewer actions per "
            "second) lowers the power too.")


def _power_series(rows: list["RowResult"], metrics: tuple[str, ...] = TREND_METRICS
                  ) -> dict[str, list[tuple[int, "RowResult"]]]:
    """The card-boundary series of the trend check (:func:`~npusim.validate.trend.trend_series`:
    rows of ``metrics`` that differ only in the batch), by label, each as (batch, row) in batch
    order: the plots draw the table's series."""
    return {series_label(s): [(batch_of(r.load), r) for r in s]
            for s in trend_series(rows, metrics) if boundary_of(s[0]) == "card"}


def _series_figure(ss: dict, value):
    """A figure with one colour per series, ``value(row, measured)`` measured solid and npusim
    dashed against the batch (log x), the legend beside the axes: what the power and
    energy-per-token plots share. Returns (figure, axes)."""
    from ..figures import COLOURS, log_ticks
    Figure = figure_class()
    fig = Figure(figsize=(13.0, 5.5), dpi=100, layout="constrained")
    ax = fig.subplots()
    xs_all: set[int] = set()
    for n, (label, pts) in enumerate(ss.items()):
        colour = COLOURS[n % len(COLOURS)]
        xs = [u for u, _ in pts]
        xs_all.update(xs)
        ax.plot(xs, [value(r, r.measured) for _, r in pts], color=colour, marker="o",
                label=f"{label}: measured")
        ax.plot(xs, [value(r, r.predicted) for _, r in pts], color=colour, marker="o", ls="--",
                mfc="none", label=f"{label}: npusim")
    log_ticks(ax, sorted(xs_all), "x")
    ax.set_xlabel("running batch (users)")
    fig.legend(fontsize=7, loc="outside right upper")   # beside the axes: no line hidden
    return fig, ax


def write_energy_plot(res: "ValidationResult", path: Path) -> Path | None:
    """Measured (solid) and predicted (dashed) energy per output token against the batch, one
    colour per series of card rows that differ only in the batch (log scale: it falls by an
    order of magnitude as the batch amortises the weights). None when no such row ran."""
    ss = _power_series(res.rows, ("energy_per_token_j",))
    if not ss:
        return None
    from ..figures import plain_formatter
    fig, ax = _series_figure(ss, lambda r, v: v)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(plain_formatter())
    ax.yaxis.set_minor_formatter(plain_formatter())
    ax.set_ylabel("energy per output token (J, boards)")
    ax.set_title("Energy per token against batch, measured vs npusim")
    ax.grid(True, alpha=0.3, which="both")
    return save_figure(fig, path)


def write_power_plot(res: "ValidationResult", path: Path) -> Path | None:
    """Measured (solid) and predicted (dashed) power per GPU against the batch, one colour per
    series of the trend table (card rows that differ only in the batch), the TDP a grey line:
    the trend check (power rising with load). None (nothing written) when no such row ran."""
    ss = _power_series(res.rows)
    if not ss:
        return None
    from ..figures import plain_formatter
    fig, ax = _series_figure(ss, per_chip)
    tdps = {t for t in (_tdp(pts[0][1].arch) for pts in ss.values()) if t}
    for tdp in sorted(tdps):
        ax.axhline(tdp, color="0.45", lw=0.9)
        ax.annotate(f"TDP {tdp:,.0f} W", (0.01, tdp), xycoords=("axes fraction", "data"),
                    textcoords="offset points", xytext=(2, 2), fontsize=8, color="0.35")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(plain_formatter())
    ax.set_ylabel("average power per GPU (W, board)")
    ax.set_title("Power rows: power per GPU against batch, measured vs npusim")
    ax.grid(True, alpha=0.3)
    return save_figure(fig, path)


def _tdp(arch_name: str) -> float | None:
    from ..arch import load_arch
    try:
        return load_arch(arch_name).power.tdp
    except Exception:  # an arch the report cannot resolve: no line
        return None


def _power_section(res: "ValidationResult", folder: Path) -> list[str]:
    """REPORT.md's power section (issue 13): the table, the targets, the trend plot."""
    if not any(r.metric in POWER_METRICS for r in res.rows):
        return []
    fitted = sorted({r.id for r in res.rows if r.metric in POWER_METRICS and r.fitted})
    out = ["## Power rows (issue 13)", "",
           "Power and energy rows apart from throughput, per arch, meter boundary (card: the "
           "boards, as nvidia-smi or ML.ENERGY read them; system: the whole server at the "
           "wall) and metric. Targets on held-out rows: average power within "
           f"{POWER_TARGETS['avg_power_w']:.0%}, energy per token within "
           f"{POWER_TARGETS['energy_per_token_j']:.0%} (MAPE). Idle and loaded-idle readings "
           "have no target: they read the arch's inputs back. Rows the power model was fitted "
           f"on: {', '.join(fitted) or 'none'} (see \"Calibration in force\").", "",
           power_summary_markdown(res).rstrip(), ""]
    out += ["### Power against batch", "",
            "The trend check (issue 13: power rising with load on GPUs from about 0.7 to about "
            "1.0 of TDP, as measured). Each line is a series of power rows that differ only in "
            "the batch (same source, arch, model, chips, precision, boundary, metric, input "
            "length and a like output length), from its lowest batch to its highest: power per "
            "chip, as a fraction of the chip's TDP in brackets (card rows), and the change "
            "(power at the highest batch over the lowest). The direction agrees when both "
            "changes rise or both fall; the size is right when npusim's change is within "
            f"{TREND_TOLERANCE:.0%} of the measured one (the held-out power target, applied to "
            "the ratio: with the low end exact, it is the high end's own error). Fitted rows "
            "are marked *.", "",
            trend_markdown(power_trends(res.rows, _tdp)).rstrip(), ""]
    if (folder / POWER_PNG).is_file():
        out += [f"![power against batch]({POWER_PNG})", "",
                "The series of the table against the running batch: measured power per GPU "
                "solid, npusim's for the same rows dashed.", ""]
    if (folder / ENERGY_PNG).is_file():
        out += [f"![energy per token against batch]({ENERGY_PNG})", "",
                "Energy per output token of the same runs against the running batch, measured "
                "solid, npusim dashed.", ""]
    return out


def _source_lines(rows: list["RowResult"]) -> list[str]:
    from .core import aggregate_by_source
    out = ["| arch | metric | source | n | MAPE | worst (row) |", "|---|---|---|---|---|---|"]
    for a in aggregate_by_source(rows):
        worst = f"{_pct(a['worst'])} ({a['worst_id']})" if a["n"] else "—"
        out.append(f"| {a['arch']} | {a['metric']} | {a['source']} | {a['n']} | "
                   f"{_pct(a['mape'], signed=False)} | {worst} |")
    return out


def _row_table(rows: list["RowResult"]) -> list[str]:
    out = ["| id | arch | chips | model | precision | mode | load | in | out | metric | "
           "measured | predicted | error | split |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        split = "fitted" if r.fitted else "held-out"
        pred = _num(r.predicted) if not r.error_message else "failed"
        out.append(f"| {r.id} | {r.arch} | {r.chips} | {r.model} | {r.precision or '—'} | "
                   f"{r.mode} | {_cell(r.load) or '—'} | {r.input_len or '—'} | "
                   f"{r.output_len or '—'} | {r.metric} | {_num(r.measured)} | {pred} | "
                   f"{_pct(r.error)} | {split} |")
    return out


def _outliers(rows: list["RowResult"]) -> list[str]:
    bad = [r for r in rows if r.error_message or (r.error is not None and abs(r.error) > OUTLIER)]
    if not bad:
        return ["No row is worse than 30%, and every row simulated."]
    out = ["| id | error | cause as far as known |", "|---|---|---|"]
    for r in bad:
        cause = (r.error_message + _known_failure(r.error_message) if r.error_message
                 else cause_of(r) + (f" Row note: {r.note}" if r.note else ""))
        out.append(f"| {r.id} | {_pct(r.error) if not r.error_message else 'failed'} | "
                   f"{_cell(cause)} |")
    return out


def _known_failure(message: str) -> str:
    if "kv_len >= 1" in message:
        return (" Known cause: StepCostModel.attention_decode interpolates on a KV grid that "
                "starts at 0, so a prompt shorter than 16 tokens asks the builder for a decode "
                "step at kv_len 0 (workloads/stepcost.py).")
    return ""


def _ridge(arch_name: str, dt: str) -> float:
    """FLOP per DRAM byte at which ``arch_name`` turns compute-bound for ``dt`` (0 if the
    arch cannot be loaded)."""
    from ..arch import load_arch
    try:
        arch = load_arch(arch_name)
        return 2 * arch.peak_macs_per_s(arch.execution_dtype(dt)) / arch.dram.bandwidth
    except Exception:  # an arch given by a path the report cannot resolve: no claim
        return 0.0


def cause_of(r: "RowResult") -> str:
    """What is known about why a row is off: the mechanism the simulation shows for its mode."""
    if r.metric in POWER_METRICS:
        return power_cause(r)
    over = r.error is not None and r.error > 0
    under = r.error is not None and r.error < 0
    if r.mode == "snn" and r.metric == "snn_dynamic_energy_j" and under:
        return ("Spiking-chip dynamic energy under-predicted: npusim prices the neuro-cores' "
                "events (synaptic events, neuron updates, spikes, mesh hops) at the device's "
                "silicon costs; a measured running-minus-idle figure also holds the embedded "
                "x86 cores' work on every timestep and the host I/O, and the spike rates are "
                "assumptions where the source publishes none.")
    if r.arch == "rngd" and r.mode == "batch" and under:
        return ("An approximate early-silicon figure (Hot Chips 2024) whose conditions are not "
                "published. The reading in the note is the only one a public source states (the "
                "RNGD backend of the MLPerf GPT-J harness runs one query of 4 beams at a time, "
                "prompts padded to 1,919 tokens, 128 new tokens): there every decode step "
                "streams the 6 GB of int8 weights and the beams' KV cache from HBM for 4 tokens "
                "and each query first prefills 4 x 1,919 tokens, which bounds the throughput "
                "near the predicted figure on any 1.5 TB/s chip; about 1,000 tok/s needs several "
                "queries in flight (the range table above), which the figure does not state.")
    if r.arch == "atom-max" and r.metric == "tpot_s" and under:
        return ("Decode on four ATOM-Max dies under-predicted: npusim streams each die's weight "
                "shard at GDDR6 speed and times 72 all-reduces a token at the assumed 2 us PCIe "
                "hop, while the measured step moves weights at about 212 GB/s per die under "
                "tensor parallelism against 454 GB/s on one die (atom.md sec. 2.2): "
                "synchronisation across the card's PCIe switch that no public figure "
                "quantifies (the link sensitivity above shows the hop latency alone does not "
                "close it); vllm-rbln's eager attention also reads the compiled 8,192-token KV "
                "of the running row every step, where npusim reads the live KV.")
    if r.arch == "rngd" and r.mode == "offline":
        return ("RNGD vendor figure read through a secondary summary: the public record gives "
                "neither the batch size (concurrency) nor the FuriosaSDK version nor the KV "
                "dtype; npusim assumed max load at vllm serve's default 256 sequences, fp8 "
                "weights and activations with a 16-bit KV cache, so the KV cache fills and "
                "sequences are preempted by recompute.")
    if r.mode == "offline" and under:
        if "trtllm-bench" in r.load:
            why = ("under trtllm-bench's no-evict scheduler the concurrency is the KV capacity "
                   "over input + output tokens, so the KV-cache precision sets it, and this row "
                   "keeps a 16-bit cache because its record does not show an fp8 one (see the "
                   "row note): an fp8 cache would double the concurrency")
        else:
            why = ("at the vLLM-default concurrency the KV cache fills (16-bit KV for fp8 "
                   "checkpoints, a precision assumption: an fp8 KV cache would double the "
                   "capacity) and sequences are preempted and recomputed")
        return (f"Max-load throughput under-predicted: {why}. Every kernel also pays the "
                "6.12 us fixed cost fitted on a standalone cuBLASLt call, more than a CUDA-graph "
                "serving stack pays (see the microchecks).")
    if r.mode == "batch" and under:
        return ("Static-batch throughput under-predicted: the closed loop mixes prefills into "
                "decode steps, which static batching does not, and every kernel pays the "
                "standalone-call fixed cost (see the microchecks).")
    if r.error is not None and r.error > 1:
        text = ("Over-predicted several-fold: the measured figure is probably per GPU although "
                "its header says per system (see the row note).")
        if r.chips > 1 and r.predicted is not None:
            system = r.measured * r.chips
            text += (f" Read per GPU, the system figure would be {r.measured:g} x {r.chips} = "
                     f"{system:g} and the error {_pct(r.predicted / system - 1)}; the table "
                     f"keeps the header's reading.")
        return text
    if r.mode == "batch" and over and "gptSessionBenchmark" in r.note:
        return ("Static-batch throughput over-predicted: the 2023 TensorRT-LLM v0.6.1 runs "
                "behind the B rows are far slower at long outputs and TP2/TP4 than the same "
                "models' 2025 in-flight-batching runs that npusim matches (the A rows: Llama "
                "70B at TP2, 2048/2048, ran 2.8x faster per system); which kernel fell short in "
                "2023 is not in the record.")
    if r.metric == "allreduce_busbw_gbs" and over:
        text = ("All-reduce over-predicted: npusim's all-reduce is a ring that takes the faster "
                "of a low-latency protocol (half the link bandwidth) and a bulk one, each with "
                "a per-hop latency, fitted on the 1 KiB, 64 MiB and 8 GiB messages.")
        if "NVLS algorithm, per the page" in r.note:
            text += (" This system ran NCCL's NVLS algorithm, which supports only the bulk "
                     "(Simple) protocol (NVIDIA/nccl issue 2327), so its mid-size messages sit "
                     "on a floor of about 40 us that the ring's low-latency protocol undercuts.")
        return text
    m = re.fullmatch(r"gemm:(\d+),(\d+),(\d+)", r.model)
    if m and over:
        mm, nn, kk = (int(x) for x in m.groups())
        width = 1 if r.precision == "fp8" else 2
        intensity = 2 * mm * nn * kk / (width * (mm * kk + kk * nn + mm * nn))
        ridge = _ridge(r.arch, "fp8_e4m3" if r.precision == "fp8" else r.precision)
        if intensity < 1.5 * ridge:
            return (f"Thin GEMM over-predicted: at {intensity:.0f} FLOP per byte, near or below "
                    f"the chip's ridge point ({ridge:.0f}), DRAM bounds it, and npusim runs it "
                    f"at the DRAM roofline (STREAM-like bandwidth, the output in the input "
                    f"dtype); the measured kernel moves its bytes more slowly, and the source "
                    f"does not state the output dtype (cuBLASLt FP8 GEMMs often write 16-bit "
                    f"results).")
    if r.precision == "int4" and over:
        return ("Weight-only int4 decode over-predicted: npusim times the matmuls at the rate "
                "their packed weights stream from DRAM and charges GPUs nothing for the "
                "dequantisation (an issue-4 simplification); the 7B int4 row of the same source "
                "agrees (G3), so the gap at 70B is in the int4 kernel's efficiency on its wider "
                "layers or in the run's conditions, which the source does not detail.")
    if r.metric == "ttft_s":
        return ("Batch-1 prefill latency under-predicted: attention is timed as a fused causal "
                "kernel and the projections at the GEMM efficiency fitted on an 8192^3 GEMM; "
                "prefill-sized GEMMs (a few thousand rows) reach less on real stacks, and the "
                "data holds no GEMM measured between 1024^3 and 8192^3 to fit that curve on.")
    return "No specific cause identified."


def _sensitivity_lines(res: "ValidationResult") -> list[str]:
    """How the multi-chip NPU rows move with the link constants no vendor publishes."""
    rows = res.meta.get("sensitivity") or []
    if not rows:
        return []
    out = ["How the multi-chip NPU rows move with the unpublished link constants (each "
           "prediction re-run with one field scaled; the row's error in brackets):", "",
           "| row | field | x0.5 | as shipped | x2 |", "|---|---|---|---|---|"]
    for s in rows:
        cells = [f"{_num(v)} ({_pct(e)})" for v, e in (s["low"], s["base"], s["high"])]
        out.append(f"| {s['id']} | {s['field']} | {' | '.join(cells)} |")
    return out + [""]


def _reading_lines(res: "ValidationResult") -> list[str]:
    """Rows whose source leaves conditions unstated, predicted across the plausible range."""
    out = []
    for r in res.meta.get("readings") or []:
        out += [f"Row {r['id']} across the readings its source allows ({r['metric']}, "
                f"measured {_num(r['measured'])}; the row itself is the reading in its note):",
                "", "| " + " | ".join(r["keys"]) + " | predicted | error |",
                "|" + "---|" * (len(r["keys"]) + 2)]
        for combo, v in r["points"]:
            cells = " | ".join(str(c) for c in combo)
            if isinstance(v, str):
                out.append(f"| {cells} | {_cell(v)} | — |")
            else:
                out.append(f"| {cells} | {_num(v)} | {_pct(v / r['measured'] - 1)} |")
        out.append("")
    return out


def _calibration_lines(res: "ValidationResult") -> list[str]:
    from ..arch.calibration import describe
    out = ["| arch | field | value | provenance |", "|---|---|---|---|"]
    for arch, cal in sorted(res.calibration.items()):
        if not cal:
            out.append(f"| {arch} | (none) | | |")
        for fld, prov in sorted(cal.items()):
            out.append(f"| {arch} | `{fld}` | {prov['value']} | {_cell(describe(prov))} |")
    return out


def _microcheck_lines(micro: list[dict]) -> list[str]:
    if not micro:
        return ["Not run (validate(..., microchecks=False))."]
    out = ["| arch | check | simulated | bound / peak | ratio | what bounds it |",
           "|---|---|---|---|---|---|"]
    for m in micro:
        out.append(f"| {m['arch']} | {m['check']} | {m['simulated']} | {m['ideal']} | "
                   f"{m['ratio']} | {_cell(m['why'])} |")
    return out


def data_reference(data: Path, folder: Path) -> str:
    """How a report in ``folder`` names its data file: a relative Markdown link when the data
    lies beside the report's folder (the repository's ``validation/REPORT.md`` links
    ``../npusim/validate/data/measured.csv``), else the shipped file's package path or the
    file's own path (a link into an installed package would break when it is copied).

    Examples
    --------
    >>> data_reference(Path("/r/npusim/validate/data/measured.csv"), Path("/r/validation"))
    '[`npusim/validate/data/measured.csv`](../npusim/validate/data/measured.csv)'
    """
    import os
    from .core import default_data
    data, folder = Path(os.path.abspath(data)), Path(os.path.abspath(folder))
    try:
        label = data.relative_to(folder.parent).as_posix()
    except ValueError:
        if data == default_data():
            return "`npusim/validate/data/measured.csv` (shipped with npusim)"
        return f"`{_cell(data)}`"
    link = Path(os.path.relpath(data, folder)).as_posix()
    return f"[`{_cell(label)}`]({link.replace(' ', '%20')})"


def write_report(res: "ValidationResult", path: Path) -> Path:
    """Write REPORT.md for ``res`` (regenerated in full; never edit it by hand)."""
    import npusim
    ok = [r for r in res.rows if r.error is not None]
    failed = [r for r in res.rows if r.error_message]
    lines = [
        "# npusim validation report",
        "",
        "Generated by `npusim validate` (`npusim.validate.validate`); do not edit by hand, "
        "rerun the command.",
        "",
        f"- date: {date.today().isoformat()}",
        f"- npusim version: {npusim.__version__}",
        f"- data: {data_reference(res.data, path.parent)}, sha256 `{res.data_sha256}`",
        f"- rows simulated: {len(res.rows)} ({len(ok)} ran, {len(failed)} failed); "
        f"fitted rows: {sum(r.fitted for r in res.rows)}; held-out rows: "
        f"{sum(not r.fitted for r in res.rows)}",
        "",
        "Error is `predicted / measured - 1`. A row is *fitted* if a fitted calibration entry "
        "of its arch lists it; every other row is *held out*. Targets (issue 5): "
        "microbenchmarks ≤ 10%, LLM throughput ≤ 15%, TTFT/TPOT ≤ 20% (MAPE), RNGD vendor "
        "rows within 20% each.",
        "",
        "## Summary: MAPE per arch x metric",
        "",
        res.summary_markdown.rstrip(),
        "",
        "![predicted vs measured](predicted_vs_measured.png)" if res.plot else "",
        "",
        "## NPU rows (issue 12)",
        "",
        "The rows measured on NPUs, per NPU (ATOM-Max cards are four ATOM dies and count with "
        "ATOM). At most two fields per NPU are fitted, each on the rows named in "
        "\"Calibration in force\"; every other row is held out. Target: held-out MAPE within "
        f"{NPU_TARGET:.0%} per NPU.",
        "",
        res.npu_summary_markdown.rstrip(),
        "",
        *_sensitivity_lines(res),
        *_reading_lines(res),
        *_power_section(res, path.parent),
        "## Held-out MAPE by source",
        "",
        "The same held-out rows split by where they come from (the id's letters; a source is "
        "one publication and one software generation, see validation/README.md).",
        "",
        *_source_lines(res.rows),
        "",
        "## Rows",
        "",
        *_row_table(res.rows),
        "",
        "## Rows worse than 30% (or that failed)",
        "",
        *_outliers(res.rows),
        "",
        "## Calibration in force",
        "",
        *_calibration_lines(res),
        "",
        "## Rows not simulable, by reason",
        "",
        "| reason | rows |",
        "|---|---|",
        *[f"| {_cell(k)} | {v} |" for k, v in res.not_simulable.items()],
        "",
        "## Model-level microchecks",
        "",
        f"Simulated decode-step time of {MICRO_MODEL} (timed past its DRAM capacity where it "
        f"does not fit) at batch {' and '.join(map(str, MICRO_BATCHES))}, KV length {MICRO_KV}, against "
        f"its roofline bound (all compute at peak or all DRAM traffic at full bandwidth, "
        f"whichever is longer), and simulated throughput of a {MICRO_GEMM}^3 "
        f"{MICRO_GEMM_DTYPE} GEMM against the arch's peak.",
        "",
        *_microcheck_lines(res.microchecks),
        "",
    ]
    return write_text(path, "\n".join(lines), "the validation report")


def write_plots(res: "ValidationResult", path: Path) -> list[Path]:
    """The scatter (:func:`write_plot`) at ``path`` and, beside it, the power- and
    energy-per-token-against-batch plots (:func:`write_power_plot`, :func:`write_energy_plot`)
    when such a series ran: every file written, the scatter first."""
    power = write_power_plot(res, Path(path).with_name(POWER_PNG))
    energy = write_energy_plot(res, Path(path).with_name(ENERGY_PNG))
    return [_write_scatter(res, path), *(p for p in (power, energy) if p)]


def write_plot(res: "ValidationResult", path: Path) -> Path:
    """:func:`write_plots`, returning the scatter's path alone."""
    return write_plots(res, path)[0]


def _write_scatter(res: "ValidationResult", path: Path) -> Path:
    """Log-log predicted vs measured, one marker per arch, fitted rows hollow, y = x with
    10% and 25% bands; one panel per unit family so that every axis is one quantity."""
    Figure = figure_class()
    panels = [("throughput", ("decode_tok_s", "decode_tok_s_per_chip", "prefill_tok_s",
                              "gemm_tflops", "dram_tbps")),
              ("latency", ("ttft_s", "tpot_s", "e2e_s", "energy_per_token_j")),
              ("PIM", ("pim_peak_tflops", "pim_internal_gbs", "pim_bw_ratio",
                       "pim_gemv_speedup")),
              ("SNN", ("snn_dynamic_energy_j", "snn_power_w")),
              ("power", ("avg_power_w", "avg_power_w_per_chip") + IDLE_METRICS)]
    fig = Figure(figsize=(30.0, 6.0), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(panels))
    for ax, (title, metrics) in zip(axes, panels):
        pts = [r for r in res.rows if r.metric in metrics and r.predicted and r.predicted > 0]
        vals = [v for r in pts for v in (r.measured, r.predicted)]
        lo, hi = (min(vals) / 2, max(vals) * 2) if vals else (0.1, 10.0)
        xs = [lo * (hi / lo) ** (i / 50) for i in range(51)]
        ax.plot(xs, xs, color="black", lw=1, label="y = x")
        for band, alpha in ((0.25, 0.15), (0.10, 0.30)):
            ax.fill_between(xs, [x * (1 - band) for x in xs], [x * (1 + band) for x in xs],
                            color="tab:gray", alpha=alpha, lw=0, label=f"±{band:.0%}")
        for arch in sorted({r.arch for r in pts}):
            marker, colour = MARKERS.get(arch, DEFAULT_MARKER)
            for fitted in (False, True):
                sel = [r for r in pts if r.arch == arch and r.fitted == fitted]
                if sel:
                    ax.scatter([r.measured for r in sel], [r.predicted for r in sel],
                               marker=marker, s=40, edgecolors=colour,
                               facecolors="none" if fitted else colour,
                               label=f"{arch} ({'fitted' if fitted else 'held-out'})")
            for r in pts:
                if r.arch == arch:
                    ax.annotate(r.id, (r.measured, r.predicted), fontsize=6,
                                xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel({"throughput": "measured (tok/s, TFLOP/s, TB/s)",
                       "latency": "measured (s, J)",
                       "PIM": "measured (TFLOP/s, GB/s, x)",
                       "SNN": "measured (J per inference, W)",
                       "power": "measured (W)"}[title])
        ax.set_ylabel("npusim predicted")
        ax.set_title(f"{title} rows")
        ax.legend(fontsize=7, loc="upper left")
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- microchecks

def microcheck_table(archs: list[str] | None = None) -> list[dict]:
    """Decode-step time over its roofline bound and GEMM throughput over peak, per arch.

    Returns
    -------
    list of dict
        ``arch``, ``check``, ``simulated``, ``ideal``, ``ratio`` (formatted strings) and
        ``why`` (what bounds it), plus the raw ``value`` of the ratio.
    """
    import npusim
    from ..arch import list_archs
    out: list[dict] = []
    for name in archs or [a for a, _ in list_archs()]:
        arch = npusim.load_arch(name)
        out.extend(_decode_checks(arch))
        out.append(_gemm_check(arch))
    return out


def _decode_checks(arch) -> list[dict]:
    import npusim
    out = []
    for batch in MICRO_BATCHES:
        model = MICRO_MODEL
        try:
            r = npusim.simulate(model, arch, phase="decode", batch=batch, kv_len=MICRO_KV)
        except CapacityError:
            # an arch whose DRAM cannot hold the model (an 8 GB PIM card) is timed anyway:
            # the check compares the step with its own bound, not with a measurement
            model = f"{MICRO_MODEL} (past its DRAM, timed anyway)"
            r = npusim.simulate(MICRO_MODEL, arch, phase="decode", batch=batch,
                                kv_len=MICRO_KV, check_capacity=False)
        ratio = r.latency_s / r.bound_latency_s
        bound = "DRAM" if r.memory_s >= r.compute_s else "compute"
        intensity = 2 * r.macs / r.dram_bytes if r.dram_bytes else math.inf
        why = (f"{bound}-bound at the roofline ({intensity:.1f} FLOP/B); beyond it: "
               f"{_gap(r, arch)}")
        out.append({"arch": arch.name, "check": f"{model} decode, batch {batch}, kv {MICRO_KV}",
                    "simulated": f"{r.latency_s * 1e3:.4g} ms",
                    "ideal": f"{r.bound_latency_s * 1e3:.4g} ms", "ratio": f"{ratio:.2f}x",
                    "value": ratio, "why": why})
    return out


def _gap(r, arch) -> str:
    """Where the time beyond the bound goes: fixed per-op launch cost and op kinds."""
    by: dict[str, float] = {}
    for op in r.ops:
        by[op.kind] = by.get(op.kind, 0.0) + op.latency_s
    total = sum(by.values()) or 1.0
    parts = sorted(by.items(), key=lambda kv: -kv[1])[:3]
    # a contraction and each run of glue ops after it are one kernel launch each
    launches, glue = 0, False
    for op in r.ops:
        is_glue = op.kind != "contraction"
        launches += 0 if (is_glue and glue) else 1
        glue = is_glue
    launch = launches * arch.launch_overhead
    graph = ""
    if arch.graph_launch_overhead is not None:
        graph = (f"; a serving stack replaying CUDA graphs pays "
                 f"{arch.graph_launch_overhead * 1e6:.3g} us a kernel instead")
    return (f"{launches} kernel launches x {arch.launch_overhead * 1e6:.3g} us "
            f"({launch / total:.0%} of the time{graph}) and ops below full DRAM bandwidth; "
            f"time in " + ", ".join(f"{k} {v / total:.0%}" for k, v in parts))


def _gemm_check(arch) -> dict:
    from .microbench import gemm_tflops
    dt = MICRO_GEMM_DTYPE if MICRO_GEMM_DTYPE in arch.cores.engine.macs_per_cycle else \
        arch.execution_dtype(MICRO_GEMM_DTYPE).name
    peak = 2 * arch.peak_macs_per_s(dt) / 1e12
    sim = gemm_tflops(arch, MICRO_GEMM, MICRO_GEMM, MICRO_GEMM, dt)
    eff = arch.cores.engine.efficiency.get(dt, 1.0) if hasattr(
        arch.cores.engine.efficiency, "get") else 1.0
    intensity = 2 * MICRO_GEMM ** 3 / (3 * MICRO_GEMM ** 2 * 2)
    ridge = 2 * arch.peak_macs_per_s(dt) / arch.dram.bandwidth
    bound = "compute" if intensity >= ridge else "DRAM"
    why = (f"{bound}-bound ({intensity:.0f} FLOP/B vs ridge {ridge:.0f}); sustained engine "
           f"efficiency {eff:g} (arch/calibration), then tile fill/drain, edge tiles and the "
           f"power limit")
    return {"arch": arch.name, "check": f"GEMM {MICRO_GEMM}^3 {dt}",
            "simulated": f"{sim:.4g} TFLOP/s", "ideal": f"{peak:.4g} TFLOP/s",
            "ratio": f"{sim / peak:.2f}", "value": sim / peak, "why": why}
