"""Mapping search: how a contraction is tiled, ordered and spread over a chip's cores.

A contraction is first seen as a batched GEMM (:class:`GemmView`): every dimension is batch
(in both inputs and the output), M (in the streamed input A and the output), N (in the other
input B and the output) or K (reduced). A is the activation; B is the weight when there is one.
Tile extents per category are turned back into per-dimension extents innermost-first, so tile
footprints follow the operand projections exactly (a convolution tile's input halo included).

Candidates (tile sizes x loop orders) are generated with numpy and scored in bulk by
:func:`npusim.kernels.tiling.score_many`; the fastest valid one wins, fewer DRAM bytes break
ties. Results are memoised per (op shape, placement, arch) within a process, and the candidates
with their tile footprints per (op shape, engine shape), which a sweep over SRAM, core count or
bandwidth does not change.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
import numpy as np

from ..ir import Contraction, Role
from ..kernels import engine as ek
from ..kernels import tiling as tk

ENGINE_CODES = {"os": ek.OS, "ws": ek.WS, "is": ek.IS, "slice": ek.SLICE}
# A throughput-modelled engine (tensor cores, CGRAs) pays this many cycles per K step on top
# of MACs / rate: an assumption standing for the issue-to-result latency of one MMA pipeline.
THROUGHPUT_LATENCY = 32
# Tiles of a throughput-modelled engine come in multiples of this (an MMA instruction's M/N/K
# granularity, 16 on NVIDIA tensor cores since Volta: assumption for other engines).
MMA_QUANTUM = 16
ACC_BYTES = 4.0  # partial sums are kept in fp32 / int32 (RNGD: i32/f32 accumulators, S2c)
ONCHIP_PER_DRAM = 4.0
"""Where an arch publishes neither ``noc.bandwidth`` nor ``cores.sram_bandwidth`` (ATOM,
ATOM-Max, REBEL-Quad), on-chip traffic moves at this multiple of the DRAM's effective
bandwidth, for contractions and glue ops alike. An assumption: on-chip SRAM is several times
faster than the DRAM behind it on every chip that publishes both (RNGD: 2 TB/s network
against 1.5 TB/s HBM, 65 TB/s of slice SRAM)."""


@dataclass(frozen=True)
class GemmView:
    """A contraction seen as ``B x (M x K) @ (K x N)``, with the dims of each category."""

    batch_dims: tuple[tuple[str, int], ...]
    m_dims: tuple[tuple[str, int], ...]
    n_dims: tuple[tuple[str, int], ...]
    k_dims: tuple[tuple[str, int], ...]
    a: int            # index of A among the op's operands
    b: int | None     # index of B, None for a single-input contraction

    @property
    def B(self) -> int:
        return math.prod(e for _, e in self.batch_dims)

    @property
    def M(self) -> int:
        return math.prod(e for _, e in self.m_dims)

    @property
    def N(self) -> int:
        return math.prod(e for _, e in self.n_dims)

    @property
    def K(self) -> int:
        return math.prod(e for _, e in self.k_dims)


def gemm_view(op: Contraction) -> GemmView:
    """Classify ``op``'s dims into batch, M, N and K (see module docstring)."""
    ops = op.operands
    weights = [i for i, o in enumerate(ops) if o.tensor.role != Role.ACTIVATION]
    if len(ops) == 1:
        a, b = 0, None
    else:
        b = weights[-1] if weights else 1
        a = 0 if b != 0 else 1
    in_a = ops[a].dims
    in_b = ops[b].dims if b is not None else frozenset()
    out = op.output.dims
    cats: dict[str, list] = {"b": [], "m": [], "n": [], "k": []}
    for d, e in op.dims:
        if d not in out:
            cats["k"].append((d, e))
        elif d in in_a and d in in_b:
            cats["b"].append((d, e))
        elif d in in_b:
            cats["n"].append((d, e))
        else:
            cats["m"].append((d, e))
    return GemmView(tuple(cats["b"]), tuple(cats["m"]), tuple(cats["n"]), tuple(cats["k"]), a, b)


@dataclass(frozen=True)
class EngineParams:
    """The contraction engine as the tiling kernel sees it, for one dtype."""

    code: int
    rows: int
    cols: int
    units: int
    depth: int
    rate: int          # MACs per cycle per core (throughput engines)
    latency: int


