"""The README's PIM figures are what npusim computes today: each table is recomputed here and
compared cell by cell (3 significant digits, as written)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import npusim
from npusim import load_arch

README = Path(__file__).resolve().parents[1] / "README.md"
pytestmark = pytest.mark.xdist_group("readme-pim")




def g3(x: float) -> str:
    return f"{x:.3g}"


def test_on_device_decode_table(readme_table):
    rows = readme_table("| model | plain LPDDR6 bound |")
    assert [r[0] for r in rows] == ["llama-3.1-8b", "gpt-oss-20b"]
    bw = load_arch("lpddr6-pim").dram.bandwidth
    for model, bound, plain, pim, on_pim in rows:
        off = npusim.simulate(model, "lpddr6-pim+none", phase="decode", batch=1, kv_len=1024,
                              dtype="int4")
        on = npusim.simulate(model, "lpddr6-pim", phase="decode", batch=1, kv_len=1024,
                             dtype="int4")
        assert bound == f"{g3(bw / off.dram_bytes)} tok/s", model
        assert plain == f"{g3(1 / off.latency_s)} tok/s, {g3(off.energy_j)} J/token", model
        assert pim == f"{g3(1 / on.latency_s)} tok/s, {g3(on.energy_j)} J/token", model
        n = sum(1 for o in on.ops if o.device == "pim")
        assert on_pim == f"{n} of {len(on.ops)}", model
        # what the table says in words: never above the bound without PIM, above it with
        assert 1 / off.latency_s <= bw / off.dram_bytes
        assert 1 / on.latency_s > 1 / off.latency_s


def _si(x: float, unit: str) -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G")):
        if x >= scale:
            return f"{g3(x / scale)} {prefix}{unit}"
    return f"{g3(x)} {unit}"


def test_device_table_is_npusim_pim(readme_table):
    from npusim.engine.pim import pim_summary
    rows = readme_table("| preset | units | internal / external bandwidth |")
    for name, units, bws, gemv, eff, cross in rows:
        s = pim_summary(load_arch(name), 4096, 4096)
        assert units == str(s["units"]), name
        ratio = s["internal_bandwidth"] / s["external_bandwidth"]
        assert bws == (f"{_si(s['internal_bandwidth'], 'B/s')} / "
                       f"{_si(s['external_bandwidth'], 'B/s')} ({ratio:.3g}x)"), name
        assert gemv == f"{g3(s['gemv']['kernel_s'] * 1e6)} us", name
        assert eff == f"{100 * s['gemv']['efficiency']:.1f}%", name
        want = "beyond 1024" if s["crossover_batch"] is None else str(s["crossover_batch"])
        assert cross == want, name


def test_the_validation_sentence_matches_the_rows():
    """'within 11%' for every PIM row but PIM3, as the committed report has them."""
    report = (README.parent / "validation" / "REPORT.md").read_text(encoding="utf-8")
    errors = {}
    for m in re.finditer(r"^\| (PIM\d) \|.*\| ([+-]\d+\.\d+)% \| held-out \|$", report, re.M):
        errors[m.group(1)] = float(m.group(2))
    assert sorted(errors) == [f"PIM{i}" for i in range(1, 10)]
    assert all(abs(e) <= 11.0 for k, e in errors.items() if k != "PIM3")
    assert errors["PIM3"] < -50
