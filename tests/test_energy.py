"""Energy tables and energy from action counts: hand-computed joules, linearity, shipped tables,
physical plausibility against each arch's TDP, and errors that name the file and field."""
from __future__ import annotations

import functools
import importlib.resources
import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.arch import list_archs, load_arch
from npusim.energy import (COMPONENTS, Actions, EnergyTable, energy_of, load_energy_table,
                           read_energy_table, static_energy)
from npusim.errors import ArchError

SHIPPED = [name for name, _ in list_archs()]

# A table with round numbers, so every joule below can be checked by hand.
HAND = """\
name: hand
description: round numbers for hand-computed tests
node: none
mac: {bf16: 0.5 pJ, int8: 0.1 pJ}
vector_op: 2 pJ
sram: {read: 1 pJ/B, write: 2 pJ/B}
shared: {read: 4 pJ/B, write: 8 pJ/B}
dram: {read: 3 pJ/bit, write: 5 pJ/bit, activation: 1 nJ}
noc: 0.25 pJ/bit
link: 10 pJ/bit
static: 40 W
"""


def _write(tmp_path, text, name="t.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture
def hand(tmp_path):
    return read_energy_table(_write(tmp_path, HAND))


def _edu_text() -> str:
    return (importlib.resources.files("npusim.archs") / "edu.yaml").read_text(encoding="utf-8")


# --- hand-computed cases -------------------------------------------------------------------

def test_one_billion_bf16_macs_on_edu_cost_1_5_millijoule():
    # edu is Horowitz's 45 nm table unscaled: bf16 MAC = 1.1 + 0.4 pJ = 1.5 pJ.
    t = load_energy_table(load_arch("edu"))
    e = energy_of(Actions(macs={"bf16": 1e9}), t)
    assert e["mac"] == pytest.approx(1.5e-3, rel=1e-12)
    assert sum(v for k, v in e.items() if k != "mac") == 0.0


def test_every_component_by_hand(hand):
    a = Actions(macs={"bf16": 2e9, "int8": 1e9}, vector_ops=1e6,
                sram_read_bytes=100.0, sram_write_bytes=10.0,
                shared_read_bytes=1000.0, shared_write_bytes=1.0,
                dram_read_bytes=1e3, dram_write_bytes=1e2, dram_activations=7.0,
                noc_bytes=4.0, link_bytes=1e6)
    e = energy_of(a, hand)
    expect = {
        "mac": 2e9 * 0.5e-12 + 1e9 * 0.1e-12,              # 1.1e-3 J
        "vector": 1e6 * 2e-12,                              # 2e-6 J
        "sram": 100 * 1e-12 + 10 * 2e-12,                   # 120 pJ
        "shared": 1000 * 4e-12 + 1 * 8e-12,                 # 4008 pJ
        "dram": 8 * (1e3 * 3e-12 + 1e2 * 5e-12) + 7 * 1e-9,  # 28 nJ + 7 nJ = 35 nJ
        "noc": 8 * 4 * 0.25e-12,                            # 8 pJ
        "link": 8 * 1e6 * 10e-12,                           # 80 uJ
    }
    assert set(e) == set(COMPONENTS)
    for k, v in expect.items():
        assert e[k] == pytest.approx(v, rel=1e-12), k
    assert e["dram"] == pytest.approx(35e-9, rel=1e-12)


def test_static_energy_is_power_times_time(hand):
    assert static_energy(hand, 0.5) == pytest.approx(20.0, rel=1e-12)
    assert static_energy(hand, 0.0) == 0.0
    with pytest.raises(ValueError):
        static_energy(hand, -1.0)


def test_units_are_converted_to_si(tmp_path):
    # The same table written in other units must give the same SI numbers.
    other = (HAND.replace("3 pJ/bit", "24 pJ/B").replace("1 pJ/B", "0.125 pJ/b")
             .replace("1 nJ", "1000 pJ").replace("40 W", "40000 mW"))
    a = read_energy_table(_write(tmp_path, HAND, "a.yaml"))
    b = read_energy_table(_write(tmp_path, other, "b.yaml"))
    for field in ("dram_read", "sram_read", "dram_activation", "static"):
        assert getattr(b, field) == pytest.approx(getattr(a, field), rel=1e-12), field
    assert a.dram_read == pytest.approx(3e-12, rel=1e-12)
    assert a.sram_read == pytest.approx(1e-12, rel=1e-12)


# --- the energy of a sum is the sum of the energies ------------------------------------------

_count = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)
_actions = st.builds(
    Actions,
    macs=st.dictionaries(st.sampled_from(["bf16", "int8"]), _count, max_size=2),
    vector_ops=_count, sram_read_bytes=_count, sram_write_bytes=_count,
    shared_read_bytes=_count, shared_write_bytes=_count, dram_read_bytes=_count,
    dram_write_bytes=_count, dram_activations=_count, noc_bytes=_count, link_bytes=_count)

