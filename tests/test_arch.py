"""Architecture files: shipped archs and their hand-checked peaks, overrides, bad input."""
from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import pytest

from npusim.arch import Arch, list_archs, load_arch
from npusim.arch.units import parse_quantity
from npusim.errors import ArchError
from npusim.ir import BF16, FP8_E4M3, INT8, dtype

ARCHS_DIR = Path(__file__).resolve().parents[1] / "npusim" / "archs"
SHIPPED = ["a100", "atom", "edu", "h100", "h200", "rngd", "systolic-128"]
KiB, MiB = 2**10, 2**20


# ----------------------------------------------------------------------------- shipped archs

def test_list_archs_is_sorted_and_complete():
    names = [n for n, _ in list_archs()]
    assert names == sorted(names)
    assert set(SHIPPED) <= set(names)
    for _, desc in list_archs():
        assert desc and "\n" not in desc


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_arch_loads_and_round_trips(name):
    a = load_arch(name)
    assert isinstance(a, Arch)
    assert a.name == name
    d = a.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["units"]["dram.bandwidth"] == "B/s"
    assert pickle.loads(pickle.dumps(a)) == a
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.clock = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_number_has_a_comment(name):
    # Each line that sets a value carries a '#' comment (source or 'assumption'), except the
    # name/description lines and null values without a number.
    for i, line in enumerate((ARCHS_DIR / f"{name}.yaml").read_text().splitlines(), 1):
        body = line.split("#", 1)[0]
        if ":" not in body or body.strip().startswith(("name:", "description:")):
            continue
        key, _, value = body.partition(":")
        if value.strip() and any(ch.isdigit() for ch in value):
            assert "#" in line, f"{name}.yaml line {i} has a number with no source comment"


def test_rngd_peaks_by_hand():
    a = load_arch("rngd")
    slices = 8 * 64
    assert a.peak_macs_per_s("bf16") == slices * 256 * 1e9
    assert a.peak_macs_per_s(FP8_E4M3) == slices * 512 * 1e9
    assert a.peak_macs_per_s("int8") == slices * 512 * 1e9
    assert a.peak_macs_per_s("int4") == slices * 1024 * 1e9
    # the vendor's 256 TFLOPS is our 262.144 / 1.024 (power-of-two rounding)
    assert 2 * a.peak_macs_per_s("bf16") / 1.024 == 256e12
    assert a.sram_total == slices * 512 * KiB == 256 * MiB
    assert a.dram.bandwidth == 1.5e12 and a.dram.capacity == 48e9
    assert a.dram.channels == 32
    assert (a.dma.engines, a.dma.bytes_per_cycle, a.dma.startup_cycles) == (8, 256, 500)
    assert a.peak_vector_ops_per_s == slices * 4 * 1e9
    assert a.cores.sram_bandwidth == 64 * 128
    assert a.power.tdp == 150 and a.link.kind.startswith("pcie_gen5")


def test_rngd_runs_mxfp4_as_fp8():
    a = load_arch("rngd")
    assert a.execution_dtype("mxfp4") == FP8_E4M3
    assert a.peak_macs_per_s("mxfp4") == a.peak_macs_per_s("fp8_e4m3")
    assert a.execution_dtype(BF16) == BF16


def test_h100_and_h200_peaks():
    h100, h200 = load_arch("h100"), load_arch("h200")
    # datasheet dense BF16 989.4 TFLOPS, FP8 1978.9: within 0.05 %
    assert 2 * h100.peak_macs_per_s("bf16") == pytest.approx(989.4e12, rel=5e-4)
    assert 2 * h100.peak_macs_per_s("fp8_e4m3") == pytest.approx(1978.9e12, rel=5e-4)
    assert h100.execution_dtype("int4") == INT8
    assert h100.execution_dtype("mxfp4") == BF16
    assert h100.dram.bandwidth == 3.35e12
    assert h100.sram_total == 132 * 228 * KiB + 50 * MiB
    assert h200.peak_macs_per_s("bf16") == h100.peak_macs_per_s("bf16")
    assert (h200.dram.bandwidth, h200.dram.capacity) == (4.8e12, 141e9)
    # the datasheet link figure; the calibrated arch carries the NCCL-fitted one instead
    raw = load_arch("h100", calibrated=False), load_arch("h200", calibrated=False)
    assert raw[0].link.bandwidth == raw[1].link.bandwidth == 450e9
    assert h100.link.bandwidth == h200.link.bandwidth
    assert list(h100.calibrated()["link.bandwidth"]["rows"]) == ["N58"]


