"""Malformed and out-of-range power-model input, for the fuzzing benchmark.

Classes (labels):

``power/energy-override``
    ``--set energy.<field>=VALUE`` on the energy table's power-model parts (loaded_floor, dynamic_overhead, operand_delivery, dvfs_exponent, dvfs_min_voltage) with
    random magnitudes, signs, non-numbers and units of the wrong kind; must fail where the
    value is certainly out of range or of the wrong kind.
``power/energy-field``
    ``--set energy.<field>=...`` naming no field of the table, a section, or nothing (and
    ``energy.idle``: the idle figure is the arch's ``power.idle`` alone).
``power/cap``
    ``--set power.cap=...`` at, below and above the chip's floor power, with and without DVFS.

Every case runs a tiny model on the small ``edu`` arch (1 W static, power.idle 1 W, 10 W TDP).
"""
from __future__ import annotations

import pathlib
import random

RUN = ["run", "tiny-llama", "--phase", "decode", "--kv-len", "16", "--arch", "edu"]

# field -> (unit written, lowest valid, highest valid) in that unit; edu's power.idle is 1 W
# and its TDP 10 W, so the floor must lie in [1 W, 10 W)
FIELDS = {
    "dynamic_overhead": ("", 1.0, 100.0),
    "dvfs_exponent": ("", 0.0, 3.0),
    "dvfs_min_voltage": ("", 0.1, 1.0),
    "operand_delivery": (" pJ/bit", 0.0, 1000.0),
    "loaded_floor": (" W", 1.0, 9.999),
}
WRONG_UNITS = ("W", "pJ", "pJ/B", "GHz", "s", "MiB")


def _run(*sets: str) -> list[str]:
    return RUN + [a for s in sets for a in ("--set", s)]


def _value_cases(rng: random.Random, n: int):
    names = sorted(FIELDS)
    for _ in range(n):
        field = rng.choice(names)
        unit, lo, hi = FIELDS[field]
        kind = rng.random()
        if kind < 0.5:
            x = rng.choice([-1.0, 1.0]) * 10 ** rng.uniform(-6, 6)
            bad = not (lo <= x <= hi)
            if abs(x - lo) < 1e-9 * max(1.0, abs(lo)) or abs(x - hi) < 1e-9 * max(1.0, hi):
                bad = None
            text = f"{x!r}{unit}"
        elif kind < 0.7:
            text, bad = rng.choice(["nan", "inf", "-inf", "abc", "[1]", "", "1e999"]) + unit, True
        else:
            # a per-byte energy is a per-bit one in other units (pint converts it)
            same = {unit.strip()} | ({"pJ/B"} if unit.strip() == "pJ/bit" else set())
            wrong = rng.choice([u for u in WRONG_UNITS if u not in same])
            text, bad = f"{rng.uniform(lo or 0.5, hi)} {wrong}", True
        yield "power/energy-override", _run(f"energy.{field}={text}"), bool(bad)


def _field_cases():
    for text in ("energy.dynamic_overhed=2", "energy.dram=2", "energy.=1", "energy.mac.xx=1pJ",
                 "energy.dram.reed=1pJ/bit", "energy.name=other", "energy.idle=1W"):
        yield "power/energy-field", _run(text), True


def _cap_cases():
    for cap, bad in (("0.5 W", True), ("1 W", True), ("1.0001 W", False), ("5 W", False),
                     ("20 W", False), ("-1 W", True), ("5 pJ", True), ("null", False)):
        yield "power/cap", _run(f"power.cap={cap}"), bad
        yield "power/cap", _run(f"power.cap={cap}", "energy.dvfs_exponent=2",
                                "energy.dynamic_overhead=50"), bad
    yield "power/cap", _run("power.cap=2 W", "energy.loaded_floor=3W"), True
    # the loaded floor below the one idle figure (power.idle), either side moved
    yield "power/cap", _run("energy.loaded_floor=0.5W"), True
    yield "power/cap", _run("power.idle=3W", "energy.loaded_floor=2W"), True
    yield "power/cap", _run("power.idle=2W", "energy.loaded_floor=2W"), False


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield (label, argv, must_fail) for about n malformed inputs of this class.
    label: short class name e.g. "power/cap"; argv: npusim argv list (no leading 'npusim');
    must_fail: True if the input is certainly invalid (so exit 0 would be a bug)."""
    fixed = list(_field_cases()) + list(_cap_cases())
    yield from fixed
    yield from _value_cases(rng, max(0, n - len(fixed)))
