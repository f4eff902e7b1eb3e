"""The K-Perf matrix: serving scenarios over input and output lengths, users and precisions.

K-Perf (Korea's joint NPU benchmark, December 2025) measures time to first token, prefill and
decode tokens/s and power for LLMs swept over input length, output length, concurrent users and
precision, reported as spreadsheet tables and 2-D graphs (``measured.md`` section 1, from the
launch-day reports: Herald Biz, Asia Economy). :func:`kperf` runs that matrix on a simulated
system, one :class:`~npusim.workloads.stepcost.StepCostModel` per (arch, precision) shared by all
of its scenarios, each scenario a closed-loop serving simulation
(:func:`~npusim.workloads.serving.simulate_serving`).

Each arch gets one chip count for every precision of the run, the one a deployment would use
(:func:`npusim.workloads.deployments.choose_chips`: the documented deployment of the model on the
arch, else enough KV cache for the matrix's largest users x (input + output) tokens), so that
its curves and the ``--vs`` ratios compare systems someone would run; each record carries the
chips, decode tokens/s per chip, KV capacity, the scenario's KV demand and their ratio.

A precision an arch cannot run, or a model that does not fit the chips asked for, does not stop
the matrix: its rows are kept with a ``status`` saying why (``"ok"`` otherwise).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..errors import ArchError, CapacityError, NpusimError
from ..passes.quantize import resolve_precision

# The matrix K-Perf describes (input/output sweeps, concurrent users, precision) has no public
# grid (measured.md 1.2), so the default is the public grid closest to it:
# - input/output lengths 128/128, 128/2048, 2048/128, 2048/2048: the ISL/OSL pairs of
#   NVIDIA's TensorRT-LLM performance overview (measured.md source [A],
#   https://nvidia.github.io/TensorRT-LLM/performance/perf-overview.html) and of the NIM
#   benchmarking guide (source [H]); a decode-heavy, a prefill-heavy and two balanced cases.
# - concurrent users 1, 5, 25, 50, 100, 150, 200, 250: NIM's concurrency sweep (source [H],
#   https://docs.nvidia.com/nim/benchmarking/llm/latest/performance.html).
# - precision bf16: the dtype every shipped arch runs natively; fp8, int8, int4 and mxfp4 are
#   one --precision away (each one more pass over the matrix).
DEFAULT_INPUT_LENS = (128, 2048)
DEFAULT_OUTPUT_LENS = (128, 2048)
DEFAULT_USERS = (1, 5, 25, 50, 100, 150, 200, 250)
DEFAULT_PRECISIONS = ("bf16",)

BASE_FIELDS = ("arch", "model", "chips", "precision", "input_len", "output_len", "users")
# What --chips accepts besides a count: the default (one count per arch for every precision,
# see npusim.workloads.deployments.choose_chips) and the old rule (each precision its own
# fewest chips that hold the weights plus stepcost.MIN_KV_TOKENS of KV cache).
AUTO = "auto"
PER_PRECISION = "per-precision"
CHIP_RULES = (AUTO, PER_PRECISION)
STATUS = "status"
OK = "ok"

# The summary fields the report leans on; every other field of a serving summary is carried
# through to the records as it comes.
DECODE = "decode_tok_s"
TTFT = "ttft_mean_s"
TOKENS_PER_J = "tokens_per_j"
POWER = "avg_power_w"
# The system's size beside its figures, added to each record that ran.
PER_CHIP = "decode_tok_s_per_chip"
KV_CAPACITY = "kv_capacity_tokens"
KV_DEMAND = "kv_demand_tokens"
KV_HEADROOM = "kv_headroom"
# The power band (issue 13 item 4): where an arch's energy table gives `ranges` for the parts
# of its power model that are assumptions, each record carries one chip's power and the energy
# per output token at the low and the high end of them (NaN for an arch without ranges).
CARD_POWER = "card_power_w"
BAND_KEYS = ("card_power_w_low", "card_power_w_high", "energy_per_token_j_low",
             "energy_per_token_j_high")


@dataclass
class KperfResult:
    """The K-Perf matrix of one model on one or more archs.

    Attributes
    ----------
    model : str
        The model as named by the caller.
    records : list of dict
        One per (arch, precision, input length, output length, users), in run order: the keys
        of :data:`BASE_FIELDS`, ``status`` (``"ok"``, or why the row has no numbers), every
        field of the serving summary (SI units: seconds, tokens/s, W, J; utilisations as
        fractions) and, for rows that ran, ``decode_tok_s_per_chip``, ``kv_demand_tokens``
        (users x (input + output)) and ``kv_headroom`` (``kv_capacity_tokens`` over it).
    runs : list of dict
        One per (arch, precision): ``arch``, ``precision``, ``chips``, ``status``,
        ``chips_rule`` and ``chips_reason`` (how the count was chosen, and why) and what the
        cost model reports (``precision_name``, ``kv_capacity_tokens``, ``kv_block_tokens``,
        ``static_power_w``, ``tdp_w``).
    archs : dict
        Arch label to its fully resolved :meth:`~npusim.arch.model.Arch.to_dict`, in the order
        compared (the first is the reference of the ``--vs`` ratios).
    matrix : dict
        ``precisions``, ``input_lens``, ``output_lens``, ``users`` as run.
    config : dict
        The serving configuration's fields.
    version, created : str
        npusim's version and the run's date and time (ISO 8601, UTC).
    """

    model: str
    records: list[dict[str, Any]]
    runs: list[dict[str, Any]] = field(default_factory=list)
    archs: dict[str, dict] = field(default_factory=dict)
    matrix: dict[str, tuple] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    created: str = ""

    def columns(self) -> list[str]:
        """Every record key: the base fields, ``status``, then summary fields as first seen."""
        return _columns(self.records)

    def summary(self) -> list[dict[str, Any]]:
        """One row per (model, arch, precision): see :func:`summarize`."""
        return summarize(self.records, list(self.archs) or None, self.runs)

    def to_pandas(self):
        """The records as a :class:`pandas.DataFrame`, columns in :meth:`columns` order.

        Raises
        ------
        NpusimError
            If pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError:
            raise NpusimError("KperfResult.to_pandas needs pandas, which npusim does not "
                              "install: pip install pandas (or use .records, a list of "
                              "dicts)") from None
        return pd.DataFrame.from_records(self.records, columns=self.columns())

    def write(self, outdir: str | Path) -> list[Path]:
        """Write ``kperf.xlsx``, ``kperf.csv`` and the PNG graphs into ``outdir``.

        See :func:`npusim.report.kperf.write_kperf`.
        """
        # The report layer sits above workloads; it is imported here, late, only so that a
        # result can write itself, and workloads never import it at module level.
        from ..report.kperf import write_kperf
        return write_kperf(self, outdir)


