"""Finding, reading and overriding arch files; :func:`load_arch` and :func:`list_archs`."""
from __future__ import annotations

import copy
import datetime
import importlib.resources
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ..errors import ArchError, NpusimError
from ..files import read_text, user_path
from .model import Arch, FrozenMap
from .schema import build, did_you_mean, lookup, valid_keys
from .units import brief

_SUFFIXES = (".yaml", ".yml")


class _Lined(dict):
    """A YAML mapping that remembers the line of each key, for error messages."""

    lines: dict


def _lined(value: Any) -> _Lined:
    out = _Lined(value if isinstance(value, Mapping) else {})
    out.lines = dict(getattr(value, "lines", {}))
    return out


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """SafeLoader (libyaml's when built) rejecting duplicate keys; safe_load keeps the last."""

    label = "<arch>"


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode,
                       deep: bool = False) -> _Lined:
    loader.flatten_mapping(node)
    out = _Lined()
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            raise ArchError(f"{loader.label}: line {line}: a mapping key must be a plain "
                            f"name, not {key!r}") from None
        if key in out:
            raise ArchError(
                f"{loader.label}: line {line}: duplicate key {key!r} (first given at line "
                f"{out.lines[key]}); keep only one")
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = line
    return out


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _construct_mapping)


# An arch, energy, DRAM or calibration file is a few kB, four levels deep. Far larger or
# deeper text is refused before parsing: libyaml's flow parser is quadratic in the nesting
# depth, and its composer recurses in C (a crash, not an exception) on deep nesting.
MAX_YAML_CHARS = 1_000_000
MAX_YAML_DEPTH = 32


def _too_deep(text: str) -> bool:
    """Whether the text nests deeper than :data:`MAX_YAML_DEPTH`: brackets counted by a linear
    scan (outside quotes and comments), then block nesting from the parser's events."""
    depth, quote, comment, prev = 0, "", False, " "
    for ch in text:
        if comment:
            comment = ch != "\n"
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'" and prev in " \t\n[{,:":
            quote = ch
        elif ch == "#" and prev in " \t\n":
            comment = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_YAML_DEPTH:
                return True
        elif ch in "]}":
            depth = max(0, depth - 1)
        prev = ch
    depth = 0
    for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                return True
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1
    return False


def parse_yaml(text: str, label: str) -> Any:
    """Parse YAML text safely, rejecting duplicate keys; errors name ``label`` and the line.

    Text over :data:`MAX_YAML_CHARS` characters or nested deeper than :data:`MAX_YAML_DEPTH`
    levels is refused (no arch description comes close).

    A text is parsed once per process (a sweep loads the same arch file for every point);
    each call gets its own copy of the tree, so a caller may change it.
    """
    if len(text) > _MEMO_CHARS:
        return _parse(text, label)
    return _copy_tree(_parse_once(text, label), {})


# texts up to this size (every description: the largest shipped one is a few kB) are parsed
# once; a larger one is parsed on each call rather than held in memory
_MEMO_CHARS = 64_000


_SCALARS = (str, int, float, bool, bytes, type(None), datetime.date)


def _copy_tree(value: Any, memo: dict) -> Any:
    """A copy of a parsed tree that shares nothing mutable with it (what ``copy.deepcopy``
    gives, a node reached twice through a YAML alias copied once, only faster)."""
    if isinstance(value, _SCALARS):
        return value
    held = memo.get(id(value))
    if held is not None:
        return held
    if type(value) is _Lined:
        out = memo[id(value)] = _Lined()
        out.lines = dict(value.lines)
        for k, v in value.items():
            out[k] = _copy_tree(v, memo)
        return out
    if type(value) is list:
        out = memo[id(value)] = []
        out.extend(_copy_tree(v, memo) for v in value)
        return out
    return copy.deepcopy(value, memo)


@lru_cache(maxsize=128)
def _parse_once(text: str, label: str) -> Any:
    """:func:`_parse`, memoised on the text and label (errors are not kept: a text that fails
    fails again). Callers get copies: nothing may change what this returns."""
    return _parse(text, label)


