"""SCALE-Sim v3 and npusim's contraction-engine kernel, side by side, on one table of layers.

SCALE-Sim (PyPI ``scalesim``) needs ``numpy<2``, so it runs in its own throwaway virtual
environment in the user's cache folder (never in the repository); this script creates it on
first use and then calls itself inside it (``--worker``) to run the simulations. SCALE-Sim runs
in CALC mode (``InterfaceBandwidth: CALC``), where it reports stall-free compute cycles; those
are what npusim's kernel models.

Usage::

    python benchmarks/vs_scalesim.py            # whole table (about 5 minutes on 2 cores)
    python benchmarks/vs_scalesim.py --quick    # a small subset (well under a minute)
    python benchmarks/vs_scalesim.py --record   # also rewrite tests/data/scalesim_layers.csv

``--record`` is the documented re-baseline command for ``tests/test_kernel_engine.py``.

Cycle convention: SCALE-Sim reports the index of the last busy cycle (``max`` of the cycle
numbers it serviced, starting from 0), which is the number of cycles minus one. npusim's kernel
returns the number of cycles; the table shows both and the difference.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCALESIM_VERSION = "3.0.0"
REPO = Path(__file__).resolve().parent.parent
CSV_PATH = REPO / "tests" / "data" / "scalesim_layers.csv"

# Layers: GEMMs as (M, N, K) with M = output rows, N = output columns, K = reduction (SCALE-Sim's
# `-i gemm` topology); convolutions in SCALE-Sim's conv topology (ifmap h, w, filter h, w,
# channels, filters, stride). SCALE-Sim does not pad, so a padded input is given at its padded
# size (ResNet-50 conv1: 224 + 2*3 = 230 would give ceil((230-7+2)/2) = 113 output rows in
# SCALE-Sim's formula; 229 gives the 112 of the real layer).
GEMM_COLS = ("m", "n", "k")
CONV_COLS = ("ifmap_h", "ifmap_w", "filt_h", "filt_w", "channels", "filters", "stride")
LAYERS = (
    # name, kind, dims, size class ("quick" runs in --quick, "big" only on 128x128)
    ("gemm_1024", "gemm", (1024, 1024, 1024), "big"),
    ("gemm_1000x300x77", "gemm", (1000, 300, 77), "mid"),
    ("gemm_tall_2048x16x64", "gemm", (2048, 16, 64), "mid"),
    ("gemm_ksmall_512x256x8", "gemm", (512, 256, 8), "quick"),
    ("gemm_gemv_1x1000x300", "gemm", (1, 1000, 300), "mid"),
    ("gemm_odd_130x129x131", "gemm", (130, 129, 131), "quick"),
    ("conv_resnet50_conv1_7x7s2", "conv", (229, 229, 7, 7, 3, 64, 2), "big"),
    ("conv_3x3_c32_k48", "conv", (30, 30, 3, 3, 32, 48, 1), "mid"),
    ("conv_1x1_c256_k128", "conv", (14, 14, 1, 1, 256, 128, 1), "quick"),
    ("conv_5x5_c1_k6", "conv", (32, 32, 5, 5, 1, 6, 1), "quick"),
    ("conv_3x3s2_c16_k24_odd", "conv", (15, 15, 3, 3, 16, 24, 2), "mid"),
)
ARRAYS = ((128, 128), (32, 64))
DATAFLOWS = ("os", "ws", "is")


def jobs_for(quick: bool) -> list[dict]:
    """The (layer, array, dataflow) runs of the table; big layers only on 128x128."""
    jobs = []
    for rows, cols in ARRAYS:
        for name, kind, dims, size in LAYERS:
            if quick and not (size == "quick" and (rows, cols) == (128, 128)):
                continue
            if size == "big" and (rows, cols) != (128, 128):
                continue
            for df in DATAFLOWS:
                jobs.append({"name": name, "kind": kind, "dims": list(dims),
                             "rows": rows, "cols": cols, "dataflow": df})
    return jobs


# --------------------------------------------------------------------------- SCALE-Sim side
def cache_dir() -> Path:
    """The user's cache folder for this benchmark (XDG_CACHE_HOME or ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "npusim-bench"


def venv_python() -> Path:
    """Create (once) the throwaway SCALE-Sim venv and return its interpreter."""
    venv = cache_dir() / "scalesim-venv"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import scalesim, numpy; assert numpy.__version__ < '2'"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q",
                    f"scalesim=={SCALESIM_VERSION}", "numpy<2"], check=True)
    return python


