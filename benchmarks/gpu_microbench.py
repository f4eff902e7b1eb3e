"""GPU reference archs against measured microbenchmarks: prints, asserts nothing.

    python benchmarks/gpu_microbench.py [--reference PATH]
    python benchmarks/gpu_microbench.py --fit N1,N8   # fit engine efficiency on these rows only
    python benchmarks/gpu_microbench.py --fit-overhead N3   # fit the per-kernel fixed cost

Rows: the cuBLASLt GEMM and STREAM-like HBM rows (N1-N4, N8, N9) of the project's public
measurement table (shared/reference/measured-public.csv, Azure AI-benchmarking-guide). The
GEMMs are simulated as one contraction with both operands activations in DRAM (the benchmark
multiplies two random matrices); the bandwidth rows as the DRAM efficiency table's long
sequential read (64 MiB x the copy's read+write streams), as a STREAM Triad/Copy sees it.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import npusim
from npusim.validate.microbench import gemm_tflops, stream_tbps

ARCH = {"H100 80GB HBM3 (ND H100 v5)": "h100", "A100-SXM4-80GB (ND A100 v4)": "a100"}
# The shipped measured data: the public reference rows come first, verbatim, with their sources.
DEFAULT_REF = Path(npusim.__file__).resolve().parent / "validate" / "data" / "measured.csv"


def rows(path: Path):
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["hardware"] in ARCH and r["metric"] in ("GEMM throughput", "memory bandwidth"):
                yield r


def gemm_shape(r) -> tuple[int, int, int]:
    """(M, N, K) of a GEMM row: its ``sim_model`` ``gemm:M,N,K``, else ``m=n=k=N`` in ``model``."""
    sim = (r.get("sim_model") or "").strip()
    if sim.startswith("gemm:"):
        m, n, k = (int(x) for x in sim[len("gemm:"):].split(","))
        return m, n, k
    n = int(r["model"].split("=")[-1])
    return n, n, n


def predict_gemm(r, overrides=None) -> float:
    arch = npusim.load_arch(ARCH[r["hardware"]], overrides)
    dt = {"FP8": "fp8_e4m3", "FP16": "fp16", "BF16": "bf16"}[r["precision"]]
    return gemm_tflops(arch, *gemm_shape(r), dt), dt


def fit(rows_, ids) -> None:
    """Bisect the engine efficiency of each named GEMM row's (arch, dtype) until the simulated
    throughput equals the measured one; print the YAML line with its provenance."""
    for r in rows_:
        if r["id"] not in ids or r["metric"] != "GEMM throughput":
            continue
        meas = float(r["value"])
        lo, hi = 0.01, 1.0
        _, dt = predict_gemm(r)
        for _ in range(40):
            mid = (lo + hi) / 2
            pred, _ = predict_gemm(r, {f"cores.engine.efficiency.{dt}": repr(mid)})
            lo, hi = (mid, hi) if pred < meas else (lo, mid)
        print(f"{ARCH[r['hardware']]}: cores.engine.efficiency.{dt}: {lo:.4f}  # fitted on "
              f"measured-public.csv row {r['id']} ({r['model']}, {r['precision']}, {meas} "
              f"{r['unit']})")


def fit_overhead(rows_, ids) -> None:
    """Bisect the arch's per-op fixed cost (launch_overhead) until a small, latency-dominated
    GEMM row's simulated throughput equals the measured one."""
    for r in rows_:
        if r["id"] not in ids or r["metric"] != "GEMM throughput":
            continue
        meas = float(r["value"])
        lo, hi = 0.0, 1e-4
        for _ in range(50):
            mid = (lo + hi) / 2
            pred, _ = predict_gemm(r, {"launch_overhead": f"{mid!r} s"})
            lo, hi = (mid, hi) if pred > meas else (lo, mid)
        print(f"{ARCH[r['hardware']]}: launch_overhead: {lo * 1e6:.2f} us  # fitted on "
              f"measured-public.csv row {r['id']} ({r['model']}, {r['precision']}, {meas} "
              f"{r['unit']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, default=DEFAULT_REF)
    ap.add_argument("--fit", metavar="IDS", help="comma-separated row ids to fit efficiency on")
    ap.add_argument("--fit-overhead", metavar="IDS",
                    help="comma-separated small-GEMM row ids to fit the per-op fixed cost on")
    args = ap.parse_args()
    if args.fit or args.fit_overhead:
        if args.fit:
            fit(list(rows(args.reference)), set(args.fit.split(",")))
        if args.fit_overhead:
            fit_overhead(list(rows(args.reference)), set(args.fit_overhead.split(",")))
        return
    print(f"{'row':4} {'arch':5} {'case':28} {'measured':>12} {'npusim':>12} {'error':>8}")
    for r in rows(args.reference):
        arch = npusim.load_arch(ARCH[r["hardware"]])
        if r["metric"] == "GEMM throughput":
            pred, _ = predict_gemm(r)
            m, n, k = gemm_shape(r)
            shape = f"{n}^3" if m == n == k else f"{m}x{n}x{k}"
            case, unit = f"GEMM {shape} {r['precision']}", "TFLOPS"
        else:
            pred = stream_tbps(arch)
            case, unit = "HBM stream (long sequential)", "TB/s"
        meas = float(r["value"])
        print(f"{r['id']:4} {arch.name:5} {case:28} {meas:9.2f} {unit:>6} {pred:9.2f} {unit:>6}"
              f" {100 * (pred / meas - 1):+7.1f}%")


if __name__ == "__main__":
    main()
