"""Arch numbers out of range, links missing from multi-chip systems, TDPs that cannot hold.

One regression test per class of bad input (each found by hand or by fuzzing), hand-computed
cases for the DRAM model's refresh catch-up and the TDP cap, and hypothesis fuzz tests over
arch fields, override strings, energy tables, DRAM presets and arch files.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from importlib.resources import files

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from npusim import simulate
from npusim.arch import list_archs, load_arch
from npusim.arch.dram_timing import SCHEMA as DRAM_SCHEMA
from npusim.arch.dram_timing import build_dram_timing, dram_presets, load_dram_timing
from npusim.arch.loader import MAX_YAML_DEPTH, parse_yaml
from npusim.arch.model import FrozenMap
from npusim.arch.schema import SCHEMA, F, S, iter_fields
from npusim.arch.units import KINDS
from npusim.energy import build_energy_table, load_energy_table
from npusim.energy.table import SCHEMA as ENERGY_SCHEMA
from npusim.engine import dram as ed
from npusim.engine.simulate import _power_capped
from npusim.errors import ArchError
from npusim.ir import BF16, Collective, Graph, Role, Tensor
from npusim.kernels import dram as kd

NS = 1e-9
SHIPPED = [name for name, _ in list_archs()]
NUMERIC = ("count", "number", "dtype_rates", "dtype_energy", "per_byte", "per_bit", *KINDS)


def clean(code: int, err: str) -> bool:
    return (code == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err
            and "Traceback" not in err)


def _leaves(root: S) -> list[tuple[str, F]]:
    return [(d, f) for d, f in iter_fields(root) if isinstance(f, F)]


def _arch_tree():
    return parse_yaml(files("npusim.archs").joinpath("edu.yaml").read_text(), "edu.yaml")


# ------------------------------------------------------------------- the schemas themselves
@pytest.mark.parametrize("root", [SCHEMA, ENERGY_SCHEMA, DRAM_SCHEMA],
                         ids=["arch", "energy", "dram"])
def test_every_numeric_field_has_a_documented_range_and_meaning(root):
    for dotted, spec in iter_fields(root):
        assert spec.doc, f"{dotted}: no meaning for the reference"
        if isinstance(spec, S) or spec.kind not in NUMERIC:
            continue
        assert spec.lo is not None and spec.hi is not None and spec.why, dotted
        lo, hi = spec.bounds()
        assert 0 <= lo < hi < math.inf, dotted


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_archs_tables_and_calibrations_lie_within_the_ranges(name):
    arch = load_arch(name)                       # with its calibration file, if any
    load_arch(name, calibrated=False)
    load_energy_table(arch)
    for preset in dram_presets():
        load_dram_timing(preset)


# ------------------------------------------------------------------- out-of-range overrides
@pytest.mark.parametrize("override, field, allowed", [
    ("dram.row_size=1e300 MiB", "dram.row_size", "1 B .. 1 MiB"),
    ("dram.burst=1e-300 MiB", "dram.burst", "1 B .. 64 KiB"),
    ("cores.count=99999999999999999999", "cores.count", "1 .. 1e+06"),
    ("dram.channels=9223372036854775808", "dram.channels", "1 .. 2048"),
    ("dram.bandwidth=1 B/s", "dram.bandwidth", "1 MB/s .. 1000 TB/s"),
    ("clock=1e200 GHz", "clock", "1 MHz .. 20 GHz"),
    ("clock=0.5 Hz", "clock", "1 MHz .. 20 GHz"),
    ("power.tdp=1e9 W", "power.tdp", "1 mW .. 100 kW"),
    ("link.bandwidth=1 B/s", "link.bandwidth", "1 MB/s .. 1000 TB/s"),
    ("link.latency=2 s", "link.latency", "0 s .. 1 s"),
    ("cores.engine.macs_per_cycle.bf16=1e9", "cores.engine.macs_per_cycle", "0.001 .. 1e+08"),
    ("cores.vector.ops_per_cycle=1e300", "cores.vector.ops_per_cycle", "0.001 .. 1e+07"),
    ("dma.bytes_per_cycle=1e-9", "dma.bytes_per_cycle", "0.001 .. 1048576"),
])
def test_out_of_range_override_names_field_value_range_and_fix(override, field, allowed):
    with pytest.raises(ArchError) as err:
        load_arch("edu", [override])
    msg = str(err.value)
    assert msg.startswith("edu.yaml: " + field), msg
    assert f"the allowed range is {allowed}" in msg and "give a value in that range" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("override, needle", [
    ("cores.engine.efficiency.bf16=0", "must be greater than 0"),
    ("dma.startup_cycles=-1", "must not be negative"),
    ("cores.sram=-1 KiB", "must not be negative"),
    ("cores.count=.nan", "not a finite number"),
    ("cores.count=.inf", "not a finite number"),
    ("dma.bytes_per_cycle=-.inf", "not a finite number"),
    ("clock=1e400 GHz", "not finite"),
    ("clock=nan GHz", "not a number followed by a unit"),
    ("cores.count=" + "9" * 5000, "must be a whole number"),
    ("dram.bandwidth=1 B/0", "unknown unit"),
    ("dram.bandwidth=1 (B", "unknown unit"),
    ("dram.bandwidth=1 B*", "unknown unit"),
    ("dram.bandwidth=1 s**-0", "unknown unit"),
    ("dram.bandwidth=1 B**99", "unknown unit"),
    ("dram.bandwidth=1" + " " * 5000 + "B/s", "not a number followed by a unit"),
    ("dram.bandwidth=[[[[1]]]]", "not a number followed by a unit"),
], ids=lambda x: x[:40] if isinstance(x, str) else None)
def test_non_finite_and_malformed_values_are_one_clear_error(override, needle):
    with pytest.raises(ArchError, match=needle) as err:
        load_arch("edu", [override])
    assert "\n" not in str(err.value) and len(str(err.value)) < 600


def test_plain_numbers_written_with_an_exponent_are_numbers():
    a = load_arch("edu", ["dma.startup_cycles=1e3", "cores.count=1e2"])
    assert a.dma.startup_cycles == 1000.0 and a.cores.count == 100


@pytest.mark.parametrize("text, needle", [
    ("name: " + "[" * 100000 + "]" * 100000 + "\n", "nests more than"),
    ("- " * 100000 + "x\n", "nests more than"),
    ("clock: " + "9" * 5000 + "\n", "cannot be read"),
    ("# pad\n" * 200000, "far more than an arch description"),
], ids=["flow-nesting", "block-nesting", "huge-int", "huge-file"])
def test_pathological_yaml_files_are_refused_before_parsing(tmp_path, text, needle):
    p = tmp_path / "deep.yaml"
    p.write_text(text)
    with pytest.raises(ArchError, match=needle):
        load_arch(p)
    assert MAX_YAML_DEPTH >= 8     # arch files nest four levels deep


def test_calibration_values_are_validated_like_the_arch(tmp_path):
    src = tmp_path / "mychip.yaml"
    src.write_text(files("npusim.archs").joinpath("edu.yaml").read_text()
                   .replace("name: edu", "name: mychip", 1))
    cal = tmp_path / "mychip.calibration.yaml"
    cal.write_text("arch: mychip\nfitted:\n  launch_overhead: {value: 1e300 s}\n")
    with pytest.raises(ArchError, match=r"mychip\.yaml: launch_overhead .*allowed range"):
        load_arch(src)
    cal.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(ArchError, match="cannot read the calibration file"):
        load_arch(src)


# ------------------------------------------------------------------- every --set X=null
def _null_expectations():
    for dotted, spec in iter_fields():
        ok = spec.nullable or (isinstance(spec, F) and spec.kind in ("dtype_map", "dtype_rates")
                               and dotted != "cores.engine.macs_per_cycle")
        if dotted.startswith("pim."):
            # edu has no pim section: an override inside it starts one, which then lacks
            # its other required fields (the error names the first of them, in pim)
            ok = False
        yield pytest.param(dotted, ok, id=dotted)


@pytest.mark.parametrize("dotted, ok", list(_null_expectations()))
def test_every_null_override_runs_or_is_one_clean_error(cli, dotted, ok):
    code, out, err = cli("run", "tiny-llama", "--phase", "decode", "--kv-len", "16",
                         "--arch", "edu", "--set", f"{dotted}=null")
    if ok:
        assert code == 0, err
    else:
        assert clean(code, err), err
        assert (dotted if not dotted.startswith("pim.") else "pim.") in err


# ------------------------------------------------------------------- the DRAM model
HAND = dict(tBURST=100, tCCD_S=2, tCCD_L=3, tRCD=10, tRP=10, tRAS=20, tRC=30, tCL=10, tWL=5,
            tRTP=4, tWR=6, tWTR_S=3, tWTR_L=4, tRTW=1, tRRD_S=2, tRRD_L=4, tFAW=20,
            tREFI=10, tRFC=2, tREF0=5)


def _timing(**ns) -> np.ndarray:
    t = np.zeros(kd.N_TIMING)
    for name, value in ns.items():
        t[kd.TIMING_NAMES.index(name)] = value * NS
    return t


def _one_bank(t: np.ndarray, nbytes: int):
    f, s = kd.address_map(1, 1, 1, 64, 1024, 64)
    return (np.array([0], np.int64), np.array([nbytes], np.int64), np.zeros(1, np.bool_),
            np.array([1, 1, 1, 64], np.int64), f, s, t, 4)


@pytest.mark.parametrize("sim", [kd.simulate, kd.simulate_ref], ids=["kernel", "twin"])
def test_refreshes_caught_up_in_one_step_by_hand(sim):
    # Burst 0: ACT at 0, RD at tRCD = 10, data until 10 + tCL + tBURST = 120.
    # Burst 1 (same row): its RD may go at 10 + tBURST = 110 >= the refresh due at 5. The open
    # bank may precharge at max(tRAS, 10 + tRTP) = 20, so refresh 1 starts at 20 + tRP = 30,
    # ends at 32 and closes the row; the next are due at 15 and 25, both before the ACT the
    # row now needs at 32: two more in one step (the last ending at 27 < 32). The ACT goes at
    # 32, the RD at max(110, 32 + tRCD) = 110, data until 110 + 10 + 100 = 220.
    stats, _ = sim(*_one_bank(_timing(**HAND), 128))
    assert stats[kd.S_REFRESHES] == 3
    assert stats[kd.S_TIME] == pytest.approx(220 * NS, rel=1e-12)
    assert stats[kd.S_ACTIVATIONS] == 2 and stats[kd.S_ROW_HITS] == 0


def test_a_very_slow_channel_costs_no_more_work_than_a_fast_one():
    # 1000 s per burst against a 10 ns refresh interval: 1e11 refreshes fall during the run.
    # One at a time that never finishes (in the twin it would take days); caught up in one
    # step per burst it is as quick as any stream. Kernel and twin agree exactly.
    t = _timing(**{**HAND, "tBURST": 1000e9})
    case = _one_bank(t, 64 * 8)
    stats, busy = kd.simulate(*case)
    stats_ref, busy_ref = kd.simulate_ref(*case)
    np.testing.assert_array_equal(stats, stats_ref)
    np.testing.assert_array_equal(busy, busy_ref)
    # refreshes are taken while the controller waits for the queue (up to the last burst's
    # arrival), at most one per tREFI of the whole run
    assert 1e11 < stats[kd.S_REFRESHES] <= stats[kd.S_TIME] / (10 * NS) + 1


@pytest.mark.parametrize("sim", [kd.simulate, kd.simulate_ref], ids=["kernel", "twin"])
def test_kernel_refuses_a_refresh_longer_than_its_interval(sim):
    with pytest.raises(ValueError, match="tRFC"):
        sim(*_one_bank(_timing(**{**HAND, "tRFC": 10}), 64))


@pytest.mark.parametrize("overrides", [
    ["dram.bandwidth=1 MB/s"], ["dram.bandwidth=1000 TB/s"],
    ["dram.bandwidth=1 MB/s", "dram.channels=2048"],
    ["dram.row_size=1 MiB", "dram.burst=1 B"], ["dram.row_size=64 KiB", "dram.burst=64 KiB"],
])
def test_dram_table_at_the_range_bounds_is_built(overrides):
    table = ed.dram_table(load_arch("edu", overrides), cache=False)
    for pattern, piece in (("seq", 2 ** 26), ("strided", 256), ("random", 64)):
        assert 0 < table.efficiency(pattern, piece, 2 ** 26) <= 1


def test_refresh_scaled_past_its_interval_is_an_arch_error():
    # tRFC in clock cycles scales up with a slower channel; tREFI in ns does not
    preset = load_dram_timing("ddr4")
    time_s = {k: v for k, v in preset.time_s.items() if k != "tRFC"}
    slow = dataclasses.replace(preset, time_s=FrozenMap(time_s),
                               cycles=FrozenMap({**preset.cycles, "tRFC": 560.0}))
    with pytest.raises(ArchError, match=r"edu\.yaml: dram\.bandwidth: .*tRFC.*tREFI"):
        ed.dram_setup(load_arch("edu", ["dram.bandwidth=1 MB/s"]), slow)


def _preset_tree():
    return parse_yaml(files("npusim.archs").joinpath("dram", "hbm3.yaml").read_text(),
                      "x.yaml")


@pytest.mark.parametrize("section, key, value, field", [
    ("timing", "tRP", "1e400 nCK", "timing.tRP"),
    ("timing", "tRP", "2 s", "timing.tRP"),
    ("geometry", "bank_groups", 64, "geometry.bank_groups"),
    ("controller", "queue_depth", 10 ** 6, "controller.queue_depth"),
    ("geometry", "row_size", "1e300 MiB", "geometry.row_size"),
])
def test_dram_preset_out_of_range_names_file_and_field(section, key, value, field):
    tree = _preset_tree()
    tree[section][key] = value
    with pytest.raises(ArchError, match=rf"x\.yaml: {field}.*allowed range"):
        build_dram_timing(tree, "x.yaml")


# ------------------------------------------------------------------- power and the TDP
def test_tdp_below_static_power_is_refused_naming_both_files():
    # a100: a table with a static power and no loaded floor (rngd's now gives one, issue 13)
    with pytest.raises(ArchError) as err:
        load_energy_table(load_arch("a100", ["power.tdp=0.001 W"]))
    msg = str(err.value)
    assert msg.startswith("a100.yaml: power.tdp: 0.001 W") and "energy/a100.yaml" in msg
    assert "static" in msg and "set power.tdp above 120 W" in msg


def test_tdp_equal_to_idle_is_refused():
    with pytest.raises(ArchError, match=r"power\.idle: 1 W equals power\.tdp 1 W"):
        load_arch("edu", ["power.tdp=1 W"])


def test_tdp_cli_regression(cli):
    code, _, err = cli("run", "tiny-llama", "--arch", "rngd", "--set", "power.tdp=0.001W")
    assert clean(code, err) and "power.tdp" in err


def test_power_cap_by_hand():
    # 2 J in 1 s at 1 W static is 3 W; a 2 W cap leaves 1 W for 2 J: 2 s, a 100 % slowdown
    # (latency, slowdown, factor on on-chip energy: 1 without DVFS)
    assert _power_capped(1.0, 2.0, 1.0, 2.0) == (2.0, 1.0, 1.0)
    assert _power_capped(1.0, 0.5, 1.0, 2.0) == (1.0, 0.0, 1.0)     # fits: unchanged
    assert _power_capped(0.0, 2.0, 1.0, 2.0) == (2.0, 2.0, 1.0)     # no time: 2 s added
    assert _power_capped(1.0, 2.0, 1.0, None) == (1.0, 0.0, 1.0)    # no cap


@settings(max_examples=8, deadline=None)
@given(arch=st.sampled_from(["edu", "rngd", "atom"]), factor=st.floats(1.001, 3.0),
       phase=st.sampled_from(["prefill", "decode"]))
def test_average_power_never_exceeds_the_tdp(arch, factor, phase):
    floor = load_energy_table(load_arch(arch)).floor_w     # the power charged doing nothing
    tdp = floor * factor
    kw = dict(seq=32) if phase == "prefill" else dict(kv_len=32, batch=2)
    r = simulate("tiny-llama", arch, overrides={"power.tdp": f"{tdp!r} W"}, phase=phase, **kw)
    assert r.avg_power_w <= tdp * (1 + 1e-9)


# ------------------------------------------------------------------- multi-chip without a link
def _all_reduce(group: int) -> Graph:
    g = Graph("ar")
    x = Tensor("x", (1024,), BF16, Role.ACTIVATION)
    y = Tensor("y", (1024,), BF16, Role.ACTIVATION)
    g.add(Collective(name="ar", func="all_reduce", group=group, payload_bytes=2048.0,
                     inputs=(x,), outputs=(y,)))
    return g


@pytest.mark.parametrize("engine", ["tile", "roofline"])
def test_two_chips_without_a_link_is_an_arch_error_before_costing(engine):
    with pytest.raises(ArchError) as err:
        simulate(_all_reduce(2), "systolic-128", engine=engine)
    msg = str(err.value)
    assert msg.startswith("systolic-128.yaml: link: is null") and "2 chips" in msg
    assert "op ar: all_reduce across 2 chips" in msg
    # one chip needs no link; an arch with one times the collective
    assert simulate(_all_reduce(1), "systolic-128", engine=engine).latency_s >= 0
    assert simulate(_all_reduce(2), "edu", engine=engine).latency_s > 0


def test_require_link():
    assert load_arch("systolic-128").require_link(1) is None
    assert load_arch("edu").require_link(8).bandwidth == 16e9
    with pytest.raises(ArchError, match=r"edu\.yaml: link: is null.*3 chips"):
        load_arch("edu", ["link=null"]).require_link(3)


def test_kperf_two_chips_with_link_null_is_one_clean_error(cli, tmp_path):
    code, _, err = cli("kperf", "--arch", "edu", "--model", "tiny-llama", "--chips", "2",
                       "--set", "link=null", "--input-lens", "16", "--output-lens", "4",
                       "--users", "1", "--out", str(tmp_path / "k"))
    assert clean(code, err), err
    assert "link: is null" in err and "2 chips" in err and "AttributeError" not in err


# ------------------------------------------------------------------- fuzz
_NUMBERS = st.one_of(
    st.sampled_from(["1e300", "1e-300", "-1e300", "0", "-0", "5e-324", "nan", "inf", "-inf",
                     ".nan", ".inf", "-.inf", "null", "~", "", "-1", str(2 ** 63),
                     str(2 ** 64), str(10 ** 30), "9" * 5000, "[1]", "{a: 1}", "true"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70).map(str),
    st.builds(lambda m, e: f"{m}e{e}", st.integers(1, 9), st.integers(-320, 320)),
)
_UNITS = st.sampled_from(["", " B", "B", " KiB", " MiB", " TiB", " GB/s", " B/s", " PB/s",
                          " GHz", " MHz", " Hz", " ns", " s", " W", " mW", " kW", " pJ", " nJ",
                          " B/cycle", " nCK", " pJ/bit", " pJ/B", " furlong", " B/0", " (B",
                          " b/s", " KB"])
_VALUES = st.builds(lambda n, u: n + u, _NUMBERS, _UNITS)
_ARCH_LEAVES = [(d, f) for d, f in _leaves(SCHEMA) if f.kind in NUMERIC]


def _value_at(tree: dict, dotted: str):
    node = tree
    for part in dotted.split("."):
        if node is None:       # inside an optional section the arch does not have (pim)
            return None
        node = node[part]
    return node


def _in_range(spec: F, value) -> bool:
    if value is None:
        return spec.nullable
    lo, hi = spec.bounds()
    values = value.values() if isinstance(value, dict) else [value]
    return all(lo <= v <= hi for v in values)


@settings(max_examples=300, deadline=None)
@given(leaf=st.sampled_from(_ARCH_LEAVES), dtype=st.sampled_from(["bf16", "int8"]),
       value=_VALUES)
def test_fuzz_arch_field_values_load_in_range_or_raise_naming_the_field(leaf, dtype, value):
    dotted, spec = leaf
    target = f"{dotted}.{dtype}" if spec.kind == "dtype_rates" else dotted
    try:
        arch = load_arch("edu", [f"{target}={value}"])
    except ArchError as e:
        msg = str(e)
        assert "\n" not in msg and msg.startswith("edu.yaml") and len(msg) < 1000
        return
    assert _in_range(spec, _value_at(arch.to_dict(), dotted)), (target, value)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(leaf=st.sampled_from(_ARCH_LEAVES), value=_VALUES,
       engine=st.sampled_from(["tile", "roofline"]))
def test_fuzz_override_strings_end_to_end(cli, leaf, value, engine):
    dotted, spec = leaf
    target = f"{dotted}.bf16" if spec.kind == "dtype_rates" else dotted
    code, _, err = cli("run", "tiny-llama", "--phase", "decode", "--kv-len", "16", "--arch",
                       "edu", "--engine", engine, "--set", f"{target}={value}")
    assert code == 0 or clean(code, err), err


_ENERGY_LEAVES = [(d, f) for d, f in _leaves(ENERGY_SCHEMA) if f.kind in NUMERIC]


def _energy_tree():
    return parse_yaml(files("npusim.archs").joinpath("energy", "edu.yaml").read_text(),
                      "t.yaml")


@settings(max_examples=150, deadline=None)
@given(leaf=st.sampled_from(_ENERGY_LEAVES), value=_VALUES)
@example(leaf=next(x for x in _ENERGY_LEAVES if x[0] == "loaded_floor"), value="null")
def test_fuzz_energy_table_fields(leaf, value):
    dotted, spec = leaf
    tree = _energy_tree()
    node = tree
    *parents, last = dotted.split(".")
    for part in parents:
        if node[part] is None:                 # edu has no shared SRAM: give it a section
            node[part] = {"read": "1 pJ/B", "write": "1 pJ/B"}
        node = node[part]
    if spec.kind == "dtype_energy":
        node[last] = {"bf16": parse_override(value)}
    else:
        node[last] = parse_override(value)
    try:
        table = build_energy_table(tree, "t.yaml")
    except ArchError as e:
        assert "\n" not in str(e) and str(e).startswith("t.yaml: ")
        return
    # an optional part set to null is left out of the dict, as a table without it
    got = table.to_dict().get(dotted.replace(".", "_") if "." in dotted else dotted)
    values = got.values() if isinstance(got, dict) else [got]
    # energies are below a microjoule; powers (static, idle, loaded_floor) below 100 kW;
    # plain numbers (overhead, DVFS) within their own limits
    assert all(v is None or 0 <= v <= 1e-6 or (spec.kind == "power" and v <= 1e5)
               or (spec.kind == "number" and v <= 100) for v in values), (dotted, value)


def parse_override(text: str):
    """A value as the CLI would hand it over (a YAML scalar)."""
    from npusim.arch.loader import _parse_override_value
    return _parse_override_value(text)


_DRAM_LEAVES = [(d, f) for d, f in _leaves(DRAM_SCHEMA) if f.kind in NUMERIC]


@settings(max_examples=150, deadline=None)
@given(leaf=st.one_of(st.sampled_from(_DRAM_LEAVES),
                      st.sampled_from(["tRCD", "tREFI", "tRFC", "tCCD_S"])),
       value=_VALUES)
def test_fuzz_dram_preset_fields(leaf, value):
    tree = _preset_tree()
    if isinstance(leaf, str):
        tree["timing"][leaf] = parse_override(value)
        spec = None
    else:
        dotted, spec = leaf
        node = tree
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = parse_override(value)
    try:
        preset = build_dram_timing(tree, "x.yaml")
    except ArchError as e:
        assert "\n" not in str(e) and str(e).startswith("x.yaml: ")
        return
    if spec is not None and spec.bounds() is not None:
        assert _in_range(spec, _value_at(_preset_values(preset), leaf[0]))
    t = preset.timings_at(1.0)
    assert all(0 <= v <= 1.0 for v in t.values()) and t["tRFC"] < t["tREFI"]


def _preset_values(p) -> dict:
    return {"clock": p.clock, "pin_rate": p.pin_rate / 8.0,
            "geometry": {"bus_width": p.bus_width, "burst_length": p.burst_length,
                         "burst": p.burst, "bank_groups": p.bank_groups,
                         "banks_per_group": p.banks_per_group, "row_size": p.row_size,
                         "interleave": p.interleave},
            "controller": {"queue_depth": p.queue_depth}}


_ARCH_TEXT = files("npusim.archs").joinpath("edu.yaml").read_text()


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(0, len(_ARCH_TEXT)), junk=st.binary(max_size=40),
       how=st.sampled_from(["truncate", "insert", "replace-line"]),
       line=st.integers(0, 60), value=_VALUES)
def test_fuzz_arch_files_load_or_raise_one_arch_error(tmp_path_factory, cut, junk, how, line,
                                                      value):
    text = _ARCH_TEXT
    if how == "truncate":
        data = text[:cut].encode()
    elif how == "insert":
        data = text[:cut].encode() + junk + text[cut:].encode()
    else:
        lines = text.splitlines()
        i = line % len(lines)
        key = lines[i].split(":", 1)[0] if ":" in lines[i] else "  x"
        lines[i] = f"{key}: {value}"
        data = "\n".join(lines).encode()
    p = tmp_path_factory.mktemp("arch") / "fuzz.yaml"
    p.write_bytes(data)
    try:
        arch = load_arch(p)
    except ArchError as e:
        assert "\n" not in str(e)
        return
    for dotted, spec in _ARCH_LEAVES:
        if spec.kind != "dtype_rates":
            value_ = _value_at(arch.to_dict(), dotted)
            assert value_ is None or _in_range(spec, value_), dotted


def test_fuzz_helpers_see_the_tree_they_edit():
    tree = copy.deepcopy(_arch_tree())
    assert _value_at(tree, "dram.bandwidth") == "25.6 GB/s"
