"""Frontends: ONNX models (and LLM configs built as ONNX) into the IR.

>>> ("com.microsoft", "GroupQueryAttention") in supported_ops()
True
"""
from __future__ import annotations

from . import lowerings  # noqa: F401  (registers every lowering family)
from .onnx_loader import load_onnx
from .registry import register, supported_ops

__all__ = ["load_onnx", "supported_ops", "register"]
