"""Malformed and out-of-range architecture input, for the fuzzing benchmark.

Classes (labels):

``arch/override-null``
    ``--set FIELD=null`` on every section and field of the schema; must fail where the field
    is required and not nullable.
``arch/override-range``
    ``--set FIELD=VALUE`` with random magnitudes (1e-300 .. 1e300, huge integers, nan, inf,
    negative) and random units of every kind; must fail where the value is certainly out of
    range, not finite or of the wrong kind (fields of the ``pim`` section on ``lpddr6-pim``).
``arch/dram-extreme``
    DRAM geometry and bandwidth at and beyond the bounds (the DRAM model must stay fast).
``arch/power``
    TDPs at, below and just above the static and idle power.
``arch/multichip-no-link``
    ``kperf --chips 2`` on an arch whose link is null.
``arch/yaml-file``
    A copy of the edu arch mutated: a line dropped, a value replaced, a key duplicated,
    truncated, binary junk, deep nesting, huge numbers, other encodings.
``arch/energy-sidecar``
    A valid arch with a malformed ``<stem>.energy.yaml`` beside it.
``arch/calibration``
    A valid arch with a malformed ``<stem>.calibration.yaml`` beside it.
``arch/dram-preset``
    A DRAM type without a preset, or a preset pushed out of range through the arch.

Every case runs a tiny model on the small ``edu`` arch (or a copy of it), so each takes well
under a second once the DRAM tables are cached.
"""
from __future__ import annotations

import math
import pathlib
import random
from importlib.resources import files

from npusim.arch.schema import S, iter_fields
from npusim.arch.units import KINDS

RUN = ["run", "tiny-llama", "--phase", "decode", "--kv-len", "16"]
UNITS = {
    "frequency": ["Hz", "kHz", "MHz", "GHz", "THz"],
    "size": ["B", "kB", "KiB", "MB", "MiB", "GB", "GiB", "TB", "TiB", "b", "Mb"],
    "bandwidth": ["B/s", "kB/s", "MB/s", "GB/s", "TB/s", "PB/s", "Gb/s", "GiB/s"],
    "time": ["s", "ms", "us", "ns", "ps"],
    "power": ["W", "mW", "kW", "MW", "uW"],
    "energy": ["J", "pJ", "nJ", "uJ"],
    "bytes per cycle": ["B/cycle", "KiB/cycle", "b/cycle"],
}
ALL_UNITS = sorted({u for us in UNITS.values() for u in us}) + ["", "furlong", "B/0", "(B",
                                                                "KB", "s^2", "B**99"]
NONSENSE = ["nan", ".nan", ".inf", "-.inf", "inf", "1e400", "-1e400", "1e400 GB/s", "nan GHz",
            "[1, 2]", "{a: 1}", "''", "~", "true", "2001-12-14", "0x10", "1_000", "!!binary aGk=",
            "9" * 5000, "1" + " " * 5000 + "B"]


def _arch_text() -> str:
    return files("npusim.archs").joinpath("edu.yaml").read_text(encoding="utf-8")


def _energy_text() -> str:
    return files("npusim.archs").joinpath("energy", "edu.yaml").read_text(encoding="utf-8")


def _run(*extra: str, arch: str = "edu") -> list[str]:
    return [*RUN, "--arch", arch, *extra]


def _fields() -> list[tuple[str, object]]:
    return list(iter_fields())


def _null_cases():
    for dotted, spec in _fields():
        nullable = getattr(spec, "nullable", False) or getattr(spec, "kind", "") in (
            "dtype_map", "dtype_rates") and dotted != "cores.engine.macs_per_cycle"
        yield "arch/override-null", _run("--set", f"{dotted}=null"), not nullable


def _number(rng: random.Random) -> tuple[str, float]:
    """A number as text and its value: any magnitude, sign, or an integer past int64."""
    pick = rng.random()
    if pick < 0.15:
        x = rng.choice([2 ** 63, 2 ** 64, 10 ** 30, -(2 ** 63) - 1, 10 ** 300])
        return str(x), float(x)
    if pick < 0.3:
        x = rng.choice([1e300, 1e-300, -1e300, 0.0, -0.0, 5e-324, 1.7976931348623157e308])
        return repr(x), x
    mant = rng.uniform(-10, 10) if rng.random() < 0.2 else rng.uniform(0.1, 10)
    x = float(f"{mant:.3g}e{rng.randint(-30, 30)}")
    return f"{x:.3g}", x


def _out_of_range(spec, value: float, unit: str) -> bool | None:
    """True if ``value unit`` is certainly outside ``spec``'s range; None if unsure."""
    bounds = spec.bounds()
    if bounds is None or not math.isfinite(value):
        return None
    kind = spec.kind
    if kind in KINDS:
        if unit not in UNITS.get(kind, ()):
            return True        # wrong kind of unit, or no unit, or not a unit
        from npusim.arch.units import parse_quantity
        si = parse_quantity(f"1 {unit}", kind) * value
    else:
        if unit:
            return True        # a count or a plain number given a unit
        si = value
    if kind == "count" and si != int(si):
        return True
    lo, hi = bounds
    # well outside only: rounding near a bound is not a certain failure
    return True if (si < lo * 0.5 or si > hi * 2 or (si <= 0 < lo)) else (
        False if lo <= si <= hi else None)


