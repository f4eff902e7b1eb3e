"""Pareto fronts and one-at-a-time sensitivity of a sweep's results (numpy only).

Everything here works on plain data: an ``(n, k)`` array for :func:`pareto_mask`, and for
:func:`front` and :func:`sensitivity` the flat rows :func:`npusim.dse.store.load` returns (one
dict per (design point, workload): ``workload``, ``feasible``, ``error``, ``point``, one column
per field path and one per metric name). So the analysis can be tested, and reused on a CSV
export, without a store or a spec. The figures are drawn by :mod:`npusim.report.sweep`.

Conventions, so that no number is silently wrong:

* a row **failed** when its ``error`` is set (non-empty text); it has no metrics and is never
  on a front nor a best point;
* a row is **feasible** when it did not fail and ``feasible`` is true (SQLite gives 0/1);
* an objective value that is missing, not a number (text, bool) or not finite counts as
  ``nan``: such a row is never on a front and never the best point.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Iterable, Sequence

import numpy as np

from ..errors import NpusimError

GOALS = ("min", "max")

# Columns of a loaded row that are neither field values nor metrics (the store's contract).
META_COLUMNS = ("key", "point", "phase", "workload", "feasible", "error", "violations",
                "elapsed_s", "worker")

NO_VARIANTS = "no one-at-a-time variants in the store"
"""Why a field has no swing: the sweep's sensitivity phase (``strategy.sensitivity: true``)
adds the one-at-a-time neighbours of the best point."""

# Rows x candidates compared at once: 4 Mi booleans (4 MiB) per temporary plane.
_BLOCK_CELLS = 1 << 22


# ----------------------------------------------------------------------------- Pareto mask

def check_goals(goals: Sequence[str], k: int | None = None) -> list[str]:
    """``goals`` as a list, each ``"min"`` or ``"max"`` (and ``k`` of them when given).

    >>> check_goals(("min", "max"))
    ['min', 'max']
    """
    if isinstance(goals, str):
        raise NpusimError(f"goals must be a list of 'min'/'max', one per objective, not the "
                          f"text {goals!r}")
    goals = list(goals)
    for g in goals:
        if g not in GOALS:
            raise NpusimError(f"unknown goal {g!r}: each objective's goal is 'min' or 'max'")
    if k is not None and len(goals) != k:
        raise NpusimError(f"{len(goals)} goals for {k} objective columns: give one goal "
                          f"('min' or 'max') per column")
    return goals


def _as_matrix(values) -> np.ndarray:
    """``values`` as a 2-D float array, or one clear error."""
    try:
        arr = np.array(values, dtype=float)
    except (TypeError, ValueError, OverflowError) as e:
        raise NpusimError(f"objective values must be numbers in an (n, k) array: "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if arr.ndim != 2:
        raise NpusimError(f"objective values must be an (n, k) array (one row per point, one "
                          f"column per objective), not an array of shape {arr.shape}")
    return arr


def pareto_mask(values, goals: Sequence[str]) -> np.ndarray:
    """The non-dominated rows of ``values``: ``mask[i]`` is True when no other row is at least
    as good in every column and strictly better in one.

    A row holding a ``nan`` is never on the front and never dominates. Equal rows do not
    dominate each other, so ties are all on the front.

    Rows are visited in lexicographic order (of the values turned to minimisation), because a
    dominator always sorts before the row it dominates; each block of rows is compared with the
    front found so far and with itself, which is enough since dominance is transitive. The cost
    is about ``n * (front + block) * k`` comparisons, ``n * n * k`` at worst (every row on the
    front), vectorised in blocks of bounded memory.

    Parameters
    ----------
    values : array_like, shape (n, k)
        One row per point, one column per objective.
    goals : sequence of {"min", "max"}
        Per column.

    Returns
    -------
    numpy.ndarray of bool, shape (n,)

    Raises
    ------
    NpusimError
        ``values`` is not an (n, k) array of numbers, or ``goals`` is not k of min/max.

    Examples
    --------
    >>> pareto_mask([[1, 5], [2, 2], [3, 3], [1, 5], [float("nan"), 0]], ["min", "min"])
    array([ True,  True, False,  True, False])
    >>> pareto_mask([[1, 5], [2, 2], [3, 3]], ["max", "min"])
    array([False,  True,  True])
    """
    arr = _as_matrix(values)
    n, k = arr.shape
    goals = check_goals(goals, k)
    sign = np.array([1.0 if g == "min" else -1.0 for g in goals])
    v = arr * sign                      # every column minimised from here on
    valid = ~np.isnan(v).any(axis=1)
    mask = np.zeros(n, dtype=bool)
    idx = np.flatnonzero(valid)
    if k == 0 or idx.size == 0:
        mask[idx] = True
        return mask
    order = idx[np.lexsort(v[idx].T[::-1])]
    found = np.empty((order.size, k))   # the front so far, then the block under test
    n_found, start = 0, 0
    while start < order.size:
        block = max(1, min(order.size - start, _BLOCK_CELLS // (n_found + 256), 256))
        rows = order[start:start + block]
        found[n_found:n_found + block] = v[rows]
        dominated = _dominated(v[rows], found[:n_found + block])
        keep = rows[~dominated]
        mask[keep] = True
        found[n_found:n_found + keep.size] = v[keep]
        n_found += keep.size
        start += block
    return mask


def _dominated(pts: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """For each row of ``pts``, whether a row of ``cand`` dominates it (all minimised).

    One column at a time on (points x candidates) planes: numpy reduces a short last axis
    slowly, and the planes bound the memory to one block.
    """
    no_worse = np.ones((pts.shape[0], cand.shape[0]), dtype=bool)
    better = np.zeros_like(no_worse)
    for j in range(pts.shape[1]):
        c, p = cand[None, :, j], pts[:, j, None]
        no_worse &= c <= p
        better |= c < p
    return (no_worse & better).any(axis=1)


def pareto_mask_ref(values, goals: Sequence[str]) -> list[bool]:
    """Pure-Python twin of :func:`pareto_mask`, the textbook definition pair by pair.

    >>> pareto_mask_ref([[1, 5], [2, 2], [3, 3], [1, 5]], ["min", "min"])
    [True, True, False, True]
    """
    rows = [[float(x) for x in r] for r in values]
    goals = list(goals)

    def better_or_equal(a, b):
        return all((x <= y) if g == "min" else (x >= y) for x, y, g in zip(a, b, goals))

    def strictly_better(a, b):
        return any((x < y) if g == "min" else (x > y) for x, y, g in zip(a, b, goals))

    out = []
    for i, a in enumerate(rows):
        if any(math.isnan(x) for x in a):
            out.append(False)
            continue
        dominated = any(
            j != i and not any(math.isnan(x) for x in b)
            and better_or_equal(b, a) and strictly_better(b, a)
            for j, b in enumerate(rows))
        out.append(not dominated)
    return out


# ----------------------------------------------------------------------------- rows

def number(v) -> float:
    """A cell as a finite float, else ``nan`` (missing, text, bool, inf).

    >>> number(2), number(None), number("3"), number(True), number(float("inf"))
    (2.0, nan, nan, nan, nan)
    """
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, Real):
        return math.nan
    v = float(v)
    return v if math.isfinite(v) else math.nan


def failed(row: dict) -> bool:
    """True when the row's point failed (its ``error`` is set)."""
    return bool(row.get("error"))


