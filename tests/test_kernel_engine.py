"""Contraction-engine cycle kernel: agreement with SCALE-Sim v3, with its twin, and by hand.

The SCALE-Sim figures in tests/data/scalesim_layers.csv were recorded by running SCALE-Sim
3.0.0 in CALC (stall-free) mode; re-baseline with ``python benchmarks/vs_scalesim.py --record``.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.kernels import engine as k

CSV_PATH = Path(__file__).resolve().parent / "data" / "scalesim_layers.csv"
CODES = {"os": k.OS, "ws": k.WS, "is": k.IS}


def _rows() -> list[dict]:
    with open(CSV_PATH, newline="") as fh:
        return list(csv.DictReader(fh))


def _mnk(row: dict) -> tuple[int, int, int]:
    if row["kind"] == "gemm":
        return int(row["m"]), int(row["n"]), int(row["k"])
    dims = [int(row[c]) for c in ("ifmap_h", "ifmap_w", "filt_h", "filt_w", "channels",
                                  "filters", "stride")]
    return k.conv_as_gemm(*dims[:6], dims[6], dims[6], ceil_mode=True)


ROWS = _rows()


# ------------------------------------------------------------------- (a) SCALE-Sim table
@pytest.mark.parametrize("row", ROWS, ids=[f"{r['layer']}-{r['rows']}x{r['cols']}-{r['dataflow']}"
                                           for r in ROWS])
def test_matches_scalesim(row):
    m, n, kk = _mnk(row)
    ours = int(k.systolic_cycles(CODES[row["dataflow"]], int(row["rows"]), int(row["cols"]),
                                 m, n, kk))
    theirs = int(row["cycles"])
    assert abs(ours - theirs) <= 0.01 * theirs
    # Exact: SCALE-Sim reports the index of the last busy cycle, i.e. cycles - 1.
    assert ours - 1 == theirs


def test_scalesim_table_covers_the_brief():
    layers = {r["layer"] for r in ROWS}
    assert len(layers) >= 10
    assert {r["kind"] for r in ROWS} == {"gemm", "conv"}
    assert {r["dataflow"] for r in ROWS} == {"os", "ws", "is"}
    assert {(r["rows"], r["cols"]) for r in ROWS} >= {("128", "128"), ("32", "64")}
    assert {r["scalesim_version"] for r in ROWS} == {"3.0.0"}
    # Shapes that do not divide the array are the interesting ones.
    assert any(int(r["m"]) % 128 for r in ROWS if r["kind"] == "gemm")
    # The figures quoted in peers.md section 4.1 (1024^3 GEMM on 128x128).
    quoted = {(r["dataflow"]): int(r["cycles"]) for r in ROWS
              if r["layer"] == "gemm_1024" and r["rows"] == "128"}
    assert quoted["os"] == 81_791 and quoted["ws"] == 89_983


# --------------------------------------------------------------------- (c) by hand
def test_single_fold_by_hand():
    # 4x4 array, one fold. OS: K + (R - 1) + (C - 1) = 10 + 3 + 3.
    assert k.systolic_tile(k.OS, 4, 4, 4, 4, 10) == (1, 3, 10, 3)
    assert k.systolic_cycles(k.OS, 4, 4, 4, 4, 10) == 16
    # WS: load R = 4, skew R - 1 = 3, M = 7 rows streamed, drain C - 1 = 3.
    assert k.systolic_tile(k.WS, 4, 4, 7, 4, 4) == (1, 7, 7, 3)
    assert k.systolic_cycles(k.WS, 4, 4, 7, 4, 4) == 17
    # IS: N streams in time.
    assert k.systolic_cycles(k.IS, 4, 4, 4, 5, 4) == 4 + 3 + 5 + 3


def test_folds_by_hand():
    # 1000x300x77 on a 32x64 array, OS: ceil(1000/32) * ceil(300/64) = 32 * 5 folds of
    # 77 + 31 + 63 cycles.
    assert k.systolic_cycles(k.OS, 32, 64, 1000, 300, 77) == 160 * 171
    # WS: ceil(77/32) * ceil(300/64) = 15 folds of 32 + 31 + 1000 + 63.
    assert k.systolic_cycles(k.WS, 32, 64, 1000, 300, 77) == 15 * 1126
    # IS: ceil(77/32) * ceil(1000/64) = 48 folds of 32 + 31 + 300 + 63.
    assert k.systolic_cycles(k.IS, 32, 64, 1000, 300, 77) == 48 * 426


def test_slice_by_hand():
    pk, depth = k.slice_packet(16)
    # One bf16 packet on 8 lanes: 5 (adder tree) + 1 (accumulate) fill, 1 packet, 1 emit.
    assert k.slice_tile(8, pk, depth, 1, 8, 32, 0, 1) == (6, 1, 1)
    assert k.slice_cycles(8, pk, depth, 1, 8, 32, 0, 1) == 8
    # fp8, M=3, N=16, K=200: 2 lane folds x 3 rows x ceil(200/64)=4 packets = 24 packets.
    pk, depth = k.slice_packet(8)
    assert (pk, depth) == (64, 6)
    assert k.slice_cycles(8, pk, depth, 3, 16, 200, 0, 1) == 7 + 24 + 1
    # Two cycles per packet (32-B fetches) double the steady state only.
    assert k.slice_cycles(8, pk, depth, 3, 16, 200, 0, 2) == 7 + 48 + 1
    # 16 lanes into an 8-wide lane folder with 1 packet per row: the folder binds,
    # 1 + (4 - 1) * 2 = 7 steady cycles, 2 to emit the last row.
    assert k.slice_tile(16, 64, 6, 4, 16, 64, 0, 1) == (7, 7, 2)
    # An unpublished fetch-pipeline latency adds to the fill once per tile.
    assert k.slice_tile(8, 64, 6, 3, 16, 200, 4, 1) == (11, 24, 1)


def test_dispatch_and_batch():
    df = np.array([k.OS, k.WS, k.IS, k.SLICE], dtype=np.int64)
    rows = np.array([128, 128, 32, 8], dtype=np.int64)
    cols = np.array([128, 128, 64, 32], dtype=np.int64)
    m = np.array([1024, 1024, 49, 100], dtype=np.int64)
    n = np.array([1024, 1024, 24, 20], dtype=np.int64)
    kk = np.array([1024, 1024, 144, 70], dtype=np.int64)
    depth = np.array([0, 0, 0, 5], dtype=np.int64)
    out = np.zeros(4, dtype=np.int64)
    got = k.gemm_cycles_many(df, rows, cols, m, n, kk, depth, 0, 1, out)
    assert got is out
    # Last: 3 lane folds x 100 rows x 3 packets = 900, + 6 fill + 1 drain.
    assert out.tolist() == [81_792, 89_984, 750, 907]


def test_conv_as_gemm():
    assert k.conv_as_gemm(229, 229, 7, 7, 3, 64, 2) == (112 * 112, 64, 147)
    assert k.conv_as_gemm(14, 14, 1, 1, 256, 128) == (196, 128, 256)
    assert k.conv_as_gemm(32, 30, 5, 3, 2, 6, 1, 2) == (28 * 14, 6, 30)
    # SCALE-Sim rounds up: 230 - 7 = 223 is odd, so 113 rows instead of 112.
    assert k.conv_as_gemm(230, 230, 7, 7, 3, 64, 2, ceil_mode=True)[0] == 113 * 113
    assert k.conv_as_gemm(230, 230, 7, 7, 3, 64, 2)[0] == 112 * 112


def test_bad_input():
    with pytest.raises(ValueError):
        k.systolic_cycles(k.OS, 0, 4, 1, 1, 1)
    with pytest.raises(ValueError):
        k.systolic_cycles_ref(k.OS, 4, 0, 1, 1, 1)
    with pytest.raises(ValueError, match="16-, 8- or 4-bit"):
        k.slice_packet(32)
    with pytest.raises(ValueError):
        k.gemm_cycles(7, 4, 4, 1, 1, 1, 0, 0, 1)
    assert k.systolic_cycles(k.WS, 4, 4, 0, 5, 5) == 0
    assert k.slice_cycles(8, 32, 5, 5, 0, 5, 0, 1) == 0


# ----------------------------------------------------------- (b) twin, (c), (d) properties
dataflows = st.sampled_from([k.OS, k.WS, k.IS])
array_dim = st.integers(1, 16)
gemm_dim = st.integers(1, 80)


@settings(max_examples=150, deadline=None)
@given(dataflows, array_dim, array_dim, gemm_dim, gemm_dim, gemm_dim)
def test_systolic_twin(df, rows, cols, m, n, kk):
    assert k.systolic_cycles(df, rows, cols, m, n, kk) == k.systolic_cycles_ref(df, rows, cols,
                                                                                m, n, kk)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 16), st.integers(1, 128), st.integers(0, 8), st.integers(1, 40),
       st.integers(1, 40), st.integers(1, 300), st.integers(0, 5), st.integers(1, 3))
def test_slice_twin(lanes, packet, depth, m, n, kk, pipeline, pc):
    assert (k.slice_cycles(lanes, packet, depth, m, n, kk, pipeline, pc)
            == k.slice_cycles_ref(lanes, packet, depth, m, n, kk, pipeline, pc))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([k.OS, k.WS, k.IS, k.SLICE]), array_dim, array_dim,
                          gemm_dim, gemm_dim, gemm_dim, st.integers(0, 7)),
                min_size=1, max_size=8))
def test_batch_equals_twin(tiles):
    cols = [np.array(c, dtype=np.int64) for c in zip(*tiles)]
    out = np.zeros(len(tiles), dtype=np.int64)
    k.gemm_cycles_many(*cols, 2, 1, out)
    assert out.tolist() == [k.gemm_cycles_ref(*t, 2, 1) for t in tiles]


@settings(max_examples=200, deadline=None)
@given(dataflows, st.integers(1, 256), st.integers(1, 256), st.integers(1, 3000),
       st.integers(1, 3000), st.integers(1, 3000))
def test_never_beats_ideal(df, rows, cols, m, n, kk):
    cycles = k.systolic_cycles(df, rows, cols, m, n, kk)
    assert k.ideal_cycles(rows * cols, m, n, kk) <= cycles
    assert m * n * kk / (rows * cols * cycles) <= 1.0


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([16, 8, 4]), st.integers(1, 500), st.integers(1, 64),
       st.integers(1, 5000))
def test_slice_never_beats_ideal(bits, m, n, kk):
    packet, depth = k.slice_packet(bits)
    cycles = k.slice_cycles(k.SLICE_LANES, packet, depth, m, n, kk, 0, 1)
    assert k.ideal_cycles(k.SLICE_LANES * packet, m, n, kk) <= cycles


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([k.OS, k.WS, k.IS, k.SLICE]), st.integers(1, 64), st.integers(1, 64),
       gemm_dim, gemm_dim, gemm_dim, st.integers(1, 200), st.sampled_from([0, 1, 2]))
def test_monotone(df, rows, cols, m, n, kk, more, which):
    base = [m, n, kk]
    bigger = list(base)
    bigger[which] += more
    assert (k.gemm_cycles(df, rows, cols, *bigger, 5, 0, 1)
            >= k.gemm_cycles(df, rows, cols, *base, 5, 0, 1))
