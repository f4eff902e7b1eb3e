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
  applies to one weight burst); the weight address restarts at 0 each pass. With
  ``W_ROWS`` or ``W_K_BYTES`` 0 there is no GEMV part at all (no broadcast, no read-out).
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


@njit(cache=True)
def _cdiv(a, b):
    return -(-a // b)


@njit(cache=True)
def _refresh(first, due, cur, ref_end, banks_open, pre_ready, t_rp, t_refi, t_rfc):
    """Refreshes before a command whose first part would start at ``first`` (>= ``due``).

    Returns ``(next due, end of the refreshes, how many)``.
    """
    start = max(due, cur, ref_end)
    if banks_open:
        start = max(start, max(cur, pre_ready) + t_rp)
    if start == due:
        n = np.floor((first - start) / t_refi) + 1.0
        end = start + (n - 1.0) * t_refi + t_rfc
    else:
        n = np.floor((start - due) / t_refi) + 1.0
        end = start + n * t_rfc
    return due + n * t_refi, end, n


@njit(cache=True)
def _check(geometry, pim_timing, work, timing):
    """Refuse inputs that make no sense or could keep the kernel from finishing."""
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
    burst = geometry[G_BURST]
    span = geometry[G_ROW] * geometry[G_BANKS_PER_UNIT]
    acc = geometry[G_ACCUMULATORS]
    exempt = geometry[G_ACT_EXEMPT] == 1
    units = n_bank // geometry[G_BANKS_PER_UNIT]
    p_col = pim_timing[P_COLUMN]
    p_mode = pim_timing[P_MODE]
    rows = work[W_ROWS]
    kb = work[W_K_BYTES]
    chunk = work[W_CHUNK_BYTES]
    chunk_in = work[W_CHUNK_INPUT]
    res = work[W_RESULT_BYTES]
    wb = work[W_WRITEBACK]
    t_rcd = timing[T_RCD]
    t_rp = timing[T_RP]
    t_ras = timing[T_RAS]
    t_rc = timing[T_RC]
    t_rrd = timing[T_RRD_S]
    t_faw = timing[T_FAW]
    t_refi = timing[T_REFI]
    t_rfc = timing[T_RFC]
    turnaround = timing[T_WL] + timing[T_WTR_L]

    # The channel's state, in local variables (Numba keeps them in registers).
    cur = p_mode                 # earliest start of the next command of the stream
    train_start = 0.0            # first column of the current column train
    train_len = 0.0              # columns in it (a float: it multiplies P_COLUMN)
    in_train = False             # was the last command a column?
    due = timing[T_REF0] if t_refi > 0.0 else np.inf
    ref_end = _NEVER
    pre_ready = _NEVER           # earliest all-bank PRE of the open row (before the floor)
    row_ready = _NEVER           # earliest column in the open row (last ACT + tRCD)
    may_act = p_mode             # earliest ACT of closed banks
    last_act = _NEVER            # last bank ACT (tRRD), or last all-bank ACT (exempt)
    last_col = _NEVER
    open_row = -1
    banks_open = False
    faw = np.full(4, _NEVER)
    faw_pos = 0
    bank_act = np.full(n_bank, _NEVER)
    n_bank_f = float(n_bank)
    columns = 0.0
    activations = 0.0
    switches = 0.0
    refreshes = 0.0
    write_bursts = 0.0
    read_bursts = 0.0
    broadcast_s = 0.0
    readout_s = 0.0
    row_s = 0.0
    refresh_s = 0.0

    mac = work[W_PASSES] > 0 and rows > 0 and kb > 0
    groups = _cdiv(rows, acc) if mac else 0
    chunks = _cdiv(kb, chunk) if mac else 0
    segments = groups * chunks + (1 if wb > 0 else 0)
    for _ in range(work[W_PASSES]):
        ptr = 0
        for seg in range(segments):
            # A segment: [broadcast], columns, [read-out] (a GEMV chunk), or the write-back.
            if seg < groups * chunks:
                g = seg // chunks
                k0 = (seg % chunks) * chunk
                rows_g = min(acc, rows - g * acc)
                cb = min(chunk, kb - k0)
                n_write = _cdiv(chunk_in * cb, chunk * burst)
                n_col = _cdiv(rows_g * cb, burst)
                n_read = _cdiv(units * rows_g * res, burst) if seg % chunks == chunks - 1 else 0
                write = False
            else:
                n_write = 0
                n_read = 0
                ptr = _cdiv(ptr, span) * span
                n_col = _cdiv(wb, burst)
                write = True
            for step in range(3):         # 0: broadcast, 1: columns, 2: read-out
                if step == 1:
                    # ---- columns, a row at a time
                    left = n_col
                    while left > 0:
                        row = ptr // span
                        m = min(left, _cdiv((row + 1) * span - ptr, burst))
                        issued = 0
                        while issued < m:
                            # One column with everything it may need: row switch, refresh.
                            switch = row != open_row
                            refreshed = False
                            while True:
                                if banks_open and not switch:
                                    first = max(cur, row_ready)
                                elif banks_open:
                                    first = max(cur, pre_ready)
                                elif exempt:
                                    first = max(max(cur, may_act), last_act + t_rc)
                                else:
                                    first = max(max(cur, may_act), last_act + t_rrd,
                                                faw[faw_pos] + t_faw, bank_act[0] + t_rc)
                                if first < due:
                                    break
                                due, ref_end, n = _refresh(first, due, cur, ref_end, banks_open,
                                                           pre_ready, t_rp, t_refi, t_rfc)
                                may_act = max(may_act, ref_end)
                                banks_open = False
                                refreshes += n
                                refreshed = True
                            if switch or not banks_open:
                                if banks_open:
                                    ready = max(cur, pre_ready) + t_rp
                                else:
                                    ready = max(cur, may_act)
                                if exempt:
                                    a = max(ready, last_act + t_rc)
                                    last_act = a
                                else:
                                    a = ready
                                    for b in range(n_bank):
                                        a = max(ready, last_act + t_rrd, faw[faw_pos] + t_faw,
                                                bank_act[b] + t_rc)
                                        bank_act[b] = a
                                        last_act = a
                                        faw[faw_pos] = a
                                        faw_pos = (faw_pos + 1) % 4
                                activations += n_bank_f
                                row_ready = a + t_rcd
                                pre_ready = a + t_ras
                                banks_open = True
                                if switch:
                                    open_row = row
                                    switches += 1.0
                            c = max(cur, row_ready)
                            if in_train and c == cur:
                                train_len += 1.0
                            else:
                                train_start = c
                                train_len = 1.0
                            in_train = True
                            if switch and not refreshed:
                                row_s += c - cur
                            else:
                                refresh_s += c - cur
                            cur = train_start + train_len * p_col
                            last_col = c
                            if write:
                                pre_ready = max(pre_ready, c + timing[T_WL] + timing[T_BURST]
                                                + timing[T_WR])
                            else:
                                pre_ready = max(pre_ready, c + timing[T_RTP])
                            columns += 1.0
                            issued += 1
                            # The rest of the row continues the train (the row is open and
                            # the columns follow back to back) up to the first at or after
                            # the refresh due time, found in O(1).
                            rest = m - issued
                            if rest > 0:
                                j = rest
                                if train_start + (train_len + (rest - 1)) * p_col >= due:
                                    x = (due - train_start) / p_col - train_len
                                    if x <= 0.0:
                                        j = 0
                                    elif x >= rest - 1:
                                        j = rest - 1
                                    else:
                                        j = int(np.ceil(x))
                                    while (j > 0 and train_start + (train_len + (j - 1)) * p_col
                                           >= due):
                                        j -= 1
                                    while j < rest and train_start + (train_len + j) * p_col < due:
                                        j += 1
                                if j > 0:
                                    last_col = train_start + (train_len + (j - 1)) * p_col
                                    train_len += j
                                    cur = train_start + train_len * p_col
                                    if write:
                                        pre_ready = max(pre_ready, last_col + timing[T_WL]
                                                        + timing[T_BURST] + timing[T_WR])
                                    else:
                                        pre_ready = max(pre_ready, last_col + timing[T_RTP])
                                    columns += j
                                    issued += j
                        ptr += m * burst
                        left -= m
                    continue
                # ---- a train on the external bus: broadcast (step 0) or read-out (step 2)
                if step == 0:
                    if n_write == 0:
                        continue
                    s0 = cur
                    duration = n_write * pim_timing[P_WRITE_BURST]
                    tail = turnaround
                    write_bursts += n_write
                    broadcast_s += duration + tail
                else:
                    if n_read == 0:
                        continue
                    s0 = max(cur, last_col + timing[T_CL])
                    readout_s += s0 - cur
                    duration = n_read * pim_timing[P_READ_BURST]
                    tail = 0.0
                    read_bursts += n_read
                s = s0
                while s >= due:
                    due, ref_end, n = _refresh(s, due, cur, ref_end, banks_open, pre_ready, t_rp,
                                               t_refi, t_rfc)
                    may_act = max(may_act, ref_end)
                    banks_open = False
                    refreshes += n
                    s = max(s0, ref_end)
                refresh_s += s - s0
                if step == 2:
                    readout_s += duration
                cur = s + duration + tail
                in_train = False

    stats = np.zeros(N_STATS)
    stats[S_TIME] = cur + p_mode
    stats[S_COLUMNS] = columns
    stats[S_ACTIVATIONS] = activations
    stats[S_ROW_SWITCHES] = switches
    stats[S_REFRESHES] = refreshes
    stats[S_WRITE_BURSTS] = write_bursts
    stats[S_READ_BURSTS] = read_bursts
    stats[S_MODE_SWITCHES] = 2.0
    stats[S_STREAM_S] = columns * p_col
    stats[S_BROADCAST_S] = broadcast_s
    stats[S_READOUT_S] = readout_s
    stats[S_ROW_S] = row_s
    stats[S_REFRESH_S] = refresh_s
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