def feasible(row: dict) -> bool:
    """True when the row did not fail and met every constraint."""
    return not failed(row) and bool(row.get("feasible"))


def workloads_of(rows: Iterable[dict]) -> list[str]:
    """The workload names of ``rows`` in order of first appearance."""
    return list(dict.fromkeys(str(r.get("workload")) for r in rows))


def rows_of(rows: Sequence[dict], workload: str) -> list[dict]:
    """The rows of one workload, or an error naming the workloads there are."""
    check_rows(rows)
    out = [r for r in rows if str(r.get("workload")) == str(workload)]
    if not out:
        known = ", ".join(workloads_of(rows)) or "none"
        raise NpusimError(f"no point of workload {workload!r} in the results (workloads: "
                          f"{known})")
    return out


def check_rows(rows) -> None:
    """Refuse anything but a list of dicts that each name their workload."""
    if isinstance(rows, (str, bytes, dict)) or not hasattr(rows, "__iter__"):
        raise NpusimError(f"results must be a list of rows (dicts), as npusim.dse.store.load "
                          f"returns, not {type(rows).__name__}")
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or "workload" not in r:
            raise NpusimError(f"result row {i} is not a dict with a 'workload' column: rows "
                              f"must be those npusim.dse.store.load returns")


def check_objectives(objectives) -> list[tuple[str, str]]:
    """``objectives`` as ``[(metric, goal), ...]``: at least one, goals min/max, no metric twice.

    >>> check_objectives([("latency_s", "min"), ["tokens_per_s", "max"]])
    [('latency_s', 'min'), ('tokens_per_s', 'max')]
    """
    if isinstance(objectives, (str, bytes)):
        raise NpusimError("objectives must be a list of (metric, goal) pairs, not a text")
    out = []
    for o in objectives:
        if isinstance(o, (str, bytes)) or not hasattr(o, "__len__") or len(o) != 2:
            raise NpusimError(f"objective {o!r} is not a (metric, goal) pair such as "
                              f"('latency_s', 'min')")
        metric, goal = o
        check_goals([goal])
        if not isinstance(metric, str) or not metric:
            raise NpusimError(f"objective {o!r}: the metric must be a metric name such as "
                              f"'latency_s'")
        if any(metric == m for m, _ in out):
            raise NpusimError(f"objective {metric!r} is given twice: give each metric once")
        out.append((metric, goal))
    if not out:
        raise NpusimError("no objectives: give at least one (metric, goal) pair")
    return out


