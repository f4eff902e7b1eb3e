"""Writing a report's files side by side: each file is drawn and saved by one writer, and the
writers run in this process and up to three forked copies of it (one per idle core).

A K-Perf report is seven or eight figures, each about 0.3 s of matplotlib on one core;
on two cores they take half the time. Forked copies share the already imported matplotlib and
the result in memory, so nothing is pickled but each file's path (or the error it raised).
Where fork is missing or unsafe (Windows, macOS, a process with other threads) or one core is
free, the writers run one after the other in this process: the files are the same either way.
"""
from __future__ import annotations

import gc
import os
import pickle
import sys
import threading
import traceback
from pathlib import Path
from typing import Callable, Sequence

# assumption: beyond four processes the fork and the imports each copy touches outweigh the
# gain on a report of about eight figures
MAX_PROCESSES = 4


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Whether forking this process is safe: Linux-like fork, no other thread running (a
    forked copy of a process with threads can deadlock on a lock one of them held), and not
    a daemonic worker (of a multiprocessing pool, say), which may not have children."""
    if not hasattr(os, "fork") or sys.platform in ("darwin", "win32", "emscripten", "wasi"):
        return False
    if threading.active_count() != 1:
        return False
    import multiprocessing as mp
    return not mp.current_process().daemon


def runnable_now() -> int | None:
    """Processes (threads) runnable on this machine right now, this one included: the fourth
    field of Linux's ``/proc/loadavg`` (``running/total``); None where there is no such file."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def idle_cores() -> int:
    """Usable cores that other work leaves free now: the usable cores less the other processes
    runnable at this moment (:func:`runnable_now`); where that is not known, less the 1-minute
    load average beyond this process.

    The moment's count, not the average: a K-Perf run's own scenario workers, finished a second
    ago, would otherwise hold the average up for a minute and keep its report serial.
    Measured on 2 cores: with one idle, a K-Perf report takes 1.9 s on two processes against
    3.5 s on one; with both busy (load 4), two processes take 0.6 s longer than one, since
    they only share the same core and each draws a little slower beside the other.
    """
    cores = usable_cores()
    running = runnable_now()
    if running is not None:
        return max(1, min(cores, cores - max(0, running - 1)))
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores
    # this process counts in the load (about 1 while it works): a core is free while the
    # load leaves at least half of one
    return max(1, min(cores, int(cores - load + 1.5)))


def processes_for(jobs: int, processes: int | None = None) -> int:
    """How many processes write ``jobs`` files: ``processes`` if given, else one per idle core
    (:func:`idle_cores`) up to :data:`MAX_PROCESSES`; never more than the jobs, and one where
    fork is unsafe.

    >>> processes_for(1)
    1
    >>> processes_for(8, processes=1)
    1
    """
    n = min(idle_cores(), MAX_PROCESSES) if processes is None else processes
    n = max(1, min(n, jobs))
    return n if n > 1 and can_fork() else 1


def run_writers(writers: Sequence[Callable[[], Path]], processes: int | None = None) -> list[Path]:
    """Call every writer (each writes one file and returns its path); return the paths in the
    writers' order.

    The writers are handed out one at a time to this process and the forked ones, so a slow
    figure never holds up the rest. A writer's error is raised as it is; run side by side,
    every other writer runs first and the first failing one in the writers' order is raised.
    A forked copy that dies leaves its file to this process.

    Parameters
    ----------
    writers : sequence of callables
        Each takes no argument, writes one file and returns its path.
    processes : int, optional
        Processes to use, this one included (see :func:`processes_for`); 1 runs the writers
        one after the other here.

    Examples
    --------
    >>> [p.name for p in run_writers([lambda: Path("a"), lambda: Path("b")], processes=1)]
    ['a', 'b']
    """
    n = processes_for(len(writers), processes)
    if n == 1:
        return [w() for w in writers]
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    ticket = ctx.Value("i", 0)
    children = []
    done: dict[int, tuple[Path | None, BaseException | None]] = {}
    try:
        for _ in range(n - 1):
            recv, send = ctx.Pipe(duplex=False)
            child = ctx.Process(target=_child, args=(writers, ticket, send), daemon=True)
            try:
                child.start()
            except OSError:             # no fork now (memory, a process limit): fewer copies
                recv.close()
                break
            finally:
                send.close()
            children.append((child, recv))
        for i in _tickets(ticket, len(writers)):
            done[i] = _run(writers[i])
        for child, recv in children:
            while True:
                try:
                    i, path, error = recv.recv()
                except (EOFError, OSError, pickle.UnpicklingError):   # finished, or died
                    break
                done[i] = (path, error)
            recv.close()
            child.join()
    finally:
        for child, recv in children:
            if child.is_alive():
                child.terminate()
                child.join()
    for i, w in enumerate(writers):
        if i not in done:               # its process died before answering: write it here
            done[i] = _run(w)
    results = [done[i] for i in range(len(writers))]
    for _, error in results:
        if error is not None:
            raise error
    return [path for path, _ in results]


def _tickets(ticket, n: int):
    """The next writer's index, shared by every process, until none is left."""
    while True:
        with ticket.get_lock():
            i = ticket.value
            ticket.value = i + 1
        if i >= n:
            return
        yield i


def _run(writer: Callable[[], Path]) -> tuple[Path | None, BaseException | None]:
    try:
        return writer(), None
    except Exception as e:             # noqa: BLE001  (raised in the writers' order later)
        return None, e


def _child(writers, ticket, send) -> None:
    # What the parent built (the result, matplotlib, the simulator) lives on in this copy
    # untouched: left out of the collector's passes, its pages are not copied on write just
    # to be scanned (a third fewer page faults in a K-Perf report's writer).
    gc.freeze()
    for i in _tickets(ticket, len(writers)):
        path, error = _run(writers[i])
        send.send((i, path, _portable(error)))
    send.close()


def _portable(error: BaseException | None) -> BaseException | None:
    """``error`` itself if it survives pickling (npusim's errors do), else a RuntimeError
    carrying its traceback, so the parent can raise it."""
    if error is None:
        return None
    try:
        if type(pickle.loads(pickle.dumps(error))) is type(error):
            return error
    except Exception:                  # noqa: BLE001  (any unpicklable error)
        pass
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return RuntimeError(f"a report writer failed in a forked process:\n{text}")
