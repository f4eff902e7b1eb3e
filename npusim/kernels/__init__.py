"""Numba kernels: plain integers and numpy arrays in, plain integers and arrays out.

This package imports numpy and numba only, nothing else of npusim. Every kernel has a slow,
obvious pure-Python twin named ``*_ref`` that the tests hold it to.

Modules
-------
engine
    Cycles of a spatial contraction engine for one GEMM tile (systolic OS / WS / IS, counted as
    SCALE-Sim v3 counts them, and FuriosaAI RNGD's slice), with fill and drain.
"""
from npusim.kernels.engine import (
    IS, OS, SLICE, WS, conv_as_gemm, gemm_cycles, gemm_cycles_many, gemm_cycles_ref,
    ideal_cycles, slice_cycles, slice_cycles_ref, slice_packet, slice_tile, systolic_cycles,
    systolic_cycles_ref, systolic_tile,
)

__all__ = [
    "IS", "OS", "SLICE", "WS", "conv_as_gemm", "gemm_cycles", "gemm_cycles_many",
    "gemm_cycles_ref", "ideal_cycles", "slice_cycles", "slice_cycles_ref", "slice_packet",
    "slice_tile", "systolic_cycles", "systolic_cycles_ref", "systolic_tile",
]
