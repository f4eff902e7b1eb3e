"""Serving runs on the compiled loop (:mod:`npusim.kernels.serving_loop`).

:func:`eligible` says whether a run can take it: a closed loop on one of npusim's own cost
models (:class:`~npusim.workloads.stepcost.StepCostModel` or the power band's
:class:`~npusim.workloads.powerband.BandCostModel`, not a subclass, whose steps the kernel
would not reproduce). :func:`run` hands the simulation's state to the kernel, simulates each
part-graph point the kernel asks for through the cost model (``StepCostModel._run``, whose cache
the Python path shares), grows the output arrays when they fill, and writes the final state back
into the :class:`~npusim.workloads.serving._Simulation`, which then builds its result as
always. The figures are the Python path's to the bit (``tests/test_serving_loop.py``).

The tables of part answers live on the cost model (one set per tensor-parallel degree), so the
scenarios after the first find most points known.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from ..kernels import serving_loop as K
from .stepcost import BATCH, CHUNK, KV, TOKENS

_GRIDS = tuple(np.asarray(g, dtype=np.int64) for g in (TOKENS, BATCH, KV, CHUNK))
# initial step-log rows (doubled whenever full)
_LOG_ROWS = 4096
# run stretches of pure decode steps without planning each (the figures are the same either
# way; the tests turn it off to prove it)
STRETCHES = True


class _Tables:
    """Known flags, seconds and energy parts of every part the kernel reads, for one cost
    model at one tensor-parallel degree; filled as the kernel asks."""

    def __init__(self, layers: list[int]) -> None:
        self.layers = layers
        S, nt, nb, nk, nc = len(layers), len(TOKENS), len(BATCH), len(KV), len(CHUNK)
        self.arrays = (
            np.zeros((S, nt), np.uint8), np.zeros((S, nt)), np.zeros((S, nt, 4)),
            np.zeros((1, nt), np.uint8), np.zeros((1, nt)), np.zeros((1, nt, 4)),
            np.zeros((S, nb, nk), np.uint8), np.zeros((S, nb, nk)), np.zeros((S, nb, nk, 4)),
            np.zeros((S, nc, nk), np.uint8), np.zeros((S, nc, nk)), np.zeros((S, nc, nk, 4)))

    def fill(self, cost, miss: np.ndarray, tp: int) -> None:
        """Simulate the point ``miss`` names (as the Python cost model's interpolation would)
        and store it."""
        kind, s, i, j = (int(v) for v in miss)
        if kind == K.DENSE:
            (seconds, energy), at = cost._dense_point(TOKENS[i], self.layers[s], tp), (s, i)
        elif kind == K.HEAD:
            (seconds, energy), at = cost._head_point(TOKENS[i], tp), (0, i)
        elif kind == K.DECODE_ATTN:
            (seconds, energy), at = (cost._decode_point(BATCH[i], KV[j], self.layers[s], tp),
                                     (s, i, j))
        else:
            (seconds, energy), at = (cost._prefill_point(CHUNK[i], KV[j], self.layers[s], tp),
                                     (s, i, j))
        parts = tuple(cost._parts(energy)) + (0.0,) * 3
        known, T, E = self.arrays[3 * kind: 3 * kind + 3]
        T[at] = seconds
        E[at] = parts[:4]
        known[at] = 1


def eligible(cost, sim) -> bool:
    """Whether the compiled loop reproduces this run: a closed loop on a StepCostModel or
    BandCostModel itself (a subclass may cost its steps otherwise)."""
    from .powerband import BandCostModel
    from .stepcost import StepCostModel
    return type(cost) in (StepCostModel, BandCostModel) and not sim.open_loop


def _tables(cost, tp: int) -> _Tables:
    key = ("loop-tables", tp)
    tables = cost._cache.get(key)
    if tables is None:
        tables = cost._cache[key] = _Tables([layer for layer, _ in cost.layer_groups])
    return tables


def _groups(cost, tables: _Tables) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slot, count) of each layer group, stage by stage, and where each stage starts."""
    slot = {layer: k for k, layer in enumerate(tables.layers)}
    gs, gc, sp = [], [], [0]
    for groups in cost._stages(cost.parallel.pp):
        for layer, count in groups:
            gs.append(slot[layer])
            gc.append(count)
        sp.append(len(gs))
    return (np.asarray(gs, dtype=np.int64), np.asarray(gc, dtype=np.int64),
            np.asarray(sp, dtype=np.int64))


def _params(cost, sim) -> tuple[np.ndarray, np.ndarray]:
    from ..ir import dtype
    from .stepcost import _SUM_COMPENSATED
    lay, link = cost.parallel, cost.arch.link
    ip = np.zeros(K.N_IP, dtype=np.int64)
    ip[K.I_INP], ip[K.I_OUT], ip[K.I_BLOCK], ip[K.I_FLOOR] = sim.inp, sim.out, sim.block, sim.floor
    ip[K.I_BUDGET], ip[K.I_MAXSEQS], ip[K.I_TOTAL] = sim.budget, sim.max_seqs, sim.total_blocks
    ip[K.I_WARMUP], ip[K.I_MEND] = sim.warmup, sim.measured_end
    ip[K.I_MEASURED] = sim.measured_end - sim.warmup
    ip[K.I_PP], ip[K.I_TP], ip[K.I_CHIPS] = lay.pp, lay.tp, lay.chips
    ip[K.I_OBJECTS] = bool(cost._ENERGY_OBJECTS)
    ip[K.I_COMPENSATED] = bool(_SUM_COMPENSATED)
    ip[K.I_LINK] = link is not None
    fp = np.zeros(K.N_FP)
    fp[K.F_EXTRA] = cost.arch.step_overhead
    fp[K.F_STATIC_LAY] = cost._static_w(lay)
    fp[K.F_STATIC_RUN] = sim.static_w
    if link is not None:
        fp[K.F_LAT] = fp[K.F_BACK] = link.latency or 0.0
        fp[K.F_BW] = link.bandwidth
        fp[K.F_HIDDEN] = cost.spec.hidden
        fp[K.F_ACT_BYTES] = dtype(cost._precision.activations).bytes
    return ip, fp


class _State:
    """The kernel's state and output arrays, from and back to a ``_Simulation``."""

    def __init__(self, sim) -> None:
        n = len(sim.arrival)
        cap = max(64, 2 * (sim.measured_end + n + sim.max_seqs))
        self.st_i = np.zeros(K.N_ST, dtype=np.int64)
        self.st_f = np.zeros(4)
        self.req_f = np.empty((cap, 3))
        self.req_i = np.zeros((cap, 4), dtype=np.int64)
        for col, values in ((K.R_ARRIVAL, sim.arrival), (K.R_FIRST, sim.first),
                            (K.R_FINISH, sim.finish)):
            self.req_f[:n, col] = values
        for col, values in ((K.R_USER, sim.user), (K.R_PREEMPTS, sim.preempts),
                            (K.R_SAVED_GEN, sim.saved_gen), (K.R_SAVED_PDONE, sim.saved_pdone)):
            self.req_i[:n, col] = values
        self.wait = np.zeros(cap, dtype=np.int64)
        self.wait[:len(sim.waiting)] = list(sim.waiting)
        run = max(sim.max_seqs, len(sim.rid))
        self.running = []
        for values in (sim.rid, sim.comp, sim.gen, sim.blk, sim.pdone):
            a = np.zeros(run, dtype=np.int64)
            a[:len(values)] = values
            self.running.append(a)
        self.compl = np.empty(max(64, 2 * (sim.measured_end + sim.max_seqs)))
        self.compl[:len(sim.completions)] = sim.completions
        self.log_f = np.empty((_LOG_ROWS, 6))
        self.log_i = np.empty((_LOG_ROWS, 5), dtype=np.int64)
        st = self.st_i
        st[K.S_R], st[K.S_NREQ], st[K.S_WLEN] = len(sim.rid), n, len(sim.waiting)
        st[K.S_FREE], st[K.S_NCOMPL], st[K.S_MDONE] = sim.free, len(sim.completions), \
            sim.measured_done
        self.st_f[0] = sim.t
        self.gapt = np.array([sim.host_gap(k) for k in range(run + 1)], dtype=float)

    def grow(self, max_seqs: int) -> None:
        """Double whatever the next step could overflow."""
        st = self.st_i
        if st[K.S_NLOG] >= len(self.log_f):
            self.log_f = _doubled(self.log_f)
            self.log_i = _doubled(self.log_i)
        if st[K.S_NCOMPL] + max_seqs > len(self.compl):
            self.compl = _doubled(self.compl)
        if st[K.S_NREQ] + max_seqs > len(self.req_f):
            self.req_f = _doubled(self.req_f)
            self.req_i = _doubled(self.req_i)
            head, n, cap = int(st[K.S_WHEAD]), int(st[K.S_WLEN]), len(self.wait)
            queue = self.wait[(head + np.arange(n)) % cap]
            self.wait = np.zeros(len(self.req_f), dtype=np.int64)
            self.wait[:n] = queue
            st[K.S_WHEAD] = 0

    def write_back(self, sim) -> None:
        st = self.st_i
        n, R, steps = int(st[K.S_NREQ]), int(st[K.S_R]), int(st[K.S_NLOG])
        sim.t = float(self.st_f[0])
        sim.arrival = self.req_f[:n, K.R_ARRIVAL].tolist()
        sim.first = self.req_f[:n, K.R_FIRST].tolist()
        sim.finish = self.req_f[:n, K.R_FINISH].tolist()
        sim.user = self.req_i[:n, K.R_USER].tolist()
        sim.preempts = self.req_i[:n, K.R_PREEMPTS].tolist()
        sim.saved_gen = self.req_i[:n, K.R_SAVED_GEN].tolist()
        sim.saved_pdone = self.req_i[:n, K.R_SAVED_PDONE].tolist()
        head, wlen, cap = int(st[K.S_WHEAD]), int(st[K.S_WLEN]), len(self.wait)
        sim.waiting = deque(self.wait[(head + np.arange(wlen)) % cap].tolist())
        sim.rid, sim.comp, sim.gen, sim.blk, sim.pdone = (a[:R].copy() for a in self.running)
        sim.free = int(st[K.S_FREE])
        sim.completions = self.compl[:int(st[K.S_NCOMPL])].tolist()
        sim.measured_done = int(st[K.S_MDONE])
        log_f, log_i = self.log_f[:steps], self.log_i[:steps]
        for key, col in (("start", K.L_START), ("end", K.L_END), ("energy", K.L_ENERGY)):
            sim.log[key] = log_f[:, col].copy()
        for key, col in (("prefill", K.L_PREFILL), ("output", K.L_OUTPUT),
                         ("batch", K.L_BATCH), ("running", K.L_RUNNING),
                         ("blocks", K.L_BLOCKS)):
            sim.log[key] = log_i[:, col].copy()
        band = getattr(sim.cost, "_band_log", None)
        if band is not None and steps:      # the run's steps in one piece (band_parts)
            band.append(log_f[:, K.L_ONCHIP:K.L_FLOOR + 1].copy())


def _doubled(a: np.ndarray) -> np.ndarray:
    out = np.empty((2 * len(a),) + a.shape[1:], dtype=a.dtype)
    out[:len(a)] = a
    return out


def run(sim) -> None:
    """Run ``sim`` (a fresh closed-loop ``_Simulation`` that :func:`eligible` accepts) to its
    end on the compiled loop, leaving it as its own ``run`` would."""
    from .serving import _bad_step
    cost = sim.cost
    tp = cost.parallel.tp
    tables = _tables(cost, tp)
    gs, gc, sp = _groups(cost, tables)
    ip, fp = _params(cost, sim)
    state = _State(sim)
    miss = np.zeros(4, dtype=np.int64)
    while True:
        status = K.run(ip, fp, state.st_i, state.st_f, state.req_f, state.req_i, state.wait,
                       *state.running, state.compl, state.log_f, state.log_i, state.gapt,
                       *_GRIDS, gs, gc, sp, *tables.arrays, miss, bool(STRETCHES))
        if status == K.DONE:
            break
        if status == K.MISS:
            tables.fill(cost, miss, tp)
        elif status == K.GROW:
            state.grow(sim.max_seqs)
        else:
            raise _bad_step(float(state.st_f[1]), int(state.st_f[2]), state.st_f[3])
    state.write_back(sim)


def load() -> None:
    """Compile (or load from Numba's cache) the loop now, on arrays of the real types: a caller
    about to fork workers does it once, before."""
    st_i, st_f = np.zeros(K.N_ST, dtype=np.int64), np.zeros(4)
    ip, fp = np.zeros(K.N_IP, dtype=np.int64), np.zeros(K.N_FP)
    ip[K.I_PP] = 1      # measured 0 of 0 requests: returns at once
    i1, f1 = np.zeros(1, dtype=np.int64), np.zeros(1)
    tables = _Tables([0])
    K.run(ip, fp, st_i, st_f, np.zeros((1, 3)), np.zeros((1, 4), dtype=np.int64), i1,
          i1, i1, i1, i1, i1, f1, np.zeros((1, 6)), np.zeros((1, 5), dtype=np.int64), f1,
          *_GRIDS, i1, i1, np.zeros(2, dtype=np.int64), *tables.arrays,
          np.zeros(4, dtype=np.int64), True)