def _range_case(rng: random.Random, leaves: list):
    dotted, spec = rng.choice(leaves)
    # a field of the pim section is fuzzed on an arch that has one
    arch = "lpddr6-pim" if dotted.startswith("pim.") else "edu"
    if dotted in ("cores.engine.macs_per_cycle", "cores.engine.efficiency"):
        dotted += "." + rng.choice(["int8", "bf16"])
    if dotted in ("pim.macs_per_cycle", "pim.energy.mac"):
        dotted += ".fp16"
    if rng.random() < 0.15:
        text = rng.choice(NONSENSE)
        if text == "~":                       # YAML null
            bad = not spec.nullable and spec.kind != "dtype_rates"
        elif text in ("0x10", "1_000"):         # YAML integers
            bad = spec.kind not in ("count", "number")
        else:
            bad = True
        return "arch/override-range", _run("--set", f"{dotted}={text}", arch=arch), bad
    num, value = _number(rng)
    units = UNITS.get(spec.kind, [])
    unit = rng.choice(units) if units and rng.random() < 0.8 else rng.choice(ALL_UNITS)
    if spec.kind in ("count", "number") and rng.random() < 0.7:
        unit = ""
    sep = rng.choice([" ", "", "  "])
    text = f"{num}{sep}{unit}" if unit else num
    bad = _out_of_range(spec, value, unit)
    engine = ["--engine", "roofline"] if rng.random() < 0.5 else []
    return "arch/override-range", _run("--set", f"{dotted}={text}", *engine, arch=arch), \
        bool(bad)


def _dram_cases(rng: random.Random, n: int):
    for _ in range(n):
        sets = []
        for field, options in (
                ("dram.bandwidth", ["1 MB/s", "1000 TB/s", "999 kB/s", "1 B/s", "0.001 B/s"]),
                ("dram.channels", ["1", "2048", "2049", "4096", "99999999999999999999", "null"]),
                ("dram.bank_groups", ["1", "16", "17", "64", "null"]),
                ("dram.banks_per_group", ["1", "16", "17", "null"]),
                ("dram.row_size", ["1 B", "1 MiB", "2 MiB", "1e300 MiB", "null"]),
                ("dram.burst", ["1 B", "64 KiB", "1e-300 MiB", "65 KiB", "null"])):
            if rng.random() < 0.5:
                sets.append((field, rng.choice(options)))
        if not sets:
            sets.append(("dram.bandwidth", "1 B/s"))
        bad = any(v in ("999 kB/s", "1 B/s", "0.001 B/s", "2049", "4096",
                        "99999999999999999999", "17", "64", "2 MiB", "1e300 MiB",
                        "1e-300 MiB", "65 KiB") for _, v in sets)
        argv = _run(*[a for f, v in sets for a in ("--set", f"{f}={v}")])
        yield "arch/dram-extreme", argv, bad


def _power_cases():
    # edu: idle 1 W, energy table static 1 W, TDP 10 W
    for tdp, bad in (("0.001 W", True), ("1 W", True), ("0.5 W", True), ("1.01 W", False),
                     ("1 mW", True), ("100 kW", False), ("100.1 kW", True), ("0 W", True),
                     ("-5 W", True), ("nan W", True)):
        yield "arch/power", _run("--set", f"power.tdp={tdp}"), bad
    yield "arch/power", _run("--set", "power.idle=20 W"), True
    yield "arch/power", _run("--set", "power.tdp=null"), False
    yield "arch/power", _run("--set", "power.tdp=0.001 W", arch="rngd"), True


def _link_cases(workdir: pathlib.Path):
    out = str(workdir / "kperf-out")
    base = ["kperf", "--model", "tiny-llama", "--chips", "2", "--input-lens", "16",
            "--output-lens", "4", "--users", "1", "--out", out]
    yield "arch/multichip-no-link", base + ["--arch", "edu", "--set", "link=null"], True
    yield "arch/multichip-no-link", base + ["--arch", "systolic-128"], True
    yield "arch/multichip-no-link", base + ["--arch", "edu", "--set", "link.bandwidth=null"], True
    yield "arch/multichip-no-link", base + ["--arch", "edu", "--set", "link.kind=null"], True