@functools.lru_cache(maxsize=1)
def _hand_table() -> EnergyTable:
    # Built once: hypothesis calls the tests many times and fixtures do not mix with @given.
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "hand.yaml"
        p.write_text(HAND, encoding="utf-8")
        return read_energy_table(p)


@settings(max_examples=60, deadline=None)
@given(a=_actions, b=_actions)
def test_energy_is_additive_over_actions(a, b):
    t = _hand_table()
    ea, eb, eab = energy_of(a, t), energy_of(b, t), energy_of(a + b, t)
    for k in COMPONENTS:
        assert eab[k] == pytest.approx(ea[k] + eb[k], rel=1e-9, abs=1e-30), k
    assert sum(eab.values()) == pytest.approx(sum(ea.values()) + sum(eb.values()),
                                              rel=1e-9, abs=1e-30)


@settings(max_examples=40, deadline=None)
@given(a=_actions, k=st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_energy_is_linear_in_counts(a, k):
    t = _hand_table()
    ea, eka = energy_of(a, t), energy_of(a.scaled(k), t)
    for c in COMPONENTS:
        assert eka[c] == pytest.approx(k * ea[c], rel=1e-9, abs=1e-30), c


@settings(max_examples=40, deadline=None)
@given(a=_actions)
def test_total_is_the_sum_of_single_action_parts(a):
    # Split the actions into one Actions per kind: their energies must add up to the whole.
    t = _hand_table()
    parts = [Actions(macs={d: n}) for d, n in a.macs.items()]
    parts += [Actions(**{f: getattr(a, f)}) for f in (
        "vector_ops", "sram_read_bytes", "sram_write_bytes", "shared_read_bytes",
        "shared_write_bytes", "dram_read_bytes", "dram_write_bytes", "dram_activations",
        "noc_bytes", "link_bytes")]
    whole = sum(energy_of(a, t).values())
    assert whole == pytest.approx(sum(sum(energy_of(p, t).values()) for p in parts),
                                  rel=1e-9, abs=1e-30)


# --- shipped tables ------------------------------------------------------------------------

@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_arch_has_a_table_that_fits_it(name):
    arch = load_arch(name)
    t = load_energy_table(arch)
    assert isinstance(t, EnergyTable) and t.name == name
    # Every dtype the engine can run MACs in has a price (fallbacks map onto these).
    missing = set(arch.cores.engine.macs_per_cycle) - set(t.mac)
    assert not missing, f"{name}: no MAC energy for {sorted(missing)}"
    assert (t.shared_read is None) == (arch.shared_sram == 0)
    assert (t.link is None) == (arch.link is None)
    assert all(v > 0 for v in t.mac.values())
    assert t.dram_read > 0 and t.dram_activation > 0 and t.static > 0
    json.dumps(t.to_dict())  # the resolved table can be written beside results


@pytest.mark.parametrize("name", SHIPPED)
def test_static_power_is_the_published_idle_power_when_there_is_one(name):
    arch = load_arch(name)
    t = load_energy_table(arch)
    if arch.power.idle is None:
        pytest.skip(f"{name}: idle power unpublished; the table states its assumption")
    if t.loaded_floor is not None:      # runs charge the measured floor, at least idle
        assert t.loaded_floor >= arch.power.idle
        return
    assert t.static == pytest.approx(arch.power.idle, rel=1e-12)


# A chip running flat out (every MAC unit busy in bf16 and DRAM at peak bandwidth) burns
# roughly its TDP. The sum below leaves out SRAM, register-file, NoC and vector energy, which
# on real accelerators is of the same order as the MAC energy, so it should come out below
# the TDP but not far below: a lower bound of 0.3x catches a table off by an order of
# magnitude (pJ for fJ, per byte for per bit); 2x catches one that burns more than the
# chip could be cooled.
PLAUSIBLE = (0.3, 2.0)


@pytest.mark.parametrize("name", SHIPPED)
def test_flat_out_power_is_near_the_tdp(name):
    arch = load_arch(name)
    t = load_energy_table(arch)
    if arch.power.tdp is None:
        pytest.skip(f"{name}: the arch publishes no TDP to compare with")
    watts = (arch.peak_macs_per_s("bf16") * t.mac[arch.execution_dtype("bf16").name]
             + arch.dram.bandwidth * 8 * t.dram_read + t.static)
    ratio = watts / arch.power.tdp
    assert PLAUSIBLE[0] <= ratio <= PLAUSIBLE[1], f"{name}: {watts:.1f} W is {ratio:.2f} x TDP"


def test_plausibility_figures_by_hand():
    # RNGD (D): 131.072e12 MAC/s x 0.0595 pJ x 2 (dynamic overhead) + 1.5e12 B/s x 8 x
    # (3.48 + 2) pJ/bit (DRAM and operand delivery) + 69 W (loaded floor) = 150.4 W: every MAC
    # and every DRAM byte at full rate at once would just reach the 150 W TDP.
    arch = load_arch("rngd")
    t = load_energy_table(arch)
    watts = (arch.peak_macs_per_s("bf16") * t.mac["bf16"] * t.dynamic_overhead
             + arch.dram.bandwidth * 8 * (t.dram_read + t.operand_delivery) + t.floor_w)
    assert watts == pytest.approx(131.072e12 * 0.0595e-12 * 2 + 1.5e12 * 8 * 5.48e-12 + 69,
                                  rel=1e-9)
    assert watts == pytest.approx(150.36, abs=0.01)


# --- finding tables ------------------------------------------------------------------------

def test_user_arch_without_a_table_gets_none(tmp_path):
    p = _write(tmp_path, _edu_text().replace("name: edu", "name: mychip"), "mychip.yaml")
    assert load_energy_table(load_arch(p)) is None


def test_sidecar_table_beside_a_user_arch_is_found(tmp_path):
    # the hand table's static power (40 W) needs a TDP above it (a lower one is refused)
    text = _edu_text().replace("name: edu", "name: mychip").replace("tdp: 10 W", "tdp: 100 W")
    p = _write(tmp_path, text, "mychip.yaml")
    _write(tmp_path, HAND.replace("name: hand", "name: mychip"), "mychip.energy.yaml")
    t = load_energy_table(load_arch(p))
    assert t is not None and t.static == pytest.approx(40.0)


def test_explicit_table_path_and_name_mismatch(tmp_path, hand):
    p = _write(tmp_path, HAND, "hand.yaml")
    with pytest.raises(ArchError, match=r"hand\.yaml: name: .*'hand'.*'edu'"):
        load_energy_table(load_arch("edu"), p)
    ok = _write(tmp_path, HAND.replace("name: hand", "name: edu"), "edu2.yaml")
    hot = load_arch("edu", ["power.tdp=100 W"])   # above the hand table's 40 W static power
    assert load_energy_table(hot, ok).mac["int8"] == pytest.approx(1e-13)


# --- bad tables and bad use ----------------------------------------------------------------

@pytest.mark.parametrize("text, match", [
    (HAND.replace("vector_op: 2 pJ", "vector_op: 2 pJ\nvectr: 1 pJ"),
     r"t\.yaml: vectr \(line 6\): unknown field \(did you mean 'vector_op'\?\)"),
    (HAND.replace("static: 40 W", "static: 40 W\nstatic: 41 W"),
     r"t\.yaml: line 12: duplicate key 'static'"),
    (HAND.replace("3 pJ/bit", "3 pJ"),
     r"t\.yaml: dram\.read \(line 8\): .*energy per bit"),
    (HAND.replace("vector_op: 2 pJ", "vector_op: 2 pJ/bit"), r"t\.yaml: vector_op \(line 5\): .*energy"),
    (HAND.replace("static: 40 W", "static: 40 J"), r"t\.yaml: static \(line 11\): .*power"),
    (HAND.replace("noc: 0.25 pJ/bit", "noc: -0.25 pJ/bit"), r"t\.yaml: noc \(line 9\): .*negative"),
    (HAND.replace("bf16: 0.5 pJ", "bf16: -0.5 pJ"), r"t\.yaml: mac\.bf16 \(line 4\): .*negative"),
    (HAND.replace("bf16: 0.5 pJ", "bf17: 0.5 pJ"), r"t\.yaml: mac\.bf17: "),
    (HAND.replace("link: 10 pJ/bit\n", ""), r"t\.yaml: link: missing required field"),
    (HAND.replace("sram: {read: 1 pJ/B, write: 2 pJ/B}", "sram: null"),
     r"t\.yaml: sram: is empty \(null\) but required"),
    (HAND.replace("dram: {read: 3 pJ/bit,", "dram: {read: 3,"),
     r"t\.yaml: dram\.read \(line 8\): 3 is a number without a unit"),
    ("name: [1, 2\n", r"t\.yaml: malformed YAML at line"),
    ("", r"t\.yaml: the energy table is empty"),
])
def test_bad_tables_raise_arch_error_naming_file_and_field(tmp_path, text, match):
    with pytest.raises(ArchError, match=match):
        read_energy_table(_write(tmp_path, text))


def test_missing_table_file_is_an_arch_error(tmp_path):
    with pytest.raises(ArchError, match="no such energy table"):
        read_energy_table(tmp_path / "nope.yaml")


def test_mac_in_a_dtype_the_table_lacks_is_an_error_not_zero(hand):
    with pytest.raises(ArchError, match=r"t\.yaml: mac: no energy for fp8_e4m3 MACs"):
        energy_of(Actions(macs={"fp8_e4m3": 1.0}), hand)
    # No MACs of that dtype is no MAC at all.
    assert energy_of(Actions(macs={"fp8_e4m3": 0.0}), hand)["mac"] == 0.0


def test_traffic_to_a_part_the_chip_lacks_is_an_error():
    t = load_energy_table(load_arch("rngd"))  # RNGD has no shared SRAM
    with pytest.raises(ArchError, match=r"rngd\.yaml: shared: is null"):
        energy_of(Actions(shared_read_bytes=64.0), t)
    s = load_energy_table(load_arch("systolic-128"))  # one chip: no link
    with pytest.raises(ArchError, match=r"systolic-128\.yaml: link: is null"):
        energy_of(Actions(link_bytes=1.0), s)
    assert energy_of(Actions(link_bytes=0.0), s)["link"] == 0.0


def test_to_dict_is_si_and_complete(hand):
    d = hand.to_dict()
    assert d["mac"] == {"bf16": pytest.approx(0.5e-12), "int8": pytest.approx(0.1e-12)}
    assert d["dram_activation"] == pytest.approx(1e-9)
    assert d["units"]["dram_read"] == "J/bit" and d["units"]["static"] == "W"
    assert math.isclose(json.loads(json.dumps(d))["static"], 40.0)
