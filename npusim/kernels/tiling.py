"""Score tiled mappings of a GEMM-shaped contraction in bulk: bytes per level, cycles, fit.

A candidate mapping is a tile ``(tb, tm, tn, tk)`` of the iteration space (batch, M, N, K) and
an order of the three tile loops over M, N and K (batch always outermost). Output tiles are
dealt round-robin to the cores; each core runs its tiles' K steps through a double-buffered
pipeline (load the next step's A and B tiles while the engine computes this one, store a
finished C tile while the next is computed).

Operand traffic follows the loop order (Timeloop's reuse rule): a tile of operand X is loaded
again each time a loop X depends on advances, and also each time an *outer* loop advances
after X's innermost relevant loop, since the tiles of X have been cycled through by then. So
with ``j`` the innermost loop that X depends on and that runs more than once, X is loaded
``prod(trips[0..j])`` times. The output C is visited the same way; a visit after the first to
the same C tile reads back and rewrites its partial sums (in the accumulator dtype).

Where an operand lives is the caller's decision (``where_*``): in DRAM (first pass compulsory,
reloads extra), in the chip-shared SRAM (compulsory bytes from DRAM once, reloads hit the
shared SRAM), or already on chip (produced by the op before: every load crosses the on-chip
network, nothing crosses DRAM). Cores working on neighbouring output tiles in lockstep share
the loads of a common operand tile (multicast), so traffic is counted for the whole problem.

Cycles per K step come from the contraction-engine kernel (:mod:`npusim.kernels.engine`) for
systolic and slice engines, or from a throughput model (MACs over MACs per cycle plus a fixed
pipeline latency) for engines whose internals are not published (GPU tensor cores, CGRAs).

All inputs are plain numpy arrays (one entry per candidate) and scalars; ``score_many`` fills
preallocated outputs. ``score_ref`` is the slow, obvious twin of one candidate.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .engine import gemm_cycles, gemm_cycles_ref

THROUGHPUT = 4
"""Engine code for a throughput-only engine: ``ceil(MACs / rate) + latency`` cycles per step."""

IN_DRAM = 0
IN_SHARED = 1
ON_CHIP = 2

# Loop orders over (M, N, K) tile loops, outermost first: 0 = M, 1 = N, 2 = K.
ORDERS = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]],
                  dtype=np.int64)
ORDERS.setflags(write=False)
ORDER_NAMES = tuple("".join("mnk"[i] for i in o) for o in ORDERS)

# Operand dependence on (M, N, K): A[m, k], B[k, n], C[m, n].
_DEPS = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=np.int64)
_DEPS.setflags(write=False)

OK = 0
NO_FIT = 1
"""Reason code: double-buffered tiles exceed the core's SRAM."""

N_OUT = 10
"""Outputs per candidate, in this order (see :func:`score_many`)."""
OUT_NAMES = ("cycles", "compute_cycles", "dram_bytes", "shared_bytes", "noc_bytes",
             "sram_bytes", "steps", "util_tiles", "reason", "prologue_cycles")


@njit(cache=True)
def _loads(order, dep, tb, t0, t1, t2):
    """Tile loads of an operand with dependence ``dep`` under ``order``; trips per M/N/K."""
    trips = (t0, t1, t2)
    loads = tb  # batch is outermost, and every operand depends on it
    # innermost relevant loop with more than one trip
    last = -1
    for j in range(3):
        d = order[j]
        if dep[d] == 1 and trips[d] > 1:
            last = j
    for j in range(last + 1):
        loads *= trips[order[j]]
    return loads


@njit(cache=True)
def _distinct(dep, tb, t0, t1, t2):
    n = tb
    if dep[0] == 1:
        n *= t0
    if dep[1] == 1:
        n *= t1
    if dep[2] == 1:
        n *= t2
    return n


