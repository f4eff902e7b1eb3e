"""DRAM timing kernel, its presets and the effective-bandwidth table.

Hand-computed cases use made-up round timings (ns) so the arithmetic fits in a comment; the
preset checks use the shipped HBM3 preset on RNGD. Every test also runs with
NUMBA_DISABLE_JIT=1 (the kernel then runs as Python), so streams are kept short.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.arch import load_arch
from npusim.arch.dram_timing import build_dram_timing, dram_presets, load_dram_timing
from npusim.arch.loader import parse_yaml
from npusim.arch.model import FrozenMap
from npusim.engine import dram as ed
from npusim.errors import ArchError
from npusim.kernels import dram as kd

NS = 1e-9
PRESETS = Path(__file__).resolve().parents[1] / "npusim" / "archs" / "dram"
SMALL = ed.Grid(seq_sizes=(4096, 2 ** 20), contiguous=(64, 1024), totals=(2 ** 16, 2 ** 20),
                max_bursts=512)


def timing(**ns) -> np.ndarray:
    """A timing array from values in ns (unnamed entries 0; refresh off unless tREFI given)."""
    t = np.zeros(kd.N_TIMING)
    for name, value in ns.items():
        t[kd.TIMING_NAMES.index(name)] = value * NS
    return t


def run(addr, size, geometry, amap, t, queue_depth, writes=None):
    addr = np.asarray(addr, dtype=np.int64)
    size = np.asarray(size, dtype=np.int64)
    w = np.zeros(addr.shape[0], dtype=np.bool_) if writes is None else np.asarray(writes, bool)
    geometry = np.asarray(geometry, dtype=np.int64)
    return kd.simulate(addr, size, w, geometry, amap[0], amap[1], t, queue_depth)


# ---------------------------------------------------------------- kernel == twin
@st.composite
def streams(draw):
    n_ch = draw(st.integers(1, 3))
    n_bg = draw(st.sampled_from([1, 2, 4]))
    per_bg = draw(st.integers(1, 3))
    burst = draw(st.sampled_from([32, 64]))
    row = burst * draw(st.sampled_from([2, 4, 16]))
    amap = kd.address_map(n_ch, n_bg, per_bg, burst, row, burst * draw(st.sampled_from([1, 4])))
    n = draw(st.integers(1, 25))
    addr = draw(st.lists(st.integers(0, 1 << 16), min_size=n, max_size=n))
    size = draw(st.lists(st.integers(0, 300), min_size=n, max_size=n))
    writes = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    vals = draw(st.lists(st.integers(0, 40), min_size=kd.N_TIMING, max_size=kd.N_TIMING))
    t = np.array(vals, dtype=np.float64) * 0.25 * NS
    t[kd.T_BURST] = max(t[kd.T_BURST], 0.5 * NS)
    if draw(st.booleans()):      # refresh on: short interval, so it happens in small streams
        t[kd.T_RFC] = draw(st.integers(1, 20)) * NS
        t[kd.T_REFI] = t[kd.T_RFC] + draw(st.integers(1, 60)) * NS
    else:
        t[kd.T_REFI] = 0.0
    geometry = np.array([n_ch, n_bg, per_bg, burst], dtype=np.int64)
    return (np.array(addr, np.int64), np.array(size, np.int64), np.array(writes, np.bool_),
            geometry, amap[0], amap[1], t, draw(st.integers(1, 8)))


@settings(max_examples=60, deadline=None)
@given(streams())
def test_kernel_agrees_with_twin(case):
    stats, busy = kd.simulate(*case)
    stats_ref, busy_ref = kd.simulate_ref(*case)
    np.testing.assert_array_equal(stats, stats_ref)
    np.testing.assert_array_equal(busy, busy_ref)
    assert stats[kd.S_ACTIVATIONS] + stats[kd.S_ROW_HITS] == stats[kd.S_BURSTS]
    assert stats[kd.S_BYTES] == case[1].clip(min=0).sum()


def test_address_map_spreads_a_stream():
    f, s = kd.address_map(2, 4, 4, 64, 2048, 256)
    assert f.tolist() == [kd.F_BANK_GROUP, kd.F_COLUMN, kd.F_CHANNEL, kd.F_COLUMN, kd.F_BANK]
    assert s.tolist() == [4, 1, 2, 32, 4]


# ---------------------------------------------------------------- hand-computed timing
# One channel, one bank group, one bank, 64-B bursts, 1 KiB rows (16 bursts per row).
ONE_BANK = ([1, 1, 1, 64], kd.address_map(1, 1, 1, 64, 1024, 64))
HAND = dict(tBURST=2, tCCD_S=2, tCCD_L=3, tRCD=10, tRP=10, tRAS=20, tRC=30, tCL=10, tWL=5,
            tRTP=4, tWR=6, tWTR_S=3, tWTR_L=4, tRTW=1, tRRD_S=2, tRRD_L=4, tFAW=20)


def test_sequential_rows_by_hand():
    # Per row: ACT at a; 16 reads at a + tRCD + 3j (tCCD_L = 3 > tBURST = 2, one bank group),
    # the last at a + 10 + 45 = a + 55; PRE at a + 55 + tRTP = a + 59 (>= a + tRAS); next ACT
    # at a + 59 + tRP = a + 69 (>= a + tRC). So a row of 1024 B every 69 ns, against a peak of
    # 64 B / 2 ns: efficiency 32 / 69. N rows end at (N-1)*69 + 55 + tCL + tBURST ns.
    n = 50
    stats, busy = run([0], [n * 1024], *ONE_BANK, timing(**HAND), 4)
    assert stats[kd.S_TIME] == pytest.approx(((n - 1) * 69 + 55 + 10 + 2) * NS, rel=1e-12)
    assert stats[kd.S_ACTIVATIONS] == n and stats[kd.S_ROW_HITS] == 15 * n
    assert busy[0] == pytest.approx(16 * n * 2 * NS)


def test_sequential_with_refresh_loses_about_trfc_over_trefi():
    # Steady streaming efficiency (above) is 32/69; all-bank refresh takes tRFC of every tREFI,
    # so a long read reaches (1 - 100/4000) * 32/69 to within 2 %.
    t = timing(**HAND, tREFI=4000, tRFC=100, tREF0=2000)
    n = 1200                                   # 82.8 us, about 20 refresh intervals
    stats, _ = run([0], [n * 1024], *ONE_BANK, t, 4)
    eff = n * 1024 / stats[kd.S_TIME] / (64 / (2 * NS))
    expected = (1 - 100 / 4000) * 32 / 69
    assert eff == pytest.approx(expected, rel=0.02)
    assert 19 <= stats[kd.S_REFRESHES] <= 21
    no_refresh, _ = run([0], [n * 1024], *ONE_BANK, timing(**HAND), 4)
    assert no_refresh[kd.S_TIME] < stats[kd.S_TIME]


# 16 banks (4 groups x 4); every access opens a new row, rotating bank groups fastest.
SIXTEEN = ([1, 4, 4, 64], kd.address_map(1, 4, 4, 64, 1024, 256))


def _all_miss_addresses(n: int) -> np.ndarray:
    i = np.arange(n, dtype=np.int64)
    # burst index = group + 4 * (column + 16 * (bank + 4 * row)); column 0, row i // 16
    return ((i % 4) + 64 * ((i // 4) % 4) + 256 * (i // 16)) * 64


@pytest.mark.parametrize("limits, per_act_ns", [
    # tRRD_S = 2, tFAW / 4 = 20 / 4 = 5, tRC / banks = 30 / 16 = 1.875: tFAW binds, 5 ns.
    (dict(tRRD_S=2, tRRD_L=4, tFAW=20, tRC=30), 5.0),
    # tRRD_S = 2, tFAW / 4 = 1, tRC / banks = 64 / 16 = 4: tRC binds, 4 ns per activation.
    (dict(tRRD_S=2, tRRD_L=2, tFAW=4, tRC=64, tRAS=40), 4.0),
    # tRRD_S = 3, tFAW / 4 = 2, tRC / 16 = 1.875: tRRD_S binds, 3 ns.
    (dict(tRRD_S=3, tRRD_L=3, tFAW=8, tRC=30), 3.0),
])
def test_random_64b_reads_are_bound_by_activations(limits, per_act_ns):
    # Each 64-B read needs its own ACT, so reads go at one per max(tRRD_S, tFAW/4, tRC/16).
    n = 1600
    t = timing(**{**HAND, **limits})
    stats, _ = run(_all_miss_addresses(n), np.full(n, 64), *SIXTEEN, t, 32)
    assert stats[kd.S_ACTIVATIONS] == n
    rate = n / stats[kd.S_TIME]
    assert rate == pytest.approx(1 / (per_act_ns * NS), rel=0.01)


def test_truly_random_reads_stay_under_the_activation_bound():
    n = 1000
    rng = np.random.default_rng(1)
    addr = rng.integers(0, 1 << 30, n) // 64 * 64
    stats, _ = run(addr, np.full(n, 64), *SIXTEEN, timing(**HAND), 32)
    rate = n / stats[kd.S_TIME]
    bound = 1 / (5 * NS)                       # the tFAW bound above
    assert 0.3 * bound < rate <= bound


def test_read_write_turnaround_by_hand():
    # Two hits in one open row (the row is opened by a first read at ACT 0, RD 10).
    # RD at 10 -> WR no earlier than 10 + tCL + tBURST + tRTW - tWL = 10 + 10 + 2 + 1 - 5 = 18;
    # WR at 18 -> RD no earlier than 18 + tWL + tBURST + tWTR_L = 18 + 5 + 2 + 4 = 29;
    # that read's data ends at 29 + tCL + tBURST = 41 ns.
    stats, _ = run([0, 64, 128], [64, 64, 64], *ONE_BANK, timing(**HAND), 4,
                   writes=[False, True, False])
    assert stats[kd.S_TIME] == pytest.approx(41 * NS, rel=1e-12)
    assert stats[kd.S_ROW_HITS] == 2


# ---------------------------------------------------------------- presets
def test_every_preset_loads_and_cites_sources():
    names = dram_presets()
    assert {"hbm3", "hbm3e", "hbm2e", "gddr6", "lpddr5x", "lpddr6"} <= set(names)
    for name in names:
        p = load_dram_timing(name)
        assert p.sources and p.t_burst > 0
        text = (PRESETS / f"{name}.yaml").read_text()
        for line in text.splitlines():
            if line.startswith("  t") or line.startswith("  b") or line.startswith("clock"):
                assert "#" in line, f"{name}.yaml: value without a source comment: {line}"


def test_preset_figures():
    hbm3 = load_dram_timing("hbm3")
    # rngd.md: 48 GB/s per channel; tCCD 2/4 cycles at 1.5 GHz.
    assert hbm3.channel_bandwidth == pytest.approx(48e9)
    assert hbm3.timings_at()["tCCD_L"] == pytest.approx(4 / 1.5e9)
    lp6 = load_dram_timing("lpddr6")
    # pim.md: BL24 on 12 DQ at 10,667 MT/s = 2.25 ns, 32 B payload -> 14.2 GB/s.
    assert lp6.t_burst == pytest.approx(2.25e-9, rel=1e-3)
    assert lp6.channel_bandwidth == pytest.approx(14.22e9, rel=1e-3)


def _tree(name="hbm3"):
    return parse_yaml((PRESETS / f"{name}.yaml").read_text(), "x.yaml")


@pytest.mark.parametrize("edit, words", [
    (lambda t: t["timing"].update(tRCDX="1 ns"), ["x.yaml", "timing.tRCDX", "tRCD"]),
    (lambda t: t["timing"].pop("tFAW"), ["x.yaml", "timing.tFAW", "missing"]),
    (lambda t: t["timing"].update(tRP="14 GHz"), ["x.yaml", "timing.tRP", "time"]),
    (lambda t: t["timing"].update(tRP=14), ["x.yaml", "timing.tRP", "unit"]),
    (lambda t: t["geometry"].update(row_size="100 B"), ["x.yaml", "row_size", "bursts"]),
    (lambda t: t.update(colour="red"), ["x.yaml", "colour", "unknown"]),
    (lambda t: t.pop("sources"), ["x.yaml", "sources", "missing"]),
])
def test_bad_presets_name_file_and_field(edit, words):
    tree = _tree()
    edit(tree)
    with pytest.raises(ArchError) as exc:
        build_dram_timing(tree, "x.yaml")
    for w in words:
        assert w in str(exc.value)


def test_unknown_preset_name_suggests():
    with pytest.raises(ArchError, match="hbm3"):
        load_dram_timing("hbm4x")


# ---------------------------------------------------------------- the table
@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NPUSIM_CACHE_DIR", str(tmp_path / "cache"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    ed._load_or_build.cache_clear()
    yield tmp_path
    assert not any(cwd.iterdir()), "the DRAM table wrote into the working directory"
    ed._load_or_build.cache_clear()


def test_long_sequential_read_on_rngd_is_peak_less_refresh(cache):
    setup = ed.dram_setup(load_arch("rngd"))
    # Bank groups alternate every burst (tCCD_S = tBURST) and row switches overlap streaming,
    # so the streaming efficiency is 1 (less one tRCD + tCL of start-up in 21.8 us); all-bank
    # refresh leaves 1 - 450 / 3900.
    grid = dataclasses.replace(SMALL, max_bursts=16384)
    eff = ed.pattern_efficiency(setup, "seq", 2 ** 26, 2 ** 26, grid)
    no_ref = ed.pattern_efficiency(setup.without_refresh(), "seq", 2 ** 26, 2 ** 26, grid)
    assert no_ref == pytest.approx(1.0, abs=0.02)
    assert eff == pytest.approx(1 - 450 / 3900, rel=0.02)
    assert no_ref > eff


def test_table_is_cached_by_content_hash(cache, monkeypatch):
    rngd = load_arch("rngd")
    first = ed.dram_table(rngd, grid=SMALL)
    files = list((cache / "cache" / "dram").glob("*.json"))
    assert [f.stem for f in files] == [first.key]
    ed._load_or_build.cache_clear()

    def no_build(*a, **k):
        raise AssertionError("rebuilt although cached")
    monkeypatch.setattr(ed, "build_table", no_build)
    again = ed.dram_table(rngd, grid=SMALL)
    assert again == first
    assert again.efficiency("random", 64, 2 ** 18) == first.efficiency("random", 64, 2 ** 18)

    preset = load_dram_timing("hbm3")
    slower = dataclasses.replace(preset, time_s=FrozenMap({**preset.time_s, "tRCD": 20e-9}))
    setup = ed.dram_setup(rngd, slower)
    assert ed.table_key(rngd, setup, slower, SMALL) != first.key
    wider = load_arch("rngd", ["dram.bandwidth=3TB/s"])
    assert ed.table_key(wider, ed.dram_setup(wider), preset, SMALL) != first.key


def test_table_properties(cache):
    rngd = load_arch("rngd")
    table = ed.dram_table(rngd, grid=SMALL, cache=False)
    for pattern in ("strided", "random"):
        for total in (2 ** 16, 3e5, 2 ** 20):
            effs = [table.efficiency(pattern, c, total) for c in (64, 256, 1024)]
            assert effs == sorted(effs), (pattern, total, effs)
            assert all(0 < e <= 1 for e in effs)
    assert table.efficiency("seq", 0, 2 ** 20) > table.efficiency("random", 64, 2 ** 20)
    # More DRAM bandwidth never slows a read down.
    wider = load_arch("rngd", ["dram.bandwidth=3TB/s"])
    for pattern, c, total in (("seq", None, 2 ** 20), ("random", 64, 2 ** 20),
                              ("strided", 1024, 2 ** 16)):
        assert ed.effective_bandwidth(wider, pattern, c, total, grid=SMALL) >= \
            ed.effective_bandwidth(rngd, pattern, c, total, grid=SMALL)


def test_type_without_preset_falls_back_with_a_warning(cache):
    arch = load_arch("rngd", ["dram.type=ddr5"])
    with pytest.warns(ed.DramFallbackWarning, match="ddr5"):
        table = ed.dram_table(arch)
    assert table.efficiency("random", 64, 1e6) == ed.FALLBACK_EFFICIENCY
    assert table.warnings and "ddr5" in table.warnings[0]
    with pytest.warns(ed.DramFallbackWarning):
        assert ed.effective_bandwidth(arch) == pytest.approx(0.86 * 1.5e12)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("NPUSIM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert ed.cache_dir() == (tmp_path / "npusim").resolve()
    monkeypatch.setenv("NPUSIM_CACHE_DIR", str(tmp_path / "c"))
    assert ed.cache_dir() == (tmp_path / "c").resolve()
    assert os.fspath(ed.cache_dir()).startswith(os.fspath(tmp_path.resolve()))
