"""The area model (npusim/energy/area.py): a small arch computed by hand, properties (more SRAM
never shrinks the chip; the area is the sum of its components), the die-area check against
published dies with its 20 % bound, the one fitted constant, and bad area tables."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import npusim
from npusim.arch import load_arch
from npusim.energy.area import (COMPONENTS, build_table, chip_area, die_checks,
                                fit_uncore_share, read_area_table, table_for_node)
from npusim.errors import ArchError

EDU = Path(npusim.__file__).resolve().parent / "archs" / "edu.yaml"

TOY_TABLE = """\
node: toy 10 nm
logic_density: 100 MTr/mm^2
sram: 2 mm^2/MiB
transistors_per_mac: {bf16: 20000, int8: 10000}
vector_lane: 1000000
core: 10000000
dram:
  ddr4: {unit: 32-bit channel, unit_bandwidth: 12.8 GB/s, channels_per_unit: 0.5, phy: 1 mm^2, controller: 100000000}
link:
  generic: {unit: lane, unit_bandwidth: 4 GB/s, phy: 0.5 mm^2, controller: 1000000}
uncore_share: 0.5
"""


def _clean_error(code: int, err: str) -> bool:
    lines = err.strip().splitlines()
    return code == 2 and len(lines) == 1 and ": error: " in err and "Traceback" not in err


def _toy(tmp_path: Path, table: str = TOY_TABLE) -> Path:
    arch = tmp_path / "toy.yaml"
    arch.write_text(EDU.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "toy.area.yaml").write_text(table, encoding="utf-8")
    return arch


# ----------------------------------------------------------------------------- by hand

def test_small_arch_by_hand(tmp_path):
    """edu (4 cores of 256 bf16/int8 MACs, 16 vector lanes, 256 KiB SRAM, 1 DDR4 channel, a
    16 GB/s link) under round constants, every component worked out on paper."""
    a = chip_area(load_arch(_toy(tmp_path)))
    want = {
        "mac": 4 * max(256 * 20000, 256 * 10000) / 100e6,     # 0.2048: bf16 sizes the array
        "vector": 4 * 16 * 1e6 / 100e6,                       # 0.64
        "noc": 4 * 1e7 / 100e6,                               # 0.4
        "sram": 4 * 0.25 * 2.0,                               # 2.0
        "shared_sram": 0.0, "accumulator": 0.0,
        "dram_phy": 2 * 1.0,                                  # 1 channel / 0.5 per unit = 2 units
        "dram_controller": 2 * 1e8 / 100e6,                   # 2.0
        "link_phy": 4 * 0.5,                                  # 16 GB/s / 4 GB/s = 4 lanes
        "link_controller": 4 * 1e6 / 100e6,                   # 0.04
    }
    covered = sum(want.values())                              # 9.2848
    want["uncore"] = covered                                  # share 0.5: as much again
    assert a.node == "toy 10 nm" and a.notes == ()
    assert dict(a.components_mm2) == pytest.approx(want, rel=1e-12)
    assert a.total_mm2 == pytest.approx(18.5696, rel=1e-12)


def test_rngd_components_from_the_shipped_tables():
    """RNGD on the N5 table: the SRAM term is 8 PEs x 32 MiB x 1.742 mm^2/MiB; 2 HBM3 stacks
    (32 channels / 16) of 10.45 mm^2 PHY each; 16 PCIe 5.0 lanes (63 GB/s / 3.938)."""
    c = chip_area(load_arch("rngd")).components_mm2
    assert c["sram"] == pytest.approx(8 * 32 * 1.742)
    assert c["dram_phy"] == pytest.approx(2 * 10.45)
    assert c["link_phy"] == pytest.approx(16 * 0.64)
    assert c["mac"] == pytest.approx(8 * 16384 * 25344 / 138.2e6)


def test_node_matching_takes_the_first_node_named():
    assert table_for_node("TSMC N7 (7 nm)").node == "TSMC N7"
    assert table_for_node("TSMC 4N (scaled as N5)").node.startswith("TSMC N5")
    assert table_for_node("Samsung 5 nm (weakly sourced; scaled as TSMC N5)").node.startswith(
        "TSMC N5")
    assert table_for_node("45 nm, 0.9 V").node == "45 nm"  # '5 nm' is not a token of '45 nm'
    assert table_for_node("FPGA, 16 nm-class") is None
    assert table_for_node("TSMC N50") is None and table_for_node("N55") is None
    assert table_for_node("TSMC A14 (1.4 nm)") is None and table_for_node("N5.5") is None


# ----------------------------------------------------------------------------- in results

def test_every_result_carries_area_and_its_breakdown(cli, tmp_path):
    out = tmp_path / "r.json"
    code, _, err = cli("run", "tiny-llama", "--arch", "rngd", "--json", str(out))
    assert code == 0, err
    t = json.loads(out.read_text())["totals"]
    assert t["area_mm2"] == pytest.approx(chip_area(load_arch("rngd")).total_mm2)
    assert set(t["area_by_component_mm2"]) == set(COMPONENTS)
    assert sum(t["area_by_component_mm2"].values()) == pytest.approx(t["area_mm2"])
    roof = npusim.simulate("tiny-llama", "h100", engine="roofline")
    assert roof.totals()["area_mm2"] == pytest.approx(chip_area(load_arch("h100")).total_mm2)


def test_run_prints_area_beside_tdp(cli):
    code, out, _ = cli("run", "tiny-llama", "--arch", "rngd")
    line = next(x for x in out.splitlines() if "silicon area" in x)
    assert "mm^2" in line and "TDP 150 W" in line


def test_unknown_node_is_nan_with_the_reason(cli, tmp_path):
    """A node no area table covers (here TSMC A14, set through the energy table's node): nan,
    never a number borrowed from another node, and the notes (and the JSON) say why."""
    arch = load_arch("edu", ["energy.node=TSMC A14 (1.4 nm)"])
    t = npusim.simulate("tiny-llama", arch).totals()
    assert math.isnan(t["area_mm2"]) and t["area_by_component_mm2"] == {}
    assert "no area table for process node" in t["area_notes"][0] and "A14" in t["area_notes"][0]
    out = tmp_path / "r.json"
    code, printed, _ = cli("run", "tiny-llama", "--arch", "edu", "--set",
                           "energy.node=TSMC A14 (1.4 nm)", "--json", str(out))
    assert code == 0 and json.loads(out.read_text())["totals"]["area_mm2"] == "nan"
    assert "silicon area unknown" in printed
    assert math.isnan(chip_area(load_arch("gddr6-aim")).total_mm2)     # an FPGA


def test_link_without_a_phy_figure_is_costed_as_pcie_and_says_so():
    a = chip_area(load_arch("rngd", ["link.kind=optical"]))
    assert any("optical" in n and "pcie_gen5" in n for n in a.notes)
    assert a.components_mm2["link_phy"] == pytest.approx(16 * 0.64)


# ----------------------------------------------------------------------------- properties

@settings(max_examples=25, deadline=None)
@given(st.integers(1, 96), st.integers(0, 96), st.integers(0, 512))
def test_more_sram_never_shrinks_the_chip(small, extra, shared):
    """Adding core SRAM or shared SRAM to RNGD never lowers its area, and the area is always
    the sum of its components."""
    base = chip_area(load_arch("rngd", [f"cores.sram={small}MiB", f"shared_sram={shared}MiB"]))
    more = chip_area(load_arch("rngd", [f"cores.sram={small + extra}MiB",
                                        f"shared_sram={shared + extra}MiB"]))
    assert more.total_mm2 >= base.total_mm2
    for a in (base, more):
        assert sum(a.components_mm2.values()) == pytest.approx(a.total_mm2, rel=1e-12)
        assert all(v >= 0 for v in a.components_mm2.values())


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["rngd", "h100", "a100", "atom", "rebel-quad"]),
       st.integers(1, 256), st.floats(0.5, 8.0))
def test_area_grows_with_cores_and_bandwidth(name, cores, bw_scale):
    """More cores or more DRAM bandwidth never shrink a chip (components are monotone)."""
    arch = load_arch(name)
    one = chip_area(load_arch(name, [f"cores.count={cores}"]))
    more = chip_area(load_arch(name, [f"cores.count={cores + 1}"]))
    assert more.total_mm2 > one.total_mm2
    bw = arch.dram.bandwidth
    lo = chip_area(load_arch(name, ["dram.channels=null", f"dram.bandwidth={bw}B/s"]))
    hi = chip_area(load_arch(name, ["dram.channels=null", f"dram.bandwidth={bw * bw_scale}B/s"]))
    if bw_scale >= 1.0:
        assert hi.total_mm2 >= lo.total_mm2
    else:
        assert hi.total_mm2 <= lo.total_mm2


# ----------------------------------------------------------------------------- die areas

CHECKS = {c.name: c for c in die_checks()}
PUBLISHED = [n for n, c in CHECKS.items() if c.published_mm2 is not None]
# Fails the 20 % bound honestly (-25 %): the arch's SRAM sizes and core count are assumptions
# (rebel-quad.yaml), and the package is four dies, each with its own uncore and three UCIe PHYs,
# none of which the single-chip model counts. Not tuned away; strict, so a pass is noticed.
MISSES = {"Rebellions REBEL-Quad (4 chiplets)": "4 chiplets with UCIe PHYs and assumed SRAM"}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason=MISSES[n], strict=True)) if n in MISSES
    else n for n in PUBLISHED])
def test_die_area_within_20_percent(name):
    c = CHECKS[name]
    assert abs(c.error) <= 0.20, (f"{name}: predicted {c.predicted_mm2:.0f} mm^2 vs published "
                                  f"{c.published_mm2:.0f} mm^2 ({100 * c.error:+.1f} %)")


def test_one_constant_fitted_on_one_chip():
    """uncore_share is the fit on the one chip marked fitted (H100), to the 4 decimals shipped;
    the fitted chip then matches its die, and the other chips are held out."""
    fitted = [c for c in CHECKS.values() if c.fitted]
    assert [c.name for c in fitted] == ["NVIDIA H100 SXM5 (GH100)"]
    name, share = fit_uncore_share()
    assert name == fitted[0].name
    table = read_area_table(Path(npusim.__file__).parent / "archs" / "area" / "n5.yaml")
    assert table.uncore_share == pytest.approx(round(share, 4), abs=1e-12)
    assert abs(fitted[0].error) < 1e-3


def test_docs_die_table_is_what_the_model_gives():
    """docs/area.md's die-area table shows today's predictions and errors (re-run
    ``python -m npusim.energy.area`` and copy the figures when the model changes)."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "area.md").read_text(encoding="utf-8")
    for name, c in CHECKS.items():
        short = name.split(" (")[0]
        row = next(line for line in doc.splitlines()
                   if line.startswith(f"| {short}") and "mm^2" not in line.split("|")[2])
        cells = [x.strip() for x in row.split("|")[1:-1]]
        assert cells[1] == f"{c.predicted_mm2:,.0f}", (name, cells)
        if c.error is not None:
            assert cells[3] == f"{100 * c.error:+.1f} %", (name, cells)


def test_atom_area_is_not_published():
    c = CHECKS["Rebellions ATOM"]
    assert c.published_mm2 is None and c.error is None and c.predicted_mm2 > 0


# ----------------------------------------------------------------------------- bad tables

BAD = [
    ("sram: 2 mm^2/MiB", "sram: 2 mm^2", "sram"),                          # wrong unit kind
    ("sram: 2 mm^2/MiB", "sram: 2 mm/MiB", "sram"),                        # not an area
    ("sram: 2 mm^2/MiB", "sram: -2 mm^2/MiB", "sram"),                     # negative
    ("logic_density: 100 MTr/mm^2", "logic_density: 100", "logic_density"),  # no unit
    ("vector_lane: 1000000", "vector_lane: -5", "vector_lane"),
    ("vector_lane: 1000000", "vector_lane: 1 mm^2", "vector_lane"),
    ("uncore_share: 0.5", "uncore_share: 1.5", "uncore_share"),
    ("uncore_share: 0.5", "uncore_shar: 0.5", "uncore_shar"),               # unknown key
    ("phy: 1 mm^2, controller", "phy: 1 pJ, controller", "dram.ddr4.phy"),
    ("phy: 1 mm^2, controller", "phy: 900 mm^2, controller", "dram.ddr4.phy"),  # beyond a reticle
    ("unit_bandwidth: 4 GB/s", "unit_bandwidth: 4 GHz", "link.generic.unit_bandwidth"),
    ("{bf16: 20000, int8: 10000}", "{bf17: 20000}", "transistors_per_mac.bf17"),
    ("channels_per_unit: 0.5, ", "", "dram.ddr4.channels_per_unit"),        # missing
    ("node: toy 10 nm\n", "", "node"),
    ("sram: 2 mm^2/MiB", "sram: [2]", "sram"),
    ("core: 10000000", "core: .nan", "core"),
]


@pytest.mark.parametrize("old,new,field", BAD)
def test_bad_area_table_names_file_and_field(tmp_path, old, new, field):
    assert old in TOY_TABLE
    arch = load_arch(_toy(tmp_path, TOY_TABLE.replace(old, new, 1)))
    with pytest.raises(ArchError) as exc:
        chip_area(arch)
    msg = str(exc.value)
    assert "toy.area.yaml" in msg and field in msg and "\n" not in msg


@pytest.mark.parametrize("text", ["[1, 2]", "", "node: [", "a: 1\na: 2\n"])
def test_malformed_area_file_is_one_clear_error(tmp_path, cli, text):
    arch = _toy(tmp_path, text)
    code, _, err = cli("run", "tiny-llama", "--arch", str(arch))
    assert _clean_error(code, err) and "toy.area.yaml" in err


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([b[0] for b in BAD]),
       st.one_of(st.text(max_size=12), st.integers(-10**12, 10**12).map(str),
                 st.sampled_from(["1 mm^2", "-1 mm^2", "1e400 MTr/mm^2", "{}", "[]", "null",
                                  "2 mm^2/GiB", "0 mm^2/MiB", "1 W"])))
