"""Sweep specs and strategies (npusim.dse.spec, npusim.dse.strategies): hand-counted grids,
sampling properties, reproducibility, and one clean single-line error per class of bad spec."""
from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from npusim.arch.snn_device import load_snn_device
from npusim.dse import strategies as st
from npusim.dse.spec import (MAX_POINTS, METRICS, Field, check_point, format_number, load_spec,
                             parse_spec)
from npusim.errors import ArchError, NpusimError

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "sweeps"


def spec_tree(**changes) -> dict:
    """A small valid spec on the edu arch; ``changes`` replace top-level keys (None drops)."""
    tree = {
        "name": "t",
        "base": "edu",
        "fields": {"cores.sram": ["128 KiB", "256 KiB"],
                   "dram.bandwidth": {"low": "10 GB/s", "high": "40 GB/s", "levels": 3}},
        "workloads": [{"name": "d", "llm": "tiny-llama", "phase": "decode", "batch": 1,
                       "kv_len": 16}],
        "objectives": [{"latency_s": "min"}, "energy_j"],
    }
    for key, value in changes.items():
        if value is None:
            tree.pop(key, None)
        else:
            tree[key] = value
    return tree


def write(tmp_path: Path, tree, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(tree if isinstance(tree, str) else yaml.safe_dump(tree, sort_keys=False))
    return path


def parse(tree, source: str = "/x/spec.yaml"):
    return parse_spec(tree, source)


def assert_clean(exc: BaseException, *needles: str) -> str:
    """One line, a NpusimError, naming every needle (file, key path, fix)."""
    msg = str(exc)
    assert isinstance(exc, NpusimError), repr(exc)
    assert "\n" not in msg and msg.strip() == msg, msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


def bad(tmp_path: Path, tree, *needles: str) -> str:
    path = write(tmp_path, tree, "bad.yaml")
    with pytest.raises(NpusimError) as info:
        load_spec(path)
    return assert_clean(info.value, "bad.yaml", *needles)


# ------------------------------------------------------------------------------- parsing

def test_spec_fields_as_written(tmp_path):
    s = load_spec(write(tmp_path, spec_tree(set={"dram.capacity": "2 GiB"}, constraints={
        "power_w": {"max": "0.15 kW"}, "area_mm2": {"max": 700, "min": "1 mm2"}},
        cost={"per_mm2": 0.5}, strategy={"kind": "lhs", "samples": 5, "seed": 3},
        sensitivity=True)))
    assert s.name == "t" and s.base == "edu" and s.base_kind == "arch"
    assert s.base_overrides == {"dram.capacity": "2 GiB"}
    assert s.fields[0].values == ("128 KiB", "256 KiB")
    f = s.fields[1]
    assert (f.low, f.high, f.unit, f.levels, f.scale, f.integer) == (
        "10 GB/s", "40 GB/s", "GB/s", 3, "linear", False)
    assert [(o.metric, o.goal) for o in s.objectives] == [("latency_s", "min"),
                                                          ("energy_j", "min")]
    assert [(c.metric, c.op, c.limit, c.text) for c in s.constraints] == [
        ("power_w", "<=", 150.0, "0.15 kW"), ("area_mm2", "<=", 700.0, "700"),
        ("area_mm2", ">=", 1.0, "1 mm2")]
    assert s.cost == {"per_mm2": 0.5}
    assert (s.strategy.kind, s.strategy.samples, s.strategy.seed, s.strategy.sensitivity) == (
        "lhs", 5, 3, True)
    assert s.workloads[0].params == {"model": "tiny-llama", "phase": "decode", "batch": 1,
                                     "kv_len": 16, "precision": "bf16"}
    assert "cores.sram" in s.text and s.source == str(tmp_path / "spec.yaml")


def test_workload_kinds_and_relative_paths(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.onnx").write_bytes(b"not read at parse time")
    s = load_spec(write(tmp_path, spec_tree(workloads=[
        {"name": "p", "llm": "tiny-llama", "phase": "prefill", "seq": 8, "parallel": "tp=2"},
        {"name": "o", "onnx": "models/m.onnx", "dims": {"batch": 2}},
        {"name": "g", "graph": "resnet50", "batch": 2, "precision": "int8"},
        {"name": "k", "kperf": {"model": "tiny-llama", "input_len": 8, "output_len": 4,
                                "users": 2}},
    ])))
    p, o, g, k = s.workloads
    assert p.params == {"model": "tiny-llama", "phase": "prefill", "batch": 1, "seq": 8,
                        "precision": "bf16", "parallel": "tp=2,pp=1"}
    assert o.kind == "onnx" and o.params["path"] == str(tmp_path / "models" / "m.onnx")
    assert o.params["dims"] == {"batch": 2}
    assert g.params == {"name": "resnet50", "batch": 2, "precision": "int8"}
    assert k.kind == "kperf" and k.params["users"] == 2 and k.params["precision"] == "bf16"


def test_arch_file_base_is_relative_to_the_spec(tmp_path):
    from importlib.resources import files
    (tmp_path / "my.yaml").write_text(files("npusim.archs").joinpath("edu.yaml").read_text())
    s = load_spec(write(tmp_path, spec_tree(base="my.yaml")))
    assert s.base == str(tmp_path / "my.yaml")
    check_point(s, st.points(s)[0])


def test_energy_table_fields_are_validated_by_the_table():
    s = parse(spec_tree(fields={"energy.static": ["0.5 W", "2 W"]}))
    assert [p["energy.static"] for p in st.points(s)] == ["0.5 W", "2 W"]
    assert "energy.static" in s.text                      # dumped when no text is given
    with pytest.raises(NpusimError) as info:
        parse(spec_tree(fields={"energy.statik": ["1 W"]}))
    assert_clean(info.value, "fields.energy.statik[0]:", "unknown field 'statik'")


# -------------------------------------------------------------------------------- grid

def test_grid_count_and_order():
    s = parse(spec_tree())
    pts = st.points(s)
    assert len(pts) == 2 * 3
    assert pts[:3] == [{"cores.sram": "128 KiB", "dram.bandwidth": bw}
                       for bw in ("10.0 GB/s", "25.0 GB/s", "40.0 GB/s")]
    assert pts[3]["cores.sram"] == "256 KiB"            # the last field varies fastest
    for p in pts:
        check_point(s, p)


def test_grid_levels_log_integer_and_deduplicated():
    assert st.levels(Field("x", low="1", high="16", scale="log", integer=True,
                           levels=5)) == ["1", "2", "4", "8", "16"]
    # 1, 1.5, 2, 2.5, 3 rounded to whole numbers: 1, 2, 2, 2, 3
    assert st.levels(Field("x", low="1", high="3", integer=True, levels=5)) == ["1", "2", "3"]
    assert st.levels(Field("x", low="512 KiB", high="2 MiB", unit="MiB", scale="log",
                           levels=3)) == ["0.5 MiB", "1.0 MiB", "2.0 MiB"]
    assert st.levels(Field("x", low="7", high="9", levels=1)) == ["7.0"]


def test_linked_fields_move_together():
    s = parse(spec_tree(fields={"cores.engine.rows": {
        "values": [8, 16, 32], "with": {"cores.engine.cols": [32, 16, 8]}},
        "cores.engine.dataflow": ["os", "ws"]}))
    pts = st.points(s)
    assert len(pts) == 6
    assert pts[0] == {"cores.engine.rows": "8", "cores.engine.cols": "32",
                      "cores.engine.dataflow": "os"}
    assert all(int(p["cores.engine.rows"]) * int(p["cores.engine.cols"]) == 256 for p in pts)
    for p in pts:
        check_point(s, p)
    assert st.values(s, pts[0]) == {"cores.engine.rows": 8.0, "cores.engine.cols": 32.0,
                                    "cores.engine.dataflow": "os"}


# ---------------------------------------------------------------- random, LHS, NSGA-II

def sampled(kind: str, seed: int, n: int = 12):
    return parse(spec_tree(strategy={"kind": kind, "samples": n, "seed": seed},
                           fields={"cores.sram": {"low": "64 KiB", "high": "1 MiB",
                                                  "scale": "log"},
                                   "cores.vector.ops_per_cycle": {"low": 1, "high": 64},
                                   "cores.engine.dataflow": ["os", "ws", "is"]}))


@pytest.mark.parametrize("kind", ["random", "lhs"])
def test_sampling_reproducible_with_a_seed_and_not_with_another(kind):
    a, b, c = (st.points(sampled(kind, seed)) for seed in (1, 1, 2))
    assert a == b and a != c
    assert len(a) == 12
    s = sampled(kind, 1)
    for p in a:
        v = st.values(s, p)
        assert 64 * 1024 <= v["cores.sram"] <= 1024 * 1024
        assert 1 <= v["cores.vector.ops_per_cycle"] <= 64
        assert v["cores.engine.dataflow"] in ("os", "ws", "is")
        check_point(s, p)


@settings(max_examples=25, deadline=None)
@given(n=hs.integers(2, 12), seed=hs.integers(0, 2 ** 32 - 1))
def test_lhs_puts_one_sample_in_each_stratum_of_every_field(n, seed):
    s = parse(spec_tree(strategy={"kind": "lhs", "samples": n, "seed": seed}, fields={
        "cores.vector.ops_per_cycle": {"low": 1, "high": 1000},
        "cores.sram": {"low": "1 KiB", "high": "1 GiB", "scale": "log"},
        "cores.count": list(range(1, n + 1))}))
    pts = st.points(s)
    assert len(pts) == n                   # continuous fields: no two draws coincide
    u = [(float(p["cores.vector.ops_per_cycle"]) - 1) / 999 for p in pts]
    w = [math.log(st.values(s, p)["cores.sram"] / 1024) / math.log(2 ** 20) for p in pts]
    for col in (u, w):
        assert sorted(min(int(x * n), n - 1) for x in col) == list(range(n))
    # a listed field of n values takes each value once: the stratum's index
    assert sorted(int(p["cores.count"]) for p in pts) == list(range(1, n + 1))


@settings(max_examples=30, deadline=None)
@given(n=hs.integers(1, 50), d=hs.integers(1, 5), seed=hs.integers(0, 2 ** 32 - 1))
def test_unit_cube_lhs_strata(n, d, seed):
    u = st.unit_cube("lhs", n, d, seed)
    assert u.shape == (n, d) and ((0 <= u) & (u < 1)).all()
    for j in range(d):
        assert sorted(np.floor(u[:, j] * n).astype(int)) == list(range(n))


def nsga2(seed: int, constraints=None):
    pytest.importorskip("optuna")
    tree = spec_tree(strategy={"kind": "nsga2", "population": 4, "generations": 3,
                               "seed": seed},
                     fields={"cores.sram": ["64 KiB", "128 KiB", "256 KiB"],
                             "dram.bandwidth": {"low": "10 GB/s", "high": "40 GB/s",
                                                "scale": "log"},
                             "cores.count": {"low": 1, "high": 8, "integer": True}},
                     objectives=[{"latency_s": "min"}, {"area_mm2": "min"}])
    if constraints:
        tree["constraints"] = constraints
    return parse(tree)


def run_adaptive(spec, fail_every: int = 0) -> list[dict]:
    """Drive NSGA-II to its budget with metrics computed from the point (a fake evaluation)."""
    search = st.Adaptive(spec)
    asked, i = [], 0
    while not search.done:
        batch = search.ask(3)
        metrics = []
        for p in batch:
            v = st.values(spec, p)
            i += 1
            metrics.append(None if fail_every and i % fail_every == 0 else {
                "latency_s": 1e12 / v["dram.bandwidth"] / v["cores.count"],
                "area_mm2": v["cores.sram"] / 1e4 + 10 * v["cores.count"], "power_w": 5.0})
        search.tell(list(reversed(batch)), list(reversed(metrics)))   # any order
        asked += batch
    return asked


def test_nsga2_reproducible_with_a_seed_and_not_with_another():
    a = run_adaptive(nsga2(1))
    assert a == run_adaptive(nsga2(1))
    assert a != run_adaptive(nsga2(2))
    assert len(a) == 12 + 0                   # the budget: population 4 x 3 generations
    s = nsga2(1)
    for p in a:
        assert set(p) == {"cores.sram", "dram.bandwidth", "cores.count"}
        check_point(s, p)


def test_nsga2_takes_failures_and_constraints():
    s = nsga2(5, constraints={"area_mm2": {"max": 30}})
    assert len(run_adaptive(s, fail_every=4)) == 12
    search = st.Adaptive(s)
    [p] = search.ask(1)
    with pytest.raises(ValueError, match="not asked"):
        search.tell([{**p, "cores.count": "99"}], [{"latency_s": 1.0}])


def test_nsga2_budget_from_samples():
    pytest.importorskip("optuna")
    s = parse(spec_tree(strategy={"kind": "nsga2", "population": 8, "samples": 20}))
    assert (s.strategy.population, s.strategy.generations, s.strategy.samples) == (8, 3, 24)


# ------------------------------------------------------------------- neighbours, values

def test_neighbours_one_field_at_a_time():
    s = parse(spec_tree(fields={"cores.sram": ["128 KiB", "256 KiB", "512 KiB"],
                                "dram.bandwidth": {"low": "10 GB/s", "high": "40 GB/s",
                                                   "scale": "log"},
                                "cores.count": {"low": 2, "high": 6, "integer": True}},
                        strategy={"kind": "random", "samples": 1}))
    best = {"cores.sram": "256 KiB", "dram.bandwidth": "10.0 GB/s", "cores.count": "3"}
    got = st.neighbours(s, best)
    assert got == [
        {**best, "cores.sram": "128 KiB"}, {**best, "cores.sram": "512 KiB"},
        {**best, "dram.bandwidth": "20.0 GB/s"}, {**best, "dram.bandwidth": "40.0 GB/s"},
        {**best, "cores.count": "2"}, {**best, "cores.count": "4"},
        {**best, "cores.count": "6"}]
    assert best not in got


def test_values_in_si_units():
    s = parse(spec_tree(fields={"cores.sram": ["64 MiB"], "dram.bandwidth": ["1.5 TB/s"],
                                "cores.engine.dataflow": ["ws"], "cores.count": [4],
                                "clock": ["500 MHz"]}))
    assert st.values(s, st.points(s)[0]) == {
        "cores.sram": 67108864.0, "dram.bandwidth": 1.5e12, "cores.engine.dataflow": "ws",
        "cores.count": 4.0, "clock": 5e8}


@settings(max_examples=200, deadline=None)
@given(x=hs.floats(1e-30, 1e30), unit=hs.sampled_from([None, "MiB", "TB/s", "GHz"]))
def test_range_texts_read_back_as_the_same_number(x, unit):
    f = Field("x", low="0", high="1", unit=unit)
    text = format_number(x, f)
    number = yaml.safe_load(text) if unit is None else float(text.split()[0])
    assert isinstance(number, float) and number == x


# ---------------------------------------------------------------- spiking-core devices

def test_snn_device_overrides():
    d = load_snn_device("loihi", {"structure.cores_per_tile": 8,
                                  "costs.events.synop.energy": "20 pJ"})
    assert d.structure.cores == 256 and d.costs.events["synop"].energy == pytest.approx(2e-11)
    assert load_snn_device("loihi", ["structure.neurons_per_core=256"]) \
        .structure.neurons_per_core == 256
    assert load_snn_device("loihi").structure.cores == 128           # the preset untouched


@pytest.mark.parametrize("overrides, needles", [
    ({"structure.cores_per_tyle": 8}, ("unknown field 'structure.cores_per_tyle'",
                                       "did you mean 'cores_per_tile'")),
    ({"costs.static.power": "5 MiB"}, ("costs.static.power", "expected a power")),
    ({"structure.neurons_per_core": -3}, ("structure.neurons_per_core", "1 .. 1048576")),
    (["structure.chips"], ("is not 'dotted.field=value'",)),
])
def test_snn_device_override_errors(overrides, needles):
    with pytest.raises(ArchError) as info:
        load_snn_device("loihi", overrides)
    assert_clean(info.value, "snn/loihi.yaml", *needles)


def test_snn_spec(tmp_path):
    s = load_spec(write(tmp_path, spec_tree(
        base={"snn_device": "loihi"},
        fields={"structure.neurons_per_core": [256, 1024],
                "costs.events.synop.energy": {"low": "10 pJ", "high": "40 pJ", "levels": 2}},
        workloads=[{"name": "l", "snn": "lenet", "timesteps": 8}])))
    assert s.base_kind == "snn_device" and s.workloads[0].params == {
        "model": "lenet", "timesteps": 8, "mapper": "greedy"}
    pts = st.points(s)
    assert len(pts) == 4
    assert check_point(s, pts[-1]).costs.events["synop"].energy == pytest.approx(4e-11)


# ------------------------------------------------------------------ example specs

@pytest.mark.parametrize("path", sorted(SWEEPS.glob("*.yaml")), ids=lambda p: p.name)
def test_example_spec_loads_and_every_point_is_an_arch(path):
    if "nsga2" in path.read_text():
        pytest.importorskip("optuna")
    s = load_spec(path)
    assert path.read_text().startswith("#")                  # the header says what it shows
    if s.strategy.kind == "nsga2":
        pts = st.Adaptive(s).ask(s.strategy.population)
        assert s.strategy.samples <= 40
    else:
        pts = st.points(s)
        assert len(pts) * len(s.workloads) <= 40
    for p in pts + st.neighbours(s, pts[0]):
        check_point(s, p)


def test_the_required_examples_ship():
    names = {p.stem for p in SWEEPS.glob("*.yaml")}
    assert {"rngd-decode", "systolic-resnet50", "pim-decode", "snn-loihi",
            "rngd-nsga2"} <= names


# ----------------------------------------------------------------------- bad input

def with_field(path, value):
    return spec_tree(fields={path: value})


BAD = [
    ("top-key", spec_tree(feilds={}), ("feilds: unknown key", "did you mean 'fields'")),
    ("missing", spec_tree(objectives=None), ("objectives: missing",)),
    ("not-a-mapping", [1, 2], ("expected a mapping",)),
    ("base", spec_tree(base="rngdd"), ("base:", "did you mean 'rngd'")),
    ("base-snn", spec_tree(base="loihi"), ("base:", "{snn_device: loihi}")),
    ("base-path", spec_tree(base="~nouser/arch.yaml"), ("base:", "no such arch file")),
    ("base-snn-path", spec_tree(base={"snn_device": "nope/dev.yaml"}),
     ("base.snn_device:", "no such device file")),
    ("base-snn-name", spec_tree(base={"snn_device": "loihii"}),
     ("base:", "did you mean 'loihi'")),
    ("set-field", spec_tree(set={"dram.bandwith": "1 GB/s"}),
     ("set.dram.bandwith:", "unknown field 'dram.bandwith'", "did you mean 'bandwidth'")),
    ("set-together", spec_tree(set={"power.tdp": "3 W", "power.idle": "5 W"}),
     ("set:", "power.idle")),
    ("field-unknown", with_field("cores.sramm", ["1 MiB"]),
     ("fields.cores.sramm[0]:", "unknown field 'cores.sramm'", "did you mean 'sram'")),
    ("field-unit", with_field("cores.sram", {"low": "1 GHz", "high": "2 GHz", "levels": 2}),
     ("fields.cores.sram.low:", "expected a size")),
    ("field-negative", with_field("cores.count", [4, -1]),
     ("fields.cores.count[1]:", "greater than 0")),
    ("field-absurd", with_field("dram.bandwidth", ["1e30 TB/s"]),
     ("fields.dram.bandwidth[0]:", "range")),
    ("range-order", with_field("cores.sram", {"low": "2 MiB", "high": "1 MiB", "levels": 2}),
     ("fields.cores.sram:", "swap them")),
    ("range-kinds", with_field("cores.sram", {"low": "1 MiB", "high": "1 GB/s", "levels": 2}),
     ("fields.cores.sram:", "different kinds")),
    ("range-mixed", with_field("cores.sram", {"low": 1, "high": "1 MiB", "levels": 2}),
     ("fields.cores.sram:", "mix a plain number and a quantity")),
    ("range-unit", with_field("cores.sram", {"low": "1 furlong", "high": "2 MiB",
                                             "levels": 2}),
     ("fields.cores.sram.low:", "unknown unit")),
    ("range-choice", with_field("cores.engine.dataflow", {"low": "os", "high": "ws"}),
     ("fields.cores.engine.dataflow.low:", "list choices instead")),
    ("range-key", with_field("cores.sram", {"low": "1 MiB", "hi": "2 MiB"}),
     ("fields.cores.sram.hi: unknown key", "did you mean 'high'")),
    ("range-log", with_field("cores.sram", {"low": "0 B", "high": "2 MiB", "scale": "log",
                                            "levels": 2}), ("needs low > 0",)),
    ("levels", with_field("cores.sram", {"low": "1 MiB", "high": "2 MiB"}),
     ("fields.cores.sram:", "needs levels")),
    ("empty-grid", with_field("cores.sram", []), ("fields.cores.sram:", "empty grid")),
    ("grid-cap", spec_tree(fields={
        "dram.bandwidth": {"low": "1 GB/s", "high": "9 GB/s", "levels": 1000},
        "cores.vector.ops_per_cycle": {"low": 1, "high": 9, "levels": 1000}}),
     ("fields:", "100,000 points", "lhs")),
    ("listed-twice", with_field("cores.sram", ["1 MiB", "1 MiB"]), ("listed twice",)),
    ("linked-length", with_field("cores.engine.rows", {"values": [8, 16],
                                                      "with": {"cores.engine.cols": [8]}}),
     ("fields.cores.engine.rows.with.cores.engine.cols:", "one per value")),
    ("set-and-field", spec_tree(set={"cores.sram": "1 MiB"}), ("also fixed under set",)),
    ("workload-kind", spec_tree(workloads=[{"name": "x", "lm": "tiny-llama"}]),
     ("workloads[0]:", "exactly one workload kind")),
    ("workload-key", spec_tree(workloads=[{"llm": "tiny-llama", "phase": "decode",
                                           "btach": 2}]),
     ("workloads[0].btach: unknown key", "did you mean 'batch'")),
    ("workload-model", spec_tree(workloads=[{"llm": {"phase": "decode"}}]),
     ("workloads[0].model: missing",)),
    ("workload-model-name", spec_tree(workloads=[{"llm": "lama-3.1-8b", "phase": "decode"}]),
     ("workloads[0].model:", "did you mean 'llama-3.1-8b'")),
    ("workload-phase", spec_tree(workloads=[{"llm": "tiny-llama", "phase": "decod"}]),
     ("workloads[0].phase:", "did you mean 'decode'")),
    ("workload-seq", spec_tree(workloads=[{"llm": "tiny-llama", "phase": "decode",
                                           "seq": 8}]), ("takes kv_len, not seq",)),
    ("workload-batch", spec_tree(workloads=[{"llm": "tiny-llama", "phase": "decode",
                                             "batch": 0}]), ("workloads[0].batch:",)),
    ("workload-onnx", spec_tree(workloads=[{"onnx": "nowhere/m.onnx"}]),
     ("workloads[0].path:", "no such file")),
    ("workload-graph", spec_tree(workloads=[{"graph": "resnet"}]),
     ("workloads[0].graph:", "did you mean 'resnet50'")),
    ("workload-precision", spec_tree(workloads=[{"graph": "resnet50", "precision": "int3"}]),
     ("workloads[0].precision:",)),
    ("workload-parallel", spec_tree(workloads=[{"llm": "tiny-llama", "phase": "decode",
                                                "parallel": "tp=0"}]),
     ("workloads[0].parallel:", "tp=N,pp=M")),
    ("workload-dup", spec_tree(workloads=[{"name": "a", "graph": "resnet50"},
                                          {"name": "a", "graph": "bert-large"}]),
     ("workloads[1].name:", "its own name")),
    ("workload-snn-on-arch", spec_tree(workloads=[{"snn": "lenet", "timesteps": 4}]),
     ("workloads[0]:", "snn_device")),
    ("workload-llm-on-snn", spec_tree(base={"snn_device": "loihi"},
                                      fields={"structure.chips": [1, 2]}),
     ("workloads[0]:", "NPU arch")),
    ("workloads-empty", spec_tree(workloads=[]), ("workloads:", "expected a list")),
    ("objective", spec_tree(objectives=["latency"]),
     ("objectives[0]:", "did you mean 'latency_s'", "tokens_per_s")),
    ("objective-goal", spec_tree(objectives=[{"latency_s": "minimum"}]),
     ("objectives[0].latency_s:", "min, max")),
    ("objective-twice", spec_tree(objectives=["latency_s", {"latency_s": "max"}]),
     ("listed twice",)),
    ("constraint-metric", spec_tree(constraints={"power": {"max": "10 W"}}),
     ("constraints.power:", "did you mean 'power_w'")),
    ("constraint-unit", spec_tree(constraints={"power_w": {"max": "10 MiB"}}),
     ("constraints.power_w.max:", "expected a power")),
    ("constraint-area-unit", spec_tree(constraints={"area_mm2": {"max": "10 W"}}),
     ("constraints.area_mm2.max:", "mm^2")),
    ("constraint-bound", spec_tree(constraints={"power_w": {"most": "10 W"}}),
     ("constraints.power_w.most: unknown key",)),
    ("strategy-kind", spec_tree(strategy={"kind": "lhc", "samples": 4}),
     ("strategy.kind:", "did you mean 'lhs'")),
    ("strategy-samples", spec_tree(strategy={"kind": "random", "samples": 0}),
     ("strategy.samples:", "1 ..")),
    ("strategy-no-samples", spec_tree(strategy={"kind": "lhs"}), ("strategy.samples: missing",)),
    ("strategy-seed", spec_tree(strategy={"kind": "random", "samples": 2, "seed": -1}),
     ("strategy.seed:",)),
    ("strategy-key", spec_tree(strategy={"kind": "grid", "samples": 2}),
     ("strategy.samples:", "only random, lhs and nsga2 take samples")),
    ("sensitivity", spec_tree(sensitivity="yes"), ("sensitivity:", "true or false")),
    ("cost", spec_tree(cost={"per_mm": 1}), ("cost.per_mm: unknown key",
                                             "did you mean 'per_mm2'")),
    ("cost-value", spec_tree(cost={"per_mm2": -1}), ("cost.per_mm2:", ">= 0")),
]


@pytest.mark.parametrize("tree, needles", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_spec_is_one_clear_line(tmp_path, tree, needles):
    bad(tmp_path, tree, *needles)


@pytest.mark.parametrize("text, needles", [
    ("", ("empty",)),
    ("base: edu\nbase: rngd\n", ("duplicate key 'base'",)),
    ("fields: [1, 2\n", ("malformed YAML",)),
    ("- just\n- a list\n", ("expected a mapping",)),
], ids=["empty", "duplicate-key", "malformed", "list"])
def test_bad_spec_text(tmp_path, text, needles):
    bad(tmp_path, text, *needles)


def test_missing_spec_file(tmp_path):
    with pytest.raises(NpusimError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert_clean(info.value, "nope.yaml")


def test_nsga2_without_optuna(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)       # import optuna raises ImportError
    bad(tmp_path, spec_tree(strategy={"kind": "nsga2"}), "strategy.kind:",
        'pip install "npusim[sweep]"')


def test_metrics_vocabulary():
    assert set(METRICS) == {
        "latency_s", "tokens_per_s", "inferences_per_s", "ttft_s", "tpot_s", "energy_j",
        "energy_per_token_j", "power_w", "perf_per_w", "area_mm2", "perf_per_mm2", "cost",
        "sram_bytes", "dram_bytes", "dram_need_bytes", "utilisation", "tdp_w"}
    assert all(goal in ("min", "max") and unit and meaning
               for unit, goal, meaning in METRICS.values())
    assert MAX_POINTS == 100_000


# ------------------------------------------------------------------------------- fuzz

JUNK = hs.recursive(
    hs.none() | hs.booleans() | hs.integers(-10 ** 30, 10 ** 30) | hs.floats()
    | hs.sampled_from(["", "1 MiB", "3 TB/s", "-1 GB", "nan", "1e999 B", "os", "grid", "lhs",
                       "nsga2", "max", "min", "decode", "edu", "rngd", "tiny-llama",
                       "latency_s", "power_w", "1 GHz", "10 W", "0", "[1", "{a: 1}", "x" * 300,
                       "~nouser/m.onnx", "a\x00b.onnx", "lenet", "resnet50", "../x.yaml"])
    | hs.text(max_size=12),
    lambda inner: hs.lists(inner, max_size=4) | hs.dictionaries(
        hs.sampled_from(["low", "high", "levels", "scale", "integer", "values", "with", "kind",
                         "samples", "seed", "max", "min", "name", "llm", "phase", "batch",
                         "model", "cores.sram", "snn_device", "onnx", "graph", "kperf", "snn",
                         "timesteps", "path", "dims", "users"]) | hs.text(max_size=8),
        inner, max_size=4),
    max_leaves=8)
KEYS = ["name", "base", "set", "fields", "workloads", "objectives", "constraints", "strategy",
        "sensitivity", "cost", "bogus"]


@settings(max_examples=150, deadline=None)
@given(key=hs.sampled_from(KEYS), sub=hs.integers(0, 3), junk=JUNK)
def test_fuzz_spec_mappings_parse_or_fail_cleanly(key, sub, junk):
    """A valid spec with one part replaced by junk (top level, or one level down) parses or
    raises a one-line NpusimError, never another exception."""
    tree = copy.deepcopy(spec_tree())
    node = tree.get(key)
    if isinstance(node, dict) and node and sub:
        inner = list(node)[sub % len(node)]
        node[inner] = junk
    elif isinstance(node, list) and node and sub:
        node[sub % len(node)] = junk
    else:
        tree[key] = junk
    try:
        parse(tree)
    except NpusimError as exc:
        assert_clean(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])
@given(junk=JUNK)
def test_fuzz_whole_spec_files(tmp_path, junk):
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump(junk))
    try:
        load_spec(path)
    except NpusimError as exc:
        assert_clean(exc)


def test_fuzz_corpus_specs_fail_cleanly(tmp_path):
    """The fuzzing benchmark's sweep-spec corpus, through load_spec (what `npusim sweep` reads
    first): every certainly-invalid spec is one clean line, none crashes."""
    import importlib.util
    import random
    path = ROOT / "benchmarks" / "fuzz_cases" / "sweep_spec.py"
    module_spec = importlib.util.spec_from_file_location("fuzz_sweep_spec", path)
    corpus = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(corpus)
    seen = set()
    for label, argv, must_fail in corpus.cases(tmp_path, random.Random(7), 80):
        assert argv[0] == "sweep" and argv[2] == "--out"
        seen.add(label)
        try:
            load_spec(argv[1])
        except NpusimError as exc:
            assert_clean(exc)
        else:
            assert not must_fail, (label, Path(argv[1]).read_text(errors="replace")[:300])
    assert len(seen) >= 6
