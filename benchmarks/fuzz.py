"""Fuzzing benchmark: malformed inputs through the command line; prints counts, asserts nothing.

    python benchmarks/fuzz.py              # about 200 inputs per corpus
    python benchmarks/fuzz.py --quick      # about 20 per corpus
    python benchmarks/fuzz.py -n 1000 --only onnx --show 20

The README promises that bad input ends with exit status 2 and one clear line
(``npusim: error: ...``). Each corpus in ``benchmarks/fuzz_cases/`` yields malformed inputs of
one family (ONNX protos and bytes, arch files and overrides, workload sizes, measured-data
files). Every input runs through ``npusim.cli.main`` in a worker process, so a hang is caught by
a timeout and a crash by the worker's own handler; the worker is restarted after a hang.

Each input ends as one of:

- ``clean``: exit 2 and exactly one non-empty stderr line containing ``: error: ``;
- ``accepted``: exit 0 on an input its corpus does not mark as certainly invalid (a mutation
  that happened to leave the input valid);
- ``bad``: anything else: a traceback, another exit status, several lines, a hang, or exit 0 on
  an input marked as certainly invalid. The target is none.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import multiprocessing as mp
import random
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path

CASES_DIR = Path(__file__).resolve().parent / "fuzz_cases"


def corpora() -> dict[str, object]:
    """The corpus modules of ``fuzz_cases/``, by file stem."""
    out = {}
    for path in sorted(CASES_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"fuzz_cases_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out[path.stem] = module
    return out


def run_one(argv: list[str]) -> tuple[int | None, str, str]:
    """``npusim ARGV`` in this process: (exit status or None for a crash, stderr, crash text)."""
    from npusim.cli import main
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001  a crash is what this benchmark counts
        return None, err.getvalue(), traceback.format_exc(limit=-3)
    return code, err.getvalue(), ""


def _worker(conn) -> None:
    while True:
        argv = conn.recv()
        if argv is None:
            return
        conn.send(run_one(argv))


class Worker:
    """One long-lived process running inputs; replaced when an input hangs."""

    def __init__(self):
        self.conn, child = mp.Pipe()
        self.proc = mp.get_context("fork").Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()

    def run(self, argv: list[str], timeout: float):
        self.conn.send(argv)
        if self.conn.poll(timeout):
            try:
                return self.conn.recv()
            except EOFError:  # the worker died (a segfault in a kernel, say)
                self.proc.join()
                return None, "", f"worker process died with exit status {self.proc.exitcode}"
        self.proc.kill()
        self.proc.join()
        return "hang"

    def close(self) -> None:
        if self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(5)


def classify(outcome, must_fail: bool) -> tuple[str, str]:
    """``(clean | accepted | bad, why)`` for one input's outcome."""
    if outcome == "hang":
        return "bad", "hang (timeout)"
    code, err, crash = outcome
    if code is None:
        return "bad", "crash: " + crash.strip().splitlines()[-1]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if code == 0:
        return ("bad", "exit 0 on an invalid input") if must_fail else ("accepted", "")
    if code == 2 and len(lines) == 1 and ": error: " in lines[0] and "Traceback" not in err:
        return "clean", ""
    return "bad", f"exit {code}, {len(lines)} stderr lines: {(lines or [''])[-1][:160]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200, help="inputs per corpus (default 200)")
    ap.add_argument("--quick", action="store_true", help="20 inputs per corpus")
    ap.add_argument("--only", nargs="+", default=None, metavar="CORPUS",
                    help="only these corpora (file stems in benchmarks/fuzz_cases/)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per input")
    ap.add_argument("--show", type=int, default=10, help="bad inputs to list")
    a = ap.parse_args(argv)
    n = 20 if a.quick else a.n
    found = corpora()
    names = a.only or list(found)
    unknown = sorted(set(names) - set(found))
    if unknown:
        ap.error(f"no corpus {', '.join(unknown)}; have {', '.join(found)}")

    totals: dict[str, Counter] = defaultdict(Counter)
    bad: list[tuple[str, list[str], str]] = []
    worker = Worker()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="npusim-fuzz-") as tmp:
        for name in names:
            workdir = Path(tmp) / name
            workdir.mkdir()
            rng = random.Random(f"{a.seed}/{name}")
            for label, case_argv, must_fail in found[name].cases(workdir, rng, n):
                outcome = worker.run([str(x) for x in case_argv], a.timeout)
                if not worker.proc.is_alive():
                    worker = Worker()
                kind, why = classify(outcome, must_fail)
                totals[label][kind] += 1
                if kind == "bad":
                    bad.append((label, case_argv, why))
    worker.close()
    elapsed = time.perf_counter() - t0

    width = max((len(k) for k in totals), default=10)
    print(f"{'input class':<{width}}  {'tried':>6}  {'clean':>6}  {'accepted':>8}  {'bad':>4}")
    grand = Counter()
    for label in sorted(totals):
        c = totals[label]
        grand.update(c)
        tried = sum(c.values())
        print(f"{label:<{width}}  {tried:>6}  {c['clean']:>6}  {c['accepted']:>8}  {c['bad']:>4}")
    tried = sum(grand.values())
    print(f"{'all':<{width}}  {tried:>6}  {grand['clean']:>6}  {grand['accepted']:>8}  "
          f"{grand['bad']:>4}")
    print(f"\n{tried} malformed inputs tried in {elapsed:.0f} s; {grand['bad']} ended other than "
          f"with exit 2 and one clear line (target: none).")
    for label, case_argv, why in bad[:a.show]:
        print(f"  {label}: npusim {' '.join(map(str, case_argv))[:200]}\n      {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