def test_a100_peaks():
    a = load_arch("a100")
    assert 2 * a.peak_macs_per_s("bf16") == pytest.approx(312e12, rel=5e-4)
    assert 2 * a.peak_macs_per_s("int8") == pytest.approx(624e12, rel=5e-4)
    assert 2 * a.peak_macs_per_s("int4") == pytest.approx(1248e12, rel=5e-4)
    assert a.execution_dtype("fp8_e4m3") == BF16  # no FP8 tensor cores on Ampere
    assert a.dram.bandwidth == 2039e9


def test_atom_keeps_published_chip_peaks_exactly():
    a = load_arch("atom")
    assert 2 * a.peak_macs_per_s("fp16") == 32e12
    assert 2 * a.peak_macs_per_s("int8") == 128e12
    assert 2 * a.peak_macs_per_s("int4") == 256e12
    assert a.execution_dtype("fp32") == BF16
    assert a.sram_total == 8 * 4 * MiB + 32 * MiB
    assert a.cores.engine.rows is None  # unpublished stays unpublished


def test_systolic_128_gemm_ideal_cycles():
    a = load_arch("systolic-128")
    macs_per_cycle = a.peak_macs_per_s("int8") / a.clock
    assert 1024**3 / macs_per_cycle == 65536  # SCALE-Sim reference run's ideal
    assert a.sram_total == 3 * MiB and a.link is None


def test_edu_round_numbers():
    a = load_arch("edu")
    assert a.peak_macs_per_s("bf16") == 1.024e12
    assert a.peak_macs_per_s("bf16") / a.dram.bandwidth == 40.0
    assert a.sram_total == 4 * 256 * KiB


def test_missing_dtype_without_fallback_is_an_error():
    with pytest.raises(ArchError, match=r"h100 has no MAC rate for dtype fp64 and no fallback"):
        load_arch("h100").peak_macs_per_s("fp64")
    with pytest.raises(ArchError, match="unknown dtype"):
        load_arch("h100").execution_dtype("fp99")


# ----------------------------------------------------------------------------- overrides

def test_string_override_changes_exactly_that_field():
    base, new = load_arch("rngd"), load_arch("rngd", ["dram.bandwidth=3TB/s"])
    assert new.dram.bandwidth == 3e12
    assert dataclasses.replace(base, dram=dataclasses.replace(base.dram, bandwidth=3e12),
                               overrides=new.overrides) == new
    assert load_arch("rngd").dram.bandwidth == 1.5e12  # the file is untouched


def test_mapping_override_and_counts():
    a = load_arch("rngd", {"dram.bandwidth": "3 TB/s", "cores.count": 16})
    assert a.dram.bandwidth == 3e12
    assert a.peak_macs_per_s("bf16") == 2 * load_arch("rngd").peak_macs_per_s("bf16")
    assert load_arch("rngd", ["cores.count=16"]).cores.count == 16
    assert a.overrides == ("dram.bandwidth=3 TB/s", "cores.count=16")


def test_override_into_dtype_maps():
    a = load_arch("h100", ["dtype_fallback.fp64=fp32"])
    assert a.execution_dtype("fp64") == dtype("fp32")
    with pytest.raises(ArchError, match=r"dtype_fallback\.int4.*contradictory"):
        load_arch("h100", ["cores.engine.macs_per_cycle.int4=8192"])


