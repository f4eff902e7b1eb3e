"""One design point of a sweep: its arch, each workload run on it, the metrics and the verdict.

A sweep runs thousands of points whose archs differ in a few fields while the workloads stay
the same, so an :class:`Evaluator` lives as long as its worker process and keeps what does not
depend on the point: each workload's lowered graph (per precision as the arch resolves it) and
the base arch's identity. What does depend on the point (mapping search, timing, energy) is the
engine's to cache, keyed on the fields it reads.

Every record carries the metrics of :data:`npusim.dse.spec.METRICS` that mean something for
its workload kind, the constraints it breaks (stored and marked, never dropped), and, when the
point could not be run, the one-line error instead of metrics: a sweep never stops for a bad
point. The key is a hash of the resolved arch, the workload and npusim's version, so the same
design reached twice is stored once and a changed npusim re-runs it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from .. import __version__
from ..errors import NpusimError

#: metrics a workload kind gives, besides the design's own (:data:`DESIGN_METRICS`)
RUN_METRICS = {
    "llm": ("latency_s", "tokens_per_s", "energy_j", "energy_per_token_j", "power_w",
            "perf_per_w", "perf_per_mm2", "utilisation", "dram_need_bytes"),
    "onnx": ("latency_s", "inferences_per_s", "energy_j", "power_w", "perf_per_w",
             "perf_per_mm2", "utilisation", "dram_need_bytes"),
    "kperf": ("ttft_s", "tpot_s", "tokens_per_s", "energy_per_token_j", "power_w",
              "perf_per_w", "perf_per_mm2"),
    "snn": ("latency_s", "inferences_per_s", "energy_j", "power_w", "perf_per_w"),
}
RUN_METRICS["graph"] = RUN_METRICS["onnx"]
#: the metrics of an NPU design itself, whatever runs on it (``cost`` when the spec gives one)
DESIGN_METRICS = ("area_mm2", "sram_bytes", "dram_bytes", "tdp_w")


def metrics_of(workload, cost) -> tuple[str, ...]:
    """The metrics ``workload``'s records carry (a step's TTFT or TPOT by its phase)."""
    out = list(RUN_METRICS[workload.kind])
    if workload.kind == "llm":
        out.append("tpot_s" if workload.params.get("phase", "decode") == "decode" else "ttft_s")
    if workload.kind != "snn":
        out += DESIGN_METRICS + (("cost",) if cost else ())
    return tuple(out)


def check_metrics(spec) -> None:
    """Refuse, before any point runs, an objective or constraint that a workload cannot give
    (a TTFT of a decode step, an area of a spiking-core device): every point would otherwise
    miss it."""
    wanted = [(f"objectives[{i}]", o.metric) for i, o in enumerate(spec.objectives)]
    wanted += [(f"constraints.{c.metric}", c.metric) for c in spec.constraints]
    for w in spec.workloads:
        have = metrics_of(w, spec.cost)
        for key, metric in wanted:
            if metric not in have:
                extra = " (give cost: in the spec)" if metric == "cost" else ""
                raise NpusimError(
                    f"{spec.source}: {key}: {metric} is not a metric of workload {w.name!r} "
                    f"({w.kind}{extra}); it gives {', '.join(have)}")


def canonical(obj: Any) -> Any:
    """``obj`` as plain JSON data with a stable order: dataclasses and mappings as sorted
    dicts, tuples as lists, floats by their shortest round-trip text (so 1.5e12 hashes the
    same on every machine); what identifies a design, not where it was read from."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if f.name not in _NOT_IDENTITY}
    if isinstance(obj, Mapping):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if isinstance(obj, float):
        return repr(obj)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return repr(obj)


# where a design was read from and how it was spelled are not part of what it is
_NOT_IDENTITY = {"source", "overrides", "calibration"}