def _mutate(text: str, rng: random.Random) -> tuple[str | bytes, bool]:
    """A broken copy of an arch (or energy) file, and whether it certainly is invalid."""
    lines = text.splitlines()
    keyed = [i for i, ln in enumerate(lines) if ":" in ln and not ln.lstrip().startswith("#")]
    how = rng.randrange(10)
    if how == 0:            # drop a field
        i = rng.choice(keyed)
        return "\n".join(lines[:i] + lines[i + 1:]), None
    if how == 1:            # replace a value
        i = rng.choice(keyed)
        key = lines[i].split(":", 1)[0]
        value = rng.choice(NONSENSE + ["1e300 MiB", "1e-300 MiB", "-1 GB", "3 GHz", "12"])
        lines[i] = f"{key}: {value}"
        return "\n".join(lines), None
    if how == 2:            # duplicate a key
        i = rng.choice(keyed)
        return "\n".join(lines[:i + 1] + [lines[i]] + lines[i + 1:]), True
    if how == 3:            # truncate
        return text[:rng.randrange(1, len(text))], None
    if how == 4:            # binary junk
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        cut = rng.randrange(len(text))
        return text[:cut].encode() + junk + text[cut:].encode(), None
    if how == 5:            # deep nesting
        depth = rng.choice([100, 10000, 100000])
        return "name: " + "[" * depth + "]" * depth + "\n", True
    if how == 6:            # a huge number
        i = rng.choice(keyed)
        key = lines[i].split(":", 1)[0]
        lines[i] = f"{key}: {'9' * rng.choice([30, 5000, 100000])}"
        return "\n".join(lines), True
    if how == 7:            # other encodings
        enc = rng.choice(["utf-16", "latin-1", "utf-32"])
        return (text.replace("assumption", "hypothèse") if enc == "latin-1" else text) \
            .encode(enc), enc != "latin-1"
    if how == 8:            # not a mapping
        return rng.choice(["- 1\n- 2\n", "42\n", "just text\n", "---\n...\n", "{}\n"]), True
    i = rng.choice(keyed)   # a stray tab or an unknown key
    lines.insert(i, rng.choice(["\tclock: 1 GHz", "colour: red", "cores.count: 4"]))
    return "\n".join(lines), True


def _write(path: pathlib.Path, content: str | bytes) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def _file_cases(workdir: pathlib.Path, rng: random.Random, n: int):
    base = _arch_text().replace("name: edu", "name: fuzzchip", 1)
    energy = _energy_text().replace("name: edu", "name: fuzzchip", 1)
    for k in range(n):
        folder = workdir / f"arch-{k}"
        folder.mkdir(parents=True, exist_ok=True)
        which = k % 3
        path = folder / "fuzzchip.yaml"
        if which == 0:
            content, bad = _mutate(base, rng)
            _write(path, content)
            yield "arch/yaml-file", _run(arch=str(path)), bool(bad)
        elif which == 1:
            _write(path, base)
            content, bad = _mutate(energy, rng)
            _write(folder / "fuzzchip.energy.yaml", content)
            yield "arch/energy-sidecar", _run(arch=str(path)), bool(bad)
        else:
            _write(path, base)
            calib = rng.choice([
                ("arch: fuzzchip\nfitted:\n  launch_overhead: {value: 1e300 s, rows: [X], "
                 "metric: m, date: d, method: x}\n", True),
                ("arch: fuzzchip\nfitted:\n  dram.bandwidth: {value: 1 B/s}\n", True),
                ("arch: fuzzchip\nassumed:\n  cores.count: {value: 99999999999999999999999, "
                 "from: x, why: y}\n", True),
                ("arch: fuzzchip\nfitted:\n  nosuch.field: {value: 1}\n", True),
                ("arch: other\n", True),
                ("arch: fuzzchip\nfitted: [1, 2]\n", True),
                (b"\xff\xfe\x00junk", True),
                ("arch: fuzzchip\nfitted:\n  power.tdp: {value: 0.001 W}\n", True),
                ("arch: fuzzchip\nfitted:\n  launch_overhead: {value: 2 us}\n", False),
            ])
            _write(folder / "fuzzchip.calibration.yaml", calib[0])
            yield "arch/calibration", _run(arch=str(path)), calib[1]


def _preset_cases():
    yield "arch/dram-preset", _run("--set", "dram.type=ddr5"), False      # no preset: warned
    yield "arch/dram-preset", _run("--set", "dram.type=hbm9"), True
    yield "arch/dram-preset", _run("--set", "dram.type=hbm3", "--set", "dram.channels=2048",
                                   "--set", "dram.bandwidth=1 MB/s"), False
    yield "arch/dram-preset", _run("--set", "dram.type=generic"), False


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield (label, argv, must_fail) for about n malformed inputs of this class.

    label: short class name e.g. "arch/override-range"; argv: npusim argv list (no leading
    'npusim'); must_fail: True if the input is certainly invalid (so exit 0 would be a bug).
    """
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    fixed = [*_null_cases(), *_power_cases(), *_link_cases(workdir), *_preset_cases()]
    rest = max(0, n - len(fixed))
    leaves = [(d, f) for d, f in _fields() if not isinstance(f, S)
              and f.kind not in ("identifier", "text", "choice", "choices", "flag",
                                 "dtype_map")]
    out = list(fixed)
    out += list(_dram_cases(rng, rest // 6))
    out += list(_file_cases(workdir, rng, rest // 3))
    while len(out) < n:
        out.append(_range_case(rng, leaves))
    yield from out[:max(n, len(fixed))]
