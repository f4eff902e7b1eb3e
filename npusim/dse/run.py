"""Running a sweep: which points are left, who evaluates them, and the store that keeps them.

The driver (this process) owns the store and is its only writer; workers only evaluate. Points
go to local worker processes (``workers``) or to the workers of a Dask distributed cluster
(``scheduler="tcp://HOST:PORT"``) in small chunks, and each record is committed the moment its
chunk comes back, so a sweep killed at any moment loses at most the chunks in flight; the next
run of the same spec finds every stored point by its key and evaluates only the rest.

Phases: the strategy's points (grid, random, Latin hypercube) or its generations (NSGA-II,
each asked from what the earlier ones told, stored results included, so a resumed search asks
the same points), then, when the spec asks for it, the one-at-a-time neighbours of each best
point that the tornado plots read.
"""
from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NpusimError
from .evaluate import Evaluator, digest, one_line, record_key

Task = tuple  # (index, point, phase)

#: chunks a worker is given at most at once; small enough that a killed worker loses little
MAX_CHUNK = 8

#: how local workers start: forked on Linux (at once, with npusim already imported, and from
#: any main module: a notebook, ``python -``), fresh interpreters elsewhere (macOS and Windows
#: cannot fork safely; there the main module must be importable, as a script file is)
START = "fork" if sys.platform.startswith("linux") else "spawn"


@dataclass
class Summary:
    """What a run did: design points and records, by outcome."""

    store: Path
    points: int = 0            # design points the spec asks for (all phases)
    stored_before: int = 0     # of those, found in the store from an earlier run
    evaluated: int = 0         # evaluated by this run
    records: int = 0           # records written by this run (points x workloads)
    failed: int = 0            # records with an error (stored with it)
    infeasible: int = 0        # records that break a constraint (stored and marked)
    seconds: float = 0.0
    workers: str = ""
    interrupted: bool = False
    phases: dict = field(default_factory=dict)
    first_s: float = math.nan  # when the first chunk came back (workers started, graphs built)
    first_points: int = 0      # points in that chunk

    @property
    def points_per_s(self) -> float:
        """Points evaluated per second over the whole run, start-up included."""
        return self.evaluated / self.seconds if self.seconds > 0 else math.nan

    @property
    def steady_points_per_s(self) -> float:
        """Points per second once the first chunk is back: the rate a longer sweep runs at,
        without the workers' start-up (interpreter, imports, first graph)."""
        rest, dt = self.evaluated - self.first_points, self.seconds - self.first_s
        return rest / dt if rest > 0 and dt > 0 else math.nan

    def lines(self) -> list[str]:
        rate = f", {self.points_per_s:.1f} points/s" if self.evaluated else ""
        out = [f"{self.points} design points: {self.stored_before} already in the store, "
               f"{self.evaluated} evaluated now in {self.seconds:.1f} s on {self.workers}{rate}",
               f"{self.records} records written: {self.failed} failed (stored with their "
               f"error), {self.infeasible} break a constraint (stored, marked infeasible)",
               f"store: {self.store}"]
        if self.interrupted:
            out.append("interrupted: every finished point is stored; run the same command "
                       "again to finish the rest")
        return out


# ----------------------------------------------------------------------------- workers
_EVALUATORS: dict[str, Evaluator] = {}


def _evaluator(spec) -> Evaluator:
    """This process's evaluator of ``spec`` (its graphs kept between chunks)."""
    key = digest({"text": spec.text, "source": spec.source})
    ev = _EVALUATORS.get(key)
    if ev is None:
        _EVALUATORS.clear()  # one spec at a time per worker: drop another spec's graphs
        ev = _EVALUATORS[key] = Evaluator(spec)
    return ev


def evaluate_chunk(spec, chunk: Sequence[Task]) -> list[dict]:
    """Evaluate a chunk of points (a worker's job, local or on Dask)."""
    ev = _evaluator(spec)
    out = []
    for index, point, phase in chunk:
        out.extend(ev.evaluate(index, point, phase))
    return out


