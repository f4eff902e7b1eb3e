"""Speed of design-space sweeps: prints figures, asserts nothing.

    python benchmarks/sweep_speed.py [--points 400] [--no-dask]

The sweep: Llama 3.1 8B decode steps (batch 32, 1,024 cached tokens, bf16) on RNGD-like
variants, a grid over SRAM per PE, PE count and HBM bandwidth (issue 14's speed target: at
least 100 design points per second on a 2-core machine). Each configuration runs the same spec
into a fresh store:

- 1 worker (the driver's own process), 2 local worker processes, and 2 Dask workers (a
  ``distributed.LocalCluster`` of two single-threaded worker processes on loopback, reached
  through its scheduler address as ``--scheduler`` would);
- for each: points/s over the whole run (worker start-up included) and in steady state (from
  the first chunk back), and the scaling efficiency of two workers against one.

The K-Perf matrix times are printed by ``benchmarks/kperf_suite_speed.py``.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

SPEC = """\
name: speed-rngd-decode
base: rngd
fields:
  cores.sram: [{sram}]
  cores.count: [{count}]
  dram.bandwidth: [{bw}]
workloads:
  - {{name: decode-32, llm: llama-3.1-8b, phase: decode, batch: 32, kv_len: 1024, precision: bf16}}
objectives: [{{tokens_per_s: max}}, {{energy_per_token_j: min}}]
strategy: {{kind: grid}}
"""


def spec_text(points: int) -> str:
    """A grid of about ``points`` RNGD variants (SRAM x PEs x bandwidth)."""
    counts = [4, 6, 8, 12, 16]
    per = max(1, round((points / len(counts)) ** 0.5))
    sram = [f"{8 + 4 * i} MiB" for i in range(per)]
    bw = [f"{0.75 + 0.25 * i:g} TB/s" for i in range(per)]
    return SPEC.format(sram=", ".join(sram), count=", ".join(map(str, counts)),
                       bw=", ".join(bw))


def run(label: str, spec_path: Path, **kw) -> object:
    from npusim.dse.run import run_sweep
    with tempfile.TemporaryDirectory() as out:
        s = run_sweep(spec_path, out, progress=False, **kw)
    print(f"{label:<28} {s.evaluated:5d} points in {s.seconds:6.1f} s: "
          f"{s.points_per_s:7.1f} points/s overall, {s.steady_points_per_s:7.1f} steady "
          f"(first chunk back after {s.first_s:.1f} s)")
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=400, help="design points (default 400)")
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "speed.yaml"
        spec_path.write_text(spec_text(args.points))
        one = run("1 worker (in process)", spec_path, workers=1)
        two = run("2 local worker processes", spec_path, workers=2)
        eff = two.steady_points_per_s / (2 * one.steady_points_per_s)
        print(f"{'':<28} scaling efficiency of 2 local workers: {eff:.0%} (steady)")
        if not args.no_dask:
            try:
                from distributed import LocalCluster
            except ImportError:
                print("2 Dask workers: skipped (pip install \"npusim[sweep]\")")
                return
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                              host="127.0.0.1", dashboard_address=None) as cluster:
                dask = run("2 Dask workers (loopback)", spec_path,
                           scheduler=cluster.scheduler_address)
            eff = dask.steady_points_per_s / (2 * one.steady_points_per_s)
            print(f"{'':<28} scaling efficiency of 2 Dask workers: {eff:.0%} (steady)")


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"benchmark wall time {time.perf_counter() - t:.1f} s")