def _check_metric_known(rows: Sequence[dict], metric: str) -> None:
    """Refuse a metric that no row has as a column (a misspelt name, not a missing value)."""
    if any(metric in r for r in rows):
        return
    cols = sorted({c for r in rows for c, v in r.items()
                   if c not in META_COLUMNS and isinstance(v, Real) and not isinstance(v, bool)})
    raise NpusimError(f"no result has the metric {metric!r} (numeric columns: "
                      f"{', '.join(cols) or 'none'}); check the objective's name")


def objective_matrix(rows: Sequence[dict], objectives: Sequence[tuple[str, str]]) -> np.ndarray:
    """The rows' objective values as an ``(n, k)`` float array (``nan`` where missing)."""
    return np.array([[number(r.get(m)) for m, _ in objectives] for r in rows],
                    dtype=float).reshape(len(rows), len(objectives))


def _order_key(row: dict, objectives, position: int):
    """Best first on each objective in turn, then the point's index."""
    key = []
    for m, g in objectives:
        v = number(row.get(m))
        key.append(v if g == "min" else -v)
    point = number(row.get("point"))
    return (*key, point if not math.isnan(point) else math.inf, position)


# ----------------------------------------------------------------------------- front

def front(rows: Sequence[dict], objectives, workload: str) -> list[dict]:
    """The feasible, error-free, non-dominated rows of ``workload``, best first on the first
    objective (ties: the next objectives, then the point index).

    A row without a finite value for every objective is left out. An empty list means no
    feasible point of that workload has every objective.

    Parameters
    ----------
    rows : list of dict
        As :func:`npusim.dse.store.load` returns.
    objectives : list of (metric, goal)
    workload : str

    Raises
    ------
    NpusimError
        No row of ``workload``; an objective that is not a column of any row; a goal that is
        not min/max.

    Examples
    --------
    >>> rows = [dict(workload="w", feasible=True, error=None, point=i, lat=lat, e=e)
    ...         for i, (lat, e) in enumerate([(1, 9), (2, 4), (3, 5), (4, 1)])]
    >>> [r["point"] for r in front(rows, [("lat", "min"), ("e", "min")], "w")]
    [0, 1, 3]
    """
    objectives = check_objectives(objectives)
    mine = rows_of(rows, workload)
    for m, _ in objectives:
        _check_metric_known(rows, m)
    ok = [r for r in mine if feasible(r)]
    if not ok:
        return []
    mask = pareto_mask(objective_matrix(ok, objectives), [g for _, g in objectives])
    on = [(i, r) for i, (r, m) in enumerate(zip(ok, mask)) if m]
    on.sort(key=lambda p: _order_key(p[1], objectives, p[0]))
    return [r for _, r in on]


# ----------------------------------------------------------------------------- sensitivity

def best_row(rows: Sequence[dict], objective, workload: str) -> dict:
    """The feasible row of ``workload`` best on ``objective`` (ties: lowest point index).

    Raises
    ------
    NpusimError
        No row of ``workload``, an unknown metric, or no feasible row with a value for it.
    """
    (metric, goal), = check_objectives([objective])
    mine = rows_of(rows, workload)
    _check_metric_known(rows, metric)
    ok = [(i, r) for i, r in enumerate(mine)
          if feasible(r) and not math.isnan(number(r.get(metric)))]
    if not ok:
        raise NpusimError(f"no feasible point of workload {workload!r} has a value for "
                          f"{metric!r}, so there is no best point to vary around")
    return min(ok, key=lambda p: _order_key(p[1], [(metric, goal)], p[0]))[1]


