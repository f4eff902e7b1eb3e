"""All-bank processing-in-memory (PIM) timing of one DRAM channel, command by command.

The model, in the terms of a DRAM datasheet and of the PIM devices in the reference
(``pim.md`` sec. 2-3: Samsung HBM2-PIM [P1][S1], SK hynix GDDR6-AiM [P7][T4], LPDDR5X-PIM
[P12]):

* **Units.** A channel has ``G_BANKS`` banks; one processing unit serves ``G_BANKS_PER_UNIT`` of
  them (1; 2 for HBM2-PIM [P1]), so it has ``G_BANKS / G_BANKS_PER_UNIT`` units. Every channel
  runs the same all-bank program in lockstep; the caller passes the busiest channel's work, and
  the work of one unit (every unit of the channel does the same commands at the same time).
* **Weights in rows.** A unit's weights lie contiguously from its byte 0. Its byte ``ptr`` is in
  row ``ptr // (G_ROW * G_BANKS_PER_UNIT)``: one all-bank ACT opens that row in every bank, so a
  unit with two banks streams two rows per activation.
* **GEMV, tiled.** Output rows go in groups of ``G_ACCUMULATORS`` (the partial sums a unit holds
  at once); the reduction dimension (``W_K_BYTES`` of weights per output row) in chunks of
  ``W_CHUNK_BYTES``. Per group and chunk the host first broadcasts that chunk's input over the
  external bus, ``ceil(W_CHUNK_INPUT * cb / W_CHUNK_BYTES / G_BURST)`` write bursts at
  ``P_WRITE_BURST`` each followed by the write-to-column turnaround ``tWL + tWTR_L``
  (HBM2-PIM's GRF_A writes, AiM's GWRITE; ``pim.md`` sec. 3 item 1); then the units stream
  ``ceil(rows_g * cb / G_BURST)`` all-bank column (MAC) commands, at most one per ``P_COLUMN``
  (``pim.md`` sec. 3 item 3: "PIM op consumes tCCD_L" [I1]), each reading one burst from the
  open row. After a group's last chunk its partial sums are read out, ``ceil(units *
  rows_g * W_RESULT_BYTES / G_BURST)`` read bursts at ``P_READ_BURST`` each, starting no
  sooner than ``tCL`` after the last column (the last MAC's operand reaches the unit like read
  data reaches the pins). ``W_PASSES`` repeats all of it (input vectors beyond what a unit
  applies to one weight burst); the weight address restarts at 0 each pass.
* **Write-back.** After the groups, each pass writes ``W_WRITEBACK`` bytes per unit back into
  its banks (elementwise results) as column write commands, one per ``P_COLUMN``, starting at
  the next row boundary (the output is a tensor of its own, row-aligned).
* **Row switch.** When a column's row is not the open one: all-bank PRE at the latest of
  the stream's floor (the end of the previous column slot or train), last column + tRTP (after
  a write-back column, write recovery ``tWL + tBURST + tWR``) and last ACT + tRAS; then tRP;
  then the ACT. With ``G_ACT_EXEMPT`` one all-bank ACT opens every bank (``tRC`` after the
  previous one); otherwise bank ``i``'s ACT goes at ``max(ready, previous ACT + tRRD_S, the ACT
  four before + tFAW, this bank's last ACT + tRC)`` (``pim.md`` sec. 3 item 2). Columns start
  tRCD after the last bank's ACT. Banks start closed. Row commands never overlap columns or
  trains: the stream is serial, as in ``pim.md`` sec. 3's row-overhead arithmetic ("no overlap
  of ACT/PRE with MACs"), so a row of ``n`` columns costs ``n * P_COLUMN + tRP + tRCD`` when
  tRTP <= P_COLUMN and tRAS, tRC do not bind.
* **Refresh.** All-bank refresh every tREFI, the first due at tREF0 (``pim.md`` sec. 3 item 6):
  when the next command would start at or after the due time (for a column: its PRE if it
  switches rows, its first ACT if the banks are closed, else the column itself; a broadcast or
  read-out train is one command, taken as a whole), the refresh starts at the latest of the due
  time, the stream's floor, the end of the previous refresh and, if rows are open, their
  all-bank PRE (as for a row switch) + tRP. If it starts on its tick, every refresh due up to
  that command falls in idle time and is taken on its own tick; if it was postponed, the
  refreshes owed by then run back to back, ``tRFC`` each. The banks are then closed and the
  next column re-opens its row (ACT + tRCD). ``tRFC < tREFI`` is required.
* **Mode switches.** One switch into PIM mode before everything and one out after, ``P_MODE``
  each (HBM2-PIM: SB -> AB -> AB-PIM by writes to reserved rows [S1]); the kernel always counts
  two and the caller passes ``P_MODE = 0`` for a device without them (NeuPIMs' dual row
  buffer). Refresh is checked only for PIM commands, not for the switches.
* **Column trains.** Columns that follow one another with no stall form a train: the ``k``-th
  column of a train begun at ``s`` issues at ``s + k * P_COLUMN``, computed so rather than by
  repeated addition, so the result does not depend on how a simulator walks the train. The
  kernel walks a row's columns in O(1) unless a refresh falls among them; the twin walks them
  one by one, and the two agree exactly.
* **Time accounting.** Every second of ``S_TIME`` is attributed once: ``S_TIME = 2 * P_MODE +
  S_STREAM_S + S_BROADCAST_S + S_READOUT_S + S_ROW_S + S_REFRESH_S`` (to float rounding).
  ``S_STREAM_S`` is ``S_COLUMNS * P_COLUMN``; ``S_BROADCAST_S`` the write bursts and their
  turnarounds; ``S_READOUT_S`` the read bursts and the wait from the last column to the first
  of them; ``S_ROW_S`` the stall before a column that opens a new row with no refresh in
  between; ``S_REFRESH_S`` every other stall (the refresh, its PRE, re-opening the row after
  it, and a row switch merged into a refresh).
* **Not modelled.** Read/write turnarounds other than broadcast -> column, the command bus,
  tRRD_L (bank ACTs are spaced by tRRD_S), per-bank refresh, overlap of a broadcast with the
  columns of the previous chunk (no double-buffered input), power caps beyond ``P_COLUMN``.

All times are float seconds. :func:`simulate` is ``@njit(cache=True)`` on plain arrays; its twin
:func:`simulate_ref` is written with Python objects, the slow, obvious way. Inputs are checked
cheaply (``ValueError``): the kernel never loops forever on nonsense.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from npusim.kernels.dram import (N_TIMING, T_BURST, T_CL, T_FAW, T_RAS, T_RC, T_RCD, T_REF0,
                                 T_REFI, T_RFC, T_RP, T_RRD_S, T_RTP, T_WL, T_WR, T_WTR_L,
                                 TIMING_NAMES)

# Indices into the ``geometry`` array (int64).
G_BANKS = 0
"""Banks per channel (bank groups x banks per group)."""
G_BANKS_PER_UNIT = 1
"""Banks sharing one processing unit; divides ``G_BANKS``."""
G_BURST = 2
"""Bytes of one column burst (what a unit reads per column command; also a bus burst)."""
G_ROW = 3
"""Bytes of one row of one bank."""
G_ACCUMULATORS = 4
"""Output rows a unit accumulates at once before read-out."""
G_ACT_EXEMPT = 5
"""1: one all-bank ACT opens every bank (exempt from tRRD/tFAW); 0: bank ACTs obey them."""
N_GEOMETRY = 6

# Indices into the ``pim_timing`` array (float64 seconds).
P_COLUMN = 0
"""Seconds between all-bank column commands (tCCD_L unless the device is slower)."""
P_MODE = 1
"""Seconds per switch between normal and PIM mode (each way)."""
P_WRITE_BURST = 2
"""Seconds one broadcast write burst occupies the channel's external bus."""
P_READ_BURST = 3
"""Seconds one read-out burst occupies the channel's external bus."""
N_PIM_TIMING = 4