def _parse(text: str, label: str) -> Any:
    if len(text) > MAX_YAML_CHARS:
        raise ArchError(f"{label}: {len(text)} characters is far more than an arch "
                        f"description holds (at most {MAX_YAML_CHARS}); give the right file")
    try:
        deep = _too_deep(text)
    except yaml.YAMLError:
        deep = False        # malformed: the parse below reports where
    if deep:
        raise ArchError(f"{label}: the YAML nests more than {MAX_YAML_DEPTH} levels deep, far "
                        f"deeper than an arch description; fix its structure")
    loader = _UniqueKeyLoader(text)
    loader.label = label
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        raise ArchError(f"{label}: malformed YAML at {at}: {exc.problem or exc.context}; "
                        f"fix the syntax there") from None
    except yaml.YAMLError as exc:
        raise ArchError(f"{label}: malformed YAML: {' '.join(str(exc).split())}; fix the "
                        f"syntax") from None
    except ValueError as exc:
        # Python refuses int() of more than 4300 digits, which a YAML integer can ask for
        raise ArchError(f"{label}: a value cannot be read ({' '.join(str(exc).split())[:120]}); "
                        f"write numbers of a sensible size") from None
    except RecursionError:
        raise ArchError(f"{label}: the YAML is nested too deeply to be an arch description; "
                        f"fix its structure") from None
    finally:
        loader.dispose()


def _shipped_dir():
    """The folder of shipped archs (``npusim/archs``, package data)."""
    return importlib.resources.files("npusim.archs")


def _shipped() -> dict[str, Any]:
    """Shipped arch files by name (listed afresh on each call: through ``os.scandir`` when
    the package is a folder, as a sweep loads an arch per point)."""
    folder = _shipped_dir()
    out = {}
    if isinstance(folder, Path):
        with os.scandir(folder) as entries:
            for e in entries:
                if e.name.endswith(".yaml") and e.is_file():
                    out[e.name[:-len(".yaml")]] = folder / e.name
        return out
    for entry in folder.iterdir():
        if entry.is_file() and entry.name.endswith(".yaml"):
            out[entry.name[:-len(".yaml")]] = entry
    return out


def list_archs() -> list[tuple[str, str]]:
    """Shipped architectures as ``(name, one-line description)``, sorted by name.

    >>> ("rngd" in dict(list_archs()))
    True
    """
    out = []
    for name, entry in sorted(_shipped().items()):
        tree = parse_yaml(entry.read_text(encoding="utf-8"), f"{name}.yaml")
        desc = tree.get("description", "") if isinstance(tree, Mapping) else ""
        out.append((name, " ".join(str(desc).split())))
    return out


def list_snn_archs() -> list[tuple[str, str]]:
    """Shipped spiking-core devices (``npusim/archs/snn/``) as ``(name, description)``.

    >>> ("loihi" in dict(list_snn_archs()))
    True
    """
    out = []
    for name in preset_names("snn"):
        text, label = read_preset(name, "snn", "the spiking-core device file", "")
        tree = parse_yaml(text, label)
        desc = tree.get("description", "") if isinstance(tree, Mapping) else ""
        out.append((name, " ".join(str(desc).split())))
    return out


def preset_names(folder: str) -> list[str]:
    """Names of the shipped presets in ``npusim/archs/<folder>`` (``dram``, ``snn``), sorted
    (listed afresh on each call: through ``os.scandir`` when the package is a folder, as a
    sweep resolves a DRAM preset per point)."""
    where = importlib.resources.files("npusim.archs").joinpath(folder)
    if isinstance(where, Path):
        with os.scandir(where) as entries:
            return sorted(e.name[:-5] for e in entries
                          if e.name.endswith(".yaml") and e.is_file())
    return sorted(e.name[:-5] for e in where.iterdir()
                  if e.is_file() and e.name.endswith(".yaml"))


def preset_loader(folder: str, what: str, unknown: str, build):
    """A loader of the presets in ``npusim/archs/<folder>`` by name, or of a user's file by
    path: ``read_preset`` for the text, ``build(tree, label)`` for the object, memoised on the
    text (a preset read twice is parsed once). ``unknown`` is formatted with ``name``."""
    @lru_cache(maxsize=64)
    def cached(text: str, label: str):
        return build(parse_yaml(text, label), label)

    def load(name_or_path: str | Path):
        text, label = read_preset(name_or_path, folder, what,
                                  unknown.format(name=repr(str(name_or_path))))
        return cached(text, label)
    return load


def read_preset(name_or_path: str | Path, folder: str, what: str,
                unknown: str) -> tuple[str, str]:
    """The YAML text of a shipped preset of ``npusim/archs/<folder>`` by name, or of a user's
    file by path, and the label errors name it by.

    ``what`` names a user's file in errors (``"the DRAM timing file"``); ``unknown`` starts
    the error for a name with no preset (``"DRAM type 'x' has no timing preset"``).
    """
    s = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in s or "\\" in s or s.endswith((".yaml", ".yml")):
        path = user_path(name_or_path)
        return read_description(path, what), str(path)
    names = preset_names(folder)
    if s not in names:
        raise ArchError(f"{unknown}{did_you_mean(s, names)}; presets: {', '.join(names)}; or "
                        f"give the path of a preset .yaml")
    entry = importlib.resources.files("npusim.archs").joinpath(folder, f"{s}.yaml")
    return entry.read_text(encoding="utf-8"), f"{folder}/{s}.yaml"


