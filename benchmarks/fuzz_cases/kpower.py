"""Malformed power-band ranges in an energy table, for the fuzzing benchmark.

Classes (labels):

``kpower/ranges``
    An arch file beside a ``<stem>.energy.yaml`` (the teaching chip's table plus a loaded floor,
    a dynamic overhead and an operand delivery) whose ``ranges:`` is malformed: not a mapping,
    an unknown or unranged field, not a [low, high] pair, a bound of the wrong unit, negative,
    non-finite or beyond the field's limits, low above high, or a central value outside its
    range; must fail (one clear error) where the input is certainly invalid.
``kpower/ranges-ok``
    Valid ranges (must run).

Every case runs a tiny model on a copy of the small ``edu`` arch.
"""
from __future__ import annotations

import importlib.resources
import pathlib
import random

PARTS = "loaded_floor: 2 W\ndynamic_overhead: 2\noperand_delivery: 1 pJ/bit\n"
# field -> (unit, central value above, a valid [low, high])
FIELDS = {"loaded_floor": (" W", 2.0, (1.0, 5.0)),
          "dynamic_overhead": ("", 2.0, (1.0, 4.0)),
          "operand_delivery": (" pJ/bit", 1.0, (0.0, 4.0))}


def _arch(workdir: pathlib.Path, name: str, ranges: str) -> str:
    archs = importlib.resources.files("npusim.archs")
    arch = workdir / f"{name}.yaml"
    arch.write_text((archs / "edu.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    table = (archs / "energy" / "edu.yaml").read_text(encoding="utf-8")
    (workdir / f"{name}.energy.yaml").write_text(table + "\n" + PARTS + ranges,
                                                 encoding="utf-8")
    return str(arch)


def _run(arch: str) -> list[str]:
    return ["run", "tiny-llama", "--phase", "decode", "--kv-len", "16", "--arch", arch]


def _random_range(rng: random.Random) -> tuple[str, bool]:
    """A ``ranges:`` block and whether it is certainly invalid."""
    field = rng.choice(sorted(FIELDS) + ["static", "idle", "dvfs_exponent", "mac"])
    if field not in FIELDS:
        return f"ranges: {{{field}: [1, 2]}}\n", True
    unit, central, (lo, hi) = FIELDS[field]
    kind = rng.randrange(7)
    if kind == 0:
        return f"ranges: {{{field}: [{lo}{unit}]}}\n", True                     # one item
    if kind == 1:
        return f"ranges: {{{field}: [{hi}{unit}, {lo}{unit}]}}\n", True          # reversed
    if kind == 2:
        wrong = rng.choice(["pJ", "GHz", "MiB", "s"] + (["W"] if unit != " W" else []))
        return f"ranges: {{{field}: [{lo} {wrong}, {hi}{unit}]}}\n", True
    if kind == 3:
        bad = rng.choice(["nan", "inf", "-1", "abc", "null", "[1]"])
        return f"ranges: {{{field}: [{bad}{unit if bad[0].isdigit() or bad[0] == '-' else ''}, {hi}{unit}]}}\n", True
    if kind == 4:
        a = central + rng.uniform(0.1, 3.0)                                 # central outside
        return f"ranges: {{{field}: [{a}{unit}, {a + 1}{unit}]}}\n", True
    if kind == 5:
        return rng.choice(["ranges: 3\n", "ranges: {}\n", "ranges: [1, 2]\n",
                           "ranges: text\n"]), True
    a = rng.uniform(lo, central)
    b = rng.uniform(central, hi)
    return f"ranges: {{{field}: [{a}{unit}, {b}{unit}]}}\n", False


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield (label, argv, must_fail) for about n malformed inputs of this class.
    label: short class name e.g. "kpower/ranges"; argv: npusim argv list (no leading
    'npusim'); must_fail: True if the input is certainly invalid (so exit 0 would be a bug)."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        block, bad = _random_range(rng)
        arch = _arch(workdir, f"kp{i}", block)
        yield ("kpower/ranges" if bad else "kpower/ranges-ok"), _run(arch), bad
