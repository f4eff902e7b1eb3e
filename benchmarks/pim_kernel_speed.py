"""Speed of the all-bank PIM kernel: a 4096 x 4096 fp16 GEMV on HBM2-PIM-like and LPDDR6-like
parameters, warm, Numba kernel against its pure-Python twin.

    python benchmarks/pim_kernel_speed.py [--repeat 200]

The parameters are for timing the kernel, not presets: the presets live in ``npusim/archs/``.
Timings from pim.md sec. 1-3 (HBM2 tCCD_L 4 ns, tRCD/tRP 14 ns [S1]; LPDDR6-10667 [R1]); the
rest (tRAS, tRC, tCL, tWL, tWTR_L, tRTP, tRFC, 8 accumulators, chunk sizes) are assumptions.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from npusim.kernels import dram as kd
from npusim.kernels import pim as kp

NS = 1e-9
ROWS, COLS, BYTES = 4096, 4096, 2          # the GEMV: out[4096] = W[4096 x 4096] x in (fp16)


def _timing(**ns) -> np.ndarray:
    t = np.zeros(kd.N_TIMING)
    for name, value in ns.items():
        t[kd.TIMING_NAMES.index(name)] = value * NS
    return t


# name: (channels, geometry, pim timing, DRAM timing, chunk bytes)
SETUPS = {
    "hbm2-pim-like": (
        16, np.array([16, 2, 32, 1024, 8, 1], dtype=np.int64),
        np.array([4.0, 100.0, 2.0, 2.0]) * NS,
        _timing(tBURST=2, tCCD_L=4, tRCD=14, tRP=14, tRAS=33, tRC=47, tCL=14, tWL=4,
                tRTP=4, tWR=15, tWTR_L=8, tRRD_S=4, tFAW=16, tREFI=3900, tRFC=350,
                tREF0=1950),
        256),
    "lpddr6-like": (
        8, np.array([16, 1, 32, 2048, 8, 0], dtype=np.int64),
        np.array([3.75, 100.0, 2.25, 2.25]) * NS,
        _timing(tBURST=2.25, tCCD_L=3.75, tRCD=18, tRP=40.1, tRAS=20.25, tRC=63.4, tCL=21,
                tWL=9.75, tRTP=7.5, tWR=18, tWTR_L=12, tRRD_S=3.75, tFAW=15, tREFI=3906,
                tRFC=280, tREF0=1953),
        2048),
}


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200, help="kernel calls timed (best kept)")
    args = ap.parse_args()
    print(f"{'setup':15} {'columns':>8} {'sim. us':>9} {'kernel us':>10} {'col/s':>9} "
          f"{'twin ms':>8} {'ratio':>7}")
    for name, (channels, g, p, t, chunk) in SETUPS.items():
        units = channels * (g[kp.G_BANKS] // g[kp.G_BANKS_PER_UNIT])
        rows = -(-ROWS // units)
        w = np.array([rows, COLS * BYTES, chunk, chunk, BYTES, 1, 0], dtype=np.int64)
        stats = kp.simulate(g, p, w, t)                  # warm (compiled or loaded from cache)
        kernel = _best(lambda: kp.simulate(g, p, w, t), args.repeat)
        twin = _best(lambda: kp.simulate_ref(g, p, w, t), 3)
        assert np.array_equal(stats, kp.simulate_ref(g, p, w, t))
        cols = stats[kp.S_COLUMNS]
        print(f"{name:15} {cols:8.0f} {stats[kp.S_TIME] * 1e6:9.2f} {kernel * 1e6:10.1f} "
              f"{cols / kernel:9.2e} {twin * 1e3:8.1f} {twin / kernel:7.0f}")


if __name__ == "__main__":
    main()
