"""benchmarks/vs_attacc.py: the npusim side runs (and the AttAcc side skips cleanly without a
checkout); the AttAcc-matching arch reproduces AttAcc's stack geometry by hand; with an AttAcc
checkout, its wrapper returns the log's cycles x tCK."""
from __future__ import annotations

import math

import pytest

from npusim.engine.pim import pim_device
from npusim.kernels import dram as kd





@pytest.fixture(scope="module")
def va(benchmark_script):
    return benchmark_script("vs_attacc")


@pytest.mark.parametrize("pc", [True, False])
def test_arch_is_one_attacc_stack(va, pc):
    dev = pim_device(va.attacc_arch(pc))
    tck = 0.769e-9
    n = 6 if pc else 4                      # nCCDAB, HBM3-PIM.cpp presets
    # 16 channels x (2 pCH x 2 ranks x 4 BG x 4 banks), one unit per bank
    assert (dev.channels, dev.banks_per_channel, dev.units) == (16, 64, 1024)
    # a 64-B burst is two 32-B MACABs
    assert dev.command_interval == pytest.approx(2 * n * tck, rel=1e-12)
    # 16 fp16 MACs per bank per MACAB
    assert dev.peak_macs["fp16"] == pytest.approx(1024 * 16 / (n * tck), rel=1e-9)
    # npusim's hbm3 preset (4 nCK at 1.5 GHz for 6.0 Gb/s) scaled to 5.2 Gb/s: AttAcc's tCK
    assert dev.timing[kd.T_CCD_L] == pytest.approx(4 * tck, rel=1e-3)
    assert dev.timing[kd.T_BURST] == pytest.approx(2 * tck, rel=1e-3)   # nBL = 2
    if not pc:
        # AttAcc's config.py BW_SCALE[False][BA] = 2 * 4 * 4 / 2 = 16x the stack's bandwidth
        assert dev.ratio == pytest.approx(16.0, rel=1e-3)


def test_graph_and_placement(va):
    g = va.attention_graph(3, 64)
    assert g.macs == 2 * 3 * 64 * 128
    n = va.npusim_attention(va.attacc_arch(True), 3, 64)
    assert n.placement == "qk:pim softmax:npu pv:pim"
    assert n.total == pytest.approx(n.pim + n.host, rel=1e-12)


def test_stream_by_hand(va):
    # L 2048, 243 heads: QK^T 2048 x 243 rows of 256 B over 1024 units = 486 rows x 4 bursts;
    # PV 128 x 243 rows of 4096 B = 31 rows x 64 bursts; 12 tCK per burst.
    n = va.npusim_attention(va.attacc_arch(True), 243, 2048)
    assert n.stream == pytest.approx((486 * 4 + 31 * 64) * 12 * 0.769e-9, rel=1e-9)
    parts = n.stream + sum(n.overhead.values())
    assert n.pim == pytest.approx(parts, rel=1e-9)


def test_quick_without_checkout(va, tmp_path, capsys):
    assert va.main(["--quick", "--attacc", str(tmp_path / "absent")]) == 0
    out = capsys.readouterr().out
    assert "no AttAcc checkout at" in out
    rows = [line for line in out.splitlines() if line.startswith(" on ")]
    assert len(rows) == 2 and all("nan" in r for r in rows)


def test_attacc_wrapper_on_its_log(va):
    pytest.importorskip("pandas")
    if not (va.DEFAULT_ATTACC / "ramulator.out").is_file():
        pytest.skip(f"no AttAcc checkout at {va.DEFAULT_ATTACC}")
    log = va.AttAccLog(va.DEFAULT_ATTACC)
    assert log.ok, log.error
    row = log.row(128, 243, True)
    assert row is not None
    assert log.seconds(128, 243, True) == pytest.approx(int(row["cycle"]) * 0.769e-9, rel=1e-12)
    assert math.isclose(log.seconds(128, 243, True), 4343 * 0.769e-9, rel_tol=1e-12)