class Executor:
    """Evaluates chunks of points somewhere and yields their records as they finish."""

    label = ""

    def run(self, spec, chunks: list[list[Task]]) -> Iterator[tuple[list[Task], list[dict]]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class InProcess(Executor):
    """One worker: this process (no start-up cost; what ``--workers 1`` means)."""

    label = "1 worker (this process)"

    def run(self, spec, chunks):
        for chunk in chunks:
            yield chunk, evaluate_chunk(spec, chunk)


class LocalProcesses(Executor):
    """``n`` local worker processes (fresh interpreters, started once per run). When a worker
    dies (killed, out of memory), the pool is started again and the chunks not yet back are
    run again; when the pool breaks :data:`ATTEMPTS` times with no chunk finishing between,
    the chunks left end as failed records saying so."""

    ATTEMPTS = 3

    def __init__(self, n: int, spec=None):
        self.n = n
        self.label = f"{n} local worker processes"
        if spec is not None and START == "fork":
            # the forked workers inherit this process's evaluator, graphs and loaded kernels
            _evaluator(spec).warm()
        self.pool = self._pool()

    def _pool(self):
        import concurrent.futures as cf
        import multiprocessing as mp
        pool = cf.ProcessPoolExecutor(max_workers=self.n, mp_context=mp.get_context(START))
        # start every worker now, before the progress bar's thread exists: a forked child
        # then holds no lock another thread of this process had
        if START == "fork":
            list(pool.map(_pid, range(self.n)))
        return pool

    def run(self, spec, chunks):
        import concurrent.futures as cf
        from concurrent.futures.process import BrokenProcessPool
        pending = list(range(len(chunks)))
        breaks = 0   # pool breaks since a chunk last finished
        while pending:
            futures = {self.pool.submit(evaluate_chunk, spec, chunks[i]): i for i in pending}
            broken = False
            try:
                for f in cf.as_completed(futures):
                    i = futures[f]
                    try:
                        recs = f.result()
                    except BrokenProcessPool:
                        broken = True
                        break
                    except Exception as e:  # noqa: BLE001 - stored as the chunk's failure
                        recs = [{"__chunk_error__": one_line(e)}]
                    pending.remove(i)
                    breaks = 0
                    yield chunks[i], recs
            finally:
                if not broken:
                    for f in futures:
                        f.cancel()
            if broken:
                self.pool.shutdown(wait=False, cancel_futures=True)
                self.pool = self._pool()
                for i in list(pending):
                    done = futures_done(futures, i)
                    if done is not None:
                        pending.remove(i)
                        yield chunks[i], done
                        continue
                breaks += 1
                if breaks >= self.ATTEMPTS:
                    for i in list(pending):
                        pending.remove(i)
                        yield chunks[i], [{"__chunk_error__": "worker processes died "
                                           f"{self.ATTEMPTS} times in a row running it"}]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _pid(_=None) -> int:
    return os.getpid()


def futures_done(futures: dict, i: int):
    """The records of chunk ``i`` if its future finished before the pool broke."""
    for f, j in futures.items():
        if j == i and f.done() and not f.cancelled() and f.exception() is None:
            return f.result()
    return None


class DaskCluster(Executor):
    """The workers of an existing Dask distributed cluster (``dask scheduler`` + ``dask
    worker``, or a dask-jobqueue cluster's scheduler address). A worker that dies mid-chunk
    has its chunk rescheduled by Dask; a chunk that kills workers again and again ends as
    failed records naming the cause."""

    def __init__(self, address: str, *, timeout: float = 30.0, wait_workers: float = 120.0):
        try:
            from distributed import Client
        except ImportError:
            raise NpusimError(f"--scheduler {address}: running on a Dask cluster needs "
                              f"dask.distributed: pip install \"npusim[sweep]\"") from None
        if not address.startswith(("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")):
            raise NpusimError(f"--scheduler {address!r}: give the Dask scheduler's address as "
                              f"tcp://HOST:PORT (what `dask scheduler` prints)")
        _reachable(address)
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise NpusimError(f"--scheduler {address}: cannot reach a Dask scheduler there "
                              f"({one_line(e)}); start one with `dask scheduler` and workers "
                              f"with `dask worker {address}`") from None
        try:  # a cluster without workers would hold the sweep forever
            self.client.wait_for_workers(1, timeout=wait_workers)
        except (OSError, TimeoutError):
            self.client.close()
            raise NpusimError(f"--scheduler {address}: no Dask worker joined within "
                              f"{wait_workers:g} s; start some with `dask worker {address}`"
                              ) from None
        n = len(self.client.scheduler_info(n_workers=-1).get("workers", {}))
        self.n = max(1, n)
        self.label = f"Dask cluster {address} ({n} worker{'s' if n != 1 else ''} at start)"

    def run(self, spec, chunks):
        from distributed import as_completed
        futures = {self.client.submit(evaluate_chunk, spec, c, pure=False): i
                   for i, c in enumerate(chunks)}
        try:
            for f in as_completed(futures, loop=self.client.loop):
                chunk = chunks[futures[f]]
                yield chunk, _result_or_error(f.result, chunk)
        finally:
            self.client.cancel(list(futures))

    def close(self) -> None:
        self.client.close()


def _reachable(address: str) -> None:
    """Fail at once, with the fix, when nothing listens at a tcp:// scheduler address (the
    Dask client would retry until its timeout)."""
    import socket
    if not address.startswith("tcp://"):
        return
    host, _, port = address[len("tcp://"):].rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=10):
            pass
    except (OSError, ValueError) as e:
        raise NpusimError(f"--scheduler {address}: cannot reach a Dask scheduler there "
                          f"({one_line(e)}); start one with `dask scheduler` and workers with "
                          f"`dask worker {address}`") from None


