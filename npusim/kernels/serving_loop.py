"""A whole closed-loop serving run as one compiled loop: scheduler and step costs together.

:mod:`npusim.workloads.serving` simulates serving one engine step at a time in Python: the
scheduler (:func:`npusim.kernels.serving.plan` / ``advance``, preemption, admission, retiring)
and then the cost model's step (:meth:`npusim.workloads.stepcost.StepCostModel.step`: the dense
part at the step's tokens, each prefill chunk's attention, the decodes' attention at their mean
KV length, the head, and for a pipeline the stage times and the period). A K-Perf matrix runs
hundreds of thousands of such steps, each of them about a hundred small Python calls.
:func:`run` does all of it in one Numba loop over the same state, with every step's cost
interpolated from the cost model's grids of part answers, passed in as tables.

The tables are filled lazily, as the Python cost model fills its caches: each holds one part's
answer (seconds, and the energy's four parts) at one grid point, with a flag saying whether it is
known yet. When a step needs a point that is not known, :func:`run` stops *before changing any
state* and returns :data:`MISS` with the point in ``miss``; the caller simulates that part graph
(``StepCostModel._run``), stores the answer and calls again, and the step is planned afresh from
the same state. It also stops with :data:`GROW` when an output array is full (nothing changed
either) and with :data:`BAD` on a step of negative or infinite time.

Arithmetic is the Python cost model's, operation for operation, so every figure is the same to
the bit: energies carry the four parts of :class:`npusim.workloads.powerband.StepEnergy`
(total, on-chip, DRAM bits, floor), a plain number added to one lands on the total and the floor
(``_plain``), and a pipeline's division of an energy by the micro-batch count is a
multiplication by its reciprocal when the model's energies are such objects (``I_OBJECTS``),
a division when they are floats. The pure-Python twin is the serving simulation itself
(``simulate_serving(..., compiled=False)``, and with ``fast=False`` the scheduler step by
step); ``tests/test_serving_loop.py`` holds :func:`run` to it over the scheduler's cases.

The state arrays (their layout is given by the ``I_*``, ``F_*``, ``S_*`` and ``R_*``
constants) are updated in place, so a call that returns :data:`MISS` or :data:`GROW` can be
resumed.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .serving import DECODE as _DECODE
from .serving import DONE as _DONE
from .serving import FIRST as _FIRST
from .serving import PREFILL as _PREFILL
from .serving import advance_into, plan_into

DONE = 0
"""Status of :func:`run`: the measured requests have all finished."""
MISS = 1
"""Status: a table point is not known yet; ``miss`` holds ``(kind, slot, i, j)``."""
GROW = 2
"""Status: an output array (requests, completions or the step log) is full."""
BAD = 3
"""Status: a step took a negative, NaN or infinite time (``st_f[1]`` holds it)."""

# kinds of table point (miss[0])
DENSE = 0
"""A layer's dense part at ``TOKENS[i]`` tokens (slot = layer type)."""
HEAD = 1
"""The head at ``TOKENS[i]`` rows (slot 0)."""
DECODE_ATTN = 2
"""A layer's decode attention at ``BATCH[i]`` sequences and ``KV[j]`` cached tokens."""
PREFILL_ATTN = 3
"""A layer's prefill attention of ``CHUNK[i]`` tokens over ``KV[j]`` cached ones."""

# integer parameters (ip)
I_INP, I_OUT, I_BLOCK, I_FLOOR, I_BUDGET, I_MAXSEQS, I_TOTAL, I_WARMUP, I_MEND = range(9)
I_MEASURED, I_PP, I_TP, I_OBJECTS, I_COMPENSATED, I_CHIPS, I_LINK, N_IP = range(9, 17)
# float parameters (fp)
F_EXTRA, F_STATIC_LAY, F_STATIC_RUN, F_LAT, F_BW, F_HIDDEN, F_ACT_BYTES, F_BACK, N_FP = range(9)
# integer state (st_i): running count, requests issued, queue head and length, free blocks,
# steps logged, completions, measured requests done
S_R, S_NREQ, S_WHEAD, S_WLEN, S_FREE, S_NLOG, S_NCOMPL, S_MDONE, N_ST = range(9)
# per-request columns: req_f (arrival, first token, finish), req_i (user, preemptions,
# generated and prompt-computed tokens saved at preemption)
R_ARRIVAL, R_FIRST, R_FINISH = range(3)
R_USER, R_PREEMPTS, R_SAVED_GEN, R_SAVED_PDONE = range(4)
# step-log columns: log_f (start, end, energy, on-chip J, DRAM bits, floor J), log_i (prompt
# tokens computed first time, tokens sampled, requests scheduled, running, blocks held)
L_START, L_END, L_ENERGY, L_ONCHIP, L_BITS, L_FLOOR = range(6)
L_PREFILL, L_OUTPUT, L_BATCH, L_RUNNING, L_BLOCKS = range(5)