def _looks_like_path(x: str | Path) -> bool:
    s = str(x)
    return isinstance(x, Path) or "/" in s or "\\" in s or s.lower().endswith(_SUFFIXES)


def _read_source(name_or_path: str | Path) -> tuple[str, str]:
    """Return (YAML text, label for messages) of a shipped name or a file path."""
    shipped = _shipped()
    if not _looks_like_path(name_or_path):
        key = str(name_or_path).strip().lower()
        if key in shipped:
            return shipped[key].read_text(encoding="utf-8"), f"{key}.yaml"
        if key in preset_names("snn"):
            raise ArchError(
                f"{key!r} is a spiking-core device, not an NPU arch: run a network on it with "
                f"`npusim run MODEL --arch {key} --timesteps T` (npusim.simulate_snn in Python), "
                f"or pair it with an NPU as a hybrid, e.g. --arch edu+{key}")
        raise ArchError(
            f"arch {str(name_or_path)!r} is neither a shipped arch nor a .yaml file"
            f"{did_you_mean(key, sorted(shipped))}; shipped archs: "
            f"{', '.join(sorted(shipped))}; or give the path of a .yaml file")
    path = user_path(name_or_path)
    if not path.is_file():
        raise ArchError(
            f"{path}: no such arch file; give an existing .yaml file or a shipped arch name "
            f"({', '.join(sorted(shipped))})")
    return read_description(path, "the arch file"), str(path)


def read_description(path: str | Path, what: str) -> str:
    """The text of a user's description file (arch, energy table, DRAM preset, calibration):
    one reader for all of them, through :func:`npusim.files.read_text` (a regular file only, so
    a FIFO never blocks; bounded in size; strict UTF-8), its error raised as an ArchError."""
    try:
        return read_text(path, what, max_bytes=4 * MAX_YAML_CHARS)
    except NpusimError as exc:
        raise ArchError(f"cannot read {what}: {exc}") from None


def _parse_override_value(value: Any) -> Any:
    # CLI strings are YAML scalars ("16" -> 16, "null" -> None, "3TB/s" stays a string);
    # nothing but a scalar is accepted, so an override cannot smuggle in structure.
    if not isinstance(value, str):
        return value
    parsed = _override_scalar(value)
    # a value that is not a plain scalar (a YAML !!set) is parsed afresh for each caller
    return parsed if isinstance(parsed, _SCALARS) else _read_override_value(value)


@lru_cache(maxsize=4096)
def _override_scalar(value: str) -> Any:
    """:func:`_read_override_value`, memoised (a sweep gives the same texts again and again);
    :func:`_parse_override_value` hands out only the immutable results."""
    return _read_override_value(value)


def _read_override_value(value: str) -> Any:
    if len(value) > 1000 or value.lstrip()[:1] in ("[", "{", "|", ">", "&", "*"):
        return value      # no scalar looks like this; validation says what is expected
    try:
        parsed = yaml.safe_load(value)
    except (yaml.YAMLError, ValueError, RecursionError):
        return value
    return parsed if not isinstance(parsed, (dict, list)) else value


def _normalise_overrides(overrides, label: str) -> list[tuple[str, Any, str]]:
    if overrides is None:
        return []
    items: list[tuple[str, Any, str]] = []
    if isinstance(overrides, Mapping):
        for k, v in overrides.items():
            items.append((str(k).strip(), _parse_override_value(v), f"{k}={v}"))
        return items
    if isinstance(overrides, (str, bytes)) or not isinstance(overrides, Sequence):
        raise ArchError(f"{label}: overrides must be a list of 'field=value' strings or a "
                        f"mapping {{field: value}}, got {brief(overrides)}")
    for s in overrides:
        if not isinstance(s, str) or "=" not in s:
            raise ArchError(f"{label}: override {brief(s)} is not 'dotted.field=value'; write e.g. "
                            f"dram.bandwidth=3TB/s")
        k, v = s.split("=", 1)
        items.append((k.strip(), _parse_override_value(v.strip()), s))
    return items


