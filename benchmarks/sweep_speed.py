"""Speed of design-space sweeps: prints figures, asserts nothing.

    python benchmarks/sweep_speed.py [--points 400] [--no-dask]

The sweep: Llama 3.1 8B decode steps (batch 32, 1,024 cached tokens, bf16) on RNGD-like
variants, a grid over SRAM per PE, PE count and HBM bandwidth (issue 14's speed target: at
least 100 design points per second on a 2-core machine). Each configuration runs the same spec
into a fresh store:

- 1 worker (the driver's own process), 2 local worker processes, and 2 Dask workers (a
  ``distributed.LocalCluster`` of two single-threaded worker processes on loopback, reached
  through its scheduler address as ``--scheduler`` would);
- each in a fresh interpreter (none starts warm from another), each printing points/s over the
  whole run (imports excepted; worker start-up and the first graph included) and in steady
  state (from the first chunk back), and the scaling efficiency of two workers against one.

The K-Perf matrix times are printed by ``benchmarks/kperf_suite_speed.py``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
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


CONFIGS = {"1": ("1 worker (in process)", {"workers": 1}),
           "2": ("2 local worker processes", {"workers": 2}),
           "dask": ("2 Dask workers (loopback)", None)}


def run_one(config: str, spec_path: Path) -> dict:
    """One configuration in this (fresh) process: its figures as a dict."""
    from npusim.dse.run import run_sweep
    label, kw = CONFIGS[config]
    with tempfile.TemporaryDirectory() as out:
        if kw is None:
            from distributed import LocalCluster
            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                              host="127.0.0.1", dashboard_address=None) as cluster:
                s = run_sweep(spec_path, out, progress=False,
                              scheduler=cluster.scheduler_address)
        else:
            s = run_sweep(spec_path, out, progress=False, **kw)
    return {"label": label, "evaluated": s.evaluated, "seconds": s.seconds,
            "rate": s.points_per_s, "steady": s.steady_points_per_s, "first_s": s.first_s}


def run(config: str, spec_path: Path) -> dict:
    """``config`` in a fresh interpreter, so no run starts warm from an earlier one."""
    out = subprocess.run([sys.executable, __file__, "--one", config, "--spec", str(spec_path)],
                         capture_output=True, text=True, check=True)
    r = json.loads(next(x for x in out.stdout.splitlines() if x.startswith("{")))
    print(f"{r['label']:<28} {r['evaluated']:5d} points in {r['seconds']:6.1f} s: "
          f"{r['rate']:7.1f} points/s overall, {r['steady']:7.1f} steady "
          f"(first chunk back after {r['first_s']:.1f} s)", flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=400, help="design points (default 400)")
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask run")
    ap.add_argument("--one", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, Path(args.spec))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "speed.yaml"
        spec_path.write_text(spec_text(args.points))
        one = run("1", spec_path)
        two = run("2", spec_path)
        eff = two["steady"] / (2 * one["steady"])
        print(f"{'':<28} scaling efficiency of 2 local workers: {eff:.0%} (steady)")
        if not args.no_dask:
            try:
                import distributed  # noqa: F401
            except ImportError:
                print("2 Dask workers: skipped (pip install \"npusim[sweep]\")")
                return
            dask = run("dask", spec_path)
            eff = dask["steady"] / (2 * one["steady"])
            print(f"{'':<28} scaling efficiency of 2 Dask workers: {eff:.0%} (steady)")


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"benchmark wall time {time.perf_counter() - t:.1f} s")