def test_override_of_null_section_and_nullable_field():
    assert load_arch("rngd", ["link.latency=2 us"]).link.latency == pytest.approx(2e-6)
    with pytest.raises(ArchError, match=r"systolic-128\.yaml: link\.kind: missing"):
        load_arch("systolic-128", ["link.bandwidth=1GB/s"])


@pytest.mark.parametrize("override, needle", [
    (["dram.bandwiddth=3TB/s"], r"unknown field 'dram\.bandwiddth' \(did you mean 'bandwidth'\?\)"),
    (["nosuch=1"], r"unknown field 'nosuch'.*valid fields in the top level: clock"),
    (["dram.bandwidth=3GHz"], r"dram\.bandwidth \(from override .*is a frequency; expected bytes"),
    ({"dram.bandwidth": 3}, r"dram\.bandwidth .*number without a unit"),
    (["cores.count=0"], r"cores\.count .*must be greater than 0"),
    (["x"], r"not 'dotted\.field=value'"),
    (["cores.engine.rows=16"], r"units x rows x cols"),
])
def test_bad_overrides(override, needle):
    with pytest.raises(ArchError, match=needle) as err:
        load_arch("rngd", override)
    assert "rngd.yaml" in str(err.value)


# ----------------------------------------------------------------------------- bad files

def _variant(tmp_path: Path, old: str, new: str, name: str = "mychip.yaml") -> Path:
    text = (ARCHS_DIR / "edu.yaml").read_text()
    assert old in text, old
    p = tmp_path / name
    p.write_text(text.replace(old, new, 1))
    return p


def test_copy_of_shipped_file_loads_from_path(tmp_path):
    p = _variant(tmp_path, "name: edu", "name: mychip")
    assert load_arch(p).name == "mychip"
    assert load_arch(str(p)) == load_arch(p)


@pytest.mark.parametrize("old, new, field, needle", [
    ("  type: ddr4", "  type: ddr4\n  speed: 3", "dram.speed", "unknown field"),
    ("noc:", "nocc: 1\nnoc:", "nocc", "did you mean 'noc'"),
    ("  bandwidth: 25.6 GB/s", "  bandwidth: 25.6 GB/s\n  bandwidth: 3 GB/s", "line 27",
     "duplicate key 'bandwidth' (first given at line 26)"),
    ("clock: 1 GHz", "", "clock", "missing required field"),
    ("  count: 4 ", "  count: 0 ", "cores.count", "greater than 0"),
    ("  capacity: 4 GiB", "  capacity: -4 GiB", "dram.capacity", "greater than 0"),
    ("  idle: 1 W", "  idle: -1 W", "power.idle", "must not be negative"),
    ("  bandwidth: 25.6 GB/s", "  bandwidth: 3 GHz", "dram.bandwidth",
     "'3 GHz' is a frequency; expected bytes per second, e.g. '1.5 TB/s'"),
    ("clock: 1 GHz", "clock: 1000000000", "clock", "number without a unit"),
    ("clock: 1 GHz", "clock: 1 GB", "clock", "is a size in bytes; expected a frequency"),
    ("  sram: 256 KiB", "  sram: 256 KB", "cores.sram", "KiB for 1024 bytes"),
    ("      int8: 256 ", "      int9: 256 ", "cores.engine.macs_per_cycle", "unknown dtype 'int9'"),
    ("  int4: int8 ", "  int4: int7 ", "dtype_fallback", "unknown dtype 'int7'"),
    ("  int4: int8 ", "  int4: fp8_e4m3 ", "dtype_fallback.int4", "has no MAC rate"),
    ("    dataflow: ws", "    dataflow: wss", "cores.engine.dataflow", "did you mean 'ws'"),
    ("  tdp: 10 W", "  tdp: 0.5 W", "power.idle", "exceeds power.tdp"),
    ("  type: ddr4", "  type: ddr9", "dram.type", "not one of"),
    ("cores:\n", "cores: [\n", "line", "malformed YAML at line"),
    ("name: edu", "name: !!python/object/apply:os.system ['true']", "line", "malformed YAML"),
])
def test_bad_file_names_file_and_field(tmp_path, old, new, field, needle):
    p = _variant(tmp_path, old, new)
    with pytest.raises(ArchError) as err:
        load_arch(p)
    msg = str(err.value)
    assert "mychip.yaml" in msg
    assert field in msg
    assert needle in msg


