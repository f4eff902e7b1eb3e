"""Wall time of the K-Perf command lines: prints figures, asserts nothing.

    python benchmarks/kperf_suite_speed.py [--only 8b,70b,32b,405b,readme] [--quick] [--jobs N]

Each job runs ``npusim kperf`` as a subprocess in a temporary folder (report files included, as
a user runs it): the README's job (``--arch rngd --model llama-3.1-8b``, target 10 s on 2 cores)
and the four calls of the K-Perf suite (each model at bf16, fp8, int8, int4 and mxfp4, ``--vs
h100``; target 60 s for the four together). ``--quick`` runs the README job only; ``--jobs``
passes ``--jobs`` to every call (default: the command's own default). Times are wall seconds of
the whole process, imports and report writing included; the Numba cache should be warm (run
the script twice).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

PRECISIONS = "bf16,fp8,int8,int4,mxfp4"
README = ("readme", ["--arch", "rngd", "--model", "llama-3.1-8b"], 10.0)
SUITE = [(key, ["--arch", "rngd", "--model", model, "--precision", PRECISIONS, "--vs", "h100"])
         for key, model in (("8b", "llama-3.1-8b"), ("70b", "llama-3.3-70b"),
                            ("32b", "exaone-4.0-32b"), ("405b", "llama-3.1-405b"))]
SUITE_TARGET_S = 60.0


def run(args: list[str], jobs: str | None) -> tuple[float, int]:
    """Wall seconds and exit code of one ``npusim kperf`` call in a fresh temporary folder."""
    # the console script's own entry point, run by this interpreter (as `npusim kperf ...`)
    cmd = [sys.executable, "-c", "import sys; from npusim.cli import main; sys.exit(main())",
           "kperf", *args, "--no-progress", "--summary-only"]
    if jobs is not None:
        cmd += ["--jobs", jobs]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        done = subprocess.run(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, env=os.environ.copy())
        wall = time.perf_counter() - t
    if done.returncode:
        print(done.stderr.strip().splitlines()[-1:] or "", file=sys.stderr)
    return wall, done.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None,
                    help="comma-separated subset of readme, 8b, 70b, 32b, 405b")
    ap.add_argument("--quick", action="store_true", help="the README job only")
    ap.add_argument("--jobs", default=None, help="--jobs for every call")
    args = ap.parse_args()
    wanted = {"readme"} if args.quick else (
        set(args.only.split(",")) if args.only else {"readme", "8b", "70b", "32b", "405b"})
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count())
    print(f"cores available: {cores}")
    if "readme" in wanted:
        key, cli, target = README
        wall, code = run(cli, args.jobs)
        print(f"{'npusim kperf ' + ' '.join(cli):100s} {wall:7.1f} s  (target {target:.0f} s)"
              f"{'' if code == 0 else f'  exit {code}'}")
    total, ran = 0.0, 0
    for key, cli in SUITE:
        if key not in wanted:
            continue
        wall, code = run(cli, args.jobs)
        total += wall
        ran += 1
        print(f"{'npusim kperf ' + ' '.join(cli):100s} {wall:7.1f} s"
              f"{'' if code == 0 else f'  exit {code}'}")
    if ran:
        print(f"{'suite total (' + str(ran) + ' of 4 calls)':100s} {total:7.1f} s  "
              f"(target {SUITE_TARGET_S:.0f} s for all 4)")


if __name__ == "__main__":
    main()
