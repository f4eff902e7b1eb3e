"""``npusim validate --fit``: fit one arch field on named measured rows, with provenance.

Each assignment ``FIELD=ROW,ROW,...`` finds the one value of ``FIELD`` (applied to every row of
that arch, never per row) that minimises the mean absolute log error ``mean |ln(pred/meas)|``
of the named rows, by golden-section search on a bounded range: that error is unimodal in a
field that moves every prediction the same way (an efficiency, a fixed cost), and with one row
its minimum is the exact match, as bisection would find. The value is written with the rows,
metric, date and method to a calibration file that keeps the arch's other entries: beside a
user's arch file, else beside a copy of the shipped arch in the output folder (``--out``), or,
only when asked (``--fit-into-package``) and only in a source checkout, into the package's
``npusim/archs/calibration``.

Several assignments on the same arch are fitted jointly, by coordinate descent: each field in
turn is searched (golden section) with the others at their latest values, round after round,
until no value moves by more than :data:`JOINT_TOL` of itself (or :data:`JOINT_ROUNDS`
rounds). Fields such as ``energy.dynamic_overhead`` and ``energy.operand_delivery`` both move
every power row, so fitting them one after the other would leave the first one wrong. The
joint search minimises the mean squared log error (smooth, so a coordinate step cannot stall
on a kink of ``|ln|``, as it could where one row already matches); with as many rows as
fields its minimum is still the exact match.
"""
from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any, Callable, Sequence

from ..arch.calibration import shipped_dir, write_calibration
from ..errors import NpusimError
from ..files import make_folder
from .core import Simulator, arch_spec, read_rows, select

GOLDEN = (math.sqrt(5) - 1) / 2
ITERATIONS = 40          # the bracket shrinks to 0.618^40 ~ 4e-9 of its width
# Search ranges (SI units): a sustained fraction of the MAC rate, a per-kernel fixed cost
# (GPU launches are a few us), a per-iteration serving overhead (scheduler and sampling are
# well under 50 ms), a chip-to-chip hop's latency (a few us on NVLink, unpublished for the
# GPUs, so there is no current value to search around; up to 100 us, since an NPU's hop over
# PCIe P2P may be synchronised through the host). Any other numeric field searches 1/4x to 4x
# its current value.
BOUNDS = {"cores.engine.efficiency.": (0.05, 1.0), "launch_overhead": (0.0, 1e-4),
          "step_overhead": (0.0, 0.05), "link.latency": (0.0, 1e-4),
          "link.bulk_latency": (0.0, 1e-4),
          "graph_launch_overhead": (0.0, 1e-4),
          # the power model's fitted parts (assumption: 1 is the arithmetic alone; a 700 W H100
          # at 495 TMAC/s is ~1.4 pJ per MAC all in against ~0.06 pJ of Horowitz-scaled
          # arithmetic, so 100x covers any core), and on-chip transport per DRAM bit from none
          # to 100 pJ/bit (assumption: ~5x the HBM device's own 3.5-4 pJ/bit, FGDRAM)
          "energy.dynamic_overhead": (1.0, 100.0),
          "energy.operand_delivery": (0.0, 1e-10)}
METHOD = "golden-section search on the mean |log(pred/meas)| of the rows, range {lo:g}..{hi:g}"
JOINT_METHOD = ("coordinate descent over {fields} ({rounds} rounds): golden-section search on "
                "the mean squared log(pred/meas) of the rows, range {lo:g}..{hi:g}")
JOINT_ROUNDS = 20        # coordinate-descent rounds at most
JOINT_TOL = 1e-4         # ... until no value moves by more than this fraction of itself


def parse_assignment(text: str) -> tuple[str, list[str]]:
    """``"FIELD=ROW,ROW"`` -> ``(FIELD, [ROW, ROW])``.

    Examples
    --------
    >>> parse_assignment("launch_overhead=N3")
    ('launch_overhead', ['N3'])
    """
    field, sep, ids = str(text).partition("=")
    rows = [i.strip() for i in ids.split(",") if i.strip()]
    if not sep or not field.strip() or not rows:
        raise NpusimError(f"--fit {text!r}: write FIELD=ROW,ROW,... e.g. "
                          f"cores.engine.efficiency.fp8_e4m3=N1")
    return field.strip(), rows