def kperf(arch, model: str, *, chips: int | str | None = None,
          precisions: Sequence[str] = DEFAULT_PRECISIONS,
          input_lens: Sequence[int] = DEFAULT_INPUT_LENS,
          output_lens: Sequence[int] = DEFAULT_OUTPUT_LENS,
          users: Sequence[int] = DEFAULT_USERS,
          vs: Sequence = (), out: str | Path | None = None, progress: bool = False,
          config=None, overrides=None, parallel=None,
          jobs: int | str | None = None) -> KperfResult:
    """Run the K-Perf matrix of ``model`` on ``arch`` (and on each arch of ``vs``).

    Every precision x input length x output length x users is one closed-loop serving
    scenario: ``users`` concurrent users, each sending a request of ``input_len`` tokens that
    generates ``output_len`` tokens, and its next request when the previous one completes.

    Parameters
    ----------
    arch : str, Path or Arch
        A shipped arch name, a YAML path, or a loaded arch.
    model : str
        A built-in LLM name (``npusim models``).
    chips : int or str, optional
        Chips per system, for every arch and precision. ``None`` or ``"auto"`` (the default):
        one count per arch for every precision of the run, what a deployment would use (the
        documented deployment of the model on the arch, else the fewest chips whose KV cache
        holds the matrix's largest users x (input + output) tokens; see
        :func:`npusim.workloads.deployments.choose_chips`); each run says why in its
        ``chips_reason``. ``"per-precision"``: each (arch, precision) takes the fewest chips
        that hold its weights plus 4,096 KV tokens (the rule before this default).
    precisions, input_lens, output_lens, users : sequences
        The matrix; defaults :data:`DEFAULT_PRECISIONS`, :data:`DEFAULT_INPUT_LENS`,
        :data:`DEFAULT_OUTPUT_LENS`, :data:`DEFAULT_USERS`.
    vs : sequence of str, Path or Arch
        Archs to run the same matrix on; the report gives their ratios to ``arch``.
    out : str or Path, optional
        If given, the report (:meth:`KperfResult.write`) is written into this folder.
    progress : bool
        Show a progress bar on the terminal's standard error.
    config : ServingConfig, optional
        Scheduler settings (batched tokens, sequences); the serving defaults when omitted.
    overrides : mapping or sequence of str, optional
        Field overrides for ``arch`` (not for ``vs``), as for :func:`npusim.load_arch`.
    parallel : str or ParallelLayout, optional
        The multi-chip layout (``"tp=4,pp=2"``); by default the cost model's choice
        (:class:`~npusim.workloads.stepcost.StepCostModel`).
    jobs : int or "auto", optional
        Worker processes: 1 runs everything in this process; N > 1 costs the layouts the
        chip choice needs on N forked workers, then forks N workers for the scenarios (the
        cost models' caches inherited; a cost model whose layout is still to be costed is
        built by the worker that runs its scenarios) and gathers the rows and runs back in
        order, the same as one process gives; ``"auto"``: one per core this process may
        use. Default: the environment's ``NPUSIM_JOBS``, else 1. Without the ``fork`` start
        method (Windows, macOS) it is 1.

    Returns
    -------
    KperfResult

    Raises
    ------
    NpusimError
        On a bad matrix value, an arch or model that cannot be loaded, or when no row of
        ``arch`` could run (the first reason is raised).
    """
    chips = _chips_arg(chips)
    if parallel is not None and not isinstance(chips, int):   # the layout names the chips
        from .stepcost import ParallelLayout
        chips = ParallelLayout.parse(parallel).chips
    matrix = _matrix(model, precisions, input_lens, output_lens, users,
                     chips if isinstance(chips, int) else None)
    systems = _load_archs(arch, vs, overrides)
    Scenario, ServingConfig, simulate_serving = _serving_api()
    config = ServingConfig() if config is None else config
    scenarios = [(i, o, u) for i in matrix["input_lens"] for o in matrix["output_lens"]
                 for u in matrix["users"]]
    records: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    total = len(systems) * len(matrix["precisions"]) * len(scenarios)
    jobs = _jobs(jobs)
    from .stepcost import PendingLayout
    with _progress_bar(progress, total) as advance:
        # (record index, label, cost model, scenario) of every row that runs
        tasks: list[tuple[int, str, Any, Any]] = []
        for label, arch_obj in systems:
            costs = _Costs(model, arch_obj, parallel, jobs)
            choice, chose = _choose(model, arch_obj, chips, matrix, costs)
            for precision in matrix["precisions"]:
                if chose != OK:
                    cost, why = None, chose
                elif jobs > 1:   # a layout still to be costed is left to the workers
                    cost, why = costs.unbuilt_or_reason(choice.chips, precision)
                else:
                    cost, why = costs.or_reason(choice.chips, precision)
                if isinstance(cost, PendingLayout):
                    cost = _Deferred(label, precision, choice, cost, len(runs))
                    runs.append({})      # the worker that builds it says what goes here
                    chips_ = cost.chips
                else:
                    runs.append(_run_info(label, precision, choice, cost, why))
                    chips_ = runs[-1]["chips"]
                for i, o, u in scenarios:
                    base = dict(arch=label, model=str(model), chips=chips_,
                                precision=precision, input_len=i, output_len=o, users=u)
                    records.append({**base, STATUS: why})
                    if cost is not None:
                        tasks.append((len(records) - 1, f"{label} {precision} in {i} out {o} "
                                      f"users {u}", cost, Scenario(i, o, users=u)))
                    else:
                        advance(f"{label} {precision} in {i} out {o} users {u}")
                if jobs == 1:    # one process: run as the rows come, in order
                    for pos, text, cost_, sc in tasks:
                        advance(text)
                        records[pos] = _with_system(
                            {**records[pos], **_scenario(simulate_serving, cost_, sc, config)},
                            cost_)
                    tasks.clear()
        if tasks:
            by_pos = {pos: cost_ for pos, _, cost_, _ in tasks}
            for pos, (row, info) in _run_parallel(tasks, simulate_serving, config, jobs,
                                                  advance):
                cost_ = by_pos[pos]
                if info is not None:     # a cost model its worker built
                    runs[cost_.run] = info
                    cost_ = _System(info["chips"], info["kv_capacity_tokens"])
                records[pos] = _with_system({**records[pos], **row}, cost_)
    _raise_if_nothing_ran(systems[0][0], runs, records)
    result = KperfResult(
        model=str(model), records=records, runs=runs,
        archs={label: a.to_dict() for label, a in systems}, matrix=matrix,
        config=_config_dict(config), version=_version(),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    if out is not None:
        result.write(out)
    return result


JOBS_ENV = "NPUSIM_JOBS"


def _jobs(jobs) -> int:
    """Worker processes for :func:`kperf`: ``jobs``, else ``$NPUSIM_JOBS``, else 1; "auto"
    is the cores this process may use; 1 where processes cannot be forked."""
    import multiprocessing
    import os
    import sys
    if jobs is None:
        jobs = os.environ.get(JOBS_ENV, "").strip() or 1
    if isinstance(jobs, str):
        text = jobs.strip().lower()
        if text == "auto":
            try:
                jobs = len(os.sched_getaffinity(0))
            except AttributeError:   # not on every platform
                jobs = os.cpu_count() or 1
        else:
            try:
                jobs = int(text)
            except ValueError:
                raise NpusimError(f"K-Perf jobs (--jobs, ${JOBS_ENV}): {jobs!r} is not a whole "
                                  f"number nor auto; e.g. --jobs 2") from None
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise NpusimError(f"K-Perf jobs (--jobs, ${JOBS_ENV}): {jobs!r} is not a whole number "
                          f">= 1; e.g. --jobs 2")
    if jobs > 1 and (sys.platform != "linux"
                     or "fork" not in multiprocessing.get_all_start_methods()
                     or multiprocessing.current_process().daemon):
        return 1
    return jobs


def _run_parallel(tasks, simulate_serving, config, jobs: int, advance):
    """Yield ``(record index, (row, run info or None))`` of every task, run by ``jobs``
    forked workers (see :class:`_Queue` for who runs what, :func:`_worker` for the run
    info). An error a row cannot hold (not a capacity or arch limit) is raised once every
    worker has stopped, the first in run order."""
    import multiprocessing
    from .serving import load_kernels
    load_kernels()    # once here, inherited, rather than compiled in each worker
    ctx = multiprocessing.get_context("fork")
    queue = _Queue(tasks, ctx, jobs)
    results = ctx.SimpleQueue()
    workers = [ctx.Process(target=_worker, args=(tasks, queue, results, simulate_serving,
                                                 config), daemon=True)
               for _ in range(min(jobs, len(tasks)))]
    for w in workers:
        w.start()
    errors: dict[int, BaseException] = {}
    finished = False
    try:
        for _ in range(len(tasks)):
            while results.empty():
                if not any(w.is_alive() for w in workers) and results.empty():
                    raise NpusimError("K-Perf: a worker process died before its scenarios "
                                      "were done; run with --jobs 1 to see why")
                time.sleep(0.002)
            n, ok, payload = results.get()
            pos, text = tasks[n][0], tasks[n][1]
            advance(text)
            if ok:
                yield pos, payload
            else:
                errors[n] = payload
        finished = True
    finally:
        for w in workers:
            if finished:
                w.join()
            else:
                w.terminate()
                w.join()
    if errors:
        raise errors[min(errors)]


def _choose_layouts(pendings: Sequence, jobs: int) -> None:
    """Choose the layout of each unbuilt :class:`~npusim.workloads.stepcost.PendingLayout`
    of ``pendings`` on up to ``jobs`` forked workers, and settle each here with its worker's
    choice (the layout and its reason are what costing them here gives). One whose costing
    failed, or whose worker died, is left unbuilt: building it here raises as it did there.
    Nothing is done with one job, one model, or where processes cannot be forked."""
    import multiprocessing
    todo = [p for p in pendings if not p.built]
    if _jobs(jobs) < 2 or len(todo) < 2:
        return
    ctx = multiprocessing.get_context("fork")
    taken = ctx.Value("l", 0)
    results = ctx.SimpleQueue()
    workers = [ctx.Process(target=_layout_worker, args=(todo, taken, results), daemon=True)
               for _ in range(min(jobs, len(todo)))]
    for w in workers:
        w.start()
    chosen: dict[int, Any] = {}
    try:
        while len(chosen) < len(todo):
            if results.empty():
                if not any(w.is_alive() for w in workers) and results.empty():
                    break            # a worker died: what it held is built here
                time.sleep(0.002)
                continue
            n, answer = results.get()
            chosen[n] = answer
    finally:
        for w in workers:
            w.join(timeout=None if len(chosen) == len(todo) else 0)
            if w.is_alive():
                w.terminate()
                w.join()
    for n, answer in chosen.items():
        if answer is not None:
            todo[n].settle(*answer)


def _layout_worker(todo: Sequence, taken, results) -> None:
    """A forked worker of :func:`_choose_layouts`: ``(index, (layout, why) or None)`` of the
    next model not yet taken, until none is left."""
    while True:
        with taken.get_lock():
            n = taken.value
            taken.value = n + 1
        if n >= len(todo):
            return
        try:
            answer = todo[n].choose()
        except BaseException as e:   # left to the parent, which builds it and raises
            results.put((n, None))
            if not isinstance(e, Exception):
                return
            continue
        results.put((n, answer))


class _Deferred:
    """A run's cost model left to the worker that runs its scenarios: its layout is still to
    be chosen by costing several (a :class:`~npusim.workloads.stepcost.PendingLayout`).
    ``run`` is the run's index in :class:`KperfResult`'s ``runs``."""

    def __init__(self, label: str, precision: str, choice, pending, run: int) -> None:
        self.label, self.precision, self.choice = label, precision, choice
        self.pending, self.run = pending, run
        self.chips = pending.chips
        self._done: tuple | None = None

    def build(self) -> tuple[Any, str, dict[str, Any]]:
        """(cost model or None, status, run info), as :func:`kperf` gives them in one
        process; built once."""
        if self._done is None:
            try:
                cost, why = self.pending.build(), OK
            except (ArchError, CapacityError) as e:
                cost, why = None, _reason(e)
            self._done = (cost, why, _run_info(self.label, self.precision, self.choice, cost,
                                               why))
        return self._done


@dataclass(frozen=True)
class _System:
    """What :func:`_with_system` reads of a cost model built in a worker."""

    chips: int | None
    kv_capacity_tokens: int | None


def _weight(scenario) -> float:
    return scenario.users * (scenario.input_len + scenario.output_len)


class _Queue:
    """Which task a worker runs next, shared by forked workers.

    Tasks are grouped by cost model (and input length, when there are fewer cost models than
    workers); each group runs longest first (a large users x length
    scenario takes seconds, a small one milliseconds). A worker stays with its group while it
    has tasks (the cost model's caches, filled as it runs, serve the rest of its group); then
    it takes the group with the most work left that no worker is on, else helps the one with
    the most work left.
    """

    def __init__(self, tasks, ctx, jobs: int = 1) -> None:
        # fewer cost models than workers (the README's one-precision run): split each by input
        # length too, whose prefill sizes are the lookups its scenarios share
        split = len({id(task[2]) for task in tasks}) < jobs
        by_cost: dict[tuple, list[int]] = {}
        for n, task in enumerate(tasks):
            key = (id(task[2]), task[3].input_len if split else 0)
            by_cost.setdefault(key, []).append(n)
        self.groups = [sorted(g, key=lambda n: -_weight(tasks[n][3])) for g in by_cost.values()]
        # work left in a group once its first k tasks are taken: left[g][k]
        self.left = []
        for g in self.groups:
            w = [_weight(tasks[n][3]) for n in g]
            self.left.append([sum(w[k:]) for k in range(len(w) + 1)])
        self.taken = ctx.Array("l", len(self.groups), lock=False)
        self.workers = ctx.Array("l", len(self.groups), lock=False)
        self.lock = ctx.Lock()

    def next(self, group: int | None) -> tuple[int | None, int | None]:
        """(group, task index) a worker last on ``group`` runs next; (None, None) when done."""
        with self.lock:
            if group is not None:
                if self.taken[group] < len(self.groups[group]):
                    return group, self._take(group)
                self.workers[group] -= 1
            open_ = [g for g in range(len(self.groups))
                     if self.taken[g] < len(self.groups[g])]
            if not open_:
                return None, None
            free = [g for g in open_ if self.workers[g] == 0]
            g = max(free or open_, key=lambda g: (self.left[g][self.taken[g]], -g))
            self.workers[g] += 1
            return g, self._take(g)

    def _take(self, g: int) -> int:
        k = self.taken[g]
        self.taken[g] = k + 1
        return self.groups[g][k]


def _worker(tasks, queue: _Queue, results, simulate_serving, config) -> None:
    """A forked worker of :func:`_run_parallel`: runs tasks until none is left, each
    answered with ``(row, None)``, or ``(row, run info)`` when its cost model is a
    :class:`_Deferred` (built here, once per worker)."""
    group = None
    while True:
        group, n = queue.next(group)
        if n is None:
            return
        _, _, cost, scenario = tasks[n]
        try:
            info = None
            if isinstance(cost, _Deferred):
                cost, why, info = cost.build()
                if cost is None:
                    results.put((n, True, ({STATUS: why}, info)))
                    continue
            results.put((n, True, (_scenario(simulate_serving, cost, scenario, config), info)))
        except BaseException as e:    # handed to the parent, which raises it
            try:
                results.put((n, False, e))
            except Exception:         # an exception that does not pickle
                results.put((n, False, NpusimError(f"K-Perf worker: {e!r}")))
            if not isinstance(e, Exception):   # interrupted: stop
                return


def summarize(records: Sequence[dict[str, Any]],
              arch_order: Sequence[str] | None = None,
              runs: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """One row per (model, arch, precision), with ratios to the reference arch.

    Each row: ``model``, ``arch``, ``precision``, ``chips``, ``system`` (``"4 x rngd"``),
    ``chips_reason`` (from ``runs``, when given), ``status`` (``"ok"`` if any scenario ran,
    else the first reason), ``peak_decode_tok_s`` (the best system decode tokens/s of the
    matrix) and the scenario it came from (``peak_at``, ``"in/out/users"``),
    ``peak_decode_tok_s_per_chip``, ``avg_power_w_at_peak``, ``best_ttft_s`` (the lowest mean
    TTFT) and ``best_ttft_at``, ``max_tokens_per_j``, ``kv_capacity_tokens`` and
    ``kv_headroom_min`` (the least KV capacity / demand of the matrix: at its largest users
    and lengths). ``decode_ratio``, ``decode_per_chip_ratio`` and ``perf_per_w_ratio`` divide
    this row's ``peak_decode_tok_s``, ``peak_decode_tok_s_per_chip`` and ``max_tokens_per_j``
    (tokens per joule is tokens/s per watt) by those of the reference arch's row of the same
    model and precision, each system with the chips it was given; None when either is
    missing. The reference is ``arch_order[0]``, else the first arch in ``records``.

    Examples
    --------
    >>> rows = [dict(arch=a, model="m", chips=1, precision="bf16", input_len=8, output_len=8,
    ...              users=u, status="ok", decode_tok_s=d, ttft_mean_s=t, tokens_per_j=e,
    ...              avg_power_w=100.0)
    ...         for a, u, d, t, e in (("x", 1, 10.0, 0.1, 1.0), ("x", 4, 30.0, 0.2, 2.0),
    ...                               ("y", 1, 20.0, 0.05, 1.0), ("y", 4, 90.0, 0.1, 3.0))]
    >>> s = summarize(rows)
    >>> [(r["arch"], r["peak_decode_tok_s"], r["peak_at"], r["decode_ratio"],
    ...   r["perf_per_w_ratio"]) for r in s]
    [('x', 30.0, '8/8/4', 1.0, 1.0), ('y', 90.0, '8/8/4', 3.0, 1.5)]
    """
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["model"], r["arch"], r["precision"]), []).append(r)
    why = {(r.get("arch"), r.get("precision")): r.get("chips_reason") for r in runs}
    rows = [_summary_row(key, rs, why.get((key[1], key[2]))) for key, rs in groups.items()]
    ref_arch = arch_order[0] if arch_order else (records[0]["arch"] if records else None)
    ref = {(r["model"], r["precision"]): r for r in rows if r["arch"] == ref_arch}
    for r in rows:
        base = ref.get((r["model"], r["precision"]))
        r["decode_ratio"] = _ratio(r, base, "peak_decode_tok_s")
        r["decode_per_chip_ratio"] = _ratio(r, base, "peak_decode_tok_s_per_chip")
        r["perf_per_w_ratio"] = _ratio(r, base, "max_tokens_per_j")
    return rows


