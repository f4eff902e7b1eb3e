"""Malformed area tables (npusim/energy/area.py), for the fuzzing benchmark.

A copy of the ``edu`` arch with a ``<stem>.area.yaml`` beside it (a node table, optionally with
sections of ``npusim/archs/area/common.yaml`` replaced), mutated:

``area/value``
    One field's value replaced: wrong unit kind, no unit, negative, nan/inf, out of range, a
    list or a mapping where a number goes (certainly invalid), or a random number or unit that
    may be valid (not certain).
``area/structure``
    Unknown or duplicate keys, a missing required field, an unknown dtype or interface field,
    not a mapping, malformed YAML, binary junk, an empty file.

Each case runs a tiny decode step on the roofline engine, well under a second.
"""
from __future__ import annotations

import pathlib
import random
from importlib.resources import files

RUN = ["run", "tiny-llama", "--phase", "decode", "--kv-len", "16", "--engine", "roofline"]

TABLE = {
    "node": "fuzz 10 nm",
    "logic_density": "100 MTr/mm^2",
    "sram": "2 mm^2/MiB",
    "transistors_per_mac": "{bf16: 20000, int8: 10000}",
    "vector_lane": "1000000",
    "core": "10000000",
    "dram": ("\n  ddr4: {unit: 32-bit channel, unit_bandwidth: 12.8 GB/s, channels_per_unit: 0.5, "
             "phy: 1 mm^2, controller: 100000000}"),
    "link": "\n  generic: {unit: lane, unit_bandwidth: 4 GB/s, phy: 0.5 mm^2, controller: 1000000}",
    "uncore_share": "0.5",
}
# Values certainly invalid for each kind of field (the reader refuses every one).
BAD = {
    "logic_density": ["100", "100 mm^2", "-5 MTr/mm^2", "1e9 MTr/mm^2", "nan MTr/mm^2", "[1]",
                      "{a: 1}", "100 MTr", "''", "~"],
    "sram": ["2", "2 mm^2", "-2 mm^2/MiB", "2 pJ/B", "1e400 mm^2/MiB", "0 mm^2/MiB", "[2]",
             "2 mm/MiB", "~"],
    "vector_lane": ["-1", "1 mm^2", ".nan", ".inf", "1e99", "[1]", "true", "''"],
    "core": ["-1", "1 W", ".nan", "1e99", "{}", "'ten'"],
    "uncore_share": ["1.5", "-0.1", "0.99", ".nan", "50 %", "[0.5]"],
    "transistors_per_mac": ["{bf17: 1}", "{bf16: -1}", "{bf16: 1 mm^2}", "[]", "{}", "5",
                            "{bf16: .inf}"],
    "dram": ["[]", "{}", "\n  ddr4: {unit: x, unit_bandwidth: 1 GHz, channels_per_unit: 1, "
                          "phy: 1 mm^2, controller: 1}",
             "\n  ddr4: {unit: x, unit_bandwidth: 1 GB/s, channels_per_unit: 1, phy: 1 pJ, "
             "controller: 1}",
             "\n  ddr4: {unit: x, unit_bandwidth: 1 GB/s, phy: 1 mm^2, controller: 1}",
             "\n  ddr4: {unit: x, unit_bandwidth: 1 GB/s, channels_per_unit: 1, phy: 1 mm^2, "
             "controller: 1, extra: 2}",
             "\n  ddr4: {unit: '', unit_bandwidth: 1 GB/s, channels_per_unit: 1, phy: 1 mm^2, "
             "controller: 1}",
             "\n  ddr4: {unit: x, unit_bandwidth: 1 GB/s, channels_per_unit: 0, phy: 1 mm^2, "
             "controller: 1}"],
    "link": ["[]", "{}", "\n  generic: {unit: lane, unit_bandwidth: -4 GB/s, phy: 0.5 mm^2, "
                          "controller: 1}",
             "\n  generic: {unit: lane, unit_bandwidth: 4 GB/s, phy: 999 mm^2, controller: 1}"],
    "node": ["''", "[a]", "{}", "~", "42"],
}
# Values that may be fine or not: not certain.
MAYBE = ["1", "0", "0.3", "1e6", "3 mm^2", "7 MTr/mm^2", "0.5 mm^2/MiB", "12 mm^2/MB", "1 um^2",
         "abc", "1e-300"]


def _edu() -> str:
    return files("npusim.archs").joinpath("edu.yaml").read_text(encoding="utf-8")


def _table(fields: dict[str, str]) -> str:
    return "".join(f"{k}: {v}\n" for k, v in fields.items())


def _case(workdir: pathlib.Path, i: int, text: str | bytes) -> list[str]:
    folder = workdir / f"area{i}"
    folder.mkdir(parents=True, exist_ok=True)
    arch = folder / "chip.yaml"
    arch.write_text(_edu(), encoding="utf-8")
    side = folder / "chip.area.yaml"
    if isinstance(text, bytes):
        side.write_bytes(text)
    else:
        side.write_text(text, encoding="utf-8")
    return RUN + ["--arch", str(arch)]


def _value_case(rng: random.Random) -> tuple[str, bool]:
    key = rng.choice(list(BAD))
    fields = dict(TABLE)
    if rng.random() < 0.75:
        fields[key] = rng.choice(BAD[key])
        return _table(fields), True
    fields[key] = rng.choice(MAYBE)
    return _table(fields), False


def _structure_case(rng: random.Random) -> tuple[str | bytes, bool]:
    fields = dict(TABLE)
    kind = rng.randrange(8)
    if kind == 0:
        fields[rng.choice(["sramm", "nodes", "uncore", "mac", "extra"])] = "1"
        return _table(fields), True
    if kind == 1:
        del fields[rng.choice(["node", "logic_density", "sram"])]
        return _table(fields), True
    if kind == 2:
        text = _table(fields)
        return text + text.splitlines(keepends=True)[rng.randrange(3)], True     # duplicate key
    if kind == 3:
        text = _table(fields)
        return text[: rng.randrange(5, len(text) // 3)] + "{[", True             # truncated
    if kind == 4:
        return bytes(rng.randrange(256) for _ in range(64)) + b"\xff\xfe", True
    if kind == 5:
        return rng.choice(["[1, 2]", "42", "'text'", "- a\n- b\n"]), True
    if kind == 6:
        return "", True
    return "node: x\n" + "a:\n " * 300 + "b: 1\n", True                        # deep nesting


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield (label, argv, must_fail) for about ``n`` malformed area tables."""
    for i in range(n):
        if rng.random() < 0.6:
            text, must = _value_case(rng)
            yield "area/value", _case(workdir, i, text), must
        else:
            text, must = _structure_case(rng)
            yield "area/structure", _case(workdir, i, text), must
