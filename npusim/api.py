"""The public Python API; the CLI is a thin layer over it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from .arch import load_arch
from .engine.result import RunResult
from .engine.roofline import roofline
from .engine.simulate import simulate_graph
from .errors import CapacityError, NpusimError
from .frontend.llm import is_onnx_path, load_model
from .ir import Graph, Role
from .passes.quantize import resolve_precision


def check_fits(graph: Graph, arch) -> None:
    """Raise :class:`CapacityError` when the graph's weights and KV cache exceed DRAM.

    The advice names both spellings of each remedy, as the message reaches Python callers and
    the command line alike.
    """
    by_role = graph.bytes_by_role()
    need = by_role[Role.WEIGHT.value] + by_role[Role.KV_CACHE.value]
    cap = arch.dram.capacity
    if need > cap:
        raise CapacityError(
            f"{graph.name} needs {need / 1e9:.2f} GB of weights and KV cache but {arch.name} has "
            f"{cap / 1e9:.2f} GB of DRAM. Use a smaller model, batch or context, a lower "
            f"precision (dtype=/--dtype fp8, int8, int4 or mxfp4), a larger memory "
            f"(overrides=/--set dram.capacity=...), or time it anyway (check_capacity=False/"
            f"--ignore-capacity)")


ENGINES = ("tile", "roofline")


def simulate(model: str | Path | Graph, arch: str | Path | object = "rngd", *,
             dims: Mapping[str, int] | None = None,
             overrides: Mapping[str, str] | Sequence[str] | None = None,
             engine: str = "tile", check_capacity: bool = True, pim: str = "auto",
             parallel=None, **model_kw) -> RunResult:
    """Run ``model`` on ``arch`` and return the per-op result tree.

    Parameters
    ----------
    model : path, built-in LLM name, or Graph
    arch : shipped arch name, YAML path, or a loaded Arch
    dims : bindings of the model's symbolic dimensions
    overrides : arch field overrides, e.g. ``{"dram.bandwidth": "3 TB/s"}``
    engine : ``"tile"`` (mapping search, Numba kernels, schedule, energy) or ``"roofline"``
        (the ideal bound alone; the tile engine reports it beside its own latency too)
    check_capacity : raise CapacityError if weights + KV cache exceed DRAM
    pim : on an arch with PIM units, where their eligible ops go: ``"auto"`` (by cost),
        ``"all"`` or ``"off"`` (see :func:`npusim.engine.simulate.simulate_graph`); the
        roofline engine is the NPU's alone
    parallel : str or ParallelLayout, optional
        For a built-in LLM: the multi-chip layout (``"tp=4,pp=2"``) of a system running this
        step. The per-op result stays one whole-model graph on one chip; ``meta`` gains the
        layout, why, and the step's seconds and joules on the whole system as the serving cost
        model prices it (:class:`~npusim.workloads.stepcost.StepCostModel`: tensor-parallel
        shards, pipeline stages and their transfers). Without it ``meta["parallel"]`` says
        ``tp=1,pp=1``.
    **model_kw : ``phase``, ``batch``, ``seq``, ``kv_len``, ``dtype``, ``on_unsupported``
        for :func:`npusim.load_model`. ``dtype`` is a precision (bf16, fp16, fp32, fp8, int8,
        int4, mxfp4; the names ``npusim kperf --precision`` takes), resolved for ``arch``.
        ``batch`` also runs an ONNX file at that batch (:mod:`npusim.frontend.rebatch`).

    Examples
    --------
    >>> r = simulate("tiny-llama", "rngd", phase="decode", batch=2, kv_len=16)
    >>> r.latency_s >= r.bound_latency_s > 0
    True
    """
    if engine not in ENGINES:
        raise NpusimError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    if parallel is not None:
        from .workloads.stepcost import ParallelLayout
        parallel = ParallelLayout.parse(parallel)  # a malformed layout fails before any work
    if isinstance(arch, (str, Path)):
        arch = load_arch(arch, overrides)
    elif overrides:
        raise NpusimError("overrides apply only when arch is given by name or path; apply "
                          "them with npusim.load_arch(name, overrides) instead")
    if isinstance(model, Graph):
        given = sorted(k for k, v in {**model_kw, "dims": dims}.items() if v is not None)
        if given:
            raise NpusimError(f"{', '.join(given)} apply when the model is given by name or "
                              f"path; this Graph is already built (pass them to load_model)")
        graph = model
    else:
        if model_kw.get("dtype") is not None:
            # the precision as this arch runs it (mxfp4 without native fp8 computes in bf16)
            model_kw["dtype"] = resolve_precision(model_kw["dtype"], arch)
        graph = load_model(model, dims=dims, **model_kw)
    if check_capacity:
        check_fits(graph, arch)
    result = simulate_graph(graph, arch, pim=pim) if engine == "tile" else roofline(graph, arch)
    result.meta.setdefault("parameters", graph.parameters)
    if isinstance(model, str) and not is_onnx_path(model):
        result.meta.update(_system_step(model, arch, parallel, model_kw))
    elif parallel is not None:
        raise NpusimError(f"parallel/--parallel {parallel}: a multi-chip layout applies to a "
                          f"built-in LLM (npusim models), not to {model}")
    return result


def _system_step(model: str, arch, parallel, model_kw: Mapping) -> dict:
    """The layout of an LLM run and, when one is given, the step on the whole system."""
    if parallel is None:
        return {"parallel": "tp=1,pp=1", "parallel_why": "one chip (give --parallel for a "
                                                         "multi-chip system)"}
    from .workloads.stepcost import StepCostModel
    cost = StepCostModel(model, arch, parallel=parallel,
                         precision=model_kw.get("dtype") or "bf16")
    batch = model_kw.get("batch") or 1
    if (model_kw.get("phase") or "prefill") == "decode":
        step = cost.step([], [model_kw.get("kv_len") or 128] * batch)
    else:
        step = cost.step([(model_kw.get("seq") or 128, model_kw.get("kv_len") or 0)] * batch, [])
    return {"parallel": str(cost.parallel), "parallel_why": cost.parallel_why,
            "system_chips": cost.chips, "system_step_s": step.seconds,
            "system_step_j": step.energy_j,
            "system_weight_bytes_per_chip": cost.weight_bytes_per_chip}


# ----------------------------------------------------------------------------- spiking cores
SNN_MAPPERS = ("greedy", "traffic")


def is_spiking(model: str | Path | Graph) -> bool:
    """True for a NIR file (``.nir``) or an SNN graph, the models that are spiking already."""
    if isinstance(model, Graph):
        return bool(model.meta.get("snn"))
    return str(model).lower().endswith(".nir")


def load_snn_graph(model: str | Path | Graph, timesteps: int | None, *,
                   rates=None, default_rate: float | None = None, calibrate=None,
                   neuron: str = "if", max_pool: str = "error",
                   dims: Mapping[str, int] | None = None) -> Graph:
    """The SNN graph of ``model``: a NIR file read as it is, an ONNX CNN/MLP converted to a
    rate-coded spiking network of ``timesteps`` steps, or an SNN graph passed through.

    Rates, per layer, in this order: ``rates`` (a mapping, or the path of a YAML/JSON rates
    file), then ``calibrate`` (an ONNX model with weights only: ``True`` for a seeded random
    batch, or an array of inputs, run through onnxruntime), then ``default_rate`` (default
    :data:`npusim.passes.spiking.DEFAULT_RATE`, an assumption, with a warning naming the
    layers it filled).
    """
    from .passes.spiking import DEFAULT_RATE, load_rates, to_snn
    default = DEFAULT_RATE if default_rate is None else default_rate
    if isinstance(model, Graph) and model.meta.get("snn"):
        return model
    if timesteps is None or int(timesteps) < 1:
        raise NpusimError(f"{model}: a spiking run needs timesteps >= 1 (--timesteps T)")
    if is_spiking(model):
        from .frontend.nir_import import load_nir
        if calibrate is not None:
            raise NpusimError(f"{model}: calibration runs an ONNX model through onnxruntime; a "
                              f"NIR file's rates come from a rates file or the default rate")
        if isinstance(rates, (str, Path)):
            rates = dict(load_rates(rates).rates)
        return load_nir(model, int(timesteps), rates=rates, default_rate=default)
    graph = model if isinstance(model, Graph) else load_model(model, dims=dims)
    if calibrate is not None and rates is None:
        if isinstance(model, Graph):
            raise NpusimError("calibration runs the ONNX file through onnxruntime; pass the "
                              "model by path, not as a Graph")
        from .passes.spike_calibration import calibrate_rates
        inputs = None if calibrate is True else calibrate
        rates = calibrate_rates(model, inputs, dims=dims, max_pool=max_pool)
    return to_snn(graph, int(timesteps), rates=rates, default_rate=default, model=neuron,
                  max_pool=max_pool)


def _check_graded(graph: Graph, device) -> None:
    """Graded spikes (a payload per spike) and sigma-delta neurons (Loihi 2's change coding,
    which sends graded spikes) run only on a device whose spikes carry a payload.

    On such a device their activity is the rate of messages (neurons whose change crossed the
    threshold, per step), priced as the device's events: a graded message as one message, a
    synaptic operation on its payload as one synaptic operation. That is an assumption: no
    per-event energy of graded spikes is published (snn.md sec. 1b); on ``loihi2`` the only
    cost is the all-in Hala Point bound per synaptic operation, which covers them."""
    from .ir import Neuron
    graded = [op.name for op in graph.ops() if isinstance(op, Neuron)
              and (op.graded or op.model == "sigma_delta")]
    if graded and not device.structure.graded_spikes:
        raise NpusimError(
            f"{graph.name}: layer(s) {', '.join(repr(n) for n in graded[:4])} send graded "
            f"spikes (sigma-delta or graded neurons) but {device.name} ({device.source}) has "
            f"graded_spikes: false; run them on a device with graded spikes (loihi2) or use "
            f"binary spiking neurons (--neuron if|lif|cubalif)")


@dataclass
class SnnRun:
    """A network run on spiking cores: the graph, its chain of layers, the per-layer report
    and the engine result behind it."""

    graph: Graph
    network: object
    device: object
    rates: dict
    timesteps: int
    mapper: str
    result: object
    report: object
    warnings: tuple[str, ...] = ()

    @property
    def energy_j(self) -> float:
        return self.result.energy_j

    @property
    def latency_s(self) -> float:
        return self.result.latency_s

    def totals(self) -> dict:
        return self.report.totals()


def simulate_snn(model: str | Path | Graph, device: str | Path | object = "loihi", *,
                 timesteps: int | None = None, rates=None, default_rate: float | None = None,
                 calibrate=None, neuron: str = "if", max_pool: str = "error",
                 mapper: str = "greedy", cost_set: str | None = None,
                 stages: str = "serial", dims: Mapping[str, int] | None = None) -> SnnRun:
    """Run ``model`` as a spiking network on spiking-core ``device``.

    Parameters
    ----------
    model : an ONNX CNN/MLP (converted with :func:`load_snn_graph`), a ``.nir`` file, or an
        SNN graph
    device : a shipped device name (``loihi``, ``loihi2``, ``truenorth``, ``snn-edu``; see
        ``npusim archs``), a device YAML path, or a loaded device
    timesteps : steps per inference (required unless ``model`` is an SNN graph)
    rates, default_rate, calibrate, neuron, max_pool : see :func:`load_snn_graph`
    mapper : ``"greedy"`` (layer by layer, consecutive cores) or ``"traffic"`` (partition and
        place to cut inter-core messages and hops)
    cost_set : one of the device's cost sets (default its first; e.g. ``table2`` on loihi)
    stages : the per-core timing model of :data:`npusim.engine.snn.STAGES`

    Notes
    -----
    The README's "Neuromorphic cores" section runs it on a converted CNN (tested).
    """
    from .arch.snn_device import load_snn_device
    from .engine import snn as es
    from .engine.snn_graph import to_network
    from .report.snn import snn_report
    if mapper not in SNN_MAPPERS:
        raise NpusimError(f"mapper {mapper!r} is not one of {', '.join(SNN_MAPPERS)}")
    dev = device if not isinstance(device, (str, Path)) else load_snn_device(device)
    graph = load_snn_graph(model, timesteps, rates=rates, default_rate=default_rate,
                           calibrate=calibrate, neuron=neuron, max_pool=max_pool, dims=dims)
    T = int(graph.meta["timesteps"])
    _check_graded(graph, dev)
    net, layer_rates = to_network(graph, max_pool=max_pool)
    if mapper == "greedy":
        mapping = es.map_network(net, dev)
    else:
        from .engine.snn_map import map_traffic
        mapping = map_traffic(net, dev, layer_rates)
    result = es.run(net, dev, layer_rates, T, mapping=mapping, cost_set=cost_set,
                    stages=stages)
    report = snn_report(net, result, dev, activity=layer_rates, cost_set=cost_set)
    return SnnRun(graph=graph, network=net, device=dev, rates=layer_rates, timesteps=T,
                  mapper=mapper, result=result, report=report,
                  warnings=tuple(graph.warnings))


HYBRID_PLACES = ("auto", "npu", "snn")



def simulate_hybrid(model: str | Path | Graph, npu: str | Path | object = "edu",
                    device: str | Path | object = "snn-edu", *, timesteps: int | None = None,
                    place: str = "auto", objective: str = "energy", rates=None,
                    default_rate: float | None = None, calibrate=None, neuron: str = "if",
                    max_pool: str = "error", dims: Mapping[str, int] | None = None,
                    dtype: str = "int8"):
    """Run ``model`` on a C-DNN-style system of NPU cores and spiking cores.

    ``place``: ``"auto"`` puts each layer where the chain costs least ``objective``
    (``energy`` or ``latency``; dynamic programming over the layers, with the conversion cost
    at every DNN/SNN boundary), ``"npu"`` or ``"snn"`` all on one side. The model and its
    rates are read as :func:`load_snn_graph` reads them. Returns a
    :class:`npusim.engine.hybrid.Placement` (``sides``, ``parts``, ``energy_j``, ``latency_s``).
    """
    from .arch.snn_device import load_snn_device
    from .engine import hybrid as eh
    from .engine.snn_graph import to_network
    if place not in HYBRID_PLACES:
        raise NpusimError(f"place {place!r} is not one of {', '.join(HYBRID_PLACES)}")
    arch = load_arch(npu) if isinstance(npu, (str, Path)) else npu
    dev = device if not isinstance(device, (str, Path)) else load_snn_device(device)
    graph = load_snn_graph(model, timesteps, rates=rates, default_rate=default_rate,
                           calibrate=calibrate, neuron=neuron, max_pool=max_pool, dims=dims)
    net, layer_rates = to_network(graph, max_pool=max_pool)
    system = eh.System(arch, dev, dtype=dtype)
    T = int(graph.meta["timesteps"])
    if place == "auto":
        return eh.place(system, net, layer_rates, T, objective)
    return eh.evaluate(system, net, layer_rates, T, place)
