"""The host model (npusim/arch/host.py): presets, hand-computed power at the wall, bad host
files, system power in serving summaries, `npusim run` / `npusim kperf --host`, and system rows
of `npusim validate` end to end."""
from __future__ import annotations

import copy
import csv
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npusim.arch import load_arch
from npusim.arch.host import (Component, Host, build_host, card_idle_w, cpu_power,
                              default_host, host_names, load_host, resolve_host)
from npusim.errors import ArchError, NpusimError
from npusim.validate.core import (Simulator, blank_row, default_data, simulate_row, system_power,
                                  write_rows)
from npusim.workloads.serving import Scenario, ServingConfig, simulate_serving
from npusim.graphs.tiny import matmul_onnx

TITANIUM = [[0.1, 0.90], [0.2, 0.94], [0.5, 0.96], [1.0, 0.91]]
GOOD = {"description": "test server", "slots": 4,
        "cpu": {"count": 1, "tdp": "200 W", "idle_fraction": 0.5, "active_fraction": 1.0},
        "components": {"memory": {"count": 2, "idle": "5 W", "active": "10 W"}},
        "fans": {"idle_share": 0.0, "active_share": 0.1},
        "psu": {"capacity": "10 kW", "efficiency": [[0.1, 0.8], [0.5, 0.9]]}}


def clean_error(code, err) -> bool:
    return (code == 2 and len(err.strip().splitlines()) == 1 and ": error: " in err
            and "Traceback" not in err)


def write_host(path: Path, tree) -> Path:
    path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- hand-computed

def test_hand_computed_system_power(tmp_path):
    h = load_host(write_host(tmp_path / "h.yaml", GOOD))
    # busy: cards 2 x 300 = 600, idle slots 2 x 50 = 100, cpu 200 + memory 2 x 10 = 220,
    # fans 0.1 x 920 = 92, DC 1012 W = 10.12 % of 10 kW -> efficiency 0.8 + 0.1 x 0.12/4
    p = h.system(300.0, 2, 50.0, 1.0)
    eff = 0.8 + 0.1 * (0.1012 - 0.1) / 0.4
    assert (p.cards_w, p.spare_w, p.components_w) == (600.0, 100.0, 220.0)
    assert p.fans_w == pytest.approx(92.0)
    assert p.efficiency == pytest.approx(eff)
    assert p.system_w == pytest.approx(1012.0 / eff)
    assert p.host_w == pytest.approx(1012.0 / eff - 600.0)
    # idle: cpu 100 + memory 10, no fans; 4 idle cards; 510 W is 5 % load -> 0.8 (flat end)
    q = h.system(50.0, 4, 50.0, 0.0)
    assert q.system_w == pytest.approx((200.0 + 110.0) / 0.8)
    # half busy: every part halfway between
    assert h.components_w(0.5) == pytest.approx(165.0)


def test_cpu_power_is_linear_in_its_load():
    """Fan, Weber and Barroso's linear server model: idle_fraction x TDP at no use,
    active_fraction x TDP fully used, in between at the harness's load."""
    assert cpu_power(200.0, 0.25, 1.0, 0.0) == 50.0
    assert cpu_power(200.0, 0.25, 1.0, 1.0) == 200.0
    assert cpu_power(350.0, 0.25, 1.0, 0.1) == pytest.approx(113.75)   # 350 x (0.25 + 0.075)


def test_cpu_and_part_loads_set_the_busy_power(tmp_path):
    """cpu.load and a component's load: busy power = idle + (active - idle) x load, by hand."""
    tree = copy.deepcopy(GOOD)
    tree["cpu"]["load"] = 0.2                              # 200 x (0.5 + 0.5 x 0.2) = 120 W
    tree["components"]["memory"]["load"] = 0.4             # 2 x (5 + 5 x 0.4) = 14 W
    tree["components"]["nic"] = {"count": 3, "idle": "4 W", "active": "9 W", "load": 0}
    h = load_host(write_host(tmp_path / "h.yaml", tree))
    assert h.components_w(1.0) == pytest.approx(120.0 + 14.0 + 12.0)
    assert h.components_w(0.0) == pytest.approx(100.0 + 10.0 + 12.0)   # idle: loads unused
    # busy: cards 600 + spare 100 + parts 146, fans 0.1 x 846; 930.6 W -> 9.3 % of 10 kW: 0.8
    p = h.system(300.0, 2, 50.0, 1.0)
    assert p.system_w == pytest.approx(846.0 * 1.1 / 0.8)
    # load absent: fully used while busy (the file's old meaning)
    assert load_host(write_host(tmp_path / "g.yaml", GOOD)).components_w(1.0) == 220.0