def _unit(field: str) -> str:
    from ..arch.schema import si_units
    unit = si_units().get(field, "")
    return unit if unit in ("s", "Hz", "B", "B/s", "W", "J", "J/bit") else ""


def _current(arch, field: str) -> float:
    node: Any = arch
    for part in field.split("."):
        try:
            node = node[part] if hasattr(node, "__getitem__") and not hasattr(node, part) \
                else getattr(node, part)
        except (AttributeError, KeyError, TypeError):
            raise NpusimError(f"--fit: {field} is not a field of arch {arch.name}; use a dotted "
                              f"field of the arch YAML (e.g. cores.engine.efficiency.bf16, "
                              f"launch_overhead, step_overhead)") from None
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise NpusimError(f"--fit: {field} of arch {arch.name} is not a number; only numeric "
                          f"fields can be fitted")
    return float(node)


def bounds_for(field: str, arch) -> tuple[float, float]:
    """The search range of ``field`` (see :data:`BOUNDS`)."""
    for prefix, b in BOUNDS.items():
        if field == prefix or (prefix.endswith(".") and field.startswith(prefix)):
            return b
    now = _current(arch, field)
    if now <= 0:
        raise NpusimError(f"--fit: {field} of arch {arch.name} is {now:g}, so no range around "
                          f"it can be searched; set a positive starting value with --set first")
    return now / 4, now * 4


def format_value(field: str, v: float) -> str | float:
    """The override text of a value (with its SI unit where the field has one)."""
    unit = _unit(field)
    return f"{v!r} {unit}" if unit else float(v)


def golden_section(f: Callable[[float], float], lo: float, hi: float,
                   iterations: int = ITERATIONS) -> float:
    """Minimiser of a unimodal ``f`` on ``[lo, hi]``.

    Examples
    --------
    >>> round(golden_section(lambda x: abs(x - 0.3), 0.0, 1.0), 6)
    0.3
    """
    a, b = lo, hi
    c, d = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iterations):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - GOLDEN * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + GOLDEN * (b - a)
            fd = f(d)
    return (a + b) / 2


def _rounded(field: str, v: float) -> str | float:
    """The value written to the calibration file: 4 significant digits, in the unit a
    reader expects (us for the fixed costs)."""
    if _unit(field) == "s":
        return f"{float(f'{v * 1e6:.4g}'):g} us"
    if _unit(field) == "J/bit":
        return f"{float(f'{v * 1e12:.4g}'):g} pJ/bit"
    unit = _unit(field)
    return f"{float(f'{v:.4g}'):g} {unit}" if unit else float(f"{v:.4g}")