def system_label(arch: str, chips) -> str:
    """How reports name a system: ``"4 x rngd"`` (the arch alone when chips are unknown).

    Examples
    --------
    >>> system_label("rngd", 4), system_label("h100", None)
    ('4 x rngd', 'h100')
    """
    return f"{chips} x {arch}" if chips else str(arch)


def _summary_row(key: tuple, rows: list[dict], reason: str | None = None) -> dict[str, Any]:
    model, arch, precision = key
    ok = [r for r in rows if r.get(STATUS) == OK]
    chips = rows[0].get("chips")
    out: dict[str, Any] = dict(model=model, arch=arch, precision=precision,
                               chips=chips, system=system_label(arch, chips),
                               chips_reason=reason,
                               status=OK if ok else rows[0].get(STATUS, ""),
                               peak_decode_tok_s=None, peak_at=None,
                               peak_decode_tok_s_per_chip=None, avg_power_w_at_peak=None,
                               best_ttft_s=None, best_ttft_at=None, max_tokens_per_j=None,
                               kv_capacity_tokens=None, kv_headroom_min=None)
    room = _best(ok, KV_HEADROOM, min)
    if room is not None:
        out.update(kv_capacity_tokens=room.get(KV_CAPACITY), kv_headroom_min=room[KV_HEADROOM])
    peak = _best(ok, DECODE, max)
    if peak is not None:
        out.update(peak_decode_tok_s=peak[DECODE], peak_at=_at(peak),
                   avg_power_w_at_peak=peak.get(POWER))
        if peak.get("chips"):
            out["peak_decode_tok_s_per_chip"] = peak[DECODE] / peak["chips"]
    fast = _best(ok, TTFT, min)
    if fast is not None:
        out.update(best_ttft_s=fast[TTFT], best_ttft_at=_at(fast))
    eff = _best(ok, TOKENS_PER_J, max)
    if eff is not None:
        out["max_tokens_per_j"] = eff[TOKENS_PER_J]
    return out