def test_shipped_presets_state_every_load():
    """The rule of the shipped presets (npusim/archs/hosts, top comment): CPU load 0.1, DRAM
    0.1, drives and NICs 0, switches 0.5; a fully loaded socket at its TDP."""
    rule = {"memory": 0.1, "nic": 0.0, "storage": 0.0, "nvswitch": 0.5, "pcie_switch": 0.5}
    for name in host_names():
        tree = yaml.safe_load((Path(__file__).parents[1] / "npusim" / "archs" / "hosts" /
                               f"{name}.yaml").read_text(encoding="utf-8"))
        assert tree["cpu"]["load"] == 0.1 and tree["cpu"]["active_fraction"] == 1.0, name
        for part, v in tree["components"].items():
            assert v.get("load", 1.0) == rule.get(part, 1.0), (name, part)


def test_more_chips_than_slots_take_more_servers(tmp_path):
    h = load_host(write_host(tmp_path / "h.yaml", GOOD))
    p = h.system(300.0, 5, 50.0, 1.0)
    assert p.servers == 2 and p.spare_w == 3 * 50.0 and p.components_w == 2 * 220.0


def test_psu_curve_is_interpolated_and_flat_beyond_its_ends():
    h = Host("t", "", 8, (), (), (), 0.0, 0.0, 1000.0, tuple(map(tuple, TITANIUM)))
    assert h.efficiency(50.0) == 0.90 and h.efficiency(2000.0) == 0.91
    assert h.efficiency(150.0) == pytest.approx(0.92)
    assert h.efficiency(750.0) == pytest.approx(0.935)


def test_x1_fit_is_reproduced_by_the_shipped_preset():
    """The board floor of xe9680-h100 was solved so that 8 idle H100 (71 W, the energy
    table's idle reading) and the idle host give X1's 2,065 W at the wall."""
    h = load_host("xe9680-h100")
    assert "X1" in h.fitted_rows
    assert h.system(71.0, 8, 71.0, 0.0).system_w == pytest.approx(2065.0, abs=1.0)


def test_shipped_presets_load_and_name_their_defaults():
    names = host_names()
    assert {"dgx-h100", "h200-maxq", "dgx-a100", "xe9680-h100", "xe8545-a100",
            "gx2570m6-a100", "generic-2s"} <= set(names)
    for n in names:
        h = load_host(n)
        assert h.description and h.slots >= 1 and h.psu_capacity_w > 0
    assert default_host("h100") == "dgx-h100" and default_host("h200") == "h200-maxq"
    assert default_host("a100") == "dgx-a100" and default_host("rngd") is None
    assert load_host("generic-2s").generic
    assert resolve_host("none", "h100") is None and resolve_host(None, "h100") is None
    assert resolve_host("auto", "h100").name == "dgx-h100"
    assert resolve_host("auto", "rngd") is None


def test_card_idle_reads_the_arch():
    assert card_idle_w(load_arch("h100")) > 0
    assert card_idle_w(load_arch("atom")) == load_arch("atom").power.idle


@settings(max_examples=60, deadline=None)
@given(card=st.floats(0, 2000), chips=st.integers(1, 40), busy=st.floats(0, 1),
       idle=st.floats(0, 200))
def test_wall_is_above_the_cards_and_rises_with_card_power(card, chips, busy, idle):
    h = load_host("dgx-h100")
    p = h.system(card, chips, idle, busy)
    assert p.system_w >= p.dc_w >= p.cards_w
    assert p.host_w == pytest.approx(p.system_w - chips * card)
    assert h.system(card + 10.0, chips, idle, busy).system_w > p.system_w


# ----------------------------------------------------------------------------- bad host files

def _mutate(path, value):
    tree = copy.deepcopy(GOOD)
    node = tree
    for k in path[:-1]:
        node = node[k]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return tree


