"""Malformed sweep specs (``npusim sweep SPEC --out DIR``), for the fuzzing benchmark.

Every case starts from a tiny valid spec (the ``edu`` arch, two SRAM sizes, one ``tiny-llama``
decode step), so a mutation that happens to stay valid runs a two-point sweep in well under a
second per point. Classes (labels):

``sweep/top-key``      an unknown or missing top-level key, or a top level that is no mapping
``sweep/field``        an unknown arch field, a wrong unit, a negative or absurd value, junk
``sweep/range``        low above high, units of two kinds, a plain number beside a quantity, no
                       levels for a grid, a log range from zero, unknown range keys
``sweep/grid``         an empty list of values, a grid over the 100,000-point cap
``sweep/workload``     an unknown kind, a missing or unknown model, a bad phase, an ONNX file
                       that does not exist, duplicate names, sizes out of range
``sweep/metric``       unknown objective or constraint metrics, goals, limits of the wrong unit
``sweep/strategy``     an unknown kind, samples < 1, a bad seed, keys of another kind
``sweep/yaml``         the valid spec's text mutated: a line dropped, truncated, binary junk,
                       a duplicate key, deep nesting, a huge file (some stay valid)
"""
from __future__ import annotations

import copy
import pathlib
import random

import yaml

VALID = {
    "name": "fuzz",
    "base": "edu",
    "fields": {"cores.sram": ["128 KiB", "256 KiB"]},
    "workloads": [{"name": "d", "llm": "tiny-llama", "phase": "decode", "batch": 1,
                   "kv_len": 16}],
    "objectives": [{"latency_s": "min"}],
    "strategy": {"kind": "grid"},
}
JUNK = [None, True, -1, 0, 1e400, -1e300, 10 ** 40, "nan", ".inf", "", "~", "x" * 500,
        [], {}, [1, [2, [3]]], {"a": {"b": None}}, "1 furlong", "1e999 B", "-5 GB", "KB",
        "2001-12-14", "!!binary aGk=", "1 GHz", "3 TB/s", "os"]
WRONG_UNIT = {"cores.sram": "1 GHz", "dram.bandwidth": "3 MiB", "clock": "1 TB/s",
              "dram.capacity": "10 W", "power.tdp": "5 GB", "cores.count": "4 MiB"}
ABSURD = {"cores.sram": "1e300 MiB", "dram.bandwidth": "1e-30 B/s", "clock": "1e30 GHz",
          "cores.count": 10 ** 12, "dram.capacity": "0 B", "cores.engine.rows": -4}


def _spec(**changes) -> dict:
    tree = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            tree.pop(key, None)
        else:
            tree[key] = value
    return tree


def _top(rng: random.Random):
    key = rng.choice(["feilds", "workload", "objective", "strategie", "bogus", "Base"])
    yield "sweep/top-key", {**_spec(), key: rng.choice(JUNK)}, True
    yield "sweep/top-key", _spec(**{rng.choice(["base", "fields", "workloads",
                                                "objectives"]): None}), True
    yield "sweep/top-key", rng.choice([[1, 2], "just text", 42, None]), True
    yield "sweep/top-key", _spec(base=rng.choice(["rngdd", "nope.yaml", "loihi", 3, [],
                                                  {"snn_device": "loihii"}])), True


def _field(rng: random.Random):
    path, unit = rng.choice(list(WRONG_UNIT.items()))
    yield "sweep/field", _spec(fields={path: [unit]}), True
    path, value = rng.choice(list(ABSURD.items()))
    yield "sweep/field", _spec(fields={path: [value]}), True
    typo = rng.choice(["cores.sramm", "dram.bandwith", "core.count", "cores.engine.row",
                       "energy.bogus", "pim.clock.x", ".", "a..b"])
    yield "sweep/field", _spec(fields={typo: ["1 MiB"]}), True
    yield "sweep/field", _spec(fields={"cores.sram": rng.choice(JUNK[:9])}), True
    path, unit = rng.choice(list(WRONG_UNIT.items()))
    yield "sweep/field", _spec(set={path: unit}), True


def _range(rng: random.Random):
    cases = [
        {"low": "2 MiB", "high": "1 MiB", "levels": 2},
        {"low": "1 MiB", "high": "1 GB/s", "levels": 2},
        {"low": 1, "high": "1 MiB", "levels": 2},
        {"low": "1 MiB", "high": "2 MiB"},
        {"low": "0 B", "high": "2 MiB", "scale": "log", "levels": 2},
        {"low": "1 MiB", "hi": "2 MiB", "levels": 2},
        {"low": "1 MiB", "high": "2 MiB", "levels": 0},
        {"low": "1 MiB", "high": "2 MiB", "levels": 2, "scale": "exp"},
        {"low": "os", "high": "ws", "levels": 2},
        {"low": "1 MiB", "high": "2 MiB", "levels": 2, "integer": "yes"},
        {"low": "1.5 MiB", "high": "2 MiB", "levels": 2, "integer": True},
        {"low": rng.choice(JUNK), "high": rng.choice(JUNK), "levels": rng.choice(JUNK)},
    ]
    yield "sweep/range", _spec(fields={"cores.sram": rng.choice(cases)}), True