def _best(rows: list[dict], key: str, pick: Callable) -> dict | None:
    """The row with the best finite value of ``key`` (first on ties), or None."""
    have = [r for r in rows if _finite(r.get(key))]
    return pick(have, key=lambda r: r[key]) if have else None


def _at(r: dict) -> str:
    return f"{r['input_len']}/{r['output_len']}/{r['users']}"


def _ratio(row: dict, base: dict | None, key: str) -> float | None:
    if base is None or not _finite(row.get(key)) or not _finite(base.get(key)):
        return None
    return row[key] / base[key] if base[key] > 0 else None


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _columns(records: Sequence[dict]) -> list[str]:
    cols = list(BASE_FIELDS) + [STATUS]
    seen = set(cols)
    for r in records:
        for k in r:
            if k not in seen:
                seen.add(k)
                cols.append(k)
    return cols


def _matrix(model, precisions, input_lens, output_lens, users, chips) -> dict[str, tuple]:
    """The matrix as run, every value checked (names, ranges, the model's context window)
    before any cost model is built."""
    from ..frontend.llm import check_sizes
    spec = _spec(model)
    m = {
        "precisions": _names("precisions (--precision)", precisions),
        "input_lens": _counts("input_lens (--input-lens)", input_lens),
        "output_lens": _counts("output_lens (--output-lens)", output_lens),
        "users": _counts("users (--users)", users),
    }
    for p in m["precisions"]:
        resolve_precision(p)
    for key, name in (("input_lens", "input_len"), ("output_lens", "output_len"),
                      ("users", "users")):
        for v in m[key]:
            check_sizes(spec, **{name: v})
    # the longest request of the matrix must fit the context window
    check_sizes(spec, input_len=max(m["input_lens"]), output_len=max(m["output_lens"]),
                chips=chips)
    return m


