"""Chrome / Perfetto trace of a run: one track per resource, one slice per busy span.

The format is Chrome's trace event JSON ("Trace Event Format", Google, https://docs.google.com/
document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU): complete events (``"ph": "X"``) with
``ts`` and ``dur`` in microseconds, and metadata events (``"ph": "M"``) naming the process and
each thread. Perfetto (https://ui.perfetto.dev) and ``chrome://tracing`` both open it.

The chip is one process; each resource the engine reports (``core0``, ``dma``, ``vector``,
``link``, ``pim`` for the processing units in the DRAM...) is one thread. An op with no spans gets one span on ``core``. A thread must not hold
two slices that partly overlap (the viewers mis-nest them), so spans that overlap on one resource
go to extra lanes named ``dma #2``, ``dma #3``...
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..engine.result import OpRecord, RunResult
from ..files import write_text
from .export import _jsonable

PID = 1
FALLBACK_RESOURCE = "core"


def trace_events(result: RunResult) -> list[dict]:
    """The trace events of ``result``: metadata first, then slices sorted by thread and time.

    Times are rounded to whole picoseconds so that back-to-back spans stay back to back once
    written as decimal microseconds.

    Examples
    --------
    >>> from npusim.engine.result import OpRecord, RunResult
    >>> op = OpRecord("mm", "contraction", "n0", "MatMul", "bf16", "bf16", 8, 0.0, 48.0,
    ...               48.0, 1e-6, 2e-6, 2e-6, 2e-6, "memory")
    >>> ev = trace_events(RunResult("toy", "edu", "roofline", (op,)))
    >>> [(e["ph"], e["name"]) for e in ev]
    [('M', 'process_name'), ('M', 'thread_name'), ('M', 'thread_sort_index'), ('X', 'mm')]
    >>> ev[-1]["ts"], ev[-1]["dur"], ev[-1]["args"]["source"]
    (0.0, 2.0, 'n0')
    """
    slices = _slices(result)
    lanes = _lanes(slices)
    resources = sorted({res for res, _ in lanes}, key=_natural)
    names = sorted(set(lanes), key=lambda rl: (_natural(rl[0]), rl[1]))
    tid = {rl: i + 1 for i, rl in enumerate(names)}
    events: list[dict] = [{
        "name": "process_name", "ph": "M", "pid": PID, "tid": 0,
        "args": {"name": f"{result.arch}: {result.model} ({result.engine})"},
    }]
    for rl in names:
        res, lane = rl
        label = res if lane == 0 else f"{res} #{lane + 1}"
        events.append({"name": "thread_name", "ph": "M", "pid": PID, "tid": tid[rl],
                       "args": {"name": label}})
        events.append({"name": "thread_sort_index", "ph": "M", "pid": PID, "tid": tid[rl],
                       "args": {"sort_index": resources.index(res) * 1000 + lane}})
    xs = []
    for i, (start_ps, end_ps, rec, label, res) in enumerate(slices):
        args = {"op": rec.name, "source": rec.source, "kind": rec.kind,
                "op_type": rec.op_type, "macs": rec.macs, "vector_ops": rec.vector_ops,
                "bytes": rec.bytes, "dram_bytes": rec.dram_bytes, "bound": rec.bound,
                "latency_s": rec.latency_s, "device": rec.device}
        if label and label != rec.name:
            args["label"] = label
        else:
            label = ""
        xs.append({"name": f"{rec.name}: {label}" if label else rec.name,
                   "cat": rec.kind, "ph": "X", "pid": PID, "tid": tid[lanes[i]],
                   "ts": start_ps / 1e6, "dur": (end_ps - start_ps) / 1e6, "args": args})
    xs.sort(key=lambda e: (e["tid"], e["ts"], e["dur"]))
    return events + xs


def trace_dict(result: RunResult) -> dict:
    """The whole trace file as a dict: ``traceEvents`` plus the run's totals in ``otherData``."""
    return {
        "traceEvents": trace_events(result),
        "displayTimeUnit": "ns",
        "otherData": {"model": result.model, "arch": result.arch, "engine": result.engine,
                      "latency_s": result.latency_s, "energy_j": result.energy_j},
    }


def write_trace(result: RunResult, path: str | Path) -> Path:
    """Write ``result`` as a Chrome trace JSON file that Perfetto and ``chrome://tracing`` open.

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
    """
    text = json.dumps(_jsonable(trace_dict(result)), allow_nan=False) + "\n"
    return write_text(Path(path), text, "trace")


def _expand(resource: str) -> list[str]:
    """A span on a range of cores (``"core0-7"``) is one slice on each of them."""
    name, _, rng = resource.partition("-")
    if rng and name.startswith("core") and name[4:].isdigit() and rng.isdigit():
        return [f"core{i}" for i in range(int(name[4:]), int(rng) + 1)]
    return [resource]


def _slices(result: RunResult) -> list[tuple[int, int, OpRecord, str, str]]:
    """(start_ps, end_ps, record, label, resource) of every busy interval.

    An op without spans occupies ``core`` from its ``start_s`` to ``end_s`` (a fused op: a
    zero-length slice). When the engine scheduled nothing (no spans, every ``end_s`` 0, as the
    roofline engine leaves a run) each op is placed where the run's latency puts it: after the
    ops before it, for its ``latency_s``.
    """
    scheduled = any(r.spans or r.end_s > 0 for r in result.ops)
    out = []
    cursor = 0.0
    for rec in result.ops:
        if rec.spans:
            for sp in rec.spans:
                s, e = _ps(sp.start_s), _ps(sp.end_s)
                for resource in _expand(sp.resource):
                    out.append((s, max(s, e), rec, sp.label, resource))
        elif scheduled:
            s = _ps(rec.start_s)
            out.append((s, max(s, _ps(rec.end_s)), rec, "", _fallback(rec)))
        else:
            s = _ps(cursor)
            out.append((s, max(s, _ps(cursor + rec.latency_s)), rec, "", _fallback(rec)))
        cursor += rec.latency_s
    return out


def _fallback(rec: OpRecord) -> str:
    """The track of an op without spans: ``core``, or its device's (``pim``)."""
    return FALLBACK_RESOURCE if rec.device == "npu" else rec.device


def _lanes(slices: list[tuple[int, int, OpRecord, str, str]]) -> list[tuple[str, int]]:
    """For each slice, (resource, lane): the lowest lane of its resource free at its start.

    Greedy interval partitioning in start order uses the fewest lanes possible.
    """
    order = sorted(range(len(slices)), key=lambda i: (slices[i][4], slices[i][0], slices[i][1]))
    free_at: dict[str, list[int]] = {}
    out: list[tuple[str, int]] = [("", 0)] * len(slices)
    for i in order:
        start, end, _, _, res = slices[i]
        ends = free_at.setdefault(res, [])
        lane = next((k for k, t in enumerate(ends) if t <= start), len(ends))
        if lane == len(ends):
            ends.append(end)
        else:
            ends[lane] = end
        out[i] = (res, lane)
    return out


def _ps(seconds: float) -> int:
    return round(seconds * 1e12)


def _natural(s: str) -> tuple:
    """Sort key that puts ``core2`` before ``core10``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s))
