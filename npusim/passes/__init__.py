"""Passes over the IR graph: layout (transposes folded into contractions) and precision."""
from .layout import fold_transposes
from .quantize import quantize

__all__ = ["fold_transposes", "quantize"]
