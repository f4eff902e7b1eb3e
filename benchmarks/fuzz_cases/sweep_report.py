"""Sweep folders and stores ``npusim sweep report`` cannot report, for the fuzzing benchmark.

Classes (labels), every one certainly invalid (exit 0 would be a bug):

``sweep-report/folder``
    ``sweep report DIR`` where DIR is missing, empty (no ``sweep.sqlite``), a regular file
    that is not a store, or a path under a regular file.
``sweep-report/store-bytes``
    ``DIR/sweep.sqlite`` holds random bytes, a truncated SQLite database, or a database of
    unrelated tables.
``sweep-report/store-content``
    A real store (``npusim.dse.store.Store``, when it is importable) with no points, only
    failed points, no spec in its meta, a spec that is not YAML, or a spec the spec parser
    refuses.
"""
from __future__ import annotations

import pathlib
import random
import sqlite3

NAME = "sweep.sqlite"

# A plausible spec for the stores whose fault lies elsewhere (no points, only failed points):
# parsed or refused, such a store cannot be reported, so every case must fail.
SPEC_OK = """name: fuzz
base: edu
fields:
  - path: cores.sram
    values: ["1 MiB", "2 MiB"]
workloads:
  - name: mm
    kind: graph
    params: {name: resnet50, batch: 1}
objectives:
  - {metric: latency_s, goal: min}
"""


def _sqlite_bytes(workdir: pathlib.Path, rng: random.Random) -> bytes:
    """A small SQLite database of one unrelated table."""
    path = workdir / f"sweep_report_db_{rng.randrange(10**9)}.sqlite"
    con = sqlite3.connect(path)
    try:
        con.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        con.executemany("INSERT INTO t VALUES (?, ?)", [(i, "x" * i) for i in range(50)])
        con.commit()
    finally:
        con.close()
    data = path.read_bytes()
    path.unlink()
    return data


def _record(i: int, error: str | None) -> dict:
    """One record of the contract's shape."""
    return {"key": f"{i:064x}", "point": i, "phase": "sample", "workload": "mm",
            "params": {"cores.sram": f"{i + 1} MiB"}, "values": {"cores.sram": (i + 1) * 2**20},
            "metrics": {} if error else {"latency_s": 1e-3 * (i + 1)}, "violations": [],
            "feasible": error is None, "error": error, "elapsed_s": 0.01, "worker": "fuzz"}


def _store(folder: pathlib.Path, kind: str) -> bool:
    """A real store in ``folder`` broken in the way ``kind`` names; False if the store module
    is not there (or not yet of the contract's shape)."""
    try:
        from npusim.dse.store import Store
    except ImportError:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with Store(folder / NAME) as store:
            if kind != "no-points":
                for i in range(3):
                    store.put(_record(i, "CapacityError: does not fit" if kind == "all-failed"
                                      else None))
            if kind == "not-yaml":
                store.set_meta("spec", "name: [unclosed\n  - {")
            elif kind == "bad-spec":
                store.set_meta("spec", "name: 3\nfields: nope\n")
            elif kind != "no-spec":
                store.set_meta("spec", SPEC_OK)
    except Exception:          # noqa: BLE001  a store of another shape: leave the class out
        return False
    return True


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield (label, argv, must_fail) for about ``n`` sweep folders that cannot be reported."""
    workdir = pathlib.Path(workdir)
    afile = workdir / "sweep_report_a_file.yaml"
    afile.write_text("name: not a store\n", encoding="utf-8")
    made = 0
    while made < n:
        folder = workdir / f"sweep_report_{made}"
        kind = rng.random()
        if kind < 0.3:
            target = rng.choice([str(folder / "missing"), str(afile), str(afile / "sub"),
                                 str(folder)])
            if target == str(folder):
                folder.mkdir(parents=True, exist_ok=True)          # empty: no sweep.sqlite
            yield ("sweep-report/folder", ["sweep", "report", target], True)
        elif kind < 0.65:
            folder.mkdir(parents=True, exist_ok=True)
            which = rng.randrange(3)
            if which == 0:
                data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4096)))
            elif which == 1:
                full = _sqlite_bytes(workdir, rng)
                data = full[:rng.randint(1, len(full) - 1)]
            else:
                data = _sqlite_bytes(workdir, rng)
            (folder / NAME).write_bytes(data)
            yield ("sweep-report/store-bytes", ["sweep", "report", str(folder)], True)
        else:
            kind = rng.choice(("no-points", "all-failed", "no-spec", "not-yaml", "bad-spec"))
            if not _store(folder, kind):
                continue                # no store module yet: the other classes only
            yield ("sweep-report/store-content", ["sweep", "report", str(folder)], True)
        made += 1
