"""Speed of the serving side: prints figures, asserts nothing.

    python benchmarks/kperf_speed.py [--arch rngd] [--model llama-3.1-8b]

Figures: one decode-step cost evaluation (cold: builds, lowers and times the parts; warm: from
the step model's caches), the serving simulation of 256 users x 2048 output tokens, and the wall
time of the default K-Perf matrix in one process and on one worker per core (target under 30 s
on 2 cores; benchmarks/kperf_suite_speed.py times the command lines, reports included).
"""
from __future__ import annotations

import argparse
import time

from npusim.workloads import kperf as kp
from npusim.workloads.serving import Scenario, simulate_serving
from npusim.workloads.stepcost import StepCostModel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="rngd")
    ap.add_argument("--model", default="llama-3.1-8b")
    args = ap.parse_args()

    t = time.perf_counter()
    model = StepCostModel(args.model, args.arch)
    setup = time.perf_counter() - t
    t = time.perf_counter()
    model.step([], [2048] * 8)
    cold = time.perf_counter() - t
    n = 2000
    t = time.perf_counter()
    for i in range(n):
        model.step([], [2048 + i % 64] * 8)
    warm = (time.perf_counter() - t) / n
    print(f"step model set-up     : {setup:8.3f} s ({model.chips} chip(s), "
          f"{model.kv_capacity_tokens:,} KV tokens)")
    print(f"decode-step cost      : {cold * 1e3:8.1f} ms cold, {warm * 1e6:.1f} us warm "
          f"(batch 8, kv 2048: {cold / warm:,.0f}x)")

    t = time.perf_counter()
    r = simulate_serving(model, Scenario(input_len=128, output_len=2048, users=256))
    print(f"serving 256 users x 2048 out: {time.perf_counter() - t:8.2f} s "
          f"({r.summary['steps']:,} steps, {r.summary['decode_tok_s']:,.0f} tok/s simulated)")

    for jobs in (1, "auto"):
        t = time.perf_counter()
        res = kp.kperf(args.arch, args.model, jobs=jobs)
        wall = time.perf_counter() - t
        print(f"default K-Perf matrix : {wall:8.1f} s for {len(res.records)} scenarios, "
              f"jobs={jobs} (target < 30 s on 2 cores)")


if __name__ == "__main__":
    main()