BAD = [
    (("slots",), 0, "slots"), (("slots",), 1.5, "slots"), (("slots",), KeyError, "slots"),
    (("slots",), 10 ** 30, "slots"),
    (("description",), "", "description"), (("description",), 3, "description"),
    (("cpu", "tdp"), "200 GHz", "cpu.tdp"), (("cpu", "tdp"), 200, "cpu.tdp"),
    (("cpu", "tdp"), "5 kW", "cpu.tdp"), (("cpu", "idle_fraction"), 1.5, "cpu.idle_fraction"),
    (("cpu", "active_fraction"), 0.1, "cpu.active_fraction"), (("cpu", "socket"), 1, "cpu"),
    (("cpu", "load"), 1.5, "cpu.load"), (("cpu", "load"), "busy", "cpu.load"),
    (("cpu", "load"), -0.1, "cpu.load"), (("components", "memory", "load"), 2, "components.memory.load"),
    (("components", "memory", "load"), True, "components.memory.load"),
    (("components", "memory", "idle"), "-5 W", "components.memory.idle"),
    (("components", "memory", "active"), "1 W", "components.memory.active"),
    (("components", "memory", "count"), "two", "components.memory.count"),
    (("components", "memory", "watts"), "1 W", "components.memory"),
    (("components", "Bad Name"), {"count": 1, "idle": "1 W", "active": "1 W"}, "components"),
    (("components", "cpu"), {"count": 1, "idle": "1 W", "active": "1 W"}, "components.cpu"),
    (("components",), [1, 2], "components"),
    (("fans", "active_share"), 0.9, "fans.active_share"), (("fans", "speed"), 1, "fans"),
    (("psu", "capacity"), "10 TB/s", "psu.capacity"), (("psu", "capacity"), "10 W", "psu.capacity"),
    (("psu", "efficiency"), [[0.5, 0.9], [0.1, 0.8]], "psu.efficiency"),
    (("psu", "efficiency"), [[0.5, 1.2]], "psu.efficiency"),
    (("psu", "efficiency"), [[0, 0.9]], "psu.efficiency"),
    (("psu", "efficiency"), "titanium", "psu.efficiency"),
    (("psu",), KeyError, "psu"), (("default_for",), "h100", "default_for"),
    (("generic",), "yes", "generic"), (("bogus",), 1, "bogus"),
]


@pytest.mark.parametrize("path, value, field", BAD)
def test_bad_host_file_is_one_error_naming_file_and_field(tmp_path, path, value, field):
    p = write_host(tmp_path / "bad.yaml", _mutate(path, value))
    with pytest.raises(ArchError) as e:
        load_host(p)
    msg = str(e.value)
    assert "\n" not in msg and "bad.yaml" in msg and field in msg


def test_malformed_and_missing_host_files(tmp_path):
    (tmp_path / "m.yaml").write_text("slots: [1,\n", encoding="utf-8")
    for spec, needle in ((tmp_path / "m.yaml", "malformed YAML"),
                         (tmp_path / "none.yaml", "none.yaml"), ("no-such", "no preset")):
        with pytest.raises(ArchError, match=needle):
            load_host(spec)
    with pytest.raises(ArchError, match="a mapping"):
        build_host([1, 2], "x.yaml")


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from([b[0] for b in BAD]),
       value=st.one_of(st.none(), st.integers(-10, 10 ** 6), st.floats(allow_nan=True),
                       st.text(max_size=12), st.lists(st.integers(), max_size=3),
                       st.sampled_from(["1 W", "0 W", "3 kW", "1 GHz", "-1 W", "nan W"])))
def test_fuzz_host_fields(tmp_path, path, value):
    """Any value in any field: the file loads, or one single-line ArchError names it."""
    p = write_host(tmp_path / "fz.yaml", _mutate(path, value))
    try:
        h = load_host(p)
    except ArchError as e:
        assert "\n" not in str(e) and "fz.yaml" in str(e)
    else:
        w = h.system(100.0, 2, 10.0, 0.5).system_w
        assert math.isfinite(w) and w > 0


# ----------------------------------------------------------------------------- serving