def test_fuzz_area_table_through_the_cli(tmp_path_factory, cli, old, junk):
    """Any value in place of a table's field ends in a result or one clean error, never a
    traceback; the error names the table."""
    tmp = tmp_path_factory.mktemp("fz")
    key = old.split(":")[0]
    arch = _toy(tmp, TOY_TABLE.replace(old, f"{key}: {json.dumps(junk)}", 1))
    code, _, err = cli("run", "tiny-llama", "--arch", str(arch), "--engine", "roofline")
    assert code == 0 or (_clean_error(code, err) and "toy.area.yaml" in err), err


def test_shipped_tables_validate():
    from npusim.energy.area import shipped_tables
    nodes = [t.node for t in shipped_tables()]
    assert sorted(nodes) == ["45 nm", "TSMC N5 family (N5, N4, 4N)", "TSMC N7"]
    assert all(t.matches for t in shipped_tables())
    with pytest.raises(ArchError, match="matches"):
        build_table({"node": "x", "logic_density": "1 MTr/mm^2", "sram": "1 mm^2/MiB"}, "t.yaml")


def test_fuzz_corpus_cases_are_clean(cli, tmp_path):
    """benchmarks/fuzz_cases/area.py through the CLI: each certainly-bad table is one clean
    error, and no case ends in anything but a result or one clean error."""
    import importlib.util
    import random
    src = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_cases" / "area.py"
    spec = importlib.util.spec_from_file_location("fuzz_cases_area", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    seen = set()
    for label, argv, must_fail in mod.cases(tmp_path, random.Random(7), 24):
        code, _, err = cli(*argv)
        seen.add(label)
        assert _clean_error(code, err) if must_fail else (code == 0 or _clean_error(code, err)), \
            (label, argv, err)
    assert seen == {"area/value", "area/structure"}