@njit(cache=True)
def _cdiv(a, b):
    return -(-a // b)


@njit(cache=True)
def _wave(order, Tb, Tm, Tn, Tk, cores, a_tile, b_tile):
    """Shape ``(pm, pn)`` of the block of output tiles the cores work on at once.

    Tiles are dealt along the inner of the M and N loops first. Operand tiles common to the
    block are fetched once (multicast, or a hit in the shared SRAM), so the block acts as one
    ``pm x pn`` super-tile for DRAM reuse. Of a block running the full inner extent and a
    square-ish block (a rasterised launch), the one moving fewer operand bytes is taken.
    """
    inner_n = True  # the loop met last, walking outer to inner, of M and N is the inner one
    for j in range(3):
        if order[j] == 0:
            inner_n = False
        elif order[j] == 1:
            inner_n = True
    t_in = Tn if inner_n else Tm
    t_out = Tm if inner_n else Tn
    best_in, best_out, best_cost = 1, 1, -1.0
    side = 1
    while (side + 1) * (side + 1) <= cores:
        side += 1
    for pi_try in (min(t_in, cores), min(t_in, side)):
        pi = max(pi_try, 1)
        po = min(t_out, max(1, cores // pi))
        if inner_n:
            cost = a_tile * Tm * Tk * _cdiv(Tn, pi) + b_tile * Tn * Tk * _cdiv(Tm, po)
        else:
            cost = a_tile * Tm * Tk * _cdiv(Tn, po) + b_tile * Tn * Tk * _cdiv(Tm, pi)
        if best_cost < 0.0 or cost < best_cost:
            best_in, best_out, best_cost = pi, po, cost
    if inner_n:
        return best_out, best_in
    return best_in, best_out


@njit(cache=True)
def score_one(tb, tm, tn, tk, order_id, a_tile, b_tile, c_tile, c_acc_tile,
              B, M, N, K, a_total, b_total, c_total, where_a, where_b, where_c,
              engine, rows, cols, units, depth, pipeline, rate, latency,
              cores, sram_core, dram_bpc, shared_bpc, noc_bpc, dma_startup, core_bpc, acc_core,
              sram_bpc, out):
    """Score one candidate; writes the :data:`OUT_NAMES` values into ``out`` (length 10).

    Tile footprints (``a_tile`` ... bytes, halos included) come from the caller; totals are
    the operands' tensor bytes. Bandwidths are bytes per core cycle for the whole chip;
    ``core_bpc`` is what one core's DMA can pull (0: no per-core limit), so a mapping that
    keeps few cores busy cannot draw the whole DRAM bandwidth. ``acc_core`` is the storage
    for partial sums outside the SRAM (a GPU SM's register file, RNGD's time-reducer cells);
    0 means the accumulators live in the SRAM beside the double-buffered operand tiles.
    ``sram_bpc`` is one core's SRAM read bandwidth in bytes per cycle (0: unlimited): a step
    cannot finish before its A and B tiles have been read out of the SRAM into the engine.
    """
    for i in range(N_OUT):
        out[i] = 0.0
    if acc_core > 0.0:
        fits = 2.0 * (a_tile + b_tile) <= sram_core and c_acc_tile <= acc_core
    else:
        fits = 2.0 * (a_tile + b_tile) + 2.0 * c_acc_tile <= sram_core
    if not fits:
        out[8] = NO_FIT
        return
    Tb = _cdiv(B, tb)
    Tm = _cdiv(M, tm)
    Tn = _cdiv(N, tn)
    Tk = _cdiv(K, tk)
    order = ORDERS[order_id]
    # fraction of the tile grid holding real data (edge tiles are partly empty)
    fill_c = (B * M * N) / (Tb * tb * Tm * tm * Tn * tn)

    pm, pn = _wave(order, Tb, Tm, Tn, Tk, cores, a_tile, b_tile)
    Tms = _cdiv(Tm, pm)
    Tns = _cdiv(Tn, pn)
    a_loads = _loads(order, _DEPS[0], Tb, Tms, Tns, Tk)
    b_loads = _loads(order, _DEPS[1], Tb, Tms, Tns, Tk)
    c_visits = _loads(order, _DEPS[2], Tb, Tm, Tn, Tk)
    c_tiles = _distinct(_DEPS[2], Tb, Tm, Tn, Tk)
    # fraction of the super-tile grid holding real data (edge blocks are partly empty)
    fill_a = (B * M * K) / (Tb * tb * Tms * pm * tm * Tk * tk)
    fill_b = (B * N * K) / (Tb * tb * Tns * pn * tn * Tk * tk)
    a_bytes = max(a_loads * a_tile * pm * fill_a, a_total)
    b_bytes = max(b_loads * b_tile * pn * fill_b, b_total)
    partial = (c_visits - c_tiles) * c_acc_tile * fill_c * 2.0  # read back + rewrite
    c_bytes = c_total + partial

    dram = 0.0
    shared = 0.0
    noc = 0.0
    for w, moved, total in ((where_a, a_bytes, a_total), (where_b, b_bytes, b_total),
                            (where_c, c_bytes, c_total)):
        if w == IN_DRAM:
            dram += moved
        elif w == IN_SHARED:
            dram += total
            shared += moved
        else:
            noc += moved

    # compute: output tiles dealt to cores; each runs Tk steps; a tile spreads over the
    # core's engine units along N (lanes / columns), or along M when N is too narrow
    out_tiles = Tb * Tm * Tn
    per_core = _cdiv(out_tiles, cores)
    steps = per_core * Tk
    if tn >= units:
        um, un = tb * tm, _cdiv(tn, units)
    else:
        um, un = _cdiv(tb * tm, units), tn
    tile_fill = 0
    if engine == THROUGHPUT:  # ``rate`` is the whole core's: each unit does rate / units
        step = _cdiv(um * un * tk * units, rate)
        tile_fill = latency   # once per output tile: MMAs of one tile pipeline back to back
    else:
        step = gemm_cycles(engine, rows, cols, um, un, tk, depth, pipeline, 1)
    if sram_bpc > 0.0:
        step = max(step, _cdiv(int(math.ceil(a_tile + b_tile)), int(math.ceil(sram_bpc))))
    compute = steps * step + per_core * tile_fill

    # pipeline: the first core's A and B tiles arrive before its first compute (the other
    # cores' first tiles stream behind them), the last C tile leaves after; in between each
    # step costs the slowest of compute, its share of traffic, and half a DMA round trip
    # (two buffers hide one command's startup)
    active = min(cores, out_tiles)
    if core_bpc > 0.0:
        dram_bpc = min(dram_bpc, active * core_bpc)
    noc_bpc = max(noc_bpc, dram_bpc)  # data already on chip never arrives slower than DRAM's
    first_bw = dram_bpc if (where_a == IN_DRAM or where_b == IN_DRAM) else noc_bpc
    prologue = dma_startup + (a_tile + b_tile) / first_bw
    epilogue = c_tile / (dram_bpc if where_c == IN_DRAM else noc_bpc)
    chip_steps = steps  # cores run their steps side by side
    traffic = max(dram / dram_bpc, noc / noc_bpc)
    if shared_bpc > 0.0:
        traffic = max(traffic, shared / shared_bpc)
    load_step = traffic / chip_steps
    steady = max(float(step), load_step, (dma_startup + load_step) / 2.0)
    cycles = prologue + max(chip_steps * steady + per_core * tile_fill, traffic) + epilogue

    sram = steps * (a_tile + b_tile) * active + (a_bytes + b_bytes + c_bytes)

    out[0] = cycles
    out[1] = compute
    out[2] = dram
    out[3] = shared
    out[4] = noc
    out[5] = sram
    out[6] = steps
    out[7] = (B * M * N * K) / (out_tiles * Tk * float(tb * tm * tn * tk))
    out[8] = OK
    out[9] = prologue


@njit(cache=True)
def score_many(tb, tm, tn, tk, order_id, a_tile, b_tile, c_tile, c_acc_tile,
               B, M, N, K, a_total, b_total, c_total, where_a, where_b, where_c,
               engine, rows, cols, units, depth, pipeline, rate, latency,
               cores, sram_core, dram_bpc, shared_bpc, noc_bpc, dma_startup, core_bpc, acc_core,
               sram_bpc, out):
    """:func:`score_one` over arrays of candidates (``tb`` ... ``c_acc_tile``, one entry
    each); ``out`` is a preallocated ``(n, 10)`` float64 array. Returns ``out``."""
    for i in range(tb.shape[0]):
        score_one(tb[i], tm[i], tn[i], tk[i], order_id[i], a_tile[i], b_tile[i], c_tile[i],
                  c_acc_tile[i], B, M, N, K, a_total, b_total, c_total, where_a, where_b,
                  where_c, engine, rows, cols, units, depth, pipeline, rate, latency, cores,
                  sram_core, dram_bpc, shared_bpc, noc_bpc, dma_startup, core_bpc, acc_core,
                  sram_bpc, out[i])
    return out


def score_ref(tb: int, tm: int, tn: int, tk: int, order_id: int, a_tile: float, b_tile: float,
              c_tile: float, c_acc_tile: float, B: int, M: int, N: int, K: int,
              a_total: float, b_total: float, c_total: float, where_a: int, where_b: int,
              where_c: int, engine: int, rows: int, cols: int, units: int, depth: int,
              pipeline: int, rate: int, latency: int, cores: int, sram_core: float,
              dram_bpc: float, shared_bpc: float, noc_bpc: float,
              dma_startup: float, core_bpc: float, acc_core: float,
              sram_bpc: float) -> list[float]:
    """The twin of :func:`score_one`: walk the tile loops one iteration at a time."""
    if acc_core > 0:
        fits = 2 * (a_tile + b_tile) <= sram_core and c_acc_tile <= acc_core
    else:
        fits = 2 * (a_tile + b_tile) + 2 * c_acc_tile <= sram_core
    if not fits:
        return [0.0] * 8 + [float(NO_FIT), 0.0]
    Tm, Tn, Tk = math.ceil(M / tm), math.ceil(N / tn), math.ceil(K / tk)
    Tb = math.ceil(B / tb)
    order = [int(x) for x in ORDERS[order_id]]
    pm, pn = _wave_ref(order, Tm, Tn, Tk, cores, a_tile, b_tile)
    # operand reuse is walked over the block of tiles the cores run at once (super-tiles)
    trips = [math.ceil(Tm / pm), math.ceil(Tn / pn), Tk]
    deps = {"a": (1, 0, 1), "b": (0, 1, 1), "c": (1, 1, 0)}
    loads = {"a": 0, "b": 0, "c": 0}
    resident = {"a": None, "b": None, "c": None}
    for b in range(Tb):
        for i0 in range(trips[order[0]]):
            for i1 in range(trips[order[1]]):
                for i2 in range(trips[order[2]]):
                    idx = [0, 0, 0]
                    idx[order[0]], idx[order[1]], idx[order[2]] = i0, i1, i2
                    for x, dep in deps.items():
                        key = (b,) + tuple(idx[d] for d in range(3) if dep[d])
                        if resident[x] != key:
                            loads[x] += 1
                            resident[x] = key
    # the output tiles are each core's own: walk them at tile granularity
    c_loads = 0
    resident_c = None
    for b in range(Tb):
        for i0 in range((Tm, Tn, Tk)[order[0]]):
            for i1 in range((Tm, Tn, Tk)[order[1]]):
                for i2 in range((Tm, Tn, Tk)[order[2]]):
                    idx = [0, 0, 0]
                    idx[order[0]], idx[order[1]], idx[order[2]] = i0, i1, i2
                    if resident_c != (b, idx[0], idx[1]):
                        c_loads += 1
                        resident_c = (b, idx[0], idx[1])
    c_tiles = Tb * Tm * Tn
    grid = Tb * tb
    fill_a = B * M * K / (grid * trips[0] * pm * tm * Tk * tk)
    fill_b = B * N * K / (grid * trips[1] * pn * tn * Tk * tk)
    fill_c = B * M * N / (grid * Tm * tm * Tn * tn)
    moved = {"a": max(loads["a"] * a_tile * pm * fill_a, a_total),
             "b": max(loads["b"] * b_tile * pn * fill_b, b_total),
             "c": c_total + (c_loads - c_tiles) * c_acc_tile * fill_c * 2}
    totals = {"a": a_total, "b": b_total, "c": c_total}
    where = {"a": where_a, "b": where_b, "c": where_c}
    dram = shared = noc = 0.0
    for x in "abc":
        if where[x] == IN_DRAM:
            dram += moved[x]
        elif where[x] == IN_SHARED:
            dram += totals[x]
            shared += moved[x]
        else:
            noc += moved[x]
    out_tiles = c_tiles
    per_core = math.ceil(out_tiles / cores)
    steps = per_core * Tk
    um, un = (tb * tm, math.ceil(tn / units)) if tn >= units else (math.ceil(tb * tm / units), tn)
    tile_fill = 0
    if engine == THROUGHPUT:
        step = math.ceil(um * un * tk * units / rate)
        tile_fill = latency
    else:
        step = gemm_cycles_ref(engine, rows, cols, um, un, tk, depth, pipeline, 1)
    if sram_bpc > 0:
        step = max(step, math.ceil(math.ceil(a_tile + b_tile) / math.ceil(sram_bpc)))
    active = min(cores, out_tiles)
    if core_bpc > 0:
        dram_bpc = min(dram_bpc, active * core_bpc)
    noc_bpc = max(noc_bpc, dram_bpc)
    first_bw = dram_bpc if IN_DRAM in (where_a, where_b) else noc_bpc
    prologue = dma_startup + (a_tile + b_tile) / first_bw
    epilogue = c_tile / (dram_bpc if where_c == IN_DRAM else noc_bpc)
    traffic = max(dram / dram_bpc, noc / noc_bpc, shared / shared_bpc if shared_bpc > 0 else 0)
    load_step = traffic / steps
    steady = max(step, load_step, (dma_startup + load_step) / 2)
    cycles = prologue + max(steps * steady + per_core * tile_fill, traffic) + epilogue
    sram = steps * (a_tile + b_tile) * active + moved["a"] + moved["b"] + moved["c"]
    util = B * M * N * K / (out_tiles * Tk * tb * tm * tn * tk)
    return [cycles, float(steps * step + per_core * tile_fill), dram, shared, noc, sram,
            float(steps), util, float(OK), prologue]


def _wave_ref(order, Tm, Tn, Tk, cores, a_tile, b_tile):
    """Twin of ``_wave``: try both block shapes, keep the one moving fewer operand bytes."""
    inner_n = [d for d in order if d in (0, 1)][-1] == 1
    t_in, t_out = (Tn, Tm) if inner_n else (Tm, Tn)
    side = math.isqrt(cores)
    best = None
    for pi in (max(min(t_in, cores), 1), max(min(t_in, side), 1)):
        po = min(t_out, max(1, cores // pi))
        pm, pn = (po, pi) if inner_n else (pi, po)
        cost = a_tile * Tm * Tk * math.ceil(Tn / pn) + b_tile * Tn * Tk * math.ceil(Tm / pm)
        if best is None or cost < best[0]:
            best = (cost, pm, pn)
    return best[1], best[2]
