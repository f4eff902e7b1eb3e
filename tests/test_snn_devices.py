"""Spiking-core device presets: every preset loads, its numbers are snn.md's, bad files are
refused with one-line errors naming the file and field, and the hand checks of snn.md hold.

Hand values are read off /work/shared/reference/snn.md (tables 1a, 1b; sec. 2.4); the
arithmetic is in the comments.
"""
from __future__ import annotations

import copy
import importlib.resources
import json
from pathlib import Path

import pytest

from npusim.arch.loader import parse_yaml
from npusim.arch.snn_device import (EVENT_KINDS, build_snn_device, load_snn_device,
                                    snn_devices)
from npusim.errors import ArchError

PRESETS = Path(str(importlib.resources.files("npusim.archs").joinpath("snn")))
pJ, ns, us, mW = 1e-12, 1e-9, 1e-6, 1e-3


def _tree(name="loihi"):
    return parse_yaml((PRESETS / f"{name}.yaml").read_text(encoding="utf-8"), "x.yaml")


def _refused(tree, *words):
    with pytest.raises(ArchError) as exc:
        build_snn_device(tree, "x.yaml")
    msg = str(exc.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, (w, msg)
    return msg


# ---------------------------------------------------------------- presets
def test_every_preset_loads_and_every_number_is_sourced():
    assert snn_devices() == ["loihi", "loihi2", "snn-edu", "truenorth"]
    for name in snn_devices():
        d = load_snn_device(name)
        assert d.name == name and d.sources
        for cs in (d.costs, *d.alternatives.values()):
            for e in cs.events.values():
                assert e.source == "assumption" or e.source in d.sources
        # every value line of an event, structure or barrier carries a comment or is an
        # assumption by its basis (snn-edu) / a flow mapping naming its source
        for line in (PRESETS / f"{name}.yaml").read_text().splitlines():
            s = line.strip()
            if s.startswith(("synaptic_memory", "neurons_per_core", "tick", "base:",
                             "per_tile", "power:", "p0", "e_event")):
                assert "#" in line, f"{name}.yaml: value without a source comment: {line}"


def test_by_path_and_unknown_name():
    d = load_snn_device(PRESETS / "truenorth.yaml")
    assert d.source.endswith("truenorth.yaml")
    with pytest.raises(ArchError, match="loihi"):
        load_snn_device("loihi3")


def test_loihi_structure_by_hand():
    s = load_snn_device("loihi").structure
    # snn.md 1a: 32 tiles x 4 cores = 128 cores; 128 x 1,024 = 131,072 neurons
    assert (s.tiles_x, s.tiles_y, s.cores_per_tile) == (8, 4, 4)
    assert s.cores == 128 and s.neurons == 131_072
    assert s.synaptic_memory == 128 * 1024
    assert (s.fan_in, s.fan_out, s.weight_bits) == (4096, 4096, 9)
    assert s.tick is None and s.graded_spikes is False and s.chips == 1
    assert (s.voltage_min, s.voltage_max) == (0.5, 1.25)


def test_loihi_default_costs_are_sana_fe():
    c = load_snn_device("loihi").costs
    want = {  # snn.md 1b, SANA-FE arch/loihi.yaml: (pJ, ns)
        "synop": (35.5, 4.0), "hop_ew": (3.0, 4.1), "hop_ns": (4.2, 6.5),
        "spike_out": (76.8, 7.6), "update_idle": (51.2, 6.0), "update_active": (72.8, 9.7),
        "neuron_fire": (69.3, 30.0), "in_tile": (0.0, 2.1),
        "axon_in": (0.0, 16.0)}   # sanafe 2.2.9 loihi.yaml loihi_in: 0 pJ, 16 ns per message
    assert set(c.events) == set(want)
    for kind, (e, t) in want.items():
        ev = c.events[kind]
        assert ev.energy == pytest.approx(e * pJ, abs=1e-18), kind
        assert ev.time == pytest.approx(t * ns), kind
        assert (ev.scope, ev.basis, ev.source) == ("per-term", "measured", "SF")
    assert not c.all_in and c.must_fit == ("learn",)
    assert c.barrier.seconds(32) == pytest.approx(299 * ns)
    assert c.static.power == pytest.approx(104 * mW) and c.static.basis == "derived"
    # snn.md 1b: 3.34 W / 32 chips = 104.4 mW
    assert 3.34 / 32 == pytest.approx(c.static.power, rel=0.005)


def test_loihi_table2_alternative():
    d = load_snn_device("loihi")
    c = d.cost_set("table2")
    assert d.cost_set() is d.costs and d.cost_set("default") is d.costs
    want = {"synop": (23.6, 3.5), "in_tile": (1.7, 2.1), "hop_ew": (3.0, 4.1),
            "hop_ns": (4.0, 6.5), "update_active": (81, 8.4), "update_idle": (52, 5.3),
            "learn": (120, 6.1)}
    assert set(c.events) == set(want)
    for kind, (e, t) in want.items():
        assert c.events[kind].energy == pytest.approx(e * pJ)
        assert c.events[kind].time == pytest.approx(t * ns)
        assert c.events[kind].basis == "simulated"
    assert c.voltage == 0.75
    assert set(c.must_fit) == {"neuron_fire", "spike_out", "axon_in"}
    # barrier 113 ns at 1 tile, 465 ns at 32 tiles (the fit's two points)
    assert c.barrier.seconds(1) == pytest.approx(113 * ns, abs=0.01 * ns)
    assert c.barrier.seconds(32) == pytest.approx(465 * ns, abs=0.01 * ns)
    # multi-chip: 14.3 us at 256 chips, 16.2 us at 768
    assert c.barrier.seconds(32, chips=256) == pytest.approx(14.3 * us, abs=1e-3 * us)
    assert c.barrier.seconds(32, chips=768) == pytest.approx(16.2 * us, abs=1e-3 * us)
    with pytest.raises(ArchError, match="table3"):
        d.cost_set("table3")


def test_loihi_worked_example_from_snn_md():
    # snn.md 2.2: a spike with fan-out 256 crossing 3 E-W hops, Table 2:
    # 256 x 23.6 + 1.7 + 3 x 3.0 = 6,052.3 pJ
    e = load_snn_device("loihi").cost_set("table2").events
    total = 256 * e["synop"].energy + e["in_tile"].energy + 3 * e["hop_ew"].energy
    assert total == pytest.approx(6052.3 * pJ)
    # idle floor: 131,072 x 52 pJ = 6.8 uJ per step
    n = load_snn_device("loihi").structure.neurons
    assert n * e["update_idle"].energy == pytest.approx(6.8 * us, rel=0.01)


def test_loihi2_gives_only_the_all_in_bound():
    d = load_snn_device("loihi2")
    s, c = d.structure, d.costs
    # snn.md 1a: 8 x 16 mesh, 128 cores x 8,192 = 1,048,576 neurons; Hala Point: 122 usable
    assert s.cores == 128 and s.neurons == 1_048_576 and s.usable == 122
    assert 140_544 / 1_152 == 122
    assert s.graded_spikes and s.graded_spike_bits == 32 and s.process == "Intel 4"
    assert list(c.events) == ["synop"] and c.all_in
    syn = c.events["synop"]
    assert (syn.scope, syn.basis, syn.time) == ("all-in", "bound", None)
    # 2,600 W / 380e12 synops/s = 6.84 pJ
    assert syn.energy == pytest.approx(2600 / 380e12, rel=0.01)
    assert set(c.must_fit) == set(EVENT_KINDS)
    assert c.static is None and c.barrier is None
    assert not any(e.basis == "measured" for e in c.events.values())


def test_truenorth_by_hand():
    d = load_snn_device("truenorth")
    s, c = d.structure, d.costs
    # 64 x 64 = 4,096 cores x 256 = 1,048,576 neurons; 256 x 256 bit crossbar = 8 KiB
    assert s.cores == 4096 and s.neurons == 1_048_576
    assert s.synaptic_memory == 256 * 256 / 8 and s.fan_in == 256
    assert s.tick == pytest.approx(1e-3)
    syn = c.events["synop"]
    assert c.all_in and syn.energy == pytest.approx(26 * pJ) and c.voltage == 0.775
    assert c.static is None and len(c.events) == 1
    # snn.md 1b check: 72 mW / (1,048,576 x 20 Hz x 128) = 26.8 pJ
    assert 72 * mW / (s.neurons * 20 * 128) == pytest.approx(26.8 * pJ, rel=0.01)
    lp = d.linear_power
    assert lp.p0 == pytest.approx(64.4 * mW) and lp.e_event == pytest.approx(2.30 * pJ)
    assert lp.voltage == 0.8 and lp.active_synapses == 128 and lp.basis == "derived"
    want = [(11.58, 68 * mW), (20.07, 71 * mW), (95.93, 94 * mW)]
    assert len(lp.sweep) == 3            # flat: newer pytest refuses nested approx
    assert [v for p in lp.sweep for v in p] == pytest.approx([v for p in want for v in p])


def test_truenorth_linear_model_fit_on_two_predicts_the_third():
    d = load_snn_device("truenorth")
    lp, n = d.linear_power, d.structure.neurons
    rate = {r: p for r, p in lp.sweep}
    ev = {r: n * r * lp.active_synapses for r in rate}     # events per second
    lo, hi = 11.58, 95.93
    e_event = (rate[hi] - rate[lo]) / (ev[hi] - ev[lo])
    p0 = rate[lo] - e_event * ev[lo]
    assert e_event == pytest.approx(2.30 * pJ, rel=0.005)    # snn.md 2.4
    assert p0 == pytest.approx(64.4 * mW, rel=0.002)
    # the file's p0, e_event are that fit, rounded
    assert lp.e_event == pytest.approx(e_event, rel=0.005)
    assert lp.p0 == pytest.approx(p0, rel=0.002)
    held_out = p0 + e_event * ev[20.07]
    assert held_out == pytest.approx(70.6 * mW, abs=0.05 * mW)   # snn.md: 70.6 mW, -0.5 %
    assert abs(held_out / (71 * mW) - 1) < 0.01
    assert lp.power(ev[20.07]) == pytest.approx(held_out, rel=0.003)
    # the all-in constant at the sweep's ends: 40.4 / 334.8 mW vs 68 / 94 measured (snn.md 1b)
    allin = d.costs.events["synop"].energy
    assert allin * ev[lo] == pytest.approx(40.4 * mW, rel=0.01)
    assert allin * ev[hi] == pytest.approx(334.8 * mW, rel=0.01)


def test_snn_edu_is_all_assumption():
    d = load_snn_device("snn-edu")
    assert d.structure.cores == 16 and d.structure.neurons == 4096
    assert d.costs.events["synop"].energy == pytest.approx(10 * pJ)
    for e in d.costs.events.values():
        assert e.basis == e.source == "assumption"
    assert d.costs.barrier.seconds(4) == pytest.approx(140 * ns)


# ---------------------------------------------------------------- the all-in rule
@pytest.mark.parametrize("kind", ["hop_ew", "update_idle", "spike_out", "in_tile"])
def test_all_in_refuses_per_term_energies(kind):
    t = _tree("truenorth")
    t["costs"]["events"][kind] = {"energy": "1 pJ", "time": None, "scope": "per-term",
                                  "basis": "measured", "source": "M14"}
    _refused(t, "x.yaml", f"costs.events.{kind}.energy", "all-in", "absent")


def test_all_in_refuses_static_and_all_in_elsewhere():
    t = _tree("loihi2")
    t["costs"]["static"] = {"power": "1 W", "basis": "marketing", "source": "WC",
                            "voltage": None}
    _refused(t, "x.yaml", "costs.static", "all-in")
    t = _tree("loihi")
    t["costs"]["events"]["hop_ew"]["scope"] = "all-in"
    _refused(t, "x.yaml", "costs.events.hop_ew.scope", "synop")


def test_all_in_in_an_alternative_is_checked_too():
    t = _tree("loihi")
    t["alternatives"]["table2"]["events"]["synop"]["scope"] = "all-in"
    _refused(t, "x.yaml", "alternatives.table2.events.update_active.energy")


def test_times_beside_all_in_are_allowed():
    t = _tree("truenorth")
    t["costs"]["events"]["hop_ew"] = {"energy": None, "time": "4 ns", "scope": "per-term",
                                      "basis": "assumption", "source": "assumption"}
    assert build_snn_device(t, "x.yaml").costs.events["hop_ew"].energy is None


# ---------------------------------------------------------------- bad files
def _set(path, value):
    def edit(t):
        node = t
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return edit


def _pop(path):
    def edit(t):
        node = t
        for k in path[:-1]:
            node = node[k]
        node.pop(path[-1])
    return edit


SYN = ("costs", "events", "synop")


@pytest.mark.parametrize("edit, words", [
    # wrong units
    (_set(SYN + ("energy",), "35.5 ns"), ["costs.events.synop.energy", "energy"]),
    (_set(SYN + ("time",), "4 pJ"), ["costs.events.synop.time", "time"]),
    (_set(SYN + ("energy",), 35.5), ["costs.events.synop.energy", "unit"]),
    (_set(("structure", "synaptic_memory"), "128 KB"), ["structure.synaptic_memory", "KiB"]),
    (_set(("structure", "tick"), "1 kHz"), ["structure.tick", "time"]),
    (_set(("costs", "static", "power"), "104 mJ"), ["costs.static.power", "power"]),
    (_set(("costs", "voltage"), "0.75 W"), ["costs.voltage", "voltage"]),
    (_set(("structure", "voltage", "min"), "9 V"), ["structure.voltage.min", "V"]),
    # missing fields
    (_pop(("structure", "neurons_per_core")), ["structure.neurons_per_core", "missing"]),
    (_pop(SYN + ("basis",)), ["costs.events.synop.basis", "missing"]),
    (_pop(("costs", "barrier")), ["costs.barrier", "missing"]),
    (_pop(("sources",)), ["sources", "missing"]),
    (_pop(("costs",)), ["costs", "missing"]),
    # unknown keys
    (_set(("colour",), "red"), ["colour", "unknown", "sources"]),
    (_set(("costs", "events", "synapse"), {}), ["costs.events.synapse", "unknown", "synop"]),
    (_set(SYN + ("energie",), "1 pJ"), ["costs.events.synop.energie", "energy"]),
    (_set(("structure", "neuron_per_core"), 3), ["structure.neuron_per_core",
                                                 "neurons_per_core"]),
    # nonsense ranges
    (_set(("structure", "neurons_per_core"), 0), ["structure.neurons_per_core",
                                                  "greater than 0"]),
    (_set(SYN + ("energy",), "-1 pJ"), ["costs.events.synop.energy", "negative"]),
    (_set(SYN + ("time",), "-4 ns"), ["costs.events.synop.time", "negative"]),
    (_set(("structure", "tiles", "x"), 2.5), ["structure.tiles.x", "whole"]),
    (_set(("structure", "chips"), 0), ["structure.chips", "greater than 0"]),
    (_set(("costs", "static", "power"), "-1 mW"), ["costs.static.power", "negative"]),
    (_set(("structure", "usable_cores"), 129), ["structure.usable_cores", "128"]),
    (_set(("structure", "graded_spike_bits"), 8), ["graded_spike_bits", "graded_spikes"]),
    # choices and sources
    (_set(SYN + ("scope",), "total"), ["costs.events.synop.scope", "all-in"]),
    (_set(SYN + ("basis",), "guess"), ["costs.events.synop.basis", "measured"]),
    (_set(SYN + ("source",), "SFX"), ["costs.events.synop.source", "SF"]),
    (_set(SYN + ("basis",), "assumption"), ["costs.events.synop.basis", "assumption"]),
    (_set(SYN, {"energy": None, "time": None, "scope": "per-term", "basis": "measured",
                "source": "SF"}), ["costs.events.synop", "neither"]),
    (_set(SYN, None), ["costs.events.synop", "mapping"]),
    (_set(("costs", "must_fit"), ["synop"]), ["costs.must_fit", "synop"]),
    (_set(("costs", "must_fit"), ["spikes"]), ["costs.must_fit", "spike_out"]),
    (_set(("alternatives", "default"), {}), ["alternatives.default", "rename"]),
])
def test_bad_devices_name_file_and_field(edit, words):
    t = _tree("loihi")
    edit(t)
    _refused(t, "x.yaml", *words)


@pytest.mark.parametrize("edit, words", [
    (_set(("linear_power", "sweep"), [{"rate": "1 Hz", "power": "1 mW"}]),
     ["linear_power.sweep", "two"]),
    (_set(("linear_power", "sweep"), [{"rate": "1 Hz", "power": "1 mW"},
                                      {"rate": "2 mW", "power": "1 mW"}]),
     ["linear_power.sweep[1].rate", "frequency"]),
    (_set(("linear_power", "e_event"), "-2.3 pJ"), ["linear_power.e_event", "negative"]),
    (_pop(("linear_power", "p0")), ["linear_power.p0", "missing"]),
    (_set(("linear_power", "slope"), "1 pJ"), ["linear_power.slope", "unknown"]),
])
def test_bad_linear_power(edit, words):
    t = _tree("truenorth")
    edit(t)
    _refused(t, "x.yaml", *words)


def test_duplicate_key_in_a_file_names_it(tmp_path):
    text = (PRESETS / "snn-edu.yaml").read_text()
    bad = text.replace("  cores_per_tile: 4", "  cores_per_tile: 4\n  cores_per_tile: 8", 1)
    path = tmp_path / "dup.yaml"
    path.write_text(bad)
    with pytest.raises(ArchError) as exc:
        load_snn_device(path)
    msg = str(exc.value)
    assert "dup.yaml" in msg and "duplicate key 'cores_per_tile'" in msg and "\n" not in msg


def test_error_from_a_file_names_the_file_and_line(tmp_path):
    text = (PRESETS / "snn-edu.yaml").read_text()
    path = tmp_path / "neg.yaml"
    path.write_text(text.replace("energy: 10 pJ", "energy: -10 pJ"))
    with pytest.raises(ArchError) as exc:
        load_snn_device(path)
    msg = str(exc.value)
    assert str(path) in msg and "costs.events.synop.energy" in msg and "line" in msg


def test_to_dict_is_json():
    for name in snn_devices():
        d = load_snn_device(name)
        out = json.loads(json.dumps(d.to_dict()))
        assert out["structure"]["neurons_per_core"] == d.structure.neurons_per_core
    lp = load_snn_device("truenorth").to_dict()["linear_power"]
    assert lp["sweep"][1] == [20.07, pytest.approx(0.071)]


def test_presets_are_not_mutated_by_edits():
    before = load_snn_device("loihi")
    t = copy.deepcopy(_tree("loihi"))
    t["structure"]["neurons_per_core"] = 2
    build_snn_device(t, "x.yaml")
    assert load_snn_device("loihi") == before