def fit(data: str | Path | None, assignments: Sequence[str], *, arch: str | Path | None = None,
        write: bool = True, out: str | Path | None = None,
        into_package: bool = False) -> dict[str, dict]:
    """Fit arch fields on named measured rows and write them with their provenance.

    Where the fitted values go (never silently into an installed package):

    - an arch given as a YAML file (``arch``, or the rows' ``sim_arch``): its calibration file
      ``<stem>.calibration.yaml`` beside it;
    - a shipped arch: ``<out>/archs/<name>.calibration.yaml`` beside a copy of the shipped
      ``<name>.yaml``, so ``--arch <out>/archs/<name>.yaml`` runs with them anywhere;
    - a shipped arch with ``into_package``: the package's own
      ``npusim/archs/calibration/<name>.yaml``, allowed in a source checkout only (how the
      repository's calibration is regenerated).

    The calibration file written holds every entry in force for the arch plus the new one.

    Parameters
    ----------
    data : path, optional
        Measured-data CSV; default ``npusim/validate/data/measured.csv``.
    assignments : sequence of str
        ``"FIELD=ROW,ROW,..."``; fitted in order, each with the earlier ones in force;
        consecutive ones on the same arch jointly (coordinate descent, module docstring).
    arch : str or path, optional
        Simulate the rows on this arch (a shipped name or a YAML file) instead of their
        ``sim_arch``.
    write : bool
        Write the calibration file (False: only return the values).
    out : path, optional
        Folder for a shipped arch's copy and calibration; default
        :data:`~npusim.validate.core.DEFAULT_OUT`.
    into_package : bool
        Write a shipped arch's calibration into the package (source checkouts only).

    Returns
    -------
    dict
        ``{field: {"value", "rows", "metric", "method", "error_before", "error_after",
        "arch", "spec", "path", "arch_file"}}`` with the mean absolute log errors before and
        after; ``path`` is the calibration file written, ``arch_file`` what to pass as
        ``--arch`` to use it (None when not written).

    Raises
    ------
    NpusimError
        A malformed assignment, an unknown or non-simulable row, rows of different archs, a
        field that is not numeric, or a calibration file that cannot be written.
    """
    from .core import DEFAULT_OUT, default_data
    if write and into_package:
        _package_calibration("")          # refused before minutes of fitting, not after
    path = Path(data) if data is not None else default_data()
    rows = read_rows(path)
    folder = Path(out) if out is not None else DEFAULT_OUT
    written: dict[str, str] = {}     # spec -> arch file carrying this run's earlier fits
    result: dict[str, dict] = {}
    for group in _groups(assignments, rows, path, arch):
        sim = Simulator(path.parent, written)
        spec, first = group[0][2], group[0][1][0]
        target = sim.arch(first)
        if len(group) == 1:
            entries = [_fit_one(sim, target, *group[0][:2], group[0][3])]
        else:
            entries = _fit_jointly(sim, target, group)
        for (field, chosen, _, ids), (entry, before, after) in zip(group, entries):
            result[field] = {**entry, "error_before": before, "error_after": after,
                             "arch": target.name, "spec": spec, "path": None,
                             "arch_file": None}
            if write:
                # reloaded after each write, so the file keeps this group's earlier fields
                current = Simulator(path.parent, written).arch(first)
                cal, arch_file = _write(current, sim.spec(first), field, entry, folder,
                                        into_package)
                result[field].update(path=cal, arch_file=arch_file)
                if arch_file != spec:
                    written[spec] = arch_file
    return result


def _groups(assignments: Sequence[str], rows, path: Path, arch) -> list[list[tuple]]:
    """The assignments as ``(field, rows, arch spec, ids)``, consecutive ones on the same
    arch grouped (a group of several is fitted jointly)."""
    groups: list[list[tuple]] = []
    for text in assignments:
        field, ids = parse_assignment(text)
        chosen = select(rows, ids, path)
        archs = {arch_spec(r, path.parent) for r in chosen}
        if len(archs) > 1:
            raise NpusimError(f"--fit {text}: rows {', '.join(ids)} belong to different archs "
                              f"({', '.join(sorted(archs))}); fit one arch at a time")
        if arch is not None:
            chosen = [{**r, "sim_arch": str(arch)} for r in chosen]
        spec = arch_spec(chosen[0], path.parent)
        if any(field == g[0] for g in (groups[-1] if groups else [])) and groups[-1][0][2] == spec:
            raise NpusimError(f"--fit {text}: {field} is fitted twice on the same arch; give "
                              f"it once with all its rows ({field}=ROW,ROW,...)")
        if groups and groups[-1][0][2] == spec:
            groups[-1].append((field, chosen, spec, ids))
        else:
            groups.append([(field, chosen, spec, ids)])
    return groups


def _log_errors(sim, chosen, fitv=None) -> list[float]:
    return [math.log(sim.predict(r, fitv)[0] / float(r["sim_value"])) for r in chosen]


def _entry(field: str, value: float, ids, chosen, method: str) -> dict:
    return {"value": _rounded(field, value), "rows": list(ids),
            "metric": ",".join(sorted({r["sim_metric"] for r in chosen})),
            "date": date.today().isoformat(), "method": method}