def apply_overrides(tree: Any, overrides, label: str,
                    schema=None) -> tuple[Any, tuple[str, ...]]:
    """Apply dotted-field overrides to a raw arch tree (a copy); return it and their texts.

    ``schema`` is the :class:`~npusim.arch.schema.S` the fields are looked up in (default the
    arch's; :func:`npusim.arch.snn_device.load_snn_device` passes the device schema)."""
    items = _normalise_overrides(overrides, label)
    if not items:
        return tree, ()
    tree = _copy_tree(tree, {})
    if not isinstance(tree, _Lined):
        raise ArchError(f"{label}: the file is not a mapping of fields; cannot apply overrides")
    for key, value, text in items:
        parts = tuple(p.strip() for p in key.split("."))
        if not key or any(not p for p in parts):
            raise ArchError(f"{label}: override {brief(text)}: empty field name; write e.g. "
                            f"dram.bandwidth=3TB/s")
        node = tree
        for i, part in enumerate(parts):
            here = parts[:i + 1]
            spec = lookup(here, schema)
            if spec is None:
                parent = parts[:i]
                options = valid_keys(parent, schema)
                where = ".".join(parent) or "the top level"
                raise ArchError(
                    f"{label}: override {brief(text)}: unknown field '{'.'.join(here)}'"
                    f"{did_you_mean(part, options)}; valid fields in {where}: "
                    f"{', '.join(options) if options else '(none: it is a value)'}")
            if i == len(parts) - 1:
                node[part] = value
                node.lines[part] = f"override {brief(text)}"
                break
            if not isinstance(node.get(part), _Lined):
                # A null (or absent) section becomes a fresh one; validation then lists
                # whatever it still lacks.
                node[part] = _lined(node.get(part))
            node = node[part]
    return tree, tuple(t for _, _, t in items)


ENERGY_PREFIX = "energy."
"""Overrides whose field starts with this go to the arch's energy table, not the arch."""


def split_energy_overrides(overrides, label: str) -> tuple[Any, dict[str, Any]]:
    """Split ``--set`` overrides into the arch's and its energy table's.

    ``energy.<field>=<value>`` (e.g. ``energy.loaded_floor=130W``) is kept, field -> value as
    written, for :func:`npusim.energy.load_energy_table` to apply and validate against the
    energy table's schema; everything else is returned as ``field=value`` texts for
    :func:`apply_overrides`. This is what lets a sweep or ``validate --fit`` vary an energy
    field like any arch field.

    >>> split_energy_overrides(["dram.bandwidth=3TB/s", "energy.dynamic_overhead=2"], "x")
    (['dram.bandwidth=3TB/s'], {'dynamic_overhead': 2})
    """
    energy: dict[str, Any] = {}
    for key, value, text in _normalise_overrides(overrides, label):
        if key.startswith(ENERGY_PREFIX):
            field = key[len(ENERGY_PREFIX):].strip()
            if not field:
                raise ArchError(f"{label}: override {brief(text)}: no energy-table field after "
                                f"'energy.'; write e.g. energy.loaded_floor=130W")
            energy[field] = value
    if not energy:
        return overrides, energy          # untouched: the arch sees exactly what was given
    if isinstance(overrides, Mapping):
        return {k: v for k, v in overrides.items()
                if not str(k).strip().startswith(ENERGY_PREFIX)}, energy
    return [o for o in overrides
            if not o.split("=", 1)[0].strip().startswith(ENERGY_PREFIX)], energy