def _result_or_error(get: Callable[[], list[dict]], chunk: Sequence[Task]) -> list[dict] | None:
    """A chunk's records, or None when the chunk itself failed (its worker died for good):
    the driver then writes failed records for it."""
    try:
        return get()
    except Exception as e:  # noqa: BLE001 - the sweep goes on; the failure is stored
        return [{"__chunk_error__": one_line(e)}]


def make_executor(workers: int | None, scheduler: str | None, spec=None) -> Executor:
    """Where the points run: a Dask cluster (``scheduler``), ``workers`` local processes, or
    this process; local workers forked from a warmed evaluator of ``spec`` when given."""
    if scheduler:
        if workers not in (None, 0):
            raise NpusimError("--workers and --scheduler do not go together: a Dask cluster "
                              "has its own workers (start more with `dask worker ADDRESS`)")
        return DaskCluster(scheduler)
    n = default_workers() if workers is None else int(workers)
    if n < 1:
        raise NpusimError(f"--workers {workers}: give at least 1 worker process")
    return InProcess() if n == 1 else LocalProcesses(n, spec)


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------------------- the driver
class Driver:
    """Runs the phases of one spec against one store."""

    def __init__(self, spec, store, executor: Executor, progress=None):
        self.spec, self.store, self.ex = spec, store, executor
        self.progress = progress
        self.local = Evaluator(spec)   # resolves designs for keys; never runs workloads
        self.by_key: dict[str, dict] = {}
        self.summary = Summary(store=Path(store.path), workers=executor.label)
        self.next_index = 0
        self.rows: list[dict] = []   # the records of every point this run asked for
        self.written: set[str] = set()  # keys this run evaluated
        self.asked: set[str] = set()    # the points this run asked for, by digest
        self.t0 = time.perf_counter()

    def load_existing(self) -> None:
        self.by_key = {r["key"]: r for r in self.store.records()}

    def keys(self, point) -> list[str]:
        """The store keys of ``point``'s records (one per workload)."""
        try:
            design = self.local.resolve(point)
        except NpusimError:
            from .. import __version__
            from .evaluate import workload_identity
            base = self.local.base_id_or_none()
            return [digest({"base": base, "point": dict(point),
                            "workload": workload_identity(w), "version": __version__})
                    for w in self.spec.workloads]
        return [record_key(design, w) for w in self.spec.workloads]

    def stored(self, point) -> list[dict] | None:
        """The stored records of ``point`` when every workload's is there."""
        if not self.by_key:
            return None
        recs = [self.by_key.get(k) for k in self.keys(point)]
        return recs if all(r is not None for r in recs) else None

    def run_phase(self, name: str, points: Sequence[dict]) -> list[list[dict]]:
        """Evaluate ``points`` (skipping stored ones); return each point's records in order.

        The points of a phase are numbered on from the last phase's, so a record's ``point``
        is the same on every run of the same spec."""
        base = self.next_index
        self.next_index += len(points)
        first: dict[str, int] = {}      # a point asked twice in one phase runs once
        results: list = [None] * len(points)
        tasks = []
        earlier = 0                     # of them, stored by an earlier run
        for i, p in enumerate(points):
            ident = digest(p)
            if ident in first:
                continue
            first[ident] = i
            new = ident not in self.asked   # not asked by an earlier phase of this run
            self.asked.add(ident)
            self.summary.points += new
            old = self.stored(p)
            if old is not None:
                if new and not all(r["key"] in self.written for r in old):
                    self.summary.stored_before += 1
                    earlier += 1
                results[i] = [self.adopt(r, base + i, name, p) for r in old]
            else:
                tasks.append((base + i, p, name))
        if self.progress is not None and tasks:
            self.progress.add(name, len(tasks), earlier)
        for chunk, recs in self.ex.run(self.spec, chunk_tasks(tasks, self.workers())):
            if recs and "__chunk_error__" in recs[0]:
                recs = self.failed_records(chunk, recs[0]["__chunk_error__"])
            for rec in recs:
                self.put(rec)
                i = rec["point"] - base
                results[i] = (results[i] or []) + [rec]
            if self.summary.evaluated == 0 and math.isnan(self.summary.first_s):
                self.summary.first_s = time.perf_counter() - self.t0
                self.summary.first_points = len(chunk)
            self.summary.evaluated += len(chunk)
            if self.progress is not None:
                self.progress.advance(len(chunk))
        for i, p in enumerate(points):
            if results[i] is None:
                results[i] = results[first[digest(p)]]
            elif first[digest(p)] == i:
                self.rows.extend(results[i])
        self.summary.phases[name] = len(tasks)
        return results

    def workers(self) -> int:
        return getattr(self.ex, "n", 1)

    def failed_records(self, chunk, error: str) -> list[dict]:
        out = []
        for index, point, phase in chunk:
            for w, key in zip(self.spec.workloads, self.keys(point)):
                from .strategies import values
                out.append({"key": key, "point": index, "phase": phase, "workload": w.name,
                            "params": dict(point), "values": values(self.spec, point),
                            "metrics": {}, "violations": [], "feasible": False,
                            "error": f"the worker running this point failed: {error}",
                            "elapsed_s": 0.0, "worker": ""})
        return out

    def adopt(self, rec: dict, index: int, phase: str, point: dict) -> dict:
        """A record an earlier run stored, as this run's point ``index`` of ``phase``: an
        earlier spec may have numbered it otherwise or lacked some of this spec's fields (the
        same resolved design and workload, so the same figures). Relabelled in the store too,
        so that its report shows this spec's fields. A record this run wrote is kept."""
        if rec["key"] in self.written:
            return rec
        from .strategies import values
        mine = {**rec, "point": int(index), "phase": phase, "params": dict(point),
                "values": values(self.spec, dict(point))}
        if any(mine[k] != rec[k] for k in ("point", "phase", "params", "values")):
            self.store.relabel(mine)
        self.by_key[rec["key"]] = mine
        self.written.add(rec["key"])
        return mine

    def put(self, rec: dict) -> None:
        if self.store.put(rec):
            self.summary.records += 1
            self.summary.failed += rec["error"] is not None
            self.summary.infeasible += rec["error"] is None and not rec["feasible"]
        self.by_key[rec["key"]] = rec
        self.written.add(rec["key"])

    # ------------------------------------------------------------------ strategies
    def run(self) -> Summary:
        from . import strategies
        if self.spec.strategy.kind == "nsga2":
            self.adaptive(strategies.Adaptive(self.spec))
        else:
            self.run_phase("sample", strategies.points(self.spec))
        if self.spec.strategy.sensitivity:
            around: list[dict] = []
            for best in best_points(self.rows, self.spec):
                around.extend(strategies.neighbours(self.spec, best))
            if around:
                self.run_phase("sensitivity", around)
        return self.summary

    def adaptive(self, search) -> None:
        gen = 0
        size = self.spec.strategy.population or 16
        while not search.done:
            points = search.ask(size)
            if not points:
                break
            results = self.run_phase(f"generation-{gen}", points)
            search.tell(points, [tell_metrics(recs) for recs in results])
            gen += 1