# Indices into the ``work`` array (int64), the work of one unit of the busiest channel.
W_ROWS = 0
"""Output rows the unit computes."""
W_K_BYTES = 1
"""Weight bytes per output row (the reduction dimension)."""
W_CHUNK_BYTES = 2
"""Weight bytes per output row covered by one broadcast of input (>= 1 when there is work)."""
W_CHUNK_INPUT = 3
"""Input bytes broadcast to the channel per chunk (0: the input is already in the units)."""
W_RESULT_BYTES = 4
"""Bytes of one partial sum as read out (0: nothing read out)."""
W_PASSES = 5
"""Passes over the weights (input vectors beyond what one pass applies)."""
W_WRITEBACK = 6
"""Bytes per unit written back into its banks per pass (elementwise results)."""
N_WORK = 7

# Indices into the stats array :func:`simulate` returns.
S_TIME = 0
"""Seconds from the start of the switch into PIM mode to the end of the switch out."""
S_COLUMNS = 1
"""Column commands per unit (MAC reads and write-back writes)."""
S_ACTIVATIONS = 2
"""Bank activations, every bank counted (an all-bank ACT of 16 banks counts 16)."""
S_ROW_SWITCHES = 3
"""Times the unit's row changed (the first opening included; re-opens after refresh not)."""
S_REFRESHES = 4
S_WRITE_BURSTS = 5
"""Broadcast write bursts on the channel's external bus."""
S_READ_BURSTS = 6
"""Read-out bursts on the channel's external bus."""
S_MODE_SWITCHES = 7
S_STREAM_S = 8
S_BROADCAST_S = 9
S_READOUT_S = 10
S_ROW_S = 11
S_REFRESH_S = 12
N_STATS = 13
STATS_NAMES = ("time", "columns", "activations", "row_switches", "refreshes", "write_bursts",
               "read_bursts", "mode_switches", "stream_s", "broadcast_s", "readout_s", "row_s",
               "refresh_s")

