"""Speed of npusim's PIM model (issue 10, item 7), printed, never asserted.

    python benchmarks/pim_speed.py [--quick]

1. Simulated-GEMV time per call: a 4096 x 4096 GEMV on each shipped PIM preset, warm, the
   whole uncached path (mapping the GEMV onto the kernel's work, the all-bank kernel for
   both loop orders, the counts), beside the kernel alone and its pure-Python twin.
2. A whole Llama 3.1 8B decode step (batch 1, KV 1024), warm, on ``lpddr6-pim`` (ops placed on
   NPU or PIM by cost), on the same part without its units (``lpddr6-pim+none``) and on
   ``rngd``, in this process; the ratio to ``rngd`` is the figure to read (the issue asks that
   a PIM decode step cost no more than an NPU step).

Wall-clock figures on a shared machine are noisy: each is the best of several runs.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import npusim
from npusim import load_arch
from npusim.engine import pim as ep
from npusim.kernels import pim as kp

PRESETS = ("hbm2-pim", "gddr6-aim", "lpddr5x-pim", "lpddr6-pim")
ROWS = K = 4096


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def gemv_rows(repeat: int) -> list[tuple]:
    out = []
    for name in PRESETS:
        arch = load_arch(name)
        dev = ep.pim_device(arch)
        dt = next(iter(arch.pim.macs_per_cycle))
        ep.gemv_cost(dev, ROWS, K, dt, dt)                      # compile and warm

        def uncached():
            ep._run.cache_clear()
            ep._gemv.__wrapped__(dev, ROWS, K, dt, dt, 1, 1, dt, "gemv")
        whole = _best(uncached, repeat)
        cost = ep.gemv_cost(dev, ROWS, K, dt, dt)
        work = cost.mapping
        # the kernel alone on the row-order work of this GEMV (one call)
        rows = int(work["rows_per_unit"])
        chunk = int(work["chunk_bytes"])
        wb = K * 2 if dt in ("fp16", "bf16") else K
        w = np.zeros(kp.N_WORK, dtype=np.int64)
        w[kp.W_ROWS], w[kp.W_K_BYTES], w[kp.W_CHUNK_BYTES] = rows, wb, chunk
        w[kp.W_CHUNK_INPUT], w[kp.W_RESULT_BYTES], w[kp.W_PASSES] = chunk, 32, 1
        g = np.array(dev.geometry, dtype=np.int64)
        pt = np.array(dev.pim_timing, dtype=np.float64)
        pt[kp.P_COLUMN] = float(work["column_interval_s"])
        tm = np.array(dev.timing, dtype=np.float64)
        kp.simulate(g, pt, w, tm)
        kernel = _best(lambda: kp.simulate(g, pt, w, tm), repeat)
        twin = _best(lambda: kp.simulate_ref(g, pt, w, tm), 1)
        out.append((name, dt, cost.kernel_s, whole, kernel, twin))
    return out


def decode_rows(repeat: int) -> list[tuple]:
    out = []
    for arch in ("rngd", "lpddr6-pim+none", "lpddr6-pim"):
        def run():
            return npusim.simulate("llama-3.1-8b", arch, phase="decode", batch=1, kv_len=1024)
        r = run()                                               # warm: compile, DRAM table
        pim = sum(1 for o in r.ops if o.device == "pim")
        out.append((arch, _best(run, repeat), r.latency_s, pim, len(r.ops)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args(argv)
    rep = 3 if args.quick else 20
    print(f"simulated {ROWS}x{K} GEMV per call, warm (best of {rep})")
    print(f"{'preset':12} {'dtype':5} {'simulated':>10} | {'npusim us':>10} {'kernel us':>10} "
          f"{'twin ms':>9} {'twin/kernel':>11}")
    for name, dt, sim_s, whole, kernel, twin in gemv_rows(rep):
        print(f"{name:12} {dt:5} {sim_s * 1e6:8.2f}us | {whole * 1e6:10.1f} {kernel * 1e6:10.1f} "
              f"{twin * 1e3:9.1f} {twin / kernel:10.0f}x")
    print()
    drep = 2 if args.quick else 5
    print(f"Llama 3.1 8B decode step, batch 1, KV 1024, bf16, warm (best of {drep})")
    rows = decode_rows(drep)
    base = rows[0][1]
    for arch, wall, lat, pim, ops in rows:
        print(f"{arch:16} npusim {wall * 1e3:7.1f} ms ({wall / base:4.2f}x rngd)   simulated "
              f"{lat * 1e3:7.2f} ms/token   {pim} of {ops} ops on PIM")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
