"""Speed of one design point in one process: prints figures, asserts nothing.

    python benchmarks/point_speed.py [--points 60] [--profile]

The points are those of ``benchmarks/sweep_speed.py`` (Llama 3.1 8B decode, batch 32, 1,024
cached tokens, bf16, on RNGD variants of SRAM, PE count and HBM bandwidth), evaluated by one
:class:`npusim.dse.evaluate.Evaluator` in this process, with no store and no workers:

- the first point (the graph is built, every cache is empty);
- ``cold``: the other points, each seen for the first time (what a sweep does);
- ``warm``: the same points again (every cache that may hit, hits).

Each line gives wall and CPU seconds per point and points per second on both clocks (the CPU
figure is the one to compare on a machine shared with other work). ``--profile`` prints the
top of a cProfile of the cold pass.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_speed import spec_text  # noqa: E402


def _timed(label: str, ev, pts, start: int = 0) -> None:
    w0, c0 = time.perf_counter(), time.process_time()
    for i, p in enumerate(pts):
        recs = ev.evaluate(start + i, p)
        if recs[0]["error"]:
            print(f"  point {start + i} failed: {recs[0]['error']}")
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    n = max(1, len(pts))
    print(f"{label:<22} {len(pts):4d} points: {1e3 * wall / n:8.1f} ms wall "
          f"({n / wall:6.1f} points/s), {1e3 * cpu / n:8.1f} ms CPU ({n / cpu:6.1f} points/s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=60, help="design points (default 60)")
    ap.add_argument("--profile", action="store_true", help="cProfile the cold pass")
    args = ap.parse_args()
    from npusim.dse.evaluate import Evaluator
    from npusim.dse.spec import load_spec
    from npusim.dse.strategies import points
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speed.yaml"
        path.write_text(spec_text(args.points))
        spec = load_spec(path)
    pts = points(spec)
    ev = Evaluator(spec)
    _timed("first point", ev, pts[:1])
    if args.profile:
        import cProfile
        import pstats
        prof = cProfile.Profile()
        prof.enable()
        _timed("cold (new points)", ev, pts[1:], 1)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    else:
        _timed("cold (new points)", ev, pts[1:], 1)
    _timed("warm (same points)", ev, pts[1:], 1)


if __name__ == "__main__":
    main()