CONFIG = """[general]
run_name = {run}
[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: 1024
FilterSramSzkB: 1024
OfmapSramSzkB: 1024
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Dataflow : {df}
Bandwidth : 10
ReadRequestBuffer: 512
WriteRequestBuffer: 512
[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2
[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40
[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""
# SCALE-Sim loads a layout file even with custom layouts off; its contents are then unused.
LAYOUT = ("Layer name,IH,IW,FH,FW,C,NF,o1,o2,o3,o4,o5,o6,o7,o8,o9,o10,o11,o12,o13,o14,\n"
          "{name},1,1,1,1,1,1,1,2,3,1,2,3,1,2,3,4,1,2,3,4,\n")


def run_one_scalesim(job: dict, workdir: Path) -> dict:
    """Run one job with SCALE-Sim's Python API (no traces); runs inside the venv."""
    from scalesim.scale_sim import scalesim  # only importable inside the venv

    name = job["name"]
    tag = f"{name}_{job['rows']}x{job['cols']}_{job['dataflow']}"
    d = workdir / tag
    d.mkdir()
    (d / "cfg.cfg").write_text(CONFIG.format(run=tag, rows=job["rows"], cols=job["cols"],
                                             df=job["dataflow"]))
    if job["kind"] == "gemm":
        m, n, k = job["dims"]
        topo = f"Layer,M,N,K,\n{name},{m},{n},{k},\n"
    else:
        h, w, r, s, c, f, st = job["dims"]
        topo = ("Layer name,IFMAP Height,IFMAP Width,Filter Height,Filter Width,Channels,"
                f"Num Filter,Strides,\n{name},{h},{w},{r},{s},{c},{f},{st},\n")
    (d / "topo.csv").write_text(topo)
    (d / "layout.csv").write_text(LAYOUT.format(name=name))
    sim = scalesim(save_disk_space=True, verbose=False, config=str(d / "cfg.cfg"),
                   topology=str(d / "topo.csv"), layout=str(d / "layout.csv"),
                   input_type_gemm=job["kind"] == "gemm")
    t0 = time.perf_counter()
    sim.run_scale(top_path=str(d / "out"))
    wall = time.perf_counter() - t0
    with open(d / "out" / tag / "COMPUTE_REPORT.csv") as fh:
        row = next(csv.DictReader(fh, skipinitialspace=True))
    return dict(job, cycles=int(row["Total Cycles"]), stall=int(row["Stall Cycles"]),
                scalesim_wall_s=wall)


def worker(job_file: str, out_file: str) -> None:
    """Entry point inside the venv: run each job and append its result as a JSON line."""
    jobs = json.loads(Path(job_file).read_text())
    real_stdout = sys.stdout
    with tempfile.TemporaryDirectory() as tmp, open(out_file, "w") as out:
        for job in jobs:
            sys.stdout = sys.stderr  # SCALE-Sim prints banners; keep them off our result stream
            try:
                result = run_one_scalesim(job, Path(tmp))
            finally:
                sys.stdout = real_stdout
            out.write(json.dumps(result) + "\n")
            out.flush()


def run_scalesim(jobs: list[dict], procs: int) -> list[dict]:
    """Run the jobs in ``procs`` worker processes of the venv interpreter; keep job order."""
    python = venv_python()
    chunks = [jobs[i::procs] for i in range(procs)]
    with tempfile.TemporaryDirectory() as tmp:
        running = []
        for i, chunk in enumerate(chunks):
            if not chunk:
                continue
            jf, of = Path(tmp) / f"jobs{i}.json", Path(tmp) / f"out{i}.jsonl"
            jf.write_text(json.dumps(chunk))
            p = subprocess.Popen([str(python), __file__, "--worker", str(jf), str(of)],
                                 stderr=subprocess.DEVNULL)
            running.append((p, of))
        results = []
        for p, of in running:
            if p.wait() != 0:
                raise RuntimeError(f"SCALE-Sim worker failed (exit {p.returncode})")
            results += [json.loads(line) for line in of.read_text().splitlines()]
    key = {(j["name"], j["rows"], j["cols"], j["dataflow"]): i for i, j in enumerate(jobs)}
    return sorted(results, key=lambda r: key[(r["name"], r["rows"], r["cols"], r["dataflow"])])


