"""The workloads of a sweep spec: one validator per kind (``llm``, ``onnx``, ``graph``,
``kperf``, ``snn``), each filling in the defaults so that a workload's ``params`` are complete
(and its store key stable). Called by :func:`npusim.dse.spec.parse_spec`.

A workload names its kind by one key; the key holds the main parameter (``llm: llama-3.1-8b``,
``onnx: model.onnx``, ``graph: resnet50``, ``snn: lenet``) or a mapping of all of them
(``kperf: {model: ..., users: 32}``), the others sitting beside it::

    - {name: decode-32, llm: llama-3.1-8b, phase: decode, batch: 32, kv_len: 1024}
    - {name: chat, kperf: {model: llama-3.1-8b, input_len: 1024, output_len: 256, users: 32}}
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..arch.units import brief as _brief
from ..errors import NpusimError
from .spec import Workload, check_keys, choice, fail, is_file, resolve_path

PHASES = ("prefill", "decode")
WORKLOAD_KINDS = ("llm", "onnx", "graph", "kperf", "snn")
# Generous caps on workload sizes (assumptions: far past any real serving or training step),
# so an absurd value is a clear error here rather than a memory blow-up on every point.
_INT_CAPS = {"batch": 1 << 20, "seq": 1 << 24, "kv_len": 1 << 24, "input_len": 1 << 24,
             "output_len": 1 << 24, "users": 1 << 20, "timesteps": 1 << 20, "chips": 1 << 16}
_PARAMS = {
    "llm": ("model", "phase", "batch", "seq", "kv_len", "precision", "parallel"),
    "onnx": ("path", "batch", "dims", "precision"),
    "graph": ("name", "batch", "precision"),
    "kperf": ("model", "input_len", "output_len", "users", "precision", "chips"),
    "snn": ("model", "timesteps", "default_rate", "mapper"),
}
# What the kind key itself holds when it is given a plain value (``llm: llama-3.1-8b``).
_MAIN = {"llm": "model", "onnx": "path", "graph": "name", "kperf": "model", "snn": "model"}


def _int(value: Any, label: str, key: str, cap: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= cap:
        raise fail(label, key, f"expected a whole number 1 .. {cap:,}, got {_brief(value)}")
    return value


def parse_workloads(raw: Any, base_kind: str, here: Path, label: str) -> tuple[Workload, ...]:
    if not isinstance(raw, list) or not raw:
        raise fail(label, "workloads", f"expected a list of workloads (each with one of "
                                        f"{', '.join(WORKLOAD_KINDS)}), got {_brief(raw)}")
    out: list[Workload] = []
    for i, item in enumerate(raw):
        w = _workload(item, here, label, f"workloads[{i}]")
        key = f"workloads[{i}]"
        if (w.kind == "snn") != (base_kind == "snn_device"):
            want = "base: {snn_device: NAME}" if w.kind == "snn" else "an NPU arch as base"
            article = "an" if w.kind in ("llm", "onnx", "snn") else "a"
            have = "a spiking-core device" if base_kind != "arch" else "an NPU arch"
            raise fail(label, key, f"{article} {w.kind} workload needs {want}; the base is "
                                   f"{have}")
        if any(o.name == w.name for o in out):
            raise fail(label, f"{key}.name", f"{w.name!r} is used by another workload; give "
                                              f"each workload its own name")
        out.append(w)
    return tuple(out)


def _workload(item: Any, here: Path, label: str, key: str) -> Workload:
    if not isinstance(item, Mapping):
        raise fail(label, key, f"expected a mapping such as {{name: d32, llm: llama-3.1-8b, "
                                f"phase: decode, batch: 32}}, got {_brief(item)}")
    kinds = [k for k in WORKLOAD_KINDS if k in item]
    if len(kinds) != 1:
        what = "none" if not kinds else " and ".join(kinds)
        raise fail(label, key, f"give exactly one workload kind of {', '.join(WORKLOAD_KINDS)} "
                                f"(found {what})")
    kind = kinds[0]
    params = {k: v for k, v in item.items() if k not in ("name", kind)}
    head = item[kind]
    if isinstance(head, Mapping):
        for k, v in head.items():
            if k in params:
                raise fail(label, f"{key}.{kind}.{k}", "given twice; give it once")
            params[k] = v
    else:
        params[_MAIN[kind]] = head
    allowed = _PARAMS[kind]
    check_keys(params, allowed, label, key)
    params = _PARSERS[kind](params, here, label, key)
    name = item.get("name", _default_name(kind, params))
    if not isinstance(name, str) or not name.strip():
        raise fail(label, f"{key}.name", f"expected a short text, got {_brief(name)}")
    return Workload(name=name.strip(), kind=kind, params=params)


def _default_name(kind: str, params: dict) -> str:
    main = str(params.get(_MAIN[kind], kind))
    return f"{Path(main).stem if kind in ('onnx', 'snn') else main}-{params.get('phase', kind)}"


def _need(params: dict, name: str, label: str, key: str, what: str) -> Any:
    if name not in params or params[name] is None:
        raise fail(label, f"{key}.{name}", f"missing; give {what}")
    return params[name]


def _precision(params: dict, label: str, key: str, default: str | None) -> str | None:
    from ..passes.quantize import PRECISIONS
    value = params.get("precision", default)
    return None if value is None else choice(value, list(PRECISIONS), label,
                                              f"{key}.precision")


def _llm_model(value: Any, label: str, key: str) -> str:
    from ..frontend.llm import builtin_models
    return choice(value, builtin_models(), label, key)


def _llm(p: dict, here: Path, label: str, key: str) -> dict:
    model = _llm_model(_need(p, "model", label, key, "a built-in LLM (npusim models)"),
                       label, f"{key}.model")
    phase = choice(_need(p, "phase", label, key, "prefill or decode"), PHASES, label,
                    f"{key}.phase")
    own, other = ("seq", "kv_len") if phase == "prefill" else ("kv_len", "seq")
    if other in p:
        raise fail(label, f"{key}.{other}", f"a {phase} step takes {own}, not {other}")
    out = {"model": model, "phase": phase,
           "batch": _int(p.get("batch", 1), label, f"{key}.batch", _INT_CAPS["batch"]),
           own: _int(p.get(own, 128), label, f"{key}.{own}", _INT_CAPS[own]),
           "precision": _precision(p, label, key, "bf16")}
    if p.get("parallel") is not None:
        from ..workloads.stepcost import ParallelLayout
        try:
            out["parallel"] = str(ParallelLayout.parse(p["parallel"]))
        except NpusimError as exc:
            raise fail(label, f"{key}.parallel", str(exc)) from None
    return out


def _path(value: Any, here: Path, label: str, key: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(label, key, f"expected the path of {what}, got {_brief(value)}")
    path = resolve_path(value.strip(), here)
    if not is_file(path):
        raise fail(label, key, f"{value.strip()!r}: no such file ({path}); paths are "
                                f"relative to the spec's folder")
    return path


def _onnx(p: dict, here: Path, label: str, key: str) -> dict:
    out = {"path": _path(_need(p, "path", label, key, "an .onnx file"), here, label,
                         f"{key}.path", "an .onnx file")}
    if "batch" in p:
        out["batch"] = _int(p["batch"], label, f"{key}.batch", _INT_CAPS["batch"])
    dims = p.get("dims") or {}
    if not isinstance(dims, Mapping):
        raise fail(label, f"{key}.dims", f"expected a mapping {{name: size}}, got "
                                          f"{_brief(dims)}")
    if dims:
        out["dims"] = {str(k): _int(v, label, f"{key}.dims.{k}", _INT_CAPS["seq"])
                       for k, v in dims.items()}
    out["precision"] = _precision(p, label, key, None)
    return out


def _graph(p: dict, here: Path, label: str, key: str) -> dict:
    from ..graphs.mlperf import NETWORKS
    return {"name": choice(_need(p, "name", label, key, f"one of {', '.join(NETWORKS)}"),
                            list(NETWORKS), label, f"{key}.graph"),
            "batch": _int(p.get("batch", 1), label, f"{key}.batch", _INT_CAPS["batch"]),
            "precision": _precision(p, label, key, None)}


def _kperf(p: dict, here: Path, label: str, key: str) -> dict:
    out = {"model": _llm_model(_need(p, "model", label, key, "a built-in LLM"), label,
                               f"{key}.model")}
    for name in ("input_len", "output_len", "users"):
        out[name] = _int(_need(p, name, label, key, "a whole number"), label, f"{key}.{name}",
                         _INT_CAPS[name])
    out["precision"] = _precision(p, label, key, "bf16")
    if p.get("chips") is not None:
        out["chips"] = "auto" if p["chips"] == "auto" else _int(
            p["chips"], label, f"{key}.chips", _INT_CAPS["chips"])
    return out


def _snn(p: dict, here: Path, label: str, key: str) -> dict:
    from ..api import SNN_MAPPERS
    from ..graphs.vision import NETWORKS
    model = _need(p, "model", label, key, f"an ONNX CNN/MLP or .nir file, or a built-in "
                                          f"network ({', '.join(NETWORKS)})")
    if not (isinstance(model, str) and model in NETWORKS):
        model = _path(model, here, label, f"{key}.model", "an ONNX CNN/MLP or a .nir file")
    out = {"model": model,
           "timesteps": _int(_need(p, "timesteps", label, key, "timesteps per inference"),
                             label, f"{key}.timesteps", _INT_CAPS["timesteps"]),
           "mapper": choice(p.get("mapper", "greedy"), SNN_MAPPERS, label, f"{key}.mapper")}
    if p.get("default_rate") is not None:
        rate = p["default_rate"]
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise fail(label, f"{key}.default_rate", f"expected a spike rate in (0, 1], got "
                                                      f"{_brief(rate)}")
        out["default_rate"] = float(rate)
    return out


_PARSERS = {"llm": _llm, "onnx": _onnx, "graph": _graph, "kperf": _kperf, "snn": _snn}


__all__ = ["PHASES", "WORKLOAD_KINDS", "parse_workloads"]