def tell_metrics(recs: list[dict] | None) -> dict | None:
    """What a search is told of one point: None if any workload failed or broke a constraint,
    else its metrics (one workload) or ``workload:metric`` keys (several)."""
    if not recs or any(r["error"] is not None or not r["feasible"] for r in recs):
        return None
    if len(recs) == 1:
        return dict(recs[0]["metrics"])
    return {f"{r['workload']}:{k}": v for r in recs for k, v in r["metrics"].items()}


def best_points(rows: Iterable[dict], spec) -> list[dict]:
    """The best feasible point of each (workload, objective), as field texts; each once."""
    out, seen = [], set()
    rows = [r for r in rows if r["error"] is None and r["feasible"]]
    for w in spec.workloads:
        mine = [r for r in rows if r["workload"] == w.name]
        for o in spec.objectives:
            have = [r for r in mine if math.isfinite(r["metrics"].get(o.metric, math.nan))]
            if not have:
                continue
            pick = (min if o.goal == "min" else max)(have, key=lambda r: r["metrics"][o.metric])
            ident = digest(pick["params"])
            if ident not in seen:
                seen.add(ident)
                out.append(dict(pick["params"]))
    return out


def chunk_tasks(tasks: list[Task], workers: int) -> list[list[Task]]:
    """Chunks of consecutive tasks: about four per worker at first, never more than
    :data:`MAX_CHUNK` points, so work stays balanced and a killed worker loses little."""
    if not tasks:
        return []
    size = max(1, min(MAX_CHUNK, len(tasks) // (4 * max(1, workers))))
    return [tasks[i:i + size] for i in range(0, len(tasks), size)]


class Progress:
    """A progress bar on standard error: points done of the phase, points/s, time left."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar = None
        self.task = None
        self.t0 = time.perf_counter()
        self.done = 0

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar,
                                       TextColumn, TimeRemainingColumn)
            self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[rate]}"), TextColumn("ETA"),
                           TimeRemainingColumn(), console=Console(stderr=True))
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def add(self, phase: str, n: int, stored: int) -> None:
        if self.bar is None:
            return
        label = f"{phase}" + (f" ({stored} stored earlier)" if stored else "")
        self.task = self.bar.add_task(label, total=n, rate="")
        self.t0, self.done = time.perf_counter(), 0

    def advance(self, n: int) -> None:
        self.done += n
        if self.bar is not None and self.task is not None:
            dt = time.perf_counter() - self.t0
            rate = f"{self.done / dt:.1f} points/s" if dt > 0 else ""
            self.bar.update(self.task, advance=n, rate=rate)


def run_sweep(spec, out_dir, *, workers: int | None = None, scheduler: str | None = None,
              progress: bool = True) -> Summary:
    """Run ``spec`` (a :class:`~npusim.dse.spec.SweepSpec` or a spec file's path) into
    ``out_dir/sweep.sqlite``, resuming what an earlier run of it stored.

    ``workers``: local worker processes (default one per core; 1 runs in this process);
    ``scheduler``: a Dask scheduler's address (``tcp://HOST:PORT``) to run on its workers
    instead. Returns the :class:`Summary`; Ctrl-C stops cleanly with every finished point
    stored (``summary.interrupted``).
    """
    from .evaluate import check_metrics
    from .spec import load_spec
    from .store import Store
    if isinstance(spec, (str, Path)):
        spec = load_spec(spec)
    check_metrics(spec)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NpusimError(f"--out {out}: this is a file; give a folder for the sweep's store "
                          f"and plots")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    executor = make_executor(workers, scheduler, spec)
    try:
        with Store(out / Store.DEFAULT_NAME) as store:
            _remember_spec(store, spec)
            driver = Driver(spec, store, executor)
            driver.t0 = t0
            driver.load_existing()
            with Progress(progress) as bar:
                driver.progress = bar
                try:
                    driver.run()
                except KeyboardInterrupt:
                    driver.summary.interrupted = True
            driver.summary.seconds = time.perf_counter() - t0
            return driver.summary
    finally:
        executor.close()


def _remember_spec(store, spec) -> None:
    """The store keeps the spec it was last run with (the report reads it) and when."""
    from .. import __version__
    if store.get_meta("created") is None:
        store.set_meta("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    store.set_meta("spec", spec.text)
    store.set_meta("spec_source", str(spec.source))
    store.set_meta("version", __version__)