class _Fixed:
    """Every step takes 10 ms and 2 J on 2 chips; no arch (idle slots at static / chips)."""
    kv_capacity_tokens, kv_block_tokens, chips = 4096, 16, 2
    static_power_w, tdp_w = 40.0, None

    def step(self, prefill, decode):
        from npusim.workloads.stepcost import StepResult
        return StepResult(0.01, 2.0)


def test_serving_summary_has_system_power(tmp_path):
    scen = Scenario(input_len=8, output_len=4, users=2)
    plain = simulate_serving(_Fixed(), scen).summary
    assert math.isnan(plain["system_power_w"]) and math.isnan(plain["host_power_w"])
    path = write_host(tmp_path / "h.yaml", GOOD)
    s = simulate_serving(_Fixed(), scen, ServingConfig(host=str(path))).summary
    assert s["card_power_w"] == pytest.approx(100.0)      # 2 J / 10 ms / 2 chips
    want = load_host(path).system(100.0, 2, 20.0, 1.0)    # closed loop: never idle
    assert s["system_power_w"] == pytest.approx(want.system_w)
    assert s["host_power_w"] == pytest.approx(want.system_w - 200.0)
    assert s["avg_power_w"] == plain["avg_power_w"]       # the card figures are untouched


def test_serving_config_refuses_a_non_text_host():
    with pytest.raises(NpusimError, match="ServingConfig.host"):
        ServingConfig(host=3)


# ----------------------------------------------------------------------------- CLI

def test_run_reports_system_power_in_json(cli, tmp_path):
    import json
    model = matmul_onnx(tmp_path / "m.onnx")
    host = write_host(tmp_path / "h.yaml", GOOD)
    code, out, err = cli("run", str(model), "--arch", "edu", "--host", str(host),
                         "--json", str(tmp_path / "r.json"))
    assert code == 0, err
    t = json.loads((tmp_path / "r.json").read_text())["totals"]
    want = load_host(host).system(t["card_power_w"], 1, card_idle_w(load_arch("edu")), 1.0)
    assert t["system_power_w"] == pytest.approx(want.system_w)
    assert t["host_power_w"] == pytest.approx(want.host_w)
    assert "system power" in out
    code, out, err = cli("run", str(model), "--arch", "edu", "--json", str(tmp_path / "n.json"))
    assert code == 0 and "system power" not in out
    assert "system_power_w" not in json.loads((tmp_path / "n.json").read_text())["totals"]


@pytest.mark.parametrize("spec, needle", [("no-such-host", "no preset"),
                                          ("missing.yaml", "missing.yaml")])
def test_bad_host_on_the_cli_is_one_clean_error(cli, tmp_path, spec, needle):
    model = matmul_onnx(tmp_path / "m.onnx")
    for cmd in (["run", str(model), "--arch", "edu"],
                ["kperf", "--arch", "edu", "--model", "tiny-llama", "--out", str(tmp_path)]):
        code, _, err = cli(*cmd, "--host", str(tmp_path / spec) if spec.endswith("yaml")
                           else spec)
        assert clean_error(code, err) and "--host" in err and needle in err


def test_kperf_system_power_column(cli, tmp_path, linear_cost):
    linear_cost()
    common = ("kperf", "--arch", "h100", "--model", "llama-3.1-8b", "--input-lens", "128",
              "--output-lens", "16", "--users", "1,4", "--chips", "1", "--no-progress")
    code, out, err = cli(*common, "--out", str(tmp_path / "a"))
    assert code == 0, err
    assert "host dgx-h100" in out and "--host none" in out
    with open(tmp_path / "a" / "kperf.csv", newline="", encoding="utf-8") as f:
        recs = list(csv.DictReader(f))
    assert recs and all(float(r["system_power_w"]) > 8 * float(r["card_power_w"]) * 0.5
                        for r in recs)
    code, out, err = cli(*common, "--host", "none", "--out", str(tmp_path / "b"))
    assert code == 0, err
    with open(tmp_path / "b" / "kperf.csv", newline="", encoding="utf-8") as f:
        assert all(r["system_power_w"] in ("", "nan") for r in csv.DictReader(f))


# ----------------------------------------------------------------------------- validate

def _row(**kw) -> dict:
    """An idle system row of two edu cards in the host file h.yaml, with ``kw`` changed."""
    return blank_row(**{**dict(id="T1", sim_arch="edu", sim_chips="2", sim_mode="idle",
                               sim_metric="idle_power_w", sim_value="500", simulable="yes",
                               sim_boundary="system", sim_host="h.yaml"), **kw})


