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
          "graph_launch_overhead": (0.0, 1e-4)}
METHOD = "golden-section search on the mean |log(pred/meas)| of the rows, range {lo:g}..{hi:g}"


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
    return unit if unit in ("s", "Hz", "B", "B/s", "W", "J") else ""


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
        ``"FIELD=ROW,ROW,..."``; fitted in order, each with the earlier ones in force.
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
        sim = Simulator(path.parent, written)
        target = sim.arch(chosen[0])
        lo, hi = bounds_for(field, target)

        def loss(v: float, sim=sim, chosen=chosen, field=field) -> float:
            fitv = {field: format_value(field, v)}
            errs = [abs(math.log(sim.predict(r, fitv)[0] / float(r["sim_value"])))
                    for r in chosen]
            return sum(errs) / len(errs)

        before = sum(abs(math.log(sim.predict(r)[0] / float(r["sim_value"])))
                     for r in chosen) / len(chosen)
        value = golden_section(loss, lo, hi)
        entry = {"value": _rounded(field, value), "rows": list(ids),
                 "metric": ",".join(sorted({r["sim_metric"] for r in chosen})),
                 "date": date.today().isoformat(), "method": METHOD.format(lo=lo, hi=hi)}
        result[field] = {**entry, "error_before": before, "error_after": loss(value),
                         "arch": target.name, "spec": spec, "path": None, "arch_file": None}
        if write:
            cal, arch_file = _write(target, sim.spec(chosen[0]), field, entry, folder,
                                    into_package)
            result[field].update(path=cal, arch_file=arch_file)
            if arch_file != spec:
                written[spec] = arch_file
    return result


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


__all__ = ["fit", "parse_assignment", "golden_section", "bounds_for", "format_value"]
