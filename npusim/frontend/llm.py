"""Models by name: an ``.onnx`` path, or a built-in LLM config lowered through the same ONNX path."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..errors import ModelError
from ..ir import Graph

PHASES = ("prefill", "decode")


def builtin_models() -> list[str]:
    """Names of the built-in LLM configs (``npusim/graphs/configs/*.json``)."""
    from npusim.graphs.builder import list_models
    return list_models()


def load_model(model: str | Path, *, dims: Mapping[str, int] | None = None,
               phase: str = "prefill", batch: int = 1, seq: int | None = None,
               kv_len: int | None = None, dtype: str = "bf16",
               on_unsupported: str = "error") -> Graph:
    """Load ``model`` into an IR graph.

    ``model`` is a path to an ONNX file (symbolic dims bound by ``dims``) or the name of a
    built-in LLM (``npusim models`` lists them), built for ``phase`` at ``batch`` with ``seq``
    prompt tokens (prefill) or ``kv_len`` cached tokens (decode), then lowered by the same ONNX
    frontend as a file would be.
    """
    from .onnx_loader import load_onnx

    text = str(model)
    if text.lower().endswith(".onnx") or Path(text).exists():
        return load_onnx(text, dims, on_unsupported=on_unsupported)
    names = builtin_models()
    if text not in names:
        raise ModelError(
            f"model {text!r} is neither an ONNX file nor a built-in LLM; built-in: "
            f"{', '.join(names)}. Pass a path ending in .onnx, or one of those names.")
    if phase not in PHASES:
        raise ModelError(f"--phase must be one of {', '.join(PHASES)}, got {phase!r}")
    if batch < 1:
        raise ModelError(f"--batch must be >= 1, got {batch}")
    if phase == "prefill":
        seq = 128 if seq is None else seq
        if seq < 1:
            raise ModelError(f"--seq must be >= 1, got {seq}")
        label = f"{text} prefill batch={batch} seq={seq} {dtype}"
    else:
        kv_len = 128 if kv_len is None else kv_len
        if kv_len < 1:
            raise ModelError(f"--kv-len must be >= 1, got {kv_len}")
        label = f"{text} decode batch={batch} kv_len={kv_len} {dtype}"
    from npusim.graphs.builder import build_llm
    try:
        proto = build_llm(text, phase, batch, seq=seq, kv_len=kv_len, dtype=dtype)
    except ValueError as e:
        raise ModelError(f"cannot build {text}: {e}") from None
    graph = load_onnx(proto, dims, on_unsupported=on_unsupported, name=label)
    graph.meta.update({"llm": text, "phase": phase, "batch": batch, "seq": seq,
                       "kv_len": kv_len, "dtype": dtype})
    return graph