def test_system_rows_round_trip(cli, tmp_path):
    """An idle and a graph system row in a user's file, its host beside it: the report's
    predictions are the host model's figures for the simulated cards."""
    write_host(tmp_path / "h.yaml", GOOD)
    rows = [_row(), _row(id="T2", sim_mode="graph", sim_model="resnet50",
                         sim_metric="avg_power_w", sim_value="900")]
    data = write_rows(tmp_path / "m.csv", rows)
    sim = Simulator(tmp_path)
    edu, host = load_arch("edu"), load_host(tmp_path / "h.yaml")
    idle = simulate_row(sim, rows[0])
    assert idle.error_message == ""
    assert idle.predicted == pytest.approx(
        host.system(card_idle_w(edu), 2, card_idle_w(edu), 0.0).system_w)
    graph = simulate_row(sim, rows[1])
    assert graph.error_message == "" and "host h" in graph.load
    card = sim.predict(dict(rows[1], sim_boundary="", sim_host="",
                            sim_metric="avg_power_w_per_chip", sim_chips="1"))[0]
    assert card > 0
    assert graph.predicted == pytest.approx(system_power(host, edu, card, 2, 1.0)[0])
    code, out, err = cli("validate", "--data", str(data), "--out", str(tmp_path / "o"),
                         "--no-microchecks", "--no-progress")
    assert code == 0, err
    assert "T2" in (tmp_path / "o" / "REPORT.md").read_text(encoding="utf-8")


def test_shipped_x1_is_marked_fitted_and_reads_its_host():
    rows = {r["id"]: r for r in csv.DictReader(open(default_data(), newline="",
                                                    encoding="utf-8"))}
    sim = Simulator(default_data().parent)
    r = simulate_row(sim, rows["X1"])
    assert r.fitted and r.error_message == "" and "xe9680-h100" in r.load
    assert not simulate_row(sim, rows["X2"]).fitted


def test_shipped_a100_fits_hold_and_are_marked():
    """The A100 family's two fitted rows: W24 (energy.operand_delivery, calibration/a100.yaml)
    and W26 (dgx-a100's board): both reproduce their measurement and are marked fitted; the
    other simulable A100 wall rows are held out."""
    rows = {r["id"]: r for r in csv.DictReader(open(default_data(), newline="",
                                                    encoding="utf-8"))}
    sim = Simulator(default_data().parent)
    for rid in ("W24", "W26"):
        r = simulate_row(sim, rows[rid])
        assert r.fitted and r.error_message == "", rid
        assert r.predicted == pytest.approx(float(rows[rid]["value"]), rel=2e-3), rid
    assert load_host("dgx-a100").fitted_rows == ("W26",)
    assert not simulate_row(sim, rows["W28"]).fitted


def test_a100_board_rule_of_the_other_chassis():
    """GX2570 M6 carries dgx-a100's fitted board (same HGX A100 8-GPU baseboard); the
    4-GPU XE8545 half of it."""
    board = {h: next(c.idle_w for c in load_host(h).components if c.name == "board")
             for h in ("dgx-a100", "gx2570m6-a100", "xe8545-a100")}
    assert board["gx2570m6-a100"] == board["dgx-a100"]
    assert board["xe8545-a100"] == pytest.approx(board["dgx-a100"] / 2, abs=0.05)


def test_system_row_with_a_bad_host_file_fails_on_its_row(tmp_path):
    write_host(tmp_path / "h.yaml", _mutate(("slots",), 0))
    r = simulate_row(Simulator(tmp_path), _row())
    assert r.predicted is None and "sim_host" in r.error_message and "slots" in r.error_message


def test_validate_refuses_a_bad_host_file_before_running(cli, tmp_path):
    write_host(tmp_path / "h.yaml", _mutate(("psu", "capacity"), "6 kWh"))
    data = write_rows(tmp_path / "m.csv", [_row()])
    code, _, err = cli("validate", "--data", str(data), "--out", str(tmp_path / "o"),
                       "--no-microchecks", "--no-progress")
    assert clean_error(code, err) and "row T1, column sim_host" in err and "psu.capacity" in err
