"""npusim: cycle-approximate simulation of AI accelerators (NPU, PIM, SNN) from ONNX and LLMs.

The public API is importable from here; it loads lazily, so ``import npusim.ir`` stays light.

>>> import npusim
>>> r = npusim.simulate("tiny-llama", "edu", phase="prefill", batch=1, seq=8)
>>> r.macs > 0
True
"""
from importlib import import_module

__version__ = "0.1.0"

_API = {
    "simulate": "npusim.api",
    "check_fits": "npusim.api",
    "simulate_snn": "npusim.api",
    "simulate_hybrid": "npusim.api",
    "load_snn_graph": "npusim.api",
    "load_arch": "npusim.arch",
    "list_archs": "npusim.arch",
    "load_model": "npusim.frontend.llm",
    "builtin_models": "npusim.frontend.llm",
    "kperf": "npusim.workloads.kperf",
    "validate": "npusim.validate",
}
# submodules that are part of the public API, imported on first use
_MODULES = {"sweep": "npusim.sweep"}
__all__ = [*_API, *_MODULES, "__version__"]


def __getattr__(name: str):
    if name in _MODULES:
        return import_module(_MODULES[name])
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'npusim' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