def _spec(model):
    """The built-in LLM's spec (its context window bounds the lengths)."""
    from ..frontend.llm import model_spec
    return model_spec(model)


def _counts(what: str, values) -> tuple[int, ...]:
    """Whole numbers, duplicates dropped, in the order given (ranges: :func:`_matrix`)."""
    if isinstance(values, (int, str)):
        values = [values]
    out: list[int] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            try:
                v = int(str(v).strip())
            except ValueError:
                raise NpusimError(f"K-Perf {what}: {v!r} is not a whole number; give positive "
                                  f"integers, e.g. 128,2048") from None
        if v not in out:
            out.append(v)
    if not out:
        raise NpusimError(f"K-Perf {what}: the list is empty; give at least one value")
    return tuple(out)


def _names(what: str, values) -> tuple[str, ...]:
    if isinstance(values, str):
        values = values.split(",")
    out: list[str] = []
    for v in values:
        v = str(v).strip()
        if v and v not in out:
            out.append(v)
    if not out:
        raise NpusimError(f"K-Perf {what}: the list is empty; give at least one, e.g. bf16")
    return tuple(out)


def _load_archs(arch, vs, overrides) -> list[tuple[str, Any]]:
    """(label, Arch) for ``arch`` then each of ``vs``; labels must differ."""
    from ..arch import load_arch
    if isinstance(vs, (str, Path)):
        vs = [vs]
    out: list[tuple[str, Any]] = []
    for n, a in enumerate([arch, *vs]):
        if isinstance(a, (str, Path)):
            a = load_arch(a, overrides if n == 0 else None)
        elif n == 0 and overrides:
            raise NpusimError("K-Perf overrides apply only when the arch is given by name or "
                              "path; apply them with npusim.load_arch(name, overrides) instead")
        label = a.name + ("*" if getattr(a, "overrides", None) else "")
        if any(label == seen for seen, _ in out):
            raise NpusimError(f"K-Perf --vs: arch {label!r} is already in the comparison; "
                              f"each arch may appear once")
        out.append((label, a))
    return out