def load_arch(name_or_path: str | Path,
              overrides: Mapping[str, Any] | Sequence[str] | None = None, *,
              calibrated: bool = True) -> Arch:
    """Load an architecture by shipped name or from a YAML file, with optional overrides.

    Parameters
    ----------
    name_or_path : str or Path
        A shipped arch name (see :func:`list_archs`) or the path of a ``.yaml`` file.
    overrides : mapping or sequence of str, optional
        ``["dram.bandwidth=3TB/s", ...]`` (as from the CLI's ``--set``) or
        ``{"dram.bandwidth": "3 TB/s"}``; applied to the raw tree, then validated exactly
        like the file.
    calibrated : bool
        Apply the arch's calibration file (fitted parameters with provenance, see
        :mod:`npusim.arch.calibration`) under the overrides; False gives the arch file alone.

    Returns
    -------
    Arch
        Frozen, validated, every quantity a float in SI units.

    Raises
    ------
    ArchError
        For a missing file or unknown name, malformed YAML, duplicate or unknown keys, missing
        fields, wrong units, impossible values or unknown dtypes; the message names the file
        and the dotted field and says the fix.

    Examples
    --------
    >>> a = load_arch("rngd", ["dram.bandwidth=3TB/s"])
    >>> a.dram.bandwidth
    3000000000000.0
    """
    name_or_path, device = _split_composition(name_or_path)
    text, label = _read_source(name_or_path)
    tree = parse_yaml(text, label)
    if tree is None:
        raise ArchError(f"{label}: the file is empty; it must be a mapping of arch fields "
                        f"(start from a shipped arch such as rngd.yaml)")
    calibration: dict[str, dict] = {}
    energy: dict[str, Any] = {}
    if calibrated and isinstance(tree, dict):
        from .calibration import calibration_path, read_calibration
        path = calibration_path(str(tree.get("name", "")),
                                name_or_path if _looks_like_path(name_or_path) else None)
        if path is not None:
            calibration = read_calibration(path, str(tree.get("name", "")))
            fitted, energy_fitted = split_energy_overrides(
                {k: v["value"] for k, v in calibration.items()}, label)
            energy.update(energy_fitted)
            tree, _ = apply_overrides(tree, fitted, f"{label} (calibration {path.name})")
    overrides, energy_user = split_energy_overrides(overrides, label)
    energy.update(energy_user)
    tree = _with_pim(tree, label, device)
    tree, applied = apply_overrides(tree, overrides, label)
    tree = _with_pim(tree, label, None)
    applied += tuple(f"{ENERGY_PREFIX}{k}={v}" for k, v in energy_user.items())
    arch = build(tree, label, applied)
    if energy:
        object.__setattr__(arch, "energy", FrozenMap(energy))
    if calibration:
        user = {a.split("=", 1)[0].strip() for a in applied}
        kept = tuple(sorted((k, v) for k, v in calibration.items() if k not in user))
        object.__setattr__(arch, "calibration", tuple((k, _frozen(v)) for k, v in kept))
    return arch


def _split_composition(name_or_path: str | Path) -> tuple[str | Path, str | None]:
    """``"rngd+hbm2-pim"`` -> ``("rngd", "hbm2-pim")``; anything else -> ``(it, None)``.

    A composition is a shipped name or an arch file, ``+``, and a shipped arch with a ``pim``
    section (or ``none``). An existing file whose name holds a ``+`` is a file."""
    if isinstance(name_or_path, Path) or "+" not in str(name_or_path):
        return name_or_path, None
    s = str(name_or_path)
    if user_path(s).is_file():
        return name_or_path, None
    host, device = s.rsplit("+", 1)
    if not host.strip() or not device.strip():
        raise ArchError(f"arch {s!r}: a composition is HOST+DEVICE, e.g. rngd+hbm2-pim (HOST "
                        f"with DEVICE's PIM units) or lpddr6-pim+none (without its units)")
    return host.strip(), device.strip().lower()


def _pim_section(device: str, why: str) -> Any:
    """The ``pim`` section of the shipped arch ``device`` (``None`` for ``none``)."""
    if device == "none":
        return None
    shipped = _shipped()
    with_pim = sorted(n for n, e in shipped.items()
                      if isinstance(t := parse_yaml(e.read_text(encoding="utf-8"),
                                                    f"{n}.yaml"), Mapping)
                      and isinstance(t.get("pim"), Mapping))
    if device not in with_pim:
        raise ArchError(f"{why}: {device!r} is not a shipped arch with PIM units"
                        f"{did_you_mean(device, with_pim)}; use one of "
                        f"{', '.join(with_pim) or '(none shipped)'}, or none")
    tree = parse_yaml(shipped[device].read_text(encoding="utf-8"), f"{device}.yaml")
    return copy.deepcopy(tree["pim"])


def _with_pim(tree: Any, label: str, device: str | None) -> Any:
    """Resolve a composition: ``device`` from ``HOST+DEVICE`` replaces the tree's pim section
    (and names the arch ``HOST+DEVICE``); a ``pim: <name>`` string in the tree (from the
    file or ``--set pim=<name>``) becomes that shipped arch's section."""
    if not isinstance(tree, Mapping):
        return tree
    if device is not None:
        tree = copy.deepcopy(tree)
        tree["pim"] = _pim_section(device, f"{label}: +{device}")
        if isinstance(tree.get("name"), str):
            tree["name"] = f"{tree['name']}+{device}"
    elif isinstance(tree.get("pim"), str):
        tree = copy.deepcopy(tree)
        tree["pim"] = _pim_section(tree["pim"].strip().lower(), f"{label}: pim")
    return tree


def _frozen(d: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items()))


__all__ = ["load_arch", "list_archs", "apply_overrides", "parse_yaml", "split_energy_overrides",
           "ENERGY_PREFIX"]
