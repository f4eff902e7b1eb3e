"""The reference of every arch field, generated from the schemas (never written by hand).

``python -m npusim.arch.reference > docs/arch-reference.md`` regenerates the committed file;
a test compares the two, so the reference cannot fall behind the schema that validates files.
It walks the arch schema (:data:`npusim.arch.schema.SCHEMA`), the energy table's
(:data:`npusim.energy.table.SCHEMA`) and the DRAM timing preset's
(:data:`npusim.arch.dram_timing.SCHEMA`), and prints each field's unit, whether it is required
or may be null, its allowed range with where the range comes from, and its meaning.

>>> text = reference()
>>> "| `dram.bandwidth` |" in text and "1 MB/s .. 1000 TB/s" in text
True
"""
from __future__ import annotations

import sys

from .schema import SCHEMA, F, S, iter_fields, si_units
from .units import KINDS

REGENERATE = "python -m npusim.arch.reference > docs/arch-reference.md"

_KIND_NAMES = {
    "identifier": "name (one word)", "text": "text", "choice": "one of",
    "count": "count (whole number)", "number": "number", "dtype_rates": "dtype → number",
    "dtype_map": "dtype → dtype", "dtype_energy": "dtype → energy (J)",
    "per_byte": "energy per byte (J/B), e.g. `0.1 pJ/B`",
    "per_bit": "energy per bit (J/bit), e.g. `3.5 pJ/bit`",
    "flag": "true or false",
}


def _kind(spec: F, unit: str | None) -> str:
    k = spec.kind
    if k in KINDS:
        kind = KINDS[k]
        return f"{kind.name} ({kind.si}), e.g. `{kind.example}`"
    if k == "choice":
        return "one of " + ", ".join(f"`{c}`" for c in spec.choices)
    if k == "choices":
        return "a list of " + ", ".join(f"`{c}`" for c in spec.choices)
    text = _KIND_NAMES[k]
    return f"{text} ({unit})" if unit else text


def _presence(spec: F | S) -> str:
    required = getattr(spec, "required", True)
    out = "required" if required else "optional"
    return out + (", may be null" if spec.nullable else "")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _table(root: S, units: dict[str, str] | None = None) -> list[str]:
    units = units or {}
    rows = ["| field | kind (unit) | presence | allowed range | meaning | range basis |",
            "|---|---|---|---|---|---|"]
    for dotted, spec in iter_fields(root):
        if isinstance(spec, S):
            rows.append(f"| `{dotted}` | section | {_presence(spec)} | | "
                        f"{_cell(spec.doc)} | |")
            continue
        rng = spec.range_text()
        rows.append(f"| `{dotted}` | {_cell(_kind(spec, units.get(dotted)))} | "
                    f"{_presence(spec)} | {rng} | {_cell(spec.doc)} | {_cell(spec.why)} |")
    return rows


def reference() -> str:
    """The whole reference as Markdown (what ``docs/arch-reference.md`` holds)."""
    from ..energy.table import SCHEMA as ENERGY
    from .dram_timing import NCK_RANGE, SCHEMA as DRAM, TIMING_RANGE, TIMINGS
    lines = [
        "# Arch field reference",
        "",
        f"Generated from the schemas by `{REGENERATE}`; do not edit by hand (a test compares "
        "this file with the generated text). How to write a new arch: "
        "[new-arch.md](new-arch.md).",
        "",
        "Quantities are written as a number and a unit (`1.5 TB/s`, `256 MiB`, `1 GHz`, "
        "`0.5 pJ/bit`) and stored in SI units. Sizes: `kB`, `MB`, `GB`, `TB` are decimal, "
        "`KiB`, `MiB`, `GiB`, `TiB` binary; `B` is a byte, `b` a bit. Counts and plain "
        "numbers take no unit. NaN and infinity are refused everywhere.",
        "",
        "Every numeric field has an allowed range that refuses physical nonsense (a value "
        "outside it is a typo or a unit slip, e.g. `1e300 MiB` or `1 B/s`). The ranges are "
        "deliberately generous and, unless the basis names a source, assumptions. A value "
        "outside its range is an error naming the file, the field, the value, the range and "
        "the fix; the same holds for `--set FIELD=VALUE` overrides and calibration files. "
        "For `dtype → number` maps the range bounds every entry.",
        "",
        "Checks across fields: `power.idle` below `power.tdp` and at most the energy table's "
        "`loaded_floor`; `power.tdp` above the energy table's `static` (its `loaded_floor` "
        "where given); `dram.row_size` a whole number of `dram.burst`; the 16-bit MAC "
        "rate equal to `units x rows x cols` when rows and cols are given; every "
        "`dtype_fallback` target native; shared SRAM needs the energy table's `shared`; a "
        "system of more than one chip needs a `link`.",
        "",
        "## Arch file (`npusim/archs/<name>.yaml`, or any `.yaml` path)",
        "",
        *_table(SCHEMA, si_units()),
        "",
        "## Energy table (`npusim/archs/energy/<name>.yaml`, or `<stem>.energy.yaml` beside "
        "an arch file)",
        "",
        "Every key is required but the power model's parts (`loaded_floor`, "
        "`dynamic_overhead`, `operand_delivery`, `dvfs_exponent`, `dvfs_min_voltage`: absent, "
        "a run is costed as before they existed); `shared`, `noc` and `link` may be null for a "
        "chip without that part. Any field can be set for one run with "
        "`--set energy.<field>=<value>` (e.g. `--set energy.loaded_floor=130W`), which is how "
        "`npusim validate --fit` reaches it.",
        "",
        *_table(ENERGY),
        "",
        "## DRAM timing preset (`npusim/archs/dram/<type>.yaml`, picked by `dram.type`)",
        "",
        "Besides the fields below, a preset has `sources` (a non-empty mapping of source ID "
        "to reference) and `timing`, a mapping of every one of "
        + ", ".join(f"`{t}`" for t in TIMINGS) + ". A timing is a time "
        f"({TIMING_RANGE.range_text()}; {TIMING_RANGE.why}) or a count of command-clock "
        f"cycles written `4 nCK` ({NCK_RANGE.range_text()}; {NCK_RANGE.why}). tREFI must "
        "exceed tRFC, tRC must be at least tRAS, and rows and the interleave unit must be "
        "whole bursts.",
        "",
        *_table(DRAM),
        "",
        "## Calibration file (`npusim/archs/calibration/<name>.yaml`, or "
        "`<stem>.calibration.yaml`)",
        "",
        "Written by `npusim validate --fit`. Its `fitted` and `assumed` sections map dotted "
        "arch fields to a `value` (with provenance); each value is applied like a `--set` "
        "override and validated against the arch field's range above.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    """Write the reference to standard output."""
    sys.stdout.write(reference())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
