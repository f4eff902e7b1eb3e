"""Costing a graph on an arch: the roofline bound now; mapping search, kernels and scheduling next."""
from .result import OpRecord, RunResult
from .roofline import roofline

__all__ = ["OpRecord", "RunResult", "roofline"]
