"""The shipped PIM presets (hbm2-pim, gddr6-aim, lpddr5x-pim, lpddr6-pim), the HBM2 timing
preset and the gpt-oss-20b config: they load, every number carries a source comment, and the
model-independent arithmetic of each (units, peak MAC rate, internal bandwidth = units x burst
/ column interval, external bandwidth) reproduces the published figures in
/work/shared/reference/pim.md (sec. 0, 2, 3); nonsense PIM fields are refused naming the field.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from npusim import load_arch
from npusim.arch.dram_timing import load_dram_timing
from npusim.energy import load_energy_table
from npusim.engine.dram import dram_setup
from npusim.errors import ArchError
from npusim.graphs import builder as B
from npusim.kernels import dram as kd

ARCHS = Path(__file__).resolve().parents[1] / "npusim" / "archs"
PRESETS = ["hbm2-pim", "gddr6-aim", "lpddr5x-pim", "lpddr6-pim"]
BYTES = {"fp16": 2, "bf16": 2, "fp8_e4m3": 1, "fp8_e5m2": 1, "int8": 1, "int4": 0.5}


def _numbers(arch: str):
    """(units, peak MAC/s per dtype, internal B/s, external B/s, setup) of a shipped preset,
    from the loaded arch and the resolved DRAM only (no PIM kernel or engine involved)."""
    a = load_arch(arch)
    s = dram_setup(a)
    p = a.pim
    units = s.channels * (s.bank_groups * s.banks_per_group // p.banks_per_unit)
    interval = p.column_interval if p.column_interval is not None else s.timing[kd.T_CCD_L]
    peak = {d: units * r * p.clock for d, r in p.macs_per_cycle.items()}
    return units, peak, units * s.burst / interval, s.bandwidth, s, interval


# ------------------------------------------------------------------------------ loading
@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_with_its_units_and_energy_table(name):
    a = load_arch(name)
    assert a.name == name and a.pim is not None and a.pim_on and a.pim.device == name
    d = a.to_dict()
    assert json.loads(json.dumps(d)) == d
    table = load_energy_table(a)
    assert table.name == name
    # every dtype the host runs natively has a MAC energy in the host's table
    assert set(a.cores.engine.macs_per_cycle) <= set(table.mac)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_is_also_plain_dram(name):
    off = load_arch(f"{name}+none")
    assert off.pim is None and off.dram == load_arch(name).dram
    assert not load_arch(name, ["pim.enabled=false"]).pim_on


@pytest.mark.parametrize("path", [f"{n}.yaml" for n in PRESETS] + ["dram/hbm2.yaml"]
                         + [f"energy/{n}.yaml" for n in PRESETS])
def test_every_number_has_a_source_comment(path):
    for i, line in enumerate((ARCHS / path).read_text().splitlines(), 1):
        body = line.split("#", 1)[0]
        if ":" not in body or body.strip().startswith(("name:", "description:", "node:")) \
                or line.lstrip().startswith("#") or "://" in body or "pim.md" in body:
            continue  # names, and the `sources:` entries (references, not values)
        value = body.partition(":")[2]
        if value.strip() and any(ch.isdigit() for ch in value):
            assert "#" in line, f"{path} line {i} has a number with no source comment"


@pytest.mark.parametrize("name", PRESETS)
def test_every_pim_value_says_source_or_assumption(name):
    # inside the pim section, a value's comment names a pim.md source ([..]) or 'assumption'
    text = (ARCHS / f"{name}.yaml").read_text()
    section = text[text.index("\npim:\n"):]
    for line in section.splitlines()[1:]:
        body, _, comment = line.partition("#")
        value = body.partition(":")[2].strip()
        if not value or value in ("true", "false") and "#" not in line:
            continue
        if any(ch.isdigit() for ch in value) or value in ("null", "true", "false"):
            assert "[" in comment or "assumption" in comment or "not published" in comment \
                or "tCCD_L" in comment, f"{name}: {line.strip()}"


# ------------------------------------------------------------------------------ HBM2 preset
def test_hbm2_preset_is_pimsimulators_aquabolt_xl_at_2_4_gbps():
    t = load_dram_timing("hbm2")
    assert (t.bus_width, t.burst, t.bank_groups, t.banks_per_group, t.row_size) == \
        (64, 32.0, 4, 4, 1024.0)
    ns = {k: v * 1e9 for k, v in t.timings_at().items()}
    assert ns["tRCD"] == pytest.approx(14) and ns["tRP"] == pytest.approx(14)
    # 300 MHz PCU = 1 / tCCD_L with tCCD_L = 4 nCK at the 1.2 GHz clock of 2.4 Gb/s pins
    assert 1 / t.timings_at()["tCCD_L"] == pytest.approx(300e6)
    assert t.channel_bandwidth == pytest.approx(19.2e9)   # 64 bit x 2.4 Gb/s / 8


# ------------------------------------------------------------------------------ arithmetic
def test_hbm2_pim_figures():
    units, peak, internal, external, s, interval = _numbers("hbm2-pim")
    assert units == 4 * 16 * 16 // 2 == 512
    per_stack_flops = 2 * peak["fp16"] / 4
    assert per_stack_flops == pytest.approx(1.2e12, rel=0.03)          # [P1] 1.2 TFLOPS/stack
    assert internal / external == pytest.approx(4.0, rel=1e-9)         # [P1] 4x
    assert internal / s.channels == pytest.approx(8 * 32 / (4 / 1.2e9))  # 76.8 GB/s per pCH
    assert external == pytest.approx(1228.8e9)                         # MI100 1.23 TB/s


def test_gddr6_aim_figures():
    units, peak, internal, external, s, interval = _numbers("gddr6-aim")
    chips = s.channels // 2
    assert units // chips == 32                                        # pim.md sec. 2 EST
    # [P9]'s 512 GB/s internal and 32 GB/s external, read per channel (the arch's header)
    assert internal / s.channels == pytest.approx(512e9, rel=1e-9)
    assert external / s.channels == pytest.approx(32e9, rel=1e-9)
    assert internal / external == pytest.approx(16.0, rel=1e-9)        # [P8] 16x
    assert 2 * peak["bf16"] / chips == pytest.approx(1.0e12, rel=0.03)  # [P6] 1 TFLOPS


def test_lpddr5x_pim_figures():
    units, peak, internal, external, s, interval = _numbers("lpddr5x-pim")
    assert units == 4 * 16
    assert internal == pytest.approx(614.4e9, rel=1e-3)                # [P12] 614 GB/s
    assert internal / external == pytest.approx(8.0, rel=1e-3)         # [P12] 8x
    assert external == pytest.approx(76.8e9)                           # x64 LPDDR5X-9600


def test_lpddr6_pim_figures():
    units, peak, internal, external, s, interval = _numbers("lpddr6-pim")
    assert units == 8 * 16
    assert internal / external == pytest.approx(9.6, rel=1e-3)         # pim.md sec. 3
    assert internal / s.channels == pytest.approx(136.5e9, rel=1e-3)   # per sub-channel
    assert external == pytest.approx(113.8e9, rel=1e-3)                # x96 payload, sec. 1
    assert interval == pytest.approx(3.75e-9, rel=1e-5)                # tCCD_L 10 nCK


@pytest.mark.parametrize("name", ["hbm2-pim", "lpddr5x-pim", "lpddr6-pim"])
def test_units_consume_exactly_one_burst_per_column_command(name):
    # the unit clock and MAC rates are set so a unit's MACs keep pace with its column
    # reads: bytes per cycle x clock = burst / column interval, for every native dtype
    a = load_arch(name)
    *_, s, interval = _numbers(name)
    for dtype, rate in a.pim.macs_per_cycle.items():
        consumed = rate * BYTES[dtype] * a.pim.clock
        assert consumed == pytest.approx(s.burst / interval, rel=1e-3), dtype


def test_composed_system_places_units_in_the_host_dram():
    a = load_arch("rngd+lpddr6-pim")
    s = dram_setup(a)
    units = s.channels * s.bank_groups * s.banks_per_group // a.pim.banks_per_unit
    assert units == 32 * 16 and a.dram == load_arch("rngd").dram


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("override, field", [
    ("pim.clock=0 Hz", "pim.clock"),
    ("pim.banks_per_unit=0", "pim.banks_per_unit"),
    ("pim.macs_per_cycle.fp16=0", "pim.macs_per_cycle"),
    ("pim.macs_per_cycle.fp16=null", "pim.macs_per_cycle"),       # a dtype with no rate
    ("pim.energy.mac.mxfp4=1 pJ", "pim.energy.mac.mxfp4"),        # an energy without a rate
    ("pim.macs_per_cycle.mxfp4=64", "pim.energy.mac"),            # a rate without an energy
    ("pim.column_interval=0 s", "pim.column_interval"),
    ("pim.energy.column=-1 pJ/B", "pim.energy.column"),
])
@pytest.mark.parametrize("name", ["hbm2-pim", "lpddr6-pim"])
def test_nonsense_pim_fields_on_a_preset_are_refused_naming_the_field(name, override, field):
    with pytest.raises(ArchError) as e:
        load_arch(name, [override])
    assert field in str(e.value) and "\n" not in str(e.value)


def test_banks_per_unit_that_does_not_divide_the_preset_banks_is_refused():
    with pytest.raises(ArchError, match="pim.banks_per_unit"):
        load_arch("hbm2-pim", ["pim.banks_per_unit=3"])


# ------------------------------------------------------------------------------ gpt-oss-20b
def test_gpt_oss_20b_config_and_parameter_count():
    cfg = B.load_config("gpt-oss-20b")
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
            cfg["num_key_value_heads"], cfg["head_dim"], cfg["vocab_size"]) == \
        (2880, 24, 64, 8, 64, 201088)
    assert (cfg["num_local_experts"], cfg["num_experts_per_tok"]) == (32, 4)
    assert cfg["layer_types"] == ["sliding_attention", "full_attention"] * 12
    meta = cfg["_npusim"]
    assert meta["source"].startswith("https://huggingface.co/openai/gpt-oss-20b")
    # by hand, as tests/test_llm_builder.py does for 120b, with 24 layers and 32 experts
    d, e, f, v, layers = 2880, 32, 2880, 201088, 24
    attn = (d * 4096 + 4096) + 2 * (d * 512 + 512) + (4096 * d + d) + 64
    moe = d * e + e + e * (2 * (d * f + f) + f * d + d)
    n = B.count_parameters("gpt-oss-20b")
    assert n == layers * (attn + moe + 2 * d) + 2 * v * d + d
    assert n == pytest.approx(meta["published_params"], rel=0.005)     # 20.9B, model card