def _grid(rng: random.Random):
    yield "sweep/grid", _spec(fields={"cores.sram": []}), True
    many = {"dram.bandwidth": {"low": "1 GB/s", "high": "9 GB/s",
                               "levels": rng.randint(400, 5000)},
            "cores.vector.ops_per_cycle": {"low": 1, "high": 9,
                                           "levels": rng.randint(400, 5000)}}
    yield "sweep/grid", _spec(fields=many), True
    yield "sweep/grid", _spec(fields={"cores.engine.rows": {
        "values": [8, 16], "with": {"cores.engine.cols": rng.choice([[8], [8, 16, 32], [],
                                                                     "x"])}}}), True


def _workload(rng: random.Random, workdir: pathlib.Path):
    bad = [
        {"name": "x", "lm": "tiny-llama"},
        {"llm": {"phase": "decode"}},
        {"llm": "lama-3.1-8b", "phase": "decode"},
        {"llm": "tiny-llama", "phase": rng.choice(["decod", "", None, 3, "train"])},
        {"llm": "tiny-llama", "phase": "decode", "seq": 8},
        {"llm": "tiny-llama", "phase": "decode", "batch": rng.choice([0, -1, 10 ** 9, 1.5])},
        {"onnx": str(workdir / "missing.onnx")},
        {"graph": "resnet"},
        {"kperf": {"model": "tiny-llama", "users": 2}},
        {"snn": "lenet", "timesteps": 4},
        {"llm": "tiny-llama", "phase": "decode", "parallel": "tp=0"},
        {"llm": "tiny-llama", "phase": "decode", "precision": "int3"},
        rng.choice(JUNK),
    ]
    yield "sweep/workload", _spec(workloads=[rng.choice(bad)]), True
    yield "sweep/workload", _spec(workloads=[VALID["workloads"][0]] * 2), True


def _metric(rng: random.Random):
    yield "sweep/metric", _spec(objectives=[rng.choice(["latency", "tokens", "power",
                                                        {"latency_s": "minimum"}, {}])]), True
    yield "sweep/metric", _spec(constraints=rng.choice([
        {"power": {"max": "10 W"}}, {"power_w": {"max": "10 MiB"}},
        {"area_mm2": {"max": "3 W"}}, {"power_w": {"most": "10 W"}},
        {"power_w": rng.choice(JUNK)}])), True


def _strategy(rng: random.Random):
    yield "sweep/strategy", _spec(strategy=rng.choice([
        {"kind": "lhc", "samples": 4}, {"kind": "random", "samples": 0},
        {"kind": "lhs"}, {"kind": "random", "samples": 2, "seed": -1},
        {"kind": "grid", "samples": 3}, {"kind": "nsga2", "population": 1},
        {"kind": rng.choice(JUNK)}])), True


def _mutate(text: str, rng: random.Random) -> tuple[str | bytes, bool]:
    """The valid spec's text mutated; True when the result is certainly invalid."""
    lines = text.splitlines()
    how = rng.randrange(7)
    if how == 0:
        lines.pop(rng.randrange(len(lines)))
        return "\n".join(lines), False
    if how == 1:
        return text[:rng.randrange(1, len(text))], False
    if how == 2:
        return text + "\n" + lines[0] + "\n", True                   # a duplicate key
    if how == 3:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 400))), True
    if how == 4:
        depth = rng.choice([40, 200, 5000])
        return text + "cost: " + "[" * depth + "]" * depth + "\n", True
    if how == 5:
        return text + "# " + "x" * 2_000_000 + "\n", True
    return "\t" + text, True


def cases(workdir: pathlib.Path, rng: random.Random, n: int):
    """Yield (label, argv, must_fail) for about n malformed inputs of this class.

    label: short class name e.g. "sweep/range"; argv: npusim argv list (no leading 'npusim');
    must_fail: True if the input is certainly invalid (so exit 0 would be a bug).
    """
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    makers = [_top, _field, _range, _grid, _metric, _strategy,
              lambda r: _workload(r, workdir)]
    text = yaml.safe_dump(VALID, sort_keys=False)
    i = 0
    while i < n:
        if rng.random() < 0.2:
            body, must_fail = _mutate(text, rng)
            items = [("sweep/yaml", body, must_fail)]
        else:
            items = list(rng.choice(makers)(rng))
        for label, tree, must_fail in items:
            case = workdir / f"spec{i}"
            case.mkdir(exist_ok=True)
            path = case / "spec.yaml"
            if isinstance(tree, bytes):
                path.write_bytes(tree)
            elif isinstance(tree, str) and label == "sweep/yaml":
                path.write_text(tree, encoding="utf-8")
            else:
                path.write_text(yaml.safe_dump(tree, sort_keys=False), encoding="utf-8")
            yield label, ["sweep", str(path), "--out", str(case / "out")], must_fail
            i += 1
            if i >= n:
                return
