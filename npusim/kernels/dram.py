"""Bank-level DRAM timing: a stream of requests through channels, bank groups, banks and rows.

The model, in the terms of a DRAM datasheet:

* **Address map.** A byte address is cut into bursts (``burst_bytes`` each); the burst index is
  split into mixed-radix digits, least significant first, each digit feeding one field
  (column, channel, bank group, bank or row). What is left after the last digit is added to the
  row. :func:`address_map` builds the usual map: bank groups in the lowest digit (so a stream
  alternates bank groups and is paced by tCCD_S, not tCCD_L), then the rest of the channel
  interleave unit, then channels, then the remaining columns of a row, then banks, then rows.
* **Controller.** One in-order queue per channel, ``queue_depth`` bursts deep, open-page
  policy. Column commands (RD/WR) issue strictly in arrival order; row commands (PRE, ACT) of a
  queued burst may issue early, as soon as the bank and the activation limits allow and the
  burst is in the queue (it enters when the burst ``queue_depth`` places ahead of it on the
  same channel has issued its column command). This is FCFS with row-command look-ahead; no
  FR-FCFS reordering of column commands.
* **Timing constraints honoured.** ACT to column tRCD; PRE to ACT tRP; ACT to PRE tRAS;
  ACT to ACT in one bank tRC; ACT to ACT in the channel tRRD_S (another bank group) and tRRD_L
  (same bank group); at most four ACTs in any tFAW window; column to column
  ``max(tBURST, tCCD_S)`` and, in the same bank group, tCCD_L; read to write
  ``tCL + tBURST + tRTW - tWL``; write to read ``tWL + tBURST + tWTR_S`` (tWTR_L in the same
  bank group); read to PRE tRTP; write to PRE ``tWL + tBURST + tWR``.
* **Refresh.** All-bank refresh every tREFI, the first at ``t_ref0``: when the next burst's
  first command would issue at or after the due time, the controller closes every bank
  (tRP after each bank may precharge) and blocks the channel for tRFC. A channel with no
  traffic catches up on missed refreshes when traffic arrives; refreshes that fall while every
  bank is closed are taken in one step (they sit on tREFI ticks), so the work per burst stays
  bounded however slow the channel (a 1 MB/s memory idles for many tREFI between bursts).
  tRFC must be below tREFI (the engine's resolver checks it; the kernel refuses otherwise).
* **Not modelled.** Command-bus conflicts (HBM has separate row and column command buses),
  pseudo-channels and stack IDs beyond what the bank counts say, per-bank refresh, power-down.

All times are float seconds. Every kernel is ``@njit(cache=True)`` on plain arrays; its twin
:func:`simulate_ref` is written with Python objects, the slow, obvious way, and the tests
demand they agree exactly.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# Indices into the ``timing`` array (seconds).
T_BURST = 0
T_CCD_S = 1
T_CCD_L = 2
T_RCD = 3
T_RP = 4
T_RAS = 5
T_RC = 6
T_CL = 7
T_WL = 8
T_RTP = 9
T_WR = 10
T_WTR_S = 11
T_WTR_L = 12
T_RTW = 13
T_RRD_S = 14
T_RRD_L = 15
T_FAW = 16
T_REFI = 17
T_RFC = 18
T_REF0 = 19
N_TIMING = 20
TIMING_NAMES = ("tBURST", "tCCD_S", "tCCD_L", "tRCD", "tRP", "tRAS", "tRC", "tCL", "tWL",
                "tRTP", "tWR", "tWTR_S", "tWTR_L", "tRTW", "tRRD_S", "tRRD_L", "tFAW", "tREFI",
                "tRFC", "tREF0")
"""Names of the timing array's entries, in index order. ``tREFI <= 0`` turns refresh off."""

# Indices into the ``geometry`` array (int64).
G_CHANNELS = 0
G_BANK_GROUPS = 1
G_BANKS_PER_GROUP = 2
G_BURST_BYTES = 3
N_GEOMETRY = 4

# Address-map field codes.
F_COLUMN = 0
F_CHANNEL = 1
F_BANK_GROUP = 2
F_BANK = 3
F_ROW = 4