_Z = (0.0, 0.0, 0.0, 0.0)
# arguments passed as int64 values, not literals (a literal would compile the callee once more)
_NONE = np.int64(0)
_HEAD_SLOT = np.int64(0)
_DENSE_ROW, _DECODE_ROW = np.int64(0), np.int64(1)
_K_DENSE, _K_HEAD, _K_DECODE, _K_PREFILL = (np.int64(k) for k in (DENSE, HEAD, DECODE_ATTN,
                                                                 PREFILL_ATTN))


# ---------------------------------------------------------------- energies of four parts

@njit(cache=True)
def _add(a, b):
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])


@njit(cache=True)
def _plain(a, x):
    """``a + x`` for a plain number: it lands on the total and the floor energy."""
    return (a[0] + x, a[1], a[2], a[3] + x)


@njit(cache=True)
def _scale(a, k):
    return (a[0] * k, a[1] * k, a[2] * k, a[3] * k)


@njit(cache=True)
def _sum_into(total, c, v):
    """One step of Neumaier's compensated sum (CPython >= 3.12's ``sum`` of floats)."""
    t = total + v
    if abs(total) >= abs(v):
        c += (total - t) + v
    else:
        c += (v - t) + total
    return t, c


# ------------------------------------------------------------------------- the grids

@njit(cache=True)
def _bracket(grid, x):
    """Indices of the grid points around ``x`` and the weight of the upper one, as
    ``stepcost._bracket`` computes them (clamped at the ends, exact hits weigh 0)."""
    n = grid.shape[0]
    if x <= grid[0]:
        return 0, 0, 0.0
    if x >= grid[n - 1]:
        return n - 1, n - 1, 0.0
    lo, hi = 0, n - 1
    while lo < hi:               # bisect_left
        mid = (lo + hi) // 2
        if grid[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    if grid[lo] == x:
        return lo, lo, 0.0
    return lo - 1, lo, (x - grid[lo - 1]) / (grid[lo] - grid[lo - 1])


@njit(cache=True)
def _cell1(H, T, E, s, i, kind, miss):
    if not H[s, i]:
        miss[0], miss[1], miss[2], miss[3] = kind, s, i, 0
        return False, 0.0, _Z
    return True, T[s, i], (E[s, i, 0], E[s, i, 1], E[s, i, 2], E[s, i, 3])


@njit(cache=True)
def _cell2(H, T, E, s, i, j, kind, miss):
    if not H[s, i, j]:
        miss[0], miss[1], miss[2], miss[3] = kind, s, i, j
        return False, 0.0, _Z
    return True, T[s, i, j], (E[s, i, j, 0], E[s, i, j, 1], E[s, i, j, 2], E[s, i, j, 3])


@njit(cache=True)
def _interp1(H, T, E, s, grid, x, kind, miss):
    """``StepCostModel._interp1`` over one table row."""
    lo, hi, w = _bracket(grid, x)
    ok, ta, ea = _cell1(H, T, E, s, lo, kind, miss)
    if not ok or w == 0.0:
        return ok, ta, ea
    ok, tb, eb = _cell1(H, T, E, s, hi, kind, miss)
    if not ok:
        return False, 0.0, _Z
    return True, ta + w * (tb - ta), _add(ea, _scale(_add(eb, _scale(ea, -1.0)), w))


@njit(cache=True)
def _interp2(H, T, E, s, gx, x, gy, y, kind, miss):
    """``StepCostModel._interp2`` over one table slice."""
    xl, xh, wx = _bracket(gx, x)
    yl, yh, wy = _bracket(gy, y)
    ok, t00, e00 = _cell2(H, T, E, s, xl, yl, kind, miss)
    if not ok:
        return False, 0.0, _Z
    t10, e10, t01, e01 = t00, e00, t00, e00
    if wx != 0.0:
        ok, t10, e10 = _cell2(H, T, E, s, xh, yl, kind, miss)
        if not ok:
            return False, 0.0, _Z
    if wy != 0.0:
        ok, t01, e01 = _cell2(H, T, E, s, xl, yh, kind, miss)
        if not ok:
            return False, 0.0, _Z
    if wx != 0.0 and wy != 0.0:
        ok, t11, e11 = _cell2(H, T, E, s, xh, yh, kind, miss)
        if not ok:
            return False, 0.0, _Z
    elif wx != 0.0:
        t11, e11 = t10, e10
    else:
        t11, e11 = t01, e01
    a, b = 1 - wx, 1 - wy
    t = t00 * a * b + t10 * wx * b + t01 * a * wy + t11 * wx * wy
    e = _add(_add(_add(_scale(_scale(e00, a), b), _scale(_scale(e10, wx), b)),
                  _scale(_scale(e01, a), wy)), _scale(_scale(e11, wx), wy))
    return True, t, e


# ------------------------------------------------------------------ the parts of a step

@njit(cache=True)
def _accumulate(t, e, first, count, dt, de):
    """``t += count * dt; e += count * de`` from ``t = e = 0.0`` (the first energy added to
    the float 0.0 is a plain-number addition)."""
    t += count * dt
    if first:
        e = _plain(_scale(de, float(count)), 0.0)
    else:
        e = _add(e, _scale(de, float(count)))
    return t, e


@njit(cache=True)
def _prefill_layer(PH, PT, PE, CHK, KVG, s, chunk, cached, miss):
    """``StepCostModel._prefill_layer``: the causal half of the chunk's score rectangle."""
    ok, t0, e0 = _interp2(PH, PT, PE, s, CHK, chunk, KVG, cached, _K_PREFILL, miss)
    if not ok:
        return False, 0.0, _Z
    if chunk > 1:
        ok, t1, e1 = _interp2(PH, PT, PE, s, CHK, chunk, KVG, cached + chunk, _K_PREFILL,
                              miss)
        if not ok:
            return False, 0.0, _Z
        a, b = 1.5 * t0 - 0.5 * t1, 0.5 * t0
        t0 = b if b > a else a
        ea, eb = _add(_scale(e0, 1.5), _scale(_scale(e1, 0.5), -1.0)), _scale(e0, 0.5)
        e0 = eb if eb[0] > ea[0] else ea
    return True, t0, e0


@njit(cache=True)
def _sum_groups(vt, ve, row, gs, gc, lo, hi):
    """``t, e`` summed over layer groups ``lo:hi`` from each layer type's answer in row
    ``row`` of ``vt``/``ve``, as ``StepCostModel.dense`` and the attention methods sum them
    (``t += count * dt; e += count * de`` from ``t = e = 0.0``)."""
    t, e = 0.0, _Z
    for k in range(lo, hi):
        s = gs[k]
        t, e = _accumulate(t, e, k == lo, gc[k], vt[row, s],
                           (ve[row, s, 0], ve[row, s, 1], ve[row, s, 2], ve[row, s, 3]))
    return t, e


@njit(cache=True)
def _step_cost(ip, fp, npre, pc, pk, ndec, kvsum, TOK, BAT, KVG, CHK, gs, gc, sp,
               DH, DT, DE, HH, HT, HE, AH, AT, AE, PH, PT, PE, ts, tes, vt, ve, miss):
    """Seconds and energy parts of one step (``StepCostModel._step``, or ``stage_times`` and
    ``_pipeline_step`` for a pipeline): ``npre`` prefill chunks of ``pc[i]`` tokens over
    ``pk[i]`` cached, and ``ndec`` decodes whose KV lengths (each at least 1) sum to ``kvsum``.

    Each layer type's answer is interpolated once per step into ``vt``/``ve`` (row 0 the
    dense part, row 1 decode attention, row 2 + i prefill chunk i), then summed over each
    stage's layer groups: every stage of a pipeline asks for the same answers, and the Python
    cost model's memos hand it the same numbers."""
    pp, tp = ip[I_PP], ip[I_TP]
    extra, static_lay = fp[F_EXTRA], fp[F_STATIC_LAY]
    tokens = ndec
    for i in range(npre):
        tokens += pc[i]
    if tokens == 0:
        return True, 0.0, _Z
    seqs = npre + ndec
    m = min(pp, seqs)
    if m < 1:
        m = 1
    slots = DT.shape[0]
    # a pipeline's micro-batch carries 1/m of the step's tokens and decodes
    x_dense = float(tokens) if pp == 1 else tokens / m
    x_batch = float(ndec) if pp == 1 else ndec / m
    for s in range(slots):
        ok, t, e = _interp1(DH, DT, DE, s, TOK, x_dense, _K_DENSE, miss)
        if not ok:
            return False, 0.0, _Z
        vt[0, s] = t
        ve[0, s, 0], ve[0, s, 1], ve[0, s, 2], ve[0, s, 3] = e
        if ndec:
            ok, t, e = _interp2(AH, AT, AE, s, BAT, x_batch, KVG, kvsum / ndec, _K_DECODE,
                                miss)
            if not ok:
                return False, 0.0, _Z
            vt[1, s] = t
            ve[1, s, 0], ve[1, s, 1], ve[1, s, 2], ve[1, s, 3] = e
        for i in range(npre):
            ok, t, e = _prefill_layer(PH, PT, PE, CHK, KVG, s, float(pc[i]), float(pk[i]), miss)
            if not ok:
                return False, 0.0, _Z
            vt[2 + i, s] = t
            ve[2 + i, s, 0], ve[2 + i, s, 1], ve[2 + i, s, 2], ve[2 + i, s, 3] = e
    rows = float(seqs) if pp == 1 else seqs / m
    ok, ht, he = _interp1(HH, HT, HE, _HEAD_SLOT, TOK, rows, _K_HEAD, miss)
    if not ok:
        return False, 0.0, _Z
    if pp == 1:
        lo, hi = sp[0], sp[1]
        t, e = _sum_groups(vt, ve, _DENSE_ROW, gs, gc, lo, hi)
        for i in range(npre):
            at, ae = _sum_groups(vt, ve, 2 + i, gs, gc, lo, hi)
            t, e = t + at, _add(e, ae)
        if ndec:
            at, ae = _sum_groups(vt, ve, _DECODE_ROW, gs, gc, lo, hi)
            t, e = t + at, _add(e, ae)
        return True, t + ht + extra, _plain(_scale(_add(e, he), float(tp)), extra * static_lay)
    # a pipeline (StepCostModel.stage_times and _pipeline_step)
    objects = ip[I_OBJECTS] != 0
    for s in range(pp):
        lo, hi = sp[s], sp[s + 1]
        t, e = _sum_groups(vt, ve, _DENSE_ROW, gs, gc, lo, hi)
        for i in range(npre):
            at, ae = _sum_groups(vt, ve, 2 + i, gs, gc, lo, hi)
            # an energy object divides by multiplying with the reciprocal; a float divides
            ae = _scale(ae, 1.0 / m) if objects else (ae[0] / m, ae[1] / m, ae[2] / m,
                                                      ae[3] / m)
            t, e = t + at / m, _add(e, ae)
        if ndec:
            at, ae = _sum_groups(vt, ve, _DECODE_ROW, gs, gc, lo, hi)
            t, e = t + at, _add(e, ae)
        if s == pp - 1:
            t, e = t + ht, _add(e, he)
        ts[s] = t
        tes[s, 0], tes[s, 1], tes[s, 2], tes[s, 3] = e
    hop = 0.0
    if ip[I_LINK]:
        hop = fp[F_LAT] + tokens / m * fp[F_HIDDEN] * fp[F_ACT_BYTES] / fp[F_BW]
    busiest = ts[0]
    for s in range(1, pp):
        if ts[s] > busiest:
            busiest = ts[s]
    if hop > busiest:
        busiest = hop
    compensated = ip[I_COMPENSATED] != 0
    total, c = 0.0 + ts[0], 0.0
    for s in range(1, pp):
        if compensated:
            total, c = _sum_into(total, c, ts[s])
        else:
            total = total + ts[s]
    if compensated and c != 0.0 and np.isfinite(c):
        total = total + c
    one_pass = total + (pp - 1) * hop + fp[F_BACK]
    period = one_pass if one_pass > m * busiest else m * busiest
    chip_static = static_lay / ip[I_CHIPS]
    energy = _Z
    c0 = 0.0
    for s in range(pp):
        idle = period - m * ts[s]
        item = _plain(_scale((tes[s, 0], tes[s, 1], tes[s, 2], tes[s, 3]), float(m)),
                      chip_static * (idle if idle > 0.0 else 0.0))
        if s == 0:
            energy = _plain(item, 0.0)     # sum() starts from 0: 0.0 + the first item
        elif objects or not compensated:
            energy = _add(energy, item)
        else:                       # floats: only the total matters, summed as sum() does
            tot, c0 = _sum_into(energy[0], c0, item[0])
            energy = (tot, 0.0, 0.0, 0.0)
    if not objects and compensated and c0 != 0.0 and np.isfinite(c0):
        energy = (energy[0] + c0, 0.0, 0.0, 0.0)
    return True, period + extra, _plain(_scale(energy, float(tp)), extra * static_lay)


# --------------------------------------------------------------------------- the loop

@njit(cache=True)
def _first_chunk(tokens, left, block, floor):
    """A waiting request's first chunk (its ``tokens`` to compute, at most the ``left`` of the
    budget) and the blocks it needs (``_Simulation.admit_waiting``)."""
    chunk = tokens if tokens < left else left
    blocks = (chunk + block - 1) // block
    return chunk, (blocks if blocks > floor else floor)


@njit(cache=True)
def _stretch_length(ip, st_i, req_i, wait, gen, comp, fc, hist):
    """Steps from now in which the scheduler can only let every running request decode
    (``_Simulation.decode_stretch``): no admission, no finish, no block shortage; 0 when the
    next step needs the full scheduler. Fills ``fc`` with the step (from 0) at which each
    request opens a new block (``hist``, of ``block`` places, is scratch)."""
    R, free = st_i[S_R], st_i[S_FREE]
    inp, out, block, floor = ip[I_INP], ip[I_OUT], ip[I_BLOCK], ip[I_FLOOR]
    budget, max_seqs = ip[I_BUDGET], ip[I_MAXSEQS]
    if R == 0 or R > budget:
        return 0
    gmax = 0
    opening = 0
    for i in range(R):
        if gen[i] < 1 or inp + gen[i] - comp[i] != 1:
            return 0
        if gen[i] > gmax:
            gmax = gen[i]
        # under no_evict every block was reserved at admission: none opens
        fc[i] = (block - comp[i] % block) % block if floor == 0 else np.iinfo(np.int64).max // 4
        if fc[i] == 0:
            opening += 1
    left = budget - R
    if left > 0 and R < max_seqs and st_i[S_WLEN] > 0:
        _, blocks = _first_chunk(inp + req_i[wait[st_i[S_WHEAD]], R_SAVED_GEN], left, block,
                                 floor)
        if blocks <= free - opening:
            return 0          # the head of the queue is admitted now
        # else it stays blocked: free blocks only shrink while everyone decodes
    k = out - gmax - 1
    crossings = 0
    for i in range(R):
        if k > fc[i]:
            crossings += (k - fc[i] + block - 1) // block
    if crossings > free:
        # the (free + 1)-th block request, in step order, is the first that cannot be met:
        # the pos-th smallest first crossing (each below ``block`` here: under no_evict none
        # opens), counted rather than sorted, in round ``rounds``
        rounds, pos = free // R, free % R
        hist[:] = 0
        for i in range(R):
            hist[fc[i]] += 1
        v, seen = 0, hist[0]
        while seen <= pos:
            v += 1
            seen += hist[v]
        if v + rounds * block < k:
            k = v + rounds * block
    return k if k >= 2 else 0


@njit(cache=True)
def _stretch(ip, fp, st_i, st_f, comp, gen, blk, log_f, log_i, gapt, fc, cross, k, TOK, BAT,
             KVG, CHK, gs, gc, sp, DH, DT, DE, HH, HT, HE, AH, AT, AE, PH, PT, PE, ts, tes,
             vt, ve, pc, pk, miss):
    """Up to ``k`` decode steps of every running request, each costed as a full step would
    be; the steps run are committed (a table miss or a full log stops it early, and the
    caller's next call goes on from there)."""
    R, block, floor, total = st_i[S_R], ip[I_BLOCK], ip[I_FLOOR], ip[I_TOTAL]
    kvsum = 0
    for i in range(R):
        kvsum += comp[i]
    cross[:] = 0
    for i in range(R):
        if fc[i] < block:
            cross[fc[i]] += 1
    used = total - st_i[S_FREE]
    room = log_f.shape[0] - st_i[S_NLOG]
    if k > room:
        k = room
    gap = gapt[R]
    static_run = fp[F_STATIC_RUN]
    t = st_f[0]
    status = DONE
    done = 0
    while done < k:
        ok, seconds, e = _step_cost(ip, fp, _NONE, pc, pk, R, kvsum + R * done, TOK, BAT, KVG,
                                    CHK, gs, gc, sp, DH, DT, DE, HH, HT, HE, AH, AT, AE, PH,
                                    PT, PE, ts, tes, vt, ve, miss)
        if not ok:
            status = MISS
            break
        if not seconds >= 0.0 or np.isinf(seconds):
            st_f[1], st_f[2], st_f[3] = seconds, 0, R
            status = BAD
            break
        t_end = t + seconds + gap
        used += cross[done % block]
        row = st_i[S_NLOG]
        log_f[row, L_START], log_f[row, L_END] = t, t_end
        log_f[row, L_ENERGY] = e[0] + gap * static_run
        log_f[row, L_ONCHIP], log_f[row, L_BITS], log_f[row, L_FLOOR] = e[1], e[2], e[3]
        log_i[row, L_PREFILL], log_i[row, L_OUTPUT], log_i[row, L_BATCH] = 0, R, R
        log_i[row, L_RUNNING], log_i[row, L_BLOCKS] = R, used
        st_i[S_NLOG] = row + 1
        t = t_end
        done += 1
    st_f[0] = t
    held_sum = 0
    for i in range(R):
        comp[i] += done
        gen[i] += done
        held = (comp[i] + block - 1) // block
        if held < floor:
            held = floor
        blk[i] = held
        held_sum += held
    st_i[S_FREE] = total - held_sum
    return status


@njit(cache=True)
def _issue(st_i, req_f, req_i, wait, user, at):
    r = st_i[S_NREQ]
    req_f[r, R_ARRIVAL], req_f[r, R_FIRST], req_f[r, R_FINISH] = at, np.nan, np.nan
    req_i[r, R_USER], req_i[r, R_PREEMPTS] = user, 0
    req_i[r, R_SAVED_GEN], req_i[r, R_SAVED_PDONE] = 0, 0
    wait[(st_i[S_WHEAD] + st_i[S_WLEN]) % wait.shape[0]] = r
    st_i[S_WLEN] += 1
    st_i[S_NREQ] = r + 1


@njit(cache=True)
def run(ip, fp, st_i, st_f, req_f, req_i, wait, rid, comp, gen, blk, pdone, compl, log_f,
        log_i, gapt, TOK, BAT, KVG, CHK, gs, gc, sp, DH, DT, DE, HH, HT, HE, AH, AT, AE,
        PH, PT, PE, miss, stretches=True):
    """Run the closed-loop serving simulation from the state given until the measured
    requests have finished, or until it needs a table point or more room.

    Parameters
    ----------
    ip, fp : int64 and float64 arrays
        The scenario, scheduler and system (``I_*`` and ``F_*`` positions).
    st_i, st_f : int64 and float64 arrays
        The state (``S_*`` positions; ``st_f[0]`` the clock), updated in place.
    req_f, req_i : (capacity, 3) float64 and (capacity, 4) int64 arrays
        Per request, by arrival order (``R_*`` columns).
    wait : int64 array
        The waiting queue, a ring buffer from ``st_i[S_WHEAD]`` of ``st_i[S_WLEN]`` request
        indices (its length is the requests' capacity).
    rid, comp, gen, blk, pdone : int64 arrays of at least ``max_num_seqs``
        The running requests in admission order (the first ``st_i[S_R]``).
    compl : float64 array
        Completion times in order.
    log_f, log_i : (capacity, 6) float64 and (capacity, 5) int64 arrays
        One row per step (``L_*`` columns).
    gapt : float64 array
        The serving stack's host seconds after a step of ``k`` sequences, at ``gapt[k]``.
    TOK, BAT, KVG, CHK : int64 arrays
        The cost model's grids (``stepcost.TOKENS``, ``BATCH``, ``KV``, ``CHUNK``).
    gs, gc, sp : int64 arrays
        Layer groups: table slot and layer count of each, pipeline stage ``s`` holding groups
        ``sp[s]:sp[s + 1]``.
    DH, DT, DE, HH, HT, HE, AH, AT, AE, PH, PT, PE : arrays
        Known flags (uint8), seconds and energy parts (a last axis of 4) of the dense part
        (slot x TOKENS), the head (1 x TOKENS), decode attention (slot x BATCH x KV) and
        prefill attention (slot x CHUNK x KV).
    miss : int64 array of 4
        Receives the table point a :data:`MISS` needs.
    stretches : bool
        Run a stretch of steps in which every running request decodes and nothing else can
        happen (:func:`_stretch_length`) without planning each step; False plans every step
        (the same figures, for the tests).

    Returns
    -------
    int
        :data:`DONE`, :data:`MISS`, :data:`GROW` or :data:`BAD`.
    """
    inp, out, block, floor = ip[I_INP], ip[I_OUT], ip[I_BLOCK], ip[I_FLOOR]
    budget, max_seqs, total_blocks = ip[I_BUDGET], ip[I_MAXSEQS], ip[I_TOTAL]
    warmup, mend, measured = ip[I_WARMUP], ip[I_MEND], ip[I_MEASURED]
    static_run = fp[F_STATIC_RUN]
    wcap = wait.shape[0]
    cap = rid.shape[0]
    n = np.empty(cap, dtype=np.int64)
    need = np.empty(cap, dtype=np.int64)
    comp2 = np.empty(cap, dtype=np.int64)
    gen2 = np.empty(cap, dtype=np.int64)
    pdone2 = np.empty(cap, dtype=np.int64)
    blk2 = np.empty(cap, dtype=np.int64)
    flags = np.empty(cap, dtype=np.int64)
    pc = np.empty(cap, dtype=np.int64)
    pk = np.empty(cap, dtype=np.int64)
    counts = np.empty(6, dtype=np.int64)
    ts = np.empty(max(ip[I_PP], 1))
    tes = np.empty((max(ip[I_PP], 1), 4))
    fc = np.empty(cap, dtype=np.int64)
    # each layer type's answers of one step: dense, decode attention, then each prefill chunk
    vt = np.empty((2 + cap, DT.shape[0]))
    ve = np.empty((2 + cap, DT.shape[0], 4))
    cross = np.empty(block, dtype=np.int64)
    while True:
        R, free = st_i[S_R], st_i[S_FREE]
        if st_i[S_MDONE] >= measured and st_i[S_NCOMPL] >= mend:
            return DONE
        if (st_i[S_NLOG] >= log_f.shape[0] or st_i[S_NCOMPL] + max_seqs > compl.shape[0]
                or st_i[S_NREQ] + max_seqs > req_f.shape[0]):
            return GROW
        if stretches:
            k = _stretch_length(ip, st_i, req_i, wait, gen, comp, fc, cross)
            if k >= 2:
                status = _stretch(ip, fp, st_i, st_f, comp, gen, blk, log_f, log_i, gapt, fc,
                                  cross, k, TOK, BAT, KVG, CHK, gs, gc, sp, DH, DT, DE, HH, HT,
                                  HE, AH, AT, AE, PH, PT, PE, ts, tes, vt, ve, pc, pk, miss)
                if status != DONE:
                    return status
                continue
        # -- plan: tokens per running request, blocks each newly needs
        need_total, n_total = plan_into(comp[:R], gen[:R], blk[:R], inp, budget, block, floor,
                                        n, need)
        end, admitted = R, 0
        preempted = need_total > free
        if preempted:
            # serve in order; when one cannot grow, evict the newest (_Simulation.preempt)
            f, i = free, 0
            while i < end:
                while f < need[i]:
                    end -= 1
                    f += blk[end]
                    if end == i:
                        break
                if end == i:
                    break
                f -= need[i]
                i += 1
        elif budget - n_total > 0 and st_i[S_WLEN] > 0 and R < max_seqs:
            # admit first come, first served into the budget left (staged past the running
            # requests; committed with the step)
            left, free_after, room = budget - n_total, free - need_total, max_seqs - R
            head, wlen = st_i[S_WHEAD], st_i[S_WLEN]
            while admitted < wlen and left > 0 and admitted < room:
                r = wait[(head + admitted) % wcap]
                chunk, blocks = _first_chunk(inp + req_i[r, R_SAVED_GEN], left, block, floor)
                if blocks > free_after:
                    break
                j = R + admitted
                rid[j], comp[j], gen[j] = r, 0, req_i[r, R_SAVED_GEN]
                blk[j], pdone[j], n[j] = 0, req_i[r, R_SAVED_PDONE], chunk
                left -= chunk
                free_after -= blocks
                admitted += 1
            end = R + admitted
        # -- the state after the step
        advance_into(comp[:end], gen[:end], pdone[:end], n[:end], inp, block, floor, out, comp2,
                     gen2, pdone2, blk2, flags, counts)
        useful, sampled, scheduled, blocks_held = counts[0], counts[1], counts[2], counts[3]
        npre, ndec, kvsum = _NONE, _NONE, _NONE
        for i in range(end):
            if flags[i] & _DECODE:
                ndec += 1
                kvsum += comp[i] if comp[i] > 1 else 1    # a decode has its prompt cached
            elif flags[i] & _PREFILL:
                pc[npre], pk[npre] = n[i], comp[i]
                npre += 1
        t = st_f[0]
        seconds, e = 0.0, _Z
        if scheduled:
            ok, seconds, e = _step_cost(ip, fp, npre, pc, pk, ndec, kvsum, TOK, BAT, KVG, CHK,
                                        gs, gc, sp, DH, DT, DE, HH, HT, HE, AH, AT, AE, PH,
                                        PT, PE, ts, tes, vt, ve, miss)
            if not ok:
                return MISS
            if not seconds >= 0.0 or np.isinf(seconds):
                st_f[1] = seconds
                st_f[2] = npre
                st_f[3] = ndec
                return BAD
        # -- commit
        if preempted:
            # victims to the head of the queue, the newest last (appendleft from the back)
            for j in range(R - 1, end - 1, -1):
                r = rid[j]
                req_i[r, R_SAVED_GEN] = gen[j]
                req_i[r, R_SAVED_PDONE] = pdone[j]
                req_i[r, R_PREEMPTS] += 1
                st_i[S_WHEAD] = (st_i[S_WHEAD] - 1) % wcap
                wait[st_i[S_WHEAD]] = r
                st_i[S_WLEN] += 1
            held_sum = 0
            for i in range(end):
                held_sum += blk[i]
            st_i[S_R] = end
            st_i[S_FREE] = total_blocks - held_sum
            if not scheduled:
                continue            # everyone was preempted; the queue is admitted next
        if admitted:
            st_i[S_WHEAD] = (st_i[S_WHEAD] + admitted) % wcap
            st_i[S_WLEN] -= admitted
        if not scheduled:
            st_i[S_R] = end
            continue
        gap = gapt[scheduled]
        t_end = t + seconds + gap
        for i in range(end):
            comp[i], gen[i], pdone[i], blk[i] = comp2[i], gen2[i], pdone2[i], blk2[i]
        k = st_i[S_NLOG]
        log_f[k, L_START], log_f[k, L_END] = t, t_end
        log_f[k, L_ENERGY] = e[0] + gap * static_run
        log_f[k, L_ONCHIP], log_f[k, L_BITS], log_f[k, L_FLOOR] = e[1], e[2], e[3]
        log_i[k, L_PREFILL], log_i[k, L_OUTPUT], log_i[k, L_BATCH] = useful, sampled, scheduled
        log_i[k, L_RUNNING], log_i[k, L_BLOCKS] = end, blocks_held
        st_i[S_NLOG] = k + 1
        st_f[0] = t_end
        kept, held_sum, retired = 0, 0, False
        for i in range(end):
            r = rid[i]
            if flags[i] & _FIRST:
                req_f[r, R_FIRST] = t_end
            if flags[i] & _DONE:
                retired = True
                req_f[r, R_FINISH] = t_end
                compl[st_i[S_NCOMPL]] = t_end
                st_i[S_NCOMPL] += 1
                if warmup <= r < mend:
                    st_i[S_MDONE] += 1
                _issue(st_i, req_f, req_i, wait, req_i[r, R_USER], t_end)
            else:
                if retired:
                    rid[kept], comp[kept], gen[kept] = rid[i], comp[i], gen[i]
                    blk[kept], pdone[kept] = blk[i], pdone[i]
                kept += 1
                held_sum += blk[i]
        st_i[S_R] = kept
        st_i[S_FREE] = total_blocks - (held_sum if retired else blocks_held)


__all__ = ["BAD", "DECODE_ATTN", "DENSE", "DONE", "GROW", "HEAD", "MISS", "PREFILL_ATTN", "run"]
