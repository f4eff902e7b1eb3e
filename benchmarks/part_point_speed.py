"""Speed of the serving loop's part points in one process: prints figures, asserts nothing.

    python benchmarks/part_point_speed.py [--profile] [--arch rngd] [--model llama-3.3-70b]

A part point is one call a cost model makes into the engine when the serving loop needs a
grid point it has not costed yet (:meth:`npusim.workloads.stepcost.StepCostModel._run`, or
the power band's :meth:`npusim.workloads.powerband.BandCostModel._run`): the part graph is
built, loaded, quantised and simulated. K-Perf spends most of its time there.

Prints, for a plain and a band cost model (Llama 3.3 70B, fp8, four chips by default):

- the CPU seconds of the serving sweep of a K-Perf cell grid (inputs and outputs 128 and
  2,048 tokens, 1 to 250 users), and how many part points it met;
- ``cold``: the same points costed again by a fresh cost model, every memo emptied (the
  mapping search's, the shared part graphs of :func:`npusim.frontend.llm.load_part`), as the
  first cost model of a process meets them: ms CPU per part point;
- ``shared``: the same points at another precision (``--other``, default int8): the part
  graphs are built and loaded already (as K-Perf's second and later precisions find them).

CPU time (``time.process_time``) is the figure to compare on a machine shared with other work.
``--profile`` prints the top of a cProfile of the cold pass.
"""
from __future__ import annotations

import argparse
import time


def _sweep(model) -> float:
    from npusim.workloads.serving import Scenario, simulate_serving
    c0 = time.process_time()
    for i in (128, 2048):
        for o in (128, 2048):
            for u in (1, 5, 25, 50, 100, 150, 200, 250):
                if hasattr(model, "start_log"):
                    model.start_log()
                simulate_serving(model, Scenario(i, o, users=u))
    return time.process_time() - c0


def _points(cls, args):
    """The part points a sweep meets, in order."""
    seen: list = []
    run = cls._run

    def spy(self, *a, tp=None):
        seen.append((a, tp))
        return run(self, *a, tp=tp)

    cls._run = spy
    try:
        m = cls(args.model, args.arch, chips=args.chips, precision=args.precision)
        cpu = _sweep(m)
    finally:
        cls._run = run
    uniq = list(dict.fromkeys(seen))
    return cpu, uniq


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="rngd")
    ap.add_argument("--model", default="llama-3.3-70b")
    ap.add_argument("--chips", type=int, default=4)
    ap.add_argument("--precision", default="fp8")
    ap.add_argument("--other", default="int8", help="precision of the shared pass")
    ap.add_argument("--profile", action="store_true", help="cProfile the cold pass")
    ap.add_argument("--sort", default="cumulative", help="cProfile order (e.g. tottime)")
    args = ap.parse_args()
    from npusim.engine import mapping
    from npusim.workloads.powerband import BandCostModel
    from npusim.workloads.serving import Scenario, simulate_serving
    from npusim.workloads.stepcost import StepCostModel
    # compile (or load) the serving kernels first, on another model
    simulate_serving(StepCostModel("llama-3.1-8b", args.arch, precision="bf16"),
                     Scenario(128, 128, users=5))
    for cls in (StepCostModel, BandCostModel):
        _clear(mapping)
        cpu, pts = _points(cls, args)
        m = cls(args.model, args.arch, chips=args.chips, precision=args.precision)
        other = cls(args.model, args.arch, chips=args.chips, precision=args.other)
        _clear(mapping)
        prof = None
        if args.profile:
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
        cold = _per_point(m, pts)
        if prof is not None:
            prof.disable()
        shared = _per_point(other, pts)
        print(f"{cls.__name__:<14} {args.arch} {args.model} {args.precision}: sweep "
              f"{cpu:6.2f} s CPU, {len(pts)} part points; cold {1e3 * cold:6.2f} ms CPU per "
              f"part point, shared ({args.other}) {1e3 * shared:6.2f} ms")
        if prof is not None:
            import pstats
            pstats.Stats(prof).sort_stats(args.sort).print_stats(40)


def _clear(mapping) -> None:
    """Empty the process's memos of part points (those a version of npusim has)."""
    for name in ("_CACHE", "_CANDIDATES"):
        getattr(mapping, name, {}).clear()
    from npusim.frontend import llm
    for name in ("_load_part", "_precise_part"):
        f = getattr(llm, name, None)
        if f is not None:
            f.cache_clear()


def _per_point(model, pts) -> float:
    """CPU seconds per part point of ``model`` over ``pts``."""
    c0 = time.process_time()
    for a, tp in pts:
        model._run(*a, tp=tp)
    return (time.process_time() - c0) / max(1, len(pts))

if __name__ == "__main__":
    main()