def digest(data: Any) -> str:
    """The sha256 hex digest of ``data``'s canonical JSON."""
    text = json.dumps(canonical(data), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def workload_identity(workload) -> dict:
    return {"name": workload.name, "kind": workload.kind, "params": dict(workload.params)}


def record_key(resolved: Any, workload) -> str:
    """The store key of one (design, workload): the resolved arch (or spiking device), the
    workload, and npusim's version."""
    return digest({"arch": resolved, "workload": workload_identity(workload),
                   "version": __version__})


def point_key(base_id: str, point: Mapping[str, str], workload) -> str:
    """A cheap key of one (point, workload) the driver computes without resolving the arch:
    the base's resolved identity, the point's field texts, the workload and the version. It
    finds the points a store already holds on a re-run; :func:`record_key` stays the one
    that makes a row unique."""
    return digest({"base": base_id, "point": dict(point),
                   "workload": workload_identity(workload), "version": __version__})


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    if isinstance(e, NpusimError):
        return text or type(e).__name__
    # not npusim's own clear error: a bug to report, kept short so the sweep goes on
    return f"internal error ({type(e).__name__}: {text[:300]}); please report it"


class Evaluator:
    """Runs the design points of one spec in this process; keeps the lowered graphs."""

    def __init__(self, spec):
        self.spec = spec
        self._graphs: dict[tuple, Any] = {}
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    # ------------------------------------------------------------------ the design
    def resolve(self, point: Mapping[str, str]):
        """The arch (or spiking device) of ``point``: the base with the spec's fixed settings
        and then the point's fields, validated as ``--set`` validates them."""
        overrides = {**self.spec.base_overrides, **point}
        if self.spec.base_kind == "snn_device":
            from ..arch.snn_device import load_snn_device
            return load_snn_device(self.spec.base, overrides=overrides or None)
        from ..arch import load_arch
        return load_arch(self.spec.base, overrides or None)

    def base_id(self) -> str:
        """The base design's identity (resolved once)."""
        if not hasattr(self, "_base_id"):
            self._base_id = digest(self.resolve({}))
        return self._base_id

    # ------------------------------------------------------------------ one point
    def evaluate(self, index: int, point: Mapping[str, str], phase: str = "sample") -> list[dict]:
        """One record per workload for design point ``index`` (its field texts ``point``)."""
        from .strategies import values
        point = dict(point)
        vals = values(self.spec, point)
        t0 = time.perf_counter()
        try:
            design = self.resolve(point)
            design_error = None
        except NpusimError as e:  # a combination the arch refuses: every workload says why
            design, design_error = None, one_line(e)
        out = []
        for w in self.spec.workloads:
            t = time.perf_counter()
            rec = {"point": int(index), "phase": phase, "workload": w.name, "params": point,
                   "values": vals, "metrics": {}, "violations": [], "feasible": False,
                   "error": design_error, "worker": self.worker}
            if design is None:
                rec["key"] = digest({"base": self.base_id_or_none(), "point": point,
                                     "workload": workload_identity(w), "version": __version__})
            else:
                rec["key"] = record_key(design, w)
                try:
                    rec["metrics"] = self.metrics(design, w)
                except Exception as e:  # noqa: BLE001 - one point's failure never stops a sweep
                    rec["error"] = one_line(e)
                if rec["error"] is None:
                    rec["violations"] = violations(rec["metrics"], self.spec.constraints)
                    rec["feasible"] = not rec["violations"]
            rec["elapsed_s"] = time.perf_counter() - t
            out.append(rec)
        if out and design is None:
            out[0]["elapsed_s"] = time.perf_counter() - t0
        return out

    def warm(self) -> None:
        """Build what every later point reuses (the base design's graphs, the engine's compiled
        kernels) by evaluating the base design's graph workloads once and dropping the records:
        local workers forked after this start warm instead of each paying about a second.
        Best effort: a base design or workload that fails here fails again, stored, in its
        point. K-Perf and spiking workloads are left cold (a base run may take seconds)."""
        try:
            design = self.resolve({})
        except Exception:  # noqa: BLE001 - the points report it
            return
        for w in self.spec.workloads:
            if w.kind in ("llm", "onnx", "graph"):
                try:
                    self.metrics(design, w)
                except Exception:  # noqa: BLE001 - the points report it
                    pass

    def base_id_or_none(self) -> str | None:
        try:
            return self.base_id()
        except NpusimError:
            return None

    # ------------------------------------------------------------------ metrics
    def metrics(self, design, workload) -> dict[str, float]:
        kind = workload.kind
        if kind == "snn":
            m = self._snn(design, workload)
        elif kind == "kperf":
            m = self._kperf(design, workload)
        else:
            m = self._graph_run(design, workload)
        if kind != "snn":
            m.update(arch_metrics(design, m.get("chips", 1.0), self.spec.cost))
            per = m.get("tokens_per_s", m.get("inferences_per_s"))
            if per is not None and m.get("area_mm2") and math.isfinite(m["area_mm2"]):
                m["perf_per_mm2"] = per / m["area_mm2"]
        per = m.get("tokens_per_s", m.get("inferences_per_s"))
        if per is not None and m.get("power_w"):
            m["perf_per_w"] = per / m["power_w"]
        return {k: float(v) for k, v in m.items() if v is not None}

    def graph(self, design, workload):
        """The workload's lowered graph, built once per process and per precision as this
        arch resolves it (mxfp4 on an arch without fp8 runs in bf16, a different graph)."""
        from ..frontend.llm import load_model
        from ..passes.quantize import resolve_precision
        p = workload.params
        precision = p.get("precision")
        resolved = resolve_precision(precision, design).name if precision else None
        key = (workload.name, resolved)
        if key not in self._graphs:
            if workload.kind == "llm":
                g = load_model(p["model"], phase=p.get("phase", "decode"), batch=p.get("batch", 1),
                               seq=p.get("seq"), kv_len=p.get("kv_len"),
                               dtype=resolve_precision(precision or "bf16", design))
            elif workload.kind == "graph":
                from ..graphs.mlperf import build
                g = load_model(build(p["name"], p.get("batch", 1)),
                               dtype=resolve_precision(precision, design) if precision else None)
            else:
                g = load_model(p["path"], dims=p.get("dims"), batch=p.get("batch"),
                               dtype=resolve_precision(precision, design) if precision else None)
            self._graphs[key] = g
        return self._graphs[key]

    def resident_bytes(self, graph) -> float:
        """Weights plus KV cache of ``graph``: what must fit in DRAM (once per graph)."""
        key = ("resident", id(graph))
        if key not in self._graphs:
            from ..ir import Role
            by_role = graph.bytes_by_role()
            self._graphs[key] = by_role[Role.WEIGHT.value] + by_role[Role.KV_CACHE.value]
        return self._graphs[key]

    def _graph_run(self, design, workload) -> dict:
        from ..api import simulate
        graph = self.graph(design, workload)
        p = workload.params
        parallel = p.get("parallel")
        if parallel and workload.kind == "llm":
            # the system step of a multi-chip layout comes from the serving cost model
            r = simulate(p["model"], design, phase=p.get("phase", "decode"),
                         batch=p.get("batch", 1), seq=p.get("seq"), kv_len=p.get("kv_len"),
                         dtype=p.get("precision") or "bf16", parallel=parallel,
                         check_capacity=False)
        else:
            # the totals alone: a sweep stores no per-op records (the same figures as
            # simulate(graph, design) gives, to the last bit)
            from ..engine.simulate import simulate_graph
            r = simulate_graph(graph, design, records=False)
        # the few totals a point needs, each one pass over the ops (r.totals() also builds
        # the per-component and per-device breakdowns, which a sweep does not store)
        latency, energy = r.latency_s, r.energy_j
        m = {"latency_s": latency, "energy_j": energy,
             "power_w": energy / latency if latency > 0 else 0.0,
             "utilisation": r.utilization, "dram_need_bytes": self.resident_bytes(graph),
             "area_mm2": r.area_totals().get("area_mm2", math.nan), "chips": 1.0}
        if workload.kind == "llm":
            batch = int(p.get("batch", 1))
            phase = p.get("phase", "decode")
            tokens = batch if phase == "decode" else batch * int(p.get("seq") or 128)
            if parallel:
                m["latency_s"] = r.meta["system_step_s"]
                m["energy_j"] = r.meta["system_step_j"]
                m["chips"] = float(r.meta["system_chips"])
                m["power_w"] = m["energy_j"] / m["latency_s"]
            m["tokens_per_s"] = tokens / m["latency_s"]
            m["energy_per_token_j"] = m["energy_j"] / tokens
            m["tpot_s" if phase == "decode" else "ttft_s"] = m["latency_s"]
        else:
            batch = graph_batch(graph, p)
            m["inferences_per_s"] = batch / m["latency_s"]
            m["energy_j"] = m["energy_j"] / batch  # per inference
        return m

    def _kperf(self, design, workload) -> dict:
        from ..workloads.kperf import kperf
        p = workload.params
        res = kperf(design, p["model"], chips=p.get("chips"),
                    precisions=(p.get("precision", "bf16"),), input_lens=(int(p["input_len"]),),
                    output_lens=(int(p["output_len"]),), users=(int(p["users"]),),
                    jobs=1)   # one scenario, in this worker: the sweep's workers are the pool
        row = res.records[0]
        if row.get("status") != "ok":
            raise NpusimError(f"K-Perf scenario {workload.name}: {row.get('status')}")
        chips = float(row.get("chips", 1))
        return {"ttft_s": row["ttft_mean_s"], "tpot_s": row["tpot_mean_s"],
                "tokens_per_s": row["decode_tok_s"],
                "energy_per_token_j": row["energy_per_token_j"],
                "power_w": row["avg_power_w"], "chips": chips}

    def _snn(self, device, workload) -> dict:
        from ..api import simulate_snn
        p = workload.params
        model = p["model"]
        from ..graphs.vision import NETWORKS
        if model in NETWORKS:  # a built-in network: its ONNX graph, built once per process
            key = (workload.name, "vision")
            if key not in self._graphs:
                from ..frontend.llm import load_model
                from ..graphs.vision import build
                self._graphs[key] = load_model(build(model))
            model = self._graphs[key]
        run = simulate_snn(model, device, timesteps=p.get("timesteps"),
                           default_rate=p.get("default_rate"), mapper=p.get("mapper", "greedy"))
        lat, e = run.latency_s, run.energy_j
        return {"latency_s": lat, "energy_j": e, "power_w": e / lat if lat > 0 else None,
                "inferences_per_s": 1.0 / lat if lat > 0 else None}


def graph_batch(graph, params) -> int:
    """Inferences in one run of an ONNX or built-in graph: the batch it was run at."""
    b = params.get("batch")
    if b:
        return int(b)
    return int(graph.meta.get("batch", 1) or 1)


def arch_metrics(arch, chips: float, cost: Mapping[str, float]) -> dict:
    """The metrics that are the design's own, whatever runs on it: area, SRAM, DRAM, TDP and
    the user's cost model (``cost`` from the spec; an assumption of theirs, never ours)."""
    from ..energy.area import area_totals
    area = area_totals(arch).get("area_mm2")
    area = math.nan if area is None else float(area) * chips
    sram = (arch.cores.count * arch.cores.sram + arch.shared_sram) * chips
    m = {"area_mm2": area, "sram_bytes": sram, "dram_bytes": arch.dram.capacity * chips,
         "tdp_w": arch.power.tdp * chips if arch.power.tdp else None, "chips": chips}
    if cost:
        c = 0.0
        if "per_mm2" in cost:
            c += cost["per_mm2"] * area
        if "per_gb_dram" in cost:
            c += cost["per_gb_dram"] * m["dram_bytes"] / 1e9
        m["cost"] = c
    return m


def violations(metrics: Mapping[str, float], constraints) -> list[str]:
    """One text per constraint ``metrics`` breaks; a constraint on a metric this workload does
    not give is broken too (the point cannot be shown to meet it), and says so. Weights and
    KV cache that overflow DRAM always break the design."""
    out = []
    need, have = metrics.get("dram_need_bytes"), metrics.get("dram_bytes")
    if need is not None and have is not None and need > have:
        out.append(f"dram_need_bytes {need / 1e9:.3g} GB > dram_bytes {have / 1e9:.3g} GB "
                   f"(weights and KV cache do not fit)")
    for c in constraints:
        v = metrics.get(c.metric)
        if v is None or not math.isfinite(v):
            out.append(f"{c.metric} unknown for this point; cannot check {c.op} {c.text}")
        elif (c.op == "<=" and v > c.limit) or (c.op == ">=" and v < c.limit):
            out.append(f"{c.metric} {v:.4g} {'>' if c.op == '<=' else '<'} {c.text}")
    return out