def test_empty_and_non_mapping_files(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(ArchError, match=r"empty\.yaml: the file is empty"):
        load_arch(empty)
    listed = tmp_path / "listed.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ArchError, match=r"listed\.yaml: the top level: expected a mapping"):
        load_arch(listed)


def test_unknown_name_and_missing_path(tmp_path):
    with pytest.raises(ArchError, match=r"'rngdd' is neither.*did you mean 'rngd'.*a100, atom"):
        load_arch("rngdd")
    with pytest.raises(ArchError, match=r"nope\.yaml: no such arch file"):
        load_arch(tmp_path / "nope.yaml")


# ----------------------------------------------------------------------------- units

@pytest.mark.parametrize("text, kind, expect", [
    ("1 B", "size", 1.0),
    ("1 GB", "size", 1e9),
    ("1 GiB", "size", 2.0**30),
    ("512 KiB", "size", 524288.0),
    ("8 Gb", "size", 1e9),
    ("1.5 TB/s", "bandwidth", 1.5e12),
    ("3TB/s", "bandwidth", 3e12),
    ("128 B/cycle", "bytes per cycle", 128.0),
    ("1.83 GHz", "frequency", 1.83e9),
    ("2 us", "time", 2e-6),
    ("150 W", "power", 150.0),
])
def test_units(text, kind, expect):
    assert parse_quantity(text, kind) == pytest.approx(expect, rel=1e-12)


def test_calibration_layer_applies_with_provenance_and_yields_to_overrides(tmp_path):
    from npusim.arch.calibration import read_calibration, write_calibration
    base = load_arch("edu")
    src = tmp_path / "mychip.yaml"
    text = (ARCHS_DIR / "edu.yaml").read_text().replace("name: edu", "name: mychip", 1)
    src.write_text(text)
    write_calibration(tmp_path / "mychip.calibration.yaml", "mychip",
                      {"launch_overhead": {"value": "3 us", "rows": ["X1"], "metric": "m"}},
                      {"step_overhead": {"value": "5 us", "from": "launch_overhead", "why": "t"}})
    a = load_arch(src)
    assert a.launch_overhead == pytest.approx(3e-6) and a.step_overhead == pytest.approx(5e-6)
    prov = a.calibrated()
    assert prov["launch_overhead"]["kind"] == "fitted" and prov["launch_overhead"]["rows"] == ("X1",)
    assert load_arch(src, calibrated=False).launch_overhead == base.launch_overhead
    b = load_arch(src, {"launch_overhead": "1 us"})
    assert b.launch_overhead == pytest.approx(1e-6) and "launch_overhead" not in b.calibrated()
    bad = tmp_path / "mychip.calibration.yaml"
    bad.write_text("arch: mychip\nfitted:\n  launch_overhead: {value: 3 us, colour: red}\n")
    with pytest.raises(ArchError, match="mychip.calibration.yaml: fitted.launch_overhead"):
        load_arch(src)
    assert read_calibration  # imported for the API surface


def test_shipped_gpu_calibration_is_traceable_to_rows():
    h = load_arch("h100")
    prov = h.calibrated()
    assert prov["cores.engine.efficiency.fp8_e4m3"]["rows"] == ("N1",)
    assert prov["launch_overhead"]["rows"] == ("N3",)
    assert all(p["kind"] in ("fitted", "assumed") for p in prov.values())
