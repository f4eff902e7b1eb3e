"""The public Python API; the CLI is a thin layer over it."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from .arch import load_arch
from .engine.result import RunResult
from .engine.roofline import roofline
from .engine.simulate import simulate_graph
from .errors import CapacityError, NpusimError
from .frontend.llm import load_model
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
             **model_kw) -> RunResult:
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
    **model_kw : ``phase``, ``batch``, ``seq``, ``kv_len``, ``dtype``, ``on_unsupported``
        for :func:`npusim.load_model`. ``dtype`` is a precision (bf16, fp16, fp32, fp8, int8,
        int4, mxfp4; the names ``npusim kperf --precision`` takes), resolved for ``arch``.

    Examples
    --------
    >>> r = simulate("tiny-llama", "rngd", phase="decode", batch=2, kv_len=16)
    >>> r.latency_s >= r.bound_latency_s > 0
    True
    """
    if engine not in ENGINES:
        raise NpusimError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
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
    return result