def _chips_arg(chips) -> int | str:
    """``chips`` as a count, :data:`AUTO` or :data:`PER_PRECISION` (None is AUTO); a count's
    range is checked with the matrix (:func:`~npusim.frontend.llm.check_sizes`)."""
    if chips is None:
        return AUTO
    if isinstance(chips, str):
        text = chips.strip().lower()
        if text in CHIP_RULES:
            return text
        try:
            return int(text)
        except ValueError:
            raise NpusimError(f"K-Perf chips (--chips): {chips!r} is not a whole number nor "
                              f"one of {', '.join(CHIP_RULES)}; e.g. --chips 4") from None
    if isinstance(chips, bool) or not isinstance(chips, int):
        raise NpusimError(f"K-Perf chips (--chips): {chips!r} is not a whole number; give a "
                          f"count such as 4, or one of {', '.join(CHIP_RULES)}")
    return chips


def _choose(model, arch, chips, matrix, costs: "_Costs") -> tuple[Any, str]:
    """The arch's :class:`~npusim.workloads.deployments.ChipChoice` and ``"ok"``, or a
    placeholder choice and why no count fits (the status of all its rows); the cost models
    the choice builds stay in ``costs``."""
    from .deployments import ChipChoice
    if isinstance(chips, int):
        return ChipChoice(chips, "given", f"--chips {chips}"), OK
    if chips == PER_PRECISION:
        return ChipChoice(None, PER_PRECISION, "each precision: the fewest chips that hold "
                                               "its weights and 4096 KV tokens"), OK
    try:
        return _choose_chips(model, arch, matrix, costs), OK
    except (ArchError, CapacityError) as e:
        return ChipChoice(None, AUTO, "none fits"), _reason(e)


