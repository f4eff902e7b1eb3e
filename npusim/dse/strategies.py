"""Which design points a sweep evaluates: grid, random, Latin hypercube, NSGA-II (optuna).

A point is ``dict[str, str]``: arch field path -> the value's text as ``--set`` takes it (a
listed value as the spec wrote it; a number drawn from a range in the range's unit). Every
strategy is deterministic for a given spec and seed: the same spec gives the same points in the
same order, and the order is the point index the store keeps.

Random and Latin-hypercube sampling both draw a unit cube ``u`` in [0, 1)^(n x fields) and map
each column through the same inverse CDF (:func:`_from_unit`): a listed field takes value
``floor(u x m)`` of its m values (for LHS, the stratum's index), a range ``low + u (high -
low)`` (or the same in log space). So LHS's one-sample-per-stratum property carries over to
every field.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from .spec import (Field, SweepSpec, format_number, quantity, range_numbers, unit_dims)

Point = dict[str, str]


def levels(f: Field) -> list[str]:
    """The values a grid takes from field ``f``: its listed values, or ``levels`` values evenly
    spaced over its range (geometrically for ``scale: log``), duplicates (after rounding an
    integer field) dropped.

    >>> levels(Field("cores.count", low="4", high="16", integer=True, levels=4))
    ['4', '8', '12', '16']
    """
    if f.values is not None:
        return list(f.values)
    lo, hi = range_numbers(f)
    n = f.levels or 1
    xs = np.geomspace(lo, hi, n) if f.scale == "log" and n > 1 else np.linspace(lo, hi, n)
    return _unique(format_number(float(x), f) for x in xs)


def _unique(texts) -> list:
    out: list = []
    for t in texts:
        if t not in out:
            out.append(t)
    return out


def points(spec: SweepSpec) -> list[Point]:
    """The design points of a grid, random or lhs spec, in evaluation order.

    Grid: the cartesian product of each field's :func:`levels`, the last field varying
    fastest. Random and lhs: ``samples`` draws, seeded by the spec's seed; a draw that repeats
    an earlier point is dropped (it would be the same design).
    """
    kind = spec.strategy.kind
    if kind == "grid":
        return [_point(spec, combo)
                for combo in itertools.product(*(levels(f) for f in spec.fields))]
    if kind not in ("random", "lhs"):
        raise ValueError(f"points() is for grid, random and lhs specs; {kind} is adaptive: "
                         f"use Adaptive(spec)")
    u = unit_cube(kind, spec.strategy.samples, len(spec.fields), spec.strategy.seed)
    columns = [_from_unit(f, u[:, j]) for j, f in enumerate(spec.fields)]
    out, seen = [], set()
    for row in zip(*columns):
        if row not in seen:
            seen.add(row)
            out.append(_point(spec, row))
    return out


def _point(spec: SweepSpec, texts) -> Point:
    """The point with each field at its text (linked fields following theirs)."""
    out: Point = {}
    for f, text in zip(spec.fields, texts):
        out.update(f.assign(text))
    return out


def unit_cube(kind: str, n: int, d: int, seed: int) -> np.ndarray:
    """``n`` x ``d`` draws in [0, 1): uniform (``random``, numpy's seeded Generator) or a Latin
    hypercube (``lhs``, scipy's, seeded): each column then has one draw in each of the ``n``
    strata [i/n, (i+1)/n)."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.random((n, d))
    from scipy.stats import qmc
    try:
        sampler = qmc.LatinHypercube(d=d, rng=rng)
    except TypeError:                  # scipy < 1.15 names the generator `seed`
        sampler = qmc.LatinHypercube(d=d, seed=rng)
    return sampler.random(n)


def _from_unit(f: Field, u: np.ndarray) -> list[str]:
    """Field values at unit-cube coordinates ``u`` (the inverse CDF of a uniform draw over the
    listed values or the range)."""
    if f.values is not None:
        m = len(f.values)
        return [f.values[min(int(x * m), m - 1)] for x in u]
    lo, hi = range_numbers(f)
    if f.scale == "log":
        xs = np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
        if f.integer:
            xs = np.clip(np.round(xs), lo, hi)
    elif f.integer:
        xs = np.minimum(np.floor(lo + u * (hi - lo + 1)), hi)
    else:
        xs = lo + u * (hi - lo)
    return [format_number(float(x), f) for x in xs]


def neighbours(spec: SweepSpec, best: Mapping[str, str]) -> list[Point]:
    """One-at-a-time variations of ``best`` for a tornado plot: for each field, ``best`` with
    that field at each of its listed values (or at the range's low, middle and high), the
    others unchanged; variants equal to ``best`` dropped.

    The middle of a log-scale range is its geometric mean.
    """
    base = values(spec, best)
    out: list[Point] = []
    for f in spec.fields:
        for text in _unique(_variants(f)):
            point = {**best, **f.assign(text)}
            if si_value(text) != base.get(f.path):
                out.append(point)
    return out


def _variants(f: Field) -> list[str]:
    if f.values is not None:
        return list(f.values)
    lo, hi = range_numbers(f)
    mid = math.sqrt(lo * hi) if f.scale == "log" else (lo + hi) / 2
    return [format_number(x, f) for x in (lo, mid, hi)]


def values(spec: SweepSpec, point: Mapping[str, str]) -> dict[str, float | str]:
    """Each of the spec's fields (linked ones too) in ``point`` as a plain number in its SI
    base unit (bytes, B/s, Hz, s, W, J), read by the arch loader's unit reader, or as its text
    when it is a choice (``ws``, ``true``). Fields absent from ``point`` are left out.

    >>> from npusim.dse.spec import SweepSpec, Strategy
    >>> s = SweepSpec("x", "x.yaml", "", "edu", "arch", {}, (Field("cores.sram",
    ...     values=("64 MiB",)), Field("cores.engine.dataflow", values=("ws",))), (), (), (),
    ...     Strategy())
    >>> values(s, {"cores.sram": "64 MiB", "cores.engine.dataflow": "ws"})
    {'cores.sram': 67108864.0, 'cores.engine.dataflow': 'ws'}
    """
    out: dict[str, float | str] = {}
    for f in spec.fields:
        for path in (f.path, *(p for p, _ in f.linked)):
            if path in point:
                out[path] = si_value(point[path])
    return out


def si_value(text: str) -> float | str:
    """One value text as a number in SI units, or the text itself when it is not a number
    (or its unit has no SI unit among the arch's kinds)."""
    from ..arch.units import UnitProblem
    q = quantity(text)
    if q is None:
        return text
    number, unit = q
    if unit is None:
        return number
    try:
        _, to_si = unit_dims(unit, text)
    except UnitProblem:
        return text
    return number * to_si if math.isfinite(to_si) else text


# --------------------------------------------------------------------------------- adaptive

@contextlib.contextmanager
def _quiet_optuna():
    """optuna logs every study and trial at INFO on stderr, through the progress bar; lower
    its verbosity for the call only, leaving the caller's logging setting as it was."""
    import optuna
    old = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield optuna
    finally:
        optuna.logging.set_verbosity(old)


def _constraint_values(trial) -> list[float]:
    """NSGA-II's constraint values of a told trial (<= 0 feasible), kept in its user attrs
    (optuna before 5.0, which has no ``Trial.set_constraint``)."""
    return list(trial.user_attrs.get("constraints", [0.0]))


def _new_constraints_api(optuna) -> bool:
    return hasattr(optuna.trial.Trial, "set_constraint")


def _distribution(f: Field):
    from optuna.distributions import (CategoricalDistribution, FloatDistribution,
                                      IntDistribution)
    if f.values is not None:
        return CategoricalDistribution(list(f.values))
    lo, hi = range_numbers(f)
    log = f.scale == "log"
    if f.integer:
        return IntDistribution(int(lo), int(hi), log=log)
    return FloatDistribution(lo, hi, log=log)


class Adaptive:
    """NSGA-II multi-objective search (optuna's ``NSGAIISampler``, seeded) as ask / tell.

    ``ask(n)`` gives ``n`` points to evaluate; ``tell(points, metrics)`` reports each point's
    metrics (a dict with the objectives' metric names; None for a failed point) in any order.
    Constraints of the spec become NSGA-II constraints (a violated one ranks a point below
    every feasible one). ``done`` is True once ``spec.strategy.samples`` points (population x
    generations) are told. The same spec and the same told results give the same asked
    points.
    """

    def __init__(self, spec: SweepSpec):
        st = spec.strategy
        if st.kind != "nsga2":
            raise ValueError(f"Adaptive is for nsga2 specs; {st.kind} gives points()")
        self.spec = spec
        self.budget = int(st.samples)
        self._told = 0
        self._pending: dict[tuple, list] = {}
        self._dists = {f.path: _distribution(f) for f in spec.fields}
        with _quiet_optuna() as optuna:
            sampler = optuna.samplers.NSGAIISampler(
                population_size=st.population, seed=st.seed,
                constraints_func=_constraint_values
                if spec.constraints and not _new_constraints_api(optuna) else None)
            self._study = optuna.create_study(
                sampler=sampler,
                directions=["maximize" if o.goal == "max" else "minimize"
                            for o in spec.objectives])

    @property
    def done(self) -> bool:
        """True once the budget of points has been told."""
        return self._told >= self.budget

    def ask(self, n: int) -> list[Point]:
        """``n`` new points to evaluate."""
        out = []
        with _quiet_optuna():
            for _ in range(n):
                trial = self._study.ask(self._dists)
                point = _point(self.spec, [self._text(f, trial.params[f.path])
                                           for f in self.spec.fields])
                self._pending.setdefault(_key(point), []).append(trial)
                out.append(point)
        return out

    @staticmethod
    def _text(f: Field, value) -> str:
        return str(value) if f.values is not None else format_number(float(value), f)

    def tell(self, points: Sequence[Mapping[str, str]],
             metrics: Sequence[Mapping[str, float] | None]) -> None:
        """Report the metrics of asked points; None (or a missing or non-finite objective)
        marks a failed point, which NSGA-II never selects."""
        if len(points) != len(metrics):
            raise ValueError(f"tell: {len(points)} points but {len(metrics)} metric sets")
        from optuna.trial import TrialState
        with _quiet_optuna():
            for point, got in zip(points, metrics):
                waiting = self._pending.get(_key(point))
                if not waiting:
                    raise ValueError(f"tell: point {dict(point)} was not asked (or was told "
                                     f"already)")
                trial = waiting.pop(0)
                objective = self._objectives(got)
                if objective is None:
                    self._study.tell(trial, state=TrialState.FAIL)
                else:
                    for i, v in enumerate(self._violations(got)):
                        if hasattr(trial, "set_constraint"):
                            trial.set_constraint(f"c{i}", v)
                        else:
                            trial.set_user_attr("constraints", self._violations(got))
                    self._study.tell(trial, objective)
                self._told += 1

    def _objectives(self, got: Mapping[str, float] | None) -> list[float] | None:
        if got is None:
            return None
        out = []
        for o in self.spec.objectives:
            v = got.get(o.metric)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                return None
            out.append(float(v))
        return out

    def _violations(self, got: Mapping[str, float]) -> list[float]:
        """One value per constraint, > 0 by the fraction it is violated by (0 if met or not
        measured): NSGA-II's constraint form."""
        out = []
        for c in self.spec.constraints:
            v = got.get(c.metric)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                out.append(0.0)
                continue
            excess = v - c.limit if c.op == "<=" else c.limit - v
            out.append(excess / abs(c.limit) if c.limit else excess)
        return out or [0.0]


def _key(point: Mapping[str, str]) -> tuple:
    return tuple(sorted(point.items()))


__all__ = ["Adaptive", "Point", "levels", "neighbours", "points", "si_value", "unit_cube",
           "values"]