def _fit_one(sim, target, field: str, chosen, ids) -> tuple[dict, float, float]:
    """One field on its rows: golden section on the mean |log error|."""
    lo, hi = bounds_for(field, target)

    def loss(v: float) -> float:
        errs = _log_errors(sim, chosen, {field: format_value(field, v)})
        return sum(abs(e) for e in errs) / len(errs)

    before = sum(abs(e) for e in _log_errors(sim, chosen)) / len(chosen)
    value = golden_section(loss, lo, hi)
    return (_entry(field, value, ids, chosen, METHOD.format(lo=lo, hi=hi)), before,
            loss(value))


def _fit_jointly(sim, target, group) -> list[tuple[dict, float, float]]:
    """Several fields of one arch by coordinate descent (see the module docstring)."""
    fields = [g[0] for g in group]
    ranges = [bounds_for(f, target) for f in fields]
    values = [_start(target, f, lo, hi) for f, (lo, hi) in zip(fields, ranges)]

    # values the calibration carries over from a field being fitted (bf16's efficiency
    # "from" fp8's) move with it during the search, as they will in the file written
    followers = {f: [k for k, v in target.calibrated().items()
                     if v["kind"] == "assumed" and v.get("from") == f and k not in fields]
                 for f in fields}

    def fitv(vals) -> dict:
        out = {}
        for f, v in zip(fields, vals):
            for k in (f, *followers[f]):
                out[k] = format_value(k, v)
        return out

    def squared(i: int, vals) -> float:
        errs = _log_errors(sim, group[i][1], fitv(vals))
        return sum(e * e for e in errs) / len(errs)

    values, rounds = coordinate_descent(squared, values, ranges)
    out = []
    for i, (field, chosen, _, ids) in enumerate(group):
        before = sum(abs(e) for e in _log_errors(sim, chosen)) / len(chosen)
        after = sum(abs(e) for e in _log_errors(sim, chosen, fitv(values))) / len(chosen)
        lo, hi = ranges[i]
        method = JOINT_METHOD.format(fields=", ".join(fields), rounds=rounds, lo=lo, hi=hi)
        out.append((_entry(field, values[i], ids, chosen, method), before, after))
    return out


def coordinate_descent(loss: Callable[[int, list[float]], float], start: Sequence[float],
                       ranges: Sequence[tuple[float, float]], rounds: int = JOINT_ROUNDS,
                       tol: float = JOINT_TOL) -> tuple[list[float], int]:
    """Minimise by turns: value ``i`` is searched (golden section on ``loss(i, values)``)
    with the others held, round after round, until none moves by more than ``tol`` of
    itself or ``rounds`` have run. Returns the values and the rounds taken.

    Two fields that move the same rows are correlated, and plain coordinate descent then
    creeps towards the minimum along one direction, shrinking the error by the same factor
    each round (the squared correlation: 0.5 for H100's two power parts, 15 rounds to 1e-4).
    So after each round a golden-section line search runs along that round's move (the
    pattern step of Hooke and Jeeves), on the sum of the losses, and is kept only if it
    lowers that sum; on a quadratic in two values it lands on the minimum.

    Examples
    --------
    >>> f = lambda i, v: (v[0] + v[1] - 3) ** 2 + (v[0] - v[1] - 1) ** 2   # x=2, y=1
    >>> v, n = coordinate_descent(f, [0.0, 0.0], [(0.0, 5.0), (0.0, 5.0)])
    >>> [round(x, 3) for x in v]
    [2.0, 1.0]
    """
    values = list(start)

    def total(vals: list[float]) -> float:
        return sum(loss(i, vals) for i in range(len(vals)))

    for n in range(1, rounds + 1):
        old = list(values)
        for i, (lo, hi) in enumerate(ranges):
            values[i] = golden_section(
                lambda v, i=i: loss(i, values[:i] + [v] + values[i + 1:]), lo, hi)
        if all(abs(v - o) <= tol * max(abs(v), abs(o)) for v, o in zip(values, old)):
            return values, n
        values = _pattern_step(total, values, old, ranges)
    return values, rounds