def field_paths(fields) -> list[str]:
    """Field paths from a list of paths, or from a spec (its ``fields``' ``path``)."""
    if hasattr(fields, "fields"):
        fields = [f.path for f in fields.fields]
    if isinstance(fields, (str, bytes)):
        raise NpusimError("fields must be a list of field paths, not a text")
    out = list(fields)
    for f in out:
        if not isinstance(f, str) or not f:
            raise NpusimError(f"field {f!r} is not a field path such as 'cores.sram'")
    if len(set(out)) != len(out):
        raise NpusimError("a field path is given twice: give each field once")
    return out


def _same(a, b) -> bool:
    """Values compare exactly as stored (``nan`` equals nothing; 1 and 1.0 are equal)."""
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return a == b


def sensitivity(rows: Sequence[dict], fields, objective, workload: str) -> list[dict]:
    """One-at-a-time sensitivity of ``objective`` around the best feasible point of ``workload``.

    For each field, the variants are the error-free rows equal to the best row in every other
    field (values compared exactly as stored) and different in this one; infeasible variants
    count (the metric moves all the same) and are reported. The range runs over the variants
    and the best row itself, so the best value always lies within it; ``swing`` is
    ``|max - min| / |best|``.

    Parameters
    ----------
    rows : list of dict
        As :func:`npusim.dse.store.load` returns.
    fields : list of str, or a spec with ``fields``
        The swept field paths.
    objective : (metric, goal)
    workload : str

    Returns
    -------
    list of dict
        One per field, largest swing first (fields without a swing last, in the given order):
        ``field``, ``metric``, ``goal``, ``best_point``, ``best_value`` (the field's value at
        the best point), ``best_objective``, ``min_objective`` / ``min_value`` and
        ``max_objective`` / ``max_value`` (the objective's extremes and the field values giving
        them), ``swing`` (None when there is no variant or the best objective is 0),
        ``variants``, ``infeasible`` (how many of the variants) and ``reason`` (why ``swing``
        is None, else None).

    Raises
    ------
    NpusimError
        As :func:`best_row`, or a field that no row has.

    Examples
    --------
    >>> def row(i, s, b, lat):
    ...     return dict(workload="w", feasible=True, error=None, point=i, sram=s, bw=b, lat=lat)
    >>> rows = [row(0, 1, 10, 4.0), row(1, 2, 10, 5.0), row(2, 1, 20, 3.0), row(3, 2, 20, 6.0)]
    >>> out = sensitivity(rows, ["sram", "bw"], ("lat", "min"), "w")
    >>> [(s["field"], s["min_value"], s["max_value"], s["swing"]) for s in out]
    [('sram', 1, 2, 1.0), ('bw', 20, 10, 0.3333333333333333)]
    """
    paths = field_paths(fields)
    (metric, goal), = check_objectives([objective])
    best = best_row(rows, (metric, goal), workload)
    mine = rows_of(rows, workload)
    for f in paths:
        if not any(f in r for r in mine):
            raise NpusimError(f"no point of workload {workload!r} has the field {f!r} (fields "
                              f"are the sweep spec's paths, such as 'cores.sram')")
    base = number(best.get(metric))
    out = []
    for f in paths:
        others = [p for p in paths if p != f]
        variants = [r for r in mine
                    if r is not best and not failed(r)
                    and not math.isnan(number(r.get(metric)))
                    and not _same(r.get(f), best.get(f))
                    and all(_same(r.get(p), best.get(p)) for p in others)]
        out.append(_field_swing(f, metric, goal, best, base, variants))
    with_swing = sorted((s for s in out if s["swing"] is not None), key=lambda s: -s["swing"])
    return with_swing + [s for s in out if s["swing"] is None]


def _field_swing(field: str, metric: str, goal: str, best: dict, base: float,
                 variants: list[dict]) -> dict:
    """One field's entry of :func:`sensitivity`."""
    entry = dict(field=field, metric=metric, goal=goal, best_point=best.get("point"),
                 best_value=best.get(field), best_objective=base, min_objective=None,
                 min_value=None, max_objective=None, max_value=None, swing=None,
                 variants=len(variants), infeasible=sum(not feasible(r) for r in variants),
                 reason=None)
    if not variants:
        entry["reason"] = NO_VARIANTS
        return entry
    span = [best] + variants
    lo = min(span, key=lambda r: number(r.get(metric)))
    hi = max(span, key=lambda r: number(r.get(metric)))
    entry.update(min_objective=number(lo.get(metric)), min_value=lo.get(field),
                 max_objective=number(hi.get(metric)), max_value=hi.get(field))
    if base == 0:
        entry["reason"] = (f"the best point's {metric} is 0, so a swing relative to it is "
                           f"undefined")
    else:
        entry["swing"] = abs(entry["max_objective"] - entry["min_objective"]) / abs(base)
    return entry
