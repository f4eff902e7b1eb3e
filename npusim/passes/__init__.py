"""Passes over the IR graph: layout (transposes folded into contractions) and precision."""
from .layout import fold_transposes
from .quantize import PRECISIONS, Precision, apply_precision, quantize, resolve_precision

__all__ = ["PRECISIONS", "Precision", "apply_precision", "fold_transposes", "quantize",
           "resolve_precision"]