def _pattern_step(total: Callable[[list[float]], float], values: list[float],
                  old: list[float], ranges: Sequence[tuple[float, float]]) -> list[float]:
    """``values + t (values - old)`` for the ``t`` in [0, 20] (within the ranges) that
    minimises ``total``, or ``values`` if no step lowers it."""
    move = [v - o for v, o in zip(values, old)]
    reach = 20.0    # a creep factor of 0.95 a round extrapolates to 19 rounds' worth
    for v, d, (lo, hi) in zip(values, move, ranges):
        if d > 0:
            reach = min(reach, (hi - v) / d)
        elif d < 0:
            reach = min(reach, (lo - v) / d)
    if reach <= 0:
        return values

    def at(t: float) -> list[float]:
        return [min(max(v + t * d, lo), hi) for v, d, (lo, hi) in zip(values, move, ranges)]

    t = golden_section(lambda t: total(at(t)), 0.0, reach, iterations=30)
    step = at(t)
    return step if total(step) < total(values) else values


def _start(target, field: str, lo: float, hi: float) -> float:
    """Where coordinate descent starts a field: its value now when it has one in range,
    else the low end (for the power model's parts: no overhead, no delivery)."""
    try:
        now = _current(target, field)
    except NpusimError:
        return lo
    return now if lo <= now <= hi else lo


def _is_yaml(spec: str) -> bool:
    return spec.endswith((".yaml", ".yml"))


def _write(arch, spec: str, field: str, entry: dict, out: Path,
           into_package: bool) -> tuple[Path, str]:
    """Put one fitted entry into the calibration ``arch`` runs with, keeping the others in
    force; return the calibration file and the arch to pass as ``--arch`` to use it."""
    if _is_yaml(spec):
        src = Path(spec)
        path, arch_file, flag = src.with_name(f"{src.stem}.calibration.yaml"), spec, "--arch"
    elif into_package:
        path, arch_file, flag = _package_calibration(spec), spec, "--fit-into-package"
    else:
        folder = make_folder(Path(out) / "archs", "fitted arch")
        arch_file, flag = str(folder / f"{spec}.yaml"), "--out"
        shipped = Path(str(shipped_dir())).parent / f"{spec}.yaml"
        try:
            Path(arch_file).write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
        except OSError as e:
            raise _cannot_write(Path(arch_file), e, flag) from None
        path = folder / f"{spec}.calibration.yaml"
    old = arch.calibrated()
    fitted = {k: {x: y for x, y in v.items() if x != "kind"} for k, v in old.items()
              if v["kind"] == "fitted"}
    assumed = {k: {x: y for x, y in v.items() if x != "kind"} for k, v in old.items()
               if v["kind"] == "assumed" and k != field}
    fitted[field] = entry
    for v in assumed.values():   # values carried over from this field follow it
        if v.get("from") == field:
            v["value"] = entry["value"]
    try:
        return write_calibration(path, arch.name, fitted, assumed), arch_file
    except OSError as e:
        raise _cannot_write(path, e, flag) from None


def _cannot_write(path: Path, e: OSError, flag: str) -> NpusimError:
    return NpusimError(f"cannot write the fitted calibration {path}: {e.strerror}; choose a "
                       f"writable place ({flag})")


def _package_calibration(spec: str) -> Path:
    """The package's calibration file of shipped arch ``spec``, if the package is a source
    checkout (a ``pyproject.toml`` beside ``npusim/``); an installed package is never written."""
    folder = Path(str(shipped_dir()))
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not folder.is_relative_to(root):
        raise NpusimError(f"--fit-into-package: npusim is installed at {folder.parent.parent}, "
                          f"not run from a source checkout, so its calibration is not written; "
                          f"drop the flag to write a calibrated copy of the arch into --out")
    return folder / f"{spec}.yaml"


__all__ = ["fit", "parse_assignment", "golden_section", "coordinate_descent", "bounds_for",
           "format_value"]