def record(results: list[dict]) -> None:
    """Write the SCALE-Sim figures into tests/data/scalesim_layers.csv."""
    header = ("layer", "kind", *GEMM_COLS, *CONV_COLS, "rows", "cols", "dataflow",
              "scalesim_version", "cycles")
    CSV_PATH.parent.mkdir(parents=True, exist_ok=True)
    with open(CSV_PATH, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for r in results:
            gemm = r["dims"] if r["kind"] == "gemm" else [""] * 3
            conv = r["dims"] if r["kind"] == "conv" else [""] * 7
            w.writerow([r["name"], r["kind"], *gemm, *conv, r["rows"], r["cols"],
                        r["dataflow"], SCALESIM_VERSION, r["cycles"]])


# ----------------------------------------------------------------------------- npusim side
def npusim_cycles(results: list[dict], reps: int) -> tuple[list[int], list[float], float]:
    """npusim's cycles per job, warm wall time per job, and one batched call's wall time."""
    sys.path.insert(0, str(REPO))
    import numpy as np
    from npusim.kernels import engine as k

    codes = {"os": k.OS, "ws": k.WS, "is": k.IS}
    mnk = []
    for r in results:
        if r["kind"] == "gemm":
            mnk.append(tuple(r["dims"]))
        else:
            h, w, fh, fw, c, f, st = r["dims"]
            mnk.append(k.conv_as_gemm(h, w, fh, fw, c, f, st, st, ceil_mode=True))
    cycles, walls = [], []
    for r, (m, n, kk) in zip(results, mnk):
        args = (codes[r["dataflow"]], r["rows"], r["cols"], m, n, kk)
        k.systolic_cycles(*args)  # compile / load from cache outside the timed loop
        t0 = time.perf_counter()
        for _ in range(reps):
            c = k.systolic_cycles(*args)
        walls.append((time.perf_counter() - t0) / reps)
        cycles.append(int(c))
    arr = {name: np.array(col, dtype=np.int64) for name, col in
           zip(("df", "rows", "cols", "m", "n", "k"),
               zip(*[(codes[r["dataflow"]], r["rows"], r["cols"], *x)
                     for r, x in zip(results, mnk)]))}
    out = np.zeros(len(results), dtype=np.int64)
    depth = np.zeros(len(results), dtype=np.int64)  # adder-tree depth: slice tiles only

    def batch():
        return k.gemm_cycles_many(arr["df"], arr["rows"], arr["cols"], arr["m"], arr["n"],
                                  arr["k"], depth, 0, 1, out)

    batch()
    t0 = time.perf_counter()
    for _ in range(reps):
        batch()
    batch_wall = (time.perf_counter() - t0) / reps
    assert [int(x) for x in out] == cycles
    return cycles, walls, batch_wall


def report(results: list[dict], cycles: list[int], walls: list[float], batch_wall: float) -> str:
    """The side-by-side table as text."""
    head = (f"{'layer':<28}{'array':>8}{'df':>4}{'scalesim':>10}{'npusim':>10}{'diff%':>8}"
            f"{'exact':>6}{'ss wall s':>11}{'np wall us':>11}{'speedup':>10}")
    lines = [head, "-" * len(head)]
    worst = 0.0
    for r, c, w in zip(results, cycles, walls):
        diff = 100.0 * (c - r["cycles"]) / r["cycles"]
        worst = max(worst, abs(diff))
        exact = "yes" if c - 1 == r["cycles"] else "no"
        lines.append(f"{r['name']:<28}{r['rows']:>4}x{r['cols']:<3}{r['dataflow']:>4}"
                     f"{r['cycles']:>10}{c:>10}{diff:>8.3f}{exact:>6}"
                     f"{r['scalesim_wall_s']:>11.2f}{w * 1e6:>11.2f}"
                     f"{r['scalesim_wall_s'] / w:>10.0f}x")
    ss_total = sum(r["scalesim_wall_s"] for r in results)
    lines += ["-" * len(head),
              f"{len(results)} runs; worst |diff| {worst:.3f}% (npusim counts cycles, SCALE-Sim "
              f"the last cycle's index: exact = npusim - 1 == scalesim)",
              f"SCALE-Sim total {ss_total:.1f} s; npusim per-call total "
              f"{sum(walls) * 1e3:.3f} ms ({ss_total / sum(walls):,.0f}x); one batched call over "
              f"the table {batch_wall * 1e6:.1f} us ({ss_total / batch_wall:,.0f}x)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small layers on 128x128 only")
    ap.add_argument("--record", action="store_true",
                    help=f"rewrite {CSV_PATH.relative_to(REPO)} from the SCALE-Sim results")
    ap.add_argument("--procs", type=int, default=1,
                    help="parallel SCALE-Sim processes (1 gives the fairest wall times)")
    ap.add_argument("--reps", type=int, default=2000, help="repetitions of each npusim call")
    ap.add_argument("--worker", nargs=2, metavar=("JOBS", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        worker(*a.worker)
        return 0
    jobs = jobs_for(a.quick)
    print(f"running SCALE-Sim {SCALESIM_VERSION} (CALC mode) on {len(jobs)} runs ...",
          flush=True)
    results = run_scalesim(jobs, max(1, a.procs))
    if a.record:
        record(results)
        print(f"wrote {CSV_PATH}")
    cycles, walls, batch_wall = npusim_cycles(results, a.reps)
    print(report(results, cycles, walls, batch_wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
