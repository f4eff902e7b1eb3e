"""Speed of the K-Perf report and of start-up: prints figures, asserts nothing.

    python benchmarks/report_speed.py [--arch rngd] [--model llama-3.1-8b] [--result FILE]

Figures: the CPU time to draw and save each K-Perf figure with its fixed layout (the report's)
and with matplotlib's constrained layout (the path before it, kept as ``layout="constrained"``),
and their ratio, and to write the xlsx and the csv, one after the other in this process; the
whole report written serially and side by side (:func:`npusim.report.parallel.run_writers`;
wall time, and CPU time of this process and its forked writers, which other work on a shared
machine does not inflate), with either layout; the wall time of ``npusim --help`` and the
import time of the command line. The report is written from a saved result: ``--result FILE`` (a
pickle this script wrote before) or, without it, one K-Perf run, saved to FILE when given
(target: the whole ``npusim kperf --arch rngd --model llama-3.1-8b`` in 10 s on 2 cores).
"""
from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _result(args):
    path = args.result
    if path is not None and path.exists():
        with path.open("rb") as f:
            return pickle.load(f), f"loaded from {path}"
    from npusim.workloads import kperf as kp
    t = time.perf_counter()
    result = kp.kperf(args.arch, args.model)
    took = time.perf_counter() - t
    if path is not None:
        with path.open("wb") as f:
            pickle.dump(result, f)
    return result, f"simulated in {took:.1f} s" + (f", saved to {path}" if path else "")


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the forked writers): unlike the
    wall time, not inflated by other work on a shared machine."""
    try:
        import resource
    except ImportError:                    # no resource module (Windows): this process only
        return time.process_time()
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _cpu_of(write, *args) -> float:
    """CPU seconds of ``write(*args)`` in this process."""
    t = time.process_time()
    write(*args)
    return time.process_time() - t


def _write_report(result, outdir: Path, processes, layout: str) -> None:
    """:func:`npusim.report.kperf.write_kperf`'s files, its figures drawn with ``layout``."""
    from functools import partial

    from npusim.figures import draw_and_save
    from npusim.report import kperf as rk
    from npusim.report.parallel import run_writers
    outdir.mkdir(parents=True)
    run_writers([*(partial(draw_and_save, partial(make, layout=layout), result, outdir / name)
                   for name, make in rk.figures(result)),
                 partial(rk.write_xlsx, result, outdir / rk.XLSX),
                 partial(rk.write_csv, result, outdir / rk.CSV)], processes)


def _best(cmd: list[str], runs: int) -> float:
    """Fastest wall time of ``runs`` runs of ``cmd`` (the least disturbed by other work)."""
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        best = min(best, time.perf_counter() - t)
    return best


def _import_us(module: str) -> int:
    """Cumulative import time of ``module`` in a fresh interpreter, from ``-X importtime``."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                       check=True, capture_output=True, text=True)
    for line in p.stderr.splitlines():
        parts = [x.strip() for x in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1])
    return -1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="rngd")
    ap.add_argument("--model", default="llama-3.1-8b")
    ap.add_argument("--result", type=Path, default=None, metavar="FILE",
                    help="a pickled K-Perf result to write (made and saved here if missing)")
    ap.add_argument("--runs", type=int, default=5, help="runs of npusim --help (default 5)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="draws of each figure and file, the least CPU time kept (default 3)")
    args = ap.parse_args()

    t = time.perf_counter()
    from npusim.report import kperf as rk
    from npusim.report.parallel import processes_for
    import matplotlib.figure  # noqa: F401
    import openpyxl  # noqa: F401
    print(f"{'import report, matplotlib, openpyxl':36s}: {time.perf_counter() - t:6.2f} s")
    result, how = _result(args)
    print(f"K-Perf result: {len(result.records)} scenarios, {how}")

    from npusim.figures import LAYOUTS, save_figure
    out = Path(tempfile.mkdtemp(prefix="report_speed_"))
    for name, write in (("xlsx", rk.write_xlsx), ("csv", rk.write_csv)):
        best = min(_cpu_of(write, result, out / f"kperf.{name}") for _ in range(args.repeat))
        print(f"  {name:34s}: {best:6.2f} s CPU")
    save_figure(rk.figures(result)[0][1](result), out / "warm.png")   # fonts, caches
    print(f"  {'CPU s, best of ' + str(args.repeat):34s}  {'fixed':>6s} {'constr.':>7s} "
          f"{'ratio':>6s}")
    totals = dict.fromkeys(LAYOUTS, 0.0)
    for name, make in rk.figures(result):
        took = {lay: min(_cpu_of(lambda: save_figure(make(result, layout=lay), out / name))
                         for _ in range(args.repeat)) for lay in LAYOUTS}
        for lay in LAYOUTS:
            totals[lay] += took[lay]
        print(f"  {name:34s}: {took['fixed']:6.2f} {took['constrained']:7.2f} "
              f"{took['fixed'] / took['constrained']:6.2f}")
    print(f"{'all figures, one after the other':36s}: {totals['fixed']:6.2f} "
          f"{totals['constrained']:7.2f} {totals['fixed'] / totals['constrained']:6.2f}")
    n_files = len(rk.figures(result)) + 2
    for procs in (1, None):
        n = processes_for(n_files, procs)
        for lay in LAYOUTS:
            t, c = time.perf_counter(), _cpu()
            _write_report(result, out / f"p{procs}_{lay}", procs, lay)
            wall, cpu = time.perf_counter() - t, _cpu() - c
            what = f"whole report, {n} process{'es' if n > 1 else ''}, {lay}"
            print(f"{what:36s}: {wall:6.2f} s wall, {cpu:.2f} s CPU")

    help_s = _best([sys.executable, "-c", "from npusim.cli import main; main(['--help'])"],
                   args.runs)
    print(f"{f'npusim --help wall (best of {args.runs})':36s}: {help_s:6.2f} s")
    print(f"{'import npusim.cli':36s}: {_import_us('npusim.cli') / 1e6:6.3f} s")
    print(f"files in {out}")


if __name__ == "__main__":
    main()
