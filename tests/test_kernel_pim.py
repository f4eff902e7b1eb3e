"""All-bank PIM timing kernel: by hand from pim.md sec. 3, against its twin, and properties.

Hand-computed cases use the reference's row-overhead arithmetic (``pim.md`` sec. 3, "no overlap
of ACT/PRE with MACs"): a row of ``n`` columns costs ``n * tCCD_L + tRP + tRCD``. Timings not
named are 0 (so tRTP, tRAS and tRC never bind) and refresh is off unless tREFI is given. Every
test also runs with NUMBA_DISABLE_JIT=1, so the cases stay small.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.kernels import dram as kd
from npusim.kernels import pim as kp

NS = 1e-9


def timing(**ns) -> np.ndarray:
    """A DRAM timing array from values in ns (unnamed entries 0, so refresh is off)."""
    t = np.zeros(kd.N_TIMING)
    for name, value in ns.items():
        t[kd.TIMING_NAMES.index(name)] = value * NS
    return t


def geometry(banks=16, per_unit=1, burst=32, row=1024, accumulators=8, exempt=1):
    return np.array([banks, per_unit, burst, row, accumulators, exempt], dtype=np.int64)


def pim_timing(column=4.0, mode=0.0, write=0.0, read=0.0):
    return np.array([column, mode, write, read]) * NS


def work(rows=1, k_bytes=0, chunk=None, chunk_input=0, result=0, passes=1, writeback=0):
    chunk = k_bytes if chunk is None else chunk
    return np.array([rows, k_bytes, chunk, chunk_input, result, passes, writeback],
                    dtype=np.int64)


def both(g, p, w, t):
    """The kernel's stats, checked equal to the twin's."""
    s = kp.simulate(g, p, w, t)
    np.testing.assert_array_equal(s, kp.simulate_ref(g, p, w, t))
    return s


# ---------------------------------------------------------------- hand-computed (pim.md sec. 3)
def stream_rows(g, p, t, n_rows):
    """One unit streaming ``n_rows`` of its rows (one output row, one chunk, nothing else)."""
    span = int(g[kp.G_ROW] * g[kp.G_BANKS_PER_UNIT])
    return both(g, p, work(k_bytes=n_rows * span), t)


def test_hbm2_pim_one_row_per_unit_is_82_percent():
    # 1 KiB row / 32 B = 32 columns x 4 ns = 128 ns; the next row's first column comes
    # tRP 14 + tRCD 14 = 28 ns after the last column's slot: 156 ns per row, 128/156 = 82.05 %.
    # N rows: first ACT at 0, first column at tRCD = 14, so N x 156 - 28 + 14 ns in all.
    g, p, t = geometry(per_unit=1), pim_timing(column=4), timing(tRCD=14, tRP=14)
    s = {n: stream_rows(g, p, t, n) for n in (5, 6)}
    assert s[5][kp.S_TIME] == pytest.approx((5 * 156 - 14) * NS, rel=1e-12)
    per_row = s[6][kp.S_TIME] - s[5][kp.S_TIME]
    assert per_row == pytest.approx(156 * NS, rel=1e-9)
    assert 32 * 4 * NS / per_row == pytest.approx(0.8205, abs=1e-4)
    assert s[5][kp.S_COLUMNS] == 5 * 32 and s[5][kp.S_ROW_SWITCHES] == 5
    assert s[5][kp.S_ACTIVATIONS] == 5 * 16          # every bank counted
    assert s[5][kp.S_ROW_S] == pytest.approx((14 + 4 * 28) * NS, rel=1e-12)


def test_hbm2_pim_two_banks_per_unit_stream_two_rows_per_act():
    # A unit with 2 banks has 2 KiB under one all-bank ACT: 64 columns x 4 ns = 256 ns,
    # + 28 ns: 284 ns per switch, 256/284 = 90.14 %.
    g, p, t = geometry(per_unit=2), pim_timing(column=4), timing(tRCD=14, tRP=14)
    s5, s6 = stream_rows(g, p, t, 5), stream_rows(g, p, t, 6)
    assert s5[kp.S_TIME] == pytest.approx((5 * 284 - 14) * NS, rel=1e-12)
    assert 256 * NS / (s6[kp.S_TIME] - s5[kp.S_TIME]) == pytest.approx(256 / 284, rel=1e-9)
    assert s5[kp.S_COLUMNS] == 5 * 64 and s5[kp.S_ACTIVATIONS] == 5 * 16


def test_lpddr6_pim_row_overhead_is_80_5_percent():
    # 2 KiB row / 32 B = 64 columns x tCCD_L 3.75 ns = 240 ns; tRCDr 18 + tRP 40.1 = 58.1 ns:
    # 298.1 ns per row, 240/298.1 = 80.5 % (pim.md sec. 3, from Ramulator 2.1's LPDDR6 [R1]).
    g = geometry(banks=16, per_unit=1, row=2048)
    p, t = pim_timing(column=3.75), timing(tRCD=18, tRP=40.1)
    s5, s6 = stream_rows(g, p, t, 5), stream_rows(g, p, t, 6)
    assert s5[kp.S_TIME] == pytest.approx((5 * 298.1 - 40.1) * NS, rel=1e-12)
    per_row = s6[kp.S_TIME] - s5[kp.S_TIME]
    assert per_row == pytest.approx(298.1 * NS, rel=1e-9)
    assert 240 * NS / per_row == pytest.approx(0.805, abs=1e-3)


def test_lpddr6_non_exempt_act_train_under_tfaw():
    # 16 bank ACTs, tRRD 3.75, at most 4 per tFAW = 15 ns: banks 0-3 at 0, 3.75, 7.5, 11.25;
    # bank 4 at max(11.25 + 3.75, 0 + 15) = 15; ... bank 15 at 3 x 15 + 3 x 3.75 = 56.25 ns.
    # The columns start tRCD = 18 later, at 74.25 ns; one row of 64 columns ends at
    # 74.25 + 64 x 3.75 = 314.25 ns, against 18 + 240 = 258 ns with an exempt all-bank ACT.
    p, t = pim_timing(column=3.75), timing(tRCD=18, tRP=40.1, tRRD_S=3.75, tFAW=15)
    slow = stream_rows(geometry(banks=16, row=2048, exempt=0), p, t, 1)
    fast = stream_rows(geometry(banks=16, row=2048, exempt=1), p, t, 1)
    assert slow[kp.S_TIME] == pytest.approx(314.25 * NS, rel=1e-12)
    assert slow[kp.S_ROW_S] == pytest.approx(74.25 * NS, rel=1e-12)
    assert fast[kp.S_TIME] == pytest.approx(258 * NS, rel=1e-12)
    assert slow[kp.S_ACTIVATIONS] == fast[kp.S_ACTIVATIONS] == 16


def test_refresh_by_hand():
    # The HBM2-PIM stream above (156 ns per row, row r's first column at 14 + 156 r) with
    # tREFI 1000, tRFC 100, first refresh due at 500 ns, 16 rows.
    # Row 3: ACT 468, columns from 482 every 4 ns; the one at 502 is the first command at or
    # after 500: all-bank PRE at 502 (the end of the last column's slot), refresh from
    # 502 + tRP = 516 to 616, re-ACT 616, column 630: 630 - 502 = 128 ns lost (tRP + tRFC +
    # tRCD); everything after moves 128 ns. Due 1500: row 8's columns run 1390 + 4j
    # (14 + 156 x 8 + 128), the one at 1502 triggers the same 128 ns; due 2500: row 14's at
    # 14 + 156 x 14 + 256 + 4 x 12 = 2502 does too; due 3500 is after the end.
    # Total: 16 x 156 - 14 + 3 x 128 = 2866 ns = 512 columns x 4 + row stalls (14 + 15 x 28)
    # + 3 x 128.
    g, p = geometry(banks=8), pim_timing(column=4)
    t = timing(tRCD=14, tRP=14, tREFI=1000, tRFC=100, tREF0=500)
    s = stream_rows(g, p, t, 16)
    assert s[kp.S_REFRESHES] == 3
    assert s[kp.S_TIME] == pytest.approx(2866 * NS, rel=1e-12)
    assert s[kp.S_REFRESH_S] == pytest.approx(3 * 128 * NS, rel=1e-12)
    assert s[kp.S_ROW_S] == pytest.approx((14 + 15 * 28) * NS, rel=1e-12)
    assert s[kp.S_ROW_SWITCHES] == 16
    assert s[kp.S_ACTIVATIONS] == (16 + 3) * 8        # each refresh re-opens the row


def test_broadcast_and_readout_by_hand():
    # 4 units, 3 output rows each, 2 accumulators (groups of 2 and 1 rows), 64 B of weights
    # per row in 2 chunks of 32 B, 64 B of input per chunk (2 bursts of 2 ns, then tWL 2 +
    # tWTR_L 3), 2 B partial sums (one 32 B read-out burst of 2 ns per group), tCL 10,
    # mode switches 5 ns.
    #   0-5 switch in; group 1: broadcast 5-9, +5 -> 14; ACT 14, columns 28, 32 (2 rows x
    #   32 B / 32 B); broadcast 36-40, +5 -> 45; columns 45, 49; read-out from
    #   max(53, 49 + tCL) = 59 to 61. Group 2: broadcast 61-65 -> 70, column 70; broadcast
    #   74-78 -> 83, column 83; read-out from max(87, 93) = 93 to 95; switch out to 100.
    g = geometry(banks=4, accumulators=2)
    p = pim_timing(column=4, mode=5, write=2, read=2)
    w = work(rows=3, k_bytes=64, chunk=32, chunk_input=64, result=2)
    s = both(g, p, w, timing(tRCD=14, tWL=2, tWTR_L=3, tCL=10))
    assert s[kp.S_TIME] == pytest.approx(100 * NS, rel=1e-12)
    assert s[[kp.S_COLUMNS, kp.S_WRITE_BURSTS, kp.S_READ_BURSTS]].tolist() == [6, 8, 2]
    assert s[kp.S_BROADCAST_S] == pytest.approx(4 * (4 + 5) * NS, rel=1e-12)
    assert s[kp.S_READOUT_S] == pytest.approx(2 * (6 + 2) * NS, rel=1e-12)
    assert s[kp.S_ROW_S] == pytest.approx(14 * NS, rel=1e-12)


# ---------------------------------------------------------------- random cases
@st.composite
def cases(draw, refresh=None, exempt=None):
    per_unit = draw(st.sampled_from([1, 2]))
    burst = draw(st.sampled_from([16, 32]))
    g = geometry(banks=per_unit * draw(st.integers(1, 5)), per_unit=per_unit, burst=burst,
                 row=burst * draw(st.sampled_from([1, 2, 3, 8])),
                 accumulators=draw(st.integers(1, 4)),
                 exempt=draw(st.integers(0, 1)) if exempt is None else exempt)
    t = np.array(draw(st.lists(st.integers(0, 40), min_size=kd.N_TIMING,
                               max_size=kd.N_TIMING)), dtype=np.float64) * 0.25 * NS
    t[kd.T_REFI] = 0.0
    if draw(st.booleans()) if refresh is None else refresh:
        t[kd.T_RFC] = draw(st.integers(1, 30)) * NS
        t[kd.T_REFI] = t[kd.T_RFC] + draw(st.integers(1, 80)) * NS
        t[kd.T_REF0] = draw(st.integers(0, 100)) * NS
    p = pim_timing(column=draw(st.integers(1, 12)) * 0.25, mode=draw(st.integers(0, 20)),
                   write=draw(st.integers(0, 8)) * 0.5, read=draw(st.integers(0, 8)) * 0.5)
    w = work(rows=draw(st.integers(0, 9)), k_bytes=draw(st.integers(0, 300)),
             chunk=draw(st.integers(1, 200)), chunk_input=draw(st.integers(0, 100)),
             result=draw(st.integers(0, 4)), passes=draw(st.integers(0, 2)),
             writeback=draw(st.integers(0, 200)))
    return g, p, w, t


@settings(max_examples=60, deadline=None)
@given(cases())
def test_kernel_agrees_with_twin_and_accounts_for_every_second(case):
    s = both(*case)
    g, p, w, t = case
    parts = (s[kp.S_MODE_SWITCHES] * p[kp.P_MODE] + s[kp.S_STREAM_S] + s[kp.S_BROADCAST_S]
             + s[kp.S_READOUT_S] + s[kp.S_ROW_S] + s[kp.S_REFRESH_S])
    assert parts == pytest.approx(s[kp.S_TIME], rel=1e-9, abs=1e-21)
    assert s[kp.S_ACTIVATIONS] % g[kp.G_BANKS] == 0
    assert s[kp.S_ACTIVATIONS] >= s[kp.S_ROW_SWITCHES] * g[kp.G_BANKS]


@settings(max_examples=40, deadline=None)
@given(cases())
def test_never_faster_than_the_column_rate(case):
    g, p, w, t = case
    s = kp.simulate(g, p, w, t)
    columns = w[kp.W_PASSES] * w[kp.W_ROWS] * w[kp.W_K_BYTES] / g[kp.G_BURST]
    bound = columns * p[kp.P_COLUMN] + 2 * p[kp.P_MODE]
    assert s[kp.S_TIME] >= bound * (1 - 1e-12)


# Fields whose growth adds commands or lengthens trains without moving any column to another
# row. W_K_BYTES is not among them: a longer reduction shifts where rows break within the
# chunks, and a row switch that lands just after a train hides tRTP and tRAS behind it, so
# e.g. 48 B per row can finish a few ns before 34 B. Refresh likewise moves with the
# schedule and can land more cheaply; with refresh on, only another pass (which leaves the
# earlier commands exactly as they were) is guaranteed to cost more.
GROWING = [kp.W_ROWS, kp.W_CHUNK_INPUT, kp.W_RESULT_BYTES, kp.W_PASSES, kp.W_WRITEBACK]


@settings(max_examples=40, deadline=None)
@given(cases(refresh=False), st.sampled_from(GROWING), st.integers(1, 20))
def test_more_work_never_faster(case, field, extra):
    g, p, w, t = case
    more = w.copy()
    more[field] += extra
    assert kp.simulate(g, p, more, t)[kp.S_TIME] >= kp.simulate(g, p, w, t)[kp.S_TIME]


@settings(max_examples=40, deadline=None)
@given(cases(refresh=True))
def test_another_pass_never_faster_with_refresh(case):
    g, p, w, t = case
    more = w.copy()
    more[kp.W_PASSES] += 1
    assert kp.simulate(g, p, more, t)[kp.S_TIME] >= kp.simulate(g, p, w, t)[kp.S_TIME]


@settings(max_examples=40, deadline=None)
@given(cases(refresh=False, exempt=1), st.integers(1, 6))
def test_doubling_banks_with_the_same_total_rows_never_slower(case, rows):
    # Same total output rows, twice the units: each has half the rows. Holds for an all-bank
    # ACT; with bank ACTs under tFAW, twice the banks is twice the ACTs per switch, which
    # short rows do not repay (a real effect, not checked here).
    g, p, w, t = case
    few, many = g.copy(), g.copy()
    many[kp.G_BANKS] *= 2
    w_few, w_many = w.copy(), w.copy()
    w_few[kp.W_ROWS], w_many[kp.W_ROWS] = 2 * rows, rows
    assert (kp.simulate(many, p, w_many, t)[kp.S_TIME]
            <= kp.simulate(few, p, w_few, t)[kp.S_TIME])


@settings(max_examples=40, deadline=None)
@given(cases(), st.sampled_from(["rows", "k", "passes"]))
def test_zero_work_costs_two_mode_switches(case, empty):
    g, p, w, t = case
    w = w.copy()
    w[kp.W_WRITEBACK] = 0
    w[{"rows": kp.W_ROWS, "k": kp.W_K_BYTES, "passes": kp.W_PASSES}[empty]] = 0
    s = both(g, p, w, t)
    assert s[kp.S_TIME] == 2 * p[kp.P_MODE]
    assert s[kp.S_MODE_SWITCHES] == 2
    assert s[[kp.S_COLUMNS, kp.S_ACTIVATIONS, kp.S_REFRESHES, kp.S_WRITE_BURSTS,
              kp.S_READ_BURSTS]].tolist() == [0, 0, 0, 0, 0]


# ---------------------------------------------------------------- nonsense refused
@pytest.mark.parametrize("change", [
    ("g", kp.G_BURST, 0), ("g", kp.G_ACCUMULATORS, 0), ("g", kp.G_BANKS, 0),
    ("g", kp.G_BANKS_PER_UNIT, 3), ("g", kp.G_ROW, 16), ("w", kp.W_CHUNK_BYTES, 0),
    ("w", kp.W_ROWS, -1), ("p", kp.P_COLUMN, 0.0), ("t", kd.T_RFC, 1000 * NS),
    ("t", kd.T_RCD, float("nan")),
])
def test_nonsense_is_refused(change):
    arrays = {"g": geometry(), "p": pim_timing(),
              "w": work(rows=4, k_bytes=256, chunk=64),
              "t": timing(tRCD=14, tRP=14, tREFI=1000, tRFC=100)}
    which, index, value = change
    arrays[which][index] = value
    for fn in (kp.simulate, kp.simulate_ref):
        with pytest.raises(ValueError):
            fn(arrays["g"], arrays["p"], arrays["w"], arrays["t"])