def engine_params(arch, exec_dtype) -> EngineParams:
    """Engine shape for ``exec_dtype``: the MAC rate decides the effective columns, so a
    narrower dtype that runs at twice the rate sees twice the columns (or packet elements)."""
    eng = arch.cores.engine
    rate = int(eng.macs_per_cycle[exec_dtype.name])
    dataflow = eng.dataflow
    if eng.kind in ("systolic", "slice") and eng.rows and dataflow in ENGINE_CODES:
        code = ENGINE_CODES[dataflow]
        rows = int(eng.rows)
        cols = max(1, rate // (eng.units * rows))
        depth = 0
        if code == ek.SLICE:
            bits = int(round(exec_dtype.element_bits))
            cols, depth = ek.slice_packet(bits if bits in (4, 8, 16) else 16)
        return EngineParams(code, rows, cols, int(eng.units), depth, rate, 0)
    # a throughput engine runs at its sustained rate (clock under the power limit, issue gaps)
    sustained = max(1, int(round(rate * eng.sustained(exec_dtype.name))))
    return EngineParams(tk.THROUGHPUT, 1, 1, int(eng.units), 0, sustained, THROUGHPUT_LATENCY)


def _tile_options(extent: int, quantum: int, limit: int = 9, finer: bool = True) -> np.ndarray:
    """Candidate tile sizes for one category: the whole extent, and the engine's spatial
    quantum times powers of two (with ``finer``, a few smaller powers of two too, for tiny
    SRAMs), thinned to ``limit`` log-spaced values."""
    opts = {extent}
    q = max(1, quantum)
    while q < extent:
        opts.add(q)
        q *= 2
    p = 1
    while finer and p < min(extent, q) and p < max(1, quantum):
        opts.add(p)
        p *= 4
    vals = np.array(sorted(opts), dtype=np.int64)
    if len(vals) > limit:
        idx = np.unique(np.round(np.linspace(0, len(vals) - 1, limit)).astype(np.int64))
        vals = vals[idx]
    return vals


def _split(dims: tuple[tuple[str, int], ...], t: np.ndarray) -> dict[str, np.ndarray]:
    """Per-dim tile extents from a category tile, filling the innermost dim first."""
    out = {}
    rem = t.copy()
    for d, e in reversed(dims):
        td = np.minimum(e, np.maximum(rem, 1))
        out[d] = td
        rem = rem // td
    return out


def _footprint(operand, tiles: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Elements of ``operand`` one tile touches (affine axes: halos included)."""
    el = np.ones(n, dtype=np.float64)
    for ax, size in zip(operand.axes, operand.tensor.shape):
        span = np.ones(n, dtype=np.float64)
        for d, c in ax.terms:
            span = span + abs(c) * (tiles[d] - 1)
        el *= np.minimum(span, size)
    return el


@dataclass(frozen=True)
class Mapping:
    """The chosen mapping of a contraction, with the kernel's figures for it."""

    tile: dict
    order: str
    spatial: str
    cores_used: int
    cycles: float
    compute_cycles: float
    dram_bytes: float
    shared_bytes: float
    noc_bytes: float
    sram_bytes: float
    steps: float
    tile_utilization: float
    prologue_cycles: float
    candidates: int
    ok: bool = True
    reason: str = ""

    def to_dict(self) -> dict:
        return {"tile": self.tile, "order": self.order, "spatial": self.spatial,
                "cores_used": self.cores_used, "candidates": self.candidates,
                "tile_utilization": round(self.tile_utilization, 4)}


def _axes_options(view: GemmView, eng: EngineParams) -> tuple[np.ndarray, ...]:
    """The tile sizes tried per category (tb, tm, tn, tk) and the loop orders: the axes of
    the candidate grid."""
    mma = eng.code == tk.THROUGHPUT      # MMA instructions: tiles in whole instructions
    quantum = MMA_QUANTUM if mma else max(eng.rows, eng.cols, 1)
    tb = _tile_options(view.B, 1, limit=3)
    tm = _tile_options(view.M, quantum, finer=not mma)
    tn = _tile_options(view.N, quantum * (1 if mma else eng.units), finer=not mma)
    tkk = _tile_options(view.K, quantum, finer=not mma)
    return tb, tm, tn, tkk, np.arange(len(tk.ORDERS))


def candidates(view: GemmView, eng: EngineParams) -> dict[str, np.ndarray]:
    """All (tb, tm, tn, tk, order) combinations, as flat int64 arrays."""
    grids = np.meshgrid(*_axes_options(view, eng), indexing="ij")
    return {k: g.ravel() for k, g in zip(("tb", "tm", "tn", "tk", "order"), grids)}


@dataclass(frozen=True)
class PowerLimit:
    """What the search needs to keep a mapping inside the chip's power limit.

    Dynamic energy of a candidate = ``fixed_j`` (its MACs and vector work) + per-byte energies
    times the bytes the tiling kernel counts at each level; it may draw at most ``budget_w``
    (TDP less static power), so it lasts at least ``energy / budget_w`` (the clock a
    power-capped chip settles at). ``dram_write_bytes`` caps the bytes priced as DRAM writes
    (the op's outputs). ``noc_as_sram`` prices on-chip traffic as SRAM reads on a chip with no
    network.
    """

    fixed_j: float
    dram_read_j: float     # per byte, activations included
    dram_write_j: float
    dram_write_bytes: float
    sram_j: float          # per byte (read and write averaged)
    shared_j: float
    noc_j: float
    noc_as_sram: bool
    budget_w: float

    def energy(self, dram, shared, noc, sram):
        """Dynamic joules of candidates given their bytes per level (numpy arrays)."""
        w = np.minimum(dram, self.dram_write_bytes)
        sram_all = sram + (noc if self.noc_as_sram else 0.0)
        noc_e = 0.0 if self.noc_as_sram else noc * self.noc_j
        return (self.fixed_j + (dram - w) * self.dram_read_j + w * self.dram_write_j
                + sram_all * self.sram_j + shared * self.shared_j + noc_e)


def search(op: Contraction, arch, exec_dtype, where: tuple[int, int, int],
           dram_bw: float, power: PowerLimit | None = None) -> Mapping:
    """Best mapping of ``op`` on ``arch`` with operands placed as ``where`` (A, B, C: one of
    ``tiling.IN_DRAM / IN_SHARED / ON_CHIP``) and an effective DRAM bandwidth ``dram_bw``.

    The best mapping is the one that finishes first; with ``power``, a mapping that would
    draw more than the chip's power limit is timed at the rate the limit allows.
    """
    signature = _signature(op)
    key = (signature, arch, exec_dtype, where, float(dram_bw), power)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    result = _run_search(op, arch, exec_dtype, where, float(dram_bw), power, signature)
    if len(_CACHE) > 20000:
        _CACHE.clear()
    _CACHE[key] = result
    return result


def _signature(op: Contraction):
    opds = tuple((o.tensor.shape, o.tensor.dtype, o.tensor.role, o.axes)
                 for o in (*op.operands, op.output))
    return (op.dims, opds, op.dtype)


# Memo of searches within a process (bounded): LLM graphs repeat the same few shapes.
_CACHE: dict = {}


@dataclass(frozen=True)
class _Candidates:
    """A contraction's candidate tilings on one engine shape, with their tile footprints:
    everything the search needs before the arch's sizes, bandwidths and placement are known
    (arrays shared between searches: read, never written). ``tiles`` holds each dim's tile
    extents in a shape that broadcasts to the candidate grid's ``shape`` (``None``: flat)."""

    view: GemmView
    cand: dict
    tiles: dict
    tb: np.ndarray
    tm: np.ndarray
    tn: np.ndarray
    tkk: np.ndarray
    a_tile: np.ndarray
    b_tile: np.ndarray
    c_tile: np.ndarray
    c_acc: np.ndarray
    a_total: float
    b_total: float
    shape: tuple | None = None

    def tile(self, d: str, i: int) -> int:
        """Dim ``d``'s tile extent in candidate ``i``."""
        t = self.tiles[d]
        if self.shape is None:
            return int(t[i])
        return int(np.broadcast_to(t, self.shape)[np.unravel_index(i, self.shape)])


def _candidate_signature(op: Contraction):
    """What :func:`_build_candidates` reads of ``op``: its dims, and per operand its shape,
    bytes per value, role and axes (not the dtype itself: fp8 and int8 operands tile alike)."""
    return (op.dims, tuple((o.tensor.shape, o.tensor.dtype.bytes, o.tensor.role, o.axes)
                           for o in (*op.operands, op.output)))


def _candidates_of(op: Contraction, signature, eng: EngineParams) -> _Candidates:
    """:class:`_Candidates` of ``op`` (whose :func:`_candidate_signature` is ``signature``)
    on ``eng``, memoised on both: they are the op's shape and the engine's, so a sweep
    varying SRAM, core count or bandwidth builds them once, and so do precisions whose
    operands have the same sizes on the same engine shape."""
    key = (signature, eng)
    hit = _CANDIDATES.get(key)
    if hit is None:
        if len(_CANDIDATES) > 4096:
            _CANDIDATES.clear()
        hit = _CANDIDATES[key] = _build_candidates(op, eng)
    return hit


# Memo of candidate tilings per (op shape, engine shape) within a process (bounded).
_CANDIDATES: dict = {}


def _build_candidates(op: Contraction, eng: EngineParams) -> _Candidates:
    """:func:`_build_candidates_flat`'s figures, each worked out once per point of the grid
    axes it depends on and then spread over the grid (a tile of A does not depend on tn or
    the loop order): the same operations on the same numbers, so the same values to the
    last bit, in a fraction of the time."""
    view = gemm_view(op)
    axes = _axes_options(view, eng)
    shape = tuple(len(a) for a in axes)
    n = math.prod(shape)

    def along(values, k):
        return values.reshape(tuple(-1 if j == k else 1 for j in range(len(shape))))

    grid = [along(a, k) for k, a in enumerate(axes)]
    tiles = {}
    tiles.update(_split(view.batch_dims, grid[0]))
    tiles.update(_split(view.m_dims, grid[1]))
    tiles.update(_split(view.n_dims, grid[2]))
    tiles.update(_split(view.k_dims, grid[3]))
    unit = np.ones((1,) * len(shape), dtype=np.int64)

    def flat(values):
        return np.broadcast_to(values, shape).ravel()

    def agg(dims):
        t = unit
        for d, _ in dims:
            t = t * tiles[d]
        return flat(t)

    def footprint(operand):
        el = np.ones((1,) * len(shape), dtype=np.float64)
        for ax, size in zip(operand.axes, operand.tensor.shape):
            span = np.ones((1,) * len(shape), dtype=np.float64)
            for d, c in ax.terms:
                span = span + abs(c) * (tiles[d] - 1)
            el = el * np.minimum(span, size)
        return el

    cand = {k: flat(g) for k, g in zip(("tb", "tm", "tn", "tk", "order"), grid)}
    tb, tm, tn, tkk = agg(view.batch_dims), agg(view.m_dims), agg(view.n_dims), agg(view.k_dims)
    a_op = op.operands[view.a]
    a_tile = footprint(a_op) * a_op.tensor.dtype.bytes
    if view.b is not None:
        b_op = op.operands[view.b]
        b_tile = flat(footprint(b_op) * b_op.tensor.dtype.bytes)
        b_total = b_op.tensor.nbytes
    else:
        b_tile = np.zeros(n)
        b_total = 0.0
    # further inputs (rare: 3-operand einsums) ride along with A
    for i, o in enumerate(op.operands):
        if i not in (view.a, view.b):
            a_tile = a_tile + footprint(o) * o.tensor.dtype.bytes
    c_el = footprint(op.output)
    c_tile = flat(c_el * op.output.tensor.dtype.bytes)
    c_acc = flat(c_el * max(ACC_BYTES, op.output.tensor.dtype.bytes))
    a_total = sum(o.tensor.nbytes for i, o in enumerate(op.operands) if i != view.b)
    return _Candidates(view, cand, tiles, tb, tm, tn, tkk, flat(a_tile), b_tile, c_tile, c_acc,
                       a_total, b_total, shape)


def _build_candidates_flat(op: Contraction, eng: EngineParams) -> _Candidates:
    """The candidates worked out on the flat grid, every figure once per candidate: the
    plain version :func:`_build_candidates` is held to (tests/test_part_point_caches.py)."""
    view = gemm_view(op)
    cand = candidates(view, eng)
    n = len(cand["tb"])
    tiles = {}
    tiles.update(_split(view.batch_dims, cand["tb"]))
    tiles.update(_split(view.m_dims, cand["tm"]))
    tiles.update(_split(view.n_dims, cand["tn"]))
    tiles.update(_split(view.k_dims, cand["tk"]))

    def agg(dims):
        t = np.ones(n, dtype=np.int64)
        for d, _ in dims:
            t = t * tiles[d]
        return t

    tb, tm, tn, tkk = agg(view.batch_dims), agg(view.m_dims), agg(view.n_dims), agg(view.k_dims)
    a_op = op.operands[view.a]
    a_tile = _footprint(a_op, tiles, n) * a_op.tensor.dtype.bytes
    if view.b is not None:
        b_op = op.operands[view.b]
        b_tile = _footprint(b_op, tiles, n) * b_op.tensor.dtype.bytes
        b_total = b_op.tensor.nbytes
    else:
        b_tile = np.zeros(n)
        b_total = 0.0
    # further inputs (rare: 3-operand einsums) ride along with A
    for i, o in enumerate(op.operands):
        if i not in (view.a, view.b):
            a_tile = a_tile + _footprint(o, tiles, n) * o.tensor.dtype.bytes
    c_el = _footprint(op.output, tiles, n)
    c_tile = c_el * op.output.tensor.dtype.bytes
    c_acc = c_el * max(ACC_BYTES, op.output.tensor.dtype.bytes)
    a_total = sum(o.tensor.nbytes for i, o in enumerate(op.operands) if i != view.b)
    return _Candidates(view, cand, tiles, tb, tm, tn, tkk, a_tile, b_tile, c_tile, c_acc,
                       a_total, b_total)


def _run_search(op: Contraction, arch, exec_dtype, where, dram_bw, power,
                signature=None) -> Mapping:
    eng = engine_params(arch, exec_dtype)
    k = _candidates_of(op, _candidate_signature(op), eng)
    view, cand = k.view, k.cand
    tb, tm, tn, tkk = k.tb, k.tm, k.tn, k.tkk
    a_tile, b_tile, c_tile, c_acc = k.a_tile, k.b_tile, k.c_tile, k.c_acc
    a_total, b_total = k.a_total, k.b_total
    n = len(cand["tb"])

    clock = arch.clock
    cores = arch.cores.count
    noc = arch.noc.bandwidth
    sram_bw = (arch.cores.sram_bandwidth or 0.0) * cores
    noc_bpc = (noc / clock) if noc else (sram_bw if sram_bw else
                                         dram_bw / clock * ONCHIP_PER_DRAM)
    shared_bpc = noc_bpc if arch.shared_sram > 0 else 0.0
    startup = float(arch.dma.startup_cycles or 0.0)
    dma = arch.dma
    # a busy core can use one DMA engine's worth of bandwidth (more when there are more
    # engines than cores); with fewer engines than cores, a lone core still gets a whole one
    core_bpc = (dma.engines * dma.bytes_per_cycle / min(cores, dma.engines)) \
        if dma.engines and dma.bytes_per_cycle else 0.0
    out = np.empty((n, tk.N_OUT), dtype=np.float64)
    tk.score_many(tb, tm, tn, tkk, cand["order"], a_tile, b_tile, c_tile, c_acc,
                  view.B, view.M, view.N, view.K, float(a_total), float(b_total),
                  float(op.output.tensor.nbytes), where[0], where[1], where[2],
                  eng.code, eng.rows, eng.cols, eng.units, eng.depth, 0, eng.rate, eng.latency,
                  cores, float(arch.cores.sram), dram_bw / clock, shared_bpc, noc_bpc, startup,
                  core_bpc, float(arch.cores.accumulator or 0.0),
                  float(arch.cores.sram_bandwidth or 0.0), out)
    valid = out[:, 8] == tk.OK
    if not valid.any():
        small = int(np.argmin(2 * (a_tile + b_tile) + 2 * c_acc))
        need = 2 * (a_tile[small] + b_tile[small]) + 2 * c_acc[small]
        return Mapping({}, "", "", 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, n, ok=False,
                       reason=f"no tile fits: the smallest double-buffered tile needs "
                              f"{need:.0f} B of the core's {arch.cores.sram:.0f} B SRAM")
    score = out[:, 0].copy()
    if power is not None and power.budget_w > 0:
        # the op's time as the engine will give it: its cycles plus the launch overhead, or
        # the time its energy needs at the power limit if that is longer (_power_capped);
        # ranking on cycles alone would let a tile that is a hair faster at full clock but
        # hungrier win, and end slower once capped
        energy = power.energy(out[:, 2], out[:, 3], out[:, 4], out[:, 5])
        launch = float(arch.launch_overhead or 0.0) * clock
        score = np.maximum(score + launch, energy / power.budget_w * clock)
    score = np.where(valid, score, np.inf)
    best = score.min()
    near = np.flatnonzero(score <= best * (1 + 1e-9))
    i = int(near[np.argmin(out[near, 2])])
    tile = {d: k.tile(d, i) for d, _ in op.dims}
    spatial = ("N over units" if tn[i] >= eng.units else "M over units")
    return Mapping(
        tile=tile, order=tk.ORDER_NAMES[int(cand["order"][i])], spatial=spatial,
        cores_used=int(min(cores, math.ceil(view.B / tb[i]) * math.ceil(view.M / tm[i])
                           * math.ceil(view.N / tn[i]))),
        cycles=float(out[i, 0]), compute_cycles=float(out[i, 1]), dram_bytes=float(out[i, 2]),
        shared_bytes=float(out[i, 3]), noc_bytes=float(out[i, 4]), sram_bytes=float(out[i, 5]),
        steps=float(out[i, 6]), tile_utilization=float(out[i, 7]),
        prologue_cycles=float(out[i, 9]), candidates=n)