# Indices into the stats array :func:`simulate` returns.
S_TIME = 0
"""Seconds from 0 until the last burst's data has left the bus."""
S_BYTES = 1
"""Bytes requested (a partial burst moves a whole burst but counts only what was asked)."""
S_BURSTS = 2
S_ACTIVATIONS = 3
S_ROW_HITS = 4
S_REFRESHES = 5
N_STATS = 6

_NEVER = -1.0e18


def address_map(channels: int, bank_groups: int, banks_per_group: int, burst_bytes: int,
                row_bytes: int, interleave_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """The mixed-radix address map described in the module docstring.

    Parameters
    ----------
    channels, bank_groups, banks_per_group : int
        Counts per the simulated memory.
    burst_bytes, row_bytes, interleave_bytes : int
        Bytes of one burst, of one row of one bank, and of the unit that goes to one channel
        before the next channel takes over.

    Returns
    -------
    fields, sizes : ndarray of int64
        Digit ``i`` (least significant first) has ``sizes[i]`` values and feeds field
        ``fields[i]`` (:data:`F_COLUMN` ...). The row takes whatever is left.

    Examples
    --------
    >>> f, s = address_map(2, 4, 4, 64, 2048, 256)
    >>> f.tolist(), s.tolist()
    ([2, 0, 1, 0, 3], [4, 1, 2, 32, 4])
    """
    per_unit = max(1, interleave_bytes // burst_bytes)
    cols = max(1, row_bytes // burst_bytes)
    bg_low = bank_groups if per_unit % bank_groups == 0 else 1
    col_low = max(1, per_unit // bg_low)
    col_high = max(1, cols // col_low)
    fields = [F_BANK_GROUP, F_COLUMN, F_CHANNEL, F_COLUMN, F_BANK]
    sizes = [bg_low, col_low, channels, col_high, banks_per_group]
    if bg_low == 1:
        fields.append(F_BANK_GROUP)
        sizes.append(bank_groups)
    return np.array(fields, dtype=np.int64), np.array(sizes, dtype=np.int64)


@njit(cache=True)
def _decode(q, fields, sizes, out, mult):
    """Split burst index ``q`` into fields (column, channel, bank group, bank, row)."""
    for f in range(5):
        out[f] = 0
        mult[f] = 1
    for i in range(fields.shape[0]):
        f = fields[i]
        v = q % sizes[i]
        q = q // sizes[i]
        out[f] += v * mult[f]
        mult[f] *= sizes[i]
    out[F_ROW] += q * mult[F_ROW]


@njit(cache=True)
def simulate(addr, nbytes, is_write, geometry, fields, sizes, timing, queue_depth):
    """Time a request stream through the bank-level model (see the module docstring).

    Parameters
    ----------
    addr, nbytes : ndarray of int64
        Byte address and size of each request, in arrival order (all queued at time 0).
    is_write : ndarray of bool
        True for a write.
    geometry : ndarray of int64
        ``[channels, bank_groups, banks_per_group, burst_bytes]``.
    fields, sizes : ndarray of int64
        The address map (:func:`address_map`).
    timing : ndarray of float64
        Seconds, indexed by the ``T_*`` constants; ``timing[T_REFI] <= 0`` disables refresh.
    queue_depth : int
        Bursts per channel queue (>= 1); row commands may run this far ahead.

    Returns
    -------
    stats : ndarray of float64
        Indexed by the ``S_*`` constants.
    busy : ndarray of float64
        Seconds each channel's data bus carried bursts.
    """
    n_ch = geometry[G_CHANNELS]
    n_bg = geometry[G_BANK_GROUPS]
    n_bank = n_bg * geometry[G_BANKS_PER_GROUP]
    bb = geometry[G_BURST_BYTES]
    t_burst = timing[T_BURST]
    refresh = timing[T_REFI] > 0.0
    if refresh and not timing[T_RFC] < timing[T_REFI]:
        raise ValueError("DRAM timing: tRFC must be below tREFI, or the channel only refreshes")
    q_depth = max(1, queue_depth)

    open_row = np.full((n_ch, n_bank), -1, dtype=np.int64)
    act_at = np.full((n_ch, n_bank), _NEVER)
    pre_ready = np.full((n_ch, n_bank), _NEVER)   # earliest PRE of the open row
    act_ready = np.full((n_ch, n_bank), _NEVER)   # earliest ACT of a closed bank
    last_col = np.full(n_ch, _NEVER)
    last_rd = np.full(n_ch, _NEVER)
    last_wr = np.full(n_ch, _NEVER)
    last_col_bg = np.full((n_ch, n_bg), _NEVER)
    last_wr_bg = np.full((n_ch, n_bg), _NEVER)
    last_act = np.full(n_ch, _NEVER)
    last_act_bg = np.full((n_ch, n_bg), _NEVER)
    faw = np.full((n_ch, 4), _NEVER)
    faw_pos = np.zeros(n_ch, dtype=np.int64)
    queue = np.zeros((n_ch, q_depth))
    queue_pos = np.zeros(n_ch, dtype=np.int64)
    next_ref = np.full(n_ch, timing[T_REF0] if refresh else np.inf)
    end = np.zeros(n_ch)
    busy = np.zeros(n_ch)
    stats = np.zeros(N_STATS)
    where = np.zeros(5, dtype=np.int64)
    scratch = np.ones(5, dtype=np.int64)

    for i in range(addr.shape[0]):
        if nbytes[i] <= 0:
            continue
        w = is_write[i]
        lo = addr[i]
        hi = addr[i] + nbytes[i]
        for q in range(lo // bb, (hi - 1) // bb + 1):
            _decode(q, fields, sizes, where, scratch)
            c = where[F_CHANNEL]
            g = where[F_BANK_GROUP]
            b = g * geometry[G_BANKS_PER_GROUP] + where[F_BANK]
            r = where[F_ROW]
            arrive = queue[c, queue_pos[c] % q_depth]

            # Column-command floor set by earlier column commands on this channel.
            col_min = max(arrive, last_col[c] + max(t_burst, timing[T_CCD_S]),
                          last_col_bg[c, g] + timing[T_CCD_L])
            if w:
                col_min = max(col_min, last_rd[c] + timing[T_CL] + t_burst + timing[T_RTW]
                              - timing[T_WL])
            else:
                col_min = max(col_min, last_wr[c] + timing[T_WL] + t_burst + timing[T_WTR_S],
                              last_wr_bg[c, g] + timing[T_WL] + t_burst + timing[T_WTR_L])

            while True:
                hit = open_row[c, b] == r
                t_pre = _NEVER
                t_act = _NEVER
                if hit:
                    col = max(col_min, act_at[c, b] + timing[T_RCD])
                    first = col
                else:
                    if open_row[c, b] >= 0:
                        t_pre = max(arrive, pre_ready[c, b])
                        ready = t_pre + timing[T_RP]
                        first = t_pre
                    else:
                        ready = max(arrive, act_ready[c, b])
                    t_act = max(ready, act_at[c, b] + timing[T_RC], last_act[c] + timing[T_RRD_S],
                                last_act_bg[c, g] + timing[T_RRD_L],
                                faw[c, faw_pos[c]] + timing[T_FAW])
                    if open_row[c, b] < 0:
                        first = t_act
                    col = max(col_min, t_act + timing[T_RCD])
                if first < next_ref[c]:
                    break
                # Refresh is due before this burst's first command: close all banks, block.
                start = next_ref[c]
                any_open = False
                for k in range(n_bank):
                    if open_row[c, k] >= 0:
                        any_open = True
                        start = max(start, pre_ready[c, k] + timing[T_RP])
                # With every bank closed, the refreshes due before `first` fall exactly on
                # tREFI ticks: take them in one step, so the work does not grow with the idle
                # time (a slow channel would otherwise loop once per tREFI of its life).
                n_ref = 1.0
                if not any_open:
                    n_ref = np.floor((first - start) / timing[T_REFI]) + 1.0
                    start += (n_ref - 1.0) * timing[T_REFI]
                done = start + timing[T_RFC]
                for k in range(n_bank):
                    open_row[c, k] = -1
                    act_ready[c, k] = max(act_ready[c, k], done)
                next_ref[c] += n_ref * timing[T_REFI]
                stats[S_REFRESHES] += n_ref

            if not hit:
                open_row[c, b] = r
                act_at[c, b] = t_act
                pre_ready[c, b] = t_act + timing[T_RAS]
                last_act[c] = t_act
                last_act_bg[c, g] = t_act
                faw[c, faw_pos[c]] = t_act
                faw_pos[c] = (faw_pos[c] + 1) % 4
                stats[S_ACTIVATIONS] += 1.0
            else:
                stats[S_ROW_HITS] += 1.0
            last_col[c] = col
            last_col_bg[c, g] = col
            if w:
                last_wr[c] = col
                last_wr_bg[c, g] = col
                pre_ready[c, b] = max(pre_ready[c, b],
                                      col + timing[T_WL] + t_burst + timing[T_WR])
                data_end = col + timing[T_WL] + t_burst
            else:
                last_rd[c] = col
                pre_ready[c, b] = max(pre_ready[c, b], col + timing[T_RTP])
                data_end = col + timing[T_CL] + t_burst
            end[c] = max(end[c], data_end)
            busy[c] += t_burst
            queue[c, queue_pos[c] % q_depth] = col
            queue_pos[c] += 1
            stats[S_BURSTS] += 1.0
            stats[S_BYTES] += min(hi, (q + 1) * bb) - max(lo, q * bb)
    stats[S_TIME] = end.max() if n_ch > 0 else 0.0
    return stats, busy


# ----------------------------------------------------------------------------- the twin
class _Bank:
    """One bank: the open row (None when precharged) and when it may next change."""

    def __init__(self) -> None:
        self.row = None
        self.activated = _NEVER       # time of the last ACT
        self.may_precharge = _NEVER   # tRAS after ACT, tRTP after RD, write recovery after WR
        self.may_activate = _NEVER    # after a refresh


class _Channel:
    """One channel: its banks, its command history and its in-order queue."""

    def __init__(self, n_groups: int, per_group: int, queue_depth: int) -> None:
        self.banks = [[_Bank() for _ in range(per_group)] for _ in range(n_groups)]
        self.last_column = _NEVER
        self.last_read = _NEVER
        self.last_write = _NEVER
        self.last_column_in_group = [_NEVER] * n_groups
        self.last_write_in_group = [_NEVER] * n_groups
        self.activations: list[float] = []           # every ACT time, in order
        self.activations_in_group = [_NEVER] * n_groups
        self.issued: list[float] = []                 # column-command times, in order
        self.queue_depth = queue_depth
        self.next_refresh = np.inf
        self.end = 0.0
        self.busy = 0.0

    def arrival(self) -> float:
        """A burst enters the queue when the one ``queue_depth`` places ahead has issued."""
        n = len(self.issued)
        return self.issued[n - self.queue_depth] if n >= self.queue_depth else 0.0


def _fields_of(q: int, fields, sizes) -> dict[int, int]:
    value = {f: 0 for f in range(5)}
    weight = {f: 1 for f in range(5)}
    for f, size in zip(fields, sizes):
        value[int(f)] += (q % int(size)) * weight[int(f)]
        weight[int(f)] *= int(size)
        q //= int(size)
    value[F_ROW] += q * weight[F_ROW]
    return value


def simulate_ref(addr, nbytes, is_write, geometry, fields, sizes, timing, queue_depth):
    """Pure-Python twin of :func:`simulate`: same arguments, same results."""
    t = {name: float(timing[i]) for i, name in enumerate(TIMING_NAMES)}
    n_ch, n_bg, per_bg, bb = (int(x) for x in geometry[:4])
    channels = [_Channel(n_bg, per_bg, max(1, int(queue_depth))) for _ in range(n_ch)]
    if t["tREFI"] > 0 and not t["tRFC"] < t["tREFI"]:
        raise ValueError("DRAM timing: tRFC must be below tREFI, or the channel only refreshes")
    if t["tREFI"] > 0:
        for ch in channels:
            ch.next_refresh = t["tREF0"]
    bursts = acts = hits = refreshes = 0
    moved = 0
    for a, n, w in zip(addr, nbytes, is_write):
        a, n, w = int(a), int(n), bool(w)
        for q in range(a // bb, (a + n - 1) // bb + 1) if n > 0 else ():
            f = _fields_of(q, fields, sizes)
            ch = channels[f[F_CHANNEL]]
            g = f[F_BANK_GROUP]
            bank = ch.banks[g][f[F_BANK]]
            row = f[F_ROW]
            arrive = ch.arrival()

            # When may this column command go, given the columns before it?
            col_floor = [arrive, ch.last_column + max(t["tBURST"], t["tCCD_S"]),
                         ch.last_column_in_group[g] + t["tCCD_L"]]
            if w:
                col_floor.append(ch.last_read + t["tCL"] + t["tBURST"] + t["tRTW"] - t["tWL"])
            else:
                col_floor.append(ch.last_write + t["tWL"] + t["tBURST"] + t["tWTR_S"])
                col_floor.append(ch.last_write_in_group[g] + t["tWL"] + t["tBURST"]
                                 + t["tWTR_L"])
            while True:
                hit = bank.row == row
                if hit:
                    col = max(max(col_floor), bank.activated + t["tRCD"])
                    first = col
                else:
                    if bank.row is not None:           # row conflict: precharge first
                        pre = max(arrive, bank.may_precharge)
                        ready, first = pre + t["tRP"], pre
                    else:                              # bank closed: activate directly
                        ready = max(arrive, bank.may_activate)
                    fourth_last = ch.activations[-4] if len(ch.activations) >= 4 else _NEVER
                    last = ch.activations[-1] if ch.activations else _NEVER
                    act = max(ready, bank.activated + t["tRC"], last + t["tRRD_S"],
                              ch.activations_in_group[g] + t["tRRD_L"], fourth_last + t["tFAW"])
                    if bank.row is None:
                        first = act
                    col = max(max(col_floor), act + t["tRCD"])
                if first < ch.next_refresh:
                    break
                # All-bank refresh: wait until every open bank may precharge, then tRP, tRFC.
                start = ch.next_refresh
                open_banks = [b for group in ch.banks for b in group if b.row is not None]
                for other in open_banks:
                    start = max(start, other.may_precharge + t["tRP"])
                # All banks closed: every refresh due before `first` is on a tREFI tick;
                # `due` of them, the last at start + (due - 1) tREFI.
                due = 1.0
                if not open_banks:
                    due = float(np.floor((first - start) / t["tREFI"])) + 1.0
                    start += (due - 1.0) * t["tREFI"]
                for group in ch.banks:
                    for other in group:
                        other.row = None
                        other.may_activate = max(other.may_activate, start + t["tRFC"])
                ch.next_refresh += due * t["tREFI"]
                refreshes += due

            if hit:
                hits += 1
            else:
                bank.row = row
                bank.activated = act
                bank.may_precharge = act + t["tRAS"]
                ch.activations.append(act)
                ch.activations_in_group[g] = act
                acts += 1
            ch.last_column = ch.last_column_in_group[g] = col
            if w:
                ch.last_write = ch.last_write_in_group[g] = col
                bank.may_precharge = max(bank.may_precharge, col + t["tWL"] + t["tBURST"]
                                         + t["tWR"])
                data_end = col + t["tWL"] + t["tBURST"]
            else:
                ch.last_read = col
                bank.may_precharge = max(bank.may_precharge, col + t["tRTP"])
                data_end = col + t["tCL"] + t["tBURST"]
            ch.end = max(ch.end, data_end)
            ch.busy += t["tBURST"]
            ch.issued.append(col)
            bursts += 1
            moved += min(a + n, (q + 1) * bb) - max(a, q * bb)
    stats = np.zeros(N_STATS)
    stats[S_TIME] = max((ch.end for ch in channels), default=0.0)
    stats[S_BYTES] = moved
    stats[S_BURSTS] = bursts
    stats[S_ACTIVATIONS] = acts
    stats[S_ROW_HITS] = hits
    stats[S_REFRESHES] = refreshes
    return stats, np.array([ch.busy for ch in channels])
