"""The arch side of PIM: the ``pim`` section is validated like every field, and archs compose
(``HOST+DEVICE`` puts DEVICE's units in HOST's DRAM, ``HOST+none`` removes them)."""
from __future__ import annotations

from importlib.resources import files

import pytest

from npusim import load_arch
from npusim.arch.loader import list_archs
from npusim.energy import load_energy_table
from npusim.errors import ArchError

PIM = """
pim:
  device: edu-pim
  enabled: true
  banks_per_unit: 1
  clock: 400 MHz
  macs_per_cycle: {bf16: 16}
  column_interval: null
  input_buffer: 2 KiB
  accumulators: 8
  accumulator_bytes: 2 B
  vectors_per_pass: 1
  all_bank_act: false
  mode_switch: 100 ns
  ops: [gemv, attention]
  dual_row_buffer: false
  energy: {mac: {bf16: 0.5 pJ}, column: 0.2 pJ/B, unit_static: 0 W}
"""


@pytest.fixture()
def edu_pim(tmp_path):
    """The teaching chip with PIM units in its DDR4 (a test arch; every value invented)."""
    text = files("npusim.archs").joinpath("edu.yaml").read_text(encoding="utf-8")
    path = tmp_path / "edupim.yaml"
    path.write_text(text.replace("name: edu", "name: edupim", 1) + PIM, encoding="utf-8")
    return path


def test_the_section_is_read_into_si_units(edu_pim):
    p = load_arch(edu_pim).pim
    assert p.device == "edu-pim" and p.enabled
    assert p.clock == 400e6 and p.macs_per_cycle == {"bf16": 16.0}
    assert p.input_buffer == 2048 and p.accumulator_bytes == 2 and p.accumulators == 8
    assert p.mode_switch == pytest.approx(100e-9)
    assert p.ops == ("gemv", "attention") and not p.all_bank_act
    assert p.energy.mac["bf16"] == pytest.approx(0.5e-12)
    assert p.energy.column == pytest.approx(0.2e-12)
    assert p.peak_macs_per_unit_s("bf16") == pytest.approx(6.4e9)
    assert p.peak_macs_per_unit_s("int8") == 0.0


def test_an_arch_without_the_section_has_no_pim():
    a = load_arch("rngd")
    assert a.pim is None and not a.pim_on and a.host_name == "rngd"


@pytest.mark.parametrize("override, field", [
    ("pim.clock=0 Hz", "pim.clock"),
    ("pim.banks_per_unit=0", "pim.banks_per_unit"),
    ("pim.banks_per_unit=3", "pim.banks_per_unit"),          # 16 banks per channel
    ("pim.accumulators=0", "pim.accumulators"),
    ("pim.ops=conv", "pim.ops"),
    ("pim.enabled=maybe", "pim.enabled"),
    ("pim.column_interval=0 s", "pim.column_interval"),
    ("pim.input_buffer=3 GHz", "pim.input_buffer"),
    ("pim.energy.column=1 pJ/bit furlong", "pim.energy.column"),
    ("pim.macs_per_cycle.int8=32", "pim.energy.mac"),          # a rate without an energy
    ("pim.energy.mac.int8=1 pJ", "pim.energy.mac.int8"),       # an energy without a rate
    ("dram.type=generic", "pim"),                              # PIM timing is the DRAM's
])
def test_nonsense_pim_fields_are_refused_naming_the_field(edu_pim, override, field):
    with pytest.raises(ArchError) as e:
        load_arch(edu_pim, [override])
    assert field in str(e.value) and "\n" not in str(e.value)


def test_enabled_false_keeps_the_units_described_but_off(edu_pim):
    a = load_arch(edu_pim, ["pim.enabled=false"])
    assert a.pim is not None and not a.pim_on


def test_pim_null_or_none_removes_the_section(edu_pim):
    assert load_arch(edu_pim, ["pim=null"]).pim is None
    assert load_arch(edu_pim, ["pim=none"]).pim is None


def _shipped_with_pim() -> list[str]:
    return [n for n, _ in list_archs() if load_arch(n).pim is not None]


def test_the_four_pim_presets_are_listed():
    assert set(_shipped_with_pim()) == {"hbm2-pim", "gddr6-aim", "lpddr5x-pim", "lpddr6-pim"}


def test_composition_names_and_energy():
    shipped = _shipped_with_pim()
    assert shipped, "the PIM presets are shipped"
    device = shipped[0]
    a = load_arch(f"rngd+{device}")
    assert a.name == f"rngd+{device}" and a.host_name == "rngd"
    assert a.pim == load_arch(device).pim
    # everything but the pim section is rngd's own
    rngd = load_arch("rngd")
    assert a.dram == rngd.dram and a.cores == rngd.cores and a.power == rngd.power
    assert load_energy_table(a) == load_energy_table(rngd)
    off = load_arch(f"{device}+none")
    assert off.pim is None and off.host_name == device
    assert off.dram == load_arch(device).dram
    # the same through the file's own field
    assert load_arch("rngd", [f"pim={device}"]).pim == a.pim


def test_composition_with_overrides_on_the_units():
    shipped = _shipped_with_pim()
    assert shipped, "the PIM presets are shipped"
    a = load_arch(f"rngd+{shipped[0]}", ["pim.clock=1 GHz"])
    assert a.pim.clock == 1e9


@pytest.mark.parametrize("spec, words", [
    ("rngd+nosuch", ["nosuch", "not a shipped arch with PIM units"]),
    ("rngd+rngd", ["rngd", "not a shipped arch with PIM units"]),
    ("+hbm2-pim", ["HOST+DEVICE"]),
    ("rngd+", ["HOST+DEVICE"]),
    ("nosuch+none", ["nosuch"]),
])
def test_bad_compositions_are_one_clean_error(spec, words):
    with pytest.raises(ArchError) as e:
        load_arch(spec)
    for w in words:
        assert w in str(e.value)


def test_a_file_whose_name_has_a_plus_is_a_file(tmp_path):
    text = files("npusim.archs").joinpath("edu.yaml").read_text(encoding="utf-8")
    path = tmp_path / "a+b.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_arch(str(path)).name == "edu"


def test_pim_string_in_a_file_takes_the_shipped_section(tmp_path):
    shipped = _shipped_with_pim()
    assert shipped, "the PIM presets are shipped"
    text = files("npusim.archs").joinpath("rngd.yaml").read_text(encoding="utf-8")
    path = tmp_path / "mine.yaml"
    path.write_text(text + f"pim: {shipped[0]}\n", encoding="utf-8")
    assert load_arch(path).pim == load_arch(shipped[0]).pim
    path.write_text(text + "pim: nosuch\n", encoding="utf-8")
    with pytest.raises(ArchError, match="mine.yaml: pim: 'nosuch'"):
        load_arch(path)