_NEVER = -1.0e18

# Kernel state (private): floats ...
_CUR = 0          # earliest start of the next command of the stream
_TRAIN_START = 1  # first column of the current train
_DUE = 2          # next refresh due (inf: refresh off)
_REF_END = 3      # end of the last refresh
_PRE_READY = 4    # earliest all-bank PRE of the open row (before the stream's own floor)
_ROW_READY = 5    # earliest column in the open row (last ACT + tRCD)
_MAY_ACT = 6      # earliest ACT of closed banks
_LAST_ACT = 7     # last bank ACT in the channel (tRRD), or the last all-bank ACT (exempt)
_LAST_COL = 8     # time of the last column command
_NF = 9
# ... and integers.
_OPEN_ROW = 0     # the unit's current row (-1: none yet)
_BANKS_OPEN = 1   # 1 while that row is open in every bank
_TRAIN_N = 2      # columns in the current train
_IN_TRAIN = 3     # 1 if the last command was a column
_FAW_POS = 4      # oldest entry of the four-ACT window
_NI = 5


@njit(cache=True)
def _cdiv(a, b):
    return -(-a // b)


@njit(cache=True)
def _refresh(first, st, si, stats, timing):
    """Refresh before a command whose first part would start at ``first`` (>= the due time)."""
    trefi = timing[T_REFI]
    start = max(st[_DUE], st[_CUR], st[_REF_END])
    if si[_BANKS_OPEN] == 1:
        start = max(start, max(st[_CUR], st[_PRE_READY]) + timing[T_RP])
    if start == st[_DUE]:
        n = np.floor((first - start) / trefi) + 1.0
        end = start + (n - 1.0) * trefi + timing[T_RFC]
    else:
        n = np.floor((start - st[_DUE]) / trefi) + 1.0
        end = start + n * timing[T_RFC]
    st[_DUE] += n * trefi
    st[_REF_END] = end
    st[_MAY_ACT] = max(st[_MAY_ACT], end)
    si[_BANKS_OPEN] = 0
    stats[S_REFRESHES] += n


@njit(cache=True)
def _first_act(ready, st, si, faw, bank_act, exempt, timing):
    """Time of the first ACT of a row opening whose banks are ready at ``ready``."""
    if exempt:
        return max(ready, st[_LAST_ACT] + timing[T_RC])
    return max(ready, st[_LAST_ACT] + timing[T_RRD_S], faw[si[_FAW_POS]] + timing[T_FAW],
               bank_act[0] + timing[T_RC])


@njit(cache=True)
def _activate(ready, st, si, faw, bank_act, exempt, stats, timing):
    """Open the row in every bank; returns the last bank's ACT time."""
    n_bank = bank_act.shape[0]
    if exempt:
        a = max(ready, st[_LAST_ACT] + timing[T_RC])
        st[_LAST_ACT] = a
    else:
        a = ready
        for i in range(n_bank):
            a = max(ready, st[_LAST_ACT] + timing[T_RRD_S], faw[si[_FAW_POS]] + timing[T_FAW],
                    bank_act[i] + timing[T_RC])
            bank_act[i] = a
            st[_LAST_ACT] = a
            faw[si[_FAW_POS]] = a
            si[_FAW_POS] = (si[_FAW_POS] + 1) % 4
    stats[S_ACTIVATIONS] += n_bank
    return a


@njit(cache=True)
def _column(row, write, st, si, faw, bank_act, exempt, stats, timing, p_col):
    """Issue one column command on ``row`` (row switch and refresh as needed)."""
    switch = row != si[_OPEN_ROW]
    refreshed = False
    while True:
        if not switch and si[_BANKS_OPEN] == 1:
            first = max(st[_CUR], st[_ROW_READY])
        elif si[_BANKS_OPEN] == 1:
            first = max(st[_CUR], st[_PRE_READY])
        else:
            first = _first_act(max(st[_CUR], st[_MAY_ACT]), st, si, faw, bank_act, exempt,
                               timing)
        if first < st[_DUE]:
            break
        _refresh(first, st, si, stats, timing)
        refreshed = True
    if switch or si[_BANKS_OPEN] == 0:
        if si[_BANKS_OPEN] == 1:
            ready = max(st[_CUR], st[_PRE_READY]) + timing[T_RP]
        else:
            ready = max(st[_CUR], st[_MAY_ACT])
        a = _activate(ready, st, si, faw, bank_act, exempt, stats, timing)
        st[_ROW_READY] = a + timing[T_RCD]
        st[_PRE_READY] = a + timing[T_RAS]
        si[_BANKS_OPEN] = 1
        if switch:
            si[_OPEN_ROW] = row
            stats[S_ROW_SWITCHES] += 1.0
    cur = st[_CUR]
    c = max(cur, st[_ROW_READY])
    if si[_IN_TRAIN] == 1 and c == cur:
        si[_TRAIN_N] += 1
    else:
        st[_TRAIN_START] = c
        si[_TRAIN_N] = 1
    si[_IN_TRAIN] = 1
    st[_CUR] = st[_TRAIN_START] + si[_TRAIN_N] * p_col
    st[_LAST_COL] = c
    if write:
        st[_PRE_READY] = max(st[_PRE_READY],
                             c + timing[T_WL] + timing[T_BURST] + timing[T_WR])
    else:
        st[_PRE_READY] = max(st[_PRE_READY], c + timing[T_RTP])
    stats[S_COLUMNS] += 1.0
    if switch and not refreshed:
        stats[S_ROW_S] += c - cur
    else:
        stats[S_REFRESH_S] += c - cur


@njit(cache=True)
def _columns(n, ptr, write, span, burst, st, si, faw, bank_act, exempt, stats, timing, p_col):
    """Issue ``n`` column commands from unit byte ``ptr``; returns the byte after them."""
    done = 0
    while done < n:
        row = ptr // span
        m = min(n - done, _cdiv((row + 1) * span - ptr, burst))
        _column(row, write, st, si, faw, bank_act, exempt, stats, timing, p_col)
        rest = m - 1
        while rest > 0:
            # Hits in an open row continue the train: the j-th next goes at ts + (tn + j) P.
            ts = st[_TRAIN_START]
            tn = si[_TRAIN_N]
            due = st[_DUE]
            j = rest
            if ts + (tn + rest - 1) * p_col >= due:
                x = (due - ts) / p_col - tn
                if x <= 0.0:
                    j = 0
                elif x >= rest - 1:
                    j = rest - 1
                else:
                    j = int(np.ceil(x))
                while j > 0 and ts + (tn + j - 1) * p_col >= due:
                    j -= 1
                while j < rest and ts + (tn + j) * p_col < due:
                    j += 1
            if j > 0:
                last = ts + (tn + j - 1) * p_col
                si[_TRAIN_N] = tn + j
                st[_CUR] = ts + (tn + j) * p_col
                st[_LAST_COL] = last
                if write:
                    st[_PRE_READY] = max(st[_PRE_READY],
                                         last + timing[T_WL] + timing[T_BURST] + timing[T_WR])
                else:
                    st[_PRE_READY] = max(st[_PRE_READY], last + timing[T_RTP])
                stats[S_COLUMNS] += j
                rest -= j
            if rest > 0:      # a refresh falls due before the next column
                _column(row, write, st, si, faw, bank_act, exempt, stats, timing, p_col)
                rest -= 1
        ptr += m * burst
        done += m
    return ptr


@njit(cache=True)
def _train(s0, duration, tail, st, si, stats, timing):
    """A broadcast or read-out train that may start at ``s0``; returns when it started."""
    s = s0
    while s >= st[_DUE]:
        _refresh(s, st, si, stats, timing)
        s = max(s0, st[_REF_END])
    stats[S_REFRESH_S] += s - s0
    st[_CUR] = s + duration + tail
    si[_IN_TRAIN] = 0
    return s


@njit(cache=True)
def _check(geometry, pim_timing, work, timing):
    if (geometry.shape[0] < N_GEOMETRY or pim_timing.shape[0] < N_PIM_TIMING
            or work.shape[0] < N_WORK or timing.shape[0] < N_TIMING):
        raise ValueError("PIM kernel: an input array is shorter than its index constants")
    if geometry[G_BANKS] < 1 or geometry[G_BANKS_PER_UNIT] < 1:
        raise ValueError("PIM kernel: banks and banks per unit must be at least 1")
    if geometry[G_BANKS] % geometry[G_BANKS_PER_UNIT] != 0:
        raise ValueError("PIM kernel: banks per unit must divide the banks of a channel")
    if geometry[G_BURST] < 1 or geometry[G_ROW] < geometry[G_BURST]:
        raise ValueError("PIM kernel: a burst must be >= 1 byte and a row hold >= 1 burst")
    if geometry[G_ACCUMULATORS] < 1:
        raise ValueError("PIM kernel: a unit needs at least one accumulator")
    if geometry[G_ACT_EXEMPT] != 0 and geometry[G_ACT_EXEMPT] != 1:
        raise ValueError("PIM kernel: G_ACT_EXEMPT must be 0 or 1")
    for i in range(N_TIMING):
        if not (np.isfinite(timing[i]) and timing[i] >= 0.0):
            raise ValueError("PIM kernel: DRAM timings must be finite and >= 0")
    for i in range(N_PIM_TIMING):
        if not (np.isfinite(pim_timing[i]) and pim_timing[i] >= 0.0):
            raise ValueError("PIM kernel: PIM timings must be finite and >= 0")
    if not pim_timing[P_COLUMN] > 0.0:
        raise ValueError("PIM kernel: P_COLUMN must be above 0")
    if timing[T_REFI] > 0.0 and not timing[T_RFC] < timing[T_REFI]:
        raise ValueError("DRAM timing: tRFC must be below tREFI, or the channel only refreshes")
    for i in range(N_WORK):
        if work[i] < 0:
            raise ValueError("PIM kernel: work entries must be >= 0")
    if (work[W_PASSES] > 0 and work[W_ROWS] > 0 and work[W_K_BYTES] > 0
            and work[W_CHUNK_BYTES] < 1):
        raise ValueError("PIM kernel: W_CHUNK_BYTES must be >= 1 when there is work")


@njit(cache=True)
def simulate(geometry, pim_timing, work, timing):
    """Time one channel's all-bank PIM program (see the module docstring).

    Parameters
    ----------
    geometry : ndarray of int64
        Indexed by the ``G_*`` constants.
    pim_timing : ndarray of float64
        Seconds, indexed by the ``P_*`` constants.
    work : ndarray of int64
        One unit's work, indexed by the ``W_*`` constants.
    timing : ndarray of float64
        The DRAM timing array of :mod:`npusim.kernels.dram` (its ``T_*`` indices);
        ``timing[T_REFI] <= 0`` turns refresh off.

    Returns
    -------
    stats : ndarray of float64
        Indexed by the ``S_*`` constants.

    Examples
    --------
    One 1 KiB row per bank, two banks per unit (HBM2-PIM-like, ``pim.md`` sec. 3): the all-bank
    ACT at 0, 64 columns 4 ns apart from tRCD = 14 ns; 14 + 64 x 4 = 270 ns.

    >>> from npusim.kernels.dram import T_RCD
    >>> g = np.array([16, 2, 32, 1024, 8, 1], dtype=np.int64)
    >>> p = np.array([4e-9, 0.0, 0.0, 0.0])
    >>> w = np.array([1, 2048, 2048, 0, 0, 1, 0], dtype=np.int64)
    >>> t = np.zeros(N_TIMING); t[T_RCD] = 14e-9
    >>> s = simulate(g, p, w, t)
    >>> round(float(s[S_TIME]) * 1e9, 6), s[[S_COLUMNS, S_ACTIVATIONS, S_ROW_SWITCHES]].tolist()
    (270.0, [64.0, 16.0, 1.0])
    """
    _check(geometry, pim_timing, work, timing)
    n_bank = geometry[G_BANKS]
    bpu = geometry[G_BANKS_PER_UNIT]
    burst = geometry[G_BURST]
    span = geometry[G_ROW] * bpu
    acc = geometry[G_ACCUMULATORS]
    exempt = geometry[G_ACT_EXEMPT] == 1
    units = n_bank // bpu
    p_col = pim_timing[P_COLUMN]
    p_mode = pim_timing[P_MODE]
    rows = work[W_ROWS]
    kb = work[W_K_BYTES]
    chunk = work[W_CHUNK_BYTES]
    chunk_in = work[W_CHUNK_INPUT]
    res = work[W_RESULT_BYTES]
    wb = work[W_WRITEBACK]

    stats = np.zeros(N_STATS)
    st = np.zeros(_NF)
    si = np.zeros(_NI, dtype=np.int64)
    faw = np.full(4, _NEVER)
    bank_act = np.full(n_bank, _NEVER)
    st[_CUR] = p_mode
    st[_MAY_ACT] = p_mode
    st[_REF_END] = _NEVER
    st[_PRE_READY] = _NEVER
    st[_ROW_READY] = _NEVER
    st[_LAST_ACT] = _NEVER
    st[_LAST_COL] = _NEVER
    st[_DUE] = timing[T_REF0] if timing[T_REFI] > 0.0 else np.inf
    si[_OPEN_ROW] = -1
    turnaround = timing[T_WL] + timing[T_WTR_L]

    for _ in range(work[W_PASSES]):
        ptr = 0
        if rows > 0 and kb > 0:
            for g0 in range(0, rows, acc):
                rows_g = min(acc, rows - g0)
                for k0 in range(0, kb, chunk):
                    cb = min(chunk, kb - k0)
                    nw = _cdiv(chunk_in * cb, chunk * burst)
                    if nw > 0:
                        d = nw * pim_timing[P_WRITE_BURST]
                        _train(st[_CUR], d, turnaround, st, si, stats, timing)
                        stats[S_WRITE_BURSTS] += nw
                        stats[S_BROADCAST_S] += d + turnaround
                    ptr = _columns(_cdiv(rows_g * cb, burst), ptr, False, span, burst, st, si,
                                   faw, bank_act, exempt, stats, timing, p_col)
                nr = _cdiv(units * rows_g * res, burst)
                if nr > 0:
                    s0 = max(st[_CUR], st[_LAST_COL] + timing[T_CL])
                    stats[S_READOUT_S] += s0 - st[_CUR]
                    d = nr * pim_timing[P_READ_BURST]
                    _train(s0, d, 0.0, st, si, stats, timing)
                    stats[S_READ_BURSTS] += nr
                    stats[S_READOUT_S] += d
        if wb > 0:
            ptr = _cdiv(ptr, span) * span
            _columns(_cdiv(wb, burst), ptr, True, span, burst, st, si, faw, bank_act, exempt,
                     stats, timing, p_col)
    stats[S_MODE_SWITCHES] = 2.0
    stats[S_STREAM_S] = stats[S_COLUMNS] * p_col
    stats[S_TIME] = st[_CUR] + p_mode
    return stats


# ----------------------------------------------------------------------------- the twin
class _Banks:
    """The banks of one channel, opened and closed together for the units."""

    def __init__(self, n_banks: int, exempt: bool, mode_end: float) -> None:
        self.row = -1                  # the units' current row
        self.open = False              # is that row open in every bank?
        self.exempt = exempt
        self.n_banks = n_banks
        self.bank_acts = [_NEVER] * n_banks   # each bank's last ACT
        self.acts: list[float] = []           # every bank ACT of the channel, in order
        self.all_bank_act = _NEVER            # last all-bank ACT (exempt devices)
        self.may_precharge = _NEVER
        self.columns_from = _NEVER            # tRCD after the last bank's ACT
        self.may_activate = mode_end          # after the switch into PIM mode, or a refresh

    def first_act(self, ready: float, t: dict) -> float:
        if self.exempt:
            return max(ready, self.all_bank_act + t["tRC"])
        last = self.acts[-1] if self.acts else _NEVER
        fourth_last = self.acts[-4] if len(self.acts) >= 4 else _NEVER
        return max(ready, last + t["tRRD_S"], fourth_last + t["tFAW"],
                   self.bank_acts[0] + t["tRC"])

    def activate(self, ready: float, t: dict) -> float:
        """Open the row in every bank; the last bank's ACT time."""
        if self.exempt:
            act = max(ready, self.all_bank_act + t["tRC"])
            self.all_bank_act = act
        else:
            for i in range(self.n_banks):
                last = self.acts[-1] if self.acts else _NEVER
                fourth_last = self.acts[-4] if len(self.acts) >= 4 else _NEVER
                act = max(ready, last + t["tRRD_S"], fourth_last + t["tFAW"],
                          self.bank_acts[i] + t["tRC"])
                self.bank_acts[i] = act
                self.acts.append(act)
        self.columns_from = act + t["tRCD"]
        self.may_precharge = act + t["tRAS"]
        self.open = True
        return act


class _Channel:
    """The command stream of one channel in PIM mode, with its refresh schedule."""

    def __init__(self, banks: _Banks, t: dict, p_col: float, mode_end: float) -> None:
        self.banks = banks
        self.t = t
        self.p_col = p_col
        self.cursor = mode_end       # earliest start of the next command
        self.train_start = 0.0
        self.train_len = 0
        self.in_train = False
        self.last_column = _NEVER
        self.due = t["tREF0"] if t["tREFI"] > 0 else math.inf
        self.refresh_end = _NEVER
        self.count = {name: 0.0 for name in STATS_NAMES}

    def refresh(self, first: float) -> None:
        """All-bank refresh before a command that would start at ``first``."""
        t = self.t
        start = max(self.due, self.cursor, self.refresh_end)
        if self.banks.open:
            start = max(start, max(self.cursor, self.banks.may_precharge) + t["tRP"])
        if start == self.due:          # on its tick: idle refreshes, each on its own tick
            n = float(math.floor((first - start) / t["tREFI"])) + 1.0
            end = start + (n - 1.0) * t["tREFI"] + t["tRFC"]
        else:                          # postponed: those owed run back to back
            n = float(math.floor((start - self.due) / t["tREFI"])) + 1.0
            end = start + n * t["tRFC"]
        self.due += n * t["tREFI"]
        self.refresh_end = end
        self.banks.may_activate = max(self.banks.may_activate, end)
        self.banks.open = False
        self.count["refreshes"] += n

    def column(self, row: int, write: bool) -> None:
        t, banks = self.t, self.banks
        switch = row != banks.row
        refreshed = False
        while True:
            if banks.open and not switch:
                first = max(self.cursor, banks.columns_from)
            elif banks.open:
                first = max(self.cursor, banks.may_precharge)
            else:
                first = banks.first_act(max(self.cursor, banks.may_activate), t)
            if first < self.due:
                break
            self.refresh(first)
            refreshed = True
        if switch or not banks.open:
            if banks.open:
                ready = max(self.cursor, banks.may_precharge) + t["tRP"]
            else:
                ready = max(self.cursor, banks.may_activate)
            banks.activate(ready, t)
            self.count["activations"] += banks.n_banks
            if switch:
                banks.row = row
                self.count["row_switches"] += 1
        before = self.cursor
        col = max(before, banks.columns_from)
        if self.in_train and col == before:
            self.train_len += 1
        else:
            self.train_start, self.train_len = col, 1
        self.in_train = True
        self.cursor = self.train_start + self.train_len * self.p_col
        self.last_column = col
        if write:
            recover = col + t["tWL"] + t["tBURST"] + t["tWR"]
        else:
            recover = col + t["tRTP"]
        banks.may_precharge = max(banks.may_precharge, recover)
        self.count["columns"] += 1
        if switch and not refreshed:
            self.count["row_s"] += col - before
        else:
            self.count["refresh_s"] += col - before

    def train(self, earliest: float, duration: float, tail: float) -> None:
        start = earliest
        while start >= self.due:
            self.refresh(start)
            start = max(earliest, self.refresh_end)
        self.count["refresh_s"] += start - earliest
        self.cursor = start + duration + tail
        self.in_train = False


def simulate_ref(geometry, pim_timing, work, timing):
    """Pure-Python twin of :func:`simulate`: same arguments, same results."""
    getattr(_check, "py_func", _check)(np.asarray(geometry), np.asarray(pim_timing),
                                        np.asarray(work), np.asarray(timing))
    t = {name: float(timing[i]) for i, name in enumerate(TIMING_NAMES)}
    n_banks, per_unit, burst, row_bytes, accumulators, exempt = (int(x) for x in geometry[:6])
    p_col, p_mode, p_write, p_read = (float(x) for x in pim_timing[:4])
    rows, k_bytes, chunk, chunk_input, result_bytes, passes, writeback = (int(x)
                                                                          for x in work[:7])
    units = n_banks // per_unit
    span = row_bytes * per_unit            # bytes of a unit under one all-bank ACT
    ch = _Channel(_Banks(n_banks, exempt == 1, p_mode), t, p_col, p_mode)
    count = ch.count
    turnaround = t["tWL"] + t["tWTR_L"]

    def cdiv(a, b):
        return -(-a // b)

    for _ in range(passes):
        ptr = 0
        groups = cdiv(rows, accumulators) if k_bytes > 0 else 0
        for group in range(groups):
            rows_g = min(accumulators, rows - group * accumulators)
            for c in range(cdiv(k_bytes, chunk)):
                cb = min(chunk, k_bytes - c * chunk)
                writes = cdiv(chunk_input * cb, chunk * burst)
                if writes > 0:
                    ch.train(ch.cursor, writes * p_write, turnaround)
                    count["write_bursts"] += writes
                    count["broadcast_s"] += writes * p_write + turnaround
                for _col in range(cdiv(rows_g * cb, burst)):
                    ch.column(ptr // span, False)
                    ptr += burst
            reads = cdiv(units * rows_g * result_bytes, burst)
            if reads > 0:
                earliest = max(ch.cursor, ch.last_column + t["tCL"])
                count["readout_s"] += earliest - ch.cursor
                ch.train(earliest, reads * p_read, 0.0)
                count["read_bursts"] += reads
                count["readout_s"] += reads * p_read
        if writeback > 0:
            ptr = cdiv(ptr, span) * span   # the results are a tensor of their own
            for _col in range(cdiv(writeback, burst)):
                ch.column(ptr // span, True)
                ptr += burst
    count["mode_switches"] = 2.0
    count["stream_s"] = count["columns"] * p_col
    count["time"] = ch.cursor + p_mode
    return np.array([count[name] for name in STATS_NAMES], dtype=np.float64)