def _choose_chips(model, arch, matrix, costs: "_Costs"):
    """The default chip count of ``arch`` for the whole matrix (every precision)."""
    return default_chips(model, arch, matrix["precisions"], matrix["users"],
                         matrix["input_lens"], matrix["output_lens"], costs=costs)


def default_chips(model: str, arch, precisions: Sequence[str], users: Sequence[int],
                  input_lens: Sequence[int], output_lens: Sequence[int], *,
                  costs: "_Costs | None" = None):
    """The chips :func:`kperf` gives ``arch`` by default for this matrix, and why.

    One count for every precision: the documented deployment of ``model`` on ``arch``, else
    the fewest chips whose KV cache holds ``max(users)`` x (``max(input_lens)`` +
    ``max(output_lens)``) tokens (:func:`npusim.workloads.deployments.choose_chips`).
    ``costs`` (:func:`kperf`'s own) keeps the cost models the choice builds; by default
    they are dropped after it.

    Returns
    -------
    ChipChoice

    Raises
    ------
    CapacityError
        When no chip count holds the weights.
    """
    from .deployments import choose_chips
    spec = _spec(model)
    costs = _Costs(model, arch) if costs is None else costs
    return choose_chips(model, arch, list(precisions), users=max(users),
                        tokens=max(input_lens) + max(output_lens),
                        cost_model=lambda _model, _arch, n, p: costs.pending(n, p),
                        heads=getattr(spec, "heads", None), cost_many=costs.cost_many)


def _with_system(row: dict[str, Any], cost) -> dict[str, Any]:
    """A record with the system's size beside its figures: decode tokens/s per chip, KV
    capacity, the scenario's KV demand (users x (input + output) tokens) and the headroom
    (capacity / demand; below 1 the users cannot all hold their whole context at once)."""
    if row.get(STATUS) != OK:
        return row
    chips = row.get("chips") or getattr(cost, "chips", None)
    capacity = row.get(KV_CAPACITY, getattr(cost, "kv_capacity_tokens", None))
    demand = row["users"] * (row["input_len"] + row["output_len"])
    decode = row.get(DECODE)
    row[PER_CHIP] = decode / chips if _finite(decode) and chips else None
    row[KV_CAPACITY] = _plain(capacity)
    row[KV_DEMAND] = demand
    row[KV_HEADROOM] = capacity / demand if _finite(capacity) and demand else None
    return row


def _serving_api():
    """The serving simulation's (Scenario, ServingConfig, simulate_serving)."""
    from .serving import Scenario, ServingConfig, simulate_serving
    return Scenario, ServingConfig, simulate_serving


def _cost_model(model: str, arch, chips: int | None, precision: str, parallel=None,
                parts=None, pending: bool = False):
    """The cost model: on an arch whose energy table gives ranges, one that also carries the
    parts of its energy the power band needs (:class:`~npusim.workloads.powerband.BandCostModel`);
    ``parts`` (:class:`~npusim.workloads.stepcost.PartRuns`) shares its part runs. With
    ``pending`` (a chip count given, no layout), a layout still to be chosen by costing
    several is left to choose (:meth:`~npusim.workloads.stepcost.StepCostModel.pending`)."""
    from .powerband import BandCostModel, has_band
    from .stepcost import StepCostModel
    kind = BandCostModel if has_band(arch) else StepCostModel
    if pending and chips is not None and parallel is None:
        return kind.pending(model, arch, chips=chips, precision=precision, parts=parts)
    return kind(model, arch, chips=chips, precision=precision, parallel=parallel, parts=parts)


class _Costs:
    """The cost models of one arch of a K-Perf run, each (chips, precision) built once.

    Choosing the chips asks for one per chip count it tries and precision (:meth:`pending`:
    a model whose layout is still to be chosen by costing several is costed only if the
    choice needs its exact capacity, those of one count together on ``jobs`` processes:
    :meth:`cost_many`); the rows then run on the very ones of the count chosen
    (a cost model's answers are functions of its arguments, so one built for the choice
    gives the rows what a fresh one would). All of them share their part graphs and runs
    (:class:`~npusim.workloads.stepcost.PartRuns`).
    """

    def __init__(self, model: str, arch, parallel=None, jobs: int = 1) -> None:
        from .stepcost import PartRuns
        self.model, self.arch, self.parallel, self.jobs = model, arch, parallel, jobs
        self.parts = PartRuns()
        self._built: dict[tuple, tuple[Any, NpusimError | None]] = {}

    def cost_many(self, pendings: Sequence) -> None:
        """Choose the layouts of several pending models at once, on up to :attr:`jobs`
        worker processes (:func:`_choose_layouts`)."""
        _choose_layouts(pendings, self.jobs)

    def pending(self, chips: int | None, precision: str):
        """The cost model of ``chips`` at ``precision``, or its
        :class:`~npusim.workloads.stepcost.PendingLayout` (see :func:`_cost_model`).

        Raises
        ------
        ArchError, CapacityError
            As :func:`_cost_model` does before costing a layout, the same error each time.
        """
        key = (chips, precision)
        if key not in self._built:
            given = {} if self.parallel is None else {"parallel": self.parallel}
            try:
                self._built[key] = (_cost_model(self.model, self.arch, chips, precision,
                                                parts=self.parts, pending=True, **given), None)
            except (ArchError, CapacityError) as e:
                self._built[key] = (None, e)
        cost, error = self._built[key]
        if error is not None:
            raise error
        return cost

    def __call__(self, chips: int | None, precision: str):
        """The cost model of ``chips`` at ``precision``, built.

        Raises
        ------
        ArchError, CapacityError
            As :func:`_cost_model` does.
        """
        from .stepcost import PendingLayout
        cost = self.pending(chips, precision)
        return cost.build() if isinstance(cost, PendingLayout) else cost

    def or_reason(self, chips: int | None, precision: str) -> tuple[Any, str]:
        """The cost model and ``"ok"``, or None and why it cannot exist (a status for its
        rows)."""
        try:
            return self(chips, precision), OK
        except (ArchError, CapacityError) as e:
            return None, _reason(e)

    def unbuilt_or_reason(self, chips: int | None, precision: str) -> tuple[Any, str]:
        """:meth:`or_reason`, but a layout not yet costed is left so: its
        :class:`~npusim.workloads.stepcost.PendingLayout` and ``"ok"`` (building it may
        still give a reason)."""
        from .stepcost import PendingLayout
        try:
            cost = self.pending(chips, precision)
        except (ArchError, CapacityError) as e:
            return None, _reason(e)
        if isinstance(cost, PendingLayout) and cost.built:
            return cost.build(), OK
        return cost, OK


