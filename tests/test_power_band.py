"""The K-Perf power band (issue 13 item 4): NPU energy tables' `ranges`, the band's columns, its
agreement with a re-simulation at the low edge, the power limit at the high edge, and the
power graphs."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npusim.arch import load_arch
from npusim.energy import load_energy_table
from npusim.energy.table import RANGED, build_energy_table
from npusim.arch.loader import parse_yaml
from npusim.errors import ArchError
from npusim.workloads import kperf as kp
from npusim.workloads.powerband import StepEnergy, has_band

ENERGY = Path(kp.__file__).resolve().parents[1] / "archs" / "energy"
SMALL = dict(users=(1, 4), input_lens=(32,), output_lens=(8,))
NPUS = ("rngd", "atom", "atom-max", "rebel-quad")


def _clean_error(code, err):
    return code == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err \
        and "Traceback" not in err


@pytest.fixture(scope="module")
def rngd_h100():
    return kp.kperf("rngd", "tiny-llama", vs=["h100"], **SMALL)


# ------------------------------------------------------------------------------ the tables

@pytest.mark.parametrize("arch", NPUS)
def test_npu_tables_give_every_assumed_part_a_range_around_its_value(arch):
    t = load_energy_table(load_arch(arch))
    assert set(t.ranges) == set(RANGED)
    for field, (lo, hi) in t.ranges.items():
        assert lo <= getattr(t, field) <= hi
    lo, hi = t.ranges["loaded_floor"]
    # the floor is never below the idle power the arch reads (where published)
    idle = load_arch(arch).power.idle
    assert idle is None or lo >= idle - 1e-9
    assert hi < load_arch(arch).power.tdp


def test_rngd_idle_is_the_furiosa_smi_reading():
    assert load_arch("rngd").power.idle == pytest.approx(37.5)     # (38 + 37) / 2, S4/S5


def test_atom_floor_range_stays_below_the_loaded_reading():
    # S6: a whole ATOM+ card drew 43.9 W at 98.7 % utilisation; its floor cannot be above that
    assert load_energy_table(load_arch("atom")).ranges["loaded_floor"][1] < 43.9


@pytest.mark.parametrize("arch", ("h100", "h200", "a100", "edu"))
def test_gpus_and_fitted_tables_have_no_band(arch):
    assert not has_band(load_arch(arch))


def test_a_set_field_drops_its_range():
    t = load_energy_table(load_arch("rngd", ["energy.dynamic_overhead=6"]))
    assert t.dynamic_overhead == 6.0 and "dynamic_overhead" not in t.ranges
    assert "loaded_floor" in t.ranges


def test_ranges_round_trip_through_to_dict():
    t = load_energy_table(load_arch("rngd"))
    d = t.to_dict()
    assert d["ranges"]["loaded_floor"] == [37.5, 77.0]
    assert "ranges" not in load_energy_table(load_arch("h100")).to_dict()


def _table_with(ranges_yaml: str) -> str:
    base = (ENERGY / "edu.yaml").read_text(encoding="utf-8")
    return base + "\nloaded_floor: 2 W\ndynamic_overhead: 2\n" + ranges_yaml


BAD_RANGES = {
    "not a mapping": ("ranges: 3\n", "ranges"),
    "empty": ("ranges: {}\n", "ranges"),
    "unknown field": ("ranges: {static: [1 W, 2 W]}\n", "ranges.static"),
    "not a pair": ("ranges: {loaded_floor: [1 W]}\n", "ranges.loaded_floor"),
    "three items": ("ranges: {loaded_floor: [1 W, 2 W, 3 W]}\n", "ranges.loaded_floor"),
    "wrong unit": ("ranges: {loaded_floor: [1 pJ, 3 W]}\n", "ranges.loaded_floor"),
    "negative": ("ranges: {loaded_floor: [-1 W, 3 W]}\n", "ranges.loaded_floor"),
    "reversed": ("ranges: {loaded_floor: [3 W, 1 W]}\n", "ranges.loaded_floor"),
    "central outside": ("ranges: {loaded_floor: [3 W, 4 W]}\n", "ranges.loaded_floor"),
    "no central": ("ranges: {operand_delivery: [0 pJ/bit, 1 pJ/bit]}\n",
                   "ranges.operand_delivery"),
    "overhead below 1": ("ranges: {dynamic_overhead: [0.5, 3]}\n", "ranges.dynamic_overhead"),
    "unit on a number": ("ranges: {dynamic_overhead: [1 W, 3]}\n", "ranges.dynamic_overhead"),
}


@pytest.mark.parametrize("case", sorted(BAD_RANGES))
def test_bad_ranges_are_one_clear_error(case):
    text, field = BAD_RANGES[case]
    with pytest.raises(ArchError) as e:
        build_energy_table(parse_yaml(_table_with(text), "t.yaml"), "t.yaml")
    msg = str(e.value)
    assert "t.yaml" in msg and field in msg and "\n" not in msg


def test_good_ranges_are_read_in_si_units():
    t = build_energy_table(parse_yaml(_table_with(
        "ranges: {loaded_floor: [1 W, 3 W], dynamic_overhead: [1, 4]}\n"), "t"), "t")
    assert dict(t.ranges) == {"loaded_floor": (1.0, 3.0), "dynamic_overhead": (1.0, 4.0)}


_VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10),
                    st.text(max_size=8), st.none(), st.booleans(),
                    st.sampled_from(["1 W", "5 W", "1 pJ/bit", "2", "abc", "1e999 W", "-2 W"]))


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(list(RANGED) + ["static", "idle", "x"]),
       pair=st.one_of(st.lists(_VALUES, max_size=3), _VALUES))
def test_fuzz_ranges_never_crash(field, pair):
    """Any ranges value either loads with low <= central <= high or is one ArchError."""
    tree = parse_yaml(_table_with("operand_delivery: 1 pJ/bit\n"), "t")
    tree["ranges"] = {field: pair}
    try:
        t = build_energy_table(tree, "t")
    except ArchError as e:
        assert "\n" not in str(e) and "ranges" in str(e)
        return
    lo, hi = t.ranges[field]
    assert lo <= getattr(t, field) <= hi


# ------------------------------------------------------------------------------ the band

def test_band_orders_low_central_high(rngd_h100):
    ran = [r for r in rngd_h100.records if r["arch"] == "rngd" and r["status"] == "ok"]
    assert ran
    for r in ran:
        assert r["card_power_w_low"] <= r["card_power_w"] <= r["card_power_w_high"]
        assert r["energy_per_token_j_low"] <= r["energy_per_token_j"] \
            <= r["energy_per_token_j_high"]
        assert r["card_power_w_low"] < r["card_power_w_high"]     # the ranges are not empty


def test_band_absent_for_gpus(rngd_h100):
    gpu = [r for r in rngd_h100.records if r["arch"] == "h100"]
    assert gpu and all(math.isnan(r[k]) for r in gpu for k in kp.BAND_KEYS)


def test_low_edge_is_what_a_simulation_at_the_low_values_gives(rngd_h100):
    """Energy is linear in the ranged entries at a fixed timeline; at the low values nothing
    nears the power limit, so a run with the low table has that timeline and must agree."""
    t = load_energy_table(load_arch("rngd"))
    (f, _), (o, _), (d, _) = (t.ranges[k] for k in ("loaded_floor", "dynamic_overhead",
                                                      "operand_delivery"))
    low = kp.kperf("rngd", "tiny-llama", overrides=[
        f"energy.loaded_floor={f}W", f"energy.dynamic_overhead={o}",
        f"energy.operand_delivery={d * 1e12}pJ/bit"], **SMALL)
    central = [r for r in rngd_h100.records if r["arch"] == "rngd"]
    for c, r in zip(central, low.records):
        assert c["decode_tok_s"] == pytest.approx(r["decode_tok_s"], rel=1e-9)
        assert c["card_power_w_low"] == pytest.approx(r["card_power_w"], rel=1e-6)
        assert c["energy_per_token_j_low"] == pytest.approx(r["energy_per_token_j"], rel=1e-6)
    # with every part set by hand there is no assumption left, so no band
    assert all(math.isnan(r["card_power_w_low"]) for r in low.records)


def test_high_edge_is_held_at_the_power_limit():
    r = kp.kperf("rngd", "tiny-llama", overrides=["power.tdp=75W"], **SMALL)
    ran = [x for x in r.records if x["status"] == "ok"]
    assert ran and all(x["card_power_w_high"] <= 75.0 for x in ran)
    assert any(x["card_power_w_high"] == 75.0 for x in ran)
    assert all(x["card_power_w_low"] <= x["card_power_w"] <= x["card_power_w_high"]
               for x in ran)


@settings(max_examples=60, deadline=None)
@given(terms=st.lists(st.tuples(st.floats(0, 1e3), st.floats(0, 1e3), st.floats(0, 1e3),
                                st.floats(0, 1e3), st.floats(-4, 4), st.floats(0, 10)),
                      min_size=1, max_size=8))
def test_step_energy_adds_and_scales_like_its_total(terms):
    """Sums, differences and scalings act on every part; plain numbers go to the floor."""
    acc, ref, floor = 0.0, 0.0, 0.0
    for total, onchip, bits, fl, k, static in terms:
        e = StepEnergy(total, onchip, bits, fl)
        acc = acc + k * e + static
        ref += k * total + static
        floor += k * fl + static
    assert float(acc) == pytest.approx(ref, rel=1e-9, abs=1e-6)
    assert acc.floor == pytest.approx(floor, rel=1e-9, abs=1e-6)
    assert max(acc, acc - 1.0) is acc


# ------------------------------------------------------------------------------ the graphs

def test_power_graphs_written_non_empty(rngd_h100, tmp_path):
    pytest.importorskip("matplotlib")
    from npusim.report.kperf_power import (PNG_CARD_POWER, PNG_ENERGY_PER_TOKEN,
                                           PNG_SYSTEM_POWER, plot_power)
    paths = plot_power(rngd_h100, tmp_path)
    names = [p.name for p in paths]
    assert names == [PNG_CARD_POWER, PNG_ENERGY_PER_TOKEN]     # no host model: no system graph
    assert all(p.stat().st_size > 1000 for p in paths)
    # a host model's system power (NaN on the archs without one) adds the system graph
    for r in rngd_h100.records:
        r["system_power_w"] = 1.5 * r["avg_power_w"] if r["arch"] == "h100" else math.nan
    (tmp_path / "sys").mkdir()
    paths = plot_power(rngd_h100, tmp_path / "sys")
    assert PNG_SYSTEM_POWER in [p.name for p in paths]
    assert all(p.stat().st_size > 1000 for p in paths)
    for r in rngd_h100.records:
        r.pop("system_power_w")


def test_power_panels_carry_the_band_and_the_limits(rngd_h100):
    from npusim.report.kperf_power import _panels
    (panel,) = _panels(rngd_h100, "card_power_w", 1.0, True, False, True)
    rngd, h100 = panel["series"]
    assert rngd["low"] == [r["card_power_w_low"] for r in rngd_h100.records
                           if r["arch"] == "rngd"]
    assert all(math.isnan(v) for v in h100["high"])
    assert sorted(y for y, _, _ in panel["lines"]) == [150.0, 700.0]


def test_kperf_cli_writes_the_power_graphs(cli, tmp_path, linear_cost):
    pytest.importorskip("matplotlib")
    linear_cost()
    code, out, err = cli("kperf", "--arch", "rngd", "--model", "llama-3.1-8b", "--users", "1,4",
                         "--input-lens", "128", "--output-lens", "16", "--out", str(tmp_path))
    assert code == 0, err
    for name in ("card_power_vs_users.png", "energy_per_token_vs_users.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert not (tmp_path / "system_power_vs_users.png").exists()


def test_terminal_shows_the_band_and_no_nan(rngd_h100):
    from rich.console import Console

    from npusim.report.kperf import print_kperf
    con = Console(record=True, width=250)
    print_kperf(rngd_h100, con)
    text = con.export_text()
    assert "card W low/high: the power band" in text
    assert "nan" not in text                         # the GPU rows show '-' for no band


def test_band_note_names_the_limit_reached():
    from types import SimpleNamespace as NS

    from npusim.report.kperf_power import band_note
    recs = [dict(arch="rngd", status="ok", card_power_w_high=h) for h in (140.0, 150.0)]
    note = band_note(NS(records=recs, archs={"rngd": {"power": {"tdp": 180.0, "cap": 150.0}}}))
    assert "150 W limit in 1 scenario" in note
    assert band_note(NS(records=[dict(arch="h100", status="ok", card_power_w_high=math.nan)],
                        archs={})) is None


def test_measured_sheet_cells_carry_the_band():
    from npusim.validate.kperf_sheet import MeasuredRow, _band_lines, compare
    row = MeasuredRow("s", 2, "bf16", 128, 64, 4, {"avg_power_w": 250.0,
                                                  "energy_per_token_j": 0.5})
    rec = {"status": "ok", "chips": 2, "avg_power_w": 240.0, "energy_per_token_j": 0.4,
           "card_power_w_low": 100.0, "card_power_w_high": 150.0,
           "energy_per_token_j_low": 0.3, "energy_per_token_j_high": 0.45}
    power, energy = compare([row], {("bf16", None): {(128, 64, 4): rec}})
    assert (power["simulated_low"], power["simulated_high"]) == (200.0, 300.0)   # 2 chips
    assert (energy["simulated_low"], energy["simulated_high"]) == (0.3, 0.45)
    text = "\n".join(_band_lines([power, energy]))
    assert "| avg power (W) | 1 | 1 |" in text and "| 1 | 0 |" in text      # 0.5 J is above
    gpu = dict(rec, card_power_w_low=math.nan, card_power_w_high=math.nan)
    (cell, _) = compare([row], {("bf16", None): {(128, 64, 4): gpu}})
    assert cell["simulated_low"] is None and _band_lines([cell]) == []
