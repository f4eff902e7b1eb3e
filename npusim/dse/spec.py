"""Sweep specs: a YAML file in, a frozen, validated :class:`SweepSpec` out.

A spec names a base arch, the fields to vary (listed values or ranges, units as ``--set``
takes them), the workloads, the objectives and constraints, and the search strategy::

    name: rngd-decode
    base: rngd                    # shipped arch, arch YAML (relative to this file),
                                  # or {snn_device: loihi} for spiking cores
    set: {dram.capacity: 48 GB}   # fixed on every point (optional)
    fields:
      cores.sram: [16 MiB, 32 MiB, 64 MiB]
      dram.bandwidth: {low: 0.75 TB/s, high: 3 TB/s, scale: log, levels: 4}
      cores.count: {low: 4, high: 16, integer: true, levels: 4}
    workloads:
      - {name: decode-32, llm: llama-3.1-8b, phase: decode, batch: 32, kv_len: 1024}
      - {name: resnet, graph: resnet50, batch: 8, precision: int8}
      - {name: chat, kperf: {model: llama-3.1-8b, input_len: 1024, output_len: 256, users: 32}}
    objectives: [{tokens_per_s: max}, {energy_per_token_j: min}, area_mm2]
    constraints: {power_w: {max: 150 W}, area_mm2: {max: 700}}
    strategy: {kind: lhs, samples: 64, seed: 1}   # grid | random | lhs | nsga2
    sensitivity: true
    cost: {per_mm2: 0.5, per_gb_dram: 3}

Everything is checked here, once, at the boundary: every field value (and every range's
``low`` and ``high``) is applied to the base arch through :func:`npusim.arch.load_arch` (or
:func:`npusim.arch.snn_device.load_snn_device`), so an unknown field, a wrong unit or an absurd
value is refused with the arch loader's own message, prefixed by the spec key. Each problem is
one single-line :class:`SpecError` naming the spec file, the key path and the fix. The
workloads are validated in :mod:`npusim.dse.spec_workloads`.

A field's listed values may carry linked fields that move with them, position by position,
for values that must change together (an array's shape and its MAC rates)::

    cores.engine.units:
      values: [32, 64, 128]
      with: {cores.engine.macs_per_cycle.bf16: [8192, 16384, 32768]}
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NpusimError

METRICS: dict[str, tuple[str, str, str]] = {
    "latency_s": ("s", "min", "time of one inference (or one LLM step)"),
    "tokens_per_s": ("token/s", "max", "generated (or processed) tokens per second"),
    "inferences_per_s": ("1/s", "max", "inferences per second (ONNX and graph workloads)"),
    "ttft_s": ("s", "min", "time to first token (serving scenarios, prefill)"),
    "tpot_s": ("s", "min", "time per output token (decode)"),
    "energy_j": ("J", "min", "energy of one inference or step"),
    "energy_per_token_j": ("J", "min", "energy per token"),
    "power_w": ("W", "min", "average card power while running"),
    "perf_per_w": ("1/(s W)", "max", "tokens/s (or inferences/s) per watt"),
    "area_mm2": ("mm^2", "min", "die area from the area model"),
    "perf_per_mm2": ("1/(s mm^2)", "max", "tokens/s (or inferences/s) per mm^2 of die"),
    "cost": ("currency", "min", "die and DRAM cost from the spec's own cost assumptions"),
    "sram_bytes": ("B", "min", "on-chip SRAM in total"),
    "dram_bytes": ("B", "min", "DRAM capacity"),
    "dram_need_bytes": ("B", "min", "DRAM the workload needs (weights + KV cache)"),
    "utilisation": ("1", "max", "fraction of the peak MAC rate used (0..1)"),
    "tdp_w": ("W", "min", "thermal design power of the arch"),
}
"""Metric name -> (SI unit, natural goal ``"min"``/``"max"``, one-line meaning): the fixed
vocabulary of objectives and constraints. A workload kind produces the subset that means
something for it (a decode step has ``tokens_per_s`` and ``tpot_s``, no ``ttft_s``)."""

# Metric unit -> the unit kind of npusim.arch.units a limit with a unit is read as.
_LIMIT_KIND = {"s": "time", "W": "power", "B": "size", "J": "energy"}
# Unit texts accepted after a number for metrics without a pint kind.
_LIMIT_ALIASES = {"mm^2": ("mm^2", "mm2", "mm**2"), "token/s": ("token/s", "tokens/s", "tok/s"),
                  "1/s": ("1/s", "/s", "Hz"), "1": ("",), "currency": ("",)}

MAX_POINTS = 100_000
"""Largest grid (or sample count) a spec may ask for: a sweep is a laptop-to-cluster job of
minutes to hours at ~100 points/s, and a larger one is almost always a levels typo."""

STRATEGIES = ("grid", "random", "lhs", "nsga2")
SCALES = ("linear", "log")
TOP_KEYS = ("name", "description", "base", "set", "fields", "workloads", "objectives",
            "constraints", "strategy", "sensitivity", "cost")
RANGE_KEYS = ("low", "high", "scale", "levels", "integer", "values")
COST_KEYS = ("per_mm2", "per_gb_dram")
SWEEP_EXTRA = 'pip install "npusim[sweep]"'


class SpecError(NpusimError):
    """A sweep spec that cannot be read or validated; the message names file, key and fix."""


@dataclass(frozen=True)
class Field:
    """One arch field to vary: listed ``values`` (texts as ``--set`` takes them) or a range
    ``low`` .. ``high`` (texts; ``unit`` the range's unit or None for plain numbers)."""

    path: str
    values: tuple[str, ...] | None = None
    low: str | None = None
    high: str | None = None
    scale: str = "linear"
    integer: bool = False
    unit: str | None = None
    levels: int | None = None
    linked: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def is_range(self) -> bool:
        """True for a range, False for listed values."""
        return self.values is None

    def assign(self, text: str) -> dict[str, str]:
        """The overrides that put this field at ``text``: its own path, and for a listed value
        with ``linked`` fields (``with:`` in the spec) theirs at the same position.

        >>> Field("cores.engine.rows", values=("32", "64"),
        ...       linked=(("cores.engine.cols", ("32", "64")),)).assign("64")
        {'cores.engine.rows': '64', 'cores.engine.cols': '64'}
        """
        out = {self.path: text}
        if self.linked and text in self.values:
            i = self.values.index(text)
            out.update((path, texts[i]) for path, texts in self.linked)
        return out


@dataclass(frozen=True)
class Workload:
    """One workload every design point runs: ``kind`` and its ``params`` (see the module)."""

    name: str
    kind: str
    params: dict


@dataclass(frozen=True)
class Objective:
    """A metric of :data:`METRICS` to minimise or maximise."""

    metric: str
    goal: str


@dataclass(frozen=True)
class Constraint:
    """``metric op limit``; ``limit`` in the metric's SI unit, ``text`` as written."""

    metric: str
    op: str
    limit: float
    text: str


@dataclass(frozen=True)
class Strategy:
    """How points are chosen; ``samples`` is the point budget (nsga2: population x
    generations), None for a grid."""

    kind: str = "grid"
    samples: int | None = None
    seed: int = 0
    generations: int | None = None
    population: int | None = None
    sensitivity: bool = False


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec (see the module docstring for the YAML)."""

    name: str
    source: str
    text: str
    base: str
    base_kind: str
    base_overrides: dict
    fields: tuple[Field, ...]
    workloads: tuple[Workload, ...]
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    strategy: Strategy
    cost: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------- reading

def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate the sweep spec at ``path``.

    Raises
    ------
    NpusimError
        One single-line message per problem, naming the file, the key path and the fix.
    """
    from ..arch.loader import parse_yaml
    from ..files import read_text, user_path
    source = str(path)
    text = read_text(path, "the sweep spec", max_bytes=1_000_000)
    tree = parse_yaml(text, source)
    return parse_spec(tree, source, text)


def parse_spec(mapping: Any, source: str, text: str | None = None) -> SweepSpec:
    """Validate a spec already parsed from YAML; ``source`` is its file (for messages and
    for paths relative to it), ``text`` the YAML as read (dumped from ``mapping`` if None)."""
    label = str(source)
    try:
        return _parse(mapping, label, text)
    except SpecError:
        raise
    except NpusimError as exc:
        raise SpecError(_one_line(str(exc))) from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def fail(label: str, key: str, message: str) -> SpecError:
    """The one-line error ``LABEL: KEY: MESSAGE`` (whitespace runs folded to one space)."""
    where = f"{label}: {key}: " if key else f"{label}: "
    return SpecError(_one_line(where + message))


def _brief(value: Any) -> str:
    from ..arch.units import brief
    return brief(value)


def _did_you_mean(word: Any, options) -> str:
    from ..arch.schema import did_you_mean
    return did_you_mean(str(word), list(options))


def check_keys(tree: Mapping, allowed, label: str, where: str) -> None:
    """Refuse the first key of ``tree`` not in ``allowed``, with a did-you-mean."""
    for key in tree:
        if key not in allowed:
            at = f"{where}.{key}" if where else str(key)
            raise fail(label, at, f"unknown key{_did_you_mean(key, allowed)}; allowed: "
                                   f"{', '.join(allowed)}")


def _parse(tree: Any, label: str, text: str | None) -> SweepSpec:
    if tree is None:
        raise fail(label, "", "the spec is empty; it must be a mapping with at least base, "
                               "fields, workloads and objectives")
    if not isinstance(tree, Mapping):
        raise fail(label, "", f"expected a mapping of {', '.join(TOP_KEYS)}, got "
                               f"{_brief(tree)}")
    check_keys(tree, TOP_KEYS, label, "")
    for key in ("base", "fields", "workloads", "objectives"):
        if key not in tree:
            raise fail(label, key, "missing; a spec needs base, fields, workloads and "
                                    "objectives")
    here = Path(label).parent
    name = tree.get("name", Path(label).stem)
    if not isinstance(name, str) or not name.strip():
        raise fail(label, "name", f"expected a short text, got {_brief(name)}")
    base, base_kind = _base(tree["base"], here, label)
    fixed = _overrides(tree.get("set"), label)
    _check_point(base, base_kind, {}, label, "base")
    for path, value in fixed.items():
        _check_point(base, base_kind, {path: value}, label, f"set.{path}")
    if len(fixed) > 1:
        _check_point(base, base_kind, fixed, label, "set")
    strategy = _strategy(tree.get("strategy"), tree.get("sensitivity", False), label)
    fields = _fields(tree["fields"], fixed, base, base_kind, strategy, label)
    from .spec_workloads import parse_workloads
    workloads = parse_workloads(tree["workloads"], base_kind, here, label)
    objectives = _objectives(tree["objectives"], label)
    constraints = _constraints(tree.get("constraints"), label)
    cost = _cost(tree.get("cost"), label)
    if text is None:
        text = _dump(tree)
    return SweepSpec(name=name.strip(), source=label, text=text, base=base,
                     base_kind=base_kind, base_overrides=fixed, fields=fields,
                     workloads=workloads, objectives=objectives, constraints=constraints,
                     strategy=strategy, cost=cost)


def _dump(tree: Any) -> str:
    import yaml

    def plain(x):
        if isinstance(x, Mapping):
            return {str(k): plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x if isinstance(x, (str, int, float, bool, type(None))) else str(x)
    try:
        return yaml.safe_dump(plain(tree), sort_keys=False)
    except (yaml.YAMLError, ValueError, RecursionError):
        return repr(tree)


# -------------------------------------------------------------------------------- base arch

def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.lower().endswith((".yaml", ".yml"))


def resolve_path(text: str, here: Path) -> str:
    """A path as written, made absolute relative to the spec's folder (as written when it
    cannot be: a ``~user`` of no such user, a NUL byte; opening it then says so)."""
    from ..files import user_path
    try:
        path = user_path(text)
        return str(path if path.is_absolute() else (here / path).resolve())
    except (OSError, ValueError, RuntimeError):
        return text


def is_file(path: str) -> bool:
    """Whether ``path`` is a file; False for text no file system takes (a NUL byte)."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def _base(raw: Any, here: Path, label: str) -> tuple[str, str]:
    from ..arch.snn_device import snn_devices
    if isinstance(raw, Mapping):
        check_keys(raw, ("snn_device",), label, "base")
        dev = raw.get("snn_device")
        if not isinstance(dev, str) or not dev.strip():
            raise fail(label, "base.snn_device", f"expected a spiking-core device name "
                        f"({', '.join(snn_devices())}) or a device YAML path, got {_brief(dev)}")
        dev = dev.strip()
        if not _looks_like_path(dev):
            return dev, "snn_device"
        path = resolve_path(dev, here)
        if not is_file(path):
            raise fail(label, "base.snn_device", f"{dev!r}: no such device file ({path}); "
                                                  f"paths are relative to the spec's folder")
        return path, "snn_device"
    if not isinstance(raw, str) or not raw.strip():
        raise fail(label, "base", f"expected a shipped arch name (e.g. rngd), an arch YAML "
                                   f"path or {{snn_device: NAME}}, got {_brief(raw)}")
    base = raw.strip()
    if base.lower() in snn_devices():
        raise fail(label, "base", f"{base!r} is a spiking-core device; write base: "
                                   f"{{snn_device: {base}}}")
    if _looks_like_path(base) and "+" not in base:
        base = resolve_path(base, here)
        if not is_file(base):
            raise fail(label, "base", f"{raw.strip()!r}: no such arch file ({base}); paths "
                                       f"are relative to the spec's folder")
    return base, "arch"


def _text(value: Any) -> str:
    """A YAML scalar as the text ``--set`` takes (``true``, ``null``, ``16 MiB``, ``4``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value).strip()


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _overrides(raw: Any, label: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise fail(label, "set", f"expected a mapping of arch field to value, e.g. "
                                  f"{{dram.capacity: 48 GB}}, got {_brief(raw)}")
    out = {}
    for path, value in raw.items():
        key = f"set.{path}"
        if not isinstance(path, str) or not path.strip():
            raise fail(label, key, "a field is a dotted name such as dram.bandwidth")
        if not _scalar(value):
            raise fail(label, key, f"expected one value, got {_brief(value)}; to vary it, "
                                    f"move it under fields")
        out[path.strip()] = _text(value)
    return out


def check_point(spec: SweepSpec, point: Mapping[str, str]):
    """Load the arch (or spiking-core device) of ``point`` on ``spec``'s base; the loaded
    object, or the loader's ArchError."""
    return _load(spec.base, spec.base_kind, {**spec.base_overrides, **point})


def _load(base: str, kind: str, overrides: Mapping[str, str]):
    if kind == "snn_device":
        from ..arch.snn_device import load_snn_device
        return load_snn_device(base, dict(overrides) or None)
    from ..arch import load_arch
    arch = load_arch(base, dict(overrides))
    if any(k.startswith("energy.") for k in overrides):
        from ..energy.table import load_energy_table
        load_energy_table(arch)       # energy-table fields are validated by the table
    return arch


def _check_point(base: str, kind: str, overrides: Mapping[str, str], label: str,
                 key: str) -> None:
    try:
        _load(base, kind, overrides)
    except NpusimError as exc:
        raise fail(label, key, str(exc)) from None


# ----------------------------------------------------------------------------------- fields

def quantity(value: Any) -> tuple[float, str | None] | None:
    """``(number, unit)`` of a value: ``'16 MiB'`` -> ``(16.0, 'MiB')``, ``4`` -> ``(4.0,
    None)``; None for anything else (a choice such as ``ws``, ``true``)."""
    from ..arch.units import split_quantity
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            x = float(value)
        except OverflowError:
            return None
        return (x, None) if math.isfinite(x) else None
    if not isinstance(value, str):
        return None
    parts = split_quantity(value)
    if parts is None:
        return None
    try:
        x = float(parts[0])
    except ValueError:
        return None
    if not math.isfinite(x):
        return None
    return x, (parts[1].strip() or None)


def unit_dims(unit: str, value: Any) -> tuple[tuple, float]:
    """Dimensions of ``unit`` and its factor to SI (NaN for a kind without an SI unit in
    :data:`npusim.arch.units.KINDS`), by the arch loader's unit reader."""
    from ..arch.units import unit_of
    return unit_of(unit, value, "expected a unit such as MiB, TB/s, GHz, W")


def unit_factor(unit: str | None, to: str | None) -> float:
    """How many ``to`` one ``unit`` is (1 if both None), through npusim's unit registry."""
    if unit == to:
        return 1.0
    from ..arch.units import registry
    ureg = registry()
    return float(ureg.Quantity(1.0, ureg.parse_units(unit)).to(ureg.parse_units(to)).magnitude)


def _fields(raw: Any, fixed: Mapping[str, str], base: str, base_kind: str,
            strategy: Strategy, label: str) -> tuple[Field, ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise fail(label, "fields", f"expected a mapping of arch field to its values (a list) "
                                     f"or range ({{low, high}}), got {_brief(raw)}")
    out = []
    for path, spec in raw.items():
        key = f"fields.{path}"
        if not isinstance(path, str) or not path.strip() or "=" in path:
            raise fail(label, key, "a field is a dotted name such as cores.sram")
        path = path.strip()
        if path in fixed:
            raise fail(label, key, f"is also fixed under set; keep it in one place")
        f = _field(path, spec, label, key)
        for linked, _ in f.linked:
            if linked in fixed or linked in raw or any(linked in g.assign(g.values[0])
                                                       for g in out if g.linked):
                raise fail(label, f"{key}.with.{linked}", "is set or varied elsewhere too; "
                                                           "keep it in one place")
        for sub, text in _ends(f):
            _check_point(base, base_kind, {**fixed, **f.assign(text)}, label, f"{key}{sub}")
        if strategy.kind == "grid" and f.is_range and f.levels is None:
            raise fail(label, key, "a grid over a range needs levels (how many values it "
                                    "takes from low..high), e.g. levels: 4; or list the values")
        out.append(f)
    if strategy.kind == "grid":
        total = 1
        for f in out:
            total *= len(f.values) if f.values is not None else f.levels
            if total > MAX_POINTS:
                raise fail(label, "fields", f"the grid has more than {MAX_POINTS:,} points "
                            f"(the cap); use fewer values or levels, or strategy random / "
                            f"lhs with samples")
    return tuple(out)


def _ends(f: Field) -> list[tuple[str, str]]:
    """The texts that stand for a field when it is checked against the base: every listed
    value, or a range's two ends in the range's unit."""
    if f.values is not None:
        return [(f"[{i}]", v) for i, v in enumerate(f.values)]
    return [(".low", f.low), (".high", f.high)]


def _texts(spec: Any, label: str, key: str, unique: bool) -> tuple[str, ...]:
    if not isinstance(spec, (list, tuple)):
        raise fail(label, key, f"expected a list of values, got {_brief(spec)}")
    if not spec:
        raise fail(label, key, "no values: an empty grid; list at least one value")
    texts: list[str] = []
    for i, v in enumerate(spec):
        if not _scalar(v):
            raise fail(label, f"{key}[{i}]", f"expected one value, got {_brief(v)}")
        t = _text(v)
        if unique and t in texts:
            raise fail(label, f"{key}[{i}]", f"{t!r} is listed twice; list it once")
        texts.append(t)
    return tuple(texts)


def _listed(path: str, spec: Mapping, label: str, key: str) -> Field:
    """``{values: [...], with: {other.field: [...]}}``: listed values, each moving other
    fields to the value at the same position (an array shape and its MAC rates)."""
    check_keys(spec, ("values", "with"), label, key)
    values = _texts(spec["values"], label, f"{key}.values", True)
    linked = spec.get("with") or {}
    if not isinstance(linked, Mapping):
        raise fail(label, f"{key}.with", f"expected a mapping of field to a list of values "
                                          f"(one per value of {path}), got {_brief(linked)}")
    pairs = []
    for other, texts in linked.items():
        where = f"{key}.with.{other}"
        if not isinstance(other, str) or not other.strip() or other.strip() == path:
            raise fail(label, where, "a linked field is another dotted name such as "
                                      "cores.engine.cols")
        texts = _texts(texts, label, where, False)
        if len(texts) != len(values):
            raise fail(label, where, f"{len(texts)} values for the {len(values)} of {path}; "
                                      f"give one per value, in the same order")
        pairs.append((other.strip(), texts))
    return Field(path=path, values=values, linked=tuple(pairs))


def _field(path: str, spec: Any, label: str, key: str) -> Field:
    if isinstance(spec, (list, tuple)):
        return Field(path=path, values=_texts(spec, label, key, True))
    if isinstance(spec, Mapping) and "values" in spec:
        return _listed(path, spec, label, key)
    if not isinstance(spec, Mapping):
        raise fail(label, key, f"expected a list of values or a range {{low, high, scale, "
                                f"levels, integer}}, got {_brief(spec)}; to fix one value for "
                                f"every point put it under set")
    check_keys(spec, RANGE_KEYS, label, key)
    for end in ("low", "high"):
        if end not in spec:
            raise fail(label, f"{key}.{end}", "missing; a range needs low and high")
    scale = spec.get("scale", "linear")
    if scale not in SCALES:
        raise fail(label, f"{key}.scale", f"{_brief(scale)} is not one of "
                                           f"{', '.join(SCALES)}")
    integer = spec.get("integer", False)
    if not isinstance(integer, bool):
        raise fail(label, f"{key}.integer", f"expected true or false, got {_brief(integer)}")
    levels = spec.get("levels")
    if levels is not None and (isinstance(levels, bool) or not isinstance(levels, int)
                               or not 1 <= levels <= MAX_POINTS):
        raise fail(label, f"{key}.levels", f"expected a whole number 1 .. {MAX_POINTS:,}, "
                                            f"got {_brief(levels)}")
    ends = {}
    for end in ("low", "high"):
        q = quantity(spec[end])
        if q is None:
            raise fail(label, f"{key}.{end}", f"{_brief(spec[end])} is not a number (with a "
                        f"unit, e.g. 16 MiB); a range needs numbers, list choices instead")
        if q[1] is not None:
            from ..arch.units import UnitProblem
            try:
                unit_dims(q[1], spec[end])
            except UnitProblem as exc:
                raise fail(label, f"{key}.{end}", str(exc)) from None
        ends[end] = q
    (lo, lo_unit), (hi, hi_unit) = ends["low"], ends["high"]
    if (lo_unit is None) != (hi_unit is None):
        raise fail(label, key, f"low {_brief(spec['low'])} and high {_brief(spec['high'])} "
                                f"mix a plain number and a quantity; give both the same unit")
    if lo_unit is not None and lo_unit != hi_unit:
        if unit_dims(lo_unit, spec["low"])[0] != unit_dims(hi_unit, spec["high"])[0]:
            raise fail(label, key, f"low {_brief(spec['low'])} and high "
                                    f"{_brief(spec['high'])} are units of different kinds; "
                                    f"give both in one kind (e.g. both sizes)")
        lo *= unit_factor(lo_unit, hi_unit)
    if lo > hi:
        raise fail(label, key, f"low {_brief(spec['low'])} is above high "
                                f"{_brief(spec['high'])}; swap them")
    if scale == "log" and lo <= 0:
        raise fail(label, f"{key}.low", f"a log-scale range needs low > 0, got "
                                         f"{_brief(spec['low'])}; use scale: linear")
    if integer and (lo != math.floor(lo) or hi != math.floor(hi)):
        raise fail(label, key, f"an integer range needs whole-number ends in "
                                f"{hi_unit or 'its unit'}, got {_brief(spec['low'])} .. "
                                f"{_brief(spec['high'])}")
    return Field(path=path, low=_text(spec["low"]), high=_text(spec["high"]), scale=scale,
                 integer=integer, unit=hi_unit, levels=levels)


def range_numbers(f: Field) -> tuple[float, float]:
    """A range's ends as numbers in its unit (``f.unit``)."""
    lo, lo_unit = quantity(f.low)
    hi, _ = quantity(f.high)
    return lo * unit_factor(lo_unit, f.unit), hi


def format_number(x: float, f: Field) -> str:
    """A number of range ``f`` as the text a point carries: an int for integer fields, else
    the shortest text that reads back as the same float, with the range's unit.

    >>> format_number(1.5, Field("dram.bandwidth", low="1 TB/s", high="3 TB/s", unit="TB/s"))
    '1.5 TB/s'
    >>> format_number(1e16, Field("x", low="1", high="1e20"))
    '1.0e+16'
    """
    if f.integer:
        num = str(int(round(x)))
    else:
        num = repr(float(x))
        if "e" in num and "." not in num:       # YAML 1.1 reads 1e+16 as text, 1.0e+16 as a float
            mant, exp = num.split("e")
            num = f"{mant}.0e{exp}"
    return f"{num} {f.unit}" if f.unit else num


def choice(value: Any, options, label: str, key: str) -> str:
    """``value`` if it is one of ``options``, else the error listing them."""
    if not isinstance(value, str) or value not in options:
        raise fail(label, key, f"{_brief(value)} is not one of {', '.join(options)}"
                                f"{_did_you_mean(value, options)}")
    return value


# ---------------------------------------------------------------- objectives and constraints

def _metric(name: Any, label: str, key: str) -> str:
    if not isinstance(name, str) or name not in METRICS:
        raise fail(label, key, f"unknown metric {_brief(name)}{_did_you_mean(name, METRICS)}; "
                                f"metrics: {', '.join(METRICS)}")
    return name


def _objectives(raw: Any, label: str) -> tuple[Objective, ...]:
    items = list(raw.items()) if isinstance(raw, Mapping) else raw
    if not isinstance(items, list) or not items:
        raise fail(label, "objectives", f"expected a list such as [{{tokens_per_s: max}}, "
                                         f"area_mm2], got {_brief(raw)}")
    out: list[Objective] = []
    for i, item in enumerate(items):
        key = f"objectives[{i}]"
        if isinstance(item, Mapping) and len(item) == 1:
            item = next(iter(item.items()))
        if isinstance(item, tuple):
            metric = _metric(item[0], label, key)
            goal = choice(item[1], ("min", "max"), label, f"{key}.{metric}")
        elif isinstance(item, str):
            metric = _metric(item, label, key)
            goal = METRICS[metric][1]
        else:
            raise fail(label, key, f"expected a metric name or {{metric: min|max}}, got "
                                    f"{_brief(item)}")
        if any(o.metric == metric for o in out):
            raise fail(label, key, f"{metric} is listed twice; list it once")
        out.append(Objective(metric, goal))
    return tuple(out)


def parse_limit(metric: str, raw: Any) -> float:
    """A constraint limit as a number in ``metric``'s SI unit: a plain number (already in that
    unit) or a quantity of its kind (``'150 W'``, ``'48 GB'``).

    Raises
    ------
    ValueError
        Saying what was found and what is expected.

    >>> parse_limit("power_w", "0.15 kW"), parse_limit("area_mm2", 700)
    (150.0, 700.0)
    """
    from ..arch.units import KINDS, parse_quantity
    unit = METRICS[metric][0]
    kind = _LIMIT_KIND.get(unit)
    example = KINDS[kind].example if kind else f"700 {unit}"
    q = quantity(raw)
    if q is None:
        raise ValueError(f"{_brief(raw)} is not a number (with a unit, e.g. {example!r})")
    if q[1] is None:
        return q[0]
    if kind is not None:
        return parse_quantity(raw, kind)
    if q[1] not in _LIMIT_ALIASES.get(unit, (unit,)):
        raise ValueError(f"{_brief(raw)} is not in {unit}; write a plain number in {unit}")
    return q[0]


def _constraints(raw: Any, label: str) -> tuple[Constraint, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise fail(label, "constraints", f"expected a mapping such as {{power_w: {{max: "
                                          f"150 W}}}}, got {_brief(raw)}")
    out = []
    for metric, bounds in raw.items():
        key = f"constraints.{metric}"
        metric = _metric(metric, label, key)
        if not isinstance(bounds, Mapping) or not bounds:
            raise fail(label, key, f"expected {{max: LIMIT}} and/or {{min: LIMIT}}, got "
                                    f"{_brief(bounds)}")
        check_keys(bounds, ("max", "min"), label, key)
        for bound, value in bounds.items():
            try:
                limit = parse_limit(metric, value)
            except ValueError as exc:
                raise fail(label, f"{key}.{bound}", f"{exc}; {metric} is in "
                                                     f"{METRICS[metric][0]}") from None
            out.append(Constraint(metric, "<=" if bound == "max" else ">=", limit,
                                  _text(value)))
    return tuple(out)


def _strategy(raw: Any, sensitivity: Any, label: str) -> Strategy:
    if not isinstance(sensitivity, bool):
        raise fail(label, "sensitivity", f"expected true or false, got {_brief(sensitivity)}")
    raw = {"kind": raw} if isinstance(raw, str) else ({} if raw is None else raw)
    if not isinstance(raw, Mapping):
        raise fail(label, "strategy", f"expected {{kind: grid|random|lhs|nsga2, ...}}, got "
                                       f"{_brief(raw)}")
    kind = choice(raw.get("kind", "grid"), STRATEGIES, label, "strategy.kind")
    allowed = {"grid": ("kind", "seed"), "random": ("kind", "samples", "seed"),
               "lhs": ("kind", "samples", "seed"),
               "nsga2": ("kind", "samples", "seed", "population", "generations")}[kind]
    for key in raw:
        if key not in allowed and key in ("samples", "population", "generations"):
            takes = {"samples": "random, lhs and nsga2", "population": "nsga2",
                     "generations": "nsga2"}[key]
            raise fail(label, f"strategy.{key}", f"only {takes} take {key}; {kind} does not "
                                                  f"(a grid takes every point): remove it")
    check_keys(raw, allowed, label, "strategy")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
        raise fail(label, "strategy.seed", f"expected a whole number 0 .. 2**32-1, got "
                                            f"{_brief(seed)}")
    samples = raw.get("samples")
    if kind in ("random", "lhs"):
        samples = _count(_need_strategy(raw, "samples", kind, label), label, "strategy.samples")
        return Strategy(kind, samples, seed, sensitivity=sensitivity)
    if kind == "grid":
        return Strategy(kind, None, seed, sensitivity=sensitivity)
    try:
        import optuna  # noqa: F401  only to say so here rather than mid-sweep
    except ImportError:
        raise fail(label, "strategy.kind", f"nsga2 needs optuna, which is not installed; "
                                            f"{SWEEP_EXTRA}") from None
    population = _count(raw.get("population", 16), label, "strategy.population")
    if population < 2:
        raise fail(label, "strategy.population", "NSGA-II needs a population of at least 2")
    if "generations" in raw:
        generations = _count(raw["generations"], label, "strategy.generations")
        if samples is not None:
            raise fail(label, "strategy.samples", "give generations or samples, not both "
                                                   "(samples = population x generations)")
    elif samples is not None:
        generations = -(-_count(samples, label, "strategy.samples") // population)
    else:
        generations = 4
    if population * generations > MAX_POINTS:
        raise fail(label, "strategy", f"population x generations = "
                                       f"{population * generations:,} is over the cap of "
                                       f"{MAX_POINTS:,} points")
    return Strategy(kind, population * generations, seed, generations, population, sensitivity)


def _need_strategy(raw: Mapping, name: str, kind: str, label: str) -> Any:
    if name not in raw:
        raise fail(label, f"strategy.{name}", f"missing; {kind} needs samples (how many "
                                               f"points), e.g. samples: 64")
    return raw[name]


def _count(value: Any, label: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_POINTS:
        raise fail(label, key, f"expected a whole number 1 .. {MAX_POINTS:,}, got "
                                f"{_brief(value)}")
    return value


def _cost(raw: Any, label: str) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise fail(label, "cost", f"expected {{per_mm2: N, per_gb_dram: N}} (your own "
                                   f"currency units), got {_brief(raw)}")
    check_keys(raw, COST_KEYS, label, "cost")
    out = {}
    for k, v in raw.items():
        q = quantity(v) if isinstance(v, (int, float)) else None
        if q is None or not 0 <= q[0] < math.inf:
            raise fail(label, f"cost.{k}", f"expected a number >= 0, got {_brief(v)}")
        out[k] = q[0]
    return out


__all__ = ["METRICS", "MAX_POINTS", "STRATEGIES", "Constraint", "Field", "Objective",
           "SpecError", "Strategy", "SweepSpec", "Workload", "check_point", "format_number",
           "load_spec", "parse_limit", "parse_spec", "quantity", "range_numbers"]