def _reason(e: NpusimError) -> str:
    kind = "does not fit" if isinstance(e, CapacityError) else "unsupported"
    return f"{kind}: {e}"


def _scenario(simulate_serving, cost, scenario, config) -> dict[str, Any]:
    """Status and summary of one scenario, with the power band (NaN where the arch has no
    ranges); an arch or capacity limit becomes the status."""
    from .powerband import BandCostModel, band, nan_band
    log = cost.start_log() if isinstance(cost, BandCostModel) else None
    try:
        result = simulate_serving(cost, scenario, config)
    except (ArchError, CapacityError) as e:
        return {STATUS: _reason(e)}
    summary = dict(result.summary)
    if log is None:
        summary.update(nan_band())
    else:
        from ..energy import load_energy_table
        summary.update(band(result, log, load_energy_table(cost.arch), cost.arch.power.limit))
    return {STATUS: OK, **{k: _plain(v) for k, v in summary.items()}}


def _run_info(label: str, precision: str, choice, cost, why: str) -> dict[str, Any]:
    """What the report says about one (arch, precision): the system, why it has that many
    chips, and the cost model's view."""
    info: dict[str, Any] = dict(arch=label, precision=precision,
                                chips=getattr(cost, "chips", choice.chips), status=why,
                                chips_rule=choice.rule, chips_reason=choice.reason)
    for key, attr in (("precision_name", "precision"), ("kv_capacity_tokens",
                      "kv_capacity_tokens"), ("kv_block_tokens", "kv_block_tokens"),
                      ("static_power_w", "static_power_w"), ("tdp_w", "tdp_w")):
        info[key] = _plain(getattr(cost, attr, None))
    info.update(_area(getattr(cost, "arch", None), info["chips"]))
    describe = getattr(cost, "describe", None)
    if callable(describe):
        info.update({k: _plain(v) for k, v in describe().items()
                     if k not in info and k not in ("arch", "model")})
    return info


def _area(arch, chips) -> dict[str, Any]:
    """The system's modelled silicon (:mod:`npusim.energy.area`): one chip's die area and
    the chips' total, ``None`` when the arch's node has no area table."""
    from ..arch.model import Arch
    from ..energy.area import chip_area
    if not isinstance(arch, Arch):
        return {"area_mm2_per_chip": None, "area_mm2": None}
    a = chip_area(arch).total_mm2
    if a != a:  # nan: unknown
        return {"area_mm2_per_chip": None, "area_mm2": None}
    return {"area_mm2_per_chip": a, "area_mm2": a * chips if chips else None}


def _plain(v: Any) -> Any:
    """Plain Python data for records: numpy scalars become numbers, anything else text."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return float(v) if type(v) is not float and isinstance(v, float) else v
    if hasattr(v, "item") and getattr(v, "shape", None) == ():
        return v.item()
    return str(v)


def _raise_if_nothing_ran(first: str, runs: list[dict], records: list[dict]) -> None:
    """No row of the first arch ran: its first reason is the error, not an empty sheet."""
    mine = [r for r in records if r["arch"] == first]
    if mine and not any(r[STATUS] == OK for r in mine):
        kind = CapacityError if mine[0][STATUS].startswith("does not fit") else ArchError
        raise kind(f"K-Perf: no scenario of {first} could run. The first reason: "
                   f"{mine[0][STATUS]}")


def _config_dict(config) -> dict[str, Any]:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return dict(getattr(config, "__dict__", {}))


def _version() -> str:
    from .. import __version__
    return __version__


@contextlib.contextmanager
def _progress_bar(show: bool, total: int) -> Iterator[Callable[[str], None]]:
    """A function to call before each scenario: draws a rich bar on stderr when ``show``."""
    if not show:
        yield lambda _label: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)
    with Progress(TextColumn("K-Perf"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=Console(stderr=True)) as bar:
        task = bar.add_task("", total=total)
        started = [False]

        def advance(label: str) -> None:
            # A scenario is counted done when the next one starts; the last on exit.
            bar.update(task, advance=1 if started[0] else 0, description=label)
            started[0] = True

        yield advance
        bar.update(task, completed=total, description="done")
