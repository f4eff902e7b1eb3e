"""Numba kernels: plain integers and numpy arrays in, plain integers and arrays out.

This package imports numpy and numba only, nothing else of npusim. Every kernel has a slow,
obvious pure-Python twin named ``*_ref`` that the tests hold it to.

Modules
-------
engine
    Cycles of a spatial contraction engine for one GEMM tile (systolic OS / WS / IS, counted as
    SCALE-Sim v3 counts them, and FuriosaAI RNGD's slice), with fill and drain.
dram
    Bank-level DRAM timing of a request stream (rows, bank groups, tRCD/tRP/tRAS/tRC,
    tCCD, tRRD, tFAW, turnaround, refresh), with its twin ``simulate_ref``.
pim
    All-bank processing-in-memory execution of one channel, command by command (column
    bursts, row switches, refresh, broadcast, read-out, mode switches), twin ``simulate_ref``.
snn
    Spiking cores per timestep: XY spike routing on a tile mesh (``route_xy``) and the step's
    energy per term, busy time per core, barrier and tick (``step``), with twins ``*_ref``.
"""
from npusim.kernels.engine import (
    IS, OS, SLICE, WS, conv_as_gemm, gemm_cycles, gemm_cycles_many, gemm_cycles_ref,
    ideal_cycles, slice_cycles, slice_cycles_ref, slice_packet, slice_tile, systolic_cycles,
    systolic_cycles_ref, systolic_tile,
)

from npusim.kernels.dram import address_map as dram_address_map
from npusim.kernels.dram import simulate as dram_simulate
from npusim.kernels.dram import simulate_ref as dram_simulate_ref

__all__ = [
    "dram_address_map", "dram_simulate", "dram_simulate_ref",
    "IS", "OS", "SLICE", "WS", "conv_as_gemm", "gemm_cycles", "gemm_cycles_many",
    "gemm_cycles_ref", "ideal_cycles", "slice_cycles", "slice_cycles_ref", "slice_packet",
    "slice_tile", "systolic_cycles", "systolic_cycles_ref", "systolic_tile",
]
